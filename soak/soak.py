#!/usr/bin/env python3
"""`make soak`: a million requests through the two-sidecar path, as `dapr-envoy run` sets it up.

The runner starts checkout's and order-processor's sidecars (mutual TLS between them, an
access-control policy on order-processor) and order-processor's app, `tests/apps/ledger.py`,
which checks every body it receives against the SHA-256 its caller put in `x-body-sha256` and
counts deliveries per request class. The load comes from h2load (Debian's nghttp2-client) as
checkout's app would send it, to checkout's DAPR_HTTP_PORT: one h2load per request class and
protocol, all at once, each at a steady rate (`--rps`), so that every class has one expected
status and h2load's per-request log (`--log-file`) says, request by request, whether it got it.

The run passes only when:
- every request of every class got its expected status (none failed, reset or timed out);
- the app received exactly the requests answered 200, each body with its digest intact, and
  none of the refused ones (bad ids, unknown ids, denied paths and verbs never reach it);
- each Envoy's RSS grew by less than RSS_BOUND_MIB, and the wasm VMs' memory gauge by less than
  WASM_BOUND_MIB, between 20 % of the load and its end (after the warm-up);
- no wasm VM restarted: each Envoy logs the filter's version line once per VM it starts, and
  no VM failure, from the first sample to the end.

It writes soak/results/results.json and the report between the markers in RELIABILITY.md.
Knobs: SOAK_REQUESTS (1,000,000), SOAK_RATE (requests per second, all classes together; 2,000),
SOAK_UPDATE_DOC=0 (leave RELIABILITY.md alone).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SOAK = Path(__file__).resolve().parent
ROOT = SOAK.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402

RESULTS = SOAK / "results"
DOC = ROOT / "RELIABILITY.md"
LEDGER = ROOT / "tests/apps/ledger.py"

# The memory bounds: growth between the sample at 20 % of the load and the last one.
RSS_BOUND_MIB = 8.0
WASM_BOUND_MIB = 1.0
WARM_UP = 0.2
SAMPLE_EVERY = 1.0  # seconds
# Per h2load client: at most this many requests a second (a client waits for each answer).
CLIENT_RPS = 100

TARGET = "order-processor"
# order-processor's policy: only checkout, only GET and POST on /orders.
POLICY = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: soak
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
"""

KIB = 1024


@dataclass
class Kind:
    """A request class: one form, one expected status."""
    name: str
    share: float  # of all requests (both protocols together)
    path: str
    expect: int
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    body: int | None = None  # bytes, sent with its digest; None: no body
    # Envoy closes an HTTP/1.1 connection after this answer (it reads a 400 as a message error):
    # h2load's --rps pacing breaks on such reconnects (it bursts, and drops requests it had
    # queued on the closing connection), so over HTTP/1.1 this class is sent by `Pacer`.
    closes_h1: bool = False


KINDS = [
    Kind("header-get", 0.30, "/orders", 200, (("dapr-app-id", TARGET),)),
    Kind("url-post-1k", 0.30, f"/v1.0/invoke/{TARGET}/method/orders", 200, method="POST", body=KIB),
    Kind("header-post-empty", 0.05, "/orders", 200, (("dapr-app-id", TARGET),), method="POST"),
    Kind("header-post-64k", 0.04, "/orders", 200, (("dapr-app-id", TARGET),), method="POST",
         body=64 * KIB),
    Kind("url-post-1m", 0.002, f"/v1.0/invoke/{TARGET}/method/orders", 200, method="POST",
         body=1024 * KIB),
    # Refused by checkout's sidecar (Dapr's JSON errors): a malformed id, an id it does not know.
    Kind("bad-id", 0.08, "/orders", 400, (("dapr-app-id", "bad..id"),), closes_h1=True),
    Kind("unknown-id", 0.08, "/v1.0/invoke/nobody/method/orders", 500),
    # Refused by order-processor's sidecar: its policy denies the path, or the verb.
    Kind("denied-path", 0.08, "/admin/users", 403, (("dapr-app-id", TARGET),)),
    Kind("denied-verb", 0.068, "/orders", 403, (("dapr-app-id", TARGET),), method="DELETE"),
]
PROTOS = ("h1", "h2")


