//! Accounts and advances (issue 4) on the real local adapters (SQLite table and queue,
//! events, metrics), in process: the HTTP router through tower's `oneshot`, the collector,
//! the instalment workers and the auditor, with a `ManualClock` for every date.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use http_body_util::BodyExt;
use payops_app::accounts::layout::{self, attr};
use payops_app::accounts::{
    AUDIT_EVENT_SOURCE, AUDIT_EVENT_TYPE, Accounts, Auditor, Claim, Collector, InstalmentMessage,
    LEASE_MS, METRIC_AUDIT_DIFFERENCES, Worker, WorkerOutcome, router,
};
use payops_app::handler::{EventHandler, SqsHandler};
use payops_app::ports::{Clock, Key, ManualClock, Queue, ReceiveOptions, Table, UpdateAction};
use payops_app::resources::ACCOUNTS_TABLE;
use payops_core::accounts::report::SNAPSHOT_SETTLE_MS;
use payops_local::events::LocalEvents;
use payops_local::metrics::LocalMetrics;
use payops_local::queue::LocalQueue;
use payops_local::store::{LocalStore, QueueConfig};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tower::ServiceExt;

const BUS: &str = "accounts-test";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0)
        .single()
        .expect("valid start time")
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("valid decimal literal")
}

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    state: Accounts,
    table: Arc<dyn Table>,
    queue: Arc<LocalQueue>,
    events: Arc<LocalEvents>,
    metrics: Arc<LocalMetrics>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(start()));
    let store = LocalStore::open(dir.path(), clock.clone() as Arc<dyn Clock>).expect("store opens");
    let table = store.table(ACCOUNTS_TABLE.spec("accounts")).expect("table");
    let queue = store
        .queue(QueueConfig {
            name: "instalments".to_owned(),
            fifo: false,
            visibility_timeout_seconds: 90,
            dead_letter: None,
        })
        .expect("queue");
    let events = store.events(BUS);
    let metrics = store.metrics();
    let state = Accounts::new(
        table.clone(),
        queue.clone(),
        events.clone(),
        metrics.clone(),
        clock.clone(),
    );
    Env {
        _dir: dir,
        clock,
        state,
        table,
        queue,
        events,
        metrics,
    }
}

