//! `dapr-envoy`'s run-file reader (cli/src/runfile, and the Configuration and Resiliency files a
//! run file names), with the bytes as the run file's text (not UTF-8: replaced). The run file
//! sits in a scratch directory holding app directories `a`, `b`, `checkout`, `order-processor`,
//! the quickstart's `config.yaml` and `resources/resiliency.yaml`; ports come from
//! `Sequential`, as `dapr-envoy config` picks them.
//!
//! Properties:
//! - it never panics, and reads the same text the same way twice;
//! - an error names a file and, when it gives a line, a line that file has; printed, it has no
//!   control characters (the file's bytes are escaped before they reach a terminal);
//! - an accepted run file has valid, distinct app ids, each app has a command, and every port
//!   the plan hands out (outbound, inbound, admin, of every app) is set and used once; warnings
//!   and notes are printable too.
#![no_main]

use dapr_envoy_readers::runfile::{parse_in, Sequential};
use dapr_invoke_fuzz::{reference, scratch};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::LazyLock;

static BASE: LazyLock<PathBuf> = LazyLock::new(|| {
    let d = scratch::dir("runfile");
    for app in ["a", "b", "checkout", "order-processor"] {
        std::fs::create_dir_all(d.join(app)).expect("an app directory");
    }
    scratch::write(
        &d,
        "config.yaml",
        include_bytes!("../../samples/config.yaml"),
    );
    scratch::write(
        &d,
        "resources/resiliency.yaml",
        include_bytes!("../../samples/resources/resiliency.yaml"),
    );
    d
});

fn printable(what: &str, s: &str) {
    assert!(
        !s.chars().any(char::is_control),
        "{what} has a control character: {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let base = &*BASE;
    let read = || {
        parse_in(
            &text,
            "dapr.yaml",
            base,
            &mut Sequential::default(),
            "default",
        )
    };
    let (first, second) = (read(), read());
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "read differently twice"
    );
    match first {
        Err(e) => {
            assert!(!e.file.is_empty() && !e.message.is_empty(), "{e:?}");
            if let Some(line) = e.line {
                let lines = if e.file == "dapr.yaml" {
                    reference::yaml_lines(&text)
                } else {
                    std::fs::read_to_string(&e.file)
                        .map_or(usize::MAX, |t| reference::yaml_lines(&t))
                };
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e:?}");
            }
            printable("the error", &e.to_string());
        }
        Ok(plan) => {
            let mut ports = Vec::new();
            for (i, app) in plan.apps.iter().enumerate() {
                assert!(reference::valid_name(&app.app_id), "{:?}", app.app_id);
                assert!(
                    plan.apps[..i].iter().all(|b| b.app_id != app.app_id),
                    "{:?} twice",
                    app.app_id
                );
                assert!(!app.command.is_empty(), "{:?} has no command", app.app_id);
                assert_eq!(app.app_env().get("APP_ID"), Some(&app.app_id));
                ports.extend([app.http_port, app.inbound_port, app.admin_port]);
            }
            for (i, p) in ports.iter().enumerate() {
                assert!(*p != 0 && !ports[..i].contains(p), "port {p} in {ports:?}");
            }
            for line in plan.warnings.iter().chain(&plan.notes) {
                printable("a warning or note", line);
            }
        }
    }
});
