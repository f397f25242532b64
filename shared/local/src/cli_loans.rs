//! `payops loans`: the loans flow on the embedded store.
//!
//! - `import FILE`: bulk-create loans from CSV (`loan_id,borrower_id,employer_id,amount,currency`
//!   and optionally `declared_schedule,amount_tolerance`); idempotent, so a file can be re-run.
//! - `show ID`: a loan with its inferred schedule, next expected date and recent history.
//! - `check --date D [--grace N]`: the morning payroll checker, as its schedule runs it.
//! - `bench`: the checker over a large generated book of loans, median of runs.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Datelike as _, Days, NaiveDate};
use clap::Subcommand;
use futures::StreamExt;
use payops_app::loans::import::parse_loans_csv;
use payops_app::loans::layout::{LoanRecord, LoanStatus, loan_item};
use payops_app::loans::{
    CheckOptions, CheckReport, Checker, GRACE_BUSINESS_DAYS_DEFAULT, LoanView, Loans, create_loan,
};
use payops_app::ports::table::TRANSACTION_WRITES_MAX;
use payops_app::ports::{SystemClock, Write};
use payops_core::paydays::{Confidence, Frequency, MonthDay, Schedule};
use payops_core::{Currency, Secret};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::env::LocalEnv;

/// Loans created concurrently by an import.
pub const IMPORT_CONCURRENCY: usize = 16;
/// Most loans the benchmark generates.
pub const BENCH_LOANS_MAX: u64 = 20_000_000;
/// Runs of the benchmark at most (each checks its own day).
pub const BENCH_RUNS_MAX: usize = 10;

#[derive(Subcommand, Debug)]
pub enum LoansCommand {
    /// Create loans from a CSV file.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show one loan (JSON).
    Show { loan_id: String },
    /// Run the payroll checker for a morning.
    Check {
        /// The morning of the run (YYYY-MM-DD); default today (UTC).
        #[arg(long, value_parser = parse_day)]
        date: Option<NaiveDate>,
        /// Grace after the expected date, in business days.
        #[arg(long, default_value_t = GRACE_BUSINESS_DAYS_DEFAULT)]
        grace: u32,
        #[arg(long)]
        json: bool,
    },
    /// The checker over a generated book of loans on a fresh embedded store.
    Bench {
        #[arg(long, default_value_t = 1_000_000)]
        loans: u64,
        /// Loans (per mille) whose payroll is missed on each run's day.
        #[arg(long, default_value_t = 20)]
        missed_per_mille: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
}

fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("{text:?} is not YYYY-MM-DD"))
}

#[derive(Debug, thiserror::Error)]
pub enum LoansCliError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no loan {0}")]
    NotFound(String),
    #[error("{failed} of {rows} loans were not imported (see above)")]
    ImportFailed { failed: u64, rows: u64 },
    #[error(
        "--loans must be 1 to {BENCH_LOANS_MAX}, --runs 1 to {BENCH_RUNS_MAX}, --missed-per-mille at most 1000"
    )]
    BenchSize,
}

type AnyError = Box<dyn Error + Send + Sync>;

pub async fn run(data: &Path, cmd: LoansCommand) -> Result<(), AnyError> {
    match cmd {
        LoansCommand::Import { file, json } => import(data, &file, json).await,
        LoansCommand::Show { loan_id } => show(data, &loan_id).await,
        LoansCommand::Check { date, grace, json } => {
            let env = LocalEnv::open(data, Arc::new(SystemClock))?;
            let loans = Loans::from_resources(&env)?;
            let date = date.unwrap_or_else(|| loans.clock.now().date_naive());
            let report = Checker::new(loans)
                .check(CheckOptions {
                    date,
                    grace_business_days: grace,
                })
                .await?;
            print_check(&report, json)?;
            Ok(())
        }
        LoansCommand::Bench {
            loans,
            missed_per_mille,
            runs,
            json,
        } => {
            let report = bench(data, loans, missed_per_mille, runs).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "payroll checker over {} loans ({} missed per run): median {} ms over {} runs {:?} (seeding took {} ms)",
                    report.loans,
                    report.missed_per_run,
                    report.check_ms_median,
                    report.check_ms_runs.len(),
                    report.check_ms_runs,
                    report.seed_ms
                );
            }
            Ok(())
        }
    }
}

