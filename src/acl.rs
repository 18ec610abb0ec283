//! Dapr's access-control policies for service invocation (the `accessControl` section of a Dapr
//! Configuration), enforced by the callee's sidecar on the caller's verified identity.
//!
//! The rules, as Dapr applies them:
//! 1. A policy is chosen by the caller's app id and namespace. No policy for the caller, or one
//!    whose `trustDomain` is not the caller's: the global `defaultAction`.
//! 2. Within the policy, the operation (the request path, normalized) is matched against the
//!    policy's `operations`. No match: the policy's `defaultAction` (else the global one).
//! 3. A match whose `httpVerb` list has the request's verb (or `*`): that operation's `action`.
//!    A match without the verb: the policy's `defaultAction`.
//!
//! Operation names are paths of segments; `*` stands for exactly one segment and `**`, as the
//! last segment, for any number of them (none included). Where several names match, the most
//! specific wins (more literal segments, then `*` before `**`).
//!
//! Matching is on a normalized path, so that no spelling reaches an operation its policy
//! denies: the query is dropped, percent-encoding is decoded once, `.` and `..` segments are
//! resolved, empty segments and a trailing `/` are dropped, and letters are compared without
//! case. A path whose decoding yields `/`, `\`, `%`, `;`, `?`, `#`, a control character or
//! invalid UTF-8, or whose `..` climbs above the root, is not an operation: it is denied.
//! Ignoring case is stricter than Dapr for `deny` rules and the one deliberate difference;
//! docs/access-control.md lists the others.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use crate::ids::validate_name;
use crate::inbound::Caller;

