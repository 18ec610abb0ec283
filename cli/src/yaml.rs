//! Reading Dapr's YAML: typed structs (serde, unknown keys refused) read with `serde-saphyr`,
//! and every problem told as `file:line: key: reason`.
//!
//! serde names an unknown key and the YAML library says where it is, but neither says whose key
//! it is (`apps[1].comand`). On an error the document is read a second time as a plain tree of
//! located nodes ([`Tree`]), and the error's location is looked up in it to name the key.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::{Error as YamlError, Location, MessageFormatter, Spanned, UserMessageFormatter};

/// A problem in a file, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: Option<usize>,
    /// The key's path in the document (`apps[0].command`); empty for the whole file.
    pub key: String,
    pub message: String,
}

impl FileError {
    pub fn new(file: &str, line: Option<usize>, key: &str, message: impl Into<String>) -> Self {
        FileError {
            file: file.to_string(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", printable(&self.key))?;
        }
        f.write_str(&printable(&self.message))
    }
}

/// Text from a file, safe for a terminal: control characters escaped.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The 1-based line of a location, when known.
pub fn line(loc: Location) -> Option<usize> {
    usize::try_from(loc.line()).ok().filter(|l| *l > 0)
}

/// The line a value was written on.
pub fn line_of<T>(v: &Spanned<T>) -> Option<usize> {
    line(v.referenced)
}

/// A file's path as messages show it.
pub fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a file's text, or says why not.
pub fn read(path: &Path, what: &str) -> Result<String, FileError> {
    std::fs::read_to_string(path)
        .map_err(|e| FileError::new(&shown(path), None, "", format!("cannot read {what}: {e}")))
}

/// Reads a one-document file into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, FileError> {
    serde_saphyr::from_str(text).map_err(|e| error(text, file, &e))
}

/// The `kind` of a Dapr resource, and where the resource starts.
#[derive(Debug, Deserialize)]
struct Head {
    kind: Option<Plain>,
}

/// One document of a multi-document file: its `kind` and, when wanted, its contents.
#[derive(Debug)]
pub struct Document<T> {
    pub kind: Option<String>,
    pub line: Option<usize>,
    pub value: Option<T>,
}

/// Reads every document of a file (documents separated by `---`, as the YAML library splits
/// them). Each must be a mapping; those whose `kind` is `wanted` are read into `T`.
pub fn documents<T: DeserializeOwned>(
    text: &str,
    file: &str,
    wanted: &str,
) -> Result<Vec<Document<T>>, FileError> {
    let mut docs = Vec::new();
    let mut bytes = text.as_bytes();
    for head in serde_saphyr::read::<_, Spanned<Head>>(&mut bytes) {
        let head = head.map_err(|e| match e.without_snippet() {
            YamlError::Unexpected {
                expected: "mapping start",
                location,
            } => FileError::new(
                file,
                line(*location),
                "",
                "expected a Dapr resource: a mapping with `kind`",
            ),
            _ => error(text, file, &e),
        })?;
        let line = line_of(&head);
        docs.push(Document {
            kind: head.value.kind.map(|k| k.0),
            line,
            value: None,
        });
    }
    if !docs.iter().any(|d| d.kind.as_deref() == Some(wanted)) {
        return Ok(docs);
    }
    let mut bytes = text.as_bytes();
    let mut read = serde_saphyr::read::<_, T>(&mut bytes);
    for doc in &mut docs {
        let Some(value) = read.next() else {
            return Err(FileError::new(
                file,
                doc.line,
                "",
                "cannot tell where this document ends",
            ));
        };
        if doc.kind.as_deref() == Some(wanted) {
            doc.value = Some(value.map_err(|e| error(text, file, &e))?);
        }
    }
    Ok(docs)
}

