//! `payops up`: every function of `template.yaml` in one process on the embedded store.
//!
//! - HTTP functions: their axum routers, merged and served on 127.0.0.1.
//! - SQS functions: pollers on the local queues (see `poller`).
//! - Scheduled functions: timers from the same `cron(...)`/`rate(...)` (see `scheduler`).
//! - S3 drops: the inbox directory (see `inbox`).
//! - Ops: `/ops/health`, `/ops/functions`, `POST /ops/trigger/{name}`, `/ops/queues`,
//!   `POST /ops/pollers/{pause|resume}`, and the executions (see `ops_executions`).
//! - State machines: the local Step Functions executor on the same store, with every state
//!   machine of the template registered; its Task states reach the functions through
//!   `task_invoker`.
//!
//! One process owns a data directory at a time (a lock file), which is what makes releasing
//! the previous run's in-flight queue messages at start-up safe.

pub mod dynamodb_task;
pub mod hr_ui;
pub mod inbox;
pub mod lock;
pub mod ops;
pub mod ops_executions;
pub mod poller;
pub mod scheduler;
pub mod task_invoker;
pub mod ui;
pub mod web_page;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use payops_app::functions::{self, Function};
use payops_app::handler::EventHandler;
use payops_app::ports::{Clock, SystemClock};
use payops_app::resources::Resources;
use tokio::sync::watch;

use crate::env::{LOCAL_EVENT_BUS, LocalEnv};
use crate::template::{Template, Trigger};
use crate::workflows::{
    Executor, ExecutorConfig, ExecutorDeps, ExecutorError, OsEntropy, SqliteWorkflowStore,
};
use task_invoker::LocalTaskInvoker;

pub const DEFAULT_PORT: u16 = 3000;
/// Concurrent pollers per queue unless `PAYOPS_POLLERS_PER_QUEUE` says otherwise. Lambda
/// would scale out with the backlog; here each poller is a task that takes a batch, hands it
/// to the function and deletes what succeeded, so the number of pollers is the number of
/// batches in flight. Enough of them keep the embedded store's writer fed with large group
/// commits (measured with `payops bench payroll-e2e`).
pub const POLLERS_PER_QUEUE: usize = 8;
/// The most pollers per queue the setting may ask for.
pub const POLLERS_PER_QUEUE_MAX: usize = 64;
pub const POLLERS_PER_QUEUE_ENV: &str = "PAYOPS_POLLERS_PER_QUEUE";

/// Pollers per queue: [`POLLERS_PER_QUEUE_ENV`] within `1..=POLLERS_PER_QUEUE_MAX`, else the
/// default.
fn pollers_per_queue() -> usize {
    match std::env::var(POLLERS_PER_QUEUE_ENV) {
        Err(_) => POLLERS_PER_QUEUE,
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=POLLERS_PER_QUEUE_MAX).contains(&n) => n,
            _ => {
                tracing::warn!(
                    value = text,
                    "{POLLERS_PER_QUEUE_ENV} must be 1 to {POLLERS_PER_QUEUE_MAX}; using {POLLERS_PER_QUEUE}"
                );
                POLLERS_PER_QUEUE
            }
        },
    }
}

