"""Distributed tracing from Dapr's Configuration (`spec.tracing`), through `dapr-envoy run`, with
real trace receivers started by the test: OTLP over HTTP and over gRPC (decoded with
OpenTelemetry's own protobuf definitions) and Zipkin's v2 JSON API. Each app has its own
Configuration, as with daprd; the spans must follow one call across the two sidecars as daprd's
do: `CallLocal/<callee>/<method>`, a CLIENT span on the caller and its SERVER child on the callee,
W3C trace context to the callee app and back to the caller app, sampled at each app's rate with
a sampled caller always followed."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness
from collectors import GrpcCollector, HttpCollector, Span

APPS = Path(__file__).resolve().parent / "apps"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$")
SAMPLED_RATE = 0.25


@dataclass
class Mesh:
    run: harness.Run
    http: dict[str, int]            # each app's DAPR_HTTP_PORT
    otlp: HttpCollector             # callee's and caller's spans
    grpc: GrpcCollector             # sampler's spans
    zipkin: HttpCollector           # zcallee's and zcaller's spans
    run_dir: Path


def configuration(tracing: str) -> str:
    return "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: t\nspec:\n  tracing:\n" + tracing


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracing")
    otlp, grpc_, zipkin = HttpCollector("otlp-http"), GrpcCollector(), HttpCollector("zipkin")
    (tmp / "otlp-http.yaml").write_text(configuration(f"""\
    samplingRate: "1"
    otel:
      endpointAddress: 127.0.0.1:{otlp.port}
      protocol: http
      isSecure: false
"""))
    (tmp / "otlp-grpc.yaml").write_text(configuration(f"""\
    samplingRate: "{SAMPLED_RATE}"
    otel:
      endpointAddress: localhost:{grpc_.port}
      protocol: grpc
      isSecure: false
      headers: ["x-tenant=tests"]
"""))
    (tmp / "zipkin.yaml").write_text(configuration(f"""\
    samplingRate: "1"
    zipkin:
      endpointAddress: http://127.0.0.1:{zipkin.port}/api/v2/spans
