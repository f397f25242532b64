//! Conformance cases of the `Queue` port (SQS semantics).

use std::collections::BTreeMap;

use super::{
    HOLD_VISIBILITY_TIMEOUT_SECONDS, Harness, WAIT_SECONDS, WAIT_VISIBILITY_TIMEOUT_SECONDS,
};
use crate::ports::queue::{QUEUE_BATCH_MESSAGES_MAX, QUEUE_MESSAGE_BYTES_MAX};
use crate::ports::{OutgoingMessage, Queue, QueueError, ReceiveOptions, ReceivedMessage};

/// Receives a standard queue may need to return every visible message (SQS samples servers).
const RECEIVE_ATTEMPTS_MAX: usize = 10;

fn fifo_message(body: &str, group: &str, dedup: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_owned(),
        group_id: Some(group.to_owned()),
        deduplication_id: Some(dedup.to_owned()),
        ..Default::default()
    }
}

async fn send(q: &dyn Queue, messages: Vec<OutgoingMessage>) -> Vec<String> {
    let n = messages.len();
    let ids = q
        .send_batch(messages)
        .await
        .unwrap_or_else(|e| panic!("send_batch failed: {e}"));
    assert_eq!(ids.len(), n, "one message id per message");
    ids
}

async fn receive_once(q: &dyn Queue, max_messages: usize) -> Vec<ReceivedMessage> {
    q.receive(ReceiveOptions {
        max_messages,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("receive failed: {e}"))
}

/// Receives until `expected` messages came back or attempts run out.
async fn receive_n(q: &dyn Queue, expected: usize) -> Vec<ReceivedMessage> {
    let mut got = Vec::new();
    for _ in 0..RECEIVE_ATTEMPTS_MAX {
        if got.len() >= expected {
            break;
        }
        got.extend(receive_once(q, QUEUE_BATCH_MESSAGES_MAX).await);
    }
    assert_eq!(
        got.len(),
        expected,
        "received {:?}",
        got.iter().map(|m| &m.body).collect::<Vec<_>>()
    );
    got
}

async fn assert_nothing_visible(q: &dyn Queue, why: &str) {
    let got = receive_once(q, QUEUE_BATCH_MESSAGES_MAX).await;
    assert!(
        got.is_empty(),
        "{why}: expected nothing, received {:?}",
        got.iter().map(|m| &m.body).collect::<Vec<_>>()
    );
}

async fn delete(q: &dyn Queue, m: &ReceivedMessage) {
    q.delete(&m.receipt_handle)
        .await
        .unwrap_or_else(|e| panic!("delete of {:?} failed: {e}", m.body));
}

fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// send_batch, receive and delete; bodies, ids and attributes survive the trip.
pub async fn queue_send_receive_delete(h: &dyn Harness) {
    let (q, _) = h.queue(false, HOLD_VISIBILITY_TIMEOUT_SECONDS, None).await;
    assert!(!q.name().is_empty() && !q.arn().is_empty());
    let mut with_attributes = OutgoingMessage::new("{\"n\":2,\"text\":\"ação\"}");
    with_attributes.attributes = BTreeMap::from([("trace".to_owned(), "t-1".to_owned())]);
    let ids = send(
        &*q,
        vec![
            OutgoingMessage::new("one"),
            with_attributes,
            OutgoingMessage::new("three"),
        ],
    )
    .await;
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 3, "distinct message ids: {ids:?}");
    assert_eq!(q.approximate_depth().await.expect("depth"), 3);

    let mut got = receive_n(&*q, 3).await;
    got.sort_by_key(|m| ids.iter().position(|id| *id == m.message_id));
    assert_eq!(
        bodies(&got),
        ["one", "{\"n\":2,\"text\":\"ação\"}", "three"]
    );
    for (m, id) in got.iter().zip(&ids) {
        assert_eq!(&m.message_id, id);
        assert_eq!(m.receive_count, 1);
        assert!(!m.receipt_handle.is_empty());
    }
    assert_eq!(
        got[1].attributes.get("trace").map(String::as_str),
        Some("t-1")
    );
    assert_eq!(
        q.approximate_depth().await.expect("depth"),
        0,
        "in flight is not visible"
    );
    assert_nothing_visible(&*q, "all three in flight").await;
    for m in &got {
        delete(&*q, m).await;
    }
    assert_nothing_visible(&*q, "all deleted").await;
    assert_eq!(q.approximate_depth().await.expect("depth"), 0);
}

/// A received message is invisible until its visibility timeout passes, then comes back with
/// a higher receive count and a new receipt handle.
pub async fn queue_visibility_timeout_and_receive_count(h: &dyn Harness) {
    let (q, _) = h.queue(false, WAIT_VISIBILITY_TIMEOUT_SECONDS, None).await;
    send(&*q, vec![OutgoingMessage::new("retry me")]).await;
    let first = receive_n(&*q, 1).await.remove(0);
    assert_eq!(first.receive_count, 1);
    assert_nothing_visible(&*q, "in flight").await;

    h.advance_time(WAIT_SECONDS).await;
    let second = receive_n(&*q, 1).await.remove(0);
    assert_eq!(second.message_id, first.message_id);
    assert_eq!(second.body, "retry me");
    assert_eq!(second.receive_count, 2);
    assert_ne!(second.receipt_handle, first.receipt_handle);
    delete(&*q, &second).await;

    h.advance_time(WAIT_SECONDS).await;
    assert_nothing_visible(&*q, "deleted messages never come back").await;
}

