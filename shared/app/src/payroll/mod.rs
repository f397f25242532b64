//! Flow 2, payroll disbursement (issue 3): HR uploads a payroll XML file, sees its summary
//! and bad rows, approves it once; every payment is then written (status `UNPROCESSED`, all
//! or nothing), the employees' and payers' accounts are provisioned at the payment provider
//! once, each payment is created there exactly once, and the provider's webhooks move each
//! payment and the batch's per-source and per-branch aggregates forward, with a double-entry
//! ledger beside them. A nightly check compares the three; CSV reports close the batch.
//!
//! - `POST /payroll/batches`, `GET /payroll/batches[/{id}]`, `POST …/{id}/approve`, the CSV
//!   reports — [`router`] (function `payroll-api`)
//! - S3 drops under [`INBOX_PREFIX`] — [`InboxHandler`] (function `payroll-inbox`)
//! - the workflow's Task states — [`WorkflowTasks`] (function `payroll-workflow`)
//! - account provisioning — [`AccountsWorker`] (function `payroll-accounts`)
//! - payment execution — [`PaymentsWorker`] (function `payroll-payments`)
//! - `POST /webhooks/provider` — [`webhook_router`] (function `payroll-webhook`)
//! - the nightly consistency check — [`ConsistencyCheck`] (function `payroll-check`)
//!
//! The table layout is in [`layout`]; the state machine is `statemachines/payroll-batch.asl.json`.

pub mod accounts;
pub mod approve;
pub mod batches;
pub mod check;
pub mod http;
pub mod inbox;
pub mod layout;
pub mod materialise;
pub mod payments;
pub mod progress;
pub mod report;
pub mod resume;
pub mod transitions;
pub mod webhook;
pub mod workflow;

use std::sync::Arc;

use payops_core::payroll::eta::ProviderRates;

use crate::HandlerError;
use crate::ports::{BlobError, Blobs, Clock, Queue, Table, TableError, Workflows};
use crate::ports::{PaymentProvider, ProviderError};
use crate::provider_http::HttpProvider;
use crate::provider_limiter::{LimitedProvider, Rate, RateLimits, SharedLimiter};
use crate::resources::{
    PAYROLL_ACCOUNTS_QUEUE, PAYROLL_PAYMENTS_QUEUE, PAYROLL_TABLE, ResourceError, Resources,
};

pub use accounts::AccountsWorker;
pub use batches::{BatchStatus, BatchView, Upload};
pub use check::ConsistencyCheck;
pub use http::router;
pub use inbox::{INBOX_PREFIX, InboxHandler};
pub use payments::PaymentsWorker;
pub use webhook::{WEBHOOK_PATH, webhook_router};
pub use workflow::WorkflowTasks;

/// The state machine's logical id in `template.yaml`: its name in `payops up`.
pub const STATE_MACHINE_LOGICAL_ID: &str = "PayrollBatchStateMachine";
/// In Lambda, the state machine's ARN (`Ref: PayrollBatchStateMachine`).
pub const STATE_MACHINE_ENV: &str = "PAYROLL_STATE_MACHINE_ARN";
/// Where a batch's file, summary and reports are kept in the data bucket.
pub const BATCHES_PREFIX: &str = "payroll/batches/";

/// The ports the flow's functions share.
#[derive(Clone)]
pub struct Payroll {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn Blobs>,
    pub accounts_queue: Arc<dyn Queue>,
    pub payments_queue: Arc<dyn Queue>,
    pub workflows: Arc<dyn Workflows>,
    pub clock: Arc<dyn Clock>,
    /// The state machine to start per batch (ARN in AWS, logical id locally).
    pub state_machine: String,
    /// The provider's allowed rates (for the estimate shown at approval).
    pub rates: ProviderRates,
}

impl Payroll {
    /// Wires the flow from a provider of resources (AWS in Lambda, SQLite in `payops up`).
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        Ok(Payroll {
            table: resources.table(&PAYROLL_TABLE)?,
            blobs: resources.blobs()?,
            accounts_queue: resources.queue(&PAYROLL_ACCOUNTS_QUEUE)?,
            payments_queue: resources.queue(&PAYROLL_PAYMENTS_QUEUE)?,
            workflows: resources.workflows()?,
            clock: resources.clock(),
            state_machine: std::env::var(STATE_MACHINE_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| STATE_MACHINE_LOGICAL_ID.to_owned()),
            rates: rates_of(RateLimits::from_resources(resources)?),
        })
    }
}

/// The payroll ports plus the payment provider, behind the shared rate limiter: what the
/// accounts and payments workers need.
#[derive(Clone)]
pub struct Disbursement {
    pub payroll: Payroll,
    pub provider: Arc<dyn PaymentProvider>,
}

