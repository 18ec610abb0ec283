"""A hostile app against the shipped sidecars (mutual TLS, the samples' access-control policy),
with a WSGI callee (Flask under wsgiref), which folds `-` and `_` in header names together as
every CGI-style app server does. Each test says which attempts it covers.

The rules under test: no header an app sends can forge the caller's identity or choose the
route, under any spelling an app server reads as ours; the caller's API token and `dapr-app-id`
never reach the callee; a request with too many headers is refused by the caller's own sidecar
(431), never half-way; and the callee app gets the method the policy checked."""
from __future__ import annotations

import json
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness

APPS = Path(__file__).resolve().parent / "apps"

# Every name an app server could read as one of ours: `_` for `-`, and other cases.
LOOK_ALIKES = [
    "dapr_caller_app_id", "DAPR_CALLER_APP_ID", "Dapr_Caller-App_Id",
    "dapr_caller_namespace", "dapr-caller_namespace",
    "dapr_callee_app_id", "DAPR_CALLEE-APP-ID",
    "x_dapr_cluster", "X_DAPR_CLUSTER",
    "dapr_api_token", "dapr_app_id",
]


@dataclass
class Mesh:
    outbound: int        # checkout's DAPR_HTTP_PORT
    inbound: int         # order-processor's sidecar (mutual TLS)
    certs: Path
    caller: harness.Envoy
    callee: harness.Envoy


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """checkout's and order-processor's sidecars as shipped, on free ports; order-processor's app
    is the WSGI echo. Shared by the module: no test changes them."""
    tmp = tmp_path_factory.mktemp("hostile")
    certs = harness.make_certs(tmp / "certs", "checkout", "order-processor")
    cfgs = {n: harness.use_certs(harness.load_config(f"{n}.yaml"), certs)
            for n in ("checkout", "order-processor")}
    mapping = {p: harness.free_port() for p in set().union(*map(harness.shipped_ports, cfgs.values()))}
    app_port = harness.cluster_port(cfgs["order-processor"], harness.APP_CLUSTER)
    cfgs = {n: harness.remap_ports(c, mapping) for n, c in cfgs.items()}
    app = subprocess.Popen([sys.executable, str(APPS / "wsgi_echo.py"), str(mapping[app_port])],
                           stdout=subprocess.DEVNULL, stderr=open(tmp / "app.log", "wb"))
    envoys = []
    try:
        harness.wait_for_port(mapping[app_port], proc=app)
        callee = harness.Envoy(cfgs["order-processor"], tmp, "order-processor")
        envoys.append(callee)
        callee.start()
        caller = harness.Envoy(harness.follow(cfgs["checkout"], callee), tmp, "checkout")
        envoys.append(caller)
        caller.start()
        yield Mesh(harness.listen_port(caller.cfg, "outbound"), harness.listen_port(callee.cfg, "inbound"),
                   certs, caller, callee)
    finally:
        for e in envoys:
            e.stop()
        app.terminate()
        app.wait(timeout=10)


def http1(port: int, headers: list[tuple[str, str]], method: str = "POST", path: str = "/orders",
          body: bytes = b"{}") -> tuple[int, dict]:
    """A raw HTTP/1.1 request, header names exactly as given."""
    lines = [f"{method} {path} HTTP/1.1", "host: localhost", f"content-length: {len(body)}",
             "connection: close", *(f"{k}: {v}" for k, v in headers)]
    reply = harness.raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    head, _, payload = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(payload) if status == 200 else {"raw": payload.decode(errors="replace")})


def http2(port: int, headers: list[tuple[str, str]], method: str = "POST", path: str = "/orders",
          body: bytes = b"{}"):
    pseudo = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "localhost")]
    status, _, data, reset = harness.h2_request(port, pseudo + headers, body)
    return status, (json.loads(data) if status == 200 else {"raw": data.decode(errors="replace")}), reset


def identity_of(seen: dict) -> dict:
    env = seen["environ"]
    return {k: env.get(k) for k in ("HTTP_DAPR_CALLER_APP_ID", "HTTP_DAPR_CALLER_NAMESPACE",
                                    "HTTP_DAPR_CALLEE_APP_ID")}


