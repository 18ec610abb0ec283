"""Dapr's HTTP API around service invocation, as daprd answers it, through `dapr-envoy run`:
API tokens, the token sent to the app, forwarding headers, the basic-auth form, encoded app ids,
the metadata and health endpoints. The expected answers are Dapr's (dapr/dapr
`pkg/api/http/{middlewares,directmessaging,metadata,healthz}.go`); where this project differs on
purpose, the README's tables say so."""
from __future__ import annotations

import base64
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import harness

APPS = Path(__file__).resolve().parent / "apps"
CALLER_TOKEN = "caller-s3cret"
APP_TOKEN = "app-s3cret"


@dataclass
class Mesh:
    run: harness.Run
    caller: int      # the caller's DAPR_HTTP_PORT (its sidecar requires CALLER_TOKEN)
    echo_port: int   # echo's app port


def run_file(ports: dict[str, int]) -> str:
    return f"""\
        version: 1
        apps:
          - appID: echo
            appDirPath: {APPS}
            appPort: {ports['echo_app']}
            daprHTTPPort: {ports['echo_http']}
            command: ["python3", "echo.py"]
            env:
              APP_API_TOKEN: {APP_TOKEN}
          - appID: plain
            appDirPath: {APPS}
            appPort: {ports['plain_app']}
            daprHTTPPort: {ports['plain_http']}
            command: ["python3", "echo.py"]
          - appID: caller
            appDirPath: {APPS}
            daprHTTPPort: {ports['caller_http']}
            command: ["sleep", "600"]
            env:
              DAPR_API_TOKEN: {CALLER_TOKEN}
        """


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dapr-api")
    ports = {k: harness.free_port() for k in ("echo_app", "echo_http", "plain_app", "plain_http",
                                              "caller_http")}
    run = harness.Run(tmp, run_file(ports))
    try:
        # Both apps the tests call reachable through the caller's sidecar (an app still starting
        # gets its callers a 503 UF).
        deadline = time.monotonic() + 60
        for app in ("echo", "plain"):
            while True:
                assert run.proc.poll() is None, f"runner exited:\n{run.out}\n{run.err}"
                try:
                    status, _, _ = harness.request(ports["caller_http"], "POST", "/x",
                                                   {"dapr-app-id": app, "dapr-api-token": CALLER_TOKEN})
                    if status == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{app} not ready:\n{run.out}\n{run.err}"
                time.sleep(0.2)
        yield Mesh(run, ports["caller_http"], ports["echo_app"])
    finally:
        run.stop()


def call(mesh: Mesh, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
         token: str | None = CALLER_TOKEN):
    headers = dict(headers or {})
    if token is not None:
        headers["dapr-api-token"] = token
    return harness.request(mesh.caller, method, path, headers, body)


def seen(resp) -> dict:
    """What the echo app received: its JSON, with headers as a name → [values] map."""
    status, _, body = resp
    assert status == 200, body
    got = json.loads(body)
    headers: dict[str, list[str]] = {}
    for k, v in got["headers"]:
        headers.setdefault(k, []).append(v)
    got["headers"] = headers
    return got


# --- Tokens ----------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "wrong", CALLER_TOKEN + "x", CALLER_TOKEN[:-1]])
def test_a_call_without_the_right_api_token_gets_daprs_401(mesh, token):
    for method, path, headers in [("POST", "/orders", {"dapr-app-id": "echo"}),
                                  ("GET", "/v1.0/invoke/echo/method/x", {}),
                                  ("GET", "/v1.0/metadata", {}),
                                  ("PUT", "/v1.0/metadata/k", {}),
                                  ("HEAD", "/v1.0/healthz", {})]:
        status, headers_out, body = call(mesh, method, path, headers, token=token)
        assert status == 401, (method, path, body)
        if method != "HEAD":
            assert body == b"invalid api token\n"
        assert headers_out["content-type"] == "text/plain; charset=utf-8"


def test_dapr_health_checks_need_no_token(mesh):
    for path in ("/v1.0/healthz", "/v1.0/healthz/outbound", "/v1.0/healthz/"):
        assert call(mesh, "GET", path, token=None)[0] == 204, path


def test_the_callers_token_never_reaches_an_app_and_the_apps_own_does(mesh):
    got = seen(call(mesh, "POST", "/orders", {"dapr-app-id": "echo"}, b"{}"))
    # echo has APP_API_TOKEN: its sidecar sends that, replacing the caller's.
    assert got["headers"]["dapr-api-token"] == [APP_TOKEN]
    got = seen(call(mesh, "POST", "/v1.0/invoke/plain/method/orders", body=b"{}"))
    assert "dapr-api-token" not in got["headers"], got["headers"]
    assert "dapr-app-id" not in got["headers"]


# --- Headers the sidecars add ---------------------------------------------------------------

