//! payops-aws: the payops ports on the AWS SDK — DynamoDB, S3, SQS, Timestream, EventBridge
//! and Step Functions. Each adapter is a thin mapping of a port call onto one SDK operation;
//! [`AwsEnv`] builds the SDK configuration and clients once per Lambda.
//!
//! Errors are sorted the same way everywhere: what the port names (a failed condition, an
//! unknown receipt handle, an existing execution) maps to its variant; throttling, 5xx,
//! timeouts and network failures to `Unavailable` (retry); anything else to `Invalid`.

mod dynamo;
mod env;
mod eventbridge;
pub mod lambda;
mod s3;
mod sdk_error;
mod sfn;
mod sqs;
mod timestream;

pub use dynamo::{
    BATCH_GET_BACKOFF_BASE_MS, BATCH_GET_KEYS_MAX, BATCH_GET_ROUNDS_MAX, CURSOR_BYTES_MAX,
    DynamoTable,
};
pub use env::{
    AWS_ATTEMPT_TIMEOUT_MS, AWS_CONNECT_TIMEOUT_MS, AWS_OPERATION_TIMEOUT_MS,
    AWS_RETRY_ATTEMPTS_MAX, AwsEnv, AwsEnvError, S3_ATTEMPT_TIMEOUT_MS, S3_OPERATION_TIMEOUT_MS,
    SQS_ATTEMPT_TIMEOUT_MS, SQS_OPERATION_TIMEOUT_MS, TEST_REGION,
};
pub use eventbridge::{EventBridgeEvents, PUT_EVENTS_BYTES_MAX};
pub use s3::{KEY_BYTES_MAX, S3Blobs, decode_event_key};
pub use sfn::{EXECUTION_NAME_CHARS_MAX, SfnWorkflows, TASK_CAUSE_CHARS_MAX, TASK_ERROR_CHARS_MAX};
pub use sqs::{
    DELAY_SECONDS_MAX, MESSAGE_ATTRIBUTES_MAX, QueueUrlParts, RECEIVE_WAIT_SECONDS_MAX, SqsQueue,
    parse_queue_url,
};
pub use timestream::{DIMENSIONS_MAX, TimestreamMetrics};
