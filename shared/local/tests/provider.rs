//! The payment provider's two adapters against each other on loopback: the HTTP client
//! (`payops_app::provider_http`) and the sandbox (`payops_local::sandbox`), plus the shared
//! rate limiter on the SQLite table. Time is a `ManualClock`: the sandbox's lifecycle, its
//! rate limits and the client's waits all move only when the test moves it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use payops_app::ports::provider::{
    AccountDetails, AccountId, AchAccount, Corporation, CreateAccount, CreateEntity, CreatePayment,
    EntityDetails, IdempotencyKey, Individual, Liability, ListPayments, PageCursor, PaymentId,
    PaymentProvider, PaymentStatus, PostalAddress, ProviderError, RateClass, WebhookEvent, headers,
};
use payops_app::ports::{Clock, ManualClock, TableSpec};
use payops_app::provider_http::HttpProvider;
use payops_app::provider_limiter::{
    Acquire, Backoff, LimitedProvider, ManualSleeper, Rate, RateLimits, SharedLimiter, SplitMix64,
};
use payops_core::webhook_signature;
use payops_core::{Currency, Money, Secret};
use payops_local::client::HttpClient;
use payops_local::sandbox::{self, Lifecycle, PPM, RunningSandbox, Sandbox, SandboxConfig};
use payops_local::store::LocalStore;
use rust_decimal::Decimal;

const SECRET: &str = "whsec_provider_test";
/// Every test finishes well within this; a hang fails instead of blocking CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn config() -> SandboxConfig {
    let mut c = SandboxConfig::new(Secret::new(SECRET.to_owned()));
    c.lifecycle = Lifecycle {
        processing_after_ms: 100,
        sent_after_ms: 200,
        settled_after_ms: 300,
        failure_ppm: 0,
        cancel_ppm: 0,
        reversal_ppm: 0,
        reversed_after_ms: 400,
    };
    c
}

struct Fixture {
    clock: Arc<ManualClock>,
    running: RunningSandbox,
    http: HttpProvider,
}

impl Fixture {
    async fn start(config: SandboxConfig) -> Fixture {
        let clock = Arc::new(ManualClock::new(t0()));
        let key = config.api_key.clone();
        let sandbox = Sandbox::new(config, clock.clone()).unwrap();
        let running = sandbox::serve(sandbox, 0, false).await.unwrap();
        let http = HttpProvider::new(&running.url(), key).unwrap();
        Fixture {
            clock,
            running,
            http,
        }
    }

    fn sandbox(&self) -> &Sandbox {
        &self.running.sandbox
    }

    fn advance_ms(&self, ms: i64) {
        self.clock.advance(chrono::Duration::milliseconds(ms));
    }

    async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).unwrap()
}

fn usd(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::USD).unwrap()
}

async fn accounts(p: &dyn PaymentProvider) -> (AccountId, AccountId) {
    let payer = p
        .create_entity(CreateEntity {
            idempotency_key: Some(key("entity-payer-1")),
            external_id: Some("CORP-1".into()),
            details: EntityDetails::Corporation {
                corporation: Corporation {
                    name: "Dunkin' Donuts".into(),
                    dba: "Dunkin".into(),
                    ein: "12345678".into(),
                    address: PostalAddress {
                        line1: "1 Main St".into(),
                        city: "Boston".into(),
                        state: "MA".into(),
                        zip: "02110".into(),
                    },
                },
            },
        })
        .await
        .unwrap();
    let employee = p
        .create_entity(CreateEntity {
            idempotency_key: Some(key("entity-emp-1")),
            external_id: Some("EMP-1".into()),
            details: EntityDetails::Individual {
                individual: Individual {
                    first_name: Secret::new("Ana".into()),
                    last_name: Secret::new("Lima".into()),
                    date_of_birth: Secret::new(NaiveDate::from_ymd_opt(1990, 1, 31).unwrap()),
                    phone: Secret::new("5550100".into()),
                },
            },
        })
        .await
        .unwrap();
    let source = p
        .create_account(CreateAccount {
            idempotency_key: Some(key("account-payer-1")),
            holder_id: payer.id,
            external_id: Some("CORP-1".into()),
            details: AccountDetails::Ach {
                ach: AchAccount {
                    routing_number: Secret::new("011000015".into()),
                    account_number: Secret::new("000123456789".into()),
                },
            },
        })
        .await
        .unwrap();
    assert_eq!(source.mask, "6789");
    let destination = p
        .create_account(CreateAccount {
            idempotency_key: Some(key("account-emp-1")),
            holder_id: employee.id,
            external_id: Some("EMP-1".into()),
            details: AccountDetails::Liability {
                liability: Liability {
                    plaid_id: "ins_116248".into(),
                    loan_account_number: Secret::new("0099887766".into()),
                },
            },
        })
        .await
        .unwrap();
    (source.id, destination.id)
}

