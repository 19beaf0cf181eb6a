"""Small client-side helpers shared by the workload and the replication tests."""

import socket
import struct
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
        nt = NewTopic(name, num_partitions=len(assignment), replication_factor=-1, replica_assignment=assignment, config=config or {})
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


def broker_view(address, topic, timeout=2.0):
    """What one broker itself says (a Metadata v1 request over a plain socket, so no client
    library picks another broker): ({live broker ids}, {partition: {"leader", "replicas", "isr"}})."""
    host, _, port = address.rpartition(":")
    name = topic.encode()
    body = struct.pack(">hhih", 3, 1, 1, 6) + b"jepsen" + struct.pack(">ih", 1, len(name)) + name
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        n = struct.unpack(">i", _recv(s, 4))[0]
        buf = _recv(s, n)
    pos = 4  # correlation id

    def i16():
        nonlocal pos
        pos += 2
        return struct.unpack_from(">h", buf, pos - 2)[0]

    def i32():
        nonlocal pos
        pos += 4
        return struct.unpack_from(">i", buf, pos - 4)[0]

    def string():
        nonlocal pos
        n = i16()
        if n < 0:
            return None
        pos += n
        return buf[pos - n:pos].decode()

    brokers = set()
    for _ in range(i32()):
        brokers.add(i32())
        string(), i32(), string()  # host, port, rack
    i32()  # controller id
    parts = {}
    for _ in range(i32()):
        err, tname = i16(), string()
        pos += 1  # is_internal
        for _ in range(i32()):
            perr, p, leader = i16(), i32(), i32()
            replicas = [i32() for _ in range(i32())]
            isr = [i32() for _ in range(i32())]
            if tname == topic and err == 0:
                parts[p] = {"leader": leader, "replicas": replicas, "isr": isr, "error": perr}
    return brokers, parts


def _recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed")
        out += chunk
    return out


def all_agree_whole(addresses, topic, broker_ids, partitions):
    """The partition state if every broker in `addresses` lists exactly `broker_ids` as live
    and shows the same leaders, each of the topic's `partitions` led and with its whole
    replica set in the ISR; else None."""
    seen = None
    for a in addresses:
        brokers, parts = broker_view(a, topic)
        if sorted(brokers) != sorted(broker_ids) or len(parts) != partitions:
            return None
        if not all(s["leader"] >= 0 and sorted(s["isr"]) == sorted(s["replicas"]) for s in parts.values()):
            return None
        leaders = {p: s["leader"] for p, s in parts.items()}
        if seen is not None and leaders != seen[0]:
            return None
        seen = (leaders, parts)
    return seen[1] if seen else None
