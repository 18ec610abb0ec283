//! The Envoy bootstrap of one app's sidecar, built as data from a [`Plan`].
//!
//! Each sidecar has an outbound listener on the app's `DAPR_HTTP_PORT` (the dapr-invoke filter,
//! then the router on the filter's cluster header), an inbound listener that other sidecars call
//! and that delivers to the app, one cluster per app of the run file pointing at that app's
//! inbound listener, and a cluster for its own app.

use std::path::Path;

use serde_json::{json, Value};

use crate::certs::{spiffe_id, TlsFiles};
use crate::resiliency;
use crate::runfile::{AppPlan, AppProtocol, Plan};

/// The mesh's TLS material: every sidecar-to-sidecar hop is mutual TLS.
pub struct Mesh<'a> {
    pub trust_domain: &'a str,
    pub namespace: &'a str,
    /// One entry per app of the plan, in plan order.
    pub files: &'a [TlsFiles],
}

impl Mesh<'_> {
    fn files_of(&self, plan: &Plan, app_id: &str) -> Option<&TlsFiles> {
        let i = plan.apps.iter().position(|a| a.app_id == app_id)?;
        self.files.get(i)
    }
}

/// The header the filter writes the chosen cluster into, and the router reads.
pub const CLUSTER_HEADER: &str = "x-dapr-cluster";
/// The cluster of the sidecar's own app.
pub const LOCAL_APP_CLUSTER: &str = "local-app";

/// The cluster that reaches `app_id`'s sidecar.
pub fn target_cluster(app_id: &str) -> String {
    format!("to-{app_id}")
}

/// The filter's plugin configuration for `me`: every app of the run file is a target.
pub fn plugin_config(plan: &Plan, me: &AppPlan) -> Value {
    let apps: serde_json::Map<String, Value> = plan
        .apps
        .iter()
        .map(|a| {
            (
                a.app_id.clone(),
                json!({ "cluster": target_cluster(&a.app_id) }),
            )
        })
        .collect();
    json!({ "app_id": me.app_id, "namespace": "default", "apps": apps })
}

