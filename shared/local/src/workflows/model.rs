//! What the executor stores and what the ops views show: executions and their history.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use payops_core::asl::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The account and region in local ARNs (the same placeholders as the other local adapters).
pub const LOCAL_ARN_PREFIX: &str = "arn:aws:states:local:000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }

    /// Parses `RUNNING`, `SUCCEEDED`, … (case-insensitive), as the CLI's `--status` takes it.
    pub fn parse(text: &str) -> Option<ExecutionStatus> {
        [
            ExecutionStatus::Running,
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::TimedOut,
            ExecutionStatus::Aborted,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One execution, as `DescribeExecution` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution ARN: `arn:aws:states:local:000000000000:execution:{machine}:{name}`.
    pub id: String,
    pub state_machine: String,
    pub name: String,
    pub status: ExecutionStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_time: DateTime<Utc>,
    pub stop_time: Option<DateTime<Utc>>,
}

/// One line of `payops executions list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    pub id: String,
    pub state_machine: String,
    pub name: String,
    pub status: ExecutionStatus,
    pub start_time: DateTime<Utc>,
    pub stop_time: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl From<&ExecutionRecord> for ExecutionSummary {
    fn from(r: &ExecutionRecord) -> Self {
        ExecutionSummary {
            id: r.id.clone(),
            state_machine: r.state_machine.clone(),
            name: r.name.clone(),
            status: r.status,
            start_time: r.start_time,
            stop_time: r.stop_time,
            error: r.error.clone(),
        }
    }
}

/// One event of an execution's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 1, 2, 3… in the order the events happened.
    pub id: u64,
    pub timestamp: DateTime<Utc>,
    /// Where in the execution: `""` at the top level, `Fan/branch-1`, `Items/item-17`, …
    pub scope: String,
    /// The console's event type, e.g. `TaskStateEntered`.
    #[serde(rename = "type")]
    pub event_type: Cow<'static, str>,
    /// The details (not flattened: flattening would buffer numbers and lose exactness).
    pub event: EventKind,
}

/// A history event borrowed for serialisation: the executor writes events straight into a
/// JSON buffer as they happen, without keeping copies of their inputs and outputs.
#[derive(Debug, Serialize)]
pub struct HistoryEventRef<'a> {
    pub id: u64,
    pub timestamp: DateTime<Utc>,
    pub scope: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub event: &'a EventKind,
}

/// History events serialised as one JSON array, ids `first_id..=last_id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventChunk {
    pub first_id: u64,
    pub last_id: u64,
    pub json: Vec<u8>,
}

impl EventChunk {
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    pub fn parse(&self) -> Result<Vec<HistoryEvent>, serde_json::Error> {
        if self.json.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&self.json)
    }
}

/// Appends events to a chunk as they are recorded.
#[derive(Debug, Default)]
pub struct ChunkBuilder {
    chunk: EventChunk,
}

impl ChunkBuilder {
    pub fn push(&mut self, event: &HistoryEventRef<'_>) -> Result<(), serde_json::Error> {
        let buf = &mut self.chunk.json;
        let mark = buf.len();
        if buf.is_empty() {
            buf.push(b'[');
            self.chunk.first_id = event.id;
        } else {
            // Replace the closing bracket by a separator.
            buf.pop();
            buf.push(b',');
        }
        if let Err(e) = serde_json::to_writer(&mut *buf, event) {
            buf.truncate(mark);
            return Err(e);
        }
        buf.push(b']');
        self.chunk.last_id = event.id;
        Ok(())
    }

    pub fn take(&mut self) -> EventChunk {
        // The next chunk is likely as large: reserve it now rather than grow it by copies.
        let capacity = self.chunk.json.capacity();
        let chunk = std::mem::take(&mut self.chunk);
        self.chunk.json.reserve(capacity);
        chunk
    }

    /// The events recorded so far (for live history views).
    pub fn peek(&self) -> &EventChunk {
        &self.chunk
    }
}

/// Filters of `list_executions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFilter {
    pub state_machine: Option<String>,
    pub status: Option<ExecutionStatus>,
    /// Most rows returned (newest first); `None` for the default page size.
    pub limit: Option<usize>,
}

/// Default and largest page of `list_executions`.
pub const LIST_LIMIT_DEFAULT: usize = 100;
pub const LIST_LIMIT_MAX: usize = 1000;

pub fn execution_arn(state_machine: &str, name: &str) -> String {
    format!("{LOCAL_ARN_PREFIX}:execution:{state_machine}:{name}")
}

pub fn state_machine_arn(state_machine: &str) -> String {
    format!("{LOCAL_ARN_PREFIX}:stateMachine:{state_machine}")
}

/// The state machine name in a name or a state machine ARN.
pub fn state_machine_name(name_or_arn: &str) -> &str {
    match name_or_arn.rsplit_once(":stateMachine:") {
        Some((_, name)) => name,
        None => name_or_arn,
    }
}