fn print_check(report: &CheckReport, json: bool) -> Result<(), AnyError> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!(
            "payroll check {}: checked expected dates through {}; {} newly missed, {} in the report, {} late payments, {} events emitted",
            report.date,
            report.checked_through,
            report.newly_missed,
            report.missed,
            report.late,
            report.events_emitted
        );
        println!("  {}", report.missed_report);
        println!("  {}", report.late_report);
    }
    Ok(())
}

#[derive(Debug, Default, Serialize)]
struct ImportReport {
    rows: u64,
    created: u64,
    already_present: u64,
    failed: u64,
}

async fn import(data: &Path, file: &Path, json: bool) -> Result<(), AnyError> {
    let text = std::fs::File::open(file).map_err(|source| LoansCliError::Read {
        path: file.to_owned(),
        source,
    })?;
    let parsed =
        tokio::task::spawn_blocking(move || parse_loans_csv(std::io::BufReader::new(text)))
            .await??;
    let env = LocalEnv::open(data, Arc::new(SystemClock))?;
    let loans = Loans::from_resources(&env)?;
    let today = loans.clock.now().date_naive();
    let mut report = ImportReport {
        rows: parsed.len() as u64,
        ..ImportReport::default()
    };
    let mut results = futures::stream::iter(parsed.into_iter().enumerate())
        .map(|(i, new)| {
            let loans = loans.clone();
            async move { (i, create_loan(&loans, new, today).await) }
        })
        .buffer_unordered(IMPORT_CONCURRENCY);
    while let Some((i, result)) = results.next().await {
        match result {
            Ok((_, true)) => report.created += 1,
            Ok((_, false)) => report.already_present += 1,
            Err(e) => {
                report.failed += 1;
                // Line numbers: the header is line 1.
                eprintln!("line {}: {e}", i + 2);
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} rows: {} created, {} already present, {} failed",
            report.rows, report.created, report.already_present, report.failed
        );
    }
    if report.failed > 0 {
        return Err(LoansCliError::ImportFailed {
            failed: report.failed,
            rows: report.rows,
        }
        .into());
    }
    Ok(())
}

async fn show(data: &Path, loan_id: &str) -> Result<(), AnyError> {
    let env = LocalEnv::open(data, Arc::new(SystemClock))?;
    let loans = Loans::from_resources(&env)?;
    let (loan, history) = loans
        .get(loan_id)
        .await?
        .ok_or_else(|| LoansCliError::NotFound(loan_id.to_owned()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&LoanView::new(&loan, &history))?
    );
    Ok(())
}

/// What `loans bench` measured.
#[derive(Debug, Serialize)]
pub struct LoansBenchReport {
    pub loans: u64,
    pub missed_per_run: u64,
    pub seed_ms: u64,
    pub check_ms_runs: Vec<u64>,
    pub check_ms_median: u64,
    pub reports: Vec<CheckReport>,
}

/// The book: loan `i` is a monthly payroll loan. Every run day `r` has its share of loans
/// expected on the business day before it (their payroll did not arrive); all others are
/// expected on later days, so they sit in index partitions the checker never reads.
fn bench_loan(i: u64, missed_every: u64, run_days: &[NaiveDate], created_at: &str) -> LoanRecord {
    let runs = run_days.len() as u64;
    let (day, expected) = if i % missed_every < runs {
        // Missed: expected two business days before run day r (grace 1 has passed).
        let r = (i % missed_every) as usize;
        let expected = payops_core::paydays::add_business_days(run_days[r], -2);
        (expected.day0() + 1, expected)
    } else {
        let day = 1 + (i % 28) as u32;
        let last = run_days[run_days.len() - 1];
        let expected = last
            .checked_add_days(Days::new(u64::from(day) + 7))
            .unwrap_or(last);
        (day, expected)
    };
    LoanRecord {
        loan_id: format!("L{i:08}"),
        borrower_id: Secret::new(format!("B{i:08}")),
        employer_id: format!("E{:04}", i % 500),
        amount: Decimal::new(25_000 + (i % 1000) as i64, 2),
        currency: Currency::BRL,
        tolerance: payops_app::loans::AMOUNT_TOLERANCE_DEFAULT,
        declared_schedule: None,
        schedule: MonthDay::new(day as u8).map(|day| Schedule::Monthly { day }),
        frequency: Some(Frequency::Monthly),
        confidence: Confidence::from_bp(9_500),
        status: LoanStatus::Current,
        expected_date: Some(expected),
        window_start: None,
        missed_on: None,
        missed_expected_date: None,
        last_paid_on: None,
        last_paid_amount: None,
        late_paid_on: None,
        created_at: created_at.to_owned(),
        version: 1,
    }
}