/// change_visibility to 0 releases a message at once; a longer timeout keeps it hidden past
/// the queue's default; a per-receive timeout overrides the queue's.
pub async fn queue_change_visibility(h: &dyn Harness) {
    let (q, _) = h.queue(false, WAIT_VISIBILITY_TIMEOUT_SECONDS, None).await;
    send(&*q, vec![OutgoingMessage::new("m")]).await;
    let first = receive_n(&*q, 1).await.remove(0);
    q.change_visibility(&first.receipt_handle, 0)
        .await
        .expect("release");
    let second = receive_n(&*q, 1).await.remove(0);
    assert_eq!(second.receive_count, 2);

    q.change_visibility(&second.receipt_handle, HOLD_VISIBILITY_TIMEOUT_SECONDS)
        .await
        .expect("extend");
    h.advance_time(WAIT_SECONDS).await;
    assert_nothing_visible(&*q, "the extended timeout has not passed").await;
    q.change_visibility(&second.receipt_handle, 0)
        .await
        .expect("release after extending");

    let third = q
        .receive(ReceiveOptions {
            max_messages: 1,
            visibility_timeout_seconds: Some(HOLD_VISIBILITY_TIMEOUT_SECONDS),
            wait_seconds: 0,
        })
        .await
        .expect("receive with a visibility override");
    assert_eq!(bodies(&third), ["m"]);
    h.advance_time(WAIT_SECONDS).await;
    assert_nothing_visible(&*q, "the per-receive timeout has not passed").await;
    delete(&*q, &third[0]).await;
}

/// A delayed message becomes visible only after its delay.
pub async fn queue_delay_seconds(h: &dyn Harness) {
    let (q, _) = h.queue(false, HOLD_VISIBILITY_TIMEOUT_SECONDS, None).await;
    let mut later = OutgoingMessage::new("later");
    later.delay_seconds = WAIT_VISIBILITY_TIMEOUT_SECONDS;
    send(&*q, vec![later, OutgoingMessage::new("now")]).await;
    let now = receive_n(&*q, 1).await;
    assert_eq!(bodies(&now), ["now"]);
    assert_nothing_visible(&*q, "the delay has not passed").await;
    h.advance_time(WAIT_SECONDS).await;
    let later = receive_n(&*q, 1).await;
    assert_eq!(bodies(&later), ["later"]);
}

/// After `max_receive_count` receives, the next receive moves the message to the
/// dead-letter queue, keeping its id and body.
pub async fn queue_redrive_to_dead_letter_queue(h: &dyn Harness) {
    const MAX_RECEIVES: u32 = 2;
    let (q, dlq) = h
        .queue(false, HOLD_VISIBILITY_TIMEOUT_SECONDS, Some(MAX_RECEIVES))
        .await;
    let dlq = dlq.expect("a queue with max_receive_count has a dead-letter queue");
    let ids = send(&*q, vec![OutgoingMessage::new("poison")]).await;
    for attempt in 1..=MAX_RECEIVES {
        let m = receive_n(&*q, 1).await.remove(0);
        assert_eq!(m.receive_count, attempt);
        q.change_visibility(&m.receipt_handle, 0)
            .await
            .expect("give the message back");
    }
    assert_nothing_visible(&*q, "the message moved to the dead-letter queue").await;
    assert_eq!(q.approximate_depth().await.expect("depth"), 0);
    let dead = receive_n(&*dlq, 1).await.remove(0);
    assert_eq!(dead.body, "poison");
    assert_eq!(dead.message_id, ids[0]);
    delete(&*dlq, &dead).await;
}

