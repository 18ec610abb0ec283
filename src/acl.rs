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

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::ids::validate_name;

/// The trust domain of a sidecar whose configuration names none, as in Dapr.
pub const DEFAULT_TRUST_DOMAIN: &str = "public";

/// The HTTP verbs Dapr knows (its `HTTPExtension.Verb`), in bit order.
const VERBS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Longest trust domain we accept, as SPIFFE allows.
const MAX_TRUST_DOMAIN: usize = 255;

/// Longest piece of request input (a method) echoed into a denial reason.
const MAX_ECHO: usize = 32;

// ---------------------------------------------------------------------------------------------
// Configuration as written
// ---------------------------------------------------------------------------------------------

/// `spec.accessControl` as written, in Dapr's camelCase shape. Every field is optional here so
/// that validation, not serde, reports what is missing, with the field's full path.
///
/// To embed it in another serde struct, use [`deserialize_optional`] so that only a JSON object
/// (never an array of the fields in order) is read as one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAccessControl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(
        default,
        deserialize_with = "objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub policies: Vec<RawPolicy>,
}

/// One entry of `policies`: what one calling app may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        default,
        deserialize_with = "objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub operations: Vec<RawOperation>,
}

/// One entry of a policy's `operations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOperation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_verb: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Reads a value only from a JSON object: a derived struct would also accept an array of its
/// fields in order, which no one writes on purpose.
struct ObjectOnly<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectOnly(PhantomData)).map(Object)
    }
}

/// A list whose items must be JSON objects.
fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Items<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Items<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(Object(item)) = seq.next_element::<Object<T>>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Items(PhantomData))
}

/// For embedding: `#[serde(default, deserialize_with = "dapr_invoke::acl::deserialize_optional")]`
/// on an `Option<RawAccessControl>` field reads it only from a JSON object (or `null`).
pub fn deserialize_optional<'de, D>(d: D) -> Result<Option<RawAccessControl>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<Object<RawAccessControl>>::deserialize(d).map(|o| o.map(|Object(raw)| raw))
}

// ---------------------------------------------------------------------------------------------
// Validated runtime form
// ---------------------------------------------------------------------------------------------

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

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
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

/// One segment of an operation name, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Matches the same segment.
    Literal(String),
    /// Has a `*` inside (`b*`, `*.json`): each `*` matches any run of characters within one
    /// segment.
    Glob(String),
    /// `*`: exactly one segment (or none, when it is the last one).
    One,
    /// `**`: any number of segments, none included.
    Any,
}

impl Seg {
    /// How specific the segment is: a literal beats a glob beats `*` beats `**`.
    fn rank(&self) -> u8 {
        match self {
            Seg::Literal(_) => 3,
            Seg::Glob(_) => 2,
            Seg::One => 1,
            Seg::Any => 0,
        }
    }

    fn matches(&self, segment: &str) -> bool {
        match self {
            Seg::Literal(l) => l == segment,
            Seg::Glob(g) => glob(g.as_bytes(), segment.as_bytes()),
            Seg::One | Seg::Any => true,
        }
    }
}

#[derive(Debug, Clone)]
struct Operation {
    /// The name as configured (with its leading `/`), for denial reasons.
    name: String,
    /// Where it was configured, for denial reasons.
    field: String,
    segs: Vec<Seg>,
    /// [`Seg::rank`] of each segment. Of two matching operations the one with the greater list
    /// wins (compared left to right; on a tie of the common part, the longer one); equal lists
    /// keep the earlier operation.
    ranks: Vec<u8>,
    /// Bit `i` set: `VERBS[i]` is listed.
    verbs: u16,
    /// `*` is listed: every method.
    any_verb: bool,
    action: Action,
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
    trust_domain: String,
    /// namespace → app id → policy.
    policies: HashMap<String, HashMap<String, Policy>>,
}

/// The calling app, as its SPIFFE ID names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    pub trust_domain: &'a str,
    pub namespace: &'a str,
    pub app_id: &'a str,
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

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

