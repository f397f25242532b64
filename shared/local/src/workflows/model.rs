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

/// Most capacity a new chunk reserves up front (a little over the default flush size).
const CHUNK_RESERVE_BYTES_MAX: usize = 320 * 1024;

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

    /// Appends events that all happened at `now` in `scope`, ids from `first_id`: the same
    /// JSON as [`ChunkBuilder::push`] gives, with the envelope written by hand and the
    /// timestamp formatted once (serde's per-field calls and chrono's `Display` were a fifth
    /// of the executor's time per transition).
    pub fn push_all(
        &mut self,
        first_id: u64,
        now: DateTime<Utc>,
        scope: &str,
        events: &[EventKind],
    ) -> Result<(), serde_json::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let timestamp = TimestampText::new(now);
        let buf = &mut self.chunk.json;
        let mark = buf.len();
        let first = buf.is_empty();
        if first {
            buf.push(b'[');
        } else {
            buf.pop();
            buf.push(b',');
        }
        if let Err(e) = write_events(buf, first_id, timestamp.as_bytes(), scope, events) {
            // Back to the chunk as it was, its closing bracket included.
            buf.truncate(mark);
            if let Some(last) = buf.last_mut() {
                *last = b']';
            }
            return Err(e);
        }
        buf.push(b']');
        if first {
            self.chunk.first_id = first_id;
        }
        self.chunk.last_id = first_id + events.len() as u64 - 1;
        Ok(())
    }

    pub fn take(&mut self) -> EventChunk {
        // The next chunk is likely as large: reserve it now rather than grow it by copies
        // (but not beyond a flush-sized buffer: a huge one is fresh memory, page-faulted in).
        let capacity = self.chunk.json.capacity().min(CHUNK_RESERVE_BYTES_MAX);
        let chunk = std::mem::take(&mut self.chunk);
        self.chunk.json.reserve(capacity);
        chunk
    }

    /// Bytes of serialised history gathered so far.
    pub fn len(&self) -> usize {
        self.chunk.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunk.json.is_empty()
    }

    /// The events recorded so far (for live history views).
    pub fn peek(&self) -> &EventChunk {
        &self.chunk
    }
}

/// Writes `events` as JSON objects separated by commas (ids from `first_id`), the envelope by
/// hand and the scope escaped in place.
fn write_events(
    buf: &mut Vec<u8>,
    first_id: u64,
    timestamp: &[u8],
    scope: &str,
    events: &[EventKind],
) -> Result<(), serde_json::Error> {
    for (i, (event, id)) in events.iter().zip(first_id..).enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"id\":");
        buf.extend_from_slice(itoa_u64(id, &mut [0; 20]));
        buf.extend_from_slice(b",\"timestamp\":\"");
        buf.extend_from_slice(timestamp);
        buf.extend_from_slice(b"\",\"scope\":");
        serde_json::to_writer(&mut *buf, scope)?;
        buf.extend_from_slice(b",\"type\":\"");
        // Type names are ASCII identifiers: nothing to escape.
        buf.extend_from_slice(event.type_name().as_bytes());
        buf.extend_from_slice(b"\",\"event\":");
        serde_json::to_writer(&mut *buf, event)?;
        buf.push(b'}');
    }
    Ok(())
}

/// Decimal digits of `n`, written into `buf`.
fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        // n % 10 < 10: the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// A UTC instant as chrono's serde writes it (`2026-11-22T03:04:05.123456Z`: the fraction
/// with 0, 3, 6 or 9 digits, the fewest that are exact), formatted without `fmt`.
pub struct TimestampText {
    buf: [u8; TIMESTAMP_TEXT_BYTES_MAX],
    len: usize,
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` is 30; chrono's years beyond 0..=9999 take a sign and
/// up to 6 digits.
const TIMESTAMP_TEXT_BYTES_MAX: usize = 40;

impl TimestampText {
    pub fn new(t: DateTime<Utc>) -> TimestampText {
        use chrono::{Datelike, Timelike};
        let mut out = TimestampText {
            buf: [0; TIMESTAMP_TEXT_BYTES_MAX],
            len: 0,
        };
        let nanos = t.nanosecond();
        let year = t.year();
        // Years outside 0..=9999 and leap seconds are left to chrono (never seen in practice).
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            let text = serde_json::to_string(&t).unwrap_or_default();
            let text = text.trim_matches('"').as_bytes();
            let n = text.len().min(TIMESTAMP_TEXT_BYTES_MAX);
            out.buf[..n].copy_from_slice(&text[..n]);
            out.len = n;
            return out;
        }
        out.put(year as u32, 4);
        out.push(b'-');
        out.put(t.month(), 2);
        out.push(b'-');
        out.put(t.day(), 2);
        out.push(b'T');
        out.put(t.hour(), 2);
        out.push(b':');
        out.put(t.minute(), 2);
        out.push(b':');
        out.put(t.second(), 2);
        if nanos != 0 {
            out.push(b'.');
            if nanos.is_multiple_of(1_000_000) {
                out.put(nanos / 1_000_000, 3);
            } else if nanos.is_multiple_of(1_000) {
                out.put(nanos / 1_000, 6);
            } else {
                out.put(nanos, 9);
            }
        }
        out.push(b'Z');
        out
    }

    fn push(&mut self, c: u8) {
        self.buf[self.len] = c;
        self.len += 1;
    }

    /// `value`'s last `digits` decimal digits, zero-padded.
    fn put(&mut self, value: u32, digits: u32) {
        let mut div = 10u32.pow(digits - 1);
        for _ in 0..digits {
            // A single decimal digit: the cast cannot truncate.
            self.push(b'0' + ((value / div) % 10) as u8);
            div /= 10;
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let base: DateTime<Utc> = "2026-11-22T03:04:05Z".parse().expect("timestamp");
        for nanos in [
            0i64,
            1,
            7_000,
            123_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
        ] {
            for days in [0i64, 1, 40, 400, -800_000] {
                let t = base + chrono::Duration::nanoseconds(nanos) + chrono::Duration::days(days);
                let expected = serde_json::to_string(&t).expect("serialises");
                let ours = format!(
                    "\"{}\"",
                    std::str::from_utf8(TimestampText::new(t).as_bytes()).expect("ascii")
                );
                assert_eq!(ours, expected);
            }
        }
    }

    #[test]
    fn a_chunk_written_by_push_all_reads_back_as_push_writes_it() {
        let now: DateTime<Utc> = "2026-11-22T03:04:05.5Z".parse().expect("timestamp");
        let events = [
            EventKind::MapIterationStarted { index: 3 },
            EventKind::TaskSucceeded {
                resource: "arn:\"odd\"".into(),
                output: serde_json::from_str(r#"{"amount": 12345678901234567890.123456789}"#)
                    .expect("json"),
            },
        ];
        let mut fast = ChunkBuilder::default();
        fast.push_all(7, now, "Items/\"x\"", &events[..1])
            .expect("writes");
        fast.push_all(8, now, "Items/\"x\"", &events[1..])
            .expect("writes");
        let mut slow = ChunkBuilder::default();
        for (i, event) in events.iter().enumerate() {
            slow.push(&HistoryEventRef {
                id: 7 + i as u64,
                timestamp: now,
                scope: "Items/\"x\"",
                event_type: event.type_name(),
                event,
            })
            .expect("writes");
        }
        assert_eq!(fast.peek(), slow.peek());
        let parsed = fast.take().parse().expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].id, 8);
        assert_eq!(parsed[1].event, events[1]);
    }
}
