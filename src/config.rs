//! The validated plugin configuration: a [`PluginConfig`] in, lookup tables for the request path
//! out.
//!
//! Validation is strict and fails closed. Unknown fields, duplicate keys, missing or empty values
//! and invalid ids are all refused, with an error that names the field and the reason, so a typo
//! never turns into a filter that quietly routes differently from what its author meant.

use std::collections::HashMap;
use std::fmt;

use crate::acl::AccessControl;
use crate::ids::{validate_name, Target};
use crate::names::{APP_ID_HEADER, IDENTITY_HEADERS};
pub use crate::names::{DEFAULT_CLUSTER_HEADER, DEFAULT_NAMESPACE};
use crate::schema::{
    AppChannel, Apps, Calls, IdentityHeaders, Inbound, Outbound, PluginConfig, RawPluginConfig,
    TargetApp,
};

/// Header names that carry HTTP framing or that the filter reads itself: none of them may double
/// as the cluster header (the identity headers are refused too).
const RESERVED_HEADERS: &[&str] = &[
    APP_ID_HEADER,
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
];

/// Longest cluster header name and cluster name we accept.
const MAX_HEADER_NAME: usize = 128;
const MAX_CLUSTER_NAME: usize = 255;

/// Which side of the mesh a filter instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On the listener the app calls: resolve the target app and route to it.
    Outbound,
    /// On the listener other sidecars call (mutual TLS): identify the caller from its
    /// certificate, apply the access-control policy, deliver to the app.
    Inbound,
}

/// Envoy's `retry_on` conditions that need nothing but the condition itself.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "http3-post-connect-failure",
];
const MAX_RETRIES: u32 = 100;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON, or not of the expected shape (serde names the field, line and column).
    Json(String),
    /// A value is present but invalid.
    Field { field: String, reason: String },
}

impl ConfigError {
    pub(crate) fn field(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        ConfigError::Field {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(e) => write!(f, "invalid plugin configuration: {e}"),
            ConfigError::Field { field, reason } => {
                write!(f, "invalid plugin configuration: field `{field}` {reason}")
            }
        }
    }
}

/// The Envoy cluster that serves a target app, and its call policy. Its id and namespace are the
/// keys it is found under (see [`Resolved`]): a config of 100k apps holds each string once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub cluster: Box<str>,
    /// The app's timeout and retries, as the request headers Envoy's router reads
    /// (`x-envoy-upstream-rq-timeout-ms`, `x-envoy-max-retries`, `x-envoy-retry-on`), built once.
    pub policy_headers: Box<[(&'static str, String)]>,
}

/// A target app as a lookup found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'c> {
    pub app_id: &'c str,
    pub namespace: &'c str,
    pub app: &'c App,
}

/// A validated configuration, ready for O(1) lookups on the request path.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// Inbound only: the policy callers are held to; none lets every mesh identity in.
    pub access_control: Option<AccessControl>,
    /// This sidecar's own app id: what callees see as `dapr-caller-app-id`.
    pub app_id: String,
    /// This sidecar's namespace: bare target ids resolve in it.
    pub namespace: String,
    /// The request header that carries the chosen cluster to Envoy's router.
    pub cluster_header: String,
    /// namespace → app id → app.
    apps: HashMap<Box<str>, HashMap<Box<str>, App>>,
    /// Outbound: whether the filter sets `dapr-caller-app-id`, `dapr-caller-namespace` and
    /// `dapr-callee-app-id` itself, or the routes do (`identity_headers: "route"`).
    pub stamp_identity: bool,
    /// Outbound: the API token every call must carry (`dapr-api-token`), when one is set.
    pub api_token: Option<Vec<u8>>,
    /// Outbound: the app's channel, for `GET /v1.0/metadata`.
    pub app_channel: Option<AppChannel>,
    /// Outbound: the largest request body accepted.
    pub max_body_bytes: Option<u64>,
    /// The listener carries gRPC calls (Dapr's gRPC proxying), not Dapr's HTTP API.
    pub grpc: bool,
}

/// Where a configuration's environment variables are read from: the VM's environment in
/// Envoy, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// No environment at all.
pub fn no_env(_: &str) -> Option<String> {
    None
}

