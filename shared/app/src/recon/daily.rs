//! The daily batch index, as the Task function `recon-daily` of the `recon-daily` state
//! machine (EventBridge schedule → Step Functions). One function, four actions, each a state:
//!
//! 1. `await_statements` — fails `Retryable` until the day's statements are under
//!    `recon/statements/dt=YYYY-MM-DD/` (the state machine retries a bounded number of times);
//! 2. `plan` — sizes the day's inputs and picks the number of hash partitions;
//! 3. `reconcile` — one partition (a distributed Map runs them on as many Lambdas): its batch
//!    and final Parquet files and its merchants' KPIs;
//! 4. `merge` — the day's KPIs dataset, the month's KPIs rollup, stale files removed, and the
//!    day's final files copied into the month's final rollup (`recon/final_monthly/month=…/`).
//!
//! Inputs: statements (CSV or Parquet) and the streaming index's hourly files
//! (`recon/stream/{transactions,fraud}/dt=…`). Outputs under `recon/{batch,final,kpis}/dt=…/`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use payops_core::recon::{MerchantKpis, PARTITIONS_MAX, UserIdMasker};
use serde_json::{Value, json};

use super::input::TextTable;
use super::reference::ReferenceCache;
use super::run::{
    BATCH_DATASET, DayInputs, FINAL_DATASET, FINAL_MONTHLY_DATASET, RunOptions, day_prefix,
    final_monthly_key, kpis_file, month_prefix, monthly_day_stem, run_partitions,
};
use super::stream::{STREAM_FRAUD, STREAM_PREFIX, STREAM_TRANSACTIONS};
use crate::HandlerError;
use crate::handler::TaskHandler;
use crate::ports::{BlobMeta, Blobs, Clock};

/// Where the bank's daily files are dropped.
pub const STATEMENTS_PREFIX: &str = "recon/statements";
/// Root of the output datasets (`recon/batch/`, `recon/final/`, `recon/kpis/`).
pub const OUTPUT_ROOT: &str = "recon";
/// Per-partition KPIs waiting for the merge.
pub const WORK_PREFIX: &str = "recon/work";
/// The monthly KPIs rollup: `recon/kpis_monthly/month=YYYY-MM/part-00000.parquet`.
pub const MONTHLY_KPIS_PREFIX: &str = "recon/kpis_monthly";
/// Input bytes one partition (one Lambda) is given: a few million rows fit one Lambda.
pub const PARTITION_INPUT_BYTES: u64 = 512 * 1024 * 1024;
/// Most partitions the state machine's distributed Map is planned with.
pub const MAP_PARTITIONS_MAX: u32 = 256;
const CONTENT_TYPE_PARQUET: &str = "application/vnd.apache.parquet";

/// The ports of the daily batch.
#[derive(Clone)]
pub struct DailyBatch {
    pub blobs: Arc<dyn Blobs>,
    pub clock: Arc<dyn Clock>,
    pub masker: UserIdMasker,
    pub reference: Arc<ReferenceCache>,
}

fn rejected(message: impl Into<String>) -> HandlerError {
    HandlerError::Rejected(message.into())
}

fn fatal(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Fatal(e.to_string())
}

/// The business day of a run: `date` when given, else the day before the schedule's `time`.
/// The state machine passes its whole input as `request` to the first state.
pub fn resolve_date(input: &Value, now: DateTime<Utc>) -> Result<NaiveDate, HandlerError> {
    let input = match input.get("request") {
        Some(request) if input.get("date").is_none() => request,
        _ => input,
    };
    if let Some(d) = input.get("date").and_then(Value::as_str) {
        return NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| rejected("date: expected YYYY-MM-DD"));
    }
    let time = match input.get("time").and_then(Value::as_str) {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map_err(|_| rejected("time: expected an RFC 3339 timestamp"))?
            .with_timezone(&Utc),
        None => now,
    };
    time.date_naive()
        .checked_sub_days(Days::new(1))
        .ok_or_else(|| rejected("time: out of range"))
}

fn u32_field(input: &Value, name: &str) -> Result<u32, HandlerError> {
    input
        .get(name)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| rejected(format!("{name}: expected a non-negative integer")))
}

async fn list_all(blobs: &dyn Blobs, prefix: &str) -> Result<Vec<BlobMeta>, HandlerError> {
    let mut out = Vec::new();
    let mut continuation = None;
    loop {
        let page = blobs.list(prefix, continuation).await?;
        out.extend(page.blobs);
        match page.continuation {
            Some(c) => continuation = Some(c),
            None => return Ok(out),
        }
    }
}

fn input_prefixes(date: NaiveDate) -> [String; 3] {
    [
        format!("{STATEMENTS_PREFIX}/dt={date}/"),
        format!("{STREAM_PREFIX}/{STREAM_TRANSACTIONS}/dt={date}/"),
        format!("{STREAM_PREFIX}/{STREAM_FRAUD}/dt={date}/"),
    ]
}

fn kpis_work_key(date: NaiveDate, partition: u32) -> String {
    format!("{WORK_PREFIX}/dt={date}/kpis/part-{partition:05}.json")
}

