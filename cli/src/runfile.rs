//! Dapr's multi-app run file (`dapr run -f`): parsed, checked and resolved into a [`Plan`] of
//! apps with every port and path decided.
//!
//! The format is Dapr's: `version`, `name`, `common` (settings shared by all apps) and `apps`
//! (`appID`, `appDirPath`, `command`, `appPort`, `daprHTTPPort`, `env`, ...). Keys are read by
//! hand rather than by a derived struct so that every key Dapr documents is known: the ones that
//! mean something for Envoy sidecars are used, the others are accepted with a warning, and a key
//! Dapr does not know (a typo) is an error that names the key and its line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use dapr_invoke::ids::validate_name;
use serde_norway::{Mapping, Value};

/// The first Dapr HTTP port handed out when an app does not set `daprHTTPPort`, as `dapr run`
/// users know it.
pub const FIRST_HTTP_PORT: u16 = 3500;

/// Keys allowed both in `common` and in an app, and what we do with them.
const SHARED_KEYS: &[(&str, Use)] = &[
    ("env", Use::Used),
    ("appProtocol", Use::Used),
    ("logLevel", Use::Used),
    ("appLogDestination", Use::Used),
    ("daprdLogDestination", Use::Used),
    ("resourcesPath", Use::Used),
    ("resourcesPaths", Use::Used),
    ("configFilePath", Use::Used),
    ("apiListenAddresses", Use::Ignored),
    ("enableProfiling", Use::Ignored),
    ("appMaxConcurrency", Use::Ignored),
    ("placementHostAddress", Use::Ignored),
    ("schedulerHostAddress", Use::Ignored),
    ("appSSL", Use::Ignored),
    ("maxBodySize", Use::Ignored),
    ("readBufferSize", Use::Ignored),
    ("daprHTTPMaxRequestSize", Use::Ignored),
    ("daprHTTPReadBufferSize", Use::Ignored),
    ("enableAppHealthCheck", Use::Ignored),
    ("appHealthCheckPath", Use::Ignored),
    ("appHealthProbeInterval", Use::Ignored),
    ("appHealthProbeTimeout", Use::Ignored),
    ("appHealthThreshold", Use::Ignored),
    ("enableApiLogging", Use::Ignored),
    ("runtimePath", Use::Ignored),
    ("componentsPath", Use::Ignored),
];

/// Keys allowed only in an app.
const APP_KEYS: &[(&str, Use)] = &[
    ("appID", Use::Used),
    ("appDirPath", Use::Used),
    ("command", Use::Used),
    ("appPort", Use::Used),
    ("daprHTTPPort", Use::Used),
    ("daprInternalGRPCPort", Use::Used),
    ("metricsPort", Use::Used),
    // Dapr's keys for `dapr run -k`; `dapr-envoy kubernetes` reads them.
    ("containerImage", Use::Used),
    ("containerImagePullPolicy", Use::Used),
    ("createService", Use::Ignored),
    ("daprGRPCPort", Use::Ignored),
    ("profilePort", Use::Ignored),
    ("unixDomainSocket", Use::Ignored),
    ("appChannelAddress", Use::Ignored),
];

const TOP_KEYS: &[&str] = &["version", "name", "common", "apps"];

#[derive(Clone, Copy)]
enum Use {
    Used,
    /// A daprd setting with no Envoy counterpart here.
    Ignored,
}

/// A problem with the run file, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFileError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for RunFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// How the sidecar talks to its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    Http,
    /// gRPC or HTTP/2 cleartext: HTTP/2 to the app.
    H2c,
}

/// Where a process's output goes (Dapr's `appLogDestination` / `daprdLogDestination`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDest {
    Console,
    File,
    FileAndConsole,
}

impl LogDest {
    pub fn console(self) -> bool {
        matches!(self, LogDest::Console | LogDest::FileAndConsole)
    }
    pub fn file(self) -> bool {
        matches!(self, LogDest::File | LogDest::FileAndConsole)
    }
}

/// The sidecar ports a run file sets for an app (`daprHTTPPort`, `daprInternalGRPCPort`,
/// `metricsPort`); a deployment that gives each app its own network picks its own defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestedPorts {
    pub http: Option<u16>,
    pub inbound: Option<u16>,
    pub admin: Option<u16>,
}

