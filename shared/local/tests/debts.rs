//! Debt intake end to end on the embedded store, inside the runtime's `System` (real SQLite
//! tables, queues, bucket with notifications, the local Step Functions running
//! `statemachines/debt-batch.asl.json`), with the SQS functions driven by hand so each test
//! decides when a message is delivered, redelivered or lost with a crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use payops_app::debts::{
    self, Batch, BatchStatus, Debts, Picker, Register, Steps, SubBatchMessage,
};
use payops_app::handler::SqsHandler;
use payops_app::ports::{ManualClock, Queue, ReceiveOptions};
use payops_app::resources::Resources;
use payops_core::debts::generate::{self, GenerateOptions};
use payops_core::debts::{builtin, builtin_named};
use payops_local::runtime::{System, poller};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Upper bound on any wait in these tests.
const WAIT_MS: u64 = 20_000;
/// Small sub-batches, so a few dozen lines make several.
const SUB_BATCH_LINES: usize = 10;

fn now() -> DateTime<Utc> {
    "2026-11-22T15:00:00Z".parse().unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    system: Arc<System>,
    debts: Debts,
}

fn build(dir: tempfile::TempDir, clock: Arc<ManualClock>) -> Fixture {
    let (system, _workers) = System::build(dir.path(), clock.clone()).unwrap();
    let mut debts = Debts::from_resources(system.env.as_ref()).unwrap();
    debts.config.sub_batch_lines = SUB_BATCH_LINES;
    // The state machine's Task reaches this instance, with the small sub-batches.
    system
        .task_invoker
        .add_function("debts-steps", Arc::new(Steps::new(debts.clone())));
    Fixture {
        dir,
        clock,
        system: Arc::new(system),
        debts,
    }
}

fn fixture() -> Fixture {
    build(
        tempfile::tempdir().unwrap(),
        Arc::new(ManualClock::new(now())),
    )
}

