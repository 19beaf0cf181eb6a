"""Replication admin APIs on a 3-node cluster, driven by real clients.

DescribeTopicPartitions (KIP-966), OffsetForLeaderEpoch (KIP-320), ElectLeaders,
AlterPartitionReassignments and ListPartitionReassignments through kafka-python's
admin client and librdkafka; `strom topic describe` and `strom cluster
health | reassign | elect-leaders`. What the APIs answer is tested here; moving
data between replicas is tested with replication itself.
"""

import json
import re
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, TopicPartition as KTP
from kafka.protocol.consumer import OffsetForLeaderEpochRequest

from conftest import Cluster

UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
INVALID_REQUEST = 42
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
ELECTION_NOT_NEEDED = 84
NO_REASSIGNMENT_IN_PROGRESS = 85


def wait_for(what, check, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a node still starting or just gone
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: last saw {last!r}")


_ADMINS = []


def cadmin(bootstrap):
    a = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
    _ADMINS.append(a)
    return a


def create(bootstrap, name, partitions=1, rf=1, config=None, assignment=None):
    t = NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config or {}) if assignment is None \
        else NewTopic(name, num_partitions=len(assignment), replica_assignment=assignment, config=config or {})
    cadmin(bootstrap).create_topics([t], request_timeout=30)[name].result(timeout=30)


def live_brokers(bootstrap):
    return sorted(cadmin(bootstrap).list_topics(timeout=10).brokers)


def kadmin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("replication-admin"), voters=3).start()
    wait_for("3 live brokers", lambda: live_brokers(c.bootstrap()) == [1, 2, 3])
    yield c
    c.stop()
    _ADMINS.clear()


def by_name(result):
    return {t["name"]: t for t in result["topics"]}


