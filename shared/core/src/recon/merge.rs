//! The final aggregate index: a batch row merged with the stream's view of the transaction
//! (latest status, fraud score), the reference data (policies, merchant) and the masked user.

use std::collections::HashMap;

use foldhash::fast::FixedState;
use rust_decimal::Decimal;

use super::compliance::{Assessment, Policy, PolicyFlags, flag_compliance, policy_flags};
use super::kpis::MerchantKpis;
use super::mask::{MaskedId, UserIdMasker};
use super::matcher::BatchRow;
use super::status::derive_status;
use super::types::{FraudSignal, Merchant, ReconciledStatus, Side, TxStatus};

/// One row of the final index. Fields of the transaction are `None` on `STATEMENT_ONLY` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalRow<'a> {
    pub transaction_id: &'a str,
    pub merchant_id: Option<&'a str>,
    pub masked_user_id: Option<MaskedId>,
    pub amount: Option<Decimal>,
    pub currency: Option<&'a str>,
    /// The derived status (stream blended with the bank).
    pub status: Option<TxStatus>,
    /// Event time of the latest transaction event, µs since the epoch.
    pub event_time_us: Option<i64>,
    pub fraud_score: Option<Decimal>,
    pub policy_flags: PolicyFlags,
    pub compliance_assessment: Assessment,
    pub side: Side,
    pub reconciled_status: ReconciledStatus,
    pub amount_posted: Decimal,
    pub fee_charged: Decimal,
    pub discrepancy: Decimal,
}

/// Reference data and the masking key, shared by every partition of a run.
#[derive(Debug)]
pub struct MergeContext<'r> {
    pub masker: &'r UserIdMasker,
    pub policies: &'r [Policy],
    pub merchants: &'r HashMap<String, Merchant>,
}

/// The latest fraud score per transaction id (latest inference time; a tie goes to the higher
/// score, the cautious reading).
pub fn latest_fraud_scores<'a>(
    signals: &[FraudSignal<'a>],
) -> HashMap<&'a str, (i64, Decimal), FixedState> {
    let mut latest: HashMap<&'a str, (i64, Decimal), FixedState> =
        HashMap::with_capacity_and_hasher(signals.len(), FixedState::default());
    for s in signals {
        let candidate = (s.inference_time_us, s.fraud_score);
        latest
            .entry(s.transaction_id)
            .and_modify(|current| {
                if candidate > *current {
                    *current = candidate;
                }
            })
            .or_insert(candidate);
    }
    latest
}

/// Merges one batch row.
pub fn merge_row<'a>(
    row: &BatchRow<'a>,
    fraud_score: Option<Decimal>,
    ctx: &MergeContext<'_>,
) -> FinalRow<'a> {
    let tx = row.transaction;
    let merchant = tx.and_then(|t| ctx.merchants.get(t.merchant_id));
    let flags = tx
        .map(|t| policy_flags(t.amount, t.currency, merchant, ctx.policies))
        .unwrap_or_default();
    FinalRow {
        transaction_id: row.transaction_id,
        merchant_id: tx.map(|t| t.merchant_id),
        masked_user_id: tx.map(|t| ctx.masker.mask(t.user_id)),
        amount: tx.map(|t| t.amount),
        currency: tx.map(|t| t.currency),
        status: tx.map(|t| derive_status(t.status, row.side, row.reconciled_status)),
        event_time_us: tx.map(|t| t.timestamp_us),
        fraud_score,
        policy_flags: flags,
        compliance_assessment: flag_compliance(fraud_score, flags),
        side: row.side,
        reconciled_status: row.reconciled_status,
        amount_posted: row.amount_posted,
        fee_charged: row.fee_charged,
        discrepancy: row.discrepancy,
    }
}

