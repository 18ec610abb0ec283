"""Helpers for the Kubernetes manifests `dapr-envoy kubernetes` writes: generate them, read them
back, and build what a pod would see from them (its projected volume at /etc/dapr-envoy, its
sidecar's command, its app's environment), so tests run exactly what the manifests hold."""
from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import yaml

import harness

POD_DIR = "/etc/dapr-envoy"


def generate(out: Path, run_file: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """`dapr-envoy kubernetes -f run_file --out out ...`, with the filter this checkout built."""
    harness.require_wasm()
    proc = subprocess.run([str(harness.RUNNER), "kubernetes", "-f", str(run_file), "--out", str(out),
                           "--wasm", str(harness.WASM), *extra], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def load(out: Path) -> list[dict]:
    """Every object in the directory's YAML files, as `kubectl apply -f DIR` reads them."""
    docs = []
    for path in sorted(out.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                doc["__file__"] = path.name
                docs.append(doc)
    return docs


def find(docs: list[dict], kind: str, name: str, namespace: str = "default") -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
             and d["metadata"].get("namespace") == namespace]
    assert len(found) == 1, f"{kind} {namespace}/{name}: found {len(found)}"
    return found[0]


def pod_spec(docs: list[dict], app_id: str, namespace: str = "default") -> dict:
    return find(docs, "Deployment", app_id, namespace)["spec"]["template"]["spec"]


def sidecar_container(docs: list[dict], app_id: str, namespace: str = "default") -> dict:
    spec = pod_spec(docs, app_id, namespace)
    [envoy] = [c for c in spec["initContainers"] if c["name"] == "envoy"]
    return envoy


def app_env(docs: list[dict], app_id: str, namespace: str = "default") -> dict[str, str]:
    [app] = [c for c in pod_spec(docs, app_id, namespace)["containers"] if c["name"] == app_id]
    return {e["name"]: e["value"] for e in app["env"]}


def _object_data(obj: dict) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    if obj["kind"] == "Secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def pod_volume(docs: list[dict], app_id: str, root: Path, namespace: str = "default") -> Path:
    """The sidecar's volume as the kubelet would project it: each item of each source, at its
    path, with its mode. A key or object the manifests do not hold is an error here, as it would
    keep the pod from starting."""
    spec = pod_spec(docs, app_id, namespace)
    envoy = sidecar_container(docs, app_id, namespace)
    [mount] = envoy["volumeMounts"]
    assert mount["mountPath"] == POD_DIR and mount.get("readOnly") is True
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    projected = volume["projected"]
    root.mkdir(parents=True, exist_ok=True)
    for source in projected["sources"]:
        (kind, ref), = source.items()
        obj = find(docs, {"configMap": "ConfigMap", "secret": "Secret"}[kind], ref["name"], namespace)
        data = _object_data(obj)
        for item in ref["items"]:
            assert item["key"] in data, f"{ref['name']} has no key {item['key']}"
            path = root / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[item["key"]])
            os.chmod(path, item.get("mode", projected.get("defaultMode", 0o644)))
    return root


def in_pod(value, volume: Path):
    """`value` (a config) with every path under /etc/dapr-envoy pointing into `volume`."""
    if isinstance(value, dict):
        return {k: in_pod(v, volume) for k, v in value.items()}
    if isinstance(value, list):
        return [in_pod(v, volume) for v in value]
    if isinstance(value, str) and value.startswith(POD_DIR + "/"):
        return str(volume / value.removeprefix(POD_DIR + "/"))
    return value


def sidecar_config(docs: list[dict], app_id: str, volume: Path, namespace: str = "default") -> dict:
    """The Envoy config the pod's sidecar runs (from its projected volume), paths on this host."""
    envoy = sidecar_container(docs, app_id, namespace)
    args = envoy["args"]
    config = args[args.index("-c") + 1]
    assert config.startswith(POD_DIR + "/"), config
    return in_pod(yaml.safe_load((volume / config.removeprefix(POD_DIR + "/")).read_text()), volume)


def sidecar_command(docs: list[dict], app_id: str, config_path: Path, namespace: str = "default") -> list[str]:
    """The sidecar container's command line, with this host's Envoy and `config_path`."""
    envoy = sidecar_container(docs, app_id, namespace)
    assert envoy["command"] == ["envoy"]
    args = list(envoy["args"])
    args[args.index("-c") + 1] = str(config_path)
    return [harness.envoy_bin(), *args]
