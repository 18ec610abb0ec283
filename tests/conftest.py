"""Fixtures shared by the integration tests. Everything a test starts is stopped after it, and the
logs of its Envoys are printed when it fails.

A sidecar that tests only send requests through is started once per module (`sidecar`); its
upstreams forget what they saw and answer 200 again before each test. A test that changes a
sidecar (another plugin configuration, an upstream it stops) starts its own."""
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


# Every test has pytest.ini's time limit (300 s) unless it says otherwise. The tests on a Docker
# engine get more: the first of them sets the engine up, which on a fresh machine means apt-get
# installs and two debootstraps (a few minutes; tests/docker_env.py), before its own compose run.
DOCKER_TIMEOUT = 1200


def pytest_collection_modifyitems(items):
    for item in items:
        if "docker_engine" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(DOCKER_TIMEOUT))


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


def show_logs_on_failure(item, *envoys: Envoy) -> None:
    """The test's report shows these Envoys' logs if it fails."""
    shown = item.__dict__.setdefault("_envoys", [])
    shown.extend(e for e in envoys if e not in shown)


class Started:
    """Envoys and upstreams started for a test or a module, all stopped by `stop()`."""

    def __init__(self, workdir: Path | None, item=None):
        self.workdir, self.item = workdir, item
        self.envoys: list[Envoy] = []
        self.upstreams: list[Upstream] = []

    def envoy(self, cfg: dict, name: str = "envoy", log_level: str = "info") -> Envoy:
        assert self.workdir is not None, "Started(None) starts upstreams only"
        env = Envoy(cfg, self.workdir, name, log_level)
        self.envoys.append(env)
        if self.item is not None:
            show_logs_on_failure(self.item, env)
        return env.start()

    def upstream(self, name: str) -> Upstream:
        up = Upstream(name).start()
        self.upstreams.append(up)
        return up

    def stop(self) -> None:
        for env in self.envoys:
            env.stop()
        for up in self.upstreams:
            up.stop()


@pytest.fixture
def start_envoy(request, tmp_path):
    started = Started(tmp_path, request.node)
    yield started.envoy
    started.stop()


@pytest.fixture
def start_upstream():
    started = Started(None)
    yield started.upstream
    started.stop()


@pytest.fixture(scope="module")
def module_started(request, tmp_path_factory):
    """Envoys and upstreams that live as long as the test module, for the fixtures it shares."""
    started = Started(tmp_path_factory.mktemp(request.module.__name__))
    yield started
    started.stop()


@dataclass
class Sidecar:
    envoy: Envoy
    apps: dict[str, Upstream]

    @property
    def port(self) -> int:
        """The outbound listener: the app's DAPR_HTTP_PORT."""
        return harness.listen_port(self.envoy.cfg, "outbound")

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


def example_sidecar(started: Started) -> Sidecar:
    """checkout's sidecar with the example plugin config, order-processor and payments.prod up."""
    apps = {"order-processor": started.upstream("order-processor"),
            "payments-prod": started.upstream("payments")}
    cfg, _ = checkout_sidecar_config(EXAMPLE_PLUGIN_CONFIG, apps)
    return Sidecar(started.envoy(cfg, "checkout-sidecar"), apps)


@pytest.fixture(scope="module")
def shared_sidecar(module_started) -> Sidecar:
    return example_sidecar(module_started)


@pytest.fixture
def sidecar(request, shared_sidecar) -> Sidecar:
    """checkout's sidecar with the example plugin config, order-processor and payments.prod up;
    one per module, its upstreams reset before each test. A test that changes it (stops an
    upstream, say) must use `own_sidecar`."""
    env = shared_sidecar.envoy
    assert env.alive(), f"the module's shared sidecar is gone:\n{env.log_tail()}"
    for up in shared_sidecar.apps.values():
        up.reset()
    show_logs_on_failure(request.node, env)
    return shared_sidecar


@pytest.fixture
def own_sidecar(request, tmp_path) -> Sidecar:
    """The same sidecar as `sidecar`, for this test alone."""
    started = Started(tmp_path, request.node)
    yield example_sidecar(started)
    started.stop()


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
