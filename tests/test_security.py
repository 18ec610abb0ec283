"""Nothing an app sends can steer routing around the filter or claim another identity."""
import json

from conftest import EXAMPLE_PLUGIN_CONFIG, checkout_sidecar_config
from harness import hcm, ok_json, raw_request, request


def test_spoofed_cluster_header_is_overwritten(sidecar):
    got = ok_json(sidecar.call("GET", "/x", {"dapr-app-id": "order-processor",
                                          "x-dapr-cluster": "payments-prod"}))
    assert got["app"] == "order-processor"
    assert not sidecar.apps["payments-prod"].requests


def test_cluster_header_alone_routes_nowhere(sidecar):
    status, _, body = sidecar.call("GET", "/x", {"x-dapr-cluster": "payments-prod"})
    assert status == 404
    assert json.loads(body)["errorCode"] == "ERR_DIRECT_INVOKE"
    status, _, _ = sidecar.call("GET", "/x", {"x-dapr-cluster": "payments-prod", "dapr-app-id": "nope"})
    assert status == 500
    assert all(not up.requests for up in sidecar.apps.values())


def test_cluster_header_does_not_reach_the_app(sidecar):
    got = ok_json(sidecar.call("GET", "/x", {"dapr-app-id": "order-processor", "x-dapr-cluster": "evil"}))
    assert "x-dapr-cluster" not in got["headers"]


def test_caller_identity_headers_cannot_be_forged(sidecar):
    forged = {"dapr-app-id": "order-processor", "dapr-caller-app-id": "admin",
              "dapr-caller-namespace": "kube-system", "dapr-callee-app-id": "payments"}
    got = ok_json(sidecar.call("GET", "/x", forged))
    assert got["headers"]["dapr-caller-app-id"] == "checkout"
    assert got["headers"]["dapr-caller-namespace"] == "default"
    assert got["headers"]["dapr-callee-app-id"] == "order-processor"
    seen = sidecar.apps["order-processor"].requests[-1]
    # One value each: the forged ones are replaced, not kept beside ours.
    assert seen.headers["dapr-caller-app-id"] == "checkout"


def test_duplicated_spoof_headers_are_all_replaced(sidecar):
    req = (b"GET /dup HTTP/1.1\r\nHost: x\r\ndapr-app-id: order-processor\r\n"
           b"x-dapr-cluster: payments-prod\r\nx-dapr-cluster: payments-prod\r\n"
           b"dapr-caller-app-id: admin\r\ndapr-caller-app-id: root\r\nconnection: close\r\n\r\n")
    reply = raw_request(sidecar.port, req)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    seen = sidecar.apps["order-processor"].requests[-1]
    assert seen.path == "/dup"
    assert seen.headers["dapr-caller-app-id"] == "checkout"
    assert "x-dapr-cluster" not in seen.headers
    assert not sidecar.apps["payments-prod"].requests


def test_a_custom_cluster_header_is_honoured_and_hidden(start_envoy, start_upstream):
    apps = {"order-processor": start_upstream("order-processor"), "payments-prod": start_upstream("payments")}
    cfg, port = checkout_sidecar_config(dict(EXAMPLE_PLUGIN_CONFIG, cluster_header="x-route-to"), apps)
    route = hcm(cfg, "outbound")["route_config"]["virtual_hosts"][0]["routes"][0]
    route["route"]["cluster_header"] = "x-route-to"
    route["request_headers_to_remove"] = ["x-route-to"]
    port = start_envoy(cfg, "custom-header").port(port)
    got = ok_json(request(port, "GET", "/x", {"dapr-app-id": "order-processor", "x-route-to": "payments-prod"}))
    assert got["app"] == "order-processor"
    assert "x-route-to" not in got["headers"]
