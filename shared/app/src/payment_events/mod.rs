//! Flow 1, payment events: a payment provider posts signed notifications (1k–10k in a burst);
//! we verify and enqueue them at once, store each exactly once with per-day aggregates, and
//! write a daily CSV report.
//!
//! - `POST /webhooks/payment-events` and `GET /payment-events?date=` — [`router`]
//! - the queue consumer — [`Processor`]
//! - the daily report — [`DailyReport`]
//!
//! The table layout is in [`layout`].

pub mod layout;
mod processor;
mod report;
mod webhook;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use payops_core::payment_event::FieldError;

use crate::HandlerError;
use crate::ports::{BlobError, Blobs, Clock, Metrics, Queue, Table, TableError};
use crate::resources::{PAYMENT_EVENTS_QUEUE, PAYMENT_EVENTS_TABLE, ResourceError, Resources};

pub use processor::{
    FUNCTION_DIMENSION as PROCESSOR_FUNCTION, METRIC_DUPLICATES_IGNORED, METRIC_EVENTS_STORED,
    METRIC_MESSAGES_FAILED, Processor,
};
pub use report::{
    DailyReport, REPORT_CONTENT_TYPE, REPORT_EVENTS_MAX, REPORT_PREFIX, events_key, report_day,
    summary_key,
};
pub use webhook::{DAY_PATH, DayTotals, TotalRow, WEBHOOK_PATH, router};

/// The ports the flow's three functions share.
#[derive(Clone)]
pub struct PaymentEvents {
    pub table: Arc<dyn Table>,
    pub queue: Arc<dyn Queue>,
    pub blobs: Arc<dyn Blobs>,
    pub metrics: Arc<dyn Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl PaymentEvents {
    /// Wires the flow from a provider of resources (AWS in Lambda, SQLite in `payops up`).
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        Ok(PaymentEvents {
            table: resources.table(&PAYMENT_EVENTS_TABLE)?,
            queue: resources.queue(&PAYMENT_EVENTS_QUEUE)?,
            blobs: resources.blobs()?,
            metrics: resources.metrics()?,
            clock: resources.clock(),
        })
    }
}

/// What can go wrong while storing or reporting payment events.
#[derive(Debug, thiserror::Error)]
pub enum PaymentEventsError {
    #[error("message has no body")]
    NoBody,
    /// Not a valid event; the error names the field and never holds its value.
    #[error("message is not a valid payment event: {0}")]
    Malformed(#[source] FieldError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// A stored item that this code could not have written.
    #[error("stored item {key} is not a valid payment event: {source}")]
    CorruptItem {
        key: String,
        #[source]
        source: FieldError,
    },
    #[error("day {date} has more than {max} events; refusing to write a truncated report")]
    TooManyEvents { date: String, max: usize },
    #[error("report input is invalid: {0}")]
    BadReportInput(String),
    #[error("a total overflows: {0}")]
    Overflow(#[source] payops_core::MoneyError),
    /// The borrower's pay history or loan could not be updated (issue 8).
    #[error("pay history not updated: {0}")]
    History(#[source] crate::loans::LoansError),
}

impl From<PaymentEventsError> for HandlerError {
    fn from(e: PaymentEventsError) -> Self {
        match e {
            PaymentEventsError::Table(t) => t.into(),
            PaymentEventsError::Blobs(b) => b.into(),
            PaymentEventsError::History(h) => h.into(),
            e @ (PaymentEventsError::NoBody
            | PaymentEventsError::Malformed(_)
            | PaymentEventsError::BadReportInput(_)) => HandlerError::Rejected(e.to_string()),
            e @ (PaymentEventsError::CorruptItem { .. }
            | PaymentEventsError::TooManyEvents { .. }
            | PaymentEventsError::Overflow(_)) => HandlerError::Fatal(e.to_string()),
        }
    }
}
