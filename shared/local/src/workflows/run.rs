//! One running execution: its frames (top level, Parallel branches, Map iterations), the loop
//! that moves each frame through its states by asking the pure engine what to do, and the
//! checkpoints that make it durable.
//!
//! Every frame of an execution runs as a future inside the execution's one tokio task (Map
//! iterations are polled together, not spawned), so the shared `RunState` mutex is never
//! contended by the frames themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use payops_core::asl::context::{ExecutionInfo, StateContext, format_time};
use payops_core::asl::definition::{Block, ItemReader, StateKind, StateMachine};
use payops_core::asl::engine::{
    self, Attempt, BatchSpec, ItemResult, MapItems, MapRun, ReadRequest, Step,
    TASK_TIMEOUT_DEFAULT_SECONDS, Tolerance,
};
use payops_core::asl::entropy::uuid_v4;
use payops_core::asl::errors::names;
use payops_core::asl::events::EventKind;
use payops_core::asl::reader::{object_item, parse_items};
use payops_core::asl::resource::Resource;
use payops_core::asl::retry::RetryCounts;
use payops_core::asl::{Failure, definition::ReaderSource};
use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};

use super::executor::{ExecutorConfig, Inner, Machine};
use super::invoker::call_service;
use super::model::{ChunkBuilder, HistoryEvent};
use super::snapshot::{
    ChildKind, Children, Frame, FrameId, Phase, Scope, Slot, Snapshot, SnapshotRef, TokenWait,
};
use super::store::{Checkpoint, Finish, TokenOutcome};
use super::timers::OnFire;

/// Most Map iterations running at once when `MaxConcurrency` is 0 (unlimited).
pub const MAP_CONCURRENCY_UNLIMITED_MAX: usize = 1_000;
/// Most objects one `listObjectsV2` reader lists.
pub const LIST_OBJECTS_MAX: usize = 1_000_000;

/// Frame ids are small integers handed out by the executor itself (no untrusted keys): a
/// multiplicative hash spreads them over the table at a fraction of SipHash's cost, and the
/// frames are looked up several times per state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FrameIdHasher(u64);

/// An odd 64-bit constant with well-mixed bits (the one of rustc's FxHasher).
const FRAME_ID_HASH_MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl std::hash::Hasher for FrameIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(FRAME_ID_HASH_MULTIPLIER);
    }
}

pub(crate) type FrameMap = HashMap<FrameId, Frame, std::hash::BuildHasherDefault<FrameIdHasher>>;

pub(crate) struct RunState {
    pub frames: FrameMap,
    pub root: FrameId,
    pub next_frame_id: FrameId,
    pub next_event_id: u64,
    /// History recorded since the last write, as JSON.
    pub pending: ChunkBuilder,
    pub new_tokens: Vec<String>,
    /// Bumped when a frame parks; a checkpoint saves up to `dirty_gen`.
    pub dirty_gen: u64,
    pub saved_gen: u64,
    pub last_checkpoint: Instant,
    pub last_flush: Instant,
}

impl RunState {
    /// Appends events to the pending history, serialised at once (nothing else keeps them).
    pub fn record(&mut self, scope: &str, now: DateTime<Utc>, events: Vec<EventKind>) {
        let first_id = self.next_event_id;
        self.next_event_id += events.len() as u64;
        if let Err(e) = self.pending.push_all(first_id, now, scope, &events) {
            tracing::error!(error = %e, event = first_id, "cannot serialise a history event");
        }
    }

    /// Whether a snapshot checkpoint, or else a history flush, is due at `now`; marks it
    /// done. History is flushed by time or as soon as enough bytes are pending.
    pub fn writes_due(&mut self, config: &ExecutorConfig, now: Instant) -> (bool, bool) {
        let checkpoint_due = now.saturating_duration_since(self.last_checkpoint)
            >= StdDuration::from_millis(config.checkpoint_interval_ms);
        if checkpoint_due {
            self.last_checkpoint = now;
        }
        let flush_due = self.pending.len() >= config.events_flush_bytes
            || now.saturating_duration_since(self.last_flush)
                >= StdDuration::from_millis(config.events_flush_interval_ms);
        if flush_due {
            self.last_flush = now;
        }
        (checkpoint_due, flush_due)
    }

    fn frame(&mut self, id: FrameId) -> Result<&mut Frame, Failure> {
        self.frames
            .get_mut(&id)
            .ok_or_else(|| Failure::runtime(format!("internal: frame {id} is missing")))
    }

    fn snapshot_json(&self) -> Result<String, serde_json::Error> {
        let mut frames: Vec<&Frame> = self.frames.values().collect();
        frames.sort_by_key(|f| f.id);
        serde_json::to_string(&SnapshotRef {
            root: self.root,
            next_frame_id: self.next_frame_id,
            next_event_id: self.next_event_id,
            frames,
        })
    }

    /// Removes a frame and all frames below it; returns the task tokens they were waiting on.
    fn remove_subtree(&mut self, id: FrameId) -> Vec<String> {
        let mut doomed = vec![id];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            doomed.extend(
                self.frames
                    .values()
                    .filter(|f| f.parent.is_some_and(|(p, _)| p == parent))
                    .map(|f| f.id),
            );
            i += 1;
        }
        doomed
            .into_iter()
            .filter_map(|d| self.frames.remove(&d))
            .filter_map(|f| match f.phase {
                Phase::Token(t) => Some(t.token),
                _ => None,
            })
            .collect()
    }
}

pub(crate) struct Run {
    pub exec: ExecutionInfo,
    pub machine: Arc<Machine>,
    pub state: Mutex<RunState>,
    /// Leaf frames that can make progress without an outside event (timer, token, task).
    busy: AtomicUsize,
    idle: Notify,
    pub finished: watch::Sender<bool>,
    checkpoint_lock: tokio::sync::Mutex<()>,
    /// A background history flush is under way.
    flushing: AtomicBool,
    /// The execution's end is being recorded (by its driver or by `stop`): only once.
    pub ended: AtomicBool,
    /// When the execution times out (`TimeoutSeconds` of the state machine).
    pub deadline: Option<DateTime<Utc>>,
    pub abort: Mutex<Option<tokio::task::AbortHandle>>,
}

