//! `payops debts`: debt files offline, and the debt intake's state. `check` runs the transform
//! and validation a batch would run (for clients and ops), streaming the file; `generate`
//! writes large realistic files in any shipped format; `formats` lists the formats; `stats`
//! shows the pipeline's metrics from the embedded store.

use std::error::Error;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::Subcommand;
use payops_core::debts::generate::{self, GenerateOptions};
use payops_core::debts::{
    CheckReport, DebtFormat, FileChecker, FileError, FormatError, LineSplitter, builtin,
    builtin_named, bureau_today, sniff,
};

/// Bytes read from the file at a time.
pub const READ_CHUNK_BYTES: usize = 1 << 20;
/// Lines `generate` writes at most.
pub const GENERATE_LINES_MAX: u64 = 100_000_000;
/// Rejections the human-readable `check` lists before "and N more" (`--json` lists all).
const REJECTIONS_SHOWN_MAX: usize = 50;

#[derive(Subcommand, Debug)]
pub enum DebtsCommand {
    /// Parse and validate a debt file as the pipeline would, offline.
    Check {
        file: PathBuf,
        /// A shipped format (see `payops debts formats`) or a format file (.yaml/.json).
        #[arg(long, default_value = "default")]
        format: String,
        /// Print `{"lines", "accepted", "rejected": [{"line", "field", "reason"}]}`.
        #[arg(long)]
        json: bool,
        /// The day missed dates may not be after (default: today in Brasília).
        #[arg(long)]
        today: Option<NaiveDate>,
    },
    /// Write a realistic debt file (names, valid CPFs, amounts, dates) in a format.
    Generate {
        #[arg(long)]
        lines: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "default")]
        format: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One line in N carries a client's mistake (0: none).
        #[arg(long, default_value_t = 0)]
        defect_every: u64,
        /// Prefix of the client references.
        #[arg(long, default_value = "CT")]
        reference_prefix: String,
        #[arg(long)]
        today: Option<NaiveDate>,
    },
    /// List the shipped client formats.
    Formats {
        #[arg(long)]
        json: bool,
    },
    /// Lines processed, rejected and failed per client and batch, and stage durations.
    Stats {
        /// Only this client.
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DebtsCliError {
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
    #[error("{path} cannot be processed: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("--lines must be 1 to {GENERATE_LINES_MAX}")]
    Lines,
    #[error("the debts command stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
}

pub async fn run(cmd: DebtsCommand, data_dir: &Path) -> Result<(), Box<dyn Error + Send + Sync>> {
    let today_default = || bureau_today(chrono::Utc::now());
    match cmd {
        DebtsCommand::Check {
            file,
            format,
            json,
            today,
        } => {
            let today = today.unwrap_or_else(today_default);
            let report = tokio::task::spawn_blocking(move || {
                let format = load_format(&format)?;
                check_file(&file, format, today).map(|r| (r, file))
            })
            .await
            .map_err(DebtsCliError::Join)??;
            print_check(&report.0, &report.1, json)?;
        }
        DebtsCommand::Generate {
            lines,
            out,
            format,
            seed,
            defect_every,
            reference_prefix,
            today,
        } => {
            let options = GenerateOptions {
                lines,
                seed,
                today: today.unwrap_or_else(today_default),
                defect_every,
                reference_prefix,
            };
            tokio::task::spawn_blocking(move || {
                let format = load_format(&format)?;
                write_generated(&options, &format, &out)
            })
            .await
            .map_err(DebtsCliError::Join)??;
        }
        DebtsCommand::Formats { json } => print_formats(json)?,
        DebtsCommand::Stats { client, json } => {
            print_stats(data_dir, client.as_deref(), json).await?
        }
    }
    Ok(())
}

/// A shipped format by name, or a format file when the name is a path to one.
pub fn load_format(name: &str) -> Result<DebtFormat, DebtsCliError> {
    if name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") {
        let text = std::fs::read_to_string(name).map_err(|source| DebtsCliError::Read {
            path: name.into(),
            source,
        })?;
        return Ok(DebtFormat::from_yaml(&text)?);
    }
    Ok(builtin_named(name)?)
}

/// Streams `path` through the checker in chunks: memory stays flat whatever the file size
/// (besides the rejections and the set of client references).
pub fn check_file(
    path: &Path,
    format: DebtFormat,
    today: NaiveDate,
) -> Result<CheckReport, DebtsCliError> {
    let read_err = |source| DebtsCliError::Read {
        path: path.to_owned(),
        source,
    };
    let file_err = |source| DebtsCliError::File {
        path: path.to_owned(),
        source,
    };
    let mut input = std::fs::File::open(path).map_err(read_err)?;
    let mut checker = FileChecker::new(format, today);
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut first = true;
    loop {
        let n = read_full(&mut input, &mut buf).map_err(read_err)?;
        if first {
            sniff(&buf[..n]).map_err(file_err)?;
            first = false;
        }
        if n == 0 {
            break;
        }
        splitter
            .feed(&buf[..n], |line| checker.line(line).map(|_| ()))
            .map_err(file_err)?;
    }
    splitter
        .finish(|line| checker.line(line).map(|_| ()))
        .map_err(file_err)?;
    checker.finish().map_err(file_err)
}

