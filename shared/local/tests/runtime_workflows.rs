//! The local Step Functions inside the runtime: the executor `System::build` creates on the
//! env's store, its Task states reaching functions through the local task invoker (resolved
//! as the template's DefinitionSubstitutions would name them), a handler's `Rejected` error
//! caught by a Catch, and the ops JSON endpoints listing and showing executions.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use payops_app::HandlerError;
use payops_app::handler::TaskHandler;
use payops_app::ports::{ManualClock, Queue};
use payops_app::resources::Resources;
use payops_local::runtime::{System, ops_executions};
use payops_local::workflows::ExecutionStatus;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Approves an amount, or rejects it when it is not positive.
struct Approve;

#[async_trait]
impl TaskHandler for Approve {
    async fn handle(&self, input: Value) -> Result<Value, HandlerError> {
        let amount: rust_decimal::Decimal = input
            .get("amount")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| HandlerError::Rejected("amount: not a decimal string".into()))?;
        if amount <= rust_decimal::Decimal::ZERO {
            return Err(HandlerError::Rejected(format!(
                "amount: {amount} is not positive"
            )));
        }
        Ok(json!({ "approved": input["amount"] }))
    }
}

/// A Task calling a function by the ARN its DefinitionSubstitutions give, with a Catch on
/// `Rejected`.
const DEFINITION: &str = r#"{
  "StartAt": "Approve",
  "States": {
    "Approve": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {
        "FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:${ApproveFunction}",
        "Payload.$": "$"
      },
      "OutputPath": "$.Payload",
      "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "Declined"}],
      "End": true
    },
    "Declined": {"Type": "Pass", "Result": "declined", "ResultPath": "$.outcome", "End": true}
  }
}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    system: Arc<System>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let now: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let (system, _workers) = System::build(dir.path(), clock).unwrap();
    // Resolve by a real template function: its logical id (what `Fn::GetAtt [X, Arn]`
    // substitutes) must reach the task handler registered under its binary name.
    let spec = system.env.template.functions[0].clone();
    system
        .task_invoker
        .add_function(&spec.binary, Arc::new(Approve));
    let substitutions = HashMap::from([("ApproveFunction".to_owned(), spec.logical_id.clone())]);
    system
        .executor
        .register_json("Approvals", DEFINITION, &substitutions)
        .unwrap();
    Fixture {
        _dir: dir,
        system: Arc::new(system),
    }
}

async fn call(system: &Arc<System>, request: Request<Body>) -> (StatusCode, Value) {
    let response = ops_executions::router(system.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_task_state_invokes_the_function_the_substitution_names() {
    let f = fixture();
    let ex = &f.system.executor;
    let id = ex
        .start("Approvals", "ok-1", json!({"amount": "10.50"}))
        .await
        .unwrap();
    let record = ex.wait_finished(&id).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Succeeded, "{record:?}");
    assert_eq!(record.output, Some(json!({"approved": "10.50"})));
}

#[tokio::test]
async fn a_rejected_handler_is_caught_by_a_catch_on_rejected() {
    let f = fixture();
    let ex = &f.system.executor;
    let id = ex
        .start("Approvals", "bad-1", json!({"amount": "0"}))
        .await
        .unwrap();
    let record = ex.wait_finished(&id).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Succeeded, "{record:?}");
    let output = record.output.unwrap();
    assert_eq!(output["outcome"], json!("declined"));
    assert_eq!(output["error"]["Error"], json!("Rejected"));
    assert!(
        output["error"]["Cause"]
            .as_str()
            .unwrap()
            .contains("not positive"),
        "{output}"
    );
}

#[tokio::test]
async fn an_unknown_function_fails_the_task_with_a_clear_error() {
    let f = fixture();
    let ex = &f.system.executor;
    let substitutions = HashMap::from([("ApproveFunction".to_owned(), "NoSuchFunction".into())]);
    ex.register_json("Broken", DEFINITION, &substitutions)
        .unwrap();
    let id = ex
        .start("Broken", "x", json!({"amount": "1"}))
        .await
        .unwrap();
    let record = ex.wait_finished(&id).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Failed, "{record:?}");
    assert_eq!(record.error.as_deref(), Some("States.TaskFailed"));
    assert!(record.cause.unwrap().contains("NoSuchFunction"));
}

