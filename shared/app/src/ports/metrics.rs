//! The `Metrics` port: Timestream WriteRecords into one database and table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// Timestream accepts at most 100 records per WriteRecords call.
pub const METRICS_BATCH_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRecord {
    /// Measure name, e.g. `events_stored`.
    pub name: String,
    /// Exact value; Timestream receives it as a DOUBLE string.
    pub value: Decimal,
    /// Dimension name → value, e.g. `function` → `payment-events-processor`. Never PII.
    pub dimensions: Vec<(String, String)>,
    pub time: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid record: {0}")]
    Invalid(String),
    #[error("metrics store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Metrics: Send + Sync {
    async fn write(&self, records: Vec<MetricRecord>) -> Result<(), MetricsError>;
}
