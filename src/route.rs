//! The outbound decision: from the parts of a request that matter to what the sidecar does
//! with it. Pure: no host calls, so every branch is unit-tested on the host. Headers are read
//! through a callback, and only when the answer depends on them: each read is a host call.
//!
//! The order follows Dapr's HTTP API: the API token when the sidecar has one (Dapr's health
//! checks exempt), the sidecar's own endpoints (health, metadata), then the invoke URL, the
//! `dapr-app-id` header and the basic-auth form `dapr-app-id:<id>@`; a request with none of them
//! names no app. Unlike Dapr, an invoke URL wins over a `dapr-app-id` header.

use crate::codec::{base64_decode, path_unescape, query_unescape, secrets_equal};
use crate::config::{Config, Resolved};
use crate::error::DaprError;
use crate::ids::Target;
use crate::names::{API_TOKEN_HEADER, APP_ID_HEADER, CALLEE_APP_ID_HEADER};

/// Dapr's invoke URL: `/v1.0/invoke/<app-id>/method/<method-path>`.
pub const INVOKE_PREFIX: &str = "/v1.0/invoke/";
const METHOD_SEGMENT: &str = "/method/";
/// The sidecar's own endpoints.
const HEALTHZ: &str = "/v1.0/healthz";
const HEALTHZ_OUTBOUND: &str = "/v1.0/healthz/outbound";
const METADATA: &str = "/v1.0/metadata";
/// Dapr's answer to a call without the sidecar's API token: plain text, with a newline.
pub const INVALID_API_TOKEN: &str = "invalid api token\n";

/// An answer the sidecar gives itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    /// The content type, when there is a body.
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl From<DaprError> for Reply {
    fn from(e: DaprError) -> Self {
        Reply {
            status: e.status,
            content_type: Some("application/json"),
            body: e.body().into_bytes(),
        }
    }
}

impl Reply {
    /// A gRPC error, given to Envoy as the HTTP status it turns into the gRPC status (Envoy
    /// answers a gRPC call trailers-only: `:status 200`, `grpc-status`, and the body as
    /// `grpc-message`): 401 is `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 503
    /// `UNAVAILABLE`, and 500 `UNKNOWN`, which is what daprd's gRPC proxy answers for every
    /// other refusal (no app id, a malformed or unknown one).
    pub fn grpc(e: &DaprError) -> Self {
        let status = match e.status {
            401 | 403 | 503 => e.status,
            _ => 500,
        };
        Reply {
            status,
            content_type: None,
            body: e.message.clone().into_bytes(),
        }
    }

    fn empty(status: u32) -> Self {
        Reply {
            status,
            content_type: None,
            body: Vec::new(),
        }
    }

    fn text(status: u32, text: &str) -> Self {
        Reply {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            body: text.as_bytes().to_vec(),
        }
    }
}

/// A call to forward.
#[derive(Debug, PartialEq, Eq)]
pub struct Forward<'a> {
    /// The app it goes to.
    pub app: Resolved<'a>,
    /// The new `:path`, when the request used the invoke URL.
    pub path: Option<String>,
    /// The app was named by `Authorization: Basic`: the header goes no further.
    pub drop_authorization: bool,
}

/// What the sidecar does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    Forward(Forward<'a>),
    /// Answer this; nothing is forwarded.
    Reply(Reply),
    /// `GET /v1.0/metadata`: answer with the sidecar's metadata.
    Metadata,
}

impl From<DaprError> for Decision<'_> {
    fn from(e: DaprError) -> Self {
        Decision::Reply(e.into())
    }
}

/// The sidecar's own endpoints, by path (without the query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    HealthzOutbound,
    Metadata,
    MetadataKey,
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        // Dapr's router strips a trailing slash.
        let path = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        match path {
            HEALTHZ => Some(Endpoint::Healthz),
            HEALTHZ_OUTBOUND => Some(Endpoint::HealthzOutbound),
            METADATA => Some(Endpoint::Metadata),
            _ => path
                .strip_prefix(METADATA)
                .and_then(|k| k.strip_prefix('/'))
                .filter(|k| !k.contains('/'))
                .map(|_| Endpoint::MetadataKey),
        }
    }
}

