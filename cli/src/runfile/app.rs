//! One app of a run file: its own settings over `common`'s, checked, and the Dapr resources they
//! name (the Configuration, the Resiliency policies) read.

use std::collections::BTreeMap;
use std::path::Path;

use dapr_invoke::ids::validate_name;
use serde_saphyr::Spanned;

use super::keys::Settings;
use super::ports::Explicit;
use super::{joined, AppHealth, AppPlan, AppProtocol, LogDest, RequestedPorts, RunFileError};
use crate::yaml::{line_of, Plain};

/// What reading an app needs besides its settings.
pub struct Context<'a> {
    pub file: &'a str,
    pub base: &'a Path,
    pub common: Option<&'a Settings>,
    pub namespace: &'a str,
}

/// An app as read, before its open ports are chosen.
pub struct Read {
    pub plan: AppPlan,
    pub explicit: Vec<Explicit>,
    pub id_line: Option<usize>,
}

/// A setting as it applies to the app: its own, else `common`'s, with the key path and line.
struct Picked<'v, T> {
    key: String,
    line: Option<usize>,
    value: &'v T,
}

/// Reads `apps[i]`; ignored keys are added to `warnings`, notes to `notes`.
pub fn read(
    i: usize,
    app: &Spanned<Settings>,
    cx: &Context<'_>,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<Read, RunFileError> {
    let err = |line, key: &str, message: String| RunFileError::new(cx.file, line, key, message);
    let field = |k: &str| format!("apps[{i}].{k}");
    let item_line = line_of(app);
    let m = &app.value;
    let mut ignored_keys = m.ignored();
    ignored_keys.sort_by_key(|(_, line)| *line);
    for (key, line) in ignored_keys {
        warnings.push(ignored(cx.file, line, &field(key)));
    }
    // The app's own setting, else common's.
    fn pick<'v, T>(
        i: usize,
        name: &str,
        own: &'v Option<Spanned<T>>,
        common: Option<&'v Option<Spanned<T>>>,
    ) -> Option<Picked<'v, T>> {
        match (own, common) {
            (Some(v), _) => Some(Picked {
                key: format!("apps[{i}].{name}"),
                line: line_of(v),
                value: &v.value,
            }),
            (None, Some(Some(v))) => Some(Picked {
                key: format!("common.{name}"),
                line: line_of(v),
                value: &v.value,
            }),
            _ => None,
        }
    }
    let common = cx.common;

    let Some(id) = &m.app_id else {
        return Err(err(
            item_line,
            &field("appID"),
            "is missing: every app needs an id".into(),
        ));
    };
    let app_id = id.value.0.clone();
    validate_name(&app_id)
        .map_err(|e| err(line_of(id), &field("appID"), format!("{app_id:?} {e}")))?;

    let Some(dir) = &m.app_dir_path else {
        return Err(err(
            item_line,
            &field("appDirPath"),
            "is missing: the directory the app runs in".into(),
        ));
    };
    let dir_line = line_of(dir);
    let dir = joined(cx.base, &dir.value.0);
    if !dir.is_dir() {
        return Err(err(
            dir_line,
            &field("appDirPath"),
            format!("{} is not a directory", dir.display()),
        ));
    }

    let command = match &m.command {
        None => {
            return Err(err(
                item_line,
                &field("command"),
                format!("is missing: how to start {app_id:?}"),
            ))
        }
        Some(c) if c.value.0.is_empty() => {
            return Err(err(line_of(c), &field("command"), "is empty".into()))
        }
        Some(c) => c.value.0.clone(),
    };

    // Common's variables, then the app's own on top.
    let mut env = BTreeMap::new();
    for vars in [common.and_then(|c| c.env.as_ref()), m.env.as_ref()]
        .into_iter()
        .flatten()
    {
        env.extend(vars.value.iter().map(|(k, v)| (k.0.clone(), v.0.clone())));
    }

    let port = |p: &Option<Spanned<super::keys::Port>>| p.as_ref().map(|p| p.value.0);
    let app_port = port(&m.app_port);
    let requested = RequestedPorts {
        http: port(&m.dapr_http_port),
        inbound: port(&m.dapr_internal_grpc_port),
        metrics: port(&m.metrics_port),
        grpc: port(&m.dapr_grpc_port),
    };
    let explicit = [
        ("appPort", &m.app_port),
        ("daprHTTPPort", &m.dapr_http_port),
        ("daprInternalGRPCPort", &m.dapr_internal_grpc_port),
        ("metricsPort", &m.metrics_port),
        ("daprGRPCPort", &m.dapr_grpc_port),
    ]
    .into_iter()
    .filter_map(|(key, p)| {
        p.as_ref().map(|p| Explicit {
            key,
            port: p.value.0,
            line: line_of(p),
        })
    })
    .collect();

    let text =
        |name: &str, own: &'_ Option<Spanned<Plain>>, c: Option<&'_ Option<Spanned<Plain>>>| {
            pick(i, name, own, c).map(|p| (p.value.0.clone(), p.line, p.key))
        };
    let protocol = match text(
        "appProtocol",
        &m.app_protocol,
        common.map(|c| &c.app_protocol),
    ) {
        None => AppProtocol::Http,
        Some((v, line, key)) => match v.to_ascii_lowercase().as_str() {
            "http" => AppProtocol::Http,
            "https" => AppProtocol::Https,
            "h2c" => AppProtocol::H2c,
            "grpc" => AppProtocol::Grpc,
            "grpcs" => AppProtocol::Grpcs,
            other => {
                return Err(err(
                    line,
                    &key,
                    format!("{other:?} is not one of http, https, h2c, grpc, grpcs"),
                ))
            }
        },
    };
    let envoy_log_level = match text("logLevel", &m.log_level, common.map(|c| &c.log_level)) {
        None => "info",
        Some((v, line, key)) => match v.as_str() {
            "info" => "info",
            "debug" => "debug",
            "warn" | "warning" => "warn",
            "error" => "error",
            "fatal" => "critical",
            other => {
                return Err(err(
                    line,
                    &key,
                    format!("{other:?} is not one of debug, info, warn, error, fatal"),
                ))
            }
        },
    };
    let dest = |name: &str,
                own: &Option<Spanned<Plain>>,
                c: Option<&Option<Spanned<Plain>>>,
                default: LogDest|
     -> Result<LogDest, RunFileError> {
        match text(name, own, c) {
            None => Ok(default),
            Some((v, line, key)) => match v.as_str() {
                "console" => Ok(LogDest::Console),
                "file" => Ok(LogDest::File),
                "fileAndConsole" => Ok(LogDest::FileAndConsole),
                other => Err(err(
                    line,
                    &key,
                    format!("{other:?} is not one of console, file, fileAndConsole"),
                )),
            },
        }
    };
    let app_log = dest(
        "appLogDestination",
        &m.app_log_destination,
        common.map(|c| &c.app_log_destination),
        LogDest::FileAndConsole,
    )?;
    let envoy_log = dest(
        "daprdLogDestination",
        &m.daprd_log_destination,
        common.map(|c| &c.daprd_log_destination),
        LogDest::File,
    )?;

    // Limits, as daprd's flags of the same names.
    let max_concurrency = match pick(
        i,
        "appMaxConcurrency",
        &m.app_max_concurrency,
        common.map(|c| &c.app_max_concurrency),
    ) {
        // Dapr's -1 (its default) and 0 mean no limit.
        None => None,
        Some(p) if *p.value <= 0 => None,
        Some(p) => Some(
            u32::try_from(*p.value)
                .map_err(|_| err(p.line, &p.key, format!("{} is too large", p.value)))?,
        ),
    };
    let max_body_bytes = pick(
        i,
        "maxBodySize",
        &m.max_body_size,
        common.map(|c| &c.max_body_size),
    )
    .map(|p| p.value.0);
    let read_buffer_bytes = pick(
        i,
        "readBufferSize",
        &m.read_buffer_size,
        common.map(|c| &c.read_buffer_size),
    )
    .map(|p| p.value.0);
    let health = health(i, m, common, &err)?;
    // Its image in a pod (`dapr run -k`'s keys).
    let image = match &m.container_image {
        Some(i) if i.value.0.trim().is_empty() || i.value.0.contains(char::is_whitespace) => {
            return Err(err(
                line_of(i),
                &field("containerImage"),
                "must be an image reference, like registry.example/checkout:1.0".into(),
            ))
        }
        other => other.as_ref().map(|i| i.value.0.clone()),
    };
    let image_pull_policy = match &m.container_image_pull_policy {
        Some(p) if !["Always", "IfNotPresent", "Never"].contains(&p.value.0.as_str()) => {
            return Err(err(
                line_of(p),
                &field("containerImagePullPolicy"),
                format!("{:?} is not one of Always, IfNotPresent, Never", p.value.0),
            ))
        }
        other => other.as_ref().map(|p| p.value.0.clone()),
    };

    // The app's Dapr Configuration: access control, and the trust domain the app is in.
    let mut trust_domain = dapr_invoke::names::DEFAULT_TRUST_DOMAIN.to_string();
    let mut access_control = None;
    let mut tracing = None;
    let mut metrics = crate::dapr_config::Metrics::default();
    if let Some((rel, line, key)) = text(
        "configFilePath",
        &m.config_file_path,
        common.map(|c| &c.config_file_path),
    ) {
        let path = joined(cx.base, &rel);
        if !path.is_file() {
            return Err(err(line, &key, format!("{} is not a file", path.display())));
        }
        let config = crate::dapr_config::load(&path)?;
        warnings.extend(config.warnings);
        if let Some(td) = config.trust_domain {
            trust_domain = td;
        }
        access_control = config.access_control;
        tracing = config.tracing;
        metrics = config.metrics;
    }

    // Resources: the app's own paths, else common's; Resiliency resources are read from them.
    let resources = pick(
        i,
        "resourcesPaths",
        &m.resources_paths,
        common.map(|c| &c.resources_paths),
    )
    .or_else(|| {
        pick(
            i,
            "resourcesPath",
            &m.resources_path,
            common.map(|c| &c.resources_path),
        )
    });
    let mut dirs = Vec::new();
    if let Some(r) = &resources {
        for p in &r.value.0 {
            let dir = joined(cx.base, p);
            if !dir.is_dir() {
                return Err(err(
                    r.line,
                    &r.key,
                    format!("{} is not a directory", dir.display()),
                ));
            }
            dirs.push(dir);
        }
    }
    let resiliency = crate::resiliency::load(&dirs, &app_id)?;
    warnings.extend(resiliency.warnings.iter().cloned());
    notes.extend(resiliency.notes.iter().cloned());

    Ok(Read {
        plan: AppPlan {
            app_id,
            dir,
            command,
            env,
            app_port,
            protocol,
            http_port: 0,
            inbound_port: 0,
            metrics_port: 0,
            admin_port: 0,
            grpc_port: 0,
            requested,
            envoy_log_level,
            app_log,
            envoy_log,
            access_control,
            tracing,
            metrics,
            resiliency,
            trust_domain,
            namespace: cx.namespace.to_string(),
            max_concurrency,
            max_body_bytes,
            read_buffer_bytes,
            health,
            image,
            image_pull_policy,
        },
        explicit,
        id_line: line_of(id),
    })
}

