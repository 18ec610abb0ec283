//! `dapr-envoy`: run a Dapr multi-app run file (`dapr run -f`) with Envoy sidecars that run the
//! dapr-invoke filter, or write the Envoy configs such a run uses.

mod certs;
mod compose;
mod dapr_config;
mod envoy;
mod generate;
mod kubernetes;
mod list;
mod locate;
mod resiliency;
mod runfile;
mod supervise;
mod tracing;
mod yaml;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dapr-envoy",
    version,
    about = "Dapr's multi-app run, with Envoy sidecars"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every app of a run file, each with its own Envoy sidecar, until Ctrl-C
    Run {
        /// The run file, or a directory holding dapr.yaml
        #[arg(short = 'f', long = "run-file", value_name = "FILE")]
        file: PathBuf,
        /// The Envoy binary (default: $ENVOY_BIN, then envoy on PATH)
        #[arg(long, value_name = "PATH")]
        envoy: Option<PathBuf>,
        /// The dapr-invoke filter (default: found beside this binary or in its repository)
        #[arg(long, value_name = "PATH")]
        wasm: Option<PathBuf>,
        /// Stop everything when this app exits, with its exit status
        #[arg(long, value_name = "APP_ID")]
        exit_with: Option<String>,
        /// Where generated configs and logs go (default: .dapr-envoy beside the run file)
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
        /// Seconds to wait for each app's appPort before starting apps that have none
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        app_port_timeout: u64,
        /// How many times in a row a sidecar that dies is started again (after 0.1 s, then
        /// twice as long each time, at most 5 s) before the run stops; 0: a sidecar that dies
        /// stops the run
        #[arg(long, value_name = "N", default_value_t = supervise::SIDECAR_RESTARTS)]
        sidecar_restarts: u32,
    },
    /// Make a certificate per app id, and the mesh CA (ca.pem, ca.key) unless DIR has one
    /// (for Envoy configs you run yourself)
    Certs {
        /// The directory to write ca.pem, <app-id>.pem and <app-id>.key into
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The SPIFFE trust domain
        #[arg(long, default_value = certs::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// The namespace in the SPIFFE ids
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The app ids to make certificates for
        #[arg(required = true, value_name = "APP_ID")]
        apps: Vec<String>,
    },
    /// Write the Envoy config of every app's sidecar, for running Envoy yourself on this machine
    Config {
        /// The run file, or a directory holding dapr.yaml
        #[arg(short = 'f', long = "run-file", value_name = "FILE")]
        file: PathBuf,
        /// The directory to write <app-id>.yaml files into
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The .wasm path written into the configs (default: the one `run` would use)
        #[arg(long, value_name = "PATH")]
        wasm: Option<PathBuf>,
        /// The certificates directory written into the configs, made there when missing
        /// (default: DIR/certs)
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
    },
    /// Write a Docker Compose file running every app with its Envoy sidecar
    Compose {
        /// The run file, or a directory holding dapr.yaml
        #[arg(short = 'f', long = "run-file", value_name = "FILE")]
        file: PathBuf,
        /// The compose file to write (default: docker-compose.yaml beside the run file)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Where the sidecars' configs go (default: envoy-compose/ beside the compose file)
        #[arg(long, value_name = "DIR")]
        configs: Option<PathBuf>,
        /// The mesh's certificates, made there when missing (default: certs/ beside the
        /// compose file)
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
        /// The filter to mount (default: the one `run` would use); below the compose file's
        /// directory
        #[arg(long, value_name = "PATH")]
        wasm: Option<PathBuf>,
    },
    /// Write Kubernetes manifests: per app a Deployment (the app and its Envoy sidecar), the
    /// headless Service <app-id>-dapr, a ConfigMap with the sidecar's config and a Secret with the
    /// app's certificate; the filter in a ConfigMap. Apply with `kubectl apply --server-side -f DIR`
    Kubernetes {
        /// The run file, or a directory holding dapr.yaml
        #[arg(short = 'f', long = "run-file", value_name = "FILE")]
        file: PathBuf,
        /// The directory to write the manifests into
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// An app's image, as APP_ID=IMAGE (repeat for each app); wins over the run file's
        /// `containerImage`
        #[arg(long = "image", value_name = "APP_ID=IMAGE", value_parser = parse_image)]
        images: Vec<(String, String)>,
        /// The DNS name of an app's sidecar; {app-id} and {namespace} are replaced, the port is
        /// the sidecar's inbound port
        #[arg(long, value_name = "TEMPLATE", default_value = envoy::layout::SidecarAddress::KUBERNETES)]
        sidecar_address: String,
        /// The namespace of every app (default: the run file's)
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        /// The SPIFFE trust domain of every app (default: the run file's)
        #[arg(long, value_name = "NAME")]
        trust_domain: Option<String>,
        /// The mesh's certificates, made there when missing and reused after (default: DIR/certs)
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
        /// The filter to put in the ConfigMap (default: the one `run` would use)
        #[arg(long, value_name = "PATH")]
        wasm: Option<PathBuf>,
        /// The sidecar's image
        #[arg(long, value_name = "IMAGE", default_value_t = format!("envoyproxy/envoy:v{}", compose::ENVOY_VERSION))]
        envoy_image: String,
    },
    /// List the apps of the runs going on on this machine, as `dapr list`: ports, pids, age,
    /// and live request rates and error counts from their sidecars
    List {
        /// Only the run of this run file (or directory holding dapr.yaml)
        #[arg(short = 'f', long = "run-file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Only the run using this run directory
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
        /// Output format: table or json
        #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
        /// Seconds over which request rates are measured (0: no rates)
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
        interval: f64,
    },
    /// Started by `run`: stops the run's processes if the runner dies without doing so
    #[command(name = "guard", hide = true)]
    Guard,
}

