//! The port traits: what the handlers need from the outside world, and nothing more.
//! Adapters live in `payops-aws` (AWS SDK) and `payops-local` (SQLite and a directory).

pub mod blobs;
pub mod clock;
pub mod events;
pub mod metrics;
pub mod provider;
pub mod queue;
pub mod table;
pub mod workflows;

pub use blobs::{Blob, BlobError, BlobMeta, BlobPage, Blobs};
pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{Event, Events, EventsError};
pub use metrics::{MetricRecord, Metrics, MetricsError};
pub use provider::{PaymentProvider, ProviderError};
pub use queue::{OutgoingMessage, Queue, QueueError, ReceiveOptions, ReceivedMessage};
pub use table::{
    CancelReason, Condition, Cursor, IndexSpec, Item, Key, Page, Query, SortKeyRange, Table,
    TableError, TableSpec, UpdateAction, Value, Write,
};
pub use workflows::{WorkflowError, Workflows};
