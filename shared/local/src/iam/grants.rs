//! A function's grants, read from its `Policies` in `template.yaml` (see the module above
//! for what is understood), and the question the guards ask of them: is this action allowed
//! on this resource?

use serde_yaml::Value;

use crate::template::TemplateError;

/// SAM's DynamoDBCrudPolicy, DynamoDBReadPolicy and DynamoDBWritePolicy (each also covers
/// `table/index/*`).
const SAM_CRUD_ACTIONS: &[&str] = &[
    "GetItem",
    "DeleteItem",
    "PutItem",
    "Scan",
    "Query",
    "UpdateItem",
    "BatchWriteItem",
    "BatchGetItem",
    "DescribeTable",
    "ConditionCheckItem",
];
const SAM_READ_ACTIONS: &[&str] = &["GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"];
const SAM_WRITE_ACTIONS: &[&str] = &["PutItem", "UpdateItem", "BatchWriteItem"];
/// What SAM grants a function with an SQS trigger (the event source mapping polls with the
/// function's role): the managed `AWSLambdaSQSQueueExecutionRole`, on every queue.
const SQS_POLLER_ACTIONS: &[&str] = &["ReceiveMessage", "DeleteMessage", "GetQueueAttributes"];

/// The services whose grants are enforced locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    DynamoDb,
    S3,
    Sqs,
}

impl Service {
    fn of(action: &str) -> Option<(Service, &str)> {
        let (prefix, name) = action.split_once(':')?;
        let service = match prefix {
            "dynamodb" => Service::DynamoDb,
            "s3" => Service::S3,
            "sqs" => Service::Sqs,
            _ => return None,
        };
        Some((service, name))
    }

    pub(super) fn prefix(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::S3 => "s3",
            Service::Sqs => "sqs",
        }
    }
}

/// Which resource a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every resource of the service (`Resource: "*"`).
    Everything,
    /// A table, a bucket (ListBucket) or a queue, by logical id.
    Resource(String),
    Index {
        table: String,
        index: String,
    },
    AnyIndex(String),
    /// A bucket's objects whose keys start with `prefix` (`${B.Arn}/prefix*`).
    Objects {
        bucket: String,
        prefix: String,
    },
    /// Listing a bucket under prefixes that match one of `patterns` (`s3:ListBucket` with a
    /// `StringLike` condition on `s3:prefix`; a pattern ends in `*` or is exact).
    Listing {
        bucket: String,
        patterns: Vec<String>,
    },
}

/// What is asked: an action on a table (or one of its indexes), a bucket, an object or a
/// queue.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target<'a> {
    Table {
        table: &'a str,
        index: Option<&'a str>,
    },
    /// Listing keys under a prefix.
    Listing {
        bucket: &'a str,
        prefix: &'a str,
    },
    Object {
        bucket: &'a str,
        key: &'a str,
    },
    Queue(&'a str),
}

