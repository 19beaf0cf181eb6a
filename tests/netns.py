"""A Strom cluster whose nodes each live in their own Linux network namespace.

Layout (one `Network` per cluster):

    root namespace                     node namespaces
    bridge <p>br 10.77.K.1/24  ──┬── veth <p>h1 ═ eth0 10.77.K.11  (ns <p>n1)
                                 ├── veth <p>h2 ═ eth0 10.77.K.12  (ns <p>n2)
                                 └── veth <p>h3 ═ eth0 10.77.K.13  (ns <p>n3)

`<p>` is `sn<pid>x<serial>`: unique per test process and cluster, so parallel
runs do not collide and a crashed run's leftovers can be recognised (their pid
is gone) and removed by the next run. K is the first 10.77.K.0/24 not already
on an interface in the root namespace, picked under a file lock.

Every address has a permanent neighbour (ARP) entry on every side, so no ARP
traffic is needed and a partition stays silent: packets vanish, nothing answers
with a reset or an ICMP error, connects and requests simply time out. That is
the failure Kafka's replication has to survive.

Faults:
- `isolate(i)` / `heal(i)`: the bridge port of node i is disabled, so its frames
  are dropped both ways (from the root namespace too). The veth keeps its
  carrier, established TCP connections stay open and just stop moving.
- `block(a, b)` / `unblock(a, b)`: a one-pair cut, by pointing each side's
  neighbour entry for the other at a MAC address nobody has (node 0 is the root
  namespace). `partition(groups)` cuts every pair across groups.
- processes: `kill` (SIGKILL), `pause` (SIGSTOP), `resume` (SIGCONT),
  `start`, `restart` on the `NetnsCluster`.

Nothing here needs tc, netem or iptables (this kernel has none of them); only
`ip` and `bridge` from iproute2.
"""

import atexit
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import conftest
from conftest import Broker, Cluster

NAME_RE = re.compile(r"^sn(\d+)x(\d+)(br|h\d+|n\d+)$")
LOCK_PATH = "/run/lock/strom-netns.lock" if os.path.isdir("/run/lock") else "/tmp/strom-netns.lock"
BOGUS_MAC = "02:00:00:de:ad:00"  # a cut sends frames here: flooded, taken by nobody
CLIENT_PORT = 9092
CONTROLLER_PORT = 9093

_serial = 0
_live = []  # Networks of this process, destroyed at exit if a test left one behind
_lock = threading.Lock()


