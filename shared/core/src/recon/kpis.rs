//! Merchant KPIs per day: volume, count, refunds, declines, matched rate, total discrepancy.

use rust_decimal::{Decimal, RoundingStrategy};

use super::types::{ReconciledStatus, TxStatus};

/// Decimal places of the matched rate (0.0000 to 1.0000).
pub const MATCHED_RATE_SCALE: u32 = 4;

/// One merchant's day. `volume` is the amount of its approved transactions; refunds and
/// declines are counted (and refunds summed) separately; `matched` counts transactions the
/// bank agreed with; `total_discrepancy` sums the signed discrepancies of its transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MerchantKpis {
    pub transactions: u64,
    pub volume: Decimal,
    pub refunds: u64,
    pub refund_amount: Decimal,
    pub declines: u64,
    pub matched: u64,
    pub total_discrepancy: Decimal,
}

impl MerchantKpis {
    /// Counts one transaction with its (derived) status and its batch result.
    pub fn add(
        &mut self,
        status: TxStatus,
        amount: Decimal,
        reconciled: ReconciledStatus,
        discrepancy: Decimal,
    ) {
        self.transactions += 1;
        match status {
            TxStatus::Approved => self.volume += amount,
            TxStatus::Refunded => {
                self.refunds += 1;
                self.refund_amount += amount.abs();
            }
            TxStatus::Declined => self.declines += 1,
            TxStatus::Pending => {}
        }
        if reconciled == ReconciledStatus::Matched {
            self.matched += 1;
        }
        self.total_discrepancy += discrepancy;
    }

    /// Adds another partition's counts for the same merchant.
    pub fn merge(&mut self, other: &MerchantKpis) {
        self.transactions += other.transactions;
        self.volume += other.volume;
        self.refunds += other.refunds;
        self.refund_amount += other.refund_amount;
        self.declines += other.declines;
        self.matched += other.matched;
        self.total_discrepancy += other.total_discrepancy;
    }

    /// matched / transactions, rounded half-even to [`MATCHED_RATE_SCALE`] places; 0 without
    /// transactions.
    pub fn matched_rate(&self) -> Decimal {
        if self.transactions == 0 {
            return Decimal::ZERO;
        }
        (Decimal::from(self.matched) / Decimal::from(self.transactions))
            .round_dp_with_strategy(MATCHED_RATE_SCALE, RoundingStrategy::MidpointNearestEven)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("test literal")
    }

    #[test]
    fn counts_volume_refunds_declines_and_matches() {
        use ReconciledStatus::*;
        let mut k = MerchantKpis::default();
        k.add(TxStatus::Approved, d("10.00"), Matched, d("0"));
        k.add(TxStatus::Approved, d("5.00"), Partial, d("0.50"));
        k.add(TxStatus::Refunded, d("3.00"), Matched, d("0"));
        k.add(TxStatus::Declined, d("7.00"), Matched, d("0"));
        k.add(TxStatus::Pending, d("1.00"), Unmatched, d("1.00"));
        assert_eq!(k.transactions, 5);
        assert_eq!(k.volume, d("15.00"));
        assert_eq!((k.refunds, k.refund_amount), (1, d("3.00")));
        assert_eq!(k.declines, 1);
        assert_eq!(k.matched, 3);
        assert_eq!(k.total_discrepancy, d("1.50"));
        assert_eq!(k.matched_rate(), d("0.6"));
    }

    #[test]
    fn merge_adds_and_rate_rounds_half_even() {
        let mut a = MerchantKpis::default();
        a.add(
            TxStatus::Approved,
            d("1"),
            ReconciledStatus::Matched,
            d("0"),
        );
        let mut b = MerchantKpis::default();
        b.add(
            TxStatus::Approved,
            d("2"),
            ReconciledStatus::Partial,
            d("1"),
        );
        b.add(
            TxStatus::Approved,
            d("2"),
            ReconciledStatus::Partial,
            d("1"),
        );
        a.merge(&b);
        assert_eq!(a.transactions, 3);
        assert_eq!(a.volume, d("5"));
        assert_eq!(a.matched_rate(), d("0.3333"));
        assert_eq!(MerchantKpis::default().matched_rate(), Decimal::ZERO);
    }
}
