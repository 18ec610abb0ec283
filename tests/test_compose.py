"""`docker compose up` of the shipped docker-compose.yaml, for real, on a Docker engine: the
quickstart's 10 orders pass from checkout to order-processor through both Envoy sidecars (each
app in its own network namespace, sidecars found by name, mutual TLS, Envoy as the image's
`envoy` user), the run exits 0, and nothing is left afterwards (the `compose` fixture checks).

It is the file a user runs, as they run it: the commands in its header (the .wasm, then the
certificates with `dapr-envoy certs`), then `up --abort-on-container-exit`."""
import re
import subprocess
import time

import harness

COMPOSE_FILE = harness.ROOT / "docker-compose.yaml"
CERTS = harness.ROOT / "envoy" / "certs"


def certificates():
    """What the compose file's header says to run first: the mesh's certificates in envoy/certs
    (kept when there already, as `make certs` keeps them)."""
    apps = re.search(r"dapr-envoy certs --out envoy/certs (.+)", COMPOSE_FILE.read_text()).group(1).split()
    if not all((CERTS / f"{a}.key").is_file() for a in apps) or not (CERTS / "ca.pem").is_file():
        subprocess.run([str(harness.RUNNER), "certs", "--out", str(CERTS), *apps], check=True,
                       capture_output=True)
    return apps


def test_compose_up_delivers_the_quickstarts_orders(compose):
    harness.require_wasm()
    assert certificates() == ["order-processor", "checkout"]
    started = time.monotonic()
    up = compose(harness.ROOT, COMPOSE_FILE, "up", "--no-color", "--abort-on-container-exit",
                 "--exit-code-from", "checkout", check=False, timeout=600)
    took = time.monotonic() - started
    out = up.stdout + up.stderr
    assert up.returncode == 0, out[-4000:]
    # docker-compose prefixes each line with its container: `checkout_1  | Order passed: ...`.
    lines = [line.split("|", 1)[1].strip() for line in up.stdout.splitlines() if "|" in line]
    passed = [line for line in lines if line.startswith("Order passed")]
    received = [line for line in lines if line.startswith("Order received")]
    assert passed == [f'Order passed: {{"orderId": {i}}}' for i in range(1, 11)], out[-4000:]
    assert received == [f'Order received: {{"orderId": {i}}}' for i in range(1, 11)], out[-4000:]
    print(f"docker-compose up: 10 orders passed and received, exit 0, in {took:.1f} s")


def test_the_sidecars_run_as_the_images_own_user(compose):
    """Envoy is the image's `envoy` user (uid 101) reading a key only it may read, not root."""
    harness.require_wasm()
    certificates()
    compose(harness.ROOT, COMPOSE_FILE, "up", "--detach", "order-processor-dapr")
    deadline = time.monotonic() + 60
    while True:
        ps = compose(harness.ROOT, COMPOSE_FILE, "ps", check=False).stdout
        if "healthy" in ps and "unhealthy" not in ps and "starting" not in ps:
            break
        assert time.monotonic() < deadline, ps
        time.sleep(1)
    status = compose(harness.ROOT, COMPOSE_FILE, "exec", "-T", "order-processor-dapr", "sh", "-c",
                     "cat /proc/1/status; stat -c '%u %a' /run/dapr-envoy/certs/order-processor.key").stdout
    uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
    assert uid and uid.groups() == ("101", "101"), status
    assert "101 400" in status, status


