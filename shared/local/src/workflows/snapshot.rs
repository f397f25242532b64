//! The durable image of a running execution: every live frame (the top level, each running
//! Parallel branch and Map iteration) with the state it is in and what it waits for. Written
//! at checkpoints; a restart rebuilds the execution from it and carries on.

use chrono::{DateTime, Utc};
use payops_core::asl::Failure;
use payops_core::asl::engine::Step;
use payops_core::asl::retry::RetryCounts;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub type FrameId = u64;

/// Where a frame's states are: the root block, or a branch/processor below a state, one
/// (state index, branch index) pair per level. A Map processor is branch 0.
pub type Scope = Vec<(usize, usize)>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StepSnap {
    Next { state: usize, output: Value },
    End { output: Value },
    Fail(Failure),
}

impl From<Step> for StepSnap {
    fn from(s: Step) -> Self {
        match s {
            Step::Next { state, output } => StepSnap::Next { state, output },
            Step::End { output } => StepSnap::End { output },
            Step::Fail(f) => StepSnap::Fail(f),
        }
    }
}

impl From<StepSnap> for Step {
    fn from(s: StepSnap) -> Self {
        match s {
            StepSnap::Next { state, output } => Step::Next { state, output },
            StepSnap::End { output } => Step::End { output },
            StepSnap::Fail(f) => Step::Fail(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// About to enter the state (record `…StateEntered`).
    Enter,
    /// Entered; the next attempt runs (or re-runs after a restart: tasks are at-least-once).
    Attempt,
    /// A Wait state (`then` is where to go) or a retry back-off (`then` is `None`).
    Sleeping {
        until: DateTime<Utc>,
        then: Option<StepSnap>,
    },
    /// A `.waitForTaskToken` task waits for `SendTaskSuccess`/`SendTaskFailure`.
    Token(Box<TokenWait>),
    /// A Parallel or Map state waits for its branches or items.
    Children(Box<Children>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenWait {
    pub token: String,
    pub resource: String,
    pub parameters: Value,
    pub deadline: DateTime<Utc>,
    pub heartbeat_seconds: Option<u64>,
    pub heartbeat_deadline: Option<DateTime<Utc>>,
    /// Whether the service call that hands out the token returned. If a restart finds it
    /// false, the call is made again with the same token (at-least-once delivery).
    pub dispatched: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildKind {
    Parallel,
    Map,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Slot {
    Pending,
    Running(FrameId),
    Done(Value),
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Children {
    pub kind: ChildKind,
    /// Parallel: every branch's input. Map: the effective input that ItemSelector reads.
    pub input: Value,
    /// Map: the items, one per slot. Empty for Parallel.
    pub items: Vec<Value>,
    /// Whether `items` are already the iterations' inputs (ItemSelector applied and batched);
    /// otherwise ItemSelector runs when an item starts.
    pub items_final: bool,
    pub slots: Vec<Slot>,
    /// 0 means no limit.
    pub max_concurrency: usize,
    pub tolerated_count: Option<u64>,
    pub tolerated_percentage: Option<rust_decimal::Decimal>,
    /// ResultWriter destination: bucket and prefix.
    pub writer: Option<(String, String)>,
}

/// One live frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub id: FrameId,
    /// The frame whose Parallel/Map state runs this one, and the slot it fills.
    pub parent: Option<(FrameId, usize)>,
    pub scope: Scope,
    /// Shown in history events: `""`, `Fan/branch-1`, `Items/item-17`.
    pub label: String,
    pub state: usize,
    /// The raw input of the current state.
    pub input: Value,
    pub entered_at: DateTime<Utc>,
    pub retries: RetryCounts,
    pub phase: Phase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub root: FrameId,
    pub next_frame_id: FrameId,
    pub next_event_id: u64,
    pub frames: Vec<Frame>,
}

/// The serialisable view of a live execution, borrowed (no copy of the frames).
#[derive(Debug, Serialize)]
pub struct SnapshotRef<'a> {
    pub root: FrameId,
    pub next_frame_id: FrameId,
    pub next_event_id: u64,
    pub frames: Vec<&'a Frame>,
}
