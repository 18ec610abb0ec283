#!/usr/bin/env python3
"""`make bench`: what the dapr-invoke filter costs against Envoy's native routing, on loopback.

Every Envoy of every scenario is started once, then the load runs in interleaved rounds: each
round runs every cell (scenario x protocol x body) once, in a rotated order. A metric's cost is
the median over rounds of (cell / native in the same round, same protocol, same body), so the
noise of a shared machine hits both sides of each ratio alike.

Envoy CPU per request is the CPU time the proxy Envoy(s) used during the load (summed over their
threads), divided by the requests. Latency comes from h2load's per-request log.

Outputs: bench/results/{results.json,results.md,growth.png}, and the table in BENCHMARKS.md.
"""
from __future__ import annotations

import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
from harness import Envoy  # noqa: E402

RESULTS = BENCH / "results"
NOOP_WASM = BENCH / "noop-filter/target/wasm32-wasip1/release/bench_noop_filter.wasm"
# The same, with only the exports dapr-invoke keeps and wasm-opt's pass (`make bench` makes it):
# the floor as dapr-invoke ships.
NOOP_STRIPPED = NOOP_WASM.with_name("bench_noop_filter.stripped.wasm")

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))
# Requests per cell and round: small requests, and 1 MiB uploads.
N_SMALL = int(os.environ.get("BENCH_REQUESTS", "8000"))
N_LARGE = int(os.environ.get("BENCH_REQUESTS_LARGE", "400"))
CONNECTIONS = 4
# Optional: another build of the filter to compare side by side (scenarios candidate-header/-url).
CANDIDATE = os.environ.get("BENCH_CANDIDATE")
CANDIDATE_NAME = os.environ.get("BENCH_CANDIDATE_NAME", "candidate")
# Optional: a regex; only cells whose key matches (and the native baselines) run.
ONLY = os.environ.get("BENCH_ONLY")
CELL_TIMEOUT = 60  # seconds; a cell that takes longer has failed
GROWTH = [10, 1_000, 10_000, 100_000]
CLUSTERS = ["order-processor", "apps-1", "apps-2", "apps-3"]
SELF = {"app_id": "checkout", "namespace": "default"}
TARGET = "order-processor"
# gRPC cells: a unary call of this method, its request a 64-byte message.
GRPC_PATH = "/orders.OrderProcessor/Process"


# ---------------------------------------------------------------------------------------------
# Configs: the shipped sidecar configs, changed only where a scenario must.


def plugin_config(n_apps: int) -> dict:
    """`n_apps` target apps, all mapped onto a few real clusters; the benchmark calls TARGET."""
    apps = {TARGET: {"cluster": TARGET}}
    for i in range(n_apps - 1):
        key = f"app-{i:06d}" if i % 10 else f"app-{i:06d}.ns-{i % 7}"
        apps[key] = {"cluster": CLUSTERS[i % len(CLUSTERS)]}
    return {**SELF, "apps": apps}


def checkout(upstream_port: int, plugin: dict | None, wasm: Path | None = None,
             listener: str = "outbound") -> tuple[dict, int]:
    """envoy/checkout.yaml on free ports, every cluster pointing at the upstream; the port of
    `listener` (`outbound`, or `grpc`: Dapr's gRPC port)."""
    cfg = harness.load_config("checkout.yaml")
    cfg = harness.remap_ports(cfg, {p: harness.free_port() for p in harness.shipped_ports(cfg)})
    template = harness.plain(cfg["static_resources"]["clusters"][0])
    # The sample's circuit breaker (outlier detection) is not what is measured here: a few
    # failures in one cell would eject the upstream for the cells after it.
    for key in ("outlier_detection", "common_lb_config"):
        template.pop(key, None)
    cfg = harness.replace_clusters(
        cfg, [harness.cluster_like(template, name, upstream_port) for name in CLUSTERS])
    if plugin is not None:
        cfg = harness.set_plugin_config(cfg, listener, plugin)
    if wasm is not None:
        vm = harness.wasm_filter(cfg, listener)["vm_config"]
        vm["vm_id"] = wasm.stem
        vm["code"]["local"]["filename"] = str(wasm)
    port = harness.listener(cfg, listener)["address"]["socket_address"]["port_value"]
    return cfg, port