/// One app, with everything decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPlan {
    pub app_id: String,
    pub dir: PathBuf,
    pub command: Vec<String>,
    /// The run file's `env` (common, then the app's own on top).
    pub env: BTreeMap<String, String>,
    pub app_port: Option<u16>,
    pub protocol: AppProtocol,
    /// Outbound listener: what the app calls (`DAPR_HTTP_PORT`).
    pub http_port: u16,
    /// Inbound listener: what other sidecars call to reach this app.
    pub inbound_port: u16,
    /// Envoy's admin port (`metricsPort` when given: `/stats/prometheus` lives there).
    pub admin_port: u16,
    /// The ports the run file itself sets; the three above are these, or ones found free.
    pub requested: RequestedPorts,
    /// Envoy's log level, from Dapr's `logLevel`.
    pub envoy_log_level: &'static str,
    pub app_log: LogDest,
    pub envoy_log: LogDest,
    /// `spec.accessControl` of the app's Dapr Configuration (`configFilePath`), as JSON: the
    /// policy its sidecar enforces on callers.
    pub access_control: Option<dapr_invoke::acl::RawAccessControl>,
    /// The Resiliency policies that apply to this app's calls, by target app
    /// (from the YAML files in `resourcesPath` / `resourcesPaths`).
    pub resiliency: crate::resiliency::Policies,
    /// The app's image in a pod (`containerImage`) and when to pull it
    /// (`containerImagePullPolicy`: `Always`, `IfNotPresent` or `Never`).
    pub image: Option<String>,
    pub image_pull_policy: Option<String>,
}

impl AppPlan {
    /// The variables Dapr gives an app, then the run file's `env` on top, as `dapr run` does.
    pub fn app_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("APP_ID".to_string(), self.app_id.clone());
        if let Some(port) = self.app_port {
            env.insert("APP_PORT".to_string(), port.to_string());
        }
        env.insert("DAPR_HTTP_PORT".to_string(), self.http_port.to_string());
        env.insert(
            "APP_PROTOCOL".to_string(),
            match self.protocol {
                AppProtocol::Http => "http",
                AppProtocol::H2c => "h2c",
            }
            .to_string(),
        );
        env.extend(self.env.clone());
        env
    }
}

/// A checked run file.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: Option<String>,
    pub base_dir: PathBuf,
    pub apps: Vec<AppPlan>,
    /// Things the user should know (ignored keys), one line each.
    pub warnings: Vec<String>,
}

/// What resolution needs from the machine: whether a port is free, and a free ephemeral port.
pub trait Ports {
    fn is_free(&mut self, port: u16) -> bool;
    fn ephemeral(&mut self) -> Option<u16>;
}

/// The real machine: a port is free if we can bind it on loopback.
pub struct LocalPorts;

impl Ports for LocalPorts {
    fn is_free(&mut self, port: u16) -> bool {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    }
    fn ephemeral(&mut self) -> Option<u16> {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
        l.local_addr().ok().map(|a| a.port())
    }
}

/// Ports for files that are written, not run: every port counts as free and the ones a run file
/// leaves open are numbered from 50001, so the same run file always gives the same configs.
#[derive(Debug)]
pub struct Sequential(u16);

impl Default for Sequential {
    fn default() -> Self {
        Sequential(50001)
    }
}

impl Ports for Sequential {
    fn is_free(&mut self, _port: u16) -> bool {
        true
    }
    fn ephemeral(&mut self) -> Option<u16> {
        let p = self.0;
        self.0 = self.0.checked_add(1)?;
        Some(p)
    }
}

/// Reads and resolves a run file from disk.
pub fn load(path: &Path, ports: &mut dyn Ports) -> Result<Plan, RunFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RunFileError {
        file: shown.clone(),
        line: None,
        key: String::new(),
        message: format!("cannot read the run file: {e}"),
    })?;
    let base = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, &shown, &base, ports)
}

