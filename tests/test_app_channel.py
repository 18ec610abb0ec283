"""The sidecar's channel to its app, as Dapr's run-file keys set it, through `dapr-envoy run`:
the app health check (enableAppHealthCheck and its settings), appMaxConcurrency, maxBodySize,
readBufferSize, and appProtocol https (TLS to the app)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import harness

APPS = Path(__file__).resolve().parent / "apps"


@dataclass
class Mesh:
    run: harness.Run
    caller: int           # the caller's DAPR_HTTP_PORT: maxBodySize 1Ki, readBufferSize 2Ki
    sick_http: int        # the sick app's own DAPR_HTTP_PORT
    health_file: Path     # what the sick app's /_health answers


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app-channel")
    certs = harness.make_certs(tmp / "app-tls", "secure")
    health_file = tmp / "health"
    health_file.write_text("200")
    # Every app gets its DAPR_HTTP_PORT here: the runner's default (3500 up) is the same for
    # every run on the machine.
    ports = {k: harness.free_port() for k in ("sick", "sick_http", "narrow", "narrow_http", "wide",
                                              "wide_http", "secure", "secure_http", "caller")}
    run = harness.Run(tmp, f"""\
        version: 1
        apps:
          - appID: sick
            appDirPath: {APPS}
            appPort: {ports['sick']}
            daprHTTPPort: {ports['sick_http']}
            command: ["python3", "echo.py"]
            enableAppHealthCheck: true
            appHealthCheckPath: /_health
            appHealthProbeInterval: 1
            appHealthProbeTimeout: 500
            appHealthThreshold: 2
            env:
              HEALTH_FILE: {health_file}
          - appID: narrow
            appDirPath: {APPS}
            appPort: {ports['narrow']}
            daprHTTPPort: {ports['narrow_http']}
            appMaxConcurrency: 1
            command: ["python3", "echo.py"]
          - appID: wide
            appDirPath: {APPS}
            appPort: {ports['wide']}
            daprHTTPPort: {ports['wide_http']}
            command: ["python3", "echo.py"]
          - appID: secure
            appDirPath: {APPS}
            appPort: {ports['secure']}
            daprHTTPPort: {ports['secure_http']}
            appProtocol: https
            command: ["python3", "echo.py"]
            env:
              TLS_CERT: {certs / 'secure.pem'}
              TLS_KEY: {certs / 'secure.key'}
          - appID: caller
            appDirPath: {APPS}
            daprHTTPPort: {ports['caller']}
            maxBodySize: 1Ki
            readBufferSize: 2Ki
            command: ["sleep", "600"]
        """)
    try:
        deadline = time.monotonic() + 60
        for app in ("sick", "narrow", "wide", "secure"):
            while True:
                assert run.proc.poll() is None, f"runner exited:\n{run.out}\n{run.err}"
                try:
                    if harness.request(ports["caller"], "GET", "/x", {"dapr-app-id": app})[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{app} not reachable:\n{run.out}\n{run.err}"
                time.sleep(0.2)
        yield Mesh(run, ports["caller"], ports["sick_http"], health_file)
    finally:
        run.stop()


def call(mesh: Mesh, app: str, path: str = "/x", method: str = "GET", body: bytes | None = None,
         headers: dict | None = None):
    return harness.request(mesh.caller, method, path, {"dapr-app-id": app, **(headers or {})}, body)


def received(mesh: Mesh, app: str) -> int:
    return json.loads(call(mesh, app, "/_count")[2])["count"]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return time.monotonic()


def test_an_unhealthy_app_gets_no_calls_and_callers_get_daprs_error_fast(mesh):
    assert call(mesh, "sick")[0] == 200
    mesh.health_file.write_text("503")
    flipped = time.monotonic()
    # Two failed probes a second apart: unhealthy within a few seconds.
    wait_until(lambda: call(mesh, "sick")[0] == 500, 10, "the app never turned unhealthy")
    took_to_notice = time.monotonic() - flipped
    before = time.monotonic()
    status, headers, body = call(mesh, "sick", method="POST", body=b"{}")
    answered_in = time.monotonic() - before
    assert status == 500, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": "failed to invoke, id: sick, err: app is not in a healthy state"}
    assert answered_in < 0.5
    # And healthy again: calls reach it.
    mesh.health_file.write_text("200")
    wait_until(lambda: call(mesh, "sick")[0] == 200, 10, "the app never turned healthy again")
    print(f"unhealthy noticed after {took_to_notice:.1f} s; refused in {answered_in * 1000:.0f} ms")


def test_the_apps_metadata_shows_its_health_check(mesh):
    status, _, body = harness.request(mesh.sick_http, "GET", "/v1.0/metadata")
    assert status == 200, body
    assert json.loads(body)["appConnectionProperties"] == {
        "port": json.loads(body)["appConnectionProperties"]["port"], "protocol": "http",
        "channelAddress": "127.0.0.1",
        "health": {"healthCheckPath": "/_health", "healthProbeInterval": "1s",
                   "healthProbeTimeout": "500ms", "healthThreshold": 2}}


def concurrently(mesh: Mesh, app: str, n: int, seconds: float) -> float:
    results = []

    def one():
        results.append(call(mesh, app, f"/_slow?seconds={seconds}")[0])
    threads = [threading.Thread(target=one) for _ in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [200] * n, results
    return time.monotonic() - start


def test_app_max_concurrency_makes_calls_wait_their_turn(mesh):
    """appMaxConcurrency: 1 — three 1-second calls at once take three seconds, and all succeed
    (queued, as daprd queues them); without the limit they take one."""
    narrow = concurrently(mesh, "narrow", 3, 1)
    wide = concurrently(mesh, "wide", 3, 1)
    assert narrow >= 2.9, narrow
    assert wide < 2.0, wide


def test_max_body_size_refuses_bigger_bodies_with_daprs_error(mesh):
    assert call(mesh, "wide", "/x", "POST", b"x" * 1024)[0] == 200
    before = received(mesh, "wide")
    status, headers, body = call(mesh, "wide", "/x", "POST", b"x" * 1025)
    assert status == 413, body
    assert json.loads(body) == {"errorCode": "ERR_DIRECT_INVOKE",
                                "message": "failed to invoke, id: wide, err: stream too large"}
    # Without a length (chunked), counted as it passes.
    r = requests.post(f"http://127.0.0.1:{mesh.caller}/x", headers={"dapr-app-id": "wide"},
                      data=(b"x" * 512 for _ in range(4)), timeout=10)
    assert r.status_code == 413, r.text
    assert "stream too large" in r.text
    r = requests.post(f"http://127.0.0.1:{mesh.caller}/x", headers={"dapr-app-id": "wide"},
                      data=(b"x" * 256 for _ in range(4)), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["body_len"] == 1024
    # The refused calls' bodies never reached the app whole; the length-checked one not at all.
    assert received(mesh, "wide") - before <= 2


def test_read_buffer_size_limits_header_bytes(mesh):
    assert call(mesh, "wide", headers={"x-big": "v" * 1000})[0] == 200
    status, _, _ = call(mesh, "wide", headers={"x-big": "v" * 3000})
    assert status == 431


def test_an_https_app_is_reached_over_tls(mesh):
    status, _, body = call(mesh, "secure", "/orders", "POST", b"{}")
    assert status == 200, body
    got = json.loads(body)
    assert (got["app"], got["path"], got["tls"]) == ("secure", "/orders", True)
