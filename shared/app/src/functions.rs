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
    ("recon-api", |r| {
        Ok(Function::Http(crate::recon::http::router(
            crate::recon::Recon::from_resources(r)?,
        )))
    }),
    ("recon-stream", |r| {
        Ok(Function::Sqs(Arc::new(
            crate::recon::Recon::from_resources(r)?.stream_processor(),
        )))
    }),
    ("recon-daily", |r| {
        Ok(Function::Task(Arc::new(
            crate::recon::Recon::from_resources(r)?.daily_batch(),
        )))
    }),
    ("debts-api", |r| {
        Ok(Function::Http(crate::debts::router(
            crate::debts::Debts::from_resources(r)?,
        )))
    }),
    ("debts-picker", |r| {
        Ok(Function::Sqs(Arc::new(crate::debts::Picker::new(
            crate::debts::Debts::from_resources(r)?,
        ))))
    }),
    ("debts-steps", |r| {
        Ok(Function::Task(Arc::new(crate::debts::Steps::new(
            crate::debts::Debts::from_resources(r)?,
        ))))
    }),
    ("debts-register", |r| {
        Ok(Function::Sqs(Arc::new(crate::debts::Register::new(
            crate::debts::Debts::from_resources(r)?,
        ))))
    }),
    ("payment-webhook", |r| {
        // Only the webhook holds the lender's signing secret.
        Ok(Function::Http(crate::payment_events::router(
            crate::payment_events::PaymentEvents::from_resources(r)?,
            r.secret(crate::resources::WEBHOOK_SECRET_ENV)?,
        )))
    }),
    ("payment-events-processor", |r| {
        Ok(Function::Sqs(Arc::new(
            crate::payment_events::Processor::new(
                crate::payment_events::PaymentEvents::from_resources(r)?,
            )
            .with_pay_history(crate::loans::Loans::history_only(r)?),
        )))
    }),
    ("payment-events-report", |r| {
        Ok(Function::Event(Arc::new(
            crate::payment_events::DailyReport::new(
                crate::payment_events::PaymentEvents::from_resources(r)?,
            ),
        )))
    }),
    ("loans-api", |r| {
        Ok(Function::Http(crate::loans::router(
            crate::loans::Loans::from_resources(r)?,
        )))
    }),
    ("payroll-checker", |r| {
        Ok(Function::Event(Arc::new(crate::loans::Checker::new(
            crate::loans::Loans::from_resources(r)?,
        ))))
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
    ("payroll-api", |r| {
        Ok(Function::Http(crate::payroll::router(
            crate::payroll::Payroll::from_resources(r)?,
        )))
    }),
    ("payroll-webhook", |r| {
        // Only the webhook holds the provider's signing secret.
        Ok(Function::Http(crate::payroll::webhook_router(
            crate::payroll::Payroll::from_resources(r)?,
            r.secret(crate::resources::WEBHOOK_SECRET_ENV)?,
        )))
    }),
    ("payroll-inbox", |r| {
        Ok(Function::Sqs(Arc::new(crate::payroll::InboxHandler::new(
            crate::payroll::Payroll::from_resources(r)?,
        ))))
    }),
    ("payroll-workflow", |r| {
        Ok(Function::Task(Arc::new(
            crate::payroll::WorkflowTasks::new(crate::payroll::Payroll::from_resources(r)?),
        )))
    }),
    ("payroll-accounts", |r| {
        Ok(Function::Sqs(Arc::new(
            crate::payroll::AccountsWorker::new(crate::payroll::Disbursement::from_resources(r)?),
        )))
    }),
    ("payroll-payments", |r| {
        Ok(Function::Sqs(Arc::new(
            crate::payroll::PaymentsWorker::new(crate::payroll::Disbursement::from_resources(r)?),
        )))
    }),
    ("payroll-check", |r| {
        Ok(Function::Event(Arc::new(
            crate::payroll::ConsistencyCheck::new(crate::payroll::Disbursement::from_resources(r)?),
        )))
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