/// `APP_ID=IMAGE`.
fn parse_image(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, image)) if !id.is_empty() && !image.trim().is_empty() => {
            Ok((id.to_string(), image.to_string()))
        }
        _ => Err(format!(
            "{s:?}: expected APP_ID=IMAGE, like checkout=registry.example/checkout:1.0"
        )),
    }
}

fn main() -> ExitCode {
    match real_main(Cli::parse()) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(msg) => {
            supervise::say(&msg);
            ExitCode::from(1)
        }
    }
}

fn run_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("dapr.yaml")
    } else {
        path.to_path_buf()
    }
}

/// `.dapr-envoy` beside the run file, as `run` uses it (`Plan::base_dir` is the run file's
/// canonical parent); `None` if the run file cannot be found.
fn default_run_dir(run_file: &Path) -> Option<PathBuf> {
    let file = run_file.canonicalize().ok()?;
    file.parent().map(|dir| dir.join(".dapr-envoy"))
}

fn load(path: &Path) -> Result<runfile::Plan, String> {
    load_with(path, &mut runfile::LocalPorts)
}

/// Reads a run file, choosing the ports it leaves open with `ports`.
fn load_with(path: &Path, ports: &mut dyn runfile::Ports) -> Result<runfile::Plan, String> {
    let plan = runfile::load(&run_file(path), ports).map_err(|e| e.to_string())?;
    for w in &plan.warnings {
        supervise::say(&format!("warning: {w}"));
    }
    for n in &plan.notes {
        eprintln!("dapr-envoy: note: {n}");
    }
    Ok(plan)
}

