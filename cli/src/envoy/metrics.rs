//! Dapr's metrics from an Envoy sidecar: Envoy counts every call in stats of its own, named so
//! that they say who called whom, and the sidecar's metrics listener shows them in Prometheus'
//! format under Dapr's names (`dapr_runtime_service_invocation_*`, dapr/dapr
//! `pkg/diagnostics/service_monitoring.go`), beside Envoy's own metrics. Nothing is counted twice
//! and the filter counts nothing on a forwarded call (its counters are for refusals:
//! [`dapr_invoke::metrics`]).
//!
//! - The caller's sidecar: each route to a target app has the app id as its `stat_prefix`, so
//!   Envoy keeps `vhost.outbound.route.<target>.upstream_rq_{total,<status>,time}`: requests sent
//!   to each app, responses by status, and the round-trip latency (a histogram with Dapr's
//!   buckets).
//! - The callee's sidecar: one virtual cluster per app of the run, matched on the caller the
//!   inbound filter names from the certificate (`dapr-caller-app-id`):
//!   `vhost.inbound.vcluster.<caller>.upstream_rq_{total,<status>}`, requests received and
//!   responses sent per caller (`other`: a caller outside the run, Dapr's `unknown`).
//! - The metrics listener (Dapr's `metricsPort`) serves Envoy's `/ready` and
//!   `/stats/prometheus`, the latter with the Dapr-named families appended by a small Lua filter
//!   that renames those stats (per scrape, never per call). Envoy's admin interface itself stays
//!   on loopback.

use dapr_invoke::acl::{AccessControl, Caller};
use dapr_invoke::names::{API_TOKEN_HEADER, CALLER_APP_ID_HEADER, DEFAULT_CLUSTER_HEADER};

use super::api::*;
use super::{Reach, MAX_APP_HEADERS};
use crate::runfile::{AppPlan, Plan};

/// The cluster the metrics listener reaches Envoy's own admin interface through.
pub const ADMIN_CLUSTER: &str = "envoy-admin";
/// The admin pages the metrics listener serves.
pub const READY_PATH: &str = "/ready";
pub const PROMETHEUS_PATH: &str = "/stats/prometheus";
/// The metrics listener's name.
pub const METRICS_LISTENER: &str = "metrics";

/// Dapr's default latency buckets, in milliseconds (`pkg/config/configuration.go`
/// `GetLatencyDistribution`).
pub const LATENCY_BUCKETS_MS: [f64; 34] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 30.0, 40.0, 50.0, 65.0, 80.0,
    100.0, 130.0, 160.0, 200.0, 250.0, 300.0, 400.0, 500.0, 650.0, 800.0, 1000.0, 2000.0, 5000.0,
    10000.0, 20000.0, 50000.0, 100000.0,
];

/// What a gRPC stream's route adds to its target's id in its `stat_prefix` (no app id has `~`).
const STREAM_SUFFIX: &str = "~stream";

/// The largest scrape the Lua filter may hold (it reads the whole page to rename it).
const SCRAPE_BUFFER_BYTES: u32 = 64 << 20;

/// Adds `me`'s metrics to its sidecar: per-target route stats, per-caller virtual clusters,
/// the tag extraction of the filter's counters, Dapr's latency buckets, and the metrics
/// listener at `address` with the admin cluster behind it.
pub fn observe(sidecar: &mut Bootstrap, plan: &Plan, me: &AppPlan, address: Address) {
    let admin = sidecar.admin.address.socket_address.port_value;
    if !me.metrics.enabled {
        // Dapr's metrics are off: no per-call stats, and the metrics port shows Envoy's own.
        sidecar
            .static_resources
            .listeners
            .push(metrics_listener(address, None));
        sidecar.static_resources.clusters.push(admin_cluster(admin));
        return;
    }
    for listener in &mut sidecar.static_resources.listeners {
        for chain in &mut listener.filter_chains {
            for filter in &mut chain.filters {
                let TypedConfig::HttpConnectionManager(hcm) = &mut filter.typed_config else {
                    continue;
                };
                for vhost in &mut hcm.route_config.virtual_hosts {
                    match listener.name.as_str() {
                        "outbound" | "grpc" => name_routes(vhost, plan, me),
                        "inbound" => vhost.virtual_clusters = callers(plan, me),
                        _ => {}
                    }
                }
            }
        }
    }
    sidecar
        .static_resources
        .listeners
        .push(metrics_listener(address, Some(&lua(plan, me))));
    sidecar.static_resources.clusters.push(admin_cluster(admin));
    sidecar.stats_config = Some(stats_config(me));
}

