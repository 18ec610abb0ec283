"""Dapr Resiliency policies through `dapr-envoy run`, with real Envoys and real failing apps:
retries hide failures (with the attempt count the policy says), timeouts answer in time, the
circuit breaker opens, fails fast and lets a probe through after its timeout, and connection
failures and app errors come back as Dapr would give them."""
import json
import os
import subprocess
import sys
import time

import pytest

import harness
from conftest import checkout_sidecar_config
from harness import Run, assert_nothing_left

FLAKY = harness.ROOT / "tests/apps/flaky.py"

RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: test-resiliency
scopes:
  - checkout
spec:
  policies:
    timeouts:
      quick: 1s
    retries:
      threeTimes:
        policy: constant
        duration: 100ms
        maxRetries: 3
    circuitBreakers:
      tripAtThree:
        maxRequests: 1
        timeout: 2s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      flaky:
        retry: threeTimes
      slow:
        timeout: quick
      broken:
        circuitBreaker: tripAtThree
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resiliency")
    (tmp / "resources").mkdir()
    (tmp / "resources/resiliency.yaml").write_text(RESILIENCY)
    (tmp / "idle").mkdir()
    ports = {name: harness.free_port() for name in ("flaky", "slow", "broken", "plain", "gone", "checkout")}
    # Every app gets its DAPR_HTTP_PORT here: the runner's default (3500 up) is the same for
    # every run on the machine.
    http = {name: harness.free_port() for name in ports}
    apps = "".join(f"""
  - appID: {name}
    appDirPath: {FLAKY.parent}
    appPort: {ports[name]}
    daprHTTPPort: {http[name]}
    command: ["python3", "{FLAKY.name}"]
    env: {{FAIL_FIRST: "{fail}"}}""" for name, fail in (("flaky", 2), ("slow", 0), ("broken", -1), ("plain", 1)))
    run = Run(tmp, f"""\
version: 1
common:
  resourcesPath: ./resources
apps:{apps}
  - appID: gone
    appDirPath: ./idle
    appPort: {ports['gone']}
    daprHTTPPort: {http['gone']}
    command: ["sleep", "300"]
  - appID: checkout
    appDirPath: ./idle
    daprHTTPPort: {ports['checkout']}
    command: ["sleep", "300"]
""", "--app-port-timeout", "1")
    run.wait_for_output("", timeout=1)
    deadline = time.monotonic() + 30
    while 'started app "checkout"' not in run.err:
        assert run.proc.poll() is None, run.err
        assert time.monotonic() < deadline, run.err
        time.sleep(0.1)
    run.ports = ports
    yield run
    run.proc.terminate()
    run.wait(timeout=20)
    assert_nothing_left(run.marker)


def call(mesh, app, method="GET", path="/work", body=None):
    return harness.request(mesh.ports["checkout"], method, path, {"dapr-app-id": app}, body, timeout=20)


def attempts(mesh, app) -> int:
    _, _, body = harness.request(mesh.ports[app], "GET", "/_count")
    return json.loads(body)["count"]


def test_the_policy_notes_are_logged_at_start(mesh):
    assert 'circuit breaker "tripAtThree" on "broken" is Envoy outlier detection' in mesh.err


def test_retries_hide_failures_with_the_policys_attempts(mesh):
    status, _, body = call(mesh, "flaky", "POST", "/orders", b'{"orderId": 1}')
    assert status == 200, body
    # Two failures, then success on the third attempt; a POST is retried, as Dapr does.
    assert json.loads(body) == {"attempt": 3, "body": '{"orderId": 1}'}
    assert attempts(mesh, "flaky") == 3


def test_no_policy_means_no_retry_of_an_app_error(mesh):
    status, _, body = call(mesh, "plain", "POST", "/orders", b"{}")
    assert status == 500  # the app's own error, unchanged
    assert json.loads(body) == {"attempt": 1, "error": "flaky"}
    assert attempts(mesh, "plain") == 1


def test_a_timeout_answers_in_time_with_a_dapr_error(mesh):
    start = time.monotonic()
    status, headers, body = call(mesh, "slow", "GET", "/hang")
    elapsed = time.monotonic() - start
    assert status == 504, body
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["errorCode"] == "ERR_DIRECT_INVOKE"
    assert payload["message"] == "failed to invoke, id: slow, err: upstream request timeout (UT)"
    assert 0.9 < elapsed < 3, elapsed


