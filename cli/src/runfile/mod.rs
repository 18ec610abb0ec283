//! Dapr's multi-app run file (`dapr run -f`): parsed, checked and resolved into a [`Plan`] of
//! apps with every port and path decided.
//!
//! The format is Dapr's: `version`, `name`, `common` (settings shared by all apps) and `apps`
//! (`appID`, `appDirPath`, `command`, `appPort`, `daprHTTPPort`, `env`, ...). Every key Dapr
//! documents is known ([`keys`]): the ones that mean something for Envoy sidecars are used, the
//! others are accepted with a warning, and a key Dapr does not know (a typo) is an error that
//! names the key and its line.

mod app;
mod keys;
mod ports;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dapr_invoke::ids::validate_name;
use dapr_invoke::names::DEFAULT_NAMESPACE;

pub use ports::{LocalPorts, Ports, Sequential};

/// A problem with the run file (or a file it names), located as precisely as we can.
pub type RunFileError = crate::yaml::FileError;

/// How the sidecar talks to its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    Http,
    /// HTTP/1.1 over TLS to the app (its certificate is not verified, as daprd does not).
    Https,
    /// HTTP/2 cleartext.
    H2c,
    /// gRPC: HTTP/2 cleartext.
    Grpc,
    /// gRPC over TLS.
    Grpcs,
}

impl AppProtocol {
    /// The name Dapr uses (`appProtocol`, `APP_PROTOCOL`, the metadata API).
    pub fn name(self) -> &'static str {
        match self {
            AppProtocol::Http => "http",
            AppProtocol::Https => "https",
            AppProtocol::H2c => "h2c",
            AppProtocol::Grpc => "grpc",
            AppProtocol::Grpcs => "grpcs",
        }
    }

    /// Whether the sidecar speaks HTTP/2 to the app.
    pub fn http2(self) -> bool {
        matches!(
            self,
            AppProtocol::H2c | AppProtocol::Grpc | AppProtocol::Grpcs
        )
    }

    /// Whether the app serves gRPC (its callers are checked by full method name).
    pub fn grpc(self) -> bool {
        matches!(self, AppProtocol::Grpc | AppProtocol::Grpcs)
    }

    /// Whether the sidecar reaches the app over TLS.
    pub fn tls(self) -> bool {
        matches!(self, AppProtocol::Https | AppProtocol::Grpcs)
    }
}

/// Dapr's app health check (`enableAppHealthCheck` and its settings): the app's sidecar probes
/// it, and while it is unhealthy no call reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHealth {
    /// The path probed with GET (HTTP apps); gRPC apps get the gRPC health check.
    pub path: String,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    /// Failed probes in a row that make the app unhealthy.
    pub threshold: u32,
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
    /// `metricsPort`: the metrics listener.
    pub metrics: Option<u16>,
    /// `daprGRPCPort`.
    pub grpc: Option<u16>,
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
    /// The metrics listener (`metricsPort` when given): Dapr's metrics and Envoy's own in
    /// Prometheus' format at `/stats/prometheus`, and `/ready`.
    pub metrics_port: u16,
    /// Envoy's admin interface, on loopback (whoever reaches it can stop Envoy).
    pub admin_port: u16,
    /// The gRPC listener: what the app's gRPC clients call (`DAPR_GRPC_PORT`), Dapr's gRPC
    /// proxying.
    pub grpc_port: u16,
    /// The ports the run file itself sets; the three above are these, or ones found free.
    pub requested: RequestedPorts,
    /// Envoy's log level, from Dapr's `logLevel`.
    pub envoy_log_level: &'static str,
    pub app_log: LogDest,
    pub envoy_log: LogDest,
    /// `spec.accessControl` of the app's Dapr Configuration (`configFilePath`): the policy its
    /// sidecar enforces on callers.
    pub access_control: Option<dapr_invoke::acl::RawAccessControl>,
    /// `spec.tracing` of the app's Dapr Configuration: its sidecar's spans and where they go.
    pub tracing: Option<crate::tracing::Tracing>,
    /// `spec.metric` of the app's Dapr Configuration: Dapr's metrics on or off, and buckets.
    pub metrics: crate::dapr_config::Metrics,
    /// The Resiliency policies that apply to this app's calls, by target app
    /// (from the YAML files in `resourcesPath` / `resourcesPaths`).
    pub resiliency: crate::resiliency::Policies,
    /// The SPIFFE trust domain the app's identity is in: its Configuration's
    /// `spec.accessControl.trustDomain` (lowercased), else Dapr's `public`.
    pub trust_domain: String,
    /// The app's namespace: the runner's `NAMESPACE` environment variable, else `default`
    /// (see [`namespace_from`]).
    pub namespace: String,
    /// `appMaxConcurrency`: at most this many calls in flight to the app (more wait).
    pub max_concurrency: Option<u32>,
    /// `maxBodySize`: the largest request body the app's sidecar accepts from it, in bytes.
    pub max_body_bytes: Option<u64>,
    /// `readBufferSize`: the most header bytes the app's sidecar accepts from it.
    pub read_buffer_bytes: Option<u64>,
    /// The app health check, when enabled.
    pub health: Option<AppHealth>,
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
        env.insert("DAPR_GRPC_PORT".to_string(), self.grpc_port.to_string());
        env.insert("APP_PROTOCOL".to_string(), self.protocol.name().to_string());
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
    /// Settings that were ignored (daprd-only keys, sections with no Envoy counterpart), one
    /// line each.
    pub warnings: Vec<String>,
    /// Where the sidecars do something other than Dapr would, or skip a file, one line each.
    pub notes: Vec<String>,
}

