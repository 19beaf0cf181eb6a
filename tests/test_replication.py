"""Replication (Kafka's ISR protocol) under faults, with real clients.

- a leader killed with kill -9 under acks=all loses no acknowledged write;
- a leader cut off by a silent network partition acknowledges no acks=all write,
  and after the partition heals it truncates what it wrote alone;
- a short Jepsen-style schedule of kills, pauses and partitions (tests/jepsen);
- min.insync.replicas refuses acks=all writes when too few replicas are in sync.

The partition tests run each node in its own network namespace (tests/netns.py)
and are skipped where namespaces cannot be made (not root).
"""

import json
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

import jepsen
from jepsen import segments
from jepsen.util import create_topic, drop_admins, fully_replicated, live_brokers, partition_state, wait_for


@pytest.fixture(autouse=True)
def _drop_admins():
    yield
    drop_admins()


def acked(res):
    return [w for w in res["history"]["writes"] if w["status"] == "ok"]


def assert_clean(res, what):
    assert res["ok"], f"{what}:\n{jepsen.summary(res)}\n{json.dumps(res['examples'], default=str)[:4000]}"


def read_all(bootstrap, topic, partition, timeout=30):
    """[(offset, value)] of a partition from offset 0 up to its high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 50, "log_level": 2})
    try:
        tp = TopicPartition(topic, partition)
        hw = wait_for("a high watermark", lambda: c.get_watermark_offsets(tp, timeout=5, cached=False), timeout=timeout)[1]
        out = []
        if hw == 0:
            return out
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    out.append((m.offset(), m.value().decode()))
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"reading {topic}-{partition}: {m.error()}")
            if out and out[-1][0] >= hw - 1:
                return out
        raise AssertionError(f"read {len(out)} records of {topic}-{partition} before the deadline; high watermark {hw}")
    finally:
        c.close()


def produce(bootstrap, topic, partition, values, acks="all", timeout_ms=15000, **conf):
    """Produces `values` and returns [(value, error name or None, offset)] in delivery order."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": False,
                  "max.in.flight.requests.per.connection": 1, "message.timeout.ms": timeout_ms, "linger.ms": 0,
                  "log_level": 2, **conf})
    out = []
    for v in values:
        p.produce(topic, value=v.encode(), partition=partition,
                  on_delivery=lambda err, m: out.append((m.value().decode(), err, m.offset() if err is None else None)))
    left = p.flush(timeout_ms / 1000 + 10)
    assert left == 0, f"{left} messages without a delivery report"
    return out


def replica_batches(cluster, topic, partition, nodes):
    return {n: segments.log_batches(cluster.nodes[n].data_dir, topic, partition) for n in nodes}


def wait_replicas_identical(cluster, topic, partition, nodes, leader, timeout=30):
    def same():
        logs = replica_batches(cluster, topic, partition, nodes)
        diff = segments.compare(logs, reference=leader)
        return ("identical", logs) if diff is None and logs[leader] else (None, diff)

    def check():
        r = same()
        return r if r[0] else None

    try:
        return wait_for(f"replicas {nodes} of {topic}-{partition} to hold the leader {leader}'s batches", check, timeout=timeout)[1]
    except AssertionError:
        raise AssertionError(f"replicas of {topic}-{partition} differ: {same()[1]}") from None


# the checker itself ----------------------------------------------------------------------------


