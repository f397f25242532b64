//! Transform and register, per sub-batch (SQS): the sub-batch is parsed in its client's
//! format and validated, accepted debts are written to the debt store, rejected lines are
//! recorded, and the batch's counters move — all idempotent, so a redelivered sub-batch
//! registers nothing twice:
//!
//! - a debt's key is (client, reference); its write is conditional on the item being absent
//!   or being this very line of this batch (a redelivery rewrites it unchanged);
//! - rejected lines are keyed by batch and line number;
//! - the sub-batch's `done` flag and the batch's counters change in one transaction,
//!   conditional on the flag being unset.
//!
//! The sub-batch that finishes the batch wakes its workflow (the task token the `await`
//! step stored).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, NaiveDate, Utc};
use payops_core::debts::{
    Checker, DebtField, LineParser, LineSplitter, Outcome, Rejection, Target, builtin_named,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::batch::{Batch, SubBatch};
use super::layout;
use super::{Debts, DebtsError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};
use crate::ports::table::TRANSACTION_WRITES_MAX;
use crate::ports::{
    CancelReason, Condition, Item, MetricRecord, TableError, UpdateAction, Value, Write,
};

pub const METRIC_LINES_PROCESSED: &str = "debts_lines_processed";
pub const METRIC_LINES_ACCEPTED: &str = "debts_lines_accepted";
pub const METRIC_LINES_REJECTED: &str = "debts_lines_rejected";
pub const METRIC_LINES_FAILED: &str = "debts_lines_failed";
pub const METRIC_STAGE_MS: &str = "debts_stage_ms";
/// Times a transaction that conflicted with a concurrent one is tried again in place.
const CONFLICT_RETRIES_MAX: usize = 5;

/// The message announcing one sub-batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubBatchMessage {
    pub batch_id: String,
    pub client_id: String,
    pub index: u32,
    /// The object holding the sub-batch's lines.
    pub key: String,
    /// Physical line number of its first line in the client's file.
    pub first_line: u64,
    pub format: String,
    /// The file's decoded column header, for formats that have one.
    pub header: Option<String>,
    pub today: NaiveDate,
}

/// What registering one sub-batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub lines: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// False when the sub-batch had been registered before (a redelivery).
    pub first_time: bool,
}

/// The sub-batch queue's consumer.
pub struct Register {
    state: Debts,
}

impl Register {
    pub fn new(state: Debts) -> Self {
        Register { state }
    }
}

#[async_trait]
impl SqsHandler for Register {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        let mut failures = BatchFailures::default();
        for message in &event.records {
            let parsed = message
                .body
                .as_deref()
                .ok_or_else(|| DebtsError::Corrupt("sub-batch message without a body".into()))
                .and_then(|b| {
                    serde_json::from_str::<SubBatchMessage>(b)
                        .map_err(|e| DebtsError::Corrupt(format!("sub-batch message: {e}")))
                });
            let result = match parsed {
                Ok(m) => self.state.register(&m).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "debt sub-batch not registered; will be retried");
                failures.add(message);
            }
        }
        failures.into_response()
    }
}

/// A debt ready to be written, and the line it came from.
struct Pending {
    line: u64,
    item: Item,
    reference: String,
}

impl Debts {
    /// Registers one sub-batch (idempotent), then wakes the workflow if it was the last.
    pub async fn register(&self, m: &SubBatchMessage) -> Result<Registered, DebtsError> {
        let started = self.clock.now();
        let sub_key = layout::sub_batch_key(&m.batch_id, m.index);
        let sub = self
            .table
            .get(&sub_key)
            .await?
            .and_then(|i| SubBatch::from_item(&i))
            .ok_or_else(|| DebtsError::NotFound {
                what: "sub-batch",
                id: format!("{}#{}", m.batch_id, m.index),
            })?;
        if sub.done {
            self.wake_if_processed(&m.batch_id).await?;
            return Ok(Registered::default());
        }
        let body = self
            .blobs
            .get(&m.key)
            .await?
            .ok_or_else(|| DebtsError::Corrupt(format!("sub-batch object {} is missing", m.key)))?
            .body;
        let format = builtin_named(&m.format).map_err(|e| DebtsError::Corrupt(e.to_string()))?;
        let parser = LineParser::new(format, m.header.as_deref(), m.today)
            .map_err(|e| DebtsError::Corrupt(format!("sub-batch header: {e}")))?;
        let mut checker = Checker::new(parser, m.first_line);
        let mut pending = Vec::new();
        let now = self.clock.now().to_rfc3339();
        let mut splitter = LineSplitter::default();
        let mut each = |raw: &[u8]| -> Result<(), DebtsError> {
            let line = checker.next_line();
            if let Outcome::Accepted(debt) = checker.line(raw) {
                let key = layout::debt_key(&m.client_id, debt.client_reference);
                let item = Item::new(&key)
                    .with("client_id", m.client_id.as_str())
                    .with("client_reference", debt.client_reference)
                    .with("debtor_name", debt.debtor_name)
                    .with("cpf", debt.cpf.digits())
                    .with("amount", debt.amount)
                    .with("currency", "BRL")
                    .with("missed_date", debt.missed_date.to_string())
                    .with("batch_id", m.batch_id.as_str())
                    .with("line", Decimal::from(line))
                    .with("registered_at", now.as_str());
                pending.push(Pending {
                    line,
                    item,
                    reference: debt.client_reference.to_owned(),
                });
            }
            Ok(())
        };
        splitter.feed(&body, &mut each)?;
        splitter.finish(&mut each)?;
        let report = checker.into_report();
        let mut rejections = report.rejected;
        let duplicates = self.write_debts(m, pending).await?;
        let duplicate_lines = duplicates.len() as u64;
        rejections.extend(duplicates);
        self.write_rejections(&m.batch_id, &rejections).await?;
        let rejected_lines = report.lines - report.accepted + duplicate_lines;
        let accepted = report.accepted - duplicate_lines;
        let registered = Registered {
            lines: report.lines,
            accepted,
            rejected: rejected_lines,
            first_time: self
                .finish_sub_batch(m, report.lines, accepted, rejected_lines)
                .await?,
        };
        if registered.first_time {
            self.line_metrics(m, &registered, started).await;
        }
        self.wake_if_processed(&m.batch_id).await?;
        Ok(registered)
    }

