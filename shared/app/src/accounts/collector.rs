//! The collector (EventBridge schedule): finds the instalments that are due with one query per
//! shard of the sparse due-date index gsi2, and enqueues them for the workers.
//!
//! Enqueuing the same instalment twice is harmless (a worker must win its lease, and the
//! debit's idempotency key is the instalment's), so the collector keeps no state: every run
//! enqueues whatever is due, including instalments whose worker died (`in_progress` with an
//! expired lease). Instalments leased by a live worker are left alone.

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use payops_core::accounts::InstalmentStatus;
use serde::{Deserialize, Serialize};

use super::layout::{self, DUE_INDEX_SHARDS, GSI2};
use super::{Accounts, AccountsError};
use crate::HandlerError;
use crate::handler::EventHandler;
use crate::ports::queue::QUEUE_BATCH_MESSAGES_MAX;
use crate::ports::table::QUERY_PAGE_ITEMS_MAX;
use crate::ports::{OutgoingMessage, Query, SortKeyRange};

/// Most instalments one run enqueues; the next run picks up the rest.
pub const COLLECTOR_ENQUEUE_MAX: u64 = 100_000;

/// The body of a message on the instalments queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalmentMessage {
    pub advance_id: String,
    pub number: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectorReport {
    /// The day up to which instalments were due.
    pub as_of: String,
    pub enqueued: u64,
    /// Due instalments skipped because a live worker holds their lease.
    pub leased: u64,
    /// Index entries that could not be read (logged; they need an operator).
    pub unreadable: u64,
}

pub struct Collector {
    state: Accounts,
}

impl Collector {
    pub fn new(state: Accounts) -> Self {
        Collector { state }
    }

    /// Enqueues every instalment due on or before `tick`'s day.
    pub async fn collect(&self, tick: DateTime<Utc>) -> Result<CollectorReport, AccountsError> {
        let today = tick.date_naive();
        let now_ms = self.state.clock.now().timestamp_millis();
        let mut report = CollectorReport {
            as_of: today.format("%Y-%m-%d").to_string(),
            ..CollectorReport::default()
        };
        let mut batch = Vec::with_capacity(QUEUE_BATCH_MESSAGES_MAX);
        'shards: for shard in 0..DUE_INDEX_SHARDS {
            let mut cursor = None;
            loop {
                let query = Query::partition(layout::due_partition(shard))
                    .on_index(GSI2)
                    .sort(SortKeyRange::Le(layout::due_sort_key_upper(today)))
                    .limit(QUERY_PAGE_ITEMS_MAX)
                    .after(cursor);
                let page = self.state.table.query(query).await?;
                for item in &page.items {
                    let instalment = match layout::instalment_from_item(item) {
                        Ok(i) => i,
                        Err(e) => {
                            tracing::error!(error = %e, "unreadable instalment in the due index");
                            report.unreadable += 1;
                            continue;
                        }
                    };
                    let collectable = match instalment.status {
                        InstalmentStatus::Due => true,
                        InstalmentStatus::InProgress => {
                            instalment.lease_expires_ms.is_none_or(|ms| ms < now_ms)
                        }
                        InstalmentStatus::Paid | InstalmentStatus::Failed => false,
                    };
                    if !collectable {
                        report.leased += 1;
                        continue;
                    }
                    batch.push(message(&instalment.advance_id, instalment.number));
                    if batch.len() == QUEUE_BATCH_MESSAGES_MAX {
                        self.flush(&mut batch, &mut report).await?;
                    }
                    if report.enqueued + batch.len() as u64 >= COLLECTOR_ENQUEUE_MAX {
                        break 'shards;
                    }
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        self.flush(&mut batch, &mut report).await?;
        Ok(report)
    }

    async fn flush(
        &self,
        batch: &mut Vec<OutgoingMessage>,
        report: &mut CollectorReport,
    ) -> Result<(), AccountsError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sent = std::mem::take(batch);
        let count = sent.len() as u64;
        self.state.queue.send_batch(sent).await?;
        report.enqueued += count;
        Ok(())
    }
}

fn message(advance_id: &str, number: u32) -> OutgoingMessage {
    let body = InstalmentMessage {
        advance_id: advance_id.to_owned(),
        number,
    };
    // A struct of a string and a number always serialises.
    OutgoingMessage::new(serde_json::to_string(&body).unwrap_or_default())
}

#[async_trait]
impl EventHandler for Collector {
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError> {
        // The schedule's tick, so that a re-run of one event collects the same days.
        let tick = event.time.unwrap_or_else(|| self.state.clock.now());
        let report = self.collect(tick).await?;
        tracing::info!(
            as_of = %report.as_of,
            enqueued = report.enqueued,
            leased = report.leased,
            "instalments collected"
        );
        serde_json::to_value(&report).map_err(|e| HandlerError::Fatal(e.to_string()))
    }
}
