"""Volume: 1,000,000 messages of 1 KiB through confluent-kafka, read back in order."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import create_topic

N = 1_000_000
PARTS = 4
SIZE = 1024


def payload(i):
    head = f"{i:012d}:".encode()
    return head + bytes([i % 251]) * (SIZE - len(head))


def test_million_messages(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, PARTS)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 10, "batch.size": 1_000_000, "compression.type": "none",
                  "queue.buffering.max.kbytes": 1_048_576, "acks": "1"})
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    for i in range(N):
        while True:
            try:
                p.produce(topic_name, value=payload(i), partition=i % PARTS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    assert not failures

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "volume", "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(topic_name, part, 0) for part in range(PARTS)])
    expected = [part for part in range(PARTS)]  # next i expected per partition
    seen = 0
    deadline = time.time() + 600
    while seen < N and time.time() < deadline:
        for m in c.consume(10_000, 1.0):
            assert m.error() is None, m.error()
            part = m.partition()
            i = expected[part]
            assert m.offset() == i // PARTS
            assert m.value() == payload(i), f"partition {part} offset {m.offset()}"
            expected[part] = i + PARTS
            seen += 1
    c.close()
    assert seen == N
