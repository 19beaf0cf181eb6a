"""Transactions with real clients: visibility, fencing, offsets, and exactly-once under kill -9.

1. A committed transaction is visible to read_committed consumers and an aborted
   one is not (read_uncommitted sees both); an open transaction holds
   read_committed back at its first offset (the last stable offset), also for
   records written after it by others; `strom txn list|describe` and the admin
   APIs show it; a zombie is fenced by a new producer with its transactional id;
   consumer offsets sent in a transaction count only when it commits; kafkajs's
   transactions (tests/js/transactions.js) commit, abort and send offsets too.
2. A consume-transform-produce pipeline (tests/eos_app.py, confluent-kafka) runs
   as a subprocess while the broker and the application are each killed with
   kill -9 and restarted several times; the output then holds every input once.
3. The same pipeline on three nodes (replication factor 3, min.insync.replicas
   2) while partition leaders are killed and restarted.
4. Both pipelines are judged by the transactional checker (tests/jepsen/txn.py,
   built on the queue checker): no aborted reads, no torn or interleaved
   transactions, no lost or duplicated records, every input exactly once.
"""

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import create_topic
from eos import end_offsets, read_partition, read_topic, wait_for
from jepsen.txn import check_transactions, summary
from jepsen.util import create_topic as create_replicated_topic
from jepsen.util import drop_admins, fully_replicated, live_brokers, partition_state

APP = Path(__file__).resolve().parent / "eos_app.py"
JS = Path(__file__).resolve().parent / "js"


def txn_producer(bootstrap, transactional_id, **conf):
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5,
                     "transaction.timeout.ms": 30000, "log_level": 2, **conf})


def values(log):
    return [v for recs in log.values() for _, v in recs]


# 0. the checker itself -----------------------------------------------------------------------------


def test_transaction_checker_reports_each_anomaly():
    def t(status, records, seq, t0):
        return {"status": status, "records": records, "producer": "1", "seq": seq, "t_send": t0, "t_done": t0 + 0.1}

    txns = {
        "1-0": t("committed", [[0, "in-0@1-0"], [0, "in-1@1-0"]], 0, 0.0),
        "1-1": t("aborted", [[0, "in-2@1-1"]], 1, 1.0),  # read by a consumer: aborted read
        "1-2": t("committed", [[0, "in-2@1-2"], [1, "in-3@1-2"]], 2, 2.0),  # half visible: torn (and lost)
        "1-3": t("unknown", [[0, "in-4@1-3"], [0, "in-5@1-3"]], 3, 3.0),  # visible, but split by 1-4: interleaved
        "1-4": t("committed", [[0, "in-0@1-4"]], 4, 4.0),  # in-0 a second time: duplicated input
        "1-5": t("unknown", [[1, "in-9@1-5"]], 5, 5.0),  # undecided and invisible: fine
    }
    writes = {"in-0@1-0": {"partition": 0, "offset": 0}, "in-1@1-0": {"partition": 0, "offset": 1},
              "in-2@1-2": {"partition": 0, "offset": 4}, "in-3@1-2": {"partition": 1, "offset": 0},
              "in-0@1-4": {"partition": 0, "offset": 7}}
    committed = {"0": [[0, "in-0@1-0"], [1, "in-1@1-0"], [4, "in-2@1-2"], [6, "in-4@1-3"], [7, "in-0@1-4"],
                       [8, "in-5@1-3"]], "1": []}
    uncommitted = {"0": [[0, "in-0@1-0"], [1, "in-1@1-0"], [2, "in-2@1-1"], [4, "in-2@1-2"], [6, "in-4@1-3"],
                         [7, "in-0@1-4"], [8, "in-5@1-3"]], "1": [[0, "in-3@1-2"]]}
    reads = [{"consumer": "c0", "gen": 0, "index": 0, "partition": 0, "offset": 2, "value": "in-2@1-1"}]
    inputs = ["in-0", "in-1", "in-2", "in-3", "in-4", "in-5", "in-6"]
    res = check_transactions({"txns": txns, "writes": writes, "reads": reads, "committed": committed,
                              "uncommitted": uncommitted, "inputs": inputs})
    print(summary(res))
    f = res["failures"]
    assert f["aborted_reads"] == 1 and f["torn"] == 1 and f["interleaved"] == 1, f
    assert f["lost"] == 1 and res["examples"]["lost"] == ["in-3@1-2"], res["examples"]
    assert f["duplicated_inputs"] == 1 and res["examples"]["duplicated_inputs"] == [{"input": "in-0", "times": 2}]
    assert sorted(res["examples"]["missing_inputs"]) == ["in-3", "in-6"]
    assert f["dirty_reads"] == 1  # the queue checker's view of the aborted read
    assert res["info"]["aborted_records_in_log"] == 1 and not res["ok"]
    clean = {k: v for k, v in txns.items() if k in ("1-0", "1-5")}
    ok = check_transactions({"txns": clean, "writes": writes, "reads": [], "uncommitted": {"0": committed["0"][:2]},
                             "committed": {"0": committed["0"][:2]}, "inputs": ["in-0", "in-1"]})
    assert ok["ok"], summary(ok)


