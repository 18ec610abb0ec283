//! `dapr-invoke`: Dapr-style service invocation as a proxy-wasm HTTP filter for Envoy.
//!
//! An app calls another app by id, with the `dapr-app-id` header or Dapr's invoke URL
//! (`/v1.0/invoke/<app-id>/method/<method>`). The filter resolves the id (optionally
//! `<app-id>.<namespace>`) to an Envoy cluster through its plugin configuration, rewrites the
//! invoke URL, stamps the caller's identity, and writes the cluster into a request header that
//! Envoy's router routes on. Envoy does the forwarding.
//!
//! The modules split along one line: [`config`], [`ids`], [`route`] and [`error`] are pure logic
//! with no host calls, tested on the host; `filter` is the thin proxy-wasm glue that exists only
//! in the `.wasm` build.

pub mod acl;
pub mod config;
pub mod error;
pub mod ids;
pub mod inbound;
pub mod names;
pub mod route;
pub mod schema;

#[cfg(target_arch = "wasm32")]
mod filter;

/// The crate version and the commit it was built from, for the log line at VM start.
pub const BUILD: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("DAPR_INVOKE_GIT_HASH"),
    ")"
);
