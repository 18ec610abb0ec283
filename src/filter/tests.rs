//! The request handling on the host, with a fake Envoy: what is written on a forward, what is
//! answered on a refusal, what happens when a host call fails, and how many host calls a request
//! costs.

use super::fake::{FakeHost, Reply};
use super::*;

/// checkout's sidecar: order-processor with a timeout, and an app in another namespace.
const OUTBOUND: &str = r#"{"app_id": "checkout", "namespace": "default", "apps": {
    "order-processor": {"cluster": "order-processor", "timeout_ms": 1500},
    "payments.prod": {"cluster": "payments-prod"}}}"#;

/// order-processor's sidecar: only checkout may POST /orders.
const INBOUND: &str = r#"{"app_id": "order-processor", "mode": "inbound", "access_control": {
    "defaultAction": "deny", "policies": [{"appId": "checkout", "trustDomain": "public",
    "namespace": "default", "defaultAction": "deny",
    "operations": [{"name": "/orders", "httpVerb": ["POST"], "action": "allow"}]}]}}"#;

const CHECKOUT: &str = "spiffe://public/ns/default/checkout";

const NOT_READY: &str = r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"invoke API is not ready: the sidecar could not process the request"}"#;

fn config(json: &str) -> Config {
    match Config::from_json(json.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn handle(host: &FakeHost, json: &str) -> Next {
    on_request_headers(host, 7, Some(&config(json)), &mut Body::Untouched)
}

/// The reply a user sees for a Dapr error: status, JSON content type, this exact body.
fn assert_json_reply(reply: &Reply, status: u32, body: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.headers,
        [("content-type".to_string(), "application/json".to_string())]
    );
    assert_eq!(reply.body_text(), body);
}

/// Nothing the request carried was changed, and nothing was added.
fn assert_untouched(host: &FakeHost, names: &[&str]) {
    for name in names {
        assert!(
            host.header(name).is_empty(),
            "{name}: {:?}",
            host.header(name)
        );
    }
}

const WRITTEN: [&str; 5] = [
    "x-dapr-cluster",
    "dapr-caller-app-id",
    "dapr-caller-namespace",
    "dapr-callee-app-id",
    "x-envoy-upstream-rq-timeout-ms",
];

#[test]
fn outbound_forward_writes_the_route_and_the_identity() {
    let host = FakeHost::new()
        .with_request("POST", "/orders?id=7")
        .with_header("dapr-app-id", "order-processor")
        // What the app sent under the sidecar's names is replaced, not kept beside.
        .with_header("dapr-caller-app-id", "admin")
        .with_header("x-dapr-cluster", "payments-prod");
    assert_eq!(handle(&host, OUTBOUND), Next::Continue);
    assert_eq!(host.one("x-dapr-cluster"), "order-processor");
    assert_eq!(host.one("dapr-caller-app-id"), "checkout");
    assert_eq!(host.one("dapr-caller-namespace"), "default");
    assert_eq!(host.one("dapr-callee-app-id"), "order-processor");
    assert_eq!(host.one("x-envoy-upstream-rq-timeout-ms"), "1500");
    assert_eq!(host.one(":path"), "/orders?id=7");
    assert!(host.replies().is_empty());
    assert!(host.logs().is_empty(), "{:?}", host.logs());
    // Two reads and five writes: the benchmark's count. Do not add host calls per request.
    assert_eq!(host.host_calls(), 7);
}

#[test]
fn with_identity_on_the_routes_a_forward_is_one_write() {
    let host = FakeHost::new()
        .with_request("POST", "/orders")
        .with_header("dapr-app-id", "order-processor")
        .with_header("dapr-caller-app-id", "forged");
    let json = r#"{"app_id": "checkout", "identity_headers": "route",
        "apps": {"order-processor": {"cluster": "order-processor"}}}"#;
    assert_eq!(handle(&host, json), Next::Continue);
    assert_eq!(host.one("x-dapr-cluster"), "order-processor");
    // :path, dapr-app-id, the cluster header: Envoy's route replaces the identity headers.
    assert_eq!(host.host_calls(), 3);
    assert_eq!(
        host.one("dapr-caller-app-id"),
        "forged",
        "left to the route"
    );
    assert_untouched(&host, &["dapr-callee-app-id", "dapr-caller-namespace"]);
}

