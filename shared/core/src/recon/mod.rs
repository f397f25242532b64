//! Reconciliation (flow 5): the named rules and the batch matcher, pure.
//!
//! - [`discrepancy`]: calculate discrepancy, expected postings, the MATCHED/PARTIAL/UNMATCHED
//!   verdict;
//! - [`status`]: derive status (latest by event time, blended with the bank's);
//! - [`compliance`]: policy flags and the one compliance assessment;
//! - [`mask`]: keyed tokenization of user ids;
//! - [`kpis`]: merchant KPIs;
//! - [`matcher`]: one hash partition of a day's transactions against its statement lines;
//! - [`merge`]: the final aggregate row;
//! - [`partition`]: the hash partitioning both inputs share;
//! - [`text`]: exact parsing of the inputs' text fields.

pub mod compliance;
pub mod discrepancy;
pub mod kpis;
pub mod mask;
pub mod matcher;
pub mod merge;
pub mod partition;
pub mod status;
pub mod text;
pub mod types;

pub use compliance::{
    Assessment, Policy, PolicyFlag, PolicyFlags, PolicyType, flag_compliance, policy_flags,
};
pub use discrepancy::{TOLERANCE_DEFAULT, calculate_discrepancy, classify, expected_posting};
pub use kpis::MerchantKpis;
pub use mask::{MaskError, MaskedId, UserIdMasker};
pub use matcher::{BatchRow, MatchStats, reconcile};
pub use merge::{FinalRow, MergeContext, add_to_kpis, latest_fraud_scores, merge_row};
pub use partition::{PARTITIONS_MAX, partition_of};
pub use status::{derive_status, latest_status, supersedes};
pub use types::{
    FraudSignal, Merchant, ReconciledStatus, RiskLevel, Side, StatementLine, Transaction, TxStatus,
};

/// Decimal places kept for amounts (Parquet `DECIMAL(18,4)`): cents and fractions of a cent.
pub const AMOUNT_SCALE: u32 = 4;
/// Decimal places kept for fraud scores (Parquet `DECIMAL(7,6)`).
pub const FRAUD_SCORE_SCALE: u32 = 6;
