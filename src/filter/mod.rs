//! The filter's request handling: read what the decision needs, ask [`route::decide`] (outbound)
//! or [`inbound::decide`] (inbound), apply the result. Nothing here decides anything.
//!
//! Every host call goes through [`Host`]: its one real implementation (`wasm`, over
//! `proxy_wasm::hostcalls`) exists only in the `.wasm` build, and the unit tests run this code on
//! the host with a fake. Each request costs the host calls listed in [`Host`]'s methods and no
//! more; the tests pin the count, which the benchmark measures.

use std::fmt;
use std::time::Duration;

use log::Level;

use crate::config::{Config, Mode};
use crate::error::DaprError;
use crate::inbound;
use crate::metrics;
use crate::route::{self, Decision, Forward, Reply};
use crate::sidecar;

#[cfg(any(test, all(feature = "testing", not(target_arch = "wasm32"))))]
pub mod fake;
#[cfg(target_arch = "wasm32")]
mod wasm;

// Headers a sidecar sets for the callee; whatever the app sent under these names is replaced.
use crate::names::{
    CALLEE_APP_ID_HEADER as CALLEE_APP_ID, CALLER_APP_ID_HEADER as CALLER_APP_ID,
    CALLER_NAMESPACE_HEADER as CALLER_NAMESPACE,
};
/// Envoy's property with the URI SANs of the verified client certificate, comma-separated.
const PEER_URI_SAN: [&str; 2] = ["connection", "uri_san_peer_certificate"];

/// The features this build was compiled with, for the version line.
#[cfg(feature = "fault-injection")]
const FEATURES: &str = "fault-injection";
#[cfg(not(feature = "fault-injection"))]
const FEATURES: &str = "none";

/// A host call that failed, with the host's status, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub String);

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host calls request handling makes, and nothing else.
pub trait Host {
    /// A request header (`:path`, `:method` included) as the bytes Envoy holds; `None` when the
    /// request has none. Bytes, because a value need not be UTF-8.
    fn request_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// Sets a request header, replacing every value it had.
    fn set_request_header(&self, name: &str, value: &str) -> Result<(), HostError>;
    /// Removes a request header, every value of it.
    fn remove_request_header(&self, name: &str) -> Result<(), HostError>;
    /// A property of the stream or its connection, as bytes.
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    /// Answers the request here; it is not forwarded.
    fn send_reply(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(), HostError>;
    /// Writes a log line. Costs a host call only when Envoy logs at `level`.
    fn log(&self, level: Level, message: fmt::Arguments<'_>);
    /// Adds one to the filter's counter `name` ([`crate::metrics`]), defining it the first time.
    /// Used when a call is refused, never on a forwarded one; a failure is not the request's.
    fn count(&self, name: &str);
}

/// What Envoy does with the request once the filter is done with its headers or a piece of its
/// body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on to the router, with the headers as the filter left them.
    Continue,
    /// Stop: the filter answered (or tried to), and the request goes nowhere.
    Stop,
}

/// What the filter still has to do with a request's body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Body {
    /// Nothing: the body passes untouched.
    #[default]
    Untouched,
    /// A call to `app` without a `content-length`: at most `left` more bytes may pass.
    Limited { left: u64, app: String },
}

/// Handles a request's headers. `config` is `None` until a plugin configuration was accepted;
/// `body` says what the filter must still do with the body.
pub fn on_request_headers<H: Host>(
    host: &H,
    context_id: u32,
    config: Option<&Config>,
    body: &mut Body,
) -> Next {
    let stream = Stream {
        host,
        context_id,
        app_id: config.map_or("", |c| c.app_id.as_str()),
        grpc: config.is_some_and(|c| c.grpc),
    };
    let Some(config) = config else {
        return stream.reject(&DaprError::not_ready("the filter has no configuration"));
    };
    match config.mode {
        Mode::Outbound => stream.outbound(config, body),
        Mode::Inbound => stream.inbound(config),
    }
}

/// Handles a piece of a forwarded request's body: `size` bytes of it.
pub fn on_request_body<H: Host>(
    host: &H,
    context_id: u32,
    config: Option<&Config>,
    body: &mut Body,
    size: usize,
) -> Next {
    let Body::Limited { left, app } = body else {
        return Next::Continue;
    };
    match left.checked_sub(size as u64) {
        Some(rest) => {
            *left = rest;
            Next::Continue
        }
        None => {
            // The head of the body went on already: the reply resets the call upstream.
            let e = DaprError::body_too_large(app);
            *body = Body::Untouched;
            Stream {
                host,
                context_id,
                app_id: config.map_or("", |c| c.app_id.as_str()),
                grpc: false,
            }
            .reject(&e)
        }
    }
}

