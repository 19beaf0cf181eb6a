"""Smoke tests: the benchmark tools run end to end on a tiny workload.
They time nothing; the figures are for docs/performance.md, not for CI."""

import os
import subprocess
from pathlib import Path

from conftest import STROM

ROOT = Path(__file__).resolve().parent.parent


def test_strom_bench_produce_consume_e2e(broker):
    out = broker.cli("bench", "produce", "-n", "2000", "--batch", "100", "--connections", "2", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "messages       2000" in out.stdout and "latency" in out.stdout
    out = broker.cli("bench", "consume", "-n", "2000", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "messages       2000" in out.stdout
    out = broker.cli("bench", "e2e", "--rate", "500", "--seconds", "1", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "messages       500" in out.stdout and "p99.9" in out.stdout


def test_compare_script_smoke():
    # Builds librdkafka's tools on first use (about 10 minutes on 2 cores).
    out = subprocess.run(["bash", str(ROOT / "bench" / "compare.sh"), "--smoke"], capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    for figure in ["produce_acks1_msgs", "produce_acksall_msgs", "consume_MBps", "e2e_p99_ms", "peak_rss_MiB", "cpu_s_per_GB"]:
        assert figure in out.stdout


def test_latency_script_smoke():
    out = subprocess.run(["bash", str(ROOT / "bench" / "latency.sh"), "--messages", "2000", "1000"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rate    1000 msg/s" in out.stdout and "n=2000" in out.stdout, out.stdout


def test_replication_script_smoke():
    # About 20 s: one round of a single node and a 3-broker RF 3 cluster, tiny runs.
    env = {**os.environ, "STROM_BIN": STROM}
    out = subprocess.run(["bash", str(ROOT / "bench" / "replication.sh"), "--smoke"], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    for figure in ["produce_acksall_msgs", "produce_acks1_msgs", "catchup_after_acks1_s", "e2e_p99_ms", "acksall_cpu_s_per_GB"]:
        assert figure in out.stdout, out.stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines() if line.strip()}
    assert rows["e2e_received"][:2] == ["2000", "2000"], out.stdout
