//! `LocalStore`: the embedded store behind every local adapter. One directory holds it all:
//! `payops.sqlite` (tables, queues, blob metadata, events, metrics, and whatever other local
//! modules migrate into it) and `objects/` (blob bodies, one folder per bucket).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use payops_app::ports::{Clock, Table, TableError, TableSpec};

use crate::blobs::LocalBlobs;
use crate::events::LocalEvents;
use crate::metrics::LocalMetrics;
use crate::queue::{LocalQueue, Signals};
use crate::sqlite::{Db, DbError};
use crate::table::LocalTable;

pub use crate::queue::{DeadLetter, QueueConfig};

/// The database file inside the store's directory.
pub const DATABASE_FILE: &str = "payops.sqlite";
/// The folder of blob bodies inside the store's directory.
pub const OBJECTS_DIR: &str = "objects";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Table(#[from] TableError),
}

struct Inner {
    dir: PathBuf,
    db: Db,
    clock: Arc<dyn Clock>,
    queues: Mutex<HashMap<String, Arc<LocalQueue>>>,
    buckets: Mutex<HashMap<String, Arc<LocalBlobs>>>,
    buses: Mutex<HashMap<String, Arc<LocalEvents>>>,
    metrics: OnceLock<Arc<LocalMetrics>>,
    signals: Signals,
}

/// The embedded store. Cheap to clone; every clone shares the database thread and the
/// in-process registries (a queue or bucket handed out twice is the same object, so long
/// polls and S3 notifications see every write in the process).
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned registry only means a thread panicked while inserting; the map is intact.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalStore {
    /// Opens (creating if needed) the store in `dir`. Blocking; call it at start-up.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<LocalStore, StoreError> {
        let objects = dir.join(OBJECTS_DIR);
        std::fs::create_dir_all(&objects).map_err(|source| StoreError::Io {
            path: objects.clone(),
            source,
        })?;
        let db = Db::open(&dir.join(DATABASE_FILE))?;
        db.migrate("0001_table", crate::table::SCHEMA)?;
        db.migrate("0001_queue", crate::queue::SCHEMA)?;
        db.migrate("0001_blobs", crate::blobs::SCHEMA)?;
        db.migrate("0001_events", crate::events::SCHEMA)?;
        db.migrate("0001_metrics", crate::metrics::SCHEMA)?;
        Ok(LocalStore {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                db,
                clock,
                queues: Mutex::default(),
                buckets: Mutex::default(),
                buses: Mutex::default(),
                metrics: OnceLock::new(),
                signals: Signals::default(),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    /// Shared SQLite access for other local modules (workflow executor, ops views).
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// A table with `spec`'s indexes; building entries for indexes it did not have before.
    /// Blocking.
    pub fn table(&self, spec: TableSpec) -> Result<Arc<dyn Table>, StoreError> {
        Ok(Arc::new(LocalTable::open(self.inner.db.clone(), spec)?))
    }

    /// Creates (or reconfigures) a queue; its messages persist across restarts. Blocking.
    pub fn queue(&self, config: QueueConfig) -> Result<Arc<LocalQueue>, StoreError> {
        let name = config.name.clone();
        let queue = LocalQueue::open(
            self.inner.db.clone(),
            self.clock(),
            config,
            Arc::clone(&self.inner.signals),
        )
        .map_err(StoreError::Invalid)?;
        let queue = Arc::new(queue);
        lock(&self.inner.queues).insert(name, Arc::clone(&queue));
        Ok(queue)
    }

    /// A queue created earlier in this process by [`LocalStore::queue`].
    pub fn queue_named(&self, name: &str) -> Option<Arc<LocalQueue>> {
        lock(&self.inner.queues).get(name).cloned()
    }

    /// Every queue created in this process, by name.
    pub fn queues(&self) -> Vec<Arc<LocalQueue>> {
        let mut all: Vec<_> = lock(&self.inner.queues).values().cloned().collect();
        all.sort_by(|a, b| a.config().name.cmp(&b.config().name));
        all
    }

    /// The bucket `bucket` (objects under `objects/{bucket}/`). An invalid bucket name makes
    /// every operation fail with `BlobError::Invalid`.
    pub fn blobs(&self, bucket: &str) -> Arc<LocalBlobs> {
        let mut buckets = lock(&self.inner.buckets);
        let blobs = buckets.entry(bucket.to_owned()).or_insert_with(|| {
            Arc::new(LocalBlobs::new(
                self.inner.db.clone(),
                self.clock(),
                &self.inner.dir.join(OBJECTS_DIR),
                bucket,
            ))
        });
        Arc::clone(blobs)
    }

    /// The event bus `bus`.
    pub fn events(&self, bus: &str) -> Arc<LocalEvents> {
        let mut buses = lock(&self.inner.buses);
        let events = buses.entry(bus.to_owned()).or_insert_with(|| {
            Arc::new(LocalEvents::new(self.inner.db.clone(), self.clock(), bus))
        });
        Arc::clone(events)
    }

    /// The metrics store.
    pub fn metrics(&self) -> Arc<LocalMetrics> {
        Arc::clone(
            self.inner
                .metrics
                .get_or_init(|| Arc::new(LocalMetrics::new(self.inner.db.clone()))),
        )
    }
}
