//! The keys of Dapr's run file, as Dapr's CLI documents them: every one is known, so that a key
//! Dapr does not know (a typo) is an error naming the key and its line, and a daprd setting with
//! no Envoy counterpart is accepted with a warning.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::yaml::Plain;

/// A run file: `version`, `name`, `common` (settings for every app) and `apps`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    pub version: Option<Spanned<Plain>>,
    pub name: Option<Spanned<Plain>>,
    pub common: Option<Spanned<Settings>>,
    pub apps: Option<Spanned<Vec<Spanned<Settings>>>>,
}

/// A daprd setting that means nothing to an Envoy sidecar: read, then warned about.
pub type Ignored = Option<Spanned<IgnoredAny>>;

/// The settings of one app, or of `common` (which may not hold the app-only ones: checked after
/// reading, so that the message can say why).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Settings {
    // Only in an app.
    #[serde(rename = "appID")]
    pub app_id: Option<Spanned<Plain>>,
    pub app_dir_path: Option<Spanned<Plain>>,
    pub command: Option<Spanned<Command>>,
    pub app_port: Option<Spanned<Port>>,
    #[serde(rename = "daprHTTPPort")]
    pub dapr_http_port: Option<Spanned<Port>>,
    #[serde(rename = "daprInternalGRPCPort")]
    pub dapr_internal_grpc_port: Option<Spanned<Port>>,
    pub metrics_port: Option<Spanned<Port>>,
    // Dapr's keys for `dapr run -k`; `dapr-envoy kubernetes` reads the first two.
    pub container_image: Option<Spanned<Plain>>,
    pub container_image_pull_policy: Option<Spanned<Plain>>,
    pub create_service: Ignored,
    #[serde(rename = "daprGRPCPort")]
    pub dapr_grpc_port: Option<Spanned<Port>>,
    pub profile_port: Ignored,
    pub unix_domain_socket: Ignored,
    pub app_channel_address: Ignored,

    // In an app or in `common`.
    pub env: Option<Spanned<BTreeMap<Plain, Plain>>>,
    pub app_protocol: Option<Spanned<Plain>>,
    pub log_level: Option<Spanned<Plain>>,
    pub app_log_destination: Option<Spanned<Plain>>,
    pub daprd_log_destination: Option<Spanned<Plain>>,
    pub resources_path: Option<Spanned<Paths>>,
    pub resources_paths: Option<Spanned<Paths>>,
    pub config_file_path: Option<Spanned<Plain>>,
    pub api_listen_addresses: Ignored,
    pub enable_profiling: Ignored,
    pub app_max_concurrency: Option<Spanned<i64>>,
    pub placement_host_address: Ignored,
    pub scheduler_host_address: Ignored,
    #[serde(rename = "appSSL")]
    pub app_ssl: Ignored,
    pub max_body_size: Option<Spanned<Quantity>>,
    pub read_buffer_size: Option<Spanned<Quantity>>,
    #[serde(rename = "daprHTTPMaxRequestSize")]
    pub dapr_http_max_request_size: Ignored,
    #[serde(rename = "daprHTTPReadBufferSize")]
    pub dapr_http_read_buffer_size: Ignored,
    pub enable_app_health_check: Option<Spanned<bool>>,
    pub app_health_check_path: Option<Spanned<Plain>>,
    pub app_health_probe_interval: Option<Spanned<i64>>,
    pub app_health_probe_timeout: Option<Spanned<i64>>,
    pub app_health_threshold: Option<Spanned<i64>>,
    pub enable_api_logging: Ignored,
    pub runtime_path: Ignored,
    pub components_path: Ignored,
}

impl Settings {
    /// The app-only keys this holds, with their lines: none may be in `common`.
    pub fn app_only(&self) -> Vec<(&'static str, Option<usize>)> {
        use crate::yaml::line_of;
        [
            ("appID", self.app_id.as_ref().map(line_of)),
            ("appDirPath", self.app_dir_path.as_ref().map(line_of)),
            ("command", self.command.as_ref().map(line_of)),
            ("appPort", self.app_port.as_ref().map(line_of)),
            ("daprHTTPPort", self.dapr_http_port.as_ref().map(line_of)),
            (
                "daprInternalGRPCPort",
                self.dapr_internal_grpc_port.as_ref().map(line_of),
            ),
            ("metricsPort", self.metrics_port.as_ref().map(line_of)),
            ("containerImage", self.container_image.as_ref().map(line_of)),
            (
                "containerImagePullPolicy",
                self.container_image_pull_policy.as_ref().map(line_of),
            ),
            ("createService", self.create_service.as_ref().map(line_of)),
            ("daprGRPCPort", self.dapr_grpc_port.as_ref().map(line_of)),
            ("profilePort", self.profile_port.as_ref().map(line_of)),
            (
                "unixDomainSocket",
                self.unix_domain_socket.as_ref().map(line_of),
            ),
            (
                "appChannelAddress",
                self.app_channel_address.as_ref().map(line_of),
            ),
        ]
        .into_iter()
        .filter_map(|(k, l)| l.map(|l| (k, l)))
        .collect()
    }

