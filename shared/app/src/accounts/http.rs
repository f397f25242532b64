//! The HTTP API of the flow, with the routes and field names of the original specification.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use payops_core::accounts::IdempotencyKey;

use super::fields::{self, Object};
use super::layout::{AccountView, TxView};
use super::money::MoveResult;
use super::{Accounts, account, advances, money, report};
use crate::http::ApiError;

pub const ACCOUNTS_PATH: &str = "/api/v1/accounts";
pub const TRANSACTION_PATH: &str = "/api/v1/transaction";
pub const BANK_TRANSACTIONS_PATH: &str = "/api/v1/bank_transactions";
pub const TRANSACTIONS_PATH: &str = "/api/v1/transactions";
pub const ADVANCES_PATH: &str = "/api/v1/advances";
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set to `true` on a response that repeats the first result of an `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Largest request body: every request of this API is a few short fields.
pub const REQUEST_BODY_BYTES_MAX: usize = 16 * 1024;

/// `POST/GET /api/v1/accounts`, `POST /api/v1/transaction`, `POST /api/v1/bank_transactions`,
/// `GET /api/v1/transactions`, `POST/GET /api/v1/advances`.
pub fn router(state: Accounts) -> Router {
    Router::new()
        .route(ACCOUNTS_PATH, post(create_account))
        .route(&format!("{ACCOUNTS_PATH}/{{id}}"), get(get_account))
        .route(TRANSACTION_PATH, post(transfer))
        .route(BANK_TRANSACTIONS_PATH, post(bank_transaction))
        .route(TRANSACTIONS_PATH, get(transactions))
        .route(ADVANCES_PATH, post(create_advance))
        .route(&format!("{ADVANCES_PATH}/{{id}}"), get(get_advance))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(state)
}

fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Object, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                error: "too_large",
                message: format!("the body is larger than {REQUEST_BODY_BYTES_MAX} bytes"),
                field: Some("body".to_owned()),
            }
        } else {
            ApiError::bad_request("body", "could not be read")
        }
    })?;
    Ok(fields::object(&body)?)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key", "must be visible ASCII"))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|e| ApiError::bad_request("Idempotency-Key", e.to_string()))
}

fn created(body: impl serde::Serialize, replayed: bool) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

fn moved(result: MoveResult) -> Response {
    created(TxView::from(&result.record), result.replayed)
}

async fn create_account(
    State(state): State<Accounts>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_object(body)?;
    let account = account::create(&state, &body).await?;
    Ok(created(AccountView::from(&account), false))
}

async fn get_account(
    State(state): State<Accounts>,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let account = account::get(&state, &id).await?;
    Ok(Json(AccountView::from(&account)))
}

async fn transfer(
    State(state): State<Accounts>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let body = body_object(body)?;
    Ok(moved(money::transfer(&state, &body, key).await?))
}

async fn bank_transaction(
    State(state): State<Accounts>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let body = body_object(body)?;
    Ok(moved(money::bank_transaction(&state, &body, key).await?))
}

async fn transactions(
    State(state): State<Accounts>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<report::ReportPage>, ApiError> {
    let Query(params) =
        params.map_err(|_| ApiError::bad_request("query", "is not a valid query string"))?;
    Ok(Json(report::report(&state, &params).await?))
}

async fn create_advance(
    State(state): State<Accounts>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let body = body_object(body)?;
    let (advance, replayed) = advances::create(&state, &body, key).await?;
    Ok(created(advance, replayed))
}

async fn get_advance(
    State(state): State<Accounts>,
    Path(id): Path<String>,
) -> Result<Json<advances::AdvanceView>, ApiError> {
    Ok(Json(advances::get(&state, &id).await?))
}