/// Marks a frame as waiting for an outside event; `busy` drops while it is parked. Whoever
/// wakes the frame (a timer, a token) marks it busy again at once, so the frame never looks
/// idle between the event and its next poll.
///
/// A frame registers its wake-ups (timers, a token) while still counted busy and only then
/// parks: an observer on another thread (`settled`, `next_timer`) must never see it idle with
/// its timer not yet pending. A wake-up that comes between the registration and the park
/// keeps it busy.
pub(crate) struct Parked {
    run: Arc<Run>,
    state: Arc<AtomicU8>,
}

/// Not counted busy: waiting for a wake-up.
const PARKED: u8 = 0;
/// Counted busy, with no wake-up to handle (before its first park, or after `handled`).
const AWAKE: u8 = 1;
/// Counted busy because a wake-up came that the frame has not handled yet.
const WOKEN: u8 = 2;

impl Parked {
    /// Parks at once: for a frame that only waits on frames counted busy themselves.
    fn new(run: &Arc<Run>) -> Parked {
        run.busy_dec();
        Parked {
            run: Arc::clone(run),
            state: Arc::new(AtomicU8::new(PARKED)),
        }
    }

    /// A guard that starts busy: the frame parks at its first `park`, after registering
    /// where its wake-ups come from, so none is lost in between.
    fn starting_busy(run: &Arc<Run>) -> Parked {
        Parked {
            run: Arc::clone(run),
            state: Arc::new(AtomicU8::new(AWAKE)),
        }
    }

    /// Marks the frame busy (once, until it has handled the wake-up and parked again).
    pub fn wake_fn(&self) -> Wake {
        let run = Arc::clone(&self.run);
        let state = Arc::clone(&self.state);
        Arc::new(move || {
            loop {
                let s = state.load(Ordering::SeqCst);
                let next = match s {
                    PARKED | AWAKE => WOKEN,
                    _ => return,
                };
                if state
                    .compare_exchange(s, next, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    if s == PARKED {
                        run.busy_inc();
                    }
                    return;
                }
            }
        })
    }

    fn waker(&self) -> OnFire {
        let wake = self.wake_fn();
        Box::new(move || wake())
    }

    /// Parks the frame, unless a wake-up came that it has not handled yet (then the frame
    /// stays busy: what woke it is ready to be taken).
    fn park(&self) {
        if self
            .state
            .compare_exchange(AWAKE, PARKED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.run.busy_dec();
        }
    }

    /// The frame took the wake-up (a heartbeat) and is about to register and park again.
    fn handled(&self) {
        let _ = self
            .state
            .compare_exchange(WOKEN, AWAKE, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Wakes a parked frame; callable many times (heartbeats, then the outcome).
pub(crate) type Wake = Arc<dyn Fn() + Send + Sync>;

impl Drop for Parked {
    fn drop(&mut self) {
        // The frame runs on: counted busy again if it was parked.
        if self
            .state
            .compare_exchange(PARKED, AWAKE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.run.busy_inc();
        }
    }
}

/// Counts a frame as busy from before it is first polled until it ends (or is cancelled).
pub(crate) struct BusyGuard(Arc<Run>);

impl BusyGuard {
    pub fn new(run: &Arc<Run>) -> BusyGuard {
        run.busy_inc();
        BusyGuard(Arc::clone(run))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy_dec();
    }
}

fn lock(m: &Mutex<RunState>) -> MutexGuard<'_, RunState> {
    // RunState updates are small and complete before anything can panic; a poisoned lock
    // still holds a consistent state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Run {
    pub fn new(
        exec: ExecutionInfo,
        machine: Arc<Machine>,
        snapshot: Snapshot,
        deadline: Option<DateTime<Utc>>,
    ) -> Run {
        let (finished, _) = watch::channel(false);
        Run {
            exec,
            machine,
            state: Mutex::new(RunState {
                frames: snapshot.frames.into_iter().map(|f| (f.id, f)).collect(),
                root: snapshot.root,
                next_frame_id: snapshot.next_frame_id,
                next_event_id: snapshot.next_event_id,
                pending: ChunkBuilder::default(),
                new_tokens: Vec::new(),
                dirty_gen: 0,
                saved_gen: 0,
                last_checkpoint: Instant::now(),
                last_flush: Instant::now(),
            }),
            busy: AtomicUsize::new(0),
            idle: Notify::new(),
            finished,
            checkpoint_lock: tokio::sync::Mutex::new(()),
            flushing: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            deadline,
            abort: Mutex::new(None),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, RunState> {
        lock(&self.state)
    }

    pub(crate) fn busy_inc(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn busy_dec(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub fn notify_idle(&self) {
        self.idle.notify_waiters();
    }

    /// Resolves when no frame can progress without an outside event, or the run ended.
    pub async fn settled(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.busy.load(Ordering::SeqCst) == 0 || *self.finished.borrow() {
                return;
            }
            notified.await;
        }
    }

    /// Writes history and snapshot. With `upto`, only if no checkpoint has saved generation
    /// `upto` yet (parking frames coalesce their checkpoints).
    pub async fn checkpoint(&self, inner: &Inner, upto: Option<u64>, finish: Option<Finish>) {
        let _serial = self.checkpoint_lock.lock().await;
        let cp = {
            let mut st = self.lock();
            if let Some(g) = upto
                && st.saved_gen >= g
            {
                return;
            }
            st.saved_gen = st.dirty_gen;
            st.last_checkpoint = Instant::now();
            let snapshot = if finish.is_some() {
                None
            } else {
                match st.snapshot_json() {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::error!(execution = %self.exec.id, error = %e, "cannot serialise the execution snapshot");
                        None
                    }
                }
            };
            Checkpoint {
                execution_id: self.exec.id.clone(),
                snapshot,
                events: st.pending.take(),
                new_tokens: std::mem::take(&mut st.new_tokens),
                finish,
            }
        };
        if let Err(e) = inner.store.checkpoint(cp).await {
            tracing::error!(execution = %self.exec.id, error = %e, "workflow checkpoint failed; a restart resumes from the previous one");
        }
    }

    /// Writes the history recorded so far (no snapshot): cheap to take, done off the hot path.
    async fn flush_events(&self, inner: &Inner) {
        let _serial = self.checkpoint_lock.lock().await;
        let cp = {
            let mut st = self.lock();
            st.last_flush = Instant::now();
            Checkpoint {
                execution_id: self.exec.id.clone(),
                snapshot: None,
                events: st.pending.take(),
                new_tokens: std::mem::take(&mut st.new_tokens),
                finish: None,
            }
        };
        if cp.events.is_empty() && cp.new_tokens.is_empty() {
            return;
        }
        if let Err(e) = inner.store.checkpoint(cp).await {
            tracing::error!(execution = %self.exec.id, error = %e, "workflow history flush failed");
        }
    }

    /// Starts a background history flush unless one is running.
    fn flush_in_background(self: &Arc<Self>, inner: &Arc<Inner>) {
        if self.flushing.swap(true, Ordering::SeqCst) {
            return;
        }
        let (run, inner) = (Arc::clone(self), Arc::clone(inner));
        tokio::spawn(async move {
            run.flush_events(&inner).await;
            run.flushing.store(false, Ordering::SeqCst);
        });
    }

    /// Events recorded since the last checkpoint, for live history views.
    pub async fn pending_events_after_checkpoint(
        &self,
    ) -> (tokio::sync::MutexGuard<'_, ()>, Vec<HistoryEvent>) {
        let guard = self.checkpoint_lock.lock().await;
        let chunk = self.lock().pending.peek().clone();
        let events = chunk.parse().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read pending history events");
            Vec::new()
        });
        (guard, events)
    }
}

fn resolve_block<'d>(definition: &'d StateMachine, scope: &Scope) -> Result<&'d Block, Failure> {
    let mut block = &definition.root;
    for (state, branch) in scope {
        let s = block
            .states
            .get(*state)
            .ok_or_else(|| Failure::runtime("internal: snapshot scope names a missing state"))?;
        block = match &s.kind {
            StateKind::Parallel(p) => p.branches.get(*branch).ok_or_else(|| {
                Failure::runtime("internal: snapshot scope names a missing branch")
            })?,
            StateKind::Map(m) => &m.processor,
            _ => {
                return Err(Failure::runtime(
                    "internal: snapshot scope names a state without branches",
                ));
            }
        };
    }
    Ok(block)
}

