//! The local Step Functions executor: the conformance suite (`tests/asl/*.json`, one small
//! state machine each, with scripted task replies, steps and the expected result and states),
//! then durability (restart), token, ops-view and distributed Map tests.
//!
//! Time never passes by itself: the clock is a `ManualClock`, moved to the next timer.

#[path = "asl/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::Duration;
use harness::{bounded, event_types, harness, states_in, t0};
use payops_app::ports::Clock;
use payops_local::workflows::{ExecutionStatus, Executor};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most timer jumps a case may need before it finishes.
const TIMER_STEPS_MAX: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    definition: Value,
    input: Value,
    /// Scripted replies per Lambda function name.
    #[serde(default)]
    functions: HashMap<String, Vec<Value>>,
    /// Outside events, applied in order once the execution has settled.
    #[serde(default)]
    steps: Vec<Value>,
    expected: Expected,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    status: String,
    output: Option<Value>,
    error: Option<String>,
    cause: Option<String>,
    /// States entered at the top level, in order.
    states: Vec<String>,
    /// States entered in nested scopes (`Par/branch-0`, `Items/item-2`), in order.
    #[serde(default)]
    scopes: HashMap<String, Vec<String>>,
    /// Calls per function.
    #[serde(default)]
    calls: HashMap<String, usize>,
    /// Seconds on the clock from start to finish.
    elapsed_seconds: Option<i64>,
    /// Event types at the top level, in order.
    events: Option<Vec<String>>,
}

async fn settle_all(executor: &Executor, id: &str) {
    bounded("the execution to settle", executor.wait_settled(id)).await;
}

/// Moves the clock to each next timer until the execution ends.
async fn drain_timers(h: &harness::Harness, id: &str) {
    for _ in 0..TIMER_STEPS_MAX {
        settle_all(&h.executor, id).await;
        let record = h
            .executor
            .describe(id)
            .await
            .expect("describe")
            .expect("exists");
        if record.status != ExecutionStatus::Running {
            return;
        }
        match h.executor.next_timer() {
            Some(t) => {
                if t > h.clock.now() {
                    h.clock.set(t);
                }
                h.executor.fire_due_timers();
            }
            None => return,
        }
    }
}

async fn apply_step(h: &harness::Harness, id: &str, step: &Value) -> Result<(), String> {
    settle_all(&h.executor, id).await;
    let token = |i: &Value| {
        let i = i.as_u64().unwrap_or(0) as usize;
        h.script
            .token(i)
            .ok_or_else(|| format!("no task token #{i} was handed out"))
    };
    if let Some(s) = step.get("advance_seconds").and_then(Value::as_i64) {
        h.clock.advance(Duration::seconds(s));
        h.executor.fire_due_timers();
    } else if let Some(t) = step.get("task_success") {
        h.executor
            .send_task_success(&token(&t["token"])?, t["output"].clone())
            .await
            .map_err(|e| e.to_string())?;
    } else if let Some(t) = step.get("task_failure") {
        h.executor
            .send_task_failure(
                &token(&t["token"])?,
                t["error"].as_str().unwrap_or(""),
                t["cause"].as_str().unwrap_or(""),
            )
            .await
            .map_err(|e| e.to_string())?;
    } else if let Some(t) = step.get("heartbeat") {
        h.executor
            .send_task_heartbeat(&token(&t["token"])?)
            .await
            .map_err(|e| e.to_string())?;
    } else {
        return Err(format!("unknown step {step}"));
    }
    settle_all(&h.executor, id).await;
    Ok(())
}

