//! Debt intake (issue 5) on the AWS adapters against moto: the DynamoDB access patterns the
//! pipeline relies on — the batch created once by its id, the client's batches on `gsi1`
//! newest first, sub-batch counters moved once per sub-batch in a transaction, debts keyed by
//! (client, reference) with a condition that admits a redelivery of the same line and refuses
//! any other, rejected lines queried by batch in line order, the file-content claim — and S3
//! ranged reads for splitting, SQS for sub-batches, EventBridge for the notification.
//!
//! The workflow is not run here (moto's Step Functions does not invoke Lambdas): the steps are
//! called in the order the state machine calls them, with a recording `Workflows`.

mod support;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use payops_app::debts::{
    BatchStatus, Debts, DebtsConfig, Register, STATE_MACHINE_LOGICAL_ID, Source, layout,
};
use payops_app::fake_workflows::RecordedWorkflows;
use payops_app::handler::SqsHandler;
use payops_app::ports::{Clock, ManualClock, Queue, ReceiveOptions};
use payops_aws::TimestreamMetrics;
use support::MotoHarness;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 15, 0, 0)
        .single()
        .expect("valid start time")
}

struct Env {
    debts: Debts,
    workflows: Arc<RecordedWorkflows>,
    queue: Arc<payops_aws::SqsQueue>,
}

async fn env() -> Env {
    let harness = MotoHarness::new().await;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(start()));
    let table = Arc::new(harness.create_table(&["gsi1"]).await);
    let blobs = Arc::new(harness.create_bucket().await);
    let (queue, _) = harness.create_queue(false, 60, None).await;
    let queue = Arc::new(queue);
    let events = Arc::new(harness.create_event_bus().await);
    let (database, metrics_table) = harness.create_metrics_table().await;
    let metrics = Arc::new(TimestreamMetrics::new(
        harness.env.timestream().clone(),
        database,
        metrics_table,
    ));
    let workflows = Arc::new(RecordedWorkflows::default());
    let debts = Debts {
        table,
        blobs,
        sub_batches: queue.clone(),
        events,
        metrics,
        workflows: workflows.clone(),
        clock,
        config: DebtsConfig {
            sub_batch_lines: 4,
            state_machine: STATE_MACHINE_LOGICAL_ID.to_owned(),
        },
    };
    Env {
        debts,
        workflows,
        queue,
    }
}

impl Env {
    /// Delivers the sub-batch queue to the register; with `ack: false` messages are left on
    /// the queue (a crash before the delete) and come back after their visibility timeout.
    async fn drain(&self, ack: bool) -> usize {
        let register = Register::new(self.debts.clone());
        let mut delivered = 0;
        loop {
            let messages = self
                .queue
                .receive(ReceiveOptions {
                    max_messages: 10,
                    visibility_timeout_seconds: Some(60),
                    wait_seconds: 0,
                })
                .await
                .expect("receive");
            if messages.is_empty() {
                return delivered;
            }
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
            let response = register.handle(event).await.expect("register handles");
            assert!(response.batch_item_failures.is_empty());
            delivered += messages.len();
            if ack {
                for m in &messages {
                    self.queue.delete(&m.receipt_handle).await.expect("delete");
                }
            }
        }
    }

    async fn put(&self, key: &str, text: &str) {
        self.debts
            .blobs
            .put(key, Bytes::from(text.to_owned()), "text/csv")
            .await
            .expect("put");
    }
}

const HEADER: &str = "client_reference,debtor_name,cpf,amount,missed_date\n";

fn file(refs: &[&str]) -> String {
    let mut out = HEADER.to_owned();
    for r in refs {
        out.push_str(&format!("{r},Ana Lima,529.982.247-25,10.50,2026-01-01\n"));
    }
    out
}

