//! `payops bench payroll-e2e`: a generated payroll file (by default issue 3's shape: 50,000
//! rows for 10,000 employees, 5 payers, 30 branches) end to end
//! in one process on the embedded store with an unthrottled provider sandbox: upload over
//! HTTP, approve, payments written, accounts provisioned and payments created at the sandbox
//! through the real HTTP client, settled by its signed webhooks, reports written. Timed from
//! the upload to the batch's `COMPLETED` (which the workflow sets after the reports are in
//! S3), median of several runs, each on a fresh data directory. After each run, outside the
//! timed window, the per-source report must pay the file's total and the nightly
//! consistency check must find no difference, or the run fails.
//!
//! With `--payments-per-min` and/or `--writes-per-min` the sandbox is throttled instead, and
//! the run checks the other target of issue 3: the flow runs within
//! [`RATE_TOLERANCE_PERCENT`] of the allowed rate of the class that binds it (payments, or
//! the accounts worker's entity and account writes when those are scarcer), and no request
//! goes over any limit (the sandbox answers no 429). Rates are measured from the sandbox's
//! own counters of accepted requests, between the first time each is seen above zero (the
//! burst is spent by then) and its last increase.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use payops_core::payroll::generate::{GenerateOptions, generate_xml};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::client::HttpClient;
use crate::runtime::{self, UpOptions};
use crate::sqlite::DbCounts;

/// How long one run may take before the benchmark gives up.
pub const RUN_TIMEOUT_MS: u64 = 600_000;
/// How often the batch's status is read (each read costs the system under test a little).
pub const POLL_MS: u64 = 100;
/// The target of issue 3 for 50,000 payments.
pub const TARGET_MS: u64 = 30_000;
/// Issue 3's workload: about 50,000 payments for 10,000 employees.
pub const ROWS_PER_EMPLOYEE: u32 = 5;
/// How far a throttled run's rate of payments may be from the allowed rate.
pub use crate::bench_provider::RATE_TOLERANCE_PERCENT;

#[derive(Args, Debug, Clone)]
pub struct PayrollE2eArgs {
    #[arg(long, default_value_t = 50_000)]
    pub rows: u32,
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Distinct employees in the file (0: one per five rows, issue 3's shape of 50,000
    /// payments for 10,000 employees; each further row of an employee is another loan).
    #[arg(long, default_value_t = 0)]
    pub employees: u32,
    /// Throttle the sandbox's payment creation to this many per minute (0: unthrottled).
    #[arg(long, default_value_t = 0)]
    pub payments_per_min: u32,
    /// Throttle the sandbox's entity and account writes to this many per minute (0: unthrottled).
    #[arg(long, default_value_t = 0)]
    pub writes_per_min: u32,
    #[arg(long)]
    pub json: bool,
    /// Provider events per webhook delivery (1: one event per `POST`, as most providers; up
    /// to 100: JSON arrays of events, as providers that batch their notifications).
    #[arg(long, default_value_t = 1)]
    pub webhook_events_per_delivery: u16,
    /// Print a line per second to stderr: the sandbox's counters and the batch's counts by
    /// status, to see which stage bounds the run.
    #[arg(long)]
    pub trace: bool,
    /// Let the sandbox journal its books to the data directory, as `payops up` does. By
    /// default the bench's sandbox keeps them in memory: it stands in for a provider whose
    /// own durability costs payops nothing in production, and the run's directory is
    /// thrown away.
    #[arg(long)]
    pub persist_sandbox: bool,
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
    /// CPU the whole process (server, sandbox and this client) used over `total_ms`, in ms
    /// (from /proc; 0 where it cannot be read).
    pub cpu_ms: u64,
    /// What the embedded store's threads did over `total_ms`: the single writer's load in
    /// units that, unlike times, do not vary with how busy the machine was.
    pub store: DbCounts,
    /// What the sandbox saw: replays, 429s, webhook deliveries and their failed attempts.
    pub provider: Option<crate::sandbox::SandboxStats>,
    /// Throttled runs only: how the rates the sandbox saw compared with the allowed ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThrottleFigures {
    /// Payments created (`POST /v1/payments`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payments: Option<ClassRate>,
    /// Entity and account writes (the accounts worker's calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes: Option<ClassRate>,
    /// The throttled class that ran closest to its limit: the one that bound the flow.
    pub binding: &'static str,
    /// Requests the sandbox answered 429 (payments and writes): must be 0.
    pub rate_limited: u64,
    /// The binding class within the tolerance of its allowed rate, and no 429.
    pub within_tolerance: bool,
}

/// One throttled class: its allowed rate and the rate the sandbox saw.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRate {
    pub allowed_per_min: u32,
    /// Accepted per minute between the first request seen and the last.
    pub achieved_per_min: String,
    /// (achieved − allowed) / allowed, in percent.
    pub deviation_percent: String,
    #[serde(skip)]
    deviation: Decimal,
}

