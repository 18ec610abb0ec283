//! The outbound decision, `route::decide` and `route::decide_grpc`, with `:path` and the headers
//! they may read (`dapr-app-id`, `:method`, `authorization`, `dapr-api-token`,
//! `dapr-callee-app-id`) as bytes (input format: `dapr_invoke_fuzz::input::route`).
//!
//! Properties, for three configurations (own namespace `default` without an API token; `prod`
//! with one; a gRPC one, `"calls": "grpc"`, decided by `decide_grpc`):
//! - it never panics;
//! - it decides exactly what an independent reading of Dapr's sidecar API decides
//!   (`reference::asked` / `asked_grpc`, `reference::target` and a hand-written table of the
//!   configured apps): a Forward goes to the app the request named (the invoke URL's id, else
//!   `dapr-app-id`, else the basic-auth user; for gRPC, `dapr-callee-app-id`, else
//!   `dapr-app-id`) and to no other, with the invoke URL's method path and query as the new
//!   path; the sidecar's own endpoints (health, metadata) never forward; the API token is
//!   required where the docs require it; every answer has the documented status and code;
//! - it reads no other headers than those, and the headers it did not read cannot change its
//!   decision (the filter skips those host calls).
#![no_main]

use dapr_invoke::config::Config;
use dapr_invoke::route::{decide, decide_grpc, Decision, INVALID_API_TOKEN};
use dapr_invoke_fuzz::input::{self, RouteRequest};
use dapr_invoke_fuzz::reference::{self, Asked, Headers};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::LazyLock;

/// A configuration, and the same apps written out by hand as (app id, namespace, cluster).
struct Case {
    config: Config,
    /// `"calls": "grpc"`: decided by `decide_grpc`.
    grpc: bool,
    own_namespace: &'static str,
    api_token: Option<&'static [u8]>,
    apps: &'static [(&'static str, &'static str, &'static str)],
}

const TOKEN: &str = "s3cret";

static CASES: LazyLock<[Case; 3]> = LazyLock::new(|| {
    let env = |name: &str| (name == "DAPR_API_TOKEN").then(|| TOKEN.to_string());
    let load = |json: &str| Config::load(json.as_bytes(), &env).expect("the fixture loads");
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
            grpc: false,
            own_namespace: "default",
            api_token: None,
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
                "api_token_env": "DAPR_API_TOKEN",
                "apps": {"order-processor.default": {"cluster": "op-default"},
                         "payments": {"cluster": "pay"}, "b.other": {"cluster": "b-other"}}}"#,
            ),
            grpc: false,
            own_namespace: "prod",
            api_token: Some(TOKEN.as_bytes()),
            apps: &[
                ("order-processor", "default", "op-default"),
                ("payments", "prod", "pay"),
                ("b", "other", "b-other"),
            ],
        },
        Case {
            config: load(
                r#"{"app_id": "checkout", "calls": "grpc", "api_token_env": "DAPR_API_TOKEN",
                "apps": {"order-processor": {"cluster": "op"}, "payments.prod": {"cluster": "pay"}}}"#,
            ),
            grpc: true,
            own_namespace: "default",
            api_token: Some(TOKEN.as_bytes()),
            apps: &[
                ("order-processor", "default", "op"),
                ("payments", "prod", "pay"),
            ],
        },
    ]
});

/// A decision by value.
#[derive(Debug, PartialEq)]
enum Want {
    Forward {
        app_id: String,
        namespace: String,
        cluster: String,
        path: Option<String>,
        drop_authorization: bool,
    },
    Answer {
        status: u32,
        error_code: Option<String>,
    },
    Metadata,
}

