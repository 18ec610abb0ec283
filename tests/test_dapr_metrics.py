"""Dapr's service-invocation metrics on each sidecar's metrics port (Dapr's `metricsPort`), through
`dapr-envoy run`: known traffic, then a scrape parsed with Prometheus' own client library
(`prometheus_client.parser`), and exact counts per label, with Dapr's names and labels
(dapr/dapr `pkg/diagnostics/service_monitoring.go`, `pkg/acl`, `errorcode_monitoring.go`)."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import harness

APPS = Path(__file__).resolve().parent / "apps"
DASHBOARD = harness.ROOT / "observability" / "grafana-dashboard.json"
# Dapr's default latency buckets, in ms.
DAPR_BUCKETS = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250,
                300, 400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000]

# The callee's policy: caller may call anything but /admin/**; anyone else is refused.
ACL = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: callee
spec:
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: caller
      defaultAction: allow
      trustDomain: public
      namespace: default
      operations:
      - name: /admin/**
        httpVerb: ["*"]
        action: deny
"""


@dataclass
class Mesh:
    run: harness.Run
    http: dict[str, int]
    metrics: dict[str, int]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dapr-metrics")
    (tmp / "callee.yaml").write_text(ACL)
    (tmp / "health").write_text("503")
    apps = ("callee", "caller", "intruder")
    http = {a: harness.free_port() for a in apps}
    metrics = {a: harness.free_port() for a in apps}
    app_port = harness.free_port()
    lines = ["version: 1", "apps:"]
    for app in apps:
        lines += [f"  - appID: {app}", f"    appDirPath: {APPS}", f"    daprHTTPPort: {http[app]}",
                  f"    metricsPort: {metrics[app]}"]
        if app == "callee":
            lines += [f"    appPort: {app_port}", '    command: ["python3", "echo.py"]',
                      "    configFilePath: callee.yaml", "    env:", f"      HEALTH_FILE: {tmp / 'health'}"]
        else:
            lines += ['    command: ["sleep", "600"]']
    run = harness.Run(tmp, "\n".join(lines) + "\n")
    try:
        # Ready without a call through the mesh, which the metrics would count.
        harness.wait_for_port(app_port, timeout=60, proc=run.proc)
        deadline = time.monotonic() + 60
        while True:
            assert run.proc.poll() is None, f"runner exited:\n{run.out}\n{run.err}"
            try:
                if all(requests.get(f"http://127.0.0.1:{metrics[a]}/ready", timeout=2).status_code == 200
                       for a in apps) and harness.request(http["intruder"], "GET", "/v1.0/healthz")[0] == 204:
                    break
            except (OSError, requests.RequestException):
                pass
            assert time.monotonic() < deadline, f"not ready:\n{run.out}\n{run.err}"
            time.sleep(0.2)
        yield Mesh(run, http, metrics)
    finally:
        run.stop()


def scrape(mesh: Mesh, app: str) -> dict[str, dict[tuple, float]]:
    """Every sample of the app's scrape: family sample name -> sorted labels -> value."""
    resp = requests.get(f"http://127.0.0.1:{mesh.metrics[app]}/stats/prometheus", timeout=5)
    assert resp.status_code == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), None)


def call(mesh: Mesh, caller: str, path: str, app: str | None = "callee", n: int = 1) -> int:
    headers = {"dapr-app-id": app} if app else {}
    statuses = {harness.request(mesh.http[caller], "GET", path, headers)[0] for _ in range(n)}
    (status,) = statuses
    return status


@pytest.fixture(scope="module")
def traffic(mesh):
    assert call(mesh, "caller", "/orders/1", n=5) == 200
    assert call(mesh, "caller", "/_health", n=2) == 503          # the app's own answer
    assert call(mesh, "caller", "/admin/x", n=3) == 403          # caller's policy denies it
    assert call(mesh, "intruder", "/orders/1", n=4) == 403       # no policy: the global default
    assert call(mesh, "caller", "/x", app="nope", n=2) == 500    # refused by caller's own sidecar
    assert call(mesh, "caller", "/x", app=None) == 404           # no app id at all
    return mesh


def test_the_callers_sidecar_counts_requests_sent_and_responses_by_status(traffic):
    caller = scrape(traffic, "caller")
    sent = "dapr_runtime_service_invocation_req_sent_total"
    assert value(caller, sent, app_id="caller", dst_app_id="callee", type="unary") == 10
    recv = "dapr_runtime_service_invocation_res_recv_total"
    for status, n in (("200", 5), ("503", 2), ("403", 3)):
        assert value(caller, recv, app_id="caller", src_app_id="callee", status=status, type="unary") == n
    # Calls the caller's own sidecar refused never left it: they are errors, not requests sent.
    assert {labels: v for labels, v in caller[recv].items() if v} == {
        tuple(sorted({"app_id": "caller", "src_app_id": "callee", "status": s, "type": "unary"}.items())): n
        for s, n in (("200", 5), ("503", 2), ("403", 3))}
    errors = "dapr_error_code_total"
    base = {"app_id": "caller", "category": "service-invocation", "error_code": "ERR_DIRECT_INVOKE"}
    assert value(caller, errors, **base, status="500") == 2
    assert value(caller, errors, **base, status="404") == 1


