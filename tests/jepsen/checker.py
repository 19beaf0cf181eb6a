"""The queue checker: judges one recorded history of writes and reads.

A history is a plain dict (JSON-serialisable, see `workload.py`):

    {
      "partitions": 3,
      "writes": [{"value": "p0-17", "producer": 0, "seq": 17, "partition": 2,
                  "status": "ok" | "fail" | "unknown", "offset": 41 | None,
                  "error": None | "NOT_ENOUGH_REPLICAS", "t_send": 3.2, "t_done": 3.25}, ...],
      "reads":  [{"consumer": "c1", "gen": 0, "index": 5, "partition": 2,
                  "offset": 41, "value": "p0-17"}, ...],
      "final":  {"0": [[0, "p1-0"], [1, "p0-3"], ...], ...},
    }

`writes` holds every attempted write with what the producer was finally told
(`t_send`: when it was handed to the client, `t_done`: when the report arrived):
`ok` (acknowledged, with the offset of its delivery report), `fail` (a delivery
error) or `unknown` (no report before the producer gave up). Only `ok` is a
promise; a failed or unknown write may or may not be in the log.

`reads` holds what the consumers saw while faults were applied, in each
consumer's order (`index`). `gen` is the consumer's assignment generation: it
changes whenever the consumer's position may legitimately move backwards (a
rebalance, a seek, an automatic offset reset).

`final` is a full read of every partition from offset 0, after all faults were
healed. It is the ground truth the other observations are held against.

`check()` returns counts and a few examples of each finding. The findings that
break Kafka's guarantees (acks=all, min.insync.replicas=2, one fault at a time)
are in `failures`; everything else is in `info`.
"""

from collections import defaultdict

FAILURES = ("lost", "inconsistent_offsets", "offset_mismatch", "non_monotonic", "reordered", "dirty_reads", "unexpected")


def _examples(items, n):
    return list(items)[:n]


