//! The sandbox's rate limits: one token bucket per endpoint class, against the clock.

use chrono::{DateTime, Utc};
use payops_app::ports::provider::RateClass;
use payops_app::provider_limiter::{Rate, RateLimits};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

const MS_PER_MIN: i64 = 60_000;

/// What the rate-limit headers say after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit_per_min: u32,
    pub remaining: u64,
    /// Unix seconds at which the bucket is full again.
    pub reset_unix: i64,
}

/// The answer of [`Buckets::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Unlimited class: no headers.
    Unlimited,
    Granted(RateHeaders),
    Refused {
        headers: RateHeaders,
        retry_after_ms: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: Rate,
    tokens: Decimal,
    stamp_ms: i64,
}

impl Bucket {
    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.stamp_ms).max(0);
        let added =
            Decimal::from(elapsed) * Decimal::from(self.rate.per_min) / Decimal::from(MS_PER_MIN);
        self.tokens = (self.tokens + added).min(Decimal::from(self.rate.burst));
        self.stamp_ms = self.stamp_ms.max(now_ms);
    }

    fn ms_for(&self, tokens: Decimal) -> i64 {
        if self.rate.per_min == 0 {
            return MS_PER_MIN;
        }
        (tokens.max(Decimal::ZERO) * Decimal::from(MS_PER_MIN) / Decimal::from(self.rate.per_min))
            .ceil()
            .to_i64()
            .unwrap_or(MS_PER_MIN)
    }

    fn headers(&self, now_ms: i64) -> RateHeaders {
        let missing = Decimal::from(self.rate.burst) - self.tokens;
        RateHeaders {
            limit_per_min: self.rate.per_min,
            remaining: self.tokens.floor().to_u64().unwrap_or(0),
            reset_unix: (now_ms + self.ms_for(missing) + 999).div_euclid(1000),
        }
    }
}

/// The buckets of every class. Each starts full.
#[derive(Debug, Clone)]
pub struct Buckets {
    classes: [Option<Bucket>; 3],
}

fn slot(class: RateClass) -> usize {
    match class {
        RateClass::Payments => 0,
        RateClass::Writes => 1,
        RateClass::Reads => 2,
    }
}

impl Buckets {
    pub fn new(limits: RateLimits, now: DateTime<Utc>) -> Buckets {
        let bucket = |rate: Option<Rate>| {
            rate.map(|rate| Bucket {
                rate,
                tokens: Decimal::from(rate.burst),
                stamp_ms: now.timestamp_millis(),
            })
        };
        Buckets {
            classes: [
                bucket(limits.payments),
                bucket(limits.writes),
                bucket(limits.reads),
            ],
        }
    }

    /// Takes a token of `class` at `now`, or says how long until there is one.
    pub fn take(&mut self, class: RateClass, now: DateTime<Utc>) -> Taken {
        let Some(bucket) = self.classes[slot(class)].as_mut() else {
            return Taken::Unlimited;
        };
        let now_ms = now.timestamp_millis();
        bucket.refill(now_ms);
        if bucket.tokens >= Decimal::ONE {
            bucket.tokens -= Decimal::ONE;
            Taken::Granted(bucket.headers(now_ms))
        } else {
            let wait = bucket.ms_for(Decimal::ONE - bucket.tokens).max(1);
            Taken::Refused {
                headers: bucket.headers(now_ms),
                retry_after_ms: u64::try_from(wait).unwrap_or(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_bucket_refills_at_its_rate_and_refuses_beyond() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let limits = RateLimits {
            payments: Some(Rate::per_min(600, 2)),
            writes: None,
            reads: None,
        };
        let mut b = Buckets::new(limits, t0);
        assert!(matches!(b.take(RateClass::Payments, t0), Taken::Granted(h) if h.remaining == 1));
        assert!(matches!(b.take(RateClass::Payments, t0), Taken::Granted(h) if h.remaining == 0));
        assert_eq!(
            b.take(RateClass::Payments, t0),
            Taken::Refused {
                headers: RateHeaders {
                    limit_per_min: 600,
                    remaining: 0,
                    reset_unix: 1_800_000_001,
                },
                retry_after_ms: 100
            }
        );
        let t1 = t0 + Duration::milliseconds(100);
        assert!(matches!(b.take(RateClass::Payments, t1), Taken::Granted(_)));
        assert_eq!(b.take(RateClass::Writes, t1), Taken::Unlimited);
    }
}
