//! The registry of functions: each Lambda's name (its cargo binary and `BuildProperties.Binary`
//! in `template.yaml`) and how it is built from a [`Resources`] provider. The Lambda mains and
//! the local runtime both go through here, so a function is wired exactly once.

use std::sync::Arc;

use crate::handler::{EventHandler, SqsHandler, TaskHandler};
use crate::resources::{ResourceError, Resources};

/// A built function, by the kind of event it takes.
pub enum Function {
    /// Served by `lambda_http::run` in Lambda and on 127.0.0.1 by `payops up`.
    Http(axum::Router),
    Sqs(Arc<dyn SqsHandler>),
    Event(Arc<dyn EventHandler>),
    /// Invoked directly with a JSON payload (a Step Functions Task state).
    Task(Arc<dyn TaskHandler>),
}

impl Function {
    pub fn kind(&self) -> &'static str {
        match self {
            Function::Http(_) => "http",
            Function::Sqs(_) => "sqs",
            Function::Event(_) => "event",
            Function::Task(_) => "task",
        }
    }
}

type Builder = fn(&dyn Resources) -> Result<Function, ResourceError>;

/// Every function, by name.
pub const FUNCTIONS: &[(&str, Builder)] = &[
    ("payment-webhook", |r| {
        Ok(Function::Http(crate::payment_events::router(
            crate::payment_events::PaymentEvents::from_resources(r)?,
        )))
    }),
    ("payment-events-processor", |r| {
        Ok(Function::Sqs(Arc::new(
            crate::payment_events::Processor::new(
                crate::payment_events::PaymentEvents::from_resources(r)?,
            ),
        )))
    }),
    ("payment-events-report", |r| {
        Ok(Function::Event(Arc::new(
            crate::payment_events::DailyReport::new(
                crate::payment_events::PaymentEvents::from_resources(r)?,
            ),
        )))
    }),
    ("accounts-api", |r| {
        Ok(Function::Http(crate::accounts::router(
            crate::accounts::Accounts::from_resources(r)?,
        )))
    }),
    ("advances-collector", |r| {
        Ok(Function::Event(Arc::new(crate::accounts::Collector::new(
            crate::accounts::Accounts::from_resources(r)?,
        ))))
    }),
    ("advances-worker", |r| {
        Ok(Function::Sqs(Arc::new(crate::accounts::Worker::new(
            crate::accounts::Accounts::from_resources(r)?,
        ))))
    }),
    ("advances-auditor", |r| {
        Ok(Function::Event(Arc::new(crate::accounts::Auditor::new(
            crate::accounts::Accounts::from_resources(r)?,
        ))))
    }),
];

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("no function named {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

pub fn build(name: &str, resources: &dyn Resources) -> Result<Function, FunctionError> {
    let (_, builder) = FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| FunctionError::Unknown(name.to_owned()))?;
    Ok(builder(resources)?)
}
