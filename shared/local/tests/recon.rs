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

/// Writes one day's tiny inputs (transactions `ids` on `day`, each matched by a statement).
fn day_inputs(dir: &Path, day: &str, ids: &[&str]) -> RunFiles {
    let mut tx =
        String::from("transaction_id,merchant_id,user_id,amount,currency,status,timestamp\n");
    let mut st =
        String::from("statement_id,transaction_id,posting_date,amount_posted,fee_charged\n");
    for id in ids {
        tx.push_str(&format!("{id},m1,u1,10.00,USD,APPROVED,{day}T10:00:00Z\n"));
        st.push_str(&format!("s_{id},{id},{day},10.00,0\n"));
    }
    let (tx_path, st_path) = (
        dir.join(format!("tx-{day}.csv")),
        dir.join(format!("st-{day}.csv")),
    );
    std::fs::write(&tx_path, tx).expect("write");
    std::fs::write(&st_path, st).expect("write");
    RunFiles {
        transactions: vec![tx_path],
        statements: vec![st_path],
        ..RunFiles::default()
    }
}

fn options_for(day: &str, partitions: u32) -> RunOptions {
    let mut o = options();
    o.date = NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("valid date");
    o.partitions = partitions;
    o
}

#[test]
fn the_final_index_is_rolled_up_by_month_and_a_rerun_day_replaces_its_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let day20 = day_inputs(dir.path(), "2026-11-20", &["a1", "a2"]);
    let day21 = day_inputs(dir.path(), "2026-11-21", &["b1", "b2", "b3"]);
    reconcile_files(&day20, &out, &options_for("2026-11-20", 2), &masker()).expect("day 20");
    reconcile_files(&day21, &out, &options_for("2026-11-21", 4), &masker()).expect("day 21");
    // Day 21 again, with one more transaction and fewer partitions: replaced, not added to.
    let day21 = day_inputs(dir.path(), "2026-11-21", &["b1", "b2", "b3", "b4"]);
    reconcile_files(&day21, &out, &options_for("2026-11-21", 2), &masker()).expect("re-run");

    let month = out.join("final_monthly/month=2026-11");
    let mut names: Vec<String> = std::fs::read_dir(&month)
        .expect("monthly dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "part-20261120-00000.parquet",
            "part-20261120-00001.parquet",
            "part-20261121-00000.parquet",
            "part-20261121-00001.parquet",
        ]
    );
    let rows = duckdb(
        "print(con.execute(f\"SELECT month, CAST(batch_run_date AS VARCHAR), transaction_id, reconciled_status FROM read_parquet('{sys.argv[1]}/final_monthly/*/*.parquet', hive_partitioning = true) ORDER BY 3\").fetchall())",
        &[out.to_str().expect("utf-8")],
    );
    assert_eq!(
        rows,
        "[('2026-11', '2026-11-20', 'a1', 'MATCHED'), ('2026-11', '2026-11-20', 'a2', 'MATCHED'), \
         ('2026-11', '2026-11-21', 'b1', 'MATCHED'), ('2026-11', '2026-11-21', 'b2', 'MATCHED'), \
         ('2026-11', '2026-11-21', 'b3', 'MATCHED'), ('2026-11', '2026-11-21', 'b4', 'MATCHED')]"
    );
    // The rollup holds exactly the daily final index's rows.
    let same = duckdb(
        "r = lambda g: f\"SELECT * FROM read_parquet('{sys.argv[1]}/{g}/*/*.parquet', hive_partitioning = false)\"\n\
         d, m = r('final'), r('final_monthly')\n\
         print(*[con.execute(f'SELECT count(*) FROM ({a} EXCEPT ALL {b})').fetchone()[0] for a, b in [(d, m), (m, d)]])",
        &[out.to_str().expect("utf-8")],
    );
    assert_eq!(same, "0 0");
}

mod streaming_and_daily_workflow {
    //! The streaming index and the daily state machine on the local runtime: SQS events out
    //! of order into the recon table and the hourly files; then `ReconDailyStateMachine`
    //! (statements present) writes the day's datasets into the bucket.

    use std::sync::Arc;

    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use bytes::Bytes;
    use chrono::{DateTime, Utc};
    use payops_app::functions::{Function, build};
    use payops_app::ports::{Blobs, ManualClock};
    use payops_app::recon::TextTable;
    use payops_app::recon::stream::current_state;
    use payops_app::resources::{RECON_TABLE, Resources};
    use payops_local::runtime::System;
    use payops_local::workflows::ExecutionStatus;
    use serde_json::{Value, json};

