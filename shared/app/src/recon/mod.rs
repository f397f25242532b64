//! Flow 5, reconciliation: the daily batch index and the final aggregate index as Parquet.
//!
//! - [`input`]: CSV and Parquet inputs into typed rows, by hash partition;
//! - [`parquet`]: the writers of the batch, final and KPIs datasets;
//! - [`run`]: one day reconciled in memory, partitions in parallel.
//!
//! The rules themselves are in `payops_core::recon`.

pub mod generate;
pub mod input;
pub mod parquet;
pub mod run;

#[cfg(test)]
mod tests;

pub use input::{InputError, TextTable, read_merchants, read_policies};
pub use run::{
    BATCH_DATASET, DayInputs, DayOutput, FINAL_DATASET, KPIS_DATASET, OutputFile,
    PARTITIONS_DEFAULT, PartitionsOutput, ReconError, RunOptions, RunSummary, day_prefix,
    kpis_file, run_day, run_partitions,
};

/// The environment variable holding the key of user-id tokens (at least 16 bytes).
pub const MASK_KEY_ENV: &str = "PAYOPS_RECON_MASK_KEY";
