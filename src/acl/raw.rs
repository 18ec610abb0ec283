//! `spec.accessControl` as written: the serde model of Dapr's configuration, in Dapr's camelCase,
//! both ways (read from a plugin configuration, written by a generator). Nothing here is
//! validated; `validate` does that.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// `spec.accessControl` as written, in Dapr's camelCase shape. Every field is optional here so
/// that validation, not serde, reports what is missing, with the field's full path.
///
/// To embed it in another serde struct, use [`deserialize_optional`] so that only a JSON object
/// (never an array of the fields in order) is read as one. Serialized, it is the same object:
/// the keys Dapr writes, and absent fields left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAccessControl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(
        default,
        deserialize_with = "objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub policies: Vec<RawPolicy>,
}

/// One entry of `policies`: what one calling app may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        default,
        deserialize_with = "objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub operations: Vec<RawOperation>,
}

/// One entry of a policy's `operations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOperation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_verb: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Reads a value only from a JSON object: a derived struct would also accept an array of its
/// fields in order, which no one writes on purpose.
struct ObjectOnly<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

pub(super) struct Object<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectOnly(PhantomData)).map(Object)
    }
}

/// A list whose items must be JSON objects.
fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Items<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Items<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(Object(item)) = seq.next_element::<Object<T>>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Items(PhantomData))
}

/// For embedding: `#[serde(default, deserialize_with = "dapr_invoke::acl::deserialize_optional")]`
/// on an `Option<RawAccessControl>` field reads it only from a JSON object (or `null`).
pub fn deserialize_optional<'de, D>(d: D) -> Result<Option<RawAccessControl>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<Object<RawAccessControl>>::deserialize(d).map(|o| o.map(|Object(raw)| raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{AccessControl, Action};

    #[test]
    fn embeds_in_another_config() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            #[serde(default, deserialize_with = "deserialize_optional")]
            access_control: Option<RawAccessControl>,
        }
        let o: Outer =
            serde_json::from_str(r#"{"access_control": {"defaultAction": "deny"}}"#).unwrap();
        let a = AccessControl::try_from(o.access_control.unwrap()).unwrap();
        assert_eq!(a.default_action, Action::Deny);
        let o: Outer = serde_json::from_str("{}").unwrap();
        assert!(o.access_control.is_none());
        let o: Outer = serde_json::from_str(r#"{"access_control": null}"#).unwrap();
        assert!(o.access_control.is_none());
        assert!(serde_json::from_str::<Outer>(r#"{"access_control": ["deny"]}"#).is_err());
        let e = AccessControl::try_from(RawAccessControl::default()).unwrap_err();
        assert_eq!(e.field, "");
    }

    /// What a generator writes is what Dapr writes, and reads back as the same value.
    #[test]
    fn serializes_as_dapr_writes_it() {
        let dapr = r#"{"defaultAction":"deny","trustDomain":"public","policies":[{"appId":"checkout","defaultAction":"deny","trustDomain":"public","namespace":"default","operations":[{"name":"/orders","httpVerb":["POST"],"action":"allow"},{"name":"/admin","action":"deny"}]}]}"#;
        let raw: RawAccessControl = serde_json::from_str(dapr).unwrap();
        assert_eq!(serde_json::to_string(&raw).unwrap(), dapr);
        let written = RawAccessControl {
            default_action: Some("allow".into()),
            policies: vec![RawPolicy {
                app_id: Some("checkout".into()),
                operations: vec![RawOperation {
                    http_verb: Some(vec![]),
                    ..RawOperation::default()
                }],
                ..RawPolicy::default()
            }],
            ..RawAccessControl::default()
        };
        let json = serde_json::to_string(&written).unwrap();
        assert_eq!(
            json,
            r#"{"defaultAction":"allow","policies":[{"appId":"checkout","operations":[{"httpVerb":[]}]}]}"#
        );
        assert_eq!(
            serde_json::from_str::<RawAccessControl>(&json).unwrap(),
            written
        );
        assert_eq!(
            serde_json::to_string(&RawAccessControl::default()).unwrap(),
            "{}"
        );
    }
}