/// The repository root, where the template's `DefinitionUri` paths are relative to. The
/// template itself is compiled in from there, so definition files are read from the same
/// checkout whatever the working directory of `payops up` is.
pub const REPOSITORY_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub data_dir: PathBuf,
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("function {name}: {source}")]
    Function {
        name: String,
        #[source]
        source: functions::FunctionError,
    },
    #[error("function {function}: its SQS trigger names queue {queue}, which is not declared")]
    UnknownQueue { function: String, queue: String },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(#[source] std::io::Error),
    #[error("workflows: {0}")]
    Workflows(#[from] ExecutorError),
    #[error("workflow store: {0}")]
    WorkflowStore(#[from] crate::workflows::store::WorkflowStoreError),
    #[error("provider sandbox: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("provider sandbox configuration: {0}")]
    SandboxArgs(String),
}

/// Everything `payops up` runs, built but not yet started.
pub struct System {
    pub env: Arc<LocalEnv>,
    pub router: axum::Router,
    pub event_functions: Vec<(String, Arc<dyn EventHandler>)>,
    /// The local Step Functions (also the env's `Workflows` port).
    pub executor: Executor,
    /// The executor's way to the functions; `Function::Task`s of the registry are in it.
    pub task_invoker: Arc<LocalTaskInvoker>,
    control: ops::Control,
}

/// The executor on the env's store, with every state machine of the template registered.
fn build_executor(
    env: &LocalEnv,
    invoker: Arc<LocalTaskInvoker>,
    clock: Arc<dyn Clock>,
) -> Result<Executor, RuntimeError> {
    let store = SqliteWorkflowStore::open(env.store.db().clone())?;
    let executor = Executor::new(
        ExecutorDeps {
            store: Arc::new(store),
            invoker,
            buckets: Some(Arc::new(env.store.clone())),
            clock,
            entropy: Arc::new(OsEntropy),
        },
        ExecutorConfig::default(),
    );
    register_state_machines(&executor, &env.template)?;
    executor.register_directory(&crate::workflows::local_machines_dir(env.data_dir()))?;
    Ok(executor)
}

/// Registers each state machine of `template` under its logical id, its definition read from
/// `DefinitionUri` relative to [`REPOSITORY_ROOT`].
pub fn register_state_machines(
    executor: &Executor,
    template: &Template,
) -> Result<(), ExecutorError> {
    let root = std::path::Path::new(REPOSITORY_ROOT);
    for spec in &template.state_machines {
        executor.register_file(
            &spec.logical_id,
            &root.join(&spec.definition_uri),
            &spec.substitutions,
        )?;
    }
    Ok(())
}

impl System {
    /// Builds every function from the template on the store in `data_dir`.
    pub fn build(
        data_dir: &std::path::Path,
        clock: Arc<dyn Clock>,
    ) -> Result<(System, Vec<Worker>), RuntimeError> {
        System::build_with_settings(data_dir, clock, Vec::new())
    }

    /// As [`System::build`], with values the env returns ahead of the environment (the
    /// provider sandbox's URL and key; see `LocalEnv::set_setting`).
    pub fn build_with_settings(
        data_dir: &std::path::Path,
        clock: Arc<dyn Clock>,
        settings: Vec<(&'static str, String)>,
    ) -> Result<(System, Vec<Worker>), RuntimeError> {
        let mut env = LocalEnv::open(data_dir, clock.clone())?;
        for (name, value) in settings {
            env.set_setting(name, value);
        }
        let task_invoker = Arc::new(LocalTaskInvoker::new(
            env.store.clone(),
            LOCAL_EVENT_BUS,
            env.template.functions.clone(),
        ));
        let executor = build_executor(&env, task_invoker.clone(), clock)?;
        // Before any function is built, so that handlers get the `Workflows` port.
        env.set_workflows(Arc::new(executor.clone()));
        let env = Arc::new(env);
        let (pause_tx, pause_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut router = axum::Router::new();
        let mut workers = Vec::new();
        let mut event_functions = Vec::new();
        for spec in &env.template.functions {
            let resources = crate::iam::FunctionResources {
                env: env.as_ref(),
                function: spec,
            };
            let function = functions::build(&spec.binary, &resources).map_err(|source| {
                RuntimeError::Function {
                    name: spec.binary.clone(),
                    source,
                }
            })?;
            match function {
                Function::Http(r) => router = router.merge(r),
                Function::Sqs(handler) => {
                    for trigger in &spec.triggers {
                        if let Trigger::Sqs { queue, batch_size } = trigger {
                            let q = env.local_queue(queue).ok_or_else(|| {
                                RuntimeError::UnknownQueue {
                                    function: spec.binary.clone(),
                                    queue: queue.clone(),
                                }
                            })?;
                            for _ in 0..pollers_per_queue() {
                                workers.push(Worker::Poller {
                                    function: spec.binary.clone(),
                                    queue: q.clone(),
                                    handler: handler.clone(),
                                    batch_size: *batch_size,
                                });
                            }
                        }
                    }
                }
                Function::Event(handler) => {
                    for trigger in &spec.triggers {
                        if let Trigger::Schedule { rule, schedule, .. } = trigger {
                            workers.push(Worker::Schedule {
                                function: spec.binary.clone(),
                                rule: rule.clone(),
                                schedule: schedule.clone(),
                                handler: handler.clone(),
                            });
                        }
                    }
                    event_functions.push((spec.binary.clone(), handler));
                }
                Function::Task(handler) => task_invoker.add_function(&spec.binary, handler),
            }
        }
        // EventBridge rules whose target is a state machine start an execution per tick.
        for machine in &env.template.state_machines {
            let handler: Arc<dyn EventHandler> = Arc::new(scheduler::StartExecutionOnSchedule {
                workflows: Arc::new(executor.clone()),
                state_machine: machine.logical_id.clone(),
            });
            for trigger in &machine.schedules {
                if let Trigger::Schedule { rule, schedule, .. } = trigger {
                    workers.push(Worker::Schedule {
                        function: machine.logical_id.clone(),
                        rule: rule.clone(),
                        schedule: schedule.clone(),
                        handler: handler.clone(),
                    });
                }
            }
            if !machine.schedules.is_empty() {
                event_functions.push((machine.logical_id.clone(), handler));
            }
        }
        let control = ops::Control {
            pause: Arc::new(pause_tx),
            stop: Arc::new(stop_tx),
            paused: pause_rx,
            stopped: stop_rx,
        };
        Ok((
            System {
                env,
                router,
                event_functions,
                executor,
                task_invoker,
                control,
            },
            workers,
        ))
    }

    /// Runs a function with an EventBridge scheduled event now (what `payops trigger` does).
    pub async fn trigger(
        &self,
        name: &str,
        detail: serde_json::Value,
    ) -> Result<serde_json::Value, ops::TriggerError> {
        ops::trigger(&self.event_functions, self.env.clock().now(), name, detail).await
    }
}

/// A background task of the runtime.
pub enum Worker {
    Poller {
        function: String,
        queue: Arc<crate::queue::LocalQueue>,
        handler: Arc<dyn payops_app::handler::SqsHandler>,
        batch_size: usize,
    },
    Schedule {
        function: String,
        rule: String,
        schedule: payops_core::schedule::Schedule,
        handler: Arc<dyn EventHandler>,
    },
}

/// A started system: its address, and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub system: Arc<System>,
    stop: Arc<watch::Sender<bool>>,
    server: tokio::task::JoinHandle<Result<(), RuntimeError>>,
    timers: tokio::task::JoinHandle<()>,
    _lock: lock::DataDirLock,
    /// The payment provider's sandbox the functions talk to, when `payops up` started one.
    pub provider_sandbox: Option<crate::sandbox::RunningSandbox>,
}

impl Running {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets pollers finish the batch in hand, and waits for all.
    pub async fn stop(self) -> Result<(), RuntimeError> {
        let _ = self.stop.send(true);
        self.timers.abort();
        // Executions stop where they are; their last checkpoint resumes at the next start.
        self.system.executor.halt();
        let served = match self.server.await {
            Ok(result) => result,
            Err(e) => Err(RuntimeError::Serve(std::io::Error::other(e))),
        };
        if let Some(sandbox) = self.provider_sandbox {
            sandbox.stop().await?;
        }
        served
    }
}

/// Starts everything on 127.0.0.1 (`options.port` 0 picks a free port).
pub async fn start(options: &UpOptions, clock: Arc<dyn Clock>) -> Result<Running, RuntimeError> {
    let provider =
        crate::cli_sandbox::SandboxArgs::from_env().map_err(RuntimeError::SandboxArgs)?;
    start_with(options, clock, &provider).await
}

/// The provider sandbox of `payops up`, unless disabled: on the flag's port, else on a free
/// port when the runtime's is free-picked, else on the sandbox's default port.
async fn start_provider_sandbox(
    options: &UpOptions,
    clock: Arc<dyn Clock>,
    provider: &crate::cli_sandbox::SandboxArgs,
) -> Result<Option<crate::sandbox::RunningSandbox>, RuntimeError> {
    if provider.disabled {
        return Ok(None);
    }
    let port = provider.port.unwrap_or(if options.port == 0 {
        0
    } else {
        crate::sandbox::DEFAULT_SANDBOX_PORT
    });
    let sandbox = crate::sandbox::Sandbox::new(provider.config(Some(&options.data_dir)), clock)?;
    Ok(Some(crate::sandbox::serve(sandbox, port, true).await?))
}

/// As [`start`], with the provider sandbox configured by `provider` (the `--provider-*` flags).
pub async fn start_with(
    options: &UpOptions,
    clock: Arc<dyn Clock>,
    provider: &crate::cli_sandbox::SandboxArgs,
) -> Result<Running, RuntimeError> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| lock::LockError::Io(options.data_dir.clone(), e))?;
    let lock = lock::DataDirLock::acquire(&options.data_dir)?;
    let provider_sandbox = start_provider_sandbox(options, clock.clone(), provider).await?;
    let settings = provider_sandbox
        .as_ref()
        .map(|s| {
            vec![
                (payops_app::ports::provider::PROVIDER_URL_ENV, s.url()),
                (
                    payops_app::ports::provider::PROVIDER_API_KEY_ENV,
                    s.sandbox.config().api_key.expose().clone(),
                ),
            ]
        })
        .unwrap_or_default();
    // The callers' limiter reads the same rates as the sandbox, flags included.
    let mut settings = settings;
    for (name, per_min) in [
        (
            payops_app::ports::provider::PROVIDER_RATE_PAYMENTS_PER_MIN_ENV,
            provider.payments_per_min,
        ),
        (
            payops_app::ports::provider::PROVIDER_RATE_WRITES_PER_MIN_ENV,
            provider.writes_per_min,
        ),
    ] {
        if per_min > 0 {
            settings.push((name, per_min.to_string()));
        }
    }
    let (system, workers) = match System::build_with_settings(&options.data_dir, clock, settings) {
        Ok(built) => built,
        Err(e) => {
            if let Some(s) = provider_sandbox {
                let _ = s.stop().await;
            }
            return Err(e);
        }
    };
    let released = release_in_flight(&system.env).await;
    if released > 0 {
        tracing::info!(
            released,
            "messages in flight at the last stop are visible again"
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for worker in workers {
        let control = poller::PollerControl {
            paused: system.control.paused.clone(),
            stop: system.control.stopped.clone(),
        };
        match worker {
            Worker::Poller {
                function,
                queue,
                handler,
                batch_size,
            } => {
                tasks.spawn(poller::run(function, queue, handler, batch_size, control));
            }
            Worker::Schedule {
                function,
                rule,
                schedule,
                handler,
            } => {
                tasks.spawn(scheduler::run(
                    function,
                    rule,
                    schedule,
                    handler,
                    system.env.clock(),
                    control.stop,
                ));
            }
        }
    }
    let blobs = system.env.store.blobs(crate::env::LOCAL_BUCKET);
    tasks.spawn(inbox::run(
        options.data_dir.clone(),
        blobs,
        system.control.stopped.clone(),
    ));

    let system = Arc::new(system);
    let app = system
        .router
        .clone()
        .merge(ops::router(system.clone()))
        .merge(ops_executions::router(system.clone()))
        .merge(hr_ui::router());
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind {
            port: options.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(RuntimeError::Serve)?;
    if let Some(s) = &provider_sandbox {
        s.sandbox
            .set_webhook_url(format!("http://{addr}/webhooks/provider"));
    }
    // After the bind, so that a failed start leaves no executor task behind.
    let resumed = system.executor.resume_running().await?;
    if resumed > 0 {
        tracing::info!(resumed, "executions running at the last stop resumed");
    }
    let timers = system.executor.spawn_timer_driver();
    let stop = system.control.stop.clone();
    let mut stopped = system.control.stopped.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .map_err(RuntimeError::Serve)?;
        // Pollers finish the batch in hand; nothing is lost either way, since undeleted
        // messages are released at the next start.
        while tasks.join_next().await.is_some() {}
        Ok(())
    });
    Ok(Running {
        addr,
        system,
        stop,
        server,
        timers,
        _lock: lock,
        provider_sandbox,
    })
}

/// `payops up`: runs until Ctrl-C or SIGTERM. Prints the address and the development secret.
pub async fn up(options: UpOptions) -> Result<(), RuntimeError> {
    let provider =
        crate::cli_sandbox::SandboxArgs::from_env().map_err(RuntimeError::SandboxArgs)?;
    up_with(options, provider).await
}

/// As [`up`], with the provider sandbox configured by the `--provider-*` flags.
pub async fn up_with(
    options: UpOptions,
    provider: crate::cli_sandbox::SandboxArgs,
) -> Result<(), RuntimeError> {
    let running = start_with(&options, Arc::new(SystemClock), &provider).await?;
    println!("payops up: listening on {}", running.base_url());
    if let Some(s) = &running.provider_sandbox {
        println!("payops up: provider sandbox on {}", s.url());
    }
    println!("payops up: data in {}", options.data_dir.display());
    if std::env::var(payops_app::resources::WEBHOOK_SECRET_ENV).is_err() {
        println!(
            "payops up: {} is not set; webhooks are verified with the development secret {:?}",
            payops_app::resources::WEBHOOK_SECRET_ENV,
            crate::env::DEV_WEBHOOK_SECRET
        );
    }
    shutdown_signal().await;
    println!("payops up: stopping");
    running.stop().await?;
    println!("payops up: stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn release_in_flight(env: &LocalEnv) -> u64 {
    let mut released = 0;
    for q in &env.template.queues {
        if let Some(queue) = env.local_queue(&q.logical_id) {
            match queue.release_in_flight().await {
                Ok(n) => released += n,
                Err(e) => {
                    tracing::warn!(queue = q.logical_id, error = %e, "could not release in-flight messages")
                }
            }
        }
    }
    released
}
