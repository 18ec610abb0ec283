//! The request glue, `filter::on_request_headers` and `on_request_body`, on the fake host:
//! arbitrary header bytes, an optional peer certificate, host calls that fail, body pieces
//! (input format: `dapr_invoke_fuzz::input::filter`).
//!
//! The first line picks the configuration: `out` (checkout's outbound filter, with a 1 KiB body
//! limit), `out-route` (another namespace and cluster header, an API token, and the identity
//! headers left to the routes: `identity_headers: "route"`), `out-grpc` (Dapr's gRPC proxying,
//! with an API token), `in` (order-processor's inbound filter with a policy), `in-grpc` (the same
//! for a gRPC app: method names, no verbs), `in-open` (inbound, no policy), `none` (no
//! configuration accepted); anything else picks one by its length.
//!
//! Properties:
//! - it never panics, and answers at most once; a request it lets through got no answer, and a
//!   request it stops got exactly one (unless sending it is the call that fails);
//! - outbound, a request let through carries exactly one cluster header, the cluster of the app
//!   the request named (the reference reading of the invoke URL, `dapr-app-id` or basic-auth;
//!   for gRPC, `dapr-callee-app-id` or `dapr-app-id`), never a value the request set; the
//!   identity headers hold the sidecar's values, once each (or, where the routes set them, are
//!   left as they came); an invoke URL is rewritten to its method path; an `authorization` that
//!   named the app is removed; with no failing host call, it forwards exactly what the reference
//!   forwards and answers with the reference's status otherwise;
//! - outbound with a body limit, a body over the limit never passes whole: refused up front by
//!   its `content-length`, or with 413 at the piece that goes over;
//! - inbound, a request let through has exactly one valid SPIFFE id in its peer certificate, the
//!   caller headers hold it once each, the documented policy allows the call (for gRPC, by method
//!   name, no verb), and an HTTP method sent in lower case is delivered upper-case, as checked;
//!   with no failing host call, every call the reference allows is let through.
#![no_main]

use dapr_invoke::config::Config;
use dapr_invoke::filter::fake::FakeHost;
use dapr_invoke::filter::{on_request_body, on_request_headers, Body, Next};
use dapr_invoke_fuzz::input::{self, FilterRequest};
use dapr_invoke_fuzz::reference::{self, acl::Acl, Asked, Headers};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// order-processor's gRPC policy: checkout may submit orders; method names in their case.
const GRPC_POLICY: &str = r#"{"defaultAction": "deny", "policies": [{"appId": "checkout",
    "trustDomain": "public", "namespace": "default", "defaultAction": "deny",
    "operations": [{"name": "/orders.Orders/Submit", "action": "allow"},
                   {"name": "/orders.Orders/*", "httpVerb": ["POST"], "action": "deny"},
                   {"name": "/health.*/**", "action": "allow"}]}]}"#;

const POLICY: &str = r#"{"defaultAction": "deny", "policies": [{"appId": "checkout",
    "trustDomain": "public", "namespace": "default", "defaultAction": "deny",
    "operations": [{"name": "/orders", "httpVerb": ["POST"], "action": "allow"},
                   {"name": "/admin", "httpVerb": ["*"], "action": "deny"},
                   {"name": "/pub/**", "httpVerb": ["GET"], "action": "allow"}]}]}"#;

/// A configured app written out by hand: app id, namespace, cluster, and the router headers its
/// call policy adds.
type App = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

struct Outbound {
    config: Config,
    namespace: &'static str,
    cluster_header: &'static str,
    /// `"calls": "grpc"`: Dapr's gRPC proxying.
    grpc: bool,
    /// The filter writes the identity headers (else the routes do).
    stamp_identity: bool,
    api_token: Option<&'static [u8]>,
    max_body: Option<u64>,
    apps: &'static [App],
}

