//! Payroll disbursement (issue 3) on the AWS adapters against moto: the DynamoDB access
//! patterns the flow relies on — the batch created once by its id and the content-hash claim
//! (`duplicate_of`), batches on `gsi1` newest first, approval under a condition with the
//! workflow's task token completed once, payments written `UNPROCESSED` in chunk
//! transactions (all or nothing, resumable) and enqueued once, party claims that keep
//! provider objects unique under racing workers, payment moves conditional on the status
//! read (idempotency key at the provider, so a redelivery never pays twice), webhook moves
//! with their aggregates, ledger and event marker in one transaction — and S3 (the file,
//! the inbox drop notified through SQS, the reports, the check's report), SQS (the accounts
//! and payments queues, redelivery) and EventBridge (the event the nightly check receives).
//!
//! The workflow is not run here (moto's Step Functions does not invoke Lambdas): its tasks
//! are called in the order the state machine calls them, with a recording `Workflows`. The
//! provider is an in-memory fake, idempotent by key like the real API.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_s3::types::{Event as S3EventType, NotificationConfiguration, QueueConfiguration};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use payops_app::fake_provider::FakeProvider;
use payops_app::fake_workflows::RecordedWorkflows;
use payops_app::handler::{EventHandler, SqsHandler, TaskHandler};
use payops_app::payroll::approve::{self, ApproveRequest};
use payops_app::payroll::batches::{self, BatchStatus, Upload};
use payops_app::payroll::check::provider::{KIND_STATUS, KIND_UNKNOWN};
use payops_app::payroll::materialise::{self, PaymentMessage};
use payops_app::payroll::payments::Executed;
use payops_app::payroll::transitions::{self, PaymentRecord};
use payops_app::payroll::{
    self, AccountsWorker, ConsistencyCheck, Disbursement, InboxHandler, PaymentsWorker, Payroll,
    PayrollAppError, WorkflowTasks, layout, progress, report, webhook,
};
use payops_app::ports::provider::{Payment, PaymentStatus as Wire};
use payops_app::ports::{
    Blobs, Clock, Item, ManualClock, OutgoingMessage, Query, Queue, ReceiveOptions, Table,
};
use payops_aws::{S3Blobs, SqsQueue};
use payops_core::payroll::PaymentStatus;
use payops_core::payroll::eta::ProviderRates;
use payops_core::payroll::generate::{GenerateOptions, generate_xml};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{MotoHarness, unique};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
        .single()
        .expect("valid start time")
}

/// A generated payroll file: `rows` rows, 3 payers, 4 branches, two rows for one employee.
fn file(rows: u32, seed: u64) -> Bytes {
    let options = GenerateOptions {
        rows,
        seed,
        payers: 3,
        branches: 4,
        employees: rows - 1,
        amount_cents: (101, 99_999),
    };
    Bytes::from(generate_xml(&options))
}

// ---------------------------------------------------------------------------------------
// The environment: fresh moto resources per test.

struct Env {
    harness: MotoHarness,
    payroll: Payroll,
    blobs: Arc<S3Blobs>,
    accounts_queue: Arc<SqsQueue>,
    payments_queue: Arc<SqsQueue>,
    workflows: Arc<RecordedWorkflows>,
    provider: Arc<FakeProvider>,
    clock: Arc<ManualClock>,
}

async fn env() -> Env {
    let harness = MotoHarness::new().await;
    let clock = Arc::new(ManualClock::new(start()));
    let table = Arc::new(harness.create_table(&[layout::GSI1]).await);
    let blobs = Arc::new(harness.create_bucket().await);
    let (accounts_queue, _) = harness.create_queue(false, 60, None).await;
    let (payments_queue, _) = harness.create_queue(false, 60, None).await;
    let (accounts_queue, payments_queue) = (Arc::new(accounts_queue), Arc::new(payments_queue));
    let workflows = Arc::new(RecordedWorkflows::default());
    let payroll = Payroll {
        table,
        blobs: blobs.clone(),
        accounts_queue: accounts_queue.clone(),
        payments_queue: payments_queue.clone(),
        workflows: workflows.clone(),
        clock: clock.clone() as Arc<dyn Clock>,
        state_machine: payroll::STATE_MACHINE_LOGICAL_ID.to_owned(),
        rates: ProviderRates {
            account_writes_per_minute: 600,
            payments_per_minute: 3000,
        },
    };
    Env {
        harness,
        payroll,
        blobs,
        accounts_queue,
        payments_queue,
        workflows,
        provider: Arc::new(FakeProvider::new(start())),
        clock,
    }
}

impl Env {
    fn disbursement(&self) -> Disbursement {
        Disbursement {
            payroll: self.payroll.clone(),
            provider: self.provider.clone(),
        }
    }

    fn table(&self) -> &dyn Table {
        self.payroll.table.as_ref()
    }

