//! Differential test of the local ASL executor against an independent interpreter: moto's
//! Step Functions parser mode. Every conformance case of `payops-local`
//! (`shared/local/tests/asl/*.json`) that moto can run is executed by both, with the same
//! scripted Lambda replies, and the two must agree on the final status, the error name, the
//! output and the states entered (in order at the top level; as a multiset over all scopes,
//! since Parallel branches and Map items interleave differently).
//!
//! Lambda replies reach moto through `POST /moto-api/static/lambda-simple/response`, a single
//! queue per region consumed by invocations in order: the local run goes first, and the reply
//! each of its calls got is queued for moto in the same order.

#[path = "../../local/tests/asl/harness.rs"]
mod harness;
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::{ExecutionStatus as SfnStatus, HistoryEvent as SfnEvent};
use harness::{bounded, harness};
use payops_core::asl::events::EventKind;
use payops_local::workflows::{ExecutionStatus, HistoryEvent};
use serde_json::{Value, json};
use support::{http, moto, unique};

/// Cases moto cannot run, with the reason. Every other case is compared.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "catch_task_failed_wildcard",
        "a Lambda reply is an error: moto's lambda-simple always succeeds",
    ),
    (
        "map_tolerance_exceeded",
        "a Lambda reply is an error: moto's lambda-simple always succeeds",
    ),
    (
        "map_tolerated_failure_percentage",
        "a Lambda reply is an error: moto's lambda-simple always succeeds",
    ),
    (
        "retry_backoff_then_success",
        "a Lambda reply is an error: moto's lambda-simple always succeeds",
    ),
    (
        "retry_first_match_wins_catch_order",
        "a Lambda reply is an error: moto's lambda-simple always succeeds",
    ),
    (
        "retry_max_delay_and_exhaustion",
        "a Lambda reply is an error: moto's lambda-simple always succeeds",
    ),
    (
        "task_timeout_caught",
        "a Lambda that hangs past TimeoutSeconds: lambda-simple answers at once",
    ),
    (
        "execution_timeout",
        "execution TimeoutSeconds driven by a manual clock (real time in moto)",
    ),
    (
        "wait_seconds_and_paths",
        "Waits of 30 real seconds in moto (the local run uses a manual clock)",
    ),
    (
        "token_heartbeat_keeps_alive",
        ".waitForTaskToken with heartbeats on a manual clock; lambda-simple swallows the token",
    ),
    (
        "token_heartbeat_timeout",
        ".waitForTaskToken with HeartbeatSeconds on a manual clock",
    ),
    (
        "token_lambda_success",
        ".waitForTaskToken: the token goes to a Lambda, which lambda-simple does not expose",
    ),
    (
        "token_sqs_failure_caught",
        ".waitForTaskToken over SQS completed by a scripted step of the local harness",
    ),
    (
        "token_timeout",
        ".waitForTaskToken with TimeoutSeconds on a manual clock",
    ),
    (
        "service_integrations",
        "the local harness answers SQS/EventBridge/DynamoDB with canned replies (msg-1, ev-0, \
         a fixed item) that real services (and moto) do not reproduce",
    ),
];

/// Cases where moto and the local executor disagree and the local executor follows the ASL
/// specification (or AWS); the test asserts they still differ, so the list stays honest.
const KNOWN_MOTO_DIFFERENCES: &[(&str, &str)] = &[
    (
        "choice_comparisons",
        "moto cannot compare a timestamp with a numeric offset (2024-01-01T01:00:00+01:00: \
         TypeError, States.Runtime); RFC 3339, which the spec requires, allows offsets",
    ),
    (
        "context_object",
        "$$ values are environment-specific (execution ARN, state machine name, start time on \
         a manual clock vs real time); moto also formats $$.Execution.StartTime with \
         microseconds and +00:00 where AWS uses milliseconds and Z, as the local executor does",
    ),
    (
        "choice_default_and_no_match",
        "no rule matches and no Default: the spec raises States.NoChoiceMatched, moto \
         States.Runtime",
    ),
    (
        "choice_missing_variable_is_runtime_error",
        "a Choice Variable path that is not in the input is a States.Runtime failure in AWS \
         (\"The choice state's condition path references an invalid value\"); moto treats it \
         as no match and takes the Default",
    ),
    (
        "choice_type_tests",
        "moto's IsTimestamp rejects fractional seconds (2024-02-29T10:00:00.123Z, valid RFC \
         3339) and its StringMatches ignores the spec's \\\\* escape of a literal asterisk",
    ),
    (
        "intrinsic_failure_caught",
        "an out-of-range States.ArrayGetItem must raise States.IntrinsicFailure (catchable); \
         moto raises a generic 'Exception' that the Catch does not match",
    ),
    (
        "intrinsics",
        "moto's parser rejects the definition: States.MathAdd with a decimal argument (0.01) \
         hits an AttributeError in its intrinsic grammar",
    ),
    (
        "map_items_path_not_array",
        "ItemsPath on an object: the local executor follows the States Language spec (must be \
         an array: uncatchable States.Runtime); moto raises a catchable \
         States.QueryEvaluationError. NB: current AWS docs say a JSONPath Map over an object \
         iterates its key-value pairs, so neither matches today's AWS",
    ),
    (
        "parallel_branches_result_selector",
        "moto's JSONPath returns a list for the definite path $[1].d in a ResultSelector \
         ({\"d\": [8]}); a Reference Path selects a single value (8)",
    ),
    (
        "pass_result_path_array_index",
        "moto parses numbers as doubles: 12345678901234567890.12 comes back as \
         1.2345678901234567e19; the local executor keeps the number exact (money)",
    ),
    (
        "result_path_match_failure_caught",
        "a ResultPath that cannot be applied must raise States.ResultPathMatchFailure \
         (catchable); moto raises a generic 'Exception' that the Catch does not match",
    ),
];

