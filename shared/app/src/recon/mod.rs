//! Flow 5, reconciliation: the daily batch index and the final aggregate index as Parquet.
//!
//! - [`input`]: CSV and Parquet inputs into typed rows, by hash partition;
//! - [`parquet`]: the writers of the batch, final and KPIs datasets;
//! - [`run`]: one day reconciled in memory, partitions in parallel;
//! - [`stream`]: the streaming index (SQS function `recon-stream`);
//! - [`daily`]: the daily batch index's tasks (function `recon-daily`, state machine
//!   `statemachines/recon-daily.asl.json`);
//! - [`reference`]: policies and merchant profiles, cached;
//! - [`http`]: the API (function `recon-api`): reference data in, the streaming index out;
//! - [`generate`]: realistic inputs.
//!
//! The rules themselves are in `payops_core::recon`.

pub mod daily;
pub mod generate;
pub mod http;
pub mod input;
pub mod parquet;
pub mod reference;
pub mod run;
pub mod stream;

#[cfg(test)]
mod tests;

pub use daily::DailyBatch;
pub use reference::ReferenceCache;
pub use stream::{StreamIndex, StreamProcessor};

use crate::resources::{RECON_TABLE, ResourceError, Resources};

pub use input::{InputError, TextTable, read_merchants, read_policies};
pub use run::{
    BATCH_DATASET, DayInputs, DayOutput, FINAL_DATASET, FINAL_MONTHLY_DATASET, KPIS_DATASET,
    OutputFile, PARTITIONS_DEFAULT, PartitionsOutput, ReconError, RunOptions, RunSummary,
    day_prefix, final_monthly_key, kpis_file, month_prefix, monthly_day_stem, run_day,
    run_partitions,
};

/// The environment variable holding the key of user-id tokens (at least 16 bytes).
pub const MASK_KEY_ENV: &str = "PAYOPS_RECON_MASK_KEY";

/// The ports of the reconciliation functions, wired once from a [`Resources`] provider.
#[derive(Clone)]
pub struct Recon {
    pub table: std::sync::Arc<dyn crate::ports::Table>,
    pub blobs: std::sync::Arc<dyn crate::ports::Blobs>,
    pub clock: std::sync::Arc<dyn crate::ports::Clock>,
    pub masker: payops_core::recon::UserIdMasker,
    pub reference: std::sync::Arc<ReferenceCache>,
}

impl Recon {
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        let blobs = resources.blobs()?;
        let clock = resources.clock();
        let key = resources.secret(MASK_KEY_ENV)?;
        let masker = payops_core::recon::UserIdMasker::new(&key).map_err(|e| {
            ResourceError::Unavailable {
                name: MASK_KEY_ENV.to_owned(),
                source: Box::new(e),
            }
        })?;
        Ok(Recon {
            table: resources.table(&RECON_TABLE)?,
            reference: std::sync::Arc::new(ReferenceCache::new(blobs.clone(), clock.clone())),
            blobs,
            clock,
            masker,
        })
    }

    /// The SQS function `recon-stream`.
    pub fn stream_processor(&self) -> StreamProcessor {
        StreamProcessor {
            index: StreamIndex {
                table: self.table.clone(),
                blobs: self.blobs.clone(),
                clock: self.clock.clone(),
                masker: self.masker.clone(),
                reference: self.reference.clone(),
            },
        }
    }

    /// The Task function `recon-daily`.
    pub fn daily_batch(&self) -> DailyBatch {
        DailyBatch {
            blobs: self.blobs.clone(),
            clock: self.clock.clone(),
            masker: self.masker.clone(),
            reference: self.reference.clone(),
        }
    }
}
