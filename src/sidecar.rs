//! What the sidecar says about itself: Dapr's metadata API (`GET /v1.0/metadata`).
//!
//! The answer has daprd's shape, field for field and in daprd's order (`pkg/api/http/metadata.go`),
//! so SDKs that ask whether the sidecar is up, or what its app id is, read it as they read
//! daprd's. What we do not have (components, subscriptions, actors, HTTP endpoints) is an empty
//! list, and the actor runtime is disabled, as in a daprd without a placement service.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    id: &'a str,
    runtime_version: &'static str,
    enabled_features: [(); 0],
    actors: [(); 0],
    components: [(); 0],
    extended: BTreeMap<&'a str, &'a str>,
    subscriptions: [(); 0],
    http_endpoints: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    app_connection_properties: Option<AppConnection<'a>>,
    actor_runtime: ActorRuntime,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppConnection<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    protocol: &'a str,
    channel_address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<Health<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check_path: Option<&'a str>,
    health_probe_interval: &'a str,
    health_probe_timeout: &'a str,
    health_threshold: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActorRuntime {
    runtime_status: &'static str,
    host_ready: bool,
    placement: &'static str,
}

/// The version this sidecar reports as its runtime's.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The body of `GET /v1.0/metadata`, with the trailing newline daprd's JSON encoder writes.
///
/// ```
/// let c = dapr_invoke::config::Config::from_json(
///     br#"{"app_id": "checkout", "apps": {"order-processor": {"cluster": "op"}}}"#,
/// ).unwrap();
/// let body = dapr_invoke::sidecar::metadata_json(&c);
/// assert!(body.starts_with(r#"{"id":"checkout","runtimeVersion":"#));
/// ```
pub fn metadata_json(config: &Config) -> String {
    let extended = BTreeMap::from([
        ("daprRuntimeVersion", RUNTIME_VERSION),
        ("sidecar", crate::BUILD_NAME),
    ]);
    let app_connection_properties = config.app_channel.as_ref().map(|c| AppConnection {
        port: c.port,
        protocol: &c.protocol,
        channel_address: &c.channel_address,
        max_concurrency: c.max_concurrency,
        health: c.health.as_ref().map(|h| Health {
            health_check_path: h.path.as_deref(),
            health_probe_interval: &h.interval,
            health_probe_timeout: &h.timeout,
            health_threshold: h.threshold,
        }),
    });
    let metadata = Metadata {
        id: &config.app_id,
        runtime_version: RUNTIME_VERSION,
        enabled_features: [],
        actors: [],
        components: [],
        extended,
        subscriptions: [],
        http_endpoints: [],
        app_connection_properties,
        actor_runtime: ActorRuntime {
            runtime_status: "DISABLED",
            host_ready: false,
            placement: "placement: disconnected",
        },
    };
    // Serializing strings, numbers and empty lists cannot fail; keep a valid body if it did.
    let mut body = serde_json::to_string(&metadata)
        .unwrap_or_else(|_| format!(r#"{{"id":{:?}}}"#, config.app_id));
    body.push('\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_has_daprds_shape() {
        let c = Config::from_json(
            br#"{"app_id": "order-processor", "apps": {"checkout": {"cluster": "c"}},
                 "app_channel": {"port": 6001, "protocol": "http", "channel_address": "127.0.0.1",
                   "health": {"path": "/healthz", "interval": "5s", "timeout": "500ms", "threshold": 3}}}"#,
        )
        .unwrap();
        let body = metadata_json(&c);
        assert!(body.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "order-processor");
        assert_eq!(v["runtimeVersion"], RUNTIME_VERSION);
        assert_eq!(v["extended"]["daprRuntimeVersion"], RUNTIME_VERSION);
        assert_eq!(v["components"], serde_json::json!([]));
        assert_eq!(
            v["appConnectionProperties"],
            serde_json::json!({"port": 6001, "protocol": "http", "channelAddress": "127.0.0.1",
                "health": {"healthCheckPath": "/healthz", "healthProbeInterval": "5s",
                           "healthProbeTimeout": "500ms", "healthThreshold": 3}})
        );
        assert_eq!(v["actorRuntime"]["runtimeStatus"], "DISABLED");
        // daprd's field order.
        let keys: Vec<&str> = [
            "\"id\"",
            "\"runtimeVersion\"",
            "\"enabledFeatures\"",
            "\"actors\"",
            "\"components\"",
            "\"extended\"",
            "\"subscriptions\"",
            "\"httpEndpoints\"",
            "\"appConnectionProperties\"",
            "\"actorRuntime\"",
        ]
        .to_vec();
        let positions: Vec<usize> = keys.iter().map(|k| body.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{body}");
    }
}
