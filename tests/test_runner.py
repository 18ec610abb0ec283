"""`dapr-envoy run -f` and `dapr-envoy config` on real run files, real apps and real Envoys.

Every process a run starts inherits a marker variable from the runner, so a test can prove that
none is left behind after the run ends, whichever way it ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import yaml

import harness
from harness import RUNNER, Run, assert_nothing_left, survivors

SAMPLES = harness.ROOT / "samples"


@pytest.fixture(scope="module", autouse=True)
def runner_built():
    if not RUNNER.is_file():
        raise RuntimeError(f"{RUNNER} is missing: run `make cli` first")


@pytest.fixture(autouse=True)
def stop_leftover_runs():
    """A test that fails (or times out) half-way still stops the runs it started."""
    before = len(Run.started)
    yield
    while len(Run.started) > before:
        Run.started.pop().stop()


# Every run file below gives each app a `daprHTTPPort` the test picked on a free ephemeral port:
# the runner's default (the first free port from 3500 up) is the same for every run on the
# machine, so two test sessions at once would race for 3500.
def quickstart(app_port: int) -> str:
    return f"""\
        version: 1
        apps:
          - appID: order-processor
            appDirPath: {SAMPLES / 'order-processor'}
            appPort: {app_port}
            daprHTTPPort: {harness.free_port()}
            command: ["python3", "app.py"]
          - appID: checkout
            appDirPath: {SAMPLES / 'checkout'}
            daprHTTPPort: {harness.free_port()}
            command: ["python3", "app.py"]
        """


def test_quickstart_run_file_delivers_every_order(tmp_path):
    run = Run(tmp_path, quickstart(harness.free_port()), "--exit-with", "checkout")
    assert run.wait() == 0, run.err
    lines = run.out.splitlines()
    for i in range(1, 11):
        assert f'== APP - checkout == Order passed: {{"orderId": {i}}}' in lines, run.out
        assert f'== APP - order-processor == Order received: {{"orderId": {i}}}' in lines, run.out
    assert 'app "checkout" exited (exit code 0)' in run.err
    assert_nothing_left(run.marker)
    # The generated configs and the sidecar logs are where the runner said.
    assert sorted(p.name for p in (tmp_path / "run").glob("*.envoy.json")) == [
        "checkout.envoy.json", "order-processor.envoy.json"]
    for path in (tmp_path / "run").glob("*.envoy.json"):
        harness.assert_protected(json.loads(path.read_text()), path.name)
    assert (tmp_path / "run/logs/checkout.envoy.log").stat().st_size > 0


def test_apps_get_daprs_variables_and_the_run_files_env(tmp_path):
    app_port = harness.free_port()
    (tmp_path / "a").mkdir()
    run = Run(tmp_path, f"""\
        version: 1
        common:
          env:
            SHARED: from-common
            LEVEL: common
        apps:
          - appID: show
            appDirPath: ./a
            appPort: {app_port}
            daprHTTPPort: {harness.free_port()}
            env:
              LEVEL: app
              FLAG: true
            command: ["sh", "-c", "env | sort | grep -E '^(APP_ID|APP_PORT|DAPR_HTTP_PORT|APP_PROTOCOL|SHARED|LEVEL|FLAG)='"]
        """)
    assert run.wait() == 0, run.err
    got = dict(line.removeprefix("== APP == ").split("=", 1) for line in run.out.splitlines())
    assert got["APP_ID"] == "show"
    assert got["APP_PORT"] == str(app_port)
    assert got["APP_PROTOCOL"] == "http"
    assert got["SHARED"] == "from-common" and got["LEVEL"] == "app" and got["FLAG"] == "true"
    assert int(got["DAPR_HTTP_PORT"]) > 0
    assert_nothing_left(run.marker)


def order_processor_and(tmp_path, *apps: tuple[str, str], pipe: bool = False) -> Run:
    """A run of the sample order-processor beside more apps: (app id, `sh -c` command) pairs."""
    others = ""
    for app_id, command in apps:
        (tmp_path / app_id).mkdir()
        others += f"""
          - appID: {app_id}
            appDirPath: ./{app_id}
            daprHTTPPort: {harness.free_port()}
            command: ["sh", "-c", "{command}"]"""
    return Run(tmp_path, f"""\
        version: 1
        apps:
          - appID: order-processor
            appDirPath: {SAMPLES / 'order-processor'}
            appPort: {harness.free_port()}
            daprHTTPPort: {harness.free_port()}
            command: ["python3", "app.py"]{others}
        """, pipe=pipe)


def test_sigterm_stops_apps_their_children_and_the_sidecars(tmp_path):
    run = order_processor_and(tmp_path, ("spawner", "sleep 300 & echo spawned; wait"))
    run.wait_for_output("== APP - spawner == spawned")
    assert len(survivors(run.marker)) >= 5  # 2 Envoys, flask, sh, sleep
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait(timeout=20) == 128 + signal.SIGTERM
    assert "received signal 15" in run.err
    assert_nothing_left(run.marker)


def test_an_app_that_crashes_stops_the_whole_run(tmp_path):
    run = order_processor_and(tmp_path, ("crasher", "echo about to fail; sleep 0.5; exit 3"))
    assert run.wait(timeout=60) == 1
    assert "== APP - crasher == about to fail" in run.out
    assert 'app "crasher" failed (exit code 3)' in run.err
    assert_nothing_left(run.marker)


def test_a_sidecar_that_dies_stops_the_whole_run(tmp_path):
    run = Run(tmp_path, quickstart(harness.free_port()))
    run.wait_for_output("== APP - checkout == Order passed")
    envoys = [line.split(":")[0] for line in survivors(run.marker) if "envoy" in line and "-c" in line]
    assert envoys
    os.kill(int(envoys[0]), signal.SIGKILL)
    assert run.wait(timeout=30) == 1
    assert "(Envoy) of" in run.err and "exited" in run.err
    assert_nothing_left(run.marker)


def test_sigkill_of_the_runner_still_stops_apps_their_children_and_the_sidecars(tmp_path):
    run = order_processor_and(tmp_path, ("spawner", "sleep 300 & echo spawned; wait"))
    run.wait_for_output("== APP - spawner == spawned")
    assert len(survivors(run.marker)) >= 5  # 2 Envoys, flask, sh, sleep
    run.proc.kill()
    assert run.wait(timeout=5) == -signal.SIGKILL
    assert_nothing_left(run.marker)  # the guard process too
    assert "the runner is gone; stopped the 4 process group(s) it had started" in run.err


def read_until(stream, *texts: str, timeout: float = 30) -> str:
    """Reads a run's piped output until every text has appeared."""
    seen = ""
    deadline = time.monotonic() + timeout
    while not all(t in seen for t in texts):
        assert time.monotonic() < deadline, f"no {texts} in:\n{seen}"
        line = stream.readline()
        assert line, f"the runner closed its output early:\n{seen}"
        seen += line.decode(errors="replace")
    return seen


