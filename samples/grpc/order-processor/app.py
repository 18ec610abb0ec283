"""order-processor: a gRPC server that receives the orders checkout sends through the sidecars."""
import json
import os
import sys
from concurrent import futures

import grpc

# The service is read from ../orders.proto when the app starts: no generated code to keep.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
protos, services = grpc.protos_and_services("orders.proto")


class OrderProcessor(services.OrderProcessorServicer):
    def Process(self, request, context):
        caller = dict(context.invocation_metadata()).get("dapr-caller-app-id", "?")
        print("Order received: " + json.dumps({"orderId": request.order_id}) + " from " + caller, flush=True)
        return protos.Result(success=True)


if __name__ == "__main__":
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    services.add_OrderProcessorServicer_to_server(OrderProcessor(), server)
    server.add_insecure_port("127.0.0.1:" + os.getenv("APP_PORT", "6002"))
    server.start()
    server.wait_for_termination()