def native(upstream_port: int, n_apps: int, target_in_middle: bool = False) -> tuple[dict, int]:
    """The same listener without wasm: Envoy's own routes, one per app, matching dapr-app-id,
    what a user would write without the filter. Envoy tries routes in order: the target's route is
    first, the best case, unless `target_in_middle` (the average case of N apps)."""
    cfg, port = checkout(upstream_port, None)
    manager = harness.hcm(cfg, "outbound")
    manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] != harness.FILTER_NAME]
    routes = []
    for key, app in plugin_config(n_apps)["apps"].items():
        routes.append({"match": {"prefix": "/", "headers": [
            {"name": "dapr-app-id", "string_match": {"exact": key}}]},
            "route": {"cluster": app["cluster"], "timeout": "0s"}})
    if target_in_middle:
        routes.insert(len(routes) // 2, routes.pop(0))
    manager["route_config"]["virtual_hosts"][0]["routes"] = routes
    return cfg, port


def identity_headers(key: str) -> list[dict]:
    """The identity headers dapr-invoke sets for a call to app `key` (`id` or `id.namespace`),
    as Envoy's `request_headers_to_add`, replacing what the app sent."""
    return [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in (("dapr-caller-app-id", SELF["app_id"]),
                         ("dapr-caller-namespace", SELF["namespace"]),
                         ("dapr-callee-app-id", key.split(".")[0]))]


def identity_routes(upstream_port: int, n_apps: int) -> tuple[dict, int]:
    """dapr-invoke as `dapr-envoy` generates its sidecars (`identity_headers: route`): every
    target app has a cluster of its own and a route matched on the cluster header that sets the
    caller's identity and the callee's id itself, so a forward costs the filter one header write
    (the cluster). The target's route is first, as in `native`."""
    plugin = plugin_config(n_apps)
    plugin["identity_headers"] = "route"
    names = {key: f"to-{key}" for key in plugin["apps"]}
    for key, name in names.items():
        plugin["apps"][key] = {"cluster": name}
    cfg, port = checkout(upstream_port, plugin)
    template = harness.plain(cfg["static_resources"]["clusters"][0])
    cfg = harness.replace_clusters(
        cfg, [harness.cluster_like(template, name, upstream_port) for name in names.values()])
    routes = []
    for key, name in names.items():
        routes.append({
            "match": {"prefix": "/", "headers": [
                {"name": "x-dapr-cluster", "string_match": {"exact": name}}]},
            "route": {"cluster": name, "timeout": "0s"},
            "request_headers_to_add": identity_headers(key),
            "request_headers_to_remove": ["x-dapr-cluster"]})
    vh = harness.hcm(cfg, "outbound")["route_config"]["virtual_hosts"][0]
    vh["routes"] = routes + [r for r in vh["routes"] if "cluster_header" in r.get("route", {})]
    return cfg, port


def without_filters(upstream_port: int) -> dict:
    """checkout's sidecar with every wasm filter removed (same listeners and clusters): what Envoy
    takes to be ready without the filter."""
    cfg, _ = checkout(upstream_port, None)
    for chain_listener in cfg["static_resources"]["listeners"]:
        for chain in chain_listener["filter_chains"]:
            for f in chain["filters"]:
                manager = f.get("typed_config", {})
                if "http_filters" in manager:
                    manager["http_filters"] = [h for h in manager["http_filters"]
                                               if h["name"] != harness.FILTER_NAME]
    return cfg


def native_identity(upstream_port: int, n_apps: int) -> tuple[dict, int]:
    """`native` plus the identity headers dapr-invoke sets, set by Envoy itself: what the filter's
    work costs when Envoy does all of it natively."""
    cfg, port = native(upstream_port, n_apps)
    apps = plugin_config(n_apps)["apps"]
    for route, key in zip(harness.hcm(cfg, "outbound")["route_config"]["virtual_hosts"][0]["routes"],
                          apps):
        route["request_headers_to_add"] = identity_headers(key)
    return cfg, port


def two_sidecars(upstream_port: int) -> tuple[dict, dict, int, int]:
    """Both shipped sidecars, as shipped (mutual TLS, the callee's access-control policy), on free
    ports with fresh certificates; order-processor's app is the upstream. The policy lets checkout
    use every verb on /orders, so GET and POST cells both pass it. Returns the caller's HTTP and
    gRPC ports."""
    import tempfile
    certs = harness.make_certs(Path(tempfile.mkdtemp(prefix="bench-certs-")), "checkout", "order-processor")
    a = harness.use_certs(harness.load_config("checkout.yaml"), certs)
    b = harness.use_certs(harness.load_config("order-processor.yaml"), certs)
    ports = {p: harness.free_port() for p in harness.shipped_ports(a) | harness.shipped_ports(b)}
    ports[harness.cluster_port(b, harness.APP_CLUSTER)] = upstream_port
    a, b = harness.remap_ports(a, ports), harness.remap_ports(b, ports)
    plugin = harness.plugin_config(b, "inbound")
    for policy in plugin["access_control"]["policies"]:
        for op in policy["operations"]:
            op["httpVerb"] = ["*"]
        # The gRPC cells' method (order-processor is an HTTP app: checked as a POST).
        policy["operations"].append({"name": GRPC_PATH, "httpVerb": ["POST"], "action": "allow"})
    b = harness.set_plugin_config(b, "inbound", plugin)
    return a, b, harness.listen_port(a, "outbound"), harness.listen_port(a, "grpc")


def with_target_route(cfg: dict, stats: bool) -> dict:
    """The dapr-header sidecar with the route a generated sidecar has for its target app (matched
    on the cluster header), with its per-call stats (`stat_prefix`, Dapr's latency buckets: what
    `dapr_runtime_service_invocation_*` are made of) or without them."""
    cfg = copy.deepcopy(cfg)
    route = {"match": {"prefix": "/", "headers": [
        {"name": "x-dapr-cluster", "string_match": {"exact": TARGET}}]},
        "route": {"cluster": TARGET, "timeout": "0s"}, "request_headers_to_remove": ["x-dapr-cluster"]}
    if stats:
        route["stat_prefix"] = TARGET
    else:
        cfg.pop("stats_config", None)
    harness.hcm(cfg, "outbound")["route_config"]["virtual_hosts"][0]["routes"].insert(0, route)
    return cfg


def without_call_stats(cfg: dict) -> dict:
    """A shipped sidecar without its per-call stats: no route `stat_prefix`, no virtual clusters,
    no stats_config (the metrics listener stays; it costs nothing until scraped)."""
    cfg = copy.deepcopy(cfg)
    cfg.pop("stats_config", None)
    for lst in cfg["static_resources"]["listeners"]:
        for vh in lst["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]:
            vh.pop("virtual_clusters", None)
            for r in vh["routes"]:
                r.pop("stat_prefix", None)
    return cfg


def metrics_cost(by_key: dict) -> dict:
    """What the per-call stats cost, per protocol: the median over rounds of (CPU with them -
    CPU without them), and that as a share of the filter's own cost in the same round
    (`metrics-off` - `native`; twice that for the two sidecars, where the filter runs twice)."""
    out = {}
    for proto in ("h1", "h2"):
        base = by_key.get(f"native/{proto}/GET")
        for name, on_key, off_key, filters in (
                ("caller sidecar", f"metrics-on/{proto}/GET", f"metrics-off/{proto}/GET", 1),
                ("two sidecars", f"two-sidecars/{proto}/GET", f"two-sidecars-metrics-off/{proto}/GET", 2)):
            on, off = by_key.get(on_key), by_key.get(off_key)
            one_off = by_key.get(f"metrics-off/{proto}/GET")
            if not (on and off and one_off and base):
                continue
            deltas, shares = [], []
            for a, b, f, n in zip(on.rounds, off.rounds, one_off.rounds, base.rounds):
                delta = a["cpu_us_per_req"] - b["cpu_us_per_req"]
                filter_cost = filters * (f["cpu_us_per_req"] - n["cpu_us_per_req"])
                deltas.append(delta)
                if filter_cost > 0:
                    shares.append(delta / filter_cost)
            out[f"{name} {proto}"] = {
                "delta_us": statistics.median(deltas),
                "filter_us": statistics.median(filters * (f["cpu_us_per_req"] - n["cpu_us_per_req"])
                                               for f, n in zip(one_off.rounds, base.rounds)),
                "share": statistics.median(shares) if shares else None,
                "rounds": [round(d, 3) for d in deltas]}
    return out


def upstream_config() -> tuple[dict, int]:
    import yaml
    cfg = yaml.safe_load((BENCH / "upstream.yaml").read_text())
    cfg = harness.remap_ports(cfg, {p: harness.free_port() for p in harness.shipped_ports(cfg)})
    return cfg, harness.listener(cfg, "app")["address"]["socket_address"]["port_value"]


# ---------------------------------------------------------------------------------------------
# Load.


@dataclass
class Cell:
    scenario: str
    proto: str  # h1 | h2 | grpc (HTTP/2, a gRPC unary call)
    body: str  # "" (GET) | "1KiB" | "1MiB" | "unary" (gRPC)
    port: int
    envoys: list[Envoy]  # whose CPU counts
    path: str = "/orders"
    apps: int = 10
    rounds: list[dict] = field(default_factory=list)
    rss: int = 0  # bytes, after the load
    wasm: int | None = None  # VM memory gauge, bytes

    @property
    def key(self) -> str:
        return "/".join(x for x in (self.scenario, self.proto, self.body or "GET") if x)


def h2load(cell: Cell, n: int, body_file: Path | None, log_file: Path) -> dict:
    cmd = ["h2load", "-n", str(n), "-c", str(CONNECTIONS), "-m", "1", "-t", "1",
           "-H", f"dapr-app-id: {TARGET}", "--log-file", str(log_file)]
    if cell.proto == "h1":
        cmd.append("--h1")
    if cell.proto == "grpc":
        cmd += ["-d", str(body_file), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    elif body_file is not None:
        cmd += ["-d", str(body_file), "-H", "content-type: application/octet-stream"]
    cmd.append(f"http://127.0.0.1:{cell.port}{cell.path}")
    log_file.unlink(missing_ok=True)  # h2load appends
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=CELL_TIMEOUT).stdout
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed",
                  out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if not m or int(m.group(3)) != n or not codes or int(codes.group(1)) != n:
        raise RuntimeError(f"{cell.key}: not every request succeeded:\n{out}")
    latencies = []
    for line in log_file.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            latencies.append(int(parts[2]))
    return {"latencies_us": sorted(latencies)}


def run_cell(cell: Cell, bodies: dict[str, Path], tmp: Path, n: int) -> dict:
    before = [e.cpu_seconds() for e in cell.envoys]
    t0 = time.monotonic()
    res = h2load(cell, n, bodies.get(cell.body), tmp / "h2load.log")
    wall = time.monotonic() - t0
    after = [e.cpu_seconds() for e in cell.envoys]
    cpu = sum(a[0] - b[0] for a, b in zip(after, before))
    cpu_ticks = sum(a[1] - b[1] for a, b in zip(after, before))
    lat = res["latencies_us"]
    return {
        "requests": n,
        "rps": n / wall,
        "cpu_us_per_req": cpu / n * 1e6 if cell.envoys else None,
        "cpu_us_per_req_stat": cpu_ticks / n * 1e6 if cell.envoys else None,
        "p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "p999_us": pct(lat, 99.9),
        "latencies_us": lat,
    }


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))
    return float(values[k])


