//! `payops recon`: reconciliation offline. `run` reconciles one day's files into the batch,
//! final and KPIs Parquet datasets under `--out`; `generate` writes a realistic day of inputs.

use std::collections::HashMap;
use std::error::Error;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use payops_app::recon::generate::{
    GENERATE_TRANSACTIONS_MAX, GenerateCounts, GenerateOptions, GenerateSinks, generate_day,
};
use payops_app::recon::{
    BATCH_DATASET, DayInputs, FINAL_DATASET, KPIS_DATASET, MASK_KEY_ENV, RunOptions, RunSummary,
    TextTable, day_prefix, read_merchants, read_policies, run_day,
};
use payops_core::Secret;
use payops_core::recon::text::parse_decimal;
use payops_core::recon::{AMOUNT_SCALE, PARTITIONS_MAX, UserIdMasker};

#[derive(Subcommand, Debug)]
pub enum ReconCommand {
    /// Reconcile one day: batch index, final merge and merchant KPIs as Parquet under --out
    /// (`batch/`, `final/`, `kpis/`, each `dt=YYYY-MM-DD/`). Re-running a day replaces it.
    /// User ids are masked with the key in PAYOPS_RECON_MASK_KEY.
    Run {
        /// The business day (batch_run_date and the output partition).
        #[arg(long)]
        date: NaiveDate,
        /// Payment transactions, CSV (header line) or Parquet; repeat for several files.
        #[arg(long, required = true)]
        transactions: Vec<PathBuf>,
        /// Bank statement lines, CSV or Parquet; repeat for several files.
        #[arg(long, required = true)]
        statements: Vec<PathBuf>,
        /// Fraud signals, CSV or Parquet.
        #[arg(long)]
        fraud: Vec<PathBuf>,
        /// Policy rules, CSV or Parquet.
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Merchant profiles, CSV or Parquet.
        #[arg(long)]
        merchants: Option<PathBuf>,
        /// The output root.
        #[arg(long)]
        out: PathBuf,
        /// Largest |discrepancy| still MATCHED.
        #[arg(long, default_value = "0.00")]
        tolerance: String,
        /// Hash partitions of transaction_id (one Parquet file each per dataset).
        #[arg(long, default_value_t = payops_app::recon::PARTITIONS_DEFAULT)]
        partitions: u32,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a realistic day of inputs (transactions.csv, statements.csv, fraud.csv,
    /// policies.csv, merchants.csv) into --out.
    Generate {
        #[arg(long)]
        date: NaiveDate,
        /// Number of transactions.
        #[arg(long)]
        transactions: u64,
        #[arg(long)]
        out: PathBuf,
        /// The same seed gives the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReconCliError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{MASK_KEY_ENV} is not set: it holds the key that masks user ids (16 bytes or more)")]
    NoMaskKey,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Recon(#[from] payops_app::recon::ReconError),
    #[error(transparent)]
    Input(#[from] payops_app::recon::InputError),
    #[error("the recon command stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
}

pub async fn run(cmd: ReconCommand) -> Result<(), Box<dyn Error + Send + Sync>> {
    // CPU and file bound: off the async workers.
    tokio::task::spawn_blocking(move || execute(cmd))
        .await
        .map_err(ReconCliError::Join)??;
    Ok(())
}

fn execute(cmd: ReconCommand) -> Result<(), ReconCliError> {
    match cmd {
        ReconCommand::Run {
            date,
            transactions,
            statements,
            fraud,
            policies,
            merchants,
            out,
            tolerance,
            partitions,
            threads,
            json,
        } => {
            let started = Instant::now();
            let files = RunFiles {
                transactions,
                statements,
                fraud,
                policies,
                merchants,
            };
            let mut options = RunOptions::new(date, Utc::now());
            options.tolerance = parse_decimal(&tolerance, AMOUNT_SCALE)
                .ok()
                .filter(|t| !t.is_sign_negative())
                .ok_or_else(|| {
                    ReconCliError::Invalid(format!(
                        "--tolerance {tolerance:?} is not a non-negative amount"
                    ))
                })?;
            if partitions == 0 || partitions > PARTITIONS_MAX {
                return Err(ReconCliError::Invalid(format!(
                    "--partitions must be 1 to {PARTITIONS_MAX}"
                )));
            }
            options.partitions = partitions;
            if let Some(t) = threads {
                options.threads = t.max(1);
            }
            let masker = masker_from_env()?;
            let summary = reconcile_files(&files, &out, &options, &masker)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).unwrap_or_default()
                );
            } else {
                print_summary(&summary, &out, started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        ReconCommand::Generate {
            date,
            transactions,
            out,
            seed,
            json,
        } => {
            if transactions == 0 || transactions > GENERATE_TRANSACTIONS_MAX {
                return Err(ReconCliError::Invalid(format!(
                    "--transactions must be 1 to {GENERATE_TRANSACTIONS_MAX}"
                )));
            }
            let counts = generate_files(
                &GenerateOptions {
                    date,
                    transactions,
                    seed,
                },
                &out,
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&counts).unwrap_or_default()
                );
            } else {
                println!(
                    "generated {} transactions ({} events), {} statement lines, {} fraud signals, {} merchants in {}",
                    counts.transactions,
                    counts.transaction_events,
                    counts.statement_lines,
                    counts.fraud_signals,
                    counts.merchants,
                    out.display()
                );
            }
            Ok(())
        }
    }
}

/// The input files of a run.
#[derive(Debug, Clone, Default)]
pub struct RunFiles {
    pub transactions: Vec<PathBuf>,
    pub statements: Vec<PathBuf>,
    pub fraud: Vec<PathBuf>,
    pub policies: Option<PathBuf>,
    pub merchants: Option<PathBuf>,
}

/// The masker keyed by `PAYOPS_RECON_MASK_KEY`.
pub fn masker_from_env() -> Result<UserIdMasker, ReconCliError> {
    let key = std::env::var(MASK_KEY_ENV).map_err(|_| ReconCliError::NoMaskKey)?;
    UserIdMasker::new(&Secret::new(key)).map_err(|e| ReconCliError::Invalid(e.to_string()))
}

fn read_table(path: &Path) -> Result<TextTable, ReconCliError> {
    let bytes = std::fs::read(path).map_err(|source| ReconCliError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(TextTable::from_bytes(&path.display().to_string(), bytes)?)
}

/// Reads every file in parallel (each is also normalised there).
fn read_tables(paths: &[PathBuf]) -> Result<Vec<TextTable>, ReconCliError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .map(|p| scope.spawn(move || read_table(p)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ReconCliError::Invalid("a file reader panicked".into()))
                })
            })
            .collect()
    })
}

