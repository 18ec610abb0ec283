//! The plugin configuration's schema: the JSON contract between whoever writes a sidecar's
//! configuration (the `dapr-envoy` runner, or a person by hand) and the filter that reads it.
//!
//! [`PluginConfig`] is the one typed form of that JSON. The runner builds values of it and
//! serializes them; the filter deserializes it, then [`crate::config::Config`] validates it into
//! lookup tables. Each role is its own variant, so a combination the filter would refuse (an
//! outbound filter with an access-control policy, an inbound one with target apps) cannot be
//! written with these types.
//!
//! ```
//! use dapr_invoke::schema::{Apps, Outbound, PluginConfig, TargetApp};
//! let config = PluginConfig::Outbound(Outbound {
//!     app_id: "checkout".into(),
//!     namespace: None,
//!     apps: Apps(vec![("order-processor".into(), TargetApp::cluster("to-order-processor"))]),
//!     ..Outbound::default()
//! });
//! let json = serde_json::to_string(&config).unwrap();
//! assert_eq!(json, r#"{"mode":"outbound","app_id":"checkout","apps":{"order-processor":{"cluster":"to-order-processor"}}}"#);
//! assert_eq!(serde_json::from_str::<PluginConfig>(&json).unwrap(), config);
//! config.check().unwrap();
//! ```

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::acl::RawAccessControl;
use crate::config::{Config, ConfigError};

/// A filter's configuration: which side of the mesh it serves, and what it needs there.
///
/// In JSON the role is the `mode` field, `"outbound"` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum PluginConfig {
    /// On the listener the app calls: resolve the target app and route to it.
    Outbound(Outbound),
    /// On the listener other sidecars call (mutual TLS): identify the caller from its
    /// certificate, apply the access-control policy, deliver to the app.
    Inbound(Inbound),
}

/// The outbound role's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outbound {
    /// This sidecar's own app id: callees see it as `dapr-caller-app-id`.
    pub app_id: String,
    /// This sidecar's namespace (default `"default"`): bare target ids resolve in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The apps this sidecar can call, `<id>` or `<id>.<namespace>`, each with its cluster.
    pub apps: Apps,
    /// The request header the filter writes the cluster into (default `x-dapr-cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_header: Option<String>,
    /// The name of the VM environment variable holding the app's API token (Dapr's
    /// `DAPR_API_TOKEN`). With one, every call but Dapr's health checks must carry the token in
    /// `dapr-api-token`. The variable must reach the VM (`vm_config.environment_variables`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_env: Option<String>,
    /// What the sidecar says of its app in `GET /v1.0/metadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_channel: Option<AppChannel>,
    /// The largest request body the sidecar accepts, in bytes (Dapr's `maxBodySize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Who sets `dapr-caller-app-id`, `dapr-caller-namespace` and `dapr-callee-app-id` on a
    /// forwarded call (default: the filter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_headers: Option<IdentityHeaders>,
    /// What calls the listener carries (default: HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Calls>,
}

/// What calls a filter's listener carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Calls {
    /// Dapr's HTTP API: the invoke URL, `dapr-app-id`, the sidecar's own endpoints; Dapr's JSON
    /// errors; access control by path and verb.
    Http,
    /// Dapr's gRPC proxying: the target in `dapr-callee-app-id` or `dapr-app-id` metadata, the
    /// path (`/package.Service/Method`) never rewritten; gRPC errors; access control by full
    /// method name, case-sensitive, without verbs.
    Grpc,
}

/// Who sets the caller's identity headers on a forwarded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityHeaders {
    /// The filter, on every call: three header writes per call.
    Filter,
    /// Envoy's route to each target app (`request_headers_to_add`, replacing what the app
    /// sent): no host call. The route of every cluster in `apps` must set all three.
    Route,
}

/// The app's channel, as Dapr's metadata API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppChannel {
    /// The app's port, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `http`, `https`, `h2c`, `grpc` or `grpcs`.
    pub protocol: String,
    /// The address the sidecar reaches the app at.
    pub channel_address: String,
    /// At most this many calls in flight to the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// The app's health check, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<AppHealth>,
}

/// The app health check's settings, as Dapr shows them (durations as Go prints them: `5s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppHealth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub interval: String,
    pub timeout: String,
    pub threshold: u32,
}

/// The inbound role's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inbound {
    /// The app this sidecar delivers to.
    pub app_id: String,
    /// The app's namespace (default `"default"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Dapr's `accessControl` object; none lets every mesh identity in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_control: Option<RawAccessControl>,
    /// What calls the app takes (default: HTTP); a gRPC app's callers are checked and answered
    /// the gRPC way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Calls>,
}

