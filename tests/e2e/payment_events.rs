//! Payment events through `payops up`: the webhook's answers over real HTTP, and a burst that
//! survives `kill -9` in the middle with every accepted event stored exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use payops_e2e::{HttpClient, Server, eventually, signature};
use payops_local::generate::{Rng, payment_event_body};

const DAY: &str = "2026-11-20";
const WEBHOOK: &str = "/webhooks/payment-events";

fn burst(seed: u64, n: u64) -> Vec<(String, Bytes)> {
    let day = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let body = payment_event_body(&mut rng, seed, i, day);
            (
                body["event_id"].as_str().unwrap().to_owned(),
                Bytes::from(body.to_string()),
            )
        })
        .collect()
}

async fn post(
    client: &HttpClient,
    base: &str,
    body: &Bytes,
    signature: &str,
) -> Result<u16, payops_local::client::ClientError> {
    let r = client
        .post_json(
            &format!("{base}{WEBHOOK}"),
            &[("Payops-Signature", signature)],
            body.clone(),
        )
        .await?;
    Ok(r.status)
}

async fn day_counts(client: &HttpClient, base: &str) -> serde_json::Value {
    client
        .get(&format!("{base}/payment-events?date={DAY}"))
        .await
        .unwrap()
        .json()
        .unwrap()
}

#[tokio::test]
async fn webhook_answers_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = HttpClient::default();
    let base = &server.base_url;
    let (_, body) = burst(1, 1).remove(0);

    assert_eq!(
        post(&client, base, &body, "t=1,v1=00").await.unwrap(),
        401,
        "bad signature"
    );
    let unsigned = client
        .post_json(&format!("{base}{WEBHOOK}"), &[], body.clone())
        .await
        .unwrap();
    assert_eq!(unsigned.status, 401, "missing signature");

    let bad = Bytes::from(
        r#"{"event_id":"e1","loan_id":"l","borrower_id":"b","employer_id":"x","amount":"1.001","currency":"USD","status":"paid","paid_at":"2026-11-20T10:00:00Z"}"#,
    );
    let r = client
        .post_json(
            &format!("{base}{WEBHOOK}"),
            &[("Payops-Signature", &signature(&bad))],
            bad.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["field"], "amount");

    assert_eq!(
        post(&client, base, &body, &signature(&body)).await.unwrap(),
        202
    );
    let counts = eventually("the event to be stored", || async {
        let c = day_counts(&client, base).await;
        (c["count"] == 1).then_some(c)
    })
    .await;
    assert_eq!(counts["duplicates_ignored"], 0);
}

/// The provider sends a burst; the process is killed half-way; it restarts; the provider
/// retries what was not acknowledged. Every acknowledged event is stored exactly once, and
/// re-sent events that had in fact been enqueued before the crash count as duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_survives_kill_and_restart() {
    const EVENTS: u64 = 3_000;
    const KILL_AFTER_ACCEPTED: usize = 1_200;
    // Pollers are paused until this many are accepted, so that at the kill the queue
    // certainly holds accepted but unprocessed events (and some in flight).
    const RESUME_POLLERS_AFTER_ACCEPTED: usize = 600;
    const CONCURRENCY: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = HttpClient::default();
    let events = burst(7, EVENTS);

    // Phase 1: send everything; kill the process once enough are acknowledged.
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut acknowledged = BTreeSet::new();
    let mut unacknowledged = Vec::new();
    let mut pending = events.clone().into_iter();
    let mut killed = false;
    let mut resumed = false;
    let pause = client
        .post_json(
            &format!("{}/ops/pollers/pause", server.base_url),
            &[],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(pause.status, 200);
    loop {
        let chunk: Vec<_> = pending.by_ref().take(CONCURRENCY).collect();
        if chunk.is_empty() {
            break;
        }
        let base = server.base_url.clone();
        let results = futures::future::join_all(chunk.iter().map(|(id, body)| {
            let (client, base, accepted) = (client.clone(), base.clone(), accepted.clone());
            let (id, body) = (id.clone(), body.clone());
            async move {
                let ok = matches!(
                    post(&client, &base, &body, &signature(&body)).await,
                    Ok(202)
                );
                if ok {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                (id, body, ok)
            }
        }))
        .await;
        for (id, body, ok) in results {
            if ok {
                acknowledged.insert(id);
            } else {
                unacknowledged.push((id, body));
            }
        }
        if !resumed && accepted.load(Ordering::SeqCst) >= RESUME_POLLERS_AFTER_ACCEPTED {
            let r = client
                .post_json(&format!("{base}/ops/pollers/resume"), &[], Bytes::new())
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            resumed = true;
        }
        if !killed && accepted.load(Ordering::SeqCst) >= KILL_AFTER_ACCEPTED {
            let stored = day_counts(&client, &base).await["count"].as_u64().unwrap();
            assert!(
                stored < accepted.load(Ordering::SeqCst) as u64,
                "some accepted events are still queued at the kill"
            );
            server.kill9();
            killed = true;
            // Whatever was not yet sent is unacknowledged too: the provider will retry it.
            unacknowledged.extend(pending.by_ref());
        }
    }
    assert!(killed, "the burst finished before the kill");
    assert!(acknowledged.len() >= KILL_AFTER_ACCEPTED);

    // Phase 2: restart on the same data and let the provider retry.
    let server = Server::start(dir.path());
    let base = server.base_url.clone();
    for (_, body) in &unacknowledged {
        assert_eq!(
            post(&client, &base, body, &signature(body)).await.unwrap(),
            202
        );
    }
    let counts = eventually("every event to be stored", || async {
        let c = day_counts(&client, &base).await;
        (c["count"].as_u64() == Some(EVENTS)).then_some(c)
    })
    .await;
    // Only retried events can be duplicates, and only if they had reached the queue.
    assert!(counts["duplicates_ignored"].as_u64().unwrap() <= unacknowledged.len() as u64);

    // The day's report lists every event exactly once.
    let report = client
        .post_json(
            &format!("{base}/ops/trigger/payment-events-report"),
            &[],
            Bytes::from(format!(r#"{{"date":"{DAY}"}}"#)),
        )
        .await
        .unwrap();
    assert_eq!(
        report.status,
        200,
        "{}",
        String::from_utf8_lossy(&report.body)
    );
    let key = report.json().unwrap()["events_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let csv = std::fs::read_to_string(payops_local::demo::object_path(dir.path(), &key)).unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let id = line.split(',').next().unwrap().to_owned();
        *seen.entry(id).or_default() += 1;
    }
    let all: BTreeSet<String> = events.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "every event is in the report"
    );
    assert!(
        seen.values().all(|n| *n == 1),
        "no event is in the report twice"
    );
    assert!(acknowledged.is_subset(&all));
}

/// SIGTERM (or Ctrl-C) stops `payops up` cleanly, and a restart serves the same data.
#[tokio::test]
async fn stops_cleanly_and_resumes_from_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = HttpClient::default();
    let events = burst(11, 20);
    for (_, body) in &events {
        assert_eq!(
            post(&client, &server.base_url, body, &signature(body))
                .await
                .unwrap(),
            202
        );
    }
    assert!(server.stop(), "payops up exits with success on SIGTERM");

    let server = Server::start(dir.path());
    let counts = eventually("the 20 events to be stored", || async {
        let c = day_counts(&client, &server.base_url).await;
        (c["count"] == 20).then_some(c)
    })
    .await;
    assert_eq!(counts["duplicates_ignored"], 0);
}
