//! `payops payroll`: the payroll file offline. `summarize` shows what HR sees before approving
//! (rows, totals by source and by branch, every error and warning); `generate` writes a large
//! file of the real sample's shape for benchmarks and end-to-end runs.

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use payops_core::payroll::{self, Finding, PayrollError, ROWS_MAX, Summary, generate};
use rust_decimal::Decimal;

/// Findings listed by the human-readable summary before "and N more" (`--json` lists all).
const FINDINGS_SHOWN_MAX: usize = 50;

#[derive(Subcommand, Debug)]
pub enum PayrollCommand {
    /// Parse, validate and summarise a payroll XML file.
    Summarize {
        /// The payroll file (XML).
        file: PathBuf,
        /// Print `{rows, total, by_source, by_branch, errors, warnings}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic payroll file shaped like the real sample (5 payers, 30 branches).
    Generate {
        /// Number of rows (payments).
        #[arg(long)]
        rows: u32,
        /// Where to write the file.
        #[arg(long)]
        out: PathBuf,
        /// The same seed gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PayrollCliError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path} as a payroll file")]
    Parse {
        path: PathBuf,
        #[source]
        source: PayrollError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--rows must be 1 to {ROWS_MAX}")]
    Rows,
    #[error("the payroll command stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
}

pub async fn run(cmd: PayrollCommand) -> Result<(), Box<dyn Error + Send + Sync>> {
    // Both commands are CPU and file bound: off the async workers.
    let result = match cmd {
        PayrollCommand::Summarize { file, json } => {
            tokio::task::spawn_blocking(move || summarize(&file, json)).await
        }
        PayrollCommand::Generate { rows, out, seed } => {
            tokio::task::spawn_blocking(move || write_generated(rows, seed, &out)).await
        }
    };
    result.map_err(PayrollCliError::Join)??;
    Ok(())
}

fn summarize(path: &Path, json: bool) -> Result<(), PayrollCliError> {
    let bytes = file_bytes::read(path).map_err(|source| PayrollCliError::Read {
        path: path.to_owned(),
        source,
    })?;
    let summary = payroll::summarize(&bytes).map_err(|source| PayrollCliError::Parse {
        path: path.to_owned(),
        source,
    })?;
    drop(bytes);
    let text = if json {
        let mut text = serde_json::to_string_pretty(&summary)
            .expect("a summary is strings and numbers, always serialisable");
        text.push('\n');
        text
    } else {
        human(&summary)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // The reader went away (`| head`): nothing left to tell it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(|source| PayrollCliError::Write {
            path: PathBuf::from("<stdout>"),
            source,
        }),
    }
}

fn write_generated(rows: u32, seed: u64, out: &Path) -> Result<(), PayrollCliError> {
    if rows == 0 || rows > ROWS_MAX {
        return Err(PayrollCliError::Rows);
    }
    let xml = generate::generate_xml(&generate::GenerateOptions::like_sample(rows, seed));
    std::fs::write(out, xml).map_err(|source| PayrollCliError::Write {
        path: out.to_owned(),
        source,
    })?;
    eprintln!("wrote {rows} rows to {}", out.display());
    Ok(())
}

/// The summary for a terminal.
fn human(s: &Summary) -> String {
    let mut out = String::new();
    let verdict = if s.is_approvable() {
        "can be approved"
    } else {
        "cannot be approved"
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "{} rows, total {}: {verdict} ({} errors, {} warnings)",
        s.rows,
        dollars(s.total),
        s.errors.len(),
        s.warnings.len()
    );
    let _ = writeln!(out, "\nby source ({}):", s.by_source.len());
    for g in &s.by_source {
        let _ = writeln!(
            out,
            "  {:<44} {:>7} {:>16}",
            g.source_id,
            g.count,
            dollars(g.total)
        );
    }
    let _ = writeln!(out, "\nby branch ({}):", s.by_branch.len());
    for g in &s.by_branch {
        let _ = writeln!(
            out,
            "  {:<44} {:>7} {:>16}",
            g.branch_id,
            g.count,
            dollars(g.total)
        );
    }
    findings(&mut out, "errors", &s.errors);
    findings(&mut out, "warnings", &s.warnings);
    out
}

fn findings(out: &mut String, title: &str, list: &[Finding]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({}):", list.len());
    for f in list.iter().take(FINDINGS_SHOWN_MAX) {
        let _ = writeln!(
            out,
            "  row {:>7}  {:<26} {}",
            f.row,
            f.field.path(),
            f.reason
        );
    }
    if list.len() > FINDINGS_SHOWN_MAX {
        let more = list.len() - FINDINGS_SHOWN_MAX;
        let _ = writeln!(out, "  ... and {more} more (--json lists all)");
    }
}

fn dollars(amount: Decimal) -> String {
    generate::format_amount(amount)
}

/// A file's bytes. Large files are memory-mapped: reading 36 MB into a fresh buffer costs
/// more here than parsing it (every new page is a fault), while a mapping reads the page
/// cache in place.
mod file_bytes {
    use std::fs::File;
    use std::io;
    use std::ops::Deref;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// Below this a plain read is as fast and simpler.
    const MAP_BYTES_MIN: u64 = 1 << 20;

    pub enum FileBytes {
        Mapped { ptr: *const u8, len: usize },
        Read(Vec<u8>),
    }

    pub fn read(path: &Path) -> io::Result<FileBytes> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < MAP_BYTES_MIN {
            return std::fs::read(path).map(FileBytes::Read);
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        // SAFETY: a private, read-only mapping of a file we opened, of its current length;
        // the result is checked for MAP_FAILED. The file is not ours to lock: if another
        // process truncated it while we read, the process would get SIGBUS, which for a
        // command-line read is no worse than a read error (the same trade-off as ripgrep).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return std::fs::read(path).map(FileBytes::Read);
        }
        Ok(FileBytes::Mapped {
            ptr: ptr as *const u8,
            len,
        })
    }

