"""Hostile input: no request, frame or connection pattern may crash, stall or
corrupt the broker. The limits tested here are listed in docs/security.md.

The wire codec sizes `Vec::with_capacity` from counts read off the wire; before the
bounds check (crates/protocol/src/bounds) the first of these frames aborted the
whole broker.
"""

import gzip
import os
import random
import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from conftest import create_topic
from test_confluent import consume_all

HUGE_I32 = struct.pack(">i", 0x7FFFFFFF)
HUGE_UVARINT = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])


def header(api, version, flexible):
    h = struct.pack(">hhih", api, version, 7, -1)  # null client id
    return h + (b"\x00" if flexible else b"")


FRAMES = {
    "metadata v1 topics": header(3, 1, False) + HUGE_I32,
    "metadata v12 topics (compact)": header(3, 12, True) + HUGE_UVARINT,
    "produce v9 topic_data": header(0, 9, True) + b"\x00" + struct.pack(">hi", 1, 1000) + HUGE_UVARINT,
    "produce v3 topic_data": header(0, 3, False) + struct.pack(">hhi", -1, 1, 1000) + HUGE_I32,
    "fetch v12 topics": header(1, 12, True) + struct.pack(">iiiibii", -1, 100, 1, 1000, 0, 0, -1) + HUGE_UVARINT,
    "create_topics v2 topics": header(19, 2, False) + HUGE_I32,
    "offset_commit v2 topics": header(8, 2, False) + struct.pack(">h", 1) + b"g" + struct.pack(">ih", 1, 1) + b"m" + struct.pack(">q", -1) + HUGE_I32,
    "join_group v5 protocols": header(11, 5, False) + struct.pack(">h", 1) + b"g" + struct.pack(">iih", 6000, 6000, 0) + struct.pack(">h", -1) + struct.pack(">h", 8) + b"consumer" + HUGE_I32,
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_huge_counts_close_only_that_connection(broker, topic_name, name):
    create_topic(broker.bootstrap, topic_name, 1)
    body = FRAMES[name]
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.sendall(struct.pack(">i", len(body)) + body)
    s.settimeout(10)
    assert s.recv(100) == b"", "the broker closes the connection"
    s.close()
    assert broker.proc.poll() is None, "the broker process is still running"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic_name, value=b"still serving")
    assert p.flush(10) == 0
    assert consume_all(broker.bootstrap, topic_name, 1, expect=1)[0].value() == b"still serving"
    assert "closing connection" in broker.read_log()


