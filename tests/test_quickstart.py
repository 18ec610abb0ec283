"""The quickstart end to end: both shipped sidecar configs, the real sample apps, on free ports.
checkout sends 10 orders by `dapr-app-id`; each arrives at order-processor through two Envoys."""
import json
import os
import subprocess
import sys

import harness

SAMPLES = harness.ROOT / "samples"
CONFIGS = ("checkout.yaml", "order-processor.yaml")


def test_checkout_orders_reach_order_processor(start_envoy, tmp_path, mesh_certs):
    cfgs = {name: harness.use_certs(harness.load_config(name), mesh_certs) for name in CONFIGS}
    # One mapping for both files: a port one sidecar listens on and the other dials stays shared.
    ports = set().union(*(harness.shipped_ports(c) for c in cfgs.values()))
    mapping = {p: harness.free_port() for p in ports}
    cfgs = {name: harness.remap_ports(cfg, mapping) for name, cfg in cfgs.items()}
    # order-processor's sidecar first: checkout's dials it, where it really listens.
    processor_sidecar = start_envoy(cfgs["order-processor.yaml"], "order-processor")
    checkout_sidecar = start_envoy(harness.follow(cfgs["checkout.yaml"], processor_sidecar), "checkout")
    app_port = harness.cluster_port(processor_sidecar.cfg, harness.APP_CLUSTER)
    processor_http = harness.listen_port(processor_sidecar.cfg, "outbound")
    checkout_http = harness.listen_port(checkout_sidecar.cfg, "outbound")

    env = dict(os.environ, PYTHONUNBUFFERED="1", ORDER_INTERVAL_SECONDS="0")
    app_log = open(tmp_path / "order-processor.out", "w+")
    processor = subprocess.Popen(
        [sys.executable, "app.py"], cwd=SAMPLES / "order-processor", stdout=app_log, stderr=subprocess.STDOUT,
        env=dict(env, APP_ID="order-processor", APP_PORT=str(app_port), DAPR_HTTP_PORT=str(processor_http)))
    try:
        harness.wait_for_port(app_port, proc=processor)
        checkout = subprocess.run(
            [sys.executable, "app.py"], cwd=SAMPLES / "checkout", capture_output=True, timeout=60,
            env=dict(env, APP_ID="checkout", DAPR_HTTP_PORT=str(checkout_http)))
        assert checkout.returncode == 0, checkout.stderr.decode()
        assert checkout.stdout.decode().splitlines() == [
            f'Order passed: {{"orderId": {i}}}' for i in range(1, 11)]

        # order-processor's own sidecar routes to itself by id, as Dapr does.
        status, _, body = harness.request(processor_http, "POST", "/v1.0/invoke/order-processor/method/orders",
                                          {"content-type": "application/json"}, b'{"orderId": 99}')
        assert (status, json.loads(body)) == (200, {"success": True})
    finally:
        processor.terminate()
        processor.wait(timeout=10)
    app_log.seek(0)
    received = [line for line in app_log.read().splitlines() if line.startswith("Order received")]
    assert received == [f'Order received: {{"orderId": {i}}}' for i in [*range(1, 11), 99]]