def test_a_closed_stdout_neither_ends_the_run_nor_skips_the_clean_up(tmp_path):
    """`dapr-envoy run -f dapr.yaml 2>&1 | head`: once head is gone, everything the runner writes
    fails. The run goes on (here "quick" exits, which the runner reports), and SIGTERM still
    stops every app, child and sidecar."""
    run = order_processor_and(tmp_path, ("spawner", "sleep 300 & echo spawned; wait"),
                              ("quick", "echo hello; sleep 3"), pipe=True)
    read_until(run.proc.stdout, "== APP - spawner == spawned", "== APP - quick == hello")
    run.proc.stdout.close()  # head exits
    deadline = time.monotonic() + 10
    while any("echo hello" in p for p in survivors(run.marker)):
        assert time.monotonic() < deadline, survivors(run.marker)
        time.sleep(0.1)
    time.sleep(0.5)  # the runner notices the exit and reports it, into the closed pipe
    assert run.proc.poll() is None, "the runner died writing to a closed pipe"
    assert len(survivors(run.marker)) >= 5
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait(timeout=20) == 128 + signal.SIGTERM
    assert_nothing_left(run.marker)


def test_the_last_lines_of_an_app_are_never_lost(tmp_path):
    """An app that writes a burst and exits: its output pipes still hold up to 64 KiB each when
    the runner sees the exit, and every line of it reaches the console and the log."""
    (tmp_path / "burst").mkdir()
    run = Run(tmp_path, f"""\
        version: 1
        apps:
          - appID: burst
            appDirPath: ./burst
            daprHTTPPort: {harness.free_port()}
            command: ["sh", "-c", "yes x | head -n 50000; echo the end; yes y | head -n 50000 >&2; echo err end >&2"]
        """)
    assert run.wait() == 0, run.err
    lines = run.out.splitlines()
    assert lines.count("== APP == x") == 50000
    assert lines.count("== APP == y") == 50000
    assert "== APP == the end" in lines and "== APP == err end" in lines
    log = (tmp_path / "run/logs/burst.app.log").read_text().splitlines()
    assert len(log) == 100002 and "the end" in log and "err end" in log


