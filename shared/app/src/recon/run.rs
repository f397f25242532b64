//! One day's batch reconciliation and final merge, in memory: typed inputs in, Parquet files
//! out (batch, final and KPIs datasets), split into hash partitions of `transaction_id` that
//! are reconciled in parallel. The CLI writes the files to a directory; the Lambda puts them
//! in S3. The same partitioning lets the state machine fan a day out over many Lambdas.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use foldhash::fast::FixedState;
use payops_core::recon::text::date_to_days;
use payops_core::recon::{
    BatchRow, FinalRow, FraudSignal, MatchStats, Merchant, MerchantKpis, MergeContext, Policy,
    ReconciledStatus, Side, StatementLine, Transaction, UserIdMasker, add_to_kpis,
    latest_fraud_scores, merge_row, reconcile,
};
use rust_decimal::Decimal;
use serde::Serialize;

use super::input::{FraudColumns, InputError, StatementColumns, TextTable, TransactionColumns};
use super::parquet::{KpiRow, ParquetWriteError, write_batch, write_final, write_kpis};

/// The datasets a run writes, each under `{dataset}/dt=YYYY-MM-DD/`.
pub const BATCH_DATASET: &str = "batch";
pub const FINAL_DATASET: &str = "final";
pub const KPIS_DATASET: &str = "kpis";
/// Partitions of a run unless told otherwise: a few per core keeps both cores busy to the end.
pub const PARTITIONS_DEFAULT: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("partition {partition}: {source}")]
    Write {
        partition: u32,
        #[source]
        source: ParquetWriteError,
    },
    #[error("invalid options: {0}")]
    Options(String),
    #[error("a reconciliation worker stopped unexpectedly")]
    Worker,
}

/// A day's inputs, parsed lazily from their text tables.
#[derive(Debug)]
pub struct DayInputs {
    pub transactions: Vec<TextTable>,
    pub statements: Vec<TextTable>,
    pub fraud: Vec<TextTable>,
    pub policies: Vec<Policy>,
    pub merchants: HashMap<String, Merchant>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub date: NaiveDate,
    /// The largest |discrepancy| still MATCHED.
    pub tolerance: Decimal,
    pub partitions: u32,
    pub threads: usize,
    /// The run's `reconciliation_timestamp`.
    pub run_at: DateTime<Utc>,
    /// Only the batch index (no final merge, no KPIs): the bank's view alone.
    pub batch_only: bool,
}

impl RunOptions {
    pub fn new(date: NaiveDate, run_at: DateTime<Utc>) -> Self {
        RunOptions {
            date,
            tolerance: payops_core::recon::TOLERANCE_DEFAULT,
            partitions: PARTITIONS_DEFAULT,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            run_at,
            batch_only: false,
        }
    }
}

/// One written file: its key below the output root (`final/dt=2026-11-21/part-00003.parquet`).
#[derive(Debug, Clone)]
pub struct OutputFile {
    pub dataset: &'static str,
    pub key: String,
    pub bytes: Vec<u8>,
}

/// What a run found, for the CLI's `--json` and the state machine's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub date: String,
    pub transaction_events: u64,
    pub statement_lines: u64,
    pub fraud_signals: u64,
    pub transactions: u64,
    pub matched: u64,
    pub partial: u64,
    pub unmatched_transactions: u64,
    pub unmatched_statement_ids: u64,
    pub superseded_events: u64,
    pub duplicate_statement_lines: u64,
    pub merchants: u64,
    pub total_discrepancy: Decimal,
    pub partitions: u32,
}

#[derive(Debug)]
pub struct DayOutput {
    pub files: Vec<OutputFile>,
    pub summary: RunSummary,
}

/// The prefix of a dataset's day: `final/dt=2026-11-21/`.
pub fn day_prefix(dataset: &str, date: NaiveDate) -> String {
    format!("{dataset}/dt={date}/")
}

/// The monthly rollup of the final index: `final_monthly/month=YYYY-MM/`, holding a copy of
/// every daily final file of the month (Athena reads a month as one partition).
pub const FINAL_MONTHLY_DATASET: &str = "final_monthly";

/// The prefix of a monthly dataset's month: `final_monthly/month=2026-11/`.
pub fn month_prefix(dataset: &str, date: NaiveDate) -> String {
    format!("{dataset}/month={}/", date.format("%Y-%m"))
}

/// The name stem of one day's files in the monthly rollup: `part-20261121-`. A re-run of the
/// day replaces exactly the files with this stem.
pub fn monthly_day_stem(date: NaiveDate) -> String {
    format!("part-{}-", date.format("%Y%m%d"))
}

/// Where the daily final file of `partition` is copied in the monthly rollup:
/// `final_monthly/month=2026-11/part-20261121-00003.parquet`.
pub fn final_monthly_key(date: NaiveDate, partition: u32) -> String {
    format!(
        "{}{}{partition:05}.parquet",
        month_prefix(FINAL_MONTHLY_DATASET, date),
        monthly_day_stem(date)
    )
}

fn part_key(dataset: &str, date: NaiveDate, partition: u32) -> String {
    format!("{}part-{partition:05}.parquet", day_prefix(dataset, date))
}

