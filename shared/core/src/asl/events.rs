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
        // Left out when absent (most tasks): history is written per task, and a missing
        // Option reads back as None.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::StateEntered { state_type, .. } => match state_type {
                StateType::Pass => "PassStateEntered",
                StateType::Task => "TaskStateEntered",
                StateType::Choice => "ChoiceStateEntered",
                StateType::Wait => "WaitStateEntered",
                StateType::Succeed => "SucceedStateEntered",
                StateType::Fail => "FailStateEntered",
                StateType::Parallel => "ParallelStateEntered",
                StateType::Map => "MapStateEntered",
            },
            EventKind::StateExited { state_type, .. } => match state_type {
                StateType::Pass => "PassStateExited",
                StateType::Task => "TaskStateExited",
                StateType::Choice => "ChoiceStateExited",
                StateType::Wait => "WaitStateExited",
                StateType::Succeed => "SucceedStateExited",
                StateType::Fail => "FailStateExited",
                StateType::Parallel => "ParallelStateExited",
                StateType::Map => "MapStateExited",
            },
            EventKind::ExecutionStarted { .. } => "ExecutionStarted",
            EventKind::ExecutionSucceeded { .. } => "ExecutionSucceeded",
            EventKind::ExecutionFailed { .. } => "ExecutionFailed",
            EventKind::ExecutionTimedOut { .. } => "ExecutionTimedOut",
            EventKind::ExecutionAborted { .. } => "ExecutionAborted",
            EventKind::WaitScheduled { .. } => "WaitScheduled",
            EventKind::TaskScheduled { .. } => "TaskScheduled",
            EventKind::TaskStarted { .. } => "TaskStarted",
            EventKind::TaskSubmitted { .. } => "TaskSubmitted",
            EventKind::TaskSucceeded { .. } => "TaskSucceeded",
            EventKind::TaskFailed { .. } => "TaskFailed",
            EventKind::TaskTimedOut { .. } => "TaskTimedOut",
            EventKind::RetryScheduled { .. } => "RetryScheduled",
            EventKind::ErrorCaught { .. } => "ErrorCaught",
            EventKind::ParallelStateStarted { .. } => "ParallelStateStarted",
            EventKind::ParallelStateSucceeded => "ParallelStateSucceeded",
            EventKind::ParallelStateFailed { .. } => "ParallelStateFailed",
            EventKind::MapStateStarted { .. } => "MapStateStarted",
            EventKind::MapIterationStarted { .. } => "MapIterationStarted",
            EventKind::MapIterationSucceeded { .. } => "MapIterationSucceeded",
            EventKind::MapIterationFailed { .. } => "MapIterationFailed",
            EventKind::MapIterationAborted { .. } => "MapIterationAborted",
            EventKind::MapStateSucceeded => "MapStateSucceeded",
            EventKind::MapStateFailed { .. } => "MapStateFailed",
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
    fn absent_task_timeouts_are_left_out_and_read_back() {
        let e = EventKind::TaskScheduled {
            resource: "r".into(),
            parameters: Value::Null,
            timeout_seconds: None,
            heartbeat_seconds: Some(5),
        };
        let text = serde_json::to_string(&e).expect("serialises");
        assert!(!text.contains("timeout_seconds"), "{text}");
        assert_eq!(serde_json::from_str::<EventKind>(&text).expect("reads"), e);
        let old = r#"{"kind":"TaskScheduled","details":{"resource":"r","parameters":null,"timeout_seconds":null,"heartbeat_seconds":5}}"#;
        assert_eq!(serde_json::from_str::<EventKind>(old).expect("reads"), e);
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