@dataclass
class Load:
    """A class over one protocol, sent by one h2load process (or a `Pacer`)."""
    kind: Kind
    proto: str
    requests: int
    rate: float
    clients: int
    log: Path
    proc: subprocess.Popen | Pacer | None = None
    output: str = ""
    statuses: Counter = field(default_factory=Counter)
    summary: dict = field(default_factory=dict)
    latencies_us: list[int] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.kind.name}/{self.proto}"

    @property
    def paced(self) -> bool:
        return self.proto == "h1" and self.kind.closes_h1

    def start(self, port: int, bodies: dict[int, Path]) -> None:
        if self.paced:
            self.proc = Pacer(self, port)
            self.proc.start()
        else:
            self.proc = subprocess.Popen(command(self, port, bodies), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)

    def finish(self, timeout: float) -> None:
        try:
            self.output = self.proc.communicate(timeout=max(1, timeout))[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output = self.proc.communicate()[0] + "\n(killed: the run took too long)"


class Pacer(threading.Thread):
    """Sends a class's requests at a steady rate from a few threads, each request on a
    connection of its own, as a client that honours `connection: close` does; writes the same
    per-request log and summary line as h2load, so both are read alike."""

    WORKERS = 4

    def __init__(self, load: Load, port: int):
        super().__init__(daemon=True)
        self.load, self.port = load, port
        self.next = 0
        self.lock = threading.Lock()
        self.rows: list[str] = []
        self.errors: list[str] = []
        self.stopped = threading.Event()

    def run(self):
        t0 = time.monotonic()
        workers = [threading.Thread(target=self.work, args=(t0,), daemon=True)
                   for _ in range(self.WORKERS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def work(self, t0: float):
        k = self.load.kind
        headers = dict(k.headers, **{"x-soak-class": self.load.key})
        while not self.stopped.is_set():
            with self.lock:
                i = self.next
                self.next += 1
            if i >= self.load.requests:
                return
            delay = t0 + i / self.load.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            start = time.time()
            try:
                status, _, _ = harness.request(self.port, k.method, k.path, headers, timeout=60)
            except OSError as e:
                with self.lock:
                    self.errors.append(f"request {i}: {e}")
                continue
            row = f"{int(start * 1e6)}\t{status}\t{int((time.time() - start) * 1e6)}"
            with self.lock:
                self.rows.append(row)

    def communicate(self, timeout: float | None = None) -> tuple[str, None]:
        self.join(timeout)
        if self.is_alive():
            raise subprocess.TimeoutExpired("pacer", timeout)
        self.load.log.write_text("".join(r + "\n" for r in self.rows))
        done = len(self.rows)
        out = (f"requests: {self.load.requests} total, {done + len(self.errors)} started, "
               f"{done} done, 0 succeeded, {done} failed, {len(self.errors)} errored, 0 timeout\n"
               + "".join(e + "\n" for e in self.errors[:20]))
        return out, None

    def kill(self):
        self.stopped.set()

    def poll(self):
        return None if self.is_alive() else 0

    def wait(self):
        self.join()


def plan(total: int, rate: float, tmp: Path) -> list[Load]:
    loads = []
    for kind in KINDS:
        for proto in PROTOS:
            n = max(2, round(total * kind.share / len(PROTOS)))
            r = rate * kind.share / len(PROTOS)
            clients = max(1, min(n, math.ceil(r / CLIENT_RPS)))
            loads.append(Load(kind, proto, n, r, clients, tmp / f"{kind.name}-{proto}.log"))
    return loads


def command(load: Load, port: int, bodies: dict[int, Path]) -> list[str]:
    k = load.kind
    cmd = ["h2load", "-n", str(load.requests), "-c", str(load.clients), "-m", "1", "-t", "1",
           "--rps", f"{load.rate / load.clients:.3f}", "--log-file", str(load.log),
           "-H", f"x-soak-class: {load.key}"]
    if load.proto == "h1":
        cmd.append("--h1")
    for name, value in k.headers:
        cmd += ["-H", f"{name}: {value}"]
    if k.body is not None:
        path = bodies[k.body]
        cmd += ["-d", str(path), "-H", "content-type: application/octet-stream",
                "-H", f"x-body-sha256: {hashlib.sha256(path.read_bytes()).hexdigest()}"]
    elif k.method != "GET":
        cmd += ["-H", f":method: {k.method}"]
    cmd.append(f"http://127.0.0.1:{port}{k.path}")
    return cmd


SUMMARY = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout")


def read_results(load: Load) -> None:
    m = SUMMARY.search(load.output)
    if m:
        load.summary = dict(zip(("total", "started", "done", "succeeded", "failed", "errored",
                                 "timeout"), map(int, m.groups())))
    if load.log.exists():
        for line in load.log.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                load.statuses[int(parts[1])] += 1
                load.latencies_us.append(int(parts[2]))
    load.latencies_us.sort()


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    return float(values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))])


