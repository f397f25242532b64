//! A Step Functions stand-in for tests: records the executions started (refusing a second
//! one of the same name, as Step Functions does) and the task tokens completed (refusing a
//! second completion of a token). Built only with the `fakes` feature.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use crate::ports::{WorkflowError, Workflows};

#[derive(Default)]
pub struct RecordedWorkflows {
    /// Execution names, in start order.
    pub started: Mutex<Vec<String>>,
    /// Task tokens completed with success, and their outputs.
    pub succeeded: Mutex<Vec<(String, Value)>>,
}

/// A poisoned lock means a test panicked while holding it; the list is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Workflows for RecordedWorkflows {
    async fn start_execution(
        &self,
        state_machine: &str,
        name: &str,
        _input: Value,
    ) -> Result<String, WorkflowError> {
        let mut started = lock(&self.started);
        if started.iter().any(|n| n == name) {
            return Err(WorkflowError::AlreadyExists(name.to_owned()));
        }
        started.push(name.to_owned());
        Ok(format!("arn:aws:states:::execution:{state_machine}:{name}"))
    }

    async fn send_task_success(&self, token: &str, output: Value) -> Result<(), WorkflowError> {
        let mut done = lock(&self.succeeded);
        if done.iter().any(|(t, _)| t == token) {
            return Err(WorkflowError::Invalid(format!(
                "task {token} already closed"
            )));
        }
        done.push((token.to_owned(), output));
        Ok(())
    }

    async fn send_task_failure(&self, _: &str, _: &str, _: &str) -> Result<(), WorkflowError> {
        Ok(())
    }
}
