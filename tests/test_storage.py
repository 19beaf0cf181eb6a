"""Segments, rolling and restarts, seen through a real client and the data directory."""

import time
from pathlib import Path

from confluent_kafka import Producer

from conftest import create_topic
from test_confluent import consume_all


def segments(broker, topic):
    return sorted(Path(broker.data_dir, f"{topic}-0").glob("*.log"))


def test_segments_roll_by_size_and_survive_restarts(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"segment.bytes": "20000", "index.interval.bytes": "1000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 10})
    for i in range(2000):
        p.produce(topic_name, key=str(i).encode(), value=(b"%06d" % i) * 20)
        if i % 100 == 0:
            p.flush(10)
    assert p.flush(30) == 0
    segs = segments(broker, topic_name)
    assert len(segs) > 10
    assert all(len(s.name) == len("00000000000000000000.log") for s in segs)
    # Index files are written when a segment rolls (the active one's at a flush or shutdown).
    assert all(s.with_suffix(".index").exists() and s.with_suffix(".timeindex").exists() for s in segs[:-1])
    expect = [(b"%06d" % i) * 20 for i in range(2000)]
    assert [m.value() for m in consume_all(broker.bootstrap, topic_name, 1, expect=2000)] == expect
    broker.restart()
    # The client port is bound before the logs load; the line follows shortly.
    deadline = time.time() + 10
    while "logs loaded clean=true" not in broker.read_log() and time.time() < deadline:
        time.sleep(0.05)
    assert "logs loaded clean=true" in broker.read_log()
    assert [m.value() for m in consume_all(broker.bootstrap, topic_name, 1, expect=2000)] == expect
    broker.restart(hard=True)
    assert [m.value() for m in consume_all(broker.bootstrap, topic_name, 1, expect=2000)] == expect
    # Appends continue at the right offset after recovery.
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic_name, value=b"after")
    p.flush(10)
    got = consume_all(broker.bootstrap, topic_name, 1, expect=2001)
    assert got[-1].value() == b"after" and got[-1].offset() == 2000


def test_segments_roll_by_time(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"segment.ms": "200"})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        p.produce(topic_name, value=str(i).encode())
        p.flush(10)
        time.sleep(0.3)
    assert len(segments(broker, topic_name)) >= 4
    assert [m.value() for m in consume_all(broker.bootstrap, topic_name, 1, expect=5)] == [str(i).encode() for i in range(5)]


def test_torn_tail_is_truncated_on_recovery(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce(topic_name, value=str(i).encode())
        p.flush(10)
    broker.kill9()
    seg = segments(broker, topic_name)[-1]
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x01\x00garbage")
    broker.start()
    assert "truncating torn or invalid tail" in broker.read_log()
    got = consume_all(broker.bootstrap, topic_name, 1)
    assert [m.value() for m in got] == [str(i).encode() for i in range(10)]
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic_name, value=b"next")
    p.flush(10)
    got = consume_all(broker.bootstrap, topic_name, 1, expect=11)
    assert got[-1].offset() == 10
