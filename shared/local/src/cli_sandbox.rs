//! `payops sandbox`: the payment provider's sandbox on its own, and the `--provider-*` flags
//! that configure it (also accepted by `payops up`, which starts one next to the functions).

use std::path::Path;
use std::sync::Arc;

use clap::{Args, Parser};
use payops_app::ports::provider::{
    PROVIDER_RATE_PAYMENTS_PER_MIN_ENV, PROVIDER_RATE_WRITES_PER_MIN_ENV,
};
use payops_app::ports::{Clock, SystemClock};
use payops_app::provider_limiter::{Rate, RateLimits};
use payops_app::resources::WEBHOOK_SECRET_ENV;
use payops_core::Secret;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::env::DEV_WEBHOOK_SECRET;
use crate::sandbox::{
    self, DEFAULT_SANDBOX_PORT, DEV_PROVIDER_API_KEY, Lifecycle, PPM, Sandbox, SandboxConfig,
    SandboxError, WEBHOOK_CONCURRENCY_DEFAULT, WEBHOOK_CONCURRENCY_MAX,
    WEBHOOK_EVENTS_PER_DELIVERY_MAX, WebhookOptions,
};

/// The sandbox's API key variable (the client reads `PAYOPS_PROVIDER_API_KEY`).
pub const SANDBOX_API_KEY_ENV: &str = payops_app::ports::provider::PROVIDER_API_KEY_ENV;

/// The provider sandbox's configuration. Every flag has an environment variable, so that the
/// rates seen by the sandbox and by the callers' limiter come from one place.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// The sandbox's port (default: 0 when `payops up --port 0`, else 3001).
    #[arg(
        id = "provider_sandbox_port",
        long = "provider-sandbox-port",
        env = "PAYOPS_PROVIDER_SANDBOX_PORT"
    )]
    pub port: Option<u16>,
    /// Do not start a sandbox (point PAYOPS_PROVIDER_URL at a provider instead).
    #[arg(long = "no-provider-sandbox", env = "PAYOPS_NO_PROVIDER_SANDBOX")]
    pub disabled: bool,
    /// Keep the sandbox's books in memory only: no journal in the data directory, and a
    /// restart starts from empty books (for throwaway runs, such as benchmarks).
    #[arg(
        long = "provider-sandbox-in-memory",
        env = "PAYOPS_PROVIDER_SANDBOX_IN_MEMORY"
    )]
    pub in_memory: bool,
    /// Payments created per minute before 429 (0: unlimited).
    #[arg(long = "provider-rate-payments-per-min", env = PROVIDER_RATE_PAYMENTS_PER_MIN_ENV, default_value_t = 0)]
    pub payments_per_min: u32,
    /// Entity and account writes per minute before 429 (0: unlimited).
    #[arg(long = "provider-rate-writes-per-min", env = PROVIDER_RATE_WRITES_PER_MIN_ENV, default_value_t = 0)]
    pub writes_per_min: u32,
    /// Reads per minute before 429 (0: unlimited).
    #[arg(
        long = "provider-rate-reads-per-min",
        env = "PAYOPS_PROVIDER_RATE_READS_PER_MIN",
        default_value_t = 0
    )]
    pub reads_per_min: u32,
    /// Fraction of payments that fail instead of settling, e.g. 0.02.
    #[arg(long = "provider-failure-rate", env = "PAYOPS_PROVIDER_FAILURE_RATE", default_value = "0", value_parser = parse_fraction)]
    pub failure_ppm: u64,
    /// Fraction of requests answered 503 (half of the POSTs among them are done first).
    #[arg(long = "provider-transient-rate", env = "PAYOPS_PROVIDER_TRANSIENT_RATE", default_value = "0", value_parser = parse_fraction)]
    pub transient_ppm: u64,
    /// Fraction of payments the provider cancels while pending, e.g. 0.01.
    #[arg(long = "provider-cancel-rate", env = "PAYOPS_PROVIDER_CANCEL_RATE", default_value = "0", value_parser = parse_fraction)]
    pub cancel_ppm: u64,
    /// Fraction of settled payments reversed later (an ACH return), e.g. 0.01.
    #[arg(long = "provider-reversal-rate", env = "PAYOPS_PROVIDER_REVERSAL_RATE", default_value = "0", value_parser = parse_fraction)]
    pub reversal_ppm: u64,
    /// settled → reversed after this many ms (for the reversed ones).
    #[arg(long = "provider-reversed-after-ms", env = "PAYOPS_PROVIDER_REVERSED_AFTER_MS", default_value_t = Lifecycle::default().reversed_after_ms)]
    pub reversed_after_ms: i64,
    /// pending → processing after this many ms.
    #[arg(long = "provider-processing-after-ms", env = "PAYOPS_PROVIDER_PROCESSING_AFTER_MS", default_value_t = Lifecycle::default().processing_after_ms)]
    pub processing_after_ms: i64,
    /// processing → sent (or failed) after this many ms.
    #[arg(long = "provider-sent-after-ms", env = "PAYOPS_PROVIDER_SENT_AFTER_MS", default_value_t = Lifecycle::default().sent_after_ms)]
    pub sent_after_ms: i64,
    /// sent → settled after this many ms.
    #[arg(long = "provider-settled-after-ms", env = "PAYOPS_PROVIDER_SETTLED_AFTER_MS", default_value_t = Lifecycle::default().settled_after_ms)]
    pub settled_after_ms: i64,
    /// Fraction of webhooks delivered twice.
    #[arg(long = "provider-webhook-duplicate-rate", env = "PAYOPS_PROVIDER_WEBHOOK_DUPLICATE_RATE", default_value = "0", value_parser = parse_fraction)]
    pub webhook_duplicate_ppm: u64,
    /// Webhooks are held back a random time up to this and shuffled (0: in order).
    #[arg(
        long = "provider-webhook-reorder-ms",
        env = "PAYOPS_PROVIDER_WEBHOOK_REORDER_MS",
        default_value_t = 0
    )]
    pub webhook_reorder_ms: i64,
    /// Webhooks in flight at once (a provider's delivery parallelism).
    #[arg(
        long = "provider-webhook-concurrency",
        env = "PAYOPS_PROVIDER_WEBHOOK_CONCURRENCY",
        default_value_t = WEBHOOK_CONCURRENCY_DEFAULT as u16,
        value_parser = clap::value_parser!(u16).range(1..=(WEBHOOK_CONCURRENCY_MAX as i64))
    )]
    pub webhook_concurrency: u16,
    /// Events sent together in one webhook delivery, as a JSON array (1: each alone).
    #[arg(
        long = "provider-webhook-events-per-delivery",
        env = "PAYOPS_PROVIDER_WEBHOOK_EVENTS_PER_DELIVERY",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=(WEBHOOK_EVENTS_PER_DELIVERY_MAX as i64))
    )]
    pub webhook_events_per_delivery: u16,
    /// Seed of the sandbox's coin flips.
    #[arg(
        long = "provider-seed",
        env = "PAYOPS_PROVIDER_SEED",
        default_value_t = 0x5EED
    )]
    pub seed: u64,
}

