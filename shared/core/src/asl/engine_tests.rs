//! Engine tests through a minimal synchronous driver: tasks are a closure, waits advance a
//! virtual clock, Parallel branches and Map items run one after another.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::context::{ExecutionInfo, StateContext};
use super::definition::{Block, StateKind, StateMachine};
use super::engine::{self, Attempt, MapItems, Step};
use super::entropy::SeededEntropy;
use super::errors::Failure;
use super::events::EventKind;
use super::resource::Resource;
use super::retry::RetryCounts;

type TaskFn<'a> = dyn FnMut(&Resource, &Value) -> Result<Value, Failure> + 'a;

struct Driver<'a, 't> {
    exec: std::rc::Rc<ExecutionInfo>,
    now: DateTime<Utc>,
    entropy: SeededEntropy,
    visited: Vec<String>,
    events: Vec<EventKind>,
    tasks: &'a mut TaskFn<'t>,
}

impl Driver<'_, '_> {
    fn run_block(&mut self, block: &Block, input: Value) -> Result<Value, Failure> {
        let exec = self.exec.clone();
        let mut cur = block.start_at;
        let mut input = input;
        loop {
            let state = block.state(cur);
            self.visited.push(state.name.clone());
            engine::enter(state, &input, &mut self.events);
            let mut retries = RetryCounts::default();
            let entered = self.now;
            let step = loop {
                let ctx = StateContext {
                    execution: &exec,
                    state_name: &state.name,
                    entered_time: entered,
                    retry_count: retries.total(),
                    task_token: Some("token-1"),
                    map_item: None,
                };
                let attempt = engine::attempt(
                    state,
                    &input,
                    &ctx,
                    &self.entropy,
                    self.now,
                    &mut retries,
                    &mut self.events,
                );
                let outcome = match attempt {
                    Attempt::Done(step) => break step,
                    Attempt::Retry(plan) => {
                        self.now += Duration::milliseconds(plan.delay_ms as i64);
                        continue;
                    }
                    Attempt::Wait { until, then } => {
                        self.now = self.now.max(until);
                        break engine::finish_wait(state, then, &mut self.events);
                    }
                    Attempt::Task(req) => (self.tasks)(req.resource, &req.parameters),
                    Attempt::Parallel {
                        input: branch_input,
                        ..
                    } => {
                        let StateKind::Parallel(p) = &state.kind else {
                            unreachable!()
                        };
                        p.branches
                            .iter()
                            .map(|b| self.run_block(b, branch_input.clone()))
                            .collect::<Result<Vec<_>, _>>()
                            .map(Value::Array)
                    }
                    Attempt::Map(run) => {
                        let StateKind::Map(m) = &state.kind else {
                            unreachable!()
                        };
                        let MapItems::Ready(items) = run.items else {
                            unreachable!()
                        };
                        let total = items.len();
                        let mut results = Vec::new();
                        let mut failed = 0;
                        let mut outcome = None;
                        for (i, item) in items.into_iter().enumerate() {
                            let item_input = engine::map_item_input(
                                state,
                                &run.input,
                                i,
                                item,
                                &ctx,
                                &self.entropy,
                            )
                            .expect("item selector evaluates");
                            match self.run_block(&m.processor, item_input) {
                                Ok(v) => results.push(v),
                                Err(f) => {
                                    failed += 1;
                                    results.push(Value::Null);
                                    if run.tolerance.exceeded(failed, total) {
                                        outcome =
                                            Some(Err(if run.tolerance == Default::default() {
                                                f
                                            } else {
                                                engine::tolerance_failure(failed, total)
                                            }));
                                        break;
                                    }
                                }
                            }
                        }
                        outcome.unwrap_or(Ok(Value::Array(results)))
                    }
                };
                match engine::complete(
                    state,
                    &input,
                    outcome,
                    &mut retries,
                    &ctx,
                    &self.entropy,
                    &mut self.events,
                ) {
                    Attempt::Done(step) => break step,
                    Attempt::Retry(plan) => {
                        self.now += Duration::milliseconds(plan.delay_ms as i64)
                    }
                    other => panic!("complete returned {other:?}"),
                }
            };
            match step {
                Step::Next { state, output } => {
                    cur = state;
                    input = output;
                }
                Step::End { output } => return Ok(output),
                Step::Fail(f) => return Err(f),
            }
        }
    }
}

struct Outcome {
    result: Result<Value, Failure>,
    visited: Vec<String>,
    events: Vec<EventKind>,
    elapsed: Duration,
}

