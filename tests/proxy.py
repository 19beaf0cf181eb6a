"""A TCP proxy between Kafka clients and one broker that loses Produce responses.

The point is to make a client retry a request the broker has already applied,
which is exactly the case idempotence exists for. For each selected Produce
request (api key 0, acks != 0) the proxy

1. forwards the request to the broker as usual,
2. keeps forwarding the responses to earlier requests, but drops the response
   to the selected one (correlation id match) once it arrives, so the broker is
   known to have answered it, that is to have appended the batch,
3. then resets the client's connection (RST) and closes the broker's.

The client sees its connection die with the request outstanding and retries
it on a new connection. Requests the client pipelined after the selected one
are still forwarded (the broker may apply them too), and their responses are
lost with the connection, as when a real network drops.

Clients learn broker addresses from Metadata and FindCoordinator, so the broker
behind the proxy must advertise the proxy's address: start it with
`advertised.listeners=PLAINTEXT://127.0.0.1:<proxy.port>` (see `proxied_broker`).
The proxy binds its port when constructed so that the port is known first.

Which Produce requests are cut: every `cut_every`-th one (counted over all
connections), or each with probability `cut_probability` drawn from a seeded
generator, at most `max_cuts` in all. `enabled` switches cutting on and off
while traffic flows. Threads, one pair per connection: simple, and fast enough
for test traffic.

    proxy = KafkaProxy(cut_every=5)
    broker = Broker(data, {"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"}).start()
    proxy.start(broker.port)
    ...  # clients bootstrap to proxy.bootstrap
    proxy.stop()
"""

import random
import socket
import struct
import threading

PRODUCE = 0
MAX_FRAME = 200 * 1024 * 1024


class KafkaProxy:
    """A cutting proxy to one broker (see the module doc)."""

    def __init__(self, cut_every=None, cut_probability=None, seed=0, max_cuts=None, response_timeout=15.0,
                 host="127.0.0.1"):
        self.host = host
        self.cut_every = cut_every
        self.cut_probability = cut_probability
        self.max_cuts = max_cuts
        self.response_timeout = response_timeout
        self.enabled = True
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.produces = 0  # Produce requests with acks != 0 seen
        self.cuts = 0  # connections cut after an applied Produce
        self.cut_unanswered = 0  # cuts whose response never came (closed on the timeout instead)
        self.connections = 0
        self.requests = {}  # api key -> count
        self.upstream = None
        self._links = set()
        self._stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._thread = None

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def start(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self.lock:
            links = list(self._links)
        for link in links:
            link.close()

    def cut_all(self):
        """Drops every open connection now (as a network blip would)."""
        with self.lock:
            links = list(self._links)
        for link in links:
            link.close()

    def stats(self):
        with self.lock:
            return {"produces": self.produces, "cuts": self.cuts, "cut_unanswered": self.cut_unanswered,
                    "connections": self.connections, "requests": dict(self.requests)}

    # -- decisions -----------------------------------------------------------------------------

    def _should_cut(self, api_key, acks):
        with self.lock:
            self.requests[api_key] = self.requests.get(api_key, 0) + 1
            if api_key != PRODUCE or acks == 0:
                return False
            self.produces += 1
            if not self.enabled or (self.max_cuts is not None and self.cuts >= self.max_cuts):
                return False
            if self.cut_every:
                cut = self.produces % self.cut_every == 0
            elif self.cut_probability:
                cut = self.rng.random() < self.cut_probability
            else:
                cut = False
            if cut:
                self.cuts += 1
            return cut

    # -- connections ---------------------------------------------------------------------------

    def _accept_loop(self):
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, upstream)
            with self.lock:
                self.connections += 1
                self._links.add(link)
            link.start()

    def _forget(self, link):
        with self.lock:
            self._links.discard(link)


class _Link:
    """One client connection and its broker connection, with a thread per direction."""

    def __init__(self, proxy, client, upstream):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.doomed = None  # correlation id whose response is dropped, then the link cut
        self.lock = threading.Lock()
        self.closed = False
        self.timer = None

    def start(self):
        threading.Thread(target=self._requests, daemon=True).start()
        threading.Thread(target=self._responses, daemon=True).start()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if self.timer:
            self.timer.cancel()
        _reset(self.client)
        _reset(self.upstream)
        self.proxy._forget(self)

    def _doom(self, correlation_id):
        with self.lock:
            if self.doomed is None:
                self.doomed = correlation_id
                self.timer = threading.Timer(self.proxy.response_timeout, self._gave_up)
                self.timer.daemon = True
                self.timer.start()

    def _gave_up(self):
        with self.proxy.lock:
            self.proxy.cut_unanswered += 1
        self.close()

    def _requests(self):
        try:
            while True:
                frame = _read_frame(self.client)
                if frame is None:
                    break
                api_key, version, correlation_id, acks = parse_request(frame)
                # One cut per connection: once doomed, the connection is as good as gone.
                if self.doomed is None and self.proxy._should_cut(api_key, acks):
                    self._doom(correlation_id)
                self.upstream.sendall(frame)
        except (OSError, ValueError):
            pass
        self.close()

    def _responses(self):
        try:
            while True:
                frame = _read_frame(self.upstream)
                if frame is None:
                    break
                correlation_id = struct.unpack_from(">i", frame, 4)[0] if len(frame) >= 8 else None
                doomed = self.doomed
                if doomed is not None and correlation_id == doomed:
                    break  # the broker answered: it applied the request; the client never learns
                self.client.sendall(frame)
        except (OSError, ValueError):
            pass
        self.close()


def _reset(sock):
    """Closes at once. shutdown() first: a plain close() neither wakes the other thread
    blocked in recv() on this socket nor ends the connection while that call holds it.
    With linger 0 the final close sends RST, as a cut connection would."""
    for step in (lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
                 lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
        try:
            step()
        except OSError:
            pass


def _recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock):
    """One whole frame including its 4-byte length, or None at end of stream."""
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    if size < 0 or size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    body = _recv_exact(sock, size)
    if body is None:
        return None
    return head + body


# -- request parsing -----------------------------------------------------------------------------


def _uvarint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def parse_request(frame):
    """(api key, api version, correlation id, acks) of a request frame; acks is None unless
    the frame is a Produce request whose acks field could be read."""
    if len(frame) < 12:
        raise ValueError("short request frame")
    api_key, version, correlation_id = struct.unpack_from(">hhi", frame, 4)
    if api_key != PRODUCE:
        return api_key, version, correlation_id, None
    try:
        return api_key, version, correlation_id, _produce_acks(frame, version)
    except (IndexError, struct.error):
        return api_key, version, correlation_id, None


def _produce_acks(frame, version):
    pos = 12
    (client_id_len,) = struct.unpack_from(">h", frame, pos)
    pos += 2 + max(client_id_len, 0)
    flexible = version >= 9
    if flexible:  # request header v2: tagged fields
        count, pos = _uvarint(frame, pos)
        for _ in range(count):
            _, pos = _uvarint(frame, pos)
            size, pos = _uvarint(frame, pos)
            pos += size
    if version >= 3:  # transactional_id
        if flexible:
            n, pos = _uvarint(frame, pos)
            pos += max(n - 1, 0)
        else:
            (n,) = struct.unpack_from(">h", frame, pos)
            pos += 2 + max(n, 0)
    (acks,) = struct.unpack_from(">h", frame, pos)
    return acks
