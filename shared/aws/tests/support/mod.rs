//! Test support: one moto server per test binary, and a [`MotoHarness`] that creates fresh,
//! uniquely named AWS resources on it through the SDK.
//!
//! The server is started on first use (`.venv/bin/moto_server`, or `PAYOPS_MOTO_SERVER`) on a
//! free loopback port, behind a small shell watchdog that kills it as soon as the test binary
//! is gone; an `atexit` handler also kills it when the binary exits normally. Nothing is left
//! running either way.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use payops_app::conformance::Harness;
use payops_app::ports::table::{PK, SK};
use payops_app::ports::{Blobs, Events, Metrics, Queue, Table, TableSpec};
use payops_aws::{AwsEnv, DynamoTable, EventBridgeEvents, S3Blobs, SqsQueue, TimestreamMetrics};

/// How long moto may take to answer after it was started.
const MOTO_START_TIMEOUT_MS: u64 = 20_000;
/// Pause between readiness probes.
const MOTO_PROBE_INTERVAL_MS: u64 = 100;
/// Environment variable that overrides the moto_server binary.
const MOTO_SERVER_ENV: &str = "PAYOPS_MOTO_SERVER";

/// The watchdog: starts moto, prints its PID, and kills it when the test binary (`$3`) is
/// gone or moto itself died. It polls because a shell cannot wait on a process it did not
/// start.
const WATCHDOG: &str = r#"
MOTO_PORT="$2" "$1" -H 127.0.0.1 -p "$2" >"$4" 2>&1 &
moto=$!
echo "$moto"
while kill -0 "$3" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 0.2; done
kill "$moto" 2>/dev/null
wait "$moto" 2>/dev/null
"#;

static MOTO_PID: AtomicI32 = AtomicI32::new(0);
static WATCHDOG_PID: AtomicI32 = AtomicI32::new(0);
static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    pub log: PathBuf,
}

/// Kills moto at once (SIGKILL: on SIGTERM moto shuts down gracefully and outlives the test
/// binary for a moment), then its watchdog.
extern "C" fn kill_moto_at_exit() {
    for (pid, signal) in [(&MOTO_PID, libc::SIGKILL), (&WATCHDOG_PID, libc::SIGTERM)] {
        let pid = pid.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) on a PID this process started; no memory is touched.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

fn moto_binary() -> PathBuf {
    match std::env::var_os(MOTO_SERVER_ENV) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"),
    }
}

/// The shared moto server of this test binary, started on first use.
pub fn moto() -> &'static Moto {
    match MOTO.get_or_init(start_moto) {
        Ok(moto) => moto,
        Err(why) => panic!("{why}"),
    }
}

