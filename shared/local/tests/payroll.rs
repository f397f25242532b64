//! The payroll disbursement flow on the real local adapters (SQLite table and queues, the
//! directory bucket, the local Step Functions running statemachines/payroll-batch.asl.json),
//! with an in-memory payment provider that is idempotent by key as the real one is:
//! upload of the real sample, duplicate file, a file with errors, double approval, accounts
//! and payments at the provider, signed webhooks (duplicate, reordered, unknown), a crash
//! between the provider call and the status update, a poison message reaching the
//! dead-letter queue, reports, ledger and the nightly consistency check.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use chrono::{DateTime, Duration, Utc};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use payops_app::fake_provider::FakeProvider;
use payops_app::handler::{EventHandler, SqsHandler, TaskHandler};
use payops_app::payroll::{
    self, AccountsWorker, ConsistencyCheck, Disbursement, PaymentsWorker, Payroll, layout,
};
use payops_app::ports::provider::{Payment, PaymentStatus as Wire};
use payops_app::ports::{Clock, ManualClock, Query, Queue, Table, TableError, Write};
use payops_core::payroll::ledger;
use payops_local::runtime::System;
use payops_local::runtime::poller::sqs_event;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "support/hooked_table.rs"]
mod hooked_table;
use hooked_table::{HookedTable, TableHook};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/payroll/payroll-426-rows.xml"
);
const SAMPLE_ROWS: usize = 426;

