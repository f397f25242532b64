//! The shapes of a Lambda handler, so that one registry of functions can be run by Lambda
//! (`functions/*/main.rs`) and by the local runtime (`payops up`) alike.
//!
//! HTTP functions are not here: they are axum `Router`s, which Lambda serves through
//! `lambda_http::run` and the local runtime serves on 127.0.0.1.

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

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
