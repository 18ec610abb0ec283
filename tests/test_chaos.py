"""Chaos while traffic flows (issue 17): faults injected into a `dapr-envoy run` while a caller
sends a steady stream of calls through its sidecar, each outcome counted and bounded.

The caller is this test, speaking as checkout's app to checkout's DAPR_HTTP_PORT; the callee is
tests/apps/ledger.py behind order-processor's sidecar (mutual TLS between the sidecars). Every
call carries a unique `x-call-id`, which the ledger appends to a journal file as it arrives
(before it answers), so a test can prove that no call was delivered twice and that every call
answered 200 was delivered exactly once, even across a restart of the app.

Each test's docstring says what a caller sees (status and Dapr error), for how long, and how
often a call is delivered; RELIABILITY.md has the figures of a run. Bounds are generous for a
loaded 2-core machine but fail on the behaviour they guard (a hang, a duplicate, a lost
process, a failure that does not end).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import harness
from harness import Run, assert_nothing_left, survivors

APPS = harness.ROOT / "tests/apps"
CALLEE = "order-processor"
ORDER = b'{"orderId": 1}'
# order-processor's access policy in every run here: only checkout, only GET and POST on the
# paths the tests call.
POLICY = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: chaos
spec:
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
      - appId: checkout
        defaultAction: deny
        trustDomain: public
        namespace: default
        operations:
          - name: /orders
            httpVerb: ["GET", "POST"]
            action: allow
          - name: /_hang
            httpVerb: ["GET", "POST"]
            action: allow
"""


@pytest.fixture(autouse=True)
def stop_leftover_runs():
    """A test that fails half-way still stops the runs it started."""
    before = len(Run.started)
    yield
    while len(Run.started) > before:
        Run.started.pop().stop()


# ---------------------------------------------------------------------------------------------
# Steady traffic, and what it saw.


@dataclass
class Call:
    id: str
    sent: float  # time.monotonic() when sent
    took: float  # seconds until the answer (or the error)
    status: int | None  # None: no HTTP answer (refused, reset, client timeout)
    error: str = ""  # the Dapr message of an error answer, or the exception

    @property
    def done(self) -> float:
        return self.sent + self.took


class Traffic:
    """Calls at a steady `rate` (a second, all workers together) from `workers` threads, each
    keeping its connection to the caller's sidecar alive between calls, as an app's HTTP client
    does. `headers` and `path` say what each call is; every call gets a fresh `x-call-id`."""

    def __init__(self, port: int, rate: float = 100, workers: int = 4, path: str = "/orders",
                 method: str = "POST", body: bytes | None = ORDER, headers: dict | None = None,
                 timeout: float = 10, name: str = "call"):
        self.port, self.rate, self.path, self.method, self.body = port, rate, path, method, body
        self.headers = {"dapr-app-id": CALLEE, "content-type": "application/json",
                        **(headers or {})}
        self.timeout, self.name = timeout, name
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.next = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.work, daemon=True) for _ in range(workers)]

    def start(self) -> "Traffic":
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> list[Call]:
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        with self.lock:
            return sorted(self.calls, key=lambda c: c.sent)

    def run_for(self, seconds: float) -> list[Call]:
        self.start()
        time.sleep(seconds)
        return self.stop()

    def snapshot(self) -> list[Call]:
        with self.lock:
            return sorted(self.calls, key=lambda c: c.sent)

    def work(self):
        conn = None
        while not self.stopping.is_set():
            with self.lock:
                k = self.next
                self.next += 1
            delay = self.t0 + k / self.rate - time.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                break
            call_id = f"{self.name}-{k}-{uuid.uuid4().hex[:8]}"
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                conn.request(self.method, self.path, body=self.body,
                             headers={**self.headers, "x-call-id": call_id})
                resp = conn.getresponse()
                data = resp.read()
                call = Call(call_id, sent, time.monotonic() - sent, resp.status,
                            "" if resp.status == 200 else message(data))
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                call = Call(call_id, sent, time.monotonic() - sent, None, f"{type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.calls.append(call)
        if conn is not None:
            conn.close()


def message(body: bytes) -> str:
    try:
        return json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")


@dataclass
class Outcome:
    """What a stream of calls saw around a fault."""
    calls: list[Call]
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # (status, message) of every failed call
    first_failure: float | None = None
    last_failure: float | None = None
    slowest: float = 0.0

    @classmethod
    def of(cls, calls: list[Call]) -> "Outcome":
        o = cls(calls)
        for c in calls:
            o.statuses[c.status] += 1
            o.slowest = max(o.slowest, c.took)
            if c.status != 200:
                # The port and the Envoy flags vary; the reason does not.
                o.errors[(c.status, re.sub(r"\d{4,5}", "N", c.error))] += 1
                o.first_failure = c.sent if o.first_failure is None else o.first_failure
                o.last_failure = c.done
        return o

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)

    @property
    def outage(self) -> float:
        """From the first failed call sent to the last failed call answered."""
        if self.first_failure is None:
            return 0.0
        return self.last_failure - self.first_failure

    def recovered_after(self, fault: float) -> float | None:
        """From the fault to the first call sent after it that succeeded, when every call sent
        after that one succeeded too."""
        after = [c for c in self.calls if c.sent >= fault]
        for i, c in enumerate(after):
            if all(d.status == 200 for d in after[i:]):
                return c.sent - fault if after[i:] else None
        return None

    def report(self, what: str) -> str:
        line = (f"{what}: {len(self.calls)} calls, statuses {dict(self.statuses)}, "
                f"outage {self.outage:.2f} s, slowest {self.slowest:.2f} s; errors "
                f"{dict(self.errors)}")
        print(line)
        return line


