//! The Envoy bootstrap of one app's sidecar, built as typed data from a [`Plan`].
//!
//! Every deployment (a local run, `envoy/` for running Envoy by hand, Docker Compose) gets its
//! sidecars from [`sidecar`]; a [`Layout`] says only where things are in that deployment: the
//! addresses the sidecar listens on, how it reaches the other apps' sidecars, and the paths of
//! the filter and the certificates.
//!
//! Each sidecar has an outbound listener on the app's `DAPR_HTTP_PORT` (the dapr-invoke filter,
//! then the router on the filter's cluster header), an inbound listener that other sidecars call
//! over mutual TLS and that delivers to the app, one cluster per app of the run file pointing at
//! that app's inbound listener, and a cluster for its own app.

pub mod api;
pub mod layout;
pub mod metrics;
pub mod resiliency;
pub mod tracing;

use dapr_invoke::error::{invoke_failed, no_app_channel, ERR_DIRECT_INVOKE};
use dapr_invoke::names::{
    spiffe_id, API_TOKEN_HEADER, APP_ID_HEADER, CALLEE_APP_ID_HEADER, CALLER_APP_ID_HEADER,
    CALLER_NAMESPACE_HEADER, DEFAULT_CLUSTER_HEADER, DEFAULT_NAMESPACE, FILTER_NAME,
};
use dapr_invoke::schema::{self, AppChannel, Apps, Calls, PluginConfig, TargetApp};
use serde_json::json;

use self::api::*;
pub use self::layout::{Layout, Reach};
use crate::certs::TlsFiles;
use crate::runfile::{AppPlan, AppProtocol, Plan};

/// The cluster of the sidecar's own app.
pub const LOCAL_APP_CLUSTER: &str = "local-app";

/// Most request (and response) headers a sidecar accepts from its app: Envoy's default. A
/// request with more is refused by the caller's own sidecar (431), never half-way.
pub const MAX_APP_HEADERS: u32 = 100;
/// What a sidecar accepts from another sidecar: the app's headers plus the ones sidecars add
/// (caller identity, forwarding and tracing headers), with room to spare, so that a request the
/// caller's sidecar accepted is never refused by the callee's.
pub const MAX_MESH_HEADERS: u32 = MAX_APP_HEADERS + 40;

/// Headers whose name has an underscore are dropped on every listener (nginx's default too).
/// App servers that follow CGI (WSGI, PHP, ...) fold `_` and `-` together, so
/// `dapr_caller_app_id` would otherwise reach them as a second `dapr-caller-app-id`.
pub const HEADERS_WITH_UNDERSCORES: &str = "DROP_HEADER";

/// How long a client may take to send a request's headers (from their first byte), and a peer
/// to finish the mutual-TLS handshake on the inbound listener, before its connection is closed:
/// daprd's `ReadHeaderTimeout`. Without them a slow client (slowloris) holds a connection for
/// as long as it likes, and one that never finishes its TLS hello needs no certificate to do so.
pub const HEADERS_TIMEOUT_SECS: u64 = 10;

/// The cluster that reaches `app_id`'s sidecar.
pub fn target_cluster(app_id: &str) -> String {
    format!("to-{app_id}")
}

/// The cluster `me`'s sidecar sends calls to `target` to. An app that calls itself is served by
/// its own sidecar, straight to the app, as daprd does (no hop, so no access-control check).
fn cluster_for(me: &AppPlan, target: &AppPlan) -> String {
    if target.app_id == me.app_id && me.app_port.is_some() {
        LOCAL_APP_CLUSTER.to_string()
    } else {
        target_cluster(&target.app_id)
    }
}

/// The outbound filter's configuration for `me`: every app of the run file is a target.
pub fn outbound_plugin(plan: &Plan, me: &AppPlan) -> PluginConfig {
    PluginConfig::Outbound(schema::Outbound {
        app_id: me.app_id.clone(),
        namespace: own_namespace(me),
        apps: Apps(
            plan.apps
                .iter()
                .map(|a| (a.app_id.clone(), TargetApp::cluster(cluster_for(me, a))))
                .collect(),
        ),
        cluster_header: None,
        api_token_env: api_token(me).map(|_| API_TOKEN_ENV.to_string()),
        app_channel: Some(AppChannel {
            port: me.app_port,
            protocol: me.protocol.name().to_string(),
            channel_address: "127.0.0.1".to_string(),
            max_concurrency: me.max_concurrency,
            health: me.health.as_ref().map(|h| schema::AppHealth {
                // Dapr shows the path for HTTP apps only.
                path: (!me.protocol.http2()).then(|| h.path.clone()),
                interval: go_duration(h.interval),
                timeout: go_duration(h.timeout),
                threshold: h.threshold,
            }),
        }),
        max_body_bytes: me.max_body_bytes,
        // The routes set the identity headers: three host calls less per call.
        identity_headers: Some(schema::IdentityHeaders::Route),
        calls: None,
    })
}

/// The gRPC listener's filter: the same apps, gRPC's way of naming them and of refusing.
pub fn grpc_plugin(plan: &Plan, me: &AppPlan) -> PluginConfig {
    let PluginConfig::Outbound(mut o) = outbound_plugin(plan, me) else {
        return outbound_plugin(plan, me);
    };
    o.calls = Some(Calls::Grpc);
    // Dapr's metadata API and its maxBodySize are HTTP's (gRPC's limit is per message).
    o.app_channel = None;
    o.max_body_bytes = None;
    PluginConfig::Outbound(o)
}

