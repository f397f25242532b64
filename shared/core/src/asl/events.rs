//! History events: what happened in an execution, in the vocabulary of the Step Functions
//! console (`TaskStateEntered`, `TaskFailed`, `MapIterationStarted`, …).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::definition::StateType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Adjacently tagged, tag first: deserialising needs no buffering, which would lose exact
// numbers under serde_json's arbitrary_precision.
#[serde(tag = "kind", content = "details")]
pub enum EventKind {
    ExecutionStarted {
        input: Value,
    },
    ExecutionSucceeded {
        output: Value,
    },
    ExecutionFailed {
        error: String,
        cause: String,
    },
    ExecutionTimedOut {
        error: String,
        cause: String,
    },
    ExecutionAborted {
        error: String,
        cause: String,
    },
    StateEntered {
        state: String,
        state_type: StateType,
        input: Value,
    },
    StateExited {
        state: String,
        state_type: StateType,
        output: Value,
    },
    /// A Wait state (or a retry) sleeps until this instant (RFC 3339).
    WaitScheduled {
        until: String,
    },
    TaskScheduled {
        resource: String,
        parameters: Value,
        timeout_seconds: Option<u64>,
        heartbeat_seconds: Option<u64>,
    },
    TaskStarted {
        resource: String,
    },
    /// A `.waitForTaskToken` call was accepted; the task now waits for its token.
    TaskSubmitted {
        resource: String,
        output: Value,
    },
    TaskSucceeded {
        resource: String,
        output: Value,
    },
    TaskFailed {
        resource: String,
        error: String,
        cause: String,
    },
    TaskTimedOut {
        resource: String,
        error: String,
        cause: String,
    },
    /// A Retry clause matched: the state runs again after `delay_ms`.
    RetryScheduled {
        error: String,
        retrier: usize,
        attempt: u32,
        delay_ms: u64,
    },
    /// A Catch clause matched: the execution continues at `next`.
    ErrorCaught {
        error: String,
        cause: String,
        next: String,
    },
    ParallelStateStarted {
        branches: usize,
    },
    ParallelStateSucceeded,
    ParallelStateFailed {
        error: String,
        cause: String,
    },
    MapStateStarted {
        length: usize,
    },
    MapIterationStarted {
        index: usize,
    },
    MapIterationSucceeded {
        index: usize,
    },
    MapIterationFailed {
        index: usize,
        error: String,
        cause: String,
    },
    MapIterationAborted {
        index: usize,
    },
    MapStateSucceeded,
    MapStateFailed {
        error: String,
        cause: String,
    },
}

impl EventKind {
    /// The console's event type name, e.g. `TaskStateEntered`.
    pub fn type_name(&self) -> String {
        match self {
            EventKind::StateEntered { state_type, .. } => {
                format!("{}StateEntered", state_type.name())
            }
            EventKind::StateExited { state_type, .. } => {
                format!("{}StateExited", state_type.name())
            }
            other => {
                // Serialised tag of the variant: the variant name itself.
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_default()
            }
        }
    }

    /// Whether this event reports a failure (the ops view highlights it).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            EventKind::ExecutionFailed { .. }
                | EventKind::ExecutionTimedOut { .. }
                | EventKind::ExecutionAborted { .. }
                | EventKind::TaskFailed { .. }
                | EventKind::TaskTimedOut { .. }
                | EventKind::ParallelStateFailed { .. }
                | EventKind::MapIterationFailed { .. }
                | EventKind::MapStateFailed { .. }
        )
    }
}

/// Where events go while the engine decides; the executor adds ids and timestamps.
pub trait EventSink {
    fn record(&mut self, event: EventKind);
}

impl EventSink for Vec<EventKind> {
    fn record(&mut self, event: EventKind) {
        self.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exact_numbers() {
        let e = EventKind::TaskSucceeded {
            resource: "r".into(),
            output: serde_json::from_str(r#"{"amount": 12345678901234567890.123456789}"#)
                .expect("json"),
        };
        let text = serde_json::to_string(&e).expect("serialises");
        assert!(
            text.starts_with(r#"{"kind":"TaskSucceeded","details":"#),
            "{text}"
        );
        let back: EventKind = serde_json::from_str(&text).expect("deserialises");
        assert_eq!(back, e);
        assert!(
            serde_json::to_string(&back)
                .expect("serialises")
                .contains("12345678901234567890.123456789")
        );
    }

    #[test]
    fn console_names() {
        let e = EventKind::StateEntered {
            state: "A".into(),
            state_type: StateType::Task,
            input: Value::Null,
        };
        assert_eq!(e.type_name(), "TaskStateEntered");
        assert_eq!(
            EventKind::MapIterationStarted { index: 1 }.type_name(),
            "MapIterationStarted"
        );
        assert!(
            EventKind::TaskFailed {
                resource: "r".into(),
                error: "e".into(),
                cause: "c".into()
            }
            .is_failure()
        );
    }
}