def sh(*args, check=True, timeout=30, ns=None):
    """Runs one command (in namespace `ns` if given); returns its stdout."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


_available = None


def available():
    """(True, "") if namespaces, veths and bridges can be made here, else (False, why)."""
    global _available
    if _available is None:
        _available = _probe()
    return _available


def _probe():
    if os.geteuid() != 0:
        return False, "network namespaces need root (tests run as uid %d)" % os.geteuid()
    for tool in ("ip", "bridge"):
        if shutil.which(tool) is None:
            return False, f"iproute2's `{tool}` is not installed"
    name = f"sn{os.getpid()}x0n0"  # matches the naming scheme, so a leftover is cleaned up
    try:
        sh("ip", "netns", "add", name)
        sh("ip", "netns", "del", name)
    except Exception as e:  # noqa: BLE001 - any failure means: skip
        return False, f"cannot create a network namespace: {e}"
    return True, ""


def _pid_alive(pid):
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"python" in cmdline or b"pytest" in cmdline


def cleanup_stale(only_pid=None):
    """Removes namespaces and links named by our scheme whose creating process is gone
    (or, with `only_pid`, those of that process). Processes still inside such a
    namespace are killed first."""
    try:
        namespaces = [line.split()[0] for line in sh("ip", "netns", "list", check=False).splitlines() if line.strip()]
    except Exception:  # noqa: BLE001
        namespaces = []
    links = []
    for line in sh("ip", "-o", "link", "show", check=False).splitlines():
        m = re.match(r"^\d+:\s+([^:@\s]+)", line)
        if m:
            links.append(m.group(1))

    def mine(name):
        m = NAME_RE.match(name)
        if not m:
            return False
        pid = int(m.group(1))
        return pid == only_pid if only_pid is not None else (pid != os.getpid() and not _pid_alive(pid))

    for ns in filter(mine, namespaces):
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False)
    for link in filter(mine, links):
        sh("ip", "link", "del", link, check=False)


class Network:
    """A bridge in the root namespace and `n` namespaces hanging off it."""

    def __init__(self, n):
        global _serial
        with _lock:
            _serial += 1
            serial = _serial
        self.n = n
        self.prefix = f"sn{os.getpid()}x{serial}"
        self.bridge = f"{self.prefix}br"
        self.subnet = None
        self.created = False
        self.isolated = set()
        self.blocked = set()  # frozenset({a, b}) pairs

    # names and addresses
    def ns(self, i):
        return f"{self.prefix}n{i}"

    def veth(self, i):
        return f"{self.prefix}h{i}"

    def ip(self, i):
        """Address of node i; i == 0 is the root namespace's address on the bridge."""
        return f"10.77.{self.subnet}.{1 if i == 0 else 10 + i}"

    def mac(self, i):
        return f"02:77:{self.subnet:02x}:00:00:{i:02x}"

    # lifecycle
    def create(self):
        cleanup_stale()
        with open(LOCK_PATH, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = {int(m) for m in re.findall(r"inet 10\.77\.(\d+)\.", sh("ip", "-o", "-4", "addr", "show"))}
            free = [k for k in range(1, 255) if k not in used]
            if not free:
                raise RuntimeError("no free 10.77.K.0/24 subnet")
            self.subnet = free[0]
            _live.append(self)
            self.created = True
            try:
                sh("ip", "link", "add", "name", self.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0")
                sh("ip", "link", "set", self.bridge, "address", self.mac(0))
                sh("ip", "addr", "add", f"{self.ip(0)}/24", "dev", self.bridge)
                sh("ip", "link", "set", self.bridge, "up")
            except Exception:
                self.destroy()
                raise
        try:
            for i in range(1, self.n + 1):
                ns = self.ns(i)
                sh("ip", "netns", "add", ns)
                sh("ip", "link", "add", self.veth(i), "type", "veth", "peer", "name", f"{self.prefix}c{i}", "netns", ns)
                sh("ip", "link", "set", self.veth(i), "master", self.bridge)
                sh("ip", "link", "set", self.veth(i), "up")
                sh("ip", "link", "set", "lo", "up", ns=ns)
                sh("ip", "link", "set", f"{self.prefix}c{i}", "name", "eth0", ns=ns)
                sh("ip", "link", "set", "eth0", "address", self.mac(i), ns=ns)
                sh("ip", "addr", "add", f"{self.ip(i)}/24", "dev", "eth0", ns=ns)
                sh("ip", "link", "set", "eth0", "up", ns=ns)
            for a in range(0, self.n + 1):
                for b in range(0, self.n + 1):
                    if a != b:
                        self._neigh(a, b, self.mac(b))
        except Exception:
            self.destroy()
            raise
        return self

    def destroy(self):
        if not self.created:
            return
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "link", "del", self.veth(i), check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        self.created = False
        if self in _live:
            _live.remove(self)

    # faults
    def _neigh(self, a, b, mac):
        """Sets a's neighbour entry for b's address."""
        dev = self.bridge if a == 0 else "eth0"
        sh("ip", "neigh", "replace", self.ip(b), "lladdr", mac, "nud", "permanent", "dev", dev,
           ns=None if a == 0 else self.ns(a))

    def isolate(self, i):
        sh("bridge", "link", "set", "dev", self.veth(i), "state", "0")  # disabled: drops both ways
        self.isolated.add(i)

    def heal(self, i):
        sh("bridge", "link", "set", "dev", self.veth(i), "state", "3")  # forwarding
        self.isolated.discard(i)

    def block(self, a, b):
        """Cuts a and b from each other only (0 is the root namespace)."""
        self._neigh(a, b, BOGUS_MAC)
        self._neigh(b, a, BOGUS_MAC)
        self.blocked.add(frozenset((a, b)))

    def unblock(self, a, b):
        self._neigh(a, b, self.mac(b))
        self._neigh(b, a, self.mac(a))
        self.blocked.discard(frozenset((a, b)))

    def partition(self, *groups):
        """Cuts every pair of nodes in different groups; the root namespace reaches all."""
        where = {i: g for g, members in enumerate(groups) for i in members}
        for a in where:
            for b in where:
                if a < b and where[a] != where[b]:
                    self.block(a, b)

    def heal_all(self):
        for i in list(self.isolated):
            self.heal(i)
        for pair in list(self.blocked):
            self.unblock(*sorted(pair))

    def port_state(self, i):
        return sh("bridge", "link", "show", "dev", self.veth(i))


@atexit.register
def _destroy_live():
    for net in list(_live):
        try:
            net.destroy()
        except Exception:  # noqa: BLE001
            pass


class NetnsBroker(Broker):
    """A Broker whose process runs inside a namespace and listens on that namespace's address."""

    host = "127.0.0.1"
    ns = None
    paused = False

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def start_async(self, extra=None):
        args = ["ip", "netns", "exec", self.ns, conftest.STROM, "server", "--set", f"log.dirs={self.data_dir}"]
        if self.config_file:
            args += ["--config", str(self.config_file)]
        for k, v in {**self.settings, **(extra or {})}.items():
            args += ["--set", f"{k}={v}"]
        self.log = open(self.log_path, "ab")
        # `ip netns exec` execs, so proc.pid is strom itself.
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        self.paused = False
        return self

    def wait_listening(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strom exited with {self.proc.returncode}: {self.read_log()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"strom node {self.node_id} did not start listening on {self.bootstrap}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.wait(timeout=30)
        self.proc = None
        self.paused = False

    def kill9(self):
        super().kill9()
        self.paused = False

    def pause(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def run(self, *args, timeout=60, input=None, env=None):
        """Runs a command inside this node's namespace (not inside the strom process)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, input=input, env={**os.environ, **(env or {})})


class NetnsCluster(Cluster):
    """`conftest.Cluster` (same FAST settings and roles), one namespace per node.

    Each node's client and CONTROLLER listeners bind its namespace address on
    fixed ports (9092, 9093); the advertised listener is that address, so
    clients in the root namespace reach every broker over the bridge.
    """

    def __init__(self, root, voters=3, extra_brokers=0, dedicated_controllers=False, settings=None, racks=None):
        super().__init__(root, voters=voters, extra_brokers=extra_brokers, dedicated_controllers=dedicated_controllers,
                         settings=settings, racks=racks)
        self.net = Network(len(self.nodes)).create()
        try:
            quorum = ",".join(f"{i}@{self.net.ip(i)}:{CONTROLLER_PORT}" for i, b in self.nodes.items()
                              if hasattr(b, "controller_port"))
            for i, b in self.nodes.items():
                b.__class__ = NetnsBroker
                b.host = self.net.ip(i)
                b.ns = self.net.ns(i)
                b.settings["controller.quorum.voters"] = quorum
                listeners = []
                if b.is_broker:
                    listeners.append(f"PLAINTEXT://{b.host}:{CLIENT_PORT}")
                    b.settings["advertised.listeners"] = f"PLAINTEXT://{b.host}:{CLIENT_PORT}"
                if hasattr(b, "controller_port"):
                    listeners.append(f"CONTROLLER://{b.host}:{CONTROLLER_PORT}")
                    b.controller_port = CONTROLLER_PORT
                b.settings["listeners"] = ",".join(listeners)
                b.port = CLIENT_PORT if b.is_broker else CONTROLLER_PORT
        except Exception:
            self.net.destroy()
            raise

    def stop(self):
        try:
            for b in self.nodes.values():
                try:
                    b.kill9()
                except Exception:  # noqa: BLE001
                    pass
        finally:
            self.net.destroy()

    # faults by node id
    def kill(self, i):
        self.nodes[i].kill9()

    def start_node(self, i):
        self.nodes[i].start()

    def restart(self, i):
        self.nodes[i].kill9()
        self.nodes[i].start()

    def pause(self, i):
        self.nodes[i].pause()

    def resume(self, i):
        self.nodes[i].resume()

    def isolate(self, i):
        self.net.isolate(i)

    def heal(self, i):
        self.net.heal(i)

    def heal_all(self):
        """Undoes every fault: network healed, paused nodes resumed, dead nodes started."""
        self.net.heal_all()
        for b in self.nodes.values():
            if b.paused:
                b.resume()
        dead = [b for b in self.nodes.values() if b.proc is None or b.proc.poll() is not None]
        for b in dead:
            b.start_async()
        for b in dead:
            b.wait_listening()
