//! payops-app: handlers (event → use case → response), use cases per flow, the port traits
//! they need, and the axum routers of the HTTP APIs. No AWS SDK types and no SQLite here:
//! handlers take `aws_lambda_events` / `lambda_http` types so the exact code that runs in
//! Lambda also runs in `payops up`.

pub mod accounts;
pub mod debts;
pub mod error;
pub mod functions;
pub mod handler;
pub mod http;
pub mod loans;
pub mod payment_events;
pub mod payroll;
pub mod ports;
pub mod provider_http;
pub mod provider_limiter;
pub mod recon;
pub mod resources;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "fakes")]
pub mod fake_provider;
#[cfg(feature = "fakes")]
pub mod fake_workflows;

pub use error::HandlerError;
