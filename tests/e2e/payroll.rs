//! Payroll disbursement through the real `payops up` and its provider sandbox: a generated
//! file (scaled down from the 50,000-row benchmark) is uploaded over HTTP, approved twice
//! (approved once), provisioned and paid at the sandbox through the real HTTP client, settled
//! by the sandbox's signed webhooks; the batch completes, its reports add up to the file, and
//! the nightly consistency check finds the ledger and the aggregates in agreement.

use bytes::Bytes;
use payops_core::payroll::generate::{GenerateOptions, generate_xml};
use payops_e2e::{HttpClient, Server, eventually, payops_binary};
use rust_decimal::Decimal;
use serde_json::Value;

const ROWS: u32 = 1_500;

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .expect("amounts are decimal strings")
        .parse()
        .expect("a decimal")
}

/// Sums the `payments` and `paid` columns of a per-group report (ids have no commas).
fn report_totals(csv: &str) -> (u64, Decimal, Decimal) {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (count, owed, paid) = (col("payments"), col("owed"), col("paid"));
    let mut out = (0u64, Decimal::ZERO, Decimal::ZERO);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        out.0 += f[count].parse::<u64>().unwrap();
        out.1 += f[owed].parse::<Decimal>().unwrap();
        out.2 += f[paid].parse::<Decimal>().unwrap();
    }
    out
}

/// Uploads a payroll file as HR's page does; answers the batch as created.
async fn upload(client: &HttpClient, base: &str, name: &str, xml: String) -> Value {
    let up = client
        .request(
            http::Method::POST,
            &format!("{base}/payroll/batches?name={name}"),
            &[("content-type", "application/xml")],
            Bytes::from(xml),
        )
        .await
        .unwrap();
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    up.json().unwrap()
}

