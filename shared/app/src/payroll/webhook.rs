//! `POST /webhooks/provider`: the payment provider's signed status updates.
//!
//! Verified (HMAC over timestamp and body, within the tolerance window), then applied to the
//! payment named by the event's `external_id` through `transitions::apply`: the payment's
//! status, its batch's per-source and per-branch aggregates, the ledger and the event's
//! marker move in one transaction. A redelivered event is recognised by its marker; a late
//! or out-of-order status that would move the payment backwards changes nothing; an event
//! for a payment we do not know is logged and acknowledged (200), so the provider does not
//! disable the endpoint. Only a store outage answers 503, which the provider retries.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use payops_core::Secret;
use payops_core::payroll::PaymentStatus;
use payops_core::webhook_signature::{self, SIGNATURE_HEADER, TOLERANCE_SECONDS};
use serde::Serialize;

use super::layout;
use super::transitions::{self, MoveDetails, MoveOutcome};
use super::{Payroll, PayrollAppError};
use crate::http::ApiError;
use crate::ports::provider::{EVENT_PAYMENT_UPDATED, REQUEST_BODY_BYTES_MAX, WebhookEvent};

pub const WEBHOOK_PATH: &str = "/webhooks/provider";
/// Largest webhook body accepted (the provider's own request limit).
pub const WEBHOOK_BYTES_MAX: usize = REQUEST_BODY_BYTES_MAX;

/// The webhook's state: the flow's ports and the provider's signing secret (which no other
/// payroll function holds).
#[derive(Clone)]
pub struct WebhookState {
    pub payroll: Payroll,
    pub secret: Secret<String>,
}

pub fn webhook_router(payroll: Payroll, secret: Secret<String>) -> Router {
    Router::new()
        .route(
            WEBHOOK_PATH,
            post(receive).layer(DefaultBodyLimit::max(WEBHOOK_BYTES_MAX)),
        )
        .with_state(WebhookState { payroll, secret })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookAnswer {
    pub event_id: String,
    /// `applied`, `stale`, `duplicate`, `unknown_payment` or `ignored`.
    pub outcome: &'static str,
}

async fn receive(
    State(WebhookState {
        payroll: state,
        secret,
    }): State<WebhookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let body = body.map_err(|_| ApiError::bad_request("body", "body could not be read"))?;
    verify(&state, &secret, &headers, &body)?;
    let event: WebhookEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("not a provider event: {e}")))?;
    let outcome = handle_event(&state, &event).await.map_err(|e| match e {
        PayrollAppError::Table(_) | PayrollAppError::NotReady(_) => {
            tracing::warn!(error = %e, "provider webhook not applied; the provider will retry");
            ApiError::unavailable("retry later")
        }
        e => {
            tracing::error!(error = %e, "provider webhook failed");
            super::http::api_error(e)
        }
    })?;
    Ok((
        StatusCode::OK,
        Json(WebhookAnswer {
            event_id: event.id.as_str().to_owned(),
            outcome,
        }),
    ))
}

fn verify(
    state: &Payroll,
    secret: &Secret<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let header = match headers.get(SIGNATURE_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => {
            return Err(ApiError::unauthorized(format!(
                "{SIGNATURE_HEADER} header is malformed"
            )));
        }
    };
    let now = state.clock.now().timestamp();
    webhook_signature::verify(
        secret.expose().as_bytes(),
        header,
        body,
        now,
        TOLERANCE_SECONDS,
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "provider webhook signature rejected");
        ApiError::unauthorized(e.to_string())
    })
}

/// Applies one verified event. Public for tests and for replays by ops.
pub async fn handle_event(
    state: &Payroll,
    event: &WebhookEvent,
) -> Result<&'static str, PayrollAppError> {
    let event_id = event.id.as_str();
    if event.kind != EVENT_PAYMENT_UPDATED {
        tracing::info!(event_id, kind = event.kind, "provider event type ignored");
        return Ok("ignored");
    }
    let payment = &event.data;
    let Some((batch_id, row)) = payment
        .external_id
        .as_deref()
        .and_then(layout::parse_payment_id)
    else {
        tracing::warn!(event_id, provider_payment_id = %payment.id, "provider event for a payment that is not ours");
        return Ok("unknown_payment");
    };
    let Some(to) = PaymentStatus::from_provider(payment.status.as_str()) else {
        return Err(PayrollAppError::invalid("data.status", "unknown status"));
    };
    let details = MoveDetails {
        provider_payment_id: Some(payment.id.as_str().to_owned()),
        failure_reason: payment.failure_reason.clone(),
        event_id: Some(event_id.to_owned()),
    };
    let outcome = transitions::apply(state, batch_id, row, to, &details).await?;
    Ok(match outcome {
        MoveOutcome::Applied { .. } => "applied",
        MoveOutcome::Stale { current } => {
            tracing::debug!(event_id, %current, reported = %to, "late provider status ignored");
            "stale"
        }
        MoveOutcome::Duplicate => "duplicate",
        MoveOutcome::UnknownPayment => {
            tracing::warn!(
                event_id,
                batch_id,
                row,
                "provider event for an unknown payment"
            );
            "unknown_payment"
        }
    })
}
