//! Dapr access-control lists for service invocation, enforced by the callee's sidecar.
//!
//! This module owns the policy: the configuration in Dapr's own shape (the value of a Dapr
//! `Configuration`'s `spec.accessControl`), its validation, the caller identity read from a
//! SPIFFE ID, the request path as it is matched, and the verdict. It is pure: no host calls.
//!
//! The semantics follow Dapr's runtime (`pkg/acl`, `pkg/config/acl_trie.go`,
//! `pkg/messaging/method/normalize.go`); `docs/access-control.md` has the rule table and every
//! place where we chose differently, with the reason. In short:
//!
//! 1. A caller is `(trust domain, namespace, app id)`. Its policy is the one with the same app id
//!    and namespace; if there is none, or the policy's trust domain differs, the global
//!    `defaultAction` decides.
//! 2. Within the policy the most specific operation whose `name` matches the path decides: if the
//!    request's method is in its `httpVerb` list (or the list has `*`), its `action` applies;
//!    otherwise the policy's `defaultAction` (or, without one, the global one) applies.
//! 3. No operation matches: the policy's `defaultAction`, else the global one.
//!
//! A path that cannot be normalized safely (see [`normalize_operation`]) is always denied.
//!
//! The submodules follow those concerns: `raw` is the configuration as written (serde),
//! `validate` turns it into an [`AccessControl`], `pattern` matches operation names, `path`
//! normalizes the request path and `spiffe` reads the caller's SPIFFE ID. What they make public
//! is re-exported here.

use std::collections::HashMap;
use std::fmt;

mod path;
mod pattern;
mod raw;
mod spiffe;
mod validate;

pub use path::normalize_operation;
pub use raw::{deserialize_optional, RawAccessControl, RawOperation, RawPolicy};
pub use spiffe::{check_trust_domain, parse_spiffe_id, Caller};

use pattern::{matches, verb_bit, Operation};
use raw::Object;
use serde::Deserialize;

/// Longest piece of request input (a method) echoed into a denial reason.
const MAX_ECHO: usize = 32;

/// What a rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    /// `allow` or `deny`, in any letter case, as Dapr reads them.
    fn parse(raw: &str) -> Option<Action> {
        if raw.eq_ignore_ascii_case("allow") {
            Some(Action::Allow)
        } else if raw.eq_ignore_ascii_case("deny") {
            Some(Action::Deny)
        } else {
            None
        }
    }
}

/// Why an access-control configuration was refused: the field, as a path from
/// `accessControl` (empty for the object itself), and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclError {
    pub field: String,
    pub reason: String,
}

impl AclError {
    fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        AclError {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "field `accessControl` {}", self.reason)
        } else {
            write!(f, "field `accessControl.{}` {}", self.field, self.reason)
        }
    }
}

#[derive(Debug, Clone)]
struct Policy {
    field: String,
    trust_domain: String,
    default_action: Option<Action>,
    operations: Vec<Operation>,
}

/// A validated access-control list, ready for per-request checks.
#[derive(Debug, Clone)]
pub struct AccessControl {
    default_action: Action,
    /// namespace → app id → policy.
    policies: HashMap<String, HashMap<String, Policy>>,
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// `reason` names the rule that denied, for the log and the 403 message.
    Deny {
        reason: String,
    },
}

