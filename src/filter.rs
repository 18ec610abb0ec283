//! The proxy-wasm glue: read the request's path and `dapr-app-id`, ask [`route::decide`], apply
//! the decision. Nothing here decides anything.
//!
//! Host calls go through `proxy_wasm::hostcalls` directly so that every failure is a value we
//! handle: the SDK's convenience methods unwrap, and a header value that is not UTF-8 would trap
//! the VM through them.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::config::{Config, Mode};
use crate::error::DaprError;
use crate::inbound;
use crate::route::{self, Decision, Request};

// Headers a sidecar sets for the callee; whatever the app sent under these names is replaced.
use crate::names::{
    APP_ID_HEADER, CALLEE_APP_ID_HEADER as CALLEE_APP_ID, CALLER_APP_ID_HEADER as CALLER_APP_ID,
    CALLER_NAMESPACE_HEADER as CALLER_NAMESPACE,
};
/// A gauge of the VM's linear memory, in bytes (Envoy shows it as `wasmcustom.dapr_invoke.vm_memory_bytes`).
const MEMORY_GAUGE: &str = "dapr_invoke.vm_memory_bytes";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root { context_id, config: None, memory_gauge: None, memory_pages: Cell::new(0) })
    });
}}

struct Root {
    context_id: u32,
    config: Option<Rc<Config>>,
    memory_gauge: Option<u32>,
    /// The memory size last recorded in the gauge, in 64 KiB pages.
    memory_pages: Cell<usize>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        info!(
            "[root {}] dapr-invoke {} starting",
            self.context_id,
            crate::BUILD
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let started = hostcalls::get_current_time().ok();
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                error!(
                    "[root {}] cannot read the plugin configuration: {status:?}",
                    self.context_id
                );
                return false;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => {
                let took = started
                    .and_then(|t| hostcalls::get_current_time().ok()?.duration_since(t).ok())
                    .unwrap_or(Duration::ZERO);
                info!(
                    "[root {}] app {:?} in namespace {:?}: {} target app(s), cluster header {:?}; configured in {:.1} ms",
                    self.context_id,
                    config.app_id,
                    config.namespace,
                    config.app_count(),
                    config.cluster_header,
                    took.as_secs_f64() * 1e3
                );
                self.config = Some(Rc::new(config));
                if self.memory_gauge.is_none() {
                    self.memory_gauge =
                        hostcalls::define_metric(MetricType::Gauge, MEMORY_GAUGE).ok();
                }
                self.record_memory();
                true
            }
            Err(e) => {
                // Returning false makes Envoy refuse the filter: no traffic is served with it.
                error!("[root {}] {e}", self.context_id);
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        self.record_memory();
        Some(Box::new(Http {
            context_id,
            config: self.config.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    /// Updates the memory gauge when the VM's memory has grown. Reading the size is one wasm
    /// instruction, so this costs no host call on a request unless the memory changed.
    fn record_memory(&self) {
        let pages = core::arch::wasm32::memory_size::<0>();
        if pages == self.memory_pages.get() {
            return;
        }
        self.memory_pages.set(pages);
        if let Some(id) = self.memory_gauge {
            let _ = hostcalls::record_metric(id, pages as u64 * 65536);
        }
    }
}

struct Http {
    context_id: u32,
    config: Option<Rc<Config>>,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        if let Ok(Some(_)) = request_header("x-dapr-invoke-fault") {
            // Test builds only: trap the VM, to show what Envoy's failure_policy does.
            std::process::abort();
        }
        let Some(config) = self.config.as_deref() else {
            return self.reject(&DaprError::not_ready("the filter has no configuration"));
        };
        match config.mode {
            Mode::Outbound => self.outbound(config),
            Mode::Inbound => self.inbound(config),
        }
    }
}

impl Http {
    fn outbound(&self, config: &Config) -> Action {
        let path = match request_header(":path") {
            Ok(path) => path.unwrap_or_default(),
            Err(status) => return self.host_failure("read :path", status),
        };
        let Ok(path) = std::str::from_utf8(&path) else {
            return self.reject(&DaprError::bad_invoke_url("the path is not valid UTF-8"));
        };
        // Every host call costs: read dapr-app-id only when it can change the decision.
        let app_id = if route::uses_app_id_header(path) {
            match request_header(APP_ID_HEADER) {
                Ok(app_id) => app_id,
                Err(status) => return self.host_failure("read dapr-app-id", status),
            }
        } else {
            None
        };
        let request = Request {
            path,
            app_id_header: app_id.as_deref(),
        };
        match route::decide(config, &request) {
            Decision::Forward { app, path } => {
                let writes = [
                    (config.cluster_header.as_str(), app.cluster.as_str()),
                    (CALLER_APP_ID, config.app_id.as_str()),
                    (CALLER_NAMESPACE, config.namespace.as_str()),
                    (CALLEE_APP_ID, app.app_id.as_str()),
                ];
                let rewrite = path.as_deref().map(|path| (":path", path));
                let policy = app.policy_headers.iter().map(|(n, v)| (*n, v.as_str()));
                for (name, value) in writes.into_iter().chain(rewrite).chain(policy) {
                    if let Err(status) = set_request_header(name, value) {
                        // Never forward a half-rewritten request.
                        return self.host_failure(name, status);
                    }
                }
                Action::Continue
            }
            Decision::Healthy => self.respond(204, &[], None),
            Decision::Reject(e) => self.reject(&e),
        }
    }

    fn inbound(&self, config: &Config) -> Action {
        let peer = match hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"]) {
            Ok(peer) => peer,
            Err(status) => return self.host_failure("read the peer certificate", status),
        };
        let (method, path) = match (request_header(":method"), request_header(":path")) {
            (Ok(m), Ok(p)) => (m.unwrap_or_default(), p.unwrap_or_default()),
            (Err(status), _) | (_, Err(status)) => {
                return self.host_failure("read :method and :path", status)
            }
        };
        let request = inbound::Request {
            peer_uri_san: peer.as_deref().and_then(|p| std::str::from_utf8(p).ok()),
            method: std::str::from_utf8(&method).unwrap_or_default(),
            path: std::str::from_utf8(&path).unwrap_or_default(),
        };
        let authorize =
            |caller: &inbound::Caller, method: &str, path: &str| match &config.access_control {
                None => Ok(()),
                Some(acl) => inbound::authorize(acl, caller, method, path),
            };
        match inbound::decide(&config.app_id, &request, authorize) {
            inbound::Decision::Deliver(caller) => {
                // What the app is told comes from the certificate; whatever the request carried
                // under these names is replaced.
                for (name, value) in [
                    (CALLER_APP_ID, caller.app_id),
                    (CALLER_NAMESPACE, caller.namespace),
                ] {
                    if let Err(status) = set_request_header(name, value) {
                        return self.host_failure(name, status);
                    }
                }
                Action::Continue
            }
            inbound::Decision::Reject(e) => {
                info!(
                    "[http {}] inbound call refused: {}",
                    self.context_id, e.message
                );
                self.reject(&e)
            }
        }
    }

    fn reject(&self, e: &DaprError) -> Action {
        let body = e.body();
        self.respond(
            e.status,
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        )
    }

    fn respond(&self, status: u32, headers: &[(&str, &str)], body: Option<&[u8]>) -> Action {
        if let Err(s) = hostcalls::send_http_response(status, headers.to_vec(), body) {
            // The request stays paused: it is not forwarded, whatever it carried.
            error!(
                "[http {}] cannot send the local reply: {s:?}",
                self.context_id
            );
        }
        Action::Pause
    }

    fn host_failure(&self, what: &str, status: Status) -> Action {
        warn!(
            "[http {}] host call failed ({what}): {status:?}",
            self.context_id
        );
        self.reject(&DaprError::not_ready(
            "the sidecar could not process the request",
        ))
    }
}

fn request_header(name: &str) -> Result<Option<Vec<u8>>, Status> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
}

fn set_request_header(name: &str, value: &str) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
}
