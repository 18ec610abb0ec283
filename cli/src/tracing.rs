//! Dapr's `spec.tracing` (a Configuration's tracing section), read as daprd reads it
//! (`pkg/config/configuration.go`, `pkg/runtime/runtime.go` `setupTracing`) and checked into a
//! [`Tracing`] that the sidecar generator turns into Envoy's own tracing
//! (`crate::envoy::tracing`).
//!
//! What daprd does, and so what this does:
//! - `samplingRate` is a string parsed as a float; empty or unparsable means 1 in 10,000, `"0"`
//!   turns tracing off, 1 or more samples everything. A sampled `traceparent` from the caller is
//!   always followed (parent-based sampling).
//! - `zipkin.endpointAddress` is a full URL (`http://localhost:9411/api/v2/spans`).
//! - `otel.endpointAddress` is `host:port` (no scheme), `otel.protocol` `grpc` or `http` (else
//!   daprd refuses to start), `otel.isSecure` defaults to **true** (TLS to the collector),
//!   `otel.headers` are `key=value` strings, `otel.timeout` a Go duration.
//!
//! Where Envoy differs, a note says so: Envoy sends spans to one tracer (with both `zipkin` and
//! `otel`, daprd exports to both; here `otel` wins), has no stdout exporter, and samples in steps
//! of 1 in 10,000.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::yaml::{line_of, FileError, Plain};

/// daprd's rate when `samplingRate` is empty or not a number (`defaultSamplingRate`).
pub const DEFAULT_SAMPLING_RATE: f64 = 1e-4;
/// The OTLP exporters' default timeout (daprd leaves the exporter's own: 10 s).
pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);
/// The path an OTLP/HTTP collector takes spans on.
pub const OTLP_HTTP_PATH: &str = "/v1/traces";

/// Tracing as the sidecars do it: where spans go, and which share of calls is traced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracing {
    /// How many calls in 10,000 are traced among those that arrive without a sampled parent
    /// (Envoy's steps: 0 to 10,000).
    pub sampling_per_10k: u32,
    pub exporter: Exporter,
}

/// Where the spans are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// Zipkin's v2 JSON API.
    Zipkin(Endpoint),
    /// OpenTelemetry's protocol.
    Otlp {
        endpoint: Endpoint,
        protocol: OtlpProtocol,
        /// Sent with every export (authentication, tenants).
        headers: Vec<(String, String)>,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP (protobuf).
    Http,
    /// OTLP/gRPC.
    Grpc,
}

/// A collector's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The HTTP path spans are posted to (Zipkin, OTLP/HTTP); `/` for gRPC.
    pub path: String,
    /// TLS to the collector, verified against the system's CAs.
    pub tls: bool,
}

