//! `payops demo`, the main job, produces the daily CSV reports and they add up.

use std::process::Command;

use payops_e2e::payops_binary;

#[test]
fn demo_writes_daily_reports_that_match_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(payops_binary())
        .args([
            "demo",
            "--events-per-day",
            "150",
            "--days",
            "2",
            "--json",
            "--data",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("payops demo runs");
    assert!(
        output.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    let p = &report["payment_events"];
    assert_eq!(p["events_stored"], 300);
    // Every 50th webhook is sent twice: 3 per day of 150.
    assert_eq!(p["duplicates_ignored"], 6);
    let a = &report["accounts"];
    assert_eq!(
        a["transfers_succeeded"].as_u64().unwrap() + a["transfers_failed"].as_u64().unwrap(),
        400
    );
    assert_eq!(a["balance_total_before"], "20000.00");
    assert_eq!(
        a["balance_total_after"], "21200.00",
        "transfers conserve money; the advance adds its amount"
    );
    assert_eq!(a["instalments"], 12);
    let reports = p["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    for r in reports {
        let events = std::fs::read_to_string(r["events_csv"].as_str().unwrap()).unwrap();
        assert_eq!(
            events.lines().count(),
            1 + 150,
            "header + one row per event"
        );
        let summary = std::fs::read_to_string(r["summary_csv"].as_str().unwrap()).unwrap();
        assert!(summary.starts_with("scope,employer_id,currency,status,count,amount_total"));
    }
    payroll_step_settled_every_payment(&report["payroll"]);
}

/// The payroll step: every row paid through the provider sandbox, and the reports add up
/// to the file's total.
fn payroll_step_settled_every_payment(p: &serde_json::Value) {
    use rust_decimal::Decimal;
    let rows = p["rows"].as_u64().expect("payroll rows");
    assert!(rows > 0, "{p}");
    assert_eq!(p["status"], "COMPLETED", "{p}");
    assert!(
        p["eta_seconds"].is_u64(),
        "the estimate shown at approval: {p}"
    );
    assert_eq!(p["paid_count"].as_u64(), Some(rows), "{p}");
    let total: Decimal = p["total"].as_str().unwrap().parse().unwrap();
    let paid: Decimal = p["paid_total"].as_str().unwrap().parse().unwrap();
    assert_eq!(paid, total, "everything owed was paid");
    let reports: Vec<&str> = p["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(reports.len(), 3, "{p}");
    let payments_csv = reports
        .iter()
        .find(|r| r.ends_with("payments.csv"))
        .unwrap();
    let text = std::fs::read_to_string(payments_csv).unwrap();
    assert_eq!(
        text.lines().count() as u64,
        1 + rows,
        "header + one row per payment"
    );
    let sources_csv = reports.iter().find(|r| r.ends_with("sources.csv")).unwrap();
    let mut reader = csv::Reader::from_path(sources_csv).unwrap();
    let headers = reader.headers().unwrap().clone();
    let paid_column = headers.iter().position(|h| h == "paid").unwrap();
    let paid_by_sources: Decimal = reader
        .records()
        .map(|r| r.unwrap()[paid_column].parse::<Decimal>().unwrap())
        .sum();
    assert_eq!(
        paid_by_sources, total,
        "the per-source report adds up to the file"
    );
}
