//! The floor for any proxy-wasm filter on this path: one header write per request, no reads, no
//! configuration. Same SDK and build profile as dapr-invoke, so the difference between the two is
//! what dapr-invoke does, not what proxy-wasm costs.
//!
//! With the plugin configuration `mimic` it makes the same host calls as dapr-invoke on a
//! header-form request (read `:path` and `dapr-app-id`, write four headers) with constant values
//! and no logic: the floor for a filter that must do that much I/O.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { gauge: None, mimic: false }) });
}}

struct Root {
    gauge: Option<u32>,
    mimic: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX);
        self.mimic = matches!(config, Ok(Some(c)) if c == b"mimic");
        // The same VM memory gauge as dapr-invoke, so the benchmark reads both the same way.
        self.gauge = hostcalls::define_metric(MetricType::Gauge, "bench_noop.vm_memory_bytes").ok();
        record_memory(self.gauge);
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { mimic: self.mimic }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn record_memory(gauge: Option<u32>) {
    if let Some(id) = gauge {
        let bytes = core::arch::wasm32::memory_size(0) as u64 * 65536;
        let _ = hostcalls::record_metric(id, bytes);
    }
}

struct Http {
    mimic: bool,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let set = |name, value| {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
        };
        if self.mimic {
            let _ = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path");
            let _ = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "dapr-app-id");
        }
        set("x-dapr-cluster", "order-processor");
        if self.mimic {
            set("dapr-caller-app-id", "checkout");
            set("dapr-caller-namespace", "default");
            set("dapr-callee-app-id", "order-processor");
        }
        Action::Continue
    }
}