impl Endpoint {
    /// `host:port` as written in a `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `spec.tracing` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTracing {
    sampling_rate: Option<Spanned<Plain>>,
    stdout: Option<Spanned<bool>>,
    zipkin: Option<Spanned<RawZipkin>>,
    otel: Option<Spanned<RawOtel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawZipkin {
    endpoint_address: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOtel {
    endpoint_address: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    is_secure: Option<bool>,
    headers: Option<Spanned<Vec<RawHeader>>>,
    timeout: Option<Spanned<Plain>>,
}

/// A header as the standalone file writes it (`"key=value"`) or as the Kubernetes resource does
/// (`{name: key, value: value}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawHeader {
    Pair(String),
    Named { name: String, value: String },
}

/// What a Configuration's tracing section means for the sidecars, with a line for each thing
/// that works differently here.
#[derive(Debug, Default)]
pub struct Read {
    /// None: nothing is traced (no section, `samplingRate: "0"`, or no exporter).
    pub tracing: Option<Tracing>,
    pub warnings: Vec<String>,
}

/// Reads `spec.tracing` of `file` (`at`: the section's line).
pub fn read(raw: &RawTracing, file: &str) -> Result<Read, FileError> {
    let mut out = Read::default();
    let at = |line: Option<usize>| line.map_or(file.to_string(), |l| format!("{file}:{l}"));
    let key = |k: &str| format!("spec.tracing.{k}");

    // daprd: unparsable or empty is the default rate; "0" is off.
    let rate = match &raw.sampling_rate {
        None => DEFAULT_SAMPLING_RATE,
        Some(s) => match s.value.0.trim().parse::<f64>() {
            Ok(r) if r.is_finite() => r,
            _ => {
                out.warnings.push(format!(
                    "{}: spec.tracing.samplingRate {:?} is not a number; daprd then samples 1 call in 10,000, and so do the sidecars",
                    at(line_of(s)),
                    s.value.0
                ));
                DEFAULT_SAMPLING_RATE
            }
        },
    };
    if let Some(s) = raw.stdout.as_ref().filter(|s| s.value) {
        out.warnings.push(format!(
            "{}: spec.tracing.stdout has no effect on Envoy sidecars (Envoy has no stdout exporter); ignored",
            at(line_of(s))
        ));
    }
    let zipkin = match &raw.zipkin {
        Some(z) => match &z.value.endpoint_address {
            Some(a) if !a.value.trim().is_empty() => {
                Some(zipkin_endpoint(a.value.trim()).map_err(|e| {
                    FileError::new(file, line_of(a), &key("zipkin.endpointAddress"), e)
                })?)
            }
            _ => None,
        },
        None => None,
    };
    let otel = match &raw.otel {
        Some(o) => otel(&o.value, file)?,
        None => None,
    };
    let exporter = match (otel, zipkin) {
        (Some(o), Some(_)) => {
            out.warnings.push(format!(
                "{}: spec.tracing has both otel and zipkin; daprd exports to both, an Envoy sidecar to one: spans go to the otel collector only",
                at(raw.zipkin.as_ref().and_then(line_of))
            ));
            o
        }
        (Some(o), None) => o,
        (None, Some(z)) => Exporter::Zipkin(z),
        (None, None) => return Ok(out),
    };
    if rate <= 0.0 {
        return Ok(out);
    }
    // Envoy's sampling is a share of 10,000 (`random_sampling`, rounded): say when the rate
    // cannot be kept.
    let steps = (rate.min(1.0) * 10_000.0).round() as u32;
    if steps == 0 {
        out.warnings.push(format!(
            "{}: spec.tracing.samplingRate {rate} is below Envoy's smallest step (1 call in 10,000): the sidecars trace only calls whose caller sampled them",
            at(raw.sampling_rate.as_ref().and_then(line_of))
        ));
    }
    out.tracing = Some(Tracing {
        sampling_per_10k: steps,
        exporter,
    });
    Ok(out)
}

fn otel(raw: &RawOtel, file: &str) -> Result<Option<Exporter>, FileError> {
    let key = |k: &str| format!("spec.tracing.otel.{k}");
    // daprd sets the OTLP exporter up only when both are given.
    let (Some(address), Some(protocol)) = (&raw.endpoint_address, &raw.protocol) else {
        return Ok(None);
    };
    if address.value.trim().is_empty() || protocol.value.trim().is_empty() {
        return Ok(None);
    }
    let protocol_value = match protocol.value.trim() {
        "http" => OtlpProtocol::Http,
        "grpc" => OtlpProtocol::Grpc,
        other => {
            return Err(FileError::new(
                file,
                line_of(protocol),
                &key("protocol"),
                format!(
                    "{other:?} is not an OTLP protocol: use grpc or http (daprd refuses it too)"
                ),
            ))
        }
    };
    // Dapr's default is TLS: an `isSecure` left out means a secure collector.
    let tls = raw.is_secure.unwrap_or(true);
    let (host, port) = host_port(address.value.trim())
        .map_err(|e| FileError::new(file, line_of(address), &key("endpointAddress"), e))?;
    let mut headers = Vec::new();
    if let Some(list) = &raw.headers {
        for h in &list.value {
            let (name, value) = match h {
                RawHeader::Pair(p) => match p.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                    None => {
                        return Err(FileError::new(
                            file,
                            line_of(list),
                            &key("headers"),
                            format!("{p:?} is not key=value"),
                        ))
                    }
                },
                RawHeader::Named { name, value } => (name.trim().to_string(), value.clone()),
            };
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || value.bytes().any(|b| b.is_ascii_control()) {
                return Err(FileError::new(
                    file,
                    line_of(list),
                    &key("headers"),
                    format!("{name:?}: not a valid HTTP header"),
                ));
            }
            headers.push((name.to_ascii_lowercase(), value));
        }
    }
    let timeout = match &raw.timeout {
        None => DEFAULT_OTLP_TIMEOUT,
        Some(t) => {
            let d = crate::resiliency::duration(&t.value.0)
                .map_err(|e| FileError::new(file, line_of(t), &key("timeout"), e))?;
            if d.is_zero() {
                DEFAULT_OTLP_TIMEOUT
            } else {
                d
            }
        }
    };
    Ok(Some(Exporter::Otlp {
        endpoint: Endpoint {
            host,
            port,
            path: match protocol_value {
                OtlpProtocol::Http => OTLP_HTTP_PATH.to_string(),
                OtlpProtocol::Grpc => "/".to_string(),
            },
            tls,
        },
        protocol: protocol_value,
        headers,
        timeout,
    }))
}

