"""The queue workload: producers, consumers and a nemesis against a running cluster.

`run(cluster, **options)` creates a fresh topic, then for `duration` seconds
- producers (confluent-kafka, acks=all, no idempotence, one request in flight)
  write unique values `p<producer>-<seq>` at a steady rate, each to partition
  `(seq + producer) % partitions`, recording every delivery report;
- consumers read concurrently (assigned every partition from offset 0, or in a
  consumer group, or a mix), recording every record they see;
- the nemesis applies one fault at a time from a schedule drawn from `seed`
  (kill -9 then restart, SIGSTOP then SIGCONT, isolate then heal, split the
  node from its peers while clients still reach it), waiting after each for the
  cluster to be whole again;
then heals everything, lets producers run `recovery` seconds more, stops them,
reads every partition from offset 0 (the final read), compares the replicas'
log files with each other, and runs the checker (`checker.py`).

The cluster is a `conftest.Cluster` or a `netns.NetnsCluster`; network faults
need the latter.
"""

import itertools
import random
import signal
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from . import segments
from .checker import check, FAILURES
from .util import all_agree_whole, broker_view, create_topic, fully_replicated, live_brokers, partition_state, wait_for

ALL_FAULTS = ("kill", "pause", "isolate", "split")
NETWORK_FAULTS = ("isolate", "split")

DEFAULTS = dict(
    duration=30.0,
    seed=7,
    partitions=3,
    replication_factor=3,
    min_insync_replicas=2,
    producers=3,
    consumers=3,
    consumer_mode="assign",  # assign | group | mixed
    rate=40.0,  # writes per second per producer
    faults=("kill", "pause", "isolate"),
    hold=(2.0, 5.0),  # seconds a fault lasts
    quiet=(1.0, 3.0),  # seconds of calm after the cluster is whole again
    first_fault=2.0,  # seconds of calm before the first fault
    leader_bias=0.7,  # chance a fault targets a partition leader rather than any node
    schedule=None,  # an explicit list of steps instead of a seeded one
    recovery=4.0,  # seconds producers go on after everything healed
    message_timeout_ms=60000,
    request_timeout_ms=5000,
    healthy_timeout=30.0,  # how long the nemesis waits for the cluster to be whole after a fault
    final_timeout=60.0,
    replica_timeout=20.0,  # how long replicas get to converge before they count as divergent
    topic=None,
    client_log_level=2,
    verbose=False,
)


def make_schedule(seed, faults, nodes, partitions, steps=400, hold=(2.0, 5.0), quiet=(1.0, 3.0), leader_bias=0.7):
    """A reproducible list of nemesis steps: which fault, on whom, for how long."""
    rng = random.Random(seed)
    out = []
    for _ in range(steps):
        op = rng.choice(list(faults))
        if rng.random() < leader_bias:
            target = f"leader:{rng.randrange(partitions)}"
        else:
            target = f"node:{rng.choice(sorted(nodes))}"
        out.append({"op": op, "target": target, "hold": round(rng.uniform(*hold), 2), "quiet": round(rng.uniform(*quiet), 2)})
    return out


class Nodes:
    """Fault operations over either cluster flavour."""

    def __init__(self, cluster):
        self.c = cluster
        self.net = getattr(cluster, "net", None)
        self.paused = set()
        self.split_from = {}

    def supports(self, op):
        return op not in NETWORK_FAULTS or self.net is not None

    def ids(self):
        return sorted(b.node_id for b in self.c.brokers)

    def bootstrap(self, exclude=()):
        return ",".join(b.bootstrap for b in self.c.brokers if b.node_id not in exclude)

    def kill(self, i):
        self.paused.discard(i)
        self.c.nodes[i].kill9()

    def start(self, i):
        self.c.nodes[i].start()

    def pause(self, i):
        b = self.c.nodes[i]
        if b.proc and b.proc.poll() is None:
            b.proc.send_signal(signal.SIGSTOP)
            self.paused.add(i)
            if hasattr(b, "paused"):
                b.paused = True

    def resume(self, i):
        b = self.c.nodes[i]
        if b.proc and b.proc.poll() is None:
            b.proc.send_signal(signal.SIGCONT)
        self.paused.discard(i)
        if hasattr(b, "paused"):
            b.paused = False

    def isolate(self, i):
        self.net.isolate(i)

    def heal(self, i):
        self.net.heal(i)

    def split(self, i):
        """Cut i from the other nodes; clients in the root namespace still reach everyone."""
        others = [j for j in self.c.nodes if j != i]
        for j in others:
            self.net.block(i, j)
        self.split_from[i] = others

    def unsplit(self, i):
        for j in self.split_from.pop(i, []):
            self.net.unblock(i, j)

    def heal_all(self):
        if self.net is not None:
            self.net.heal_all()
        self.split_from.clear()
        for i in list(self.paused):
            self.resume(i)
        dead = [b for b in self.c.nodes.values() if b.proc is None or b.proc.poll() is not None]
        for b in dead:
            b.start_async()
        for b in dead:
            b.wait_listening()
        return [b.node_id for b in dead]