/// Cases whose nested states are compared only at the top level, with the reason: which
/// nested states are entered is a race in any interpreter.
const TOP_LEVEL_STATES_ONLY: &[(&str, &str)] = &[(
    "parallel_branch_failure_caught",
    "branch Bad fails at once and cancels branch Slow, which may or may not have been entered",
)];

/// Real-time bound on one moto execution (map_item_failure_without_tolerance retries after
/// a real 10 s interval in moto).
const MOTO_EXECUTION_TIMEOUT_MS: u64 = 15_000;
/// Pause between DescribeExecution polls of a running moto execution.
const MOTO_POLL_INTERVAL_MS: u64 = 50;
/// Most timer jumps of a local run.
const TIMER_STEPS_MAX: usize = 1_000;
/// Most characters of a moto error message kept in a report.
const ERROR_TEXT_MAX: usize = 300;
/// Most queued Lambda replies drained after a case.
const DRAIN_MAX: usize = 100;
/// The role the state machines and functions run as (moto checks it exists for Lambda).
const ROLE_NAME: &str = "payops-asl-differential";
const ACCOUNT_ID: &str = "123456789012";
/// The execution name on both sides (each case has its own state machine on moto).
const LOCAL_EXECUTION_NAME: &str = "run-1";

/// The parts of a conformance case both interpreters use.
#[derive(Debug)]
struct Case {
    definition: Value,
    input: Value,
    /// Scripted replies per Lambda function name.
    functions: HashMap<String, Vec<Value>>,
}

impl Case {
    fn parse(text: &str) -> Result<Case, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let functions = match v.get("functions") {
            None => HashMap::new(),
            Some(f) => serde_json::from_value(f.clone()).map_err(|e| format!("functions: {e}"))?,
        };
        Ok(Case {
            definition: v.get("definition").cloned().ok_or("no definition")?,
            input: v.get("input").cloned().ok_or("no input")?,
            functions,
        })
    }
}

/// What one interpreter made of a case.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    status: String,
    error: Option<String>,
    output: Option<Value>,
    /// States entered at the top level, in order.
    top_states: Vec<String>,
    /// States entered in every scope, sorted.
    all_states: Vec<String>,
}

/// The local run: the outcome and the reply each Lambda call got, in call order.
async fn run_local(case: &Case, answer: Option<&TokenAnswer>) -> (Outcome, Vec<Reply>) {
    let h = harness(case.functions.clone());
    h.executor
        .register_json("case", &case.definition.to_string(), &HashMap::new())
        .expect("the conformance definitions are valid");
    let id = h
        .executor
        .start("case", LOCAL_EXECUTION_NAME, case.input.clone())
        .await
        .expect("the local execution starts");
    let mut answered = Vec::new();
    for _ in 0..TIMER_STEPS_MAX {
        bounded(
            "the local execution to settle",
            h.executor.wait_settled(&id),
        )
        .await;
        let record = h.executor.describe(&id).await.expect("describe");
        if record.is_none_or(|r| r.status != ExecutionStatus::Running) {
            break;
        }
        if let Some(answer) = answer
            && answer_local_tokens(&h, answer, &mut answered).await
        {
            continue;
        }
        match h.executor.next_timer() {
            Some(t) => {
                h.clock.set(t);
                h.executor.fire_due_timers();
            }
            None => break,
        }
    }
    let record = bounded("the local execution", h.executor.wait_finished(&id))
        .await
        .expect("the local execution finishes");
    let history = h.executor.execution_history(&id).await.expect("history");
    let calls = h.script.calls.lock().expect("lock").clone();
    let replies = scripted_replies(&case.functions, &calls);
    let outcome = Outcome {
        status: record.status.as_str().to_owned(),
        error: record.error.clone(),
        output: record.output.clone(),
        top_states: local_states(&history, Some("")),
        all_states: sorted(local_states(&history, None)),
    };
    (outcome, replies)
}