    /// The daprd settings this holds that Envoy sidecars do not use, with their lines.
    pub fn ignored(&self) -> Vec<(&'static str, Option<usize>)> {
        [
            ("createService", &self.create_service),
            ("profilePort", &self.profile_port),
            ("unixDomainSocket", &self.unix_domain_socket),
            ("appChannelAddress", &self.app_channel_address),
            ("apiListenAddresses", &self.api_listen_addresses),
            ("enableProfiling", &self.enable_profiling),
            ("placementHostAddress", &self.placement_host_address),
            ("schedulerHostAddress", &self.scheduler_host_address),
            ("appSSL", &self.app_ssl),
            ("daprHTTPMaxRequestSize", &self.dapr_http_max_request_size),
            ("daprHTTPReadBufferSize", &self.dapr_http_read_buffer_size),
            ("enableApiLogging", &self.enable_api_logging),
            ("runtimePath", &self.runtime_path),
            ("componentsPath", &self.components_path),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, crate::yaml::line_of(v))))
        .collect()
    }
}

/// A TCP port: 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number (1 to 65535)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                u16::try_from(v)
                    .ok()
                    .filter(|p| *p != 0)
                    .map(Port)
                    .ok_or_else(|| E::custom(format!("{v} is not a port number (1 to 65535)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("{v} is not a port number (1 to 65535)"))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Port, E> {
                Err(E::custom(format!("{v} is not a port number (1 to 65535)")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                Err(E::custom(format!("{v} is not a port number (1 to 65535)")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Port, E> {
                Err(E::custom(format!("{v} is not a port number (1 to 65535)")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size as Dapr's CLI writes it, a Kubernetes resource quantity: `4Mi`, `512Ki`, `4M`, `4096`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(pub u64);

impl Quantity {
    /// Parses a quantity: digits, then an optional binary (`Ki`, `Mi`, `Gi`, `Ti`) or decimal
    /// (`k`, `M`, `G`, `T`) suffix.
    pub fn parse(raw: &str) -> Result<Quantity, String> {
        let s = raw.trim();
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (number, suffix) = s.split_at(digits);
        let bad = || format!("{raw:?} is not a size like 4Mi, 512Ki or 4096");
        let n: u64 = number.parse().map_err(|_| bad())?;
        let unit: u64 = match suffix {
            "" => 1,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(unit)
            .filter(|b| *b > 0)
            .map(Quantity)
            .ok_or_else(|| format!("{raw:?} is zero or too large"))
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like 4Mi, 512Ki or 4096")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The app's command line: a list of words, as Dapr writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a list, like ["python3", "app.py"]"#)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Command, E> {
                Err(E::custom(r#"must be a list, like ["python3", "app.py"]"#))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Command, A::Error> {
                let mut words = Vec::new();
                while let Some(Plain(w)) = a.next_element()? {
                    words.push(w);
                }
                Ok(Command(words))
            }
        }
        d.deserialize_any(V)
    }
}

/// One path, or a list of them (`resourcesPath` / `resourcesPaths` take either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths(pub Vec<String>);

impl<'de> Deserialize<'de> for Paths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Paths;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Paths, E> {
                Ok(Paths(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Paths, E> {
                Ok(Paths(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Paths, A::Error> {
                let mut paths = Vec::new();
                while let Some(Plain(p)) = a.next_element()? {
                    paths.push(p);
                }
                Ok(Paths(paths))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the struct knows, as serde lists them for an unknown key.
    fn known_keys() -> Vec<&'static str> {
        match serde_saphyr::from_str::<Settings>("zzz: 1\n") {
            Err(serde_saphyr::Error::SerdeUnknownField { expected, .. }) => expected,
            Err(e) => match e.without_snippet() {
                serde_saphyr::Error::SerdeUnknownField { expected, .. } => expected.clone(),
                other => panic!("{other}"),
            },
            Ok(_) => panic!("zzz accepted"),
        }
    }

    #[test]
    fn the_tables_name_the_struct_keys() {
        let keys = known_keys();
        assert_eq!(keys.len(), 40);
        // Give every key a value; the tables must find each one under its YAML name.
        let text: String = keys
            .iter()
            .map(|k| match *k {
                "command" => format!("{k}: [x]\n"),
                "env" => format!("{k}: {{}}\n"),
                "appPort"
                | "daprHTTPPort"
                | "daprInternalGRPCPort"
                | "metricsPort"
                | "daprGRPCPort"
                | "appMaxConcurrency"
                | "appHealthProbeInterval"
                | "appHealthProbeTimeout"
                | "appHealthThreshold"
                | "maxBodySize"
                | "readBufferSize" => format!("{k}: 1\n"),
                "enableAppHealthCheck" => format!("{k}: true\n"),
                _ => format!("{k}: x\n"),
            })
            .collect();
        let s: Settings = serde_saphyr::from_str(&text).unwrap();
        let app_only: Vec<&str> = s.app_only().iter().map(|(k, _)| *k).collect();
        let ignored: Vec<&str> = s.ignored().iter().map(|(k, _)| *k).collect();
        assert_eq!(app_only.len(), 14);
        assert_eq!(ignored.len(), 14);
        for k in app_only.iter().chain(&ignored) {
            assert!(keys.contains(k), "{k} is not a key of Settings");
        }
    }
}
