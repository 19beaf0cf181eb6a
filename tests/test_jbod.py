"""Several log directories on one broker (`log.dirs=d1,d2,...`, JBOD).

- New partitions spread over the directories: each goes to the online directory
  holding the fewest partitions (ties: the first in `log.dirs` order), and
  DescribeLogDirs (kafka-python) reports every directory with its partitions.
- AlterReplicaLogDirs (kafka-python) moves a partition to another directory
  while a producer keeps writing: nothing acknowledged is lost or duplicated, the
  old copy goes away, and a restart reads the same data back.
- A directory whose filesystem fails (a loop-mounted ext4 shut down with
  EXT4_IOC_SHUTDOWN, so every write there returns EIO) takes only its own
  partitions offline; the broker keeps serving the rest and places new
  partitions elsewhere.
- A directory missing at start-up is offline, not recreated empty; once it is
  back, its partitions come back with everything acknowledged before the
  failure.
- `strom log-dirs` lists the directories and replicas, `strom log-dirs move`
  moves one.

The failure tests need root (loop mounts) and skip without it.
"""

import fcntl
import os
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.errors import LogDirNotFoundError, NoError, UnknownTopicOrPartitionError
from kafka.structs import TopicPartitionReplica

from conftest import create_topic
from jepsen.util import wait_for
from test_confluent import consume_all

KAFKA_STORAGE_ERROR = 56
EXT4_IOC_SHUTDOWN = 0x8004587D
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


# ---------------------------------------------------------------- helpers


def log_dirs(bootstrap, topic_partitions=None, admin=None):
    """DescribeLogDirs through kafka-python: {realpath: result dict} of the only broker.

    `topic_partitions` is kafka-python's argument ({topic: [partitions]}); None asks
    about every partition of every topic. `admin` reuses a client when polling."""
    own = admin is None
    admin = admin or KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (resp,) = admin.describe_log_dirs(topic_partitions=topic_partitions)
    finally:
        if own:
            admin.close()
    return {os.path.realpath(d["log_dir"]): d for d in resp["log_dirs"]}


def partitions_in(result, topic):
    """{partition: partition dict} of `topic` in one DescribeLogDirs result."""
    return {p["partition_index"]: p for t in result["topics"] if t["name"] == topic for p in t["partitions"]}


def on_disk(d, topic):
    """Partition numbers of `topic` with a directory `<topic>-<n>` in `d`."""
    out = set()
    for e in Path(d).iterdir() if Path(d).is_dir() else ():
        head, _, n = e.name.rpartition("-")
        if e.is_dir() and head == topic and n.isdigit():
            out.add(int(n))
    return out


def leader(bootstrap, topic, partition):
    """The partition's leader in Metadata (-1 for none); None when the topic or
    partition is not listed."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or partition not in t.partitions:
        return None
    return t.partitions[partition].leader


def broker_id(bootstrap):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    (node,) = md.brokers
    return node


def produce(bootstrap, topic, partition, values, timeout_ms=10000):
    """Sends one at a time with acks=all and no retries; each message's delivery
    error (or None)."""
    p = Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "enable.idempotence": False,
        "linger.ms": 0, "message.timeout.ms": timeout_ms,
    })
    results = {}

    def done(err, msg):
        results[msg.value()] = err

    for v in values:
        p.produce(topic, value=v, partition=partition, on_delivery=done)
        p.flush(timeout_ms / 1000 + 5)
    assert p.flush(30) == 0
    return [results[v] for v in values]


def consume_partition(bootstrap, topic, partition, timeout=30):
    """Every value of one partition, from the start to its end."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, partition, -2)])
    out, deadline = [], time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, f"{topic}-{partition}: no end of partition within {timeout}s ({len(out)} read)"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise KafkaException(m.error())
            out.append(m.value())
    finally:
        c.close()


def jbod_broker(make_broker, dirs, **settings):
    """A broker whose log.dirs are `dirs`. conftest passes `log.dirs=<data_dir>`
    first; the later `--set log.dirs=...` wins. Its log file lands beside the
    first directory."""
    return make_broker(data_dir=str(dirs[0]), settings={"log.dirs": ",".join(str(d) for d in dirs), **settings})


# ---------------------------------------------------------------- spread