fn local_states(history: &[HistoryEvent], scope: Option<&str>) -> Vec<String> {
    history
        .iter()
        .filter(|e| scope.is_none_or(|s| e.scope == s))
        .filter_map(|e| match &e.event {
            EventKind::StateEntered { state, .. } => Some(state.clone()),
            _ => None,
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// What one scripted Lambda call returned.
#[derive(Debug, Clone)]
struct Reply {
    value: Value,
    /// The call returned its own payload.
    echo: bool,
}

/// The value each call returned, by the harness's rules (see `harness::Script::reply_for`):
/// the replies of a function are used in order, the last repeating; `match` picks by payload;
/// `echo` returns the payload; `output` is the value.
fn scripted_replies(
    functions: &HashMap<String, Vec<Value>>,
    calls: &[(String, Value)],
) -> Vec<Reply> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    calls
        .iter()
        .map(|(function, payload)| {
            let index = seen.entry(function.as_str()).or_default();
            let list = functions.get(function).cloned().unwrap_or_default();
            let mut reply = list
                .get(*index)
                .or_else(|| list.last())
                .cloned()
                .unwrap_or(json!({"echo": true}));
            *index += 1;
            if let Some(cases) = reply.get("match").and_then(Value::as_array) {
                reply = cases
                    .iter()
                    .find(|c| c.get("payload") == Some(payload))
                    .and_then(|c| c.get("reply"))
                    .or_else(|| reply.get("default"))
                    .cloned()
                    .unwrap_or(json!({"echo": true}));
            }
            match reply.get("echo") {
                Some(_) => Reply {
                    value: payload.clone(),
                    echo: true,
                },
                None => Reply {
                    value: reply.get("output").cloned().unwrap_or(Value::Null),
                    echo: false,
                },
            }
        })
        .collect()
}

/// Lambda function names a definition refers to (`arn:aws:lambda:…:function:NAME[:QUALIFIER]`
/// resources and `FunctionName` parameters), so they can be created on moto.
fn function_names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some((_, rest)) = s.split_once(":function:") {
                let name = rest.split(':').next().unwrap_or(rest).to_owned();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                if k == "FunctionName"
                    && let Some(s) = x.as_str()
                    && !s.contains(':')
                    && !out.contains(&s.to_owned())
                {
                    out.push(s.to_owned());
                }
                function_names(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| function_names(x, out)),
        _ => {}
    }
}

/// An HTTP/1.0 request to moto "signed" for `service` (moto routes on the credential scope
/// and does not check signatures).
fn aws_http(
    service: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let port = moto().port;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("moto answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("socket option");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn role_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}")
}

fn create_role() {
    let (status, body) = aws_http(
        "iam",
        "POST",
        "/",
        "application/x-www-form-urlencoded",
        &format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={ROLE_NAME}&AssumeRolePolicyDocument=%7B%7D"
        ),
    );
    assert!(
        status == 200 || body.contains("EntityAlreadyExists"),
        "CreateRole: {status} {body}"
    );
}

fn create_function(name: &str) {
    // An empty zip archive: lambda-simple never runs the code.
    let body = json!({
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": role_arn(),
        "Handler": "index.handler",
        "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
        "Publish": true,
    });
    let (status, text) = aws_http(
        "lambda",
        "POST",
        "/2015-03-31/functions",
        "application/json",
        &body.to_string(),
    );
    assert!(
        (200..300).contains(&status) || text.contains("ResourceConflict"),
        "CreateFunction {name}: {status} {text}"
    );
}

/// Queues the replies for moto, unless every call echoed its payload: moto's lambda-simple
/// echoes by itself when its queue is empty, whatever the order of concurrent calls (Map
/// items, Parallel branches), whereas queued replies are handed out in call order.
fn queue_replies(replies: &[Reply]) {
    if replies.iter().all(|r| r.echo) {
        return;
    }
    let results: Vec<String> = replies.iter().map(|r| r.value.to_string()).collect();
    let body = json!({"results": results, "region": "us-east-1"}).to_string();
    match http(
        moto().port,
        "POST",
        "/moto-api/static/lambda-simple/response",
        &body,
    ) {
        Some((201, _)) => {}
        other => panic!("moto refused the scripted replies: {other:?}"),
    }
}

/// Consumes replies moto did not use, so they cannot leak into the next case: invoke a
/// function with a sentinel until the sentinel comes back (an empty queue echoes the body).
fn drain_replies(function: &str) {
    for _ in 0..DRAIN_MAX {
        let sentinel = json!({"drain": unique("s")}).to_string();
        let (_, body) = aws_http(
            "lambda",
            "POST",
            &format!("/2015-03-31/functions/{function}/invocations"),
            "application/json",
            &sentinel,
        );
        if body == sentinel {
            return;
        }
    }
    panic!("more than {DRAIN_MAX} Lambda replies were left unused");
}