fn t0() -> DateTime<Utc> {
    "2026-11-22T09:00:00Z".parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The fixture: the runtime's system on a temporary store, the flow's handlers on it.

struct Fixture {
    _dir: tempfile::TempDir,
    system: Arc<System>,
    clock: Arc<ManualClock>,
    payroll: Payroll,
    provider: Arc<FakeProvider>,
    accounts: AccountsWorker,
    payments: PaymentsWorker,
    api: axum::Router,
    webhooks: axum::Router,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let (system, _workers) = System::build(dir.path(), clock.clone()).unwrap();
    let payroll = Payroll::from_resources(system.env.as_ref()).unwrap();
    let provider = Arc::new(FakeProvider::new(t0()));
    let d = Disbursement {
        payroll: payroll.clone(),
        provider: provider.clone(),
    };
    Fixture {
        _dir: dir,
        system: Arc::new(system),
        clock,
        api: payroll::router(payroll.clone()),
        webhooks: payroll::webhook_router(
            payroll.clone(),
            payops_core::Secret::new(payops_local::env::DEV_WEBHOOK_SECRET.to_owned()),
        ),
        accounts: AccountsWorker::new(d.clone()),
        payments: PaymentsWorker::new(d),
        payroll,
        provider,
    }
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn upload(f: &Fixture, body: Vec<u8>) -> (StatusCode, Value) {
    call(
        &f.api,
        Request::post("/payroll/batches?name=payroll.xml")
            .header("content-type", "application/xml")
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

async fn approve(f: &Fixture, id: &str, body: Value) -> (StatusCode, Value) {
    call(
        &f.api,
        Request::post(format!("/payroll/batches/{id}/approve"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn get(f: &Fixture, uri: &str) -> (StatusCode, Value) {
    call(&f.api, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn sample() -> Vec<u8> {
    std::fs::read(FIXTURE).expect("the real payroll sample")
}

/// The batch's execution id (starting again with the same name and input returns it).
async fn execution(f: &Fixture, batch_id: &str) -> String {
    f.system
        .executor
        .start(
            payroll::STATE_MACHINE_LOGICAL_ID,
            batch_id,
            json!({ "batch_id": batch_id }),
        )
        .await
        .unwrap()
}

/// Receives and handles every visible message of a queue, as the runtime's poller does,
/// until none is visible. Returns how many deliveries failed.
async fn drain(f: &Fixture, queue: &str, handler: &dyn SqsHandler) -> usize {
    let q = f.system.env.local_queue(queue).unwrap();
    let mut failed = 0;
    loop {
        let messages = q
            .receive(payops_app::ports::ReceiveOptions::default())
            .await
            .unwrap();
        if messages.is_empty() {
            return failed;
        }
        let event = sqs_event(q.as_ref(), &messages).unwrap();
        let response = handler.handle(event).await.unwrap();
        let failures: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        failed += failures.len();
        for m in messages
            .iter()
            .filter(|m| !failures.contains(&m.message_id))
        {
            q.delete(&m.receipt_handle).await.unwrap();
        }
    }
}

/// Uploads the sample, approves it and waits for the payments to be written: the batch's id
/// and the upload's answer.
async fn approved(f: &Fixture) -> (String, Value) {
    let (_, up) = upload(f, sample()).await;
    let id = up["batch_id"].as_str().unwrap().to_owned();
    let exec = execution(f, &id).await;
    f.system.executor.wait_settled(&exec).await;
    approve(f, &id, json!({})).await;
    f.system.executor.wait_settled(&exec).await;
    (id, up)
}

/// Uploads the sample, approves it, waits for the payments to be written, and runs the
/// accounts and payments workers until both queues are empty.
async fn approved_and_sent(f: &Fixture) -> String {
    let (status, up) = upload(f, sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let id = up["batch_id"].as_str().unwrap().to_owned();
    let exec = execution(f, &id).await;
    f.system.executor.wait_settled(&exec).await;
    let (status, ok) = approve(f, &id, json!({"approved_by": "hr@example.com"})).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    f.system.executor.wait_settled(&exec).await;
    assert_eq!(drain(f, "PayrollAccountsQueue", &f.accounts).await, 0);
    assert_eq!(drain(f, "PayrollPaymentsQueue", &f.payments).await, 0);
    id
}

fn sign(body: &[u8], now: DateTime<Utc>) -> String {
    let secret = payops_local::env::DEV_WEBHOOK_SECRET.as_bytes();
    payops_core::webhook_signature::sign(secret, now.timestamp(), body)
}

async fn webhook(
    f: &Fixture,
    event_id: &str,
    payment: &Payment,
    status: Wire,
) -> (StatusCode, Value) {
    let event = f.provider.report(event_id, payment, status, f.clock.now());
    post_signed(f, serde_json::to_vec(&event).unwrap()).await
}

/// A webhook delivery of `body`, signed now.
async fn post_signed(f: &Fixture, body: Vec<u8>) -> (StatusCode, Value) {
    post_signed_to(&f.webhooks, f, body).await
}

/// As [`post_signed`], to the webhook endpoint `webhooks`.
async fn post_signed_to(
    webhooks: &axum::Router,
    f: &Fixture,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let signature = sign(&body, f.clock.now());
    call(
        webhooks,
        Request::post(payroll::WEBHOOK_PATH)
            .header(payops_core::webhook_signature::SIGNATURE_HEADER, signature)
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

fn provider_payments(f: &Fixture) -> Vec<Payment> {
    let mut v: Vec<Payment> = f.provider.in_creation_order();
    v.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    v
}

/// The nightly check, as scheduled: at 04:00 the next morning.
async fn check(f: &Fixture) -> Value {
    check_at(f, "2026-11-23T04:00:00Z".parse().unwrap()).await
}

async fn check_at(f: &Fixture, at: DateTime<Utc>) -> Value {
    let event: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_value(json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": at, "region": "local",
            "resources": [], "detail": {}
        }))
        .unwrap();
    ConsistencyCheck::new(Disbursement {
        payroll: f.payroll.clone(),
        provider: f.provider.clone(),
    })
    .handle(event)
    .await
    .unwrap()
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_real_sample_uploads_with_its_summary_and_a_second_upload_is_a_duplicate() {
    let f = fixture();
    let (status, first) = upload(&f, sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "AWAITING_APPROVAL");
    assert_eq!(first["rows"], 426);
    assert_eq!(first["error_count"], 0);
    assert!(
        first["warning_count"].as_u64().unwrap() > 0,
        "8-digit EINs warn"
    );
    assert_eq!(first["summary"]["by_source"].as_array().unwrap().len(), 5);
    assert_eq!(first["summary"]["by_branch"].as_array().unwrap().len(), 30);
    assert!(first["duplicate_of"].is_null());
    let by_source: Decimal = first["summary"]["by_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| dec(&s["total"]))
        .sum();
    assert_eq!(by_source, dec(&first["total"]));
    let id = first["batch_id"].as_str().unwrap();

    // The same file as the `file` part of a form, as a browser's plain form posts it.
    let boundary = "payops-test-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nbiweekly\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"payroll.xml\"\r\n\
         Content-Type: text/xml\r\n\r\n"
    )
    .into_bytes();
    form.extend(sample());
    form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let (status, second) = call(
        &f.api,
        Request::post("/payroll/batches")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(
        (second["rows"].clone(), second["total"].clone()),
        (first["rows"].clone(), first["total"].clone())
    );
    assert_eq!(second["file_name"], "payroll.xml");
    assert_eq!(second["duplicate_of"], json!(id));
    let dup = second["batch_id"].as_str().unwrap();
    assert_ne!(dup, id);
    // Paying the same file twice needs an explicit decision.
    let (status, refused) = approve(&f, dup, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("allow_duplicate")
    );

    let (status, list) = get(&f, "/payroll/batches").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = list["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batch_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&id) && listed.contains(&dup));

    let (status, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["summary"]["by_branch"].as_array().unwrap().len(), 30);
    let (status, _) = get(&f, "/payroll/batches/bnope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_file_with_errors_lists_every_bad_row_and_cannot_be_approved() {
    let f = fixture();
    let xml = String::from_utf8(sample()).unwrap();
    // Row 1's amount becomes negative; row 2 loses its routing checksum.
    let bad =
        xml.replacen("<Amount>$", "<Amount>-$", 1)
            .replacen("<ABARouting>", "<ABARouting>9", 1);
    let (status, up) = upload(&f, bad.into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["status"], "INVALID");
    let errors = up["summary"]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["row"] == 1 && e["field"] == "Amount"),
        "{errors:?}"
    );
    assert!(errors.iter().all(|e| e["reason"].as_str().is_some()));
    let id = up["batch_id"].as_str().unwrap();
    let (status, refused) = approve(&f, id, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    let (status, not_xml) = upload(&f, b"this is not xml".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{not_xml}");
    assert_eq!(not_xml["field"], "file");
}

#[tokio::test]
async fn a_file_with_more_findings_than_listed_has_every_one_in_its_findings_csv() {
    let f = fixture();
    let xml = String::from_utf8(sample()).unwrap();
    // The first row again and again after itself: each copy is a repeated-employee warning.
    let (start, end) = (xml.find("<row>").unwrap(), xml.find("</row>").unwrap());
    let first_row = &xml[start..end + "</row>".len()];
    let repeats = payroll::batches::FINDINGS_LISTED_MAX + 100;
    let copies = first_row.repeat(repeats);
    let many = format!("{}{copies}{}", &xml[..end + 6], &xml[end + 6..]);
    let (status, up) = upload(&f, many.into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let summary = &up["summary"];
    assert_eq!(summary["findings_truncated"], true);
    let listed = summary["warnings"].as_array().unwrap().len();
    assert_eq!(listed, payroll::batches::FINDINGS_LISTED_MAX);
    let warnings = up["warning_count"].as_u64().unwrap() as usize;
    assert!(warnings > repeats, "{warnings}");

    let id = up["batch_id"].as_str().unwrap();
    let (status, csv) = get(&f, &format!("/payroll/batches/{id}/reports/findings.csv")).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let csv = csv.as_str().unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("level,row,field,reason"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        warnings + up["error_count"].as_u64().unwrap() as usize
    );
    // Every copy of row 1 is there, the last one included, naming the row it repeats.
    let last_copy = format!("warning,{},", repeats + 1);
    let last = rows
        .iter()
        .find(|r| r.starts_with(&last_copy))
        .expect(&last_copy);
    assert!(last.contains("as row 1"), "{last}");

    let (status, _) = get(&f, &format!("/payroll/batches/{id}/reports/nothing.csv")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn double_approval_approves_once_and_the_batch_settles_with_reports_and_a_balanced_ledger() {
    let f = fixture();
    let (_, up) = upload(&f, sample()).await;
    let id = up["batch_id"].as_str().unwrap().to_owned();
    let exec = execution(&f, &id).await;
    f.system.executor.wait_settled(&exec).await;

    // A double click: two approvals at once; one approves, the other is told it was.
    let (a, b) = tokio::join!(approve(&f, &id, json!({})), approve(&f, &id, json!({})));
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{a:?} {b:?}");
    let firsts = [&a.1, &b.1]
        .iter()
        .filter(|o| o["already_approved"] == false)
        .count();
    assert_eq!(firsts, 1, "{a:?} {b:?}");
    let winner = if a.1["already_approved"] == false {
        &a.1
    } else {
        &b.1
    };
    assert!(winner["estimate"]["payments"].as_u64() == Some(426));
    f.system.executor.wait_settled(&exec).await;
    let (_, again) = approve(&f, &id, json!({})).await;
    assert_eq!(again["already_approved"], true);

    // Every payment is written UNPROCESSED, with its obligation in the ledger.
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["status"], "PROCESSING", "{shown}");
    assert_eq!(shown["progress"]["payments"], 426);
    assert_eq!(shown["progress"]["counts"]["unprocessed"], 426);
    assert_eq!(dec(&shown["progress"]["owed_total"]), dec(&up["total"]));

    // Provisioning: 5 payers and every distinct employee, each once (entity + account).
    assert_eq!(drain(&f, "PayrollAccountsQueue", &f.accounts).await, 0);
    let employees = f.provider.entity_count() - 5;
    assert!(
        employees < 426,
        "an employee with two rows is provisioned once"
    );
    // One liability account per (employee, loan), one ACH account per payer.
    let parsed = payops_core::payroll::parse(&sample()).unwrap();
    let mut loans: Vec<(String, String, String)> = parsed
        .rows
        .iter()
        .map(|r| {
            (
                r.employee.id.to_string(),
                r.payee.plaid_id.to_string(),
                r.payee.loan_account_number.expose().clone(),
            )
        })
        .collect();
    loans.sort();
    loans.dedup();
    let mut people: Vec<String> = parsed
        .rows
        .iter()
        .map(|r| r.employee.id.to_string())
        .collect();
    people.sort();
    people.dedup();
    assert_eq!(employees, people.len());
    assert_eq!(f.provider.account_count(), loans.len() + 5);
    assert_eq!(drain(&f, "PayrollPaymentsQueue", &f.payments).await, 0);
    let sent = provider_payments(&f);
    assert_eq!(sent.len(), 426);
    // Redelivering every message changes nothing at the provider.
    let q = f.system.env.local_queue("PayrollAccountsQueue").unwrap();
    payroll::materialise::enqueue_employees(&f.payroll, &id, ["x"].into_iter())
        .await
        .unwrap();
    drain(&f, "PayrollAccountsQueue", &f.accounts).await;
    assert_eq!(q.approximate_depth().await.unwrap(), 0);
    assert_eq!(provider_payments(&f).len(), 426);

    // The provider settles every payment (in-between reports for some).
    for (i, p) in sent.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(
                webhook(&f, &format!("evt_s{i}"), p, Wire::Sent).await.0,
                StatusCode::OK
            );
        }
        let (status, answer) = webhook(&f, &format!("evt_{i}"), p, Wire::Settled).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["outcome"], "applied");
    }
    f.clock.advance(Duration::seconds(61));
    f.system.executor.fire_due_timers();
    let record = f.system.executor.wait_finished(&exec).await.unwrap();
    assert_eq!(
        record.status,
        payops_local::workflows::ExecutionStatus::Succeeded,
        "{record:?}"
    );

    let (_, done) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["progress"]["paid_count"], 426);
    assert_eq!(dec(&done["progress"]["paid_total"]), dec(&up["total"]));

    // Reports in S3 add up to the file.
    let blobs = f.payroll.blobs.clone();
    let sources = blobs
        .get(&format!("payroll/batches/{id}/reports/sources.csv"))
        .await
        .unwrap()
        .expect("sources report");
    let text = String::from_utf8(sources.body.to_vec()).unwrap();
    let mut paid = Decimal::ZERO;
    let mut count = 0u64;
    for line in text.lines().skip(1) {
        // Ids have no commas, so the CSV splits plainly.
        let rec: Vec<&str> = line.split(',').collect();
        count += rec[1].parse::<u64>().unwrap();
        paid += rec[4].parse::<Decimal>().unwrap();
        assert_eq!(rec[2], rec[4], "owed = paid for each source");
    }
    assert_eq!((count, paid), (426, dec(&up["total"])));
    let payments = blobs
        .get(&format!("payroll/batches/{id}/reports/payments.csv"))
        .await
        .unwrap()
        .unwrap();
    let lines = payments
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines, 427);
    assert!(!String::from_utf8_lossy(&payments.body).contains("UNPROCESSED"));
    let (status, branches) = get(&f, &format!("/payroll/batches/{id}/reports/branches.csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(branches.as_str().unwrap().lines().count(), 31);

    // The ledger balances: every transaction sums to zero, nothing is owed, cash went out.
    let page = f
        .payroll
        .table
        .query(payops_app::ports::Query::partition(
            layout::ledger_partition(&id),
        ))
        .await
        .unwrap();
    let txs: Vec<_> = page
        .items
        .iter()
        .map(|i| layout::ledger_from_item(i).unwrap())
        .collect();
    assert_eq!(txs.len(), 2 * 426);
    assert!(txs.iter().all(|t| t.check().is_ok()));
    let balances = ledger::balances(txs.iter());
    assert!(
        balances.keys().all(|k| !k.starts_with("payable:")),
        "{balances:?}"
    );
    let cash: Decimal = balances
        .iter()
        .filter(|(k, _)| k.starts_with("cash:"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(-cash, dec(&up["total"]));
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 0, "{report}");
}

/// Waits for the execution the first resume started (starting the same name and input
/// again answers it) and checks that it wrote every payment of the sample.
async fn the_first_resume_writes_every_payment(f: &Fixture, id: &str) {
    let resumed = f
        .system
        .executor
        .start(
            payroll::STATE_MACHINE_LOGICAL_ID,
            &format!("{id}-resume-1"),
            json!({ "batch_id": id }),
        )
        .await
        .unwrap();
    f.system.executor.wait_settled(&resumed).await;
    let (_, shown) = get(f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["status"], "PROCESSING", "{shown}");
    assert_eq!(shown["progress"]["payments"], 426, "{shown}");
}

#[tokio::test]
async fn a_workflow_that_fails_marks_the_batch_failed_and_a_resume_goes_on_where_it_stopped() {
    let f = fixture();
    let (_, up) = upload(&f, sample()).await;
    let id = up["batch_id"].as_str().unwrap().to_owned();
    let exec = execution(&f, &id).await;
    f.system.executor.wait_settled(&exec).await;
    let resume = format!("/payroll/batches/{id}/resume");
    let post = || call(&f.api, Request::post(&resume).body(Body::empty()).unwrap());
    let (status, refused) = post().await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "only a FAILED batch resumes: {refused}"
    );
    // A stray item where the first payment goes (say, written by hand): the payments cannot
    // be written all or nothing, a failure no retry mends.
    let stray = layout::payment_key(&id, 1);
    f.payroll
        .table
        .put(
            payops_app::ports::Item::new(&stray).with("note", "written by hand"),
            None,
        )
        .await
        .unwrap();
    let (status, _) = approve(&f, &id, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    f.system.executor.wait_settled(&exec).await;
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["status"], "FAILED", "{shown}");
    assert_eq!(shown["failure"]["error"], "Fatal", "{shown}");
    assert!(
        shown["failure"]["cause"]
            .as_str()
            .unwrap()
            .contains("chunk marker"),
        "{shown}"
    );
    // The nightly check reports it until it is resumed.
    let report = check(&f).await;
    assert_eq!(kinds(&report), ["batch_failed"], "{report}");
    assert!(
        difference_of(&report, "batch_failed", &id)["detail"]
            .as_str()
            .unwrap()
            .contains("Fatal")
    );

    // Once the stray item is gone, a resume starts a new execution that writes every payment.
    f.payroll.table.delete(&stray, None).await.unwrap();
    let (status, resumed) = post().await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "APPROVED");
    assert_eq!(resumed["failure"]["resumes"], 1);
    the_first_resume_writes_every_payment(&f, &id).await;
    // Asked again (a double click, a retry after a lost answer): the same execution.
    let (status, twice) = post().await;
    assert_eq!(status, StatusCode::OK, "{twice}");
    assert_eq!(twice["failure"]["resumes"], 1);
    // A late MarkFailed of the replaced execution changes nothing.
    let late = json!({
        "action": "fail", "batch_id": id, "execution": id,
        "error": { "Error": "Fatal", "Cause": "late" }
    });
    payroll::WorkflowTasks::new(f.payroll.clone())
        .handle(late)
        .await
        .unwrap();
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["status"], "PROCESSING", "{shown}");
    assert_eq!(drain(&f, "PayrollAccountsQueue", &f.accounts).await, 0);
    assert_eq!(drain(&f, "PayrollPaymentsQueue", &f.payments).await, 0);
    assert_eq!(provider_payments(&f).len(), 426);
}

#[tokio::test]
async fn a_batch_approved_long_ago_with_its_payments_unwritten_is_reported_by_the_check() {
    let f = fixture();
    let (_, up) = upload(&f, sample()).await;
    let id = up["batch_id"].as_str().unwrap().to_owned();
    // Approved, and then its execution stopped before writing anything (by hand, say):
    // nothing marked it FAILED.
    f.payroll
        .table
        .update(
            &layout::batch_key(&id),
            vec![
                payops_app::ports::UpdateAction::set(layout::attr::STATUS, "APPROVED"),
                payops_app::ports::UpdateAction::set(
                    layout::attr::APPROVED_AT,
                    layout::time_text(t0()),
                ),
            ],
            None,
        )
        .await
        .unwrap();
    let soon = check_at(&f, t0() + Duration::minutes(30)).await;
    assert_eq!(
        kinds(&soon),
        Vec::<String>::new(),
        "still being written: {soon}"
    );
    let later = check_at(&f, t0() + Duration::hours(2)).await;
    assert_eq!(kinds(&later), ["batch_stuck"], "{later}");
    assert_eq!(
        difference_of(&later, "batch_stuck", &id)["batch_id"],
        json!(id)
    );
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["status"], "APPROVED", "reported, not changed");

    // Ops resume it: a new execution writes every payment.
    let resume = format!("/payroll/batches/{id}/resume");
    let post = || call(&f.api, Request::post(&resume).body(Body::empty()).unwrap());
    f.clock.set(t0() + Duration::minutes(30));
    let (status, early) = post().await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "it may still be writing: {early}"
    );
    f.clock.set(t0() + Duration::hours(2));
    let (status, resumed) = post().await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    the_first_resume_writes_every_payment(&f, &id).await;
    let (status, again) = post().await;
    assert_eq!(status, StatusCode::OK, "the same execution: {again}");
    assert_eq!(again["failure"], json!(null));
}

#[tokio::test]
async fn a_crash_between_the_provider_call_and_the_status_update_does_not_pay_twice() {
    let f = fixture();
    let (id, _) = approved(&f).await;
    drain(&f, "PayrollAccountsQueue", &f.accounts).await;
    // The first payment call reaches the provider, then the answer is lost.
    f.provider.lose_next_answer.store(true, Ordering::SeqCst);
    let msg = payroll::materialise::PaymentMessage {
        batch_id: id.clone(),
        row: 1,
    };
    let first = f.payments.execute(&msg).await;
    assert!(first.is_err(), "the lost answer fails the message");
    assert_eq!(
        provider_payments(&f).len(),
        1,
        "but the provider has the payment"
    );
    let row1 = payroll::transitions::read_payment(&f.payroll, &id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row1.status,
        payops_core::payroll::PaymentStatus::Unprocessed
    );
    // The retry (same idempotency key) gets the same payment back and records it.
    let again = f.payments.execute(&msg).await.unwrap();
    assert!(
        matches!(again, payroll::payments::Executed::Created { .. }),
        "{again:?}"
    );
    assert_eq!(provider_payments(&f).len(), 1);
    let row1 = payroll::transitions::read_payment(&f.payroll, &id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row1.status, payops_core::payroll::PaymentStatus::Processing);
    assert_eq!(row1.provider_payment_id.as_deref(), Some("pay_0"));
    // A third delivery of the same message does nothing.
    assert_eq!(
        f.payments.execute(&msg).await.unwrap(),
        payroll::payments::Executed::AlreadyDone
    );
    drain(&f, "PayrollPaymentsQueue", &f.payments).await;
    assert_eq!(provider_payments(&f).len(), 426);
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 0, "{report}");
}

#[tokio::test]
async fn duplicate_reordered_unknown_and_unsigned_webhooks() {
    let f = fixture();
    let id = approved_and_sent(&f).await;
    let p = provider_payments(&f).into_iter().next().unwrap();
    let row_of = |p: &Payment| {
        layout::parse_payment_id(p.external_id.as_deref().unwrap())
            .unwrap()
            .1
    };

    assert_eq!(
        webhook(&f, "evt_a", &p, Wire::Settled).await.1["outcome"],
        "applied"
    );
    // The same event again: recognised and ignored.
    assert_eq!(
        webhook(&f, "evt_a", &p, Wire::Settled).await.1["outcome"],
        "duplicate"
    );
    // A late `processing` after `settled`: nothing moves backwards.
    assert_eq!(
        webhook(&f, "evt_b", &p, Wire::Processing).await.1["outcome"],
        "stale"
    );
    let rec = payroll::transitions::read_payment(&f.payroll, &id, row_of(&p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, payops_core::payroll::PaymentStatus::Settled);
    // Settled, then reversed: the refund balances the ledger back to nothing for it.
    assert_eq!(
        webhook(&f, "evt_c", &p, Wire::Reversed).await.1["outcome"],
        "applied"
    );
    // A payment we do not know: 200, logged.
    let mut stranger = p.clone();
    stranger.external_id = Some("someone-else".into());
    let (status, answer) = webhook(&f, "evt_d", &stranger, Wire::Settled).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("unknown_payment"))
    );
    // A status this version does not know (a provider adds one): 200, logged, nothing moved;
    // the nightly check against the provider's listing reports the payment.
    let mut event =
        serde_json::to_value(f.provider.report("evt_f", &p, Wire::Settled, f.clock.now())).unwrap();
    event["data"]["status"] = json!("on_hold");
    let (status, answer) = post_signed(&f, serde_json::to_vec(&event).unwrap()).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("unknown_status")),
        "{answer}"
    );
    let mut gone = p.clone();
    gone.external_id = Some(layout::payment_id(&id, 99_999));
    assert_eq!(
        webhook(&f, "evt_e", &gone, Wire::Settled).await.1["outcome"],
        "unknown_payment"
    );
    // Unsigned or badly signed: 401, nothing applied.
    let (status, _) = call(
        &f.webhooks,
        Request::post(payroll::WEBHOOK_PATH)
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Reordered for another payment: settled first, then pending, processing and sent late.
    let q = provider_payments(&f).into_iter().nth(1).unwrap();
    assert_eq!(
        webhook(&f, "evt_f1", &q, Wire::Settled).await.1["outcome"],
        "applied"
    );
    for (n, s) in [Wire::Pending, Wire::Processing, Wire::Sent]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            webhook(&f, &format!("evt_f2{n}"), &q, s).await.1["outcome"],
            "stale"
        );
    }
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["progress"]["counts"]["settled"], 1, "{shown}");
    assert_eq!(shown["progress"]["counts"]["reversed"], 1);
    assert_eq!(shown["progress"]["counts"]["processing"], 424);
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 0, "{report}");
}

async fn webhook_batch(f: &Fixture, events: &[Value]) -> (StatusCode, Value) {
    post_signed(f, serde_json::to_vec(events).unwrap()).await
}

/// The outcome of each event of a batched delivery's answer, in order.
fn outcomes_of(answer: &Value) -> Vec<&str> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_of_events_is_applied_per_payment_in_order_and_a_redelivery_changes_nothing() {
    let f = fixture();
    let id = approved_and_sent(&f).await;
    let payments = provider_payments(&f);
    let (p, q) = (&payments[0], &payments[1]);
    let event = |id: &str, payment: &Payment, status| {
        serde_json::to_value(f.provider.report(id, payment, status, f.clock.now())).unwrap()
    };
    let mut stranger = p.clone();
    stranger.external_id = Some("someone-else".into());
    let events = vec![
        event("evt_p1", p, Wire::Sent),
        event("evt_q1", q, Wire::Settled),
        event("evt_p2", p, Wire::Settled),
        // Late for q: it is settled by the event before it in this batch.
        event("evt_q2", q, Wire::Sent),
        event("evt_x", &stranger, Wire::Settled),
        // The same event twice in one delivery.
        event("evt_p2", p, Wire::Settled),
    ];
    let (status, answer) = webhook_batch(&f, &events).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outcomes = outcomes_of(&answer);
    assert_eq!(
        outcomes,
        [
            "applied",
            "applied",
            "applied",
            "stale",
            "unknown_payment",
            "duplicate"
        ]
    );
    // The provider sends the whole batch again: every event is recognised, nothing moves.
    let (status, again) = webhook_batch(&f, &events).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        again["events"].as_array().unwrap().iter().all(|e| [
            "duplicate",
            "stale",
            "unknown_payment"
        ]
        .contains(&e["outcome"].as_str().unwrap())),
        "{again}"
    );
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["progress"]["counts"]["settled"], 2, "{shown}");
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 0, "{report}");

    // An empty or oversized batch, or one with a bad element, is refused whole, naming it.
    let (status, _) = webhook_batch(&f, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let too_many = vec![
        event("evt_many", p, Wire::Settled);
        payroll::webhook::WEBHOOK_EVENTS_PER_DELIVERY_MAX + 1
    ];
    let (status, _) = webhook_batch(&f, &too_many).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, refused) = webhook_batch(
        &f,
        &[event("evt_ok", q, Wire::Settled), json!({"id": "evt_bad"})],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["field"], "body[1]", "{refused}");

    // A status this version does not know is acknowledged in its place; one it knows in
    // another spelling is applied; the rest applies as usual.
    let mut on_hold = event("evt_hold", p, Wire::Sent);
    on_hold["data"]["status"] = json!("on_hold");
    let mut capitalised = event("evt_p3", p, Wire::Reversed);
    capitalised["data"]["status"] = json!("Reversed");
    let (status, answer) = webhook_batch(
        &f,
        &[on_hold, event("evt_q1", q, Wire::Settled), capitalised],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        outcomes_of(&answer),
        ["unknown_status", "duplicate", "applied"]
    );
    assert_eq!(answer["events"][0]["event_id"], "evt_hold");
    use payops_core::payroll::PaymentStatus as Ours;
    assert_eq!(status_of(&f, p).await, Ours::Reversed);
}

