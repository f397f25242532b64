//! `payops recon run` on a generated day, its Parquet read back by an independent reader
//! (DuckDB from .venv, installed by scripts/test.sh): schema, Hive partitioning, values equal
//! row for row to DuckDB's own reconciliation of the same files, no raw user id anywhere,
//! Parquet inputs, and a late transaction re-reconciled after its day closed.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{NaiveDate, TimeZone, Utc};
use payops_app::recon::RunOptions;
use payops_app::recon::generate::GenerateOptions;
use payops_core::Secret;
use payops_core::recon::UserIdMasker;
use payops_local::cli_recon::{RunFiles, generate_files, reconcile_files};

const DAY: &str = "2026-11-21";
const TRANSACTIONS: u64 = 20_000;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv with duckdb)",
        python.display()
    );
    python
}

/// Runs Python code with DuckDB; returns stdout, panics with stderr on failure.
fn duckdb(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import sys, duckdb\ncon = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\n{code}"
        ))
        .args(args)
        .output()
        .expect("python starts");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn date() -> NaiveDate {
    NaiveDate::parse_from_str(DAY, "%Y-%m-%d").expect("valid date")
}

fn options() -> RunOptions {
    let mut o = RunOptions::new(
        date(),
        Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0)
            .single()
            .expect("valid"),
    );
    o.partitions = 4;
    o.threads = 2;
    o
}

fn masker() -> UserIdMasker {
    UserIdMasker::new(&Secret::new("recon-test-key-0123456789".into())).expect("long key")
}

fn all_inputs(dir: &Path) -> RunFiles {
    RunFiles {
        transactions: vec![dir.join("transactions.csv")],
        statements: vec![dir.join("statements.csv")],
        fraud: vec![dir.join("fraud.csv")],
        policies: Some(dir.join("policies.csv")),
        merchants: Some(dir.join("merchants.csv")),
    }
}

fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    generate_files(
        &GenerateOptions {
            date: date(),
            transactions: TRANSACTIONS,
            seed: 7,
        },
        &dir.path().join("in"),
    )
    .expect("generates");
    dir
}

