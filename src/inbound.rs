//! The inbound decision, made by the callee's sidecar: who is calling (from the verified peer
//! certificate, never from a header), whether the access-control policy lets them, and what the
//! app is told about the caller.

pub use crate::acl::{parse_spiffe_id, Caller};
use crate::acl::{AccessControl, Verdict};
use crate::error::DaprError;

/// What the inbound decision reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The URI SAN of the verified client certificate, when the connection has one.
    pub peer_uri_san: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    /// A gRPC call: a denial is worded as daprd's gRPC proxy words it.
    pub grpc: bool,
}

/// Deliver to the app, telling it who called; or answer with an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    Deliver(Caller<'a>),
    /// Answer with `error`. `why` is for the log, where the error does not say it all: the
    /// policy's reason for a denial, which the caller is not told.
    Reject {
        error: DaprError,
        why: Option<String>,
    },
}

/// The access-control check for a request the sidecar forwards: the policy's verdict on the
/// operation. The app receives the `:path` as sent, so the policy refuses any path the app could
/// read as another one (dot and empty segments, escapes that decode to something else); see
/// [`crate::acl::normalize_operation`], the one owner of that rule.
///
/// ```
/// use dapr_invoke::acl::AccessControl;
/// use dapr_invoke::inbound::{authorize, parse_spiffe_id};
/// let acl = AccessControl::from_json(br#"{"defaultAction": "allow"}"#).unwrap();
/// let caller = parse_spiffe_id("spiffe://public/ns/default/checkout").unwrap();
/// assert!(authorize(&acl, &caller, "POST", "/orders/?x=1").is_ok());
/// assert!(authorize(&acl, &caller, "POST", "/orders/./x").is_err());
/// ```
pub fn authorize(
    acl: &AccessControl,
    caller: &Caller<'_>,
    method: &str,
    path: &str,
) -> Result<(), String> {
    match acl.check(caller, method, path) {
        Verdict::Allow => Ok(()),
        Verdict::Deny { reason } => Err(reason),
    }
}

/// The access-control check of a gRPC call: the full method name, case-sensitive, no verb.
pub fn authorize_grpc(acl: &AccessControl, caller: &Caller<'_>, path: &str) -> Result<(), String> {
    match acl.check_grpc(caller, path) {
        Verdict::Allow => Ok(()),
        Verdict::Deny { reason } => Err(reason),
    }
}

/// The verb a denied gRPC call is reported with, as daprd reports it.
pub const GRPC_VERB: &str = "NONE";

