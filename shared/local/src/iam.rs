//! What `template.yaml` gives each function, enforced locally: its tables come through
//! [`FunctionResources`], which refuses what the function's IAM statements do not allow, as
//! Lambda would answer `AccessDeniedException`, and it sees only the environment variables
//! the template declares for it. Without it a missing action
//! (say `dynamodb:BatchGetItem`) is found only after deploying, when every message of the
//! function goes to its dead-letter queue; moto does not enforce IAM either.
//!
//! Only what the template uses is understood: `Allow` statements whose resources are a
//! table's `Fn::GetAtt [T, Arn]`, `Fn::Sub "${T.Arn}"`, `"${T.Arn}/index/NAME"` (or `/*`)
//! and `"*"`, and SAM's `DynamoDB{Crud,Read,Write}Policy` templates. A DynamoDB statement in
//! any other form is a template error rather than a silent allow.

use std::sync::Arc;

use async_trait::async_trait;
use payops_app::ports::{
    Blobs, Clock, Events, Item, Key, Metrics, Page, Query, Queue, Table, TableError, TableSpec,
    UpdateAction, Workflows, Write,
};
use payops_app::resources::{QueueDef, ResourceError, Resources, TableDef};
use payops_core::Secret;
use serde_yaml::Value;

use crate::env::LocalEnv;
use crate::template::{FunctionSpec, TemplateError};

const DYNAMODB_PREFIX: &str = "dynamodb:";
/// SAM's DynamoDBCrudPolicy, DynamoDBReadPolicy and DynamoDBWritePolicy (the actions a table
/// operation of the port can need; each also covers `table/index/*`).
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

/// Which part of a table a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every table and index (`Resource: "*"`).
    Everything,
    Table(String),
    Index {
        table: String,
        index: String,
    },
    AnyIndex(String),
}

impl Scope {
    fn covers(&self, table: &str, index: Option<&str>) -> bool {
        match (self, index) {
            (Scope::Everything, _) => true,
            (Scope::Table(t), None) => t == table,
            (Scope::Index { table: t, index: i }, Some(index)) => t == table && i == index,
            (Scope::AnyIndex(t), Some(_)) => t == table,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// Without the `dynamodb:` prefix; `*` for every action.
    action: String,
    scope: Scope,
}

/// What a function's policies allow on DynamoDB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableGrants {
    grants: Vec<Grant>,
}

impl TableGrants {
    /// Reads the DynamoDB grants of the function `id` from its `Policies`.
    pub fn parse(id: &str, policies: Option<&Value>) -> Result<TableGrants, TemplateError> {
        let mut grants = Vec::new();
        let Some(policies) = policies else {
            return Ok(TableGrants { grants });
        };
        let policies = policies
            .as_sequence()
            .ok_or_else(|| error(id, "Policies must be a list"))?;
        for policy in policies {
            let Some(mapping) = policy.as_mapping() else {
                // A managed policy by name (e.g. AWSLambdaBasicExecutionRole): none are
                // DynamoDB policies in this template; refuse rather than guess.
                return Err(error(id, format!("policy {policy:?} is not read locally")));
            };
            for (name, body) in mapping {
                match name.as_str().unwrap_or_default() {
                    "Statement" => grants.extend(statements(id, body)?),
                    "DynamoDBCrudPolicy" => {
                        grants.extend(sam_template(id, body, SAM_CRUD_ACTIONS)?)
                    }
                    "DynamoDBReadPolicy" => {
                        grants.extend(sam_template(id, body, SAM_READ_ACTIONS)?)
                    }
                    "DynamoDBWritePolicy" => {
                        grants.extend(sam_template(id, body, SAM_WRITE_ACTIONS)?)
                    }
                    other if other.starts_with("DynamoDB") => {
                        return Err(error(
                            id,
                            format!("policy template {other} is not read locally"),
                        ));
                    }
                    // Policies of other services (LambdaInvokePolicy, …) grant no table.
                    _ => {}
                }
            }
        }
        Ok(TableGrants { grants })
    }