#[test]
fn outbound_invoke_url_rewrites_the_path_without_reading_the_header() {
    let host = FakeHost::new()
        .with_request("GET", "/v1.0/invoke/payments.prod/method/ok/7?x=1")
        .with_header("dapr-app-id", "order-processor");
    assert_eq!(handle(&host, OUTBOUND), Next::Continue);
    assert_eq!(host.one(":path"), "/ok/7?x=1");
    assert_eq!(host.one("x-dapr-cluster"), "payments-prod");
    assert_eq!(host.one("dapr-callee-app-id"), "payments");
    assert!(host.header("x-envoy-upstream-rq-timeout-ms").is_empty());
    // The URL names the app: dapr-app-id is not read. One read, five writes.
    assert_eq!(host.host_calls(), 6);
}

#[test]
fn outbound_health_is_answered_here() {
    let host = FakeHost::new().with_request("GET", "/v1.0/healthz");
    assert_eq!(handle(&host, OUTBOUND), Next::Stop);
    assert_eq!(
        host.reply(),
        Reply {
            status: 204,
            headers: vec![],
            body: None
        }
    );
    // :path, :method (only GET is the health check), the reply.
    assert_eq!(host.host_calls(), 3);
}

/// checkout's sidecar with an API token, its app's channel and a body limit.
const GUARDED: &str = r#"{"app_id": "checkout", "api_token_env": "TOKEN", "max_body_bytes": 10,
    "app_channel": {"protocol": "http", "channel_address": "127.0.0.1"},
    "apps": {"order-processor": {"cluster": "order-processor"}}}"#;

