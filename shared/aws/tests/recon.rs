//! Reconciliation (issue 6) on the AWS adapters against moto: the streaming index's
//! conditional updates on DynamoDB (latest status by event time, whatever the delivery order),
//! its hourly files in S3, and the daily batch's tasks (await statements, plan, reconcile a
//! partition, merge) reading and writing the bucket.

mod support;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use payops_app::handler::{SqsHandler, TaskHandler};
use payops_app::ports::{Blobs, Clock, ManualClock, Table};
use payops_app::recon::stream::current_state;
use payops_app::recon::{DailyBatch, ReferenceCache, StreamIndex, StreamProcessor, TextTable};
use payops_core::Secret;
use payops_core::recon::UserIdMasker;
use serde_json::{Value, json};
use support::MotoHarness;

fn message(id: &str, body: Value) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(body.to_string());
    m
}

fn tx(id: &str, status: &str, at: &str) -> Value {
    json!({
        "transaction_id": id, "merchant_id": "m1", "user_id": "user_raw_77",
        "amount": 40.25, "currency": "USD", "status": status, "timestamp": at
    })
}

async fn keys(blobs: &dyn Blobs, prefix: &str) -> Vec<String> {
    let page = blobs.list(prefix, None).await.expect("list");
    page.blobs.into_iter().map(|b| b.key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_index_and_daily_batch_on_dynamodb_and_s3() {
    let harness = MotoHarness::new().await;
    let table: Arc<dyn Table> = Arc::new(harness.create_table(&[]).await);
    let blobs: Arc<dyn Blobs> = Arc::new(harness.create_bucket().await);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 10, 0)
            .single()
            .expect("valid time"),
    ));
    let masker = UserIdMasker::new(&Secret::new("moto-test-key-0123456789".into())).expect("key");
    let reference = Arc::new(ReferenceCache::new(blobs.clone(), clock.clone()));
    let stream = StreamProcessor {
        index: StreamIndex {
            table: table.clone(),
            blobs: blobs.clone(),
            clock: clock.clone(),
            masker: masker.clone(),
            reference: reference.clone(),
        },
    };

    // Approved then declined a second later, delivered in reverse, twice (at least once).
    let mut event = SqsEvent::default();
    event.records = vec![
        message("a", tx("t1", "DECLINED", "2026-11-21T08:00:01Z")),
        message("b", tx("t1", "APPROVED", "2026-11-21T08:00:00Z")),
        message("c", tx("t2", "APPROVED", "2026-11-21T09:00:00Z")),
    ];
    for _ in 0..2 {
        let response = stream.handle(event.clone()).await.expect("handled");
        assert!(response.batch_item_failures.is_empty());
    }
    let t1 = current_state(table.as_ref(), "t1")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(t1.s("status"), Some("DECLINED"));
    assert_eq!(t1.n("amount"), Some("40.25".parse().expect("literal")));
    assert!(!format!("{t1:?}").contains("user_raw_77"));
    let hourly = keys(
        blobs.as_ref(),
        "recon/stream/transactions/dt=2026-11-21/hour=03/",
    )
    .await;
    assert_eq!(
        hourly.len(),
        1,
        "a redelivered batch rewrites its own file: {hourly:?}"
    );

    let daily = DailyBatch {
        blobs: blobs.clone(),
        clock: clock.clone(),
        masker,
        reference,
    };
    let waiting = daily
        .handle(json!({"action": "await_statements", "date": "2026-11-21"}))
        .await
        .expect_err("no statements yet");
    assert_eq!(waiting.error_type(), "Retryable");
    blobs
        .put(
            "recon/statements/dt=2026-11-21/bank.csv",
            Bytes::from_static(
                b"statement_id,transaction_id,posting_date,amount_posted,fee_charged\n\
                  s1,t2,2026-11-22,39.00,1.25\n",
            ),
            "text/csv",
        )
        .await
        .expect("put");
    let ready = daily
        .handle(json!({"action": "await_statements", "request": {"date": "2026-11-21"}}))
        .await
        .expect("statements are there");
    assert_eq!(ready["date"], json!("2026-11-21"));
    let plan = daily
        .handle(json!({"action": "plan", "date": "2026-11-21"}))
        .await
        .expect("plan");
    assert_eq!(plan["partitions"], json!(1));
    let item = plan["items"][0].clone();
    let mut reconcile = item.clone();
    reconcile["action"] = json!("reconcile");
    let summary = daily.handle(reconcile).await.expect("reconcile");
    assert_eq!(summary["transactions"], json!(2));
    assert_eq!(summary["matched"], json!(2), "{summary}");
    daily
        .handle(json!({"action": "merge", "date": "2026-11-21", "partitions": 1}))
        .await
        .expect("merge");
    for key in [
        "recon/batch/dt=2026-11-21/part-00000.parquet",
        "recon/final/dt=2026-11-21/part-00000.parquet",
        "recon/kpis/dt=2026-11-21/part-00000.parquet",
        "recon/kpis_monthly/month=2026-11/part-00000.parquet",
    ] {
        assert_eq!(keys(blobs.as_ref(), key).await, [key]);
    }
    let batch = blobs
        .get("recon/batch/dt=2026-11-21/part-00000.parquet")
        .await
        .expect("get")
        .expect("batch");
    let table = TextTable::from_bytes("batch", batch.body.to_vec()).expect("Parquet");
    let rows = table
        .parse_partitioned(1, 1, |f| Ok(f[..3].join(" ")), |r: &String| r.as_str())
        .expect("rows");
    let mut rows: Vec<String> = rows.into_iter().flatten().collect();
    rows.sort();
    // t1 was declined and posted nothing; t2 posted 39.00 + 1.25 fee of 40.25.
    assert_eq!(rows, ["t1 TRANSACTION_ONLY MATCHED", "t2 BOTH MATCHED"]);
}
