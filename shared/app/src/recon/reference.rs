//! Reference data (policy rules and merchant profiles), loaded from the bucket where the API
//! or a file drop put them, and cached by each processor for a few minutes: a rule change
//! reaches every warm Lambda within the TTL, and a day of events costs two reads per container
//! per TTL, not two per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use payops_core::recon::{Merchant, Policy};

use super::input::{InputError, TextTable, read_merchants, read_policies};
use crate::ports::{BlobError, Blobs, Clock};

/// Where the reference files live in the bucket (CSV or Parquet; the content tells).
pub const POLICIES_KEY: &str = "recon/reference/policies.csv";
pub const MERCHANTS_KEY: &str = "recon/reference/merchants.csv";
/// How long a loaded copy is used before it is read again.
pub const REFERENCE_TTL_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Policies and merchants as of one load.
#[derive(Debug, Default)]
pub struct Reference {
    pub policies: Vec<Policy>,
    pub merchants: HashMap<String, Merchant>,
}

/// The cache. Cheap to share; one load at a time is not enforced (two concurrent loads just
/// read the same files twice).
pub struct ReferenceCache {
    blobs: Arc<dyn Blobs>,
    clock: Arc<dyn Clock>,
    loaded: Mutex<Option<(DateTime<Utc>, Arc<Reference>)>>,
}

impl ReferenceCache {
    pub fn new(blobs: Arc<dyn Blobs>, clock: Arc<dyn Clock>) -> Self {
        ReferenceCache {
            blobs,
            clock,
            loaded: Mutex::new(None),
        }
    }

    /// The cached reference data, reloaded when older than [`REFERENCE_TTL_MS`].
    pub async fn get(&self) -> Result<Arc<Reference>, ReferenceError> {
        let now = self.clock.now();
        if let Ok(guard) = self.loaded.lock()
            && let Some((at, reference)) = guard.as_ref()
            && (now - *at).num_milliseconds() < REFERENCE_TTL_MS
        {
            return Ok(reference.clone());
        }
        let reference = Arc::new(load(self.blobs.as_ref()).await?);
        if let Ok(mut guard) = self.loaded.lock() {
            *guard = Some((now, reference.clone()));
        }
        Ok(reference)
    }
}

/// Reads both files; a missing file means no rules (or no profiles) yet.
pub async fn load(blobs: &dyn Blobs) -> Result<Reference, ReferenceError> {
    let policies = match blobs.get(POLICIES_KEY).await? {
        Some(blob) => read_policies(&TextTable::from_bytes(POLICIES_KEY, blob.body.to_vec())?)?,
        None => Vec::new(),
    };
    let merchants = match blobs.get(MERCHANTS_KEY).await? {
        Some(blob) => read_merchants(&TextTable::from_bytes(MERCHANTS_KEY, blob.body.to_vec())?)?
            .into_iter()
            .map(|m| (m.merchant_id.clone(), m))
            .collect(),
        None => HashMap::new(),
    };
    Ok(Reference {
        policies,
        merchants,
    })
}
