//! The part of Envoy's v3 configuration API the sidecars use, as Rust types.
//!
//! Field names are Envoy's own (the proto field names, which Envoy's JSON and YAML loaders
//! read), so a misspelt field is a compile error here instead of a config Envoy refuses at start
//! or, worse, one it accepts while ignoring what was meant. Every optional field is skipped when
//! unset, so the written config holds only what was decided. `Any` fields are [`TypedConfig`],
//! whose `@type` comes from the variant.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Envoy's `Bootstrap`: one sidecar's whole configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    pub node: Node,
    pub admin: Admin,
    pub static_resources: StaticResources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_config: Option<StatsConfig>,
}

/// `config.metrics.v3.StatsConfig`: how stat names become tagged metrics, and histogram buckets.
#[derive(Debug, Clone, Serialize)]
pub struct StatsConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stats_tags: Vec<TagSpecifier>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub histogram_bucket_settings: Vec<HistogramBucketSettings>,
}

/// A tag taken out of stat names: the regex's first group is removed from the name, its second
/// is the tag's value.
#[derive(Debug, Clone, Serialize)]
pub struct TagSpecifier {
    pub tag_name: String,
    pub regex: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistogramBucketSettings {
    #[serde(rename = "match")]
    pub stat_match: StringMatcher,
    pub buckets: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: String,
    pub cluster: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub address: Address,
}

#[derive(Debug, Clone, Serialize)]
pub struct StaticResources {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub socket_address: SocketAddress,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketAddress {
    pub address: String,
    pub port_value: u16,
}

impl Address {
    pub fn new(address: impl Into<String>, port: u16) -> Self {
        Address {
            socket_address: SocketAddress {
                address: address.into(),
                port_value: port,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listeners and HTTP
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub name: String,
    pub address: Address,
    /// `INBOUND` or `OUTBOUND`: tracing makes SERVER or CLIENT spans from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_direction: Option<&'static str>,
    /// The most bytes buffered per connection (Envoy's default: 1 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    pub filter_chains: Vec<FilterChain>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilterChain {
    pub filters: Vec<NetworkFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket: Option<TransportSocket>,
    /// How long a connection may take to finish its TLS handshake before it is closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket_connect_timeout: Option<Dur>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkFilter {
    pub name: &'static str,
    pub typed_config: TypedConfig,
}

/// `HttpConnectionManager`.
#[derive(Debug, Clone, Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub normalize_path: bool,
    pub merge_slashes: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_with_escaped_slashes_action: Option<&'static str>,
    /// The most header bytes a request may have, in KiB (Envoy's default: 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_headers_kb: Option<u32>,
    pub common_http_protocol_options: HttpProtocolOptions,
    /// How long a request's headers may take to arrive, from their first byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_protocol_options: Option<Http2ProtocolOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_reply_config: Option<LocalReplyConfig>,
    pub route_config: RouteConfiguration,
    pub http_filters: Vec<HttpFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<HcmTracing>,
}

/// `HttpConnectionManager.Tracing`: a span per request, sent to `provider`.
#[derive(Debug, Clone, Serialize)]
pub struct HcmTracing {
    /// The share of requests traced that come without a sampling decision.
    pub random_sampling: Percent,
    /// The span's name: a format string, evaluated when the span ends (so it sees the request
    /// as the filters and the route left it).
    pub operation: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_tags: Vec<CustomTag>,
    pub provider: TracingProvider,
}

/// `config.trace.v3.Tracing.Http`.
#[derive(Debug, Clone, Serialize)]
pub struct TracingProvider {
    pub name: &'static str,
    pub typed_config: TypedConfig,
}

/// `type.tracing.v3.CustomTag`: a span attribute.
#[derive(Debug, Clone, Serialize)]
pub struct CustomTag {
    pub tag: String,
    #[serde(flatten)]
    pub value: CustomTagValue,
}

/// Where a custom tag's value comes from: Envoy's `oneof type`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomTagValue {
    Literal {
        value: String,
    },
    RequestHeader {
        name: String,
    },
    /// A format string (`%REQ(...)%`, `%RESPONSE_CODE%`, ...).
    Value(String),
}

/// `config.trace.v3.OpenTelemetryConfig`.
#[derive(Debug, Clone, Serialize)]
pub struct OpenTelemetryConfig {
    pub service_name: String,
    #[serde(flatten)]
    pub export: OtlpExport,
}

/// How the OpenTelemetry tracer exports: Envoy's `oneof`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpExport {
    GrpcService(GrpcService),
    HttpService(HttpService),
}

/// `core.v3.GrpcService` through Envoy's own gRPC client.
#[derive(Debug, Clone, Serialize)]
pub struct GrpcService {
    pub envoy_grpc: EnvoyGrpc,
    pub timeout: Dur,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub initial_metadata: Vec<HeaderValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvoyGrpc {
    pub cluster_name: String,
    /// The `:authority` sent; the cluster's name when unset.
    pub authority: String,
}

/// `core.v3.HttpService`.
#[derive(Debug, Clone, Serialize)]
pub struct HttpService {
    pub http_uri: HttpUri,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpUri {
    pub uri: String,
    pub cluster: String,
    pub timeout: Dur,
}

/// `config.trace.v3.ZipkinConfig`.
#[derive(Debug, Clone, Serialize)]
pub struct ZipkinConfig {
    pub collector_cluster: String,
    pub collector_endpoint: String,
    pub collector_hostname: String,
    /// `HTTP_JSON` (Zipkin's v2 API) or `HTTP_PROTO`.
    pub collector_endpoint_version: &'static str,
    pub trace_id_128bit: bool,
    /// False: the callee's span is a child of the caller's, with an id of its own.
    pub shared_span_context: bool,
    /// `USE_B3_WITH_W3C_PROPAGATION`: read B3 or W3C, send both.
    pub trace_context_option: &'static str,
}

/// `core.v3.HttpProtocolOptions`: limits and header hygiene shared by HTTP/1.1 and HTTP/2.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpProtocolOptions {
    /// `ALLOW`, `REJECT_REQUEST` or `DROP_HEADER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_with_underscores_action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_headers_count: Option<u32>,
}

/// `core.v3.Http2ProtocolOptions` (only the fields we set; `{}` turns HTTP/2 on).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Http2ProtocolOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_keepalive: Option<KeepaliveSettings>,
}

/// `core.v3.KeepaliveSettings`: HTTP/2 PINGs every `interval`; a PING not answered within
/// `timeout` closes the connection (and resets what is in flight on it).
#[derive(Debug, Clone, Serialize)]
pub struct KeepaliveSettings {
    pub interval: Dur,
    pub timeout: Dur,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalReplyConfig {
    pub mappers: Vec<ResponseMapper>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseMapper {
    pub filter: AccessLogFilter,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u32>,
    pub body_format_override: SubstitutionFormatString,
}

/// `config.accesslog.v3.AccessLogFilter`: one of its filters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFilter {
    ResponseFlagFilter(ResponseFlagFilter),
    StatusCodeFilter(StatusCodeFilter),
}

/// Matches a status: `comparison.op` (`EQ`, `GE`, `LE`, `NE`) against `comparison.value`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusCodeFilter {
    pub comparison: Comparison,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub op: &'static str,
    pub value: RuntimeUInt32,
}

/// `core.v3.RuntimeUInt32`: a value, which Envoy's runtime could override under `runtime_key`
/// (the sidecars have no runtime layer, so it is the value).
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeUInt32 {
    pub default_value: u32,
    pub runtime_key: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseFlagFilter {
    pub flags: Vec<&'static str>,
}

/// `core.v3.SubstitutionFormatString`: one of its formats.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubstitutionFormatString {
    JsonFormat(serde_json::Map<String, serde_json::Value>),
    TextFormatSource(DataSource),
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteConfiguration {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    /// Requests counted apart (`vhost.<name>.vcluster.<cluster>.*` stats), by their headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub virtual_clusters: Vec<VirtualCluster>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VirtualCluster {
    pub name: String,
    pub headers: Vec<HeaderMatcher>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    #[serde(rename = "match")]
    pub route_match: RouteMatch,
    #[serde(flatten)]
    pub action: RouteActionKind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// The route's own stats, `vhost.<virtual host>.route.<stat_prefix>.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteMatch {
    pub prefix: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderMatcher {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_match: Option<StringMatcher>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present_match: Option<bool>,
}

/// `matcher.v3.StringMatcher`: one of its forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    /// RE2, matched against the whole value.
    SafeRegex(RegexMatcher),
}

/// `matcher.v3.RegexMatcher` (Google's RE2 engine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegexMatcher {
    pub regex: String,
}

/// The route's action: Envoy's `oneof action`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteActionKind {
    Route(RouteAction),
    DirectResponse(DirectResponseAction),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteAction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_header: Option<String>,
    pub timeout: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<MaxStreamDuration>,
}

/// `route.v3.RouteAction.MaxStreamDuration`.
#[derive(Debug, Clone, Serialize)]
pub struct MaxStreamDuration {
    /// How long the whole stream may last (the HTTP connection manager ends it: for gRPC with
    /// DEADLINE_EXCEEDED); none: no limit but the client's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<Dur>,
    /// The most a client's `grpc-timeout` may ask for; `0s`: whatever it asks.
    pub grpc_timeout_header_max: Dur,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectResponseAction {
    pub status: u32,
    pub body: DataSource,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderValueOption {
    pub header: HeaderValue,
    /// `APPEND_IF_EXISTS_OR_ADD` (Envoy's default) or `OVERWRITE_IF_EXISTS_OR_ADD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_action: Option<&'static str>,
}

impl HeaderValueOption {
    /// A header appended to the values the request already has.
    pub fn append(key: &str, value: impl Into<String>) -> Self {
        HeaderValueOption {
            header: HeaderValue {
                key: key.to_string(),
                value: value.into(),
            },
            append_action: Some("APPEND_IF_EXISTS_OR_ADD"),
        }
    }

    /// A header added only when the message has none under this name.
    pub fn if_absent(key: &str, value: impl Into<String>) -> Self {
        HeaderValueOption {
            header: HeaderValue {
                key: key.to_string(),
                value: value.into(),
            },
            append_action: Some("ADD_IF_ABSENT"),
        }
    }

    /// A header that replaces every value the request had.
    pub fn overwrite(key: &str, value: impl Into<String>) -> Self {
        HeaderValueOption {
            header: HeaderValue {
                key: key.to_string(),
                value: value.into(),
            },
            append_action: Some("OVERWRITE_IF_EXISTS_OR_ADD"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryPolicy {
    pub retry_on: String,
    pub num_retries: u32,
    pub retry_back_off: BackOff,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retry_host_predicate: Vec<TypedExtension>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_selection_retry_max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackOff {
    pub base_interval: Dur,
    pub max_interval: Dur,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpFilter {
    pub name: &'static str,
    pub typed_config: TypedConfig,
}

// ---------------------------------------------------------------------------------------------
// Typed configs (`google.protobuf.Any`)
// ---------------------------------------------------------------------------------------------

/// An `Any`: the variant names its `@type`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "@type")]
pub enum TypedConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    )]
    HttpConnectionManager(Box<HttpConnectionManager>),
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router")]
    Router {},
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm")]
    Wasm { config: Box<WasmPlugin> },
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
    )]
    DownstreamTlsContext(DownstreamTlsContext),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    )]
    UpstreamTlsContext(UpstreamTlsContext),
    #[serde(rename = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions")]
    UpstreamHttpProtocolOptions(UpstreamHttpProtocolOptions),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
    )]
    PreviousHostsPredicate {},
    #[serde(rename = "type.googleapis.com/google.protobuf.StringValue")]
    StringValue { value: String },
    #[serde(rename = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster")]
    DnsCluster(DnsCluster),
    #[serde(rename = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig")]
    OpenTelemetryConfig(OpenTelemetryConfig),
    #[serde(rename = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig")]
    ZipkinConfig(ZipkinConfig),
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua")]
    Lua { default_source_code: DataSource },
}