async fn bench(
    data: &Path,
    loans: u64,
    missed_per_mille: u64,
    runs: usize,
) -> Result<LoansBenchReport, AnyError> {
    if loans == 0
        || loans > BENCH_LOANS_MAX
        || runs == 0
        || runs > BENCH_RUNS_MAX
        || missed_per_mille > 1000
    {
        return Err(LoansCliError::BenchSize.into());
    }
    let dir = data.join(format!("bench-loans-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let env = LocalEnv::open(&dir, Arc::new(SystemClock))?;
    let state = Loans::from_resources(&env)?;
    // Consecutive business days from a fixed start, so every run flags the same share.
    let mut day = NaiveDate::from_ymd_opt(2026, 3, 3).ok_or("a valid date")?;
    let mut run_days = Vec::new();
    while run_days.len() < runs {
        if payops_core::paydays::is_business_day(day) {
            run_days.push(day);
        }
        day = day.succ_opt().ok_or("date overflow")?;
    }
    // One cycle of 1000/missed_per_mille loans holds one missed loan per run day, so each run
    // flags missed_per_mille of the book.
    let missed_every = 1000u64.checked_div(missed_per_mille).unwrap_or(u64::MAX);
    if missed_every <= runs as u64 {
        return Err(LoansCliError::BenchSize.into());
    }
    let created_at = "2026-01-01T00:00:00.000000000Z";
    let start = Instant::now();
    let mut i = 0;
    while i < loans {
        let end = (i + TRANSACTION_WRITES_MAX as u64).min(loans);
        let writes = (i..end)
            .map(|n| Write::Put {
                item: loan_item(&bench_loan(n, missed_every, &run_days, created_at)),
                condition: None,
            })
            .collect();
        state.table.transact(writes).await?;
        i = end;
    }
    let seed_ms = start.elapsed().as_millis() as u64;
    let checker = Checker::new(state);
    let mut report = LoansBenchReport {
        loans,
        missed_per_run: 0,
        seed_ms,
        check_ms_runs: Vec::new(),
        check_ms_median: 0,
        reports: Vec::new(),
    };
    for day in &run_days {
        let start = Instant::now();
        let check = checker
            .check(CheckOptions {
                date: *day,
                grace_business_days: 1,
            })
            .await?;
        report
            .check_ms_runs
            .push(start.elapsed().as_millis() as u64);
        report.missed_per_run = check.newly_missed;
        report.reports.push(check);
    }
    let mut sorted = report.check_ms_runs.clone();
    sorted.sort_unstable();
    report.check_ms_median = sorted[sorted.len() / 2];
    drop(checker);
    drop(env);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("bench: could not remove {}: {e}", dir.display());
    }
    Ok(report)
}

/// Borrowers in `payops demo`'s loans step.
pub const DEMO_BORROWERS: u64 = 200;
/// Payments of history per demo borrower.
pub const DEMO_HISTORY_PAYMENTS: usize = 24;
/// Days the demo plays forward from the borrowers' as-of date to the check.
pub const DEMO_DAYS: u64 = 14;

/// What the loans step of `payops demo` did.
#[derive(Debug, Serialize)]
pub struct LoansDemo {
    pub loans_created: u64,
    /// Inferred schedules of the new loans: frequency → loans.
    pub frequencies: std::collections::BTreeMap<String, u64>,
    pub payments_recorded: u64,
    pub check_date: String,
    pub missed: u64,
    pub missed_csv: PathBuf,
    pub late_csv: PathBuf,
    /// One loan, as `GET /loans/{id}` shows it.
    pub sample_loan_url: String,
}

/// The loans flow on a running `payops up`: generated borrowers' histories recorded, loans
/// created through `POST /loans`, the next two weeks played forward (half the borrowers keep
/// being paid, half stop), then the morning payroll check after them.
pub async fn demo(env: &LocalEnv, base_url: &str, data_dir: &Path) -> Result<LoansDemo, AnyError> {
    use payops_app::loans::record_payment;
    use payops_core::paydays::generate::GeneratorConfig;
    let loans = Loans::from_resources(env)?;
    // Histories up to yesterday; loans created today; then the next two weeks are played
    // forward and the check runs on the morning after them.
    let today = loans.clock.now().date_naive();
    let as_of = today.pred_opt().ok_or("date underflow")?;
    let check_date = today
        .checked_add_days(Days::new(DEMO_DAYS))
        .ok_or("date overflow")?;
    let config = GeneratorConfig {
        seed: 8,
        as_of_from: as_of,
        as_of_days: 0,
        history_payments_max: DEMO_HISTORY_PAYMENTS,
        ..GeneratorConfig::default()
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let run_id = &run_id[..8];
    let client = crate::client::HttpClient::default();
    let mut report = LoansDemo {
        loans_created: 0,
        frequencies: Default::default(),
        payments_recorded: 0,
        check_date: check_date.format("%Y-%m-%d").to_string(),
        missed: 0,
        missed_csv: crate::demo::object_path(data_dir, &payops_app::loans::missed_key(check_date)),
        late_csv: crate::demo::object_path(data_dir, &payops_app::loans::late_key(check_date)),
        sample_loan_url: String::new(),
    };
    let mut event_n = 0u64;
    let mut record = |loan_id: &str, borrower: &str, amount: Decimal, day: NaiveDate| {
        event_n += 1;
        let body = serde_json::json!({
            "event_id": format!("evt_demo_{run_id}_{event_n}"), "loan_id": loan_id,
            "borrower_id": borrower, "employer_id": "emp_demo", "amount": amount.to_string(),
            "currency": "BRL", "status": "paid",
            "paid_at": format!("{}T12:00:00Z", day.format("%Y-%m-%d")),
        });
        payops_core::payment_event::parse_webhook_body(body.to_string().as_bytes())
    };
    let mut loan_ids = Vec::new();
    for i in 0..DEMO_BORROWERS {
        let b = payops_core::paydays::generate::generate_borrower(&config, i);
        let borrower = format!("bor_demo_{run_id}_{i:03}");
        let loan_id = format!("loan_demo_{run_id}_{i:03}");
        for p in &b.payments {
            let event = record(&loan_id, &borrower, p.amount, p.date)?;
            record_payment(loans.table.as_ref(), &event).await?;
            report.payments_recorded += 1;
        }
        let amount = b.payments.last().map_or(Decimal::ONE_HUNDRED, |p| p.amount);
        let body = serde_json::json!({
            "loan_id": loan_id, "borrower_id": borrower, "employer_id": "emp_demo",
            "amount": amount.to_string(), "currency": "BRL", "amount_tolerance": "0.05",
        });
        let r = client
            .post_json(
                &format!("{base_url}/loans"),
                &[],
                bytes::Bytes::from(body.to_string()),
            )
            .await?;
        if r.status >= 300 {
            return Err(format!(
                "POST /loans answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
            .into());
        }
        let view = r.json()?;
        let frequency = view["frequency"].as_str().unwrap_or("unknown").to_owned();
        *report.frequencies.entry(frequency).or_default() += 1;
        report.loans_created += 1;
        loan_ids.push((loan_id, borrower, i % 2 == 0));
    }
    // Half the borrowers are paid on every expected date before the check; half stop.
    for (loan_id, borrower, pays) in &loan_ids {
        if !*pays {
            continue;
        }
        loop {
            let Some((loan, _)) = loans.get(loan_id).await? else {
                break;
            };
            let Some(expected) = loan.expected_date.filter(|d| *d < check_date) else {
                break;
            };
            let event = record(loan_id, borrower, loan.amount, expected)?;
            record_payment(loans.table.as_ref(), &event).await?;
            report.payments_recorded += 1;
        }
    }
    let check = Checker::new(loans)
        .check(CheckOptions {
            date: check_date,
            grace_business_days: GRACE_BUSINESS_DAYS_DEFAULT,
        })
        .await?;
    report.missed = check.missed;
    if let Some((loan_id, _, _)) = loan_ids.get(1) {
        report.sample_loan_url = format!("{base_url}/loans/{loan_id}");
    }
    Ok(report)
}
