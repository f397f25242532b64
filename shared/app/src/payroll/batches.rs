//! Batches: upload (HTTP or S3 drop), duplicate detection by content hash, and reading one
//! batch or the list back.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use payops_core::payroll::{self, Finding, Summary};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::layout::{self, BATCHES_PARTITION, GSI1, GSI1_PK, GSI1_SK, attr};
use super::progress::{self, Progress};
use super::{BATCHES_PREFIX, Payroll, PayrollAppError};
use crate::ports::table::QUERY_PAGE_ITEMS_MAX;
use crate::ports::{Condition, Cursor, Item, Query, TableError, Write};

/// Most findings of each level an answer (and `summary.json`) lists; every one is in the
/// batch's `findings.csv` (see [`findings_key`]), which the page links to when the lists are
/// cut. A 50,000-row file of 10,000 employees has about 40,000 repeated-employee warnings.
pub const FINDINGS_LISTED_MAX: usize = 1000;
/// Longest file name kept (only for display).
pub const FILE_NAME_BYTES_MAX: usize = 200;
/// Batches listed per page at most.
pub const LIST_PAGE_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    /// The file has errors: it can never be approved; HR fixes it and uploads again.
    Invalid,
    AwaitingApproval,
    /// Approved; payments are being written.
    Approved,
    /// Every payment is written and enqueued; the provider is working.
    Processing,
    /// Every payment reached a final status and the reports are written.
    Completed,
    /// Nobody approved it in time.
    Expired,
    /// Approved, but its workflow stopped on an error it could not retry (see
    /// `BatchView::failure`). Payments already enqueued go on; `POST
    /// /payroll/batches/{id}/resume` starts the workflow again where it stopped.
    Failed,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 7] = [
        BatchStatus::Invalid,
        BatchStatus::AwaitingApproval,
        BatchStatus::Approved,
        BatchStatus::Processing,
        BatchStatus::Completed,
        BatchStatus::Expired,
        BatchStatus::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Invalid => "INVALID",
            BatchStatus::AwaitingApproval => "AWAITING_APPROVAL",
            BatchStatus::Approved => "APPROVED",
            BatchStatus::Processing => "PROCESSING",
            BatchStatus::Completed => "COMPLETED",
            BatchStatus::Expired => "EXPIRED",
            BatchStatus::Failed => "FAILED",
        }
    }
    pub fn parse(text: &str) -> Option<BatchStatus> {
        BatchStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
    /// Approved at some point (approval is never undone).
    pub fn is_approved(self) -> bool {
        matches!(
            self,
            BatchStatus::Approved
                | BatchStatus::Processing
                | BatchStatus::Completed
                | BatchStatus::Failed
        )
    }
}

/// What arrives: a file's bytes, maybe its name, maybe a deterministic batch id (an S3 drop
/// or an `Idempotency-Key` upload: the same request twice gives the same batch).
#[derive(Debug, Clone)]
pub struct Upload {
    pub body: Bytes,
    pub file_name: Option<String>,
    pub batch_id: Option<String>,
}

/// A batch as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BatchView {
    pub batch_id: String,
    pub status: BatchStatus,
    pub file_name: Option<String>,
    pub created_at: String,
    pub rows: u32,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    pub error_count: u64,
    pub warning_count: u64,
    /// The first batch uploaded with the same content, when this one is a duplicate.
    pub duplicate_of: Option<String>,
    pub approved_at: Option<String>,
    pub approved_by: Option<String>,
    /// Estimated seconds to create what was left at approval.
    pub eta_seconds: Option<u64>,
    pub completed_at: Option<String>,
    /// Why the workflow stopped, when it is `FAILED` (kept after a resume, for the record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<WorkflowFailure>,
    /// Absent in the list; present for one batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<SummaryView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// The error that stopped a batch's workflow, as Step Functions caught it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowFailure {
    /// The task's error type (`Fatal`, `Rejected`, `States.Timeout`, …).
    pub error: String,
    pub cause: String,
    pub failed_at: String,
    /// Times the workflow was started again since it first failed.
    pub resumes: u64,
}

/// The summary HR approves on: totals by source and branch and the bad rows.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SummaryView {
    pub by_source: Vec<serde_json::Value>,
    pub by_branch: Vec<serde_json::Value>,
    pub errors: Vec<serde_json::Value>,
    pub warnings: Vec<serde_json::Value>,
    /// True when the lists above were cut at [`FINDINGS_LISTED_MAX`].
    pub findings_truncated: bool,
}

