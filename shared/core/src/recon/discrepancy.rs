//! Calculate discrepancy: what a transaction should have posted against what the bank posted.
//!
//! `discrepancy = expected − (Σ amount_posted + Σ fee_charged)`, where the expected amount is
//! the transaction's amount, minus that for a refund (a refund posts a negative amount) and
//! zero for a declined transaction (it posts nothing).

use rust_decimal::Decimal;

use super::types::{ReconciledStatus, Side, TxStatus};

/// The default tolerance: amounts must agree to the cent and below.
pub const TOLERANCE_DEFAULT: Decimal = Decimal::ZERO;

/// What the bank is expected to post for a transaction whose latest status is `status`.
pub fn expected_posting(status: TxStatus, amount: Decimal) -> Decimal {
    match status {
        TxStatus::Refunded => -amount.abs(),
        TxStatus::Declined => Decimal::ZERO,
        TxStatus::Pending | TxStatus::Approved => amount,
    }
}

/// `expected − (posted + fees)`.
pub fn calculate_discrepancy(expected: Decimal, posted: Decimal, fees: Decimal) -> Decimal {
    expected - (posted + fees)
}

/// The verdict for one batch row.
///
/// - a transaction with statement lines: `MATCHED` when |discrepancy| ≤ tolerance, else
///   `PARTIAL`;
/// - a transaction without lines: `MATCHED` if it was expected to post nothing (declined),
///   else `UNMATCHED`;
/// - statement lines without a transaction: `UNMATCHED`.
pub fn classify(side: Side, discrepancy: Decimal, tolerance: Decimal) -> ReconciledStatus {
    match side {
        Side::Both if discrepancy.abs() <= tolerance => ReconciledStatus::Matched,
        Side::Both => ReconciledStatus::Partial,
        Side::TransactionOnly if discrepancy.is_zero() => ReconciledStatus::Matched,
        Side::TransactionOnly | Side::StatementOnly => ReconciledStatus::Unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("test literal")
    }

    #[test]
    fn expected_posting_by_status() {
        assert_eq!(expected_posting(TxStatus::Approved, d("10.50")), d("10.50"));
        assert_eq!(expected_posting(TxStatus::Pending, d("10.50")), d("10.50"));
        assert_eq!(
            expected_posting(TxStatus::Refunded, d("10.50")),
            d("-10.50")
        );
        assert_eq!(
            expected_posting(TxStatus::Refunded, d("-10.50")),
            d("-10.50")
        );
        assert_eq!(
            expected_posting(TxStatus::Declined, d("10.50")),
            Decimal::ZERO
        );
    }

    #[test]
    fn discrepancy_counts_fees_as_posted() {
        assert_eq!(
            calculate_discrepancy(d("100"), d("97.10"), d("2.90")),
            d("0")
        );
        assert_eq!(
            calculate_discrepancy(d("100"), d("97.10"), d("2.80")),
            d("0.10")
        );
        assert_eq!(calculate_discrepancy(d("-20"), d("-20"), d("0")), d("0"));
        assert_eq!(calculate_discrepancy(d("50"), d("0"), d("0")), d("50"));
    }

    #[test]
    fn classify_with_and_without_tolerance() {
        let zero = TOLERANCE_DEFAULT;
        assert_eq!(
            classify(Side::Both, d("0.00"), zero),
            ReconciledStatus::Matched
        );
        assert_eq!(
            classify(Side::Both, d("0.01"), zero),
            ReconciledStatus::Partial
        );
        assert_eq!(
            classify(Side::Both, d("-0.01"), zero),
            ReconciledStatus::Partial
        );
        assert_eq!(
            classify(Side::Both, d("-0.01"), d("0.01")),
            ReconciledStatus::Matched
        );
        assert_eq!(
            classify(Side::Both, d("0.02"), d("0.01")),
            ReconciledStatus::Partial
        );
        assert_eq!(
            classify(Side::TransactionOnly, d("12"), d("100")),
            ReconciledStatus::Unmatched
        );
        assert_eq!(
            classify(Side::TransactionOnly, d("0"), zero),
            ReconciledStatus::Matched
        );
        assert_eq!(
            classify(Side::StatementOnly, d("0"), zero),
            ReconciledStatus::Unmatched
        );
    }
}