#[test]
fn parquet_reads_in_duckdb_with_schema_partitions_and_values() {
    let dir = generated();
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    let summary = reconcile_files(&all_inputs(&input), &out, &options(), &masker()).expect("runs");
    assert_eq!(summary.transactions, TRANSACTIONS);

    // Schema and Hive partitioning of the three datasets.
    let described = duckdb(
        "for ds in ('batch', 'final', 'kpis'):\n    \
           rows = con.execute(f\"DESCRIBE SELECT * FROM read_parquet('{sys.argv[1]}/{ds}/*/*.parquet', hive_partitioning = true)\").fetchall()\n    \
           print(ds, ', '.join(f'{r[0]}:{r[1]}' for r in rows))",
        &[out.to_str().expect("utf-8 path")],
    );
    let lines: Vec<&str> = described.lines().collect();
    assert_eq!(
        lines[0],
        "batch transaction_id:VARCHAR, side:VARCHAR, reconciled_status:VARCHAR, \
         amount_posted:DECIMAL(18,4), discrepancy:DECIMAL(18,4), batch_run_date:DATE, dt:DATE"
    );
    assert_eq!(
        lines[1],
        "final transaction_id:VARCHAR, merchant_id:VARCHAR, masked_user_id:VARCHAR, \
         amount:DECIMAL(18,4), currency:VARCHAR, status:VARCHAR, \
         event_time:TIMESTAMP WITH TIME ZONE, fraud_score:DECIMAL(7,6), policy_flags:VARCHAR[], \
         compliance_assessment:VARCHAR, side:VARCHAR, reconciled_status:VARCHAR, \
         amount_posted:DECIMAL(18,4), fee_charged:DECIMAL(18,4), discrepancy:DECIMAL(18,4), \
         batch_run_date:DATE, reconciliation_timestamp:TIMESTAMP WITH TIME ZONE, dt:DATE"
    );
    assert_eq!(
        lines[2],
        "kpis merchant_id:VARCHAR, merchant_name:VARCHAR, risk_level:VARCHAR, \
         transactions:BIGINT, volume:DECIMAL(18,4), refunds:BIGINT, refund_amount:DECIMAL(18,4), \
         declines:BIGINT, matched:BIGINT, matched_rate:DECIMAL(5,4), \
         total_discrepancy:DECIMAL(18,4), batch_run_date:DATE, dt:DATE"
    );

    // Values: counts, and totals that tie the datasets together.
    let checks = duckdb(
        "root = sys.argv[1]\n\
         f = f\"read_parquet('{root}/final/*/*.parquet', hive_partitioning = true)\"\n\
         b = f\"read_parquet('{root}/batch/*/*.parquet', hive_partitioning = true)\"\n\
         k = f\"read_parquet('{root}/kpis/*/*.parquet', hive_partitioning = true)\"\n\
         q = lambda s: con.execute(s).fetchone()\n\
         print(q(f\"SELECT count(*), count(DISTINCT transaction_id), min(dt)::VARCHAR, max(dt)::VARCHAR FROM {f}\"))\n\
         print(q(f\"SELECT count(*) FROM {b}\"))\n\
         print(q(f\"SELECT sum(transactions), sum(total_discrepancy) = (SELECT sum(discrepancy) FROM {f} WHERE side <> 'STATEMENT_ONLY') FROM {k}\"))\n\
         print(q(f\"SELECT count(*) FROM {f} WHERE side = 'STATEMENT_ONLY' AND (merchant_id IS NOT NULL OR masked_user_id IS NOT NULL)\"))\n\
         print(q(f\"SELECT count(*) FROM {f} WHERE list_contains(policy_flags, 'HIGH_RISK_MERCHANT')\")[0] > 0, \
                q(f\"SELECT count(DISTINCT compliance_assessment) FROM {f}\"))\n\
         print(q(f\"SELECT count(*) FROM {f} WHERE fraud_score < 0 OR fraud_score > 1\"))",
        &[out.to_str().expect("utf-8 path")],
    );
    let lines: Vec<&str> = checks.lines().collect();
    let rows = summary.transactions + summary.unmatched_statement_ids;
    assert_eq!(lines[0], format!("({rows}, {rows}, '{DAY}', '{DAY}')"));
    assert_eq!(lines[1], format!("({rows},)"));
    assert_eq!(lines[2], format!("({TRANSACTIONS}, True)"));
    assert_eq!(
        lines[3], "(0,)",
        "statement-only rows carry no transaction fields"
    );
    assert_eq!(
        lines[4], "True (3,)",
        "flags and all three assessments occur"
    );
    assert_eq!(lines[5], "(0,)");

    // Row for row against DuckDB's own reconciliation of the same files.
    let duck = dir.path().join("duck");
    let script = repo_root().join("scripts/bench_recon_duckdb.py");
    let status = Command::new(python())
        .arg(&script)
        .args(["run", "--date", DAY, "--transactions"])
        .arg(input.join("transactions.csv"))
        .arg("--statements")
        .arg(input.join("statements.csv"))
        .arg("--out")
        .arg(&duck)
        .output()
        .expect("python starts");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let compare = Command::new(python())
        .arg(&script)
        .arg("compare")
        .arg(out.join(format!("batch/dt={DAY}/*.parquet")))
        .arg(duck.join(format!("batch/dt={DAY}/*.parquet")))
        .output()
        .expect("python starts");
    let report = String::from_utf8_lossy(&compare.stdout);
    assert!(
        compare.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&compare.stderr)
    );
    assert!(report.contains("identical row for row"), "{report}");
    for case in [
        "BOTH             MATCHED",
        "BOTH             PARTIAL",
        "TRANSACTION_ONLY UNMATCHED",
        "TRANSACTION_ONLY MATCHED",
        "STATEMENT_ONLY   UNMATCHED",
    ] {
        assert!(
            report.contains(case),
            "the generated day has no {case:?} row: {report}"
        );
    }
}

