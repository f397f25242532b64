//! Persistence of executions, histories, snapshots and task tokens, behind a trait so the
//! executor runs on SQLite in `payops up` and in memory in unit tests and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{
    EventChunk, ExecutionFilter, ExecutionRecord, ExecutionStatus, ExecutionSummary, HistoryEvent,
    LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX,
};

#[derive(Debug, thiserror::Error)]
pub enum WorkflowStoreError {
    #[error("workflow store: {0}")]
    Db(#[from] crate::sqlite::DbError),
    #[error("workflow store: corrupt {what}: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("workflow store: cannot compress or decompress a {what}: {source}")]
    Compression {
        what: &'static str,
        #[source]
        source: snap::Error,
    },
}

/// A new execution with its first history events and initial snapshot.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub record: ExecutionRecord,
    pub snapshot: String,
    pub events: EventChunk,
}

/// A RUNNING execution to resume: its record, its last snapshot and the id of the last history
/// event written (which may be newer than the snapshot: history is flushed more often).
#[derive(Debug, Clone, PartialEq)]
pub struct RunningExecution {
    pub record: ExecutionRecord,
    pub snapshot: String,
    pub last_event_id: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New,
    /// An execution with this state machine and name already exists.
    Existing(Box<ExecutionRecord>),
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub stop_time: DateTime<Utc>,
}

