//! The executor: registered state machines, running executions, task tokens, timers; the
//! `Workflows` port for handlers and the functions behind the ops views.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use payops_app::ports::{Blobs, Clock, WorkflowError, Workflows};
use payops_core::asl::context::ExecutionInfo;
use payops_core::asl::definition::{DefinitionError, StateMachine, substitute};
use payops_core::asl::entropy::{Entropy, uuid_v4};
use payops_core::asl::events::EventKind;
use payops_core::asl::number::json_equal;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use super::invoker::TaskInvoker;
use super::model::{
    ChunkBuilder, ExecutionFilter, ExecutionRecord, ExecutionStatus, ExecutionSummary,
    HistoryEvent, HistoryEventRef, execution_arn, state_machine_arn, state_machine_name,
};
use super::run::{BusyGuard, Run, Wake, run_frame};
use super::snapshot::{Frame, Phase, Snapshot};
use super::store::{
    Created, Finish, NewExecution, TokenCompletion, TokenOutcome, WorkflowStore, WorkflowStoreError,
};
use super::timers::{OnFire, Timers};

/// Step Functions' limit on an execution's input and on a task token's output.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// Step Functions' limit on execution names.
pub const EXECUTION_NAME_CHARS_MAX: usize = 80;
/// Longest error name and cause accepted by `send_task_failure`.
pub const TASK_ERROR_CHARS_MAX: usize = 256;
pub const TASK_CAUSE_CHARS_MAX: usize = 32_768;
/// How often a busy execution writes its history and snapshot.
pub const CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 500;
/// How often a busy execution hands its new history events to the store, in the background.
pub const EVENTS_FLUSH_INTERVAL_MS_DEFAULT: u64 = 50;
/// How much serialised history a busy execution gathers before it hands it to the store,
/// even within the flush interval: one history row stays small enough to be written from
/// warm memory, and a crash loses less (a Map over 10,000 items records ~14 MB).
pub const EVENTS_FLUSH_BYTES_DEFAULT: usize = 256 * 1024;
/// Where in the data directory `payops up` finds local-only state machines
/// (see [`Executor::register_directory`]).
pub const LOCAL_STATE_MACHINES_DIR: &str = "statemachines";
/// The file name ending of a definition file; the rest of the name is the state machine's.
pub const LOCAL_DEFINITION_SUFFIX: &str = ".asl.json";
/// The role shown in `$$.Execution.RoleArn`.
pub const LOCAL_ROLE_ARN: &str = "arn:aws:iam::000000000000:role/payops-local";

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Store(#[from] WorkflowStoreError),
    #[error("unknown state machine '{0}'")]
    UnknownStateMachine(String),
    #[error("state machine '{name}': {source}")]
    Definition {
        name: String,
        #[source]
        source: DefinitionError,
    },
    #[error("{file}: state machine '{name}': {source}")]
    DefinitionFile {
        file: std::path::PathBuf,
        name: String,
        #[source]
        source: DefinitionError,
    },
    #[error("cannot read {file}: {source}")]
    Io {
        file: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("execution '{name}' of '{state_machine}' already exists with a different input")]
    AlreadyExists { state_machine: String, name: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("unknown execution '{0}'")]
    UnknownExecution(String),
    #[error("unknown task token")]
    UnknownToken,
    #[error("the task token was already completed, timed out or cancelled")]
    TokenClosed,
    #[error("corrupt snapshot of execution '{id}': {source}")]
    Snapshot {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<ExecutorError> for WorkflowError {
    fn from(e: ExecutorError) -> Self {
        match e {
            ExecutorError::AlreadyExists { .. } => WorkflowError::AlreadyExists(e.to_string()),
            ExecutorError::UnknownStateMachine(_)
            | ExecutorError::UnknownExecution(_)
            | ExecutorError::UnknownToken => WorkflowError::NotFound(e.to_string()),
            ExecutorError::Invalid(_)
            | ExecutorError::TokenClosed
            | ExecutorError::Definition { .. } => WorkflowError::Invalid(e.to_string()),
            other => WorkflowError::Unavailable(Box::new(other)),
        }
    }
}

/// Buckets for distributed Map (ItemReader, ResultWriter).
pub trait BlobBuckets: Send + Sync {
    fn bucket(&self, name: &str) -> Arc<dyn Blobs>;
}

impl BlobBuckets for crate::store::LocalStore {
    fn bucket(&self, name: &str) -> Arc<dyn Blobs> {
        self.blobs(name)
    }
}

/// Randomness from the operating system (task tokens, `States.UUID`, jitter).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn next_u64(&self) -> u64 {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let mut half = [0u8; 8];
        half.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(half)
    }
}

