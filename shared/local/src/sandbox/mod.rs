//! The payment provider's sandbox: the API of `payops_app::ports::provider` on loopback, so
//! that locally the real HTTP client, its retries and the shared rate limiter run for real.
//!
//! It creates entities and accounts, moves payments `pending` → `processing` → `sent` →
//! `settled` (or `failed`, at a configurable rate) after configurable delays, sends signed
//! webhooks (with retries, and optionally duplicated and reordered), answers 429 beyond its
//! per-class rate limits and 503 to a configurable fraction of requests. Time comes from a
//! `Clock`; the lifecycle and the deliveries move on [`Sandbox::tick`] and
//! [`Sandbox::deliver_due`], which `serve` calls on a timer and tests call by hand.
//!
//! State lives in memory and, when a state file is configured (`payops up` keeps it in the
//! data directory), what changed is appended to a journal every [`JOURNAL_FLUSH_INTERVAL_MS`]
//! and at stop ([`journal`]), so a restart of `payops up` keeps the provider's objects,
//! idempotency keys and undelivered webhooks.

pub mod journal;
pub mod rate;
pub mod server;
pub mod state;
pub mod webhooks;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use payops_app::ports::Clock;
use payops_app::ports::provider::{PaymentStatus, RateClass};
use payops_app::provider_limiter::RateLimits;
use payops_core::Secret;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::client::HttpClient;
pub use state::{Lifecycle, PPM, SandboxState};
pub use webhooks::{
    DeliveryStats, WEBHOOK_CONCURRENCY_DEFAULT, WEBHOOK_CONCURRENCY_MAX,
    WEBHOOK_EVENTS_PER_DELIVERY_MAX, WebhookOptions,
};

/// The API key the sandbox accepts unless told another (never valid anywhere else).
pub const DEV_PROVIDER_API_KEY: &str = "sk_sandbox_payops";
/// `payops sandbox` listens here unless told another port.
pub const DEFAULT_SANDBOX_PORT: u16 = 3001;
/// How often `serve` moves the lifecycle and sends due webhooks.
pub const TICK_INTERVAL_MS: u64 = 20;
/// How often `serve` appends what changed to the journal (what a crash can lose).
pub const JOURNAL_FLUSH_INTERVAL_MS: u64 = 100;
/// The state file's name in `payops up`'s data directory.
pub const STATE_FILE_NAME: &str = "provider-sandbox.json";

/// A small deterministic RNG (SplitMix64) for the sandbox's coin flips: seeded, so a test
/// with a seed sees the same failures every run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub api_key: Secret<String>,
    /// Where webhooks go (`POST /webhooks/provider` of `payops up`); `None` keeps them queued
    /// until [`Sandbox::set_webhook_url`].
    pub webhook_url: Option<String>,
    pub webhook_secret: Secret<String>,
    pub limits: RateLimits,
    pub lifecycle: Lifecycle,
    /// Requests answered 503, in parts per million. Half of the `POST`s among them are done
    /// before the 503 (the answer is "lost"), which only an idempotent retry gets right.
    pub transient_ppm: u64,
    pub webhooks: WebhookOptions,
    pub seed: u64,
    pub state_file: Option<PathBuf>,
}

