//! Reads and writes of loans and histories: creating a loan, recording a payment. Every write
//! is conditional on the version it read, and retried a bounded number of times on a race.

use chrono::NaiveDate;
use payops_core::paydays::Schedule;
use payops_core::payment_event::{PaymentEvent, PaymentStatus};
use payops_core::{Money, payment_event};
use rust_decimal::Decimal;

use super::layout::{
    self, History, HistoryEntry, LoanRecord, Undo, UndoEffect, history_from_item, history_item,
    history_key, loan_from_item, loan_item, loan_key,
};
use super::plan;
use super::{Loans, LoansError};
use crate::ports::{Condition, Key, Table, TableError, Write};

/// Default tolerance of a payment's amount: 1% of the instalment.
pub const AMOUNT_TOLERANCE_DEFAULT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
/// Largest tolerance a loan may have (50%).
pub const AMOUNT_TOLERANCE_MAX: Decimal = Decimal::from_parts(5, 0, 0, false, 1);
/// Attempts of one optimistic write before giving up (the queue retries the message).
pub const WRITE_ATTEMPTS_MAX: usize = 8;

/// A loan to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLoan {
    pub loan_id: String,
    pub borrower_id: String,
    pub employer_id: String,
    pub instalment: Money,
    pub tolerance: Decimal,
    pub declared_schedule: Option<Schedule>,
}

impl NewLoan {
    /// Validates ids (the payment events' id rules), the amount and the tolerance.
    pub fn validate(&self) -> Result<(), LoansError> {
        for (field, value) in [
            ("loan_id", &self.loan_id),
            ("employer_id", &self.employer_id),
        ] {
            payment_event::LoanId::parse(value)
                .map_err(|reason| LoansError::invalid(field, reason.to_string()))?;
        }
        payment_event::BorrowerId::parse(&self.borrower_id)
            .map_err(|reason| LoansError::invalid("borrower_id", reason.to_string()))?;
        if self.instalment.amount() <= Decimal::ZERO {
            return Err(LoansError::invalid("amount", "must be positive"));
        }
        if self.tolerance < Decimal::ZERO || self.tolerance > AMOUNT_TOLERANCE_MAX {
            return Err(LoansError::invalid(
                "amount_tolerance",
                format!("must be between 0 and {AMOUNT_TOLERANCE_MAX}"),
            ));
        }
        Ok(())
    }
}

/// What recording a payment event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A paid event added to the history (and applied to its loan, if the loan is known).
    Recorded { loan_updated: bool },
    /// The history already handled this event: a redelivery; nothing changed.
    AlreadyRecorded,
    /// A paid event older than the whole (full) history: ignored.
    Ignored,
    /// A failed/reversed event took its payment out of the history (and out of its loan, if
    /// the loan is known).
    Undone { loan_updated: bool },
    /// A failed/reversed event whose payment is not in the history (yet): remembered, so that
    /// the payment, if it arrives later, is not added.
    UndoPending,
    /// A paid event whose failure or reversal arrived first: not added.
    Cancelled,
}

fn corrupt(key: &Key, source: layout::CorruptItem) -> LoansError {
    LoansError::Corrupt {
        key: format!("{}/{}", key.pk, key.sk),
        source,
    }
}

pub(crate) async fn read_history(
    table: &dyn Table,
    borrower_id: &str,
) -> Result<History, LoansError> {
    let key = history_key(borrower_id);
    match table.get(&key).await? {
        None => Ok(History::default()),
        Some(item) => history_from_item(&item).map_err(|e| corrupt(&key, e)),
    }
}

pub(crate) async fn read_loan(
    table: &dyn Table,
    loan_id: &str,
) -> Result<Option<LoanRecord>, LoansError> {
    let key = loan_key(loan_id);
    match table.get(&key).await? {
        None => Ok(None),
        Some(item) => loan_from_item(&item)
            .map(Some)
            .map_err(|e| corrupt(&key, e)),
    }
}