/// A duration as Go prints it, which is how Dapr's metadata shows the health settings: `5s`,
/// `500ms`, `1m30s`.
fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let secs = if rest == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{rest:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// The cluster of the sidecar's own app: HTTP/1.1 or HTTP/2, over TLS for `https`/`grpcs`
/// (the app's certificate unverified, as daprd does), probed when Dapr's app health check is on,
/// and at most `appMaxConcurrency` calls at a time, the rest waiting, as daprd queues them.
fn local_app_cluster(me: &AppPlan, address: Address) -> Cluster {
    let http2 = me.protocol.http2();
    let mut c = cluster(
        LOCAL_APP_CLUSTER,
        &Reach::Static(address),
        http2,
        MAX_APP_HEADERS,
    );
    if me.protocol.tls() {
        c.transport_socket = Some(TransportSocket {
            name: "envoy.transport_sockets.tls",
            typed_config: TypedConfig::UpstreamTlsContext(UpstreamTlsContext {
                sni: None,
                common_tls_context: CommonTlsContext {
                    tls_certificates: vec![],
                    alpn_protocols: vec![if http2 { "h2" } else { "http/1.1" }],
                    validation_context: None,
                },
            }),
        });
    }
    if let Some(n) = me.max_concurrency {
        c.circuit_breakers = Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                // HTTP/1.1: one call per connection; HTTP/2: one connection of n streams.
                max_connections: Some(if http2 { 1 } else { n }),
                max_retries: 1024,
                max_pending_requests: 65536,
                max_requests: 65536,
            }],
        });
        if http2 {
            if let Some(ProtocolOptions {
                http: TypedConfig::UpstreamHttpProtocolOptions(o),
            }) = &mut c.typed_extension_protocol_options
            {
                o.explicit_http_config =
                    ExplicitHttpConfig::Http2ProtocolOptions(Http2ProtocolOptions {
                        max_concurrent_streams: Some(n),
                        connection_keepalive: None,
                    });
            }
        }
    }
    if let Some(h) = &me.health {
        c.health_checks = vec![HealthCheck {
            timeout: Dur(h.timeout),
            interval: Dur(h.interval),
            no_traffic_interval: Dur(h.interval),
            unhealthy_threshold: h.threshold,
            healthy_threshold: 1,
            kind: match me.protocol {
                AppProtocol::Grpc | AppProtocol::Grpcs => HealthCheckKind::GrpcHealthCheck {},
                _ => HealthCheckKind::HttpHealthCheck {
                    path: h.path.clone(),
                    codec_client_type: if http2 { "HTTP2" } else { "HTTP1" },
                },
            },
        }];
        // An unhealthy app gets no call: never Envoy's panic routing to it anyway.
        c.common_lb_config = Some(CommonLbConfig {
            healthy_panic_threshold: Percent { value: 0.0 },
        });
    }
    c
}

/// The app's namespace for its plugin configurations: written only when it is not the default.
fn own_namespace(me: &AppPlan) -> Option<String> {
    (me.namespace != DEFAULT_NAMESPACE).then(|| me.namespace.clone())
}

/// The inbound filter's configuration: who this app is, and its access-control policy.
pub fn inbound_plugin(me: &AppPlan) -> PluginConfig {
    PluginConfig::Inbound(schema::Inbound {
        app_id: me.app_id.clone(),
        namespace: own_namespace(me),
        access_control: me.access_control.clone(),
        // A gRPC app takes gRPC calls only: checked by full method name, answered in gRPC.
        calls: me.protocol.grpc().then_some(Calls::Grpc),
    })
}

/// The whole bootstrap for `me`'s sidecar in `layout`. The plugin configurations are checked
/// with the filter's own rules first, so a config Envoy would refuse is never written.
pub fn sidecar(plan: &Plan, me: &AppPlan, layout: &dyn Layout) -> Result<Bootstrap, String> {
    let outbound_plugin = outbound_plugin(plan, me);
    outbound_plugin
        .check()
        .map_err(|e| format!("{}: {e}", me.app_id))?;
    let inbound_plugin = inbound_plugin(me);
    inbound_plugin
        .check()
        .map_err(|e| format!("{} (inbound): {e}", me.app_id))?;
    let grpc_plugin = grpc_plugin(plan, me);
    grpc_plugin
        .check()
        .map_err(|e| format!("{} (gRPC): {e}", me.app_id))?;
    let my_tls = layout.tls(&me.app_id);
    let listen = layout.listen(me);

    let mut clusters = Vec::with_capacity(plan.apps.len() + 1);
    for target in plan
        .apps
        .iter()
        .filter(|t| cluster_for(me, t) != LOCAL_APP_CLUSTER)
    {
        clusters.push(target_app_cluster(me, target, layout, my_tls.as_ref()));
    }
    if let Some(port) = me.app_port {
        clusters.push(local_app_cluster(me, layout.app_address(me, port)));
    }

    // `readBufferSize`: the app's header bytes; another sidecar's requests get room for the
    // headers sidecars add, as with the header count.
    let header_kb = me.read_buffer_bytes.map(|b| {
        u32::try_from(b.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, 8192)
    });
    let outbound = listener(Http {
        name: "outbound",
        address: listen.outbound,
        max_headers: MAX_APP_HEADERS,
        max_header_kb: header_kb,
        routes: outbound_routes(plan, me, false),
        filters: vec![wasm_filter(&layout.wasm(), &outbound_plugin)?, router()],
        local_replies: Some(dapr_local_replies(None, false)),
    });
    // Dapr's gRPC port: the app's gRPC clients call it with `dapr-app-id` metadata, and the call
    // goes to the target's sidecar over the same mutual TLS, HTTP/2 all the way.
    let grpc = listener(Http {
        name: "grpc",
        address: listen.grpc,
        max_headers: MAX_APP_HEADERS,
        max_header_kb: header_kb,
        routes: outbound_routes(plan, me, true),
        filters: vec![wasm_filter(&layout.wasm(), &grpc_plugin)?, router()],
        local_replies: Some(dapr_local_replies(None, true)),
    });

    // With mutual TLS, the callee's filter names the caller from its certificate and applies the
    // app's access-control policy; without it there is no identity to check.
    let inbound_filters = match my_tls {
        Some(_) => vec![wasm_filter(&layout.wasm(), &inbound_plugin)?, router()],
        None => vec![router()],
    };
    let mut inbound = listener(Http {
        name: "inbound",
        address: listen.inbound,
        max_headers: MAX_MESH_HEADERS,
        max_header_kb: header_kb.map(|kb| kb.saturating_add(8).min(8192)),
        routes: vec![inbound_route(me)],
        filters: inbound_filters,
        local_replies: Some(dapr_local_replies(Some(&me.app_id), me.protocol.grpc())),
    });
    for chain in &mut inbound.filter_chains {
        chain.transport_socket = my_tls.as_ref().map(downstream_tls);
        chain.transport_socket_connect_timeout =
            my_tls.as_ref().map(|_| Dur::secs(HEADERS_TIMEOUT_SECS));
    }

    let mut sidecar = Bootstrap {
        node: Node {
            id: me.app_id.clone(),
            cluster: me.app_id.clone(),
        },
        admin: Admin {
            address: listen.admin,
        },
        static_resources: StaticResources {
            listeners: vec![outbound, inbound, grpc],
            clusters,
        },
        stats_config: None,
    };
    // Observability applies to every listener built above; the metrics listener is its own.
    tracing::trace(&mut sidecar, me);
    metrics::observe(&mut sidecar, plan, me, listen.metrics);
    Ok(sidecar)
}