def test_checker_reports_each_anomaly_once():
    def w(value, prod, seq, status="ok", offset=None, t=None):
        t = float(seq) if t is None else t  # sent at t, acknowledged half a second later
        return {"value": value, "producer": prod, "seq": seq, "partition": 0, "status": status, "offset": offset,
                "error": "X" if status == "fail" else None, "t_send": t, "t_done": t + 0.5}

    def r(consumer, gen, index, offset, value):
        return {"consumer": consumer, "gen": gen, "index": index, "partition": 0, "offset": offset, "value": value}

    writes = [w("p0-0", 0, 0, offset=0, t=0), w("p0-1", 0, 1, offset=1, t=1), w("p0-2", 0, 2, offset=2, t=2),
              w("p1-0", 1, 0, offset=3, t=3),
              w("p2-0", 2, 0, offset=7, t=10), w("p2-1", 2, 1, offset=6, t=11),  # p2-1 made after p2-0 was acked
              w("p4-0", 4, 0, offset=10, t=20), w("p4-1", 4, 1, offset=9, t=20.1),  # in flight together: may swap
              w("p3-0", 3, 0, "unknown", t=30), w("p0-9", 0, 9, "fail", t=31)]
    clean = jepsen.check({"writes": writes[:2], "reads": [r("c0", 0, 0, 0, "p0-0")],
                          "final": {"0": [[0, "p0-0"], [1, "p0-1"], [2, "p0-1"]]}})
    assert clean["ok"] and clean["info"]["duplicates"] == 1, clean
    res = jepsen.check({
        "writes": writes,
        "reads": [r("c0", 0, 0, 0, "p0-0"), r("c0", 0, 1, 1, "p0-1"), r("c0", 0, 2, 0, "p0-0"),  # went back
                  r("c1", 0, 0, 1, "p1-0"),  # another value at offset 1
                  r("c1", 0, 1, 11, "p0-9"),  # later truncated
                  r("c1", 1, 2, 0, "p0-0")],  # back after a rebalance: fine
        "final": {"0": [[0, "p0-0"], [1, "p0-1"], [3, "p3-0"], [4, "p1-0"], [5, "p0-1"], [6, "p2-1"], [7, "p2-0"],
                        [8, "zz"], [9, "p4-1"], [10, "p4-0"]]},  # as acknowledged
    })
    assert res["failures"] == {"lost": 1, "inconsistent_offsets": 2, "offset_mismatch": 1, "non_monotonic": 1,
                               "reordered": 2, "dirty_reads": 1, "unexpected": 1}, res
    assert res["examples"]["lost"] == ["p0-2"]
    assert res["info"]["duplicates"] == 1 and res["info"]["recovered"] == 1 and res["info"]["final_gaps"] == 1
    # p4-0/p4-1 were in flight together: a swap there is the client's, reported only as information
    # (as is p2's, which also counts as reordered since p2-1 was made after p2-0 was acknowledged).
    assert res["info"]["seq_inversions"] == 2
    assert [e["produced_after"][0] for e in res["examples"]["reordered"]] == ["p2-1", "p2-1"]
    assert not res["ok"]


# a. ------------------------------------------------------------------------------------------


def test_leader_killed_under_acks_all_loses_no_acknowledged_write(make_cluster):
    c = make_cluster(voters=3)
    # Held 10 s: failover measured 2-7 s here (the survivors fence it after broker.session.timeout.ms,
    # longer when it was the active controller too; then the client refreshes its metadata).
    res = jepsen.run(c, duration=15, partitions=1, producers=2, consumers=1, rate=60, faults=(),
                     schedule=[{"at": 3, "op": "kill", "target": "leader:0", "hold": 10}],
                     recovery=2, message_timeout_ms=30000, healthy_timeout=30, replica_timeout=20)
    print(jepsen.summary(res))
    print(json.dumps([e for e in res["history"]["events"] if e["type"] not in ("start",)], default=str)[:3000])
    faults = [e for e in res["nemesis"] if e["type"] == "fault"]
    assert len(faults) == 1, res["nemesis"]
    killed_at = faults[0]["t"]
    restarted_at = next(e["t"] for e in res["nemesis"] if e["type"] == "recover")
    writes = acked(res)
    during = sorted(w["t_done"] for w in writes if w["t_send"] > killed_at)
    print(f"killed node {faults[0]['node']} at {killed_at}s, restarted at {restarted_at}s; "
          f"first acknowledgement of a write sent after the kill at {during[0] if during else None}s")
    # The load went on: acknowledged before the kill, while the leader was dead, and after it came back.
    assert any(w["t_done"] < killed_at for w in writes), "nothing acknowledged before the kill"
    assert any(killed_at < w["t_send"] and w["t_done"] < restarted_at for w in writes), \
        "no write was acknowledged while the old leader was down (no failover?)"
    assert res["info"]["acked_after_heal"] > 0, "nothing acknowledged after the restart"
    # Every acknowledged write at its offset, in order, once; retry duplicates only at offsets
    # nobody else was acknowledged at; every replica's log identical to the leader's.
    assert_clean(res, "after killing the leader")
    final = dict((o, v) for o, v in res["history"]["final"]["0"])
    acked_offsets = {w["offset"]: w["value"] for w in writes}
    assert all(final.get(w["offset"]) == w["value"] for w in writes)
    assert not [o for o, v in final.items() if acked_offsets.get(o, v) != v]
    # A killed leader resets its connections, so the client retries in order: each producer's
    # acknowledged offsets follow its sequence (a paused or cut-off leader need not give that).
    assert res["info"]["seq_inversions"] == 0, res["examples"]["seq_inversions"]


