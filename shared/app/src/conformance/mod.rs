//! The adapter conformance suite: one set of behavioural cases, written against the port
//! traits only, that every adapter set must pass. `payops-local` runs it against SQLite and a
//! directory; `payops-aws` runs it against the moto emulator. Where the two would differ the
//! suite follows what DynamoDB, S3 and SQS do, so a handler that passes locally behaves the
//! same in AWS.
//!
//! # How an adapter crate runs it
//!
//! Implement [`Harness`] (a factory of fresh, empty resources plus a way to make time pass)
//! and expand the macro once in an integration test:
//!
//! ```ignore
//! // tests/conformance.rs (needs `tokio` with the `macros` and `rt-multi-thread` features)
//! payops_app::conformance_tests!(MyHarness::new());
//! ```
//!
//! The argument is an expression evaluated once per test and **awaited**: a call of an
//! `async fn` returning the harness, or an `async { .. }` block. Its output must be a value of
//! a type that implements [`Harness`] (not a reference or an `Arc`). The macro expands to one
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per case, named after the
//! case, so `cargo test -p CRATE --test conformance queue_` runs the queue cases only.
//!
//! Each case can also be called directly: `payops_app::conformance::queue_fifo_group_ordering(&h).await`.
//!
//! # Time
//!
//! Cases that need time to pass call [`Harness::advance_time`]; the local harness moves a
//! `ManualClock`, the AWS harness has to wait in real time. Cases that wait use visibility
//! timeouts and delays of [`WAIT_VISIBILITY_TIMEOUT_SECONDS`]; cases that only need a message
//! to stay invisible use [`HOLD_VISIBILITY_TIMEOUT_SECONDS`] so a slow emulator cannot flake.

mod blobs;
mod bus;
mod queue;
mod table;

use std::sync::Arc;

use async_trait::async_trait;

use crate::ports::{Blobs, Events, Metrics, Queue, Table};

pub use blobs::*;
pub use bus::*;
pub use queue::*;
pub use table::*;

/// Visibility timeout (and delay) of the cases that wait for it to pass: short, because the
/// AWS harness waits in real time.
pub const WAIT_VISIBILITY_TIMEOUT_SECONDS: u32 = 1;
/// How long a case waits past a `WAIT_VISIBILITY_TIMEOUT_SECONDS` timeout: one second of
/// slack for an emulator's whole-second clock.
pub const WAIT_SECONDS: u32 = WAIT_VISIBILITY_TIMEOUT_SECONDS + 1;
/// Visibility timeout of the cases that need a message to stay in flight while they work.
pub const HOLD_VISIBILITY_TIMEOUT_SECONDS: u32 = 60;

/// A factory of fresh resources for one case, and a way to make time pass for them.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A fresh, empty table with a unique name and these indexes (each keyed by
    /// `{name}_pk` / `{name}_sk`, as `TableSpec::with_index` declares them).
    async fn table(&self, spec_indexes: &[&str]) -> Arc<dyn Table>;
    /// A fresh queue; with `max_receive_count` it has a dead-letter queue, returned second.
    async fn queue(
        &self,
        fifo: bool,
        visibility_timeout_seconds: u32,
        max_receive_count: Option<u32>,
    ) -> (Arc<dyn Queue>, Option<Arc<dyn Queue>>);
    /// A fresh, empty bucket.
    async fn blobs(&self) -> Arc<dyn Blobs>;
    async fn events(&self) -> Arc<dyn Events>;
    async fn metrics(&self) -> Arc<dyn Metrics>;
    /// Make `seconds` pass for the adapter: the local harness advances a ManualClock;
    /// the AWS harness (against the moto emulator) has to wait in real time.
    async fn advance_time(&self, seconds: u32);
    /// Whether concurrent writes to one item are isolated from each other, as in DynamoDB
    /// and the SQLite adapter. moto's are not: it checks a condition and writes without a
    /// lock, and rolls a transaction back by restoring a snapshot of the whole table (seen
    /// here: 15 of 30 concurrent debits of 7.00 succeeding on 100.00). A moto harness returns
    /// false, and the concurrency cases then issue the same writes one after another, which
    /// still checks the conditions' semantics but not isolation.
    fn isolates_concurrent_writes(&self) -> bool {
        true
    }
}

/// Runs `writes` concurrently (each on its own task) when the harness isolates concurrent
/// writes, one after another otherwise; returns their outcomes in order.
pub(crate) async fn run_writes<R: Send + 'static>(
    h: &dyn Harness,
    writes: Vec<futures::future::BoxFuture<'static, R>>,
) -> Vec<R> {
    let mut outcomes = Vec::with_capacity(writes.len());
    if h.isolates_concurrent_writes() {
        let tasks: Vec<_> = writes.into_iter().map(tokio::spawn).collect();
        for task in tasks {
            outcomes.push(task.await.expect("a write task panicked"));
        }
    } else {
        for write in writes {
            outcomes.push(write.await);
        }
    }
    outcomes
}

/// Expands to one `#[tokio::test]` per conformance case, each building its harness with the
/// given expression (awaited; see the module documentation).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_cases!($harness;
            table_round_trip_every_value_type,
            table_conditional_put_race,
            table_put_and_delete_conditions,
            table_update_returns_all_new_and_creates_missing_item,
            table_update_actions,
            table_every_condition_variant,
            table_transaction_failing_condition_cancels_every_write,
            table_transaction_applies_every_write_kind,
            table_transaction_limits,
            table_concurrent_debits_never_overdraw,
            table_concurrent_transactional_debits_never_overdraw,
            table_query_sort_key_ranges,
            table_query_pagination_forward_and_backward,
            table_secondary_index_is_sparse_and_ordered,
            table_secondary_index_pagination,
            table_batch_get,
            table_invalid_requests,
            blobs_put_get_head_delete,
            blobs_list_by_prefix_with_continuation,
            queue_send_receive_delete,
            queue_visibility_timeout_and_receive_count,
            queue_change_visibility,
            queue_delay_seconds,
            queue_redrive_to_dead_letter_queue,
            queue_fifo_group_ordering,
            queue_fifo_deduplication,
            queue_stale_and_invalid_receipt_handles,
            queue_invalid_requests,
            events_put_events,
            metrics_write,
        );
    };
}

/// Implementation detail of [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness.await;
                let harness: &dyn $crate::conformance::Harness = &harness;
                $crate::conformance::$case(harness).await;
            }
        )*
    };
}

/// An exact decimal from a literal the suite itself wrote.
pub(crate) fn dec(text: &str) -> rust_decimal::Decimal {
    // The suite only passes literals it wrote; a bad one is a bug in the suite.
    rust_decimal::Decimal::from_str_exact(text)
        .unwrap_or_else(|e| panic!("bad decimal literal {text:?} in the suite: {e}"))
}