# ---------------------------------------------------------------------------------------------
# The mesh: checkout (the test) calls order-processor (the ledger) through both sidecars.


@dataclass
class Mesh:
    run: Run
    http: int  # checkout's DAPR_HTTP_PORT
    app_port: int  # order-processor's app
    inbound: int  # order-processor's sidecar, the mutual-TLS listener other sidecars call
    journal: Path
    tmp: Path

    def deliveries(self) -> Counter:
        return Counter(self.journal.read_text().split()) if self.journal.exists() else Counter()

    def assert_delivered_once(self, calls: list[Call]) -> Counter:
        """No call reached the app twice, and every call answered 200 reached it once."""
        seen = self.deliveries()
        twice = {k: n for k, n in seen.items() if n > 1}
        assert not twice, f"delivered more than once: {twice}"
        lost = [c for c in calls if c.status == 200 and seen[c.id] != 1]
        assert not lost, f"answered 200 but not delivered: {lost[:5]}"
        return seen

    def sidecar_pid(self, app: str) -> int:
        pids = [int(p.split(":")[0]) for p in survivors(self.run.marker) if f"{app}.envoy.json" in p]
        assert len(pids) == 1, survivors(self.run.marker)
        return pids[0]

    def ledger_stats(self) -> dict:
        return json.loads(harness.request(self.app_port, "GET", "/_stats")[2])

    def stop(self, expect: int = 128 + signal.SIGTERM) -> None:
        self.run.proc.send_signal(signal.SIGTERM)
        assert self.run.wait(timeout=30) == expect, self.run.err
        assert_nothing_left(self.run.marker)