fn payment(k: &str, source: &AccountId, destination: &AccountId, cents: i64) -> CreatePayment {
    CreatePayment {
        idempotency_key: key(k),
        source_id: source.clone(),
        destination_id: destination.clone(),
        amount: usd(cents),
        external_id: Some(k.to_owned()),
        description: None,
    }
}

/// A caller-side limiter on a fresh SQLite table.
fn limiter(clock: Arc<ManualClock>, limits: RateLimits) -> (SharedLimiter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path(), clock.clone()).unwrap();
    let table = store.table(TableSpec::new("limiter")).unwrap();
    (SharedLimiter::new(table, clock, limits), dir)
}

fn limited(
    http: HttpProvider,
    limiter: SharedLimiter,
    sleeper: Arc<ManualSleeper>,
) -> LimitedProvider {
    LimitedProvider::new(
        Arc::new(http),
        limiter,
        Backoff::default(),
        sleeper,
        Arc::new(SplitMix64::seeded(1)),
    )
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_idempotent_replay_returns_the_original_object() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = Fixture::start(config()).await;
        let (src, dst) = accounts(&f.http).await;
        // The same entity key again: the same entity, not a second one.
        let again = f
            .http
            .create_account(CreateAccount {
                idempotency_key: Some(key("account-payer-1")),
                holder_id: payops_app::ports::provider::EntityId::new("ignored"),
                external_id: None,
                details: AccountDetails::Ach {
                    ach: AchAccount {
                        routing_number: Secret::new("011000015".into()),
                        account_number: Secret::new("000123456789".into()),
                    },
                },
            })
            .await;
        assert!(
            matches!(again, Err(ProviderError::Conflict { .. })),
            "same key, different body: {again:?}"
        );
        let first = f
            .http
            .create_payment(payment("pay-b1-1", &src, &dst, 123_456))
            .await
            .unwrap();
        let replay = f
            .http
            .create_payment(payment("pay-b1-1", &src, &dst, 123_456))
            .await
            .unwrap();
        assert_eq!(replay, first);
        assert_eq!(first.amount, usd(123_456));
        assert_eq!(first.status, PaymentStatus::Pending);
        // Different amount under the same key: a conflict, and nothing new is created.
        let conflict = f
            .http
            .create_payment(payment("pay-b1-1", &src, &dst, 999))
            .await;
        assert!(matches!(conflict, Err(ProviderError::Conflict { .. })));
        assert!(!conflict.unwrap_err().is_retryable());
        let stats = f.sandbox().stats();
        assert_eq!(stats.payments_by_status.get("pending"), Some(&1));
        assert_eq!(stats.payments.replayed, 1);
        // The replay says so on the wire.
        let raw = HttpClient::default()
            .post_json(
                &format!("{}/v1/payments", f.running.url()),
                &[
                    ("authorization", "Bearer sk_sandbox_payops"),
                    (headers::IDEMPOTENCY_KEY, "pay-b1-1"),
                ],
                Bytes::from(
                    serde_json::to_vec(&payops_app::ports::provider::PaymentBody::from(&payment(
                        "pay-b1-1", &src, &dst, 123_456,
                    )))
                    .unwrap(),
                ),
            )
            .await
            .unwrap();
        assert_eq!(raw.status, 201);
        assert_eq!(raw.json().unwrap()["id"], first.id.as_str());
        f.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn beyond_the_rate_the_sandbox_answers_429_and_the_client_waits_as_told() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut c = config();
        c.limits = RateLimits {
            payments: Some(Rate::per_min(60, 2)),
            writes: Some(Rate::per_min(600, 10)),
            reads: None,
        };
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        f.http
            .create_payment(payment("p1", &src, &dst, 100))
            .await
            .unwrap();
        f.http
            .create_payment(payment("p2", &src, &dst, 100))
            .await
            .unwrap();
        let refused = f.http.create_payment(payment("p3", &src, &dst, 100)).await;
        assert!(
            matches!(
                refused,
                Err(ProviderError::RateLimited {
                    retry_after_ms: 1000
                })
            ),
            "{refused:?}"
        );
        // The headers as documented.
        let raw = HttpClient::default()
            .request(
                http::Method::POST,
                &format!("{}/v1/payments", f.running.url()),
                &[
                    ("authorization", "Bearer sk_sandbox_payops"),
                    (headers::IDEMPOTENCY_KEY, "p3"),
                ],
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(raw.status, 429);
        assert_eq!(raw.json().unwrap()["error"]["type"], "rate_limited");
        assert_eq!(f.sandbox().stats().payments.rate_limited, 2);
        // Writes are a separate class: still allowed.
        assert_eq!(f.sandbox().stats().writes.rate_limited, 0);

        // The limited client with no caller-side limit meets the 429, waits what the
        // provider said (the sleeper moves the shared clock), and succeeds with the same key.
        let sleeper = Arc::new(ManualSleeper::new(f.clock.clone()));
        let (lim, _dir) = limiter(f.clock.clone(), RateLimits::UNLIMITED);
        let client = limited(f.http.clone(), lim, sleeper.clone());
        let created = client
            .create_payment(payment("p3", &src, &dst, 100))
            .await
            .unwrap();
        assert_eq!(created.external_id.as_deref(), Some("p3"));
        let slept = sleeper.slept();
        assert_eq!(slept.len(), 1, "{slept:?}");
        assert!(
            (1000..=1100).contains(&slept[0]),
            "waited Retry-After plus jitter: {slept:?}"
        );
        assert_eq!(
            f.sandbox().stats().payments_by_status.get("pending"),
            Some(&3)
        );
        f.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn rate_limit_headers_are_on_every_answer() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut c = config();
        c.limits.reads = Some(Rate::per_min(120, 3));
        let f = Fixture::start(c).await;
        // Through hyper directly, to see the headers.
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>();
        let response = client
            .request(
                http::Request::get(format!("{}/v1/payments", f.running.url()))
                    .header("authorization", "Bearer sk_sandbox_payops")
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let h = response.headers();
        assert_eq!(h[headers::RATE_LIMIT_LIMIT], "120");
        assert_eq!(h[headers::RATE_LIMIT_REMAINING], "2");
        // One token is missing at 2 per second: full again within the next second.
        assert_eq!(
            h[headers::RATE_LIMIT_RESET].to_str().unwrap(),
            (t0().timestamp() + 1).to_string()
        );
        let response = client
            .request(
                http::Request::get(format!("{}/v1/payments", f.running.url()))
                    .header("authorization", "Bearer sk_sandbox_payops")
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()[headers::RATE_LIMIT_REMAINING], "1");
        let response = client
            .request(
                http::Request::get(format!("{}/v1/payments", f.running.url()))
                    .header("authorization", "Bearer sk_sandbox_payops")
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()[headers::RATE_LIMIT_REMAINING], "0");
        let response = client
            .request(
                http::Request::get(format!("{}/v1/payments", f.running.url()))
                    .header("authorization", "Bearer sk_sandbox_payops")
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[headers::RETRY_AFTER], "1");
        assert_eq!(response.headers()[headers::RETRY_AFTER_MS], "500");
        f.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_key_and_never_pay_twice() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut c = config();
        c.transient_ppm = PPM / 3;
        // A seed whose failures never run past the client's attempts (deterministic: the
        // sandbox's coin flips and the requests are sequential).
        c.seed = 3;
        let f = Fixture::start(c).await;
        // Accounts with a retrying client too: a third of the requests fail.
        let sleeper = Arc::new(ManualSleeper::new(f.clock.clone()));
        let (lim, _dir) = limiter(f.clock.clone(), RateLimits::UNLIMITED);
        let client = limited(f.http.clone(), lim, sleeper.clone());
        let (src, dst) = accounts(&client).await;
        for i in 0..20 {
            client
                .create_payment(payment(&format!("pay-{i}"), &src, &dst, 100 + i))
                .await
                .unwrap();
        }
        let stats = f.sandbox().stats();
        assert_eq!(
            stats.payments_by_status.get("pending"),
            Some(&20),
            "exactly one payment per key: {stats:?}"
        );
        assert!(stats.payments.injected_failures > 0, "{stats:?}");
        // Some 503s came after the payment was made; the retry got the original back.
        assert!(stats.payments.replayed > 0, "{stats:?}");
        // The bare client reports them as retryable.
        let mut transient = 0;
        for i in 0..20 {
            if let Err(e) = f
                .http
                .create_payment(payment(&format!("pay-{i}"), &src, &dst, 100 + i))
                .await
            {
                assert!(
                    matches!(e, ProviderError::Transient { .. }) && e.is_retryable(),
                    "{e:?}"
                );
                transient += 1;
            }
        }
        assert!(transient > 0);
        assert!(!sleeper.slept().is_empty());
        f.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn payments_settle_or_fail_as_the_clock_moves() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = Fixture::start(config()).await;
        let (src, dst) = accounts(&f.http).await;
        let p = f
            .http
            .create_payment(payment("settles", &src, &dst, 500))
            .await
            .unwrap();
        let status = |f: &Fixture, id: PaymentId| {
            let http = f.http.clone();
            async move { http.get_payment(&id).await.unwrap().status }
        };
        f.sandbox().tick();
        assert_eq!(status(&f, p.id.clone()).await, PaymentStatus::Pending);
        f.advance_ms(99);
        assert_eq!(f.sandbox().tick(), 0);
        f.advance_ms(1);
        assert_eq!(f.sandbox().tick(), 1);
        assert_eq!(status(&f, p.id.clone()).await, PaymentStatus::Processing);
        f.advance_ms(200);
        f.sandbox().tick();
        assert_eq!(status(&f, p.id.clone()).await, PaymentStatus::Sent);
        f.advance_ms(300);
        f.sandbox().tick();
        let settled = f.http.get_payment(&p.id).await.unwrap();
        assert_eq!(settled.status, PaymentStatus::Settled);
        assert_eq!(
            settled.updated_at,
            t0() + chrono::Duration::milliseconds(600)
        );
        assert_eq!(settled.failure_reason, None);
        let unknown = f.http.get_payment(&PaymentId::new("pay_nope")).await;
        assert!(matches!(unknown, Err(ProviderError::NotFound(_))));
        f.stop().await;

        let mut c = config();
        c.lifecycle.failure_ppm = PPM;
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        let p = f
            .http
            .create_payment(payment("fails", &src, &dst, 500))
            .await
            .unwrap();
        // One big step moves through every due change at once.
        f.advance_ms(10_000);
        assert_eq!(f.sandbox().tick(), 2);
        let failed = f.http.get_payment(&p.id).await.unwrap();
        assert_eq!(failed.status, PaymentStatus::Failed);
        assert!(failed.failure_reason.is_some());
        f.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_provider_cancels_pending_payments_and_reverses_settled_ones_when_configured() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut c = config();
        c.lifecycle.cancel_ppm = PPM;
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        let p = f
            .http
            .create_payment(payment("canceled", &src, &dst, 500))
            .await
            .unwrap();
        f.advance_ms(10_000);
        assert_eq!(
            f.sandbox().tick(),
            1,
            "pending → canceled, and nothing after"
        );
        let canceled = f.http.get_payment(&p.id).await.unwrap();
        assert_eq!(canceled.status, PaymentStatus::Canceled);
        assert_eq!(canceled.failure_reason.as_deref(), Some("canceled_by_bank"));
        f.stop().await;

        let mut c = config();
        c.lifecycle.reversal_ppm = PPM;
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        let p = f
            .http
            .create_payment(payment("reversed", &src, &dst, 500))
            .await
            .unwrap();
        // processing at 100, sent at 300, settled at 600: the return comes 400 ms later.
        f.advance_ms(600);
        assert_eq!(f.sandbox().tick(), 3);
        let settled = f.http.get_payment(&p.id).await.unwrap();
        assert_eq!(settled.status, PaymentStatus::Settled);
        f.advance_ms(399);
        assert_eq!(f.sandbox().tick(), 0);
        f.advance_ms(1);
        assert_eq!(f.sandbox().tick(), 1);
        let reversed = f.http.get_payment(&p.id).await.unwrap();
        assert_eq!(reversed.status, PaymentStatus::Reversed);
        assert_eq!(reversed.failure_reason.as_deref(), Some("account_closed"));
        f.stop().await;
    })
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// One delivery as received: the signature header and the raw body.
type Delivered = (Option<String>, Bytes);

/// A test receiver on 127.0.0.1 that records every delivery and fails the first
/// `fail_first` ones with 500.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Delivered>>>,
    fail_first: Arc<Mutex<usize>>,
}

