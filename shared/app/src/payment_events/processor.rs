//! The queue consumer: stores each event exactly once and keeps the per-day aggregates; when
//! wired with the loans table, it also keeps borrowers' pay histories and loans (issue 8): a
//! paid event adds its payment and applies it to its loan; a failed or reversed one takes that
//! payment out of both again, or, delivered before the payment, keeps it out when it comes
//! (see `loans::layout::Undo`). That update is idempotent on its own (the history keeps the
//! ids of the events it handled), so it runs after a stored event and after a duplicate alike:
//! a crash between the event's transaction and the history's is repaired by the redelivery.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use std::sync::Arc;

use payops_core::payment_event::{self, PaymentEvent};
use rust_decimal::Decimal;

use super::layout::{self, EVENT_WRITE_INDEX};
use super::{PaymentEvents, PaymentEventsError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};
use crate::ports::{MetricRecord, Table};

/// The `function` dimension of the processor's metrics.
pub const FUNCTION_DIMENSION: &str = "payment-events-processor";
pub const METRIC_EVENTS_STORED: &str = "events_stored";
pub const METRIC_DUPLICATES_IGNORED: &str = "duplicates_ignored";
pub const METRIC_MESSAGES_FAILED: &str = "messages_failed";

/// Stores payment events from the queue. Messages are handled one after the other: two
/// messages of one batch usually touch the same day's total, and concurrent transactions on
/// one item would only conflict. Failed messages are reported as batch item failures, so SQS
/// retries them alone and moves them to the dead-letter queue after the redrive count.
pub struct Processor {
    state: PaymentEvents,
    /// The loans table, where pay histories live; `None` keeps the processor as it was.
    loans: Option<Arc<dyn Table>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    Duplicate,
}

#[derive(Debug, Default)]
struct BatchTally {
    stored: u64,
    duplicates: u64,
    failed: u64,
}

impl Processor {
    pub fn new(state: PaymentEvents) -> Self {
        Processor { state, loans: None }
    }

    /// Also keeps borrowers' pay histories and loans (issue 8) in `loans_table`: paid events
    /// add payments, failed and reversed ones take them out.
    pub fn with_pay_history(mut self, loans_table: Arc<dyn Table>) -> Self {
        self.loans = Some(loans_table);
        self
    }

    async fn record_history(&self, event: &PaymentEvent) -> Result<(), PaymentEventsError> {
        if let Some(table) = &self.loans {
            crate::loans::record_payment(table.as_ref(), event)
                .await
                .map_err(PaymentEventsError::History)?;
        }
        Ok(())
    }

    async fn store(&self, message: &SqsMessage) -> Result<Outcome, PaymentEventsError> {
        let body = message.body.as_deref().ok_or(PaymentEventsError::NoBody)?;
        let event = payment_event::parse_webhook_body(body.as_bytes())
            .map_err(PaymentEventsError::Malformed)?;
        let writes = layout::store_writes(&event, self.state.clock.now());
        match self.state.table.transact(writes).await {
            Ok(()) => {
                self.record_history(&event).await?;
                Ok(Outcome::Stored)
            }
            Err(e) if e.failed_condition_at(EVENT_WRITE_INDEX) => {
                // Already stored: a redelivery or a provider retry. Count it, change nothing else.
                let key = layout::duplicates_key(event.day());
                self.state
                    .table
                    .update(&key, layout::duplicate_actions(), None)
                    .await?;
                tracing::info!(event_id = %event.event_id, "duplicate payment event ignored");
                // The history update may not have happened before a crash: it is idempotent.
                self.record_history(&event).await?;
                Ok(Outcome::Duplicate)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One metrics write per batch. A metrics outage must not make SQS redeliver events that
    /// are already stored, so a failure is logged and swallowed.
    async fn write_metrics(&self, tally: &BatchTally) {
        let time = self.state.clock.now();
        let record = |name: &str, value: u64| MetricRecord {
            name: name.to_owned(),
            value: Decimal::from(value),
            dimensions: vec![("function".to_owned(), FUNCTION_DIMENSION.to_owned())],
            time,
        };
        let records = vec![
            record(METRIC_EVENTS_STORED, tally.stored),
            record(METRIC_DUPLICATES_IGNORED, tally.duplicates),
            record(METRIC_MESSAGES_FAILED, tally.failed),
        ];
        if let Err(e) = self.state.metrics.write(records).await {
            tracing::warn!(error = %e, "payment events metrics not written");
        }
    }
}

#[async_trait]
impl SqsHandler for Processor {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        let mut failures = BatchFailures::default();
        let mut tally = BatchTally::default();
        for message in &event.records {
            match self.store(message).await {
                Ok(Outcome::Stored) => tally.stored += 1,
                Ok(Outcome::Duplicate) => tally.duplicates += 1,
                Err(e) => {
                    tally.failed += 1;
                    // `e` names a field or a store error, never a field's value.
                    tracing::warn!(
                        message_id = message.message_id.as_deref().unwrap_or("-"),
                        error = %e,
                        "payment event message failed"
                    );
                    failures.add(message);
                }
            }
        }
        if !event.records.is_empty() {
            self.write_metrics(&tally).await;
        }
        failures.into_response()
    }
}
