//! The streaming index: an SQS consumer of payment transactions and fraud signals. Each
//! transaction keeps its latest status by event time (never by arrival: a late PENDING does
//! not undo an APPROVED), its latest fraud score by inference time, its policy flags and its
//! ingest time, in the recon table. Every accepted event is also appended to S3 in hourly files
//! (`recon/stream/{transactions|fraud}/dt={event date}/hour={ingest hour}/{batch}.csv`), which
//! are the daily batch's transaction and fraud inputs. User ids are masked before anything is
//! stored or written.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Timelike};
use payops_core::recon::text::days_to_date;
use payops_core::recon::{FraudSignal, Transaction, UserIdMasker, flag_compliance, policy_flags};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::input::{FRAUD_HEADER, FraudColumns, TRANSACTION_HEADER, TransactionColumns};
use super::reference::{ReferenceCache, ReferenceError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};
use crate::ports::{Blobs, Clock, Condition, Item, Key, Table, TableError, UpdateAction};

/// Prefix of the hourly append files.
pub const STREAM_PREFIX: &str = "recon/stream";
pub const STREAM_TRANSACTIONS: &str = "transactions";
pub const STREAM_FRAUD: &str = "fraud";
/// Longest message body accepted (an event is a few hundred bytes).
pub const STREAM_MESSAGE_BYTES_MAX: usize = 16 * 1024;

/// The item of a transaction in the recon table.
pub fn state_key(transaction_id: &str) -> Key {
    Key::new(format!("TX#{transaction_id}"), "STATE")
}

/// A sort-preserving text form of an event time (µs, possibly before 1970).
fn time_key(us: i64) -> String {
    format!("{:020}", i128::from(us) - i128::from(i64::MIN))
}

/// The ordering key of a status event: event time, then the more final status.
pub fn status_key(tx: &Transaction<'_>) -> String {
    format!("{}#{}", time_key(tx.timestamp_us), tx.status.tie_rank())
}

/// The ordering key of a fraud signal: inference time, then the higher score.
pub fn fraud_key(signal: &FraudSignal<'_>) -> String {
    // Scores are 0..=1 at 6 places: 7 digits, zero-padded, sort as numbers.
    let scaled = (signal.fraud_score * Decimal::from(1_000_000)).trunc();
    format!("{}#{:0>7}", time_key(signal.inference_time_us), scaled)
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("message has no body")]
    NoBody,
    #[error("message body is larger than {STREAM_MESSAGE_BYTES_MAX} bytes")]
    TooLarge,
    #[error("message is not a JSON object")]
    NotJson,
    /// Names the field and the reason, never the field's value.
    #[error("field {0}: {1}")]
    Field(&'static str, String),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// The ports of the streaming index.
#[derive(Clone)]
pub struct StreamIndex {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn Blobs>,
    pub clock: Arc<dyn Clock>,
    pub masker: UserIdMasker,
    pub reference: Arc<ReferenceCache>,
}

/// One parsed event, with its CSV row for the hourly file (user id already masked).
enum Event {
    Transaction { row: Vec<String> },
    Fraud { row: Vec<String> },
}

fn field_text(
    object: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<String, StreamError> {
    match object.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        // Numbers keep their exact text (serde_json's arbitrary_precision).
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Null) | None => Ok(String::new()),
        Some(_) => Err(StreamError::Field(
            name,
            "is not a string or a number".into(),
        )),
    }
}

fn texts(
    object: &serde_json::Map<String, Value>,
    header: &'static str,
) -> Result<Vec<String>, StreamError> {
    header
        .split(',')
        .map(|name| field_text(object, name))
        .collect()
}

impl StreamIndex {
    async fn apply(&self, message: &SqsMessage) -> Result<Event, StreamError> {
        let body = message.body.as_deref().ok_or(StreamError::NoBody)?;
        if body.len() > STREAM_MESSAGE_BYTES_MAX {
            return Err(StreamError::TooLarge);
        }
        let value: Value = serde_json::from_str(body).map_err(|_| StreamError::NotJson)?;
        let object = value.as_object().ok_or(StreamError::NotJson)?;
        let kind = object.get("kind").and_then(Value::as_str);
        let is_fraud = kind == Some("fraud_signal")
            || (kind.is_none() && object.contains_key("fraud_signal_id"));
        if is_fraud {
            let row = texts(object, FRAUD_HEADER)?;
            let fields: Vec<&str> = row.iter().map(String::as_str).collect();
            let signal = FraudColumns::CANONICAL
                .parse(&fields)
                .map_err(|(f, r)| StreamError::Field(f, r))?;
            self.apply_fraud(&signal).await?;
            Ok(Event::Fraud { row })
        } else {
            let mut row = texts(object, TRANSACTION_HEADER)?;
            let fields: Vec<&str> = row.iter().map(String::as_str).collect();
            let tx = TransactionColumns::CANONICAL
                .parse(&fields)
                .map_err(|(f, r)| StreamError::Field(f, r))?;
            let masked = self.apply_transaction(&tx).await?;
            row[2] = masked;
            Ok(Event::Transaction { row })
        }
    }