/// The flags read from the environment only (for `payops up` started in-process).
#[derive(Parser, Debug)]
struct EnvOnly {
    #[command(flatten)]
    args: SandboxArgs,
}

/// Parses a fraction `0..=1` (e.g. `0.02` or `2%`) exactly, into parts per million.
pub fn parse_fraction(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), Decimal::from(100)),
        None => (t, Decimal::ONE),
    };
    let d: Decimal = number
        .parse()
        .map_err(|_| format!("{text:?} is not a fraction such as 0.02 or 2%"))?;
    let fraction = d / scale;
    if fraction < Decimal::ZERO || fraction > Decimal::ONE {
        return Err(format!("{text:?} must be between 0 and 1 (0% and 100%)"));
    }
    (fraction * Decimal::from(PPM))
        .round()
        .to_u64()
        .ok_or_else(|| format!("{text:?} is out of range"))
}

impl SandboxArgs {
    /// The flags' values from the environment alone, defaults elsewhere.
    pub fn from_env() -> Result<SandboxArgs, String> {
        EnvOnly::try_parse_from(["payops"])
            .map(|e| e.args)
            .map_err(|e| e.to_string())
    }

    pub fn limits(&self) -> RateLimits {
        let rate = |per_min: u32| (per_min > 0).then(|| Rate::provider_default(per_min));
        RateLimits {
            payments: rate(self.payments_per_min),
            writes: rate(self.writes_per_min),
            reads: rate(self.reads_per_min),
        }
    }