/// A running child frame: its slot, its frame id and, when done, its result. A plain struct
/// around the frame's boxed future, so a Map item costs no second allocation.
struct ChildFuture {
    slot: usize,
    child: FrameId,
    frame: FrameFuture,
}

impl std::future::Future for ChildFuture {
    type Output = (usize, FrameId, Result<Value, Failure>, BusyGuard);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let (slot, child) = (self.slot, self.child);
        self.frame
            .as_mut()
            .poll(cx)
            .map(|(result, guard)| (slot, child, result, guard))
    }
}

/// What a frame does after a locked decision.
enum Action<'d> {
    Continue,
    Finish(Result<Value, Failure>),
    Sleep {
        until: DateTime<Utc>,
        durable: u64,
    },
    Invoke {
        request: engine::TaskRequest<'d>,
        deadline: Option<DateTime<Utc>>,
    },
    Token {
        durable: u64,
    },
    Children,
    ReadItems {
        request: ReadRequest,
        run: Box<MapRun>,
    },
}

pub(crate) fn run_frame(
    inner: Arc<Inner>,
    run: Arc<Run>,
    id: FrameId,
    guard: BusyGuard,
) -> FrameFuture {
    Box::pin(async move {
        let result = frame_loop(&inner, &run, id).await;
        // The guard goes back with the result: whoever waits on the frame drops it once it
        // is counted busy itself, so the run never looks idle between the two.
        (result, guard)
    })
}

/// A frame's result, with the busy count the frame held.
pub(crate) type FrameFuture = BoxFuture<'static, (Result<Value, Failure>, BusyGuard)>;

fn context<'a>(
    run: &'a Run,
    state_name: &'a str,
    frame: &Frame,
    token: Option<&'a str>,
) -> StateContext<'a> {
    StateContext {
        execution: &run.exec,
        state_name,
        entered_time: frame.entered_at,
        retry_count: frame.retries.total(),
        task_token: token,
        map_item: None,
    }
}

/// Applies a step to the frame: a transition continues the loop, the end of the block
/// finishes it.
fn apply_step(inner: &Inner, frame: &mut Frame, step: Step) -> Action<'static> {
    inner.count_transition();
    match step {
        Step::Next { state, output } => {
            frame.state = state;
            frame.input = output;
            frame.phase = Phase::Enter;
            frame.retries = RetryCounts::default();
            Action::Continue
        }
        Step::End { output } => Action::Finish(Ok(output)),
        Step::Fail(f) => Action::Finish(Err(f)),
    }
}

fn after_complete<'d>(
    inner: &Inner,
    frame: &mut Frame,
    attempt: Attempt<'_>,
    now: DateTime<Utc>,
    st_gen: &mut u64,
) -> Action<'d> {
    match attempt {
        Attempt::Done(step) => apply_step(inner, frame, step),
        Attempt::Retry(plan) => {
            let until =
                now + Duration::milliseconds(i64::try_from(plan.delay_ms).unwrap_or(i64::MAX / 2));
            frame.phase = Phase::Sleeping { until, then: None };
            *st_gen += 1;
            Action::Sleep {
                until,
                durable: *st_gen,
            }
        }
        // complete() only returns Done or Retry.
        _ => Action::Finish(Err(Failure::runtime("internal: unexpected completion"))),
    }
}