def rss_kib(pid, field="VmHWM"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing")


def closed_by_peer(s, timeout=20):
    """True once the broker has closed `s` (recv sees EOF or a reset)."""
    s.settimeout(timeout)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def api_versions_frame(correlation_id=1, client_id=None):
    cid = b"" if client_id is None else client_id.encode()
    body = struct.pack(">hhih", 18, 0, correlation_id, len(cid) if client_id is not None else -1) + cid
    return struct.pack(">i", len(body)) + body


def answers(port, client_id=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(api_versions_frame(9, client_id))
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    data = s.recv(size, socket.MSG_WAITALL)
    s.close()
    return struct.unpack(">i", data[:4])[0] == 9


def test_unknown_api_key_and_version(broker):
    # Unknown key: the connection closes, as Kafka does.
    s = socket.create_connection(("127.0.0.1", broker.port))
    body = struct.pack(">hhih", 999, 0, 5, -1)
    s.sendall(struct.pack(">i", len(body)) + body)
    assert closed_by_peer(s)
    # ApiVersions at a version past the newest: UNSUPPORTED_VERSION (35), readable.
    s = socket.create_connection(("127.0.0.1", broker.port))
    body = struct.pack(">hhih", 18, 99, 6, -1)
    s.sendall(struct.pack(">i", len(body)) + body)
    s.settimeout(10)
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    data = s.recv(size, socket.MSG_WAITALL)
    assert struct.unpack(">ih", data[:6]) == (6, 35)
    # Metadata at an unsupported version: the connection closes.
    s = socket.create_connection(("127.0.0.1", broker.port))
    body = struct.pack(">hhih", 3, 99, 7, -1)
    s.sendall(struct.pack(">i", len(body)) + body)
    assert closed_by_peer(s)
    assert answers(broker.port)


def test_oversized_frame_closes_before_reading(make_broker):
    b = make_broker({"socket.request.max.bytes": 4096}).start()
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(struct.pack(">i", 4097) + b"x" * 100)
    assert closed_by_peer(s)
    assert "socket.request.max.bytes" in b.read_log()
    assert answers(b.port)


def test_idle_connections_close(make_broker):
    b = make_broker({"connections.max.idle.ms": 1000}).start()
    idle = socket.create_connection(("127.0.0.1", b.port))
    half = socket.create_connection(("127.0.0.1", b.port))
    half.sendall(struct.pack(">i", 1000) + b"\x00" * 10)  # half a frame, then nothing
    assert closed_by_peer(idle)
    assert closed_by_peer(half)
    log = b.read_log()
    assert "connections.max.idle.ms" in log
    # A client that keeps talking is not idle.
    s = socket.create_connection(("127.0.0.1", b.port))
    for i in range(4):
        s.sendall(api_versions_frame(i))
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        s.recv(size, socket.MSG_WAITALL)
        time.sleep(0.5)
    s.close()


def test_connection_limits(make_broker):
    b = make_broker({"max.connections.per.ip": 5}).start()
    held = []
    deadline = time.time() + 10
    while len(held) < 5:
        # The start-up probe's connection may not be released yet: retry until
        # five connections are served at once.
        s = socket.create_connection(("127.0.0.1", b.port))
        s.sendall(api_versions_frame())
        if s.recv(4, socket.MSG_WAITALL):
            held.append(s)
        else:
            s.close()
            assert time.time() < deadline, "five connections never served at once"
            time.sleep(0.1)
    extra = socket.create_connection(("127.0.0.1", b.port))
    assert closed_by_peer(extra)
    assert "max.connections.per.ip" in b.read_log()
    held.pop().close()
    deadline = time.time() + 10
    while True:  # the freed place is reusable once the broker sees the close
        try:
            if answers(b.port):
                break
        except (OSError, struct.error):
            pass
        assert time.time() < deadline, "a freed place was never reused"
        time.sleep(0.1)
    # max.connections is a live setting.
    assert b.cli("config", "set", "--broker", "1", "max.connections=2").returncode == 0
    assert closed_by_peer(socket.create_connection(("127.0.0.1", b.port)))
    assert "max.connections reached" in b.read_log()


def test_panic_is_contained_to_its_connection(make_broker, topic_name):
    b = make_broker(env={"STROM_TEST_PANIC_CLIENT_ID": "boom"}).start()
    create_topic(b.bootstrap, topic_name, 1)
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(api_versions_frame(1, "boom"))
    assert closed_by_peer(s)
    assert b.proc.poll() is None
    assert answers(b.port, "fine")
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce(topic_name, value=b"after the panic")
    assert p.flush(10) == 0
    log = b.read_log()
    assert "panicked" in log and "127.0.0.1" in log


def produce_request_v3(topic, records):
    body = struct.pack(">hhi", -1, 1, 10000) + struct.pack(">i", 1)
    body += struct.pack(">h", len(topic)) + topic.encode() + struct.pack(">i", 1)
    body += struct.pack(">ii", 0, len(records)) + records
    head = struct.pack(">hhih", 0, 3, 11, -1)
    return struct.pack(">i", len(head) + len(body)) + head + body


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def batch_v2(records_blob, count, attributes):
    """A record batch v2 around already-encoded (possibly compressed) records."""
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, 0, 0, -1, -1, -1, count) + records_blob
    crc = crc32c(after_crc)
    body = struct.pack(">ib", 0, 2) + struct.pack(">I", crc) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record(value, delta=0):
    inner = b"\x00" + zigzag(0) + zigzag(delta) + zigzag(-1) + zigzag(len(value)) + value + zigzag(0)
    return zigzag(len(inner)) + inner


def produce_error_code(port, frame):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(frame)
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    data = s.recv(size, socket.MSG_WAITALL)
    s.close()
    # correlation id, topics[1], name, partitions[1], index, error code
    at = 4 + 4
    (nlen,) = struct.unpack(">h", data[at : at + 2])
    at += 2 + nlen + 4 + 4
    return struct.unpack(">h", data[at : at + 2])[0]


def test_compression_bomb_is_refused(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    # 16 MiB of zeros gzips to about 16 KiB: far under max.message.bytes (1 MiB)
    # on the wire, far over it inflated.
    bomb = gzip.compress(record(b"\x00" * (16 << 20)), 9)
    assert len(bomb) < 64 << 10
    code = produce_error_code(broker.port, produce_request_v3(topic_name, batch_v2(bomb, 1, 1)))
    assert code == 10, "MESSAGE_TOO_LARGE"
    # The same batch with a lying record count is CORRUPT_MESSAGE.
    small = gzip.compress(record(b"ok") + record(b"ok", 1))
    assert produce_error_code(broker.port, produce_request_v3(topic_name, batch_v2(small, 3, 1))) == 2
    assert produce_error_code(broker.port, produce_request_v3(topic_name, batch_v2(small, 2, 1))) == 0
    assert [m.value() for m in consume_all(broker.bootstrap, topic_name, 1)] == [b"ok", b"ok"]


def test_hostile_traffic_beside_a_normal_client(broker, topic_name):
    """confluent-kafka produces and consumes while other connections send garbage,
    truncated frames, huge counts, stalled half-frames, and a thousand idle
    connections sit open. Every message arrives, and the broker's memory stays
    bounded."""
    create_topic(broker.bootstrap, topic_name, 4)
    pid = broker.proc.pid
    stop = threading.Event()
    held = []
    errors = []
    rng = random.Random(6)

    def attack():
        try:
            for _ in range(1000):
                held.append(socket.create_connection(("127.0.0.1", broker.port)))
            for _ in range(40):  # half-frames declaring 100 MB, then silence
                s = socket.create_connection(("127.0.0.1", broker.port))
                s.sendall(struct.pack(">i", 100 << 20) + os.urandom(32 << 10))
                held.append(s)
            frames = list(FRAMES.values())
            while not stop.is_set():
                s = socket.create_connection(("127.0.0.1", broker.port))
                kind = rng.randrange(4)
                if kind == 0:  # random bytes
                    s.sendall(os.urandom(rng.randrange(1, 4096)))
                elif kind == 1:  # a frame cut short
                    s.sendall(struct.pack(">i", 500) + os.urandom(rng.randrange(0, 500)))
                elif kind == 2:  # huge counts
                    body = rng.choice(frames)
                    s.sendall(struct.pack(">i", len(body)) + body)
                else:  # a valid header followed by random body bytes
                    body = struct.pack(">hhih", rng.choice([0, 1, 3, 8, 11, 19]), rng.randrange(0, 10), 1, -1) + os.urandom(64)
                    s.sendall(struct.pack(">i", len(body)) + body)
                s.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": False})
        acked = []

        def on_delivery(err, msg):
            assert err is None, err
            acked.append((msg.partition(), msg.offset(), msg.value()))

        n = 20000
        for i in range(n):
            p.produce(topic_name, key=str(i % 16).encode(), value=f"m{i:06d}".encode() + b"." * 1000, on_delivery=on_delivery)
            if i % 1000 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        assert len(acked) == n
        got = consume_all(broker.bootstrap, topic_name, 4, expect=n, timeout=90)
    finally:
        stop.set()
        attacker.join(60)
    assert not errors, errors
    assert len(got) == n
    assert sorted(m.value()[:7] for m in got) == sorted(f"m{i:06d}".encode() for i in range(n))
    by_key = {}
    for m in got:  # per key, the order sent
        by_key.setdefault(m.key(), []).append(int(m.value()[1:7]))
    assert all(v == sorted(v) for v in by_key.values())
    assert broker.proc.poll() is None
    peak = rss_kib(pid)
    print(f"broker peak RSS {peak} KiB, peak virtual {rss_kib(pid, 'VmPeak')} KiB")
    assert peak < 256 * 1024, f"peak RSS {peak} KiB"
    # 40 stalled frames each declaring 100 MB: reserving them would take 4 GB.
    assert rss_kib(pid, "VmPeak") < 3 * 1024 * 1024, "virtual memory reserved for undelivered frame bytes"
    for s in held:
        s.close()


def test_malformed_batches_are_corrupt_message(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    good = batch_v2(record(b"a") + record(b"b", 1), 2, 0)
    bad_crc = bytearray(good)
    bad_crc[-2] ^= 0x01
    cases = {
        "bad crc": bytes(bad_crc),
        "count above the records present": batch_v2(record(b"a"), 2, 0),
        "count below the records present": batch_v2(record(b"a") + record(b"b", 1), 1, 0),
        "record length varint overflows": batch_v2(b"\xff" * 11, 1, 0),
        "negative record length": batch_v2(zigzag(-7) + b"\x00" * 8, 1, 0),
        "negative batch length": struct.pack(">qi", 0, -5) + good[12:],
        "batch length past the set": struct.pack(">qi", 0, len(good) + 100) + good[12:],
        "unknown codec": batch_v2(record(b"a"), 1, 6),
    }
    for name, records in cases.items():
        code = produce_error_code(broker.port, produce_request_v3(topic_name, records))
        assert code == 2, f"{name}: error code {code}"
    assert produce_error_code(broker.port, produce_request_v3(topic_name, good)) == 0
    assert [m.value() for m in consume_all(broker.bootstrap, topic_name, 1)] == [b"a", b"b"]
