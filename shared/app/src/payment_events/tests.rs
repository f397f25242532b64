//! Router tests on minimal in-memory ports (no socket). The processor and the report are
//! tested on the real SQLite adapters in `shared/local/tests/payment_events.rs`.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use payops_core::Secret;
use payops_core::payment_event::{self, WEBHOOK_BODY_BYTES_MAX};
use payops_core::webhook_signature;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::ports::{
    Blob, BlobError, BlobMeta, BlobPage, Item, Key, ManualClock, MetricRecord, MetricsError,
    OutgoingMessage, Page, QueueError, ReceiveOptions, ReceivedMessage, TableSpec, UpdateAction,
    Write,
};
use crate::ports::{Condition, Query};

const SECRET: &str = "whsec_test_router";
/// 2025-01-31T12:00:00Z
const NOW_UNIX: i64 = 1_738_324_800;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW_UNIX, 0).unwrap()
}

#[derive(Default)]
struct FakeQueue {
    sent: Mutex<Vec<OutgoingMessage>>,
    down: bool,
}

#[async_trait]
impl Queue for FakeQueue {
    fn name(&self) -> &str {
        "fake"
    }
    fn arn(&self) -> &str {
        "arn:aws:sqs:us-east-1:000000000000:fake"
    }
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        if self.down {
            return Err(QueueError::Unavailable("queue is down".into()));
        }
        let mut sent = self.sent.lock().unwrap();
        let ids = (0..messages.len())
            .map(|i| format!("m{}", sent.len() + i))
            .collect();
        sent.extend(messages);
        Ok(ids)
    }
    async fn receive(&self, _: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError> {
        Err(QueueError::Invalid("not in this fake".into()))
    }
    async fn delete(&self, _: &str) -> Result<(), QueueError> {
        Err(QueueError::Invalid("not in this fake".into()))
    }
    async fn change_visibility(&self, _: &str, _: u32) -> Result<(), QueueError> {
        Err(QueueError::Invalid("not in this fake".into()))
    }
    async fn approximate_depth(&self) -> Result<u64, QueueError> {
        Ok(0)
    }
}

/// A table that only answers queries on the base table, from a fixed list of items.
struct FakeTable {
    spec: TableSpec,
    items: Vec<Item>,
    down: bool,
}

#[async_trait]
impl Table for FakeTable {
    fn spec(&self) -> &TableSpec {
        &self.spec
    }
    async fn get(&self, _: &Key) -> Result<Option<Item>, TableError> {
        Err(TableError::Invalid("not in this fake".into()))
    }
    async fn put(&self, _: Item, _: Option<Condition>) -> Result<(), TableError> {
        Err(TableError::Invalid("not in this fake".into()))
    }
    async fn update(
        &self,
        _: &Key,
        _: Vec<UpdateAction>,
        _: Option<Condition>,
    ) -> Result<Item, TableError> {
        Err(TableError::Invalid("not in this fake".into()))
    }
    async fn delete(&self, _: &Key, _: Option<Condition>) -> Result<Option<Item>, TableError> {
        Err(TableError::Invalid("not in this fake".into()))
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        if self.down {
            return Err(TableError::Unavailable("table is down".into()));
        }
        assert_eq!(query.index, None, "the day totals read the base table");
        let mut items: Vec<Item> = self
            .items
            .iter()
            .filter(|i| i.s("pk") == Some(query.partition.as_str()))
            .cloned()
            .collect();
        items.sort_by(|a, b| a.s("sk").cmp(&b.s("sk")));
        Ok(Page {
            items,
            cursor: None,
        })
    }
    async fn transact(&self, _: Vec<Write>) -> Result<(), TableError> {
        Err(TableError::Invalid("not in this fake".into()))
    }
    async fn batch_get(&self, _: &[Key]) -> Result<Vec<Item>, TableError> {
        Err(TableError::Invalid("not in this fake".into()))
    }
}

struct NoBlobs;

#[async_trait]
impl Blobs for NoBlobs {
    fn bucket(&self) -> &str {
        "none"
    }
    async fn put(&self, _: &str, _: Bytes, _: &str) -> Result<BlobMeta, BlobError> {
        Err(BlobError::Invalid("not in this fake".into()))
    }
    async fn get(&self, _: &str) -> Result<Option<Blob>, BlobError> {
        Err(BlobError::Invalid("not in this fake".into()))
    }
    async fn head(&self, _: &str) -> Result<Option<BlobMeta>, BlobError> {
        Err(BlobError::Invalid("not in this fake".into()))
    }
    async fn list(&self, _: &str, _: Option<String>) -> Result<BlobPage, BlobError> {
        Err(BlobError::Invalid("not in this fake".into()))
    }
    async fn delete(&self, _: &str) -> Result<(), BlobError> {
        Err(BlobError::Invalid("not in this fake".into()))
    }
}