/// A sandbox counter of accepted requests as seen by the polling loop: when it was first
/// seen above zero (the burst is spent by then) and when it last went up.
#[derive(Debug, Default)]
struct Timeline {
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
}

impl Timeline {
    fn observe(&mut self, at: Instant, accepted: u64) {
        if accepted == 0 {
            return;
        }
        if self.first.is_none() {
            self.first = Some((at, accepted));
        }
        if self.last.is_none_or(|(_, n)| n < accepted) {
            self.last = Some((at, accepted));
        }
    }

    /// Requests per minute between the first observation and the last increase.
    fn per_min(&self) -> Option<Decimal> {
        let ((t0, n0), (t1, n1)) = (self.first?, self.last?);
        let elapsed_ms = t1.duration_since(t0).as_millis();
        if elapsed_ms == 0 || n1 <= n0 {
            return None;
        }
        Some(Decimal::from(n1 - n0) * Decimal::from(60_000) / Decimal::from(elapsed_ms as u64))
    }
}

fn class_rate(allowed_per_min: u32, timeline: &Timeline) -> ClassRate {
    let achieved = timeline.per_min().unwrap_or(Decimal::ZERO);
    let allowed = Decimal::from(allowed_per_min.max(1));
    let deviation = (achieved - allowed) * Decimal::from(100) / allowed;
    ClassRate {
        allowed_per_min,
        achieved_per_min: achieved.round_dp(1).to_string(),
        deviation_percent: deviation.round_dp(2).to_string(),
        deviation,
    }
}

