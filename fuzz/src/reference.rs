//! The references: app ids and targets, the outbound route, the access-control path and policy.

/// App ids and namespaces (README "App ids"): 1 to 63 ASCII letters, digits, `-` and `_`,
/// starting and ending with a letter or digit.
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        && edge(b.first())
        && edge(b.last())
}

/// A target as a caller names it, `<id>` or `<id>.<namespace>`, resolved against the caller's own
/// namespace: `(app id, namespace)`, or `None` when it is not a valid target.
pub fn target(raw: &str, own_namespace: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = raw.split('.').collect();
    let (id, ns) = match parts.as_slice() {
        [id] => (*id, own_namespace),
        [id, ns] => (*id, *ns),
        _ => return None,
    };
    (valid_name(id) && valid_name(ns)).then(|| (id.to_string(), ns.to_string()))
}

/// The headers of an outbound request that can change its decision (raw bytes, `None` when the
/// request has no such header).
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    pub method: Option<&'a [u8]>,
    pub app_id: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub api_token: Option<&'a [u8]>,
    pub callee_app_id: Option<&'a [u8]>,
}

/// What an outbound request asks for, read the way Dapr's HTTP API documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Call the app `id` (raw, as named: not yet checked), with this new `:path` when the request
    /// used the invoke URL, and without its `authorization` header when that named the app.
    Call {
        id: Vec<u8>,
        path: Option<String>,
        drop_authorization: bool,
    },
    /// An answer the sidecar gives itself: the status, and Dapr's `errorCode` when it is a JSON
    /// error.
    Answer {
        status: u32,
        error_code: Option<&'static str>,
    },
    /// `GET /v1.0/metadata`.
    Metadata,
}

const ERR: Option<&str> = Some("ERR_DIRECT_INVOKE");

/// Dapr's sidecar API, as the outbound filter serves it (`src/route.rs` module docs, README):
/// the API token when the sidecar has one (`GET` health checks exempt); `GET /v1.0/healthz`
/// (`?appid=` must be the sidecar's own app), `GET /v1.0/healthz/outbound`, `GET /v1.0/metadata`,
/// `PUT /v1.0/metadata/<key>` (501), each with or without a trailing `/`; then the invoke URL
/// `/v1.0/invoke/<id>/method/<method>[?query]` (the id decoded as a path, then once more as a
/// query value when that gives something), the `dapr-app-id` header, and
/// `Authorization: Basic base64("dapr-app-id:<id>")`; else no app is named (404).
pub fn asked(path: &str, h: &Headers<'_>, own_app_id: &str, api_token: Option<&[u8]>) -> Asked {
    let (bare, query) = match path.find('?') {
        Some(q) => (&path[..q], Some(&path[q + 1..])),
        None => (path, None),
    };
    let trimmed = match bare.strip_suffix('/') {
        Some(t) if !t.is_empty() => t,
        _ => bare,
    };
    let healthz = trimmed == "/v1.0/healthz";
    let healthz_outbound = trimmed == "/v1.0/healthz/outbound";
    let metadata = trimmed == "/v1.0/metadata";
    let metadata_key = trimmed
        .strip_prefix("/v1.0/metadata/")
        .is_some_and(|key| !key.contains('/'));
    let own = healthz || healthz_outbound || metadata || metadata_key;
    let method = if own { h.method } else { None };
    let get = method == Some(b"GET");
    if let Some(token) = api_token {
        if !(get && (healthz || healthz_outbound)) && h.api_token != Some(token) {
            return Asked::Answer {
                status: 401,
                error_code: None,
            };
        }
    }
    if healthz && get {
        let named = query.and_then(|q| query_value(q, "appid"));
        return match named {
            Some(id) if id != own_app_id.as_bytes() => Asked::Answer {
                status: 500,
                error_code: Some("ERR_HEALTH_APPID_NOT_MATCH"),
            },
            _ => Asked::Answer {
                status: 204,
                error_code: None,
            },
        };
    }
    if healthz_outbound && get {
        return Asked::Answer {
            status: 204,
            error_code: None,
        };
    }
    if metadata && get {
        return Asked::Metadata;
    }
    if metadata_key && method == Some(b"PUT") {
        return Asked::Answer {
            status: 501,
            error_code: Some("ERR_METADATA_SET"),
        };
    }
    const PREFIX: &str = "/v1.0/invoke/";
    if path.len() >= PREFIX.len() && &path.as_bytes()[..PREFIX.len()] == PREFIX.as_bytes() {
        let rest = &path[PREFIX.len()..];
        let (before_query, query) = match rest.find('?') {
            Some(q) => (&rest[..q], Some(&rest[q + 1..])),
            None => (rest, None),
        };
        // The id is everything up to the next '/'; then "/method/" and a non-empty method.
        let slash = before_query.find('/').unwrap_or(before_query.len());
        let (raw_id, after) = (&before_query[..slash], &before_query[slash..]);
        if raw_id.is_empty() {
            return Asked::Answer {
                status: 404,
                error_code: ERR,
            };
        }
        let method = match after.strip_prefix("/method/") {
            Some(m) if !m.is_empty() => m,
            _ => {
                return Asked::Answer {
                    status: 404,
                    error_code: ERR,
                }
            }
        };
        let Some(once) = unescape(raw_id.as_bytes(), false) else {
            return Asked::Answer {
                status: 400,
                error_code: ERR,
            };
        };
        let id = match unescape(&once, true) {
            Some(twice) if !twice.is_empty() => twice,
            _ => once,
        };
        let mut new_path = format!("/{method}");
        if let Some(q) = query {
            new_path.push('?');
            new_path.push_str(q);
        }
        return Asked::Call {
            id,
            path: Some(new_path),
            drop_authorization: false,
        };
    }
    if let Some(id) = h.app_id.filter(|id| !id.is_empty()) {
        return Asked::Call {
            id: id.to_vec(),
            path: None,
            drop_authorization: false,
        };
    }
    if let Some(id) = h.authorization.and_then(basic_auth_id) {
        return Asked::Call {
            id,
            path: None,
            drop_authorization: true,
        };
    }
    Asked::Answer {
        status: 404,
        error_code: ERR,
    }
}

