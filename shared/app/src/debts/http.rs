//! The debt intake's HTTP API.
//!
//! - `POST /debts/submissions` `{"client_id"}` → a submission to add lines to;
//!   `POST /debts/submissions/{id}/lines` (a JSON array of debts, repeatable; an optional
//!   `Idempotency-Key` header makes a retry stage nothing and answer the first answer, marked
//!   `Idempotent-Replayed: true`; the same key with another body or submission is a 422 naming
//!   the header; see `submissions::add_lines`);
//!   `POST /debts/submissions/{id}/submit` → a batch.
//! - `POST /debts/files?client_id=…` with a CSV in the default format, streamed to S3 in parts.
//! - `GET /debts/batches/{id}`, `GET /debts/batches?client_id=…&limit=&cursor=`,
//!   `GET /debts/batches/{id}/rejections.csv`.
//! - `PUT /debts/clients/{id}` `{"format": "varejo-sp"}`: the format of a client's drops.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use payops_core::debts::DEFAULT_FORMAT;
use serde::{Deserialize, Serialize};

use super::batch::{Batch, Source, SubBatch};
use super::layout;
use super::{Debts, DebtsError};
use crate::http::ApiError;

pub const SUBMISSIONS_PATH: &str = "/debts/submissions";
pub const FILES_PATH: &str = "/debts/files";
pub const BATCHES_PATH: &str = "/debts/batches";
/// An uploaded file is written to S3 in parts of this size, so it is never held whole.
pub const UPLOAD_PART_BYTES: usize = 8 << 20;
/// Largest upload (API Gateway allows less; `payops up` takes large files).
pub const UPLOAD_BYTES_MAX: usize = 2 << 30;
/// Largest JSON body of the submission endpoints.
pub const JSON_BODY_BYTES_MAX: usize = 8 << 20;

pub fn router(state: Debts) -> Router {
    Router::new()
        .route(SUBMISSIONS_PATH, post(super::submissions::open))
        .route(
            "/debts/submissions/{id}/lines",
            post(super::submissions::add_lines),
        )
        .route(
            "/debts/submissions/{id}/submit",
            post(super::submissions::submit),
        )
        .layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX))
        .route(
            FILES_PATH,
            post(upload).layer(DefaultBodyLimit::max(UPLOAD_BYTES_MAX)),
        )
        .route(BATCHES_PATH, get(list_batches))
        .route("/debts/batches/{id}", get(get_batch))
        .route("/debts/batches/{id}/rejections.csv", get(rejections))
        .route("/debts/clients/{id}", put(set_client))
        .with_state(state)
}

pub(super) fn api_error(e: DebtsError) -> ApiError {
    match e {
        DebtsError::NotFound { .. } => ApiError::not_found(e.to_string()),
        DebtsError::Invalid { field, reason } => ApiError::bad_request(field, reason),
        DebtsError::Conflict(m) => ApiError::conflict(m),
        DebtsError::File(f) => ApiError::bad_request("file", f.to_string()),
        e => {
            tracing::error!(error = %e, "debts API failed");
            ApiError::unavailable("the debt intake is unavailable; retry later")
        }
    }
}

#[derive(Debug, Serialize)]
struct BatchView {
    #[serde(flatten)]
    batch: Batch,
    sub_batches_detail: Vec<SubBatch>,
}

async fn get_batch(
    State(state): State<Debts>,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    let batch = state.require_batch(&id).await.map_err(api_error)?;
    let subs = state.sub_batches(&id).await.map_err(api_error)?;
    Ok(Json(BatchView {
        batch,
        sub_batches_detail: subs,
    }))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    client_id: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_batches(
    State(state): State<Debts>,
    Query(p): Query<ListParams>,
) -> Result<Json<super::batch::BatchPage>, ApiError> {
    let client = p
        .client_id
        .filter(|c| layout::valid_client_id(c))
        .ok_or_else(|| ApiError::bad_request("client_id", "required: the client's id"))?;
    let page = state
        .batches_of(
            &client,
            p.limit.unwrap_or(super::batch::BATCH_PAGE_MAX),
            p.cursor,
        )
        .await
        .map_err(api_error)?;
    Ok(Json(page))
}

async fn rejections(
    State(state): State<Debts>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let batch = state.require_batch(&id).await.map_err(api_error)?;
    let Some(key) = batch.rejections_key else {
        return Err(ApiError::conflict(format!(
            "batch {id} is {}; its rejected lines are written when it completes",
            batch.status.as_str()
        )));
    };
    let blob = state
        .blobs
        .get(&key)
        .await
        .map_err(|e| api_error(e.into()))?
        .ok_or_else(|| ApiError::not_found(format!("rejections of batch {id}")))?;
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        blob.body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ClientSettings {
    format: String,
}

async fn set_client(
    State(state): State<Debts>,
    Path(id): Path<String>,
    Json(body): Json<ClientSettings>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .set_client_format(&id, &body.format)
        .await
        .map_err(api_error)?;
    Ok(Json(
        serde_json::json!({"client_id": id, "format": body.format}),
    ))
}

#[derive(Debug, Deserialize)]
struct UploadParams {
    client_id: Option<String>,
}

/// Streams the body to S3 in parts of `UPLOAD_PART_BYTES`, then receives the file.
async fn upload(
    State(state): State<Debts>,
    Query(p): Query<UploadParams>,
    body: Body,
) -> Result<(StatusCode, Json<Batch>), ApiError> {
    let client = p
        .client_id
        .filter(|c| layout::valid_client_id(c))
        .ok_or_else(|| {
            ApiError::bad_request(
                "client_id",
                "required: 1-64 letters, digits, '-', '_' or '.'",
            )
        })?;
    let batch_id = format!("u_{}", uuid::Uuid::now_v7().simple());
    let mut stream = body.into_data_stream();
    let mut part = BytesMut::with_capacity(UPLOAD_PART_BYTES);
    let mut keys = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("body", e.to_string()))?;
        total += chunk.len();
        part.extend_from_slice(&chunk);
        if part.len() >= UPLOAD_PART_BYTES {
            let key = layout::upload_object(&client, &batch_id, keys.len() as u32);
            put_part(&state, &key, part.split().freeze()).await?;
            keys.push(key);
        }
    }
    if !part.is_empty() || keys.is_empty() {
        let key = layout::upload_object(&client, &batch_id, keys.len() as u32);
        put_part(&state, &key, part.freeze()).await?;
        keys.push(key);
    }
    tracing::info!(
        batch_id,
        bytes = total,
        parts = keys.len(),
        "debt file uploaded"
    );
    let batch = state
        .receive_file(
            &batch_id,
            &client,
            Source::Upload,
            Some(DEFAULT_FORMAT.to_owned()),
            keys,
        )
        .await
        .map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(batch)))
}

async fn put_part(state: &Debts, key: &str, body: Bytes) -> Result<(), ApiError> {
    state
        .blobs
        .put(key, body, "text/csv")
        .await
        .map(|_| ())
        .map_err(|e| api_error(e.into()))
}
