//! The payment events flow on the real local adapters (SQLite table and queue, directory
//! blobs), in process: webhook → queue → processor → table → GET totals and daily report.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use payops_app::handler::{EventHandler, SqsHandler};
use payops_app::payment_events::{
    self, DailyReport, METRIC_DUPLICATES_IGNORED, METRIC_EVENTS_STORED, PaymentEvents, Processor,
    layout,
};
use payops_app::ports::{
    Blobs, Clock, ManualClock, MetricRecord, Metrics, MetricsError, Query, Queue, ReceiveOptions,
    Table, TableError, Write,
};
use payops_app::resources::PAYMENT_EVENTS_TABLE;
use payops_core::Secret;
use payops_core::payment_event::{self, PaymentEvent};
use payops_core::webhook_signature;
use payops_local::store::{LocalStore, QueueConfig};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "support/hooked_table.rs"]
mod hooked_table;
use hooked_table::{HookedTable, TableHook};

const SECRET: &str = "whsec_local_test";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 31, 12, 0, 0).unwrap()
}

/// Records every batch of metrics, then forwards it to the real adapter (or fails, to test
/// that a metrics outage does not fail a batch).
struct RecordingMetrics {
    inner: Arc<dyn Metrics>,
    batches: Mutex<Vec<Vec<MetricRecord>>>,
    down: bool,
}

#[async_trait]
impl Metrics for RecordingMetrics {
    async fn write(&self, records: Vec<MetricRecord>) -> Result<(), MetricsError> {
        self.batches.lock().unwrap().push(records.clone());
        if self.down {
            return Err(MetricsError::Unavailable("metrics are down".into()));
        }
        self.inner.write(records).await
    }
}

/// Fails the transactions storing one chosen event, as a busy store would.
struct FailingEvent {
    event_id: Mutex<Option<String>>,
}

#[async_trait]
impl TableHook for FailingEvent {
    async fn transact(&self, inner: &dyn Table, writes: Vec<Write>) -> Result<(), TableError> {
        let failing = self.event_id.lock().unwrap().clone();
        let touches_failing = writes.iter().any(|w| match (w, &failing) {
            (Write::Put { item, .. }, Some(id)) => item.s("event_id") == Some(id.as_str()),
            _ => false,
        });
        if touches_failing {
            return Err(TableError::Unavailable("database is busy".into()));
        }
        inner.transact(writes).await
    }
}

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    state: PaymentEvents,
    table: Arc<HookedTable<FailingEvent>>,
    queue: Arc<dyn Queue>,
    metrics: Arc<RecordingMetrics>,
}

fn env_with(metrics_down: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let store = LocalStore::open(dir.path(), clock.clone() as Arc<dyn Clock>).unwrap();
    let table = Arc::new(HookedTable {
        inner: store
            .table(PAYMENT_EVENTS_TABLE.spec("payment-events"))
            .unwrap(),
        hook: FailingEvent {
            event_id: Mutex::new(None),
        },
    });
    let queue: Arc<dyn Queue> = store
        .queue(QueueConfig {
            name: "payment-events".to_owned(),
            fifo: false,
            visibility_timeout_seconds: 30,
            dead_letter: None,
        })
        .unwrap();
    let blobs: Arc<dyn Blobs> = store.blobs("data");
    let metrics = Arc::new(RecordingMetrics {
        inner: store.metrics(),
        batches: Mutex::new(Vec::new()),
        down: metrics_down,
    });
    let state = PaymentEvents {
        table: table.clone(),
        queue: queue.clone(),
        blobs,
        metrics: metrics.clone(),
        clock: clock.clone(),
    };
    Env {
        _dir: dir,
        clock,
        state,
        table,
        queue,
        metrics,
    }
}

fn env() -> Env {
    env_with(false)
}