fn guarded() -> Config {
    match Config::load(GUARDED.as_bytes(), &|n| {
        (n == "TOKEN").then(|| "t0k".to_string())
    }) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn run(host: &FakeHost, config: &Config, body: &mut Body) -> Next {
    on_request_headers(host, 7, Some(config), body)
}

#[test]
fn an_api_token_is_required_and_never_forwarded() {
    let c = guarded();
    let host = FakeHost::new()
        .with_request("POST", "/orders")
        .with_header("dapr-app-id", "order-processor");
    assert_eq!(run(&host, &c, &mut Body::Untouched), Next::Stop);
    let reply = host.reply();
    assert_eq!(
        (reply.status, reply.body_text()),
        (401, "invalid api token\n")
    );
    assert_eq!(
        reply.headers,
        [(
            "content-type".to_string(),
            "text/plain; charset=utf-8".to_string()
        )]
    );
    assert_untouched(&host, &["x-dapr-cluster"]);
    let host = FakeHost::new()
        .with_request("POST", "/orders")
        .with_header("dapr-api-token", "t0k")
        .with_header("dapr-app-id", "order-processor")
        .with_header("content-length", "2");
    assert_eq!(run(&host, &c, &mut Body::Untouched), Next::Continue);
    assert_eq!(host.one("x-dapr-cluster"), "order-processor");
}

#[test]
fn metadata_is_answered_here() {
    let c = guarded();
    let get = FakeHost::new()
        .with_request("GET", "/v1.0/metadata")
        .with_header("dapr-api-token", "t0k");
    assert_eq!(run(&get, &c, &mut Body::Untouched), Next::Stop);
    let reply = get.reply();
    assert_eq!(reply.status, 200);
    let v: serde_json::Value = serde_json::from_str(reply.body_text()).unwrap();
    assert_eq!(v["id"], "checkout");
    assert_eq!(v["appConnectionProperties"]["channelAddress"], "127.0.0.1");
}

#[test]
fn the_basic_auth_form_removes_the_authorization_header() {
    // base64("dapr-app-id:order-processor")
    let host = FakeHost::new().with_request("GET", "/orders").with_header(
        "authorization",
        "Basic ZGFwci1hcHAtaWQ6b3JkZXItcHJvY2Vzc29y",
    );
    assert_eq!(handle(&host, OUTBOUND), Next::Continue);
    assert_eq!(host.one("x-dapr-cluster"), "order-processor");
    assert!(host.header("authorization").is_empty());
    let failing = FakeHost::new()
        .with_request("GET", "/orders")
        .with_header(
            "authorization",
            "Basic ZGFwci1hcHAtaWQ6b3JkZXItcHJvY2Vzc29y",
        )
        .failing("remove authorization");
    assert_eq!(handle(&failing, OUTBOUND), Next::Stop);
    assert_json_reply(&failing.reply(), 500, NOT_READY);
    assert_untouched(&failing, &["x-dapr-cluster"]);
}

#[test]
fn bodies_over_the_limit_are_refused() {
    let c = guarded();
    let too_long = r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: order-processor, err: stream too large"}"#;
    let with_length = |len: &str| {
        FakeHost::new()
            .with_request("POST", "/orders")
            .with_header("dapr-api-token", "t0k")
            .with_header("dapr-app-id", "order-processor")
            .with_header("content-length", len)
    };
    let host = with_length("11");
    assert_eq!(run(&host, &c, &mut Body::Untouched), Next::Stop);
    assert_json_reply(&host.reply(), 413, too_long);
    assert_untouched(&host, &["x-dapr-cluster"]);
    let host = with_length("10");
    let mut body = Body::Untouched;
    assert_eq!(run(&host, &c, &mut body), Next::Continue);
    assert_eq!(
        body,
        Body::Untouched,
        "a length is enforced by Envoy's framing"
    );
    // Without a length the bytes are counted as they pass.
    let host = FakeHost::new()
        .with_request("POST", "/orders")
        .with_header("dapr-api-token", "t0k")
        .with_header("dapr-app-id", "order-processor");
    let mut body = Body::Untouched;
    assert_eq!(run(&host, &c, &mut body), Next::Continue);
    assert_eq!(
        on_request_body(&host, 7, Some(&c), &mut body, 6),
        Next::Continue
    );
    assert_eq!(
        on_request_body(&host, 7, Some(&c), &mut body, 4),
        Next::Continue
    );
    assert_eq!(
        on_request_body(&host, 7, Some(&c), &mut body, 1),
        Next::Stop
    );
    assert_json_reply(&host.reply(), 413, too_long);
}

/// A request's path and `dapr-app-id`, the status and the exact body it gets.
type OutboundRefusal = (&'static [u8], Option<&'static [u8]>, u32, &'static str);

#[test]
fn outbound_refusals_are_dapr_errors_and_forward_nothing() {
    let cases: &[OutboundRefusal] = &[
        (
            b"/orders",
            None,
            404,
            r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed getting app id either from the URL path or the header dapr-app-id"}"#,
        ),
        (
            b"/orders",
            Some(b"shipping"),
            500,
            r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: shipping, err: no app \"shipping\" in namespace \"default\" is configured for this sidecar"}"#,
        ),
        (
            b"/orders",
            Some(b"\xff\xfeorder"),
            400,
            concat!(
                r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: "#,
                "\u{fffd}\u{fffd}order, err: invalid app id: is not valid UTF-8\"}"
            ),
        ),
        (
            b"/v1.0/invoke/\xc3(/method/x",
            None,
            404,
            r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"invalid invoke URL: the path is not valid UTF-8; expected /v1.0/invoke/<app-id>/method/<method>"}"#,
        ),
    ];
    for (path, app_id, status, body) in cases {
        let mut host = FakeHost::new().with_request("GET", *path);
        if let Some(id) = app_id {
            host = host.with_header("dapr-app-id", *id);
        }
        assert_eq!(handle(&host, OUTBOUND), Next::Stop, "{path:?}");
        assert_json_reply(&host.reply(), *status, body);
        assert_untouched(&host, &WRITTEN);
    }
}

#[test]
fn no_configuration_is_not_ready() {
    let host = FakeHost::new()
        .with_request("GET", "/orders")
        .with_header("dapr-app-id", "order-processor");
    assert_eq!(
        on_request_headers(&host, 1, None, &mut Body::Untouched),
        Next::Stop
    );
    assert_json_reply(
        &host.reply(),
        500,
        r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"invoke API is not ready: the filter has no configuration"}"#,
    );
    assert_untouched(&host, &WRITTEN);
}