fn want(case: &Case, path: &str, req: &RouteRequest<'_>) -> Want {
    let headers = Headers {
        method: req.method,
        app_id: req.app_id,
        authorization: req.authorization,
        api_token: req.api_token,
        callee_app_id: req.callee_app_id,
    };
    // A gRPC refusal is `UNKNOWN` (500) but for the token; an HTTP one is Dapr's JSON error.
    let err = |status| match case.grpc {
        true => Want::Answer {
            status: 500,
            error_code: None,
        },
        false => Want::Answer {
            status,
            error_code: Some("ERR_DIRECT_INVOKE".into()),
        },
    };
    let asked = match case.grpc {
        true => reference::asked_grpc(&headers, case.api_token),
        false => reference::asked(path, &headers, "checkout", case.api_token),
    };
    match asked {
        Asked::Call {
            id,
            path,
            drop_authorization,
        } => {
            let Some((id, ns)) = std::str::from_utf8(&id)
                .ok()
                .and_then(|id| reference::target(id, case.own_namespace))
            else {
                return err(400);
            };
            match case.apps.iter().find(|(a, n, _)| *a == id && *n == ns) {
                Some((a, n, c)) => Want::Forward {
                    app_id: a.to_string(),
                    namespace: n.to_string(),
                    cluster: c.to_string(),
                    path,
                    drop_authorization,
                },
                None => err(500),
            }
        }
        Asked::Answer { status, error_code } => Want::Answer {
            status,
            error_code: error_code.map(str::to_string),
        },
        Asked::Metadata => Want::Metadata,
    }
}

fn got(d: &Decision<'_>) -> Want {
    match d {
        Decision::Forward(f) => Want::Forward {
            app_id: f.app.app_id.to_string(),
            namespace: f.app.namespace.to_string(),
            cluster: f.app.app.cluster.to_string(),
            path: f.path.clone(),
            drop_authorization: f.drop_authorization,
        },
        Decision::Reply(r) => {
            let error_code = match r.content_type {
                Some("application/json") => {
                    let body: serde_json::Value =
                        serde_json::from_slice(&r.body).expect("a JSON error body");
                    assert!(body["message"].is_string(), "{body}");
                    Some(
                        body["errorCode"]
                            .as_str()
                            .expect("an errorCode")
                            .to_string(),
                    )
                }
                Some(_) => {
                    assert_eq!((r.status, &r.body[..]), (401, INVALID_API_TOKEN.as_bytes()));
                    None
                }
                // Empty, or a gRPC error's message (Envoy's `grpc-message`).
                None => None,
            };
            Want::Answer {
                status: r.status,
                error_code,
            }
        }
        Decision::Metadata => Want::Metadata,
    }
}

fuzz_target!(|data: &[u8]| {
    let req = input::route(data);
    // The filter refuses a path that is not UTF-8 before deciding; decide on what is left.
    let path = String::from_utf8_lossy(req.path);
    for case in CASES.iter() {
        let read = RefCell::new(Vec::new());
        let header = |name: &str| {
            read.borrow_mut().push(name.to_string());
            Ok::<_, Infallible>(req.header(name).map(<[u8]>::to_vec))
        };
        let decision = match case.grpc {
            true => decide_grpc(&case.config, header),
            false => decide(&case.config, &path, header),
        };
        let Ok(decision) = decision;
        assert_eq!(
            got(&decision),
            want(case, &path, &req),
            "{req:?} (own namespace {})",
            case.own_namespace
        );
        // Only the headers it read matter.
        let read = read.into_inner();
        for name in &read {
            assert!(
                [
                    "dapr-app-id",
                    ":method",
                    "authorization",
                    "dapr-api-token",
                    "dapr-callee-app-id"
                ]
                .contains(&name.as_str()),
                "read {name}"
            );
        }
        let only_read = |name: &str| {
            let known = read.iter().any(|r| r == name);
            Ok::<_, Infallible>(req.header(name).filter(|_| known).map(<[u8]>::to_vec))
        };
        let Ok(again) = match case.grpc {
            true => decide_grpc(&case.config, only_read),
            false => decide(&case.config, &path, only_read),
        };
        assert_eq!(
            again, decision,
            "a header it did not read changed the decision"
        );
    }
});
