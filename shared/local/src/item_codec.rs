//! Items as DynamoDB JSON text (`{"amount":{"N":"12.30"}}`), the local table's storage
//! format, written and read directly from and into [`Item`] values.
//!
//! The first version built a `serde_json::Value` tree on the way in and on the way out; on
//! the single SQLite writer that tree (its allocations, its map inserts, its drop) was about
//! half the cost of a table transaction in the payroll benchmark. The format is unchanged:
//! what one version wrote the other reads.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use payops_app::ports::{Item, Value};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserializer, Serialize, Serializer};

/// Nesting depth accepted when reading (deeper than any item the table accepts for writing,
/// so a stored item always reads back, and a corrupt one cannot exhaust the stack).
pub const READ_NESTING_MAX: usize = 40;

/// The item as DynamoDB JSON text. (Every key is a string and no value's `Serialize`
/// reports an error, so this should not fail; if it ever does, the write fails with it
/// rather than storing an empty item.)
pub fn to_text(item: &Item) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Attributes(&item.0))
}

/// Reads an item written by [`to_text`] (or by the earlier `serde_json::Value` encoder).
pub fn from_text(text: &str) -> Result<Item, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let attributes = AttributesSeed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| format!("item JSON: {e}"))?;
    de.end().map_err(|e| format!("item JSON: {e}"))?;
    Ok(Item(attributes))
}

struct Attributes<'a>(&'a BTreeMap<String, Value>);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &Typed(value))?;
        }
        map.end()
    }
}

struct Typed<'a>(&'a Value);

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Value::S(text) => map.serialize_entry("S", text)?,
            // Decimal's Display keeps the scale: 12.30 stays "12.30".
            Value::N(n) => map.serialize_entry("N", &Displayed(n))?,
            Value::Bool(b) => map.serialize_entry("BOOL", b)?,
            Value::Null => map.serialize_entry("NULL", &true)?,
            Value::B(bytes) => map.serialize_entry("B", &STANDARD.encode(bytes))?,
            Value::L(values) => map.serialize_entry("L", &List(values))?,
            Value::M(values) => map.serialize_entry("M", &Attributes(values))?,
        }
        map.end()
    }
}

/// A value written as the string of its `Display`, without an intermediate `String`.
struct Displayed<'a, T>(&'a T);

impl<T: fmt::Display> Serialize for Displayed<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

struct List<'a>(&'a [Value]);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for value in self.0 {
            seq.serialize_element(&Typed(value))?;
        }
        seq.end()
    }
}

/// Reads `{"name": typed value, ...}`.
#[derive(Clone, Copy)]
struct AttributesSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for AttributesSeed {
    type Value = BTreeMap<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AttributesSeed {
    type Value = BTreeMap<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of typed values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.depth > READ_NESTING_MAX {
            return Err(de::Error::custom("values nested too deeply"));
        }
        let mut attributes = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(TypedSeed { depth: self.depth })?;
            attributes.insert(name, value);
        }
        Ok(attributes)
    }
}

/// Reads one typed value: `{"S": "..."}`, `{"N": "12.30"}`, `{"L": [...]}`, ... Like the
/// first decoder, the first entry decides and any further entry is ignored.
#[derive(Clone, Copy)]
struct TypedSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for TypedSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TypedSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a typed value such as {\"S\": \"text\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let tag: std::borrow::Cow<'de, str> = map
            .next_key()?
            .ok_or_else(|| de::Error::custom("not a typed value: {}"))?;
        let bad = |what: &dyn fmt::Display| de::Error::custom(format!("bad {tag} value: {what}"));
        let nested = self.depth + 1;
        let value = match tag.as_ref() {
            "S" => Value::S(map.next_value()?),
            "N" => {
                let text: std::borrow::Cow<'de, str> = map.next_value()?;
                Value::N(Decimal::from_str(&text).map_err(|_| bad(&text))?)
            }
            "BOOL" => Value::Bool(map.next_value()?),
            "NULL" => {
                map.next_value::<IgnoredAny>()?;
                Value::Null
            }
            "B" => {
                let text: std::borrow::Cow<'de, str> = map.next_value()?;
                Value::B(STANDARD.decode(text.as_bytes()).map_err(|_| bad(&text))?)
            }
            "L" => Value::L(map.next_value_seed(ListSeed { depth: nested })?),
            "M" => Value::M(map.next_value_seed(AttributesSeed { depth: nested })?),
            other => return Err(de::Error::custom(format!("unknown value type {other}"))),
        };
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(value)
    }
}

