//! Reads `template.yaml`, the one description of the deployment, so that `payops up` runs the
//! same queues, redrive policies, schedules and triggers as AWS does. Only the parts the local
//! runtime needs are read; anything it does not understand is left alone, but a trigger it
//! cannot honour is an error, not a silent omission.

use std::collections::{BTreeMap, BTreeSet};

use payops_core::schedule::Schedule;
use serde_yaml::Value;

use crate::iam::Grants;

/// The template compiled into the binary, so `payops` works from any directory.
pub const TEMPLATE_YAML: &str = include_str!("../../../template.yaml");

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template: resource {resource}: {reason}")]
    Resource { resource: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub fifo: bool,
    pub visibility_timeout_seconds: u32,
    /// The dead-letter queue's logical id and the receive count that sends a message there.
    pub dead_letter: Option<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Http {
        method: String,
        path: String,
    },
    Sqs {
        queue: String,
        batch_size: usize,
    },
    Schedule {
        rule: String,
        expression: String,
        schedule: Schedule,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary (`BuildProperties.Binary`), which is also the function's local name.
    pub binary: String,
    pub triggers: Vec<Trigger>,
    /// What its policies (and SAM, for its SQS triggers) allow on DynamoDB, S3 and SQS; the
    /// local runtime enforces it (see [`crate::iam`]).
    pub grants: Grants,
    /// The environment variables Lambda gives it: its own and `Globals.Function`'s. Locally a
    /// setting it does not declare is absent for it, as in Lambda.
    pub environment: BTreeSet<String>,
}

/// An S3 → SQS notification of the data bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketNotification {
    pub queue: String,
    pub prefix: String,
    pub suffix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachineSpec {
    pub logical_id: String,
    pub definition_uri: String,
    pub substitutions: BTreeMap<String, String>,
    /// `Schedule` events: EventBridge rules whose target is this state machine.
    pub schedules: Vec<Trigger>,
}

#[derive(Debug, Clone, Default)]
pub struct Template {
    pub queues: Vec<QueueSpec>,
    pub functions: Vec<FunctionSpec>,
    pub notifications: Vec<BucketNotification>,
    pub state_machines: Vec<StateMachineSpec>,
    /// Logical ids of the DynamoDB tables.
    pub tables: Vec<String>,
}

impl Template {
    pub fn builtin() -> Result<Template, TemplateError> {
        Template::parse(TEMPLATE_YAML)
    }

    pub fn parse(yaml: &str) -> Result<Template, TemplateError> {
        let doc: Value = serde_yaml::from_str(yaml)?;
        let mut t = Template::default();
        let Some(resources) = doc.get("Resources").and_then(Value::as_mapping) else {
            return Ok(t);
        };
        let global_environment = variable_names(
            doc.get("Globals")
                .and_then(|g| g.get("Function"))
                .unwrap_or(&Value::Null),
        );
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default().to_owned();
            let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::SQS::Queue") => t.queues.push(queue(&id, &props)?),
                Some("AWS::Serverless::Function") => {
                    let mut f = function(&id, resource, &props)?;
                    f.environment.extend(global_environment.iter().cloned());
                    t.functions.push(f)
                }
                Some("AWS::DynamoDB::Table") => t.tables.push(id),
                Some("AWS::S3::Bucket") => t.notifications.extend(notifications(&id, &props)?),
                Some("AWS::Serverless::StateMachine") => {
                    t.state_machines.push(state_machine(&id, &props)?)
                }
                _ => {}
            }
        }
        Ok(t)
    }

    pub fn function(&self, binary: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.binary == binary)
    }
}

fn err(resource: &str, reason: impl Into<String>) -> TemplateError {
    TemplateError::Resource {
        resource: resource.to_owned(),
        reason: reason.into(),
    }
}