/// Reads and resolves a run file from disk. The apps' namespace is the runner's `NAMESPACE`
/// environment variable, as daprd's is (see [`namespace_from`]).
pub fn load(path: &Path, ports: &mut dyn Ports) -> Result<Plan, RunFileError> {
    let shown = crate::yaml::shown(path);
    let text = crate::yaml::read(path, "the run file")?;
    let base = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let namespace = namespace_from(std::env::var("NAMESPACE").ok(), &shown)?;
    parse_in(&text, &shown, &base, ports, &namespace)
}

/// The namespace of every app of a run: the `NAMESPACE` environment variable the runner was
/// started with, else `default`. This is what self-hosted Dapr does: `dapr run` starts daprd
/// with its own environment, and daprd reads `NAMESPACE` from it (unset: `default`). A run
/// file's `env` goes to the app only, never to daprd, so a `NAMESPACE` there does not change
/// the sidecar's namespace here either. An empty `NAMESPACE` counts as unset, as Dapr's resource
/// loader reads it.
pub fn namespace_from(var: Option<String>, file: &str) -> Result<String, RunFileError> {
    match var.filter(|ns| !ns.is_empty()) {
        None => Ok(DEFAULT_NAMESPACE.to_string()),
        Some(ns) => match validate_name(&ns) {
            Ok(()) => Ok(ns),
            Err(e) => Err(RunFileError::new(
                file,
                None,
                "NAMESPACE",
                format!("the environment variable is {ns:?}, which {e}"),
            )),
        },
    }
}

/// Parses and resolves run-file text in the default namespace; `base` is the directory
/// relative paths start from.
#[cfg(test)]
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    ports: &mut dyn Ports,
) -> Result<Plan, RunFileError> {
    parse_in(text, file, base, ports, DEFAULT_NAMESPACE)
}

