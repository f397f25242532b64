//! Shared harness of the workflow tests: a scripted task invoker, an executor on a temporary
//! SQLite database with a manual clock, and helpers to read histories.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payops_app::ports::ManualClock;
use payops_core::asl::SeededEntropy;
use payops_core::asl::events::EventKind;
use payops_core::asl::resource::DynamoDbOp;
use payops_local::sqlite::Db;
use payops_local::workflows::{
    BlobBuckets, Executor, ExecutorConfig, ExecutorDeps, HistoryEvent, SqliteWorkflowStore,
    TaskFailure, TaskInvoker,
};
use serde_json::{Value, json};

/// Real-time bound on waiting for an execution in a test (a hang is a failure, not a stall).
pub const TEST_WAIT_MS_MAX: u64 = 20_000;

pub fn t0() -> DateTime<Utc> {
    // Construction from a fixed, valid timestamp cannot fail.
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
}

/// Replies of a scripted function, consumed in order; the last one repeats.
#[derive(Default)]
pub struct Script {
    replies: HashMap<String, Vec<Value>>,
    pub calls: Mutex<Vec<(String, Value)>>,
    /// Task tokens seen in payloads (`TaskToken` fields), in order.
    pub tokens: Mutex<Vec<String>>,
    pub sqs: Mutex<Vec<Value>>,
    pub events: Mutex<Vec<Value>>,
}

impl Script {
    pub fn new(replies: HashMap<String, Vec<Value>>) -> Self {
        Script {
            replies,
            ..Default::default()
        }
    }

    pub fn calls_to(&self, function: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(f, _)| f == function)
            .count()
    }

    pub fn token(&self, index: usize) -> Option<String> {
        self.tokens.lock().expect("lock").get(index).cloned()
    }

    fn find_tokens(&self, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "TaskToken" {
                        if let Some(t) = v.as_str() {
                            self.tokens.lock().expect("lock").push(t.to_owned());
                        }
                    } else {
                        self.find_tokens(v);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.find_tokens(x)),
            _ => {}
        }
    }

    fn reply_for(&self, function: &str, payload: &Value, call_index: usize) -> Value {
        let list = self
            .replies
            .get(function)
            .cloned()
            .unwrap_or_else(|| vec![json!({"echo": true})]);
        let reply = list
            .get(call_index)
            .or_else(|| list.last())
            .cloned()
            .unwrap_or(json!({"echo": true}));
        // {"match": [{"payload": P, "reply": R}], "default": D}
        if let Some(cases) = reply.get("match").and_then(Value::as_array) {
            for case in cases {
                if case.get("payload") == Some(payload) {
                    return case.get("reply").cloned().unwrap_or(json!({"echo": true}));
                }
            }
            return reply
                .get("default")
                .cloned()
                .unwrap_or(json!({"echo": true}));
        }
        reply
    }
}

#[async_trait]
impl TaskInvoker for Script {
    async fn invoke_lambda(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        self.find_tokens(&payload);
        let index = self.calls_to(function);
        self.calls
            .lock()
            .expect("lock")
            .push((function.to_owned(), payload.clone()));
        let reply = self.reply_for(function, &payload, index);
        if reply.get("hang").is_some() {
            futures::future::pending::<()>().await;
        }
        if let Some(error) = reply.get("error").and_then(Value::as_str) {
            let cause = reply
                .get("cause")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            return Err(TaskFailure::new(error, cause));
        }
        if reply.get("echo").is_some() {
            return Ok(payload);
        }
        Ok(reply.get("output").cloned().unwrap_or(Value::Null))
    }

    async fn send_sqs(&self, parameters: Value) -> Result<Value, TaskFailure> {
        if let Some(body) = parameters.get("MessageBody").and_then(Value::as_str)
            && let Ok(v) = serde_json::from_str::<Value>(body)
        {
            self.find_tokens(&v);
        }
        let n = {
            let mut sqs = self.sqs.lock().expect("lock");
            sqs.push(parameters);
            sqs.len()
        };
        Ok(json!({"MessageId": format!("msg-{n}"), "MD5OfMessageBody": "x"}))
    }

    async fn put_events(&self, parameters: Value) -> Result<Value, TaskFailure> {
        self.find_tokens(&parameters);
        let entries = parameters["Entries"].as_array().map_or(0, Vec::len);
        self.events.lock().expect("lock").push(parameters);
        Ok(
            json!({"Entries": (0..entries).map(|i| json!({"EventId": format!("ev-{i}")})).collect::<Vec<_>>(), "FailedEntryCount": 0}),
        )
    }

    async fn dynamodb(&self, op: DynamoDbOp, parameters: Value) -> Result<Value, TaskFailure> {
        Ok(match op {
            DynamoDbOp::GetItem => {
                json!({"Item": {"pk": parameters["Key"]["pk"].clone(), "status": {"S": "APPROVED"}}})
            }
            _ => json!({}),
        })
    }
}

pub struct Harness {
    pub executor: Executor,
    pub clock: Arc<ManualClock>,
    pub script: Arc<Script>,
    pub db: Db,
    pub dir: tempfile::TempDir,
}

pub fn open_db(dir: &std::path::Path) -> Db {
    Db::open(&dir.join("payops.sqlite")).expect("database opens")
}

/// An executor on a fresh database (or `db`, to simulate a restart on the same one).
pub fn executor_on(
    db: Db,
    clock: Arc<ManualClock>,
    script: Arc<Script>,
    buckets: Option<Arc<dyn BlobBuckets>>,
) -> Executor {
    let store = SqliteWorkflowStore::open(db).expect("workflow schema applies");
    Executor::new(
        ExecutorDeps {
            store: Arc::new(store),
            invoker: script,
            buckets,
            clock,
            entropy: Arc::new(SeededEntropy::new(7)),
        },
        ExecutorConfig::default(),
    )
}

pub fn harness(replies: HashMap<String, Vec<Value>>) -> Harness {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = open_db(dir.path());
    let clock = Arc::new(ManualClock::new(t0()));
    let script = Arc::new(Script::new(replies));
    let executor = executor_on(db.clone(), clock.clone(), script.clone(), None);
    Harness {
        executor,
        clock,
        script,
        db,
        dir,
    }
}

pub async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(StdDuration::from_millis(TEST_WAIT_MS_MAX), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Names of the states entered in `scope`, in order.
pub fn states_in(history: &[HistoryEvent], scope: &str) -> Vec<String> {
    history
        .iter()
        .filter(|e| e.scope == scope)
        .filter_map(|e| match &e.event {
            EventKind::StateEntered { state, .. } => Some(state.clone()),
            _ => None,
        })
        .collect()
}

pub fn event_types(history: &[HistoryEvent], scope: &str) -> Vec<String> {
    history
        .iter()
        .filter(|e| e.scope == scope)
        .map(|e| e.event_type.to_string())
        .collect()
}