fn real_main(cli: Cli) -> Result<i32, String> {
    match cli.command {
        Cmd::Run {
            file,
            envoy,
            wasm,
            exit_with,
            run_dir,
            app_port_timeout,
            sidecar_restarts,
        } => {
            // The run directory is taken first: a second run of the same file is told that
            // another run has it, not that the ports the other run holds are in use.
            let early_dir = run_dir.or_else(|| default_run_dir(&run_file(&file)));
            let early_lock = match &early_dir {
                Some(dir) => supervise::lock_run_dir(dir)?,
                None => None, // the run file cannot be found: `load` says why
            };
            let mut plan = load(&file)?;
            // As with `dapr run`, tokens in the runner's own environment are every app's and
            // every sidecar's, unless the run file's `env` sets others.
            for var in [envoy::API_TOKEN_ENV, envoy::APP_TOKEN_ENV] {
                if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                    for app in &mut plan.apps {
                        app.env
                            .entry(var.to_string())
                            .or_insert_with(|| value.clone());
                    }
                }
            }
            if let Some(id) = &exit_with {
                if !plan.apps.iter().any(|a| &a.app_id == id) {
                    return Err(format!("--exit-with {id}: the run file has no app {id:?}"));
                }
            }
            let (run_dir, _lock) = match early_dir {
                Some(dir) => (dir, early_lock),
                None => {
                    let dir = plan.base_dir.join(".dapr-envoy");
                    let lock = supervise::lock_run_dir(&dir)?;
                    (dir, lock)
                }
            };
            let opts = supervise::Options {
                envoy: locate::envoy(envoy.as_deref())?,
                wasm: locate::wasm(wasm.as_deref())?,
                run_dir,
                run_file: std::fs::canonicalize(run_file(&file))
                    .unwrap_or_else(|_| run_file(&file)),
                exit_with,
                app_port_timeout: Duration::from_secs(app_port_timeout),
                sidecar_restarts,
            };
            supervise::run(&plan, &opts)
        }
        Cmd::Certs {
            out,
            trust_domain,
            namespace,
            apps,
        } => {
            let trust_domain = check_certs_args(&trust_domain, &namespace, &apps)?;
            let ids: Vec<(&str, &str, &str)> = apps
                .iter()
                .map(|a| (trust_domain.as_str(), namespace.as_str(), a.as_str()))
                .collect();
            certs::write_mesh(&out, &ids, true)?;
            for a in &apps {
                println!(
                    "{}: {}",
                    out.join(format!("{a}.pem")).display(),
                    certs::spiffe_id(&trust_domain, &namespace, a)
                );
            }
            Ok(0)
        }
        Cmd::Config {
            file,
            out,
            wasm,
            certs,
        } => {
            let plan = load_with(&file, &mut runfile::Sequential::default())?;
            let wasm = match wasm {
                Some(w) => w,
                None => locate::wasm(None)?,
            };
            let certs = certs.unwrap_or_else(|| out.join("certs"));
            generate::ensure_certs(&plan, &certs)?;
            let files = generate::native(&plan, &shown(&file), &out, &wasm, &certs)?;
            generate::write(&files)?;
            for f in &files {
                println!("{}", f.path.display());
            }
            Ok(0)
        }
        Cmd::Compose {
            file,
            out,
            configs,
            certs,
            wasm,
        } => {
            let plan = load_with(&file, &mut runfile::Sequential::default())?;
            let out = out.unwrap_or_else(|| plan.base_dir.join("docker-compose.yaml"));
            let dir = out
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let configs = configs.unwrap_or_else(|| dir.join("envoy-compose"));
            let certs = certs.unwrap_or_else(|| dir.join("certs"));
            let wasm = match wasm {
                Some(w) => w,
                None => locate::wasm(None)?,
            };
            generate::ensure_certs(&plan, &certs)?;
            let files = generate::compose(
                &plan,
                &shown(&file),
                &generate::ComposeTarget {
                    file: &out,
                    configs: &configs,
                    certs: &certs,
                    wasm: &wasm,
                },
            )?;
            generate::write(&files)?;
            for f in &files {
                println!("{}", f.path.display());
            }
            Ok(0)
        }
        Cmd::Kubernetes {
            file,
            out,
            images,
            sidecar_address,
            namespace,
            trust_domain,
            certs,
            wasm,
            envoy_image,
        } => {
            let mut plan = load_with(&file, &mut runfile::Sequential::default())?;
            // The command line's identity wins for every app (names, certificates, configs).
            for app in &mut plan.apps {
                if let Some(ns) = &namespace {
                    app.namespace = ns.clone();
                }
                if let Some(td) = &trust_domain {
                    // As the filter reads a trust domain, and as `certs` takes it.
                    app.trust_domain = td.to_ascii_lowercase();
                }
            }
            let layout = envoy::layout::Kubernetes {
                address: envoy::layout::SidecarAddress::parse(&sidecar_address)?,
            };
            let mut by_app = std::collections::BTreeMap::new();
            for (id, image) in images {
                if by_app.insert(id.clone(), image).is_some() {
                    return Err(format!("--image {id}=... is given twice"));
                }
            }
            let wasm = match wasm {
                Some(w) => w,
                None => locate::wasm(None)?,
            };
            let wasm_bytes =
                std::fs::read(&wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
            let certs = certs.unwrap_or_else(|| out.join("certs"));
            let opts = kubernetes::Options {
                layout,
                images: by_app,
                envoy_image,
                wasm: &wasm_bytes,
                certs: &certs,
                out: &out,
                run_file: &shown(&file),
            };
            // Checked before any certificate is made.
            kubernetes::check(&plan, &opts)?;
            generate::ensure_certs_for(&plan, &certs, &opts.layout)?;
            let output = kubernetes::manifests(&plan, &opts)?;
            generate::write(&output.files)?;
            kubernetes::write_private(&output.secrets)?;
            for f in output.files.iter().chain(&output.secrets) {
                println!("{}", f.path.display());
            }
            Ok(0)
        }
        Cmd::List {
            file,
            run_dir,
            output,
            interval,
        } => {
            let interval = Duration::try_from_secs_f64(interval)
                .map_err(|_| format!("--interval {interval}: not a number of seconds"))?;
            let dir =
                run_dir.or_else(|| file.as_deref().and_then(|f| default_run_dir(&run_file(f))));
            let runs = match dir {
                Some(dir) => list::live_state(&dir).into_iter().collect(),
                None => list::live_runs(),
            };
            let rows = list::rows(&runs, interval, std::time::SystemTime::now());
            if output == "json" {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", list::table(&rows));
            }
            Ok(0)
        }
        Cmd::Guard => Ok(supervise::guard_main()),
    }
}

