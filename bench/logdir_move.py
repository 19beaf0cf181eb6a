#!/usr/bin/env python3
"""Moving a replica between log directories under load (AlterReplicaLogDirs).

Starts `strom server` with two log directories, fills one partition with
--mb MiB, then keeps an acks=all producer running at --rate msg/s (1 KiB
messages) while `strom log-dirs move ... --wait` moves the partition to the
other directory. Prints how long the move took and the producer's
acknowledgement latency before and during the move (p50, p99, max).

    .venv/bin/python bench/logdir_move.py [--mb 512] [--rate 2000]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STROM = os.environ.get("STROM_BIN", os.path.join(ROOT, "target", "release", "strom"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantiles(lat):
    v = sorted(lat)
    if not v:
        return "n=0"
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))] * 1000
    return f"n={len(v):<6} p50 {q(0.5):7.2f} ms  p99 {q(0.99):7.2f} ms  max {v[-1] * 1000:7.2f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--rate", type=int, default=2000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="strom-move-")
    d1, d2 = os.path.join(tmp, "d1"), os.path.join(tmp, "d2")
    port = free_port()
    boot = f"127.0.0.1:{port}"
    env = {**os.environ, "STROM_BOOTSTRAP": boot}
    log = open(os.path.join(tmp, "strom.log"), "wb")
    srv = subprocess.Popen([STROM, "server", "--set", f"listeners=PLAINTEXT://{boot}", "--set", f"log.dirs={d1},{d2}"],
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        subprocess.run([STROM, "topic", "create", "move", "-p", "1"], env=env, check=True, capture_output=True)

        fill = Producer({"bootstrap.servers": boot, "acks": "1", "linger.ms": 20, "batch.size": 1 << 20})
        value = b"x" * 1024
        started = time.time()
        for i in range(args.mb * 1024):
            while True:
                try:
                    fill.produce("move", value=value, partition=0)
                    break
                except BufferError:
                    fill.poll(0.01)
        if fill.flush(120) != 0:
            sys.exit("the fill did not complete")
        # One acks=all write first: it waits for the fsync of everything filled.
        warm = Producer({"bootstrap.servers": boot, "acks": "all"})
        warm.produce("move", value=value, partition=0)
        warm.flush(120)
        size = subprocess.run([STROM, "log-dirs"], env=env, capture_output=True, text=True).stdout
        print(f"filled {args.mb} MiB in {time.time() - started:.1f} s")
        print(size.strip())

        lat_before, lat_during, phase = [], [], ["before"]
        stop = threading.Event()
        p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 0})

        def run():
            interval = 1.0 / args.rate
            nxt = time.time()
            while not stop.is_set():
                sent = time.time()
                target = lat_before if phase[0] == "before" else lat_during
                p.produce("move", value=value, partition=0, on_delivery=lambda err, msg, s=sent, t=target: t.append(time.time() - s))
                p.poll(0)
                nxt += interval
                pause = nxt - time.time()
                if pause > 0:
                    time.sleep(pause)
            p.flush(30)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(5)
        phase[0] = "during"
        started = time.time()
        r = subprocess.run([STROM, "log-dirs", "move", "move", "0", d2, "--wait"], env=env, capture_output=True, text=True)
        took = time.time() - started
        stop.set()
        t.join(60)
        if r.returncode != 0:
            print(r.stdout, r.stderr, file=sys.stderr)
            sys.exit(1)
        print(f"moved {args.mb} MiB between directories in {took:.1f} s while producing {args.rate} msg/s (acks=all, 1 KiB)")
        print(f"ack latency before the move: {quantiles(lat_before)}")
        print(f"ack latency during the move: {quantiles(lat_during)}")
        log.flush()
        for line in open(os.path.join(tmp, "strom.log"), errors="replace"):
            if "swapped in the moved copy" in line:
                print("broker:", line.split("INFO", 1)[-1].strip())
    finally:
        srv.terminate()
        srv.wait(30)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