/// Fails every transaction that moves the payment at `key`, as a busy store would.
struct FailingMoves {
    key: std::sync::Mutex<Option<payops_app::ports::Key>>,
}

#[async_trait::async_trait]
impl TableHook for FailingMoves {
    async fn transact(&self, inner: &dyn Table, writes: Vec<Write>) -> Result<(), TableError> {
        let failing = self.key.lock().unwrap().clone();
        let moves_it = writes.iter().any(|w| match (w, &failing) {
            (Write::Update { key, .. }, Some(failing)) => key == failing,
            _ => false,
        });
        if moves_it {
            return Err(TableError::Unavailable("database is busy".into()));
        }
        inner.transact(writes).await
    }
}

#[tokio::test]
async fn a_batch_that_fails_midway_answers_503_and_its_redelivery_applies_the_rest() {
    let f = fixture();
    let id = approved_and_sent(&f).await;
    let payments = provider_payments(&f);
    let (p, q) = (&payments[0], &payments[1]);
    let row_of = |payment: &Payment| {
        layout::parse_payment_id(payment.external_id.as_deref().unwrap())
            .unwrap()
            .1
    };
    let table = Arc::new(HookedTable {
        inner: f.payroll.table.clone(),
        hook: FailingMoves {
            key: std::sync::Mutex::new(Some(layout::payment_key(&id, row_of(q)))),
        },
    });
    let webhooks = payroll::webhook_router(
        Payroll {
            table: table.clone(),
            ..f.payroll.clone()
        },
        payops_core::Secret::new(payops_local::env::DEV_WEBHOOK_SECRET.to_owned()),
    );
    let events: Vec<Value> = [("evt_p", p), ("evt_q", q)]
        .into_iter()
        .map(|(id, payment)| {
            let event = f.provider.report(id, payment, Wire::Settled, f.clock.now());
            serde_json::to_value(event).unwrap()
        })
        .collect();
    let deliver = || post_signed_to(&webhooks, &f, serde_json::to_vec(&events).unwrap());
    // q's move fails: the provider is told to send the whole delivery again.
    let (status, answer) = deliver().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    use payops_core::payroll::PaymentStatus as Ours;
    assert_eq!(status_of(&f, p).await, Ours::Settled, "p's move is kept");
    assert_eq!(status_of(&f, q).await, Ours::Processing);

    // Once the store is back, the redelivery applies q and recognises p.
    *table.hook.key.lock().unwrap() = None;
    let (status, answer) = deliver().await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outcomes = outcomes_of(&answer);
    assert_eq!(outcomes, ["duplicate", "applied"]);
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["progress"]["counts"]["settled"], 2, "{shown}");
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 0, "{report}");
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letter_queue_and_can_be_redriven() {
    let f = fixture();
    let q = f.system.env.local_queue("PayrollPaymentsQueue").unwrap();
    q.send_batch(vec![payops_app::ports::OutgoingMessage::new("{not json")])
        .await
        .unwrap();
    let max_receives = f
        .system
        .env
        .template
        .queues
        .iter()
        .find(|s| s.logical_id == "PayrollPaymentsQueue")
        .and_then(|s| s.dead_letter.clone())
        .unwrap();
    assert_eq!(max_receives.0, "PayrollPaymentsDeadLetterQueue");
    let mut failures = 0;
    for _ in 0..max_receives.1 + 1 {
        failures += drain(&f, "PayrollPaymentsQueue", &f.payments).await;
        // Past the visibility timeout, the message is visible again (or dead-lettered).
        f.clock.advance(Duration::seconds(3600));
    }
    assert_eq!(failures, max_receives.1 as usize);
    assert_eq!(q.approximate_depth().await.unwrap(), 0);
    let dlq = f
        .system
        .env
        .local_queue("PayrollPaymentsDeadLetterQueue")
        .unwrap();
    let dead = dlq.peek(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "{not json");
    assert_eq!(dlq.redrive_all(&q).await.unwrap(), 1);
    assert_eq!(q.approximate_depth().await.unwrap(), 1);
}

