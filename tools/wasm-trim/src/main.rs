//! `wasm-trim IN OUT`: the build step after `cargo build` of the filter. It keeps only the exports
//! the filter uses, then removes the code that only the others reached.
//!
//! Why: the proxy-wasm SDK exports every callback of the ABI, and Envoy enters the VM for each
//! exported callback on every request (response headers, body, log, done, ...), even when the
//! filter does nothing there. For a callback the module does not export, Envoy skips the call
//! (`proxy-wasm-cpp-host` checks each one before calling it). So a filter that only looks at
//! request headers (and counts request bodies) costs Envoy less with the rest of the exports
//! gone, and the file is smaller.

use std::process::ExitCode;

/// What the filter needs Envoy to call, and nothing else.
pub const KEEP: &[&str] = &[
    // The module's memory and its WASI start (Rust's static initializers).
    "memory",
    "_initialize",
    // The ABI version Envoy reads to know how to talk to the module.
    "proxy_abi_version_0_2_1",
    // The root context: VM start and the plugin configuration.
    "proxy_on_vm_start",
    "proxy_on_configure",
    // A context per request (and per root), and its end: the SDK frees it in proxy_on_delete.
    "proxy_on_context_create",
    "proxy_on_delete",
    // The request: its headers (the whole decision) and its body (maxBodySize without a length).
    "proxy_on_request_headers",
    "proxy_on_request_body",
    // Envoy asks the module for memory to pass values in (headers, configuration).
    "proxy_on_memory_allocate",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: wasm-trim IN.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    match trim(input, output) {
        Ok((before, after, dropped)) => {
            println!(
                "wasm-trim: {output}: {after} bytes (was {before}); dropped {} export(s): {}",
                dropped.len(),
                dropped.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasm-trim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Trims `input` into `output`; returns the sizes before and after, and the exports dropped.
fn trim(input: &str, output: &str) -> Result<(usize, usize, Vec<String>), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let mut module =
        walrus::Module::from_buffer(&bytes).map_err(|e| format!("{input} is not wasm: {e}"))?;
    let missing: Vec<&str> = KEEP
        .iter()
        .copied()
        .filter(|name| !module.exports.iter().any(|e| e.name == *name))
        .collect();
    if !missing.is_empty() {
        // The filter needs every one of them: a build without one would not work in Envoy.
        return Err(format!(
            "{input} does not export {}; is it the dapr-invoke filter?",
            missing.join(", ")
        ));
    }
    let dropped: Vec<(walrus::ExportId, String)> = module
        .exports
        .iter()
        .filter(|e| !KEEP.contains(&e.name.as_str()))
        .map(|e| (e.id(), e.name.clone()))
        .collect();
    for (id, _) in &dropped {
        module.exports.delete(*id);
    }
    // Functions, globals and data only the dropped exports reached go too.
    walrus::passes::gc::run(&mut module);
    let trimmed = module.emit_wasm();
    std::fs::write(output, &trimmed).map_err(|e| format!("cannot write {output}: {e}"))?;
    Ok((
        bytes.len(),
        trimmed.len(),
        dropped.into_iter().map(|(_, name)| name).collect(),
    ))
}
