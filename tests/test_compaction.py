"""Log compaction with confluent-kafka: keys, updates and tombstones."""

import time

from confluent_kafka import Producer

from conftest import create_topic
from test_confluent import consume_all

CLEANER = {"log.cleaner.backoff.ms": "200"}
TOPIC_CFG = {"cleanup.policy": "compact", "segment.ms": "300", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "2000"}


def produce(bootstrap, records):
    offsets = {}
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})

    def dr(err, msg):
        assert err is None, err
        offsets[msg.offset()] = (msg.key(), msg.value())

    for k, v in records:
        p.produce(TOPIC[0], key=k, value=v, on_delivery=dr)
        p.poll(0)
    assert p.flush(10) == 0
    return offsets


TOPIC = [None]


def snapshot(bootstrap, topic):
    return [(m.offset(), m.key(), m.value()) for m in consume_all(bootstrap, topic, 1)]


def test_compaction_keeps_latest_value_per_key_and_drops_tombstones(make_broker, topic_name):
    b = make_broker(CLEANER).start()
    TOPIC[0] = topic_name
    create_topic(b.bootstrap, topic_name, 1, TOPIC_CFG)
    written = {}
    for rnd in range(10):
        written.update(produce(b.bootstrap, [(f"k{i}".encode(), f"k{i}-{rnd}".encode()) for i in range(20)]))
    written.update(produce(b.bootstrap, [(f"k{i}".encode(), None) for i in range(5)]))  # tombstones
    latest = {}
    for off, (k, v) in sorted(written.items()):
        latest[k] = (off, v)
    time.sleep(0.4)
    produce(b.bootstrap, [(b"roll-1", b"x")])  # the data above is now in closed segments
    want = sorted((off, k, v) for k, (off, v) in latest.items())
    deadline = time.time() + 20
    got = None
    while time.time() < deadline:
        got = [r for r in snapshot(b.bootstrap, topic_name) if r[1] != b"roll-1"]
        if got == want:
            break
        time.sleep(0.3)
    # One latest value per key, at its original offset (offsets keep their gaps).
    assert got == want
    assert "compacted" in b.read_log()
    # Tombstones go after delete.retention.ms, once the cleaner passes again.
    time.sleep(2.2)
    produce(b.bootstrap, [(b"roll-2", b"x")])
    time.sleep(0.4)
    produce(b.bootstrap, [(b"roll-3", b"x")])
    deadline = time.time() + 20
    while time.time() < deadline:
        keys = {r[1] for r in snapshot(b.bootstrap, topic_name)}
        if not any(f"k{i}".encode() in keys for i in range(5)):
            break
        time.sleep(0.3)
    final = snapshot(b.bootstrap, topic_name)
    keys = [r[1] for r in final]
    assert not any(f"k{i}".encode() in keys for i in range(5)), "tombstoned keys are gone"
    for i in range(5, 20):
        k = f"k{i}".encode()
        assert keys.count(k) == 1 and [r[2] for r in final if r[1] == k] == [f"k{i}-9".encode()]
    # Survives a hard restart.
    b.restart(hard=True)
    assert snapshot(b.bootstrap, topic_name) == final


def test_keyless_record_to_compacted_topic_is_rejected(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    errs = []
    p.produce(topic_name, value=b"no key", on_delivery=lambda e, m: errs.append(e))
    p.flush(10)  # a separate batch: the broker refuses a whole batch that has a keyless record
    p.produce(topic_name, key=b"k", value=b"with key", on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs[0] is not None and errs[0].name() == "INVALID_RECORD"
    assert errs[1] is None