/// A registered state machine.
#[derive(Debug)]
pub struct Machine {
    pub name: String,
    pub arn: String,
    pub definition: Arc<StateMachine>,
}

pub struct ExecutorDeps {
    pub store: Arc<dyn WorkflowStore>,
    pub invoker: Arc<dyn TaskInvoker>,
    pub buckets: Option<Arc<dyn BlobBuckets>>,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
}

#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Snapshot (and history) write interval while frames make progress.
    pub checkpoint_interval_ms: u64,
    /// History-only write interval, done by a background task.
    pub events_flush_interval_ms: u64,
    /// History-only write as soon as this many bytes of history are pending.
    pub events_flush_bytes: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS_DEFAULT,
            events_flush_interval_ms: EVENTS_FLUSH_INTERVAL_MS_DEFAULT,
            events_flush_bytes: EVENTS_FLUSH_BYTES_DEFAULT,
        }
    }
}

struct TokenWaiter {
    tx: oneshot::Sender<TokenOutcome>,
    wake: Wake,
    heartbeat: Arc<Notify>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn WorkflowStore>,
    pub invoker: Arc<dyn TaskInvoker>,
    pub buckets: Option<Arc<dyn BlobBuckets>>,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    pub timers: Arc<Timers>,
    pub config: ExecutorConfig,
    machines: RwLock<HashMap<String, Arc<Machine>>>,
    runs: Mutex<HashMap<String, Arc<Run>>>,
    tokens: Mutex<HashMap<String, TokenWaiter>>,
    transitions: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Registries: every operation is a single insert/remove, consistent even after a panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn count_transition(&self) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn new_token(&self) -> String {
        let e = self.entropy.as_ref();
        format!("{}{}", uuid_v4(e).simple(), uuid_v4(e).simple())
    }

    pub fn register_token(
        &self,
        token: &str,
        tx: oneshot::Sender<TokenOutcome>,
        wake: Wake,
        heartbeat: Arc<Notify>,
    ) {
        lock(&self.tokens).insert(
            token.to_owned(),
            TokenWaiter {
                tx,
                wake,
                heartbeat,
            },
        );
    }

    pub fn unregister_token(&self, token: &str) {
        lock(&self.tokens).remove(token);
    }

    fn machine(&self, name_or_arn: &str) -> Result<Arc<Machine>, ExecutorError> {
        let name = state_machine_name(name_or_arn);
        self.machines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| ExecutorError::UnknownStateMachine(name.to_owned()))
    }
}