    fn message(id: &str, body: Value) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = Some(body.to_string());
        m
    }

    fn tx(id: &str, user: &str, amount: &str, status: &str, at: &str) -> Value {
        json!({
            "kind": "transaction", "transaction_id": id, "merchant_id": "m_00001",
            "user_id": user, "amount": amount, "currency": "USD", "status": status,
            "timestamp": at
        })
    }

    async fn keys(blobs: &dyn Blobs, prefix: &str) -> Vec<String> {
        blobs
            .list(prefix, None)
            .await
            .expect("list")
            .blobs
            .into_iter()
            .map(|b| b.key)
            .collect()
    }

    #[tokio::test]
    async fn out_of_order_events_then_the_daily_workflow() {
        let dir = tempfile::tempdir().expect("temp dir");
        let now: DateTime<Utc> = "2026-11-22T01:30:00Z".parse().expect("time");
        let clock = Arc::new(ManualClock::new(now));
        let (system, _workers) = System::build(dir.path(), clock).expect("system");
        let env = system.env.clone();
        let blobs = env.blobs().expect("blobs");
        blobs
            .put(
                "recon/reference/merchants.csv",
                Bytes::from_static(
                    b"merchant_id,merchant_name,risk_level,onboarding_date\nm_00001,Shop,HIGH,2025-01-01\n",
                ),
                "text/csv",
            )
            .await
            .expect("put");
        let Function::Sqs(stream) = build("recon-stream", env.as_ref()).expect("builds") else {
            panic!("recon-stream is an SQS function");
        };

        // Refunded at 12:00, approved at 10:00, pending at 09:00: delivered newest first.
        let mut event = SqsEvent::default();
        event.records = vec![
            message(
                "m1",
                tx(
                    "t1",
                    "user_secret_1",
                    "30.00",
                    "REFUNDED",
                    "2026-11-21T12:00:00Z",
                ),
            ),
            message(
                "m2",
                tx(
                    "t1",
                    "user_secret_1",
                    "30.00",
                    "APPROVED",
                    "2026-11-21T10:00:00Z",
                ),
            ),
            message(
                "m3",
                json!({
                    "kind": "fraud_signal", "fraud_signal_id": "f2", "transaction_id": "t1",
                    "fraud_score": 0.95, "model_version": "v8", "inference_time": "2026-11-21T12:05:00Z"
                }),
            ),
            message(
                "m4",
                json!({
                    "fraud_signal_id": "f1", "transaction_id": "t1", "fraud_score": "0.10",
                    "model_version": "v7", "inference_time": "2026-11-21T10:05:00Z"
                }),
            ),
            message(
                "m5",
                tx(
                    "t2",
                    "user_secret_2",
                    "12.50",
                    "APPROVED",
                    "2026-11-21T11:00:00Z",
                ),
            ),
            message(
                "m6",
                tx(
                    "t1",
                    "user_secret_1",
                    "30.00",
                    "PENDING",
                    "2026-11-21T09:00:00Z",
                ),
            ),
            message(
                "bad",
                json!({"kind": "transaction", "transaction_id": "t3", "amount": "x"}),
            ),
        ];
        let response = stream.handle(event).await.expect("handled");
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, ["bad"]);

        let table = env.table(&RECON_TABLE).expect("table");
        let t1 = current_state(table.as_ref(), "t1")
            .await
            .expect("get")
            .expect("t1");
        assert_eq!(t1.s("status"), Some("REFUNDED"), "latest by event time");
        assert_eq!(t1.n("fraud_score"), Some("0.95".parse().expect("literal")));
        assert_eq!(t1.s("compliance_assessment"), Some("ESCALATE"));
        assert!(
            t1.s("masked_user_id")
                .is_some_and(|u| u.starts_with("usr_"))
        );
        assert!(
            !format!("{t1:?}").contains("user_secret"),
            "no raw user id stored"
        );

        let files = keys(
            blobs.as_ref(),
            "recon/stream/transactions/dt=2026-11-21/hour=01/",
        )
        .await;
        assert_eq!(files.len(), 1, "{files:?}");
        let body = blobs.get(&files[0]).await.expect("get").expect("file").body;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            text.lines().count(),
            1 + 4,
            "header and every accepted event: {text}"
        );
        assert!(!text.contains("user_secret"), "{text}");
        assert_eq!(
            keys(blobs.as_ref(), "recon/stream/fraud/dt=2026-11-21/")
                .await
                .len(),
            1
        );

        // The bank's file for the day, then the daily state machine.
        blobs
            .put(
                "recon/statements/dt=2026-11-21/bank.csv",
                Bytes::from_static(
                    b"statement_id,transaction_id,posting_date,amount_posted,fee_charged\n\
                      s1,t1,2026-11-22,-30.00,0\ns2,t2,2026-11-22,12.00,0.50\ns3,t9,2026-11-22,5,0\n",
                ),
                "text/csv",
            )
            .await
            .expect("put");
        let id = system
            .executor
            .start(
                "ReconDailyStateMachine",
                "2026-11-21",
                json!({"date": "2026-11-21"}),
            )
            .await
            .expect("starts");
        let record = system.executor.wait_finished(&id).await.expect("finishes");
        assert_eq!(record.status, ExecutionStatus::Succeeded, "{record:?}");

        let batch = keys(blobs.as_ref(), "recon/batch/dt=2026-11-21/").await;
        assert_eq!(batch, ["recon/batch/dt=2026-11-21/part-00000.parquet"]);
        for prefix in [
            "recon/final/dt=2026-11-21/part-00000.parquet",
            "recon/kpis/dt=2026-11-21/part-00000.parquet",
            "recon/kpis_monthly/month=2026-11/part-00000.parquet",
            "recon/final_monthly/month=2026-11/part-20261121-00000.parquet",
        ] {
            assert_eq!(keys(blobs.as_ref(), prefix).await.len(), 1, "{prefix}");
        }
        let bytes = blobs
            .get(&batch[0])
            .await
            .expect("get")
            .expect("batch")
            .body;
        let table = TextTable::from_bytes("batch", bytes.to_vec()).expect("Parquet");
        let rows = table
            .parse_partitioned(1, 1, |f| Ok(f[..4].join(" ")), |r: &String| r.as_str())
            .expect("rows");
        let mut rows: Vec<String> = rows.into_iter().flatten().collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                "t1 BOTH MATCHED -30.0000",
                "t2 BOTH MATCHED 12.0000",
                "t9 STATEMENT_ONLY UNMATCHED 5.0000"
            ]
        );
        let final_bytes = blobs
            .get("recon/final/dt=2026-11-21/part-00000.parquet")
            .await
            .expect("get")
            .expect("final")
            .body;
        assert!(!final_bytes.windows(11).any(|w| w == b"user_secret"));
    }

    #[tokio::test]
    async fn the_workflow_task_waits_for_statements() {
        let dir = tempfile::tempdir().expect("temp dir");
        let now: DateTime<Utc> = "2026-11-22T02:00:00Z".parse().expect("time");
        let (system, _workers) =
            System::build(dir.path(), Arc::new(ManualClock::new(now))).expect("system");
        let Function::Task(daily) = build("recon-daily", system.env.as_ref()).expect("builds")
        else {
            panic!("recon-daily is a Task function");
        };
        // The scheduled event's time is the day after the business day.
        let err = daily
            .handle(
                json!({"action": "await_statements", "request": {"time": "2026-11-22T02:00:00Z"}}),
            )
            .await
            .expect_err("no statements yet");
        assert_eq!(err.error_type(), "Retryable");
        assert!(err.to_string().contains("2026-11-21"), "{err}");
        let bad = daily
            .handle(json!({"action": "nope"}))
            .await
            .expect_err("unknown");
        assert_eq!(bad.error_type(), "Rejected");
    }

    #[tokio::test]
    async fn reference_data_by_api_then_the_index_of_a_transaction() {
        use axum::body::Body;
        use http::{Request, StatusCode};
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        let dir = tempfile::tempdir().expect("temp dir");
        let now: DateTime<Utc> = "2026-11-22T01:30:00Z".parse().expect("time");
        let (system, _workers) =
            System::build(dir.path(), Arc::new(ManualClock::new(now))).expect("system");
        let env = system.env.clone();
        let Function::Http(api) = build("recon-api", env.as_ref()).expect("builds") else {
            panic!("recon-api is an HTTP function");
        };
        let call = |request: Request<Body>| {
            let api = api.clone();
            async move {
                let response = api.oneshot(request).await.expect("served");
                let status = response.status();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                (
                    status,
                    serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
                )
            }
        };
        let put = |kind: &str, body: &'static str| {
            Request::put(format!("/recon/reference/{kind}"))
                .body(Body::from(body))
                .expect("request")
        };
        let (status, body) = call(put(
            "policies",
            "policy_id,policy_type,rule_description,active_flag,threshold,currency,risk_levels\n\
             kyc,KYC,KYC above 20,true,20,,\n",
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["rows"], json!(1));
        let (status, body) = call(put(
            "merchants",
            "merchant_id,merchant_name,risk_level,onboarding_date\nm_00001,Shop,EXTREME,2025-01-01\n",
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("line 2: field risk_level")),
            "{body}"
        );
        let (status, _) = call(put("limits", "a\n")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let Function::Sqs(stream) = build("recon-stream", env.as_ref()).expect("builds") else {
            panic!("recon-stream is an SQS function");
        };
        let mut event = SqsEvent::default();
        event.records = vec![message(
            "m1",
            tx(
                "t7",
                "user_secret_7",
                "25.00",
                "APPROVED",
                "2026-11-21T10:00:00Z",
            ),
        )];
        stream.handle(event).await.expect("handled");
        let get = |id: &str| {
            Request::get(format!("/recon/transactions/{id}"))
                .body(Body::empty())
                .expect("request")
        };
        let (status, body) = call(get("t7")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], json!("APPROVED"));
        assert_eq!(body["amount"], json!("25.00"));
        assert_eq!(
            body["policy_flags"],
            json!(["KYC_REQUIRED"]),
            "the policy put by API applies"
        );
        assert_eq!(body["compliance_assessment"], json!("REVIEW"));
        assert!(!body.to_string().contains("user_secret"), "{body}");
        let (status, _) = call(get("nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