fn body(
    event_id: &str,
    employer: &str,
    amount: &str,
    currency: &str,
    status: &str,
    paid_at: &str,
) -> String {
    json!({
        "event_id": event_id, "loan_id": format!("loan_{event_id}"), "borrower_id": "98765432100",
        "employer_id": employer, "amount": amount, "currency": currency, "status": status,
        "paid_at": paid_at,
    })
    .to_string()
}

fn canonical(raw: &str) -> String {
    payment_event::parse_webhook_body(raw.as_bytes())
        .unwrap()
        .to_canonical_json()
}

fn message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.receipt_handle = Some(format!("rh-{id}"));
    m.body = Some(body.to_owned());
    m
}

fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

async fn failures(env: &Env, messages: Vec<SqsMessage>) -> Vec<String> {
    let response = Processor::new(env.state.clone())
        .handle(batch(messages))
        .await
        .unwrap();
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

async fn call(env: &Env, request: Request<Body>) -> (StatusCode, Value) {
    let secret = Secret::new(SECRET.to_owned());
    let response = payment_events::router(env.state.clone(), secret)
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn day_totals(env: &Env, date: &str) -> Value {
    let request = Request::get(format!("/payment-events?date={date}"))
        .body(Body::empty())
        .unwrap();
    let (status, answer) = call(env, request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn stored_events(env: &Env, date: &str) -> Vec<PaymentEvent> {
    let query = Query::partition(format!("DAY#{date}")).on_index(layout::GSI1);
    let page = env.table.query(query).await.unwrap();
    page.items
        .iter()
        .map(|i| layout::event_from_item(i).unwrap())
        .collect()
}

fn metric(batch: &[MetricRecord], name: &str) -> Decimal {
    batch
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.value)
        .unwrap()
}

#[tokio::test]
async fn webhook_to_queue_to_table_to_totals() {
    let env = env();
    let raw = body(
        "evt_1",
        "emp_1",
        "100.10",
        "BRL",
        "paid",
        "2025-01-31T11:00:00Z",
    );
    let t = env.clock.now().timestamp();
    let request = Request::post("/webhooks/payment-events")
        .header(
            "Payops-Signature",
            webhook_signature::sign(SECRET.as_bytes(), t, raw.as_bytes()),
        )
        .body(Body::from(raw.clone()))
        .unwrap();
    let (status, answer) = call(&env, request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer, json!({"event_id": "evt_1", "status": "accepted"}));

    // Nothing is stored until the processor runs: the webhook only enqueues.
    assert_eq!(day_totals(&env, "2025-01-31").await["count"], 0);

    let received = env.queue.receive(ReceiveOptions::default()).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, canonical(&raw));
    let messages = received
        .iter()
        .map(|m| message(&m.message_id, &m.body))
        .collect();
    assert!(failures(&env, messages).await.is_empty());

    assert_eq!(
        day_totals(&env, "2025-01-31").await,
        json!({
            "date": "2025-01-31", "count": 1, "duplicates_ignored": 0,
            "totals": [{"currency": "BRL", "status": "paid", "count": 1, "amount_total": "100.10"}]
        })
    );
    let stored = stored_events(&env, "2025-01-31").await;
    assert_eq!(
        stored,
        vec![payment_event::parse_webhook_body(raw.as_bytes()).unwrap()]
    );
}

#[tokio::test]
async fn a_duplicate_within_a_batch_is_stored_once_and_counted() {
    let env = env();
    let a = canonical(&body(
        "evt_a",
        "emp_1",
        "10.00",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    ));
    let b = canonical(&body(
        "evt_b",
        "emp_1",
        "5.55",
        "BRL",
        "paid",
        "2025-01-31T10:01:00Z",
    ));
    let failed = failures(
        &env,
        vec![message("m1", &a), message("m2", &b), message("m3", &a)],
    )
    .await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        day_totals(&env, "2025-01-31").await,
        json!({
            "date": "2025-01-31", "count": 2, "duplicates_ignored": 1,
            "totals": [{"currency": "BRL", "status": "paid", "count": 2, "amount_total": "15.55"}]
        })
    );
    assert_eq!(stored_events(&env, "2025-01-31").await.len(), 2);
    let batches = env.metrics.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "one metrics write per batch");
    assert_eq!(metric(&batches[0], METRIC_EVENTS_STORED), Decimal::from(2));
    assert_eq!(
        metric(&batches[0], METRIC_DUPLICATES_IGNORED),
        Decimal::from(1)
    );
}

