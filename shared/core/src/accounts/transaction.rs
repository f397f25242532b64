//! What a transaction is once decided: its status, why it failed, how its time is written,
//! and the fingerprint that ties an idempotency key to one request.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxStatus {
    Success,
    Fail,
}

impl TxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Success => "success",
            TxStatus::Fail => "fail",
        }
    }
}

impl FromStr for TxStatus {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(TxStatus::Success),
            "fail" => Ok(TxStatus::Fail),
            _ => Err(UnknownWord(s.chars().take(32).collect())),
        }
    }
}

/// Why a transaction was recorded as failed. The texts are part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    InsufficientFunds,
    UnknownAccount,
    CurrencyMismatch,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::InsufficientFunds => "Insufficient funds",
            FailReason::UnknownAccount => "Unknown account",
            FailReason::CurrencyMismatch => "Currency mismatch",
        }
    }
}

impl FromStr for FailReason {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Insufficient funds" => Ok(FailReason::InsufficientFunds),
            "Unknown account" => Ok(FailReason::UnknownAccount),
            "Currency mismatch" => Ok(FailReason::CurrencyMismatch),
            _ => Err(UnknownWord(s.chars().take(32).collect())),
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transfer between two customer accounts, or a bank transaction on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxKind {
    Transfer,
    Bank,
}

impl TxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::Transfer => "transfer",
            TxKind::Bank => "bank",
        }
    }
}

impl FromStr for TxKind {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transfer" => Ok(TxKind::Transfer),
            "bank" => Ok(TxKind::Bank),
            _ => Err(UnknownWord(s.chars().take(32).collect())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownWord(pub String);

/// RFC 3339 in UTC with milliseconds and `Z`, always 24 characters for years 0000–9999, so
/// that the text order of timestamps is their time order (the report index relies on it).
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A digest of what a request asked for. A retry with the same `Idempotency-Key` must ask for
/// the same thing; a different request under a used key is a client error, not a replay.
/// Parts are length-prefixed so that `("ab", "c")` and `("a", "bc")` differ.
pub fn request_fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn words_round_trip() {
        for s in [TxStatus::Success, TxStatus::Fail] {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for r in [
            FailReason::InsufficientFunds,
            FailReason::UnknownAccount,
            FailReason::CurrencyMismatch,
        ] {
            assert_eq!(r.as_str().parse(), Ok(r));
        }
        for k in [TxKind::Transfer, TxKind::Bank] {
            assert_eq!(k.as_str().parse(), Ok(k));
        }
        assert!("ok".parse::<TxStatus>().is_err());
    }

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        let a = Utc
            .with_ymd_and_hms(2024, 3, 9, 23, 59, 59)
            .single()
            .expect("valid date");
        let b = a + chrono::Duration::milliseconds(1);
        let c = a + chrono::Duration::days(400);
        let (ta, tb, tc) = (
            format_timestamp(a),
            format_timestamp(b),
            format_timestamp(c),
        );
        assert_eq!(ta, "2024-03-09T23:59:59.000Z");
        assert!(ta < tb && tb < tc);
        assert_eq!(ta.len(), tc.len());
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(
            request_fingerprint(&["ab", "c"]),
            request_fingerprint(&["a", "bc"])
        );
        assert_eq!(
            request_fingerprint(&["x", "1"]),
            request_fingerprint(&["x", "1"])
        );
    }
}