impl DailyBatch {
    async fn await_statements(&self, input: &Value) -> Result<Value, HandlerError> {
        let date = resolve_date(input, self.clock.now())?;
        let [statements, ..] = input_prefixes(date);
        let files = list_all(self.blobs.as_ref(), &statements).await?;
        if files.is_empty() {
            return Err(HandlerError::Retryable(
                format!("the statements of {date} are not in {statements} yet").into(),
            ));
        }
        Ok(json!({ "date": date.to_string(), "statement_files": files.len() }))
    }

    async fn plan(&self, input: &Value) -> Result<Value, HandlerError> {
        let date = resolve_date(input, self.clock.now())?;
        let mut bytes = 0u64;
        for prefix in input_prefixes(date) {
            bytes += list_all(self.blobs.as_ref(), &prefix)
                .await?
                .iter()
                .map(|b| b.size_bytes)
                .sum::<u64>();
        }
        let partitions = bytes
            .div_ceil(PARTITION_INPUT_BYTES)
            .clamp(1, u64::from(MAP_PARTITIONS_MAX.min(PARTITIONS_MAX)))
            as u32;
        let items: Vec<Value> = (0..partitions)
            .map(|p| json!({ "date": date.to_string(), "partition": p, "partitions": partitions }))
            .collect();
        Ok(json!({
            "date": date.to_string(),
            "input_bytes": bytes,
            "partitions": partitions,
            "items": items,
        }))
    }

    async fn read_tables(&self, prefix: &str) -> Result<Vec<TextTable>, HandlerError> {
        let mut tables = Vec::new();
        for meta in list_all(self.blobs.as_ref(), prefix).await? {
            let Some(blob) = self.blobs.get(&meta.key).await? else {
                continue; // Deleted since the listing.
            };
            tables.push(
                TextTable::from_bytes(&meta.key, blob.body.to_vec())
                    .map_err(|e| rejected(e.to_string()))?,
            );
        }
        Ok(tables)
    }

    async fn reconcile(&self, input: &Value) -> Result<Value, HandlerError> {
        let date = resolve_date(input, self.clock.now())?;
        let partition = u32_field(input, "partition")?;
        let partitions = u32_field(input, "partitions")?;
        let [statements, transactions, fraud] = input_prefixes(date);
        let reference = self
            .reference
            .get()
            .await
            .map_err(|e| rejected(e.to_string()))?;
        let inputs = DayInputs {
            transactions: self.read_tables(&transactions).await?,
            statements: self.read_tables(&statements).await?,
            fraud: self.read_tables(&fraud).await?,
            policies: reference.policies.clone(),
            merchants: reference.merchants.clone(),
        };
        let mut options = RunOptions::new(date, self.clock.now());
        options.partitions = partitions;
        let masker = self.masker.clone();
        // CPU-bound: off the async workers.
        let output = tokio::task::spawn_blocking(move || {
            run_partitions(&inputs, &masker, &options, &[partition])
        })
        .await
        .map_err(fatal)?
        .map_err(|e| rejected(e.to_string()))?;
        for file in output.files {
            let key = format!("{OUTPUT_ROOT}/{}", file.key);
            self.blobs
                .put(&key, Bytes::from(file.bytes), CONTENT_TYPE_PARQUET)
                .await?;
        }
        let kpis = serde_json::to_vec(&output.kpis).map_err(fatal)?;
        self.blobs
            .put(
                &kpis_work_key(date, partition),
                Bytes::from(kpis),
                "application/json",
            )
            .await?;
        serde_json::to_value(&output.summary).map_err(fatal)
    }

    async fn read_kpis(
        &self,
        key: &str,
    ) -> Result<Option<BTreeMap<String, MerchantKpis>>, HandlerError> {
        match self.blobs.get(key).await? {
            Some(blob) => serde_json::from_slice(&blob.body)
                .map(Some)
                .map_err(|e| fatal(format!("{key}: {e}"))),
            None => Ok(None),
        }
    }

    async fn merge(&self, input: &Value) -> Result<Value, HandlerError> {
        let date = resolve_date(input, self.clock.now())?;
        let partitions = u32_field(input, "partitions")?;
        let reference = self
            .reference
            .get()
            .await
            .map_err(|e| rejected(e.to_string()))?;
        let mut day: BTreeMap<String, MerchantKpis> = BTreeMap::new();
        for p in 0..partitions {
            let part = self
                .read_kpis(&kpis_work_key(date, p))
                .await?
                .ok_or_else(|| fatal(format!("partition {p} of {date} has not been reconciled")))?;
            merge_into(&mut day, part);
        }
        let file = kpis_file(&day, &reference.merchants, date).map_err(fatal)?;
        self.blobs
            .put(
                &format!("{OUTPUT_ROOT}/{}", file.key),
                Bytes::from(file.bytes),
                CONTENT_TYPE_PARQUET,
            )
            .await?;
        // A re-run with fewer partitions leaves files of the earlier run: remove them.
        let mut removed = 0;
        for dataset in [BATCH_DATASET, FINAL_DATASET] {
            let prefix = format!("{OUTPUT_ROOT}/{}", day_prefix(dataset, date));
            for meta in list_all(self.blobs.as_ref(), &prefix).await? {
                if part_number(&meta.key).is_none_or(|n| n >= partitions) {
                    self.blobs.delete(&meta.key).await?;
                    removed += 1;
                }
            }
        }
        let month = self.rollup_month(date, &reference.merchants).await?;
        let final_month = self.rollup_final_month(date).await?;
        Ok(json!({
            "date": date.to_string(),
            "merchants": day.len(),
            "stale_files_removed": removed,
            "monthly_rollup": month,
            "final_monthly_rollup": final_month,
        }))
    }