struct Fixtures {
    out: Outbound,
    out_route: Outbound,
    out_grpc: Outbound,
    inbound: Config,
    inbound_grpc: Config,
    inbound_open: Config,
    policy: Acl,
    grpc_policy: Acl,
}

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let env = |name: &str| (name == "DAPR_API_TOKEN").then(|| "s3cret".to_string());
    let load = |json: &str| Config::load(json.as_bytes(), &env).expect("the fixture loads");
    Fixtures {
        out: Outbound {
            config: load(
                r#"{"app_id": "checkout", "max_body_bytes": 1024,
                "app_channel": {"port": 6001, "protocol": "http", "channel_address": "127.0.0.1"},
                "apps": {
                "order-processor": {"cluster": "order-processor", "timeout_ms": 1500,
                                    "max_retries": 2, "retry_on": "5xx"},
                "payments.prod": {"cluster": "payments-prod"}}}"#,
            ),
            namespace: "default",
            cluster_header: "x-dapr-cluster",
            grpc: false,
            stamp_identity: true,
            api_token: None,
            max_body: Some(1024),
            apps: &[
                (
                    "order-processor",
                    "default",
                    "order-processor",
                    &[
                        ("x-envoy-upstream-rq-timeout-ms", "1500"),
                        ("x-envoy-max-retries", "2"),
                        ("x-envoy-retry-on", "5xx"),
                    ],
                ),
                ("payments", "prod", "payments-prod", &[]),
            ],
        },
        out_route: Outbound {
            config: load(
                r#"{"app_id": "checkout", "namespace": "prod", "cluster_header": "x-route",
                "api_token_env": "DAPR_API_TOKEN", "identity_headers": "route",
                "apps": {"order-processor.default": {"cluster": "op"}, "payments": {"cluster": "pay"}}}"#,
            ),
            namespace: "prod",
            cluster_header: "x-route",
            grpc: false,
            stamp_identity: false,
            api_token: Some(b"s3cret"),
            max_body: None,
            apps: &[
                ("order-processor", "default", "op", &[]),
                ("payments", "prod", "pay", &[]),
            ],
        },
        out_grpc: Outbound {
            config: load(
                r#"{"app_id": "checkout", "calls": "grpc", "api_token_env": "DAPR_API_TOKEN",
                "apps": {"order-processor": {"cluster": "op"}, "payments.prod": {"cluster": "pay"}}}"#,
            ),
            namespace: "default",
            cluster_header: "x-dapr-cluster",
            grpc: true,
            stamp_identity: true,
            api_token: Some(b"s3cret"),
            max_body: None,
            apps: &[
                ("order-processor", "default", "op", &[]),
                ("payments", "prod", "pay", &[]),
            ],
        },
        inbound: load(&format!(
            r#"{{"app_id": "order-processor", "mode": "inbound", "access_control": {POLICY}}}"#
        )),
        inbound_grpc: load(&format!(
            r#"{{"app_id": "order-processor", "mode": "inbound", "calls": "grpc",
                "access_control": {GRPC_POLICY}}}"#
        )),
        inbound_open: load(r#"{"app_id": "order-processor", "mode": "inbound"}"#),
        policy: Acl::from_value(&serde_json::from_str(POLICY).expect("JSON")).expect("valid"),
        grpc_policy: Acl::from_value(&serde_json::from_str(GRPC_POLICY).expect("JSON"))
            .expect("valid"),
    }
});