async fn frame_loop(inner: &Arc<Inner>, run: &Arc<Run>, id: FrameId) -> Result<Value, Failure> {
    let definition = Arc::clone(&run.machine.definition);
    let (scope, label) = {
        let mut st = run.lock();
        let f = st.frame(id)?;
        (f.scope.clone(), f.label.clone())
    };
    let block = resolve_block(&definition, &scope)?;
    loop {
        let action = decide(inner, run, id, block, &label)?;
        match action {
            Action::Continue => {
                let (checkpoint_due, flush_due) =
                    run.lock().writes_due(&inner.config, Instant::now());
                if checkpoint_due {
                    // Boxed, as every rare await here: the frame's own future (one per Map
                    // item) stays small, so starting an item is a small allocation.
                    Box::pin(run.checkpoint(inner, None, None)).await;
                } else if flush_due {
                    run.flush_in_background(inner);
                }
            }
            Action::Finish(result) => return result,
            Action::Sleep { until, durable } => {
                Box::pin(sleep_durably(inner, run, until, durable)).await;
                let mut st = run.lock();
                let now = inner.clock.now();
                let frame = st.frame(id)?;
                let state = block.state(frame.state);
                let then = match std::mem::replace(&mut frame.phase, Phase::Attempt) {
                    Phase::Sleeping { then, .. } => then,
                    _ => None,
                };
                if let Some(then) = then {
                    let mut sink = Vec::new();
                    let step = engine::finish_wait(state, then.into(), &mut sink);
                    let action = apply_step(inner, frame, step);
                    st.record(&label, now, sink);
                    if let Action::Finish(r) = action {
                        return r;
                    }
                }
            }
            Action::Invoke { request, deadline } => {
                let outcome = invoke(inner, run, request, deadline).await;
                if let Some(r) = complete(inner, run, id, block, &label, outcome, None)? {
                    return r;
                }
            }
            Action::Token { durable } => {
                let (outcome, token) = Box::pin(async {
                    run.checkpoint(inner, Some(durable), None).await;
                    token_wait(inner, run, id, &label).await
                })
                .await?;
                if let Some(r) = complete(inner, run, id, block, &label, outcome, Some(&token))? {
                    return r;
                }
            }
            Action::Children => {
                let outcome = Box::pin(run_children(inner, run, id, block, &label)).await;
                if let Some(r) = complete(inner, run, id, block, &label, outcome, None)? {
                    return r;
                }
            }
            Action::ReadItems {
                request,
                run: map_run,
            } => {
                let state_index = run.lock().frame(id)?.state;
                let items = match &block.state(state_index).kind {
                    StateKind::Map(m) => match &m.item_reader {
                        Some(reader) => Box::pin(read_items(inner, &request, reader)).await,
                        None => Err(Failure::runtime(
                            "internal: ItemReader request without ItemReader",
                        )),
                    },
                    _ => Err(Failure::runtime(
                        "internal: ItemReader request outside a Map",
                    )),
                };
                let mut st = run.lock();
                let now = inner.clock.now();
                let frame = st.frame(id)?;
                let state = block.state(frame.state);
                match items
                    .and_then(|items| children_for_map(inner, run, state, frame, *map_run, items))
                {
                    Ok((children, events)) => {
                        frame.phase = Phase::Children(Box::new(children));
                        st.record(&label, now, events);
                    }
                    Err(f) => {
                        drop(st);
                        if let Some(r) = complete(inner, run, id, block, &label, Err(f), None)? {
                            return r;
                        }
                    }
                }
            }
        }
    }
}

/// Checkpoints (so the wait survives a restart), then sleeps until `until` on the clock.
async fn sleep_durably(inner: &Arc<Inner>, run: &Arc<Run>, until: DateTime<Utc>, durable: u64) {
    run.checkpoint(inner, Some(durable), None).await;
    let parked = Parked::starting_busy(run);
    let timer = inner.timers.register(until, Some(parked.waker()));
    parked.park();
    timer.wait().await;
}

/// Under the lock: what the frame does next, updating its phase and recording events.
fn decide<'d>(
    inner: &Inner,
    run: &Run,
    id: FrameId,
    block: &'d Block,
    label: &str,
) -> Result<Action<'d>, Failure> {
    let mut st = run.lock();
    let now = inner.clock.now();
    let mut sink = Vec::new();
    let mut dirty_gen = st.dirty_gen;
    let frame = st.frame(id)?;
    let state = block.state(frame.state);
    let action = match &frame.phase {
        Phase::Enter => {
            engine::enter(state, &frame.input, &mut sink);
            frame.entered_at = now;
            frame.retries = RetryCounts::default();
            frame.phase = Phase::Attempt;
            Action::Continue
        }
        Phase::Attempt => {
            let token = engine::needs_task_token(state).then(|| inner.new_token());
            let ctx = context(run, &state.name, frame, token.as_deref());
            let attempt = engine::attempt(
                state,
                &frame.input,
                &ctx,
                inner.entropy.as_ref(),
                now,
                &mut frame.retries,
                &mut sink,
            );
            match attempt {
                Attempt::Done(step) => apply_step(inner, frame, step),
                Attempt::Retry(plan) => {
                    let until = now
                        + Duration::milliseconds(
                            i64::try_from(plan.delay_ms).unwrap_or(i64::MAX / 2),
                        );
                    frame.phase = Phase::Sleeping { until, then: None };
                    dirty_gen += 1;
                    Action::Sleep {
                        until,
                        durable: dirty_gen,
                    }
                }
                Attempt::Wait { until, then } => {
                    frame.phase = Phase::Sleeping {
                        until,
                        then: Some(then.into()),
                    };
                    dirty_gen += 1;
                    Action::Sleep {
                        until,
                        durable: dirty_gen,
                    }
                }
                Attempt::Task(request) => match token {
                    Some(token) => {
                        let deadline = now
                            + Duration::seconds(
                                i64::try_from(request.timeout_seconds).unwrap_or(i64::MAX / 2_000),
                            );
                        frame.phase = Phase::Token(Box::new(TokenWait {
                            token: token.clone(),
                            resource: request.resource.arn.clone(),
                            parameters: request.parameters,
                            deadline,
                            heartbeat_seconds: request.heartbeat_seconds,
                            heartbeat_deadline: request
                                .heartbeat_seconds
                                .map(|h| now + Duration::seconds(h as i64)),
                            dispatched: false,
                        }));
                        // The token row is written by the checkpoint that precedes dispatch.
                        dirty_gen += 1;
                        let durable = dirty_gen;
                        st.new_tokens.push(token);
                        st.dirty_gen = dirty_gen;
                        st.record(label, now, sink);
                        return Ok(Action::Token { durable });
                    }
                    None => {
                        let deadline = (request.timeout_seconds != TASK_TIMEOUT_DEFAULT_SECONDS)
                            .then(|| now + Duration::seconds(request.timeout_seconds as i64));
                        Action::Invoke { request, deadline }
                    }
                },
                Attempt::Parallel { input, branches } => {
                    sink.push(EventKind::ParallelStateStarted { branches });
                    frame.phase = Phase::Children(Box::new(Children {
                        kind: ChildKind::Parallel,
                        input,
                        items: Vec::new(),
                        items_final: true,
                        slots: vec![Slot::Pending; branches],
                        max_concurrency: 0,
                        tolerated_count: None,
                        tolerated_percentage: None,
                        writer: None,
                    }));
                    Action::Children
                }
                Attempt::Map(map_run) => match map_run.items {
                    MapItems::Read(ref request) => Action::ReadItems {
                        request: request.clone(),
                        run: Box::new(map_run),
                    },
                    MapItems::Ready(_) => {
                        let mut map_run = map_run;
                        let items = match std::mem::replace(
                            &mut map_run.items,
                            MapItems::Ready(Vec::new()),
                        ) {
                            MapItems::Ready(items) => items,
                            MapItems::Read(_) => Vec::new(),
                        };
                        match children_for_map(inner, run, state, frame, map_run, items) {
                            Ok((children, events)) => {
                                sink.extend(events);
                                frame.phase = Phase::Children(Box::new(children));
                                Action::Children
                            }
                            Err(f) => {
                                let ctx = context(run, &state.name, frame, None);
                                let attempt = engine::complete(
                                    state,
                                    &frame.input,
                                    Err(f),
                                    &mut frame.retries,
                                    &ctx,
                                    inner.entropy.as_ref(),
                                    &mut sink,
                                );
                                after_complete(inner, frame, attempt, now, &mut dirty_gen)
                            }
                        }
                    }
                },
            }
        }
        Phase::Sleeping { until, .. } => {
            dirty_gen += 1;
            Action::Sleep {
                until: *until,
                durable: dirty_gen,
            }
        }
        Phase::Token(_) => {
            dirty_gen += 1;
            Action::Token { durable: dirty_gen }
        }
        Phase::Children(_) => Action::Children,
    };
    st.dirty_gen = dirty_gen;
    st.record(label, now, sink);
    Ok(action)
}

