//! [`AwsEnv`]: the SDK configuration and one client per service, built once in each
//! Lambda's `main` and shared by every invocation; and the adapters, named by the
//! environment variables of `payops_app::resources`.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use payops_app::ports::{Blobs, Events, Metrics, Queue, Table, Workflows};
use payops_app::resources::{
    DATA_BUCKET_ENV, EVENT_BUS_ENV, METRICS_DATABASE_ENV, METRICS_TABLE_ENV, QueueDef, TableDef,
};

use crate::{
    DynamoTable, EventBridgeEvents, S3Blobs, SfnWorkflows, SqsQueue, TimestreamMetrics,
    parse_queue_url,
};

/// Attempts per SDK call, the first included (standard retry mode: exponential back-off with
/// jitter, and a client-side token bucket that stops retry storms).
pub const AWS_RETRY_ATTEMPTS_MAX: u32 = 3;
/// Time to open a TCP/TLS connection.
pub const AWS_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// One attempt of a DynamoDB, EventBridge, Timestream or Step Functions call.
pub const AWS_ATTEMPT_TIMEOUT_MS: u64 = 10_000;
/// A whole call, retries included.
pub const AWS_OPERATION_TIMEOUT_MS: u64 = 30_000;
/// One attempt of an SQS call: a long poll waits up to 20 s before answering.
pub const SQS_ATTEMPT_TIMEOUT_MS: u64 = 25_000;
pub const SQS_OPERATION_TIMEOUT_MS: u64 = 60_000;
/// One attempt of an S3 call: objects (payroll files, reports) can be several MB.
pub const S3_ATTEMPT_TIMEOUT_MS: u64 = 60_000;
pub const S3_OPERATION_TIMEOUT_MS: u64 = 180_000;

/// Region and credentials of [`AwsEnv::for_endpoint`] (an emulator accepts anything).
pub const TEST_REGION: &str = "us-east-1";
const TEST_ACCESS_KEY_ID: &str = "testing";
const TEST_SECRET_ACCESS_KEY: &str = "testing";

/// Service-specific endpoint overrides the SDK honours besides `AWS_ENDPOINT_URL`.
const S3_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_S3";
const TIMESTREAM_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_TIMESTREAM_WRITE";

#[derive(Debug, thiserror::Error)]
pub enum AwsEnvError {
    #[error("environment variable {0} is not set or is empty")]
    MissingVar(&'static str),
    #[error("no AWS region is configured (set AWS_REGION)")]
    NoRegion,
    #[error("{var} is not an SQS queue URL: {url:?}")]
    BadQueueUrl { var: &'static str, url: String },
}

/// The SDK configuration and a client per service. Clients are cheap to clone and share one
/// connection pool each.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    config: SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    eventbridge: aws_sdk_eventbridge::Client,
    timestream: aws_sdk_timestreamwrite::Client,
    sfn: aws_sdk_sfn::Client,
    /// Timestream's endpoint is overridden: no endpoint discovery.
    timestream_overridden: bool,
}

fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(AWS_RETRY_ATTEMPTS_MAX)
}

fn timeouts(attempt_ms: u64, operation_ms: u64) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(AWS_CONNECT_TIMEOUT_MS))
        .operation_attempt_timeout(Duration::from_millis(attempt_ms))
        .operation_timeout(Duration::from_millis(operation_ms))
        .build()
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty())
}