pub fn file_key(batch_id: &str) -> String {
    format!("{BATCHES_PREFIX}{batch_id}/source.xml")
}
pub fn summary_key(batch_id: &str) -> String {
    format!("{BATCHES_PREFIX}{batch_id}/summary.json")
}
/// Every finding of the file, errors then warnings, each in row order.
pub fn findings_key(batch_id: &str) -> String {
    format!("{BATCHES_PREFIX}{batch_id}/findings.csv")
}
pub const FINDINGS_FILE_NAME: &str = "findings.csv";

/// `level,row,field,reason` for every finding, errors first.
fn findings_csv(summary: &Summary) -> Result<Vec<u8>, PayrollAppError> {
    let fail = |e: csv::Error| PayrollAppError::Join(format!("findings csv: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["level", "row", "field", "reason"])
        .map_err(fail)?;
    let levelled = [("error", &summary.errors), ("warning", &summary.warnings)];
    for (level, findings) in levelled {
        for f in findings.iter() {
            let row = f.row.to_string();
            let reason = f.reason.to_string();
            w.write_record([level, row.as_str(), f.field.path(), reason.as_str()])
                .map_err(fail)?;
        }
    }
    w.into_inner()
        .map_err(|e| PayrollAppError::Join(format!("findings csv: {e}")))
}

/// A new batch id: `b` and a time-ordered UUID in hex.
pub fn new_batch_id() -> String {
    format!("b{}", uuid::Uuid::now_v7().simple())
}

/// A batch id derived from something that names the upload (an idempotency key, an S3 key
/// and version): the same upload always maps to the same batch.
pub fn derived_batch_id(parts: &[&str]) -> String {
    format!("b{}", &sha256_hex_parts(parts)[..32])
}

fn sha256_hex_parts(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

pub fn content_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn findings_json(findings: &[Finding]) -> (Vec<serde_json::Value>, bool) {
    let listed = findings
        .iter()
        .take(FINDINGS_LISTED_MAX)
        .map(|f| serde_json::to_value(f).unwrap_or(serde_json::Value::Null))
        .collect();
    (listed, findings.len() > FINDINGS_LISTED_MAX)
}

fn summary_view(summary: &Summary) -> SummaryView {
    let (errors, cut_e) = findings_json(&summary.errors);
    let (warnings, cut_w) = findings_json(&summary.warnings);
    let to_values = |v: serde_json::Value| match v {
        serde_json::Value::Array(a) => a,
        _ => Vec::new(),
    };
    SummaryView {
        by_source: to_values(serde_json::to_value(&summary.by_source).unwrap_or_default()),
        by_branch: to_values(serde_json::to_value(&summary.by_branch).unwrap_or_default()),
        errors,
        warnings,
        findings_truncated: cut_e || cut_w,
    }
}

fn clean_file_name(name: Option<String>) -> Option<String> {
    let name = name?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or(&name);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(FILE_NAME_BYTES_MAX)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// Reads, validates and records an uploaded file as a batch, and starts its workflow when
/// it can be approved. Uploading the same request again (same deterministic id) answers the
/// batch already recorded.
pub async fn upload(p: &Payroll, upload: Upload) -> Result<BatchView, PayrollAppError> {
    let batch_id = upload.batch_id.clone().unwrap_or_else(new_batch_id);
    if let Some(existing) = p.table.get(&layout::batch_key(&batch_id)).await? {
        return view_of(&existing);
    }
    let body = upload.body.clone();
    let (summary, sha256) = tokio::task::spawn_blocking(move || {
        let summary = payroll::summarize(&body);
        (summary, content_hash(&body))
    })
    .await
    .map_err(|e| PayrollAppError::Join(e.to_string()))?;
    let summary = summary.map_err(|e| PayrollAppError::invalid("file", e.to_string()))?;
    let view = summary_view(&summary);
    let summary_json = serde_json::to_vec(&view)
        .map_err(|e| PayrollAppError::Join(format!("summary not serialisable: {e}")))?;
    let findings = findings_csv(&summary)?;
    // The file and summary first: a batch item never points at a missing object.
    p.blobs
        .put(&file_key(&batch_id), upload.body.clone(), "application/xml")
        .await?;
    p.blobs
        .put(
            &summary_key(&batch_id),
            Bytes::from(summary_json),
            "application/json",
        )
        .await?;
    p.blobs
        .put(&findings_key(&batch_id), Bytes::from(findings), "text/csv")
        .await?;
    let now = p.clock.now();
    let status = if summary.is_approvable() {
        BatchStatus::AwaitingApproval
    } else {
        BatchStatus::Invalid
    };
    let file_name = clean_file_name(upload.file_name);
    let item = batch_item(
        &batch_id,
        status,
        &summary,
        &sha256,
        file_name.as_deref(),
        now,
    );
    let item = record(p, item, &sha256, &batch_id).await?;
    if status == BatchStatus::AwaitingApproval {
        start_workflow(p, &batch_id).await;
    }
    tracing::info!(
        batch_id,
        rows = summary.rows,
        errors = summary.errors.len(),
        duplicate = item.s(attr::DUPLICATE_OF).is_some(),
        "payroll batch uploaded"
    );
    let mut out = view_of(&item)?;
    out.summary = Some(view);
    Ok(out)
}

/// Writes the batch and claims its content hash in one transaction; when the hash is taken,
/// writes the batch as a duplicate of the batch that took it.
async fn record(
    p: &Payroll,
    item: Item,
    sha256: &str,
    batch_id: &str,
) -> Result<Item, PayrollAppError> {
    let hash_item = Item::new(&layout::hash_key(sha256))
        .with(attr::BATCH_ID, batch_id)
        .with(
            attr::CREATED_AT,
            item.s(attr::CREATED_AT).unwrap_or_default(),
        );
    let writes = vec![
        Write::Put {
            item: item.clone(),
            condition: Some(Condition::ItemNotExists),
        },
        Write::Put {
            item: hash_item,
            condition: Some(Condition::ItemNotExists),
        },
    ];
    match p.table.transact(writes).await {
        Ok(()) => return Ok(item),
        Err(e) if e.failed_condition_at(0) => return existing(p, batch_id).await,
        Err(e) if e.failed_condition_at(1) => {}
        Err(e) => return Err(e.into()),
    }
    let first = p
        .table
        .get(&layout::hash_key(sha256))
        .await?
        .and_then(|i| i.s(attr::BATCH_ID).map(str::to_owned))
        .ok_or_else(|| PayrollAppError::Corrupt(format!("HASH#{sha256}")))?;
    let item = item.with(attr::DUPLICATE_OF, first);
    match p
        .table
        .put(item.clone(), Some(Condition::ItemNotExists))
        .await
    {
        Ok(()) => Ok(item),
        Err(TableError::ConditionFailed) => existing(p, batch_id).await,
        Err(e) => Err(e.into()),
    }
}

async fn existing(p: &Payroll, batch_id: &str) -> Result<Item, PayrollAppError> {
    p.table
        .get(&layout::batch_key(batch_id))
        .await?
        .ok_or_else(|| PayrollAppError::UnknownBatch(batch_id.to_owned()))
}

/// Starts the batch's workflow (named after the batch, so starting twice is harmless). A
/// failure is logged: approval starts it again if it is missing.
pub async fn start_workflow(p: &Payroll, batch_id: &str) {
    let input = serde_json::json!({ "batch_id": batch_id });
    match p
        .workflows
        .start_execution(&p.state_machine, batch_id, input)
        .await
    {
        Ok(_) | Err(crate::ports::WorkflowError::AlreadyExists(_)) => {}
        Err(e) => tracing::warn!(batch_id, error = %e, "payroll workflow not started yet"),
    }
}

fn batch_item(
    batch_id: &str,
    status: BatchStatus,
    summary: &Summary,
    sha256: &str,
    file_name: Option<&str>,
    now: DateTime<Utc>,
) -> Item {
    let created_at = layout::time_text(now);
    let mut item = Item::new(&layout::batch_key(batch_id))
        .with(attr::BATCH_ID, batch_id)
        .with(attr::STATUS, status.as_str())
        .with(attr::CREATED_AT, created_at.as_str())
        .with(attr::SHA256, sha256)
        .with(attr::FILE_KEY, file_key(batch_id))
        .with(attr::SUMMARY_KEY, summary_key(batch_id))
        .with(attr::ROWS, i64::from(summary.rows))
        .with(attr::TOTAL, summary.total)
        .with(attr::ERRORS, summary.errors.len() as i64)
        .with(attr::WARNINGS, summary.warnings.len() as i64)
        .with(attr::SOURCES, summary.by_source.len() as i64)
        .with(attr::BRANCHES, summary.by_branch.len() as i64)
        .with(GSI1_PK, BATCHES_PARTITION)
        .with(GSI1_SK, format!("{created_at}#{batch_id}"));
    if let Some(name) = file_name {
        item.set(attr::FILE_NAME, name);
    }
    item
}

fn count(item: &Item, name: &str) -> u64 {
    item.n(name)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// A stored batch item as the API shows it (without summary and progress).
pub fn view_of(item: &Item) -> Result<BatchView, PayrollAppError> {
    let batch_id = item
        .s(attr::BATCH_ID)
        .ok_or_else(|| PayrollAppError::Corrupt("batch without batch_id".into()))?;
    let corrupt = || PayrollAppError::Corrupt(format!("BATCH#{batch_id}"));
    let status = item
        .s(attr::STATUS)
        .and_then(BatchStatus::parse)
        .ok_or_else(corrupt)?;
    let text = |name: &str| item.s(name).map(str::to_owned);
    Ok(BatchView {
        batch_id: batch_id.to_owned(),
        status,
        file_name: text(attr::FILE_NAME),
        created_at: text(attr::CREATED_AT).ok_or_else(corrupt)?,
        rows: u32::try_from(count(item, attr::ROWS)).map_err(|_| corrupt())?,
        total: item.n(attr::TOTAL).ok_or_else(corrupt)?,
        error_count: count(item, attr::ERRORS),
        warning_count: count(item, attr::WARNINGS),
        duplicate_of: text(attr::DUPLICATE_OF),
        approved_at: text(attr::APPROVED_AT),
        approved_by: text(attr::APPROVED_BY),
        eta_seconds: item
            .n(attr::ETA_SECONDS)
            .and_then(|n| u64::try_from(n).ok()),
        completed_at: text(attr::COMPLETED_AT),
        failure: text(attr::FAILED_AT).map(|failed_at| WorkflowFailure {
            error: text(attr::WORKFLOW_ERROR).unwrap_or_default(),
            cause: text(attr::WORKFLOW_CAUSE).unwrap_or_default(),
            failed_at,
            resumes: count(item, attr::RESUMES),
        }),
        summary: None,
        progress: None,
    })
}

/// The batch item, or `UnknownBatch`.
pub async fn load(p: &Payroll, batch_id: &str) -> Result<Item, PayrollAppError> {
    if !payops_core::payroll::is_valid_id(batch_id) {
        return Err(PayrollAppError::UnknownBatch(batch_id.to_owned()));
    }
    existing(p, batch_id).await
}

/// One batch with its summary and progress.
pub async fn get(p: &Payroll, batch_id: &str) -> Result<BatchView, PayrollAppError> {
    let item = load(p, batch_id).await?;
    let mut view = view_of(&item)?;
    if let Some(blob) = p.blobs.get(&summary_key(batch_id)).await? {
        view.summary = serde_json::from_slice(&blob.body).ok();
    }
    if view.status.is_approved() {
        view.progress = Some(progress::read(p, batch_id).await?);
    }
    Ok(view)
}

/// A page of batches, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct BatchList {
    pub batches: Vec<BatchView>,
    pub next_cursor: Option<String>,
}

pub async fn list(
    p: &Payroll,
    limit: usize,
    cursor: Option<String>,
) -> Result<BatchList, PayrollAppError> {
    let limit = limit.clamp(1, LIST_PAGE_MAX.min(QUERY_PAGE_ITEMS_MAX));
    let page = p
        .table
        .query(
            Query::partition(BATCHES_PARTITION)
                .on_index(GSI1)
                .backward()
                .limit(limit)
                .after(cursor.map(Cursor)),
        )
        .await?;
    let mut batches = Vec::with_capacity(page.items.len());
    for item in &page.items {
        let mut view = view_of(item)?;
        if view.status.is_approved() {
            view.progress = Some(progress::read(p, &view.batch_id).await?);
        }
        batches.push(view);
    }
    Ok(BatchList {
        batches,
        next_cursor: page.cursor.map(|c| c.0),
    })
}
