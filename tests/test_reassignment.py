"""Scale-out without downtime: add a fourth broker to a running cluster and move
partitions onto it with AlterPartitionReassignments while a producer and a
consumer keep going. Real processes, real clients (confluent-kafka for data,
kafka-python's admin client for the reassignment)."""

import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition as KTP

from conftest import Cluster


def wait_for(what, cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def replicas(admin, topic):
    md = admin.list_topics(topic, timeout=5)
    return {p.id: (p.leader, list(p.replicas), sorted(p.isrs)) for p in md.topics[topic].partitions.values()}


def test_add_a_broker_and_move_partitions_onto_it_under_load(tmp_path):
    c = Cluster(tmp_path / "c", voters=3, extra_brokers=1)
    new = c.nodes[4]
    for i in (1, 2, 3):
        c.nodes[i].start_async()
    for i in (1, 2, 3):
        c.nodes[i].wait_listening()
    try:
        boot = ",".join(c.nodes[i].bootstrap for i in (1, 2, 3))
        admin = AdminClient({"bootstrap.servers": boot})

        def create():
            try:
                admin.create_topics([NewTopic("move", 2, 3, config={"min.insync.replicas": "2"})])["move"].result(10)
                return True
            except Exception:
                return False

        wait_for("topic created on 3 brokers", create)
        acked, errors, stop = {}, [], threading.Event()
        producer = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
                             "enable.idempotence": False, "max.in.flight.requests.per.connection": 1,
                             "message.timeout.ms": 60000})

        def on_delivery(err, msg):
            if err:
                errors.append(str(err))
            else:
                acked[msg.value()] = (msg.partition(), msg.offset())

        def produce():
            i = 0
            while not stop.is_set():
                producer.produce("move", key=b"k%d" % (i % 16), value=b"m%06d" % i, on_delivery=on_delivery)
                producer.poll(0)
                i += 1
                time.sleep(0.002)
            producer.flush(60)

        consumed = {}

        def consume():
            cons = Consumer({"bootstrap.servers": boot, "group.id": "mover", "auto.offset.reset": "earliest"})
            cons.subscribe(["move"])
            while not stop.is_set():
                m = cons.poll(0.2)
                if m is not None and not m.error():
                    consumed[m.value()] = (m.partition(), m.offset())
            cons.close()

        threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
        for t in threads:
            t.start()
        wait_for("some acknowledged writes", lambda: len(acked) > 200)

        # A fourth broker joins the running cluster.
        new.start()
        wait_for("broker 4 registered", lambda: 4 in {b.id for b in admin.list_topics(timeout=5).brokers.values()})

        # Move every partition so that broker 4 replaces its first replica.
        before = replicas(admin, "move")
        plan = {KTP("move", p): [4] + r[1][1:] for p, r in before.items()}
        ka = KafkaAdminClient(bootstrap_servers=boot)
        try:
            result = ka.alter_partition_reassignments(plan)
            assert all(v is None for v in result.values()), result
            wait_for("reassignment done", lambda: ka.list_partition_reassignments() == {}, timeout=60)
        finally:
            ka.close()
        after = replicas(admin, "move")
        print("before", before, "after", after, "acked", len(acked))
        for p, r in after.items():
            assert r[1] == plan[KTP("move", p)], after
            assert 4 in r[2], after
        n_at_move = len(acked)
        wait_for("writes continue after the move", lambda: len(acked) > n_at_move + 200)
        stop.set()
        for t in threads:
            t.join(90)
        assert not errors, errors[:5]

        # Every acknowledged record is readable at its offset, now served by the new replica set.
        cons = Consumer({"bootstrap.servers": boot, "group.id": "check", "enable.auto.commit": False})
        cons.assign([TopicPartition("move", p, 0) for p in after])
        seen = {}
        deadline = time.time() + 60
        while len(seen) < len(acked) and time.time() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                seen[m.value()] = (m.partition(), m.offset())
        cons.close()
        lost = [v for v in acked if seen.get(v) != acked[v]]
        assert not lost, f"{len(lost)} acknowledged records missing or moved, e.g. {lost[:3]}"
        # The consumer that ran through the move saw records from both sides of it.
        assert len(consumed) > n_at_move // 2
        # Broker 4 holds the data itself: its log directories exist with segments.
        for p in after:
            segs = list(Path(new.data_dir, f"move-{p}").glob("*.log"))
            assert segs and sum(s.stat().st_size for s in segs) > 0, p
    finally:
        c.stop()
