//! The `Workflows` port on Step Functions.

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use payops_app::ports::{WorkflowError, Workflows};

use crate::sdk_error::{Fault, classify, describe};

/// Step Functions' limit on an execution name.
pub const EXECUTION_NAME_CHARS_MAX: usize = 80;
/// Step Functions' limits on `SendTaskFailure`'s error and cause.
pub const TASK_ERROR_CHARS_MAX: usize = 256;
pub const TASK_CAUSE_CHARS_MAX: usize = 32_768;

#[derive(Debug, Clone)]
pub struct SfnWorkflows {
    client: Client,
}

impl SfnWorkflows {
    pub fn new(client: Client) -> Self {
        SfnWorkflows { client }
    }
}

fn workflow_error<E>(err: SdkError<E, HttpResponse>) -> WorkflowError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(err) {
        Fault::Unavailable(e) => WorkflowError::Unavailable(e),
        Fault::Rejected(m) => WorkflowError::Invalid(m),
    }
}

/// Characters Step Functions refuses in an execution name (besides white space and control
/// characters).
const EXECUTION_NAME_FORBIDDEN: &str = "<>{}[]?*\"#%\\^|~`$&,;:/";

/// Step Functions' rule for execution names.
fn execution_name_ok(name: &str) -> bool {
    let length = name.chars().count();
    (1..=EXECUTION_NAME_CHARS_MAX).contains(&length)
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !EXECUTION_NAME_FORBIDDEN.contains(c))
}

/// Cuts `text` to at most `max` characters (Step Functions counts characters).
fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[async_trait]
impl Workflows for SfnWorkflows {
    async fn start_execution(
        &self,
        state_machine: &str,
        name: &str,
        input: serde_json::Value,
    ) -> Result<String, WorkflowError> {
        if !execution_name_ok(name) {
            return Err(WorkflowError::Invalid(format!(
                "execution name {name:?}: 1..={EXECUTION_NAME_CHARS_MAX} characters without \
                 spaces, control characters or any of {EXECUTION_NAME_FORBIDDEN}"
            )));
        }
        let result = self
            .client
            .start_execution()
            .state_machine_arn(state_machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.execution_arn().to_owned()),
            Err(e) => Err(match e.as_service_error() {
                Some(StartExecutionError::ExecutionAlreadyExists(_)) => {
                    WorkflowError::AlreadyExists(name.to_owned())
                }
                Some(StartExecutionError::StateMachineDoesNotExist(_)) => {
                    WorkflowError::NotFound(describe(&e))
                }
                _ => workflow_error(e),
            }),
        }
    }

    async fn send_task_success(
        &self,
        task_token: &str,
        output: serde_json::Value,
    ) -> Result<(), WorkflowError> {
        let result = self
            .client
            .send_task_success()
            .task_token(task_token)
            .output(output.to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.as_service_error() {
                Some(
                    SendTaskSuccessError::TaskDoesNotExist(_)
                    | SendTaskSuccessError::TaskTimedOut(_),
                ) => WorkflowError::NotFound(describe(&e)),
                _ => workflow_error(e),
            }),
        }
    }

    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        let result = self
            .client
            .send_task_failure()
            .task_token(task_token)
            // Over-long texts would turn a failure report into a validation error.
            .error(truncate_chars(error, TASK_ERROR_CHARS_MAX))
            .cause(truncate_chars(cause, TASK_CAUSE_CHARS_MAX))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.as_service_error() {
                Some(
                    SendTaskFailureError::TaskDoesNotExist(_)
                    | SendTaskFailureError::TaskTimedOut(_),
                ) => WorkflowError::NotFound(describe(&e)),
                _ => workflow_error(e),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_follow_step_functions_rules() {
        for ok in [
            "run-1",
            "batch_2024.01.01",
            "approve+B1=x",
            "ação",
            &"x".repeat(80),
        ] {
            assert!(execution_name_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "tab\t",
            "a/b",
            "a:b",
            "{x}",
            "50%",
            &"x".repeat(81),
        ] {
            assert!(!execution_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn failure_texts_are_cut_by_characters() {
        assert_eq!(truncate_chars("ação", 2), "aç");
        assert_eq!(truncate_chars("ok", 10), "ok");
    }
}