impl AccessControl {
    /// Parses and validates the value of Dapr's `spec.accessControl`, as JSON.
    ///
    /// ```
    /// use dapr_invoke::acl::{AccessControl, Caller, Verdict};
    /// let acl = AccessControl::from_json(br#"{"defaultAction": "deny", "policies": [
    ///     {"appId": "checkout", "trustDomain": "public", "namespace": "default",
    ///      "operations": [{"name": "/orders/*", "httpVerb": ["GET"], "action": "allow"}]}]}"#,
    /// ).unwrap();
    /// let checkout = Caller { trust_domain: "public", namespace: "default", app_id: "checkout" };
    /// assert_eq!(acl.check(&checkout, "GET", "/orders/17?full=1"), Verdict::Allow);
    /// assert_ne!(acl.check(&checkout, "DELETE", "/orders/17"), Verdict::Allow);
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw = Object::<RawAccessControl>::deserialize(&mut de)
            .and_then(|Object(raw)| de.end().map(|()| raw))
            .map_err(|e| format!("invalid access control configuration: {e}"))?;
        AccessControl::try_from(raw)
            .map_err(|e| format!("invalid access control configuration: {e}"))
    }

    /// Decides whether `caller` may call `method` on `path` (the raw `:path`, query included).
    /// Whether `caller` has a policy of its own (its app id, namespace and trust domain), which
    /// then decides its calls; otherwise the global default action does (Dapr's metrics tell the
    /// two apart).
    pub fn has_policy(&self, caller: &Caller<'_>) -> bool {
        self.policies
            .get(caller.namespace)
            .and_then(|apps| apps.get(caller.app_id))
            .is_some_and(|p| p.trust_domain.eq_ignore_ascii_case(caller.trust_domain))
    }

    pub fn check(&self, caller: &Caller<'_>, method: &str, path: &str) -> Verdict {
        self.check_call(caller, Some(method), path)
    }

    /// Decides whether `caller` may call the gRPC method `path` (`/package.Service/Method`), as
    /// Dapr decides for its gRPC proxy: the name matched case-sensitively, no verb (an operation
    /// that matches decides with its own `action`).
    ///
    /// ```
    /// use dapr_invoke::acl::{AccessControl, Caller, Verdict};
    /// let acl = AccessControl::from_json(br#"{"defaultAction": "deny", "policies": [
    ///     {"appId": "checkout", "trustDomain": "public", "namespace": "default",
    ///      "operations": [{"name": "/orders.Orders/Submit", "action": "allow"}]}]}"#,
    /// ).unwrap();
    /// let checkout = Caller { trust_domain: "public", namespace: "default", app_id: "checkout" };
    /// assert_eq!(acl.check_grpc(&checkout, "/orders.Orders/Submit"), Verdict::Allow);
    /// assert_ne!(acl.check_grpc(&checkout, "/orders.orders/submit"), Verdict::Allow);
    /// ```
    pub fn check_grpc(&self, caller: &Caller<'_>, path: &str) -> Verdict {
        self.check_call(caller, None, path)
    }

    /// `method`: an HTTP call's verb; none for a gRPC call.
    fn check_call(&self, caller: &Caller<'_>, method: Option<&str>, path: &str) -> Verdict {
        let operation = match normalize_operation(path) {
            Ok(op) => op,
            Err(e) => return deny(format!("the request path is refused: {e}")),
        };
        let Some(policy) = self
            .policies
            .get(caller.namespace)
            .and_then(|apps| apps.get(caller.app_id))
        else {
            return self.global(format_args!(
                "no policy for app {:?} in namespace {:?}",
                caller.app_id, caller.namespace
            ));
        };
        if !policy
            .trust_domain
            .eq_ignore_ascii_case(caller.trust_domain)
        {
            return self.global(format_args!(
                "{} is for trust domain {:?}, the caller is in {:?}",
                policy.field, policy.trust_domain, caller.trust_domain
            ));
        }
        // HTTP matches ignore case, as Dapr lower-cases HTTP operations; gRPC's do not.
        let lowered;
        let in_case = match method {
            Some(_) => {
                lowered = pattern::fold_case(&operation);
                lowered.as_ref()
            }
            None => operation.as_str(),
        };
        let segments: Vec<&str> = in_case.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<&Operation> = None;
        for op in &policy.operations {
            let segs = if method.is_some() {
                &op.segs
            } else {
                &op.exact
            };
            if matches(segs, &segments) && best.is_none_or(|b| op.ranks > b.ranks) {
                best = Some(op);
            }
        }
        let Some(op) = best else {
            return self.fallback(
                policy,
                format_args!("no operation of {} matches", policy.field),
            );
        };
        let Some(method) = method else {
            return match op.action {
                Action::Allow => Verdict::Allow,
                Action::Deny => deny(format!("{} ({:?}) denies the call", op.field, op.name)),
            };
        };
        let listed = verb_bit(method).is_some_and(|bit| op.verbs & bit != 0);
        if listed || op.any_verb {
            return match op.action {
                Action::Allow => Verdict::Allow,
                Action::Deny => deny(format!(
                    "{} ({:?}) denies {}",
                    op.field,
                    op.name,
                    echo(method)
                )),
            };
        }
        self.fallback(
            policy,
            format_args!(
                "{} ({:?}) matches but does not list {}",
                op.field,
                op.name,
                echo(method)
            ),
        )
    }

    fn global(&self, why: fmt::Arguments<'_>) -> Verdict {
        match self.default_action {
            Action::Allow => Verdict::Allow,
            Action::Deny => deny(format!("{why}; global defaultAction is deny")),
        }
    }

    fn fallback(&self, policy: &Policy, why: fmt::Arguments<'_>) -> Verdict {
        match policy.default_action {
            Some(Action::Allow) => Verdict::Allow,
            Some(Action::Deny) => deny(format!("{why}; {}.defaultAction is deny", policy.field)),
            None => self.global(format_args!("{why}; {} has no defaultAction", policy.field)),
        }
    }
}