def test_compose_up_with_traces_and_metrics(compose, tmp_path):
    """A run file whose Configurations trace to a Zipkin collector by its service name: `dapr-envoy
    compose` carries the tracing into both sidecars' configs, a collector service (the plain app
    image with a standard-library receiver, tests/apps/zipkin_collector.py) receives one CLIENT and
    one SERVER span per order, linked, and each sidecar's metrics port (9090) serves Dapr's
    metrics to the other containers, with the counts of the 10 orders."""
    import json
    import shutil

    import yaml
    from prometheus_client.parser import text_string_to_metric_families

    harness.require_wasm()
    for app in ("checkout", "order-processor"):
        shutil.copytree(harness.ROOT / "samples" / app, tmp_path / app)
    shutil.copy(harness.WASM, tmp_path / "dapr_invoke.wasm")
    (tmp_path / "collector").mkdir()
    shutil.copy(harness.ROOT / "tests" / "apps" / "zipkin_collector.py", tmp_path / "collector")
    (tmp_path / "out").mkdir()
    tracing = '  tracing:\n    samplingRate: "1"\n    zipkin:\n      endpointAddress: http://collector:9411/api/v2/spans\n'
    acl = (harness.ROOT / "samples" / "config.yaml").read_text()
    (tmp_path / "order-processor.yaml").write_text(acl.rstrip("\n") + "\n" + tracing)
    (tmp_path / "checkout.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: checkout\nspec:\n" + tracing)
    (tmp_path / "dapr.yaml").write_text("""\
version: 1
apps:
  - appID: order-processor
    appDirPath: ./order-processor/
    appPort: 6001
    configFilePath: ./order-processor.yaml
    command: ["python3", "app.py"]
  - appID: checkout
    appDirPath: ./checkout/
    configFilePath: ./checkout.yaml
    command: ["python3", "app.py"]
    env:
      ORDER_INTERVAL_SECONDS: "0"
""")
    subprocess.run([str(harness.RUNNER), "compose", "-f", str(tmp_path / "dapr.yaml"),
                    "--wasm", str(tmp_path / "dapr_invoke.wasm")], check=True, capture_output=True)
    compose_file = tmp_path / "docker-compose.yaml"
    spec = yaml.safe_load(compose_file.read_text())
    for app in ("checkout", "order-processor"):
        sidecar = yaml.safe_load((tmp_path / "envoy-compose" / f"{app}.yaml").read_text())
        hcm = sidecar["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        assert hcm["tracing"]["provider"]["name"] == "envoy.tracers.zipkin", app
    # The collector: the app image, on the project's network under the name the configs give.
    spec["services"]["collector"] = {
        "image": "${APP_IMAGE:-python:3.11-slim}",
        "command": ["python3", "/collector/zipkin_collector.py", "/out/spans.jsonl"],
        "volumes": ["./collector:/collector:ro", "./out:/out"]}
    compose_file.write_text(yaml.safe_dump(spec, sort_keys=False))

    compose(tmp_path, compose_file, "up", "--detach", "--no-color")
    checkout = compose(tmp_path, compose_file, "ps", "-q", "checkout").stdout.strip()
    assert docker_wait(checkout) == 0, compose(tmp_path, compose_file, "logs", "--no-color", check=False).stdout

    def scrape(sidecar: str) -> dict:
        text = compose(tmp_path, compose_file, "exec", "-T", "collector", "python3", "-c",
                       f"import urllib.request; print(urllib.request.urlopen("
                       f"'http://{sidecar}:9090/stats/prometheus').read().decode())").stdout
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}

    sent = scrape("checkout-dapr")
    assert sent[("dapr_runtime_service_invocation_req_sent_total",
                 (("app_id", "checkout"), ("dst_app_id", "order-processor"), ("type", "unary")))] == 10
    received = scrape("order-processor-dapr")
    assert received[("dapr_runtime_service_invocation_res_sent_total",
                     (("app_id", "order-processor"), ("dst_app_id", "checkout"), ("status", "200")))] == 10
    assert received[("dapr_runtime_acl_app_policy_action_allowed_total",
                     (("app_id", "checkout"), ("namespace", "default"), ("trustDomain", "public")))] == 10

    deadline = time.monotonic() + 20
    while True:  # Envoy sends spans every 5 s
        path = tmp_path / "out" / "spans.jsonl"
        spans = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
        if len(spans) >= 20:
            break
        assert time.monotonic() < deadline, spans
        time.sleep(1)
    clients = {s["traceId"]: s for s in spans if s["kind"] == "CLIENT"}
    servers = {s["traceId"]: s for s in spans if s["kind"] == "SERVER"}
    assert len(clients) == len(servers) == 10 and clients.keys() == servers.keys()
    for trace, client in clients.items():
        server = servers[trace]
        assert (client["localEndpoint"]["serviceName"], client["name"]) == ("checkout", "CallLocal/order-processor/orders")
        assert (server["localEndpoint"]["serviceName"], server["name"]) == \
            ("order-processor", "CallLocal/order-processor/orders")
        assert server["parentId"] == client["id"]


def docker_wait(container: str) -> int:
    return int(subprocess.run(["docker", "wait", container], capture_output=True, text=True, timeout=300,
                              check=True).stdout.strip())