struct NoMetrics;

#[async_trait]
impl Metrics for NoMetrics {
    async fn write(&self, _: Vec<MetricRecord>) -> Result<(), MetricsError> {
        Err(MetricsError::Invalid("not in this fake".into()))
    }
}

struct Fixture {
    state: PaymentEvents,
    queue: Arc<FakeQueue>,
    clock: Arc<ManualClock>,
}

fn fixture_with(queue: FakeQueue, table: FakeTable) -> Fixture {
    let queue = Arc::new(queue);
    let clock = Arc::new(ManualClock::new(now()));
    let state = PaymentEvents {
        table: Arc::new(table),
        queue: queue.clone(),
        blobs: Arc::new(NoBlobs),
        metrics: Arc::new(NoMetrics),
        clock: clock.clone(),
    };
    Fixture {
        state,
        queue,
        clock,
    }
}

fn empty_table() -> FakeTable {
    FakeTable {
        spec: TableSpec::new("t").with_index("gsi1"),
        items: Vec::new(),
        down: false,
    }
}

fn fixture() -> Fixture {
    fixture_with(FakeQueue::default(), empty_table())
}

fn valid_body() -> String {
    json!({
        "event_id": "evt_1", "loan_id": "loan_1", "borrower_id": "98765432100",
        "employer_id": "emp_1", "amount": 1234.5, "currency": "BRL", "status": "paid",
        "paid_at": "2025-01-31T11:59:00-00:00",
    })
    .to_string()
}