impl AccessControl {
    /// Parses and validates the value of Dapr's `spec.accessControl`, as JSON.
    ///
    /// ```
    /// use dapr_invoke::acl::{AccessControl, Caller};
    /// let acl = AccessControl::from_json(br#"{"defaultAction": "deny", "policies": [
    ///     {"appId": "checkout", "trustDomain": "public", "namespace": "default",
    ///      "operations": [{"name": "/orders/*", "httpVerb": ["GET"], "action": "allow"}]}]}"#,
    /// ).unwrap();
    /// let checkout = Caller { trust_domain: "public", namespace: "default", app_id: "checkout" };
    /// assert!(acl.check(&checkout, "GET", "/orders/17?full=1").is_allowed());
    /// assert!(!acl.check(&checkout, "DELETE", "/orders/17").is_allowed());
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw = Object::<RawAccessControl>::deserialize(&mut de)
            .and_then(|Object(raw)| de.end().map(|()| raw))
            .map_err(|e| format!("invalid access control configuration: {e}"))?;
        AccessControl::try_from(raw)
            .map_err(|e| format!("invalid access control configuration: {e}"))
    }

    /// This sidecar's own trust domain (`public` unless configured).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The global default action.
    pub fn default_action(&self) -> Action {
        self.default_action
    }

    /// Decides whether `caller` may call `method` on `path` (the raw `:path`, query included).
    pub fn check(&self, caller: &Caller<'_>, method: &str, path: &str) -> Verdict {
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
        let lowered = operation.to_lowercase();
        let segments: Vec<&str> = lowered.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<&Operation> = None;
        for op in &policy.operations {
            if matches(&op.segs, &segments) && best.is_none_or(|b| op.ranks > b.ranks) {
                best = Some(op);
            }
        }
        let Some(op) = best else {
            return self.fallback(
                policy,
                format_args!("no operation of {} matches", policy.field),
            );
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

    /// Decides for a caller whose identity could not be verified: the global default, as in
    /// Dapr. A path that cannot be normalized is denied all the same.
    pub fn check_unverified(&self, path: &str) -> Verdict {
        if let Err(e) = normalize_operation(path) {
            return deny(format!("the request path is refused: {e}"));
        }
        self.global(format_args!("the caller's identity is not verified"))
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

/// The bit of a request method, in any letter case as Dapr upper-cases it; `None` for a method
/// Dapr does not know.
fn verb_bit(method: &str) -> Option<u16> {
    VERBS
        .iter()
        .position(|v| v.eq_ignore_ascii_case(method))
        .map(|i| 1u16 << i)
}

/// Whether an operation's segments match a normalized, lowercased path's segments.
///
/// A name that ends in a literal or a glob also matches every path below it (Dapr's trie stops
/// at the first node that carries an operation); one that ends in `*` matches its parent or one
/// segment more; one that ends in `**` matches its parent and everything below.
fn matches(pattern: &[Seg], path: &[&str]) -> bool {
    match pattern.last() {
        None => path.is_empty(),
        Some(Seg::One) => {
            let parent = pattern.get(..pattern.len() - 1).unwrap_or_default();
            exact(pattern, path) || exact(parent, path)
        }
        Some(Seg::Any) => exact(pattern, path),
        Some(Seg::Literal(_) | Seg::Glob(_)) => {
            if pattern.contains(&Seg::Any) {
                (pattern.len().saturating_sub(1)..=path.len())
                    .any(|k| path.get(..k).is_some_and(|head| exact(pattern, head)))
            } else {
                path.get(..pattern.len())
                    .is_some_and(|head| exact(pattern, head))
            }
        }
    }
}

/// Whether the pattern matches the whole path. A pattern has at most one `**`.
fn exact(pattern: &[Seg], path: &[&str]) -> bool {
    let pairwise =
        |p: &[Seg], s: &[&str]| p.len() == s.len() && p.iter().zip(s).all(|(p, s)| p.matches(s));
    match pattern.iter().position(|s| *s == Seg::Any) {
        None => pairwise(pattern, path),
        Some(i) => {
            let (head, tail) = (
                pattern.get(..i).unwrap_or_default(),
                pattern.get(i + 1..).unwrap_or_default(),
            );
            path.len() >= head.len() + tail.len()
                && path.get(..head.len()).is_some_and(|s| pairwise(head, s))
                && path
                    .get(path.len() - tail.len()..)
                    .is_some_and(|s| pairwise(tail, s))
        }
    }
}

/// `*` matches any run of bytes (UTF-8 is self-synchronizing, so literal runs still align on
/// characters). Linear backtracking to the last star: no blow-up on many stars.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if text.get(t) == Some(c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == b'*')
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

impl TryFrom<RawAccessControl> for AccessControl {
    type Error = AclError;

    fn try_from(raw: RawAccessControl) -> Result<Self, AclError> {
        if raw.default_action.is_none() && raw.policies.is_empty() {
            return Err(AclError::new(
                "",
                "sets neither defaultAction nor policies; Dapr reads that as no access control \
                 at all, so say it: \"defaultAction\": \"allow\"",
            ));
        }
        // Dapr: without a global default, a list with policies denies everyone else.
        let default_action = match &raw.default_action {
            Some(a) => parse_action(a, "defaultAction")?,
            None => Action::Deny,
        };
        let trust_domain = match &raw.trust_domain {
            Some(td) => parse_trust_domain(td, "trustDomain")?,
            None => DEFAULT_TRUST_DOMAIN.to_string(),
        };

        let mut policies: HashMap<String, HashMap<String, Policy>> = HashMap::new();
        let mut claimed: HashMap<(String, String), usize> = HashMap::new();
        for (i, p) in raw.policies.into_iter().enumerate() {
            let field = format!("policies[{i}]");
            let app_id = required(p.app_id, &field, "appId")?;
            validate_name(&app_id).map_err(|e| AclError::new(format!("{field}.appId"), e))?;
            let namespace = required(p.namespace, &field, "namespace")?;
            validate_name(&namespace)
                .map_err(|e| AclError::new(format!("{field}.namespace"), e))?;
            let td = required(p.trust_domain, &field, "trustDomain")?;
            let td = parse_trust_domain(&td, &format!("{field}.trustDomain"))?;
            let default_action = p
                .default_action
                .as_deref()
                .map(|a| parse_action(a, &format!("{field}.defaultAction")))
                .transpose()?;
            if let Some(first) = claimed.insert((namespace.clone(), app_id.clone()), i) {
                return Err(AclError::new(
                    &field,
                    format!(
                        "is a second policy for app {app_id:?} in namespace {namespace:?} \
                         (policies[{first}] is the first); Dapr would keep only the last, \
                         so merge them"
                    ),
                ));
            }
            let mut operations: Vec<Operation> = Vec::with_capacity(p.operations.len());
            for (j, o) in p.operations.into_iter().enumerate() {
                let op = operation(o, &format!("{field}.operations[{j}]"))?;
                if let Some(k) = operations.iter().position(|x| x.segs == op.segs) {
                    return Err(AclError::new(
                        format!("{}.name", op.field),
                        format!(
                            "{:?} names the same operation as operations[{k}]; Dapr keeps only \
                             the first, so merge them",
                            op.name
                        ),
                    ));
                }
                operations.push(op);
            }
            policies.entry(namespace).or_default().insert(
                app_id,
                Policy {
                    field,
                    trust_domain: td,
                    default_action,
                    operations,
                },
            );
        }
        Ok(AccessControl {
            default_action,
            trust_domain,
            policies,
        })
    }
}

fn required(value: Option<String>, parent: &str, name: &str) -> Result<String, AclError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(AclError::new(
            format!("{parent}.{name}"),
            "is missing or empty; Dapr refuses a policy without it",
        )),
    }
}

fn parse_action(raw: &str, field: &str) -> Result<Action, AclError> {
    Action::parse(raw)
        .ok_or_else(|| AclError::new(field, format!("is {raw:?}; use \"allow\" or \"deny\"")))
}

/// A trust domain, lowercased (SPIFFE trust domains are case-insensitive and written in lower
/// case, and Dapr's own examples write `myDomain`).
fn parse_trust_domain(raw: &str, field: &str) -> Result<String, AclError> {
    let td = raw.to_ascii_lowercase();
    check_trust_domain(&td).map_err(|e| AclError::new(field, e))?;
    Ok(td)
}

/// Checks a lowercase SPIFFE trust domain: 1 to 255 characters of a-z, 0-9, '.', '-', '_'.
/// The reason reads after the value: `"a/b" has the character '/'; ...`.
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

fn operation(raw: RawOperation, field: &str) -> Result<Operation, AclError> {
    let Some(name) = raw.name.filter(|n| !n.is_empty()) else {
        return Err(AclError::new(
            format!("{field}.name"),
            "is missing or empty",
        ));
    };
    let name = if name.starts_with('/') {
        name
    } else {
        format!("/{name}")
    };
    let segs = segments(&name).map_err(|e| AclError::new(format!("{field}.name"), e))?;

    let Some(action) = raw.action else {
        return Err(AclError::new(
            format!("{field}.action"),
            "is missing; Dapr's docs say it defaults to allow but its runtime denies, so say \
             which: \"allow\" or \"deny\"",
        ));
    };
    let action = parse_action(&action, &format!("{field}.action"))?;

    let (mut verbs, mut any_verb) = (0u16, false);
    for (k, v) in raw.http_verb.unwrap_or_default().iter().enumerate() {
        let vfield = format!("{field}.httpVerb[{k}]");
        let fresh = if v == "*" {
            !std::mem::replace(&mut any_verb, true)
        } else if let Some(i) = VERBS.iter().position(|known| known == v) {
            let bit = 1u16 << i;
            let fresh = verbs & bit == 0;
            verbs |= bit;
            fresh
        } else if VERBS.iter().any(|known| known.eq_ignore_ascii_case(v)) {
            return Err(AclError::new(
                vfield,
                format!(
                    "is {v:?}; Dapr matches verbs in upper case only, write {:?}",
                    v.to_ascii_uppercase()
                ),
            ));
        } else {
            return Err(AclError::new(
                vfield,
                format!("is {v:?}; use \"*\" or one of {}", VERBS.join(", ")),
            ));
        };
        if !fresh {
            return Err(AclError::new(vfield, format!("lists {v:?} twice")));
        }
    }
    Ok(Operation {
        name,
        field: field.to_string(),
        ranks: segs.iter().map(Seg::rank).collect(),
        segs,
        verbs,
        any_verb,
        action,
    })
}

/// Splits an operation name (with its leading `/`) into lowercased segments, refusing what no
/// normalized request path can contain, so that no rule is silently dead.
fn segments(name: &str) -> Result<Vec<Seg>, String> {
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '?' | '#' | '%' | '\\' | ';'))
    {
        return Err(format!(
            "{name:?} has the character {c:?}, which a request path never has once normalized; \
             write the decoded path"
        ));
    }
    if name == "/" {
        return Ok(Vec::new());
    }
    let lowered = name.to_lowercase();
    let mut segs = Vec::new();
    for seg in lowered.split('/').skip(1) {
        segs.push(match seg {
            "" => {
                return Err(format!(
                    "{name:?} has an empty segment ('//' or a trailing '/'); request paths are \
                     matched with both removed"
                ))
            }
            "." | ".." => {
                return Err(format!(
                    "{name:?} has a {seg:?} segment; request paths are matched with those resolved"
                ))
            }
            "*" => Seg::One,
            "**" => Seg::Any,
            s if s.contains('*') => Seg::Glob(s.to_string()),
            s => Seg::Literal(s.to_string()),
        });
    }
    if segs.iter().filter(|s| **s == Seg::Any).count() > 1 {
        return Err(format!("{name:?} has more than one '**'"));
    }
    Ok(segs)
}

