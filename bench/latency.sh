#!/usr/bin/env bash
# End-to-end latency against Strom at several fixed producer rates (open loop,
# rdkafka_performance -r), 1 KiB messages into partition 0 of an 8-partition
# topic, acks=1, linger.ms=0, with a consumer reading from the end. Prints
# p50/p99/p99.9 per rate. The mock broker is not measured here: its consumer
# cannot keep up (see docs/performance.md).
#
#   bench/latency.sh [--messages N] RATE...      e.g. bench/latency.sh 20000 100000 200000
set -euo pipefail
cd "$(dirname "$0")/.."
N=300000
if [ "${1:-}" = --messages ]; then N=$2; shift 2; fi
[ $# -gt 0 ] || set -- 20000 100000 200000
TOOLS=${RDKAFKA_TOOLS:-$PWD/../shared/tools/rdkafka-tools}
T=${STROM_TOOLS:-$HOME/.cache/strom-tools}
"$TOOLS" build >/dev/null
cargo build --release --quiet
PERF=$T/librdkafka/examples/rdkafka_performance
STROM=$PWD/target/release/strom
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for rate in "$@"; do
  rm -rf "$OUT/data"; mkdir "$OUT/data"
  "$STROM" server --set "listeners=PLAINTEXT://127.0.0.1:$port" --set "log.dirs=$OUT/data" >"$OUT/strom.log" 2>&1 &
  spid=$!
  for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  STROM_BOOTSTRAP=127.0.0.1:$port "$STROM" topic create bench -p 8 >/dev/null
  rm -f "$OUT/lat"
  timeout $((N / rate + 60)) "$PERF" -C -t bench -p 0 -b "127.0.0.1:$port" -o end -l -A "$OUT/lat" -c "$N" -q >"$OUT/c" 2>&1 &
  cpid=$!
  sleep 2
  "$PERF" -P -t bench -p 0 -b "127.0.0.1:$port" -c "$N" -a 1 -l -r "$rate" -s 1024 -X linger.ms=0 -q >"$OUT/p" 2>&1 || true
  wait "$cpid" || true
  python3 - "$OUT/lat" "$rate" <<'PY'
import sys
v = sorted(int(x) for x in open(sys.argv[1]) if x.strip())
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] / 1000 if v else float("nan")
print(f"rate {int(sys.argv[2]):>7} msg/s  n={len(v):<7} p50 {q(0.5):7.3f} ms  p99 {q(0.99):7.3f} ms  p99.9 {q(0.999):7.3f} ms")
PY
  kill "$spid"; wait "$spid" 2>/dev/null || true
done