/// A serde-saphyr error as `file:line: key: reason`.
pub fn error(text: &str, file: &str, e: &YamlError) -> FileError {
    let e = match e.without_snippet() {
        YamlError::AliasError { error, .. } => error.as_ref(),
        other => other,
    };
    let loc = e.location();
    let at = loc.and_then(line);
    let mut bytes = text.as_bytes();
    if let Some(Err(syntax)) = serde_saphyr::read::<_, IgnoredAny>(&mut bytes).find(Result::is_err)
    {
        let syntax = syntax.without_snippet();
        return FileError::new(
            file,
            syntax.location().and_then(line),
            "",
            format!("not valid YAML: {}", message(syntax)),
        );
    }
    // Without a tree (a key that is a list, say), messages go without the key's path.
    let tree = Tree::parse(text).unwrap_or(Tree(Vec::new()));
    let value_path = || loc.and_then(|l| tree.path_at(l, false)).unwrap_or_default();
    match e {
        YamlError::SerdeUnknownField {
            field,
            expected,
            location,
        } => FileError::new(
            file,
            at,
            &tree
                .path_at(*location, true)
                .unwrap_or_else(|| field.clone()),
            unknown_key(field, expected),
        ),
        YamlError::SerdeMissingField { field, .. } => {
            FileError::new(file, at, &join(&value_path(), field), "is missing")
        }
        YamlError::DuplicateMappingKey { key, location } => FileError::new(
            file,
            at,
            &tree.path_at(*location, true).unwrap_or_default(),
            match key {
                Some(k) => format!("`{k}` is given twice in the same mapping"),
                None => "a key is given twice in the same mapping".to_string(),
            },
        ),
        _ => FileError::new(file, at, &value_path(), message(e)),
    }
}

