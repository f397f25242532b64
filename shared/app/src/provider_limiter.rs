//! Keeping every caller under the provider's rate limits, and backing off when it says no.
//!
//! - [`SharedLimiter`]: one token bucket per rate class, stored as one item of a [`Table`]
//!   and changed only by a conditional write on its version, so any number of concurrent
//!   Lambdas together never take more than `burst + rate × elapsed` tokens.
//! - [`Backoff`]: exponential backoff with full jitter (a uniformly random wait up to the
//!   exponential bound, plus the provider's `Retry-After` on a 429), with an injectable RNG.
//! - [`LimitedProvider`]: a [`PaymentProvider`] decorator that takes a token before each call
//!   and retries retryable errors with the same idempotency key: what the payroll workers use.
//!
//! Time comes from the [`Clock`] port and waiting goes through a [`Sleeper`], so tests drive
//! both with a `ManualClock` and never sleep.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::ports::provider::{
    Account, CreateAccount, CreateEntity, CreatePayment, Entity, ListPayments,
    PROVIDER_RATE_PAYMENTS_PER_MIN_ENV, PROVIDER_RATE_WRITES_PER_MIN_ENV, Payment, PaymentId,
    PaymentPage, PaymentProvider, ProviderError, RateClass,
};
use crate::ports::{Clock, Condition, Item, Key, ManualClock, Table, TableError};
use crate::resources::{ResourceError, Resources};

/// Conditional-write attempts of one `try_acquire` before it reports contention as a wait.
pub const CONTENTION_ATTEMPTS_MAX: u32 = 16;
/// Default exponential backoff base and cap.
pub const BACKOFF_BASE_MS: u64 = 100;
pub const BACKOFF_CAP_MS: u64 = 20_000;
/// Attempts of one provider call (the first included) before the error goes to the caller,
/// whose queue retries later and dead-letters eventually.
pub const CALL_ATTEMPTS_MAX: u32 = 8;
/// The longest one wait for a token may be; longer waits are split so a worker notices a
/// stop. Also the wait reported when the table keeps losing the conditional write.
pub const TOKEN_WAIT_MS_MAX: u64 = 1_000;
/// Seconds of traffic a provider bucket holds by default (its burst).
pub const PROVIDER_BURST_SECONDS: u32 = 1;
/// Tokens the callers' buckets keep below the provider's burst (see [`Rate::for_callers`]).
pub const CALLER_BURST_HEADROOM: u32 = 2;
/// Milliseconds per minute: rates are per minute, buckets count milliseconds.
const MS_PER_MIN: i64 = 60_000;
/// Partition of the bucket items; one item per class.
pub const LIMITER_PK_PREFIX: &str = "provider-rate#";
const LIMITER_SK: &str = "bucket";

/// A bucket's configuration: `per_min` tokens per minute, at most `burst` held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_min: u32,
    pub burst: u32,
}

impl Rate {
    pub fn per_min(per_min: u32, burst: u32) -> Rate {
        Rate { per_min, burst }
    }

    /// The provider's bucket for `per_min`: [`PROVIDER_BURST_SECONDS`] of traffic, at least 1.
    pub fn provider_default(per_min: u32) -> Rate {
        Rate {
            per_min,
            burst: (per_min.saturating_mul(PROVIDER_BURST_SECONDS) / 60).max(1),
        }
    }

    /// The callers' bucket for a provider bucket: the same rate, a burst smaller by
    /// [`CALLER_BURST_HEADROOM`], so that requests reaching the provider a little later than
    /// they were granted (network jitter bunches them) still fit its bucket.
    pub fn for_callers(&self) -> Rate {
        Rate {
            per_min: self.per_min,
            burst: self.burst.saturating_sub(CALLER_BURST_HEADROOM).max(1),
        }
    }
}

/// The provider's limits per class; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub payments: Option<Rate>,
    pub writes: Option<Rate>,
    pub reads: Option<Rate>,
}

impl RateLimits {
    pub const UNLIMITED: RateLimits = RateLimits {
        payments: None,
        writes: None,
        reads: None,
    };

