//! Runtime failures of a state machine: an error name and a cause, as Step Functions reports them.

use serde::{Deserialize, Serialize};

/// Predefined error names of the States Language (a Retry/Catch `ErrorEquals` may name them).
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const RUNTIME: &str = "States.Runtime";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const TASK_TOKEN_INVALID: &str = "States.TaskTokenInvalid";
    pub const ABORTED: &str = "States.Aborted";
}

/// An error raised while running a state: by a task, by a Fail state, or by the interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            cause: cause.into(),
        }
    }
    pub fn runtime(cause: impl Into<String>) -> Self {
        Failure::new(names::RUNTIME, cause)
    }
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Failure::new(names::INTRINSIC_FAILURE, cause)
    }

    /// `States.Runtime` and `States.DataLimitExceeded` end the execution: no Retry or Catch
    /// (not even `States.ALL`) applies to them.
    pub fn is_terminal(&self) -> bool {
        self.error == names::RUNTIME || self.error == names::DATA_LIMIT_EXCEEDED
    }

    /// The `{ "Error", "Cause" }` object a Catch hands to its next state.
    pub fn to_error_output(&self) -> serde_json::Value {
        serde_json::json!({ "Error": self.error, "Cause": self.cause })
    }
}

/// Whether an `ErrorEquals` list matches the error name. `States.ALL` matches every error and
/// `States.TaskFailed` every error but `States.Timeout`; neither matches terminal errors.
pub fn error_matches(error_equals: &[String], failure: &Failure) -> bool {
    if failure.is_terminal() {
        return false;
    }
    error_equals.iter().any(|e| {
        e == &failure.error
            || e == names::ALL
            || (e == names::TASK_FAILED && failure.error != names::TIMEOUT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wildcards() {
        let custom = Failure::new("Rejected", "bad row");
        let timeout = Failure::new(names::TIMEOUT, "");
        let runtime = Failure::runtime("bad path");
        assert!(error_matches(&list(&["Rejected"]), &custom));
        assert!(!error_matches(&list(&["Other"]), &custom));
        assert!(error_matches(&list(&[names::ALL]), &timeout));
        assert!(error_matches(&list(&[names::TASK_FAILED]), &custom));
        assert!(!error_matches(&list(&[names::TASK_FAILED]), &timeout));
        assert!(!error_matches(&list(&[names::ALL]), &runtime));
        assert!(!error_matches(&list(&[names::RUNTIME]), &runtime));
    }
}
