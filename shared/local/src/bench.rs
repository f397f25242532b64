//! `payops bench webhooks`: a burst of signed webhooks through a real `payops up` process on
//! loopback. Reports the acceptance rate, the time until every event is stored, and CPU time
//! per event (the whole server, then the webhook and the processor apart), as medians of runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDate;
use payops_core::webhook_signature::{SIGNATURE_HEADER, sign};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::HttpClient;
use crate::generate::{Rng, payment_event_body};

/// How long to wait for the server to print its address, and for a burst to be stored.
pub const SERVER_START_TIMEOUT_MS: u64 = 30_000;
pub const STORE_TIMEOUT_MS: u64 = 120_000;
pub const STORE_POLL_MS: u64 = 10;
const BENCH_SECRET: &str = "whsec_bench";
const BENCH_DAY: &str = "2026-11-20";

#[derive(Debug, Clone)]
pub struct WebhookBenchOptions {
    pub events: usize,
    pub concurrency: usize,
    pub runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub events: usize,
    pub accepted: usize,
    pub accept_seconds: f64,
    pub accept_rate_per_second: f64,
    pub stored_seconds: f64,
    pub stored: u64,
    pub duplicates: u64,
    pub server_cpu_us_per_event: f64,
    pub webhook_cpu_us_per_event: f64,
    pub processor_cpu_us_per_event: f64,
}

#[derive(Debug, Serialize)]
pub struct WebhookBenchReport {
    pub runs: Vec<RunFigures>,
    pub median: RunFigures,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("could not start `payops up`: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`payops up` did not print its address in time")]
    NoAddress,
    #[error("http: {0}")]
    Http(#[from] crate::client::ClientError),
    #[error("{0}")]
    Failed(String),
}

/// A `payops up` child process on a scratch data directory, for the benchmarks. Dropping it
/// stops the process (SIGTERM, then reaped) and removes the directory.
pub struct Server {
    child: Child,
    pub base_url: String,
    dir: PathBuf,
}

