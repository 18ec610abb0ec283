"""What the shipped `failure_policy: FAIL_RELOAD` does when the VM crashes: requests fail closed
(nothing is forwarded unrouted, whatever headers it carries), then a fresh VM serves again.

The crash needs a build with the test-only `fault-injection` feature, made here with the cheap
`fault` profile (Cargo.toml: the release settings without LTO); the shipped .wasm has no such
path."""
import re
import subprocess
import time

import pytest

import harness
from conftest import EXAMPLE_PLUGIN_CONFIG, checkout_sidecar_config

FAULT_WASM = harness.ROOT / "target/wasm32-wasip1/fault/dapr_invoke.wasm"


@pytest.fixture(scope="module")
def fault_wasm():
    subprocess.run(["cargo", "build", "--quiet", "--profile", "fault", "--target", "wasm32-wasip1",
                    "-p", "dapr-invoke", "--features", "fault-injection"],
                   cwd=harness.ROOT, check=True, timeout=420)
    return FAULT_WASM


# Its fixture builds the fault-injection .wasm: about 10 s from cold here, but a first build on a
# slow machine compiles every dependency for wasm32-wasip1 too.
@pytest.mark.timeout(480)
def test_a_crashed_vm_fails_closed_then_recovers(fault_wasm, start_envoy, start_upstream):
    op, pay = start_upstream("order-processor"), start_upstream("payments")
    cfg, port = checkout_sidecar_config(EXAMPLE_PLUGIN_CONFIG, {"order-processor": op, "payments-prod": pay})
    filt = harness.wasm_filter(cfg, "outbound")
    assert filt["failure_policy"] == "FAIL_RELOAD"
    filt["vm_config"]["code"]["local"]["filename"] = str(fault_wasm)
    envoy = start_envoy(cfg, "fault")
    port = envoy.port(port)
    # The version line says this is no shipped build.
    assert re.search(r"starting dapr-invoke 0\.1\.0 \([^)]+\) features: fault-injection\n", envoy.log())

    def call(headers):
        return harness.request(port, "GET", "/x", headers)[0]

    assert call({"dapr-app-id": "order-processor"}) == 200
    assert call({"dapr-app-id": "order-processor", "x-dapr-invoke-fault": "1"}) == 503
    assert "Function: proxy_on_request_headers failed" in envoy.log()
    served_before = len(op.requests)

    # While the VM is down, a request that names a cluster itself is not forwarded.
    statuses = [call({"x-dapr-cluster": "payments-prod"}) for _ in range(3)]
    assert 200 not in statuses and not pay.requests, statuses

    # A fresh VM takes over (backoff starts at 0.1 s) and routes again.
    deadline = time.monotonic() + 10
    while call({"dapr-app-id": "order-processor"}) != 200:
        assert time.monotonic() < deadline, "the VM was not reloaded within 10 s"
        time.sleep(0.05)
    assert len(op.requests) == served_before + 1
    assert call({"x-dapr-cluster": "payments-prod"}) == 404
    assert not pay.requests