/// `Fn::GetAtt: [X, Arn]` or `Ref: X` → `X`.
fn referenced_id(v: &Value) -> Option<String> {
    if let Some(r) = v.get("Ref").and_then(Value::as_str) {
        return Some(r.to_owned());
    }
    let getatt = v.get("Fn::GetAtt")?;
    match getatt {
        Value::Sequence(parts) => parts.first()?.as_str().map(str::to_owned),
        Value::String(s) => s.split('.').next().map(str::to_owned),
        _ => None,
    }
}

fn as_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn queue(id: &str, props: &Value) -> Result<QueueSpec, TemplateError> {
    let fifo = props
        .get("FifoQueue")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let visibility_timeout_seconds = match props.get("VisibilityTimeout") {
        None => 30,
        Some(v) => as_u32(v).ok_or_else(|| err(id, "VisibilityTimeout is not a number"))?,
    };
    let dead_letter = match props.get("RedrivePolicy") {
        None => None,
        Some(policy) => {
            let target = policy
                .get("deadLetterTargetArn")
                .and_then(referenced_id)
                .ok_or_else(|| {
                    err(
                        id,
                        "RedrivePolicy.deadLetterTargetArn must be Fn::GetAtt [Queue, Arn]",
                    )
                })?;
            let count = policy
                .get("maxReceiveCount")
                .and_then(as_u32)
                .ok_or_else(|| err(id, "RedrivePolicy.maxReceiveCount is missing"))?;
            Some((target, count))
        }
    };
    Ok(QueueSpec {
        logical_id: id.to_owned(),
        fifo,
        visibility_timeout_seconds,
        dead_letter,
    })
}

fn function(id: &str, resource: &Value, props: &Value) -> Result<FunctionSpec, TemplateError> {
    let binary = resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| err(id, "Metadata.BuildProperties.Binary is missing"))?
        .to_owned();
    let mut triggers = Vec::new();
    if let Some(events) = props.get("Events").and_then(Value::as_mapping) {
        for (name, event) in events {
            let name = name.as_str().unwrap_or_default();
            let p = event.get("Properties").cloned().unwrap_or(Value::Null);
            let text = |key: &str| p.get(key).and_then(Value::as_str).map(str::to_owned);
            match event.get("Type").and_then(Value::as_str) {
                Some("HttpApi" | "Api") => triggers.push(Trigger::Http {
                    method: text("Method").unwrap_or_else(|| "ANY".into()),
                    path: text("Path").unwrap_or_else(|| "/".into()),
                }),
                Some("SQS") => {
                    let queue = p.get("Queue").and_then(referenced_id).ok_or_else(|| {
                        err(id, format!("event {name}: Queue must reference a queue"))
                    })?;
                    let batch_size = p.get("BatchSize").and_then(as_u32).unwrap_or(10) as usize;
                    triggers.push(Trigger::Sqs { queue, batch_size });
                }
                Some("Schedule" | "ScheduleV2") => triggers.push(schedule_trigger(id, name, &p)?),
                other => {
                    return Err(err(
                        id,
                        format!("event {name}: trigger type {other:?} is not run locally"),
                    ));
                }
            }
        }
    }
    let mut grants = Grants::parse(id, props.get("Policies"))?;
    if triggers.iter().any(|t| matches!(t, Trigger::Sqs { .. })) {
        grants.add_sqs_poller();
    }
    Ok(FunctionSpec {
        logical_id: id.to_owned(),
        binary,
        triggers,
        grants,
        environment: variable_names(props),
    })
}

/// The names under `Environment.Variables` of a function's properties (or of Globals).
fn variable_names(props: &Value) -> BTreeSet<String> {
    props
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(name, _)| name.as_str().map(str::to_owned))
        .collect()
}