#[tokio::test]
async fn the_consistency_check_reports_differences_without_overwriting_and_re_enqueues_stuck_payments()
 {
    let f = fixture();
    let (id, up) = approved(&f).await;
    // The accounts messages are lost (say, purged by mistake): payments stay UNPROCESSED.
    let accounts = f.system.env.local_queue("PayrollAccountsQueue").unwrap();
    while let Ok(ms) = accounts.receive(Default::default()).await {
        if ms.is_empty() {
            break;
        }
        for m in ms {
            accounts.delete(&m.receipt_handle).await.unwrap();
        }
    }
    // Someone edits an aggregate by hand.
    let first_source = up["summary"]["by_source"][0]["source_id"].as_str().unwrap();
    let key = layout::source_key(&id, first_source);
    f.payroll
        .table
        .update(
            &key,
            vec![payops_app::ports::UpdateAction::add(
                "owed_count",
                Decimal::ONE,
            )],
            None,
        )
        .await
        .unwrap();
    // The nightly run is a day later: every payment is stuck.
    f.clock.advance(Duration::hours(20));
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 1, "{report}");
    assert_eq!(report["differences"][0]["kind"], "aggregate");
    assert_eq!(report["re_enqueued_payments"], SAMPLE_ROWS);
    // Reported, not overwritten.
    let stored = f.payroll.table.get(&key).await.unwrap().unwrap();
    let expected: u64 = up["summary"]["by_source"][0]["count"].as_u64().unwrap() + 1;
    assert_eq!(stored.n("owed_count"), Some(Decimal::from(expected)));
    // The re-enqueued work pays everything.
    assert!(accounts.approximate_depth().await.unwrap() > 0);
    drain(&f, "PayrollAccountsQueue", &f.accounts).await;
    drain(&f, "PayrollPaymentsQueue", &f.payments).await;
    assert_eq!(provider_payments(&f).len(), SAMPLE_ROWS);
}

