"""The soak's short form (`make soak` runs a million requests): 20,000 requests of every class,
both protocols, through `dapr-envoy run`'s two sidecars with mutual TLS and an access-control
policy, at a steady 1,000 a second. It must pass as the long run must: every status as expected,
every body intact at the callee, nothing refused delivered, memory flat, no VM restart."""
import shutil
import sys

import harness

sys.path.insert(0, str(harness.ROOT / "soak"))
import soak  # noqa: E402


def test_a_short_soak_passes(tmp_path):
    if not shutil.which("h2load"):
        raise RuntimeError("h2load is missing: run `make h2load` (Debian's nghttp2-client)")
    report = soak.soak(20_000, 1_000, update_doc=False, results=tmp_path)
    assert report["passed"], "\n".join(report["failures"])
    # Every class ran, and the refused ones reached no app.
    assert len(report["classes"]) == len(soak.KINDS) * len(soak.PROTOS)
    for row in report["classes"]:
        assert sum(row["statuses"].values()) == row["requests"], row
        assert row["delivered"] == (row["requests"] if row["expect"] == 200 else 0), row
    assert report["meta"]["duration_s"] < 40