#[tokio::test]
async fn the_same_message_delivered_twice_is_stored_once() {
    let env = env();
    let a = canonical(&body(
        "evt_a",
        "emp_1",
        "0.10",
        "USD",
        "failed",
        "2025-01-31T10:00:00Z",
    ));
    assert!(failures(&env, vec![message("m1", &a)]).await.is_empty());
    env.clock.advance(Duration::seconds(45));
    assert!(failures(&env, vec![message("m1", &a)]).await.is_empty());
    let totals = day_totals(&env, "2025-01-31").await;
    assert_eq!(totals["count"], 1);
    assert_eq!(totals["duplicates_ignored"], 1);
    assert_eq!(totals["totals"][0]["amount_total"], "0.10");
    let batches = env.metrics.batches.lock().unwrap().clone();
    assert_eq!(metric(&batches[1], METRIC_EVENTS_STORED), Decimal::ZERO);
    assert_eq!(metric(&batches[1], METRIC_DUPLICATES_IGNORED), Decimal::ONE);
}

#[tokio::test]
async fn a_malformed_message_fails_alone() {
    let env = env();
    let good1 = canonical(&body(
        "evt_1",
        "emp_1",
        "1.00",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    ));
    let good2 = canonical(&body(
        "evt_2",
        "emp_1",
        "2.00",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    ));
    let bad_amount = body(
        "evt_3",
        "emp_1",
        "1.001",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    );
    let mut no_body = message("m5", "");
    no_body.body = None;
    let failed = failures(
        &env,
        vec![
            message("m1", &good1),
            message("m2", "{not json"),
            message("m3", &bad_amount),
            message("m4", &good2),
            no_body,
        ],
    )
    .await;
    assert_eq!(failed, vec!["m2", "m3", "m5"]);
    let totals = day_totals(&env, "2025-01-31").await;
    assert_eq!(totals["count"], 2);
    assert_eq!(totals["totals"][0]["amount_total"], "3.00");
}

#[tokio::test]
async fn a_busy_table_fails_only_that_message_and_the_retry_stores_it_once() {
    let env = env();
    let a = canonical(&body(
        "evt_a",
        "emp_1",
        "1.00",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    ));
    let b = canonical(&body(
        "evt_b",
        "emp_1",
        "2.00",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    ));
    *env.table.hook.event_id.lock().unwrap() = Some("evt_b".to_owned());
    let failed = failures(&env, vec![message("m1", &a), message("m2", &b)]).await;
    assert_eq!(failed, vec!["m2"]);
    assert_eq!(day_totals(&env, "2025-01-31").await["count"], 1);

    // SQS redelivers only m2 (and, as at-least-once allows, m1 again).
    *env.table.hook.event_id.lock().unwrap() = None;
    let failed = failures(&env, vec![message("m2", &b), message("m1", &a)]).await;
    assert!(failed.is_empty());
    let totals = day_totals(&env, "2025-01-31").await;
    assert_eq!(totals["count"], 2);
    assert_eq!(totals["duplicates_ignored"], 1);
    assert_eq!(totals["totals"][0]["amount_total"], "3.00");
}

#[tokio::test]
async fn a_metrics_outage_does_not_fail_the_batch() {
    let env = env_with(true);
    let a = canonical(&body(
        "evt_a",
        "emp_1",
        "1.00",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    ));
    assert!(failures(&env, vec![message("m1", &a)]).await.is_empty());
    assert_eq!(env.metrics.batches.lock().unwrap().len(), 1);
    assert_eq!(day_totals(&env, "2025-01-31").await["count"], 1);
}

