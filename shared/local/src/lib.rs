//! payops-local: the payops ports on an embedded SQLite store and a directory, the local
//! runtime and the `payops` CLI.

pub mod blobs;
pub mod events;
pub mod item_codec;
pub mod metrics;
pub mod queue;
pub mod sqlite;
pub mod store;
pub mod table;

pub mod bench;
pub mod bench_debts;
pub mod bench_payroll_e2e;
pub mod bench_provider;
pub mod bench_transfers;
pub mod cli;
pub mod cli_debts;
pub mod cli_dlq;
pub mod cli_executions;
pub mod cli_loans;
pub mod cli_paydays;
pub mod cli_payroll;
pub mod cli_recon;
pub mod cli_sandbox;
pub mod client;
pub mod demo;
pub mod env;
pub mod generate;
pub mod iam;
pub mod logging;
pub mod runtime;
pub mod sandbox;
pub mod template;
pub mod workflows;
