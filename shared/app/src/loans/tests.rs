//! Unit tests of the pure rules: what a payment and a miss change.

use chrono::NaiveDate;
use payops_core::paydays::{Frequency, Schedule};
use payops_core::{Currency, Money};
use rust_decimal::Decimal;

use super::layout::{self, History, HistoryEntry, LoanStatus, Undo, UndoEffect};
use super::plan::{apply_miss, apply_payment, apply_reversal, new_loan, plan};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn history_of(schedule: Schedule, from: NaiveDate, to: NaiveDate) -> History {
    let mut dates = Vec::new();
    schedule.paid_dates(from, to, &mut dates);
    History {
        entries: dates
            .into_iter()
            .enumerate()
            .map(|(i, date)| HistoryEntry {
                date,
                amount: Decimal::new(25_000, 2),
                event_id: format!("evt_{i}"),
                loan_id: Some("l1".into()),
            })
            .collect(),
        undone: Vec::new(),
        version: 1,
    }
}

fn brl(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::BRL).unwrap()
}

#[test]
fn a_new_loan_is_planned_from_history_or_declared_schedule() {
    let biweekly: Schedule = "biweekly:2025-01-03".parse().unwrap();
    let history = history_of(biweekly, d(2025, 1, 1), d(2025, 6, 1));
    let loan = new_loan(
        "l1".into(),
        "b1".into(),
        "e1".into(),
        brl(25_000),
        Decimal::new(1, 2),
        None,
        &history,
        d(2025, 6, 1),
        "t".into(),
    );
    assert_eq!(loan.frequency, Some(Frequency::Biweekly));
    assert_eq!(loan.expected_date, biweekly.next_paid_after(d(2025, 6, 1)));
    let declared: Schedule = "monthly:last".parse().unwrap();
    let fresh = new_loan(
        "l2".into(),
        "b2".into(),
        "e1".into(),
        brl(25_000),
        Decimal::new(1, 2),
        Some(declared),
        &History::default(),
        d(2025, 6, 1),
        "t".into(),
    );
    assert_eq!(fresh.expected_date, Some(d(2025, 6, 30)));
    assert_eq!(fresh.schedule, Some(declared));
}

#[test]
fn a_matching_payment_moves_the_expected_date_and_a_short_one_does_not() {
    let monthly: Schedule = "monthly:15".parse().unwrap();
    let mut history = history_of(monthly, d(2024, 1, 1), d(2025, 4, 30));
    let loan = new_loan(
        "l1".into(),
        "b1".into(),
        "e1".into(),
        brl(25_000),
        Decimal::new(1, 2),
        None,
        &history,
        d(2025, 4, 30),
        "t".into(),
    );
    assert_eq!(loan.expected_date, Some(d(2025, 5, 15)));
    history.insert(HistoryEntry {
        date: d(2025, 5, 15),
        amount: Decimal::new(24_900, 2),
        event_id: "x".into(),
        loan_id: Some("l1".into()),
    });
    let (paid, late) = apply_payment(&loan, &history, d(2025, 5, 15), &brl(24_900));
    assert!(late.is_none());
    assert_eq!(
        paid.expected_date,
        Some(d(2025, 6, 13)),
        "Jun 15 2025 is a Sunday"
    );
    let (short, _) = apply_payment(&loan, &history, d(2025, 5, 15), &brl(20_000));
    assert_eq!(short.expected_date, Some(d(2025, 5, 15)));
    assert_eq!(short.last_paid_amount, Some(Decimal::new(20_000, 2)));
}

#[test]
fn a_miss_flags_and_moves_on_and_a_late_payment_clears_it() {
    let weekly: Schedule = "weekly:2025-01-03".parse().unwrap();
    let history = history_of(weekly, d(2025, 1, 1), d(2025, 5, 1));
    let loan = new_loan(
        "l1".into(),
        "b1".into(),
        "e1".into(),
        brl(25_000),
        Decimal::new(1, 2),
        None,
        &history,
        d(2025, 5, 1),
        "t".into(),
    );
    assert_eq!(loan.expected_date, Some(d(2025, 5, 2)));
    let (missed, flag) = apply_miss(&loan, &history, d(2025, 5, 2), d(2025, 5, 6));
    assert_eq!(missed.status, LoanStatus::Missed);
    assert_eq!(missed.expected_date, Some(d(2025, 5, 9)));
    assert_eq!(flag.expected_date, d(2025, 5, 2));
    let (cleared, late) = apply_payment(&missed, &history, d(2025, 5, 7), &brl(25_000));
    assert_eq!(cleared.status, LoanStatus::PaidLate);
    assert_eq!(cleared.expected_date, Some(d(2025, 5, 9)));
    assert_eq!(late.unwrap().paid_on, Some(d(2025, 5, 7)));
}

