"""The idempotent producer, with real clients, through responses lost on the way back.

A proxy (tests/proxy.py) sits between the client and the broker and resets the
client's connection right after the broker answered some Produce requests, so
the client retries batches the broker already appended:

- confluent-kafka (librdkafka) and kafkajs with idempotence on end with every
  message exactly once, in order, at the offsets their delivery reports gave;
- with idempotence off (acks=all, retries on) the same cuts do store duplicates,
  which shows the proxy really makes clients retry applied requests;
- DescribeProducers (kafka-python's admin client) and `strom producers` show the
  producer's id, epoch and last sequence per partition.
"""

import json
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer

from conftest import Broker, create_topic
from eos import read_topic
from proxy import KafkaProxy

JS = Path(__file__).resolve().parent / "js"
PARTITIONS = 3


@pytest.fixture
def proxied(tmp_path):
    """(broker, proxy): a broker that advertises the proxy's address, so clients that
    bootstrap through the proxy keep using it. The proxy cuts nothing until told."""
    proxy = KafkaProxy()
    b = Broker(str(tmp_path / "data"), {"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"}).start()
    proxy.start(b.port)
    yield b, proxy
    proxy.stop()
    b.stop()


def produce_through(bootstrap, topic, n, **conf):
    """Produces m-0..m-(n-1), value i to partition i % PARTITIONS; returns {value: (error, offset)}."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10,
                  "message.timeout.ms": 60000, "request.timeout.ms": 10000, "retry.backoff.ms": 20,
                  "retry.backoff.max.ms": 200, "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100,
                  "log_level": 2, **conf})
    reports = {}

    def report(err, m):
        reports[m.value().decode()] = (err, m.offset() if err is None else None)

    for i in range(n):
        p.produce(topic, value=f"m-{i}".encode(), partition=i % PARTITIONS, on_delivery=report)
        if i % 50 == 0:
            p.poll(0)
    left = p.flush(90)
    assert left == 0, f"{left} messages without a delivery report"
    return reports


def expected(n, partition):
    return [f"m-{i}" for i in range(partition, n, PARTITIONS)]


def assert_exactly_once_in_order(log, n, offsets):
    """Each partition holds exactly its values, once each, in production order, at the offsets
    the producer was told."""
    for p in range(PARTITIONS):
        values = [v for _, v in log[p]]
        want = expected(n, p)
        dups = len(values) - len(set(values))
        missing = sorted(set(want) - set(values))
        assert not dups and not missing, f"partition {p}: {dups} duplicates, missing {missing[:10]}"
        assert values == want, f"partition {p} out of order: {values[:20]}"
        at = {v: o for o, v in log[p]}
        wrong = [(v, offsets[v], at[v]) for v in want if offsets.get(v) is not None and offsets[v] != at[v]]
        assert not wrong, f"partition {p}: reported offset differs from the log (value, told, found): {wrong[:10]}"


def test_confluent_idempotent_producer_exactly_once_through_lost_responses(proxied, topic_name):
    broker, proxy = proxied
    create_topic(broker.bootstrap, topic_name, partitions=PARTITIONS)
    proxy.cut_every = 5
    n = 3000
    reports = produce_through(proxy.bootstrap, topic_name, n, **{"enable.idempotence": True, "acks": "all"})
    stats = proxy.stats()
    print(f"proxy: {stats}")
    errors = {v: e for v, (e, _) in reports.items() if e is not None}
    assert not errors, f"{len(errors)} delivery errors, e.g. {list(errors.items())[:5]}"
    assert stats["cuts"] >= 10, f"the proxy cut too few produces to test anything: {stats}"
    log = read_topic(broker.bootstrap, topic_name, PARTITIONS)
    assert_exactly_once_in_order(log, n, {v: o for v, (_, o) in reports.items()})


def test_kafkajs_idempotent_producer_exactly_once_through_lost_responses(proxied, topic_name):
    broker, proxy = proxied
    create_topic(broker.bootstrap, topic_name, partitions=PARTITIONS)
    proxy.cut_every = 3
    n, per_send = 900, 30
    out = subprocess.run(["node", str(JS / "idempotent.js"), proxy.bootstrap, topic_name, str(n), str(PARTITIONS),
                          str(per_send)], capture_output=True, text=True, timeout=180)
    stats = proxy.stats()
    print(f"proxy: {stats}")
    assert out.returncode == 0, out.stderr[-3000:]
    sends = json.loads(out.stdout)
    assert stats["cuts"] >= 5, f"the proxy cut too few produces to test anything: {stats}"
    # Offsets kafkajs was told: each send's messages of a partition start at its base offset.
    offsets = {}
    for k, parts in enumerate(sends):
        base = {r["partition"]: int(r["baseOffset"]) for r in parts}
        assert all(r["errorCode"] == 0 for r in parts), parts
        for p in range(PARTITIONS):
            values = [f"m-{i}" for i in range(k * per_send, min((k + 1) * per_send, n)) if i % PARTITIONS == p]
            for j, v in enumerate(values):
                offsets[v] = base[p] + j
    log = read_topic(broker.bootstrap, topic_name, PARTITIONS)
    assert_exactly_once_in_order(log, n, offsets)


def test_without_idempotence_the_same_cuts_store_duplicates(proxied, topic_name):
    """The control: the proxy makes clients resend applied batches, and only idempotence
    stops them being stored twice."""
    broker, proxy = proxied
    create_topic(broker.bootstrap, topic_name, partitions=PARTITIONS)
    proxy.cut_every = 5
    n = 1500
    reports = produce_through(proxy.bootstrap, topic_name, n, **{"enable.idempotence": False, "acks": "all",
                                                               "retries": 1000, "max.in.flight.requests.per.connection": 1})
    stats = proxy.stats()
    print(f"proxy: {stats}")
    assert stats["cuts"] >= 5, stats
    assert not [v for v, (e, _) in reports.items() if e is not None]
    log = read_topic(broker.bootstrap, topic_name, PARTITIONS)
    values = [v for p in range(PARTITIONS) for _, v in log[p]]
    assert set(values) == {f"m-{i}" for i in range(n)}, "lost messages"
    duplicates = len(values) - len(set(values))
    print(f"{duplicates} duplicate records from {stats['cuts']} cuts")
    assert duplicates > 0, "no duplicates without idempotence: the proxy did not make the client resend applied batches"


def test_describe_producers_shows_the_idempotent_producer(broker, topic_name):
    from kafka import KafkaAdminClient, TopicPartition as KTopicPartition

    create_topic(broker.bootstrap, topic_name, partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 5, "log_level": 2})
    counts = {0: 50, 1: 30}
    for part, count in counts.items():
        for i in range(count):
            p.produce(topic_name, value=f"v{i}".encode(), partition=part)
    assert p.flush(30) == 0
    # A plain producer has no producer id and is not listed.
    plain = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False, "log_level": 2})
    plain.produce(topic_name, value=b"plain", partition=0)
    assert plain.flush(30) == 0

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        got = admin.describe_producers([KTopicPartition(topic_name, part) for part in counts])
    finally:
        admin.close()
    ids = set()
    for part, count in counts.items():
        active = got[KTopicPartition(topic_name, part)].active_producers
        assert len(active) == 1, f"partition {part}: {active}"
        st = active[0]
        assert st.producer_id >= 0 and st.producer_epoch >= 0, st
        # librdkafka numbers each partition's records from 0.
        assert st.last_sequence == count - 1, st
        assert st.last_timestamp > 0, st
        assert st.current_transaction_start_offset == -1, st  # not transactional
        ids.add(st.producer_id)
    assert len(ids) == 1, ids

    out = broker.cli("producers", topic_name)
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    # PARTITION PRODUCER_ID EPOCH LAST_SEQUENCE ...
    rows = sorted((r[0], r[1], r[3]) for r in (line.split() for line in out.stdout.splitlines()[1:]) if len(r) > 3)
    pid = str(ids.pop())
    assert rows == [("0", pid, "49"), ("1", pid, "29")], out.stdout


def test_proxy_reads_acks_of_produce_requests():
    """The proxy leaves acks=0 produces alone (no response to lose), so it must find acks in both
    header layouts: v3-v8 (strings with an i16 length) and v9+ (tagged fields, compact strings)."""
    import struct

    from proxy import parse_request

    def frame(version, body):
        head = struct.pack(">hhih", 0, version, 42, 3) + b"cli"
        return struct.pack(">i", len(head) + len(body)) + head + body

    old = frame(7, struct.pack(">h", 4) + b"txn1" + struct.pack(">hi", -1, 30000))
    assert parse_request(old) == (0, 7, 42, -1)
    old_null = frame(3, struct.pack(">hhi", -1, 0, 30000))
    assert parse_request(old_null) == (0, 3, 42, 0)
    flexible = frame(10, bytes([1, 0, 2, 0xAA, 0xBB]) + bytes([5]) + b"txn1" + struct.pack(">hi", 1, 30000))
    assert parse_request(flexible) == (0, 10, 42, 1)
    fetch = struct.pack(">ihhih", 10, 1, 12, 7, -1)
    assert parse_request(fetch) == (1, 12, 7, None)