/// The whole bootstrap for `me`'s sidecar. The plugin configuration is checked with the filter's
/// own parser first, so a config Envoy would refuse is never written.
pub fn sidecar(
    plan: &Plan,
    me: &AppPlan,
    wasm: &Path,
    mesh: Option<&Mesh>,
) -> Result<Value, String> {
    let my_tls = match mesh {
        Some(m) => Some(
            m.files_of(plan, &me.app_id)
                .ok_or_else(|| format!("{}: no certificate", me.app_id))?,
        ),
        None => None,
    };
    let plugin = plugin_config(plan, me).to_string();
    dapr_invoke::config::Config::from_json(plugin.as_bytes())
        .map_err(|e| format!("{}: {e}", me.app_id))?;

    // One route per target app, selected by the cluster the filter chose, carrying that target's
    // timeout and retries; the last route catches a cluster Envoy does not have (a JSON error).
    let mut outbound_routes: Vec<Value> = plan
        .apps
        .iter()
        .map(|a| {
            let cluster = target_cluster(&a.app_id);
            let mut action = resiliency::route_action(me.resiliency.targets.get(&a.app_id));
            set(&mut action, "cluster", json!(cluster));
            json!({
                "match": { "prefix": "/", "headers": [
                    { "name": CLUSTER_HEADER, "string_match": { "exact": cluster } },
                ]},
                "route": action,
                "request_headers_to_remove": [CLUSTER_HEADER],
            })
        })
        .collect();
    outbound_routes.push(json!({
        "match": { "prefix": "/" },
        "route": { "cluster_header": CLUSTER_HEADER, "timeout": "0s" },
        "request_headers_to_remove": [CLUSTER_HEADER],
    }));
    let inbound_route = match me.app_port {
        Some(_) => json!({
            "match": { "prefix": "/" },
            "route": { "cluster": LOCAL_APP_CLUSTER, "timeout": "0s" },
            "request_headers_to_remove": [CLUSTER_HEADER],
        }),
        // Dapr's answer when the callee has no app port: its app channel is not initialized.
        None => json!({
            "match": { "prefix": "/" },
            "direct_response": {
                "status": 500,
                "body": { "inline_string": json!({
                    "errorCode": "ERR_DIRECT_INVOKE",
                    "message": format!("failed to invoke, id: {}, err: app channel is not initialized (the app has no appPort)", me.app_id),
                }).to_string() },
            },
            "response_headers_to_add": [{ "header": { "key": "content-type", "value": "application/json" } }],
        }),
    };
    let filter = wasm_filter(wasm, &plugin);

    let mut clusters: Vec<Value> = Vec::with_capacity(plan.apps.len() + 1);
    for a in &plan.apps {
        let mut c = cluster(&target_cluster(&a.app_id), a.inbound_port, true);
        for (key, value) in resiliency::cluster_settings(me.resiliency.targets.get(&a.app_id)) {
            set(&mut c, key, value);
        }
        if let (Some(m), Some(tls)) = (mesh, my_tls) {
            // Present our identity; accept only the target's.
            let peer = spiffe_id(m.trust_domain, m.namespace, &a.app_id);
            set(&mut c, "transport_socket", upstream_tls(tls, &peer));
        }
        clusters.push(c);
    }
    if let Some(port) = me.app_port {
        clusters.push(cluster(
            LOCAL_APP_CLUSTER,
            port,
            me.protocol == AppProtocol::H2c,
        ));
    }
    let mut outbound = listener(
        "outbound",
        me.http_port,
        outbound_routes,
        vec![filter, router()],
    );
    if let Some(hcm) = outbound.pointer_mut("/filter_chains/0/filters/0/typed_config") {
        set(hcm, "local_reply_config", dapr_local_replies());
    }
    // With mutual TLS, the callee's filter names the caller from its certificate and applies the
    // app's access-control policy; without it there is no identity to check.
    let inbound_filters = match my_tls {
        Some(_) => {
            let plugin = inbound_plugin_config(me).to_string();
            dapr_invoke::config::Config::from_json(plugin.as_bytes())
                .map_err(|e| format!("{} (inbound): {e}", me.app_id))?;
            vec![wasm_filter(wasm, &plugin), router()]
        }
        None => vec![router()],
    };
    let mut inbound = listener(
        "inbound",
        me.inbound_port,
        vec![inbound_route],
        inbound_filters,
    );
    if let Some(hcm) = inbound.pointer_mut("/filter_chains/0/filters/0/typed_config") {
        set(hcm, "local_reply_config", dapr_local_replies());
    }
    if let Some(tls) = my_tls {
        if let Some(chain) = inbound.pointer_mut("/filter_chains/0") {
            set(chain, "transport_socket", downstream_tls(tls));
        }
    }

    Ok(json!({
        "node": { "id": me.app_id, "cluster": me.app_id },
        "admin": { "address": address(me.admin_port) },
        "static_resources": {
            "listeners": [
                outbound,
                inbound,
            ],
            "clusters": clusters,
        },
    }))
}

fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

fn tls_certificate(tls: &TlsFiles) -> Value {
    json!({
        "certificate_chain": { "filename": tls.cert.display().to_string() },
        "private_key": { "filename": tls.key.display().to_string() },
    })
}

/// The inbound side: a client certificate from the mesh CA is required; which caller may do
/// what is the filter's access-control decision.
fn downstream_tls(tls: &TlsFiles) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": {
                "tls_certificates": [tls_certificate(tls)],
                "alpn_protocols": ["h2", "http/1.1"],
                "validation_context": {
                    "trusted_ca": { "filename": tls.ca.display().to_string() },
                    "match_typed_subject_alt_names": [
                        { "san_type": "URI", "matcher": { "prefix": "spiffe://" } },
                    ],
                },
            },
        },
    })
}

/// The outbound side of a hop: our certificate, and the callee must be exactly `peer`.
fn upstream_tls(tls: &TlsFiles, peer: &str) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [tls_certificate(tls)],
                "alpn_protocols": ["h2"],
                "validation_context": {
                    "trusted_ca": { "filename": tls.ca.display().to_string() },
                    "match_typed_subject_alt_names": [
                        { "san_type": "URI", "matcher": { "exact": peer } },
                    ],
                },
            },
        },
    })
}

