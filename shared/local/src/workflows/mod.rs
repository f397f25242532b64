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
