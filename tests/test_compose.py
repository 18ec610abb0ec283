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