/// moto's outcome, or why it could not run the case (it rejected the definition…).
async fn run_moto(
    client: &aws_sdk_sfn::Client,
    name: &str,
    case: &Case,
    answer: Option<&TokenAnswer>,
) -> Result<Outcome, String> {
    let machine = client
        .create_state_machine()
        .name(unique(&format!("diff-{}", name.replace('_', "-"))))
        .definition(case.definition.to_string())
        .role_arn(role_arn())
        .send()
        .await
        .map_err(|e| format!("moto rejects the definition: {}", service_message(&e)))?;
    let arn = machine.state_machine_arn();
    let started = client
        .start_execution()
        .state_machine_arn(arn)
        // The local run is named run-1 too: $$.Execution.Name must agree.
        .name(LOCAL_EXECUTION_NAME)
        .input(case.input.to_string())
        .send()
        .await
        .map_err(|e| format!("moto does not start the execution: {}", service_message(&e)))?;
    let execution = started.execution_arn();
    let deadline = Instant::now() + Duration::from_millis(MOTO_EXECUTION_TIMEOUT_MS);
    let mut answered = Vec::new();
    let described = loop {
        let d = client
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .expect("describe execution");
        if d.status() != &SfnStatus::Running {
            break d;
        }
        if let Some(answer) = answer {
            answer_moto_tokens(client, execution, answer, &mut answered).await;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: moto's execution still runs after {MOTO_EXECUTION_TIMEOUT_MS} ms"
        );
        tokio::time::sleep(Duration::from_millis(MOTO_POLL_INTERVAL_MS)).await;
    };
    let events: Vec<SfnEvent> = client
        .get_execution_history()
        .execution_arn(execution)
        .max_results(1000)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("execution history");
    let entered: Vec<String> = events
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .collect();
    let top_level: Vec<String> = case.definition["States"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let error = events
        .iter()
        .find_map(|e| e.execution_failed_event_details())
        .and_then(|d| d.error().map(str::to_owned))
        .or_else(|| described.error().map(str::to_owned));
    Ok(Outcome {
        status: described.status().as_str().to_owned(),
        error,
        output: described
            .output()
            .map(|o| serde_json::from_str(o).unwrap_or_else(|_| Value::String(o.to_owned()))),
        top_states: entered
            .iter()
            .filter(|s| top_level.contains(s))
            .cloned()
            .collect(),
        all_states: sorted(entered),
    })
}

/// The code and message of an SDK error (its `Display` says only "service error").
fn service_message(e: &impl ProvideErrorMetadata) -> String {
    let text = format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or(""));
    text.chars().take(ERROR_TEXT_MAX).collect()
}

fn differences(name: &str, local: &Outcome, moto: &Outcome) -> Vec<String> {
    let mut d = Vec::new();
    if local.status != moto.status {
        d.push(format!(
            "status: local {} / moto {}",
            local.status, moto.status
        ));
    }
    if local.error != moto.error {
        d.push(format!(
            "error: local {:?} / moto {:?}",
            local.error, moto.error
        ));
    }
    if local.output != moto.output {
        d.push(format!(
            "output: local {} / moto {}",
            local.output.as_ref().map_or("-".into(), Value::to_string),
            moto.output.as_ref().map_or("-".into(), Value::to_string)
        ));
    }
    if local.top_states != moto.top_states {
        d.push(format!(
            "top-level states: local {:?} / moto {:?}",
            local.top_states, moto.top_states
        ));
    }
    let nested_racy = TOP_LEVEL_STATES_ONLY.iter().any(|(n, _)| *n == name);
    if !nested_racy && local.all_states != moto.all_states {
        d.push(format!(
            "states in all scopes: local {:?} / moto {:?}",
            local.all_states, moto.all_states
        ));
    }
    d
}

