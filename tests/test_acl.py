"""Dapr access-control policies, enforced by the callee's sidecar on the caller's verified SPIFFE
identity: real Envoys, real certificates from one mesh CA, callers that are who their certificate
says (right app, unknown app, other trust domain, other namespace), and attack paths."""
import http.client
import json
import re
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness
from conftest import show_logs_on_failure

# Dapr's documented shape: allow checkout to POST /orders, deny everything else.
ORDERS_ONLY = {
    "defaultAction": "deny",
    "trustDomain": "public",
    "policies": [{
        "appId": "checkout",
        "defaultAction": "deny",
        "trustDomain": "public",
        "namespace": "default",
        "operations": [{"name": "/orders", "httpVerb": ["POST"], "action": "allow"}],
    }],
}


@pytest.fixture(scope="module")
def identities(tmp_path_factory) -> dict[str, Path]:
    """Certificates from one mesh CA: the quickstart's apps, an app no policy names, and checkout
    in another trust domain and in another namespace."""
    root = tmp_path_factory.mktemp("identities")
    mesh = harness.make_certs(root / "mesh", "checkout", "order-processor", "intruder")
    out = {name: mesh for name in ("checkout", "order-processor", "intruder")}
    for name, kwargs in (("evil-td", {"trust_domain": "evil"}), ("prod-ns", {"namespace": "prod"})):
        d = root / name
        d.mkdir(mode=0o700)
        for f in ("ca.pem", "ca.key"):
            shutil.copy(mesh / f, d / f)
        harness.make_certs(d, "checkout", **kwargs)
        out[name] = d
    return out