CHECKOUT = {"HTTP_DAPR_CALLER_APP_ID": "checkout", "HTTP_DAPR_CALLER_NAMESPACE": "default",
            "HTTP_DAPR_CALLEE_APP_ID": "order-processor"}


def assert_clean(seen: dict, identity: dict = CHECKOUT):
    """The WSGI app saw exactly the sidecars' identity, once, and nothing else of ours."""
    assert identity_of(seen) == identity, seen["environ"]
    for key, value in seen["environ"].items():
        assert "forged" not in value, (key, value)
    assert "HTTP_DAPR_API_TOKEN" not in seen["environ"]
    assert "HTTP_DAPR_APP_ID" not in seen["environ"]
    assert "HTTP_X_DAPR_CLUSTER" not in seen["environ"]


def test_underscore_and_case_look_alikes_never_reach_the_callee_over_http1(mesh):
    """HTTP/1.1 through checkout's sidecar: each look-alike alone, then all at once, plus the exact
    names; the callee's WSGI app reads only the sidecars' values."""
    for name in LOOK_ALIKES:
        status, seen = http1(mesh.outbound, [("dapr-app-id", "order-processor"), (name, "forged")])
        assert status == 200, (name, seen)
        assert_clean(seen)
    everything = [(n, "forged") for n in LOOK_ALIKES] + [
        ("dapr-caller-app-id", "forged"), ("Dapr-Caller-Namespace", "forged"),
        ("dapr-callee-app-id", "forged"), ("x-dapr-cluster", "to-checkout"),
        ("dapr-api-token", "forged-secret")]
    status, seen = http1(mesh.outbound, [("dapr-app-id", "order-processor"), *everything])
    assert status == 200, seen
    assert_clean(seen)
    # The invoke-URL form too.
    status, seen = http1(mesh.outbound, everything, path="/v1.0/invoke/order-processor/method/orders")
    assert status == 200, seen
    assert (seen["path"], identity_of(seen)) == ("/orders", CHECKOUT)
    assert_clean(seen)


def test_underscore_look_alikes_never_reach_the_callee_over_http2(mesh):
    """HTTP/2 (h2c) through checkout's sidecar, lower-case names as HTTP/2 requires."""
    names = [n.lower() for n in LOOK_ALIKES]
    status, seen, reset = http2(mesh.outbound, [("dapr-app-id", "order-processor"),
                                                *[(n, "forged") for n in names],
                                                ("dapr-caller-app-id", "forged")])
    assert (status, reset) == (200, None), seen
    assert_clean(seen)
    # Upper-case names are malformed in HTTP/2: Envoy refuses the stream, nothing is delivered.
    before = mesh.callee.stats().get("http.inbound.downstream_rq_total", 0)
    status, seen, reset = http2(mesh.outbound, [("dapr-app-id", "order-processor"),
                                                ("DAPR_CALLER_APP_ID", "forged")])
    assert status != 200, (status, seen, reset)
    assert mesh.callee.stats().get("http.inbound.downstream_rq_total", 0) == before


