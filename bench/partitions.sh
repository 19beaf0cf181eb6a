#!/usr/bin/env bash
# Partition scale on one node (issue #15): for each size N (default 10000 50000
# 100000), on a fresh data directory and an open-file limit of 20,000:
#   - time to create a topic of N partitions (until Metadata shows every leader),
#     then the broker's RSS and descriptors in use;
#   - produce throughput (rdkafka_performance, 100-byte messages, acks=1) to that
#     topic and, as the reference, to an 8-partition topic on the same broker,
#     once with librdkafka's default (sticky) partitioner and once with
#     sticky.partitioning.linger.ms=0 (a random partition per message: about one
#     message per partition per batch);
#   - a full Metadata response (v12, every topic): median time of 5, and size;
#   - restart time after SIGTERM and after kill -9: from the new process's
#     start to a Metadata answer with every partition led.
# A benchmark, not a test: it prints figures. Usage:
#   bench/partitions.sh [N...]        (STROM_BIN, BENCH_DIR, PORT, MSGS override)
set -euo pipefail
cd "$(dirname "$0")/.."
STROM=${STROM_BIN:-target/release/strom}
PY=${PYTHON:-.venv/bin/python}
TOOLS=${RDKAFKA_TOOLS:-../shared/tools/rdkafka-tools}
BASE=${BENCH_DIR:-/tmp/strom-partitions-bench}
PORT=${PORT:-29690}
MSGS=${MSGS:-1000000}
BS=127.0.0.1:$PORT
if [ $# -gt 0 ]; then SIZES=("$@"); else SIZES=(10000 50000 100000); fi
ulimit -n 20000 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"

pid=
start() { "$STROM" server --set "log.dirs=$BASE/data" --set "listeners=PLAINTEXT://$BS" >>"$BASE/strom.log" 2>&1 & pid=$!; }
stop() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=; }
trap stop EXIT
rss_mb() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$pid/status"; }
fds() { ls "/proc/$pid/fd" | wc -l; }
# msgs/s and MB/s from rdkafka_performance's summary line.
produce() {
  local topic=$1; shift
  "$TOOLS" perf -P -t "$topic" -b "$BS" -s 100 -c "$MSGS" -a 1 -q "$@" 2>&1 \
    | grep -o '[0-9.]* msgs/s and [0-9.]* MB/s' | tail -1 | awk '{printf "%.0f %.1f", $1, $4}'
}
# Seconds from a start time to every partition led.
ready() { "$PY" bench/partitions.py ready "$BS" "$1" "$2" 600; }

rows=()
for N in "${SIZES[@]}"; do
  rm -rf "$BASE"; mkdir -p "$BASE"
  start
  "$PY" bench/partitions.py ready "$BS" 0 "$(date +%s.%N)" 60 >/dev/null
  create_s=$("$PY" bench/partitions.py create "$BS" big "$N")
  sleep 2
  rss=$(rss_mb); nfd=$(fds)
  "$PY" bench/partitions.py create "$BS" p8 8 >/dev/null
  read -r p8_sticky p8_sticky_mb <<<"$(produce p8)"
  read -r p8_each p8_each_mb <<<"$(produce p8 -X sticky.partitioning.linger.ms=0)"
  read -r big_sticky big_sticky_mb <<<"$(produce big)"
  read -r big_each big_each_mb <<<"$(produce big -X sticky.partitioning.linger.ms=0)"
  read -r md_ms md_bytes _ <<<"$("$PY" bench/partitions.py metadata "$BS" 5)"
  rss_after=$(rss_mb); nfd_after=$(fds)
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
  t0=$(date +%s.%N); start; term_s=$(ready $((N + 8)) "$t0")
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
  t0=$(date +%s.%N); start; kill_s=$(ready $((N + 8)) "$t0")
  stop
  row="$N | $create_s | $rss / $rss_after | $nfd / $nfd_after | $p8_sticky / $big_sticky | $p8_each / $big_each | $md_ms ms, $md_bytes B | $term_s | $kill_s"
  echo "$row"
  rows+=("$row")
done
echo
echo "| partitions | create (s) | RSS MiB (created / after produce) | descriptors | produce msg/s, sticky: 8 partitions / N | produce msg/s, one message per partition per batch: 8 / N | full Metadata | restart after SIGTERM (s) | restart after kill -9 (s) |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "| $r |"; done
