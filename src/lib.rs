//! `dapr-invoke`: Dapr-style service invocation as a proxy-wasm HTTP filter for Envoy.
//!
//! An app calls another app by id, with the `dapr-app-id` header or Dapr's invoke URL
//! (`/v1.0/invoke/<app-id>/method/<method>`). The filter resolves the id (optionally
//! `<app-id>.<namespace>`) to an Envoy cluster through its plugin configuration, rewrites the
//! invoke URL, stamps the caller's identity, and writes the cluster into a request header that
//! Envoy's router routes on. Envoy does the forwarding.
//!
//! The modules split along one line: [`schema`] (the plugin configuration's typed form) and
//! [`config`] (its validation into lookup tables), [`names`], [`ids`], [`codec`], [`route`] (the
//! outbound decision), [`sidecar`] (the metadata answer), [`inbound`] and [`acl`] (the callee's
//! decision and Dapr's access control), [`metrics`] (the names of the filter's counters) and
//! [`error`] are pure logic with no host calls;
//! [`filter`] reads a request through its `Host` trait, asks them, and applies the answer. All
//! of it is tested on the host. Only the proxy-wasm contexts and the real `Host`
//! (`filter::wasm`) exist in the `.wasm` build alone.

pub mod acl;
pub mod codec;
pub mod config;
pub mod error;
pub mod filter;
pub mod ids;
pub mod inbound;
pub mod metrics;
pub mod names;
pub mod route;
pub mod schema;
pub mod sidecar;

/// The filter's name and version, as the sidecar reports it (`GET /v1.0/metadata`).
pub const BUILD_NAME: &str = concat!("dapr-invoke ", env!("CARGO_PKG_VERSION"));

/// The crate version and the commit it was built from, for the log line at VM start.
pub const BUILD: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("DAPR_INVOKE_GIT_HASH"),
    ")"
);
