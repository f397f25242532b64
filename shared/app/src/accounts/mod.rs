//! Flow 4, accounts and advances: atomic transfers that never make a balance negative, a
//! stable five-day transactions report, and 12-week advances collected exactly once.
//!
//! - the HTTP API (`/api/v1/accounts`, `/transaction`, `/bank_transactions`, `/transactions`,
//!   `/advances`) — [`router`]
//! - the scheduled collector of due instalments — [`Collector`]
//! - the queue worker that debits one instalment — [`Worker`]
//! - the scheduled audit of every advance — [`Auditor`]
//!
//! Every money movement is one `transact` call (see [`money`]); the table layout is in
//! [`layout`]. The same code runs on DynamoDB and on the SQLite adapter.

mod account;
pub mod advances;
mod auditor;
mod collector;
mod fields;
mod http;
pub mod layout;
pub mod money;
pub mod report;
mod worker;

use std::sync::Arc;

use axum::http::StatusCode;
use payops_core::accounts::AdvanceError;

use crate::HandlerError;
use crate::http::ApiError;
use crate::ports::{
    Clock, Events, EventsError, Metrics, MetricsError, Queue, QueueError, Table, TableError,
};
use crate::resources::{ACCOUNTS_TABLE, INSTALMENTS_QUEUE, ResourceError, Resources};

pub use account::CurrencyCache;
pub use auditor::{
    AUDIT_EVENT_SOURCE, AUDIT_EVENT_TYPE, AdvanceAudit, AuditReport, Auditor,
    FUNCTION_DIMENSION as AUDITOR_FUNCTION, METRIC_ADVANCES_AUDITED, METRIC_AUDIT_DIFFERENCES,
};
pub use collector::{Collector, CollectorReport, InstalmentMessage};
pub use http::{
    ACCOUNTS_PATH, ADVANCES_PATH, BANK_TRANSACTIONS_PATH, IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER,
    TRANSACTION_PATH, TRANSACTIONS_PATH, router,
};
pub use layout::{AccountRecord, AdvanceRecord, InstalmentRecord, TxRecord};
pub use worker::{
    Claim, FUNCTION_DIMENSION as WORKER_FUNCTION, LEASE_MS, METRIC_INSTALMENTS_FAILED,
    METRIC_INSTALMENTS_PAID, Worker, WorkerOutcome,
};

/// The ports the flow's functions share.
#[derive(Clone)]
pub struct Accounts {
    pub table: Arc<dyn Table>,
    /// The instalments queue (the collector sends, the workers receive through SQS events).
    pub queue: Arc<dyn Queue>,
    pub events: Arc<dyn Events>,
    pub metrics: Arc<dyn Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Account currencies, which never change once an account exists.
    pub currencies: Arc<CurrencyCache>,
}

impl Accounts {
    pub fn new(
        table: Arc<dyn Table>,
        queue: Arc<dyn Queue>,
        events: Arc<dyn Events>,
        metrics: Arc<dyn Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Accounts {
            table,
            queue,
            events,
            metrics,
            clock,
            currencies: Arc::new(CurrencyCache::default()),
        }
    }

    /// Wires the flow from a provider of resources (AWS in Lambda, SQLite in `payops up`).
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        Ok(Accounts::new(
            resources.table(&ACCOUNTS_TABLE)?,
            resources.queue(&INSTALMENTS_QUEUE)?,
            resources.events()?,
            resources.metrics()?,
            resources.clock(),
        ))
    }
}

/// What can go wrong in the accounts flow.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// Bad input; `field` is the body field, query parameter or header as the client named it.
    #[error("{field} {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Concurrent writers kept cancelling our transaction; the client may retry.
    #[error("the table stayed contended after {attempts} attempts")]
    Contended { attempts: usize },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Corrupt(#[from] layout::CorruptItem),
    /// A broken invariant (a generated id collided, a schedule past year 9999, …).
    #[error("invariant broken: {0}")]
    Invariant(String),
}

impl AccountsError {
    pub fn invalid(field: impl Into<String>, message: impl ToString) -> Self {
        AccountsError::Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

impl From<AdvanceError> for AccountsError {
    fn from(e: AdvanceError) -> Self {
        match e {
            AdvanceError::TooSmall | AdvanceError::TooLarge | AdvanceError::TooManyDecimals => {
                AccountsError::invalid("amount", e)
            }
            AdvanceError::DateOverflow | AdvanceError::NoInstalments => {
                AccountsError::Invariant(e.to_string())
            }
        }
    }
}

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        match e {
            AccountsError::Invalid { field, message } => ApiError::bad_request(field, message),
            AccountsError::NotFound(m) => ApiError::not_found(m),
            AccountsError::Conflict(m) => ApiError::conflict(m),
            AccountsError::Contended { .. } => {
                ApiError::unavailable("the accounts are busy; retry with the same Idempotency-Key")
            }
            AccountsError::Table(t) if t.is_retryable() => {
                tracing::warn!(error = %t, "accounts table unavailable");
                ApiError::unavailable("the accounts store is unavailable; retry later")
            }
            AccountsError::Queue(_) | AccountsError::Events(_) | AccountsError::Metrics(_) => {
                tracing::warn!(error = %e, "accounts dependency unavailable");
                ApiError::unavailable("a dependency is unavailable; retry later")
            }
            other => {
                tracing::error!(error = %other, "accounts request failed");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    error: "internal",
                    message: "internal error".to_owned(),
                    field: None,
                }
            }
        }
    }
}

impl From<AccountsError> for HandlerError {
    fn from(e: AccountsError) -> Self {
        match e {
            AccountsError::Table(t) => t.into(),
            AccountsError::Queue(q) => q.into(),
            AccountsError::Events(v) => v.into(),
            AccountsError::Metrics(m) => m.into(),
            e @ AccountsError::Contended { .. } => HandlerError::Retryable(Box::new(e)),
            e @ (AccountsError::Invalid { .. }
            | AccountsError::NotFound(_)
            | AccountsError::Conflict(_)) => HandlerError::Rejected(e.to_string()),
            e @ (AccountsError::Corrupt(_) | AccountsError::Invariant(_)) => {
                HandlerError::Fatal(e.to_string())
            }
        }
    }
}
