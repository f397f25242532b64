//! Unit tests of the pure rules: what a payment and a miss change.

use chrono::NaiveDate;
use payops_core::paydays::{Frequency, Schedule};
use payops_core::{Currency, Money};
use rust_decimal::Decimal;

use super::layout::{self, History, HistoryEntry, LoanStatus};
use super::plan::{apply_miss, apply_payment, new_loan, plan};

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
            })
            .collect(),
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