    /// The sandbox's configuration; the state file goes in `data_dir` when given.
    pub fn config(&self, data_dir: Option<&Path>) -> SandboxConfig {
        let secret = std::env::var(WEBHOOK_SECRET_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEV_WEBHOOK_SECRET.to_owned());
        let api_key = std::env::var(SANDBOX_API_KEY_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEV_PROVIDER_API_KEY.to_owned());
        SandboxConfig {
            api_key: Secret::new(api_key),
            webhook_url: None,
            webhook_secret: Secret::new(secret),
            limits: self.limits(),
            lifecycle: Lifecycle {
                processing_after_ms: self.processing_after_ms.max(0),
                sent_after_ms: self.sent_after_ms.max(0),
                settled_after_ms: self.settled_after_ms.max(0),
                failure_ppm: self.failure_ppm,
                cancel_ppm: self.cancel_ppm,
                reversal_ppm: self.reversal_ppm,
                reversed_after_ms: self.reversed_after_ms.max(0),
            },
            transient_ppm: self.transient_ppm,
            webhooks: WebhookOptions {
                duplicate_ppm: self.webhook_duplicate_ppm,
                reorder_window_ms: self.webhook_reorder_ms.max(0),
                concurrency: usize::from(self.webhook_concurrency),
                events_per_delivery: usize::from(self.webhook_events_per_delivery),
            },
            seed: self.seed,
            state_file: data_dir
                .filter(|_| !self.in_memory)
                .map(|d| d.join(sandbox::STATE_FILE_NAME)),
        }
    }
}

/// `payops sandbox`.
#[derive(Args, Debug)]
pub struct SandboxCommand {
    #[command(flatten)]
    pub provider: SandboxArgs,
    /// Where webhooks go, e.g. http://127.0.0.1:3000/webhooks/provider.
    #[arg(long = "webhook-url", env = "PAYOPS_PROVIDER_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Keep the state in memory only (no state file in --data).
    #[arg(long)]
    pub ephemeral: bool,
}

/// Runs the sandbox until Ctrl-C or SIGTERM.
pub async fn run(cmd: SandboxCommand, data_dir: &Path) -> Result<(), SandboxError> {
    if !cmd.ephemeral {
        let _ = std::fs::create_dir_all(data_dir);
    }
    let mut config = cmd.provider.config((!cmd.ephemeral).then_some(data_dir));
    config.webhook_url = cmd.webhook_url.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sandbox = Sandbox::new(config, clock)?;
    let running = sandbox::serve(
        sandbox,
        cmd.provider.port.unwrap_or(DEFAULT_SANDBOX_PORT),
        true,
    )
    .await?;
    println!("payops sandbox: provider sandbox on {}", running.url());
    match &cmd.webhook_url {
        Some(url) => println!("payops sandbox: webhooks to {url}"),
        None => println!("payops sandbox: no --webhook-url; webhooks stay queued"),
    }
    shutdown_signal().await;
    running.stop().await
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_takes_the_provider_flags_next_to_its_own_port() {
        use clap::CommandFactory;
        // Duplicate argument ids (both `port`) are caught here rather than at run time.
        crate::cli::Cli::command().debug_assert();
        let cli = crate::cli::Cli::try_parse_from([
            "payops",
            "up",
            "--port",
            "0",
            "--provider-sandbox-port",
            "4001",
            "--provider-rate-payments-per-min",
            "60",
            "--provider-failure-rate",
            "1%",
        ])
        .unwrap();
        let crate::cli::Command::Up { port, provider } = cli.command else {
            panic!("not up: {:?}", cli.command);
        };
        assert_eq!(port, 0);
        assert_eq!(provider.port, Some(4001));
        assert_eq!(provider.failure_ppm, 10_000);
        assert_eq!(provider.limits().payments, Some(Rate::per_min(60, 1)));
        assert_eq!(provider.limits().writes, None);
    }

    #[test]
    fn fractions_parse_exactly_into_ppm() {
        assert_eq!(parse_fraction("0"), Ok(0));
        assert_eq!(parse_fraction("0.02"), Ok(20_000));
        assert_eq!(parse_fraction("2%"), Ok(20_000));
        assert_eq!(parse_fraction("1"), Ok(PPM));
        assert!(parse_fraction("1.5").is_err());
        assert!(parse_fraction("-0.1").is_err());
        assert!(parse_fraction("abc").is_err());
    }
}
