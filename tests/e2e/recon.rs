//! `payops recon` as a user runs it: generate a day, reconcile it into Parquet, re-run it, and
//! the errors a user sees for a bad file and a missing masking key.

use std::path::Path;
use std::process::{Command, Output};

use payops_e2e::payops_binary;

const KEY: &str = "e2e-recon-mask-key-0123456789";

fn payops(args: &[&str], dir: &Path, key: Option<&str>) -> Output {
    let mut cmd = Command::new(payops_binary());
    cmd.args(args).current_dir(dir).env("RUST_LOG", "warn");
    match key {
        Some(k) => cmd.env("PAYOPS_RECON_MASK_KEY", k),
        None => cmd.env_remove("PAYOPS_RECON_MASK_KEY"),
    };
    cmd.output().expect("payops runs")
}

fn run_args(out: &str) -> Vec<&str> {
    vec![
        "recon",
        "run",
        "--date",
        "2026-11-21",
        "--transactions",
        "in/transactions.csv",
        "--statements",
        "in/statements.csv",
        "--fraud",
        "in/fraud.csv",
        "--policies",
        "in/policies.csv",
        "--merchants",
        "in/merchants.csv",
        "--out",
        out,
        "--json",
    ]
}

#[test]
fn recon_generate_run_and_rerun_write_the_three_datasets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let generated = payops(
        &[
            "recon",
            "generate",
            "--date",
            "2026-11-21",
            "--transactions",
            "5000",
            "--out",
            "in",
            "--json",
        ],
        dir.path(),
        None,
    );
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let first = payops(&run_args("out"), dir.path(), Some(KEY));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).expect("JSON");
    assert_eq!(summary["transactions"], 5000);
    let matched = summary["matched"].as_u64().expect("count");
    let all = matched
        + summary["partial"].as_u64().expect("count")
        + summary["unmatched_transactions"].as_u64().expect("count");
    assert_eq!(all, 5000, "every transaction has one verdict: {summary}");
    for dataset in ["batch", "final", "kpis"] {
        let files: Vec<_> =
            std::fs::read_dir(dir.path().join(format!("out/{dataset}/dt=2026-11-21")))
                .expect("dataset directory")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect();
        assert!(
            !files.is_empty() && files.iter().all(|f| f.ends_with(".parquet")),
            "{files:?}"
        );
    }

    // The same day again, with fewer partitions: the day is replaced, and the verdicts agree.
    let mut args = run_args("out");
    args.extend(["--partitions", "2"]);
    let again = payops(&args, dir.path(), Some(KEY));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let summary2: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(summary2["matched"], summary["matched"]);
    let parts = std::fs::read_dir(dir.path().join("out/final/dt=2026-11-21"))
        .expect("dir")
        .count();
    assert_eq!(parts, 2);
}

#[test]
fn recon_errors_name_the_file_line_and_field_or_the_missing_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("in")).expect("mkdir");
    std::fs::write(
        dir.path().join("in/tx.csv"),
        "transaction_id,merchant_id,user_id,amount,currency,status,timestamp\n\
         t1,m1,u1,10.00,USD,APPROVED,2026-11-21T10:00:00Z\n\
         t2,m1,u2,10.00,USD,SETTLED,2026-11-21T10:00:00Z\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("in/st.csv"),
        "statement_id,transaction_id,posting_date,amount_posted,fee_charged\n",
    )
    .expect("write");
    let args = [
        "recon",
        "run",
        "--date",
        "2026-11-21",
        "--transactions",
        "in/tx.csv",
        "--statements",
        "in/st.csv",
        "--out",
        "out",
    ];
    let bad = payops(&args, dir.path(), Some(KEY));
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("in/tx.csv: line 3: field status is \"SETTLED\""),
        "{stderr}"
    );
    assert!(
        !dir.path().join("out/batch").exists(),
        "nothing written on bad input"
    );

    let no_key = payops(&args, dir.path(), None);
    assert!(!no_key.status.success());
    assert!(
        String::from_utf8_lossy(&no_key.stderr).contains("PAYOPS_RECON_MASK_KEY is not set"),
        "{}",
        String::from_utf8_lossy(&no_key.stderr)
    );
}
