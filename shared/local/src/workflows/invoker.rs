//! How Task states reach the outside world. The local runtime implements [`TaskInvoker`] with
//! the real handlers and local adapters; tests implement it with scripted replies.

use async_trait::async_trait;
use payops_core::asl::Failure;
use payops_core::asl::resource::{DynamoDbOp, Resource, Service};
use serde_json::{Value, json};

/// A failed service call, as Step Functions reports it: an error name (a Lambda's
/// `errorType`, e.g. `Retryable`) and a cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskFailure {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

impl From<TaskFailure> for Failure {
    fn from(t: TaskFailure) -> Self {
        Failure::new(t.error, t.cause)
    }
}

/// The service integrations the definitions use. Each method gets the effective Parameters
/// (after InputPath and the `.$` payload template) and returns the service's response.
#[async_trait]
pub trait TaskInvoker: Send + Sync {
    /// Invokes a function with `payload`; returns the function's output.
    async fn invoke_lambda(&self, function: &str, payload: Value) -> Result<Value, TaskFailure>;

    /// `sqs:sendMessage`: `parameters` holds `QueueUrl`, `MessageBody` (already a string) and
    /// optional `MessageGroupId`, `MessageDeduplicationId`, `DelaySeconds`,
    /// `MessageAttributes`. Returns `{"MessageId", "MD5OfMessageBody"}`.
    async fn send_sqs(&self, parameters: Value) -> Result<Value, TaskFailure>;

    /// `events:putEvents`: `parameters` holds `Entries`. Returns
    /// `{"Entries": [{"EventId"}], "FailedEntryCount": 0}`.
    async fn put_events(&self, parameters: Value) -> Result<Value, TaskFailure>;

    /// `dynamodb:getItem/putItem/updateItem/deleteItem` with DynamoDB JSON parameters; returns
    /// the DynamoDB response (e.g. `{"Item": {...}}` for getItem).
    async fn dynamodb(&self, op: DynamoDbOp, parameters: Value) -> Result<Value, TaskFailure>;
}

/// The function name in a name, a partial ARN or a full ARN (alias and version dropped).
pub fn function_name(name_or_arn: &str) -> &str {
    match name_or_arn.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => name_or_arn,
    }
}

fn invalid(reason: impl Into<String>) -> TaskFailure {
    TaskFailure::new("States.Runtime", reason)
}

/// Calls the integration named by `resource` with the effective `parameters` and shapes the
/// result as Step Functions does (`lambda:invoke` wraps the function output in `Payload`).
pub async fn call_service(
    invoker: &dyn TaskInvoker,
    resource: &Resource,
    parameters: Value,
) -> Result<Value, TaskFailure> {
    match &resource.service {
        Service::LambdaFunction { function } => invoker.invoke_lambda(function, parameters).await,
        Service::LambdaInvoke => {
            let function = parameters
                .get("FunctionName")
                .and_then(Value::as_str)
                .map(|f| function_name(f).to_owned())
                .ok_or_else(|| invalid("lambda:invoke needs a string 'FunctionName'"))?;
            let payload = parameters.get("Payload").cloned().unwrap_or(json!({}));
            let output = invoker.invoke_lambda(&function, payload).await?;
            Ok(json!({
                "ExecutedVersion": "$LATEST",
                "Payload": output,
                "StatusCode": 200,
            }))
        }
        Service::SqsSendMessage => {
            let mut parameters = parameters;
            // A JSON MessageBody is sent as its JSON text, as Step Functions does.
            match parameters.get("MessageBody") {
                Some(Value::String(_)) => {}
                Some(other) => {
                    let text = other.to_string();
                    parameters["MessageBody"] = Value::String(text);
                }
                None => return Err(invalid("sqs:sendMessage needs 'MessageBody'")),
            }
            if !parameters.get("QueueUrl").is_some_and(Value::is_string) {
                return Err(invalid("sqs:sendMessage needs a string 'QueueUrl'"));
            }
            invoker.send_sqs(parameters).await
        }
        Service::EventsPutEvents => {
            if !parameters.get("Entries").is_some_and(Value::is_array) {
                return Err(invalid("events:putEvents needs an 'Entries' array"));
            }
            invoker.put_events(parameters).await
        }
        Service::DynamoDb(op) => invoker.dynamodb(*op, parameters).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert_eq!(function_name("approve"), "approve");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:1:function:approve:live"),
            "approve"
        );
        assert_eq!(function_name("1:function:approve"), "approve");
    }
}