/// Reads until `buf` is full or the file ends.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn print_check(report: &CheckReport, path: &Path, json: bool) -> Result<(), DebtsCliError> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |source| DebtsCliError::Write {
        path: "stdout".into(),
        source,
    };
    if json {
        serde_json::to_writer(&mut out, report).map_err(|e| write_err(std::io::Error::other(e)))?;
        writeln!(out).map_err(write_err)?;
    } else {
        writeln!(
            out,
            "{}: {} debt lines, {} accepted, {} rejected",
            path.display(),
            report.lines,
            report.accepted,
            report.rejected_lines()
        )
        .map_err(write_err)?;
        for r in report.rejected.iter().take(REJECTIONS_SHOWN_MAX) {
            writeln!(out, "  line {:>8}  {:<16}  {}", r.line, r.field, r.reason)
                .map_err(write_err)?;
        }
        if report.rejected.len() > REJECTIONS_SHOWN_MAX {
            writeln!(
                out,
                "  … and {} more (use --json for all)",
                report.rejected.len() - REJECTIONS_SHOWN_MAX
            )
            .map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)
}

/// Writes the generated file through a buffer, a line at a time.
pub fn write_generated(
    options: &GenerateOptions,
    format: &DebtFormat,
    out: &Path,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    if options.lines == 0 || options.lines > GENERATE_LINES_MAX {
        return Err(DebtsCliError::Lines.into());
    }
    let write_err = |source| DebtsCliError::Write {
        path: out.to_owned(),
        source,
    };
    let file = std::fs::File::create(out).map_err(write_err)?;
    let mut w = std::io::BufWriter::with_capacity(READ_CHUNK_BYTES, file);
    let mut line = Vec::with_capacity(256);
    if let Some(h) = generate::header(format) {
        w.write_all(&h).map_err(write_err)?;
        w.write_all(b"\n").map_err(write_err)?;
    }
    for debt in generate::debts(options, format) {
        line.clear();
        generate::write_line(format, &debt, &mut line);
        line.push(b'\n');
        w.write_all(&line).map_err(write_err)?;
    }
    w.flush().map_err(write_err)?;
    Ok(())
}

fn print_formats(json: bool) -> Result<(), Box<dyn Error + Send + Sync>> {
    let formats = builtin();
    if json {
        println!("{}", serde_json::to_string_pretty(&formats)?);
    } else {
        for f in formats {
            println!("{:<16} {}", f.name, f.description);
        }
    }
    Ok(())
}

/// One client's and batch's figures, summed from the metrics store.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct BatchStats {
    pub client: String,
    pub batch: String,
    pub lines_processed: rust_decimal::Decimal,
    pub lines_accepted: rust_decimal::Decimal,
    pub lines_rejected: rust_decimal::Decimal,
    pub lines_failed: rust_decimal::Decimal,
    /// Stage → total milliseconds (`split`, `register` summed over sub-batches, `batch`).
    pub stage_ms: std::collections::BTreeMap<String, rust_decimal::Decimal>,
}

/// The debt metrics of the embedded store, by client and batch (oldest batch first).
pub async fn stats(
    data_dir: &Path,
    client: Option<&str>,
) -> Result<Vec<BatchStats>, Box<dyn Error + Send + Sync>> {
    use payops_app::debts::{
        METRIC_LINES_ACCEPTED, METRIC_LINES_FAILED, METRIC_LINES_PROCESSED, METRIC_LINES_REJECTED,
        METRIC_STAGE_MS,
    };
    let env = crate::env::LocalEnv::open(
        data_dir,
        std::sync::Arc::new(payops_app::ports::SystemClock),
    )?;
    let metrics = env.store.metrics();
    let since = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let mut order: Vec<(String, String)> = Vec::new();
    let mut by: std::collections::HashMap<(String, String), BatchStats> = Default::default();
    for name in [
        METRIC_LINES_PROCESSED,
        METRIC_LINES_ACCEPTED,
        METRIC_LINES_REJECTED,
        METRIC_LINES_FAILED,
        METRIC_STAGE_MS,
    ] {
        for r in metrics.query(name, since).await? {
            let dim = |k: &str| {
                r.dimensions
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let (c, b) = (dim("client"), dim("batch"));
            if client.is_some_and(|want| want != c) {
                continue;
            }
            let key = (c.clone(), b.clone());
            let entry = by.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                BatchStats {
                    client: c,
                    batch: b,
                    ..Default::default()
                }
            });
            match name {
                METRIC_LINES_PROCESSED => entry.lines_processed += r.value,
                METRIC_LINES_ACCEPTED => entry.lines_accepted += r.value,
                METRIC_LINES_REJECTED => entry.lines_rejected += r.value,
                METRIC_LINES_FAILED => entry.lines_failed += r.value,
                _ => *entry.stage_ms.entry(dim("stage")).or_default() += r.value,
            }
        }
    }
    Ok(order.into_iter().filter_map(|k| by.remove(&k)).collect())
}

