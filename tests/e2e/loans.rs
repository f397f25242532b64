//! Loans through `payops up` (issue 8): a loan created over HTTP, its borrower's payroll
//! arriving as signed payment webhooks (one sent twice), the schedule inferred and shown by
//! `GET /loans/{id}`, and the payroll checker triggered for a morning after a missed payroll.

use bytes::Bytes;
use payops_e2e::{HttpClient, Server, eventually, signature};
use serde_json::{Value, json};

const WEBHOOK: &str = "/webhooks/payment-events";
/// Biweekly Friday payroll (Jan 2 2026 onwards), all business days.
const PAYDAYS: [&str; 6] = [
    "2026-01-02",
    "2026-01-16",
    "2026-01-30",
    "2026-02-13",
    "2026-02-27",
    "2026-03-13",
];

#[tokio::test]
async fn a_loan_learns_its_payroll_and_a_missed_one_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = HttpClient::default();
    let base = &server.base_url;
    let loan = json!({"loan_id": "loan_e2e", "borrower_id": "bor_e2e", "employer_id": "emp_e2e",
                      "amount": "250.00", "currency": "USD", "declared_schedule": "biweekly:2026-01-02"});
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

    for (i, day) in PAYDAYS.iter().enumerate() {
        let body = Bytes::from(
            json!({"event_id": format!("evt_e2e_{i}"), "loan_id": "loan_e2e", "borrower_id": "bor_e2e",
                   "employer_id": "emp_e2e", "amount": "250.00", "currency": "USD", "status": "paid",
                   "paid_at": format!("{day}T15:00:00Z")})
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
        async move {
            let v = client.get(&url).await.ok()?.json().ok()?;
            (v["recent_history"].as_array()?.len() == PAYDAYS.len()).then_some(v)
        }
    })
    .await;
    assert_eq!(view["frequency"], "biweekly", "{view}");
    assert_eq!(view["schedule_source"], "inferred");
    assert_eq!(view["next_expected_date"], "2026-03-27");
    assert_eq!(view["recent_history"][0]["date"], "2026-03-13");

    // Nothing arrives on Friday Mar 27; with one business day of grace, Tuesday's check flags it.
    let check = |date: &'static str| {
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
    let monday = check("2026-03-30").await;
    assert_eq!(monday["newly_missed"], 0, "{monday}");
    let tuesday = check("2026-03-31").await;
    assert_eq!(tuesday["newly_missed"], 1, "{tuesday}");
    let rerun = check("2026-03-31").await;
    assert_eq!(rerun["newly_missed"], 0);
    assert_eq!(rerun["missed"], 1);
    let report = std::fs::read_to_string(
        dir.path()
            .join("objects/payops-local/reports/missed-payroll/dt=2026-03-31/missed.csv"),
    )
    .unwrap();
    assert!(
        report.contains("\nloan_e2e,emp_e2e,2026-03-27,250.00,USD,biweekly,"),
        "{report}"
    );
    let flagged = client
        .get(&format!("{base}/loans/loan_e2e"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(flagged["status"], "MISSED");
    assert_eq!(flagged["missed_expected_date"], "2026-03-27");
    assert_eq!(flagged["next_expected_date"], "2026-04-10");
}
