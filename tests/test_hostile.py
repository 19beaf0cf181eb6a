"""Requests that claim enormous array counts must close only their connection.

The wire codec sizes `Vec::with_capacity` from counts read off the wire; before
the process allocator guard (crates/strom/src/alloc.rs) the first of these frames
aborted the whole broker. The full hostile-input work is a separate issue; this
covers the known hole.
"""

import socket
import struct

import pytest
from confluent_kafka import Producer

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