struct Parsed<'t> {
    transactions: Vec<Vec<Transaction<'t>>>,
    statements: Vec<Vec<StatementLine<'t>>>,
    fraud: Vec<Vec<FraudSignal<'t>>>,
}

fn parse_all<'t>(
    inputs: &'t DayInputs,
    options: &RunOptions,
    which: &[u32],
) -> Result<Parsed<'t>, InputError> {
    let (threads, partitions) = (options.threads, options.partitions);
    let mut wanted = vec![false; partitions as usize];
    which.iter().for_each(|p| wanted[*p as usize] = true);
    let mut parsed = Parsed {
        transactions: empty_partitions(partitions),
        statements: empty_partitions(partitions),
        fraud: empty_partitions(partitions),
    };
    for table in &inputs.transactions {
        let cols = TransactionColumns::of(table)?;
        let parts = table.parse_partitions(
            threads,
            partitions,
            &wanted,
            |f| cols.parse(f),
            |t| t.transaction_id,
        )?;
        append(&mut parsed.transactions, parts);
    }
    for table in &inputs.statements {
        let cols = StatementColumns::of(table)?;
        let parts = table.parse_partitions(
            threads,
            partitions,
            &wanted,
            |f| cols.parse(f),
            |l| l.transaction_id,
        )?;
        append(&mut parsed.statements, parts);
    }
    for table in &inputs.fraud {
        let cols = FraudColumns::of(table)?;
        let parts = table.parse_partitions(
            threads,
            partitions,
            &wanted,
            |f| cols.parse(f),
            |s| s.transaction_id,
        )?;
        append(&mut parsed.fraud, parts);
    }
    Ok(parsed)
}

fn empty_partitions<T>(partitions: u32) -> Vec<Vec<T>> {
    (0..partitions).map(|_| Vec::new()).collect()
}

fn append<T>(into: &mut [Vec<T>], parts: Vec<Vec<T>>) {
    for (slot, mut part) in into.iter_mut().zip(parts) {
        if slot.is_empty() {
            *slot = part;
        } else {
            slot.append(&mut part);
        }
    }
}

struct PartitionResult {
    partition: u32,
    batch: Vec<u8>,
    /// `None` in a batch-only run.
    final_rows: Option<Vec<u8>>,
    kpis: Vec<(String, MerchantKpis)>,
    summary: RunSummary,
}

/// Reconciles a day: every partition, then the KPIs. The same inputs and options always give
/// the same files.
pub fn run_day(
    inputs: &DayInputs,
    masker: &UserIdMasker,
    options: &RunOptions,
) -> Result<DayOutput, ReconError> {
    let all: Vec<u32> = (0..options.partitions).collect();
    let part = run_partitions(inputs, masker, options, &all)?;
    let mut files = part.files;
    let mut summary = part.summary;
    summary.merchants = part.kpis.len() as u64;
    if !options.batch_only {
        files.push(kpis_file(&part.kpis, &inputs.merchants, options.date)?);
    }
    Ok(DayOutput { files, summary })
}

/// The result of some partitions of a day: their batch and final files, their merchants' KPIs
/// (to be merged with the other partitions'), and their counts.
#[derive(Debug)]
pub struct PartitionsOutput {
    pub files: Vec<OutputFile>,
    pub kpis: BTreeMap<String, MerchantKpis>,
    pub summary: RunSummary,
}

/// Reconciles the listed partitions of a day (one Map item of the daily workflow runs one).
pub fn run_partitions(
    inputs: &DayInputs,
    masker: &UserIdMasker,
    options: &RunOptions,
    which: &[u32],
) -> Result<PartitionsOutput, ReconError> {
    if options.partitions == 0 || options.partitions > payops_core::recon::PARTITIONS_MAX {
        return Err(ReconError::Options(format!(
            "partitions must be 1 to {}",
            payops_core::recon::PARTITIONS_MAX
        )));
    }
    if let Some(p) = which.iter().find(|p| **p >= options.partitions) {
        return Err(ReconError::Options(format!(
            "partition {p} is not below the {} partitions",
            options.partitions
        )));
    }
    let parsed = parse_all(inputs, options, which)?;
    let ctx = MergeContext {
        masker,
        policies: &inputs.policies,
        merchants: &inputs.merchants,
    };
    let day = date_to_days(options.date);
    let run_at_us = options.run_at.timestamp_micros();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Result<PartitionResult, ReconError>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..options.threads.clamp(1, which.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&p) = which.get(i) else {
                        break;
                    };
                    let p = p as usize;
                    let result = reconcile_partition(
                        p as u32,
                        &parsed.transactions[p],
                        &parsed.statements[p],
                        &parsed.fraud[p],
                        &ctx,
                        options.tolerance,
                        day,
                        run_at_us,
                        options.batch_only,
                    );
                    // A poisoned lock means another worker panicked; its result is missing
                    // and the count check below reports it.
                    if let Ok(mut r) = results.lock() {
                        r.push(result);
                    }
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .map_err(|_| ReconError::Worker)?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    if results.len() != which.len() {
        return Err(ReconError::Worker);
    }
    results.sort_by_key(|r| r.partition);
    Ok(assemble(results, options))
}

