//! The floor for any proxy-wasm filter on this path: one header write per request, no reads, no
//! configuration. Same SDK and build profile as dapr-invoke, so the difference between the two is
//! what dapr-invoke does, not what proxy-wasm costs.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { gauge: None }) });
}}

struct Root {
    gauge: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        // The same VM memory gauge as dapr-invoke, so the benchmark reads both the same way.
        self.gauge = hostcalls::define_metric(MetricType::Gauge, "bench_noop.vm_memory_bytes").ok();
        record_memory(self.gauge);
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http))
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

struct Http;

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            "x-dapr-cluster",
            Some("order-processor"),
        );
        Action::Continue
    }
}
