"""Trace collectors for the tests: real receivers of the wire formats Envoy exports, decoded with
maintained libraries (OpenTelemetry's own protobuf definitions, `opentelemetry-proto`, for OTLP
over HTTP and gRPC; Zipkin's v2 JSON is JSON). Each keeps the spans it received as [`Span`]s."""
from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

import harness


@dataclass
class Span:
    service: str          # the resource's service.name (OTLP), localEndpoint.serviceName (Zipkin)
    name: str
    kind: str             # CLIENT or SERVER
    trace_id: str         # lower-case hex, 32 digits
    span_id: str          # 16 hex digits
    parent_id: str        # "" for a root span
    attributes: dict[str, str] = field(default_factory=dict)
    error: bool = False   # OTLP status ERROR; Zipkin tag error=true
    via: str = ""         # which collector received it


class Collector:
    """Spans received so far, safe to read while they arrive."""

    def __init__(self, kind: str):
        self.kind = kind
        self.port = harness.free_port()
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self.requests: list[dict[str, str]] = []   # the headers of each export request

    def add(self, spans: list[Span], headers: dict[str, str]) -> None:
        with self._lock:
            self._spans.extend(spans)
            self.requests.append(headers)

    @property
    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, predicate, timeout: float = 20) -> list[Span]:
        """Waits until `predicate(spans)` is true (Envoy exports every 5 s) and returns the spans."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans
            if predicate(spans):
                return spans
            assert time.monotonic() < deadline, f"{self.kind}: {len(spans)} span(s) so far: {spans}"
            time.sleep(0.2)


def _otlp_spans(request: trace_service_pb2.ExportTraceServiceRequest, via: str) -> list[Span]:
    out = []
    for rs in request.resource_spans:
        service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(
                    service=service, name=s.name,
                    kind=trace_pb2.Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(),
                    attributes={a.key: a.value.string_value for a in s.attributes},
                    error=s.status.code == trace_pb2.Status.STATUS_CODE_ERROR, via=via))
    return out


class _Http(ThreadingHTTPServer):
    daemon_threads = True


class HttpCollector(Collector):
    """OTLP/HTTP (protobuf, `POST /v1/traces`) or Zipkin v2 JSON (`POST /api/v2/spans`)."""

    def __init__(self, kind: str):
        assert kind in ("otlp-http", "zipkin")
        super().__init__(kind)
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if collector.kind == "zipkin":
                    assert self.path == "/api/v2/spans", self.path
                    collector.add([_zipkin_span(s) for s in json.loads(body)], headers)
                    self._reply(202, b"", "text/plain")
                else:
                    assert self.path == "/v1/traces", self.path
                    request = trace_service_pb2.ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    collector.add(_otlp_spans(request, collector.kind), headers)
                    self._reply(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                                "application/x-protobuf")

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("transfer-encoding") or ""):
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _reply(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = _Http(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _zipkin_span(s: dict) -> Span:
    tags = s.get("tags", {})
    return Span(service=s.get("localEndpoint", {}).get("serviceName", ""), name=s["name"],
                kind=s.get("kind", ""), trace_id=s["traceId"], span_id=s["id"],
                parent_id=s.get("parentId", ""), attributes=tags, error=tags.get("error") == "true",
                via="zipkin")


class GrpcCollector(Collector):
    """OTLP/gRPC: OpenTelemetry's TraceService on a grpcio server."""

    def __init__(self):
        super().__init__("otlp-grpc")
        collector = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                headers = {k: v for k, v in context.invocation_metadata()}
                collector.add(_otlp_spans(request, collector.kind), headers)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)