#[tokio::test]
async fn aggregates_are_exact_with_decimals() {
    let env = env();
    // 0.10 + 0.20 + … in binary floating point drifts; the totals must not.
    let mut expected_brl = Decimal::ZERO;
    let mut messages = Vec::new();
    for i in 0..30u32 {
        let cents = 10 + i64::from(i) * 7;
        let amount = Decimal::new(cents, 2);
        expected_brl += amount;
        let raw = body(
            &format!("evt_{i}"),
            "emp_1",
            &amount.to_string(),
            "BRL",
            "paid",
            "2025-01-31T10:00:00Z",
        );
        messages.push(message(&format!("m{i}"), &canonical(&raw)));
    }
    for chunk in messages.chunks(10) {
        assert!(failures(&env, chunk.to_vec()).await.is_empty());
    }
    let kwd = canonical(&body(
        "evt_kwd",
        "emp_2",
        "1.125",
        "KWD",
        "reversed",
        "2025-01-31T10:00:00Z",
    ));
    let jpy = canonical(&body(
        "evt_jpy",
        "emp_2",
        "1500",
        "JPY",
        "paid",
        "2025-01-31T10:00:00Z",
    ));
    assert!(
        failures(&env, vec![message("k", &kwd), message("j", &jpy)])
            .await
            .is_empty()
    );
    let totals = day_totals(&env, "2025-01-31").await;
    assert_eq!(totals["count"], 32);
    assert_eq!(
        totals["totals"],
        json!([
            {"currency": "BRL", "status": "paid", "count": 30, "amount_total": expected_brl.to_string()},
            {"currency": "JPY", "status": "paid", "count": 1, "amount_total": "1500"},
            {"currency": "KWD", "status": "reversed", "count": 1, "amount_total": "1.125"},
        ])
    );
    assert_eq!(expected_brl.to_string(), "33.45");
}

#[tokio::test]
async fn events_are_counted_on_their_utc_day() {
    let env = env();
    // 22:30 in São Paulo on the 30th is 01:30 UTC on the 31st.
    let late = canonical(&body(
        "evt_late",
        "emp_1",
        "7.00",
        "BRL",
        "paid",
        "2025-01-30T22:30:00-03:00",
    ));
    assert!(failures(&env, vec![message("m1", &late)]).await.is_empty());
    assert_eq!(day_totals(&env, "2025-01-30").await["count"], 0);
    assert_eq!(day_totals(&env, "2025-01-31").await["count"], 1);
}

fn scheduled(time: &str, detail: Value) -> EventBridgeEvent<Value> {
    let mut event = EventBridgeEvent::<Value>::default();
    event.detail_type = "Scheduled Event".to_owned();
    event.source = "aws.events".to_owned();
    event.time = Some(
        DateTime::parse_from_rfc3339(time)
            .unwrap()
            .with_timezone(&Utc),
    );
    event.detail = detail;
    event
}

async fn blob_text(env: &Env, key: &str) -> (String, Option<String>) {
    let blob = env.state.blobs.get(key).await.unwrap().unwrap();
    (
        String::from_utf8(blob.body.to_vec()).unwrap(),
        blob.meta.content_type,
    )
}