fn notifications(id: &str, props: &Value) -> Result<Vec<BucketNotification>, TemplateError> {
    let Some(configs) = props
        .get("NotificationConfiguration")
        .and_then(|n| n.get("QueueConfigurations"))
        .and_then(Value::as_sequence)
    else {
        return Ok(Vec::new());
    };
    configs
        .iter()
        .map(|c| {
            let queue = c
                .get("Queue")
                .and_then(referenced_id)
                .ok_or_else(|| err(id, "QueueConfigurations.Queue must reference a queue"))?;
            let mut n = BucketNotification {
                queue,
                prefix: String::new(),
                suffix: String::new(),
            };
            let rules = c
                .get("Filter")
                .and_then(|f| f.get("S3Key"))
                .and_then(|k| k.get("Rules"))
                .and_then(Value::as_sequence);
            for rule in rules.into_iter().flatten() {
                let value = rule
                    .get("Value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                match rule.get("Name").and_then(Value::as_str) {
                    Some("prefix") => n.prefix = value,
                    Some("suffix") => n.suffix = value,
                    other => return Err(err(id, format!("unknown S3 key filter {other:?}"))),
                }
            }
            Ok(n)
        })
        .collect()
}

/// A `Schedule`/`ScheduleV2` event of a function or a state machine.
fn schedule_trigger(id: &str, name: &str, p: &Value) -> Result<Trigger, TemplateError> {
    let key = if p.get("Schedule").is_some() {
        "Schedule"
    } else {
        "ScheduleExpression"
    };
    let expression = p
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| err(id, format!("event {name}: no schedule expression")))?;
    let schedule =
        Schedule::parse(&expression).map_err(|e| err(id, format!("event {name}: {e}")))?;
    Ok(Trigger::Schedule {
        rule: name.to_owned(),
        expression,
        schedule,
    })
}

/// The schedules that start a state machine. EventBridge rules with other targets or event
/// patterns are not run locally, so they are refused rather than ignored.
fn state_machine_schedules(id: &str, props: &Value) -> Result<Vec<Trigger>, TemplateError> {
    let mut schedules = Vec::new();
    if let Some(events) = props.get("Events").and_then(Value::as_mapping) {
        for (name, event) in events {
            let name = name.as_str().unwrap_or_default();
            let p = event.get("Properties").cloned().unwrap_or(Value::Null);
            match event.get("Type").and_then(Value::as_str) {
                Some("Schedule" | "ScheduleV2") => schedules.push(schedule_trigger(id, name, &p)?),
                other => {
                    return Err(err(
                        id,
                        format!("event {name}: trigger type {other:?} is not run locally"),
                    ));
                }
            }
        }
    }
    Ok(schedules)
}