    impl Deref for FileBytes {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            match self {
                // SAFETY: `ptr` is a live mapping of `len` readable bytes until `drop`.
                FileBytes::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
                FileBytes::Read(v) => v,
            }
        }
    }

    impl Drop for FileBytes {
        fn drop(&mut self) {
            if let FileBytes::Mapped { ptr, len } = self {
                // SAFETY: unmaps exactly the mapping made in `read`, once; no slice of it
                // outlives `self` (they borrow from it).
                unsafe { libc::munmap(*ptr as *mut libc::c_void, *len) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_file_is_read_back_through_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payroll.xml");
        write_generated(3000, 9, &path).unwrap();
        let bytes = file_bytes::read(&path).unwrap();
        assert!(matches!(bytes, file_bytes::FileBytes::Mapped { .. }));
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..], &on_disk[..]);
        let summary = payroll::summarize(&bytes).unwrap();
        assert_eq!(summary.rows, 3000);
        assert!(summary.errors.is_empty());
        let text = human(&summary);
        assert!(text.starts_with("3000 rows, total $"), "{text}");
        assert!(text.contains("can be approved"));
        assert!(write_generated(0, 1, &path).is_err());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = summarize(Path::new("/nonexistent/payroll.xml"), true).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/payroll.xml"),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// `payops demo`: the payroll step.

/// Rows of the payroll file the demo uploads (the sample's shape: ~5 payers, 30 branches).
pub const DEMO_ROWS: u32 = 500;
const DEMO_SEED: u64 = 0x00DE_0003;
/// How long the demo waits for its batch to complete before it calls the run failed.
pub const DEMO_TIMEOUT_MS: u64 = 120_000;
/// How often the demo reads the batch while it waits.
const DEMO_POLL_MS: u64 = 100;

/// What the payroll step of `payops demo` did.
#[derive(Debug, serde::Serialize)]
pub struct PayrollDemo {
    pub batch_id: String,
    pub rows: u64,
    /// The file's total, as the upload's summary computed it.
    pub total: String,
    pub sources: usize,
    pub branches: usize,
    /// Seconds to complete the approval estimated from the provider's limits.
    pub eta_seconds: Option<u64>,
    pub status: String,
    pub paid_count: u64,
    pub paid_total: String,
    /// The three CSV reports, where `payops up` wrote them.
    pub reports: Vec<PathBuf>,
    /// HR's page, which lists this batch among the others while `payops up` runs.
    pub page_path: String,
}

type DemoError = Box<dyn Error + Send + Sync>;

/// The payroll flow on a running `payops up` with its provider sandbox: a generated file
/// uploaded as HR would, approved, every payment created at the sandbox and settled by its
/// webhooks, and the batch's reports written.
pub async fn demo(base_url: &str, data_dir: &Path) -> Result<PayrollDemo, DemoError> {
    let xml = generate::generate_xml(&generate::GenerateOptions::like_sample(
        DEMO_ROWS, DEMO_SEED,
    ));
    let client = crate::client::HttpClient::default();
    let up = client
        .request(
            http::Method::POST,
            &format!("{base_url}/payroll/batches?name=demo-payroll.xml"),
            &[("content-type", "application/xml")],
            bytes::Bytes::from(xml),
        )
        .await?;
    if up.status != 201 {
        return Err(format!(
            "upload answered {}: {}",
            up.status,
            String::from_utf8_lossy(&up.body)
        )
        .into());
    }
    let uploaded = up.json()?;
    let batch_id = uploaded["batch_id"]
        .as_str()
        .ok_or("the upload's answer has no batch_id")?
        .to_owned();
    let count = |list: &serde_json::Value| list.as_array().map_or(0, Vec::len);
    let approve = client
        .post_json(
            &format!("{base_url}/payroll/batches/{batch_id}/approve"),
            &[],
            bytes::Bytes::from_static(b"{}"),
        )
        .await?;
    if approve.status != 200 {
        return Err(format!("approval answered {}", approve.status).into());
    }
    let approved = approve.json()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(DEMO_TIMEOUT_MS);
    let batch = loop {
        let batch = client
            .get(&format!("{base_url}/payroll/batches/{batch_id}"))
            .await?
            .json()?;
        if batch["status"] == "COMPLETED" {
            break batch;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "batch {batch_id} not completed in {DEMO_TIMEOUT_MS} ms: {}",
                batch["progress"]
            )
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(DEMO_POLL_MS)).await;
    };
    let reports = payops_app::payroll::report::ReportKind::ALL
        .iter()
        .map(|kind| {
            crate::demo::object_path(
                data_dir,
                &format!(
                    "{}{}",
                    payops_app::payroll::report::reports_prefix(&batch_id),
                    kind.file_name()
                ),
            )
        })
        .collect();
    Ok(PayrollDemo {
        rows: uploaded["rows"].as_u64().unwrap_or(0),
        total: uploaded["total"].as_str().unwrap_or_default().to_owned(),
        sources: count(&uploaded["summary"]["by_source"]),
        branches: count(&uploaded["summary"]["by_branch"]),
        eta_seconds: approved["batch"]["eta_seconds"].as_u64(),
        status: batch["status"].as_str().unwrap_or_default().to_owned(),
        paid_count: batch["progress"]["paid_count"].as_u64().unwrap_or(0),
        paid_total: batch["progress"]["paid_total"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        reports,
        page_path: crate::runtime::hr_ui::HR_PAGE_PATH.to_owned(),
        batch_id,
    })
}
