//! The query cursor: DynamoDB's `ExclusiveStartKey` as an opaque string, base64url of a
//! JSON object `{"attr": {"S": "…"}}`. Key attributes are strings, numbers or binary only.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use payops_app::ports::{Cursor, TableError};
use serde_json::{Map, Value as Json};

use super::value::AttrMap;

/// Longest cursor accepted, to bound work on hostile input (a key is at most 4 attributes
/// of at most 2 KB (partition) or 1 KB (sort) each).
pub const CURSOR_BYTES_MAX: usize = 16 * 1024;

pub(crate) fn encode(key: &AttrMap) -> Cursor {
    let mut object = Map::new();
    for (name, attr) in key {
        let typed = match attr {
            AttributeValue::S(s) => ("S", Json::String(s.clone())),
            AttributeValue::N(n) => ("N", Json::String(n.clone())),
            AttributeValue::B(b) => ("B", Json::String(URL_SAFE_NO_PAD.encode(b.as_ref()))),
            // DynamoDB keys are S, N or B; anything else cannot appear in a LastEvaluatedKey.
            other => ("S", Json::String(format!("{other:?}"))),
        };
        let mut tagged = Map::new();
        tagged.insert(typed.0.to_owned(), typed.1);
        object.insert(name.clone(), Json::Object(tagged));
    }
    Cursor(URL_SAFE_NO_PAD.encode(Json::Object(object).to_string()))
}

pub(crate) fn decode(cursor: &Cursor) -> Result<AttrMap, TableError> {
    let bad = |why: &str| TableError::Invalid(format!("cursor is not valid: {why}"));
    if cursor.0.len() > CURSOR_BYTES_MAX {
        return Err(bad("too long"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.0.as_bytes())
        .map_err(|_| bad("not base64url"))?;
    let json: Json = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
    let Json::Object(object) = json else {
        return Err(bad("not a JSON object"));
    };
    if object.is_empty() {
        return Err(bad("no key attributes"));
    }
    let mut key = HashMap::with_capacity(object.len());
    for (name, tagged) in object {
        let Some((tag, Json::String(text))) = tagged
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        else {
            return Err(bad("an attribute is not a typed string"));
        };
        let attr = match tag.as_str() {
            "S" => AttributeValue::S(text.clone()),
            "N" => AttributeValue::N(text.clone()),
            "B" => AttributeValue::B(Blob::new(
                URL_SAFE_NO_PAD
                    .decode(text.as_bytes())
                    .map_err(|_| bad("binary attribute is not base64url"))?,
            )),
            _ => return Err(bad("unknown attribute type")),
        };
        key.insert(name, attr);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_every_key_type() {
        let key: AttrMap = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("DAY#2024-01-01".into())),
            ("sk".to_owned(), AttributeValue::S("ü/\"x\"".into())),
            ("gsi1_pk".to_owned(), AttributeValue::N("12.5".into())),
            (
                "gsi1_sk".to_owned(),
                AttributeValue::B(Blob::new(vec![0, 1, 255])),
            ),
        ]);
        let cursor = encode(&key);
        assert!(
            cursor
                .0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "URL safe: {}",
            cursor.0
        );
        assert_eq!(decode(&cursor).expect("own cursor"), key);
    }

    #[test]
    fn a_forged_cursor_is_invalid() {
        for text in [
            "",
            "!!!",
            "bm90IGpzb24",
            "W10",
            "e30",
            "eyJwayI6eyJYIjoiYSJ9fQ",
        ] {
            let err = decode(&Cursor(text.to_owned())).expect_err(text);
            assert!(matches!(err, TableError::Invalid(_)), "{text}: {err:?}");
        }
        let long = Cursor("A".repeat(CURSOR_BYTES_MAX + 1));
        assert!(matches!(decode(&long), Err(TableError::Invalid(_))));
    }
}
