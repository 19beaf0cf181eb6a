"""Process limits: a broker started with a low soft open-file limit (the common
default of 1,024, here 256) raises it to the hard limit at start-up and says so;
and under a small limit it still holds many more partitions than descriptors."""

import os
import resource
import subprocess

import pytest

from conftest import STROM, free_port
from jepsen.util import wait_for


def soft_open_files(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return line.split()[3]
    return None


def test_soft_open_file_limit_is_raised_to_the_hard_one(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-file limit is only {hard}")
    port = free_port()
    log = open(tmp_path / "strom.log", "wb")
    p = subprocess.Popen(
        [STROM, "server", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--set", f"log.dirs={tmp_path / 'data'}"],
        stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    try:
        wait_for("the limit log line", lambda: "raised the open-file limit" in (tmp_path / "strom.log").read_text(errors="replace"),
                 timeout=30, interval=0.05)
        soft = int(soft_open_files(p.pid))
        # An unlimited hard limit is capped at the kernel's fs.nr_open.
        assert soft == hard if hard != resource.RLIM_INFINITY else soft > 256, (soft, hard)
    finally:
        p.kill()
        p.wait(30)


def test_more_partitions_than_descriptors(tmp_path):
    """Partitions hold no descriptor while idle (issue #15): under a limit of 200
    open files, 1,000 partitions are created, each takes a message, and the
    directory stays online. Before, the limit ran out after about 60 partitions."""
    port = free_port()
    log = open(tmp_path / "strom.log", "wb")
    p = subprocess.Popen(
        [STROM, "server", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--set", f"log.dirs={tmp_path / 'data'}"],
        stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200)),
    )
    env = {"STROM_BOOTSTRAP": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"}

    def cli(*args, input=None):
        return subprocess.run([STROM, *args], input=input, capture_output=True, text=True, timeout=60, env=env)

    try:
        wait_for("the broker listening", lambda: cli("topic", "list").returncode == 0, timeout=30, interval=0.1)
        r = cli("topic", "create", "big", "-p", "1000")
        assert r.returncode == 0, r.stdout + r.stderr
        from confluent_kafka import Producer
        prod = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 5, "acks": "all"})
        acked = []
        for part in range(1000):
            prod.produce("big", value=b"m%d" % part, partition=part,
                         on_delivery=lambda err, m: acked.append((m.partition(), m.offset())) if err is None else None)
            prod.poll(0)
        assert prod.flush(60) == 0
        assert sorted(acked) == [(part, 0) for part in range(1000)]
        assert len(os.listdir(f"/proc/{p.pid}/fd")) < 200
        dirs = cli("log-dirs")
        assert dirs.returncode == 0 and "\tonline\t" in dirs.stdout and "offline" not in dirs.stdout, dirs.stdout + dirs.stderr
        assert "Too many open files" not in (tmp_path / "strom.log").read_text(errors="replace")
        assert p.poll() is None
    finally:
        p.kill()
        p.wait(30)