#[tokio::test]
async fn handlers_get_the_workflows_port_of_the_runtime_executor() {
    let f = fixture();
    let workflows = f.system.env.workflows().unwrap();
    let id = workflows
        .start_execution("Approvals", "via-port", json!({"amount": "3"}))
        .await
        .unwrap();
    let record = f.system.executor.wait_finished(&id).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Succeeded);
}

#[tokio::test]
async fn the_ops_endpoints_start_list_and_show_executions() {
    let f = fixture();
    let (status, started) = call(
        &f.system,
        Request::post("/ops/executions")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"state_machine": "Approvals", "name": "ops-1", "input": {"amount": "0"}})
                    .to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let id = started["execution_id"].as_str().unwrap().to_owned();
    f.system.executor.wait_finished(&id).await.unwrap();

    let (status, list) = call(
        &f.system,
        get("/ops/executions?state_machine=Approvals&status=succeeded"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let executions = list["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 1, "{list}");
    assert_eq!(executions[0]["id"], json!(id));
    assert_eq!(executions[0]["status"], json!("SUCCEEDED"));

    let (_, none) = call(&f.system, get("/ops/executions?status=FAILED")).await;
    assert_eq!(none["executions"], json!([]));
    let (status, bad) = call(&f.system, get("/ops/executions?status=done")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    let (status, shown) = call(&f.system, get(&format!("/ops/executions/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["execution"]["status"], json!("SUCCEEDED"));
    let types: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"ExecutionStarted"), "{types:?}");
    assert!(types.contains(&"TaskStateEntered"), "{types:?}");
    assert!(types.contains(&"TaskFailed"), "{types:?}");
    assert!(types.contains(&"PassStateExited"), "{types:?}");
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"), "{types:?}");
    let exited = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "PassStateExited")
        .unwrap();
    assert_eq!(exited["duration_ms"], json!(0), "{exited}");

    let (status, _) = call(&f.system, get("/ops/executions/no-such-execution")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// SQS, EventBridge and DynamoDB (on a table that does not exist) Task states, by what the
/// substitutions give.
const INTEGRATIONS: &str = r#"{
  "StartAt": "Send",
  "States": {
    "Send": {
      "Type": "Task",
      "Resource": "arn:aws:states:::sqs:sendMessage",
      "Parameters": {
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/000000000000/${Queue}",
        "MessageBody.$": "$"
      },
      "ResultPath": "$.sent",
      "Next": "Publish"
    },
    "Publish": {
      "Type": "Task",
      "Resource": "arn:aws:states:::events:putEvents",
      "Parameters": {
        "Entries": [{"Source": "payops.test", "DetailType": "Approved", "Detail.$": "$.order"}]
      },
      "ResultPath": "$.published",
      "Next": "Read"
    },
    "Read": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:getItem",
      "Parameters": {"TableName": "Anything", "Key": {"pk": {"S": "1"}}},
      "End": true
    }
  }
}"#;

#[tokio::test]
async fn sqs_and_events_tasks_reach_the_local_queue_and_bus_and_dynamodb_fails_clearly() {
    let f = fixture();
    let queue_id = f.system.env.template.queues[0].logical_id.clone();
    let substitutions = HashMap::from([("Queue".to_owned(), queue_id.clone())]);
    let ex = &f.system.executor;
    ex.register_json("Integrations", INTEGRATIONS, &substitutions)
        .unwrap();
    let input = json!({"order": {"id": "o-1", "amount": "12.34"}});
    let id = ex
        .start("Integrations", "i-1", input.clone())
        .await
        .unwrap();
    let record = ex.wait_finished(&id).await.unwrap();

    assert_eq!(record.status, ExecutionStatus::Failed, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("DynamoDB.ResourceNotFoundException")
    );
    assert!(record.cause.unwrap().contains("Anything"));

    let queue = f.system.env.local_queue(&queue_id).unwrap();
    let received = queue
        .receive(payops_app::ports::ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body, input);

    let events = f
        .system
        .env
        .store
        .events(payops_local::env::LOCAL_EVENT_BUS)
        .list(Some("payops.test"), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail_type, "Approved");
    assert_eq!(events[0].detail, input["order"]);
}

/// Keeps the task token it is given, as a function that hands work to a person would.
struct KeepToken(std::sync::Mutex<Option<String>>);

#[async_trait]
impl TaskHandler for KeepToken {
    async fn handle(&self, input: Value) -> Result<Value, HandlerError> {
        let token = input["token"]
            .as_str()
            .ok_or_else(|| HandlerError::Rejected("token: missing".into()))?;
        *self.0.lock().unwrap() = Some(token.to_owned());
        Ok(json!({}))
    }
}

const WAIT_FOR_TOKEN: &str = r#"{
  "StartAt": "Review",
  "States": {
    "Review": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
      "Parameters": {"FunctionName": "reviewer", "Payload": {"token.$": "$$.Task.Token"}},
      "End": true
    }
  }
}"#;

#[tokio::test]
async fn the_task_token_endpoint_completes_a_waiting_task() {
    let f = fixture();
    let keeper = Arc::new(KeepToken(std::sync::Mutex::new(None)));
    f.system
        .task_invoker
        .add_function("reviewer", keeper.clone());
    let ex = &f.system.executor;
    ex.register_json("Review", WAIT_FOR_TOKEN, &HashMap::new())
        .unwrap();
    let id = ex.start("Review", "r-1", json!({})).await.unwrap();
    ex.wait_settled(&id).await;
    let token = keeper
        .0
        .lock()
        .unwrap()
        .clone()
        .expect("the task got a token");

    let post = |path: &str, body: Value| {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _) = call(
        &f.system,
        post(
            "/ops/task-tokens/maybe",
            json!({"task_token": token.clone()}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &f.system,
        post(
            "/ops/task-tokens/success",
            json!({"task_token": token.clone(), "output": {"approved": true}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = ex.wait_finished(&id).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Succeeded, "{record:?}");
    assert_eq!(record.output, Some(json!({"approved": true})));

    let (status, _) = call(
        &f.system,
        post(
            "/ops/task-tokens/failure",
            json!({"task_token": token, "error": "X"}),
        ),
    )
    .await;
    assert_ne!(status, StatusCode::OK, "a completed token cannot fail");
}

#[tokio::test]
async fn the_show_endpoint_has_a_timeline_with_the_failed_state_and_its_error() {
    let f = fixture();
    let ex = &f.system.executor;
    let substitutions = HashMap::from([("ApproveFunction".to_owned(), "NoSuchFunction".into())]);
    ex.register_json("Broken", DEFINITION, &substitutions)
        .unwrap();
    let id = ex
        .start("Broken", "t-1", json!({"amount": "1"}))
        .await
        .unwrap();
    ex.wait_finished(&id).await.unwrap();

    let (status, shown) = call(&f.system, get(&format!("/ops/executions/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let timeline = shown["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{shown}");
    let visit = &timeline[0];
    assert_eq!(visit["state"], json!("Approve"));
    assert_eq!(visit["type"], json!("Task"));
    assert_eq!(visit["status"], json!("FAILED"));
    assert_eq!(visit["error"], json!("States.TaskFailed"));
    assert!(
        visit["cause"].as_str().unwrap().contains("NoSuchFunction"),
        "{visit}"
    );
    assert_eq!(visit["input"], json!({"amount": "1"}));

    // The caught rejection of the other machine: the state is CAUGHT, the Pass succeeded.
    let id = ex
        .start("Approvals", "t-2", json!({"amount": "0"}))
        .await
        .unwrap();
    ex.wait_finished(&id).await.unwrap();
    let (_, shown) = call(&f.system, get(&format!("/ops/executions/{id}"))).await;
    let statuses: Vec<(&str, &str)> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["state"].as_str().unwrap(), v["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![("Approve", "CAUGHT"), ("Declined", "SUCCEEDED")]
    );
}

#[tokio::test]
async fn the_ops_page_is_served_with_its_script_and_style() {
    let f = fixture();
    let router = ops_executions::router(f.system.clone());
    let response = router.clone().oneshot(get("/ops")).await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/ops/ui");
    for (path, content_type, needle) in [
        ("/ops/ui", "text/html", "<table class=\"timeline\">"),
        ("/ops/ui/app.js", "text/javascript", "/ops/executions"),
        ("/ops/ui/app.css", "text/css", ".visit.failed"),
    ] {
        let response = router.clone().oneshot(get(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{path}"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains(needle), "{path}");
    }
    let (status, machines) = call(&f.system, get("/ops/state-machines")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        machines["state_machines"]
            .as_array()
            .unwrap()
            .contains(&json!("Approvals")),
        "{machines}"
    );
}

#[test]
fn state_machines_in_the_data_directory_are_registered_and_bad_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    let machines = payops_local::workflows::local_machines_dir(dir.path());
    std::fs::create_dir_all(&machines).unwrap();
    std::fs::write(
        machines.join("Hello.asl.json"),
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}"#,
    )
    .unwrap();
    std::fs::write(machines.join("notes.txt"), "not a definition").unwrap();
    let clock = Arc::new(ManualClock::new("2026-11-22T00:00:00Z".parse().unwrap()));
    let (system, _workers) = System::build(dir.path(), clock.clone()).unwrap();
    assert!(
        system
            .executor
            .state_machines()
            .contains(&"Hello".to_owned())
    );
    drop(system);

    std::fs::write(
        machines.join("Broken.asl.json"),
        r#"{"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": true}}}"#,
    )
    .unwrap();
    let error = System::build(dir.path(), clock).err().unwrap().to_string();
    assert!(error.contains("Broken.asl.json"), "{error}");
    assert!(error.contains("Teleport"), "{error}");
}

/// DynamoDB Task states on a catalogue table (named by the substitution, as `Ref: XTable`
/// gives it): a conditional put, an update with arithmetic and `ReturnValues`, a get, and a
/// second conditional put whose failure a Catch on `DynamoDB.ConditionalCheckFailedException`
/// handles.
const DYNAMODB: &str = r##"{
  "StartAt": "Create",
  "States": {
    "Create": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:putItem",
      "Parameters": {
        "TableName": "${Table}",
        "Item": {
          "pk": {"S.$": "States.Format('WF#{}', $.id)"},
          "sk": {"S": "COUNTER"},
          "count": {"N": "0"},
          "tags": {"L": [{"S": "a"}, {"BOOL": true}]},
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
        "TableName": "${Table}",
        "Key": {"pk": {"S.$": "States.Format('WF#{}', $.id)"}, "sk": {"S": "COUNTER"}},
        "UpdateExpression": "SET #c = #c + :n, #s = :s, #f = if_not_exists(#f, :s) REMOVE note",
        "ConditionExpression": "#c < :limit",
        "ExpressionAttributeNames": {"#c": "count", "#s": "status", "#f": "first"},
        "ExpressionAttributeValues": {
          ":n": {"N.$": "$.amount"}, ":s": {"S": "BUMPED"}, ":limit": {"N": "100"}
        },
        "ReturnValues": "ALL_NEW"
      },
      "ResultSelector": {"count.$": "$.Attributes.count.N", "status.$": "$.Attributes.status.S"},
      "ResultPath": "$.bumped",
      "Next": "Read"
    },
    "Read": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:getItem",
      "Parameters": {
        "TableName": "${Table}",
        "Key": {"pk": {"S.$": "States.Format('WF#{}', $.id)"}, "sk": {"S": "COUNTER"}}
      },
      "ResultPath": "$.read",
      "Next": "ReadMissing"
    },
    "ReadMissing": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:getItem",
      "Parameters": {"TableName": "${Table}", "Key": {"pk": {"S": "NONE"}, "sk": {"S": "NONE"}}},
      "ResultPath": "$.missing",
      "Next": "CreateAgain"
    },
    "CreateAgain": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:putItem",
      "Parameters": {
        "TableName": "${Table}",
        "Item": {"pk": {"S.$": "States.Format('WF#{}', $.id)"}, "sk": {"S": "COUNTER"}},
        "ConditionExpression": "attribute_not_exists(pk)"
      },
      "Catch": [{
        "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
        "ResultPath": "$.duplicate",
        "Next": "Duplicate"
      }],
      "End": true
    },
    "Duplicate": {"Type": "Pass", "End": true}
  }
}"##;

#[tokio::test]
async fn dynamodb_tasks_read_and_write_the_local_table_and_a_failed_condition_is_caught() {
    let f = fixture();
    let ex = &f.system.executor;
    let table_id = payops_app::resources::PAYROLL_TABLE.logical_id;
    let substitutions = HashMap::from([("Table".to_owned(), table_id.to_owned())]);
    ex.register_json("Counter", DYNAMODB, &substitutions)
        .unwrap();
    let id = ex
        .start("Counter", "d-1", json!({"id": "7", "amount": "2.50"}))
        .await
        .unwrap();
    let record = ex.wait_finished(&id).await.unwrap();

    assert_eq!(record.status, ExecutionStatus::Succeeded, "{record:?}");
    let out = record.output.unwrap();
    assert_eq!(out["created"], json!({}));
    assert_eq!(out["bumped"], json!({"count": "2.5", "status": "BUMPED"}));
    assert_eq!(
        out["read"],
        json!({"Item": {
            "pk": {"S": "WF#7"}, "sk": {"S": "COUNTER"}, "count": {"N": "2.5"},
            "status": {"S": "BUMPED"}, "first": {"S": "BUMPED"},
            "tags": {"L": [{"S": "a"}, {"BOOL": true}]}
        }})
    );
    assert_eq!(out["missing"], json!({}));
    assert_eq!(
        out["duplicate"]["Error"],
        json!("DynamoDB.ConditionalCheckFailedException")
    );

    // The same item is visible through the Table port the handlers use.
    let table = f
        .system
        .env
        .table(&payops_app::resources::PAYROLL_TABLE)
        .unwrap();
    let item = table
        .get(&payops_app::ports::Key::new("WF#7", "COUNTER"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.n("count"), Some("2.5".parse().unwrap()));
    assert_eq!(item.get("note"), None, "REMOVE note took effect");
}

/// An update expression the local table cannot execute fails the task with its name.
const DYNAMODB_UNSUPPORTED: &str = r#"{
  "StartAt": "Append",
  "States": {
    "Append": {
      "Type": "Task",
      "Resource": "arn:aws:states:::dynamodb:updateItem",
      "Parameters": {
        "TableName": "${Table}",
        "Key": {"pk": {"S": "A"}, "sk": {"S": "B"}},
        "UpdateExpression": "SET entries = list_append(entries, :x)",
        "ExpressionAttributeValues": {":x": {"L": []}}
      },
      "End": true
    }
  }
}"#;

#[tokio::test]
async fn an_unsupported_dynamodb_expression_fails_the_task_naming_it() {
    let f = fixture();
    let ex = &f.system.executor;
    let substitutions = HashMap::from([(
        "Table".to_owned(),
        payops_app::resources::PAYROLL_TABLE.logical_id.to_owned(),
    )]);
    ex.register_json("Append", DYNAMODB_UNSUPPORTED, &substitutions)
        .unwrap();
    let id = ex.start("Append", "u-1", json!({})).await.unwrap();
    let record = ex.wait_finished(&id).await.unwrap();

    assert_eq!(record.status, ExecutionStatus::Failed, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("DynamoDB.ValidationException")
    );
    let cause = record.cause.unwrap();
    assert!(
        cause.contains("UpdateExpression") && cause.contains("list_append"),
        "{cause}"
    );
}
