//! The shapes of a Lambda handler, so that one registry of functions can be run by Lambda
//! (`functions/*/main.rs`) and by the local runtime (`payops up`) alike.
//!
//! HTTP functions are not here: they are axum `Router`s, which Lambda serves through
//! `lambda_http::run` and the local runtime serves on 127.0.0.1.

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::HandlerError;

/// An SQS-triggered function with partial batch failure (`ReportBatchItemFailures`): the
/// returned response lists the messages to retry; every other message is deleted.
#[async_trait]
pub trait SqsHandler: Send + Sync {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError>;
}

/// A function triggered by an EventBridge rule (a schedule or an event pattern).
/// The scheduled event's `time` is the schedule's tick, so a re-run of the same event
/// computes the same thing.
#[async_trait]
pub trait EventHandler: Send + Sync {
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError>;
}

/// A function triggered directly by S3 notifications.
#[async_trait]
pub trait S3Handler: Send + Sync {
    async fn handle(&self, event: S3Event) -> Result<(), HandlerError>;
}

/// A function invoked directly with a JSON payload (a Step Functions Task state through
/// `lambda:invoke`). The error's `error_type()` (`Retryable`, `Rejected`, `Fatal`) becomes the
/// Task's error name, so a state machine's Retry/Catch can match it.
#[async_trait]
pub trait TaskHandler: Send + Sync {
    async fn handle(&self, input: serde_json::Value) -> Result<serde_json::Value, HandlerError>;
}

/// The messages of an SQS batch to retry (`ReportBatchItemFailures`). A failed message that
/// has no `messageId` cannot be retried alone, so the whole batch is then retried: every SQS
/// handler here is idempotent, so the messages that succeeded are not applied twice.
#[derive(Debug, Default)]
pub struct BatchFailures {
    response: SqsBatchResponse,
    unidentified: bool,
}

impl BatchFailures {
    pub fn add(&mut self, message: &SqsMessage) {
        match &message.message_id {
            Some(id) => self.response.add_failure(id.clone()),
            None => self.unidentified = true,
        }
    }

    pub fn into_response(self) -> Result<SqsBatchResponse, HandlerError> {
        if self.unidentified {
            return Err(HandlerError::Retryable(
                "a failed message has no messageId; retrying the whole batch".into(),
            ));
        }
        Ok(self.response)
    }
}
