//! Where a sidecar's pieces are in one kind of deployment: the addresses it listens on, how it
//! reaches the other sidecars, and the paths of the filter and the certificates as Envoy sees
//! them. The sidecar itself is the same everywhere ([`super::sidecar`]).

use std::path::{Path, PathBuf};

use super::api::Address;
use crate::certs::TlsFiles;
use crate::runfile::AppPlan;

/// The addresses one sidecar listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// What the app calls (`DAPR_HTTP_PORT`).
    pub outbound: Address,
    /// What other sidecars call.
    pub inbound: Address,
    /// The metrics listener (Prometheus scrapes it).
    pub metrics: Address,
    /// Envoy's admin interface, on loopback.
    pub admin: Address,
    /// What the app's gRPC clients call (`DAPR_GRPC_PORT`).
    pub grpc: Address,
}

/// How a sidecar reaches another app's sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// One fixed address.
    Static(Address),
    /// Every address a DNS name resolves to, resolved again as it changes.
    Dns { host: String, port: u16 },
}

/// One kind of deployment.
pub trait Layout {
    fn listen(&self, app: &AppPlan) -> Listen;
    /// Where `target`'s inbound listener is reached from another sidecar.
    fn peer(&self, target: &AppPlan) -> Reach;
    /// Where the app listens, seen from its own sidecar.
    fn app_address(&self, app: &AppPlan, port: u16) -> Address;
    /// The app's certificate, key and the mesh CA, as Envoy reads them; none: no mutual TLS.
    fn tls(&self, app_id: &str) -> Option<TlsFiles>;
    /// The filter's `.wasm`, as Envoy reads it.
    fn wasm(&self) -> String;
    /// The trust domain and namespace of an app's identity.
    fn identity<'a>(&'a self, app: &'a AppPlan) -> (&'a str, &'a str) {
        app_identity(app)
    }
}

/// The trust domain and namespace of an app's identity as the run file decides them.
pub fn app_identity(app: &AppPlan) -> (&str, &str) {
    (&app.trust_domain, &app.namespace)
}

/// Every sidecar on this machine's loopback, on the ports the plan decided (`dapr-envoy run`,
/// and `dapr-envoy config` for running Envoy by hand).
pub struct Local {
    /// The filter, as written into the configs.
    pub wasm: PathBuf,
    /// The directory holding `ca.pem`, `<app-id>.pem` and `<app-id>.key`; none: plain HTTP
    /// between sidecars.
    pub certs: Option<PathBuf>,
}

const LOOPBACK: &str = "127.0.0.1";

impl Layout for Local {
    fn listen(&self, app: &AppPlan) -> Listen {
        Listen {
            outbound: Address::new(LOOPBACK, app.http_port),
            inbound: Address::new(LOOPBACK, app.inbound_port),
            metrics: Address::new(LOOPBACK, app.metrics_port),
            admin: Address::new(LOOPBACK, app.admin_port),
            grpc: Address::new(LOOPBACK, app.grpc_port),
        }
    }
    fn peer(&self, target: &AppPlan) -> Reach {
        Reach::Static(Address::new(LOOPBACK, target.inbound_port))
    }
    fn app_address(&self, _app: &AppPlan, port: u16) -> Address {
        Address::new(LOOPBACK, port)
    }
    fn tls(&self, app_id: &str) -> Option<TlsFiles> {
        self.certs.as_deref().map(|dir| tls_files(dir, app_id))
    }
    fn wasm(&self) -> String {
        self.wasm.display().to_string()
    }
}

/// The files of one app's identity in a certificates directory.
pub fn tls_files(dir: &Path, app_id: &str) -> TlsFiles {
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{app_id}.pem")),
        key: dir.join(format!("{app_id}.key")),
    }
}

/// Dapr's fixed ports when every app has a network of its own (a container, a pod): the HTTP
/// API port, the internal port other sidecars call, and the metrics port; Envoy's admin stays
/// on the loopback of the container or pod.
pub const CONTAINER_HTTP_PORT: u16 = 3500;
pub const CONTAINER_INBOUND_PORT: u16 = 50002;
pub const CONTAINER_METRICS_PORT: u16 = 9090;
pub const CONTAINER_ADMIN_PORT: u16 = 9901;
/// Dapr's gRPC API port (`DAPR_GRPC_PORT`) in a container or pod.
pub const CONTAINER_GRPC_PORT: u16 = 50001;

