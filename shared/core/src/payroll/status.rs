//! A payroll payment's status and the only moves it may make.
//!
//! Providers retry and do not order their webhooks, so a status never moves backwards: each
//! status has a rank and a move is allowed only to a higher rank. `FAILED` and `CANCELED` are
//! final; `SETTLED` may still become `REVERSED` (the bank returned the money).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Written at approval; not yet sent to the provider.
    Unprocessed,
    /// Accepted by the provider, not yet processing.
    Pending,
    /// Created at the provider (by us, or reported by the provider).
    Processing,
    Sent,
    Settled,
    Failed,
    Canceled,
    /// Settled, then returned.
    Reversed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 8] = [
        PaymentStatus::Unprocessed,
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::Sent,
        PaymentStatus::Settled,
        PaymentStatus::Failed,
        PaymentStatus::Canceled,
        PaymentStatus::Reversed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Unprocessed => "UNPROCESSED",
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Processing => "PROCESSING",
            PaymentStatus::Sent => "SENT",
            PaymentStatus::Settled => "SETTLED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Canceled => "CANCELED",
            PaymentStatus::Reversed => "REVERSED",
        }
    }

    /// Lower case, as attribute-name suffixes and CSV columns use it.
    pub fn lower(self) -> &'static str {
        match self {
            PaymentStatus::Unprocessed => "unprocessed",
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Sent => "sent",
            PaymentStatus::Settled => "settled",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::Reversed => "reversed",
        }
    }

    /// How far along the payment is; moves only go up.
    pub fn rank(self) -> u8 {
        match self {
            PaymentStatus::Unprocessed => 0,
            PaymentStatus::Pending => 1,
            PaymentStatus::Processing => 2,
            PaymentStatus::Sent => 3,
            PaymentStatus::Settled | PaymentStatus::Failed | PaymentStatus::Canceled => 4,
            PaymentStatus::Reversed => 5,
        }
    }

    /// No provider report changes it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PaymentStatus::Failed | PaymentStatus::Canceled | PaymentStatus::Reversed
        )
    }

    /// Done as far as the batch is concerned (settled counts as done; a later reversal is
    /// still applied).
    pub fn is_done(self) -> bool {
        self.rank() >= 4
    }

    /// Money has reached the payee and stayed there.
    pub fn is_paid(self) -> bool {
        self == PaymentStatus::Settled
    }

    /// Whether a payment in `self` may move to `to`: forward only, never out of a final
    /// status, and `REVERSED` only after `SETTLED` or `SENT`.
    pub fn can_move_to(self, to: PaymentStatus) -> bool {
        if self.is_final() || to.rank() <= self.rank() {
            return false;
        }
        if to == PaymentStatus::Reversed {
            return matches!(self, PaymentStatus::Settled | PaymentStatus::Sent);
        }
        true
    }

    /// A provider's status word (`pending`, `processing`, `sent`, `settled`, `failed`,
    /// `reversed`, `canceled`/`cancelled`), any case.
    pub fn from_provider(word: &str) -> Option<PaymentStatus> {
        match word.trim().to_ascii_lowercase().as_str() {
            "pending" => Some(PaymentStatus::Pending),
            "processing" => Some(PaymentStatus::Processing),
            "sent" => Some(PaymentStatus::Sent),
            "settled" => Some(PaymentStatus::Settled),
            "failed" => Some(PaymentStatus::Failed),
            "reversed" => Some(PaymentStatus::Reversed),
            "canceled" | "cancelled" => Some(PaymentStatus::Canceled),
            _ => None,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PaymentStatus::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown payment status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_late_processing_after_settled_changes_nothing() {
        assert!(!PaymentStatus::Settled.can_move_to(PaymentStatus::Processing));
        assert!(!PaymentStatus::Settled.can_move_to(PaymentStatus::Settled));
        assert!(PaymentStatus::Settled.can_move_to(PaymentStatus::Reversed));
        assert!(!PaymentStatus::Failed.can_move_to(PaymentStatus::Reversed));
        assert!(!PaymentStatus::Failed.can_move_to(PaymentStatus::Settled));
        assert!(PaymentStatus::Unprocessed.can_move_to(PaymentStatus::Settled));
        assert!(!PaymentStatus::Pending.can_move_to(PaymentStatus::Reversed));
    }

    #[test]
    fn names_round_trip() {
        for s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(s));
        }
        assert_eq!(
            PaymentStatus::from_provider(" Cancelled "),
            Some(PaymentStatus::Canceled)
        );
        assert_eq!(PaymentStatus::from_provider("done"), None);
    }

    proptest! {
        /// Whatever order the reports arrive in, the status only climbs, and the final status
        /// does not depend on duplicates.
        #[test]
        fn applying_reports_in_any_order_never_moves_backwards(
            reports in proptest::collection::vec(0usize..8, 0..20)
        ) {
            let mut status = PaymentStatus::Unprocessed;
            for r in reports {
                let to = PaymentStatus::ALL[r];
                if status.can_move_to(to) {
                    prop_assert!(to.rank() > status.rank());
                    status = to;
                }
            }
        }
    }
}