/// Dapr's gRPC proxying, as the outbound filter serves it with `"calls": "grpc"` (`src/route.rs`,
/// README): the API token when the sidecar has one (401, `UNAUTHENTICATED`), then the app named
/// by `dapr-callee-app-id`, else `dapr-app-id` (neither: 500, `UNKNOWN`); the path is never
/// rewritten.
pub fn asked_grpc(h: &Headers<'_>, api_token: Option<&[u8]>) -> Asked {
    if let Some(token) = api_token {
        if h.api_token != Some(token) {
            return Asked::Answer {
                status: 401,
                error_code: None,
            };
        }
    }
    let named = [h.callee_app_id, h.app_id]
        .into_iter()
        .flatten()
        .find(|id| !id.is_empty());
    match named {
        Some(id) => Asked::Call {
            id: id.to_vec(),
            path: None,
            drop_authorization: false,
        },
        None => Asked::Answer {
            status: 500,
            error_code: None,
        },
    }
}

/// Go's `url.ParseQuery(q).Get(key)`: pairs split on `&`; a pair with a `;`, or whose key or
/// value is not a valid escape, is skipped; the first value of `key`, decoded.
fn query_value(query: &str, key: &str) -> Option<Vec<u8>> {
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (unescape(k.as_bytes(), true), unescape(v.as_bytes(), true))
        else {
            continue;
        };
        if k == key.as_bytes() {
            return Some(v);
        }
    }
    None
}

/// Go's `url.PathUnescape` (or `QueryUnescape`, where `+` is a space), on bytes: `None` for a
/// `%` not followed by two hex digits.
pub fn unescape(s: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The id of `Basic base64("dapr-app-id:<id>")`: the user `dapr-app-id` in any letter case,
/// exactly one ':'.
fn basic_auth_id(value: &[u8]) -> Option<Vec<u8>> {
    let value = std::str::from_utf8(value).ok()?;
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = base64(encoded)?;
    let text = std::str::from_utf8(&decoded).ok()?;
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [user, id] if user.eq_ignore_ascii_case("dapr-app-id") => Some(id.as_bytes().to_vec()),
        _ => None,
    }
}

/// Standard base64 with padding (RFC 4648 section 4), six bits at a time.
pub fn base64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let body = s
        .strip_suffix("==")
        .or_else(|| s.strip_suffix('='))
        .unwrap_or(s);
    let (mut bits, mut held, mut out) = (0u32, 0, Vec::new());
    for c in body.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