# ---------------------------------------------------------------------------------------------
# Memory.


def wasm_memory(env: Envoy) -> int | None:
    """The VM memory gauge a filter exports (dapr-invoke and the noop filter both do), if any."""
    try:
        stats = env.stats()
    except OSError:
        return None
    values = [v for k, v in stats.items() if k.endswith("vm_memory_bytes")]
    return max(values) if values else None


def configure_ms(env: Envoy) -> list[float]:
    """The filter's own on_configure timing, per VM, from its log line."""
    return [float(x) for x in re.findall(r"configured in ([0-9.]+) ms", env.log())]


# ---------------------------------------------------------------------------------------------
# Report.

METRICS = ["cpu_us_per_req", "cpu_us_per_req_stat", "rps", "p50_us", "p99_us", "p999_us"]


def summarize(cells: list[Cell], native_of, noop_of) -> list[dict]:
    rows = []
    for c in cells:
        base = native_of(c)
        noop = noop_of(c)
        row = {"key": c.key, "scenario": c.scenario, "proto": c.proto, "body": c.body or "GET",
               "apps": c.apps}
        for m in METRICS:
            vals = [r[m] for r in c.rounds if r[m] is not None]
            row[m] = statistics.median(vals) if vals else None
            ratios = [r[m] / b[m] for r, b in zip(c.rounds, base.rounds)
                      if r[m] is not None and b[m]]
            row[m + "_ratio"] = statistics.median(ratios) if ratios else None
        over_noop = [r["cpu_us_per_req"] / b["cpu_us_per_req"] for r, b in zip(c.rounds, noop.rounds)
                     if r["cpu_us_per_req"] and b["cpu_us_per_req"]] if noop else []
        row["cpu_us_per_req_over_noop"] = statistics.median(over_noop) if over_noop else None
        pooled = sorted(x for r in c.rounds for x in r["latencies_us"])
        row["pooled_p99_us"], row["pooled_p999_us"] = pct(pooled, 99), pct(pooled, 99.9)
        row["rss_mib"] = c.rss / 2**20 if c.envoys else None
        row["wasm_mib"] = c.wasm / 2**20 if c.wasm else None
        rows.append(row)
    return rows