impl Scope {
    fn covers(&self, target: Target<'_>) -> bool {
        match (self, target) {
            (Scope::Everything, _) => true,
            (Scope::Resource(r), Target::Table { table, index: None }) => r == table,
            (Scope::Resource(r), Target::Listing { bucket: b, .. } | Target::Queue(b)) => r == b,
            (
                Scope::Listing {
                    bucket: b,
                    patterns,
                },
                Target::Listing { bucket, prefix },
            ) => {
                b == bucket
                    && patterns.iter().any(|p| match p.strip_suffix('*') {
                        Some(start) => prefix.starts_with(start),
                        None => prefix == p,
                    })
            }
            (
                Scope::Index { table: t, index: i },
                Target::Table {
                    table,
                    index: Some(index),
                },
            ) => t == table && i == index,
            (
                Scope::AnyIndex(t),
                Target::Table {
                    table,
                    index: Some(_),
                },
            ) => t == table,
            (Scope::Objects { bucket: b, prefix }, Target::Object { bucket, key }) => {
                b == bucket && key.starts_with(prefix.as_str())
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    service: Service,
    /// Without the service prefix; `*` for every action.
    action: String,
    scope: Scope,
}

/// What a function's policies allow on DynamoDB, S3 and SQS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    grants: Vec<Grant>,
}

impl Grants {
    /// Reads the grants of the function `id` from its `Policies`.
    pub fn parse(id: &str, policies: Option<&Value>) -> Result<Grants, TemplateError> {
        let mut grants = Vec::new();
        let Some(policies) = policies else {
            return Ok(Grants { grants });
        };
        let policies = policies
            .as_sequence()
            .ok_or_else(|| error(id, "Policies must be a list"))?;
        for policy in policies {
            let Some(mapping) = policy.as_mapping() else {
                // A managed policy by name: none is used; refuse rather than guess.
                return Err(error(id, format!("policy {policy:?} is not read locally")));
            };
            for (name, body) in mapping {
                let name = name.as_str().unwrap_or_default();
                match name {
                    "Statement" => grants.extend(statements(id, body)?),
                    "DynamoDBCrudPolicy" => grants.extend(sam_table(id, body, SAM_CRUD_ACTIONS)?),
                    "DynamoDBReadPolicy" => grants.extend(sam_table(id, body, SAM_READ_ACTIONS)?),
                    "DynamoDBWritePolicy" => grants.extend(sam_table(id, body, SAM_WRITE_ACTIONS)?),
                    other
                        if ["DynamoDB", "S3", "SQS"]
                            .iter()
                            .any(|p| other.starts_with(p)) =>
                    {
                        return Err(error(
                            id,
                            format!("policy template {other} is not read locally"),
                        ));
                    }
                    // Templates of other services (LambdaInvokePolicy, …) are not checked.
                    _ => {}
                }
            }
        }
        Ok(Grants { grants })
    }

    /// Adds what SAM grants a function with an SQS trigger.
    pub fn add_sqs_poller(&mut self) {
        self.grants
            .extend(SQS_POLLER_ACTIONS.iter().map(|action| Grant {
                service: Service::Sqs,
                action: (*action).to_owned(),
                scope: Scope::Everything,
            }));
    }

    pub(super) fn allows(&self, service: Service, action: &str, target: Target<'_>) -> bool {
        self.grants.iter().any(|g| {
            g.service == service
                && (g.action == "*" || g.action == action)
                && g.scope.covers(target)
        })
    }
}

fn error(id: &str, reason: impl Into<String>) -> TemplateError {
    TemplateError::Resource {
        resource: id.to_owned(),
        reason: reason.into(),
    }
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn statements(id: &str, body: &Value) -> Result<Vec<Grant>, TemplateError> {
    let mut grants = Vec::new();
    for statement in one_or_many(body) {
        let actions: Vec<(Service, String)> = statement
            .get("Action")
            .map(one_or_many)
            .unwrap_or_default()
            .into_iter()
            .filter_map(Value::as_str)
            .filter_map(Service::of)
            .map(|(service, action)| (service, action.to_owned()))
            .collect();
        if actions.is_empty() {
            continue;
        }
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            return Err(error(id, "only Allow statements are read locally"));
        }
        // Read without them, these would allow more than IAM does.
        for narrowing in ["NotAction", "NotResource"] {
            if statement.get(narrowing).is_some() {
                return Err(error(
                    id,
                    format!("statements with {narrowing} are not read locally"),
                ));
            }
        }
        if let Some(condition) = statement.get("Condition") {
            grants.extend(conditioned_listing(id, &actions, statement, condition)?);
            continue;
        }
        let resources = statement
            .get("Resource")
            .map(one_or_many)
            .unwrap_or_default();
        for resource in resources {
            for (service, action) in &actions {
                let scope = scope(*service, resource).ok_or_else(|| {
                    error(
                        id,
                        format!(
                            "{} resource {resource:?} is not read locally",
                            service.prefix()
                        ),
                    )
                })?;
                grants.push(Grant {
                    service: *service,
                    action: action.clone(),
                    scope,
                });
            }
        }
    }
    Ok(grants)
}

/// The one condition read: `s3:ListBucket` on a bucket, `StringLike` on `s3:prefix`.
fn conditioned_listing(
    id: &str,
    actions: &[(Service, String)],
    statement: &Value,
    condition: &Value,
) -> Result<Vec<Grant>, TemplateError> {
    let unreadable = || {
        error(
            id,
            "the only condition read locally is s3:ListBucket with StringLike on s3:prefix",
        )
    };
    let only_listing = actions
        .iter()
        .all(|(service, action)| *service == Service::S3 && action == "ListBucket");
    let like = condition.get("StringLike").ok_or_else(unreadable)?;
    let single_condition = condition.as_mapping().map(|m| m.len()) == Some(1)
        && like.as_mapping().map(|m| m.len()) == Some(1);
    let patterns: Vec<String> = like
        .get("s3:prefix")
        .map(one_or_many)
        .unwrap_or_default()
        .into_iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if !only_listing || !single_condition || patterns.is_empty() {
        return Err(unreadable());
    }
    let resources = statement
        .get("Resource")
        .map(one_or_many)
        .unwrap_or_default();
    resources
        .into_iter()
        .map(|resource| match scope(Service::S3, resource) {
            Some(Scope::Resource(bucket)) => Ok(Grant {
                service: Service::S3,
                action: "ListBucket".to_owned(),
                scope: Scope::Listing {
                    bucket,
                    patterns: patterns.clone(),
                },
            }),
            _ => Err(unreadable()),
        })
        .collect()
}

/// `{TableName: {Ref: T}}` → the template's actions on T and its indexes.
fn sam_table(id: &str, body: &Value, actions: &[&str]) -> Result<Vec<Grant>, TemplateError> {
    let table = body
        .get("TableName")
        .and_then(|t| t.get("Ref"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            error(
                id,
                "a DynamoDB policy template needs TableName: {Ref: Table}",
            )
        })?;
    Ok(actions
        .iter()
        .flat_map(|action| {
            [
                Scope::Resource(table.to_owned()),
                Scope::AnyIndex(table.to_owned()),
            ]
            .into_iter()
            .map(|scope| Grant {
                service: Service::DynamoDb,
                action: (*action).to_owned(),
                scope,
            })
        })
        .collect())
}

/// The resource a statement names, as the service reads it.
fn scope(service: Service, resource: &Value) -> Option<Scope> {
    if resource.as_str() == Some("*") {
        return Some(Scope::Everything);
    }
    if let Some(parts) = resource.get("Fn::GetAtt").and_then(Value::as_sequence) {
        let logical_id = parts.first()?.as_str()?;
        return (parts.get(1)?.as_str()? == "Arn").then(|| Scope::Resource(logical_id.to_owned()));
    }
    let text = resource.get("Fn::Sub")?.as_str()?;
    let (logical_id, rest) = text.strip_prefix("${")?.split_once(".Arn}")?;
    let logical_id = logical_id.to_owned();
    match (service, rest) {
        (_, "") => Some(Scope::Resource(logical_id)),
        (Service::DynamoDb, "/index/*") => Some(Scope::AnyIndex(logical_id)),
        (Service::DynamoDb, rest) => {
            let index = rest.strip_prefix("/index/")?;
            plain(index).then(|| Scope::Index {
                table: logical_id,
                index: index.to_owned(),
            })
        }
        (Service::S3, rest) => {
            // Only a trailing wildcard: `${B.Arn}/recon/final/*`.
            let prefix = rest.strip_prefix('/')?.strip_suffix('*')?;
            (!prefix.contains(['*', '?', '$'])).then(|| Scope::Objects {
                bucket: logical_id,
                prefix: prefix.to_owned(),
            })
        }
        (Service::Sqs, _) => None,
    }
}

/// A name without wildcards or substitutions.
fn plain(name: &str) -> bool {
    !name.is_empty() && !name.contains(['*', '?', '/', '$'])
}
