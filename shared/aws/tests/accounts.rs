//! Accounts and advances (issue 4) on the AWS adapters against moto: the money paths are
//! DynamoDB transactions whose outcome is read from the cancellation reasons, so they are run
//! here on DynamoDB itself — transfers, insufficient funds, unknown accounts, idempotent
//! replays, bank transactions, an advance created in one 16-write transaction, the collector's
//! query of the due-date index, the worker's claim / debit / settle and roll-forward, and the
//! auditor's alert through EventBridge.
//!
//! moto applies concurrent conditional writes without isolation (see `support`), so every
//! case here runs its writes one after another; the races are played out in sequence (a
//! second worker claims while the first holds the lease).

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use payops_app::accounts::layout::{self, attr};
use payops_app::accounts::money::{self, MoveRequest};
use payops_app::accounts::{
    AUDIT_EVENT_SOURCE, AUDIT_EVENT_TYPE, Accounts, Auditor, Claim, Collector, InstalmentMessage,
    LEASE_MS, Worker, WorkerOutcome, router,
};
use payops_app::handler::{EventHandler, SqsHandler};
use payops_app::ports::{
    CancelReason, Clock, Condition, ManualClock, Queue, ReceiveOptions, Table, TableError,
    UpdateAction, Write,
};
use payops_aws::{DynamoTable, SqsQueue, TimestreamMetrics};
use payops_core::accounts::{AccountId, Direction, IdempotencyKey, TxStatus};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::MotoHarness;
use tower::ServiceExt;

/// Receives of an SQS queue before a test gives up waiting for a message.
const RECEIVE_POLLS_MAX: usize = 10;
/// DynamoDB bills writes per started KiB of item.
const WRITE_UNIT_BYTES: usize = 1024;
/// A transactional write costs two units per KiB (prepare and commit).
const TRANSACTIONAL_WRITE_FACTOR: usize = 2;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0)
        .single()
        .expect("valid start time")
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("valid decimal literal")
}

struct Env {
    harness: MotoHarness,
    clock: Arc<ManualClock>,
    state: Accounts,
    table: Arc<DynamoTable>,
    queue: Arc<SqsQueue>,
    events: Arc<payops_aws::EventBridgeEvents>,
}

async fn env() -> Env {
    let harness = MotoHarness::new().await;
    let clock = Arc::new(ManualClock::new(start()));
    let table = Arc::new(harness.create_table(&["gsi1", "gsi2"]).await);
    let (queue, _) = harness.create_queue(false, 90, None).await;
    let queue = Arc::new(queue);
    let events = Arc::new(harness.create_event_bus().await);
    let (database, metrics_table) = harness.create_metrics_table().await;
    let metrics = Arc::new(TimestreamMetrics::new(
        harness.env.timestream().clone(),
        database,
        metrics_table,
    ));
    let state = Accounts::new(
        table.clone(),
        queue.clone(),
        events.clone(),
        metrics,
        clock.clone() as Arc<dyn Clock>,
    );
    Env {
        harness,
        clock,
        state,
        table,
        queue,
        events,
    }
}

impl Env {
    fn router(&self) -> Router {
        router(self.state.clone())
    }

