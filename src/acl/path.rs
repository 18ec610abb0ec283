//! The request path as access control sees it.

/// The request path as access control sees it, from the raw `:path`; or why it is refused.
///
/// This is the one place that decides which paths can be checked at all. The app receives the
/// `:path` as sent, so the policy may only match a path the app cannot read as another one:
///
/// - the query string (from the first `?`) is dropped; Dapr never matches on it;
/// - `%XX` is decoded once; an escape that is malformed, or decodes to `/`, `\`, `%`, `?`, `#`,
///   `;` or a control character, refuses the path, as does a raw `#`, `\`, `;` or control
///   character, or bytes that are not UTF-8 once decoded;
/// - a `.` or `..` segment (literal or encoded) and an empty segment (`//`) refuse the path:
///   the app would resolve or merge them into a path other than the one checked. Envoy's
///   `normalize_path` and `merge_slashes` rewrite most such paths before the filter sees them;
///   whatever is left is ambiguous, and refused rather than resolved;
/// - a trailing `/` is dropped: `/orders/` is the operation `/orders`, as in Dapr.
///
/// Letter case is kept here; matching compares lowercased, as Dapr does for HTTP.
///
/// ```
/// use dapr_invoke::acl::normalize_operation;
/// assert_eq!(normalize_operation("/Orders%20x/7/?y=/../z").unwrap(), "/Orders x/7");
/// assert!(normalize_operation("/public/../admin").is_err());
/// assert!(normalize_operation("/public/%2e%2e/admin").is_err());
/// assert!(normalize_operation("/admin%2F..%2Fpublic").is_err());
/// ```
pub fn normalize_operation(path: &str) -> Result<String, String> {
    let raw = path.split('?').next().unwrap_or_default();
    if !raw.starts_with('/') {
        return Err("does not start with '/'".into());
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        let b = if b == b'%' {
            let hi = bytes.next().and_then(hex);
            let lo = bytes.next().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err("has a '%' not followed by two hex digits".into());
            };
            let v = (hi << 4) | lo;
            if forbidden(v) || v == b'/' || v == b'%' {
                return Err(format!(
                    "has an encoded {:?}, which would decode to a different path",
                    char::from(v)
                ));
            }
            v
        } else if forbidden(b) {
            return Err(format!("has the character {:?}", char::from(b)));
        } else {
            b
        };
        decoded.push(b);
    }
    let mut decoded =
        String::from_utf8(decoded).map_err(|_| "is not UTF-8 once decoded".to_string())?;
    let mut segments = decoded.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        if segment == "." || segment == ".." {
            return Err(format!(
                "has a {segment:?} segment, which the app would resolve to another path"
            ));
        }
        if segment.is_empty() && segments.peek().is_some() {
            return Err("has an empty segment ('//'), which the app may merge".into());
        }
    }
    if decoded.len() > 1 && decoded.ends_with('/') {
        decoded.pop();
    }
    Ok(decoded)
}

/// Bytes no path may carry, raw or encoded: `#` (a fragment), `\` (a separator to some servers),
/// `;` (path parameters to some servers) and control characters.
fn forbidden(b: u8) -> bool {
    b < 0x20 || b == 0x7f || matches!(b, b'#' | b'\\' | b';' | b'?')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        let ok: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a", "/a"),
            ("/a/", "/a"),
            ("/a/b", "/a/b"),
            ("/a/...", "/a/..."),
            ("/a/..b", "/a/..b"),
            ("/a/.b", "/a/.b"),
            ("/a/%2e%2e%2e", "/a/..."),
            ("/Orders%20Big", "/Orders Big"),
            ("/caf%C3%A9", "/café"),
            ("/café", "/café"),
            ("/a?b/../../c", "/a"),
            ("/a?", "/a"),
            ("/a*b", "/a*b"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_operation(raw).as_deref(), Ok(*want), "{raw:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "start with '/'"),
            ("a/b", "start with '/'"),
            ("?/a", "start with '/'"),
            ("*", "start with '/'"),
            ("/a%2fb", "encoded '/'"),
            ("/a%252fb", "encoded '%'"),
            ("/a%5Cb", "encoded '\\\\'"),
            ("/a\\b", "'\\\\'"),
            ("/a%3Fb", "encoded '?'"),
            ("/a%23b", "encoded '#'"),
            ("/a#b", "'#'"),
            ("/a%0Ab", "encoded '\\n'"),
            ("/a\tb", "'\\t'"),
            ("/a%7f", "encoded '\\u{7f}'"),
            ("/a;b", "';'"),
            ("/a%", "two hex digits"),
            ("/a%4", "two hex digits"),
            ("/a%g0", "two hex digits"),
            ("/a%C3", "not UTF-8"),
            ("/a%C3%28", "not UTF-8"),
            // Dot segments, however encoded, and empty segments are refused, never resolved.
            ("/.", "\".\" segment"),
            ("/..", "\"..\" segment"),
            ("/a/b/..", "\"..\" segment"),
            ("/a/./b", "\".\" segment"),
            ("/a/../../b", "\"..\" segment"),
            ("/a/%2e%2e/b", "\"..\" segment"),
            ("/a/%2E/b", "\".\" segment"),
            ("/a/.%2E/b", "\"..\" segment"),
            ("/a/%2e./b", "\"..\" segment"),
            ("//a", "empty segment"),
            ("/a//b", "empty segment"),
            ("/a//", "empty segment"),
            ("//", "empty segment"),
        ];
        for (raw, want) in bad {
            match normalize_operation(raw) {
                Ok(p) => panic!("{raw:?} normalized to {p:?}"),
                Err(e) => assert!(e.contains(want), "{raw:?}: {e:?} lacks {want:?}"),
            }
        }
    }
}
