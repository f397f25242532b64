//! `payops bench provider`: payments created against a throttled provider sandbox on
//! loopback, by concurrent workers that share one rate limiter in the embedded table (as the
//! payment Lambdas share one in DynamoDB). Checks that the achieved rate is within
//! [`RATE_TOLERANCE_PERCENT`] of the allowed rate and that the sandbox answered no 429 (no
//! request over the limit). Reports medians of runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use clap::Args;
use payops_app::ports::provider::{
    AccountDetails, AchAccount, Corporation, CreateAccount, CreateEntity, CreatePayment,
    EntityDetails, IdempotencyKey, Individual, Liability, PaymentProvider, PostalAddress,
};
use payops_app::ports::{Clock, SystemClock, TableSpec};
use payops_app::provider_http::HttpProvider;
use payops_app::provider_limiter::{
    Backoff, LimitedProvider, Rate, RateLimits, SharedLimiter, SplitMix64, TokioSleeper,
};
use payops_core::{Currency, Money, Secret};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::sandbox::{self, Sandbox, SandboxConfig};
use crate::store::LocalStore;

/// How far the achieved rate may be from the allowed one.
pub const RATE_TOLERANCE_PERCENT: u32 = 5;

#[derive(Args, Debug, Clone)]
pub struct ProviderBenchArgs {
    /// The sandbox's allowed payments per minute.
    #[arg(long, default_value_t = 3_000)]
    pub rate_per_min: u32,
    /// Seconds of each run.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Concurrent workers sharing the limiter.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub payments: u64,
    pub elapsed_s: String,
    /// Payments per minute beyond the initial burst, over the run.
    pub achieved_per_min: String,
    pub rate_limited: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderBenchReport {
    pub allowed_per_min: u32,
    pub burst: u32,
    pub workers: usize,
    pub seconds: u64,
    pub runs: Vec<RunFigures>,
    pub median_achieved_per_min: String,
    /// (achieved − allowed) / allowed, in percent, of the median run.
    pub median_deviation_percent: String,
    pub total_rate_limited: u64,
    pub pass: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderBenchError {
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("provider: {0}")]
    Provider(#[from] payops_app::ports::ProviderError),
    #[error("setup: {0}")]
    Setup(String),
}

pub async fn run(args: &ProviderBenchArgs) -> Result<ProviderBenchReport, ProviderBenchError> {
    let mut runs = Vec::new();
    for _ in 0..args.runs.max(1) {
        runs.push(one_run(args).await?);
    }
    let rate = Rate::provider_default(args.rate_per_min);
    let mut achieved: Vec<Decimal> = runs
        .iter()
        .map(|r| r.achieved_per_min.parse().unwrap_or_default())
        .collect();
    achieved.sort();
    let median = achieved[achieved.len() / 2];
    let allowed = Decimal::from(args.rate_per_min);
    let deviation = ((median - allowed) / allowed * Decimal::from(100)).round_dp(2);
    let total_rate_limited = runs.iter().map(|r| r.rate_limited).sum();
    Ok(ProviderBenchReport {
        allowed_per_min: args.rate_per_min,
        burst: rate.burst,
        workers: args.workers,
        seconds: args.seconds,
        median_achieved_per_min: median.round_dp(1).to_string(),
        median_deviation_percent: deviation.to_string(),
        pass: deviation.abs() <= Decimal::from(RATE_TOLERANCE_PERCENT) && total_rate_limited == 0,
        total_rate_limited,
        runs,
    })
}

async fn one_run(args: &ProviderBenchArgs) -> Result<RunFigures, ProviderBenchError> {
    let setup = |e: &dyn std::fmt::Display| ProviderBenchError::Setup(e.to_string());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = std::env::temp_dir().join(format!("payops-bench-provider-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| setup(&e))?;
    let limits = RateLimits {
        payments: Some(Rate::provider_default(args.rate_per_min)),
        writes: None,
        reads: None,
    };
    let mut config = SandboxConfig::new(Secret::new("whsec_bench".to_owned()));
    config.limits = limits;
    let api_key = config.api_key.clone();
    let running = sandbox::serve(Sandbox::new(config, clock.clone())?, 0, false).await?;
    let result = drive(args, &running.url(), api_key, limits, clock, &dir).await;
    let stats = running.sandbox.stats();
    running.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let (payments, errors, elapsed) = result?;
    let burst = Decimal::from(limits.payments.map(|r| r.burst).unwrap_or(0));
    let elapsed_s = Decimal::from(elapsed.as_millis() as u64) / Decimal::from(1000);
    let achieved =
        (Decimal::from(payments) - burst).max(Decimal::ZERO) * Decimal::from(60) / elapsed_s;
    Ok(RunFigures {
        payments,
        elapsed_s: elapsed_s.round_dp(3).to_string(),
        achieved_per_min: achieved.round_dp(1).to_string(),
        rate_limited: stats.payments.rate_limited,
        errors,
    })
}

/// Makes one payer and one payee, then has the workers create payments until the time is up.
/// Returns (payments created, errors, elapsed).
async fn drive(
    args: &ProviderBenchArgs,
    url: &str,
    api_key: Secret<String>,
    limits: RateLimits,
    clock: Arc<dyn Clock>,
    dir: &std::path::Path,
) -> Result<(u64, u64, Duration), ProviderBenchError> {
    let http = HttpProvider::new(url, api_key)?;
    let (source, destination) = accounts(&http).await?;
    let store = LocalStore::open(dir, clock.clone())
        .map_err(|e| ProviderBenchError::Setup(e.to_string()))?;
    let table = store
        .table(TableSpec::new("bench-provider"))
        .map_err(|e| ProviderBenchError::Setup(e.to_string()))?;
    let limiter = SharedLimiter::new(table, clock, limits.for_callers());
    let provider = Arc::new(LimitedProvider::new(
        Arc::new(http),
        limiter,
        Backoff::default(),
        Arc::new(TokioSleeper),
        Arc::new(SplitMix64::from_entropy()),
    ));
    let created = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let amount = Money::new(Decimal::new(1234, 2), Currency::USD)
        .map_err(|e| ProviderBenchError::Setup(e.to_string()))?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.workers.max(1) {
        let (provider, created, errors, next) = (
            provider.clone(),
            created.clone(),
            errors.clone(),
            next.clone(),
        );
        let (source, destination) = (source.clone(), destination.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Ok(key) = IdempotencyKey::new(format!("bench-payment-{n}")) else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let request = CreatePayment {
                    idempotency_key: key,
                    source_id: source.clone(),
                    destination_id: destination.clone(),
                    amount,
                    external_id: Some(format!("bench-{n}")),
                    description: None,
                };
                match provider.create_payment(request).await {
                    Ok(_) => created.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    Ok((
        created.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        elapsed,
    ))
}

async fn accounts(
    http: &HttpProvider,
) -> Result<
    (
        payops_app::ports::provider::AccountId,
        payops_app::ports::provider::AccountId,
    ),
    ProviderBenchError,
> {
    let key = |k: &str| IdempotencyKey::new(k).map_err(ProviderBenchError::Provider);
    let payer = http
        .create_entity(CreateEntity {
            idempotency_key: Some(key("bench-payer")?),
            external_id: Some("CORP-bench".into()),
            details: EntityDetails::Corporation {
                corporation: Corporation {
                    name: "Bench Corp".into(),
                    dba: "Bench".into(),
                    ein: "123456789".into(),
                    address: PostalAddress {
                        line1: "1 Main St".into(),
                        city: "Boston".into(),
                        state: "MA".into(),
                        zip: "02110".into(),
                    },
                },
            },
        })
        .await?;
    let employee = http
        .create_entity(CreateEntity {
            idempotency_key: Some(key("bench-employee")?),
            external_id: Some("EMP-bench".into()),
            details: EntityDetails::Individual {
                individual: Individual {
                    first_name: Secret::new("Ana".into()),
                    last_name: Secret::new("Bench".into()),
                    date_of_birth: Secret::new(
                        NaiveDate::from_ymd_opt(1990, 1, 1)
                            .ok_or_else(|| ProviderBenchError::Setup("date".into()))?,
                    ),
                    phone: Secret::new("5550100".into()),
                },
            },
        })
        .await?;
    let source = http
        .create_account(CreateAccount {
            idempotency_key: Some(key("bench-source")?),
            holder_id: payer.id,
            external_id: None,
            details: AccountDetails::Ach {
                ach: AchAccount {
                    routing_number: Secret::new("011000015".into()),
                    account_number: Secret::new("000123456789".into()),
                },
            },
        })
        .await?;
    let destination = http
        .create_account(CreateAccount {
            idempotency_key: Some(key("bench-destination")?),
            holder_id: employee.id,
            external_id: None,
            details: AccountDetails::Liability {
                liability: Liability {
                    plaid_id: "ins_116248".into(),
                    loan_account_number: Secret::new("0099887766".into()),
                },
            },
        })
        .await?;
    Ok((source.id, destination.id))
}

pub fn print(report: &ProviderBenchReport) {
    println!(
        "provider bench: allowed {}/min (burst {}), {} workers, {} s per run",
        report.allowed_per_min, report.burst, report.workers, report.seconds
    );
    for (i, r) in report.runs.iter().enumerate() {
        println!(
            "  run {}: {} payments in {} s, {}/min beyond the burst, {} answered 429, {} errors",
            i + 1,
            r.payments,
            r.elapsed_s,
            r.achieved_per_min,
            r.rate_limited,
            r.errors
        );
    }
    println!(
        "  median {}/min ({}% from allowed), {} requests over the limit: {}",
        report.median_achieved_per_min,
        report.median_deviation_percent,
        report.total_rate_limited,
        if report.pass { "PASS" } else { "FAIL" }
    );
}
