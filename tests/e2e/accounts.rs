//! The bank test, in the style of Jepsen's: many concurrent clients move money between a few
//! accounts of a real `payops up` process over HTTP, the process is killed (`kill -9`) in the
//! middle and restarted on the same data, and the clients retry with the same
//! `Idempotency-Key` until they get an answer. Afterwards:
//!
//! - every key got one answer, however often it was sent (one transaction id per key);
//! - every balance is what the distinct successful answers predict, so no retried key moved
//!   money twice, and the total is the initial total plus the net bank transactions;
//! - no balance read during the run, the restart included, was negative;
//! - the transactions report lists exactly one transaction per key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use payops_e2e::{HttpClient, Server, eventually};
use payops_local::generate::Rng;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::sync::{Notify, watch};

const ACCOUNTS: usize = 8;
/// Small balances against large transfers, so that many transfers fail for lack of funds
/// and the no-negative rule is exercised all the time.
const INITIAL_BALANCE_CENTS: i64 = 10_000;
const CLIENTS: usize = 16;
const OPS_PER_CLIENT: usize = 120;
const OPS_TOTAL: usize = CLIENTS * OPS_PER_CLIENT;
/// The process is killed once this many operations have been answered.
const KILL_AFTER_OPS: usize = OPS_TOTAL * 2 / 5;
const TRANSFER_CENTS_MAX: u64 = 6_000;
const BANK_CENTS_MAX: u64 = 4_000;
/// One operation in this many is a bank transaction; the rest are transfers.
const BANK_EVERY: u64 = 4;
/// One answered operation in this many is sent once more with its key, as a client would
/// after losing a response.
const RESEND_EVERY: u64 = 6;
/// How long one operation may take to get an answer, restarts included.
const ANSWER_TIMEOUT_MS: u64 = 30_000;
/// Longest wait for a new server address after a failed attempt before trying again.
const RETRY_WAIT_MS: u64 = 20;
/// How long the test waits for the kill point to be reached.
const RUN_TIMEOUT_MS: u64 = 40_000;
const TRANSACTION: &str = "/api/v1/transaction";
const BANK_TRANSACTIONS: &str = "/api/v1/bank_transactions";
const REPORT_PAGE_LIMIT: u32 = 1000;