# ---------------------------------------------------------------------------------------------
# The run.


def run_file(tmp: Path) -> tuple[str, dict[str, int]]:
    (tmp / "config.yaml").write_text(POLICY)
    (tmp / "idle").mkdir(exist_ok=True)
    ports = {k: harness.free_port() for k in ("app", "op-http", "checkout-http")}
    return f"""\
version: 1
apps:
  - appID: {TARGET}
    appDirPath: {LEDGER.parent}
    appPort: {ports['app']}
    daprHTTPPort: {ports['op-http']}
    configFilePath: {tmp / 'config.yaml'}
    command: ["python3", "{LEDGER.name}"]
    env:
      EXPECT_CALLER: checkout
  - appID: checkout
    appDirPath: {tmp / 'idle'}
    daprHTTPPort: {ports['checkout-http']}
    command: ["sleep", "86400"]
""", ports


SIDECAR_READY = re.compile(r'sidecar of "([^"]+)" ready: .*admin (\d+)')


def envoy_pid(run_dir: Path, app: str) -> int:
    """The pid of the Envoy running `app`'s sidecar config."""
    config = str(run_dir / f"{app}.envoy.json").encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if config in cmd:
                return int(proc.name)
    raise RuntimeError(f"no Envoy runs {config.decode()}")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stats(admin: int) -> dict[str, int]:
    _, _, body = harness.request(admin, "GET", "/stats?format=json", timeout=5)
    return {s["name"]: s["value"] for s in json.loads(body)["stats"] if "value" in s}


def vm_events(log: str) -> dict[str, int]:
    """What an Envoy's log says of its wasm VMs: VMs started (the filter's version line, once per
    VM) and VM failures (a trap, or a failed VM)."""
    return {"started": len(re.findall(r"starting dapr-invoke \d", log)),
            "failed": len(re.findall(r"Function: proxy_\w+ failed|Wasm VM failed|wasm vm .*crash",
                                     log, re.IGNORECASE))}


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY seconds: each Envoy's RSS, allocated heap and wasm VM memory."""

    def __init__(self, envoys: dict[str, tuple[int, int]]):
        super().__init__(daemon=True)
        self.envoys = envoys  # app -> (pid, admin port)
        self.samples: list[dict] = []
        self.stop_at = threading.Event()
        self.errors: list[str] = []

    def sample(self) -> dict:
        s = {"t": time.monotonic()}
        for app, (pid, admin) in self.envoys.items():
            st = stats(admin)
            wasm = [v for k, v in st.items() if k.endswith("dapr_invoke.vm_memory_bytes")]
            s[app] = {"rss": rss(pid), "allocated": st.get("server.memory_allocated", 0),
                      "wasm": max(wasm) if wasm else 0,
                      "wasm_active": st.get("wasm.envoy.wasm.runtime.v8.active", 0),
                      "wasm_created": st.get("wasm.envoy.wasm.runtime.v8.created", 0),
                      # Reloads of a crashed VM (failure_policy FAIL_RELOAD), by filter name.
                      "vm_reloads": sum(v for k, v in st.items() if k.endswith(".vm_reload"))}
        return s

    def run(self):
        while not self.stop_at.is_set():
            try:
                self.samples.append(self.sample())
            except (OSError, ValueError) as e:
                self.errors.append(f"{time.monotonic():.1f}: {e}")
            self.stop_at.wait(SAMPLE_EVERY)


