//! Payroll files dropped in S3 under [`INBOX_PREFIX`]: the bucket notifies
//! `PayrollInboxQueue`, and each notification becomes a batch exactly as an upload through
//! the API does. The batch id is derived from the object's key and ETag, so a redelivered
//! notification finds the batch it made the first time instead of making a second one.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;

use super::batches::{self, Upload};
use super::{Payroll, PayrollAppError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};

/// Where HR (or an SFTP bridge) drops payroll files in the data bucket.
pub const INBOX_PREFIX: &str = "inbox/payroll/";

pub struct InboxHandler {
    state: Payroll,
}

impl InboxHandler {
    pub fn new(state: Payroll) -> Self {
        InboxHandler { state }
    }
}

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
    /// `s3:TestEvent` when the notification is first configured.
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Object {
    key: String,
    #[serde(rename = "eTag", default)]
    etag: Option<String>,
}

/// Decodes an S3 event key (form encoding: `+` is a space, `%XX` a byte).
pub fn decode_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = key.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl InboxHandler {
    async fn take(&self, message: &SqsMessage) -> Result<(), PayrollAppError> {
        let body = message
            .body
            .as_deref()
            .ok_or_else(|| PayrollAppError::invalid("body", "message has no body"))?;
        let notification: Notification = serde_json::from_str(body)
            .map_err(|e| PayrollAppError::invalid("body", format!("not an S3 event: {e}")))?;
        if notification.event.as_deref() == Some("s3:TestEvent") {
            return Ok(());
        }
        for record in notification.records {
            if !record.event_name.starts_with("ObjectCreated") {
                continue;
            }
            let key = decode_key(&record.s3.object.key).ok_or_else(|| {
                PayrollAppError::invalid("s3.object.key", "not a valid encoded key")
            })?;
            if !key.starts_with(INBOX_PREFIX) {
                continue;
            }
            self.take_object(&key, record.s3.object.etag.as_deref())
                .await?;
        }
        Ok(())
    }

    async fn take_object(&self, key: &str, etag: Option<&str>) -> Result<(), PayrollAppError> {
        let Some(blob) = self.state.blobs.get(key).await? else {
            tracing::warn!(key, "payroll inbox object is gone; nothing to do");
            return Ok(());
        };
        let etag = etag.unwrap_or(&blob.meta.etag);
        let batch_id = batches::derived_batch_id(&["s3", key, etag]);
        let file_name = key.rsplit('/').next().map(str::to_owned);
        match batches::upload(
            &self.state,
            Upload {
                body: blob.body,
                file_name,
                batch_id: Some(batch_id.clone()),
            },
        )
        .await
        {
            Ok(view) => {
                tracing::info!(
                    key,
                    batch_id,
                    status = view.status.as_str(),
                    "payroll inbox file taken"
                );
                Ok(())
            }
            // A file that is not a payroll file at all: retrying cannot help.
            Err(PayrollAppError::Invalid { field, reason }) => {
                tracing::warn!(key, field, reason, "payroll inbox file refused");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl SqsHandler for InboxHandler {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        let mut failures = BatchFailures::default();
        for message in &event.records {
            if let Err(e) = self.take(message).await {
                tracing::warn!(
                    message_id = message.message_id.as_deref().unwrap_or("-"),
                    error = %e,
                    "payroll inbox message failed"
                );
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
    fn keys_decode_as_s3_encodes_them() {
        assert_eq!(
            decode_key("inbox/payroll/May+2026%2B.xml").as_deref(),
            Some("inbox/payroll/May 2026+.xml")
        );
        assert_eq!(decode_key("bad%G1"), None);
    }
}