/// Dapr's app health check settings, with daprd's defaults (path `/healthz`, every 5 s, 500 ms
/// per probe, 3 failures) for the ones not set, and its rules: values of 0 or less are the
/// defaults, and a probe may not take longer than the interval.
fn health(
    i: usize,
    m: &Settings,
    common: Option<&Settings>,
    err: &dyn Fn(Option<usize>, &str, String) -> RunFileError,
) -> Result<Option<AppHealth>, RunFileError> {
    use std::time::Duration;
    // A setting from the app, else from `common`: its value, line and key path.
    fn either<'v, T>(
        i: usize,
        name: &str,
        own: &'v Option<Spanned<T>>,
        common: Option<&'v Option<Spanned<T>>>,
    ) -> Option<(&'v T, Option<usize>, String)> {
        match (own, common) {
            (Some(v), _) => Some((&v.value, line_of(v), format!("apps[{i}].{name}"))),
            (None, Some(Some(v))) => Some((&v.value, line_of(v), format!("common.{name}"))),
            _ => None,
        }
    }
    let enabled = either(
        i,
        "enableAppHealthCheck",
        &m.enable_app_health_check,
        common.map(|c| &c.enable_app_health_check),
    );
    if !enabled.is_some_and(|(on, _, _)| *on) {
        return Ok(None);
    }
    let positive = |v: Option<(&i64, Option<usize>, String)>, default: u64| match v {
        Some((n, _, _)) if *n > 0 => n.unsigned_abs(),
        _ => default,
    };
    let interval_s = positive(
        either(
            i,
            "appHealthProbeInterval",
            &m.app_health_probe_interval,
            common.map(|c| &c.app_health_probe_interval),
        ),
        5,
    );
    let timeout = either(
        i,
        "appHealthProbeTimeout",
        &m.app_health_probe_timeout,
        common.map(|c| &c.app_health_probe_timeout),
    );
    let timeout_where = timeout.as_ref().map(|(_, l, k)| (*l, k.clone()));
    let timeout_ms = positive(timeout, 500);
    if timeout_ms > interval_s.saturating_mul(1000) {
        let (line, key) =
            timeout_where.unwrap_or((None, format!("apps[{i}].appHealthProbeTimeout")));
        return Err(err(
            line,
            &key,
            format!(
                "{timeout_ms} ms is longer than the probe interval ({interval_s} s); daprd refuses it too"
            ),
        ));
    }
    let threshold = either(
        i,
        "appHealthThreshold",
        &m.app_health_threshold,
        common.map(|c| &c.app_health_threshold),
    );
    let threshold_where = threshold.as_ref().map(|(_, l, k)| (*l, k.clone()));
    let threshold = u32::try_from(positive(threshold, 3)).map_err(|_| {
        let (line, key) = threshold_where.unwrap_or_default();
        err(line, &key, "is too large".into())
    })?;
    let mut path = either(
        i,
        "appHealthCheckPath",
        &m.app_health_check_path,
        common.map(|c| &c.app_health_check_path),
    )
    .map_or_else(|| "/healthz".to_string(), |(p, _, _)| p.0.clone());
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(Some(AppHealth {
        path,
        interval: Duration::from_secs(interval_s),
        timeout: Duration::from_millis(timeout_ms),
        threshold,
    }))
}

/// The warning for a daprd setting that has no effect here.
pub fn ignored(file: &str, line: Option<usize>, key: &str) -> String {
    let at = line
        .map(|l| format!("{file}:{l}"))
        .unwrap_or_else(|| file.to_string());
    format!("{at}: {key} is a daprd setting with no effect on Envoy sidecars; ignored")
}