@dataclass
class Callee:
    inbound: int
    app: harness.Upstream
    identities: dict[str, Path]
    envoy: harness.Envoy

    def call(self, who: str, method: str, path: str, headers: dict | None = None):
        """A request straight to the inbound listener, as `who`'s sidecar would make it."""
        certs = self.identities[who]
        app_id = "checkout" if who in ("evil-td", "prod-ns") else who
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(certs / "ca.pem")
        ctx.load_cert_chain(certs / f"{app_id}.pem", certs / f"{app_id}.key")
        conn = http.client.HTTPSConnection("127.0.0.1", self.inbound, context=ctx, timeout=5)
        try:
            conn.request(method, path, body=b"{}" if method in ("POST", "PUT") else None, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def start_callee(start_envoy, start_upstream, identities, acl, log_level="info") -> Callee:
    cfg = harness.use_certs(harness.load_config("order-processor.yaml"), identities["order-processor"])
    mapping = {p: harness.free_port() for p in harness.shipped_ports(cfg)}
    app = start_upstream("order-processor")
    mapping[harness.cluster_port(cfg, harness.APP_CLUSTER)] = app.port
    cfg = harness.remap_ports(cfg, mapping)
    plugin = harness.plugin_config(cfg, "inbound")
    if acl is not None:
        plugin["access_control"] = acl
    cfg = harness.set_plugin_config(cfg, "inbound", plugin)
    envoy = start_envoy(cfg, "order-processor-sidecar", log_level)
    return Callee(harness.listen_port(envoy.cfg, "inbound"), app, identities, envoy)


@pytest.fixture(scope="module")
def shared_orders_only(module_started, identities) -> Callee:
    return start_callee(module_started.envoy, module_started.upstream, identities, ORDERS_ONLY)


@pytest.fixture
def orders_only(request, shared_orders_only) -> Callee:
    """order-processor's sidecar with the ORDERS_ONLY policy, at log level info: one for the
    module, its app reset before each test."""
    callee = shared_orders_only
    assert callee.envoy.alive(), f"the module's sidecar is gone:\n{callee.envoy.log_tail()}"
    show_logs_on_failure(request.node, callee.envoy)
    callee.app.reset()
    return callee


def denied(resp, operation: str | None = None):
    status, body = resp
    assert status == 403, body
    payload = json.loads(body)
    assert payload["errorCode"] == "ERR_DIRECT_INVOKE"
    assert payload["message"].startswith("failed to invoke, id: order-processor, err: access control policy has denied access to id: spiffe://")
    if operation:
        assert f" operation: {operation} " in payload["message"]


def test_the_allowed_caller_and_verb_pass(orders_only):
    # As in Dapr, an operation name also covers the paths below it (its trie matches prefixes).
    for path in ("/orders", "/orders?id=7", "/orders/7", "/ORDERS"):
        status, body = orders_only.call("checkout", "POST", path)
        assert status == 200, (path, body)
    assert [r.path for r in orders_only.app.requests] == ["/orders", "/orders?id=7", "/orders/7", "/ORDERS"]
    assert orders_only.app.requests[0].headers["dapr-caller-app-id"] == "checkout"


@pytest.mark.parametrize("who,method,path", [
    ("checkout", "GET", "/orders"),          # wrong verb
    ("checkout", "DELETE", "/orders"),
    ("checkout", "POST", "/admin"),          # wrong path
    ("checkout", "POST", "/ordersx"),        # not /orders, nor below it
    ("intruder", "POST", "/orders"),         # no policy for this app: global default
    ("evil-td", "POST", "/orders"),          # right app id, other trust domain
    ("prod-ns", "POST", "/orders"),          # right app id, other namespace
])
def test_everything_else_is_denied(orders_only, who, method, path):
    denied(orders_only.call(who, method, path), path)
    assert not orders_only.app.requests


ATTACKS = [
    "/orders/../admin", "/admin/../../orders/../admin", "/./admin", "//admin", "/orders//../admin",
    "/%2e%2e/admin", "/orders/%2e%2e/admin", "/orders%2F..%2Fadmin", "/orders%2fadmin", "/%61dmin",
    "/ADMIN", "/Orders/../Admin", "/orders%00", "/orders%", "/orders/.", "/orders;/admin",
    "/orders\\..\\admin", "/admin?/orders", "/admin#/orders",
]


@pytest.mark.parametrize("path", ATTACKS)
def test_path_tricks_never_reach_anything_but_orders(orders_only, path):
    status, body = orders_only.call("checkout", "POST", path)
    # Whatever the answer, the app saw nothing outside the allowed operation: /orders and the
    # paths below it (the policy ignores letter case and a trailing slash: docs/access-control.md).
    seen = [r.path.split("?")[0].lower() for r in orders_only.app.requests]
    assert all(p.rstrip("/") == "/orders" or p.startswith("/orders/") for p in seen), seen
    assert not any(".." in p or "//" in p or "%" in p for p in seen), seen
    if status == 200:
        assert seen, "a 200 must come from the app"
    else:
        assert status in (400, 403, 404), (status, body)


@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_refused_calls_are_logged_at_envoys_debug_level_only(request, log_level):
    """The filter logs at Envoy's level, and a refused call is a debug line: a flood of bad
    requests does not flood an Envoy that logs at info (the module's shared sidecar, which has
    refused every call of the module's other tests too)."""
    if log_level == "info":
        callee = request.getfixturevalue("orders_only")
    else:
        callee = start_callee(request.getfixturevalue("start_envoy"), request.getfixturevalue("start_upstream"),
                              request.getfixturevalue("identities"), ORDERS_ONLY, log_level)
    for who, path in (("intruder", "/orders"), ("checkout", "/admin"), ("checkout", "/orders%2F..%2Fadmin")):
        denied(callee.call(who, "POST", path))
    assert callee.call("checkout", "POST", "/orders")[0] == 200
    log = callee.envoy.log()
    assert re.search(r"\[root \d+\] starting dapr-invoke 0\.1\.0 \([^)]+\) features: none\n", log), log[:2000]
    refused = [line for line in log.splitlines() if "inbound call refused with 403" in line]
    if log_level == "info":
        assert refused == []
    else:
        assert len(refused) == 3, refused
        # The debug line says which rule refused, which the caller is not told.
        assert "no policy for app \"intruder\"" in refused[0]
        assert "no operation of policies[0] matches" in refused[1]
        assert "has an encoded '/'" in refused[2]


def test_a_forged_caller_header_changes_nothing(orders_only):
    forged = {"dapr-caller-app-id": "checkout", "dapr-caller-namespace": "default"}
    denied(orders_only.call("intruder", "POST", "/orders", forged))
    status, _ = orders_only.call("checkout", "POST", "/orders", {"dapr-caller-app-id": "intruder"})
    assert status == 200
    assert orders_only.app.requests[-1].headers["dapr-caller-app-id"] == "checkout"


def test_global_default_allow_lets_unnamed_apps_in(start_envoy, start_upstream, identities):
    callee = start_callee(start_envoy, start_upstream, identities, {"defaultAction": "allow"})
    assert callee.call("intruder", "GET", "/anything")[0] == 200


def test_policy_default_allow_with_a_denied_operation(start_envoy, start_upstream, identities):
    acl = {
        "defaultAction": "deny",
        "policies": [{
            "appId": "checkout", "defaultAction": "allow", "namespace": "default", "trustDomain": "public",
            "operations": [{"name": "/admin/**", "httpVerb": ["*"], "action": "deny"}],
        }],
    }
    callee = start_callee(start_envoy, start_upstream, identities, acl)
    assert callee.call("checkout", "GET", "/orders/7")[0] == 200
    assert callee.call("checkout", "DELETE", "/anything/else")[0] == 200
    for path in ("/admin/users", "/admin/a/b/c", "/orders/../admin/users", "/%61dmin/users",
                 "/admin%2Fusers", "//admin/users", "/ADMIN/users", "/Admin/users"):
        status, body = callee.call("checkout", "POST", path)
        assert status in (400, 403), (path, status, body)
    assert not any(r.path.lower().lstrip("/").startswith("admin") for r in callee.app.requests)
    # Unnamed apps still fall to the global default.
    assert callee.call("intruder", "GET", "/orders/7")[0] == 403


def test_a_denial_reaches_the_calling_app_as_daprs_error(start_envoy, start_upstream, identities):
    """Through both sidecars: checkout's GET is denied by order-processor's sidecar, and checkout
    gets Dapr's 403 JSON."""
    cfgs = {name: harness.use_certs(harness.load_config(name), identities["checkout"])
            for name in ("checkout.yaml", "order-processor.yaml")}
    mapping = {p: harness.free_port() for p in set().union(*(harness.shipped_ports(c) for c in cfgs.values()))}
    app = start_upstream("order-processor")
    mapping[harness.cluster_port(cfgs["order-processor.yaml"], harness.APP_CLUSTER)] = app.port
    callee = harness.remap_ports(cfgs["order-processor.yaml"], mapping)
    plugin = dict(harness.plugin_config(callee, "inbound"), access_control=ORDERS_ONLY)
    callee_envoy = start_envoy(harness.set_plugin_config(callee, "inbound", plugin), "order-processor-sidecar")
    caller = harness.remap_ports(cfgs["checkout.yaml"], mapping)
    caller_envoy = start_envoy(harness.follow(caller, callee_envoy), "checkout-sidecar")
    port = harness.listen_port(caller_envoy.cfg, "outbound")
    op = {"dapr-app-id": "order-processor"}
    assert harness.request(port, "POST", "/orders", op, b"{}")[0] == 200
    status, headers, body = harness.request(port, "GET", "/orders", op)
    assert status == 403, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["message"] == (
        "failed to invoke, id: order-processor, err: access control policy has denied access to "
        "id: spiffe://public/ns/default/checkout operation: /orders verb: GET")
    assert [r.method for r in app.requests] == ["POST"]