#[derive(Clone, Copy)]
struct ListSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of typed values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        if self.depth > READ_NESTING_MAX {
            return Err(de::Error::custom("values nested too deeply"));
        }
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(value) = seq.next_element_seed(TypedSeed { depth: self.depth })? {
            values.push(value);
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The first encoder, kept here as the reference the direct one must agree with.
    fn reference_text(item: &Item) -> String {
        fn value(v: &Value) -> serde_json::Value {
            use serde_json::json;
            match v {
                Value::S(s) => json!({ "S": s }),
                Value::N(n) => json!({ "N": n.to_string() }),
                Value::Bool(b) => json!({ "BOOL": b }),
                Value::Null => json!({ "NULL": true }),
                Value::B(b) => json!({ "B": STANDARD.encode(b) }),
                Value::L(items) => json!({ "L": items.iter().map(value).collect::<Vec<_>>() }),
                Value::M(map) => {
                    let m: serde_json::Map<String, serde_json::Value> =
                        map.iter().map(|(k, v)| (k.clone(), value(v))).collect();
                    json!({ "M": m })
                }
            }
        }
        let map: serde_json::Map<String, serde_json::Value> =
            item.0.iter().map(|(k, v)| (k.clone(), value(v))).collect();
        serde_json::Value::Object(map).to_string()
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,12}".prop_map(Value::S),
            (any::<i64>(), 0u32..6).prop_map(|(m, scale)| Value::N(Decimal::new(m, scale))),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::B),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::L),
                proptest::collection::btree_map("[a-z\"\\\\]{1,5}", inner, 0..4).prop_map(Value::M),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips_and_matches_the_first_encoder(
            attributes in proptest::collection::btree_map("[a-zA-Z_#\"é]{1,8}", value(), 0..8)
        ) {
            let item = Item(attributes);
            let text = to_text(&item).expect("encodes");
            prop_assert_eq!(&text, &reference_text(&item));
            let back = from_text(&text).expect("reads back");
            prop_assert_eq!(back, item);
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = from_text(r#"{"amount":{"N":"twelve"}}"#).expect_err("not a number");
        assert!(e.contains("bad N value: twelve"), "{e}");
        let e = from_text(r#"{"a":{"X":"1"}}"#).expect_err("unknown type");
        assert!(e.contains("unknown value type X"), "{e}");
        let e = from_text(r#"{"a":{}}"#).expect_err("untyped");
        assert!(e.contains("not a typed value"), "{e}");
        let e = from_text(r#"{"a":{"S":"x"}} trailing"#).expect_err("trailing text");
        assert!(e.starts_with("item JSON"), "{e}");
    }

    #[test]
    fn extra_entries_of_a_typed_value_are_ignored_as_before() {
        let item = from_text(r#"{"a":{"S":"x","N":"1"}}"#).expect("reads");
        assert_eq!(item.0.get("a"), Some(&Value::S("x".to_owned())));
    }

    #[test]
    fn nesting_beyond_the_read_limit_is_an_error_not_a_stack_overflow() {
        let depth = READ_NESTING_MAX + 2;
        let text = format!(
            "{{\"a\":{}{{\"NULL\":true}}{}}}",
            "{\"L\":[".repeat(depth),
            "]}".repeat(depth)
        );
        let e = from_text(&text).expect_err("too deep");
        assert!(e.contains("nested too deeply"), "{e}");
    }
}