#[derive(Debug, Clone, Serialize)]
pub struct TypedExtension {
    pub name: &'static str,
    pub typed_config: TypedConfig,
}

/// `wasm.v3.PluginConfig`.
#[derive(Debug, Clone, Serialize)]
pub struct WasmPlugin {
    pub name: &'static str,
    pub root_id: &'static str,
    /// `FAIL_CLOSED`, `FAIL_OPEN` or `FAIL_RELOAD`.
    pub failure_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_config: Option<ReloadConfig>,
    pub vm_config: VmConfig,
    /// The plugin configuration: a `StringValue` holding the filter's JSON.
    pub configuration: TypedConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadConfig {
    pub backoff: BackOff,
}

#[derive(Debug, Clone, Serialize)]
pub struct VmConfig {
    pub vm_id: &'static str,
    pub runtime: &'static str,
    pub code: AsyncDataSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_variables: Option<EnvironmentVariables>,
}

/// What the VM sees of the environment: `host_env_keys` are copied from Envoy's own.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentVariables {
    pub host_env_keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AsyncDataSource {
    pub local: DataSource,
}

/// `core.v3.DataSource`: one of its forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    Filename(String),
    InlineString(String),
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct TransportSocket {
    pub name: &'static str,
    pub typed_config: TypedConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownstreamTlsContext {
    pub require_client_certificate: bool,
    pub common_tls_context: CommonTlsContext,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamTlsContext {
    /// The server name sent (SNI); none: none sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    pub common_tls_context: CommonTlsContext,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommonTlsContext {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    pub alpn_protocols: Vec<&'static str>,
    /// None: the peer's certificate is not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_context: Option<CertificateValidationContext>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsCertificate {
    pub certificate_chain: DataSource,
    pub private_key: DataSource,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateValidationContext {
    /// The CA to trust; none: the system's ([`system_root_certs`](Self::system_root_certs)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<DataSource>,
    /// `{}`: the operating system's CAs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_root_certs: Option<Empty>,
    pub match_typed_subject_alt_names: Vec<SubjectAltNameMatcher>,
}

/// An empty message (`{}`), for options that are on by being present.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Empty {}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectAltNameMatcher {
    /// `URI`, `DNS`, ...
    pub san_type: &'static str,
    pub matcher: StringMatcher,
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    /// How endpoints are found: Envoy's `oneof cluster_discovery_type`.
    #[serde(flatten)]
    pub discovery: Discovery,
    pub connect_timeout: Dur,
    /// The most bytes buffered per connection (Envoy's default: 1 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_policy: Option<&'static str>,
    pub load_assignment: ClusterLoadAssignment,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typed_extension_protocol_options: Option<ProtocolOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket: Option<TransportSocket>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_lb_config: Option<CommonLbConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
}

/// `core.v3.HealthCheck`: Envoy probes each endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    pub timeout: Dur,
    pub interval: Dur,
    /// How often to probe while the cluster has no traffic (Envoy's default: 60 s).
    pub no_traffic_interval: Dur,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    #[serde(flatten)]
    pub kind: HealthCheckKind,
}

/// The probe: Envoy's `oneof health_checker`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    HttpHealthCheck {
        path: String,
        /// `HTTP1` or `HTTP2`.
        codec_client_type: &'static str,
    },
    GrpcHealthCheck {},
}

