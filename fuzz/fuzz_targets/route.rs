//! The outbound decision, `route::decide`, with `:path` and `dapr-app-id` bytes in (input format:
//! `dapr_invoke_fuzz::input::route`).
//!
//! Properties, for two configurations (own namespace `default`, and `prod`):
//! - it never panics;
//! - it decides exactly what an independent reading of Dapr's HTTP API decides
//!   (`reference::asked`, `reference::target` and a hand-written table of the configured apps):
//!   a Forward goes to the app the request named (the id of the invoke URL, else the header) and
//!   to no other, with the invoke URL's method path and query as the new path; health endpoints
//!   are answered, never forwarded; every refusal has the documented status;
//! - where `uses_app_id_header` says the header is not read, the header changes nothing;
//! - every refusal's body is Dapr's JSON error.
#![no_main]

use dapr_invoke::config::Config;
use dapr_invoke::route::{decide, uses_app_id_header, Decision, Request};
use dapr_invoke_fuzz::input;
use dapr_invoke_fuzz::reference::{self, Asked};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// A configuration, and the same apps written out by hand as (app id, namespace, cluster).
struct Case {
    config: Config,
    own_namespace: &'static str,
    apps: &'static [(&'static str, &'static str, &'static str)],
}

static CASES: LazyLock<[Case; 2]> = LazyLock::new(|| {
    let load = |json: &str| Config::from_json(json.as_bytes()).expect("the fixture loads");
    [
        Case {
            config: load(
                r#"{"app_id": "checkout", "apps": {
                "order-processor": {"cluster": "op"},
                "payments.prod": {"cluster": "pay-prod"},
                "a": {"cluster": "a-default"}, "a.other": {"cluster": "a-other"},
                "X_9": {"cluster": "x9"},
                "a23456789012345678901234567890123456789012345678901234567890123": {"cluster": "long"}}}"#,
            ),
            own_namespace: "default",
            apps: &[
                ("order-processor", "default", "op"),
                ("payments", "prod", "pay-prod"),
                ("a", "default", "a-default"),
                ("a", "other", "a-other"),
                ("X_9", "default", "x9"),
                (
                    "a23456789012345678901234567890123456789012345678901234567890123",
                    "default",
                    "long",
                ),
            ],
        },
        Case {
            config: load(
                r#"{"app_id": "checkout", "namespace": "prod", "cluster_header": "x-route",
                "apps": {"order-processor.default": {"cluster": "op-default"},
                         "payments": {"cluster": "pay"}, "b.other": {"cluster": "b-other"}}}"#,
            ),
            own_namespace: "prod",
            apps: &[
                ("order-processor", "default", "op-default"),
                ("payments", "prod", "pay"),
                ("b", "other", "b-other"),
            ],
        },
    ]
});

/// A decision by value: where it forwards (and with which new path), or the status it answers.
#[derive(Debug, PartialEq)]
enum Want {
    Forward {
        app_id: String,
        namespace: String,
        cluster: String,
        path: Option<String>,
    },
    Healthy,
    Reject(u32),
}

fn want(case: &Case, path: &str, header: Option<&[u8]>) -> Want {
    let resolve = |raw: &str, new_path: Option<String>| {
        let Some((id, ns)) = reference::target(raw, case.own_namespace) else {
            return Want::Reject(400);
        };
        match case.apps.iter().find(|(a, n, _)| *a == id && *n == ns) {
            Some((a, n, c)) => Want::Forward {
                app_id: a.to_string(),
                namespace: n.to_string(),
                cluster: c.to_string(),
                path: new_path,
            },
            None => Want::Reject(500),
        }
    };
    match reference::asked(path, header) {
        Asked::Invoke { id, path } => resolve(&id, Some(path)),
        Asked::BadInvoke => Want::Reject(404),
        Asked::Health => Want::Healthy,
        Asked::Header(None) => Want::Reject(404),
        Asked::Header(Some(h)) if h.is_empty() => Want::Reject(404),
        Asked::Header(Some(h)) => match std::str::from_utf8(&h) {
            Ok(raw) => resolve(raw, None),
            Err(_) => Want::Reject(400),
        },
    }
}

fn got(d: &Decision<'_>) -> Want {
    match d {
        Decision::Forward { app, path } => Want::Forward {
            app_id: app.app_id.clone(),
            namespace: app.namespace.clone(),
            cluster: app.cluster.clone(),
            path: path.clone(),
        },
        Decision::Healthy => Want::Healthy,
        Decision::Reject(e) => {
            assert_eq!(e.code, "ERR_DIRECT_INVOKE");
            let body: serde_json::Value = serde_json::from_str(&e.body()).expect("a JSON body");
            assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
            assert!(body["message"].is_string());
            Want::Reject(e.status)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (path, header) = input::route(data);
    // The filter refuses a path that is not UTF-8 before deciding; decide on what is left.
    let path = String::from_utf8_lossy(path);
    for case in CASES.iter() {
        let req = Request {
            path: &path,
            app_id_header: header,
        };
        let decision = decide(&case.config, &req);
        assert_eq!(
            got(&decision),
            want(case, &path, header),
            "path {path:?} dapr-app-id {:?} (own namespace {})",
            header.map(String::from_utf8_lossy),
            case.own_namespace
        );
        if !uses_app_id_header(&path) {
            let without = decide(
                &case.config,
                &Request {
                    path: &path,
                    app_id_header: None,
                },
            );
            assert_eq!(
                decision, without,
                "the header changed a decision that skips it"
            );
        }
    }
});
