//! `Value` ↔ `AttributeValue`. Numbers travel as exact decimal strings in both directions:
//! DynamoDB stores them as decimals (up to 38 digits), so nothing passes through a float.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use payops_app::ports::table::{Item, Key, PK, SK};
use payops_app::ports::{TableError, Value};
use rust_decimal::Decimal;

/// An item as the SDK carries it.
pub(crate) type AttrMap = HashMap<String, AttributeValue>;

/// The decimal as DynamoDB expects it: plain digits, no exponent, no trailing zeros
/// (DynamoDB normalises them away anyway; `normalize` also turns `-0` into `0`).
pub(crate) fn number_text(n: Decimal) -> String {
    n.normalize().to_string()
}

pub(crate) fn to_attr(value: &Value) -> AttributeValue {
    match value {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(number_text(*n)),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null(true),
        Value::B(b) => AttributeValue::B(Blob::new(b.clone())),
        Value::L(items) => AttributeValue::L(items.iter().map(to_attr).collect()),
        Value::M(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect())
        }
    }
}

/// Parses a DynamoDB number. DynamoDB returns plain decimal text; scientific notation is
/// accepted too in case an item was written by another tool.
pub(crate) fn parse_number(text: &str) -> Option<Decimal> {
    Decimal::from_str_exact(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

/// Converts one attribute; `path` names it in the error (e.g. `amount` or `lines[2]`).
pub(crate) fn from_attr(path: &str, attr: &AttributeValue) -> Result<Value, TableError> {
    Ok(match attr {
        AttributeValue::S(s) => Value::S(s.clone()),
        AttributeValue::N(n) => Value::N(parse_number(n).ok_or_else(|| {
            TableError::Invalid(format!(
                "attribute {path}: number {n:?} does not fit an exact decimal"
            ))
        })?),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(b) => Value::B(b.as_ref().to_vec()),
        AttributeValue::L(items) => Value::L(
            items
                .iter()
                .enumerate()
                .map(|(i, a)| from_attr(&format!("{path}[{i}]"), a))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(map) => Value::M(
            map.iter()
                .map(|(k, a)| Ok((k.clone(), from_attr(&format!("{path}.{k}"), a)?)))
                .collect::<Result<BTreeMap<_, _>, TableError>>()?,
        ),
        // The port has no set type and payops never writes one; turning a set into a list
        // would silently change its type on the next write, so refuse it instead.
        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_) => {
            return Err(TableError::Invalid(format!(
                "attribute {path}: DynamoDB sets are not supported by the Table port"
            )));
        }
        other => {
            return Err(TableError::Invalid(format!(
                "attribute {path}: unknown DynamoDB attribute type {other:?}"
            )));
        }
    })
}

pub(crate) fn to_attr_map(item: &Item) -> AttrMap {
    item.0
        .iter()
        .map(|(k, v)| (k.clone(), to_attr(v)))
        .collect()
}

pub(crate) fn from_attr_map(map: &AttrMap) -> Result<Item, TableError> {
    map.iter()
        .map(|(k, a)| Ok((k.clone(), from_attr(k, a)?)))
        .collect::<Result<BTreeMap<_, _>, TableError>>()
        .map(Item)
}

/// The primary key of the table as an SDK key map.
pub(crate) fn key_map(key: &Key) -> AttrMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test literal is a decimal")
    }

    #[test]
    fn numbers_travel_as_exact_decimal_text() {
        assert_eq!(
            to_attr(&Value::N(dec("12.30"))),
            AttributeValue::N("12.3".into())
        );
        assert_eq!(
            to_attr(&Value::N(dec("-0.00"))),
            AttributeValue::N("0".into())
        );
        assert_eq!(
            to_attr(&Value::N(dec("79228162514264337593543950335"))),
            AttributeValue::N("79228162514264337593543950335".into())
        );
        assert_eq!(
            from_attr("a", &AttributeValue::N("0.1".into())).expect("valid number"),
            Value::N(dec("0.1"))
        );
        assert_eq!(
            from_attr("a", &AttributeValue::N("1.5E+3".into())).expect("valid number"),
            Value::N(dec("1500"))
        );
    }

    #[test]
    fn a_number_too_large_for_a_decimal_is_rejected_with_its_path() {
        let attr = AttributeValue::M(HashMap::from([(
            "x".to_owned(),
            AttributeValue::N("1E+100".into()),
        )]));
        let err = from_attr("outer", &attr).expect_err("does not fit");
        assert!(err.to_string().contains("outer.x"), "{err}");
    }

    #[test]
    fn nested_values_round_trip() {
        let value = Value::M(BTreeMap::from([
            ("s".to_owned(), Value::S(String::new())),
            ("b".to_owned(), Value::B(vec![0, 255])),
            ("t".to_owned(), Value::Bool(true)),
            ("z".to_owned(), Value::Null),
            (
                "l".to_owned(),
                Value::L(vec![Value::N(dec("1.25")), Value::S("x".into())]),
            ),
        ]));
        assert_eq!(from_attr("v", &to_attr(&value)).expect("round trip"), value);
    }

    #[test]
    fn sets_are_refused_rather_than_retyped() {
        let err = from_attr("tags", &AttributeValue::Ss(vec!["a".into()])).expect_err("a set");
        assert!(matches!(err, TableError::Invalid(m) if m.contains("tags")));
    }
}