/// Completes the frame's current state with `outcome`; `Some(result)` when the block ended.
fn complete(
    inner: &Inner,
    run: &Run,
    id: FrameId,
    block: &Block,
    label: &str,
    outcome: Result<Value, Failure>,
    token: Option<&str>,
) -> Result<Option<Result<Value, Failure>>, Failure> {
    let mut st = run.lock();
    let now = inner.clock.now();
    let mut sink = Vec::new();
    let mut dirty_gen = st.dirty_gen;
    let frame = st.frame(id)?;
    let state = block.state(frame.state);
    frame.phase = Phase::Attempt;
    let ctx = context(run, &state.name, frame, token);
    let attempt = engine::complete(
        state,
        &frame.input,
        outcome,
        &mut frame.retries,
        &ctx,
        inner.entropy.as_ref(),
        &mut sink,
    );
    let action = after_complete(inner, frame, attempt, now, &mut dirty_gen);
    st.dirty_gen = dirty_gen;
    st.record(label, now, sink);
    Ok(match action {
        Action::Finish(r) => Some(r),
        _ => None,
    })
}

async fn invoke(
    inner: &Arc<Inner>,
    run: &Arc<Run>,
    request: engine::TaskRequest<'_>,
    deadline: Option<DateTime<Utc>>,
) -> Result<Value, Failure> {
    let timeout_seconds = request.timeout_seconds;
    let call = call_service(inner.invoker.as_ref(), request.resource, request.parameters);
    match deadline {
        None => call.await.map_err(Failure::from),
        Some(deadline) => {
            // A task with a timeout waits on the clock: it counts as parked.
            let parked = Parked::starting_busy(run);
            let timer = inner.timers.register(deadline, Some(parked.waker()));
            parked.park();
            tokio::select! {
                r = call => r.map_err(Failure::from),
                _ = timer.wait() => Err(Failure::new(
                    names::TIMEOUT,
                    format!("the task did not finish within {timeout_seconds} seconds"),
                )),
            }
        }
    }
}

/// Removes the token waiter when the waiting future ends or is cancelled.
struct TokenRegistration<'a> {
    inner: &'a Inner,
    token: String,
}

impl Drop for TokenRegistration<'_> {
    fn drop(&mut self) {
        self.inner.unregister_token(&self.token);
    }
}

fn outcome_of(o: TokenOutcome) -> Result<Value, Failure> {
    match o {
        TokenOutcome::Success(v) => Ok(v),
        TokenOutcome::Failure { error, cause } => Err(Failure::new(error, cause)),
    }
}

/// Dispatches a `.waitForTaskToken` call (unless already done) and waits for its token.
async fn token_wait(
    inner: &Arc<Inner>,
    run: &Arc<Run>,
    id: FrameId,
    label: &str,
) -> Result<(Result<Value, Failure>, String), Failure> {
    let wait = {
        let mut st = run.lock();
        match &st.frame(id)?.phase {
            Phase::Token(t) => (**t).clone(),
            _ => {
                return Err(Failure::runtime(
                    "internal: token wait without a token phase",
                ));
            }
        }
    };
    let token = wait.token.clone();
    if !wait.dispatched {
        let resource = Resource::parse(&wait.resource).map_err(Failure::runtime)?;
        match call_service(inner.invoker.as_ref(), &resource, wait.parameters.clone()).await {
            Ok(response) => {
                let durable = {
                    let mut st = run.lock();
                    if let Phase::Token(t) = &mut st.frame(id)?.phase {
                        t.dispatched = true;
                    }
                    st.record(
                        label,
                        inner.clock.now(),
                        vec![EventKind::TaskSubmitted {
                            resource: wait.resource.clone(),
                            output: response,
                        }],
                    );
                    st.dirty_gen += 1;
                    st.dirty_gen
                };
                // Recorded before parking, so a restart does not send the request again.
                run.checkpoint(inner, Some(durable), None).await;
            }
            Err(e) => {
                close_token(inner, &token).await;
                return Ok((Err(e.into()), token));
            }
        }
    }
    let (tx, mut rx) = oneshot::channel();
    let heartbeat = Arc::new(Notify::new());
    let parked = Parked::starting_busy(run);
    inner.register_token(&token, tx, parked.wake_fn(), Arc::clone(&heartbeat));
    let _registration = TokenRegistration {
        inner,
        token: token.clone(),
    };
    // An outcome may have been recorded before we registered (or before a restart).
    match inner.store.token_outcome(&token).await {
        Ok(Some(o)) => {
            close_token(inner, &token).await;
            return Ok((outcome_of(o), token));
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read a task token outcome; waiting for it"),
    }
    let mut heartbeat_deadline = wait.heartbeat_deadline;
    let outcome = loop {
        // The timers first, then park (and again after a heartbeat woke the frame).
        let timeout = inner
            .timers
            .register(wait.deadline, Some(parked.waker()))
            .wait();
        let beat = heartbeat_deadline.map(|d| inner.timers.register(d, Some(parked.waker())));
        let has_beat = beat.is_some();
        let beat = async move {
            match beat {
                Some(b) => b.wait().await,
                None => std::future::pending().await,
            }
        };
        parked.park();
        tokio::select! {
            o = &mut rx => match o {
                Ok(o) => break outcome_of(o),
                // The waiter was replaced or removed: read what was recorded.
                Err(_) => break match inner.store.token_outcome(&token).await {
                    Ok(Some(o)) => outcome_of(o),
                    _ => Err(Failure::runtime("the task token waiter was dropped")),
                },
            },
            _ = timeout => break timed_out(inner, &token, names::TIMEOUT, "the task was not completed within its TimeoutSeconds").await,
            _ = beat, if has_beat => {
                break timed_out(inner, &token, names::HEARTBEAT_TIMEOUT, "no heartbeat within HeartbeatSeconds").await;
            }
            _ = heartbeat.notified() => {
                parked.handled();
                let now = inner.clock.now();
                heartbeat_deadline = wait.heartbeat_seconds.map(|h| now + Duration::seconds(h as i64));
                let mut st = run.lock();
                if let Phase::Token(t) = &mut st.frame(id)?.phase {
                    t.heartbeat_deadline = heartbeat_deadline;
                }
            }
        }
    };
    drop(parked);
    Ok((outcome, token))
}

async fn close_token(inner: &Inner, token: &str) -> Option<TokenOutcome> {
    match inner.store.close_token(token).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "cannot close a task token");
            None
        }
    }
}

