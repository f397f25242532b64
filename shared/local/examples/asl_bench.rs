//! Benchmark of the local Step Functions executor: a Map over 10,000 items whose iteration is
//! one trivial Task, on the embedded SQLite store (history and checkpoints included) and on
//! the in-memory store.
//!
//! `cargo build --release -p payops-local --example asl_bench && target/release/examples/asl_bench [ITEMS [RUNS [sqlite|memory]]]`
//!
//! Each store gets one warm-up run (not counted: page cache, allocator and database file
//! growth) and then RUNS measured runs. Prints, per run and as the median of the runs: state
//! transitions per second, the overhead per transition (wall time / transitions) and the CPU
//! time per transition (every thread of the process: the executor, the database writer and
//! its checkpointer). On a loaded machine wall time is noisy, CPU time much less so. It uses
//! mimalloc, the allocator of the `payops` binary.
//! Target: at least 50,000 transitions/s. `ASL_BENCH_FLUSH_MS` overrides the history flush
//! interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use payops_app::ports::SystemClock;
use payops_core::asl::SeededEntropy;
use payops_core::asl::resource::DynamoDbOp;
use payops_local::sqlite::Db;
use payops_local::workflows::{
    ExecutionStatus, Executor, ExecutorConfig, ExecutorDeps, MemoryWorkflowStore,
    SqliteWorkflowStore, TaskFailure, TaskInvoker, WorkflowStore,
};
use serde_json::{Value, json};

/// The allocator of the `payops` binary (see `src/main.rs`): the benchmark measures the
/// executor as `payops up` runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ITEMS_DEFAULT: usize = 10_000;
const RUNS_DEFAULT: usize = 3;
/// Runs before the measured ones, not counted.
const WARMUP_RUNS: usize = 1;
const TARGET_TRANSITIONS_PER_S: f64 = 50_000.0;

/// Returns its payload: the cheapest possible task.
struct Trivial;

#[async_trait]
impl TaskInvoker for Trivial {
    async fn invoke_lambda(&self, _function: &str, payload: Value) -> Result<Value, TaskFailure> {
        Ok(payload)
    }
    async fn send_sqs(&self, _parameters: Value) -> Result<Value, TaskFailure> {
        Ok(json!({}))
    }
    async fn put_events(&self, _parameters: Value) -> Result<Value, TaskFailure> {
        Ok(json!({}))
    }
    async fn dynamodb(&self, _op: DynamoDbOp, _parameters: Value) -> Result<Value, TaskFailure> {
        Ok(json!({}))
    }
}

const DEFINITION: &str = r#"{
  "StartAt": "Items",
  "States": {
    "Items": {
      "Type": "Map",
      "ItemsPath": "$.items",
      "ItemSelector": {"id.$": "$$.Map.Item.Value.id", "index.$": "$$.Map.Item.Index"},
      "ItemProcessor": {
        "StartAt": "Work",
        "States": {
          "Work": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:noop", "End": true}
        }
      },
      "ResultPath": null,
      "End": true
    }
  }
}"#;

/// CPU time (user + system) this process has used so far, in seconds: unlike wall time it
/// does not grow when other processes take the cores.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Measured {
    cpu_seconds: f64,
    seconds: f64,
    transitions: u64,
    events: usize,
}

async fn run_once(store: Arc<dyn WorkflowStore>, items: usize, name: &str) -> Measured {
    let executor = Executor::new(
        ExecutorDeps {
            store,
            invoker: Arc::new(Trivial),
            buckets: None,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(SeededEntropy::new(1)),
        },
        ExecutorConfig {
            events_flush_interval_ms: std::env::var("ASL_BENCH_FLUSH_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(ExecutorConfig::default().events_flush_interval_ms),
            ..ExecutorConfig::default()
        },
    );
    // The definition is a constant of this file.
    executor
        .register_json("bench", DEFINITION, &HashMap::new())
        .expect("the benchmark definition is valid");
    let input = json!({"items": (0..items).map(|i| json!({"id": i})).collect::<Vec<_>>()});
    let before = executor.transitions();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let id = executor.start("bench", name, input).await.expect("starts");
    let record = executor.wait_finished(&id).await.expect("finishes");
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_before;
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{:?}",
        record.cause
    );
    let transitions = executor.transitions() - before;
    let events = executor
        .execution_history(&id)
        .await
        .expect("history")
        .len();
    Measured {
        cpu_seconds,
        seconds,
        transitions,
        events,
    }
}

fn median(v: Vec<f64>) -> f64 {
    payops_local::bench::median(v)
}

fn report(label: &str, runs: &[Measured]) {
    for (i, m) in runs.iter().enumerate() {
        println!(
            "  {label} run {}: {} transitions, {} history events in {:.3} s = {:.0} transitions/s, {:.2} µs/transition ({:.2} µs CPU/transition)",
            i + 1,
            m.transitions,
            m.events,
            m.seconds,
            m.transitions as f64 / m.seconds,
            m.seconds * 1e6 / m.transitions as f64,
            m.cpu_seconds * 1e6 / m.transitions as f64
        );
    }
    let rate = median(
        runs.iter()
            .map(|m| m.transitions as f64 / m.seconds)
            .collect(),
    );
    let cpu_us = median(
        runs.iter()
            .map(|m| m.cpu_seconds * 1e6 / m.transitions as f64)
            .collect(),
    );
    let verdict = if rate >= TARGET_TRANSITIONS_PER_S {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "{label}: median {rate:.0} transitions/s ({:.2} µs/transition, {cpu_us:.2} µs CPU/transition) — {verdict} the {TARGET_TRANSITIONS_PER_S:.0}/s target",
        1e6 / rate
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let items = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(ITEMS_DEFAULT);
    let runs = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(RUNS_DEFAULT)
        .max(1);
    let only = args.get(3).map(String::as_str);
    println!(
        "Map over {items} items, one Task per item, {WARMUP_RUNS} warm-up + {runs} measured runs per store"
    );

    if only != Some("memory") {
        bench_sqlite(items, runs).await;
    }
    if only != Some("sqlite") {
        bench_memory(items, runs).await;
    }
}

async fn bench_sqlite(items: usize, runs: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(&dir.path().join("payops.sqlite")).expect("database opens");
    let sqlite: Arc<dyn WorkflowStore> = Arc::new(SqliteWorkflowStore::open(db).expect("schema"));
    let mut measured = Vec::new();
    for r in 0..WARMUP_RUNS + runs {
        let m = run_once(Arc::clone(&sqlite), items, &format!("sqlite-{r}")).await;
        if r >= WARMUP_RUNS {
            measured.push(m);
        }
    }
    report("sqlite store", &measured);
}

async fn bench_memory(items: usize, runs: usize) {
    let mut measured = Vec::new();
    for r in 0..WARMUP_RUNS + runs {
        let memory: Arc<dyn WorkflowStore> = Arc::new(MemoryWorkflowStore::new());
        let m = run_once(memory, items, &format!("memory-{r}")).await;
        if r >= WARMUP_RUNS {
            measured.push(m);
        }
    }
    report("memory store", &measured);
}