fn run(definition: Value, input: Value, tasks: &mut TaskFn<'_>) -> Outcome {
    let sm = StateMachine::from_value(&definition).expect("definition is valid");
    let start = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
    let mut d = Driver {
        exec: std::rc::Rc::new(ExecutionInfo {
            id: "arn:exec:1".into(),
            name: "1".into(),
            state_machine_id: "arn:sm".into(),
            state_machine_name: "sm".into(),
            role_arn: "arn:role".into(),
            start_time: start,
            input: input.clone(),
        }),
        now: start,
        entropy: SeededEntropy::new(3),
        visited: Vec::new(),
        events: Vec::new(),
        tasks,
    };
    let result = d.run_block(&sm.root, input);
    Outcome {
        result,
        visited: d.visited,
        events: d.events,
        elapsed: d.now - start,
    }
}

fn no_tasks() -> impl FnMut(&Resource, &Value) -> Result<Value, Failure> {
    |r, _| panic!("unexpected task {}", r.arn)
}

#[test]
fn pass_data_flow() {
    let out = run(
        json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "InputPath": "$.in", "Parameters": {"x.$": "$.v", "k": 1}, "ResultPath": "$.res", "Next": "B"},
            "B": {"Type": "Pass", "Result": [1, 2], "ResultPath": null, "OutputPath": "$.res", "Next": "C"},
            "C": {"Type": "Pass", "ResultPath": "$.copy.deep", "End": true}
        }}),
        json!({"in": {"v": "hello"}, "other": true}),
        &mut no_tasks(),
    );
    assert_eq!(
        out.result,
        Ok(json!({"x": "hello", "k": 1, "copy": {"deep": {"x": "hello", "k": 1}}}))
    );
    assert_eq!(out.visited, vec!["A", "B", "C"]);
}

#[test]
fn choice_default_and_no_match() {
    let def = |default: bool| {
        let mut d = json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [
                {"And": [{"Variable": "$.n", "NumericGreaterThan": 10}, {"Variable": "$.s", "StringMatches": "a*"}], "Next": "Big"}
            ]},
            "Big": {"Type": "Succeed"},
            "Small": {"Type": "Pass", "Result": "small", "End": true}
        }});
        if default {
            d["States"]["C"]["Default"] = json!("Small");
        }
        d
    };
    assert_eq!(
        run(def(true), json!({"n": 11, "s": "abc"}), &mut no_tasks()).visited,
        vec!["C", "Big"]
    );
    assert_eq!(
        run(def(true), json!({"n": 1, "s": "abc"}), &mut no_tasks()).result,
        Ok(json!("small"))
    );
    // Without Default, "Small" is unreachable, so replace it with a catch-free failure case.
    let mut d = def(false);
    d["States"].as_object_mut().expect("object").remove("Small");
    let err = run(d, json!({"n": 1, "s": "x"}), &mut no_tasks())
        .result
        .expect_err("no match");
    assert_eq!(err.error, "States.NoChoiceMatched");
}

#[test]
fn retry_then_catch_in_order() {
    let mut calls = 0;
    let mut task = |_: &Resource, _: &Value| {
        calls += 1;
        Err(Failure::new("Retryable", format!("attempt {calls}")))
    };
    let out = run(
        json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                  "Retry": [{"ErrorEquals": ["Rejected"], "MaxAttempts": 5},
                            {"ErrorEquals": ["Retryable"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2}],
                  "Catch": [{"ErrorEquals": ["Rejected"], "Next": "Wrong"},
                            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Handled"}],
                  "End": true},
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
            "Handled": {"Type": "Pass", "End": true}
        }}),
        json!({"id": 1}),
        &mut task,
    );
    assert_eq!(
        out.result,
        Ok(json!({"id": 1, "err": {"Error": "Retryable", "Cause": "attempt 3"}}))
    );
    assert_eq!(out.visited, vec!["T", "Handled"]);
    // Two retries: 1 s then 2 s of backoff.
    assert_eq!(out.elapsed, Duration::seconds(3));
    let kinds: Vec<&str> = out.events.iter().map(EventKind::type_name).collect();
    assert_eq!(
        kinds,
        vec![
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskFailed",
            "RetryScheduled",
            "TaskScheduled",
            "TaskStarted",
            "TaskFailed",
            "RetryScheduled",
            "TaskScheduled",
            "TaskStarted",
            "TaskFailed",
            "ErrorCaught",
            "TaskStateExited",
            "PassStateEntered",
            "PassStateExited"
        ]
    );
}

#[test]
fn task_result_selector_result_path_output_path() {
    let mut task = |r: &Resource, p: &Value| {
        assert_eq!(r.arn, "arn:aws:states:::lambda:invoke");
        Ok(
            json!({"StatusCode": 200, "Payload": {"sum": p["Payload"]["a"].as_i64().unwrap_or(0) + 1}}),
        )
    };
    let out = run(
        json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Parameters": {"FunctionName": "add", "Payload": {"a.$": "$.a"}},
                  "ResultSelector": {"value.$": "$.Payload.sum"},
                  "ResultPath": "$.result", "OutputPath": "$.result", "End": true}
        }}),
        json!({"a": 41}),
        &mut task,
    );
    assert_eq!(out.result, Ok(json!({"value": 42})));
}

