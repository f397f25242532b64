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
    BATCH_DATASET, DayInputs, FINAL_DATASET, FINAL_MONTHLY_DATASET, KPIS_DATASET, MASK_KEY_ENV,
    RunOptions, RunSummary, TextTable, day_prefix, final_monthly_key, month_prefix,
    monthly_day_stem, read_merchants, read_policies, run_day,
};
use payops_core::Secret;
use payops_core::recon::text::parse_decimal;
use payops_core::recon::{AMOUNT_SCALE, PARTITIONS_MAX, UserIdMasker};

#[derive(Subcommand, Debug)]
pub enum ReconCommand {
    /// Reconcile one day: batch index, final merge and merchant KPIs as Parquet under --out
    /// (`batch/`, `final/`, `kpis/`, each `dt=YYYY-MM-DD/`; the final index also rolled up in
    /// `final_monthly/month=YYYY-MM/`). Re-running a day replaces it.
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
        /// Only the batch index (`batch/`): no final merge, no KPIs.
        #[arg(long)]
        batch_only: bool,
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
            batch_only,
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
            options.batch_only = batch_only;
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
    // Only the datasets this run wrote are replaced (a batch-only run keeps the final index).
    let written: std::collections::BTreeSet<&str> =
        output.files.iter().map(|f| f.dataset).collect();
    for dataset in written {
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
    roll_up_final_month(out, options.date, &output.files)?;
    Ok(output.summary)
}

/// Replaces the day's files in `final_monthly/month=YYYY-MM/` with copies of its final files
/// (as the daily workflow's merge step does): written first, then the day's other rollup files
/// removed, so a re-run replaces the day and never duplicates it. A batch-only run leaves it.
fn roll_up_final_month(
    out: &Path,
    date: NaiveDate,
    files: &[payops_app::recon::OutputFile],
) -> Result<(), ReconCliError> {
    let finals: Vec<_> = files
        .iter()
        .filter(|f| f.dataset == FINAL_DATASET)
        .collect();
    if finals.is_empty() {
        return Ok(());
    }
    let month = out.join(month_prefix(FINAL_MONTHLY_DATASET, date));
    std::fs::create_dir_all(&month).map_err(|source| ReconCliError::Write {
        path: month.clone(),
        source,
    })?;
    let mut written = std::collections::BTreeSet::new();
    for file in finals {
        let Some(partition) = file
            .key
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_prefix("part-")?.strip_suffix(".parquet"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = out.join(final_monthly_key(date, partition));
        write_atomically(&path, &file.bytes)?;
        written.insert(path);
    }
    let stem = monthly_day_stem(date);
    let entries = std::fs::read_dir(&month).map_err(|source| ReconCliError::Write {
        path: month.clone(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let of_the_day = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&stem) && n.ends_with(".parquet"));
        if of_the_day && !written.contains(&path) {
            std::fs::remove_file(&path).map_err(|source| ReconCliError::Write { path, source })?;
        }
    }
    Ok(())
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

/// Transactions of the demo's reconciliation day.
const DEMO_TRANSACTIONS: u64 = 2_000;
/// How long the demo waits for the streaming index to take every event.
const DEMO_STREAM_WAIT_MS: u64 = 60_000;
const DEMO_POLL_MS: u64 = 100;

/// What `payops demo` did for reconciliation.
#[derive(Debug, serde::Serialize)]
pub struct ReconDemo {
    pub date: String,
    pub events_sent: u64,
    pub statement_lines: u64,
    pub execution: String,
    pub batch: PathBuf,
    #[serde(rename = "final")]
    pub final_index: PathBuf,
    pub kpis: PathBuf,
    pub kpis_monthly: PathBuf,
}

fn csv_events(text: &str, kind: &str) -> Vec<serde_json::Value> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut object = serde_json::Map::new();
            object.insert("kind".into(), kind.into());
            for (name, value) in header.iter().zip(line.split(',')) {
                object.insert((*name).to_owned(), value.into());
            }
            serde_json::Value::Object(object)
        })
        .collect()
}

