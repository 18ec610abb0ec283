//! Dapr's tracing ([`crate::tracing::Tracing`], from the app's Configuration) as Envoy's own: every
//! HTTP listener of the sidecar gets a span per call, named and tagged as daprd names its spans,
//! and the spans go to the collector through a cluster of their own.
//!
//! One span per sidecar hop, as daprd makes one per daprd: the caller's sidecar a CLIENT span
//! `CallLocal/<callee>/<method>` (its outbound listener is `OUTBOUND`), the callee's sidecar a
//! SERVER span of the same name, its child. Envoy propagates W3C `traceparent`/`tracestate`
//! (and B3 for Zipkin) to the callee and to the app, and the caller's app gets its sidecar's
//! `traceparent` back on the response, as daprd adds it. Names and tags are format strings Envoy
//! evaluates when the span ends, so they see the path the filter rewrote and the callee the route
//! named; nothing is added to the filter. Without a tracing section nothing here is generated.

use super::api::*;
use super::Reach;
use crate::runfile::AppPlan;
use crate::tracing::{Endpoint, Exporter, OtlpProtocol, Tracing};
use dapr_invoke::names::{
    APP_ID_HEADER, CALLEE_APP_ID_HEADER, CALLER_APP_ID_HEADER, CALLER_NAMESPACE_HEADER,
};

/// The cluster the spans are sent through.
pub const TRACING_CLUSTER: &str = "dapr-tracing";

/// The name of the listener that other sidecars call: its spans are the callee's (SERVER).
const INBOUND: &str = "inbound";
/// The name of Dapr's gRPC port: a call's span is named by its full method, as daprd's proxy.
const GRPC: &str = "grpc";

/// Adds tracing to every HTTP listener of `sidecar`, and the collector's cluster, when `me`'s
/// Configuration traces.
pub fn trace(sidecar: &mut Bootstrap, me: &AppPlan) {
    let Some(tracing) = &me.tracing else {
        return;
    };
    for listener in &mut sidecar.static_resources.listeners {
        if listener.name == super::metrics::METRICS_LISTENER {
            continue;
        }
        let inbound = listener.name == INBOUND;
        listener.traffic_direction = Some(if inbound { "INBOUND" } else { "OUTBOUND" });
        for chain in &mut listener.filter_chains {
            for filter in &mut chain.filters {
                let TypedConfig::HttpConnectionManager(hcm) = &mut filter.typed_config else {
                    continue;
                };
                hcm.tracing = Some(hcm_tracing(tracing, me, &listener.name));
                if !inbound {
                    // The app's own sidecar tells it its span, as daprd does.
                    for vhost in &mut hcm.route_config.virtual_hosts {
                        for route in &mut vhost.routes {
                            route.response_headers_to_add.extend(returned_context());
                        }
                    }
                }
            }
        }
    }
    sidecar
        .static_resources
        .clusters
        .push(collector_cluster(tracing));
}

/// The trace context the router sent on (the sidecar's own span), back to the app: the request's
/// `traceparent` once Envoy injected it. Not over one the app's server set itself.
fn returned_context() -> [HeaderValueOption; 2] {
    [
        HeaderValueOption::if_absent("traceparent", "%REQ(traceparent)%"),
        HeaderValueOption::if_absent("tracestate", "%REQ(tracestate)%"),
    ]
}

/// The listener's tracing: the span's name and tags as daprd's, sampled at the Configuration's
/// rate (a caller's sampled `traceparent` is followed whatever the rate).
fn hcm_tracing(tracing: &Tracing, me: &AppPlan, listener: &str) -> HcmTracing {
    let literal = |tag: &str, value: &str| CustomTag {
        tag: tag.into(),
        value: CustomTagValue::Literal {
            value: value.into(),
        },
    };
    let formatted = |tag: &str, format: &str| CustomTag {
        tag: tag.into(),
        value: CustomTagValue::Value(format.into()),
    };
    let header = |name: &str| CustomTag {
        tag: name.into(),
        value: CustomTagValue::RequestHeader { name: name.into() },
    };
    // gRPC calls (Dapr's gRPC port, a gRPC app's inbound listener) are named by their full
    // method and tagged by their gRPC status, as daprd's gRPC proxy does.
    let grpc = listener == GRPC || (listener == INBOUND && me.protocol.grpc());
    let mut custom_tags = if grpc {
        vec![
            literal("dapr.protocol", "grpc"),
            formatted("rpc.grpc.status_code", "%GRPC_STATUS_NUMBER%"),
        ]
    } else {
        vec![
            literal("rpc.service", "ServiceInvocation"),
            literal("dapr.protocol", "http"),
            formatted("dapr.status_code", "%RESPONSE_CODE%"),
            formatted("http.request.method", "%REQ(:method)%"),
        ]
    };
    custom_tags.extend([header(CALLER_APP_ID_HEADER), header(CALLEE_APP_ID_HEADER)]);
    let inbound = listener == INBOUND;
    let operation = if grpc {
        if !inbound {
            custom_tags.push(formatted(
                "net.peer.name",
                &format!("%REQ({CALLEE_APP_ID_HEADER}?{APP_ID_HEADER})%"),
            ));
        }
        "%PATH(NQ)%".to_string()
    } else if inbound {
        custom_tags.push(formatted("dapr.invoke_method", "%PATH(NQ)%"));
        custom_tags.push(header(CALLER_NAMESPACE_HEADER));
        // The callee is this app: its name is not taken from the request.
        format!("CallLocal/{}%PATH(NQ)%", me.app_id)
    } else {
        // The route names the callee; a call the filter refused has the id the app gave.
        let callee = format!("%REQ({CALLEE_APP_ID_HEADER}?{APP_ID_HEADER})%");
        custom_tags.push(formatted("net.peer.name", &callee));
        custom_tags.push(formatted("dapr.api", "%REQ(:method)% %PATH(NQ)%"));
        custom_tags.push(formatted("url.full", "%PATH%"));
        format!("CallLocal/{callee}%PATH(NQ)%")
    };
    HcmTracing {
        random_sampling: Percent {
            value: f64::from(tracing.sampling_per_10k) / 100.0,
        },
        operation,
        custom_tags,
        provider: provider(tracing, me),
    }
}

