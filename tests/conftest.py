"""Shared fixtures: a real `strom server` process on a free loopback port.

Every test talks to the broker over TCP with an unmodified client library.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STROM = os.environ.get("STROM_BIN", str(ROOT / "target" / "release" / "strom"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A strom server process that can be stopped, killed and restarted on the same data."""

    def __init__(self, data_dir, settings=None, config_file=None, env=None):
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.config_file = config_file
        self.port = free_port()
        self.settings = dict(settings or {})
        self.proc = None
        self.log_path = Path(data_dir).parent / f"strom-{self.port}.log"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, extra=None):
        return self.start_async(extra).wait_listening()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, hard=False):
        self.kill9() if hard else self.stop()
        return self.start()

    def read_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cli(self, *args, input=None, timeout=60):
        env = {**os.environ, "STROM_BOOTSTRAP": self.bootstrap}
        return subprocess.run([STROM, *args], input=input, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def broker(tmp_path):
    b = Broker(str(tmp_path / "data")).start()
    yield b
    b.stop()


@pytest.fixture
def make_broker(tmp_path):
    made = []

    def make(settings=None, config_file=None, env=None, data_dir=None):
        b = Broker(data_dir or str(tmp_path / f"data{len(made)}"), settings, config_file, env)
        made.append(b)
        return b

    yield make
    for b in made:
        b.kill9()


@pytest.fixture
def topic_name():
    return f"t-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap, name, partitions=1, config=None):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    fut[name].result(timeout=30)


class Cluster:
    """Several `strom server` processes on loopback forming one cluster.

    `voters` nodes are combined broker+controller (or controller-only when
    `dedicated_controllers`); `extra_brokers` more are broker-only. Timeouts are
    short so failovers happen in a second or two on a loaded 2-core machine.
    """

    FAST = {
        "controller.quorum.election.timeout.ms": "500",
        "controller.quorum.request.timeout.ms": "2000",
        "broker.heartbeat.interval.ms": "200",
        "broker.session.timeout.ms": "2000",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "6",
        "replica.lag.time.max.ms": "3000",
        "replica.fetch.backoff.ms": "100",
        "replica.fetch.wait.max.ms": "200",
        "replica.high.watermark.checkpoint.interval.ms": "1000",
    }

    def __init__(self, root, voters=3, extra_brokers=0, dedicated_controllers=False, settings=None, racks=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.nodes = {}
        ids = list(range(1, voters + extra_brokers + 1))
        cports = {i: free_port() for i in ids[:voters]}
        quorum = ",".join(f"{i}@127.0.0.1:{cports[i]}" for i in ids[:voters])
        for i in ids:
            voter = i <= voters
            roles = ("controller" if dedicated_controllers else "broker,controller") if voter else "broker"
            s = {**self.FAST, **(settings or {}), "node.id": str(i), "process.roles": roles,
                 "controller.quorum.voters": quorum, "controller.listener.names": "CONTROLLER"}
            if racks:
                s["broker.rack"] = racks[(i - 1) % len(racks)]
            b = Broker(str(self.root / f"node{i}"), s)
            b.log_path = self.root / f"node{i}.log"
            listeners = []
            if "broker" in roles:
                listeners.append(f"PLAINTEXT://127.0.0.1:{b.port}")
            if voter:
                listeners.append(f"CONTROLLER://127.0.0.1:{cports[i]}")
                b.controller_port = cports[i]
            b.settings["listeners"] = ",".join(listeners)
            b.is_broker = "broker" in roles
            b.node_id = i
            if not b.is_broker:
                b.port = cports[i]  # wait for the controller listener instead
            self.nodes[i] = b

    def start(self):
        # All at once: voters wait for each other to elect a leader.
        procs = []
        for b in self.nodes.values():
            procs.append(b)
            b.start_async()
        for b in procs:
            b.wait_listening()
        return self

    @property
    def brokers(self):
        return [b for b in self.nodes.values() if b.is_broker]

    def bootstrap(self, exclude=()):
        return ",".join(b.bootstrap for b in self.brokers if b.node_id not in exclude and b.proc)

    def stop(self):
        for b in self.nodes.values():
            b.kill9()


def _start_async(self, extra=None):
    args = [STROM, "server", "--set", f"listeners=PLAINTEXT://127.0.0.1:{self.port}", "--set", f"log.dirs={self.data_dir}"]
    if self.config_file:
        args += ["--config", str(self.config_file)]
    for k, v in {**self.settings, **(extra or {})}.items():
        args += ["--set", f"{k}={v}"]
    self.log = open(self.log_path, "ab")
    self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
    return self


def _wait_listening(self, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if self.proc.poll() is not None:
            raise RuntimeError(f"strom exited with {self.proc.returncode}: {self.read_log()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return self
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("strom did not start listening")


Broker.start_async = _start_async
Broker.wait_listening = _wait_listening


@pytest.fixture
def make_cluster(tmp_path):
    made = []

    def make(**kw):
        c = Cluster(tmp_path / f"cluster{len(made)}", **kw)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def make_netns_cluster(tmp_path):
    """Like make_cluster, but every node in its own network namespace (tests/netns.py),
    so tests can cut nodes off the network. Skips when namespaces cannot be made."""
    import netns

    ok, why = netns.available()
    if not ok:
        pytest.skip(why)
    made = []

    def make(**kw):
        c = netns.NetnsCluster(tmp_path / f"nscluster{len(made)}", **kw)
        made.append(c)  # before start: a failed start is still torn down
        return c.start()

    yield make
    for c in made:
        c.stop()
