"""Process limits: a broker started with a low soft open-file limit (the common
default of 1,024, here 256) raises it to the hard limit at start-up and says so."""

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


def test_running_out_of_descriptors_does_not_take_the_log_directory_offline(tmp_path):
    """With no descriptor left, opening more partitions fails (issue #15 is about
    needing fewer), but that is not a disk failure: the directory stays online and
    the partitions already open keep serving."""
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
        cli("topic", "create", "big", "-p", "100")
        wait_for("descriptors exhausted", lambda: "Too many open files" in (tmp_path / "strom.log").read_text(errors="replace"),
                 timeout=30, interval=0.1)
        dirs = cli("log-dirs")
        assert dirs.returncode == 0 and "\tonline\t" in dirs.stdout and "offline" not in dirs.stdout, dirs.stdout + dirs.stderr
        r = cli("produce", "big", "-p", "0", input="still here\n")
        assert r.returncode == 0, r.stdout + r.stderr
        assert p.poll() is None
    finally:
        p.kill()
        p.wait(30)
