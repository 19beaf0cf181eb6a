"""Timestamp types, timestamp limits and topic-level recompression."""

import struct
import time
from pathlib import Path

from confluent_kafka import Producer, TIMESTAMP_LOG_APPEND_TIME

from conftest import create_topic
from test_confluent import consume_all


def produce_one(bootstrap, topic, **kw):
    p = Producer({"bootstrap.servers": bootstrap, **kw.pop("conf", {})})
    errs = []
    p.produce(topic, on_delivery=lambda e, m: errs.append(e), **kw)
    p.flush(10)
    return errs[0]


def test_log_append_time_replaces_producer_timestamps(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    assert produce_one(broker.bootstrap, topic_name, value=b"a", timestamp=1_000_000) is None
    after = int(time.time() * 1000)
    (m,) = consume_all(broker.bootstrap, topic_name, 1, expect=1)
    ts_type, ts = m.timestamp()
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME
    assert before - 1000 <= ts <= after + 1000, "the broker's clock, not the producer's 1970 timestamp"


def test_timestamp_limits(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"message.timestamp.before.max.ms": "60000", "message.timestamp.after.max.ms": "60000"})
    now = int(time.time() * 1000)
    for ts in (now - 3_600_000, now + 3_600_000):
        err = produce_one(broker.bootstrap, topic_name, value=b"x", timestamp=ts, conf={"message.send.max.retries": 0})
        assert err is not None and err.name() == "INVALID_TIMESTAMP"
    assert produce_one(broker.bootstrap, topic_name, value=b"ok", timestamp=now) is None


def first_batch_codec(broker, topic):
    seg = sorted(Path(broker.data_dir, f"{topic}-0").glob("*.log"))[0].read_bytes()
    return struct.unpack(">h", seg[21:23])[0] & 0x7


def test_topic_compression_recompresses(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"compression.type": "zstd"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "none", "linger.ms": 20})
    for i in range(100):
        p.produce(topic_name, key=str(i).encode(), value=(b"value-%d-" % i) * 10, headers=[("i", str(i).encode())])
    assert p.flush(10) == 0
    assert first_batch_codec(broker, topic_name) == 4, "stored as zstd"
    got = consume_all(broker.bootstrap, topic_name, 1, expect=100)
    assert [m.value() for m in got] == [(b"value-%d-" % i) * 10 for i in range(100)]
    assert [m.offset() for m in got] == list(range(100))
    assert got[7].headers() == [("i", b"7")]
    # The default, `producer`, keeps what the producer sent.
    create_topic(broker.bootstrap, topic_name + "-p", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "gzip"})
    p.produce(topic_name + "-p", value=b"x" * 100)
    p.flush(10)
    assert first_batch_codec(broker, topic_name + "-p") == 1
