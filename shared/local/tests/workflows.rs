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
    for exec in [&h.executor] {
        exec.register_json("waiter", wait_def, &HashMap::new())
            .expect("valid");
        exec.register_json("approver", token_def, &HashMap::new())
            .expect("valid");
    }
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