def start_mesh(tmp: Path, *args: str, callee_command: str | None = None, callee_extra: str = "",
               resiliency: str | None = None, more_apps: str = "", pipe: bool = False) -> Mesh:
    """A run of order-processor (the ledger, or `callee_command` in its directory; POLICY) and an
    idle checkout; returns once a call goes through both sidecars."""
    ports = {k: harness.free_port() for k in ("app", "op-http", "inbound", "http")}
    journal = tmp / "journal"
    (tmp / "idle").mkdir(exist_ok=True)
    (tmp / "config.yaml").write_text(POLICY)
    common = ""
    if resiliency:
        (tmp / "resources").mkdir(exist_ok=True)
        (tmp / "resources/resiliency.yaml").write_text(resiliency)
        common = "common:\n  resourcesPath: ./resources\n"
    command = json.dumps(["sh", "-c", callee_command] if callee_command else ["python3", "ledger.py"])
    run = Run(tmp, f"""\
version: 1
{common}apps:
  - appID: {CALLEE}
    appDirPath: {APPS}
    appPort: {ports['app']}
    daprHTTPPort: {ports['op-http']}
    daprInternalGRPCPort: {ports['inbound']}
    configFilePath: {tmp / 'config.yaml'}
    command: {command}
    env:
      LEDGER_JOURNAL: {journal}
      EXPECT_CALLER: checkout{callee_extra}
  - appID: checkout
    appDirPath: ./idle
    daprHTTPPort: {ports['http']}
    command: ["sleep", "600"]
{more_apps}""", *args, pipe=pipe)
    mesh = Mesh(run, ports["http"], ports["app"], ports["inbound"], journal, tmp)
    deadline = time.monotonic() + 60
    while True:
        try:
            status = harness.request(mesh.http, "GET", "/orders", {"dapr-app-id": CALLEE}, timeout=5)[0]
        except OSError:
            status = None
        if status == 200:
            return mesh
        if pipe:
            assert run.proc.poll() is None, "the runner exited"
        else:
            assert run.proc.poll() is None, f"the runner exited:\n{run.out}\n{run.err}"
        assert time.monotonic() < deadline, f"no call went through:\n{run.err}"
        time.sleep(0.1)


def wait_until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# A process dies.

# The ledger under a loop that starts it again, as a process supervisor would: `dapr-envoy run`
# (like `dapr run`) never restarts an app, and ends the run when one fails.
SUPERVISED_LEDGER = "while :; do python3 ledger.py; sleep 0.5; done"


def test_the_callee_app_killed_and_started_again(tmp_path):
    """order-processor's app is killed (SIGKILL) at 100 calls a second and its supervisor starts
    it again 0.5 s later (`dapr-envoy run`, like `dapr run`, never restarts an app). A caller
    sees 503 `failed to invoke, id: order-processor, err: upstream connect error or
    disconnect/reset before headers. reset reason: remote connection failure (UF)` from the
    callee's sidecar while the app is down, for about the restart time (bound: 5 s); a call in
    flight when the app died would get `... connection termination (UC)`. Then every call
    succeeds. No call is delivered twice (without a retry policy, nothing that reached the app
    is retried), and every call answered 200 was delivered once."""
    mesh = start_mesh(tmp_path, callee_command=SUPERVISED_LEDGER)
    traffic = Traffic(mesh.http).start()
    time.sleep(1.5)
    pid = mesh.ledger_stats()["pid"]
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _answers(mesh.app_port, pid), 20, "the app did not come back")
    time.sleep(2)
    calls = traffic.stop()
    o = Outcome.of(calls)
    o.report("callee app killed")
    assert o.statuses[200] > 200
    # What failed, failed with the callee sidecar's Dapr error, never a hang or a bare reset.
    assert set(o.statuses) <= {200, 503}, o.errors
    for (status, msg), _ in o.errors.items():
        assert msg.startswith(f"failed to invoke, id: {CALLEE}, err: upstream connect error"), msg
    assert o.outage < 5, o.outage
    assert o.slowest < 5
    recovered = o.recovered_after(killed)
    assert recovered is not None and recovered < 6, recovered
    mesh.assert_delivered_once(calls)
    assert mesh.ledger_stats()["wrong_caller"] == 0
    mesh.stop()


def _answers(port: int, old_pid: int) -> bool:
    try:
        return json.loads(harness.request(port, "GET", "/_stats", timeout=2)[2])["pid"] != old_pid
    except (OSError, ValueError):
        return False


