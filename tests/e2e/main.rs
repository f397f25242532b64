//! End-to-end tests: the real `payops` binary over loopback HTTP. One test binary, one module
//! per flow or concern.

mod accounts;
mod debts;
mod demo;
mod loans;
mod payment_events;
mod payroll;
mod recon;
