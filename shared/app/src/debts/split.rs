//! The `split` step: checks a received file and cuts it into sub-batches, streaming it a part
//! at a time (ranged reads), so memory stays flat whatever the file's size.
//!
//! Two passes over the file: the first checks it as a whole (not empty, not binary, its
//! header, at least one debt line) and hashes it, so a duplicate is refused before any debt is
//! registered; the second writes each sub-batch to S3 and announces it on the queue as soon as
//! it is full, so registering starts while the rest is still being split. Re-running the step
//! (a retry, a crash) writes the same sub-batches again; registering is idempotent.

use bytes::Bytes;
use payops_core::debts::{
    DebtFormat, FileError, LineSplitter, builtin_named, decode_header, sniff,
};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::batch::{Batch, BatchStatus, SubBatch};
use super::layout;
use super::register::SubBatchMessage;
use super::{Debts, DebtsError};
use crate::ports::queue::QUEUE_BATCH_MESSAGES_MAX;
use crate::ports::{Condition, Item, OutgoingMessage, TableError, UpdateAction};

/// Bytes read from S3 per request.
pub const SPLIT_READ_BYTES: u64 = 4 << 20;
pub const SUB_BATCH_CONTENT_TYPE: &str = "text/plain";

#[derive(Debug, Clone, Serialize)]
pub struct SplitSummary {
    pub batch_id: String,
    pub lines: u64,
    pub sub_batches: u64,
}

/// What the first pass learnt.
struct Scan {
    sha256: String,
    header: Option<String>,
    debt_lines: u64,
    physical_lines: u64,
}

/// Lines of the sub-batch being filled, and the full ones waiting to be written.
struct Cutter {
    size: usize,
    header_lines: usize,
    line_no: u64,
    current: Vec<u8>,
    current_lines: u64,
    current_first: u64,
    full: Vec<(u64, u64, Vec<u8>)>,
}