def test_the_callee_sidecar_killed_and_started_again_by_the_runner(tmp_path):
    """order-processor's Envoy is killed (SIGKILL) at 100 calls a second; the runner starts it
    again 0.1 s later, and it is ready about half a second after that. Meanwhile checkout's
    sidecar cannot connect: it retries a refused connection as Dapr's built-in retries do (3
    times, 1 s apart), so the calls in that window are only slower (up to about 1.5 s); a call
    whose connection was cut mid-way gets 503 `failed to invoke, id: order-processor, err:
    upstream connect error or disconnect/reset before headers. reset reason: connection
    termination (UC)` at once (not retried: it may have been delivered). Every call is
    answered; none is delivered twice; after the restart every call succeeds."""
    mesh = start_mesh(tmp_path)
    traffic = Traffic(mesh.http).start()
    time.sleep(1.5)
    killed = time.monotonic()
    os.kill(mesh.sidecar_pid(CALLEE), signal.SIGKILL)
    wait_until(lambda: f'sidecar of "{CALLEE}" ready again' in mesh.run.err, 30, mesh.run.err)
    ready = time.monotonic() - killed
    time.sleep(3)
    calls = traffic.stop()
    o = Outcome.of(calls)
    o.report(f"callee sidecar killed (ready again after {ready:.2f} s)")
    assert ready < 10, ready
    assert set(o.statuses) <= {200, 503}, o.errors
    for (status, msg), _ in o.errors.items():
        assert msg.startswith(f"failed to invoke, id: {CALLEE}, err: upstream connect error"), msg
    # The calls in flight, and (on a slow machine) calls whose three connection retries all came
    # before the sidecar was back; none once it is back.
    assert all(c.sent < killed + ready + 0.5 for c in calls if c.status != 200), o.errors
    assert o.failed <= 4 + 100 * ready, o.errors
    assert o.slowest < 8
    recovered = o.recovered_after(killed)
    assert recovered is not None and recovered < 8, recovered
    mesh.assert_delivered_once(calls)
    mesh.stop()


# ---------------------------------------------------------------------------------------------
# A callee that never answers, slow clients, bad requests: one run for these.

HUNG_TIMEOUT = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: chaos
scopes: [checkout]
spec:
  policies:
    timeouts:
      short: 1s
  targets:
    apps:
      guarded:
        timeout: short
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """order-processor, and a second ledger `guarded` that checkout's Resiliency gives a 1 s
    timeout."""
    tmp = tmp_path_factory.mktemp("chaos")
    guarded = f"""\
  - appID: guarded
    appDirPath: {APPS}
    appPort: {harness.free_port()}
    daprHTTPPort: {harness.free_port()}
    command: ["python3", "ledger.py"]
    env:
      LEDGER_JOURNAL: {tmp / 'guarded-journal'}
"""
    mesh = start_mesh(tmp, resiliency=HUNG_TIMEOUT, more_apps=guarded)
    yield mesh
    mesh.stop()


def active_to_app(mesh: Mesh, app: str = CALLEE) -> int:
    """Requests the app's sidecar has open to its app now."""
    admin = int(re.search(rf'sidecar of "{app}" ready: .* admin (\d+)', mesh.run.err).group(1))
    stats = json.loads(harness.request(admin, "GET", "/stats?format=json&filter=local-app")[2])
    return sum(s.get("value", 0) for s in stats["stats"]
               if s.get("name") == "cluster.local-app.upstream_rq_active")


@pytest.mark.parametrize("target,policy", [(CALLEE, "none"), ("guarded", "timeout 1s")])
def test_a_hung_callee(shared, target, policy):
    """Calls to a path where the app accepts and never answers, 5 at once, beside steady good
    calls. Without a Resiliency timeout (Dapr has no default one) a caller waits until it gives
    up itself (here its client's 3 s timeout; no status); when it does, both sidecars drop the
    call, and nothing is left open to the app. With `timeout: 1s` the caller gets 504
    `failed to invoke, id: guarded, err: upstream request timeout (UT)` after 1 s. Either way
    the good calls beside them all succeed, and each hung call is delivered once."""
    good = Traffic(shared.http, rate=50, headers={"dapr-app-id": target}, name=f"good-{target}").start()
    hung = Traffic(shared.http, rate=5, workers=5, path="/_hang", headers={"dapr-app-id": target},
                   timeout=3, name=f"hung-{target}")
    hung_calls = hung.run_for(4)
    calls = good.stop()
    g, h = Outcome.of(calls), Outcome.of(hung_calls)
    g.report(f"good calls beside a hung callee ({policy})")
    h.report(f"hung calls ({policy})")
    assert g.statuses == Counter({200: len(calls)}), g.errors
    assert g.slowest < 2
    assert len(hung_calls) >= 5
    if policy == "none":
        assert set(h.statuses) == {None}, h.errors
        assert all(2.9 < c.took < 6 and "timed out" in c.error for c in hung_calls), hung_calls
        # Given up by the caller: the callee's sidecar has nothing left open to the app.
        wait_until(lambda: active_to_app(shared) == 0, 10, "requests to the app left open")
    else:
        assert set(h.statuses) == {504}, h.errors
        assert set(h.errors) == {(504, "failed to invoke, id: guarded, err: upstream request "
                                        "timeout (UT)")}
        assert all(0.9 < c.took < 2.5 for c in hung_calls), [c.took for c in hung_calls]
        wait_until(lambda: active_to_app(shared, "guarded") == 0, 10,
                   "requests to the app left open")
    journal = shared.tmp / ("journal" if target == CALLEE else "guarded-journal")
    seen = Counter(journal.read_text().split())
    for c in hung_calls:
        assert seen[c.id] == 1, c


