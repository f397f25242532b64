//! Loans and the payroll checker (issue 8) on the AWS adapters against moto: pay histories
//! kept by versioned transactions, loans created conditionally, the checker's queries of the
//! sharded due-date index `gsi1`, its flag transactions, the report in S3 and one event per
//! missed loan through EventBridge to a rule's target; re-runs, late payments, and a late
//! payment reversed (its flag restored and its late record deleted in one transaction).

mod support;

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use payops_app::loans::layout::LoanStatus;
use payops_app::loans::{
    self, CheckOptions, Checker, Loans, MISSED_EVENT_SOURCE, MISSED_EVENT_TYPE, NewLoan,
    RecordOutcome, missed_key, record_payment,
};
use payops_app::ports::{Blobs, Clock, ManualClock, Queue, ReceiveOptions};
use payops_core::payment_event::{self, PaymentEvent};
use payops_core::{Currency, Money};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::MotoHarness;

/// Receives of the rule's target queue before the test gives up.
const RECEIVE_POLLS_MAX: usize = 10;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
}

fn event(
    event_id: &str,
    loan_id: &str,
    borrower: &str,
    amount: &str,
    day: NaiveDate,
) -> PaymentEvent {
    event_with_status(event_id, loan_id, borrower, amount, day, "paid")
}