/// Dapr's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "public";
const DEFAULT_NAMESPACE: &str = "default";
const VERBS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// `accessControl`, as Dapr's Configuration spells it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAccessControl {
    #[serde(default)]
    pub default_action: Option<String>,
    #[serde(default)]
    pub trust_domain: Option<String>,
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPolicy {
    pub app_id: String,
    #[serde(default)]
    pub default_action: Option<String>,
    #[serde(default)]
    pub trust_domain: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub operations: Vec<RawOperation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOperation {
    pub name: String,
    #[serde(default)]
    pub http_verb: Option<Vec<String>>,
    pub action: String,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// The answer for one request, with the rule that gave it (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

#[derive(Debug, Clone)]
struct Operation {
    name: String,
    segments: Vec<Segment>,
    /// None: every verb.
    verbs: Option<Vec<String>>,
    action: Action,
}

#[derive(Debug, Clone)]
struct Policy {
    trust_domain: String,
    default_action: Option<Action>,
    operations: Vec<Operation>,
}

/// A validated policy set, looked up by namespace, then app id, in O(1) without allocating.
#[derive(Debug, Clone)]
pub struct AccessControl {
    default_action: Action,
    policies: HashMap<String, HashMap<String, Policy>>,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

fn action(raw: &str, field: &str) -> Result<Action, String> {
    match raw.to_ascii_lowercase().as_str() {
        "allow" => Ok(Action::Allow),
        "deny" => Ok(Action::Deny),
        _ => Err(format!("`{field}` is {raw:?}; use allow or deny")),
    }
}

fn trust_domain(raw: Option<&str>, field: &str) -> Result<String, String> {
    let td = raw.unwrap_or(DEFAULT_TRUST_DOMAIN);
    let ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if ok {
        Ok(td.to_string())
    } else {
        Err(format!(
            "`{field}` {td:?} is not a trust domain (lowercase letters, digits, '-', '.', '_')"
        ))
    }
}

impl TryFrom<RawAccessControl> for AccessControl {
    type Error = String;

    fn try_from(raw: RawAccessControl) -> Result<Self, String> {
        let base = "access_control";
        let default_action = match &raw.default_action {
            Some(a) => action(a, &format!("{base}.defaultAction"))?,
            // Fail closed: a policy file that forgets its default denies.
            None => Action::Deny,
        };
        trust_domain(raw.trust_domain.as_deref(), &format!("{base}.trustDomain"))?;
        let mut policies: HashMap<String, HashMap<String, Policy>> = HashMap::new();
        for (i, p) in raw.policies.into_iter().enumerate() {
            let at = format!("{base}.policies[{i}]");
            validate_name(&p.app_id).map_err(|e| format!("`{at}.appId` {:?} {e}", p.app_id))?;
            let namespace = p.namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
            validate_name(&namespace).map_err(|e| format!("`{at}.namespace` {namespace:?} {e}"))?;
            let policy_default = match &p.default_action {
                Some(a) => Some(action(a, &format!("{at}.defaultAction"))?),
                None => None,
            };
            let td = trust_domain(p.trust_domain.as_deref(), &format!("{at}.trustDomain"))?;
            let mut operations: Vec<Operation> = Vec::with_capacity(p.operations.len());
            for (j, op) in p.operations.into_iter().enumerate() {
                let at = format!("{at}.operations[{j}]");
                let segments = pattern(&op.name).map_err(|e| format!("`{at}.name` {e}"))?;
                if let Some(other) = operations.iter().find(|o| o.segments == segments) {
                    return Err(format!(
                        "`{at}.name` {:?} is the same operation as {:?}",
                        op.name, other.name
                    ));
                }
                let verbs = match op.http_verb {
                    None => None,
                    Some(list) if list.is_empty() => {
                        return Err(format!("`{at}.httpVerb` is empty; list verbs or \"*\""))
                    }
                    Some(list) if list.iter().any(|v| v == "*") => None,
                    Some(list) => {
                        let mut out = Vec::with_capacity(list.len());
                        for v in list {
                            let up = v.to_ascii_uppercase();
                            if !VERBS.contains(&up.as_str()) {
                                return Err(format!(
                                    "`{at}.httpVerb` has {v:?}; use {} or \"*\"",
                                    VERBS.join(", ")
                                ));
                            }
                            out.push(up);
                        }
                        Some(out)
                    }
                };
                operations.push(Operation {
                    name: op.name,
                    segments,
                    verbs,
                    action: action(&op.action, &format!("{at}.action"))?,
                });
            }
            let in_namespace = policies.entry(namespace.clone()).or_default();
            if in_namespace.contains_key(&p.app_id) {
                return Err(format!(
                    "`{at}` is a second policy for app {:?} in namespace {namespace:?}",
                    p.app_id
                ));
            }
            in_namespace.insert(
                p.app_id,
                Policy {
                    trust_domain: td,
                    default_action: policy_default,
                    operations,
                },
            );
        }
        Ok(AccessControl {
            default_action,
            policies,
        })
    }
}

/// An operation name as segments: `/orders/*/items/**`.
fn pattern(name: &str) -> Result<Vec<Segment>, String> {
    if !name.starts_with('/') {
        return Err(format!("{name:?} must start with '/'"));
    }
    let parts: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match *p {
            "*" => Ok(Segment::One),
            "**" if i == last => Ok(Segment::Rest),
            "**" => Err(format!("{name:?}: '**' may only be the last segment")),
            "." | ".." => Err(format!("{name:?} has a '{p}' segment")),
            lit if lit.contains('*') => Err(format!(
                "{name:?}: '*' stands for a whole segment, not part of one"
            )),
            lit if lit
                .bytes()
                .any(|b| b.is_ascii_control() || b"%?#;\\".contains(&b)) =>
            {
                Err(format!(
                    "{name:?} has a character that no normalized path has"
                ))
            }
            lit => Ok(Segment::Literal(lit.to_ascii_lowercase())),
        })
        .collect()
}

/// The request path as operations are matched: see the module docs.
///
/// ```
/// use dapr_invoke::acl::normalize_operation;
/// assert_eq!(normalize_operation("/Orders/../orders/%37/?x=1").unwrap(), "/orders/7");
/// assert!(normalize_operation("/orders%2F..%2Fadmin").is_err());
/// ```
pub fn normalize_operation(path: &str) -> Result<String, String> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<String> = Vec::new();
    for raw in path.split('/') {
        let seg = decode_segment(raw)?;
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err("the path climbs above the root".into());
                }
            }
            _ => segments.push(seg.to_ascii_lowercase()),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn decode_segment(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let decoded = if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("the path has a malformed percent-encoding")?;
            i += 3;
            hex
        } else {
            i += 1;
            b
        };
        if decoded.is_ascii_control() || b"/\\%;?#".contains(&decoded) {
            return Err(format!(
                "the path has {:?}, which no operation name can match",
                char::from(decoded)
            ));
        }
        out.push(decoded);
    }
    String::from_utf8(out).map_err(|_| "the path is not UTF-8 once decoded".to_string())
}

