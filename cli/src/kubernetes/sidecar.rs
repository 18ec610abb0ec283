//! The sidecar of an app in a pod: the generator's own bootstrap ([`envoy::sidecar`] with the
//! [`Kubernetes`] layout), plus the one thing a pod needs that a process on a machine does not:
//! a metrics listener that the kubelet and Prometheus can reach.
//!
//! Envoy's admin interface stays on loopback: whoever reaches it can stop Envoy
//! (`/quitquitquit`), drain its listeners or change its log level. The metrics listener, on the
//! pod's address at Dapr's `metricsPort` (9090), forwards exactly two of its pages to the admin
//! interface, `/ready` (the probes) and `/stats/prometheus` (the scrape), and answers 404 to
//! everything else.

use crate::envoy::api::*;
use crate::envoy::layout::{Kubernetes, CONTAINER_ADMIN_PORT};
use crate::envoy::{self, MAX_APP_HEADERS};
use crate::runfile::{AppPlan, Plan};

/// The cluster the metrics listener reaches Envoy's own admin interface through.
pub const ADMIN_CLUSTER: &str = "envoy-admin";
/// The admin pages the metrics listener serves.
pub const READY_PATH: &str = "/ready";
pub const PROMETHEUS_PATH: &str = "/stats/prometheus";

/// The whole bootstrap of `me`'s sidecar in a pod.
pub fn bootstrap(plan: &Plan, me: &AppPlan, layout: &Kubernetes) -> Result<Bootstrap, String> {
    let mut b = envoy::sidecar(plan, me, layout)?;
    let (_, _, metrics) = Kubernetes::ports(me);
    b.static_resources
        .listeners
        .push(metrics_listener(Address::new("0.0.0.0", metrics)));
    b.static_resources.clusters.push(admin_cluster());
    Ok(b)
}

/// The metrics listener, with the protections every generated listener has (paths normalized
/// before routing, underscore headers dropped, a header-count limit).
fn metrics_listener(address: Address) -> Listener {
    let to_admin = |prefix: &str| Route {
        route_match: RouteMatch {
            prefix: prefix.into(),
            headers: vec![],
        },
        action: RouteActionKind::Route(RouteAction {
            max_stream_duration: None,
            cluster: Some(ADMIN_CLUSTER.into()),
            cluster_header: None,
            timeout: Dur::secs(5),
            retry_policy: None,
        }),
        request_headers_to_add: vec![],
        request_headers_to_remove: internal_headers(),
        response_headers_to_add: vec![],
    };
    let routes = vec![
        to_admin(READY_PATH),
        to_admin(PROMETHEUS_PATH),
        Route {
            route_match: RouteMatch {
                prefix: "/".into(),
                headers: vec![],
            },
            action: RouteActionKind::DirectResponse(DirectResponseAction {
                status: 404,
                body: DataSource::InlineString(format!(
                    "this port serves {READY_PATH} and {PROMETHEUS_PATH} only\n"
                )),
            }),
            request_headers_to_add: vec![],
            request_headers_to_remove: internal_headers(),
            response_headers_to_add: vec![],
        },
    ];
    envoy::listener(envoy::Http {
        name: "metrics",
        address,
        max_headers: MAX_APP_HEADERS,
        max_header_kb: None,
        routes,
        filters: vec![envoy::router()],
        local_replies: None,
    })
}

/// Nothing a scraper sends is passed on as a mesh header (the admin interface ignores them; the
/// rule is kept the same on every listener).
fn internal_headers() -> Vec<String> {
    vec![
        dapr_invoke::names::DEFAULT_CLUSTER_HEADER.into(),
        dapr_invoke::names::API_TOKEN_HEADER.into(),
    ]
}

fn admin_cluster() -> Cluster {
    envoy::cluster(
        ADMIN_CLUSTER,
        &envoy::Reach::Static(Address::new("127.0.0.1", CONTAINER_ADMIN_PORT)),
        false,
        MAX_APP_HEADERS,
    )
}