/// The reason an error gives, in our words where serde's are a Rust type's.
fn message(e: &YamlError) -> String {
    match e {
        YamlError::Message { msg, .. } => msg.clone(),
        YamlError::Unexpected { expected, .. } => match *expected {
            "mapping start" => "must be a mapping".to_string(),
            "sequence start" => "must be a list".to_string(),
            "string scalar" => "must be a plain value (text, a number or true/false)".to_string(),
            other => format!("expected {other}"),
        },
        YamlError::NullIntoString { .. } => "must have a value".to_string(),
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => format!("must be {expected}, not {unexpected}"),
        other => UserMessageFormatter.format_message(other).into_owned(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// "unknown key `x`", with the nearest known key when one is close enough to be a typo: at most
/// two edits away (`comand`), or the same word in another form (`maxRetry`).
pub fn unknown_key(key: &str, known: &[&str]) -> String {
    let key_lower = key.to_ascii_lowercase();
    let near = known
        .iter()
        .map(|k| {
            let k_lower = k.to_ascii_lowercase();
            let edits = strsim::osa_distance(&key_lower, &k_lower);
            (strsim::jaro_winkler(&key_lower, &k_lower), edits, *k)
        })
        .filter(|(similar, edits, _)| *edits <= 2 || *similar >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match near {
        Some((_, _, k)) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None => format!("unknown key `{key}`; known keys here: {}", known.join(", ")),
    }
}

/// A plain scalar as its text: YAML's `DEBUG: true` is "true", `RETRIES: 3` is "3".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Plain(pub String);

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Plain;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a plain value (text, a number or true/false)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Plain, E> {
                Ok(Plain(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Plain, E> {
                Ok(Plain(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Plain, E> {
                Ok(Plain(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Plain, E> {
                Ok(Plain(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Plain, E> {
                Ok(Plain(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A document as a tree of located nodes, only to name the key at an error's location.
pub struct Tree(Vec<Spanned<Node>>);

enum Node {
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Leaf,
}

/// A mapping key as text.
struct Key(Option<String>);

impl Tree {
    /// Every document of `text`; fails on a key that is not a plain value, and on invalid YAML.
    fn parse(text: &str) -> Result<Tree, YamlError> {
        let mut bytes = text.as_bytes();
        serde_saphyr::read::<_, Spanned<Node>>(&mut bytes)
            .collect::<Result<Vec<_>, _>>()
            .map(Tree)
    }

    /// The path of the key (`key: true`) or value at `loc`; the deepest wins.
    fn path_at(&self, loc: Location, key: bool) -> Option<String> {
        let want = (loc.line(), loc.column());
        let at = |l: Location| (l.line(), l.column()) == want;
        fn walk(
            node: &Spanned<Node>,
            path: String,
            key: bool,
            at: &dyn Fn(Location) -> bool,
        ) -> Option<String> {
            let deeper = match &node.value {
                Node::Map(entries) => entries.iter().find_map(|(k, v)| {
                    let name = k.value.0.clone().unwrap_or_else(|| "?".to_string());
                    let here = join(&path, &name);
                    if key && at(k.referenced) {
                        return Some(here);
                    }
                    walk(v, here, key, at)
                }),
                Node::Seq(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, format!("{path}[{i}]"), key, at)),
                Node::Leaf => None,
            };
            deeper.or_else(|| (!key && at(node.referenced)).then_some(path))
        }
        self.0
            .iter()
            .find_map(|doc| walk(doc, String::new(), key, &at))
    }

    /// The line of the value at `path` (as [`Tree::path_at`] writes paths) in the first document.
    pub fn line_at(&self, path: &str) -> Option<usize> {
        fn walk(node: &Spanned<Node>, here: String, want: &str) -> Option<usize> {
            if here == want {
                return line(node.referenced);
            }
            if !here.is_empty() && !want.starts_with(&here) {
                return None;
            }
            match &node.value {
                Node::Map(entries) => entries.iter().find_map(|(k, v)| {
                    let name = k.value.0.as_deref().unwrap_or("?");
                    walk(v, join(&here, name), want)
                }),
                Node::Seq(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, format!("{here}[{i}]"), want)),
                Node::Leaf => None,
            }
        }
        self.0
            .first()
            .and_then(|doc| walk(doc, String::new(), path))
    }

    /// The tree of a one-document file, for looking up lines of paths.
    pub fn of(text: &str) -> Option<Tree> {
        Tree::parse(text).ok()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = a.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // As text, the way serde reads a struct's keys: `n: 1` is the key "n", not false.
        Plain::deserialize(d).map(|p| Key(Some(p.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Top {
        #[allow(dead_code)]
        apps: Vec<App>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct App {
        #[allow(dead_code)]
        id: Option<Plain>,
        #[allow(dead_code)]
        env: Option<std::collections::BTreeMap<String, Plain>>,
    }

    fn err(text: &str) -> String {
        from_str::<Top>(text, "f.yaml").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key_path_and_line() {
        assert_eq!(
            err("apps:\n  - id: a\n  - id: b\n    di: c\n"),
            "f.yaml:4: apps[1].di: unknown key `di`; did you mean `id`?"
        );
        assert_eq!(
            err("apps:\n  - id: a\n    env: {A: [1]}\n"),
            "f.yaml:3: apps[0].env.A: must be a plain value (text, a number or true/false)"
        );
        assert_eq!(
            err("apps:\n  - id: a\n    env: [A]\n"),
            "f.yaml:3: apps[0].env: must be a mapping"
        );
        assert_eq!(
            err("apps: [{id: a, zzz: 1}]"),
            "f.yaml:1: apps[0].zzz: unknown key `zzz`; known keys here: id, env"
        );
        assert!(err("apps: [").starts_with("f.yaml:1: not valid YAML: "));
        assert!(err("apps:\n  - id: a\n    id: b\n").starts_with("f.yaml:3: "));
        // Control characters from the file are escaped, not printed.
        assert!(err("apps: [{\"a\\u001b[2J\": 1}]").contains("a\\u{1b}[2J"));
    }

    #[test]
    fn plain_values_keep_their_text() {
        let env: std::collections::BTreeMap<String, Plain> =
            serde_saphyr::from_str("A: true\nB: 3\nC: '007'\nD: 1.50\n").unwrap();
        let got: Vec<&str> = env.values().map(|p| p.0.as_str()).collect();
        assert_eq!(got, ["true", "3", "007", "1.50"]);
    }

    #[test]
    fn documents_are_split_by_the_yaml_library() {
        #[derive(Debug, Deserialize)]
        struct Doc {
            #[allow(dead_code)]
            kind: String,
            n: u32,
        }
        // A `---` inside a block scalar is text, not a document separator.
        let text = "kind: A\nn: 1\n---\nkind: Other\nnote: |\n  a\n  ---\n  b\n---\n\n---\nkind: A\nn: 2\n";
        let docs = documents::<Doc>(text, "f.yaml", "A").unwrap();
        let got: Vec<(Option<&str>, Option<usize>, Option<u32>)> = docs
            .iter()
            .map(|d| (d.kind.as_deref(), d.line, d.value.as_ref().map(|v| v.n)))
            .collect();
        assert_eq!(
            got,
            [
                (Some("A"), Some(1), Some(1)),
                (Some("Other"), Some(4), None),
                (Some("A"), Some(12), Some(2)),
            ]
        );
        let e = documents::<Doc>("kind: A\nn: 1\n---\n- x\n", "f.yaml", "A").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yaml:4: expected a Dapr resource: a mapping with `kind`"
        );
        let e = documents::<Doc>("kind: B\n---\nkind: A\nn: x\n", "f.yaml", "A").unwrap_err();
        assert!(e.to_string().starts_with("f.yaml:4: n: "), "{e}");
    }
}
