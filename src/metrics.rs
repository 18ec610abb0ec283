//! The filter's own metrics: counters of the calls it refuses, with Dapr's names and labels.
//! They are counted on refusals only (rare), never on a forwarded call, so they cost nothing on
//! the path the benchmark measures; the per-call metrics are Envoy's own stats.
//!
//! A proxy-wasm metric has a name and no labels, so the labels travel in the name,
//! `<metric>;<label>=<value>;...`, and the sidecar's bootstrap tells Envoy to take them out again
//! (`stats_config.stats_tags`, one per label in [`LABELS`]): Envoy shows
//! `dapr_error_code_total;app_id=checkout;...;status=404` as
//! `dapr_error_code_total{app_id="checkout",...,status="404"}` in `/stats/prometheus` (metrics of
//! the filter are Envoy's `wasmcustom` namespace, shown without Envoy's `envoy_` prefix).
//!
//! ```
//! use dapr_invoke::metrics::refusal;
//! assert_eq!(
//!     refusal("checkout", 404, "ERR_DIRECT_INVOKE"),
//!     "dapr_error_code_total;app_id=checkout;category=service-invocation;error_code=ERR_DIRECT_INVOKE;status=404"
//! );
//! ```

use crate::acl::Caller;

/// Every label the filter's metrics carry, in the order a name may hold them. The sidecar
/// generator makes one tag extractor of each.
pub const LABELS: [&str; 6] = [
    "app_id",
    "category",
    "error_code",
    "status",
    "trustDomain",
    "namespace",
];

/// Dapr's error-code counter (`pkg/diagnostics/errorcode_monitoring.go`), plus the status the
/// caller got: each call the filter answers with an error instead of forwarding it.
pub const ERROR_CODES: &str = "dapr_error_code_total";

/// Which access-control rule refused a call, as Dapr's ACL metrics split them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The caller's own policy (its `appId` entry) decided.
    App,
    /// The global `defaultAction` decided (no policy for the caller, or no identity).
    Global,
}

/// The counter of one refusal: the sidecar's app, Dapr's error code (empty when the answer has
/// none, as the API token's 401) and the status.
pub fn refusal(app_id: &str, status: u32, code: &str) -> String {
    named(
        ERROR_CODES,
        &[
            ("app_id", app_id),
            ("category", "service-invocation"),
            ("error_code", code),
            ("status", &status.to_string()),
        ],
    )
}

/// Dapr's counter of calls an access-control policy blocked
/// (`dapr_runtime_acl_{app,global}_policy_action_blocked_total`). As in Dapr the labels are the
/// caller's: its app id, trust domain and namespace (empty without an identity).
pub fn acl_blocked(policy: Policy, caller: Option<&Caller<'_>>) -> String {
    let name = match policy {
        Policy::App => "dapr_runtime_acl_app_policy_action_blocked_total",
        Policy::Global => "dapr_runtime_acl_global_policy_action_blocked_total",
    };
    named(
        name,
        &[
            ("app_id", caller.map_or("", |c| c.app_id)),
            ("trustDomain", caller.map_or("", |c| c.trust_domain)),
            ("namespace", caller.map_or("", |c| c.namespace)),
        ],
    )
}

/// The `errorCode` of a Dapr error body (`{"errorCode":"ERR_...",...}`, as
/// [`crate::error::DaprError::body`] writes it); empty for any other body.
pub fn error_code(body: &[u8]) -> &str {
    body.strip_prefix(br#"{"errorCode":""#)
        .and_then(|rest| rest.split(|b| *b == b'"').next())
        .and_then(|code| std::str::from_utf8(code).ok())
        .unwrap_or_default()
}

/// `name;label=value;...`. A value keeps only characters that cannot end it early; the ids in
/// them are checked long before (app ids, namespaces, trust domains, codes).
fn named(name: &str, labels: &[(&str, &str)]) -> String {
    let mut out = String::from(name);
    for (label, value) in labels {
        out.push(';');
        out.push_str(label);
        out.push('=');
        out.extend(value.chars().map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_travel_in_the_name_and_cannot_break_out() {
        let caller = Caller {
            trust_domain: "example.org",
            namespace: "prod",
            app_id: "checkout",
        };
        assert_eq!(
            acl_blocked(Policy::App, Some(&caller)),
            "dapr_runtime_acl_app_policy_action_blocked_total;app_id=checkout;trustDomain=example.org;namespace=prod"
        );
        assert_eq!(
            acl_blocked(Policy::Global, None),
            "dapr_runtime_acl_global_policy_action_blocked_total;app_id=;trustDomain=;namespace="
        );
        assert_eq!(
            refusal("a;b=c", 401, ""),
            "dapr_error_code_total;app_id=a_b_c;category=service-invocation;error_code=;status=401"
        );
        for name in [
            refusal("x", 500, "E"),
            acl_blocked(Policy::App, Some(&caller)),
        ] {
            for part in name.split(';').skip(1) {
                let (label, _) = part.split_once('=').unwrap();
                assert!(LABELS.contains(&label), "{label}");
            }
        }
    }
}
