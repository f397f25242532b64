//! `payops bench payroll-e2e`: a generated payroll file (50,000 rows by default) end to end
//! in one process on the embedded store with an unthrottled provider sandbox: upload over
//! HTTP, approve, payments written, accounts provisioned and payments created at the sandbox
//! through the real HTTP client, settled by its signed webhooks, reports written. Timed from
//! the upload to the batch's `COMPLETED` (which the workflow sets after the reports are in
//! S3), median of several runs, each on a fresh data directory.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use payops_core::payroll::generate::{GenerateOptions, generate_xml};
use serde::Serialize;

use crate::client::HttpClient;
use crate::runtime::{self, UpOptions};

/// How long one run may take before the benchmark gives up.
pub const RUN_TIMEOUT_MS: u64 = 600_000;
/// How often the batch's status is read.
pub const POLL_MS: u64 = 50;
/// The target of issue 3 for 50,000 payments.
pub const TARGET_MS: u64 = 30_000;

#[derive(Args, Debug, Clone)]
pub struct PayrollE2eArgs {
    #[arg(long, default_value_t = 50_000)]
    pub rows: u32,
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PayrollBenchError {
    #[error("runtime: {0}")]
    Runtime(#[from] runtime::RuntimeError),
    #[error("http: {0}")]
    Http(#[from] crate::client::ClientError),
    #[error("{0}")]
    Failed(String),
    #[error("temporary directory: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub rows: u32,
    pub upload_ms: u64,
    /// Approval answered → every payment written and enqueued.
    pub materialised_ms: u64,
    /// Approval answered → every payment created at the provider (none `UNPROCESSED`).
    pub created_ms: u64,
    /// Upload start → batch COMPLETED (every payment settled, reports written).
    pub total_ms: u64,
    /// Whole payments per second over `total_ms`.
    pub payments_per_second: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayrollBenchReport {
    pub rows: u32,
    pub runs: Vec<RunFigures>,
    pub median_total_ms: u64,
    pub target_ms: u64,
    pub within_target: bool,
}

async fn run_once(xml: &str, rows: u32) -> Result<RunFigures, PayrollBenchError> {
    let dir = tempfile_dir()?;
    let mut provider =
        crate::cli_sandbox::SandboxArgs::from_env().map_err(PayrollBenchError::Failed)?;
    // Unthrottled, and a lifecycle as fast as the sandbox allows.
    provider.payments_per_min = 0;
    provider.writes_per_min = 0;
    provider.processing_after_ms = 0;
    provider.sent_after_ms = 0;
    provider.settled_after_ms = 0;
    let running = runtime::start_with(
        &UpOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
        },
        std::sync::Arc::new(payops_app::ports::SystemClock),
        &provider,
    )
    .await?;
    let base = running.base_url();
    let client = HttpClient::default();
    let started = Instant::now();
    let up = client
        .request(
            http::Method::POST,
            &format!("{base}/payroll/batches?name=bench.xml"),
            &[("content-type", "application/xml")],
            Bytes::from(xml.to_owned()),
        )
        .await?;
    if up.status != 201 {
        return Err(PayrollBenchError::Failed(format!(
            "upload answered {}: {}",
            up.status,
            String::from_utf8_lossy(&up.body)
        )));
    }
    let upload_ms = started.elapsed().as_millis() as u64;
    let id = up.json()?["batch_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let approve = client
        .post_json(
            &format!("{base}/payroll/batches/{id}/approve"),
            &[],
            Bytes::from_static(b"{}"),
        )
        .await?;
    if approve.status != 200 {
        return Err(PayrollBenchError::Failed(format!(
            "approve answered {}",
            approve.status
        )));
    }
    let approved = Instant::now();
    let mut materialised_ms = 0;
    let mut created_ms = 0;
    let deadline = started + Duration::from_millis(RUN_TIMEOUT_MS);
    loop {
        let batch = client
            .get(&format!("{base}/payroll/batches/{id}"))
            .await?
            .json()?;
        if materialised_ms == 0 && batch["status"] != "APPROVED" {
            materialised_ms = approved.elapsed().as_millis() as u64;
        }
        let unprocessed = batch["progress"]["counts"]["unprocessed"]
            .as_u64()
            .unwrap_or(0);
        if created_ms == 0
            && materialised_ms > 0
            && batch["progress"].is_object()
            && unprocessed == 0
        {
            created_ms = approved.elapsed().as_millis() as u64;
        }
        if batch["status"] == "COMPLETED" {
            let paid = batch["progress"]["paid_count"].as_u64().unwrap_or(0);
            if paid != u64::from(rows) {
                return Err(PayrollBenchError::Failed(format!(
                    "completed with {paid} of {rows} paid"
                )));
            }
            break;
        }
        if Instant::now() > deadline {
            return Err(PayrollBenchError::Failed(format!(
                "batch not completed in {RUN_TIMEOUT_MS} ms: {}",
                batch["progress"]
            )));
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    let total = started.elapsed();
    running.stop().await?;
    Ok(RunFigures {
        rows,
        upload_ms,
        materialised_ms,
        created_ms,
        total_ms: total.as_millis() as u64,
        payments_per_second: u64::from(rows) * 1000 / (total.as_millis() as u64).max(1),
    })
}

/// A fresh directory under the system's temporary directory, removed when dropped.
fn tempfile_dir() -> Result<TempDir, std::io::Error> {
    let path = std::env::temp_dir().join(format!("payops-bench-payroll-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(args: &PayrollE2eArgs) -> Result<PayrollBenchReport, PayrollBenchError> {
    let options = GenerateOptions::like_sample(args.rows, args.seed);
    let xml = tokio::task::spawn_blocking(move || generate_xml(&options))
        .await
        .map_err(|e| PayrollBenchError::Failed(e.to_string()))?;
    let mut runs = Vec::new();
    for _ in 0..args.runs.max(1) {
        runs.push(run_once(&xml, args.rows).await?);
    }
    let mut totals_ms: Vec<u64> = runs.iter().map(|r| r.total_ms).collect();
    totals_ms.sort_unstable();
    // `runs` has at least one element (the loop above runs `max(1)` times).
    let median = totals_ms[totals_ms.len() / 2];
    Ok(PayrollBenchReport {
        rows: args.rows,
        runs,
        median_total_ms: median,
        target_ms: TARGET_MS,
        within_target: median < TARGET_MS,
    })
}

pub fn print(report: &PayrollBenchReport) {
    for (i, r) in report.runs.iter().enumerate() {
        println!(
            "run {}: {} payments, upload {} ms, written {} ms and created at the provider {} ms after approval, completed in {} ms ({} payments/s)",
            i + 1,
            r.rows,
            r.upload_ms,
            r.materialised_ms,
            r.created_ms,
            r.total_ms,
            r.payments_per_second
        );
    }
    println!(
        "median: {} ms for {} payments (target < {} ms: {})",
        report.median_total_ms,
        report.rows,
        report.target_ms,
        if report.within_target {
            "met"
        } else {
            "NOT met"
        }
    );
}