/// Parses and resolves run-file text; `base` is the directory relative paths start from.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    ports: &mut dyn Ports,
) -> Result<Plan, RunFileError> {
    let lines = Lines::new(text);
    let err = |line: Option<usize>, key: &str, message: String| RunFileError {
        file: file.to_string(),
        line,
        key: key.to_string(),
        message,
    };

    let doc: Value = serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        err(line, "", format!("not valid YAML: {e}"))
    })?;
    let Value::Mapping(top) = doc else {
        return Err(err(
            None,
            "",
            "expected a mapping with `version` and `apps`".into(),
        ));
    };
    let mut warnings = Vec::new();

    for key in top.keys() {
        let name = key_name(key);
        if !TOP_KEYS.contains(&name.as_str()) {
            let line = lines.key_line(&name, 0, usize::MAX);
            return Err(err(line, &name, unknown_key_message(&name, TOP_KEYS)));
        }
    }
    match top.get("version") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        Some(other) => {
            return Err(err(
                lines.key_line("version", 0, usize::MAX),
                "version",
                format!("only version 1 is known, not {}", show(other)),
            ))
        }
    }
    let name = match top.get("name") {
        None => None,
        Some(v) => Some(as_string(v).ok_or_else(|| {
            err(
                lines.key_line("name", 0, usize::MAX),
                "name",
                "must be a string".into(),
            )
        })?),
    };

    let common_line = lines.key_line("common", 0, usize::MAX);
    let common = match top.get("common") {
        None | Some(Value::Null) => Mapping::new(),
        Some(Value::Mapping(m)) => m.clone(),
        Some(_) => return Err(err(common_line, "common", "must be a mapping".into())),
    };
    let common_range = lines.block_after(common_line);
    for key in common.keys() {
        let k = key_name(key);
        let line = lines.key_line(&k, common_range.0, common_range.1);
        let path = format!("common.{k}");
        match SHARED_KEYS.iter().find(|(n, _)| *n == k) {
            Some((_, u)) => note_use(&mut warnings, file, line, &path, *u),
            None if APP_KEYS.iter().any(|(n, _)| *n == k) => {
                return Err(err(
                    line,
                    &path,
                    format!("`{k}` belongs to each app, not to `common`"),
                ))
            }
            None => return Err(err(line, &path, unknown_key_message(&k, &all_app_keys()))),
        }
    }

    let apps_line = lines.key_line("apps", 0, usize::MAX);
    let apps = match top.get("apps") {
        Some(Value::Sequence(s)) if !s.is_empty() => s,
        Some(Value::Sequence(_)) | Some(Value::Null) => {
            return Err(err(apps_line, "apps", "lists no app".into()))
        }
        Some(_) => return Err(err(apps_line, "apps", "must be a list of apps".into())),
        None => return Err(err(None, "apps", "is missing: list the apps to run".into())),
    };
    let item_lines = lines.items_under(apps_line, apps.len());

    // Pass 1: read each app and its explicit ports.
    struct Read {
        plan: AppPlan,
        explicit: Vec<(&'static str, u16)>,
        range: (usize, usize),
        http: Option<u16>,
        inbound: Option<u16>,
        admin: Option<u16>,
    }
    let mut read: Vec<Read> = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        let range = item_lines
            .as_ref()
            .and_then(|ls| Some((*ls.get(i)?, ls.get(i + 1).copied().unwrap_or(usize::MAX))))
            .unwrap_or((0, usize::MAX));
        let at = |k: &str| {
            if item_lines.is_some() {
                lines.key_line(k, range.0, range.1).or(Some(range.0))
            } else {
                None
            }
        };
        let item_line = item_lines.as_ref().and_then(|ls| ls.get(i).copied());
        let Value::Mapping(m) = app else {
            return Err(err(
                item_line,
                &format!("apps[{i}]"),
                "must be a mapping".into(),
            ));
        };
        for key in m.keys() {
            let k = key_name(key);
            let path = format!("apps[{i}].{k}");
            match APP_KEYS.iter().chain(SHARED_KEYS).find(|(n, _)| *n == k) {
                Some((_, u)) => note_use(&mut warnings, file, at(&k), &path, *u),
                None => return Err(err(at(&k), &path, unknown_key_message(&k, &all_app_keys()))),
            }
        }
        let get = |k: &str| m.get(k).or_else(|| common.get(k));
        let field = |k: &str| format!("apps[{i}].{k}");

        let app_id = match m.get("appID") {
            Some(v) => as_string(v)
                .ok_or_else(|| err(at("appID"), &field("appID"), "must be a string".into()))?,
            None => {
                return Err(err(
                    item_line,
                    &field("appID"),
                    "is missing: every app needs an id".into(),
                ))
            }
        };
        validate_name(&app_id)
            .map_err(|e| err(at("appID"), &field("appID"), format!("{app_id:?} {e}")))?;

        let dir = match m.get("appDirPath") {
            Some(v) => as_string(v).ok_or_else(|| {
                err(
                    at("appDirPath"),
                    &field("appDirPath"),
                    "must be a string".into(),
                )
            })?,
            None => {
                return Err(err(
                    item_line,
                    &field("appDirPath"),
                    "is missing: the directory the app runs in".into(),
                ))
            }
        };
        let dir = joined(base, dir);
        if !dir.is_dir() {
            return Err(err(
                at("appDirPath"),
                &field("appDirPath"),
                format!("{} is not a directory", dir.display()),
            ));
        }

        let command = match m.get("command") {
            Some(Value::Sequence(s)) if !s.is_empty() => s
                .iter()
                .map(as_string)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    err(
                        at("command"),
                        &field("command"),
                        "must be a list of strings".into(),
                    )
                })?,
            Some(Value::Sequence(_)) => {
                return Err(err(at("command"), &field("command"), "is empty".into()))
            }
            Some(_) => {
                return Err(err(
                    at("command"),
                    &field("command"),
                    r#"must be a list, like ["python3", "app.py"]"#.into(),
                ))
            }
            None => {
                return Err(err(
                    item_line,
                    &field("command"),
                    format!("is missing: how to start {app_id:?}"),
                ))
            }
        };

        let mut env = BTreeMap::new();
        for source in [common.get("env"), m.get("env")].into_iter().flatten() {
            let key = if m.get("env").is_some_and(|e| std::ptr::eq(e, source)) {
                field("env")
            } else {
                "common.env".into()
            };
            let line = if key == "common.env" {
                lines.key_line("env", common_range.0, common_range.1)
            } else {
                at("env")
            };
            match source {
                Value::Null => {}
                Value::Mapping(vars) => {
                    for (k, v) in vars {
                        let (Some(k), Some(v)) = (as_string(k), as_string(v)) else {
                            return Err(err(
                                line,
                                &key,
                                format!("{} must map names to plain values", show(k)),
                            ));
                        };
                        env.insert(k, v);
                    }
                }
                _ => {
                    return Err(err(
                        line,
                        &key,
                        "must be a mapping of variable names to values".into(),
                    ))
                }
            }
        }

        let port = |k: &'static str| -> Result<Option<u16>, RunFileError> {
            match m.get(k) {
                None => Ok(None),
                Some(v) => as_port(v)
                    .map(Some)
                    .map_err(|msg| err(at(k), &field(k), msg)),
            }
        };
        let app_port = port("appPort")?;
        let http = port("daprHTTPPort")?;
        let inbound = port("daprInternalGRPCPort")?;
        let admin = port("metricsPort")?;
        let mut explicit = Vec::new();
        for (k, p) in [
            ("appPort", app_port),
            ("daprHTTPPort", http),
            ("daprInternalGRPCPort", inbound),
            ("metricsPort", admin),
        ] {
            if let Some(p) = p {
                explicit.push((k, p));
            }
        }

        let text_of = |k: &str| -> Result<Option<String>, RunFileError> {
            match get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => as_string(v)
                    .map(Some)
                    .ok_or_else(|| err(at(k), &field(k), "must be a string".into())),
            }
        };
        let protocol = match text_of("appProtocol")?
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("http") => AppProtocol::Http,
            Some("grpc") | Some("h2c") => AppProtocol::H2c,
            Some(other) => {
                return Err(err(
                    at("appProtocol"),
                    &field("appProtocol"),
                    format!("{other:?} is not supported yet; use http, h2c or grpc"),
                ))
            }
        };
        let envoy_log_level = match text_of("logLevel")?.as_deref() {
            None | Some("info") => "info",
            Some("debug") => "debug",
            Some("warn") | Some("warning") => "warn",
            Some("error") => "error",
            Some("fatal") => "critical",
            Some(other) => {
                return Err(err(
                    at("logLevel"),
                    &field("logLevel"),
                    format!("{other:?} is not one of debug, info, warn, error, fatal"),
                ))
            }
        };
        let dest = |k: &str, default: LogDest| -> Result<LogDest, RunFileError> {
            match text_of(k)?.as_deref() {
                None => Ok(default),
                Some("console") => Ok(LogDest::Console),
                Some("file") => Ok(LogDest::File),
                Some("fileAndConsole") => Ok(LogDest::FileAndConsole),
                Some(other) => Err(err(
                    at(k),
                    &field(k),
                    format!("{other:?} is not one of console, file, fileAndConsole"),
                )),
            }
        };
        let access_control = match text_of("configFilePath")? {
            None => None,
            Some(rel) => {
                let key = if m.contains_key("configFilePath") {
                    field("configFilePath")
                } else {
                    "common.configFilePath".into()
                };
                let line = if m.contains_key("configFilePath") {
                    at("configFilePath")
                } else {
                    lines.key_line("configFilePath", common_range.0, common_range.1)
                };
                let path = joined(base, &rel);
                let (acl, notes) =
                    crate::dapr_config::access_control(&path).map_err(|e| err(line, &key, e))?;
                warnings.extend(notes);
                acl
            }
        };
        // Resources: the app's own paths, else common's; Resiliency resources are read from them.
        let (res_key, res_line, res_value) = ["resourcesPaths", "resourcesPath"]
            .iter()
            .find_map(|k| m.get(*k).map(|v| (field(k), at(k), v)))
            .or_else(|| {
                ["resourcesPaths", "resourcesPath"].iter().find_map(|k| {
                    common.get(*k).map(|v| {
                        (
                            format!("common.{k}"),
                            lines.key_line(k, common_range.0, common_range.1),
                            v,
                        )
                    })
                })
            })
            .map_or((String::new(), None, None), |(k, l, v)| (k, l, Some(v)));
        let mut resources = Vec::new();
        match res_value {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(paths)) => {
                for p in paths {
                    let p = as_string(p)
                        .ok_or_else(|| err(res_line, &res_key, "must list paths".into()))?;
                    resources.push(joined(base, p));
                }
            }
            Some(v) => resources.push(joined(
                base,
                as_string(v).ok_or_else(|| err(res_line, &res_key, "must be a path".into()))?,
            )),
        }
        for dir in &resources {
            if !dir.is_dir() {
                return Err(err(
                    res_line,
                    &res_key,
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        let resiliency =
            crate::resiliency::load(&resources, &app_id).map_err(|e| err(res_line, &res_key, e))?;
        warnings.extend(resiliency.notes.iter().cloned());
        let app_log = dest("appLogDestination", LogDest::FileAndConsole)?;
        let envoy_log = dest("daprdLogDestination", LogDest::File)?;
        let image = text_of("containerImage")?;
        if image
            .as_deref()
            .is_some_and(|i| i.trim().is_empty() || i.contains(char::is_whitespace))
        {
            return Err(err(
                at("containerImage"),
                &field("containerImage"),
                "must be an image reference, like registry.example/checkout:1.0".into(),
            ));
        }
        let image_pull_policy = text_of("containerImagePullPolicy")?;
        if let Some(p) = &image_pull_policy {
            if !["Always", "IfNotPresent", "Never"].contains(&p.as_str()) {
                return Err(err(
                    at("containerImagePullPolicy"),
                    &field("containerImagePullPolicy"),
                    format!("{p:?} is not one of Always, IfNotPresent, Never"),
                ));
            }
        }

        read.push(Read {
            plan: AppPlan {
                app_id,
                dir,
                command,
                env,
                app_port,
                protocol,
                http_port: 0,
                inbound_port: 0,
                admin_port: 0,
                requested: RequestedPorts {
                    http,
                    inbound,
                    admin,
                },
                envoy_log_level,
                app_log,
                envoy_log,
                access_control,
                resiliency,
                image,
                image_pull_policy,
            },
            explicit,
            range,
            http,
            inbound,
            admin,
        });
    }

    // Duplicate ids.
    for (i, a) in read.iter().enumerate() {
        if let Some((j, _)) = read
            .iter()
            .enumerate()
            .take(i)
            .find(|(_, b)| b.plan.app_id == a.plan.app_id)
        {
            let line = item_lines
                .as_ref()
                .and_then(|_| lines.key_line("appID", a.range.0, a.range.1));
            let first = item_lines.as_ref().and_then(|_| {
                lines.key_line(
                    "appID",
                    read.get(j).map_or(0, |r| r.range.0),
                    read.get(j).map_or(0, |r| r.range.1),
                )
            });
            return Err(err(
                line,
                &format!("apps[{i}].appID"),
                format!(
                    "{:?} is also the id of apps[{j}]{}",
                    a.plan.app_id,
                    first.map(|l| format!(" (line {l})")).unwrap_or_default()
                ),
            ));
        }
    }

    // Explicit ports: no clash within the file, and free on this machine.
    let mut claimed: Vec<(u16, String, Option<usize>)> = Vec::new();
    for (i, a) in read.iter().enumerate() {
        for (k, p) in &a.explicit {
            let line = item_lines
                .as_ref()
                .and_then(|_| lines.key_line(k, a.range.0, a.range.1));
            let here = format!("apps[{i}].{k}");
            if let Some((_, other, other_line)) = claimed.iter().find(|(q, _, _)| q == p) {
                return Err(err(
                    line,
                    &here,
                    format!(
                        "port {p} is also {other}{}",
                        other_line
                            .map(|l| format!(" (line {l})"))
                            .unwrap_or_default()
                    ),
                ));
            }
            if !ports.is_free(*p) {
                return Err(err(
                    line,
                    &here,
                    format!("port {p} is already in use on this machine"),
                ));
            }
            claimed.push((*p, here, line));
        }
    }

    // Unset ports: Dapr HTTP ports from 3500 upward, the rest from the OS.
    let mut taken: Vec<u16> = claimed.iter().map(|(p, _, _)| *p).collect();
    let mut next_http = FIRST_HTTP_PORT;
    let mut out = Vec::with_capacity(read.len());
    for (i, a) in read.into_iter().enumerate() {
        let mut plan = a.plan;
        plan.http_port = match a.http {
            Some(p) => p,
            None => {
                let mut found = None;
                while let Some(p) = Some(next_http).filter(|p| *p < u16::MAX) {
                    next_http += 1;
                    if !taken.contains(&p) && ports.is_free(p) {
                        found = Some(p);
                        break;
                    }
                }
                let p = found.ok_or_else(|| {
                    err(
                        None,
                        &format!("apps[{i}].daprHTTPPort"),
                        "no free port from 3500 up".into(),
                    )
                })?;
                taken.push(p);
                p
            }
        };
        for (slot, given, key) in [
            (&mut plan.inbound_port, a.inbound, "daprInternalGRPCPort"),
            (&mut plan.admin_port, a.admin, "metricsPort"),
        ] {
            *slot = match given {
                Some(p) => p,
                None => {
                    let mut found = None;
                    for _ in 0..100 {
                        match ports.ephemeral() {
                            Some(p) if !taken.contains(&p) => {
                                found = Some(p);
                                break;
                            }
                            Some(_) => continue,
                            None => break,
                        }
                    }
                    let p = found.ok_or_else(|| {
                        err(None, &format!("apps[{i}].{key}"), "no free port".into())
                    })?;
                    taken.push(p);
                    p
                }
            };
        }
        out.push(plan);
    }

    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    Ok(Plan {
        name,
        base_dir: base.to_path_buf(),
        apps: out,
        warnings,
    })
}

/// `base/rel` without `.` components, for paths shown in messages and passed to Envoy.
fn joined(base: &Path, rel: impl AsRef<Path>) -> PathBuf {
    base.join(rel)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

fn all_app_keys() -> Vec<&'static str> {
    APP_KEYS
        .iter()
        .chain(SHARED_KEYS)
        .map(|(n, _)| *n)
        .collect()
}

fn note_use(warnings: &mut Vec<String>, file: &str, line: Option<usize>, path: &str, u: Use) {
    let at = line
        .map(|l| format!("{file}:{l}"))
        .unwrap_or_else(|| file.to_string());
    match u {
        Use::Used => {}
        Use::Ignored => warnings.push(format!(
            "{at}: {path} is a daprd setting with no effect on Envoy sidecars; ignored"
        )),
    }
}

fn unknown_key_message(key: &str, known: &[&str]) -> String {
    let near = known
        .iter()
        .map(|k| {
            (
                edit_distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d);
    match near {
        Some((_, k)) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None => format!("unknown key `{key}`; known keys here: {}", known.join(", ")),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

fn key_name(v: &Value) -> String {
    as_string(v).unwrap_or_else(|| show(v))
}

/// A plain scalar as text (strings, numbers and booleans: YAML's `DEBUG: true` is "true").
fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_port(v: &Value) -> Result<u16, String> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(p) if (1..=65535).contains(&p) => u16::try_from(p).map_err(|e| e.to_string()),
            _ => Err(format!("{n} is not a port number (1 to 65535)")),
        },
        other => Err(format!("{} is not a port number (1 to 65535)", show(other))),
    }
}

fn show(v: &Value) -> String {
    serde_norway::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "this value".to_string())
}

/// Line lookups in the run file's text, for messages. Works on block-style YAML, which run files
/// are; where the text does not look as expected, messages go without a line.
struct Lines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            lines: text.lines().collect(),
        }
    }

    fn indent(line: &str) -> usize {
        line.len() - line.trim_start().len()
    }

    /// The 1-based line of `key:` within lines [from, to) (1-based, `to` exclusive).
    fn key_line(&self, key: &str, from: usize, to: usize) -> Option<usize> {
        let from = from.max(1);
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(n, _)| *n >= from && *n < to)
            .find(|(_, l)| {
                let t = l.trim_start().trim_start_matches("- ").trim_start();
                t.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
                    || t.strip_prefix(&format!("\"{key}\""))
                        .is_some_and(|r| r.trim_start().starts_with(':'))
            })
            .map(|(n, _)| n)
    }

    /// The lines of a block: from the line after `start` to the next line indented no deeper
    /// than `start`'s.
    fn block_after(&self, start: Option<usize>) -> (usize, usize) {
        let Some(start) = start else { return (0, 0) };
        let base = self.lines.get(start - 1).map_or(0, |l| Self::indent(l));
        let end = self
            .lines
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, l)| {
                !l.trim().is_empty() && !l.trim_start().starts_with('#') && Self::indent(l) <= base
            })
            .map_or(usize::MAX, |(i, _)| i + 1);
        (start + 1, end)
    }

    /// The first line of each of the `count` list items under `apps:`, when the text has
    /// exactly that many at one indentation.
    fn items_under(&self, key_line: Option<usize>, count: usize) -> Option<Vec<usize>> {
        let (from, to) = self.block_after(key_line);
        let items: Vec<(usize, usize)> = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(n, _)| *n >= from && *n < to)
            .filter(|(_, l)| l.trim_start().starts_with("- ") || l.trim() == "-")
            .map(|(n, l)| (n, Self::indent(l)))
            .collect();
        let min = items.iter().map(|(_, i)| *i).min()?;
        let top: Vec<usize> = items
            .into_iter()
            .filter(|(_, i)| *i == min)
            .map(|(n, _)| n)
            .collect();
        (top.len() == count).then_some(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakePorts {
        busy: Vec<u16>,
        next: u16,
    }

    impl Ports for FakePorts {
        fn is_free(&mut self, port: u16) -> bool {
            !self.busy.contains(&port)
        }
        fn ephemeral(&mut self) -> Option<u16> {
            self.next += 1;
            Some(self.next)
        }
    }

    fn fake() -> FakePorts {
        FakePorts {
            busy: vec![],
            next: 40000,
        }
    }

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("checkout")).unwrap();
        std::fs::create_dir(d.path().join("order-processor")).unwrap();
        std::fs::create_dir(d.path().join("components")).unwrap();
        d
    }

    const QUICKSTART: &str = "version: 1
