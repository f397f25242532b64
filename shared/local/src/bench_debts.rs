//! `payops bench debts`: a generated default-format debt file dropped into the inbox of a
//! `payops up` running in this process (embedded store, pollers, the local Step Functions),
//! timed from the drop to the batch's final status: split, transform, register, complete.
//! One run per invocation, so `/usr/bin/time -v` around it reports this run's peak RSS
//! (`scripts/bench-debts.sh` with `E2E=1` runs it three times and takes the median).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use payops_app::debts::{BatchStatus, Debts};
use payops_app::ports::SystemClock;
use payops_core::debts::builtin_named;
use payops_core::debts::generate::GenerateOptions;
use serde::Serialize;

use crate::runtime::{self, UpOptions};

/// The bench's client folder in the inbox.
pub const BENCH_CLIENT: &str = "bench";
/// Longest wait for a batch to finish.
pub const BATCH_TIMEOUT_MS: u64 = 600_000;
pub const BATCH_POLL_MS: u64 = 20;
const BENCH_TODAY: &str = "2026-11-22";

#[derive(Debug, Clone)]
pub struct DebtBenchOptions {
    pub lines: u64,
    /// One line in N carries a client's mistake (0: none).
    pub defect_every: u64,
    /// A fresh directory for the store (the file's content hash would be a duplicate in an
    /// old one).
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct DebtBenchReport {
    pub lines: u64,
    pub file_bytes: u64,
    pub batch_id: String,
    pub status: String,
    pub accepted: u64,
    pub rejected: u64,
    pub sub_batches: u64,
    /// From the file's arrival in the inbox to the batch's final status.
    pub seconds: f64,
    pub lines_per_second: f64,
    pub generate_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DebtBenchError {
    #[error("runtime: {0}")]
    Runtime(#[from] runtime::RuntimeError),
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> DebtBenchError {
    DebtBenchError::Failed(e.to_string())
}

/// Writes the file beside the inbox, then renames it in, so the inbox never sees half of it.
fn write_file(options: &DebtBenchOptions, target: &Path) -> Result<u64, DebtBenchError> {
    let today = NaiveDate::parse_from_str(BENCH_TODAY, "%Y-%m-%d").map_err(failed)?;
    let generate = GenerateOptions {
        lines: options.lines,
        seed: 5,
        today,
        defect_every: options.defect_every,
        reference_prefix: "B".into(),
    };
    let format = builtin_named("default").map_err(failed)?;
    let staging = options.data_dir.join("bench-debts.csv");
    crate::cli_debts::write_generated(&generate, &format, &staging).map_err(failed)?;
    let size = std::fs::metadata(&staging).map_err(failed)?.len();
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    std::fs::rename(&staging, target).map_err(failed)?;
    Ok(size)
}

pub async fn debts(options: &DebtBenchOptions) -> Result<DebtBenchReport, DebtBenchError> {
    std::fs::create_dir_all(&options.data_dir).map_err(failed)?;
    let running = runtime::start(
        &UpOptions {
            data_dir: options.data_dir.clone(),
            port: 0,
        },
        Arc::new(SystemClock),
    )
    .await?;
    let debts = Debts::from_resources(running.system.env.as_ref()).map_err(failed)?;
    let inbox = options
        .data_dir
        .join(runtime::inbox::INBOX_DIR)
        .join("debts")
        .join(BENCH_CLIENT)
        .join("bench.csv");
    let generated = Instant::now();
    let file_bytes = write_file(options, &inbox)?;
    let generate_seconds = generated.elapsed().as_secs_f64();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(BATCH_TIMEOUT_MS);
    let batch = loop {
        let page = debts
            .batches_of(BENCH_CLIENT, 1, None)
            .await
            .map_err(failed)?;
        if let Some(b) = page.batches.into_iter().next()
            && b.status.is_final()
        {
            break b;
        }
        if Instant::now() > deadline {
            return Err(failed("the batch did not finish in time"));
        }
        tokio::time::sleep(Duration::from_millis(BATCH_POLL_MS)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    running.stop().await?;
    if batch.status == BatchStatus::Failed {
        return Err(failed(format!(
            "batch {} failed: {:?}",
            batch.batch_id, batch.failure
        )));
    }
    Ok(DebtBenchReport {
        lines: options.lines,
        file_bytes,
        batch_id: batch.batch_id,
        status: batch.status.as_str().to_owned(),
        accepted: batch.accepted,
        rejected: batch.rejected,
        sub_batches: batch.sub_batches,
        seconds,
        lines_per_second: options.lines as f64 / seconds.max(f64::EPSILON),
        generate_seconds,
    })
}