"""))
    (tmp / "health").write_text("503")
    apps = {"callee": ("echo", "otlp-http"), "caller": ("sleep", "otlp-http"),
            "sampler": ("sleep", "otlp-grpc"), "zcallee": ("echo", "zipkin"),
            "zcaller": ("sleep", "zipkin"), "plain": ("sleep", None)}
    http = {app: harness.free_port() for app in apps}
    lines = ["version: 1", "apps:"]
    for app, (kind, config) in apps.items():
        lines += [f"  - appID: {app}", f"    appDirPath: {APPS}", f"    daprHTTPPort: {http[app]}"]
        if kind == "echo":
            lines += [f"    appPort: {harness.free_port()}", '    command: ["python3", "echo.py"]',
                      "    env:", f"      HEALTH_FILE: {tmp / 'health'}"]
        else:
            lines += ['    command: ["sleep", "600"]']
        if config:
            lines += [f"    configFilePath: {config}.yaml"]
    run = harness.Run(tmp, "\n".join(lines) + "\n")
    try:
        deadline = time.monotonic() + 60
        for caller, callee in (("plain", "callee"), ("plain", "zcallee")):
            while True:
                assert run.proc.poll() is None, f"runner exited:\n{run.out}\n{run.err}"
                try:
                    if harness.request(http[caller], "GET", "/ready", {"dapr-app-id": callee})[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"not ready:\n{run.out}\n{run.err}"
                time.sleep(0.2)
        yield Mesh(run, http, otlp, grpc_, zipkin, tmp / "run")
    finally:
        run.stop()
        for c in (otlp, grpc_, zipkin):
            c.stop()


def call(mesh: Mesh, caller: str, path: str, headers: dict | None = None, method: str = "GET"):
    status, resp_headers, body = harness.request(mesh.http[caller], method, path, headers)
    return status, resp_headers, body


def of_trace(spans: list[Span], trace_id: str) -> dict[str, Span]:
    return {s.kind: s for s in spans if s.trace_id == trace_id}


def test_one_call_is_a_client_span_and_its_server_child_named_as_daprs(mesh):
    status, headers, body = call(mesh, "caller", "/v1.0/invoke/callee/method/orders/7?x=1", method="POST")
    assert status == 200, body
    # The caller's app gets its sidecar's span back, as daprd adds it.
    back = TRACEPARENT.match(headers["traceparent"])
    assert back, headers
    trace_id, caller_span, flags = back.groups()
    assert flags == "01"
    spans = of_trace(mesh.otlp.wait_for(lambda s: len(of_trace(s, trace_id)) == 2), trace_id)
    client, server = spans["CLIENT"], spans["SERVER"]
    assert (client.service, client.name, client.span_id, client.parent_id) == \
        ("caller", "CallLocal/callee/orders/7", caller_span, "")
    assert (server.service, server.name, server.parent_id) == ("callee", "CallLocal/callee/orders/7", caller_span)
    for span in (client, server):
        assert span.attributes["rpc.service"] == "ServiceInvocation"
        assert span.attributes["dapr.status_code"] == "200"
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["dapr-caller-app-id"] == "caller"
        assert span.attributes["dapr-callee-app-id"] == "callee"
        assert not span.error
    assert client.attributes["net.peer.name"] == "callee"
    assert client.attributes["dapr.api"] == "POST /orders/7"
    assert server.attributes["dapr.invoke_method"] == "/orders/7"
    # The callee app is told the callee sidecar's span, in the same trace.
    received = dict(json.loads(body)["headers"])
    assert received["traceparent"] == f"00-{trace_id}-{server.span_id}-01"


def test_a_sampled_traceparent_from_the_app_is_continued_and_an_unsampled_one_is_not(mesh):
    sampled, unsampled = "1" * 32, "2" * 32
    status, headers, _ = call(mesh, "caller", "/orders", {"dapr-app-id": "callee",
                                                          "traceparent": f"00-{sampled}-{'3' * 16}-01"})
    assert status == 200
    assert headers["traceparent"].startswith(f"00-{sampled}-")
    status, headers, body = call(mesh, "caller", "/orders", {"dapr-app-id": "callee",
                                                             "traceparent": f"00-{unsampled}-{'4' * 16}-00"})
    assert status == 200
    # Not sampled: the decision travels on (flags 00) to the callee's app and back.
    assert re.match(f"^00-{unsampled}-[0-9a-f]{{16}}-00$", headers["traceparent"]), headers
    assert dict(json.loads(body)["headers"])["traceparent"].endswith("-00")
    spans = of_trace(mesh.otlp.wait_for(lambda s: len(of_trace(s, sampled)) == 2), sampled)
    assert spans["CLIENT"].parent_id == "3" * 16
    assert spans["SERVER"].parent_id == spans["CLIENT"].span_id
    # A later call's spans have arrived, and none of the unsampled trace.
    status, headers, _ = call(mesh, "caller", "/orders", {"dapr-app-id": "callee"})
    marker = TRACEPARENT.match(headers["traceparent"]).group(1)
    spans = mesh.otlp.wait_for(lambda s: len(of_trace(s, marker)) == 2)
    assert of_trace(spans, unsampled) == {}


def test_failed_calls_are_error_spans_with_the_status(mesh):
    # The app answers 503 (its health file), and a target nobody configured gets Dapr's 500.
    status, headers, _ = call(mesh, "caller", "/_health", {"dapr-app-id": "callee"})
    assert status == 503
    failed = TRACEPARENT.match(headers["traceparent"]).group(1)
    status, headers, _ = call(mesh, "caller", "/x", {"dapr-app-id": "nope"})
    assert status == 500
    # Refused by the caller's own sidecar: the request went nowhere, so no trace context was sent
    # on, and none comes back; the span is named after the app id the call gave.
    assert "traceparent" not in headers
    refused = lambda spans: [s for s in spans if s.name == "CallLocal/nope/x"]  # noqa: E731
    spans = mesh.otlp.wait_for(lambda s: len(of_trace(s, failed)) == 2 and refused(s))
    for span in of_trace(spans, failed).values():
        assert span.error and span.attributes["dapr.status_code"] == "503", span
    (client,) = refused(spans)
    assert (client.service, client.kind, client.error, client.parent_id, client.attributes["dapr.status_code"]) == \
        ("caller", "CLIENT", True, "", "500")
    assert of_trace(spans, client.trace_id) == {"CLIENT": client}


def test_each_sidecar_samples_at_its_own_rate_and_callees_follow_their_caller(mesh):
    n = 400
    for i in range(n):
        status, _, _ = call(mesh, "sampler", f"/v1.0/invoke/callee/method/sample/{i}")
        assert status == 200
    # The sampler exports over OTLP/gRPC, with the Configuration's headers.
    mine = lambda spans: [s for s in spans if s.name.startswith("CallLocal/callee/sample/")]  # noqa: E731
    time.sleep(6)  # one export period
    sampled = mine(mesh.grpc.wait_for(lambda s: len(mine(s)) > 0))
    assert all(s.service == "sampler" and s.kind == "CLIENT" for s in sampled)
    # Binomial(400, 0.25): 100 expected, 60 to 140 is more than four standard deviations wide.
    assert 60 <= len(sampled) <= 140, len(sampled)
    assert all(r.get("x-tenant") == "tests" for r in mesh.grpc.requests), mesh.grpc.requests
    # The callee samples everything of its own, but follows the caller's decision: exactly the
    # sampled calls have a callee span, each the child of the caller's.
    parents = {s.trace_id: s.span_id for s in sampled}
    callee = lambda spans: [s for s in spans if s.name.startswith("CallLocal/callee/sample/")]  # noqa: E731
    spans = mesh.otlp.wait_for(lambda s: len(callee(s)) >= len(parents))
    time.sleep(1)
    children = {s.trace_id: s.parent_id for s in callee(mesh.otlp.spans)}
    assert children == parents


def test_zipkin_gets_the_same_spans_and_the_app_w3c_and_b3_context(mesh):
    status, headers, body = call(mesh, "zcaller", "/v1.0/invoke/zcallee/method/orders")
    assert status == 200
    trace_id, caller_span, _ = TRACEPARENT.match(headers["traceparent"]).groups()
    spans = of_trace(mesh.zipkin.wait_for(lambda s: len(of_trace(s, trace_id)) == 2), trace_id)
    client, server = spans["CLIENT"], spans["SERVER"]
    assert (client.service, client.name, client.span_id) == ("zcaller", "CallLocal/zcallee/orders", caller_span)
    assert (server.service, server.name, server.parent_id) == ("zcallee", "CallLocal/zcallee/orders", caller_span)
    assert server.span_id != caller_span, "each hop has a span of its own"
    received = dict(json.loads(body)["headers"])
    assert received["traceparent"] == f"00-{trace_id}-{server.span_id}-01"
    assert (received["x-b3-traceid"], received["x-b3-spanid"]) == (trace_id, server.span_id)
    assert all(r.get("content-type") == "application/json" for r in mesh.zipkin.requests)


def test_no_tracing_section_no_tracing(mesh):
    # plain's Configuration has no tracing: its sidecar has no tracer, starts no trace and
    # returns no trace context; the callee's own sidecar still traces, as a root span.
    config = json.loads((mesh.run_dir / "plain.envoy.json").read_text())
    for listener in config["static_resources"]["listeners"]:
        assert "tracing" not in listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert "dapr-tracing" not in [c["name"] for c in config["static_resources"]["clusters"]]
    status, headers, body = call(mesh, "plain", "/v1.0/invoke/callee/method/untraced-caller")
    assert status == 200
    assert "traceparent" not in headers
    trace_id, parent, _ = TRACEPARENT.match(dict(json.loads(body)["headers"])["traceparent"]).groups()
    (server,) = of_trace(mesh.otlp.wait_for(lambda s: len(of_trace(s, trace_id)) == 1), trace_id).values()
    assert (server.name, server.kind, server.parent_id, server.span_id) == \
        ("CallLocal/callee/untraced-caller", "SERVER", "", parent)