fn provider(tracing: &Tracing, me: &AppPlan) -> TracingProvider {
    match &tracing.exporter {
        Exporter::Zipkin(endpoint) => TracingProvider {
            name: "envoy.tracers.zipkin",
            typed_config: TypedConfig::ZipkinConfig(ZipkinConfig {
                collector_cluster: TRACING_CLUSTER.into(),
                collector_endpoint: endpoint.path.clone(),
                collector_hostname: endpoint.authority(),
                collector_endpoint_version: "HTTP_JSON",
                trace_id_128bit: true,
                shared_span_context: false,
                // Dapr propagates W3C trace context whatever the exporter.
                trace_context_option: "USE_B3_WITH_W3C_PROPAGATION",
            }),
        },
        Exporter::Otlp {
            endpoint,
            protocol,
            headers,
            timeout,
        } => TracingProvider {
            name: "envoy.tracers.opentelemetry",
            typed_config: TypedConfig::OpenTelemetryConfig(OpenTelemetryConfig {
                // daprd's resource: `service.name` is the app id.
                service_name: me.app_id.clone(),
                export: match protocol {
                    OtlpProtocol::Grpc => OtlpExport::GrpcService(GrpcService {
                        envoy_grpc: EnvoyGrpc {
                            cluster_name: TRACING_CLUSTER.into(),
                            authority: endpoint.authority(),
                        },
                        timeout: Dur(*timeout),
                        initial_metadata: headers
                            .iter()
                            .map(|(k, v)| HeaderValue {
                                key: k.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                    }),
                    OtlpProtocol::Http => OtlpExport::HttpService(HttpService {
                        http_uri: HttpUri {
                            uri: format!(
                                "{}://{}{}",
                                if endpoint.tls { "https" } else { "http" },
                                endpoint.authority(),
                                endpoint.path
                            ),
                            cluster: TRACING_CLUSTER.into(),
                            timeout: Dur(*timeout),
                        },
                        request_headers_to_add: headers
                            .iter()
                            .map(|(k, v)| HeaderValueOption::overwrite(k, v.clone()))
                            .collect(),
                    }),
                },
            }),
        },
    }
}

/// The collector's cluster: by address, or by every address its name resolves to; TLS verified
/// against the system's CAs and the collector's name when the Configuration asks for it.
fn collector_cluster(tracing: &Tracing) -> Cluster {
    let (endpoint, http2) = match &tracing.exporter {
        Exporter::Zipkin(e) => (e, false),
        Exporter::Otlp {
            endpoint, protocol, ..
        } => (endpoint, *protocol == OtlpProtocol::Grpc),
    };
    let ip = endpoint.host.parse::<std::net::IpAddr>().is_ok();
    let reach = if ip {
        Reach::Static(Address::new(endpoint.host.clone(), endpoint.port))
    } else {
        Reach::Dns {
            host: endpoint.host.clone(),
            port: endpoint.port,
        }
    };
    let mut c = super::cluster(TRACING_CLUSTER, &reach, http2, super::MAX_APP_HEADERS);
    if endpoint.tls {
        c.transport_socket = Some(collector_tls(endpoint, ip, http2));
    }
    c
}

fn collector_tls(endpoint: &Endpoint, ip: bool, http2: bool) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls",
        typed_config: TypedConfig::UpstreamTlsContext(UpstreamTlsContext {
            sni: (!ip).then(|| endpoint.host.clone()),
            common_tls_context: CommonTlsContext {
                tls_certificates: vec![],
                alpn_protocols: vec![if http2 { "h2" } else { "http/1.1" }],
                validation_context: Some(CertificateValidationContext {
                    trusted_ca: None,
                    system_root_certs: Some(Empty {}),
                    match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                        san_type: if ip { "IP_ADDRESS" } else { "DNS" },
                        matcher: StringMatcher::Exact(endpoint.host.clone()),
                    }],
                }),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::{layout, sidecar};
    use crate::runfile::{parse, Sequential};
    use crate::tracing::Endpoint;
    use serde_json::Value;

    fn sidecar_json(tracing: Option<Tracing>) -> Value {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        let text = "version: 1\napps:\n  - appID: a\n    appDirPath: x\n    appPort: 6001\n    command: [a]\n  - appID: b\n    appDirPath: x\n    command: [b]\n";
        let mut plan = parse(text, "dapr.yaml", d.path(), &mut Sequential::default()).unwrap();
        plan.apps[1].tracing = tracing;
        let layout = layout::Local {
            wasm: "/w.wasm".into(),
            certs: Some("/c".into()),
        };
        serde_json::to_value(sidecar(&plan, &plan.apps[1], &layout).unwrap()).unwrap()
    }

    fn hcm(v: &Value, i: usize) -> &Value {
        &v["static_resources"]["listeners"][i]["filter_chains"][0]["filters"][0]["typed_config"]
    }

    #[test]
    fn every_listener_traces_as_dapr_names_its_spans() {
        let v = sidecar_json(Some(Tracing {
            sampling_per_10k: 2_500,
            exporter: Exporter::Otlp {
                endpoint: Endpoint {
                    host: "collector.example".into(),
                    port: 4317,
                    path: "/".into(),
                    tls: true,
                },
                protocol: OtlpProtocol::Grpc,
                headers: vec![("x-tenant".into(), "t".into())],
                timeout: std::time::Duration::from_secs(3),
            },
        }));
        let listeners = v["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 4);
        // The metrics listener is no app traffic: a scrape is no span.
        assert_eq!(
            listeners[3]["name"],
            crate::envoy::metrics::METRICS_LISTENER
        );
        assert!(hcm(&v, 3).get("tracing").is_none());
        // Dapr's gRPC port names a call's span by its full method, tagged by its gRPC status.
        assert_eq!(listeners[2]["name"], GRPC);
        assert_eq!(hcm(&v, 2)["tracing"]["operation"], "%PATH(NQ)%");
        for (i, l) in listeners.iter().enumerate().take(2) {
            let t = &hcm(&v, i)["tracing"];
            assert_eq!(t["random_sampling"]["value"], 25.0);
            let provider = &t["provider"]["typed_config"];
            assert_eq!(provider["service_name"], "b");
            assert_eq!(
                provider["grpc_service"]["envoy_grpc"]["cluster_name"],
                TRACING_CLUSTER
            );
            assert_eq!(provider["grpc_service"]["timeout"], "3s");
            assert_eq!(
                provider["grpc_service"]["initial_metadata"][0]["key"],
                "x-tenant"
            );
            let inbound = l["name"] == INBOUND;
            assert_eq!(
                l["traffic_direction"],
                if inbound { "INBOUND" } else { "OUTBOUND" }
            );
            assert_eq!(
                t["operation"],
                if inbound {
                    "CallLocal/b%PATH(NQ)%"
                } else {
                    "CallLocal/%REQ(dapr-callee-app-id?dapr-app-id)%%PATH(NQ)%"
                }
            );
        }
        // The app gets its sidecar's trace context back on every route's response.
        for route in hcm(&v, 0)["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap()
        {
            let added = route["response_headers_to_add"].as_array().unwrap();
            assert!(added
                .iter()
                .any(|h| h["header"]["key"] == "traceparent"
                    && h["append_action"] == "ADD_IF_ABSENT"));
        }
        let clusters = v["static_resources"]["clusters"].as_array().unwrap();
        let c = clusters
            .iter()
            .find(|c| c["name"] == TRACING_CLUSTER)
            .unwrap();
        assert_eq!(c["cluster_type"]["name"], "envoy.clusters.dns");
        let tls = &c["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "collector.example");
        let validation = &tls["common_tls_context"]["validation_context"];
        assert!(validation.get("trusted_ca").is_none());
        assert_eq!(validation["system_root_certs"], serde_json::json!({}));
        assert_eq!(
            validation["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "collector.example"
        );
    }

    #[test]
    fn zipkin_propagates_w3c_and_without_tracing_nothing_is_added() {
        let v = sidecar_json(Some(Tracing {
            sampling_per_10k: 10_000,
            exporter: Exporter::Zipkin(Endpoint {
                host: "127.0.0.1".into(),
                port: 9411,
                path: "/api/v2/spans".into(),
                tls: false,
            }),
        }));
        let z = &hcm(&v, 1)["tracing"]["provider"]["typed_config"];
        assert_eq!(z["trace_context_option"], "USE_B3_WITH_W3C_PROPAGATION");
        assert_eq!(z["trace_id_128bit"], true);
        assert_eq!(z["shared_span_context"], false);
        assert_eq!(z["collector_hostname"], "127.0.0.1:9411");
        let c = v["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == TRACING_CLUSTER)
            .unwrap();
        assert_eq!(c["type"], "STATIC");
        assert!(c.get("transport_socket").is_none());

        let plain = sidecar_json(None);
        let text = plain.to_string();
        for absent in [
            "tracing",
            "traffic_direction",
            TRACING_CLUSTER,
            "traceparent",
        ] {
            assert!(!text.contains(absent), "{absent}");
        }
    }
}