impl Server {
    /// Runs this executable as `payops up --port 0 --data DIR` and waits for its address.
    pub fn start(dir: &Path) -> Result<Server, BenchError> {
        let exe = std::env::current_exe().map_err(BenchError::Spawn)?;
        let mut child = Command::new(exe)
            .args(["up", "--port", "0", "--data"])
            .arg(dir)
            .env(payops_app::resources::WEBHOOK_SECRET_ENV, BENCH_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(BenchError::Spawn)?;
        let stdout = child.stdout.take().ok_or(BenchError::NoAddress)?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("payops up: listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let base_url = rx
            .recv_timeout(Duration::from_millis(SERVER_START_TIMEOUT_MS))
            .map_err(|_| BenchError::NoAddress)?;
        Ok(Server {
            child,
            base_url,
            dir: dir.to_owned(),
        })
    }

    /// User + system CPU seconds the server has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.child.id()).unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM for a clean stop, then reap; the data directory is scratch.
        // SAFETY: kill(2) on our own child's pid; no memory is passed.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

pub async fn webhooks(
    options: &WebhookBenchOptions,
    progress: impl Fn(&str),
) -> Result<WebhookBenchReport, BenchError> {
    let mut runs = Vec::new();
    for run in 0..options.runs.max(1) {
        progress(&format!("run {}/{}", run + 1, options.runs.max(1)));
        runs.push(one_run(options, run as u64).await?);
    }
    let median = median_figures(&runs);
    Ok(WebhookBenchReport { runs, median })
}

async fn one_run(options: &WebhookBenchOptions, run: u64) -> Result<RunFigures, BenchError> {
    let dir = std::env::temp_dir().join(format!("payops-bench-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = Server::start(&dir)?;
    let client = HttpClient::default();
    let day = NaiveDate::parse_from_str(BENCH_DAY, "%Y-%m-%d")
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let n = options.events;

    // Phase 1: the burst, with processing running alongside.
    let burst = bodies(run * 2, n, day);
    let cpu_start = server.cpu_seconds();
    let started = Instant::now();
    let accepted = send_all(&client, &server.base_url, burst, options.concurrency).await?;
    let accept_seconds = started.elapsed().as_secs_f64();
    let (stored, duplicates) = wait_stored(&client, &server.base_url, accepted as u64).await?;
    let stored_seconds = started.elapsed().as_secs_f64();
    let cpu_burst = server.cpu_seconds() - cpu_start;

    // Phase 2: the same burst with pollers paused, then drained, to split the CPU.
    client
        .post_json(
            &format!("{}/ops/pollers/pause", server.base_url),
            &[],
            Bytes::new(),
        )
        .await?;
    let more = bodies(run * 2 + 1, n, day);
    let cpu_before_webhooks = server.cpu_seconds();
    let accepted_more = send_all(&client, &server.base_url, more, options.concurrency).await?;
    let cpu_webhooks = server.cpu_seconds() - cpu_before_webhooks;
    client
        .post_json(
            &format!("{}/ops/pollers/resume", server.base_url),
            &[],
            Bytes::new(),
        )
        .await?;
    wait_stored(&client, &server.base_url, (accepted + accepted_more) as u64).await?;
    let cpu_processor = server.cpu_seconds() - cpu_before_webhooks - cpu_webhooks;

    let per_event_us = |cpu: f64, events: usize| cpu * 1e6 / events.max(1) as f64;
    Ok(RunFigures {
        events: n,
        accepted,
        accept_seconds,
        accept_rate_per_second: accepted as f64 / accept_seconds.max(1e-9),
        stored_seconds,
        stored,
        duplicates,
        server_cpu_us_per_event: per_event_us(cpu_burst, accepted),
        webhook_cpu_us_per_event: per_event_us(cpu_webhooks, accepted_more),
        processor_cpu_us_per_event: per_event_us(cpu_processor, accepted_more),
    })
}

fn bodies(seed: u64, n: usize, day: NaiveDate) -> Vec<Bytes> {
    let mut rng = Rng::new(seed);
    (0..n as u64)
        .map(|i| Bytes::from(payment_event_body(&mut rng, seed, i, day).to_string()))
        .collect()
}

/// Sends every body with at most `concurrency` requests in flight; returns how many got 202.
pub async fn send_all(
    client: &HttpClient,
    base_url: &str,
    bodies: Vec<Bytes>,
    concurrency: usize,
) -> Result<usize, BenchError> {
    let url = Arc::new(format!("{base_url}/webhooks/payment-events"));
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = limit.clone().acquire_owned().await.expect("semaphore open");
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let t = chrono::Utc::now().timestamp();
            let signature = sign(BENCH_SECRET.as_bytes(), t, &body);
            client
                .post_json(&url, &[(SIGNATURE_HEADER, &signature)], body)
                .await
                .map(|r| r.status)
        });
    }
    let mut accepted = 0;
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(202)) => accepted += 1,
            Ok(Ok(status)) => return Err(BenchError::Failed(format!("webhook answered {status}"))),
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(BenchError::Failed(e.to_string())),
        }
    }
    Ok(accepted)
}

/// Polls the day's counts until `expected` events are stored; returns (stored, duplicates).
async fn wait_stored(
    client: &HttpClient,
    base_url: &str,
    expected: u64,
) -> Result<(u64, u64), BenchError> {
    let url = format!("{base_url}/payment-events?date={BENCH_DAY}");
    let deadline = Instant::now() + Duration::from_millis(STORE_TIMEOUT_MS);
    loop {
        let day = client.get(&url).await?.json()?;
        let count = day["count"].as_u64().unwrap_or(0);
        let duplicates = day["duplicates_ignored"].as_u64().unwrap_or(0);
        if count >= expected {
            return Ok((count, duplicates));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Failed(format!(
                "only {count} of {expected} stored in time"
            )));
        }
        tokio::time::sleep(Duration::from_millis(STORE_POLL_MS)).await;
    }
}

/// The median of benchmark figures (the upper middle for an even count; 0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn median_figures(runs: &[RunFigures]) -> RunFigures {
    let m = |f: fn(&RunFigures) -> f64| median(runs.iter().map(f).collect());
    RunFigures {
        events: runs.first().map_or(0, |r| r.events),
        accepted: runs.iter().map(|r| r.accepted).min().unwrap_or(0),
        accept_seconds: m(|r| r.accept_seconds),
        accept_rate_per_second: m(|r| r.accept_rate_per_second),
        stored_seconds: m(|r| r.stored_seconds),
        stored: runs.iter().map(|r| r.stored).min().unwrap_or(0),
        duplicates: runs.iter().map(|r| r.duplicates).max().unwrap_or(0),
        server_cpu_us_per_event: m(|r| r.server_cpu_us_per_event),
        webhook_cpu_us_per_event: m(|r| r.webhook_cpu_us_per_event),
        processor_cpu_us_per_event: m(|r| r.processor_cpu_us_per_event),
    }
}
