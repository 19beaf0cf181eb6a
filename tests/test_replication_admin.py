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
INVALID_REPLICA_ASSIGNMENT = 39
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


def partition_state(ka, topic, partition):
    t = ka.describe_topic_partitions([topic])["topics"][0]
    return next(p for p in t["partitions"] if p["partition_index"] == partition)


def election_codes(resp):
    return {(t.topic, p.partition_id): p.error_code for t in resp.replica_election_results for p in t.partition_result}


def test_elect_leaders_preferred_and_unclean(make_cluster):
    from confluent_kafka import ElectionType, TopicPartition as CTP

    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_brokers(boot) == [1, 2, 3])
    create(boot, "el", partitions=3, rf=3)
    ka = kadmin(boot)
    try:
        # Every preferred replica already leads: nothing to do, per partition.
        r = ka.elect_leaders(0, {"el": [0, 1, 2]})
        assert election_codes(r) == {("el", i): ELECTION_NOT_NEEDED for i in range(3)}
        # Unclean election of a partition that has a live leader is not needed either.
        assert election_codes(ka.elect_leaders(1, {"el": [1]})) == {("el", 1): ELECTION_NOT_NEEDED}
        r = ka.elect_leaders(0, {"el": [7], "el-missing": [0]}, raise_errors=False)
        assert election_codes(r) == {("el", 7): UNKNOWN_TOPIC_OR_PARTITION, ("el-missing", 0): UNKNOWN_TOPIC_OR_PARTITION}
        # The CLI: every partition (nothing needed), then one that does not exist.
        out = c.brokers[0].cli("cluster", "elect-leaders")
        assert out.returncode == 0 and "0 leader(s) elected, 0 failed" in out.stdout, out.stdout + out.stderr
        out = c.brokers[0].cli("cluster", "elect-leaders", "el:1", "el:9")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "el [1]: no election needed" in out.stdout and "el [9]: UNKNOWN_TOPIC_OR_PARTITION" in out.stdout, out.stdout

        # Move partition 0's leadership away from its preferred replica by stopping that broker.
        before = partition_state(ka, "el", 0)
        preferred = before["replica_nodes"][0]
        rest = [b for b in (1, 2, 3) if b != preferred]
        c.nodes[preferred].kill9()
        others = c.bootstrap(exclude=(preferred,))
        moved = wait_for("partition 0 to get another leader",
                         lambda: (p := partition_state(ka, "el", 0))["leader_id"] in rest and p)
        assert moved["leader_epoch"] > before["leader_epoch"]
        c.nodes[preferred].start()
        wait_for("3 live brokers again", lambda: live_brokers(boot) == [1, 2, 3])
        # librdkafka's AdminClient asks for the preferred leader back (once it is in sync again).
        cadm = cadmin(boot)

        def elect_back():
            res = cadm.elect_leaders(ElectionType.PREFERRED, [CTP("el", 0)]).result(timeout=20)
            err = res[CTP("el", 0)]
            return err is None

        wait_for("the preferred leader elected back", elect_back, timeout=60)
        back = partition_state(ka, "el", 0)
        assert back["leader_id"] == preferred and back["leader_epoch"] > moved["leader_epoch"]
        assert election_codes(ka.elect_leaders(0, {"el": [0]})) == {("el", 0): ELECTION_NOT_NEEDED}
        # A caller still on the old epoch is fenced by OffsetForLeaderEpoch on the new leader.
        code = offset_for_leader_epoch(ka, preferred, "el", 0, moved["leader_epoch"], moved["leader_epoch"])[0]
        assert code == FENCED_LEADER_EPOCH
        assert others  # the cluster stayed usable through the move
    finally:
        ka.close()


