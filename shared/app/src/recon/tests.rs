//! The day pipeline end to end in memory: CSV and Parquet inputs, every batch case, and the
//! written Parquet read back (by this crate's Parquet reader; the independent DuckDB check is
//! in payops-local's tests).

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, TimeZone, Utc};
use payops_core::Secret;
use payops_core::recon::UserIdMasker;

use super::input::TextTable;
use super::run::{DayInputs, RunOptions, run_day};

const TRANSACTIONS: &str = "\
transaction_id,merchant_id,user_id,amount,currency,status,timestamp
t_exact,m1,alice,100.00,USD,APPROVED,2026-11-21T10:00:00Z
t_tol,m1,bob,50.00,USD,APPROVED,2026-11-21T10:01:00Z
t_partial,m2,carol,80.00,USD,APPROVED,2026-11-21T10:02:00Z
t_missing,m2,dave,12.34,USD,APPROVED,2026-11-21T10:03:00Z
t_split,m1,erin,200.00,BRL,APPROVED,2026-11-21T10:04:00Z
t_dup,m1,frank,10.00,USD,APPROVED,2026-11-21T10:05:00Z
t_refund,m2,grace,30.00,USD,REFUNDED,2026-11-21T12:00:00Z
t_refund,m2,grace,30.00,USD,APPROVED,2026-11-21T09:00:00Z
t_declined,m3,heidi,70.00,USD,DECLINED,2026-11-21T10:06:00Z
";

const STATEMENTS: &str = "\
statement_id,transaction_id,posting_date,amount_posted,fee_charged
s1,t_exact,2026-11-22,97.10,2.90
s2,t_tol,2026-11-22,49.99,0
s3,t_partial,2026-11-22,70.00,0
s4,t_split,2026-11-22,120.00,1.00
s5,t_split,2026-11-22,79.00,
s6,t_dup,2026-11-22,10.00,0.00
s6,t_dup,2026-11-22,10.00,0.00
s7,t_refund,2026-11-22,-30.00,0
s8,t_ghost,2026-11-22,5.00,0.25
";

fn table(name: &str, text: &str) -> TextTable {
    TextTable::from_bytes(name, text.as_bytes().to_vec()).expect("valid test input")
}

fn options(tolerance: &str, partitions: u32) -> RunOptions {
    let mut o = RunOptions::new(
        NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid date"),
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0)
            .single()
            .expect("valid time"),
    );
    o.tolerance = tolerance.parse().expect("literal");
    o.partitions = partitions;
    o.threads = 2;
    o
}

fn masker() -> UserIdMasker {
    UserIdMasker::new(&Secret::new("test-key-0123456789".into())).expect("long key")
}

/// transaction_id → (side, status, amount_posted, discrepancy) from the batch files.
fn batch_rows(files: &[super::run::OutputFile]) -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    for f in files.iter().filter(|f| f.dataset == "batch") {
        let t = TextTable::from_bytes(&f.key, f.bytes.clone()).expect("our own Parquet reads");
        assert_eq!(
            t.columns(),
            [
                "transaction_id",
                "side",
                "reconciled_status",
                "amount_posted",
                "discrepancy",
                "batch_run_date"
            ]
        );
        let parts = t
            .parse_partitioned(
                1,
                1,
                |f| Ok(f.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                |r| r[0].as_str(),
            )
            .expect("parses");
        for r in parts.into_iter().flatten() {
            rows.insert(r[0].clone(), r[1..].to_vec());
        }
    }
    rows
}

fn run(tolerance: &str, partitions: u32) -> (BTreeMap<String, Vec<String>>, super::run::DayOutput) {
    let inputs = DayInputs {
        transactions: vec![table("tx.csv", TRANSACTIONS)],
        statements: vec![table("st.csv", STATEMENTS)],
        fraud: vec![],
        policies: vec![],
        merchants: HashMap::new(),
    };
    let out = run_day(&inputs, &masker(), &options(tolerance, partitions)).expect("runs");
    (batch_rows(&out.files), out)
}

