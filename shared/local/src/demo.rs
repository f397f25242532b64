//! `payops demo`: the main job. Generates realistic data for each flow, runs it end to end on
//! the embedded store through the same HTTP APIs, queues and schedules as `payops up`, and
//! prints where each report is. Each flow adds itself here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{Days, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use payops_app::ports::SystemClock;
use payops_app::resources::{Resources, WEBHOOK_SECRET_ENV};
use payops_core::webhook_signature::{SIGNATURE_HEADER, sign};
use serde::Serialize;

use crate::client::HttpClient;
use crate::env::LOCAL_BUCKET;
use crate::generate::{Rng, payment_event_body};
use crate::runtime::{self, UpOptions};

/// How long the demo waits for the queue to drain before it calls the run failed.
pub const DEMO_STORE_TIMEOUT_MS: u64 = 120_000;
const DEMO_SEED: u64 = 0x5EED;
/// Concurrent webhook requests in the demo: a provider's burst, politely.
const DEMO_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub events_per_day: usize,
    pub days: u64,
    /// Every `duplicate_every`-th webhook is sent twice, as a provider retry would.
    pub duplicate_every: usize,
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub payment_events: PaymentEventsDemo,
    pub accounts: AccountsDemo,
    /// Loans repaid from payroll and the morning payroll check (issue 8).
    pub loans: crate::cli_loans::LoansDemo,
    /// Reconciliation: streaming index, daily workflow, Parquet datasets (issue 6).
    pub recon: crate::cli_recon::ReconDemo,
    /// Debt intake: one client per shipped format (issue 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debts: Option<crate::cli_debts::DebtsDemo>,
    /// Payroll disbursement through the provider sandbox (issue 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payroll: Option<crate::cli_payroll::PayrollDemo>,
}

#[derive(Debug, Serialize)]
pub struct AccountsDemo {
    pub accounts: usize,
    pub transfers_succeeded: usize,
    pub transfers_failed: usize,
    /// Sum of all balances before and after: equal but for the advance's credit.
    pub balance_total_before: String,
    pub balance_total_after: String,
    pub advance_id: String,
    pub advance_amount: String,
    pub instalments: usize,
}

#[derive(Debug, Serialize)]
pub struct PaymentEventsDemo {
    pub webhooks_sent: usize,
    pub events_stored: u64,
    pub duplicates_ignored: u64,
    pub reports: Vec<ReportFiles>,
}