impl Cutter {
    fn line(&mut self, raw: &[u8]) {
        self.line_no += 1;
        if self.line_no <= self.header_lines as u64 {
            return;
        }
        if self.current_lines == 0 {
            self.current_first = self.line_no;
        }
        self.current.extend_from_slice(raw);
        self.current.push(b'\n');
        self.current_lines += 1;
        if self.current_lines as usize >= self.size {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.current_lines > 0 {
            let body = std::mem::take(&mut self.current);
            self.full
                .push((self.current_first, self.current_lines, body));
            self.current_lines = 0;
        }
    }
}

fn is_blank(raw: &[u8]) -> bool {
    raw.iter().all(u8::is_ascii_whitespace)
}

impl Debts {
    /// Reads the batch's file in order, a range at a time, calling `each` with every chunk.
    async fn read_file(
        &self,
        batch: &Batch,
        mut each: impl FnMut(&[u8]) -> Result<(), DebtsError>,
    ) -> Result<u64, DebtsError> {
        let mut total = 0u64;
        for key in &batch.file_keys {
            let mut offset = 0u64;
            loop {
                let chunk = self
                    .blobs
                    .get_range(key, offset, SPLIT_READ_BYTES)
                    .await?
                    .ok_or_else(|| {
                        DebtsError::File(FileError::Empty).with_context(format!(
                            "the file {key} is not in the bucket (deleted before it was read?)"
                        ))
                    })?;
                if chunk.is_empty() {
                    break;
                }
                offset += chunk.len() as u64;
                total += chunk.len() as u64;
                each(&chunk)?;
                if (chunk.len() as u64) < SPLIT_READ_BYTES {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// First pass: the file as a whole.
    async fn scan(&self, batch: &Batch, format: &DebtFormat) -> Result<Scan, DebtsError> {
        let mut hasher = Sha256::new();
        let mut splitter = LineSplitter::default();
        let mut first = true;
        let header_lines = format.header_lines() as u64;
        let mut physical = 0u64;
        let mut debt_lines = 0u64;
        let mut header: Option<String> = None;
        let mut on_line = |raw: &[u8]| -> Result<(), FileError> {
            physical += 1;
            if physical == 1 && header_lines > 0 {
                if let Some(at) = memchr_nul(raw) {
                    return Err(FileError::Binary(at));
                }
                let text = decode_header(format, raw).map_err(FileError::HeaderEncoding)?;
                format.plan(Some(&text))?;
                header = Some(text);
            } else if physical > header_lines && !is_blank(raw) {
                debt_lines += 1;
            }
            Ok(())
        };
        let size = self
            .read_file(batch, |chunk| {
                if first {
                    sniff(chunk)?;
                    first = false;
                }
                hasher.update(chunk);
                splitter.feed(chunk, &mut on_line)?;
                Ok(())
            })
            .await?;
        if size == 0 {
            return Err(FileError::Empty.into());
        }
        splitter.finish(&mut on_line)?;
        if debt_lines == 0 {
            return Err(FileError::NoDebts.into());
        }
        Ok(Scan {
            sha256: hex::encode(hasher.finalize()),
            header,
            debt_lines,
            physical_lines: physical,
        })
    }

    /// Refuses a file whose content an earlier batch of the client already had (unless that
    /// batch failed: then the client may send it again).
    async fn claim_content(&self, batch: &Batch, sha256: &str) -> Result<(), DebtsError> {
        let key = layout::file_key(&batch.client_id, sha256);
        let item = Item::new(&key)
            .with("batch_id", batch.batch_id.as_str())
            .with("at", self.clock.now().to_rfc3339());
        let mine = Condition::Or(vec![
            Condition::ItemNotExists,
            Condition::eq("batch_id", batch.batch_id.as_str()),
        ]);
        match self.table.put(item.clone(), Some(mine)).await {
            Ok(()) => return Ok(()),
            Err(TableError::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        }
        let earlier = self
            .table
            .get(&key)
            .await?
            .and_then(|i| i.s("batch_id").map(str::to_owned))
            .unwrap_or_default();
        let earlier_failed = self
            .batch(&earlier)
            .await?
            .is_some_and(|b| b.status == BatchStatus::Failed);
        if earlier_failed {
            match self
                .table
                .put(item, Some(Condition::eq("batch_id", earlier.as_str())))
                .await
            {
                Ok(()) => return Ok(()),
                Err(TableError::ConditionFailed) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(DebtsError::Conflict(format!(
            "the file is a duplicate: batch {earlier} had the same content (sha256 {sha256})"
        )))
    }

    /// The `split` step of the batch's workflow.
    pub async fn split(&self, batch_id: &str) -> Result<SplitSummary, DebtsError> {
        let item = self
            .table
            .get(&layout::batch_key(batch_id))
            .await?
            .ok_or_else(|| DebtsError::NotFound {
                what: "batch",
                id: batch_id.to_owned(),
            })?;
        let batch = Batch::from_item(&item)?;
        let split_done = item.get("split_done").and_then(|v| v.as_bool()) == Some(true);
        if split_done || batch.status.is_final() {
            return Ok(SplitSummary {
                batch_id: batch.batch_id,
                lines: batch.received,
                sub_batches: batch.sub_batches,
            });
        }
        self.transition(
            batch_id,
            &[
                BatchStatus::Received,
                BatchStatus::Splitting,
                BatchStatus::Processing,
            ],
            BatchStatus::Splitting,
            vec![],
        )
        .await?;
        let started = self.clock.now();
        let format = builtin_named(&batch.format)
            .map_err(|e| DebtsError::invalid("format", e.to_string()))?;
        let scan = self.scan(&batch, &format).await?;
        self.claim_content(&batch, &scan.sha256).await?;
        let size = self.config.sub_batch_lines;
        let data_physical = scan.physical_lines - format.header_lines() as u64;
        let sub_batches = data_physical.div_ceil(size as u64);
        self.transition(
            batch_id,
            &[BatchStatus::Splitting],
            BatchStatus::Processing,
            vec![
                UpdateAction::set("received", Decimal::from(scan.debt_lines)),
                UpdateAction::set("sub_batches", Decimal::from(sub_batches)),
                UpdateAction::set("content_sha256", scan.sha256.as_str()),
            ],
        )
        .await?;
        self.write_sub_batches(&batch, &format, scan.header.as_deref(), size)
            .await?;
        let now = self.clock.now();
        self.table
            .update(
                &layout::batch_key(batch_id),
                vec![
                    UpdateAction::set("split_done", true),
                    UpdateAction::set("split_at", now.to_rfc3339()),
                ],
                Some(Condition::ItemExists),
            )
            .await?;
        self.stage_metric(&batch, "split", started, now).await;
        tracing::info!(
            batch_id,
            lines = scan.debt_lines,
            sub_batches,
            "debt file split"
        );
        Ok(SplitSummary {
            batch_id: batch_id.to_owned(),
            lines: scan.debt_lines,
            sub_batches,
        })
    }

    /// Second pass: writes and announces the sub-batches.
    async fn write_sub_batches(
        &self,
        batch: &Batch,
        format: &DebtFormat,
        header: Option<&str>,
        size: usize,
    ) -> Result<(), DebtsError> {
        let mut cutter = Cutter {
            size,
            header_lines: format.header_lines(),
            line_no: 0,
            current: Vec::new(),
            current_lines: 0,
            current_first: 0,
            full: Vec::new(),
        };
        let mut splitter = LineSplitter::default();
        let mut index = 0u32;
        // Chunks are read one at a time; the full sub-batches of each are flushed before the
        // next is read, so at most one chunk's worth waits in memory.
        let mut pending: Vec<(u64, u64, Vec<u8>)> = Vec::new();
        for key in &batch.file_keys {
            let mut offset = 0u64;
            loop {
                let chunk = self
                    .blobs
                    .get_range(key, offset, SPLIT_READ_BYTES)
                    .await?
                    .unwrap_or_default();
                if chunk.is_empty() {
                    break;
                }
                offset += chunk.len() as u64;
                splitter.feed(&chunk, |raw| {
                    cutter.line(raw);
                    Ok::<_, DebtsError>(())
                })?;
                pending.append(&mut cutter.full);
                self.flush(batch, format, header, &mut index, &mut pending)
                    .await?;
                if (chunk.len() as u64) < SPLIT_READ_BYTES {
                    break;
                }
            }
        }
        splitter.finish(|raw| {
            cutter.line(raw);
            Ok::<_, DebtsError>(())
        })?;
        cutter.cut();
        pending.append(&mut cutter.full);
        self.flush(batch, format, header, &mut index, &mut pending)
            .await
    }

    async fn flush(
        &self,
        batch: &Batch,
        format: &DebtFormat,
        header: Option<&str>,
        index: &mut u32,
        pending: &mut Vec<(u64, u64, Vec<u8>)>,
    ) -> Result<(), DebtsError> {
        let mut messages = Vec::new();
        for (first_line, lines, body) in pending.drain(..) {
            let key = layout::sub_batch_object(&batch.batch_id, *index);
            self.blobs
                .put(&key, Bytes::from(body), SUB_BATCH_CONTENT_TYPE)
                .await?;
            let sub = SubBatch {
                index: *index,
                key: key.clone(),
                first_line,
                lines,
                done: false,
                accepted: 0,
                rejected: 0,
            };
            // Kept as it is when it exists: a re-run must not undo a finished sub-batch.
            match self
                .table
                .put(sub.to_item(&batch.batch_id), Some(Condition::ItemNotExists))
                .await
            {
                Ok(()) | Err(TableError::ConditionFailed) => {}
                Err(e) => return Err(e.into()),
            }
            let message = SubBatchMessage {
                batch_id: batch.batch_id.clone(),
                client_id: batch.client_id.clone(),
                index: *index,
                key,
                first_line,
                format: format.name.clone(),
                header: header.map(str::to_owned),
                today: batch.today,
            };
            let body = serde_json::to_string(&message)
                .map_err(|e| DebtsError::Corrupt(format!("sub-batch message: {e}")))?;
            let mut out = OutgoingMessage::new(body);
            out.group_id = Some(batch.batch_id.clone());
            messages.push(out);
            *index += 1;
        }
        for group in messages.chunks(QUEUE_BATCH_MESSAGES_MAX) {
            self.sub_batches.send_batch(group.to_vec()).await?;
        }
        Ok(())
    }
}

fn memchr_nul(raw: &[u8]) -> Option<usize> {
    raw.iter().position(|&b| b == 0)
}

impl DebtsError {
    /// Keeps the kind of a file error but words it for the operator.
    fn with_context(self, message: String) -> DebtsError {
        match self {
            DebtsError::File(_) => DebtsError::invalid("file", message),
            other => other,
        }
    }
}
