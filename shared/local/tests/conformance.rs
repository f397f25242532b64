//! The adapter conformance suite against the SQLite adapters, plus what only the local store
//! promises (durability across reopening, ops helpers, S3 event bodies).
//!
//! `cargo test -p payops-local --test conformance`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use payops_app::conformance::Harness;
use payops_app::ports::{
    Blobs, Events, ManualClock, Metrics, OutgoingMessage, Queue, QueueError, ReceiveOptions, Table,
    TableSpec,
};
use payops_local::store::{DeadLetter, LocalStore, QueueConfig};

/// Where every local harness's clock starts.
fn start_time() -> DateTime<Utc> {
    // A valid literal date: `single` cannot fail.
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid start date")
}

struct LocalHarness {
    // Kept so the directory lives as long as the harness.
    _dir: tempfile::TempDir,
    store: LocalStore,
    clock: Arc<ManualClock>,
    next: AtomicU64,
}

impl LocalHarness {
    async fn new() -> LocalHarness {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = LocalStore::open(dir.path(), clock.clone()).expect("open store");
        LocalHarness {
            _dir: dir,
            store,
            clock,
            next: AtomicU64::new(1),
        }
    }

    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[async_trait]
impl Harness for LocalHarness {
    async fn table(&self, spec_indexes: &[&str]) -> Arc<dyn Table> {
        let spec = spec_indexes
            .iter()
            .fold(TableSpec::new(self.unique("table")), |s, i| s.with_index(i));
        self.store.table(spec).expect("table")
    }

    async fn queue(
        &self,
        fifo: bool,
        visibility_timeout_seconds: u32,
        max_receive_count: Option<u32>,
    ) -> (Arc<dyn Queue>, Option<Arc<dyn Queue>>) {
        let suffix = if fifo { ".fifo" } else { "" };
        let name = self.unique("queue");
        let dead_letter = max_receive_count.map(|max_receive_count| {
            let dlq = self
                .store
                .queue(QueueConfig {
                    name: format!("{name}-dlq{suffix}"),
                    fifo,
                    visibility_timeout_seconds,
                    dead_letter: None,
                })
                .expect("dead-letter queue");
            (
                dlq,
                DeadLetter {
                    queue_name: format!("{name}-dlq{suffix}"),
                    max_receive_count,
                },
            )
        });
        let queue = self
            .store
            .queue(QueueConfig {
                name: format!("{name}{suffix}"),
                fifo,
                visibility_timeout_seconds,
                dead_letter: dead_letter.as_ref().map(|(_, d)| d.clone()),
            })
            .expect("queue");
        (queue, dead_letter.map(|(dlq, _)| dlq as Arc<dyn Queue>))
    }

    async fn blobs(&self) -> Arc<dyn Blobs> {
        self.store.blobs(&self.unique("bucket-"))
    }

    async fn events(&self) -> Arc<dyn Events> {
        self.store.events(&self.unique("bus-"))
    }

    async fn metrics(&self) -> Arc<dyn Metrics> {
        self.store.metrics()
    }

    async fn advance_time(&self, seconds: u32) {
        self.clock.advance(Duration::seconds(seconds.into()));
    }
}

payops_app::conformance_tests!(LocalHarness::new());

/// What only the local store promises.
mod local_only {
    use aws_lambda_events::event::s3::S3Event;
    use payops_app::ports::{Condition, Event, Key, MetricRecord, Query, UpdateAction};
    use payops_local::blobs::s3_event_key;
    use rust_decimal::Decimal;

    use super::*;

    fn config(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.to_owned(),
            fifo: false,
            visibility_timeout_seconds: 30,
            dead_letter: None,
        }
    }

    async fn receive(q: &dyn Queue) -> Vec<payops_app::ports::ReceivedMessage> {
        q.receive(ReceiveOptions::default()).await.expect("receive")
    }

