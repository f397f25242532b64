//! Flow 3, debt intake for a Brazilian collection bureau. Clients submit overdue debts line by
//! line over REST, as a CSV upload, or by dropping files under `inbox/debts/{client_id}/`.
//! Every submission becomes a batch followed by a Step Functions execution
//! (`statemachines/debt-batch.asl.json`) that ops can watch:
//!
//! 1. the file picker (S3 event → SQS, [`Picker`]) names the client and creates the batch;
//! 2. `split` ([`Steps`]) checks the file (readable, not empty, not binary, its header, not a
//!    duplicate by content hash) and writes sub-batches of `sub_batch_lines` lines to S3,
//!    streaming the file a part at a time, each announced on the sub-batch queue;
//! 3. the register ([`Register`], SQS) transforms each sub-batch from the client's format,
//!    validates it, writes accepted debts idempotently and records every rejected line;
//!    the last sub-batch (atomic counters) wakes the execution through its task token;
//! 4. `complete` writes the rejected-lines CSV, sets the final status and notifies the client
//!    through EventBridge; `fail` does the same for a file that cannot be processed.
//!
//! HTTP: [`router`]. Key design: [`layout`].

pub mod batch;
mod http;
mod intake;
pub mod layout;
mod picker;
mod register;
mod split;
mod steps;
mod submissions;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use payops_core::debts::FileError;

use crate::HandlerError;
use crate::ports::{
    BlobError, Blobs, Clock, Events, EventsError, Metrics, MetricsError, Queue, QueueError, Table,
    TableError, WorkflowError, Workflows,
};
use crate::resources::{DEBT_SUB_BATCHES_QUEUE, DEBTS_TABLE, ResourceError, Resources};

pub use batch::{Batch, BatchStatus, Source, SubBatch};
pub use http::{BATCHES_PATH, FILES_PATH, SUBMISSIONS_PATH, router};
pub use picker::{INBOX_PREFIX, Picker, client_of_key};
pub use register::{
    METRIC_LINES_ACCEPTED, METRIC_LINES_FAILED, METRIC_LINES_PROCESSED, METRIC_LINES_REJECTED,
    METRIC_STAGE_MS, Register, SubBatchMessage,
};
pub use steps::Steps;

/// Lines per sub-batch unless `DEBTS_SUB_BATCH_LINES` says otherwise.
pub const SUB_BATCH_LINES_DEFAULT: usize = 10_000;
/// Bounds on a configured sub-batch size.
pub const SUB_BATCH_LINES_MIN: usize = 10;
pub const SUB_BATCH_LINES_MAX: usize = 100_000;
pub const SUB_BATCH_LINES_ENV: &str = "DEBTS_SUB_BATCH_LINES";
/// The state machine to start per batch: its ARN in Lambda; locally its logical id.
pub const STATE_MACHINE_ENV: &str = "DEBT_BATCH_STATE_MACHINE_ARN";
pub const STATE_MACHINE_LOGICAL_ID: &str = "DebtBatchStateMachine";
/// EventBridge source of the flow's events.
pub const EVENT_SOURCE: &str = "payops.debts";
pub const EVENT_BATCH_COMPLETED: &str = "DebtBatchCompleted";
pub const EVENT_BATCH_FAILED: &str = "DebtBatchFailed";

/// How the flow is tuned (from the function's environment).
#[derive(Debug, Clone)]
pub struct DebtsConfig {
    pub sub_batch_lines: usize,
    pub state_machine: String,
}

impl DebtsConfig {
    pub fn from_env() -> Result<Self, ResourceError> {
        let sub_batch_lines = match std::env::var(SUB_BATCH_LINES_ENV) {
            Err(_) => SUB_BATCH_LINES_DEFAULT,
            Ok(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (SUB_BATCH_LINES_MIN..=SUB_BATCH_LINES_MAX).contains(n))
                .ok_or_else(|| ResourceError::Unavailable {
                    name: SUB_BATCH_LINES_ENV.into(),
                    source: format!(
                        "must be a number of lines in {SUB_BATCH_LINES_MIN}..={SUB_BATCH_LINES_MAX}"
                    )
                    .into(),
                })?,
        };
        let state_machine = std::env::var(STATE_MACHINE_ENV)
            .unwrap_or_else(|_| STATE_MACHINE_LOGICAL_ID.to_owned());
        Ok(DebtsConfig {
            sub_batch_lines,
            state_machine,
        })
    }
}

/// The ports the flow's functions share.
#[derive(Clone)]
pub struct Debts {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn Blobs>,
    pub sub_batches: Arc<dyn Queue>,
    pub events: Arc<dyn Events>,
    pub metrics: Arc<dyn Metrics>,
    pub workflows: Arc<dyn Workflows>,
    pub clock: Arc<dyn Clock>,
    pub config: DebtsConfig,
}

impl Debts {
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        Ok(Debts {
            table: resources.table(&DEBTS_TABLE)?,
            blobs: resources.blobs()?,
            sub_batches: resources.queue(&DEBT_SUB_BATCHES_QUEUE)?,
            events: resources.events()?,
            metrics: resources.metrics()?,
            workflows: resources.workflows()?,
            clock: resources.clock(),
            config: DebtsConfig::from_env()?,
        })
    }
}

/// What can go wrong in the debt intake.
#[derive(Debug, thiserror::Error)]
pub enum DebtsError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Workflows(#[from] WorkflowError),
    /// The file cannot be processed at all; the batch fails with this reason.
    #[error("{0}")]
    File(#[from] FileError),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A stored item or message this code could not have written.
    #[error("corrupt {0}")]
    Corrupt(String),
}

impl DebtsError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        DebtsError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<DebtsError> for HandlerError {
    fn from(e: DebtsError) -> Self {
        match e {
            DebtsError::Table(t) => t.into(),
            DebtsError::Blobs(b) => b.into(),
            DebtsError::Queue(q) => q.into(),
            DebtsError::Events(x) => x.into(),
            DebtsError::Metrics(m) => m.into(),
            DebtsError::Workflows(w) => w.into(),
            e @ (DebtsError::File(_)
            | DebtsError::NotFound { .. }
            | DebtsError::Conflict(_)
            | DebtsError::Invalid { .. }) => HandlerError::Rejected(e.to_string()),
            e @ DebtsError::Corrupt(_) => HandlerError::Fatal(e.to_string()),
        }
    }
}