fn throttle_figures(
    payments: Option<ClassRate>,
    writes: Option<ClassRate>,
    rate_limited: u64,
) -> ThrottleFigures {
    let closest = [("payments", &payments), ("writes", &writes)]
        .into_iter()
        .filter_map(|(name, c)| c.as_ref().map(|c| (name, c.deviation.abs())))
        .min_by(|a, b| a.1.cmp(&b.1));
    let (binding, deviation) = closest.unwrap_or(("none", Decimal::MAX));
    ThrottleFigures {
        payments,
        writes,
        binding,
        rate_limited,
        within_tolerance: deviation <= Decimal::from(RATE_TOLERANCE_PERCENT) && rate_limited == 0,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PayrollBenchReport {
    pub rows: u32,
    pub employees: u32,
    pub runs: Vec<RunFigures>,
    pub median_total_ms: u64,
    pub target_ms: u64,
    pub within_target: bool,
}

async fn run_once(
    xml: &str,
    rows: u32,
    args: &PayrollE2eArgs,
) -> Result<RunFigures, PayrollBenchError> {
    let dir = tempfile_dir()?;
    let mut provider =
        crate::cli_sandbox::SandboxArgs::from_env().map_err(PayrollBenchError::Failed)?;
    // Unthrottled unless asked, and a lifecycle as fast as the sandbox allows.
    provider.payments_per_min = args.payments_per_min;
    provider.writes_per_min = args.writes_per_min;
    provider.in_memory = !args.persist_sandbox;
    provider.processing_after_ms = 0;
    provider.sent_after_ms = 0;
    provider.settled_after_ms = 0;
    provider.webhook_events_per_delivery = args
        .webhook_events_per_delivery
        .clamp(1, crate::sandbox::WEBHOOK_EVENTS_PER_DELIVERY_MAX as u16);
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
    let cpu_at_start = own_cpu_seconds();
    let db = running.system.env.store.db().clone();
    let store_at_start = db.counts();
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
    let uploaded = up.json()?;
    let id = uploaded["batch_id"].as_str().unwrap_or_default().to_owned();
    let file_total: Decimal = uploaded["total"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| PayrollBenchError::Failed(format!("upload has no total: {uploaded}")))?;
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
    let (mut payments_seen, mut writes_seen) = (Timeline::default(), Timeline::default());
    let throttled = args.payments_per_min > 0 || args.writes_per_min > 0;
    let deadline = started + Duration::from_millis(RUN_TIMEOUT_MS);
    let mut traced_at = started;
    loop {
        let batch = client
            .get(&format!("{base}/payroll/batches/{id}"))
            .await?
            .json()?;
        if let Some(sandbox) = running.provider_sandbox.as_ref().filter(|_| throttled) {
            let (payments, writes) = sandbox.sandbox.accepted_counts();
            let now = Instant::now();
            payments_seen.observe(now, payments);
            writes_seen.observe(now, writes);
        }
        if args.trace && traced_at.elapsed() >= Duration::from_secs(1) {
            traced_at = Instant::now();
            trace_line(started, running.provider_sandbox.as_ref(), &batch);
        }
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
    let cpu_ms = ((own_cpu_seconds() - cpu_at_start) * 1000.0) as u64;
    let store = db.counts() - store_at_start;
    let provider_stats = running.provider_sandbox.as_ref().map(|s| s.sandbox.stats());
    // Outside the timed window: the books must add up, or the figure means nothing.
    verify_books(&client, &base, &id, file_total).await?;
    let throttle = match &running.provider_sandbox {
        Some(sandbox) if throttled => {
            let stats = sandbox.sandbox.stats();
            let rate =
                |per_min: u32, seen: &Timeline| (per_min > 0).then(|| class_rate(per_min, seen));
            Some(throttle_figures(
                rate(args.payments_per_min, &payments_seen),
                rate(args.writes_per_min, &writes_seen),
                stats.payments.rate_limited + stats.writes.rate_limited,
            ))
        }
        _ => None,
    };
    running.stop().await?;
    Ok(RunFigures {
        rows,
        upload_ms,
        materialised_ms,
        created_ms,
        total_ms: total.as_millis() as u64,
        payments_per_second: u64::from(rows) * 1000 / (total.as_millis() as u64).max(1),
        cpu_ms,
        store,
        provider: provider_stats,
        throttle,
    })
}

/// Per payment, with one decimal.
fn per(count: u64, rows: u32) -> f64 {
    count as f64 / f64::from(rows.max(1))
}

/// How many cores `cpu_ms` of CPU kept busy on average over `wall_ms`.
fn cores_busy(cpu_ms: u64, wall_ms: u64) -> f64 {
    cpu_ms as f64 / wall_ms.max(1) as f64
}

/// User + system CPU seconds this process has used so far (0 where /proc is missing).
fn own_cpu_seconds() -> f64 {
    crate::bench::process_cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// One `--trace` line: elapsed time, what the sandbox accepted, the batch's counts.
fn trace_line(
    started: Instant,
    sandbox: Option<&crate::sandbox::RunningSandbox>,
    batch: &serde_json::Value,
) {
    let provider = sandbox.map(|s| s.sandbox.stats()).map(|s| {
        format!(
            "writes {} payments {} webhooks {} pending {}",
            s.writes.accepted, s.payments.accepted, s.webhooks.delivered, s.webhooks.pending
        )
    });
    eprintln!(
        "{:>6} ms  {}  {} {}",
        started.elapsed().as_millis(),
        provider.unwrap_or_default(),
        batch["status"],
        batch["progress"]["counts"]
    );
}

/// The per-source report pays the file's total, and the nightly consistency check (payments,
/// aggregates, ledger, and the provider's own list) finds no difference.
async fn verify_books(
    client: &HttpClient,
    base: &str,
    batch_id: &str,
    file_total: Decimal,
) -> Result<(), PayrollBenchError> {
    let sources = client
        .get(&format!(
            "{base}/payroll/batches/{batch_id}/reports/sources.csv"
        ))
        .await?;
    let paid = paid_column_total(&sources.body).map_err(PayrollBenchError::Failed)?;
    if paid != file_total {
        return Err(PayrollBenchError::Failed(format!(
            "sources.csv pays {paid}, the file totals {file_total}"
        )));
    }
    let check = client
        .post_json(
            &format!("{base}/ops/trigger/payroll-check"),
            &[],
            Bytes::from_static(b"{}"),
        )
        .await?
        .json()?;
    if check["difference_count"] != 0 {
        return Err(PayrollBenchError::Failed(format!(
            "the consistency check found differences: {check}"
        )));
    }
    Ok(())
}

/// The sum of the `paid` column of a per-source or per-branch report.
fn paid_column_total(csv_bytes: &[u8]) -> Result<Decimal, String> {
    let mut reader = csv::Reader::from_reader(csv_bytes);
    let column = reader
        .headers()
        .map_err(|e| format!("report header: {e}"))?
        .iter()
        .position(|h| h == "paid")
        .ok_or("the report has no paid column")?;
    let mut total = Decimal::ZERO;
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("report line {}: {e}", i + 2))?;
        let paid: Decimal = record
            .get(column)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("report line {}: paid is not a decimal", i + 2))?;
        total += paid;
    }
    Ok(total)
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
    let mut options = GenerateOptions::like_sample(args.rows, args.seed);
    options.employees = match args.employees {
        0 => (args.rows / ROWS_PER_EMPLOYEE).max(1),
        n => n.min(args.rows),
    };
    let employees = options.employees;
    let xml = tokio::task::spawn_blocking(move || generate_xml(&options))
        .await
        .map_err(|e| PayrollBenchError::Failed(e.to_string()))?;
    let mut runs = Vec::new();
    for _ in 0..args.runs.max(1) {
        runs.push(run_once(&xml, args.rows, args).await?);
    }
    let mut totals_ms: Vec<u64> = runs.iter().map(|r| r.total_ms).collect();
    totals_ms.sort_unstable();
    // `runs` has at least one element (the loop above runs `max(1)` times).
    let median = totals_ms[totals_ms.len() / 2];
    let throttled = args.payments_per_min > 0 || args.writes_per_min > 0;
    let within_target = if throttled {
        runs.iter()
            .all(|r| r.throttle.as_ref().is_some_and(|t| t.within_tolerance))
    } else {
        median < TARGET_MS
    };
    Ok(PayrollBenchReport {
        rows: args.rows,
        employees,
        runs,
        median_total_ms: median,
        target_ms: TARGET_MS,
        within_target,
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
        println!(
            "  CPU {} ms ({:.1} cores busy)",
            r.cpu_ms,
            cores_busy(r.cpu_ms, r.total_ms)
        );
        let st = &r.store;
        println!(
            "  store: {} writes in {} commits ({:.1} per payment), {} reads in {} read transactions ({:.1} per payment)",
            st.writes,
            st.write_groups,
            per(st.writes, r.rows),
            st.reads,
            st.read_groups,
            per(st.reads, r.rows)
        );
        if let Some(p) = &r.provider {
            println!(
                "  sandbox: {} payments ({} replayed, {} answered 429), {} account writes, {} webhook deliveries ({} failed attempts)",
                p.payments.accepted,
                p.payments.replayed,
                p.payments.rate_limited,
                p.writes.accepted,
                p.webhooks.delivered,
                p.webhooks.failed_attempts
            );
        }
        if let Some(t) = &r.throttle {
            for (name, class) in [("payments", &t.payments), ("writes", &t.writes)] {
                if let Some(c) = class {
                    println!(
                        "  {name} throttled at {}/min: achieved {}/min ({}%)",
                        c.allowed_per_min, c.achieved_per_min, c.deviation_percent
                    );
                }
            }
            println!(
                "  binding: {}; {} requests answered 429 (tolerance ±{}% and none: {})",
                t.binding,
                t.rate_limited,
                RATE_TOLERANCE_PERCENT,
                if t.within_tolerance { "met" } else { "NOT met" }
            );
        }
    }
    if report.runs.iter().any(|r| r.throttle.is_some()) {
        println!(
            "throttled: {}",
            if report.within_target {
                "every run within tolerance"
            } else {
                "NOT within tolerance"
            }
        );
        return;
    }
    println!(
        "median: {} ms for {} payments of {} employees (target < {} ms: {})",
        report.median_total_ms,
        report.rows,
        report.employees,
        report.target_ms,
        if report.within_target {
            "met"
        } else {
            "NOT met"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_from_the_first_request_seen_to_the_last_increase() {
        let t0 = Instant::now();
        let mut seen = Timeline::default();
        seen.observe(t0, 0);
        // The burst (100) is spent by the first observation; 100 more take 60 s.
        seen.observe(t0 + Duration::from_secs(1), 100);
        seen.observe(t0 + Duration::from_secs(31), 150);
        seen.observe(t0 + Duration::from_secs(61), 200);
        // Later observations without a new request do not stretch the window.
        seen.observe(t0 + Duration::from_secs(90), 200);
        assert_eq!(seen.per_min(), Some(Decimal::from(100)));
        let at_limit = throttle_figures(Some(class_rate(100, &seen)), None, 0);
        assert!(at_limit.within_tolerance, "{at_limit:?}");
        assert_eq!(at_limit.binding, "payments");
        let over = throttle_figures(Some(class_rate(100, &seen)), None, 1);
        assert!(!over.within_tolerance, "a 429 fails the run: {over:?}");
        let slow = throttle_figures(Some(class_rate(120, &seen)), None, 0);
        assert!(
            !slow.within_tolerance,
            "17% under the allowed rate: {slow:?}"
        );
    }

    #[test]
    fn the_class_closest_to_its_limit_is_the_one_judged() {
        let t0 = Instant::now();
        let (mut payments, mut writes) = (Timeline::default(), Timeline::default());
        for s in 0..=60u64 {
            let at = t0 + Duration::from_secs(s);
            payments.observe(at, 1 + s * 50 / 60);
            writes.observe(at, 1 + s * 98 / 60);
        }
        let t = throttle_figures(
            Some(class_rate(100, &payments)),
            Some(class_rate(100, &writes)),
            0,
        );
        assert_eq!(t.binding, "writes", "{t:?}");
        assert!(
            t.within_tolerance,
            "writes bound the flow at 98% of their rate: {t:?}"
        );
    }

    #[test]
    fn the_paid_column_is_summed_exactly_and_a_bad_line_is_named() {
        let report =
            b"source_id,payments,owed,paid_count,paid\nA,2,10.10,2,10.10\nB,1,0.20,1,0.20\n";
        assert_eq!(paid_column_total(report), Ok(Decimal::new(1030, 2)));
        let bad = b"source_id,paid\nA,1.00\nB,x\n";
        assert_eq!(
            paid_column_total(bad),
            Err("report line 3: paid is not a decimal".to_owned())
        );
        assert!(paid_column_total(b"source_id,owed\nA,1\n").is_err());
    }

    #[test]
    fn no_rate_without_two_distinct_observations() {
        let mut seen = Timeline::default();
        assert_eq!(seen.per_min(), None);
        seen.observe(Instant::now(), 10);
        assert_eq!(seen.per_min(), None);
        assert!(!throttle_figures(Some(class_rate(100, &seen)), None, 0).within_tolerance);
    }
}
