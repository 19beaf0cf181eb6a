"""Small client-side helpers shared by the workload and the replication tests."""

import time

from confluent_kafka.admin import AdminClient, NewTopic

_admins = {}


def admin(bootstrap):
    """One AdminClient per bootstrap string, kept alive (futures of a collected client fail)."""
    a = _admins.get(bootstrap)
    if a is None:
        a = _admins[bootstrap] = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000,
                                              "reconnect.backoff.max.ms": 500, "log_level": 2})
    return a


def drop_admins():
    _admins.clear()


def metadata(bootstrap, topic=None, timeout=5):
    return admin(bootstrap).list_topics(topic=topic, timeout=timeout)


def wait_for(what, check, timeout=30, interval=0.1):
    """Polls `check` until it returns something truthy and returns that; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - a node starting, dying or cut off
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: last saw {last!r}")
        time.sleep(interval)


def create_topic(bootstrap, name, partitions=1, rf=3, config=None, assignment=None, timeout=30):
    if assignment is not None:
        nt = NewTopic(name, replica_assignment=assignment, config=config or {})
    else:
        nt = NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config or {})
    fut = admin(bootstrap).create_topics([nt], request_timeout=timeout)
    fut[name].result(timeout=timeout)


def live_brokers(bootstrap, timeout=5):
    return sorted(metadata(bootstrap, timeout=timeout).brokers)


def partition_state(bootstrap, topic, timeout=5):
    """{partition: {"leader": id, "replicas": [...], "isr": [...]}} as some broker of `bootstrap` sees it."""
    md = metadata(bootstrap, topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise RuntimeError(f"topic {topic}: {None if t is None else t.error}")
    return {p.id: {"leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs)} for p in t.partitions.values()}


def fully_replicated(bootstrap, topic, partitions=None, timeout=5):
    """The partition state if every partition has a leader and its whole replica set in the ISR."""
    st = partition_state(bootstrap, topic, timeout=timeout)
    if partitions is not None and len(st) != partitions:
        return None
    ok = all(s["leader"] >= 0 and sorted(s["isr"]) == sorted(s["replicas"]) for s in st.values())
    return st if ok else None