fuzz_target!(|data: &[u8]| {
    let req = input::filter(data);
    let mut host = FakeHost::new();
    for (name, value) in &req.headers {
        host = host.with_header(name, value.clone());
    }
    if let Some(peer) = &req.peer {
        host = host.with_peer(peer.clone());
    }
    for call in &req.failing {
        host = host.failing(call);
    }
    let f = &*FIXTURES;
    let choice = match req.config.as_slice() {
        b"out" => 0,
        b"out-route" => 1,
        b"out-grpc" => 2,
        b"in" => 3,
        b"in-grpc" => 4,
        b"in-open" => 5,
        b"none" => 6,
        other => other.len() % 7,
    };
    let config = match choice {
        0 => Some(&f.out.config),
        1 => Some(&f.out_route.config),
        2 => Some(&f.out_grpc.config),
        3 => Some(&f.inbound),
        4 => Some(&f.inbound_grpc),
        5 => Some(&f.inbound_open),
        _ => None,
    };
    let mut body = Body::default();
    let next = on_request_headers(&host, 7, config, &mut body);

    let replies = host.replies();
    let reply_fails = req.failing.iter().any(|c| c == "reply");
    match next {
        Next::Continue => assert!(replies.is_empty(), "let through and answered: {replies:?}"),
        Next::Stop if reply_fails => assert!(replies.is_empty()),
        Next::Stop => {
            assert_eq!(replies.len(), 1, "stopped with {} answers", replies.len());
            let r = &replies[0];
            if r.headers.iter().any(|(_, v)| v == "application/json") && r.status != 200 {
                let body: serde_json::Value =
                    serde_json::from_str(r.body_text()).expect("a JSON error body");
                assert!(body["errorCode"].is_string(), "{body}");
            }
        }
    }
    match choice {
        0 => outbound(&f.out, &req, &host, next, &mut body),
        1 => outbound(&f.out_route, &req, &host, next, &mut body),
        2 => outbound(&f.out_grpc, &req, &host, next, &mut body),
        3 => inbound(Some(&f.policy), false, &req, &host, next),
        4 => inbound(Some(&f.grpc_policy), true, &req, &host, next),
        5 => inbound(None, false, &req, &host, next),
        _ => assert_eq!(next, Next::Stop, "no configuration, yet let through"),
    }
});