async fn run_case(path: &PathBuf) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Case = serde_json::from_str(&text).map_err(|e| format!("bad case file: {e}"))?;
    let h = harness(case.functions.clone());
    h.executor
        .register_json("case", &case.definition.to_string(), &HashMap::new())
        .map_err(|e| format!("definition rejected: {e}"))?;
    let id = h
        .executor
        .start("case", "run-1", case.input.clone())
        .await
        .map_err(|e| e.to_string())?;
    for step in &case.steps {
        apply_step(&h, &id, step).await?;
    }
    drain_timers(&h, &id).await;
    let record = bounded("the execution to finish", h.executor.wait_finished(&id))
        .await
        .map_err(|e| e.to_string())?;
    let history = h
        .executor
        .execution_history(&id)
        .await
        .map_err(|e| e.to_string())?;
    let e = &case.expected;
    let mut problems = Vec::new();
    if record.status.as_str() != e.status {
        problems.push(format!(
            "status {} (error {:?}: {:?}), expected {}",
            record.status, record.error, record.cause, e.status
        ));
    }
    if let Some(out) = &e.output
        && record.output.as_ref() != Some(out)
    {
        problems.push(format!(
            "output {:?}, expected {out}",
            record.output.as_ref().map(Value::to_string)
        ));
    }
    if e.error.is_some() && record.error != e.error {
        problems.push(format!("error {:?}, expected {:?}", record.error, e.error));
    }
    if let Some(c) = &e.cause
        && !record.cause.as_deref().unwrap_or("").contains(c.as_str())
    {
        problems.push(format!("cause {:?} should contain {c:?}", record.cause));
    }
    let states = states_in(&history, "");
    if states != e.states {
        problems.push(format!("states {states:?}, expected {:?}", e.states));
    }
    for (scope, want) in &e.scopes {
        let got = states_in(&history, scope);
        if &got != want {
            problems.push(format!("states in {scope}: {got:?}, expected {want:?}"));
        }
    }
    for (function, n) in &e.calls {
        let got = h.script.calls_to(function);
        if got != *n {
            problems.push(format!("{got} calls to {function}, expected {n}"));
        }
    }
    if let Some(s) = e.elapsed_seconds {
        let elapsed = (record.stop_time.unwrap_or(t0()) - t0()).num_seconds();
        if elapsed != s {
            problems.push(format!("{elapsed} s elapsed, expected {s}"));
        }
    }
    if let Some(want) = &e.events {
        let got = event_types(&history, "");
        if &got != want {
            problems.push(format!("top-level events {got:?}, expected {want:?}"));
        }
    }
    // Event ids are 1, 2, 3… in order.
    if history
        .iter()
        .enumerate()
        .any(|(i, ev)| ev.id != i as u64 + 1)
    {
        problems.push("history event ids are not consecutive".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n    {}",
            case.description,
            problems.join("\n    ")
        ))
    }
}

#[tokio::test]
async fn conformance_suite() {
    conformance().await;
}

/// The same suite with the executor's frames and the test on different threads: `settled`
/// and `next_timer` must never report a parked frame as idle before its timer is pending,
/// or the test would stop moving the clock while the execution still waits (the Map hang
/// once seen under a multi-threaded runtime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_many_threads() {
    conformance().await;
}

const MAP_OF_WAITS: &str = r#"{
  "StartAt": "Items",
  "States": {
    "Items": {
      "Type": "Map",
      "ItemProcessor": {
        "StartAt": "Pause",
        "States": {
          "Pause": {"Type": "Wait", "SecondsPath": "$", "Next": "Done"},
          "Done": {"Type": "Pass", "End": true}
        }
      },
      "Next": "After"
    },
    "After": {"Type": "Wait", "Seconds": 1, "End": true}
  }
}"#;

/// Map iterations parking on timers while the test, on another thread, waits for the
/// execution to settle and jumps the clock to the next timer, until nothing is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_iterations_parking_on_timers_never_look_idle_too_early() {
    const ITEMS: i64 = 50;
    const EXECUTIONS: usize = 10;
    let h = harness(HashMap::new());
    h.executor
        .register_json("Waits", MAP_OF_WAITS, &HashMap::new())
        .expect("valid definition");
    let input = json!((1..=ITEMS).map(|i| i % 7 + 1).collect::<Vec<_>>());
    for n in 0..EXECUTIONS {
        let id = h
            .executor
            .start("Waits", &format!("waits-{n}"), input.clone())
            .await
            .expect("starts");
        drain_timers(&h, &id).await;
        let record = h
            .executor
            .describe(&id)
            .await
            .expect("describe")
            .expect("exists");
        let history = h.executor.execution_history(&id).await.expect("history");
        let tail: Vec<String> = history
            .iter()
            .rev()
            .take(6)
            .map(|e| format!("{} {} {:?}", e.scope, e.event_type, e.event))
            .collect();
        assert_eq!(
            record.status,
            ExecutionStatus::Succeeded,
            "execution {n} stopped moving: {:?} {:?}; next timer {:?}, last events {tail:#?}",
            record.status,
            record.error,
            h.executor.next_timer()
        );
    }
}