/// Reconciles the files of a day into `out` and returns the summary. Files of an earlier run of
/// the same day are replaced: every `*.parquet` under the day's partitions is removed first.
pub fn reconcile_files(
    files: &RunFiles,
    out: &Path,
    options: &RunOptions,
    masker: &UserIdMasker,
) -> Result<RunSummary, ReconCliError> {
    let mut all: Vec<PathBuf> = Vec::new();
    all.extend(files.transactions.iter().cloned());
    all.extend(files.statements.iter().cloned());
    all.extend(files.fraud.iter().cloned());
    all.extend(files.policies.iter().cloned());
    all.extend(files.merchants.iter().cloned());
    let mut tables = read_tables(&all)?.into_iter();
    let mut take = |n: usize| tables.by_ref().take(n).collect::<Vec<_>>();
    let transactions = take(files.transactions.len());
    let statements = take(files.statements.len());
    let fraud = take(files.fraud.len());
    let policies = match take(usize::from(files.policies.is_some())).first() {
        Some(t) => read_policies(t)?,
        None => Vec::new(),
    };
    let merchants: HashMap<_, _> = match take(usize::from(files.merchants.is_some())).first() {
        Some(t) => read_merchants(t)?
            .into_iter()
            .map(|m| (m.merchant_id.clone(), m))
            .collect(),
        None => HashMap::new(),
    };
    let inputs = DayInputs {
        transactions,
        statements,
        fraud,
        policies,
        merchants,
    };
    let output = run_day(&inputs, masker, options)?;
    drop(inputs);
    for dataset in [BATCH_DATASET, FINAL_DATASET, KPIS_DATASET] {
        let dir = out.join(day_prefix(dataset, options.date));
        clear_parquet(&dir)?;
        std::fs::create_dir_all(&dir).map_err(|source| ReconCliError::Write {
            path: dir.clone(),
            source,
        })?;
    }
    for file in &output.files {
        let path = out.join(&file.key);
        write_atomically(&path, &file.bytes)?;
    }
    Ok(output.summary)
}

fn clear_parquet(dir: &Path) -> Result<(), ReconCliError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ReconCliError::Write {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(&path).map_err(|source| ReconCliError::Write { path, source })?;
        }
    }
    Ok(())
}

/// Writes beside the target and renames, so a reader never sees half a Parquet file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReconCliError> {
    let tmp = path.with_extension("parquet.tmp");
    let err = |source| ReconCliError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Writes the five generated files into `out`.
pub fn generate_files(
    options: &GenerateOptions,
    out: &Path,
) -> Result<GenerateCounts, ReconCliError> {
    std::fs::create_dir_all(out).map_err(|source| ReconCliError::Write {
        path: out.to_owned(),
        source,
    })?;
    let open = |name: &str| {
        let path = out.join(name);
        File::create(&path)
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(|source| ReconCliError::Write { path, source })
    };
    let mut t = open("transactions.csv")?;
    let mut s = open("statements.csv")?;
    let mut f = open("fraud.csv")?;
    let mut p = open("policies.csv")?;
    let mut m = open("merchants.csv")?;
    let write_err = |source| ReconCliError::Write {
        path: out.to_owned(),
        source,
    };
    let counts = generate_day(
        options,
        GenerateSinks {
            transactions: &mut t,
            statements: &mut s,
            fraud: &mut f,
            policies: &mut p,
            merchants: &mut m,
        },
    )
    .map_err(write_err)?;
    for w in [&mut t, &mut s, &mut f, &mut p, &mut m] {
        std::io::Write::flush(w).map_err(write_err)?;
    }
    Ok(counts)
}

fn print_summary(s: &RunSummary, out: &Path, seconds: f64) {
    println!(
        "reconciled {}: {} transactions ({} events), {} statement lines, {} fraud signals in {seconds:.2} s",
        s.date, s.transactions, s.transaction_events, s.statement_lines, s.fraud_signals
    );
    println!(
        "  MATCHED {}  PARTIAL {}  UNMATCHED {} transactions + {} statement-only ids",
        s.matched, s.partial, s.unmatched_transactions, s.unmatched_statement_ids
    );
    println!(
        "  superseded events {}, duplicate statement lines {}, total discrepancy {}, {} merchants",
        s.superseded_events, s.duplicate_statement_lines, s.total_discrepancy, s.merchants
    );
    for dataset in [BATCH_DATASET, FINAL_DATASET, KPIS_DATASET] {
        println!(
            "  {}",
            out.join(day_prefix(
                dataset,
                NaiveDate::parse_from_str(&s.date, "%Y-%m-%d").unwrap_or_default()
            ))
            .display()
        );
    }
}