#[test]
fn outbound_host_failures_are_answered_not_ready_and_never_forwarded_half_written() {
    let reads = [
        ("get :path", "read :path"),
        ("get dapr-app-id", "read dapr-app-id"),
    ];
    let writes = WRITTEN.map(|name| (format!("set {name}"), format!("set {name}")));
    let cases = reads
        .iter()
        .map(|(call, what)| (call.to_string(), what.to_string()))
        .chain(writes);
    for (failing, what) in cases {
        let host = FakeHost::new()
            .with_request("POST", "/orders")
            .with_header("dapr-app-id", "order-processor")
            .failing(&failing);
        assert_eq!(handle(&host, OUTBOUND), Next::Stop, "{failing}");
        assert_json_reply(&host.reply(), 500, NOT_READY);
        assert_eq!(
            host.logs(),
            [(
                Level::Warn,
                format!("[http 7] host call failed ({what}): InternalFailure")
            )]
        );
        // The writes before the failing one happened, but the request is answered, not
        // forwarded; nothing after it is written.
        let failed_at = WRITTEN
            .iter()
            .position(|w| failing == format!("set {w}"))
            .unwrap_or(0);
        for (i, name) in WRITTEN.iter().enumerate() {
            assert_eq!(
                host.header(name).is_empty(),
                i >= failed_at,
                "{failing}: {name}"
            );
        }
    }
}

#[test]
fn a_reply_that_cannot_be_sent_still_stops_the_request() {
    let host = FakeHost::new()
        .with_request("GET", "/orders")
        .failing("reply");
    assert_eq!(handle(&host, OUTBOUND), Next::Stop);
    assert!(host.replies().is_empty());
    assert_eq!(
        host.logs(),
        [(
            Level::Error,
            "[http 7] cannot send the local reply: InternalFailure".to_string()
        )]
    );
    assert_untouched(&host, &WRITTEN);
}

#[test]
fn inbound_delivers_with_the_identity_of_the_certificate() {
    let host = FakeHost::new()
        .with_peer(CHECKOUT)
        .with_request("POST", "/orders")
        .with_header("dapr-caller-app-id", "admin")
        .with_header("dapr-caller-app-id", "root")
        .with_header("dapr-caller-namespace", "kube-system");
    assert_eq!(handle(&host, INBOUND), Next::Continue);
    assert_eq!(host.one("dapr-caller-app-id"), "checkout");
    assert_eq!(host.one("dapr-caller-namespace"), "default");
    assert_eq!(host.one(":path"), "/orders");
    assert!(host.replies().is_empty());
    // The peer, :method and :path; two writes.
    assert_eq!(host.host_calls(), 5);
}

#[test]
fn inbound_delivers_the_method_it_checked_upper_case() {
    let host = FakeHost::new()
        .with_peer(CHECKOUT)
        .with_request("post", "/orders");
    assert_eq!(handle(&host, INBOUND), Next::Continue);
    assert_eq!(host.one(":method"), "POST");
    // One write more, only for a method that is not upper-case already.
    assert_eq!(host.host_calls(), 6);
    let host = FakeHost::new()
        .with_peer(CHECKOUT)
        .with_request("get", "/orders");
    assert_eq!(handle(&host, INBOUND), Next::Stop);
    assert_eq!(host.reply().status, 403);
    assert_eq!(host.one(":method"), "get");
}

/// The peer's URI SAN, method and path; the status, exact body and a part of the debug line.
type InboundRefusal = (
    Option<&'static [u8]>,
    &'static str,
    &'static [u8],
    u32,
    &'static str,
    &'static str,
);

