//! Adapter-specific tests against moto: what the shared conformance suite cannot express
//! (wire formats, cursors, error mapping, S3 event keys, EventBridge delivery, Step Functions).

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::{Event as S3EventType, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use chrono::Utc;
use payops_app::ports::{
    BlobError, Blobs, Condition, Cursor, Event, Events, EventsError, Item, Key, MetricRecord,
    Metrics, MetricsError, OutgoingMessage, Query, Queue, QueueError, ReceiveOptions, SortKeyRange,
    Table, TableError, UpdateAction, Value, WorkflowError, Workflows, Write,
};
use payops_aws::{
    AwsEnv, DynamoTable, EventBridgeEvents, S3Blobs, SfnWorkflows, SqsQueue, TimestreamMetrics,
    decode_event_key,
};
use rust_decimal::Decimal;
use serde_json::json;
use support::{MotoHarness, unique};

/// Long-poll receives while waiting for an asynchronous delivery (S3 or EventBridge → SQS).
const DELIVERY_POLLS_MAX: usize = 10;
/// How long a Step Functions execution may take to finish after its task token is answered.
const EXECUTION_FINISH_TIMEOUT_MS: u64 = 10_000;
const EXECUTION_POLL_INTERVAL_MS: u64 = 100;
/// A role ARN for state machines (moto checks only its shape).
const SFN_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/payops-sfn";

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("test literal is a decimal")
}

fn item(pk: &str, sk: &str) -> Item {
    Item::new(&Key::new(pk, sk))
}

async fn harness() -> MotoHarness {
    MotoHarness::new().await
}

/// Receives from `queue` (long polls) until a message comes whose body satisfies `wanted`.
async fn receive_matching(queue: &SqsQueue, wanted: impl Fn(&str) -> bool) -> String {
    for _ in 0..DELIVERY_POLLS_MAX {
        let messages = queue
            .receive(ReceiveOptions {
                max_messages: 10,
                visibility_timeout_seconds: None,
                wait_seconds: 1,
            })
            .await
            .expect("receive");
        for m in messages {
            queue.delete(&m.receipt_handle).await.expect("delete");
            if wanted(&m.body) {
                return m.body;
            }
        }
    }
    panic!("no matching message arrived on {}", queue.name());
}

// ---------------------------------------------------------------- AwsEnv::from_env

/// Set for the child process that runs [`from_env_child`].
const FROM_ENV_CHILD_ENV: &str = "PAYOPS_AWS_FROM_ENV_CHILD";

/// `AwsEnv::from_env` in a child process (the environment is process-wide): the endpoint
/// from `AWS_ENDPOINT_URL` (S3 path style, no Timestream endpoint discovery), region and
/// credentials from the usual variables, every resource from its variable in `resources`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_builds_every_adapter_from_the_lambda_environment() {
    use payops_app::resources::{
        DATA_BUCKET_ENV, EVENT_BUS_ENV, METRICS_DATABASE_ENV, METRICS_TABLE_ENV,
        PAYMENT_EVENTS_QUEUE, PAYMENT_EVENTS_TABLE,
    };
    let h = harness().await;
    let table = h.create_table(PAYMENT_EVENTS_TABLE.indexes).await;
    let (queue, _) = h.create_queue(false, 30, None).await;
    let bucket = h.create_bucket().await;
    let bus = h.create_event_bus().await;
    let (database, metrics_table) = h.create_metrics_table().await;
    let exe = std::env::current_exe().expect("the test binary");
    let output = tokio::process::Command::new(exe)
        .args(["from_env_child", "--exact", "--ignored", "--nocapture"])
        .env(FROM_ENV_CHILD_ENV, "1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        // A host name, not an IP: with an IP the SDK picks S3 path style by itself, with a
        // name only `force_path_style` keeps it from asking DNS for `{bucket}.localhost`.
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://localhost:{}", support::moto().port),
        )
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_ENDPOINT_URL_TIMESTREAM_WRITE")
        .env(PAYMENT_EVENTS_TABLE.env_var, &table.spec().name)
        .env(PAYMENT_EVENTS_QUEUE.env_var, queue.url())
        .env(DATA_BUCKET_ENV, bucket.bucket())
        .env(EVENT_BUS_ENV, bus.bus_name())
        .env(METRICS_DATABASE_ENV, &database)
        .env(METRICS_TABLE_ENV, &metrics_table)
        .output()
        .await
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stored_records(&metrics_table).len(),
        1,
        "the child wrote one metric"
    );
    assert_eq!(queue.approximate_depth().await.expect("depth"), 1);
}