async fn conformance() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/asl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/asl exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the suite has {} cases", files.len());
    let mut failures = Vec::new();
    // ASL_CASE=name runs one case (while debugging).
    let only = std::env::var("ASL_CASE").ok();
    for f in &files {
        let name = f
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        eprintln!("case {name}");
        if let Err(e) = run_case(f).await {
            failures.push(format!(
                "{}: {e}",
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn replies(v: Value) -> HashMap<String, Vec<Value>> {
    serde_json::from_value(v).expect("replies literal")
}

#[tokio::test]
async fn start_is_idempotent_per_name_and_validates() {
    let h = harness(HashMap::new());
    h.executor
        .register_json(
            "m",
            r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":5,"End":true}}}"#,
            &HashMap::new(),
        )
        .expect("valid");
    let a = h
        .executor
        .start("m", "n1", json!({"x": 1}))
        .await
        .expect("starts");
    let b = h
        .executor
        .start("m", "n1", json!({"x": 1.0}))
        .await
        .expect("same input: same execution");
    assert_eq!(a, b);
    assert!(h.executor.start("m", "n1", json!({"x": 2})).await.is_err());
    assert!(h.executor.start("nope", "n2", json!({})).await.is_err());
    assert!(h.executor.start("m", "bad name", json!({})).await.is_err());
    let e = h
        .executor
        .register_json(
            "bad",
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"x","End":true}}}"#,
            &HashMap::new(),
        )
        .expect_err("invalid resource");
    let text = e.to_string();
    assert!(
        text.contains("bad") && text.contains("'A'") && text.contains("Resource"),
        "{text}"
    );
}

#[tokio::test]
async fn kill_and_restart_resumes_waits_and_token_waits() {
    let h = harness(replies(json!({"approve": [{"output": "sent"}]})));
    let wait_def = r#"{"StartAt":"Hold","States":{
        "Hold":{"Type":"Wait","Seconds":3600,"Next":"Done"},
        "Done":{"Type":"Pass","Result":"woke","End":true}}}"#;
    let token_def = r#"{"StartAt":"Ask","States":{
        "Ask":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
               "Parameters":{"FunctionName":"approve","Payload":{"TaskToken.$":"$$.Task.Token","batch.$":"$.batch"}},
               "ResultPath":"$.approval","Next":"Done"},
        "Done":{"Type":"Succeed"}}}"#;
    h.executor
        .register_json("waiter", wait_def, &HashMap::new())
        .expect("valid");
    h.executor
        .register_json("approver", token_def, &HashMap::new())
        .expect("valid");
    let w = h
        .executor
        .start("waiter", "w1", json!({}))
        .await
        .expect("starts");
    let t = h
        .executor
        .start("approver", "t1", json!({"batch": 42}))
        .await
        .expect("starts");
    settle_all(&h.executor, &w).await;
    settle_all(&h.executor, &t).await;
    let token = h
        .script
        .token(0)
        .expect("the approval request carries a token");
    assert_eq!(h.script.calls_to("approve"), 1);
    // Crash: nothing more is written by the first executor.
    h.executor.halt();
    drop(h.executor);

    let restarted = harness::executor_on(h.db.clone(), h.clock.clone(), h.script.clone(), None);
    restarted
        .register_json("waiter", wait_def, &HashMap::new())
        .expect("valid");
    restarted
        .register_json("approver", token_def, &HashMap::new())
        .expect("valid");
    assert_eq!(restarted.resume_running().await.expect("resumes"), 2);
    settle_all(&restarted, &w).await;
    settle_all(&restarted, &t).await;
    // The token task was dispatched before the crash: it is not sent again.
    assert_eq!(h.script.calls_to("approve"), 1);
    restarted
        .send_task_success(&token, json!({"approved": true}))
        .await
        .expect("token still waits after the restart");
    let done = bounded("token execution", restarted.wait_finished(&t))
        .await
        .expect("finishes");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        done.output,
        Some(json!({"batch": 42, "approval": {"approved": true}}))
    );
    // The wait keeps its original deadline.
    h.clock.advance(Duration::seconds(3599));
    restarted.fire_due_timers();
    settle_all(&restarted, &w).await;
    assert_eq!(
        restarted
            .describe(&w)
            .await
            .expect("describe")
            .expect("exists")
            .status,
        ExecutionStatus::Running
    );
    h.clock.advance(Duration::seconds(1));
    restarted.fire_due_timers();
    let done = bounded("wait execution", restarted.wait_finished(&w))
        .await
        .expect("finishes");
    assert_eq!(done.output, Some(json!("woke")));
    // The history spans both processes without gaps.
    let history = restarted.execution_history(&w).await.expect("history");
    assert_eq!(states_in(&history, ""), vec!["Hold", "Done"]);
    assert!(
        history
            .iter()
            .enumerate()
            .all(|(i, e)| e.id == i as u64 + 1)
    );
    // A used token is refused.
    assert!(
        restarted
            .send_task_success(&token, json!({}))
            .await
            .is_err()
    );
    assert!(
        restarted
            .send_task_success("no-such-token", json!({}))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn ops_views_list_and_history() {
    let h = harness(replies(
        json!({"boom": [{"error": "Rejected", "cause": "row 3: bad CPF"}]}),
    ));
    h.executor
        .register_json(
            "ok",
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#,
            &HashMap::new(),
        )
        .expect("valid");
    h.executor
        .register_json(
            "bad",
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:boom","End":true}}}"#,
            &HashMap::new(),
        )
        .expect("valid");
    let a = h
        .executor
        .start("ok", "a", json!({}))
        .await
        .expect("starts");
    h.clock.advance(Duration::seconds(1));
    let b = h
        .executor
        .start("bad", "b", json!({}))
        .await
        .expect("starts");
    bounded("a", h.executor.wait_finished(&a))
        .await
        .expect("finishes");
    let failed = bounded("b", h.executor.wait_finished(&b))
        .await
        .expect("finishes");
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("Rejected"));
    let all = h
        .executor
        .list_executions(&Default::default())
        .await
        .expect("lists");
    assert_eq!(
        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["b", "a"]
    );
    let only_failed = h
        .executor
        .list_executions(&payops_local::workflows::ExecutionFilter {
            status: Some(ExecutionStatus::Failed),
            ..Default::default()
        })
        .await
        .expect("lists");
    assert_eq!(only_failed.len(), 1);
    assert_eq!(only_failed[0].id, b);
    let by_machine = h
        .executor
        .list_executions(&payops_local::workflows::ExecutionFilter {
            state_machine: Some("ok".into()),
            ..Default::default()
        })
        .await
        .expect("lists");
    assert_eq!(by_machine.len(), 1);
    let history = h.executor.execution_history(&b).await.expect("history");
    assert_eq!(
        event_types(&history, ""),
        vec![
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskFailed",
            "ExecutionFailed"
        ]
    );
    assert!(history.iter().any(|e| e.event.is_failure()));
    // Serialisable for the HTTP view.
    let text = serde_json::to_string(&history).expect("serialises");
    assert!(text.contains("\"type\":\"TaskFailed\""), "{text}");
    assert!(h.executor.execution_history("arn:nope").await.is_err());
}

