//! Checking a whole file (or one sub-batch of it): lines are numbered as they are in the file
//! (the header is line 1), every debt is validated, duplicates of a client reference within
//! the file are caught, and every rejected line is kept with its number, field and reason.

use std::collections::HashMap;
use std::hash::BuildHasher;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::encoding::DecodeError;
use super::field::{DebtField, Target};
use super::format::{DebtFormat, HEADER_BYTES_MAX, HeaderError};
use super::line::{DebtView, LineParser, Parsed, decode_header};

/// Bytes looked at to tell a text file from a binary one.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// One rejected field of one line. `line` is the physical line number (the header is 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub line: u64,
    pub field: Target,
    pub reason: String,
}

/// A file that cannot be processed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("the file is binary, not text (a NUL byte at byte {0})")]
    Binary(usize),
    #[error("the header line (line 1) {0}")]
    HeaderEncoding(DecodeError),
    #[error("the header line (line 1) is longer than {HEADER_BYTES_MAX} bytes")]
    HeaderTooLong,
    #[error("wrong header: {0}")]
    Header(#[from] HeaderError),
    #[error("the file has no debt lines")]
    NoDebts,
}

/// Refuses a file that is empty or binary, from its first bytes.
pub fn sniff(first_bytes: &[u8]) -> Result<(), FileError> {
    if first_bytes.is_empty() {
        return Err(FileError::Empty);
    }
    let probe = &first_bytes[..first_bytes.len().min(SNIFF_BYTES)];
    match memchr::memchr(0, probe) {
        Some(at) => Err(FileError::Binary(at)),
        None => Ok(()),
    }
}

/// Client references seen so far, with the line each was first seen on. References live in
/// one growing arena and the map holds their hashes, so a new reference costs no allocation
/// of its own; the rare hash collision between different references falls back to a map
/// keyed by the text.
#[derive(Debug, Default)]
pub struct ReferenceSet {
    hasher: foldhash::fast::FixedState,
    arena: String,
    /// hash → (arena start, arena end, first line)
    seen: HashMap<u64, (u32, u32, u64), foldhash::fast::FixedState>,
    collisions: HashMap<String, u64>,
}

impl ReferenceSet {
    /// Records `reference` on `line`; returns the line it was first seen on if it was.
    pub fn insert(&mut self, reference: &str, line: u64) -> Option<u64> {
        let hash = self.hasher.hash_one(reference);
        match self.seen.get(&hash) {
            None => {
                let start = self.arena.len();
                self.arena.push_str(reference);
                // Sub-batches and files past 4 GiB of references fall back to the slow map.
                match (u32::try_from(start), u32::try_from(self.arena.len())) {
                    (Ok(s), Ok(e)) => {
                        self.seen.insert(hash, (s, e, line));
                        None
                    }
                    _ => self.insert_slow(reference, line),
                }
            }
            Some(&(s, e, first)) if &self.arena[s as usize..e as usize] == reference => Some(first),
            Some(_) => self.insert_slow(reference, line),
        }
    }

    fn insert_slow(&mut self, reference: &str, line: u64) -> Option<u64> {
        match self.collisions.get(reference) {
            Some(&first) => Some(first),
            None => {
                self.collisions.insert(reference.to_owned(), line);
                None
            }
        }
    }
}

/// What one line was.
#[derive(Debug)]
pub enum Outcome<'a> {
    Blank,
    Accepted(DebtView<'a>),
    Rejected,
}

/// Counts and rejections of a checked file or part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Debt lines (not the header, not blank lines).
    pub lines: u64,
    pub accepted: u64,
    pub rejected: Vec<Rejection>,
}

impl CheckReport {
    /// Lines with at least one rejection.
    pub fn rejected_lines(&self) -> u64 {
        self.lines - self.accepted
    }
}

/// Checks the debt lines of a file or of one part of it, in order.
#[derive(Debug)]
pub struct Checker {
    parser: LineParser,
    references: ReferenceSet,
    next_line: u64,
    report: CheckReport,
}

impl Checker {
    /// `first_line` is the physical line number of the first line fed.
    pub fn new(parser: LineParser, first_line: u64) -> Checker {
        Checker {
            parser,
            references: ReferenceSet::default(),
            next_line: first_line,
            report: CheckReport::default(),
        }
    }

    /// The line number the next line fed will have.
    pub fn next_line(&self) -> u64 {
        self.next_line
    }

    /// Checks one line (without its terminator).
    pub fn line<'a>(&'a mut self, raw: &'a [u8]) -> Outcome<'a> {
        let number = self.next_line;
        self.next_line += 1;
        let Checker {
            parser,
            references,
            report,
            ..
        } = self;
        match parser.parse(raw) {
            Parsed::Blank => Outcome::Blank,
            Parsed::Debt(debt) => {
                report.lines += 1;
                if let Some(first) = references.insert(debt.client_reference, number) {
                    report.rejected.push(Rejection {
                        line: number,
                        field: Target::Field(DebtField::ClientReference),
                        reason: format!("duplicates the client reference of line {first}"),
                    });
                    return Outcome::Rejected;
                }
                report.accepted += 1;
                Outcome::Accepted(debt)
            }
            Parsed::Rejected(problems) => {
                report.lines += 1;
                report
                    .rejected
                    .extend(problems.into_iter().map(|(field, reason)| Rejection {
                        line: number,
                        field,
                        reason,
                    }));
                Outcome::Rejected
            }
        }
    }

