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
    /// Envoy's admin interface.
    pub admin: Address,
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
    /// The trust domain and namespace of an app's identity, as the plan has them.
    fn identity<'a>(&self, app: &'a AppPlan) -> (&'a str, &'a str) {
        (&app.trust_domain, &app.namespace)
    }
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
            admin: Address::new(LOOPBACK, app.admin_port),
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
/// API port, the internal port other sidecars call, and the metrics port (Envoy's admin here).
pub const CONTAINER_HTTP_PORT: u16 = 3500;
pub const CONTAINER_INBOUND_PORT: u16 = 50002;
pub const CONTAINER_ADMIN_PORT: u16 = 9901;

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

    /// The ports an app's sidecar uses: HTTP, inbound, admin.
    pub fn ports(app: &AppPlan) -> (u16, u16, u16) {
        (
            app.requested.http.unwrap_or(CONTAINER_HTTP_PORT),
            app.requested.inbound.unwrap_or(CONTAINER_INBOUND_PORT),
            app.requested.admin.unwrap_or(CONTAINER_ADMIN_PORT),
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
        let (http, inbound, admin) = Container::ports(app);
        Listen {
            // The app shares the sidecar's network namespace: its calls arrive on loopback.
            outbound: Address::new(LOOPBACK, http),
            inbound: Address::new("0.0.0.0", inbound),
            admin: Address::new(LOOPBACK, admin),
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
