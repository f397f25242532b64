//! The local runtime's stand-ins for AWS triggers: queue pollers (partial batch failure as
//! Lambda's event source mapping), schedules (as EventBridge rules) and the inbox (as S3
//! uploads with notifications). Time is a ManualClock; waits are bounded polls, not sleeps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use payops_app::HandlerError;
use payops_app::handler::{EventHandler, SqsHandler};
use payops_app::ports::{Blobs, ManualClock, OutgoingMessage, Queue, ReceiveOptions};
use payops_core::schedule::Schedule;
use payops_local::queue::LocalQueue;
use payops_local::runtime::{inbox, poller, scheduler};
use payops_local::store::{LocalStore, QueueConfig};
use tokio::sync::watch;

const WAIT_MS: u64 = 10_000;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn until<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(what: &str, mut f: F) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: LocalStore,
    clock: Arc<ManualClock>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-11-22T00:00:00Z")));
    let store = LocalStore::open(dir.path(), clock.clone()).unwrap();
    Fixture {
        _dir: dir,
        store,
        clock,
    }
}

fn queue(store: &LocalStore, name: &str) -> Arc<LocalQueue> {
    store
        .queue(QueueConfig {
            name: name.into(),
            fifo: false,
            visibility_timeout_seconds: 30,
            dead_letter: None,
        })
        .unwrap()
}

/// Fails every message whose body contains "fail"; errors the whole batch on "boom".
#[derive(Default)]
struct Picky {
    seen: Mutex<Vec<SqsEvent>>,
}

#[async_trait]
impl SqsHandler for Picky {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        self.seen.lock().unwrap().push(event.clone());
        if event
            .records
            .iter()
            .any(|r| r.body.as_deref() == Some("boom"))
        {
            return Err(HandlerError::Fatal("boom".into()));
        }
        let mut response = SqsBatchResponse::default();
        for r in &event.records {
            if r.body.as_deref().unwrap_or_default().contains("fail") {
                let mut f = BatchItemFailure::default();
                f.item_identifier = r.message_id.clone().unwrap();
                response.batch_item_failures.push(f);
            }
        }
        Ok(response)
    }
}

fn control() -> (
    watch::Sender<bool>,
    watch::Sender<bool>,
    poller::PollerControl,
) {
    let (pause_tx, paused) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    (pause_tx, stop_tx, poller::PollerControl { paused, stop })
}