def test_round_trip_latency_is_a_histogram_with_daprs_buckets(traffic):
    name = "dapr_runtime_service_invocation_res_recv_latency_ms"
    deadline = time.monotonic() + 12
    while True:  # Envoy publishes histograms every 5 s
        caller = scrape(traffic, "caller")
        if value(caller, f"{name}_count", app_id="caller", src_app_id="callee") == 10:
            break
        assert time.monotonic() < deadline, caller.get(f"{name}_count")
        time.sleep(0.5)
    buckets = {dict(labels)["le"]: v for labels, v in caller[f"{name}_bucket"].items()
               if dict(labels)["src_app_id"] == "callee"}
    assert [float(le) for le in buckets if le != "+Inf"] == [float(b) for b in DAPR_BUCKETS]
    assert buckets["+Inf"] == 10
    counts = [buckets[le] for le in buckets]
    assert counts == sorted(counts), "cumulative"
    assert value(caller, f"{name}_sum", app_id="caller", src_app_id="callee") > 0


def test_the_callees_sidecar_counts_per_caller(traffic):
    callee = scrape(traffic, "callee")
    recv = "dapr_runtime_service_invocation_req_recv_total"
    # Only calls the policy let through reach the app.
    assert value(callee, recv, app_id="callee", src_app_id="caller") == 7
    assert value(callee, recv, app_id="callee", src_app_id="intruder") == 0
    assert value(callee, recv, app_id="callee", src_app_id="unknown") == 0
    sent = "dapr_runtime_service_invocation_res_sent_total"
    assert value(callee, sent, app_id="callee", dst_app_id="caller", status="200") == 5
    assert value(callee, sent, app_id="callee", dst_app_id="caller", status="503") == 2
    intruder = scrape(traffic, "intruder")
    assert value(intruder, "dapr_runtime_service_invocation_res_recv_total", app_id="intruder",
                 src_app_id="callee", status="403", type="unary") == 4


def test_access_control_counters_name_the_caller_and_the_rule(traffic):
    callee = scrape(traffic, "callee")
    who = lambda app: {"app_id": app, "trustDomain": "public", "namespace": "default"}  # noqa: E731
    assert value(callee, "dapr_runtime_acl_app_policy_action_blocked_total", **who("caller")) == 3
    assert value(callee, "dapr_runtime_acl_global_policy_action_blocked_total", **who("intruder")) == 4
    assert value(callee, "dapr_runtime_acl_app_policy_action_allowed_total", **who("caller")) == 7
    assert value(callee, "dapr_runtime_acl_global_policy_action_allowed_total", **who("intruder")) == 0
    errors = {"app_id": "callee", "category": "service-invocation", "error_code": "ERR_DIRECT_INVOKE"}
    assert value(callee, "dapr_error_code_total", **errors, status="403") == 7
    # Sidecars without a policy have no ACL counters, as daprd.
    assert not [n for n in scrape(traffic, "caller") if n.startswith("dapr_runtime_acl_")]


def test_the_metrics_port_serves_the_scrape_and_ready_only(mesh):
    port = mesh.metrics["caller"]
    assert requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).text.strip() == "LIVE"
    for path in ("/quitquitquit", "/config_dump", "/logging", "/stats"):
        resp = requests.post(f"http://127.0.0.1:{port}{path}", timeout=2)
        assert resp.status_code == 404, path
    # Envoy's own metrics are still there beside Dapr's.
    assert "envoy_cluster_upstream_rq_total" in scrape(mesh, "caller")


def test_every_dashboard_query_names_metrics_and_labels_the_sidecars_export(traffic):
    """The Grafana dashboard shipped in observability/ queries what a live sidecar exports: every
    metric its queries name is in a scrape after traffic, with every label they group or match by."""
    dash = json.loads(DASHBOARD.read_text())
    deadline = time.monotonic() + 12
    while True:  # histograms appear at Envoy's first publication (5 s)
        labels_of: dict[str, set[str]] = {}
        for app in traffic.metrics:
            for name, series in scrape(traffic, app).items():
                labels_of.setdefault(name, set()).update(k for labels in series for k, _ in labels)
        if "dapr_runtime_service_invocation_res_recv_latency_ms_bucket" in labels_of:
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    queries = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    assert len(queries) >= 10
    for q in queries:
        metrics = set(re.findall(r"\b((?:dapr|envoy)_[A-Za-z0-9_]+)\b", q))
        assert metrics, q
        labels = {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", q)
                  for label in group.split(",") if label.strip()}
        labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", q))
        labels |= set(re.findall(r"label_values\(\s*[A-Za-z0-9_]+\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", q))
        for m in metrics:
            assert m in labels_of, f"{q}: no sidecar exports {m}"
        exported = set().union(*(labels_of[m] for m in metrics))
        assert labels <= exported, f"{q}: labels {labels - exported} are not on {metrics}"
    # Each panel is a query of Prometheus, by the dashboard's data source variable.
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
