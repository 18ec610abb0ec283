//! The sidecar of an app in a pod: the generator's own bootstrap ([`envoy::sidecar`] with the
//! [`Kubernetes`] layout).
//!
//! Envoy's admin interface stays on loopback: whoever reaches it can stop Envoy
//! (`/quitquitquit`), drain its listeners or change its log level. The metrics listener
//! ([`envoy::metrics`]), on the pod's address at Dapr's `metricsPort` (9090), forwards exactly
//! two of its pages to the admin interface, `/ready` (the probes) and `/stats/prometheus` (the
//! scrape), and answers 404 to everything else.

use crate::envoy;
use crate::envoy::api::*;
use crate::envoy::layout::Kubernetes;
use crate::runfile::{AppPlan, Plan};

pub use crate::envoy::metrics::{PROMETHEUS_PATH, READY_PATH};

/// The whole bootstrap of `me`'s sidecar in a pod.
pub fn bootstrap(plan: &Plan, me: &AppPlan, layout: &Kubernetes) -> Result<Bootstrap, String> {
    // The metrics listener is every layout's now (`envoy::metrics`), on the pod's address.
    envoy::sidecar(plan, me, layout)
}