    /// Whether `action` (e.g. `GetItem`) is allowed on `table` (an index of it when given).
    pub fn allows(&self, action: &str, table: &str, index: Option<&str>) -> bool {
        self.grants
            .iter()
            .any(|g| (g.action == "*" || g.action == action) && g.scope.covers(table, index))
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
        let actions: Vec<String> = statement
            .get("Action")
            .map(one_or_many)
            .unwrap_or_default()
            .into_iter()
            .filter_map(Value::as_str)
            .filter_map(|a| a.strip_prefix(DYNAMODB_PREFIX))
            .map(str::to_owned)
            .collect();
        if actions.is_empty() {
            continue;
        }
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            return Err(error(
                id,
                "only Allow statements on DynamoDB are read locally",
            ));
        }
        let resources = statement
            .get("Resource")
            .map(one_or_many)
            .unwrap_or_default();
        for resource in resources {
            let scope = scope(resource).ok_or_else(|| {
                error(
                    id,
                    format!("DynamoDB resource {resource:?} is not read locally"),
                )
            })?;
            grants.extend(actions.iter().map(|action| Grant {
                action: action.clone(),
                scope: scope.clone(),
            }));
        }
    }
    Ok(grants)
}

/// `{TableName: {Ref: T}}` → the template's actions on T and its indexes.
fn sam_template(id: &str, body: &Value, actions: &[&str]) -> Result<Vec<Grant>, TemplateError> {
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
                Scope::Table(table.to_owned()),
                Scope::AnyIndex(table.to_owned()),
            ]
            .into_iter()
            .map(|scope| Grant {
                action: (*action).to_owned(),
                scope,
            })
        })
        .collect())
}

fn scope(resource: &Value) -> Option<Scope> {
    if resource.as_str() == Some("*") {
        return Some(Scope::Everything);
    }
    if let Some(parts) = resource.get("Fn::GetAtt").and_then(Value::as_sequence) {
        let table = parts.first()?.as_str()?;
        return (parts.get(1)?.as_str()? == "Arn").then(|| Scope::Table(table.to_owned()));
    }
    let text = resource.get("Fn::Sub")?.as_str()?;
    let rest = text.strip_prefix("${")?;
    let (table, rest) = rest.split_once(".Arn}")?;
    match rest {
        "" => Some(Scope::Table(table.to_owned())),
        "/index/*" => Some(Scope::AnyIndex(table.to_owned())),
        _ => {
            let index = rest.strip_prefix("/index/")?;
            (!index.is_empty() && !index.contains(['*', '/', '$'])).then(|| Scope::Index {
                table: table.to_owned(),
                index: index.to_owned(),
            })
        }
    }
}

/// A function's view of the local environment: its tables answer only what its policy
/// allows. Everything else is the shared [`LocalEnv`].
pub struct FunctionResources<'a> {
    pub env: &'a LocalEnv,
    pub function: &'a FunctionSpec,
}

impl Resources for FunctionResources<'_> {
    fn table(&self, def: &TableDef) -> Result<Arc<dyn Table>, ResourceError> {
        let inner = self.env.table(def)?;
        Ok(Arc::new(GuardedTable {
            inner,
            function: self.function.binary.clone(),
            table: def.logical_id.to_owned(),
            grants: self.function.table_grants.clone(),
        }))
    }

    fn queue(&self, def: &QueueDef) -> Result<Arc<dyn Queue>, ResourceError> {
        self.env.queue(def)
    }

    fn blobs(&self) -> Result<Arc<dyn Blobs>, ResourceError> {
        self.env.blobs()
    }

    fn events(&self) -> Result<Arc<dyn Events>, ResourceError> {
        self.env.events()
    }

    fn metrics(&self) -> Result<Arc<dyn Metrics>, ResourceError> {
        self.env.metrics()
    }

    fn workflows(&self) -> Result<Arc<dyn Workflows>, ResourceError> {
        self.env.workflows()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.env.clock()
    }

    /// Only the variables the template declares for the function: a setting it does not
    /// declare is absent in Lambda, so it is absent here too (the local settings and
    /// development defaults are shared by every function otherwise).
    fn secret(&self, env_var: &'static str) -> Result<Secret<String>, ResourceError> {
        if !self.function.environment.contains(env_var) {
            return Err(ResourceError::MissingEnv(env_var));
        }
        self.env.secret(env_var)
    }
}

