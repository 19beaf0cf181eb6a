"""Consumer groups with real clients against a real strom server."""

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import create_topic

HERE = Path(__file__).resolve().parent
FAST = {"group.initial.rebalance.delay.ms": "300"}


@pytest.fixture
def gbroker(make_broker):
    return make_broker(FAST).start()


def produce(bootstrap, topic, n, partitions):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=str(i).encode(), partition=i % partitions)
    assert p.flush(30) == 0


def consumer(bootstrap, group, **extra):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    conf.update(extra)
    return Consumer(conf)


def drain(consumers, want, timeout=60, commit=True):
    """Polls the consumers round-robin until `want` messages arrived."""
    got = {id(c): [] for c in consumers}
    deadline = time.time() + timeout
    while sum(len(v) for v in got.values()) < want and time.time() < deadline:
        for c in consumers:
            m = c.poll(0.05)
            if m is None or m.error():
                continue
            got[id(c)].append((m.partition(), m.offset(), int(m.value())))
            if commit:
                c.commit(m, asynchronous=False)
    return [got[id(c)] for c in consumers]


def test_three_members_split_six_partitions_exactly_once(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 6)
    produce(gbroker.bootstrap, topic_name, 600, 6)
    cs = [consumer(gbroker.bootstrap, "split") for _ in range(3)]
    for c in cs:
        c.subscribe([topic_name])
    per = drain(cs, 600)
    values = [v for got in per for _, _, v in got]
    assert sorted(values) == list(range(600)), "every message exactly once across the group"
    # Each partition was read by exactly one member.
    owners = {}
    for idx, got in enumerate(per):
        for part, _, _ in got:
            owners.setdefault(part, set()).add(idx)
    assert all(len(o) == 1 for o in owners.values())
    assert sorted(len(c.assignment()) for c in cs) == [2, 2, 2]
    for c in cs:
        c.close()


