//! A Docker Compose file for a run file, as people deploy Dapr with Compose: each app in a
//! network namespace of its own, shared with its sidecar; the sidecars reach each other by
//! service name (`<app-id>-dapr`) over the Compose network, with mutual TLS.
//!
//! The file is written for both `docker compose` (v2) and Debian's `docker-compose` 1.29: no
//! top-level `name`, conditions in `depends_on` that 1.29 knows. Envoy runs as the official
//! image's own user (`envoy`, uid 101): the sidecar's command starts as root only to copy the
//! app's key into a memory-only directory that user owns, then drops to it with the image's
//! `su-exec` before Envoy starts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::envoy::layout::{container_grpc_port, Container};
use crate::runfile::{AppPlan, Plan};

/// The Envoy version this project is tested with (`.env`), for the default sidecar image.
pub const ENVOY_VERSION: &str = env!("DAPR_ENVOY_ENVOY_VERSION");
/// The image apps run in unless `APP_IMAGE` says otherwise: what Dapr's Python quickstarts use.
pub const DEFAULT_APP_IMAGE: &str = "python:3.11-slim";

/// Where the sidecar reads the mesh files it is given (read-only bind mounts), and where it
/// keeps the copies its own user can read (a tmpfs).
const MOUNTED_CERTS: &str = "/etc/dapr-envoy/mesh";
const RUN_DIR: &str = "/run/dapr-envoy";

#[derive(Debug, Serialize)]
pub struct ComposeFile {
    pub services: BTreeMap<String, Service>,
}

#[derive(Debug, Default, Serialize)]
pub struct Service {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, DependsOn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Serialize)]
pub struct DependsOn {
    pub condition: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: &'static str,
    pub timeout: &'static str,
    pub retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<&'static str>,
}

/// Host paths the compose file refers to, each relative to the compose file's directory.
pub struct Paths<'a> {
    /// The directory of the generated sidecar configs (`<app-id>.yaml` each).
    pub configs: &'a str,
    /// The mesh's certificates (`ca.pem`, `<app-id>.pem`, `<app-id>.key`).
    pub certs: &'a str,
    /// The filter.
    pub wasm: &'a str,
    /// The compose file's directory.
    pub compose_dir: &'a Path,
}

/// The sidecar service of an app: its name is the DNS name other sidecars reach it by.
pub fn sidecar_service(app_id: &str) -> String {
    format!("{app_id}-dapr")
}

/// The compose file for `plan`.
pub fn compose(plan: &Plan, paths: &Paths<'_>) -> Result<ComposeFile, String> {
    let mut services = BTreeMap::new();
    let with_port: Vec<&AppPlan> = plan.apps.iter().filter(|a| a.app_port.is_some()).collect();
    for app in &plan.apps {
        let sidecar = sidecar_service(&app.app_id);
        services.insert(sidecar.clone(), sidecar_of(app, paths));
        services.insert(
            app.app_id.clone(),
            app_service(app, &sidecar, &with_port, paths)?,
        );
    }
    Ok(ComposeFile { services })
}

fn sidecar_of(app: &AppPlan, paths: &Paths<'_>) -> Service {
    let id = &app.app_id;
    let admin = crate::envoy::layout::CONTAINER_ADMIN_PORT;
    // Copy the key and certificates where the envoy user can read them, then drop to it.
    let copy = format!(
        "install -d -o envoy -g envoy -m 0700 {certs} && \
         install -o envoy -g envoy -m 0444 {MOUNTED_CERTS}/ca.pem {MOUNTED_CERTS}/{id}.pem {certs}/ && \
         install -o envoy -g envoy -m 0400 {MOUNTED_CERTS}/{id}.key {certs}/ && \
         exec su-exec envoy envoy -c {dir}/envoy.yaml --concurrency 1 --log-level {level} --disable-hot-restart",
        certs = Container::CERTS,
        dir = Container::DIR,
        level = app.envoy_log_level,
    );
    // Envoy's admin answers HTTP/1.0 with 426: ask in HTTP/1.1, with the connection closed so
    // that `grep` reads to the end.
    let ready = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{admin} && printf 'GET /ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -q LIVE <&3"
    );
    Service {
        image: format!("${{ENVOY_IMAGE:-envoyproxy/envoy:v{ENVOY_VERSION}}}"),
        command: vec!["sh".into(), "-c".into(), copy],
        environment: std::iter::once((
            // The image's entrypoint would run the command as `envoy`; the command drops to
            // it itself once the key is in place.
            "ENVOY_UID".to_string(),
            "0".to_string(),
        ))
        // The tokens the config names by variable (from the run file's `env`).
        .chain(
            crate::envoy::sidecar_env(app)
                .into_iter()
                .map(|(k, v)| (k, literal(&v))),
        )
        .collect(),
        volumes: vec![
            format!(
                "{}/{id}.yaml:{}/envoy.yaml:ro",
                paths.configs,
                Container::DIR
            ),
            format!("{}:{}:ro", paths.wasm, Container::WASM),
            format!("{}/ca.pem:{MOUNTED_CERTS}/ca.pem:ro", paths.certs),
            format!("{}/{id}.pem:{MOUNTED_CERTS}/{id}.pem:ro", paths.certs),
            format!("{}/{id}.key:{MOUNTED_CERTS}/{id}.key:ro", paths.certs),
        ],
        tmpfs: vec![RUN_DIR.to_string()],
        healthcheck: Some(Healthcheck {
            test: vec!["CMD".into(), "bash".into(), "-c".into(), ready],
            interval: "1s",
            timeout: "2s",
            retries: 60,
            start_period: None,
        }),
        ..Service::default()
    }
}