async fn until<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(what: &str, mut f: F) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Fixture {
    fn queue(&self, logical_id: &str) -> Arc<payops_local::queue::LocalQueue> {
        self.system.env.local_queue(logical_id).unwrap()
    }

    /// Delivers up to `max` messages of a queue to `handler`, deleting those it did not
    /// report as failed (as the event source mapping does). Returns how many were delivered.
    async fn deliver(&self, logical_id: &str, handler: &dyn SqsHandler, max: usize) -> usize {
        let queue = self.queue(logical_id);
        let messages = queue
            .receive(ReceiveOptions {
                max_messages: max.clamp(1, 10),
                ..Default::default()
            })
            .await
            .unwrap();
        if messages.is_empty() {
            return 0;
        }
        let event = poller::sqs_event(queue.as_ref(), &messages).unwrap();
        let response = handler.handle(event).await.unwrap();
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert!(
            failed.is_empty(),
            "{logical_id}: messages failed: {failed:?}"
        );
        for m in &messages {
            queue.delete(&m.receipt_handle).await.unwrap();
        }
        messages.len()
    }

    async fn pick(&self) -> usize {
        let picker = Picker::new(self.debts.clone());
        self.deliver("DebtFilesQueue", &picker, 10).await
    }

    /// Registers sub-batches until the batch is final and its client notified.
    async fn run_to_end(&self, batch_id: &str) -> Batch {
        let register = Register::new(self.debts.clone());
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
        loop {
            self.deliver("DebtSubBatchesQueue", &register, 1).await;
            let b = self.debts.require_batch(batch_id).await.unwrap();
            if b.status.is_final() && b.notified {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for batch {batch_id}: {b:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn drop_file(&self, key: &str, body: Vec<u8>) -> String {
        let blobs = self.system.env.blobs().unwrap();
        blobs.put(key, Bytes::from(body), "text/csv").await.unwrap();
        let before = self.batch_ids().await;
        assert_eq!(self.pick().await, 1, "one S3 event for {key}");
        let after = self.batch_ids().await;
        after
            .into_iter()
            .find(|b| !before.contains(b))
            .unwrap_or_else(|| panic!("no new batch for {key}"))
    }

    async fn batch_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for client in ["acme", "varejo", "telecom", "financeira"] {
            let page = self.debts.batches_of(client, 100, None).await.unwrap();
            out.extend(page.batches.into_iter().map(|b| b.batch_id));
        }
        out
    }

    async fn rejections_csv(&self, batch: &Batch) -> String {
        let key = batch
            .rejections_key
            .as_deref()
            .expect("written on completion");
        let blob = self.debts.blobs.get(key).await.unwrap().unwrap();
        String::from_utf8(blob.body.to_vec()).unwrap()
    }

    async fn events(&self) -> Vec<(String, Value)> {
        let bus = self
            .system
            .env
            .store
            .events(payops_local::env::LOCAL_EVENT_BUS);
        let mut events: Vec<(String, Value)> = bus
            .list(Some(debts::EVENT_SOURCE), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.detail_type, e.detail))
            .collect();
        events.reverse();
        events
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        let response = debts::router(self.debts.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }
}

fn options(lines: u64, defect_every: u64, prefix: &str) -> GenerateOptions {
    GenerateOptions {
        lines,
        seed: 42,
        today: today(),
        defect_every,
        reference_prefix: prefix.into(),
    }
}

const HEADER: &str = "client_reference,debtor_name,cpf,amount,missed_date\n";

#[tokio::test]
async fn a_dropped_file_is_split_registered_and_completed_with_its_rejections() {
    let f = fixture();
    let format = builtin_named("default").unwrap();
    let opts = options(55, 7, "A");
    let file = generate::file(&opts, &format);
    let batch_id = f.drop_file("inbox/debts/acme/2026-11-22.csv", file).await;
    let batch = f.run_to_end(&batch_id).await;

    let defects: Vec<(u64, &str)> = generate::debts(&opts, &format)
        .enumerate()
        .filter_map(|(i, d)| d.defect.map(|x| (i as u64 + 2, x.field().as_str())))
        .collect();
    assert_eq!(batch.status, BatchStatus::CompletedWithErrors);
    assert_eq!(batch.client_id, "acme");
    assert_eq!((batch.received, batch.processed), (55, 55));
    assert_eq!(batch.rejected, defects.len() as u64);
    assert_eq!(batch.accepted, 55 - defects.len() as u64);
    assert_eq!((batch.sub_batches, batch.sub_batches_done), (6, 6));

    // The rejected-lines CSV lists each defect at its physical line (the header is line 1).
    let csv = f.rejections_csv(&batch).await;
    let got: Vec<(u64, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let mut parts = l.splitn(3, ',');
            (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = defects.iter().map(|(l, f)| (*l, f.to_string())).collect();
    assert_eq!(got, expected, "{csv}");

    // Every accepted debt is in the store under (client, reference).
    let debt = f
        .debts
        .table
        .get(&debts::layout::debt_key("acme", "A000000000"))
        .await
        .unwrap()
        .expect("the first line is registered");
    assert_eq!(debt.s("batch_id"), Some(batch_id.as_str()));
    assert_eq!(debt.s("currency"), Some("BRL"));

    // The client is told, once.
    let events = f.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, debts::EVENT_BATCH_COMPLETED);
    assert_eq!(events[0].1["status"], json!("COMPLETED_WITH_ERRORS"));
    assert_eq!(events[0].1["rejected"], json!(defects.len()));

    // Metrics per client and batch.
    let metrics = f.system.env.store.metrics();
    let since = now() - chrono::Duration::days(1);
    assert_eq!(
        metrics
            .sum(debts::METRIC_LINES_PROCESSED, since)
            .await
            .unwrap(),
        55.into()
    );
    assert_eq!(
        metrics
            .sum(debts::METRIC_LINES_REJECTED, since)
            .await
            .unwrap(),
        (defects.len() as i64).into()
    );

    // The HTTP views.
    let (status, body) = f
        .call(
            Request::get(format!("/debts/batches/{batch_id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let view: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(view["status"], json!("COMPLETED_WITH_ERRORS"));
    assert_eq!(view["sub_batches_detail"].as_array().unwrap().len(), 6);
    let (status, body) = f
        .call(
            Request::get(format!("/debts/batches/{batch_id}/rejections.csv"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8(body.to_vec()).unwrap(), csv);
    let (status, body) = f
        .call(
            Request::get("/debts/batches?client_id=acme")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["batches"][0]["batch_id"], json!(batch_id));
}

#[tokio::test]
async fn every_shipped_format_goes_through_the_pipeline() {
    let f = fixture();
    let clients = [
        ("default", "acme"),
        ("varejo-sp", "varejo"),
        ("telecom-fixed", "telecom"),
        ("financeira-tab", "financeira"),
    ];
    assert_eq!(builtin().len(), clients.len());
    for (format_name, client) in clients {
        f.debts
            .set_client_format(client, format_name)
            .await
            .unwrap();
        let format = builtin_named(format_name).unwrap();
        // Short prefixes: the fixed-width layout gives the reference 15 characters.
        let file = generate::file(&options(23, 0, &client[..1]), &format);
        let batch_id = f
            .drop_file(&format!("inbox/debts/{client}/extract.txt"), file)
            .await;
        let batch = f.run_to_end(&batch_id).await;
        assert_eq!(batch.format, format_name);
        assert_eq!(
            batch.status,
            BatchStatus::Completed,
            "{format_name}: {batch:?}"
        );
        assert_eq!(
            (batch.received, batch.accepted, batch.rejected),
            (23, 23, 0)
        );
    }
}

#[tokio::test]
async fn a_redelivered_sub_batch_or_s3_event_registers_nothing_twice() {
    let f = fixture();
    let format = builtin_named("default").unwrap();
    let file = generate::file(&options(30, 4, "R"), &format);
    let blobs = f.system.env.blobs().unwrap();
    blobs
        .put("inbox/debts/acme/r.csv", Bytes::from(file), "text/csv")
        .await
        .unwrap();
    // The S3 event is delivered twice (received, not deleted, then again after its timeout).
    let files = f.queue("DebtFilesQueue");
    let first = files.receive(ReceiveOptions::default()).await.unwrap();
    let event = poller::sqs_event(files.as_ref(), &first).unwrap();
    Picker::new(f.debts.clone()).handle(event).await.unwrap();
    f.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(f.pick().await, 1);
    let ids = f.batch_ids().await;
    assert_eq!(ids.len(), 1, "one batch for one drop: {ids:?}");
    let batch_id = ids[0].clone();

    // Each sub-batch message is handled, not acknowledged (a crash), and handled again.
    let subs = f.queue("DebtSubBatchesQueue");
    let register = Register::new(f.debts.clone());
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let got = subs.receive(ReceiveOptions::default()).await.unwrap();
        if !got.is_empty() {
            let event = poller::sqs_event(subs.as_ref(), &got).unwrap();
            register.handle(event).await.unwrap();
            for m in &got {
                seen.push(m.body.clone());
                if m.receive_count >= 2 {
                    subs.delete(&m.receipt_handle).await.unwrap();
                }
            }
        }
        f.clock.advance(chrono::Duration::minutes(15));
        let b = f.debts.require_batch(&batch_id).await.unwrap();
        if b.status.is_final() && b.notified && subs.total_messages().await.unwrap() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "timed out: {b:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let batch = f.debts.require_batch(&batch_id).await.unwrap();
    assert_eq!(batch.processed, 30);
    assert_eq!(batch.accepted + batch.rejected, 30);
    assert_eq!(batch.sub_batches_done, batch.sub_batches);

    // And once more, by hand, after completion: nothing changes.
    let message: SubBatchMessage = serde_json::from_str(&seen[0]).unwrap();
    let again = f.debts.register(&message).await.unwrap();
    assert!(!again.first_time);
    assert_eq!(
        f.debts.require_batch(&batch_id).await.unwrap().processed,
        30
    );
    assert_eq!(f.events().await.len(), 1);
}

#[tokio::test]
async fn a_crash_mid_batch_resumes_where_it_stopped() {
    let f = fixture();
    let format = builtin_named("default").unwrap();
    let file = generate::file(&options(45, 0, "C"), &format);
    let batch_id = f.drop_file("inbox/debts/acme/c.csv", file).await;
    let register = Register::new(f.debts.clone());
    until("the split", || async {
        f.debts.require_batch(&batch_id).await.unwrap().status == BatchStatus::Processing
            && f.queue("DebtSubBatchesQueue")
                .total_messages()
                .await
                .unwrap()
                == 5
    })
    .await;
    // Two of five sub-batches, then the process dies.
    assert_eq!(f.deliver("DebtSubBatchesQueue", &register, 1).await, 1);
    assert_eq!(f.deliver("DebtSubBatchesQueue", &register, 1).await, 1);
    let Fixture {
        dir, clock, system, ..
    } = f;
    system.executor.halt();
    drop(system);

    // A new process on the same data: the execution resumes, the queue still holds the rest.
    let f = build(dir, clock);
    f.system.executor.resume_running().await.unwrap();
    let batch = f.run_to_end(&batch_id).await;
    assert_eq!(batch.status, BatchStatus::Completed);
    assert_eq!((batch.processed, batch.accepted), (45, 45));
    assert_eq!(batch.sub_batches_done, 5);
}

async fn failed_with(f: &Fixture, key: &str, body: Vec<u8>) -> Batch {
    let batch_id = f.drop_file(key, body).await;
    let batch = f.run_to_end(&batch_id).await;
    assert_eq!(batch.status, BatchStatus::Failed, "{batch:?}");
    batch
}

#[tokio::test]
async fn files_that_cannot_be_processed_fail_the_batch_with_a_reason() {
    let f = fixture();
    let empty = failed_with(&f, "inbox/debts/acme/empty.csv", Vec::new()).await;
    assert_eq!(
        empty.failure.as_deref(),
        Some("the file is empty (0 bytes)")
    );

    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    zip.extend((0..200u8).collect::<Vec<u8>>());
    let binary = failed_with(&f, "inbox/debts/acme/debts.zip", zip).await;
    assert_eq!(
        binary.failure.as_deref(),
        Some("the file is binary, not text (a NUL byte at byte 5)")
    );

    let wrong = failed_with(
        &f,
        "inbox/debts/acme/wrong.csv",
        b"contrato;nome;cpf;valor;vencimento\nX;Ana;52998224725;1,00;01/01/2026\n".to_vec(),
    )
    .await;
    assert!(
        wrong
            .failure
            .as_deref()
            .unwrap()
            .starts_with("wrong header: header has no column \"client_reference\""),
        "{wrong:?}"
    );

    let header_only = failed_with(&f, "inbox/debts/acme/h.csv", HEADER.as_bytes().to_vec()).await;
    assert_eq!(
        header_only.failure.as_deref(),
        Some("the file has no debt lines")
    );

    let events = f.events().await;
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|(t, d)| t == debts::EVENT_BATCH_FAILED
        && d["status"] == json!("FAILED")
        && d["failure"].is_string()));
}

#[tokio::test]
async fn the_same_file_twice_is_refused_as_a_duplicate() {
    let f = fixture();
    let file = generate::file(&options(12, 0, "D"), &builtin_named("default").unwrap());
    let first = f.drop_file("inbox/debts/acme/d.csv", file.clone()).await;
    assert_eq!(f.run_to_end(&first).await.status, BatchStatus::Completed);
    let second = f.drop_file("inbox/debts/acme/d-again.csv", file).await;
    let batch = f.run_to_end(&second).await;
    assert_eq!(batch.status, BatchStatus::Failed);
    assert!(
        batch
            .failure
            .as_deref()
            .unwrap()
            .contains(&format!("batch {first} had the same content")),
        "{batch:?}"
    );
}

#[tokio::test]
async fn a_reference_registered_by_an_earlier_batch_is_rejected() {
    let f = fixture();
    let one = format!("{HEADER}K1,Ana Lima,529.982.247-25,10.00,2026-01-01\n");
    let two = format!(
        "{HEADER}K1,Ana Lima,529.982.247-25,10.00,2026-01-02\nK2,Rui Dias,52998224725,5.50,2026-01-02\n"
    );
    let b1 = f
        .drop_file("inbox/debts/acme/1.csv", one.into_bytes())
        .await;
    assert_eq!(f.run_to_end(&b1).await.accepted, 1);
    let b2 = f
        .drop_file("inbox/debts/acme/2.csv", two.into_bytes())
        .await;
    let batch = f.run_to_end(&b2).await;
    assert_eq!((batch.accepted, batch.rejected), (1, 1));
    let csv = f.rejections_csv(&batch).await;
    assert_eq!(
        csv,
        format!(
            "line,field,reason\n2,client_reference,\"is already registered for this client (batch {b1}, line 2)\"\n"
        )
    );
}

#[tokio::test]
async fn rest_submissions_and_uploads_become_batches() {
    let f = fixture();
    let post = |uri: &str, body: Value| {
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, body) = f
        .call(post("/debts/submissions", json!({"client_id": "acme"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = serde_json::from_slice::<Value>(&body).unwrap()["submission_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lines = json!([
        {"client_reference": "S1", "debtor_name": "Ana", "cpf": "529.982.247-25", "amount": "10.00", "missed_date": "2026-01-01"},
        {"client_reference": "S2", "debtor_name": "Rui", "cpf": "52998224725", "amount": 12.5, "missed_date": "2026-01-01"}
    ]);
    let (status, _) = f
        .call(post(&format!("/debts/submissions/{id}/lines"), lines))
        .await;
    assert_eq!(status, StatusCode::OK);
    let bad = json!([{"client_reference": "S3", "debtor_name": "", "cpf": "123", "amount": "-1", "missed_date": "2027-01-01"}]);
    let (status, body) = f
        .call(post(&format!("/debts/submissions/{id}/lines"), bad))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["lines"],
        json!(3)
    );
    let (status, body) = f
        .call(post(&format!("/debts/submissions/{id}/submit"), json!({})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body:?}");
    let batch_id = serde_json::from_slice::<Value>(&body).unwrap()["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = f.run_to_end(&batch_id).await;
    assert_eq!((batch.accepted, batch.rejected), (2, 1));
    let csv = f.rejections_csv(&batch).await;
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("4,")).count(),
        4,
        "{csv}"
    );

    // A CSV upload, streamed to S3.
    let file = generate::file(&options(25, 0, "U"), &builtin_named("default").unwrap());
    let (status, body) = f
        .call(
            Request::post("/debts/files?client_id=acme")
                .header("content-type", "text/csv")
                .body(Body::from(file))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body:?}");
    let batch_id = serde_json::from_slice::<Value>(&body).unwrap()["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = f.run_to_end(&batch_id).await;
    assert_eq!((batch.received, batch.accepted), (25, 25));

    // Bad requests name the field.
    let (status, body) = f
        .call(post("/debts/submissions", json!({"client_id": "a b"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["field"],
        json!("client_id")
    );
    let (status, _) = f
        .call(
            Request::get("/debts/batches/nope")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `POST /debts/submissions/{id}/lines` with `Idempotency-Key`: `(status, replayed, body)`.
async fn add_keyed(f: &Fixture, id: &str, key: &str, lines: &Value) -> (StatusCode, bool, Value) {
    let request = Request::post(format!("/debts/submissions/{id}/lines"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(lines.to_string()))
        .unwrap();
    let response = debts::router(f.debts.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, replayed, serde_json::from_slice(&body).unwrap())
}

fn submission_lines(prefix: &str, count: usize) -> Value {
    Value::Array(
        (0..count)
            .map(|i| {
                json!({"client_reference": format!("{prefix}{i}"), "debtor_name": "Ana",
                       "cpf": "529.982.247-25", "amount": "10.00", "missed_date": "2026-01-01"})
            })
            .collect(),
    )
}

async fn open_submission(f: &Fixture, client: &str) -> String {
    let (status, body) = f
        .call(
            Request::post("/debts/submissions")
                .header("content-type", "application/json")
                .body(Body::from(json!({ "client_id": client }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    serde_json::from_slice::<Value>(&body).unwrap()["submission_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_replayed_idempotency_key_stages_nothing_and_returns_the_first_answer() {
    let f = fixture();
    let id = open_submission(&f, "acme").await;
    // More lines than one transaction holds, so the staging spills past the keyed write.
    let first = submission_lines("K", 150);
    let (status, replayed, answer) = add_keyed(&f, &id, "retry-1", &first).await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{answer}");
    assert_eq!(answer["lines"], json!(150));

    let (status, replayed, again) = add_keyed(&f, &id, "retry-1", &first).await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again, answer, "a replay answers the first answer");

    // Another key stages more; replaying the first key still answers its own first answer.
    let (status, _, more) = add_keyed(&f, &id, "retry-2", &submission_lines("M", 3)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(more["lines"], json!(153));
    let (_, replayed, again) = add_keyed(&f, &id, "retry-1", &first).await;
    assert!(replayed);
    assert_eq!(again["lines"], json!(150));

    // The same key with another body, or on another submission, is refused naming the header.
    let (status, _, error) = add_keyed(&f, &id, "retry-1", &submission_lines("X", 150)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["field"], json!("Idempotency-Key"));
    let other = open_submission(&f, "acme").await;
    let (status, _, error) = add_keyed(&f, &other, "retry-1", &first).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["field"], json!("Idempotency-Key"));
    let (status, _, error) = add_keyed(&f, &id, "bad key", &first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["field"], json!("Idempotency-Key"));

    // Every line is registered once: no duplicate rejections from the replays.
    let (status, body) = f
        .call(
            Request::post(format!("/debts/submissions/{id}/submit"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body:?}");
    let batch_id = serde_json::from_slice::<Value>(&body).unwrap()["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = f.run_to_end(&batch_id).await;
    assert_eq!(
        (batch.received, batch.accepted, batch.rejected),
        (153, 153, 0)
    );
}

#[tokio::test]
async fn a_replay_finishes_a_staging_that_stopped_half_way() {
    let f = fixture();
    let id = open_submission(&f, "acme").await;
    let lines = submission_lines("H", 120);
    let (status, _, answer) = add_keyed(&f, &id, "crash-1", &lines).await;
    assert_eq!(status, StatusCode::OK);
    // As if the process died after the first transaction: the last lines and the "staged"
    // mark are missing.
    let table = &f.debts.table;
    for n in 100..=120u64 {
        table
            .delete(&debts::layout::staged_line_key(&id, n), None)
            .await
            .unwrap();
    }
    table
        .update(
            &debts::layout::idempotency_key("crash-1"),
            vec![payops_app::ports::UpdateAction::Remove("staged".into())],
            None,
        )
        .await
        .unwrap();
    let (status, replayed, again) = add_keyed(&f, &id, "crash-1", &lines).await;
    assert_eq!((status, replayed), (StatusCode::OK, true));
    assert_eq!(again, answer);
    let (_, body) = f
        .call(
            Request::post(format!("/debts/submissions/{id}/submit"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let batch_id = serde_json::from_slice::<Value>(&body).unwrap()["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = f.run_to_end(&batch_id).await;
    assert_eq!((batch.received, batch.accepted), (120, 120));
}
