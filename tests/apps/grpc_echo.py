"""A gRPC test app serving echo.Echo (tests/apps/echo.proto) on APP_PORT, over TLS when TLS_CERT and
TLS_KEY name a certificate and its key. Every reply carries the metadata the app received, sends
initial metadata `x-app: <APP_ID>` and the trailer `x-trailer: done`; a request's `fail_code` makes
it fail with that status (its first `fail_times` calls per `key`, or every call), with the trailer
`x-failed: <code>`. GRPC_MAX_MESSAGE raises the largest message it takes (gRPC's default: 4 MiB)."""
import os
import sys
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
protos, services = grpc.protos_and_services("echo.proto")

APP_ID = os.environ.get("APP_ID", "")
calls: dict[str, int] = {}
lock = threading.Lock()


def seen(context) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}


def reply(context, request=None, **fields):
    return protos.Msg(metadata=seen(context), pid=os.getpid(), **fields)


def begin(context):
    context.send_initial_metadata((("x-app", APP_ID),))
    context.set_trailing_metadata((("x-trailer", "done"),))


class Echo(services.EchoServicer):
    def Unary(self, request, context):
        with lock:
            n = calls[request.key] = calls.get(request.key, 0) + 1
        if request.sleep:
            time.sleep(request.sleep)
        if request.fail_code and (request.fail_times == 0 or n <= request.fail_times):
            context.set_trailing_metadata((("x-failed", str(request.fail_code)),))
            context.abort(status(request.fail_code), f"failed on purpose ({n})")
        begin(context)
        return reply(context, text=request.text, data=request.data, calls=n)

    def ServerStream(self, request, context):
        for i in range(request.count):
            if request.sleep:
                time.sleep(request.sleep)
            if i == 0:
                begin(context)  # the response starts with the first message
            yield reply(context, text=f"{request.text} {i}", calls=i)

    def ClientStream(self, request_iterator, context):
        begin(context)
        texts, size = [], 0
        for m in request_iterator:
            texts.append(m.text)
            size += len(m.data)
        return reply(context, text=",".join(texts), count=size, calls=len(texts))

    def Bidi(self, request_iterator, context):
        begin(context)
        for m in request_iterator:
            yield reply(context, text=m.text.upper(), data=m.data)


def status(number: int) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == number)


def main():
    limit = int(os.environ.get("GRPC_MAX_MESSAGE", 4 * 1024 * 1024))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    services.add_EchoServicer_to_server(Echo(), server)
    address = f"127.0.0.1:{os.environ['APP_PORT']}"
    cert, key = os.environ.get("TLS_CERT"), os.environ.get("TLS_KEY")
    if cert and key:
        with open(cert, "rb") as c, open(key, "rb") as k:
            server.add_secure_port(address, grpc.ssl_server_credentials([(k.read(), c.read())]))
    else:
        server.add_insecure_port(address)
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