impl Disbursement {
    /// The HTTP client of the provider, wrapped in the limiter whose buckets live in the
    /// payroll table (so every worker, in every Lambda, shares them).
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        let payroll = Payroll::from_resources(resources)?;
        let http: Arc<dyn PaymentProvider> = match HttpProvider::from_resources(resources) {
            Ok(http) => Arc::new(http),
            // Built anyway so that the rest of the system starts; every call then fails
            // (retryable, so no message is lost) and says what to configure.
            Err(e @ ResourceError::MissingEnv(_)) => {
                tracing::error!(error = %e, "payment provider not configured; payroll payments will wait");
                Arc::new(Unconfigured(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let limiter = SharedLimiter::new(
            payroll.table.clone(),
            payroll.clock.clone(),
            RateLimits::from_resources(resources)?.for_callers(),
        );
        Ok(Disbursement {
            provider: Arc::new(LimitedProvider::with_defaults(http, limiter)),
            payroll,
        })
    }
}

/// The provider when its configuration is missing: every call fails, retryably.
struct Unconfigured(String);

#[async_trait::async_trait]
impl PaymentProvider for Unconfigured {
    async fn create_entity(
        &self,
        _: crate::ports::provider::CreateEntity,
    ) -> Result<crate::ports::provider::Entity, ProviderError> {
        Err(ProviderError::transient(self.0.clone()))
    }
    async fn create_account(
        &self,
        _: crate::ports::provider::CreateAccount,
    ) -> Result<crate::ports::provider::Account, ProviderError> {
        Err(ProviderError::transient(self.0.clone()))
    }
    async fn create_payment(
        &self,
        _: crate::ports::provider::CreatePayment,
    ) -> Result<crate::ports::provider::Payment, ProviderError> {
        Err(ProviderError::transient(self.0.clone()))
    }
    async fn get_payment(
        &self,
        _: &crate::ports::provider::PaymentId,
    ) -> Result<crate::ports::provider::Payment, ProviderError> {
        Err(ProviderError::transient(self.0.clone()))
    }
    async fn list_payments(
        &self,
        _: crate::ports::provider::ListPayments,
    ) -> Result<crate::ports::provider::PaymentPage, ProviderError> {
        Err(ProviderError::transient(self.0.clone()))
    }
}

/// The provider's rates per class as the estimate counts them (0: unlimited).
pub fn rates_of(limits: RateLimits) -> ProviderRates {
    let per_min = |r: Option<Rate>| r.map_or(0, |r| u64::from(r.per_min));
    ProviderRates {
        account_writes_per_minute: per_min(limits.writes),
        payments_per_minute: per_min(limits.payments),
    }
}

/// What can go wrong in the payroll flow.
#[derive(Debug, thiserror::Error)]
pub enum PayrollAppError {
    /// The request or message can never succeed (names the field or the reason).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("batch {0} does not exist")]
    UnknownBatch(String),
    /// The batch is not in a state that allows the operation.
    #[error("batch {batch_id} is {status}: {reason}")]
    WrongState {
        batch_id: String,
        status: String,
        reason: String,
    },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] crate::ports::QueueError),
    #[error(transparent)]
    Workflows(#[from] crate::ports::WorkflowError),
    #[error(transparent)]
    Provider(#[from] crate::ports::ProviderError),
    /// A stored item that this code could not have written.
    #[error("stored item {0} is not readable")]
    Corrupt(String),
    #[error(transparent)]
    Ledger(#[from] payops_core::payroll::ledger::LedgerError),
    /// Something that should settle soon (another worker holds a claim, a dependency is not
    /// ready yet): retry later.
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("background work stopped: {0}")]
    Join(String),
}

impl PayrollAppError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PayrollAppError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<PayrollAppError> for HandlerError {
    fn from(e: PayrollAppError) -> Self {
        match e {
            PayrollAppError::Table(t) => t.into(),
            PayrollAppError::Blobs(b) => b.into(),
            PayrollAppError::Queue(q) => q.into(),
            PayrollAppError::Workflows(w) => w.into(),
            PayrollAppError::Provider(p) => p.into(),
            e @ PayrollAppError::NotReady(_) => HandlerError::Retryable(Box::new(e)),
            e @ (PayrollAppError::Invalid { .. }
            | PayrollAppError::UnknownBatch(_)
            | PayrollAppError::WrongState { .. }) => HandlerError::Rejected(e.to_string()),
            e @ (PayrollAppError::Corrupt(_)
            | PayrollAppError::Ledger(_)
            | PayrollAppError::Join(_)) => HandlerError::Fatal(e.to_string()),
        }
    }
}
