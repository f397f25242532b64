//! The loans flow on the real local adapters (SQLite table, directory blobs): loans created
//! through the API, pay histories fed by the payment events processor (exactly once under
//! redelivery), and the morning payroll checker run day after day on a scaled-down book of
//! generated borrowers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Days, NaiveDate, TimeZone, Utc};
use http_body_util::BodyExt;
use payops_app::handler::SqsHandler;
use payops_app::loans::layout::LoanStatus;
use payops_app::loans::{
    self, CheckOptions, Checker, Loans, NewLoan, RecordOutcome, late_key, missed_key,
    record_payment,
};
use payops_app::payment_events::{PaymentEvents, Processor};
use payops_app::ports::{Blobs, Event, Events, EventsError, ManualClock};
use payops_core::paydays::generate::{EarnerKind, GeneratorConfig, generate_borrower};
use payops_core::paydays::{Frequency, add_business_days};
use payops_core::payment_event::{self, PaymentEvent};
use payops_core::{Currency, Money};
use payops_local::env::LocalEnv;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Records every event, then forwards it to the real bus.
struct RecordingEvents {
    inner: Arc<dyn Events>,
    seen: Mutex<Vec<Event>>,
}

#[async_trait]
impl Events for RecordingEvents {
    async fn put_events(&self, events: Vec<Event>) -> Result<(), EventsError> {
        self.seen.lock().unwrap().extend(events.iter().cloned());
        self.inner.put_events(events).await
    }
}

struct Env {
    _dir: tempfile::TempDir,
    env: LocalEnv,
    clock: Arc<ManualClock>,
    loans: Loans,
    events: Arc<RecordingEvents>,
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn env(today: NaiveDate) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.from_utc_datetime(&today.and_hms_opt(9, 0, 0).unwrap()),
    ));
    let env = LocalEnv::open(dir.path(), clock.clone()).unwrap();
    let mut loans = Loans::from_resources(&env).unwrap();
    let events = Arc::new(RecordingEvents {
        inner: loans.events.clone(),
        seen: Mutex::new(Vec::new()),
    });
    loans.events = events.clone();
    Env {
        _dir: dir,
        env,
        clock,
        loans,
        events,
    }
}

fn event(
    event_id: &str,
    loan_id: &str,
    borrower: &str,
    amount: &str,
    day: NaiveDate,
) -> PaymentEvent {
    let body = json!({
        "event_id": event_id, "loan_id": loan_id, "borrower_id": borrower,
        "employer_id": "emp_1", "amount": amount, "currency": "BRL", "status": "paid",
        "paid_at": format!("{}T12:00:00Z", day.format("%Y-%m-%d")),
    });
    payment_event::parse_webhook_body(body.to_string().as_bytes()).unwrap()
}

fn batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

