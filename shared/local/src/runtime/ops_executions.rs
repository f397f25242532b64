//! The ops endpoints of the local Step Functions, as JSON:
//!
//! - `GET /ops/executions?state_machine=&status=&limit=`: executions, newest first.
//! - `GET /ops/executions/{id}`: the execution, its history (each event with the time
//!   since the execution started, and, for a state exit, how long the state took) and its
//!   `timeline`: one row per state visit with its status, duration, input, output and error
//!   (see `workflows::timeline`).
//! - `GET /ops/state-machines`: the names of the registered state machines.
//! - `GET /ops/ui` (and `/ops`, redirected): the ops web page over these (see `ui`).
//! - `POST /ops/executions` `{"state_machine", "name"?, "input"?}`: starts an execution.
//! - `POST /ops/task-tokens/success` `{"task_token", "output"}` and
//!   `POST /ops/task-tokens/failure` `{"task_token", "error", "cause"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use payops_app::http::ApiError;
use payops_core::asl::events::EventKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::System;
use crate::workflows::model::{LIST_LIMIT_MAX, state_machine_name};
use crate::workflows::timeline::timeline;
use crate::workflows::{ExecutionFilter, ExecutionStatus, ExecutorError, HistoryEvent};

pub fn router(system: Arc<System>) -> axum::Router {
    axum::Router::new()
        .route("/ops/executions", get(list).post(start))
        .route("/ops/executions/{id}", get(show))
        .route("/ops/task-tokens/{outcome}", post(task_token))
        .route("/ops/state-machines", get(state_machines))
        .with_state(system)
        .merge(super::ui::router())
}

fn api_error(e: ExecutorError) -> ApiError {
    match e {
        ExecutorError::UnknownExecution(_)
        | ExecutorError::UnknownStateMachine(_)
        | ExecutorError::UnknownToken => ApiError::not_found(e.to_string()),
        ExecutorError::AlreadyExists { .. } | ExecutorError::TokenClosed => {
            ApiError::conflict(e.to_string())
        }
        ExecutorError::Invalid(_) => ApiError::bad_request("input", e.to_string()),
        other => ApiError::unavailable(other.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub state_machine: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
}

/// The filter of a list request; errors name the field.
pub fn filter(query: &ListQuery) -> Result<ExecutionFilter, ApiError> {
    let status = match &query.status {
        None => None,
        Some(s) => Some(ExecutionStatus::parse(&s.to_uppercase()).ok_or_else(|| {
            ApiError::bad_request(
                "status",
                format!("{s:?} is not RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED"),
            )
        })?),
    };
    if query.limit.is_some_and(|l| l == 0 || l > LIST_LIMIT_MAX) {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be 1..={LIST_LIMIT_MAX}"),
        ));
    }
    Ok(ExecutionFilter {
        state_machine: query
            .state_machine
            .as_deref()
            .map(|n| state_machine_name(n).to_owned()),
        status,
        limit: query.limit,
    })
}

async fn list(
    State(system): State<Arc<System>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let executions = system
        .executor
        .list_executions(&filter(&query)?)
        .await
        .map_err(api_error)?;
    Ok(Json(json!({ "executions": executions })))
}

/// Each event as JSON with `elapsed_ms` (since the execution started) and, on a state's exit,
/// `duration_ms` (since that state was entered in the same scope).
pub fn history_json(events: &[HistoryEvent]) -> Vec<Value> {
    let start = events.first().map(|e| e.timestamp);
    let mut entered: HashMap<(String, String), chrono::DateTime<chrono::Utc>> = HashMap::new();
    events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_else(|_| json!({}));
            if let (Some(start), Some(obj)) = (start, v.as_object_mut()) {
                obj.insert(
                    "elapsed_ms".into(),
                    json!((e.timestamp - start).num_milliseconds()),
                );
                if let Some(state) = state_name(&e.event) {
                    let key = (e.scope.clone(), state.to_owned());
                    if e.event_type.ends_with("StateEntered") {
                        entered.insert(key, e.timestamp);
                    } else if e.event_type.ends_with("StateExited")
                        && let Some(at) = entered.remove(&key)
                    {
                        obj.insert(
                            "duration_ms".into(),
                            json!((e.timestamp - at).num_milliseconds()),
                        );
                    }
                }
            }
            v
        })
        .collect()
}

/// The state an event is about, if it is a state's entry or exit.
fn state_name(event: &EventKind) -> Option<&str> {
    match event {
        EventKind::StateEntered { state, .. } | EventKind::StateExited { state, .. } => Some(state),
        _ => None,
    }
}

async fn show(
    State(system): State<Arc<System>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = system
        .executor
        .describe(&id)
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::not_found(format!("unknown execution {id:?}")))?;
    let history = system
        .executor
        .execution_history(&id)
        .await
        .map_err(api_error)?;
    let timeline = timeline(&history);
    Ok(Json(json!({
        "execution": record,
        "history": history_json(&history),
        "timeline": timeline,
    })))
}

async fn state_machines(State(system): State<Arc<System>>) -> Json<Value> {
    Json(json!({ "state_machines": system.executor.state_machines() }))
}

#[derive(Debug, Deserialize)]
pub struct StartRequest {
    pub state_machine: String,
    /// Defaults to a fresh UUID; the same name with the same input is idempotent.
    pub name: Option<String>,
    #[serde(default)]
    pub input: Value,
}

async fn start(
    State(system): State<Arc<System>>,
    Json(request): Json<StartRequest>,
) -> Result<Json<Value>, ApiError> {
    let name = request
        .name
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let input = match request.input {
        Value::Null => json!({}),
        other => other,
    };
    let id = system
        .executor
        .start(state_machine_name(&request.state_machine), &name, input)
        .await
        .map_err(api_error)?;
    Ok(Json(json!({ "execution_id": id, "name": name })))
}

#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    pub task_token: String,
    #[serde(default)]
    pub output: Value,
    pub error: Option<String>,
    pub cause: Option<String>,
}

async fn task_token(
    State(system): State<Arc<System>>,
    Path(outcome): Path<String>,
    Json(request): Json<TokenRequest>,
) -> Result<Json<Value>, ApiError> {
    let executor = &system.executor;
    match outcome.as_str() {
        "success" => executor
            .send_task_success(&request.task_token, request.output)
            .await
            .map_err(api_error)?,
        "failure" => executor
            .send_task_failure(
                &request.task_token,
                request.error.as_deref().unwrap_or(""),
                request.cause.as_deref().unwrap_or(""),
            )
            .await
            .map_err(api_error)?,
        _ => {
            return Err(ApiError::bad_request(
                "outcome",
                "expected success or failure",
            ));
        }
    }
    Ok(Json(json!({ "outcome": outcome })))
}
