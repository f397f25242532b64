//! Payroll disbursement through the real `payops up` and its provider sandbox: a generated
//! file (scaled down from the 50,000-row benchmark) is uploaded over HTTP, approved twice
//! (approved once), provisioned and paid at the sandbox through the real HTTP client, settled
//! by the sandbox's signed webhooks; the batch completes, its reports add up to the file, and
//! the nightly consistency check finds the ledger and the aggregates in agreement.

use bytes::Bytes;
use payops_core::payroll::generate::{GenerateOptions, generate_xml};
use payops_e2e::{HttpClient, Server, eventually};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_file_is_paid_once_settles_and_reports_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base_url.clone();
    let client = HttpClient::default();
    let xml = generate_xml(&GenerateOptions::like_sample(ROWS, 7));

    let up = client
        .request(
            http::Method::POST,
            &format!("{base}/payroll/batches?name=generated.xml"),
            &[("content-type", "application/xml")],
            Bytes::from(xml.clone()),
        )
        .await
        .unwrap();
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    let up = up.json().unwrap();
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

    let done = eventually("the batch to complete", || {
        let client = client.clone();
        let url = format!("{base}/payroll/batches/{id}");
        async move {
            let b = client.get(&url).await.ok()?.json().ok()?;
            (b["status"] == "COMPLETED").then_some(b)
        }
    })
    .await;
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
    let check = check.json().unwrap();
    assert_eq!(check["difference_count"], 0, "{check}");
    assert_eq!(check["payments_checked"], ROWS);
    drop(server);
}