/// The access-control view of a raw `:path` (docs/access-control.md, "Normalizing the request
/// path"), or `None` when it is refused.
pub fn normalize(raw_path: &str) -> Option<String> {
    // 1. The query (from the first '?') is dropped. 2. It must start with '/'.
    let path = raw_path.split('?').next().unwrap_or("");
    if !path.starts_with('/') {
        return None;
    }
    // 3. %XX decoded once; bad escapes, and bytes no path may carry (raw or decoded), refused.
    let is_control = |b: u8| b < 0x20 || b == 0x7f;
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let raw = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex)?;
            let lo = raw.get(i + 2).copied().and_then(hex)?;
            let v = hi * 16 + lo;
            if is_control(v) || b"/\\%?#;".contains(&v) {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            if is_control(b) || b"#\\;".contains(&b) {
                return None;
            }
            out.push(b);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    // 4. No '.', '..' or empty segment; one trailing '/' is dropped.
    let body = &decoded[1..];
    if body.is_empty() {
        return Some("/".to_string());
    }
    let body = body.strip_suffix('/').unwrap_or(body);
    if body
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    Some(format!("/{body}"))
}

/// A Dapr SPIFFE id, `spiffe://<trust domain>/ns/<namespace>/<app id>` (docs/access-control.md,
/// "Deciding a request"): `(trust domain, namespace, app id)`, or `None` for anything else.
pub fn spiffe(uri: &str) -> Option<(String, String, String)> {
    let rest = uri.strip_prefix("spiffe://")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [td, "ns", ns, app] = parts.as_slice() else {
        return None;
    };
    let td_ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    (td_ok && valid_name(ns) && valid_name(app))
        .then(|| (td.to_string(), ns.to_string(), app.to_string()))
}

