//! The `Events` port on SQLite: every event is stored (for ops views and replay) and then
//! offered to in-process subscribers (the local runtime's rule matcher) through a broadcast
//! channel. Storing never depends on anyone listening.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use payops_app::ports::events::EVENTS_BATCH_MAX;
use payops_app::ports::{Clock, Event, Events, EventsError};
use rusqlite::params;
use tokio::sync::broadcast;

use crate::queue::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::sqlite::Db;

/// EventBridge's limit on one entry (source, detail type and detail together).
pub const EVENT_BYTES_MAX: usize = 256 * 1024;
/// Events a slow subscriber may fall behind by before it misses some (it then sees
/// `RecvError::Lagged` and can catch up from `list`).
pub const SUBSCRIBER_BACKLOG_EVENTS_MAX: usize = 4096;
/// Most events one `list` returns.
pub const LIST_EVENTS_MAX: usize = 10_000;

pub(crate) const SCHEMA: &str = "
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    bus         TEXT NOT NULL,
    source      TEXT NOT NULL,
    detail_type TEXT NOT NULL,
    detail      TEXT NOT NULL,
    time_ms     INTEGER NOT NULL
);
CREATE INDEX events_by_source ON events (bus, source, seq);
";

/// An event as stored, with what EventBridge adds (id, bus, time).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: String,
    pub bus: String,
    pub source: String,
    pub detail_type: String,
    pub detail: serde_json::Value,
    pub time: DateTime<Utc>,
}

impl StoredEvent {
    /// The event as an EventBridge rule target (a Lambda) receives it.
    pub fn to_lambda_event(
        &self,
    ) -> Result<aws_lambda_events::event::eventbridge::EventBridgeEvent, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "version": "0",
            "id": self.id,
            "detail-type": self.detail_type,
            "source": self.source,
            "account": LOCAL_ACCOUNT_ID,
            "time": self.time.to_rfc3339_opts(SecondsFormat::Secs, true),
            "region": LOCAL_REGION,
            "resources": [],
            "detail": self.detail,
        }))
    }
}

/// One event bus.
pub struct LocalEvents {
    db: Db,
    clock: Arc<dyn Clock>,
    bus: String,
    sender: broadcast::Sender<StoredEvent>,
}

impl std::fmt::Debug for LocalEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEvents")
            .field("bus", &self.bus)
            .finish()
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> EventsError {
    EventsError::Unavailable(Box::new(e))
}

fn validate(i: usize, e: &Event) -> Result<(), EventsError> {
    let bad = |why: &str| EventsError::Invalid(format!("event {i}: {why}"));
    if e.source.is_empty() || e.source.starts_with("aws.") {
        return Err(bad("source must be non-empty and not start with \"aws.\""));
    }
    if e.detail_type.is_empty() {
        return Err(bad("detail_type must be non-empty"));
    }
    if !e.detail.is_object() {
        return Err(bad("detail must be a JSON object"));
    }
    let size = e.source.len() + e.detail_type.len() + e.detail.to_string().len();
    if size > EVENT_BYTES_MAX {
        return Err(bad(&format!("{size} bytes, at most {EVENT_BYTES_MAX}")));
    }
    Ok(())
}

impl LocalEvents {
    pub(crate) fn new(db: Db, clock: Arc<dyn Clock>, bus: &str) -> LocalEvents {
        let (sender, _) = broadcast::channel(SUBSCRIBER_BACKLOG_EVENTS_MAX);
        LocalEvents {
            db,
            clock,
            bus: bus.to_owned(),
            sender,
        }
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Events published from now on, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredEvent> {
        self.sender.subscribe()
    }

    /// The latest `limit` events of this bus (of one source, if given), newest first.
    pub async fn list(
        &self,
        source: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, EventsError> {
        if limit == 0 || limit > LIST_EVENTS_MAX {
            return Err(EventsError::Invalid(format!(
                "list limit must be 1..={LIST_EVENTS_MAX}, got {limit}"
            )));
        }
        let (bus, source) = (self.bus.clone(), source.map(str::to_owned));
        self.db
            .call(move |c| {
                let mut s = c.prepare_cached(
                    "SELECT id, bus, source, detail_type, detail, time_ms FROM events
                     WHERE bus = ?1 AND (?2 IS NULL OR source = ?2)
                     ORDER BY seq DESC LIMIT ?3",
                )?;
                s.query_map(params![bus, source, limit as i64], |r| {
                    let detail: String = r.get(4)?;
                    Ok(StoredEvent {
                        id: r.get(0)?,
                        bus: r.get(1)?,
                        source: r.get(2)?,
                        detail_type: r.get(3)?,
                        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                        time: Utc
                            .timestamp_millis_opt(r.get(5)?)
                            .single()
                            .unwrap_or_default(),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl Events for LocalEvents {
    async fn put_events(&self, events: Vec<Event>) -> Result<(), EventsError> {
        if events.is_empty() || events.len() > EVENTS_BATCH_MAX {
            return Err(EventsError::Invalid(format!(
                "put_events takes 1..={EVENTS_BATCH_MAX} events, got {}",
                events.len()
            )));
        }
        for (i, e) in events.iter().enumerate() {
            validate(i, e)?;
        }
        let time = self.clock.now();
        let stored: Vec<StoredEvent> = events
            .into_iter()
            .map(|e| StoredEvent {
                id: uuid::Uuid::new_v4().to_string(),
                bus: self.bus.clone(),
                source: e.source,
                detail_type: e.detail_type,
                detail: e.detail,
                time,
            })
            .collect();
        let rows = stored.clone();
        self.db
            .write(move |tx| {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (id, bus, source, detail_type, detail, time_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for e in &rows {
                    insert.execute(params![
                        e.id,
                        e.bus,
                        e.source,
                        e.detail_type,
                        e.detail.to_string(),
                        e.time.timestamp_millis()
                    ])?;
                }
                Ok(Ok::<(), EventsError>(()))
            })
            .await
            .map_err(unavailable)??;
        for e in stored {
            // No subscriber is fine: the event is stored.
            let _ = self.sender.send(e);
        }
        Ok(())
    }
}
