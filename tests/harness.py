"""The one harness every integration test uses: a real Envoy running our shipped configs (with
free loopback ports), the real .wasm, small real upstream servers, and cleanup.

Configs are never written by hand here: a test loads a file from envoy/, remaps its ports and,
where a test needs it, swaps the plugin configuration or adds a cluster. So the tests exercise
the same listeners, routes and filter settings that users run.
"""
from __future__ import annotations

import copy
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVOY_DIR = ROOT / "envoy"
WASM = ROOT / "target/wasm32-wasip1/release/dapr_invoke.wasm"
RUNNER = ROOT / "target/debug/dapr-envoy"
SHIPPED_CERTS = "envoy/certs/"
FILTER_NAME = "dapr-invoke"


def envoy_bin() -> str:
    """Envoy from ENVOY_BIN, else the project's virtualenv, else PATH."""
    candidates = [os.environ.get("ENVOY_BIN"), str(ROOT / ".venv/bin/envoy"), shutil.which("envoy")]
    for c in candidates:
        if c and Path(c).is_file():
            return str(Path(c).resolve())
    raise RuntimeError("no Envoy found: run `make setup`, or set ENVOY_BIN to an Envoy binary")


def require_wasm() -> Path:
    if not WASM.is_file():
        raise RuntimeError(f"{WASM} is missing: run `make wasm` first")
    return WASM


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now. No two calls in this session return the same port
    (the kernel may hand a just-closed port out again). The socket is closed before Envoy or an
    app binds the port, so another process could take it in between: `Envoy.start()` then starts
    once more on fresh ports (see there)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


# ---------------------------------------------------------------------------------------------
# Configs: load a shipped file, then change only what a test must.


def load_config(name: str) -> dict:
    return yaml.safe_load((ENVOY_DIR / name).read_text())


def shipped_ports(cfg: dict) -> set[int]:
    return {v for _, v in _walk_ports(cfg)}


def remap_ports(cfg: dict, mapping: dict[int, int]) -> dict:
    """Replaces every `port_value` by mapping[old]; a port the mapping lacks is an error, so no
    test ever binds a fixed port by accident."""
    cfg = copy.deepcopy(cfg)
    for holder, old in _walk_ports(cfg):
        if old not in mapping:
            raise KeyError(f"port {old} in config has no test port")
        holder["port_value"] = mapping[old]
    return cfg


def repoint(cfg: dict, moved: dict[int, int]) -> dict:
    """`cfg` with each port in `moved` replaced by its new value, and every other port kept: for a
    config that dials a port an Envoy had to move (`Envoy.moved`)."""
    cfg = copy.deepcopy(cfg)
    for holder, old in _walk_ports(cfg):
        holder["port_value"] = moved.get(old, old)
    return cfg


def follow(cfg: dict, *started: "Envoy") -> dict:
    """`cfg` pointed at wherever these started Envoys really listen."""
    moved: dict[int, int] = {}
    for env in started:
        moved.update(env.moved)
    return repoint(cfg, moved)


def _walk_ports(node):
    if isinstance(node, dict):
        if "port_value" in node:
            yield node, node["port_value"]
        for v in node.values():
            yield from _walk_ports(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_ports(v)


def listener(cfg: dict, name: str) -> dict:
    for lst in cfg["static_resources"]["listeners"]:
        if lst["name"] == name:
            return lst
    raise KeyError(f"no listener {name}")


def listen_port(cfg: dict, listener_name: str) -> int:
    return listener(cfg, listener_name)["address"]["socket_address"]["port_value"]


def cluster_port(cfg: dict, name: str) -> int:
    """The port of a cluster's (first) endpoint."""
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == name:
            return c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
                "socket_address"]["port_value"]
    raise KeyError(f"no cluster {name}")


# The cluster of a sidecar's own app, in every generated config.
APP_CLUSTER = "local-app"
# The cluster the metrics listener reaches Envoy's admin interface through.
ADMIN_CLUSTER = "envoy-admin"


def hcm(cfg: dict, listener_name: str) -> dict:
    return listener(cfg, listener_name)["filter_chains"][0]["filters"][0]["typed_config"]


def wasm_filter(cfg: dict, listener_name: str) -> dict:
    for f in hcm(cfg, listener_name)["http_filters"]:
        if f["name"] == FILTER_NAME:
            return f["typed_config"]["config"]
    raise KeyError(f"no {FILTER_NAME} filter on listener {listener_name}")


def plugin_config(cfg: dict, listener_name: str) -> dict:
    return json.loads(wasm_filter(cfg, listener_name)["configuration"]["value"])


def set_plugin_config(cfg: dict, listener_name: str, value: dict | str) -> dict:
    cfg = copy.deepcopy(cfg)
    text = value if isinstance(value, str) else json.dumps(value)
    wasm_filter(cfg, listener_name)["configuration"]["value"] = text
    return cfg


