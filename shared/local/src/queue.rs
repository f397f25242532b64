//! The `Queue` port on SQLite, with SQS's semantics.
//!
//! A message is a row of `queue_messages`, durable across restarts. Visibility is an absolute
//! time (`visible_at_ms`, from the injected `Clock`): receiving pushes it into the future and
//! issues a new receipt handle, so handles from earlier receives go stale. On the receive
//! after `max_receive_count` receives a message moves to the dead-letter queue instead of
//! being delivered, as SQS does. FIFO queues deliver a group's messages in order and nothing
//! of a group while one of its messages is in flight, and drop a second send of a
//! deduplication id within five minutes (remembered even after the first is deleted).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use payops_app::ports::queue::{
    QUEUE_BATCH_MESSAGES_MAX, QUEUE_MESSAGE_BYTES_MAX, VISIBILITY_TIMEOUT_SECONDS_MAX,
};
use payops_app::ports::{
    Clock, OutgoingMessage, Queue, QueueError, ReceiveOptions, ReceivedMessage,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::sqlite::{Db, DbError};

/// SQS's deduplication interval for FIFO queues.
pub const DEDUPLICATION_WINDOW_MS: i64 = 5 * 60 * 1000;
/// SQS's longest per-message delay (15 minutes).
pub const DELAY_SECONDS_MAX: u32 = 900;
/// SQS's longest long poll.
pub const WAIT_SECONDS_MAX: u32 = 20;
/// SQS's limit on a queue name.
pub const QUEUE_NAME_BYTES_MAX: usize = 80;
/// Longest `max_receive_count` SQS accepts in a redrive policy.
pub const MAX_RECEIVE_COUNT_MAX: u32 = 1000;
/// Rounds of one receive: a round that moves messages to the dead-letter queue is followed
/// by another to fill the batch; a receive may return fewer than asked after this many.
pub const RECEIVE_SCAN_ROUNDS_MAX: usize = 10;
/// How often a long poll looks again when nothing was sent (visibility timeouts expire
/// without a signal).
pub const LONG_POLL_TICK_MS: u64 = 100;
/// Most messages `peek` returns.
pub const PEEK_MESSAGES_MAX: usize = 1000;
/// Region and account in the ARNs of local resources.
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";

pub(crate) const SCHEMA: &str = "
CREATE TABLE queues (
    name                       TEXT PRIMARY KEY,
    fifo                       INTEGER NOT NULL,
    visibility_timeout_seconds INTEGER NOT NULL,
    dead_letter_queue          TEXT,
    max_receive_count          INTEGER
);
CREATE TABLE queue_messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    body             TEXT NOT NULL,
    attributes       TEXT NOT NULL,
    group_id         TEXT,
    deduplication_id TEXT,
    sent_ms          INTEGER NOT NULL,
    visible_at_ms    INTEGER NOT NULL,
    receive_count    INTEGER NOT NULL DEFAULT 0,
    receipt          TEXT
);
CREATE INDEX queue_messages_visible ON queue_messages (queue, visible_at_ms, seq);
CREATE INDEX queue_messages_order ON queue_messages (queue, seq);
CREATE UNIQUE INDEX queue_messages_id ON queue_messages (queue, message_id);
CREATE TABLE queue_dedup (
    queue            TEXT NOT NULL,
    deduplication_id TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    expires_ms       INTEGER NOT NULL,
    PRIMARY KEY (queue, deduplication_id)
) WITHOUT ROWID;
";

/// How a queue is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// 1–80 of `A-Za-z0-9-_`; FIFO queues end in `.fifo`.
    pub name: String,
    pub fifo: bool,
    pub visibility_timeout_seconds: u32,
    pub dead_letter: Option<DeadLetter>,
}

/// SQS's redrive policy: after `max_receive_count` receives a message moves to `queue_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub queue_name: String,
    pub max_receive_count: u32,
}

/// A message as it sits in the queue, for ops views (`peek`); receiving nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message_id: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
    pub visible_at: DateTime<Utc>,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

/// One wake-up signal per queue name, shared by every handle on that queue in the process,
/// so a long poll wakes when anyone sends (the dead-letter redrive included).
pub(crate) type Signals = Arc<Mutex<HashMap<String, Arc<Notify>>>>;