/// Decides what to do with one request, given its `:path` and a way to read its other headers.
///
/// ```
/// use dapr_invoke::{config::Config, route::{decide, Decision}};
/// let c = Config::from_json(br#"{"app_id": "checkout",
///     "apps": {"order-processor": {"cluster": "op"}}}"#).unwrap();
/// let no_headers = |_: &str| -> Result<Option<Vec<u8>>, ()> { Ok(None) };
/// let Ok(Decision::Forward(f)) =
///     decide(&c, "/v1.0/invoke/order-processor/method/orders?x=1", no_headers) else { panic!() };
/// assert_eq!((&*f.app.app.cluster, f.path.as_deref()), ("op", Some("/orders?x=1")));
/// ```
pub fn decide<'c, E>(
    config: &'c Config,
    path: &str,
    mut header: impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
) -> Result<Decision<'c>, E> {
    let (bare, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    // The method is read only for the sidecar's own endpoints, which answer GET (or PUT) alone.
    let endpoint = Endpoint::of(bare);
    let method = match endpoint {
        Some(_) => header(":method")?,
        None => None,
    };
    let is = |m: &str| method.as_deref() == Some(m.as_bytes());
    if let Some(token) = &config.api_token {
        let exempt = is("GET")
            && matches!(
                endpoint,
                Some(Endpoint::Healthz | Endpoint::HealthzOutbound)
            );
        if !exempt {
            let given = header(API_TOKEN_HEADER)?;
            if !given.is_some_and(|g| secrets_equal(&g, token)) {
                return Ok(Decision::Reply(Reply::text(401, INVALID_API_TOKEN)));
            }
        }
    }
    match endpoint {
        Some(Endpoint::Healthz) if is("GET") => {
            return Ok(match health_app_id(query) {
                Some(id) if id != config.app_id => DaprError::health_appid_mismatch().into(),
                _ => Decision::Reply(Reply::empty(204)),
            });
        }
        Some(Endpoint::HealthzOutbound) if is("GET") => {
            return Ok(Decision::Reply(Reply::empty(204)));
        }
        Some(Endpoint::Metadata) if is("GET") => return Ok(Decision::Metadata),
        Some(Endpoint::MetadataKey) if is("PUT") => {
            return Ok(DaprError::metadata_not_kept().into())
        }
        // Other methods on these paths are calls like any other, as in Dapr.
        _ => {}
    }
    if let Some(rest) = path.strip_prefix(INVOKE_PREFIX) {
        return Ok(match split_invoke(rest) {
            Ok((raw_id, new_path)) => match invoke_url_id(raw_id) {
                Ok(id) => forward(config, &id, Some(new_path), false),
                Err(e) => e.into(),
            },
            Err(e) => e.into(),
        });
    }
    match header(APP_ID_HEADER)? {
        Some(raw) if !raw.is_empty() => {
            return Ok(match std::str::from_utf8(&raw) {
                Ok(id) => forward(config, id, None, false),
                Err(_) => {
                    DaprError::invalid_app_id(&String::from_utf8_lossy(&raw), &"is not valid UTF-8")
                        .into()
                }
            })
        }
        _ => {}
    }
    // `http://dapr-app-id:<id>@localhost:3500/<method>`: the URL's credentials, as clients send
    // them.
    if let Some(id) = header("authorization")?
        .as_deref()
        .and_then(basic_auth_app_id)
    {
        return Ok(forward(config, &id, None, true));
    }
    Ok(DaprError::no_app_id().into())
}

