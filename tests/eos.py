"""Helpers shared by the exactly-once tests (test_idempotence.py, test_transactions.py)."""

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from jepsen.util import wait_for  # noqa: F401 - re-exported for the exactly-once tests


def read_partition(bootstrap, topic, partition, isolation="read_uncommitted", timeout=30):
    """[(offset, value)] of one partition from offset 0 to its end as `isolation` sees it
    (the high watermark, or the last stable offset for read_committed)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "enable.partition.eof": True, "isolation.level": isolation,
                  "fetch.wait.max.ms": 50, "log_level": 2})
    try:
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                err = m.error()
                if err is None:
                    out.append((m.offset(), None if m.value() is None else m.value().decode()))
                elif err.code() == KafkaError._PARTITION_EOF:
                    return out
                else:
                    raise AssertionError(f"reading {topic}-{partition} ({isolation}): {err}")
        raise AssertionError(f"read {len(out)} records of {topic}-{partition} ({isolation}) before the deadline")
    finally:
        c.close()


def read_topic(bootstrap, topic, partitions, isolation="read_uncommitted", timeout=30):
    """{partition: [(offset, value)]} for partitions 0..partitions-1."""
    return {p: read_partition(bootstrap, topic, p, isolation, timeout) for p in range(partitions)}


def end_offsets(bootstrap, topic, partitions, isolation="read_uncommitted"):
    """{partition: end offset}: the high watermark, or the last stable offset for read_committed
    (librdkafka sends ListOffsets with the consumer's isolation level)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex[:8]}",
                  "isolation.level": isolation, "log_level": 2})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def committed_offsets(bootstrap, group, topic, partitions):
    """{partition: committed offset or None} of `group`, read with OffsetFetch (require_stable)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "log_level": 2})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in got}
    finally:
        c.close()