/// The reconciliation flow on the running system: a generated day's transactions and fraud
/// signals through the queue into the streaming index, the bank's statement and the reference
/// data into the bucket, then the daily state machine for that day.
pub async fn demo(
    system: &crate::runtime::System,
    data_dir: &Path,
) -> Result<ReconDemo, Box<dyn Error + Send + Sync>> {
    use payops_app::ports::OutgoingMessage;
    use payops_app::resources::{RECON_EVENTS_QUEUE, Resources};

    let env = system.env.as_ref();
    let date = env
        .clock()
        .now()
        .date_naive()
        .pred_opt()
        .ok_or("date underflow")?;
    let (mut t, mut s, mut f, mut p, mut m) = (vec![], vec![], vec![], vec![], vec![]);
    let counts = generate_day(
        &GenerateOptions {
            date,
            transactions: DEMO_TRANSACTIONS,
            seed: 6,
        },
        GenerateSinks {
            transactions: &mut t,
            statements: &mut s,
            fraud: &mut f,
            policies: &mut p,
            merchants: &mut m,
        },
    )?;
    let blobs = env.blobs()?;
    let put = |key: String, body: Vec<u8>| {
        let blobs = blobs.clone();
        async move { blobs.put(&key, bytes::Bytes::from(body), "text/csv").await }
    };
    put(payops_app::recon::reference::POLICIES_KEY.into(), p).await?;
    put(payops_app::recon::reference::MERCHANTS_KEY.into(), m).await?;
    let mut events = csv_events(&String::from_utf8(t)?, "transaction");
    events.extend(csv_events(&String::from_utf8(f)?, "fraud_signal"));
    let queue = env.queue(&RECON_EVENTS_QUEUE)?;
    for chunk in events.chunks(payops_app::ports::queue::QUEUE_BATCH_MESSAGES_MAX) {
        let messages = chunk
            .iter()
            .map(|e| OutgoingMessage::new(e.to_string()))
            .collect();
        queue.send_batch(messages).await?;
    }
    // Every event is in an hourly file once the queue is drained and the files hold them all.
    let expected = events.len();
    let prefix = "recon/stream/";
    let started = Instant::now();
    loop {
        let mut rows = 0usize;
        let mut continuation = None;
        loop {
            let page = blobs.list(prefix, continuation).await?;
            for meta in page.blobs {
                if let Some(blob) = blobs.get(&meta.key).await? {
                    rows += blob
                        .body
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        .saturating_sub(1);
                }
            }
            match page.continuation {
                Some(c) => continuation = Some(c),
                None => break,
            }
        }
        if rows >= expected {
            break;
        }
        if started.elapsed().as_millis() as u64 > DEMO_STREAM_WAIT_MS {
            return Err(
                format!("the streaming index took {rows} of {expected} events in time").into(),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(DEMO_POLL_MS)).await;
    }
    put(format!("recon/statements/dt={date}/bank.csv"), s).await?;
    let id = system
        .executor
        .start(
            "ReconDailyStateMachine",
            &format!("demo-{date}-{}", uuid::Uuid::new_v4().simple()),
            serde_json::json!({ "date": date.to_string() }),
        )
        .await?;
    let record = system.executor.wait_finished(&id).await?;
    if record.status != crate::workflows::ExecutionStatus::Succeeded {
        return Err(format!(
            "the daily reconciliation ended {:?}: {}",
            record.status,
            record.cause.unwrap_or_default()
        )
        .into());
    }
    let path = |key: String| crate::demo::object_path(data_dir, &key);
    let month = date.format("%Y-%m");
    Ok(ReconDemo {
        date: date.to_string(),
        events_sent: expected as u64,
        statement_lines: counts.statement_lines,
        execution: format!("{:?}", record.status),
        batch: path(format!("recon/{}", day_prefix(BATCH_DATASET, date))),
        final_index: path(format!("recon/{}", day_prefix(FINAL_DATASET, date))),
        kpis: path(format!("recon/{}", day_prefix(KPIS_DATASET, date))),
        kpis_monthly: path(format!("recon/kpis_monthly/month={month}/")),
    })
}