    /// Writes the debts in transactions; returns the lines refused as duplicates of a debt
    /// already registered for the client (by another batch, or another line of this one).
    async fn write_debts(
        &self,
        m: &SubBatchMessage,
        pending: Vec<Pending>,
    ) -> Result<Vec<Rejection>, DebtsError> {
        let mut duplicates = Vec::new();
        for group in pending.chunks(TRANSACTION_WRITES_MAX) {
            let mut remaining: Vec<&Pending> = group.iter().collect();
            let mut conflicts = 0;
            while !remaining.is_empty() {
                let writes = remaining
                    .iter()
                    .map(|p| Write::Put {
                        item: p.item.clone(),
                        condition: Some(own_line(&m.batch_id, p.line)),
                    })
                    .collect();
                match self.table.transact(writes).await {
                    Ok(()) => break,
                    Err(TableError::TransactionCanceled { reasons }) => {
                        let failed: Vec<usize> = reasons
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| **r == Some(CancelReason::ConditionalCheckFailed))
                            .map(|(i, _)| i)
                            .collect();
                        if failed.is_empty() {
                            conflicts += 1;
                            if conflicts > CONFLICT_RETRIES_MAX {
                                return Err(TableError::TransactionCanceled { reasons }.into());
                            }
                            continue;
                        }
                        for &i in &failed {
                            duplicates.push(self.duplicate_reason(m, remaining[i]).await?);
                        }
                        remaining = remaining
                            .into_iter()
                            .enumerate()
                            .filter(|(i, _)| !failed.contains(i))
                            .map(|(_, p)| p)
                            .collect();
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(duplicates)
    }

    async fn duplicate_reason(
        &self,
        m: &SubBatchMessage,
        p: &Pending,
    ) -> Result<Rejection, DebtsError> {
        let existing = self
            .table
            .get(&layout::debt_key(&m.client_id, &p.reference))
            .await?;
        let (batch, line) = existing
            .map(|i| {
                (
                    i.s("batch_id").unwrap_or_default().to_owned(),
                    i.n("line").unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let reason = if batch == m.batch_id {
            format!("duplicates the client reference of line {line}")
        } else {
            format!("is already registered for this client (batch {batch}, line {line})")
        };
        Ok(Rejection {
            line: p.line,
            field: Target::Field(DebtField::ClientReference),
            reason,
        })
    }

    /// One item per rejected line, with every field's reason (overwritten on redelivery).
    async fn write_rejections(
        &self,
        batch_id: &str,
        rejections: &[Rejection],
    ) -> Result<(), DebtsError> {
        let mut by_line: BTreeMap<u64, Vec<&Rejection>> = BTreeMap::new();
        for r in rejections {
            by_line.entry(r.line).or_default().push(r);
        }
        let items: Vec<Write> = by_line
            .into_iter()
            .map(|(line, rs)| Write::Put {
                item: Item::new(&layout::rejection_key(batch_id, line))
                    .with("line", Decimal::from(line))
                    .with(
                        "problems",
                        Value::L(
                            rs.iter()
                                .map(|r| {
                                    Value::M(BTreeMap::from([
                                        ("field".to_owned(), Value::S(r.field.as_str().into())),
                                        ("reason".to_owned(), Value::S(r.reason.clone())),
                                    ]))
                                })
                                .collect(),
                        ),
                    ),
                condition: None,
            })
            .collect();
        for group in items.chunks(TRANSACTION_WRITES_MAX) {
            self.table.transact(group.to_vec()).await?;
        }
        Ok(())
    }

    /// Marks the sub-batch done and adds its counts to the batch, once. False when it was
    /// already done (a redelivery raced this one).
    async fn finish_sub_batch(
        &self,
        m: &SubBatchMessage,
        lines: u64,
        accepted: u64,
        rejected: u64,
    ) -> Result<bool, DebtsError> {
        let writes = vec![
            Write::Update {
                key: layout::sub_batch_key(&m.batch_id, m.index),
                actions: vec![
                    UpdateAction::set("done", true),
                    UpdateAction::set("accepted", Decimal::from(accepted)),
                    UpdateAction::set("rejected", Decimal::from(rejected)),
                ],
                condition: Some(Condition::And(vec![
                    Condition::ItemExists,
                    Condition::ne("done", true),
                ])),
            },
            Write::Update {
                key: layout::batch_key(&m.batch_id),
                actions: vec![
                    UpdateAction::add("processed", Decimal::from(lines)),
                    UpdateAction::add("accepted", Decimal::from(accepted)),
                    UpdateAction::add("rejected", Decimal::from(rejected)),
                    UpdateAction::add("sub_batches_done", Decimal::ONE),
                    UpdateAction::set("updated_at", self.clock.now().to_rfc3339()),
                ],
                condition: Some(Condition::ItemExists),
            },
        ];
        match self.table.transact(writes).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_condition_at(0) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends the workflow's task token its success once every sub-batch is registered.
    /// Called by the last sub-batch and by the `await` step, whichever comes second wins;
    /// a second success for the same token is refused by Step Functions and ignored here.
    pub(crate) async fn wake_if_processed(&self, batch_id: &str) -> Result<(), DebtsError> {
        let Some(batch) = self.batch(batch_id).await? else {
            return Ok(());
        };
        let (true, Some(token)) = (batch.all_processed(), batch.task_token.as_deref()) else {
            return Ok(());
        };
        let output = json!({
            "received": batch.received,
            "processed": batch.processed,
            "accepted": batch.accepted,
            "rejected": batch.rejected,
        });
        match self.workflows.send_task_success(token, output).await {
            Ok(()) => Ok(()),
            Err(
                crate::ports::WorkflowError::NotFound(_) | crate::ports::WorkflowError::Invalid(_),
            ) => {
                // Already woken (or the execution ended): nothing left to do.
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn line_metrics(&self, m: &SubBatchMessage, r: &Registered, started: DateTime<Utc>) {
        let now = self.clock.now();
        let dims = vec![
            ("client".to_owned(), m.client_id.clone()),
            ("batch".to_owned(), m.batch_id.clone()),
        ];
        let record = |name: &str, value: Decimal, dims: Vec<(String, String)>| MetricRecord {
            name: name.to_owned(),
            value,
            dimensions: dims,
            time: now,
        };
        let mut stage = dims.clone();
        stage.push(("stage".to_owned(), "register".to_owned()));
        let records = vec![
            record(METRIC_LINES_PROCESSED, Decimal::from(r.lines), dims.clone()),
            record(
                METRIC_LINES_ACCEPTED,
                Decimal::from(r.accepted),
                dims.clone(),
            ),
            record(METRIC_LINES_REJECTED, Decimal::from(r.rejected), dims),
            record(
                METRIC_STAGE_MS,
                Decimal::from((now - started).num_milliseconds()),
                stage,
            ),
        ];
        // Metrics are for people watching; a lost record must not fail a registered batch.
        if let Err(e) = self.metrics.write(records).await {
            tracing::warn!(error = %e, "debt metrics not written");
        }
    }

    /// Records how long a stage of a batch took.
    pub(crate) async fn stage_metric(
        &self,
        batch: &Batch,
        stage: &str,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let record = MetricRecord {
            name: METRIC_STAGE_MS.to_owned(),
            value: Decimal::from((now - started).num_milliseconds()),
            dimensions: vec![
                ("client".to_owned(), batch.client_id.clone()),
                ("batch".to_owned(), batch.batch_id.clone()),
                ("stage".to_owned(), stage.to_owned()),
            ],
            time: now,
        };
        if let Err(e) = self.metrics.write(vec![record]).await {
            tracing::warn!(error = %e, "debt metrics not written");
        }
    }
}

/// A debt may be written when it is new, or when it is this very line of this batch.
fn own_line(batch_id: &str, line: u64) -> Condition {
    Condition::Or(vec![
        Condition::ItemNotExists,
        Condition::And(vec![
            Condition::eq("batch_id", batch_id),
            Condition::eq("line", Decimal::from(line)),
        ]),
    ])
}
