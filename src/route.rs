//! The outbound decision: from the few parts of a request that matter (its path and its
//! `dapr-app-id` header) to what the sidecar does with it. Pure: no host calls, so every branch
//! is unit-tested on the host.
//!
//! The order follows Dapr's HTTP API: an invoke URL wins, then Dapr's own health endpoints, then
//! the `dapr-app-id` header; a request with none of them names no app.

use crate::config::{App, Config};
use crate::error::DaprError;
use crate::ids::Target;

/// Dapr's invoke URL: `/v1.0/invoke/<app-id>/method/<method-path>`.
pub const INVOKE_PREFIX: &str = "/v1.0/invoke/";
const METHOD_SEGMENT: &str = "/method/";
/// Dapr's sidecar health endpoints, which SDKs poll before their first call.
pub const HEALTH_PATHS: &[&str] = ["/v1.0/healthz", "/v1.0/healthz/outbound"].as_slice();

/// What the decision reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `:path` pseudo-header: path and query string.
    pub path: &'a str,
    /// The raw value of `dapr-app-id`, when the request has one.
    pub app_id_header: Option<&'a [u8]>,
}

/// What the sidecar does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Forward to `app`'s cluster, with `path` as the new `:path` when the request used the
    /// invoke URL.
    Forward { app: &'a App, path: Option<String> },
    /// A health check of the sidecar itself: answer 204.
    Healthy,
    /// Answer with this error; nothing is forwarded.
    Reject(DaprError),
}

/// Decides what to do with one request.
///
/// ```
/// use dapr_invoke::{config::Config, route::{decide, Decision, Request}};
/// let c = Config::from_json(br#"{"app_id": "checkout",
///     "apps": {"order-processor": {"cluster": "op"}}}"#).unwrap();
/// let req = Request { path: "/v1.0/invoke/order-processor/method/orders?x=1", app_id_header: None };
/// let Decision::Forward { app, path } = decide(&c, &req) else { panic!() };
/// assert_eq!((app.cluster.as_str(), path.as_deref()), ("op", Some("/orders?x=1")));
/// ```
pub fn decide<'c>(config: &'c Config, req: &Request<'_>) -> Decision<'c> {
    if let Some(rest) = req.path.strip_prefix(INVOKE_PREFIX) {
        return match split_invoke(rest) {
            Ok((raw_id, new_path)) => match resolve(config, raw_id) {
                Ok(app) => Decision::Forward {
                    app,
                    path: Some(new_path),
                },
                Err(e) => Decision::Reject(e),
            },
            Err(e) => Decision::Reject(e),
        };
    }
    if is_health(req.path) {
        return Decision::Healthy;
    }
    match req.app_id_header {
        None | Some(b"") => Decision::Reject(DaprError::no_app_id()),
        Some(raw) => match std::str::from_utf8(raw) {
            Ok(raw_id) => match resolve(config, raw_id) {
                Ok(app) => Decision::Forward { app, path: None },
                Err(e) => Decision::Reject(e),
            },
            Err(_) => Decision::Reject(DaprError::invalid_app_id(
                &String::from_utf8_lossy(raw),
                &"is not valid UTF-8",
            )),
        },
    }
}

/// Whether [`decide`] reads the `dapr-app-id` header for this path. It does not for an invoke URL
/// (the URL names the app) or a health endpoint, so the filter can skip reading the header: one
/// host call less on those requests, and the same decision.
///
/// ```
/// use dapr_invoke::route::uses_app_id_header;
/// assert!(uses_app_id_header("/orders"));
/// assert!(!uses_app_id_header("/v1.0/invoke/order-processor/method/orders"));
/// assert!(!uses_app_id_header("/v1.0/healthz?x=1"));
/// ```
pub fn uses_app_id_header(path: &str) -> bool {
    !path.starts_with(INVOKE_PREFIX) && !is_health(path)
}

fn is_health(path: &str) -> bool {
    let bare_path = path.split('?').next().unwrap_or_default();
    HEALTH_PATHS.contains(&bare_path)
}

