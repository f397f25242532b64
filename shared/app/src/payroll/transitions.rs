//! One status move of one payment, atomically with everything that depends on it: the
//! payment's conditional update (its status must still be what was read), the per-source and
//! per-branch aggregates (counts and amounts move from the old status to the new), the ledger
//! transaction the move records (put only if absent), and, for a webhook, the event's id on
//! the payment (`event_{STATUS}`, so a redelivered event is recognised: a status is reached
//! at most once). All in one table transaction.

use payops_core::payroll::{PaymentStatus, ledger};
use rust_decimal::Decimal;

use super::layout::{self, attr};
use super::{Payroll, PayrollAppError};
use crate::ports::table::TRANSACTION_WRITES_MAX;
use crate::ports::{Condition, Item, TableError, UpdateAction, Write};

/// Reads and retries when another writer moved the payment in between.
pub const MOVE_ATTEMPTS_MAX: usize = 8;
/// Stripes of the in-process lock that queues the moves of one payment ([`move_lock`]).
pub const MOVE_LOCK_STRIPES: usize = 1024;

/// The lock that moves of this payment take in this process: they wait for each other
/// instead of racing to the table, where all but one would fail their condition and read
/// and write again. A provider sends a payment's `processing`, `sent` and `settled` side by
/// side, beside the worker's own move: in the local payroll benchmark nearly every payment
/// had one such lost race, each a wasted transaction on the single SQLite writer.
/// Correctness never depends on it: between processes (Lambdas) the conditional write
/// decides, as it always does.
fn move_lock(batch_id: &str, row: u32) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    static LOCKS: std::sync::LazyLock<Vec<tokio::sync::Mutex<()>>> =
        std::sync::LazyLock::new(|| {
            (0..MOVE_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect()
        });
    let mut hasher = std::hash::DefaultHasher::new();
    (batch_id, row).hash(&mut hasher);
    &LOCKS[(hasher.finish() % MOVE_LOCK_STRIPES as u64) as usize]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Applied {
        from: PaymentStatus,
        to: PaymentStatus,
    },
    /// The payment is already at or past `to` (a late or repeated report): nothing changed.
    Stale {
        current: PaymentStatus,
    },
    /// The webhook event was applied before.
    Duplicate,
    UnknownPayment,
}

/// A payment item read back: what a move needs.
#[derive(Debug, Clone)]
pub struct PaymentRecord {
    pub batch_id: String,
    pub row: u32,
    pub payment_id: String,
    pub status: PaymentStatus,
    pub amount: Decimal,
    pub source_id: String,
    pub branch_id: String,
    pub employee_id: String,
    pub loan_fingerprint: String,
    pub source_fingerprint: String,
    pub provider_payment_id: Option<String>,
    pub settled_before: bool,
    /// The webhook events that moved the payment, by the status each moved it to.
    pub applied_events: Vec<(PaymentStatus, String)>,
}

impl PaymentRecord {
    /// Whether `event_id` is the event that moved this payment to `status`.
    pub fn applied(&self, status: PaymentStatus, event_id: &str) -> bool {
        self.applied_events
            .iter()
            .any(|(s, id)| *s == status && id == event_id)
    }
}

impl PaymentRecord {
    pub fn from_item(item: &Item) -> Result<PaymentRecord, PayrollAppError> {
        let id = item.s(attr::PAYMENT_ID).unwrap_or("?").to_owned();
        let corrupt = || PayrollAppError::Corrupt(format!("payment {id}"));
        let s = |name: &str| item.s(name).map(str::to_owned).ok_or_else(corrupt);
        Ok(PaymentRecord {
            batch_id: s(attr::BATCH_ID)?,
            row: item
                .n(attr::ROW)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(corrupt)?,
            status: item
                .s(attr::STATUS)
                .and_then(|s| s.parse().ok())
                .ok_or_else(corrupt)?,
            amount: item.n(attr::AMOUNT).ok_or_else(corrupt)?,
            source_id: s(attr::SOURCE_ID)?,
            branch_id: s(attr::BRANCH_ID)?,
            employee_id: s(attr::EMPLOYEE_ID)?,
            loan_fingerprint: s(attr::LOAN_FINGERPRINT)?,
            source_fingerprint: s(attr::SOURCE_FINGERPRINT)?,
            provider_payment_id: item.s(attr::PROVIDER_PAYMENT_ID).map(str::to_owned),
            settled_before: item
                .get(attr::SETTLED_BEFORE)
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            applied_events: PaymentStatus::ALL
                .into_iter()
                .filter_map(|status| {
                    let id = item.s(&layout::applied_event_attr(status))?;
                    Some((status, id.to_owned()))
                })
                .collect(),
            payment_id: id,
        })
    }
}

