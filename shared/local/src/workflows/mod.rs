//! The local Step Functions: an executor for the Amazon States Language (JSONPath) behind the
//! `Workflows` port. The semantics are pure functions in `payops_core::asl`; this module runs
//! them: it performs tasks through a [`TaskInvoker`], sleeps on the injectable clock, parks
//! `.waitForTaskToken` tasks until `send_task_success`/`send_task_failure`, runs Parallel
//! branches and Map items with bounded concurrency, and checkpoints every execution (history
//! and a snapshot of its frames) to the embedded database so a restart resumes it.
//!
//! Durability: a frame that parks (Wait state, retry back-off, task token) is checkpointed
//! before it parks, so waits and token waits survive a restart exactly. Work in flight between
//! checkpoints (a running task) is redone after a crash: tasks are at-least-once, as in AWS.
//!
//! What is written when, and so what a crash of the process (kill -9, a panic) can lose (a
//! power cut can also lose the last commits the OS had not synced: `synchronous=NORMAL`):
//! - The snapshot (every live frame) is written before a frame parks, every
//!   `CHECKPOINT_INTERVAL_MS_DEFAULT` (500 ms) while frames make progress, and with the end.
//!   Progress since the last snapshot is lost and redone on resume: at most 500 ms of work of
//!   a busy execution, never a wait, a task token or a started child of a parked frame.
//! - History is handed to the store in the background every `EVENTS_FLUSH_INTERVAL_MS_DEFAULT`
//!   (50 ms) or as soon as `EVENTS_FLUSH_BYTES_DEFAULT` (256 KiB) is pending, and with every
//!   snapshot. Events not yet written are lost (at most that much, plus one flush in flight);
//!   the redone work records its events again, with ids after the last stored event, so the
//!   history of a resumed execution can show the same states twice around the crash.
//! - The end (status, output, error) and its last events are written in one transaction.
//!
//! Resume reads only what was committed: the last snapshot, and the last stored event id.

pub mod executor;
pub mod invoker;
pub mod model;
mod run;
pub mod snapshot;
pub mod sqlite_store;
pub mod store;
pub mod timeline;
pub mod timers;

pub use executor::{BlobBuckets, Executor, ExecutorConfig, ExecutorDeps, ExecutorError, OsEntropy};
pub use invoker::{TaskFailure, TaskInvoker};
pub use model::{
    ExecutionFilter, ExecutionRecord, ExecutionStatus, ExecutionSummary, HistoryEvent,
};
pub use sqlite_store::SqliteWorkflowStore;
pub use store::{MemoryWorkflowStore, WorkflowStore};

/// Where `payops up` finds local-only state machines in its data directory
/// (see [`Executor::register_directory`]).
pub fn local_machines_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join(executor::LOCAL_STATE_MACHINES_DIR)
}
