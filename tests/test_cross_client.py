"""One client writes, another reads: the bytes Strom stores are the bytes clients sent."""

import asyncio
import json
import subprocess
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Producer
from kafka import KafkaProducer

from conftest import create_topic

JS = Path(__file__).resolve().parent / "js"


def test_kafka_python_gzip_read_by_kafkajs(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", linger_ms=20)
    for i in range(300):
        p.send(topic_name, key=None if i % 4 == 0 else f"k{i}".encode(), value=f"kp-{i}".encode(), headers=[("i", str(i).encode())], partition=0)
    p.flush()
    p.close()
    out = subprocess.run(["node", str(JS / "roundtrip.js"), "read", broker.bootstrap, topic_name, "0", "300"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [m["value"] for m in got] == [f"kp-{i}" for i in range(300)]
    assert [m["key"] for m in got] == [None if i % 4 == 0 else f"k{i}" for i in range(300)]
    assert all(m["headers"] == {"i": str(i)} for i, m in enumerate(got))


def test_confluent_zstd_read_by_aiokafka(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd", "linger.ms": 20})
    for i in range(300):
        p.produce(topic_name, key=f"k{i}".encode(), value=(f"ck-{i}-" * 20).encode(), headers=[("i", str(i).encode())], partition=0)
    assert p.flush(30) == 0

    async def read():
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await c.start()
        got = []
        try:
            tp = TopicPartition(topic_name, 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            while len(got) < 300:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), 20)
                for msgs in batch.values():
                    got.extend(msgs)
        finally:
            await c.stop()
        return got

    got = asyncio.run(read())
    assert [m.value for m in got] == [(f"ck-{i}-" * 20).encode() for i in range(300)]
    assert [m.key for m in got] == [f"k{i}".encode() for i in range(300)]
    assert [m.offset for m in got] == list(range(300))