    async fn upload(&self, body: Bytes, batch_id: Option<String>) -> batches::BatchView {
        batches::upload(
            &self.payroll,
            Upload {
                body,
                file_name: Some("payroll.xml".into()),
                batch_id,
            },
        )
        .await
        .expect("uploaded")
    }

    /// Uploaded, approved and materialised: every payment written and the accounts enqueued.
    async fn approved(&self, rows: u32, seed: u64) -> String {
        let up = self.upload(file(rows, seed), None).await;
        assert_eq!(up.status, BatchStatus::AwaitingApproval);
        let id = up.batch_id;
        approve::approve(&self.payroll, &id, ApproveRequest::default())
            .await
            .expect("approved");
        materialise::materialise(&self.payroll, &id)
            .await
            .expect("materialised");
        id
    }

    /// Approved, every account provisioned and every payment created at the provider.
    async fn sent(&self, rows: u32, seed: u64) -> String {
        let id = self.approved(rows, seed).await;
        let accounts = AccountsWorker::new(self.disbursement());
        assert_eq!(
            drain(&self.accounts_queue, &accounts, ACCOUNTS_BATCH)
                .await
                .1,
            0
        );
        let payments = PaymentsWorker::new(self.disbursement());
        assert_eq!(
            drain(&self.payments_queue, &payments, PAYMENTS_BATCH)
                .await
                .1,
            0
        );
        id
    }

    async fn payments(&self, batch_id: &str) -> Vec<PaymentRecord> {
        report::all_payments(&self.payroll, batch_id)
            .await
            .expect("payments")
            .iter()
            .map(|i| PaymentRecord::from_item(i).expect("a payment"))
            .collect()
    }

    async fn ledger(&self, batch_id: &str) -> Vec<Item> {
        let page = self
            .table()
            .query(Query::partition(layout::ledger_partition(batch_id)))
            .await
            .expect("ledger");
        assert!(page.cursor.is_none(), "one page is enough here");
        page.items
    }

    async fn webhook(&self, event_id: &str, payment: &Payment, status: Wire) -> &'static str {
        let event = self
            .provider
            .report(event_id, payment, status, self.clock.now());
        webhook::handle_event(&self.payroll, &event)
            .await
            .expect("handled")
    }

    async fn check(&self, event: EventBridgeEvent<Value>) -> Value {
        ConsistencyCheck::new(self.disbursement())
            .handle(event)
            .await
            .expect("check ran")
    }
}

fn sqs_event(messages: &[payops_app::ports::ReceivedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut s = SqsMessage::default();
            s.message_id = Some(m.message_id.clone());
            s.body = Some(m.body.clone());
            s
        })
        .collect();
    event
}

/// Accounts messages per event (the function's `BatchSize`; the worker handles them at once).
const ACCOUNTS_BATCH: usize = 10;
/// Payments messages per event: one, so that their transactions do not overlap. moto does
/// not isolate concurrent transactions (a canceled one restores a snapshot of the table
/// that drops the writes of those running beside it, and concurrent `ADD`s can be lost),
/// which real DynamoDB never does; the local tests run the worker's concurrency on SQLite.
const PAYMENTS_BATCH: usize = 1;

/// Delivers a queue to a handler until it is empty, as the Lambda event source does: a
/// handled message is deleted; a failed one is made visible again at once (moto's
/// visibility timeout is real time) and so redelivered. Returns (deliveries, failures).
async fn drain(queue: &SqsQueue, handler: &dyn SqsHandler, batch_size: usize) -> (usize, usize) {
    let (mut delivered, mut failed) = (0, 0);
    loop {
        let messages = queue
            .receive(ReceiveOptions {
                max_messages: batch_size,
                visibility_timeout_seconds: Some(60),
                wait_seconds: 0,
            })
            .await
            .expect("receive");
        if messages.is_empty() {
            return (delivered, failed);
        }
        delivered += messages.len();
        let response = handler.handle(sqs_event(&messages)).await.expect("handled");
        let failures: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        failed += failures.len();
        for m in &messages {
            if failures.contains(&m.message_id) {
                queue
                    .change_visibility(&m.receipt_handle, 0)
                    .await
                    .expect("visible again");
            } else {
                queue.delete(&m.receipt_handle).await.expect("delete");
            }
        }
    }
}