/// Runs the nightly consistency check now; answers its report.
async fn nightly_check(client: &HttpClient, base: &str) -> Value {
    let check = client
        .post_json(
            &format!("{base}/ops/trigger/payroll-check"),
            &[],
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    assert_eq!(
        check.status,
        200,
        "{}",
        String::from_utf8_lossy(&check.body)
    );
    check.json().unwrap()
}

/// The batch, once its workflow has marked it `COMPLETED`.
async fn completed(client: &HttpClient, base: &str, id: &str) -> Value {
    eventually("the batch to complete", || {
        let (client, url) = (client.clone(), format!("{base}/payroll/batches/{id}"));
        async move {
            let b = client.get(&url).await.ok()?.json().ok()?;
            (b["status"] == "COMPLETED").then_some(b)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_file_is_paid_once_settles_and_reports_add_up() {
    let dir = tempfile::tempdir().unwrap();
    // Limits far above what this file needs, so that the estimate shown at approval is
    // computed from them (as in AWS, where the API function is given the provider's rates).
    let server = Server::start_with_env(
        dir.path(),
        &[
            ("PAYOPS_PROVIDER_RATE_PAYMENTS_PER_MIN", "600000"),
            ("PAYOPS_PROVIDER_RATE_WRITES_PER_MIN", "600000"),
        ],
    );
    let base = server.base_url.clone();
    let client = HttpClient::default();
    let xml = generate_xml(&GenerateOptions::like_sample(ROWS, 7));

    let up = upload(&client, &base, "generated.xml", xml.clone()).await;
    assert_eq!(up["status"], "AWAITING_APPROVAL", "{up}");
    assert_eq!(up["rows"], ROWS);
    let id = up["batch_id"].as_str().unwrap().to_owned();
    let total = dec(&up["total"]);

    // A double click.
    let approve = format!("{base}/payroll/batches/{id}/approve");
    let (a, b) = tokio::join!(
        client.post_json(&approve, &[], Bytes::from_static(b"{}")),
        client.post_json(&approve, &[], Bytes::from_static(b"{}")),
    );
    let (a, b) = (a.unwrap().json().unwrap(), b.unwrap().json().unwrap());
    let firsts = [&a, &b]
        .iter()
        .filter(|o| o["already_approved"] == false)
        .count();
    assert_eq!(firsts, 1, "{a} {b}");
    let first = if a["already_approved"] == false {
        &a
    } else {
        &b
    };
    let estimate = &first["estimate"];
    assert_eq!(estimate["payments"], ROWS, "{first}");
    // 1,500 payments and their account writes at 10,000 a second: a second or two, rounded
    // up; 0 would mean the API function was not given the rates.
    let seconds = estimate["seconds"].as_u64().unwrap();
    assert!((1..=5).contains(&seconds), "{first}");

    let done = completed(&client, &base, &id).await;
    let progress = &done["progress"];
    assert_eq!(progress["payments"], ROWS);
    assert_eq!(progress["paid_count"], ROWS, "{progress}");
    assert_eq!(dec(&progress["paid_total"]), total);

    for (name, groups) in [("sources", 5), ("branches", 30)] {
        let csv = client
            .get(&format!("{base}/payroll/batches/{id}/reports/{name}.csv"))
            .await
            .unwrap();
        assert_eq!(csv.status, 200);
        let text = String::from_utf8(csv.body.to_vec()).unwrap();
        assert_eq!(text.lines().count(), groups + 1, "{text}");
        assert_eq!(
            report_totals(&text),
            (u64::from(ROWS), total, total),
            "{name}"
        );
    }
    let payments = client
        .get(&format!("{base}/payroll/batches/{id}/reports/payments.csv"))
        .await
        .unwrap();
    let text = String::from_utf8(payments.body.to_vec()).unwrap();
    assert_eq!(text.lines().count(), ROWS as usize + 1);
    assert_eq!(text.matches(",SETTLED,").count(), ROWS as usize);

    // Every payment exists once at the provider; ledger and aggregates agree.
    let check = nightly_check(&client, &base).await;
    assert_eq!(check["difference_count"], 0, "{check}");
    assert_eq!(check["payments_checked"], ROWS);
    drop(server);
}

/// A free port on 127.0.0.1 for the provider sandbox, so the test can read its books.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Payments per status, from the payments CSV.
fn statuses(csv_text: &str) -> std::collections::BTreeMap<String, u64> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "status")
        .unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for record in reader.records() {
        *counts
            .entry(record.unwrap()[column].to_ascii_lowercase())
            .or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_the_provider_cancels_or_reverses_are_recorded_and_the_books_still_balance() {
    const SMALL_ROWS: u32 = 300;
    let dir = tempfile::tempdir().unwrap();
    let sandbox_port = free_port().to_string();
    let server = Server::start_with_env(
        dir.path(),
        &[
            ("PAYOPS_PROVIDER_SANDBOX_PORT", sandbox_port.as_str()),
            ("PAYOPS_PROVIDER_CANCEL_RATE", "0.05"),
            ("PAYOPS_PROVIDER_REVERSAL_RATE", "0.05"),
            ("PAYOPS_PROVIDER_REVERSED_AFTER_MS", "200"),
        ],
    );
    let base = server.base_url.clone();
    let client = HttpClient::default();
    let xml = generate_xml(&GenerateOptions::like_sample(SMALL_ROWS, 11));
    let up = upload(&client, &base, "returns.xml", xml).await;
    let id = up["batch_id"].as_str().unwrap().to_owned();
    let approve = client
        .post_json(
            &format!("{base}/payroll/batches/{id}/approve"),
            &[],
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    assert_eq!(approve.status, 200);

    // The provider's books, once every payment reached its last status there.
    let stats_url = format!("http://127.0.0.1:{sandbox_port}/sandbox/stats");
    let auth = format!("Bearer {}", payops_local::sandbox::DEV_PROVIDER_API_KEY);
    let provider = eventually("the provider to finish every payment", || {
        let (client, url, auth) = (client.clone(), stats_url.clone(), auth.clone());
        async move {
            let stats = client
                .request(
                    http::Method::GET,
                    &url,
                    &[("authorization", auth.as_str())],
                    Bytes::new(),
                )
                .await
                .ok()?
                .json()
                .ok()?;
            let by_status = stats["payments_by_status"].as_object()?.clone();
            let total: u64 = by_status.values().filter_map(Value::as_u64).sum();
            // A settled payment may still be reversed: wait for no change to be left.
            let finished = total == u64::from(SMALL_ROWS) && stats["scheduled_changes"] == 0;
            finished.then_some(by_status)
        }
    })
    .await;
    let expected: std::collections::BTreeMap<String, u64> = provider
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert!(
        expected.get("canceled").copied().unwrap_or(0) > 0
            && expected.get("reversed").copied().unwrap_or(0) > 0,
        "5% of 300 canceled and 5% reversed: {expected:?}"
    );

    // Our books reach the same picture through the webhooks alone.
    let ours = eventually("our statuses to match the provider's", || {
        let (client, url) = (
            client.clone(),
            format!("{base}/payroll/batches/{id}/reports/payments.csv"),
        );
        let expected = expected.clone();
        async move {
            let csv = client.get(&url).await.ok()?;
            let counts = statuses(std::str::from_utf8(&csv.body).ok()?);
            (counts == expected).then_some(counts)
        }
    })
    .await;
    // The workflow sees the batch done at its next look.
    let batch = completed(&client, &base, &id).await;
    assert_eq!(
        batch["progress"]["paid_count"].as_u64(),
        ours.get("settled").copied(),
        "reversed payments are not paid: {batch}"
    );
    let check = nightly_check(&client, &base).await;
    assert_eq!(
        check["difference_count"], 0,
        "ledger, aggregates and payments agree: {check}"
    );
    drop(server);
}

/// `payops payroll summarize FILE --json` on the real sample prints exactly the shape:
/// rows, total, by_source and by_branch sorted by id with two-place decimal totals that add
/// up, and findings with rows numbered from 1.
#[test]
fn summarize_prints_the_sample_summary_as_json() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/payroll/payroll-426-rows.xml");
    let out = std::process::Command::new(payops_binary())
        .args(["payroll", "summarize"])
        .arg(&fixture)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "by_branch",
            "by_source",
            "errors",
            "rows",
            "total",
            "warnings"
        ]
    );
    assert_eq!(s["rows"], 426);
    let two_places = |v: &Value| {
        let text = v.as_str().unwrap();
        assert_eq!(
            text.split_once('.').map(|(_, f)| f.len()),
            Some(2),
            "{text}"
        );
        dec(v)
    };
    let total = two_places(&s["total"]);
    for (list, id, groups) in [
        ("by_source", "source_id", 5),
        ("by_branch", "branch_id", 30),
    ] {
        let groups_seen = s[list].as_array().unwrap();
        assert_eq!(groups_seen.len(), groups, "{list}");
        let ids: Vec<&str> = groups_seen
            .iter()
            .map(|g| g[id].as_str().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{list} sorted by {id}");
        let count: u64 = groups_seen
            .iter()
            .map(|g| g["count"].as_u64().unwrap())
            .sum();
        let sum: Decimal = groups_seen.iter().map(|g| two_places(&g["total"])).sum();
        assert_eq!((count, sum), (426, total), "{list}");
    }
    assert_eq!(s["errors"].as_array().unwrap().len(), 0);
    let warnings = s["warnings"].as_array().unwrap();
    assert!(
        !warnings.is_empty(),
        "8-digit EINs and a repeated employee warn"
    );
    for w in warnings {
        assert!((1..=426).contains(&w["row"].as_u64().unwrap()), "{w}");
        assert!(w["field"].is_string() && w["reason"].is_string(), "{w}");
    }
}