/// One route per target app, selected by the cluster the filter chose, carrying that target's
/// timeout and retries; the last route catches a cluster Envoy does not have (a JSON error).
/// Every route removes what must not leave the caller's sidecar: the cluster header (internal),
/// the caller's API token (its credential towards its own sidecar) and `dapr-app-id`, as Dapr.
/// `grpc`: the gRPC listener's routes. A gRPC call marked as a stream (`dapr-stream`
/// metadata, as in Dapr) has its own route without retries or timeout; other calls get the
/// target's policy with gRPC's retry conditions, and a client's `grpc-timeout` is honoured.
fn outbound_routes(plan: &Plan, me: &AppPlan, grpc: bool) -> Vec<Route> {
    let strip = || {
        vec![
            DEFAULT_CLUSTER_HEADER.to_string(),
            API_TOKEN_HEADER.to_string(),
            APP_ID_HEADER.to_string(),
        ]
    };
    let mut routes: Vec<Route> = Vec::with_capacity(plan.apps.len() * 2 + 1);
    for a in &plan.apps {
        let cluster = cluster_for(me, a);
        let policy = me.resiliency.targets.get(&a.app_id);
        // gRPC calls are bounded by the stream's duration, not the route's timeout (which Envoy
        // ignores once a route has `max_stream_duration`).
        let (timeout, limit, retry) = match grpc {
            false => {
                let (timeout, retry) = resiliency::route(policy);
                (timeout, None, retry)
            }
            true => {
                let (limit, retry) = resiliency::grpc_route(policy);
                (Dur::secs(0), Some(limit), retry)
            }
        };
        let to = |stream: bool,
                  timeout: Dur,
                  limit: Option<MaxStreamDuration>,
                  retry_policy: Option<RetryPolicy>| {
            let mut headers = vec![HeaderMatcher {
                name: DEFAULT_CLUSTER_HEADER.into(),
                string_match: Some(StringMatcher::Exact(cluster.clone())),
                present_match: None,
            }];
            if stream {
                headers.push(HeaderMatcher {
                    name: GRPC_STREAM_HEADER.into(),
                    string_match: Some(StringMatcher::SafeRegex(RegexMatcher {
                        regex: TRUTHY.into(),
                    })),
                    present_match: None,
                });
            }
            Route {
                route_match: RouteMatch {
                    prefix: "/".into(),
                    headers,
                },
                action: RouteActionKind::Route(RouteAction {
                    cluster: Some(cluster.clone()),
                    cluster_header: None,
                    timeout,
                    retry_policy,
                    max_stream_duration: limit,
                }),
                request_headers_to_add: identity(me, a)
                    .into_iter()
                    .chain(forwarded_host(grpc))
                    .collect(),
                request_headers_to_remove: strip(),
                response_headers_to_add: vec![],
                stat_prefix: None,
            }
        };
        if grpc {
            // Only the client's own deadline.
            let unlimited = MaxStreamDuration {
                max_stream_duration: None,
                grpc_timeout_header_max: Dur::secs(0),
            };
            routes.push(to(true, Dur::secs(0), Some(unlimited), None));
        }
        routes.push(to(false, timeout, limit, retry));
    }
    routes.push(Route {
        route_match: RouteMatch {
            prefix: "/".into(),
            headers: vec![],
        },
        action: RouteActionKind::Route(RouteAction {
            cluster: None,
            cluster_header: Some(DEFAULT_CLUSTER_HEADER.into()),
            timeout: Dur::secs(0),
            retry_policy: None,
            max_stream_duration: None,
        }),
        request_headers_to_add: forwarded_host(grpc),
        request_headers_to_remove: strip(),
        response_headers_to_add: vec![],
        stat_prefix: None,
    });
    routes
}

/// Dapr's metadata that marks a gRPC call as a stream: never retried, no timeout.
pub const GRPC_STREAM_HEADER: &str = "dapr-stream";

/// The values Dapr reads as true (`kit/strings.IsTruthy`), in any case.
const TRUTHY: &str = "(?i)(y|yes|true|t|on|1)";

/// Who calls whom, set by the route to `target` on every call, replacing whatever the app sent
/// under these names (the filter's `identity_headers: "route"`). The callee's sidecar replaces
/// the caller's from its certificate again.
fn identity(me: &AppPlan, target: &AppPlan) -> [HeaderValueOption; 3] {
    [
        HeaderValueOption::overwrite(CALLER_APP_ID_HEADER, me.app_id.clone()),
        HeaderValueOption::overwrite(CALLER_NAMESPACE_HEADER, me.namespace.clone()),
        HeaderValueOption::overwrite(CALLEE_APP_ID_HEADER, target.app_id.clone()),
    ]
}

/// The caller's host name, appended as daprd appends its own (`X-Forwarded-Host`).
fn forwarded_host(grpc: bool) -> Vec<HeaderValueOption> {
    match grpc {
        // daprd's gRPC proxy adds no forwarding headers.
        true => vec![],
        false => vec![HeaderValueOption::append("x-forwarded-host", "%HOSTNAME%")],
    }
}

/// The inbound route: to the app, or Dapr's answer when the app has no port (its app channel is
/// not initialized). No API token from another app reaches this one.
fn inbound_route(me: &AppPlan) -> Route {
    let action = match me.app_port {
        Some(_) => RouteActionKind::Route(RouteAction {
            cluster: Some(LOCAL_APP_CLUSTER.into()),
            cluster_header: None,
            timeout: Dur::secs(0),
            retry_policy: None,
            max_stream_duration: None,
        }),
        None => RouteActionKind::DirectResponse(DirectResponseAction {
            status: 500,
            body: DataSource::InlineString(
                json!({ "errorCode": ERR_DIRECT_INVOKE, "message": no_app_channel(&me.app_id) })
                    .to_string(),
            ),
        }),
    };
    let content_type = match me.app_port {
        Some(_) => vec![],
        None => vec![HeaderValueOption::overwrite(
            "content-type",
            "application/json",
        )],
    };
    // Where the call came from, appended as daprd appends it (never trusted from the caller):
    // the caller's sidecar as the callee's sidecar sees it. The *direct* remote address: Envoy's
    // plain remote address would be read from the X-Forwarded-For the caller sent. daprd's gRPC
    // proxy adds none.
    let mut add = match me.protocol.grpc() {
        true => vec![],
        false => vec![
            HeaderValueOption::append("x-forwarded-for", "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%"),
            HeaderValueOption::append(
                "forwarded",
                "for=%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%;by=%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
            ),
        ],
    };
    let mut remove = vec![DEFAULT_CLUSTER_HEADER.to_string()];
    // The app's own token (Dapr's APP_API_TOKEN) proves to the app that the call came through
    // its sidecar; it replaces whatever a caller sent. It is read from the sidecar's environment,
    // so it is never written into a config.
    match app_token(me) {
        Some(_) => add.push(HeaderValueOption::overwrite(
            API_TOKEN_HEADER,
            format!("%ENVIRONMENT({APP_TOKEN_ENV})%"),
        )),
        None => remove.push(API_TOKEN_HEADER.to_string()),
    }
    Route {
        route_match: RouteMatch {
            prefix: "/".into(),
            headers: vec![],
        },
        action,
        request_headers_to_add: add,
        request_headers_to_remove: remove,
        response_headers_to_add: content_type,
        stat_prefix: None,
    }
}