def https_inbound(mesh: Mesh, headers: list[tuple[str, str]], who: str = "checkout") -> tuple[int, dict]:
    """Straight to order-processor's inbound listener with `who`'s certificate: a caller that
    skipped its own sidecar."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(mesh.certs / "ca.pem")
    ctx.load_cert_chain(mesh.certs / f"{who}.pem", mesh.certs / f"{who}.key")
    import socket
    lines = ["POST /orders HTTP/1.1", "host: localhost", "content-length: 2", "connection: close",
             *(f"{k}: {v}" for k, v in headers)]
    with socket.create_connection(("127.0.0.1", mesh.inbound), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n{}").encode())
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(payload) if status == 200 else {"raw": payload.decode(errors="replace")})


def test_a_caller_that_skips_its_sidecar_cannot_forge_either(mesh):
    """With checkout's own certificate, straight to the callee's inbound listener: look-alikes
    are dropped and the exact names are replaced from the certificate."""
    headers = [(n, "forged") for n in LOOK_ALIKES] + [
        ("dapr-caller-app-id", "forged"), ("dapr-caller-namespace", "forged"),
        ("dapr-api-token", "forged-secret")]
    status, seen = https_inbound(mesh, headers)
    assert status == 200, seen
    assert identity_of(seen)["HTTP_DAPR_CALLER_APP_ID"] == "checkout"
    assert identity_of(seen)["HTTP_DAPR_CALLER_NAMESPACE"] == "default"
    for key, value in seen["environ"].items():
        assert "forged" not in value, (key, value)


def test_the_callers_api_token_and_app_id_stay_in_its_sidecar(mesh):
    """dapr-api-token is the caller's credential towards its own sidecar, and dapr-app-id named
    the target: Dapr strips both; so do we, for the header form and the invoke URL."""
    for path, headers in [("/orders", [("dapr-app-id", "order-processor")]),
                          ("/v1.0/invoke/order-processor/method/orders", [])]:
        status, seen = http1(mesh.outbound, [*headers, ("dapr-api-token", "s3cret")], path=path)
        assert status == 200, seen
        assert "HTTP_DAPR_API_TOKEN" not in seen["environ"], seen["environ"]
        assert "HTTP_DAPR_APP_ID" not in seen["environ"], seen["environ"]
        status, seen, _ = http2(mesh.outbound, [*headers, ("dapr-api-token", "s3cret")], path=path)
        assert status == 200, seen
        assert "HTTP_DAPR_API_TOKEN" not in seen["environ"]
        assert "HTTP_DAPR_APP_ID" not in seen["environ"]


@pytest.mark.parametrize("protocol", ["http1", "http2"])
def test_too_many_headers_are_refused_by_the_callers_sidecar(mesh, protocol):
    """From 80 to 110 extra headers: every request is either delivered whole (200, every header
    there) or refused by checkout's own sidecar; none fails half-way at the callee (a 503 UR from
    a reset between the sidecars was the bug), and the boundary is one step."""
    before = mesh.callee.stats().get("http.inbound.downstream_rq_total", 0)
    outcomes = {}
    for n in range(80, 111):
        extra = [(f"x-extra-{i}", "v") for i in range(n)]
        if protocol == "http1":
            status, seen = http1(mesh.outbound, [("dapr-app-id", "order-processor"), *extra])
            reset = None
        else:
            status, seen, reset = http2(mesh.outbound, [("dapr-app-id", "order-processor"), *extra])
        if status == 200:
            got = [k for k in seen["environ"] if k.startswith("HTTP_X_EXTRA_")]
            assert len(got) == n, (n, len(got))
            outcomes[n] = "delivered"
        else:
            # HTTP/1.1 gets 431; an HTTP/2 stream is refused (431, or reset by the codec).
            assert status == 431 or (protocol == "http2" and reset is not None), (n, status, seen, reset)
            outcomes[n] = "refused"
    delivered = [n for n, o in outcomes.items() if o == "delivered"]
    refused = [n for n, o in outcomes.items() if o == "refused"]
    assert delivered and refused, outcomes
    assert max(delivered) + 1 == min(refused), outcomes
    # Only the delivered ones reached the callee's sidecar.
    after = mesh.callee.stats()["http.inbound.downstream_rq_total"]
    assert after - before == len(delivered)


def test_an_http2_lower_case_method_is_checked_and_delivered_upper_case(mesh):
    """The policy allows checkout POST /orders only. `:method post` is POST to the policy, and the
    app must get POST too; `:method get` is denied like GET."""
    status, seen, reset = http2(mesh.outbound, [("dapr-app-id", "order-processor")], method="post")
    assert (status, reset) == (200, None), seen
    assert seen["method"] == "POST"
    status, seen, _ = http2(mesh.outbound, [("dapr-app-id", "order-processor")], method="get", body=b"")
    assert status == 403, seen
    assert "verb: GET" in seen["raw"]
    # An upper-case method is delivered as it came.
    status, seen, _ = http2(mesh.outbound, [("dapr-app-id", "order-processor")], method="POST")
    assert (status, seen["method"]) == (200, "POST")