    /// Replaces the day's files in the month's final rollup with copies of its daily final
    /// files: copies first (same keys, so a retried merge rewrites them), then removes the
    /// day's rollup files no daily file backs (a re-run with fewer partitions), so the month
    /// never misses a day and never holds one twice.
    async fn rollup_final_month(&self, date: NaiveDate) -> Result<String, HandlerError> {
        let daily = format!("{OUTPUT_ROOT}/{}", day_prefix(FINAL_DATASET, date));
        let mut copied = std::collections::BTreeSet::new();
        for meta in list_all(self.blobs.as_ref(), &daily).await? {
            let Some(p) = part_number(&meta.key) else {
                continue;
            };
            let blob = self
                .blobs
                .get(&meta.key)
                .await?
                .ok_or_else(|| fatal(format!("{} vanished while rolling up", meta.key)))?;
            let key = format!("{OUTPUT_ROOT}/{}", final_monthly_key(date, p));
            self.blobs
                .put(&key, blob.body, CONTENT_TYPE_PARQUET)
                .await?;
            copied.insert(key);
        }
        let month = format!(
            "{OUTPUT_ROOT}/{}",
            month_prefix(FINAL_MONTHLY_DATASET, date)
        );
        let stem = format!("{month}{}", monthly_day_stem(date));
        for meta in list_all(self.blobs.as_ref(), &stem).await? {
            if !copied.contains(&meta.key) {
                self.blobs.delete(&meta.key).await?;
            }
        }
        Ok(month)
    }

    /// The month's KPIs, summed over every day reconciled so far.
    async fn rollup_month(
        &self,
        date: NaiveDate,
        merchants: &HashMap<String, payops_core::recon::Merchant>,
    ) -> Result<String, HandlerError> {
        let month = format!("{:04}-{:02}", date.year(), date.month());
        let mut total: BTreeMap<String, MerchantKpis> = BTreeMap::new();
        for meta in list_all(self.blobs.as_ref(), &format!("{WORK_PREFIX}/dt={month}-")).await? {
            if meta.key.ends_with(".json")
                && let Some(part) = self.read_kpis(&meta.key).await?
            {
                merge_into(&mut total, part);
            }
        }
        let first = date.with_day(1).unwrap_or(date);
        let file = kpis_file(&total, merchants, first).map_err(fatal)?;
        let key = format!("{MONTHLY_KPIS_PREFIX}/month={month}/part-00000.parquet");
        self.blobs
            .put(&key, Bytes::from(file.bytes), CONTENT_TYPE_PARQUET)
            .await?;
        Ok(key)
    }
}

fn merge_into(into: &mut BTreeMap<String, MerchantKpis>, part: BTreeMap<String, MerchantKpis>) {
    for (merchant, k) in part {
        into.entry(merchant).or_default().merge(&k);
    }
}

/// `…/part-00003.parquet` → 3.
fn part_number(key: &str) -> Option<u32> {
    key.rsplit('/')
        .next()?
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

#[async_trait]
impl TaskHandler for DailyBatch {
    async fn handle(&self, input: Value) -> Result<Value, HandlerError> {
        match input.get("action").and_then(Value::as_str) {
            Some("await_statements") => self.await_statements(&input).await,
            Some("plan") => self.plan(&input).await,
            Some("reconcile") => self.reconcile(&input).await,
            Some("merge") => self.merge(&input).await,
            _ => Err(rejected(
                "action: expected await_statements, plan, reconcile or merge",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_given_or_the_day_before_the_schedule() {
        let now = Utc::now();
        assert_eq!(
            resolve_date(&json!({ "date": "2026-11-21" }), now).ok(),
            NaiveDate::from_ymd_opt(2026, 11, 21)
        );
        assert_eq!(
            resolve_date(&json!({ "time": "2026-11-22T02:00:00Z" }), now).ok(),
            NaiveDate::from_ymd_opt(2026, 11, 21)
        );
        assert!(resolve_date(&json!({ "date": "21/11/2026" }), now).is_err());
    }

    #[test]
    fn part_numbers() {
        assert_eq!(
            part_number("recon/batch/dt=2026-11-21/part-00003.parquet"),
            Some(3)
        );
        assert_eq!(part_number("recon/batch/dt=2026-11-21/other.parquet"), None);
    }
}
