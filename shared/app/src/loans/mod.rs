//! Loans repaid from payroll: borrowers' pay history, pay-frequency inference, and the daily
//! payroll checker (issue 8).
//!
//! - `POST /loans`, `GET /loans/{id}` — [`router`]; bulk import — [`import`]
//! - each stored payment event updates its borrower's history and its loan — [`record_payment`],
//!   called by the payment events processor, idempotent under redelivery: a paid event adds
//!   its payment, a failed or reversed one takes it out again (and the loan expects the payroll
//!   it had covered once more, so the checker can flag it); one delivered before its payment
//!   keeps that payment out ([`layout::Undo`])
//! - the morning checker (EventBridge schedule) — [`Checker`]
//!
//! The table layout is in [`layout`]; the pure rules (what a loan expects next, what a payment
//! or a miss changes) in [`plan`].

mod checker;
mod http;
pub mod import;
pub mod layout;
pub mod plan;
mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::HandlerError;
use crate::ports::{BlobError, Blobs, Clock, Events, EventsError, Table, TableError};
use crate::resources::{LOANS_TABLE, ResourceError, Resources};

pub use checker::{
    CHECK_LOOKBACK_DAYS, CheckOptions, CheckReport, Checker, GRACE_BUSINESS_DAYS_DEFAULT,
    MISSED_EVENT_SOURCE, MISSED_EVENT_TYPE, REPORT_PREFIX, late_key, missed_key,
};
pub use http::{LOANS_PATH, LoanView, router};
pub use layout::{History, HistoryEntry, LoanRecord, LoanStatus, Undo, UndoEffect};
pub use store::{
    AMOUNT_TOLERANCE_DEFAULT, NewLoan, RecordOutcome, WRITE_ATTEMPTS_MAX, create_loan,
    record_payment,
};

/// The ports the flow's functions share.
#[derive(Clone)]
pub struct Loans {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn Blobs>,
    pub events: Arc<dyn Events>,
    pub clock: Arc<dyn Clock>,
}

impl Loans {
    /// Wires the flow from a provider of resources (AWS in Lambda, SQLite in `payops up`).
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        Ok(Loans {
            table: resources.table(&LOANS_TABLE)?,
            blobs: resources.blobs()?,
            events: resources.events()?,
            clock: resources.clock(),
        })
    }

    /// Only the table: what the payment events processor needs to keep histories.
    pub fn history_only(resources: &dyn Resources) -> Result<Arc<dyn Table>, ResourceError> {
        resources.table(&LOANS_TABLE)
    }

    /// A loan and its borrower's pay history.
    pub async fn get(&self, loan_id: &str) -> Result<Option<(LoanRecord, History)>, LoansError> {
        let Some(loan) = store::read_loan(self.table.as_ref(), loan_id).await? else {
            return Ok(None);
        };
        let history = store::read_history(self.table.as_ref(), loan.borrower_id.expose()).await?;
        Ok(Some((loan, history)))
    }
}

/// What can go wrong in the loans flow.
#[derive(Debug, thiserror::Error)]
pub enum LoansError {
    /// Bad input; names the field (or line) and the reason, never a value.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("loan {0} already exists with different terms")]
    Conflict(String),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error("stored item {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: layout::CorruptItem,
    },
    /// Concurrent writers kept winning; the caller (SQS) retries later.
    #[error("too many concurrent updates of {0}")]
    Contended(String),
}

impl LoansError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        LoansError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<LoansError> for HandlerError {
    fn from(e: LoansError) -> Self {
        match e {
            LoansError::Table(t) => t.into(),
            LoansError::Blobs(b) => b.into(),
            LoansError::Events(v) => v.into(),
            e @ LoansError::Contended(_) => HandlerError::Retryable(Box::new(e)),
            e @ (LoansError::Invalid { .. } | LoansError::Conflict(_)) => {
                HandlerError::Rejected(e.to_string())
            }
            e @ LoansError::Corrupt { .. } => HandlerError::Fatal(e.to_string()),
        }
    }
}
