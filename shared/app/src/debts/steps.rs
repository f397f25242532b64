//! The Task states of `statemachines/debt-batch.asl.json`, one function with a `step` field:
//!
//! - `split`: check and split the file (see `split`);
//! - `await`: store the execution's task token on the batch, and wake it at once if every
//!   sub-batch is already registered (`.waitForTaskToken`);
//! - `complete`: write the rejected-lines CSV, set the final status, notify the client;
//! - `fail`: a file that cannot be processed: status FAILED with the reason, notify.
//!
//! Errors keep their type (`Retryable`, `Rejected`, `Fatal`) for the state machine's Retry
//! and Catch.

use async_trait::async_trait;
use bytes::Bytes;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::batch::{Batch, BatchStatus};
use super::layout;
use super::{Debts, DebtsError, EVENT_BATCH_COMPLETED, EVENT_BATCH_FAILED, EVENT_SOURCE};
use crate::HandlerError;
use crate::handler::TaskHandler;
use crate::ports::{Condition, Event, MetricRecord, Query, SortKeyRange, UpdateAction};

pub const REJECTIONS_CONTENT_TYPE: &str = "text/csv";
/// Longest failure reason kept on a batch.
pub const FAILURE_CHARS_MAX: usize = 1000;

pub struct Steps {
    state: Debts,
}

impl Steps {
    pub fn new(state: Debts) -> Self {
        Steps { state }
    }
}

fn text<'a>(input: &'a Value, field: &str) -> Result<&'a str, HandlerError> {
    input
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::Rejected(format!("{field}: missing or not a string")))
}

#[async_trait]
impl TaskHandler for Steps {
    async fn handle(&self, input: Value) -> Result<Value, HandlerError> {
        let batch_id = text(&input, "batch_id")?;
        let value = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| HandlerError::Fatal(format!("step output: {e}")))
        };
        match text(&input, "step")? {
            "split" => value(serde_json::to_value(self.state.split(batch_id).await?)),
            "await" => {
                let token = text(&input, "token")?;
                self.state.store_token(batch_id, token).await?;
                Ok(json!({ "batch_id": batch_id }))
            }
            "complete" => value(serde_json::to_value(self.state.complete(batch_id).await?)),
            "fail" => {
                let cause = input
                    .pointer("/error/Cause")
                    .and_then(Value::as_str)
                    .unwrap_or("the batch could not be processed");
                let error = input
                    .pointer("/error/Error")
                    .and_then(Value::as_str)
                    .unwrap_or("Failed");
                value(serde_json::to_value(
                    self.state.fail(batch_id, error, cause).await?,
                ))
            }
            other => Err(HandlerError::Rejected(format!(
                "step: unknown step {other:?}"
            ))),
        }
    }
}

/// Step Functions' causes look like `rejected: the file is empty (0 bytes)`: keep the reason.
pub(crate) fn reason_of(cause: &str) -> String {
    let cause = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| cause.to_owned());
    let cause = ["rejected: ", "fatal: ", "retryable: "]
        .iter()
        .find_map(|p| cause.strip_prefix(p))
        .unwrap_or(&cause);
    cause.chars().take(FAILURE_CHARS_MAX).collect()
}

impl Debts {
    pub async fn store_token(&self, batch_id: &str, token: &str) -> Result<(), DebtsError> {
        self.table
            .update(
                &layout::batch_key(batch_id),
                vec![UpdateAction::set("task_token", token)],
                Some(Condition::ItemExists),
            )
            .await
            .map_err(|e| match e {
                crate::ports::TableError::ConditionFailed => DebtsError::NotFound {
                    what: "batch",
                    id: batch_id.to_owned(),
                },
                e => e.into(),
            })?;
        self.wake_if_processed(batch_id).await
    }

