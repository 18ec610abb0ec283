//! App ids and namespaces: what a valid one looks like, and how a target (`id` or `id.namespace`)
//! splits into its parts.
//!
//! Dapr addresses an app in another namespace as `<app-id>.<namespace>`; an id with no dot means
//! the caller's own namespace, and an id with more than one dot is invalid. We follow that rule,
//! and check the characters of each part so that nothing odd reaches a log line or a header.

use std::fmt;

/// Longest app id or namespace we accept: a Kubernetes DNS label, which is what both become in
/// Dapr's Kubernetes mode.
pub const MAX_LEN: usize = 63;

/// Why an app id, a namespace or a target is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong(usize),
    BadChar(char),
    BadEdge,
    TooManyDots,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => write!(f, "is empty"),
            IdError::TooLong(n) => write!(f, "is {n} characters long, more than {MAX_LEN}"),
            IdError::BadChar(c) => write!(
                f,
                "has the character {c:?}; only ASCII letters, digits, '-' and '_' are allowed"
            ),
            IdError::BadEdge => write!(f, "must start and end with a letter or a digit"),
            IdError::TooManyDots => write!(
                f,
                "has more than one '.'; use <app-id> or <app-id>.<namespace>"
            ),
        }
    }
}

/// Checks one part: an app id or a namespace.
///
/// ```
/// use dapr_invoke::ids::{validate_name, IdError};
/// assert_eq!(validate_name("order-processor"), Ok(()));
/// assert_eq!(validate_name("-x"), Err(IdError::BadEdge));
/// ```
pub fn validate_name(name: &str) -> Result<(), IdError> {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err(IdError::Empty);
    };
    if bytes.len() > MAX_LEN {
        return Err(IdError::TooLong(bytes.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(IdError::BadChar(c));
    }
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(IdError::BadEdge);
    }
    Ok(())
}

/// A target app as a caller names it: the id, and the namespace when one was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub app_id: &'a str,
    pub namespace: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// Splits and checks `id` or `id.namespace`.
    ///
    /// ```
    /// use dapr_invoke::ids::Target;
    /// let t = Target::parse("payments.prod").unwrap();
    /// assert_eq!((t.app_id, t.namespace), ("payments", Some("prod")));
    /// assert!(Target::parse("a.b.c").is_err());
    /// ```
    pub fn parse(raw: &'a str) -> Result<Self, IdError> {
        let mut parts = raw.split('.');
        let app_id = parts.next().unwrap_or_default();
        let namespace = parts.next();
        if parts.next().is_some() {
            return Err(IdError::TooManyDots);
        }
        validate_name(app_id)?;
        if let Some(ns) = namespace {
            validate_name(ns)?;
        }
        Ok(Target { app_id, namespace })
    }

    /// The namespace, with the caller's own one filled in for a bare id.
    pub fn namespace_or(&self, own: &'a str) -> &'a str {
        self.namespace.unwrap_or(own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let long = "a".repeat(MAX_LEN + 1);
        let cases: &[(&str, Result<(), IdError>)] = &[
            ("checkout", Ok(())),
            ("order-processor", Ok(())),
            ("app_1", Ok(())),
            ("A9", Ok(())),
            ("a", Ok(())),
            ("", Err(IdError::Empty)),
            ("-a", Err(IdError::BadEdge)),
            ("a_", Err(IdError::BadEdge)),
            ("a b", Err(IdError::BadChar(' '))),
            ("a/b", Err(IdError::BadChar('/'))),
            ("a.b", Err(IdError::BadChar('.'))),
            ("é", Err(IdError::BadChar('é'))),
            (&long, Err(IdError::TooLong(MAX_LEN + 1))),
        ];
        for (name, want) in cases {
            assert_eq!(&validate_name(name), want, "{name:?}");
        }
        assert_eq!(validate_name(&"a".repeat(MAX_LEN)), Ok(()));
    }

    #[test]
    fn targets() {
        let t = Target::parse("order-processor").unwrap();
        assert_eq!(t.app_id, "order-processor");
        assert_eq!(t.namespace, None);
        assert_eq!(t.namespace_or("default"), "default");
        let t = Target::parse("order-processor.prod").unwrap();
        assert_eq!(t.namespace_or("default"), "prod");
        assert_eq!(Target::parse("a.b.c"), Err(IdError::TooManyDots));
        assert_eq!(Target::parse("a."), Err(IdError::Empty));
        assert_eq!(Target::parse(".ns"), Err(IdError::Empty));
        assert_eq!(Target::parse(""), Err(IdError::Empty));
        assert_eq!(Target::parse("a.-x"), Err(IdError::BadEdge));
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert!(IdError::TooManyDots
            .to_string()
            .contains("<app-id>.<namespace>"));
        assert!(IdError::BadChar('!').to_string().contains("'!'"));
    }
}