pub(crate) fn signal(signals: &Signals, queue: &str) -> Arc<Notify> {
    // A poisoned lock only means another thread panicked while inserting; the map is fine.
    let mut map = signals.lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(queue.to_owned()).or_default())
}

/// An SQS queue on the shared database.
pub struct LocalQueue {
    db: Db,
    clock: Arc<dyn Clock>,
    config: QueueConfig,
    arn: String,
    signals: Signals,
    /// The last receive through this handle found nothing: the next one asks the reader
    /// first (see `receive_now`). Only a hint; a wrong guess costs one read or one write.
    seen_idle: AtomicBool,
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue")
            .field("config", &self.config)
            .finish()
    }
}

fn unavailable(e: DbError) -> QueueError {
    QueueError::Unavailable(Box::new(e))
}

fn invalid(msg: impl Into<String>) -> QueueError {
    QueueError::Invalid(msg.into())
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Checks a queue name as SQS does.
pub fn validate_queue_name(name: &str, fifo: bool) -> Result<(), String> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty() || name.len() > QUEUE_NAME_BYTES_MAX {
        return Err(format!(
            "queue name must be 1..={QUEUE_NAME_BYTES_MAX} characters: {name:?}"
        ));
    }
    if base.is_empty()
        || !base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "queue name may hold only A-Z a-z 0-9 - _ (and end in .fifo): {name:?}"
        ));
    }
    if fifo != name.ends_with(".fifo") {
        return Err(format!(
            "queue {name:?}: a FIFO queue's name ends in .fifo and only a FIFO queue's does"
        ));
    }
    Ok(())
}

