//! The `Workflows` port: Step Functions executions and task tokens.

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// An execution with this name already exists for the state machine.
    #[error("execution already exists: {0}")]
    AlreadyExists(String),
    #[error("unknown state machine or task token: {0}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("workflow service unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Workflows: Send + Sync {
    /// Starts an execution named `name` (idempotent per name); returns its execution id/ARN.
    async fn start_execution(
        &self,
        state_machine: &str,
        name: &str,
        input: serde_json::Value,
    ) -> Result<String, WorkflowError>;

    async fn send_task_success(
        &self,
        task_token: &str,
        output: serde_json::Value,
    ) -> Result<(), WorkflowError>;

    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError>;
}
