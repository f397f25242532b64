//! `payops paydays`: pay-frequency inference offline.
//!
//! - `infer HISTORY.csv --as-of YYYY-MM-DD [--json]`: the schedule, confidence and next pay date
//!   (or window) of every borrower in a `borrower_id,paid_at,amount` file.
//! - `generate --borrowers N --out FILE`: a history file with known schedules (the generator of
//!   the tests), for demos and scripts.
//! - `bench`: accuracy over generated borrowers (confusion matrix) and inference time per
//!   50-payment history, median of runs.

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use clap::Subcommand;
use payops_core::paydays::generate::{EarnerKind, GeneratorConfig, generate_borrower};
use payops_core::paydays::{Frequency, HistoryError, Inference, Inferrer, parse_history_csv};
use serde_json::{Value, json};

/// A regular earner called irregular at or above this confidence (bp) is a "confident" error,
/// and an irregular earner called regular at or above it is what the issue forbids.
pub const HIGH_CONFIDENCE_BP: u32 = 8_000;
/// Payments in each history of the timing benchmark.
pub const BENCH_HISTORY_PAYMENTS: usize = 50;
/// Most borrowers the accuracy benchmark generates.
pub const BENCH_BORROWERS_MAX: u64 = 10_000_000;

#[derive(Subcommand, Debug)]
pub enum PaydaysCommand {
    /// Infer each borrower's pay schedule from a CSV `borrower_id,paid_at,amount`.
    Infer {
        file: PathBuf,
        /// Predict the first pay date after this day (YYYY-MM-DD); later payments are ignored.
        #[arg(long, value_parser = parse_day)]
        as_of: NaiveDate,
        #[arg(long)]
        json: bool,
    },
    /// Write a generated history CSV (known schedules, holidays, late/missing payments).
    Generate {
        #[arg(long, default_value_t = 100)]
        borrowers: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 8)]
        seed: u64,
    },
    /// Accuracy over generated borrowers and inference time per 50-payment history.
    Bench {
        #[arg(long, default_value_t = 10_000)]
        borrowers: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 8)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PaydaysCliError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: HistoryError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--borrowers must be 1 to {BENCH_BORROWERS_MAX} and --runs at least 1")]
    BenchSize,
    #[error("the paydays command stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
}

fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("{text:?} is not YYYY-MM-DD"))
}

