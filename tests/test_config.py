"""Plugin configuration at load: every shipped config loads; a bad one is refused with a log line
naming the field, and Envoy serves no traffic with it (the wording of every refusal is a unit
test in src/config.rs)."""
import socket

import pytest

import harness
from conftest import EXAMPLE_PLUGIN_CONFIG, checkout_sidecar_config


@pytest.mark.parametrize("name", sorted(p.name for p in harness.ENVOY_DIR.glob("*.yaml")))
def test_shipped_configs_load(tmp_path, name, mesh_certs):
    code, out = harness.validate(harness.use_certs(harness.load_config(name), mesh_certs), tmp_path)
    assert code == 0, out
    for lst in harness.load_config(name)["static_resources"]["listeners"]:
        try:
            plugin = harness.plugin_config(harness.load_config(name), lst["name"])
        except KeyError:
            continue
        assert f'app "{plugin["app_id"]}" in namespace "{plugin.get("namespace", "default")}"' in out


# Every refusal's message is a unit test (src/config.rs: `the_refusals_envoys_log_shows` and the
# table before it); these check the path through Envoy: the filter logs the refusal at error
# level naming the field, and Envoy does not start. One JSON error, one unknown field, one
# invalid app id.
BAD = [
    ('{"app_id": "checkout", "apps": {"order-processor": {"cluster": "x"}}', "EOF while parsing"),
    ('{"app_id": "checkout", "apps": {"order-processor": {"clustr": "x"}}}', "unknown field `clustr`"),
    ('{"app_id": "checkout", "apps": {"a.b.c": {"cluster": "x"}}}',
     'field `apps."a.b.c"` is not a valid app id: has more than one'),
]


@pytest.mark.parametrize("plugin,message", BAD, ids=[m for _, m in BAD])
def test_bad_plugin_config_is_refused_at_load(tmp_path, plugin, message):
    cfg, _ = checkout_sidecar_config(plugin, {})
    code, out = harness.validate(cfg, tmp_path)
    assert code != 0
    lines = [line for line in out.splitlines() if message in line]
    assert lines, out[-3000:]
    assert "[error]" in lines[0] or "[critical]" in lines[0], lines[0]


def test_envoy_with_a_bad_plugin_config_serves_nothing(tmp_path, start_upstream):
    up = start_upstream("order-processor")
    plugin = dict(EXAMPLE_PLUGIN_CONFIG, app_idd="typo")
    cfg, port = checkout_sidecar_config(plugin, {"order-processor": up})
    envoy = harness.Envoy(cfg, tmp_path, "bad")
    with pytest.raises(harness.EnvoyFailed) as failed:
        envoy.start(timeout=30)
    envoy.stop()
    assert "unknown field `app_idd`" in str(failed.value)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not up.requests