# b. ------------------------------------------------------------------------------------------

NS_PRODUCER = r"""
import json, sys
from confluent_kafka import Producer
boot, topic, part, acks, prefix, n, timeout_ms = sys.argv[1:8]
p = Producer({"bootstrap.servers": boot, "acks": acks, "enable.idempotence": False,
              "max.in.flight.requests.per.connection": 1, "message.timeout.ms": int(timeout_ms),
              "request.timeout.ms": 2000, "retry.backoff.ms": 200, "linger.ms": 0, "log_level": 2})
out = []
def cb(err, m):
    out.append({"value": m.value().decode(), "error": err.name() if err else None,
                "offset": m.offset() if err is None else None})
for i in range(int(n)):
    p.produce(topic, value=f"{prefix}-{i}".encode(), partition=int(part), on_delivery=cb)
left = p.flush(int(timeout_ms) / 1000 + 10)
print(json.dumps({"results": out, "undelivered": left}))
"""


def test_isolated_leader_acknowledges_no_acks_all_write_and_truncates_after_heal(make_netns_cluster):
    c = make_netns_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_brokers(boot) == [1, 2, 3])
    topic = "split"
    create_topic(boot, topic, partitions=1, rf=3, config={"min.insync.replicas": "2"})
    st = wait_for("the partition fully replicated", lambda: fully_replicated(boot, topic, 1))
    old = st[0]["leader"]
    others = [i for i in (1, 2, 3) if i != old]
    before = produce(boot, topic, 0, [f"before-{i}" for i in range(20)])
    assert all(err is None for _, err, _ in before), before
    wait_replicas_identical(c, topic, 0, [1, 2, 3], old)

    # Cut the leader off from everyone. Clients inside its namespace still reach it.
    c.isolate(old)
    node = c.nodes[old]
    ns_producers = {
        acks: subprocess.Popen(["ip", "netns", "exec", node.ns, sys.executable, "-c", NS_PRODUCER, node.bootstrap, topic, "0",
                                acks, f"iso-{acks}", "10", "6000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for acks in ("all", "1")
    }
    # The rest elect a new leader and take acks=all writes.
    rest = c.bootstrap(exclude=(old,))
    new = wait_for("a new leader among the others",
                   lambda: (s := partition_state(rest, topic, timeout=3)[0])["leader"] in others and s["leader"], timeout=30)
    after = produce(rest, topic, 0, [f"after-{i}" for i in range(20)])
    assert all(err is None for _, err, _ in after), after

    outcome = {}
    for acks, proc in ns_producers.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        outcome[acks] = json.loads(out.strip().splitlines()[-1])
    # The old leader cannot have acks=all writes acknowledged: its followers are gone.
    ok_all = [r for r in outcome["all"]["results"] if r["error"] is None]
    assert not ok_all, f"the isolated old leader acknowledged acks=all writes: {ok_all}"
    ok_one = [r for r in outcome["1"]["results"] if r["error"] is None]
    print(f"old leader {old}, new leader {new}; acks=1 acknowledged in isolation: {len(ok_one)}; "
          f"acks=all errors: {sorted({r['error'] for r in outcome['all']['results']})}")

    # What the old leader wrote alone is its divergent tail (Kafka appends before waiting for acks=all).
    tail = [(o, v) for o, v in segments.log_records(node.data_dir, topic, 0) if v.startswith("iso-")]
    assert tail, "the isolated leader appended nothing, so there is no divergent tail to truncate"

    c.heal(old)
    # It rejoins as a follower, truncates to the new leader's log and catches up.
    wait_for(f"broker {old} back in the ISR", lambda: old in partition_state(boot, topic, timeout=3)[0]["isr"]
             and partition_state(boot, topic, timeout=3)[0]["leader"] == new, timeout=45)
    wait_replicas_identical(c, topic, 0, [1, 2, 3], new)
    for n in (1, 2, 3):
        left = [(o, v) for o, v in segments.log_records(c.nodes[n].data_dir, topic, 0) if v.startswith("iso-")]
        assert not left, f"node {n} still holds records written by the isolated leader: {left[:5]}"
    log = read_all(boot, topic, 0)
    at = dict(log)
    for v, _, o in before + after:
        assert at.get(o) == v, f"{v} acknowledged at offset {o}, found {at.get(o)!r}"
    assert not [v for _, v in log if v.startswith("iso-")]


# c. ------------------------------------------------------------------------------------------


def test_jepsen_queue_under_kills_pauses_and_partitions(make_netns_cluster):
    c = make_netns_cluster(voters=3, settings={"offsets.topic.replication.factor": "3"})
    res = jepsen.run(c, duration=25, seed=7, partitions=3, producers=3, consumers=3, consumer_mode="mixed", rate=30,
                     faults=("kill", "pause", "isolate"), hold=(2.0, 4.0), quiet=(0.5, 1.5), recovery=3,
                     message_timeout_ms=30000, healthy_timeout=25, replica_timeout=20)
    print(jepsen.summary(res))
    print(json.dumps(res["nemesis"]))
    assert res["info"]["faults"] >= 3, res["nemesis"]
    assert res["info"]["acked_after_heal"] > 0, "the cluster took no write after everything healed"
    assert_clean(res, "jepsen queue")


# d. ------------------------------------------------------------------------------------------


def test_min_insync_replicas_refuses_acks_all_but_not_acks_1(make_cluster):
    # Three voters plus two broker-only nodes, so the controller quorum survives losing 4 and 5.
    c = make_cluster(voters=3, extra_brokers=2)
    boot = c.bootstrap()
    wait_for("5 live brokers", lambda: live_brokers(boot) == [1, 2, 3, 4, 5])
    topic = "min-isr"
    create_topic(boot, topic, config={"min.insync.replicas": "2"}, assignment=[[1, 4, 5]])
    wait_for("the partition fully replicated", lambda: fully_replicated(boot, topic, 1))
    first = produce(boot, topic, 0, ["all-ok-0"])
    assert first[0][1] is None, first

    c.nodes[4].kill9()
    c.nodes[5].kill9()
    rest = c.bootstrap(exclude=(4, 5))
    wait_for("the ISR to shrink to the leader", lambda: partition_state(rest, topic, timeout=3)[0]["isr"] == [1], timeout=30)

    refused = produce(rest, topic, 0, ["all-refused"], acks="all", timeout_ms=5000, retries=0)
    err = refused[0][1]
    assert err is not None, f"acks=all was acknowledged with one replica in sync: {refused}"
    assert err.name() == "NOT_ENOUGH_REPLICAS", err
    # With retries, librdkafka treats it as retriable: it retries until message.timeout.ms.
    started = time.monotonic()
    retried = produce(rest, topic, 0, ["all-retried"], acks="all", timeout_ms=3000, **{"retry.backoff.ms": 100})
    assert retried[0][1] is not None and time.monotonic() - started >= 2.5, retried
    print(f"acks=all with retries: {retried[0][1]}")
    alone = produce(rest, topic, 0, ["one-ok"], acks="1", timeout_ms=5000, retries=0)
    assert alone[0][1] is None, alone

    # Back to three in sync: acks=all works again and the followers catch up on what was written alone.
    c.nodes[4].start()
    c.nodes[5].start()
    wait_for("the ISR whole again", lambda: fully_replicated(boot, topic, 1), timeout=45)
    again = produce(boot, topic, 0, ["all-ok-1"])
    assert again[0][1] is None, again
    wait_replicas_identical(c, topic, 0, [1, 4, 5], 1)
    log = read_all(boot, topic, 0)
    assert [v for _, v in log] == ["all-ok-0", "one-ok", "all-ok-1"], log