// One thread, as in the local conformance suite (`payops-local --test workflows`).
#[tokio::test]
async fn local_executor_agrees_with_moto() {
    let _serial = MOTO_LAMBDA_REPLIES.lock().await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../local/tests/asl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the conformance suite exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    for (listed, _) in EXCLUDED
        .iter()
        .chain(KNOWN_MOTO_DIFFERENCES)
        .chain(TOP_LEVEL_STATES_ONLY)
    {
        assert!(
            names.iter().any(|n| n == listed),
            "{listed} is listed but is not a conformance case"
        );
    }
    let env = payops_aws::AwsEnv::for_endpoint(&moto().endpoint).await;
    let client = env.sfn().clone();
    create_role();
    let only = std::env::var("ASL_CASE").ok();
    let (mut agreed, mut known, mut failures) = (0, 0, Vec::new());
    for (name, file) in names.iter().zip(&files) {
        if only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        if let Some((_, why)) = EXCLUDED.iter().find(|(n, _)| n == name) {
            eprintln!("excluded {name}: {why}");
            continue;
        }
        let text = std::fs::read_to_string(file).expect("case file reads");
        let case = Case::parse(&text).unwrap_or_else(|e| panic!("{name}: bad case file: {e}"));
        let mut functions = Vec::new();
        function_names(&case.definition, &mut functions);
        for f in &functions {
            create_function(f);
        }
        let (local, replies) = run_local(&case, None).await;
        queue_replies(&replies);
        let remote = run_moto(&client, name, &case, None).await;
        if let Some(f) = functions.first() {
            drain_replies(f);
        }
        let diff = match &remote {
            Ok(remote) => differences(name, &local, remote),
            Err(why) => vec![why.clone()],
        };
        let known_reason = KNOWN_MOTO_DIFFERENCES.iter().find(|(n, _)| n == name);
        match (diff.is_empty(), known_reason) {
            (true, None) => agreed += 1,
            (false, Some(_)) => known += 1,
            (true, Some((_, why))) => failures.push(format!(
                "{name}: listed as a known moto difference ({why}) but now agrees: remove it"
            )),
            (false, None) => failures.push(format!("{name}:\n    {}", diff.join("\n    "))),
        }
        eprintln!(
            "compared {name}: {}",
            if diff.is_empty() { "agree" } else { "differ" }
        );
    }
    eprintln!(
        "{} cases: {agreed} agree, {known} known differences, {} excluded, {} failures",
        names.len(),
        EXCLUDED.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if only.is_none() {
        assert_eq!(
            agreed + known + EXCLUDED.len(),
            names.len(),
            "every case is compared or excluded"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The state machines of statemachines/, as deployed by template.yaml.

/// Both tests queue Lambda replies on moto's single per-region queue: one at a time.
static MOTO_LAMBDA_REPLIES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The region of the fake ARNs and URLs the substitutions resolve to.
const REGION: &str = "us-east-1";

/// How a `.waitForTaskToken` task of a scenario is completed: the task token is read from the
/// `field` of the Lambda payload (the local call, or moto's TaskScheduled parameters) and
/// answered with SendTaskSuccess(`output`), as the approving person or the last sub-batch does.
struct TokenAnswer {
    field: &'static str,
    output: Value,
    /// When set, the token is answered with SendTaskFailure(error) instead (a person rejects
    /// the batch…).
    error: Option<&'static str>,
}

/// The cause sent with a scripted SendTaskFailure.
const TOKEN_FAILURE_CAUSE: &str = "scripted by the differential test";

/// A path through one definition of `statemachines/` (every definition has a happy path; some
/// also a failure path through a failed task token), with the scripted replies of its
/// functions (by logical id, in call order) and the states it must visit.
struct Scenario {
    file: &'static str,
    input: Value,
    functions: Value,
    answer: Option<TokenAnswer>,
    /// The top-level states the happy path visits, in order (checked on the local run, so a
    /// definition edited out from under the scenario is noticed rather than compared blindly).
    path: &'static [&'static str],
    /// The states entered in nested scopes (Map items, Parallel branches), sorted.
    nested: &'static [&'static str],
}

/// Definitions moto cannot run as AWS does, with the reason; they are still run on both
/// sides and the test asserts they still differ, so the list stays honest.
const MACHINE_KNOWN_MOTO_DIFFERENCES: &[(&str, &str)] = &[];

/// Definitions whose states are compared at the parent's level only, with the reason. The
/// local run's nested states are checked against the scenario's `nested` instead.
const MACHINE_PARENT_STATES_ONLY: &[(&str, &str)] = &[(
    "recon-daily.asl.json",
    "a DISTRIBUTED Map runs its items as child executions (a Map Run): AWS, and moto, record \
     their states in the child executions' histories, not the parent's; the local executor \
     records them in the parent's history under the item's scope",
)];

fn scenarios() -> Vec<Scenario> {
    let out = |v: Value| json!({ "output": v });
    vec![
        Scenario {
            file: "payroll-batch.asl.json",
            input: json!({"batch_id": "batch-1"}),
            functions: json!({"PayrollWorkflowFunction": [
                out(json!({"stored": true})),
                out(json!({"payments": 3, "chunks": 1})),
                out(json!({"complete": false, "done": 1, "payments": 3, "wait_seconds": 1})),
                out(json!({"complete": true, "done": 3, "payments": 3, "wait_seconds": 0})),
                out(json!({"reports": ["payments.csv", "failures.csv", "summary.csv"]})),
            ]}),
            answer: Some(TokenAnswer {
                field: "task_token",
                output: json!({"approved_by": "hr-1"}),
                error: None,
            }),
            path: &[
                "AwaitApproval",
                "Materialise",
                "CheckProgress",
                "Complete?",
                "WaitForPayments",
                "CheckProgress",
                "Complete?",
                "Finish",
            ],
            nested: &[],
        },
        Scenario {
            file: "debt-batch.asl.json",
            input: json!({"batch_id": "debts-1"}),
            functions: json!({"DebtsStepsFunction": [
                out(json!({"lines": 10, "sub_batches": 2})),
                out(json!({"parked": true})),
                out(json!({"status": "COMPLETED_WITH_ERRORS", "accepted": 9, "rejected": 1})),
            ]}),
            answer: Some(TokenAnswer {
                field: "token",
                output: json!({"registered": 9}),
                error: None,
            }),
            path: &["SplitFile", "AwaitSubBatches", "Complete"],
            nested: &[],
        },
        // HR rejects the batch: the token fails with Rejected, caught into NotApproved.
        Scenario {
            file: "payroll-batch.asl.json",
            input: json!({"batch_id": "batch-2"}),
            functions: json!({"PayrollWorkflowFunction": [out(json!({"stored": true}))]}),
            answer: Some(TokenAnswer {
                field: "task_token",
                output: Value::Null,
                error: Some("Rejected"),
            }),
            path: &["AwaitApproval", "NotApproved"],
            nested: &[],
        },
        // A sub-batch fails for good: the token fails, caught by States.ALL into MarkFailed.
        Scenario {
            file: "debt-batch.asl.json",
            input: json!({"batch_id": "debts-2"}),
            functions: json!({"DebtsStepsFunction": [
                out(json!({"lines": 10, "sub_batches": 2})),
                out(json!({"parked": true})),
                out(json!({"status": "FAILED"})),
            ]}),
            answer: Some(TokenAnswer {
                field: "token",
                output: Value::Null,
                error: Some("SubBatchFailed"),
            }),
            path: &["SplitFile", "AwaitSubBatches", "MarkFailed", "BatchFailed"],
            nested: &[],
        },
        Scenario {
            file: "recon-daily.asl.json",
            input: json!({"date": "2026-11-21"}),
            functions: json!({"ReconDailyFunction": [
                out(json!({"date": "2026-11-21"})),
                out(json!({"date": "2026-11-21", "partitions": 2, "items": [
                    {"date": "2026-11-21", "partition": 0, "partitions": 2},
                    {"date": "2026-11-21", "partition": 1, "partitions": 2}
                ]})),
                // The two Map items call concurrently: identical replies, so the order in
                // which either interpreter hands them out does not matter.
                out(json!({"matched": 5})),
                out(json!({"matched": 5})),
                out(json!({"kpis": 1, "rollup": "2026-11"})),
            ]}),
            answer: None,
            path: &["AwaitStatements", "Plan", "ReconcilePartitions", "Merge"],
            nested: &["ReconcilePartition", "ReconcilePartition"],
        },
    ]
}

/// What a `${Name}` substitution of the template resolves to in the harness: a function's
/// ARN, a queue's URL, a table's name (its logical id, as the local runtime names it).
fn substitution_value(template: &payops_local::template::Template, logical_id: &str) -> String {
    if template
        .functions
        .iter()
        .any(|f| f.logical_id == logical_id)
    {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}")
    } else if template.queues.iter().any(|q| q.logical_id == logical_id) {
        format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{logical_id}")
    } else if template.tables.iter().any(|t| t == logical_id) {
        logical_id.to_owned()
    } else {
        panic!("substitution {logical_id}: not a function, queue or table of template.yaml")
    }
}

/// The definition of `file` with the template's DefinitionSubstitutions applied.
fn substituted_definition(template: &payops_local::template::Template, file: &str) -> Value {
    let spec = template
        .state_machines
        .iter()
        .find(|m| m.definition_uri.ends_with(file))
        .unwrap_or_else(|| panic!("{file}: no state machine of template.yaml uses it"));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(&spec.definition_uri);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (name, logical_id) in &spec.substitutions {
        text = text.replace(
            &format!("${{{name}}}"),
            &substitution_value(template, logical_id),
        );
    }
    assert!(
        !text.contains("${"),
        "{file}: a ${{...}} placeholder has no DefinitionSubstitution in template.yaml"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"))
}

/// Answers the task tokens of local Lambda calls not answered yet; true if it answered one.
async fn answer_local_tokens(
    h: &harness::Harness,
    answer: &TokenAnswer,
    answered: &mut Vec<String>,
) -> bool {
    let tokens: Vec<String> = h
        .script
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|(_, payload)| payload.get(answer.field)?.as_str().map(str::to_owned))
        .filter(|t| !answered.contains(t))
        .collect();
    for token in &tokens {
        let sent = match answer.error {
            Some(error) => {
                h.executor
                    .send_task_failure(token, error, TOKEN_FAILURE_CAUSE)
                    .await
            }
            None => {
                h.executor
                    .send_task_success(token, answer.output.clone())
                    .await
            }
        };
        sent.expect("the local executor takes the task token");
        answered.push(token.clone());
    }
    !tokens.is_empty()
}

/// Answers the task tokens moto's TaskScheduled events carry in their Payload.
async fn answer_moto_tokens(
    client: &aws_sdk_sfn::Client,
    execution: &str,
    answer: &TokenAnswer,
    answered: &mut Vec<String>,
) {
    let events = client
        .get_execution_history()
        .execution_arn(execution)
        .max_results(1000)
        .send()
        .await
        .expect("execution history");
    for details in events
        .events()
        .iter()
        .filter_map(|e| e.task_scheduled_event_details())
    {
        let Ok(parameters) = serde_json::from_str::<Value>(details.parameters()) else {
            continue;
        };
        let Some(token) = parameters["Payload"][answer.field].as_str() else {
            continue;
        };
        if answered.iter().any(|t| t == token) {
            continue;
        }
        match answer.error {
            Some(error) => {
                client
                    .send_task_failure()
                    .task_token(token)
                    .error(error)
                    .cause(TOKEN_FAILURE_CAUSE)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("moto's SendTaskFailure: {}", service_message(&e)));
            }
            None => {
                client
                    .send_task_success()
                    .task_token(token)
                    .output(answer.output.to_string())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("moto's SendTaskSuccess: {}", service_message(&e)));
            }
        }
        answered.push(token.to_owned());
    }
}