def answers(port: int) -> bool:
    try:
        return harness.request(port, "GET", "/orders", {"dapr-app-id": TARGET}, timeout=5)[0] == 200
    except OSError:
        return False


def at(samples: list[dict], t0: float, t1: float, fraction: float) -> dict:
    """The sample nearest to `fraction` of the way from t0 to t1."""
    t = t0 + fraction * (t1 - t0)
    return min(samples, key=lambda s: abs(s["t"] - t))


def soak(requests: int, rate: float, update_doc: bool = True, results: Path = RESULTS,
         out=sys.stdout) -> dict:
    """Runs the soak; returns the report (`report["passed"]`, `report["failures"]`), also
    written to `results`/results.json."""
    for tool in ("h2load",):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is missing: run `make h2load` (Debian's nghttp2-client)")
    harness.require_wasm()
    if not harness.RUNNER.is_file():
        raise RuntimeError(f"{harness.RUNNER} is missing: run `make cli` first")

    def say(msg: str) -> None:
        print(msg, file=out, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="dapr-soak-"))
    text, ports = run_file(tmp)
    run = harness.Run(tmp, text)
    loads: list[Load] = []
    sampler = None
    try:
        deadline = time.monotonic() + 60
        while 'started app "checkout"' not in run.err:
            if run.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the run did not start:\n{run.out}\n{run.err}")
            time.sleep(0.1)
        admins = {app: int(port) for app, port in SIDECAR_READY.findall(run.err)}
        envoys = {app: (envoy_pid(tmp / "run", app), admins[app]) for app in ("checkout", TARGET)}
        port = ports["checkout-http"]
        # The app listens once its port answers through both sidecars.
        while not answers(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{TARGET} does not answer through the mesh:\n{run.err}")
            time.sleep(0.2)

        bodies = {}
        for kind in KINDS:
            if kind.body is not None and kind.body not in bodies:
                bodies[kind.body] = tmp / f"body-{kind.body}.bin"
                bodies[kind.body].write_bytes(os.urandom(kind.body))
        loads = plan(requests, rate, tmp)
        total = sum(ld.requests for ld in loads)
        expected_s = requests / rate
        say(f"soak: {total:,} requests at {rate:,.0f}/s in {len(loads)} classes "
            f"(about {expected_s:,.0f} s), logs in {tmp}")
        logs_before = {app: (tmp / f"run/logs/{app}.envoy.log").read_text(errors="replace")
                       for app in envoys}
        sampler = Sampler(envoys)
        sampler.samples.append(sampler.sample())
        sampler.start()
        t0 = time.monotonic()
        for ld in loads:
            ld.start(port, bodies)
        limit = t0 + expected_s * 3 + 120
        for ld in loads:
            ld.finish(limit - time.monotonic())
        t1 = time.monotonic()
        sampler.stop_at.set()
        sampler.join()
        sampler.samples.append(sampler.sample())
        for ld in loads:
            read_results(ld)
            ld.log.with_suffix(".out").write_text(ld.output)
        for app, (_, admin) in envoys.items():
            _, _, body = harness.request(admin, "GET", "/stats", timeout=30)
            (tmp / f"{app}.stats").write_bytes(body)
        _, _, body = harness.request(ports["app"], "GET", "/_stats", timeout=30)
        books = json.loads(body)
        logs_after = {app: (tmp / f"run/logs/{app}.envoy.log").read_text(errors="replace")
                      for app in envoys}
        alive = run.proc.poll() is None
    finally:
        if sampler is not None:
            sampler.stop_at.set()
        for ld in loads:
            if ld.proc is not None and ld.proc.poll() is None:
                ld.proc.kill()
                ld.proc.wait()
        run.stop()
    harness.assert_nothing_left(run.marker)

    report = judge(loads, books, sampler, t0, t1, logs_before, logs_after, alive, run)
    report["meta"] = {**harness.machine(), "requests": total, "rate_asked": rate,
                      "duration_s": t1 - t0, "rate": total / (t1 - t0),
                      "rss_bound_mib": RSS_BOUND_MIB, "wasm_bound_mib": WASM_BOUND_MIB,
                      "warm_up": WARM_UP, "workdir": str(tmp)}
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    if update_doc:
        harness.rewrite_between_markers(DOC, "soak", "Reliability", text)
    say(text)
    if report["passed"]:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def judge(loads, books, sampler, t0, t1, logs_before, logs_after, alive, run) -> dict:
    failures = []
    classes = []
    for ld in loads:
        got = sum(ld.statuses.values())
        unexpected = {s: n for s, n in ld.statuses.items() if s != ld.kind.expect}
        delivered = books["requests"].get(ld.key, 0)
        digest_ok = books["digest_ok"].get(ld.key, 0)
        digest_bad = books["digest_bad"].get(ld.key, 0)
        answered_ok = ld.statuses.get(200, 0)
        row = {"class": ld.key, "expect": ld.kind.expect, "requests": ld.requests,
               "statuses": dict(sorted(ld.statuses.items())), "summary": ld.summary,
               "delivered": delivered, "digest_ok": digest_ok, "digest_bad": digest_bad,
               "rate": ld.rate, "clients": ld.clients,
               "p50_ms": pct(ld.latencies_us, 50) / 1000, "p99_ms": pct(ld.latencies_us, 99) / 1000,
               "max_ms": pct(ld.latencies_us, 100) / 1000}
        classes.append(row)
        if got != ld.requests or unexpected or ld.summary.get("done") != ld.requests \
                or ld.summary.get("errored") or ld.summary.get("timeout"):
            failures.append(f"{ld.key}: expected {ld.requests} x {ld.kind.expect}, got "
                            f"{dict(ld.statuses)} ({ld.summary or ld.output[-500:]})")
        want_delivered = answered_ok if ld.kind.expect == 200 else 0
        if delivered != want_delivered:
            failures.append(f"{ld.key}: the app received {delivered} requests, expected "
                            f"{want_delivered}")
        if digest_bad or (ld.kind.body is not None and digest_ok != delivered):
            failures.append(f"{ld.key}: {digest_bad} bodies arrived altered, {digest_ok} intact "
                            f"of {delivered}")
    if books["wrong_caller"]:
        failures.append(f"{books['wrong_caller']} requests reached the app with another caller id")

    memory = {}
    samples = sampler.samples
    for app in ("checkout", TARGET):
        warm, last = at(samples, t0, t1, WARM_UP), samples[-1]
        points = {f"{int(f * 100)}%": {k: at(samples, t0, t1, f)[app][k] / 2**20
                                       for k in ("rss", "allocated", "wasm")}
                  for f in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)}
        points["start"] = {k: samples[0][app][k] / 2**20 for k in ("rss", "allocated", "wasm")}
        growth = {k: (last[app][k] - warm[app][k]) / 2**20 for k in ("rss", "allocated", "wasm")}
        memory[app] = {"checkpoints": points, "growth_after_warm_up": growth,
                       "peak_rss": max(s[app]["rss"] for s in samples) / 2**20}
        if growth["rss"] >= RSS_BOUND_MIB:
            failures.append(f"{app}'s Envoy RSS grew {growth['rss']:.1f} MiB after the warm-up "
                            f"(bound {RSS_BOUND_MIB} MiB)")
        if growth["wasm"] >= WASM_BOUND_MIB:
            failures.append(f"{app}'s wasm VM memory grew {growth['wasm']:.2f} MiB after the "
                            f"warm-up (bound {WASM_BOUND_MIB} MiB)")
    vms = {}
    for app in logs_after:
        before, after = vm_events(logs_before[app]), vm_events(logs_after[app])
        first, last = samples[0][app], samples[-1][app]
        vms[app] = {"started_before_load": before["started"], "started_during": after["started"] -
                    before["started"], "failures": after["failed"],
                    "v8_created_during": last["wasm_created"] - first["wasm_created"],
                    "reloads_during": last["vm_reloads"] - first["vm_reloads"]}
        if (vms[app]["started_during"] or after["failed"] or vms[app]["v8_created_during"]
                or vms[app]["reloads_during"]):
            failures.append(f"{app}'s wasm VM restarted or failed: {vms[app]}")
    if not alive:
        failures.append(f"the run ended during the soak:\n{run.err[-2000:]}")
    if sampler.errors:
        failures.append(f"{len(sampler.errors)} memory samples failed: {sampler.errors[:3]}")
    return {"passed": not failures, "failures": failures, "classes": classes, "books": {
        k: v for k, v in books.items() if k != "delivered_twice"}, "memory": memory, "vms": vms}


