//! The plugin configuration, as bytes: `Config::load` (what the filter runs at load; here with an
//! environment that has every variable, so `api_token_env` resolves) and the typed schema
//! `PluginConfig` (what the runner writes).
//!
//! Properties:
//! - neither panics, whatever the bytes;
//! - the schema and the loader agree: the bytes load iff they read as a `PluginConfig` that
//!   passes `check()`, and when the schema reads them and the check refuses, the loader refuses
//!   with the same error;
//! - a configuration that loads serializes back (serde_json of its `PluginConfig`) to JSON that
//!   loads to an equivalent configuration: the same role, ids, namespace, cluster header, API
//!   token, app channel, body limit and app count, the same resolution of every configured target and of a sample of others, and the
//!   same access-control verdicts on a sample of callers and paths; and that JSON is a fixed
//!   point (reading and writing it again gives the same text);
//! - the access-control parser alone (`AccessControl::from_json`) never panics on the bytes.
#![no_main]

use dapr_invoke::acl::{AccessControl, Caller};
use dapr_invoke::config::{Config, Mode};
use dapr_invoke::ids::Target;
use dapr_invoke::schema::PluginConfig;
use libfuzzer_sys::fuzz_target;

/// The VM's environment: every variable set, so that `api_token_env` is checked as `check()`
/// checks it (by its name alone).
fn env(name: &str) -> Option<String> {
    Some(format!("token-of-{name}"))
}

fuzz_target!(|data: &[u8]| {
    let _ = AccessControl::from_json(data);
    let _ = Config::from_json(data);
    let loaded = Config::load(data, &env);
    let schema = serde_json::from_slice::<PluginConfig>(data);
    let config = match (&loaded, schema) {
        (Ok(_), Ok(config)) => config,
        (Ok(_), Err(e)) => panic!("the filter loads what the schema refuses: {e}"),
        (Err(_), Err(_)) => return,
        (Err(load), Ok(config)) => {
            // The check refuses what the loader refuses, in the same words.
            match config.check() {
                Ok(()) => panic!("the schema reads and checks what the filter refuses: {load}"),
                Err(check) => assert_eq!(&check, load, "check and load refuse differently"),
            }
            return;
        }
    };
    let Ok(loaded) = loaded else { return };
    assert_eq!(
        config.check(),
        Ok(()),
        "the filter loads what check() refuses"
    );

    let json = serde_json::to_string(&config).expect("a PluginConfig serializes");
    let again = match Config::load(json.as_bytes(), &env) {
        Ok(c) => c,
        Err(e) => panic!("written back as {json}\nit no longer loads: {e}"),
    };
    let reread: PluginConfig = serde_json::from_str(&json).expect("the written JSON reads back");
    assert_eq!(reread, config, "{json}");
    assert_eq!(
        serde_json::to_string(&reread).expect("serializes"),
        json,
        "not a fixed point"
    );
    equivalent(&loaded, &again, &config, &json);
});

/// Two loaded configurations behave the same on the request path.
fn equivalent(a: &Config, b: &Config, config: &PluginConfig, json: &str) {
    assert_eq!(a.mode, b.mode, "{json}");
    assert_eq!(a.app_id, b.app_id, "{json}");
    assert_eq!(a.namespace, b.namespace, "{json}");
    assert_eq!(a.cluster_header, b.cluster_header, "{json}");
    assert_eq!(a.app_count(), b.app_count(), "{json}");
    assert_eq!(
        a.access_control.is_some(),
        b.access_control.is_some(),
        "{json}"
    );

    let mut targets: Vec<String> = vec![
        "order-processor".into(),
        "payments.prod".into(),
        format!("{}.{}", a.app_id, a.namespace),
        a.app_id.clone(),
    ];
    let mut callers: Vec<(String, String, String)> =
        vec![("public".into(), "default".into(), "checkout".into())];
    match config {
        PluginConfig::Outbound(o) => {
            for (key, _) in o.apps.0.iter().take(32) {
                targets.push(key.clone());
                let id = key.split('.').next().unwrap_or_default();
                targets.push(format!("{id}.{}", a.namespace));
                targets.push(format!("{id}.default"));
                targets.push(id.to_string());
            }
        }
        PluginConfig::Inbound(i) => {
            for p in i
                .access_control
                .iter()
                .flat_map(|acl| acl.policies.iter())
                .take(8)
            {
                let field = |f: &Option<String>| f.clone().unwrap_or_default().to_ascii_lowercase();
                callers.push((
                    field(&p.trust_domain),
                    p.namespace.clone().unwrap_or_default(),
                    p.app_id.clone().unwrap_or_default(),
                ));
            }
        }
    }
    for raw in &targets {
        let Ok(t) = Target::parse(raw) else { continue };
        let (x, y) = (a.resolve(&t), b.resolve(&t));
        assert_eq!(
            x, y,
            "{raw} resolves differently after the round trip of {json}"
        );
        if a.mode == Mode::Inbound {
            assert!(x.is_none(), "an inbound filter resolves {raw}");
        }
    }

    let (Some(x), Some(y)) = (&a.access_control, &b.access_control) else {
        return;
    };
    let mut paths: Vec<String> = vec!["/".into(), "/orders".into(), "/x/y".into()];
    if let PluginConfig::Inbound(i) = config {
        for p in i
            .access_control
            .iter()
            .flat_map(|acl| acl.policies.iter())
            .take(8)
        {
            for o in p.operations.iter().take(8) {
                let name = o.name.clone().unwrap_or_default();
                let name = if name.starts_with('/') {
                    name
                } else {
                    format!("/{name}")
                };
                paths.push(format!("{name}/deeper"));
                paths.push(name);
            }
        }
    }
    for (td, ns, app) in &callers {
        let caller = Caller {
            trust_domain: td,
            namespace: ns,
            app_id: app,
        };
        for path in &paths {
            for method in ["GET", "POST", "DELETE", "PROPFIND"] {
                assert_eq!(
                    x.check(&caller, method, path),
                    y.check(&caller, method, path),
                    "{caller:?} {method} {path} after the round trip of {json}"
                );
            }
        }
    }
}