def check(history, max_examples=10):
    writes = history.get("writes", [])
    reads = history.get("reads", [])
    final = {int(p): [(int(o), v) for o, v in recs] for p, recs in history.get("final", {}).items()}

    by_value = {w["value"]: w for w in writes}
    final_at = {}  # (p, o) -> value
    final_positions = defaultdict(list)  # value -> [(p, o)], in log order
    for p, recs in final.items():
        for o, v in recs:
            final_at[(p, o)] = v
            final_positions[v].append((p, o))

    acked = [w for w in writes if w["status"] == "ok"]

    # Acknowledged writes that are nowhere in the final log.
    lost = [w["value"] for w in acked if w["value"] not in final_positions]

    # Acknowledged writes found, but not at the offset they were acknowledged at.
    offset_mismatch = []
    for w in acked:
        pos = final_positions.get(w["value"])
        if pos and final_at.get((w["partition"], w["offset"])) != w["value"]:
            offset_mismatch.append({"value": w["value"], "acked_at": [w["partition"], w["offset"]], "found_at": pos,
                                    "there_now": final_at.get((w["partition"], w["offset"]))})

    # A value at more than one offset of the final log (producer retries without idempotence).
    duplicates = {v: pos for v, pos in final_positions.items() if len(pos) > 1}

    # One (partition, offset) with different values across observations.
    seen = defaultdict(lambda: defaultdict(set))  # (p, o) -> value -> {sources}
    for w in acked:
        seen[(w["partition"], w["offset"])][w["value"]].add("ack")
    for r in reads:
        seen[(r["partition"], r["offset"])][r["value"]].add(f"read:{r['consumer']}")
    for (p, o), v in final_at.items():
        seen[(p, o)][v].add("final")
    inconsistent = [{"partition": p, "offset": o, "values": {v: sorted(s) for v, s in vals.items()}}
                    for (p, o), vals in sorted(seen.items()) if len(vals) > 1]

    # A consumer's offsets within one partition must strictly increase between seeks/rebalances.
    non_monotonic = []
    last = {}
    for r in sorted(reads, key=lambda r: (str(r["consumer"]), r["index"])):
        key = (r["consumer"], r.get("gen", 0), r["partition"])
        prev = last.get(key)
        if prev is not None and r["offset"] <= prev["offset"]:
            non_monotonic.append({"consumer": r["consumer"], "partition": r["partition"], "gen": r.get("gen", 0),
                                  "from": [prev["index"], prev["offset"], prev["value"]],
                                  "to": [r["index"], r["offset"], r["value"]]})
        last[key] = r

    # Order. A write produced after another write to the same partition was acknowledged
    # must land after it: at a higher acknowledged offset, and first appearing later in the
    # final log. That real-time order holds whatever the client does internally.
    # Sequence order alone is not enough: without idempotence, librdkafka can send a newer
    # message to a new leader while an older batch is still outstanding on the old one's
    # connection (max.in.flight is per connection), so a retried older batch may land after
    # it. Such inversions are counted in info["seq_inversions"], not as failures.
    first_in = {}  # (partition, value) -> first offset in the final log
    for p, recs in final.items():
        for o, v in recs:
            first_in.setdefault((p, v), o)
    reordered = []
    by_part = defaultdict(list)
    for w in acked:
        by_part[w["partition"]].append(w)
    for p, ws in sorted(by_part.items()):
        done = sorted(ws, key=lambda w: w["t_done"])
        i, top_ack, top_first = 0, None, None
        for b in sorted(ws, key=lambda w: w["t_send"]):
            while i < len(done) and done[i]["t_done"] < b["t_send"]:
                a = done[i]
                i += 1
                if top_ack is None or a["offset"] > top_ack["offset"]:
                    top_ack = a
                fa = first_in.get((p, a["value"]))
                if fa is not None and (top_first is None or fa > top_first[1]):
                    top_first = (a, fa)
            if top_ack is not None and b["offset"] <= top_ack["offset"]:
                reordered.append({"kind": "acked offsets", "partition": p, "acked_first": [top_ack["value"], top_ack["offset"]],
                                  "produced_after": [b["value"], b["offset"]]})
            fb = first_in.get((p, b["value"]))
            if top_first is not None and fb is not None and fb <= top_first[1]:
                reordered.append({"kind": "final log", "partition": p, "acked_first": [top_first[0]["value"], top_first[1]],
                                  "produced_after": [b["value"], fb]})
    seq_inversions = []
    by_stream = defaultdict(list)
    for w in acked:
        by_stream[(w["producer"], w["partition"])].append(w)
    for (prod, p), ws in sorted(by_stream.items()):
        ws.sort(key=lambda w: w["seq"])
        for a, b in zip(ws, ws[1:]):
            if b["offset"] <= a["offset"]:
                seq_inversions.append({"producer": prod, "partition": p, "first": [a["value"], a["offset"]],
                                       "then": [b["value"], b["offset"]]})

    # Values a consumer read that the final log does not hold: read above the high watermark.
    dirty = [{"consumer": r["consumer"], "partition": r["partition"], "offset": r["offset"], "value": r["value"]}
             for r in reads if r["value"] not in final_positions]

    # Values in the log that nobody wrote.
    unexpected = [{"partition": p, "offset": o, "value": v} for (p, o), v in sorted(final_at.items()) if v not in by_value]

    # Not failures, but worth knowing.
    recovered = [w["value"] for w in writes if w["status"] != "ok" and w["value"] in final_positions]
    errors = defaultdict(int)
    for w in writes:
        if w["status"] == "fail":
            errors[w.get("error") or "?"] += 1
    gaps = []
    for p, recs in sorted(final.items()):
        offs = [o for o, _ in recs]
        expect = offs[0] if offs else 0
        for o in offs:
            if o != expect:
                gaps.append({"partition": p, "missing": [expect, o - 1]})
            expect = o + 1

    failures = {
        "lost": len(lost),
        "inconsistent_offsets": len(inconsistent),
        "offset_mismatch": len(offset_mismatch),
        "non_monotonic": len(non_monotonic),
        "reordered": len(reordered),
        "dirty_reads": len(dirty),
        "unexpected": len(unexpected),
    }
    info = {
        "attempted": len(writes),
        "acked": len(acked),
        "failed": sum(1 for w in writes if w["status"] == "fail"),
        "unknown": sum(1 for w in writes if w["status"] == "unknown"),
        "recovered": len(recovered),
        "duplicates": len(duplicates),
        "duplicate_records": sum(len(p) - 1 for p in duplicates.values()),
        "reads": len(reads),
        "final_records": len(final_at),
        "final_gaps": len(gaps),
        "seq_inversions": len(seq_inversions),
        "write_errors": dict(sorted(errors.items())),
    }
    examples = {
        "lost": _examples(lost, max_examples),
        "inconsistent_offsets": _examples(inconsistent, max_examples),
        "offset_mismatch": _examples(offset_mismatch, max_examples),
        "non_monotonic": _examples(non_monotonic, max_examples),
        "reordered": _examples(reordered, max_examples),
        "dirty_reads": _examples(dirty, max_examples),
        "unexpected": _examples(unexpected, max_examples),
        "duplicates": _examples(({"value": v, "at": pos} for v, pos in sorted(duplicates.items())), max_examples),
        "recovered": _examples(recovered, max_examples),
        "final_gaps": _examples(gaps, max_examples),
        "seq_inversions": _examples(seq_inversions, max_examples),
    }
    return {"ok": not any(failures.values()), "failures": failures, "info": info, "examples": examples}


def summary(result):
    """A few human-readable lines for a check() result (or a workload result that contains one)."""
    f, i = result["failures"], result["info"]
    lines = [f"{'OK' if result['ok'] else 'FAILED'}: {i['acked']}/{i['attempted']} writes acknowledged "
             f"({i['failed']} failed, {i['unknown']} unknown, {i['recovered']} of those present anyway); "
             f"{i['reads']} reads; final log {i['final_records']} records"]
    lines.append("  failures: " + ", ".join(f"{k}={v}" for k, v in f.items()))
    lines.append("  info: " + ", ".join(f"{k}={v}" for k, v in i.items() if k not in ("attempted", "acked", "failed", "unknown",
                                                                                       "recovered", "reads", "final_records")))
    for k in FAILURES:
        if f.get(k):
            lines.append(f"  {k}: {result['examples'][k][:3]}")
    return "\n".join(lines)