/// `host:port`, `[v6]:port`; a scheme, a path or a missing port is refused with the reason.
fn host_port(address: &str) -> Result<(String, u16), String> {
    if address.contains("://") {
        return Err(format!(
            "{address:?}: give host:port without a scheme (daprd reads it so); TLS is isSecure"
        ));
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("{address:?}: a `[` without its `]`"))?;
        (h, p.strip_prefix(':').unwrap_or(""))
    } else {
        address.rsplit_once(':').unwrap_or((address, ""))
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(format!("{address:?} is not host:port"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{address:?}: needs a port, like localhost:4317"))?;
    Ok((host.to_string(), port))
}

/// Zipkin's endpoint: a URL `http(s)://host[:port][/path]` (the port defaults to the scheme's,
/// the path to Zipkin's `/api/v2/spans`).
fn zipkin_endpoint(url: &str) -> Result<Endpoint, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!(
            "{url:?} is not an http:// or https:// URL, like http://localhost:9411/api/v2/spans"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/api/v2/spans"),
    };
    let default_port = if tls { 443 } else { 80 };
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    let (host, port) = if has_port {
        host_port(authority)?
    } else {
        let host = authority.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err(format!("{url:?} has no host"));
        }
        (host.to_string(), default_port)
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(Endpoint {
        host,
        port,
        path: path.to_string(),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_yaml(text: &str) -> Result<Read, FileError> {
        let raw: RawTracing = serde_saphyr::from_str(text).unwrap();
        read(&raw, "config.yaml")
    }

    #[test]
    fn zipkin_as_dapr_writes_it() {
        let r = read_yaml(
            "samplingRate: \"1\"\nzipkin:\n  endpointAddress: http://localhost:9411/api/v2/spans\n",
        )
        .unwrap();
        let t = r.tracing.unwrap();
        assert_eq!(t.sampling_per_10k, 10_000);
        assert_eq!(
            t.exporter,
            Exporter::Zipkin(Endpoint {
                host: "localhost".into(),
                port: 9411,
                path: "/api/v2/spans".into(),
                tls: false
            })
        );
        assert!(r.warnings.is_empty());
        let Exporter::Zipkin(e) = read_yaml("zipkin:\n  endpointAddress: https://zipkin.example\n")
            .unwrap()
            .tracing
            .unwrap()
            .exporter
        else {
            panic!()
        };
        assert_eq!(
            (e.port, e.path.as_str(), e.tls),
            (443, "/api/v2/spans", true)
        );
    }

    #[test]
    fn otel_defaults_to_tls_and_reads_headers_in_both_forms() {
        let t = read_yaml(
            "samplingRate: \"0.5\"\notel:\n  endpointAddress: collector:4317\n  protocol: grpc\n  headers: [\"x-tenant=a=b\"]\n",
        )
        .unwrap()
        .tracing
        .unwrap();
        assert_eq!(t.sampling_per_10k, 5_000);
        let Exporter::Otlp {
            endpoint,
            protocol,
            headers,
            timeout,
        } = t.exporter
        else {
            panic!()
        };
        assert!(endpoint.tls, "isSecure defaults to true, as in Dapr");
        assert_eq!(protocol, OtlpProtocol::Grpc);
        assert_eq!(headers, [("x-tenant".to_string(), "a=b".to_string())]);
        assert_eq!(timeout, DEFAULT_OTLP_TIMEOUT);
        let t = read_yaml(
            "otel:\n  endpointAddress: 127.0.0.1:4318\n  protocol: http\n  isSecure: false\n  timeout: 2s\n  headers:\n  - name: Authorization\n    value: Bearer x\n",
        )
        .unwrap()
        .tracing
        .unwrap();
        assert_eq!(t.sampling_per_10k, 1, "Dapr's default rate, 1e-4");
        let Exporter::Otlp {
            endpoint,
            headers,
            timeout,
            ..
        } = t.exporter
        else {
            panic!()
        };
        assert_eq!(
            endpoint,
            Endpoint {
                host: "127.0.0.1".into(),
                port: 4318,
                path: "/v1/traces".into(),
                tls: false
            }
        );
        assert_eq!(
            headers,
            [("authorization".to_string(), "Bearer x".to_string())]
        );
        assert_eq!(timeout, Duration::from_secs(2));
    }

    #[test]
    fn off_without_an_exporter_or_at_rate_zero() {
        for text in [
            "samplingRate: \"1\"\n",
            "samplingRate: \"0\"\nzipkin:\n  endpointAddress: http://z:9411/api/v2/spans\n",
            "otel:\n  endpointAddress: c:4317\n",
            "zipkin:\n  endpointAddress: \"\"\n",
        ] {
            assert_eq!(read_yaml(text).unwrap().tracing, None, "{text}");
        }
    }

    #[test]
    fn says_what_differs_from_daprd() {
        let r = read_yaml(
            "samplingRate: often\nstdout: true\nzipkin:\n  endpointAddress: http://z:9411/api/v2/spans\notel:\n  endpointAddress: c:4317\n  protocol: grpc\n",
        )
        .unwrap();
        let all = r.warnings.join("\n");
        assert!(
            all.contains("config.yaml:1: spec.tracing.samplingRate \"often\" is not a number"),
            "{all}"
        );
        assert!(all.contains("config.yaml:2: spec.tracing.stdout"), "{all}");
        assert!(
            all.contains("config.yaml:4: spec.tracing has both otel and zipkin"),
            "{all}"
        );
        assert!(matches!(r.tracing.unwrap().exporter, Exporter::Otlp { .. }));
        let r = read_yaml("samplingRate: \"0.00001\"\nzipkin:\n  endpointAddress: http://z/\n")
            .unwrap();
        assert!(
            r.warnings[0].contains("below Envoy's smallest step"),
            "{:?}",
            r.warnings
        );
        assert_eq!(r.tracing.unwrap().sampling_per_10k, 0);
        // A rate above 1 samples everything, as Dapr's ratio sampler.
        let r = read_yaml("samplingRate: 3\nzipkin:\n  endpointAddress: http://z/\n").unwrap();
        assert_eq!(r.tracing.unwrap().sampling_per_10k, 10_000);
    }

    #[test]
    fn refuses_what_daprd_refuses_or_cannot_reach() {
        for (text, key, why) in [
            (
                "otel:\n  endpointAddress: c:4317\n  protocol: udp\n",
                "spec.tracing.otel.protocol",
                "grpc or http",
            ),
            (
                "otel:\n  endpointAddress: http://c:4317\n  protocol: grpc\n",
                "spec.tracing.otel.endpointAddress",
                "without a scheme",
            ),
            (
                "otel:\n  endpointAddress: collector\n  protocol: grpc\n",
                "spec.tracing.otel.endpointAddress",
                "needs a port",
            ),
            (
                "otel:\n  endpointAddress: c:4317\n  protocol: grpc\n  headers: [novalue]\n",
                "spec.tracing.otel.headers",
                "not key=value",
            ),
            (
                "otel:\n  endpointAddress: c:4317\n  protocol: grpc\n  timeout: soon\n",
                "spec.tracing.otel.timeout",
                "not a duration",
            ),
            (
                "zipkin:\n  endpointAddress: localhost:9411\n",
                "spec.tracing.zipkin.endpointAddress",
                "http:// or https://",
            ),
        ] {
            let e = read_yaml(text).unwrap_err();
            assert_eq!(e.key, key, "{text}");
            assert!(e.message.contains(why), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: {e}");
        }
    }
}