def test_an_app_that_exits_before_opening_its_port_is_not_waited_for(tmp_path):
    for d in ("early", "after"):
        (tmp_path / d).mkdir()
    run = Run(tmp_path, f"""\
        version: 1
        apps:
          - appID: early
            appDirPath: ./early
            appPort: {harness.free_port()}
            daprHTTPPort: {harness.free_port()}
            command: ["sh", "-c", "echo leaving"]
          - appID: after
            appDirPath: ./after
            daprHTTPPort: {harness.free_port()}
            command: ["sh", "-c", "echo started after"]
        """)
    started = time.monotonic()
    assert run.wait(timeout=30) == 0, run.err  # not the 60 s of --app-port-timeout
    assert time.monotonic() - started < 20
    assert 'app "early" exited (exit code 0) before opening its port' in run.err
    assert "== APP - after == started after" in run.out
    assert_nothing_left(run.marker)


def test_a_second_run_on_the_same_run_directory_is_refused(tmp_path):
    first = order_processor_and(tmp_path, ("sleeper", "echo up; sleep 300"))
    first.wait_for_output("== APP - sleeper == up")
    ca = (tmp_path / "run/certs/ca.pem").read_bytes()
    second = subprocess.run([str(RUNNER), "run", "-f", str(first.path), "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, ENVOY_BIN=harness.envoy_bin(),
                                     DAPR_ENVOY_TEST_MARKER=first.marker.split("=", 1)[1]))
    assert second.returncode == 1
    assert (f"{tmp_path / 'run'} is in use by another dapr-envoy run (pid {first.proc.pid})"
            in second.stderr), second.stderr
    # The first run's CA, configs and logs are untouched, and it goes on.
    assert (tmp_path / "run/certs/ca.pem").read_bytes() == ca
    assert first.proc.poll() is None
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 128 + signal.SIGTERM
    assert_nothing_left(first.marker)


@pytest.mark.parametrize("run_file,message", [
    ("version: 1\napps:\n  - appID: a\n    appDirPath: .\n    comand: [x]\n",
     "dapr.yaml:5: apps[0].comand: unknown key `comand`; did you mean `command`?"),
    ("version: 1\napps:\n  - appID: a\n    appDirPath: .\n",
     'dapr.yaml:3: apps[0].command: is missing: how to start "a"'),
    ("version: 1\napps:\n  - appID: a\n    appDirPath: .\n    command: [x]\n  - appID: a\n    appDirPath: .\n    command: [y]\n",
     'dapr.yaml:6: apps[1].appID: "a" is also the id of apps[0] (line 3)'),
    ("version: 1\napps:\n  - appID: a\n    appDirPath: .\n    command: [x]\n    appPort: 7001\n"
     "  - appID: b\n    appDirPath: .\n    command: [y]\n    daprHTTPPort: 7001\n",
     "dapr.yaml:10: apps[1].daprHTTPPort: port 7001 is also apps[0].appPort (line 6)"),
])
def test_bad_run_files_are_refused_with_key_and_line(tmp_path, run_file, message):
    run = Run(tmp_path, run_file)
    assert run.wait() == 1
    assert message in run.err
    assert run.out == ""
    assert_nothing_left(run.marker)


