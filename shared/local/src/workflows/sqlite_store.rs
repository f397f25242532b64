//! [`WorkflowStore`] on the embedded SQLite database shared with the other local adapters.
//!
//! History is stored in chunks, one row per flush holding a JSON array of events: a Map over
//! 10,000 items records ~70,000 events, and one insert per event would dominate the run.
//!
//! A chunk is written as a BLOB: the JSON array compressed with Snappy (raw format). History
//! repeats itself (state names, resources, scopes, timestamps): it shrinks about tenfold, and
//! compressing on the async side (~1 GB/s) costs far less than writing the bytes through the
//! database thread, the WAL and the checkpointer. Rows written as TEXT (plain JSON, before
//! compression was introduced) still read back.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::model::{
    EventChunk, ExecutionFilter, ExecutionRecord, ExecutionStatus, ExecutionSummary, HistoryEvent,
};
use super::store::{
    Checkpoint, Created, NewExecution, RunningExecution, TokenCompletion, TokenOutcome,
    WorkflowStore, WorkflowStoreError, limit,
};
use crate::sqlite::Db;
use rusqlite::types::ValueRef;

/// Migration name and schema of the workflow tables.
pub const MIGRATION_NAME: &str = "0001_workflows";
pub const SCHEMA: &str = "
CREATE TABLE wf_executions (
    id            TEXT PRIMARY KEY,
    state_machine TEXT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    cause         TEXT,
    start_time    TEXT NOT NULL,
    stop_time     TEXT,
    snapshot      TEXT,
    UNIQUE (state_machine, name)
);
CREATE INDEX wf_executions_by_status ON wf_executions (status, start_time);
CREATE INDEX wf_executions_by_machine ON wf_executions (state_machine, start_time);
CREATE TABLE wf_history (
    execution_id TEXT NOT NULL,
    first_event  INTEGER NOT NULL,
    last_event   INTEGER NOT NULL,
    events       TEXT NOT NULL,
    PRIMARY KEY (execution_id, first_event)
) WITHOUT ROWID;
CREATE TABLE wf_tokens (
    token        TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    status       TEXT NOT NULL,
    outcome      TEXT
) WITHOUT ROWID;
";

const TOKEN_WAITING: &str = "WAITING";
const TOKEN_COMPLETED: &str = "COMPLETED";
const TOKEN_CLOSED: &str = "CLOSED";

pub struct SqliteWorkflowStore {
    db: Db,
}

impl SqliteWorkflowStore {
    /// Applies the workflow schema (once) and returns the store. Blocking: call at start-up.
    pub fn open(db: Db) -> Result<Self, WorkflowStoreError> {
        db.migrate(MIGRATION_NAME, SCHEMA)?;
        Ok(SqliteWorkflowStore { db })
    }
}

/// Sortable text: fixed width, nanoseconds, `Z`.
fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_time(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn status_of(text: &str) -> rusqlite::Result<ExecutionStatus> {
    ExecutionStatus::parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown execution status {text}").into(),
        )
    })
}

const RECORD_COLUMNS: &str =
    "id, state_machine, name, status, input, output, error, cause, start_time, stop_time";

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    let output: Option<String> = row.get(5)?;
    let stop: Option<String> = row.get(9)?;
    Ok(ExecutionRecord {
        id: row.get(0)?,
        state_machine: row.get(1)?,
        name: row.get(2)?,
        status: status_of(&row.get::<_, String>(3)?)?,
        input: parse_json(&row.get::<_, String>(4)?)?,
        output: output.as_deref().map(parse_json::<Value>).transpose()?,
        error: row.get(6)?,
        cause: row.get(7)?,
        start_time: parse_time(&row.get::<_, String>(8)?)?,
        stop_time: stop.as_deref().map(parse_time).transpose()?,
    })
}

/// A history chunk ready for its row: ids and the compressed JSON array.
struct StoredChunk {
    first_id: u64,
    last_id: u64,
    compressed: Vec<u8>,
}

/// Compresses a chunk (on the caller's thread, not the database thread). `None` when empty.
fn compress_chunk(events: &EventChunk) -> Result<Option<StoredChunk>, WorkflowStoreError> {
    if events.is_empty() {
        return Ok(None);
    }
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&events.json)
        .map_err(|source| WorkflowStoreError::Compression {
            what: "history chunk",
            source,
        })?;
    Ok(Some(StoredChunk {
        first_id: events.first_id,
        last_id: events.last_id,
        compressed,
    }))
}

