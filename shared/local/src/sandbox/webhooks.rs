//! Webhook delivery: signed `POST`s of payment events to the configured URL, retried with
//! backoff until acknowledged (2xx), optionally duplicated and reordered, as real providers do.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use payops_app::ports::provider::{WebhookEvent, headers};
use payops_core::Secret;
use payops_core::webhook_signature;
use serde::{Deserialize, Serialize};

use super::SplitMix;
use super::journal::{Change, ChangeLog};
use super::state::PPM;
use crate::client::HttpClient;

/// Attempts per delivery (the first included) before it is dropped and counted.
pub const WEBHOOK_ATTEMPTS_MAX: u32 = 8;
/// Retry backoff: base × 2^attempt, capped.
pub const WEBHOOK_RETRY_BASE_MS: i64 = 250;
pub const WEBHOOK_RETRY_CAP_MS: i64 = 30_000;
/// Time allowed for the receiver to answer one delivery.
pub const WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// Most deliveries sent by one `deliver_due` call; the rest wait for the next.
pub const DELIVERY_BATCH_MAX: usize = 2_048;
/// Most deliveries in flight at once that a configuration may ask for.
pub const WEBHOOK_CONCURRENCY_MAX: usize = 256;

/// Deliveries in flight at once unless configured.
pub const WEBHOOK_CONCURRENCY_DEFAULT: usize = 64;
/// Most events batched into one delivery (the receiver's own limit).
pub const WEBHOOK_EVENTS_PER_DELIVERY_MAX: usize =
    payops_app::payroll::webhook::WEBHOOK_EVENTS_PER_DELIVERY_MAX;
/// Largest body of a batched delivery (a single event is never split or refused).
pub const WEBHOOK_BATCH_BYTES_MAX: usize = payops_app::payroll::webhook::WEBHOOK_BYTES_MAX;

/// What the deliveries do besides delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookOptions {
    /// Events delivered twice, in parts per million.
    pub duplicate_ppm: u64,
    /// Each delivery is held back a random time up to this, and each batch is shuffled, so
    /// events of one payment may arrive out of order. 0: in order of the changes.
    pub reorder_window_ms: i64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Events sent together in one delivery, as a JSON array (1: each event alone, as an
    /// object). Older state files have no such field: one event per delivery.
    #[serde(default = "one")]
    pub events_per_delivery: usize,
}

fn one() -> usize {
    1
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            duplicate_ppm: 0,
            reorder_window_ms: 0,
            concurrency: WEBHOOK_CONCURRENCY_DEFAULT,
            events_per_delivery: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    body: String,
    attempts: u32,
}

impl Delivery {
    /// A first attempt of `body`.
    pub fn new(body: String) -> Delivery {
        Delivery { body, attempts: 0 }
    }
}

/// Where a delivery is in the outbox: its due time and its sequence number.
type DueKey = (i64, u64);

/// Counters of the deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStats {
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dropped: u64,
    pub pending: u64,
}

/// The queue of deliveries, by due time. Serialisable with the sandbox's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outbox {
    #[serde(with = "due_as_list")]
    due: BTreeMap<DueKey, Delivery>,
    /// Taken to be sent and not yet answered: kept, so that a restart sends them again
    /// (at least once) instead of losing them.
    #[serde(default, with = "due_as_list")]
    in_flight: BTreeMap<DueKey, Delivery>,
    next_seq: u64,
    stats: DeliveryStats,
    #[serde(skip)]
    log: ChangeLog,
}