def test_a_refused_connection_gets_a_dapr_error(mesh):
    status, headers, body = call(mesh, "gone")
    assert status == 503, body
    payload = json.loads(body)
    assert payload["errorCode"] == "ERR_DIRECT_INVOKE"
    assert payload["message"].startswith("failed to invoke, id: gone, err: upstream connect error")


def test_the_circuit_breaker_opens_fails_fast_then_probes(mesh):
    for _ in range(3):
        assert call(mesh, "broken")[0] == 500
    assert attempts(mesh, "broken") == 3
    # Open: answered at once by the caller's sidecar; nothing reaches the app.
    start = time.monotonic()
    status, _, body = call(mesh, "broken")
    assert time.monotonic() - start < 0.5
    assert status == 503, body
    assert json.loads(body)["message"] == "failed to invoke, id: broken, err: no healthy upstream (UH)"
    assert attempts(mesh, "broken") == 3
    # After the breaker's timeout (2s), calls reach the app again.
    time.sleep(2.5)
    assert call(mesh, "broken")[0] == 500
    assert attempts(mesh, "broken") == 4


# Hand-written Envoy configs: per-app timeout and retries in the filter's plugin configuration.

def hand_sidecar(apps, plugin_apps):
    return checkout_sidecar_config({"app_id": "checkout", "apps": plugin_apps}, apps)


def test_plugin_config_retries(start_envoy, start_upstream):
    up = start_upstream("order-processor")
    up.fail_first = 2
    cfg, port = hand_sidecar({"order-processor": up}, {
        "order-processor": {"cluster": "order-processor", "max_retries": 3, "retry_on": "5xx"}})
    port = start_envoy(cfg, "retries").port(port)
    status, _, body = harness.request(port, "POST", "/orders", {"dapr-app-id": "order-processor"}, b"{}")
    assert status == 200, body
    assert len(up.requests) == 3
    assert all(r.body == b"{}" for r in up.requests)
    assert not any(h.startswith("x-envoy-") for h in up.requests[-1].headers if h != "x-envoy-attempt-count")


def test_plugin_config_timeout(start_envoy, start_upstream):
    up = start_upstream("order-processor")
    cfg, port = hand_sidecar({"order-processor": up}, {
        "order-processor": {"cluster": "order-processor", "timeout_ms": 500}})
    port = start_envoy(cfg, "timeout").port(port)
    start = time.monotonic()
    status, _, body = harness.request(port, "GET", "/hang", {"dapr-app-id": "order-processor"})
    assert status == 504, body
    assert json.loads(body)["message"] == "failed to invoke, id: order-processor, err: upstream request timeout (UT)"
    assert time.monotonic() - start < 2


def test_two_instances_one_killed_mid_run_loses_no_request(start_envoy, start_upstream):
    ports = [harness.free_port(), harness.free_port()]
    procs = [subprocess.Popen([sys.executable, str(FLAKY)], env=dict(os.environ, APP_PORT=str(p), INSTANCE=name))
             for p, name in zip(ports, ("instance-a", "instance-b"))]
    try:
        for p, proc in zip(ports, procs):
            harness.wait_for_port(p, proc=proc)
        placeholder = start_upstream("unused")
        cfg, port = hand_sidecar({"order-processor": placeholder}, {
            "order-processor": {"cluster": "order-processor", "max_retries": 3,
                                "retry_on": "connect-failure,refused-stream,reset,5xx"}})
        cluster = cfg["static_resources"]["clusters"][0]
        template = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = []
        for p in ports:
            ep = json.loads(json.dumps(template))
            ep["endpoint"]["address"]["socket_address"]["port_value"] = p
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"].append(ep)
        # A dead instance is ejected after 2 consecutive failures; the other keeps serving.
        cluster["outlier_detection"] = {"consecutive_5xx": 2, "interval": "0.1s", "base_ejection_time": "30s",
                                        "max_ejection_percent": 50}
        envoy = start_envoy(cfg, "two-instances")
        port = envoy.port(port)
        served = []
        for i in range(60):
            if i == 20:
                procs[1].kill()
                procs[1].wait()
            status, _, body = harness.request(port, "POST", f"/orders/{i}", {"dapr-app-id": "order-processor"},
                                              json.dumps({"orderId": i}).encode())
            assert status == 200, (i, body)
            reply = json.loads(body)
            assert reply["body"] == json.dumps({"orderId": i})
            served.append(reply["app"])
        assert set(served[:20]) == {"instance-a", "instance-b"}  # load-balanced
        assert set(served[20:]) == {"instance-a"}
        assert envoy.stats()["cluster.order-processor.outlier_detection.ejections_enforced_total"] >= 1
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
