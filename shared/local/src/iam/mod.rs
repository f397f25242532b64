//! What `template.yaml` gives each function, enforced locally: its tables, its bucket and its
//! queues come through [`FunctionResources`], which refuses what the function's IAM statements
//! do not allow, as Lambda would answer `AccessDenied`, and it sees only the environment
//! variables the template declares for it. Without it a missing action (say
//! `dynamodb:BatchGetItem`) is found only after deploying, when every message of the function
//! goes to its dead-letter queue; moto does not enforce IAM either.
//!
//! Only what the template uses is understood: `Allow` statements whose resources are
//! `Fn::GetAtt [X, Arn]`, `Fn::Sub "${X.Arn}"`, a table's `"${T.Arn}/index/NAME"` (or `/*`),
//! a bucket's `"${B.Arn}/PREFIX*"`, and `"*"`; SAM's `DynamoDB{Crud,Read,Write}Policy`
//! templates; and, as SAM adds them, the poller's actions on a function's SQS trigger queues.
//! A DynamoDB, S3 or SQS statement in any other form is a template error rather than a
//! silent allow. Other services (Step Functions, EventBridge, Timestream) are not checked.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use payops_app::ports::{
    Blob, BlobError, BlobMeta, BlobPage, Blobs, Clock, Events, Item, Key, Metrics, OutgoingMessage,
    Page, Query, Queue, QueueError, ReceiveOptions, ReceivedMessage, Table, TableError, TableSpec,
    UpdateAction, Workflows, Write,
};
use payops_app::resources::{DATA_BUCKET_LOGICAL_ID, QueueDef, ResourceError, Resources, TableDef};
use payops_core::Secret;

use crate::env::LocalEnv;
use crate::template::FunctionSpec;

mod grants;

pub use grants::Grants;
use grants::{Service, Target};

/// Logs and words a refusal as IAM would.
fn denied(function: &str, service: Service, action: &str, resource: &str) -> String {
    let action = format!("{}:{action}", service.prefix());
    tracing::error!(
        function,
        action = %action,
        resource,
        "access denied: template.yaml's policy for this function does not allow it"
    );
    format!(
        "AccessDenied: function {function} may not perform {action} on {resource} \
         (its Policies in template.yaml)"
    )
}

/// A function's view of the local environment: its tables, bucket and queues answer only
/// what its policy allows, and it sees only its own environment variables.
pub struct FunctionResources<'a> {
    pub env: &'a LocalEnv,
    pub function: &'a FunctionSpec,
}

impl FunctionResources<'_> {
    fn guard(&self) -> Guard {
        Guard {
            function: self.function.binary.clone(),
            grants: self.function.grants.clone(),
        }
    }
}