fn insert_events(
    tx: &rusqlite::Connection,
    execution_id: &str,
    chunk: Option<&StoredChunk>,
) -> rusqlite::Result<()> {
    let Some(chunk) = chunk else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT INTO wf_history (execution_id, first_event, last_event, events) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        execution_id,
        chunk.first_id as i64,
        chunk.last_id as i64,
        chunk.compressed
    ])?;
    Ok(())
}

/// A history row as read: plain JSON (TEXT, older rows) or Snappy-compressed JSON (BLOB).
enum ChunkRow {
    Json(Vec<u8>),
    Compressed(Vec<u8>),
}

fn chunk_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChunkRow> {
    match row.get_ref(0)? {
        ValueRef::Text(t) => Ok(ChunkRow::Json(t.to_vec())),
        ValueRef::Blob(b) => Ok(ChunkRow::Compressed(b.to_vec())),
        other => Err(rusqlite::Error::InvalidColumnType(
            0,
            "events".into(),
            other.data_type(),
        )),
    }
}

/// The events of one history row.
fn parse_chunk(row: ChunkRow) -> Result<Vec<HistoryEvent>, WorkflowStoreError> {
    let json =
        match row {
            ChunkRow::Json(json) => json,
            ChunkRow::Compressed(bytes) => snap::raw::Decoder::new()
                .decompress_vec(&bytes)
                .map_err(|source| WorkflowStoreError::Compression {
                    what: "history chunk",
                    source,
                })?,
        };
    serde_json::from_slice(&json).map_err(|source| WorkflowStoreError::Corrupt {
        what: "history chunk".into(),
        source,
    })
}