def test_forwarding_headers_are_appended_never_trusted(mesh):
    got = seen(call(mesh, "GET", "/x", {"dapr-app-id": "plain"}))
    h = got["headers"]
    assert h["x-forwarded-for"] == ["127.0.0.1"], h
    assert h["forwarded"] == ["for=127.0.0.1;by=127.0.0.1"], h
    assert h["x-forwarded-host"] == [socket.gethostname()], h
    # What the app sent stays first; the sidecars' values come last, where proxies look.
    got = seen(call(mesh, "GET", "/x", {"dapr-app-id": "plain", "x-forwarded-for": "6.6.6.6",
                                        "x-forwarded-host": "evil", "forwarded": "for=6.6.6.6"}))
    h = got["headers"]
    joined = {k: ",".join(v) for k, v in h.items()}
    assert joined["x-forwarded-for"].replace(" ", "").split(",") == ["6.6.6.6", "127.0.0.1"]
    assert joined["x-forwarded-host"].replace(" ", "").split(",")[-1] == socket.gethostname()
    assert joined["forwarded"].replace(" ", "").split(",") == ["for=6.6.6.6", "for=127.0.0.1;by=127.0.0.1"]
    assert h["dapr-caller-app-id"] == ["caller"]
    assert h["dapr-callee-app-id"] == ["plain"]


# --- Naming the target ----------------------------------------------------------------------

def test_the_basic_auth_form_names_the_app_and_its_header_stays_behind(mesh):
    # What `requests` sends for http://dapr-app-id:plain@localhost:3500/orders.
    r = requests.post(f"http://dapr-app-id:plain@127.0.0.1:{mesh.caller}/orders?x=1", data=b"{}",
                      headers={"dapr-api-token": CALLER_TOKEN}, timeout=10)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["app"], got["path"]) == ("plain", "/orders?x=1")
    assert not any(k.lower() == "authorization" for k, _ in got["headers"])
    # Another user name is not the form: no app is named.
    auth = "Basic " + base64.b64encode(b"someone:plain").decode()
    status, _, body = call(mesh, "GET", "/orders", {"authorization": auth})
    assert status == 404, body
    assert json.loads(body)["message"] == "failed getting app id either from the URL path or the header dapr-app-id"


def test_encoded_app_ids_in_the_invoke_url_are_decoded_as_daprd_does(mesh):
    for raw in ("pl%61in", "%70lain", "pla%2569n"):
        got = seen(call(mesh, "GET", f"/v1.0/invoke/{raw}/method/orders"))
        assert (got["app"], got["path"]) == ("plain", "/orders"), raw
    # Decoded twice, as daprd does: '+' is a space, which no app id has.
    status, _, body = call(mesh, "GET", "/v1.0/invoke/pl+ain/method/orders")
    assert status == 400, body
    assert "invalid app id" in json.loads(body)["message"]


# --- The sidecar's own endpoints ------------------------------------------------------------

def test_metadata_answers_like_daprd(mesh):
    status, headers, body = call(mesh, "GET", "/v1.0/metadata")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert body.endswith(b"\n")
    got = json.loads(body)
    assert list(got) == ["id", "runtimeVersion", "enabledFeatures", "actors", "components", "extended",
                         "subscriptions", "httpEndpoints", "appConnectionProperties", "actorRuntime"]
    assert got["id"] == "caller"
    assert got["runtimeVersion"] == got["extended"]["daprRuntimeVersion"]
    assert got["extended"]["sidecar"].startswith("dapr-invoke ")
    for empty in ("enabledFeatures", "actors", "components", "subscriptions", "httpEndpoints"):
        assert got[empty] == [], empty
    # caller has no appPort: no port, as daprd omits it.
    assert got["appConnectionProperties"] == {"protocol": "http", "channelAddress": "127.0.0.1"}
    assert got["actorRuntime"] == {"runtimeStatus": "DISABLED", "hostReady": False,
                                   "placement": "placement: disconnected"}


def test_setting_metadata_is_refused_plainly(mesh):
    """daprd keeps `PUT /v1.0/metadata/<key>` values for GET; this sidecar keeps none and says so
    (501), rather than answering 204 and forgetting."""
    status, headers, body = call(mesh, "PUT", "/v1.0/metadata/cliPID", body=b"4242")
    assert status == 501, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["errorCode"] == "ERR_METADATA_SET"
    assert "cliPID" not in json.loads(call(mesh, "GET", "/v1.0/metadata")[2])["extended"]


def test_healthz_appid_asks_whether_this_sidecar_is_that_app(mesh):
    assert call(mesh, "GET", "/v1.0/healthz?appid=caller", token=None)[0] == 204
    status, headers, body = call(mesh, "GET", "/v1.0/healthz?appid=echo", token=None)
    assert status == 500
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"errorCode": "ERR_HEALTH_APPID_NOT_MATCH",
                                "message": "dapr app-id does not match"}
    assert call(mesh, "GET", "/v1.0/healthz/outbound?appid=echo", token=None)[0] == 204


# --- A real Dapr client ----------------------------------------------------------------------

def test_the_official_dapr_python_sdk_invokes_through_the_sidecar(mesh, monkeypatch):
    monkeypatch.setenv("DAPR_HTTP_PORT", str(mesh.caller))
    monkeypatch.setenv("DAPR_API_TOKEN", CALLER_TOKEN)
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "10")
    from dapr.clients import DaprClient
    with DaprClient() as client:
        resp = client.invoke_method("plain", "orders", data=b'{"orderId": 1}', http_verb="POST",
                                    content_type="application/json")
        got = json.loads(resp.data)
        assert (got["app"], got["method"], got["path"], got["body_len"]) == ("plain", "POST", "/orders", 14)
        headers = dict(got["headers"])
        assert headers["dapr-caller-app-id"] == "caller"
        assert "dapr-api-token" not in headers