/// A table that refuses, as IAM would, the operations its function may not perform.
pub struct GuardedTable {
    inner: Arc<dyn Table>,
    function: String,
    table: String,
    grants: TableGrants,
}

impl GuardedTable {
    fn check(&self, action: &str, index: Option<&str>) -> Result<(), TableError> {
        if self.grants.allows(action, &self.table, index) {
            return Ok(());
        }
        let resource = match index {
            Some(index) => format!("{}/index/{index}", self.table),
            None => self.table.clone(),
        };
        tracing::error!(
            function = %self.function,
            action = %format!("{DYNAMODB_PREFIX}{action}"),
            resource = %resource,
            "access denied: template.yaml's policy for this function does not allow it"
        );
        Err(TableError::Invalid(format!(
            "AccessDenied: function {} may not perform {DYNAMODB_PREFIX}{action} on {resource} \
             (its Policies in template.yaml)",
            self.function
        )))
    }
}

/// The action a write of a transaction needs (TransactWriteItems checks each one).
fn write_action(write: &Write) -> &'static str {
    match write {
        Write::Put { .. } => "PutItem",
        Write::Update { .. } => "UpdateItem",
        Write::Delete { .. } => "DeleteItem",
        Write::ConditionCheck { .. } => "ConditionCheckItem",
    }
}

#[async_trait]
impl Table for GuardedTable {
    fn spec(&self) -> &TableSpec {
        self.inner.spec()
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.check("GetItem", None)?;
        self.inner.get(key).await
    }

    async fn put(
        &self,
        item: Item,
        condition: Option<payops_app::ports::Condition>,
    ) -> Result<(), TableError> {
        self.check("PutItem", None)?;
        self.inner.put(item, condition).await
    }

    async fn update(
        &self,
        key: &Key,
        actions: Vec<UpdateAction>,
        condition: Option<payops_app::ports::Condition>,
    ) -> Result<Item, TableError> {
        self.check("UpdateItem", None)?;
        self.inner.update(key, actions, condition).await
    }