# ---------------------------------------------------------------------------------------------
# Report.


def markdown(r: dict) -> str:
    m = r["meta"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores; Envoy {m['envoy']}; {m['date']}. "
           f"**{'PASSED' if r['passed'] else 'FAILED'}**: {m['requests']:,} requests in "
           f"{m['duration_s']:,.0f} s ({m['rate']:,.0f} req/s; asked {m['rate_asked']:,.0f}), "
           f"{len(KINDS)} request classes over HTTP/1.1 and HTTP/2, {len(r['classes'])} loads at "
           "once.", ""]
    if r["failures"]:
        out += ["Failures:", ""] + [f"- {f}" for f in r["failures"]] + [""]
    out += ["| class | proto | expected | requests | statuses | delivered to the app | "
            "bodies intact | p50 ms | p99 ms | max ms |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for c in r["classes"]:
        name, proto = c["class"].split("/")
        statuses = ", ".join(f"{n:,} × {s}" for s, n in c["statuses"].items()) or "none"
        kind = next(k for k in KINDS if k.name == name)
        intact = f"{c['digest_ok']:,}" if kind.body is not None else "—"
        out.append(f"| {name} | {proto} | {c['expect']} | {c['requests']:,} | {statuses} | "
                   f"{c['delivered']:,} | {intact} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} | "
                   f"{c['max_ms']:.0f} |")
    out += ["", f"Memory (MiB) at checkpoints of the load; bounds after the warm-up ({WARM_UP:.0%}"
            f" of the load): RSS growth < {m['rss_bound_mib']:g} MiB, wasm VM memory growth < "
            f"{m['wasm_bound_mib']:g} MiB.", "",
            "| Envoy | metric | start | 0% | 20% | 40% | 60% | 80% | 100% | growth after warm-up |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for app, mem in r["memory"].items():
        for k, label in (("rss", "RSS"), ("allocated", "heap allocated"),
                         ("wasm", "wasm VM memory")):
            cps = mem["checkpoints"]
            out.append(f"| {app} | {label} | {cps['start'][k]:.1f} | " + " | ".join(
                f"{cps[p][k]:.1f}" for p in ("0%", "20%", "40%", "60%", "80%", "100%")) +
                f" | {mem['growth_after_warm_up'][k]:+.2f} |")
    out += ["", "| Envoy | wasm VMs started before the load | VMs started during it | VM "
            "failures logged | VM reloads |", "|---|---:|---:|---:|---:|"]
    for app, v in r["vms"].items():
        out.append(f"| {app} | {v['started_before_load']} | {v['started_during']} | "
                   f"{v['failures']} | {v['reloads_during']} |")
    return "\n".join(out) + "\n"


def main() -> int:
    requests = int(os.environ.get("SOAK_REQUESTS", "1000000"))
    rate = float(os.environ.get("SOAK_RATE", "2000"))
    report = soak(requests, rate, update_doc=os.environ.get("SOAK_UPDATE_DOC", "1") == "1")
    if not report["passed"]:
        print("soak FAILED:\n" + "\n".join(report["failures"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
