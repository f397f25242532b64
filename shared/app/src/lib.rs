//! payops-app: handlers (event → use case → response), use cases per flow, the port traits
//! they need, and the axum routers of the HTTP APIs. No AWS SDK types and no SQLite here:
//! handlers take `aws_lambda_events` / `lambda_http` types so the exact code that runs in
//! Lambda also runs in `payops up`.

pub mod accounts;
pub mod error;
pub mod functions;
pub mod handler;
pub mod http;
pub mod payment_events;
pub mod ports;
pub mod resources;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::HandlerError;
