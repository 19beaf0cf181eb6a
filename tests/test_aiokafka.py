"""aiokafka against a real strom server."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from conftest import create_topic


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_round_trip(broker, topic_name, codec):
    create_topic(broker.bootstrap, topic_name, 2)

    async def go():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks="all")
        await p.start()
        try:
            for i in range(150):
                key = None if i % 7 == 0 else f"k{i % 4}".encode()
                await p.send(topic_name, key=key, value=f"v{i}".encode(), headers=[("i", str(i).encode())], partition=i % 2)
            await p.flush()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
        await c.start()
        got = []
        try:
            tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            while len(got) < 150:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), 20)
                for msgs in batch.values():
                    got.extend(msgs)
        finally:
            await c.stop()
        return got

    got = asyncio.run(go())
    assert sorted(int(m.value[1:]) for m in got) == list(range(150))
    for m in got:
        i = int(m.value[1:])
        assert m.partition == i % 2
        assert m.headers == (("i", str(i).encode()),)
    for part in (0, 1):
        vals = [int(m.value[1:]) for m in got if m.partition == part]
        assert vals == sorted(vals)