    async fn delete(
        &self,
        key: &Key,
        condition: Option<payops_app::ports::Condition>,
    ) -> Result<Option<Item>, TableError> {
        self.check("DeleteItem", None)?;
        self.inner.delete(key, condition).await
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        self.check("Query", query.index.as_deref())?;
        self.inner.query(query).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        for write in &writes {
            self.check(write_action(write), None)?;
        }
        self.inner.transact(writes).await
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, TableError> {
        self.check("BatchGetItem", None)?;
        self.inner.batch_get(keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;
    use payops_app::ports::ManualClock;

    fn grants(policies: &str) -> Result<TableGrants, TemplateError> {
        let policies: Value = serde_yaml::from_str(policies).expect("yaml");
        TableGrants::parse("Fn", Some(&policies))
    }

    #[test]
    fn statements_grant_their_actions_on_the_table_or_the_index_they_name() {
        let g = grants(
            r#"
- Statement:
    - Effect: Allow
      Action: [dynamodb:GetItem, dynamodb:Query, sqs:SendMessage]
      Resource:
        - Fn::GetAtt: [PayrollTable, Arn]
        - Fn::Sub: "${PayrollTable.Arn}/index/gsi1"
    - Effect: Allow
      Action: dynamodb:PutItem
      Resource: { "Fn::Sub": "${LoansTable.Arn}" }
- LambdaInvokePolicy: { FunctionName: { Ref: Other } }
"#,
        )
        .expect("parsed");
        assert!(g.allows("GetItem", "PayrollTable", None));
        assert!(g.allows("Query", "PayrollTable", Some("gsi1")));
        assert!(
            !g.allows("Query", "PayrollTable", Some("gsi2")),
            "another index"
        );
        assert!(
            !g.allows("BatchGetItem", "PayrollTable", None),
            "an action not listed"
        );
        assert!(g.allows("PutItem", "LoansTable", None));
        assert!(
            !g.allows("PutItem", "PayrollTable", None),
            "another table's grant"
        );
        assert!(!g.allows("GetItem", "LoansTable", None));
    }

    #[test]
    fn sam_templates_and_wildcards_grant_tables_and_their_indexes() {
        let g = grants(
            r#"
- DynamoDBReadPolicy: { TableName: { Ref: DebtsTable } }
- Statement:
    - Effect: Allow
      Action: [dynamodb:Query]
      Resource: { "Fn::Sub": "${LoansTable.Arn}/index/*" }
"#,
        )
        .expect("parsed");
        assert!(g.allows("BatchGetItem", "DebtsTable", None));
        assert!(g.allows("Query", "DebtsTable", Some("gsi9")));
        assert!(!g.allows("PutItem", "DebtsTable", None), "read only");
        assert!(g.allows("Query", "LoansTable", Some("gsi1")));
        assert!(!g.allows("Query", "LoansTable", None), "indexes only");
        assert_eq!(
            TableGrants::parse("Fn", None).expect("none"),
            TableGrants::default()
        );
    }

    #[test]
    fn a_dynamodb_statement_the_runtime_cannot_read_is_an_error_not_an_allow() {
        for policies in [
            r#"[{Statement: [{Effect: Deny, Action: "dynamodb:*", Resource: "*"}]}]"#,
            r#"[{Statement: [{Effect: Allow, Action: "dynamodb:GetItem", Resource: "arn:aws:dynamodb:::table/x"}]}]"#,
            r#"[{DynamoDBStreamReadPolicy: {TableName: x, StreamName: y}}]"#,
            r#"[AmazonDynamoDBFullAccess]"#,
        ] {
            let e = grants(policies).expect_err(policies).to_string();
            assert!(e.contains("Fn"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_guarded_table_refuses_what_the_policy_does_not_allow_and_names_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let store = LocalStore::open(dir.path(), clock).expect("store");
        let table = GuardedTable {
            inner: store.table(TableSpec::new("PayrollTable")).expect("table"),
            function: "payroll-accounts".into(),
            table: "PayrollTable".into(),
            grants: grants(
                r#"[{Statement: [{Effect: Allow, Action: [dynamodb:GetItem, dynamodb:PutItem], Resource: {"Fn::GetAtt": [PayrollTable, Arn]}}]}]"#,
            )
            .expect("parsed"),
        };
        let key = Key::new("A", "B");
        table.put(Item::new(&key), None).await.expect("allowed");
        assert!(table.get(&key).await.expect("allowed").is_some());
        let denied = table
            .batch_get(std::slice::from_ref(&key))
            .await
            .expect_err("denied");
        let text = denied.to_string();
        assert!(
            text.contains("payroll-accounts") && text.contains("dynamodb:BatchGetItem"),
            "{text}"
        );
        // A transaction is refused whole when one of its writes is not allowed.
        let writes = vec![
            Write::Put {
                item: Item::new(&Key::new("C", "D")),
                condition: None,
            },
            Write::Delete {
                key: key.clone(),
                condition: None,
            },
        ];
        assert!(table.transact(writes).await.is_err());
        assert!(table.get(&Key::new("C", "D")).await.expect("get").is_none());
        assert!(table.get(&key).await.expect("get").is_some());
    }
}