def test_describe_topic_partitions_pages_and_matches_metadata(cluster):
    boot = cluster.bootstrap()
    create(boot, "dtp-a", partitions=5, rf=3)
    create(boot, "dtp-b", partitions=2, rf=2)
    ka = kadmin(boot)
    try:
        r = ka.describe_topic_partitions(["dtp-b", "nope-missing", "dtp-a", "dtp-b"])
        assert [t["name"] for t in r["topics"]] == ["dtp-a", "dtp-b", "nope-missing"]
        assert r["next_cursor"] is None
        topics = by_name(r)
        assert topics["nope-missing"]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
        md = cadmin(boot).list_topics(timeout=10).topics
        for name, n, rf in (("dtp-a", 5, 3), ("dtp-b", 2, 2)):
            t = topics[name]
            assert t["error_code"] == 0 and not t["is_internal"]
            assert [p["partition_index"] for p in t["partitions"]] == list(range(n))
            for p in t["partitions"]:
                mp = md[name].partitions[p["partition_index"]]
                assert p["error_code"] == 0
                assert p["leader_id"] == mp.leader and p["replica_nodes"] == mp.replicas and p["isr_nodes"] == mp.isrs
                assert len(p["replica_nodes"]) == rf and p["leader_id"] in p["replica_nodes"]
                assert p["leader_epoch"] >= 0
                assert p["offline_replicas"] == []
        # Paging: three partitions a page, the cursor pointing at the first one left out.
        seen = []
        pages = []
        cursor = None
        while True:
            page = ka.describe_topic_partitions(["dtp-a", "dtp-b"], response_partition_limit=3, cursor=cursor)
            pages.append([(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in page["topics"]])
            seen += [(t["name"], p["partition_index"]) for t in page["topics"] for p in t["partitions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [[("dtp-a", [0, 1, 2])], [("dtp-a", [3, 4]), ("dtp-b", [0])], [("dtp-b", [1])]]
        assert seen == [("dtp-a", i) for i in range(5)] + [("dtp-b", i) for i in range(2)]
        # No topics named: every topic, in name order.
        everything = ka.describe_topic_partitions([])
        names = [t["name"] for t in everything["topics"]]
        assert {"dtp-a", "dtp-b"} <= set(names) and names == sorted(names)
        # A cursor naming a topic that is not asked for is an invalid request.
        bad = ka.describe_topic_partitions(["dtp-a"], cursor={"topic_name": "dtp-b", "partition_index": 0})
        assert [(t["name"], t["error_code"]) for t in bad["topics"]] == [("dtp-a", INVALID_REQUEST)]
    finally:
        ka.close()


def offset_for_leader_epoch(ka, node, topic, partition, current, epoch, replica_id=-1, version=None):
    _Topic = OffsetForLeaderEpochRequest.OffsetForLeaderTopic
    _Partition = _Topic.OffsetForLeaderPartition
    kw = {} if version is None else {"min_version": version, "max_version": version}
    req = OffsetForLeaderEpochRequest(
        replica_id=replica_id,
        topics=[_Topic(topic=topic, partitions=[_Partition(partition=partition, current_leader_epoch=current, leader_epoch=epoch)])],
        **kw,
    )

    async def send():
        return await ka._manager.send(req, node_id=node)

    resp = ka._manager.run(send)
    p = resp.topics[0].partitions[0]
    return p.error_code, p.leader_epoch, p.end_offset


def test_offset_for_leader_epoch_answers_from_the_leader(cluster):
    boot = cluster.bootstrap()
    create(boot, "ofle", partitions=1, rf=3)
    p = Producer({"bootstrap.servers": boot, "acks": "1"})
    for i in range(10):
        p.produce("ofle", value=f"m{i}".encode(), partition=0)
    assert p.flush(30) == 0
    ka = kadmin(boot)
    try:
        part = ka.describe_topic_partitions(["ofle"])["topics"][0]["partitions"][0]
        leader, epoch = part["leader_id"], part["leader_epoch"]
        follower = next(r for r in part["replica_nodes"] if r != leader)
        # The current epoch ends at the log end; consumers, followers and debug tools alike.
        for replica_id in (-1, -2, follower):
            assert offset_for_leader_epoch(ka, leader, "ofle", 0, epoch, epoch, replica_id) == (0, epoch, 10)
        for v in (2, 3, 4):
            assert offset_for_leader_epoch(ka, leader, "ofle", 0, -1, epoch, version=v) == (0, epoch, 10)
        # An epoch the log has not seen yet.
        assert offset_for_leader_epoch(ka, leader, "ofle", 0, epoch, epoch + 1) == (0, -1, -1)
        # The caller's view of the current epoch is checked.
        assert offset_for_leader_epoch(ka, leader, "ofle", 0, epoch + 1, epoch)[0] == UNKNOWN_LEADER_EPOCH
        if epoch > 0:
            assert offset_for_leader_epoch(ka, leader, "ofle", 0, epoch - 1, epoch)[0] == FENCED_LEADER_EPOCH
        # Only the leader answers; unknown partitions are unknown everywhere.
        assert offset_for_leader_epoch(ka, follower, "ofle", 0, epoch, epoch)[0] == NOT_LEADER_OR_FOLLOWER
        assert offset_for_leader_epoch(ka, leader, "ofle", 7, -1, 0)[0] == UNKNOWN_TOPIC_OR_PARTITION
        assert offset_for_leader_epoch(ka, leader, "ofle-missing", 0, -1, 0)[0] == UNKNOWN_TOPIC_OR_PARTITION
    finally:
        ka.close()


def health(node):
    r = node.cli("cluster", "health")
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, r.stdout


def test_topic_describe_and_cluster_health(make_cluster):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_brokers(boot) == [1, 2, 3])
    create(boot, "h-rf3", partitions=2, rf=3)
    create(boot, "h-on3", assignment=[[3]])
    node = c.brokers[0]
    rc, out = wait_for("a healthy cluster", lambda: (r := health(node))[0] == 0 and r)
    assert out.strip().splitlines()[-1].startswith("HEALTHY: 3 partitions in 2 topics; 0 under-replicated, 0 under min ISR, 0 offline")
    d = node.cli("topic", "describe", "h-rf3")
    assert d.returncode == 0, d.stderr
    rows = re.findall(r"Partition: (\d+)\tLeader: (-?\d+)\tLeaderEpoch: (\d+)\tReplicas: \[([\d, ]*)\]\tIsr: \[([\d, ]*)\]\tOffline: \[([\d, ]*)\]",
                      d.stdout)
    assert [r[0] for r in rows] == ["0", "1"], d.stdout
    assert all(r[5] == "" and sorted(map(int, r[3].split(","))) == [1, 2, 3] for r in rows), d.stdout
    # min.insync.replicas above the ISR: under min ISR.
    assert node.cli("config", "set", "--topic", "h-on3", "min.insync.replicas=2").returncode == 0
    rc, out = health(node)
    assert rc == 1 and re.search(r"Under-min-ISR.*\n\th-on3 \[0\]\tIsr: \[3\]\tmin\.insync\.replicas: 2", out), out
    assert "UNHEALTHY" in out.splitlines()[-1] and "1 under min ISR" in out.splitlines()[-1]
    assert node.cli("config", "delete", "--topic", "h-on3", "min.insync.replicas").returncode == 0
    # Broker 3 gone: its only-replica partition is offline, and it is an offline replica elsewhere.
    c.nodes[3].kill9()
    others = c.bootstrap(exclude=(3,))
    wait_for("broker 3 fenced", lambda: live_brokers(others) == [1, 2])
    rc, out = wait_for("h-on3 offline", lambda: (r := health(node))[0] == 1 and "\th-on3 [0]\tReplicas: [3]" in r[1] and r)
    assert re.search(r"Offline partitions.*\n\th-on3 \[0\]\tReplicas: \[3\]", out), out
    # Whatever the ISR now is, health reports exactly the partitions whose ISR is short.
    ka = kadmin(others)
    try:
        described = ka.describe_topic_partitions(["h-rf3", "h-on3"])
    finally:
        ka.close()
    short = {f"{t['name']} [{p['partition_index']}]" for t in described["topics"] for p in t["partitions"]
             if len(p["isr_nodes"]) < len(p["replica_nodes"])}
    section = out.split("Under-replicated partitions")[1].split("\n\n")[0] if "Under-replicated" in out else ""
    listed = set(re.findall(r"^\t(\S+ \[\d+\])\tReplicas", section.split("Under-min-ISR")[0].split("Offline")[0], re.M))
    assert listed == short, (out, described)
    for t in described["topics"]:
        for p in t["partitions"]:
            assert p["offline_replicas"] == [3], t
    d = node.cli("topic", "describe", "h-rf3")
    assert d.stdout.count("Offline: [3]") == 2, d.stdout