/// The first value of a header in the request as sent (Envoy hands the filter the first).
fn first<'a>(req: &'a FilterRequest, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// What the reference says of an outbound request: the app it goes to (with the new path and
/// whether `authorization` goes), or the status it is answered with.
enum Want {
    Forward(&'static App, Option<String>, bool),
    Answer(u32),
}

fn want(o: &Outbound, req: &FilterRequest) -> Want {
    let headers = Headers {
        method: first(req, ":method"),
        app_id: first(req, "dapr-app-id"),
        authorization: first(req, "authorization"),
        api_token: first(req, "dapr-api-token"),
        callee_app_id: first(req, "dapr-callee-app-id"),
    };
    // A gRPC call is never read by its path; its refusals are `UNKNOWN` (500) but for the token.
    let asked = if o.grpc {
        reference::asked_grpc(&headers, o.api_token)
    } else {
        let Ok(path) = std::str::from_utf8(first(req, ":path").unwrap_or_default()) else {
            return Want::Answer(404);
        };
        reference::asked(path, &headers, "checkout", o.api_token)
    };
    let refused = |status| Want::Answer(if o.grpc { 500 } else { status });
    match asked {
        Asked::Call {
            id,
            path,
            drop_authorization,
        } => {
            let Some((id, ns)) = std::str::from_utf8(&id)
                .ok()
                .and_then(|id| reference::target(id, o.namespace))
            else {
                return refused(400);
            };
            match o.apps.iter().find(|(a, n, _, _)| *a == id && *n == ns) {
                Some(app) => Want::Forward(app, path, drop_authorization),
                None => refused(500),
            }
        }
        Asked::Answer { status, .. } => Want::Answer(status),
        Asked::Metadata => Want::Answer(200),
    }
}

/// Every value of a header as sent, as text.
fn sent(req: &FilterRequest, name: &str) -> Vec<String> {
    req.headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn outbound(o: &Outbound, req: &FilterRequest, host: &FakeHost, next: Next, body: &mut Body) {
    // A content-length as Envoy lets it through: digits (Envoy refuses anything else).
    let length = first(req, "content-length").map(|l| {
        std::str::from_utf8(l)
            .ok()
            .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u64>().ok())
    });
    let too_long = matches!((length, o.max_body), (Some(Some(l)), Some(max)) if l > max);
    let envoy_valid = !matches!(length, Some(None));
    let want = want(o, req);
    if next == Next::Stop {
        let status = host.replies().first().map(|r| r.status);
        match &want {
            _ if !req.failing.is_empty() || !envoy_valid => {}
            Want::Forward(..) if too_long => assert_eq!(status, Some(413), "{req:?}"),
            Want::Forward(..) => panic!("refused a request the reference forwards: {req:?}"),
            Want::Answer(s) => assert_eq!(status, Some(*s), "{req:?}"),
        }
        return;
    }
    let Want::Forward((app_id, _, cluster, policy), new_path, drop_authorization) = want else {
        panic!("let through a request the reference answers: {req:?}");
    };
    assert!(
        !too_long,
        "let through a body longer than the limit: {req:?}"
    );
    let once = |name: &str, value: &str| {
        assert_eq!(host.header(name), [value], "{name} after {req:?}");
    };
    once(o.cluster_header, cluster);
    let identity = [
        ("dapr-caller-app-id", "checkout"),
        ("dapr-caller-namespace", o.namespace),
        ("dapr-callee-app-id", app_id),
    ];
    for (name, value) in identity {
        if o.stamp_identity {
            once(name, value);
        } else {
            assert_eq!(
                host.header(name),
                sent(req, name),
                "{name} changed: {req:?}"
            );
        }
    }
    for (name, value) in *policy {
        once(name, value);
    }
    match new_path {
        Some(p) => once(":path", &p),
        None => assert_eq!(
            host.header(":path"),
            sent(req, ":path"),
            "path changed: {req:?}"
        ),
    }
    if drop_authorization {
        assert!(host.header("authorization").is_empty(), "{req:?}");
    } else {
        assert_eq!(
            host.header("authorization"),
            sent(req, "authorization"),
            "{req:?}"
        );
    }

    // The body: without a length, counted as it passes; never more than the limit gets through.
    let (Some(max), None) = (o.max_body, length) else {
        for size in &req.body {
            assert_eq!(
                on_request_body(host, 7, Some(&o.config), body, *size),
                Next::Continue
            );
        }
        return;
    };
    let mut passed: u64 = 0;
    for size in &req.body {
        let before = host.replies().len();
        match on_request_body(host, 7, Some(&o.config), body, *size) {
            Next::Continue => {
                passed += *size as u64;
                assert!(
                    passed <= max,
                    "{passed} bytes passed, the limit is {max}: {req:?}"
                );
            }
            Next::Stop => {
                assert!(
                    passed + *size as u64 > max,
                    "stopped at {passed} + {size}: {req:?}"
                );
                if !req.failing.iter().any(|c| c == "reply") {
                    assert_eq!(host.replies().len(), before + 1);
                    assert_eq!(host.replies().last().map(|r| r.status), Some(413));
                }
                return;
            }
        }
    }
}

fn inbound(policy: Option<&Acl>, grpc: bool, req: &FilterRequest, host: &FakeHost, next: Next) {
    // The identity: exactly one valid SPIFFE id among the peer's URI SANs.
    let ids: Vec<(String, String, String)> = req
        .peer
        .as_deref()
        .and_then(|p| std::str::from_utf8(p).ok())
        .map(|p| {
            p.split(',')
                .filter_map(|u| reference::spiffe(u.trim()))
                .collect()
        })
        .unwrap_or_default();
    let method = first(req, ":method")
        .and_then(|m| std::str::from_utf8(m).ok())
        .unwrap_or("");
    let path = first(req, ":path")
        .and_then(|p| std::str::from_utf8(p).ok())
        .unwrap_or("");
    let allowed = match ids.as_slice() {
        [(td, ns, app)] if grpc => policy.is_none_or(|acl| acl.allows_grpc(td, ns, app, path)),
        [(td, ns, app)] => policy.is_none_or(|acl| acl.allows(td, ns, app, method, path)),
        _ => false,
    };
    if next == Next::Stop {
        assert!(
            !req.failing.is_empty() || !allowed,
            "refused a call the documented policy allows: {req:?}"
        );
        return;
    }
    assert!(
        allowed,
        "let through a call the documented policy denies: {req:?}"
    );
    let [(_, ns, app)] = ids.as_slice() else {
        unreachable!()
    };
    assert_eq!(host.header("dapr-caller-app-id"), [app.as_str()]);
    assert_eq!(host.header("dapr-caller-namespace"), [ns.as_str()]);
    if grpc {
        // No verb to check: the method is not read, and goes on as it came.
        assert_eq!(host.header(":method"), sent(req, ":method"), "{req:?}");
    } else if method.bytes().any(|b| b.is_ascii_lowercase()) {
        assert_eq!(
            host.header(":method"),
            [method.to_ascii_uppercase()],
            "{req:?}"
        );
    }
}
