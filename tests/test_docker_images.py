"""The images compose files name, on a real Docker engine: where no registry is reachable these
are the local stand-ins (tests/docker/images.sh), and they must behave like the official images
wherever a compose file depends on it: Envoy's version, its user (uid/gid 101, never root unless
ENVOY_UID=0), its entrypoint and tools; Python 3.11 whose pip installs the samples' requirements.
Against the official images (pulled, not built here) the same tests hold, except the offline pip
install, which only the stand-in's preinstalled packages make possible."""
import subprocess
import textwrap
import time
import uuid

import pytest

import docker_env
import harness

ENVOY_VERSION = docker_env.dotenv("ENVOY_VERSION")
ENVOY_IMAGE = f"envoyproxy/envoy:v{ENVOY_VERSION}"
PYTHON_IMAGE = "python:3.11-slim"

pytestmark = pytest.mark.usefixtures("docker_engine")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", "run", "--rm", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker run {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


@pytest.mark.parametrize("args", [["envoy", "--version"], ["--version"]], ids=["envoy", "flag-only"])
def test_envoy_image_is_the_pinned_version(args):
    assert f"/{ENVOY_VERSION}/" in run(ENVOY_IMAGE, *args).stdout


def test_envoy_runs_as_uid_101_by_default():
    name = f"dapr-envoy-test-{uuid.uuid4().hex[:10]}"
    subprocess.run(["docker", "run", "--detach", "--name", name, ENVOY_IMAGE], check=True,
                   capture_output=True, timeout=60)
    try:
        # PID 1 is the entrypoint until it execs Envoy.
        deadline = time.monotonic() + 20
        while True:
            status = subprocess.run(["docker", "exec", name, "cat", "/proc/1/status"], capture_output=True,
                                    text=True, timeout=30, check=True).stdout
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields["Name"].strip() == "envoy" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert fields["Name"].strip() == "envoy"
        assert fields["Uid"].split() == ["101"] * 4
        assert fields["Gid"].split() == ["101"] * 4
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, timeout=60)


def validate_as_entrypoint(owner: str, *env: str) -> subprocess.CompletedProcess:
    """`envoy --mode validate` through the image's entrypoint on a config only `owner` may read."""
    script = textwrap.dedent(f"""\
        printf '{{}}\\n' > /tmp/only-{owner}.yaml
        chown {owner} /tmp/only-{owner}.yaml
        chmod 0400 /tmp/only-{owner}.yaml
        exec /docker-entrypoint.sh envoy --mode validate -c /tmp/only-{owner}.yaml
    """)
    return run(*env, "--entrypoint", "bash", ENVOY_IMAGE, "-c", script, check=False)


def test_envoy_reads_what_uid_101_may_read_and_nothing_only_root_may():
    assert validate_as_entrypoint("envoy").returncode == 0
    refused = validate_as_entrypoint("root")
    assert refused.returncode != 0
    assert "unable to read file" in refused.stdout + refused.stderr


def test_envoy_uid_0_keeps_root():
    assert validate_as_entrypoint("root", "-e", "ENVOY_UID=0").returncode == 0
    assert run("-e", "ENVOY_UID=0", ENVOY_IMAGE, "id", "-u").stdout.strip() == "0"


def test_entrypoint_drops_any_command_to_the_envoy_user():
    assert run(ENVOY_IMAGE, "id").stdout.split() == ["uid=101(envoy)", "gid=101(envoy)", "groups=101(envoy)"]


def test_envoy_image_has_the_official_images_tools_only():
    """A compose file may use bash (a healthcheck's /dev/tcp), su-exec, install and grep as in the
    official image; curl, wget and python are not there, in the official image or in this one."""
    script = ("for c in bash sh id install grep su-exec curl wget python3; do"
              " command -v $c >/dev/null && echo $c; done; true")
    assert run("--entrypoint", "sh", ENVOY_IMAGE, "-c", script).stdout.split() == [
        "bash", "sh", "id", "install", "grep", "su-exec"]


def test_su_exec_switches_to_the_named_user():
    out = run("-e", "ENVOY_UID=0", ENVOY_IMAGE, "su-exec", "envoy", "sh", "-c", "id; echo $HOME").stdout.split()
    assert out == ["uid=101(envoy)", "gid=101(envoy)", "groups=101(envoy)", "/home/envoy"]
    assert run("-e", "ENVOY_UID=0", ENVOY_IMAGE, "/usr/local/bin/su-exec", "101:101", "id", "-u").stdout.strip() == "101"


@pytest.mark.parametrize("app", ["checkout", "order-processor"])
def test_python_image_installs_the_samples_requirements_without_network(app):
    folder = harness.ROOT / "samples" / app
    pins = dict(line.split("==") for line in (folder / "requirements.txt").read_text().split())
    check = "; ".join(["import importlib.metadata as m, sys, flask, requests",
                       f"pins = {pins!r}",
                       "assert sys.version_info[:2] == (3, 11), sys.version",
                       "assert {p: m.version(p) for p in pins} == pins, [m.version(p) for p in pins]"])
    out = run("--network", "none", "--volume", f"{folder}:/app:ro", "--workdir", "/app", PYTHON_IMAGE,
              "sh", "-c", 'pip install --quiet --no-cache-dir -r requirements.txt && exec python -c "$0"', check)
    assert "externally-managed" not in out.stderr


def test_python_image_has_the_official_names_for_python_and_pip():
    out = run(PYTHON_IMAGE, "sh", "-c", "for c in python python3 pip; do command -v $c; done; python --version"
              ).stdout.split()
    assert out[:3] == ["/usr/local/bin/python", "/usr/local/bin/python3", "/usr/local/bin/pip"]
    assert out[3] == "Python" and out[4].startswith("3.11."), out


ENVOY_CONFIG = """\
static_resources:
  listeners:
    - name: hello
      address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: hello
                route_config:
                  virtual_hosts:
                    - name: hello
                      domains: ["*"]
                      routes: [{ match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "hello from envoy" } } }]
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
"""


def test_compose_project_runs_and_leaves_nothing_behind(compose, tmp_path):
    """Both images in one compose project, a healthcheck with bash as the official image allows,
    a named volume; then `down` leaves no container, network or volume of the project."""
    (tmp_path / "envoy.yaml").write_text(ENVOY_CONFIG)
    (tmp_path / "envoy.yaml").chmod(0o644)
    (tmp_path / "docker-compose.yaml").write_text(textwrap.dedent(f"""\
        services:
          proxy:
            image: {ENVOY_IMAGE}
            command: ["envoy", "-c", "/etc/hello.yaml", "--log-level", "warn"]
            volumes: ["./envoy.yaml:/etc/hello.yaml:ro"]
            healthcheck:
              test: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/10000"]
              interval: 1s
              retries: 30
          client:
            image: {PYTHON_IMAGE}
            command: ["python", "-c", "import urllib.request; print('got:', urllib.request.urlopen('http://proxy:10000/').read().decode())"]
            volumes: ["scratch:/scratch"]
            depends_on:
              proxy: {{ condition: service_healthy }}
        volumes:
          scratch: {{}}
    """))
    up = compose(tmp_path, tmp_path / "docker-compose.yaml", "up", "--abort-on-container-exit",
                 "--exit-code-from", "client")
    assert "got: hello from envoy" in up.stdout
    left = compose.leftovers()
    assert len(left["container"]) == 2 and len(left["network"]) == 1 and len(left["volume"]) == 1, left
    assert compose.down() == []
    assert compose.leftovers() == {"container": [], "network": [], "volume": []}