#[allow(clippy::too_many_arguments)]
fn reconcile_partition(
    partition: u32,
    transactions: &[Transaction<'_>],
    statements: &[StatementLine<'_>],
    fraud: &[FraudSignal<'_>],
    ctx: &MergeContext<'_>,
    tolerance: Decimal,
    day: i32,
    run_at_us: i64,
    batch_only: bool,
) -> Result<PartitionResult, ReconError> {
    let (rows, stats) = reconcile(transactions, statements, tolerance);
    let write_error = |source| ReconError::Write { partition, source };
    let batch = write_batch(&rows, day).map_err(write_error)?;
    let mut summary = summarize(&rows, stats);
    summary.transaction_events = transactions.len() as u64;
    summary.statement_lines = statements.len() as u64;
    summary.fraud_signals = fraud.len() as u64;
    if batch_only {
        return Ok(PartitionResult {
            partition,
            batch,
            final_rows: None,
            kpis: Vec::new(),
            summary,
        });
    }
    let scores = latest_fraud_scores(fraud);
    let mut kpis: HashMap<&str, MerchantKpis, FixedState> = HashMap::default();
    let finals: Vec<FinalRow<'_>> = rows
        .iter()
        .map(|row| {
            let score = scores.get(row.transaction_id).map(|(_, s)| *s);
            let merged = merge_row(row, score, ctx);
            add_to_kpis(&mut kpis, &merged);
            merged
        })
        .collect();
    let final_rows = write_final(&finals, day, run_at_us).map_err(write_error)?;
    Ok(PartitionResult {
        partition,
        batch,
        final_rows: Some(final_rows),
        kpis: kpis.into_iter().map(|(m, k)| (m.to_owned(), k)).collect(),
        summary,
    })
}

fn summarize(rows: &[BatchRow<'_>], stats: MatchStats) -> RunSummary {
    let mut s = RunSummary {
        superseded_events: stats.superseded_events,
        duplicate_statement_lines: stats.duplicate_lines,
        ..RunSummary::default()
    };
    for r in rows {
        s.total_discrepancy += r.discrepancy;
        if r.side != Side::StatementOnly {
            s.transactions += 1;
        }
        match (r.side, r.reconciled_status) {
            (_, ReconciledStatus::Matched) => s.matched += 1,
            (_, ReconciledStatus::Partial) => s.partial += 1,
            (Side::StatementOnly, ReconciledStatus::Unmatched) => s.unmatched_statement_ids += 1,
            (_, ReconciledStatus::Unmatched) => s.unmatched_transactions += 1,
        }
    }
    s
}

fn add_summary(total: &mut RunSummary, s: &RunSummary) {
    total.transaction_events += s.transaction_events;
    total.statement_lines += s.statement_lines;
    total.fraud_signals += s.fraud_signals;
    total.transactions += s.transactions;
    total.matched += s.matched;
    total.partial += s.partial;
    total.unmatched_transactions += s.unmatched_transactions;
    total.unmatched_statement_ids += s.unmatched_statement_ids;
    total.superseded_events += s.superseded_events;
    total.duplicate_statement_lines += s.duplicate_statement_lines;
    total.total_discrepancy += s.total_discrepancy;
}

fn assemble(results: Vec<PartitionResult>, options: &RunOptions) -> PartitionsOutput {
    let mut summary = RunSummary {
        date: options.date.to_string(),
        partitions: options.partitions,
        ..RunSummary::default()
    };
    let mut kpis: BTreeMap<String, MerchantKpis> = BTreeMap::new();
    let mut files = Vec::with_capacity(results.len() * 2);
    for r in results {
        add_summary(&mut summary, &r.summary);
        for (merchant, k) in r.kpis {
            kpis.entry(merchant).or_default().merge(&k);
        }
        files.push(OutputFile {
            dataset: BATCH_DATASET,
            key: part_key(BATCH_DATASET, options.date, r.partition),
            bytes: r.batch,
        });
        if let Some(bytes) = r.final_rows {
            files.push(OutputFile {
                dataset: FINAL_DATASET,
                key: part_key(FINAL_DATASET, options.date, r.partition),
                bytes,
            });
        }
    }
    PartitionsOutput {
        files,
        kpis,
        summary,
    }
}

/// The KPIs dataset's file of a day (or, with a month's merged KPIs, of a monthly rollup).
pub fn kpis_file(
    kpis: &BTreeMap<String, MerchantKpis>,
    merchants: &HashMap<String, Merchant>,
    date: NaiveDate,
) -> Result<OutputFile, ReconError> {
    let rows: Vec<KpiRow<'_>> = kpis
        .iter()
        .map(|(id, k)| KpiRow {
            merchant_id: id,
            merchant: merchants.get(id),
            kpis: k,
        })
        .collect();
    let bytes = write_kpis(&rows, date_to_days(date)).map_err(|source| ReconError::Write {
        partition: 0,
        source,
    })?;
    Ok(OutputFile {
        dataset: KPIS_DATASET,
        key: part_key(KPIS_DATASET, date, 0),
        bytes,
    })
}