impl Resources for FunctionResources<'_> {
    fn table(&self, def: &TableDef) -> Result<Arc<dyn Table>, ResourceError> {
        Ok(Arc::new(GuardedTable {
            inner: self.env.table(def)?,
            table: def.logical_id.to_owned(),
            guard: self.guard(),
        }))
    }

    fn queue(&self, def: &QueueDef) -> Result<Arc<dyn Queue>, ResourceError> {
        Ok(Arc::new(GuardedQueue {
            inner: self.env.queue(def)?,
            queue: def.logical_id.to_owned(),
            guard: self.guard(),
        }))
    }

    fn blobs(&self) -> Result<Arc<dyn Blobs>, ResourceError> {
        Ok(Arc::new(GuardedBlobs {
            inner: self.env.blobs()?,
            bucket: DATA_BUCKET_LOGICAL_ID.to_owned(),
            guard: self.guard(),
        }))
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

/// A function's grants, asked before each call.
#[derive(Clone)]
struct Guard {
    function: String,
    grants: Grants,
}

impl Guard {
    /// `Err` with the refusal's words when `action` is not allowed on `target`.
    fn check(&self, service: Service, action: &str, target: Target<'_>) -> Result<(), String> {
        if self.grants.allows(service, action, target) {
            return Ok(());
        }
        let resource = match target {
            Target::Table {
                table,
                index: Some(index),
            } => format!("{table}/index/{index}"),
            Target::Table { table, index: None } => table.to_owned(),
            Target::Listing { bucket, prefix } => format!("{bucket} (list {prefix})"),
            Target::Queue(queue) => queue.to_owned(),
            Target::Object { bucket, key } => format!("{bucket}/{key}"),
        };
        Err(denied(&self.function, service, action, &resource))
    }
}

/// A table that refuses, as IAM would, the operations its function may not perform.
pub struct GuardedTable {
    inner: Arc<dyn Table>,
    table: String,
    guard: Guard,
}

impl GuardedTable {
    fn check(&self, action: &str, index: Option<&str>) -> Result<(), TableError> {
        let target = Target::Table {
            table: &self.table,
            index,
        };
        self.guard
            .check(Service::DynamoDb, action, target)
            .map_err(TableError::Invalid)
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

/// The data bucket, refusing what the function may not do to its objects.
pub struct GuardedBlobs {
    inner: Arc<dyn Blobs>,
    /// The bucket's logical id in the template.
    bucket: String,
    guard: Guard,
}

impl GuardedBlobs {
    fn check_object(&self, action: &str, key: &str) -> Result<(), BlobError> {
        let target = Target::Object {
            bucket: &self.bucket,
            key,
        };
        self.guard
            .check(Service::S3, action, target)
            .map_err(BlobError::Invalid)
    }
}

#[async_trait]
impl Blobs for GuardedBlobs {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<BlobMeta, BlobError> {
        self.check_object("PutObject", key)?;
        self.inner.put(key, body, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        self.check_object("GetObject", key)?;
        self.inner.get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        // HeadObject needs s3:GetObject.
        self.check_object("GetObject", key)?;
        self.inner.head(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<BlobPage, BlobError> {
        let target = Target::Listing {
            bucket: &self.bucket,
            prefix,
        };
        self.guard
            .check(Service::S3, "ListBucket", target)
            .map_err(BlobError::Invalid)?;
        self.inner.list(prefix, continuation).await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.check_object("DeleteObject", key)?;
        self.inner.delete(key).await
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, BlobError> {
        self.check_object("GetObject", key)?;
        self.inner.get_range(key, offset, len).await
    }
}

/// A queue, refusing what the function may not do with it.
pub struct GuardedQueue {
    inner: Arc<dyn Queue>,
    /// The queue's logical id in the template.
    queue: String,
    guard: Guard,
}

impl GuardedQueue {
    fn check(&self, action: &str) -> Result<(), QueueError> {
        self.guard
            .check(Service::Sqs, action, Target::Queue(&self.queue))
            .map_err(QueueError::Invalid)
    }
}

#[async_trait]
impl Queue for GuardedQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn arn(&self) -> &str {
        self.inner.arn()
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        self.check("SendMessage")?;
        self.inner.send_batch(messages).await
    }

    async fn receive(&self, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.check("ReceiveMessage")?;
        self.inner.receive(options).await
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.check("DeleteMessage")?;
        self.inner.delete(receipt_handle).await
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility_timeout_seconds: u32,
    ) -> Result<(), QueueError> {
        self.check("ChangeMessageVisibility")?;
        self.inner
            .change_visibility(receipt_handle, visibility_timeout_seconds)
            .await
    }

    async fn approximate_depth(&self) -> Result<u64, QueueError> {
        self.check("GetQueueAttributes")?;
        self.inner.approximate_depth().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateError;
    use serde_yaml::Value;

    fn allows_table(g: &Grants, action: &str, table: &str, index: Option<&str>) -> bool {
        g.allows(Service::DynamoDb, action, Target::Table { table, index })
    }
    use crate::store::LocalStore;
    use payops_app::ports::ManualClock;

    fn grants(policies: &str) -> Result<Grants, TemplateError> {
        let policies: Value = serde_yaml::from_str(policies).expect("yaml");
        Grants::parse("Fn", Some(&policies))
    }

    fn guard(policies: &str) -> Guard {
        Guard {
            function: "payroll-accounts".into(),
            grants: grants(policies).expect("parsed"),
        }
    }

    #[test]
    fn statements_grant_their_actions_on_the_table_or_the_index_they_name() {
        let g = grants(
            r#"
- Statement:
    - Effect: Allow
      Action: [dynamodb:GetItem, dynamodb:Query, events:PutEvents]
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
        assert!(allows_table(&g, "GetItem", "PayrollTable", None));
        assert!(allows_table(&g, "Query", "PayrollTable", Some("gsi1")));
        assert!(
            !allows_table(&g, "Query", "PayrollTable", Some("gsi2")),
            "another index"
        );
        assert!(
            !allows_table(&g, "BatchGetItem", "PayrollTable", None),
            "an action not listed"
        );
        assert!(allows_table(&g, "PutItem", "LoansTable", None));
        assert!(
            !allows_table(&g, "PutItem", "PayrollTable", None),
            "another table's grant"
        );
        assert!(!allows_table(&g, "GetItem", "LoansTable", None));
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
        assert!(allows_table(&g, "BatchGetItem", "DebtsTable", None));
        assert!(allows_table(&g, "Query", "DebtsTable", Some("gsi9")));
        assert!(
            !allows_table(&g, "PutItem", "DebtsTable", None),
            "read only"
        );
        assert!(allows_table(&g, "Query", "LoansTable", Some("gsi1")));
        assert!(
            !allows_table(&g, "Query", "LoansTable", None),
            "indexes only"
        );
        assert_eq!(Grants::parse("Fn", None).expect("none"), Grants::default());
    }

    fn s3(g: &Guard, action: &str, target: Target<'_>) -> bool {
        g.check(Service::S3, action, target).is_ok()
    }

    fn sqs(g: &Guard, action: &str, queue: &str) -> bool {
        g.check(Service::Sqs, action, Target::Queue(queue)).is_ok()
    }

    fn object(key: &str) -> Target<'_> {
        Target::Object {
            bucket: "DataBucket",
            key,
        }
    }

    fn listing(prefix: &str) -> Target<'_> {
        Target::Listing {
            bucket: "DataBucket",
            prefix,
        }
    }

    #[test]
    fn objects_are_granted_by_key_prefix_and_queues_by_name() {
        let g = guard(
            r#"
- Statement:
    - Effect: Allow
      Action: [s3:GetObject, s3:PutObject]
      Resource: { "Fn::Sub": "${DataBucket.Arn}/payroll/batches/*" }
    - Effect: Allow
      Action: [s3:ListBucket]
      Resource: { "Fn::GetAtt": [DataBucket, Arn] }
    - Effect: Allow
      Action: [sqs:SendMessage]
      Resource: { "Fn::GetAtt": [PayrollPaymentsQueue, Arn] }
"#,
        );
        assert!(s3(&g, "PutObject", object("payroll/batches/b1/x.csv")));
        assert!(!s3(&g, "PutObject", object("payroll/checks/x.json")));
        assert!(!s3(&g, "DeleteObject", object("payroll/batches/b1")));
        assert!(s3(&g, "ListBucket", listing("anything/")));
        assert!(sqs(&g, "SendMessage", "PayrollPaymentsQueue"));
        assert!(!sqs(&g, "SendMessage", "PayrollAccountsQueue"));

        let mut polling = g.clone();
        polling.grants.add_sqs_poller();
        assert!(sqs(&polling, "ReceiveMessage", "PayrollAccountsQueue"));
        assert!(
            !sqs(&polling, "SendMessage", "PayrollAccountsQueue"),
            "polling is not sending"
        );
        assert!(!sqs(
            &polling,
            "ChangeMessageVisibility",
            "PayrollAccountsQueue"
        ));
    }

    #[test]
    fn a_listing_is_granted_under_the_prefixes_its_condition_names() {
        let g = guard(
            r#"
- Statement:
    - Effect: Allow
      Action: [s3:ListBucket]
      Resource: { "Fn::GetAtt": [DataBucket, Arn] }
      Condition: { StringLike: { "s3:prefix": ["recon/*", "exact"] } }
"#,
        );
        assert!(s3(&g, "ListBucket", listing("recon/final/")));
        assert!(s3(&g, "ListBucket", listing("exact")));
        assert!(!s3(&g, "ListBucket", listing("payroll/")));
        assert!(!s3(&g, "ListBucket", listing("exactly")));
    }

    #[test]
    fn a_statement_the_runtime_cannot_read_is_an_error_not_an_allow() {
        for policies in [
            r#"[{Statement: [{Effect: Deny, Action: "dynamodb:*", Resource: "*"}]}]"#,
            r#"[{Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: "*", Condition: {StringLike: {"s3:prefix": "a/*"}}}]}]"#,
            r#"[{Statement: [{Effect: Allow, Action: "s3:ListBucket", Resource: "*", Condition: {Bool: {"aws:SecureTransport": true}}}]}]"#,
            r#"[{Statement: [{Effect: Allow, NotAction: "sqs:DeleteQueue", Action: "sqs:SendMessage", Resource: "*"}]}]"#,
            r#"[{Statement: [{Effect: Allow, Action: "dynamodb:GetItem", Resource: "arn:aws:dynamodb:::table/x"}]}]"#,
            r#"[{Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: {"Fn::Sub": "${DataBucket.Arn}/a/*/b"}}]}]"#,
            r#"[{Statement: [{Effect: Allow, Action: "sqs:SendMessage", Resource: {"Fn::Sub": "${Q.Arn}/x"}}]}]"#,
            r#"[{DynamoDBStreamReadPolicy: {TableName: x, StreamName: y}}]"#,
            r#"[{S3CrudPolicy: {BucketName: x}}]"#,
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
            table: "PayrollTable".into(),
            guard: guard(
                r#"[{Statement: [{Effect: Allow, Action: [dynamodb:GetItem, dynamodb:PutItem], Resource: {"Fn::GetAtt": [PayrollTable, Arn]}}]}]"#,
            ),
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

    #[tokio::test]
    async fn guarded_blobs_and_queues_refuse_what_the_policy_does_not_allow() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let store = LocalStore::open(dir.path(), clock).expect("store");
        let g = guard(
            r#"
- Statement:
    - Effect: Allow
      Action: [s3:PutObject]
      Resource: { "Fn::Sub": "${DataBucket.Arn}/payroll/checks/*" }
    - Effect: Allow
      Action: [sqs:SendMessage]
      Resource: { "Fn::GetAtt": [PayrollAccountsQueue, Arn] }
"#,
        );
        let blobs = GuardedBlobs {
            inner: store.blobs("data"),
            bucket: "DataBucket".into(),
            guard: g.clone(),
        };
        blobs
            .put(
                "payroll/checks/a.json",
                Bytes::from_static(b"{}"),
                "application/json",
            )
            .await
            .expect("allowed");
        let e = blobs
            .get("payroll/checks/a.json")
            .await
            .expect_err("no GetObject");
        assert!(e.to_string().contains("s3:GetObject"), "{e}");
        assert!(
            blobs
                .put("payroll/batches/x", Bytes::new(), "text/plain")
                .await
                .is_err()
        );
        assert!(blobs.list("payroll/", None).await.is_err());

        let queue_config = crate::store::QueueConfig {
            name: "q".into(),
            fifo: false,
            visibility_timeout_seconds: 30,
            dead_letter: None,
        };
        let inner: Arc<dyn Queue> = store.queue(queue_config).expect("queue");
        let queue = |logical_id: &str| GuardedQueue {
            inner: inner.clone(),
            queue: logical_id.to_owned(),
            guard: g.clone(),
        };
        let message = || vec![OutgoingMessage::new("m")];
        queue("PayrollAccountsQueue")
            .send_batch(message())
            .await
            .expect("allowed");
        let e = queue("PayrollPaymentsQueue")
            .send_batch(message())
            .await
            .expect_err("another queue");
        assert!(
            e.to_string()
                .contains("sqs:SendMessage on PayrollPaymentsQueue"),
            "{e}"
        );
        assert!(
            queue("PayrollAccountsQueue")
                .approximate_depth()
                .await
                .is_err()
        );
    }
}