#[tokio::test]
async fn every_state_machine_definition_agrees_with_moto() {
    let _serial = MOTO_LAMBDA_REPLIES.lock().await;
    let template = payops_local::template::Template::builtin().expect("template.yaml parses");
    let scenarios = scenarios();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../statemachines");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("statemachines/ exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".asl.json"))
        .collect();
    files.sort();
    for file in &files {
        assert!(
            scenarios.iter().any(|s| s.file == file),
            "{file}: no happy-path scenario in asl_differential.rs; add one"
        );
    }
    for (listed, _) in MACHINE_KNOWN_MOTO_DIFFERENCES
        .iter()
        .chain(MACHINE_PARENT_STATES_ONLY)
    {
        assert!(
            files.iter().any(|f| f == listed),
            "{listed} is listed but is not in statemachines/"
        );
    }
    let env = payops_aws::AwsEnv::for_endpoint(&moto().endpoint).await;
    let client = env.sfn().clone();
    create_role();
    let (mut agreed, mut known, mut failures) = (0, 0, Vec::new());
    for scenario in &scenarios {
        let name = scenario.file;
        let case = Case {
            definition: substituted_definition(&template, name),
            input: scenario.input.clone(),
            functions: serde_json::from_value(scenario.functions.clone())
                .expect("scenario replies are lists"),
        };
        let mut functions = Vec::new();
        function_names(&case.definition, &mut functions);
        for f in &functions {
            create_function(f);
        }
        let (local, replies) = run_local(&case, scenario.answer.as_ref()).await;
        let expected_status = if scenario
            .path
            .last()
            .is_some_and(|last| case.definition["States"][last]["Type"] == "Fail")
        {
            "FAILED"
        } else {
            "SUCCEEDED"
        };
        assert_eq!(
            local.status, expected_status,
            "{name}: the scenario ends otherwise locally: {local:?}"
        );
        assert_eq!(
            local.top_states, scenario.path,
            "{name}: the happy path visits other states than the scenario expects"
        );
        let mut nested = local.all_states.clone();
        for state in &local.top_states {
            let at = nested.iter().position(|s| s == state);
            nested.remove(at.expect("a top-level state is among all states"));
        }
        assert_eq!(
            nested, scenario.nested,
            "{name}: the happy path visits other nested states than the scenario expects"
        );
        queue_replies(&replies);
        let remote = run_moto(
            &client,
            name.trim_end_matches(".asl.json"),
            &case,
            scenario.answer.as_ref(),
        )
        .await;
        if let Some(f) = functions.first() {
            drain_replies(f);
        }
        let parent_only = MACHINE_PARENT_STATES_ONLY.iter().any(|(n, _)| *n == name);
        let local = if parent_only {
            Outcome {
                all_states: sorted(local.top_states.clone()),
                ..local
            }
        } else {
            local
        };
        let diff = match &remote {
            Ok(remote) => differences(name, &local, remote),
            Err(why) => vec![why.clone()],
        };
        let known_reason = MACHINE_KNOWN_MOTO_DIFFERENCES
            .iter()
            .find(|(n, _)| *n == name);
        match (diff.is_empty(), known_reason) {
            (true, None) => agreed += 1,
            (false, Some((_, why))) => {
                eprintln!("{name}: known moto difference ({why}): {}", diff.join("; "));
                known += 1;
            }
            (true, Some((_, why))) => failures.push(format!(
                "{name}: listed as a known moto difference ({why}) but now agrees: remove it"
            )),
            (false, None) => failures.push(format!("{name}:\n    {}", diff.join("\n    "))),
        }
        eprintln!(
            "compared {name}: {}",
            if diff.is_empty() { "agree" } else { "differ" }
        );
    }
    eprintln!(
        "{} definitions: {agreed} agree, {known} known differences, {} failures",
        scenarios.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        agreed + known,
        scenarios.len(),
        "every scenario is compared"
    );
}

