#!/usr/bin/env bash
# Runs the same librdkafka client (rdkafka_performance) against Strom and against
# librdkafka's in-memory mock broker, interleaved, several rounds each, and prints
# medians and Strom/mock ratios. The mock stores nothing: it is the client's own
# ceiling on this machine.
#
#   bench/compare.sh [--rounds N] [--messages N] [--smoke]
#   STROM_DATA_ROOT=/dev/shm bench/compare.sh ...   # Strom's data on tmpfs: the broker without the disk
#
# Figures: produce msg/s and MB/s (acks=1 and acks=all, which Strom answers only
# after fsync), consume MB/s catching up from the start of the topic (the topic
# holds both produce runs; partition 0 is read), end-to-end latency p50/p99/p99.9 at half of Strom's
# measured acks=1 peak, Strom's peak RSS and CPU seconds per GB moved.
# 1 KiB messages, one topic with 8 partitions.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
N=2000000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --messages) N=$2; shift 2 ;;
    --smoke) ROUNDS=1; N=20000; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
TOOLS=${RDKAFKA_TOOLS:-$PWD/../shared/tools/rdkafka-tools}
T=${STROM_TOOLS:-$HOME/.cache/strom-tools}
"$TOOLS" build >/dev/null
cargo build --release --quiet
PERF=$T/librdkafka/examples/rdkafka_performance
MOCK=$T/mockbroker
STROM=$PWD/target/release/strom
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$OUT"' EXIT
CLK=$(getconf CLK_TCK)
E2E_N=$((N / 10))
PROD=(-s 1024 -X linger.ms=5 -X batch.size=1048576 -X queue.buffering.max.kbytes=1048576 -q)

# "N msgs/s and M MB/s" (producer) or "N msgs/s (M MB/s)" (consumer) -> "N M"
rate_of() { grep -oE '[0-9]+ msgs/s (and )?\(?[0-9.]+ MB/s' "$1" | tail -1 | tr -d '(' | awk '{print $1, $(NF-1)}' || true; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_target NAME ADDR PID: the workload against one broker; appends "name metric value" lines.
run_target() {
  local name=$1 addr=$2 pid=$3 r
  "$PERF" -P -t bench -b "$addr" -c "$N" -a 1 "${PROD[@]}" >"$OUT/p1" 2>&1
  r=($(rate_of "$OUT/p1") - -); echo "$name produce_acks1_msgs ${r[0]}"; echo "$name produce_acks1_MBps ${r[1]}"
  local peak=${r[0]}
  "$PERF" -P -t bench -b "$addr" -c "$N" -a -1 "${PROD[@]}" >"$OUT/p2" 2>&1
  r=($(rate_of "$OUT/p2") - -); echo "$name produce_acksall_msgs ${r[0]}"; echo "$name produce_acksall_MBps ${r[1]}"
  # Catch-up read of partition 0 from the start to its end (-e): librdkafka's
  # mock serves the partition consumer, not its group consumer.
  "$PERF" -C -t bench -p 0 -b "$addr" -o beginning -e -c $((2 * N)) -q >"$OUT/c" 2>&1
  r=($(rate_of "$OUT/c") - -); echo "$name consume_msgs ${r[0]}"; echo "$name consume_MBps ${r[1]}"
  # End to end at half of Strom's acks=1 peak (the same rate for the mock).
  local rate=${E2E_RATE:-$((peak / 2))}
  [ "$name" = strom ] && echo "$rate" >"$OUT/rate"
  rate=$(cat "$OUT/rate")
  timeout 30 "$PERF" -C -t bench -p 0 -b "$addr" -o end -l -A "$OUT/lat" -c "$E2E_N" -q >"$OUT/ec" 2>&1 &
  local cpid=$!
  sleep 2
  "$PERF" -P -t bench -p 0 -b "$addr" -c "$E2E_N" -a 1 -l -r "$rate" -s 1024 -X linger.ms=0 -q >"$OUT/ep" 2>&1 || true
  wait $cpid || true
  python3 - "$OUT/lat" "$name" <<'PY'
import sys
v = sorted(int(x) for x in open(sys.argv[1]) if x.strip())
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] / 1000 if v else float("nan")
print(sys.argv[2], "e2e_p50_ms", q(0.50)); print(sys.argv[2], "e2e_p99_ms", q(0.99)); print(sys.argv[2], "e2e_p999_ms", q(0.999))
PY
  if [ -n "$pid" ]; then
    local rss ticks gb
    rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)
    gb=$(python3 -c "print((4 * $N + 2 * $E2E_N) * 1024 / 1e9)")
    echo "$name peak_rss_MiB $((rss / 1024))"
    python3 -c "print('$name', 'cpu_s_per_GB', round($ticks / $CLK / $gb, 3))"
  fi
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round/$ROUNDS" >&2
  port=$(free_port); data=$(mktemp -d -p "${STROM_DATA_ROOT:-${TMPDIR:-/tmp}}")
  "$STROM" server --set "listeners=PLAINTEXT://127.0.0.1:$port" --set "log.dirs=$data" --set group.initial.rebalance.delay.ms=0 >"$OUT/strom.log" 2>&1 &
  spid=$!
  for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  STROM_BOOTSTRAP=127.0.0.1:$port "$STROM" topic create bench -p 8 >/dev/null
  run_target strom "127.0.0.1:$port" "$spid" >>"$OUT/results"
  kill "$spid"; wait "$spid" 2>/dev/null || true; rm -rf "$data"
  "$MOCK" 1 8 >"$OUT/mock.addr" &
  mpid=$!
  sleep 1
  run_target mock "$(head -1 "$OUT/mock.addr")" "" >>"$OUT/results"
  kill "$mpid"; wait "$mpid" 2>/dev/null || true
done

python3 - "$OUT/results" "$ROUNDS" "$N" <<'PY'
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
metrics = ["produce_acks1_msgs", "produce_acks1_MBps", "produce_acksall_msgs", "produce_acksall_MBps", "consume_msgs", "consume_MBps",
           "e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "peak_rss_MiB", "cpu_s_per_GB"]
print(f"\nmedians of {sys.argv[2]} round(s), {sys.argv[3]} x 1 KiB messages per produce run, 8 partitions")
print(f"{'figure':<22} {'strom':>12} {'mock':>12} {'strom/mock':>11}")
for m in metrics:
    s, k = med.get(("strom", m)), med.get(("mock", m))
    ratio = f"{s / k:.2f}" if s is not None and k else "-"
    fmt = lambda x: "-" if x is None else (f"{x:.3f}" if x < 100 else f"{x:.0f}")
    print(f"{m:<22} {fmt(s):>12} {fmt(k):>12} {ratio:>11}")
PY
