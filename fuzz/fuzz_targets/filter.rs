//! The request glue, `filter::on_request_headers`, on the fake host: arbitrary header bytes, an
//! optional peer certificate, host calls that fail (input format: `dapr_invoke_fuzz::input::filter`).
//!
//! The first line picks the configuration: `out` (checkout's outbound filter), `out-route`
//! (another namespace and cluster header), `in` (order-processor's inbound filter with a policy),
//! `in-open` (inbound, no policy), `none` (no configuration accepted); anything else picks one by
//! its length.
//!
//! Properties:
//! - it never panics, and answers at most once; a request it lets through got no answer, and a
//!   request it stops got exactly one (unless sending it is the call that fails);
//! - outbound, a request let through carries exactly one cluster header, the cluster of the app
//!   the request named (reference reading of the invoke URL, else the first `dapr-app-id`), never
//!   a value the request set; the identity headers hold the sidecar's values, once each; an invoke
//!   URL is rewritten to its method path; and with no failing host call, every request the
//!   reference forwards is let through;
//! - inbound, a request let through has exactly one valid SPIFFE id in its peer certificate, the
//!   caller headers hold it once each, the documented policy allows the call, and a method sent in
//!   lower case is delivered upper-case, as checked; with no failing host call, every call the
//!   reference allows is let through.
#![no_main]

use dapr_invoke::config::Config;
use dapr_invoke::filter::fake::FakeHost;
use dapr_invoke::filter::{on_request_headers, Next};
use dapr_invoke_fuzz::input::{self, FilterRequest};
use dapr_invoke_fuzz::reference::{self, acl::Acl, Asked};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

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
    apps: &'static [App],
}

struct Fixtures {
    out: Outbound,
    out_route: Outbound,
    inbound: Config,
    inbound_open: Config,
    policy: Acl,
}

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let load = |json: &str| Config::from_json(json.as_bytes()).expect("the fixture loads");
    Fixtures {
        out: Outbound {
            config: load(
                r#"{"app_id": "checkout", "apps": {
                "order-processor": {"cluster": "order-processor", "timeout_ms": 1500,
                                    "max_retries": 2, "retry_on": "5xx"},
                "payments.prod": {"cluster": "payments-prod"}}}"#,
            ),
            namespace: "default",
            cluster_header: "x-dapr-cluster",
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
                "apps": {"order-processor.default": {"cluster": "op"}, "payments": {"cluster": "pay"}}}"#,
            ),
            namespace: "prod",
            cluster_header: "x-route",
            apps: &[
                ("order-processor", "default", "op", &[]),
                ("payments", "prod", "pay", &[]),
            ],
        },
        inbound: load(&format!(
            r#"{{"app_id": "order-processor", "mode": "inbound", "access_control": {POLICY}}}"#
        )),
        inbound_open: load(r#"{"app_id": "order-processor", "mode": "inbound"}"#),
        policy: Acl::from_value(&serde_json::from_str(POLICY).expect("JSON")).expect("valid"),
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
        b"in" => 2,
        b"in-open" => 3,
        b"none" => 4,
        other => other.len() % 5,
    };
    let config = match choice {
        0 => Some(&f.out.config),
        1 => Some(&f.out_route.config),
        2 => Some(&f.inbound),
        3 => Some(&f.inbound_open),
        _ => None,
    };
    let next = on_request_headers(&host, 7, config);

    let replies = host.replies();
    let reply_fails = req.failing.iter().any(|c| c == "reply");
    match next {
        Next::Continue => assert!(replies.is_empty(), "let through and answered: {replies:?}"),
        Next::Stop if reply_fails => assert!(replies.is_empty()),
        Next::Stop => {
            assert_eq!(replies.len(), 1, "stopped with {} answers", replies.len());
            let r = &replies[0];
            if r.status != 204 {
                let body: serde_json::Value =
                    serde_json::from_str(r.body_text()).expect("a JSON error body");
                assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
            }
        }
    }
    match choice {
        0 => outbound(&f.out, &req, &host, next),
        1 => outbound(&f.out_route, &req, &host, next),
        2 => inbound(Some(&f.policy), &req, &host, next),
        3 => inbound(None, &req, &host, next),
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

fn outbound(o: &Outbound, req: &FilterRequest, host: &FakeHost, next: Next) {
    let path = first(req, ":path").unwrap_or_default();
    // The app the reference says the request names, and the new path, if it forwards.
    let want = std::str::from_utf8(path).ok().and_then(|path| {
        let (raw, new_path) = match reference::asked(path, first(req, "dapr-app-id")) {
            Asked::Invoke { id, path } => (id, Some(path)),
            Asked::Header(Some(h)) => (String::from_utf8(h).ok()?, None),
            _ => return None,
        };
        let (id, ns) = reference::target(&raw, o.namespace)?;
        let app = o.apps.iter().find(|(a, n, _, _)| *a == id && *n == ns)?;
        Some((app, new_path))
    });
    if next == Next::Stop {
        assert!(
            !req.failing.is_empty() || want.is_none(),
            "refused a request the reference forwards: {req:?}"
        );
        return;
    }
    let Some(((app_id, _, cluster, policy), new_path)) = want else {
        panic!("let through a request that names no configured app: {req:?}");
    };
    let once = |name: &str, value: &str| {
        assert_eq!(host.header(name), [value], "{name} after {req:?}");
    };
    once(o.cluster_header, cluster);
    once("dapr-caller-app-id", "checkout");
    once("dapr-caller-namespace", o.namespace);
    once("dapr-callee-app-id", app_id);
    for (name, value) in *policy {
        once(name, value);
    }
    match new_path {
        Some(p) => once(":path", &p),
        None => {
            let sent: Vec<String> = req
                .headers
                .iter()
                .filter(|(n, _)| n == ":path")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect();
            assert_eq!(
                host.header(":path"),
                sent,
                "the path changed without an invoke URL"
            );
        }
    }
}

fn inbound(policy: Option<&Acl>, req: &FilterRequest, host: &FakeHost, next: Next) {
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
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        assert_eq!(
            host.header(":method"),
            [method.to_ascii_uppercase()],
            "{req:?}"
        );
    }
}
