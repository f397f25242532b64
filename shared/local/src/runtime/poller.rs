//! Queue pollers: the local stand-in for Lambda's SQS event source mapping. Each receives a
//! batch, hands it to the function as the `SqsEvent` Lambda would send, and deletes every
//! message except those the function reported in `batchItemFailures`. A handler error leaves
//! the whole batch to come back after its visibility timeout, as in Lambda.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use payops_app::handler::SqsHandler;
use payops_app::ports::{Queue, ReceiveOptions, ReceivedMessage};
use tokio::sync::watch;

use crate::queue::LocalQueue;

/// Wait between polls of an empty queue: short enough that a burst starts draining at once,
/// long enough that an idle `payops up` costs nothing.
pub const POLL_IDLE_MS: u64 = 50;
/// Wait after the queue itself failed (the store is busy or broken).
pub const POLL_ERROR_BACKOFF_MS: u64 = 1_000;
const LOCAL_REGION: &str = "local";

#[derive(Clone)]
pub struct PollerControl {
    /// true while pollers must not take new batches (the benchmark splits phases with it).
    pub paused: watch::Receiver<bool>,
    /// true once the runtime is stopping.
    pub stop: watch::Receiver<bool>,
}

pub async fn run(
    function: String,
    queue: Arc<LocalQueue>,
    handler: Arc<dyn SqsHandler>,
    batch_size: usize,
    mut control: PollerControl,
) {
    loop {
        if *control.stop.borrow() {
            return;
        }
        if *control.paused.borrow() {
            tokio::select! {
                _ = control.paused.changed() => continue,
                _ = control.stop.changed() => return,
            }
        }
        let options = ReceiveOptions {
            max_messages: batch_size.clamp(1, payops_app::ports::queue::QUEUE_BATCH_MESSAGES_MAX),
            ..ReceiveOptions::default()
        };
        let idle_ms = match queue.receive(options).await {
            Ok(messages) if messages.is_empty() => POLL_IDLE_MS,
            Ok(messages) => {
                invoke(&function, &queue, handler.as_ref(), messages).await;
                continue;
            }
            Err(e) => {
                tracing::error!(function, queue = queue.name(), error = %e, "receive failed");
                POLL_ERROR_BACKOFF_MS
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(idle_ms)) => {}
            _ = control.stop.changed() => return,
        }
    }
}

async fn invoke(
    function: &str,
    queue: &LocalQueue,
    handler: &dyn SqsHandler,
    messages: Vec<ReceivedMessage>,
) {
    let event = match sqs_event(queue, &messages) {
        Ok(event) => event,
        Err(e) => {
            tracing::error!(function, error = %e, "could not build the SQS event");
            return;
        }
    };
    let failed: HashSet<String> = match handler.handle(event).await {
        Ok(SqsBatchResponse {
            batch_item_failures,
            ..
        }) => batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect(),
        Err(e) => {
            tracing::warn!(function, error_type = e.error_type(), error = %e, "batch failed; it returns after its visibility timeout");
            return;
        }
    };
    // In one write, as Lambda's DeleteMessageBatch. A message not deleted is delivered
    // again; the handlers are idempotent.
    let handles: Vec<String> = messages
        .iter()
        .filter(|m| !failed.contains(&m.message_id))
        .map(|m| m.receipt_handle.clone())
        .collect();
    if handles.is_empty() {
        return;
    }
    match queue.delete_batch(handles).await {
        Ok(answers) => {
            for e in answers.into_iter().filter_map(Result::err) {
                tracing::warn!(function, error = %e, "delete after success failed");
            }
        }
        Err(e) => tracing::warn!(function, error = %e, "delete after success failed"),
    }
}

/// The `SqsEvent` exactly as Lambda's event source mapping serialises it.
pub fn sqs_event(
    queue: &dyn Queue,
    messages: &[ReceivedMessage],
) -> Result<SqsEvent, serde_json::Error> {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut attributes = serde_json::Map::new();
            attributes.insert(
                "ApproximateReceiveCount".into(),
                m.receive_count.to_string().into(),
            );
            attributes.insert(
                "SentTimestamp".into(),
                m.sent_at.timestamp_millis().to_string().into(),
            );
            if let Some(g) = &m.group_id {
                attributes.insert("MessageGroupId".into(), g.clone().into());
            }
            if let Some(d) = &m.deduplication_id {
                attributes.insert("MessageDeduplicationId".into(), d.clone().into());
            }
            serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn(),
                "awsRegion": LOCAL_REGION,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
}
