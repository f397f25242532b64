//! `payops bench transfers`: transfers through the accounts HTTP API of a real `payops up`
//! process on loopback, from a fixed number of concurrent clients. Reports transfers per
//! second, latency percentiles and CPU time per transfer, as medians of runs, and checks
//! afterwards that every transfer succeeded and the total of the balances did not change.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::bench::{BenchError, Server, process_cpu_seconds};
use crate::client::HttpClient;
use crate::generate::Rng;

/// Accounts the transfers move money between: enough that transfers rarely touch the same
/// pair at once, as in a real book.
pub const BENCH_ACCOUNTS: usize = 1_000;
/// Every account's opening balance, far above what the transfers can take from it, so that
/// every transfer succeeds and its cost is the cost of a successful transfer.
pub const BENCH_BALANCE: i64 = 1_000_000_000;
/// Largest transfer, in cents.
pub const TRANSFER_CENTS_MAX: u64 = 10_000;
/// Transfers sent before the measured ones (connections, caches, the first pages of SQLite).
pub const WARMUP_TRANSFERS: usize = 2_000;
/// Concurrent requests while accounts are opened and read back.
const SETUP_CONCURRENCY: usize = 32;
const ACCOUNTS_PATH: &str = "/api/v1/accounts";
const TRANSACTION_PATH: &str = "/api/v1/transaction";

