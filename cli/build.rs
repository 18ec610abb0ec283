//! The Envoy version this project is tested with lives in one place, the repository's `.env`;
//! the runner writes it into the container images it names.
use std::fs;

fn main() {
    println!("cargo:rerun-if-changed=../.env");
    let text = fs::read_to_string("../.env").unwrap_or_default();
    let version = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENVOY_VERSION="))
        .map(str::trim)
        .next_back()
        .unwrap_or("");
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        eprintln!("error: ../.env must set ENVOY_VERSION=<x.y.z> (the pinned Envoy)");
        std::process::exit(1);
    }
    println!("cargo:rustc-env=DAPR_ENVOY_ENVOY_VERSION={version}");
}
