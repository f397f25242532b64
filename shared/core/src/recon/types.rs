//! The reconciliation's input and output records. Text fields borrow from the input buffer
//! (`&'a str`): a day holds millions of rows, and copying every id would cost more than the
//! matching itself.

use std::fmt;

use rust_decimal::Decimal;

/// A payment transaction's status as the payment stream reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxStatus {
    Pending,
    Approved,
    Declined,
    Refunded,
}

impl TxStatus {
    pub const ALL: [TxStatus; 4] = [
        TxStatus::Pending,
        TxStatus::Approved,
        TxStatus::Declined,
        TxStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Pending => "PENDING",
            TxStatus::Approved => "APPROVED",
            TxStatus::Declined => "DECLINED",
            TxStatus::Refunded => "REFUNDED",
        }
    }

    pub fn parse(text: &str) -> Option<TxStatus> {
        TxStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// Which of two events with the same event time wins: the more final one. A later
    /// lifecycle stage (a refund after an approval) or a decline beats a pending or approved
    /// report, so a tie never resurrects a transaction that ended.
    pub fn tie_rank(self) -> u8 {
        match self {
            TxStatus::Pending => 0,
            TxStatus::Approved => 1,
            TxStatus::Declined => 2,
            TxStatus::Refunded => 3,
        }
    }
}

impl fmt::Display for TxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which inputs a batch row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// A transaction with at least one statement line.
    Both,
    /// A transaction with no statement line.
    TransactionOnly,
    /// Statement lines whose transaction is unknown.
    StatementOnly,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Both => "BOTH",
            Side::TransactionOnly => "TRANSACTION_ONLY",
            Side::StatementOnly => "STATEMENT_ONLY",
        }
    }
}

/// The batch index's verdict on one transaction (or one unknown statement transaction id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReconciledStatus {
    /// Posted amount plus fee equals the expected amount within the tolerance (or a
    /// transaction expected to post nothing posted nothing).
    Matched,
    /// Posted, but the amounts differ by more than the tolerance.
    Partial,
    /// No statement line for the transaction, or statement lines with no transaction.
    Unmatched,
}

impl ReconciledStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconciledStatus::Matched => "MATCHED",
            ReconciledStatus::Partial => "PARTIAL",
            ReconciledStatus::Unmatched => "UNMATCHED",
        }
    }
}

/// A merchant's risk level from its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "LOW",
            RiskLevel::Medium => "MEDIUM",
            RiskLevel::High => "HIGH",
        }
    }
    pub fn parse(text: &str) -> Option<RiskLevel> {
        [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// One event of the payment stream. `user_id` is PII: it only leaves the core masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transaction<'a> {
    pub transaction_id: &'a str,
    pub merchant_id: &'a str,
    pub user_id: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
    pub status: TxStatus,
    /// Event time, microseconds since the Unix epoch (UTC).
    pub timestamp_us: i64,
}

/// One line of a bank or aggregator statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatementLine<'a> {
    pub statement_id: &'a str,
    pub transaction_id: &'a str,
    /// Days since the Unix epoch.
    pub posting_date: i32,
    pub amount_posted: Decimal,
    pub fee_charged: Decimal,
}

/// One inference of the fraud model; the latest inference per transaction wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FraudSignal<'a> {
    pub fraud_signal_id: &'a str,
    pub transaction_id: &'a str,
    /// 0 to 1.
    pub fraud_score: Decimal,
    pub model_version: &'a str,
    /// Microseconds since the Unix epoch (UTC).
    pub inference_time_us: i64,
}

/// A merchant's profile (reference data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub merchant_id: String,
    pub merchant_name: String,
    pub risk_level: RiskLevel,
    /// Days since the Unix epoch.
    pub onboarding_date: Option<i32>,
}