/// Each route to another app's sidecar counts under the app's id. A call of the app to itself
/// is not counted, as daprd does not count self-invocation.
fn name_routes(vhost: &mut VirtualHost, plan: &Plan, me: &AppPlan) {
    for route in &mut vhost.routes {
        let RouteActionKind::Route(action) = &route.action else {
            continue;
        };
        let Some(cluster) = &action.cluster else {
            continue;
        };
        // Dapr's gRPC proxy counts streams apart (`type`): their route has a prefix of its own.
        let stream = route
            .route_match
            .headers
            .iter()
            .any(|h| h.name == super::GRPC_STREAM_HEADER);
        route.stat_prefix = plan
            .apps
            .iter()
            .filter(|a| a.app_id != me.app_id)
            .find(|a| super::cluster_for(me, a) == *cluster)
            .map(|a| {
                if stream {
                    format!("{}{STREAM_SUFFIX}", a.app_id)
                } else {
                    a.app_id.clone()
                }
            });
    }
}

/// One virtual cluster per other app of the run: the callee's sidecar counts each caller apart.
fn callers(plan: &Plan, me: &AppPlan) -> Vec<VirtualCluster> {
    plan.apps
        .iter()
        .filter(|a| a.app_id != me.app_id)
        .map(|a| VirtualCluster {
            name: a.app_id.clone(),
            headers: vec![HeaderMatcher {
                name: CALLER_APP_ID_HEADER.into(),
                string_match: Some(StringMatcher::Exact(a.app_id.clone())),
                present_match: None,
            }],
        })
        .collect()
}

/// The filter's counters carry their labels in their names; each label is taken out into a
/// tag (only these names have `;`). Dapr's latency buckets for the per-call histograms.
fn stats_config(me: &AppPlan) -> StatsConfig {
    let buckets = match &me.metrics.latency_buckets_ms {
        Some(b) => b.iter().map(|&ms| f64::from(ms)).collect(),
        None => LATENCY_BUCKETS_MS.to_vec(),
    };
    StatsConfig {
        stats_tags: dapr_invoke::metrics::LABELS
            .iter()
            .map(|label| TagSpecifier {
                tag_name: (*label).to_string(),
                regex: format!("(;{label}=([^;]*))"),
            })
            .collect(),
        histogram_bucket_settings: vec![HistogramBucketSettings {
            stat_match: StringMatcher::SafeRegex(RegexMatcher {
                regex: r"^vhost\.(outbound|grpc|inbound)\.(route|vcluster)\..+\.upstream_rq_time$"
                    .into(),
            }),
            buckets,
        }],
    }
}

/// The metrics listener, with the protections every generated listener has (paths normalized
/// before routing, underscore headers dropped, a header-count limit): exactly two pages of the
/// admin interface, everything else 404.
fn metrics_listener(address: Address, lua: Option<&str>) -> Listener {
    // Nothing a scraper sends is passed on as a mesh header.
    let internal = || {
        vec![
            DEFAULT_CLUSTER_HEADER.to_string(),
            API_TOKEN_HEADER.to_string(),
        ]
    };
    let to_admin = |prefix: &str| Route {
        route_match: RouteMatch {
            prefix: prefix.into(),
            headers: vec![],
        },
        action: RouteActionKind::Route(RouteAction {
            cluster: Some(ADMIN_CLUSTER.into()),
            cluster_header: None,
            timeout: Dur::secs(5),
            retry_policy: None,
            max_stream_duration: None,
        }),
        request_headers_to_add: vec![],
        request_headers_to_remove: internal(),
        response_headers_to_add: vec![],
        stat_prefix: None,
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
            request_headers_to_remove: internal(),
            response_headers_to_add: vec![],
            stat_prefix: None,
        },
    ];
    let mut listener = super::listener(super::Http {
        name: METRICS_LISTENER,
        address,
        max_headers: MAX_APP_HEADERS,
        max_header_kb: None,
        routes,
        filters: lua
            .map(|lua| HttpFilter {
                name: "envoy.filters.http.lua",
                typed_config: TypedConfig::Lua {
                    default_source_code: DataSource::InlineString(lua.to_string()),
                },
            })
            .into_iter()
            .chain([super::router()])
            .collect(),
        local_replies: None,
    });
    listener.per_connection_buffer_limit_bytes = Some(SCRAPE_BUFFER_BYTES);
    listener
}

fn admin_cluster(port: u16) -> Cluster {
    let mut c = super::cluster(
        ADMIN_CLUSTER,
        &Reach::Static(Address::new("127.0.0.1", port)),
        false,
        MAX_APP_HEADERS,
    );
    c.per_connection_buffer_limit_bytes = Some(SCRAPE_BUFFER_BYTES);
    c
}