/// The condition that a versioned item is still at `version` (0: does not exist yet).
pub(crate) fn at_version(version: u64) -> Condition {
    if version == 0 {
        Condition::ItemNotExists
    } else {
        Condition::eq(layout::attr::VERSION, Decimal::from(version))
    }
}

/// True when a write lost a race (a condition on a version, or a conflicting transaction).
pub(crate) fn lost_race(e: &TableError) -> bool {
    matches!(
        e,
        TableError::ConditionFailed | TableError::TransactionCanceled { .. }
    )
}

/// Applies a payment event to its borrower's history and its loan, in one transaction: a paid
/// event adds its payment; a failed or reversed one takes the payment out again (see
/// [`layout::Undo`] for which payment, and for one delivered before its payment).
/// Idempotent: the history remembers the ids of the events it handled, so a redelivery
/// changes nothing, and a payment taken out is never added back by its own redelivery.
pub async fn record_payment(
    table: &dyn Table,
    event: &PaymentEvent,
) -> Result<RecordOutcome, LoansError> {
    match event.status {
        PaymentStatus::Paid => record_paid(table, event).await,
        PaymentStatus::Failed | PaymentStatus::Reversed => record_undo(table, event).await,
    }
}

/// The loan of `event` when it belongs to the event's borrower.
async fn loan_of(
    table: &dyn Table,
    event: &PaymentEvent,
) -> Result<Option<LoanRecord>, LoansError> {
    match read_loan(table, event.loan_id.as_str()).await? {
        Some(loan) if loan.borrower_id.expose() == event.borrower_id.expose() => Ok(Some(loan)),
        Some(_) => {
            tracing::warn!(loan_id = %event.loan_id, "payment's borrower is not the loan's; loan left alone");
            Ok(None)
        }
        None => Ok(None),
    }
}

fn history_write(borrower: &str, history: &History, read_version: u64) -> Write {
    Write::Put {
        item: history_item(borrower, history),
        condition: Some(at_version(read_version)),
    }
}