def test_killed_member_partitions_move_and_nothing_committed_is_lost(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 6)
    produce(gbroker.bootstrap, topic_name, 900, 6)
    procs = [subprocess.Popen([sys.executable, str(HERE / "group_consumer.py"), gbroker.bootstrap, topic_name, "kill", "--delay", "0.01"],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    lines = [[] for _ in procs]

    def reader(i):
        for line in procs[i].stdout:
            lines[i].append(tuple(int(x) for x in line.split()))

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while time.time() < deadline and not all(len(l) > 20 for l in lines):
        time.sleep(0.1)
    assert all(len(l) > 20 for l in lines), "all three members got partitions"
    procs[0].kill()
    procs[0].wait()
    victim_parts = {p for p, _, _ in lines[0]}
    for p in procs[1:]:
        p.wait(timeout=120)
    for t in threads:
        t.join(10)
    survivors = lines[1] + lines[2]
    # The killed member's partitions were taken over by the others.
    assert victim_parts <= {p for p, _, _ in survivors}
    values = [v for l in lines for _, _, v in l]
    assert set(values) == set(range(900)), "nothing is lost"
    dups = len(values) - len(set(values))
    # Each message is committed right after it is printed: only what the victim
    # printed but had not committed yet can come again, one per partition at most.
    assert dups <= len(victim_parts)
    # The takeover resumed at the victim's committed position, not from the start.
    for part in victim_parts:
        victim_last = max(o for p, o, _ in lines[0] if p == part)
        first_after = min(o for p, o, _ in survivors if p == part)
        assert victim_last <= first_after <= victim_last + 1


def test_two_groups_each_see_everything(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 3)
    produce(gbroker.bootstrap, topic_name, 300, 3)
    a, b = consumer(gbroker.bootstrap, "ga"), consumer(gbroker.bootstrap, "gb")
    a.subscribe([topic_name])
    b.subscribe([topic_name])
    got_a, got_b = drain([a, b], 600)
    assert sorted(v for _, _, v in got_a) == list(range(300))
    assert sorted(v for _, _, v in got_b) == list(range(300))
    a.close()
    b.close()


@pytest.mark.parametrize("hard", [False, True])
def test_committed_offsets_survive_broker_restart(gbroker, topic_name, hard):
    create_topic(gbroker.bootstrap, topic_name, 2)
    produce(gbroker.bootstrap, topic_name, 200, 2)
    c = consumer(gbroker.bootstrap, "restart")
    c.subscribe([topic_name])
    (first,) = drain([c], 100)
    committed = {0: -1001, 1: -1001}  # -1001: nothing committed
    committed.update({p: o + 1 for p, o, _ in first})
    c.close()
    gbroker.restart(hard=hard)
    c = consumer(gbroker.bootstrap, "restart")
    got = c.committed([TopicPartition(topic_name, p) for p in (0, 1)], timeout=10)
    assert {tp.partition: tp.offset for tp in got} == committed
    c.subscribe([topic_name])
    (rest,) = drain([c], 100)
    for p, start in committed.items():
        offs = [o for part, o, _ in rest if part == p]
        if start == 100:
            assert not offs
            continue
        assert offs and offs[0] == max(start, 0), "carries on from the committed offset"
    assert sorted(v for _, _, v in first + rest) == list(range(200))
    c.close()


def test_cooperative_sticky_group(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 4)
    produce(gbroker.bootstrap, topic_name, 400, 4)
    a = consumer(gbroker.bootstrap, "coop", **{"partition.assignment.strategy": "cooperative-sticky"})
    a.subscribe([topic_name])
    (got_a,) = drain([a], 100)
    b = consumer(gbroker.bootstrap, "coop", **{"partition.assignment.strategy": "cooperative-sticky"})
    b.subscribe([topic_name])
    rest_a, got_b = drain([a, b], 300)
    values = [v for _, _, v in got_a + rest_a + got_b]
    assert sorted(set(values)) == list(range(400))
    assert len(a.assignment()) == 2 and len(b.assignment()) == 2
    a.close()
    b.close()


def test_static_member_restart_causes_no_rebalance(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 2)
    produce(gbroker.bootstrap, topic_name, 100, 2)
    events = []
    stable = consumer(gbroker.bootstrap, "static", **{"group.instance.id": "member-a", "session.timeout.ms": 20000})
    stable.subscribe([topic_name], on_assign=lambda c, ps: events.append(("assign", len(ps))), on_revoke=lambda c, ps: events.append(("revoke", len(ps))))
    b = consumer(gbroker.bootstrap, "static", **{"group.instance.id": "member-b", "session.timeout.ms": 20000})
    b.subscribe([topic_name])
    drain([stable, b], 100)
    before = list(events)
    gen_before = re.search(r"STATE (\w+)", gbroker.cli("group", "describe", "static").stdout).group(1)
    assert gen_before == "Stable"
    # member-b restarts within its session timeout (close() of a static member does not leave).
    b.close()
    b = consumer(gbroker.bootstrap, "static", **{"group.instance.id": "member-b", "session.timeout.ms": 20000})
    b.subscribe([topic_name])
    produce(gbroker.bootstrap, topic_name, 100, 2)
    drain([stable, b], 100)
    assert events == before, f"the other member saw a rebalance: {events}"
    assert len(b.assignment()) == 1
    stable.close()
    b.close()


def test_kafka_python_group(gbroker, topic_name):
    from kafka import KafkaConsumer

    create_topic(gbroker.bootstrap, topic_name, 4)
    produce(gbroker.bootstrap, topic_name, 200, 4)
    cs = [KafkaConsumer(topic_name, bootstrap_servers=gbroker.bootstrap, group_id="kp", auto_offset_reset="earliest",
                        enable_auto_commit=False) for _ in range(2)]
    seen = []
    deadline = time.time() + 60
    while len(seen) < 200 and time.time() < deadline:
        for c in cs:
            for msgs in c.poll(timeout_ms=200).values():
                seen.extend(int(m.value) for m in msgs)
            c.commit()
    assert sorted(seen) == list(range(200))
    assert sorted(len(c.assignment()) for c in cs) == [2, 2]
    offsets = cs[0].committed(next(iter(cs[0].assignment())))
    assert offsets == 50
    for c in cs:
        c.close()


def test_aiokafka_group(gbroker, topic_name):
    from aiokafka import AIOKafkaConsumer

    create_topic(gbroker.bootstrap, topic_name, 2)
    produce(gbroker.bootstrap, topic_name, 100, 2)

    async def go():
        c = AIOKafkaConsumer(topic_name, bootstrap_servers=gbroker.bootstrap, group_id="aio", auto_offset_reset="earliest",
                             enable_auto_commit=False)
        await c.start()
        seen = []
        try:
            while len(seen) < 100:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=500), 30)
                for msgs in batch.values():
                    seen.extend(int(m.value) for m in msgs)
                await c.commit()
        finally:
            await c.stop()
        return seen

    assert sorted(asyncio.run(go())) == list(range(100))
    c = consumer(gbroker.bootstrap, "aio")
    got = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
    assert [tp.offset for tp in got] == [50, 50]
    c.close()