    #[tokio::test]
    async fn queue_messages_survive_reopening_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(start_time()));
        {
            let store = LocalStore::open(dir.path(), clock.clone()).expect("open");
            let q = store.queue(config("durable")).expect("queue");
            q.send_batch(vec![
                OutgoingMessage::new("kept"),
                OutgoingMessage::new("in flight"),
            ])
            .await
            .expect("send");
            let got = q
                .receive(ReceiveOptions {
                    max_messages: 1,
                    ..Default::default()
                })
                .await
                .expect("receive");
            assert_eq!(got.len(), 1);
        }
        let store = LocalStore::open(dir.path(), clock.clone()).expect("reopen");
        let q = store.queue(config("durable")).expect("queue again");
        assert_eq!(q.total_messages().await.expect("count"), 2);
        let visible = receive(&*q).await;
        assert_eq!(visible.len(), 1, "the in-flight one stays invisible");
        q.delete(&visible[0].receipt_handle).await.expect("delete");
        clock.advance(Duration::seconds(31));
        let back = receive(&*q).await;
        assert_eq!(back.len(), 1, "and comes back after its timeout");
        assert_eq!(back[0].receive_count, 2);
    }

    #[tokio::test]
    async fn table_items_and_indexes_survive_reopening_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(start_time()));
        let k = Key::new("ACCOUNT#1", "BALANCE");
        {
            let store = LocalStore::open(dir.path(), clock.clone()).expect("open");
            let t = store.table(TableSpec::new("accounts")).expect("table");
            t.update(
                &k,
                vec![
                    UpdateAction::add("balance", Decimal::new(1230, 2)),
                    UpdateAction::set("gsi1_pk", "ALL"),
                    UpdateAction::set("gsi1_sk", "ACCOUNT#1"),
                ],
                Some(Condition::ItemNotExists),
            )
            .await
            .expect("create");
        }
        let store = LocalStore::open(dir.path(), clock).expect("reopen");
        // The index is new on this run: its entries are built from the stored items.
        let t = store
            .table(TableSpec::new("accounts").with_index("gsi1"))
            .expect("table with a new index");
        let item = t.get(&k).await.expect("get").expect("item survived");
        assert_eq!(
            item.n("balance").map(|d| d.to_string()),
            Some("12.30".to_owned())
        );
        let page = t
            .query(Query::partition("ALL").on_index("gsi1"))
            .await
            .expect("index query");
        assert_eq!(page.items, vec![item]);
    }

    #[tokio::test]
    async fn stale_receipt_handles_are_rejected_and_deletes_are_idempotent() {
        let h = LocalHarness::new().await;
        let q = h.store.queue(config("stale")).expect("queue");
        q.send_batch(vec![OutgoingMessage::new("m")])
            .await
            .expect("send");
        let first = receive(&*q).await.remove(0);
        q.change_visibility(&first.receipt_handle, 0)
            .await
            .expect("release");
        let second = receive(&*q).await.remove(0);
        assert!(matches!(
            q.delete(&first.receipt_handle).await,
            Err(QueueError::InvalidReceipt)
        ));
        assert!(matches!(
            q.change_visibility(&first.receipt_handle, 0).await,
            Err(QueueError::InvalidReceipt)
        ));
        assert_eq!(q.total_messages().await.expect("count"), 1, "not deleted");
        q.delete(&second.receipt_handle).await.expect("delete");
        q.delete(&second.receipt_handle)
            .await
            .expect("a second delete of the same receipt succeeds, as in SQS");
        assert_eq!(q.total_messages().await.expect("count"), 0);
    }

    #[tokio::test]
    async fn a_batch_delete_answers_each_handle_and_a_stale_one_keeps_its_message() {
        let h = LocalHarness::new().await;
        let q = h.store.queue(config("batch-delete")).expect("queue");
        q.send_batch(vec![
            OutgoingMessage::new("a"),
            OutgoingMessage::new("b"),
            OutgoingMessage::new("c"),
        ])
        .await
        .expect("send");
        let mut got = Vec::new();
        while got.len() < 3 {
            got.extend(receive(&*q).await);
        }
        // "c" is received again: its first handle is stale.
        let c = got.iter().position(|m| m.body == "c").expect("c");
        let stale = got.remove(c);
        q.change_visibility(&stale.receipt_handle, 0)
            .await
            .expect("release");
        let again = receive(&*q).await.remove(0);
        assert_eq!(again.body, "c");

        let handles = vec![
            got[0].receipt_handle.clone(),
            stale.receipt_handle.clone(),
            got[1].receipt_handle.clone(),
            got[0].receipt_handle.clone(),
        ];
        let answers = q.delete_batch(handles).await.expect("batch delete");
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        assert!(matches!(answers[1], Err(QueueError::InvalidReceipt)));
        assert!(answers[3].is_ok(), "deleting twice succeeds, as in SQS");
        assert_eq!(
            q.total_messages().await.expect("count"),
            1,
            "only c is left"
        );
        let too_many = vec![again.receipt_handle.clone(); 11];
        assert!(matches!(
            q.delete_batch(too_many).await,
            Err(QueueError::Invalid(_))
        ));
        assert_eq!(q.total_messages().await.expect("count"), 1);
    }

    #[tokio::test]
    async fn fifo_deduplication_outlives_deletion_for_five_minutes() {
        let h = LocalHarness::new().await;
        let q = h
            .store
            .queue(QueueConfig {
                fifo: true,
                ..config("dedup.fifo")
            })
            .expect("queue");
        let message = |body: &str| OutgoingMessage {
            body: body.to_owned(),
            group_id: Some("g".into()),
            deduplication_id: Some("same".into()),
            ..Default::default()
        };
        let first_id = q.send_batch(vec![message("first")]).await.expect("send");
        let got = receive(&*q).await;
        q.delete(&got[0].receipt_handle).await.expect("delete");
        let again = q.send_batch(vec![message("again")]).await.expect("send");
        assert_eq!(again, first_id, "a duplicate gets the original's id");
        assert!(receive(&*q).await.is_empty(), "dropped after deletion too");
        h.clock.advance(Duration::minutes(5) + Duration::seconds(1));
        q.send_batch(vec![message("later")]).await.expect("send");
        assert_eq!(receive(&*q).await[0].body, "later", "the window has passed");
    }

    #[tokio::test]
    async fn dead_letter_messages_can_be_peeked_and_redriven() {
        let h = LocalHarness::new().await;
        let dlq = h.store.queue(config("work-dlq")).expect("dlq");
        let q = h
            .store
            .queue(QueueConfig {
                dead_letter: Some(DeadLetter {
                    queue_name: "work-dlq".into(),
                    max_receive_count: 1,
                }),
                ..config("work")
            })
            .expect("queue");
        q.send_batch(vec![OutgoingMessage::new("poison")])
            .await
            .expect("send");
        let m = receive(&*q).await.remove(0);
        q.change_visibility(&m.receipt_handle, 0)
            .await
            .expect("release");
        assert!(receive(&*q).await.is_empty(), "moved on this receive");
        let peeked = dlq.peek(10).await.expect("peek");
        assert_eq!(peeked.len(), 1);
        assert_eq!(
            (peeked[0].body.as_str(), peeked[0].message_id.as_str()),
            ("poison", m.message_id.as_str())
        );
        assert_eq!(
            dlq.peek(10).await.expect("peek again").len(),
            1,
            "peek receives nothing"
        );
        assert_eq!(dlq.redrive_all(&q).await.expect("redrive"), 1);
        assert_eq!(dlq.total_messages().await.expect("count"), 0);
        let back = receive(&*q).await;
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].receive_count, 1, "a redriven message starts afresh");
    }

    #[tokio::test]
    async fn an_idle_queue_is_polled_without_a_write() {
        let h = LocalHarness::new().await;
        let q = h.store.queue(config("idle")).expect("queue");
        let counts = || h.store.db().counts();
        let before = counts();
        assert!(receive(&*q).await.is_empty());
        let idle = counts() - before;
        assert_eq!((idle.writes, idle.reads), (0, 1), "{idle:?}");

        q.send_batch(vec![OutgoingMessage::new("m")])
            .await
            .expect("send");
        let m = receive(&*q).await.remove(0);
        // In flight, so not visible: the receive after a delivery goes to the writer and
        // finds nothing; the one after that asks the reader only.
        assert!(receive(&*q).await.is_empty());
        let before = counts();
        assert!(receive(&*q).await.is_empty());
        assert_eq!((counts() - before).writes, 0);

        h.clock.advance(Duration::seconds(31));
        let before = counts();
        let again = receive(&*q).await;
        assert_eq!(again[0].message_id, m.message_id, "visible again, received");
        assert_eq!((counts() - before).writes, 1);
    }

    #[tokio::test]
    async fn a_long_poll_wakes_when_a_message_is_sent() {
        let h = LocalHarness::new().await;
        let q = h.store.queue(config("poll")).expect("queue");
        let poller = {
            let q = Arc::clone(&q);
            tokio::spawn(async move {
                q.receive(ReceiveOptions {
                    max_messages: 1,
                    visibility_timeout_seconds: None,
                    wait_seconds: 20,
                })
                .await
            })
        };
        q.send_batch(vec![OutgoingMessage::new("wake up")])
            .await
            .expect("send");
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), poller)
            .await
            .expect("the long poll returned before its 20 s wait")
            .expect("poller task")
            .expect("receive");
        assert_eq!(got[0].body, "wake up");
    }

    #[tokio::test]
    async fn s3_notifications_are_s3_events_on_the_target_queue() {
        let h = LocalHarness::new().await;
        let q = h.store.queue(config("s3-events")).expect("queue");
        let b = h.store.blobs("data-bucket");
        b.notify_on_create("inbox/", ".csv", q.clone());
        let key = "inbox/relatório de março+1.csv";
        let meta = b
            .put(key, Bytes::from_static(b"a,b\n"), "text/csv")
            .await
            .expect("put");
        b.put("inbox/skip.txt", Bytes::from_static(b"x"), "text/plain")
            .await
            .expect("put outside the suffix");
        b.put("other/skip.csv", Bytes::from_static(b"x"), "text/csv")
            .await
            .expect("put outside the prefix");
        let got = receive(&*q).await;
        assert_eq!(got.len(), 1, "only the matching put is announced");
        let event: S3Event = serde_json::from_str(&got[0].body).expect("an S3Event body");
        let record = &event.records[0];
        assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Put"));
        assert_eq!(record.event_source.as_deref(), Some("aws:s3"));
        assert_eq!(record.s3.bucket.name.as_deref(), Some("data-bucket"));
        assert_eq!(
            record.s3.bucket.arn.as_deref(),
            Some("arn:aws:s3:::data-bucket")
        );
        assert_eq!(record.s3.object.size, Some(4));
        assert_eq!(record.s3.object.e_tag.as_deref(), Some(meta.etag.as_str()));
        assert_eq!(record.event_time, start_time());
        let encoded = record.s3.object.key.as_deref().expect("key");
        assert_eq!(encoded, s3_event_key(key));
        assert_eq!(
            form_decode(encoded),
            key,
            "form-decoding gives the key back"
        );
        let file = b.path_of(key).await.expect("path").expect("exists");
        assert_eq!(
            std::fs::read(file).expect("the body is a plain file"),
            b"a,b\n"
        );
    }

    /// application/x-www-form-urlencoded decoding, as a handler does it.
    fn form_decode(s: &str) -> String {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                    out.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[tokio::test]
    async fn blob_keys_are_checked_and_folder_collisions_are_kept() {
        let h = LocalHarness::new().await;
        let b = h.store.blobs("paths");
        for bad in ["../escape", "a/../../b", "/abs", "a//b", "dir/"] {
            let r = b.put(bad, Bytes::new(), "text/plain").await;
            assert!(
                matches!(r, Err(payops_app::ports::BlobError::Invalid(_))),
                "{bad}: {r:?}"
            );
        }
        // S3 lets a key be an object and a "folder" of others; the local store keeps both.
        b.put("a/b", Bytes::from_static(b"1"), "text/plain")
            .await
            .expect("put a/b");
        b.put("a/b/c", Bytes::from_static(b"2"), "text/plain")
            .await
            .expect("put a/b/c beside a/b");
        b.put("a", Bytes::from_static(b"3"), "text/plain")
            .await
            .expect("put a above both");
        for (key, body) in [("a/b", "1"), ("a/b/c", "2"), ("a", "3")] {
            let got = b.get(key).await.expect("get").expect("exists");
            assert_eq!(got.body, body.as_bytes(), "{key}");
        }
        let plain = b.path_of("a/b").await.expect("path").expect("exists");
        assert_eq!(
            plain,
            b.root().join("a/b"),
            "the first comer keeps the plain path"
        );
        let moved = b.path_of("a/b/c").await.expect("path").expect("exists");
        assert!(
            !moved.starts_with(b.root()),
            "a/b/c went to the conflicts folder"
        );
        b.delete("a/b").await.expect("delete a/b");
        b.put("a/b/c", Bytes::from_static(b"4"), "text/plain")
            .await
            .expect("replace a/b/c");
        let now = b.path_of("a/b/c").await.expect("path").expect("exists");
        assert_eq!(
            now,
            b.root().join("a/b/c"),
            "back on its plain path once free"
        );
        assert!(!moved.exists(), "the old body was removed");
        assert_eq!(
            b.list("a", None).await.expect("list").blobs.len(),
            2,
            "a and a/b/c"
        );
        let bad_bucket = h.store.blobs("Bad_Bucket");
        assert!(bad_bucket.get("x").await.is_err());
    }

    #[tokio::test]
    async fn events_are_stored_listed_and_broadcast() {
        let h = LocalHarness::new().await;
        let bus = h.store.events("payops");
        let mut sub = bus.subscribe();
        let event = |source: &str, n: i64| Event {
            source: source.to_owned(),
            detail_type: "PaymentMissed".to_owned(),
            detail: serde_json::json!({ "n": n }),
        };
        bus.put_events(vec![event("a", 1), event("b", 2), event("a", 3)])
            .await
            .expect("put");
        let all = bus.list(None, 10).await.expect("list");
        let newest_first: Vec<i64> = all.iter().filter_map(|e| e.detail["n"].as_i64()).collect();
        assert_eq!(newest_first, [3, 2, 1]);
        assert_eq!(bus.list(Some("a"), 10).await.expect("list a").len(), 2);
        let first = sub.recv().await.expect("broadcast");
        assert_eq!(first.detail["n"].as_i64(), Some(1));
        assert_eq!(first.time, start_time());
        let lambda = first.to_lambda_event().expect("an EventBridge event");
        assert_eq!(lambda.detail_type, "PaymentMissed");
        assert_eq!(lambda.source, "a");
        let r = bus
            .put_events(vec![Event {
                detail: serde_json::json!([1, 2]),
                ..event("a", 0)
            }])
            .await;
        assert!(r.is_err(), "detail must be an object");
    }

    #[tokio::test]
    async fn metrics_are_queried_and_summed_exactly() {
        let h = LocalHarness::new().await;
        let m = h.store.metrics();
        let record = |value: &str, minute: i64| MetricRecord {
            name: "amount_settled".to_owned(),
            value: Decimal::from_str_exact(value).expect("literal"),
            dimensions: vec![("flow".to_owned(), "payroll".to_owned())],
            time: start_time() + Duration::minutes(minute),
        };
        m.write(vec![
            record("0.10", 0),
            record("0.20", 1),
            record("5.00", -10),
        ])
        .await
        .expect("write");
        let since = m
            .query("amount_settled", start_time())
            .await
            .expect("query");
        assert_eq!(since.len(), 2);
        assert_eq!(
            since[0].dimensions,
            [("flow".to_owned(), "payroll".to_owned())]
        );
        assert_eq!(
            m.sum("amount_settled", start_time())
                .await
                .expect("sum")
                .to_string(),
            "0.30"
        );
    }

    #[tokio::test]
    async fn the_clock_drives_queue_timestamps() {
        let h = LocalHarness::new().await;
        let q = h.store.queue(config("clocked")).expect("queue");
        q.send_batch(vec![OutgoingMessage::new("t")])
            .await
            .expect("send");
        h.clock.advance(Duration::seconds(7));
        assert_eq!(receive(&*q).await[0].sent_at, start_time());
    }
}
