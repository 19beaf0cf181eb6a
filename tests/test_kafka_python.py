"""kafka-python against a real strom server."""

from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def read(bootstrap, topic, partitions, n, **kw):
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000, **kw)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out = []
    for m in c:
        out.append(m)
        if len(out) >= n:
            break
    c.close()
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip(broker, topic_name, codec):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)])
    admin.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks="all")
    sent = []
    for i in range(200):
        key = None if i % 9 == 0 else f"k{i % 5}".encode()
        value = None if i % 11 == 0 and key is not None else f"v{i}".encode() * 3
        headers = [("n", str(i).encode())]
        p.send(topic_name, key=key, value=value, headers=headers, timestamp_ms=1_600_000_000_000 + i)
        sent.append((key, value, 1_600_000_000_000 + i))
    p.flush()
    p.close()
    got = read(broker.bootstrap, topic_name, 2, len(sent))
    assert len(got) == len(sent)
    by_ts = {m.timestamp: m for m in got}
    for key, value, ts in sent:
        assert by_ts[ts].key == key and by_ts[ts].value == value
        assert by_ts[ts].headers == [("n", str(ts - 1_600_000_000_000).encode())]


def test_offsets_for_times_and_end_offsets(broker, topic_name):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
    for i in range(10):
        p.send(topic_name, value=str(i).encode(), timestamp_ms=5_000 + i * 100, partition=0)
    p.flush()
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = TopicPartition(topic_name, 0)
    assert c.offsets_for_times({tp: 5_250})[tp].offset == 3
    assert c.end_offsets([tp])[tp] == 10
    assert c.beginning_offsets([tp])[tp] == 0
    c.close()


def test_admin_describe_and_delete(broker, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=1, topic_configs={"segment.bytes": "1048576"})])
    assert topic_name in admin.list_topics()
    desc = admin.describe_topics([topic_name])
    assert len(desc[0]["partitions"]) == 3
    admin.delete_topics([topic_name])
    assert topic_name not in admin.list_topics()
    admin.close()


def test_describe_log_dirs(broker, topic_name):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(10):
        p.send(topic_name, value=b"x" * 100, partition=0)
    p.flush()
    p.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    resp = admin.describe_log_dirs()
    admin.close()
    (dir_entry,) = resp[0]["log_dirs"]
    assert dir_entry["log_dir"] == str(Path(broker.data_dir).resolve())
    (topic,) = [t for t in dir_entry["topics"] if t["name"] == topic_name]
    assert topic["partitions"][0]["partition_size"] > 10 * 100
