"""What the filter reports about itself: its VM memory as a gauge, its configure time in the log."""


def test_vm_memory_gauge_and_configure_time(sidecar):
    status, _, _ = sidecar.call("GET", "/orders", {"dapr-app-id": "order-processor"})
    assert status == 200
    stats = sidecar.envoy.stats()
    memory = stats.get("wasmcustom.dapr_invoke.vm_memory_bytes")
    assert memory is not None, sorted(k for k in stats if "wasm" in k)
    assert memory >= 65536 and memory % 65536 == 0
    assert "2 target app(s), cluster header \"x-dapr-cluster\"; configured in" in sidecar.envoy.log()
