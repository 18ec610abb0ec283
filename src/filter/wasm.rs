//! The `.wasm` build's edge: the proxy-wasm root and HTTP contexts, and [`Host`] over
//! `proxy_wasm::hostcalls`.
//!
//! Host calls go through `proxy_wasm::hostcalls` directly so that every failure is a value we
//! handle: the SDK's convenience methods unwrap, and a header value that is not UTF-8 would trap
//! the VM through them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info, Level};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use super::{Body, Host, HostError, Next};
use crate::config::Config;

/// A gauge of the VM's linear memory, in bytes (Envoy shows it as `wasmcustom.dapr_invoke.vm_memory_bytes`).
const MEMORY_GAUGE: &str = "dapr_invoke.vm_memory_bytes";

proxy_wasm::main! {{
    // Installs the logger; the level is Envoy's from VM start on (`follow_envoy_log_level`).
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root {
            context_id,
            config: None,
            memory_gauge: None,
            memory_pages: Cell::new(0),
        })
    });
}}

/// Envoy itself, through the proxy-wasm ABI.
struct Envoy;

fn failed(status: Status) -> HostError {
    HostError(format!("{status:?}"))
}

impl Host for Envoy {
    fn request_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).map_err(failed)
    }

    fn set_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).map_err(failed)
    }

    fn remove_request_header(&self, name: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None).map_err(failed)
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_property(path.to_vec()).map_err(failed)
    }

    fn send_reply(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(), HostError> {
        hostcalls::send_http_response(status, headers.to_vec(), body).map_err(failed)
    }

    fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        // The logger checks the level before it formats or calls the host.
        log::log!(level, "{message}");
    }

    fn count(&self, name: &str) {
        let id = COUNTERS.with(|counters| {
            let mut counters = counters.borrow_mut();
            if let Some(id) = counters.get(name) {
                return Some(*id);
            }
            let id = hostcalls::define_metric(MetricType::Counter, name).ok()?;
            counters.insert(name.to_string(), id);
            Some(id)
        });
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

thread_local! {
    /// The filter's counters defined so far, by name (one VM per worker thread).
    static COUNTERS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

/// Makes the filter log at Envoy's level for wasm (`--log-level`, or
/// `--component-log-level wasm:debug`), so that a line Envoy would drop costs no host call. Read
/// at VM start and at each configuration: a level changed later through Envoy's admin
/// `/logging` applies from the next configuration on.
fn follow_envoy_log_level() {
    if let Ok(level) = hostcalls::get_log_level() {
        proxy_wasm::set_log_level(level);
    }
}

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
        follow_envoy_log_level();
        info!(
            "[root {}] starting {}",
            self.context_id,
            super::version_line()
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        follow_envoy_log_level();
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
        // The environment is what Envoy hands the VM (`vm_config.environment_variables`).
        match Config::load(&bytes, &|name| std::env::var(name).ok()) {
            Ok(config) => {
                let took = started
                    .and_then(|t| hostcalls::get_current_time().ok()?.duration_since(t).ok())
                    .unwrap_or(Duration::ZERO);
                info!(
                    "[root {}] {}",
                    self.context_id,
                    super::configured_line(&config, took)
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
            body: Body::Untouched,
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
    body: Body,
}

fn action(next: Next) -> Action {
    match next {
        Next::Continue => Action::Continue,
        Next::Stop => Action::Pause,
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        if let Ok(Some(_)) = Envoy.request_header("x-dapr-invoke-fault") {
            // Test builds only: trap the VM, to show what Envoy's failure_policy does.
            std::process::abort();
        }
        action(super::on_request_headers(
            &Envoy,
            self.context_id,
            self.config.as_deref(),
            &mut self.body,
        ))
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        action(super::on_request_body(
            &Envoy,
            self.context_id,
            self.config.as_deref(),
            &mut self.body,
            body_size,
        ))
    }
}
