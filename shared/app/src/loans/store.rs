//! Reads and writes of loans and histories: creating a loan, recording a payment. Every write
//! is conditional on the version it read, and retried a bounded number of times on a race.

use chrono::NaiveDate;
use payops_core::paydays::Schedule;
use payops_core::payment_event::{PaymentEvent, PaymentStatus};
use payops_core::{Money, payment_event};
use rust_decimal::Decimal;

use super::layout::{
    self, History, HistoryEntry, LoanRecord, history_from_item, history_item, history_key,
    loan_from_item, loan_item, loan_key,
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

/// What recording a payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Added to the history (and applied to its loan, if the loan is known).
    Recorded { loan_updated: bool },
    /// The history already holds this event: a redelivery; nothing changed.
    AlreadyRecorded,
    /// Not a paid event, or older than the whole (full) history: ignored.
    Ignored,
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

/// Adds a paid event to its borrower's history and applies it to its loan, in one
/// transaction. Idempotent: the history remembers event ids, so a redelivery changes nothing.
pub async fn record_payment(
    table: &dyn Table,
    event: &PaymentEvent,
) -> Result<RecordOutcome, LoansError> {
    if event.status != PaymentStatus::Paid {
        return Ok(RecordOutcome::Ignored);
    }
    let borrower = event.borrower_id.expose();
    let paid_on = event.day();
    for _ in 0..WRITE_ATTEMPTS_MAX {
        let history = read_history(table, borrower).await?;
        if history.contains(event.event_id.as_str()) {
            return Ok(RecordOutcome::AlreadyRecorded);
        }
        let mut updated = history.clone();
        if !updated.insert(HistoryEntry {
            date: paid_on,
            amount: event.amount.amount(),
            event_id: event.event_id.as_str().to_owned(),
        }) {
            return Ok(RecordOutcome::Ignored);
        }
        updated.version = history.version + 1;
        let mut writes = vec![Write::Put {
            item: history_item(borrower, &updated),
            condition: Some(at_version(history.version)),
        }];
        let loan = read_loan(table, event.loan_id.as_str()).await?;
        let loan_updated = match &loan {
            Some(loan) if loan.borrower_id.expose() == borrower => {
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
                true
            }
            Some(_) => {
                tracing::warn!(loan_id = %event.loan_id, "payment's borrower is not the loan's; loan left alone");
                false
            }
            None => false,
        };
        match table.transact(writes).await {
            Ok(()) => return Ok(RecordOutcome::Recorded { loan_updated }),
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