def test_slow_clients_holding_connections(shared):
    """300 slow clients (slowloris) hold connections while good calls flow: 100 to checkout's
    sidecar sending a request head a byte a second, 100 to order-processor's mutual-TLS port
    sending half a TLS hello, 100 to it sending nothing. Good calls all succeed, no slower than
    before. The sidecars close a connection whose request head is unfinished 10 s after its first
    byte (daprd's ReadHeaderTimeout; the client gets 408 `request header timeout`), and one whose
    TLS handshake is unfinished after 10 s: each is gone 10 to 12 s after it opened."""
    before = Traffic(shared.http, rate=50).run_for(1)
    slow: list[socket.socket] = []
    stop = threading.Event()
    closed: dict[str, list[float]] = {"head": [], "tls": [], "silent": []}
    opened = time.monotonic()

    def hold(kind: str, s: socket.socket, drip: bytes):
        """Drips `drip`, a byte every 0.8 s, then waits: until the sidecar closes the
        connection (recorded), or `stop`."""
        s.settimeout(0.2)
        for b in drip:
            if stop.is_set():
                return
            try:
                s.sendall(bytes([b]))
                if s.recv(1) == b"":
                    closed[kind].append(time.monotonic() - opened)
                    return
            except socket.timeout:
                continue
            except OSError:
                closed[kind].append(time.monotonic() - opened)
                return
            stop.wait(0.8)
        while not stop.is_set():
            try:
                if s.recv(1) == b"":
                    closed[kind].append(time.monotonic() - opened)
                    return
            except socket.timeout:
                continue
            except OSError:
                closed[kind].append(time.monotonic() - opened)
                return

    head = b"POST /orders HTTP/1.1\r\nHost: x\r\ndapr-app-id: order-processor\r\nx-pad: " + b"a" * 100
    # A TLS 1.2 record header and the start of a ClientHello: the handshake never completes.
    hello = bytes.fromhex("160301020001000200") + b"\x03\x03" + b"\x00" * 60
    threads = []
    for kind, port, drip in (("head", shared.http, head), ("tls", shared.inbound, hello),
                             ("silent", shared.inbound, b"")):
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", port))
            slow.append(s)
            t = threading.Thread(target=hold, args=(kind, s, drip), daemon=True)
            t.start()
            threads.append(t)
    try:
        during = Traffic(shared.http, rate=50).run_for(14)
        deadline = time.monotonic() + 10
        while sum(map(len, closed.values())) < len(slow) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(5)
    finally:
        for s in slow:
            s.close()
    b, d = Outcome.of(before), Outcome.of(during)
    d.report("good calls beside 300 slow clients")
    print({k: (len(v), round(min(v), 1) if v else None, round(max(v), 1) if v else None)
           for k, v in closed.items()})
    assert d.statuses == Counter({200: len(during)}), d.errors
    assert d.slowest < max(1.0, 5 * b.slowest)
    for kind in closed:
        assert len(closed[kind]) == 100, (kind, len(closed[kind]))
        assert 9 < min(closed[kind]) and max(closed[kind]) < 20, (kind, closed[kind])


