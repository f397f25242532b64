//! The batch service: every submission is a batch with a status, its client, its file, its
//! counts (received / processed / accepted / rejected), its sub-batches and timestamps.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::layout::{self, GSI1, GSI1_PK, GSI1_SK};
use super::{Debts, DebtsError};
use crate::ports::{Condition, Cursor, Item, Query, SortKeyRange, UpdateAction};

/// Batches a listing page returns at most.
pub const BATCH_PAGE_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    Received,
    Splitting,
    Processing,
    Completed,
    CompletedWithErrors,
    Failed,
}

impl BatchStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            BatchStatus::Received => "RECEIVED",
            BatchStatus::Splitting => "SPLITTING",
            BatchStatus::Processing => "PROCESSING",
            BatchStatus::Completed => "COMPLETED",
            BatchStatus::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            BatchStatus::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            BatchStatus::Received,
            BatchStatus::Splitting,
            BatchStatus::Processing,
            BatchStatus::Completed,
            BatchStatus::CompletedWithErrors,
            BatchStatus::Failed,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            BatchStatus::Completed | BatchStatus::CompletedWithErrors | BatchStatus::Failed
        )
    }
}

/// How the batch arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// REST, line by line, then submitted.
    Submission,
    /// `POST /debts/files`.
    Upload,
    /// A file dropped in the S3 inbox.
    Drop,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Submission => "submission",
            Source::Upload => "upload",
            Source::Drop => "drop",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Source::Submission, Source::Upload, Source::Drop]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    pub batch_id: String,
    pub client_id: String,
    pub status: BatchStatus,
    pub source: Source,
    pub format: String,
    /// The objects holding the file, in order (one unless uploaded in parts).
    pub file_keys: Vec<String>,
    /// The day missed dates may not be after: the bureau's date when the batch was received.
    pub today: NaiveDate,
    /// Debt lines in the file (known once split).
    pub received: u64,
    pub processed: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub sub_batches: u64,
    pub sub_batches_done: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejections_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    #[serde(skip)]
    pub task_token: Option<String>,
    #[serde(skip)]
    pub notified: bool,
}

fn n(item: &Item, name: &str) -> u64 {
    item.n(name)
        .and_then(|d| u64::try_from(d).ok())
        .unwrap_or(0)
}

fn time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    item.s(name).and_then(|s| s.parse().ok())
}

impl Batch {
    pub fn new(
        batch_id: String,
        client_id: String,
        source: Source,
        format: String,
        file_keys: Vec<String>,
        now: DateTime<Utc>,
    ) -> Batch {
        Batch {
            batch_id,
            client_id,
            status: BatchStatus::Received,
            source,
            format,
            file_keys,
            today: payops_core::debts::bureau_today(now),
            received: 0,
            processed: 0,
            accepted: 0,
            rejected: 0,
            sub_batches: 0,
            sub_batches_done: 0,
            created_at: now,
            updated_at: now,
            split_at: None,
            finished_at: None,
            failure: None,
            rejections_key: None,
            content_sha256: None,
            task_token: None,
            notified: false,
        }
    }

    pub fn to_item(&self) -> Item {
        let created = self.created_at.to_rfc3339();
        Item::new(&layout::batch_key(&self.batch_id))
            .with("client_id", self.client_id.as_str())
            .with("status", self.status.as_str())
            .with("source", self.source.as_str())
            .with("format", self.format.as_str())
            .with("file_keys", self.file_keys.join("\n"))
            .with("today", self.today.to_string())
            .with("received", Decimal::from(self.received))
            .with("processed", Decimal::from(self.processed))
            .with("accepted", Decimal::from(self.accepted))
            .with("rejected", Decimal::from(self.rejected))
            .with("sub_batches", Decimal::from(self.sub_batches))
            .with("sub_batches_done", Decimal::from(self.sub_batches_done))
            .with("created_at", created.as_str())
            .with("updated_at", self.updated_at.to_rfc3339())
            .with(GSI1_PK, layout::client_pk(&self.client_id))
            .with(GSI1_SK, format!("{created}#{}", self.batch_id))
    }