/// Everything one checkpoint writes, atomically.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub execution_id: String,
    pub snapshot: Option<String>,
    pub events: EventChunk,
    /// Task tokens handed out since the last checkpoint (now waiting).
    pub new_tokens: Vec<String>,
    pub finish: Option<Finish>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenOutcome {
    Success(Value),
    Failure { error: String, cause: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenCompletion {
    /// The outcome is stored; the waiting task of `execution_id` will take it.
    Recorded {
        execution_id: String,
    },
    Unknown,
    /// The token was already completed, timed out or cancelled.
    Closed,
}

#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Inserts the execution unless one with the same state machine and name exists.
    async fn create(&self, new: NewExecution) -> Result<Created, WorkflowStoreError>;
    async fn checkpoint(&self, cp: Checkpoint) -> Result<(), WorkflowStoreError>;
    /// Executions still RUNNING, with their last snapshot.
    async fn load_running(&self) -> Result<Vec<RunningExecution>, WorkflowStoreError>;
    async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, WorkflowStoreError>;
    /// Newest first.
    async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionSummary>, WorkflowStoreError>;
    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, WorkflowStoreError>;
    /// Records the outcome of a waiting token (once).
    async fn complete_token(
        &self,
        token: &str,
        outcome: &TokenOutcome,
    ) -> Result<TokenCompletion, WorkflowStoreError>;
    /// The outcome recorded for a token, if any.
    async fn token_outcome(&self, token: &str) -> Result<Option<TokenOutcome>, WorkflowStoreError>;
    /// Closes a token that timed out or was cancelled. If an outcome was recorded first,
    /// returns it (the task takes the outcome instead of timing out).
    async fn close_token(&self, token: &str) -> Result<Option<TokenOutcome>, WorkflowStoreError>;
}

pub(crate) fn limit(filter: &ExecutionFilter) -> usize {
    filter
        .limit
        .unwrap_or(LIST_LIMIT_DEFAULT)
        .clamp(1, LIST_LIMIT_MAX)
}

#[derive(Debug, Clone, PartialEq)]
enum TokenState {
    Waiting,
    Completed(TokenOutcome),
    Closed,
}

#[derive(Default)]
struct Memory {
    executions: HashMap<String, (ExecutionRecord, Option<String>)>,
    history: HashMap<String, Vec<EventChunk>>,
    tokens: HashMap<String, (String, TokenState)>,
}

/// An in-memory store: same semantics, nothing survives the process.
#[derive(Default)]
pub struct MemoryWorkflowStore {
    inner: Mutex<Memory>,
}

impl MemoryWorkflowStore {
    pub fn new() -> Self {
        Self::default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // Each method leaves the maps consistent before it can panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WorkflowStore for MemoryWorkflowStore {
    async fn create(&self, new: NewExecution) -> Result<Created, WorkflowStoreError> {
        let mut m = self.lock();
        if let Some((existing, _)) = m
            .executions
            .values()
            .find(|(r, _)| r.state_machine == new.record.state_machine && r.name == new.record.name)
        {
            return Ok(Created::Existing(Box::new(existing.clone())));
        }
        let id = new.record.id.clone();
        m.history.insert(id.clone(), vec![new.events]);
        m.executions.insert(id, (new.record, Some(new.snapshot)));
        Ok(Created::New)
    }

    async fn checkpoint(&self, cp: Checkpoint) -> Result<(), WorkflowStoreError> {
        let mut m = self.lock();
        m.history
            .entry(cp.execution_id.clone())
            .or_default()
            .push(cp.events);
        for t in cp.new_tokens {
            m.tokens
                .insert(t, (cp.execution_id.clone(), TokenState::Waiting));
        }
        if let Some((rec, snap)) = m.executions.get_mut(&cp.execution_id) {
            if cp.snapshot.is_some() {
                *snap = cp.snapshot;
            }
            if let Some(f) = cp.finish {
                rec.status = f.status;
                rec.output = f.output;
                rec.error = f.error;
                rec.cause = f.cause;
                rec.stop_time = Some(f.stop_time);
                *snap = None;
            }
        }
        Ok(())
    }

    async fn load_running(&self) -> Result<Vec<RunningExecution>, WorkflowStoreError> {
        let m = self.lock();
        Ok(m.executions
            .values()
            .filter(|(r, _)| r.status == ExecutionStatus::Running)
            .filter_map(|(r, s)| {
                s.clone().map(|snapshot| RunningExecution {
                    record: r.clone(),
                    snapshot,
                    last_event_id: m
                        .history
                        .get(&r.id)
                        .and_then(|h| h.iter().rev().find(|c| !c.is_empty()))
                        .map_or(0, |c| c.last_id),
                })
            })
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, WorkflowStoreError> {
        Ok(self.lock().executions.get(id).map(|(r, _)| r.clone()))
    }

    async fn list(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionSummary>, WorkflowStoreError> {
        let m = self.lock();
        let mut rows: Vec<ExecutionSummary> = m
            .executions
            .values()
            .map(|(r, _)| r)
            .filter(|r| {
                filter
                    .state_machine
                    .as_ref()
                    .is_none_or(|s| &r.state_machine == s)
            })
            .filter(|r| filter.status.is_none_or(|s| r.status == s))
            .map(ExecutionSummary::from)
            .collect();
        rows.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| b.id.cmp(&a.id))
        });
        rows.truncate(limit(filter));
        Ok(rows)
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, WorkflowStoreError> {
        let chunks = self.lock().history.get(id).cloned().unwrap_or_default();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(
                chunk
                    .parse()
                    .map_err(|source| WorkflowStoreError::Corrupt {
                        what: "history chunk".into(),
                        source,
                    })?,
            );
        }
        Ok(events)
    }

    async fn complete_token(
        &self,
        token: &str,
        outcome: &TokenOutcome,
    ) -> Result<TokenCompletion, WorkflowStoreError> {
        let mut m = self.lock();
        Ok(match m.tokens.get_mut(token) {
            None => TokenCompletion::Unknown,
            Some((exec, state)) if *state == TokenState::Waiting => {
                *state = TokenState::Completed(outcome.clone());
                TokenCompletion::Recorded {
                    execution_id: exec.clone(),
                }
            }
            Some(_) => TokenCompletion::Closed,
        })
    }

    async fn token_outcome(&self, token: &str) -> Result<Option<TokenOutcome>, WorkflowStoreError> {
        Ok(match self.lock().tokens.get(token) {
            Some((_, TokenState::Completed(o))) => Some(o.clone()),
            _ => None,
        })
    }

    async fn close_token(&self, token: &str) -> Result<Option<TokenOutcome>, WorkflowStoreError> {
        let mut m = self.lock();
        Ok(match m.tokens.get_mut(token) {
            Some((_, state)) => match std::mem::replace(state, TokenState::Closed) {
                TokenState::Completed(o) => Some(o),
                _ => None,
            },
            None => None,
        })
    }
}
