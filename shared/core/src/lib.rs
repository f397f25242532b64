//! payops-core: the pure domain. No I/O, no async, no AWS types: everything here is a function
//! of its inputs, unit- and property-tested in place.

pub mod accounts;
pub mod asl;
pub mod debts;
pub mod money;
pub mod paydays;
pub mod payment_event;
pub mod payroll;
pub mod recon;
pub mod schedule;
pub mod secret;
pub mod webhook_signature;

pub use money::{Currency, Money, MoneyError};
pub use secret::Secret;