/// Splits what follows [`INVOKE_PREFIX`] into the raw app id and the method's new path (with the
/// query string kept).
fn split_invoke(rest: &str) -> Result<(&str, String), DaprError> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (raw_id, after_id) = match path.find('/') {
        Some(i) => path.split_at(i),
        None => (path, ""),
    };
    if raw_id.is_empty() {
        return Err(DaprError::no_app_id());
    }
    let Some(method) = after_id.strip_prefix(METHOD_SEGMENT) else {
        return Err(DaprError::bad_invoke_url("no /method/ after the app id"));
    };
    if method.is_empty() {
        return Err(DaprError::bad_invoke_url("the method is empty"));
    }
    let mut new_path = String::with_capacity(1 + method.len() + query.map_or(0, |q| q.len() + 1));
    new_path.push('/');
    new_path.push_str(method);
    if let Some(q) = query {
        new_path.push('?');
        new_path.push_str(q);
    }
    Ok((raw_id, new_path))
}

fn resolve<'c>(config: &'c Config, raw_id: &str) -> Result<&'c App, DaprError> {
    let target = Target::parse(raw_id).map_err(|e| DaprError::invalid_app_id(raw_id, &e))?;
    config.resolve(&target).ok_or_else(|| {
        DaprError::unknown_app(
            raw_id,
            target.app_id,
            target.namespace_or(&config.namespace),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_json(
            br#"{"app_id": "checkout", "namespace": "default",
                 "apps": {"order-processor": {"cluster": "order-processor"},
                          "payments.prod": {"cluster": "payments-prod"}}}"#,
        )
        .unwrap()
    }

    fn run(path: &str, header: Option<&[u8]>) -> Result<(String, Option<String>), DaprError> {
        let c = config();
        match decide(
            &c,
            &Request {
                path,
                app_id_header: header,
            },
        ) {
            Decision::Forward { app, path } => Ok((app.cluster.clone(), path)),
            Decision::Healthy => Ok(("<healthy>".into(), None)),
            Decision::Reject(e) => Err(e),
        }
    }

    fn ok(cluster: &str, path: Option<&str>) -> Result<(String, Option<String>), DaprError> {
        Ok((cluster.to_string(), path.map(str::to_string)))
    }

    #[test]
    fn header_form_keeps_the_path() {
        let op: Option<&[u8]> = Some(b"order-processor");
        assert_eq!(run("/orders", op), ok("order-processor", None));
        assert_eq!(run("/orders?a=1&b=2", op), ok("order-processor", None));
        assert_eq!(run("/", op), ok("order-processor", None));
        assert_eq!(
            run("/x", Some(b"order-processor.default")),
            ok("order-processor", None)
        );
        assert_eq!(run("/x", Some(b"payments.prod")), ok("payments-prod", None));
    }

    #[test]
    fn invoke_url_is_rewritten_with_its_query() {
        let cases = [
            ("/v1.0/invoke/order-processor/method/orders", "/orders"),
            (
                "/v1.0/invoke/order-processor/method/orders?id=7&x",
                "/orders?id=7&x",
            ),
            ("/v1.0/invoke/order-processor/method/a/b/c", "/a/b/c"),
            ("/v1.0/invoke/order-processor/method/orders?", "/orders?"),
            (
                "/v1.0/invoke/order-processor/method/o?q=/method/x",
                "/o?q=/method/x",
            ),
            (
                "/v1.0/invoke/order-processor.default/method/orders",
                "/orders",
            ),
        ];
        for (path, want) in cases {
            assert_eq!(run(path, None), ok("order-processor", Some(want)), "{path}");
        }
        assert_eq!(
            run("/v1.0/invoke/payments.prod/method/pay", None),
            ok("payments-prod", Some("/pay"))
        );
    }

    #[test]
    fn invoke_url_wins_over_the_header() {
        assert_eq!(
            run(
                "/v1.0/invoke/payments.prod/method/pay",
                Some(b"order-processor")
            ),
            ok("payments-prod", Some("/pay"))
        );
    }

    #[test]
    fn health_endpoints_are_answered_locally() {
        assert_eq!(run("/v1.0/healthz", None), ok("<healthy>", None));
        assert_eq!(
            run("/v1.0/healthz/outbound?x=1", None),
            ok("<healthy>", None)
        );
        assert_eq!(
            run("/v1.0/healthz", Some(b"order-processor")),
            ok("<healthy>", None)
        );
        assert_eq!(run("/v1.0/healthzz", None).unwrap_err().status, 404);
    }

    #[test]
    fn errors() {
        let cases: &[(&str, Option<&[u8]>, u32, &str)] = &[
            (
                "/orders",
                None,
                404,
                "failed getting app id either from the URL path or the header dapr-app-id",
            ),
            ("/orders", Some(b""), 404, "failed getting app id"),
            ("/v1.0/invoke/", None, 404, "failed getting app id"),
            ("/v1.0/invoke//method/x", None, 404, "failed getting app id"),
            (
                "/v1.0/invoke/order-processor",
                None,
                404,
                "no /method/ after the app id",
            ),
            (
                "/v1.0/invoke/order-processor?x=/method/y",
                None,
                404,
                "no /method/",
            ),
            (
                "/v1.0/invoke/order-processor/orders",
                None,
                404,
                "no /method/",
            ),
            (
                "/v1.0/invoke/order-processor/method/",
                None,
                404,
                "the method is empty",
            ),
            (
                "/v1.0/invoke/order-processor/method/?x",
                None,
                404,
                "the method is empty",
            ),
            (
                "/x",
                Some(b"a.b.c"),
                400,
                "failed to invoke, id: a.b.c, err: invalid app id: has more than one '.'",
            ),
            (
                "/x",
                Some(b"bad id"),
                400,
                "invalid app id: has the character ' '",
            ),
            ("/x", Some(b"\xff\xfe"), 400, "is not valid UTF-8"),
            ("/v1.0/invoke/a%2Fb/method/x", None, 400, "'%'"),
            (
                "/x",
                Some(b"nope"),
                500,
                r#"failed to invoke, id: nope, err: no app "nope" in namespace "default""#,
            ),
            (
                "/x",
                Some(b"payments"),
                500,
                r#"no app "payments" in namespace "default""#,
            ),
            (
                "/x",
                Some(b"order-processor.prod"),
                500,
                r#"no app "order-processor" in namespace "prod""#,
            ),
            ("/v1.0/invoke/nope/method/x", None, 500, "id: nope"),
        ];
        for (path, header, status, want) in cases {
            let e = run(path, *header).unwrap_err();
            assert_eq!(e.code, "ERR_DIRECT_INVOKE");
            assert_eq!(e.status, *status, "{path} {header:?}: {}", e.message);
            assert!(e.message.contains(want), "{path} {header:?}: {}", e.message);
        }
    }

    /// Where `uses_app_id_header` says no, the header cannot change the decision.
    #[test]
    fn skipping_the_header_changes_nothing() {
        let c = config();
        let paths = [
            "/v1.0/invoke/order-processor/method/orders?x=1",
            "/v1.0/invoke/payments.prod/method/pay",
            "/v1.0/invoke/nope/method/x",
            "/v1.0/invoke/",
            "/v1.0/invoke/order-processor",
            "/v1.0/healthz",
            "/v1.0/healthz/outbound?x",
        ];
        let headers: [Option<&[u8]>; 4] =
            [None, Some(b""), Some(b"order-processor"), Some(b"\xff")];
        for path in paths {
            assert!(!uses_app_id_header(path), "{path}");
            let without = decide(
                &c,
                &Request {
                    path,
                    app_id_header: None,
                },
            );
            for h in headers {
                assert_eq!(
                    decide(
                        &c,
                        &Request {
                            path,
                            app_id_header: h
                        }
                    ),
                    without,
                    "{path}"
                );
            }
        }
        for path in [
            "/orders",
            "/",
            "/v1.0/invoke",
            "/v1.0/healthzz",
            "/x?/v1.0/healthz",
        ] {
            assert!(uses_app_id_header(path), "{path}");
        }
    }

    /// Whatever bytes arrive, `decide` answers; it never panics.
    #[test]
    fn arbitrary_input_never_panics() {
        let c = config();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: &[u8] = b"/.?%-_ab\xff\xc3method/invoke/v1.0/order-processor";
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 48) as usize;
            for i in 0..len {
                let k = (seed.rotate_left(i as u32 * 5) as usize) % alphabet.len();
                bytes.push(alphabet[k]);
            }
            let path = String::from_utf8_lossy(&bytes);
            let prefixed = format!("{INVOKE_PREFIX}{path}");
            for p in [path.as_ref(), prefixed.as_str()] {
                let _ = decide(
                    &c,
                    &Request {
                        path: p,
                        app_id_header: Some(&bytes),
                    },
                );
                let _ = decide(
                    &c,
                    &Request {
                        path: p,
                        app_id_header: None,
                    },
                );
            }
        }
    }
}
