#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora, fuzz/seeds/<target>/, from the unit tests' cases.

Each case here is one of the crate's unit-test cases (the test is named), in the target's input
format (fuzz/src/input.rs). The files are committed; run this again after changing a case:

    python3 fuzz/seeds.py
"""

import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent / "seeds"

# src/config.rs tests (GOOD, own_namespace..., per_app_timeout..., access_control...), src/schema.rs
GOOD = """{"app_id": "checkout", "namespace": "default",
    "apps": {"order-processor": {"cluster": "order-processor"},
             "payments.prod": {"cluster": "payments-prod"}}}"""

# src/acl/mod.rs, daprs_own_test_cases: Dapr's pkg/acl/acl_test.go fixture.
DAPR_FIXTURE = """{"defaultAction": "deny", "trustDomain": "abcd", "policies": [
    {"appId": "app1", "defaultAction": "allow", "trustDomain": "public", "namespace": "ns1",
     "operations": [{"name": "/op1", "httpVerb": ["POST", "GET"], "action": "allow"},
                    {"name": "/op2", "httpVerb": ["*"], "action": "deny"}]},
    {"appId": "app2", "defaultAction": "deny", "trustDomain": "domain1", "namespace": "ns2",
     "operations": [{"name": "/op3/a/*", "httpVerb": ["PUT", "GET"], "action": "allow"},
                    {"name": "/op4", "httpVerb": ["POST"], "action": "allow"}]},
    {"appId": "app3", "trustDomain": "domain1", "namespace": "ns1",
     "operations": [{"name": "/op5", "httpVerb": ["POST"], "action": "allow"}]},
    {"appId": "app4", "defaultAction": "deny", "trustDomain": "domain1", "namespace": "ns2",
     "operations": [{"name": "/op6", "httpVerb": ["*"], "action": "allow"},
                    {"name": "/op7/a/b/*", "httpVerb": ["*"], "action": "allow"},
                    {"name": "/op7/a/b/c/f", "httpVerb": ["*"], "action": "allow"},
                    {"name": "/op7/a/b*", "httpVerb": ["*"], "action": "allow"},
                    {"name": "/op7/c/**", "httpVerb": ["*"], "action": "allow"}]},
    {"appId": "app1", "defaultAction": "allow", "trustDomain": "public", "namespace": "ns4",
     "operations": [{"name": "/op6", "httpVerb": ["*"], "action": "allow"}]}]}"""

# src/acl/mod.rs, wildcards_and_specificity
WILDCARDS = """{"defaultAction": "deny", "policies": [
    {"appId": "c", "defaultAction": "deny", "trustDomain": "public", "namespace": "default",
     "operations": [
        {"name": "/orders", "httpVerb": ["GET"], "action": "allow"},
        {"name": "/orders/admin", "httpVerb": ["*"], "action": "deny"},
        {"name": "/users/*/profile", "httpVerb": ["GET"], "action": "allow"},
        {"name": "/files/**", "httpVerb": ["GET"], "action": "allow"},
        {"name": "/files/secret/**", "httpVerb": ["*"], "action": "deny"},
        {"name": "/api/**/health", "httpVerb": ["GET"], "action": "allow"},
        {"name": "/img/*.png", "httpVerb": ["GET"], "action": "allow"},
        {"name": "/", "httpVerb": ["GET"], "action": "allow"}]}]}"""

# src/acl/mod.rs, specificity_ignores_order
SPECIFICITY = """{"defaultAction": "deny", "policies": [
    {"appId": "c", "defaultAction": "deny", "trustDomain": "public", "namespace": "default",
     "operations": [
        {"name": "/users/*", "httpVerb": ["*"], "action": "deny"},
        {"name": "/users/ann", "httpVerb": ["*"], "action": "allow"},
        {"name": "/a/*/c", "httpVerb": ["*"], "action": "deny"},
        {"name": "/a/b/*", "httpVerb": ["*"], "action": "allow"},
        {"name": "/x*", "httpVerb": ["*"], "action": "deny"},
        {"name": "/*x", "httpVerb": ["*"], "action": "allow"}]}]}"""

# src/acl/mod.rs, attack_paths
ATTACK = """{"defaultAction": "deny", "policies": [
    {"appId": "c", "defaultAction": "allow", "trustDomain": "public", "namespace": "default",
     "operations": [{"name": "/admin", "httpVerb": ["*"], "action": "deny"},
                    {"name": "/orders", "httpVerb": ["GET"], "action": "allow"}]}]}"""

# src/acl/mod.rs, defaults
DEFAULTS = """{"defaultAction": "Deny", "trustDomain": "My.Domain", "policies": [
    {"appId": "a", "trustDomain": "Other", "namespace": "d", "defaultAction": "allow",
     "operations": [{"name": "op1", "httpVerb": ["*"], "action": "deny"}]}]}"""

INBOUND = """{"app_id": "order-processor", "mode": "inbound", "access_control": %s}"""

CONFIG = {
    "good": GOOD,
    "own-namespace": """{"app_id": "a", "namespace": "prod", "cluster_header": "x-route",
        "apps": {"b": {"cluster": "b-prod"}, "b.default": {"cluster": "b-def"}}}""",
    "retries": """{"app_id": "a", "apps": {"b": {"cluster": "b", "timeout_ms": 1500,
        "max_retries": 3, "retry_on": "5xx,connect-failure"}, "c": {"cluster": "c"}}}""",
    "inbound-open": """{"app_id": "order-processor", "mode": "inbound"}""",
    "inbound-dapr-fixture": INBOUND % DAPR_FIXTURE,
    "inbound-wildcards": INBOUND % WILDCARDS,
    "inbound-defaults": INBOUND % DEFAULTS,
    "written-by-the-runner": """{"mode":"outbound","app_id":"checkout","apps":{"order-processor":{"cluster":"to-order-processor"}}}""",
    "api-and-body": """{"app_id": "checkout", "api_token_env": "DAPR_API_TOKEN", "max_body_bytes": 4194304,
        "app_channel": {"port": 6001, "protocol": "http", "channel_address": "127.0.0.1", "max_concurrency": 4,
          "health": {"path": "/healthz", "interval": "5s", "timeout": "500ms", "threshold": 3}},
        "apps": {"order-processor": {"cluster": "order-processor"}}}""",
    "identity-route": """{"app_id": "checkout", "namespace": "prod", "identity_headers": "route",
        "apps": {"order-processor.default": {"cluster": "op"}}}""",
    "refused-clash": """{"app_id": "a", "apps": {"b": {"cluster": "x"}, "b.default": {"cluster": "y"}}}""",
    "refused-array": """["a", null, {"b": {"cluster": "b"}}, null]""",
    "refused-mode": """{"app_id": "a", "mode": "inbound", "apps": {"b": {"cluster": "b"}}}""",
    "refused-retry": """{"app_id": "a", "apps": {"b": {"cluster": "b", "max_retries": 101, "retry_on": "5xx"}}}""",
}

# Fields: path, then dapr-app-id, :method, authorization, dapr-api-token, dapr-callee-app-id
# (NUL-separated).
def route(path, app_id=None, method=None, authorization=None, token=None, callee=None):
    fields = [path, app_id, method, authorization, token, callee]
    while fields and fields[-1] is None:
        fields.pop()
    return b"\0".join((f or "").encode() if isinstance(f, str) or f is None else f for f in fields)


BASIC_OP = "Basic ZGFwci1hcHAtaWQ6b3JkZXItcHJvY2Vzc29y"  # dapr-app-id:order-processor

ROUTE = {
    # src/route.rs: header_form_keeps_the_path, invoke_url_is_rewritten_with_its_query,
    # health_endpoints_are_answered_locally, metadata_is_the_sidecars_own, the token, basic auth,
    # encoded ids, errors
    "header": route("/orders?a=1&b=2", "order-processor", "POST"),
    "header-namespace": route("/x", "payments.prod"),
    "header-own-namespace": route("/x", "order-processor.default"),
    "invoke": route("/v1.0/invoke/order-processor/method/orders?id=7&x"),
    "invoke-deep": route("/v1.0/invoke/order-processor/method/a/b/c"),
    "invoke-method-in-query": route("/v1.0/invoke/order-processor/method/o?q=/method/x"),
    "invoke-namespace": route("/v1.0/invoke/payments.prod/method/pay", "order-processor"),
    "invoke-encoded-id": route("/v1.0/invoke/order%2Dprocessor/method/x"),
    "invoke-twice-encoded-id": route("/v1.0/invoke/order%252Dprocessor.default/method/x"),
    "health": route("/v1.0/healthz/outbound?x=1", "order-processor", "GET"),
    "health-appid": route("/v1.0/healthz/?appid=checkout&x", None, "GET"),
    "health-post": route("/v1.0/healthz", "order-processor", "POST"),
    "metadata": route("/v1.0/metadata/", None, "GET"),
    "metadata-put": route("/v1.0/metadata/key", None, "PUT"),
    "basic-auth": route("/orders", None, "POST", BASIC_OP),
    "token": route("/orders", "order-processor", "POST", None, "s3cret"),
    "token-health": route("/v1.0/healthz", None, "GET", None, "wrong"),
    "not-health": route("/v1.0/healthzz"),
    "no-method": route("/v1.0/invoke/order-processor?x=/method/y"),
    "empty-method": route("/v1.0/invoke/order-processor/method/?x"),
    "no-id": route("/v1.0/invoke//method/x"),
    "encoded-slash-id": route("/v1.0/invoke/a%2Fb/method/x"),
    "two-dots": route("/x", "a.b.c"),
    "not-utf8": route("/x", b"\xff\xfe"),
    "empty-header": route("/orders", ""),
    "max-length-id": route("/x", "a23456789012345678901234567890123456789012345678901234567890123"),
    "grpc-callee": route("/orders.Orders/Submit", "order-processor", "POST", None, "s3cret", "payments.prod"),
}


def rows(*lines):
    return "\n".join("\t".join(fields) for fields in lines)


ACL = {
    "dapr-fixture": (DAPR_FIXTURE, rows(
        ("public", "ns1", "appX", "POST", "/op1"),
        ("private", "ns1", "app1", "POST", "/op1"),
        ("public", "ns1", "app1", "POST", "/Op2"),
        ("domain1", "ns2", "app2", "PUT", "/op3/a/b"),
        ("domain1", "ns1", "app3", "PUT", "/op5"),
        ("domain1", "ns2", "app4", "POST", "/op7/a/b/c/d"),
        ("domain1", "ns2", "app4", "POST", "/op7/c/d/e"),
    )),
    "wildcards": (WILDCARDS, rows(
        ("public", "default", "c", "GET", "/orders/17/items"),
        ("public", "default", "c", "GET", "/users/ann/bob/profile"),
        ("public", "default", "c", "GET", "/api/v1/x/health/deep"),
        ("public", "default", "c", "GET", "/img/a/logo.png"),
        ("public", "default", "c", "get", "/?x=1"),
        ("public", "default", "c", "PROPFIND", "/orders/admin"),
    )),
    "specificity": (SPECIFICITY, rows(
        ("public", "default", "c", "GET", "/a/b/c"),
        ("public", "default", "c", "GET", "/xx"),
        ("public", "default", "c", "GET", "/yx"),
    )),
    "attack-paths": (ATTACK, rows(
        ("public", "default", "c", "GET", "/%41dmin"),
        ("public", "default", "c", "GET", "/x/../admin"),
        ("public", "default", "c", "GET", "/%2e%2e/admin"),
        ("public", "default", "c", "GET", "/admin%2F..%2Forders"),
        ("public", "default", "c", "GET", "/%2561dmin"),
        ("public", "default", "c", "GET", "/admin;x=1"),
        ("public", "default", "c", "GET", "/orders?x=/admin"),
        ("public", "default", "c", "GET", "/caf%C3%A9/"),
        ("public", "default", "c", "GET", "/a/%2E/b"),
    )),
    "defaults": (DEFAULTS, rows(("other", "d", "a", "GET", "/op1/x"))),
    "open": ("""{"defaultAction": "allow"}""", rows(("public", "default", "c", "GET", "/x%2Fy"))),
    "refused-verb": ("""{"policies": [{"appId": "a", "trustDomain": "t", "namespace": "d",
        "operations": [{"name": "/x", "action": "allow", "httpVerb": ["get"]}]}]}""", ""),
}

CHECKOUT = "spiffe://public/ns/default/checkout"

# src/filter/tests.rs
FILTER = {
    "out-forward-spoofed": "out\n:method: POST\n:path: /orders?id=7\ndapr-app-id: order-processor\n"
    "dapr-caller-app-id: admin\nx-dapr-cluster: payments-prod\ncontent-length: 12",
    "out-invoke": "out\n:method: GET\n:path: /v1.0/invoke/payments.prod/method/ok/7?x=1\n"
    "dapr-app-id: order-processor",
    "out-health": "out\n:method: GET\n:path: /v1.0/healthz",
    "out-metadata": "out\n:method: GET\n:path: /v1.0/metadata",
    "out-unknown": "out\n:method: GET\n:path: /x\ndapr-app-id: nope",
    "out-basic-auth": f"out\n:method: POST\n:path: /orders\nauthorization: {BASIC_OP}",
    "out-too-long": "out\n:method: POST\n:path: /orders\ndapr-app-id: order-processor\ncontent-length: 1025",
    "out-chunked": "out\n:method: POST\n:path: /orders\ndapr-app-id: order-processor\n"
    "@body 1000\n@body 24\n@body 1",
    "out-route": "out-route\n:method: GET\n:path: /x\ndapr-app-id: order-processor.default\nx-route: evil\n"
    "dapr-api-token: s3cret",
    "out-route-no-token": "out-route\n:method: GET\n:path: /x\ndapr-app-id: payments",
    "out-set-fails": "out\n:method: POST\n:path: /orders\ndapr-app-id: order-processor\n"
    "@fail set dapr-callee-app-id",
    "out-remove-fails": f"out\n:method: POST\n:path: /orders\nauthorization: {BASIC_OP}\n"
    "@fail remove authorization",
    "out-reply-fails": "out\n:method: GET\n:path: /orders\n@fail reply",
    "none": "none\n:method: GET\n:path: /orders\ndapr-app-id: order-processor",
    "in-deliver": f"in\n@peer {CHECKOUT}\n:method: POST\n:path: /orders\n"
    "dapr-caller-app-id: admin\ndapr-caller-app-id: root\ndapr-caller-namespace: kube-system",
    "in-lowercase-method": f"in\n@peer {CHECKOUT}\n:method: post\n:path: /orders",
    "in-denied": f"in\n@peer {CHECKOUT}\n:method: GET\n:path: /orders",
    "in-two-ids": f"in\n@peer {CHECKOUT}, spiffe://public/ns/default/other\n:method: POST\n:path: /orders",
    "in-no-peer": "in\n:method: POST\n:path: /orders\ndapr-caller-app-id: checkout",
    "in-property-fails": f"in\n@peer {CHECKOUT}\n:method: POST\n:path: /orders\n"
    "@fail property connection.uri_san_peer_certificate",
    "in-open": "in-open\n@peer spiffe://public/ns/prod/intruder\n:method: DELETE\n:path: /anything/../at/all",
    # gRPC (src/filter/tests.rs and route.rs gRPC cases)
    "out-grpc": "out-grpc\n:method: POST\n:path: /orders.Orders/Submit\ncontent-type: application/grpc\n"
    "dapr-app-id: order-processor\ndapr-callee-app-id: payments.prod\ndapr-api-token: s3cret",
    "out-grpc-no-token": "out-grpc\n:method: POST\n:path: /orders.Orders/Submit\ndapr-app-id: order-processor",
    "in-grpc": f"in-grpc\n@peer {CHECKOUT}\n:method: POST\n:path: /orders.Orders/Submit",
    "in-grpc-denied": f"in-grpc\n@peer {CHECKOUT}\n:method: POST\n:path: /orders.orders/submit",
}


# cli/src/resiliency/duration.rs tests: Go's forms, and the bad ones.
DURATION = {f"d{i:02}": text for i, text in enumerate([
    "5s", "500ms", "1m30s", "1.5h", ".5s", "5.s", "+5s", "0", "-0", "500us", "500\u00b5s",
    "500\u03bcs", "7ns", "1h2m3s4ms5us6ns", "0.000000001s", "1.0000000000000000000001s",
    "2562047h47m16.854775807s", "2562047h47m16.854775808s", "", "5", "5x", "5 s", ".s", "-1s",
    "99999999999999999999h", "1500", "-5",
    # Found by the target: many fractions, each cut to whole nanoseconds on its own.
    "47h.47m16.850000000002656477265m96.854700000000000004h47h47m16.854772000726564772646h"
    "47h7m16.854772000000000000004ms2ms4m16.85000000000014786618465677867160h",
])}

ROOT_DIR = pathlib.Path(__file__).resolve().parent.parent

# cli/src/runfile tests and samples/dapr.yaml; app dirs a, b, checkout and order-processor exist
# in the target's scratch directory, with config.yaml and resources/.
RUNFILE = {
    "samples": (ROOT_DIR / "samples" / "dapr.yaml").read_text(),
    "quickstart": """version: 1
