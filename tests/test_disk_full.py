"""A full disk during append: the affected partition answers KAFKA_STORAGE_ERROR,
everything stored before stays readable, and appends succeed again once space is
free. The test mounts its own small tmpfs, so it needs root (as CI has)."""

import os
import subprocess

import pytest
from confluent_kafka import KafkaError, Producer

from conftest import create_topic
from test_confluent import consume_all

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path):
    """Writes a ballast file until the filesystem refuses even one more byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    size = 64 << 10
    while size:
        try:
            os.write(fd, b"\0" * size)
        except OSError:
            size //= 2
    os.close(fd)


def produce(bootstrap, topic, values):
    """Sends with no retries and returns each message's delivery error (or None)."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "enable.idempotence": False, "linger.ms": 0})
    results = {}

    def done(err, msg):
        results[msg.value()] = err

    for v in values:
        p.produce(topic, value=v, on_delivery=done)
        p.flush(30)  # one request per message: each gets its own answer
    assert p.flush(30) == 0
    return [results[v] for v in values]


def test_full_disk_then_recovery(make_broker, small_disk, topic_name):
    b = make_broker(data_dir=str(small_disk / "data")).start()
    create_topic(b.bootstrap, topic_name, 1)
    before = [f"before-{i}".encode() * 20 for i in range(200)]
    assert produce(b.bootstrap, topic_name, before) == [None] * len(before)

    fill(small_disk / "ballast")
    during = [f"during-{i}".encode() * 400 for i in range(20)]
    errs = produce(b.bootstrap, topic_name, during)
    codes = {e.code() for e in errs if e is not None}
    assert codes == {KafkaError.KAFKA_STORAGE_ERROR}, errs
    refused = [v for v, e in zip(during, errs) if e is not None]
    stored_during = [v for v, e in zip(during, errs) if e is None]
    assert refused, "the full disk refused at least one append"

    # Everything acknowledged is still there, once, in order.
    got = [m.value() for m in consume_all(b.bootstrap, topic_name, 1)]
    assert got == before + stored_during
    assert b.proc.poll() is None

    # Space comes back: appends succeed again with no restart.
    os.remove(small_disk / "ballast")
    after = [f"after-{i}".encode() * 20 for i in range(50)]
    assert produce(b.bootstrap, topic_name, after) == [None] * len(after)
    expected = before + stored_during + after
    assert [m.value() for m in consume_all(b.bootstrap, topic_name, 1)] == expected

    # And the log on disk is whole: a restart reads back exactly the same.
    b.restart()
    assert [m.value() for m in consume_all(b.bootstrap, topic_name, 1)] == expected
    assert "No space left on device" in b.read_log() or "os error 28" in b.read_log()