fn state_machine(id: &str, props: &Value) -> Result<StateMachineSpec, TemplateError> {
    let definition_uri = props
        .get("DefinitionUri")
        .and_then(Value::as_str)
        .ok_or_else(|| err(id, "DefinitionUri must be a path in this repository"))?
        .to_owned();
    let substitutions = props
        .get("DefinitionSubstitutions")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.as_str()?.to_owned(),
                        referenced_id(v).or_else(|| v.as_str().map(str::to_owned))?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(StateMachineSpec {
        logical_id: id.to_owned(),
        definition_uri,
        substitutions,
        schedules: state_machine_schedules(id, props)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use payops_app::resources::{QUEUES, TABLES};

    #[test]
    fn a_function_sees_its_own_variables_and_the_globals_only() {
        let t = Template::parse(
            r#"
Globals:
  Function:
    Environment:
      Variables: { SHARED_TABLE: { Ref: T } }
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: a } }
    Properties:
      Environment:
        Variables: { A_SECRET: x }
  B:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: b } }
    Properties: {}
"#,
        )
        .expect("parses");
        let names = |binary: &str| -> Vec<String> {
            let f = t.function(binary).expect(binary);
            f.environment.iter().cloned().collect()
        };
        assert_eq!(names("a"), ["A_SECRET", "SHARED_TABLE"]);
        assert_eq!(names("b"), ["SHARED_TABLE"]);
    }

    #[test]
    fn builtin_template_declares_every_catalogued_resource() {
        let t = Template::builtin().expect("template.yaml parses");
        for table in TABLES {
            assert!(
                t.tables.iter().any(|id| id == table.logical_id),
                "table {} missing",
                table.logical_id
            );
        }
        for queue in QUEUES {
            assert!(
                t.queues.iter().any(|q| q.logical_id == queue.logical_id),
                "queue {} missing",
                queue.logical_id
            );
        }
        // Every redrive target is a declared queue.
        for q in &t.queues {
            if let Some((dlq, count)) = &q.dead_letter {
                assert!(
                    t.queues.iter().any(|d| &d.logical_id == dlq),
                    "{dlq} missing"
                );
                assert!(*count >= 1);
            }
        }
    }

    #[test]
    fn reads_triggers_of_the_payment_events_functions() {
        let t = Template::builtin().unwrap();
        let processor = t.function("payment-events-processor").unwrap();
        assert_eq!(
            processor.triggers,
            vec![Trigger::Sqs {
                queue: "PaymentEventsQueue".into(),
                batch_size: 10
            }]
        );
        let report = t.function("payment-events-report").unwrap();
        assert!(
            matches!(&report.triggers[..], [Trigger::Schedule { expression, .. }] if expression == "cron(30 0 * * ? *)")
        );
        let queue = t
            .queues
            .iter()
            .find(|q| q.logical_id == "PaymentEventsQueue")
            .unwrap();
        assert_eq!(
            queue.dead_letter,
            Some(("PaymentEventsDeadLetterQueue".into(), 5))
        );
        assert_eq!(queue.visibility_timeout_seconds, 180);
    }

    #[test]
    fn every_function_is_in_the_registry_and_has_a_lambda_crate() {
        let t = Template::builtin().unwrap();
        let registry: Vec<&str> = payops_app::functions::FUNCTIONS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        for f in &t.functions {
            assert!(
                registry.contains(&f.binary.as_str()),
                "{} is not in payops_app::functions",
                f.binary
            );
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for name in &registry {
            assert!(
                t.function(name).is_some(),
                "{name} is not declared in template.yaml"
            );
            let main = root.join("functions").join(name).join("src/main.rs");
            let text = std::fs::read_to_string(&main).unwrap_or_default();
            assert!(
                text.contains(&format!("run(\"{name}\")")),
                "{} does not run {name}",
                main.display()
            );
        }
    }

    #[test]
    fn reads_the_schedules_that_start_a_state_machine() {
        let yaml = "Resources:\n  M:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      DefinitionUri: statemachines/m.asl.json\n      Events:\n        Nightly:\n          Type: Schedule\n          Properties: {Schedule: cron(0 2 * * ? *)}\n";
        let t = Template::parse(yaml).unwrap();
        assert!(
            matches!(&t.state_machines[0].schedules[..], [Trigger::Schedule { rule, expression, .. }] if rule == "Nightly" && expression == "cron(0 2 * * ? *)"),
            "{:?}",
            t.state_machines
        );
        let bad = yaml.replace("Type: Schedule", "Type: EventBridgeRule");
        let e = Template::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("EventBridgeRule") && e.contains('M'), "{e}");
    }

    #[test]
    fn rejects_a_trigger_it_cannot_run() {
        let yaml = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: f}}\n    Properties:\n      Events:\n        K:\n          Type: Kinesis\n";
        let e = Template::parse(yaml).unwrap_err().to_string();
        assert!(e.contains("Kinesis") && e.contains('F'), "{e}");
    }

    #[test]
    fn reads_bucket_notifications() {
        let yaml = r#"
Resources:
  B:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - Event: s3:ObjectCreated:*
            Queue: {"Fn::GetAtt": [Q, Arn]}
            Filter: {S3Key: {Rules: [{Name: prefix, Value: inbox/debts/}, {Name: suffix, Value: .csv}]}}
"#;
        let t = Template::parse(yaml).unwrap();
        assert_eq!(
            t.notifications,
            vec![BucketNotification {
                queue: "Q".into(),
                prefix: "inbox/debts/".into(),
                suffix: ".csv".into()
            }]
        );
    }
}