/// A token timed out: unless an outcome was recorded first, the task fails with `error`.
async fn timed_out(inner: &Inner, token: &str, error: &str, cause: &str) -> Result<Value, Failure> {
    match close_token(inner, token).await {
        Some(o) => outcome_of(o),
        None => Err(Failure::new(error, cause)),
    }
}

async fn read_items(
    inner: &Inner,
    request: &ReadRequest,
    reader: &ItemReader,
) -> Result<Vec<Value>, Failure> {
    let failed = |reason: String| Failure::new(names::ITEM_READER_FAILED, reason);
    let buckets = inner
        .buckets
        .as_ref()
        .ok_or_else(|| failed("no blob store is configured for ItemReader".into()))?;
    let blobs = buckets.bucket(&request.bucket);
    match request.source {
        ReaderSource::GetObject => {
            let blob = blobs
                .get(&request.key)
                .await
                .map_err(|e| {
                    failed(format!(
                        "cannot read s3://{}/{}: {e}",
                        request.bucket, request.key
                    ))
                })?
                .ok_or_else(|| {
                    failed(format!(
                        "s3://{}/{} does not exist",
                        request.bucket, request.key
                    ))
                })?;
            parse_items(reader, &request.key, &blob.body, request.max_items)
        }
        ReaderSource::ListObjects => {
            let limit = request
                .max_items
                .and_then(|m| usize::try_from(m).ok())
                .unwrap_or(LIST_OBJECTS_MAX)
                .min(LIST_OBJECTS_MAX);
            let mut items = Vec::new();
            let mut continuation = None;
            loop {
                let page = blobs.list(&request.key, continuation).await.map_err(|e| {
                    failed(format!(
                        "cannot list s3://{}/{}: {e}",
                        request.bucket, request.key
                    ))
                })?;
                for meta in page.blobs {
                    if items.len() >= limit {
                        return Ok(items);
                    }
                    items.push(object_item(
                        &meta.key,
                        meta.size_bytes,
                        &meta.etag,
                        &format_time(meta.last_modified),
                    ));
                }
                match page.continuation {
                    Some(c) => continuation = Some(c),
                    None => return Ok(items),
                }
            }
        }
    }
}

/// Builds the Children phase of a Map from its items (read or selected).
fn children_for_map(
    inner: &Inner,
    run: &Run,
    state: &payops_core::asl::State,
    frame: &Frame,
    map_run: MapRun,
    items: Vec<Value>,
) -> Result<(Children, Vec<EventKind>), Failure> {
    let (items, items_final) = match &map_run.batch {
        Some(spec) => (
            select_and_batch(inner, run, state, frame, &map_run.input, items, spec)?,
            true,
        ),
        None => (items, false),
    };
    let events = vec![EventKind::MapStateStarted {
        length: items.len(),
    }];
    Ok((
        Children {
            kind: ChildKind::Map,
            input: map_run.input,
            slots: vec![Slot::Pending; items.len()],
            items,
            items_final,
            max_concurrency: map_run.max_concurrency,
            tolerated_count: map_run.tolerance.count,
            tolerated_percentage: map_run.tolerance.percentage,
            writer: map_run.writer,
        },
        events,
    ))
}

fn select_and_batch(
    inner: &Inner,
    run: &Run,
    state: &payops_core::asl::State,
    frame: &Frame,
    input: &Value,
    items: Vec<Value>,
    spec: &BatchSpec,
) -> Result<Vec<Value>, Failure> {
    let ctx = context(run, &state.name, frame, None);
    let selected = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            engine::map_item_input(state, input, i, item, &ctx, inner.entropy.as_ref())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(engine::batch_items(selected, spec))
}