mod distributed {
    use super::*;
    use bytes::Bytes;
    use payops_app::ports::{Blobs, ManualClock};
    use payops_local::store::LocalStore;
    use std::sync::Arc;

    struct Setup {
        executor: Executor,
        store: LocalStore,
        script: Arc<harness::Script>,
        _dir: tempfile::TempDir,
    }

    fn setup(replies: HashMap<String, Vec<Value>>) -> Setup {
        let dir = tempfile::tempdir().expect("temporary directory");
        let clock = Arc::new(ManualClock::new(t0()));
        let store = LocalStore::open(dir.path(), clock.clone()).expect("store opens");
        let script = Arc::new(harness::Script::new(replies));
        let executor = harness::executor_on(
            store.db().clone(),
            clock,
            script.clone(),
            Some(Arc::new(store.clone())),
        );
        Setup {
            executor,
            store,
            script,
            _dir: dir,
        }
    }

    async fn read_json(blobs: &dyn Blobs, key: &str) -> Value {
        let blob = blobs
            .get(key)
            .await
            .expect("reads")
            .unwrap_or_else(|| panic!("{key} exists"));
        serde_json::from_slice(&blob.body).expect("JSON object")
    }

    #[tokio::test]
    async fn csv_item_reader_tolerance_and_result_writer() {
        let s = setup(replies(json!({"validate": [{
            "match": [{"payload": {"row": {"id": "3", "amount": "x"}, "batch": "b1"},
                       "reply": {"error": "Rejected", "cause": "line 4: amount 'x' is not a number"}}],
            "default": {"echo": true}}]})));
        s.store
            .blobs("inbox")
            .put(
                "debts/client-a.csv",
                Bytes::from("id,amount\n1,10.00\n2,\"1.234,56\"\n3,x\n"),
                "text/csv",
            )
            .await
            .expect("upload");
        let definition = json!({"StartAt": "Rows", "States": {"Rows": {
            "Type": "Map", "MaxConcurrency": 2, "ToleratedFailureCount": 1, "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                           "Parameters": {"Bucket": "inbox", "Key.$": "$.key"},
                           "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}},
            "ItemSelector": {"row.$": "$$.Map.Item.Value", "batch.$": "$.batch"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Validate", "States": {"Validate": {"Type": "Task",
                    "Resource": "arn:aws:lambda:us-east-1:123456789012:function:validate", "End": true}}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                             "Parameters": {"Bucket": "reports", "Prefix": "map-runs"}}}}});
        s.executor
            .register_json("intake", &definition.to_string(), &HashMap::new())
            .expect("valid");
        let id = s
            .executor
            .start(
                "intake",
                "file-1",
                json!({"key": "debts/client-a.csv", "batch": "b1"}),
            )
            .await
            .expect("starts");
        let done = bounded("distributed map", s.executor.wait_finished(&id))
            .await
            .expect("finishes");
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.cause);
        assert_eq!(s.script.calls_to("validate"), 3);
        let output = done.output.expect("output");
        assert_eq!(output["ResultWriterDetails"]["Bucket"], json!("reports"));
        let manifest_key = output["ResultWriterDetails"]["Key"]
            .as_str()
            .expect("key")
            .to_owned();
        assert!(
            manifest_key.starts_with("map-runs/") && manifest_key.ends_with("/manifest.json"),
            "{manifest_key}"
        );
        let reports = s.store.blobs("reports");
        let manifest = read_json(reports.as_ref(), &manifest_key).await;
        let ok_key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
            .as_str()
            .expect("succeeded file")
            .to_owned();
        let failed_key = manifest["ResultFiles"]["FAILED"][0]["Key"]
            .as_str()
            .expect("failed file")
            .to_owned();
        let ok = read_json(reports.as_ref(), &ok_key).await;
        let failed = read_json(reports.as_ref(), &failed_key).await;
        assert_eq!(ok.as_array().map(Vec::len), Some(2));
        assert_eq!(failed[0]["Error"], json!("Rejected"));
        assert!(
            failed[0]["Cause"]
                .as_str()
                .is_some_and(|c| c.contains("line 4"))
        );
        // The CSV field with a decimal comma arrived intact.
        let outputs: Vec<Value> = ok
            .as_array()
            .expect("array")
            .iter()
            .map(|e| {
                serde_json::from_str(e["Output"].as_str().expect("output text")).expect("JSON")
            })
            .collect();
        assert!(
            outputs.contains(&json!({"row": {"id": "2", "amount": "1.234,56"}, "batch": "b1"}))
        );
        let history = s.executor.execution_history(&id).await.expect("history");
        assert_eq!(
            history
                .iter()
                .filter(|e| e.event_type == "MapIterationFailed")
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn list_objects_reader_and_item_batcher() {
        let s = setup(HashMap::new());
        let inbox = s.store.blobs("inbox");
        for key in ["drop/a.xml", "drop/b.xml", "drop/c.xml", "other/d.xml"] {
            inbox
                .put(key, Bytes::from("<x/>"), "application/xml")
                .await
                .expect("upload");
        }
        let definition = json!({"StartAt": "Files", "States": {"Files": {
            "Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "inbox", "Prefix": "drop/"}},
            "ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "size.$": "$$.Map.Item.Value.Size"},
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"source": "sftp"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Count", "States": {"Count": {"Type": "Pass",
                    "Parameters": {"n.$": "States.ArrayLength($.Items)", "first.$": "$.Items[0].key", "source.$": "$.BatchInput.source"},
                    "End": true}}}}}});
        s.executor
            .register_json("files", &definition.to_string(), &HashMap::new())
            .expect("valid");
        let id = s
            .executor
            .start("files", "scan-1", json!({}))
            .await
            .expect("starts");
        let done = bounded("listing map", s.executor.wait_finished(&id))
            .await
            .expect("finishes");
        assert_eq!(
            done.output,
            Some(json!([
                {"n": 2, "first": "drop/a.xml", "source": "sftp"},
                {"n": 1, "first": "drop/c.xml", "source": "sftp"}
            ]))
        );
    }

    #[tokio::test]
    async fn missing_object_fails_with_item_reader_failed() {
        let s = setup(HashMap::new());
        let definition = json!({"StartAt": "Rows", "States": {"Rows": {
            "Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "inbox", "Key": "nope.json"},
                           "ReaderConfig": {"InputType": "JSON"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
        s.executor
            .register_json("m", &definition.to_string(), &HashMap::new())
            .expect("valid");
        let id = s.executor.start("m", "x", json!({})).await.expect("starts");
        let done = bounded("map", s.executor.wait_finished(&id))
            .await
            .expect("finishes");
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("States.ItemReaderFailed"));
        assert!(
            done.cause
                .as_deref()
                .is_some_and(|c| c.contains("nope.json"))
        );
    }
}

#[tokio::test]
async fn restart_inside_map_resumes_parked_iterations_only() {
    let h = harness(replies(json!({"ask": [{"output": "queued"}]})));
    let def = r#"{"StartAt":"Each","States":{"Each":{"Type":"Map","MaxConcurrency":2,"End":true,
        "ItemProcessor":{"StartAt":"Ask","States":{
            "Ask":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
                   "Parameters":{"FunctionName":"ask","Payload":{"TaskToken.$":"$$.Task.Token","item.$":"$"}},"Next":"Tag"},
            "Tag":{"Type":"Pass","Parameters":{"answer.$":"$"},"End":true}}}}}}"#;
    h.executor
        .register_json("m", def, &HashMap::new())
        .expect("valid");
    let id = h
        .executor
        .start("m", "r1", json!([10, 20, 30]))
        .await
        .expect("starts");
    settle_all(&h.executor, &id).await;
    // Two iterations wait on tokens; the third has not started (MaxConcurrency 2).
    assert_eq!(h.script.calls_to("ask"), 2);
    let t0_token = h.script.token(0).expect("token 0");
    h.executor
        .send_task_success(&t0_token, json!("A"))
        .await
        .expect("accepted");
    settle_all(&h.executor, &id).await;
    assert_eq!(h.script.calls_to("ask"), 3);
    h.executor.halt();

    let again = harness::executor_on(h.db.clone(), h.clock.clone(), h.script.clone(), None);
    again
        .register_json("m", def, &HashMap::new())
        .expect("valid");
    assert_eq!(again.resume_running().await.expect("resumes"), 1);
    settle_all(&again, &id).await;
    // Nothing is asked twice: the two waiting iterations keep their tokens.
    assert_eq!(h.script.calls_to("ask"), 3);
    let tokens: Vec<String> = (1..3).map(|i| h.script.token(i).expect("token")).collect();
    again
        .send_task_success(&tokens[1], json!("C"))
        .await
        .expect("accepted");
    again
        .send_task_success(&tokens[0], json!("B"))
        .await
        .expect("accepted");
    let done = bounded("map", again.wait_finished(&id))
        .await
        .expect("finishes");
    assert_eq!(
        done.output,
        Some(json!([{"answer": "A"}, {"answer": "B"}, {"answer": "C"}]))
    );
}

