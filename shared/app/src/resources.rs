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

/// Accounts, transactions, idempotency records, advances and instalments (issue 4).
/// The key design is in `accounts::layout`: `gsi1` lists a day's transactions in time order
/// (`TXDAY#{date}` / `{timestamp}#{id}`) and the advances (`ADVANCES#{shard}`); `gsi2` lists
/// open instalments by due date (`DUE#{shard}` / `{due_date}#{advance_id}#{n}`).
pub const ACCOUNTS_TABLE: TableDef = TableDef {
    logical_id: "AccountsTable",
    env_var: "ACCOUNTS_TABLE",
    indexes: &["gsi1", "gsi2"],
};

pub const TABLES: &[TableDef] = &[PAYMENT_EVENTS_TABLE, ACCOUNTS_TABLE];

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

pub const QUEUES: &[QueueDef] = &[PAYMENT_EVENTS_QUEUE, INSTALMENTS_QUEUE];

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