impl Outbox {
    /// Queues `events` at `now`, each with its duplicates and reordering delays.
    pub fn enqueue(
        &mut self,
        events: &[WebhookEvent],
        now: DateTime<Utc>,
        options: &WebhookOptions,
        rng: &mut SplitMix,
    ) {
        for event in events {
            // An event that does not serialise is a bug in the port types; skip it loudly.
            let body = match serde_json::to_string(event) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(event = %event.id, error = %e, "webhook event not serialisable");
                    continue;
                }
            };
            let copies = if rng.next_u64() % PPM < options.duplicate_ppm {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = if options.reorder_window_ms > 0 {
                    (rng.next_u64() % (options.reorder_window_ms as u64 + 1)) as i64
                } else {
                    0
                };
                self.push(now.timestamp_millis() + delay, body.clone(), 0);
            }
        }
    }

    fn push(&mut self, due_ms: i64, body: String, attempts: u32) {
        self.next_seq += 1;
        let delivery = Delivery { body, attempts };
        let seq = self.next_seq;
        self.log.record(|| Change::Queued {
            due_ms,
            seq,
            delivery: delivery.clone(),
        });
        self.due.insert((due_ms, self.next_seq), delivery);
    }

    /// Takes the deliveries due at `now` (at most [`DELIVERY_BATCH_MAX`]), which stay in
    /// flight until [`Outbox::finish`].
    fn take_due(&mut self, now_ms: i64) -> Vec<(DueKey, Delivery)> {
        let mut out = Vec::new();
        while out.len() < DELIVERY_BATCH_MAX {
            match self.due.first_key_value() {
                Some((&(due, _), _)) if due <= now_ms => {
                    if let Some((key, d)) = self.due.pop_first() {
                        self.in_flight.insert(key, d.clone());
                        out.push((key, d));
                    }
                }
                _ => break,
            }
        }
        out
    }

    /// A delivery taken by [`Outbox::take_due`] is answered (or given up, or queued again).
    fn finish(&mut self, key: DueKey) {
        self.in_flight.remove(&key);
        self.log.record(|| Change::Done {
            due_ms: key.0,
            seq: key.1,
        });
    }

    pub fn stats(&self) -> DeliveryStats {
        DeliveryStats {
            pending: (self.due.len() + self.in_flight.len()) as u64,
            ..self.stats
        }
    }

    /// No delivery waits or is in flight.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty() && self.in_flight.is_empty()
    }

    /// The changes not yet journaled.
    pub fn changes(&mut self) -> &mut ChangeLog {
        &mut self.log
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Restores the counters from the journal.
    pub fn restore_counters(&mut self, next_seq: u64, stats: DeliveryStats) {
        self.next_seq = self.next_seq.max(next_seq);
        self.stats = stats;
    }

    /// Replays a journaled change of the outbox.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Queued {
                due_ms,
                seq,
                delivery,
            } => {
                self.next_seq = self.next_seq.max(seq);
                self.due.insert((due_ms, seq), delivery);
            }
            Change::Done { due_ms, seq } => {
                self.due.remove(&(due_ms, seq));
                self.in_flight.remove(&(due_ms, seq));
            }
            _ => {}
        }
    }

    /// After a restart: what was in flight was never answered, so it is sent again.
    pub fn requeue_in_flight(&mut self) {
        let in_flight = std::mem::take(&mut self.in_flight);
        self.due.extend(in_flight);
    }
}

/// JSON maps need string keys: the queue is stored as a list of (due, seq, delivery).
mod due_as_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    type Due = BTreeMap<DueKey, Delivery>;

    pub fn serialize<S: Serializer>(due: &Due, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(due.iter().map(|(&(at, seq), d)| (at, seq, d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Due, D::Error> {
        let list = Vec::<(i64, u64, Delivery)>::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(|(at, seq, delivery)| ((at, seq), delivery))
            .collect())
    }
}

/// Where and how to deliver.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub secret: Secret<String>,
}

/// Sends what is due in `outbox` (taken under the caller's lock, sent outside it) and puts
/// back what failed. Returns how many were acknowledged.
pub async fn deliver_due(
    outbox: &std::sync::Mutex<Outbox>,
    rng: &std::sync::Mutex<SplitMix>,
    target: &Target,
    options: &WebhookOptions,
    client: &HttpClient,
    now: DateTime<Utc>,
) -> u64 {
    use futures::StreamExt;

    let now_ms = now.timestamp_millis();
    let mut batch = lock(outbox).take_due(now_ms);
    if batch.is_empty() {
        return 0;
    }
    if options.reorder_window_ms > 0 {
        shuffle(&mut batch, &mut lock(rng));
    }
    let t = now.timestamp();
    let chunks = into_chunks(batch, options.events_per_delivery);
    let results: Vec<(Vec<(DueKey, Delivery)>, bool)> = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let ok = send(client, target, t, &chunk_body(&chunk)).await;
            (chunk, ok)
        })
        // Unordered: a slow delivery must not hold the others' places (each result carries
        // its own deliveries, so the order they finish in does not matter).
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut delivered = 0;
    let mut outbox = lock(outbox);
    for d in results
        .into_iter()
        .flat_map(|(chunk, ok)| chunk.into_iter().map(move |d| (d, ok)))
    {
        let ((key, d), ok) = d;
        outbox.finish(key);
        if ok {
            delivered += 1;
            outbox.stats.delivered += 1;
            continue;
        }
        outbox.stats.failed_attempts += 1;
        let attempts = d.attempts + 1;
        if attempts >= WEBHOOK_ATTEMPTS_MAX {
            outbox.stats.dropped += 1;
            tracing::warn!(attempts, "webhook delivery dropped after its last attempt");
        } else {
            let backoff = (WEBHOOK_RETRY_BASE_MS << attempts.min(20)).min(WEBHOOK_RETRY_CAP_MS);
            outbox.push(now_ms + backoff, d.body, attempts);
        }
    }
    delivered
}

