//! The `Metrics` port on one Timestream table.
//!
//! Timestream wants endpoint discovery: a `DescribeEndpoints` call names the cell to write
//! to. With an endpoint override (an emulator) discovery must stay off, because the
//! emulator answers with the real AWS host name. Discovery is done on the first write, not
//! when the Lambda starts, so that functions which never write metrics never pay for it.

use async_trait::async_trait;
use aws_sdk_timestreamwrite::Client;
use aws_sdk_timestreamwrite::operation::write_records::WriteRecordsError;
use aws_sdk_timestreamwrite::types::{Dimension, MeasureValueType, Record, TimeUnit};
use payops_app::ports::metrics::METRICS_BATCH_MAX;
use payops_app::ports::{MetricRecord, Metrics, MetricsError};
use tokio::sync::OnceCell;

use crate::sdk_error::{Fault, classify};

/// Timestream's limit on the dimensions of one record.
pub const DIMENSIONS_MAX: usize = 128;

#[derive(Debug)]
pub struct TimestreamMetrics {
    client: Client,
    database: String,
    table: String,
    discovery: bool,
    discovered: OnceCell<Client>,
}

impl TimestreamMetrics {
    /// Uses `client` as it is, without endpoint discovery: for an endpoint override.
    pub fn new(client: Client, database: String, table: String) -> Self {
        TimestreamMetrics {
            client,
            database,
            table,
            discovery: false,
            discovered: OnceCell::new(),
        }
    }

    /// Discovers Timestream's ingestion endpoint on the first write (real AWS needs this).
    pub fn with_endpoint_discovery(client: Client, database: String, table: String) -> Self {
        TimestreamMetrics {
            discovery: true,
            ..TimestreamMetrics::new(client, database, table)
        }
    }

    async fn client(&self) -> Result<&Client, MetricsError> {
        if !self.discovery {
            return Ok(&self.client);
        }
        self.discovered
            .get_or_try_init(|| async {
                let (client, reloader) = self
                    .client
                    .clone()
                    .with_endpoint_discovery_enabled()
                    .await
                    .map_err(MetricsError::Unavailable)?;
                // Refreshes the endpoint before it expires; ends when the client is dropped.
                tokio::spawn(reloader.reload_task());
                Ok(client)
            })
            .await
    }
}

fn record(i: usize, r: &MetricRecord) -> Result<Record, MetricsError> {
    let invalid = |why: String| MetricsError::Invalid(format!("record {i} ({}): {why}", r.name));
    if r.name.is_empty() {
        return Err(MetricsError::Invalid(format!(
            "record {i}: measure name is empty"
        )));
    }
    if r.dimensions.len() > DIMENSIONS_MAX {
        return Err(invalid(format!(
            "{} dimensions; at most {DIMENSIONS_MAX}",
            r.dimensions.len()
        )));
    }
    let dimensions = r
        .dimensions
        .iter()
        .map(|(name, value)| {
            if name.is_empty() || value.is_empty() {
                return Err(invalid(format!(
                    "dimension {name:?} has an empty name or value"
                )));
            }
            Dimension::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Record::builder()
        .set_dimensions(Some(dimensions))
        .measure_name(&r.name)
        // The exact decimal's text; Timestream parses it as a DOUBLE on its side.
        .measure_value(r.value.normalize().to_string())
        .measure_value_type(MeasureValueType::Double)
        .time(r.time.timestamp_millis().to_string())
        .time_unit(TimeUnit::Milliseconds)
        .build())
}

#[async_trait]
impl Metrics for TimestreamMetrics {
    async fn write(&self, records: Vec<MetricRecord>) -> Result<(), MetricsError> {
        if records.len() > METRICS_BATCH_MAX {
            return Err(MetricsError::Invalid(format!(
                "{} records in one call; at most {METRICS_BATCH_MAX}",
                records.len()
            )));
        }
        if records.is_empty() {
            return Ok(());
        }
        let records = records
            .iter()
            .enumerate()
            .map(|(i, r)| record(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client()
            .await?
            .write_records()
            .database_name(&self.database)
            .table_name(&self.table)
            .set_records(Some(records))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(WriteRecordsError::RejectedRecordsException(r)) = e.as_service_error() {
                    let reasons = r
                        .rejected_records()
                        .iter()
                        .map(|rr| {
                            format!(
                                "record {}: {}",
                                rr.record_index(),
                                rr.reason().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(MetricsError::Invalid(format!(
                        "records rejected: {reasons}"
                    )));
                }
                Err(match classify(e) {
                    Fault::Unavailable(e) => MetricsError::Unavailable(e),
                    Fault::Rejected(m) => MetricsError::Invalid(m),
                })
            }
        }
    }
}