/// Every message on a queue, removed.
async fn take_all(queue: &SqsQueue) -> Vec<payops_app::ports::ReceivedMessage> {
    let mut out = Vec::new();
    loop {
        let messages = queue
            .receive(ReceiveOptions {
                max_messages: 10,
                visibility_timeout_seconds: Some(60),
                wait_seconds: 0,
            })
            .await
            .expect("receive");
        if messages.is_empty() {
            return out;
        }
        for m in &messages {
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
        out.extend(messages);
    }
}

/// Long polls for messages pushed by another service (S3, EventBridge) until one matches;
/// returns every message taken, removed.
async fn receive_until(
    queue: &SqsQueue,
    wanted: impl Fn(&str) -> bool,
) -> Vec<payops_app::ports::ReceivedMessage> {
    let mut out = Vec::new();
    for _ in 0..DELIVERY_POLLS_MAX {
        let messages = queue
            .receive(ReceiveOptions {
                max_messages: 10,
                visibility_timeout_seconds: Some(60),
                wait_seconds: 1,
            })
            .await
            .expect("receive");
        for m in &messages {
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
        let found = messages.iter().any(|m| wanted(&m.body));
        out.extend(messages);
        if found {
            return out;
        }
    }
    panic!("no matching message arrived on {}", queue.name());
}

/// Long polls of one second each before a pushed message counts as lost.
const DELIVERY_POLLS_MAX: usize = 10;

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upload_is_recorded_once_and_the_same_content_again_is_a_duplicate_of_it() {
    let e = env().await;
    let body = file(12, 1);
    let id = batches::derived_batch_id(&["upload", "key-1"]);
    let first = e.upload(body.clone(), Some(id.clone())).await;
    assert_eq!(first.batch_id, id);
    assert_eq!(
        (first.status, first.rows),
        (BatchStatus::AwaitingApproval, 12)
    );
    assert!(first.duplicate_of.is_none());
    // The same request again (a retried upload): the same batch, no second workflow.
    let again = e.upload(body.clone(), Some(id.clone())).await;
    assert_eq!(
        (again.batch_id.as_str(), again.created_at.as_str()),
        (id.as_str(), first.created_at.as_str())
    );
    assert_eq!(*e.workflows.started.lock().unwrap(), vec![id.clone()]);
    // The content hash is claimed by the first batch.
    let hash = e
        .table()
        .get(&layout::hash_key(&batches::content_hash(&body)))
        .await
        .expect("get")
        .expect("hash claimed");
    assert_eq!(hash.s(layout::attr::BATCH_ID), Some(id.as_str()));

    // Another upload of the same content, a second later: its own batch, a duplicate.
    e.clock.advance(chrono::Duration::seconds(1));
    let dup = e.upload(body.clone(), None).await;
    assert_ne!(dup.batch_id, id);
    assert_eq!(dup.duplicate_of.as_deref(), Some(id.as_str()));
    let refused = approve::approve(&e.payroll, &dup.batch_id, ApproveRequest::default()).await;
    assert!(
        matches!(&refused, Err(PayrollAppError::WrongState { reason, .. }) if reason.contains("allow_duplicate")),
        "{refused:?}"
    );
    // A different file is no duplicate.
    e.clock.advance(chrono::Duration::seconds(1));
    let other = e.upload(file(12, 2), None).await;
    assert!(other.duplicate_of.is_none());

    // Listed on gsi1, newest first, in pages.
    let page = batches::list(&e.payroll, 2, None).await.expect("list");
    let ids: Vec<&str> = page.batches.iter().map(|b| b.batch_id.as_str()).collect();
    assert_eq!(ids, [other.batch_id.as_str(), dup.batch_id.as_str()]);
    let rest = batches::list(&e.payroll, 2, page.next_cursor)
        .await
        .expect("next page");
    assert_eq!(rest.batches.len(), 1);
    assert_eq!(rest.batches[0].batch_id, id);
    assert!(rest.next_cursor.is_none());
    // The file and its summary are in S3.
    for key in [batches::file_key(&id), batches::summary_key(&id)] {
        assert!(e.blobs.head(&key).await.expect("head").is_some(), "{key}");
    }
}

#[tokio::test]
async fn a_file_dropped_in_the_inbox_and_notified_twice_becomes_one_batch() {
    let e = env().await;
    let inbox = e
        .harness
        .create_plain_queue(false, None, HashMap::new())
        .await;
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(inbox.arn())
                .events(S3EventType::S3ObjectCreated)
                .build()
                .expect("queue and events are set"),
        )
        .build();
    e.harness
        .env
        .s3()
        .put_bucket_notification_configuration()
        .bucket(e.blobs.bucket())
        .notification_configuration(config)
        .send()
        .await
        .expect("bucket notification to SQS");
    let key = format!("{}{} may.xml", payroll::INBOX_PREFIX, unique("hr"));
    e.blobs
        .put(&key, file(8, 3), "application/xml")
        .await
        .expect("dropped");
    // What S3 sent (a test event first, then the object), delivered, then delivered again.
    let notified = receive_until(&inbox, |b| b.contains("ObjectCreated")).await;
    let handler = InboxHandler::new(e.payroll.clone());
    for _ in 0..2 {
        let response = handler.handle(sqs_event(&notified)).await.expect("handled");
        assert!(response.batch_item_failures.is_empty());
    }
    let list = batches::list(&e.payroll, 10, None).await.expect("list");
    assert_eq!(list.batches.len(), 1, "{list:?}");
    let batch = &list.batches[0];
    assert_eq!(batch.status, BatchStatus::AwaitingApproval);
    assert_eq!(batch.rows, 8);
    assert!(
        batch
            .file_name
            .as_deref()
            .is_some_and(|n| n.ends_with(" may.xml"))
    );
}

#[tokio::test]
async fn a_double_approval_approves_once_and_completes_the_task_token_once() {
    let e = env().await;
    let tasks = WorkflowTasks::new(e.payroll.clone());
    let up = e.upload(file(10, 4), None).await;
    let id = up.batch_id;
    // The workflow's wait task stores its token on the batch.
    let waiting = tasks
        .handle(json!({"action": "await_approval", "batch_id": id, "task_token": "tok-1"}))
        .await
        .expect("waits");
    assert_eq!(waiting["waiting"], true);
    let first = approve::approve(
        &e.payroll,
        &id,
        ApproveRequest {
            approved_by: Some("hr@example.com".into()),
            allow_duplicate: false,
        },
    )
    .await
    .expect("approved");
    assert!(!first.already_approved);
    let estimate = first.estimate.expect("an estimate at approval");
    assert!(estimate.seconds > 0, "{estimate:?}");
    // The double click: told it was approved, nothing changes, the token is not sent again.
    let second = approve::approve(&e.payroll, &id, ApproveRequest::default())
        .await
        .expect("a repeat is fine");
    assert!(second.already_approved);
    assert_eq!(second.batch.approved_by.as_deref(), Some("hr@example.com"));
    assert_eq!(second.batch.approved_at, first.batch.approved_at);
    let succeeded = e.workflows.succeeded.lock().unwrap().clone();
    assert_eq!(succeeded.len(), 1, "{succeeded:?}");
    assert_eq!(succeeded[0].0, "tok-1");
    assert_eq!(succeeded[0].1["approved"], true);

    // Approved before the workflow stored its token: the wait task completes its own.
    let up = e.upload(file(10, 5), None).await;
    approve::approve(&e.payroll, &up.batch_id, ApproveRequest::default())
        .await
        .expect("approved");
    let late = tasks
        .handle(json!({"action": "await_approval", "batch_id": up.batch_id, "task_token": "tok-2"}))
        .await
        .expect("does not wait");
    assert_eq!(late["waiting"], false);
    let tokens: Vec<String> = e
        .workflows
        .succeeded
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(tokens, ["tok-1", "tok-2"]);
}

#[tokio::test]
async fn only_the_current_execution_marks_a_batch_failed_and_each_resume_names_a_new_one() {
    let e = env().await;
    let tasks = WorkflowTasks::new(e.payroll.clone());
    let id = e.approved(10, 6).await;
    let fail = |execution: String, cause: &str| {
        json!({
            "action": "fail", "batch_id": id, "execution": execution,
            "error": { "Error": "Fatal", "Cause": cause }
        })
    };
    let status = || async {
        batches::view_of(&batches::load(&e.payroll, &id).await.unwrap())
            .unwrap()
            .status
    };
    tasks
        .handle(fail(id.clone(), "first"))
        .await
        .expect("marked");
    assert_eq!(status().await, BatchStatus::Failed);

    let resumed = payroll::resume::resume(&e.payroll, &id)
        .await
        .expect("resumed");
    assert_eq!(
        resumed.status,
        BatchStatus::Processing,
        "its payments were written"
    );
    assert_eq!(resumed.failure.as_ref().map(|f| f.resumes), Some(1));
    // The replaced execution's late MarkFailed changes nothing; the current one's does.
    tasks
        .handle(fail(id.clone(), "late"))
        .await
        .expect("ignored");
    assert_eq!(status().await, BatchStatus::Processing);
    tasks
        .handle(fail(format!("{id}-resume-1"), "again"))
        .await
        .expect("marked");
    assert_eq!(status().await, BatchStatus::Failed);
    payroll::resume::resume(&e.payroll, &id)
        .await
        .expect("resumed");
    // Asked twice: the same execution is started again, which starts nothing new.
    payroll::resume::resume(&e.payroll, &id)
        .await
        .expect("the same");
    let started = e.workflows.started.lock().unwrap().clone();
    let resumes: Vec<&String> = started.iter().filter(|n| n.contains("-resume-")).collect();
    assert_eq!(
        resumes,
        [&format!("{id}-resume-1"), &format!("{id}-resume-2")]
    );
}

#[tokio::test]
async fn materialise_writes_every_payment_unprocessed_all_or_nothing_and_enqueues_once() {
    let e = env().await;
    // A batch that is one transaction (10 rows: 39 writes and the chunk marker).
    let up = e.upload(file(10, 6), None).await;
    let id = up.batch_id.clone();
    approve::approve(&e.payroll, &id, ApproveRequest::default())
        .await
        .expect("approved");
    // Something occupies row 10's key: the transaction must write nothing at all.
    let obstacle = layout::payment_key(&id, 10);
    e.table()
        .put(Item::new(&obstacle).with("note", "in the way"), None)
        .await
        .expect("put");
    let failed = materialise::materialise(&e.payroll, &id).await;
    assert!(
        matches!(failed, Err(PayrollAppError::Corrupt(_))),
        "{failed:?}"
    );
    let view = batches::get(&e.payroll, &id).await.expect("batch");
    assert_eq!(view.status, BatchStatus::Approved, "not half-approved");
    let progress = view.progress.expect("an approved batch shows progress");
    assert_eq!(progress.payments, 0, "no aggregate written: {progress:?}");
    assert!(e.ledger(&id).await.is_empty(), "no obligation written");
    for row in 1..10 {
        let p = transitions::read_payment(&e.payroll, &id, row)
            .await
            .expect("read");
        assert!(p.is_none(), "row {row} was written without the others");
    }
    assert_eq!(
        take_all(&e.accounts_queue).await.len(),
        0,
        "nothing enqueued"
    );
    // The obstacle gone, the workflow's retry writes it all.
    e.table().delete(&obstacle, None).await.expect("delete");
    let done = materialise::materialise(&e.payroll, &id)
        .await
        .expect("materialised");
    assert_eq!((done.chunks, done.chunks_skipped), (1, 0), "{done:?}");
    assert_eq!(e.payments(&id).await.len(), 10);
    assert_eq!(e.ledger(&id).await.len(), 10);
    assert_eq!(take_all(&e.accounts_queue).await.len(), 9);

    // 60 rows: more writes than one transaction takes, so several chunks.
    let up = e.upload(file(60, 16), None).await;
    let id = up.batch_id.clone();
    approve::approve(&e.payroll, &id, ApproveRequest::default())
        .await
        .expect("approved");
    let done = materialise::materialise(&e.payroll, &id)
        .await
        .expect("materialised");
    assert!(done.chunks > 1, "{done:?}");
    assert_eq!(done.chunks_skipped, 0, "{done:?}");
    assert_eq!((done.payments, done.employees), (60, 59));
    let payments = e.payments(&id).await;
    assert_eq!(payments.len(), 60);
    assert!(
        payments
            .iter()
            .all(|p| p.status == PaymentStatus::Unprocessed)
    );
    let rows: BTreeSet<u32> = payments.iter().map(|p| p.row).collect();
    assert_eq!(rows, (1..=60).collect());
    let total: Decimal = payments.iter().map(|p| p.amount).sum();
    assert_eq!(total, up.total);
    assert_eq!(e.ledger(&id).await.len(), 60, "one obligation per payment");
    let progress = progress::read(&e.payroll, &id).await.expect("progress");
    assert_eq!((progress.payments, progress.owed_total), (60, up.total));
    assert_eq!(progress.counts.get("unprocessed"), Some(&60));
    let view = batches::get(&e.payroll, &id).await.expect("batch");
    assert_eq!(view.status, BatchStatus::Processing);
    assert_eq!(
        take_all(&e.accounts_queue).await.len(),
        59,
        "one message per employee"
    );
    // Run again (a retried task): every chunk is found written; nothing is enqueued again.
    let again = materialise::materialise(&e.payroll, &id)
        .await
        .expect("again");
    assert_eq!(again.chunks_skipped, again.chunks);
    assert_eq!(take_all(&e.accounts_queue).await.len(), 0);
    assert_eq!(e.payments(&id).await.len(), 60);
}

#[tokio::test]
async fn accounts_are_created_once_each_even_when_two_workers_race_on_them() {
    let e = env().await;
    let id = e.approved(16, 7).await;
    let messages = take_all(&e.accounts_queue).await;
    assert_eq!(messages.len(), 15);
    // Two workers get the same messages at once (a redelivery during a slow first run).
    let (a, b) = (
        AccountsWorker::new(e.disbursement()),
        AccountsWorker::new(e.disbursement()),
    );
    let (ra, rb) = tokio::join!(
        a.handle(sqs_event(&messages)),
        b.handle(sqs_event(&messages))
    );
    assert!(ra.expect("a").batch_item_failures.is_empty());
    assert!(rb.expect("b").batch_item_failures.is_empty());
    // Each provider object exists once: an entity per employee and payer, an account per
    // loan and per payer's bank account.
    let payments = e.payments(&id).await;
    let employees: BTreeSet<&str> = payments.iter().map(|p| p.employee_id.as_str()).collect();
    let payers: BTreeSet<&str> = payments.iter().map(|p| p.source_id.as_str()).collect();
    let loans: BTreeSet<(&str, &str)> = payments
        .iter()
        .map(|p| (p.employee_id.as_str(), p.loan_fingerprint.as_str()))
        .collect();
    assert_eq!(employees.len(), 15);
    let entities = employees.len() + payers.len();
    assert_eq!(e.provider.entity_count(), entities);
    assert_eq!(e.provider.account_count(), loans.len() + payers.len());
    // Our mapping names the provider's objects, one each.
    let mut mapped = BTreeSet::new();
    for p in &payments {
        let key = layout::party_account_key(
            layout::PartyKind::Employee,
            &p.employee_id,
            &p.loan_fingerprint,
        );
        let item = e.table().get(&key).await.expect("get").expect("mapped");
        let acc = payroll::accounts::provider_id_of(Some(&item)).expect("a provider id");
        assert!(acc.starts_with("acc_"), "{acc}");
        mapped.insert(acc);
    }
    assert_eq!(mapped.len(), loans.len(), "one account per loan");
    // Both workers enqueued the payments (duplicates are harmless, see the next test).
    assert_eq!(take_all(&e.payments_queue).await.len(), 2 * 16);

    // A later run for the same employees calls the provider for nothing.
    let calls = e.provider.entity_calls.load(Ordering::SeqCst);
    let r = a.handle(sqs_event(&messages)).await.expect("again");
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(e.provider.entity_calls.load(Ordering::SeqCst), calls);
    // A claim left by a worker that died mid-call expires; the next worker takes it over
    // and the provider's key gives it the object the dead worker made.
    let payer = &payments[0].source_id;
    let entity = layout::entity_key(layout::PartyKind::Payer, payer);
    let before = e.table().get(&entity).await.expect("get").expect("payer");
    let provider_id = payroll::accounts::provider_id_of(Some(&before)).expect("provisioned");
    let dead_until = e.clock.now().timestamp_millis() - 1;
    e.table()
        .put(
            Item::new(&entity)
                .with(layout::attr::CLAIM_STATE, "CLAIMED")
                .with(layout::attr::CLAIMED_UNTIL_MS, dead_until),
            None,
        )
        .await
        .expect("a stale claim");
    let fingerprint = &payments[0].source_fingerprint;
    e.table()
        .delete(
            &layout::party_account_key(layout::PartyKind::Payer, payer, fingerprint),
            None,
        )
        .await
        .expect("account mapping lost");
    let of_payment_0: Vec<_> = messages
        .iter()
        .filter(|m| m.body.contains(&payments[0].employee_id))
        .cloned()
        .collect();
    assert_eq!(of_payment_0.len(), 1);
    let r = a
        .handle(sqs_event(&of_payment_0))
        .await
        .expect("takes over");
    assert!(r.batch_item_failures.is_empty());
    assert!(
        e.provider.entity_calls.load(Ordering::SeqCst) > calls,
        "the expired claim was taken over"
    );
    let after = e.table().get(&entity).await.expect("get").expect("payer");
    assert_eq!(
        payroll::accounts::provider_id_of(Some(&after)),
        Some(provider_id)
    );
    assert_eq!(e.provider.entity_count(), entities, "nothing new");
}

#[tokio::test]
async fn a_redelivered_payment_message_never_pays_twice() {
    let e = env().await;
    let id = e.approved(12, 8).await;
    let accounts = AccountsWorker::new(e.disbursement());
    drain(&e.accounts_queue, &accounts, ACCOUNTS_BATCH).await;
    let payments = PaymentsWorker::new(e.disbursement());
    // The first call reaches the provider and its answer is lost: the message fails, and
    // SQS delivers it again.
    e.provider.lose_next_answer.store(true, Ordering::SeqCst);
    let (delivered, failed) = drain(&e.payments_queue, &payments, PAYMENTS_BATCH).await;
    assert_eq!((delivered, failed), (13, 1));
    let sent = e.provider.in_creation_order();
    assert_eq!(sent.len(), 12, "one provider payment per row");
    let externals: BTreeSet<String> = sent.iter().filter_map(|p| p.external_id.clone()).collect();
    assert_eq!(externals.len(), 12);
    for p in e.payments(&id).await {
        assert_eq!(p.status, PaymentStatus::Processing, "{p:?}");
        let theirs = sent
            .iter()
            .find(|s| s.external_id.as_deref() == Some(p.payment_id.as_str()))
            .expect("at the provider");
        assert_eq!(p.provider_payment_id.as_deref(), Some(theirs.id.as_str()));
    }
    // Every message again: nothing reaches the provider.
    let calls = e.provider.payment_calls.load(Ordering::SeqCst);
    let again: Vec<OutgoingMessage> = (1..=12)
        .map(|row| {
            let m = PaymentMessage {
                batch_id: id.clone(),
                row,
            };
            OutgoingMessage::new(serde_json::to_string(&m).expect("json"))
        })
        .collect();
    e.payments_queue
        .send_batch(again[..10].to_vec())
        .await
        .expect("send");
    e.payments_queue
        .send_batch(again[10..].to_vec())
        .await
        .expect("send");
    assert_eq!(
        drain(&e.payments_queue, &payments, PAYMENTS_BATCH).await,
        (12, 0)
    );
    assert_eq!(e.provider.payment_calls.load(Ordering::SeqCst), calls);
    let msg = PaymentMessage {
        batch_id: id,
        row: 1,
    };
    assert_eq!(
        payments.execute(&msg).await.expect("done"),
        Executed::AlreadyDone
    );
    assert_eq!(e.provider.in_creation_order().len(), 12);
}

#[tokio::test]
async fn webhooks_duplicate_or_reordered_never_move_back_and_count_once() {
    let e = env().await;
    let id = e.sent(10, 9).await;
    let sent = e.provider.in_creation_order();
    let (a, b) = (&sent[0], &sent[1]);
    assert_eq!(e.webhook("evt_a1", a, Wire::Settled).await, "applied");
    assert_eq!(e.webhook("evt_a1", a, Wire::Settled).await, "duplicate");
    assert_eq!(e.webhook("evt_a2", a, Wire::Processing).await, "stale");
    assert_eq!(e.webhook("evt_a3", a, Wire::Reversed).await, "applied");
    assert_eq!(e.webhook("evt_a3", a, Wire::Reversed).await, "duplicate");
    // Reordered: settled first, the earlier steps late.
    assert_eq!(e.webhook("evt_b1", b, Wire::Settled).await, "applied");
    for (n, s) in [Wire::Sent, Wire::Pending, Wire::Processing]
        .into_iter()
        .enumerate()
    {
        assert_eq!(e.webhook(&format!("evt_b2{n}"), b, s).await, "stale");
    }
    // Not ours: acknowledged, nothing moves.
    let mut stranger = b.clone();
    stranger.external_id = Some(layout::payment_id(&id, 9_999));
    assert_eq!(
        e.webhook("evt_x", &stranger, Wire::Failed).await,
        "unknown_payment"
    );

    let status = |p: &Payment| {
        let row = layout::parse_payment_id(p.external_id.as_deref().expect("ours"))
            .expect("a payment id")
            .1;
        let pr = e.payroll.clone();
        let id = id.clone();
        async move {
            transitions::read_payment(&pr, &id, row)
                .await
                .expect("read")
                .expect("exists")
                .status
        }
    };
    assert_eq!(status(a).await, PaymentStatus::Reversed);
    assert_eq!(status(b).await, PaymentStatus::Settled);
    // The aggregates counted each move once.
    let progress = progress::read(&e.payroll, &id).await.expect("progress");
    assert_eq!(progress.counts.get("reversed"), Some(&1), "{progress:?}");
    assert_eq!(progress.counts.get("settled"), Some(&1));
    assert_eq!(progress.counts.get("processing"), Some(&8));
    assert_eq!(progress.paid_total, b.amount.amount());
    let branches: u64 = progress
        .by_branch
        .iter()
        .map(|g| g.count(PaymentStatus::Settled))
        .sum();
    assert_eq!(branches, 1);
    // The ledger: a settled-then-reversed payment has its refund; each transaction once.
    let ledger = e.ledger(&id).await;
    let kinds_of = |p: &Payment| {
        let mut k: Vec<String> = ledger
            .iter()
            .filter(|i| i.s(layout::attr::PAYMENT_ID) == p.external_id.as_deref())
            .map(|i| i.s(layout::attr::KIND).unwrap_or_default().to_owned())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds_of(a).len(), 3, "{:?}", kinds_of(a));
    assert_eq!(kinds_of(b).len(), 2, "{:?}", kinds_of(b));
    // The payment keeps the event of each move, so a redelivery is recognised even after
    // the payment moved further.
    let row_a = layout::parse_payment_id(a.external_id.as_deref().expect("ours"))
        .expect("a payment id")
        .1;
    let record = transitions::read_payment(&e.payroll, &id, row_a)
        .await
        .expect("read")
        .expect("exists");
    assert!(
        record.applied(PaymentStatus::Settled, "evt_a1"),
        "{record:?}"
    );
    assert!(
        record.applied(PaymentStatus::Reversed, "evt_a3"),
        "{record:?}"
    );
    assert_eq!(e.webhook("evt_a1", a, Wire::Settled).await, "duplicate");
}

/// The event EventBridge delivers to the check: a scheduled rule cannot fire on moto, so the
/// same envelope is published on a bus and taken from the rule's SQS target.
async fn scheduled_event(e: &Env, at: DateTime<Utc>) -> EventBridgeEvent<Value> {
    let bus = e.harness.create_event_bus().await;
    let target = e
        .harness
        .create_rule_to_queue(&bus, "payops.schedule")
        .await;
    let eb = e.harness.env.eventbridge();
    eb.put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus.bus_name())
                .source("payops.schedule")
                .detail_type("Scheduled Event")
                .detail("{}")
                .time(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                .build(),
        )
        .send()
        .await
        .expect("published");
    let delivered = receive_until(&target, |b| b.contains("payops.schedule")).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    serde_json::from_str(&delivered[0].body).expect("an EventBridge envelope")
}