fn signed(body: &str, secret: &str, t: i64) -> Request<Body> {
    Request::post(WEBHOOK_PATH)
        .header("content-type", "application/json")
        .header(
            "payops-signature",
            webhook_signature::sign(secret.as_bytes(), t, body.as_bytes()),
        )
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn call(state: &PaymentEvents, request: Request<Body>) -> (StatusCode, Value) {
    let secret = Secret::new(SECRET.to_owned());
    let response = router(state.clone(), secret)
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

#[tokio::test]
async fn a_signed_valid_event_is_queued_in_canonical_form() {
    let f = fixture();
    let body = valid_body();
    let (status, answer) = call(&f.state, signed(&body, SECRET, NOW_UNIX - 10)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer, json!({"event_id": "evt_1", "status": "accepted"}));
    let sent = f.queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let expected = payment_event::parse_webhook_body(body.as_bytes()).unwrap();
    assert_eq!(sent[0].body, expected.to_canonical_json());
    assert!(
        sent[0].body.contains(r#""amount":"1234.50""#),
        "{}",
        sent[0].body
    );
    assert!(
        sent[0]
            .body
            .contains(r#""paid_at":"2025-01-31T11:59:00.000000000Z""#)
    );
}

#[tokio::test]
async fn the_signature_covers_the_raw_bytes() {
    let f = fixture();
    // Whitespace and key order that a re-serialisation would change: still verifies.
    let body = "{ \"status\":\"paid\",\n \"event_id\":\"evt_raw\", \"loan_id\":\"l\", \"borrower_id\":\"b\",\
                \"employer_id\":\"e\", \"amount\":\"1.00\", \"currency\":\"USD\", \"paid_at\":\"2025-01-31T00:00:00Z\" }";
    let (status, _) = call(&f.state, signed(body, SECRET, NOW_UNIX)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn bad_or_missing_signatures_are_401_and_nothing_is_queued() {
    let f = fixture();
    let body = valid_body();
    let missing = Request::post(WEBHOOK_PATH)
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, answer) = call(&f.state, missing).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "unauthorized");
    assert_eq!(answer["message"], "signature header is missing");

    let (status, answer) = call(&f.state, signed(&body, "wrong-secret", NOW_UNIX)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["message"], "no signature matches the body");

    let mut tampered = signed(&body, SECRET, NOW_UNIX);
    *tampered.body_mut() = Body::from(body.replace("1234.5", "9234.5"));
    assert_eq!(call(&f.state, tampered).await.0, StatusCode::UNAUTHORIZED);

    let malformed = Request::post(WEBHOOK_PATH)
        .header("payops-signature", "v1=abc")
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, answer) = call(&f.state, malformed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["message"].as_str().unwrap().contains("malformed"));

    assert!(f.queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_tolerance_window_follows_the_clock() {
    let f = fixture();
    let body = valid_body();
    let request = || signed(&body, SECRET, NOW_UNIX);
    f.clock.advance(Duration::seconds(300));
    assert_eq!(call(&f.state, request()).await.0, StatusCode::ACCEPTED);
    f.clock.advance(Duration::seconds(1));
    let (status, answer) = call(&f.state, request()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["message"].as_str().unwrap().contains("300"),
        "{answer}"
    );
    assert_eq!(f.queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_invalid_event_is_400_naming_the_field() {
    let f = fixture();
    let cases = [
        (valid_body().replace("1234.5", "1234.567"), "amount"),
        (valid_body().replace("\"paid\"", "\"settled\""), "status"),
        (valid_body().replace("\"BRL\"", "\"R$\""), "currency"),
        (
            valid_body().replace("2025-01-31T11:59:00-00:00", "yesterday"),
            "paid_at",
        ),
        (valid_body().replace("\"evt_1\"", "\"\""), "event_id"),
        ("not json".to_owned(), "body"),
        ("[]".to_owned(), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = call(&f.state, signed(&body, SECRET, NOW_UNIX)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], "invalid_request");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().starts_with(field),
            "{answer}"
        );
    }
    assert!(f.queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let f = fixture();
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(WEBHOOK_BODY_BYTES_MAX));
    let (status, answer) = call(&f.state, signed(&body, SECRET, NOW_UNIX)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["field"], "body");
}

#[tokio::test]
async fn a_queue_outage_is_503_so_the_provider_retries() {
    let f = fixture_with(
        FakeQueue {
            down: true,
            ..Default::default()
        },
        empty_table(),
    );
    let (status, answer) = call(&f.state, signed(&valid_body(), SECRET, NOW_UNIX)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"], "unavailable");
}

#[tokio::test]
async fn the_sample_lambda_event_verifies_and_is_accepted() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/payment-webhook.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let request = lambda_http::request::from_str(&text).unwrap();
    let f = fixture();
    // The sample is signed with the dev secret at t=1735723000 (2025-01-01T09:16:40Z).
    f.clock.set(Utc.timestamp_opt(1_735_723_000, 0).unwrap());
    let secret = Secret::new("whsec_dev_payops".to_owned());
    let response = router(f.state.clone(), secret)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(f.queue.sent.lock().unwrap().len(), 1);
}

fn total(day: &str, currency: &str, status: &str, count: i64, amount: &str) -> Item {
    Item::new(&Key::new(
        format!("DAY#{day}"),
        format!("TOTAL#{currency}#{status}"),
    ))
    .with("count", count)
    .with("amount_total", Decimal::from_str_exact(amount).unwrap())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn day_totals_come_from_the_aggregates() {
    let table = FakeTable {
        items: vec![
            total("2025-01-31", "USD", "paid", 2, "10.5"),
            total("2025-01-31", "BRL", "reversed", 1, "3.3"),
            total("2025-01-31", "BRL", "paid", 3, "0.30"),
            Item::new(&Key::new("DAY#2025-01-31", "DUPLICATES")).with("count", 4),
            total("2025-01-30", "BRL", "paid", 9, "9"),
        ],
        ..empty_table()
    };
    let f = fixture_with(FakeQueue::default(), table);
    let (status, answer) = call(&f.state, get("/payment-events?date=2025-01-31")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({
            "date": "2025-01-31", "count": 6, "duplicates_ignored": 4,
            "totals": [
                {"currency": "BRL", "status": "paid", "count": 3, "amount_total": "0.30"},
                {"currency": "BRL", "status": "reversed", "count": 1, "amount_total": "3.30"},
                {"currency": "USD", "status": "paid", "count": 2, "amount_total": "10.50"},
            ]
        })
    );
    let (status, answer) = call(&f.state, get("/payment-events?date=2025-02-01")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"date": "2025-02-01", "count": 0, "duplicates_ignored": 0, "totals": []})
    );
}

#[tokio::test]
async fn day_totals_need_a_valid_date() {
    let f = fixture();
    for uri in [
        "/payment-events",
        "/payment-events?date=",
        "/payment-events?date=31-01-2025",
        "/payment-events?date=2025-02-30",
        "/payment-events?date=%FF",
    ] {
        let (status, answer) = call(&f.state, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(answer["field"], "date", "{uri}");
    }
}

#[tokio::test]
async fn day_totals_are_503_when_the_table_is_down() {
    let f = fixture_with(
        FakeQueue::default(),
        FakeTable {
            down: true,
            ..empty_table()
        },
    );
    let (status, _) = call(&f.state, get("/payment-events?date=2025-01-31")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