/// A payment event of another status (`failed`, `reversed`) repeating the payment's fields.
fn event_with_status(
    event_id: &str,
    loan_id: &str,
    borrower: &str,
    amount: &str,
    day: NaiveDate,
    status: &str,
) -> PaymentEvent {
    let body = json!({
        "event_id": event_id, "loan_id": loan_id, "borrower_id": borrower,
        "employer_id": "emp_1", "amount": amount, "currency": "BRL", "status": status,
        "paid_at": format!("{}T12:00:00Z", day.format("%Y-%m-%d")),
    });
    payment_event::parse_webhook_body(body.to_string().as_bytes()).expect("valid event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_flags_reports_and_announces_missed_payroll_on_dynamodb() {
    let harness = MotoHarness::new().await;
    let table = Arc::new(harness.create_table(&["gsi1"]).await);
    let blobs = Arc::new(harness.create_bucket().await);
    let events = Arc::new(harness.create_event_bus().await);
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 6, 2, 9, 0, 0)
            .single()
            .expect("valid time"),
    ));
    let state = Loans {
        table: table.clone(),
        blobs: blobs.clone(),
        events: events.clone(),
        clock: clock.clone() as Arc<dyn Clock>,
    };
    // The consumer of missed-payroll events: a rule forwarding them to a queue.
    let target = harness
        .create_rule_to_queue(&events, MISSED_EVENT_SOURCE)
        .await;

    // Two monthly (last business day) borrowers; a redelivered event changes nothing.
    let months = [
        d(2025, 1, 31),
        d(2025, 2, 28),
        d(2025, 3, 31),
        d(2025, 4, 30),
        d(2025, 5, 30),
    ];
    for (i, day) in months.into_iter().enumerate() {
        for (loan, borrower) in [("paid", "b_paid"), ("missed", "b_missed")] {
            let ev = event(&format!("{loan}_{i}"), loan, borrower, "300", day);
            record_payment(table.as_ref(), &ev).await.expect("record");
        }
    }
    let again = event("paid_0", "paid", "b_paid", "300", months[0]);
    assert_eq!(
        record_payment(table.as_ref(), &again)
            .await
            .expect("record"),
        RecordOutcome::AlreadyRecorded
    );
    for (loan, borrower) in [("paid", "b_paid"), ("missed", "b_missed")] {
        let new = NewLoan {
            loan_id: loan.into(),
            borrower_id: borrower.into(),
            employer_id: "emp_1".into(),
            instalment: Money::new(Decimal::new(300, 0), Currency::BRL).expect("money"),
            tolerance: loans::AMOUNT_TOLERANCE_DEFAULT,
            declared_schedule: None,
        };
        let (record, created) = loans::create_loan(&state, new.clone(), d(2025, 6, 2))
            .await
            .expect("create");
        assert!(created);
        assert_eq!(record.expected_date, Some(d(2025, 6, 30)));
        let (_, again) = loans::create_loan(&state, new, d(2025, 6, 2))
            .await
            .expect("replay");
        assert!(!again, "a second create is a replay");
    }
    let paid = event("paid_jun", "paid", "b_paid", "300", d(2025, 6, 30));
    record_payment(table.as_ref(), &paid).await.expect("record");

    let checker = Checker::new(state.clone());
    let on = |date| CheckOptions {
        date,
        grace_business_days: 1,
    };
    let report = checker.check(on(d(2025, 7, 2))).await.expect("check");
    assert_eq!(report.newly_missed, 1, "{report:?}");
    assert_eq!(report.events_emitted, 1);
    let csv = blobs
        .get(&missed_key(d(2025, 7, 2)))
        .await
        .expect("get")
        .expect("report written");
    let csv = String::from_utf8(csv.body.to_vec()).expect("utf-8");
    assert!(
        csv.contains("\nmissed,emp_1,2025-06-30,300.00,BRL,monthly,monthly:last,"),
        "{csv}"
    );
    assert!(!csv.contains("\npaid,"), "{csv}");

    // A re-run: same report, no second event.
    let rerun = checker.check(on(d(2025, 7, 2))).await.expect("check");
    assert_eq!(
        (rerun.newly_missed, rerun.missed, rerun.events_emitted),
        (0, 1, 0)
    );

    let mut delivered = Vec::new();
    for _ in 0..RECEIVE_POLLS_MAX {
        let options = ReceiveOptions {
            max_messages: 10,
            visibility_timeout_seconds: None,
            wait_seconds: 1,
        };
        delivered.extend(target.receive(options).await.expect("receive"));
        if !delivered.is_empty() {
            break;
        }
    }
    assert_eq!(delivered.len(), 1);
    let event_json: Value = serde_json::from_str(&delivered[0].body).expect("event JSON");
    assert_eq!(event_json["detail-type"], MISSED_EVENT_TYPE);
    assert_eq!(event_json["detail"]["loan_id"], "missed");
    assert_eq!(event_json["detail"]["expected_date"], "2025-06-30");

    // The late payment clears the flag.
    let late = event("missed_jun", "missed", "b_missed", "300", d(2025, 7, 3));
    record_payment(table.as_ref(), &late).await.expect("record");
    let (loan, history) = state.get("missed").await.expect("get").expect("loan");
    assert_eq!(loan.status, LoanStatus::PaidLate);
    assert_eq!(history.entries.len(), 6);
    let next_day = checker.check(on(d(2025, 7, 4))).await.expect("check");
    assert_eq!(next_day.late, 1);

    // The bank returns the late payment: the flag comes back and the late record goes, in one
    // DynamoDB transaction; a redelivered return changes nothing.
    let returned = event_with_status(
        "missed_jun_r",
        "missed",
        "b_missed",
        "300",
        d(2025, 7, 3),
        "reversed",
    );
    assert_eq!(
        record_payment(table.as_ref(), &returned)
            .await
            .expect("record"),
        RecordOutcome::Undone { loan_updated: true }
    );
    assert_eq!(
        record_payment(table.as_ref(), &returned)
            .await
            .expect("record"),
        RecordOutcome::AlreadyRecorded
    );
    let (loan, history) = state.get("missed").await.expect("get").expect("loan");
    assert_eq!(loan.status, LoanStatus::Missed);
    assert_eq!(loan.late_paid_on, None);
    assert_eq!(history.entries.len(), 5);
    let rerun = checker.check(on(d(2025, 7, 4))).await.expect("check");
    assert_eq!((rerun.late, rerun.newly_missed), (0, 0), "{rerun:?}");
}