APPLY = {"kill": ("kill", "start"), "pause": ("pause", "resume"), "isolate": ("isolate", "heal"), "split": ("split", "unsplit")}


class Run:
    def __init__(self, cluster, **options):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown workload options: {sorted(unknown)}")
        self.o = {**DEFAULTS, **options}
        self.o["faults"] = tuple(self.o["faults"])
        self.cluster = cluster
        self.nodes = Nodes(cluster)
        self.topic = self.o["topic"] or f"jepsen-{uuid.uuid4().hex[:8]}"
        self.events = []
        self.writes = []  # one list per producer
        self.reads = []  # one list per consumer
        self.stop_producers = threading.Event()
        self.stop_consumers = threading.Event()
        self.abort = threading.Event()
        self.t0 = None
        self.errors = []
        self.rng = random.Random(self.o["seed"] * 7919 + 1)

    # bookkeeping
    def now(self):
        return round(time.monotonic() - self.t0, 3)

    def event(self, _type, **kw):
        e = {"t": self.now(), "type": _type, **kw}
        self.events.append(e)
        if self.o["verbose"]:
            print(f"[{e['t']:7.2f}] {_type} {kw}", flush=True)
        return e

    def boot(self):
        return self.nodes.bootstrap()

    # cluster state
    def healthy(self):
        """Every broker, asked directly, agrees that all brokers are live and every partition
        has a leader and its whole replica set in sync (one stale broker is not enough)."""
        return all_agree_whole([b.bootstrap for b in self.cluster.brokers], self.topic, self.nodes.ids(), self.o["partitions"])

    def wait_healthy(self, timeout):
        try:
            wait_for("the cluster to be whole", self.healthy, timeout=timeout, interval=0.2)
            return True
        except AssertionError as e:
            self.event("unhealthy", detail=str(e)[:300])
            return False

    def resolve(self, target):
        kind, _, arg = target.partition(":")
        ids = self.nodes.ids()
        if kind == "leader":
            try:
                leader = partition_state(self.boot(), self.topic, timeout=3)[int(arg)]["leader"]
                if leader in ids:
                    return leader
            except Exception:  # noqa: BLE001
                pass
            return self.rng.choice(ids)
        return int(arg)

    # threads
    def producer(self, idx):
        o = self.o
        writes = self.writes[idx]
        p = Producer({
            "bootstrap.servers": self.boot(),
            "acks": "all",
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 1,
            "message.timeout.ms": o["message_timeout_ms"],
            "request.timeout.ms": o["request_timeout_ms"],
            "retries": 2147483647,
            "retry.backoff.ms": 100,
            "retry.backoff.max.ms": 1000,
            "linger.ms": 5,
            "socket.timeout.ms": 10000,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
            "log_level": o["client_log_level"],
        })

        def report(w):
            def cb(err, msg):
                w["t_done"] = self.now()
                if err is None:
                    w["status"], w["offset"] = "ok", msg.offset()
                    if msg.partition() != w["partition"]:
                        w["reported_partition"] = msg.partition()
                else:
                    w["status"], w["error"] = "fail", err.name()
            return cb

        interval = 1.0 / o["rate"]
        nxt = time.monotonic()
        for seq in itertools.count():
            if self.stop_producers.is_set():
                break
            part = (seq + idx) % o["partitions"]
            w = {"value": f"p{idx}-{seq}", "producer": idx, "seq": seq, "partition": part, "status": "unknown",
                 "offset": None, "error": None, "t_send": self.now(), "t_done": None}
            writes.append(w)
            while True:
                try:
                    p.produce(self.topic, value=w["value"].encode(), partition=part, on_delivery=report(w))
                    break
                except BufferError:
                    p.poll(0)
                    time.sleep(0.05)
            nxt += interval
            # poll(0) and sleep rather than poll(timeout): with confluent-kafka 2.16 a poll with a
            # timeout was seen to block for seconds past it while a leader was unreachable.
            before = time.monotonic()
            p.poll(0)
            if time.monotonic() - before > 1.0:
                self.event("slow-poll", producer=idx, seconds=round(time.monotonic() - before, 2))
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                nxt = time.monotonic()  # fell behind (a stall): do not burst to catch up
        left = p.flush(o["message_timeout_ms"] / 1000 + 5)
        if left:
            self.event("producer-flush-incomplete", producer=idx, left=left)

    def consumer(self, idx, mode):
        o = self.o
        name = f"c{idx}"
        reads = self.reads[idx]
        state = {"gen": 0, "index": 0}
        c = Consumer({
            "bootstrap.servers": self.boot(),
            "group.id": f"{self.topic}-group" if mode == "group" else f"{self.topic}-solo-{idx}",
            "enable.auto.commit": mode == "group",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
            "socket.timeout.ms": 10000,
            "reconnect.backoff.max.ms": 1000,
            "log_level": o["client_log_level"],
        })

        def rebalance(kind):
            def cb(consumer, partitions):
                state["gen"] += 1
                self.event("rebalance", consumer=name, kind=kind, partitions=[tp.partition for tp in partitions], gen=state["gen"])
            return cb

        if mode == "group":
            c.subscribe([self.topic], on_assign=rebalance("assign"), on_revoke=rebalance("revoke"), on_lost=rebalance("lost"))
        else:
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(o["partitions"])])
        try:
            while not self.stop_consumers.is_set():
                try:
                    msgs = c.consume(200, 0.2)
                except KafkaException as e:
                    self.event("consumer-error", consumer=name, error=str(e))
                    continue
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        # An offset reset or detected truncation moves the position: a new generation.
                        if err.name() in ("_AUTO_OFFSET_RESET", "_LOG_TRUNCATION", "OFFSET_OUT_OF_RANGE"):
                            state["gen"] += 1
                            self.event("consumer-reset", consumer=name, error=err.name(), detail=err.str(), gen=state["gen"])
                        else:
                            self.event("consumer-error", consumer=name, error=err.name(), detail=err.str())
                        continue
                    reads.append({"consumer": name, "gen": state["gen"], "index": state["index"], "partition": m.partition(),
                                  "offset": m.offset(), "value": m.value().decode(errors="replace"), "t": self.now()})
                    state["index"] += 1
        finally:
            c.close()

    def watchdog(self):
        """Notes a producer thread that stops sending (a client stuck, not a broker answer), with its stack."""
        import sys
        import traceback

        stalled = set()
        while not self.stop_producers.wait(1.0):
            now = self.now()
            for i, ws in enumerate(self.writes):
                quiet = now - ws[-1]["t_send"] if ws else 0
                if quiet > 5 and i not in stalled:
                    stalled.add(i)
                    frames = sys._current_frames()
                    stacks = {t.name: "".join(traceback.format_stack(frames[t.ident])[-2:]) for t in threading.enumerate()
                              if t.ident in frames and t.name != "watchdog"}
                    self.event("producer-stalled", producer=i, quiet_s=round(quiet, 1), stacks=stacks)
                elif quiet <= 5 and i in stalled:
                    stalled.discard(i)
                    self.event("producer-resumed", producer=i)

    def nemesis(self):
        o = self.o
        faults = [f for f in o["faults"] if self.nodes.supports(f)]
        if o["schedule"] is not None:
            steps = o["schedule"]
        elif faults:
            steps = make_schedule(o["seed"], faults, self.nodes.ids(), o["partitions"], hold=o["hold"], quiet=o["quiet"],
                                  leader_bias=o["leader_bias"])
        else:
            steps = []
        if o["schedule"] is None and self.abort.wait(o["first_fault"]):
            return
        for step in steps:
            if "at" in step:
                if self.abort.wait(max(0.0, step["at"] - (time.monotonic() - self.t0))):
                    return
            if time.monotonic() - self.t0 + step["hold"] > o["duration"] or self.abort.is_set():
                break
            node = self.resolve(step["target"])
            do, undo = APPLY[step["op"]]
            self.event("fault", op=step["op"], node=node, target=step["target"], hold=step["hold"])
            getattr(self.nodes, do)(node)
            if self.abort.wait(step["hold"]):
                return
            started = time.monotonic()
            getattr(self.nodes, undo)(node)
            self.event("recover", op=step["op"], node=node)
            whole = self.wait_healthy(o["healthy_timeout"])
            self.event("whole" if whole else "not-whole", after=round(time.monotonic() - started, 2))
            if self.abort.wait(step.get("quiet", 0)):
                return

    # phases
    def final_read(self):
        """Every partition from offset 0 to its end. The end is the high watermark when the
        client can tell it, else the partition-EOF event (which also fires at the high watermark)."""
        o = self.o
        parts = range(o["partitions"])
        deadline = time.monotonic() + o["final_timeout"]
        c = Consumer({"bootstrap.servers": self.boot(), "group.id": f"{self.topic}-final", "enable.auto.commit": False,
                      "enable.partition.eof": True, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50,
                      "log_level": o["client_log_level"]})
        try:
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            hw = {}
            for p in parts:
                try:
                    hw[p] = wait_for(f"high watermark of partition {p}",
                                     lambda p=p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5, cached=False),
                                     timeout=10)[1]
                except AssertionError as e:
                    self.event("final-read-no-watermark", partition=p, detail=str(e)[-300:])
            out = {p: [] for p in parts}
            done = {p for p, h in hw.items() if h <= 0}
            while len(done) < o["partitions"] and time.monotonic() < deadline:
                for m in c.consume(1000, 0.5):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if m.offset() >= hw.get(m.partition(), 0):
                                done.add(m.partition())
                        else:
                            self.event("final-read-error", error=err.name(), detail=err.str())
                        continue
                    out[m.partition()].append([m.offset(), m.value().decode(errors="replace")])
                    if m.partition() in hw and m.offset() >= hw[m.partition()] - 1:
                        done.add(m.partition())
            complete = len(done) == o["partitions"]
            if not complete:
                views = {}
                for b in self.cluster.brokers:
                    try:
                        views[b.node_id] = broker_view(b.bootstrap, self.topic)[1]
                    except Exception as e:  # noqa: BLE001
                        views[b.node_id] = repr(e)
                self.event("final-read-incomplete", missing=sorted(set(parts) - done), hw=hw, broker_views=views)
            return out, hw, complete
        finally:
            c.close()

    def replica_logs(self, p, replicas):
        return {n: segments.log_batches(self.cluster.nodes[n].data_dir, self.topic, p) for n in replicas}

    def compare_replicas(self):
        """{partition: differences} still left after `replica_timeout`; {} when every replica matches its leader."""
        deadline = time.monotonic() + self.o["replica_timeout"]
        while True:
            diffs = {}
            try:
                st = partition_state(self.boot(), self.topic, timeout=3)
            except Exception as e:  # noqa: BLE001
                st, diffs = {}, {"metadata": str(e)}
            for p, s in st.items():
                order = [s["leader"]] + [r for r in s["replicas"] if r != s["leader"]]
                d = segments.compare(self.replica_logs(p, [r for r in order if r in self.cluster.nodes]), reference=s["leader"])
                if d:
                    diffs[p] = d
            if not diffs or time.monotonic() >= deadline:
                return diffs
            time.sleep(0.5)

    def run(self):
        o = self.o
        boot = self.boot()
        setup = time.monotonic()
        ids = self.nodes.ids()
        wait_for("every broker registered", lambda: live_brokers(boot) == ids, timeout=30)
        create_topic(boot, self.topic, partitions=o["partitions"], rf=o["replication_factor"],
                     config={"min.insync.replicas": str(o["min_insync_replicas"])})
        wait_for("the topic fully replicated", lambda: fully_replicated(boot, self.topic, o["partitions"]), timeout=30)
        self.t0 = time.monotonic()
        self.event("start", topic=self.topic, setup_seconds=round(self.t0 - setup, 2),
                   options={k: v for k, v in o.items() if k != "schedule"})
        self.writes = [[] for _ in range(o["producers"])]
        self.reads = [[] for _ in range(o["consumers"])]
        modes = {"assign": ["assign"], "group": ["group"], "mixed": ["assign", "group"]}[o["consumer_mode"]]
        producers = [threading.Thread(target=self._guard, args=(self.producer, i), name=f"producer-{i}", daemon=True)
                     for i in range(o["producers"])]
        consumers = [threading.Thread(target=self._guard, args=(self.consumer, i, modes[i % len(modes)]), name=f"consumer-{i}",
                                      daemon=True) for i in range(o["consumers"])]
        nemesis = threading.Thread(target=self._guard, args=(self.nemesis,), name="nemesis", daemon=True)
        watchdog = threading.Thread(target=self._guard, args=(self.watchdog,), name="watchdog", daemon=True)
        threads = consumers + producers + [nemesis, watchdog]
        try:
            for t in threads:
                t.start()
            nemesis.join(o["duration"] + 2 * o["healthy_timeout"] + 30)
            remaining = o["duration"] - (time.monotonic() - self.t0)
            if remaining > 0:
                self.abort.wait(remaining)
            self.abort.set()
            nemesis.join(60)
            started = self.nodes.heal_all()
            self.event("heal-all", started=started)
            whole = self.wait_healthy(o["healthy_timeout"])
            self.event("healed", whole=whole)
            heal_t = self.now()
            time.sleep(o["recovery"])  # producers keep writing: is the cluster available again?
            self.stop_producers.set()
            for t in producers:
                t.join(o["message_timeout_ms"] / 1000 + 30)
            self.event("producers-stopped")
            self.drain_consumers()
        finally:
            # Also on the way out of a failure: no client thread outlives the run.
            self.abort.set()
            self.stop_producers.set()
            self.stop_consumers.set()
        for t in consumers:
            t.join(30)
        final, hw, complete = self.final_read()
        self.event("final-read", hw=hw, complete=complete)
        divergent = self.compare_replicas()
        self.event("replicas-compared", divergent=sorted(divergent))
        history = self.history(final)
        result = check(history)
        result["failures"]["divergent_replicas"] = len(divergent)
        result["failures"]["final_read_incomplete"] = 0 if complete else 1
        result["failures"]["workload_errors"] = len(self.errors)
        result["ok"] = not any(result["failures"].values())
        result["examples"]["divergent_replicas"] = divergent
        result["examples"]["workload_errors"] = self.errors[:10]
        acked_after = sum(1 for ws in self.writes for w in ws if w["status"] == "ok" and w["t_send"] >= heal_t)
        result["info"]["acked_after_heal"] = acked_after
        gaps = self.ack_gaps()
        result["info"]["max_ack_gap_s"] = gaps[0]["gap"] if gaps else None
        result["examples"]["ack_gaps"] = gaps[:5]
        result["info"]["faults"] = sum(1 for e in self.events if e["type"] == "fault")
        result["info"]["consumer_resets"] = sum(1 for e in self.events if e["type"] == "consumer-reset")
        result["info"]["rebalances"] = sum(1 for e in self.events if e["type"] == "rebalance")
        result["info"]["producer_stalls"] = sum(1 for e in self.events if e["type"] == "producer-stalled")
        result["topic"] = self.topic
        result["seed"] = o["seed"]
        result["nemesis"] = [e for e in self.events if e["type"] in ("fault", "recover", "whole", "not-whole", "unhealthy",
                                                                      "heal-all", "healed")]
        result["history"] = history
        return result

    def ack_gaps(self):
        """The longest stretches, per partition, without an acknowledgement (availability, not safety)."""
        by_part = {}
        for ws in self.writes:
            for w in ws:
                if w["status"] == "ok":
                    by_part.setdefault(w["partition"], []).append(w["t_done"])
        gaps = []
        for p, ts in by_part.items():
            ts.sort()
            gaps += [{"partition": p, "gap": round(b - a, 2), "from": a} for a, b in zip(ts, ts[1:])]
        return sorted(gaps, key=lambda g: -g["gap"])[:20]

    def drain_consumers(self):
        """Gives consumers a few seconds to reach the end of the log (their reads are checked too)."""
        try:
            st = partition_state(self.boot(), self.topic, timeout=3)
        except Exception:  # noqa: BLE001
            return
        c = Consumer({"bootstrap.servers": self.boot(), "group.id": f"{self.topic}-hw", "log_level": self.o["client_log_level"]})
        try:
            hw = {p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5, cached=False)[1] for p in st}
        except Exception:  # noqa: BLE001
            return
        finally:
            c.close()

        def caught_up():
            seen = {}
            for rs in self.reads:
                for r in rs[-2000:]:
                    seen[r["partition"]] = max(seen.get(r["partition"], -1), r["offset"])
            return all(seen.get(p, -1) >= h - 1 for p, h in hw.items())

        try:
            wait_for("consumers to reach the end", caught_up, timeout=10, interval=0.2)
        except AssertionError:
            self.event("consumers-behind")

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - recorded, fails the run
            import traceback

            self.errors.append(f"{threading.current_thread().name}: {e!r}\n{traceback.format_exc()[-1500:]}")
            self.event("thread-error", thread=threading.current_thread().name, error=repr(e))

    def history(self, final):
        return {
            "topic": self.topic,
            "partitions": self.o["partitions"],
            "writes": [w for ws in self.writes for w in ws],
            "reads": [r for rs in self.reads for r in rs],
            "final": {str(p): recs for p, recs in final.items()},
            "events": self.events,
        }


def run(cluster, **options):
    """Runs the workload against `cluster` and returns the checker's result (with the history)."""
    return Run(cluster, **options).run()


__all__ = ["run", "Run", "make_schedule", "DEFAULTS", "ALL_FAULTS", "FAILURES"]
