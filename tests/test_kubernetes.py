"""`dapr-envoy kubernetes`: manifests that Kubernetes' own schemas accept (checked offline with
kubernetes-validate), that come out byte for byte the same every time, and whose sidecars load
in a real Envoy exactly as a pod sees them (its projected volume rebuilt from the ConfigMaps and
the Secret). The sidecars at work across hosts are in test_multihost.py."""
from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess

import kubernetes_validate
import pytest
import yaml

import harness
import kube

SAMPLES = harness.ROOT / "samples" / "dapr.yaml"
IMAGES = ("--image", "checkout=registry.example/checkout:1",
          "--image", "order-processor=registry.example/order-processor:1")
# The oldest Kubernetes the manifests are built for (k8s-openapi's feature in cli/Cargo.toml)
# and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.33.0", kubernetes_validate.latest_version() + ".0")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("k8s")
    out = root / "out"
    kube.generate(out, SAMPLES, "--certs", str(root / "certs"), *IMAGES)
    return out


def test_the_manifests_hold_what_each_app_needs(made):
    docs = kube.load(made)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("ConfigMap", "checkout-dapr-envoy"), ("ConfigMap", "dapr-invoke-filter"),
        ("ConfigMap", "order-processor-dapr-envoy"),
        ("Deployment", "checkout"), ("Deployment", "order-processor"),
        ("Secret", "checkout-dapr-tls"), ("Secret", "order-processor-dapr-tls"),
        ("Service", "checkout-dapr"), ("Service", "order-processor-dapr"),
    ]
    filter_map = kube.find(docs, "ConfigMap", "dapr-invoke-filter")
    assert base64.b64decode(filter_map["binaryData"]["dapr_invoke.wasm"]) == harness.WASM.read_bytes()
    assert harness.WASM.stat().st_size < 1024 * 1024, "the filter no longer fits a ConfigMap"
    env = kube.app_env(docs, "order-processor")
    assert env["APP_PORT"] == "6001" and env["DAPR_HTTP_PORT"] == "3500"
    envoy = kube.sidecar_container(docs, "checkout")
    assert envoy["image"] == f"envoyproxy/envoy:v{harness.ROOT.joinpath('.env').read_text().split('ENVOY_VERSION=')[1].split()[0]}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes(made, version):
    docs = kube.load(made)
    for doc in docs:
        doc.pop("__file__")
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_mistake(made):
    """The schema check above can fail: a misspelt field and a missing one are refused."""
    docs = kube.load(made)
    deployment = kube.find(docs, "Deployment", "checkout")
    deployment.pop("__file__")
    deployment["spec"]["template"]["spec"]["containres"] = deployment["spec"]["template"]["spec"].pop("containers")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_generating_again_gives_the_same_bytes(tmp_path):
    certs, out = tmp_path / "certs", tmp_path / "out"
    kube.generate(out, SAMPLES, "--certs", str(certs), *IMAGES)
    first = {p.name: p.read_bytes() for p in out.glob("*.yaml")}
    assert len(first) == 5
    shutil.rmtree(out)
    kube.generate(out, SAMPLES, "--certs", str(certs), *IMAGES)
    second = {p.name: p.read_bytes() for p in out.glob("*.yaml")}
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_secrets_are_readable_by_their_owner_only(made):
    for path in made.glob("*.yaml"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name.endswith("-secrets.yaml"):
            assert mode == 0o600, path
            assert "PRIVATE KEY" in base64.b64decode(next(yaml.safe_load_all(path.read_text()))["data"]["tls.key"]).decode()
        else:
            assert mode & 0o077 != 0o077 and "PRIVATE KEY" not in path.read_text(), path


@pytest.mark.parametrize("app", ["checkout", "order-processor"])
def test_each_sidecar_loads_in_envoy_as_its_pod_sees_it(made, tmp_path, app):
    docs = kube.load(made)
    volume = kube.pod_volume(docs, app, tmp_path / "volume")
    cfg = kube.sidecar_config(docs, app, volume)
    harness.assert_protected(cfg, f"{app} in a pod")
    code, out = harness.validate(cfg, tmp_path, app)
    assert code == 0, out[-3000:]
    assert "target app(s)" in out
    # The files Envoy reads are the pod's: the certificate is the app's own, the key private.
    assert oct(stat.S_IMODE((volume / "certs" / f"{app}.key").stat().st_mode)) == oct(0o440)


def test_the_metrics_port_serves_readiness_and_prometheus_and_nothing_else(made, tmp_path, start_envoy):
    docs = kube.load(made)
    volume = kube.pod_volume(docs, "checkout", tmp_path / "volume")
    cfg = kube.sidecar_config(docs, "checkout", volume)
    # On this machine: free ports instead of the pod's, and the callee's name resolved locally.
    cfg = harness.remap_ports(cfg, {p: harness.free_port() for p in harness.shipped_ports(cfg)})
    for c in cfg["static_resources"]["clusters"]:
        if c.get("cluster_type", {}).get("name") == "envoy.clusters.dns":
            for e in c["load_assignment"]["endpoints"][0]["lb_endpoints"]:
                e["endpoint"]["address"]["socket_address"]["address"] = "localhost"
    envoy = start_envoy(cfg, "checkout")
    metrics = harness.listen_port(envoy.cfg, "metrics")
    assert harness.listener(cfg, "metrics")["address"]["socket_address"]["address"] == "0.0.0.0"
    status, _, body = harness.request(metrics, "GET", "/ready")
    assert (status, body.strip()) == (200, b"LIVE")
    status, _, body = harness.request(metrics, "GET", "/stats/prometheus")
    assert status == 200 and b"envoy_cluster_upstream_cx_total" in body
    for method, path in [("POST", "/quitquitquit"), ("GET", "/quitquitquit"), ("POST", "/logging?level=trace"),
                         ("GET", "/stats"), ("GET", "/config_dump"), ("GET", "/ready/../quitquitquit"),
                         ("GET", "/%2e%2e/quitquitquit"), ("POST", "/drain_listeners"), ("GET", "/certs")]:
        status, _, _ = harness.request(metrics, method, path)
        assert status == 404, (method, path, status)
    assert envoy.alive()
    assert harness.request(envoy.admin_port, "GET", "/ready")[0] == 200


def run_kubernetes(tmp_path, *args, run_file=SAMPLES):
    proc = kube.generate(tmp_path / "out", run_file, *args, check=False)
    return proc.returncode, proc.stderr


def test_what_kubernetes_cannot_take_is_refused_with_the_reason(tmp_path):
    certs = ("--certs", str(tmp_path / "certs"))
    cases = [
        ((*certs,), "no image for order-processor, checkout: give each app's image with --image"),
        ((*certs, *IMAGES, "--image", "chekout=x"), '--image chekout=...: the run file has no app "chekout"'),
        ((*certs, "--image", "checkout"), "expected APP_ID=IMAGE"),
        ((*certs, *IMAGES, "--sidecar-address", "{app}.svc"), "unknown placeholder {app}"),
        ((*certs, *IMAGES, "--sidecar-address", "{app-id}-dapr:50002"), "the port is the sidecar's inbound port"),
        ((*certs, *IMAGES, "--sidecar-address", "dapr.{namespace}"), "must contain {app-id}"),
        ((*certs, *IMAGES, "--namespace", "Shop"), 'namespace "Shop"'),
        ((*certs, *IMAGES, "--trust-domain", "bad domain"), 'trust domain "bad domain"'),
    ]
    for args, message in cases:
        code, err = run_kubernetes(tmp_path, *args)
        assert code != 0, args
        assert message in err, (args, err)
        assert not (tmp_path / "out").exists(), args
        assert not (tmp_path / "certs").exists(), args
    # Certificates made for one namespace are never put in the manifests of another.
    assert run_kubernetes(tmp_path, *certs, *IMAGES)[0] == 0
    code, err = run_kubernetes(tmp_path, *certs, *IMAGES, "--namespace", "shop")
    assert code != 0 and "order-processor.pem is the certificate of spiffe://public/ns/default/order-processor, not of spiffe://public/ns/shop/order-processor" in err, err


def test_an_app_id_kubernetes_cannot_name_is_refused(tmp_path):
    run_file = tmp_path / "dapr.yaml"
    shutil.copytree(harness.ROOT / "samples" / "checkout", tmp_path / "checkout")
    run_file.write_text("version: 1\napps:\n  - appID: Checkout_2\n    appDirPath: ./checkout/\n"
                        "    command: [python3, app.py]\n    containerImage: registry.example/c:1\n")
    code, err = run_kubernetes(tmp_path, run_file=run_file)
    assert code != 0
    assert 'app "Checkout_2": its Service would be named "Checkout_2-dapr", which Kubernetes refuses' in err


def test_namespace_and_trust_domain_follow_into_names_and_identities(tmp_path):
    out = tmp_path / "out"
    kube.generate(out, SAMPLES, "--certs", str(tmp_path / "certs"), *IMAGES,
                  "--namespace", "shop", "--trust-domain", "example.org",
                  "--sidecar-address", "{app-id}-dapr.{namespace}.svc.cluster.local.")
    docs = kube.load(out)
    assert {d["metadata"]["namespace"] for d in docs} == {"shop"}
    volume = kube.pod_volume(docs, "checkout", tmp_path / "volume", namespace="shop")
    cfg = kube.sidecar_config(docs, "checkout", volume, namespace="shop")
    [to_op] = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "to-order-processor"]
    address = to_op["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {"address": "order-processor-dapr.shop.svc.cluster.local.", "port_value": 50002}
    ctx = to_op["transport_socket"]["typed_config"]["common_tls_context"]
    assert ctx["validation_context"]["match_typed_subject_alt_names"][0]["matcher"] == {
        "exact": "spiffe://example.org/ns/shop/order-processor"}
    pem = (volume / "certs" / "checkout.pem").read_text()
    der = base64.b64decode("".join(line for line in pem.splitlines() if not line.startswith("-----")))
    assert b"spiffe://example.org/ns/shop/checkout" in der
    code, out_text = harness.validate(cfg, tmp_path, "shop-checkout")
    assert code == 0, out_text[-2000:]