#[tokio::test]
async fn the_nightly_check_reconciles_with_the_provider_and_reports_go_to_s3() {
    let e = env().await;
    let id = e.sent(10, 10).await;
    let sent = e.provider.in_creation_order();
    // Every payment settles at the provider; one webhook is lost.
    for (i, p) in sent.iter().enumerate().skip(1) {
        assert_eq!(
            e.webhook(&format!("evt_{i}"), p, Wire::Settled).await,
            "applied"
        );
    }
    e.provider.advance(&sent[0].id, Wire::Settled, start());
    // And the provider has a payment nobody here made.
    let stranger = e.provider.add_foreign(&sent[1], Some("not-ours".into()));
    let tasks = WorkflowTasks::new(e.payroll.clone());
    let progress = tasks
        .handle(json!({"action": "progress", "batch_id": id}))
        .await
        .expect("progress");
    assert_eq!(
        progress["complete"], false,
        "the lost webhook holds the batch"
    );

    let at = start() + chrono::Duration::hours(19);
    let event = scheduled_event(&e, at).await;
    // The run is named after the event's time (moto may stamp its own).
    let ran_at = event.time.expect("EventBridge stamps a time");
    let report = e.check(event).await;
    assert_eq!(report["provider_checked"], true, "{report}");
    assert_eq!(report["provider_payments_listed"], 11);
    assert_eq!(report["corrections_applied"], 1, "{report}");
    let kinds: Vec<&str> = report["differences"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| d["kind"].as_str().expect("a kind"))
        .collect();
    assert_eq!(kinds, [KIND_UNKNOWN, KIND_STATUS], "{report}");
    // The whole report is in S3, named after the run.
    let key = format!(
        "{}{}.json",
        payroll::check::CHECKS_PREFIX,
        ran_at.format("%Y-%m-%dT%H%M%SZ")
    );
    let stored = e
        .blobs
        .get(&key)
        .await
        .expect("get")
        .expect("report written");
    let stored: Value = serde_json::from_slice(&stored.body).expect("json");
    assert_eq!(stored["corrections_applied"], 1);
    assert_eq!(stored["differences"].as_array().map(Vec::len), Some(2));

    // Corrected, the batch completes, and its reports land in S3 adding up to the file.
    let progress = tasks
        .handle(json!({"action": "progress", "batch_id": id}))
        .await
        .expect("progress");
    assert_eq!(progress["complete"], true, "{progress}");
    let finished = tasks
        .handle(json!({"action": "finish", "batch_id": id}))
        .await
        .expect("finished");
    assert_eq!(
        finished["reports"]["keys"].as_array().map(Vec::len),
        Some(3)
    );
    let view = batches::get(&e.payroll, &id).await.expect("batch");
    assert_eq!(view.status, BatchStatus::Completed);
    let prefix = report::reports_prefix(&id);
    let csv = |name: &'static str| {
        let blobs = e.blobs.clone();
        let key = format!("{prefix}{name}");
        async move {
            let blob = blobs.get(&key).await.expect("get").expect("written");
            String::from_utf8(blob.body.to_vec()).expect("utf-8")
        }
    };
    let sources = csv("sources.csv").await;
    let mut lines = sources.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split(',').take(5).collect::<Vec<_>>()),
        Some(vec!["source_id", "payments", "owed", "paid_count", "paid"])
    );
    let (mut count, mut paid) = (0u64, Decimal::ZERO);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        count += f[3].parse::<u64>().expect("paid_count");
        paid += f[4].parse::<Decimal>().expect("paid");
        assert_eq!(f[2], f[4], "owed = paid: {line}");
    }
    assert_eq!((count, paid), (10, view.total));
    assert_eq!(csv("payments.csv").await.lines().count(), 11);
    assert!(!csv("payments.csv").await.contains("PROCESSING"));
    let branches = view.summary.as_ref().map(|s| s.by_branch.len());
    assert_eq!(
        Some(csv("branches.csv").await.lines().count() - 1),
        branches
    );

    // The next night: completed batches are checked too; only the stranger remains.
    let again = scheduled_event(&e, at + chrono::Duration::days(1)).await;
    let report = e.check(again).await;
    assert_eq!(report["corrections_applied"], 0, "{report}");
    assert_eq!(report["difference_count"], 1, "{report}");
    assert_eq!(report["differences"][0]["kind"], KIND_UNKNOWN);
    assert_eq!(report["differences"][0]["subject"], stranger.id.as_str());
}