    /// Writes the event if it is newer than the stored status; returns the masked user id.
    async fn apply_transaction(&self, tx: &Transaction<'_>) -> Result<String, StreamError> {
        let reference = self.reference.get().await?;
        let merchant = reference.merchants.get(tx.merchant_id);
        let flags = policy_flags(tx.amount, tx.currency, merchant, &reference.policies);
        let masked = self.masker.mask(tx.user_id).as_str().to_owned();
        let event_time = DateTime::from_timestamp_micros(tx.timestamp_us)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        let key = status_key(tx);
        let actions = vec![
            UpdateAction::set("transaction_id", tx.transaction_id),
            UpdateAction::set("merchant_id", tx.merchant_id),
            UpdateAction::set("masked_user_id", masked.as_str()),
            UpdateAction::set("amount", tx.amount),
            UpdateAction::set("currency", tx.currency),
            UpdateAction::set("status", tx.status.as_str()),
            UpdateAction::set("status_key", key.as_str()),
            UpdateAction::set("event_time", event_time),
            UpdateAction::set(
                "policy_flags",
                crate::ports::Value::L(flags.iter().map(|f| f.as_str().into()).collect()),
            ),
            UpdateAction::set(
                "ingest_time",
                self.clock
                    .now()
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        ];
        let newer = Condition::Or(vec![
            Condition::not_exists("status_key"),
            Condition::lt("status_key", key.as_str()),
        ]);
        match self
            .table
            .update(&state_key(tx.transaction_id), actions, Some(newer))
            .await
        {
            // An older event (or a redelivery of the stored one) changes nothing.
            Ok(_) | Err(TableError::ConditionFailed) => Ok(masked),
            Err(e) => Err(e.into()),
        }
    }

    async fn apply_fraud(&self, signal: &FraudSignal<'_>) -> Result<(), StreamError> {
        let key = fraud_key(signal);
        let actions = vec![
            UpdateAction::set("transaction_id", signal.transaction_id),
            UpdateAction::set("fraud_score", signal.fraud_score),
            UpdateAction::set("model_version", signal.model_version),
            UpdateAction::set("fraud_key", key.as_str()),
        ];
        let newer = Condition::Or(vec![
            Condition::not_exists("fraud_key"),
            Condition::lt("fraud_key", key.as_str()),
        ]);
        match self
            .table
            .update(&state_key(signal.transaction_id), actions, Some(newer))
            .await
        {
            Ok(_) | Err(TableError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes one file per (kind, event date, ingest hour) of a batch. The name is a digest of
    /// the batch's message ids, so a redelivered batch overwrites its own file.
    async fn append(&self, batch_id: &str, events: Vec<Event>) -> Result<(), HandlerError> {
        let hour = self.clock.now().hour();
        let mut files: BTreeMap<(&'static str, String), Vec<Vec<String>>> = BTreeMap::new();
        for event in events {
            let (kind, row, time_col) = match event {
                Event::Transaction { row } => (STREAM_TRANSACTIONS, row, 6),
                Event::Fraud { row } => (STREAM_FRAUD, row, 4),
            };
            let date = payops_core::recon::text::parse_date_days(&row[time_col])
                .ok()
                .and_then(days_to_date)
                .map(|d| d.to_string())
                .unwrap_or_else(|| "unknown".into());
            files.entry((kind, date)).or_default().push(row);
        }
        for ((kind, date), rows) in files {
            let header = if kind == STREAM_TRANSACTIONS {
                TRANSACTION_HEADER
            } else {
                FRAUD_HEADER
            };
            let mut writer = csv::Writer::from_writer(Vec::new());
            let write = |w: &mut csv::Writer<Vec<u8>>| -> Result<(), csv::Error> {
                w.write_record(header.split(','))?;
                for row in &rows {
                    w.write_record(row)?;
                }
                w.flush()?;
                Ok(())
            };
            write(&mut writer).map_err(|e| HandlerError::Fatal(format!("csv: {e}")))?;
            let body = writer
                .into_inner()
                .map_err(|e| HandlerError::Fatal(format!("csv: {e}")))?;
            let key = format!("{STREAM_PREFIX}/{kind}/dt={date}/hour={hour:02}/{batch_id}.csv");
            self.blobs.put(&key, Bytes::from(body), "text/csv").await?;
        }
        Ok(())
    }
}

/// The read side of the streaming index: one transaction's current state, with its compliance
/// assessment computed from the stored score and flags.
pub async fn current_state(
    table: &dyn Table,
    transaction_id: &str,
) -> Result<Option<Item>, TableError> {
    let Some(mut item) = table.get(&state_key(transaction_id)).await? else {
        return Ok(None);
    };
    let flags = match item.get("policy_flags") {
        Some(crate::ports::Value::L(list)) => list
            .iter()
            .filter_map(|v| v.as_s().and_then(payops_core::recon::PolicyFlag::parse))
            .collect(),
        _ => payops_core::recon::PolicyFlags::NONE,
    };
    let assessment = flag_compliance(item.n("fraud_score"), flags);
    item.set("compliance_assessment", assessment.as_str());
    Ok(Some(item))
}

/// The SQS function `recon-stream`.
pub struct StreamProcessor {
    pub index: StreamIndex,
}

#[async_trait]
impl SqsHandler for StreamProcessor {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        let mut failures = BatchFailures::default();
        let mut accepted = Vec::with_capacity(event.records.len());
        let mut digest = Sha256::new();
        for message in &event.records {
            digest.update(message.message_id.as_deref().unwrap_or("-"));
            digest.update(b"\n");
            match self.index.apply(message).await {
                Ok(e) => accepted.push(e),
                Err(e) => {
                    // `e` names a field or a store error, never a value (user ids are PII).
                    tracing::warn!(
                        message_id = message.message_id.as_deref().unwrap_or("-"),
                        error = %e,
                        "recon stream message failed"
                    );
                    failures.add(message);
                }
            }
        }
        if !accepted.is_empty() {
            let batch_id = hex::encode(&digest.finalize()[..12]);
            self.index.append(&batch_id, accepted).await?;
        }
        failures.into_response()
    }
}