/// Dapr's variable for the token an app must show its sidecar.
pub const API_TOKEN_ENV: &str = "DAPR_API_TOKEN";
/// Dapr's variable for the token a sidecar shows its app.
pub const APP_TOKEN_ENV: &str = "APP_API_TOKEN";

/// The app's API token, when its run-file `env` sets one: its sidecar then refuses every call
/// without it (Dapr's health checks aside).
pub fn api_token(app: &AppPlan) -> Option<&str> {
    app.env
        .get(API_TOKEN_ENV)
        .map(String::as_str)
        .filter(|t| !t.is_empty())
}

/// The token the sidecar sends the app with every call, when the run file's `env` sets one.
pub fn app_token(app: &AppPlan) -> Option<&str> {
    app.env
        .get(APP_TOKEN_ENV)
        .map(String::as_str)
        .filter(|t| !t.is_empty())
}

/// The environment a sidecar's Envoy needs: the tokens, which configs name but never hold.
pub fn sidecar_env(app: &AppPlan) -> std::collections::BTreeMap<String, String> {
    [
        (API_TOKEN_ENV, api_token(app)),
        (APP_TOKEN_ENV, app_token(app)),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
    .collect()
}

/// The cluster that reaches `target`'s sidecar from `me`'s: HTTP/2, mutual TLS with the peer
/// pinned to the target's SPIFFE id, and the target's circuit breaker.
fn target_app_cluster(
    me: &AppPlan,
    target: &AppPlan,
    layout: &dyn Layout,
    my_tls: Option<&TlsFiles>,
) -> Cluster {
    let policy = me.resiliency.targets.get(&target.app_id);
    let mut c = cluster(
        &target_cluster(&target.app_id),
        &layout.peer(target),
        true,
        MAX_MESH_HEADERS,
    );
    c.circuit_breakers = Some(resiliency::circuit_breakers());
    if let Some((outlier, lb)) = resiliency::breaker(policy) {
        c.outlier_detection = Some(outlier);
        c.common_lb_config = Some(lb);
    }
    if let Some(tls) = my_tls {
        let (trust_domain, namespace) = layout.identity(target);
        let peer = spiffe_id(trust_domain, namespace, &target.app_id);
        c.transport_socket = Some(upstream_tls(tls, &peer));
    }
    c
}

/// A cluster of one address (static, or every address behind a DNS name). `max_response_headers`
/// is the most headers a response from it may have.
pub(crate) fn cluster(
    name: &str,
    reach: &Reach,
    http2: bool,
    max_response_headers: u32,
) -> Cluster {
    let (discovery, address, dns) = match reach {
        Reach::Static(address) => (Discovery::Static("STATIC"), address.clone(), false),
        // Every address behind the name is an instance, looked up again every 5 s (sooner when
        // the record's TTL says so).
        Reach::Dns { host, port } => (
            Discovery::ClusterType(CustomClusterType {
                name: "envoy.clusters.dns",
                typed_config: TypedConfig::DnsCluster(DnsCluster {
                    dns_refresh_rate: Dur::secs(5),
                    respect_dns_ttl: true,
                    dns_lookup_family: "V4_PREFERRED",
                }),
            }),
            Address::new(host.clone(), *port),
            true,
        ),
    };
    Cluster {
        name: name.to_string(),
        discovery,
        connect_timeout: Dur::secs(1),
        per_connection_buffer_limit_bytes: None,
        // Send each request to the least busy instance.
        lb_policy: dns.then_some("LEAST_REQUEST"),
        load_assignment: ClusterLoadAssignment {
            cluster_name: name.to_string(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    endpoint: Endpoint { address },
                }],
            }],
        },
        typed_extension_protocol_options: Some(ProtocolOptions {
            http: TypedConfig::UpstreamHttpProtocolOptions(UpstreamHttpProtocolOptions {
                common_http_protocol_options: HttpProtocolOptions {
                    headers_with_underscores_action: None,
                    max_headers_count: Some(max_response_headers),
                },
                explicit_http_config: if http2 {
                    ExplicitHttpConfig::Http2ProtocolOptions(Http2ProtocolOptions {
                        max_concurrent_streams: None,
                        // A peer on another host can vanish without a word (a node lost, a link
                        // cut): a request on its connection would wait forever. PINGs find out.
                        connection_keepalive: dns.then(|| KeepaliveSettings {
                            interval: Dur::secs(2),
                            timeout: Dur::secs(1),
                        }),
                    })
                } else {
                    ExplicitHttpConfig::HttpProtocolOptions {}
                },
            }),
        }),
        transport_socket: None,
        circuit_breakers: None,
        outlier_detection: None,
        common_lb_config: None,
        health_checks: vec![],
    }
}

fn tls_certificate(tls: &TlsFiles) -> TlsCertificate {
    TlsCertificate {
        certificate_chain: DataSource::Filename(tls.cert.display().to_string()),
        private_key: DataSource::Filename(tls.key.display().to_string()),
    }
}

/// The inbound side: a client certificate from the mesh CA is required; which caller may do
/// what is the filter's access-control decision.
fn downstream_tls(tls: &TlsFiles) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls",
        typed_config: TypedConfig::DownstreamTlsContext(DownstreamTlsContext {
            require_client_certificate: true,
            common_tls_context: CommonTlsContext {
                tls_certificates: vec![tls_certificate(tls)],
                alpn_protocols: vec!["h2", "http/1.1"],
                validation_context: Some(CertificateValidationContext {
                    trusted_ca: Some(DataSource::Filename(tls.ca.display().to_string())),
                    system_root_certs: None,
                    match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                        san_type: "URI",
                        matcher: StringMatcher::Prefix("spiffe://".into()),
                    }],
                }),
            },
        }),
    }
}