#[test]
fn an_irregular_borrower_expects_a_window() {
    let mut history = History::default();
    for (i, day) in [2u32, 9, 30, 41, 47, 80, 95, 99, 130].iter().enumerate() {
        history.insert(HistoryEntry {
            date: d(2025, 1, 1) + chrono::Duration::days(i64::from(*day)),
            amount: Decimal::ONE,
            event_id: format!("e{i}"),
            loan_id: None,
        });
    }
    let p = plan(&history.dates(), None, d(2025, 5, 15));
    assert_eq!(p.frequency, Some(Frequency::Irregular));
    assert!(p.window_start.unwrap() < p.expected_date.unwrap());
}

#[test]
fn items_round_trip() {
    let weekly: Schedule = "weekly:2025-01-03".parse().unwrap();
    let history = history_of(weekly, d(2025, 1, 1), d(2025, 5, 1));
    let loan = new_loan(
        "l1".into(),
        "b1".into(),
        "e1".into(),
        brl(25_000),
        Decimal::new(1, 2),
        Some(weekly),
        &history,
        d(2025, 5, 1),
        "t".into(),
    );
    let item = layout::loan_item(&loan);
    assert_eq!(layout::loan_from_item(&item).unwrap(), loan);
    assert!(
        item.s(layout::GSI1_PK)
            .unwrap()
            .starts_with("DUE#2025-05-02#")
    );
    let back = layout::history_from_item(&layout::history_item("b1", &history)).unwrap();
    assert_eq!(back, history);
}

fn entry(date: NaiveDate, cents: i64, event_id: &str, loan_id: &str) -> HistoryEntry {
    HistoryEntry {
        date,
        amount: Decimal::new(cents, 2),
        event_id: event_id.into(),
        loan_id: Some(loan_id.into()),
    }
}

fn undo(event_id: &str, loan_id: &str, cents: i64, paid_at: &str) -> Undo {
    Undo {
        event_id: event_id.into(),
        loan_id: loan_id.into(),
        amount: Decimal::new(cents, 2),
        paid_at: paid_at.into(),
        paid_event_id: None,
    }
}

#[test]
fn a_reversal_takes_out_the_newest_payment_of_its_loan_and_amount() {
    let mut history = History::default();
    history.insert(entry(d(2025, 5, 30), 30_000, "p_may", "l1"));
    history.insert(entry(d(2025, 6, 30), 30_000, "p_jun", "l1"));
    history.insert(entry(d(2025, 6, 30), 30_000, "p_other_loan", "l2"));
    history.insert(entry(d(2025, 6, 30), 12_000, "p_other_amount", "l1"));
    let effect = history.undo(undo("r1", "l1", 30_000, "2025-06-30T12:00:00.000000000Z"));
    assert_eq!(
        effect,
        UndoEffect::Removed(entry(d(2025, 6, 30), 30_000, "p_jun", "l1"))
    );
    let left: Vec<&str> = history
        .entries
        .iter()
        .map(|e| e.event_id.as_str())
        .collect();
    assert_eq!(left, ["p_may", "p_other_loan", "p_other_amount"]);
    // Both the reversal and the payment it took out are remembered: their redeliveries are
    // recognised, and the payment is never added back.
    assert!(history.handled("r1"));
    assert!(history.handled("p_jun"));
    assert!(history.contains("p_may"));
    assert_eq!(history.undone[0].paid_event_id.as_deref(), Some("p_jun"));
}