/// Consecutive deliveries grouped by at most `per_delivery` events and, for a group of more
/// than one, [`WEBHOOK_BATCH_BYTES_MAX`] bytes.
fn into_chunks(
    deliveries: Vec<(DueKey, Delivery)>,
    per_delivery: usize,
) -> Vec<Vec<(DueKey, Delivery)>> {
    let per_delivery = per_delivery.clamp(1, WEBHOOK_EVENTS_PER_DELIVERY_MAX);
    let mut chunks: Vec<Vec<(DueKey, Delivery)>> = Vec::new();
    let mut bytes = 0;
    for d in deliveries {
        let fits = chunks.last().is_some_and(|c| {
            c.len() < per_delivery && bytes + d.1.body.len() + 2 <= WEBHOOK_BATCH_BYTES_MAX
        });
        if !fits {
            chunks.push(Vec::with_capacity(per_delivery));
            bytes = 2;
        }
        bytes += d.1.body.len() + 1;
        // `chunks` is not empty: a chunk was pushed above if there was none.
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(d);
        }
    }
    chunks
}

/// One event as itself; several as a JSON array of them.
fn chunk_body(chunk: &[(DueKey, Delivery)]) -> std::borrow::Cow<'_, str> {
    match chunk {
        [(_, one)] => std::borrow::Cow::Borrowed(one.body.as_str()),
        many => {
            let mut body = String::with_capacity(
                many.iter().map(|(_, d)| d.body.len() + 1).sum::<usize>() + 1,
            );
            body.push('[');
            for (i, (_, d)) in many.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&d.body);
            }
            body.push(']');
            std::borrow::Cow::Owned(body)
        }
    }
}

async fn send(client: &HttpClient, target: &Target, t: i64, body: &str) -> bool {
    let signature = webhook_signature::sign(target.secret.expose().as_bytes(), t, body.as_bytes());
    let signature_header = [(headers::SIGNATURE, signature.as_str())];
    let request = client.post_json(&target.url, &signature_header, Bytes::from(body.to_owned()));
    match tokio::time::timeout(Duration::from_millis(WEBHOOK_TIMEOUT_MS), request).await {
        Ok(Ok(r)) if (200..300).contains(&r.status) => true,
        Ok(Ok(r)) => {
            tracing::debug!(status = r.status, "webhook not acknowledged");
            false
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "webhook not delivered");
            false
        }
        Err(_) => false,
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut SplitMix) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data is still consistent for our use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_in_flight_at_a_crash_is_sent_again_and_gone_once_answered() {
        let mut outbox = Outbox::default();
        outbox.changes().start();
        outbox.push(10, "{}".to_owned(), 0);
        let taken = outbox.take_due(10);
        assert_eq!(taken.len(), 1);
        assert!(!outbox.is_empty(), "a delivery in flight is not done");
        assert_eq!(outbox.stats().pending, 1);

        // A snapshot taken while it is in flight, loaded after a crash.
        let text = serde_json::to_string(&outbox).unwrap();
        let mut loaded: Outbox = serde_json::from_str(&text).unwrap();
        loaded.requeue_in_flight();
        assert_eq!(loaded.take_due(10).len(), 1);

        // The journal: queued, never answered.
        let mut replayed = Outbox::default();
        for change in outbox.changes().take() {
            replayed.apply(change);
        }
        assert_eq!(replayed.take_due(10).len(), 1);

        // Answered: gone, from the outbox and from what replays its journal.
        outbox.finish(taken[0].0);
        assert!(outbox.is_empty());
        for change in outbox.changes().take() {
            replayed.apply(change);
        }
        assert!(replayed.is_empty());
    }
}