/// The line logged at VM start: which build runs, with which features.
pub fn version_line() -> String {
    format!("dapr-invoke {} features: {FEATURES}", crate::BUILD)
}

/// The line logged once a plugin configuration is accepted (the benchmark reads its time).
pub fn configured_line(config: &Config, took: Duration) -> String {
    format!(
        "app {:?} in namespace {:?}: {} target app(s), cluster header {:?}; configured in {:.1} ms",
        config.app_id,
        config.namespace,
        config.app_count(),
        config.cluster_header,
        took.as_secs_f64() * 1e3
    )
}

/// One request being handled.
struct Stream<'h, H> {
    host: &'h H,
    context_id: u32,
    /// The sidecar's app (empty until a configuration was accepted), for the metrics.
    app_id: &'h str,
    /// The call is gRPC: refusals are gRPC errors.
    grpc: bool,
}

impl<H: Host> Stream<'_, H> {
    fn outbound(&self, config: &Config, body: &mut Body) -> Next {
        // A gRPC call names its app in metadata: its path is the method's, never read.
        let path = match config.grpc {
            true => Ok(None),
            false => self.host.request_header(":path"),
        };
        let path = match path {
            Ok(path) => path.unwrap_or_default(),
            Err(e) => return self.host_failure("read :path", &e),
        };
        let Ok(path) = std::str::from_utf8(&path) else {
            return self.reject(&DaprError::bad_invoke_url("the path is not valid UTF-8"));
        };
        // The decision reads the headers it needs, and no more: each read is a host call.
        let mut failed = None;
        let read = |name: &str| {
            self.host
                .request_header(name)
                .inspect_err(|_| failed = Some(name.to_string()))
        };
        let decision = if config.grpc {
            route::decide_grpc(config, read)
        } else {
            route::decide(config, path, read)
        };
        let decision = match decision {
            Ok(d) => d,
            Err(e) => {
                let what = format!("read {}", failed.as_deref().unwrap_or("a header"));
                return self.host_failure(&what, &e);
            }
        };
        match decision {
            Decision::Forward(forward) => self.forward(config, &forward, body),
            Decision::Reply(reply) => {
                if reply.status >= 400 {
                    // A Dapr error carries its code; the API token's 401 has none.
                    let code = metrics::error_code(&reply.body);
                    self.host
                        .count(&metrics::refusal(self.app_id, reply.status, code));
                }
                self.respond(&reply)
            }
            Decision::Metadata => self.respond(&Reply {
                status: 200,
                content_type: Some("application/json"),
                body: sidecar::metadata_json(config).into_bytes(),
            }),
        }
    }

    fn forward(&self, config: &Config, forward: &Forward<'_>, body: &mut Body) -> Next {
        let target = forward.app;
        if let Some(max) = config.max_body_bytes {
            match self.host.request_header("content-length") {
                Ok(Some(len)) => {
                    let len = std::str::from_utf8(&len)
                        .ok()
                        .and_then(|l| l.parse::<u64>().ok());
                    // Envoy has checked the framing: a length is a number.
                    if len.is_some_and(|l| l > max) {
                        return self.reject(&DaprError::body_too_large(target.app_id));
                    }
                }
                // No length (chunked, or HTTP/2 without one): count the bytes as they pass.
                Ok(None) => {
                    *body = Body::Limited {
                        left: max,
                        app: target.app_id.to_string(),
                    }
                }
                Err(e) => return self.host_failure("read content-length", &e),
            }
        }
        if forward.drop_authorization {
            if let Err(e) = self.host.remove_request_header("authorization") {
                return self.host_failure("remove authorization", &e);
            }
        }
        let route = [(config.cluster_header.as_str(), &*target.app.cluster)];
        // Constant for this sidecar and this target: the generated routes set them instead,
        // and the call costs three host calls less.
        let identity = [
            (CALLER_APP_ID, config.app_id.as_str()),
            (CALLER_NAMESPACE, config.namespace.as_str()),
            (CALLEE_APP_ID, target.app_id),
        ];
        let identity = identity.into_iter().filter(|_| config.stamp_identity);
        let rewrite = forward.path.as_deref().map(|path| (":path", path));
        let policy = target
            .app
            .policy_headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()));
        self.write_all(
            route
                .into_iter()
                .chain(identity)
                .chain(rewrite)
                .chain(policy),
        )
    }

    fn inbound(&self, config: &Config) -> Next {
        let peer = match self.host.property(&PEER_URI_SAN) {
            Ok(peer) => peer,
            Err(e) => return self.host_failure("read the peer certificate", &e),
        };
        // A gRPC call has no verb to check (`:method` is always POST): it is not read.
        let method = match config.grpc {
            true => Ok(Some(inbound::GRPC_VERB.as_bytes().to_vec())),
            false => self.host.request_header(":method"),
        };
        let (method, path) = match (method, self.host.request_header(":path")) {
            (Ok(m), Ok(p)) => (m.unwrap_or_default(), p.unwrap_or_default()),
            (Err(e), _) | (_, Err(e)) => return self.host_failure("read :method and :path", &e),
        };
        // Bytes that are not UTF-8 read as empty: no identity (401), and a path the policy
        // refuses (403).
        let request = inbound::Request {
            peer_uri_san: peer.as_deref().and_then(|p| std::str::from_utf8(p).ok()),
            method: std::str::from_utf8(&method).unwrap_or_default(),
            path: std::str::from_utf8(&path).unwrap_or_default(),
            grpc: config.grpc,
        };
        let authorize =
            |caller: &inbound::Caller, method: &str, path: &str| match &config.access_control {
                None => Ok(()),
                Some(acl) if config.grpc => inbound::authorize_grpc(acl, caller, path),
                Some(acl) => inbound::authorize(acl, caller, method, path),
            };
        match inbound::decide(&config.app_id, &request, authorize) {
            // What the app is told comes from the certificate; whatever the request carried
            // under these names is replaced.
            inbound::Decision::Deliver(caller) => {
                // The policy checked the method upper-case, as Dapr reads it: deliver what was
                // checked. (HTTP/2 lets a client send `:method post`.)
                let upper = request
                    .method
                    .bytes()
                    .any(|b| b.is_ascii_lowercase())
                    .then(|| request.method.to_ascii_uppercase());
                let method = upper.as_deref().map(|m| (":method", m));
                self.write_all(
                    [
                        (CALLER_APP_ID, caller.app_id),
                        (CALLER_NAMESPACE, caller.namespace),
                    ]
                    .into_iter()
                    .chain(method),
                )
            }
            inbound::Decision::Reject { error, why } => {
                if let Some(acl) = &config.access_control {
                    // Dapr's ACL metrics: the caller's identity, and which rule refused.
                    let caller = request
                        .peer_uri_san
                        .and_then(|uri| inbound::parse_spiffe_id(uri.trim()));
                    let policy = match &caller {
                        Some(c) if acl.has_policy(c) => metrics::Policy::App,
                        _ => metrics::Policy::Global,
                    };
                    self.host
                        .count(&metrics::acl_blocked(policy, caller.as_ref()));
                }
                // At debug: a flood of refused calls must not flood the log.
                let (status, message) = (error.status, &error.message);
                match why {
                    Some(why) => self.log(
                        Level::Debug,
                        format_args!("inbound call refused with {status}: {message}; {why}"),
                    ),
                    None => self.log(
                        Level::Debug,
                        format_args!("inbound call refused with {status}: {message}"),
                    ),
                }
                self.reject(&error)
            }
        }
    }

    /// Writes every header, or answers not-ready at the first that fails: never forwards a
    /// half-rewritten request.
    fn write_all<'v>(&self, writes: impl IntoIterator<Item = (&'v str, &'v str)>) -> Next {
        for (name, value) in writes {
            if let Err(e) = self.host.set_request_header(name, value) {
                return self.host_failure(&format!("set {name}"), &e);
            }
        }
        Next::Continue
    }

    fn reject(&self, e: &DaprError) -> Next {
        self.host
            .count(&metrics::refusal(self.app_id, e.status, e.code));
        if self.grpc {
            return self.respond(&Reply::grpc(e));
        }
        self.respond(&Reply::from(e.clone()))
    }

    fn respond(&self, reply: &Reply) -> Next {
        let headers: &[(&str, &str)] = match reply.content_type {
            Some(ct) => &[("content-type", ct)],
            None => &[],
        };
        let body = (!reply.body.is_empty()).then_some(reply.body.as_slice());
        if let Err(e) = self.host.send_reply(reply.status, headers, body) {
            // The request stays stopped: it is not forwarded, whatever it carried.
            self.log(
                Level::Error,
                format_args!("cannot send the local reply: {e}"),
            );
        }
        Next::Stop
    }

    fn host_failure(&self, what: &str, e: &HostError) -> Next {
        self.log(Level::Warn, format_args!("host call failed ({what}): {e}"));
        self.reject(&DaprError::not_ready(
            "the sidecar could not process the request",
        ))
    }

    fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        self.host
            .log(level, format_args!("[http {}] {message}", self.context_id));
    }
}

#[cfg(test)]
mod tests;