# 1. basics ------------------------------------------------------------------------------------------


def test_commit_is_visible_abort_is_not(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, partitions=2)
    p = txn_producer(broker.bootstrap, f"basic-{uuid.uuid4().hex[:6]}")
    p.init_transactions(30)
    for name, n, commit in (("c1", 10, True), ("a", 10, False), ("c2", 6, True)):
        p.begin_transaction()
        for i in range(n):
            p.produce(topic_name, value=f"{name}-{i}".encode(), partition=i % 2)
        if commit:
            p.commit_transaction(30)
        else:
            assert p.flush(30) == 0  # the records are in the log before the abort
            p.abort_transaction(30)
    committed = read_topic(broker.bootstrap, topic_name, 2, "read_committed")
    everything = read_topic(broker.bootstrap, topic_name, 2, "read_uncommitted")
    want = {f"c1-{i}" for i in range(10)} | {f"c2-{i}" for i in range(6)}
    assert sorted(values(committed)) == sorted(want), committed
    assert set(values(everything)) == want | {f"a-{i}" for i in range(10)}, everything
    for part in (0, 1):
        # In order within the partition, c1 before c2.
        got = [v for _, v in committed[part]]
        assert got == [f"c1-{i}" for i in range(part, 10, 2)] + [f"c2-{i}" for i in range(part, 6, 2)], got
    # Each transaction ended with a control marker in both partitions: three offsets no record uses.
    ends = end_offsets(broker.bootstrap, topic_name, 2, "read_uncommitted")
    stable = end_offsets(broker.bootstrap, topic_name, 2, "read_committed")
    assert ends == stable, (ends, stable)  # no transaction open
    for part in (0, 1):
        assert ends[part] == len(everything[part]) + 3, (part, ends, everything[part])


