"""The transactional checker: Jepsen's transaction anomalies over one recorded history.

It extends the queue checker (`checker.py`) to transactional producers. The
history (JSON-serialisable) is

    {
      "txns": {"2-17": {"status": "committed" | "aborted" | "unknown",
                        "records": [[partition, value], ...],  # what the transaction wrote
                        "producer": "2", "seq": 17,             # who, and its order
                        "t_send": 3.2, "t_done": 3.4}},        # began, and was decided
      "writes": {value: {"partition": 0, "offset": 80}},      # delivery reports, where known
      "reads": [{"consumer": "c0", "gen": 0, "index": 5, "partition": 0,
                 "offset": 80, "value": "..."}],               # read_committed reads during the run
      "committed": {"0": [[offset, value], ...]},              # full read_committed read, at the end
      "uncommitted": {"0": [[offset, value], ...]},            # full read_uncommitted read, at the end
      "inputs": ["in-00001", ...],                             # optional: a pipeline's input values,
    }                                                          # each output value is "<input>@<txn>"

Values are unique per transaction attempt (they carry the transaction's name),
so every value belongs to exactly one transaction. `unknown` transactions are
those whose writer was killed before it learnt the outcome; either outcome is
allowed for them, but not half of one.

Failures:
- `aborted_reads`: a read_committed read (during the run or at the end) of a
  record of an aborted transaction;
- `torn`: a transaction of which some records are visible to read_committed and
  others are not (all or nothing);
- `interleaved`: a committed transaction's records in one partition are not
  contiguous among the visible records (offsets may skip control markers and
  aborted records, but no other visible record may come between them). The
  pipeline has a single transactional id, so nothing may interleave;
- `lost`: a record of a committed transaction that read_committed does not show;
- `duplicated_records`: one value at two offsets of the read_committed view (a
  retried batch stored twice: values are unique per transaction attempt);
- `duplicated_inputs` / `missing_inputs`: with `inputs`, an input value that the
  committed output holds more or less than once (exactly-once end to end);
plus the queue checker's findings on the same data, with committed records as
acknowledged writes, aborted ones as failed, undecided ones as unknown, and the
final read_committed read as the final log.
"""

from collections import defaultdict

from . import checker

TXN_FAILURES = ("aborted_reads", "torn", "interleaved", "lost", "duplicated_records", "duplicated_inputs",
                "missing_inputs")


def _log(view):
    return {int(p): [(int(o), v) for o, v in recs] for p, recs in (view or {}).items()}


def _as_queue_history(history, owner, committed):
    """The same run seen by the queue checker."""
    status = {"committed": "ok", "aborted": "fail", "unknown": "unknown"}
    writes = []
    for name, t in history["txns"].items():
        for i, (p, v) in enumerate(t["records"]):
            w = history.get("writes", {}).get(v, {})
            st = status[t["status"]]
            offset = w.get("offset")
            if st == "ok" and offset is None:
                st = "unknown"  # committed, but its delivery report was not recorded
            writes.append({"value": v, "producer": t.get("producer", name), "seq": (t.get("seq", 0), i), "partition": p,
                           "status": st, "offset": offset, "error": None if st == "ok" else t["status"],
                           "t_send": t.get("t_send", 0.0), "t_done": t.get("t_done", t.get("t_send", 0.0))})
    return {"writes": writes, "reads": history.get("reads", []),
            "final": {str(p): [[o, v] for o, v in recs] for p, recs in committed.items()}}


