//! Names both sides of the project share: the filter reads and writes them, the runner writes
//! them into Envoy configs. Defined once, here.

/// The request header an app names its target app with (Dapr's proxy form).
pub const APP_ID_HEADER: &str = "dapr-app-id";
/// Set by a sidecar for the callee: the calling app's id.
pub const CALLER_APP_ID_HEADER: &str = "dapr-caller-app-id";
/// Set by a sidecar for the callee: the calling app's namespace.
pub const CALLER_NAMESPACE_HEADER: &str = "dapr-caller-namespace";
/// Set by a sidecar for the callee: the id of the app being called.
pub const CALLEE_APP_ID_HEADER: &str = "dapr-callee-app-id";
/// Dapr's API token header: an app proves itself to its sidecar with it; it never travels on.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";

/// The headers a sidecar sets for the callee. Whatever an app sends under these names (or any
/// name an app server could read as one of them) never reaches another app.
pub const IDENTITY_HEADERS: [&str; 3] = [
    CALLER_APP_ID_HEADER,
    CALLER_NAMESPACE_HEADER,
    CALLEE_APP_ID_HEADER,
];

/// The request header the filter writes the chosen cluster into, unless configured otherwise.
/// Internal to the caller's sidecar: the route removes it before forwarding.
pub const DEFAULT_CLUSTER_HEADER: &str = "x-dapr-cluster";

/// The namespace of an app whose configuration names none, as in Dapr's self-hosted mode.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The SPIFFE trust domain of a mesh whose configuration names none, as in Dapr.
pub const DEFAULT_TRUST_DOMAIN: &str = "public";

/// The filter's name in Envoy configs: the HTTP filter, its plugin and VM, and its root id.
pub const FILTER_NAME: &str = "dapr-invoke";

/// The SPIFFE id of an app, as Dapr's Sentry issues it and as the callee's sidecar reads it.
///
/// ```
/// assert_eq!(
///     dapr_invoke::names::spiffe_id("public", "default", "checkout"),
///     "spiffe://public/ns/default/checkout"
/// );
/// ```
pub fn spiffe_id(trust_domain: &str, namespace: &str, app_id: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/{app_id}")
}
