"""confluent-kafka (librdkafka) producing and consuming against a real strom server."""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING, OFFSET_END
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import create_topic


def consume_all(bootstrap, topic, partitions, start=OFFSET_BEGINNING, expect=None, timeout=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    out, eof, deadline = [], set(), time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
                if expect is None and len(eof) == partitions:
                    break
                continue
            raise KafkaException(m.error())
        out.append(m)
        if expect is not None and len(out) >= expect:
            break
    c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_round_trip_every_codec_and_acks(broker, topic_name, codec, acks):
    create_topic(broker.bootstrap, topic_name, 3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "acks": acks, "linger.ms": 5})
    sent = []
    for i in range(300):
        key = None if i % 10 == 0 else f"key-{i % 7}".encode()
        value = None if i % 13 == 0 else (f"value-{i}-".encode() * (i % 5 + 1))
        headers = [("h1", f"x{i}".encode()), ("empty", None)] if i % 3 == 0 else None
        ts = 1_700_000_000_000 + i
        p.produce(topic_name, key=key, value=value, headers=headers, timestamp=ts)
        sent.append((key, value, headers, ts))
    assert p.flush(30) == 0
    got = consume_all(broker.bootstrap, topic_name, 3, expect=len(sent))
    assert len(got) == len(sent)
    by_ts = {m.timestamp()[1]: m for m in got}
    for key, value, headers, ts in sent:
        m = by_ts[ts]
        assert m.key() == key
        assert m.value() == value
        if headers:
            assert m.headers() == headers
    # Per-partition order: offsets strictly increase and timestamps (send order) too.
    for part in range(3):
        ms = [m for m in got if m.partition() == part]
        assert [m.offset() for m in ms] == list(range(len(ms)))
        assert [m.timestamp()[1] for m in ms] == sorted(m.timestamp()[1] for m in ms)


def test_same_key_same_partition_as_kafka(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 6)
    p = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    for i in range(60):
        p.produce(topic_name, key=f"user-{i % 4}".encode(), value=str(i).encode())
    p.flush(30)
    got = consume_all(broker.bootstrap, topic_name, 6, expect=60)
    parts = {}
    for m in got:
        parts.setdefault(m.key(), set()).add(m.partition())
    assert all(len(v) == 1 for v in parts.values())
    # strom's CLI uses the same hash: it must agree with librdkafka's murmur2.
    out = broker.cli("produce", topic_name, "-K", ":", input="user-1:cli\n")
    assert out.returncode == 0, out.stderr
    got = consume_all(broker.bootstrap, topic_name, 6, expect=61)
    cli_part = [m.partition() for m in got if m.value() == b"cli"][0]
    assert {cli_part} == parts[b"user-1"]


def test_consume_from_end_and_from_offset(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(20):
        p.produce(topic_name, value=str(i).encode())
    p.flush(30)
    got = consume_all(broker.bootstrap, topic_name, 1, start=12, expect=8)
    assert [m.value() for m in got] == [str(i).encode() for i in range(12, 20)]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g", "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, OFFSET_END)])
    # Positioned at the end: polling for a while returns none of the 20 old messages.
    stray = [m for m in (c.poll(0.5) for _ in range(4)) if m is not None]
    assert stray == [], [(m.offset(), m.error()) for m in stray]
    p.produce(topic_name, value=b"after")
    p.flush(30)
    deadline = time.time() + 15
    m = None
    while time.time() < deadline and m is None:
        m = c.poll(0.5)
    assert m is not None and m.value() == b"after" and m.offset() == 20
    lo, hi = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
    assert (lo, hi) == (0, 21)
    c.close()


def test_offset_out_of_range_applies_reset(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        p.produce(topic_name, value=str(i).encode())
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic_name, 0, 1000)])
    m = None
    deadline = time.time() + 15
    while time.time() < deadline and m is None:
        m = c.poll(0.5)
        if m is not None and m.error():
            m = None
    assert m is not None and m.offset() == 0
    c.close()