#[derive(Debug, Serialize)]
pub struct ReportFiles {
    pub date: String,
    pub events_csv: PathBuf,
    pub summary_csv: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Http(#[from] crate::client::ClientError),
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    #[error("{0}")]
    Failed(String),
}

/// Where a local object's bytes are on disk.
pub fn object_path(data_dir: &Path, key: &str) -> PathBuf {
    data_dir.join("objects").join(LOCAL_BUCKET).join(key)
}

pub async fn run(options: &DemoOptions) -> Result<DemoReport, DemoError> {
    let up = UpOptions {
        data_dir: options.data_dir.clone(),
        port: 0,
    };
    let running = runtime::start(&up, Arc::new(SystemClock)).await?;
    let result = match payment_events(options, &running).await {
        Ok(p) => match accounts(options, &running).await {
            Ok(a) => {
                match crate::cli_loans::demo(
                    &running.system.env,
                    &running.base_url(),
                    &options.data_dir,
                )
                .await
                .map_err(|e| DemoError::Failed(format!("loans: {e}")))
                {
                    Ok(loans) => crate::cli_recon::demo(&running.system, &options.data_dir)
                        .await
                        .map_err(|e| DemoError::Failed(format!("recon: {e}")))
                        .map(|recon| DemoReport {
                            payment_events: p,
                            accounts: a,
                            loans,
                            recon,
                            debts: None,
                            payroll: None,
                        }),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let result = match result {
        Ok(mut report) => crate::cli_debts::demo(&running, &options.data_dir)
            .await
            .map(|d| {
                report.debts = Some(d);
                report
            })
            .map_err(|e| DemoError::Failed(format!("debts: {e}"))),
        Err(e) => Err(e),
    };
    let result = match result {
        Ok(mut report) => crate::cli_payroll::demo(&running.base_url(), &options.data_dir)
            .await
            .map(|p| {
                report.payroll = Some(p);
                report
            })
            .map_err(|e| DemoError::Failed(format!("payroll: {e}"))),
        Err(e) => Err(e),
    };
    running.stop().await?;
    result
}

async fn payment_events(
    options: &DemoOptions,
    running: &runtime::Running,
) -> Result<PaymentEventsDemo, DemoError> {
    let secret = running
        .system
        .env
        .secret(WEBHOOK_SECRET_ENV)
        .map_err(|e| DemoError::Failed(e.to_string()))?;
    let client = HttpClient::default();
    let today = Utc::now().date_naive();
    let days: Vec<NaiveDate> = (1..=options.days)
        .rev()
        .filter_map(|d| today.checked_sub_days(Days::new(d)))
        .collect();
    let mut rng = Rng::new(DEMO_SEED);
    let mut bodies = Vec::new();
    for (d, day) in days.iter().enumerate() {
        for i in 0..options.events_per_day {
            let index = (d * options.events_per_day + i) as u64;
            let body =
                Bytes::from(payment_event_body(&mut rng, DEMO_SEED, index, *day).to_string());
            if options.duplicate_every > 0 && i.is_multiple_of(options.duplicate_every) {
                bodies.push(body.clone());
            }
            bodies.push(body);
        }
    }
    let bar = progress(options.quiet, bodies.len() as u64, "payment webhooks");
    let url = format!("{}/webhooks/payment-events", running.base_url());
    for chunk in bodies.chunks(DEMO_CONCURRENCY) {
        let sends = chunk.iter().map(|body| {
            let signature = sign(secret.expose().as_bytes(), Utc::now().timestamp(), body);
            let (client, url) = (client.clone(), url.clone());
            let body = body.clone();
            async move {
                client
                    .post_json(&url, &[(SIGNATURE_HEADER, &signature)], body)
                    .await
            }
        });
        for response in futures::future::join_all(sends).await {
            let response = response?;
            if response.status != 202 {
                return Err(DemoError::Failed(format!(
                    "webhook answered {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                )));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();

    let expected = (options.events_per_day as u64) * days.len() as u64;
    let expected_duplicates = bodies.len() as u64 - expected;
    let (stored, duplicates) = wait_all_stored(
        &client,
        &running.base_url(),
        &days,
        expected,
        expected_duplicates,
        options.quiet,
    )
    .await?;

    let mut reports = Vec::new();
    for day in &days {
        let detail = serde_json::json!({ "date": day.to_string() });
        let result = running
            .system
            .trigger("payment-events-report", detail)
            .await
            .map_err(|e| DemoError::Failed(e.to_string()))?;
        let key = |field: &str| {
            result[field]
                .as_str()
                .map(|k| object_path(&options.data_dir, k))
        };
        let (Some(events_csv), Some(summary_csv)) = (key("events_key"), key("summary_key")) else {
            return Err(DemoError::Failed(format!(
                "report answered without keys: {result}"
            )));
        };
        reports.push(ReportFiles {
            date: day.to_string(),
            events_csv,
            summary_csv,
        });
    }
    Ok(PaymentEventsDemo {
        webhooks_sent: bodies.len(),
        events_stored: stored,
        duplicates_ignored: duplicates,
        reports,
    })
}

async fn wait_all_stored(
    client: &HttpClient,
    base_url: &str,
    days: &[NaiveDate],
    expected: u64,
    expected_duplicates: u64,
    quiet: bool,
) -> Result<(u64, u64), DemoError> {
    let bar = progress(quiet, expected, "events stored");
    let deadline = Instant::now() + Duration::from_millis(DEMO_STORE_TIMEOUT_MS);
    loop {
        let (mut stored, mut duplicates) = (0, 0);
        for day in days {
            let counts = client
                .get(&format!("{base_url}/payment-events?date={day}"))
                .await?
                .json()?;
            stored += counts["count"].as_u64().unwrap_or(0);
            duplicates += counts["duplicates_ignored"].as_u64().unwrap_or(0);
        }
        bar.set_position(stored);
        if stored >= expected && duplicates >= expected_duplicates {
            bar.finish();
            return Ok((stored, duplicates));
        }
        if Instant::now() > deadline {
            return Err(DemoError::Failed(format!(
                "only {stored} of {expected} events stored in time"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn progress(quiet: bool, len: u64, what: &'static str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>18} [{bar:40}] {pos}/{len} ({per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

const DEMO_ACCOUNTS: usize = 20;
const DEMO_TRANSFERS: usize = 400;
const DEMO_OPENING_BALANCE: &str = "1000.00";
const DEMO_ADVANCE: &str = "1200.00";

/// Accounts and advances: opens accounts, moves money between them at random (some transfers
/// fail for lack of funds, as they should), grants an advance, and checks that the money adds up.
async fn accounts(
    options: &DemoOptions,
    running: &runtime::Running,
) -> Result<AccountsDemo, DemoError> {
    let client = HttpClient::default();
    let base = running.base_url();
    let post = |path: &str, body: serde_json::Value, key: Option<String>| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let headers: Vec<(&str, &str)> = key
                .as_deref()
                .map(|k| vec![("idempotency-key", k)])
                .unwrap_or_default();
            let r = client
                .post_json(&url, &headers, Bytes::from(body.to_string()))
                .await?;
            if r.status >= 300 {
                return Err(DemoError::Failed(format!(
                    "{url} answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )));
            }
            Ok::<serde_json::Value, DemoError>(r.json()?)
        }
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::new();
    for i in 0..DEMO_ACCOUNTS {
        let id = format!("acct_demo_{}_{i:03}", &run_id[..8]);
        post(
            "/api/v1/accounts",
            serde_json::json!({"account_id": id, "balance": DEMO_OPENING_BALANCE}),
            None,
        )
        .await?;
        ids.push(id);
    }
    let total = |client: HttpClient, ids: Vec<String>, base: String| async move {
        let mut sum = rust_decimal::Decimal::ZERO;
        for id in ids {
            let account = client
                .get(&format!("{base}/api/v1/accounts/{id}"))
                .await?
                .json()?;
            let balance = account["balance"]
                .as_str()
                .and_then(|b| b.parse::<rust_decimal::Decimal>().ok());
            sum +=
                balance.ok_or_else(|| DemoError::Failed(format!("account {id} has no balance")))?;
        }
        Ok::<rust_decimal::Decimal, DemoError>(sum)
    };
    let before = total(client.clone(), ids.clone(), base.clone()).await?;
    let bar = progress(options.quiet, DEMO_TRANSFERS as u64, "transfers");
    let mut rng = Rng::new(DEMO_SEED);
    let (mut succeeded, mut failed) = (0, 0);
    for n in 0..DEMO_TRANSFERS {
        let src = rng.below(ids.len() as u64) as usize;
        let dst = (src + 1 + rng.below(ids.len() as u64 - 1) as usize) % ids.len();
        let cents = 1_000 + rng.below(40_000) as i64;
        let body = serde_json::json!({
            "src_account_id": ids[src], "dst_account_id": ids[dst],
            "amount": rust_decimal::Decimal::new(cents, 2).to_string(), "direction": "debit",
        });
        let result = post(
            "/api/v1/transaction",
            body,
            Some(format!("demo-{run_id}-{n}")),
        )
        .await?;
        if result["status"] == "success" {
            succeeded += 1
        } else {
            failed += 1
        }
        bar.inc(1);
    }
    bar.finish();
    let advance = post(
        "/api/v1/advances",
        serde_json::json!({"account_id": ids[0], "amount": DEMO_ADVANCE}),
        Some(format!("demo-{run_id}-advance")),
    )
    .await?;
    let after = total(client.clone(), ids.clone(), base.clone()).await?;
    let advance_amount: rust_decimal::Decimal = DEMO_ADVANCE
        .parse()
        .map_err(|_| DemoError::Failed("advance amount".into()))?;
    if after != before + advance_amount {
        return Err(DemoError::Failed(format!(
            "money does not add up: {before} + {advance_amount} != {after}"
        )));
    }
    Ok(AccountsDemo {
        accounts: ids.len(),
        transfers_succeeded: succeeded,
        transfers_failed: failed,
        balance_total_before: before.to_string(),
        balance_total_after: after.to_string(),
        advance_id: advance["advance_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        advance_amount: DEMO_ADVANCE.to_owned(),
        instalments: advance["instalments"].as_array().map_or(0, Vec::len),
    })
}
