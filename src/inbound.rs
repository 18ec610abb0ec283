//! The inbound decision, made by the callee's sidecar: who is calling (from the verified peer
//! certificate, never from a header), whether the access-control policy lets them, and what the
//! app is told about the caller.

use crate::error::DaprError;
use crate::ids::validate_name;

/// A caller, as its SPIFFE id names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    pub trust_domain: &'a str,
    pub namespace: &'a str,
    pub app_id: &'a str,
}

/// Reads `spiffe://<trust-domain>/ns/<namespace>/<app-id>`, and nothing looser.
///
/// ```
/// use dapr_invoke::inbound::parse_spiffe_id;
/// let c = parse_spiffe_id("spiffe://public/ns/default/checkout").unwrap();
/// assert_eq!((c.trust_domain, c.namespace, c.app_id), ("public", "default", "checkout"));
/// assert!(parse_spiffe_id("spiffe://public/ns/default/checkout/extra").is_none());
/// ```
pub fn parse_spiffe_id(uri: &str) -> Option<Caller<'_>> {
    let rest = uri.strip_prefix("spiffe://")?;
    let mut parts = rest.split('/');
    let (trust_domain, ns, namespace, app_id) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns != "ns" {
        return None;
    }
    let td_ok = !trust_domain.is_empty()
        && trust_domain.len() <= 255
        && trust_domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    (td_ok && validate_name(namespace).is_ok() && validate_name(app_id).is_ok()).then_some(Caller {
        trust_domain,
        namespace,
        app_id,
    })
}

/// What the inbound decision reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The URI SAN of the verified client certificate, when the connection has one.
    pub peer_uri_san: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
}

/// Deliver to the app, telling it who called; or answer with an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    Deliver(Caller<'a>),
    Reject(DaprError),
}

/// Decides one inbound request for the app `callee`. `authorize` is the access-control check:
/// `Err(reason)` denies.
pub fn decide<'a>(
    callee: &str,
    req: &Request<'a>,
    authorize: impl FnOnce(&Caller<'a>, &str, &str) -> Result<(), String>,
) -> Decision<'a> {
    let Some(uri) = req.peer_uri_san.filter(|u| !u.is_empty()) else {
        return Decision::Reject(DaprError::unauthenticated(
            callee,
            "no verified client certificate (the inbound listener must require mutual TLS)",
        ));
    };
    // A certificate may carry several URI SANs; Envoy lists them comma-separated.
    let mut ids = uri.split(',').map(str::trim).filter_map(parse_spiffe_id);
    let (Some(caller), None) = (ids.next(), ids.next()) else {
        return Decision::Reject(DaprError::unauthenticated(
            callee,
            "the client certificate does not name exactly one app SPIFFE id",
        ));
    };
    match authorize(&caller, req.method, req.path) {
        Ok(()) => Decision::Deliver(caller),
        Err(reason) => {
            log::debug!("inbound call denied: {reason}");
            Decision::Reject(DaprError::permission_denied(
                callee,
                uri,
                req.path.split('?').next().unwrap_or_default(),
                req.method,
            ))
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
    fn spiffe_ids() {
        let ok = [
            (
                "spiffe://public/ns/default/checkout",
                ("public", "default", "checkout"),
            ),
            (
                "spiffe://example.org/ns/prod/pay_1",
                ("example.org", "prod", "pay_1"),
            ),
        ];
        for (uri, (td, ns, id)) in ok {
            let c = parse_spiffe_id(uri).unwrap();
            assert_eq!((c.trust_domain, c.namespace, c.app_id), (td, ns, id));
        }
        for bad in [
            "",
            "spiffe://",
            "spiffe://public/ns/default",
            "spiffe://public/ns/default/",
            "spiffe://public/xx/default/checkout",
            "spiffe://public/ns/default/checkout/x",
            "spiffe:///ns/default/checkout",
            "spiffe://Public/ns/default/checkout",
            "spiffe://public/ns/default/check out",
            "https://public/ns/default/checkout",
            "SPIFFE://public/ns/default/checkout",
            "spiffe://public/ns/../checkout",
        ] {
            assert_eq!(parse_spiffe_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_caller_comes_from_the_certificate() {
        let req = Request {
            peer_uri_san: Some("spiffe://public/ns/default/checkout"),
            method: "POST",
            path: "/orders",
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
            };
            let Decision::Reject(e) = decide("op", &req, allow) else {
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
        };
        let Decision::Reject(e) = decide("op", &req, |_, _, _| Err("policy".into())) else {
            panic!()
        };
        assert_eq!(e.status, 403);
        assert_eq!(
            e.message,
            "failed to invoke, id: op, err: access control policy has denied access to id: spiffe://public/ns/default/checkout operation: /orders/7 verb: DELETE"
        );
    }

    #[test]
    fn the_policy_sees_the_caller_method_and_path() {
        let req = Request {
            peer_uri_san: Some("spiffe://td/ns/prod/checkout"),
            method: "PUT",
            path: "/a?b",
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
}
