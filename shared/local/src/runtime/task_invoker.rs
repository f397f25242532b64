//! The local runtime's [`TaskInvoker`]: how a Task state of a local state machine reaches the
//! functions and resources of `payops up`.
//!
//! - `lambda:invoke`: the `FunctionName` is what the template's `DefinitionSubstitutions` put
//!   there (`Fn::GetAtt [XFunction, Arn]` → the logical id `XFunction`); it resolves to the
//!   function's binary name through the template, then to its [`TaskHandler`]. A binary name
//!   works too. The handler's error type (`Retryable`, `Rejected`, `Fatal`) is the ASL error.
//! - `sqs:sendMessage`: the local queue whose name is the last segment of `QueueUrl`.
//! - `events:putEvents`: the local event bus.
//! - `dynamodb:getItem|putItem|updateItem|deleteItem`: the catalogue table `TableName` names
//!   (logical id, as `Ref: XTable` substitutes; see `dynamodb_task`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use payops_app::handler::TaskHandler;
use payops_app::ports::{Event, Events, OutgoingMessage, Queue};
use payops_core::asl::resource::DynamoDbOp;
use serde_json::{Value, json};

use super::dynamodb_task;
use crate::store::LocalStore;
use crate::template::FunctionSpec;
use crate::workflows::invoker::function_name;
use crate::workflows::{TaskFailure, TaskInvoker};

/// The ASL error of a failed integration call that is not the function's own error.
const TASK_FAILED: &str = "States.TaskFailed";

pub struct LocalTaskInvoker {
    store: LocalStore,
    event_bus: String,
    functions: Vec<FunctionSpec>,
    handlers: RwLock<HashMap<String, Arc<dyn TaskHandler>>>,
}

impl LocalTaskInvoker {
    pub fn new(store: LocalStore, event_bus: &str, functions: Vec<FunctionSpec>) -> Self {
        LocalTaskInvoker {
            store,
            event_bus: event_bus.to_owned(),
            functions,
            handlers: RwLock::new(HashMap::new()),
        }
    }

    /// Makes the Task function `binary` invocable (the runtime does this for every
    /// `Function::Task` of the registry; tests may add their own).
    pub fn add_function(&self, binary: &str, handler: Arc<dyn TaskHandler>) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(binary.to_owned(), handler);
    }

    /// The binary of a function given by logical id (what the substitutions give) or binary.
    fn binary<'a>(&'a self, name: &'a str) -> &'a str {
        self.functions
            .iter()
            .find(|f| f.logical_id == name)
            .map_or(name, |f| f.binary.as_str())
    }

    fn handler(&self, name_or_arn: &str) -> Result<Arc<dyn TaskHandler>, TaskFailure> {
        let name = function_name(name_or_arn);
        let binary = self.binary(name);
        self.handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(binary)
            .cloned()
            .ok_or_else(|| {
                TaskFailure::new(
                    TASK_FAILED,
                    format!("no local task function named {name:?} (binary {binary:?})"),
                )
            })
    }
}

fn str_field<'a>(parameters: &'a Value, field: &str) -> Option<&'a str> {
    parameters.get(field).and_then(Value::as_str)
}

fn message(parameters: &Value) -> Result<OutgoingMessage, TaskFailure> {
    let body = str_field(parameters, "MessageBody")
        .ok_or_else(|| TaskFailure::new(TASK_FAILED, "MessageBody must be a string"))?;
    let delay_seconds = match parameters.get("DelaySeconds") {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| TaskFailure::new(TASK_FAILED, "DelaySeconds must be a whole number"))?,
    };
    Ok(OutgoingMessage {
        body: body.to_owned(),
        group_id: str_field(parameters, "MessageGroupId").map(str::to_owned),
        deduplication_id: str_field(parameters, "MessageDeduplicationId").map(str::to_owned),
        delay_seconds,
        attributes: Default::default(),
    })
}

fn event(index: usize, entry: &Value) -> Result<Event, TaskFailure> {
    let field = |name: &str| {
        str_field(entry, name).map(str::to_owned).ok_or_else(|| {
            TaskFailure::new(
                TASK_FAILED,
                format!("Entries[{index}].{name} must be a string"),
            )
        })
    };
    let detail = match entry.get("Detail") {
        // PutEvents takes Detail as JSON text; a definition may also give an object.
        Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
            TaskFailure::new(
                TASK_FAILED,
                format!("Entries[{index}].Detail is not JSON: {e}"),
            )
        })?,
        Some(other) => other.clone(),
        None => json!({}),
    };
    Ok(Event {
        source: field("Source")?,
        detail_type: field("DetailType")?,
        detail,
    })
}

#[async_trait]
impl TaskInvoker for LocalTaskInvoker {
    async fn invoke_lambda(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        let handler = self.handler(function)?;
        handler
            .handle(payload)
            .await
            .map_err(|e| TaskFailure::new(e.error_type(), e.to_string()))
    }

    async fn send_sqs(&self, parameters: Value) -> Result<Value, TaskFailure> {
        let url = str_field(&parameters, "QueueUrl")
            .ok_or_else(|| TaskFailure::new(TASK_FAILED, "QueueUrl must be a string"))?;
        let name = url.rsplit('/').next().unwrap_or(url);
        let queue = self
            .store
            .queue_named(name)
            .ok_or_else(|| TaskFailure::new(TASK_FAILED, format!("no local queue {name:?}")))?;
        let ids = queue
            .send_batch(vec![message(&parameters)?])
            .await
            .map_err(|e| TaskFailure::new(TASK_FAILED, e.to_string()))?;
        Ok(json!({ "MessageId": ids.first() }))
    }

    async fn put_events(&self, parameters: Value) -> Result<Value, TaskFailure> {
        let entries = parameters
            .get("Entries")
            .and_then(Value::as_array)
            .ok_or_else(|| TaskFailure::new(TASK_FAILED, "Entries must be an array"))?;
        let events = entries
            .iter()
            .enumerate()
            .map(|(i, e)| event(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        let count = events.len();
        self.store
            .events(&self.event_bus)
            .put_events(events)
            .await
            .map_err(|e| TaskFailure::new(TASK_FAILED, e.to_string()))?;
        let ids: Vec<Value> = (0..count)
            .map(|_| json!({ "EventId": uuid::Uuid::new_v4().to_string() }))
            .collect();
        Ok(json!({ "Entries": ids, "FailedEntryCount": 0 }))
    }

    async fn dynamodb(&self, op: DynamoDbOp, parameters: Value) -> Result<Value, TaskFailure> {
        let failure = |e: dynamodb_task::DdbError| TaskFailure::new(e.error, e.cause);
        let name = dynamodb_task::table_name(&parameters).map_err(failure)?;
        let def = dynamodb_task::local_table(name).ok_or_else(|| {
            TaskFailure::new(
                dynamodb_task::RESOURCE_NOT_FOUND,
                format!("TableName: no local table {name:?} in the catalogue"),
            )
        })?;
        let table = self
            .store
            .table(def.spec(def.logical_id))
            .map_err(|e| TaskFailure::new(dynamodb_task::INTERNAL, e.to_string()))?;
        dynamodb_task::execute(table.as_ref(), op, &parameters)
            .await
            .map_err(failure)
    }
}
