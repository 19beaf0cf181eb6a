"""Crash safety: kill -9 the broker repeatedly under acks=all load, restart it, and
check that every acknowledged message is there exactly once and in order."""

import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import create_topic


def test_kill9_under_load_loses_nothing_acknowledged(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 2)
    acked = {0: [], 1: []}
    lock = threading.Lock()
    stop = threading.Event()

    def on_delivery(err, msg):
        if err is None:
            with lock:
                acked[msg.partition()].append((msg.offset(), int(msg.value())))

    def produce():
        # No retries: a message is sent once, so an acknowledged one can only appear once.
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0, "linger.ms": 2,
                      "message.timeout.ms": 5000, "reconnect.backoff.max.ms": 100, "enable.idempotence": False})
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic_name, value=str(i).encode(), partition=i % 2, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 50 == 0 else 0)
        p.flush(30)

    t = threading.Thread(target=produce)
    t.start()
    try:
        for _ in range(4):
            time.sleep(1.5)
            broker.kill9()
            time.sleep(0.3)
            broker.start()
        time.sleep(1.5)
    finally:
        stop.set()
        t.join(60)

    total = sum(len(v) for v in acked.values())
    assert total > 1000, f"only {total} messages were acknowledged"
    broker.kill9()
    broker.start()
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "crash", "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic_name, p, 0) for p in (0, 1)])
    stored = {0: [], 1: []}
    eof = set()
    deadline = time.time() + 60
    while len(eof) < 2 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:
                eof.add(m.partition())
            continue
        stored[m.partition()].append((m.offset(), int(m.value())))
    c.close()
    for part in (0, 1):
        values = [v for _, v in stored[part]]
        assert [o for o, _ in stored[part]] == list(range(len(values))), "offsets must be dense"
        assert len(values) == len(set(values)), "no message may be stored twice"
        assert values == sorted(values), "order within the partition must hold"
        where = {v: o for o, v in stored[part]}
        for off, v in acked[part]:
            assert where.get(v) == off, f"acknowledged message {v} at offset {off} missing or moved"
    # Each start after kill -9 took the recovery path, not the clean one.
    assert broker.read_log().count("logs loaded clean=false") >= 5
