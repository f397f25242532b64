//! The file picker: S3 notifications (through SQS) of files dropped under
//! `inbox/debts/{client_id}/…`, as an SFTP server backed by S3 writes them. The client is the
//! first folder; the batch id is derived from the object's key and the event's sequencer, so
//! a redelivered notification finds its batch, and the same file dropped again is a new
//! batch that the duplicate check then refuses.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::batch::Source;
use super::layout;
use super::{Debts, DebtsError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};

pub const INBOX_PREFIX: &str = "inbox/debts/";

pub struct Picker {
    state: Debts,
}

impl Picker {
    pub fn new(state: Debts) -> Self {
        Picker { state }
    }
}

/// The client of an inbox key, `inbox/debts/{client_id}/{file}`; `None` for anything else
/// (a folder marker, a file straight under `inbox/debts/`).
pub fn client_of_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(INBOX_PREFIX)?;
    let (client, file) = rest.split_once('/')?;
    let usable = layout::valid_client_id(client) && !file.is_empty() && !file.ends_with('/');
    usable.then_some(client)
}

/// Decodes a key as S3 writes it in notifications (`+` for a space, `%XX` escapes).
fn decode_key(raw: &str) -> Result<String, DebtsError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| DebtsError::Corrupt(format!("S3 event key {raw:?}")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| DebtsError::Corrupt(format!("S3 event key {raw:?}")))
}

/// `d_` and 24 hex digits of SHA-256 over the key and the event's sequencer.
fn drop_batch_id(key: &str, sequencer: &str) -> String {
    let digest = Sha256::digest(format!("{key}\n{sequencer}").as_bytes());
    format!("d_{}", &hex::encode(digest)[..24])
}

impl Debts {
    /// Takes one S3 event body (`{"Records": [...]}`); returns the batches it received.
    pub async fn pick(&self, body: &str) -> Result<Vec<String>, DebtsError> {
        let event: Value = serde_json::from_str(body)
            .map_err(|e| DebtsError::Corrupt(format!("S3 event: {e}")))?;
        let mut batches = Vec::new();
        // `s3:TestEvent` and other bodies without records carry no file.
        let records = event
            .get("Records")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for record in records {
            let name = record
                .get("eventName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !name.starts_with("ObjectCreated") {
                continue;
            }
            let object = record.pointer("/s3/object").unwrap_or(&Value::Null);
            let Some(raw_key) = object.get("key").and_then(Value::as_str) else {
                continue;
            };
            let key = decode_key(raw_key)?;
            let Some(client_id) = client_of_key(&key) else {
                tracing::warn!(
                    key,
                    "file in the debts inbox outside a client folder; ignored"
                );
                continue;
            };
            let sequencer = object
                .get("sequencer")
                .and_then(Value::as_str)
                .or_else(|| object.get("eTag").and_then(Value::as_str))
                .unwrap_or("");
            let batch_id = drop_batch_id(&key, sequencer);
            self.receive_file(&batch_id, client_id, Source::Drop, None, vec![key.clone()])
                .await?;
            batches.push(batch_id);
        }
        Ok(batches)
    }
}

#[async_trait]
impl SqsHandler for Picker {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        let mut failures = BatchFailures::default();
        for message in &event.records {
            let body = message.body.as_deref().unwrap_or("");
            if let Err(e) = self.state.pick(body).await {
                tracing::warn!(error = %e, "debt file not picked; will be retried");
                failures.add(message);
            }
        }
        failures.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_first_folder() {
        assert_eq!(client_of_key("inbox/debts/acme/2026/nov.csv"), Some("acme"));
        assert_eq!(client_of_key("inbox/debts/acme/"), None);
        assert_eq!(client_of_key("inbox/debts/file.csv"), None);
        assert_eq!(client_of_key("inbox/payroll/acme/a.xml"), None);
        assert_eq!(client_of_key("inbox/debts/a b/x.csv"), None);
    }

    #[test]
    fn event_keys_are_decoded() {
        assert_eq!(
            decode_key("inbox/debts/acme/d%C3%ADvidas+nov.csv").expect("valid"),
            "inbox/debts/acme/dívidas nov.csv"
        );
        assert!(decode_key("inbox/%zz").is_err());
    }

    #[test]
    fn batch_ids_are_stable_per_event_and_differ_per_upload() {
        let a = drop_batch_id("inbox/debts/acme/a.csv", "0001");
        assert_eq!(a, drop_batch_id("inbox/debts/acme/a.csv", "0001"));
        assert_ne!(a, drop_batch_id("inbox/debts/acme/a.csv", "0002"));
        assert_eq!(a.len(), 26);
    }
}