impl Config {
    /// Parses and validates the plugin configuration.
    ///
    /// ```
    /// let c = dapr_invoke::config::Config::from_json(
    ///     br#"{"app_id": "checkout", "apps": {"order-processor": {"cluster": "op"}}}"#,
    /// ).unwrap();
    /// assert_eq!(c.namespace, "default");
    /// assert_eq!(c.cluster_header, "x-dapr-cluster");
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        Config::load(bytes, &no_env)
    }

    /// Parses and validates the plugin configuration, reading the environment variables it
    /// names from `env`.
    pub fn load(bytes: &[u8], env: Env<'_>) -> Result<Config, ConfigError> {
        // serde would also read a JSON array as the fields in order; only an object is a config.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ConfigError::Json(
                "expected a JSON object at the top level".to_string(),
            ));
        }
        let raw: RawPluginConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        Config::build(PluginConfig::try_from(raw)?, env)
    }

    /// The app a target names, if this sidecar knows it. A bare id is looked up in the sidecar's
    /// own namespace.
    pub fn resolve(&self, target: &Target<'_>) -> Option<Resolved<'_>> {
        let (namespace, ids) = self
            .apps
            .get_key_value(target.namespace_or(&self.namespace))?;
        let (app_id, app) = ids.get_key_value(target.app_id)?;
        Some(Resolved {
            app_id,
            namespace,
            app,
        })
    }

    /// How many target apps are configured.
    pub fn app_count(&self) -> usize {
        self.apps.values().map(HashMap::len).sum()
    }

    /// Validates without building anything (see [`PluginConfig::check`]).
    pub(crate) fn check(config: &PluginConfig) -> Result<(), ConfigError> {
        match config {
            PluginConfig::Outbound(o) => {
                let namespace = own_namespace(&o.app_id, o.namespace.as_deref())?;
                cluster_header(o.cluster_header.as_deref())?;
                if let Some(name) = &o.api_token_env {
                    validate_env_name(name).map_err(|e| ConfigError::field("api_token_env", e))?;
                }
                check_app_channel(o.app_channel.as_ref())?;
                check_max_body(o.max_body_bytes)?;
                check_apps(&o.apps, namespace).map(drop)
            }
            PluginConfig::Inbound(i) => {
                own_namespace(&i.app_id, i.namespace.as_deref())?;
                access_control(i.access_control.clone()).map(drop)
            }
        }
    }
}

/// Checks the own id and returns the own namespace.
fn own_namespace<'a>(app_id: &str, namespace: Option<&'a str>) -> Result<&'a str, ConfigError> {
    validate_name(app_id).map_err(|e| ConfigError::field("app_id", e))?;
    match namespace {
        Some(ns) => {
            validate_name(ns).map_err(|e| ConfigError::field("namespace", e))?;
            Ok(ns)
        }
        None => Ok(DEFAULT_NAMESPACE),
    }
}

fn cluster_header(header: Option<&str>) -> Result<String, ConfigError> {
    match header {
        Some(h) => {
            validate_header_name(h).map_err(|e| ConfigError::field("cluster_header", e))?;
            Ok(h.to_string())
        }
        None => Ok(DEFAULT_CLUSTER_HEADER.to_string()),
    }
}

fn access_control(
    raw: Option<crate::acl::RawAccessControl>,
) -> Result<Option<AccessControl>, ConfigError> {
    raw.map(|raw| {
        AccessControl::try_from(raw)
            .map_err(|e| ConfigError::field(format!("access_control.{}", e.field), e.reason))
    })
    .transpose()
}

