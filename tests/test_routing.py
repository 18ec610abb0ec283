"""Routing through a real Envoy: both request forms, namespaces, the path rewrite, and what
passes through untouched."""
import json
import shutil
import subprocess

import pytest

from harness import ok_json


def test_header_form_reaches_the_app_with_its_own_path(sidecar):
    got = ok_json(sidecar.call("POST", "/orders?page=2", {"dapr-app-id": "order-processor",
                                                       "content-type": "application/json"},
                            b'{"orderId": 1}'))
    assert got["app"] == "order-processor"
    assert got["method"] == "POST"
    assert got["path"] == "/orders?page=2"
    seen = sidecar.apps["order-processor"].requests[-1]
    assert seen.body == b'{"orderId": 1}'
    assert seen.headers["content-type"] == "application/json"
    assert not sidecar.apps["payments-prod"].requests


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_invoke_url_is_rewritten_and_keeps_the_query(sidecar, method):
    body = b"x" * 100 if method in ("POST", "PUT", "PATCH") else None
    got = ok_json(sidecar.call(method, "/v1.0/invoke/order-processor/method/orders/42?expand=items&x=%2F",
                            {"x-custom": "kept"}, body))
    assert got["app"] == "order-processor"
    assert got["method"] == method
    assert got["path"] == "/orders/42?expand=items&x=%2F"
    assert got["headers"]["x-custom"] == "kept"
    assert got["body_len"] == (len(body) if body else 0)


@pytest.mark.parametrize("target,app", [
    ("order-processor", "order-processor"),
    ("order-processor.default", "order-processor"),
    ("payments.prod", "payments"),
])
def test_namespaces_resolve_in_both_forms(sidecar, target, app):
    assert ok_json(sidecar.call("GET", "/a", {"dapr-app-id": target}))["app"] == app
    assert ok_json(sidecar.call("GET", f"/v1.0/invoke/{target}/method/a"))["app"] == app


def test_invoke_url_wins_over_the_header(sidecar):
    got = ok_json(sidecar.call("GET", "/v1.0/invoke/payments.prod/method/pay",
                            {"dapr-app-id": "order-processor"}))
    assert (got["app"], got["path"]) == ("payments", "/pay")


def test_callee_learns_the_caller_from_the_sidecar(sidecar):
    got = ok_json(sidecar.call("GET", "/who", {"dapr-app-id": "payments.prod"}))
    assert got["headers"]["dapr-caller-app-id"] == "checkout"
    assert got["headers"]["dapr-caller-namespace"] == "default"
    assert got["headers"]["dapr-callee-app-id"] == "payments"


def test_app_errors_pass_through_unchanged(sidecar):
    sidecar.apps["order-processor"].status = 409
    status, headers, body = sidecar.call("POST", "/orders", {"dapr-app-id": "order-processor"}, b"{}")
    assert status == 409
    assert json.loads(body)["app"] == "order-processor"


def test_large_body_is_streamed_through(sidecar):
    body = bytes(range(256)) * 4096  # 1 MiB
    got = ok_json(sidecar.call("PUT", "/blob", {"dapr-app-id": "order-processor"}, body))
    assert got["body_len"] == len(body)
    assert sidecar.apps["order-processor"].requests[-1].body == body


def test_sidecar_health_endpoints_answer_204(sidecar):
    for path in ("/v1.0/healthz", "/v1.0/healthz/outbound"):
        status, _, body = sidecar.call("GET", path)
        assert (status, body) == (204, b"")
    assert not sidecar.apps["order-processor"].requests


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl for an HTTP/2 client")
def test_http2_clients_are_routed(sidecar):
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-H", "dapr-app-id: payments.prod",
                          "-w", "\n%{http_version}", f"http://127.0.0.1:{sidecar.port}/h2?x=1"],
                         capture_output=True, timeout=10, check=True).stdout.decode()
    body, version = out.rsplit("\n", 1)
    assert version == "2"
    assert json.loads(body)["path"] == "/h2?x=1"
    assert json.loads(body)["app"] == "payments"