/// The outbound side of a hop: our certificate, and the callee must be exactly `peer`.
fn upstream_tls(tls: &TlsFiles, peer: &str) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls",
        typed_config: TypedConfig::UpstreamTlsContext(UpstreamTlsContext {
            sni: None,
            common_tls_context: CommonTlsContext {
                tls_certificates: vec![tls_certificate(tls)],
                alpn_protocols: vec!["h2"],
                validation_context: Some(CertificateValidationContext {
                    trusted_ca: Some(DataSource::Filename(tls.ca.display().to_string())),
                    system_root_certs: None,
                    match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                        san_type: "URI",
                        matcher: StringMatcher::Exact(peer.to_string()),
                    }],
                }),
            },
        }),
    }
}

/// The dapr-invoke filter with one plugin configuration. Fail closed, then recover: a crashed VM
/// never lets a request through unchecked, and a later request builds a fresh one.
fn wasm_filter(wasm: &str, plugin: &PluginConfig) -> Result<HttpFilter, String> {
    let configuration = serde_json::to_string(plugin).map_err(|e| e.to_string())?;
    // The variables the plugin reads (its API token) come from Envoy's own environment.
    let env: Vec<String> = match plugin {
        PluginConfig::Outbound(o) => o.api_token_env.iter().cloned().collect(),
        PluginConfig::Inbound(_) => vec![],
    };
    Ok(HttpFilter {
        name: FILTER_NAME,
        typed_config: TypedConfig::Wasm {
            config: Box::new(WasmPlugin {
                name: FILTER_NAME,
                root_id: FILTER_NAME,
                failure_policy: "FAIL_RELOAD",
                reload_config: Some(ReloadConfig {
                    backoff: BackOff {
                        base_interval: Dur::millis(100),
                        max_interval: Dur::secs(5),
                    },
                }),
                vm_config: VmConfig {
                    vm_id: FILTER_NAME,
                    runtime: "envoy.wasm.runtime.v8",
                    code: AsyncDataSource {
                        local: DataSource::Filename(wasm.to_string()),
                    },
                    environment_variables: (!env.is_empty())
                        .then_some(EnvironmentVariables { host_env_keys: env }),
                },
                configuration: TypedConfig::StringValue {
                    value: configuration,
                },
            }),
        },
    })
}

pub(crate) fn router() -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router",
        typed_config: TypedConfig::Router {},
    }
}

/// Envoy's own failures (no connection, timeout, no healthy endpoint, overflow, unknown cluster)
/// answered the Dapr way. The filter's own errors carry no response flag and pass unchanged.
/// `callee`: the inbound listener of that app, where no healthy endpoint means the app failed
/// its health check (Dapr's answer for an unhealthy app).
fn dapr_local_replies(callee: Option<&str>, grpc: bool) -> LocalReplyConfig {
    // A gRPC call's reply is Envoy's trailers-only answer, the text its `grpc-message`; an HTTP
    // call's is Dapr's JSON.
    let body = |message: String| match grpc {
        true => SubstitutionFormatString::TextFormatSource(DataSource::InlineString(message)),
        false => {
            let mut map = serde_json::Map::new();
            map.insert("errorCode".into(), json!(ERR_DIRECT_INVOKE));
            map.insert("message".into(), json!(message));
            SubstitutionFormatString::JsonFormat(map)
        }
    };
    let named = format!("%REQ({CALLEE_APP_ID_HEADER})%");
    let mut mappers = Vec::new();
    match callee {
        None => mappers.push(ResponseMapper {
            filter: AccessLogFilter::ResponseFlagFilter(ResponseFlagFilter { flags: vec!["NC"] }),
            status_code: Some(500),
            body_format_override: body(invoke_failed(
                &named,
                &format!("the sidecar has no cluster %REQ({DEFAULT_CLUSTER_HEADER})% for this app"),
            )),
        }),
        Some(app) => mappers.push(ResponseMapper {
            filter: AccessLogFilter::ResponseFlagFilter(ResponseFlagFilter { flags: vec!["UH"] }),
            status_code: Some(500),
            body_format_override: body(invoke_failed(app, "app is not in a healthy state")),
        }),
    }
    mappers.push(ResponseMapper {
        filter: AccessLogFilter::ResponseFlagFilter(ResponseFlagFilter {
            flags: vec!["UF", "URX", "UH", "UO", "UT", "UC", "UR", "LR", "DC"],
        }),
        status_code: None,
        body_format_override: body(invoke_failed(
            callee.unwrap_or(&named),
            "%LOCAL_REPLY_BODY% (%RESPONSE_FLAGS%)",
        )),
    });
    // Last, so the flags above are told first: any other 503 Envoy answers itself. The filter
    // never answers 503, so this is its VM failing (a trap, or a VM being rebuilt after one;
    // `failure_policy: FAIL_RELOAD`), which Envoy answers with an empty body.
    mappers.push(ResponseMapper {
        filter: AccessLogFilter::StatusCodeFilter(StatusCodeFilter {
            comparison: Comparison {
                op: "EQ",
                value: RuntimeUInt32 {
                    default_value: 503,
                    runtime_key: "dapr_invoke.local_reply.unavailable",
                },
            },
        }),
        status_code: None,
        body_format_override: body(format!(
            "invoke API is not ready: the {FILTER_NAME} filter failed \
             (%RESPONSE_CODE_DETAILS%)"
        )),
    });
    LocalReplyConfig { mappers }
}

/// One HTTP listener of a sidecar.
pub(crate) struct Http {
    pub name: &'static str,
    pub address: Address,
    /// Most headers a request may have.
    pub max_headers: u32,
    /// Most header bytes a request may have, in KiB; none: Envoy's default (60).
    pub max_header_kb: Option<u32>,
    pub routes: Vec<Route>,
    pub filters: Vec<HttpFilter>,
    pub local_replies: Option<LocalReplyConfig>,
}

