//! Access control: the parser (`AccessControl::from_json`), the matcher (`check`) and the path
//! rule (`normalize_operation`), with a policy and requests in (input format:
//! `dapr_invoke_fuzz::input::acl`).
//!
//! Properties:
//! - nothing panics;
//! - validation follows docs/access-control.md: whatever the filter accepts, the reference
//!   (`reference::acl::Acl::from_value`, written from the docs' field table and refusal list)
//!   accepts; and on canonical JSON (no duplicate keys, no `null`s) the two agree both ways;
//! - the filter never allows what the reference decision table denies, and (stronger, checked
//!   too) never denies what it allows: for each request line, for the identity of every policy,
//!   and for paths made from the operation names; for HTTP calls (`check`) and gRPC calls
//!   (`check_grpc`: the method name in its case, no verb);
//! - `normalize_operation` is the documented rule exactly (`reference::normalize`), its output is
//!   a fixed point, starts with '/', and has no '.', '..' or empty segment and no '%' (so no
//!   encoded '/').
#![no_main]

use dapr_invoke::acl::{normalize_operation, AccessControl, Caller, Verdict};
use dapr_invoke_fuzz::input::{self, AclRequest};
use dapr_invoke_fuzz::reference::{self, acl::Acl};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (json, requests) = input::acl(data);
    let loaded = AccessControl::from_json(json);
    let value: Option<Value> = serde_json::from_slice(json).ok();

    for r in &requests {
        path_rule(&r.path);
    }
    let Some(value) = value else {
        assert!(loaded.is_err(), "the filter loads what is not JSON");
        return;
    };
    let reference = Acl::from_value(&value);
    if let (Ok(_), Err(why)) = (&loaded, &reference) {
        panic!("the filter accepts what the docs refuse ({why})");
    }
    // Canonical JSON: what the reference reads, without duplicate keys. Where the configuration
    // has no `null` (whose reading is serde's, not the docs'), the two must agree both ways.
    let canonical = serde_json::to_vec(&value).expect("a Value serializes");
    let canonical_loaded = AccessControl::from_json(&canonical);
    if loaded.is_ok() {
        assert!(canonical_loaded.is_ok(), "accepted, but not once canonical");
    }
    if !has_null(&value) {
        match (&canonical_loaded, &reference) {
            (Ok(_), Err(why)) => panic!("the filter accepts what the docs refuse ({why})"),
            (Err(e), Ok(_)) => panic!("the filter refuses what the docs accept: {e}"),
            _ => {}
        }
    }
    let (Ok(acl), Ok(reference)) = (canonical_loaded, reference) else {
        return;
    };

    // The requests: each line as written, then as every policy's own caller; with the paths of
    // the lines and paths made from the operation names. Bounded: a few hundred checks an input.
    let mut paths: Vec<String> = requests.iter().take(8).map(|r| r.path.clone()).collect();
    for p in reference.policies.iter().take(4) {
        for o in p.operations.iter().take(6) {
            let name = format!("/{}", o.segments.join("/"));
            paths.push(format!("{name}/x"));
            paths.push(name);
        }
    }
    paths.truncate(24);
    let mut methods: Vec<String> = requests.iter().take(2).map(|r| r.method.clone()).collect();
    methods.push("GET".into());
    let mut callers: Vec<AclRequest> = requests.iter().take(4).cloned().collect();
    for p in reference.policies.iter().take(4) {
        callers.push(AclRequest {
            trust_domain: p.trust_domain.clone(),
            namespace: p.namespace.clone(),
            app_id: p.app_id.clone(),
            ..AclRequest::default()
        });
    }
    for c in &callers {
        let caller = Caller {
            trust_domain: &c.trust_domain,
            namespace: &c.namespace,
            app_id: &c.app_id,
        };
        let own = std::iter::once((c.method.as_str(), c.path.as_str()));
        let all = methods
            .iter()
            .flat_map(|m| paths.iter().map(move |p| (m.as_str(), p.as_str())));
        for (method, path) in own.chain(all) {
            let grpc = acl.check_grpc(&caller, path);
            let docs = reference.allows_grpc(&c.trust_domain, &c.namespace, &c.app_id, path);
            match (&grpc, docs) {
                (Verdict::Allow, false) => {
                    panic!("ALLOWED a gRPC call the docs deny: {caller:?} {path:?}")
                }
                (Verdict::Deny { reason }, true) => {
                    panic!("denied a gRPC call the docs allow: {caller:?} {path:?}: {reason}")
                }
                _ => {}
            }
            let verdict = acl.check(&caller, method, path);
            let docs = reference.allows(&c.trust_domain, &c.namespace, &c.app_id, method, path);
            match (&verdict, docs) {
                (Verdict::Allow, false) => {
                    panic!("ALLOWED what the docs deny: {caller:?} {method:?} {path:?}")
                }
                (Verdict::Deny { reason }, true) => {
                    panic!("denied what the docs allow: {caller:?} {method:?} {path:?}: {reason}")
                }
                _ => {}
            }
        }
    }
});

/// `normalize_operation` against the documented rule, and the properties of its output.
fn path_rule(path: &str) {
    let got = normalize_operation(path);
    assert_eq!(
        got.as_ref().ok(),
        reference::normalize(path).as_ref(),
        "{path:?}: {got:?}"
    );
    let Ok(n) = got else { return };
    assert_eq!(
        normalize_operation(&n).as_ref(),
        Ok(&n),
        "not a fixed point: {path:?}"
    );
    assert!(n.starts_with('/'), "{n:?}");
    assert!(!n.contains('%'), "{path:?} -> {n:?} still has an escape");
    if n != "/" {
        for segment in n[1..].split('/') {
            assert!(
                !segment.is_empty() && segment != "." && segment != "..",
                "{path:?} -> {n:?}"
            );
        }
    }
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(has_null),
        Value::Object(o) => o.values().any(has_null),
        _ => false,
    }
}
