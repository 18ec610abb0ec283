"""Dapr-style errors from a real Envoy: status, content type, errorCode and message, and the
request never reaches an app."""
import json

import pytest

from conftest import checkout_sidecar_config
from harness import request

NO_APP_ID = "failed getting app id either from the URL path or the header dapr-app-id"


@pytest.mark.parametrize("path,headers,status,message", [
    # No app id at all.
    ("/orders", {}, 404, NO_APP_ID),
    ("/orders", {"dapr-app-id": ""}, 404, NO_APP_ID),
    ("/v1.0/invoke/", {}, 404, NO_APP_ID),
    # Malformed invoke URL.
    ("/v1.0/invoke/order-processor", {}, 404, "invalid invoke URL: no /method/ after the app id"),
    ("/v1.0/invoke/order-processor/orders", {}, 404, "invalid invoke URL: no /method/ after the app id"),
    ("/v1.0/invoke/order-processor/method/", {}, 404, "invalid invoke URL: the method is empty"),
    # Malformed app id.
    ("/x", {"dapr-app-id": "a.b.c"}, 400,
     "failed to invoke, id: a.b.c, err: invalid app id: has more than one '.'; use <app-id> or <app-id>.<namespace>"),
    ("/x", {"dapr-app-id": "order processor"}, 400, "invalid app id: has the character ' '"),
    ("/v1.0/invoke/-x/method/y", {}, 400, "invalid app id: must start and end with a letter or a digit"),
    ("/v1.0/invoke/order-processor./method/y", {}, 400, "invalid app id: is empty"),
    # Well formed, but no such app for this sidecar.
    ("/x", {"dapr-app-id": "shipping"}, 500,
     'failed to invoke, id: shipping, err: no app "shipping" in namespace "default" is configured for this sidecar'),
    ("/x", {"dapr-app-id": "payments"}, 500, 'no app "payments" in namespace "default"'),
    ("/v1.0/invoke/order-processor.prod/method/x", {}, 500, 'no app "order-processor" in namespace "prod"'),
])
def test_errors_are_dapr_json(sidecar, path, headers, status, message):
    got_status, got_headers, body = sidecar.call("POST", path, headers, b'{"orderId": 1}')
    assert got_status == status, body
    assert got_headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"errorCode", "message"}
    assert payload["errorCode"] == "ERR_DIRECT_INVOKE"
    assert message in payload["message"]
    assert all(not up.requests for up in sidecar.apps.values())


def test_a_long_bad_id_is_not_echoed_whole(sidecar):
    status, _, body = sidecar.call("GET", "/x", {"dapr-app-id": "x" * 8000 + "!"})
    assert status == 400
    assert len(json.loads(body)["message"]) < 300


def test_an_app_that_is_down_gets_a_dapr_error_from_envoy(own_sidecar):
    sidecar = own_sidecar  # it stops an upstream
    sidecar.apps["order-processor"].stop()
    status, headers, body = sidecar.call("POST", "/orders", {"dapr-app-id": "order-processor"}, b"{}")
    assert status == 503, body
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["errorCode"] == "ERR_DIRECT_INVOKE"
    assert payload["message"].startswith("failed to invoke, id: order-processor, err: upstream connect error")
    assert "connection failure" in payload["message"]
    assert payload["message"].endswith("(UF)"), payload["message"]


def test_a_cluster_envoy_does_not_have_gets_a_dapr_error(start_envoy, start_upstream):
    up = start_upstream("order-processor")
    plugin = {"app_id": "checkout", "apps": {"order-processor": {"cluster": "order-processor"},
                                             "ghost": {"cluster": "ghost"}}}
    cfg, port = checkout_sidecar_config(plugin, {"order-processor": up})
    port = start_envoy(cfg, "ghost").port(port)
    status, headers, body = request(port, "GET", "/x", {"dapr-app-id": "ghost"})
    assert status == 500, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": "failed to invoke, id: ghost, err: the sidecar has no cluster ghost for this app"}
    assert not up.requests