/// The dapr-invoke filter with one plugin configuration. Fail closed, then recover: a crashed VM
/// never lets a request through unchecked, and a later request builds a fresh one.
fn wasm_filter(wasm: &Path, plugin: &str) -> Value {
    json!({
        "name": "dapr-invoke",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "dapr-invoke",
                "root_id": "dapr-invoke",
                "failure_policy": "FAIL_RELOAD",
                "reload_config": { "backoff": { "base_interval": "0.1s", "max_interval": "5s" } },
                "vm_config": {
                    "vm_id": "dapr-invoke",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": wasm.display().to_string() } },
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin,
                },
            },
        },
    })
}

/// The callee side's plugin configuration: who this app is, and its access-control policy.
pub fn inbound_plugin_config(me: &AppPlan) -> Value {
    let mut cfg = json!({ "app_id": me.app_id, "namespace": "default", "mode": "inbound" });
    if let Some(acl) = &me.access_control {
        set(&mut cfg, "access_control", acl.clone());
    }
    cfg
}

fn address(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    })
}

/// Envoy's own failures (no connection, timeout, no healthy endpoint, overflow, unknown cluster)
/// answered the Dapr way. The filter's own errors carry no response flag and pass unchanged.
fn dapr_local_replies() -> Value {
    let body = |message: &str| json!({ "json_format": { "errorCode": "ERR_DIRECT_INVOKE", "message": message } });
    json!({ "mappers": [
        {
            "filter": { "response_flag_filter": { "flags": ["NC"] } },
            "status_code": 500,
            "body_format_override": body("failed to invoke, id: %REQ(dapr-callee-app-id)%, err: the sidecar has no cluster %REQ(x-dapr-cluster)% for this app"),
        },
        {
            "filter": { "response_flag_filter": { "flags": ["UF", "URX", "UH", "UO", "UT", "UC", "UR", "LR", "DC"] } },
            "body_format_override": body("failed to invoke, id: %REQ(dapr-callee-app-id)%, err: %LOCAL_REPLY_BODY% (%RESPONSE_FLAGS%)"),
        },
    ]})
}

fn listener(name: &str, port: u16, routes: Vec<Value>, http_filters: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": address(port),
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "normalize_path": true,
                "merge_slashes": true,
                "route_config": {
                    "name": name,
                    "virtual_hosts": [{ "name": name, "domains": ["*"], "routes": routes }],
                },
                "http_filters": http_filters,
            },
        }]}],
    })
}