    async fn open(&self, id: &str, balance: &str) {
        let (status, body) = post(
            &self.router(),
            "/api/v1/accounts",
            json!({"account_id": id, "balance": balance}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn balance(&self, id: &str) -> Decimal {
        let (status, body) = get(&self.router(), &format!("/api/v1/accounts/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        dec(body["balance"].as_str().expect("balance is a string"))
    }

    async fn transfer(&self, src: &str, dst: &str, amount: &str, direction: &str) -> Value {
        let body = json!({"src_account_id": src, "dst_account_id": dst, "amount": amount, "direction": direction});
        let (status, body) = post(&self.router(), "/api/v1/transaction", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn bank(&self, account: &str, amount: &str, direction: &str) -> Value {
        let body = json!({"dst_account_id": account, "amount": amount, "direction": direction, "reason": "test"});
        let (status, body) = post(&self.router(), "/api/v1/bank_transactions", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn create_advance(&self, account: &str, amount: &str, key: &str) -> Value {
        let (status, _, body) = post_with_key(
            &self.router(),
            "/api/v1/advances",
            json!({"account_id": account, "amount": amount}),
            key,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn advance_view(&self, id: &str) -> Value {
        let (status, body) = get(&self.router(), &format!("/api/v1/advances/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// One stored item as DynamoDB returns it (raw attribute values).
    async fn raw_item(&self, key: &payops_app::ports::Key) -> HashMap<String, AttributeValue> {
        self.harness
            .env
            .dynamodb()
            .get_item()
            .table_name(&self.table.spec().name)
            .key("pk", AttributeValue::S(key.pk.clone()))
            .key("sk", AttributeValue::S(key.sk.clone()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
            .expect("the item exists")
    }

    /// Delivers every message on the instalments queue to `worker`, as the SQS event source
    /// does, deleting those not reported failed. Returns the ids of failed messages.
    async fn drain(&self, worker: &Worker) -> Vec<String> {
        let mut failed = Vec::new();
        loop {
            let options = ReceiveOptions {
                max_messages: 10,
                visibility_timeout_seconds: Some(90),
                wait_seconds: 0,
            };
            let messages = self.queue.receive(options).await.expect("receive");
            if messages.is_empty() {
                return failed;
            }
            let mut event = SqsEvent::default();
            event.records = messages
                .iter()
                .map(|m| {
                    let mut s = SqsMessage::default();
                    s.message_id = Some(m.message_id.clone());
                    s.receipt_handle = Some(m.receipt_handle.clone());
                    s.body = Some(m.body.clone());
                    s
                })
                .collect();
            let response = worker
                .handle(event)
                .await
                .expect("worker handles the batch");
            let failures: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            for m in &messages {
                if failures.contains(&m.message_id) {
                    failed.push(m.message_id.clone());
                } else {
                    self.queue.delete(&m.receipt_handle).await.expect("delete");
                }
            }
        }
    }

    /// One week: move to the next due day, collect, let the worker drain the queue.
    async fn collect_week(&self, worker: &Worker) -> u64 {
        self.clock.advance(Duration::days(7));
        let report = Collector::new(self.state.clone())
            .handle(tick(self.clock.now()))
            .await
            .expect("collector");
        assert!(self.drain(worker).await.is_empty());
        report["enqueued"].as_u64().expect("enqueued is a count")
    }
}

async fn send(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, HashMap<String, String>, Value) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router answers");
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post_request(uri: &str, body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::post(uri).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Body::from(body.to_owned()))
        .expect("valid request")
}

async fn post(router: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = send(router, post_request(uri, &body.to_string(), &[])).await;
    (status, body)
}

async fn post_with_key(
    router: &Router,
    uri: &str,
    body: Value,
    key: &str,
) -> (StatusCode, HashMap<String, String>, Value) {
    send(
        router,
        post_request(uri, &body.to_string(), &[("Idempotency-Key", key)]),
    )
    .await
}

async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
    let request = Request::get(uri)
        .body(Body::empty())
        .expect("valid request");
    let (status, _, body) = send(router, request).await;
    (status, body)
}

fn tick(at: DateTime<Utc>) -> EventBridgeEvent<Value> {
    let mut event = EventBridgeEvent::<Value>::default();
    event.detail_type = "Scheduled Event".to_owned();
    event.source = "aws.events".to_owned();
    event.time = Some(at);
    event
}

fn account(id: &str) -> AccountId {
    AccountId::parse(id).expect("valid test account id")
}

fn instalments(advance: &Value) -> Vec<(u64, String, String)> {
    advance["instalments"]
        .as_array()
        .expect("instalments")
        .iter()
        .map(|i| {
            (
                i["number"].as_u64().expect("number"),
                i["amount"].as_str().expect("amount").to_owned(),
                i["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

// ---- transfers and bank transactions -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_move_money_in_one_transaction_and_failures_are_recorded() {
    let env = env().await;
    env.open("a", "100.00").await;
    env.open("b", "50.00").await;

    let tx = env.transfer("a", "b", "30.25", "debit").await;
    assert_eq!(tx["status"], "success", "{tx}");
    assert_eq!(tx["amount"], "30.25");
    assert_eq!(tx["transaction_timestamp"], "2025-03-03T09:00:00.000Z");
    assert!(tx.get("reason").is_none(), "{tx}");
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("69.75"), dec("80.25"))
    );
    // `credit`: dst pays src.
    let tx = env.transfer("a", "b", "0.10", "credit").await;
    assert_eq!(tx["status"], "success");
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("69.85"), dec("80.15"))
    );

    // The payer's condition fails: DynamoDB cancels the transaction with a
    // ConditionalCheckFailed reason on write 0, which the flow reads as insufficient funds.
    let tx = env.transfer("a", "b", "69.86", "debit").await;
    assert_eq!(tx["status"], "fail", "{tx}");
    assert_eq!(tx["reason"], "Insufficient funds");
    // The failure is recorded too, with its reason, in the report's index.
    let id = tx["transaction_id"].as_str().expect("id");
    let stored = env
        .table
        .get(&layout::tx_key(id))
        .await
        .expect("get")
        .expect("the failed transfer is recorded");
    assert_eq!(stored.s(attr::STATUS), Some("fail"));
    assert_eq!(stored.s(attr::REASON), Some("Insufficient funds"));
    assert_eq!(stored.s(layout::GSI1_PK), Some("TXDAY#2025-03-03"));
    // Exactly the balance is enough: `balance >= amount`.
    let tx = env.transfer("b", "a", "80.15", "debit").await;
    assert_eq!(tx["status"], "success", "{tx}");
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("150.00"), dec("0.00"))
    );

    // Unknown accounts, on either side, fail without moving anything.
    for (src, dst) in [("a", "ghost"), ("ghost", "a")] {
        let tx = env.transfer(src, dst, "1.00", "debit").await;
        assert_eq!(tx["reason"], "Unknown account", "{tx}");
    }
    assert_eq!(env.balance("a").await, dec("150.00"));

    // Bank transactions: one account write.
    let tx = env.bank("b", "2.50", "credit").await;
    assert_eq!(
        (&tx["status"], &tx["kind"]),
        (&json!("success"), &json!("bank"))
    );
    assert_eq!(tx["src_account_id"], Value::Null);
    let tx = env.bank("b", "2.51", "debit").await;
    assert_eq!(tx["reason"], "Insufficient funds");
    let tx = env.bank("b", "2.50", "debit").await;
    assert_eq!(tx["status"], "success");
    assert_eq!(
        env.bank("ghost", "1", "credit").await["reason"],
        "Unknown account"
    );
    assert_eq!(env.balance("b").await, dec("0.00"));

    // The report is a query of the day's partition of gsi1 (GSIs are eventually consistent
    // in DynamoDB; moto's are immediate). All ten transactions above are in it.
    env.clock.advance(Duration::minutes(1));
    let (status, report) = get(&env.router(), "/api/v1/transactions?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["total_count"], 10, "{report}");
    assert_eq!(report["total_pages"], 4);
    // Successful amounts only: 30.25 + 0.10 + 80.15 + 2.50 + 2.50.
    assert_eq!(report["total_amount"], "115.50");
}

/// The reasons the flow reads after a cancelled transaction, one per write, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_reasons_name_the_write_that_failed() {
    let env = env().await;
    env.open("a", "10.00").await;
    env.open("a2", "0").await;
    let payer = |amount: &str| Write::Update {
        key: layout::account_key(&account("a")),
        actions: vec![UpdateAction::add(attr::BALANCE, -dec(amount))],
        condition: Some(Condition::And(vec![
            Condition::eq(attr::CURRENCY, "USD"),
            Condition::ge(attr::BALANCE, dec(amount)),
        ])),
    };
    let payee = |id: &str| Write::Update {
        key: layout::account_key(&account(id)),
        actions: vec![UpdateAction::add(attr::BALANCE, dec("1.00"))],
        condition: Some(Condition::eq(attr::CURRENCY, "USD")),
    };
    let record = |id: &str| Write::Put {
        item: payops_app::ports::Item::new(&layout::tx_key(id)).with(attr::STATUS, "success"),
        condition: Some(Condition::ItemNotExists),
    };

    // Overdraft: write 0 only.
    let e = env
        .table
        .transact(vec![payer("10.01"), payee("a2"), record("t1")])
        .await
        .expect_err("overdraft is cancelled");
    assert!(e.failed_condition_at(0), "{e:?}");
    assert!(
        !e.failed_condition_at(1) && !e.failed_condition_at(2),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    // A payee that does not exist: its `currency = c` condition is false (write 1).
    let e = env
        .table
        .transact(vec![payer("1.00"), payee("nobody"), record("t1")])
        .await
        .expect_err("missing payee is cancelled");
    match &e {
        TableError::TransactionCanceled { reasons } => assert_eq!(
            reasons.as_slice(),
            [None, Some(CancelReason::ConditionalCheckFailed), None]
        ),
        other => panic!("expected a cancelled transaction, got {other:?}"),
    }
    // A record that exists already: an earlier attempt of the same call committed (write 2).
    env.table
        .transact(vec![payer("1.00"), payee("a2"), record("t1")])
        .await
        .expect("first attempt commits");
    let e = env
        .table
        .transact(vec![payer("1.00"), payee("a2"), record("t1")])
        .await
        .expect_err("the second attempt is cancelled");
    assert!(
        e.failed_condition_at(2) && !e.failed_condition_at(0),
        "{e:?}"
    );
    assert_eq!(env.balance("a").await, dec("9.00"), "nothing moved twice");
    assert_eq!(env.balance("a2").await, dec("1.00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_moves_money_once_on_dynamodb() {
    let env = env().await;
    env.open("a", "100").await;
    env.open("b", "0").await;
    let r = env.router();
    let body =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": "40", "direction": "debit"});
    let (s1, h1, first) = post_with_key(&r, "/api/v1/transaction", body.clone(), "key-1").await;
    env.clock.advance(Duration::seconds(5));
    let (s2, h2, second) = post_with_key(&r, "/api/v1/transaction", body, "key-1").await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, second, "the replay is the first result");
    assert!(!h1.contains_key("idempotent-replayed"));
    assert_eq!(
        h2.get("idempotent-replayed").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("60"), dec("40"))
    );
    // Another request under a used key is refused.
    let other =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": "41", "direction": "debit"});
    let (status, _, _) = post_with_key(&r, "/api/v1/transaction", other, "key-1").await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A failed first result stays the result once funds would suffice.
    let big =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": "70", "direction": "debit"});
    let (_, _, failed) = post_with_key(&r, "/api/v1/transaction", big.clone(), "key-2").await;
    assert_eq!(failed["reason"], "Insufficient funds");
    env.bank("a", "100", "credit").await;
    let (_, _, again) = post_with_key(&r, "/api/v1/transaction", big, "key-2").await;
    assert_eq!(again, failed);
    // Bank transactions too.
    let bank = json!({"dst_account_id": "b", "amount": "5", "direction": "debit", "reason": "fee"});
    let (_, _, t1) = post_with_key(&r, "/api/v1/bank_transactions", bank.clone(), "fee-1").await;
    let (_, _, t2) = post_with_key(&r, "/api/v1/bank_transactions", bank, "fee-1").await;
    assert_eq!(t1, t2);
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("160"), dec("35"))
    );

    // The same call retried after an ambiguous failure (its first `transact` committed but
    // the caller never heard): the record's own condition fails, and the stored record is
    // returned without moving money again.
    let req = MoveRequest::transfer(
        account("a"),
        account("b"),
        dec("1.00"),
        Direction::Debit,
        None,
    );
    let once = money::execute(&env.state, &req).await.expect("first");
    let twice = money::execute(&env.state, &req).await.expect("retry");
    assert_eq!(once.record, twice.record);
    assert!(!twice.replayed);
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("159"), dec("36"))
    );
    // An internal key (as an instalment's debit uses) replays like a client's.
    let key = IdempotencyKey::internal(&["TEST", "1"]);
    let req = MoveRequest::bank(
        account("b"),
        dec("6.00"),
        Direction::Debit,
        "fee".into(),
        Some(key.clone()),
    );
    let first = money::execute(&env.state, &req).await.expect("debit");
    let mut again = req.clone();
    again.transaction_id = money::new_transaction_id();
    let replay = money::execute(&env.state, &again).await.expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.record, first.record);
    assert_eq!(first.record.status, TxStatus::Success);
    assert_eq!(env.balance("b").await, dec("30"));
}

// ---- advances ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advance_is_created_in_one_sixteen_write_transaction() {
    let env = env().await;
    env.open("c", "0").await;
    let advance = env.create_advance("c", "100.00", "adv-1").await;
    assert_eq!(env.balance("c").await, dec("100.00"));
    let s = instalments(&advance);
    assert_eq!(s.len(), 12);
    let sum: Decimal = s.iter().map(|(_, a, _)| dec(a)).sum();
    assert_eq!(sum, dec("100.00"));
    assert_eq!((s[0].1.as_str(), s[11].1.as_str()), ("8.34", "8.33"));
    assert_eq!(advance["instalments"][0]["due_date"], "2025-03-10");
    assert_eq!(advance["instalments"][11]["due_date"], "2025-05-26");
    let id = advance["advance_id"].as_str().expect("id").to_owned();

    // Everything the transaction wrote is there: the account's credit, its record, the key,
    // the advance and its twelve instalments (1 + 1 + 1 + 1 + 12 writes).
    let partition = env
        .table
        .query(payops_app::ports::Query::partition(
            layout::advance_partition(&id),
        ))
        .await
        .expect("query");
    assert_eq!(partition.items.len(), 13);
    let disbursement = advance["disbursement_transaction_id"].as_str().expect("tx");
    assert!(
        env.table
            .get(&layout::tx_key(disbursement))
            .await
            .expect("get")
            .is_some()
    );
    let idem = env
        .table
        .get(&layout::idem_key(
            &IdempotencyKey::parse("adv-1").expect("key"),
        ))
        .await
        .expect("get")
        .expect("the key is recorded");
    assert_eq!(idem.s(attr::ADVANCE_ID), Some(id.as_str()));

    // A retried creation is the same advance and one credit; GET shows the same schedule.
    let again = env.create_advance("c", "100.00", "adv-1").await;
    assert_eq!(again, advance);
    assert_eq!(env.balance("c").await, dec("100.00"));
    assert_eq!(env.advance_view(&id).await, advance);
    let (status, _) = post(
        &env.router(),
        "/api/v1/advances",
        json!({"account_id": "ghost", "amount": "50"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instalments_are_collected_once_through_the_due_index_the_queue_and_leases() {
    let env = env().await;
    env.open("c", "0").await;
    env.open("shop", "0").await;
    let advance = env.create_advance("c", "24.00", "adv-c").await;
    let id = advance["advance_id"].as_str().expect("id").to_owned();
    let worker = Worker::new(env.state.clone());

    // Day 6: nothing is due; the due-date index query finds nothing.
    env.clock.advance(Duration::days(6));
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now())
        .await
        .expect("collect");
    assert_eq!(report.enqueued, 0);

    // Week 1: instalment 1 (2.00) is due, enqueued on SQS, claimed, debited and paid.
    env.clock.advance(Duration::days(1));
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now())
        .await
        .expect("collect");
    assert_eq!(report.enqueued, 1);
    assert!(env.drain(&worker).await.is_empty());
    assert_eq!(env.balance("c").await, dec("22.00"));
    let view = env.advance_view(&id).await;
    assert_eq!(view["instalments"][0]["status"], "paid");

    // Week 2: worker A claims and debits, then dies before settling. While its lease lives, a
    // second worker's claim fails its condition and the collector leaves it alone.
    env.clock.advance(Duration::days(7));
    let msg = InstalmentMessage {
        advance_id: id.clone(),
        number: 2,
    };
    let a = Worker::new(env.state.clone());
    let Claim::Claimed(claimed) = a.claim(&msg).await.expect("claim") else {
        panic!("A wins the lease");
    };
    let debit = a.debit(&claimed).await.expect("debit");
    assert_eq!(env.balance("c").await, dec("20.00"));
    let b = Worker::new(env.state.clone());
    assert_eq!(
        b.claim(&msg).await.expect("claim"),
        Claim::Skipped(WorkerOutcome::Leased)
    );
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now())
        .await
        .expect("collect");
    assert_eq!((report.enqueued, report.leased), (0, 1));
    // The lease expires: collected again, B replays the same debit key: one debit.
    env.clock.advance(Duration::milliseconds(LEASE_MS + 1));
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now())
        .await
        .expect("collect");
    assert_eq!(report.enqueued, 1);
    assert!(env.drain(&b).await.is_empty());
    assert_eq!(env.balance("c").await, dec("20.00"));
    let view = env.advance_view(&id).await;
    assert_eq!(view["instalments"][1]["status"], "paid");
    assert_eq!(
        view["instalments"][1]["transaction_id"],
        debit.transaction_id.as_str()
    );
    assert_eq!(view["instalments"][1]["attempts"], 2);
    assert_eq!(
        a.settle(&claimed, &debit).await.expect("settle"),
        WorkerOutcome::LeaseLost,
        "A wakes up late and changes nothing"
    );

    // Week 3: the customer spent everything; the debit fails and rolls onto week 4.
    env.transfer("c", "shop", "20.00", "debit").await;
    assert_eq!(env.collect_week(&worker).await, 1);
    let s = instalments(&env.advance_view(&id).await);
    assert_eq!(s[2], (3, "2.00".into(), "failed".into()));
    assert_eq!(s[3], (4, "4.00".into(), "due".into()));
    assert_eq!(env.balance("c").await, dec("0.00"));

    // Weeks 4–11 are paid; week 12 fails: a trailing 13th instalment a week after the last.
    env.bank("c", "18.00", "credit").await;
    for _ in 4..=11 {
        env.collect_week(&worker).await;
    }
    assert_eq!(env.balance("c").await, dec("0.00"));
    env.collect_week(&worker).await;
    let view = env.advance_view(&id).await;
    let s = instalments(&view);
    assert_eq!(s.len(), 13);
    assert_eq!(s[11], (12, "2.00".into(), "failed".into()));
    assert_eq!(s[12], (13, "2.00".into(), "due".into()));
    assert_eq!(view["instalments"][12]["due_date"], "2025-06-02");
    // Week 13: funded and paid; the advance is repaid, 24.00 collected exactly once.
    env.bank("c", "2.00", "credit").await;
    env.collect_week(&worker).await;
    let view = env.advance_view(&id).await;
    assert_eq!(view["status"], "repaid");
    assert_eq!(view["paid_amount"], "24.00");
    assert_eq!(env.balance("c").await, dec("0.00"));
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now() + Duration::days(30))
        .await
        .expect("collect");
    assert_eq!(report.enqueued, 0, "closed instalments left the due index");
    assert!(
        Auditor::new(env.state.clone())
            .audit_all()
            .await
            .expect("audit")
            .differences
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_alerts_through_eventbridge() {
    let env = env().await;
    // The alert's consumer: a rule on the bus that forwards audit events to a queue.
    let target = env
        .harness
        .create_rule_to_queue(&env.events, AUDIT_EVENT_SOURCE)
        .await;

    env.open("c", "0").await;
    env.create_advance("c", "60.00", "adv-clean").await;
    let planted = env.create_advance("c", "36.00", "adv-planted").await;
    let planted_id = planted["advance_id"].as_str().expect("id").to_owned();
    assert!(
        Auditor::new(env.state.clone())
            .audit_all()
            .await
            .expect("audit")
            .differences
            .is_empty()
    );
    // Someone edits an instalment behind the flow's back.
    env.table
        .update(
            &layout::instalment_key(&planted_id, 4),
            vec![UpdateAction::add(attr::AMOUNT, dec("0.01"))],
            None,
        )
        .await
        .expect("plant a difference");
    let report = Auditor::new(env.state.clone())
        .handle(tick(env.clock.now()))
        .await
        .expect("audit runs");
    assert_eq!(report["advances_checked"], 2, "{report}");
    let differences = report["differences"].as_array().expect("a list");
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["advance_id"], planted_id.as_str());
    assert_eq!(differences[0]["difference"], "0.01");

    let mut delivered = None;
    for _ in 0..RECEIVE_POLLS_MAX {
        let options = ReceiveOptions {
            max_messages: 10,
            visibility_timeout_seconds: None,
            wait_seconds: 1,
        };
        if let Some(m) = target.receive(options).await.expect("receive").pop() {
            delivered = Some(m.body);
            break;
        }
    }
    let event: Value =
        serde_json::from_str(&delivered.expect("the alert reached the rule's target"))
            .expect("event JSON");
    assert_eq!(event["detail-type"], AUDIT_EVENT_TYPE);
    assert_eq!(event["detail"]["advance_id"], planted_id.as_str());
    assert_eq!(event["detail"]["difference"], "0.01");
}

// ---- write units -----------------------------------------------------------------------------------

/// DynamoDB's size of an attribute value, by its documented rules: strings and binaries by
/// their bytes, numbers about one byte per two significant digits plus one, lists and maps
/// three bytes plus their elements (one more byte per element).
fn value_bytes(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n.chars().filter(char::is_ascii_digit).count();
            digits.div_ceil(2) + 1
        }
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_bytes(v) + 1).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_bytes(v) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

/// moto answers `TransactWriteItems` with an empty `ConsumedCapacity`, so the units are
/// counted from what a transfer writes: each item of a transaction costs two units per
/// started KiB, and the record's gsi1 entry one more (index writes are not transactional).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_costs_nine_write_units() {
    let env = env().await;
    let (a, b) = (
        "acc-0123456789abcdef0123456789abcdef",
        "acc-fedcba9876543210fedcba9876543210",
    );
    env.open(a, "1000000.00").await;
    env.open(b, "0").await;
    let key = "4f9c2a4e-6f1b-4c55-9e0b-1d2f3a4b5c6d";
    let body = json!({"src_account_id": a, "dst_account_id": b, "amount": "123456.78", "direction": "debit"});
    let (status, _, tx) = post_with_key(&env.router(), "/api/v1/transaction", body, key).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    let id = tx["transaction_id"].as_str().expect("id");

    let written = [
        ("payer account", layout::account_key(&account(a))),
        ("payee account", layout::account_key(&account(b))),
        ("transaction record", layout::tx_key(id)),
        (
            "idempotency record",
            layout::idem_key(&IdempotencyKey::parse(key).expect("key")),
        ),
    ];
    let mut units = 0;
    let mut lines = Vec::new();
    for (what, key) in &written {
        let bytes = item_bytes(&env.raw_item(key).await);
        assert!(bytes < WRITE_UNIT_BYTES / 2, "{what} is {bytes} bytes");
        let item_units = TRANSACTIONAL_WRITE_FACTOR * bytes.div_ceil(WRITE_UNIT_BYTES);
        units += item_units;
        lines.push(format!("{what}: {bytes} B, {item_units} WCU"));
    }
    // The record is the only item in an index (gsi1, projection ALL): one more unit.
    units += 1;
    lines.push("gsi1 entry of the record: 1 WCU".into());
    eprintln!("write units per transfer: {units} ({})", lines.join("; "));
    assert_eq!(units, 9);
}
