"""Sidecar-to-sidecar mutual TLS with the shipped configs and real certificates: only a client
holding a certificate from the mesh CA reaches the callee's inbound listener, and the caller's
sidecar talks only to a callee that proves the expected SPIFFE id."""
import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness
from conftest import show_logs_on_failure

CONFIGS = ("checkout.yaml", "order-processor.yaml")


@dataclass
class Mesh:
    outbound: int   # checkout's DAPR_HTTP_PORT
    inbound: int    # order-processor's sidecar, mTLS
    app: harness.Upstream
    certs: Path
    caller: harness.Envoy
    callee: harness.Envoy


def start_mesh(start_envoy, start_upstream, certs: Path, callee_certs: Path | None = None,
               retries: bool = True) -> Mesh:
    """The shipped sidecars on free ports. Without `retries`, the caller does not retry (the
    samples' Dapr policy retries a failed call every 5 s, 10 times)."""
    cfgs = {name: harness.load_config(name) for name in CONFIGS}
    ports = set().union(*(harness.shipped_ports(c) for c in cfgs.values()))
    mapping = {p: harness.free_port() for p in ports}
    app = start_upstream("order-processor")
    mapping[harness.cluster_port(cfgs["order-processor.yaml"], harness.APP_CLUSTER)] = app.port
    checkout = harness.use_certs(harness.remap_ports(cfgs["checkout.yaml"], mapping), certs)
    if not retries:
        for route in harness.hcm(checkout, "outbound")["route_config"]["virtual_hosts"][0]["routes"]:
            route.get("route", {}).pop("retry_policy", None)
    processor = harness.use_certs(harness.remap_ports(cfgs["order-processor.yaml"], mapping),
                                  callee_certs or certs)
    callee = start_envoy(processor, "order-processor-sidecar")
    caller = start_envoy(harness.follow(checkout, callee), "checkout-sidecar")
    return Mesh(harness.listen_port(caller.cfg, "outbound"), harness.listen_port(callee.cfg, "inbound"),
                app, certs, caller, callee)


def https_post(port: int, ctx: ssl.SSLContext, headers: dict | None = None):
    """POST /orders straight to an inbound listener: what the shipped policy lets checkout do."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        conn.request("POST", "/orders", body=b"{}", headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def shared_mesh(module_started, mesh_certs) -> Mesh:
    return start_mesh(module_started.envoy, module_started.upstream, mesh_certs)


@pytest.fixture
def mesh(request, shared_mesh) -> Mesh:
    """The shipped mesh, shared by the module's tests that only send requests through it; its app
    forgets what it saw before each test."""
    for env in (shared_mesh.caller, shared_mesh.callee):
        assert env.alive(), f"{env.name} of the shared mesh is gone:\n{env.log_tail()}"
    show_logs_on_failure(request.node, shared_mesh.caller, shared_mesh.callee)
    shared_mesh.app.reset()
    return shared_mesh


@pytest.fixture
def fresh_mesh(start_envoy, start_upstream, mesh_certs) -> Mesh:
    """The shipped mesh for this test alone: no connection made, every counter at zero."""
    return start_mesh(start_envoy, start_upstream, mesh_certs)


def tls_context(certs: Path | None, client: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # mesh identities are URI SANs, not host names
    if certs is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(certs / "ca.pem")
    if client:
        ctx.load_cert_chain(certs / f"{client}.pem", certs / f"{client}.key")
    return ctx


def test_calls_between_sidecars_go_over_mutual_tls(fresh_mesh):
    mesh = fresh_mesh  # it counts the TLS handshakes of the first call
    status, _, body = harness.request(mesh.outbound, "POST", "/orders", {"dapr-app-id": "order-processor"}, b"{}")
    assert status == 200, body
    assert json.loads(body)["headers"]["dapr-caller-app-id"] == "checkout"
    # Both ends count a completed TLS handshake, and the callee saw a client certificate.
    caller, callee = mesh.caller.stats(), mesh.callee.stats()
    assert caller["cluster.to-order-processor.ssl.handshake"] == 1
    inbound = f"listener.127.0.0.1_{mesh.inbound}"
    assert callee[f"{inbound}.ssl.handshake"] == 1
    assert callee[f"{inbound}.ssl.no_certificate"] == 0


def test_plain_http_to_the_inbound_listener_is_refused(mesh):
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, OSError)):
        harness.request(mesh.inbound, "POST", "/orders", body=b"{}")
    assert not mesh.app.requests


def test_a_tls_client_without_a_certificate_is_refused(mesh):
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https_post(mesh.inbound, tls_context(mesh.certs, None))
    assert not mesh.app.requests


def test_a_client_certificate_from_another_ca_is_refused(mesh, tmp_path):
    foreign = harness.make_certs(tmp_path / "foreign", "checkout")
    ctx = tls_context(None, None)
    ctx.load_cert_chain(foreign / "checkout.pem", foreign / "checkout.key")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https_post(mesh.inbound, ctx)
    assert not mesh.app.requests


def test_a_client_certificate_from_the_mesh_ca_is_accepted(mesh):
    status, body = https_post(mesh.inbound, tls_context(mesh.certs, "checkout"))
    assert status == 200, body
    assert len(mesh.app.requests) == 1


def test_the_caller_refuses_a_callee_that_is_not_who_it_should_be(start_envoy, start_upstream, tmp_path, mesh_certs):
    # order-processor's sidecar presents a valid mesh certificate, but for another app id.
    imposter = harness.make_certs(tmp_path / "imposter", "checkout", "order-processor")
    (imposter / "order-processor.pem").write_bytes((imposter / "checkout.pem").read_bytes())
    (imposter / "order-processor.key").write_bytes((imposter / "checkout.key").read_bytes())
    mesh = start_mesh(start_envoy, start_upstream, imposter, callee_certs=imposter, retries=False)
    status, _, body = harness.request(mesh.outbound, "POST", "/orders", {"dapr-app-id": "order-processor"}, b"{}")
    assert status == 503, body
    assert not mesh.app.requests


def test_the_callee_names_the_caller_from_its_certificate_not_its_headers(mesh):
    forged = {"dapr-caller-app-id": "admin", "dapr-caller-namespace": "kube-system"}
    # Through checkout's sidecar...
    status, _, body = harness.request(mesh.outbound, "POST", "/orders", {"dapr-app-id": "order-processor", **forged},
                                      b"{}")
    assert status == 200, body
    # ...and straight to the inbound listener with checkout's certificate.
    status, body = https_post(mesh.inbound, tls_context(mesh.certs, "checkout"), forged)
    assert status == 200, body
    for seen in mesh.app.requests:
        assert seen.headers["dapr-caller-app-id"] == "checkout"
        assert seen.headers["dapr-caller-namespace"] == "default"
    assert len(mesh.app.requests) == 2


def test_the_inbound_listener_never_accepts_cleartext(mesh):
    with socket.create_connection(("127.0.0.1", mesh.inbound), timeout=5) as s:
        s.sendall(b"GET /orders HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = s.recv(100)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/"), reply
    assert not mesh.app.requests
