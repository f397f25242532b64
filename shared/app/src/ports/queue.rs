//! The `Queue` port: one SQS queue (standard or FIFO) with an optional dead-letter queue.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// SQS accepts at most 10 messages per SendMessageBatch / ReceiveMessage call.
pub const QUEUE_BATCH_MESSAGES_MAX: usize = 10;
/// SQS's limit on one message body.
pub const QUEUE_MESSAGE_BYTES_MAX: usize = 256 * 1024;
/// SQS's limit on a visibility timeout (12 hours).
pub const VISIBILITY_TIMEOUT_SECONDS_MAX: u32 = 43_200;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    pub body: String,
    /// FIFO queues: the ordering group. Required on FIFO, ignored on standard queues.
    pub group_id: Option<String>,
    /// FIFO queues: a second send with the same id within 5 minutes is dropped.
    pub deduplication_id: Option<String>,
    /// Standard queues only: delay before the message becomes visible.
    pub delay_seconds: u32,
    pub attributes: BTreeMap<String, String>,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        OutgoingMessage {
            body: body.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Changes on every receive; needed to delete or change visibility.
    pub receipt_handle: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// 1..=QUEUE_BATCH_MESSAGES_MAX
    pub max_messages: usize,
    /// How long received messages stay invisible; `None` uses the queue's default.
    pub visibility_timeout_seconds: Option<u32>,
    /// Long polling: wait up to this long for a first message (0..=20).
    pub wait_seconds: u32,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            max_messages: QUEUE_BATCH_MESSAGES_MAX,
            visibility_timeout_seconds: None,
            wait_seconds: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The receipt handle is unknown or stale (the message was received again since).
    #[error("receipt handle is not valid")]
    InvalidReceipt,
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// The queue's name (the last part of its URL), as it appears in SQS events.
    fn name(&self) -> &str;
    /// The queue's ARN, as it appears in `SqsMessage::event_source_arn`.
    fn arn(&self) -> &str;

    /// Sends up to QUEUE_BATCH_MESSAGES_MAX messages; returns their message ids in order.
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError>;

    async fn receive(&self, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError>;

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError>;

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility_timeout_seconds: u32,
    ) -> Result<(), QueueError>;

    /// Approximate number of messages waiting (visible) in the queue.
    async fn approximate_depth(&self) -> Result<u64, QueueError>;
}