/// The gRPC port an app's sidecar listens on in a container or pod.
pub fn container_grpc_port(app: &AppPlan) -> u16 {
    app.requested.grpc.unwrap_or(CONTAINER_GRPC_PORT)
}

/// Each app and its sidecar in a network namespace of their own (Docker Compose, Kubernetes):
/// the sidecar listens on Dapr's fixed ports unless the run file sets others, and reaches the
/// other sidecars by DNS name, `<app-id>-dapr` as Dapr's Kubernetes Service is named. Files are
/// mounted at [`Container::DIR`].
pub struct Container {
    /// The DNS name of an app's sidecar; `{app-id}` and `{namespace}` are replaced.
    pub name_template: String,
}

impl Container {
    /// Where the config, the filter and the certificates are mounted in the sidecar.
    pub const DIR: &'static str = "/etc/dapr-envoy";
    pub const WASM: &'static str = "/etc/dapr-envoy/dapr_invoke.wasm";
    /// A memory-only directory (a tmpfs) that the sidecar's user owns.
    pub const CERTS: &'static str = "/run/dapr-envoy/certs";

    /// The ports an app's sidecar uses: HTTP, inbound, metrics.
    pub fn ports(app: &AppPlan) -> (u16, u16, u16) {
        (
            app.requested.http.unwrap_or(CONTAINER_HTTP_PORT),
            app.requested.inbound.unwrap_or(CONTAINER_INBOUND_PORT),
            app.requested.metrics.unwrap_or(CONTAINER_METRICS_PORT),
        )
    }

    /// The DNS name other sidecars reach `app`'s sidecar by.
    pub fn host(&self, app: &AppPlan) -> String {
        let (_, namespace) = self.identity(app);
        self.name_template
            .replace("{app-id}", &app.app_id)
            .replace("{namespace}", namespace)
    }
}

impl Layout for Container {
    fn listen(&self, app: &AppPlan) -> Listen {
        let (http, inbound, metrics) = Container::ports(app);
        Listen {
            // The app shares the sidecar's network namespace: its calls arrive on loopback.
            outbound: Address::new(LOOPBACK, http),
            inbound: Address::new("0.0.0.0", inbound),
            metrics: Address::new("0.0.0.0", metrics),
            admin: Address::new(LOOPBACK, CONTAINER_ADMIN_PORT),
            grpc: Address::new(LOOPBACK, container_grpc_port(app)),
        }
    }
    fn peer(&self, target: &AppPlan) -> Reach {
        Reach::Dns {
            host: self.host(target),
            port: Container::ports(target).1,
        }
    }
    fn app_address(&self, _app: &AppPlan, port: u16) -> Address {
        Address::new(LOOPBACK, port)
    }
    fn tls(&self, app_id: &str) -> Option<TlsFiles> {
        Some(tls_files(Path::new(Container::CERTS), app_id))
    }
    fn wasm(&self) -> String {
        Container::WASM.to_string()
    }
}

/// Where an app's sidecar is found by name: a template with `{app-id}` and `{namespace}`, the
/// port coming from the layout. [`SidecarAddress::KUBERNETES`] is the name of the headless
/// Service `<app-id>-dapr` that Dapr's operator makes, and that `dapr-envoy kubernetes` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarAddress(String);

impl SidecarAddress {
    pub const KUBERNETES: &'static str = "{app-id}-dapr.{namespace}.svc.cluster.local";
    pub const COMPOSE: &'static str = "{app-id}-dapr";