/// Parses and resolves run-file text, every app in `namespace`.
pub fn parse_in(
    text: &str,
    file: &str,
    base: &Path,
    ports: &mut dyn Ports,
    namespace: &str,
) -> Result<Plan, RunFileError> {
    let err = |line: Option<usize>, key: &str, message: String| {
        RunFileError::new(file, line, key, message)
    };
    let doc: keys::RunFile = match crate::yaml::from_str(text, file) {
        Ok(doc) => doc,
        Err(mut found) => {
            if found.key.is_empty() && found.message == "must be a mapping" {
                found.line = None;
                found.message = "expected a mapping with `version` and `apps`".into();
            }
            return Err(found);
        }
    };
    let mut warnings = Vec::new();
    let mut notes = Vec::new();

    if let Some(v) = &doc.version {
        if v.value.0 != "1" {
            return Err(err(
                crate::yaml::line_of(v),
                "version",
                format!("only version 1 is known, not {}", v.value.0),
            ));
        }
    }
    let name = doc.name.as_ref().map(|n| n.value.0.clone());

    let common = doc.common.as_ref().map(|c| &c.value);
    if let Some(common) = common {
        if let Some((key, line)) = common.app_only().into_iter().next() {
            return Err(err(
                line,
                &format!("common.{key}"),
                format!("`{key}` belongs to each app, not to `common`"),
            ));
        }
        let mut ignored_keys = common.ignored();
        ignored_keys.sort_by_key(|(_, line)| *line);
        for (key, line) in ignored_keys {
            warnings.push(app::ignored(file, line, &format!("common.{key}")));
        }
    }

    let apps = match &doc.apps {
        Some(apps) if !apps.value.is_empty() => &apps.value,
        Some(apps) => {
            return Err(err(
                crate::yaml::line_of(apps),
                "apps",
                "lists no app".into(),
            ))
        }
        None => return Err(err(None, "apps", "is missing: list the apps to run".into())),
    };

    let cx = app::Context {
        file,
        base,
        common,
        namespace,
    };
    let mut read = Vec::with_capacity(apps.len());
    for (i, a) in apps.iter().enumerate() {
        read.push(app::read(i, a, &cx, &mut warnings, &mut notes)?);
    }

    // Duplicate ids.
    for (i, a) in read.iter().enumerate() {
        if let Some((j, first)) = read
            .iter()
            .enumerate()
            .take(i)
            .find(|(_, b)| b.plan.app_id == a.plan.app_id)
        {
            return Err(err(
                a.id_line,
                &format!("apps[{i}].appID"),
                format!(
                    "{:?} is also the id of apps[{j}]{}",
                    a.plan.app_id,
                    first
                        .id_line
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default()
                ),
            ));
        }
    }

    let explicit: Vec<_> = read.iter().map(|r| r.explicit.clone()).collect();
    let mut apps: Vec<AppPlan> = read.into_iter().map(|r| r.plan).collect();
    ports::resolve(file, &mut apps, &explicit, ports)?;

    // Default Resiliency policies apply to every target app no policy names.
    let ids: Vec<String> = apps.iter().map(|a| a.app_id.clone()).collect();
    for a in &mut apps {
        a.resiliency.apply_defaults(&ids);
    }

    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    notes.retain(|n| seen.insert(n.clone()));
    Ok(Plan {
        name,
        base_dir: base.to_path_buf(),
        apps,
        warnings,
        notes,
    })
}