#[test]
fn runtime_errors_are_not_caught() {
    let out = run(
        json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "InputPath": "$.missing",
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}], "End": true},
            "H": {"Type": "Succeed"}
        }}),
        json!({}),
        &mut no_tasks(),
    );
    assert_eq!(out.result.expect_err("runtime").error, "States.Runtime");
}

#[test]
fn parallel_and_failing_branch() {
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "ResultSelector": {"a.$": "$[0]", "b.$": "$[1].v"}, "End": true,
              "Catch": [{"ErrorEquals": ["Boom"], "Next": "Caught"}],
              "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$.x", "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 0, "Next": "Bad"}], "Default": "Good"},
                                            "Bad": {"Type": "Fail", "Error": "Boom", "CausePath": "States.Format('x was {}', $.x)"},
                                            "Good": {"Type": "Pass", "Parameters": {"v.$": "$.x"}, "End": true}}}
              ]},
        "Caught": {"Type": "Pass", "End": true}
    }});
    assert_eq!(
        run(def.clone(), json!({"x": 5}), &mut no_tasks()).result,
        Ok(json!({"a": 5, "b": 5}))
    );
    let out = run(def, json!({"x": 0}), &mut no_tasks());
    assert_eq!(out.result, Ok(json!({"Error": "Boom", "Cause": "x was 0"})));
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, EventKind::ParallelStateFailed { error, .. } if error == "Boom"))
    );
}

#[test]
fn map_selector_and_tolerance() {
    let def = |tolerance: Value| {
        let mut m = json!({"Type": "Map", "ItemsPath": "$.items", "End": true,
            "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "k.$": "$.k"},
            "ItemProcessor": {"StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [{"Variable": "$.v", "NumericLessThan": 0, "Next": "Neg"}], "Default": "Ok"},
                "Neg": {"Type": "Fail", "Error": "Negative"},
                "Ok": {"Type": "Pass", "End": true}}}});
        if let (Some(m), Some(t)) = (m.as_object_mut(), tolerance.as_object()) {
            m.extend(t.clone());
        }
        json!({"StartAt": "M", "States": {"M": m}})
    };
    let ok = run(
        def(json!({})),
        json!({"items": [1, 2], "k": "x"}),
        &mut no_tasks(),
    );
    assert_eq!(
        ok.result,
        Ok(json!([{"i": 0, "v": 1, "k": "x"}, {"i": 1, "v": 2, "k": "x"}]))
    );
    let strict = run(
        def(json!({})),
        json!({"items": [1, -2, 3], "k": "x"}),
        &mut no_tasks(),
    );
    assert_eq!(strict.result.expect_err("fails").error, "Negative");
    let tolerant = run(
        def(json!({"ToleratedFailurePercentage": 50})),
        json!({"items": [1, -2, 3], "k": "x"}),
        &mut no_tasks(),
    );
    assert!(tolerant.result.is_ok());
    let over = run(
        def(json!({"ToleratedFailureCount": 1})),
        json!({"items": [-1, -2, 3], "k": "x"}),
        &mut no_tasks(),
    );
    assert_eq!(
        over.result.expect_err("over").error,
        "States.ExceedToleratedFailureThreshold"
    );
}

#[test]
fn waits_compute_wake_up_time() {
    let def = json!({"StartAt": "W1", "States": {
        "W1": {"Type": "Wait", "Seconds": 10, "Next": "W2"},
        "W2": {"Type": "Wait", "SecondsPath": "$.s", "Next": "W3"},
        "W3": {"Type": "Wait", "TimestampPath": "$.at", "End": true}
    }});
    let out = run(
        def.clone(),
        json!({"s": 5, "at": "2023-11-14T23:00:00Z"}),
        &mut no_tasks(),
    );
    assert!(out.result.is_ok());
    // 22:13:20 start, +10 s, +5 s, then until 23:00:00.
    assert_eq!(out.elapsed, Duration::seconds(2800));
    let bad = run(def, json!({"s": -1, "at": "x"}), &mut no_tasks());
    assert_eq!(
        bad.result.expect_err("negative seconds").error,
        "States.Runtime"
    );
}

#[test]
fn fail_state_paths() {
    let out = run(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}}),
        json!({"e": "Custom", "c": "because"}),
        &mut no_tasks(),
    );
    assert_eq!(out.result, Err(Failure::new("Custom", "because")));
}