/// The Lua filter that appends Dapr's families to a scrape: this app's id, and for each caller
/// with an access-control policy on this app, which rule decides its calls (Dapr's ACL
/// counters of allowed calls; the blocked ones are the filter's).
fn lua(plan: &Plan, me: &AppPlan) -> String {
    let acl = me
        .access_control
        .clone()
        .and_then(|raw| AccessControl::try_from(raw).ok());
    let callers: Vec<String> = match &acl {
        None => vec![],
        Some(acl) => plan
            .apps
            .iter()
            .map(|a| {
                let caller = Caller {
                    trust_domain: &a.trust_domain,
                    namespace: &a.namespace,
                    app_id: &a.app_id,
                };
                let policy = if acl.has_policy(&caller) {
                    "app"
                } else {
                    "global"
                };
                format!(
                    "  [{:?}] = {{{policy:?}, {:?}, {:?}}},\n",
                    a.app_id, a.trust_domain, a.namespace
                )
            })
            .collect(),
    };
    format!(
        "-- Dapr's service-invocation metrics of {app:?}'s sidecar, from its Envoy stats.\n\
         local app_id = {app:?}\n\
         local acl = {acl}\n\
         local callers = {{\n{callers}}}\n{RENDER}",
        app = me.app_id,
        acl = acl.is_some(),
        callers = callers.concat(),
    )
}

