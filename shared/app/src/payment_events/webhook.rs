//! The HTTP side: the provider's webhook and the per-day counts.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::NaiveDate;
use payops_core::Secret;
use payops_core::payment_event::{self, WEBHOOK_BODY_BYTES_MAX};
use payops_core::webhook_signature::{self, SIGNATURE_HEADER, TOLERANCE_SECONDS};
use payops_core::{Currency, payment_event::PaymentStatus};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::PaymentEvents;
use super::layout::{self, AMOUNT_TOTAL, COUNT, DUPLICATES_SK};
use crate::http::ApiError;
use crate::ports::queue::QUEUE_MESSAGE_BYTES_MAX;
use crate::ports::table::QUERY_PAGE_ITEMS_MAX;
use crate::ports::{OutgoingMessage, Query as TableQuery, TableError};

pub const WEBHOOK_PATH: &str = "/webhooks/payment-events";
pub const DAY_PATH: &str = "/payment-events";
/// Pages read for one day's totals. A day holds one item per (currency, status) plus one, so
/// one page is the norm; the bound only stops a runaway loop.
const DAY_TOTAL_PAGES_MAX: usize = 4;

// Any valid event fits in one queue message.
const _: () = assert!(payment_event::CANONICAL_JSON_BYTES_MAX <= QUEUE_MESSAGE_BYTES_MAX);

/// The webhook function's state: the flow's ports and the provider's signing secret, which
/// only this function is given (the processor and the report have no use for it).
#[derive(Clone)]
struct WebhookState {
    flow: PaymentEvents,
    secret: Secret<String>,
}

/// `POST /webhooks/payment-events` and `GET /payment-events?date=YYYY-MM-DD`.
pub fn router(flow: PaymentEvents, webhook_secret: Secret<String>) -> Router {
    let state = WebhookState {
        flow,
        secret: webhook_secret,
    };
    Router::new()
        .route(
            WEBHOOK_PATH,
            post(receive_webhook).layer(DefaultBodyLimit::max(WEBHOOK_BODY_BYTES_MAX)),
        )
        .route(DAY_PATH, get(day_totals))
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct Accepted {
    event_id: String,
    status: &'static str,
}

/// Verifies, validates and enqueues; the processor stores. Answers as soon as the message is
/// on the queue, so a burst from the provider is absorbed by SQS, not by the table.
async fn receive_webhook(
    State(WebhookState {
        flow: state,
        secret,
    }): State<WebhookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let body = body.map_err(body_rejected)?;
    verify_signature(&state, &secret, &headers, &body)?;
    let event = payment_event::parse_webhook_body(&body).map_err(|e| {
        tracing::warn!(field = e.field, reason = %e.reason, "payment event rejected");
        ApiError::bad_request(e.field, e.to_string())
    })?;
    let message = OutgoingMessage::new(event.to_canonical_json());
    if let Err(e) = state.queue.send_batch(vec![message]).await {
        tracing::error!(event_id = %event.event_id, error = %e, "payment event not enqueued");
        return Err(ApiError::unavailable(
            "the event could not be queued; retry later",
        ));
    }
    tracing::debug!(event_id = %event.event_id, status = %event.status, "payment event accepted");
    let accepted = Accepted {
        event_id: event.event_id.as_str().to_owned(),
        status: "accepted",
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

fn body_rejected(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("body is larger than {WEBHOOK_BODY_BYTES_MAX} bytes")
    } else {
        "body could not be read".to_owned()
    };
    ApiError {
        status,
        error: "invalid_request",
        message,
        field: Some(payment_event::field::BODY.to_owned()),
    }
}

fn verify_signature(
    state: &PaymentEvents,
    secret: &Secret<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let header = match headers.get(SIGNATURE_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => {
            tracing::warn!("webhook signature header is not visible ASCII");
            return Err(ApiError::unauthorized(format!(
                "{SIGNATURE_HEADER} header is malformed"
            )));
        }
    };
    let now = state.clock.now().timestamp();
    let secret = secret.expose().as_bytes();
    webhook_signature::verify(secret, header, body, now, TOLERANCE_SECONDS).map_err(|e| {
        tracing::warn!(reason = %e, "webhook signature rejected");
        ApiError::unauthorized(e.to_string())
    })
}

#[derive(Debug, Deserialize)]
struct DayParams {
    date: Option<String>,
}

/// `GET /payment-events?date=` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayTotals {
    pub date: String,
    /// Events stored for the day, all statuses and currencies.
    pub count: u64,
    /// Deliveries of already-stored events that were ignored.
    pub duplicates_ignored: u64,
    /// One row per (currency, status), ordered by currency then paid, failed, reversed.
    pub totals: Vec<TotalRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalRow {
    pub currency: String,
    pub status: String,
    pub count: u64,
    /// Exact, with the currency's decimal places, as a string.
    pub amount_total: String,
}

async fn day_totals(
    State(WebhookState { flow: state, .. }): State<WebhookState>,
    params: Result<Query<DayParams>, QueryRejection>,
) -> Result<Json<DayTotals>, ApiError> {
    let bad_date = || ApiError::bad_request("date", "date is required, as YYYY-MM-DD");
    let Query(params) = params.map_err(|_| bad_date())?;
    let day = params
        .date
        .as_deref()
        .and_then(payment_event::parse_day)
        .ok_or_else(bad_date)?;
    let totals = read_day_totals(&state, day).await.map_err(|e| match e {
        DayError::Table(e) => {
            tracing::error!(error = %e, "day totals unavailable");
            ApiError::unavailable("the table is unavailable; retry later")
        }
        e @ (DayError::Corrupt(_) | DayError::TooManyItems(_)) => {
            tracing::error!(error = %e, "day aggregates are not readable");
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "internal",
                message: "the stored aggregates are not readable".to_owned(),
                field: None,
            }
        }
    })?;
    Ok(Json(totals))
}

#[derive(Debug, thiserror::Error)]
enum DayError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("aggregate item {0} is corrupt")]
    Corrupt(String),
    #[error("the day has more than {0} pages of aggregates")]
    TooManyItems(usize),
}