/// Go's `time.ParseDuration`, from its documentation: an optional sign, then `0`, or one or more
/// decimal numbers (digits, an optional fraction; one of the two non-empty) each followed by a
/// unit (`ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`), at most `i64::MAX`
/// nanoseconds in all. Nanoseconds, signed; `None` for anything else. Fractions are exact to 20
/// digits (Go itself goes through `float64`): compare within a nanosecond.
pub fn go_duration(s: &str) -> Option<i128> {
    const LIMIT: u128 = i64::MAX as u128 + 1; // Go allows 1<<63 for a negative duration
    let (neg, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let (int, rest) = s.split_at(int_len);
        let (frac, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int.is_empty() && frac.is_empty() {
            return None; // no number at all, or "." alone
        }
        let unit_len = rest
            .bytes()
            .take_while(|c| *c != b'.' && !c.is_ascii_digit())
            .count();
        let (unit, after) = rest.split_at(unit_len);
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => return None,
        };
        // The whole part: more than Go's int64 is an overflow.
        let mut whole: u128 = 0;
        for d in int.bytes() {
            whole = whole * 10 + u128::from(d - b'0');
            if whole > LIMIT {
                return None;
            }
        }
        let mut digits: u128 = 0;
        let mut scale: u128 = 1;
        for d in frac.bytes().take(20) {
            digits = digits * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        total += whole.checked_mul(per)? + digits * per / scale;
        if total > LIMIT {
            return None;
        }
        s = after;
    }
    if neg {
        Some(-(total as i128))
    } else if total > LIMIT - 1 {
        None
    } else {
        Some(total as i128)
    }
}

/// How many lines a YAML text has: YAML breaks lines at `\n`, `\r\n` and a lone `\r`.
pub fn yaml_lines(text: &str) -> usize {
    1 + text.replace("\r\n", "\n").matches(['\n', '\r']).count()
}

pub mod acl {
    //! Dapr's access-control rules as docs/access-control.md states them, over a configuration
    //! read from JSON as a plain [`serde_json::Value`].

    use serde_json::Value;

    use super::valid_name;

    pub const VERBS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];

    #[derive(Debug, Clone)]
    pub struct Operation {
        /// Lowercased segments of the name, with the leading '/' added when missing.
        pub segments: Vec<String>,
        /// The same, in the case written (gRPC method names match case-sensitively).
        pub exact: Vec<String>,
        pub verbs: Vec<String>,
        pub allow: bool,
    }

    #[derive(Debug, Clone)]
    pub struct Policy {
        pub app_id: String,
        pub namespace: String,
        pub trust_domain: String,
        pub default_allow: Option<bool>,
        pub operations: Vec<Operation>,
    }

    #[derive(Debug, Clone)]
    pub struct Acl {
        pub default_allow: bool,
        pub policies: Vec<Policy>,
    }

    fn action(v: Option<&Value>) -> Result<Option<bool>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("allow") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("deny") => Ok(Some(false)),
            Some(other) => Err(format!("action {other}")),
        }
    }

    fn string<'a>(v: Option<&'a Value>, what: &str) -> Result<Option<&'a str>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{what}: {other}")),
        }
    }

    fn object<'a>(
        v: &'a Value,
        keys: &[&str],
    ) -> Result<&'a serde_json::Map<String, Value>, String> {
        let Value::Object(map) = v else {
            return Err(format!("not an object: {v}"));
        };
        if let Some(k) = map.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(format!("unknown key {k}"));
        }
        Ok(map)
    }

    fn list(v: Option<&Value>) -> Result<&[Value], String> {
        match v {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(format!("not a list: {other}")),
        }
    }

    /// A SPIFFE trust domain once lowercased: 1 to 255 of `a-z 0-9 . - _`.
    fn valid_trust_domain(td: &str) -> bool {
        !td.is_empty()
            && td.len() <= 255
            && td
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    }

    /// The name's segments (lowercased, and as written), or why no normalized path could ever
    /// match it.
    fn name_segments(name: &str) -> Result<(Vec<String>, Vec<String>), String> {
        let name = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        if !name.is_ascii() {
            return Err(format!("name {name:?} is not ASCII"));
        }
        if name.chars().any(|c| c.is_control() || "?#%\\;".contains(c)) {
            return Err(format!("name {name:?} has a character no path has"));
        }
        if name == "/" {
            return Ok((Vec::new(), Vec::new()));
        }
        let exact: Vec<String> = name[1..].split('/').map(str::to_string).collect();
        let segments: Vec<String> = exact.iter().map(|s| s.to_ascii_lowercase()).collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!("name {name:?} has an empty, '.' or '..' segment"));
        }
        if segments.iter().filter(|s| *s == "**").count() > 1 {
            return Err(format!("name {name:?} has two '**'"));
        }
        Ok((segments, exact))
    }

    impl Acl {
        /// Reads and validates `accessControl` by the documented rules ("Configuration"): the
        /// fields of the table, each of its type, and every refusal the docs list. `null` counts
        /// as absent only where the field is a string.
        pub fn from_value(v: &Value) -> Result<Acl, String> {
            let top = object(v, &["defaultAction", "trustDomain", "policies"])?;
            let default = action(top.get("defaultAction"))?;
            if let Some(td) = string(top.get("trustDomain"), "trustDomain")? {
                if !valid_trust_domain(&td.to_ascii_lowercase()) {
                    return Err(format!("trust domain {td:?}"));
                }
            }
            let raw_policies = list(top.get("policies"))?;
            if default.is_none() && raw_policies.is_empty() {
                return Err("neither defaultAction nor policies".into());
            }
            let mut policies: Vec<Policy> = Vec::new();
            for p in raw_policies {
                let p = object(
                    p,
                    &[
                        "appId",
                        "defaultAction",
                        "trustDomain",
                        "namespace",
                        "operations",
                    ],
                )?;
                let need = |k: &str| match string(p.get(k), k) {
                    Ok(Some(s)) if !s.is_empty() => Ok(s.to_string()),
                    Ok(_) => Err(format!("{k} missing or empty")),
                    Err(e) => Err(e),
                };
                let (app_id, namespace) = (need("appId")?, need("namespace")?);
                let trust_domain = need("trustDomain")?.to_ascii_lowercase();
                if !valid_name(&app_id) || !valid_name(&namespace) {
                    return Err(format!("ids {app_id:?} {namespace:?}"));
                }
                if !valid_trust_domain(&trust_domain) {
                    return Err(format!("trust domain {trust_domain:?}"));
                }
                if policies
                    .iter()
                    .any(|q| q.app_id == app_id && q.namespace == namespace)
                {
                    return Err(format!("two policies for {app_id} in {namespace}"));
                }
                let default_allow = action(p.get("defaultAction"))?;
                let mut operations: Vec<Operation> = Vec::new();
                for o in list(p.get("operations"))? {
                    let o = object(o, &["name", "httpVerb", "action"])?;
                    let name = match string(o.get("name"), "name")? {
                        Some(n) if !n.is_empty() => n,
                        _ => return Err("operation name missing or empty".into()),
                    };
                    let (segments, exact) = name_segments(name)?;
                    if operations.iter().any(|x| x.segments == segments) {
                        return Err(format!("operation {name:?} twice"));
                    }
                    let Some(allow) = action(o.get("action"))? else {
                        return Err("operation action missing".into());
                    };
                    let mut verbs: Vec<String> = Vec::new();
                    let raw_verbs = match o.get("httpVerb") {
                        None | Some(Value::Null) => &[][..],
                        Some(Value::Array(a)) => a,
                        Some(other) => return Err(format!("httpVerb {other}")),
                    };
                    for v in raw_verbs {
                        let Value::String(v) = v else {
                            return Err(format!("verb {v}"));
                        };
                        if v != "*" && !VERBS.contains(&v.as_str()) {
                            return Err(format!("verb {v:?}"));
                        }
                        if verbs.contains(v) {
                            return Err(format!("verb {v:?} twice"));
                        }
                        verbs.push(v.clone());
                    }
                    operations.push(Operation {
                        segments,
                        exact,
                        verbs,
                        allow,
                    });
                }
                policies.push(Policy {
                    app_id,
                    namespace,
                    trust_domain,
                    default_allow,
                    operations,
                });
            }
            Ok(Acl {
                default_allow: default.unwrap_or(false),
                policies,
            })
        }

        /// Whether a gRPC call of `method` (`/package.Service/Method`) is allowed: the same
        /// table, but the name matched in its own case and without verbs (the operation that
        /// matches decides with its own action), as Dapr's gRPC proxy checks.
        pub fn allows_grpc(
            &self,
            trust_domain: &str,
            namespace: &str,
            app_id: &str,
            method: &str,
        ) -> bool {
            self.decide(trust_domain, namespace, app_id, None, method)
        }

        /// Whether the documented decision table allows the call.
        pub fn allows(
            &self,
            trust_domain: &str,
            namespace: &str,
            app_id: &str,
            method: &str,
            path: &str,
        ) -> bool {
            self.decide(trust_domain, namespace, app_id, Some(method), path)
        }

        fn decide(
            &self,
            trust_domain: &str,
            namespace: &str,
            app_id: &str,
            verb: Option<&str>,
            path: &str,
        ) -> bool {
            // Step 1: a path normalization refuses is denied.
            let Some(normalized) = super::normalize(path) else {
                return false;
            };
            // Steps 2 and 3: the policy of (app id, namespace), in the caller's trust domain.
            let Some(policy) = self
                .policies
                .iter()
                .find(|p| p.app_id == app_id && p.namespace == namespace)
            else {
                return self.default_allow;
            };
            if !policy.trust_domain.eq_ignore_ascii_case(trust_domain) {
                return self.default_allow;
            }
            let fallback = policy.default_allow.unwrap_or(self.default_allow);
            // Step 4: the most specific matching operation, the earlier one on a tie. HTTP
            // matches ignore case; gRPC's do not.
            let in_case = match verb {
                Some(_) => go_lower(&normalized),
                None => normalized,
            };
            let path: Vec<&str> = if in_case == "/" {
                Vec::new()
            } else {
                in_case[1..].split('/').collect()
            };
            let name = |op: &'_ Operation| match verb {
                Some(_) => op.segments.clone(),
                None => op.exact.clone(),
            };
            let mut best: Option<&Operation> = None;
            for op in &policy.operations {
                if name_matches(&name(op), &path)
                    && best.is_none_or(|b| more_specific(&op.segments, &b.segments))
                {
                    best = Some(op);
                }
            }
            let Some(op) = best else {
                return fallback;
            };
            // Steps 5 and 6: the verb, upper-cased, listed or '*'; a gRPC call has none.
            let Some(method) = verb else {
                return op.allow;
            };
            let upper = method.to_ascii_uppercase();
            if op.verbs.iter().any(|v| v == "*" || *v == upper) {
                op.allow
            } else {
                fallback
            }
        }
    }

    /// A path lower-cased as Go's `strings.ToLower` does, as far as the result can equal an
    /// ASCII name: ASCII letters, and the two characters Go lowers into ASCII, `İ` (U+0130) to
    /// `i` and the Kelvin sign (U+212A) to `k`. Other characters keep their case (only a
    /// wildcard can match them).
    pub fn go_lower(path: &str) -> String {
        path.chars()
            .map(|c| match c {
                '\u{130}' => 'i',
                '\u{212a}' => 'k',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    }

    fn rank(segment: &str) -> u8 {
        match segment {
            "**" => 0,
            "*" => 1,
            s if s.contains('*') => 2,
            _ => 3,
        }
    }

    /// Ranks compared left to right; a prefix loses to the longer list; equal is not more.
    fn more_specific(a: &[String], b: &[String]) -> bool {
        for (x, y) in a.iter().zip(b) {
            if rank(x) != rank(y) {
                return rank(x) > rank(y);
            }
        }
        a.len() > b.len()
    }

    /// A name (its segments) against a path (its segments), by the "Matching operation names"
    /// tables: by how the name ends.
    pub fn name_matches(name: &[String], path: &[&str]) -> bool {
        match name.last().map(String::as_str) {
            None => path.is_empty(),
            Some("*") => whole(name, path) || whole(&name[..name.len() - 1], path),
            Some("**") => whole(name, path),
            // A literal or a glob: the path, and everything below it.
            Some(_) => (0..=path.len()).any(|k| whole(name, &path[..k])),
        }
    }

    /// The name matches the whole path, segment by segment; `**` takes any number.
    fn whole(name: &[String], path: &[&str]) -> bool {
        match name.first().map(String::as_str) {
            None => path.is_empty(),
            Some("**") => (0..=path.len()).any(|i| whole(&name[1..], &path[i..])),
            Some(seg) => match path.first() {
                Some(p) => (seg == "*" || glob(seg, p)) && whole(&name[1..], &path[1..]),
                None => false,
            },
        }
    }

    /// A segment pattern where each `*` is any run of characters, by dynamic programming over
    /// characters: `ok[i][j]` says the first `i` pattern characters match the first `j` text ones.
    pub fn glob(pattern: &str, text: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        let mut ok = vec![vec![false; t.len() + 1]; p.len() + 1];
        ok[0][0] = true;
        for i in 1..=p.len() {
            for j in 0..=t.len() {
                ok[i][j] = if p[i - 1] == '*' {
                    ok[i - 1][j] || (j > 0 && ok[i][j - 1])
                } else {
                    j > 0 && ok[i - 1][j - 1] && p[i - 1] == t[j - 1]
                };
            }
        }
        ok[p.len()][t.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::acl::{glob, Acl};
    use super::*;

    #[test]
    fn names_and_targets() {
        assert!(valid_name("order-processor") && valid_name("A_1") && valid_name("a"));
        for bad in ["", "-a", "a_", "a b", "a.b", "é", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(target("a", "d"), Some(("a".into(), "d".into())));
        assert_eq!(target("a.p", "d"), Some(("a".into(), "p".into())));
        for bad in ["a.b.c", "a.", ".b", "", "a%2e"] {
            assert_eq!(target(bad, "d"), None, "{bad:?}");
        }
    }

    #[test]
    fn outbound_examples_from_the_docs() {
        let none = Headers::default();
        let call = |id: &str, path: Option<&str>| Asked::Call {
            id: id.as_bytes().to_vec(),
            path: path.map(str::to_string),
            drop_authorization: false,
        };
        let answer = |status, error_code| Asked::Answer { status, error_code };
        let ask = |path: &str, h: &Headers| asked(path, h, "checkout", None);
        assert_eq!(
            ask("/v1.0/invoke/op/method/orders?x=1", &none),
            call("op", Some("/orders?x=1"))
        );
        assert_eq!(
            ask("/v1.0/invoke/op/method/o?q=/method/x", &none),
            call("op", Some("/o?q=/method/x"))
        );
        assert_eq!(
            ask("/v1.0/invoke/order%2Dprocessor/method/x", &none),
            call("order-processor", Some("/x"))
        );
        assert_eq!(
            ask("/v1.0/invoke/op%252Dx/method/x", &none),
            call("op-x", Some("/x"))
        );
        assert_eq!(ask("/v1.0/invoke/a%zz/method/x", &none), answer(400, ERR));
        assert_eq!(ask("/v1.0/invoke/op/method/?x", &none), answer(404, ERR));
        assert_eq!(ask("/v1.0/invoke//method/x", &none), answer(404, ERR));
        assert_eq!(ask("/v1.0/invoke/op?x=/method/y", &none), answer(404, ERR));
        let get = Headers {
            method: Some(b"GET"),
            ..none
        };
        assert_eq!(ask("/v1.0/healthz/outbound/?x", &get), answer(204, None));
        assert_eq!(ask("/v1.0/healthz?appid=checkout", &get), answer(204, None));
        assert_eq!(
            ask("/v1.0/healthz?appid=%zz&appid=checkout", &get),
            answer(204, None)
        );
        assert_eq!(
            ask("/v1.0/healthz?appid=op", &get),
            answer(500, Some("ERR_HEALTH_APPID_NOT_MATCH"))
        );
        assert_eq!(ask("/v1.0/healthz", &none), answer(404, ERR));
        assert_eq!(ask("/v1.0/metadata/", &get), Asked::Metadata);
        let put = Headers {
            method: Some(b"PUT"),
            ..none
        };
        assert_eq!(
            ask("/v1.0/metadata/k", &put),
            answer(501, Some("ERR_METADATA_SET"))
        );
        assert_eq!(ask("/v1.0/healthzz", &get), answer(404, ERR));
        let id = Headers {
            app_id: Some(b"op"),
            ..none
        };
        assert_eq!(ask("/x", &id), call("op", None));
        assert_eq!(
            ask("/v1.0/invoke/pay/method/p", &id),
            call("pay", Some("/p"))
        );
        // base64("dapr-app-id:op"), and the user in another case.
        let basic = Headers {
            authorization: Some(b"Basic ZGFwci1hcHAtaWQ6b3A="),
            ..none
        };
        let dropped = Asked::Call {
            id: b"op".to_vec(),
            path: None,
            drop_authorization: true,
        };
        assert_eq!(ask("/x", &basic), dropped);
        let upper = Headers {
            authorization: Some(b"Basic REFQUi1BUFAtSUQ6b3A="),
            ..none
        };
        assert_eq!(ask("/x", &upper), dropped);
        let two = Headers {
            authorization: Some(b"Basic ZGFwci1hcHAtaWQ6b3A6eA=="),
            ..none
        };
        assert_eq!(ask("/x", &two), answer(404, ERR));
        // With a token, everything but GET health checks needs it.
        let t = Some(&b"s3cret"[..]);
        assert_eq!(asked("/x", &id, "c", t), answer(401, None));
        assert_eq!(asked("/v1.0/healthz", &get, "c", t), answer(204, None));
        assert_eq!(asked("/v1.0/metadata", &get, "c", t), answer(401, None));
        let with = Headers { api_token: t, ..id };
        assert_eq!(asked("/x", &with, "c", t), call("op", None));
    }

    #[test]
    fn yaml_line_breaks() {
        assert_eq!(yaml_lines(""), 1);
        assert_eq!(yaml_lines("a\nb\r\nc\rd"), 4);
        assert_eq!(yaml_lines("a\n"), 2);
    }

    #[test]
    fn go_durations() {
        for (raw, nanos) in [
            ("5s", Some(5_000_000_000)),
            ("1m30s", Some(90_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            (".5s", Some(500_000_000)),
            ("5.s", Some(5_000_000_000)),
            ("-1.5s", Some(-1_500_000_000)),
            ("+0", Some(0)),
            ("1\u{b5}s", Some(1000)),
            ("1\u{3bc}s", Some(1000)),
            ("2562047h47m16.854775807s", Some(i64::MAX as i128)),
            ("-2562047h47m16.854775808s", Some(i64::MIN as i128)),
            ("2562047h47m16.854775808s", None),
            ("", None),
            ("0s0", None),
            ("00", None),
            (".s", None),
            ("5", None),
            ("1d", None),
            ("- 1s", None),
            ("+-1s", None),
        ] {
            assert_eq!(go_duration(raw), nanos, "{raw:?}");
        }
    }

    #[test]
    fn base64_and_escapes() {
        assert_eq!(base64("").as_deref(), Some(&b""[..]));
        assert_eq!(base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64("YWJj").as_deref(), Some(&b"abc"[..]));
        for bad in ["YQ=", "Y===", "YQ==YWJj", "Y=Q=", "YW-j", "===="] {
            assert_eq!(base64(bad), None, "{bad}");
        }
        assert_eq!(unescape(b"a+b%41", true).as_deref(), Some(&b"a bA"[..]));
        assert_eq!(unescape(b"a+b", false).as_deref(), Some(&b"a+b"[..]));
        assert_eq!(unescape(b"%4", false), None);
        assert_eq!(unescape(b"%ff", false).as_deref(), Some(&b"\xff"[..]));
    }

    #[test]
    fn normalization_table_from_the_docs() {
        for (raw, want) in [
            ("/admin/", Some("/admin")),
            ("/admin/?x=1", Some("/admin")),
            ("/%41dmin", Some("/Admin")),
            ("/orders?x=/admin", Some("/orders")),
            ("/", Some("/")),
            ("/caf%C3%A9", Some("/café")),
            ("/x/../admin", None),
            ("/%2e%2e/admin", None),
            ("//admin", None),
            ("/./admin", None),
            ("/a//", None),
            ("/admin%2F..%2Forders", None),
            ("/%2561dmin", None),
            ("/admin%00", None),
            ("/admin;x=1", None),
            ("/admin%zz", None),
            ("/a%C3", None),
            ("admin", None),
        ] {
            assert_eq!(normalize(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn spiffe_ids() {
        assert_eq!(
            spiffe("spiffe://public/ns/default/checkout"),
            Some(("public".into(), "default".into(), "checkout".into()))
        );
        for bad in [
            "spiffe://Public/ns/d/a",
            "spiffe://p/ns/d/a/",
            "spiffe://p/nss/d/a",
            "spiffe:///ns/d/a",
            "spiffe://p/ns/d.x/a",
            "https://p/ns/d/a",
        ] {
            assert_eq!(spiffe(bad), None, "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("a*", "abc") && glob("*c", "abc") && glob("*a*b*", "xaxxbx"));
        assert!(!glob("*a*b*", "xbxxax") && !glob("a*", "b") && !glob("", "a"));
        assert!(glob("é*", "éa") && glob("**", ""));
    }

    /// The rows of docs/access-control.md's "Matching operation names" and the filter's own
    /// specificity examples.
    #[test]
    fn the_documented_matching_rules() {
        let acl = Acl::from_value(
            &serde_json::from_str(
                r#"{"defaultAction": "deny", "policies": [{"appId": "c", "namespace": "d",
                "trustDomain": "Public", "defaultAction": "deny", "operations": [
                {"name": "/orders", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/orders/admin", "httpVerb": ["*"], "action": "deny"},
                {"name": "/users/*/profile", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/files/**", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/api/**/health", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/img/*.png", "httpVerb": ["GET"], "action": "allow"},
                {"name": "op1/*", "httpVerb": ["GET"], "action": "allow"},
                {"name": "/", "httpVerb": ["GET"], "action": "allow"}]}]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        let ok = |m: &str, p: &str| acl.allows("public", "d", "c", m, p);
        for p in [
            "/orders",
            "/orders/17/items",
            "/users/ann/profile",
            "/files",
            "/files/a/b",
            "/api/health",
            "/api/v1/x/health/deep",
            "/img/logo.png",
            "/op1",
            "/op1/x",
            "/",
            "/ORDERS/?x",
            // Go lowers İ to i and the Kelvin sign to k.
            "/ORDERS/%C4%B0D",
            "/users/\u{212a}im/profile",
        ] {
            assert!(ok("get", p), "{p}");
        }
        for p in [
            "/orders/admin",
            "/orders/admin/x",
            "/ordersx",
            "/users/ann/bob/profile",
            "/users/profile",
            "/api/v1/x",
            "/img/a/logo.png",
            "/op1/x/y",
            "/other",
            "//orders",
            // Other characters keep their case: no ASCII name matches them.
            "/\u{d6}rders",
        ] {
            assert!(!ok("GET", p), "{p}");
        }
        assert!(!ok("POST", "/orders"));
        assert!(!acl.allows("other", "d", "c", "GET", "/orders"));
        assert!(!acl.allows("public", "d", "x", "GET", "/orders"));
    }

    /// gRPC calls: the full method name, in its case, no verb (docs/access-control.md).
    #[test]
    fn grpc_method_names() {
        let acl = Acl::from_value(
            &serde_json::from_str(
                r#"{"defaultAction": "deny", "policies": [{"appId": "c", "namespace": "d",
                "trustDomain": "public", "operations": [
                {"name": "/orders.Orders/Submit", "action": "allow"},
                {"name": "/orders.Orders/*", "httpVerb": ["GET"], "action": "deny"}]}]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert!(acl.allows_grpc("public", "d", "c", "/orders.Orders/Submit"));
        assert!(!acl.allows_grpc("public", "d", "c", "/orders.orders/submit"));
        assert!(!acl.allows_grpc("public", "d", "c", "/orders.Orders/Cancel"));
        assert!(!acl.allows("public", "d", "c", "POST", "/orders.Orders/Submit"));
    }

    #[test]
    fn the_documented_refusals() {
        for bad in [
            r#"{}"#,
            r#"{"defaultAction": "maybe"}"#,
            r#"{"defaultAction": "allow", "trustDomain": "a/b"}"#,
            r#"{"defaultAction": "allow", "policies": [{"appId": "a", "namespace": "d"}]}"#,
            r#"{"policies": [{"appId": "a", "namespace": "d", "trustDomain": "t"},
                              {"appId": "a", "namespace": "d", "trustDomain": "u"}]}"#,
            r#"{"policies": [{"appId": "a", "namespace": "d", "trustDomain": "t",
                "operations": [{"name": "/x"}]}]}"#,
            r#"{"policies": [{"appId": "a", "namespace": "d", "trustDomain": "t",
                "operations": [{"name": "/x", "action": "allow", "httpVerb": ["get"]}]}]}"#,
            r#"{"policies": [{"appId": "a", "namespace": "d", "trustDomain": "t",
                "operations": [{"name": "/x", "action": "allow"}, {"name": "X", "action": "deny"}]}]}"#,
            r#"{"policies": [{"appId": "a", "namespace": "d", "trustDomain": "t",
                "operations": [{"name": "/**/a/**", "action": "allow"}]}]}"#,
            r#"{"policies": [{"appId": "a", "namespace": "d", "trustDomain": "t",
                "operations": [{"name": "/a/", "action": "allow"}]}]}"#,
            r#"{"policies": [{"appId": "a", "namespace": "d", "trustDomain": "t",
                "operations": [{"name": "/caf\u00e9", "action": "allow"}]}]}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert!(Acl::from_value(&v).is_err(), "{bad}");
        }
    }
}
