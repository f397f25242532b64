//! The `Metrics` port on SQLite: records kept with exact decimal values, queried by name
//! and time for ops views and tests.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use payops_app::ports::metrics::METRICS_BATCH_MAX;
use payops_app::ports::{MetricRecord, Metrics, MetricsError};
use rusqlite::params;
use rust_decimal::Decimal;

use crate::sqlite::Db;

/// Timestream's limit on a measure name.
pub const MEASURE_NAME_BYTES_MAX: usize = 256;
/// Timestream's limit on dimensions per record.
pub const DIMENSIONS_MAX: usize = 128;
/// Most records one `query` returns.
pub const QUERY_RECORDS_MAX: usize = 100_000;

pub(crate) const SCHEMA: &str = "
CREATE TABLE metrics (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    time_ms    INTEGER NOT NULL
);
CREATE INDEX metrics_by_name ON metrics (name, time_ms);
";

/// The metrics store.
#[derive(Debug)]
pub struct LocalMetrics {
    db: Db,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> MetricsError {
    MetricsError::Unavailable(Box::new(e))
}

fn validate(i: usize, r: &MetricRecord) -> Result<(), MetricsError> {
    let bad = |why: String| MetricsError::Invalid(format!("record {i}: {why}"));
    if r.name.is_empty() || r.name.len() > MEASURE_NAME_BYTES_MAX {
        return Err(bad(format!(
            "measure name must be 1..={MEASURE_NAME_BYTES_MAX} bytes"
        )));
    }
    if r.dimensions.len() > DIMENSIONS_MAX {
        return Err(bad(format!("at most {DIMENSIONS_MAX} dimensions")));
    }
    if let Some((name, _)) = r
        .dimensions
        .iter()
        .find(|(name, value)| name.is_empty() || value.is_empty())
    {
        return Err(bad(format!(
            "dimension {name:?} has an empty name or value"
        )));
    }
    Ok(())
}

impl LocalMetrics {
    pub(crate) fn new(db: Db) -> LocalMetrics {
        LocalMetrics { db }
    }

    /// Records named `name` at or after `since`, oldest first (at most QUERY_RECORDS_MAX).
    pub async fn query(
        &self,
        name: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<MetricRecord>, MetricsError> {
        self.fetch(name, since, QUERY_RECORDS_MAX).await
    }

    /// The exact sum of the values of `name` since `since` (summed as decimals, not floats),
    /// over every record however many.
    pub async fn sum(&self, name: &str, since: DateTime<Utc>) -> Result<Decimal, MetricsError> {
        self.fetch(name, since, usize::MAX)
            .await?
            .iter()
            .try_fold(Decimal::ZERO, |acc, r| {
                acc.checked_add(r.value)
                    .ok_or_else(|| MetricsError::Invalid(format!("sum of {name} overflows")))
            })
    }

    async fn fetch(
        &self,
        name: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<MetricRecord>, MetricsError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let name = name.to_owned();
        let since = since.timestamp_millis();
        self.db
            .call(move |c| {
                let mut s = c.prepare_cached(
                    "SELECT name, value, dimensions, time_ms FROM metrics
                     WHERE name = ?1 AND time_ms >= ?2 ORDER BY time_ms, seq LIMIT ?3",
                )?;
                s.query_map(params![name, since, limit], |r| {
                    let value: String = r.get(1)?;
                    let dimensions: String = r.get(2)?;
                    Ok(MetricRecord {
                        name: r.get(0)?,
                        value: Decimal::from_str(&value).map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                1,
                                rusqlite::types::Type::Text,
                                Box::new(e),
                            )
                        })?,
                        dimensions: serde_json::from_str(&dimensions).unwrap_or_default(),
                        time: Utc
                            .timestamp_millis_opt(r.get(3)?)
                            .single()
                            .unwrap_or_default(),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl Metrics for LocalMetrics {
    async fn write(&self, records: Vec<MetricRecord>) -> Result<(), MetricsError> {
        if records.is_empty() || records.len() > METRICS_BATCH_MAX {
            return Err(MetricsError::Invalid(format!(
                "write takes 1..={METRICS_BATCH_MAX} records, got {}",
                records.len()
            )));
        }
        for (i, r) in records.iter().enumerate() {
            validate(i, r)?;
        }
        self.db
            .write(move |tx| {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO metrics (name, value, dimensions, time_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for r in &records {
                    let dimensions =
                        serde_json::to_string(&r.dimensions).unwrap_or_else(|_| "[]".to_owned());
                    insert.execute(params![
                        r.name,
                        r.value.to_string(),
                        dimensions,
                        r.time.timestamp_millis()
                    ])?;
                }
                Ok(Ok::<(), MetricsError>(()))
            })
            .await
            .map_err(unavailable)?
    }
}