#[tokio::test]
async fn a_file_dropped_in_the_inbox_becomes_one_batch_even_if_notified_twice() {
    let f = fixture();
    f.payroll
        .blobs
        .put(
            &format!("{}may.xml", payroll::INBOX_PREFIX),
            bytes::Bytes::from(sample()),
            "application/xml",
        )
        .await
        .unwrap();
    let inbox = payroll::InboxHandler::new(f.payroll.clone());
    let q = f.system.env.local_queue("PayrollInboxQueue").unwrap();
    let notification = q.peek(1).await.unwrap().remove(0).body;
    assert_eq!(drain(&f, "PayrollInboxQueue", &inbox).await, 0);
    // S3 delivers at least once: the same notification again.
    q.send_batch(vec![payops_app::ports::OutgoingMessage::new(notification)])
        .await
        .unwrap();
    assert_eq!(drain(&f, "PayrollInboxQueue", &inbox).await, 0);
    let (_, list) = get(&f, "/payroll/batches").await;
    let batches = list["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{list}");
    assert_eq!(batches[0]["file_name"], "may.xml");
    assert_eq!(batches[0]["status"], "AWAITING_APPROVAL");
    assert_eq!(batches[0]["rows"], 426);
}

// ---------------------------------------------------------------------------------------
// Reconciliation with the provider.

fn kinds(report: &Value) -> Vec<String> {
    let mut k: Vec<String> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

fn difference_of<'a>(report: &'a Value, kind: &str, subject: &str) -> &'a Value {
    report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == kind && d["subject"] == subject)
        .unwrap_or_else(|| panic!("no {kind} for {subject} in {report}"))
}