/// One query on the day's partition: the totals and the duplicates counter.
async fn read_day_totals(state: &PaymentEvents, day: NaiveDate) -> Result<DayTotals, DayError> {
    let mut rows: Vec<(Currency, PaymentStatus, u64, Decimal)> = Vec::new();
    let mut duplicates_ignored = 0;
    let mut cursor = None;
    for _ in 0..DAY_TOTAL_PAGES_MAX {
        let query = TableQuery::partition(layout::day_partition(day))
            .limit(QUERY_PAGE_ITEMS_MAX)
            .after(cursor);
        let page = state.table.query(query).await?;
        for item in &page.items {
            let sk = item.s(crate::ports::table::SK).unwrap_or_default();
            let corrupt = || DayError::Corrupt(sk.to_owned());
            let count = item
                .n(COUNT)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(corrupt)?;
            if sk == DUPLICATES_SK {
                duplicates_ignored = count;
                continue;
            }
            let (currency, status) = layout::parse_total_sk(sk).ok_or_else(corrupt)?;
            let amount_total = item.n(AMOUNT_TOTAL).ok_or_else(corrupt)?;
            rows.push((currency, status, count, amount_total));
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    if cursor.is_some() {
        return Err(DayError::TooManyItems(DAY_TOTAL_PAGES_MAX));
    }
    rows.sort_by_key(|(currency, status, _, _)| (*currency, *status));
    Ok(DayTotals {
        date: day.format("%Y-%m-%d").to_string(),
        count: rows.iter().map(|(_, _, count, _)| count).sum(),
        duplicates_ignored,
        totals: rows
            .into_iter()
            .map(|(currency, status, count, amount_total)| TotalRow {
                currency: currency.to_string(),
                status: status.to_string(),
                count,
                amount_total: payops_core::money::format_places(
                    amount_total,
                    currency.minor_units(),
                ),
            })
            .collect(),
    })
}