async fn record_paid(table: &dyn Table, event: &PaymentEvent) -> Result<RecordOutcome, LoansError> {
    let borrower = event.borrower_id.expose();
    let paid_on = event.day();
    for _ in 0..WRITE_ATTEMPTS_MAX {
        let history = read_history(table, borrower).await?;
        if history.handled(event.event_id.as_str()) {
            return Ok(RecordOutcome::AlreadyRecorded);
        }
        let mut updated = history.clone();
        updated.version = history.version + 1;
        if updated.cancel_by_pending(
            event.loan_id.as_str(),
            event.amount.amount(),
            &event.paid_at_text(),
            event.event_id.as_str(),
        ) {
            // Its failure or reversal came first: the payment never counts, and the loan never
            // saw it.
            match table
                .transact(vec![history_write(borrower, &updated, history.version)])
                .await
            {
                Ok(()) => return Ok(RecordOutcome::Cancelled),
                Err(e) if lost_race(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !updated.insert(HistoryEntry {
            date: paid_on,
            amount: event.amount.amount(),
            event_id: event.event_id.as_str().to_owned(),
            loan_id: Some(event.loan_id.as_str().to_owned()),
        }) {
            return Ok(RecordOutcome::Ignored);
        }
        let mut writes = vec![history_write(borrower, &updated, history.version)];
        let loan = loan_of(table, event).await?;
        if let Some(loan) = &loan {
            let (next, late) = plan::apply_payment(loan, &updated, paid_on, &event.amount);
            writes.push(Write::Put {
                item: loan_item(&next),
                condition: Some(at_version(loan.version)),
            });
            if let Some(late) = late {
                writes.push(Write::Put {
                    item: layout::flag_item(layout::late_partition(paid_on), &late),
                    condition: None,
                });
            }
        }
        match table.transact(writes).await {
            Ok(()) => {
                return Ok(RecordOutcome::Recorded {
                    loan_updated: loan.is_some(),
                });
            }
            Err(e) if lost_race(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(LoansError::Contended(format!(
        "history of loan {}",
        event.loan_id
    )))
}

async fn record_undo(table: &dyn Table, event: &PaymentEvent) -> Result<RecordOutcome, LoansError> {
    let borrower = event.borrower_id.expose();
    for _ in 0..WRITE_ATTEMPTS_MAX {
        let history = read_history(table, borrower).await?;
        if history.handled(event.event_id.as_str()) {
            return Ok(RecordOutcome::AlreadyRecorded);
        }
        let mut updated = history.clone();
        updated.version = history.version + 1;
        let effect = updated.undo(Undo {
            event_id: event.event_id.as_str().to_owned(),
            loan_id: event.loan_id.as_str().to_owned(),
            amount: event.amount.amount(),
            paid_at: event.paid_at_text(),
            paid_event_id: None,
        });
        let mut writes = vec![history_write(borrower, &updated, history.version)];
        let mut loan_updated = false;
        if let UndoEffect::Removed(removed) = &effect
            && let Some(loan) = loan_of(table, event).await?
        {
            let (next, late_record) = plan::apply_reversal(&loan, &updated, removed, &event.amount);
            writes.push(Write::Put {
                item: loan_item(&next),
                condition: Some(at_version(loan.version)),
            });
            if let Some(key) = late_record {
                // The late payment that cleared the flag is gone: so is its line in the
                // late report of a re-run.
                writes.push(Write::Delete {
                    key,
                    condition: None,
                });
            }
            loan_updated = true;
        }
        match table.transact(writes).await {
            Ok(()) => {
                return Ok(match effect {
                    UndoEffect::Removed(_) => RecordOutcome::Undone { loan_updated },
                    UndoEffect::Pending => RecordOutcome::UndoPending,
                });
            }
            Err(e) if lost_race(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(LoansError::Contended(format!(
        "history of loan {}",
        event.loan_id
    )))
}

/// Creates a loan, planned from its borrower's history as of `today`. Idempotent: creating
/// the same loan again returns the stored one; other terms under the same id are a conflict.
pub async fn create_loan(
    loans: &Loans,
    new: NewLoan,
    today: NaiveDate,
) -> Result<(LoanRecord, bool), LoansError> {
    new.validate()?;
    let table = loans.table.as_ref();
    if let Some(existing) = read_loan(table, &new.loan_id).await? {
        return same_terms(existing, &new).map(|l| (l, false));
    }
    let history = read_history(table, &new.borrower_id).await?;
    let created_at = payment_event::format_paid_at(&loans.clock.now());
    let record = plan::new_loan(
        new.loan_id.clone(),
        new.borrower_id.clone(),
        new.employer_id.clone(),
        new.instalment,
        new.tolerance,
        new.declared_schedule,
        &history,
        today,
        created_at,
    );
    match table
        .put(loan_item(&record), Some(Condition::ItemNotExists))
        .await
    {
        Ok(()) => Ok((record, true)),
        Err(TableError::ConditionFailed) => {
            // Created concurrently: the same answer as if it had been there first.
            let existing = read_loan(table, &new.loan_id)
                .await?
                .ok_or_else(|| LoansError::Contended(new.loan_id.clone()))?;
            same_terms(existing, &new).map(|l| (l, false))
        }
        Err(e) => Err(e.into()),
    }
}

fn same_terms(existing: LoanRecord, new: &NewLoan) -> Result<LoanRecord, LoansError> {
    let same = existing.borrower_id.expose() == &new.borrower_id
        && existing.employer_id == new.employer_id
        && existing.amount == new.instalment.amount()
        && existing.currency == new.instalment.currency()
        && existing.tolerance == new.tolerance
        && existing.declared_schedule == new.declared_schedule;
    if same {
        Ok(existing)
    } else {
        Err(LoansError::Conflict(new.loan_id.clone()))
    }
}