/// Target apps in the order written. A JSON object in the configuration; duplicates are kept
/// when reading so that validation can refuse them (a map would silently keep the last one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Apps(pub Vec<(String, TargetApp)>);

/// One target app: the Envoy cluster that reaches its sidecar, and its call policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetApp {
    /// The Envoy cluster that reaches the app's sidecar.
    pub cluster: String,
    /// Timeout of calls to the app (router header `x-envoy-upstream-rq-timeout-ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries of calls to the app (`x-envoy-max-retries`); needs `retry_on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Which failures are retried (`x-envoy-retry-on`); needs `max_retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

impl TargetApp {
    /// A target reached through `cluster`, with no call policy of its own.
    pub fn cluster(cluster: impl Into<String>) -> Self {
        TargetApp {
            cluster: cluster.into(),
            timeout_ms: None,
            max_retries: None,
            retry_on: None,
        }
    }
}

impl PluginConfig {
    /// Checks everything the filter checks at load, without building its lookup tables: a
    /// configuration that passes is one Envoy will accept.
    pub fn check(&self) -> Result<(), ConfigError> {
        Config::check(self)
    }

    /// The app this filter serves.
    pub fn app_id(&self) -> &str {
        match self {
            PluginConfig::Outbound(o) => &o.app_id,
            PluginConfig::Inbound(i) => &i.app_id,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: the JSON is flat (the role is one field among the others, and optional), so it is read
// into one struct with every field, then sorted into the role's variant. A field of the other role
// is refused by name.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPluginConfig {
    app_id: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    mode: RawMode,
    #[serde(default)]
    apps: Option<Apps>,
    #[serde(default)]
    cluster_header: Option<String>,
    #[serde(default, deserialize_with = "crate::acl::deserialize_optional")]
    access_control: Option<RawAccessControl>,
    #[serde(default)]
    api_token_env: Option<String>,
    #[serde(default)]
    app_channel: Option<AppChannel>,
    #[serde(default)]
    max_body_bytes: Option<u64>,
    #[serde(default)]
    identity_headers: Option<IdentityHeaders>,
    #[serde(default)]
    calls: Option<Calls>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawMode {
    #[default]
    Outbound,
    Inbound,
}

impl TryFrom<RawPluginConfig> for PluginConfig {
    type Error = ConfigError;

    fn try_from(raw: RawPluginConfig) -> Result<Self, ConfigError> {
        let only = |field: &str, mode: &str, why: &str| {
            ConfigError::field(field, format!("applies to mode \"{mode}\"{why}"))
        };
        match raw.mode {
            RawMode::Outbound => {
                if raw.access_control.is_some() {
                    return Err(only(
                        "access_control",
                        "inbound",
                        ": the callee's sidecar enforces its policy",
                    ));
                }
                let Some(apps) = raw.apps else {
                    return Err(ConfigError::field(
                        "apps",
                        "is missing; map at least one app id to the Envoy cluster that serves it",
                    ));
                };
                Ok(PluginConfig::Outbound(Outbound {
                    app_id: raw.app_id,
                    namespace: raw.namespace,
                    apps,
                    cluster_header: raw.cluster_header,
                    api_token_env: raw.api_token_env,
                    app_channel: raw.app_channel,
                    max_body_bytes: raw.max_body_bytes,
                    identity_headers: raw.identity_headers,
                    calls: raw.calls,
                }))
            }
            RawMode::Inbound => {
                if raw.apps.is_some() {
                    return Err(only(
                        "apps",
                        "outbound",
                        "; an inbound sidecar delivers to its own app",
                    ));
                }
                for (field, set) in [
                    ("cluster_header", raw.cluster_header.is_some()),
                    ("api_token_env", raw.api_token_env.is_some()),
                    ("app_channel", raw.app_channel.is_some()),
                    ("max_body_bytes", raw.max_body_bytes.is_some()),
                    ("identity_headers", raw.identity_headers.is_some()),
                ] {
                    if set {
                        return Err(only(field, "outbound", ""));
                    }
                }
                Ok(PluginConfig::Inbound(Inbound {
                    app_id: raw.app_id,
                    namespace: raw.namespace,
                    access_control: raw.access_control,
                    calls: raw.calls,
                }))
            }
        }
    }
}

impl<'de> Deserialize<'de> for PluginConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawPluginConfig::deserialize(deserializer)?;
        PluginConfig::try_from(raw).map_err(de::Error::custom)
    }
}

impl Serialize for Apps {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, app) in &self.0 {
            map.serialize_entry(key, app)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Apps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Apps;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping app ids to {\"cluster\": ...}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Apps, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, ObjectOnly(app))) = map.next_entry::<String, ObjectOnly>()? {
                    entries.push((key, app));
                }
                Ok(Apps(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// A [`TargetApp`] read only from a JSON object: a derived struct alone would also accept an
/// array of its fields in order, and `{"b": ["c"]}` must be refused, not read as a cluster.
struct ObjectOnly(TargetApp);

impl<'de> Deserialize<'de> for ObjectOnly {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = ObjectOnly;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an object like {"cluster": "<envoy cluster>"}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObjectOnly, A::Error> {
                TargetApp::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{RawOperation, RawPolicy};

    fn round_trip(config: &PluginConfig) {
        let json = serde_json::to_string(config).unwrap();
        let back: PluginConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, config, "{json}");
        Config::from_json(json.as_bytes()).unwrap();
    }

    #[test]
    fn every_role_round_trips_through_json_and_loads() {
        round_trip(&PluginConfig::Outbound(Outbound {
            app_id: "checkout".into(),
            namespace: Some("prod".into()),
            apps: Apps(vec![
                ("a".into(), TargetApp::cluster("to-a")),
                (
                    "b.other".into(),
                    TargetApp {
                        cluster: "to-b".into(),
                        timeout_ms: Some(1500),
                        max_retries: Some(3),
                        retry_on: Some("5xx,connect-failure".into()),
                    },
                ),
            ]),
            cluster_header: Some("x-route".into()),
            api_token_env: None,
            app_channel: Some(AppChannel {
                port: Some(6001),
                protocol: "http".into(),
                channel_address: "127.0.0.1".into(),
                max_concurrency: Some(4),
                health: Some(AppHealth {
                    path: Some("/healthz".into()),
                    interval: "5s".into(),
                    timeout: "500ms".into(),
                    threshold: 3,
                }),
            }),
            max_body_bytes: Some(4 << 20),
            identity_headers: Some(IdentityHeaders::Route),
            calls: Some(Calls::Http),
        }));
        round_trip(&PluginConfig::Inbound(Inbound {
            app_id: "order-processor".into(),
            namespace: None,
            access_control: None,
            calls: None,
        }));
        round_trip(&PluginConfig::Inbound(Inbound {
            app_id: "order-processor".into(),
            namespace: Some("default".into()),
            access_control: Some(RawAccessControl {
                default_action: Some("deny".into()),
                trust_domain: Some("public".into()),
                policies: vec![RawPolicy {
                    app_id: Some("checkout".into()),
                    default_action: Some("deny".into()),
                    trust_domain: Some("public".into()),
                    namespace: Some("default".into()),
                    operations: vec![RawOperation {
                        name: Some("/orders".into()),
                        http_verb: Some(vec!["POST".into()]),
                        action: Some("allow".into()),
                    }],
                }],
            }),
            calls: Some(Calls::Grpc),
        }));
    }

    #[test]
    fn the_written_form_is_dapr_shaped_json() {
        let inbound = PluginConfig::Inbound(Inbound {
            app_id: "op".into(),
            namespace: None,
            access_control: Some(RawAccessControl {
                default_action: Some("deny".into()),
                trust_domain: None,
                policies: vec![],
            }),
            calls: None,
        });
        assert_eq!(
            serde_json::to_string(&inbound).unwrap(),
            r#"{"mode":"inbound","app_id":"op","access_control":{"defaultAction":"deny"}}"#
        );
    }

    #[test]
    fn a_mode_absent_means_outbound() {
        let c: PluginConfig =
            serde_json::from_str(r#"{"app_id": "a", "apps": {"b": {"cluster": "c"}}}"#).unwrap();
        assert!(matches!(c, PluginConfig::Outbound(_)));
    }

    #[test]
    fn check_refuses_what_the_filter_refuses() {
        let bad = PluginConfig::Outbound(Outbound {
            app_id: "a".into(),
            namespace: None,
            apps: Apps(vec![
                ("b".into(), TargetApp::cluster("x")),
                ("b.default".into(), TargetApp::cluster("y")),
            ]),
            ..Outbound::default()
        });
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("and so does \"b\""), "{e}");
        let json = serde_json::to_string(&bad).unwrap();
        assert_eq!(
            Config::from_json(json.as_bytes()).unwrap_err().to_string(),
            e
        );
    }
}
