//! Retry and Catch: which clause handles an error, and how long to wait before the next attempt.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::entropy::{Entropy, unit_fraction};
use super::errors::{Failure, error_matches, names};
use super::path::Path;

pub const DEFAULT_INTERVAL_SECONDS: u64 = 1;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_BACKOFF_RATE: f64 = 2.0;
/// Upper bounds from the Step Functions service quotas.
pub const INTERVAL_SECONDS_MAX: u64 = 99_999_999;
pub const MAX_ATTEMPTS_MAX: u32 = 99_999_999;
pub const MAX_DELAY_SECONDS_MAX: u64 = 31_622_400;
/// The longest delay ever scheduled, whatever the backoff says (one year).
const DELAY_MS_CAP: f64 = 31_622_400_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Jitter {
    None,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub jitter: Jitter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    /// Index of the next state in the same block.
    pub next: usize,
    pub next_name: String,
    /// `None` when `ResultPath` is null (the error output is discarded).
    pub result_path: Option<Path>,
}

/// Attempts already used per retrier, for one entry into a state. Serialised with the
/// execution so that a restart continues the count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryCounts(pub Vec<u32>);

impl RetryCounts {
    /// Total retries so far (`$$.State.RetryCount`).
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPlan {
    pub retrier: usize,
    /// 1 for the first retry.
    pub attempt: u32,
    pub delay_ms: u64,
}

impl Retrier {
    /// The delay before retry number `retry_index` (0 for the first retry), before jitter:
    /// `IntervalSeconds × BackoffRate^retry_index`, capped by `MaxDelaySeconds`.
    pub fn base_delay_ms(&self, retry_index: u32) -> f64 {
        let exponent = i32::try_from(retry_index).unwrap_or(i32::MAX);
        let mut delay = self.interval_seconds as f64 * 1000.0 * self.backoff_rate.powi(exponent);
        if let Some(max) = self.max_delay_seconds {
            delay = delay.min(max as f64 * 1000.0);
        }
        if delay.is_finite() {
            delay.min(DELAY_MS_CAP)
        } else {
            DELAY_MS_CAP
        }
    }
}

/// Decides whether `failure` is retried: the first retrier whose `ErrorEquals` matches
/// applies; if it has no attempts left the error is not retried (later retriers are not
/// consulted). Updates `counts` when a retry is planned.
pub fn plan_retry(
    retriers: &[Retrier],
    counts: &mut RetryCounts,
    failure: &Failure,
    entropy: &dyn Entropy,
) -> Option<RetryPlan> {
    let (index, retrier) = retriers
        .iter()
        .enumerate()
        .find(|(_, r)| error_matches(&r.error_equals, failure))?;
    if counts.0.len() < retriers.len() {
        counts.0.resize(retriers.len(), 0);
    }
    let used = counts.0[index];
    if used >= retrier.max_attempts {
        return None;
    }
    let mut delay = retrier.base_delay_ms(used);
    if retrier.jitter == Jitter::Full {
        delay *= unit_fraction(entropy);
    }
    counts.0[index] = used + 1;
    Some(RetryPlan {
        retrier: index,
        attempt: used + 1,
        // Non-negative and capped above, so the cast cannot wrap.
        delay_ms: delay.round() as u64,
    })
}

/// The first catcher whose `ErrorEquals` matches.
pub fn find_catcher<'c>(
    catchers: &'c [Catcher],
    failure: &Failure,
) -> Option<(usize, &'c Catcher)> {
    catchers
        .iter()
        .enumerate()
        .find(|(_, c)| error_matches(&c.error_equals, failure))
}

/// Validates an `ErrorEquals` list: non-empty strings, `States.ALL` alone.
pub fn check_error_equals(list: &[String]) -> Result<(), String> {
    if list.is_empty() {
        return Err("'ErrorEquals' must not be empty".into());
    }
    if list.iter().any(|e| e == names::ALL) && list.len() > 1 {
        return Err("'States.ALL' must appear alone in 'ErrorEquals'".into());
    }
    if list.iter().any(|e| e.is_empty()) {
        return Err("'ErrorEquals' holds an empty error name".into());
    }
    Ok(())
}

/// Parses a number field that must be a whole number in `[min, max]`.
pub fn whole_number(v: &Value, field: &str, min: u64, max: u64) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => super::number::to_i128(n),
        _ => None,
    };
    n.and_then(|n| u64::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("'{field}' must be a whole number from {min} to {max}, got {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::entropy::SeededEntropy;

    fn retrier(errors: &[&str], max_attempts: u32) -> Retrier {
        Retrier {
            error_equals: errors.iter().map(|s| s.to_string()).collect(),
            interval_seconds: 2,
            max_attempts,
            backoff_rate: 3.0,
            max_delay_seconds: Some(30),
            jitter: Jitter::None,
        }
    }

    #[test]
    fn backoff_and_cap() {
        let r = vec![retrier(&["X"], 5)];
        let mut counts = RetryCounts::default();
        let e = SeededEntropy::new(1);
        let f = Failure::new("X", "");
        let delays: Vec<u64> =
            std::iter::from_fn(|| plan_retry(&r, &mut counts, &f, &e).map(|p| p.delay_ms))
                .collect();
        // 2s, 6s, 18s, then capped at 30s.
        assert_eq!(delays, vec![2000, 6000, 18000, 30000, 30000]);
        assert_eq!(counts.total(), 5);
    }

    #[test]
    fn first_matching_retrier_wins_and_zero_means_never() {
        let r = vec![retrier(&["X"], 0), retrier(&[names::ALL], 3)];
        let mut counts = RetryCounts::default();
        let e = SeededEntropy::new(1);
        assert_eq!(
            plan_retry(&r, &mut counts, &Failure::new("X", ""), &e),
            None
        );
        let p = plan_retry(&r, &mut counts, &Failure::new("Y", ""), &e).expect("retried");
        assert_eq!((p.retrier, p.attempt), (1, 1));
        assert_eq!(
            plan_retry(&r, &mut counts, &Failure::runtime("x"), &e),
            None
        );
    }

    #[test]
    fn full_jitter_stays_within_the_delay() {
        let mut r = retrier(&["X"], 50);
        r.jitter = Jitter::Full;
        let r = vec![r];
        let mut counts = RetryCounts::default();
        let e = SeededEntropy::new(9);
        let mut saw_less = false;
        for i in 0..50 {
            let p = plan_retry(&r, &mut counts, &Failure::new("X", ""), &e).expect("retried");
            let cap = r[0].base_delay_ms(i).round() as u64;
            assert!(p.delay_ms <= cap);
            saw_less |= p.delay_ms < cap;
        }
        assert!(saw_less);
    }

    #[test]
    fn error_equals_rules() {
        assert!(check_error_equals(&[]).is_err());
        assert!(check_error_equals(&["States.ALL".into(), "X".into()]).is_err());
        assert!(check_error_equals(&["States.ALL".into()]).is_ok());
    }
}