#[test]
fn every_batch_case_in_one_day() {
    let (rows, out) = run("0.00", 4);
    let row = |id: &str| rows.get(id).map(|r| r[..4].join(" ")).unwrap_or_default();
    assert_eq!(row("t_exact"), "BOTH MATCHED 97.1000 0.0000");
    assert_eq!(row("t_tol"), "BOTH PARTIAL 49.9900 0.0100");
    assert_eq!(row("t_partial"), "BOTH PARTIAL 70.0000 10.0000");
    assert_eq!(
        row("t_missing"),
        "TRANSACTION_ONLY UNMATCHED 0.0000 12.3400"
    );
    assert_eq!(row("t_split"), "BOTH MATCHED 199.0000 0.0000");
    assert_eq!(row("t_dup"), "BOTH MATCHED 10.0000 0.0000");
    assert_eq!(row("t_refund"), "BOTH MATCHED -30.0000 0.0000");
    assert_eq!(row("t_declined"), "TRANSACTION_ONLY MATCHED 0.0000 0.0000");
    assert_eq!(row("t_ghost"), "STATEMENT_ONLY UNMATCHED 5.0000 -5.2500");
    assert_eq!(rows["t_exact"][4], "2026-11-21");
    assert_eq!(rows.len(), 9);
    let s = &out.summary;
    assert_eq!((s.transactions, s.matched, s.partial), (8, 5, 2));
    assert_eq!(
        (s.unmatched_transactions, s.unmatched_statement_ids),
        (1, 1)
    );
    assert_eq!((s.superseded_events, s.duplicate_statement_lines), (1, 1));
    // 4 partitions x (batch + final) + one KPIs file, under Hive-style day partitions.
    assert_eq!(out.files.len(), 9);
    assert!(
        out.files
            .iter()
            .any(|f| f.key == "final/dt=2026-11-21/part-00003.parquet")
    );
    assert!(
        out.files
            .iter()
            .any(|f| f.key == "kpis/dt=2026-11-21/part-00000.parquet")
    );
}

#[test]
fn tolerance_turns_a_cent_into_a_match() {
    let (rows, _) = run("0.01", 1);
    assert_eq!(rows["t_tol"][1], "MATCHED");
    assert_eq!(rows["t_tol"][3], "0.0100");
    assert_eq!(rows["t_partial"][1], "PARTIAL");
}