#[tokio::test]
async fn a_batch_runs_on_dynamodb_s3_and_sqs_and_registers_each_debt_once() {
    let e = env().await;
    let text = format!(
        "{}K6,,123,x,2030-01-01\n",
        file(&["K1", "K2", "K3", "K4", "K5", "K1"])
    );
    e.put("inbox/debts/acme/a.csv", &text).await;
    let batch = e
        .debts
        .receive_file(
            "d_a",
            "acme",
            Source::Drop,
            None,
            vec!["inbox/debts/acme/a.csv".into()],
        )
        .await
        .expect("received");
    assert_eq!(batch.status, BatchStatus::Received);
    // Received again (a redelivered S3 event): the same batch, no second execution.
    e.debts
        .receive_file(
            "d_a",
            "acme",
            Source::Drop,
            None,
            vec!["inbox/debts/acme/a.csv".into()],
        )
        .await
        .expect("received again");
    assert_eq!(*e.workflows.started.lock().unwrap(), vec!["d_a".to_owned()]);

    let split = e.debts.split("d_a").await.expect("split");
    assert_eq!((split.lines, split.sub_batches), (7, 2));
    // Handled but not acknowledged: every sub-batch will be delivered again.
    assert_eq!(e.drain(false).await, 2);
    let batch = e.debts.require_batch("d_a").await.expect("batch");
    assert_eq!((batch.processed, batch.sub_batches_done), (7, 2));
    assert_eq!((batch.accepted, batch.rejected), (5, 2));

    // The await step stores the token; everything is registered, so it wakes at once.
    e.debts.store_token("d_a", "token-1").await.expect("await");
    assert_eq!(e.workflows.succeeded.lock().unwrap().len(), 1);

    // Redeliveries change nothing (moto's visibility timeout is real time: force it).
    let handles = e
        .queue
        .receive(ReceiveOptions {
            max_messages: 10,
            visibility_timeout_seconds: Some(0),
            wait_seconds: 0,
        })
        .await
        .expect("receive");
    for m in &handles {
        e.queue
            .change_visibility(&m.receipt_handle, 0)
            .await
            .expect("visible");
    }
    e.drain(true).await;
    let again = e.debts.require_batch("d_a").await.expect("batch");
    assert_eq!((again.processed, again.accepted, again.rejected), (7, 5, 2));

    let done = e.debts.complete("d_a").await.expect("complete");
    assert_eq!(done.status, BatchStatus::CompletedWithErrors);
    let csv = e.debts.rejections_csv("d_a").await.expect("csv");
    let csv = String::from_utf8(csv).expect("utf-8");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "line,field,reason");
    assert_eq!(
        lines[1],
        "7,client_reference,duplicates the client reference of line 2"
    );
    assert!(lines[2..].iter().all(|l| l.starts_with("8,")), "{csv}");
    assert_eq!(lines.len(), 2 + 4, "line 8 has four problems: {csv}");

    // A debt item as DynamoDB holds it.
    let debt = e
        .debts
        .table
        .get(&layout::debt_key("acme", "K3"))
        .await
        .expect("get")
        .expect("registered");
    assert_eq!(debt.s("cpf"), Some("52998224725"));
    assert_eq!(debt.n("amount"), Some(rust_decimal::Decimal::new(1050, 2)));
    assert_eq!(debt.s("batch_id"), Some("d_a"));
}

#[tokio::test]
async fn batches_list_newest_first_and_duplicates_are_refused_across_batches() {
    let e = env().await;
    e.put("debts/uploads/acme/1.csv", &file(&["A1", "A2"]))
        .await;
    e.put("debts/uploads/acme/2.csv", &file(&["A2", "A3"]))
        .await;
    e.put("debts/uploads/acme/3.csv", &file(&["A1", "A2"]))
        .await;
    for (id, key) in [("u_1", "1"), ("u_2", "2"), ("u_3", "3")] {
        e.debts
            .receive_file(
                id,
                "acme",
                Source::Upload,
                Some("default".into()),
                vec![format!("debts/uploads/acme/{key}.csv")],
            )
            .await
            .expect("received");
    }
    e.debts.split("u_1").await.expect("split");
    e.drain(true).await;
    e.debts.split("u_2").await.expect("split");
    e.drain(true).await;
    let second = e.debts.require_batch("u_2").await.expect("batch");
    assert_eq!((second.accepted, second.rejected), (1, 1));
    let csv = String::from_utf8(e.debts.rejections_csv("u_2").await.expect("csv")).expect("utf-8");
    assert!(
        csv.contains(
            "2,client_reference,\"is already registered for this client (batch u_1, line 3)\""
        ),
        "{csv}"
    );
    // Same content as the first file: refused before anything is registered.
    let err = e.debts.split("u_3").await.expect_err("a duplicate");
    assert!(
        err.to_string().contains("batch u_1 had the same content"),
        "{err}"
    );

    let page = e.debts.batches_of("acme", 2, None).await.expect("list");
    let ids: Vec<&str> = page.batches.iter().map(|b| b.batch_id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(page.cursor.is_some());
    let rest = e
        .debts
        .batches_of("acme", 2, page.cursor)
        .await
        .expect("next page");
    assert_eq!(rest.batches.len(), 1);
}

#[tokio::test]
async fn s3_ranged_reads_return_the_asked_bytes() {
    let e = env().await;
    e.put("inbox/debts/acme/r.csv", "0123456789").await;
    let blobs = &e.debts.blobs;
    let part = |o, l| async move { blobs.get_range("inbox/debts/acme/r.csv", o, l).await };
    assert_eq!(
        part(0, 4).await.expect("get").expect("exists"),
        Bytes::from("0123")
    );
    assert_eq!(
        part(8, 10).await.expect("get").expect("exists"),
        Bytes::from("89")
    );
    assert_eq!(
        part(10, 4).await.expect("get").expect("exists"),
        Bytes::new()
    );
    assert!(
        blobs
            .get_range("inbox/debts/acme/none.csv", 0, 4)
            .await
            .expect("get")
            .is_none()
    );
}