    /// The rejected lines of a batch as CSV: `line,field,reason`, in line order.
    pub async fn rejections_csv(&self, batch_id: &str) -> Result<Vec<u8>, DebtsError> {
        let mut out = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| DebtsError::Corrupt(format!("rejections CSV: {e}"));
        out.write_record(["line", "field", "reason"])
            .map_err(csv_err)?;
        let mut cursor = None;
        loop {
            let page = self
                .table
                .query(
                    Query::partition(layout::batch_pk(batch_id))
                        .sort(SortKeyRange::BeginsWith(layout::REJECTION_PREFIX.into()))
                        .after(cursor),
                )
                .await?;
            for item in &page.items {
                let line = item.n("line").unwrap_or_default().to_string();
                let problems = match item.get("problems") {
                    Some(crate::ports::Value::L(list)) => list.as_slice(),
                    _ => &[],
                };
                for p in problems {
                    let crate::ports::Value::M(m) = p else {
                        continue;
                    };
                    let field = m.get("field").and_then(|v| v.as_s()).unwrap_or_default();
                    let reason = m.get("reason").and_then(|v| v.as_s()).unwrap_or_default();
                    out.write_record([line.as_str(), field, reason])
                        .map_err(csv_err)?;
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        out.into_inner()
            .map_err(|e| DebtsError::Corrupt(format!("rejections CSV: {e}")))
    }

    /// Finishes a batch whose sub-batches are all registered (idempotent).
    pub async fn complete(&self, batch_id: &str) -> Result<Batch, DebtsError> {
        let batch = self.require_batch(batch_id).await?;
        if !batch.status.is_final() {
            if !batch.all_processed() {
                return Err(DebtsError::Conflict(format!(
                    "batch {batch_id}: {} of {} sub-batches registered",
                    batch.sub_batches_done, batch.sub_batches
                )));
            }
            let csv = self.rejections_csv(batch_id).await?;
            let key = layout::rejections_object(batch_id);
            self.blobs
                .put(&key, Bytes::from(csv), REJECTIONS_CONTENT_TYPE)
                .await?;
            let status = if batch.rejected == 0 {
                BatchStatus::Completed
            } else {
                BatchStatus::CompletedWithErrors
            };
            let now = self.clock.now();
            self.transition(
                batch_id,
                &[BatchStatus::Processing],
                status,
                vec![
                    UpdateAction::set("rejections_key", key.as_str()),
                    UpdateAction::set("finished_at", now.to_rfc3339()),
                ],
            )
            .await?;
            self.stage_metric(&batch, "batch", batch.created_at, now)
                .await;
        }
        let batch = self.require_batch(batch_id).await?;
        self.notify(&batch).await?;
        Ok(batch)
    }

    /// Fails a batch that cannot be processed, with the reason (idempotent).
    pub async fn fail(
        &self,
        batch_id: &str,
        error: &str,
        cause: &str,
    ) -> Result<Batch, DebtsError> {
        let reason = reason_of(cause);
        let now = self.clock.now();
        let moved = self
            .transition(
                batch_id,
                &[
                    BatchStatus::Received,
                    BatchStatus::Splitting,
                    BatchStatus::Processing,
                ],
                BatchStatus::Failed,
                vec![
                    UpdateAction::set("failure", reason.as_str()),
                    UpdateAction::set("error", error),
                    UpdateAction::set("finished_at", now.to_rfc3339()),
                ],
            )
            .await?;
        let batch = self.require_batch(batch_id).await?;
        if moved {
            tracing::warn!(batch_id, client_id = %batch.client_id, error, "debt batch failed");
            let record = MetricRecord {
                name: super::METRIC_LINES_FAILED.to_owned(),
                value: Decimal::from(batch.received.saturating_sub(batch.processed)),
                dimensions: vec![
                    ("client".to_owned(), batch.client_id.clone()),
                    ("batch".to_owned(), batch.batch_id.clone()),
                ],
                time: now,
            };
            if let Err(e) = self.metrics.write(vec![record]).await {
                tracing::warn!(error = %e, "debt metrics not written");
            }
        }
        self.notify(&batch).await?;
        Ok(batch)
    }

    /// Tells the client (EventBridge; an API destination delivers it as a webhook), once the
    /// batch is final. At least once: a crash after the event and before the flag sends again.
    async fn notify(&self, batch: &Batch) -> Result<(), DebtsError> {
        if batch.notified || !batch.status.is_final() {
            return Ok(());
        }
        let detail_type = if batch.status == BatchStatus::Failed {
            EVENT_BATCH_FAILED
        } else {
            EVENT_BATCH_COMPLETED
        };
        let mut detail = json!({
            "batch_id": batch.batch_id,
            "client_id": batch.client_id,
            "status": batch.status.as_str(),
            "received": batch.received,
            "processed": batch.processed,
            "accepted": batch.accepted,
            "rejected": batch.rejected,
        });
        if let Some(reason) = &batch.failure {
            detail["failure"] = json!(reason);
        }
        if batch.rejections_key.is_some() {
            detail["rejections"] = json!(format!(
                "{}/{}/rejections.csv",
                super::BATCHES_PATH,
                batch.batch_id
            ));
        }
        self.events
            .put_events(vec![Event {
                source: EVENT_SOURCE.to_owned(),
                detail_type: detail_type.to_owned(),
                detail,
            }])
            .await?;
        self.table
            .update(
                &layout::batch_key(&batch.batch_id),
                vec![UpdateAction::set("notified", true)],
                Some(Condition::ItemExists),
            )
            .await?;
        Ok(())
    }
}