async fn status_of(f: &Fixture, p: &Payment) -> payops_core::payroll::PaymentStatus {
    let (batch, row) = layout::parse_payment_id(p.external_id.as_deref().unwrap()).unwrap();
    payroll::transitions::read_payment(&f.payroll, batch, row)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// What the check of `the_check_pages_through_…` reports and never applies itself.
const NEEDS_A_PERSON: [&str; 6] = [
    "provider_amount",
    "provider_duplicate",
    "provider_missing",
    "provider_status",
    "provider_unknown",
    "provider_unknown",
];

#[tokio::test]
async fn the_check_pages_through_the_provider_and_applies_only_forward_moves_it_reports() {
    use payops_core::payroll::PaymentStatus as Ours;
    let f = fixture();
    let id = approved_and_sent(&f).await;
    // In step: the provider's `pending` is our PROCESSING; 426 payments in pages of 100.
    let clean = check(&f).await;
    assert_eq!(clean["difference_count"], 0, "{clean}");
    assert_eq!(clean["provider_checked"], true);
    assert_eq!(clean["provider_payments_listed"], SAMPLE_ROWS);
    assert_eq!(clean["provider_listing_complete"], true);
    assert_eq!(f.provider.pages_listed.load(Ordering::SeqCst), 5);

    let sent = f.provider.in_creation_order();
    let (lost, lateral, reversed, gone, twice, other_amount) =
        (&sent[0], &sent[1], &sent[2], &sent[3], &sent[4], &sent[5]);
    f.provider.set_amount(
        &other_amount.id,
        other_amount.amount.amount() + Decimal::ONE,
    );
    let now = f.clock.now();
    // A settlement whose webhook was lost: the provider says settled, we say processing.
    f.provider.set_status(&lost.id, Wire::Settled, now);
    // We were told settled; the provider now says failed: beside, never applied.
    webhook(&f, "evt_l", lateral, Wire::Settled).await;
    f.provider.set_status(&lateral.id, Wire::Failed, now);
    // Settled here, reversed at the provider without a webhook: forward, applied.
    webhook(&f, "evt_r", reversed, Wire::Settled).await;
    f.provider.set_status(&reversed.id, Wire::Reversed, now);
    // The provider lost one we sent; has a second payment for another; and two of no one's.
    f.provider.forget(&gone.id);
    let second = f.provider.add_foreign(twice, twice.external_id.clone());
    let stranger = f.provider.add_foreign(twice, Some("someone-else".into()));
    let no_row = f
        .provider
        .add_foreign(twice, Some(layout::payment_id(&id, 99_999)));

    // Minutes after the provider moved them, their webhooks may still be on the way: the
    // forward moves are in flight, neither applied nor reported; the rest is reported.
    let grace = Duration::minutes(payroll::check::provider::WEBHOOK_GRACE_MINUTES);
    let early = check_at(&f, now + grace - Duration::seconds(1)).await;
    assert_eq!(early["provider_in_flight"], 2, "{early}");
    assert_eq!(early["corrections_applied"], 0, "{early}");
    assert_eq!(kinds(&early), NEEDS_A_PERSON, "{early}");
    assert_eq!(status_of(&f, lost).await, Ours::Processing);
    assert_eq!(status_of(&f, reversed).await, Ours::Settled);

    // Past the grace, they are lost webhooks.
    let report = check_at(&f, now + grace).await;
    assert_eq!(report["provider_in_flight"], 0, "{report}");
    assert_eq!(
        kinds(&report),
        [
            "provider_amount",
            "provider_duplicate",
            "provider_missing",
            "provider_status",
            "provider_status",
            "provider_status",
            "provider_unknown",
            "provider_unknown",
        ],
        "{report}"
    );
    assert_eq!(report["corrections_applied"], 2, "{report}");
    let pid = |p: &Payment| p.external_id.clone().unwrap();
    let d = difference_of(&report, "provider_status", &pid(lost));
    assert!(
        d["detail"]
            .as_str()
            .unwrap()
            .contains("corrected PROCESSING -> SETTLED"),
        "{d}"
    );
    let d = difference_of(&report, "provider_status", &pid(lateral));
    assert!(d["detail"].as_str().unwrap().contains("not applied"), "{d}");
    difference_of(&report, "provider_status", &pid(reversed));
    difference_of(&report, "provider_missing", &pid(gone));
    let d = difference_of(&report, "provider_duplicate", &pid(twice));
    assert!(d["detail"].as_str().unwrap().contains(second.id.as_str()));
    let d = difference_of(&report, "provider_unknown", stranger.id.as_str());
    assert_eq!(d["batch_id"], "*");
    let d = difference_of(&report, "provider_unknown", no_row.id.as_str());
    assert_eq!(d["batch_id"], json!(id));

    assert_eq!(status_of(&f, lost).await, Ours::Settled);
    assert_eq!(
        status_of(&f, lateral).await,
        Ours::Settled,
        "never overwritten"
    );
    assert_eq!(status_of(&f, reversed).await, Ours::Reversed);
    // Moved with their aggregates and ledger, in the webhook's transaction: no other kind.
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["progress"]["counts"]["settled"], 2, "{shown}");
    assert_eq!(shown["progress"]["counts"]["reversed"], 1);

    // The late webhook of the lost settlement changes nothing and counts nothing twice.
    let (_, late) = webhook(&f, "evt_late", lost, Wire::Settled).await;
    assert_eq!(late["outcome"], "stale");
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["progress"]["counts"]["settled"], 2, "{shown}");

    // A second run applies nothing again; what needs a person is still reported.
    let again = check(&f).await;
    assert_eq!(again["corrections_applied"], 0, "{again}");
    assert_eq!(kinds(&again), NEEDS_A_PERSON, "{again}");
}

#[tokio::test]
async fn a_payment_created_but_never_recorded_is_recorded_by_the_check_and_not_sent_again() {
    let f = fixture();
    let (id, _) = approved(&f).await;
    drain(&f, "PayrollAccountsQueue", &f.accounts).await;
    // Row 1 reaches the provider, the answer is lost, and its message is lost too.
    f.provider.lose_next_answer.store(true, Ordering::SeqCst);
    let msg = payroll::materialise::PaymentMessage {
        batch_id: id.clone(),
        row: 1,
    };
    assert!(f.payments.execute(&msg).await.is_err());
    let q = f.system.env.local_queue("PayrollPaymentsQueue").unwrap();
    while let Ok(ms) = q.receive(Default::default()).await {
        if ms.is_empty() {
            break;
        }
        for m in ms {
            q.delete(&m.receipt_handle).await.unwrap();
        }
    }
    // A day later every payment is stuck; the provider's listing shows row 1 exists.
    f.clock.advance(Duration::hours(20));
    let report = check(&f).await;
    assert_eq!(report["corrections_applied"], 1, "{report}");
    assert_eq!(report["re_enqueued_payments"], SAMPLE_ROWS - 1);
    let row1 = payroll::transitions::read_payment(&f.payroll, &id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row1.status, payops_core::payroll::PaymentStatus::Processing);
    assert_eq!(row1.provider_payment_id.as_deref(), Some("pay_0"));
    // The re-enqueued work creates every other payment, and row 1 is not sent again.
    let before = f.provider.payment_count();
    assert_eq!(before, 1);
    drain(&f, "PayrollAccountsQueue", &f.accounts).await;
    drain(&f, "PayrollPaymentsQueue", &f.payments).await;
    let all = f.provider.in_creation_order();
    assert_eq!(all.len(), SAMPLE_ROWS);
    let mut externals: Vec<_> = all.iter().map(|p| p.external_id.clone()).collect();
    externals.sort();
    externals.dedup();
    assert_eq!(externals.len(), SAMPLE_ROWS, "one provider payment per row");
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 0, "{report}");
}

/// A table through which a webhook's move lands each time the check starts reading a
/// batch's ledger: between its read of the payments and its read of the aggregates.
struct Settling {
    payroll: Payroll,
    provider: Arc<FakeProvider>,
    batch_id: String,
    /// The provider's payments still to settle, one per ledger read.
    to_settle: std::sync::Mutex<Vec<Payment>>,
    /// Transactions the table refused (a condition failed: a lost race, or a stale move).
    refused: std::sync::atomic::AtomicU64,
}

impl Settling {
    fn table(self, inner: Arc<dyn Table>) -> Arc<HookedTable<Settling>> {
        Arc::new(HookedTable { inner, hook: self })
    }
}

#[async_trait::async_trait]
impl TableHook for Settling {
    async fn before_query(&self, query: Query) -> Query {
        let ledger_starts =
            query.partition == layout::ledger_partition(&self.batch_id) && query.cursor.is_none();
        let next = ledger_starts
            .then(|| self.to_settle.lock().unwrap().pop())
            .flatten();
        let Some(payment) = next else {
            return query;
        };
        let (batch, row) =
            layout::parse_payment_id(payment.external_id.as_deref().unwrap()).unwrap();
        self.provider
            .advance(&payment.id, Wire::Settled, self.payroll.clock.now());
        let details = payroll::transitions::MoveDetails::default();
        let moved = payroll::transitions::apply(
            &self.payroll,
            batch,
            row,
            payops_core::payroll::PaymentStatus::Settled,
            &details,
        )
        .await
        .unwrap();
        assert!(
            matches!(moved, payroll::transitions::MoveOutcome::Applied { .. }),
            "{moved:?}"
        );
        query
    }