// ---------------------------------------------------------------------------------------------
// The DynamoDB integrations of `payops up` (runtime::dynamodb_task) against moto's, which
// runs them on moto's DynamoDB.

/// A catalogue table, so that the local runtime resolves it; created on moto too.
const DDB_TABLE: &str = "PayrollTable";

/// putItem with a condition, updateItem with names, values, arithmetic, if_not_exists, REMOVE
/// and both ReturnValues, getItem of a present and a missing item, and a failed condition
/// caught by its DynamoDB error name.
const DDB_DEFINITION: &str = r##"{
  "StartAt": "Create",
  "States": {
    "Create": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:putItem",
      "Parameters": {
        "TableName": "PayrollTable",
        "Item": {
          "pk": {"S.$": "$.id"}, "sk": {"S": "COUNTER"}, "count": {"N": "0"},
          "tags": {"L": [{"S": "a"}, {"BOOL": true}]}, "meta": {"M": {"k": {"S": "v"}}},
          "note": {"NULL": true}
        },
        "ConditionExpression": "attribute_not_exists(pk)"
      },
      "ResultPath": "$.created",
      "Next": "Bump"
    },
    "Bump": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:updateItem",
      "Parameters": {
        "TableName": "PayrollTable",
        "Key": {"pk": {"S.$": "$.id"}, "sk": {"S": "COUNTER"}},
        "UpdateExpression": "SET #c = #c + :n, #s = :s, #f = if_not_exists(#f, :s) REMOVE note",
        "ConditionExpression": "#c < :limit AND attribute_exists(pk)",
        "ExpressionAttributeNames": {"#c": "count", "#s": "status", "#f": "first"},
        "ExpressionAttributeValues": {":n": {"N": "2.5"}, ":s": {"S": "BUMPED"}, ":limit": {"N": "100"}},
        "ReturnValues": "ALL_NEW"
      },
      "ResultPath": "$.bumped",
      "Next": "Add"
    },
    "Add": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:updateItem",
      "Parameters": {
        "TableName": "PayrollTable",
        "Key": {"pk": {"S.$": "$.id"}, "sk": {"S": "COUNTER"}},
        "UpdateExpression": "ADD hits :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
        "ReturnValues": "UPDATED_NEW"
      },
      "ResultPath": "$.added",
      "Next": "Read"
    },
    "Read": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:getItem",
      "Parameters": {"TableName": "PayrollTable", "Key": {"pk": {"S.$": "$.id"}, "sk": {"S": "COUNTER"}}},
      "ResultPath": "$.read",
      "Next": "ReadMissing"
    },
    "ReadMissing": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:getItem",
      "Parameters": {"TableName": "PayrollTable", "Key": {"pk": {"S": "NONE"}, "sk": {"S": "NONE"}}},
      "ResultPath": "$.missing",
      "Next": "CreateAgain"
    },
    "CreateAgain": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:putItem",
      "Parameters": {
        "TableName": "PayrollTable",
        "Item": {"pk": {"S.$": "$.id"}, "sk": {"S": "COUNTER"}},
        "ConditionExpression": "attribute_not_exists(pk)"
      },
      "Catch": [{
        "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
        "ResultPath": null,
        "Next": "Duplicate"
      }],
      "End": true
    },
    "Duplicate": {"Type": "Pass", "Result": "duplicate", "ResultPath": "$.outcome", "End": true}
  }
}"##;

