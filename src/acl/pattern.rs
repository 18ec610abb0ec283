//! Operation names as patterns: their segments (literals, globs, `*`, `**`), the verbs they
//! list, and how they match a normalized request path.

use super::Action;

/// The HTTP verbs Dapr knows (its `HTTPExtension.Verb`), in bit order.
pub(super) const VERBS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// One segment of an operation name, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// Matches the same segment.
    Literal(String),
    /// Has a `*` inside (`b*`, `*.json`): each `*` matches any run of characters within one
    /// segment.
    Glob(String),
    /// `*`: exactly one segment (or none, when it is the last one).
    One,
    /// `**`: any number of segments, none included.
    Any,
}

impl Seg {
    /// How specific the segment is: a literal beats a glob beats `*` beats `**`.
    pub(super) fn rank(&self) -> u8 {
        match self {
            Seg::Literal(_) => 3,
            Seg::Glob(_) => 2,
            Seg::One => 1,
            Seg::Any => 0,
        }
    }

    fn matches(&self, segment: &str) -> bool {
        match self {
            Seg::Literal(l) => l == segment,
            Seg::Glob(g) => glob(g.as_bytes(), segment.as_bytes()),
            Seg::One | Seg::Any => true,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Operation {
    /// The name as configured (with its leading `/`), for denial reasons.
    pub(super) name: String,
    /// Where it was configured, for denial reasons.
    pub(super) field: String,
    pub(super) segs: Vec<Seg>,
    /// The same segments in the case they were written, for gRPC calls: Dapr matches a gRPC
    /// method name case-sensitively.
    pub(super) exact: Vec<Seg>,
    /// [`Seg::rank`] of each segment. Of two matching operations the one with the greater list
    /// wins (compared left to right; on a tie of the common part, the longer one); equal lists
    /// keep the earlier operation.
    pub(super) ranks: Vec<u8>,
    /// Bit `i` set: `VERBS[i]` is listed.
    pub(super) verbs: u16,
    /// `*` is listed: every method.
    pub(super) any_verb: bool,
    pub(super) action: Action,
}

/// The bit of a request method, in any letter case as Dapr upper-cases it; `None` for a method
/// Dapr does not know.
pub(super) fn verb_bit(method: &str) -> Option<u16> {
    VERBS
        .iter()
        .position(|v| v.eq_ignore_ascii_case(method))
        .map(|i| 1u16 << i)
}

/// Whether an operation's segments match a normalized, lowercased path's segments.
///
/// A name that ends in a literal or a glob also matches every path below it (Dapr's trie stops
/// at the first node that carries an operation); one that ends in `*` matches its parent or one
/// segment more; one that ends in `**` matches its parent and everything below.
pub(super) fn matches(pattern: &[Seg], path: &[&str]) -> bool {
    match pattern.last() {
        None => path.is_empty(),
        Some(Seg::One) => {
            let parent = pattern.get(..pattern.len() - 1).unwrap_or_default();
            exact(pattern, path) || exact(parent, path)
        }
        Some(Seg::Any) => exact(pattern, path),
        Some(Seg::Literal(_) | Seg::Glob(_)) => {
            if pattern.contains(&Seg::Any) {
                (pattern.len().saturating_sub(1)..=path.len())
                    .any(|k| path.get(..k).is_some_and(|head| exact(pattern, head)))
            } else {
                path.get(..pattern.len())
                    .is_some_and(|head| exact(pattern, head))
            }
        }
    }
}

/// Whether the pattern matches the whole path. A pattern has at most one `**`.
fn exact(pattern: &[Seg], path: &[&str]) -> bool {
    let pairwise =
        |p: &[Seg], s: &[&str]| p.len() == s.len() && p.iter().zip(s).all(|(p, s)| p.matches(s));
    match pattern.iter().position(|s| *s == Seg::Any) {
        None => pairwise(pattern, path),
        Some(i) => {
            let (head, tail) = (
                pattern.get(..i).unwrap_or_default(),
                pattern.get(i + 1..).unwrap_or_default(),
            );
            path.len() >= head.len() + tail.len()
                && path.get(..head.len()).is_some_and(|s| pairwise(head, s))
                && path
                    .get(path.len() - tail.len()..)
                    .is_some_and(|s| pairwise(tail, s))
        }
    }
}

/// `*` matches any run of bytes (UTF-8 is self-synchronizing, so literal runs still align on
/// characters). Linear backtracking to the last star: no blow-up on many stars.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if text.get(t) == Some(c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == b'*')
}

/// Splits an operation name (with its leading `/`) into segments, lowercased when `lowercase`
/// (HTTP operations; gRPC method names keep their case), refusing what no normalized request
/// path can contain, so that no rule is silently dead.
pub(super) fn segments(name: &str, lowercase: bool) -> Result<Vec<Seg>, String> {
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '?' | '#' | '%' | '\\' | ';'))
    {
        return Err(format!(
            "{name:?} has the character {c:?}, which a request path never has once normalized; \
             write the decoded path"
        ));
    }
    if name == "/" {
        return Ok(Vec::new());
    }
    let lowered;
    let name_in_case = if lowercase {
        lowered = name.to_lowercase();
        lowered.as_str()
    } else {
        name
    };
    let mut segs = Vec::new();
    for seg in name_in_case.split('/').skip(1) {
        segs.push(match seg {
            "" => {
                return Err(format!(
                    "{name:?} has an empty segment ('//' or a trailing '/'); a request path \
                     with '//' is refused, and one with a trailing '/' matched without it"
                ))
            }
            "." | ".." => {
                return Err(format!(
                    "{name:?} has a {seg:?} segment; a request path with one is refused, so \
                     this would never match"
                ))
            }
            "*" => Seg::One,
            "**" => Seg::Any,
            s if s.contains('*') => Seg::Glob(s.to_string()),
            s => Seg::Literal(s.to_string()),
        });
    }
    if segs.iter().filter(|s| **s == Seg::Any).count() > 1 {
        return Err(format!("{name:?} has more than one '**'"));
    }
    Ok(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*d", "abcd", true),
            ("ab*.a", "abc.a", true),
            ("a*", "b", false),
            ("*a*b*", "xaxxbx", true),
            ("*a*b*", "xbxxax", false),
            ("a**", "a", true),
            ("é*", "éa", true),
            ("", "", true),
            ("", "a", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), *want, "{p:?} ~ {t:?}");
        }
        // Many stars stay fast.
        let p = "*a".repeat(50);
        assert!(!glob(
            p.as_bytes(),
            "a".repeat(5000).replace("aa", "ab").as_bytes()
        ));
    }
}