impl LocalQueue {
    /// Records the queue's configuration (replacing an earlier one of the same name). Blocking.
    pub(crate) fn open(
        db: Db,
        clock: Arc<dyn Clock>,
        config: QueueConfig,
        signals: Signals,
    ) -> Result<LocalQueue, String> {
        validate_queue_name(&config.name, config.fifo)?;
        if config.visibility_timeout_seconds > VISIBILITY_TIMEOUT_SECONDS_MAX {
            return Err(format!(
                "queue {}: visibility timeout must be at most {VISIBILITY_TIMEOUT_SECONDS_MAX} s",
                config.name
            ));
        }
        if let Some(dl) = &config.dead_letter {
            validate_queue_name(&dl.queue_name, config.fifo)
                .map_err(|e| format!("dead-letter queue of {}: {e}", config.name))?;
            if dl.queue_name == config.name {
                return Err(format!(
                    "queue {} cannot be its own dead-letter queue",
                    config.name
                ));
            }
            if !(1..=MAX_RECEIVE_COUNT_MAX).contains(&dl.max_receive_count) {
                return Err(format!(
                    "queue {}: max_receive_count must be 1..={MAX_RECEIVE_COUNT_MAX}",
                    config.name
                ));
            }
        }
        let row = config.clone();
        db.call_blocking(move |c| {
            c.execute(
                "INSERT INTO queues (name, fifo, visibility_timeout_seconds, dead_letter_queue, max_receive_count)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE SET fifo = excluded.fifo,
                     visibility_timeout_seconds = excluded.visibility_timeout_seconds,
                     dead_letter_queue = excluded.dead_letter_queue,
                     max_receive_count = excluded.max_receive_count",
                params![
                    row.name,
                    row.fifo,
                    row.visibility_timeout_seconds,
                    row.dead_letter.as_ref().map(|d| d.queue_name.clone()),
                    row.dead_letter.as_ref().map(|d| d.max_receive_count),
                ],
            )
        })
        .map_err(|e| e.to_string())?;
        let arn = format!(
            "arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{}",
            config.name
        );
        Ok(LocalQueue {
            db,
            clock,
            config,
            arn,
            signals,
            seen_idle: AtomicBool::new(true),
        })
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The queue's URL as SQS would give it (the local runtime sets it in env vars).
    pub fn url(&self) -> String {
        format!(
            "https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/{}",
            self.config.name
        )
    }

    /// Moves every message of this queue (typically a dead-letter queue) to `to`, as new,
    /// visible messages with a receive count of 0, keeping their ids. Returns how many moved.
    pub async fn redrive_all(&self, to: &LocalQueue) -> Result<u64, QueueError> {
        if to.config.name == self.config.name {
            return Err(invalid("cannot redrive a queue into itself"));
        }
        let (from, target) = (self.config.name.clone(), to.config.name.clone());
        let now = millis(self.clock.now());
        let moved = self
            .db
            .write(move |tx| {
                let ids: Vec<i64> = {
                    let mut s = tx.prepare_cached(
                        "SELECT seq FROM queue_messages WHERE queue = ?1 ORDER BY seq",
                    )?;
                    s.query_map([&from], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?
                };
                for seq in &ids {
                    move_message(tx, *seq, &target, now)?;
                }
                Ok(Ok::<u64, QueueError>(ids.len() as u64))
            })
            .await
            .map_err(unavailable)??;
        signal(&self.signals, &to.config.name).notify_waiters();
        Ok(moved)
    }

    /// The first `limit` messages in queue order, in flight or not, without receiving them.
    pub async fn peek(&self, limit: usize) -> Result<Vec<QueuedMessage>, QueueError> {
        if limit == 0 || limit > PEEK_MESSAGES_MAX {
            return Err(invalid(format!(
                "peek limit must be 1..={PEEK_MESSAGES_MAX}, got {limit}"
            )));
        }
        let queue = self.config.name.clone();
        let rows = self
            .db
            .call(move |c| {
                let mut s = c.prepare_cached(
                    "SELECT message_id, body, receive_count, sent_ms, visible_at_ms, group_id,
                            deduplication_id, attributes
                     FROM queue_messages WHERE queue = ?1 ORDER BY seq LIMIT ?2",
                )?;
                s.query_map(params![queue, limit as i64], |r| {
                    Ok(QueuedMessage {
                        message_id: r.get(0)?,
                        body: r.get(1)?,
                        receive_count: r.get(2)?,
                        sent_at: from_millis(r.get(3)?),
                        visible_at: from_millis(r.get(4)?),
                        group_id: r.get(5)?,
                        deduplication_id: r.get(6)?,
                        attributes: decode_attributes(&r.get::<_, String>(7)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(unavailable)?;
        Ok(rows)
    }

    /// Makes every message in flight visible now (not delayed ones). For start-up: whoever
    /// received them before a restart is gone, so waiting out their timeouts only delays
    /// the work. Returns how many were released.
    pub async fn release_in_flight(&self) -> Result<u64, QueueError> {
        let queue = self.config.name.clone();
        let now = millis(self.clock.now());
        let released = self
            .db
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE queue_messages SET visible_at_ms = ?2
                         WHERE queue = ?1 AND visible_at_ms > ?2 AND receive_count > 0",
                    )?
                    .execute(params![queue, now])?;
                Ok(Ok::<u64, QueueError>(n as u64))
            })
            .await
            .map_err(unavailable)??;
        if released > 0 {
            signal(&self.signals, &self.config.name).notify_waiters();
        }
        Ok(released)
    }

    /// Every message, visible or in flight (SQS's visible + not-visible counts).
    pub async fn total_messages(&self) -> Result<u64, QueueError> {
        let queue = self.config.name.clone();
        self.db
            .call(move |c| {
                c.prepare_cached("SELECT COUNT(*) FROM queue_messages WHERE queue = ?1")?
                    .query_row([queue], |r| r.get::<_, i64>(0))
            })
            .await
            .map(|n| n as u64)
            .map_err(unavailable)
    }

    fn validate_outgoing(&self, m: &OutgoingMessage) -> Result<(), QueueError> {
        let size = m.body.len()
            + m.attributes
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if m.body.is_empty() {
            return Err(invalid("a message body cannot be empty"));
        }
        if size > QUEUE_MESSAGE_BYTES_MAX {
            return Err(invalid(format!(
                "message is {size} bytes with its attributes, at most {QUEUE_MESSAGE_BYTES_MAX}"
            )));
        }
        if let Some(c) = m.body.chars().find(|c| !sqs_allows(*c)) {
            return Err(invalid(format!(
                "message body holds U+{:04X}, which SQS does not accept",
                u32::from(c)
            )));
        }
        if m.delay_seconds > DELAY_SECONDS_MAX {
            return Err(invalid(format!(
                "delay must be at most {DELAY_SECONDS_MAX} s, got {}",
                m.delay_seconds
            )));
        }
        if self.config.fifo {
            if m.group_id.as_deref().is_none_or(str::is_empty) {
                return Err(invalid("a FIFO queue needs a group_id on every message"));
            }
            if m.deduplication_id.as_deref().is_none_or(str::is_empty) {
                return Err(invalid(
                    "a FIFO queue needs a deduplication_id on every message (no content-based deduplication)",
                ));
            }
            if m.delay_seconds > 0 {
                return Err(invalid("FIFO queues take no per-message delay"));
            }
        }
        Ok(())
    }
}

/// SQS accepts #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
fn sqs_allows(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn encode_attributes(a: &BTreeMap<String, String>) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "{}".to_owned())
}

fn decode_attributes(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Moves one message to the end of `target` as a fresh message with the same id.
fn move_message(tx: &Connection, seq: i64, target: &str, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO queue_messages (queue, message_id, body, attributes, group_id,
             deduplication_id, sent_ms, visible_at_ms, receive_count, receipt)
         SELECT ?1, message_id, body, attributes, group_id, deduplication_id, sent_ms, ?2, 0, NULL
         FROM queue_messages WHERE seq = ?3
         ON CONFLICT (queue, message_id) DO NOTHING",
    )?
    .execute(params![target, now, seq])?;
    tx.prepare_cached("DELETE FROM queue_messages WHERE seq = ?1")?
        .execute([seq])?;
    Ok(())
}

/// A receipt handle: the message id and the nonce of one receive.
fn receipt_handle(message_id: &str) -> String {
    format!("{message_id}.{}", Uuid::new_v4().simple())
}

/// The message id inside a well-formed receipt handle.
fn receipt_message_id(handle: &str) -> Option<&str> {
    let (id, nonce) = handle.rsplit_once('.')?;
    (Uuid::try_parse(id).is_ok()
        && nonce.len() == 32
        && nonce.bytes().all(|b| b.is_ascii_hexdigit()))
    .then_some(id)
}

struct Candidate {
    seq: i64,
    message_id: String,
    body: String,
    attributes: String,
    group_id: Option<String>,
    deduplication_id: Option<String>,
    sent_ms: i64,
    receive_count: u32,
}

struct ReceivePlan {
    queue: String,
    fifo: bool,
    now: i64,
    visible_until: i64,
    max: usize,
    dead_letter: Option<DeadLetter>,
}

impl ReceivePlan {
    /// Delivers up to `max` messages; returns them and whether any moved to the DLQ.
    fn run(&self, tx: &Connection) -> rusqlite::Result<(Vec<ReceivedMessage>, bool)> {
        let mut delivered = Vec::new();
        let mut moved_any = false;
        for _ in 0..RECEIVE_SCAN_ROUNDS_MAX {
            let wanted = self.max - delivered.len();
            let candidates = self.candidates(tx, wanted)?;
            let found = candidates.len();
            let mut moved = 0;
            for c in candidates {
                if let Some(dl) = &self.dead_letter
                    && c.receive_count >= dl.max_receive_count
                {
                    move_message(tx, c.seq, &dl.queue_name, self.now)?;
                    moved += 1;
                    continue;
                }
                delivered.push(self.deliver(tx, c)?);
            }
            moved_any |= moved > 0;
            if moved == 0 || found < wanted || delivered.len() == self.max {
                break;
            }
        }
        Ok((delivered, moved_any))
    }

    fn deliver(&self, tx: &Connection, c: Candidate) -> rusqlite::Result<ReceivedMessage> {
        let handle = receipt_handle(&c.message_id);
        tx.prepare_cached(
            "UPDATE queue_messages SET visible_at_ms = ?1, receive_count = receive_count + 1,
                 receipt = ?2 WHERE seq = ?3",
        )?
        .execute(params![self.visible_until, handle, c.seq])?;
        Ok(ReceivedMessage {
            message_id: c.message_id,
            receipt_handle: handle,
            body: c.body,
            receive_count: c.receive_count + 1,
            sent_at: from_millis(c.sent_ms),
            group_id: c.group_id,
            deduplication_id: c.deduplication_id,
            attributes: decode_attributes(&c.attributes),
        })
    }

    fn candidates(&self, tx: &Connection, limit: usize) -> rusqlite::Result<Vec<Candidate>> {
        // Standard queues: whatever became visible first (best-effort order, as SQS).
        // FIFO: strict send order, skipping every group with a message in flight.
        let sql = if self.fifo {
            "SELECT seq, message_id, body, attributes, group_id, deduplication_id, sent_ms, receive_count
             FROM queue_messages
             WHERE queue = ?1 AND visible_at_ms <= ?2
               AND group_id NOT IN (SELECT group_id FROM queue_messages
                                    WHERE queue = ?1 AND visible_at_ms > ?2 AND group_id IS NOT NULL)
             ORDER BY seq LIMIT ?3"
        } else {
            "SELECT seq, message_id, body, attributes, group_id, deduplication_id, sent_ms, receive_count
             FROM queue_messages
             WHERE queue = ?1 AND visible_at_ms <= ?2
             ORDER BY visible_at_ms, seq LIMIT ?3"
        };
        let mut s = tx.prepare_cached(sql)?;
        s.query_map(params![self.queue, self.now, limit as i64], |r| {
            Ok(Candidate {
                seq: r.get(0)?,
                message_id: r.get(1)?,
                body: r.get(2)?,
                attributes: r.get(3)?,
                group_id: r.get(4)?,
                deduplication_id: r.get(5)?,
                sent_ms: r.get(6)?,
                receive_count: r.get(7)?,
            })
        })?
        .collect()
    }
}

/// What to do with a receipt handle, once checked against the stored message.
enum Receipt {
    Current(i64),
    Stale,
    Gone,
}

fn check_receipt(tx: &Connection, queue: &str, handle: &str) -> rusqlite::Result<Option<Receipt>> {
    let Some(message_id) = receipt_message_id(handle) else {
        return Ok(None);
    };
    let row: Option<(i64, Option<String>)> = tx
        .prepare_cached(
            "SELECT seq, receipt FROM queue_messages WHERE queue = ?1 AND message_id = ?2",
        )?
        .query_row(params![queue, message_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(Some(match row {
        None => Receipt::Gone,
        Some((seq, Some(current))) if current == handle => Receipt::Current(seq),
        Some(_) => Receipt::Stale,
    }))
}

#[async_trait]
impl Queue for LocalQueue {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn arn(&self) -> &str {
        &self.arn
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        if messages.is_empty() || messages.len() > QUEUE_BATCH_MESSAGES_MAX {
            return Err(invalid(format!(
                "a batch holds 1..={QUEUE_BATCH_MESSAGES_MAX} messages, got {}",
                messages.len()
            )));
        }
        for (i, m) in messages.iter().enumerate() {
            self.validate_outgoing(m)
                .map_err(|e| invalid(format!("message {i}: {e}")))?;
        }
        let now = millis(self.clock.now());
        let (queue, fifo) = (self.config.name.clone(), self.config.fifo);
        let ids = self
            .db
            .write(move |tx| {
                if fifo {
                    tx.prepare_cached(
                        "DELETE FROM queue_dedup WHERE queue = ?1 AND expires_ms <= ?2",
                    )?
                    .execute(params![queue, now])?;
                }
                let mut ids = Vec::with_capacity(messages.len());
                for m in messages {
                    ids.push(send_one(tx, &queue, fifo, now, m)?);
                }
                Ok(Ok::<_, QueueError>(ids))
            })
            .await
            .map_err(unavailable)??;
        signal(&self.signals, &self.config.name).notify_waiters();
        Ok(ids)
    }

    async fn receive(&self, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError> {
        if options.max_messages == 0 || options.max_messages > QUEUE_BATCH_MESSAGES_MAX {
            return Err(invalid(format!(
                "max_messages must be 1..={QUEUE_BATCH_MESSAGES_MAX}, got {}",
                options.max_messages
            )));
        }
        if options.wait_seconds > WAIT_SECONDS_MAX {
            return Err(invalid(format!(
                "wait_seconds must be at most {WAIT_SECONDS_MAX}, got {}",
                options.wait_seconds
            )));
        }
        let timeout = options
            .visibility_timeout_seconds
            .unwrap_or(self.config.visibility_timeout_seconds);
        if timeout > VISIBILITY_TIMEOUT_SECONDS_MAX {
            return Err(invalid(format!(
                "visibility timeout must be at most {VISIBILITY_TIMEOUT_SECONDS_MAX} s"
            )));
        }
        // Long polling waits in real time: it is about not spinning, not about the clock.
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(options.wait_seconds.into());
        let wake = signal(&self.signals, &self.config.name);
        loop {
            let notified = wake.notified();
            let got = self.receive_now(options.max_messages, timeout).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let tick = Duration::from_millis(LONG_POLL_TICK_MS).min(deadline - now);
            let _ = tokio::time::timeout(tick, notified).await;
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        let (queue, handle) = (self.config.name.clone(), receipt_handle.to_owned());
        self.db
            .write(move |tx| delete_one(tx, &queue, &handle))
            .await
            .map_err(unavailable)?
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility_timeout_seconds: u32,
    ) -> Result<(), QueueError> {
        if visibility_timeout_seconds > VISIBILITY_TIMEOUT_SECONDS_MAX {
            return Err(invalid(format!(
                "visibility timeout must be at most {VISIBILITY_TIMEOUT_SECONDS_MAX} s"
            )));
        }
        let visible_at = millis(self.clock.now()) + i64::from(visibility_timeout_seconds) * 1000;
        let (queue, handle) = (self.config.name.clone(), receipt_handle.to_owned());
        self.db
            .write(move |tx| {
                Ok(match check_receipt(tx, &queue, &handle)? {
                    Some(Receipt::Current(seq)) => {
                        tx.prepare_cached(
                            "UPDATE queue_messages SET visible_at_ms = ?1 WHERE seq = ?2",
                        )?
                        .execute(params![visible_at, seq])?;
                        Ok(())
                    }
                    _ => Err(QueueError::InvalidReceipt),
                })
            })
            .await
            .map_err(unavailable)??;
        if visibility_timeout_seconds == 0 {
            signal(&self.signals, &self.config.name).notify_waiters();
        }
        Ok(())
    }

    async fn approximate_depth(&self) -> Result<u64, QueueError> {
        let queue = self.config.name.clone();
        let now = millis(self.clock.now());
        self.db
            .call(move |c| {
                c.prepare_cached(
                    "SELECT COUNT(*) FROM queue_messages WHERE queue = ?1 AND visible_at_ms <= ?2",
                )?
                .query_row(params![queue, now], |r| r.get::<_, i64>(0))
            })
            .await
            .map(|n| n as u64)
            .map_err(unavailable)
    }
}

impl LocalQueue {
    /// Deletes up to [`QUEUE_BATCH_MESSAGES_MAX`] received messages in one write, as SQS's
    /// `DeleteMessageBatch`: each handle gets its own answer, in order, and a bad one takes
    /// nothing from the others. One write instead of one per message (the pollers delete
    /// every handled batch this way).
    pub async fn delete_batch(
        &self,
        receipt_handles: Vec<String>,
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        if receipt_handles.len() > QUEUE_BATCH_MESSAGES_MAX {
            return Err(invalid(format!(
                "a batch holds at most {QUEUE_BATCH_MESSAGES_MAX} receipt handles, got {}",
                receipt_handles.len()
            )));
        }
        let queue = self.config.name.clone();
        self.db
            .write(move |tx| {
                let answers = receipt_handles
                    .iter()
                    .map(|handle| delete_one(tx, &queue, handle))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(Ok::<_, QueueError>(answers))
            })
            .await
            .map_err(unavailable)?
    }

    async fn receive_now(
        &self,
        max: usize,
        visibility_timeout_seconds: u32,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = millis(self.clock.now());
        // Most receives find an idle queue (8 pollers per queue, every 50 ms): once a receive
        // has found nothing, the next asks the reader first, which keeps idle polls off the
        // single writer (they were a tenth of the payroll run's writes). A busy queue goes
        // straight to the writer. A message that becomes visible just after the read is
        // received by the next poll.
        if self.seen_idle.load(Ordering::Relaxed) && !self.has_visible(now).await? {
            return Ok(Vec::new());
        }
        let plan = ReceivePlan {
            queue: self.config.name.clone(),
            fifo: self.config.fifo,
            now,
            visible_until: now + i64::from(visibility_timeout_seconds) * 1000,
            max,
            dead_letter: self.config.dead_letter.clone(),
        };
        let (delivered, moved) = self
            .db
            .write(move |tx| plan.run(tx).map(Ok::<_, QueueError>))
            .await
            .map_err(unavailable)??;
        self.seen_idle
            .store(delivered.is_empty(), Ordering::Relaxed);
        if moved && let Some(dl) = &self.config.dead_letter {
            signal(&self.signals, &dl.queue_name).notify_waiters();
        }
        Ok(delivered)
    }

    /// Whether any message is visible at `now`: read on the reader connection, beside the
    /// writer. For FIFO queues it may say yes while every visible message's group is in
    /// flight; the receive then finds nothing, as before.
    async fn has_visible(&self, now: i64) -> Result<bool, QueueError> {
        let queue = self.config.name.clone();
        self.db
            .read(move |c| {
                c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM queue_messages WHERE queue = ?1 AND visible_at_ms <= ?2)",
                )?
                .query_row(params![queue, now], |r| r.get::<_, bool>(0))
            })
            .await
            .map_err(unavailable)
    }
}

/// Deletes the message `handle` was given for, if that is still its latest receipt.
fn delete_one(
    tx: &Connection,
    queue: &str,
    handle: &str,
) -> rusqlite::Result<Result<(), QueueError>> {
    Ok(match check_receipt(tx, queue, handle)? {
        Some(Receipt::Current(seq)) => {
            tx.prepare_cached("DELETE FROM queue_messages WHERE seq = ?1")?
                .execute([seq])?;
            Ok(())
        }
        // Deleting twice is fine, as in SQS.
        Some(Receipt::Gone) => Ok(()),
        Some(Receipt::Stale) | None => Err(QueueError::InvalidReceipt),
    })
}

/// Stores one message (or, for a FIFO duplicate, nothing) and returns its id.
fn send_one(
    tx: &Connection,
    queue: &str,
    fifo: bool,
    now: i64,
    m: OutgoingMessage,
) -> rusqlite::Result<String> {
    let message_id = Uuid::new_v4().to_string();
    if fifo {
        // Validated: FIFO messages carry a deduplication id.
        let dedup = m.deduplication_id.clone().unwrap_or_default();
        let earlier: Option<String> = tx
            .prepare_cached(
                "SELECT message_id FROM queue_dedup WHERE queue = ?1 AND deduplication_id = ?2 AND expires_ms > ?3",
            )?
            .query_row(params![queue, dedup, now], |r| r.get(0))
            .optional()?;
        if let Some(id) = earlier {
            return Ok(id);
        }
        tx.prepare_cached(
            "INSERT INTO queue_dedup (queue, deduplication_id, message_id, expires_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (queue, deduplication_id) DO UPDATE
                 SET message_id = excluded.message_id, expires_ms = excluded.expires_ms",
        )?
        .execute(params![queue, dedup, message_id, now + DEDUPLICATION_WINDOW_MS])?;
    }
    let (group_id, dedup_id) = if fifo {
        (m.group_id, m.deduplication_id)
    } else {
        // Standard queues ignore FIFO fields, as the port says.
        (None, None)
    };
    tx.prepare_cached(
        "INSERT INTO queue_messages (queue, message_id, body, attributes, group_id, deduplication_id,
             sent_ms, visible_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        queue,
        message_id,
        m.body,
        encode_attributes(&m.attributes),
        group_id,
        dedup_id,
        now,
        now + i64::from(m.delay_seconds) * 1000,
    ])?;
    Ok(message_id)
}
