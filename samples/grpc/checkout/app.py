"""checkout: sends 10 orders to the order-processor app over gRPC, through its own sidecar.

As with Dapr's gRPC proxying, the app points an ordinary gRPC stub at its sidecar's gRPC port
(DAPR_GRPC_PORT) and names the app it calls in the `dapr-app-id` metadata.
"""
import json
import os
import sys
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
protos, services = grpc.protos_and_services("orders.proto")

interval = float(os.getenv("ORDER_INTERVAL_SECONDS", "0.5"))
metadata = [("dapr-app-id", "order-processor")]
if os.getenv("DAPR_API_TOKEN"):
    metadata.append(("dapr-api-token", os.environ["DAPR_API_TOKEN"]))

with grpc.insecure_channel("localhost:" + os.getenv("DAPR_GRPC_PORT", "50001")) as channel:
    stub = services.OrderProcessorStub(channel)
    for i in range(1, 11):
        order = {"orderId": i}
        try:
            stub.Process(protos.Order(order_id=i), metadata=metadata, timeout=10)
        except grpc.RpcError as e:
            print("Order failed: %s: %s %s" % (json.dumps(order), e.code().name, e.details()), file=sys.stderr, flush=True)
            sys.exit(1)
        print("Order passed: " + json.dumps(order), flush=True)
        time.sleep(interval)