#[derive(Debug, Clone)]
pub struct TransferBenchOptions {
    pub clients: usize,
    pub transfers: usize,
    pub runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransferRunFigures {
    pub transfers: usize,
    pub clients: usize,
    pub seconds: f64,
    pub transfers_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Server CPU (user + system) per transfer.
    pub server_cpu_us_per_transfer: f64,
    /// This process's CPU per transfer: the HTTP clients share the machine with the server.
    pub client_cpu_us_per_transfer: f64,
}

#[derive(Debug, Serialize)]
pub struct TransferBenchReport {
    pub accounts: usize,
    pub warmup_transfers: usize,
    pub runs: Vec<TransferRunFigures>,
    pub median: TransferRunFigures,
}

pub async fn transfers(
    options: &TransferBenchOptions,
    progress: impl Fn(&str),
) -> Result<TransferBenchReport, BenchError> {
    let runs_wanted = options.runs.max(1);
    let mut runs = Vec::with_capacity(runs_wanted);
    for run in 0..runs_wanted {
        progress(&format!("run {}/{runs_wanted}", run + 1));
        runs.push(one_run(options, run as u64).await?);
    }
    let median = median_figures(&runs);
    Ok(TransferBenchReport {
        accounts: BENCH_ACCOUNTS,
        warmup_transfers: WARMUP_TRANSFERS,
        runs,
        median,
    })
}

fn account_id(run: u64, i: usize) -> String {
    format!("bench-{run}-{i:05}")
}

async fn one_run(
    options: &TransferBenchOptions,
    run: u64,
) -> Result<TransferRunFigures, BenchError> {
    let dir = std::env::temp_dir().join(format!(
        "payops-bench-transfers-{}-{run}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let server = Server::start(&dir)?;
    let client = HttpClient::default();
    let base = Arc::new(server.base_url.clone());
    open_accounts(&client, &base, run).await?;

    let clients = options.clients.max(1);
    send_transfers(
        &client,
        &base,
        run,
        Phase::Warmup,
        WARMUP_TRANSFERS,
        clients,
    )
    .await?;
    let cpu_server = server.cpu_seconds();
    let cpu_client = own_cpu_seconds();
    let started = Instant::now();
    let mut latencies_us = send_transfers(
        &client,
        &base,
        run,
        Phase::Measured,
        options.transfers,
        clients,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = server.cpu_seconds() - cpu_server;
    let client_cpu = own_cpu_seconds() - cpu_client;

    check_conserved(&client, &base, run).await?;
    latencies_us.sort_unstable();
    let n = latencies_us.len().max(1) as f64;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(TransferRunFigures {
        transfers: latencies_us.len(),
        clients,
        seconds,
        transfers_per_second: latencies_us.len() as f64 / seconds.max(1e-9),
        p50_ms: ms(percentile(&latencies_us, 50)),
        p99_ms: ms(percentile(&latencies_us, 99)),
        max_ms: ms(latencies_us.last().copied().unwrap_or(0)),
        server_cpu_us_per_transfer: server_cpu * 1e6 / n,
        client_cpu_us_per_transfer: client_cpu * 1e6 / n,
    })
}

fn own_cpu_seconds() -> f64 {
    process_cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// The value below which `pct` percent of the sorted `values` fall (nearest rank).
fn percentile(sorted: &[u64], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Runs `f(i)` for `i in 0..n` with at most `concurrency` at once; stops at the first error.
async fn for_each_concurrently<F, Fut>(n: usize, concurrency: usize, f: F) -> Result<(), BenchError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BenchError>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let mut tasks: tokio::task::JoinSet<Result<(), BenchError>> = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, f) = (next.clone(), f.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                f(i).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| BenchError::Failed(e.to_string()))??;
    }
    Ok(())
}

async fn open_accounts(
    client: &HttpClient,
    base: &Arc<String>,
    run: u64,
) -> Result<(), BenchError> {
    let (client, base) = (client.clone(), base.clone());
    for_each_concurrently(BENCH_ACCOUNTS, SETUP_CONCURRENCY, move |i| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let body = format!(
                r#"{{"account_id":"{}","balance":"{BENCH_BALANCE}"}}"#,
                account_id(run, i)
            );
            let r = client
                .post_json(&format!("{base}{ACCOUNTS_PATH}"), &[], Bytes::from(body))
                .await?;
            if r.status != 201 {
                return Err(BenchError::Failed(format!(
                    "opening an account answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )));
            }
            Ok(())
        }
    })
    .await
}

/// The warm-up and the measured phase of a run.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Warmup,
    Measured,
}

/// Transfer `i` of a run's phase: its body and its unique idempotency key.
fn transfer(run: u64, phase: Phase, i: usize) -> (Bytes, String) {
    let phase_seed = match phase {
        Phase::Warmup => 1,
        Phase::Measured => 2,
    };
    let mut rng = Rng::new((run << 40) ^ (phase_seed << 32) ^ i as u64);
    let src = rng.below(BENCH_ACCOUNTS as u64) as usize;
    let dst = (src + 1 + rng.below(BENCH_ACCOUNTS as u64 - 1) as usize) % BENCH_ACCOUNTS;
    let amount = Decimal::new(1 + rng.below(TRANSFER_CENTS_MAX) as i64, 2);
    let direction = if rng.below(2) == 0 { "debit" } else { "credit" };
    let body = format!(
        r#"{{"src_account_id":"{}","dst_account_id":"{}","amount":"{amount}","direction":"{direction}"}}"#,
        account_id(run, src),
        account_id(run, dst)
    );
    (Bytes::from(body), format!("bench-{run}-{phase:?}-{i}"))
}

/// Sends `n` transfers from `clients` concurrent clients, each request with its own
/// `Idempotency-Key` (the realistic path: four writes per transfer). Returns each transfer's
/// latency in µs. Every transfer must succeed: the balances are far larger than the amounts.
async fn send_transfers(
    client: &HttpClient,
    base: &Arc<String>,
    run: u64,
    phase: Phase,
    n: usize,
    clients: usize,
) -> Result<Vec<u64>, BenchError> {
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let (client, base, sink) = (client.clone(), base.clone(), latencies.clone());
    for_each_concurrently(n, clients, move |i| {
        let (client, base, sink) = (client.clone(), base.clone(), sink.clone());
        async move {
            let (body, key) = transfer(run, phase, i);
            let url = format!("{base}{TRANSACTION_PATH}");
            let sent = Instant::now();
            let r = client
                .post_json(&url, &[("Idempotency-Key", &key)], body)
                .await?;
            let us = sent.elapsed().as_micros() as u64;
            let ok = r.status == 201 && r.json().is_ok_and(|j| j["status"] == "success");
            if !ok {
                return Err(BenchError::Failed(format!(
                    "a transfer answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )));
            }
            // A poisoned lock only means another task panicked; the vector is still valid.
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(us);
            Ok(())
        }
    })
    .await?;
    let mut latencies = latencies.lock().unwrap_or_else(|e| e.into_inner());
    Ok(std::mem::take(&mut *latencies))
}

/// Transfers move money between accounts: the total must be what was opened.
async fn check_conserved(
    client: &HttpClient,
    base: &Arc<String>,
    run: u64,
) -> Result<(), BenchError> {
    let total = Arc::new(std::sync::Mutex::new(Decimal::ZERO));
    let (client2, base2, sum) = (client.clone(), base.clone(), total.clone());
    for_each_concurrently(BENCH_ACCOUNTS, SETUP_CONCURRENCY, move |i| {
        let (client, base, sum) = (client2.clone(), base2.clone(), sum.clone());
        async move {
            let r = client
                .get(&format!("{base}{ACCOUNTS_PATH}/{}", account_id(run, i)))
                .await?;
            let balance = r.json()?["balance"]
                .as_str()
                .and_then(|b| Decimal::from_str_exact(b).ok())
                .ok_or_else(|| BenchError::Failed(format!("account {i} has no balance")))?;
            if balance < Decimal::ZERO {
                return Err(BenchError::Failed(format!("account {i} is negative")));
            }
            *sum.lock().unwrap_or_else(|e| e.into_inner()) += balance;
            Ok(())
        }
    })
    .await?;
    let total = *total.lock().unwrap_or_else(|e| e.into_inner());
    let opened = Decimal::from(BENCH_BALANCE) * Decimal::from(BENCH_ACCOUNTS);
    if total != opened {
        return Err(BenchError::Failed(format!(
            "the balances add up to {total}, not the {opened} opened"
        )));
    }
    Ok(())
}

fn median_figures(runs: &[TransferRunFigures]) -> TransferRunFigures {
    let m = |f: fn(&TransferRunFigures) -> f64| crate::bench::median(runs.iter().map(f).collect());
    TransferRunFigures {
        transfers: runs.first().map_or(0, |r| r.transfers),
        clients: runs.first().map_or(0, |r| r.clients),
        seconds: m(|r| r.seconds),
        transfers_per_second: m(|r| r.transfers_per_second),
        p50_ms: m(|r| r.p50_ms),
        p99_ms: m(|r| r.p99_ms),
        max_ms: m(|r| r.max_ms),
        server_cpu_us_per_transfer: m(|r| r.server_cpu_us_per_transfer),
        client_cpu_us_per_transfer: m(|r| r.client_cpu_us_per_transfer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), 50);
        assert_eq!(percentile(&values, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 99), 0);
    }

    #[test]
    fn transfers_are_between_two_accounts_of_the_run_with_unique_keys() {
        let (a, ka) = transfer(3, Phase::Measured, 1);
        let (_, kb) = transfer(3, Phase::Warmup, 1);
        assert_ne!(ka, kb);
        let body: serde_json::Value = serde_json::from_slice(&a).expect("JSON");
        assert_ne!(body["src_account_id"], body["dst_account_id"]);
        assert!(
            body["src_account_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("bench-3-"))
        );
    }
}
