#!/usr/bin/env bash
# What replication costs: the same librdkafka client (rdkafka_performance, 1 KiB
# messages) against a single Strom node and against a 3-broker Strom cluster
# (three `strom server` processes on loopback, each broker+controller with
# Kafka's KRaft settings), interleaved, several rounds, medians printed.
#
#   bench/replication.sh [--rounds N] [--messages N] [--rate MSG_PER_S] [--e2e-seconds S]
#                        [--partitions N] [--smoke]
#   STROM_BIN=/path/to/strom bench/replication.sh ...   # that binary, no cargo build
#   STROM_DATA_ROOT=/dev/shm bench/replication.sh ...   # every node's data on tmpfs
#
# Per round:
#   single node   topic `bench` (RF 1): produce acks=all (Strom answers after fsync)
#                 and end-to-end latency at --rate into partition 0
#   3 brokers     topic `bench` with RF 3 and min.insync.replicas=2: produce acks=all
#                 (leader fsync + every in-sync replica has the data), produce acks=1,
#                 and end-to-end latency at --rate into partition 0 (the consumer only
#                 sees offsets below the high watermark, so replication is on its path)
# The latency producers use acks=1 and linger.ms=0 like bench/latency.sh.
# Also printed: the producer's achieved rate in the latency runs (-r paces by
# sleeping, so it falls short of --rate on a busy machine), how long the followers
# took to catch up after the acks=1 run, and the brokers' CPU seconds (all three
# together for the cluster) per GB produced during the acks=all run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
N=2000000
RATE=20000
E2E_SECONDS=10
PARTS=6
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --messages) N=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --e2e-seconds) E2E_SECONDS=$2; shift 2 ;;
    --partitions) PARTS=$2; shift 2 ;;
    --smoke) ROUNDS=1; N=5000; RATE=1000; E2E_SECONDS=2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
TOOLS=${RDKAFKA_TOOLS:-$PWD/../shared/tools/rdkafka-tools}
T=${STROM_TOOLS:-$HOME/.cache/strom-tools}
"$TOOLS" build >/dev/null
if [ -z "${STROM_BIN:-}" ]; then
  cargo build --release --quiet -p strom
  STROM_BIN=$PWD/target/release/strom
fi
STROM=$STROM_BIN
PERF=$T/librdkafka/examples/rdkafka_performance
OUT=$(mktemp -d)
PIDS=()
DATA=""
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  kill $(jobs -p) 2>/dev/null || true
  [ -z "$DATA" ] || rm -rf "$DATA"
  [ -n "${KEEP:-}" ] || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
E2E_N=$((RATE * E2E_SECONDS))
CLK=$(getconf CLK_TCK)
PROD=(-s 1024 -X linger.ms=5 -X batch.size=1048576 -X queue.buffering.max.kbytes=1048576 -q)

rate_of() { grep -oE '[0-9]+ msgs/s (and )?\(?[0-9.]+ MB/s' "$1" | tail -1 | tr -d '(' | awk '{print $1, $(NF-1)}' || true; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }

# produce NAME FIGURE BOOTSTRAP ACKS: one throughput run; appends "name figure_msgs N" and "name figure_MBps M".
produce() {
  local name=$1 fig=$2 addr=$3 acks=$4 r
  "$PERF" -P -t bench -b "$addr" -c "$N" -a "$acks" "${PROD[@]}" >"$OUT/p" 2>&1 || true
  r=($(rate_of "$OUT/p") - -)
  echo "$name ${fig}_msgs ${r[0]}" >>"$OUT/results"
  echo "$name ${fig}_MBps ${r[1]}" >>"$OUT/results"
  grep -aE '^%[0-3]\|' "$OUT/p" | grep -v CONFWARN | head -3 >&2 || true   # librdkafka errors
}