/// Starts the child frame of `slot`. Returns its future, or the failure of its ItemSelector.
fn start_child(
    inner: &Arc<Inner>,
    run: &Arc<Run>,
    parent: FrameId,
    slot: usize,
    state: &payops_core::asl::State,
    label: &str,
) -> Result<(FrameId, FrameFuture), Failure> {
    let mut st = run.lock();
    let now = inner.clock.now();
    let child_id = st.next_frame_id;
    let (frame_scope, input, kind, start_at) = {
        let frame = st.frame(parent)?;
        let Phase::Children(ch) = &frame.phase else {
            return Err(Failure::runtime(
                "internal: children without a Children phase",
            ));
        };
        let (branch, start_at) = match &state.kind {
            StateKind::Parallel(p) => (slot, p.branches[slot].start_at),
            StateKind::Map(m) => (0, m.processor.start_at),
            _ => {
                return Err(Failure::runtime(
                    "internal: children of a state without branches",
                ));
            }
        };
        let input = match ch.kind {
            ChildKind::Parallel => ch.input.clone(),
            ChildKind::Map if ch.items_final => ch.items[slot].clone(),
            ChildKind::Map => {
                let ctx = context(run, &state.name, frame, None);
                engine::map_item_input(
                    state,
                    &ch.input,
                    slot,
                    ch.items[slot].clone(),
                    &ctx,
                    inner.entropy.as_ref(),
                )?
            }
        };
        let mut scope = frame.scope.clone();
        scope.push((frame.state, branch));
        (scope, input, ch.kind, start_at)
    };
    st.next_frame_id += 1;
    let child_label = match kind {
        ChildKind::Parallel => child_label(label, &state.name, "branch", slot),
        ChildKind::Map => child_label(label, &state.name, "item", slot),
    };
    st.frames.insert(
        child_id,
        Frame {
            id: child_id,
            parent: Some((parent, slot)),
            scope: frame_scope,
            label: child_label,
            state: start_at,
            input,
            entered_at: now,
            retries: RetryCounts::default(),
            phase: Phase::Enter,
        },
    );
    if let Phase::Children(ch) = &mut st.frame(parent)?.phase {
        ch.slots[slot] = Slot::Running(child_id);
    }
    if kind == ChildKind::Map {
        st.record(
            label,
            now,
            vec![EventKind::MapIterationStarted { index: slot }],
        );
    }
    drop(st);
    let guard = BusyGuard::new(run);
    Ok((
        child_id,
        run_frame(Arc::clone(inner), Arc::clone(run), child_id, guard),
    ))
}

/// `{label}/{state}/{kind}-{slot}` (without the leading `{label}/` at the top level), built in
/// one allocation: one per Map item.
fn child_label(label: &str, state: &str, kind: &str, slot: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(label.len() + state.len() + kind.len() + 24);
    if !label.is_empty() {
        out.push_str(label);
        out.push('/');
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{state}/{kind}-{slot}");
    out
}

/// Runs (or resumes) a Parallel state's branches or a Map state's items.
async fn run_children(
    inner: &Arc<Inner>,
    run: &Arc<Run>,
    id: FrameId,
    block: &Block,
    label: &str,
) -> Result<Value, Failure> {
    let (state, kind, total, limit, tolerance, resumable, mut failed) = {
        let mut st = run.lock();
        let frame = st.frame(id)?;
        let state = block.state(frame.state);
        let Phase::Children(ch) = &frame.phase else {
            return Err(Failure::runtime(
                "internal: children without a Children phase",
            ));
        };
        let limit = match ch.max_concurrency {
            0 => MAP_CONCURRENCY_UNLIMITED_MAX,
            n => n,
        };
        let resumable: Vec<(usize, FrameId)> = ch
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Running(f) => Some((i, *f)),
                _ => None,
            })
            .collect();
        // Failures before a restart still count against the tolerance.
        let failed = ch
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Failed(_)))
            .count();
        (
            state,
            ch.kind,
            ch.slots.len(),
            limit,
            Tolerance {
                count: ch.tolerated_count,
                percentage: ch.tolerated_percentage,
            },
            resumable,
            failed,
        )
    };
    let mut running: FuturesUnordered<ChildFuture> = FuturesUnordered::new();
    for (slot, child) in resumable {
        let guard = BusyGuard::new(run);
        let fut = run_frame(Arc::clone(inner), Arc::clone(run), child, guard);
        running.push(ChildFuture {
            slot,
            child,
            frame: fut,
        });
    }
    let mut next_slot = 0usize;
    loop {
        // Top up to the concurrency limit with slots not started yet.
        while running.len() < limit {
            let pending = {
                let mut st = run.lock();
                let Phase::Children(ch) = &st.frame(id)?.phase else {
                    return Err(Failure::runtime("internal: children phase vanished"));
                };
                (next_slot..total).find(|i| matches!(ch.slots[*i], Slot::Pending))
            };
            let Some(slot) = pending else { break };
            next_slot = slot + 1;
            match start_child(inner, run, id, slot, state, label) {
                Ok((child, fut)) => running.push(ChildFuture {
                    slot,
                    child,
                    frame: fut,
                }),
                Err(f) => {
                    cancel_children(inner, run, id);
                    return Err(f);
                }
            }
        }
        // No child left: done, without parking (parked with nothing to wait on, the run
        // would look idle for a moment to another thread).
        if running.is_empty() {
            break;
        }
        // While its children run, the parent waits on them (they count as busy themselves).
        let next = {
            let _parked = Parked::new(run);
            running.next().await
        };
        // The child's busy count lives until this iteration has handled its result.
        let Some((slot, child, result, _child_busy)) = next else {
            break;
        };
        let failure = {
            let mut st = run.lock();
            let now = inner.clock.now();
            // A child that ended has no live frames below it.
            st.frames.remove(&child);
            let Phase::Children(ch) = &mut st.frame(id)?.phase else {
                return Err(Failure::runtime("internal: children phase vanished"));
            };
            let (event, failure) = match result {
                Ok(v) => {
                    ch.slots[slot] = Slot::Done(v);
                    (EventKind::MapIterationSucceeded { index: slot }, None)
                }
                Err(f) => {
                    ch.slots[slot] = Slot::Failed(f.clone());
                    failed += 1;
                    (
                        EventKind::MapIterationFailed {
                            index: slot,
                            error: f.error.clone(),
                            cause: f.cause.clone(),
                        },
                        Some(f),
                    )
                }
            };
            if kind == ChildKind::Map {
                st.record(label, now, vec![event]);
            }
            failure
        };
        if let Some(f) = failure {
            let fatal = match kind {
                ChildKind::Parallel => Some(f),
                ChildKind::Map if tolerance.exceeded(failed, total) => {
                    Some(if tolerance == Tolerance::default() || f.is_terminal() {
                        f
                    } else {
                        engine::tolerance_failure(failed, total)
                    })
                }
                ChildKind::Map => None,
            };
            if let Some(f) = fatal {
                drop(running);
                cancel_children(inner, run, id);
                return Err(f);
            }
        }
    }
    gather(inner, run, id).await
}