#[tokio::test]
async fn the_daily_report_writes_yesterdays_events_and_summary() {
    let env = env();
    let raws = [
        body(
            "evt_b",
            "emp_2",
            "10.1",
            "BRL",
            "paid",
            "2025-01-01T10:00:00Z",
        ),
        body(
            "evt_a",
            "emp_1",
            "0.10",
            "BRL",
            "paid",
            "2025-01-01T10:00:00Z",
        ),
        body(
            "evt_c",
            "emp_1",
            "5",
            "USD",
            "reversed",
            "2025-01-01T08:00:00.5Z",
        ),
        body(
            "evt_next",
            "emp_1",
            "1.00",
            "BRL",
            "paid",
            "2025-01-02T00:00:00Z",
        ),
        body(
            "evt_prev",
            "emp_1",
            "1.00",
            "BRL",
            "paid",
            "2024-12-31T23:59:59.999Z",
        ),
    ];
    let messages = raws
        .iter()
        .enumerate()
        .map(|(i, r)| message(&format!("m{i}"), &canonical(r)))
        .collect();
    assert!(failures(&env, messages).await.is_empty());

    let report = DailyReport::new(env.state.clone());
    let answer = report
        .handle(scheduled("2025-01-02T00:30:00Z", json!({})))
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({
            "date": "2025-01-01", "events": 3,
            "events_key": "reports/payment-events/dt=2025-01-01/events.csv",
            "summary_key": "reports/payment-events/dt=2025-01-01/summary.csv",
        })
    );
    let (events_csv, content_type) =
        blob_text(&env, "reports/payment-events/dt=2025-01-01/events.csv").await;
    assert_eq!(content_type.as_deref(), Some("text/csv"));
    assert_eq!(
        events_csv,
        "\
event_id,paid_at,loan_id,borrower_id,employer_id,status,amount,currency
evt_c,2025-01-01T08:00:00.500000000Z,loan_evt_c,98765432100,emp_1,reversed,5.00,USD
evt_a,2025-01-01T10:00:00.000000000Z,loan_evt_a,98765432100,emp_1,paid,0.10,BRL
evt_b,2025-01-01T10:00:00.000000000Z,loan_evt_b,98765432100,emp_2,paid,10.10,BRL
"
    );
    let (summary_csv, _) =
        blob_text(&env, "reports/payment-events/dt=2025-01-01/summary.csv").await;
    assert_eq!(
        summary_csv,
        "\
scope,employer_id,currency,status,count,amount_total
all,,BRL,paid,2,10.20
all,,USD,reversed,1,5.00
employer,emp_1,BRL,paid,1,0.10
employer,emp_1,USD,reversed,1,5.00
employer,emp_2,BRL,paid,1,10.10
"
    );

    // A re-run of the same event, later, writes the same bytes for the same day.
    env.clock.advance(Duration::hours(5));
    let again = report
        .handle(scheduled("2025-01-02T00:30:00Z", json!({})))
        .await
        .unwrap();
    assert_eq!(again, answer);
    assert_eq!(
        blob_text(&env, "reports/payment-events/dt=2025-01-01/events.csv")
            .await
            .0,
        events_csv
    );
    assert_eq!(
        blob_text(&env, "reports/payment-events/dt=2025-01-01/summary.csv")
            .await
            .0,
        summary_csv
    );

    // detail.date picks another day.
    let other = report
        .handle(scheduled(
            "2025-01-02T00:30:00Z",
            json!({"date": "2024-12-31"}),
        ))
        .await
        .unwrap();
    assert_eq!(other["events"], 1);
    assert_eq!(other["date"], "2024-12-31");
}

#[tokio::test]
async fn the_daily_report_reads_every_page() {
    let env = env();
    // More events than one query page (QUERY_PAGE_ITEMS_MAX = 1000).
    let count = 1_205;
    let messages: Vec<SqsMessage> = (0..count)
        .map(|i| {
            let paid_at = format!(
                "2025-01-01T{:02}:{:02}:{:02}Z",
                i / 3600,
                (i / 60) % 60,
                i % 60
            );
            message(
                &format!("m{i}"),
                &canonical(&body(
                    &format!("evt_{i:05}"),
                    "emp_1",
                    "1.01",
                    "BRL",
                    "paid",
                    &paid_at,
                )),
            )
        })
        .collect();
    for chunk in messages.chunks(10) {
        assert!(failures(&env, chunk.to_vec()).await.is_empty());
    }
    let report = DailyReport::new(env.state.clone());
    let answer = report
        .handle(scheduled(
            "2025-01-05T00:30:00Z",
            json!({"date": "2025-01-01"}),
        ))
        .await
        .unwrap();
    assert_eq!(answer["events"], count);
    let (events_csv, _) = blob_text(&env, "reports/payment-events/dt=2025-01-01/events.csv").await;
    assert_eq!(events_csv.lines().count(), count + 1);
    let (summary_csv, _) =
        blob_text(&env, "reports/payment-events/dt=2025-01-01/summary.csv").await;
    assert!(
        summary_csv.contains(&format!("all,,BRL,paid,{count},1217.05\n")),
        "{summary_csv}"
    );
}