#[tokio::test]
async fn stop_aborts_a_running_execution() {
    let h = harness(HashMap::new());
    h.executor
        .register_json(
            "w",
            r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":100,"End":true}}}"#,
            &HashMap::new(),
        )
        .expect("valid");
    let id = h
        .executor
        .start("w", "s1", json!({}))
        .await
        .expect("starts");
    settle_all(&h.executor, &id).await;
    h.executor
        .stop(&id, "Operator", "stopped by ops")
        .await
        .expect("stops");
    let rec = h
        .executor
        .describe(&id)
        .await
        .expect("describe")
        .expect("exists");
    assert_eq!(rec.status, ExecutionStatus::Aborted);
    assert_eq!(rec.error.as_deref(), Some("Operator"));
    let history = h.executor.execution_history(&id).await.expect("history");
    assert_eq!(
        history.last().map(|e| e.event_type.as_ref()),
        Some("ExecutionAborted")
    );
}

/// Replaces every `${Name}` with a plausible value of its kind, for load-time validation
/// without the SAM template's real values.
fn placeholder_substitutions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        if name.contains("Queue") {
            out.push_str(&format!("http://127.0.0.1:3000/000000000000/{name}"));
        } else if name.contains("Table") || name.contains("Bucket") || name.contains("Bus") {
            out.push_str(name);
        } else {
            out.push_str(&format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{name}"
            ));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_repository_definition_loads_strictly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../statemachines");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut problems = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable definition");
        if let Err(e) =
            payops_core::asl::StateMachine::from_json_str(&placeholder_substitutions(&text))
        {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn register_file_names_the_file_state_and_reason() {
    let h = harness(HashMap::new());
    let file = h.dir.path().join("payroll.asl.json");
    std::fs::write(
        &file,
        r#"{"StartAt":"Approve","States":{"Approve":{"Type":"Task","Resource":"${ApproveFunctionArn}","Next":"Missing"}}}"#,
    )
    .expect("writes");
    let subs: std::collections::BTreeMap<String, String> = [(
        "ApproveFunctionArn".to_string(),
        "arn:aws:lambda:us-east-1:000000000000:function:approve".to_string(),
    )]
    .into();
    let e = h
        .executor
        .register_file("payroll", &file, &subs)
        .expect_err("dangling Next");
    let text = e.to_string();
    assert!(
        text.contains("payroll.asl.json") && text.contains("'Approve'") && text.contains("Missing"),
        "{text}"
    );
    std::fs::write(
        &file,
        r#"{"StartAt":"Approve","States":{"Approve":{"Type":"Task","Resource":"${ApproveFunctionArn}","End":true}}}"#,
    )
    .expect("writes");
    h.executor
        .register_file("payroll", &file, &subs)
        .expect("valid now");
    let id = h
        .executor
        .start("payroll", "p1", json!({"n": 1}))
        .await
        .expect("starts");
    let done = bounded("payroll", h.executor.wait_finished(&id))
        .await
        .expect("finishes");
    assert_eq!(done.output, Some(json!({"n": 1})));
    assert_eq!(h.script.calls_to("approve"), 1);
}