pub async fn run(cmd: PaydaysCommand) -> Result<(), Box<dyn Error + Send + Sync>> {
    // CPU and file bound: off the async workers.
    let result = tokio::task::spawn_blocking(move || match cmd {
        PaydaysCommand::Infer { file, as_of, json } => infer_file(&file, as_of, json),
        PaydaysCommand::Generate {
            borrowers,
            out,
            seed,
        } => write_generated(borrowers, seed, &out),
        PaydaysCommand::Bench {
            borrowers,
            runs,
            seed,
            json,
        } => bench(borrowers, runs, seed, json),
    })
    .await;
    result.map_err(PaydaysCliError::Join)??;
    Ok(())
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The JSON object of one borrower, as `paydays infer --json` prints it.
pub fn inference_json(borrower_id: &str, inference: &Inference) -> Value {
    // A Confidence prints as an exact decimal, which is a valid JSON number.
    let confidence: Value = inference
        .confidence
        .to_string()
        .parse::<serde_json::Number>()
        .map_or(Value::Null, Value::Number);
    json!({
        "borrower_id": borrower_id,
        "frequency": inference.frequency.as_str(),
        "confidence": confidence,
        "schedule": inference.schedule.map(|s| s.to_string()),
        "next_date": inference.next_date.map(day_text),
        "next_window": inference.next_window.map(|w| json!({
            "earliest": day_text(w.earliest),
            "latest": day_text(w.latest),
        })),
    })
}

/// Infers every borrower of a history file.
pub fn infer_histories(
    path: &Path,
    as_of: NaiveDate,
) -> Result<Vec<(String, Inference)>, PaydaysCliError> {
    let file = std::fs::File::open(path).map_err(|source| PaydaysCliError::Read {
        path: path.to_owned(),
        source,
    })?;
    let histories = parse_history_csv(std::io::BufReader::new(file)).map_err(|source| {
        PaydaysCliError::Parse {
            path: path.to_owned(),
            source,
        }
    })?;
    let mut inferrer = Inferrer::default();
    let mut dates = Vec::new();
    Ok(histories
        .into_iter()
        .map(|(borrower, payments)| {
            dates.clear();
            dates.extend(payments.iter().map(|p| p.date));
            let inference = inferrer.infer(&dates, as_of);
            (borrower, inference)
        })
        .collect())
}

fn infer_file(path: &Path, as_of: NaiveDate, json: bool) -> Result<(), PaydaysCliError> {
    let results = infer_histories(path, as_of)?;
    let mut out = String::new();
    if json {
        let borrowers: Vec<Value> = results.iter().map(|(b, i)| inference_json(b, i)).collect();
        out = json!({ "borrowers": borrowers }).to_string();
        out.push('\n');
    } else {
        for (borrower, i) in &results {
            let next = match (i.next_date, i.next_window) {
                (Some(d), _) => format!("next {}", day_text(d)),
                (None, Some(w)) => format!(
                    "between {} and {}",
                    day_text(w.earliest),
                    day_text(w.latest)
                ),
                (None, None) => "no prediction".to_owned(),
            };
            let schedule = i.schedule.map_or_else(String::new, |s| s.describe());
            let _ = writeln!(
                out,
                "{borrower}\t{}\t{}\t{next}\t{schedule}",
                i.frequency, i.confidence
            );
        }
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|source| PaydaysCliError::Write {
            path: PathBuf::from("-"),
            source,
        })
}

fn write_generated(borrowers: u64, seed: u64, out: &Path) -> Result<(), PaydaysCliError> {
    let config = GeneratorConfig {
        seed,
        ..GeneratorConfig::default()
    };
    let write_error = |source| PaydaysCliError::Write {
        path: out.to_owned(),
        source,
    };
    let file = std::fs::File::create(out).map_err(write_error)?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "borrower_id,paid_at,amount").map_err(write_error)?;
    for i in 0..borrowers {
        let b = generate_borrower(&config, i);
        for p in &b.payments {
            writeln!(w, "{},{},{}", b.borrower_id, day_text(p.date), p.amount)
                .map_err(write_error)?;
        }
    }
    w.flush().map_err(write_error)
}

/// What `paydays bench` measures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PaydaysBenchReport {
    pub borrowers: u64,
    pub regular: u64,
    pub irregular: u64,
    /// Rows: true class; columns: inferred class; in `Frequency::ALL` order.
    pub classes: Vec<&'static str>,
    pub confusion: Vec<Vec<u64>>,
    pub regular_class_correct: u64,
    pub regular_next_date_exact: u64,
    /// Irregular earners classified as regular with confidence >= HIGH_CONFIDENCE_BP.
    pub irregular_confidently_regular: u64,
    pub regular_class_accuracy_pct: String,
    pub regular_next_date_exactness_pct: String,
    /// Median over runs of the time to infer one 50-payment history.
    pub infer_ns_per_history_median: u64,
    pub infer_ns_per_history_runs: Vec<u64>,
    pub timed_histories: usize,
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".to_owned();
    }
    rust_decimal::Decimal::from(part * 100)
        .checked_div(rust_decimal::Decimal::from(whole))
        .map_or_else(|| "n/a".to_owned(), |d| d.round_dp(3).to_string())
}