impl Env {
    fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Moves the clock past the report's settle delay, so what was written is in a new snapshot.
    fn settle(&self) {
        self.clock
            .advance(Duration::milliseconds(SNAPSHOT_SETTLE_MS + 1));
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

async fn post_raw(router: &Router, uri: &str, body: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(router, post_request(uri, body, &[])).await;
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

/// Asserts a 400 whose JSON names `field`.
fn assert_names(result: (StatusCode, Value), field: &str) {
    let (status, body) = result;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], field, "{body}");
    assert_eq!(body["error"], "invalid_request");
}

// ---- accounts --------------------------------------------------------------------------------

#[tokio::test]
async fn accounts_are_created_read_and_validated() {
    let env = env();
    let r = env.router();
    let (status, body) = post(
        &r,
        "/api/v1/accounts",
        json!({"account_id": "alice", "balance": 100.5}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({"account_id": "alice", "balance": "100.50", "currency": "USD"})
    );
    assert_eq!(
        get(&r, "/api/v1/accounts/alice").await,
        (StatusCode::OK, body)
    );

    // Generated id, explicit currency, zero balance.
    let (status, body) = post(
        &r,
        "/api/v1/accounts",
        json!({"balance": "0", "currency": "BRL"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["balance"], "0.00");
    assert_eq!(body["currency"], "BRL");
    let id = body["account_id"].as_str().expect("generated id");
    assert_eq!(
        get(&r, &format!("/api/v1/accounts/{id}")).await.0,
        StatusCode::OK
    );

    let (status, body) = post(
        &r,
        "/api/v1/accounts",
        json!({"account_id": "alice", "balance": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = get(&r, "/api/v1/accounts/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_names(get(&r, "/api/v1/accounts/a%23b").await, "account_id");

    for (body, field) in [
        (json!({"account_id": "x1"}), "balance"),
        (json!({"account_id": "x1", "balance": "-1"}), "balance"),
        (json!({"account_id": "x1", "balance": "1.001"}), "balance"),
        (json!({"account_id": "x1", "balance": "1e3"}), "balance"),
        (json!({"account_id": "x1", "balance": true}), "balance"),
        (
            json!({"account_id": "x1", "balance": "1", "currency": "usd"}),
            "currency",
        ),
        (
            json!({"account_id": "x1", "balance": "1", "currency": "JPY"}),
            "currency",
        ),
        (json!({"account_id": "x#1", "balance": "1"}), "account_id"),
        (json!({"account_id": 7, "balance": "1"}), "account_id"),
    ] {
        assert_names(post(&r, "/api/v1/accounts", body).await, field);
    }
    assert_names(post_raw(&r, "/api/v1/accounts", "{not json").await, "body");
    assert_names(post_raw(&r, "/api/v1/accounts", "[1]").await, "body");
    assert_eq!(
        get(&r, "/api/v1/accounts/x1").await.0,
        StatusCode::NOT_FOUND,
        "nothing half-created"
    );
}

// ---- transfers and bank transactions -----------------------------------------------------------

#[tokio::test]
async fn transfers_move_money_in_the_stated_direction() {
    let env = env();
    env.open("a", "100.00").await;
    env.open("b", "50.00").await;
    let tx = env.transfer("a", "b", "30.25", "debit").await;
    assert_eq!(tx["status"], "success");
    assert_eq!(tx["amount"], "30.25");
    assert_eq!(tx["direction"], "debit");
    assert_eq!(tx["src_account_id"], "a");
    assert_eq!(tx["dst_account_id"], "b");
    assert!(tx.get("reason").is_none(), "{tx}");
    assert!(tx["transaction_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(tx["transaction_timestamp"], "2025-03-03T09:00:00.000Z");
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("69.75"), dec("80.25"))
    );

    // `credit` is the reverse: dst pays src. A JSON number is parsed exactly.
    let body =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": 0.1, "direction": "credit"});
    let (status, tx) = post(&env.router(), "/api/v1/transaction", body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(tx["amount"], "0.10");
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("69.85"), dec("80.15"))
    );
}

#[tokio::test]
async fn failed_transfers_are_recorded_with_their_reason_and_move_nothing() {
    let env = env();
    env.open("a", "10.00").await;
    env.open("b", "0").await;
    let (status, body) = post(
        &env.router(),
        "/api/v1/accounts",
        json!({"account_id": "eur", "balance": "5", "currency": "EUR"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let tx = env.transfer("a", "b", "10.01", "debit").await;
    assert_eq!(
        (tx["status"].as_str(), tx["reason"].as_str()),
        (Some("fail"), Some("Insufficient funds"))
    );
    let tx = env.transfer("a", "ghost", "1", "debit").await;
    assert_eq!(
        (tx["status"].as_str(), tx["reason"].as_str()),
        (Some("fail"), Some("Unknown account"))
    );
    let tx = env.transfer("ghost", "a", "1", "credit").await;
    assert_eq!(tx["reason"], "Unknown account");
    let tx = env.transfer("a", "eur", "1", "debit").await;
    assert_eq!(tx["reason"], "Currency mismatch");
    // Exactly the whole balance is allowed: it stays >= 0.
    let tx = env.transfer("a", "b", "10.00", "debit").await;
    assert_eq!(tx["status"], "success");
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("0.00"), dec("10.00"))
    );

    env.settle();
    let (status, report) = get(&env.router(), "/api/v1/transactions").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let statuses: Vec<&str> = report["transactions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["fail", "fail", "fail", "fail", "success"]);
    assert_eq!(
        report["total_amount"], "10.00",
        "failed transfers moved nothing"
    );
}

#[tokio::test]
async fn transfer_input_errors_name_the_field() {
    let env = env();
    env.open("a", "10").await;
    env.open("b", "10").await;
    let r = env.router();
    let ok =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": "1", "direction": "debit"});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = ok.clone();
        body.as_object_mut().expect("an object").remove(field);
        body
    };
    for (body, field) in [
        (without("src_account_id"), "src_account_id"),
        (without("dst_account_id"), "dst_account_id"),
        (without("amount"), "amount"),
        (without("direction"), "direction"),
        (with("amount", json!("0")), "amount"),
        (with("amount", json!(-5)), "amount"),
        (with("amount", json!("1.001")), "amount"),
        (with("amount", json!(1.001)), "amount"),
        (with("amount", json!("ten")), "amount"),
        (with("amount", json!("1000000000.01")), "amount"),
        (with("direction", json!("sideways")), "direction"),
        (with("dst_account_id", json!("a")), "dst_account_id"),
    ] {
        assert_names(post(&r, "/api/v1/transaction", body).await, field);
    }
    let (status, _, body) = post_with_key(&r, "/api/v1/transaction", ok.clone(), "bad#key").await;
    assert_names((status, body), "Idempotency-Key");
    let mut bank = json!({"dst_account_id": "a", "amount": "1", "direction": "credit"});
    assert_names(
        post(&r, "/api/v1/bank_transactions", bank.clone()).await,
        "reason",
    );
    bank["reason"] = json!("   ");
    assert_names(post(&r, "/api/v1/bank_transactions", bank).await, "reason");
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("10"), dec("10"))
    );
}

#[tokio::test]
async fn the_same_idempotency_key_moves_money_once_and_returns_the_first_result() {
    let env = env();
    env.open("a", "100").await;
    env.open("b", "0").await;
    let r = env.router();
    let body =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": "40", "direction": "debit"});
    let (s1, h1, first) = post_with_key(&r, "/api/v1/transaction", body.clone(), "key-1").await;
    env.clock.advance(Duration::seconds(5));
    let (s2, h2, second) = post_with_key(&r, "/api/v1/transaction", body.clone(), "key-1").await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(
        first, second,
        "the replay is the first result, timestamp included"
    );
    assert!(!h1.contains_key("idempotent-replayed"));
    assert_eq!(
        h2.get("idempotent-replayed").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        (env.balance("a").await, env.balance("b").await),
        (dec("60"), dec("40"))
    );

    // A different request under a used key is refused, not replayed.
    let other =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": "41", "direction": "debit"});
    let (status, _, body) = post_with_key(&r, "/api/v1/transaction", other, "key-1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // A failed first result stays the result, even once funds would suffice.
    let big =
        json!({"src_account_id": "a", "dst_account_id": "b", "amount": "70", "direction": "debit"});
    let (_, _, failed) = post_with_key(&r, "/api/v1/transaction", big.clone(), "key-2").await;
    assert_eq!(failed["reason"], "Insufficient funds");
    env.bank("a", "100", "credit").await;
    let (_, _, again) = post_with_key(&r, "/api/v1/transaction", big, "key-2").await;
    assert_eq!(again, failed);
    assert_eq!(env.balance("a").await, dec("160"));

    // Bank transactions honour keys the same way.
    let bank = json!({"dst_account_id": "b", "amount": "5", "direction": "debit", "reason": "fee"});
    let (_, _, t1) = post_with_key(&r, "/api/v1/bank_transactions", bank.clone(), "fee-1").await;
    let (_, _, t2) = post_with_key(&r, "/api/v1/bank_transactions", bank, "fee-1").await;
    assert_eq!(t1, t2);
    assert_eq!(env.balance("b").await, dec("35"));
}

#[tokio::test]
async fn bank_transactions_credit_and_debit_one_account() {
    let env = env();
    env.open("a", "10").await;
    let tx = env.bank("a", "2.50", "credit").await;
    assert_eq!(tx["status"], "success");
    assert_eq!(tx["src_account_id"], Value::Null);
    assert_eq!(tx["dst_account_id"], "a");
    assert_eq!(tx["kind"], "bank");
    assert_eq!(tx["description"], "test");
    assert_eq!(env.balance("a").await, dec("12.50"));
    let tx = env.bank("a", "12.51", "debit").await;
    assert_eq!(tx["reason"], "Insufficient funds");
    let tx = env.bank("a", "12.50", "debit").await;
    assert_eq!(tx["status"], "success");
    assert_eq!(env.balance("a").await, dec("0.00"));
    let tx = env.bank("ghost", "1", "credit").await;
    assert_eq!(tx["reason"], "Unknown account");
}

/// A small deterministic generator: tests must be reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_never_overdraw_and_conserve_money() {
    const ACCOUNTS: usize = 8;
    const CLIENTS: u64 = 16;
    const REQUESTS_PER_CLIENT: u64 = 40;
    let env = env();
    for i in 0..ACCOUNTS {
        env.open(&format!("acc{i}"), "50.00").await;
    }
    let initial = dec("50.00") * Decimal::from(ACCOUNTS as u64);
    let keys: Vec<Key> = (0..ACCOUNTS)
        .map(|i| Key::new(format!("ACCOUNT#acc{i}"), "ACCOUNT"))
        .collect();

    // A watcher reads every balance while the clients run: none may ever be negative.
    let running = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (table, keys, running) = (env.table.clone(), keys.clone(), running.clone());
        tokio::spawn(async move {
            let mut reads = 0u64;
            while running.load(Ordering::Relaxed) {
                for item in table.batch_get(&keys).await.expect("read balances") {
                    let balance = item.n(attr::BALANCE).expect("a balance");
                    assert!(balance >= Decimal::ZERO, "negative balance {balance}");
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let r = env.router();
        clients.push(tokio::spawn(async move {
            let mut rng = Lcg(client + 1);
            let mut results: Vec<Value> = Vec::new();
            for n in 0..REQUESTS_PER_CLIENT {
                let src = rng.next(ACCOUNTS as u64);
                let dst = (src + 1 + rng.next(ACCOUNTS as u64 - 1)) % ACCOUNTS as u64;
                let cents = 1 + rng.next(3000);
                let amount = Decimal::new(cents as i64, 2).to_string();
                let direction = if rng.next(2) == 0 { "debit" } else { "credit" };
                let (uri, body) = if rng.next(5) == 0 {
                    let direction = if rng.next(2) == 0 { "debit" } else { "credit" };
                    ("/api/v1/bank_transactions", json!({"dst_account_id": format!("acc{src}"), "amount": amount, "direction": direction, "reason": "jepsen"}))
                } else {
                    ("/api/v1/transaction", json!({"src_account_id": format!("acc{src}"), "dst_account_id": format!("acc{dst}"), "amount": amount, "direction": direction}))
                };
                let key = format!("c{client}-r{n}");
                // Every request is sent twice under its key, as a client retrying a timeout.
                let (s1, _, first) = post_with_key(&r, uri, body.clone(), &key).await;
                let (s2, _, second) = post_with_key(&r, uri, body, &key).await;
                assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED), "{first} {second}");
                assert_eq!(first, second, "a retried key returns the first result");
                results.push(first);
            }
            results
        }));
    }
    let mut results = Vec::new();
    for c in clients {
        results.extend(c.await.expect("client finished"));
    }
    running.store(false, Ordering::Relaxed);
    assert!(watcher.await.expect("watcher finished") > 0);

    // Replaying every successful result once predicts every final balance exactly.
    let mut expected: BTreeMap<String, Decimal> = (0..ACCOUNTS)
        .map(|i| (format!("acc{i}"), dec("50.00")))
        .collect();
    let mut net_bank = Decimal::ZERO;
    let mut ids = HashSet::new();
    let mut successes = 0;
    for tx in &results {
        assert!(
            ids.insert(tx["transaction_id"].as_str().expect("an id").to_owned()),
            "one transaction per key"
        );
        if tx["status"] != "success" {
            assert_eq!(tx["reason"], "Insufficient funds");
            continue;
        }
        successes += 1;
        let amount = dec(tx["amount"].as_str().expect("amount"));
        let dst = tx["dst_account_id"].as_str().expect("dst").to_owned();
        match (
            tx["kind"].as_str(),
            tx["direction"].as_str(),
            tx["src_account_id"].as_str(),
        ) {
            (Some("bank"), Some("credit"), None) => {
                *expected.get_mut(&dst).expect("known") += amount;
                net_bank += amount;
            }
            (Some("bank"), Some("debit"), None) => {
                *expected.get_mut(&dst).expect("known") -= amount;
                net_bank -= amount;
            }
            (Some("transfer"), Some(direction), Some(src)) => {
                let (payer, payee) = if direction == "debit" {
                    (src.to_owned(), dst)
                } else {
                    (dst, src.to_owned())
                };
                *expected.get_mut(&payer).expect("known") -= amount;
                *expected.get_mut(&payee).expect("known") += amount;
            }
            other => panic!("unexpected transaction shape {other:?}"),
        }
    }
    assert!(
        successes > 50 && successes < results.len(),
        "both outcomes exercised: {successes}"
    );
    let mut total = Decimal::ZERO;
    for (account, want) in &expected {
        let have = env.balance(account).await;
        assert!(have >= Decimal::ZERO);
        assert_eq!(have, *want, "balance of {account}");
        total += have;
    }
    assert_eq!(total, initial + net_bank, "money is conserved");
}

// ---- the report --------------------------------------------------------------------------------

fn ids(report: &Value) -> Vec<String> {
    report["transactions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["transaction_id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn the_report_pages_a_fixed_snapshot() {
    let env = env();
    env.open("a", "1000").await;
    env.open("b", "0").await;
    // 3 transactions a day over 4 days, the first day 6 days ago by the end.
    let mut written = Vec::new();
    for day in 0..4 {
        for n in 1..=3 {
            let tx = env.transfer("a", "b", &format!("{n}.00"), "debit").await;
            written.push((day, tx["transaction_id"].as_str().expect("id").to_owned()));
            env.clock.advance(Duration::hours(2));
        }
        env.clock.advance(Duration::hours(18));
    }
    // Now 4 days after the start: everything is within 5 days.
    env.settle();
    let r = env.router();
    let (status, page1) = get(&r, "/api/v1/transactions?limit=5").await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    assert_eq!(page1["total_pages"], 3);
    assert_eq!(page1["total_count"], 12);
    assert_eq!(page1["total_amount"], "24.00");
    assert_eq!(page1["page"], 1);
    assert_eq!(page1["limit"], 5);
    let all: Vec<String> = written.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids(&page1), all[..5]);
    let token = page1["snapshot"].as_str().expect("a token").to_owned();

    // New transactions arrive while the client pages: they must not appear.
    env.transfer("a", "b", "7.00", "debit").await;
    env.clock.advance(Duration::minutes(1));
    env.transfer("a", "b", "8.00", "debit").await;
    env.settle();

    let (_, page2) = get(
        &r,
        &format!("/api/v1/transactions?limit=5&page=2&snapshot={token}"),
    )
    .await;
    assert_eq!(ids(&page2), all[5..10]);
    assert_eq!(page2["total_pages"], 3);
    assert_eq!(page2["total_amount"], "24.00");
    let token2 = page2["snapshot"].as_str().expect("a token").to_owned();
    let (_, page3) = get(
        &r,
        &format!("/api/v1/transactions?limit=5&page=3&snapshot={token2}"),
    )
    .await;
    assert_eq!(ids(&page3), all[10..]);
    // Random access (no resume hint for page 3 in the first token) finds the same page.
    let (_, page3b) = get(
        &r,
        &format!("/api/v1/transactions?limit=5&page=3&snapshot={token}"),
    )
    .await;
    assert_eq!(ids(&page3b), all[10..]);
    let (_, page4) = get(
        &r,
        &format!("/api/v1/transactions?limit=5&page=4&snapshot={token}"),
    )
    .await;
    assert_eq!(ids(&page4), Vec::<String>::new());
    // Another page size over the same snapshot.
    let (_, p) = get(
        &r,
        &format!("/api/v1/transactions?limit=4&page=2&snapshot={token}"),
    )
    .await;
    assert_eq!(ids(&p), all[4..8]);
    assert_eq!(p["total_pages"], 3);

    // A new snapshot sees the new transactions.
    let (_, fresh) = get(&r, "/api/v1/transactions?limit=1000").await;
    assert_eq!(fresh["total_count"], 14);
    assert_eq!(fresh["total_amount"], "39.00");

    // The closed days wholly inside the window were counted once and kept.
    let kept = env
        .table
        .get(&layout::day_aggregate_key(
            NaiveDate::from_ymd_opt(2025, 3, 4).expect("date"),
        ))
        .await
        .expect("read");
    assert_eq!(kept.and_then(|i| i.n(attr::COUNT)), Some(Decimal::from(3)));

    // A window: only the second day.
    let (_, day2) = get(&r, "/api/v1/transactions?start_timestamp=2025-03-04T00:00:00Z&end_timestamp=2025-03-04T23:59:59Z").await;
    assert_eq!(ids(&day2), all[3..6]);
    assert_eq!(day2["total_amount"], "6.00");
}

#[tokio::test]
async fn a_resumed_page_stops_at_the_snapshot_end() {
    let env = env();
    env.open("a", "100").await;
    env.open("b", "0").await;
    let mut before = Vec::new();
    for amount in ["1", "2", "3"] {
        before.push(
            env.transfer("a", "b", amount, "debit").await["transaction_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
        env.clock.advance(Duration::seconds(1));
    }
    env.settle();
    let r = env.router();
    let (_, page1) = get(&r, "/api/v1/transactions?limit=2").await;
    assert_eq!(ids(&page1), before[..2]);
    // Same day, just after the snapshot: page 2 resumes right after page 1's last item and
    // must stop at the snapshot's end.
    env.transfer("a", "b", "4", "debit").await;
    env.transfer("a", "b", "5", "debit").await;
    env.settle();
    let token = page1["snapshot"].as_str().expect("token");
    let (_, page2) = get(
        &r,
        &format!("/api/v1/transactions?limit=2&page=2&snapshot={token}"),
    )
    .await;
    assert_eq!(ids(&page2), before[2..]);
    assert_eq!(page2["total_amount"], "6.00");
}

#[tokio::test]
async fn the_report_covers_at_most_five_days() {
    let env = env();
    env.open("a", "100").await;
    env.open("b", "0").await;
    let old = env.transfer("a", "b", "1", "debit").await;
    env.clock.advance(Duration::days(5) + Duration::hours(1));
    let recent = env.transfer("a", "b", "2", "debit").await;
    env.settle();
    let (_, report) = get(&env.router(), "/api/v1/transactions").await;
    assert_eq!(
        ids(&report),
        [recent["transaction_id"].as_str().expect("id")]
    );
    assert!(!ids(&report).contains(&old["transaction_id"].as_str().expect("id").to_owned()));
}

#[tokio::test]
async fn report_parameter_errors_name_the_parameter() {
    let env = env();
    let r = env.router();
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("page=0", "page"),
        ("page=-2", "page"),
        ("start_timestamp=yesterday", "start_timestamp"),
        ("start_timestamp=2025-02-20T00:00:00Z", "start_timestamp"),
        ("end_timestamp=2025-03-03T09:00:00", "end_timestamp"),
        (
            "start_timestamp=2025-03-02T00:00:00Z&end_timestamp=2025-03-01T00:00:00Z",
            "end_timestamp",
        ),
        ("snapshot=garbage", "snapshot"),
    ] {
        assert_names(
            get(&r, &format!("/api/v1/transactions?{query}")).await,
            param,
        );
    }
    let (status, body) = get(&r, "/api/v1/transactions?limit=1000&page=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_pages"], 0);
    assert_eq!(body["total_amount"], "0.00");
    // An expired snapshot is refused with a reason.
    let token = body["snapshot"].as_str().expect("token").to_owned();
    env.clock.advance(Duration::hours(2));
    assert_names(
        get(&r, &format!("/api/v1/transactions?snapshot={token}")).await,
        "snapshot",
    );
}

// ---- advances ----------------------------------------------------------------------------------

async fn create_advance(env: &Env, account: &str, amount: &str) -> Value {
    let (status, body) = post(
        &env.router(),
        "/api/v1/advances",
        json!({"account_id": account, "amount": amount}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn instalment_amounts(advance: &Value) -> Vec<(u64, String, String)> {
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

#[tokio::test]
async fn an_advance_credits_the_account_and_schedules_twelve_exact_instalments() {
    let env = env();
    env.open("c", "0").await;
    let advance = create_advance(&env, "c", "100.00").await;
    assert_eq!(env.balance("c").await, dec("100.00"));
    let instalments = instalment_amounts(&advance);
    assert_eq!(instalments.len(), 12);
    let sum: Decimal = instalments.iter().map(|(_, a, _)| dec(a)).sum();
    assert_eq!(sum, dec("100.00"));
    assert_eq!(instalments[0].1, "8.34");
    assert_eq!(instalments[11].1, "8.33");
    assert_eq!(advance["instalments"][0]["due_date"], "2025-03-10");
    assert_eq!(advance["instalments"][11]["due_date"], "2025-05-26");
    assert_eq!(advance["status"], "open");
    assert_eq!(advance["due_amount"], "100.00");

    let id = advance["advance_id"].as_str().expect("id");
    let (status, read) = get(&env.router(), &format!("/api/v1/advances/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, advance);
    let (status, _) = get(&env.router(), "/api/v1/advances/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The disbursement is a bank credit in the report.
    env.settle();
    let (_, report) = get(&env.router(), "/api/v1/transactions").await;
    assert_eq!(
        ids(&report),
        [advance["disbursement_transaction_id"].as_str().expect("id")]
    );
    assert_eq!(report["transactions"][0]["kind"], "bank");
    assert_eq!(report["transactions"][0]["direction"], "credit");

    let r = env.router();
    let (status, _) = post(
        &r,
        "/api/v1/advances",
        json!({"account_id": "ghost", "amount": "50"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_names(
        post(
            &r,
            "/api/v1/advances",
            json!({"account_id": "c", "amount": "0.11"}),
        )
        .await,
        "amount",
    );
    assert_names(
        post(
            &r,
            "/api/v1/advances",
            json!({"account_id": "c", "amount": "1.005"}),
        )
        .await,
        "amount",
    );
    assert_names(
        post(&r, "/api/v1/advances", json!({"amount": "10"})).await,
        "account_id",
    );

    // With a key, a retried creation is one advance and one credit.
    let body = json!({"account_id": "c", "amount": "12.00"});
    let (_, _, a1) = post_with_key(&r, "/api/v1/advances", body.clone(), "adv-1").await;
    let (_, h2, a2) = post_with_key(&r, "/api/v1/advances", body, "adv-1").await;
    assert_eq!(a1, a2);
    assert_eq!(
        h2.get("idempotent-replayed").map(String::as_str),
        Some("true")
    );
    assert_eq!(env.balance("c").await, dec("112.00"));
}

fn sqs_event(messages: &[payops_app::ports::ReceivedMessage]) -> SqsEvent {
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
    event
}

/// Delivers every visible message to `worker` as SQS would, deleting those not reported failed.
/// Returns the ids of failed messages.
async fn drain(queue: &LocalQueue, worker: &Worker) -> Vec<String> {
    let mut failed = Vec::new();
    loop {
        let options = ReceiveOptions {
            max_messages: 10,
            visibility_timeout_seconds: Some(90),
            wait_seconds: 0,
        };
        let messages = queue.receive(options).await.expect("receive");
        if messages.is_empty() {
            return failed;
        }
        let response = worker
            .handle(sqs_event(&messages))
            .await
            .expect("worker handles the batch");
        let failures: HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for m in &messages {
            if failures.contains(&m.message_id) {
                failed.push(m.message_id.clone());
            } else {
                queue.delete(&m.receipt_handle).await.expect("delete");
            }
        }
    }
}

fn tick(at: DateTime<Utc>) -> EventBridgeEvent<Value> {
    let mut event = EventBridgeEvent::<Value>::default();
    event.detail_type = "Scheduled Event".to_owned();
    event.source = "aws.events".to_owned();
    event.time = Some(at);
    event
}

/// One week of collection: move to the next due day, collect, let the worker drain the queue.
async fn collect_week(env: &Env, worker: &Worker) {
    env.clock.advance(Duration::days(7));
    let report = Collector::new(env.state.clone())
        .handle(tick(env.clock.now()))
        .await
        .expect("collector");
    assert!(report["enqueued"].as_u64().is_some(), "{report}");
    assert!(drain(&env.queue, worker).await.is_empty());
}

async fn advance_view(env: &Env, id: &str) -> Value {
    let (status, body) = get(&env.router(), &format!("/api/v1/advances/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn advances_are_collected_weekly_and_failures_roll_forward() {
    let env = env();
    env.open("c", "0").await;
    env.open("shop", "0").await;
    let advance = create_advance(&env, "c", "120.00").await;
    let id = advance["advance_id"].as_str().expect("id").to_owned();
    let worker = Worker::new(env.state.clone());
    // The customer spends everything but 15.00.
    env.transfer("c", "shop", "105.00", "debit").await;

    // Week 1: 10.00 paid (5.00 left).
    collect_week(&env, &worker).await;
    assert_eq!(env.balance("c").await, dec("5.00"));
    // Week 2: 10.00 > 5.00: fails and rolls onto week 3 (20.00).
    collect_week(&env, &worker).await;
    let view = advance_view(&env, &id).await;
    let s = instalment_amounts(&view);
    assert_eq!(s[0], (1, "10.00".into(), "paid".into()));
    assert_eq!(s[1], (2, "10.00".into(), "failed".into()));
    assert_eq!(s[2], (3, "20.00".into(), "due".into()));
    assert_eq!(view["instalments"][1]["rolled_into"], 3);
    assert_eq!(
        env.balance("c").await,
        dec("5.00"),
        "a failed debit takes nothing"
    );

    // Week 3: funded, 20.00 paid.
    env.bank("c", "200.00", "credit").await;
    collect_week(&env, &worker).await;
    assert_eq!(env.balance("c").await, dec("185.00"));
    // Weeks 4–11 pay; week 12 fails: a trailing 13th instalment a week later.
    for _ in 4..=11 {
        collect_week(&env, &worker).await;
    }
    assert_eq!(env.balance("c").await, dec("105.00"));
    env.bank("c", "105.00", "debit").await;
    collect_week(&env, &worker).await;
    let view = advance_view(&env, &id).await;
    let s = instalment_amounts(&view);
    assert_eq!(s.len(), 13);
    assert_eq!(s[11], (12, "10.00".into(), "failed".into()));
    assert_eq!(s[12], (13, "10.00".into(), "due".into()));
    assert_eq!(view["instalments"][12]["due_date"], "2025-06-02");
    assert_eq!(view["status"], "open");
    // Week 13: funded, paid; the advance is repaid, all 120.00 collected exactly once.
    env.bank("c", "10.00", "credit").await;
    collect_week(&env, &worker).await;
    let view = advance_view(&env, &id).await;
    assert_eq!(view["status"], "repaid");
    assert_eq!(view["paid_amount"], "120.00");
    assert_eq!(view["due_amount"], "0.00");
    assert_eq!(env.balance("c").await, dec("0.00"));
    // A duplicate message for a paid instalment does nothing.
    let msg = InstalmentMessage {
        advance_id: id.clone(),
        number: 13,
    };
    assert_eq!(
        worker.process(&msg).await.expect("process"),
        WorkerOutcome::AlreadyClosed
    );
    // Nothing is left to collect, and the audit is clean.
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now() + Duration::days(30))
        .await
        .expect("collect");
    assert_eq!(report.enqueued, 0);
    assert!(
        Auditor::new(env.state.clone())
            .audit_all()
            .await
            .expect("audit")
            .differences
            .is_empty()
    );
}

#[tokio::test]
async fn an_instalment_that_is_not_due_is_not_collected() {
    let env = env();
    env.open("c", "0").await;
    let advance = create_advance(&env, "c", "12.00").await;
    let id = advance["advance_id"].as_str().expect("id").to_owned();
    env.clock.advance(Duration::days(6));
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now())
        .await
        .expect("collect");
    assert_eq!(report.enqueued, 0);
    let msg = InstalmentMessage {
        advance_id: id,
        number: 1,
    };
    assert_eq!(
        Worker::new(env.state.clone())
            .process(&msg)
            .await
            .expect("process"),
        WorkerOutcome::NotDue
    );
    assert_eq!(env.balance("c").await, dec("12.00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_racing_for_one_instalment_debit_it_once() {
    let env = env();
    env.open("c", "0").await;
    let advance = create_advance(&env, "c", "24.00").await;
    let id = advance["advance_id"].as_str().expect("id").to_owned();
    env.clock.advance(Duration::days(7));
    let msg = InstalmentMessage {
        advance_id: id.clone(),
        number: 1,
    };
    let mut paid = 0;
    for _ in 0..5 {
        let (a, b) = (
            Worker::new(env.state.clone()),
            Worker::new(env.state.clone()),
        );
        let (ra, rb) = tokio::join!(a.process(&msg), b.process(&msg));
        for outcome in [ra.expect("worker a"), rb.expect("worker b")] {
            match outcome {
                WorkerOutcome::Paid { .. } => paid += 1,
                WorkerOutcome::Leased | WorkerOutcome::AlreadyClosed => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    }
    assert_eq!(paid, 1, "exactly one worker paid the instalment");
    assert_eq!(
        env.balance("c").await,
        dec("22.00"),
        "instalment 1 (2.00) debited exactly once"
    );
    let view = advance_view(&env, &id).await;
    assert_eq!(view["instalments"][0]["status"], "paid");
    assert_eq!(
        view["instalments"][0]["attempts"], 1,
        "only one claim succeeded"
    );
}

#[tokio::test]
async fn a_worker_crash_between_debit_and_status_is_safe_after_the_lease_expires() {
    let env = env();
    env.open("c", "0").await;
    let advance = create_advance(&env, "c", "24.00").await;
    let id = advance["advance_id"].as_str().expect("id").to_owned();
    env.clock.advance(Duration::days(7));
    let msg = InstalmentMessage {
        advance_id: id.clone(),
        number: 1,
    };

    // Worker A claims and debits, then "dies" before recording the result.
    let a = Worker::new(env.state.clone());
    let Claim::Claimed(claimed) = a.claim(&msg).await.expect("claim") else {
        panic!("A wins the lease");
    };
    let debit = a.debit(&claimed).await.expect("debit");
    assert_eq!(env.balance("c").await, dec("22.00"));

    // While A's lease lives, nobody else touches the instalment; the collector skips it.
    let b = Worker::new(env.state.clone());
    assert_eq!(
        b.process(&msg).await.expect("process"),
        WorkerOutcome::Leased
    );
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now())
        .await
        .expect("collect");
    assert_eq!((report.enqueued, report.leased), (0, 1));

    // After the lease expires the collector enqueues it again and B settles it by replaying
    // the same debit: the customer is debited once.
    env.clock.advance(Duration::milliseconds(LEASE_MS + 1));
    let report = Collector::new(env.state.clone())
        .collect(env.clock.now())
        .await
        .expect("collect");
    assert_eq!(report.enqueued, 1);
    assert!(drain(&env.queue, &b).await.is_empty());
    assert_eq!(env.balance("c").await, dec("22.00"));
    let view = advance_view(&env, &id).await;
    assert_eq!(view["instalments"][0]["status"], "paid");
    assert_eq!(
        view["instalments"][0]["transaction_id"],
        debit.transaction_id.as_str()
    );
    assert_eq!(view["instalments"][0]["attempts"], 2);

    // A wakes up late: its lease is gone, it changes nothing.
    assert_eq!(
        a.settle(&claimed, &debit).await.expect("settle"),
        WorkerOutcome::LeaseLost
    );
    assert_eq!(env.balance("c").await, dec("22.00"));
}

#[tokio::test]
async fn a_crash_after_a_failed_debit_rolls_forward_once() {
    let env = env();
    env.open("c", "0").await;
    env.open("shop", "0").await;
    let advance = create_advance(&env, "c", "24.00").await;
    let id = advance["advance_id"].as_str().expect("id").to_owned();
    env.transfer("c", "shop", "24.00", "debit").await;
    env.clock.advance(Duration::days(7));
    let msg = InstalmentMessage {
        advance_id: id.clone(),
        number: 1,
    };
    let a = Worker::new(env.state.clone());
    let Claim::Claimed(claimed) = a.claim(&msg).await.expect("claim") else {
        panic!("A wins the lease");
    };
    let failed = a.debit(&claimed).await.expect("debit");
    assert_eq!(
        failed.reason.map(|r| r.as_str()),
        Some("Insufficient funds")
    );
    // Funds arrive before the retry: the recorded first result (failed) still stands.
    env.bank("c", "100.00", "credit").await;
    env.clock.advance(Duration::milliseconds(LEASE_MS + 1));
    let b = Worker::new(env.state.clone());
    assert_eq!(
        b.process(&msg).await.expect("process"),
        WorkerOutcome::RolledForward { into: 2 }
    );
    assert_eq!(
        a.settle(&claimed, &failed).await.expect("settle"),
        WorkerOutcome::LeaseLost
    );
    let s = instalment_amounts(&advance_view(&env, &id).await);
    assert_eq!(s[0], (1, "2.00".into(), "failed".into()));
    assert_eq!(s[1], (2, "4.00".into(), "due".into()));
    assert_eq!(env.balance("c").await, dec("100.00"));
}

#[tokio::test]
async fn the_worker_reports_bad_messages_as_batch_failures() {
    let env = env();
    env.open("c", "0").await;
    let advance = create_advance(&env, "c", "12.00").await;
    let id = advance["advance_id"].as_str().expect("id").to_owned();
    env.clock.advance(Duration::days(7));
    let mut good = SqsMessage::default();
    good.message_id = Some("good".into());
    good.body = Some(json!({"advance_id": id, "number": 1}).to_string());
    let mut bad = SqsMessage::default();
    bad.message_id = Some("bad".into());
    bad.body = Some("{\"advance\":".into());
    let mut event = SqsEvent::default();
    event.records = vec![bad, good];
    let response = Worker::new(env.state.clone())
        .handle(event)
        .await
        .expect("handled");
    let failed: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(failed, ["bad"]);
    assert_eq!(env.balance("c").await, dec("11.00"));
}

#[tokio::test]
async fn the_auditor_finds_a_planted_difference() {
    let env = env();
    env.open("c", "0").await;
    let clean = create_advance(&env, "c", "60.00").await;
    let planted = create_advance(&env, "c", "36.00").await;
    let planted_id = planted["advance_id"].as_str().expect("id").to_owned();
    // Someone edits an instalment behind the flow's back: 0.01 appears from nowhere.
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
    assert_eq!(report["advances_checked"], 2);
    let differences = report["differences"].as_array().expect("a list");
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["advance_id"], planted_id.as_str());
    assert_eq!(differences[0]["difference"], "0.01");
    assert_ne!(differences[0]["advance_id"], clean["advance_id"]);

    let events = env
        .events
        .list(Some(AUDIT_EVENT_SOURCE), 10)
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail_type, AUDIT_EVENT_TYPE);
    assert_eq!(events[0].detail["advance_id"], planted_id.as_str());
    let metric = env
        .metrics
        .sum(METRIC_AUDIT_DIFFERENCES, start())
        .await
        .expect("metrics");
    assert_eq!(metric, Decimal::ONE);
}

fn sample(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_sample_events_drive_the_handlers() {
    let env = env();
    let collector: EventBridgeEvent<Value> =
        serde_json::from_str(&sample("advances-collector.json")).expect("a scheduled event");
    let report = Collector::new(env.state.clone())
        .handle(collector)
        .await
        .expect("collector");
    assert_eq!(report["as_of"], "2025-03-10");
    let auditor: EventBridgeEvent<Value> =
        serde_json::from_str(&sample("advances-auditor.json")).expect("a scheduled event");
    let report = Auditor::new(env.state.clone())
        .handle(auditor)
        .await
        .expect("auditor");
    assert_eq!(report["advances_checked"], 0);
    // Unknown instalments are acknowledged, not retried forever.
    let worker: SqsEvent =
        serde_json::from_str(&sample("advances-worker.json")).expect("an SQS event");
    assert_eq!(worker.records.len(), 2);
    let response = Worker::new(env.state.clone())
        .handle(worker)
        .await
        .expect("worker");
    assert!(response.batch_item_failures.is_empty());
    let api: Value = serde_json::from_str(&sample("accounts-api.json")).expect("an HTTP API event");
    let body: Value =
        serde_json::from_str(api["body"].as_str().expect("a body")).expect("JSON body");
    assert_eq!(body["direction"], "debit");
}
