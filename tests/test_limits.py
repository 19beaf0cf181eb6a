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