def fmt(v, spec=".1f", suffix=""):
    return "—" if v is None else f"{v:{spec}}{suffix}"


def markdown(rows: list[dict], growth: list[dict], meta: dict, metrics: dict | None = None) -> str:
    out = [f"Machine: {meta['cpu']}, {meta['cores']} cores; Envoy {meta['envoy']}; "
           f"{meta['date']}; {meta['rounds']} rounds of {meta['n_small']} requests "
           f"({meta['n_large']} for 1 MiB) per cell, {CONNECTIONS} connections; "
           f".wasm {meta['wasm_kib']:.0f} KiB (noop filter {meta['noop_wasm_kib']:.0f} KiB, "
           f"stripped {meta['noop_stripped_kib']:.0f} KiB).", "",
           "Ratios are medians of per-round ratios against `native` (same protocol and body); "
           "absolute values are medians over rounds. CPU is the proxy Envoy's (both Envoys for "
           "`two-sidecars`; none for `direct`).", "",
           "| scenario | proto | body | CPU µs/req | CPU × native | CPU × noop | req/s | × native | p50 µs | "
           "p99 µs | p99 × native | p99.9 µs | p99.9 × native | RSS MiB | wasm MiB |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(
            f"| {r['scenario']} | {r['proto']} | {r['body']} | {fmt(r['cpu_us_per_req'])} | "
            f"{fmt(r['cpu_us_per_req_ratio'], '.2f')} | {fmt(r['cpu_us_per_req_over_noop'], '.2f')} | "
            f"{fmt(r['rps'], '.0f')} | "
            f"{fmt(r['rps_ratio'], '.2f')} | {fmt(r['p50_us'], '.0f')} | {fmt(r['p99_us'], '.0f')} | "
            f"{fmt(r['p99_us_ratio'], '.2f')} | {fmt(r['p999_us'], '.0f')} | "
            f"{fmt(r['p999_us_ratio'], '.2f')} | {fmt(r['rss_mib'])} | {fmt(r['wasm_mib'], '.2f')} |")
    out += ["", "Growth: dapr-invoke (header form, GET) with N apps in its plugin configuration, "
            "against `native` (10 apps, the target's route first) and against Envoy's own routes "
            "for the same N apps (`native-Nk`: N header-matched routes, the target's in the middle). "
            f"Envoy with the same listeners and clusters and no filter is ready in "
            f"{meta['bare_ready_s']:.2f} s.", "",
            "| apps | plugin config | ready s | ready × no filter | native routes ready s | "
            "on_configure ms (per VM) | CPU × native h1 | CPU × native h2 | "
            "CPU × native routes, same N, h1 | h2 | p99 × native routes, same N, h1 | h2 | "
            "RSS MiB | wasm MiB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for g in growth:
        conf = ", ".join(f"{x:.0f}" for x in g["configure_ms"]) or "—"
        out.append(
            f"| {g['apps']:,} | {g['config_kib']:,.0f} KiB | {g['ready_s']:.2f} | "
            f"{g['ready_over_bare']:.2f} | {fmt(g['native_ready_s'], '.2f')} | {conf} | "
            f"{fmt(g['cpu_ratio_h1'], '.2f')} | {fmt(g['cpu_ratio_h2'], '.2f')} | "
            f"{fmt(g['cpu_over_native_same_h1'], '.2f')} | {fmt(g['cpu_over_native_same_h2'], '.2f')} | "
            f"{fmt(g['p99_over_native_same_h1'], '.2f')} | {fmt(g['p99_over_native_same_h2'], '.2f')} | "
            f"{g['rss_mib']:.1f} | {fmt(g['wasm_mib'], '.2f')} |")
    if metrics:
        out += ["", "Dapr's metrics (per-call stats): CPU with them minus without them, per request "
                "(median over rounds), and as a share of the filter's own cost in the same round "
                "(`metrics-off` − `native`, twice that for two sidecars).", "",
                "| path | proto | metrics µs/req | filter µs/req | share |", "|---|---|---:|---:|---:|"]
        for key, m in metrics.items():
            path, proto = key.rsplit(" ", 1)
            out.append(f"| {path} | {proto} | {m['delta_us']:+.2f} | {m['filter_us']:.2f} | "
                       f"{fmt(None if m['share'] is None else 100 * m['share'], '+.1f', ' %')} |")
    return "\n".join(out) + "\n"


def plot(growth: list[dict], path: Path) -> None:
    if not growth:  # BENCH_ONLY left the growth cells out
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = [g["apps"] for g in growth]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    for proto in ("h1", "h2"):
        a.plot(xs, [g[f"cpu_ratio_{proto}"] for g in growth], "o-", label=f"CPU/req, {proto}")
        a.plot(xs, [g[f"p99_ratio_{proto}"] for g in growth], "s--", label=f"p99, {proto}")
        a.plot(xs, [g[f"native_cpu_ratio_{proto}"] for g in growth], "^:",
               label=f"Envoy routes for N apps, CPU/req, {proto}")
    a.axhline(1.10, color="red", lw=0.8, ls=":", label="target 1.10")
    a.axhline(1.0, color="grey", lw=0.8)
    a.set(xscale="log", xlabel="apps in plugin config", ylabel="× native", title="Cost vs native")
    a.legend(fontsize=8)
    b.plot(xs, [g["rss_mib"] for g in growth], "o-", label="Envoy RSS")
    b.plot(xs, [g["wasm_mib"] or 0 for g in growth], "s-", label="wasm VM memory (one VM)")
    b.set(xscale="log", xlabel="apps in plugin config", ylabel="MiB", title="Memory")
    b.legend(fontsize=8)
    c.plot(xs, [g["ready_s"] for g in growth], "o-", label="Envoy start to /ready")
    c.plot(xs, [max(g["configure_ms"]) / 1000 if g["configure_ms"] else 0 for g in growth], "s-",
           label="filter on_configure (slowest VM)")
    c.axhline(1.0, color="red", lw=0.8, ls=":", label="target 1 s")
    c.set(xscale="log", xlabel="apps in plugin config", ylabel="seconds", title="Config load")
    c.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    for wasm in (NOOP_WASM, NOOP_STRIPPED):
        if not wasm.is_file():
            sys.exit(f"{wasm} is missing: run `make bench` (it builds it)")
    harness.require_wasm()
    RESULTS.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dapr-bench-"))
    started: list[Envoy] = []

    def start(cfg: dict, name: str) -> Envoy:
        env = Envoy(cfg, tmp, name)
        started.append(env)
        return env.start(timeout=120)

    try:
        up_cfg, up_port = upstream_config()
        upstream = start(up_cfg, "upstream")
        cfg, native_port = native(up_port, 10)
        native_env = start(cfg, "native")
        cfg, native_id_port = native_identity(up_port, 10)
        native_id_env = start(cfg, "native-identity")
        cfg, noop_port = checkout(up_port, plugin_config(10), NOOP_WASM)
        noop_env = start(cfg, "noop")
        cfg, stripped_port = checkout(up_port, plugin_config(10), NOOP_STRIPPED)
        stripped_env = start(cfg, "noop-stripped")
        bare = start(without_filters(up_port), "no-filter")
        cfg, mimic_port = checkout(up_port, None, NOOP_WASM)
        harness.wasm_filter(cfg, "outbound")["configuration"]["value"] = "mimic"
        mimic_env = start(cfg, "noop-mimic")
        dapr: dict[int, tuple[Envoy, int, int]] = {}
        for n in GROWTH:
            plugin = plugin_config(n)
            cfg, port = checkout(up_port, plugin)
            size = len(json.dumps(plugin))
            dapr[n] = (start(cfg, f"dapr-{n}"), port, size)
            print(f"dapr-invoke with {n:,} apps ({size / 1024:,.0f} KiB of plugin config): "
                  f"ready in {dapr[n][0].ready_seconds:.2f} s", flush=True)
        # Envoy's own routing at the same sizes: N header-matched routes, the target's in the middle.
        natives: dict[int, tuple[Envoy, int]] = {}
        for n in GROWTH[1:]:
            cfg, port = native(up_port, n, target_in_middle=True)
            natives[n] = (start(cfg, f"native-{n}"), port)
            print(f"native routes for {n:,} apps: ready in {natives[n][0].ready_seconds:.2f} s",
                  flush=True)
        cfg, dapr_grpc_port = checkout(up_port, {**plugin_config(10), "calls": "grpc"},
                                       listener="grpc")
        dapr_grpc_env = start(cfg, "dapr-grpc")
        a, b, two_port, two_grpc_port = two_sidecars(up_port)
        callee = start(b, "order-processor-sidecar")
        caller = start(a, "checkout-sidecar")
        # The same two sidecars without their per-call stats (Dapr's metrics), on ports of their own.
        ports = {p: harness.free_port() for p in harness.shipped_ports(a) | harness.shipped_ports(b)}
        ports[up_port] = up_port
        a_off, b_off = (harness.remap_ports(without_call_stats(c), ports) for c in (a, b))
        callee_off = start(b_off, "order-processor-sidecar-metrics-off")
        caller_off = start(a_off, "checkout-sidecar-metrics-off")
        two_off_port = harness.listen_port(a_off, "outbound")
        dapr_env, dapr_port, _ = dapr[10]
        cfg, routes_port = identity_routes(up_port, 10)
        routes_env = start(cfg, "dapr-routes")
        on_cfg = with_target_route(checkout(up_port, plugin_config(10))[0], True)
        off_cfg = with_target_route(checkout(up_port, plugin_config(10))[0], False)
        metrics_on_env, metrics_off_env = start(on_cfg, "metrics-on"), start(off_cfg, "metrics-off")
        metrics_on_port = harness.listen_port(on_cfg, "outbound")
        metrics_off_port = harness.listen_port(off_cfg, "outbound")
        if CANDIDATE:
            cfg, cand_port = checkout(up_port, plugin_config(10), Path(CANDIDATE).resolve())
            cand_env = start(cfg, "candidate")

        cells: list[Cell] = []
        for proto in ("h1", "h2"):
            cells += [
                Cell("direct", proto, "", up_port, []),
                Cell("native", proto, "", native_port, [native_env]),
                Cell("native-identity", proto, "", native_id_port, [native_id_env]),
                Cell("noop-wasm", proto, "", noop_port, [noop_env]),
                Cell("noop-stripped", proto, "", stripped_port, [stripped_env]),
                Cell("noop-mimic", proto, "", mimic_port, [mimic_env]),
                Cell("dapr-header", proto, "", dapr_port, [dapr_env]),
                Cell("dapr-url", proto, "", dapr_port, [dapr_env],
                     path=f"/v1.0/invoke/{TARGET}/method/orders"),
                Cell("dapr-routes", proto, "", routes_port, [routes_env]),
                Cell("two-sidecars", proto, "", two_port, [caller, callee]),
                Cell("two-sidecars-metrics-off", proto, "", two_off_port, [caller_off, callee_off]),
                Cell("metrics-on", proto, "", metrics_on_port, [metrics_on_env]),
                Cell("metrics-off", proto, "", metrics_off_port, [metrics_off_env]),
            ]
            if CANDIDATE:
                cells += [Cell(f"{CANDIDATE_NAME}-header", proto, "", cand_port, [cand_env]),
                          Cell(f"{CANDIDATE_NAME}-url", proto, "", cand_port, [cand_env],
                               path=f"/v1.0/invoke/{TARGET}/method/orders")]
            for n in GROWTH[1:]:
                cells.append(Cell(f"dapr-header-{n // 1000}k", proto, "", dapr[n][1], [dapr[n][0]],
                                  apps=n))
                cells.append(Cell(f"native-{n // 1000}k", proto, "", natives[n][1], [natives[n][0]],
                                  apps=n))
            for body in ("1KiB", "1MiB"):
                cells += [
                    Cell("native", proto, body, native_port, [native_env]),
                    Cell("noop-wasm", proto, body, noop_port, [noop_env]),
                    Cell("dapr-header", proto, body, dapr_port, [dapr_env]),
                ]
        # gRPC unary calls (HTTP/2 POSTs with gRPC framing and `dapr-app-id` metadata): Envoy's
        # native routes, a no-op filter, dapr-invoke on the gRPC listener, and both sidecars.
        cells += [
            Cell("direct", "grpc", "unary", up_port, [], path=GRPC_PATH),
            Cell("native", "grpc", "unary", native_port, [native_env], path=GRPC_PATH),
            Cell("noop-wasm", "grpc", "unary", noop_port, [noop_env], path=GRPC_PATH),
            Cell("dapr-grpc", "grpc", "unary", dapr_grpc_port, [dapr_grpc_env], path=GRPC_PATH),
            Cell("two-sidecars", "grpc", "unary", two_grpc_port, [caller, callee], path=GRPC_PATH),
        ]
        if ONLY:
            cells = [c for c in cells if c.scenario == "native" or re.search(ONLY, c.key)]
        bodies = {"1KiB": tmp / "1k.bin", "1MiB": tmp / "1m.bin", "unary": tmp / "grpc.bin"}
        bodies["1KiB"].write_bytes(os.urandom(1024))
        bodies["1MiB"].write_bytes(os.urandom(1 << 20))
        message = os.urandom(64)  # the frame: not compressed, length, message
        bodies["unary"].write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)

        def n_for(c: Cell) -> int:
            return N_LARGE if c.body == "1MiB" else N_SMALL

        print(f"warm-up, then {ROUNDS} rounds of {len(cells)} cells", flush=True)
        for c in cells:
            run_cell(c, bodies, tmp, max(50, n_for(c) // 10))
        t0 = time.monotonic()
        for r in range(ROUNDS):
            shift = r * len(cells) // ROUNDS
            for c in cells[shift:] + cells[:shift]:
                c.rounds.append(run_cell(c, bodies, tmp, n_for(c)))
            print(f"round {r + 1}/{ROUNDS} done ({time.monotonic() - t0:.0f} s)", flush=True)
            for env in started:
                if not env.alive():
                    raise RuntimeError(f"{env.name} died:\n{env.log_tail()}")

        for c in cells:
            c.rss = sum(e.rss_bytes() for e in c.envoys)
            wasm = [wasm_memory(e) for e in c.envoys]
            c.wasm = sum(w for w in wasm if w) or None

        by_key = {c.key: c for c in cells}

        def native_of(c: Cell) -> Cell:
            return by_key["/".join(("native", c.proto, c.body or "GET"))]

        def noop_of(c: Cell) -> Cell | None:
            return by_key.get("/".join(("noop-wasm", c.proto, c.body or "GET")))

        rows = summarize(cells, native_of, noop_of)
        rows_by_key = {r["key"]: r for r in rows}
        growth = []
        for n in GROWTH:
            env, _, size = dapr[n]
            name = "dapr-header" if n == 10 else f"dapr-header-{n // 1000}k"
            if f"{name}/h1/GET" not in rows_by_key:
                continue
            g = {"apps": n, "config_kib": size / 1024, "ready_s": env.ready_seconds,
                 "configure_ms": configure_ms(env), "rss_mib": env.rss_bytes() / 2**20,
                 "wasm_mib": (wasm_memory(env) or 0) / 2**20 or None}
            # Envoy's own routes for as many apps (for 10: the `native` baseline itself).
            native_name = "native" if n == 10 else f"native-{n // 1000}k"
            native_env = natives[n][0] if n in natives else None
            g["ready_over_bare"] = env.ready_seconds / bare.ready_seconds
            g["native_ready_s"] = native_env.ready_seconds if native_env else None
            for proto in ("h1", "h2"):
                row = rows_by_key[f"{name}/{proto}/GET"]
                g[f"cpu_ratio_{proto}"] = row["cpu_us_per_req_ratio"]
                g[f"p99_ratio_{proto}"] = row["p99_us_ratio"]
                g[f"cpu_us_{proto}"] = row["cpu_us_per_req"]
                own = rows_by_key.get(f"{native_name}/{proto}/GET")
                g[f"native_cpu_ratio_{proto}"] = own["cpu_us_per_req_ratio"] if own else None
                # dapr-invoke against native routes for the same apps, round by round.
                mine, theirs = by_key.get(f"{name}/{proto}/GET"), by_key.get(f"{native_name}/{proto}/GET")
                ratios = [a["cpu_us_per_req"] / b["cpu_us_per_req"]
                          for a, b in zip(mine.rounds, theirs.rounds)
                          if a["cpu_us_per_req"] and b["cpu_us_per_req"]] if mine and theirs else []
                g[f"cpu_over_native_same_{proto}"] = statistics.median(ratios) if ratios else None
                p99 = [a["p99_us"] / b["p99_us"] for a, b in zip(mine.rounds, theirs.rounds)
                       if b["p99_us"]] if mine and theirs else []
                g[f"p99_over_native_same_{proto}"] = statistics.median(p99) if p99 else None
            growth.append(g)

        meta = {**harness.machine(), "rounds": ROUNDS, "n_small": N_SMALL, "n_large": N_LARGE,
                "connections": CONNECTIONS, "upstream": "Envoy direct_response (bench/upstream.yaml)",
                "load_tool": "h2load " + subprocess.run(["h2load", "--version"], capture_output=True,
                                                        text=True).stdout.split()[-1],
                "wasm_kib": harness.WASM.stat().st_size / 1024,
                "noop_wasm_kib": NOOP_WASM.stat().st_size / 1024,
                "noop_stripped_kib": NOOP_STRIPPED.stat().st_size / 1024,
                "bare_ready_s": bare.ready_seconds,
                "upstream_rss_mib": upstream.rss_bytes() / 2**20}
        metrics = metrics_cost(by_key)
        table = markdown(rows, growth, meta, metrics)
        for r in rows:
            r.pop("latencies_us", None)
        raw = {c.key: [{k: v for k, v in r.items() if k != "latencies_us"} for r in c.rounds]
               for c in cells}
        (RESULTS / "results.json").write_text(json.dumps(
            {"meta": meta, "rows": rows, "growth": growth, "metrics_cost": metrics, "rounds": raw},
            indent=1))
        (RESULTS / "results.md").write_text(table)
        if len(growth) > 1:  # BENCH_ONLY may leave no growth cells
            plot(growth, RESULTS / "growth.png")
        if os.environ.get("BENCH_UPDATE_DOC", "1") == "1":
            harness.rewrite_between_markers(ROOT / "BENCHMARKS.md", "bench", "Benchmarks", table)
        print(table)
        print(f"wrote {RESULTS}/results.json, results.md, growth.png and the table in BENCHMARKS.md")
        return 0
    finally:
        for env in reversed(started):
            env.stop()


if __name__ == "__main__":
    sys.exit(main())
