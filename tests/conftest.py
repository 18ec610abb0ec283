"""Fixtures shared by the integration tests. Everything a test starts is stopped after it, and the
logs of its Envoys are printed when it fails."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docker_env  # noqa: E402
import harness  # noqa: E402
from harness import Envoy, Upstream  # noqa: E402

# The plugin configuration of the example: one app in our namespace, one in another.
EXAMPLE_PLUGIN_CONFIG = {
    "app_id": "checkout",
    "namespace": "default",
    "apps": {
        "order-processor": {"cluster": "order-processor"},
        "payments.prod": {"cluster": "payments-prod"},
    },
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for env in getattr(item, "_envoys", []):
            rep.sections.append((f"{env.name} log (tail)", env.log_tail(60)))
        for project in getattr(item, "_compose_projects", []):
            rep.sections.append((f"docker-compose logs of {project.name} (tail)", project.logs()))


@pytest.fixture(scope="session")
def mesh_certs(tmp_path_factory) -> Path:
    """The quickstart's mesh: a CA and certificates for checkout and order-processor."""
    return harness.make_certs(tmp_path_factory.mktemp("certs"), "checkout", "order-processor")


@pytest.fixture
def start_envoy(request, tmp_path):
    started: list[Envoy] = []
    request.node._envoys = started

    def start(cfg: dict, name: str = "envoy", log_level: str = "info") -> Envoy:
        env = Envoy(cfg, tmp_path, name, log_level)
        started.append(env)
        return env.start()

    yield start
    for env in started:
        env.stop()


@pytest.fixture
def start_upstream():
    started: list[Upstream] = []

    def start(name: str) -> Upstream:
        up = Upstream(name).start()
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()


@dataclass
class Sidecar:
    envoy: Envoy
    port: int
    apps: dict[str, Upstream]

    def call(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
        return harness.request(self.port, method, path, headers, body)


def checkout_sidecar_config(plugin: dict | str, upstreams: dict[str, Upstream]) -> tuple[dict, int]:
    """envoy/checkout.yaml on free ports, with `plugin` as the filter's configuration and
    one cluster per upstream, named by its key. Returns the config and the outbound port."""
    cfg = harness.load_config("checkout.yaml")
    cfg = harness.remap_ports(cfg, {p: harness.free_port() for p in harness.shipped_ports(cfg)})
    template = harness.plain(cfg["static_resources"]["clusters"][0])
    cfg = harness.replace_clusters(
        cfg, [harness.cluster_like(template, name, up.port) for name, up in upstreams.items()])
    port = harness.listener(cfg, "outbound")["address"]["socket_address"]["port_value"]
    return harness.set_plugin_config(cfg, "outbound", plugin), port


@pytest.fixture
def sidecar(start_envoy, start_upstream) -> Sidecar:
    """checkout's sidecar with the example plugin config, order-processor and payments.prod up."""
    apps = {"order-processor": start_upstream("order-processor"),
            "payments-prod": start_upstream("payments")}
    cfg, port = checkout_sidecar_config(EXAMPLE_PLUGIN_CONFIG, apps)
    return Sidecar(start_envoy(cfg, "checkout-sidecar"), port, apps)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine that answers, with the stand-in images built (tests/docker/). Skipped only
    when DAPR_ENVOY_SKIP_DOCKER=1; an engine that cannot be started fails every test using it,
    with the reason."""
    if docker_env.skip_requested():
        pytest.skip(f"{docker_env.SKIP_VARIABLE}=1: the tests on a real Docker engine did NOT run")
    try:
        docker_env.prepare()
        return
    except docker_env.EngineUnavailable as e:
        reason = str(e)
    pytest.fail(f"no usable Docker engine (set {docker_env.SKIP_VARIABLE}=1 to skip these tests on "
                f"purpose):\n{reason}", pytrace=False)


@pytest.fixture
def compose(request, docker_engine):
    """`compose(project_dir, compose_file, *args)` runs docker-compose under a project name unique
    to this test. Afterwards the project is taken down (`down -v --remove-orphans`) and the test
    fails if any container, network or volume of it is left."""
    project = docker_env.ComposeProject()
    request.node._compose_projects = [*getattr(request.node, "_compose_projects", []), project]
    yield project
    problems = project.down()
    assert not problems, f"project {project.name} was not cleaned up: " + "; ".join(problems)