/// Decides what to do with one gRPC call (Dapr's gRPC proxying), given a way to read its metadata:
/// the API token when the sidecar has one, then the target from `dapr-callee-app-id`, else
/// `dapr-app-id`, as daprd reads them. The path (`/package.Service/Method`) is never rewritten.
/// Refusals are gRPC errors ([`Reply::grpc`]).
///
/// ```
/// use dapr_invoke::{config::Config, route::{decide_grpc, Decision}};
/// let c = Config::from_json(br#"{"app_id": "checkout", "calls": "grpc",
///     "apps": {"order-processor": {"cluster": "op"}}}"#).unwrap();
/// let metadata = |name: &str| -> Result<Option<Vec<u8>>, ()> {
///     Ok((name == "dapr-app-id").then(|| b"order-processor".to_vec()))
/// };
/// let Ok(Decision::Forward(f)) = decide_grpc(&c, metadata) else { panic!() };
/// assert_eq!((&*f.app.app.cluster, f.path), ("op", None));
/// ```
pub fn decide_grpc<'c, E>(
    config: &'c Config,
    mut header: impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
) -> Result<Decision<'c>, E> {
    let refuse = |e: DaprError| Decision::Reply(Reply::grpc(&e));
    if let Some(token) = &config.api_token {
        let given = header(API_TOKEN_HEADER)?;
        if !given.is_some_and(|g| secrets_equal(&g, token)) {
            return Ok(refuse(DaprError::grpc_unauthorized()));
        }
    }
    let named = match header(CALLEE_APP_ID_HEADER)? {
        Some(id) if !id.is_empty() => Some(id),
        _ => header(APP_ID_HEADER)?.filter(|id| !id.is_empty()),
    };
    let Some(raw) = named else {
        return Ok(refuse(DaprError::grpc_no_app_id()));
    };
    let Ok(id) = std::str::from_utf8(&raw) else {
        return Ok(refuse(DaprError::invalid_app_id(
            &String::from_utf8_lossy(&raw),
            &"is not valid UTF-8",
        )));
    };
    Ok(match resolve(config, id) {
        Ok(app) => Decision::Forward(Forward {
            app,
            path: None,
            drop_authorization: false,
        }),
        Err(e) => refuse(e),
    })
}

fn forward<'c>(
    config: &'c Config,
    raw_id: &str,
    path: Option<String>,
    drop_authorization: bool,
) -> Decision<'c> {
    match resolve(config, raw_id) {
        Ok(app) => Decision::Forward(Forward {
            app,
            path,
            drop_authorization,
        }),
        Err(e) => e.into(),
    }
}

/// The app id of an invoke URL, decoded as daprd decodes it: the path once (Go's router), then
/// the id once more as a query value (`url.QueryUnescape`: `+` is a space), keeping the first
/// result when the second fails or is empty.
fn invoke_url_id(raw: &str) -> Result<String, DaprError> {
    let once = path_unescape(raw)
        .ok_or_else(|| DaprError::invalid_app_id(raw, &"has a malformed percent-encoding"))?;
    Ok(match query_unescape(&once) {
        Some(twice) if !twice.is_empty() => twice,
        _ => once,
    })
}

/// The value of `appid` in a query string (its first), decoded; `None` when it has none.
fn health_app_id(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (query_unescape(key).as_deref() == Some("appid"))
            .then(|| query_unescape(value).unwrap_or_default())
    })
}

/// The app id of `Authorization: Basic base64(dapr-app-id:<id>)`, as daprd reads it: exactly
/// one `:`, the user `dapr-app-id` in any case.
fn basic_auth_app_id(value: &[u8]) -> Option<String> {
    let encoded = std::str::from_utf8(value).ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let mut parts = decoded.split(':');
    let (user, id) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && user.eq_ignore_ascii_case(APP_ID_HEADER)).then(|| id.to_string())
}

/// Splits what follows [`INVOKE_PREFIX`] into the raw app id and the method's new path (with the
/// query string kept).
fn split_invoke(rest: &str) -> Result<(&str, String), DaprError> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (raw_id, after_id) = match path.find('/') {
        Some(i) => path.split_at(i),
        None => (path, ""),
    };
    if raw_id.is_empty() {
        return Err(DaprError::no_app_id());
    }
    let Some(method) = after_id.strip_prefix(METHOD_SEGMENT) else {
        return Err(DaprError::bad_invoke_url("no /method/ after the app id"));
    };
    if method.is_empty() {
        return Err(DaprError::bad_invoke_url("the method is empty"));
    }
    let mut new_path = String::with_capacity(1 + method.len() + query.map_or(0, |q| q.len() + 1));
    new_path.push('/');
    new_path.push_str(method);
    if let Some(q) = query {
        new_path.push('?');
        new_path.push_str(q);
    }
    Ok((raw_id, new_path))
}