fn app_service(
    app: &AppPlan,
    sidecar: &str,
    with_port: &[&AppPlan],
    paths: &Paths<'_>,
) -> Result<Service, String> {
    let dir = relative_to(paths.compose_dir, &app.dir).ok_or_else(|| {
        format!(
            "{}: appDirPath {} cannot be mounted: it is not below the compose file's directory {}",
            app.app_id,
            app.dir.display(),
            paths.compose_dir.display()
        )
    })?;
    let (http, _, _) = Container::ports(app);
    let mut env: BTreeMap<String, String> = app
        .app_env()
        .into_iter()
        .map(|(k, v)| (k, literal(&v)))
        .collect();
    env.insert("DAPR_HTTP_PORT".into(), http.to_string());
    env.insert(
        "DAPR_GRPC_PORT".into(),
        container_grpc_port(app).to_string(),
    );
    let mut depends_on = BTreeMap::from([(
        sidecar.to_string(),
        DependsOn {
            condition: "service_healthy",
        },
    )]);
    // As `dapr-envoy run` does: apps that call others start once the apps with a port listen.
    if app.app_port.is_none() {
        for other in with_port {
            depends_on.insert(
                other.app_id.clone(),
                DependsOn {
                    condition: "service_healthy",
                },
            );
        }
    }
    let command: Vec<String> = if app.dir.join("requirements.txt").is_file() {
        // A Python app brings its dependencies: install them first, as the quickstarts say to.
        let run = app
            .command
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "pip install --quiet --disable-pip-version-check --no-cache-dir -r requirements.txt && exec {run}"
            ),
        ]
    } else {
        app.command.clone()
    };
    let command = command.iter().map(|c| literal(c)).collect();
    Ok(Service {
        image: format!("${{APP_IMAGE:-{DEFAULT_APP_IMAGE}}}"),
        network_mode: Some(format!("service:{sidecar}")),
        working_dir: Some("/app".into()),
        command,
        environment: env,
        volumes: vec![format!("{dir}:/app:ro")],
        depends_on,
        healthcheck: app.app_port.map(|port| Healthcheck {
            test: vec![
                "CMD".into(),
                "bash".into(),
                "-c".into(),
                format!("exec 3<>/dev/tcp/127.0.0.1/{port}"),
            ],
            interval: "1s",
            timeout: "2s",
            retries: 300,
            start_period: None,
        }),
        ..Service::default()
    })
}

/// `path` relative to `base`, as `./a/b`, when it is below it (both lexically normalized).
pub fn relative_to(base: &Path, path: &Path) -> Option<String> {
    let base = normalize(base);
    let path = normalize(path);
    let rest = path.strip_prefix(&base).ok()?;
    let rest = rest.to_str()?;
    Some(if rest.is_empty() {
        ".".to_string()
    } else {
        format!("./{rest}")
    })
}

fn normalize(p: &Path) -> std::path::PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = std::path::PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A value as Compose must be given it to pass it on unchanged: Compose substitutes variables
/// in `$...`, and `$$` is its escape for a `$`.
fn literal(value: &str) -> String {
    value.replace('$', "$$")
}

/// A word for `sh -c`: as is when it is plain, else in single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_reach_the_container_as_written() {
        assert_eq!(literal("a$b ${C}"), "a$$b $${C}");
        assert_eq!(literal("plain"), "plain");
    }

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("app.py"), "app.py");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn paths_are_relative_to_the_compose_file() {
        let base = Path::new("/repo");
        assert_eq!(
            relative_to(base, Path::new("/repo/samples/./checkout/")),
            Some("./samples/checkout".into())
        );
        assert_eq!(relative_to(base, Path::new("/repo")), Some(".".into()));
        assert_eq!(relative_to(base, Path::new("/elsewhere/x")), None);
        assert_eq!(
            relative_to(base, Path::new("/repo/a/../b")),
            Some("./b".into())
        );
    }
}