/// The local Step Functions. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), ExecutorError> {
    let n = name.chars().count();
    if n == 0 || n > EXECUTION_NAME_CHARS_MAX {
        return Err(ExecutorError::Invalid(format!(
            "execution name must be 1 to {EXECUTION_NAME_CHARS_MAX} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(*c))
    {
        return Err(ExecutorError::Invalid(format!(
            "execution name '{name}' contains the character {c:?}, which Step Functions does not allow"
        )));
    }
    Ok(())
}

fn check_payload(what: &str, v: &Value) -> Result<(), ExecutorError> {
    let size = v.to_string().len();
    if size > PAYLOAD_BYTES_MAX {
        return Err(ExecutorError::Invalid(format!(
            "{what} is {size} bytes; the limit is {PAYLOAD_BYTES_MAX}"
        )));
    }
    Ok(())
}

impl Executor {
    pub fn new(deps: ExecutorDeps, config: ExecutorConfig) -> Executor {
        let timers = Arc::new(Timers::new(Arc::clone(&deps.clock)));
        Executor {
            inner: Arc::new(Inner {
                store: deps.store,
                invoker: deps.invoker,
                buckets: deps.buckets,
                clock: deps.clock,
                entropy: deps.entropy,
                timers,
                config,
                machines: RwLock::new(HashMap::new()),
                runs: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                transitions: AtomicU64::new(0),
            }),
        }
    }

    /// Registers (or replaces) a state machine under `name`.
    pub fn register(&self, name: &str, definition: StateMachine) {
        let machine = Arc::new(Machine {
            name: name.to_owned(),
            arn: state_machine_arn(name),
            definition: Arc::new(definition),
        });
        self.inner
            .machines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), machine);
    }

    /// Applies `DefinitionSubstitutions` to the definition text, validates it strictly and
    /// registers it. The error names the state machine, the state and the reason.
    pub fn register_json(
        &self,
        name: &str,
        text: &str,
        substitutions: &HashMap<String, String>,
    ) -> Result<(), ExecutorError> {
        let definition = substitute(text, substitutions)
            .and_then(|t| StateMachine::from_json_str(&t))
            .map_err(|source| ExecutorError::Definition {
                name: name.to_owned(),
                source,
            })?;
        self.register(name, definition);
        Ok(())
    }

    /// Reads a definition file (a `DefinitionUri` of the SAM template), applies the
    /// template's `DefinitionSubstitutions` and registers it; errors name the file, the state
    /// and the reason. Blocking file read: call at start-up.
    pub fn register_file<'a>(
        &self,
        name: &str,
        file: &std::path::Path,
        substitutions: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<(), ExecutorError> {
        let text = std::fs::read_to_string(file).map_err(|source| ExecutorError::Io {
            file: file.to_owned(),
            source,
        })?;
        let substitutions: HashMap<String, String> = substitutions
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.register_json(name, &text, &substitutions)
            .map_err(|e| match e {
                ExecutorError::Definition { name, source } => ExecutorError::DefinitionFile {
                    file: file.to_owned(),
                    name,
                    source,
                },
                other => other,
            })
    }

    /// Registers every `NAME.asl.json` in `dir` under `NAME`, without substitutions: local-only
    /// state machines (a prototype, a test's fixtures) run by `payops up` next to the
    /// template's. A missing directory registers nothing. Returns the names, sorted. Blocking
    /// file reads: call at start-up.
    pub fn register_directory(&self, dir: &std::path::Path) -> Result<Vec<String>, ExecutorError> {
        let io = |source| ExecutorError::Io {
            file: dir.to_owned(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(io)?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(LOCAL_DEFINITION_SUFFIX));
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                files.push((name.to_owned(), path.clone()));
            }
        }
        files.sort();
        let none: HashMap<String, String> = HashMap::new();
        for (name, path) in &files {
            self.register_file(name, path, &none)?;
        }
        Ok(files.into_iter().map(|(name, _)| name).collect())
    }

    pub fn state_machines(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .machines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Starts an execution; idempotent per (state machine, name): the same name with the same
    /// input returns the existing execution's id, with another input fails.
    pub async fn start(
        &self,
        state_machine: &str,
        name: &str,
        input: Value,
    ) -> Result<String, ExecutorError> {
        check_name(name)?;
        check_payload("the execution input", &input)?;
        let machine = self.inner.machine(state_machine)?;
        let now = self.inner.clock.now();
        let id = execution_arn(&machine.name, name);
        let exec = ExecutionInfo {
            id: id.clone(),
            name: name.to_owned(),
            state_machine_id: machine.arn.clone(),
            state_machine_name: machine.name.clone(),
            role_arn: LOCAL_ROLE_ARN.to_owned(),
            start_time: now,
            input: input.clone(),
        };
        let root = Frame {
            id: 0,
            parent: None,
            scope: Vec::new(),
            label: String::new(),
            state: machine.definition.root.start_at,
            input: input.clone(),
            entered_at: now,
            retries: Default::default(),
            phase: Phase::Enter,
        };
        let snapshot = Snapshot {
            root: 0,
            next_frame_id: 1,
            next_event_id: 2,
            frames: vec![root],
        };
        let snapshot_text =
            serde_json::to_string(&snapshot).map_err(|source| ExecutorError::Snapshot {
                id: id.clone(),
                source,
            })?;
        let started = EventKind::ExecutionStarted {
            input: input.clone(),
        };
        let record = ExecutionRecord {
            id: id.clone(),
            state_machine: machine.name.clone(),
            name: name.to_owned(),
            status: ExecutionStatus::Running,
            input: input.clone(),
            output: None,
            error: None,
            cause: None,
            start_time: now,
            stop_time: None,
        };
        let created = self
            .inner
            .store
            .create(NewExecution {
                record,
                snapshot: snapshot_text,
                events: {
                    let mut chunk = ChunkBuilder::default();
                    chunk
                        .push(&HistoryEventRef {
                            id: 1,
                            timestamp: now,
                            scope: "",
                            event_type: started.type_name(),
                            event: &started,
                        })
                        .map_err(|source| ExecutorError::Snapshot {
                            id: id.clone(),
                            source,
                        })?;
                    chunk.take()
                },
            })
            .await?;
        if let Created::Existing(existing) = created {
            return if json_equal(&existing.input, &input) {
                Ok(existing.id)
            } else {
                Err(ExecutorError::AlreadyExists {
                    state_machine: machine.name.clone(),
                    name: name.to_owned(),
                })
            };
        }
        let deadline = machine
            .definition
            .timeout_seconds
            .map(|s| now + Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2_000)));
        self.launch(Arc::new(Run::new(exec, machine, snapshot, deadline)));
        Ok(id)
    }

    fn launch(&self, run: Arc<Run>) {
        let guard = BusyGuard::new(&run);
        lock(&self.inner.runs).insert(run.exec.id.clone(), Arc::clone(&run));
        let inner = Arc::clone(&self.inner);
        let driven = Arc::clone(&run);
        let handle = tokio::spawn(async move { drive(inner, driven, guard).await });
        *run.abort.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.abort_handle());
    }

    /// Resumes every execution the store has as RUNNING (after a restart). Returns how many.
    /// Executions of state machines that are not registered stay RUNNING and are reported.
    pub async fn resume_running(&self) -> Result<usize, ExecutorError> {
        let mut resumed = 0;
        for running in self.inner.store.load_running().await? {
            let record = running.record;
            if lock(&self.inner.runs).contains_key(&record.id) {
                continue;
            }
            let machine = match self.inner.machine(&record.state_machine) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(execution = %record.id, error = %e, "cannot resume execution");
                    continue;
                }
            };
            let mut snapshot: Snapshot =
                serde_json::from_str(&running.snapshot).map_err(|source| {
                    ExecutorError::Snapshot {
                        id: record.id.clone(),
                        source,
                    }
                })?;
            // History may have been flushed past the snapshot: new events follow the last one.
            snapshot.next_event_id = snapshot.next_event_id.max(running.last_event_id + 1);
            let deadline = machine.definition.timeout_seconds.map(|s| {
                record.start_time + Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2_000))
            });
            let exec = ExecutionInfo {
                id: record.id.clone(),
                name: record.name.clone(),
                state_machine_id: machine.arn.clone(),
                state_machine_name: machine.name.clone(),
                role_arn: LOCAL_ROLE_ARN.to_owned(),
                start_time: record.start_time,
                input: record.input.clone(),
            };
            self.launch(Arc::new(Run::new(exec, machine, snapshot, deadline)));
            resumed += 1;
        }
        Ok(resumed)
    }

    async fn complete_token(
        &self,
        token: &str,
        outcome: TokenOutcome,
    ) -> Result<(), ExecutorError> {
        match self.inner.store.complete_token(token, &outcome).await? {
            TokenCompletion::Unknown => return Err(ExecutorError::UnknownToken),
            TokenCompletion::Closed => return Err(ExecutorError::TokenClosed),
            TokenCompletion::Recorded { .. } => {}
        }
        let waiter = lock(&self.inner.tokens).remove(token);
        if let Some(w) = waiter {
            (w.wake)();
            // The frame may have just been cancelled; the outcome is stored either way.
            let _ = w.tx.send(outcome);
        }
        Ok(())
    }

    pub async fn send_task_success(&self, token: &str, output: Value) -> Result<(), ExecutorError> {
        check_payload("the task output", &output)?;
        self.complete_token(token, TokenOutcome::Success(output))
            .await
    }

    pub async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), ExecutorError> {
        if error.chars().count() > TASK_ERROR_CHARS_MAX
            || cause.chars().count() > TASK_CAUSE_CHARS_MAX
        {
            return Err(ExecutorError::Invalid(format!(
                "error names are limited to {TASK_ERROR_CHARS_MAX} characters and causes to {TASK_CAUSE_CHARS_MAX}"
            )));
        }
        self.complete_token(
            token,
            TokenOutcome::Failure {
                error: error.to_owned(),
                cause: cause.to_owned(),
            },
        )
        .await
    }

    /// Resets the HeartbeatSeconds timer of the task waiting on `token`.
    pub async fn send_task_heartbeat(&self, token: &str) -> Result<(), ExecutorError> {
        let beat = lock(&self.inner.tokens)
            .get(token)
            .map(|w| (Arc::clone(&w.heartbeat), Arc::clone(&w.wake)));
        match beat {
            Some((b, wake)) => {
                // The frame is busy until it has taken the heartbeat and parked again.
                wake();
                b.notify_one();
                Ok(())
            }
            None => match self.inner.store.token_outcome(token).await? {
                Some(_) => Err(ExecutorError::TokenClosed),
                None => Err(ExecutorError::UnknownToken),
            },
        }
    }

    /// Stops a running execution: it ends ABORTED with the given error and cause.
    pub async fn stop(&self, id: &str, error: &str, cause: &str) -> Result<(), ExecutorError> {
        let run = lock(&self.inner.runs).get(id).cloned();
        let Some(run) = run else {
            return match self.inner.store.get(id).await? {
                Some(_) => Ok(()),
                None => Err(ExecutorError::UnknownExecution(id.to_owned())),
            };
        };
        if let Some(h) = run.abort.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.abort();
        }
        finish(
            &self.inner,
            &run,
            Ended::Aborted(error.to_owned(), cause.to_owned()),
        )
        .await;
        Ok(())
    }

    pub async fn describe(&self, id: &str) -> Result<Option<ExecutionRecord>, ExecutorError> {
        Ok(self.inner.store.get(id).await?)
    }

    /// Executions, newest first, optionally of one state machine and/or with one status.
    pub async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionSummary>, ExecutorError> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// The full history of an execution, including events not yet checkpointed.
    pub async fn execution_history(&self, id: &str) -> Result<Vec<HistoryEvent>, ExecutorError> {
        let run = lock(&self.inner.runs).get(id).cloned();
        match run {
            Some(run) => {
                let (_guard, pending) = run.pending_events_after_checkpoint().await;
                let mut events = self.inner.store.history(id).await?;
                events.extend(pending);
                Ok(events)
            }
            None => {
                let events = self.inner.store.history(id).await?;
                if events.is_empty() && self.inner.store.get(id).await?.is_none() {
                    return Err(ExecutorError::UnknownExecution(id.to_owned()));
                }
                Ok(events)
            }
        }
    }

    /// Fires the timers whose time has come on the clock (tests call this after moving a
    /// `ManualClock`; `payops up` runs [`Executor::spawn_timer_driver`]).
    pub fn fire_due_timers(&self) -> usize {
        self.inner.timers.fire_due()
    }

    /// The earliest pending timer, if any (tests jump a `ManualClock` to it).
    pub fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.inner.timers.next_deadline()
    }

    pub fn spawn_timer_driver(&self) -> tokio::task::JoinHandle<()> {
        self.inner.timers.spawn_driver()
    }

    /// Waits until the execution cannot progress without an outside event (a timer, a task
    /// token, a task reply) or has ended.
    pub async fn wait_settled(&self, id: &str) {
        let run = lock(&self.inner.runs).get(id).cloned();
        if let Some(run) = run {
            run.settled().await;
        }
    }

    /// Waits until the execution ends and returns its final record.
    pub async fn wait_finished(&self, id: &str) -> Result<ExecutionRecord, ExecutorError> {
        let run = lock(&self.inner.runs).get(id).cloned();
        if let Some(run) = run {
            let mut rx = run.finished.subscribe();
            // An error means the run was dropped, which only happens after it finished.
            let _ = rx.wait_for(|done| *done).await;
        }
        self.inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| ExecutorError::UnknownExecution(id.to_owned()))
    }

    /// State transitions made since start (for benchmarks).
    pub fn transitions(&self) -> u64 {
        self.inner.transitions.load(Ordering::Relaxed)
    }

    /// Executions running in this process.
    pub fn running(&self) -> usize {
        lock(&self.inner.runs).len()
    }

    /// Stops every execution task at once, without recording anything: what a crash does.
    /// The store keeps the last checkpoint; `resume_running` on a new executor carries on.
    pub fn halt(&self) {
        let runs: Vec<Arc<Run>> = lock(&self.inner.runs).drain().map(|(_, r)| r).collect();
        for run in runs {
            if let Some(h) = run.abort.lock().unwrap_or_else(|e| e.into_inner()).take() {
                h.abort();
            }
        }
        lock(&self.inner.tokens).clear();
    }
}