    /// A template, checked: only the two placeholders, `{app-id}` among them (else every app
    /// would have the same address), and no port (the layout has it).
    pub fn parse(template: &str) -> Result<SidecarAddress, String> {
        let bad = |why: &str| Err(format!("sidecar address {template:?}: {why}"));
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let after = rest.get(open..).unwrap_or_default();
            let Some(close) = after.find('}') else {
                return bad("a `{` is not closed");
            };
            let name = after.get(..=close).unwrap_or_default();
            if name != "{app-id}" && name != "{namespace}" {
                return bad(&format!(
                    "unknown placeholder {name}; the placeholders are {{app-id}} and {{namespace}}"
                ));
            }
            rest = after.get(close + 1..).unwrap_or_default();
        }
        if rest.contains('}') || template.matches('}').count() != template.matches('{').count() {
            return bad("a `}` without its `{`");
        }
        if !template.contains("{app-id}") {
            return bad("it must contain {app-id}, or every app would have the same address");
        }
        if template.contains(':') {
            return bad("give the host name only; the port is the sidecar's inbound port");
        }
        // What is left once the placeholders are filled must be a host name.
        check_host(
            &template
                .replace("{app-id}", "a")
                .replace("{namespace}", "a"),
        )
        .map_err(|why| format!("sidecar address {template:?}: {why}"))?;
        Ok(SidecarAddress(template.to_string()))
    }

    /// The address with the placeholders filled in.
    pub fn expand(&self, app_id: &str, namespace: &str) -> String {
        self.0
            .replace("{app-id}", app_id)
            .replace("{namespace}", namespace)
    }

    /// The host name of one app's sidecar, checked (an app id with `_` is no DNS name).
    pub fn host(&self, app_id: &str, namespace: &str) -> Result<String, String> {
        let host = self.expand(app_id, namespace);
        check_host(&host).map_err(|why| {
            format!(
                "app {app_id:?}: its sidecar's address {host:?} (from {:?}) is not a DNS name: {why}",
                self.0
            )
        })?;
        Ok(host)
    }
}

