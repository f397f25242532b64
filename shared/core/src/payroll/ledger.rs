//! The double-entry ledger of payroll payments: pure rules, no storage.
//!
//! Each payment moves through at most three ledger transactions, each balancing to zero
//! (debits positive, credits negative), on the payer's (source's) accounts:
//!
//! | when | debit | credit |
//! |---|---|---|
//! | approval (obligation) | `expense:{source}` | `payable:{source}` |
//! | settled (settlement) | `payable:{source}` | `cash:{source}` |
//! | failed/canceled, or reversed before settling (release) | `payable:{source}` | `expense:{source}` |
//! | reversed after settling (refund) | `cash:{source}` | `expense:{source}` |
//!
//! So at any time a payment's balances say where it stands: outstanding (payable owed),
//! paid (cash out), or nothing at all (failed, canceled, reversed). [`expected_balances`]
//! gives those balances for a status; the nightly check compares them with what is stored.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::status::PaymentStatus;

/// Most entries one ledger transaction has (each rule above has two).
pub const LEDGER_ENTRIES_MAX: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    Obligation,
    Settlement,
    Release,
    Refund,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Obligation => "obligation",
            LedgerKind::Settlement => "settlement",
            LedgerKind::Release => "release",
            LedgerKind::Refund => "refund",
        }
    }
    pub fn parse(text: &str) -> Option<LedgerKind> {
        [
            LedgerKind::Obligation,
            LedgerKind::Settlement,
            LedgerKind::Release,
            LedgerKind::Refund,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for LedgerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One leg: an account and a signed amount (debit positive, credit negative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub account: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger transaction {id} does not balance: its entries sum to {sum}")]
    Unbalanced { id: String, sum: Decimal },
    #[error("ledger transaction {id} has {count} entries; 2 to {LEDGER_ENTRIES_MAX} are allowed")]
    EntryCount { id: String, count: usize },
    #[error("ledger transaction {id}: amount must be positive")]
    NotPositive { id: String },
    #[error("ledger transaction {id}: an amount overflows")]
    Overflow { id: String },
}

/// A balanced ledger transaction. The only constructor checks the balance, and
/// [`LedgerTransaction::check`] checks it again right before a write (a transaction read back
/// from storage is checked the same way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTransaction {
    /// `{payment_id}#{kind}`: a second write of the same transaction is recognised.
    pub id: String,
    pub payment_id: String,
    pub kind: LedgerKind,
    pub entries: Vec<Entry>,
}

impl LedgerTransaction {
    pub fn new(
        payment_id: &str,
        kind: LedgerKind,
        entries: Vec<Entry>,
    ) -> Result<LedgerTransaction, LedgerError> {
        let tx = LedgerTransaction {
            id: format!("{payment_id}#{kind}"),
            payment_id: payment_id.to_owned(),
            kind,
            entries,
        };
        tx.check()?;
        Ok(tx)
    }

    /// The invariant: 2 to [`LEDGER_ENTRIES_MAX`] entries summing to exactly zero.
    pub fn check(&self) -> Result<(), LedgerError> {
        let count = self.entries.len();
        if !(2..=LEDGER_ENTRIES_MAX).contains(&count) {
            return Err(LedgerError::EntryCount {
                id: self.id.clone(),
                count,
            });
        }
        let mut sum = Decimal::ZERO;
        for e in &self.entries {
            sum = sum
                .checked_add(e.amount)
                .ok_or_else(|| LedgerError::Overflow {
                    id: self.id.clone(),
                })?;
        }
        if !sum.is_zero() {
            return Err(LedgerError::Unbalanced {
                id: self.id.clone(),
                sum,
            });
        }
        Ok(())
    }
}

pub fn expense_account(source: &str) -> String {
    format!("expense:{source}")
}
pub fn payable_account(source: &str) -> String {
    format!("payable:{source}")
}
pub fn cash_account(source: &str) -> String {
    format!("cash:{source}")
}

fn pair(
    payment_id: &str,
    kind: LedgerKind,
    debit: String,
    credit: String,
    amount: Decimal,
) -> Result<LedgerTransaction, LedgerError> {
    if amount <= Decimal::ZERO {
        return Err(LedgerError::NotPositive {
            id: format!("{payment_id}#{kind}"),
        });
    }
    LedgerTransaction::new(
        payment_id,
        kind,
        vec![
            Entry {
                account: debit,
                amount,
            },
            Entry {
                account: credit,
                amount: -amount,
            },
        ],
    )
}

/// The obligation recorded at approval.
pub fn obligation(
    payment_id: &str,
    source: &str,
    amount: Decimal,
) -> Result<LedgerTransaction, LedgerError> {
    pair(
        payment_id,
        LedgerKind::Obligation,
        expense_account(source),
        payable_account(source),
        amount,
    )
}

/// The ledger transaction a status move records, if any.
pub fn for_move(
    payment_id: &str,
    source: &str,
    amount: Decimal,
    from: PaymentStatus,
    to: PaymentStatus,
) -> Result<Option<LedgerTransaction>, LedgerError> {
    let (kind, debit, credit) = match to {
        PaymentStatus::Settled => (
            LedgerKind::Settlement,
            payable_account(source),
            cash_account(source),
        ),
        PaymentStatus::Failed | PaymentStatus::Canceled => (
            LedgerKind::Release,
            payable_account(source),
            expense_account(source),
        ),
        PaymentStatus::Reversed if from == PaymentStatus::Settled => (
            LedgerKind::Refund,
            cash_account(source),
            expense_account(source),
        ),
        PaymentStatus::Reversed => (
            LedgerKind::Release,
            payable_account(source),
            expense_account(source),
        ),
        _ => return Ok(None),
    };
    pair(payment_id, kind, debit, credit, amount).map(Some)
}

/// The ledger transactions a payment in `status` has, by kind, in order.
pub fn expected_kinds(status: PaymentStatus, settled_before: bool) -> Vec<LedgerKind> {
    match status {
        PaymentStatus::Settled => vec![LedgerKind::Obligation, LedgerKind::Settlement],
        PaymentStatus::Failed | PaymentStatus::Canceled => {
            vec![LedgerKind::Obligation, LedgerKind::Release]
        }
        PaymentStatus::Reversed if settled_before => vec![
            LedgerKind::Obligation,
            LedgerKind::Settlement,
            LedgerKind::Refund,
        ],
        PaymentStatus::Reversed => vec![LedgerKind::Obligation, LedgerKind::Release],
        _ => vec![LedgerKind::Obligation],
    }
}

/// Account → balance after the given transactions (accounts at zero are left out).
pub fn balances<'a>(
    txs: impl IntoIterator<Item = &'a LedgerTransaction>,
) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for tx in txs {
        for e in &tx.entries {
            *out.entry(e.account.clone()).or_default() += e.amount;
        }
    }
    out.retain(|_, v| !v.is_zero());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn an_unbalanced_transaction_cannot_be_built() {
        let err = LedgerTransaction::new(
            "p1",
            LedgerKind::Obligation,
            vec![
                Entry {
                    account: "a".into(),
                    amount: d("1.00"),
                },
                Entry {
                    account: "b".into(),
                    amount: d("-0.99"),
                },
            ],
        )
        .unwrap_err();
        assert!(matches!(err, LedgerError::Unbalanced { .. }), "{err}");
        assert!(obligation("p1", "S", Decimal::ZERO).is_err());
    }

    #[test]
    fn settled_leaves_cash_out_and_nothing_owed() {
        let a = d("8.11");
        let o = obligation("p1", "S", a).unwrap();
        let s = for_move("p1", "S", a, PaymentStatus::Sent, PaymentStatus::Settled)
            .unwrap()
            .unwrap();
        let b = balances([&o, &s]);
        assert_eq!(b.get("cash:S"), Some(&-a));
        assert_eq!(b.get("expense:S"), Some(&a));
        assert_eq!(b.get("payable:S"), None);
    }

    #[test]
    fn failed_and_reversed_leave_nothing() {
        let a = d("100.00");
        let o = obligation("p", "S", a).unwrap();
        let f = for_move(
            "p",
            "S",
            a,
            PaymentStatus::Processing,
            PaymentStatus::Failed,
        )
        .unwrap()
        .unwrap();
        assert!(balances([&o, &f]).is_empty());
        let s = for_move("p", "S", a, PaymentStatus::Sent, PaymentStatus::Settled)
            .unwrap()
            .unwrap();
        let r = for_move("p", "S", a, PaymentStatus::Settled, PaymentStatus::Reversed)
            .unwrap()
            .unwrap();
        assert_eq!(r.kind, LedgerKind::Refund);
        assert!(balances([&o, &s, &r]).is_empty());
        assert!(
            for_move("p", "S", a, PaymentStatus::Pending, PaymentStatus::Sent)
                .unwrap()
                .is_none()
        );
    }

    proptest! {
        /// Every transaction the rules make balances, whatever the amount and move.
        #[test]
        fn every_rule_balances(cents in 1i64..100_000_000, from in 0usize..8, to in 0usize..8) {
            let a = Decimal::new(cents, 2);
            let (from, to) = (PaymentStatus::ALL[from], PaymentStatus::ALL[to]);
            prop_assert!(obligation("p", "S", a).unwrap().check().is_ok());
            if let Some(tx) = for_move("p", "S", a, from, to).unwrap() {
                let sum: Decimal = tx.entries.iter().map(|e| e.amount).sum();
                prop_assert!(sum.is_zero());
            }
        }
    }
}