#[test]
fn no_raw_user_id_in_any_output_file() {
    let dir = generated();
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    reconcile_files(&all_inputs(&input), &out, &options(), &masker()).expect("runs");
    // Raw bytes: generated user ids are "user_0…"; tokens start with "usr_".
    let mut files = 0;
    for dataset in ["batch", "final", "kpis"] {
        for entry in std::fs::read_dir(out.join(format!("{dataset}/dt={DAY}"))).expect("dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
            // "user_" alone would match the column name masked_user_id.
            assert!(!bytes.windows(6).any(|w| w == b"user_0"), "{dataset}");
            files += 1;
        }
    }
    assert_eq!(files, 4 + 4 + 1);
    // Decoded values: no string of the final dataset equals or contains a raw user id.
    let leaks = duckdb(
        "users = f\"(SELECT DISTINCT user_id FROM read_csv('{sys.argv[1]}'))\"\n\
         f = f\"read_parquet('{sys.argv[2]}/final/*/*.parquet')\"\n\
         print(con.execute(f\"SELECT count(*) FROM {f} t WHERE t.masked_user_id IN {users} \
           OR t.transaction_id IN {users} OR t.merchant_id IN {users} \
           OR contains(t.masked_user_id, 'user_')\").fetchone()[0], \
           con.execute(f\"SELECT count(DISTINCT masked_user_id) > 1000, min(length(masked_user_id)), max(length(masked_user_id)) FROM {f}\").fetchone())",
        &[
            input.join("transactions.csv").to_str().expect("utf-8"),
            out.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(leaks, "0 (True, 26, 26)");
}

#[test]
fn parquet_inputs_give_the_same_batch() {
    let dir = generated();
    let input = dir.path().join("in");
    // DuckDB writes the statements as Parquet with typed DECIMAL and DATE columns.
    duckdb(
        "con.execute(f\"COPY (SELECT * FROM read_csv('{sys.argv[1]}', columns = {{'statement_id': 'VARCHAR', 'transaction_id': 'VARCHAR', 'posting_date': 'DATE', 'amount_posted': 'DECIMAL(12,2)', 'fee_charged': 'DECIMAL(12,2)'}}, header = true)) TO '{sys.argv[2]}' (FORMAT parquet)\")",
        &[
            input.join("statements.csv").to_str().expect("utf-8"),
            input.join("statements.parquet").to_str().expect("utf-8"),
        ],
    );
    let csv_out = dir.path().join("csv");
    let pq_out = dir.path().join("pq");
    let mut files = all_inputs(&input);
    reconcile_files(&files, &csv_out, &options(), &masker()).expect("csv run");
    files.statements = vec![input.join("statements.parquet")];
    reconcile_files(&files, &pq_out, &options(), &masker()).expect("parquet run");
    let diff = duckdb(
        "a = f\"read_parquet('{sys.argv[1]}/batch/*/*.parquet')\"\n\
         b = f\"read_parquet('{sys.argv[2]}/batch/*/*.parquet')\"\n\
         print(con.execute(f\"SELECT (SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})) + (SELECT count(*) FROM (FROM {b} EXCEPT ALL FROM {a})), (SELECT count(*) FROM {a})\").fetchone())",
        &[
            csv_out.to_str().expect("utf-8"),
            pq_out.to_str().expect("utf-8"),
        ],
    );
    assert!(diff.starts_with("(0, "), "{diff}");
}

#[test]
fn a_late_transaction_is_reconciled_when_its_day_is_run_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path();
    let header = "transaction_id,merchant_id,user_id,amount,currency,status,timestamp\n";
    std::fs::write(
        input.join("tx.csv"),
        format!("{header}t1,m1,u1,10.00,USD,APPROVED,2026-11-21T10:00:00Z\n"),
    )
    .expect("write");
    std::fs::write(
        input.join("st.csv"),
        "statement_id,transaction_id,posting_date,amount_posted,fee_charged\n\
         s1,t1,2026-11-22,10.00,0\ns2,t_late,2026-11-22,25.00,0\n",
    )
    .expect("write");
    let files = RunFiles {
        transactions: vec![input.join("tx.csv")],
        statements: vec![input.join("st.csv")],
        ..RunFiles::default()
    };
    let out = input.join("out");
    let mut opts = options();
    opts.partitions = 8;
    let first = reconcile_files(&files, &out, &opts, &masker()).expect("first run");
    assert_eq!((first.matched, first.unmatched_statement_ids), (1, 1));

    // The day closed; t_late arrives afterwards (a refund's approval then... out of order).
    std::fs::write(
        input.join("tx.csv"),
        format!(
            "{header}t1,m1,u1,10.00,USD,APPROVED,2026-11-21T10:00:00Z\n\
             t_late,m1,u2,25.00,USD,APPROVED,2026-11-21T23:59:00Z\n\
             t_late,m1,u2,25.00,USD,PENDING,2026-11-21T23:58:00Z\n"
        ),
    )
    .expect("write");
    opts.partitions = 2;
    let second = reconcile_files(&files, &out, &opts, &masker()).expect("second run");
    assert_eq!((second.matched, second.unmatched_statement_ids), (2, 0));
    assert_eq!(second.superseded_events, 1);
    // The day's partition was replaced, not added to: only the 2 new part files remain.
    let parts = std::fs::read_dir(out.join(format!("batch/dt={DAY}")))
        .expect("dir")
        .count();
    assert_eq!(parts, 2);
    let rows = duckdb(
        "print(con.execute(f\"SELECT transaction_id, side, reconciled_status FROM read_parquet('{sys.argv[1]}/batch/*/*.parquet') ORDER BY 1\").fetchall())",
        &[out.to_str().expect("utf-8")],
    );
    assert_eq!(
        rows,
        "[('t1', 'BOTH', 'MATCHED'), ('t_late', 'BOTH', 'MATCHED')]"
    );
}