#[tokio::test]
async fn poller_deletes_all_but_the_reported_failures() {
    let f = fixture();
    let q = queue(&f.store, "work");
    let bodies = ["a", "fail-1", "b", "fail-2", "c"];
    q.send_batch(bodies.iter().map(|b| OutgoingMessage::new(*b)).collect())
        .await
        .unwrap();
    let handler = Arc::new(Picky::default());
    let (_pause, stop, control) = control();
    let task = tokio::spawn(poller::run(
        "picky".into(),
        q.clone(),
        handler.clone(),
        10,
        control,
    ));
    until("the successes to be deleted", || async {
        q.total_messages().await.unwrap() == 2
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();

    let left: Vec<String> = q
        .peek(10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|b| b.starts_with("fail")));
    // The handler got the event Lambda sends.
    let seen = handler.seen.lock().unwrap();
    let record = &seen[0].records[0];
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(record.event_source_arn.as_deref(), Some(q.arn()));
    assert_eq!(
        record
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("1")
    );
}

#[tokio::test]
async fn a_failed_batch_comes_back_after_its_visibility_timeout() {
    let f = fixture();
    let q = queue(&f.store, "work");
    q.send_batch(vec![
        OutgoingMessage::new("boom"),
        OutgoingMessage::new("ok"),
    ])
    .await
    .unwrap();
    let handler = Arc::new(Picky::default());
    let (pause, stop, control) = control();
    let task = tokio::spawn(poller::run(
        "picky".into(),
        q.clone(),
        handler.clone(),
        10,
        control,
    ));
    until("one invocation", || async {
        handler.seen.lock().unwrap().len() == 1
    })
    .await;
    pause.send(true).unwrap();
    // Nothing was deleted, and nothing is visible until the timeout passes.
    assert_eq!(q.total_messages().await.unwrap(), 2);
    assert!(
        q.receive(ReceiveOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    f.clock.advance(chrono::Duration::seconds(31));
    pause.send(false).unwrap();
    until("a second invocation", || async {
        handler.seen.lock().unwrap().len() >= 2
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let second = &handler.seen.lock().unwrap()[1];
    assert!(
        second
            .records
            .iter()
            .all(|r| r.attributes["ApproximateReceiveCount"] == "2")
    );
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<EventBridgeEvent<serde_json::Value>>>,
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError> {
        self.events.lock().unwrap().push(event);
        Ok(serde_json::json!({}))
    }
}

#[tokio::test]
async fn a_schedule_fires_at_its_tick_with_the_tick_as_event_time() {
    let clock = Arc::new(ManualClock::new(t("2026-11-22T00:29:59Z")));
    let recorder = Arc::new(Recorder::default());
    let (stop_tx, stop) = watch::channel(false);
    let schedule = Schedule::parse("cron(30 0 * * ? *)").unwrap();
    let task = tokio::spawn(scheduler::run(
        "report".into(),
        "Nightly".into(),
        schedule,
        recorder.clone(),
        clock.clone(),
        stop,
    ));
    // Not yet: the tick is a second away on the manual clock.
    tokio::task::yield_now().await;
    assert!(recorder.events.lock().unwrap().is_empty());
    clock.advance(chrono::Duration::seconds(1));
    until("the tick", || async {
        !recorder.events.lock().unwrap().is_empty()
    })
    .await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    let events = recorder.events.lock().unwrap();
    assert_eq!(events.len(), 1, "one tick, one run");
    assert_eq!(events[0].time, Some(t("2026-11-22T00:30:00Z")));
    assert_eq!(events[0].detail_type, "Scheduled Event");
    assert_eq!(events[0].source, "aws.events");
}

#[tokio::test]
async fn a_dropped_file_becomes_an_object_and_raises_the_s3_event() {
    let f = fixture();
    let q = queue(&f.store, "inbox-events");
    let blobs = f.store.blobs("payops-local");
    blobs.notify_on_create("inbox/debts/", ".csv", q.clone());
    let data_dir = f.store.dir().to_owned();
    let drop_dir = data_dir.join(inbox::INBOX_DIR).join("debts/acme");
    std::fs::create_dir_all(&drop_dir).unwrap();
    std::fs::write(
        drop_dir.join("may 2026.csv"),
        "client_reference,debtor_name\n",
    )
    .unwrap();
    std::fs::write(drop_dir.join("notes.txt"), "not a debt file").unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(inbox::run(data_dir.clone(), blobs.clone(), stop));
    until("the notification", || async {
        q.total_messages().await.unwrap() == 1
    })
    .await;
    until("both files taken", || async {
        std::fs::read_dir(&drop_dir).unwrap().count() == 0
    })
    .await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();

    let message = q
        .receive(ReceiveOptions::default())
        .await
        .unwrap()
        .remove(0);
    let event: S3Event = serde_json::from_str(&message.body).unwrap();
    let record = &event.records[0];
    let key = record.s3.object.key.clone().unwrap();
    assert_eq!(
        key, "inbox/debts/acme/may+2026.csv",
        "keys arrive URL-encoded, as from S3"
    );
    assert_eq!(record.s3.bucket.name.as_deref(), Some("payops-local"));
    let object = blobs
        .get("inbox/debts/acme/may 2026.csv")
        .await
        .unwrap()
        .expect("the object exists");
    assert_eq!(object.meta.content_type.as_deref(), Some("text/csv"));
    assert!(
        blobs
            .head("inbox/debts/acme/notes.txt")
            .await
            .unwrap()
            .is_some(),
        "every file is uploaded; only .csv notifies"
    );
}

#[tokio::test]
async fn a_scheduled_state_machine_starts_one_execution_per_tick_with_the_event_as_input() {
    use payops_local::runtime::System;
    use payops_local::workflows::ExecutionFilter;
    let f = fixture();
    let (system, _workers) = System::build(f._dir.path(), f.clock.clone()).unwrap();
    let machine = system
        .env
        .template
        .state_machines
        .iter()
        .find(|m| !m.schedules.is_empty())
        .expect("template.yaml schedules at least one state machine")
        .logical_id
        .clone();
    let first = system
        .trigger(&machine, serde_json::json!({}))
        .await
        .unwrap();
    // The same tick again (a restart at the wrong moment): the same execution, not a second.
    let again = system
        .trigger(&machine, serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(first["executionArn"], again["executionArn"]);
    let filter = ExecutionFilter {
        state_machine: Some(machine.clone()),
        ..Default::default()
    };
    let executions = system.executor.list_executions(&filter).await.unwrap();
    assert_eq!(executions.len(), 1, "{executions:?}");
    let id = first["executionArn"].as_str().unwrap();
    let record = system.executor.describe(id).await.unwrap().unwrap();
    assert_eq!(
        record.input["detail-type"], "Scheduled Event",
        "{:?}",
        record.input
    );
    assert_eq!(record.input["time"], "2026-11-22T00:00:00Z");
}