/// Drops the frames of the remaining children (their futures are already dropped).
fn cancel_children(inner: &Arc<Inner>, run: &Arc<Run>, id: FrameId) {
    let tokens = {
        let mut st = run.lock();
        let now = inner.clock.now();
        let running: Vec<(usize, FrameId)> = match st.frames.get(&id).map(|f| &f.phase) {
            Some(Phase::Children(ch)) => ch
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match s {
                    Slot::Running(f) => Some((i, *f)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut tokens = Vec::new();
        let mut events = Vec::new();
        for (slot, child) in running {
            tokens.extend(st.remove_subtree(child));
            events.push(EventKind::MapIterationAborted { index: slot });
        }
        let is_map = matches!(st.frames.get(&id).map(|f| &f.phase), Some(Phase::Children(ch)) if ch.kind == ChildKind::Map);
        if let Some(Phase::Children(ch)) = st.frames.get_mut(&id).map(|f| &mut f.phase) {
            for s in ch.slots.iter_mut() {
                if matches!(s, Slot::Running(_)) {
                    *s = Slot::Pending;
                }
            }
        }
        if is_map {
            let label = st
                .frames
                .get(&id)
                .map(|f| f.label.clone())
                .unwrap_or_default();
            st.record(&label, now, events);
        }
        tokens
    };
    for token in tokens {
        let inner = Arc::clone(inner);
        tokio::spawn(async move {
            close_token(&inner, &token).await;
        });
    }
}

/// All children finished: the result array, or the ResultWriter's pointer to it.
async fn gather(inner: &Arc<Inner>, run: &Arc<Run>, id: FrameId) -> Result<Value, Failure> {
    let (results, writer, items) = {
        let mut st = run.lock();
        let Phase::Children(ch) = &mut st.frame(id)?.phase else {
            return Err(Failure::runtime("internal: children phase vanished"));
        };
        // Without a ResultWriter the caller completes the state at once, replacing this
        // phase, with no await (so no checkpoint) in between: the results can be moved out
        // rather than copied. A ResultWriter awaits its writes: the slots must stay whole.
        let movable = ch.writer.is_none();
        let results: Vec<Result<Value, Failure>> = ch
            .slots
            .iter_mut()
            .map(|s| match s {
                Slot::Done(v) if movable => Ok(std::mem::take(v)),
                Slot::Done(v) => Ok(v.clone()),
                Slot::Failed(f) => Err(f.clone()),
                _ => Err(Failure::runtime("internal: a child never finished")),
            })
            .collect();
        let items = if ch.writer.is_some() {
            ch.items.clone()
        } else {
            Vec::new()
        };
        (results, ch.writer.clone(), items)
    };
    let Some((bucket, prefix)) = writer else {
        return Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|f| f.to_error_output()))
                .collect(),
        ));
    };
    let item_results: Vec<ItemResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| ItemResult {
            index,
            input: items.get(index).cloned().unwrap_or(Value::Null),
            outcome,
        })
        .collect();
    let map_run_id = uuid_v4(inner.entropy.as_ref()).to_string();
    let (files, output) =
        engine::result_writer_files(&bucket, &prefix, &map_run_id, &run.exec.id, &item_results);
    let failed = |reason: String| Failure::new(names::RESULT_WRITER_FAILED, reason);
    let buckets = inner
        .buckets
        .as_ref()
        .ok_or_else(|| failed("no blob store is configured for ResultWriter".into()))?;
    let blobs = buckets.bucket(&bucket);
    for (key, body) in files {
        blobs
            .put(
                &key,
                bytes::Bytes::from(body.to_string()),
                "application/json",
            )
            .await
            .map_err(|e| failed(format!("cannot write s3://{bucket}/{key}: {e}")))?;
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(now: Instant) -> RunState {
        RunState {
            frames: FrameMap::default(),
            root: 0,
            next_frame_id: 1,
            next_event_id: 1,
            pending: ChunkBuilder::default(),
            new_tokens: Vec::new(),
            dirty_gen: 0,
            saved_gen: 0,
            last_checkpoint: now,
            last_flush: now,
        }
    }

    fn config() -> ExecutorConfig {
        ExecutorConfig {
            checkpoint_interval_ms: 500,
            events_flush_interval_ms: 50,
            events_flush_bytes: 64,
        }
    }

    fn record_one(st: &mut RunState) {
        let now: DateTime<Utc> = "2026-11-22T03:04:05Z".parse().expect("timestamp");
        st.record(
            "Items/item-0",
            now,
            vec![EventKind::MapIterationStarted { index: 0 }],
        );
    }

    #[test]
    fn history_is_flushed_by_size_before_the_interval() {
        let t0 = Instant::now();
        let mut st = state(t0);
        assert_eq!(st.writes_due(&config(), t0), (false, false));
        record_one(&mut st);
        assert!(st.pending.len() >= config().events_flush_bytes);
        assert_eq!(st.writes_due(&config(), t0), (false, true));
    }

    #[test]
    fn history_and_snapshots_are_written_by_time() {
        let t0 = Instant::now();
        let mut st = state(t0);
        let at = |ms| t0 + StdDuration::from_millis(ms);
        assert_eq!(st.writes_due(&config(), at(49)), (false, false));
        assert_eq!(st.writes_due(&config(), at(50)), (false, true));
        // The flush was marked done: not due again until another interval has passed.
        assert_eq!(st.writes_due(&config(), at(60)), (false, false));
        assert_eq!(st.writes_due(&config(), at(500)), (true, true));
        assert_eq!(st.writes_due(&config(), at(510)), (false, false));
    }

    #[test]
    fn child_labels_nest_under_their_parent() {
        assert_eq!(child_label("", "Items", "item", 17), "Items/item-17");
        assert_eq!(
            child_label("Fan/branch-1", "Items", "item", 0),
            "Fan/branch-1/Items/item-0"
        );
        assert_eq!(child_label("", "Fan", "branch", 2), "Fan/branch-2");
    }

    #[test]
    fn frame_ids_hash_apart() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let build = BuildHasherDefault::<FrameIdHasher>::default();
        let hashes: std::collections::HashSet<u64> =
            (0..10_000u64).map(|id| build.hash_one(id)).collect();
        assert_eq!(hashes.len(), 10_000);
    }
}
