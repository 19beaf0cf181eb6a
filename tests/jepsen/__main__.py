"""Command line: start a cluster, run the queue workload against it, check, report.

    .venv/bin/python -m tests.jepsen --duration 60 --seed 7
    .venv/bin/python -m tests.jepsen --help

Exit status 0 when the checker finds no failure, 1 when it finds one, 2 when the run
itself broke (a cluster that would not start, a client that could not read back).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def pair(s):
    a, _, b = s.partition(",")
    return (float(a), float(b or a))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.jepsen", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60, help="seconds of faults (default 60)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the fault schedule (default 7)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=3)
    ap.add_argument("--consumer-mode", choices=("assign", "group", "mixed"), default="mixed")
    ap.add_argument("--replication-factor", type=int, default=3)
    ap.add_argument("--min-isr", type=int, default=2, help="the topic's min.insync.replicas (default 2)")
    ap.add_argument("--rate", type=float, default=40, help="writes per second per producer (default 40)")
    ap.add_argument("--faults", default=None,
                    help="comma-separated from kill,pause,isolate,split (default: all that this machine supports)")
    ap.add_argument("--hold", type=pair, default=(2.0, 5.0), help="min,max seconds a fault lasts (default 2,5)")
    ap.add_argument("--quiet", type=pair, default=(1.0, 3.0), help="min,max seconds of calm between faults (default 1,3)")
    ap.add_argument("--message-timeout-ms", type=int, default=60000)
    ap.add_argument("--nodes", type=int, default=3, help="combined broker+controller nodes (default 3)")
    ap.add_argument("--no-netns", action="store_true", help="run on loopback without network namespaces (no network faults)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra broker setting, repeatable")
    ap.add_argument("--bin", default=None, help="strom binary (default $STROM_BIN or target/release/strom)")
    ap.add_argument("--workdir", default=None, help="where data, logs and results go (default a new /tmp/strom-jepsen-*)")
    ap.add_argument("--keep", action="store_true", help="keep node data even when the run passes")
    ap.add_argument("--out", default=None, help="also write the result JSON (without the history) here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print nemesis and consumer events as they happen")
    ap.add_argument("--client-logs", action="store_true", help="let librdkafka log warnings to stderr")
    args = ap.parse_args(argv)

    if args.bin:
        os.environ["STROM_BIN"] = str(Path(args.bin).resolve())
    import conftest  # noqa: E402 - after STROM_BIN is set
    import netns  # noqa: E402

    from . import checker, workload  # noqa: E402

    if args.bin:
        conftest.STROM = os.environ["STROM_BIN"]
    if not Path(conftest.STROM).exists():
        ap.error(f"no strom binary at {conftest.STROM} (build it or pass --bin)")

    use_netns = not args.no_netns
    if use_netns:
        ok, why = netns.available()
        if not ok:
            print(f"network namespaces unavailable ({why}); running on loopback without network faults", file=sys.stderr)
            use_netns = False
    supported = workload.ALL_FAULTS if use_netns else tuple(f for f in workload.ALL_FAULTS if f not in workload.NETWORK_FAULTS)
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip()) if args.faults else supported
    bad = [f for f in faults if f not in supported]
    if bad:
        ap.error(f"faults {bad} not available here (available: {','.join(supported)})")

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="strom-jepsen-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {"offsets.topic.replication.factor": "3", "default.replication.factor": "3"}
    for kv in args.set:
        k, _, v = kv.partition("=")
        settings[k] = v
    cls = netns.NetnsCluster if use_netns else conftest.Cluster
    cluster = cls(workdir / "cluster", voters=args.nodes, settings=settings)
    started = time.time()
    print(f"strom: {conftest.STROM}\nworkdir: {workdir}\ncluster: {args.nodes} nodes"
          f"{' in network namespaces' if use_netns else ' on loopback'}; faults {','.join(faults)}; seed {args.seed}",
          file=sys.stderr)
    try:
        cluster.start()
        result = workload.run(
            cluster, duration=args.duration, seed=args.seed, partitions=args.partitions, producers=args.producers,
            replication_factor=args.replication_factor, min_insync_replicas=args.min_isr,
            consumers=args.consumers, consumer_mode=args.consumer_mode, rate=args.rate, faults=faults,
            hold=args.hold, quiet=args.quiet, message_timeout_ms=args.message_timeout_ms, verbose=args.verbose,
            client_log_level=6 if args.client_logs else 2)
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"the run itself failed; node logs and data are in {workdir / 'cluster'}", file=sys.stderr)
        return 2
    finally:
        cluster.stop()
    history = result.pop("history")
    result["wall_seconds"] = round(time.time() - started, 1)
    result["binary"] = conftest.STROM
    (workdir / "history.json").write_text(json.dumps(history))
    (workdir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(checker.summary(result))
    print(f"  nemesis: {result['info']['faults']} faults; acked after heal: {result['info']['acked_after_heal']}; "
          f"longest stretch without an ack: {result['examples']['ack_gaps'][:3]}")
    if result["examples"].get("divergent_replicas"):
        print(f"  divergent replicas: {json.dumps(result['examples']['divergent_replicas'])[:1500]}")
    if result["examples"].get("workload_errors"):
        print("  workload errors:\n" + "\n".join(result["examples"]["workload_errors"]))
    print(f"  result: {workdir / 'result.json'}\n  history: {workdir / 'history.json'}")
    if result["ok"] and not args.keep:
        for d in (workdir / "cluster").glob("node*"):
            if d.is_dir():  # data; the node*.log files stay
                shutil.rmtree(d, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
