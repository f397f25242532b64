//! `POST /webhooks/provider`: the payment provider's signed status updates.
//!
//! Verified (HMAC over timestamp and body, within the tolerance window), then applied to the
//! payment named by the event's `external_id` through `transitions::apply`: the payment's
//! status, its batch's per-source and per-branch aggregates and the ledger move in one
//! transaction, which also records the event's id on the payment. A redelivered event is
//! recognised by that id; a late or out-of-order status that would move the payment
//! backwards changes nothing; an event for a payment we do not know, or with a status this
//! version does not know, is logged and acknowledged (200), so the provider does not disable
//! the endpoint. Only a store outage answers 503, which the provider retries.
//!
//! A provider may also batch events: the body is then a JSON array of events (at most
//! [`WEBHOOK_EVENTS_PER_DELIVERY_MAX`]), signed as a whole, and the answer lists an outcome
//! per event. The events of one payment are applied in the order they came, different
//! payments side by side. The delivery is acknowledged only when every event is applied or
//! recognised; otherwise it answers 503 and the provider sends the whole array again, where
//! the events already applied are recognised as duplicates.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use payops_core::Secret;
use payops_core::payroll::PaymentStatus;
use payops_core::webhook_signature::{self, SIGNATURE_HEADER, TOLERANCE_SECONDS};
use serde::Serialize;

use super::layout;
use super::transitions::{self, MoveDetails, MoveOutcome};
use super::{Payroll, PayrollAppError};
use crate::http::ApiError;
use crate::ports::provider::{
    EVENT_PAYMENT_UPDATED, PaymentStatus as ProviderStatus, REQUEST_BODY_BYTES_MAX, WebhookEvent,
};

pub const WEBHOOK_PATH: &str = "/webhooks/provider";
/// Most events in one batched delivery.
pub const WEBHOOK_EVENTS_PER_DELIVERY_MAX: usize = 100;
/// Largest webhook body accepted: a full batch of events of the provider's largest size.
pub const WEBHOOK_BYTES_MAX: usize = 8 * REQUEST_BODY_BYTES_MAX;
/// Payments of one batched delivery moved at once.
pub const WEBHOOK_PAYMENTS_CONCURRENCY: usize = 16;

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
    /// `applied`, `stale`, `duplicate`, `unknown_payment`, `unknown_status` or `ignored`.
    pub outcome: &'static str,
}

/// The answer to a batched delivery: one outcome per event, in the order they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookBatchAnswer {
    pub events: Vec<WebhookAnswer>,
}

/// A delivery's body: one event, or a batch of them.
enum Delivery {
    One(Incoming),
    Batch(Vec<Incoming>),
}

/// One event of a delivery.
enum Incoming {
    Known(Box<WebhookEvent>),
    UnknownStatus(UnknownStatus),
}

/// An event whose status this version does not know (a provider adds statuses):
/// acknowledged and logged at error level, not applied. Refusing it would have the provider
/// retry it for days and perhaps disable the endpoint. (The nightly check's listing reads
/// statuses as strictly as the wire type, so it does not mend this.)
struct UnknownStatus {
    event_id: String,
    /// At most [`UNKNOWN_STATUS_CHARS_LOGGED`] characters of the word (it comes from outside).
    status: String,
}

impl UnknownStatus {
    /// Logs the event and answers it.
    fn acknowledge(&self) -> WebhookAnswer {
        tracing::error!(
            event_id = self.event_id,
            status = self.status,
            "provider status unknown to this version; event acknowledged, no payment moved"
        );
        WebhookAnswer {
            event_id: self.event_id.clone(),
            outcome: "unknown_status",
        }
    }
}

fn parse_delivery(body: &[u8]) -> Result<Delivery, ApiError> {
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_batch {
        return match serde_json::from_slice::<WebhookEvent>(body) {
            Ok(event) => Ok(Delivery::One(Incoming::Known(Box::new(event)))),
            Err(e) => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| lenient_event(&v))
                .map(Delivery::One)
                .ok_or_else(|| ApiError::bad_request("body", format!("not a provider event: {e}"))),
        };
    }
    let events: Vec<Incoming> = match serde_json::from_slice::<Vec<WebhookEvent>>(body) {
        Ok(events) => events
            .into_iter()
            .map(|e| Incoming::Known(Box::new(e)))
            .collect(),
        Err(e) => read_batch_leniently(body, e)?,
    };
    if events.is_empty() || events.len() > WEBHOOK_EVENTS_PER_DELIVERY_MAX {
        return Err(ApiError::bad_request(
            "body",
            format!(
                "{} events; a delivery carries 1 to {WEBHOOK_EVENTS_PER_DELIVERY_MAX}",
                events.len()
            ),
        ));
    }
    Ok(Delivery::Batch(events))
}