fn resolve<'c>(config: &'c Config, raw_id: &str) -> Result<Resolved<'c>, DaprError> {
    let target = Target::parse(raw_id).map_err(|e| DaprError::invalid_app_id(raw_id, &e))?;
    config.resolve(&target).ok_or_else(|| {
        DaprError::unknown_app(
            raw_id,
            target.app_id,
            target.namespace_or(&config.namespace),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn config() -> Config {
        Config::from_json(
            br#"{"app_id": "checkout", "namespace": "default",
                 "apps": {"order-processor": {"cluster": "order-processor"},
                          "payments.prod": {"cluster": "payments-prod"}}}"#,
        )
        .unwrap()
    }

    fn with_token() -> Config {
        let env: Env = &|name| (name == "DAPR_API_TOKEN").then(|| "s3cret".to_string());
        Config::load(
            br#"{"app_id": "checkout", "api_token_env": "DAPR_API_TOKEN",
                 "apps": {"order-processor": {"cluster": "op"}}}"#,
            env,
        )
        .unwrap()
    }

    /// An error as a caller sees it: status, errorCode, message.
    #[derive(Debug, PartialEq)]
    struct Error {
        status: u32,
        code: String,
        message: String,
    }

    type Outcome = Result<(String, Option<String>), Error>;

    /// Decides with these headers, counting the reads.
    fn decide_with<'c>(
        c: &'c Config,
        path: &str,
        headers: &[(&str, &[u8])],
        reads: &mut Vec<String>,
    ) -> Decision<'c> {
        let result: Result<Decision, ()> = decide(c, path, |name| {
            reads.push(name.to_string());
            Ok(headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_vec()))
        });
        result.unwrap()
    }

    fn outcome(d: Decision) -> Outcome {
        match d {
            Decision::Forward(f) => Ok((f.app.app.cluster.to_string(), f.path)),
            Decision::Reply(r) if r.content_type == Some("application/json") => {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                Err(Error {
                    status: r.status,
                    code: v["errorCode"].as_str().unwrap().to_string(),
                    message: v["message"].as_str().unwrap().to_string(),
                })
            }
            Decision::Reply(r) => Ok((
                format!("<{}>", r.status),
                Some(String::from_utf8(r.body).unwrap()).filter(|b| !b.is_empty()),
            )),
            Decision::Metadata => Ok(("<metadata>".into(), None)),
        }
    }

    fn run(path: &str, header: Option<&[u8]>) -> Outcome {
        let c = config();
        let mut headers: Vec<(&str, &[u8])> = vec![(":method", b"GET")];
        if let Some(h) = header {
            headers.push(("dapr-app-id", h));
        }
        outcome(decide_with(&c, path, &headers, &mut vec![]))
    }

    fn ok(cluster: &str, path: Option<&str>) -> Outcome {
        Ok((cluster.to_string(), path.map(str::to_string)))
    }

    #[test]
    fn header_form_keeps_the_path() {
        let op: Option<&[u8]> = Some(b"order-processor");
        assert_eq!(run("/orders", op), ok("order-processor", None));
        assert_eq!(run("/orders?a=1&b=2", op), ok("order-processor", None));
        assert_eq!(run("/", op), ok("order-processor", None));
        assert_eq!(
            run("/x", Some(b"order-processor.default")),
            ok("order-processor", None)
        );
        assert_eq!(run("/x", Some(b"payments.prod")), ok("payments-prod", None));
    }

    #[test]
    fn invoke_url_is_rewritten_with_its_query() {
        let cases = [
            ("/v1.0/invoke/order-processor/method/orders", "/orders"),
            (
                "/v1.0/invoke/order-processor/method/orders?id=7&x",
                "/orders?id=7&x",
            ),
            ("/v1.0/invoke/order-processor/method/a/b/c", "/a/b/c"),
            ("/v1.0/invoke/order-processor/method/orders?", "/orders?"),
            (
                "/v1.0/invoke/order-processor/method/o?q=/method/x",
                "/o?q=/method/x",
            ),
            (
                "/v1.0/invoke/order-processor.default/method/orders",
                "/orders",
            ),
        ];
        for (path, want) in cases {
            assert_eq!(run(path, None), ok("order-processor", Some(want)), "{path}");
        }
        assert_eq!(
            run("/v1.0/invoke/payments.prod/method/pay", None),
            ok("payments-prod", Some("/pay"))
        );
    }

    #[test]
    fn invoke_url_wins_over_the_header() {
        assert_eq!(
            run(
                "/v1.0/invoke/payments.prod/method/pay",
                Some(b"order-processor")
            ),
            ok("payments-prod", Some("/pay"))
        );
    }

    #[test]
    fn health_endpoints_are_answered_locally() {
        assert_eq!(run("/v1.0/healthz", None), ok("<204>", None));
        assert_eq!(run("/v1.0/healthz/", None), ok("<204>", None));
        assert_eq!(run("/v1.0/healthz/outbound?x=1", None), ok("<204>", None));
        assert_eq!(
            run("/v1.0/healthz", Some(b"order-processor")),
            ok("<204>", None)
        );
        assert_eq!(run("/v1.0/healthz?appid=checkout", None), ok("<204>", None));
        // `appid` asks whether this sidecar is that app's: Dapr's 500 when it is not.
        for q in [
            "appid=order-processor",
            "appid=",
            "x=1&appid=nope&appid=checkout",
        ] {
            let e = run(&format!("/v1.0/healthz?{q}"), None).unwrap_err();
            assert_eq!(
                e,
                Error {
                    status: 500,
                    code: "ERR_HEALTH_APPID_NOT_MATCH".into(),
                    message: "dapr app-id does not match".into()
                },
                "{q}"
            );
        }
        // The outbound check ignores it.
        assert_eq!(
            run("/v1.0/healthz/outbound?appid=nope", None),
            ok("<204>", None)
        );
        assert_eq!(run("/v1.0/healthzz", None).unwrap_err().status, 404);
        // Only GET is the health check; other methods are calls like any other.
        let c = config();
        let post = |path: &str, id: Option<&[u8]>| {
            let mut h: Vec<(&str, &[u8])> = vec![(":method", b"POST")];
            h.extend(id.map(|i| ("dapr-app-id", i)));
            outcome(decide_with(&c, path, &h, &mut vec![]))
        };
        assert_eq!(post("/v1.0/healthz", None).unwrap_err().status, 404);
        assert_eq!(
            post("/v1.0/healthz", Some(b"order-processor")),
            ok("order-processor", None)
        );
    }

    #[test]
    fn metadata_is_the_sidecars_own() {
        assert_eq!(run("/v1.0/metadata", None), ok("<metadata>", None));
        assert_eq!(
            run("/v1.0/metadata/", Some(b"order-processor")),
            ok("<metadata>", None)
        );
        let c = config();
        let put = |path: &str| {
            outcome(decide_with(
                &c,
                path,
                &[(":method", b"PUT"), ("dapr-app-id", b"order-processor")],
                &mut vec![],
            ))
        };
        // Setting attributes is Dapr's, not this sidecar's: it says so.
        let e = put("/v1.0/metadata/cliPID").unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (501, "ERR_METADATA_SET"));
        // A deeper path is not a metadata key: a call like any other.
        assert_eq!(put("/v1.0/metadata/a/b"), ok("order-processor", None));
    }

    #[test]
    fn the_api_token_guards_everything_but_the_health_checks() {
        let c = with_token();
        let call = |method: &[u8], path: &str, token: Option<&[u8]>| {
            let mut h: Vec<(&str, &[u8])> =
                vec![(":method", method), ("dapr-app-id", b"order-processor")];
            h.extend(token.map(|t| ("dapr-api-token", t)));
            outcome(decide_with(&c, path, &h, &mut vec![]))
        };
        let refused = ok("<401>", Some("invalid api token\n"));
        for token in [
            None,
            Some(&b""[..]),
            Some(b"s3cre"),
            Some(b"s3cret "),
            Some(b"S3CRET"),
        ] {
            assert_eq!(call(b"POST", "/orders", token), refused, "{token:?}");
            assert_eq!(call(b"GET", "/v1.0/metadata", token), refused);
            assert_eq!(call(b"PUT", "/v1.0/metadata/k", token), refused);
            assert_eq!(
                call(b"POST", "/v1.0/invoke/order-processor/method/x", token),
                refused
            );
            // Dapr exempts GET on its two health endpoints, and nothing else.
            assert_eq!(call(b"GET", "/v1.0/healthz", token), ok("<204>", None));
            assert_eq!(
                call(b"GET", "/v1.0/healthz/outbound/", token),
                ok("<204>", None)
            );
            assert_eq!(call(b"HEAD", "/v1.0/healthz", token), refused);
        }
        let right = Some(&b"s3cret"[..]);
        assert_eq!(call(b"POST", "/orders", right), ok("op", None));
        assert_eq!(
            call(b"GET", "/v1.0/metadata", right),
            ok("<metadata>", None)
        );
        // Without a token configured, none is asked for.
        assert_eq!(
            run("/orders", Some(b"order-processor")),
            ok("order-processor", None)
        );
    }

    #[test]
    fn the_basic_auth_form_names_the_app() {
        let c = config();
        let call = |auth: &[u8], app_id: Option<&[u8]>| {
            let mut h: Vec<(&str, &[u8])> = vec![("authorization", auth)];
            h.extend(app_id.map(|i| ("dapr-app-id", i)));
            decide_with(&c, "/orders", &h, &mut vec![])
        };
        // base64("dapr-app-id:order-processor")
        let op = b"Basic ZGFwci1hcHAtaWQ6b3JkZXItcHJvY2Vzc29y";
        let Decision::Forward(f) = call(op, None) else {
            panic!()
        };
        assert_eq!(
            (&*f.app.app.cluster, f.drop_authorization),
            ("order-processor", true)
        );
        // base64("DAPR-APP-ID:payments.prod")
        let Decision::Forward(f) = call(b"Basic REFQUi1BUFAtSUQ6cGF5bWVudHMucHJvZA==", None) else {
            panic!()
        };
        assert_eq!(&*f.app.app.cluster, "payments-prod");
        // The header wins, and the Authorization header is then the app's business.
        let Decision::Forward(f) = call(op, Some(b"payments.prod")) else {
            panic!()
        };
        assert_eq!(
            (&*f.app.app.cluster, f.drop_authorization),
            ("payments-prod", false)
        );
        for bad in [
            &b"Basic dXNlcjpwYXNz"[..],    // user:pass
            b"Basic ZGFwci1hcHAtaWQ6YTpi", // dapr-app-id:a:b
            b"Bearer ZGFwci1hcHAtaWQ6b3JkZXItcHJvY2Vzc29y",
            b"Basic !!!!",
            b"basic ZGFwci1hcHAtaWQ6b3JkZXItcHJvY2Vzc29y",
        ] {
            assert_eq!(outcome(call(bad, None)).unwrap_err().status, 404, "{bad:?}");
        }
        // base64("dapr-app-id:a b"): named, and invalid.
        assert_eq!(
            outcome(call(b"Basic ZGFwci1hcHAtaWQ6YSBi", None))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn encoded_app_ids_in_the_invoke_url_are_decoded_as_dapr_does() {
        for path in [
            "/v1.0/invoke/order%2Dprocessor/method/orders",
            "/v1.0/invoke/%6Frder-processor/method/orders",
            "/v1.0/invoke/order%252Dprocessor/method/orders",
            "/v1.0/invoke/order-processor%2Edefault/method/orders",
        ] {
            assert_eq!(
                run(path, None),
                ok("order-processor", Some("/orders")),
                "{path}"
            );
        }
        // `+` is a space after the second decoding: invalid.
        let e = run("/v1.0/invoke/order+processor/method/x", None).unwrap_err();
        assert_eq!((e.status, e.message.contains("' '")), (400, true), "{e:?}");
        let e = run("/v1.0/invoke/a%2Fb/method/x", None).unwrap_err();
        assert!(e.message.contains("'/'"), "{e:?}");
        let e = run("/v1.0/invoke/bad%zz/method/x", None).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("malformed percent-encoding"), "{e:?}");
    }

    /// Each header read is a host call: only what can change the answer is read.
    #[test]
    fn reads_only_what_the_answer_depends_on() {
        let c = config();
        let h: &[(&str, &[u8])] = &[(":method", b"GET"), ("dapr-app-id", b"order-processor")];
        let cases: &[(&str, &[&str])] = &[
            ("/orders", &["dapr-app-id"]),
            ("/v1.0/invoke/order-processor/method/x", &[]),
            ("/v1.0/invoke/nope/method/x", &[]),
            ("/v1.0/healthz", &[":method"]),
            ("/v1.0/metadata", &[":method"]),
        ];
        for (path, want) in cases {
            let mut reads = vec![];
            decide_with(&c, path, h, &mut reads);
            assert_eq!(reads, *want, "{path}");
        }
        let mut reads = vec![];
        decide_with(&c, "/orders", &[], &mut reads);
        assert_eq!(
            reads,
            ["dapr-app-id", "authorization"],
            "no app id: the basic-auth form"
        );
        let t = with_token();
        let mut reads = vec![];
        decide_with(
            &t,
            "/orders",
            &[
                ("dapr-api-token", b"s3cret"),
                ("dapr-app-id", b"order-processor"),
            ],
            &mut reads,
        );
        assert_eq!(reads, ["dapr-api-token", "dapr-app-id"]);
    }

    #[test]
    fn errors() {
        let cases: &[(&str, Option<&[u8]>, u32, &str)] = &[
            (
                "/orders",
                None,
                404,
                "failed getting app id either from the URL path or the header dapr-app-id",
            ),
            ("/orders", Some(b""), 404, "failed getting app id"),
            ("/v1.0/invoke/", None, 404, "failed getting app id"),
            ("/v1.0/invoke//method/x", None, 404, "failed getting app id"),
            (
                "/v1.0/invoke/order-processor",
                None,
                404,
                "no /method/ after the app id",
            ),
            (
                "/v1.0/invoke/order-processor?x=/method/y",
                None,
                404,
                "no /method/",
            ),
            (
                "/v1.0/invoke/order-processor/orders",
                None,
                404,
                "no /method/",
            ),
            (
                "/v1.0/invoke/order-processor/method/",
                None,
                404,
                "the method is empty",
            ),
            (
                "/v1.0/invoke/order-processor/method/?x",
                None,
                404,
                "the method is empty",
            ),
            (
                "/x",
                Some(b"a.b.c"),
                400,
                "failed to invoke, id: a.b.c, err: invalid app id: has more than one '.'",
            ),
            (
                "/x",
                Some(b"bad id"),
                400,
                "invalid app id: has the character ' '",
            ),
            ("/x", Some(b"\xff\xfe"), 400, "is not valid UTF-8"),
            ("/v1.0/invoke/a%2Fb/method/x", None, 400, "'/'"),
            (
                "/x",
                Some(b"nope"),
                500,
                r#"failed to invoke, id: nope, err: no app "nope" in namespace "default""#,
            ),
            (
                "/x",
                Some(b"payments"),
                500,
                r#"no app "payments" in namespace "default""#,
            ),
            (
                "/x",
                Some(b"order-processor.prod"),
                500,
                r#"no app "order-processor" in namespace "prod""#,
            ),
            ("/v1.0/invoke/nope/method/x", None, 500, "id: nope"),
        ];
        for (path, header, status, want) in cases {
            let e = run(path, *header).unwrap_err();
            assert_eq!(e.code, "ERR_DIRECT_INVOKE");
            assert_eq!(e.status, *status, "{path} {header:?}: {}", e.message);
            assert!(e.message.contains(want), "{path} {header:?}: {}", e.message);
        }
    }

    /// Whatever bytes arrive, `decide` answers; it never panics.
    #[test]
    fn arbitrary_input_never_panics() {
        let configs = [config(), with_token()];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: &[u8] =
            b"/.?%-_+=ab\xff\xc3method/invoke/v1.0/healthz/metadata/order-processor";
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 48) as usize;
            for i in 0..len {
                let k = (seed.rotate_left(i as u32 * 5) as usize) % alphabet.len();
                bytes.push(alphabet[k]);
            }
            let path = String::from_utf8_lossy(&bytes);
            let prefixed = format!("{INVOKE_PREFIX}{path}");
            let auth = [b"Basic ".as_slice(), &bytes].concat();
            for c in &configs {
                for p in [path.as_ref(), prefixed.as_str()] {
                    for method in [&b"GET"[..], b"PUT", &bytes] {
                        let h: Vec<(&str, &[u8])> = vec![
                            (":method", method),
                            ("dapr-app-id", &bytes),
                            ("dapr-api-token", &bytes),
                            ("authorization", &auth),
                        ];
                        decide_with(c, p, &h, &mut vec![]);
                        decide_with(c, p, &h[..1], &mut vec![]);
                    }
                }
            }
        }
    }

    #[test]
    fn grpc_calls_name_their_app_in_metadata_callee_first() {
        let c = Config::from_json(
            br#"{"app_id": "checkout", "calls": "grpc",
                 "apps": {"order-processor": {"cluster": "op"}, "payments.prod": {"cluster": "pay"}}}"#,
        )
        .unwrap();
        let run = |headers: &[(&str, &[u8])]| {
            let mut reads = vec![];
            let d: Result<Decision, ()> = decide_grpc(&c, |name| {
                reads.push(name.to_string());
                Ok(headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_vec()))
            });
            (d.unwrap(), reads)
        };
        let (d, reads) = run(&[("dapr-app-id", b"order-processor")]);
        let Decision::Forward(f) = d else {
            panic!("{d:?}")
        };
        assert_eq!((&*f.app.app.cluster, f.path), ("op", None));
        assert_eq!(reads, ["dapr-callee-app-id", "dapr-app-id"]);
        // dapr-callee-app-id wins, as in daprd.
        let (d, reads) = run(&[
            ("dapr-app-id", b"order-processor"),
            ("dapr-callee-app-id", b"payments.prod"),
        ]);
        let Decision::Forward(f) = d else {
            panic!("{d:?}")
        };
        assert_eq!(&*f.app.app.cluster, "pay");
        assert_eq!(reads, ["dapr-callee-app-id"]);
        // Refusals are gRPC errors: status for Envoy's mapping, the message as grpc-message.
        let refused = |headers: &[(&str, &[u8])]| match run(headers).0 {
            Decision::Reply(r) => (r.status, r.content_type, String::from_utf8(r.body).unwrap()),
            d => panic!("{d:?}"),
        };
        assert_eq!(
            refused(&[]),
            (500, None, "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found".to_string())
        );
        let (status, _, message) = refused(&[("dapr-app-id", b"a.b.c")]);
        assert_eq!(status, 500, "Unknown, as daprd");
        assert!(message.contains("invalid app id"), "{message}");
        let (status, _, message) = refused(&[("dapr-app-id", b"nope")]);
        assert_eq!(status, 500);
        assert!(message.contains(r#"no app "nope""#), "{message}");
        let t = Config::load(
            br#"{"app_id": "checkout", "calls": "grpc", "api_token_env": "T",
                 "apps": {"order-processor": {"cluster": "op"}}}"#,
            &|n| (n == "T").then(|| "t0k".to_string()),
        )
        .unwrap();
        let d: Result<Decision, ()> = decide_grpc(&t, |name| {
            Ok((name == "dapr-app-id").then(|| b"order-processor".to_vec()))
        });
        let Ok(Decision::Reply(r)) = d else { panic!() };
        assert_eq!((r.status, r.body.as_slice()), (401, &b"Unauthorized"[..]));
    }
}