def test_kafkajs_group(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 3)
    produce(gbroker.bootstrap, topic_name, 150, 3)
    out = subprocess.run(["node", str(HERE / "js" / "group.js"), gbroker.bootstrap, topic_name, "kjs", "150"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert sorted(int(m["value"]) for m in seen) == list(range(150))


def test_cli_describe_shows_lag_and_reset_offsets(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 2)
    produce(gbroker.bootstrap, topic_name, 200, 2)
    c = consumer(gbroker.bootstrap, "lag")
    c.assign([TopicPartition(topic_name, 0, 0), TopicPartition(topic_name, 1, 0)])
    c.commit(offsets=[TopicPartition(topic_name, 0, 40), TopicPartition(topic_name, 1, 75)], asynchronous=False)
    c.close()
    out = gbroker.cli("group", "describe", "lag")
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == topic_name:
            rows[int(f[1])] = (int(f[2]), int(f[3]), int(f[4]))
    # lag = log end offset - committed offset
    assert rows == {0: (40, 100, 60), 1: (75, 100, 25)}
    assert "lag\tEmpty" in gbroker.cli("group", "list").stdout
    # Dry run changes nothing; --execute does.
    out = gbroker.cli("group", "reset-offsets", "lag", "--topic", topic_name, "--to-earliest")
    assert out.returncode == 0 and "Dry run" in out.stdout
    assert "60" in gbroker.cli("group", "describe", "lag").stdout
    for args, want in [(["--to-offset", "10"], {0: 10, 1: 10}), (["--shift-by", "5"], {0: 15, 1: 15}),
                       (["--to-latest"], {0: 100, 1: 100}), (["--shift-by", "-30"], {0: 70, 1: 70}),
                       (["--to-datetime", "1970-01-01T00:00:00Z"], {0: 0, 1: 0})]:
        out = gbroker.cli("group", "reset-offsets", "lag", "--topic", topic_name, *args, "--execute")
        assert out.returncode == 0, out.stderr
        c = consumer(gbroker.bootstrap, "lag")
        got = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
        c.close()
        assert {tp.partition: tp.offset for tp in got} == want, args
    # Refused while the group has active members.
    active = consumer(gbroker.bootstrap, "lag")
    active.subscribe([topic_name])
    drain([active], 10, commit=False)
    out = gbroker.cli("group", "reset-offsets", "lag", "--topic", topic_name, "--to-earliest", "--execute")
    assert out.returncode != 0 and "inactive" in out.stderr
    out = gbroker.cli("group", "delete", "lag")
    assert out.returncode != 0 and "NON_EMPTY_GROUP" in out.stderr
    active.close()
    deadline = time.time() + 20
    while time.time() < deadline and "Empty" not in gbroker.cli("group", "list").stdout:
        time.sleep(0.2)
    out = gbroker.cli("group", "delete", "lag")
    assert out.returncode == 0, out.stderr
    assert "lag" not in gbroker.cli("group", "list").stdout.split()
    # Its offsets went with it (applied once the tombstones were durable).
    c = consumer(gbroker.bootstrap, "lag")
    got = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
    c.close()
    assert [tp.offset for tp in got] == [-1001, -1001]


def test_pipelined_async_commits_land_in_order(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 1)
    produce(gbroker.bootstrap, topic_name, 2000, 1)
    c = consumer(gbroker.bootstrap, "async-commits")
    c.assign([TopicPartition(topic_name, 0, 0)])
    n = 0
    deadline = time.time() + 60
    while n < 2000 and time.time() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        c.commit(m, asynchronous=True)  # many commits in flight on one connection
        n += 1
    assert n == 2000
    committed = -1
    while time.time() < deadline and committed != 2000:
        c.poll(0.1)
        committed = c.committed([TopicPartition(topic_name, 0)], timeout=10)[0].offset
    assert committed == 2000
    c.close()
