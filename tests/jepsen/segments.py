"""Reads a partition's log straight from a node's data directory.

Strom stores Kafka v2 record batches as received, one after another, in
`<log.dirs>/<topic>-<partition>/<base offset, 20 digits>.log`. Followers append
the leader's batches unchanged, so two replicas hold the same data exactly when
they hold the same batches: same base and last offset, same partition leader
epoch, same CRC (which covers attributes, timestamps, producer fields and every
record). Comparing those lists is how the tests check that an old leader
truncated its divergent tail.
"""

import struct
from pathlib import Path

HEADER = 61  # bytes of a v2 batch header up to and including the record count


def _varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos


def _records(body, count):
    """(offset delta, key, value) of each record of an uncompressed batch body."""
    pos = 0
    out = []
    for _ in range(count):
        length, pos = _varint(body, pos)
        end = pos + length
        pos += 1  # attributes
        _, pos = _varint(body, pos)  # timestamp delta
        delta, pos = _varint(body, pos)
        klen, pos = _varint(body, pos)
        key = None if klen < 0 else bytes(body[pos:pos + klen])
        pos += max(klen, 0)
        vlen, pos = _varint(body, pos)
        value = None if vlen < 0 else bytes(body[pos:pos + vlen])
        out.append((delta, key, value))
        pos = end
    return out


def batches(path, with_records=False):
    """The batches of one `.log` file as dicts; a torn batch at the end is left out."""
    data = Path(path).read_bytes()
    pos = 0
    out = []
    while pos + HEADER <= len(data):
        base, length, epoch, magic, crc, attrs, last_delta = struct.unpack_from(">qiibIhi", data, pos)
        end = pos + 12 + length
        if length <= 0 or end > len(data) or magic != 2:
            break
        count = struct.unpack_from(">i", data, pos + 57)[0]
        b = {"base": base, "last": base + last_delta, "epoch": epoch, "crc": crc, "count": count,
             "pid": struct.unpack_from(">q", data, pos + 43)[0]}
        if with_records:
            if attrs & 0x7 == 0:
                b["records"] = [(base + d, k, v) for d, k, v in _records(memoryview(data)[pos + HEADER:end], count)]
            else:
                b["records"] = None  # compressed: not decoded here
        out.append(b)
        pos = end
    return out


def partition_dir(data_dir, topic, partition):
    return Path(data_dir) / f"{topic}-{partition}"


def log_batches(data_dir, topic, partition, with_records=False):
    """Every batch of a partition replica, in offset order ([] if the replica has no directory)."""
    d = partition_dir(data_dir, topic, partition)
    if not d.is_dir():
        return []
    out = []
    for f in sorted(d.glob("*.log"), key=lambda f: int(f.stem)):
        try:
            out.extend(batches(f, with_records))
        except FileNotFoundError:  # deleted by a concurrent truncation or retention
            continue
    return out


def log_records(data_dir, topic, partition):
    """[(offset, value as str)] of a replica's log (uncompressed batches only)."""
    out = []
    for b in log_batches(data_dir, topic, partition, with_records=True):
        for o, _, v in b["records"] or []:
            out.append((o, None if v is None else v.decode(errors="replace")))
    return out


def fingerprint(batch):
    return (batch["base"], batch["last"], batch["epoch"], batch["crc"])


def compare(replicas, reference=None):
    """replicas: {node id: [batch]}. Returns None if all hold identical batches, else the
    first difference of each replica against the reference's (by default the lowest id's) log."""
    if not replicas:
        return None
    ref_id = reference if reference in replicas else min(replicas)
    ref = replicas[ref_id]
    diffs = {}
    for node, bs in sorted(replicas.items()):
        if node == ref_id:
            continue
        a = [fingerprint(b) for b in ref]
        c = [fingerprint(b) for b in bs]
        if a == c:
            continue
        i = next((k for k, (x, y) in enumerate(zip(a, c)) if x != y), min(len(a), len(c)))
        diffs[node] = {"against": ref_id, "batch_index": i,
                       "reference": a[i] if i < len(a) else None, "this": c[i] if i < len(c) else None,
                       "reference_end": ref[-1]["last"] + 1 if ref else 0, "this_end": bs[-1]["last"] + 1 if bs else 0}
    return diffs or None