#[test]
fn a_failure_only_reaches_a_payment_of_its_own_day() {
    let mut history = History::default();
    // The previous payroll and a later payment of the same loan and amount are other payments.
    history.insert(entry(d(2025, 5, 30), 30_000, "p_may", "l1"));
    history.insert(entry(d(2025, 7, 1), 30_000, "p_later", "l1"));
    let effect = history.undo(undo("f1", "l1", 30_000, "2025-06-30T09:00:00.000000000Z"));
    assert_eq!(effect, UndoEffect::Pending);
    assert_eq!(history.entries.len(), 2);
    assert_eq!(history.undone[0].paid_event_id, None);
}

#[test]
fn a_pending_reversal_keeps_its_late_payment_out_but_not_a_later_retry() {
    let mut history = History::default();
    let effect = history.undo(undo("f1", "l1", 30_000, "2025-06-30T09:00:00.000000000Z"));
    assert_eq!(effect, UndoEffect::Pending);
    // A retry paid after the failure counts.
    assert!(!history.cancel_by_pending(
        "l1",
        Decimal::new(30_000, 2),
        "2025-06-30T14:00:00.000000000Z",
        "retry"
    ));
    // Another loan or amount is not the failed payment.
    assert!(!history.cancel_by_pending(
        "l2",
        Decimal::new(30_000, 2),
        "2025-06-30T08:00:00.000000000Z",
        "x"
    ));
    assert!(!history.cancel_by_pending(
        "l1",
        Decimal::new(29_000, 2),
        "2025-06-30T08:00:00.000000000Z",
        "x"
    ));
    // The failed payment itself, delivered after its failure, is kept out, once.
    assert!(history.cancel_by_pending(
        "l1",
        Decimal::new(30_000, 2),
        "2025-06-30T08:59:00.000000000Z",
        "p1"
    ));
    assert!(history.handled("p1"));
    assert!(!history.cancel_by_pending(
        "l1",
        Decimal::new(30_000, 2),
        "2025-06-30T08:59:00.000000000Z",
        "p2"
    ));
}

#[test]
fn the_history_item_keeps_loans_and_undone_events_and_reads_old_items() {
    let mut history = History::default();
    history.insert(entry(d(2025, 5, 30), 30_000, "p_may", "l1"));
    history.insert(entry(d(2025, 6, 30), 30_000, "p_jun", "l1"));
    history.undo(undo("r1", "l1", 30_000, "2025-06-30T12:00:00.000000000Z"));
    history.undo(undo("f1", "l1", 30_000, "2025-04-01T10:00:00.000000000Z"));
    assert_eq!(history.undone[0].paid_event_id.as_deref(), Some("p_jun"));
    assert_eq!(history.undone[1].paid_event_id, None);
    history.version = 7;
    let item = layout::history_item("b1", &history);
    assert_eq!(layout::history_from_item(&item).unwrap(), history);
    // An item written before loan ids and undone events were kept.
    let old = crate::ports::Item::new(&layout::history_key("b1"))
        .with(layout::attr::PAYMENTS, "2025-05-30 300.00 p_may")
        .with(layout::attr::VERSION, Decimal::ONE);
    let read = layout::history_from_item(&old).unwrap();
    assert_eq!(read.entries[0].loan_id, None);
    assert!(read.undone.is_empty());
    let broken = crate::ports::Item::new(&layout::history_key("b1"))
        .with(layout::attr::PAYMENTS, "")
        .with(layout::attr::UNDONE, "r1 l1 300")
        .with(layout::attr::VERSION, Decimal::ONE);
    assert_eq!(
        layout::history_from_item(&broken).unwrap_err().attribute,
        layout::attr::UNDONE
    );
}

#[test]
fn the_undone_list_is_bounded() {
    let mut history = History::default();
    for i in 0..(layout::UNDONE_MAX + 5) {
        history.undo(undo(
            &format!("r{i}"),
            "l1",
            100,
            "2025-07-03T10:00:00.000000000Z",
        ));
    }
    assert_eq!(history.undone.len(), layout::UNDONE_MAX);
    assert!(!history.handled("r0"), "the oldest are forgotten");
    assert!(history.handled(&format!("r{}", layout::UNDONE_MAX + 4)));
}