common:
  resourcesPath: ./resources/
apps:
  - appDirPath: ./order-processor/
    appID: order-processor
    appPort: 6001
    configFilePath: config.yaml
    command: ["python3", "app.py"]
  - appID: checkout
    appDirPath: ./checkout/
    command: ["python3", "app.py"]
    env:
      DEBUG: true
      RETRIES: 3
""",
    "common": """version: 1
common:
  env: {LEVEL: common, SHARED: yes}
  logLevel: debug
  appProtocol: grpc
apps:
  - appID: a
    appDirPath: a
    command: [a]
    env: {LEVEL: app}
    logLevel: error
    daprHTTPPort: 3502
  - appID: b
    appDirPath: b
    command: [b]
    metricsPort: 9090
""",
    "typo": "version: 1\napps:\n  - appID: a\n    appDirPath: a\n    comand: [a]\n",
    "clash": "version: 1\napps:\n  - appID: a\n    appDirPath: a\n    command: [a]\n    appPort: 6001\n"
    "  - appID: b\n    appDirPath: b\n    command: [b]\n    daprHTTPPort: 6001\n",
    "unclosed": "version: 1\napps: [",
}

# cli/src/dapr_config.rs and cli/src/resiliency tests, samples/.
DAPR_YAML = {
    "configuration": (ROOT_DIR / "samples" / "config.yaml").read_text(),
    "resiliency": (ROOT_DIR / "samples" / "resources" / "resiliency.yaml").read_text(),
    "resiliency-timeouts": """kind: Resiliency
spec:
  policies:
    timeouts:
      general: 1m30s
      fast: 500
    retries:
      expo:
        policy: exponential
        maxInterval: 10s
        maxRetries: 3
        matching:
          httpStatusCodes: 500-503,429
  targets:
    apps:
      order-processor:
        timeout: general
        retry: expo
""",
    "two-documents": "kind: Component\nspec: {}\n---\nkind: Configuration\nspec:\n  tracing: {}\n",
    "component": "kind: Component\nspec: {}\n",
}


def write(target, cases):
    d = ROOT / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for name, data in cases.items():
        (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    for name, text in CONFIG.items():
        if not name.startswith("refused"):
            json.loads(text)  # a typo here would only weaken the seed; catch it
    write("config", CONFIG)
    write("route", ROUTE)
    write("acl", {name: f"{policy}\0{reqs}" for name, (policy, reqs) in ACL.items()})
    write("filter", FILTER)
    write("duration", DURATION)
    write("runfile", RUNFILE)
    write("dapr_yaml", DAPR_YAML)


if __name__ == "__main__":
    main()