    /// The provider's limits from `PAYOPS_PROVIDER_RATE_PAYMENTS_PER_MIN` and
    /// `PAYOPS_PROVIDER_RATE_WRITES_PER_MIN` (absent: unlimited), with default bursts.
    pub fn from_resources(resources: &dyn Resources) -> Result<RateLimits, ResourceError> {
        let rate = |env: &'static str| -> Result<Option<Rate>, ResourceError> {
            match resources.secret(env) {
                Ok(v) => {
                    let per_min = v.expose().trim().parse::<u32>().map_err(|e| {
                        ResourceError::Unavailable {
                            name: env.to_owned(),
                            source: format!("not a whole number of requests per minute: {e}")
                                .into(),
                        }
                    })?;
                    Ok((per_min > 0).then(|| Rate::provider_default(per_min)))
                }
                Err(ResourceError::MissingEnv(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        Ok(RateLimits {
            payments: rate(PROVIDER_RATE_PAYMENTS_PER_MIN_ENV)?,
            writes: rate(PROVIDER_RATE_WRITES_PER_MIN_ENV)?,
            reads: None,
        })
    }

    /// The limits the callers' shared buckets use (see [`Rate::for_callers`]).
    pub fn for_callers(&self) -> RateLimits {
        RateLimits {
            payments: self.payments.map(|r| r.for_callers()),
            writes: self.writes.map(|r| r.for_callers()),
            reads: self.reads.map(|r| r.for_callers()),
        }
    }

    pub fn get(&self, class: RateClass) -> Option<Rate> {
        match class {
            RateClass::Payments => self.payments,
            RateClass::Writes => self.writes,
            RateClass::Reads => self.reads,
        }
    }
}

/// What a caller gets from [`SharedLimiter::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// A token was taken: call now.
    Granted,
    /// No token: try again in this many milliseconds.
    Wait { ms: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("rate limiter table: {0}")]
    Table(#[from] TableError),
    #[error("rate limiter item {key} is malformed: {reason}")]
    Corrupt { key: String, reason: &'static str },
}

impl From<LimiterError> for ProviderError {
    fn from(e: LimiterError) -> Self {
        ProviderError::Transient {
            message: "rate limiter unavailable".into(),
            retry_after_ms: None,
            source: Some(Box::new(e)),
        }
    }
}

/// Token buckets shared through a table. Clone-cheap.
#[derive(Clone)]
pub struct SharedLimiter {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    limits: RateLimits,
}

impl SharedLimiter {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>, limits: RateLimits) -> Self {
        SharedLimiter {
            table,
            clock,
            limits,
        }
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    fn key(class: RateClass) -> Key {
        Key::new(format!("{LIMITER_PK_PREFIX}{}", class.as_str()), LIMITER_SK)
    }

    /// Takes one token of `class` if there is one. A lost race on the conditional write is
    /// retried at once (someone else took a token; the bucket is re-read).
    pub async fn try_acquire(&self, class: RateClass) -> Result<Acquire, LimiterError> {
        let Some(rate) = self.limits.get(class) else {
            return Ok(Acquire::Granted);
        };
        if rate.per_min == 0 {
            return Ok(Acquire::Wait {
                ms: TOKEN_WAIT_MS_MAX,
            });
        }
        let key = Self::key(class);
        for _ in 0..CONTENTION_ATTEMPTS_MAX {
            let now_ms = self.clock.now().timestamp_millis();
            let current = self.table.get(&key).await?;
            let bucket = Bucket::read(current.as_ref(), &key, rate, now_ms)?;
            let tokens = bucket.refilled(rate, now_ms);
            if tokens < Decimal::ONE {
                return Ok(Acquire::Wait {
                    ms: wait_ms(rate, tokens),
                });
            }
            let next = Bucket {
                tokens: tokens - Decimal::ONE,
                // Never move the stamp back: another caller's clock may be ahead of ours.
                stamp_ms: now_ms.max(bucket.stamp_ms),
                version: bucket.version + 1,
            };
            let condition = match current {
                None => Condition::ItemNotExists,
                Some(_) => Condition::eq("version", bucket.version),
            };
            match self.table.put(next.item(&key), Some(condition)).await {
                Ok(()) => return Ok(Acquire::Granted),
                Err(TableError::ConditionFailed) => continue,
                Err(e) if e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Acquire::Wait {
            ms: TOKEN_WAIT_MS_MAX.min(wait_ms(rate, Decimal::ZERO)),
        })
    }

    /// Waits (through `sleeper`) until a token of `class` is taken.
    pub async fn acquire(
        &self,
        class: RateClass,
        sleeper: &dyn Sleeper,
    ) -> Result<(), LimiterError> {
        loop {
            match self.try_acquire(class).await? {
                Acquire::Granted => return Ok(()),
                Acquire::Wait { ms } => sleeper.sleep_ms(ms.clamp(1, TOKEN_WAIT_MS_MAX)).await,
            }
        }
    }
}

/// Milliseconds until `tokens` reaches one at `rate` (rounded up, at least 1).
fn wait_ms(rate: Rate, tokens: Decimal) -> u64 {
    let missing = (Decimal::ONE - tokens).max(Decimal::ZERO);
    let ms = (missing * Decimal::from(MS_PER_MIN) / Decimal::from(rate.per_min)).ceil();
    ms.to_u64().unwrap_or(u64::MAX).max(1)
}

/// One bucket as stored: tokens at `stamp_ms`, and a version for the conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    tokens: Decimal,
    stamp_ms: i64,
    version: i64,
}

impl Bucket {
    /// The stored bucket, or a full one stamped `now_ms` when there is none yet.
    fn read(
        item: Option<&Item>,
        key: &Key,
        rate: Rate,
        now_ms: i64,
    ) -> Result<Bucket, LimiterError> {
        let Some(item) = item else {
            return Ok(Bucket {
                tokens: Decimal::from(rate.burst),
                stamp_ms: now_ms,
                version: 0,
            });
        };
        let corrupt = |reason| LimiterError::Corrupt {
            key: key.pk.clone(),
            reason,
        };
        let tokens = item.n("tokens").ok_or_else(|| corrupt("no tokens"))?;
        let stamp_ms = item
            .n("stamp_ms")
            .and_then(|d| d.to_i64())
            .ok_or_else(|| corrupt("no stamp_ms"))?;
        let version = item
            .n("version")
            .and_then(|d| d.to_i64())
            .ok_or_else(|| corrupt("no version"))?;
        Ok(Bucket {
            tokens,
            stamp_ms,
            version,
        })
    }

    /// Tokens at `now_ms`: refilled at the rate, capped at the burst. A stamp ahead of our
    /// clock refills nothing.
    fn refilled(&self, rate: Rate, now_ms: i64) -> Decimal {
        let elapsed = (now_ms - self.stamp_ms).max(0);
        let added =
            Decimal::from(elapsed) * Decimal::from(rate.per_min) / Decimal::from(MS_PER_MIN);
        (self.tokens + added).min(Decimal::from(rate.burst))
    }

    fn item(&self, key: &Key) -> Item {
        // Keep the stored fraction short: sub-micro-token precision is noise.
        Item::new(key)
            .with("tokens", self.tokens.round_dp(6))
            .with("stamp_ms", self.stamp_ms)
            .with("version", self.version)
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting and jitter

/// How waiting happens: real sleeps in production, a moved `ManualClock` in tests.
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep_ms(&self, ms: u64);
}

/// Sleeps on the tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Advances a `ManualClock` instead of sleeping, and records the waits.
#[derive(Debug)]
pub struct ManualSleeper {
    clock: Arc<ManualClock>,
    slept: Mutex<Vec<u64>>,
}

impl ManualSleeper {
    pub fn new(clock: Arc<ManualClock>) -> Self {
        ManualSleeper {
            clock,
            slept: Mutex::new(Vec::new()),
        }
    }
    /// Every wait so far, in milliseconds.
    pub fn slept(&self) -> Vec<u64> {
        self.slept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Sleeper for ManualSleeper {
    async fn sleep_ms(&self, ms: u64) {
        self.slept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ms);
        self.clock.advance(chrono::Duration::milliseconds(
            i64::try_from(ms).unwrap_or(i64::MAX),
        ));
        // Let other tasks run, as a real sleep would.
        tokio::task::yield_now().await;
    }
}

/// A source of random numbers for jitter.
pub trait Rng: Send + Sync {
    fn next_u64(&self) -> u64;
}

/// SplitMix64: small, fast and good enough for jitter (not for secrets).
#[derive(Debug)]
pub struct SplitMix64(Mutex<u64>);

impl SplitMix64 {
    pub fn seeded(seed: u64) -> Self {
        SplitMix64(Mutex::new(seed))
    }
    /// Seeded from a random UUID, so concurrent Lambdas do not jitter in step.
    pub fn from_entropy() -> Self {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&bytes[..8]);
        SplitMix64::seeded(u64::from_le_bytes(seed))
    }
}

impl Rng for SplitMix64 {
    fn next_u64(&self) -> u64 {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub cap_ms: u64,
    pub attempts_max: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: BACKOFF_BASE_MS,
            cap_ms: BACKOFF_CAP_MS,
            attempts_max: CALL_ATTEMPTS_MAX,
        }
    }
}

impl Backoff {
    /// The wait after failed attempt `attempt` (0 for the first): uniform in
    /// `0..=min(cap, base × 2^attempt)`, plus the provider's own wait when it gave one.
    pub fn delay_ms(&self, attempt: u32, error: &ProviderError, rng: &dyn Rng) -> u64 {
        let bound = self
            .base_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(self.cap_ms);
        let jitter = rng.next_u64() % bound.saturating_add(1);
        error.retry_after_ms().unwrap_or(0).saturating_add(jitter)
    }
}

// ---------------------------------------------------------------------------------------------
// The decorator

/// A [`PaymentProvider`] that takes a token of the call's class before every attempt and
/// retries retryable errors (429, 5xx, timeouts, in-progress) with the same request, hence
/// the same idempotency key, up to `backoff.attempts_max` attempts.
pub struct LimitedProvider {
    inner: Arc<dyn PaymentProvider>,
    limiter: SharedLimiter,
    backoff: Backoff,
    sleeper: Arc<dyn Sleeper>,
    rng: Arc<dyn Rng>,
}

impl LimitedProvider {
    pub fn new(
        inner: Arc<dyn PaymentProvider>,
        limiter: SharedLimiter,
        backoff: Backoff,
        sleeper: Arc<dyn Sleeper>,
        rng: Arc<dyn Rng>,
    ) -> Self {
        LimitedProvider {
            inner,
            limiter,
            backoff,
            sleeper,
            rng,
        }
    }

    /// Production wiring: tokio sleeps, entropy-seeded jitter, default backoff.
    pub fn with_defaults(inner: Arc<dyn PaymentProvider>, limiter: SharedLimiter) -> Self {
        LimitedProvider::new(
            inner,
            limiter,
            Backoff::default(),
            Arc::new(TokioSleeper),
            Arc::new(SplitMix64::from_entropy()),
        )
    }

    async fn run<T, F, Fut>(&self, class: RateClass, call: F) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T, ProviderError>> + Send,
        T: Send,
    {
        let mut attempt = 0;
        loop {
            self.limiter.acquire(class, self.sleeper.as_ref()).await?;
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt + 1 < self.backoff.attempts_max => {
                    let ms = self.backoff.delay_ms(attempt, &e, self.rng.as_ref());
                    tracing::info!(class = class.as_str(), attempt, wait_ms = ms, error = %e, "provider call will be retried");
                    self.sleeper.sleep_ms(ms).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl PaymentProvider for LimitedProvider {
    async fn create_entity(&self, request: CreateEntity) -> Result<Entity, ProviderError> {
        self.run(RateClass::Writes, || {
            self.inner.create_entity(request.clone())
        })
        .await
    }
    async fn create_account(&self, request: CreateAccount) -> Result<Account, ProviderError> {
        self.run(RateClass::Writes, || {
            self.inner.create_account(request.clone())
        })
        .await
    }
    async fn create_payment(&self, request: CreatePayment) -> Result<Payment, ProviderError> {
        self.run(RateClass::Payments, || {
            self.inner.create_payment(request.clone())
        })
        .await
    }
    async fn get_payment(&self, id: &PaymentId) -> Result<Payment, ProviderError> {
        self.run(RateClass::Reads, || self.inner.get_payment(id))
            .await
    }
    async fn list_payments(&self, request: ListPayments) -> Result<PaymentPage, ProviderError> {
        self.run(RateClass::Reads, || {
            self.inner.list_payments(request.clone())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_exponential_bound() {
        let b = Backoff {
            base_ms: 100,
            cap_ms: 1_000,
            attempts_max: 5,
        };
        let rng = SplitMix64::seeded(7);
        let transient = ProviderError::transient("503");
        for attempt in 0..10 {
            let bound = (100u64 << attempt).min(1_000);
            let mut seen_high = false;
            for _ in 0..200 {
                let d = b.delay_ms(attempt, &transient, &rng);
                assert!(d <= bound, "attempt {attempt}: {d} > {bound}");
                seen_high |= d > bound / 2;
            }
            assert!(seen_high, "jitter spans the range at attempt {attempt}");
        }
        // A 429 waits at least what the provider asked.
        let limited = ProviderError::RateLimited {
            retry_after_ms: 700,
        };
        for _ in 0..100 {
            let d = b.delay_ms(0, &limited, &rng);
            assert!((700..=800).contains(&d), "{d}");
        }
    }

    #[test]
    fn wait_is_the_time_to_the_next_token() {
        let r = Rate::per_min(600, 10); // one token per 100 ms
        assert_eq!(wait_ms(r, Decimal::ZERO), 100);
        assert_eq!(wait_ms(r, Decimal::new(5, 1)), 50);
        assert_eq!(wait_ms(r, Decimal::new(999, 3)), 1);
        assert_eq!(wait_ms(Rate::per_min(7, 1), Decimal::ZERO), 8572);
    }
}