# e2e NAME BOOTSTRAP: fixed-rate producer into partition 0, consumer from the end; p50/p99/p99.9.
e2e() {
  local name=$1 addr=$2 cpid
  rm -f "$OUT/lat"
  timeout $((E2E_SECONDS + 60)) "$PERF" -C -t bench -p 0 -b "$addr" -o end -l -A "$OUT/lat" -c "$E2E_N" -q >"$OUT/ec" 2>&1 &
  cpid=$!
  sleep 2
  "$PERF" -P -t bench -p 0 -b "$addr" -c "$E2E_N" -a 1 -l -r "$RATE" -s 1024 -X linger.ms=0 -q >"$OUT/ep" 2>&1 || true
  wait "$cpid" || true
  # -r paces by sleeping after each message, so the achieved rate can be lower: report it.
  echo "$name e2e_produced_msgs_per_s $(rate_of "$OUT/ep" | awk '{print $1}')" >>"$OUT/results"
  python3 - "$OUT/lat" "$name" "$E2E_N" >>"$OUT/results" <<'PY'
import sys
v = sorted(int(x) for x in open(sys.argv[1]) if x.strip()) if __import__("os").path.exists(sys.argv[1]) else []
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] / 1000 if v else float("nan")
n = sys.argv[2]
print(n, "e2e_received", len(v))
print(n, "e2e_p50_ms", q(0.50)); print(n, "e2e_p99_ms", q(0.99)); print(n, "e2e_p999_ms", q(0.999))
PY
}

# Clock ticks (user+system) used so far by all running brokers.
cpu_ticks() {
  local p t=0
  for p in "${PIDS[@]}"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done
  echo "$t"
}
# cpu_per_gb NAME TICKS MESSAGES: broker CPU seconds per GB produced.
cpu_per_gb() {
  python3 -c "print('$1', 'acksall_cpu_s_per_GB', round($2 / $CLK / ($3 * 1024 / 1e9), 3))" >>"$OUT/results"
}

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  rm -rf "$DATA"; DATA=""
}

# create_topic BOOTSTRAP ARGS..: retries while the cluster is still forming
# (CreateTopics answers INVALID_REPLICATION_FACTOR until enough brokers are registered).
create_topic() {
  local addr=$1; shift
  for _ in $(seq 120); do
    if STROM_BOOTSTRAP=$addr "$STROM" topic create bench -p "$PARTS" "$@" >"$OUT/create" 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "topic create failed: $(cat "$OUT/create")" >&2; return 1
}

single_node() {
  local port; port=$(free_port)
  DATA=$(mktemp -d -p "${STROM_DATA_ROOT:-${TMPDIR:-/tmp}}")
  "$STROM" server --set "listeners=PLAINTEXT://127.0.0.1:$port" --set "log.dirs=$DATA/n" >"$OUT/single.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  create_topic "127.0.0.1:$port" -r 1
  local t0; t0=$(cpu_ticks)
  produce single produce_acksall "127.0.0.1:$port" -1
  cpu_per_gb single $(($(cpu_ticks) - t0)) "$N"
  e2e single "127.0.0.1:$port"
  stop_all
}