def make_certs(out: Path, *apps: str, trust_domain: str = "public", namespace: str = "default") -> Path:
    """A mesh CA and one certificate per app, made by `dapr-envoy certs`."""
    if not RUNNER.is_file():
        raise RuntimeError(f"{RUNNER} is missing: run `make cli` first")
    subprocess.run([str(RUNNER), "certs", "--out", str(out), "--trust-domain", trust_domain,
                    "--namespace", namespace, *apps], check=True, capture_output=True)
    return out


def use_certs(cfg, certs_dir: Path):
    """The shipped configs name their certificates under envoy/certs/ (made by `make certs`);
    point them at `certs_dir` instead."""
    if isinstance(cfg, dict):
        return {k: (str(certs_dir / v.removeprefix(SHIPPED_CERTS))
                    if k == "filename" and isinstance(v, str) and v.startswith(SHIPPED_CERTS)
                    else use_certs(v, certs_dir)) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [use_certs(v, certs_dir) for v in cfg]
    return cfg


def plain(cluster: dict) -> dict:
    """A shipped cluster without its mesh TLS and HTTP/2, for plain HTTP/1.1 test upstreams."""
    cluster = copy.deepcopy(cluster)
    cluster.pop("transport_socket", None)
    cluster.pop("typed_extension_protocol_options", None)
    return cluster


def replace_clusters(cfg: dict, clusters: list[dict]) -> dict:
    """`cfg` with these clusters instead of its own (the admin cluster kept), and without the
    outbound and gRPC routes that name a cluster it no longer has (the route that routes on the
    cluster header stays)."""
    cfg = copy.deepcopy(cfg)
    names = {c["name"] for c in clusters}
    # The metrics listener's way to the admin interface is the sidecar's own, not an upstream's.
    kept = [c for c in cfg["static_resources"]["clusters"] if c["name"] == ADMIN_CLUSTER and c["name"] not in names]
    cfg["static_resources"]["clusters"] = clusters + kept
    for name in ("outbound", "grpc"):
        if not any(l["name"] == name for l in cfg["static_resources"]["listeners"]):
            continue
        for vh in hcm(cfg, name)["route_config"]["virtual_hosts"]:
            vh["routes"] = [r for r in vh["routes"]
                            if "cluster" not in r.get("route", {}) or r["route"]["cluster"] in names]
    return cfg


def cluster_like(template: dict, name: str, port: int) -> dict:
    """A copy of a shipped cluster, renamed and pointing at 127.0.0.1:port."""
    cluster = copy.deepcopy(template)
    cluster["name"] = name
    cluster["load_assignment"]["cluster_name"] = name
    ep = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    ep["address"]["socket_address"]["port_value"] = port
    return cluster


# ---------------------------------------------------------------------------------------------
# Envoy as a child process.


class EnvoyFailed(RuntimeError):
    pass


# What Envoy logs, then exits, when a port of a listener or of its admin is taken.
BIND_FAILED = re.compile(r"cannot bind '[^']*:(\d+)': Address already in use")


class Envoy:
    """One Envoy process. `start()` waits for the admin /ready; `stop()` always kills it.

    The ports a config listens on come from `free_port()`, which cannot hold them until Envoy
    binds them. When Envoy exits because one of them was taken meanwhile, `start()` moves every
    port this Envoy listens on to a fresh one and starts it once more: so read ports from
    `self.cfg` (or `port()`) after `start()`, and point a config that dials this Envoy at where
    it really listens with `follow()`."""

    def __init__(self, cfg: dict, workdir: Path, name: str = "envoy", log_level: str = "info"):
        self.name = name
        self.log_level = log_level
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.moved: dict[int, int] = {}  # original port -> the port used instead (after a retry)
        self._write(cfg)
        self.proc: subprocess.Popen | None = None
        self.ready_seconds: float | None = None  # from spawn to admin /ready 200

    def _write(self, cfg: dict) -> None:
        self.cfg = cfg
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.admin_port = cfg["admin"]["address"]["socket_address"]["port_value"]

    def listen_ports(self) -> set[int]:
        """The ports this Envoy binds: its admin's and its listeners'."""
        ports = {self.admin_port}
        for lst in self.cfg["static_resources"].get("listeners", []):
            ports.add(lst["address"]["socket_address"]["port_value"])
        return ports

    def port(self, original: int) -> int:
        """Where this Envoy listens for what its config first had on `original`."""
        return self.moved.get(original, original)

    def command(self, *extra: str) -> list[str]:
        return [envoy_bin(), "-c", str(self.config_path), "--disable-hot-restart",
                "--concurrency", "1", "--log-level", self.log_level, *extra]

    def start(self, timeout: float = 30.0, rebind: bool = True) -> "Envoy":
        require_wasm()
        log = open(self.log_path, "ab" if self.moved else "wb")
        # Run from the repo root: the shipped configs name the .wasm by a path relative to it.
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        spawned = time.monotonic()
        deadline = spawned + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                taken = BIND_FAILED.search(self.log())
                if rebind and taken and int(taken.group(1)) in self.listen_ports():
                    self._move_ports(int(taken.group(1)))
                    return self.start(timeout, rebind=False)
                raise EnvoyFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _, body = request(self.admin_port, "GET", "/ready", timeout=1)
                if status == 200:
                    self.ready_seconds = time.monotonic() - spawned
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise EnvoyFailed(f"{self.name} not ready within {timeout}s:\n{self.log_tail()}")

    def _move_ports(self, taken: int) -> None:
        """Every port this Envoy listens on, moved to a fresh one, after `taken` was taken between
        `free_port()` and Envoy's bind."""
        fresh = {p: free_port() for p in self.listen_ports()}
        note = (f"{self.name}: port {taken} was taken before Envoy bound it; starting once more "
                f"on fresh ports {fresh}")
        print(note, file=sys.stderr)
        with open(self.log_path, "a") as log:
            log.write(f"\n--- test harness: {note} ---\n\n")
        self.moved = fresh
        self._write(repoint(self.cfg, fresh))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stats(self) -> dict[str, int]:
        _, _, body = request(self.admin_port, "GET", "/stats?format=json")
        out = {}
        for s in json.loads(body)["stats"]:
            if "value" in s:
                out[s["name"]] = s["value"]
        return out

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by all of Envoy's threads: (from the scheduler, in ns resolution,
        summed over /proc/<pid>/task/*/schedstat; from /proc/<pid>/stat utime+stime, in ticks)."""
        assert self.proc is not None
        sched = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                sched += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that just exited
        # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(stat[11]) + int(stat[12])
        return sched / 1e9, ticks / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        """Resident memory of the Envoy process, from /proc/<pid>/status."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)


def validate(cfg: dict, workdir: Path, name: str = "validate") -> tuple[int, str]:
    """`envoy --mode validate`: loads the config, including the filter's on_configure."""
    env = Envoy(cfg, workdir, name)
    proc = subprocess.run(env.command("--mode", "validate"), cwd=ROOT, capture_output=True, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# Upstreams and clients.


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Upstream:
    """An HTTP/1.1 app that records every request and answers with a JSON echo of it."""
    name: str
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    status: int = 200
    fail_first: int = 0  # answer 500 to this many requests first

    def reset(self) -> "Upstream":
        """Forget what it saw and answer 200 again: for an upstream a module's tests share."""
        self.requests.clear()
        self.status = 200
        self.fail_first = 0
        return self

    def start(self) -> "Upstream":
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                upstream.requests.append(Seen(self.command, self.path, headers, body))
                if self.path == "/hang":
                    time.sleep(10)
                status = 500 if len(upstream.requests) <= upstream.fail_first else upstream.status
                out = json.dumps({"app": upstream.name, "method": self.command, "path": self.path,
                                  "headers": headers, "body_len": len(body)}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_one

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
            timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def ok_json(resp: tuple[int, dict[str, str], bytes]):
    """The JSON body of a response that must be a 200."""
    status, _, body = resp
    assert status == 200, body
    return json.loads(body)


def raw_request(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Sends bytes as they are (for requests http.client refuses to build) and returns the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return True


def wait_for_port(port: int, timeout: float = 15, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ---------------------------------------------------------------------------------------------
# dapr-envoy runs. Every process a run starts inherits a marker variable from the runner, so a
# test can prove that none is left behind, whichever way the run ends.


def survivors(marker: str) -> list[str]:
    """Processes whose environment carries the marker: anything a run left behind."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name}: {cmdline}")
        except OSError:
            continue
    return found


def assert_nothing_left(marker: str):
    deadline = time.monotonic() + 5
    while survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert survivors(marker) == []


class Run:
    """`dapr-envoy run -f` on a run file written into tmp_path, output captured in files, or with
    `pipe=True` both into one pipe, `proc.stdout` (as `dapr-envoy run ... 2>&1 | head` has it)."""

    started: list["Run"] = []  # every run, so that a test's leftovers can be stopped after it

    def __init__(self, tmp_path: Path, run_file: str, *args: str, cwd: Path | None = None,
                 pipe: bool = False):
        self.marker = f"DAPR_ENVOY_TEST_MARKER={uuid.uuid4()}"
        self.path = tmp_path / "dapr.yaml"
        self.path.write_text(textwrap.dedent(run_file))
        env = dict(os.environ, PYTHONUNBUFFERED="1", ORDER_INTERVAL_SECONDS="0",
                   ENVOY_BIN=envoy_bin(), DAPR_ENVOY_TEST_MARKER=self.marker.split("=", 1)[1],
                   PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        self.out_path, self.err_path = tmp_path / "stdout", tmp_path / "stderr"
        self.proc = subprocess.Popen([str(RUNNER), "run", "-f", str(self.path), "--run-dir", str(tmp_path / "run"),
                                      *args], cwd=cwd or tmp_path, env=env,
                                     stdout=subprocess.PIPE if pipe else open(self.out_path, "wb"),
                                     stderr=subprocess.STDOUT if pipe else open(self.err_path, "wb"))
        Run.started.append(self)

    def wait(self, timeout=60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def stop(self) -> None:
        """SIGTERM if still running (the runner stops what it started), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout=30):
        deadline = time.monotonic() + timeout
        while text not in self.out:
            assert self.proc.poll() is None, f"runner exited early:\n{self.out}\n{self.err}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.out}\n{self.err}"
            time.sleep(0.05)




def h2_request(port: int, headers: list[tuple[str, str]], body: bytes = b"", timeout: float = 10):
    """One HTTP/2 request (cleartext, prior knowledge) sent as given: header names and values are
    not checked or normalized, so a test can send what a hostile client would. Returns
    (status or None, response headers, body, reset error code or None)."""
    import h2.config
    import h2.connection
    import h2.events

    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                       validate_outbound_headers=False,
                                       normalize_outbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers, end_stream=not body)
        if body:
            conn.send_data(stream, body, end_stream=True)
        s.sendall(conn.data_to_send())
        status, got, data, reset = None, {}, b"", None
        done = False
        while not done:
            chunk = s.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    got = dict(event.headers)
                    status = int(got.get(":status", 0))
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    done = True
                elif isinstance(event, h2.events.StreamReset):
                    reset, done = event.error_code, True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    reset, done = event.error_code, True
            s.sendall(conn.data_to_send())
        return status, got, data, reset


def assert_protected(cfg: dict, where: str) -> None:
    """Every listener of a generated config has the protections every listener must have: paths
    normalized before any filter sees them, underscore headers dropped, a header-count limit, a
    time limit on request headers and TLS handshakes (slow clients), and no route that lets the
    app's API token or the internal cluster header through."""
    listeners = cfg["static_resources"]["listeners"]
    assert listeners, where
    for lst in listeners:
        for chain in lst["filter_chains"]:
            if "transport_socket" in chain:
                assert chain["transport_socket_connect_timeout"] == "10s", (where, lst["name"])
            for f in chain["filters"]:
                h = f["typed_config"]
                name = f"{where}: listener {lst['name']}"
                assert h["normalize_path"] is True and h["merge_slashes"] is True, name
                assert h["request_headers_timeout"] == "10s", name
                opts = h["common_http_protocol_options"]
                assert opts["headers_with_underscores_action"] == "DROP_HEADER", name
                assert 100 <= opts["max_headers_count"] <= 200, name
                for vh in h["route_config"]["virtual_hosts"]:
                    for route in vh["routes"]:
                        removed = set(route.get("request_headers_to_remove", []))
                        added = {a["header"]["key"]: a.get("append_action")
                                 for a in route.get("request_headers_to_add", [])}
                        assert "x-dapr-cluster" in removed, (name, route)
                        # The caller's token is removed, or replaced by the app's own.
                        assert ("dapr-api-token" in removed
                                or added.get("dapr-api-token") == "OVERWRITE_IF_EXISTS_OR_ADD"), (name, route)
                        if lst["name"] == "outbound" and "cluster" in route.get("route", {}):
                            for header in ("dapr-caller-app-id", "dapr-caller-namespace", "dapr-callee-app-id"):
                                assert added.get(header) == "OVERWRITE_IF_EXISTS_OR_ADD", (name, route)


# ---------------------------------------------------------------------------------------------
# Reports (make bench, make soak).


def machine() -> dict:
    """The machine a report's figures come from: CPU model, cores, Envoy version, date, kernel."""
    cpu = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    envoy = subprocess.run([envoy_bin(), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", envoy)
    return {"cpu": cpu, "cores": os.cpu_count(), "envoy": m.group(1) if m else envoy.strip(),
            "date": datetime.date.today().isoformat(), "kernel": platform.release()}


def rewrite_between_markers(doc: Path, marker: str, title: str, text: str) -> None:
    """Replaces what stands between `<!-- {marker}:begin -->` and `<!-- {marker}:end -->` in
    `doc` with `text` (markers appended when missing; a new doc gets `# {title}`)."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    old = doc.read_text() if doc.exists() else f"# {title}\n\n{begin}\n{end}\n"
    if begin not in old:
        old += f"\n{begin}\n{end}\n"
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{text}{end}{tail}")
