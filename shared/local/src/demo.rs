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
    let result = payment_events(options, &running).await;
    running.stop().await?;
    Ok(DemoReport {
        payment_events: result?,
    })
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
