"""Retention by time and by size, and DeleteRecords, with real clients."""

import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import create_topic

FAST = {"log.retention.check.interval.ms": "200"}


def dir_bytes(broker, topic):
    return sum(f.stat().st_size for f in Path(broker.data_dir, f"{topic}-0").glob("*.log"))


def fill(bootstrap, topic, n, size=10_000):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for i in range(n):
        p.produce(topic, value=(b"%06d" % i) + b"x" * (size - 6))
    assert p.flush(30) == 0


def watermarks(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    return lo, hi


def test_time_retention_deletes_old_segments_while_consumers_read_new(make_broker, topic_name):
    b = make_broker(FAST).start()
    create_topic(b.bootstrap, topic_name, 1, {"retention.ms": "1500", "segment.bytes": "50000"})
    fill(b.bootstrap, topic_name, 100)
    full = dir_bytes(b, topic_name)
    assert full >= 1_000_000
    # A consumer positioned at the end keeps receiving new messages meanwhile.
    tail = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "tail", "enable.auto.commit": False})
    tail.assign([TopicPartition(topic_name, 0, 100)])
    deadline = time.time() + 20
    # Segments expire one retention pass at a time (they were written over a
    # span of time), and their files go after the log start moves: wait for both.
    while time.time() < deadline and (watermarks(b.bootstrap, topic_name)[0] == 0 or dir_bytes(b, topic_name) >= full / 5):
        time.sleep(0.2)
    lo, hi = watermarks(b.bootstrap, topic_name)
    assert lo > 0 and hi == 100
    assert dir_bytes(b, topic_name) < full / 5, "disk usage falls"
    assert "deleting segment out of retention" in b.read_log()
    fill(b.bootstrap, topic_name, 5)
    got = []
    deadline = time.time() + 20
    while len(got) < 5 and time.time() < deadline:
        m = tail.poll(0.2)
        if m is not None and not m.error():
            got.append(m.offset())
    assert got == [100, 101, 102, 103, 104]
    tail.close()
    # A reader at a deleted offset gets OFFSET_OUT_OF_RANGE and auto.offset.reset applies.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "late", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, 0)])
    m = None
    deadline = time.time() + 20
    while m is None and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error():
            m = None
    assert m is not None and m.offset() >= lo
    c.close()
    # Retention survives a restart (log start offset is checkpointed or re-derived).
    b.restart(hard=True)
    assert watermarks(b.bootstrap, topic_name)[0] >= lo


def test_size_retention(make_broker, topic_name):
    b = make_broker(FAST).start()
    create_topic(b.bootstrap, topic_name, 1, {"retention.bytes": "200000", "segment.bytes": "50000"})
    fill(b.bootstrap, topic_name, 100)
    deadline = time.time() + 20
    while time.time() < deadline and dir_bytes(b, topic_name) > 260_000:
        time.sleep(0.2)
    assert dir_bytes(b, topic_name) <= 260_000
    lo, hi = watermarks(b.bootstrap, topic_name)
    assert lo > 0 and hi == 100


def test_delete_records_admin_and_cli(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    fill(broker.bootstrap, topic_name, 50, size=100)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = admin.delete_records([TopicPartition(topic_name, 0, 20)], request_timeout=10)
    assert list(res.values())[0].result(10).low_watermark == 20
    assert watermarks(broker.bootstrap, topic_name) == (20, 50)
    out = broker.cli("topic", "delete-records", topic_name, "--before", "30")
    assert out.returncode == 0, out.stderr
    assert "now starts at offset 30" in out.stdout
    out = broker.cli("topic", "delete-records", topic_name, "--before", "999")
    assert out.returncode != 0 and "OFFSET_OUT_OF_RANGE" in out.stderr
    out = broker.cli("consume", topic_name, "--offset", "beginning", "-n", "1", "--format", "json")
    assert '"offset":30' in out.stdout.replace(" ", "")
    broker.restart(hard=True)
    assert watermarks(broker.bootstrap, topic_name) == (30, 50)
