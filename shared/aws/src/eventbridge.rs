//! The `Events` port on one EventBridge bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use payops_app::ports::events::EVENTS_BATCH_MAX;
use payops_app::ports::{Event, Events, EventsError};

use crate::sdk_error::{Fault, classify, is_retryable_code};

/// EventBridge's limit on the size of one PutEvents request (all entries together).
pub const PUT_EVENTS_BYTES_MAX: usize = 256 * 1024;

/// An EventBridge event bus, by name.
#[derive(Debug, Clone)]
pub struct EventBridgeEvents {
    client: Client,
    bus_name: String,
}

impl EventBridgeEvents {
    pub fn new(client: Client, bus_name: String) -> Self {
        EventBridgeEvents { client, bus_name }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }
}

/// Some entries were not published.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} events were not published: {detail}")]
struct EntriesFailed {
    failed: usize,
    total: usize,
    detail: String,
}

/// EventBridge's size of an entry: source, detail type, detail and bus name, in UTF-8.
fn entry_size(e: &Event, detail: &str, bus: &str) -> usize {
    e.source.len() + e.detail_type.len() + detail.len() + bus.len()
}

#[async_trait]
impl Events for EventBridgeEvents {
    async fn put_events(&self, events: Vec<Event>) -> Result<(), EventsError> {
        if events.len() > EVENTS_BATCH_MAX {
            return Err(EventsError::Invalid(format!(
                "{} events in one call; at most {EVENTS_BATCH_MAX}",
                events.len()
            )));
        }
        if events.is_empty() {
            return Ok(());
        }
        let total = events.len();
        let mut size = 0;
        let mut entries = Vec::with_capacity(total);
        for (i, e) in events.iter().enumerate() {
            if e.source.is_empty() || e.detail_type.is_empty() {
                return Err(EventsError::Invalid(format!(
                    "event {i}: source and detail type must not be empty"
                )));
            }
            if !e.detail.is_object() {
                return Err(EventsError::Invalid(format!(
                    "event {i} ({}): detail must be a JSON object",
                    e.detail_type
                )));
            }
            let detail = e.detail.to_string();
            size += entry_size(e, &detail, &self.bus_name);
            entries.push(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(&e.source)
                    .detail_type(&e.detail_type)
                    .detail(detail)
                    .build(),
            );
        }
        if size > PUT_EVENTS_BYTES_MAX {
            return Err(EventsError::Invalid(format!(
                "events are {size} bytes together; at most {PUT_EVENTS_BYTES_MAX}"
            )));
        }
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| match classify(e) {
                Fault::Unavailable(e) => EventsError::Unavailable(e),
                Fault::Rejected(m) => EventsError::Invalid(m),
            })?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        let failures: Vec<(usize, &str, &str)> = out
            .entries()
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.error_code()?, r.error_message().unwrap_or(""))))
            .collect();
        let err = EntriesFailed {
            failed: usize::try_from(out.failed_entry_count()).unwrap_or(total),
            total,
            detail: failures
                .iter()
                .map(|(i, code, message)| format!("event {i}: {code} {message}"))
                .collect::<Vec<_>>()
                .join("; "),
        };
        // Events that were published stay published: EventBridge is at-least-once anyway.
        if failures.iter().any(|(_, code, _)| is_retryable_code(code)) || failures.is_empty() {
            Err(EventsError::Unavailable(Box::new(err)))
        } else {
            Err(EventsError::Invalid(err.to_string()))
        }
    }
}
