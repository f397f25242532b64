//! The error every handler returns. Its `error_type` is stable: the state machines' Retry and
//! Catch clauses and the local runtime match on it, so renaming one is a breaking change.

use lambda_http::lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A dependency failed in a way that may pass on retry (throttling, network, busy store).
    #[error("retryable: {0}")]
    Retryable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The input can never succeed; retrying is pointless. The message names the field or row.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A broken invariant or configuration: a bug or an operator's mistake.
    #[error("fatal: {0}")]
    Fatal(String),
}

impl HandlerError {
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Retryable(_) => "Retryable",
            HandlerError::Rejected(_) => "Rejected",
            HandlerError::Fatal(_) => "Fatal",
        }
    }
    pub fn retryable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        HandlerError::Retryable(Box::new(e))
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.to_string(),
        }
    }
}

macro_rules! retryable_from {
    ($($t:ty),*) => {$(
        impl From<$t> for HandlerError {
            fn from(e: $t) -> Self { HandlerError::Retryable(Box::new(e)) }
        }
    )*};
}
retryable_from!(
    crate::ports::QueueError,
    crate::ports::BlobError,
    crate::ports::EventsError,
    crate::ports::MetricsError,
    crate::ports::WorkflowError
);

impl From<crate::ports::TableError> for HandlerError {
    fn from(e: crate::ports::TableError) -> Self {
        match e {
            crate::ports::TableError::Invalid(m) => HandlerError::Fatal(m),
            other => HandlerError::Retryable(Box::new(other)),
        }
    }
}