def test_partitions_spread_over_dirs(make_broker, tmp_path, topic_name):
    dirs = [tmp_path / f"d{i}" for i in (1, 2, 3)]
    b = jbod_broker(make_broker, dirs).start()
    create_topic(b.bootstrap, topic_name, 9)

    # Fewest partitions first, ties to the first listed: 0,3,6 / 1,4,7 / 2,5,8.
    def placed():
        got = [on_disk(d, topic_name) for d in dirs]
        return got if sum(map(len, got)) == 9 else None

    got = wait_for("9 partition directories", placed, timeout=30, interval=0.1)
    assert [len(g) for g in got] == [3, 3, 3], got
    assert got == [{0, 3, 6}, {1, 4, 7}, {2, 5, 8}], got

    for p in range(9):
        assert produce(b.bootstrap, topic_name, p, [f"v{p}".encode() * 50]) == [None]

    report = log_dirs(b.bootstrap)
    assert list(report) == [os.path.realpath(d) for d in dirs], "one result per directory, in log.dirs order"
    for d, expect in zip(dirs, got):
        r = report[os.path.realpath(d)]
        assert r["error_code"] == 0, r
        assert r["total_bytes"] > 0 and 0 <= r["usable_bytes"] <= r["total_bytes"], r
        parts = partitions_in(r, topic_name)
        assert set(parts) == expect, (d, parts)
        for p in parts.values():
            assert p["partition_size"] > 100, p
            assert p["offset_lag"] == 0 and p["is_future_key"] is False, p

    # Only the partitions asked for.
    report = log_dirs(b.bootstrap, {topic_name: [0, 4]})
    assert [set(partitions_in(r, topic_name)) for r in report.values()] == [{0}, {4}, set()]


# ---------------------------------------------------------------- moves


