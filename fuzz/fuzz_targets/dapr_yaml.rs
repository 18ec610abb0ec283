//! `dapr-envoy`'s Dapr resource readers: the same bytes read as a Configuration file
//! (cli/src/dapr_config.rs) and as a resource file in a Resiliency directory
//! (cli/src/resiliency), from a scratch directory.
//!
//! Properties:
//! - neither panics;
//! - an error names the file and, when it gives a line, a line the file has; printed, it has no
//!   control characters; a Configuration's warnings are printable too;
//! - a Configuration it accepts has an access-control policy the filter accepts: as
//!   `AccessControl`, and inside the inbound plugin configuration the runner writes (built, and
//!   loaded back from its JSON); its trust domain is a valid, lower-case SPIFFE trust domain.
#![no_main]

use dapr_envoy_readers::{dapr_config, resiliency};
use dapr_invoke::acl::{check_trust_domain, AccessControl};
use dapr_invoke::config::{no_env, Config};
use dapr_invoke::schema::{Inbound, PluginConfig};
use dapr_invoke_fuzz::{reference, scratch};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::LazyLock;

static DIR: LazyLock<PathBuf> = LazyLock::new(|| scratch::dir("dapr-yaml"));

fn printable(what: &str, s: &str) {
    assert!(
        !s.chars().any(char::is_control),
        "{what} has a control character: {s:?}"
    );
}

fn located(e: &dapr_envoy_readers::yaml::FileError, text: &[u8]) {
    assert!(!e.file.is_empty() && !e.message.is_empty(), "{e:?}");
    if let Some(line) = e.line {
        let lines = reference::yaml_lines(&String::from_utf8_lossy(text));
        assert!((1..=lines).contains(&line), "line {line} of {lines}: {e:?}");
    }
    printable("the error", &e.to_string());
}

fuzz_target!(|data: &[u8]| {
    let dir = &*DIR;
    let config = scratch::write(dir, "config.yaml", data);
    match dapr_config::load(&config) {
        Err(e) => located(&e, data),
        Ok(c) => {
            for w in &c.warnings {
                printable("a warning", w);
            }
            if let Some(td) = &c.trust_domain {
                assert_eq!(check_trust_domain(td), Ok(()), "{td:?}");
            }
            if let Some(raw) = c.access_control {
                if let Err(e) = AccessControl::try_from(raw.clone()) {
                    panic!("the runner accepts a policy the filter refuses: {e}");
                }
                let plugin = PluginConfig::Inbound(Inbound {
                    app_id: "order-processor".into(),
                    namespace: None,
                    access_control: Some(raw),
                    calls: None,
                });
                let json = serde_json::to_string(&plugin).expect("serializes");
                if let Err(e) = Config::build(plugin, &no_env) {
                    panic!("the inbound plugin config does not build: {e}");
                }
                if let Err(e) = Config::from_json(json.as_bytes()) {
                    panic!(
                        "the inbound plugin config the runner writes does not load: {e}\n{json}"
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_file(&config);

    let resources = dir.join("resources");
    let file = scratch::write(dir, "resources/resiliency.yaml", data);
    // The notes are not checked: they echo a resource's `kind` as written, control characters
    // included (`kind: "A\tB"`, or an ESC); cli/src/resiliency's notes should escape it as its
    // errors do. Reported; check them with `printable` once they do.
    if let Err(e) = resiliency::load(&[resources], "checkout") {
        located(&e, data);
    }
    let _ = std::fs::remove_file(&file);
});
