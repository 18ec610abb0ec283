"""docker-compose.yaml has no engine to run on here, so its agreement with what the tests run is
checked instead: the same Envoy version, the same config files, the same .wasm, and ports that
line up with the configs."""
import re
import subprocess

import pytest
import yaml

import harness

COMPOSE = yaml.safe_load((harness.ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
ENV_FILE = dict(line.split("=", 1) for line in (harness.ROOT / ".env").read_text().splitlines()
                if line and not line.startswith("#"))
ENVOYS = {name: s for name, s in SERVICES.items() if s["image"].startswith("envoyproxy/envoy:")}


def config_of(service: dict) -> str:
    cmd = service["command"]
    return cmd[cmd.index("-c") + 1]


def test_envoy_image_is_the_version_the_tests_run():
    version = ENV_FILE["ENVOY_VERSION"]
    out = subprocess.run([harness.envoy_bin(), "--version"], capture_output=True, check=True).stdout.decode()
    assert f"/{version}/" in out, out
    assert ENVOYS, "no Envoy service"
    for name, service in ENVOYS.items():
        assert service["image"] == "envoyproxy/envoy:v${ENVOY_VERSION}", name


def test_every_shipped_config_runs_in_compose_from_the_same_file():
    used = set()
    for name, service in ENVOYS.items():
        assert service["working_dir"] == "/work"
        assert "./envoy:/work/envoy:ro" in service["volumes"], name
        path = config_of(service)
        assert (harness.ROOT / path).is_file(), path
        used.add(path)
    assert used == {f"envoy/{p.name}" for p in harness.ENVOY_DIR.glob("*.yaml")}


def test_the_wasm_is_mounted_read_only_where_the_configs_look():
    for name, service in ENVOYS.items():
        cfg = harness.load_config(config_of(service).removeprefix("envoy/"))
        filenames = {harness.wasm_filter(cfg, lst["name"])["vm_config"]["code"]["local"]["filename"]
                     for lst in cfg["static_resources"]["listeners"] if _has_filter(cfg, lst["name"])}
        assert filenames == {str(harness.WASM.relative_to(harness.ROOT))}
        mount = f"./{harness.WASM.relative_to(harness.ROOT)}:/work/{harness.WASM.relative_to(harness.ROOT)}:ro"
        assert mount in service["volumes"], name


def _has_filter(cfg, listener_name):
    try:
        harness.wasm_filter(cfg, listener_name)
        return True
    except KeyError:
        return False


def test_everything_shares_one_network_namespace():
    holders = [n for n, s in SERVICES.items() if "network_mode" not in s]
    assert holders == ["mesh"]
    for name, service in SERVICES.items():
        if name != "mesh":
            assert service["network_mode"] == "service:mesh", name


def listen_port(cfg, name):
    return harness.listener(cfg, name)["address"]["socket_address"]["port_value"]


def cluster_port(cfg, name):
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == name:
            return c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
                "socket_address"]["port_value"]
    raise KeyError(name)


def test_ports_line_up_between_apps_and_sidecars():
    checkout = harness.load_config("checkout-sidecar.yaml")
    processor = harness.load_config("order-processor-sidecar.yaml")
    assert int(SERVICES["checkout"]["environment"]["DAPR_HTTP_PORT"]) == listen_port(checkout, "outbound")
    assert int(SERVICES["order-processor"]["environment"]["DAPR_HTTP_PORT"]) == listen_port(processor, "outbound")
    assert int(SERVICES["order-processor"]["environment"]["APP_PORT"]) == cluster_port(processor, "app")
    assert cluster_port(checkout, "order-processor") == listen_port(processor, "inbound")
    healthchecks = {n: " ".join(s["healthcheck"]["test"]) for n, s in ENVOYS.items()}
    assert re.search(rf"/{listen_port(checkout, 'outbound')}\b", healthchecks["checkout-sidecar"])
    assert re.search(rf"/{listen_port(processor, 'inbound')}\b", healthchecks["order-processor-sidecar"])


@pytest.mark.parametrize("app", ["checkout", "order-processor"])
def test_sample_apps_mount_their_own_folder(app):
    assert f"./samples/{app}:/app:ro" in SERVICES[app]["volumes"]
    assert (harness.ROOT / "samples" / app / "requirements.txt").is_file()