def test_a_flood_of_bad_requests_mixed_with_good_ones(shared):
    """While good calls flow (50 a second), 8 threads send as fast as they can what a broken
    or hostile app sends: malformed and unknown ids, denied paths, an invoke URL without a
    method, a header block over the limit, bytes that are not HTTP, and HTTP/2 frames that are
    not valid. Each bad request gets its error (400, 500, 403, 404, 431, or the connection
    closed for garbage), the app never sees one, and every good call succeeds, delivered once."""
    bad = [
        ("GET", "/orders", {"dapr-app-id": "bad..id"}, 400),
        ("GET", "/v1.0/invoke/nobody/method/x", {}, 500),
        ("GET", "/admin", {"dapr-app-id": CALLEE, "x-call-id": "bad-admin"}, 403),
        ("DELETE", "/orders", {"dapr-app-id": CALLEE, "x-call-id": "bad-delete"}, 403),
        ("GET", "/v1.0/invoke/order-processor", {}, 404),
        ("GET", "/orders", {"dapr-app-id": CALLEE, "x-big": "b" * 70_000}, 431),
    ]
    garbage = [b"\x00\x01\x02 not http\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
               b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x01\x05\x00\x00\x00\x01zzzz"]
    wrong: list = []
    counts = Counter()
    stop = threading.Event()

    def flood(i: int):
        n = i
        while not stop.is_set():
            n += 1
            if n % 5 == 0:
                data = garbage[n % len(garbage)]
                reply = harness.raw_request(shared.http, data, timeout=2)
                counts["garbage"] += 1
                # HTTP/1.1 gets 400, HTTP/2 a GOAWAY; or the connection is just closed.
                if reply and not (reply.startswith(b"HTTP/1.1 400") or 7 in h2_frame_types(reply)):
                    wrong.append(("garbage", data[:20], reply[:60]))
                continue
            method, path, headers, expect = bad[n % len(bad)]
            try:
                status = harness.request(shared.http, method, path, headers, timeout=5)[0]
            except OSError as e:
                wrong.append((path, repr(e)))
                continue
            counts[expect] += 1
            if status != expect:
                wrong.append((method, path, status, expect))

    good = Traffic(shared.http, rate=50, name="good-flood").start()
    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(6)
    stop.set()
    for t in threads:
        t.join(10)
    calls = good.stop()
    o = Outcome.of(calls)
    o.report(f"good calls in a flood of {sum(counts.values())} bad requests {dict(counts)}")
    assert not wrong, wrong[:10]
    assert sum(counts.values()) > 200, counts
    assert o.statuses == Counter({200: len(calls)}), o.errors
    assert o.slowest < 3
    seen = shared.assert_delivered_once(calls)
    assert not any(k.startswith("bad-") for k in seen)


def h2_frame_types(data: bytes) -> list[int]:
    """The types of the HTTP/2 frames in `data` (a server's bytes, starting with a frame)."""
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length:]
    return types


# ---------------------------------------------------------------------------------------------
# The wasm VM crashes.


NOT_READY = "invoke API is not ready: the dapr-invoke filter failed (wasm_fail_stream)"