def test_open_transaction_holds_read_committed_at_its_first_offset(broker, topic_name):
    from kafka import KafkaAdminClient, TopicPartition as KTopicPartition

    create_topic(broker.bootstrap, topic_name, partitions=1)
    tid = f"open-{uuid.uuid4().hex[:6]}"
    plain = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "log_level": 2})
    for i in range(3):
        plain.produce(topic_name, value=f"before-{i}".encode(), partition=0)
    assert plain.flush(30) == 0
    p = txn_producer(broker.bootstrap, tid)
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic_name, value=f"open-{i}".encode(), partition=0)
    assert p.flush(30) == 0
    for i in range(4):  # written after the open transaction's records, by a non-transactional producer
        plain.produce(topic_name, value=f"after-{i}".encode(), partition=0)
    assert plain.flush(30) == 0

    # The last stable offset is the open transaction's first offset (3); the high watermark is 12.
    assert end_offsets(broker.bootstrap, topic_name, 1, "read_uncommitted") == {0: 12}
    assert end_offsets(broker.bootstrap, topic_name, 1, "read_committed") == {0: 3}
    assert [v for _, v in read_partition(broker.bootstrap, topic_name, 0, "read_committed")] == \
        [f"before-{i}" for i in range(3)]
    assert len(read_partition(broker.bootstrap, topic_name, 0, "read_uncommitted")) == 12

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = [t for ts in admin.list_transactions().values() for t in ts if t.transactional_id == tid]
        assert len(listed) == 1 and listed[0].state == "Ongoing", listed
        desc = admin.describe_transactions([tid])[tid]
        assert desc.state == "Ongoing" and desc.topic_partitions == {KTopicPartition(topic_name, 0)}, desc
        assert desc.producer_id == listed[0].producer_id and desc.transaction_timeout_ms == 30000, desc
        prods = admin.describe_producers([KTopicPartition(topic_name, 0)])[KTopicPartition(topic_name, 0)]
        mine = [s for s in prods.active_producers if s.producer_id == desc.producer_id]
        assert len(mine) == 1 and mine[0].current_transaction_start_offset == 3, prods
    finally:
        admin.close()
    out = broker.cli("txn", "list")
    assert out.returncode == 0, out.stderr
    mine = [line for line in out.stdout.splitlines() if tid in line.split()]
    assert len(mine) == 1 and "Ongoing" in mine[0].split() and str(desc.producer_id) in mine[0].split(), out.stdout
    out = broker.cli("txn", "describe", tid)
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    assert "Ongoing" in out.stdout and f"{topic_name}-0" in out.stdout and str(desc.producer_id) in out.stdout, out.stdout
    out = broker.cli("producers", topic_name)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [str(desc.producer_id), "3"] in [[r[1], r[-1]] for r in rows if len(r) > 2], out.stdout  # txn start offset

    p.commit_transaction(30)
    got = [v for _, v in read_partition(broker.bootstrap, topic_name, 0, "read_committed")]
    assert got == [f"before-{i}" for i in range(3)] + [f"open-{i}" for i in range(5)] + [f"after-{i}" for i in range(4)]
    assert end_offsets(broker.bootstrap, topic_name, 1, "read_committed") == {0: 13}  # plus the commit marker
    out = broker.cli("txn", "describe", tid)
    assert out.returncode == 0 and "CompleteCommit" in out.stdout, out.stdout


def test_a_new_producer_fences_the_zombie_and_aborts_its_transaction(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, partitions=1)
    tid = f"zombie-{uuid.uuid4().hex[:6]}"
    zombie = txn_producer(broker.bootstrap, tid)
    zombie.init_transactions(30)
    zombie.begin_transaction()
    zombie.produce(topic_name, value=b"zombie-0", partition=0)
    assert zombie.flush(30) == 0
    fresh = txn_producer(broker.bootstrap, tid)
    fresh.init_transactions(30)  # bumps the epoch and aborts the zombie's open transaction
    fresh.begin_transaction()
    fresh.produce(topic_name, value=b"fresh-0", partition=0)
    fresh.commit_transaction(30)
    zombie.produce(topic_name, value=b"zombie-1", partition=0)
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(30)
    err = e.value.args[0]
    print(f"the zombie's commit: {err}")
    assert err.fatal() or err.txn_requires_abort(), err
    assert err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), err
    assert [v for _, v in read_partition(broker.bootstrap, topic_name, 0, "read_committed")] == ["fresh-0"]