/// The `certs` command's names, checked by the rules the filter applies to them: a trust domain
/// as SPIFFE writes one (lowercased, as the filter reads it), the namespace and app ids as Dapr
/// ids. Returns the trust domain to use.
fn check_certs_args(
    trust_domain: &str,
    namespace: &str,
    apps: &[String],
) -> Result<String, String> {
    let td = trust_domain.to_ascii_lowercase();
    dapr_invoke::acl::check_trust_domain(&td)
        .map_err(|e| format!("--trust-domain {trust_domain:?} {e}"))?;
    dapr_invoke::ids::validate_name(namespace)
        .map_err(|e| format!("--namespace {namespace:?} {e}"))?;
    for app in apps {
        dapr_invoke::ids::validate_name(app).map_err(|e| format!("{app:?} {e}"))?;
    }
    Ok(td)
}

/// A path as the user gave it, for the headers of generated files.
fn shown(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_take_spiffe_trust_domains() {
        let apps = ["checkout".to_string()];
        assert_eq!(
            check_certs_args("example.org", "default", &apps).unwrap(),
            "example.org"
        );
        assert_eq!(
            check_certs_args("Example.ORG", "default", &apps).unwrap(),
            "example.org"
        );
        assert!(check_certs_args("a/b", "default", &apps)
            .unwrap_err()
            .starts_with("--trust-domain \"a/b\" has the character '/'"));
        assert!(check_certs_args("", "default", &apps)
            .unwrap_err()
            .contains("is empty"));
        assert!(check_certs_args("public", "a.b", &apps)
            .unwrap_err()
            .starts_with("--namespace \"a.b\""));
        assert!(check_certs_args("public", "default", &["a.b".to_string()]).is_err());
    }
}