impl AwsEnv {
    /// Region, credentials and endpoint from the environment, as the SDK finds them
    /// (`AWS_REGION`, the Lambda role, `AWS_ENDPOINT_URL` and its per-service variants).
    pub async fn from_env() -> Result<AwsEnv, AwsEnvError> {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry_config())
            .timeout_config(timeouts(AWS_ATTEMPT_TIMEOUT_MS, AWS_OPERATION_TIMEOUT_MS))
            .load()
            .await;
        if config.region().is_none() {
            return Err(AwsEnvError::NoRegion);
        }
        let shared_override = config.endpoint_url().is_some();
        Ok(AwsEnv::build(
            config,
            shared_override || env_set(S3_ENDPOINT_ENV),
            shared_override || env_set(TIMESTREAM_ENDPOINT_ENV),
        ))
    }

    /// For tests: every service at `endpoint_url` (e.g. moto on 127.0.0.1), region
    /// us-east-1, static test credentials.
    pub async fn for_endpoint(endpoint_url: &str) -> AwsEnv {
        let credentials = Credentials::new(
            TEST_ACCESS_KEY_ID,
            TEST_SECRET_ACCESS_KEY,
            None,
            None,
            "payops-test",
        );
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(TEST_REGION))
            .credentials_provider(credentials)
            .endpoint_url(endpoint_url)
            .retry_config(retry_config())
            .timeout_config(timeouts(AWS_ATTEMPT_TIMEOUT_MS, AWS_OPERATION_TIMEOUT_MS))
            .load()
            .await;
        AwsEnv::build(config, true, true)
    }

    fn build(config: SdkConfig, s3_overridden: bool, timestream_overridden: bool) -> AwsEnv {
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            // An emulator has no per-bucket host names.
            .force_path_style(s3_overridden)
            .timeout_config(timeouts(S3_ATTEMPT_TIMEOUT_MS, S3_OPERATION_TIMEOUT_MS))
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(&config)
            .timeout_config(timeouts(SQS_ATTEMPT_TIMEOUT_MS, SQS_OPERATION_TIMEOUT_MS))
            .build();
        AwsEnv {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            eventbridge: aws_sdk_eventbridge::Client::new(&config),
            timestream: aws_sdk_timestreamwrite::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            timestream_overridden,
            config,
        }
    }

    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }
    pub fn eventbridge(&self) -> &aws_sdk_eventbridge::Client {
        &self.eventbridge
    }
    /// Without endpoint discovery; [`AwsEnv::metrics`] adds it when talking to real AWS.
    pub fn timestream(&self) -> &aws_sdk_timestreamwrite::Client {
        &self.timestream
    }
    pub fn sfn(&self) -> &aws_sdk_sfn::Client {
        &self.sfn
    }

    /// The table whose name is in `def.env_var`.
    pub fn table(&self, def: &TableDef) -> Result<Arc<dyn Table>, AwsEnvError> {
        self.table_from(def, env_var)
    }

    /// The queue whose URL is in `def.env_var`.
    pub fn queue(&self, def: &QueueDef) -> Result<Arc<dyn Queue>, AwsEnvError> {
        self.queue_from(def, env_var)
    }

    /// The bucket named in `DATA_BUCKET`.
    pub fn blobs(&self) -> Result<Arc<dyn Blobs>, AwsEnvError> {
        let bucket = required(DATA_BUCKET_ENV, env_var)?;
        Ok(Arc::new(S3Blobs::new(self.s3.clone(), bucket)))
    }

    /// The event bus named in `EVENT_BUS_NAME`.
    pub fn events(&self) -> Result<Arc<dyn Events>, AwsEnvError> {
        let bus = required(EVENT_BUS_ENV, env_var)?;
        Ok(Arc::new(EventBridgeEvents::new(
            self.eventbridge.clone(),
            bus,
        )))
    }

    /// The Timestream table named in `METRICS_DATABASE` / `METRICS_TABLE`.
    pub fn metrics(&self) -> Result<Arc<dyn Metrics>, AwsEnvError> {
        let database = required(METRICS_DATABASE_ENV, env_var)?;
        let table = required(METRICS_TABLE_ENV, env_var)?;
        let client = self.timestream.clone();
        Ok(Arc::new(if self.timestream_overridden {
            TimestreamMetrics::new(client, database, table)
        } else {
            TimestreamMetrics::with_endpoint_discovery(client, database, table)
        }))
    }

    pub fn workflows(&self) -> Arc<dyn Workflows> {
        Arc::new(SfnWorkflows::new(self.sfn.clone()))
    }

    fn table_from(
        &self,
        def: &TableDef,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn Table>, AwsEnvError> {
        let name = required(def.env_var, lookup)?;
        Ok(Arc::new(DynamoTable::new(
            self.dynamodb.clone(),
            def.spec(name),
        )))
    }

    fn queue_from(
        &self,
        def: &QueueDef,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn Queue>, AwsEnvError> {
        let url = required(def.env_var, lookup)?;
        if parse_queue_url(&url).is_none() {
            return Err(AwsEnvError::BadQueueUrl {
                var: def.env_var,
                url,
            });
        }
        Ok(Arc::new(SqsQueue::new(self.sqs.clone(), url)))
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn required(
    name: &'static str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, AwsEnvError> {
    lookup(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(AwsEnvError::MissingVar(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use payops_app::resources::{PAYMENT_EVENTS_QUEUE, PAYMENT_EVENTS_TABLE};

    #[tokio::test]
    async fn adapters_are_named_by_their_environment_variables() {
        let env = AwsEnv::for_endpoint("http://127.0.0.1:9").await;
        let table = env
            .table_from(&PAYMENT_EVENTS_TABLE, |v| {
                (v == PAYMENT_EVENTS_TABLE.env_var).then(|| "events-prod".to_owned())
            })
            .expect("variable is set");
        assert_eq!(table.spec(), &PAYMENT_EVENTS_TABLE.spec("events-prod"));

        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/payment-events";
        let queue = env
            .queue_from(&PAYMENT_EVENTS_QUEUE, |_| Some(url.to_owned()))
            .expect("a queue URL");
        assert_eq!(queue.name(), "payment-events");
        assert_eq!(
            queue.arn(),
            "arn:aws:sqs:us-east-1:123456789012:payment-events"
        );
    }

    #[tokio::test]
    async fn a_missing_or_bad_variable_is_named_in_the_error() {
        let env = AwsEnv::for_endpoint("http://127.0.0.1:9").await;
        let err = env
            .table_from(&PAYMENT_EVENTS_TABLE, |_| Some("  ".to_owned()))
            .err()
            .expect("blank is missing");
        assert!(matches!(err, AwsEnvError::MissingVar(v) if v == PAYMENT_EVENTS_TABLE.env_var));
        let err = env
            .queue_from(&PAYMENT_EVENTS_QUEUE, |_| Some("payment-events".to_owned()))
            .err()
            .expect("not a URL");
        assert!(
            err.to_string().contains(PAYMENT_EVENTS_QUEUE.env_var),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_test_environment_uses_the_endpoint_and_explicit_limits() {
        let env = AwsEnv::for_endpoint("http://127.0.0.1:9").await;
        let config = env.sdk_config();
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:9"));
        assert_eq!(config.region().map(|r| r.as_ref()), Some(TEST_REGION));
        assert_eq!(
            config.retry_config().map(|r| r.max_attempts()),
            Some(AWS_RETRY_ATTEMPTS_MAX)
        );
        assert_eq!(
            config.timeout_config().and_then(|t| t.operation_timeout()),
            Some(Duration::from_millis(AWS_OPERATION_TIMEOUT_MS))
        );
        assert_eq!(
            env.s3()
                .config()
                .timeout_config()
                .and_then(|t| t.operation_attempt_timeout()),
            Some(Duration::from_millis(S3_ATTEMPT_TIMEOUT_MS))
        );
    }
}
