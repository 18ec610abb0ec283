"""`dapr-envoy list`, as `dapr list`: the apps of a live run with their ports, pids and age, and
live request rates and error counts read from their sidecars, through a real `dapr-envoy run`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import harness

APPS = Path(__file__).resolve().parent / "apps"


def list_json(*args: str) -> list[dict]:
    out = subprocess.run([str(harness.RUNNER), "list", "-o", "json", *args], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return json.loads(out)


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_list_shows_the_runs_apps_with_live_rates_and_errors(tmp_path):
    ports = {k: harness.free_port() for k in ("callee_app", "callee_http", "caller_http",
                                              "callee_metrics", "caller_metrics")}
    run = harness.Run(tmp_path, f"""\
        version: 1
        apps:
          - appID: callee
            appDirPath: {APPS}
            appPort: {ports['callee_app']}
            daprHTTPPort: {ports['callee_http']}
            metricsPort: {ports['callee_metrics']}
            command: ["python3", "echo.py"]
          - appID: caller
            appDirPath: {APPS}
            daprHTTPPort: {ports['caller_http']}
            metricsPort: {ports['caller_metrics']}
            command: ["sleep", "600"]
        """)
    run_dir = tmp_path / "run"
    stop = threading.Event()
    try:
        harness.wait_for_port(ports["callee_app"], timeout=60, proc=run.proc)
        deadline = time.monotonic() + 30
        while not any(r["appId"] == "caller" and r["appPid"] for r in list_json("--run-dir", str(run_dir),
                                                                                "--interval", "0")):
            assert time.monotonic() < deadline, f"not listed:\n{run.out}\n{run.err}"
            time.sleep(0.2)
        # Three refused calls (an app nobody configured), then a steady ~20 calls a second.
        for _ in range(3):
            assert harness.request(ports["caller_http"], "GET", "/x", {"dapr-app-id": "nope"})[0] == 500

        def load():
            while not stop.is_set():
                try:
                    harness.request(ports["caller_http"], "GET", "/v1.0/invoke/callee/method/orders")
                except OSError:
                    pass  # the run stopping, or a sidecar killed below
                time.sleep(0.05)
        threading.Thread(target=load, daemon=True).start()
        time.sleep(1)

        rows = {r["appId"]: r for r in list_json("--run-dir", str(run_dir), "--interval", "2")}
        assert set(rows) == {"callee", "caller"}
        callee, caller = rows["callee"], rows["caller"]
        assert (callee["httpPort"], callee["appPort"], callee["metricsPort"]) == \
            (ports["callee_http"], ports["callee_app"], ports["callee_metrics"])
        assert (caller["httpPort"], caller["appPort"], caller["metricsPort"]) == \
            (ports["caller_http"], None, ports["caller_metrics"])
        for row in rows.values():
            assert row["cliPid"] == run.proc.pid
            assert "envoy" in cmdline(row["envoyPid"])
            assert row["runFile"] == str((tmp_path / "dapr.yaml").resolve())
            assert row["created"][:4].isdigit() and row["age"].endswith("s")
        assert "echo.py" in cmdline(callee["appPid"]) and "sleep 600" in cmdline(caller["appPid"])
        assert callee["command"] == "python3 echo.py"
        # Live rates: the caller's sidecar sends what the callee's receives.
        assert 5 < caller["sentPerSecond"] < 40, caller
        assert 5 < callee["receivedPerSecond"] < 40, callee
        assert caller["receivedPerSecond"] == 0 and callee["sentPerSecond"] == 0
        assert (caller["errors"], callee["errors"]) == (3, 0)

        # Without --run-dir: every live run of this user, ours among them.
        assert {r["appId"] for r in list_json("--interval", "0") if r["cliPid"] == run.proc.pid} == \
            {"callee", "caller"}
        table = subprocess.run([str(harness.RUNNER), "list", "--run-dir", str(run_dir), "--interval", "0"],
                               capture_output=True, text=True, timeout=30, check=True).stdout
        head, *lines = table.splitlines()
        assert head.split()[:4] == ["APP", "ID", "HTTP", "PORT"] and "ERRORS" in head
        assert [line.split()[0] for line in lines] == ["callee", "caller"]

        # The runner starts a killed sidecar again: the list shows the new Envoy's pid.
        old = callee["envoyPid"]
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            row = {r["appId"]: r for r in list_json("--run-dir", str(run_dir), "--interval", "0")}["callee"]
            if row["envoyPid"] != old:
                break
            assert time.monotonic() < deadline, f"still the killed pid:\n{run.out}\n{run.err}"
            time.sleep(0.2)
        assert "envoy" in cmdline(row["envoyPid"])
    finally:
        stop.set()
        run.stop()
    # A run that ended is not listed.
    assert list_json("--run-dir", str(run_dir)) == []
    out = subprocess.run([str(harness.RUNNER), "list", "--run-dir", str(run_dir)], capture_output=True,
                         text=True, timeout=30).stdout
    assert out == "No Dapr instances found.\n"