impl SandboxConfig {
    /// Unlimited, no failures, the development key and secret, no state file.
    pub fn new(webhook_secret: Secret<String>) -> SandboxConfig {
        SandboxConfig {
            api_key: Secret::new(DEV_PROVIDER_API_KEY.to_owned()),
            webhook_url: None,
            webhook_secret,
            limits: RateLimits::UNLIMITED,
            lifecycle: Lifecycle::default(),
            transient_ppm: 0,
            webhooks: WebhookOptions::default(),
            seed: 0x5EED,
            state_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox state file {path}: {source}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// Requests per class, as the sandbox answered them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassStats {
    pub accepted: u64,
    pub rate_limited: u64,
    pub injected_failures: u64,
    /// Idempotent replays answered from the stored answer.
    pub replayed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStats {
    pub payments: ClassStats,
    pub writes: ClassStats,
    pub reads: ClassStats,
    pub payments_by_status: std::collections::BTreeMap<String, u64>,
    /// Status changes of payments still to come (0: every payment is in its last status).
    #[serde(default)]
    pub scheduled_changes: u64,
    pub webhooks: DeliveryStats,
}

impl SandboxStats {
    pub fn class_mut(&mut self, class: RateClass) -> &mut ClassStats {
        match class {
            RateClass::Payments => &mut self.payments,
            RateClass::Writes => &mut self.writes,
            RateClass::Reads => &mut self.reads,
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: SandboxConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) state: Mutex<SandboxState>,
    pub(crate) outbox: Mutex<webhooks::Outbox>,
    pub(crate) buckets: Mutex<rate::Buckets>,
    pub(crate) rng: Mutex<SplitMix>,
    pub(crate) stats: Mutex<SandboxStats>,
    target: Mutex<Option<webhooks::Target>>,
    client: HttpClient,
    /// The open journal, when there is a state file. Its lock also keeps two saves apart.
    journal: Mutex<Option<journal::Journal>>,
}

/// The sandbox: its state and behaviour, without the socket. Clone-cheap.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data is still consistent for our use
    // (every change under these locks is a single step).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sandbox {
    /// A sandbox with the state of `config.state_file` if it exists.
    pub fn new(config: SandboxConfig, clock: Arc<dyn Clock>) -> Result<Sandbox, SandboxError> {
        let (mut state, mut outbox, journal) = match &config.state_file {
            Some(path) => {
                let (snapshot, journal) = journal::open(path)?;
                (snapshot.state, snapshot.outbox, Some(journal))
            }
            None => Default::default(),
        };
        state.reindex();
        if journal.is_some() {
            state.changes().start();
            outbox.changes().start();
        }
        let target = config.webhook_url.clone().map(|url| webhooks::Target {
            url,
            secret: config.webhook_secret.clone(),
        });
        let now = clock.now();
        Ok(Sandbox {
            shared: Arc::new(Shared {
                buckets: Mutex::new(rate::Buckets::new(config.limits, now)),
                rng: Mutex::new(SplitMix::new(config.seed)),
                state: Mutex::new(state),
                outbox: Mutex::new(outbox),
                stats: Mutex::new(SandboxStats::default()),
                target: Mutex::new(target),
                client: HttpClient::default(),
                journal: Mutex::new(journal),
                config,
                clock,
            }),
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.shared.config
    }

    /// Where webhooks go from now on (queued ones included).
    pub fn set_webhook_url(&self, url: impl Into<String>) {
        *lock(&self.shared.target) = Some(webhooks::Target {
            url: url.into(),
            secret: self.shared.config.webhook_secret.clone(),
        });
    }

    /// Moves every payment whose next step is due now and queues its webhooks. Returns the
    /// number of status changes.
    pub fn tick(&self) -> usize {
        let now = self.shared.clock.now();
        // Lock order, everywhere: state, then rng, then outbox (the request handlers take
        // state then rng; taking rng first here deadlocked a tick against a request).
        let mut state = lock(&self.shared.state);
        let mut rng = lock(&self.shared.rng);
        let events = state.advance(now, &self.shared.config.lifecycle, &mut rng);
        drop(state);
        if !events.is_empty() {
            lock(&self.shared.outbox).enqueue(&events, now, &self.shared.config.webhooks, &mut rng);
        }
        events.len()
    }

    /// Sends the webhooks due now; returns how many were acknowledged. Without a webhook URL
    /// they stay queued.
    pub async fn deliver_due(&self) -> u64 {
        let Some(target) = lock(&self.shared.target).clone() else {
            return 0;
        };
        webhooks::deliver_due(
            &self.shared.outbox,
            &self.shared.rng,
            &target,
            &self.shared.config.webhooks,
            &self.shared.client,
            self.shared.clock.now(),
        )
        .await
    }

    /// Payment and entity/account write requests accepted so far: two counters, cheap to
    /// read often (unlike [`Sandbox::stats`], which counts every payment's status).
    pub fn accepted_counts(&self) -> (u64, u64) {
        let stats = lock(&self.shared.stats);
        (stats.payments.accepted, stats.writes.accepted)
    }

    /// True when no webhook is waiting to be delivered.
    pub fn outbox_is_empty(&self) -> bool {
        lock(&self.shared.outbox).is_empty()
    }

    pub fn stats(&self) -> SandboxStats {
        let mut stats = lock(&self.shared.stats).clone();
        stats.webhooks = lock(&self.shared.outbox).stats();
        let state = lock(&self.shared.state);
        stats.scheduled_changes = state.scheduled_changes();
        stats.payments_by_status = state
            .status_counts()
            .into_iter()
            .map(|(s, n): (PaymentStatus, u64)| (s.as_str().to_owned(), n))
            .collect();
        stats
    }

    /// Appends what changed since the last save to the journal (if there is a state file),
    /// and compacts the journal into a new snapshot when it has grown enough.
    pub fn save(&self) -> Result<(), SandboxError> {
        let mut journal = lock(&self.shared.journal);
        let Some(journal) = journal.as_mut() else {
            return Ok(());
        };
        // Both under their locks at once (state first, as everywhere), so that a line never
        // holds a status change without the webhook it queued, or the other way round.
        let pending = {
            let mut state = lock(&self.shared.state);
            let mut outbox = lock(&self.shared.outbox);
            let mut changes = state.changes().take();
            changes.extend(outbox.changes().take());
            journal::Pending {
                next_number: state.next_number(),
                next_seq: outbox.next_seq(),
                stats: outbox.stats(),
                changes,
            }
        };
        if pending.changes.is_empty() {
            return Ok(());
        }
        if journal.append(pending)? {
            let snapshot = {
                let mut state = lock(&self.shared.state);
                let mut outbox = lock(&self.shared.outbox);
                // The snapshot holds these changes: the journal starts again after it.
                state.changes().clear();
                outbox.changes().clear();
                journal::Snapshot {
                    generation: journal.next_generation(),
                    state: state.clone(),
                    outbox: outbox.clone(),
                }
            };
            journal.compact(&snapshot)?;
        }
        Ok(())
    }
}

/// A sandbox listening on 127.0.0.1.
pub struct RunningSandbox {
    pub addr: SocketAddr,
    pub sandbox: Sandbox,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    persister: Option<tokio::task::JoinHandle<()>>,
}

impl RunningSandbox {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and the ticker and saves the state.
    pub async fn stop(self) -> Result<(), SandboxError> {
        let _ = self.stop.send(true);
        for task in [self.ticker, self.persister].into_iter().flatten() {
            let _ = task.await;
        }
        let _ = self.server.await;
        self.sandbox.save()
    }
}

/// Serves `sandbox` on 127.0.0.1:`port` (0 picks a free port). With `ticking`, a timer calls
/// [`Sandbox::tick`] and [`Sandbox::deliver_due`] every [`TICK_INTERVAL_MS`], and another
/// saves what changed every [`JOURNAL_FLUSH_INTERVAL_MS`]; tests pass `false` and drive
/// them themselves.
pub async fn serve(
    sandbox: Sandbox,
    port: u16,
    ticking: bool,
) -> Result<RunningSandbox, SandboxError> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| SandboxError::Bind { port, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { port, source })?;
    let (stop, stopped) = watch::channel(false);
    let app = server::router(sandbox.clone());
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "provider sandbox server stopped");
        }
    });
    let ticker = ticking.then(|| tokio::spawn(run_ticker(sandbox.clone(), stopped.clone())));
    let persister = ticking.then(|| tokio::spawn(run_persister(sandbox.clone(), stopped)));
    Ok(RunningSandbox {
        addr,
        sandbox,
        stop,
        server,
        ticker,
        persister,
    })
}

async fn run_ticker(sandbox: Sandbox, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        sandbox.tick();
        sandbox.deliver_due().await;
    }
}

/// Saves on its own timer, so that neither waits for the other: a compaction never holds
/// up the lifecycle or the webhooks.
async fn run_persister(sandbox: Sandbox, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(JOURNAL_FLUSH_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let s = sandbox.clone();
        match tokio::task::spawn_blocking(move || s.save()).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "provider sandbox state not saved"),
            Err(e) => tracing::warn!(error = %e, "provider sandbox state not saved"),
            Ok(Ok(())) => {}
        }
    }
}