/// Reads an event the strict wire type refused because of its `data.status` alone: a word
/// our model knows in another spelling (`Settled`, `cancelled`) is read as that status; a
/// word it does not know becomes [`Incoming::UnknownStatus`]. `None` when anything else is
/// wrong with the event.
fn lenient_event(value: &serde_json::Value) -> Option<Incoming> {
    let word = value.get("data")?.get("status")?.as_str()?;
    let known = PaymentStatus::from_provider(word).and_then(|ours| {
        ProviderStatus::ALL
            .into_iter()
            .find(|wire| PaymentStatus::from_provider(wire.as_str()) == Some(ours))
    });
    let mut respelled = value.clone();
    let spelling = known.unwrap_or(ProviderStatus::Pending).as_str();
    respelled["data"]["status"] = serde_json::Value::from(spelling);
    let event = serde_json::from_value::<WebhookEvent>(respelled).ok()?;
    Some(match known {
        Some(_) => Incoming::Known(Box::new(event)),
        None => Incoming::UnknownStatus(UnknownStatus {
            event_id: event.id.as_str().to_owned(),
            status: word.chars().take(UNKNOWN_STATUS_CHARS_LOGGED).collect(),
        }),
    })
}

/// Longest unknown status word logged (it comes from outside).
const UNKNOWN_STATUS_CHARS_LOGGED: usize = 40;

/// Reads a batch element by element (only on the error path): events with a status this
/// version does not know are kept as such; any other bad element refuses the batch, named.
fn read_batch_leniently(body: &[u8], e: serde_json::Error) -> Result<Vec<Incoming>, ApiError> {
    let Ok(values) = serde_json::from_slice::<Vec<serde_json::Value>>(body) else {
        return Err(ApiError::bad_request(
            "body",
            format!("not a list of events: {e}"),
        ));
    };
    values
        .into_iter()
        .enumerate()
        .map(
            |(i, value)| match serde_json::from_value::<WebhookEvent>(value.clone()) {
                Ok(event) => Ok(Incoming::Known(Box::new(event))),
                Err(e) => lenient_event(&value).ok_or_else(|| {
                    ApiError::bad_request(
                        format!("body[{i}]"),
                        format!("not a provider event: {e}"),
                    )
                }),
            },
        )
        .collect()
}

async fn receive(
    State(WebhookState {
        payroll: state,
        secret,
    }): State<WebhookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|_| ApiError::bad_request("body", "body could not be read"))?;
    verify(&state, &secret, &headers, &body)?;
    let failed = |e: PayrollAppError| match e {
        PayrollAppError::Table(_) | PayrollAppError::NotReady(_) => {
            tracing::warn!(error = %e, "provider webhook not applied; the provider will retry");
            ApiError::unavailable("retry later")
        }
        e => {
            tracing::error!(error = %e, "provider webhook failed");
            super::http::api_error(e)
        }
    };
    let answer = |event: &WebhookEvent, outcome| WebhookAnswer {
        event_id: event.id.as_str().to_owned(),
        outcome,
    };
    Ok(match parse_delivery(&body)? {
        Delivery::One(Incoming::Known(event)) => {
            let outcome = handle_event(&state, &event).await.map_err(failed)?;
            (StatusCode::OK, Json(answer(&event, outcome))).into_response()
        }
        Delivery::One(Incoming::UnknownStatus(unknown)) => {
            (StatusCode::OK, Json(unknown.acknowledge())).into_response()
        }
        Delivery::Batch(incoming) => {
            // The known events are applied together; the unknown ones keep their places.
            let mut known = Vec::with_capacity(incoming.len());
            let mut places = Vec::with_capacity(incoming.len());
            for i in incoming {
                match i {
                    Incoming::Known(event) => {
                        known.push(*event);
                        places.push(None);
                    }
                    Incoming::UnknownStatus(unknown) => places.push(Some(unknown)),
                }
            }
            // One outcome per known event, in their order.
            let outcomes = handle_events(&state, &known).await.map_err(failed)?;
            let mut applied = known.iter().zip(outcomes);
            let events = places
                .iter()
                .filter_map(|place| match place {
                    Some(unknown) => Some(unknown.acknowledge()),
                    None => applied
                        .next()
                        .map(|(event, outcome)| answer(event, outcome)),
                })
                .collect();
            (StatusCode::OK, Json(WebhookBatchAnswer { events })).into_response()
        }
    })
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

/// Applies the verified events of one delivery: each payment's events in the order they
/// came, different payments side by side. The first error stops the delivery (the provider
/// sends it again; what was applied is then recognised).
pub async fn handle_events(
    state: &Payroll,
    events: &[WebhookEvent],
) -> Result<Vec<&'static str>, PayrollAppError> {
    use futures::StreamExt;
    // Events grouped by the payment they name (an event naming none is a group of its own).
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, event) in events.iter().enumerate() {
        match event.data.external_id.as_deref() {
            Some(payment) => {
                let g = *group_of.entry(payment).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i);
            }
            None => groups.push(vec![i]),
        }
    }
    let applied: Vec<Result<Vec<(usize, &'static str)>, PayrollAppError>> =
        futures::stream::iter(groups)
            .map(|group| async move {
                let mut outcomes = Vec::with_capacity(group.len());
                for i in group {
                    outcomes.push((i, handle_event(state, &events[i]).await?));
                }
                Ok(outcomes)
            })
            .buffer_unordered(WEBHOOK_PAYMENTS_CONCURRENCY)
            .collect()
            .await;
    let mut outcomes = vec![""; events.len()];
    for group in applied {
        for (i, outcome) in group? {
            outcomes[i] = outcome;
        }
    }
    Ok(outcomes)
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
        // The wire type has only statuses our model knows; see `unknown_status` for others.
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