async fn create_ddb_table(env: &payops_aws::AwsEnv) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    let created = env
        .dynamodb()
        .create_table()
        .table_name(DDB_TABLE)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    if let Err(e) = created {
        let code = e.code().unwrap_or_default().to_owned();
        assert_eq!(code, "ResourceInUseException", "CreateTable: {e:?}");
    }
}

/// The local run through the runtime's own task invoker (`payops up`'s), on its store.
async fn run_local_runtime(case: &Case) -> Outcome {
    let dir = tempfile::tempdir().expect("temporary directory");
    let clock = std::sync::Arc::new(payops_app::ports::ManualClock::new(harness::t0()));
    let (system, _workers) =
        payops_local::runtime::System::build(dir.path(), clock).expect("the runtime builds");
    let ex = &system.executor;
    ex.register_json("ddb", &case.definition.to_string(), &HashMap::new())
        .expect("the definition is valid");
    let id = ex
        .start("ddb", LOCAL_EXECUTION_NAME, case.input.clone())
        .await
        .expect("the local execution starts");
    let record = bounded("the local execution", ex.wait_finished(&id))
        .await
        .expect("the local execution finishes");
    let history = ex.execution_history(&id).await.expect("history");
    Outcome {
        status: record.status.as_str().to_owned(),
        error: record.error.clone(),
        output: record.output.clone(),
        top_states: local_states(&history, Some("")),
        all_states: sorted(local_states(&history, None)),
    }
}

fn strip_consumed_capacity(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("ConsumedCapacity");
            m.values_mut().for_each(strip_consumed_capacity);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_consumed_capacity),
        _ => {}
    }
}

#[tokio::test]
async fn dynamodb_integrations_agree_with_moto() {
    let env = payops_aws::AwsEnv::for_endpoint(&moto().endpoint).await;
    create_role();
    create_ddb_table(&env).await;
    let case = Case {
        definition: serde_json::from_str(DDB_DEFINITION).expect("the definition is JSON"),
        // A fresh key each run: moto is shared by every test of the run.
        input: json!({"id": unique("ddb")}),
        functions: HashMap::new(),
    };
    let local = run_local_runtime(&case).await;
    assert_eq!(local.status, "SUCCEEDED", "{local:?}");
    let mut remote = run_moto(env.sfn(), "dynamodb", &case, None)
        .await
        .expect("moto runs the definition");
    // moto adds ConsumedCapacity to every updateItem result; DynamoDB returns it only when
    // ReturnConsumedCapacity asks for it, which the definition does not.
    if let Some(output) = remote.output.as_mut() {
        strip_consumed_capacity(output);
    }
    let diff = differences("dynamodb", &local, &remote);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}