/// Decides one inbound request for the app `callee`. `authorize` is the access-control check:
/// `Err(reason)` denies.
pub fn decide<'a>(
    callee: &str,
    req: &Request<'a>,
    authorize: impl FnOnce(&Caller<'a>, &str, &str) -> Result<(), String>,
) -> Decision<'a> {
    let Some(uri) = req.peer_uri_san.filter(|u| !u.is_empty()) else {
        return Decision::Reject {
            error: DaprError::unauthenticated(
                callee,
                "no verified client certificate (the inbound listener must require mutual TLS)",
            ),
            why: None,
        };
    };
    // A certificate may carry several URI SANs; Envoy lists them comma-separated.
    let mut ids = uri.split(',').map(str::trim).filter_map(parse_spiffe_id);
    let (Some(caller), None) = (ids.next(), ids.next()) else {
        return Decision::Reject {
            error: DaprError::unauthenticated(
                callee,
                "the client certificate does not name exactly one app SPIFFE id",
            ),
            why: None,
        };
    };
    match authorize(&caller, req.method, req.path) {
        Ok(()) => Decision::Deliver(caller),
        Err(reason) => {
            let operation = req.path.split('?').next().unwrap_or_default();
            Decision::Reject {
                // The verb as it was checked: upper-case, as Dapr reads it.
                error: match req.grpc {
                    true => DaprError::grpc_permission_denied(uri, operation),
                    false => DaprError::permission_denied(
                        callee,
                        uri,
                        operation,
                        &req.method.to_ascii_uppercase(),
                    ),
                },
                why: Some(reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(_: &Caller, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn the_caller_comes_from_the_certificate() {
        let req = Request {
            peer_uri_san: Some("spiffe://public/ns/default/checkout"),
            method: "POST",
            path: "/orders",
            grpc: false,
        };
        let Decision::Deliver(c) = decide("order-processor", &req, allow) else {
            panic!()
        };
        assert_eq!((c.app_id, c.namespace), ("checkout", "default"));
    }

    #[test]
    fn no_identity_is_401_and_a_denial_is_403() {
        for peer in [
            None,
            Some(""),
            Some("spiffe://public/ns/default"),
            Some("not a uri"),
            Some("spiffe://public/ns/default/a,spiffe://public/ns/default/b"),
        ] {
            let req = Request {
                peer_uri_san: peer,
                method: "GET",
                path: "/x",
                grpc: false,
            };
            let Decision::Reject {
                error: e,
                why: None,
            } = decide("op", &req, allow)
            else {
                panic!("{peer:?}")
            };
            assert_eq!(e.status, 401, "{peer:?}");
            assert!(e
                .message
                .starts_with("failed to invoke, id: op, err: unauthenticated caller"));
        }
        let req = Request {
            peer_uri_san: Some("spiffe://public/ns/default/checkout"),
            method: "DELETE",
            path: "/orders/7?force=1",
            grpc: false,
        };
        let Decision::Reject { error: e, why } = decide("op", &req, |_, _, _| Err("policy".into()))
        else {
            panic!()
        };
        assert_eq!(why.as_deref(), Some("policy"));
        assert_eq!(e.status, 403);
        assert_eq!(
            e.message,
            "failed to invoke, id: op, err: access control policy has denied access to id: spiffe://public/ns/default/checkout operation: /orders/7 verb: DELETE"
        );
    }

    #[test]
    fn only_a_path_in_normal_form_is_checked_and_forwarded() {
        let acl = AccessControl::from_json(br#"{"defaultAction": "allow"}"#).unwrap();
        let c = parse_spiffe_id("spiffe://public/ns/default/checkout").unwrap();
        for ok in [
            "/",
            "/orders",
            "/orders/",
            "/Orders/7?x=/../y",
            "/a%20b",
            "/%6Frders",
        ] {
            assert_eq!(authorize(&acl, &c, "GET", ok), Ok(()), "{ok}");
        }
        for bad in [
            "/orders/.",
            "/a/../orders",
            "//orders",
            "/%2e%2e/orders",
            "/a/%2E/b",
            "/orders%2F7",
            "/orders//",
        ] {
            assert!(authorize(&acl, &c, "GET", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_sees_the_caller_method_and_path() {
        let req = Request {
            peer_uri_san: Some("spiffe://td/ns/prod/checkout"),
            method: "PUT",
            path: "/a?b",
            grpc: false,
        };
        let mut seen = None;
        let _ = decide("op", &req, |c, m, p| {
            seen = Some((
                c.trust_domain.to_string(),
                c.namespace.to_string(),
                m.to_string(),
                p.to_string(),
            ));
            Ok(())
        });
        assert_eq!(
            seen.unwrap(),
            ("td".into(), "prod".into(), "PUT".into(), "/a?b".into())
        );
    }

    #[test]
    fn a_grpc_denial_is_worded_as_daprds_grpc_proxy() {
        let req = Request {
            peer_uri_san: Some("spiffe://public/ns/default/checkout"),
            method: GRPC_VERB,
            path: "/echo.Echo/Stream",
            grpc: true,
        };
        let deny = |_: &Caller, _: &str, _: &str| Err("no".to_string());
        let Decision::Reject { error, .. } = decide("op", &req, deny) else {
            panic!()
        };
        assert_eq!(error.status, 403);
        assert_eq!(
            error.message,
            "access control policy has denied access to id: spiffe://public/ns/default/checkout \
             operation: /echo.Echo/Stream verb: NONE"
        );
    }
}