def test_a_missing_run_file_and_a_missing_envoy_are_explained(tmp_path):
    out = subprocess.run([str(RUNNER), "run", "-f", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert out.returncode == 1
    assert "nope.yaml: cannot read the run file" in out.stderr
    (tmp_path / "a").mkdir()
    (tmp_path / "dapr.yaml").write_text("version: 1\napps:\n  - appID: a\n    appDirPath: a\n    command: [x]\n"
                                        f"    daprHTTPPort: {harness.free_port()}\n")
    out = subprocess.run([str(RUNNER), "run", "-f", str(tmp_path)], capture_output=True, text=True,
                         env=dict(os.environ, ENVOY_BIN=str(tmp_path / "no-envoy")))
    assert out.returncode == 1
    assert f"ENVOY_BIN={tmp_path / 'no-envoy'}: no such file" in out.stderr


def test_generated_configs_load_in_envoy(tmp_path):
    (tmp_path / "dapr.yaml").write_text(textwrap.dedent(quickstart(harness.free_port())))
    out = subprocess.run([str(RUNNER), "config", "-f", str(tmp_path / "dapr.yaml"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, check=True)
    written = out.stdout.split()
    assert [Path(p).name for p in written] == ["order-processor.yaml", "checkout.yaml"]
    for path in written:
        harness.assert_protected(yaml.safe_load(Path(path).read_text()), path)
        proc = subprocess.run([harness.envoy_bin(), "--mode", "validate", "-c", path], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "target app(s)" in proc.stdout + proc.stderr


def test_the_samples_run_file_with_daprs_resiliency_policy_loads_in_envoy(tmp_path):
    out = subprocess.run([str(RUNNER), "config", "-f", str(SAMPLES / "dapr.yaml"), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert 'dapr-envoy: note: ' in out.stderr and 'retry policy "retryForever" retries forever in Dapr' in out.stderr
    assert "dapr-envoy: warning: " not in out.stderr, out.stderr
    checkout = yaml.safe_load((tmp_path / "checkout.yaml").read_text())
    to_op = next(c for c in checkout["static_resources"]["clusters"] if c["name"] == "to-order-processor")
    assert to_op["outlier_detection"]["consecutive_5xx"] == 5
    proc = subprocess.run([harness.envoy_bin(), "--mode", "validate", "-c", str(tmp_path / "checkout.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_a_sub_millisecond_timeout_is_not_written_as_no_timeout(tmp_path):
    """Envoy reads a `0s` route timeout as none: 500us must become 1 ms, not 0."""
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "resiliency.yaml").write_text(textwrap.dedent("""\
        apiVersion: dapr.io/v1alpha1
        kind: Resiliency
        metadata: {name: fast}
        spec:
          policies:
            timeouts: {fast: 500us}
          targets:
            apps:
              order-processor: {timeout: fast}
        """))
    (tmp_path / "dapr.yaml").write_text(textwrap.dedent(quickstart(harness.free_port())) + "common:\n  resourcesPath: resources\n")
    subprocess.run([str(RUNNER), "config", "-f", str(tmp_path / "dapr.yaml"), "--out", str(tmp_path / "out")],
                   capture_output=True, text=True, check=True)
    checkout = yaml.safe_load((tmp_path / "out" / "checkout.yaml").read_text())
    routes = [r for listener in checkout["static_resources"]["listeners"]
              for chain in listener["filter_chains"] for f in chain["filters"]
              if "route_config" in f.get("typed_config", {})
              for vh in f["typed_config"]["route_config"]["virtual_hosts"] for r in vh["routes"]]
    to_op = [r for r in routes if r.get("route", {}).get("cluster") == "to-order-processor"]
    assert to_op, routes
    # HTTP routes carry it as their timeout, gRPC routes as the stream's (a `dapr-stream` call has
    # none: only the client's deadline).
    http = [r["route"]["timeout"] for r in to_op if "max_stream_duration" not in r["route"]]
    grpc = [r["route"]["max_stream_duration"] for r in to_op if "max_stream_duration" in r["route"]]
    assert http == ["0.001s"]
    assert grpc == [{"grpc_timeout_header_max": "0s"},
                    {"max_stream_duration": "0.001s", "grpc_timeout_header_max": "0.001s"}]


@pytest.mark.parametrize("resource,message", [
    ("kind: Resiliency\nspec:\n  policies:\n    timeouts:\n      t: 99999999999999999999h\n",
     'resiliency.yaml:5: spec.policies.timeouts.t: "99999999999999999999h" is longer than a duration can be'),
    ("kind: Resiliency\nspec:\n  policys: {}\n",
     "resiliency.yaml:3: spec.policys: unknown key `policys`; did you mean `policies`?"),
    ("kind: Resiliency\nspec: {policies: {timeouts: {t: 5s}}\n", "resiliency.yaml:2: not valid YAML"),
])
def test_bad_resiliency_files_are_refused_with_file_and_line(tmp_path, resource, message):
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "resiliency.yaml").write_text(resource)
    (tmp_path / "dapr.yaml").write_text(textwrap.dedent(quickstart(harness.free_port())) + "common:\n  resourcesPath: resources\n")
    out = subprocess.run([str(RUNNER), "config", "-f", str(tmp_path / "dapr.yaml"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    assert message in out.stderr
    assert "panicked" not in out.stderr


def test_certs_take_a_dotted_trust_domain(tmp_path):
    out = subprocess.run([str(RUNNER), "certs", "--out", str(tmp_path), "--trust-domain", "example.org", "checkout"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "spiffe://example.org/ns/default/checkout" in out.stdout