/// Validates every target app and finds clashes, borrowing: nothing is copied. Returns how many
/// apps each namespace has, so the lookup maps can be built at their final size. The VM's memory
/// never shrinks, so what a large config costs at its peak here it costs for the VM's life.
fn check_apps<'a>(
    apps: &'a Apps,
    own_namespace: &'a str,
) -> Result<HashMap<&'a str, usize>, ConfigError> {
    if apps.0.is_empty() {
        return Err(ConfigError::field(
            "apps",
            "is empty; map at least one app id to the Envoy cluster that serves it",
        ));
    }
    // Which configured key claimed each (namespace, app id), to name both in a clash.
    let mut claimed: HashMap<(&str, &str), &str> = HashMap::with_capacity(apps.0.len());
    let mut per_namespace: HashMap<&str, usize> = HashMap::new();
    for (key, app) in &apps.0 {
        let field = || format!("apps.{key:?}");
        let target = Target::parse(key)
            .map_err(|e| ConfigError::field(field(), format!("is not a valid app id: {e}")))?;
        validate_cluster_name(&app.cluster)
            .map_err(|e| ConfigError::field(format!("{}.cluster", field()), e))?;
        policy_headers(app, &field())?;
        let (ns, id) = (target.namespace_or(own_namespace), target.app_id);
        if let Some(first) = claimed.insert((ns, id), key) {
            let reason = if first == key {
                "appears twice".to_string()
            } else {
                format!("names app {id:?} in namespace {ns:?}, and so does {first:?}")
            };
            return Err(ConfigError::field(field(), reason));
        }
        *per_namespace.entry(ns).or_default() += 1;
    }
    Ok(per_namespace)
}

impl TryFrom<PluginConfig> for Config {
    type Error = ConfigError;

    fn try_from(config: PluginConfig) -> Result<Self, Self::Error> {
        Config::build(config, &no_env)
    }
}

impl Config {
    /// Validates `config` and builds the lookup tables, reading the environment variables it
    /// names from `env`.
    pub fn build(config: PluginConfig, env: Env<'_>) -> Result<Config, ConfigError> {
        match config {
            PluginConfig::Inbound(Inbound {
                app_id,
                namespace,
                access_control: raw_acl,
                calls,
            }) => {
                let namespace = own_namespace(&app_id, namespace.as_deref())?.to_string();
                Ok(Config {
                    mode: Mode::Inbound,
                    access_control: access_control(raw_acl)?,
                    app_id,
                    namespace,
                    cluster_header: DEFAULT_CLUSTER_HEADER.to_string(),
                    apps: HashMap::new(),
                    stamp_identity: true,
                    api_token: None,
                    app_channel: None,
                    max_body_bytes: None,
                    grpc: calls == Some(Calls::Grpc),
                })
            }
            PluginConfig::Outbound(Outbound {
                app_id,
                namespace,
                apps: raw_apps,
                cluster_header: header,
                api_token_env,
                app_channel,
                max_body_bytes,
                identity_headers,
                calls,
            }) => {
                let namespace = own_namespace(&app_id, namespace.as_deref())?.to_string();
                let cluster_header = cluster_header(header.as_deref())?;
                check_app_channel(app_channel.as_ref())?;
                check_max_body(max_body_bytes)?;
                let api_token = match &api_token_env {
                    None => None,
                    Some(name) => Some(api_token(name, env)?),
                };
                let per_namespace = check_apps(&raw_apps, &namespace)?;
                // Build the lookup maps at their final size, moving the strings in.
                let mut apps: HashMap<Box<str>, HashMap<Box<str>, App>> = per_namespace
                    .into_iter()
                    .map(|(ns, n)| (ns.into(), HashMap::with_capacity(n)))
                    .collect();
                for (key, app) in raw_apps.0 {
                    let field = format!("apps.{key:?}");
                    let policy_headers = policy_headers(&app, &field)?;
                    let target = Target::parse(&key).map_err(|e| {
                        ConfigError::field(&field, format!("is not a valid app id: {e}"))
                    })?;
                    let ns = target.namespace_or(&namespace);
                    let Some(ids) = apps.get_mut(ns) else {
                        continue; // every namespace was counted by check_apps
                    };
                    ids.insert(
                        target.app_id.into(),
                        App {
                            cluster: app.cluster.into_boxed_str(),
                            policy_headers: policy_headers.into_boxed_slice(),
                        },
                    );
                }
                Ok(Config {
                    mode: Mode::Outbound,
                    access_control: None,
                    app_id,
                    namespace,
                    cluster_header,
                    apps,
                    stamp_identity: identity_headers != Some(IdentityHeaders::Route),
                    api_token,
                    app_channel,
                    max_body_bytes,
                    grpc: calls == Some(Calls::Grpc),
                })
            }
        }
    }
}