fn start_moto() -> Result<Moto, String> {
    let binary = moto_binary();
    if !binary.exists() {
        return Err(format!(
            "moto is not installed ({} does not exist). Run scripts/test.sh, which installs it \
             (python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5'), \
             or set {MOTO_SERVER_ENV} to a moto_server binary.",
            binary.display()
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))?
        .port();
    // One log per test binary, overwritten on each run: there to read when a case fails.
    let binary_name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        // Cargo names test binaries `{name}-{hash}`; the hash changes with every build.
        .map(|stem| {
            stem.rsplit_once('-')
                .map_or(stem.clone(), |(name, _)| name.to_owned())
        })
        .unwrap_or_else(|| "tests".to_owned());
    let log = std::env::temp_dir().join(format!("payops-moto-{binary_name}.log"));
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("payops-moto-watchdog")
        .arg(&binary)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the moto watchdog: {e}"))?;
    WATCHDOG_PID.store(i32::try_from(watchdog.id()).unwrap_or(0), Ordering::SeqCst);
    // SAFETY: registering a plain `extern "C" fn()` that only calls kill(2).
    unsafe {
        libc::atexit(kill_moto_at_exit);
    }
    let mut first_line = String::new();
    if let Some(out) = watchdog.stdout.take() {
        BufReader::new(out)
            .read_line(&mut first_line)
            .map_err(|e| format!("cannot read moto's PID: {e}"))?;
    }
    MOTO_PID.store(first_line.trim().parse().unwrap_or(0), Ordering::SeqCst);

    let deadline = Instant::now() + Duration::from_millis(MOTO_START_TIMEOUT_MS);
    loop {
        if http(port, "GET", "/moto-api/", "").is_some_and(|(status, _)| status == 200) {
            break;
        }
        if let Ok(Some(status)) = watchdog.try_wait() {
            return Err(format!(
                "moto exited ({status}) before answering; its log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        if Instant::now() > deadline {
            kill_moto_at_exit();
            return Err(format!(
                "moto did not answer on 127.0.0.1:{port} within {MOTO_START_TIMEOUT_MS} ms; log {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(MOTO_PROBE_INTERVAL_MS));
    }
    // Step Functions in "parser mode": a real ASL interpreter instead of canned histories.
    // (moto answers 201 and echoes only its batch and lambda settings.)
    let config =
        r#"{"stepfunctions":{"execute_state_machine":true},"lambda":{"use_docker":false}}"#;
    match http(port, "POST", "/moto-api/config", config) {
        Some((status, _)) if (200..300).contains(&status) => {}
        other => return Err(format!("moto refused its configuration: {other:?}")),
    }
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        log,
    })
}

/// A minimal HTTP/1.0 exchange with moto's own API; `None` when it does not answer.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A unique resource name: `{prefix}-{12 hex digits}`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// Creates fresh resources on moto for one test.
pub struct MotoHarness {
    pub env: AwsEnv,
}

impl MotoHarness {
    pub async fn new() -> MotoHarness {
        let moto = moto();
        MotoHarness {
            env: AwsEnv::for_endpoint(&moto.endpoint).await,
        }
    }

    /// A table keyed by `pk`/`sk` with the given GSIs (`{index}_pk`/`{index}_sk`).
    pub async fn create_table(&self, spec_indexes: &[&str]) -> DynamoTable {
        let spec = spec_indexes
            .iter()
            .fold(TableSpec::new(unique("payops-table")), |s, i| {
                s.with_index(i)
            });
        let string_attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set")
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("name and type are set")
        };
        let mut request = self
            .env
            .dynamodb()
            .create_table()
            .table_name(&spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attr(PK))
            .attribute_definitions(string_attr(SK))
            .key_schema(key(PK, KeyType::Hash))
            .key_schema(key(SK, KeyType::Range));
        for index in &spec.indexes {
            request = request
                .attribute_definitions(string_attr(&index.pk_attr))
                .attribute_definitions(string_attr(&index.sk_attr))
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(&index.name)
                        .key_schema(key(&index.pk_attr, KeyType::Hash))
                        .key_schema(key(&index.sk_attr, KeyType::Range))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .expect("name and key schema are set"),
                );
        }
        request.send().await.expect("create table on moto");
        DynamoTable::new(self.env.dynamodb().clone(), spec)
    }

    /// A queue; with `max_receive_count`, also its dead-letter queue (same kind).
    pub async fn create_queue(
        &self,
        fifo: bool,
        visibility_timeout_seconds: u32,
        max_receive_count: Option<u32>,
    ) -> (SqsQueue, Option<SqsQueue>) {
        let dlq = match max_receive_count {
            Some(_) => Some(self.create_plain_queue(fifo, None, HashMap::new()).await),
            None => None,
        };
        let mut attributes = HashMap::from([(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_seconds.to_string(),
        )]);
        if let (Some(dlq), Some(max)) = (&dlq, max_receive_count) {
            let policy = serde_json::json!({
                "deadLetterTargetArn": payops_app::ports::Queue::arn(dlq),
                "maxReceiveCount": max,
            });
            attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let queue = self.create_plain_queue(fifo, None, attributes).await;
        (queue, dlq)
    }

    pub async fn create_plain_queue(
        &self,
        fifo: bool,
        name: Option<String>,
        mut attributes: HashMap<QueueAttributeName, String>,
    ) -> SqsQueue {
        let mut name = name.unwrap_or_else(|| unique("payops-queue"));
        if fifo {
            name.push_str(".fifo");
            attributes.insert(QueueAttributeName::FifoQueue, "true".into());
        }
        let out = self
            .env
            .sqs()
            .create_queue()
            .queue_name(&name)
            .set_attributes(Some(attributes))
            .send()
            .await
            .expect("create queue on moto");
        let url = out
            .queue_url()
            .expect("CreateQueue returns the URL")
            .to_owned();
        SqsQueue::new(self.env.sqs().clone(), url)
    }

    pub async fn create_bucket(&self) -> S3Blobs {
        let bucket = unique("payops-bucket");
        self.env
            .s3()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket on moto");
        S3Blobs::new(self.env.s3().clone(), bucket)
    }

    pub async fn create_event_bus(&self) -> EventBridgeEvents {
        let bus = unique("payops-bus");
        self.env
            .eventbridge()
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create event bus on moto");
        EventBridgeEvents::new(self.env.eventbridge().clone(), bus)
    }

    /// A consumer of `bus`'s events from `source`: a new queue, the target of a new rule that
    /// matches the source (as a subscriber would set it up).
    pub async fn create_rule_to_queue(&self, bus: &EventBridgeEvents, source: &str) -> SqsQueue {
        let target = self.create_plain_queue(false, None, HashMap::new()).await;
        let rule = unique("payops-rule");
        let eb = self.env.eventbridge();
        eb.put_rule()
            .name(&rule)
            .event_bus_name(bus.bus_name())
            .event_pattern(serde_json::json!({ "source": [source] }).to_string())
            .send()
            .await
            .expect("rule");
        eb.put_targets()
            .rule(&rule)
            .event_bus_name(bus.bus_name())
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(target.arn())
                    .build()
                    .expect("id and arn are set"),
            )
            .send()
            .await
            .expect("target");
        target
    }

    /// A Timestream database and table: (database, table).
    pub async fn create_metrics_table(&self) -> (String, String) {
        let database = unique("payops_db");
        let table = unique("payops_metrics");
        let client = self.env.timestream();
        client
            .create_database()
            .database_name(&database)
            .send()
            .await
            .expect("create Timestream database on moto");
        client
            .create_table()
            .database_name(&database)
            .table_name(&table)
            .send()
            .await
            .expect("create Timestream table on moto");
        (database, table)
    }
}

#[async_trait]
impl Harness for MotoHarness {
    /// moto applies concurrent conditional writes without isolation (seen: 15 of 30 debits of
    /// 7.00 on 100.00 succeeding), which real DynamoDB never does. The concurrency cases then
    /// send their writes one after another, still checking the condition rules.
    fn isolates_concurrent_writes(&self) -> bool {
        false
    }

    async fn table(&self, spec_indexes: &[&str]) -> Arc<dyn Table> {
        Arc::new(self.create_table(spec_indexes).await)
    }

    async fn queue(
        &self,
        fifo: bool,
        visibility_timeout_seconds: u32,
        max_receive_count: Option<u32>,
    ) -> (Arc<dyn Queue>, Option<Arc<dyn Queue>>) {
        let (queue, dlq) = self
            .create_queue(fifo, visibility_timeout_seconds, max_receive_count)
            .await;
        (Arc::new(queue), dlq.map(|d| Arc::new(d) as Arc<dyn Queue>))
    }

    async fn blobs(&self) -> Arc<dyn Blobs> {
        Arc::new(self.create_bucket().await)
    }

    async fn events(&self) -> Arc<dyn Events> {
        Arc::new(self.create_event_bus().await)
    }

    async fn metrics(&self) -> Arc<dyn Metrics> {
        let (database, table) = self.create_metrics_table().await;
        Arc::new(TimestreamMetrics::new(
            self.env.timestream().clone(),
            database,
            table,
        ))
    }

    /// moto keeps real time: visibility timeouts and delays pass only by waiting.
    async fn advance_time(&self, seconds: u32) {
        tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
    }
}
