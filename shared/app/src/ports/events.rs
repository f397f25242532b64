//! The `Events` port: EventBridge PutEvents on one event bus.

use async_trait::async_trait;

/// PutEvents takes at most 10 entries per call.
pub const EVENTS_BATCH_MAX: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// e.g. `payops.payment-events`
    pub source: String,
    /// e.g. `PaymentMissed`
    pub detail_type: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("event bus unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Events: Send + Sync {
    /// Publishes up to EVENTS_BATCH_MAX events; all or an error.
    async fn put_events(&self, events: Vec<Event>) -> Result<(), EventsError>;
}