def check_transactions(history, max_examples=10):
    txns = history["txns"]
    committed = _log(history.get("committed"))
    uncommitted = _log(history.get("uncommitted"))
    owner = {v: name for name, t in txns.items() for _, v in t["records"]}
    visible = defaultdict(list)  # value -> [(p, o)] in the read_committed view
    for p, recs in committed.items():
        for o, v in recs:
            visible[v].append((p, o))

    aborted_reads = []
    for p, recs in committed.items():
        for o, v in recs:
            if txns.get(owner.get(v), {}).get("status") == "aborted":
                aborted_reads.append({"where": "final", "partition": p, "offset": o, "value": v})
    for r in history.get("reads", []):
        if txns.get(owner.get(r["value"]), {}).get("status") == "aborted":
            aborted_reads.append({"where": r["consumer"], "partition": r["partition"], "offset": r["offset"], "value": r["value"]})

    torn, lost, outcome = [], [], defaultdict(int)
    for name, t in txns.items():
        values = [v for _, v in t["records"]]
        shown = [v for v in values if v in visible]
        if shown and len(shown) < len(values):
            torn.append({"txn": name, "status": t["status"], "visible": len(shown), "of": len(values),
                         "missing": [v for v in values if v not in visible][:5]})
        if t["status"] == "committed":
            lost += [v for v in values if v not in visible]
        seen = "visible" if shown else "invisible"
        outcome[f"txns_{t['status']}_{seen}"] += 1

    interleaved = []
    for p, recs in committed.items():
        runs = defaultdict(list)  # txn -> indexes of its records among the visible ones
        for i, (_, v) in enumerate(recs):
            runs[owner.get(v)].append(i)
        for name, idx in runs.items():
            if name is not None and idx[-1] - idx[0] + 1 != len(idx):
                interleaved.append({"txn": name, "partition": p,
                                    "between": [recs[i] for i in range(idx[0], idx[-1] + 1) if owner.get(recs[i][1]) != name][:5]})

    duplicated, missing = [], []
    if history.get("inputs") is not None:
        count = defaultdict(int)
        for recs in committed.values():
            for _, v in recs:
                count[v.rsplit("@", 1)[0]] += 1
        duplicated = [{"input": i, "times": count[i]} for i in history["inputs"] if count[i] > 1]
        missing = [i for i in history["inputs"] if count[i] == 0]

    queue = checker.check(_as_queue_history(history, owner, committed), max_examples)
    aborted_in_log = sum(1 for recs in uncommitted.values() for _, v in recs
                         if txns.get(owner.get(v), {}).get("status") == "aborted")
    failures = {**queue["failures"], "aborted_reads": len(aborted_reads), "torn": len(torn),
                "interleaved": len(interleaved), "lost": len(set(lost) | set(queue["examples"]["lost"])),
                "duplicated_records": queue["info"]["duplicates"],
                "duplicated_inputs": len(duplicated), "missing_inputs": len(missing)}
    info = {**queue["info"], "txns": len(txns), **dict(sorted(outcome.items())),
            "aborted_records_in_log": aborted_in_log,
            "uncommitted_records": sum(len(r) for r in uncommitted.values())}
    examples = {**queue["examples"], "aborted_reads": aborted_reads[:max_examples], "torn": torn[:max_examples],
                "interleaved": interleaved[:max_examples], "lost": sorted(set(lost))[:max_examples],
                "duplicated_records": queue["examples"]["duplicates"],
                "duplicated_inputs": duplicated[:max_examples], "missing_inputs": missing[:max_examples]}
    return {"ok": not any(failures.values()), "failures": failures, "info": info, "examples": examples}


def summary(result):
    f, i = result["failures"], result["info"]
    lines = [f"{'OK' if result['ok'] else 'FAILED'}: {i['txns']} transactions "
             f"({', '.join(f'{k[5:]}={v}' for k, v in i.items() if k.startswith('txns_'))}); "
             f"{i['reads']} live reads; final read_committed {i['final_records']} records, "
             f"read_uncommitted {i['uncommitted_records']} ({i['aborted_records_in_log']} of aborted transactions)"]
    lines.append("  failures: " + ", ".join(f"{k}={v}" for k, v in f.items()))
    for k in dict.fromkeys((*TXN_FAILURES, *checker.FAILURES)):
        if f.get(k):
            lines.append(f"  {k}: {result['examples'][k][:3]}")
    return "\n".join(lines)