/// The API token from the environment variable `name`. A sidecar told to check tokens but
/// without one would let every call in: it fails closed instead.
fn api_token(name: &str, env: Env<'_>) -> Result<Vec<u8>, ConfigError> {
    validate_env_name(name).map_err(|e| ConfigError::field("api_token_env", e))?;
    match env(name) {
        Some(token) if !token.is_empty() => Ok(token.into_bytes()),
        _ => Err(ConfigError::field(
            "api_token_env",
            format!(
                "names {name:?}, which the VM's environment does not have or has empty \
                 (list it in vm_config.environment_variables.host_env_keys)"
            ),
        )),
    }
}

/// An environment variable's name: letters, digits and `_`, not starting with a digit.
fn validate_env_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !ok {
        return Err(format!("{name:?} is not an environment variable name"));
    }
    Ok(())
}

fn check_max_body(max: Option<u64>) -> Result<(), ConfigError> {
    match max {
        Some(0) => Err(ConfigError::field("max_body_bytes", "is 0")),
        _ => Ok(()),
    }
}

fn check_app_channel(channel: Option<&AppChannel>) -> Result<(), ConfigError> {
    let Some(c) = channel else {
        return Ok(());
    };
    if !["http", "https", "h2c", "grpc", "grpcs"].contains(&c.protocol.as_str()) {
        return Err(ConfigError::field(
            "app_channel.protocol",
            format!("is {:?}; use http, https, h2c, grpc or grpcs", c.protocol),
        ));
    }
    if c.channel_address.is_empty() {
        return Err(ConfigError::field(
            "app_channel.channel_address",
            "is empty",
        ));
    }
    if c.port == Some(0) {
        return Err(ConfigError::field("app_channel.port", "is 0"));
    }
    if c.health.as_ref().is_some_and(|h| h.threshold == 0) {
        return Err(ConfigError::field("app_channel.health.threshold", "is 0"));
    }
    Ok(())
}

fn policy_headers(
    app: &TargetApp,
    field: &str,
) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let mut out = Vec::new();
    if let Some(ms) = app.timeout_ms {
        out.push(("x-envoy-upstream-rq-timeout-ms", ms.to_string()));
    }
    match (app.max_retries, &app.retry_on) {
        (None, None) => {}
        (Some(n), Some(on)) => {
            if n > MAX_RETRIES {
                return Err(ConfigError::field(
                    format!("{field}.max_retries"),
                    format!("is {n}, more than {MAX_RETRIES}"),
                ));
            }
            if let Some(bad) = on.split(',').map(str::trim).find(|c| !RETRY_ON.contains(c)) {
                return Err(ConfigError::field(
                    format!("{field}.retry_on"),
                    format!(
                        "has {bad:?}; use a comma-separated list of {}",
                        RETRY_ON.join(", ")
                    ),
                ));
            }
            out.push(("x-envoy-max-retries", n.to_string()));
            out.push(("x-envoy-retry-on", on.clone()));
        }
        (Some(_), None) => {
            return Err(ConfigError::field(
                format!("{field}.retry_on"),
                "is missing: say which failures max_retries retries (e.g. \"5xx,connect-failure\")",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::field(
                format!("{field}.max_retries"),
                "is missing: retry_on needs a number of retries",
            ))
        }
    }
    Ok(out)
}

fn validate_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_HEADER_NAME {
        return Err(format!("is longer than {MAX_HEADER_NAME} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "{name:?} is not a lowercase header name (a-z, 0-9, '-', '_')"
        ));
    }
    if RESERVED_HEADERS.contains(&name) || IDENTITY_HEADERS.contains(&name) {
        return Err(format!(
            "{name:?} is a header the filter or HTTP itself uses; pick another name"
        ));
    }
    Ok(())
}

