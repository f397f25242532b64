//! Conformance cases of the `Events` and `Metrics` ports. Neither port can read back what it
//! wrote, so these check acceptance and limits; the adapters' own tests read the stores.

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::{Harness, dec};
use crate::ports::events::EVENTS_BATCH_MAX;
use crate::ports::metrics::METRICS_BATCH_MAX;
use crate::ports::{Event, EventsError, MetricRecord, MetricsError};

fn event(i: usize) -> Event {
    Event {
        source: "payops.conformance".to_owned(),
        detail_type: "PaymentMissed".to_owned(),
        detail: json!({ "loan_id": format!("L{i}"), "amount": "12.30" }),
    }
}

/// put_events accepts up to EVENTS_BATCH_MAX events and rejects more as `Invalid`.
pub async fn events_put_events(h: &dyn Harness) {
    let e = h.events().await;
    e.put_events(vec![event(1), event(2)])
        .await
        .expect("put_events");
    e.put_events((0..EVENTS_BATCH_MAX).map(event).collect())
        .await
        .expect("a full batch");
    let r = e
        .put_events((0..=EVENTS_BATCH_MAX).map(event).collect())
        .await;
    assert!(
        matches!(r, Err(EventsError::Invalid(_))),
        "11 events: {r:?}"
    );
}

fn record(i: usize) -> MetricRecord {
    MetricRecord {
        name: "events_stored".to_owned(),
        value: dec("12.5"),
        dimensions: vec![("function".to_owned(), "conformance".to_owned())],
        // Timestream rejects records far in the past; any recent fixed time will do.
        time: Utc::now() - chrono::Duration::seconds(i as i64),
    }
}

/// write accepts up to METRICS_BATCH_MAX records and rejects more as `Invalid`.
pub async fn metrics_write(h: &dyn Harness) {
    let m = h.metrics().await;
    m.write(vec![record(0), record(1)]).await.expect("write");
    let mut fixed = record(2);
    fixed.time = Utc
        .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_else(Utc::now);
    m.write(vec![fixed]).await.expect("write with a fixed time");
    let r = m.write((0..=METRICS_BATCH_MAX).map(record).collect()).await;
    assert!(
        matches!(r, Err(MetricsError::Invalid(_))),
        "101 records: {r:?}"
    );
}