/// A listener with one HTTP connection manager. Every listener the project generates is made
/// here, so each gets the same protections: paths normalized before any filter sees them,
/// headers with underscores dropped, a header-count limit, and a time limit on the headers.
pub(crate) fn listener(http: Http) -> Listener {
    let Http {
        name,
        address,
        max_headers,
        max_header_kb,
        routes,
        filters: http_filters,
        local_replies,
    } = http;
    let hcm = HttpConnectionManager {
        stat_prefix: name.to_string(),
        normalize_path: true,
        merge_slashes: true,
        path_with_escaped_slashes_action: None,
        max_request_headers_kb: max_header_kb,
        common_http_protocol_options: HttpProtocolOptions {
            headers_with_underscores_action: Some(HEADERS_WITH_UNDERSCORES),
            max_headers_count: Some(max_headers),
        },
        request_headers_timeout: Some(Dur::secs(HEADERS_TIMEOUT_SECS)),
        http2_protocol_options: None,
        local_reply_config: local_replies,
        route_config: RouteConfiguration {
            name: name.to_string(),
            virtual_hosts: vec![VirtualHost {
                name: name.to_string(),
                domains: vec!["*".into()],
                routes,
                virtual_clusters: vec![],
            }],
        },
        http_filters,
        tracing: None,
    };
    Listener {
        name: name.to_string(),
        address,
        traffic_direction: None,
        per_connection_buffer_limit_bytes: None,
        filter_chains: vec![FilterChain {
            filters: vec![NetworkFilter {
                name: "envoy.filters.network.http_connection_manager",
                typed_config: TypedConfig::HttpConnectionManager(Box::new(hcm)),
            }],
            transport_socket: None,
            transport_socket_connect_timeout: None,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runfile::{parse, Sequential};
    use serde_json::Value;

    fn plan() -> Plan {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        let text = "version: 1
apps:
  - appID: order-processor
    appDirPath: x
    appPort: 6001
    command: [a]
  - appID: checkout
    appDirPath: x
    command: [b]
    appProtocol: grpc
";
        parse(text, "dapr.yaml", d.path(), &mut Sequential::default()).unwrap()
    }

    fn local(certs: bool) -> layout::Local {
        layout::Local {
            wasm: "/w/dapr_invoke.wasm".into(),
            certs: certs.then(|| "/c".into()),
        }
    }

    fn json_of(p: &Plan, i: usize, layout: &dyn Layout) -> Value {
        serde_json::to_value(sidecar(p, &p.apps[i], layout).unwrap()).unwrap()
    }

    fn hcm(v: &Value, listener: usize) -> &Value {
        &v["static_resources"]["listeners"][listener]["filter_chains"][0]["filters"][0]
            ["typed_config"]
    }

    fn cluster_named<'a>(v: &'a Value, name: &str) -> &'a Value {
        v["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
    }

    #[test]
    fn plugin_configs_are_the_filters_own_type_and_pass_its_checks() {
        let p = plan();
        let out = outbound_plugin(&p, &p.apps[1]);
        out.check().unwrap();
        let PluginConfig::Outbound(o) = &out else {
            panic!("{out:?}")
        };
        assert_eq!(o.app_id, "checkout");
        assert_eq!(
            o.apps.0,
            [
                (
                    "order-processor".to_string(),
                    TargetApp::cluster("to-order-processor")
                ),
                ("checkout".to_string(), TargetApp::cluster("to-checkout")),
            ]
        );
        // What Envoy gets is exactly that value, serialized.
        let v = json_of(&p, 1, &local(true));
        let text = hcm(&v, 0)["http_filters"][0]["typed_config"]["config"]["configuration"]
            ["value"]
            .as_str()
            .unwrap();
        assert_eq!(serde_json::from_str::<PluginConfig>(text).unwrap(), out);
        let text = hcm(&v, 1)["http_filters"][0]["typed_config"]["config"]["configuration"]
            ["value"]
            .as_str()
            .unwrap();
        // checkout serves gRPC: its callers are checked by full method name.
        assert_eq!(
            text,
            r#"{"mode":"inbound","app_id":"checkout","calls":"grpc"}"#
        );
    }

    #[test]
    fn callee_sidecar_delivers_to_its_app() {
        let p = plan();
        let op = &p.apps[0];
        let v = json_of(&p, 0, &local(false));
        let listeners = v["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(
            listeners[0]["address"]["socket_address"]["port_value"],
            op.http_port
        );
        assert_eq!(
            listeners[1]["address"]["socket_address"]["port_value"],
            op.inbound_port
        );
        let inbound = &hcm(&v, 1)["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(inbound["route"]["cluster"], LOCAL_APP_CLUSTER);
        let local = cluster_named(&v, LOCAL_APP_CLUSTER);
        assert_eq!(
            local["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            6001
        );
        let http = &local["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert!(
            http["explicit_http_config"]
                .get("http_protocol_options")
                .is_some(),
            "http app: HTTP/1.1: {http}"
        );
        let wasm = &hcm(&v, 0)["http_filters"][0]["typed_config"]["config"];
        assert_eq!(
            wasm["vm_config"]["code"]["local"]["filename"],
            "/w/dapr_invoke.wasm"
        );
        assert_eq!(wasm["failure_policy"], "FAIL_RELOAD");
    }

    #[test]
    fn caller_without_app_port_answers_inbound_calls_with_a_dapr_error() {
        let p = plan();
        let v = json_of(&p, 1, &local(false));
        let inbound = &hcm(&v, 1)["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(inbound["direct_response"]["status"], 500);
        let body: Value = serde_json::from_str(
            inbound["direct_response"]["body"]["inline_string"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
        let names: Vec<&str> = v["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["to-order-processor", "to-checkout", metrics::ADMIN_CLUSTER]
        );
    }

    #[test]
    fn with_a_mesh_every_hop_is_mutual_tls_pinned_to_the_peer() {
        let p = plan();
        let v = json_of(&p, 1, &local(true));
        let to_op = cluster_named(&v, "to-order-processor");
        let ctx = &to_op["transport_socket"]["typed_config"]["common_tls_context"];
        assert_eq!(
            ctx["tls_certificates"][0]["certificate_chain"]["filename"],
            "/c/checkout.pem"
        );
        assert_eq!(
            ctx["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "spiffe://public/ns/default/order-processor"
        );
        let inbound = &v["static_resources"]["listeners"][1]["filter_chains"][0]
            ["transport_socket"]["typed_config"];
        assert_eq!(inbound["require_client_certificate"], true);
        assert_eq!(
            inbound["common_tls_context"]["validation_context"]["trusted_ca"]["filename"],
            "/c/ca.pem"
        );
        // The app's own hop stays plain, on loopback, as in Dapr.
        assert!(v["static_resources"]["listeners"][0]["filter_chains"][0]
            .get("transport_socket")
            .is_none());
    }

    #[test]
    fn targets_point_at_each_sidecars_inbound_port_and_nothing_collides() {
        let p = plan();
        let co = json_of(&p, 1, &local(false));
        let to_op = cluster_named(&co, "to-order-processor");
        assert_eq!(
            to_op["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            p.apps[0].inbound_port
        );
        let mut listen = vec![];
        for i in 0..p.apps.len() {
            let v = json_of(&p, i, &local(false));
            listen.push(v["admin"]["address"]["socket_address"]["port_value"].clone());
            for l in v["static_resources"]["listeners"].as_array().unwrap() {
                listen.push(l["address"]["socket_address"]["port_value"].clone());
            }
        }
        let mut sorted: Vec<u64> = listen.iter().map(|p| p.as_u64().unwrap()).collect();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), listen.len(), "{listen:?}");
        assert!(!sorted.contains(&6001));
    }

    #[test]
    fn the_grpc_listener_proxies_by_app_id_with_grpc_errors() {
        let p = plan();
        let v = json_of(&p, 1, &local(true));
        let listeners = v["static_resources"]["listeners"].as_array().unwrap();
        let names: Vec<&str> = listeners
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["outbound", "inbound", "grpc", metrics::METRICS_LISTENER]
        );
        assert_eq!(
            listeners[2]["address"]["socket_address"],
            json!({"address": "127.0.0.1", "port_value": p.apps[1].grpc_port})
        );
        let h = hcm(&v, 2);
        let text = h["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap();
        let PluginConfig::Outbound(o) = serde_json::from_str::<PluginConfig>(text).unwrap() else {
            panic!("{text}")
        };
        // gRPC's way of naming and refusing; no HTTP-only settings.
        assert_eq!(o.calls, Some(Calls::Grpc));
        assert!(o.app_channel.is_none() && o.max_body_bytes.is_none());
        let routes = h["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap();
        // Per target: a `dapr-stream` call first (no retries, the client's deadline only),
        // then the policy's route; a gRPC route's limit is the stream's, not `timeout`.
        let to_op: Vec<&Value> = routes
            .iter()
            .filter(|r| r["route"]["cluster"] == "to-order-processor")
            .collect();
        assert_eq!(to_op.len(), 2);
        assert_eq!(to_op[0]["match"]["headers"][1]["name"], GRPC_STREAM_HEADER);
        assert!(to_op[0]["route"].get("retry_policy").is_none());
        assert_eq!(
            to_op[0]["route"]["max_stream_duration"],
            json!({"grpc_timeout_header_max": "0s"})
        );
        assert_eq!(
            to_op[1]["route"]["retry_policy"]["retry_on"],
            "connect-failure,refused-stream"
        );
        // Envoy's own failures are trailers-only gRPC errors: their text, not Dapr's JSON.
        let mappers = h["local_reply_config"]["mappers"].as_array().unwrap();
        assert!(mappers.iter().all(|m| m["body_format_override"]
            .get("text_format_source")
            .is_some()));
        // The HTTP listener's are JSON.
        assert!(
            hcm(&v, 0)["local_reply_config"]["mappers"][0]["body_format_override"]
                .get("json_format")
                .is_some()
        );
    }

    #[test]
    fn a_failed_filter_vm_is_answered_with_a_dapr_error_on_every_listener() {
        let p = plan();
        let v = json_of(&p, 0, &local(true));
        for (n, name) in ["outbound", "inbound", "grpc"].iter().enumerate() {
            let h = hcm(&v, n);
            assert_eq!(v["static_resources"]["listeners"][n]["name"], *name);
            let mappers = h["local_reply_config"]["mappers"].as_array().unwrap();
            // Last: Envoy's own 503s with a response flag keep their own message.
            let last = mappers.last().unwrap();
            assert_eq!(
                last["filter"],
                json!({"status_code_filter": {"comparison": {"op": "EQ", "value": {
                    "default_value": 503, "runtime_key": "dapr_invoke.local_reply.unavailable"}}}})
            );
            assert!(last.get("status_code").is_none(), "{name}: stays 503");
            let body = &last["body_format_override"];
            let text = "invoke API is not ready: the dapr-invoke filter failed \
                        (%RESPONSE_CODE_DETAILS%)";
            match *name {
                "grpc" => assert_eq!(body["text_format_source"]["inline_string"], text),
                _ => assert_eq!(
                    body["json_format"],
                    json!({"errorCode": "ERR_DIRECT_INVOKE", "message": text})
                ),
            }
            assert!(mappers[..mappers.len() - 1]
                .iter()
                .all(|m| m["filter"].get("response_flag_filter").is_some()));
        }
    }

    #[test]
    fn every_listener_of_every_layout_gets_the_same_protections() {
        let p = plan();
        let container = layout::Container {
            name_template: "{app-id}-dapr".into(),
        };
        let layouts: [&dyn Layout; 3] = [&local(false), &local(true), &container];
        for layout in layouts {
            for i in 0..p.apps.len() {
                let v = json_of(&p, i, layout);
                for (n, l) in v["static_resources"]["listeners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                {
                    let h = hcm(&v, n);
                    let name = &l["name"];
                    assert_eq!(h["normalize_path"], true, "{name}");
                    assert_eq!(h["merge_slashes"], true, "{name}");
                    assert_eq!(h["request_headers_timeout"], "10s", "{name}");
                    for chain in l["filter_chains"].as_array().unwrap() {
                        // A TLS handshake has the same time limit as the headers.
                        let limit = &chain["transport_socket_connect_timeout"];
                        match chain.get("transport_socket") {
                            Some(_) => assert_eq!(limit, "10s", "{name}"),
                            None => assert!(limit.is_null(), "{name}"),
                        }
                    }
                    let opts = &h["common_http_protocol_options"];
                    assert_eq!(
                        opts["headers_with_underscores_action"], "DROP_HEADER",
                        "{name}"
                    );
                    let max = opts["max_headers_count"].as_u64().unwrap();
                    assert!(max >= u64::from(MAX_APP_HEADERS), "{name}");
                    // What a sidecar sends on must fit what the next one accepts.
                    if name == "outbound" || name == "grpc" || name == metrics::METRICS_LISTENER {
                        assert_eq!(max, u64::from(MAX_APP_HEADERS));
                    } else {
                        assert_eq!(max, u64::from(MAX_MESH_HEADERS));
                    }
                    for route in h["route_config"]["virtual_hosts"][0]["routes"]
                        .as_array()
                        .unwrap()
                    {
                        let removed = route["request_headers_to_remove"].as_array().unwrap();
                        assert!(
                            removed.iter().any(|h| h == DEFAULT_CLUSTER_HEADER),
                            "{route}"
                        );
                        // The caller's token is removed, or replaced by the app's own.
                        let replaced = route["request_headers_to_add"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|h| {
                                h["header"]["key"] == API_TOKEN_HEADER
                                    && h["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD"
                            });
                        assert!(
                            replaced || removed.iter().any(|h| h == API_TOKEN_HEADER),
                            "{name}: {route}"
                        );
                        if name == "outbound" {
                            assert!(removed.iter().any(|h| h == APP_ID_HEADER), "{route}");
                            // Every route to an app sets who calls whom, over what the app sent.
                            if route["route"].get("cluster").is_some() {
                                let set: Vec<&Value> = route["request_headers_to_add"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .filter(|h| h["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD")
                                    .map(|h| &h["header"]["key"])
                                    .collect();
                                for header in [
                                    CALLER_APP_ID_HEADER,
                                    CALLER_NAMESPACE_HEADER,
                                    CALLEE_APP_ID_HEADER,
                                ] {
                                    assert!(set.iter().any(|k| *k == header), "{route}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn in_containers_sidecars_find_each_other_by_name_on_daprs_ports() {
        let p = plan();
        let container = layout::Container {
            name_template: "{app-id}-dapr".into(),
        };
        let v = json_of(&p, 1, &container);
        let to_op = cluster_named(&v, "to-order-processor");
        assert_eq!(to_op["cluster_type"]["name"], "envoy.clusters.dns");
        assert_eq!(
            to_op["cluster_type"]["typed_config"]["respect_dns_ttl"],
            true
        );
        assert_eq!(to_op["lb_policy"], "LEAST_REQUEST");
        assert_eq!(
            to_op["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"],
            serde_json::json!({"address": "order-processor-dapr", "port_value": 50002})
        );
        let listeners = &v["static_resources"]["listeners"];
        assert_eq!(
            listeners[0]["address"]["socket_address"],
            serde_json::json!({"address": "127.0.0.1", "port_value": 3500})
        );
        assert_eq!(
            listeners[1]["address"]["socket_address"],
            serde_json::json!({"address": "0.0.0.0", "port_value": 50002})
        );
        assert_eq!(
            hcm(&v, 0)["http_filters"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]
                ["filename"],
            "/etc/dapr-envoy/dapr_invoke.wasm"
        );
    }

    #[test]
    fn an_app_calling_itself_is_served_by_its_own_sidecar() {
        let p = plan();
        let v = json_of(&p, 0, &local(true));
        let PluginConfig::Outbound(o) = outbound_plugin(&p, &p.apps[0]) else {
            panic!()
        };
        assert_eq!(o.apps.0[0].1.cluster, LOCAL_APP_CLUSTER);
        let names: Vec<&str> = v["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["to-checkout", LOCAL_APP_CLUSTER, metrics::ADMIN_CLUSTER]
        );
        // An app without a port has no app to serve it: its own inbound listener answers.
        let PluginConfig::Outbound(o) = outbound_plugin(&p, &p.apps[1]) else {
            panic!()
        };
        assert_eq!(o.apps.0[1].1.cluster, "to-checkout");
    }

    #[test]
    fn identities_follow_the_plans_namespace_and_trust_domain() {
        let mut p = plan();
        for a in &mut p.apps {
            a.namespace = "prod".into();
            a.trust_domain = "example.org".into();
        }
        let container = layout::Container {
            name_template: "{app-id}-dapr.{namespace}.svc.cluster.local".into(),
        };
        let v = json_of(&p, 1, &container);
        let to_op = cluster_named(&v, "to-order-processor");
        assert_eq!(
            to_op["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
                ["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "spiffe://example.org/ns/prod/order-processor"
        );
        assert_eq!(
            to_op["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["address"],
            "order-processor-dapr.prod.svc.cluster.local"
        );
        let PluginConfig::Outbound(o) = outbound_plugin(&p, &p.apps[1]) else {
            panic!()
        };
        assert_eq!(o.namespace.as_deref(), Some("prod"));
        // The default namespace is not written.
        let q = plan();
        let PluginConfig::Outbound(o) = outbound_plugin(&q, &q.apps[1]) else {
            panic!()
        };
        assert_eq!(o.namespace, None);
    }

    #[test]
    fn the_apps_own_cluster_carries_its_health_check_limits_and_tls() {
        let mut p = plan();
        let op = &mut p.apps[0];
        op.protocol = AppProtocol::Https;
        op.max_concurrency = Some(2);
        op.read_buffer_bytes = Some(4096);
        op.max_body_bytes = Some(1 << 20);
        op.health = Some(crate::runfile::AppHealth {
            path: "/healthz".into(),
            interval: std::time::Duration::from_secs(5),
            timeout: std::time::Duration::from_millis(500),
            threshold: 3,
        });
        let v = json_of(&p, 0, &local(true));
        let app = cluster_named(&v, LOCAL_APP_CLUSTER);
        let hc = &app["health_checks"][0];
        assert_eq!(hc["http_health_check"]["path"], "/healthz");
        assert_eq!(
            (hc["interval"].as_str(), hc["timeout"].as_str()),
            (Some("5s"), Some("0.500s"))
        );
        assert_eq!(
            (
                hc["unhealthy_threshold"].as_u64(),
                hc["healthy_threshold"].as_u64()
            ),
            (Some(3), Some(1))
        );
        assert_eq!(
            app["common_lb_config"]["healthy_panic_threshold"]["value"],
            0.0
        );
        assert_eq!(
            app["circuit_breakers"]["thresholds"][0]["max_connections"],
            2
        );
        let tls = &app["transport_socket"]["typed_config"];
        assert_eq!(
            tls["common_tls_context"]["alpn_protocols"],
            serde_json::json!(["http/1.1"])
        );
        assert!(
            tls["common_tls_context"]
                .get("validation_context")
                .is_none(),
            "unverified, as daprd"
        );
        assert_eq!(hcm(&v, 0)["max_request_headers_kb"], 4);
        assert_eq!(hcm(&v, 1)["max_request_headers_kb"], 12);
        // The inbound listener answers an unhealthy app as Dapr does.
        let mappers = &hcm(&v, 1)["local_reply_config"]["mappers"];
        assert_eq!(
            mappers[0]["filter"]["response_flag_filter"]["flags"],
            serde_json::json!(["UH"])
        );
        assert_eq!(
            mappers[0]["body_format_override"]["json_format"]["message"],
            "failed to invoke, id: order-processor, err: app is not in a healthy state"
        );
        // What the metadata API says of it.
        let PluginConfig::Outbound(o) = outbound_plugin(&p, &p.apps[0]) else {
            panic!()
        };
        let channel = o.app_channel.unwrap();
        assert_eq!(
            (channel.protocol.as_str(), channel.max_concurrency),
            ("https", Some(2))
        );
        let health = channel.health.unwrap();
        assert_eq!(
            (health.interval.as_str(), health.timeout.as_str()),
            ("5s", "500ms")
        );
        assert_eq!(o.max_body_bytes, Some(1 << 20));
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        use std::time::Duration;
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ] {
            assert_eq!(go_duration(d), want);
        }
    }
}