fn sample(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn the_sample_events_run_end_to_end() {
    let env = env();
    let sqs: SqsEvent = serde_json::from_str(&sample("payment-events-processor.json")).unwrap();
    assert_eq!(sqs.records.len(), 2);
    let response = Processor::new(env.state.clone()).handle(sqs).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    let schedule: EventBridgeEvent<Value> =
        serde_json::from_str(&sample("payment-events-report.json")).unwrap();
    let answer = DailyReport::new(env.state.clone())
        .handle(schedule)
        .await
        .unwrap();
    assert_eq!(answer["date"], "2025-01-01");
    assert_eq!(answer["events"], 2);

    // The webhook sample is signed with the dev secret at its own timestamp.
    let request = lambda_http::request::from_str(&sample("payment-webhook.json")).unwrap();
    env.clock.set(Utc.timestamp_opt(1_735_723_000, 0).unwrap());
    let secret = Secret::new("whsec_dev_payops".to_owned());
    let response = payment_events::router(env.state.clone(), secret)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let received = env.queue.receive(ReceiveOptions::default()).await.unwrap();
    assert_eq!(received.len(), 1);
    // The webhook's event is the first message of the SQS sample, byte for byte.
    let sqs: SqsEvent = serde_json::from_str(&sample("payment-events-processor.json")).unwrap();
    assert_eq!(Some(received[0].body.clone()), sqs.records[0].body);
}

/// Collects everything the handlers log, at every level.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn borrower_ids_never_reach_the_logs() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runs on one thread (tokio::test's current-thread runtime), so a thread-local
    // default subscriber sees every handler log.
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = env();
    let t = env.clock.now().timestamp();
    let signed = |raw: &str| {
        Request::post("/webhooks/payment-events")
            .header(
                "Payops-Signature",
                webhook_signature::sign(SECRET.as_bytes(), t, raw.as_bytes()),
            )
            .body(Body::from(raw.to_owned()))
            .unwrap()
    };
    let good = body(
        "evt_1",
        "emp_1",
        "1.00",
        "BRL",
        "paid",
        "2025-01-31T10:00:00Z",
    );
    assert_eq!(call(&env, signed(&good)).await.0, StatusCode::ACCEPTED);
    let bad = good.replace("98765432100", "98765432100 bad");
    assert_eq!(call(&env, signed(&bad)).await.0, StatusCode::BAD_REQUEST);
    let unsigned = Request::post("/webhooks/payment-events")
        .body(Body::from(good.clone()))
        .unwrap();
    assert_eq!(call(&env, unsigned).await.0, StatusCode::UNAUTHORIZED);

    let stored = canonical(&good);
    let malformed = stored.replace("\"1.00\"", "\"1.001\"");
    let failed = failures(
        &env,
        vec![
            message("m1", &stored),
            message("m2", &stored),
            message("m3", &malformed),
        ],
    )
    .await;
    assert_eq!(failed, vec!["m3"]);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The handlers did log (accepted, rejected, duplicate, failed) …
    for expected in [
        "payment event accepted",
        "payment event rejected",
        "webhook signature rejected",
        "duplicate payment event ignored",
        "payment event message failed",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // … and never the borrower id.
    assert!(!text.contains("98765432100"), "PII in logs:\n{text}");
}