    pub fn report(&self) -> &CheckReport {
        &self.report
    }

    pub fn into_report(self) -> CheckReport {
        self.report
    }
}

/// Checks a whole file: its header lines first, then its debts.
#[derive(Debug)]
pub struct FileChecker {
    format: Option<DebtFormat>,
    today: NaiveDate,
    header_lines_left: usize,
    header: Option<String>,
    checker: Option<Checker>,
    physical_lines: u64,
}

impl FileChecker {
    pub fn new(format: DebtFormat, today: NaiveDate) -> FileChecker {
        FileChecker {
            header_lines_left: format.header_lines(),
            format: Some(format),
            today,
            header: None,
            checker: None,
            physical_lines: 0,
        }
    }

    /// The decoded column header, once read (formats with a header).
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// Physical lines fed so far.
    pub fn physical_lines(&self) -> u64 {
        self.physical_lines
    }

    /// Feeds the next physical line (without its terminator).
    pub fn line<'a>(&'a mut self, raw: &'a [u8]) -> Result<Outcome<'a>, FileError> {
        self.physical_lines += 1;
        if self.header_lines_left > 0 {
            self.header_lines_left -= 1;
            if self.physical_lines == 1 {
                self.read_header(raw)?;
            }
            return Ok(Outcome::Blank);
        }
        let checker = self.start()?;
        Ok(checker.line(raw))
    }

    fn read_header(&mut self, raw: &[u8]) -> Result<(), FileError> {
        if raw.len() > HEADER_BYTES_MAX {
            return Err(FileError::HeaderTooLong);
        }
        if let Some(at) = memchr::memchr(0, raw) {
            return Err(FileError::Binary(at));
        }
        let format = self.format.as_ref().ok_or(FileError::NoDebts)?;
        let header = decode_header(format, raw).map_err(FileError::HeaderEncoding)?;
        // Resolving it now reports a wrong header at line 1, before any debt is read.
        format.plan(Some(&header))?;
        self.header = Some(header);
        Ok(())
    }

    fn start(&mut self) -> Result<&mut Checker, FileError> {
        if self.checker.is_none() {
            let format = self.format.take().ok_or(FileError::NoDebts)?;
            let header = self.header.as_deref();
            let parser = LineParser::new(format, header, self.today)?;
            self.checker = Some(Checker::new(parser, self.physical_lines));
        }
        // Set just above when it was missing.
        self.checker.as_mut().ok_or(FileError::NoDebts)
    }

    /// The report, or why the file as a whole cannot be processed.
    pub fn finish(mut self) -> Result<CheckReport, FileError> {
        if self.physical_lines == 0 {
            return Err(FileError::Empty);
        }
        if self.header_lines_left > 0 {
            return Err(FileError::NoDebts);
        }
        let report = self.start()?.report().clone();
        if report.lines == 0 {
            return Err(FileError::NoDebts);
        }
        Ok(self.checker.map(Checker::into_report).unwrap_or(report))
    }
}

/// Splits a byte stream into lines (LF or CRLF), across chunk boundaries, without copying
/// lines that lie inside a chunk. A final line without a terminator is a line too.
#[derive(Debug, Default)]
pub struct LineSplitter {
    carry: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk; calls `each` with every complete line. Stops at the first error.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            if self.carry.is_empty() {
                each(trim_cr(&chunk[start..nl]))?;
            } else {
                self.carry.extend_from_slice(&chunk[start..nl]);
                let line = std::mem::take(&mut self.carry);
                each(trim_cr(&line))?;
                self.carry = line;
                self.carry.clear();
            }
            start = nl + 1;
        }
        self.carry.extend_from_slice(&chunk[start..]);
        Ok(())
    }

    /// Bytes held back waiting for the end of their line.
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// Ends the stream: the last line, if it had no terminator.
    pub fn finish<E>(self, mut each: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.carry.is_empty() {
            return Ok(());
        }
        each(trim_cr(&self.carry))
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Checks a file held in memory (tests, small uploads).
pub fn check_bytes(
    format: DebtFormat,
    today: NaiveDate,
    bytes: &[u8],
) -> Result<CheckReport, FileError> {
    sniff(bytes)?;
    let mut file = FileChecker::new(format, today);
    let mut splitter = LineSplitter::default();
    splitter.feed(bytes, |line| file.line(line).map(|_| ()))?;
    splitter.finish(|line| file.line(line).map(|_| ()))?;
    file.finish()
}