/// `base/rel` without `.` components, for paths shown in messages and passed to Envoy.
fn joined(base: &Path, rel: impl AsRef<Path>) -> PathBuf {
    base.join(rel)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
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
    fn limits_and_the_app_health_check_as_dapr_reads_them() {
        let plan = parse_str(
            "version: 1
common:
  appHealthThreshold: 5
  maxBodySize: 1Ki
apps:
  - appID: a
    appDirPath: checkout
    command: [a]
    appPort: 7000
    appProtocol: HTTPS
    enableAppHealthCheck: true
    appHealthCheckPath: ready
    appMaxConcurrency: 2
    readBufferSize: 8192
  - appID: b
    appDirPath: checkout
    command: [b]
    appMaxConcurrency: -1
    enableAppHealthCheck: false
    appHealthProbeInterval: 0
",
            &mut fake(),
        )
        .unwrap();
        let [a, b] = plan.apps.as_slice() else {
            panic!()
        };
        assert_eq!(a.protocol, AppProtocol::Https);
        assert_eq!(
            a.health,
            Some(AppHealth {
                path: "/ready".into(),
                interval: std::time::Duration::from_secs(5),
                timeout: std::time::Duration::from_millis(500),
                threshold: 5,
            })
        );
        assert_eq!(
            (a.max_concurrency, a.max_body_bytes, a.read_buffer_bytes),
            (Some(2), Some(1024), Some(8192))
        );
        assert_eq!((b.max_concurrency, b.health.as_ref()), (None, None));
        assert_eq!(b.max_body_bytes, Some(1024), "from common");
    }

    #[test]
    fn sizes_are_kubernetes_quantities() {
        use super::keys::Quantity;
        for (raw, want) in [
            ("4096", Ok(4096)),
            ("4Ki", Ok(4096)),
            ("4Mi", Ok(4 << 20)),
            ("1Gi", Ok(1 << 30)),
            ("4k", Ok(4000)),
            ("4M", Ok(4_000_000)),
            ("0", Err(())),
            ("4 Mi", Err(())),
            ("Mi", Err(())),
            ("4mi", Err(())),
            ("99999999999Ti", Err(())),
        ] {
            assert_eq!(
                Quantity::parse(raw).map(|q| q.0).map_err(drop),
                want,
                "{raw}"
            );
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
        assert_eq!(a.protocol, AppProtocol::Grpc);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let base = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n";
        let cases: &[(&str, &str)] = &[
            ("version: 1\napps: [", "dapr.yaml:2: not valid YAML: unclosed bracket"),
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
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    appProtocol: spdy\n",
             "dapr.yaml:6: apps[0].appProtocol: \"spdy\" is not one of http, https, h2c, grpc, grpcs"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    maxBodySize: 4Xi\n",
             "dapr.yaml:6: apps[0].maxBodySize: \"4Xi\" is not a size like 4Mi, 512Ki or 4096"),
            ("version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    enableAppHealthCheck: true\n    appHealthProbeInterval: 1\n    appHealthProbeTimeout: 1500\n",
             "dapr.yaml:8: apps[0].appHealthProbeTimeout: 1500 ms is longer than the probe interval (1 s)"),
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
        let in_common = text.replace("apps:\n", "common:\n  containerImage: x\napps:\n");
        assert!(
            error(&in_common).contains("containerImage"),
            "{}",
            error(&in_common)
        );
    }

    #[test]
    fn ignored_daprd_settings_warn_with_their_line() {
        let text = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    enableProfiling: true\n    daprGRPCPort: 50001\n";
        let plan = parse_str(text, &mut fake()).unwrap();
        assert_eq!(plan.warnings, [
            "dapr.yaml:6: apps[0].enableProfiling is a daprd setting with no effect on Envoy sidecars; ignored",
        ]);
        // The gRPC port is Dapr's gRPC API port, given to the app.
        assert_eq!(plan.apps[0].grpc_port, 50001);
        assert_eq!(plan.apps[0].app_env()["DAPR_GRPC_PORT"], "50001");
    }

    #[test]
    fn trust_domain_from_the_configuration_and_namespace_from_the_environment() {
        let d = dir();
        std::fs::write(
            d.path().join("config.yaml"),
            "kind: Configuration\nspec:\n  accessControl:\n    defaultAction: allow\n    trustDomain: Example.ORG\n",
        )
        .unwrap();
        let text = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    configFilePath: config.yaml\n  - appID: b\n    appDirPath: checkout\n    command: [b]\n";
        let plan = parse_in(text, "dapr.yaml", d.path(), &mut fake(), "prod").unwrap();
        let got: Vec<(&str, &str)> = plan
            .apps
            .iter()
            .map(|a| (a.trust_domain.as_str(), a.namespace.as_str()))
            .collect();
        assert_eq!(got, [("example.org", "prod"), ("public", "prod")]);
        let plan = parse(text, "dapr.yaml", d.path(), &mut fake()).unwrap();
        assert_eq!(plan.apps[1].namespace, "default");

        assert_eq!(namespace_from(None, "dapr.yaml").unwrap(), "default");
        assert_eq!(
            namespace_from(Some(String::new()), "dapr.yaml").unwrap(),
            "default"
        );
        assert_eq!(
            namespace_from(Some("prod".into()), "dapr.yaml").unwrap(),
            "prod"
        );
        assert!(namespace_from(Some("a.b".into()), "dapr.yaml")
            .unwrap_err()
            .to_string()
            .starts_with("dapr.yaml: NAMESPACE: the environment variable is \"a.b\", which has the character '.'"));
    }

    #[test]
    fn configuration_errors_name_their_own_file_and_line() {
        let d = dir();
        let config = d.path().join("config.yaml");
        let text = "version: 1\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n    configFilePath: config.yaml\n";
        for (yaml, want) in [
            ("kind: Configuration\nspec:\n  acessControl: {}\n",
             ":3: spec.acessControl: unknown key `acessControl`; did you mean `accessControl`?"),
            ("kind: Configuration\nspec:\n  accessControl:\n    defaultAction: deny\n    policies:\n      - appId: x\n        namespace: default\n        trustDomain: public\n        operation: []\n",
             ":9: spec.accessControl.policies[0].operation: unknown key `operation`"),
            ("kind: Configuration\nspec:\n  accessControl:\n    defaultAction: deny\n    policies:\n      - appId: x.y\n        namespace: default\n        trustDomain: public\n",
             ":6: spec.accessControl.policies[0].appId: "),
            ("kind: Configuration\nspec:\n  accessControl:\n    defaultAction: allow\n    trustDomain: a/b\n",
             ":5: spec.accessControl.trustDomain: has the character '/'"),
            ("kind: Configuration\nmetadata: {name: c}\nspec: {tracing: {samplingRate: \"1\"}, mtls: {enabled: true}\n",
             ":3: not valid YAML"),
            ("kind: Configuration\n---\nkind: Configuration\n", ":3: a second document"),
        ] {
            std::fs::write(&config, yaml).unwrap();
            let got = parse(text, "dapr.yaml", d.path(), &mut fake()).unwrap_err().to_string();
            let want = format!("{}{want}", config.display());
            assert!(got.starts_with(&want), "{yaml}\ngot:  {got}\nwant: {want}");
        }
    }

    #[test]
    fn default_resiliency_policies_reach_every_other_app_of_the_run() {
        let d = dir();
        std::fs::write(
            d.path().join("components/resiliency.yaml"),
            "kind: Resiliency\nspec:\n  policies:\n    timeouts: {DefaultTimeoutPolicy: 4s, fast: 500us}\n  targets:\n    apps:\n      b: {timeout: fast}\n",
        )
        .unwrap();
        let text = "version: 1\ncommon:\n  resourcesPath: components\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n  - appID: b\n    appDirPath: checkout\n    command: [b]\n  - appID: c\n    appDirPath: checkout\n    command: [c]\n";
        let plan = parse(text, "dapr.yaml", d.path(), &mut fake()).unwrap();
        let a = &plan.apps[0].resiliency.targets;
        let timeouts: Vec<(&str, Option<std::time::Duration>)> =
            a.iter().map(|(k, v)| (k.as_str(), v.timeout)).collect();
        assert_eq!(
            timeouts,
            [
                ("a", Some(std::time::Duration::from_secs(4))),
                ("b", Some(std::time::Duration::from_micros(500))),
                ("c", Some(std::time::Duration::from_secs(4))),
            ]
        );
    }

    #[test]
    fn notes_and_warnings_are_apart() {
        let d = dir();
        std::fs::write(
            d.path().join("components/resiliency.yaml"),
            "kind: Resiliency\nspec:\n  policies:\n    retries: {forever: {}}\n  targets:\n    apps:\n      b: {retry: forever}\n    components: {}\n",
        )
        .unwrap();
        std::fs::write(d.path().join("components/state.yaml"), "kind: Component\n").unwrap();
        let text = "version: 1\ncommon:\n  resourcesPath: components\n  enableProfiling: true\napps:\n  - appID: a\n    appDirPath: checkout\n    command: [a]\n  - appID: b\n    appDirPath: checkout\n    command: [b]\n";
        let plan = parse(text, "dapr.yaml", d.path(), &mut fake()).unwrap();
        let short = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|l| l.rsplit('/').next().unwrap_or(l).to_string())
                .collect()
        };
        assert_eq!(short(&plan.warnings), [
            "dapr.yaml:4: common.enableProfiling is a daprd setting with no effect on Envoy sidecars; ignored",
            "resiliency.yaml:8: spec.targets.components has no effect on Envoy sidecars; ignored",
        ]);
        // Each note once, however many apps read the same resources.
        assert_eq!(short(&plan.notes), [
            "state.yaml:1: a Component has no effect on Envoy sidecars; skipped",
            "resiliency.yaml:4: retry policy \"forever\" retries forever in Dapr; Envoy retries are bounded, so calls to \"b\" are retried 10 times",
        ]);
    }

    #[test]
    fn flow_style_files_parse_with_lines() {
        let text = r#"{"version": 1, "apps": [{"appID": "a", "appDirPath": "checkout", "command": ["a"], "comand": 1}]}"#;
        assert_eq!(
            error(text),
            "dapr.yaml:1: apps[0].comand: unknown key `comand`; did you mean `command`?"
        );
    }
}
