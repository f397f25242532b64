//! The catalogue of AWS resources the handlers use: their logical ids in `template.yaml`, the
//! environment variables through which Lambda learns their names, and their key design.
//! The AWS adapters read the variables; the local runtime creates the same resources under the
//! same logical ids. A test checks that `template.yaml` declares every one of them.

use crate::ports::TableSpec;

#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    /// Logical id in template.yaml.
    pub logical_id: &'static str,
    /// Environment variable holding the table name.
    pub env_var: &'static str,
    /// Secondary indexes, each keyed by `{name}_pk` / `{name}_sk`.
    pub indexes: &'static [&'static str],
}

impl TableDef {
    pub fn spec(&self, table_name: impl Into<String>) -> TableSpec {
        self.indexes
            .iter()
            .fold(TableSpec::new(table_name), |spec, index| {
                spec.with_index(index)
            })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct QueueDef {
    pub logical_id: &'static str,
    /// Environment variable holding the queue URL.
    pub env_var: &'static str,
}

/// Payment events, per-day aggregates and (later) borrowers' pay history.
/// Keys: `EVENT#{event_id}`/`EVENT`; `DAY#{date}`/`TOTAL#{currency}#{status}`; index `gsi1`
/// lists a day's events in time order (`DAY#{date}` / `{paid_at}#{event_id}`).
pub const PAYMENT_EVENTS_TABLE: TableDef = TableDef {
    logical_id: "PaymentEventsTable",
    env_var: "PAYMENT_EVENTS_TABLE",
    indexes: &["gsi1"],
};

/// Loans, borrowers' pay histories and payroll-check flags (issue 8). The key design is in
/// `loans::layout`: `gsi1` lists loans by expected payroll date (`DUE#{date}#{shard}` /
/// `{loan_id}`), so the daily checker never scans all loans.
pub const LOANS_TABLE: TableDef = TableDef {
    logical_id: "LoansTable",
    env_var: "LOANS_TABLE",
    indexes: &["gsi1"],
};

/// Accounts, transactions, idempotency records, advances and instalments (issue 4).
/// The key design is in `accounts::layout`: `gsi1` lists a day's transactions in time order
/// (`TXDAY#{date}` / `{timestamp}#{id}`) and the advances (`ADVANCES#{shard}`); `gsi2` lists
/// open instalments by due date (`DUE#{shard}` / `{due_date}#{advance_id}#{n}`).
pub const ACCOUNTS_TABLE: TableDef = TableDef {
    logical_id: "AccountsTable",
    env_var: "ACCOUNTS_TABLE",
    indexes: &["gsi1", "gsi2"],
};

/// Payroll batches, their payments, per-source and per-branch aggregates, provider account
/// mappings and the payroll ledger (issue 3). Key design in `payroll::layout`; `gsi1` lists
/// batches newest first (`BATCHES` / `{created_at}#{id}`).
pub const PAYROLL_TABLE: TableDef = TableDef {
    logical_id: "PayrollTable",
    env_var: "PAYROLL_TABLE",
    indexes: &["gsi1"],
};

/// Debt intake (issue 5): batches, sub-batches, rejected lines, registered debts, file hashes,
/// client settings and REST submissions with their staged lines. Key design in
/// `debts::layout`; `gsi1` lists a client's batches newest first (`CLIENT#{id}` /
/// `{created_at}#{batch_id}`).
pub const DEBTS_TABLE: TableDef = TableDef {
    logical_id: "DebtsTable",
    env_var: "DEBTS_TABLE",
    indexes: &["gsi1"],
};

/// Reconciliation's streaming index (issue 6): one item per transaction,
/// `TX#{transaction_id}` / `STATE`, with its latest status by event time, fraud score and
/// policy flags. Key design in `recon::stream`.
pub const RECON_TABLE: TableDef = TableDef {
    logical_id: "ReconTable",
    env_var: "RECON_TABLE",
    indexes: &[],
};

pub const TABLES: &[TableDef] = &[
    PAYMENT_EVENTS_TABLE,
    ACCOUNTS_TABLE,
    LOANS_TABLE,
    PAYROLL_TABLE,
    DEBTS_TABLE,
    RECON_TABLE,
];

/// Verified webhook payloads waiting to be stored.
pub const PAYMENT_EVENTS_QUEUE: QueueDef = QueueDef {
    logical_id: "PaymentEventsQueue",
    env_var: "PAYMENT_EVENTS_QUEUE_URL",
};

/// Instalments that are due, enqueued by the advances collector for the instalment workers.
pub const INSTALMENTS_QUEUE: QueueDef = QueueDef {
    logical_id: "InstalmentsQueue",
    env_var: "INSTALMENTS_QUEUE_URL",
};

/// S3 notifications of payroll files dropped under `inbox/payroll/`.
pub const PAYROLL_INBOX_QUEUE: QueueDef = QueueDef {
    logical_id: "PayrollInboxQueue",
    env_var: "PAYROLL_INBOX_QUEUE_URL",
};

/// One message per employee of an approved batch: provision its provider accounts, then
/// enqueue its payments.
pub const PAYROLL_ACCOUNTS_QUEUE: QueueDef = QueueDef {
    logical_id: "PayrollAccountsQueue",
    env_var: "PAYROLL_ACCOUNTS_QUEUE_URL",
};

/// One message per payroll payment to create at the provider.
pub const PAYROLL_PAYMENTS_QUEUE: QueueDef = QueueDef {
    logical_id: "PayrollPaymentsQueue",
    env_var: "PAYROLL_PAYMENTS_QUEUE_URL",
};

/// S3 notifications of debt files dropped under `inbox/debts/{client_id}/`.
pub const DEBT_FILES_QUEUE: QueueDef = QueueDef {
    logical_id: "DebtFilesQueue",
    env_var: "DEBT_FILES_QUEUE_URL",
};

/// One message per sub-batch of a debt file, to transform, validate and register.
pub const DEBT_SUB_BATCHES_QUEUE: QueueDef = QueueDef {
    logical_id: "DebtSubBatchesQueue",
    env_var: "DEBT_SUB_BATCHES_QUEUE_URL",
};

/// Payment transactions and fraud signals for reconciliation's streaming index (issue 6).
pub const RECON_EVENTS_QUEUE: QueueDef = QueueDef {
    logical_id: "ReconEventsQueue",
    env_var: "RECON_EVENTS_QUEUE_URL",
};

pub const QUEUES: &[QueueDef] = &[
    RECON_EVENTS_QUEUE,
    DEBT_FILES_QUEUE,
    DEBT_SUB_BATCHES_QUEUE,
    PAYMENT_EVENTS_QUEUE,
    INSTALMENTS_QUEUE,
    PAYROLL_INBOX_QUEUE,
    PAYROLL_ACCOUNTS_QUEUE,
    PAYROLL_PAYMENTS_QUEUE,
];

/// The one bucket: inboxes, reports, exports. Its name is in `DATA_BUCKET`.
pub const DATA_BUCKET_LOGICAL_ID: &str = "DataBucket";
pub const DATA_BUCKET_ENV: &str = "DATA_BUCKET";
/// The EventBridge bus for domain events. Its name is in `EVENT_BUS_NAME`.
pub const EVENT_BUS_LOGICAL_ID: &str = "EventBus";
pub const EVENT_BUS_ENV: &str = "EVENT_BUS_NAME";
/// Timestream database and table, in `METRICS_DATABASE` and `METRICS_TABLE`.
pub const METRICS_DATABASE_ENV: &str = "METRICS_DATABASE";
pub const METRICS_TABLE_ENV: &str = "METRICS_TABLE";
/// The shared secret of the payment provider's webhooks.
pub const WEBHOOK_SECRET_ENV: &str = "PAYOPS_WEBHOOK_SECRET";

/// Why a resource could not be provided (a missing environment variable, a store that would
/// not open). Raised at cold start, never per request.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    #[error("resource {name} is unavailable: {source}")]
    Unavailable {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where handlers get their ports. Implemented by `payops_aws::AwsEnv` (Lambda) and by the
/// local runtime's environment (`payops up`), so that each flow's wiring is written once, in
/// the flow's `from_resources`, and the Lambda mains and the local runtime only pick a provider.
pub trait Resources: Send + Sync {
    fn table(
        &self,
        def: &TableDef,
    ) -> Result<std::sync::Arc<dyn crate::ports::Table>, ResourceError>;
    fn queue(
        &self,
        def: &QueueDef,
    ) -> Result<std::sync::Arc<dyn crate::ports::Queue>, ResourceError>;
    fn blobs(&self) -> Result<std::sync::Arc<dyn crate::ports::Blobs>, ResourceError>;
    fn events(&self) -> Result<std::sync::Arc<dyn crate::ports::Events>, ResourceError>;
    fn metrics(&self) -> Result<std::sync::Arc<dyn crate::ports::Metrics>, ResourceError>;
    fn workflows(&self) -> Result<std::sync::Arc<dyn crate::ports::Workflows>, ResourceError>;
    fn clock(&self) -> std::sync::Arc<dyn crate::ports::Clock>;
    /// A secret by its environment variable name (Lambda: the function's environment, filled
    /// from Secrets Manager at deploy time; locally: the environment or a printed dev default).
    fn secret(&self, env_var: &'static str) -> Result<payops_core::Secret<String>, ResourceError>;
}