enum Ended {
    Done(Result<Value, payops_core::asl::Failure>),
    TimedOut,
    Aborted(String, String),
}

async fn drive(inner: Arc<Inner>, run: Arc<Run>, guard: BusyGuard) {
    let root = run.lock().root;
    let frame = run_frame(Arc::clone(&inner), Arc::clone(&run), root, guard);
    // When the execution's deadline fires, the run is busy until its end is recorded.
    let fired = Arc::new(AtomicBool::new(false));
    // The root frame's busy count, held until the end is recorded (see `run_frame`).
    let mut root_busy = None;
    let ended = match run.deadline {
        Some(deadline) => {
            let (r, f) = (Arc::clone(&run), Arc::clone(&fired));
            let on_fire: OnFire = Box::new(move || {
                f.store(true, Ordering::SeqCst);
                r.busy_inc();
            });
            tokio::select! {
                (r, busy) = frame => {
                    root_busy = Some(busy);
                    Ended::Done(r)
                }
                _ = inner.timers.sleep_until_with(deadline, Some(on_fire)) => Ended::TimedOut,
            }
        }
        None => {
            let (r, busy) = frame.await;
            root_busy = Some(busy);
            Ended::Done(r)
        }
    };
    finish(&inner, &run, ended).await;
    drop(root_busy);
    if fired.load(Ordering::SeqCst) {
        run.busy_dec();
    }
}