common:
  resourcesPath: ./components/
apps:
  - appDirPath: ./order-processor/
    appID: order-processor
    appPort: 6001
    command: [\"python3\", \"app.py\"]
  - appID: checkout
    appDirPath: ./checkout/
    command: [\"python3\", \"app.py\"]
    env:
      DEBUG: true
      RETRIES: 3
";

    fn parse_str(text: &str, ports: &mut dyn Ports) -> Result<Plan, RunFileError> {
        let d = dir();
        parse(text, "dapr.yaml", d.path(), ports)
    }

    fn error(text: &str) -> String {
        match parse_str(text, &mut fake()) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_quickstart_run_file() {
        let plan = parse_str(QUICKSTART, &mut fake()).unwrap();
        let [op, co] = plan.apps.as_slice() else {
            panic!("{:?}", plan.apps)
        };
        assert_eq!(op.app_id, "order-processor");
        assert_eq!(op.app_port, Some(6001));
        assert_eq!(op.http_port, 3500);
        assert_eq!(co.http_port, 3501);
        assert_eq!(co.app_port, None);
        assert_eq!(co.command, ["python3", "app.py"]);
        assert!(op.dir.ends_with("order-processor"));
        assert_ne!(op.inbound_port, co.inbound_port);
        assert_ne!(op.admin_port, op.inbound_port);
        let env = co.app_env();
        assert_eq!(env["APP_ID"], "checkout");
        assert_eq!(env["DAPR_HTTP_PORT"], "3501");
        assert_eq!(env["DEBUG"], "true");
        assert_eq!(env["RETRIES"], "3");
        assert!(!env.contains_key("APP_PORT"));
        assert_eq!(op.app_env()["APP_PORT"], "6001");
        assert_eq!(op.app_log, LogDest::FileAndConsole);
        assert_eq!(op.envoy_log, LogDest::File);
        assert_eq!(plan.warnings, Vec::<String>::new());
    }

    #[test]
    fn http_ports_skip_busy_and_explicit_ones() {
        let text = "version: 1
apps:
  - appID: a
    appDirPath: checkout
    command: [a]
  - appID: b
    appDirPath: checkout
    daprHTTPPort: 3502
    command: [b]
  - appID: c
    appDirPath: checkout
    command: [c]
";
        let mut ports = FakePorts {
            busy: vec![3500],
            next: 40000,
        };
        let plan = parse_str(text, &mut ports).unwrap();
        let got: Vec<u16> = plan.apps.iter().map(|a| a.http_port).collect();
        assert_eq!(got, [3501, 3502, 3503]);
    }

    #[test]
    fn common_settings_apply_and_apps_override_them() {
        let text = "version: 1
common:
  env: {LEVEL: common, SHARED: yes}
  logLevel: debug
  appProtocol: grpc
apps:
  - appID: a
    appDirPath: checkout
    command: [a]
    env: {LEVEL: app}
    logLevel: error
";
        let plan = parse_str(text, &mut fake()).unwrap();
        let a = &plan.apps[0];
        assert_eq!(a.env["LEVEL"], "app");
        assert_eq!(a.env["SHARED"], "yes");
        assert_eq!(a.envoy_log_level, "error");
        assert_eq!(a.protocol, AppProtocol::H2c);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let base = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n";
        let cases: &[(&str, &str)] = &[
            ("version: 1\napps: [", "dapr.yaml:3: not valid YAML"),
            ("- a\n- b\n", "dapr.yaml: expected a mapping"),
            ("version: 2\napps: []\n", "dapr.yaml:1: version: only version 1 is known, not 2"),
            ("version: 1\n", "dapr.yaml: apps: is missing"),
            ("version: 1\napps: []\n", "dapr.yaml:2: apps: lists no app"),
            ("version: 1\napss: []\n", "dapr.yaml:2: apss: unknown key `apss`; did you mean `apps`?"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    comand: [a]\n",
             "dapr.yaml:5: apps[0].comand: unknown key `comand`; did you mean `command`?"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n",
             "dapr.yaml:3: apps[0].command: is missing: how to start \"a\""),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: []\n",
             "dapr.yaml:5: apps[0].command: is empty"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: python3 app.py\n",
             "dapr.yaml:5: apps[0].command: must be a list"),
            ("version: 1\napps:\n  - appDirPath: checkout\n    command: [a]\n",
             "dapr.yaml:3: apps[0].appID: is missing"),
            ("version: 1\napps:\n  - appID: a.b\n    appDirPath: checkout\n    command: [a]\n",
             "dapr.yaml:3: apps[0].appID: \"a.b\" has the character '.'"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: nowhere\n    command: [a]\n",
             "dapr.yaml:4: apps[0].appDirPath: "),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    appPort: http\n",
             "dapr.yaml:6: apps[0].appPort: http is not a port number"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    appPort: 70000\n",
             "dapr.yaml:6: apps[0].appPort: 70000 is not a port number"),
            ("version: 1\ncommon:\n  appID: x\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n",
             "dapr.yaml:3: common.appID: `appID` belongs to each app"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    appProtocol: https\n",
             "dapr.yaml:6: apps[0].appProtocol: \"https\" is not supported yet"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    env: [A]\n",
             "dapr.yaml:6: apps[0].env: must be a mapping"),
        ];
        for (text, want) in cases {
            let got = error(text);
            assert!(
                got.starts_with(want),
                "run file:\n{text}\ngot:  {got}\nwant: {want}..."
            );
        }
        assert!(parse_str(base, &mut fake()).is_ok());
    }

    #[test]
    fn duplicate_ids_and_port_clashes_point_at_both_places() {
        let dup = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n  - appID: a\n    appDirPath: checkout\n    command: [b]\n";
        assert_eq!(
            error(dup),
            "dapr.yaml:6: apps[1].appID: \"a\" is also the id of apps[0] (line 3)"
        );
        let clash = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    appPort: 6001\n  - appID: b\n    appDirPath: checkout\n    command: [b]\n    daprHTTPPort: 6001\n";
        assert_eq!(
            error(clash),
            "dapr.yaml:10: apps[1].daprHTTPPort: port 6001 is also apps[0].appPort (line 6)"
        );
        let busy = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    appPort: 6001\n";
        let got = parse_str(
            busy,
            &mut FakePorts {
                busy: vec![6001],
                next: 40000,
            },
        )
        .unwrap_err();
        assert_eq!(
            got.to_string(),
            "dapr.yaml:6: apps[0].appPort: port 6001 is already in use on this machine"
        );
    }

    #[test]
    fn ignored_daprd_settings_warn_with_their_line() {
        let text = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    enableProfiling: true\n    daprGRPCPort: 50001\n";
        let plan = parse_str(text, &mut fake()).unwrap();
        assert_eq!(plan.warnings, [
            "dapr.yaml:6: apps[0].enableProfiling is a daprd setting with no effect on Envoy sidecars; ignored",
            "dapr.yaml:7: apps[0].daprGRPCPort is a daprd setting with no effect on Envoy sidecars; ignored",
        ]);
    }

    #[test]
    fn kubernetes_keys_of_dapr_run_k_are_read() {
        let text = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    containerImage: registry.example/a:1\n    containerImagePullPolicy: Always\n    createService: true\n";
        let plan = parse_str(text, &mut fake()).unwrap();
        let [a] = plan.apps.as_slice() else { panic!() };
        assert_eq!(a.image.as_deref(), Some("registry.example/a:1"));
        assert_eq!(a.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(plan.warnings, [
            "dapr.yaml:8: apps[0].createService is a daprd setting with no effect on Envoy sidecars; ignored",
        ]);
        let bad = text.replace("Always", "Sometimes");
        assert_eq!(error(&bad), "dapr.yaml:7: apps[0].containerImagePullPolicy: \"Sometimes\" is not one of Always, IfNotPresent, Never");
        let bad = text.replace("registry.example/a:1", "\"a b\"");
        assert!(error(&bad)
            .starts_with("dapr.yaml:6: apps[0].containerImage: must be an image reference"));
    }

    #[test]
    fn flow_style_files_parse_without_lines() {
        let text = r#"{"version": 1, "apps": [{"appID": "a", "appDirPath": "checkout", "command": ["a"], "comand": 1}]}"#;
        assert_eq!(
            error(text),
            "dapr.yaml: apps[0].comand: unknown key `comand`; did you mean `command`?"
        );
    }
}