/// The renaming itself, the same for every sidecar (app ids, trust domains and namespaces need
/// no escaping in a label value: they are checked names).
const RENDER: &str = r##"
local function rename(text)
  local families, order = {}, {}
  -- One series per label set: the HTTP and gRPC ports' counts of the same target add up.
  local function add(family, kind, suffix, labels, value)
    local f = families[family]
    if not f then
      f = {kind = kind, keys = {}, values = {}, index = {}}
      families[family] = f
      order[#order + 1] = family
    end
    local parts = {}
    for _, kv in ipairs(labels) do parts[#parts + 1] = kv[1] .. '="' .. kv[2] .. '"' end
    local key = suffix .. "{" .. table.concat(parts, ",") .. "}"
    local i = f.index[key]
    if i then
      f.values[i] = tostring((tonumber(f.values[i]) or 0) + (tonumber(value) or 0))
    else
      f.keys[#f.keys + 1] = key
      f.values[#f.values + 1] = value
      f.index[key] = #f.keys
    end
  end
  for line in text:gmatch("[^\n]+") do
    local name, braces, value = line:match("^(envoy_vhost_[%w_]+)(%b{}) (%S+)$")
    if name then
      local l = {}
      for k, v in braces:gmatch('([%w_]+)="([^"]*)"') do l[k] = v end
      local vhost = l.envoy_virtual_host
      if (vhost == "outbound" or vhost == "grpc") and l.envoy_route then
        local peer, kind = l.envoy_route, "unary"
        local streamed = peer:match("^(.-)~stream$")
        if streamed then peer, kind = streamed, "streaming" end
        if name == "envoy_vhost_route_upstream_rq_total" then
          add("dapr_runtime_service_invocation_req_sent_total", "counter", "",
              {{"app_id", app_id}, {"dst_app_id", peer}, {"type", kind}}, value)
        elseif name == "envoy_vhost_route_upstream_rq" and l.envoy_response_code then
          add("dapr_runtime_service_invocation_res_recv_total", "counter", "",
              {{"app_id", app_id}, {"src_app_id", peer}, {"status", l.envoy_response_code},
               {"type", kind}}, value)
        else
          local part = name:match("^envoy_vhost_route_upstream_rq_time(_%a+)$")
          if part and kind == "unary" then
            local labels = {{"app_id", app_id}, {"src_app_id", peer}}
            if l.le then labels[#labels + 1] = {"le", l.le} end
            add("dapr_runtime_service_invocation_res_recv_latency_ms", "histogram", part, labels, value)
          end
        end
      elseif l.envoy_virtual_host == "inbound" and l.envoy_virtual_cluster then
        local caller = l.envoy_virtual_cluster
        local known = caller ~= "other"
        local peer = known and caller or "unknown"
        if name == "envoy_vhost_vcluster_upstream_rq_total" then
          add("dapr_runtime_service_invocation_req_recv_total", "counter", "",
              {{"app_id", app_id}, {"src_app_id", peer}}, value)
          local rule = callers[caller]
          if acl and rule then
            add("dapr_runtime_acl_" .. rule[1] .. "_policy_action_allowed_total", "counter", "",
                {{"app_id", caller}, {"trustDomain", rule[2]}, {"namespace", rule[3]}}, value)
          end
        elseif name == "envoy_vhost_vcluster_upstream_rq" and l.envoy_response_code then
          add("dapr_runtime_service_invocation_res_sent_total", "counter", "",
              {{"app_id", app_id}, {"dst_app_id", peer}, {"status", l.envoy_response_code}}, value)
        end
      end
    end
  end
  local out = {}
  for _, family in ipairs(order) do
    local f = families[family]
    out[#out + 1] = "# TYPE " .. family .. " " .. f.kind
    for i, key in ipairs(f.keys) do out[#out + 1] = family .. key .. " " .. f.values[i] end
  end
  if #out == 0 then return "" end
  return table.concat(out, "\n") .. "\n"
end

function envoy_on_response(handle)
  local body = handle:body()
  if body == nil then return end
  local text = body:getBytes(0, body:length())
  local extra = rename(text)
  if extra ~= "" then
    if text:sub(-1) ~= "\n" then extra = "\n" .. extra end
    body:setBytes(text .. extra)
  end
end
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::{layout, sidecar};
    use crate::runfile::{parse, Sequential};
    use serde_json::Value;

    fn sidecar_of(i: usize) -> Value {
        sidecar_with(i, |_| {})
    }

    fn sidecar_with(i: usize, change: impl FnOnce(&mut AppPlan)) -> Value {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        let text = "version: 1\napps:\n  - appID: a\n    appDirPath: x\n    appPort: 6001\n    command: [a]\n  - appID: b\n    appDirPath: x\n    command: [b]\n    metricsPort: 9191\n";
        let mut plan = parse(text, "dapr.yaml", d.path(), &mut Sequential::default()).unwrap();
        change(&mut plan.apps[i]);
        let layout = layout::Local {
            wasm: "/w.wasm".into(),
            certs: Some("/c".into()),
        };
        serde_json::to_value(sidecar(&plan, &plan.apps[i], &layout).unwrap()).unwrap()
    }

    fn vhost(v: &Value, listener: usize) -> &Value {
        &v["static_resources"]["listeners"][listener]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]
    }

    #[test]
    fn calls_are_counted_per_peer_app_and_served_on_the_metrics_port() {
        let a = sidecar_of(0);
        // a's own routes: to b counted as b, to itself (served by its own app) not counted.
        let prefixes: Vec<&Value> = vhost(&a, 0)["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["stat_prefix"])
            .collect();
        assert_eq!(prefixes, [&Value::Null, &Value::from("b"), &Value::Null]);
        let vclusters = vhost(&a, 1)["virtual_clusters"].as_array().unwrap();
        assert_eq!(vclusters.len(), 1);
        assert_eq!(vclusters[0]["name"], "b");
        assert_eq!(vclusters[0]["headers"][0]["name"], CALLER_APP_ID_HEADER);
        let b = sidecar_of(1);
        let metrics = &b["static_resources"]["listeners"][3];
        assert_eq!(metrics["name"], METRICS_LISTENER);
        assert_eq!(metrics["address"]["socket_address"]["port_value"], 9191);
        assert_eq!(
            metrics["per_connection_buffer_limit_bytes"],
            SCRAPE_BUFFER_BYTES
        );
        let filters = &metrics["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
        let lua = filters[0]["typed_config"]["default_source_code"]["inline_string"]
            .as_str()
            .unwrap();
        assert!(
            lua.contains("local app_id = \"b\"\nlocal acl = false\n"),
            "{lua}"
        );
        // The admin cluster reaches the admin interface, which stays on loopback.
        let admin = b["admin"]["address"]["socket_address"].clone();
        assert_eq!(admin["address"], "127.0.0.1");
        let cluster = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == ADMIN_CLUSTER)
            .unwrap();
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"],
            admin
        );
        let stats = &b["stats_config"];
        let tags: Vec<&str> = stats["stats_tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag_name"].as_str().unwrap())
            .collect();
        assert_eq!(tags, dapr_invoke::metrics::LABELS);
        assert_eq!(
            stats["histogram_bucket_settings"][0]["buckets"]
                .as_array()
                .unwrap()
                .len(),
            LATENCY_BUCKETS_MS.len()
        );
    }

    #[test]
    fn with_daprs_metrics_off_only_envoys_own_are_served() {
        let a = sidecar_with(0, |a| a.metrics.enabled = false);
        let text = a.to_string();
        for absent in ["virtual_clusters", "stats_config", "envoy.filters.http.lua"] {
            assert!(!text.contains(absent), "{absent}");
        }
        for route in vhost(&a, 0)["routes"].as_array().unwrap() {
            assert!(route.get("stat_prefix").is_none(), "{route}");
        }
        assert_eq!(
            a["static_resources"]["listeners"][3]["name"],
            METRICS_LISTENER
        );
        let b = sidecar_with(1, |b| b.metrics.latency_buckets_ms = Some(vec![5, 50]));
        assert_eq!(
            b["stats_config"]["histogram_bucket_settings"][0]["buckets"],
            serde_json::json!([5.0, 50.0])
        );
    }
}