pub async fn read_payment(
    p: &Payroll,
    batch_id: &str,
    row: u32,
) -> Result<Option<PaymentRecord>, PayrollAppError> {
    match p.table.get(&layout::payment_key(batch_id, row)).await? {
        Some(item) => PaymentRecord::from_item(&item).map(Some),
        None => Ok(None),
    }
}

/// What else a move records on the payment.
#[derive(Debug, Clone, Default)]
pub struct MoveDetails {
    pub provider_payment_id: Option<String>,
    pub failure_reason: Option<String>,
    /// The webhook event that reports the move, for duplicate detection.
    pub event_id: Option<String>,
}

/// The writes of one move (pure: tested without a table).
pub fn move_writes(
    payment: &PaymentRecord,
    to: PaymentStatus,
    details: &MoveDetails,
    now: &str,
) -> Result<Vec<Write>, PayrollAppError> {
    let from = payment.status;
    let batch_id = &payment.batch_id;
    let mut actions = vec![
        UpdateAction::set(attr::STATUS, to.as_str()),
        UpdateAction::set(attr::UPDATED_AT, now),
    ];
    if to == PaymentStatus::Settled {
        actions.push(UpdateAction::set(attr::SETTLED_BEFORE, true));
    }
    if let Some(id) = &details.provider_payment_id {
        actions.push(UpdateAction::set_if_not_exists(
            attr::PROVIDER_PAYMENT_ID,
            id.as_str(),
        ));
    }
    if let Some(reason) = &details.failure_reason {
        actions.push(UpdateAction::set(attr::FAILURE_REASON, reason.as_str()));
    }
    if let Some(event_id) = &details.event_id {
        actions.push(UpdateAction::set(
            &layout::applied_event_attr(to),
            event_id.as_str(),
        ));
    }
    let aggregate = |key| Write::Update {
        key,
        actions: layout::move_actions(from, to, payment.amount),
        condition: Some(Condition::ItemExists),
    };
    let mut writes = vec![
        Write::Update {
            key: layout::payment_key(batch_id, payment.row),
            actions,
            condition: Some(Condition::eq(attr::STATUS, from.as_str())),
        },
        aggregate(layout::source_key(batch_id, &payment.source_id)),
        aggregate(layout::branch_key(batch_id, &payment.branch_id)),
    ];
    let effective_from = if from == PaymentStatus::Settled || payment.settled_before {
        PaymentStatus::Settled
    } else {
        from
    };
    if let Some(tx) = ledger::for_move(
        &payment.payment_id,
        &payment.source_id,
        payment.amount,
        effective_from,
        to,
    )? {
        let item = layout::ledger_item(batch_id, &tx, now)?;
        writes.push(Write::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        });
    }
    debug_assert!(writes.len() <= TRANSACTION_WRITES_MAX);
    Ok(writes)
}

/// Moves the payment to `to` if that is forward, atomically with its aggregates and ledger.
pub async fn apply(
    p: &Payroll,
    batch_id: &str,
    row: u32,
    to: PaymentStatus,
    details: &MoveDetails,
) -> Result<MoveOutcome, PayrollAppError> {
    apply_from(p, batch_id, row, None, to, details).await
}

/// As [`apply`], starting from a payment the caller has just read (saves one read; a stale
/// copy only costs a retry, since the move is conditional on the status it read).
pub async fn apply_from(
    p: &Payroll,
    batch_id: &str,
    row: u32,
    mut known: Option<PaymentRecord>,
    to: PaymentStatus,
    details: &MoveDetails,
) -> Result<MoveOutcome, PayrollAppError> {
    let _queued = move_lock(batch_id, row).lock().await;
    for _ in 0..MOVE_ATTEMPTS_MAX {
        let payment = match known.take() {
            Some(payment) => payment,
            None => match read_payment(p, batch_id, row).await? {
                Some(payment) => payment,
                None => return Ok(MoveOutcome::UnknownPayment),
            },
        };
        let from = payment.status;
        if !from.can_move_to(to) {
            // A redelivery of the event that made this move is a duplicate, not a late report.
            if let Some(event_id) = &details.event_id
                && payment.applied(to, event_id)
            {
                return Ok(MoveOutcome::Duplicate);
            }
            return Ok(MoveOutcome::Stale { current: from });
        }
        let now = layout::time_text(p.clock.now());
        let writes = move_writes(&payment, to, details, &now)?;
        match p.table.transact(writes).await {
            Ok(()) => return Ok(MoveOutcome::Applied { from, to }),
            // Moved by someone else since the read: read again.
            Err(e) if e.failed_condition_at(0) || e.is_retryable() => continue,
            Err(e @ TableError::TransactionCanceled { .. }) => {
                return Err(PayrollAppError::Corrupt(format!(
                    "payment {}: move {from} -> {to} refused ({e})",
                    payment.payment_id
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PayrollAppError::NotReady(format!(
        "payment {batch_id}-r{row} kept changing; {MOVE_ATTEMPTS_MAX} attempts"
    )))
}
