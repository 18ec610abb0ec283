"""Dapr's gRPC service invocation through `dapr-envoy run`: an app's gRPC stub points at its sidecar's
DAPR_GRPC_PORT with `dapr-app-id` metadata, and the call reaches the callee app over the mesh
(HTTP/2, mutual TLS) — unary and every kind of stream, metadata and trailers both ways, large
messages, gRPC errors with Dapr's codes, access control by full method name, retries on the codes a
resiliency policy names, timeouts and deadlines, and a callee that dies mid-stream. The peers are
grpcio clients and servers built from tests/apps/echo.proto."""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

import harness

APPS = Path(__file__).resolve().parent / "apps"
sys.path.insert(0, str(APPS))
protos, services = grpc.protos_and_services("echo.proto")

CALLER_TOKEN = "caller-grpc-s3cret"
APP_TOKEN = "guarded-app-s3cret"
MIB = 1024 * 1024

RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: grpc
spec:
  policies:
    timeouts:
      quick: 1s
    retries:
      onUnavailable:
        policy: constant
        duration: 50ms
        maxRetries: 3
        matching:
          gRPCStatusCodes: "14"
    circuitBreakers:
      tripAtThree:
        maxRequests: 1
        timeout: 2s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      resilient:
        timeout: quick
        retry: onUnavailable
      fragile:
        circuitBreaker: tripAtThree
"""

# The guarded app lets the caller call one method and no other; operation names are gRPC's full
# method names, case-sensitive, and verbs mean nothing for gRPC.
ACCESS_CONTROL = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: guarded
spec:
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
      - appId: caller
        defaultAction: deny
        trustDomain: public
        namespace: default
        operations:
          - name: /echo.Echo/Unary
            httpVerb: ["GET"]
            action: allow
          - name: /echo.Echo/Bidi
            action: deny
"""


@dataclass
class Mesh:
    run: harness.Run
    grpc_port: int   # the caller's DAPR_GRPC_PORT (its sidecar requires CALLER_TOKEN)
    channel: grpc.Channel
    stub: services.EchoStub