/// The child half of the test above; does nothing useful on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by from_env_builds_every_adapter_from_the_lambda_environment in a child process"]
async fn from_env_child() {
    use payops_app::resources::{PAYMENT_EVENTS_QUEUE, PAYMENT_EVENTS_TABLE};
    assert!(
        std::env::var_os(FROM_ENV_CHILD_ENV).is_some(),
        "only meaningful in the child process"
    );
    let env = AwsEnv::from_env().await.expect("from_env");
    let table = env.table(&PAYMENT_EVENTS_TABLE).expect("table");
    assert_eq!(
        table.spec().indexes.len(),
        PAYMENT_EVENTS_TABLE.indexes.len()
    );
    let k = Key::new("ENV", "1");
    table
        .put(Item::new(&k).with("n", 1_i64), None)
        .await
        .expect("put");
    assert!(table.get(&k).await.expect("get").is_some());
    let queue = env.queue(&PAYMENT_EVENTS_QUEUE).expect("queue");
    queue
        .send_batch(vec![OutgoingMessage::new("from env")])
        .await
        .expect("send");
    let blobs = env.blobs().expect("blobs");
    blobs
        .put("env/k", Bytes::from_static(b"v"), "text/plain")
        .await
        .expect("S3 put, path style");
    env.events()
        .expect("events")
        .put_events(vec![Event {
            source: "payops.test".into(),
            detail_type: "FromEnv".into(),
            detail: json!({}),
        }])
        .await
        .expect("put_events");
    env.metrics()
        .expect("metrics")
        .write(vec![MetricRecord {
            name: "from_env".into(),
            value: Decimal::ONE,
            dimensions: vec![],
            time: Utc::now(),
        }])
        .await
        .expect("Timestream write without endpoint discovery");
    let r = env
        .workflows()
        .start_execution(
            "arn:aws:states:us-east-1:123456789012:stateMachine:missing",
            "run",
            json!({}),
        )
        .await;
    assert!(matches!(r, Err(WorkflowError::NotFound(_))), "{r:?}");
}

// ---------------------------------------------------------------- DynamoDB

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_travel_as_exact_decimal_strings() {
    let h = harness().await;
    let t = h.create_table(&[]).await;
    let k = Key::new("N", "1");
    t.put(
        Item::new(&k)
            .with("small", dec("0.10"))
            .with("huge", dec("1234567890123456789.01"))
            .with("max", Decimal::MAX),
        None,
    )
    .await
    .expect("put");
    let raw = h
        .env
        .dynamodb()
        .get_item()
        .table_name(t_name(&t))
        .key("pk", AttributeValue::S("N".into()))
        .key("sk", AttributeValue::S("1".into()))
        .send()
        .await
        .expect("raw get")
        .item
        .expect("the item exists");
    assert_eq!(raw["small"], AttributeValue::N("0.1".into()));
    assert_eq!(
        raw["huge"],
        AttributeValue::N("1234567890123456789.01".into())
    );
    assert_eq!(raw["max"], AttributeValue::N(Decimal::MAX.to_string()));
    let back = t.get(&k).await.expect("get").expect("exists");
    assert_eq!(back.n("max"), Some(Decimal::MAX));
}