def test_partition_reassignments_start_list_cancel(make_cluster, tmp_path):
    c = make_cluster(voters=3)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_brokers(boot) == [1, 2, 3])
    create(boot, "ra", assignment=[[1, 2], [2, 1]])
    # Broker 3 is down, so a move onto it stays in progress: it cannot catch up.
    c.nodes[3].kill9()
    others = c.bootstrap(exclude=(3,))
    wait_for("broker 3 fenced", lambda: live_brokers(others) == [1, 2])
    ka = kadmin(others)
    try:
        assert ka.list_partition_reassignments() == {}
        res = ka.alter_partition_reassignments({KTP("ra", 0): [1, 3], KTP("ra", 5): [1, 2], KTP("ra-missing", 0): [1]})
        assert res[KTP("ra", 0)] is None, res
        assert res[KTP("ra", 5)] is not None and res[KTP("ra", 5)].errno == UNKNOWN_TOPIC_OR_PARTITION
        assert res[KTP("ra-missing", 0)].errno == UNKNOWN_TOPIC_OR_PARTITION
        # Bad targets: an unknown broker, a repeated one.
        res = ka.alter_partition_reassignments({KTP("ra", 1): [1, 9]})
        assert res[KTP("ra", 1)].errno == INVALID_REPLICA_ASSIGNMENT, res
        res = ka.alter_partition_reassignments({KTP("ra", 1): [2, 2]})
        assert res[KTP("ra", 1)].errno == INVALID_REPLICA_ASSIGNMENT, res
        listed = ka.list_partition_reassignments()
        assert listed == {KTP("ra", 0): {"replicas": [1, 3, 2], "adding_replicas": [3], "removing_replicas": [2]}}, listed
        assert ka.list_partition_reassignments({"ra": [1]}) == {}
        p0 = partition_state(ka, "ra", 0)
        assert p0["replica_nodes"] == [1, 3, 2] and 3 not in p0["isr_nodes"]
        # The CLI sees it; cancelling puts the partition back.
        node = c.brokers[0]
        out = node.cli("cluster", "reassign", "--list")
        assert out.returncode == 0 and "ra [0]\tReplicas: [1, 3, 2]\tAdding: [3]\tRemoving: [2]" in out.stdout, out.stdout + out.stderr
        out = node.cli("cluster", "reassign", "--cancel", "ra:0")
        assert out.returncode == 0 and "ra [0]: reassignment cancelled" in out.stdout, out.stdout + out.stderr
        assert ka.list_partition_reassignments() == {}
        assert partition_state(ka, "ra", 0)["replica_nodes"] == [1, 2]
        out = node.cli("cluster", "reassign", "--cancel", "ra:0")
        assert out.returncode == 1 and "NO_REASSIGNMENT_IN_PROGRESS" in out.stdout, out.stdout + out.stderr
        assert ka.alter_partition_reassignments({KTP("ra", 1): None})[KTP("ra", 1)].errno == NO_REASSIGNMENT_IN_PROGRESS
        # Kafka's plan file, then inline arguments.
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "ra", "partition": 1, "replicas": [3, 1], "log_dirs": ["any", "any"]}]}))
        out = node.cli("cluster", "reassign", "--file", str(plan))
        assert out.returncode == 0 and "ra [1]: reassignment started" in out.stdout, out.stdout + out.stderr
        out = node.cli("cluster", "reassign", "ra:0=2,3")
        assert out.returncode == 0, out.stdout + out.stderr
        listed = ka.list_partition_reassignments()
        assert listed[KTP("ra", 1)] == {"replicas": [3, 1, 2], "adding_replicas": [3], "removing_replicas": [2]}, listed
        assert listed[KTP("ra", 0)] == {"replicas": [2, 3, 1], "adding_replicas": [3], "removing_replicas": [1]}, listed
        out = node.cli("cluster", "reassign", "--cancel", "--file", str(plan))
        assert out.returncode == 0, out.stdout + out.stderr
        assert list(ka.list_partition_reassignments()) == [KTP("ra", 0)]
        out = node.cli("cluster", "reassign", "ra:0=bad")
        assert out.returncode == 1 and "bad broker id" in out.stderr, out.stderr
    finally:
        ka.close()
