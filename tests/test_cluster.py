"""A Strom cluster: real `strom server` processes on loopback, driven by real clients.

Three voters form a Raft metadata quorum (openraft); brokers register and
heartbeat; topics spread over brokers; the controller and brokers fail over.
"""

import re
import signal
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import STROM, Broker


_ADMINS = []


@pytest.fixture(autouse=True)
def _drop_admins():
    yield
    _ADMINS.clear()


def admin(bootstrap):
    # Kept alive: futures of a collected AdminClient fail with _DESTROY.
    a = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
    _ADMINS.append(a)
    return a


def metadata(bootstrap, topic=None):
    return admin(bootstrap).list_topics(topic=topic, timeout=10)


def wait_for(what, check, timeout=30):
    """Polls `check` until it returns something truthy; fails naming `what`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a node that is still starting or just died
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: last saw {last!r}")


def create(bootstrap, name, partitions=1, rf=1, config=None, timeout=30):
    fut = admin(bootstrap).create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config or {})],
                                        request_timeout=timeout)
    fut[name].result(timeout=timeout)


def live_broker_ids(bootstrap):
    return sorted(metadata(bootstrap).brokers)


def leaders(bootstrap, topic):
    md = metadata(bootstrap, topic)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def cli(node, *args, timeout=30):
    return node.cli(*args, timeout=timeout)


def test_three_nodes_form_a_cluster_every_node_answers(make_cluster):
    c = make_cluster(voters=3)
    for b in c.brokers:
        wait_for(f"node {b.node_id} to list 3 brokers", lambda b=b: live_broker_ids(b.bootstrap) == [1, 2, 3])
    ids = {metadata(b.bootstrap).cluster_id for b in c.brokers}
    assert len(ids) == 1 and None not in ids
    cluster_id = ids.pop()
    # Every data directory records the cluster id the quorum wrote.
    for b in c.nodes.values():
        props = (c.root / f"node{b.node_id}" / "meta.properties").read_text()
        assert f"cluster.id={cluster_id}" in props and f"node.id={b.node_id}" in props
    desc = admin(c.brokers[1].bootstrap).describe_cluster(request_timeout=10).result(timeout=10)
    assert sorted(n.id for n in desc.nodes) == [1, 2, 3]
    assert desc.cluster_id == cluster_id
    assert desc.controller is not None and desc.controller.id in (1, 2, 3)
    # strom cluster info / quorum
    info = cli(c.brokers[0], "cluster", "info")
    assert info.returncode == 0, info.stderr
    assert cluster_id in info.stdout
    for i in (1, 2, 3):
        assert re.search(rf"^\s*{i}\s.*127\.0\.0\.1:\d+", info.stdout, re.M), info.stdout
    q = cli(c.brokers[2], "cluster", "quorum")
    assert q.returncode == 0, q.stderr
    assert re.search(r"leader\s*:?\s*[123]", q.stdout, re.I), q.stdout
    for i in (1, 2, 3):
        assert re.search(rf"^\s*{i}\s", q.stdout, re.M), q.stdout


def test_rf3_topic_spreads_leaders_and_any_node_serves_clients(make_cluster):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    create(boot, "spread", partitions=6, rf=3)
    md = metadata(c.brokers[2].bootstrap, "spread").topics["spread"]
    assert len(md.partitions) == 6
    for p in md.partitions.values():
        assert sorted(p.replicas) == [1, 2, 3]
        assert sorted(p.isrs) == [1, 2, 3]
        assert p.leader == p.replicas[0]
    per_leader = {}
    for p in md.partitions.values():
        per_leader[p.leader] = per_leader.get(p.leader, 0) + 1
    assert per_leader == {1: 2, 2: 2, 3: 2}
    # RF above the live brokers is refused with Kafka's error.
    fut = admin(boot).create_topics([NewTopic("too-many", num_partitions=1, replication_factor=4)])
    with pytest.raises(KafkaException) as e:
        fut["too-many"].result(timeout=30)
    assert "INVALID_REPLICATION_FACTOR" in str(e.value)
    # A client bootstrapped from one node produces to every leader and reads back.
    p = Producer({"bootstrap.servers": c.brokers[0].bootstrap, "acks": "all"})
    for i in range(60):
        p.produce("spread", key=str(i).encode(), value=f"v{i}".encode(), partition=i % 6)
    assert p.flush(30) == 0
    cons = Consumer({"bootstrap.servers": c.brokers[1].bootstrap, "group.id": "g-spread", "auto.offset.reset": "earliest"})
    cons.subscribe(["spread"])
    got = set()
    deadline = time.time() + 60
    while len(got) < 60 and time.time() < deadline:
        m = cons.poll(0.5)
        if m is not None and m.error() is None:
            got.add(m.value())
    cons.close()
    assert got == {f"v{i}".encode() for i in range(60)}


def active_controller(c):
    q = cli(c.brokers[0], "cluster", "quorum")
    m = re.search(r"leader\s*:?\s*(\d+)", q.stdout, re.I)
    assert m, q.stdout + q.stderr
    return int(m.group(1))


def test_controller_killed_the_quorum_goes_on_and_one_of_three_refuses(make_cluster):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    create(boot, "before", partitions=3, rf=1)
    leader = active_controller(c)
    c.nodes[leader].kill9()
    rest = [i for i in (1, 2, 3) if i != leader]
    boot2 = c.bootstrap(exclude=(leader,))
    started = time.time()
    create(boot2, "after-kill", partitions=3, rf=2, timeout=30)
    took = time.time() - started
    print(f"CreateTopics after killing controller {leader} took {took:.2f}s")
    new_leader = wait_for("a new controller", lambda: (n := active_controller_from(c.nodes[rest[0]])) in rest and n)
    assert new_leader != leader
    # The killed node's broker is fenced and leaves Metadata.
    wait_for(f"broker {leader} to leave Metadata", lambda: live_broker_ids(boot2) == rest)
    # One of three: refused with a retriable error, not a hang.
    c.nodes[rest[1]].kill9()
    fut = admin(c.nodes[rest[0]].bootstrap).create_topics([NewTopic("lonely", num_partitions=1, replication_factor=1)], request_timeout=15)
    started = time.time()
    with pytest.raises(KafkaException) as e:
        fut["lonely"].result(timeout=40)
    assert time.time() - started < 40
    err = e.value.args[0]
    assert err.retriable() or err.name() in ("REQUEST_TIMED_OUT", "NOT_CONTROLLER", "_TIMED_OUT"), err
    # Bring both back: the quorum heals and the topic made meanwhile is everywhere.
    c.nodes[leader].start()
    c.nodes[rest[1]].start()
    wait_for("3 live brokers again", lambda: live_broker_ids(c.bootstrap()) == [1, 2, 3], timeout=60)
    for b in c.brokers:
        wait_for(f"node {b.node_id} to know after-kill", lambda b=b: "after-kill" in metadata(b.bootstrap).topics)


def active_controller_from(node):
    q = node.cli("cluster", "quorum", timeout=15)
    m = re.search(r"leader\s*:?\s*(\d+)", q.stdout, re.I)
    return int(m.group(1)) if m else None


def test_silent_broker_is_fenced_and_its_leaderships_move(make_cluster):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    create(boot, "fence", partitions=3, rf=3)
    victim = c.nodes[3]
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        others = c.bootstrap(exclude=(3,))
        wait_for("broker 3 to be fenced out of Metadata", lambda: live_broker_ids(others) == [1, 2])
        wait_for("no partition led by 3", lambda: 3 not in leaders(others, "fence").values() and -1 not in leaders(others, "fence").values())
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    # Once it heartbeats again it is unfenced and listed again.
    wait_for("broker 3 back", lambda: live_broker_ids(boot) == [1, 2, 3])


def test_sigterm_is_a_controlled_shutdown(make_cluster):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    create(boot, "moving", partitions=6, rf=3)
    assert 2 in leaders(boot, "moving").values()
    node = c.nodes[2]
    node.stop()  # SIGTERM, waits for exit
    log = node.read_log()
    assert "controlled shutdown: leadership moved" in log, log[-3000:]
    others = c.bootstrap(exclude=(2,))
    # Right after exit, nothing is led by 2 (moved before the process exited, not by fencing later).
    after = leaders(others, "moving")
    assert 2 not in after.values() and -1 not in after.values(), after
    assert 2 not in live_broker_ids(others)


def test_restarted_node_catches_up_on_metadata(make_cluster):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    node = c.nodes[3]
    node.kill9()
    others = c.bootstrap(exclude=(3,))
    names = [f"while-down-{i}" for i in range(3)]
    for n in names:
        create(others, n, partitions=2, rf=2)
    admin(others).delete_topics(["while-down-0"], request_timeout=20)["while-down-0"].result(timeout=30)
    node.start()
    wait_for("node 3 to know the new topics", lambda: {"while-down-1", "while-down-2"} <= set(metadata(node.bootstrap).topics)
             and "while-down-0" not in metadata(node.bootstrap).topics)
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    # Its logs match what it hosts now.
    hosted = {d.name for d in (c.root / "node3").iterdir() if d.is_dir() and d.name.startswith("while-down")}
    md = metadata(boot)
    want = {f"{t}-{p.id}" for t in ("while-down-1", "while-down-2") for p in md.topics[t].partitions.values() if 3 in p.replicas}
    assert want <= hosted and not any(h.startswith("while-down-0") for h in hosted), (want, hosted)


def test_coordinator_is_the_offsets_partition_leader(make_cluster):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    create(boot, "gtopic", partitions=3, rf=1)
    p = Producer({"bootstrap.servers": boot})
    for i in range(30):
        p.produce("gtopic", value=f"m{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0
    group = f"g-{uuid.uuid4().hex[:6]}"
    cons = Consumer({"bootstrap.servers": boot, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.subscribe(["gtopic"])
    n = 0
    deadline = time.time() + 60
    while n < 30 and time.time() < deadline:
        m = cons.poll(0.5)
        if m is not None and m.error() is None:
            n += 1
    assert n == 30
    cons.commit(asynchronous=False)
    cons.close()
    out = cli(c.brokers[0], "group", "describe", group)
    md = metadata(boot, "__consumer_offsets").topics["__consumer_offsets"]
    assert len(md.partitions) == 6
    # FindCoordinator answers the leader of the group's offsets partition, from any node.
    coord = find_coordinator(boot, group)
    part = java_hash_partition(group, 6)
    assert coord == md.partitions[part].leader
    # Stop the coordinator: its partition has one replica, so it goes offline, then comes back
    # with the node, which loads the group by replaying the partition.
    node = c.nodes[coord]
    node.stop()
    node.start()
    wait_for("the coordinator back", lambda: find_coordinator(boot, group) == coord)
    cons = Consumer({"bootstrap.servers": boot, "group.id": group, "enable.auto.commit": False})
    committed = wait_for("committed offsets", lambda: cons.committed([TopicPartition("gtopic", i) for i in range(3)], timeout=10))
    cons.close()
    assert sum(tp.offset for tp in committed) == 30, committed


def find_coordinator(bootstrap, group):
    desc = admin(bootstrap).describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    return desc.coordinator.id


def java_hash_partition(s, n):
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return abs(h) % n if h != -(1 << 31) else 0


def test_dedicated_controllers_and_broker_only_nodes(make_cluster):
    c = make_cluster(voters=3, extra_brokers=2, dedicated_controllers=True, settings={"default.replication.factor": "2"})
    boot = c.bootstrap()
    assert [b.node_id for b in c.brokers] == [4, 5]
    wait_for("brokers 4 and 5", lambda: live_broker_ids(boot) == [4, 5])
    create(boot, "on-brokers", partitions=4, rf=-1)
    md = metadata(boot, "on-brokers").topics["on-brokers"]
    assert all(sorted(p.replicas) == [4, 5] for p in md.partitions.values())
    p = Producer({"bootstrap.servers": boot})
    for i in range(20):
        p.produce("on-brokers", value=b"x", partition=i % 4)
    assert p.flush(30) == 0


def test_racks_and_wrong_cluster_id(make_cluster, tmp_path):
    c = make_cluster(voters=3, racks=["r1", "r2", "r3"])
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_broker_ids(boot) == [1, 2, 3])
    md = metadata(boot)
    assert sorted(b.id for b in md.brokers.values()) == [1, 2, 3]
    desc = admin(boot).describe_cluster(request_timeout=10).result(timeout=10)
    assert sorted((n.id, n.rack) for n in desc.nodes) == [(1, "r1"), (2, "r2"), (3, "r3")]
    # A node whose meta.properties names another cluster refuses to start, naming both ids.
    node = c.nodes[2]
    node.kill9()
    props = c.root / "node2" / "meta.properties"
    real = re.search(r"cluster.id=(\S+)", props.read_text()).group(1)
    props.write_text(props.read_text().replace(real, "SomeOtherClusterId00000"))
    node.start_async()
    rc = node.proc.wait(timeout=30)
    assert rc != 0
    log = node.read_log()
    assert "SomeOtherClusterId00000" in log and real in log, log[-2000:]