@pytest.mark.timeout(480)  # the fault build's first compile
def test_the_wasm_vm_crashing_under_load(tmp_path, fault_wasm):
    """checkout's sidecar runs the test-only fault build; at 100 good calls and 50 forged ones
    a second (no app id, `x-dapr-cluster: to-order-processor`), three bursts 3 s apart of four
    calls carrying `x-dapr-invoke-fault` trap its VM, then trap the fresh one too (a crash
    loop). Envoy's `failure_policy: FAIL_RELOAD` fails closed: the crashing calls, and every
    call that arrives while the next VM is backed off (0.1 s, doubling), get 503 `invoke API is
    not ready: the dapr-invoke filter failed (wasm_fail_stream)`; about 0.1 to 0.3 s after each
    burst a fresh VM serves every call again. A single crash costs only the call that caused it
    (the next call builds a fresh VM at once). Every call is answered; no forged call reaches the
    app, dead VM or not; no call is delivered twice."""
    mesh = start_mesh(tmp_path, "--wasm", str(fault_wasm))
    assert "features: fault-injection" in (tmp_path / "run/logs/checkout.envoy.log").read_text()
    good = Traffic(mesh.http).start()
    forged = Traffic(mesh.http, rate=50, workers=2, name="forged",
                     headers={"dapr-app-id": "", "x-dapr-cluster": f"to-{CALLEE}"}).start()
    bursts = []
    time.sleep(1)
    for _ in range(3):
        bursts.append(time.monotonic())
        for _ in range(4):
            status, _, body = harness.request(mesh.http, "GET", "/orders", {
                "dapr-app-id": CALLEE, "x-dapr-invoke-fault": "1"})
            assert (status, message(body)) == (503, NOT_READY)
        time.sleep(3)
    calls, forged_calls = good.stop(), forged.stop()
    o, f = Outcome.of(calls), Outcome.of(forged_calls)
    o.report("good calls while the VM crashed in 3 bursts")
    f.report("forged cluster-header calls")
    log = (tmp_path / "run/logs/checkout.envoy.log").read_text()
    assert log.count("Function: proxy_on_request_headers failed") >= 6
    # Every call answered: served, or failed closed with the error.
    assert set(o.errors) <= {(503, NOT_READY)}, o.errors
    assert o.slowest < 2
    recoveries = []
    for t in bursts:
        window = [c for c in calls if t <= c.sent < t + 3]
        first_ok = next((c.sent for c in window if c.status == 200), None)
        assert first_ok is not None, "no call succeeded after a burst"
        recoveries.append(first_ok - t)
        # Once a fresh VM serves, it keeps serving until the next burst.
        assert all(c.status == 200 for c in window if c.sent > first_ok), window
    print(f"recovery after each burst: {[round(r, 2) for r in recoveries]} s; good calls "
          f"failed: {o.failed}, forged calls failed closed: {f.statuses[503]}")
    assert max(recoveries) < 2.5, recoveries
    assert o.failed > 0 and f.statuses[503] > 0, "no call met a crashed VM"
    assert set(f.errors) <= {(503, NOT_READY), (404, "failed getting app id either from the URL "
                                                      "path or the header dapr-app-id")}, f.errors
    seen = mesh.assert_delivered_once(calls)
    assert not any(k.startswith("forged") for k in seen)
    mesh.stop()


# ---------------------------------------------------------------------------------------------
# The runner is stopped mid-load.


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL", "closed stdout"])
def test_the_runner_stopped_mid_load_leaves_nothing(tmp_path, how):
    """At 100 calls a second, the runner gets Ctrl-C (SIGINT), SIGTERM or SIGKILL, or its output
    pipe is closed and then it gets SIGTERM. Calls in flight end with an error at once (no call
    hangs), later calls are refused (nothing listens any more), and within seconds no process of
    the run is left: apps, sidecars and the guard (which stops them when the runner is
    SIGKILLed). A closed stdout alone stops nothing: calls go on succeeding."""
    mesh = start_mesh(tmp_path, pipe=how == "closed stdout")
    traffic = Traffic(mesh.http, timeout=5).start()
    time.sleep(1)
    if how == "closed stdout":
        mesh.run.proc.stdout.close()
        time.sleep(1.5)
        assert mesh.run.proc.poll() is None
        assert Outcome.of(traffic.snapshot()).failed == 0
        sig = signal.SIGTERM
    else:
        sig = getattr(signal, how)
    stopped = time.monotonic()
    mesh.run.proc.send_signal(sig)
    code = mesh.run.proc.wait(timeout=30)
    took = time.monotonic() - stopped
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig)
    assert_nothing_left(mesh.run.marker)
    gone = time.monotonic() - stopped
    time.sleep(0.5)
    calls = traffic.stop()
    o = Outcome.of([c for c in calls if c.sent >= stopped - 1])
    o.report(f"runner stopped by {how} (runner exited after {took:.2f} s, every process gone "
             f"after {gone:.2f} s)")
    assert gone < 10
    assert o.slowest < 6  # nothing waited for its client's timeout
    # Once the run is gone, calls get no answer: a connection the sidecar had open is closed,
    # a new one is refused.
    after = [c for c in calls if c.sent > stopped + gone]
    assert after and all(c.status is None for c in after), after[:3]
    assert any("Connection refused" in c.error for c in after), after[:3]
    mesh.assert_delivered_once(calls)
