//! From the configuration as written to a validated [`AccessControl`]: every field checked,
//! failing closed with the field's path and the reason.

use std::collections::HashMap;

use super::pattern::{segments, Operation, Seg, VERBS};
use super::raw::{RawAccessControl, RawOperation};
use super::spiffe::check_trust_domain;
use super::{AccessControl, AclError, Action, Policy};
use crate::ids::validate_name;

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
        // The sidecar's own trust domain plays no part in matching (its certificate carries
        // it); it is validated so that a typo is refused rather than ignored.
        if let Some(td) = &raw.trust_domain {
            parse_trust_domain(td, "trustDomain")?;
        }

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
    let segs = segments(&name, true).map_err(|e| AclError::new(format!("{field}.name"), e))?;
    let exact = segments(&name, false).map_err(|e| AclError::new(format!("{field}.name"), e))?;

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
        exact,
        verbs,
        any_verb,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