fn cluster(name: &str, port: u16, http2: bool) -> Value {
    let mut c = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address(port) } }] }],
        },
    });
    if http2 {
        if let Some(obj) = c.as_object_mut() {
            obj.insert(
                "typed_extension_protocol_options".into(),
                json!({ "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": { "http2_protocol_options": {} },
                }}),
            );
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runfile::{parse, Ports};

    struct Seq(u16);
    impl Ports for Seq {
        fn is_free(&mut self, _: u16) -> bool {
            true
        }
        fn ephemeral(&mut self) -> Option<u16> {
            self.0 += 1;
            Some(self.0)
        }
    }

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
        parse(text, "dapr.yaml", d.path(), &mut Seq(40000)).unwrap()
    }

    fn ports_of(v: &Value) -> Vec<u64> {
        let mut out = vec![];
        fn walk(v: &Value, out: &mut Vec<u64>) {
            match v {
                Value::Object(m) => {
                    if let Some(p) = m.get("port_value").and_then(Value::as_u64) {
                        out.push(p);
                    }
                    m.values().for_each(|x| walk(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(v, &mut out);
        out
    }

    #[test]
    fn plugin_config_lists_every_app_and_the_filter_accepts_it() {
        let p = plan();
        let cfg = plugin_config(&p, &p.apps[1]);
        assert_eq!(cfg["app_id"], "checkout");
        assert_eq!(
            cfg["apps"]["order-processor"]["cluster"],
            "to-order-processor"
        );
        assert_eq!(cfg["apps"]["checkout"]["cluster"], "to-checkout");
        dapr_invoke::config::Config::from_json(cfg.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn callee_sidecar_delivers_to_its_app() {
        let p = plan();
        let op = &p.apps[0];
        let v = sidecar(&p, op, Path::new("/w/dapr_invoke.wasm"), None).unwrap();
        let listeners = v["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(
            listeners[0]["address"]["socket_address"]["port_value"],
            op.http_port
        );
        assert_eq!(
            listeners[1]["address"]["socket_address"]["port_value"],
            op.inbound_port
        );
        let inbound = &listeners[1]["filter_chains"][0]["filters"][0]["typed_config"]
            ["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(inbound["route"]["cluster"], LOCAL_APP_CLUSTER);
        let clusters = v["static_resources"]["clusters"].as_array().unwrap();
        let local = clusters
            .iter()
            .find(|c| c["name"] == LOCAL_APP_CLUSTER)
            .unwrap();
        assert_eq!(
            local["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            6001
        );
        assert!(
            local.get("typed_extension_protocol_options").is_none(),
            "http app: HTTP/1.1"
        );
        let wasm = &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            [0]["typed_config"]["config"];
        assert_eq!(
            wasm["vm_config"]["code"]["local"]["filename"],
            "/w/dapr_invoke.wasm"
        );
        assert_eq!(wasm["failure_policy"], "FAIL_RELOAD");
    }

    #[test]
    fn caller_without_app_port_answers_inbound_calls_with_a_dapr_error() {
        let p = plan();
        let co = &p.apps[1];
        let v = sidecar(&p, co, Path::new("/w.wasm"), None).unwrap();
        let inbound = &v["static_resources"]["listeners"][1]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0];
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
        assert_eq!(names, ["to-order-processor", "to-checkout"]);
    }

    #[test]
    fn with_a_mesh_every_hop_is_mutual_tls_pinned_to_the_peer() {
        let p = plan();
        let files: Vec<TlsFiles> = p
            .apps
            .iter()
            .map(|a| TlsFiles {
                ca: "/c/ca.pem".into(),
                cert: format!("/c/{}.pem", a.app_id).into(),
                key: format!("/c/{}.key", a.app_id).into(),
            })
            .collect();
        let mesh = Mesh {
            trust_domain: "public",
            namespace: "default",
            files: &files,
        };
        let v = sidecar(&p, &p.apps[1], Path::new("/w.wasm"), Some(&mesh)).unwrap();
        let to_op = v["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "to-order-processor")
            .unwrap();
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
        let inbound_filters = &v["static_resources"]["listeners"][1]["filter_chains"][0]["filters"]
            [0]["typed_config"]["http_filters"];
        let plugin: Value = serde_json::from_str(
            inbound_filters[0]["typed_config"]["config"]["configuration"]["value"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            plugin,
            json!({"app_id": "checkout", "namespace": "default", "mode": "inbound"})
        );
        // The app's own hop stays plain, on loopback, as in Dapr.
        assert!(v["static_resources"]["listeners"][0]["filter_chains"][0]
            .get("transport_socket")
            .is_none());
    }

    #[test]
    fn targets_point_at_each_sidecars_inbound_port_and_nothing_collides() {
        let p = plan();
        let co = sidecar(&p, &p.apps[1], Path::new("/w.wasm"), None).unwrap();
        let to_op = co["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "to-order-processor")
            .unwrap();
        assert_eq!(
            to_op["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            p.apps[0].inbound_port
        );
        let mut listen: Vec<u64> = vec![];
        for a in &p.apps {
            let v = sidecar(&p, a, Path::new("/w.wasm"), None).unwrap();
            listen.push(
                v["admin"]["address"]["socket_address"]["port_value"]
                    .as_u64()
                    .unwrap(),
            );
            for l in v["static_resources"]["listeners"].as_array().unwrap() {
                listen.extend(ports_of(&l["address"]));
            }
        }
        let mut sorted = listen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), listen.len(), "{listen:?}");
        assert!(!listen.contains(&6001));
    }
}