/// A DNS host name: dot-separated labels of 1 to 63 letters, digits and `-`, not starting or
/// ending with `-`, 253 characters at most; an absolute name may end with a dot.
pub fn check_host(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err(format!(
            "{} characters; a host name has 1 to 253",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("label {label:?} is not 1 to 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!("{c:?} is not allowed in a host name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with `-`"));
        }
    }
    Ok(())
}

/// The port of the sidecar's metrics listener in a pod: Dapr's `metricsPort`, 9090 unless the
/// run file sets it. Prometheus scrapes it; Envoy's admin itself stays on loopback.
pub const KUBERNETES_METRICS_PORT: u16 = 9090;

/// Each app in Kubernetes pods, its sidecar in the same pod: the sidecar listens on Dapr's
/// ports (the run file's when it sets them), reaches the other apps' sidecars at every address
/// the DNS name of their headless Service resolves to, and reads its config, the filter and its
/// certificates from a volume at [`Container::DIR`]. Envoy's admin port stays on loopback; the
/// metrics port (`metricsPort`, 9090) is a listener of its own (see `crate::kubernetes`).
///
/// The identity of each app, and so its namespace, is the plan's.
pub struct Kubernetes {
    pub address: SidecarAddress,
}

impl Kubernetes {
    /// The ports an app's sidecar uses in its pod: HTTP (loopback), inbound, metrics.
    pub fn ports(app: &AppPlan) -> (u16, u16, u16) {
        (
            app.requested.http.unwrap_or(CONTAINER_HTTP_PORT),
            app.requested.inbound.unwrap_or(CONTAINER_INBOUND_PORT),
            app.requested.metrics.unwrap_or(KUBERNETES_METRICS_PORT),
        )
    }

    /// The DNS name other sidecars reach `app`'s sidecar by.
    pub fn host(&self, app: &AppPlan) -> Result<String, String> {
        let (_, namespace) = self.identity(app);
        self.address.host(&app.app_id, namespace)
    }
}

impl Layout for Kubernetes {
    fn listen(&self, app: &AppPlan) -> Listen {
        let (http, inbound, metrics) = Kubernetes::ports(app);
        Listen {
            // The app shares the pod's network namespace: its calls arrive on loopback, and only
            // there (whoever calls this listener speaks as the app).
            outbound: Address::new(LOOPBACK, http),
            inbound: Address::new("0.0.0.0", inbound),
            metrics: Address::new("0.0.0.0", metrics),
            admin: Address::new(LOOPBACK, CONTAINER_ADMIN_PORT),
            grpc: Address::new(LOOPBACK, container_grpc_port(app)),
        }
    }
    fn peer(&self, target: &AppPlan) -> Reach {
        // `crate::kubernetes` checks every app's name with `host` before it makes a config.
        let (_, namespace) = self.identity(target);
        Reach::Dns {
            host: self.address.expand(&target.app_id, namespace),
            port: Kubernetes::ports(target).1,
        }
    }
    fn app_address(&self, _app: &AppPlan, port: u16) -> Address {
        Address::new(LOOPBACK, port)
    }
    fn tls(&self, app_id: &str) -> Option<TlsFiles> {
        // The pod's Secret, in its projected volume, readable by the sidecar's user only.
        Some(tls_files(&Path::new(Container::DIR).join("certs"), app_id))
    }
    fn wasm(&self) -> String {
        Container::WASM.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runfile::{parse, Sequential};

    fn app(extra: &str) -> AppPlan {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        let text = format!(
            "version: 1\napps:\n  - appID: order-processor\n    appDirPath: x\n    command: [a]\n{extra}"
        );
        let mut plan = parse(&text, "dapr.yaml", d.path(), &mut Sequential::default()).unwrap();
        plan.apps.remove(0)
    }

    #[test]
    fn sidecar_addresses_are_templates_of_host_names() {
        let k8s = SidecarAddress::parse(SidecarAddress::KUBERNETES).unwrap();
        assert_eq!(
            k8s.host("order-processor", "prod").unwrap(),
            "order-processor-dapr.prod.svc.cluster.local"
        );
        let plain = SidecarAddress::parse("{app-id}.mesh.internal.").unwrap();
        assert_eq!(plain.host("a", "x").unwrap(), "a.mesh.internal.");
        for (bad, why) in [
            ("sidecar.{namespace}", "must contain {app-id}"),
            ("{app}.svc", "unknown placeholder {app}"),
            (
                "{app-id}-dapr:50002",
                "the port is the sidecar's inbound port",
            ),
            ("{app-id", "not closed"),
            ("{app-id}}", "without its `{`"),
            ("{app-id}..local", "is not 1 to 63"),
            ("{app-id}_x", "'_' is not allowed"),
            ("-{app-id}", "starts or ends with `-`"),
        ] {
            let e = SidecarAddress::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
        // An app id that is no DNS label is named when its address is made.
        let e = k8s.host("order_processor", "default").unwrap_err();
        assert!(
            e.contains("\"order_processor\"") && e.contains("'_'"),
            "{e}"
        );
        let e = k8s.host(&"a".repeat(60), "default").unwrap_err();
        assert!(e.contains("63"), "{e}");
    }

    #[test]
    fn kubernetes_pods_use_daprs_ports_and_keep_admin_on_loopback() {
        let layout = Kubernetes {
            address: SidecarAddress::parse(SidecarAddress::KUBERNETES).unwrap(),
        };
        let a = app("");
        let listen = layout.listen(&a);
        assert_eq!(listen.outbound, Address::new("127.0.0.1", 3500));
        assert_eq!(listen.inbound, Address::new("0.0.0.0", 50002));
        assert_eq!(listen.admin, Address::new("127.0.0.1", 9901));
        assert_eq!(Kubernetes::ports(&a), (3500, 50002, 9090));
        assert_eq!(
            layout.peer(&a),
            Reach::Dns {
                host: "order-processor-dapr.default.svc.cluster.local".into(),
                port: 50002
            }
        );
        // The run file's ports win, as Dapr's annotations would.
        let a =
            app("    daprHTTPPort: 3600\n    daprInternalGRPCPort: 50012\n    metricsPort: 9191\n");
        assert_eq!(Kubernetes::ports(&a), (3600, 50012, 9191));
        assert_eq!(layout.listen(&a).admin, Address::new("127.0.0.1", 9901));
    }

    #[test]
    fn the_name_follows_the_apps_namespace() {
        let mut a = app("");
        a.namespace = "shop".into();
        a.trust_domain = "example.org".into();
        let layout = Kubernetes {
            address: SidecarAddress::parse(SidecarAddress::KUBERNETES).unwrap(),
        };
        assert_eq!(layout.identity(&a), ("example.org", "shop"));
        assert_eq!(
            layout.host(&a).unwrap(),
            "order-processor-dapr.shop.svc.cluster.local"
        );
    }
}
