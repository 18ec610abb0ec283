"""The harness's own promise: a port taken between `free_port()` and Envoy's bind costs one more
start on fresh ports, not a failed test, and a config that dials the moved Envoy follows it."""
import socket

import pytest

import harness
from conftest import EXAMPLE_PLUGIN_CONFIG, checkout_sidecar_config


def test_an_envoy_whose_port_was_taken_starts_once_more_on_fresh_ports(tmp_path, start_upstream):
    up = start_upstream("order-processor")
    cfg, port = checkout_sidecar_config(EXAMPLE_PLUGIN_CONFIG, {"order-processor": up})
    # Someone else binds the outbound port after free_port() handed it out.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        envoy = harness.Envoy(cfg, tmp_path, "moved")
        try:
            envoy.start()
            moved = envoy.port(port)
            assert moved != port and moved == harness.listen_port(envoy.cfg, "outbound")
            assert set(envoy.moved) == harness.Envoy(cfg, tmp_path, "unstarted").listen_ports()
            log = envoy.log()
            assert f"cannot bind '127.0.0.1:{port}': Address already in use" in log
            assert "starting once more on fresh ports" in log
            status, _, _ = harness.request(moved, "GET", "/x", {"dapr-app-id": "order-processor"})
            assert status == 200
            assert len(up.requests) == 1
            # A config that named the old port now names the new one; other ports stay.
            follower = harness.follow({"a": {"port_value": port}, "b": {"port_value": up.port}}, envoy)
            assert follower == {"a": {"port_value": moved}, "b": {"port_value": up.port}}
        finally:
            envoy.stop()


def test_a_port_taken_twice_fails_with_envoys_reason(tmp_path, start_upstream, monkeypatch):
    up = start_upstream("order-processor")
    cfg, port = checkout_sidecar_config(EXAMPLE_PLUGIN_CONFIG, {"order-processor": up})
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", port))
        second.bind(("127.0.0.1", 0))
        # The first fresh port is taken too: Envoy fails again, and there is no third try.
        fresh = iter([second.getsockname()[1]])
        real = harness.free_port
        monkeypatch.setattr(harness, "free_port", lambda: next(fresh, None) or real())
        envoy = harness.Envoy(cfg, tmp_path, "taken-twice")
        try:
            with pytest.raises(harness.EnvoyFailed, match="Address already in use"):
                envoy.start()
        finally:
            envoy.stop()
    assert envoy.log().count("starting once more on fresh ports") == 1
