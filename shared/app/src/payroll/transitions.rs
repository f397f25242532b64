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
///
/// Each stripe also keeps the last payment moved under it, as the move left it (see
/// [`LastMoved`]), so the next report of the same payment starts from it without a read.
fn move_lock(batch_id: &str, row: u32) -> &'static tokio::sync::Mutex<LastMoved> {
    use std::hash::{Hash, Hasher};
    static LOCKS: std::sync::LazyLock<Vec<tokio::sync::Mutex<LastMoved>>> =
        std::sync::LazyLock::new(|| {
            (0..MOVE_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(LastMoved(None)))
                .collect()
        });
    let mut hasher = std::hash::DefaultHasher::new();
    (batch_id, row).hash(&mut hasher);
    &LOCKS[(hasher.finish() % MOVE_LOCK_STRIPES as u64) as usize]
}

/// The payment this process last moved or read under a stripe of [`move_lock`].
///
/// Why it may stand in for a read: statuses only move forward, so the stored payment is at
/// or past the copy. A move from the copy is conditional on the copy's status: if another
/// process moved the payment since, the condition fails and the payment is read again, as
/// with any stale copy. A report the copy already shows as late is late for the stored
/// payment too. The one thing a copy may miss is an event applied by another process, which
/// then comes back as `Stale` rather than `Duplicate`: both change nothing. What it saves:
/// a provider's `processing`, `sent` and `settled` of one payment arrive together, right
/// after the worker's own move, so each used to read the payment the move before had just
/// written (about three reads per payment in the local payroll benchmark).
struct LastMoved(Option<PaymentRecord>);

impl LastMoved {
    /// The copy of payment `row` of `batch_id`, if it is the one kept.
    fn of(&self, batch_id: &str, row: u32) -> Option<PaymentRecord> {
        self.0
            .as_ref()
            .filter(|p| p.row == row && p.batch_id == batch_id)
            .cloned()
    }
}

/// Of two copies of one payment, the one further along (statuses only move forward).
fn fresher(a: Option<PaymentRecord>, b: Option<PaymentRecord>) -> Option<PaymentRecord> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.status.rank() > a.status.rank() {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
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

    /// The payment as [`move_writes`] leaves it after moving it to `to`.
    pub fn after(&self, to: PaymentStatus, details: &MoveDetails) -> PaymentRecord {
        let mut moved = self.clone();
        moved.status = to;
        moved.settled_before |= to == PaymentStatus::Settled;
        if moved.provider_payment_id.is_none() {
            moved.provider_payment_id = details.provider_payment_id.clone();
        }
        if let Some(event_id) = &details.event_id {
            moved.applied_events.push((to, event_id.clone()));
        }
        moved
    }

    /// Whether `event_id` is the event that moved this payment to `status`.
    pub fn applied(&self, status: PaymentStatus, event_id: &str) -> bool {
        self.applied_events
            .iter()
            .any(|(s, id)| *s == status && id == event_id)
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
/// copy only costs a retry, since the move is conditional on the status it read). The copy
/// this process kept from its last move of the payment is used instead when it is further
/// along ([`LastMoved`]).
pub async fn apply_from(
    p: &Payroll,
    batch_id: &str,
    row: u32,
    known: Option<PaymentRecord>,
    to: PaymentStatus,
    details: &MoveDetails,
) -> Result<MoveOutcome, PayrollAppError> {
    let mut last_moved = move_lock(batch_id, row).lock().await;
    let mut known = fresher(known, last_moved.of(batch_id, row));
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
            let outcome = match &details.event_id {
                Some(event_id) if payment.applied(to, event_id) => MoveOutcome::Duplicate,
                _ => MoveOutcome::Stale { current: from },
            };
            last_moved.0 = Some(payment);
            return Ok(outcome);
        }
        let now = layout::time_text(p.clock.now());
        let writes = move_writes(&payment, to, details, &now)?;
        match p.table.transact(writes).await {
            Ok(()) => {
                last_moved.0 = Some(payment.after(to, details));
                return Ok(MoveOutcome::Applied { from, to });
            }
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