/// Accuracy and timing over generated borrowers.
pub fn bench_report(
    borrowers: u64,
    runs: usize,
    seed: u64,
) -> Result<PaydaysBenchReport, PaydaysCliError> {
    if borrowers == 0 || borrowers > BENCH_BORROWERS_MAX || runs == 0 {
        return Err(PaydaysCliError::BenchSize);
    }
    let config = GeneratorConfig {
        seed,
        ..GeneratorConfig::default()
    };
    let mut confusion = vec![vec![0u64; Frequency::ALL.len()]; Frequency::ALL.len()];
    let mut report = PaydaysBenchReport {
        borrowers,
        regular: 0,
        irregular: 0,
        classes: Frequency::ALL.iter().map(|f| f.as_str()).collect(),
        confusion: Vec::new(),
        regular_class_correct: 0,
        regular_next_date_exact: 0,
        irregular_confidently_regular: 0,
        regular_class_accuracy_pct: String::new(),
        regular_next_date_exactness_pct: String::new(),
        infer_ns_per_history_median: 0,
        infer_ns_per_history_runs: Vec::new(),
        timed_histories: 0,
    };
    let mut inferrer = Inferrer::default();
    let mut timed: Vec<(Vec<NaiveDate>, NaiveDate)> = Vec::new();
    for i in 0..borrowers {
        let b = generate_borrower(&config, i);
        let dates = b.dates();
        let got = inferrer.infer(&dates, b.as_of);
        let truth = b.frequency();
        confusion[truth.index()][got.frequency.index()] += 1;
        if b.kind == EarnerKind::Irregular {
            report.irregular += 1;
            if got.frequency != Frequency::Irregular && got.confidence.bp() >= HIGH_CONFIDENCE_BP {
                report.irregular_confidently_regular += 1;
            }
        } else {
            report.regular += 1;
            report.regular_class_correct += u64::from(got.frequency == truth);
            report.regular_next_date_exact += u64::from(got.next_date == b.next_date);
        }
        if dates.len() >= BENCH_HISTORY_PAYMENTS {
            timed.push((
                dates[dates.len() - BENCH_HISTORY_PAYMENTS..].to_vec(),
                b.as_of,
            ));
        }
    }
    report.confusion = confusion;
    report.regular_class_accuracy_pct = pct(report.regular_class_correct, report.regular);
    report.regular_next_date_exactness_pct = pct(report.regular_next_date_exact, report.regular);
    report.timed_histories = timed.len();
    for _ in 0..runs {
        let start = Instant::now();
        let mut checksum = 0u64;
        for (dates, as_of) in &timed {
            checksum += u64::from(inferrer.infer(dates, *as_of).confidence.bp());
        }
        let elapsed = start.elapsed().as_nanos() as u64;
        std::hint::black_box(checksum);
        report
            .infer_ns_per_history_runs
            .push(elapsed / (timed.len().max(1) as u64));
    }
    let mut sorted = report.infer_ns_per_history_runs.clone();
    sorted.sort_unstable();
    report.infer_ns_per_history_median = sorted[sorted.len() / 2];
    Ok(report)
}

fn bench(borrowers: u64, runs: usize, seed: u64, json: bool) -> Result<(), PaydaysCliError> {
    let report = bench_report(borrowers, runs, seed)?;
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&report).unwrap_or_default();
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "borrowers {} (regular {}, irregular {})",
            report.borrowers, report.regular, report.irregular
        );
        let _ = writeln!(out, "confusion matrix (rows: truth, columns: inferred):");
        let _ = write!(out, "{:>14}", "");
        for c in &report.classes {
            let _ = write!(out, "{c:>14}");
        }
        out.push('\n');
        for (c, row) in report.classes.iter().zip(&report.confusion) {
            let _ = write!(out, "{c:>14}");
            for n in row {
                let _ = write!(out, "{n:>14}");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "regular earners: class correct {}% ({}/{}), next date exact {}% ({}/{})",
            report.regular_class_accuracy_pct,
            report.regular_class_correct,
            report.regular,
            report.regular_next_date_exactness_pct,
            report.regular_next_date_exact,
            report.regular
        );
        let _ = writeln!(
            out,
            "irregular earners called regular with confidence >= 0.8: {}",
            report.irregular_confidently_regular
        );
        let _ = writeln!(
            out,
            "inference per {BENCH_HISTORY_PAYMENTS}-payment history: median {} ns over {} runs {:?} ({} histories)",
            report.infer_ns_per_history_median,
            runs,
            report.infer_ns_per_history_runs,
            report.timed_histories
        );
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|source| PaydaysCliError::Write {
            path: PathBuf::from("-"),
            source,
        })
}
