//! Sorting SDK errors into the two kinds every port distinguishes: worth retrying
//! (throttling, a 5xx, a timeout, a broken connection) or not (the request itself is wrong,
//! the resource does not exist, access is denied). Each adapter first matches the errors that
//! mean something in its port (a failed condition, an unknown receipt handle, …) and hands
//! the rest to [`classify`].

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Error codes that AWS services use for "slow down" or "try again": retrying may succeed.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalServerException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// What a caller can do about an SDK error.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The request may succeed if retried.
    Unavailable(BoxError),
    /// The request can never succeed as it is; the text says why (code and message).
    Rejected(String),
}

/// True when an error code (as returned by `ProvideErrorMetadata::code`) means "retry".
pub(crate) fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

/// Classifies an SDK error that the adapter did not recognise as port-specific.
pub(crate) fn classify<E>(err: SdkError<E, HttpResponse>) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        // Built locally from our own input: the request is wrong.
        SdkError::ConstructionFailure(_) => Fault::Rejected(describe(&err)),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Fault::Unavailable(Box::new(err))
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = err.code().unwrap_or_default();
            if status >= 500 || status == 429 || is_retryable_code(code) {
                Fault::Unavailable(Box::new(err))
            } else {
                Fault::Rejected(describe(&err))
            }
        }
        // `SdkError` is non-exhaustive: anything new is treated as transient, the safe side
        // for at-least-once processing (the message is retried, then dead-lettered).
        _ => Fault::Unavailable(Box::new(err)),
    }
}

/// `Code: message` of a service error, or the full error chain of any other error.
pub(crate) fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(err).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_codes_are_retryable() {
        assert!(is_retryable_code("ThrottlingException"));
        assert!(is_retryable_code("ProvisionedThroughputExceededException"));
        assert!(is_retryable_code("InternalServerError"));
        assert!(!is_retryable_code("ValidationException"));
        assert!(!is_retryable_code("ResourceNotFoundException"));
        assert!(!is_retryable_code("AccessDeniedException"));
    }
}