async fn print_stats(
    data_dir: &Path,
    client: Option<&str>,
    json: bool,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let rows = stats(data_dir, client).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no debt batches have been processed in {}",
            data_dir.display()
        );
        return Ok(());
    }
    println!(
        "{:<14} {:<28} {:>10} {:>10} {:>10} {:>8}  stages (ms)",
        "client", "batch", "processed", "accepted", "rejected", "failed"
    );
    for r in rows {
        let stages: Vec<String> = r
            .stage_ms
            .iter()
            .map(|(s, ms)| format!("{s} {ms}"))
            .collect();
        println!(
            "{:<14} {:<28} {:>10} {:>10} {:>10} {:>8}  {}",
            r.client,
            r.batch,
            r.lines_processed,
            r.lines_accepted,
            r.lines_rejected,
            r.lines_failed,
            stages.join(", ")
        );
    }
    Ok(())
}

/// One client's batch in `payops demo`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DebtsDemoBatch {
    pub client: String,
    pub format: String,
    pub batch_id: String,
    pub status: String,
    pub lines: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// The rejected-lines CSV on disk (the local bucket's object).
    pub rejections_csv: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DebtsDemo {
    pub batches: Vec<DebtsDemoBatch>,
}

/// Lines of each demo client's file, and how often a client's mistake appears.
const DEMO_LINES: u64 = 2_000;
const DEMO_DEFECT_EVERY: u64 = 97;
/// Longest wait for the demo's batches.
const DEMO_TIMEOUT_MS: u64 = 120_000;

/// `payops demo`: one client per shipped format drops a file with a few mistakes into the
/// inbox; each batch is followed to its end.
pub async fn demo(
    running: &crate::runtime::Running,
    data_dir: &Path,
) -> Result<DebtsDemo, Box<dyn Error + Send + Sync>> {
    use payops_app::debts::Debts;
    let debts = Debts::from_resources(running.system.env.as_ref())?;
    let now = chrono::Utc::now();
    let today = bureau_today(now);
    // A new seed each run: the same content again would be refused as a duplicate file.
    let seed = now.timestamp_millis() as u64;
    let mut dropped = Vec::new();
    for format in builtin() {
        let client = format!("demo-{}", format.name);
        debts.set_client_format(&client, &format.name).await?;
        let options = GenerateOptions {
            lines: DEMO_LINES,
            seed,
            today,
            defect_every: DEMO_DEFECT_EVERY,
            // Short: the fixed-width layout keeps 15 characters of the reference.
            reference_prefix: format!("D{}", seed % 100_000),
        };
        let dir = data_dir
            .join(crate::runtime::inbox::INBOX_DIR)
            .join("debts")
            .join(&client);
        std::fs::create_dir_all(&dir)?;
        let staging = dir.join(format!(".{seed}.tmp"));
        write_generated(&options, &format, &staging)?;
        std::fs::rename(&staging, dir.join(format!("debts-{seed}.txt")))?;
        dropped.push((client, format.name.clone()));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(DEMO_TIMEOUT_MS);
    let local_blobs = running.system.env.store.blobs(crate::env::LOCAL_BUCKET);
    let mut out = Vec::new();
    for (client, format) in dropped {
        let batch = loop {
            let page = debts.batches_of(&client, 1, None).await?;
            if let Some(b) = page.batches.into_iter().next()
                && b.status.is_final()
                && b.created_at >= now
            {
                break b;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("the demo batch of {client} did not finish in time").into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let rejections_csv = match &batch.rejections_key {
            Some(key) => local_blobs.path_of(key).await?,
            None => None,
        };
        out.push(DebtsDemoBatch {
            client,
            format,
            batch_id: batch.batch_id,
            status: batch.status.as_str().to_owned(),
            lines: batch.received,
            accepted: batch.accepted,
            rejected: batch.rejected,
            rejections_csv,
        });
    }
    Ok(DebtsDemo { batches: out })
}

/// The demo's lines for the debt intake.
pub fn print_demo(demo: &DebtsDemo) {
    println!("debt intake: one client per format, a file each dropped into the inbox:");
    for b in &demo.batches {
        println!(
            "  {:<22} {:<15} {} {}: {} lines, {} accepted, {} rejected",
            b.client, b.format, b.batch_id, b.status, b.lines, b.accepted, b.rejected
        );
        if let Some(p) = &b.rejections_csv {
            println!("    rejected lines: {}", p.display());
        }
    }
}