def test_offsets_sent_in_a_transaction_count_only_when_it_commits(broker, topic_name):
    from kafka import KafkaAdminClient

    src, dst, group = f"{topic_name}-in", f"{topic_name}-out", f"g-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, src)
    create_topic(broker.bootstrap, dst)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 2})
    for i in range(10):
        plain.produce(src, value=f"in-{i}".encode(), partition=0)
    assert plain.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "log_level": 2})
    c.assign([TopicPartition(src, 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        got += [m for m in c.consume(10, 0.2) if m.error() is None]
    assert len(got) == 10
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)

    def committed():
        offs = admin.list_group_offsets(group).get(group, {})
        o = [v.offset for tp, v in offs.items() if tp.topic == src and tp.partition == 0]
        return o[0] if o and o[0] >= 0 else None

    try:
        p = txn_producer(broker.bootstrap, f"offs-{uuid.uuid4().hex[:6]}")
        p.init_transactions(30)
        for commit in (False, True):
            p.begin_transaction()
            for m in got:
                p.produce(dst, value=m.value(), partition=0)
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
            assert committed() is None  # pending in the transaction
            if commit:
                p.commit_transaction(30)
            else:
                p.abort_transaction(30)
                assert committed() is None
        assert wait_for("the offset committed with the transaction", lambda: committed() == 10, timeout=10)
    finally:
        admin.close()
        c.close()
    assert [v for _, v in read_partition(broker.bootstrap, dst, 0, "read_committed")] == [f"in-{i}" for i in range(10)]


def test_kafkajs_transactions_commit_abort_and_send_offsets(broker, topic_name):
    from kafka import KafkaAdminClient

    create_topic(broker.bootstrap, topic_name)
    group, tid = f"js-{uuid.uuid4().hex[:6]}", f"js-{uuid.uuid4().hex[:6]}"
    out = subprocess.run(["node", str(JS / "transactions.js"), broker.bootstrap, topic_name, group, tid],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    told = {t["name"]: int(t["baseOffset"]) for t in json.loads(out.stdout)}
    # Each transaction's five records, then its marker.
    assert told == {"c1": 0, "a": 6, "c2": 12}, told
    committed = read_partition(broker.bootstrap, topic_name, 0, "read_committed")
    assert committed == [(i, f"c1-{i}") for i in range(5)] + [(12 + i, f"c2-{i}") for i in range(5)], committed
    everything = read_partition(broker.bootstrap, topic_name, 0, "read_uncommitted")
    assert [o for o, v in everything if v.startswith("a-")] == list(range(6, 11)), everything
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        offs = admin.list_group_offsets(group).get(group, {})
        assert [v.offset for tp, v in offs.items() if tp.topic == topic_name and tp.partition == 0] == [5], offs
    finally:
        admin.close()


# 2-4. the pipeline --------------------------------------------------------------------------------


class Pipeline:
    """eos_app.py as a subprocess over `n` input records, with a read_committed reader of
    the output running alongside, and the history both leave for the checker."""

    def __init__(self, root, bootstrap, partitions, n, assign=0, batch=5, abort_every=4):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.n = n
        self.assign = assign
        self.batch = batch
        self.abort_every = abort_every
        tag = uuid.uuid4().hex[:6]
        self.src, self.dst = f"eos-in-{tag}", f"eos-out-{tag}"
        self.group, self.tid = f"eos-group-{tag}", f"eos-app-{tag}"
        self.log = self.root / "app.log"
        self.proc = None
        self.instances = 0
        self.exits = []  # exit codes of instances that ended without being killed by us
        self.reads = []
        self._stop = threading.Event()
        self._reader = None
        self._scan = 0
        self._committed = 0
        self._pending = {}

    @property
    def inputs(self):
        return [f"in-{i:05d}" for i in range(self.n)]

    def fill(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5,
                      "log_level": 2})
        for i, v in enumerate(self.inputs):
            p.produce(self.src, value=v.encode(), partition=i % self.partitions)
        assert p.flush(60) == 0

    def start_app(self):
        self.instances += 1
        out = open(self.root / f"app-{self.instances}.out", "wb")
        args = [sys.executable, str(APP), self.bootstrap, self.src, self.dst, self.group, self.tid, str(self.log),
                str(self.instances), "--batch", str(self.batch), "--assign", str(self.assign),
                "--abort-every", str(self.abort_every)]
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def kill_app(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.start_app()

    def keep_app_running(self):
        code = self.proc.poll()
        if code is not None:
            self.exits.append(code)
            self.start_app()

    def stop_app(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def progress(self):
        """Input records whose transaction the app has seen commit so far."""
        with open(self.log) as f:
            f.seek(self._scan)
            for line in f:
                if not line.endswith("\n"):
                    break
                self._scan += len(line)
                e = json.loads(line)
                if e["op"] == "txn":
                    self._pending[e["txn"]] = len(e["records"])
                elif e["op"] == "commit":
                    self._committed += self._pending.pop(e["txn"], 0)
        return self._committed

    def done(self, checker_consumer):
        got = checker_consumer.committed([TopicPartition(self.src, p) for p in range(self.partitions)], timeout=5)
        want = {p: len(range(p, self.n, self.partitions)) for p in range(self.partitions)}
        return all(tp.offset == want[tp.partition] for tp in got)

    def start_reader(self):
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"live-{uuid.uuid4().hex[:6]}",
                      "isolation.level": "read_committed", "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                      "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 500, "metadata.recovery.strategy": "none",
                      "log_level": 0})
        c.assign([TopicPartition(self.dst, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        try:
            while not self._stop.is_set():
                for m in c.consume(500, 0.1):
                    if m.error() is None:
                        self.reads.append({"consumer": "live", "gen": 0, "index": len(self.reads),
                                           "partition": m.partition(), "offset": m.offset(), "value": m.value().decode()})
        finally:
            c.close()

    def stop_reader(self):
        self._stop.set()
        if self._reader:
            self._reader.join(timeout=30)

    def history(self, final_bootstrap):
        txns, writes = {}, {}
        with open(self.log) as f:
            for line in f:
                if not line.endswith("\n"):
                    continue  # torn by a kill
                e = json.loads(line)
                if e["op"] == "txn":
                    producer, seq = e["txn"].split("-")
                    txns[e["txn"]] = {"status": "unknown", "records": e["records"], "producer": producer,
                                      "seq": int(seq), "t_send": e["t"]}
                elif e["op"] in ("commit", "abort"):
                    txns[e["txn"]].update(status="committed" if e["op"] == "commit" else "aborted", t_done=e["t"])
                elif e["op"] == "write" and e["error"] is None:
                    writes[e["value"]] = {"partition": e["partition"], "offset": e["offset"]}
        committed = read_topic(final_bootstrap, self.dst, self.partitions, "read_committed", timeout=60)
        uncommitted = read_topic(final_bootstrap, self.dst, self.partitions, "read_uncommitted", timeout=60)
        return {"txns": txns, "writes": writes, "reads": self.reads, "inputs": self.inputs,
                "committed": {str(p): [list(r) for r in recs] for p, recs in committed.items()},
                "uncommitted": {str(p): [list(r) for r in recs] for p, recs in uncommitted.items()}}


def run_pipeline(pipe, faults, fault, finish_timeout=120):
    """Runs the app through `faults` (names handed to `fault`), each applied when the app
    has committed a further share of the input, then until every input offset is committed.
    Returns the checker's result."""
    pipe.fill()
    pipe.start_reader()
    pipe.start_app()
    applied = []
    checker_consumer = Consumer({"bootstrap.servers": pipe.bootstrap, "group.id": pipe.group,
                                 "enable.auto.commit": False, "log_level": 0})
    try:
        for i, kind in enumerate(faults):
            target = (i + 1) * pipe.n // (len(faults) + 2)
            wait_for(f"the app to commit {target} records before fault {i} ({kind})",
                     lambda: (pipe.keep_app_running(), pipe.progress() >= target)[1], timeout=90)
            t0 = time.monotonic()
            fault(kind)
            applied.append({"fault": kind, "progress": pipe.progress(), "seconds": round(time.monotonic() - t0, 1)})
        wait_for("every input offset committed by the app",
                 lambda: (pipe.keep_app_running(), pipe.done(checker_consumer))[1], timeout=finish_timeout, interval=0.2)
    finally:
        pipe.stop_app()
        pipe.stop_reader()
        checker_consumer.close()
    print(f"faults: {applied}; app instances {pipe.instances}, unexpected app exits {pipe.exits}")
    history = pipe.history(pipe.bootstrap)
    (pipe.root / "history.json").write_text(json.dumps(history))
    res = check_transactions(history)
    print(summary(res))
    return res


def assert_exactly_once(res, pipe):
    assert res["ok"], f"{summary(res)}\n{json.dumps(res['examples'], default=str)[:4000]}"
    assert res["info"]["final_records"] == pipe.n
    # The aborted-read check had something to catch: aborted records sit in the log.
    assert res["info"]["aborted_records_in_log"] > 0, res["info"]


def test_pipeline_exactly_once_through_broker_and_app_kills(tmp_path, make_broker):
    broker = make_broker({"group.initial.rebalance.delay.ms": "0"})
    broker.start()
    pipe = Pipeline(tmp_path / "pipeline", broker.bootstrap, partitions=3, n=1500)
    create_topic(broker.bootstrap, pipe.src, partitions=3)
    create_topic(broker.bootstrap, pipe.dst, partitions=3)

    def fault(kind):
        if kind == "broker":
            broker.kill9()
            broker.start()
        else:
            pipe.kill_app()

    res = run_pipeline(pipe, ["app", "broker"] * 5, fault)
    assert_exactly_once(res, pipe)
    assert pipe.instances >= 6  # five kills, plus any restart after a stall or fatal error


CLUSTER_SETTINGS = {
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.state.log.num.partitions": "6",
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
}


def test_pipeline_exactly_once_on_three_nodes_through_leader_kills(tmp_path, make_cluster):
    c = make_cluster(voters=3, settings=CLUSTER_SETTINGS)
    boot = c.bootstrap()
    wait_for("3 live brokers", lambda: live_brokers(boot) == [1, 2, 3], timeout=30)
    # A transaction takes about a second on three nodes (2026-11-23: TxnOffsetCommit and EndTxn
    # answer after ~200 ms each, about replica.fetch.wait.max.ms), so the input is small.
    pipe = Pipeline(tmp_path / "pipeline", boot, partitions=3, n=300, batch=10, abort_every=5)
    for t in (pipe.src, pipe.dst):
        create_replicated_topic(boot, t, partitions=3, rf=3, config={"min.insync.replicas": "2"})
        wait_for(f"{t} fully replicated", lambda: fully_replicated(boot, t, 3), timeout=30)
    rng = random.Random(12)

    def fault(kind):
        if kind == "app":
            pipe.kill_app()
            return
        topic = rng.choice([pipe.src, pipe.dst])
        part = rng.randrange(pipe.partitions)
        leader = partition_state(boot, topic)[part]["leader"]
        node = c.nodes[leader]
        node.kill9()
        wait_for(f"a new leader of {topic}-{part} after killing {leader}",
                 lambda: partition_state(c.bootstrap(exclude=(leader,)), topic, timeout=3)[part]["leader"] not in (leader, -1),
                 timeout=30)
        node.start()
        for t in (pipe.src, pipe.dst):
            wait_for(f"{t} fully replicated again", lambda: fully_replicated(boot, t, 3), timeout=45)

    try:
        res = run_pipeline(pipe, ["leader", "app", "leader", "leader"], fault, finish_timeout=150)
    finally:
        drop_admins()
    assert_exactly_once(res, pipe)