    async fn transact(&self, inner: &dyn Table, writes: Vec<Write>) -> Result<(), TableError> {
        let done = inner.transact(writes).await;
        if matches!(done, Err(TableError::TransactionCanceled { .. })) {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        done
    }
}

/// The check of a batch whose webhooks keep landing while it reads: the provider settles
/// `settling`, one payment after each read of the payments.
async fn check_while_settling(f: &Fixture, id: &str, mut settling: Vec<Payment>) -> Value {
    settling.reverse();
    let table = Settling {
        payroll: f.payroll.clone(),
        provider: f.provider.clone(),
        batch_id: id.to_owned(),
        to_settle: std::sync::Mutex::new(settling),
        refused: Default::default(),
    }
    .table(f.payroll.table.clone());
    let payroll = Payroll {
        table,
        ..f.payroll.clone()
    };
    let at = f.clock.now() + Duration::minutes(1);
    payroll::check::run(&payroll, Some(f.provider.as_ref()), at)
        .await
        .map(|r| serde_json::to_value(r).unwrap())
        .unwrap()
}

/// What a move reported by the webhook event `event_id` records.
fn reported_by(event_id: &str) -> payroll::transitions::MoveDetails {
    payroll::transitions::MoveDetails {
        event_id: Some(event_id.to_owned()),
        ..Default::default()
    }
}

/// The fixture's payroll on another table (a hooked one).
fn payroll_on(f: &Fixture, table: Arc<dyn Table>) -> Payroll {
    Payroll {
        table,
        ..f.payroll.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_of_one_payment_at_once_queue_up_instead_of_racing_at_the_table() {
    use payops_core::payroll::PaymentStatus as Ours;
    use payroll::transitions::{MoveOutcome, apply};
    let f = fixture();
    let id = approved_and_sent(&f).await;
    let table = Settling {
        payroll: f.payroll.clone(),
        provider: f.provider.clone(),
        batch_id: id.clone(),
        to_settle: std::sync::Mutex::new(Vec::new()),
        refused: Default::default(),
    }
    .table(f.payroll.table.clone());
    let payroll = payroll_on(&f, table.clone());
    // As a provider sends them: a payment's `sent` and `settled` side by side, and `sent` twice.

    let (sent, settled, again) = (
        reported_by("evt_s"),
        reported_by("evt_t"),
        reported_by("evt_s2"),
    );
    let (a, b, c) = tokio::join!(
        apply(&payroll, &id, 7, Ours::Sent, &sent),
        apply(&payroll, &id, 7, Ours::Settled, &settled),
        apply(&payroll, &id, 7, Ours::Sent, &again),
    );
    let outcomes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, MoveOutcome::Applied { .. }))
        .count();
    assert!((1..=2).contains(&applied), "{outcomes:?}");
    assert!(outcomes.contains(&MoveOutcome::Applied {
        from: if applied == 2 {
            Ours::Sent
        } else {
            Ours::Processing
        },
        to: Ours::Settled
    }));
    assert_eq!(
        table.hook.refused.load(Ordering::SeqCst),
        0,
        "no move lost a race at the table: {outcomes:?}"
    );
    let row7 = payroll::transitions::read_payment(&f.payroll, &id, 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row7.status, Ours::Settled);
    // Counted once in the aggregates.
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["progress"]["counts"]["settled"], 1, "{shown}");
    assert_eq!(shown["progress"]["counts"].get("sent"), None, "{shown}");
}