fn message(id: &str, e: &PaymentEvent) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(e.to_canonical_json());
    m
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(body: Value) -> Request<Body> {
    Request::post("/loans")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn the_api_shows_a_schedule_inferred_from_processed_payments_exactly_once() {
    let e = env(d(2025, 6, 2));
    let router = loans::router(e.loans.clone());
    let (status, created) = call(
        &router,
        post(
            json!({"loan_id": "loan_1", "borrower_id": "b_1", "employer_id": "emp_1",
                    "amount": "250.00", "currency": "BRL"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["frequency"], Value::Null);
    // The same body again is a replay; other terms under the same id a conflict.
    let (status, _) = call(
        &router,
        post(
            json!({"loan_id": "loan_1", "borrower_id": "b_1", "employer_id": "emp_1",
                    "amount": "250.00", "currency": "BRL"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, conflict) = call(
        &router,
        post(
            json!({"loan_id": "loan_1", "borrower_id": "b_1", "employer_id": "emp_1",
                    "amount": "999", "currency": "BRL"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    let (status, bad) = call(
        &router,
        post(
            json!({"loan_id": "loan_2", "borrower_id": "b_2", "employer_id": "emp_1",
                    "amount": "-1", "currency": "BRL"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["field"], "amount");
    let (_, bad) = call(
        &router,
        post(
            json!({"loan_id": "loan_2", "borrower_id": "b_2", "employer_id": "emp_1",
                    "amount": "1", "currency": "BRL", "declared_schedule": "fortnightly:1"}),
        ),
    )
    .await;
    assert_eq!(bad["field"], "declared_schedule");

    // Biweekly Friday payroll through the real processor; every message delivered twice.
    let processor = Processor::new(PaymentEvents::from_resources(&e.env).unwrap())
        .with_pay_history(e.loans.table.clone());
    let mut day = d(2025, 1, 3);
    let mut messages = Vec::new();
    let mut n = 0;
    while day <= d(2025, 5, 30) {
        let paid = payops_core::paydays::on_or_before_business_day(day);
        let ev = event(&format!("evt_{n}"), "loan_1", "b_1", "250.00", paid);
        messages.push(message(&format!("m{n}"), &ev));
        day = day + Days::new(14);
        n += 1;
    }
    for pass in 0..2 {
        let response = processor.handle(batch(messages.clone())).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "pass {pass}");
    }
    let (status, view) = call(
        &router,
        Request::get("/loans/loan_1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["frequency"], "biweekly", "{view}");
    assert_eq!(view["schedule_source"], "inferred");
    assert_eq!(view["next_expected_date"], "2025-06-06");
    assert_eq!(view["status"], "CURRENT");
    let history = view["recent_history"].as_array().unwrap();
    assert_eq!(
        history.len(),
        11,
        "twelve shown at most, newest first: {view}"
    );
    assert_eq!(history[0]["date"], "2025-05-23");
    let (_, stored) = e.loans.get("loan_1").await.unwrap().unwrap();
    assert_eq!(stored.entries.len(), n, "redelivery added nothing");
    let (status, _) = call(
        &router,
        Request::get("/loans/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(e.clock);
}

#[tokio::test]
async fn a_short_payment_is_still_missed_and_a_late_one_clears_the_flag() {
    let e = env(d(2025, 6, 2));
    let table = e.loans.table.clone();
    for (i, day) in [
        d(2025, 1, 31),
        d(2025, 2, 28),
        d(2025, 3, 31),
        d(2025, 4, 30),
        d(2025, 5, 30),
    ]
    .into_iter()
    .enumerate()
    {
        for (loan, borrower) in [("short", "b_short"), ("late", "b_late")] {
            let ev = event(&format!("{loan}_{i}"), loan, borrower, "300", day);
            record_payment(table.as_ref(), &ev).await.unwrap();
        }
    }
    for (loan, borrower) in [("short", "b_short"), ("late", "b_late")] {
        let new = NewLoan {
            loan_id: loan.into(),
            borrower_id: borrower.into(),
            employer_id: "emp_1".into(),
            instalment: Money::new(Decimal::new(300, 0), Currency::BRL).unwrap(),
            tolerance: loans::AMOUNT_TOLERANCE_DEFAULT,
            declared_schedule: None,
        };
        let (loan, created) = loans::create_loan(&e.loans, new, d(2025, 6, 2))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(loan.frequency, Some(Frequency::Monthly));
        assert_eq!(loan.expected_date, Some(d(2025, 6, 30)));
    }
    // June 30: "short" pays 250 of 300 (outside the 1% tolerance); "late" pays nothing.
    let short = event("short_jun", "short", "b_short", "250", d(2025, 6, 30));
    assert_eq!(
        record_payment(table.as_ref(), &short).await.unwrap(),
        RecordOutcome::Recorded { loan_updated: true }
    );
    assert_eq!(
        record_payment(table.as_ref(), &short).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    let checker = Checker::new(e.loans.clone());
    // Grace 1 business day: Jun 30 (Mon) may still be paid Jul 1; flagged on the morning of Jul 2.
    let on = |date| CheckOptions {
        date,
        grace_business_days: 1,
    };
    let jul1 = checker.check(on(d(2025, 7, 1))).await.unwrap();
    assert_eq!(jul1.newly_missed, 0);
    let jul2 = checker.check(on(d(2025, 7, 2))).await.unwrap();
    assert_eq!(jul2.newly_missed, 2);
    assert_eq!(jul2.events_emitted, 2);
    let csv = blob(&e, &missed_key(d(2025, 7, 2))).await;
    assert_eq!(
        csv,
        "loan_id,employer_id,expected_date,expected_amount,currency,frequency,schedule,last_paid_on,last_paid_amount\n\
         late,emp_1,2025-06-30,300.00,BRL,monthly,monthly:last,2025-05-30,300.00\n\
         short,emp_1,2025-06-30,300.00,BRL,monthly,monthly:last,2025-06-30,250.00\n"
    );
    // Re-running the same morning: the same report, no new flags, no new events.
    let again = checker.check(on(d(2025, 7, 2))).await.unwrap();
    assert_eq!(again.newly_missed, 0);
    assert_eq!(again.missed, 2);
    assert_eq!(again.events_emitted, 0);
    assert_eq!(blob(&e, &missed_key(d(2025, 7, 2))).await, csv);
    assert_eq!(e.events.seen.lock().unwrap().len(), 2);
    let (late_loan, _) = e.loans.get("late").await.unwrap().unwrap();
    assert_eq!(late_loan.status, LoanStatus::Missed);
    assert_eq!(
        late_loan.expected_date,
        Some(d(2025, 7, 31)),
        "moved on to the next payroll"
    );

    // The late payment arrives on Jul 3: the flag clears and Jul 4's run reports it as late.
    let paid = event("late_jul", "late", "b_late", "300", d(2025, 7, 3));
    record_payment(table.as_ref(), &paid).await.unwrap();
    let (late_loan, _) = e.loans.get("late").await.unwrap().unwrap();
    assert_eq!(late_loan.status, LoanStatus::PaidLate);
    let jul4 = checker.check(on(d(2025, 7, 4))).await.unwrap();
    assert_eq!(jul4.late, 1);
    assert_eq!(
        blob(&e, &late_key(d(2025, 7, 4))).await,
        "loan_id,employer_id,expected_date,expected_amount,currency,paid_on,paid_amount\n\
         late,emp_1,2025-06-30,300.00,BRL,2025-07-03,300.00\n"
    );
}

async fn blob(e: &Env, key: &str) -> String {
    let blobs: Arc<dyn Blobs> = e.loans.blobs.clone();
    let b = blobs.get(key).await.unwrap().expect("report written");
    String::from_utf8(b.body.to_vec()).unwrap()
}

/// A scaled-down book: generated borrowers with several years of history, a loan each, then
/// three weeks of mornings. Even borrowers keep paying on their expected dates; odd ones stop.
#[tokio::test]
async fn the_checker_flags_exactly_the_unpaid_payrolls_day_after_day() {
    const BORROWERS: u64 = 120;
    let as_of = d(2025, 9, 1);
    let e = env(as_of);
    let table = e.loans.table.clone();
    let config = GeneratorConfig {
        seed: 42,
        as_of_from: as_of,
        as_of_days: 0,
        history_payments_max: 16,
        irregular_per_mille: 150,
        ..GeneratorConfig::default()
    };
    let mut kinds = BTreeMap::new();
    for i in 0..BORROWERS {
        let b = generate_borrower(&config, i);
        let loan_id = format!("loan_{i}");
        for (n, p) in b.payments.iter().enumerate() {
            let ev = event(
                &format!("e{i}_{n}"),
                &loan_id,
                &b.borrower_id,
                &p.amount.to_string(),
                p.date,
            );
            record_payment(table.as_ref(), &ev).await.unwrap();
        }
        let new = NewLoan {
            loan_id: loan_id.clone(),
            borrower_id: b.borrower_id.clone(),
            employer_id: "emp_1".into(),
            instalment: Money::new(b.payments[0].amount, Currency::BRL).unwrap(),
            tolerance: Decimal::new(5, 2),
            declared_schedule: None,
        };
        let (loan, _) = loans::create_loan(&e.loans, new, as_of).await.unwrap();
        if b.kind != EarnerKind::Irregular && loan.frequency == Some(b.frequency()) {
            assert_eq!(loan.expected_date, b.next_date, "loan {i}");
        }
        kinds.insert(loan_id, (i % 2 == 0, loan.frequency));
    }
    let checker = Checker::new(e.loans.clone());
    let mut flagged: BTreeSet<(String, NaiveDate)> = BTreeSet::new();
    let mut paid_n = 0;
    for offset in 1..=21u64 {
        let today = as_of + Days::new(offset);
        // Payers pay everything expected before today, on the day it is expected.
        for (loan_id, (pays, _)) in &kinds {
            if !pays {
                continue;
            }
            loop {
                let (loan, _) = e.loans.get(loan_id).await.unwrap().unwrap();
                let Some(expected) = loan.expected_date.filter(|x| *x < today) else {
                    break;
                };
                let ev = event(
                    &format!("pay{paid_n}"),
                    loan_id,
                    loan.borrower_id.expose(),
                    &loan.amount.to_string(),
                    expected,
                );
                paid_n += 1;
                record_payment(table.as_ref(), &ev).await.unwrap();
            }
        }
        let before = e.events.seen.lock().unwrap().len();
        let report = checker
            .check(CheckOptions {
                date: today,
                grace_business_days: 1,
            })
            .await
            .unwrap();
        let events = e.events.seen.lock().unwrap()[before..].to_vec();
        assert_eq!(events.len() as u64, report.newly_missed, "{today}");
        for ev in events {
            let loan_id = ev.detail["loan_id"].as_str().unwrap().to_owned();
            let expected =
                NaiveDate::parse_from_str(ev.detail["expected_date"].as_str().unwrap(), "%Y-%m-%d")
                    .unwrap();
            let (pays, _) = kinds[&loan_id];
            assert!(
                !pays,
                "{loan_id} paid every payroll but was flagged for {expected}"
            );
            // Flagged on the first morning after the grace, exactly once.
            assert!(add_business_days(expected, 1) < today);
            assert!(add_business_days(expected, 1) >= today - Days::new(1) || offset == 1);
            assert!(flagged.insert((loan_id, expected)), "flagged twice");
        }
    }
    // Every non-payer with a regular schedule was flagged at least once in three weeks.
    for (loan_id, (pays, frequency)) in &kinds {
        let regular = matches!(
            frequency,
            Some(Frequency::Weekly | Frequency::Biweekly | Frequency::SemiMonthly)
        );
        if !pays && regular {
            assert!(
                flagged.iter().any(|(l, _)| l == loan_id),
                "{loan_id} never flagged"
            );
        }
    }
    // Irregular earners are flagged only once their whole window has passed.
    for (loan_id, (_, frequency)) in &kinds {
        if *frequency == Some(Frequency::Irregular) {
            for (_, expected) in flagged.iter().filter(|(l, _)| l == loan_id) {
                assert!(*expected > as_of, "{loan_id}: flagged for {expected}");
            }
        }
    }
    assert!(!flagged.is_empty());
}

#[tokio::test]
async fn a_csv_import_creates_loans_and_names_bad_lines() {
    let text = "loan_id,borrower_id,employer_id,amount,currency,declared_schedule\n\
                l1,b1,e1,100.00,BRL,monthly:last\n\
                l2,b2,e1,55.5,USD,\n";
    let parsed = loans::import::parse_loans_csv(text.as_bytes()).unwrap();
    assert_eq!(parsed.len(), 2);
    let e = env(d(2025, 6, 2));
    for new in parsed {
        loans::create_loan(&e.loans, new, d(2025, 6, 2))
            .await
            .unwrap();
    }
    let (l1, _) = e.loans.get("l1").await.unwrap().unwrap();
    assert_eq!(l1.expected_date, Some(d(2025, 6, 30)));
    let (l2, _) = e.loans.get("l2").await.unwrap().unwrap();
    assert_eq!(
        l2.expected_date, None,
        "no history and no schedule: nothing to check"
    );
    let bad =
        "loan_id,borrower_id,employer_id,amount,currency\nl1,b1,e1,100,BRL\nl2,b2,e1,abc,BRL\n";
    let err = loans::import::parse_loans_csv(bad.as_bytes()).unwrap_err();
    assert_eq!(err.line, 3);
    assert!(err.to_string().contains("amount"), "{err}");
    let missing = "loan_id,borrower_id,amount,currency\n";
    assert!(
        loans::import::parse_loans_csv(missing.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("employer_id")
    );
}

fn event_at(
    event_id: &str,
    loan_id: &str,
    borrower: &str,
    status: &str,
    paid_at: &str,
) -> PaymentEvent {
    let body = json!({
        "event_id": event_id, "loan_id": loan_id, "borrower_id": borrower,
        "employer_id": "emp_1", "amount": "300", "currency": "BRL", "status": status,
        "paid_at": paid_at,
    });
    payment_event::parse_webhook_body(body.to_string().as_bytes()).unwrap()
}

/// Five monthly-last payrolls (Jan–May 2025) of 300 for `borrower`, then its loan on Jun 2.
async fn monthly_loan(e: &Env, loan: &str, borrower: &str) {
    let table = e.loans.table.clone();
    let days = [
        d(2025, 1, 31),
        d(2025, 2, 28),
        d(2025, 3, 31),
        d(2025, 4, 30),
        d(2025, 5, 30),
    ];
    for (i, day) in days.into_iter().enumerate() {
        let ev = event(&format!("{loan}_{i}"), loan, borrower, "300", day);
        record_payment(table.as_ref(), &ev).await.unwrap();
    }
    let new = NewLoan {
        loan_id: loan.into(),
        borrower_id: borrower.into(),
        employer_id: "emp_1".into(),
        instalment: Money::new(Decimal::new(300, 0), Currency::BRL).unwrap(),
        tolerance: loans::AMOUNT_TOLERANCE_DEFAULT,
        declared_schedule: None,
    };
    let (created, _) = loans::create_loan(&e.loans, new, d(2025, 6, 2))
        .await
        .unwrap();
    assert_eq!(created.expected_date, Some(d(2025, 6, 30)));
}

/// Issue 8: a reversed or failed payment leaves its borrower's pay history and its loan, so the
/// checker flags the payroll it had paid; redeliveries in any order change nothing more.
#[tokio::test]
async fn reversed_and_failed_payments_leave_the_history_and_the_checker_flags_again() {
    let e = env(d(2025, 6, 2));
    let table = e.loans.table.clone();
    monthly_loan(&e, "rev", "b_rev").await;
    monthly_loan(&e, "fail", "b_fail").await;
    let processor = Processor::new(PaymentEvents::from_resources(&e.env).unwrap())
        .with_pay_history(table.clone());
    let handle = |records: Vec<SqsMessage>| {
        let processor = &processor;
        async move {
            let response = processor.handle(batch(records)).await.unwrap();
            assert!(response.batch_item_failures.is_empty());
        }
    };

    // "rev": Jun 30 paid (delivered twice), then reversed (a new event repeating the payment's
    // fields, delivered twice), then the payment delivered once more.
    let paid = event_at("rev_jun", "rev", "b_rev", "paid", "2025-06-30T12:00:00Z");
    let reversed = event_at(
        "rev_jun_r",
        "rev",
        "b_rev",
        "reversed",
        "2025-06-30T12:00:00Z",
    );
    handle(vec![message("m1", &paid), message("m2", &paid)]).await;
    let (loan, history) = e.loans.get("rev").await.unwrap().unwrap();
    assert_eq!(loan.expected_date, Some(d(2025, 7, 31)));
    assert_eq!(history.entries.len(), 6);
    handle(vec![
        message("m3", &reversed),
        message("m4", &reversed),
        message("m5", &paid),
    ])
    .await;
    let (loan, history) = e.loans.get("rev").await.unwrap().unwrap();
    assert_eq!(
        loan.expected_date,
        Some(d(2025, 6, 30)),
        "June is due again"
    );
    assert_eq!(loan.last_paid_on, Some(d(2025, 5, 30)));
    assert_eq!(history.entries.len(), 5);
    assert!(!history.contains("rev_jun"));
    for ev in [&paid, &reversed] {
        assert_eq!(
            record_payment(table.as_ref(), ev).await.unwrap(),
            RecordOutcome::AlreadyRecorded
        );
    }

    // "fail": the failure (09:00) is delivered before its payment (08:00): the payment is kept
    // out, twice; the retry paid at 15:00 counts.
    let failed = event_at(
        "fail_jun_f",
        "fail",
        "b_fail",
        "failed",
        "2025-06-30T09:00:00Z",
    );
    let attempt = event_at("fail_jun", "fail", "b_fail", "paid", "2025-06-30T08:00:00Z");
    let retry = event_at(
        "fail_jun_2",
        "fail",
        "b_fail",
        "paid",
        "2025-06-30T15:00:00Z",
    );
    assert_eq!(
        record_payment(table.as_ref(), &failed).await.unwrap(),
        RecordOutcome::UndoPending
    );
    assert_eq!(
        record_payment(table.as_ref(), &attempt).await.unwrap(),
        RecordOutcome::Cancelled
    );
    assert_eq!(
        record_payment(table.as_ref(), &attempt).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    let (loan, history) = e.loans.get("fail").await.unwrap().unwrap();
    assert_eq!(loan.expected_date, Some(d(2025, 6, 30)));
    assert_eq!(history.entries.len(), 5);
    assert_eq!(
        record_payment(table.as_ref(), &retry).await.unwrap(),
        RecordOutcome::Recorded { loan_updated: true }
    );
    let (loan, _) = e.loans.get("fail").await.unwrap().unwrap();
    assert_eq!(loan.expected_date, Some(d(2025, 7, 31)));

    // Jul 4 (grace 1 business day): only the reversed loan is flagged, for June.
    let checker = Checker::new(e.loans.clone());
    let report = checker
        .check(CheckOptions {
            date: d(2025, 7, 4),
            grace_business_days: 1,
        })
        .await
        .unwrap();
    assert_eq!(report.newly_missed, 1);
    assert_eq!(
        blob(&e, &missed_key(d(2025, 7, 4))).await,
        "loan_id,employer_id,expected_date,expected_amount,currency,frequency,schedule,last_paid_on,last_paid_amount\n\
         rev,emp_1,2025-06-30,300.00,BRL,monthly,monthly:last,2025-05-30,300.00\n"
    );
    let (loan, _) = e.loans.get("rev").await.unwrap().unwrap();
    assert_eq!(loan.status, LoanStatus::Missed);
}

/// A late payment that cleared a missed flag, then reversed: the flag stands again, its line
/// leaves the next morning's late report, and the missed payroll is not flagged a second time.
#[tokio::test]
async fn a_reversed_late_payment_restores_its_flag() {
    let e = env(d(2025, 6, 2));
    let table = e.loans.table.clone();
    monthly_loan(&e, "late", "b_late").await;
    let checker = Checker::new(e.loans.clone());
    let on = |date| CheckOptions {
        date,
        grace_business_days: 1,
    };
    assert_eq!(
        checker.check(on(d(2025, 7, 2))).await.unwrap().newly_missed,
        1
    );
    let paid = event_at("late_jul", "late", "b_late", "paid", "2025-07-03T12:00:00Z");
    let reversed = event_at(
        "late_jul_r",
        "late",
        "b_late",
        "reversed",
        "2025-07-03T12:00:00Z",
    );
    record_payment(table.as_ref(), &paid).await.unwrap();
    let (loan, _) = e.loans.get("late").await.unwrap().unwrap();
    assert_eq!(loan.status, LoanStatus::PaidLate);
    for _ in 0..2 {
        record_payment(table.as_ref(), &reversed).await.unwrap();
    }
    let (loan, history) = e.loans.get("late").await.unwrap().unwrap();
    assert_eq!(loan.status, LoanStatus::Missed);
    assert_eq!(loan.late_paid_on, None);
    assert_eq!(
        loan.expected_date,
        Some(d(2025, 7, 31)),
        "June stays flagged once"
    );
    assert!(!history.contains("late_jul"));
    let jul4 = checker.check(on(d(2025, 7, 4))).await.unwrap();
    assert_eq!(jul4.late, 0);
    assert_eq!(jul4.newly_missed, 0);
    assert_eq!(
        blob(&e, &late_key(d(2025, 7, 4))).await,
        "loan_id,employer_id,expected_date,expected_amount,currency,paid_on,paid_amount\n"
    );
}