def meta(app: str | None, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    head = (("dapr-api-token", CALLER_TOKEN),) + ((("dapr-app-id", app),) if app else ())
    return head + extra


def grpc_app(name: str, port: int, *lines: str) -> str:
    return "\n".join([f"  - appID: {name}", f"    appDirPath: {APPS}", f"    appPort: {port}",
                      "    appProtocol: grpc", '    command: ["python3", "grpc_echo.py"]', *lines])


def wait_started(run: harness.Run, app: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while f'started app "{app}"' not in run.err:
        assert run.proc.poll() is None, f"runner exited:\n{run.out}\n{run.err}"
        assert time.monotonic() < deadline, run.err
        time.sleep(0.1)


def ready(stub, app: str, timeout: float = 30) -> None:
    """Until the app answers through the mesh (its server may start after its sidecar)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stub.Unary(protos.Msg(key="ready"), metadata=meta(app), timeout=5)
            return
        except grpc.RpcError as e:
            assert time.monotonic() < deadline, f"{app}: {e.code()} {e.details()}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpc")
    (tmp / "resources").mkdir()
    (tmp / "resources/resiliency.yaml").write_text(RESILIENCY)
    (tmp / "guarded.yaml").write_text(ACCESS_CONTROL)
    certs = harness.make_certs(tmp / "app-tls", "secure")
    ports = {k: harness.free_port() for k in ("echo", "resilient", "guarded", "secure", "fragile", "gone",
                                             "grpc")}
    apps = [
        grpc_app("echo", ports["echo"], "    env:", f"      GRPC_MAX_MESSAGE: '{16 * MIB}'"),
        grpc_app("resilient", ports["resilient"]),
        grpc_app("fragile", ports["fragile"]),
        grpc_app("guarded", ports["guarded"], f"    configFilePath: {tmp / 'guarded.yaml'}",
                 "    env:", f"      APP_API_TOKEN: {APP_TOKEN}"),
        grpc_app("secure", ports["secure"], "    env:", f"      TLS_CERT: {certs / 'secure.pem'}",
                 f"      TLS_KEY: {certs / 'secure.key'}").replace("appProtocol: grpc", "appProtocol: grpcs"),
        f"""\
  - appID: gone
    appDirPath: {APPS}
    appPort: {ports['gone']}
    appProtocol: grpc
    command: ["sleep", "600"]
  - appID: caller
    appDirPath: {APPS}
    daprGRPCPort: {ports['grpc']}
    command: ["sleep", "600"]
    env:
      DAPR_API_TOKEN: {CALLER_TOKEN}""",
    ]
    run = harness.Run(tmp, "version: 1\ncommon:\n  resourcesPath: ./resources\napps:\n" + "\n".join(apps) + "\n",
                      "--app-port-timeout", "1")
    channel = None
    try:
        wait_started(run, "caller")
        channel = grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}", options=[
            ("grpc.max_receive_message_length", 16 * MIB), ("grpc.max_send_message_length", 16 * MIB)])
        stub = services.EchoStub(channel)
        for app in ("echo", "resilient", "guarded", "secure", "fragile"):
            if app != "guarded":
                ready(stub, app)
        yield Mesh(run, ports["grpc"], channel, stub)
    finally:
        if channel:
            channel.close()
        run.stop()
        harness.assert_nothing_left(run.marker)


def fails(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(*args, **kwargs)
    return e.value


def test_the_runner_gives_the_app_its_grpc_port(mesh):
    assert f"DAPR_GRPC_PORT {mesh.grpc_port}," in mesh.run.err


def test_a_unary_call_reaches_the_app_named_in_metadata(mesh):
    reply, call = mesh.stub.Unary.with_call(protos.Msg(text="hello", data=b"\x00\xff"),
                                            metadata=meta("echo", ("x-custom", "from-client"),
                                                          ("x-blob-bin", b"\x01\x02")))
    assert (reply.text, reply.data) == ("hello", b"\x00\xff")
    seen = dict(reply.metadata)
    assert seen["x-custom"] == "from-client"
    assert seen["dapr-caller-app-id"] == "caller"
    assert seen["dapr-callee-app-id"] == "echo"
    # What only the caller's sidecar should see never reaches the app.
    assert "dapr-app-id" not in seen and "dapr-api-token" not in seen
    # daprd's gRPC proxy adds no forwarding headers; neither do the sidecars here.
    assert not {"forwarded", "x-forwarded-for", "x-forwarded-host"} & seen.keys(), seen
    assert ("x-app", "echo") in call.initial_metadata()
    assert ("x-trailer", "done") in call.trailing_metadata()


def test_the_namespace_form_and_the_callee_key(mesh):
    assert mesh.stub.Unary(protos.Msg(text="ns"), metadata=meta("echo.default")).text == "ns"
    # dapr-callee-app-id wins over dapr-app-id, as daprd reads them.
    reply = mesh.stub.Unary(protos.Msg(text="callee"),
                            metadata=meta("gone", ("dapr-callee-app-id", "echo")))
    assert dict(reply.metadata)["dapr-callee-app-id"] == "echo"


def test_a_hostile_caller_cannot_steer_or_forge_identity(mesh):
    reply, call = mesh.stub.Unary.with_call(protos.Msg(text="x"), metadata=meta(
        "echo", ("x-dapr-cluster", "to-guarded"), ("dapr-caller-app-id", "admin"),
        ("dapr-caller-namespace", "kube-system")))
    assert ("x-app", "echo") in call.initial_metadata()
    seen = dict(reply.metadata)
    assert (seen["dapr-caller-app-id"], seen["dapr-caller-namespace"]) == ("caller", "default")


def test_server_client_and_bidirectional_streams(mesh):
    md = meta("echo")
    got = [m.text for m in mesh.stub.ServerStream(protos.Msg(text="s", count=5), metadata=md)]
    assert got == [f"s {i}" for i in range(5)]
    reply = mesh.stub.ClientStream(iter([protos.Msg(text=t, data=b"ab") for t in "xyz"]), metadata=md)
    assert (reply.text, reply.count, reply.calls) == ("x,y,z", 6, 3)
    got = [m.text for m in mesh.stub.Bidi(iter([protos.Msg(text=t) for t in ("a", "b", "c")]), metadata=md)]
    assert got == ["A", "B", "C"]


def test_bidirectional_messages_interleave(mesh):
    """A bidirectional stream is not buffered: each reply comes before the next request is sent."""
    import queue
    requests: queue.Queue = queue.Queue()
    requests.put(protos.Msg(text="ping 0"))

    def produce():
        while (m := requests.get()) is not None:
            yield m

    answers = mesh.stub.Bidi(produce(), metadata=meta("echo"))
    for i in range(1, 4):
        assert next(answers).text == f"PING {i - 1}"
        requests.put(protos.Msg(text=f"ping {i}"))
    assert next(answers).text == "PING 3"
    requests.put(None)
    assert list(answers) == []


def test_messages_over_4_mib_pass_when_the_apps_take_them(mesh):
    """Dapr refuses a message over 4 MiB (its maxBodySize) with RESOURCE_EXHAUSTED; the sidecars
    here put no limit on a gRPC message: the apps' own gRPC limits apply."""
    big = os.urandom(5 * MIB)
    reply = mesh.stub.Unary(protos.Msg(data=big), metadata=meta("echo"))
    assert reply.data == big
    # An app with gRPC's default limit refuses it itself, with gRPC's code for it.
    e = fails(mesh.stub.Unary, protos.Msg(data=big), metadata=meta("secure"))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.details()


def test_an_apps_own_status_message_and_trailers_pass_unchanged(mesh):
    e = fails(mesh.stub.Unary, protos.Msg(fail_code=5, key="own-status"), metadata=meta("echo"))
    assert (e.code(), e.details()) == (grpc.StatusCode.NOT_FOUND, "failed on purpose (1)")
    assert ("x-failed", "5") in e.trailing_metadata()


@pytest.mark.parametrize("metadata,code,message", [
    (meta("nope"), grpc.StatusCode.UNKNOWN, 'no app "nope" in namespace "default"'),
    (meta(None), grpc.StatusCode.UNKNOWN,
     "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found"),
    (meta("a.b.c"), grpc.StatusCode.UNKNOWN, "invalid app id"),
    ((("dapr-app-id", "echo"),), grpc.StatusCode.UNAUTHENTICATED, "Unauthorized"),
    ((("dapr-app-id", "echo"), ("dapr-api-token", "wrong")), grpc.StatusCode.UNAUTHENTICATED, "Unauthorized"),
    (meta("gone"), grpc.StatusCode.UNAVAILABLE, "failed to invoke, id: gone"),
], ids=["unknown-app", "no-app-id", "bad-app-id", "no-token", "wrong-token", "app-unavailable"])
def test_refusals_are_grpc_errors_with_daprs_codes(mesh, metadata, code, message):
    e = fails(mesh.stub.Unary, protos.Msg(), metadata=metadata, timeout=10)
    assert e.code() == code, e.details()
    assert message in e.details()


def test_a_refusal_is_a_trailers_only_grpc_response(mesh):
    """What a client without a gRPC library sees: HTTP 200, grpc-status and grpc-message."""
    status, headers, body, reset = harness.h2_request(mesh.grpc_port, [
        (":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
        (":path", "/echo.Echo/Unary"), ("content-type", "application/grpc"), ("te", "trailers"),
        ("dapr-api-token", CALLER_TOKEN), ("dapr-app-id", "nope")], body=b"\x00\x00\x00\x00\x00")
    assert (status, reset, body) == (200, None, b"")
    assert headers["content-type"] == "application/grpc"
    assert headers["grpc-status"] == "2"
    assert "nope" in headers["grpc-message"]


def test_retries_on_unavailable_only_when_the_policy_says_so(mesh):
    # resilient: retried on UNAVAILABLE, 3 times; two failures are hidden.
    reply = mesh.stub.Unary(protos.Msg(fail_code=14, fail_times=2, key="r1"), metadata=meta("resilient"))
    assert reply.calls == 3
    # A code the policy does not match is not retried.
    e = fails(mesh.stub.Unary, protos.Msg(fail_code=13, fail_times=1, key="r2"), metadata=meta("resilient"))
    assert e.code() == grpc.StatusCode.INTERNAL
    assert mesh.stub.Unary(protos.Msg(key="r2"), metadata=meta("resilient")).calls == 2
    # echo has no policy: its UNAVAILABLE reaches the caller after one call.
    e = fails(mesh.stub.Unary, protos.Msg(fail_code=14, fail_times=2, key="r3"), metadata=meta("echo"))
    assert (e.code(), e.details()) == (grpc.StatusCode.UNAVAILABLE, "failed on purpose (1)")


def test_the_policy_timeout_is_a_deadline_exceeded(mesh):
    started = time.monotonic()
    e = fails(mesh.stub.Unary, protos.Msg(sleep=5, key="t1"), metadata=meta("resilient"), timeout=20)
    elapsed = time.monotonic() - started
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.details()
    assert elapsed < 4, elapsed


def test_a_stream_marked_dapr_stream_has_no_timeout(mesh):
    """As in Dapr: `dapr-stream: true` takes the call out of the policy (no timeout, no retry)."""
    slow = protos.Msg(text="s", count=3, sleep=0.6)
    got = [m.text for m in mesh.stub.ServerStream(slow, metadata=meta("resilient", ("dapr-stream", "True")))]
    assert got == ["s 0", "s 1", "s 2"]
    # The same stream under the policy's 1 s timeout is cut after the first message. The app has
    # begun answering, so the sidecar can only reset the stream (gRPC reads it as INTERNAL; Dapr
    # sends DEADLINE_EXCEEDED).
    got, started = [], time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        for m in mesh.stub.ServerStream(slow, metadata=meta("resilient")):
            got.append(m.text)
    assert got == ["s 0"]
    assert e.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL)
    assert time.monotonic() - started < 1.5
    # Before the first message, it is DEADLINE_EXCEEDED.
    e = fails(lambda: list(mesh.stub.ServerStream(protos.Msg(count=1, sleep=3), metadata=meta("resilient"))))
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.details()
    # A stream is never retried, whatever the policy.
    e = fails(mesh.stub.Unary, protos.Msg(fail_code=14, fail_times=1, key="s1"),
              metadata=meta("resilient", ("dapr-stream", "1")))
    assert e.code() == grpc.StatusCode.UNAVAILABLE


def test_the_circuit_breaker_opens_on_failed_calls_and_closes_after_its_timeout(mesh):
    for i in range(3):
        e = fails(mesh.stub.Unary, protos.Msg(fail_code=13, key="cb"), metadata=meta("fragile"))
        assert e.details() == f"failed on purpose ({i + 1})"
    # Open: the call fails fast in the caller's sidecar, and never reaches the app.
    deadline = time.monotonic() + 5
    while True:
        e = fails(mesh.stub.Unary, protos.Msg(key="cb"), metadata=meta("fragile"))
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            break
        assert time.monotonic() < deadline, (e.code(), e.details())  # ejection runs every 100 ms
        time.sleep(0.05)
    assert "failed to invoke, id: fragile" in e.details() and "(UH)" in e.details(), e.details()
    # After the breaker's 2 s, calls go through again.
    deadline = time.monotonic() + 10
    while True:
        try:
            reply = mesh.stub.Unary(protos.Msg(key="cb"), metadata=meta("fragile"))
            break
        except grpc.RpcError as e:
            assert time.monotonic() < deadline, (e.code(), e.details())
            time.sleep(0.2)
    assert reply.calls >= 4


def test_the_sidecar_honours_the_clients_grpc_timeout(mesh):
    """A client that sends `grpc-timeout` and does not enforce it itself still gets its answer at the
    deadline: the sidecar ends the call."""
    started = time.monotonic()
    status, headers, _, reset = harness.h2_request(mesh.grpc_port, [
        (":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
        (":path", "/echo.Echo/Unary"), ("content-type", "application/grpc"), ("te", "trailers"),
        ("grpc-timeout", "700m"), ("dapr-api-token", CALLER_TOKEN), ("dapr-app-id", "echo")],
        body=grpc_frame(protos.Msg(sleep=5, key="deadline")), timeout=20)
    elapsed = time.monotonic() - started
    assert (status, reset) == (200, None)
    assert headers.get("grpc-status") == "4", headers
    assert elapsed < 3, elapsed


def grpc_frame(msg) -> bytes:
    data = msg.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


def test_access_control_by_full_method_name(mesh):
    # guarded has APP_API_TOKEN: its app gets that token, never the caller's.
    reply = mesh.stub.Unary(protos.Msg(text="allowed"), metadata=meta("guarded"))
    assert reply.text == "allowed"
    assert dict(reply.metadata)["dapr-api-token"] == APP_TOKEN
    e = fails(lambda: list(mesh.stub.ServerStream(protos.Msg(count=1), metadata=meta("guarded"))))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
    assert e.details() == ("access control policy has denied access to id: spiffe://public/ns/default/caller "
                           "operation: /echo.Echo/ServerStream verb: NONE")
    e = fails(lambda: list(mesh.stub.Bidi(iter([protos.Msg()]), metadata=meta("guarded"))))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    # Case-sensitive: another spelling of the allowed method is another operation.
    lower = mesh.channel.unary_unary("/echo.Echo/unary", request_serializer=protos.Msg.SerializeToString,
                                     response_deserializer=protos.Msg.FromString)
    e = fails(lower, protos.Msg(), metadata=meta("guarded"))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()


def test_a_grpcs_app_is_reached_over_tls(mesh):
    reply = mesh.stub.Unary(protos.Msg(text="tls"), metadata=meta("secure"))
    assert reply.text == "tls"


@pytest.fixture
def pair(tmp_path):
    ports = {k: harness.free_port() for k in ("victim", "grpc")}
    # The app's server runs under a shell that outlives it, so that its death does not end the run.
    victim = grpc_app("victim", ports["victim"]).replace(
        '["python3", "grpc_echo.py"]', '["sh", "-c", "python3 grpc_echo.py; exit 0"]')
    run = harness.Run(tmp_path, "version: 1\napps:\n" + victim + f"""
  - appID: caller
    appDirPath: {APPS}
    daprGRPCPort: {ports['grpc']}
    command: ["sleep", "600"]
    env:
      DAPR_API_TOKEN: {CALLER_TOKEN}
""")
    try:
        wait_started(run, "caller")
        with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
            stub = services.EchoStub(channel)
            ready(stub, "victim")
            yield run, stub
    finally:
        run.stop()
        harness.assert_nothing_left(run.marker)


def test_a_callee_killed_mid_stream_ends_the_stream_with_an_error(pair):
    run, stub = pair
    stream = stub.ServerStream(protos.Msg(text="k", count=50, sleep=0.2), metadata=meta("victim"), timeout=30)
    first = next(stream)
    assert first.text == "k 0"
    os.kill(first.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        for _ in stream:
            pass
    # The caller learns at once, not at its deadline. Envoy resets the stream (Dapr would send
    # UNAVAILABLE trailers): gRPC reads the reset as INTERNAL.
    assert time.monotonic() - started < 5
    assert e.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE), e.value.details()
    # The next call finds no app: UNAVAILABLE.
    e = fails(stub.Unary, protos.Msg(), metadata=meta("victim"), timeout=10)
    assert e.code() == grpc.StatusCode.UNAVAILABLE, e.details()
    assert run.proc.poll() is None, run.err


def test_the_grpc_sample_delivers_every_order(tmp_path):
    """samples/grpc/dapr.yaml as shipped (`make demo-grpc`), on free ports."""
    import yaml
    sample = harness.ROOT / "samples/grpc"
    run_file = yaml.safe_load((sample / "dapr.yaml").read_text())
    for app in run_file["apps"]:
        app["appDirPath"] = str((sample / app["appDirPath"]).resolve())
        app["daprHTTPPort"] = harness.free_port()
        if "appPort" in app:
            app["appPort"] = harness.free_port()
        if "configFilePath" in app:
            app["configFilePath"] = str((sample / app["configFilePath"]).resolve())
    run = harness.Run(tmp_path, yaml.safe_dump(run_file), "--exit-with", "checkout")
    assert run.wait(timeout=120) == 0, run.out + run.err
    lines = run.out.splitlines()
    for i in range(1, 11):
        assert f'== APP - checkout == Order passed: {{"orderId": {i}}}' in lines, run.out
        assert f'== APP - order-processor == Order received: {{"orderId": {i}}} from checkout' in lines, run.out
    harness.assert_nothing_left(run.marker)


def test_dapr_metrics_count_grpc_calls_by_target_and_kind(mesh):
    """The caller's metrics port counts gRPC calls as daprd's proxy does: requests sent per target
    app, `type` unary or streaming (a call marked `dapr-stream`), responses by status."""
    import re

    import requests
    from prometheus_client.parser import text_string_to_metric_families

    port = int(re.search(r'sidecar of "caller" ready: .*? metrics (\d+),', mesh.run.err).group(1))

    def sent() -> dict[str, float]:
        text = requests.get(f"http://127.0.0.1:{port}/stats/prometheus", timeout=5).text
        return {s.labels["type"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "dapr_runtime_service_invocation_req_sent_total"
                and s.labels["dst_app_id"] == "echo"}

    before = sent()
    for _ in range(3):
        mesh.stub.Unary(protos.Msg(text="m"), metadata=meta("echo"))
    assert len(list(mesh.stub.ServerStream(protos.Msg(text="s", count=2),
                                           metadata=meta("echo", ("dapr-stream", "true"))))) == 2
    after = sent()
    assert after["unary"] - before["unary"] == 3
    assert after["streaming"] - before["streaming"] == 1
