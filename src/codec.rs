//! The few encodings request handling reads, written out because the filter keeps its
//! dependencies to proxy-wasm, serde and log: percent-encoding as Go's `url` package decodes it
//! (which is what daprd uses), base64 for `Authorization: Basic`, and a comparison of secrets
//! that takes the same time wherever the first difference is.

/// Go's `url.PathUnescape`: `%XX` decoded, `+` kept. `None` for a malformed escape or bytes that
/// are not UTF-8.
///
/// ```
/// use dapr_invoke::codec::path_unescape;
/// assert_eq!(path_unescape("order%2Dprocessor").as_deref(), Some("order-processor"));
/// assert_eq!(path_unescape("a+b").as_deref(), Some("a+b"));
/// assert_eq!(path_unescape("bad%2"), None);
/// ```
pub fn path_unescape(s: &str) -> Option<String> {
    unescape(s, false)
}

/// Go's `url.QueryUnescape`: `%XX` decoded and `+` read as a space.
///
/// ```
/// use dapr_invoke::codec::query_unescape;
/// assert_eq!(query_unescape("a+b%41").as_deref(), Some("a bA"));
/// ```
pub fn query_unescape(s: &str) -> Option<String> {
    unescape(s, true)
}

fn unescape(s: &str, plus_is_space: bool) -> Option<String> {
    if !s.contains(['%', '+']) {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Standard base64 (RFC 4648, with padding), as Go's `base64.StdEncoding` decodes it. `None` for
/// anything else.
///
/// ```
/// use dapr_invoke::codec::base64_decode;
/// assert_eq!(base64_decode("ZGFwci1hcHAtaWQ6b3A=").as_deref(), Some(&b"dapr-app-id:op"[..]));
/// assert_eq!(base64_decode("ZGFwci1hcHAtaWQ6b3A"), None);
/// ```
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.chunks_exact(4);
    let last = quads.len().checked_sub(1);
    for (n, quad) in quads.enumerate() {
        let mut acc: u32 = 0;
        let mut pad = 0;
        for (k, &c) in quad.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                // Padding only at the end of the last quad, at most two.
                b'=' if Some(n) == last && k >= 2 => {
                    pad += 1;
                    0
                }
                _ => return None,
            };
            if pad > 0 && c != b'=' {
                return None;
            }
            acc = acc << 6 | u32::from(v);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.push(a);
        if pad < 2 {
            out.push(b);
        }
        if pad < 1 {
            out.push(c);
        }
    }
    Some(out)
}

/// Whether two secrets are equal, in time that depends on their lengths only, not on where they
/// differ.
///
/// ```
/// use dapr_invoke::codec::secrets_equal;
/// assert!(secrets_equal(b"s3cret", b"s3cret"));
/// assert!(!secrets_equal(b"s3cret", b"s3creT"));
/// assert!(!secrets_equal(b"s3cret", b"s3cre"));
/// ```
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimizer from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescaping_follows_go() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("plain", Some("plain"), Some("plain")),
            ("%41%62", Some("Ab"), Some("Ab")),
            ("a+b", Some("a+b"), Some("a b")),
            ("%2B", Some("+"), Some("+")),
            ("%", None, None),
            ("%4", None, None),
            ("%zz", None, None),
            ("%ff", None, None), // not UTF-8
            ("%C3%A9", Some("é"), Some("é")),
            ("%2541", Some("%41"), Some("%41")),
        ];
        for (raw, path, query) in cases {
            assert_eq!(path_unescape(raw).as_deref(), *path, "{raw}");
            assert_eq!(query_unescape(raw).as_deref(), *query, "{raw}");
        }
    }

    #[test]
    fn base64_round_trips_and_refuses_what_go_refuses() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("", Some(b"")),
            ("YQ==", Some(b"a")),
            ("YWI=", Some(b"ab")),
            ("YWJj", Some(b"abc")),
            (
                "ZGFwci1hcHAtaWQ6Y2hlY2tvdXQ=",
                Some(b"dapr-app-id:checkout"),
            ),
            ("YQ=", None),
            ("Y===", None),
            ("YQ==YWJj", None),
            ("Y=Q=", None),
            ("YW-j", None),
            ("YW_j", None),
            ("YWJ\n", None),
        ];
        for (raw, want) in cases {
            assert_eq!(base64_decode(raw).as_deref(), *want, "{raw}");
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet = b"%+=/AZaz09-_\xff2B41";
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let s: Vec<u8> = (0..len)
                .map(|i| alphabet[(seed.rotate_left(i as u32 * 3) as usize) % alphabet.len()])
                .collect();
            let s = String::from_utf8_lossy(&s);
            let _ = (path_unescape(&s), query_unescape(&s), base64_decode(&s));
        }
    }
}
