//! Loans through `payops up` (issue 8): a loan created over HTTP, its borrower's payroll
//! arriving as signed payment webhooks (one sent twice), the schedule inferred and shown by
//! `GET /loans/{id}`, and the payroll checker triggered for a morning after a missed payroll.

use bytes::Bytes;
use payops_core::paydays::{Schedule, add_business_days};
use payops_e2e::{HttpClient, Server, eventually, signature};
use serde_json::{Value, json};

const WEBHOOK: &str = "/webhooks/payment-events";
/// Biweekly Friday payroll from this anchor; the server's clock is real, so the history is
/// the last twelve weeks of it and the check runs after the next payday.
const ANCHOR: &str = "biweekly:2026-01-02";

fn day(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn a_loan_learns_its_payroll_and_a_missed_one_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = HttpClient::default();
    let base = &server.base_url;
    let schedule: Schedule = ANCHOR.parse().unwrap();
    let today = chrono::Utc::now().date_naive();
    let mut paydays = Vec::new();
    schedule.paid_dates(
        today - chrono::Days::new(84),
        today.pred_opt().unwrap(),
        &mut paydays,
    );
    let next = schedule.next_paid_after(today).unwrap();
    let check_on = add_business_days(next, 2);
    let loan = json!({"loan_id": "loan_e2e", "borrower_id": "bor_e2e", "employer_id": "emp_e2e",
                      "amount": "250.00", "currency": "USD", "declared_schedule": ANCHOR});
    let created = client
        .post_json(&format!("{base}/loans"), &[], Bytes::from(loan.to_string()))
        .await
        .unwrap();
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let bad = client
        .post_json(
            &format!("{base}/loans"),
            &[],
            Bytes::from(r#"{"loan_id":"x","borrower_id":"b","employer_id":"e","amount":"1","currency":"XXX1"}"#),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json().unwrap()["field"], "currency");

    for (i, paid) in paydays.iter().enumerate() {
        let body = Bytes::from(
            json!({"event_id": format!("evt_e2e_{i}"), "loan_id": "loan_e2e", "borrower_id": "bor_e2e",
                   "employer_id": "emp_e2e", "amount": "250.00", "currency": "USD", "status": "paid",
                   "paid_at": format!("{}T15:00:00Z", day(*paid))})
            .to_string(),
        );
        // The first payday is delivered twice: it must count once.
        for _ in 0..if i == 0 { 2 } else { 1 } {
            let r = client
                .post_json(
                    &format!("{base}{WEBHOOK}"),
                    &[("Payops-Signature", &signature(&body))],
                    body.clone(),
                )
                .await
                .unwrap();
            assert!(r.status < 300, "webhook answered {}", r.status);
        }
    }
    let view: Value = eventually("the whole history stored", || {
        let client = client.clone();
        let url = format!("{base}/loans/loan_e2e");
        let expected = paydays.len();
        async move {
            let v = client.get(&url).await.ok()?.json().ok()?;
            (v["recent_history"].as_array()?.len() == expected).then_some(v)
        }
    })
    .await;
    assert_eq!(view["frequency"], "biweekly", "{view}");
    assert_eq!(view["schedule_source"], "inferred");
    assert_eq!(view["next_expected_date"], day(next).as_str());
    assert_eq!(
        view["recent_history"][0]["date"],
        day(*paydays.last().unwrap()).as_str()
    );

    // Nothing arrives on the next payday; with one business day of grace, the morning two
    // business days after it flags it, the morning before does not.
    let check = |date: String| {
        let client = client.clone();
        let url = format!("{base}/ops/trigger/payroll-checker");
        async move {
            let r = client
                .post_json(&url, &[], Bytes::from(json!({"date": date}).to_string()))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json().unwrap()
        }
    };
    let early = check(day(add_business_days(next, 1))).await;
    assert_eq!(early["newly_missed"], 0, "{early}");
    let flagged_run = check(day(check_on)).await;
    assert_eq!(flagged_run["newly_missed"], 1, "{flagged_run}");
    let rerun = check(day(check_on)).await;
    assert_eq!(rerun["newly_missed"], 0);
    assert_eq!(rerun["missed"], 1);
    let report = std::fs::read_to_string(
        dir.path()
            .join("objects/payops-local/reports/missed-payroll")
            .join(format!("dt={}/missed.csv", day(check_on))),
    )
    .unwrap();
    let row = format!("\nloan_e2e,emp_e2e,{},250.00,USD,biweekly,", day(next));
    assert!(report.contains(&row), "{report}");
    let flagged = client
        .get(&format!("{base}/loans/loan_e2e"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(flagged["status"], "MISSED");
    assert_eq!(flagged["missed_expected_date"], day(next).as_str());
    assert_eq!(
        flagged["next_expected_date"],
        day(schedule.next_paid_after(next).unwrap()).as_str()
    );
}
