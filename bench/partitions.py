#!/usr/bin/env python3
"""Helper for bench/partitions.sh: the parts a shell cannot do well. Each subcommand
prints one line of figures on stdout (diagnostics go to stderr).

  partitions.py create BOOTSTRAP TOPIC N         CreateTopics N partitions (one request), then poll a
                                                 full Metadata until all N have a leader: "SECONDS"
  partitions.py fill BOOTSTRAP TOPIC N [ACKS]    one 100-byte message to every partition (confluent-kafka
                                                 Producer, explicit partitions): "SECONDS FAILED"
  partitions.py metadata BOOTSTRAP [ROUNDS]      full Metadata (all topics) over a raw socket, ROUNDS times:
                                                 "MEDIAN_MS BYTES PARTITIONS" (bytes: the whole response)
  partitions.py ready BOOTSTRAP N START [TIMEOUT] poll a full Metadata (connection refusals included) until
                                                 N partitions of non-internal topics have a leader:
                                                 "SECONDS" since START (a time.time() value)

Metadata is sent as v12 (what librdkafka 2.x sends; flexible encoding, topic ids) unless
STROM_METADATA_VERSION=1.
"""

import socket
import statistics
import struct
import sys
import time

MD_VERSION = int(__import__("os").environ.get("STROM_METADATA_VERSION", "12"))


def _uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def metadata_request(version, correlation_id=1):
    client = b"strom-bench"
    if version >= 9:
        header = struct.pack(">hhih", 3, version, correlation_id, len(client)) + client + b"\x00"
        body = _uvarint(0)  # topics: null = all topics
        body += b"\x00"  # allow_auto_topic_creation
        if version <= 10:
            body += b"\x00"  # include_cluster_authorized_operations
        body += b"\x00"  # include_topic_authorized_operations
        body += b"\x00"  # tagged fields
    else:
        header = struct.pack(">hhih", 3, version, correlation_id, len(client)) + client
        body = struct.pack(">i", -1)  # topics: null = all topics
        if version >= 4:
            body += b"\x00"
        if version >= 8:
            body += b"\x00\x00"
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def _recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        c = sock.recv(min(n - got, 1 << 20))
        if not c:
            raise ConnectionError("connection closed mid-response")
        chunks.append(c)
        got += len(c)
    return b"".join(chunks)


def fetch_metadata(bootstrap, version=MD_VERSION, timeout=120, sock=None):
    """-> (seconds from send to last byte, response bytes incl. the size prefix, raw body)"""
    host, port = bootstrap.rsplit(":", 1)
    own = sock is None
    if own:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        sock.settimeout(timeout)
        req = metadata_request(version)
        t0 = time.perf_counter()
        sock.sendall(req)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        body = _recv_exact(sock, size)
        return time.perf_counter() - t0, size + 4, body
    finally:
        if own:
            sock.close()


def user_partitions(bootstrap, timeout=120):
    """(partitions led in non-internal topics, {topic: (internal, partitions, led)}), from librdkafka's Metadata."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 60000, "log_level": 0})
    md = admin.list_topics(timeout=timeout)
    topics = {}
    for name, t in md.topics.items():
        led = sum(1 for q in t.partitions.values() if q.leader >= 0 and q.error is None)
        topics[name] = (name.startswith("__"), len(t.partitions), led)
    return sum(led for internal, _, led in topics.values() if not internal), topics


def cmd_create(bootstrap, topic, n):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 300000, "log_level": 3})
    t0 = time.time()
    fut = admin.create_topics([NewTopic(topic, num_partitions=n, replication_factor=1)],
                              operation_timeout=600, request_timeout=600)[topic]
    fut.result(timeout=660)
    while True:
        _, topics = user_partitions(bootstrap)
        if topics.get(topic, (0, 0, 0))[2] == n:
            break
        time.sleep(0.05)
    print(f"{time.time() - t0:.2f}")


def cmd_fill(bootstrap, topic, n, acks="1"):
    from confluent_kafka import Producer

    failed = []
    done = [0]

    def cb(err, _msg):
        done[0] += 1
        if err is not None:
            failed.append(err.str())

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5, "log_level": 3,
                  "queue.buffering.max.messages": max(100000, n + 1000), "queue.buffering.max.kbytes": 1048576,
                  "batch.num.messages": 100000, "message.timeout.ms": 900000})
    value = b"x" * 100
    t0 = time.time()
    for part in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=part, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        if part % 10000 == 0:
            p.poll(0)
    left = p.flush(900)
    elapsed = time.time() - t0
    if failed:
        print(f"fill: {len(failed)} deliveries failed, e.g. {failed[:3]}", file=sys.stderr)
    print(f"{elapsed:.2f} {len(failed) + left}")


def cmd_metadata(bootstrap, rounds=5):
    times, sizes = [], []
    with socket.create_connection(tuple((bootstrap.rsplit(":", 1)[0], int(bootstrap.rsplit(":", 1)[1]))), timeout=120) as s:
        fetch_metadata(bootstrap, sock=s)  # warm the connection
        for _ in range(rounds):
            t, size, body = fetch_metadata(bootstrap, sock=s)
            times.append(t)
            sizes.append(size)
    parts = user_partitions(bootstrap)[0]
    print(f"{statistics.median(times) * 1000:.1f} {sizes[-1]} {parts}")


def cmd_ready(bootstrap, n, start, timeout=900):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            led, _ = user_partitions(bootstrap, timeout=30)
            if led >= n:
                print(f"{time.time() - start:.2f}")
                return
            last = f"{led} of {n} partitions led"
        except Exception as e:  # noqa: BLE001 - not up yet
            last = repr(e)
        time.sleep(0.05)
    print(f"ready: gave up after {timeout}s: {last}", file=sys.stderr)
    print("timeout")
    sys.exit(1)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, bootstrap, rest = argv[1], argv[2], argv[3:]
    if cmd == "create":
        cmd_create(bootstrap, rest[0], int(rest[1]))
    elif cmd == "fill":
        cmd_fill(bootstrap, rest[0], int(rest[1]), *rest[2:3])
    elif cmd == "metadata":
        cmd_metadata(bootstrap, int(rest[0]) if rest else 5)
    elif cmd == "ready":
        cmd_ready(bootstrap, int(rest[0]), float(rest[1]), *(float(x) for x in rest[2:3]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