#[test]
fn partitions_and_threads_do_not_change_the_result() {
    let one = run("0", 1).0;
    for p in [2, 3, 16] {
        assert_eq!(run("0", p).0, one, "{p} partitions");
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let a = run("0", 4).1;
    let b = run("0", 4).1;
    for (x, y) in a.files.iter().zip(&b.files) {
        assert_eq!(x.key, y.key);
        assert!(x.bytes == y.bytes, "{} differs between runs", x.key);
    }
}

#[test]
fn quoted_csv_and_parquet_inputs_read_like_plain_csv() {
    let quoted = STATEMENTS.replace("s8,t_ghost", "\"s8\",\"t_ghost\"");
    let inputs = DayInputs {
        transactions: vec![table("tx.csv", TRANSACTIONS)],
        statements: vec![table("st.csv", &quoted)],
        fraud: vec![],
        policies: vec![],
        merchants: HashMap::new(),
    };
    let out = run_day(&inputs, &masker(), &options("0", 2)).expect("runs");
    assert_eq!(batch_rows(&out.files), run("0", 2).0);
    // Our own batch output, read as a Parquet input, has typed decimals and dates.
    let batch = out
        .files
        .iter()
        .find(|f| f.dataset == "batch")
        .expect("a batch file");
    let t = TextTable::from_bytes("batch.parquet", batch.bytes.clone()).expect("Parquet input");
    assert_eq!(t.columns()[3], "amount_posted");
}

#[test]
fn bad_rows_are_named_by_file_line_and_field() {
    let bad = TRANSACTIONS.replace("t_tol,m1,bob,50.00", "t_tol,m1,bob,50.0.0");
    let inputs = DayInputs {
        transactions: vec![table("tx.csv", &bad)],
        statements: vec![table("st.csv", STATEMENTS)],
        fraud: vec![],
        policies: vec![],
        merchants: HashMap::new(),
    };
    let err = run_day(&inputs, &masker(), &options("0", 2)).expect_err("bad amount");
    assert_eq!(
        err.to_string(),
        "tx.csv: line 3: field amount is not a decimal number: \"50.0.0\""
    );
    let missing = TextTable::from_bytes("st.csv", b"statement_id,transaction_id\ns1,t1\n".to_vec())
        .expect("csv");
    let inputs = DayInputs {
        transactions: vec![],
        statements: vec![missing],
        fraud: vec![],
        policies: vec![],
        merchants: HashMap::new(),
    };
    let err = run_day(&inputs, &masker(), &options("0", 2)).expect_err("missing column");
    assert!(
        err.to_string().contains("missing column \"posting_date\""),
        "{err}"
    );
    let cents = TRANSACTIONS.replace("12.34", "12.34567");
    let inputs = DayInputs {
        transactions: vec![table("tx.csv", &cents)],
        statements: vec![],
        fraud: vec![],
        policies: vec![],
        merchants: HashMap::new(),
    };
    let err = run_day(&inputs, &masker(), &options("0", 2)).expect_err("too many places");
    assert!(
        err.to_string()
            .contains("line 5: field amount has 5 decimal places"),
        "{err}"
    );
}

#[test]
fn no_raw_user_id_in_any_output_file() {
    let (_, out) = run("0", 2);
    for f in &out.files {
        for user in [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
        ] {
            assert!(
                !f.bytes.windows(user.len()).any(|w| w == user.as_bytes()),
                "{user} in {}",
                f.key
            );
        }
    }
}

#[test]
fn one_partition_alone_gives_that_partitions_files() {
    let inputs = DayInputs {
        transactions: vec![table("tx.csv", TRANSACTIONS)],
        statements: vec![table("st.csv", STATEMENTS)],
        fraud: vec![],
        policies: vec![],
        merchants: HashMap::new(),
    };
    let opts = options("0", 4);
    let whole = run_day(&inputs, &masker(), &opts).expect("runs");
    let mut total = 0;
    for p in 0..4 {
        let alone =
            super::run::run_partitions(&inputs, &masker(), &opts, &[p]).expect("one partition");
        assert_eq!(alone.files.len(), 2, "batch and final of partition {p}");
        for f in &alone.files {
            let same = whole
                .files
                .iter()
                .find(|w| w.key == f.key)
                .expect("same key");
            assert!(same.bytes == f.bytes, "{} differs", f.key);
        }
        total += alone.summary.transactions + alone.summary.unmatched_statement_ids;
    }
    assert_eq!(total, 9);
    let err =
        super::run::run_partitions(&inputs, &masker(), &opts, &[4]).expect_err("out of range");
    assert!(err.to_string().contains("partition 4"), "{err}");
}

#[test]
fn a_days_final_files_have_their_own_names_in_the_monthly_rollup() {
    use super::run::{FINAL_MONTHLY_DATASET, final_monthly_key, month_prefix, monthly_day_stem};
    let day = NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid date");
    assert_eq!(
        month_prefix(FINAL_MONTHLY_DATASET, day),
        "final_monthly/month=2026-11/"
    );
    assert_eq!(
        final_monthly_key(day, 3),
        "final_monthly/month=2026-11/part-20261121-00003.parquet"
    );
    // Another day of the month never shares a stem, so replacing one day leaves the others.
    let next = NaiveDate::from_ymd_opt(2026, 11, 2).expect("valid date");
    assert!(!final_monthly_key(next, 3).contains(&monthly_day_stem(day)));
}
