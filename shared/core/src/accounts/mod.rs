//! Accounts and advances: the pure rules of issue 4. Amounts parsed exactly, the meaning of
//! `debit` and `credit`, the 12-instalment schedule with its roll-forward and audit rules,
//! and the report's window and pagination arithmetic.

pub mod advance;
pub mod amount;
pub mod direction;
pub mod ids;
pub mod report;
pub mod transaction;

pub use advance::{
    AdvanceError, AuditTotals, InstalmentStatus, InstalmentView, PlannedInstalment, RollTarget,
};
pub use amount::{AmountError, format_amount};
pub use direction::Direction;
pub use ids::{AccountId, AdvanceId, IdError, IdempotencyKey, TransactionId};
pub use transaction::{FailReason, TxKind, TxStatus};