/// FIFO: one group delivers in order and nothing more while a message of it is in flight;
/// other groups are not blocked.
pub async fn queue_fifo_group_ordering(h: &dyn Harness) {
    let (q, _) = h.queue(true, HOLD_VISIBILITY_TIMEOUT_SECONDS, None).await;
    send(
        &*q,
        vec![fifo_message("a1", "A", "a1"), fifo_message("a2", "A", "a2")],
    )
    .await;
    let a1 = receive_once(&*q, 1).await;
    assert_eq!(bodies(&a1), ["a1"], "the oldest message of the group first");
    assert_eq!(a1[0].group_id.as_deref(), Some("A"));
    assert_eq!(a1[0].deduplication_id.as_deref(), Some("a1"));
    assert_nothing_visible(&*q, "group A has a message in flight").await;

    send(&*q, vec![fifo_message("b1", "B", "b1")]).await;
    let b1 = receive_once(&*q, QUEUE_BATCH_MESSAGES_MAX).await;
    assert_eq!(bodies(&b1), ["b1"], "group B is not blocked by group A");

    delete(&*q, &a1[0]).await;
    let a2 = receive_once(&*q, QUEUE_BATCH_MESSAGES_MAX).await;
    assert_eq!(bodies(&a2), ["a2"], "group A resumes after a1 is deleted");
    q.change_visibility(&a2[0].receipt_handle, 0)
        .await
        .expect("release a2");
    let again = receive_once(&*q, QUEUE_BATCH_MESSAGES_MAX).await;
    assert_eq!(bodies(&again), ["a2"]);
    assert_eq!(again[0].receive_count, 2);
    delete(&*q, &again[0]).await;
    delete(&*q, &b1[0]).await;
    assert_nothing_visible(&*q, "all deleted").await;
}

/// FIFO: a second send with the same deduplication id (within 5 minutes) is dropped.
pub async fn queue_fifo_deduplication(h: &dyn Harness) {
    let (q, _) = h.queue(true, HOLD_VISIBILITY_TIMEOUT_SECONDS, None).await;
    send(&*q, vec![fifo_message("first", "G", "dedup-x")]).await;
    send(&*q, vec![fifo_message("second", "G", "dedup-x")]).await;
    send(&*q, vec![fifo_message("third", "G", "dedup-y")]).await;
    // Collect in order, deleting as we go (a group delivers nothing while one is in flight).
    let mut got = Vec::new();
    for _ in 0..RECEIVE_ATTEMPTS_MAX {
        let batch = receive_once(&*q, QUEUE_BATCH_MESSAGES_MAX).await;
        for m in &batch {
            delete(&*q, m).await;
        }
        got.extend(batch);
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(bodies(&got), ["first", "third"]);
    assert_nothing_visible(&*q, "the duplicate was dropped").await;
}

/// A receipt handle from an earlier receive is stale: it never fails as `Unavailable`, and
/// the current handle still deletes. An unknown handle is `InvalidReceipt`.
/// (SQS accepts a stale handle without a guarantee to delete; the local adapter rejects it.)
pub async fn queue_stale_and_invalid_receipt_handles(h: &dyn Harness) {
    let (q, _) = h.queue(false, HOLD_VISIBILITY_TIMEOUT_SECONDS, None).await;
    send(&*q, vec![OutgoingMessage::new("m")]).await;
    let first = receive_n(&*q, 1).await.remove(0);
    q.change_visibility(&first.receipt_handle, 0)
        .await
        .expect("release");
    let second = receive_n(&*q, 1).await.remove(0);
    assert_ne!(first.receipt_handle, second.receipt_handle);

    let unknown = "AQEBnot-a-receipt-handle";
    assert!(matches!(
        q.delete(unknown).await,
        Err(QueueError::InvalidReceipt)
    ));
    assert!(matches!(
        q.change_visibility(unknown, 0).await,
        Err(QueueError::InvalidReceipt)
    ));
    let stale = q.delete(&first.receipt_handle).await;
    assert!(
        matches!(stale, Ok(()) | Err(QueueError::InvalidReceipt)),
        "a stale handle: {stale:?}"
    );
    delete(&*q, &second).await;
    assert_nothing_visible(&*q, "deleted with the current handle").await;
}

/// Batches over the limit, oversized bodies and FIFO messages without a group are `Invalid`.
pub async fn queue_invalid_requests(h: &dyn Harness) {
    let (q, _) = h.queue(false, HOLD_VISIBILITY_TIMEOUT_SECONDS, None).await;
    let too_many: Vec<_> = (0..=QUEUE_BATCH_MESSAGES_MAX)
        .map(|i| OutgoingMessage::new(format!("m{i}")))
        .collect();
    let r = q.send_batch(too_many).await;
    assert!(
        matches!(r, Err(QueueError::Invalid(_))),
        "11 messages: {r:?}"
    );
    let r = q
        .send_batch(vec![OutgoingMessage::new(
            "x".repeat(QUEUE_MESSAGE_BYTES_MAX + 1),
        )])
        .await;
    assert!(
        matches!(r, Err(QueueError::Invalid(_))),
        "oversized body: {r:?}"
    );
    let r = q
        .receive(ReceiveOptions {
            max_messages: QUEUE_BATCH_MESSAGES_MAX + 1,
            ..Default::default()
        })
        .await;
    assert!(
        matches!(r, Err(QueueError::Invalid(_))),
        "receive 11: {r:?}"
    );
    assert_nothing_visible(&*q, "nothing was sent").await;

    let (fifo, _) = h.queue(true, HOLD_VISIBILITY_TIMEOUT_SECONDS, None).await;
    let r = fifo
        .send_batch(vec![OutgoingMessage::new("no group")])
        .await;
    assert!(
        matches!(r, Err(QueueError::Invalid(_))),
        "FIFO without a group: {r:?}"
    );
}
