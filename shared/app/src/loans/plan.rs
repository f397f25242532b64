//! What a loan expects next, from its borrower's history and its declared schedule, and how
//! a payment changes it. Pure functions: the handlers read, call these, and write.

use chrono::{Days, NaiveDate};
use payops_core::Money;
use payops_core::paydays::infer::REGULAR_OUTCOMES_MIN;
use payops_core::paydays::{Confidence, Frequency, Schedule, infer};
use rust_decimal::Decimal;

use super::layout::{self, FlagRecord, History, HistoryEntry, LoanRecord, LoanStatus};
use crate::ports::Key;

/// A matching payment this many days before the expected date still covers it (payroll run
/// early); an earlier one is an extra payment and leaves the expected date alone.
pub const COVER_EARLY_DAYS: u64 = 3;

/// The schedule in use and the next expected date (or window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub schedule: Option<Schedule>,
    pub frequency: Option<Frequency>,
    pub confidence: Confidence,
    pub expected_date: Option<NaiveDate>,
    pub window_start: Option<NaiveDate>,
}

/// The plan after `after`: the inferred schedule when the history shows one; else the
/// declared schedule while the history is too short to tell; else the irregular window.
pub fn plan(dates: &[NaiveDate], declared: Option<Schedule>, after: NaiveDate) -> Plan {
    let inference = infer(dates, after);
    if let (Some(schedule), Some(next)) = (inference.schedule, inference.next_date) {
        return Plan {
            schedule: Some(schedule),
            frequency: Some(schedule.frequency()),
            confidence: inference.confidence,
            expected_date: Some(next),
            window_start: None,
        };
    }
    let too_short = dates.len() < REGULAR_OUTCOMES_MIN as usize;
    if let Some(declared) = declared
        && too_short
    {
        return Plan {
            schedule: Some(declared),
            frequency: Some(declared.frequency()),
            confidence: Confidence::ZERO,
            expected_date: declared.next_paid_after(after),
            window_start: None,
        };
    }
    match inference.next_window {
        Some(window) => Plan {
            schedule: None,
            frequency: Some(Frequency::Irregular),
            confidence: inference.confidence,
            expected_date: Some(window.latest),
            window_start: Some(window.earliest),
        },
        None => Plan {
            schedule: None,
            frequency: None,
            confidence: Confidence::ZERO,
            expected_date: None,
            window_start: None,
        },
    }
}

/// True when `amount` in `currency` pays the loan's instalment within its tolerance.
pub fn amount_matches(loan: &LoanRecord, amount: &Money) -> bool {
    if amount.currency() != loan.currency {
        return false;
    }
    let allowed = (loan.amount * loan.tolerance).abs();
    (amount.amount() - loan.amount).abs() <= allowed
}

fn apply_plan(loan: &mut LoanRecord, plan: &Plan) {
    loan.schedule = plan.schedule;
    loan.frequency = plan.frequency;
    loan.confidence = plan.confidence;
}

fn set_expected(loan: &mut LoanRecord, plan: &Plan) {
    loan.expected_date = plan.expected_date;
    loan.window_start = plan.window_start;
}

/// The loan after a payment on `paid_on` (the history already holds it), and the late record
/// to write when the payment clears a missed flag.
pub fn apply_payment(
    loan: &LoanRecord,
    history: &History,
    paid_on: NaiveDate,
    amount: &Money,
) -> (LoanRecord, Option<FlagRecord>) {
    let mut next = loan.clone();
    next.version += 1;
    if loan.last_paid_on.is_none_or(|last| paid_on >= last) {
        next.last_paid_on = Some(paid_on);
        next.last_paid_amount = Some(amount.amount());
    }
    let dates = history.dates();
    // An event that arrives out of order must not plan from a truncated history.
    let as_of = loan.last_paid_on.map_or(paid_on, |last| last.max(paid_on));
    let schedule_plan = plan(&dates, loan.declared_schedule, as_of);
    apply_plan(&mut next, &schedule_plan);
    if !amount_matches(loan, amount) {
        // An instalment not paid in full: the expected date stands, so the checker flags it.
        if next.expected_date.is_none() {
            set_expected(&mut next, &schedule_plan);
        }
        return (next, None);
    }
    if loan.status == LoanStatus::Missed
        && let Some(missed) = loan.missed_expected_date
        && paid_on >= missed
    {
        // The missed instalment, paid late: clear the flag and report it. The expected date
        // already moved past the missed one when the flag was set.
        next.status = LoanStatus::PaidLate;
        next.late_paid_on = Some(paid_on);
        let late = FlagRecord {
            loan_id: loan.loan_id.clone(),
            employer_id: loan.employer_id.clone(),
            expected_date: missed,
            amount: loan.amount,
            currency: loan.currency,
            schedule: loan.schedule.map(|s| s.to_string()),
            frequency: loan.frequency.map(|f| f.as_str().to_owned()),
            last_paid_on: loan.last_paid_on,
            last_paid_amount: loan.last_paid_amount,
            paid_on: Some(paid_on),
            paid_amount: Some(amount.amount()),
            event_sent: false,
        };
        return (next, Some(late));
    }
    let covers = loan.expected_date.is_none_or(|expected| {
        paid_on
            >= expected
                .checked_sub_days(Days::new(COVER_EARLY_DAYS))
                .unwrap_or(expected)
    });
    if covers {
        let after = match (loan.expected_date, schedule_plan.schedule) {
            (Some(expected), Some(_)) => expected.max(paid_on),
            _ => as_of,
        };
        let cover_plan = if after == as_of {
            schedule_plan
        } else {
            plan(&dates, loan.declared_schedule, after)
        };
        set_expected(&mut next, &cover_plan);
        if next.status == LoanStatus::PaidLate {
            next.status = LoanStatus::Current;
        }
    }
    (next, None)
}