def test_alter_replica_log_dirs_answers(make_broker, tmp_path, topic_name):
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    b = jbod_broker(make_broker, dirs).start()
    create_topic(b.bootstrap, topic_name, 1)
    wait_for("the partition directory", lambda: on_disk(dirs[0], topic_name) == {0}, timeout=30)
    node = broker_id(b.bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        nowhere = TopicPartitionReplica(topic_name, 0, node)
        assert admin.alter_replica_log_dirs({nowhere: str(tmp_path / "nowhere")}) == {nowhere: LogDirNotFoundError}
        missing = TopicPartitionReplica(topic_name, 7, node)
        assert admin.alter_replica_log_dirs({missing: str(dirs[1])}) == {missing: UnknownTopicOrPartitionError}
        # Already there: nothing to do, no error.
        here = TopicPartitionReplica(topic_name, 0, node)
        assert admin.alter_replica_log_dirs({here: str(dirs[0])}) == {here: NoError}
    finally:
        admin.close()
    assert on_disk(dirs[0], topic_name) == {0} and on_disk(dirs[1], topic_name) == set()


class Writer(threading.Thread):
    """Produces to one partition (acks=all, idempotent) until stopped, recording
    acknowledged values in acknowledgement order."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
        self.topic = topic
        self.acked, self.errors = [], []
        self.stop_at = threading.Event()

    def done(self, err, msg):
        (self.errors.append(err) if err else self.acked.append(msg.value()))

    def run(self):
        i = 0
        while not self.stop_at.is_set():
            # 50 at a time, each round waiting for its acknowledgements: paced by the
            # broker's fsyncs rather than by sleeps.
            for _ in range(50):
                self.p.produce(self.topic, value=f"m{i:07d}-".encode() + b"x" * 200, partition=0, on_delivery=self.done)
                i += 1
            self.p.flush(30)
        self.p.flush(30)

    def wait_acked(self, n, timeout=30):
        wait_for(f"{n} acknowledged messages", lambda: len(self.acked) >= n or self.errors, timeout=timeout, interval=0.05)
        assert not self.errors, self.errors[:5]


def test_move_under_load(make_broker, tmp_path, topic_name):
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    b = jbod_broker(make_broker, dirs, **{"log.segment.bytes": str(1 << 20)}).start()
    create_topic(b.bootstrap, topic_name, 1)
    wait_for("the partition in d1", lambda: on_disk(dirs[0], topic_name) == {0}, timeout=30)
    d1, d2 = (os.path.realpath(d) for d in dirs)

    w = Writer(b.bootstrap, topic_name)
    w.start()
    try:
        # A few MiB over several segments first, so the copy takes a while.
        w.wait_acked(15000, timeout=60)
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            tpr = TopicPartitionReplica(topic_name, 0, broker_id(b.bootstrap))
            assert admin.alter_replica_log_dirs({tpr: str(dirs[1])}) == {tpr: NoError}

            def moved():
                r = log_dirs(b.bootstrap, {topic_name: [0]}, admin)
                old, new = partitions_in(r[d1], topic_name), partitions_in(r[d2], topic_name)
                return 0 in new and not new[0]["is_future_key"] and 0 not in old

            wait_for("the partition to be swapped into d2", moved, timeout=60, interval=0.2)
        finally:
            admin.close()
        at_swap = len(w.acked)
        w.wait_acked(at_swap + 1000)  # still writable after the swap
    finally:
        w.stop_at.set()
        w.join(60)
    assert not w.is_alive()
    assert not w.errors, w.errors[:5]
    acked = w.acked

    def check(got):
        assert len(got) == len(set(got)), "a value stored twice"
        kept = set(got)
        missing = [v for v in acked if v not in kept]
        assert not missing, f"{len(missing)} acknowledged values lost, first {missing[:3]}"
        ackset = set(acked)
        assert [v for v in got if v in ackset] == acked, "acknowledged values out of order"

    check([m.value() for m in consume_all(b.bootstrap, topic_name, 1, timeout=60)])

    # The old copy goes away (perhaps after the swap), the new one stays, no -future left.
    def disk_settled():
        names = [e.name for d in dirs for e in Path(d).iterdir()]
        return (not (dirs[0] / f"{topic_name}-0").exists() and (dirs[1] / f"{topic_name}-0").is_dir()
                and not [n for n in names if n.startswith(topic_name) and n.endswith("-future")])

    wait_for("d1/<topic>-0 gone and d2/<topic>-0 in place", disk_settled, timeout=30, interval=0.1)

    b.restart()
    check([m.value() for m in consume_all(b.bootstrap, topic_name, 1, timeout=60)])
    r = log_dirs(b.bootstrap, {topic_name: [0]})
    assert 0 in partitions_in(r[d2], topic_name) and 0 not in partitions_in(r[d1], topic_name)


# ---------------------------------------------------------------- failures


def _umount(mnt):
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def ext4_disk(tmp_path):
    """A 64 MiB ext4 image loop-mounted at tmp_path/mnt: (image, mountpoint)."""
    if os.geteuid() != 0:
        pytest.skip("loop-mounting an ext4 image needs root")
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed")
    img, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True, capture_output=True)
    r = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here: {r.stderr.strip()}")
    yield img, mnt
    _umount(mnt)


def shut_down_fs(mnt):
    """EXT4_IOC_SHUTDOWN without flushing the journal: from now on every write,
    fsync or create on that filesystem fails with EIO."""
    fd = os.open(mnt, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


def fail_first_dir(make_broker, tmp_path, mnt, topic):
    """A broker with log.dirs = mnt/data,other (metadata in a third, healthy
    directory); `topic` has X-0 in mnt/data and X-1 in other, both written to;
    then mnt's filesystem fails and a write to X-0 makes the broker notice.
    Returns (broker, dirs, acknowledged values per partition)."""
    dirs = [mnt / "data", tmp_path / "other"]
    b = jbod_broker(make_broker, dirs, **{"metadata.log.dir": str(tmp_path / "meta")})
    b.log_path = tmp_path / "strom.log"
    b.start()
    create_topic(b.bootstrap, topic, 2)
    wait_for("X-0 in mnt/data and X-1 in other",
             lambda: on_disk(dirs[0], topic) == {0} and on_disk(dirs[1], topic) == {1}, timeout=30)
    acked = {0: [f"a{i}".encode() * 10 for i in range(100)], 1: [f"b{i}".encode() * 10 for i in range(100)]}
    for p, vals in acked.items():
        assert produce(b.bootstrap, topic, p, vals) == [None] * len(vals)

    shut_down_fs(mnt)
    errs = produce(b.bootstrap, topic, 0, [b"after-failure"], timeout_ms=5000)
    assert errs[0] is not None, "a write to the failed filesystem was acknowledged"
    return b, dirs, acked


# A write to a partition in a failed directory: the storage error itself, or,
# once the partition lost its leader, a leader error or a timeout waiting for one.
WRITE_REFUSED = {
    KafkaError.KAFKA_STORAGE_ERROR, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError._MSG_TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def test_failed_dir_takes_only_its_partitions_offline(tmp_path, ext4_disk, make_broker, topic_name):
    # ext4_disk before make_broker: the broker is killed before the disk is unmounted.
    _, mnt = ext4_disk
    b, dirs, acked = fail_first_dir(make_broker, tmp_path, mnt, topic_name)
    bad = os.path.realpath(dirs[0])

    # The healthy directory's partition keeps taking writes; the failed one's does not.
    more = [f"c{i}".encode() for i in range(20)]
    assert produce(b.bootstrap, topic_name, 1, more) == [None] * len(more)
    acked[1] += more
    errs = produce(b.bootstrap, topic_name, 0, [b"refused"], timeout_ms=5000)
    assert errs[0] is not None and errs[0].code() in WRITE_REFUSED, errs
    assert b.proc.poll() is None, "the broker exited"

    def reported_offline():
        r = log_dirs(b.bootstrap, {topic_name: [0, 1]})
        return r if r[bad]["error_code"] == KAFKA_STORAGE_ERROR else None

    r = wait_for("the failed directory reported offline", reported_offline, timeout=30, interval=0.2)
    assert r[bad]["topics"] == [], r[bad]
    assert partitions_in(r[os.path.realpath(dirs[1])], topic_name).keys() == {1}
    wait_for("X-0 without a leader", lambda: leader(b.bootstrap, topic_name, 0) == -1, timeout=30, interval=0.2)
    assert leader(b.bootstrap, topic_name, 1) == broker_id(b.bootstrap)

    # A topic created now lands in the healthy directory and works.
    other = topic_name + "-new"
    create_topic(b.bootstrap, other, 2)
    wait_for("the new topic in the healthy directory", lambda: on_disk(dirs[1], other) == {0, 1}, timeout=30)
    for p in (0, 1):
        vals = [f"n{p}-{i}".encode() for i in range(10)]
        assert produce(b.bootstrap, other, p, vals) == [None] * len(vals)
        assert consume_partition(b.bootstrap, other, p) == vals
    assert consume_partition(b.bootstrap, topic_name, 1) == acked[1]
    assert b.proc.poll() is None, "the broker exited"


def test_missing_dir_at_start_then_back(tmp_path, ext4_disk, make_broker, topic_name):
    img, mnt = ext4_disk
    b, dirs, acked = fail_first_dir(make_broker, tmp_path, mnt, topic_name)
    other = topic_name + "-new"
    create_topic(b.bootstrap, other, 1)
    wait_for("the new topic in the healthy directory", lambda: on_disk(dirs[1], other) == {0}, timeout=30)
    other_vals = [f"o{i}".encode() for i in range(10)]
    assert produce(b.bootstrap, other, 0, other_vals) == [None] * len(other_vals)

    # Stop hard, take the disk away: log.dirs now names a path that does not exist.
    b.kill9()
    _umount(mnt)
    assert not dirs[0].exists()
    b.start()
    bad = os.path.realpath(dirs[0])
    assert consume_partition(b.bootstrap, topic_name, 1) == acked[1]
    assert consume_partition(b.bootstrap, other, 0) == other_vals
    r = log_dirs(b.bootstrap, {topic_name: [0, 1], other: [0]})
    assert r[bad]["error_code"] == KAFKA_STORAGE_ERROR and r[bad]["topics"] == [], r[bad]
    assert r[os.path.realpath(dirs[1])]["error_code"] == 0
    wait_for("X-0 without a leader", lambda: leader(b.bootstrap, topic_name, 0) == -1, timeout=30, interval=0.2)
    assert not dirs[0].exists(), "the missing directory was created anew"
    assert on_disk(dirs[1], topic_name) == {1}, "X-0 was recreated empty in the healthy directory"
    b.kill9()
    assert not dirs[0].exists(), "the missing directory was created anew"

    # The disk comes back (mounting replays its journal): so does X-0, whole.
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    b.start()
    wait_for("X-0 led again", lambda: leader(b.bootstrap, topic_name, 0) == broker_id(b.bootstrap), timeout=30, interval=0.2)
    assert consume_partition(b.bootstrap, topic_name, 0) == acked[0]
    assert consume_partition(b.bootstrap, topic_name, 1) == acked[1]
    r = log_dirs(b.bootstrap, {topic_name: [0, 1]})
    assert r[bad]["error_code"] == 0 and partitions_in(r[bad], topic_name).keys() == {0}, r[bad]
    more = [b"after-remount"]
    assert produce(b.bootstrap, topic_name, 0, more) == [None]
    assert consume_partition(b.bootstrap, topic_name, 0) == acked[0] + more


# ---------------------------------------------------------------- CLI


def cli_tables(out):
    """`strom log-dirs` output: (directory rows, replica rows), each a list of dicts."""
    dirs_part, _, replicas_part = out.strip().partition("\n\n")

    def table(text):
        lines = text.strip().splitlines()
        head = lines[0].split("\t")
        return [dict(zip(head, line.split("\t"))) for line in lines[1:]]

    return table(dirs_part), table(replicas_part)


def test_cli_log_dirs_and_move(make_broker, tmp_path, topic_name):
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    b = jbod_broker(make_broker, dirs).start()
    create_topic(b.bootstrap, topic_name, 2)
    wait_for("a partition in each directory",
             lambda: on_disk(dirs[0], topic_name) == {0} and on_disk(dirs[1], topic_name) == {1}, timeout=30)

    # No --topic: a null topic list, every partition.
    r = b.cli("log-dirs")
    assert r.returncode == 0, r.stderr
    dir_rows, replica_rows = cli_tables(r.stdout)
    assert [(d["DIR"], d["STATE"]) for d in dir_rows] == [(os.path.realpath(d), "online") for d in dirs], r.stdout
    assert all(int(d["TOTAL_BYTES"]) > 0 for d in dir_rows), r.stdout
    mine = sorted((x["DIR"], int(x["PARTITION"]), x["FUTURE"]) for x in replica_rows if x["TOPIC"] == topic_name)
    assert mine == [(os.path.realpath(dirs[0]), 0, "no"), (os.path.realpath(dirs[1]), 1, "no")], r.stdout

    r = b.cli("log-dirs", "move", topic_name, "1", str(dirs[0]), "--wait")
    assert r.returncode == 0, r.stderr
    r = b.cli("log-dirs", "--topic", topic_name)
    assert r.returncode == 0, r.stderr
    _, replica_rows = cli_tables(r.stdout)
    assert sorted((x["DIR"], int(x["PARTITION"])) for x in replica_rows) == [(os.path.realpath(dirs[0]), 0), (os.path.realpath(dirs[0]), 1)]

    r = b.cli("log-dirs", "move", topic_name, "0", str(tmp_path / "nowhere"))
    assert r.returncode != 0 and "LOG_DIR_NOT_FOUND" in r.stderr, (r.stdout, r.stderr)


def test_failed_dir_in_a_cluster_moves_leadership(tmp_path, ext4_disk):
    """Three nodes; node 1 keeps partition 0 on a disk that fails while an
    idempotent acks=all producer writes to it. Leadership moves to an in-sync
    replica on another node, node 1 leaves the ISR and keeps leading the partition
    on its healthy disk, and every acknowledged message is there once, in order."""
    from conftest import Cluster
    from jepsen.util import create_topic as create_replicated, drop_admins, fully_replicated, partition_state

    _, mnt = ext4_disk
    c = Cluster(tmp_path / "cluster", settings={"min.insync.replicas": "2"})
    n1 = c.nodes[1]
    n1.settings["log.dirs"] = f"{mnt / 'data'},{tmp_path / 'cluster' / 'node1-other'}"
    n1.settings["metadata.log.dir"] = str(tmp_path / "cluster" / "node1")
    try:
        c.start()
        topic = "failover"
        create_replicated(c.bootstrap(), topic, assignment=[[1, 2, 3], [1, 2, 3]])
        wait_for("fully replicated", lambda: fully_replicated(c.bootstrap(), topic, 2), timeout=60)
        wait_for("p0 on the ext4 disk", lambda: on_disk(mnt / "data", topic) == {0}, timeout=30)

        def led_by_1():
            n1.cli("cluster", "elect-leaders")
            st = partition_state(c.bootstrap(), topic)
            return all(st[p]["leader"] == 1 for p in (0, 1))

        wait_for("node 1 leads both partitions", led_by_1, timeout=60, interval=0.5)
        w = Writer(c.bootstrap(), topic)
        w.start()
        w.wait_acked(500)
        shut_down_fs(mnt)

        def moved():
            st = partition_state(c.bootstrap(), topic)
            return st if st[0]["leader"] in (2, 3) and 1 not in st[0]["isr"] else None

        st = wait_for("p0 led elsewhere, node 1 out of its ISR", moved, timeout=60, interval=0.2)
        assert st[1]["leader"] == 1 and 1 in st[1]["isr"], st
        n = len(w.acked)
        w.wait_acked(n + 500, timeout=60)
        w.stop_at.set()
        w.join(60)
        assert not w.errors, w.errors[:5]
        assert n1.proc.poll() is None, "node 1 exited"
        got = [m.value() for m in consume_all(c.bootstrap(), topic, 2) if m.partition() == 0]
        assert len(got) == len(set(got)), "duplicates"
        assert got == w.acked, "acknowledged messages lost, out of order or unacknowledged ones present"
    finally:
        drop_admins()
        c.stop()
