//! The caller's identity, read from the SPIFFE ID of its verified certificate.

use crate::ids::validate_name;

/// Longest trust domain we accept, as SPIFFE allows.
const MAX_TRUST_DOMAIN: usize = 255;

/// The calling app, as its SPIFFE ID names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    pub trust_domain: &'a str,
    pub namespace: &'a str,
    pub app_id: &'a str,
}

/// Reads a Dapr SPIFFE ID, `spiffe://<trust domain>/ns/<namespace>/<app id>`, strictly: that
/// shape exactly, a lowercase trust domain, and a namespace and app id valid per
/// [`crate::ids::validate_name`].
///
/// ```
/// use dapr_invoke::acl::parse_spiffe_id;
/// let c = parse_spiffe_id("spiffe://public/ns/default/checkout").unwrap();
/// assert_eq!((c.trust_domain, c.namespace, c.app_id), ("public", "default", "checkout"));
/// assert!(parse_spiffe_id("spiffe://public/ns/default/checkout/x").is_none());
/// ```
pub fn parse_spiffe_id(uri: &str) -> Option<Caller<'_>> {
    let rest = uri.strip_prefix("spiffe://")?;
    let mut parts = rest.split('/');
    let (td, ns_word, namespace, app_id) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns_word != "ns" {
        return None;
    }
    check_trust_domain(td).ok()?;
    validate_name(namespace).ok()?;
    validate_name(app_id).ok()?;
    Some(Caller {
        trust_domain: td,
        namespace,
        app_id,
    })
}

pub fn check_trust_domain(td: &str) -> Result<(), String> {
    if td.is_empty() {
        return Err("is empty".into());
    }
    if td.len() > MAX_TRUST_DOMAIN {
        return Err(format!("is longer than {MAX_TRUST_DOMAIN} characters"));
    }
    if let Some(c) = td
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "has the character {c:?}; a SPIFFE trust domain has only a-z, 0-9, '.', '-', '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller<'a>(td: &'a str, ns: &'a str, app: &'a str) -> Caller<'a> {
        Caller {
            trust_domain: td,
            namespace: ns,
            app_id: app,
        }
    }

    #[test]
    fn spiffe_ids() {
        let good = parse_spiffe_id("spiffe://example.org/ns/prod/order-processor").unwrap();
        assert_eq!(good, caller("example.org", "prod", "order-processor"));
        for bad in [
            "",
            "spiffe://",
            "spiffe://public",
            "spiffe://public/ns/default",
            "spiffe://public/ns/default/",
            "spiffe://public/ns//app",
            "spiffe://public/ns/default/app/",
            "spiffe://public/ns/default/app/x",
            "spiffe://public/nss/default/app",
            "spiffe:///ns/default/app",
            "spiffe://Public/ns/default/app",
            "spiffe://pub lic/ns/default/app",
            "SPIFFE://public/ns/default/app",
            "https://public/ns/default/app",
            "spiffe://public/ns/default/app?x",
            "spiffe://public/ns/de.fault/app",
            "spiffe://public/ns/default/-app",
            "spiffe://public/ns/default/app%41",
            "spiffe://user@public/ns/default/app",
            "spiffe://public:443/ns/default/app",
        ] {
            assert_eq!(parse_spiffe_id(bad), None, "{bad:?}");
        }
    }
}