fn validate_cluster_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_CLUSTER_NAME {
        return Err(format!("is longer than {MAX_CLUSTER_NAME} characters"));
    }
    // It travels as a header value to Envoy's router: visible ASCII only.
    if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "has the character {c:?}; cluster names here are visible ASCII without spaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"app_id": "checkout", "namespace": "default",
        "apps": {"order-processor": {"cluster": "order-processor"},
                 "payments.prod": {"cluster": "payments-prod"}}}"#;

    fn refused(json: &str) -> String {
        match Config::from_json(json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_documented_example() {
        let c = Config::from_json(GOOD.as_bytes()).unwrap();
        assert_eq!(c.app_id, "checkout");
        assert_eq!(c.namespace, "default");
        assert_eq!(c.cluster_header, "x-dapr-cluster");
        assert_eq!(c.app_count(), 2);
        let op = c
            .resolve(&Target::parse("order-processor").unwrap())
            .unwrap();
        assert_eq!(&*op.app.cluster, "order-processor");
        assert_eq!(op.namespace, "default");
        let same = c.resolve(&Target::parse("order-processor.default").unwrap());
        assert_eq!(same, Some(op));
        let pay = c.resolve(&Target::parse("payments.prod").unwrap()).unwrap();
        assert_eq!(&*pay.app.cluster, "payments-prod");
        assert_eq!(c.resolve(&Target::parse("payments").unwrap()), None);
        assert_eq!(
            c.resolve(&Target::parse("order-processor.prod").unwrap()),
            None
        );
    }

    #[test]
    fn own_namespace_applies_to_bare_keys_and_ids() {
        let c = Config::from_json(
            br#"{"app_id": "a", "namespace": "prod", "cluster_header": "x-route",
                 "apps": {"b": {"cluster": "b-prod"}, "b.default": {"cluster": "b-def"}}}"#,
        )
        .unwrap();
        assert_eq!(c.cluster_header, "x-route");
        assert_eq!(
            c.resolve(&Target::parse("b").unwrap())
                .unwrap()
                .app
                .cluster
                .to_string(),
            "b-prod"
        );
        assert_eq!(
            c.resolve(&Target::parse("b.prod").unwrap())
                .unwrap()
                .app
                .cluster
                .to_string(),
            "b-prod"
        );
        assert_eq!(
            c.resolve(&Target::parse("b.default").unwrap())
                .unwrap()
                .app
                .cluster
                .to_string(),
            "b-def"
        );
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["EOF"]),
            ("not json", &["expected a JSON object"]),
            ("{\"app_id\": ", &["EOF while parsing", "line 1"]),
            ("[]", &["expected a JSON object"]),
            (
                r#"["a", null, {"b": {"cluster": "b"}}, null]"#,
                &["expected a JSON object"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": ["c"]}}"#,
                &["invalid type: sequence"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": {"cluster": "c", "cluster": "d"}}}"#,
                &["duplicate field `cluster`"],
            ),
            (
                r#"{"app_id": "a", "apps": []}"#,
                &["invalid type: sequence"],
            ),
            (
                r#"{"apps": {"b": {"cluster": "b"}}}"#,
                &["missing field `app_id`"],
            ),
            (r#"{"app_id": "a"}"#, &["field `apps` is missing"]),
            (
                r#"{"app_id": "a", "mode": "sideways", "apps": {"b": {"cluster": "b"}}}"#,
                &["unknown variant `sideways`, expected `outbound` or `inbound`"],
            ),
            (
                r#"{"app_id": "a", "mode": "inbound", "apps": {"b": {"cluster": "b"}}}"#,
                &["field `apps` applies to mode \"outbound\""],
            ),
            (
                r#"{"app_id": "a", "mode": "inbound", "cluster_header": "x"}"#,
                &["field `cluster_header` applies to mode \"outbound\""],
            ),
            (
                r#"{"app_id": "", "apps": {"b": {"cluster": "b"}}}"#,
                &["`app_id`", "is empty"],
            ),
            (
                r#"{"app_id": "a b", "apps": {"b": {"cluster": "b"}}}"#,
                &["`app_id`", "' '"],
            ),
            (
                r#"{"app_id": "a.x", "apps": {"b": {"cluster": "b"}}}"#,
                &["`app_id`", "'.'"],
            ),
            (
                r#"{"app_id": 7, "apps": {"b": {"cluster": "b"}}}"#,
                &["invalid type: integer"],
            ),
            (
                r#"{"app_id": "a", "namespace": "", "apps": {"b": {"cluster": "b"}}}"#,
                &["`namespace`", "is empty"],
            ),
            (r#"{"app_id": "a", "apps": {}}"#, &["`apps`", "is empty"]),
            (
                r#"{"app_id": "a", "appz": {}, "apps": {"b": {"cluster": "b"}}}"#,
                &["unknown field `appz`"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": {"cluster": "b", "clustr": "c"}}}"#,
                &["unknown field `clustr`"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": {}}}"#,
                &["missing field `cluster`"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": {"cluster": ""}}}"#,
                &["`apps.\"b\".cluster`", "is empty"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": {"cluster": "has space"}}}"#,
                &["`apps.\"b\".cluster`", "' '"],
            ),
            (
                r#"{"app_id": "a", "apps": {"a.b.c": {"cluster": "x"}}}"#,
                &["`apps.\"a.b.c\"`", "more than one '.'"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b.": {"cluster": "x"}}}"#,
                &["`apps.\"b.\"`", "is empty"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": {"cluster": "x"}, "b": {"cluster": "y"}}}"#,
                &["`apps.\"b\"`", "appears twice"],
            ),
            (
                r#"{"app_id": "a", "apps": {"b": {"cluster": "x"}, "b.default": {"cluster": "y"}}}"#,
                &["`apps.\"b.default\"`", "and so does \"b\""],
            ),
            (
                r#"{"app_id": "a", "app_id": "b", "apps": {"b": {"cluster": "x"}}}"#,
                &["duplicate field `app_id`"],
            ),
            (
                r#"{"app_id": "a", "cluster_header": "X-Up", "apps": {"b": {"cluster": "x"}}}"#,
                &["`cluster_header`", "lowercase"],
            ),
            (
                r#"{"app_id": "a", "cluster_header": ":path", "apps": {"b": {"cluster": "x"}}}"#,
                &["`cluster_header`"],
            ),
            (
                r#"{"app_id": "a", "cluster_header": "dapr-app-id", "apps": {"b": {"cluster": "x"}}}"#,
                &["`cluster_header`", "uses"],
            ),
            (
                r#"{"app_id": "a", "cluster_header": "", "apps": {"b": {"cluster": "x"}}}"#,
                &["`cluster_header`", "is empty"],
            ),
        ];
        for (json, wants) in cases {
            let got = refused(json);
            assert!(got.starts_with("invalid plugin configuration: "), "{got}");
            for want in *wants {
                assert!(
                    got.contains(want),
                    "config {json}\n  error {got}\n  lacks {want:?}"
                );
            }
        }
    }

    /// The refusals tests/test_config.py once checked through a real Envoy, one Envoy each: the
    /// message a user reads in Envoy's log for each, word for word. That the filter logs such a
    /// refusal at error level and Envoy then refuses to start is still checked there, for a JSON
    /// error, an unknown field and an invalid app id.
    #[test]
    fn the_refusals_envoys_log_shows() {
        let cases: &[(&str, &str)] = &[
            (
                "not json",
                "invalid plugin configuration: expected a JSON object at the top level",
            ),
            (
                r#"{"app_id": "checkout", "apps": {"order-processor": {"cluster": "x"}}"#,
                "EOF while parsing",
            ),
            (
                r#"{"apps": {"order-processor": {"cluster": "x"}}}"#,
                "missing field `app_id`",
            ),
            (
                r#"{"app_id": "", "apps": {"order-processor": {"cluster": "x"}}}"#,
                "field `app_id` is empty",
            ),
            (
                r#"{"app_id": "checkout", "apps": {}}"#,
                "field `apps` is empty",
            ),
            (
                r#"{"app_id": "checkout", "namespace": "", "apps": {"a": {"cluster": "x"}}}"#,
                "field `namespace` is empty",
            ),
            (
                r#"{"app_id": "checkout", "apps": {"order-processor": {"cluster": "x"}}, "cluster_headr": "x"}"#,
                "unknown field `cluster_headr`",
            ),
            (
                r#"{"app_id": "checkout", "apps": {"order-processor": {"clustr": "x"}}}"#,
                "unknown field `clustr`",
            ),
            (
                r#"{"app_id": "checkout", "apps": {"order-processor": {"cluster": ""}}}"#,
                "field `apps.\"order-processor\".cluster` is empty",
            ),
            (
                r#"{"app_id": "checkout", "apps": {"a.b.c": {"cluster": "x"}}}"#,
                "field `apps.\"a.b.c\"` is not a valid app id: has more than one",
            ),
            (
                r#"{"app_id": "check out", "apps": {"a": {"cluster": "x"}}}"#,
                "field `app_id` has the character ' '",
            ),
            (
                r#"{"app_id": "checkout", "apps": {"a": {"cluster": "x"}, "a.default": {"cluster": "y"}}}"#,
                "field `apps.\"a.default\"` names app \"a\" in namespace \"default\", and so does \"a\"",
            ),
            (
                r#"{"app_id": "checkout", "cluster_header": "Bad Header", "apps": {"a": {"cluster": "x"}}}"#,
                "field `cluster_header`",
            ),
        ];
        for (json, want) in cases {
            let got = refused(json);
            assert!(got.starts_with("invalid plugin configuration: "), "{got}");
            assert!(
                got.contains(want),
                "config {json}\n  error {got}\n  lacks {want:?}"
            );
        }
    }

    #[test]
    fn per_app_timeout_and_retries_become_router_headers() {
        let c = Config::from_json(
            br#"{"app_id": "a", "apps": {"b": {"cluster": "b", "timeout_ms": 1500,
                 "max_retries": 3, "retry_on": "5xx,connect-failure"}, "c": {"cluster": "c"}}}"#,
        )
        .unwrap();
        let b = c.resolve(&Target::parse("b").unwrap()).unwrap();
        assert_eq!(
            b.app.policy_headers.to_vec(),
            [
                ("x-envoy-upstream-rq-timeout-ms", "1500".to_string()),
                ("x-envoy-max-retries", "3".to_string()),
                ("x-envoy-retry-on", "5xx,connect-failure".to_string()),
            ]
        );
        assert!(c
            .resolve(&Target::parse("c").unwrap())
            .unwrap()
            .app
            .policy_headers
            .is_empty());
    }

    #[test]
    fn access_control_is_for_inbound_and_validated() {
        let c = Config::from_json(
            br#"{"app_id": "op", "mode": "inbound", "access_control": {"defaultAction": "deny",
                 "policies": [{"appId": "checkout", "namespace": "default", "trustDomain": "public",
                   "operations": [{"name": "/orders", "httpVerb": ["POST"], "action": "allow"}]}]}}"#,
        )
        .unwrap();
        assert!(c.access_control.is_some());
        let cases: &[(&str, &str)] = &[
            (
                r#"{"app_id": "a", "apps": {"b": {"cluster": "b"}}, "access_control": {}}"#,
                "field `access_control` applies to mode \"inbound\"",
            ),
            (
                r#"{"app_id": "a", "mode": "inbound", "access_control": {"defaultAction": "perhaps"}}"#,
                "invalid plugin configuration: field `access_control.defaultAction` is \"perhaps\"",
            ),
            (
                r#"{"app_id": "a", "mode": "inbound", "access_control": {"policies": [{"appid": "x"}]}}"#,
                "unknown field `appid`",
            ),
        ];
        for (json, want) in cases {
            let got = Config::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(got.contains(want), "{got}");
        }
    }

    #[test]
    fn inbound_mode_needs_only_the_own_identity() {
        let c = Config::from_json(br#"{"app_id": "order-processor", "mode": "inbound"}"#).unwrap();
        assert_eq!(c.mode, Mode::Inbound);
        assert_eq!(c.app_count(), 0);
        assert_eq!(
            Config::from_json(GOOD.as_bytes()).unwrap().mode,
            Mode::Outbound
        );
    }

    #[test]
    fn many_apps_load() {
        let apps: Vec<String> = (0..10_000)
            .map(|i| format!(r#""app-{i}": {{"cluster": "c{i}"}}"#))
            .collect();
        let json = format!(r#"{{"app_id": "a", "apps": {{{}}}}}"#, apps.join(","));
        let c = Config::from_json(json.as_bytes()).unwrap();
        assert_eq!(c.app_count(), 10_000);
        assert_eq!(
            c.resolve(&Target::parse("app-9999").unwrap())
                .unwrap()
                .app
                .cluster
                .to_string(),
            "c9999"
        );
    }
}