async fn finish(inner: &Inner, run: &Arc<Run>, ended: Ended) {
    if run.ended.swap(true, Ordering::SeqCst) {
        return;
    }
    let now: DateTime<Utc> = inner.clock.now();
    let (event, finish) = match ended {
        Ended::Done(Ok(output)) => (
            EventKind::ExecutionSucceeded {
                output: output.clone(),
            },
            Finish {
                status: ExecutionStatus::Succeeded,
                output: Some(output),
                error: None,
                cause: None,
                stop_time: now,
            },
        ),
        Ended::Done(Err(f)) => (
            EventKind::ExecutionFailed {
                error: f.error.clone(),
                cause: f.cause.clone(),
            },
            Finish {
                status: ExecutionStatus::Failed,
                output: None,
                error: Some(f.error),
                cause: Some(f.cause),
                stop_time: now,
            },
        ),
        Ended::TimedOut => {
            let (error, cause) = (
                payops_core::asl::errors::names::TIMEOUT.to_owned(),
                "the execution ran longer than the state machine's TimeoutSeconds".to_owned(),
            );
            (
                EventKind::ExecutionTimedOut {
                    error: error.clone(),
                    cause: cause.clone(),
                },
                Finish {
                    status: ExecutionStatus::TimedOut,
                    output: None,
                    error: Some(error),
                    cause: Some(cause),
                    stop_time: now,
                },
            )
        }
        Ended::Aborted(error, cause) => (
            EventKind::ExecutionAborted {
                error: error.clone(),
                cause: cause.clone(),
            },
            Finish {
                status: ExecutionStatus::Aborted,
                output: None,
                error: Some(error),
                cause: Some(cause),
                stop_time: now,
            },
        ),
    };
    run.lock().record("", now, vec![event]);
    run.checkpoint(inner, None, Some(finish)).await;
    lock(&inner.runs).remove(&run.exec.id);
    run.finished.send_replace(true);
    run.notify_idle();
}

#[async_trait]
impl Workflows for Executor {
    async fn start_execution(
        &self,
        state_machine: &str,
        name: &str,
        input: Value,
    ) -> Result<String, WorkflowError> {
        Ok(self.start(state_machine, name, input).await?)
    }

    async fn send_task_success(
        &self,
        task_token: &str,
        output: Value,
    ) -> Result<(), WorkflowError> {
        Ok(Executor::send_task_success(self, task_token, output).await?)
    }

    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        Ok(Executor::send_task_failure(self, task_token, error, cause).await?)
    }
}