#[async_trait]
impl WorkflowStore for SqliteWorkflowStore {
    async fn create(&self, new: NewExecution) -> Result<Created, WorkflowStoreError> {
        let chunk = compress_chunk(&new.events)?;
        let outcome = self
            .db
            .write(move |tx| {
                let existing = tx
                    .query_row(
                        &format!("SELECT {RECORD_COLUMNS} FROM wf_executions WHERE state_machine = ?1 AND name = ?2"),
                        params![new.record.state_machine, new.record.name],
                        record_from_row,
                    )
                    .optional()?;
                if let Some(rec) = existing {
                    return Ok(Ok::<_, ()>(Created::Existing(Box::new(rec))));
                }
                let r = &new.record;
                tx.execute(
                    "INSERT INTO wf_executions (id, state_machine, name, status, input, start_time, snapshot)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        r.id,
                        r.state_machine,
                        r.name,
                        r.status.as_str(),
                        serde_json::to_string(&r.input).map_err(json_err)?,
                        time_text(r.start_time),
                        new.snapshot,
                    ],
                )?;
                insert_events(tx, &r.id, chunk.as_ref())?;
                Ok(Ok(Created::New))
            })
            .await?;
        // The closure never returns the error arm.
        Ok(outcome.unwrap_or(Created::New))
    }

    async fn checkpoint(&self, cp: Checkpoint) -> Result<(), WorkflowStoreError> {
        let chunk = compress_chunk(&cp.events)?;
        self.db
            .write(move |tx| {
                insert_events(tx, &cp.execution_id, chunk.as_ref())?;
                for token in &cp.new_tokens {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO wf_tokens (token, execution_id, status) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![token, cp.execution_id, TOKEN_WAITING])?;
                }
                if let Some(snapshot) = &cp.snapshot {
                    tx.prepare_cached("UPDATE wf_executions SET snapshot = ?2 WHERE id = ?1")?
                        .execute(params![cp.execution_id, snapshot])?;
                }
                if let Some(f) = &cp.finish {
                    let output = f
                        .output
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(json_err)?;
                    tx.execute(
                        "UPDATE wf_executions SET status = ?2, output = ?3, error = ?4, cause = ?5,
                                stop_time = ?6, snapshot = NULL WHERE id = ?1",
                        params![
                            cp.execution_id,
                            f.status.as_str(),
                            output,
                            f.error,
                            f.cause,
                            time_text(f.stop_time)
                        ],
                    )?;
                    tx.execute(
                        "UPDATE wf_tokens SET status = ?2 WHERE execution_id = ?1 AND status = ?3",
                        params![cp.execution_id, TOKEN_CLOSED, TOKEN_WAITING],
                    )?;
                }
                Ok(Ok::<(), ()>(()))
            })
            .await?
            .ok();
        Ok(())
    }

    async fn load_running(&self) -> Result<Vec<RunningExecution>, WorkflowStoreError> {
        Ok(self
            .db
            .call(|conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {RECORD_COLUMNS}, snapshot,
                            (SELECT MAX(last_event) FROM wf_history h WHERE h.execution_id = e.id)
                     FROM wf_executions e
                     WHERE status = 'RUNNING' AND snapshot IS NOT NULL ORDER BY start_time"
                ))?;
                let rows = stmt.query_map([], |row| {
                    Ok(RunningExecution {
                        record: record_from_row(row)?,
                        snapshot: row.get(10)?,
                        last_event_id: row.get::<_, Option<i64>>(11)?.unwrap_or(0).max(0) as u64,
                    })
                })?;
                rows.collect()
            })
            .await?)
    }

    async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, WorkflowStoreError> {
        let id = id.to_owned();
        Ok(self
            .db
            .call(move |conn| {
                conn.query_row(
                    &format!("SELECT {RECORD_COLUMNS} FROM wf_executions WHERE id = ?1"),
                    [id],
                    record_from_row,
                )
                .optional()
            })
            .await?)
    }

    async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionSummary>, WorkflowStoreError> {
        let (machine, status, limit) = (
            filter.state_machine.clone(),
            filter.status.map(|s| s.as_str().to_owned()),
            limit(filter) as i64,
        );
        Ok(self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM wf_executions
                     WHERE (?1 IS NULL OR state_machine = ?1) AND (?2 IS NULL OR status = ?2)
                     ORDER BY start_time DESC, id DESC LIMIT ?3"
                ))?;
                let rows = stmt.query_map(params![machine, status, limit], |row| {
                    record_from_row(row).map(|r| ExecutionSummary::from(&r))
                })?;
                rows.collect()
            })
            .await?)
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, WorkflowStoreError> {
        let id = id.to_owned();
        let chunks: Vec<ChunkRow> = self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT events FROM wf_history WHERE execution_id = ?1 ORDER BY first_event",
                )?;
                let rows = stmt.query_map([id], chunk_row)?;
                rows.collect()
            })
            .await?;
        // Decompressed and parsed here, off the database thread.
        let mut events = Vec::new();
        for chunk in chunks {
            events.append(&mut parse_chunk(chunk)?);
        }
        Ok(events)
    }

    async fn complete_token(
        &self,
        token: &str,
        outcome: &TokenOutcome,
    ) -> Result<TokenCompletion, WorkflowStoreError> {
        let token = token.to_owned();
        let body =
            serde_json::to_string(outcome).map_err(|source| WorkflowStoreError::Corrupt {
                what: "token outcome".into(),
                source,
            })?;
        Ok(self
            .db
            .write(move |tx| {
                let row: Option<(String, String)> = tx
                    .query_row(
                        "SELECT execution_id, status FROM wf_tokens WHERE token = ?1",
                        [&token],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let result = match row {
                    None => TokenCompletion::Unknown,
                    Some((execution_id, status)) if status == TOKEN_WAITING => {
                        tx.execute(
                            "UPDATE wf_tokens SET status = ?2, outcome = ?3 WHERE token = ?1",
                            params![token, TOKEN_COMPLETED, body],
                        )?;
                        TokenCompletion::Recorded { execution_id }
                    }
                    Some(_) => TokenCompletion::Closed,
                };
                Ok(Ok::<_, ()>(result))
            })
            .await?
            .unwrap_or(TokenCompletion::Unknown))
    }

    async fn token_outcome(&self, token: &str) -> Result<Option<TokenOutcome>, WorkflowStoreError> {
        let token = token.to_owned();
        let body: Option<Option<String>> = self
            .db
            .call(move |conn| {
                conn.query_row(
                    "SELECT outcome FROM wf_tokens WHERE token = ?1 AND status = ?2",
                    params![token, TOKEN_COMPLETED],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        body.flatten()
            .map(|b| {
                serde_json::from_str(&b).map_err(|source| WorkflowStoreError::Corrupt {
                    what: "token outcome".into(),
                    source,
                })
            })
            .transpose()
    }

    async fn close_token(&self, token: &str) -> Result<Option<TokenOutcome>, WorkflowStoreError> {
        let token = token.to_owned();
        let body: Option<String> = self
            .db
            .write(move |tx| {
                let row: Option<(String, Option<String>)> = tx
                    .query_row(
                        "SELECT status, outcome FROM wf_tokens WHERE token = ?1",
                        [&token],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                tx.execute(
                    "UPDATE wf_tokens SET status = ?2 WHERE token = ?1",
                    params![token, TOKEN_CLOSED],
                )?;
                Ok(Ok::<_, ()>(match row {
                    Some((status, outcome)) if status == TOKEN_COMPLETED => outcome,
                    _ => None,
                }))
            })
            .await?
            .unwrap_or(None);
        body.map(|b| {
            serde_json::from_str(&b).map_err(|source| WorkflowStoreError::Corrupt {
                what: "token outcome".into(),
                source,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use payops_core::asl::EventKind;

    use super::*;
    use crate::workflows::model::ChunkBuilder;

    fn t0() -> DateTime<Utc> {
        // A valid literal date: `single` cannot fail.
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 4, 5)
            .single()
            .expect("a valid date")
    }

    fn chunk(first_id: u64, events: &[EventKind]) -> EventChunk {
        let mut builder = ChunkBuilder::default();
        builder
            .push_all(first_id, t0(), "Items/item-0", events)
            .expect("serialises");
        builder.take()
    }

    #[tokio::test]
    async fn history_reads_back_compressed_and_plain_rows_in_order() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Db::open(&dir.path().join("payops.sqlite")).expect("database opens");
        let store = SqliteWorkflowStore::open(db.clone()).expect("schema");
        let id = "arn:aws:states:local:000000000000:execution:m:one";
        let record = ExecutionRecord {
            id: id.into(),
            state_machine: "m".into(),
            name: "one".into(),
            status: ExecutionStatus::Running,
            input: serde_json::json!({"items": [1, 2]}),
            output: None,
            error: None,
            cause: None,
            start_time: t0(),
            stop_time: None,
        };
        let first = chunk(1, &[EventKind::MapStateStarted { length: 2 }]);
        store
            .create(NewExecution {
                record,
                snapshot: "{}".into(),
                events: first,
            })
            .await
            .expect("created");
        // A row as written before history was compressed: the JSON array as TEXT.
        let legacy = chunk(2, &[EventKind::MapIterationStarted { index: 0 }]);
        let text = String::from_utf8(legacy.json.clone()).expect("JSON is UTF-8");
        db.call(move |conn| {
            conn.execute(
                "INSERT INTO wf_history (execution_id, first_event, last_event, events) VALUES (?1, 2, 2, ?2)",
                params![id, text],
            )
        })
        .await
        .expect("legacy row");
        // An exact number beyond f64: it must come back digit for digit.
        let output: Value =
            serde_json::from_str(r#"{"amount": 12345678901234567890.123456789}"#).expect("JSON");
        store
            .checkpoint(Checkpoint {
                execution_id: id.into(),
                snapshot: Some("{}".into()),
                events: chunk(
                    3,
                    &[
                        EventKind::MapIterationSucceeded { index: 0 },
                        EventKind::TaskSucceeded {
                            resource: "arn:\"odd\"".into(),
                            output: output.clone(),
                        },
                    ],
                ),
                new_tokens: Vec::new(),
                finish: None,
            })
            .await
            .expect("checkpoint");
        let kinds: Vec<(String, u64, String)> = db
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT typeof(events), first_event, last_event FROM wf_history ORDER BY first_event",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)?.to_string()))
                })?;
                rows.collect()
            })
            .await
            .expect("rows");
        assert_eq!(
            kinds,
            vec![
                ("blob".to_owned(), 1, "1".to_owned()),
                ("text".to_owned(), 2, "2".to_owned()),
                ("blob".to_owned(), 3, "4".to_owned()),
            ]
        );
        let history = store.history(id).await.expect("history");
        let ids: Vec<u64> = history.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
        assert_eq!(
            history[1].event,
            EventKind::MapIterationStarted { index: 0 }
        );
        assert_eq!(
            history[3].event,
            EventKind::TaskSucceeded {
                resource: "arn:\"odd\"".into(),
                output,
            }
        );
        assert_eq!(history[3].event_type, "TaskSucceeded");
    }

    #[tokio::test]
    async fn a_corrupt_compressed_row_is_reported_not_panicked_on() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Db::open(&dir.path().join("payops.sqlite")).expect("database opens");
        let store = SqliteWorkflowStore::open(db.clone()).expect("schema");
        db.call(|conn| {
            conn.execute(
                "INSERT INTO wf_history (execution_id, first_event, last_event, events) VALUES ('x', 1, 1, ?1)",
                params![vec![0xffu8, 0xff, 0xff, 0xff, 0x01]],
            )
        })
        .await
        .expect("row");
        let err = store.history("x").await.expect_err("corrupt");
        assert!(
            matches!(
                err,
                WorkflowStoreError::Compression {
                    what: "history chunk",
                    ..
                }
            ),
            "{err}"
        );
    }
}