def test_offsets_for_times(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
    for i in range(10):
        p.produce(topic_name, value=str(i).encode(), timestamp=1_000_000 + i * 1000)
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
    res = c.offsets_for_times([TopicPartition(topic_name, 0, 1_004_500)], timeout=10)
    assert res[0].offset == 5
    res = c.offsets_for_times([TopicPartition(topic_name, 0, 1_000_000)], timeout=10)
    assert res[0].offset == 0
    res = c.offsets_for_times([TopicPartition(topic_name, 0, 2_000_000)], timeout=10)
    assert res[0].offset == -1
    c.close()


def test_admin_create_describe_delete(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = admin.create_topics([NewTopic(topic_name, 4, 1, config={"retention.ms": "12345", "max.message.bytes": "2000"})])
    fs[topic_name].result(10)
    md = admin.list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 4
    assert md.cluster_id and md.controller_id == 1
    # Duplicate creation and bad names get Kafka's errors.
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    assert e.value.args[0].name() == "TOPIC_ALREADY_EXISTS"
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"].result(10)
    assert e.value.args[0].code() == 17  # INVALID_TOPIC_EXCEPTION
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("rf3", 1, 3)])["rf3"].result(10)
    assert e.value.args[0].name() == "INVALID_REPLICATION_FACTOR"
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("badcfg", 1, 1, config={"no.such.config": "1"})])["badcfg"].result(10)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    # validate_only creates nothing.
    admin.create_topics([NewTopic("only-validate", 1, 1)], validate_only=True)["only-validate"].result(10)
    assert "only-validate" not in admin.list_topics(timeout=10).topics
    # Explicit replica assignment.
    admin.create_topics([NewTopic(topic_name + "-assigned", num_partitions=2, replica_assignment=[[1], [1]])])[topic_name + "-assigned"].result(10)
    assert len(admin.list_topics(timeout=10).topics[topic_name + "-assigned"].partitions) == 2
    # DescribeConfigs for the topic (override + defaults) and the broker.
    res = admin.describe_configs([ConfigResource("topic", topic_name)])
    cfg = list(res.values())[0].result(10)
    assert cfg["retention.ms"].value == "12345" and cfg["retention.ms"].source == 1
    assert cfg["segment.bytes"].value == "1073741824" and cfg["segment.bytes"].is_default
    res = admin.describe_configs([ConfigResource("broker", "1")])
    bcfg = list(res.values())[0].result(10)
    assert bcfg["num.partitions"].value == "1"
    assert bcfg["auto.create.topics.enable"].value == "true"
    # max.message.bytes is enforced per topic.
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 100000})
    errs = []
    p.produce(topic_name, value=b"x" * 5000, on_delivery=lambda err, msg: errs.append(err))
    p.flush(30)
    assert errs and errs[0] is not None and errs[0].name() == "MSG_SIZE_TOO_LARGE"
    # Delete.
    admin.delete_topics([topic_name])[topic_name].result(10)
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_auto_create_on_produce(broker, topic_name):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic_name, value=b"hello")
    assert p.flush(30) == 0
    got = consume_all(broker.bootstrap, topic_name, 1, expect=1)
    assert got[0].value() == b"hello"


def test_auto_create_disabled(make_broker, topic_name):
    b = make_broker({"auto.create.topics.enable": "false"}).start()
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 3000})
    errs = []
    p.produce(topic_name, value=b"hello", on_delivery=lambda err, msg: errs.append(err))
    p.flush(10)
    assert errs and errs[0] is not None


def test_idempotent_producer(broker, topic_name):
    """An idempotent producer with several batches in flight per partition: every
    message is stored exactly once, in send order, at contiguous offsets. Reads
    each partition to its end, so a duplicate or a gap would fail the test.
    (Dropping *retried* duplicates needs producer sequence checks, which strom does
    not do yet; that is a separate issue and not what this test covers.)"""
    n, parts = 2000, 2
    create_topic(broker.bootstrap, topic_name, parts)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 50})
    for i in range(n):
        p.produce(topic_name, key=str(i).encode(), value=str(i).encode())
    assert p.flush(30) == 0
    got = consume_all(broker.bootstrap, topic_name, parts)  # to end-of-partition, not to a count
    values = [int(m.value()) for m in got]
    assert len(values) == n, f"{len(values)} stored for {n} sent"
    assert sorted(values) == list(range(n)), "a message is missing or duplicated"
    for part in range(parts):
        ms = [m for m in got if m.partition() == part]
        assert ms, f"partition {part} got nothing"
        assert [m.offset() for m in ms] == list(range(len(ms))), f"offsets of partition {part} are not contiguous"
        vals = [int(m.value()) for m in ms]
        assert vals == sorted(vals), f"partition {part} is out of send order"


def test_survives_restart(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 2)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic_id = admin.list_topics(timeout=10).topics[topic_name]
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(50):
        p.produce(topic_name, key=str(i).encode(), value=str(i).encode())
    p.flush(30)
    for hard in (False, True):
        broker.restart(hard=hard)
        got = consume_all(broker.bootstrap, topic_name, 2, expect=50)
        assert sorted(int(m.value()) for m in got) == list(range(50))
    desc = broker.cli("topic", "describe", topic_name)
    assert desc.returncode == 0, desc.stderr
    assert "PartitionCount: 2" in desc.stdout


def test_describe_cluster_and_list_offsets_specs(broker, topic_name):
    from confluent_kafka.admin import OffsetSpec

    create_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
    for i, ts in enumerate([5_000, 9_000, 7_000, 8_000]):
        p.produce(topic_name, value=str(i).encode(), timestamp=ts)
    p.flush(30)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    cluster = admin.describe_cluster(request_timeout=10).result(10)
    assert cluster.controller.id == 1 and [n.id for n in cluster.nodes] == [1]
    assert cluster.cluster_id
    tp = TopicPartition(topic_name, 0)
    specs = {"earliest": (OffsetSpec.earliest(), 0), "latest": (OffsetSpec.latest(), 4),
             "max": (OffsetSpec.max_timestamp(), 1), "time": (OffsetSpec.for_timestamp(7_500), 1)}
    for name, (spec, want) in specs.items():
        res = admin.list_offsets({tp: spec}, request_timeout=10)[tp].result(10)
        assert res.offset == want, name