    pub fn from_item(item: &Item) -> Result<Batch, DebtsError> {
        let corrupt = |what: &str| {
            DebtsError::Corrupt(format!(
                "batch item {:?}: {what}",
                item.s(crate::ports::table::PK)
            ))
        };
        let batch_id = item
            .s(crate::ports::table::PK)
            .and_then(|pk| pk.strip_prefix("BATCH#"))
            .ok_or_else(|| corrupt("pk"))?
            .to_owned();
        Ok(Batch {
            batch_id,
            client_id: item
                .s("client_id")
                .ok_or_else(|| corrupt("client_id"))?
                .to_owned(),
            status: item
                .s("status")
                .and_then(BatchStatus::parse)
                .ok_or_else(|| corrupt("status"))?,
            source: item
                .s("source")
                .and_then(Source::parse)
                .ok_or_else(|| corrupt("source"))?,
            format: item
                .s("format")
                .ok_or_else(|| corrupt("format"))?
                .to_owned(),
            file_keys: item
                .s("file_keys")
                .map(|k| k.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            today: item
                .s("today")
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| corrupt("today"))?,
            received: n(item, "received"),
            processed: n(item, "processed"),
            accepted: n(item, "accepted"),
            rejected: n(item, "rejected"),
            sub_batches: n(item, "sub_batches"),
            sub_batches_done: n(item, "sub_batches_done"),
            created_at: time(item, "created_at").ok_or_else(|| corrupt("created_at"))?,
            updated_at: time(item, "updated_at").ok_or_else(|| corrupt("updated_at"))?,
            split_at: time(item, "split_at"),
            finished_at: time(item, "finished_at"),
            failure: item.s("failure").map(str::to_owned),
            rejections_key: item.s("rejections_key").map(str::to_owned),
            content_sha256: item.s("content_sha256").map(str::to_owned),
            task_token: item.s("task_token").map(str::to_owned),
            notified: item
                .get("notified")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }

    /// Every sub-batch is registered.
    pub fn all_processed(&self) -> bool {
        self.sub_batches > 0 && self.sub_batches_done >= self.sub_batches
    }
}

/// One sub-batch of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubBatch {
    pub index: u32,
    pub key: String,
    pub first_line: u64,
    pub lines: u64,
    pub done: bool,
    pub accepted: u64,
    pub rejected: u64,
}

impl SubBatch {
    pub fn to_item(&self, batch_id: &str) -> Item {
        Item::new(&layout::sub_batch_key(batch_id, self.index))
            .with("key", self.key.as_str())
            .with("first_line", Decimal::from(self.first_line))
            .with("lines", Decimal::from(self.lines))
            .with("done", self.done)
    }

    pub fn from_item(item: &Item) -> Option<SubBatch> {
        let index = item
            .s(crate::ports::table::SK)?
            .strip_prefix(layout::SUB_PREFIX)?
            .parse()
            .ok()?;
        Some(SubBatch {
            index,
            key: item.s("key")?.to_owned(),
            first_line: n(item, "first_line"),
            lines: n(item, "lines"),
            done: item.get("done").and_then(|v| v.as_bool()).unwrap_or(false),
            accepted: n(item, "accepted"),
            rejected: n(item, "rejected"),
        })
    }
}

/// A page of a client's batches, newest first.
#[derive(Debug, Serialize)]
pub struct BatchPage {
    pub batches: Vec<Batch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Debts {
    pub async fn batch(&self, batch_id: &str) -> Result<Option<Batch>, DebtsError> {
        match self.table.get(&layout::batch_key(batch_id)).await? {
            Some(item) => Ok(Some(Batch::from_item(&item)?)),
            None => Ok(None),
        }
    }

    pub async fn require_batch(&self, batch_id: &str) -> Result<Batch, DebtsError> {
        self.batch(batch_id)
            .await?
            .ok_or_else(|| DebtsError::NotFound {
                what: "batch",
                id: batch_id.to_owned(),
            })
    }

    /// The sub-batches of a batch, in order.
    pub async fn sub_batches(&self, batch_id: &str) -> Result<Vec<SubBatch>, DebtsError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .table
                .query(
                    Query::partition(layout::batch_pk(batch_id))
                        .sort(SortKeyRange::BeginsWith(layout::SUB_PREFIX.into()))
                        .after(cursor),
                )
                .await?;
            out.extend(page.items.iter().filter_map(SubBatch::from_item));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// A client's batches, newest first.
    pub async fn batches_of(
        &self,
        client_id: &str,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<BatchPage, DebtsError> {
        let page = self
            .table
            .query(
                Query::partition(layout::client_pk(client_id))
                    .on_index(GSI1)
                    .limit(limit.clamp(1, BATCH_PAGE_MAX))
                    .backward()
                    .after(cursor.map(Cursor)),
            )
            .await?;
        Ok(BatchPage {
            batches: page
                .items
                .iter()
                .map(Batch::from_item)
                .collect::<Result<_, _>>()?,
            cursor: page.cursor.map(|c| c.0),
        })
    }

    /// Moves a batch to `to` if it is in one of `from`; false when it was not.
    pub async fn transition(
        &self,
        batch_id: &str,
        from: &[BatchStatus],
        to: BatchStatus,
        mut extra: Vec<UpdateAction>,
    ) -> Result<bool, DebtsError> {
        let now = self.clock.now().to_rfc3339();
        extra.push(UpdateAction::set("status", to.as_str()));
        extra.push(UpdateAction::set("updated_at", now));
        let condition = Condition::And(vec![
            Condition::ItemExists,
            Condition::Or(
                from.iter()
                    .map(|s| Condition::eq("status", s.as_str()))
                    .collect(),
            ),
        ]);
        match self
            .table
            .update(&layout::batch_key(batch_id), extra, Some(condition))
            .await
        {
            Ok(_) => Ok(true),
            Err(crate::ports::TableError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