/// A cluster's discovery: a built-in `type`, or an extension `cluster_type`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// `STATIC`: the addresses as written.
    #[serde(rename = "type")]
    Static(&'static str),
    /// Every address a name resolves to (the `envoy.clusters.dns` extension, which replaces
    /// `STRICT_DNS` and its cluster-level DNS fields).
    ClusterType(CustomClusterType),
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomClusterType {
    pub name: &'static str,
    pub typed_config: TypedConfig,
}

/// `clusters.dns.v3.DnsCluster`.
#[derive(Debug, Clone, Serialize)]
pub struct DnsCluster {
    /// How often names are resolved again.
    pub dns_refresh_rate: Dur,
    /// A record's TTL, when shorter, makes it sooner.
    pub respect_dns_ttl: bool,
    pub dns_lookup_family: &'static str,
}

/// `typed_extension_protocol_options`: only the upstream HTTP options are used.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolOptions {
    #[serde(rename = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions")]
    pub http: TypedConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamHttpProtocolOptions {
    pub common_http_protocol_options: HttpProtocolOptions,
    pub explicit_http_config: ExplicitHttpConfig,
}

/// The protocol towards the upstream: Envoy's `oneof protocol_config`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplicitHttpConfig {
    HttpProtocolOptions {},
    Http2ProtocolOptions(Http2ProtocolOptions),
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LocalityLbEndpoints>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalityLbEndpoints {
    pub lb_endpoints: Vec<LbEndpoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LbEndpoint {
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub address: Address,
}

#[derive(Debug, Clone, Serialize)]
pub struct CircuitBreakers {
    pub thresholds: Vec<Thresholds>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    pub max_retries: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_5xx: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub interval: Dur,
    pub base_ejection_time: Dur,
    pub max_ejection_time: Dur,
    pub max_ejection_percent: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommonLbConfig {
    pub healthy_panic_threshold: Percent,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percent {
    pub value: f64,
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A `google.protobuf.Duration`, written as Envoy reads it: seconds with a fraction, `"1.500s"`.
/// Millisecond precision: a non-zero duration under a millisecond is rounded up to one, never
/// down to zero (which Envoy reads as "no timeout").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut ms = d.subsec_millis();
        let mut secs = d.as_secs();
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            // Round up to the next millisecond.
            ms += 1;
            if ms == 1000 {
                ms = 0;
                secs = secs.saturating_add(1);
            }
        }
        s.serialize_str(&if ms == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{ms:03}s")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn durations_are_envoy_strings_and_never_round_to_zero() {
        assert_eq!(json(&Dur::secs(0)), r#""0s""#);
        assert_eq!(json(&Dur::secs(5)), r#""5s""#);
        assert_eq!(json(&Dur::millis(1500)), r#""1.500s""#);
        assert_eq!(json(&Dur(Duration::from_micros(500))), r#""0.001s""#);
        assert_eq!(json(&Dur(Duration::from_nanos(1))), r#""0.001s""#);
        assert_eq!(json(&Dur(Duration::from_micros(999_999))), r#""1s""#);
    }

    #[test]
    fn any_carries_its_type_and_oneofs_their_field_name() {
        let route = Route {
            route_match: RouteMatch {
                prefix: "/".into(),
                headers: vec![],
            },
            action: RouteActionKind::Route(RouteAction {
                cluster: Some("c".into()),
                ..RouteAction::default()
            }),
            request_headers_to_add: vec![],
            request_headers_to_remove: vec![],
            response_headers_to_add: vec![],
            stat_prefix: None,
        };
        assert_eq!(
            json(&route),
            r#"{"match":{"prefix":"/"},"route":{"cluster":"c","timeout":"0s"}}"#
        );
        let filter = HttpFilter {
            name: "envoy.filters.http.router",
            typed_config: TypedConfig::Router {},
        };
        assert_eq!(
            json(&filter),
            r#"{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}"#
        );
    }
}