three_nodes() {
  local i voters="" boot="" cp
  local -a bp cps
  DATA=$(mktemp -d -p "${STROM_DATA_ROOT:-${TMPDIR:-/tmp}}")
  for i in 1 2 3; do
    bp[$i]=$(free_port); cps[$i]=$(free_port)
    voters+="${voters:+,}$i@127.0.0.1:${cps[$i]}"
    boot+="${boot:+,}127.0.0.1:${bp[$i]}"
  done
  for i in 1 2 3; do
    "$STROM" server --set node.id=$i --set process.roles=broker,controller \
      --set "controller.quorum.voters=$voters" --set controller.listener.names=CONTROLLER \
      --set "listeners=PLAINTEXT://127.0.0.1:${bp[$i]},CONTROLLER://127.0.0.1:${cps[$i]}" \
      --set "log.dirs=$DATA/node$i" >"$OUT/node$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 1 2 3; do wait_port "${bp[$i]}"; done
  # All three registered and unfenced before the topic is made (an RF 3 create fails until then).
  for _ in $(seq 120); do
    STROM_BOOTSTRAP=127.0.0.1:${bp[1]} "$STROM" cluster info >"$OUT/info" 2>&1 || true
    [ "$(grep -cE '^ *[0-9]+ .* live$' "$OUT/info" || true)" -ge 3 ] && break
    sleep 0.5
  done
  create_topic "127.0.0.1:${bp[1]}" -r 3 -c min.insync.replicas=2
  # Every partition has a leader and a full ISR before measuring.
  for _ in $(seq 120); do
    STROM_BOOTSTRAP=127.0.0.1:${bp[1]} "$STROM" topic describe bench >"$OUT/describe" 2>&1 || true
    python3 - "$OUT/describe" "$PARTS" <<'PY' && break
import re, sys
text = open(sys.argv[1]).read()
full = re.findall(r"isr\W+\d+,\s*\d+,\s*\d+", text, re.I)
sys.exit(0 if len(full) >= int(sys.argv[2]) else 1)
PY
    sleep 0.5
  done
  local c0; c0=$(cpu_ticks)
  produce rf3 produce_acksall "$boot" -1
  cpu_per_gb rf3 $(($(cpu_ticks) - c0)) "$N"
  produce rf3 produce_acks1 "$boot" 1
  # acks=1 does not wait for the followers, which can end far behind on a loaded
  # machine; consumers see only offsets below the high watermark, and "-o end" is
  # the high watermark. Let the followers catch up (every ISR full, high watermarks
  # unchanged for 2 s) before timing latency, and report how long that took.
  local t0=$SECONDS prev="" cur
  for _ in $(seq 300); do
    STROM_BOOTSTRAP=127.0.0.1:${bp[1]} "$STROM" topic describe bench >"$OUT/describe" 2>&1 || true
    cur=$(grep -oE 'Isr: \[[0-9, ]*\].*EndOffset: [0-9]+' "$OUT/describe" | tr -d ' ' | sort | tr '\n' ';')
    [ "$(grep -cE 'Isr: \[[0-9]+, [0-9]+, [0-9]+\]' "$OUT/describe")" -ge "$PARTS" ] && [ "$cur" = "$prev" ] && break
    prev=$cur
    sleep 2
  done
  echo "rf3 catchup_after_acks1_s $((SECONDS - t0))" >>"$OUT/results"
  e2e rf3 "$boot"
  stop_all
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round/$ROUNDS: single node (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  single_node
  echo "== round $round/$ROUNDS: 3 brokers, RF 3 (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  three_nodes
done

python3 - "$OUT/results" "$ROUNDS" "$N" "$RATE" "$E2E_N" "$PARTS" <<'PY'
import statistics, sys
from collections import defaultdict
vals = defaultdict(list)
for line in open(sys.argv[1]):
    name, metric, value = line.split()
    try:
        vals[(name, metric)].append(float(value))
    except ValueError:
        pass
med = {k: statistics.median(v) for k, v in vals.items() if v}
rounds, n, rate, e2e_n, parts = sys.argv[2:7]
print(f"\nmedians of {rounds} round(s); {n} x 1 KiB messages per produce run, {parts} partitions;"
      f" e2e at {rate} msg/s, {e2e_n} messages, partition 0")
print(f"{'figure':<22} {'single node':>12} {'3 nodes RF3':>12} {'RF3/single':>11}")
fmt = lambda x: "-" if x is None else (f"{x:.3f}" if x < 100 else f"{x:.0f}")
for m in ["produce_acksall_msgs", "produce_acksall_MBps", "produce_acks1_msgs", "produce_acks1_MBps",
          "catchup_after_acks1_s", "e2e_produced_msgs_per_s", "e2e_received", "e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "acksall_cpu_s_per_GB"]:
    s, r = med.get(("single", m)), med.get(("rf3", m))
    ratio = f"{r / s:.2f}" if s and r is not None else "-"
    print(f"{m:<22} {fmt(s):>12} {fmt(r):>12} {ratio:>11}")
print("\nper round:")
for (name, metric), v in sorted(vals.items()):
    print(f"  {name:<7} {metric:<22} " + " ".join(fmt(x) for x in v))
PY