/// A monthly-last loan created on Jun 2 2025, paid on May 30 and Jun 30 (history of l1).
fn monthly_loan_paid_through_june() -> (layout::LoanRecord, History) {
    let monthly: Schedule = "monthly:last".parse().unwrap();
    let mut history = history_of(monthly, d(2024, 6, 1), d(2025, 5, 31));
    let loan = new_loan(
        "l1".into(),
        "b1".into(),
        "e1".into(),
        brl(25_000),
        Decimal::new(1, 2),
        None,
        &history,
        d(2025, 6, 2),
        "2025-06-02T09:00:00.000000000Z".into(),
    );
    assert_eq!(loan.expected_date, Some(d(2025, 6, 30)));
    history.insert(entry(d(2025, 6, 30), 25_000, "p_jun", "l1"));
    let (paid, _) = apply_payment(&loan, &history, d(2025, 6, 30), &brl(25_000));
    assert_eq!(paid.expected_date, Some(d(2025, 7, 31)));
    (paid, history)
}

#[test]
fn reversing_the_payment_that_covered_a_payroll_expects_that_payroll_again() {
    let (loan, mut history) = monthly_loan_paid_through_june();
    let UndoEffect::Removed(removed) =
        history.undo(undo("r1", "l1", 25_000, "2025-06-30T12:00:00.000000000Z"))
    else {
        panic!("the June payment matches");
    };
    let (reversed, late) = apply_reversal(&loan, &history, &removed, &brl(25_000));
    assert_eq!(late, None);
    assert_eq!(
        reversed.expected_date,
        Some(d(2025, 6, 30)),
        "June is due again"
    );
    assert_eq!(reversed.last_paid_on, Some(d(2025, 5, 30)));
    assert_eq!(reversed.status, LoanStatus::Current);
    assert_eq!(reversed.version, loan.version + 1);
    // The checker then finds June unpaid and flags it.
    let (missed, flag) = apply_miss(&reversed, &history, d(2025, 6, 30), d(2025, 7, 4));
    assert_eq!(missed.status, LoanStatus::Missed);
    assert_eq!(flag.expected_date, d(2025, 6, 30));
}

#[test]
fn reversing_a_short_payment_leaves_the_expected_date() {
    let (loan, mut history) = monthly_loan_paid_through_june();
    history.insert(entry(d(2025, 7, 2), 5_000, "p_extra", "l1"));
    let (after_extra, _) = apply_payment(&loan, &history, d(2025, 7, 2), &brl(5_000));
    let UndoEffect::Removed(removed) =
        history.undo(undo("r1", "l1", 5_000, "2025-07-02T12:00:00.000000000Z"))
    else {
        panic!("the extra payment matches");
    };
    let (reversed, _) = apply_reversal(&after_extra, &history, &removed, &brl(5_000));
    assert_eq!(reversed.expected_date, Some(d(2025, 7, 31)));
    assert_eq!(reversed.last_paid_on, Some(d(2025, 6, 30)));
}

#[test]
fn reversing_a_late_payment_restores_its_missed_flag_without_flagging_twice() {
    let (loan, mut history) = monthly_loan_paid_through_june();
    // July 31 goes unpaid and is flagged; the payment arrives late on Aug 5, then is reversed.
    let (missed, _) = apply_miss(&loan, &history, d(2025, 7, 31), d(2025, 8, 2));
    assert_eq!(missed.expected_date, Some(d(2025, 8, 29)));
    history.insert(entry(d(2025, 8, 5), 25_000, "p_late", "l1"));
    let (cleared, late) = apply_payment(&missed, &history, d(2025, 8, 5), &brl(25_000));
    assert!(late.is_some());
    assert_eq!(cleared.status, LoanStatus::PaidLate);
    let UndoEffect::Removed(removed) =
        history.undo(undo("r1", "l1", 25_000, "2025-08-05T12:00:00.000000000Z"))
    else {
        panic!("the late payment matches");
    };
    let (reversed, late_record) = apply_reversal(&cleared, &history, &removed, &brl(25_000));
    assert_eq!(reversed.status, LoanStatus::Missed);
    assert_eq!(reversed.late_paid_on, None);
    assert_eq!(
        late_record,
        Some(crate::ports::Key::new(
            layout::late_partition(d(2025, 8, 5)),
            layout::flag_sk("l1", d(2025, 7, 31))
        ))
    );
    // Jul 31 stays flagged once; the loan keeps expecting Aug 29.
    assert_eq!(reversed.expected_date, Some(d(2025, 8, 29)));
}