// ---------------------------------------------------------------------------------------------
// Caller identity and request path
// ---------------------------------------------------------------------------------------------

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

/// The request path as access control sees it, from the raw `:path`:
///
/// - the query string (from the first `?`) is dropped; Dapr never matches on it;
/// - `%XX` is decoded once; an escape that is malformed, or decodes to `/`, `\`, `%`, `?`, `#`,
///   `;` or a control character, refuses the path, as does a raw `#`, `\`, `;` or control
///   character, or bytes that are not UTF-8 once decoded;
/// - empty and `.` segments are dropped and `..` removes the segment before it, never going
///   above the root, and a trailing `/` is dropped (Go's `path.Clean`, as Dapr uses).
///
/// Letter case is kept here; matching compares lowercased, as Dapr does for HTTP.
///
/// ```
/// use dapr_invoke::acl::normalize_operation;
/// assert_eq!(normalize_operation("/a//b/./c/../d/?x=/e").unwrap(), "/a/b/d");
/// assert_eq!(normalize_operation("/%2e%2e/../Orders%20x").unwrap(), "/Orders x");
/// assert!(normalize_operation("/admin%2F..%2Fpublic").is_err());
/// ```
pub fn normalize_operation(path: &str) -> Result<String, String> {
    let raw = path.split('?').next().unwrap_or_default();
    if !raw.starts_with('/') {
        return Err("does not start with '/'".into());
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        let b = if b == b'%' {
            let hi = bytes.next().and_then(hex);
            let lo = bytes.next().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err("has a '%' not followed by two hex digits".into());
            };
            let v = (hi << 4) | lo;
            if forbidden(v) || v == b'/' || v == b'%' {
                return Err(format!(
                    "has an encoded {:?}, which would decode to a different path",
                    char::from(v)
                ));
            }
            v
        } else if forbidden(b) {
            return Err(format!("has the character {:?}", char::from(b)));
        } else {
            b
        };
        decoded.push(b);
    }
    let decoded =
        String::from_utf8(decoded).map_err(|_| "is not UTF-8 once decoded".to_string())?;
    let mut out = String::with_capacity(decoded.len());
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => out.truncate(out.rfind('/').unwrap_or(0)),
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Bytes no path may carry, raw or encoded: `#` (a fragment), `\` (a separator to some servers),
/// `;` (path parameters to some servers) and control characters.
fn forbidden(b: u8) -> bool {
    b < 0x20 || b == 0x7f || matches!(b, b'#' | b'\\' | b';' | b'?')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
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
        assert_eq!(a.trust_domain(), "abcd");
        assert_eq!(a.default_action(), Action::Deny);
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
        assert_eq!(
            a.check_unverified("/op1"),
            Verdict::Deny {
                reason: "the caller's identity is not verified; global defaultAction is deny"
                    .into()
            }
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
                // Dot segments are resolved before matching, never above the root.
                (c, "GET", "/x/../admin", false, "denies"),
                (c, "GET", "/../../admin", false, "denies"),
                (c, "GET", "/./admin", false, "denies"),
                (c, "GET", "/%2e%2e/admin", false, "denies"),
                (c, "GET", "/x/%2E%2E/admin", false, "denies"),
                // Resolved the other way, the request really is for /orders: allowed.
                (c, "GET", "/admin/../orders", true, ""),
                // Merged slashes and a trailing slash.
                (c, "GET", "//admin", false, "denies"),
                (c, "GET", "/admin/", false, "denies"),
                (c, "GET", "/admin//x", false, "denies"),
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
        assert!(open.check(&c, "GET", "/x").is_allowed());
        assert!(!open.check(&c, "GET", "/x%2Fy").is_allowed());
        assert!(!open.check_unverified("/x%2Fy").is_allowed());
        assert!(open.check_unverified("/x").is_allowed());
    }

    #[test]
    fn normalization() {
        let ok: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a", "/a"),
            ("/a/", "/a"),
            ("//a//b//", "/a/b"),
            ("/a/./b/.", "/a/b"),
            ("/a/b/..", "/a"),
            ("/..", "/"),
            ("/../..", "/"),
            ("/a/../../b", "/b"),
            ("/a/%2e%2e/b", "/b"),
            ("/a/%2E/b", "/a/b"),
            ("/a/...", "/a/..."),
            ("/a/..b", "/a/..b"),
            ("/Orders%20Big", "/Orders Big"),
            ("/caf%C3%A9", "/café"),
            ("/café", "/café"),
            ("/a?b/../../c", "/a"),
            ("/a*b", "/a*b"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_operation(raw).as_deref(), Ok(*want), "{raw:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "start with '/'"),
            ("a/b", "start with '/'"),
            ("?/a", "start with '/'"),
            ("*", "start with '/'"),
            ("/a%2fb", "encoded '/'"),
            ("/a%252fb", "encoded '%'"),
            ("/a%5Cb", "encoded '\\\\'"),
            ("/a\\b", "'\\\\'"),
            ("/a%3Fb", "encoded '?'"),
            ("/a%23b", "encoded '#'"),
            ("/a#b", "'#'"),
            ("/a%0Ab", "encoded '\\n'"),
            ("/a\tb", "'\\t'"),
            ("/a%7f", "encoded '\\u{7f}'"),
            ("/a;b", "';'"),
            ("/a%", "two hex digits"),
            ("/a%4", "two hex digits"),
            ("/a%g0", "two hex digits"),
            ("/a%C3", "not UTF-8"),
            ("/a%C3%28", "not UTF-8"),
        ];
        for (raw, want) in bad {
            match normalize_operation(raw) {
                Ok(p) => panic!("{raw:?} normalized to {p:?}"),
                Err(e) => assert!(e.contains(want), "{raw:?}: {e:?} lacks {want:?}"),
            }
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

    #[test]
    fn defaults() {
        // No global defaultAction with policies: deny, as Dapr.
        let a = acl(
            r#"{"policies": [{"appId": "a", "trustDomain": "public", "namespace": "d",
            "defaultAction": "ALLOW"}]}"#,
        );
        assert_eq!(a.default_action(), Action::Deny);
        assert_eq!(a.trust_domain(), DEFAULT_TRUST_DOMAIN);
        assert!(a
            .check(&caller("public", "d", "a"), "GET", "/x")
            .is_allowed());
        assert!(!a
            .check(&caller("public", "d", "b"), "GET", "/x")
            .is_allowed());
        // Trust domains are compared in lower case.
        let a = acl(
            r#"{"defaultAction": "Deny", "trustDomain": "My.Domain", "policies": [
            {"appId": "a", "trustDomain": "Other", "namespace": "d", "defaultAction": "allow"}]}"#,
        );
        assert_eq!(a.trust_domain(), "my.domain");
        assert!(a
            .check(&caller("other", "d", "a"), "GET", "/x")
            .is_allowed());
        // Names without a leading '/' get one, as in Dapr.
        let a = acl(r#"{"defaultAction": "allow", "policies": [{"appId": "a",
            "trustDomain": "public", "namespace": "d",
            "operations": [{"name": "op1", "httpVerb": ["*"], "action": "deny"}]}]}"#);
        assert!(!a
            .check(&caller("public", "d", "a"), "GET", "/op1")
            .is_allowed());
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        let p = |extra: &str| {
            format!(
                r#"{{"defaultAction": "deny", "policies": [
                    {{"appId": "ok", "trustDomain": "public", "namespace": "d"}},
                    {{"appId": "a", "trustDomain": "public", "namespace": "d"{extra}}}]}}"#
            )
        };
        let op = |o: &str| {
            p(&format!(
                r#", "operations": [{{"name": "/fine", "action": "allow"}}, {o}]"#
            ))
        };
        let cases: Vec<(String, &[&str])> = vec![
            ("".into(), &["EOF"]),
            ("[]".into(), &["invalid type: sequence, expected an object"]),
            (r#"["deny"]"#.into(), &["expected an object"]),
            ("{} {}".into(), &["trailing characters"]),
            ("{}".into(), &["field `accessControl` sets neither"]),
            (r#"{"policies": []}"#.into(), &["sets neither"]),
            (r#"{"defaultAction": "maybe"}"#.into(), &["`accessControl.defaultAction`", "\"maybe\""]),
            (r#"{"defaultAction": ""}"#.into(), &["`accessControl.defaultAction`"]),
            (r#"{"defaultAction": "allow", "defaultaction": "deny"}"#.into(), &["unknown field `defaultaction`"]),
            (r#"{"defaultAction": "allow", "defaultAction": "deny"}"#.into(), &["duplicate field `defaultAction`"]),
            (r#"{"defaultAction": "allow", "trustDomain": "a/b"}"#.into(), &["`accessControl.trustDomain`", "'/'"]),
            (r#"{"defaultAction": "allow", "trustDomain": ""}"#.into(), &["`accessControl.trustDomain`", "is empty"]),
            (r#"{"defaultAction": "allow", "policies": {}}"#.into(), &["expected a list of objects"]),
            (r#"{"defaultAction": "allow", "policies": [["a"]]}"#.into(), &["expected an object"]),
            (r#"{"defaultAction": "allow", "policies": [{"app": "a"}]}"#.into(), &["unknown field `app`"]),
            (r#"{"defaultAction": "allow", "policies": [{"namespace": "d", "trustDomain": "t"}]}"#.into(),
             &["`accessControl.policies[0].appId`", "missing"]),
            (p(r#", "appId": "b""#), &["duplicate field `appId`"]),
            (r#"{"defaultAction": "allow", "policies": [{"appId": "a", "trustDomain": "t"}]}"#.into(),
             &["`accessControl.policies[0].namespace`", "missing"]),
            (r#"{"defaultAction": "allow", "policies": [{"appId": "a", "namespace": "d"}]}"#.into(),
             &["`accessControl.policies[0].trustDomain`", "missing"]),
            (r#"{"defaultAction": "allow", "policies": [{"appId": "a.b", "namespace": "d", "trustDomain": "t"}]}"#.into(),
             &["`accessControl.policies[0].appId`", "'.'"]),
            (r#"{"defaultAction": "allow", "policies": [{"appId": "a", "namespace": "-d", "trustDomain": "t"}]}"#.into(),
             &["`accessControl.policies[0].namespace`", "start and end"]),
            (p(r#", "defaultAction": "permit""#), &["`accessControl.policies[1].defaultAction`", "\"permit\""]),
            (r#"{"defaultAction": "allow", "policies": [
                {"appId": "a", "trustDomain": "t", "namespace": "d"},
                {"appId": "a", "trustDomain": "u", "namespace": "d"}]}"#.into(),
             &["`accessControl.policies[1]`", "policies[0] is the first"]),
            (op(r#"{"name": "", "action": "allow"}"#), &["`accessControl.policies[1].operations[1].name`", "empty"]),
            (op(r#"{"action": "allow"}"#), &["`accessControl.policies[1].operations[1].name`", "missing"]),
            (op(r#"{"name": "/x"}"#), &["`accessControl.policies[1].operations[1].action`", "missing"]),
            (op(r#"{"name": "/x", "action": "alow"}"#), &["`accessControl.policies[1].operations[1].action`", "\"alow\""]),
            (op(r#"{"name": "/x", "action": "allow", "verb": ["GET"]}"#), &["unknown field `verb`"]),
            (op(r#"{"name": "/x", "action": "allow", "httpVerb": "GET"}"#), &["invalid type: string"]),
            (op(r#"{"name": "/x", "action": "allow", "httpVerb": ["get"]}"#),
             &["`accessControl.policies[1].operations[1].httpVerb[0]`", "upper case", "\"GET\""]),
            (op(r#"{"name": "/x", "action": "allow", "httpVerb": ["GET", "FETCH"]}"#),
             &["`accessControl.policies[1].operations[1].httpVerb[1]`", "\"FETCH\""]),
            (op(r#"{"name": "/x", "action": "allow", "httpVerb": ["NONE"]}"#), &["httpVerb[0]`", "\"NONE\""]),
            (op(r#"{"name": "/x", "action": "allow", "httpVerb": ["GET", "GET"]}"#), &["httpVerb[1]`", "twice"]),
            (op(r#"{"name": "/x", "action": "allow", "httpVerb": ["*", "*"]}"#), &["httpVerb[1]`", "twice"]),
            (op(r#"{"name": "/FINE", "action": "deny"}"#), &["operations[1].name`", "same operation as operations[0]"]),
            (op(r#"{"name": "fine", "action": "deny"}"#), &["operations[1].name`", "same operation"]),
            (op(r#"{"name": "/a//b", "action": "allow"}"#), &["operations[1].name`", "empty segment"]),
            (op(r#"{"name": "/a/", "action": "allow"}"#), &["operations[1].name`", "trailing"]),
            (op(r#"{"name": "/a/../b", "action": "allow"}"#), &["operations[1].name`", "\"..\" segment"]),
            (op(r#"{"name": "/a/%2F", "action": "allow"}"#), &["operations[1].name`", "'%'"]),
            (op(r#"{"name": "/a?x", "action": "allow"}"#), &["operations[1].name`", "'?'"]),
            (op(r#"{"name": "/a;x", "action": "allow"}"#), &["operations[1].name`", "';'"]),
            (op(r#"{"name": "/**/a/**", "action": "allow"}"#), &["operations[1].name`", "more than one '**'"]),
        ];
        for (json, wants) in &cases {
            let got = match AccessControl::from_json(json.as_bytes()) {
                Ok(_) => panic!("accepted: {json}"),
                Err(e) => e,
            };
            assert!(
                got.starts_with("invalid access control configuration: "),
                "{got}"
            );
            for want in *wants {
                assert!(
                    got.contains(want),
                    "config {json}\n  error {got}\n  lacks {want:?}"
                );
            }
        }
    }

    #[test]
    fn embeds_in_another_config() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            #[serde(default, deserialize_with = "deserialize_optional")]
            access_control: Option<RawAccessControl>,
        }
        let o: Outer =
            serde_json::from_str(r#"{"access_control": {"defaultAction": "deny"}}"#).unwrap();
        let a = AccessControl::try_from(o.access_control.unwrap()).unwrap();
        assert_eq!(a.default_action(), Action::Deny);
        let o: Outer = serde_json::from_str("{}").unwrap();
        assert!(o.access_control.is_none());
        let o: Outer = serde_json::from_str(r#"{"access_control": null}"#).unwrap();
        assert!(o.access_control.is_none());
        assert!(serde_json::from_str::<Outer>(r#"{"access_control": ["deny"]}"#).is_err());
        let e = AccessControl::try_from(RawAccessControl::default()).unwrap_err();
        assert_eq!(e.field, "");
    }

    #[test]
    fn glob_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*d", "abcd", true),
            ("ab*.a", "abc.a", true),
            ("a*", "b", false),
            ("*a*b*", "xaxxbx", true),
            ("*a*b*", "xbxxax", false),
            ("a**", "a", true),
            ("é*", "éa", true),
            ("", "", true),
            ("", "a", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), *want, "{p:?} ~ {t:?}");
        }
        // Many stars stay fast.
        let p = "*a".repeat(50);
        assert!(!glob(
            p.as_bytes(),
            "a".repeat(5000).replace("aa", "ab").as_bytes()
        ));
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
            let _ = a.check_unverified(&path);
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
