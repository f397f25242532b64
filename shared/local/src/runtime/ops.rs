//! The ops endpoints of `payops up`, for people and for tests and benchmarks.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use payops_app::handler::EventHandler;
use payops_app::http::ApiError;
use payops_app::ports::Queue;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::System;

#[derive(Clone)]
pub struct Control {
    pub pause: Arc<watch::Sender<bool>>,
    pub stop: Arc<watch::Sender<bool>>,
    pub paused: watch::Receiver<bool>,
    pub stopped: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("no scheduled function named {0:?}")]
    Unknown(String),
    #[error("{0}")]
    Failed(#[from] payops_app::HandlerError),
}

pub async fn trigger(
    functions: &[(String, Arc<dyn EventHandler>)],
    now: DateTime<Utc>,
    name: &str,
    detail: Value,
) -> Result<Value, TriggerError> {
    let (_, handler) = functions
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| TriggerError::Unknown(name.to_owned()))?;
    let event = super::scheduler::scheduled_event(&format!("manual-{name}"), now, detail);
    Ok(handler.handle(event).await?)
}

pub fn router(system: Arc<System>) -> axum::Router {
    axum::Router::new()
        .route(
            "/ops/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/ops/functions", get(functions))
        .route("/ops/queues", get(queues))
        .route("/ops/trigger/{name}", post(trigger_route))
        .route("/ops/pollers/{action}", post(pollers))
        .with_state(system)
}

async fn functions(State(system): State<Arc<System>>) -> Json<Value> {
    let list: Vec<Value> = system
        .env
        .template
        .functions
        .iter()
        .map(|f| json!({"name": f.binary, "logical_id": f.logical_id, "triggers": f.triggers.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>()}))
        .collect();
    Json(json!({ "functions": list }))
}

async fn queues(State(system): State<Arc<System>>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for spec in &system.env.template.queues {
        if let Some(q) = system.env.local_queue(&spec.logical_id) {
            let depth = q
                .approximate_depth()
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            out.push(json!({"name": spec.logical_id, "depth": depth}));
        }
    }
    Ok(Json(json!({ "queues": out })))
}

async fn trigger_route(
    State(system): State<Arc<System>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, ApiError> {
    let detail = body.map(|Json(v)| v).unwrap_or_else(|| json!({}));
    match system.trigger(&name, detail).await {
        Ok(v) => Ok(Json(v)),
        Err(TriggerError::Unknown(n)) => Err(ApiError::not_found(format!(
            "no scheduled function named {n}"
        ))),
        Err(TriggerError::Failed(e)) => Err(ApiError::unavailable(e.to_string())),
    }
}

async fn pollers(
    State(system): State<Arc<System>>,
    Path(action): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return Err(ApiError::bad_request("action", "expected pause or resume")),
    };
    let _ = system.control.pause.send(paused);
    Ok(Json(json!({ "paused": paused })))
}