fn deny(reason: String) -> Verdict {
    Verdict::Deny { reason }
}

/// A request method as it appears in a reason: quoted, escaped and cut short.
fn echo(method: &str) -> String {
    match method.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{:?}...", method.get(..cut).unwrap_or_default()),
        None => format!("{method:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(json: &str) -> AccessControl {
        match AccessControl::from_json(json.as_bytes()) {
            Ok(a) => a,
            Err(e) => panic!("refused: {e}\n{json}"),
        }
    }

    fn caller<'a>(td: &'a str, ns: &'a str, app: &'a str) -> Caller<'a> {
        Caller {
            trust_domain: td,
            namespace: ns,
            app_id: app,
        }
    }

    /// One row: caller, method, path, allowed?, and why (a word the denial reason must hold).
    type Row<'a> = (Caller<'a>, &'a str, &'a str, bool, &'a str);

    fn run(acl: &AccessControl, rows: &[Row<'_>]) {
        for (c, method, path, allowed, why) in rows {
            let got = acl.check(c, method, path);
            match (&got, allowed) {
                (Verdict::Allow, true) => {}
                (Verdict::Deny { reason }, false) => assert!(
                    reason.contains(why),
                    "{c:?} {method} {path}: reason {reason:?} lacks {why:?}"
                ),
                _ => panic!("{c:?} {method} {path}: got {got:?}, want allowed={allowed}"),
            }
        }
    }

    /// Dapr's `pkg/acl/acl_test.go` fixture, as JSON. Its gRPC-only operations (no httpVerb) are
    /// given `["*"]` here so the wildcard cases can run over HTTP.
    const DAPR_FIXTURE: &str = r#"{"defaultAction": "deny", "trustDomain": "abcd", "policies": [
        {"appId": "app1", "defaultAction": "allow", "trustDomain": "public", "namespace": "ns1",
         "operations": [{"name": "/op1", "httpVerb": ["POST", "GET"], "action": "allow"},
                        {"name": "/op2", "httpVerb": ["*"], "action": "deny"}]},
        {"appId": "app2", "defaultAction": "deny", "trustDomain": "domain1", "namespace": "ns2",
         "operations": [{"name": "/op3/a/*", "httpVerb": ["PUT", "GET"], "action": "allow"},
                        {"name": "/op4", "httpVerb": ["POST"], "action": "allow"}]},
        {"appId": "app3", "trustDomain": "domain1", "namespace": "ns1",
         "operations": [{"name": "/op5", "httpVerb": ["POST"], "action": "allow"}]},
        {"appId": "app4", "defaultAction": "deny", "trustDomain": "domain1", "namespace": "ns2",
         "operations": [{"name": "/op6", "httpVerb": ["*"], "action": "allow"},
                        {"name": "/op7/a/b/*", "httpVerb": ["*"], "action": "allow"},
                        {"name": "/op7/a/b/c/f", "httpVerb": ["*"], "action": "allow"},
                        {"name": "/op7/a/b*", "httpVerb": ["*"], "action": "allow"},
                        {"name": "/op7/c/**", "httpVerb": ["*"], "action": "allow"}]},
        {"appId": "app1", "defaultAction": "allow", "trustDomain": "public", "namespace": "ns4",
         "operations": [{"name": "/op6", "httpVerb": ["*"], "action": "allow"}]}]}"#;

    #[test]
    fn daprs_own_test_cases() {
        let a = acl(DAPR_FIXTURE);
        assert_eq!(a.default_action, Action::Deny);
        let app1 = caller("public", "ns1", "app1");
        let app2 = caller("domain1", "ns2", "app2");
        let app3 = caller("domain1", "ns1", "app3");
        let app4 = caller("domain1", "ns2", "app4");
        run(
            &a,
            &[
                // No policy for appX: global deny.
                (
                    caller("public", "ns1", "appX"),
                    "POST",
                    "/op1",
                    false,
                    "no policy for app \"appX\"",
                ),
                // Policy found by app id and namespace, but another trust domain: global deny.
                (
                    caller("private", "ns1", "app1"),
                    "POST",
                    "/op1",
                    false,
                    "trust domain",
                ),
                (
                    caller("public", "abcd", "app1"),
                    "POST",
                    "/op1",
                    false,
                    "no policy",
                ),
                // No operation matches: app1's defaultAction allow.
                (app1, "POST", "/opX", true, ""),
                // HTTP matching ignores case: /Op2 is /op2, denied for every verb.
                (
                    app1,
                    "POST",
                    "/Op2",
                    false,
                    "policies[0].operations[1] (\"/op2\") denies",
                ),
                (app1, "PUT", "/op2", false, "denies \"PUT\""),
                (app1, "GET", "/op1", true, ""),
                // Operation matches, verb not listed: the policy's defaultAction (deny).
                (
                    app2,
                    "PUT",
                    "/op4",
                    false,
                    "does not list \"PUT\"; policies[1].defaultAction is deny",
                ),
                // ... and with no policy defaultAction, the global one.
                (
                    app3,
                    "PUT",
                    "/op5",
                    false,
                    "policies[2] has no defaultAction; global defaultAction is deny",
                ),
                (app3, "POST", "/op5", true, ""),
                (app2, "POST", "/op4", true, ""),
                // A trailing /* matches the parent itself and one segment more.
                (app2, "PUT", "/op3/a", true, ""),
                (app2, "PUT", "/op3/a/b", true, ""),
                (
                    app2,
                    "PUT",
                    "/op3/a/b/c",
                    false,
                    "no operation of policies[1] matches",
                ),
                (app2, "PUT", "/op3/b/b", false, "no operation"),
                (app4, "POST", "/op6", true, ""),
                (app4, "POST", "/op7/a/b/c", true, ""),
                // Dapr denies this one, only because its trie walks into the literal `/b` node
                // first and never backtracks to its sibling `/b*`; here every name is tried, and
                // `/op7/a/b*` (b* matches "b", and covers what is below) allows it. See
                // docs/access-control.md, "Differences from Dapr".
                (app4, "POST", "/op7/a/b/c/d", true, ""),
                (app4, "POST", "/op7/a/x/c/d", false, "no operation"),
                (app4, "POST", "/op7/a/b/c/f", true, ""),
                (app4, "POST", "/op7/a/bc", true, ""),
                (app4, "POST", "/op7/c/d/e", true, ""),
                // Same app id, other namespace: its own policy.
                (
                    caller("public", "ns4", "app1"),
                    "DELETE",
                    "/anything",
                    true,
                    "",
                ),
            ],
        );
    }

    #[test]
    fn daprs_documented_scenarios() {
        let app1 = caller("public", "default", "app1");
        let other = caller("public", "default", "app9");
        // Scenario 1: deny all but app1.
        let s1 = acl(
            r#"{"defaultAction": "deny", "trustDomain": "public", "policies": [
            {"appId": "app1", "defaultAction": "allow", "trustDomain": "public",
             "namespace": "default"}]}"#,
        );
        run(
            &s1,
            &[
                (app1, "GET", "/any/thing", true, ""),
                (other, "GET", "/x", false, "global"),
            ],
        );
        // Scenario 2: only app1's /op1, any verb.
        let s2 = acl(
            r#"{"defaultAction": "deny", "trustDomain": "public", "policies": [
            {"appId": "app1", "defaultAction": "deny", "trustDomain": "public",
             "namespace": "default",
             "operations": [{"name": "/op1", "httpVerb": ["*"], "action": "allow"}]}]}"#,
        );
        run(
            &s2,
            &[
                (app1, "DELETE", "/op1", true, ""),
                (
                    app1,
                    "GET",
                    "/op2",
                    false,
                    "policies[0].defaultAction is deny",
                ),
                (other, "GET", "/op1", false, "global"),
            ],
        );
        // Scenario 3: app1 POST/PUT on /op1; app2's /op2 has no httpVerb (gRPC only), so over
        // HTTP it falls to app2's defaultAction.
        let s3 = acl(
            r#"{"defaultAction": "deny", "trustDomain": "public", "policies": [
            {"appId": "app1", "defaultAction": "deny", "trustDomain": "public",
             "namespace": "default",
             "operations": [{"name": "/op1", "httpVerb": ["POST", "PUT"], "action": "allow"}]},
            {"appId": "app2", "defaultAction": "deny", "trustDomain": "myDomain",
             "namespace": "ns1", "operations": [{"name": "/op2", "action": "allow"}]}]}"#,
        );
        run(
            &s3,
            &[
                (app1, "POST", "/op1", true, ""),
                (app1, "PUT", "/op1", true, ""),
                (app1, "GET", "/op1", false, "does not list \"GET\""),
                (
                    caller("mydomain", "ns1", "app2"),
                    "POST",
                    "/op2",
                    false,
                    "does not list",
                ),
            ],
        );
        // Scenario 4: allow all but app1's /op1/*.
        let s4 = acl(
            r#"{"defaultAction": "allow", "trustDomain": "public", "policies": [
            {"appId": "app1", "defaultAction": "allow", "trustDomain": "public",
             "namespace": "default",
             "operations": [{"name": "/op1/*", "httpVerb": ["*"], "action": "deny"}]}]}"#,
        );
        run(
            &s4,
            &[
                (app1, "GET", "/op1/x", false, "denies"),
                (app1, "GET", "/op1", false, "denies"),
                (app1, "GET", "/op1/x/y", true, ""),
                (app1, "GET", "/op2", true, ""),
                (other, "GET", "/op1/x", true, ""),
            ],
        );
        // Scenario 5: same app id in two namespaces.
        let s5 = acl(
            r#"{"defaultAction": "allow", "trustDomain": "public", "policies": [
            {"appId": "app1", "defaultAction": "allow", "trustDomain": "public", "namespace": "ns1"},
            {"appId": "app1", "defaultAction": "deny", "trustDomain": "public", "namespace": "ns2"}]}"#,
        );
        run(
            &s5,
            &[
                (caller("public", "ns1", "app1"), "GET", "/x", true, ""),
                (
                    caller("public", "ns2", "app1"),
                    "GET",
                    "/x",
                    false,
                    "policies[1].defaultAction",
                ),
            ],
        );
        // Hello world: pythonapp may not POST /neworder.
        let hw = acl(
            r#"{"defaultAction": "allow", "trustDomain": "public", "policies": [
            {"appId": "pythonapp", "defaultAction": "allow", "trustDomain": "myDomain",
             "namespace": "default",
             "operations": [{"name": "/neworder", "httpVerb": ["POST"], "action": "deny"}]}]}"#,
        );
        let py = parse_spiffe_id("spiffe://mydomain/ns/default/pythonapp").unwrap();
        run(
            &hw,
            &[
                (py, "POST", "/neworder", false, "denies \"POST\""),
                (py, "GET", "/neworder", true, ""),
            ],
        );
    }

    #[test]
    fn wildcards_and_specificity() {
        let a = acl(r#"{"defaultAction": "deny", "policies": [
            {"appId": "c", "defaultAction": "deny", "trustDomain": "public", "namespace": "default",
             "operations": [
                {"name": "/orders", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/orders/admin", "httpVerb": ["*"], "action": "deny"},
                {"name": "/users/*/profile", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/files/**", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/files/secret/**", "httpVerb": ["*"], "action": "deny"},
                {"name": "/api/**/health", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/img/*.png", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/", "httpVerb": ["GET"], "action": "allow"}]}]}"#);
        let c = caller("public", "default", "c");
        run(
            &a,
            &[
                // A literal name covers everything below it (Dapr's trie).
                (c, "GET", "/orders", true, ""),
                (c, "GET", "/orders/17/items", true, ""),
                // ... but the more specific name wins where both match.
                (c, "GET", "/orders/admin", false, "operations[1]"),
                (c, "GET", "/orders/admin/users", false, "operations[1]"),
                (c, "GET", "/ordersx", false, "no operation"),
                // * is exactly one segment in the middle.
                (c, "GET", "/users/ann/profile", true, ""),
                (c, "GET", "/users/ann/bob/profile", false, "no operation"),
                (c, "GET", "/users/profile", false, "no operation"),
                // ** is any number of segments, none included.
                (c, "GET", "/files", true, ""),
                (c, "GET", "/files/a/b/c", true, ""),
                (c, "GET", "/files/secret", false, "operations[4]"),
                (c, "GET", "/files/secret/x/y", false, "operations[4]"),
                (c, "GET", "/api/health", true, ""),
                (c, "GET", "/api/v1/x/health", true, ""),
                (c, "GET", "/api/v1/x/health/deep", true, ""),
                (c, "GET", "/api/v1/x", false, "no operation"),
                // A glob stays within one segment.
                (c, "GET", "/img/logo.png", true, ""),
                (c, "GET", "/img/a/logo.png", false, "no operation"),
                // "/" is the root only.
                (c, "GET", "/", true, ""),
                (c, "GET", "/?x=1", true, ""),
                (c, "GET", "/other", false, "no operation"),
                // Verbs: a listed verb, in any request case, as Dapr upper-cases it.
                (c, "get", "/orders", true, ""),
                (c, "POST", "/orders", false, "does not list \"POST\""),
                (
                    c,
                    "PROPFIND",
                    "/orders",
                    false,
                    "does not list \"PROPFIND\"",
                ),
                (c, "PROPFIND", "/orders/admin", false, "denies"),
            ],
        );
    }

    #[test]
    fn specificity_ignores_order() {
        let a = acl(r#"{"defaultAction": "deny", "policies": [
            {"appId": "c", "defaultAction": "deny", "trustDomain": "public", "namespace": "default",
             "operations": [
                {"name": "/users/*", "httpVerb": ["*"], "action": "deny"},
                {"name": "/users/ann", "httpVerb": ["*"], "action": "allow"},
                {"name": "/a/*/c", "httpVerb": ["*"], "action": "deny"},
                {"name": "/a/b/*", "httpVerb": ["*"], "action": "allow"},
                {"name": "/x*", "httpVerb": ["*"], "action": "deny"},
                {"name": "/*x", "httpVerb": ["*"], "action": "allow"}]}]}"#);
        let c = caller("public", "default", "c");
        run(
            &a,
            &[
                (c, "GET", "/users/ann", true, ""),
                (c, "GET", "/users/bob", false, "operations[0]"),
                // Left-most literal first: /a/b/* beats /a/*/c.
                (c, "GET", "/a/b/c", true, ""),
                (c, "GET", "/a/z/c", false, "operations[2]"),
                // Equal ranks: the earlier operation.
                (c, "GET", "/xx", false, "operations[4]"),
                (c, "GET", "/yx", true, ""),
            ],
        );
    }

    #[test]
    fn attack_paths() {
        // deny /admin (and below) for every verb; allow everything else.
        let a = acl(r#"{"defaultAction": "deny", "policies": [
            {"appId": "c", "defaultAction": "allow", "trustDomain": "public", "namespace": "default",
             "operations": [{"name": "/admin", "httpVerb": ["*"], "action": "deny"},
                            {"name": "/orders", "httpVerb": ["GET"], "action": "allow"}]}]}"#);
        let c = caller("public", "default", "c");
        run(
            &a,
            &[
                (c, "GET", "/admin", false, "denies"),
                // Case: HTTP matching is case-insensitive, as in Dapr.
                (c, "GET", "/ADMIN", false, "denies"),
                (c, "GET", "/Admin/users", false, "denies"),
                (c, "GET", "/%41dmin", false, "denies"),
                // Go's lower case of the Kelvin sign is 'k', of 'İ' is 'i': Dapr folds both
                // into ASCII, and so does this sidecar (here: "/ADM\u{130}N").
                (c, "GET", "/ADM%C4%B0N", false, "denies"),
                (c, "GET", "/adm\u{130}n/users", false, "denies"),
                // Other non-ASCII letters fold to non-ASCII in Go too: not /admin.
                (c, "GET", "/%C3%84dmin", true, ""),
                // Dot segments and merged slashes are refused, never resolved: the app gets the
                // path as sent, and must not read it as another one.
                (c, "GET", "/x/../admin", false, "refused"),
                (c, "GET", "/../../admin", false, "refused"),
                (c, "GET", "/./admin", false, "refused"),
                (c, "GET", "/%2e%2e/admin", false, "refused"),
                (c, "GET", "/x/%2E%2E/admin", false, "refused"),
                (c, "GET", "/admin/../orders", false, "refused"),
                (c, "GET", "//admin", false, "refused"),
                (c, "GET", "/admin//x", false, "refused"),
                (c, "GET", "/orders//", false, "refused"),
                // A trailing slash is the operation without it.
                (c, "GET", "/admin/", false, "denies"),
                (c, "GET", "/orders/", true, ""),
                // Encoded separators, percent and fragments: refused, never reinterpreted.
                (c, "GET", "/admin%2F..%2Forders", false, "refused"),
                (c, "GET", "/orders%2F..%2Fadmin", false, "refused"),
                (c, "GET", "/admin%5c", false, "refused"),
                (c, "GET", "/%2561dmin", false, "refused"),
                (c, "GET", "/admin%23", false, "refused"),
                (c, "GET", "/orders%3F/admin", false, "refused"),
                (c, "GET", "/admin%00", false, "refused"),
                (c, "GET", "/admin\u{0}", false, "refused"),
                (c, "GET", "/admin;x=1", false, "refused"),
                (c, "GET", "/admin%3bx", false, "refused"),
                (c, "GET", "/admin%zz", false, "refused"),
                (c, "GET", "/admin%2", false, "refused"),
                (c, "GET", "/%ff", false, "refused"),
                (c, "GET", "admin", false, "refused"),
                // The query is never matched: a path in it changes nothing.
                (c, "GET", "/orders?x=/admin", true, ""),
                (c, "GET", "/admin?x=/orders", false, "denies"),
                (c, "GET", "/admin?", false, "denies"),
                (c, "GET", "/orders?%2F", true, ""),
            ],
        );
        // A refused path is denied even where everything is allowed.
        let open = acl(r#"{"defaultAction": "allow"}"#);
        assert_eq!(open.check(&c, "GET", "/x"), Verdict::Allow);
        assert_ne!(open.check(&c, "GET", "/x%2Fy"), Verdict::Allow);
    }

    #[test]
    fn defaults() {
        // No global defaultAction with policies: deny, as Dapr.
        let a = acl(
            r#"{"policies": [{"appId": "a", "trustDomain": "public", "namespace": "d",
            "defaultAction": "ALLOW"}]}"#,
        );
        assert_eq!(a.default_action, Action::Deny);
        assert_eq!(
            a.check(&caller("public", "d", "a"), "GET", "/x"),
            Verdict::Allow
        );
        assert_ne!(
            a.check(&caller("public", "d", "b"), "GET", "/x"),
            Verdict::Allow
        );
        // Trust domains are compared in lower case.
        let a = acl(
            r#"{"defaultAction": "Deny", "trustDomain": "My.Domain", "policies": [
            {"appId": "a", "trustDomain": "Other", "namespace": "d", "defaultAction": "allow"}]}"#,
        );
        assert_eq!(
            a.check(&caller("other", "d", "a"), "GET", "/x"),
            Verdict::Allow
        );
        // Names without a leading '/' get one, as in Dapr.
        let a = acl(r#"{"defaultAction": "allow", "policies": [{"appId": "a",
            "trustDomain": "public", "namespace": "d",
            "operations": [{"name": "op1", "httpVerb": ["*"], "action": "deny"}]}]}"#);
        assert_ne!(
            a.check(&caller("public", "d", "a"), "GET", "/op1"),
            Verdict::Allow
        );
    }

    /// Deterministic fuzz: arbitrary bytes, biased towards the characters that matter, never
    /// panic; a path that normalizes does so to a fixed point with no dot segments left.
    #[test]
    fn fuzz_never_panics() {
        let a = acl(DAPR_FIXTURE);
        let alphabet = b"/./%2eEfF5cC3bB0aA?#;\\*opOP17 \x00\x7f\xc3\xa9\xff";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..50_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 8 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            let path = if round % 2 == 0 {
                format!("/{s}")
            } else {
                s.to_string()
            };
            if let Ok(n) = normalize_operation(&path) {
                assert!(n.starts_with('/'), "{path:?} -> {n:?}");
                assert!(n == "/" || !n.ends_with('/'), "{path:?} -> {n:?}");
                assert!(
                    !n.contains("//") && !n.contains("/./") && !n.contains("/../"),
                    "{n:?}"
                );
                assert!(!n.ends_with("/.") && !n.ends_with("/.."), "{n:?}");
                assert_eq!(
                    normalize_operation(&n).as_deref(),
                    Ok(n.as_str()),
                    "{path:?}"
                );
            }
            for c in [
                caller("public", "ns1", "app1"),
                caller("domain1", "ns2", "app4"),
                caller(&s, &s, &s),
            ] {
                let _ = a.check(&c, &s, &path);
            }
            let _ = parse_spiffe_id(&s);
            let _ = parse_spiffe_id(&format!("spiffe://{s}"));
            let _ = AccessControl::from_json(&bytes);
            let _ = AccessControl::from_json(
                format!(
                    r#"{{"defaultAction": "deny", "policies": [{{"appId": "a",
                    "trustDomain": "t", "namespace": "n", "operations": [
                    {{"name": {:?}, "httpVerb": ["*"], "action": "allow"}}]}}]}}"#,
                    s
                )
                .as_bytes(),
            )
            .map(|acl| acl.check(&caller("t", "n", "a"), "GET", &path));
        }
    }
}