/// Counts the reads of one key.
struct CountingGets {
    key: payops_app::ports::Key,
    gets: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl TableHook for CountingGets {
    async fn before_get(&self, key: &payops_app::ports::Key) {
        if *key == self.key {
            self.gets.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The parties claimed before their provider objects were made (each once, however many
/// workers tried).
#[derive(Default)]
struct CountingClaims {
    claimed: std::sync::Mutex<std::collections::BTreeSet<payops_app::ports::Key>>,
}

impl CountingClaims {
    fn count(&self) -> usize {
        self.claimed.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl TableHook for CountingClaims {
    async fn before_put(
        &self,
        item: &payops_app::ports::Item,
        _condition: Option<&payops_app::ports::Condition>,
    ) {
        if item.s(payroll::layout::attr::CLAIM_STATE) == Some("CLAIMED") {
            self.claimed.lock().unwrap().extend(item.key());
        }
    }
}

#[tokio::test]
async fn only_the_shared_payers_are_claimed_and_a_redelivered_employee_makes_nothing_twice() {
    let f = fixture();
    approved(&f).await;
    let hooked = Arc::new(HookedTable {
        inner: f.payroll.table.clone(),
        hook: CountingClaims::default(),
    });
    let worker = AccountsWorker::new(Disbursement {
        payroll: payroll_on(&f, hooked.clone()),
        provider: f.provider.clone(),
    });
    let q = f.system.env.local_queue("PayrollAccountsQueue").unwrap();
    let mut messages = Vec::new();
    loop {
        let batch = q
            .receive(payops_app::ports::ReceiveOptions::default())
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        messages.extend(batch);
    }
    let event = sqs_event(q.as_ref(), &messages).unwrap();
    assert!(
        worker
            .handle(event)
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );
    let employees = f.provider.entity_count() - 5;
    assert_eq!(
        employees,
        messages.len(),
        "one entity per employee, 5 payers"
    );
    assert_eq!(
        hooked.hook.count(),
        10,
        "a claim for each payer's entity and account; none for an employee's own objects"
    );
    // The same messages again, as SQS may deliver them: every object is found, none made.
    let (entities, accounts) = (f.provider.entity_count(), f.provider.account_count());
    let again = sqs_event(q.as_ref(), &messages).unwrap();
    assert!(
        worker
            .handle(again)
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(
        (f.provider.entity_count(), f.provider.account_count()),
        (entities, accounts)
    );
    assert_eq!(hooked.hook.count(), 10);
}

/// Cuts every query's pages to `items_max` items.
struct SmallPages {
    items_max: usize,
}

#[async_trait::async_trait]
impl TableHook for SmallPages {
    async fn before_query(&self, query: Query) -> Query {
        query.limit(self.items_max)
    }
}

#[tokio::test]
async fn the_payments_report_reads_page_after_page_and_lists_each_payment_once_in_row_order() {
    let f = fixture();
    let id = approved_and_sent(&f).await;
    let whole = payroll::report::render(&f.payroll, &id, payroll::report::ReportKind::Payments)
        .await
        .unwrap();
    // 426 payments on pages of 100: five pages, each next one read while one is written.
    let paged = payroll_on(
        &f,
        Arc::new(HookedTable {
            inner: f.payroll.table.clone(),
            hook: SmallPages { items_max: 100 },
        }),
    );
    let report = payroll::report::render(&paged, &id, payroll::report::ReportKind::Payments)
        .await
        .unwrap();
    assert_eq!(report, whole);
    let text = String::from_utf8(report).unwrap();
    let rows: Vec<u32> = text
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(rows, (1..=426).collect::<Vec<u32>>());
}

#[tokio::test]
async fn a_report_after_a_move_starts_from_the_payment_it_left_and_another_process_is_noticed() {
    use payops_core::payroll::PaymentStatus as Ours;
    use payroll::transitions::{MoveDetails, MoveOutcome, apply, move_writes, read_payment};
    let f = fixture();
    let id = approved_and_sent(&f).await;
    let row = 5;
    let table = Arc::new(HookedTable {
        inner: f.payroll.table.clone(),
        hook: CountingGets {
            key: layout::payment_key(&id, row),
            gets: Default::default(),
        },
    });
    let payroll = payroll_on(&f, table.clone());
    let gets = || table.hook.gets.load(Ordering::SeqCst);
    let report = |to: Ours, event_id: &str| {
        let (payroll, id, details) = (&payroll, &id, reported_by(event_id));
        async move { apply(payroll, id, row, to, &details).await.unwrap() }
    };
    let sent = report(Ours::Sent, "evt_sent").await;
    assert!(matches!(sent, MoveOutcome::Applied { .. }), "{sent:?}");
    let before = gets();
    // The next reports of the payment start from what the move left: no read.
    let settled = report(Ours::Settled, "evt_settled").await;
    assert!(
        matches!(settled, MoveOutcome::Applied { .. }),
        "{settled:?}"
    );
    let current = Ours::Settled;
    assert_eq!(
        report(Ours::Sent, "evt_late").await,
        MoveOutcome::Stale { current }
    );
    let again = report(Ours::Settled, "evt_settled").await;
    assert_eq!(again, MoveOutcome::Duplicate);
    assert_eq!(gets(), before, "no read of the payment");

    // Another process reverses the payment (its own move, beside this one's copy).
    let stored = read_payment(&f.payroll, &id, row).await.unwrap().unwrap();
    let elsewhere = MoveDetails::default();
    let writes = move_writes(&stored, Ours::Reversed, &elsewhere, "2026-11-22T09:30:00Z").unwrap();
    f.payroll.table.transact(writes).await.unwrap();
    // This process's copy says SETTLED: the move from it fails its condition, the payment is
    // read again, and the reversal is found already made, not made twice.
    let current = Ours::Reversed;
    let reversed = report(Ours::Reversed, "evt_reversed").await;
    assert_eq!(reversed, MoveOutcome::Stale { current });
    assert_eq!(gets(), before + 1, "read once, after the condition failed");
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(shown["progress"]["counts"]["reversed"], 1, "{shown}");
    assert_eq!(shown["progress"]["counts"].get("settled"), None, "{shown}");
}

#[tokio::test]
async fn webhooks_landing_while_the_check_reads_a_batch_are_not_differences() {
    let f = fixture();
    let id = approved_and_sent(&f).await;
    let sent = f.provider.in_creation_order();
    // One move between the reads: the check reads the batch again and finds it still.
    let report = check_while_settling(&f, &id, sent[..1].to_vec()).await;
    assert_eq!(report["differences"], json!([]), "{report}");
    assert_eq!(report["batches_moving"], 0, "{report}");
    assert_eq!(report["batches_checked"], 1, "{report}");

    // A move after every read: it gives up on the comparisons and says so, reporting nothing.
    let attempts = payroll::check::STILL_READ_ATTEMPTS_MAX;
    let report = check_while_settling(&f, &id, sent[1..=attempts].to_vec()).await;
    assert_eq!(report["differences"], json!([]), "{report}");
    assert_eq!(report["batches_moving"], 1, "{report}");

    // Once it is still, every move made meanwhile is in the comparisons, and they agree.
    let report = check(&f).await;
    assert_eq!(report["difference_count"], 0, "{report}");
    assert_eq!(report["batches_moving"], 0, "{report}");
    let (_, shown) = get(&f, &format!("/payroll/batches/{id}")).await;
    assert_eq!(
        shown["progress"]["counts"]["settled"],
        1 + attempts,
        "{shown}"
    );
}

#[tokio::test]
async fn a_provider_outage_mid_listing_is_reported_and_the_rest_is_looked_up() {
    let f = fixture();
    approved_and_sent(&f).await;
    let sent = f.provider.in_creation_order();
    // Settled at the provider with lost webhooks: one inside the first page, one beyond it.
    f.provider
        .set_status(&sent[10].id, Wire::Settled, f.clock.now());
    f.provider
        .set_status(&sent[300].id, Wire::Settled, f.clock.now());
    // The provider serves one page, then fails.
    *f.provider.listing_fails_after.lock().unwrap() = Some(1);
    let report = check(&f).await;
    assert_eq!(report["provider_listing_complete"], false, "{report}");
    assert_eq!(report["provider_payments_listed"], 100);
    // The 326 sent payments the listing did not show were looked up one by one.
    assert_eq!(report["provider_unchecked"], 0, "{report}");
    assert_eq!(report["corrections_applied"], 2, "{report}");
    assert_eq!(
        kinds(&report),
        ["provider_status", "provider_status", "provider_unavailable"],
        "{report}"
    );
    // The table's own comparisons still ran: aggregates and ledger agree after the moves.
    assert_eq!(report["batches_checked"], 1);
}

#[tokio::test]
async fn the_check_resumes_the_provider_listing_where_its_batches_begin() {
    let f = fixture();
    // 250 payments at the provider that are no one's here, made before our batch.
    f.provider.add_legacy(250);
    approved_and_sent(&f).await;
    // Every difference is an unknown payment (the answer lists the first 100 of them).
    let unknowns = |r: &Value| {
        assert!(kinds(r).iter().all(|k| k == "provider_unknown"), "{r}");
        r["difference_count"].as_u64().unwrap()
    };
    let pages = || f.provider.pages_listed.load(Ordering::SeqCst);
    let first = check(&f).await;
    assert_eq!(
        first["provider_payments_listed"],
        250 + SAMPLE_ROWS,
        "{first}"
    );
    assert_eq!(pages(), 7);
    assert_eq!(unknowns(&first), 250);
    // The next run starts at the page where the batch's payments begin (payments 200..300).
    let second = check(&f).await;
    assert_eq!(pages(), 7 + 5);
    assert_eq!(
        second["provider_payments_listed"],
        50 + SAMPLE_ROWS,
        "{second}"
    );
    assert_eq!(unknowns(&second), 50);
    assert_eq!(second["provider_listing_complete"], true);
    // A cursor the provider refuses: the listing starts over from the beginning.
    f.payroll
        .table
        .put(
            payops_app::ports::Item::new(&layout::provider_checkpoint_key())
                .with("cursor", "bogus"),
            None,
        )
        .await
        .unwrap();
    let third = check(&f).await;
    assert_eq!(
        third["provider_payments_listed"],
        250 + SAMPLE_ROWS,
        "{third}"
    );
    assert_eq!(unknowns(&third), 250);
}

/// A sample of `events/`, as `sam local invoke -e` takes it.
fn sample_event(name: &str) -> String {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each payroll function takes its sample event (their batch is not in a fresh store, so
/// the answers are those of an unknown batch).
#[tokio::test]
async fn each_payroll_function_takes_its_sample_event() {
    let f = fixture();
    let request = lambda_http::request::from_str(&sample_event("payroll-api.json")).unwrap();
    let (status, list) = call(&f.api, request.map(|b| Body::from(b.to_vec()))).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["batches"], json!([]));

    // Signed with the development secret at its own timestamp.
    f.clock.set("2025-01-01T09:16:40Z".parse().unwrap());
    let request = lambda_http::request::from_str(&sample_event("payroll-webhook.json")).unwrap();
    let (status, answer) = call(&f.webhooks, request.map(|b| Body::from(b.to_vec()))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "unknown_payment");

    for (name, handler) in [
        ("payroll-accounts.json", &f.accounts as &dyn SqsHandler),
        ("payroll-payments.json", &f.payments),
    ] {
        let event: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_str(&sample_event(name)).unwrap();
        let records = event.records.len();
        let response = handler.handle(event).await.unwrap();
        assert_eq!(response.batch_item_failures.len(), records, "{name}");
    }

    let task: Value = serde_json::from_str(&sample_event("payroll-workflow.json")).unwrap();
    let e = payroll::WorkflowTasks::new(f.payroll.clone())
        .handle(task)
        .await
        .expect_err("an unknown batch");
    assert_eq!(e.error_type(), "Rejected");

    let scheduled = serde_json::from_str(&sample_event("payroll-check.json")).unwrap();
    let report = ConsistencyCheck::new(Disbursement {
        payroll: f.payroll.clone(),
        provider: f.provider.clone(),
    })
    .handle(scheduled)
    .await
    .unwrap();
    assert_eq!(report["difference_count"], 0, "{report}");
}
