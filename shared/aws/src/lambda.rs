//! The Lambda side of every function: build the AWS adapters once (cold start), build the
//! function from the registry in `payops_app::functions`, and run the Lambda event loop with
//! the event type the function takes. A function's `main` is one call to [`run`].

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use payops_app::functions::{self, Function};
use payops_app::ports::{Blobs, Clock, Events, Metrics, Queue, SystemClock, Table, Workflows};
use payops_app::resources::{QueueDef, ResourceError, Resources, TableDef};
use payops_core::Secret;

use crate::{AwsEnv, AwsEnvError};

fn resource_error(name: &str, e: AwsEnvError) -> ResourceError {
    match e {
        AwsEnvError::MissingVar(var) => ResourceError::MissingEnv(var),
        other => ResourceError::Unavailable {
            name: name.to_owned(),
            source: Box::new(other),
        },
    }
}

impl Resources for AwsEnv {
    fn table(&self, def: &TableDef) -> Result<Arc<dyn Table>, ResourceError> {
        AwsEnv::table(self, def).map_err(|e| resource_error(def.logical_id, e))
    }
    fn queue(&self, def: &QueueDef) -> Result<Arc<dyn Queue>, ResourceError> {
        AwsEnv::queue(self, def).map_err(|e| resource_error(def.logical_id, e))
    }
    fn blobs(&self) -> Result<Arc<dyn Blobs>, ResourceError> {
        AwsEnv::blobs(self).map_err(|e| resource_error("DataBucket", e))
    }
    fn events(&self) -> Result<Arc<dyn Events>, ResourceError> {
        AwsEnv::events(self).map_err(|e| resource_error("EventBus", e))
    }
    fn metrics(&self) -> Result<Arc<dyn Metrics>, ResourceError> {
        AwsEnv::metrics(self).map_err(|e| resource_error("MetricsTable", e))
    }
    fn workflows(&self) -> Result<Arc<dyn Workflows>, ResourceError> {
        Ok(AwsEnv::workflows(self))
    }
    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
    fn secret(&self, env_var: &'static str) -> Result<Secret<String>, ResourceError> {
        match std::env::var(env_var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(ResourceError::MissingEnv(env_var)),
        }
    }
}

/// JSON logs, as CloudWatch's JSON log format expects; `RUST_LOG` filters (`info` default).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// Runs the function named `name` (its cargo binary) in the Lambda runtime.
pub async fn run(name: &str) -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let env = AwsEnv::from_env().await?;
    match functions::build(name, &env)? {
        Function::Http(router) => lambda_http::run(router).await,
        Function::Sqs(handler) => {
            lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
                let handler = handler.clone();
                async move { handler.handle(event.payload).await }
            }))
            .await
        }
        Function::Event(handler) => {
            lambda_runtime::run(service_fn(
                move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
                    let handler = handler.clone();
                    async move { handler.handle(event.payload).await }
                },
            ))
            .await
        }
        Function::Task(handler) => {
            lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
                let handler = handler.clone();
                async move { handler.handle(event.payload).await }
            }))
            .await
        }
    }
}