/// The loan after a payment of it failed or was reversed (`history` no longer holds
/// `removed`), and the key of the late record to delete when that payment had cleared a flag.
///
/// - Last paid: the loan's newest remaining payment.
/// - A late payment that had cleared a missed flag: the flag stands again (`MISSED`).
/// - An instalment the payment covered is expected again: the expected date moves back to the
///   first payroll after the loan's newest remaining payment, its latest flagged date and its
///   creation day (whichever is latest: the checker never flags a date twice, nor one before
///   the loan), and never later than it was. When that date has passed, the next morning's
///   checker finds the loan under it and flags it. A payment outside the amount tolerance
///   covered nothing, so its reversal leaves the expected date alone.
pub fn apply_reversal(
    loan: &LoanRecord,
    history: &History,
    removed: &HistoryEntry,
    amount: &Money,
) -> (LoanRecord, Option<Key>) {
    let mut next = loan.clone();
    next.version += 1;
    let of_loan = |e: &&HistoryEntry| e.loan_id.as_deref().is_none_or(|l| l == loan.loan_id);
    let remaining = history.entries.iter().rev().find(of_loan);
    next.last_paid_on = remaining.map(|e| e.date);
    next.last_paid_amount = remaining.map(|e| e.amount);
    let mut late_record = None;
    if loan.status == LoanStatus::PaidLate
        && loan.late_paid_on == Some(removed.date)
        && let Some(missed) = loan.missed_expected_date
    {
        next.status = LoanStatus::Missed;
        next.late_paid_on = None;
        late_record = Some(Key::new(
            layout::late_partition(removed.date),
            layout::flag_sk(&loan.loan_id, missed),
        ));
    }
    if !amount_matches(loan, amount) {
        return (next, late_record);
    }
    let created_on = loan
        .created_at
        .get(..10)
        .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok());
    let floor = [next.last_paid_on, loan.missed_expected_date, created_on]
        .into_iter()
        .flatten()
        .max()
        .or_else(|| removed.date.pred_opt());
    let Some(as_of) = floor else {
        return (next, late_record);
    };
    let replanned = plan(&history.dates(), loan.declared_schedule, as_of);
    apply_plan(&mut next, &replanned);
    if let Some(back) = replanned.expected_date
        && loan.expected_date.is_none_or(|current| back < current)
    {
        set_expected(&mut next, &replanned);
    }
    (next, late_record)
}

/// The loan after the checker found its expected date `expected` unpaid on `checked_on`:
/// flagged, and moved on to the next expected date so that the next miss is caught too.
pub fn apply_miss(
    loan: &LoanRecord,
    history: &History,
    expected: NaiveDate,
    checked_on: NaiveDate,
) -> (LoanRecord, FlagRecord) {
    let mut next = loan.clone();
    next.version += 1;
    next.status = LoanStatus::Missed;
    next.missed_on = Some(checked_on);
    next.missed_expected_date = Some(expected);
    next.late_paid_on = None;
    let moved = match loan.schedule {
        Some(schedule) => Plan {
            schedule: Some(schedule),
            frequency: loan.frequency,
            confidence: loan.confidence,
            expected_date: schedule.next_paid_after(expected),
            window_start: None,
        },
        None => plan(&history.dates(), loan.declared_schedule, expected),
    };
    set_expected(&mut next, &moved);
    let flag = FlagRecord {
        loan_id: loan.loan_id.clone(),
        employer_id: loan.employer_id.clone(),
        expected_date: expected,
        amount: loan.amount,
        currency: loan.currency,
        schedule: loan.schedule.map(|s| s.to_string()),
        frequency: loan.frequency.map(|f| f.as_str().to_owned()),
        last_paid_on: loan.last_paid_on,
        last_paid_amount: loan.last_paid_amount,
        paid_on: None,
        paid_amount: None,
        event_sent: false,
    };
    (next, flag)
}

/// A new loan's record, planned from the borrower's history as of `today`.
#[allow(clippy::too_many_arguments)]
pub fn new_loan(
    loan_id: String,
    borrower_id: String,
    employer_id: String,
    instalment: Money,
    tolerance: Decimal,
    declared_schedule: Option<Schedule>,
    history: &History,
    today: NaiveDate,
    created_at: String,
) -> LoanRecord {
    let dates = history.dates();
    let p = plan(&dates, declared_schedule, today);
    LoanRecord {
        loan_id,
        borrower_id: payops_core::Secret::new(borrower_id),
        employer_id,
        amount: instalment.amount(),
        currency: instalment.currency(),
        tolerance,
        declared_schedule,
        schedule: p.schedule,
        frequency: p.frequency,
        confidence: p.confidence,
        status: LoanStatus::Current,
        expected_date: p.expected_date,
        window_start: p.window_start,
        missed_on: None,
        missed_expected_date: None,
        last_paid_on: history.entries.last().map(|e| e.date),
        last_paid_amount: history.entries.last().map(|e| e.amount),
        late_paid_on: None,
        created_at,
        version: 1,
    }
}
