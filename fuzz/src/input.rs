//! The fuzz targets' input formats: plain text where it can be, so that seeds are readable files
//! written from the unit tests' cases, and any bytes still mean something.

/// `route`: NUL-separated fields, `:path`, then the values of `dapr-app-id`, `:method`,
/// `authorization`, `dapr-api-token` and `dapr-callee-app-id`; a field past the last NUL is
/// absent (`None`).
///
/// `/orders\0order-processor` is a request for `/orders` with `dapr-app-id: order-processor`;
/// `/v1.0/healthz\0\0GET` a `GET` of the health endpoint.
pub fn route(data: &[u8]) -> RouteRequest<'_> {
    let mut fields = data.splitn(6, |b| *b == 0);
    RouteRequest {
        path: fields.next().unwrap_or_default(),
        app_id: fields.next(),
        method: fields.next(),
        authorization: fields.next(),
        api_token: fields.next(),
        callee_app_id: fields.next(),
    }
}

/// An outbound request as the `route` target reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteRequest<'a> {
    pub path: &'a [u8],
    pub app_id: Option<&'a [u8]>,
    pub method: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub api_token: Option<&'a [u8]>,
    pub callee_app_id: Option<&'a [u8]>,
}

impl RouteRequest<'_> {
    /// A header by name, as the decision asks for it.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match name {
            "dapr-app-id" => self.app_id,
            ":method" => self.method,
            "authorization" => self.authorization,
            "dapr-api-token" => self.api_token,
            "dapr-callee-app-id" => self.callee_app_id,
            _ => None,
        }
    }
}

/// One request an access-control policy is asked about.
#[derive(Debug, Clone, Default)]
pub struct AclRequest {
    pub trust_domain: String,
    pub namespace: String,
    pub app_id: String,
    pub method: String,
    pub path: String,
}

/// `acl`: the `accessControl` JSON, then optionally a NUL and requests, one a line, each
/// `trust domain<TAB>namespace<TAB>app id<TAB>method<TAB>path` (missing fields are empty; bytes
/// that are not UTF-8 are replaced).
pub fn acl(data: &[u8]) -> (&[u8], Vec<AclRequest>) {
    let (json, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let requests = rest
        .map(|r| {
            String::from_utf8_lossy(r)
                .split('\n')
                .take(16)
                .map(|line| {
                    let mut f = line.split('\t').map(str::to_string);
                    AclRequest {
                        trust_domain: f.next().unwrap_or_default(),
                        namespace: f.next().unwrap_or_default(),
                        app_id: f.next().unwrap_or_default(),
                        method: f.next().unwrap_or_default(),
                        path: f.next().unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    (json, requests)
}

/// A request as the `filter` target builds it for the fake host.
#[derive(Debug, Clone, Default)]
pub struct FilterRequest {
    /// The first line: which configuration the filter runs with (see the target).
    pub config: Vec<u8>,
    /// Request headers in order, names lowercased as Envoy hands them over.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The verified peer certificate's URI SANs, when the connection has one.
    pub peer: Option<Vec<u8>>,
    /// Host calls that fail (`get <header>`, `set <header>`, `remove <header>`, `property <a.b>`,
    /// `reply`).
    pub failing: Vec<String>,
    /// The sizes of the body's pieces, in order, as Envoy hands them over.
    pub body: Vec<usize>,
}

/// `filter`: lines. The first names the configuration; then `@peer <bytes>`, `@fail <call>`,
/// `@body <size>` (a piece of the body), or a header `<name>: <value bytes>` (the name ends at the first ':' after its first character, so
/// `:path: /x` is the `:path` header).
pub fn filter(data: &[u8]) -> FilterRequest {
    let mut lines = data.split(|b| *b == b'\n');
    let mut req = FilterRequest {
        config: lines.next().unwrap_or_default().to_vec(),
        ..FilterRequest::default()
    };
    for line in lines.take(64) {
        if let Some(peer) = line.strip_prefix(b"@peer ") {
            req.peer = Some(peer.to_vec());
        } else if let Some(size) = line.strip_prefix(b"@body ") {
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            req.body.push(size.unwrap_or(0));
        } else if let Some(call) = line.strip_prefix(b"@fail ") {
            req.failing.push(String::from_utf8_lossy(call).into_owned());
        } else if let Some(colon) = line.iter().skip(1).position(|b| *b == b':') {
            let (name, value) = line.split_at(colon + 1);
            let value = &value[1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            req.headers.push((name, value.to_vec()));
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let r = route(b"/x\0op\0GET\0\0t");
        assert_eq!(
            (r.path, r.app_id, r.method),
            (&b"/x"[..], Some(&b"op"[..]), Some(&b"GET"[..]))
        );
        assert_eq!(
            (r.authorization, r.api_token),
            (Some(&b""[..]), Some(&b"t"[..]))
        );
        assert_eq!(route(b"/x").app_id, None);
        let (json, reqs) = acl(b"{}\0public\td\tc\tGET\t/orders\nx");
        assert_eq!(json, b"{}");
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].path, "/orders");
        assert_eq!(reqs[1].trust_domain, "x");
        let f =
            filter(b"out\n:path: /x\nDapr-App-Id:op\n@peer spiffe://a\n@fail set :path\nnoheader");
        assert_eq!(f.config, b"out");
        assert_eq!(
            f.headers,
            [
                (":path".to_string(), b"/x".to_vec()),
                ("dapr-app-id".to_string(), b"op".to_vec())
            ]
        );
        assert_eq!(f.peer.as_deref(), Some(&b"spiffe://a"[..]));
        assert_eq!(f.failing, ["set :path"]);
    }
}