impl AccessControl {
    /// Parses `accessControl` JSON (Dapr's shape) and validates it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawAccessControl = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Self::try_from(raw)
    }

    /// Decides one call from `caller` with `method` on `path` (the raw `:path`).
    pub fn check(&self, caller: &Caller<'_>, method: &str, path: &str) -> Verdict {
        let global = self.default_action;
        let policy = self
            .policies
            .get(caller.namespace)
            .and_then(|ids| ids.get(caller.app_id));
        let Some(policy) = policy else {
            return verdict(global, || {
                format!(
                    "no policy for app {:?} in namespace {:?}: global defaultAction {global}",
                    caller.app_id, caller.namespace
                )
            });
        };
        if policy.trust_domain != caller.trust_domain {
            return verdict(global, || {
                format!(
                    "the policy for {:?} is for trust domain {:?}, the caller is in {:?}: global defaultAction {global}",
                    caller.app_id, policy.trust_domain, caller.trust_domain
                )
            });
        }
        let app_default = policy.default_action.unwrap_or(global);
        let operation = match normalize_operation(path) {
            Ok(op) => op,
            Err(e) => {
                return Verdict::Deny {
                    reason: format!("not an operation: {e}"),
                }
            }
        };
        let Some(op) = best_match(&policy.operations, &operation) else {
            return verdict(app_default, || {
                format!(
                    "no operation matches {operation:?}: the policy's defaultAction {app_default}"
                )
            });
        };
        let verb_ok = op
            .verbs
            .as_ref()
            .is_none_or(|vs| vs.iter().any(|v| v.eq_ignore_ascii_case(method)));
        if verb_ok {
            verdict(op.action, || {
                format!("operation {:?} {method}: {}", op.name, op.action)
            })
        } else {
            verdict(app_default, || {
                format!(
                    "operation {:?} does not list {method}: the policy's defaultAction {app_default}",
                    op.name
                )
            })
        }
    }
}

fn verdict(action: Action, reason: impl FnOnce() -> String) -> Verdict {
    match action {
        Action::Allow => Verdict::Allow,
        Action::Deny => Verdict::Deny { reason: reason() },
    }
}

/// The most specific operation matching `path` (normalized).
fn best_match<'a>(operations: &'a [Operation], path: &str) -> Option<&'a Operation> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    operations
        .iter()
        .filter(|op| matches(&op.segments, &segments))
        .max_by_key(|op| {
            let literals = op
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            let rest = op.segments.last() == Some(&Segment::Rest);
            (literals, !rest, op.segments.len())
        })
}