fn t_name(t: &DynamoTable) -> String {
    t.spec().name.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_cursor_is_none_after_an_exact_last_page_and_can_be_replayed() {
    let h = harness().await;
    let t = h.create_table(&[]).await;
    for i in 0..6 {
        t.put(item("P", &format!("{i}")), None).await.expect("put");
    }
    let first = t
        .query(Query::partition("P").limit(3))
        .await
        .expect("page 1");
    let cursor = first.cursor.expect("more items follow");
    let second = t
        .query(Query::partition("P").limit(3).after(Some(cursor.clone())))
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 3);
    assert_eq!(
        second.cursor, None,
        "the exact last page says it is the last"
    );
    let replay = t
        .query(Query::partition("P").limit(3).after(Some(cursor)))
        .await
        .expect("page 2 again");
    assert_eq!(replay.items, second.items, "a cursor can be used again");

    let all = t
        .query(Query::partition("P").limit(6))
        .await
        .expect("one page");
    assert_eq!((all.items.len(), all.cursor), (6, None));
    let none = t
        .query(Query::partition("P").sort(SortKeyRange::Gt("9".into())))
        .await
        .expect("empty");
    assert!(none.items.is_empty() && none.cursor.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_of_another_query_is_invalid() {
    let h = harness().await;
    let t = h.create_table(&["gsi1"]).await;
    for i in 0..3 {
        t.put(
            item("P", &format!("{i}"))
                .with("gsi1_pk", "G")
                .with("gsi1_sk", format!("{i}")),
            None,
        )
        .await
        .expect("put");
    }
    let page = t.query(Query::partition("P").limit(1)).await.expect("page");
    let table_cursor = page.cursor.expect("more follow");
    let r = t
        .query(
            Query::partition("G")
                .on_index("gsi1")
                .after(Some(table_cursor)),
        )
        .await;
    assert!(matches!(r, Err(TableError::Invalid(_))), "{r:?}");
    let r = t
        .query(Query::partition("P").after(Some(Cursor("e30".into()))))
        .await;
    assert!(
        matches!(r, Err(TableError::Invalid(_))),
        "an empty key: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_invalid_and_an_unreachable_service_unavailable() {
    let h = harness().await;
    let missing = DynamoTable::new(
        h.env.dynamodb().clone(),
        payops_app::ports::TableSpec::new(unique("no-such-table")),
    );
    let r = missing.get(&Key::new("a", "b")).await;
    assert!(
        matches!(r, Err(TableError::Invalid(ref m)) if m.contains("ResourceNotFound")),
        "{r:?}"
    );

    // A loopback port with nothing listening: every port maps it to Unavailable.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dead = AwsEnv::for_endpoint(&format!("http://127.0.0.1:{closed}")).await;
    let table = DynamoTable::new(dead.dynamodb().clone(), missing.spec().clone());
    let queue = SqsQueue::new(
        dead.sqs().clone(),
        format!("http://127.0.0.1:{closed}/123456789012/q"),
    );
    let blobs = S3Blobs::new(dead.s3().clone(), "bucket".into());
    let events = EventBridgeEvents::new(dead.eventbridge().clone(), "bus".into());
    let metrics = TimestreamMetrics::new(dead.timestream().clone(), "db".into(), "t".into());
    let event = Event {
        source: "payops.test".into(),
        detail_type: "T".into(),
        detail: json!({}),
    };
    let record = MetricRecord {
        name: "m".into(),
        value: Decimal::ONE,
        dimensions: vec![],
        time: Utc::now(),
    };
    let key = Key::new("a", "b");
    let (t, q, b, e, m) = tokio::join!(
        table.get(&key),
        queue.approximate_depth(),
        blobs.head("k"),
        events.put_events(vec![event]),
        metrics.write(vec![record]),
    );
    let t = t.expect_err("no DynamoDB there");
    assert!(
        matches!(t, TableError::Unavailable(_)) && t.is_retryable(),
        "{t:?}"
    );
    assert!(matches!(q, Err(QueueError::Unavailable(_))), "{q:?}");
    assert!(matches!(b, Err(BlobError::Unavailable(_))), "{b:?}");
    assert!(matches!(e, Err(EventsError::Unavailable(_))), "{e:?}");
    assert!(matches!(m, Err(MetricsError::Unavailable(_))), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_types_the_port_lacks_are_refused_by_name() {
    let h = harness().await;
    let t = h.create_table(&[]).await;
    h.env
        .dynamodb()
        .put_item()
        .table_name(t_name(&t))
        .item("pk", AttributeValue::S("SET".into()))
        .item("sk", AttributeValue::S("1".into()))
        .item("tags", AttributeValue::Ss(vec!["a".into(), "b".into()]))
        .send()
        .await
        .expect("raw put of a string set");
    let r = t.get(&Key::new("SET", "1")).await;
    assert!(
        matches!(r, Err(TableError::Invalid(ref m)) if m.contains("tags")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_limits_are_checked_before_calling_dynamodb() {
    // An unreachable endpoint: a call would be Unavailable, so Invalid proves no call was made.
    let dead = AwsEnv::for_endpoint("http://127.0.0.1:9").await;
    let t = DynamoTable::new(
        dead.dynamodb().clone(),
        payops_app::ports::TableSpec::new("t"),
    );
    let writes: Vec<Write> = (0..101)
        .map(|i| Write::Put {
            item: item("P", &format!("{i}")),
            condition: None,
        })
        .collect();
    assert!(matches!(
        t.transact(writes).await,
        Err(TableError::Invalid(_))
    ));
    t.transact(vec![])
        .await
        .expect("an empty transaction is a no-op");
    assert!(matches!(
        t.query(Query::partition("P").on_index("nope")).await,
        Err(TableError::Invalid(_))
    ));
    let keys: Vec<Key> = (0..101).map(|i| Key::new("P", format!("{i}"))).collect();
    assert!(matches!(
        t.batch_get(&keys).await,
        Err(TableError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_get_answers_in_the_order_asked_and_ignores_duplicate_keys() {
    let h = harness().await;
    let t = h.create_table(&[]).await;
    for i in 0..5 {
        t.put(item("B", &format!("{i}")), None).await.expect("put");
    }
    let keys = ["4", "1", "missing", "4", "3", "0"].map(|sk| Key::new("B", sk));
    let found = t.batch_get(&keys).await.expect("batch_get");
    let sks: Vec<&str> = found.iter().filter_map(|i| i.s("sk")).collect();
    assert_eq!(sks, ["4", "1", "3", "0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_without_actions_creates_the_bare_item() {
    let h = harness().await;
    let t = h.create_table(&[]).await;
    let k = Key::new("BARE", "1");
    let created = t.update(&k, vec![], None).await.expect("update");
    assert_eq!(created, Item::new(&k));
    let in_tx = Key::new("BARE", "2");
    t.transact(vec![Write::Update {
        key: in_tx.clone(),
        actions: vec![],
        condition: Some(Condition::ItemNotExists),
    }])
    .await
    .expect("an update without actions in a transaction");
    assert_eq!(t.get(&in_tx).await.expect("get"), Some(Item::new(&in_tx)));
    let after = t
        .update(
            &k,
            vec![UpdateAction::set("v", Value::Null)],
            Some(Condition::ItemExists),
        )
        .await
        .expect("second update");
    assert_eq!(after.get("v"), Some(&Value::Null));
}

// ---------------------------------------------------------------- SQS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_name_and_arn_match_what_sqs_reports() {
    let h = harness().await;
    for fifo in [false, true] {
        let (q, _) = h.create_queue(fifo, 30, None).await;
        let attrs = h
            .env
            .sqs()
            .get_queue_attributes()
            .queue_url(q.url())
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("attributes");
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .expect("QueueArn");
        assert_eq!(q.arn(), arn);
        assert!(q.url().ends_with(&format!("/{}", q.name())));
        assert_eq!(q.name().ends_with(".fifo"), fifo);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_requests_sqs_would_refuse_are_invalid() {
    let h = harness().await;
    let (fifo, _) = h.create_queue(true, 30, None).await;
    let mut delayed = OutgoingMessage::new("x");
    delayed.group_id = Some("g".into());
    delayed.deduplication_id = Some("d".into());
    delayed.delay_seconds = 1;
    let r = fifo.send_batch(vec![delayed]).await;
    assert!(
        matches!(r, Err(QueueError::Invalid(ref m)) if m.contains("message 0")),
        "{r:?}"
    );

    let (q, _) = h.create_queue(false, 30, None).await;
    let r = q
        .receive(ReceiveOptions {
            max_messages: 1,
            visibility_timeout_seconds: None,
            wait_seconds: 21,
        })
        .await;
    assert!(matches!(r, Err(QueueError::Invalid(_))), "{r:?}");
    assert!(matches!(
        q.change_visibility("anything", 43_201).await,
        Err(QueueError::Invalid(_))
    ));
    assert!(q.send_batch(vec![]).await.expect("empty batch").is_empty());

    let gone = SqsQueue::new(
        h.env.sqs().clone(),
        format!(
            "{}/123456789012/{}",
            support::moto().endpoint,
            unique("no-such-queue")
        ),
    );
    let r = gone.approximate_depth().await;
    assert!(matches!(r, Err(QueueError::Invalid(_))), "{r:?}");
}

// ---------------------------------------------------------------- S3

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_returns_the_metadata_that_head_and_list_report() {
    let h = harness().await;
    let b = h.create_bucket().await;
    let put = b
        .put("a/b.csv", Bytes::from_static(b"x,y\n"), "text/csv")
        .await
        .expect("put");
    let head = b.head("a/b.csv").await.expect("head").expect("exists");
    assert_eq!(put, head);
    let listed = b.list("a/", None).await.expect("list");
    assert_eq!(listed.blobs.len(), 1);
    let l = &listed.blobs[0];
    assert_eq!(
        (&l.key, l.size_bytes, &l.etag),
        (&put.key, put.size_bytes, &put.etag)
    );
    assert_eq!(l.last_modified.timestamp(), put.last_modified.timestamp());
    assert!(matches!(b.get("").await, Err(BlobError::Invalid(_))));
    assert!(matches!(
        b.head(&"k".repeat(1025)).await,
        Err(BlobError::Invalid(_))
    ));

    let gone = S3Blobs::new(h.env.s3().clone(), unique("no-such-bucket"));
    let r = gone.list("", None).await;
    assert!(
        matches!(r, Err(BlobError::Invalid(ref m)) if m.contains("NoSuchBucket")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_event_keys_decode_to_the_key_that_was_written() {
    let h = harness().await;
    let b = h.create_bucket().await;
    let inbox = h.create_plain_queue(false, None, HashMap::new()).await;
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(inbox.arn())
                .events(S3EventType::S3ObjectCreated)
                .build()
                .expect("queue and events are set"),
        )
        .build();
    h.env
        .s3()
        .put_bucket_notification_configuration()
        .bucket(b.bucket())
        .notification_configuration(config)
        .send()
        .await
        .expect("bucket notification to SQS");
    let key = "inbox/relatório de março+1 (v2).csv";
    b.put(key, Bytes::from_static(b"1"), "text/csv")
        .await
        .expect("put");
    // The first notification on a queue may be an s3:TestEvent; wait for the real one.
    let body = receive_matching(&inbox, |body| body.contains("ObjectCreated")).await;
    let event: serde_json::Value = serde_json::from_str(&body).expect("S3 event JSON");
    let raw = event["Records"][0]["s3"]["object"]["key"]
        .as_str()
        .expect("an object key");
    assert_ne!(raw, key, "the event carries the key URL-encoded");
    assert_eq!(decode_event_key(raw).expect("decodes"), key);
}

// ---------------------------------------------------------------- EventBridge

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_reach_a_rule_target() {
    let h = harness().await;
    let bus = h.create_event_bus().await;
    let target = h.create_rule_to_queue(&bus, "payops.test").await;
    bus.put_events(vec![Event {
        source: "payops.test".into(),
        detail_type: "PaymentMissed".into(),
        detail: json!({ "loan_id": "L1", "amount": "12.30" }),
    }])
    .await
    .expect("put_events");
    let body = receive_matching(&target, |b| b.contains("PaymentMissed")).await;
    let delivered: serde_json::Value = serde_json::from_str(&body).expect("event JSON");
    assert_eq!(delivered["detail-type"], "PaymentMissed");
    assert_eq!(delivered["source"], "payops.test");
    assert_eq!(
        delivered["detail"],
        json!({ "loan_id": "L1", "amount": "12.30" })
    );

    let r = bus
        .put_events(vec![Event {
            source: "payops.test".into(),
            detail_type: "Bad".into(),
            detail: json!("not an object"),
        }])
        .await;
    assert!(matches!(r, Err(EventsError::Invalid(_))), "{r:?}");
    bus.put_events(vec![]).await.expect("nothing to publish");
}

// ---------------------------------------------------------------- Timestream

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_to_a_missing_table_are_invalid() {
    let h = harness().await;
    let (database, _) = h.create_metrics_table().await;
    let m = TimestreamMetrics::new(
        h.env.timestream().clone(),
        database,
        unique("no_such_table"),
    );
    let r = m
        .write(vec![MetricRecord {
            name: "events_stored".into(),
            value: dec("1.5"),
            dimensions: vec![("function".into(), "test".into())],
            time: Utc::now(),
        }])
        .await;
    assert!(
        matches!(r, Err(MetricsError::Invalid(ref m)) if m.contains("ResourceNotFound")),
        "{r:?}"
    );
    let r = m
        .write(vec![MetricRecord {
            name: "x".into(),
            value: Decimal::ONE,
            dimensions: vec![("function".into(), String::new())],
            time: Utc::now(),
        }])
        .await;
    assert!(
        matches!(r, Err(MetricsError::Invalid(ref m)) if m.contains("function")),
        "{r:?}"
    );
}

/// The records moto stored for a Timestream table (moto's `/moto-api/data.json` dump).
fn stored_records(table: &str) -> Vec<serde_json::Value> {
    let (status, body) = support::http(support::moto().port, "GET", "/moto-api/data.json", "")
        .expect("moto answers");
    assert_eq!(status, 200);
    let data: serde_json::Value = serde_json::from_str(&body).expect("moto's model dump");
    let models = data["timestreamwrite"]
        .as_object()
        .expect("Timestream models");
    models
        .values()
        .flat_map(|instances| instances.as_array().cloned().unwrap_or_default())
        .find(|i| i["name"] == table)
        .and_then(|i| i["records"].as_array().cloned())
        .expect("the table is in moto's dump")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_written_as_exact_decimal_text_typed_double() {
    let h = harness().await;
    let (database, table) = h.create_metrics_table().await;
    let m = TimestreamMetrics::new(h.env.timestream().clone(), database, table.clone());
    let time = chrono::DateTime::from_timestamp_millis(1_704_164_645_123).expect("a valid time");
    m.write(vec![MetricRecord {
        name: "amount_paid".into(),
        value: dec("1234567.10"),
        dimensions: vec![
            ("function".into(), "payment-events-processor".into()),
            ("currency".into(), "BRL".into()),
        ],
        time,
    }])
    .await
    .expect("write");
    let records = stored_records(&table);
    assert_eq!(
        records,
        [json!({
            "Dimensions": [
                { "Name": "function", "Value": "payment-events-processor" },
                { "Name": "currency", "Value": "BRL" }
            ],
            "MeasureName": "amount_paid",
            "MeasureValue": "1234567.1",
            "MeasureValueType": "DOUBLE",
            "Time": "1704164645123",
            "TimeUnit": "MILLISECONDS"
        })]
    );
}

// ---------------------------------------------------------------- Step Functions

/// A state machine that hands its task token to `queue` and waits for an answer.
async fn callback_state_machine(h: &MotoHarness, queue: &SqsQueue) -> String {
    let definition = json!({
        "StartAt": "AwaitCallback",
        "States": {
            "AwaitCallback": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue.url(),
                    "MessageBody": { "token.$": "$$.Task.Token", "input.$": "$" }
                },
                "End": true
            }
        }
    });
    h.env
        .sfn()
        .create_state_machine()
        .name(unique("payops-callback"))
        .role_arn(SFN_ROLE_ARN)
        .definition(definition.to_string())
        .send()
        .await
        .expect("create state machine")
        .state_machine_arn()
        .to_owned()
}

/// The task token of the execution whose input is `input`.
async fn task_token(queue: &SqsQueue, input: &serde_json::Value) -> String {
    let body = receive_matching(queue, |b| {
        serde_json::from_str::<serde_json::Value>(b).is_ok_and(|v| v["input"] == *input)
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("callback JSON");
    v["token"].as_str().expect("a task token").to_owned()
}

async fn finished(
    h: &MotoHarness,
    execution_arn: &str,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let deadline = Instant::now() + Duration::from_millis(EXECUTION_FINISH_TIMEOUT_MS);
    loop {
        let out = h
            .env
            .sfn()
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .expect("describe execution");
        if *out.status() != ExecutionStatus::Running {
            return out;
        }
        assert!(Instant::now() < deadline, "execution still running");
        tokio::time::sleep(Duration::from_millis(EXECUTION_POLL_INTERVAL_MS)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_named_and_answered_through_task_tokens() {
    let h = harness().await;
    let callbacks = h.create_plain_queue(false, None, HashMap::new()).await;
    let machine = callback_state_machine(&h, &callbacks).await;
    let wf = SfnWorkflows::new(h.env.sfn().clone());

    let input = json!({ "batch": "B1" });
    let name = unique("approve");
    let arn = wf
        .start_execution(&machine, &name, input.clone())
        .await
        .expect("start");
    // Same name and input while running: Step Functions returns the same execution.
    let again = wf
        .start_execution(&machine, &name, input.clone())
        .await
        .expect("idempotent start");
    assert_eq!(again, arn);
    let r = wf
        .start_execution(&machine, &name, json!({ "batch": "other" }))
        .await;
    assert!(
        matches!(r, Err(WorkflowError::AlreadyExists(ref n)) if *n == name),
        "{r:?}"
    );

    let token = task_token(&callbacks, &input).await;
    wf.send_task_success(&token, json!({ "approved": true }))
        .await
        .expect("task success");
    let done = finished(&h, &arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Succeeded);
    let output: serde_json::Value =
        serde_json::from_str(done.output().expect("output")).expect("output JSON");
    assert_eq!(output, json!({ "approved": true }));

    let input = json!({ "batch": "B2" });
    let arn = wf
        .start_execution(&machine, &unique("reject"), input.clone())
        .await
        .expect("start");
    let token = task_token(&callbacks, &input).await;
    wf.send_task_failure(&token, "PaymentRejected", "the provider said no")
        .await
        .expect("task failure");
    let done = finished(&h, &arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("PaymentRejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_errors_are_mapped() {
    let h = harness().await;
    let wf = SfnWorkflows::new(h.env.sfn().clone());
    let unknown = format!(
        "arn:aws:states:us-east-1:123456789012:stateMachine:{}",
        unique("nope")
    );
    let r = wf.start_execution(&unknown, "run-1", json!({})).await;
    assert!(matches!(r, Err(WorkflowError::NotFound(_))), "{r:?}");
    for bad in ["", "has space", &"x".repeat(81)] {
        let r = wf.start_execution(&unknown, bad, json!({})).await;
        assert!(
            matches!(r, Err(WorkflowError::Invalid(_))),
            "{bad:?}: {r:?}"
        );
    }
    // A malformed token is InvalidToken (Invalid); TaskDoesNotExist / TaskTimedOut, for a
    // well-formed token of a finished task, are NotFound.
    let r = wf.send_task_success("not-a-token", json!({})).await;
    assert!(
        matches!(r, Err(WorkflowError::Invalid(ref m)) if m.contains("InvalidToken")),
        "{r:?}"
    );
    let r = wf.send_task_failure("not-a-token", "E", "c").await;
    assert!(
        matches!(r, Err(WorkflowError::Invalid(ref m)) if m.contains("InvalidToken")),
        "{r:?}"
    );
}