/// Adds a final row to its merchant's KPIs (statement-only rows have no merchant).
pub fn add_to_kpis<'a>(kpis: &mut HashMap<&'a str, MerchantKpis, FixedState>, row: &FinalRow<'a>) {
    if let (Some(merchant), Some(status), Some(amount)) = (row.merchant_id, row.status, row.amount)
    {
        kpis.entry(merchant).or_default().add(
            status,
            amount,
            row.reconciled_status,
            row.discrepancy,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::recon::compliance::{PolicyFlag, PolicyType};
    use crate::recon::matcher::reconcile;
    use crate::recon::types::{RiskLevel, StatementLine, Transaction};

    fn d(s: &str) -> Decimal {
        s.parse().expect("test literal")
    }

    #[test]
    fn merges_stream_fraud_policies_merchant_and_mask() {
        let txs = [Transaction {
            transaction_id: "t1",
            merchant_id: "m1",
            user_id: "user-123",
            amount: d("2000"),
            currency: "USD",
            status: TxStatus::Pending,
            timestamp_us: 10,
        }];
        let lines = [StatementLine {
            statement_id: "s1",
            transaction_id: "t1",
            posting_date: 1,
            amount_posted: d("1990"),
            fee_charged: d("10"),
        }];
        let (rows, _) = reconcile(&txs, &lines, Decimal::ZERO);
        let signals = [
            FraudSignal {
                fraud_signal_id: "f2",
                transaction_id: "t1",
                fraud_score: d("0.2"),
                model_version: "v2",
                inference_time_us: 20,
            },
            FraudSignal {
                fraud_signal_id: "f1",
                transaction_id: "t1",
                fraud_score: d("0.95"),
                model_version: "v1",
                inference_time_us: 5,
            },
        ];
        let scores = latest_fraud_scores(&signals);
        assert_eq!(scores["t1"], (20, d("0.2")), "the latest inference wins");
        let masker = UserIdMasker::new(&Secret::new("0123456789abcdef".into())).expect("key");
        let policies = [Policy {
            policy_id: "kyc".into(),
            policy_type: PolicyType::Kyc,
            rule_description: "KYC over 1000".into(),
            active: true,
            threshold: Some(d("1000")),
            currency: None,
            risk_levels: vec![],
        }];
        let merchants = HashMap::from([(
            "m1".to_owned(),
            Merchant {
                merchant_id: "m1".into(),
                merchant_name: "Shop".into(),
                risk_level: RiskLevel::Low,
                onboarding_date: None,
            },
        )]);
        let ctx = MergeContext {
            masker: &masker,
            policies: &policies,
            merchants: &merchants,
        };
        let row = merge_row(&rows[0], Some(scores["t1"].1), &ctx);
        assert_eq!(row.status, Some(TxStatus::Approved), "the bank settled it");
        assert_eq!(row.masked_user_id, Some(masker.mask("user-123")));
        assert!(row.policy_flags.contains(PolicyFlag::KycRequired));
        assert_eq!(row.compliance_assessment, Assessment::Review);
        assert_eq!(row.reconciled_status, ReconciledStatus::Matched);
        let mut kpis = HashMap::with_hasher(FixedState::default());
        add_to_kpis(&mut kpis, &row);
        assert_eq!(kpis["m1"].volume, d("2000"));
        assert_eq!(kpis["m1"].matched, 1);
    }

    #[test]
    fn statement_only_rows_have_no_transaction_fields() {
        let lines = [StatementLine {
            statement_id: "s1",
            transaction_id: "ghost",
            posting_date: 1,
            amount_posted: d("5"),
            fee_charged: d("0"),
        }];
        let (rows, _) = reconcile(&[], &lines, Decimal::ZERO);
        let masker = UserIdMasker::new(&Secret::new("0123456789abcdef".into())).expect("key");
        let merchants = HashMap::new();
        let ctx = MergeContext {
            masker: &masker,
            policies: &[],
            merchants: &merchants,
        };
        let row = merge_row(&rows[0], None, &ctx);
        assert_eq!(row.side, Side::StatementOnly);
        assert_eq!(
            (row.merchant_id, row.masked_user_id, row.status),
            (None, None, None)
        );
        assert_eq!(row.compliance_assessment, Assessment::Clear);
        let mut kpis = HashMap::with_hasher(FixedState::default());
        add_to_kpis(&mut kpis, &row);
        assert!(kpis.is_empty());
    }
}