fn matches(pattern: &[Segment], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (Some((Segment::Rest, _)), _) => true,
        (None, None) => true,
        (Some((Segment::One, p)), Some((_, rest))) => matches(p, rest),
        (Some((Segment::Literal(l), p)), Some((seg, rest))) => l == seg && matches(p, rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(json: &str) -> AccessControl {
        AccessControl::from_json(json.as_bytes()).unwrap()
    }

    fn caller<'a>(td: &'a str, ns: &'a str, id: &'a str) -> Caller<'a> {
        Caller {
            trust_domain: td,
            namespace: ns,
            app_id: id,
        }
    }

    fn allowed(a: &AccessControl, c: &Caller, method: &str, path: &str) -> bool {
        a.check(c, method, path) == Verdict::Allow
    }

    /// In the shape of Dapr's "invoke allowlist" documentation: for app1, POST and GET on /op1
    /// are denied, /op2/* is allowed, and everything else follows app1's defaultAction allow;
    /// app2 may only POST to /op3/**; every other app falls to the global deny.
    const DAPR_EXAMPLE: &str = r#"{
      "defaultAction": "deny", "trustDomain": "public",
      "policies": [
        {"appId": "app1", "defaultAction": "allow", "trustDomain": "public", "namespace": "default",
         "operations": [
           {"name": "/op1", "httpVerb": ["POST", "GET"], "action": "deny"},
           {"name": "/op2/*", "httpVerb": ["*"], "action": "allow"}]},
        {"appId": "app2", "defaultAction": "deny", "trustDomain": "public", "namespace": "default",
         "operations": [
           {"name": "/op3/**", "httpVerb": ["POST"], "action": "allow"}]}
      ]}"#;

    #[test]
    fn daprs_documented_example() {
        let a = acl(DAPR_EXAMPLE);
        let app1 = caller("public", "default", "app1");
        let app2 = caller("public", "default", "app2");
        let cases: &[(&Caller, &str, &str, bool)] = &[
            (&app1, "POST", "/op1", false),
            (&app1, "GET", "/op1", false),
            (&app1, "PUT", "/op1", true), // verb not listed: app1's default allow
            (&app1, "DELETE", "/op2/x", true),
            (&app1, "DELETE", "/op2/x/y", true), // no operation matches: app1's default allow
            (&app1, "GET", "/anything", true),
            (&app2, "POST", "/op3/a", true),
            (&app2, "POST", "/op3/a/b/c", true),
            (&app2, "POST", "/op3", true), // '**' includes no segment at all
            (&app2, "GET", "/op3/a", false), // verb not listed: app2's default deny
            (&app2, "POST", "/op4", false),
        ];
        for (c, m, p, want) in cases {
            assert_eq!(allowed(&a, c, m, p), *want, "{} {m} {p}", c.app_id);
        }
    }

    #[test]
    fn unknown_apps_trust_domains_and_namespaces_get_the_global_default() {
        let a = acl(DAPR_EXAMPLE);
        for c in [
            caller("public", "default", "app3"),
            caller("evil", "default", "app1"),
            caller("public", "prod", "app1"),
        ] {
            let Verdict::Deny { reason } = a.check(&c, "GET", "/anything") else {
                panic!("{c:?}")
            };
            assert!(reason.contains("global defaultAction deny"), "{reason}");
        }
        let open = acl(r#"{"defaultAction": "allow"}"#);
        assert!(allowed(&open, &caller("x", "y", "z"), "DELETE", "/a"));
        let closed = acl(r#"{}"#);
        assert!(!allowed(
            &closed,
            &caller("public", "default", "a"),
            "GET",
            "/"
        ));
    }

    #[test]
    fn one_star_is_one_segment_two_stars_any_number() {
        let a = acl(
            r#"{"defaultAction": "deny", "policies": [{"appId": "c", "operations": [
                {"name": "/orders/*", "action": "allow"},
                {"name": "/files/**", "action": "allow"},
                {"name": "/orders/*/secret", "action": "deny"}]}]}"#,
        );
        let c = caller("public", "default", "c");
        for (path, want) in [
            ("/orders/7", true),
            ("/orders", false),
            ("/orders/7/items", false),
            ("/orders/7/secret", false),
            ("/files", true),
            ("/files/a/b/c.txt", true),
            ("/filesystem", false),
        ] {
            assert_eq!(allowed(&a, &c, "GET", path), want, "{path}");
        }
    }

    #[test]
    fn the_most_specific_operation_wins() {
        let a = acl(
            r#"{"defaultAction": "deny", "policies": [{"appId": "c", "operations": [
                {"name": "/**", "action": "allow"},
                {"name": "/admin/**", "action": "deny"},
                {"name": "/admin/health", "action": "allow"}]}]}"#,
        );
        let c = caller("public", "default", "c");
        assert!(allowed(&a, &c, "GET", "/orders"));
        assert!(!allowed(&a, &c, "GET", "/admin/users"));
        assert!(allowed(&a, &c, "GET", "/admin/health"));
    }

    #[test]
    fn normalization() {
        let ok = [
            ("/orders", "/orders"),
            ("/orders/", "/orders"),
            ("//orders//7", "/orders/7"),
            ("/orders?x=/admin", "/orders"),
            ("/orders#frag", "/orders"),
            ("/ORDERS/Seven", "/orders/seven"),
            ("/a/./b/../c", "/a/c"),
            ("/%6Frders", "/orders"),
            ("/%2e%2e-not-dots", "/..-not-dots"),
            ("/caf%C3%A9", "/café"),
            ("", "/"),
            ("/", "/"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_operation(raw).as_deref(), Ok(want), "{raw}");
        }
        let bad = [
            "/..",
            "/a/../..",
            "/%2e%2e/admin",
            "/orders%2F..%2Fadmin",
            "/orders%2fadmin",
            "/a%5cb",
            "/a\\b",
            "/a%00",
            "/a%",
            "/a%zz",
            "/a%25",
            "/a;b",
            "/a%3Bb",
            "/a%3Fb",
            "/%C3",
            "/a\u{1}b",
        ];
        for raw in bad {
            assert!(normalize_operation(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn path_tricks_are_denied() {
        let a = acl(
            r#"{"defaultAction": "deny", "policies": [{"appId": "c", "defaultAction": "allow",
                "operations": [{"name": "/admin/**", "action": "deny"}]}]}"#,
        );
        let c = caller("public", "default", "c");
        assert!(allowed(&a, &c, "GET", "/orders/7"));
        for trick in [
            "/admin",
            "/admin/",
            "/ADMIN/users",
            "/Admin/users",
            "//admin/users",
            "/./admin",
            "/orders/../admin",
            "/%61dmin/users",
            "/%41DMIN",
            "/admin%2Fusers",
            "/orders/%2e%2e/admin",
            "/orders%2f..%2fadmin",
            "/admin;x",
            "/admin%00",
            "/x/../../admin",
        ] {
            assert!(!allowed(&a, &c, "GET", trick), "{trick}");
        }
    }

    #[test]
    fn verbs() {
        let a = acl(
            r#"{"defaultAction": "deny", "policies": [{"appId": "c", "operations": [
                {"name": "/orders", "httpVerb": ["post", "PUT"], "action": "allow"},
                {"name": "/status", "action": "allow"}]}]}"#,
        );
        let c = caller("public", "default", "c");
        assert!(allowed(&a, &c, "POST", "/orders"));
        assert!(allowed(&a, &c, "PUT", "/orders"));
        assert!(!allowed(&a, &c, "GET", "/orders"));
        assert!(
            allowed(&a, &c, "DELETE", "/status"),
            "no httpVerb: every verb"
        );
    }

    #[test]
    fn bad_policies_name_the_field() {
        let cases = [
            (
                r#"{"defaultAction": "maybe"}"#,
                "`access_control.defaultAction` is \"maybe\"",
            ),
            (
                r#"{"defaultAction": "deny", "polices": []}"#,
                "unknown field `polices`",
            ),
            (
                r#"{"trustDomain": "Bad Domain"}"#,
                "`access_control.trustDomain`",
            ),
            (
                r#"{"policies": [{"appId": ""}]}"#,
                "`access_control.policies[0].appId`",
            ),
            (
                r#"{"policies": [{"appId": "a", "namespace": "x y"}]}"#,
                "`access_control.policies[0].namespace`",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "orders", "action": "allow"}]}]}"#,
                "`access_control.policies[0].operations[0].name` \"orders\" must start with '/'",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "/a/**/b", "action": "allow"}]}]}"#,
                "'**' may only be the last segment",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "/or*", "action": "allow"}]}]}"#,
                "not part of one",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "/a", "httpVerb": ["FETCH"], "action": "allow"}]}]}"#,
                "`access_control.policies[0].operations[0].httpVerb` has \"FETCH\"",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "/a", "httpVerb": [], "action": "allow"}]}]}"#,
                "`access_control.policies[0].operations[0].httpVerb` is empty",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "/a", "action": "permit"}]}]}"#,
                "`access_control.policies[0].operations[0].action` is \"permit\"",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "/a"}]}]}"#,
                "missing field `action`",
            ),
            (
                r#"{"policies": [{"appId": "a", "operations": [{"name": "/a", "action": "allow"}, {"name": "/A/", "action": "deny"}]}]}"#,
                "is the same operation as \"/a\"",
            ),
            (
                r#"{"policies": [{"appId": "a"}, {"appId": "a", "namespace": "default"}]}"#,
                "`access_control.policies[1]` is a second policy for app \"a\"",
            ),
        ];
        for (json, want) in cases {
            let got = AccessControl::from_json(json.as_bytes()).unwrap_err();
            assert!(got.contains(want), "{json}\n  got {got}\n  want {want}");
        }
    }

    #[test]
    fn never_panics_on_arbitrary_paths_and_verbs() {
        let a = acl(DAPR_EXAMPLE);
        let c = caller("public", "default", "app1");
        let alphabet: &[u8] = b"/.%2eEfF5c3b;?#\\*aA\x00\xff op1op2";
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[(seed.rotate_left(i as u32 * 3) as usize) % alphabet.len()])
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            let _ = normalize_operation(&s);
            let _ = a.check(&c, &s, &s);
        }
    }
}