fn account_id(i: usize) -> String {
    format!("jepsen-{i}")
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn dec(v: &Value) -> Decimal {
    let text = v.as_str().expect("amounts are decimal strings");
    Decimal::from_str_exact(text).expect("amounts parse as decimals")
}

/// One operation a client asks for.
#[derive(Debug, Clone)]
enum Op {
    Transfer {
        src: String,
        dst: String,
        amount: Decimal,
        direction: &'static str,
    },
    Bank {
        account: String,
        amount: Decimal,
        direction: &'static str,
    },
}

impl Op {
    fn random(rng: &mut Rng) -> Op {
        let direction = if rng.below(2) == 0 { "debit" } else { "credit" };
        if rng.below(BANK_EVERY) == 0 {
            let amount = cents(1 + rng.below(BANK_CENTS_MAX) as i64);
            return Op::Bank {
                account: account_id(rng.below(ACCOUNTS as u64) as usize),
                amount,
                direction,
            };
        }
        let src = rng.below(ACCOUNTS as u64) as usize;
        let dst = (src + 1 + rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
        Op::Transfer {
            src: account_id(src),
            dst: account_id(dst),
            amount: cents(1 + rng.below(TRANSFER_CENTS_MAX) as i64),
            direction,
        }
    }

    fn path(&self) -> &'static str {
        match self {
            Op::Transfer { .. } => TRANSACTION,
            Op::Bank { .. } => BANK_TRANSACTIONS,
        }
    }

    /// The request body; the amount is a JSON number or a string (the API takes both).
    fn body(&self, as_number: bool) -> Bytes {
        let amount = |a: &Decimal| {
            if as_number {
                a.to_string()
            } else {
                format!("\"{a}\"")
            }
        };
        Bytes::from(match self {
            Op::Transfer {
                src,
                dst,
                amount: a,
                direction,
            } => format!(
                r#"{{"src_account_id":"{src}","dst_account_id":"{dst}","amount":{},"direction":"{direction}"}}"#,
                amount(a)
            ),
            Op::Bank {
                account,
                amount: a,
                direction,
            } => format!(
                r#"{{"dst_account_id":"{account}","amount":{},"direction":"{direction}","reason":"jepsen"}}"#,
                amount(a)
            ),
        })
    }

    /// The balance changes if the operation succeeded.
    fn deltas(&self) -> Vec<(&str, Decimal)> {
        match self {
            Op::Transfer {
                src,
                dst,
                amount,
                direction,
            } => {
                let (payer, payee) = if *direction == "debit" {
                    (src, dst)
                } else {
                    (dst, src)
                };
                vec![(payer.as_str(), -*amount), (payee.as_str(), *amount)]
            }
            Op::Bank {
                account,
                amount,
                direction,
            } => {
                let delta = if *direction == "credit" {
                    *amount
                } else {
                    -*amount
                };
                vec![(account.as_str(), delta)]
            }
        }
    }
}

/// What the clients share.
struct Shared {
    client: HttpClient,
    /// The current server's base URL; it changes when the server restarts.
    urls: watch::Receiver<String>,
    answered: AtomicUsize,
    /// Attempts that failed (connection errors or 5xx) and were retried.
    retried: AtomicUsize,
    kill_point: Notify,
}

/// Sends `op` under `key` until the server answers it; returns the answer's JSON.
async fn answer(
    shared: &Shared,
    urls: &mut watch::Receiver<String>,
    key: &str,
    body: &Bytes,
    path: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_millis(ANSWER_TIMEOUT_MS);
    loop {
        let base = urls.borrow_and_update().clone();
        let result = shared
            .client
            .post_json(
                &format!("{base}{path}"),
                &[("Idempotency-Key", key)],
                body.clone(),
            )
            .await;
        match result {
            Ok(r) if r.status == 201 => return r.json().expect("an answer is JSON"),
            Ok(r) if r.status >= 500 => {}
            Ok(r) => panic!(
                "{path} answered {} for key {key}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(_) => {}
        }
        shared.retried.fetch_add(1, Ordering::Relaxed);
        assert!(Instant::now() < deadline, "no answer for key {key} in time");
        // A new address, or a short pause: whichever comes first.
        let _ = tokio::time::timeout(Duration::from_millis(RETRY_WAIT_MS), urls.changed()).await;
    }
}

/// Every answer a client got: (key, operation, answers to each send of that key).
type Answers = Vec<(String, Op, Vec<Value>)>;

async fn run_client(shared: Arc<Shared>, client: usize) -> Answers {
    let mut rng = Rng::new(0xBA4C_0000 + client as u64);
    let mut urls = shared.urls.clone();
    let mut answers = Vec::with_capacity(OPS_PER_CLIENT);
    for n in 0..OPS_PER_CLIENT {
        let op = Op::random(&mut rng);
        let key = format!("jepsen-c{client}-op{n}");
        let body = op.body(rng.below(2) == 0);
        let mut got = vec![answer(&shared, &mut urls, &key, &body, op.path()).await];
        if rng.below(RESEND_EVERY) == 0 {
            got.push(answer(&shared, &mut urls, &key, &body, op.path()).await);
        }
        if shared.answered.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER_OPS {
            shared.kill_point.notify_one();
        }
        answers.push((key, op, got));
    }
    answers
}

/// Reads every balance over and over until `done`; returns (reads, lowest balance seen).
async fn sample_balances(shared: Arc<Shared>, done: Arc<AtomicBool>) -> (usize, Decimal) {
    let mut urls = shared.urls.clone();
    let (mut reads, mut lowest) = (0usize, Decimal::MAX);
    while !done.load(Ordering::SeqCst) {
        for i in 0..ACCOUNTS {
            let base = urls.borrow_and_update().clone();
            let url = format!("{base}/api/v1/accounts/{}", account_id(i));
            match shared.client.get(&url).await {
                Ok(r) if r.status == 200 => {
                    let balance = dec(&r.json().expect("an account is JSON")["balance"]);
                    lowest = lowest.min(balance);
                    reads += 1;
                }
                // The server is down for a moment during the restart: wait for the new one.
                _ => {
                    let wait = Duration::from_millis(RETRY_WAIT_MS);
                    let _ = tokio::time::timeout(wait, urls.changed()).await;
                }
            }
        }
    }
    (reads, lowest)
}

fn restart(server: Server, dir: PathBuf) -> Server {
    let mut server = server;
    server.kill9();
    Server::start(&dir)
}

/// Checks that an answer says what was asked and returns (transaction id, succeeded).
fn check_answer(key: &str, op: &Op, answer: &Value) -> (String, bool) {
    let status = answer["status"].as_str().expect("status is a string");
    assert!(matches!(status, "success" | "fail"), "{key}: {answer}");
    match op {
        Op::Transfer {
            src,
            dst,
            amount,
            direction,
        } => {
            assert_eq!(answer["src_account_id"], src.as_str(), "{key}");
            assert_eq!(answer["dst_account_id"], dst.as_str(), "{key}");
            assert_eq!(dec(&answer["amount"]), *amount, "{key}");
            assert_eq!(answer["direction"], *direction, "{key}");
        }
        Op::Bank {
            account,
            amount,
            direction,
        } => {
            assert_eq!(answer["dst_account_id"], account.as_str(), "{key}");
            assert_eq!(dec(&answer["amount"]), *amount, "{key}");
            assert_eq!(answer["direction"], *direction, "{key}");
        }
    }
    if status == "fail" {
        // Every account exists, so a failure can only be for lack of funds.
        assert_eq!(answer["reason"], "Insufficient funds", "{key}: {answer}");
    }
    let id = answer["transaction_id"]
        .as_str()
        .expect("transaction_id is a string")
        .to_owned();
    (id, status == "success")
}

/// Pages through one snapshot of the report; returns its transaction ids and total amount.
async fn report(client: &HttpClient, base: &str) -> (Vec<String>, Decimal, u64) {
    let first = client
        .get(&format!(
            "{base}/api/v1/transactions?page=1&limit={REPORT_PAGE_LIMIT}"
        ))
        .await
        .expect("the report answers")
        .json()
        .expect("the report is JSON");
    let total_pages = first["total_pages"].as_u64().expect("total_pages");
    let count = first["total_count"].as_u64().expect("total_count");
    let snapshot = first["snapshot"].as_str().expect("snapshot").to_owned();
    let total = dec(&first["total_amount"]);
    let mut ids = Vec::new();
    let mut page = first;
    for n in 1..=total_pages {
        if n > 1 {
            page = client
                .get(&format!(
                    "{base}/api/v1/transactions?page={n}&limit={REPORT_PAGE_LIMIT}&snapshot={snapshot}"
                ))
                .await
                .expect("the report answers")
                .json()
                .expect("the report is JSON");
        }
        for tx in page["transactions"].as_array().expect("transactions") {
            ids.push(tx["transaction_id"].as_str().expect("id").to_owned());
        }
    }
    (ids, total, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_test_survives_kill_and_restart() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let client = HttpClient::default();
    for i in 0..ACCOUNTS {
        let r = client
            .post_json(
                &format!("{}/api/v1/accounts", server.base_url),
                &[],
                Bytes::from(format!(
                    r#"{{"account_id":"{}","balance":"{}"}}"#,
                    account_id(i),
                    cents(INITIAL_BALANCE_CENTS)
                )),
            )
            .await
            .expect("account created");
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let initial_total = cents(INITIAL_BALANCE_CENTS) * Decimal::from(ACCOUNTS);

    let (url_tx, urls) = watch::channel(server.base_url.clone());
    let shared = Arc::new(Shared {
        client: client.clone(),
        urls,
        answered: AtomicUsize::new(0),
        retried: AtomicUsize::new(0),
        kill_point: Notify::new(),
    });
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_balances(shared.clone(), done.clone()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(run_client(shared.clone(), c)))
        .collect();

    // The crash: kill -9 once enough is answered, restart on the same data, publish the URL.
    tokio::time::timeout(
        Duration::from_millis(RUN_TIMEOUT_MS),
        shared.kill_point.notified(),
    )
    .await
    .expect("the clients reach the kill point in time");
    let retried_before_kill = shared.retried.load(Ordering::SeqCst);
    let data = dir.path().to_owned();
    let server = tokio::task::spawn_blocking(move || restart(server, data))
        .await
        .expect("restart task");
    let answered_at_restart = shared.answered.load(Ordering::SeqCst);
    url_tx.send_replace(server.base_url.clone());

    let mut answers = Answers::new();
    for c in clients {
        answers.extend(c.await.expect("a client task"));
    }
    done.store(true, Ordering::SeqCst);
    let (reads, lowest) = sampler.await.expect("the sampler task");

    // The crash happened in the middle of the run and clients had to retry across it.
    assert!(
        answered_at_restart < OPS_TOTAL,
        "the run ended before the restart"
    );
    let retried = shared.retried.load(Ordering::SeqCst);
    assert!(
        retried > retried_before_kill,
        "no request failed across the kill: the test did not test a crash"
    );
    assert!(reads >= ACCOUNTS, "balances were sampled ({reads} reads)");
    assert!(
        lowest >= Decimal::ZERO,
        "a balance was observed negative: {lowest}"
    );

    // One transaction per key, whatever the number of sends; predict balances from them.
    let mut expected: BTreeMap<String, Decimal> = (0..ACCOUNTS)
        .map(|i| (account_id(i), cents(INITIAL_BALANCE_CENTS)))
        .collect();
    let mut ids = BTreeSet::new();
    let (mut net_bank, mut successful_amount) = (Decimal::ZERO, Decimal::ZERO);
    let (mut succeeded, mut failed, mut resent) = (0usize, 0usize, 0usize);
    for (key, op, got) in &answers {
        let (id, ok) = check_answer(key, op, &got[0]);
        for again in &got[1..] {
            resent += 1;
            assert_eq!(
                again, &got[0],
                "{key}: a resent key answers its first result"
            );
        }
        assert!(ids.insert(id), "{key}: two keys got the same transaction");
        if !ok {
            failed += 1;
            continue;
        }
        succeeded += 1;
        successful_amount += match op {
            Op::Transfer { amount, .. } | Op::Bank { amount, .. } => *amount,
        };
        for (account, delta) in op.deltas() {
            *expected.get_mut(account).expect("a known account") += delta;
        }
        if let Op::Bank { .. } = op {
            net_bank += op.deltas()[0].1;
        }
    }
    assert_eq!(answers.len(), OPS_TOTAL);
    assert!(
        resent > 0 && succeeded > 0 && failed > 0,
        "{succeeded} succeeded, {failed} failed, {resent} resent"
    );

    eprintln!(
        "bank test: {OPS_TOTAL} operations ({succeeded} succeeded, {failed} failed, {resent} \
         resent), killed after {answered_at_restart} answers, {retried} retried attempts, \
         {reads} balance reads (lowest {lowest})"
    );

    let base = server.base_url.clone();
    let mut total = Decimal::ZERO;
    for (account, want) in &expected {
        let r = client
            .get(&format!("{base}/api/v1/accounts/{account}"))
            .await
            .expect("account read");
        assert_eq!(r.status, 200);
        let balance = dec(&r.json().expect("JSON")["balance"]);
        assert_eq!(
            balance, *want,
            "{account}: the distinct results predict {want}"
        );
        assert!(balance >= Decimal::ZERO);
        total += balance;
    }
    assert_eq!(total, initial_total + net_bank, "money is conserved");

    // The report (once the last writes are older than its settle delay) has exactly one
    // transaction per key.
    let (listed, listed_total, count) =
        eventually("the report to include every transaction", || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let (listed, total, count) = report(&client, &base).await;
                (count >= OPS_TOTAL as u64).then_some((listed, total, count))
            }
        })
        .await;
    assert_eq!(count, OPS_TOTAL as u64, "one recorded transaction per key");
    let listed: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(
        listed, ids,
        "the report lists exactly the answered transactions"
    );
    assert_eq!(listed_total, successful_amount);

    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the bank test took {:?}",
        started.elapsed()
    );
}

/// Runs `payops advances audit --json` on `dir`; returns (exit success, report).
fn audit(dir: &std::path::Path) -> (bool, Value) {
    let output = std::process::Command::new(payops_e2e::payops_binary())
        .args(["advances", "audit", "--json", "--data"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("payops advances audit runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "--json prints JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}

/// `payops advances audit`, run beside `payops up`, lists an advance whose instalments no
/// longer sum to its amount and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advances_audit_lists_differences_and_fails() {
    use payops_app::ports::{Clock, SystemClock, UpdateAction};
    use payops_app::resources::{ACCOUNTS_TABLE, Resources};

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let client = HttpClient::default();
    let base = &server.base_url;
    let post = |path: &str, body: &str| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        let body = Bytes::from(body.to_owned());
        async move { client.post_json(&url, &[], body).await }
    };
    let r = post("/api/v1/accounts", r#"{"account_id":"c","balance":"0"}"#)
        .await
        .expect("account");
    assert_eq!(r.status, 201);
    let mut advances = Vec::new();
    for amount in ["100.00", "36.00"] {
        let r = post(
            "/api/v1/advances",
            &format!(r#"{{"account_id":"c","amount":"{amount}"}}"#),
        )
        .await
        .expect("advance");
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let advance = r.json().expect("JSON");
        advances.push(advance["advance_id"].as_str().expect("id").to_owned());
    }

    let (ok, report) = audit(dir.path());
    assert!(ok, "a clean book passes: {report}");
    assert_eq!(report["advances_checked"], 2);
    assert_eq!(report["differences"], serde_json::json!([]));

    // An instalment edited behind the flow's back: 0.01 appears from nowhere.
    let env =
        payops_local::env::LocalEnv::open(dir.path(), Arc::new(SystemClock) as Arc<dyn Clock>)
            .expect("the store opens beside the server");
    let table = env.table(&ACCOUNTS_TABLE).expect("accounts table");
    table
        .update(
            &payops_app::accounts::layout::instalment_key(&advances[1], 4),
            vec![UpdateAction::add(
                payops_app::accounts::layout::attr::AMOUNT,
                cents(1),
            )],
            None,
        )
        .await
        .expect("plant a difference");

    let (ok, report) = audit(dir.path());
    assert!(!ok, "a difference fails the command: {report}");
    let differences = report["differences"].as_array().expect("a list");
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["advance_id"], advances[1].as_str());
    assert_eq!(differences[0]["difference"], "0.01");
}