#[test]
fn inbound_refusals_are_answered_and_logged_at_debug_only() {
    let denied = r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: order-processor, err: access control policy has denied access to id: spiffe://public/ns/default/checkout operation: /orders verb: GET"}"#;
    let cases: &[InboundRefusal] = &[
        (
            Some(CHECKOUT.as_bytes()),
            "GET",
            b"/orders",
            403,
            denied,
            "[http 7] inbound call refused with 403: failed to invoke, id: order-processor, err: access control policy has denied access to id: spiffe://public/ns/default/checkout operation: /orders verb: GET; policies[0].operations[0] (\"/orders\") matches but does not list \"GET\"; policies[0].defaultAction is deny",
        ),
        (
            None,
            "POST",
            b"/orders",
            401,
            r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: order-processor, err: unauthenticated caller: no verified client certificate (the inbound listener must require mutual TLS)"}"#,
            "[http 7] inbound call refused with 401: failed to invoke, id: order-processor, err: unauthenticated caller: no verified client certificate (the inbound listener must require mutual TLS)",
        ),
        (
            Some(b"spiffe://public/ns/default/\xffcheckout"),
            "POST",
            b"/orders",
            401,
            r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: order-processor, err: unauthenticated caller: no verified client certificate (the inbound listener must require mutual TLS)"}"#,
            "[http 7] inbound call refused with 401",
        ),
        (
            // Not UTF-8: the policy cannot check it, so it is refused.
            Some(CHECKOUT.as_bytes()),
            "POST",
            b"/orders/\xff",
            403,
            r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: order-processor, err: access control policy has denied access to id: spiffe://public/ns/default/checkout operation:  verb: POST"}"#,
            "the request path is refused: does not start with '/'",
        ),
        (
            // A path the app would resolve to another one is refused before any rule.
            Some(CHECKOUT.as_bytes()),
            "POST",
            b"/orders/%2e%2e/admin",
            403,
            r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: order-processor, err: access control policy has denied access to id: spiffe://public/ns/default/checkout operation: /orders/%2e%2e/admin verb: POST"}"#,
            "the request path is refused: has a \"..\" segment",
        ),
    ];
    for (peer, method, path, status, body, logged) in cases {
        let mut host = FakeHost::new()
            .with_request(method, *path)
            .with_header("dapr-caller-app-id", "checkout");
        if let Some(peer) = peer {
            host = host.with_peer(*peer);
        }
        assert_eq!(handle(&host, INBOUND), Next::Stop, "{path:?}");
        assert_json_reply(&host.reply(), *status, body);
        // Nothing was stamped: the forged header is still there, and the request goes nowhere.
        assert_eq!(host.one("dapr-caller-app-id"), "checkout");
        assert!(host.header("dapr-caller-namespace").is_empty());
        let logs = host.logs();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0].0, Level::Debug, "{logs:?}");
        assert!(logs[0].1.contains(logged), "{logs:?} lacks {logged:?}");
    }
}

#[test]
fn inbound_host_failures_are_answered_not_ready_and_never_forwarded_half_written() {
    for failing in [
        "property connection.uri_san_peer_certificate",
        "get :method",
        "get :path",
        "set dapr-caller-app-id",
        "set dapr-caller-namespace",
    ] {
        let host = FakeHost::new()
            .with_peer(CHECKOUT)
            .with_request("POST", "/orders")
            .failing(failing);
        assert_eq!(handle(&host, INBOUND), Next::Stop, "{failing}");
        assert_json_reply(&host.reply(), 500, NOT_READY);
        assert!(host.header("dapr-caller-namespace").is_empty(), "{failing}");
        let logs = host.logs();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0].0, Level::Warn);
        assert!(
            logs[0].1.starts_with("[http 7] host call failed ("),
            "{logs:?}"
        );
    }
}

#[test]
fn inbound_without_a_policy_delivers_every_verified_caller() {
    let host = FakeHost::new()
        .with_peer("spiffe://public/ns/prod/intruder")
        .with_request("DELETE", "/anything/../at/all");
    let open = r#"{"app_id": "order-processor", "mode": "inbound"}"#;
    assert_eq!(handle(&host, open), Next::Continue);
    assert_eq!(host.one("dapr-caller-app-id"), "intruder");
    assert_eq!(host.one("dapr-caller-namespace"), "prod");
}