async fn receive(State(r): State<Receiver>, request_headers: HeaderMap, body: Bytes) -> StatusCode {
    {
        let mut fail = r.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let signature = request_headers
        .get(headers::SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    r.received.lock().unwrap().push((signature, body));
    StatusCode::OK
}

async fn start_receiver(
    r: Receiver,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/provider",
        listener.local_addr().unwrap()
    );
    let app = axum::Router::new()
        .route("/webhooks/provider", axum::routing::post(receive))
        .with_state(r);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (url, tx, handle)
}

/// Verifies every delivery's signature at `now` and returns the events.
fn verified(r: &Receiver, now: DateTime<Utc>) -> Vec<WebhookEvent> {
    r.received
        .lock()
        .unwrap()
        .iter()
        .map(|(signature, body)| {
            webhook_signature::verify(
                SECRET.as_bytes(),
                signature.as_deref(),
                body,
                now.timestamp(),
                webhook_signature::TOLERANCE_SECONDS,
            )
            .unwrap();
            serde_json::from_slice(body).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_until_acknowledged() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let receiver = Receiver::default();
        *receiver.fail_first.lock().unwrap() = 1;
        let (url, stop, server) = start_receiver(receiver.clone()).await;
        let mut c = config();
        c.webhooks.concurrency = 1;
        c.webhook_url = Some(url);
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        let p = f
            .http
            .create_payment(payment("hooked", &src, &dst, 700))
            .await
            .unwrap();
        f.advance_ms(100);
        f.sandbox().tick();
        // The first delivery is refused and queued again with backoff.
        assert_eq!(f.sandbox().deliver_due().await, 0);
        assert!(!f.sandbox().outbox_is_empty());
        assert_eq!(f.sandbox().stats().webhooks.failed_attempts, 1);
        f.advance_ms(200);
        f.sandbox().tick(); // sent
        // Only `sent` is due; `processing` waits for its backoff (500 ms after the failure).
        assert_eq!(f.sandbox().deliver_due().await, 1);
        f.advance_ms(300);
        f.sandbox().tick(); // settled
        assert_eq!(f.sandbox().deliver_due().await, 2);
        assert!(f.sandbox().outbox_is_empty());
        let events = verified(&receiver, f.clock.now());
        let statuses: Vec<_> = events.iter().map(|e| e.data.status).collect();
        assert_eq!(
            statuses,
            vec![
                PaymentStatus::Sent,
                PaymentStatus::Processing,
                PaymentStatus::Settled
            ],
            "the retried delivery arrives late: receivers must not rely on order"
        );
        assert!(
            events
                .iter()
                .all(|e| e.data.id == p.id && e.kind == "payment.updated")
        );
        let mut ids: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3);
        // A wrong secret does not verify.
        let (sig, body) = receiver.received.lock().unwrap()[0].clone();
        assert!(
            webhook_signature::verify(
                b"other",
                sig.as_deref(),
                &body,
                f.clock.now().timestamp(),
                300
            )
            .is_err()
        );
        f.stop().await;
        let _ = stop.send(());
        server.await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn webhooks_can_be_duplicated_and_reordered() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let receiver = Receiver::default();
        let (url, stop, server) = start_receiver(receiver.clone()).await;
        let mut c = config();
        c.webhooks.concurrency = 1;
        c.webhooks.duplicate_ppm = PPM;
        c.webhooks.reorder_window_ms = 50;
        c.seed = 7;
        c.webhook_url = Some(url);
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        for i in 0..5 {
            f.http
                .create_payment(payment(&format!("dup-{i}"), &src, &dst, 100))
                .await
                .unwrap();
        }
        f.advance_ms(1_000);
        assert_eq!(f.sandbox().tick(), 15);
        f.advance_ms(50);
        assert_eq!(f.sandbox().deliver_due().await, 30);
        let events = verified(&receiver, f.clock.now());
        assert_eq!(events.len(), 30);
        let mut by_id = std::collections::HashMap::new();
        for e in &events {
            *by_id.entry(e.id.clone()).or_insert(0) += 1;
        }
        assert_eq!(by_id.len(), 15);
        assert!(by_id.values().all(|&n| n == 2), "every event twice");
        // Some payment's statuses arrive out of lifecycle order.
        let out_of_order = events.iter().enumerate().any(|(i, e)| {
            events[i + 1..].iter().any(|later| {
                later.data.id == e.data.id && later.data.status.rank() < e.data.status.rank()
            })
        });
        assert!(out_of_order);
        f.stop().await;
        let _ = stop.send(());
        server.await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn webhooks_can_be_batched_into_signed_arrays_of_events() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let receiver = Receiver::default();
        let (url, stop, server) = start_receiver(receiver.clone()).await;
        let mut c = config();
        c.webhooks.concurrency = 1;
        c.webhooks.events_per_delivery = 4;
        c.webhook_url = Some(url);
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        for i in 0..5 {
            f.http
                .create_payment(payment(&format!("batched-{i}"), &src, &dst, 100))
                .await
                .unwrap();
        }
        f.advance_ms(1_000);
        assert_eq!(f.sandbox().tick(), 15);
        // 15 events, every one counted as delivered, in deliveries of at most 4.
        assert_eq!(f.sandbox().deliver_due().await, 15);
        let deliveries = receiver.received.lock().unwrap().clone();
        assert_eq!(deliveries.len(), 4, "15 events in arrays of 4, 4, 4 and 3");
        let mut events = Vec::new();
        for (signature, body) in &deliveries {
            webhook_signature::verify(
                SECRET.as_bytes(),
                signature.as_deref(),
                body,
                f.clock.now().timestamp(),
                webhook_signature::TOLERANCE_SECONDS,
            )
            .unwrap();
            let batch: Vec<WebhookEvent> = serde_json::from_slice(body).unwrap();
            assert!((3..=4).contains(&batch.len()));
            events.extend(batch);
        }
        let ids: std::collections::BTreeSet<_> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids.len(), 15, "each event once");
        assert!(f.sandbox().outbox_is_empty());
        f.stop().await;
        let _ = stop.send(());
        server.await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn pagination_walks_every_payment_once_in_creation_order() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = Fixture::start(config()).await;
        let (src, dst) = accounts(&f.http).await;
        let mut created = Vec::new();
        for i in 0..7 {
            created.push(
                f.http
                    .create_payment(payment(&format!("page-{i}"), &src, &dst, 100))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = Vec::new();
        loop {
            let page = f
                .http
                .list_payments(ListPayments {
                    limit: 3,
                    cursor: cursor.clone(),
                    status: None,
                })
                .await
                .unwrap();
            pages.push(page.payments.len());
            seen.extend(page.payments.into_iter().map(|p| p.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, vec![3, 3, 1]);
        assert_eq!(seen, created);
        // A status filter.
        f.advance_ms(100);
        f.sandbox().tick();
        let processing = f
            .http
            .list_payments(ListPayments {
                limit: 100,
                cursor: None,
                status: Some(PaymentStatus::Processing),
            })
            .await
            .unwrap();
        assert_eq!(processing.payments.len(), 7);
        assert_eq!(processing.next_cursor, None);
        let bad = f
            .http
            .list_payments(ListPayments {
                limit: 3,
                cursor: Some(PageCursor("garbage".into())),
                status: None,
            })
            .await;
        assert!(
            matches!(&bad, Err(ProviderError::Rejected { field: Some(f), .. }) if f == "cursor"),
            "{bad:?}"
        );
        let too_many = f
            .http
            .list_payments(ListPayments {
                limit: 101,
                cursor: None,
                status: None,
            })
            .await;
        assert!(matches!(too_many, Err(ProviderError::Rejected { .. })));
        f.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_requests_are_rejected_with_the_field() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = Fixture::start(config()).await;
        let (src, dst) = accounts(&f.http).await;
        let cases = [
            (
                payment("bad-1", &AccountId::new("acc_nope"), &dst, 100),
                "source_id",
            ),
            (payment("bad-2", &dst, &src, 100), "source_id"),
            (payment("bad-3", &src, &dst, 0), "amount"),
        ];
        for (request, field) in cases {
            let e = f.http.create_payment(request).await.unwrap_err();
            assert!(
                matches!(&e, ProviderError::Rejected { field: Some(got), .. } if got == field),
                "{e:?}"
            );
            assert!(!e.is_retryable());
        }
        let e = f
            .http
            .create_account(CreateAccount {
                idempotency_key: Some(key("bad-routing")),
                holder_id: payops_app::ports::provider::EntityId::new("ent_nope"),
                external_id: None,
                details: AccountDetails::Ach {
                    ach: AchAccount {
                        routing_number: Secret::new("011000016".into()),
                        account_number: Secret::new("1".into()),
                    },
                },
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::Rejected { field: Some(f), .. } if f == "holder_id"),
            "{e:?}"
        );
        let no_key = f
            .http
            .create_entity(CreateEntity {
                idempotency_key: None,
                external_id: None,
                details: EntityDetails::Individual {
                    individual: Individual {
                        first_name: Secret::new("A".into()),
                        last_name: Secret::new("B".into()),
                        date_of_birth: Secret::new(NaiveDate::from_ymd_opt(1990, 1, 1).unwrap()),
                        phone: Secret::new("1".into()),
                    },
                },
            })
            .await
            .unwrap_err();
        assert!(matches!(no_key, ProviderError::Rejected { .. }));
        let wrong_key = HttpProvider::new(&f.running.url(), Secret::new("sk_wrong".into()))
            .unwrap()
            .get_payment(&PaymentId::new("pay_1"))
            .await
            .unwrap_err();
        assert!(matches!(wrong_key, ProviderError::Unauthorized));
        f.stop().await;
        // Nothing listens any more: a connection failure is transient.
        let gone = f_http_after_stop().await;
        assert!(matches!(gone, ProviderError::Transient { .. }), "{gone:?}");
    })
    .await
    .unwrap();
}

async fn f_http_after_stop() -> ProviderError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    HttpProvider::new(&format!("http://{addr}"), Secret::new("k".into()))
        .unwrap()
        .get_payment(&PaymentId::new("pay_1"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn the_sandbox_keeps_its_books_across_a_restart() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config();
        c.state_file = Some(dir.path().join(sandbox::STATE_FILE_NAME));
        let f = Fixture::start(c.clone()).await;
        let (src, dst) = accounts(&f.http).await;
        let p = f
            .http
            .create_payment(payment("kept", &src, &dst, 100))
            .await
            .unwrap();
        f.stop().await;
        let f = Fixture::start(c).await;
        assert_eq!(f.http.get_payment(&p.id).await.unwrap(), p);
        // The idempotency keys survived too.
        let replay = f
            .http
            .create_payment(payment("kept", &src, &dst, 100))
            .await
            .unwrap();
        assert_eq!(replay.id, p.id);
        // And the lifecycle goes on.
        f.advance_ms(1_000);
        f.sandbox().tick();
        assert_eq!(
            f.http.get_payment(&p.id).await.unwrap().status,
            PaymentStatus::Settled
        );
        f.stop().await;
    })
    .await
    .unwrap();
}

/// Copies the sandbox's files from `from` to `to`: what a crash at this moment leaves.
fn crash_copy(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn after_a_crash_the_sandbox_has_what_it_saved_with_its_undelivered_webhooks() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (live, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut c = config();
        c.state_file = Some(live.path().join(sandbox::STATE_FILE_NAME));
        let f = Fixture::start(c.clone()).await;
        let (src, dst) = accounts(&f.http).await;
        let p = f
            .http
            .create_payment(payment("journaled", &src, &dst, 100))
            .await
            .unwrap();
        f.advance_ms(100);
        assert_eq!(f.sandbox().tick(), 1, "processing, its webhook queued");
        f.sandbox().save().unwrap();
        crash_copy(live.path(), crashed.path());
        // After the crash point: another move, never saved in the crashed copy.
        f.advance_ms(200);
        f.sandbox().tick();
        f.stop().await;

        c.state_file = Some(crashed.path().join(sandbox::STATE_FILE_NAME));
        let receiver = Receiver::default();
        let (url, stop, server) = start_receiver(receiver.clone()).await;
        c.webhook_url = Some(url);
        let f = Fixture::start(c).await;
        let restored = f.http.get_payment(&p.id).await.unwrap();
        assert_eq!(restored.status, PaymentStatus::Processing);
        assert_eq!(restored.id, p.id);
        let replay = f
            .http
            .create_payment(payment("journaled", &src, &dst, 100))
            .await
            .unwrap();
        assert_eq!(replay.id, p.id, "the idempotency key survived");
        assert_eq!(f.sandbox().stats().webhooks.pending, 1);
        // This sandbox's clock starts at t0 again; the webhook was due at t0 + 100 ms.
        f.advance_ms(100);
        assert_eq!(f.sandbox().deliver_due().await, 1);
        let events = verified(&receiver, f.clock.now());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.status, PaymentStatus::Processing);
        // The lifecycle goes on from where it was saved: `sent` is due 200 ms after the
        // `processing` of t0 + 100 ms.
        f.advance_ms(200);
        assert_eq!(f.sandbox().tick(), 1);
        assert_eq!(
            f.http.get_payment(&p.id).await.unwrap().status,
            PaymentStatus::Sent
        );
        f.stop().await;
        let _ = stop.send(());
        server.await.unwrap();
    })
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The shared limiter

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_on_the_sqlite_table_never_exceed_the_rate() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const CALLERS: usize = 8;
        const STEPS: i64 = 40;
        // One token per 100 ms, five at once.
        let rate = Rate::per_min(600, 5);
        let clock = Arc::new(ManualClock::new(t0()));
        let (lim, _dir) = limiter(
            clock.clone(),
            RateLimits {
                payments: Some(rate),
                writes: None,
                reads: None,
            },
        );
        let mut granted_total = 0i64;
        for step in 0..STEPS {
            // Every caller tries three times per step, all at once.
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..CALLERS {
                let lim = lim.clone();
                tasks.spawn(async move {
                    let mut granted = 0;
                    for _ in 0..3 {
                        if lim.try_acquire(RateClass::Payments).await.unwrap() == Acquire::Granted {
                            granted += 1;
                        }
                    }
                    granted
                });
            }
            while let Some(g) = tasks.join_next().await {
                granted_total += g.unwrap();
            }
            // Never more than the burst plus what the elapsed time refilled.
            let allowed = i64::from(rate.burst) + step;
            assert!(
                granted_total <= allowed,
                "step {step}: {granted_total} granted, at most {allowed}"
            );
            clock.advance(chrono::Duration::milliseconds(100));
        }
        // And not starved: contention loses no tokens for long.
        let allowed = i64::from(rate.burst) + STEPS - 1;
        assert!(
            granted_total >= allowed - 2,
            "{granted_total} granted of {allowed}"
        );
        // A caller told to wait is told how long.
        match lim.try_acquire(RateClass::Payments).await.unwrap() {
            Acquire::Granted => {}
            Acquire::Wait { ms } => assert!(ms <= 100, "{ms}"),
        }
        assert_eq!(
            lim.try_acquire(RateClass::Writes).await.unwrap(),
            Acquire::Granted,
            "an unlimited class is always granted"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_limiter_keeps_callers_under_the_sandbox_rate() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let limits = RateLimits {
            payments: Some(Rate::provider_default(600)),
            writes: None,
            reads: None,
        };
        let mut c = config();
        c.limits = limits;
        let f = Fixture::start(c).await;
        let (src, dst) = accounts(&f.http).await;
        let sleeper = Arc::new(ManualSleeper::new(f.clock.clone()));
        let (lim, _dir) = limiter(f.clock.clone(), limits.for_callers());
        let client = limited(f.http.clone(), lim, sleeper.clone());
        for i in 0..60 {
            client
                .create_payment(payment(&format!("paced-{i}"), &src, &dst, 100))
                .await
                .unwrap();
        }
        let stats = f.sandbox().stats();
        assert_eq!(stats.payments.rate_limited, 0, "{stats:?}");
        assert_eq!(stats.payments.accepted, 60);
        // 60 payments at 10 per second after a burst of 8: about 5.2 s of waiting.
        let waited: u64 = sleeper.slept().iter().sum();
        assert!((5_000..=5_400).contains(&waited), "{waited} ms");
        f.stop().await;
    })
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// `payops up`

#[tokio::test]
async fn payops_up_starts_a_sandbox_and_points_the_functions_at_it() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        use payops_app::resources::Resources;
        let dir = tempfile::tempdir().unwrap();
        let options = payops_local::runtime::UpOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
        };
        let provider = payops_local::cli_sandbox::SandboxArgs::from_env().unwrap();
        let running = payops_local::runtime::start_with(
            &options,
            Arc::new(payops_app::ports::SystemClock),
            &provider,
        )
        .await
        .unwrap();
        let sandbox = running.provider_sandbox.as_ref().expect("a sandbox");
        let url = running
            .system
            .env
            .secret(payops_app::ports::provider::PROVIDER_URL_ENV)
            .unwrap();
        assert_eq!(url.expose(), &sandbox.url());
        let http = HttpProvider::from_resources(running.system.env.as_ref()).unwrap();
        let page = http.list_payments(ListPayments::default()).await.unwrap();
        assert!(page.payments.is_empty());
        running.stop().await.unwrap();
    })
    .await
    .unwrap();
}
