//! Distributed Map item readers: turning an S3 object (JSON array, JSON lines or CSV) or an S3
//! listing into Map items. The executor fetches the bytes; this decides what the items are.

use serde_json::{Map, Value, json};

use super::definition::{CsvHeaders, InputType, ItemReader};
use super::errors::{Failure, names};

/// Most items one ItemReader may produce (the distributed Map limit per run is far higher in
/// AWS, but a local run holds items in memory).
pub const READER_ITEMS_MAX: usize = 10_000_000;

fn reader_failed(reason: impl Into<String>) -> Failure {
    Failure::new(names::ITEM_READER_FAILED, reason)
}

/// Parses the content of the object named by an `s3:getObject` reader.
pub fn parse_items(
    reader: &ItemReader,
    key: &str,
    body: &[u8],
    max_items: Option<u64>,
) -> Result<Vec<Value>, Failure> {
    let limit = max_items
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(READER_ITEMS_MAX)
        .min(READER_ITEMS_MAX);
    let text = std::str::from_utf8(body)
        .map_err(|e| reader_failed(format!("object '{key}' is not UTF-8 text: {e}")))?;
    match reader.input_type {
        Some(InputType::Json) | None => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| reader_failed(format!("object '{key}' is not valid JSON: {e}")))?;
            match v {
                Value::Array(mut items) => {
                    items.truncate(limit);
                    Ok(items)
                }
                _ => Err(reader_failed(format!(
                    "object '{key}' must hold a JSON array"
                ))),
            }
        }
        Some(InputType::Jsonl) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .take(limit)
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| {
                    reader_failed(format!(
                        "object '{key}' line {}: not valid JSON: {e}",
                        i + 1
                    ))
                })
            })
            .collect(),
        Some(InputType::Csv) => parse_csv(reader, key, text, limit),
        Some(InputType::Manifest) => Err(reader_failed(
            "ReaderConfig InputType MANIFEST (S3 inventory) is not supported locally",
        )),
    }
}

fn parse_csv(
    reader: &ItemReader,
    key: &str,
    text: &str,
    limit: usize,
) -> Result<Vec<Value>, Failure> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(reader.csv_delimiter)
        .has_headers(false)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut records = rdr.records();
    let headers: Vec<String> = match &reader.csv_headers {
        CsvHeaders::Given(h) => h.clone(),
        CsvHeaders::FirstRow => match records.next() {
            Some(Ok(r)) => r.iter().map(str::to_owned).collect(),
            Some(Err(e)) => {
                return Err(reader_failed(format!(
                    "object '{key}': bad CSV header: {e}"
                )));
            }
            None => return Ok(Vec::new()),
        },
    };
    let mut items = Vec::new();
    for record in records.take(limit) {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            reader_failed(format!("object '{key}' line {line}: {e}"))
        })?;
        if record.len() != headers.len() {
            let line = record.position().map_or(0, |p| p.line());
            return Err(reader_failed(format!(
                "object '{key}' line {line}: {} fields, but there are {} headers",
                record.len(),
                headers.len()
            )));
        }
        let row: Map<String, Value> = headers
            .iter()
            .cloned()
            .zip(record.iter().map(|f| Value::String(f.to_owned())))
            .collect();
        items.push(Value::Object(row));
    }
    Ok(items)
}

/// The item an `s3:listObjectsV2` reader yields for one object.
pub fn object_item(key: &str, size_bytes: u64, etag: &str, last_modified: &str) -> Value {
    json!({
        "Etag": format!("\"{etag}\""),
        "Key": key,
        "LastModified": last_modified,
        "Size": size_bytes,
        "StorageClass": "STANDARD",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::definition::ReaderSource;
    use crate::asl::template::Template;

    fn reader(input_type: InputType, headers: CsvHeaders) -> ItemReader {
        ItemReader {
            source: ReaderSource::GetObject,
            parameters: Template::Literal(json!({})),
            input_type: Some(input_type),
            csv_headers: headers,
            csv_delimiter: b',',
            max_items: None,
        }
    }

    #[test]
    fn json_jsonl_and_csv() {
        let r = reader(InputType::Json, CsvHeaders::FirstRow);
        assert_eq!(
            parse_items(&r, "k", b"[1, {\"a\": 2}]", None).expect("ok"),
            vec![json!(1), json!({"a": 2})]
        );
        assert!(parse_items(&r, "k", b"{}", None).is_err());
        let r = reader(InputType::Jsonl, CsvHeaders::FirstRow);
        assert_eq!(
            parse_items(&r, "k", b"{\"a\":1}\n\n{\"a\":2}\n", Some(1)).expect("ok"),
            vec![json!({"a": 1})]
        );
        let r = reader(InputType::Csv, CsvHeaders::FirstRow);
        assert_eq!(
            parse_items(&r, "k", b"id,amount\n1,10.50\n2,\"3,00\"\n", None).expect("ok"),
            vec![
                json!({"id": "1", "amount": "10.50"}),
                json!({"id": "2", "amount": "3,00"})
            ]
        );
        let bad = parse_items(&r, "k", b"id,amount\n1\n", None).expect_err("short row");
        assert_eq!(bad.error, "States.ItemReaderFailed");
        assert!(bad.cause.contains("line 2"), "{}", bad.cause);
        let r = reader(InputType::Csv, CsvHeaders::Given(vec!["x".into()]));
        assert_eq!(
            parse_items(&r, "k", b"a\nb\n", None).expect("ok"),
            vec![json!({"x": "a"}), json!({"x": "b"})]
        );
    }
}