#[test]
fn the_version_line_names_the_build_and_its_features() {
    let line = version_line();
    assert!(
        line.starts_with(&format!("dapr-invoke {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    let features = if cfg!(feature = "fault-injection") {
        "fault-injection"
    } else {
        "none"
    };
    assert!(line.ends_with(&format!(") features: {features}")), "{line}");
}

#[test]
fn the_configured_line_says_what_was_loaded_and_how_fast() {
    assert_eq!(
        configured_line(&config(OUTBOUND), Duration::from_micros(1500)),
        r#"app "checkout" in namespace "default": 2 target app(s), cluster header "x-dapr-cluster"; configured in 1.5 ms"#
    );
}

#[test]
fn refusals_are_counted_with_daprs_names_and_forwards_are_not() {
    let forward = FakeHost::new()
        .with_request("GET", "/orders")
        .with_header("dapr-app-id", "order-processor");
    assert_eq!(handle(&forward, OUTBOUND), Next::Continue);
    assert!(forward.counted().is_empty(), "nothing on the hot path");
    let unknown = FakeHost::new()
        .with_request("GET", "/orders")
        .with_header("dapr-app-id", "nope");
    assert_eq!(handle(&unknown, OUTBOUND), Next::Stop);
    assert_eq!(
        unknown.counted(),
        ["dapr_error_code_total;app_id=checkout;category=service-invocation;error_code=ERR_DIRECT_INVOKE;status=500"]
    );
    // The API token's 401 has no Dapr error code.
    let host = FakeHost::new().with_request("GET", "/orders");
    assert_eq!(run(&host, &guarded(), &mut Body::Untouched), Next::Stop);
    assert_eq!(host.reply().status, 401);
    assert_eq!(
        host.counted(),
        ["dapr_error_code_total;app_id=checkout;category=service-invocation;error_code=;status=401"]
    );
    // Inbound: the ACL's counter names the caller and the rule, then the error's.
    let denied = FakeHost::new()
        .with_request("DELETE", "/orders")
        .with_peer(CHECKOUT);
    assert_eq!(handle(&denied, INBOUND), Next::Stop);
    assert_eq!(
        denied.counted(),
        [
            "dapr_runtime_acl_app_policy_action_blocked_total;app_id=checkout;trustDomain=public;namespace=default",
            "dapr_error_code_total;app_id=order-processor;category=service-invocation;error_code=ERR_DIRECT_INVOKE;status=403",
        ]
    );
    let stranger = FakeHost::new()
        .with_request("POST", "/orders")
        .with_peer("spiffe://public/ns/default/intruder");
    assert_eq!(handle(&stranger, INBOUND), Next::Stop);
    assert_eq!(
        stranger.counted()[0],
        "dapr_runtime_acl_global_policy_action_blocked_total;app_id=intruder;trustDomain=public;namespace=default"
    );
    let allowed = FakeHost::new()
        .with_request("POST", "/orders")
        .with_peer(CHECKOUT);
    assert_eq!(handle(&allowed, INBOUND), Next::Continue);
    assert!(allowed.counted().is_empty());
}

/// order-processor as a gRPC app: only checkout may call `/orders.Orders/Submit`.
const INBOUND_GRPC: &str = r#"{"app_id": "order-processor", "mode": "inbound", "calls": "grpc",
    "access_control": {"defaultAction": "deny", "policies": [{"appId": "checkout",
    "trustDomain": "public", "namespace": "default", "defaultAction": "deny",
    "operations": [{"name": "/orders.Orders/Submit", "action": "allow"}]}]}}"#;

#[test]
fn a_grpc_apps_callers_are_checked_by_full_method_case_sensitive_and_answered_in_grpc() {
    let host = FakeHost::new()
        .with_peer(CHECKOUT)
        .with_header(":path", "/orders.Orders/Submit");
    assert_eq!(handle(&host, INBOUND_GRPC), Next::Continue);
    assert_eq!(host.one("dapr-caller-app-id"), "checkout");
    // The verb is not read: the peer, :path, two writes.
    assert_eq!(host.host_calls(), 4);
    for denied in ["/orders.orders/submit", "/orders.Orders/Cancel"] {
        let host = FakeHost::new()
            .with_peer(CHECKOUT)
            .with_header(":path", denied);
        assert_eq!(handle(&host, INBOUND_GRPC), Next::Stop, "{denied}");
        let reply = host.reply();
        // 403 is PERMISSION_DENIED to Envoy; no JSON: the message is the grpc-message.
        assert_eq!((reply.status, reply.headers.len()), (403, 0), "{reply:?}");
        assert!(
            reply
                .body_text()
                .ends_with(&format!("operation: {denied} verb: NONE")),
            "{}",
            reply.body_text()
        );
    }
}

#[test]
fn a_grpc_outbound_refusal_is_a_grpc_error_and_its_path_is_never_read() {
    let json = r#"{"app_id": "checkout", "calls": "grpc",
        "apps": {"order-processor": {"cluster": "order-processor"}}}"#;
    let host = FakeHost::new().with_header(":path", "/orders.Orders/Submit");
    assert_eq!(handle(&host, json), Next::Stop);
    let reply = host.reply();
    assert_eq!((reply.status, reply.headers.len()), (500, 0));
    assert!(reply
        .body_text()
        .contains("required metadata dapr-callee-app-id or dapr-app-id"));
    let host = FakeHost::new()
        .with_header(":path", "/orders.Orders/Submit")
        .with_header("dapr-app-id", "order-processor");
    assert_eq!(handle(&host, json), Next::Continue);
    assert_eq!(host.one(":path"), "/orders.Orders/Submit");
    // dapr-callee-app-id, dapr-app-id, the cluster and the three identity headers.
    assert_eq!(host.host_calls(), 6);
}
