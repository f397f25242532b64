//! The payroll file: an XML `<root>` of `<row>`s, each one payment from an employer's source
//! account (`Payor`) to an employee's (`Employee`) student loan (`Payee`), with its `Amount`.
//!
//! Reading is streaming (one pass over the bytes, row by row, no tree: memory is the input
//! plus what the cross-row checks keep), exact (amounts are decimals, summed in cents) and
//! tolerant of what real exports contain: pretty-printed or on one line, a BOM, CRLF,
//! whitespace around values, entities (`Dunkin&apos; Donuts`), elements in any order, unknown
//! extra elements, comments, CDATA, `$1,234.56`. Routing, account and loan numbers stay text
//! (their leading zeros matter); personal data is held in [`crate::Secret`].
//!
//! Two readers feed the same row assembly: a scanner for the plain XML exports are made of
//! (with a shortcut for rows laid out as the sample lays them out), and quick-xml for anything
//! it declines, and for wording every XML error. A property test holds them to the same
//! results. A large file (over 2 MiB) is read in parts on up to one thread per core, each part
//! starting at a `<row>`; call from a blocking context (`spawn_blocking` in async code).
//!
//! Validation finds errors, which block approval, and warnings, which do not, each with its
//! row (from 1), field and reason: see [`Reason`]. A file that cannot be read at all (not XML,
//! no rows) is a [`PayrollError`] instead.
//!
//! ```
//! let xml = br#"<root><row><Amount>$1,234.56</Amount></row></root>"#;
//! let summary = payops_core::payroll::summarize(xml).unwrap();
//! assert_eq!(summary.total.to_string(), "1234.56");
//! assert!(!summary.is_approvable()); // every other field is missing
//! ```

mod assemble;
mod checks;
mod error;
pub mod eta;
mod fast;
mod field;
mod finding;
pub mod generate;
mod ids;
pub mod ledger;
mod row;
pub mod status;
mod summary;
mod validate;
mod xml;
pub mod zip;

#[cfg(test)]
mod tests;

pub use assemble::{DEPTH_MAX, FIELD_BYTES_MAX, ROWS_MAX, trim_xml_space};
pub use checks::{AMOUNT_USD_MAX, check_amount, check_ein, fast_cents, parse_date};
pub use error::PayrollError;
pub use field::{FIELD_COUNT, Field};
pub use finding::{Finding, Reason, Severity};
pub use ids::{
    BranchId, EmployeeId, PAYROLL_ID_BYTES_MAX, PayerId, PlaidId, RoutingError, RoutingNumber,
    check_routing, is_valid_id,
};
pub use row::{Address, Employee, Payee, Payer, PayrollRow};
pub use status::PaymentStatus;
pub use summary::{BranchTotal, SourceTotal, Summary};

use assemble::Assembler;
use summary::Tally;

/// Which reader parses the XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XmlReader {
    /// The fast scanner for plain documents, quick-xml for anything else. Same results.
    #[default]
    Auto,
    /// quick-xml only (for comparison and tests).
    QuickXml,
}

/// A file read in full: its summary and each error-free row, typed, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payroll {
    pub summary: Summary,
    /// The rows without errors. When `summary.errors` is empty, that is every row.
    pub rows: Vec<PayrollRow>,
}

/// Parses, validates and summarises a payroll file.
pub fn summarize(input: &[u8]) -> Result<Summary, PayrollError> {
    read(input, XmlReader::Auto, false).map(|(summary, _)| summary)
}

/// As [`summarize`], with a choice of reader.
pub fn summarize_with(input: &[u8], reader: XmlReader) -> Result<Summary, PayrollError> {
    read(input, reader, false).map(|(summary, _)| summary)
}

/// Parses, validates and summarises a payroll file, and keeps its rows typed.
pub fn parse(input: &[u8]) -> Result<Payroll, PayrollError> {
    read(input, XmlReader::Auto, true).map(|(summary, rows)| Payroll { summary, rows })
}

/// Below this, a part is not worth a thread.
const PART_BYTES_MIN: usize = 1 << 20;
/// Most parts a file is read in at once (one per core up to this).
const PARTS_MAX: usize = 8;

fn read(
    input: &[u8],
    reader: XmlReader,
    keep_rows: bool,
) -> Result<(Summary, Vec<PayrollRow>), PayrollError> {
    if reader == XmlReader::Auto
        && let Some(result) = read_fast(input, keep_rows)
    {
        return result;
    }
    let mut asm = Assembler::new(Tally::new(keep_rows, rows_expected(input.len())));
    xml::read(input, &mut asm)?;
    let rows = asm.rows();
    let tally = asm.finish().map_err(|e| PayrollError::end(e, rows))?;
    Ok(tally.finish())
}

type Read = Result<(Summary, Vec<PayrollRow>), PayrollError>;

/// With the fast scanner, in parallel parts when the file is large; `None` when the scanner
/// declines the document.
fn read_fast(input: &[u8], keep_rows: bool) -> Option<Read> {
    read_fast_in(input, keep_rows, parts_wanted(input.len()))
}

/// As [`read_fast`], in (at most) `parts` parts.
fn read_fast_in(input: &[u8], keep_rows: bool, parts: usize) -> Option<Read> {
    let cuts = cut_points(input, parts);
    if cuts.len() > 2
        && let Some(result) = read_parts(input, &cuts, keep_rows)
    {
        return Some(result);
    }
    let mut asm = Assembler::new(Tally::new(keep_rows, rows_expected(input.len())));
    fast::scan(input, false, &mut asm).ok()?;
    let rows = asm.rows();
    Some(
        asm.finish()
            .map(Tally::finish)
            .map_err(|e| PayrollError::end(e, rows)),
    )
}

/// Bytes of a row as the sample writes it, to size tables from a file's length.
const ROW_BYTES_TYPICAL: usize = 720;

fn rows_expected(len: usize) -> usize {
    len / ROW_BYTES_TYPICAL
}

fn parts_wanted(len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(PARTS_MAX).min(len / PART_BYTES_MIN).max(1)
}

/// How much smaller, in percent, the first part is made than the others: its thread also adds
/// every later part's rows to the totals once they are checked (measured: a small share).
const MERGE_PERCENT: usize = 5;

/// `0`, then the start of a `<row>` at or after each point that shares the work evenly (see
/// [`MERGE_PERCENT`]), then `len`. Fewer cuts when no `<row>` follows a point.
fn cut_points(input: &[u8], parts: usize) -> Vec<usize> {
    let len = input.len();
    let parts = parts.max(1);
    let first = len / parts * (100 - (MERGE_PERCENT * (parts - 1)).min(50)) / 100;
    let rest = (len - first) / parts.saturating_sub(1).max(1);
    let mut cuts = vec![0];
    for i in 1..parts {
        let from = (first + rest * (i - 1)).max(cuts[cuts.len() - 1] + 1);
        match input
            .get(from..)
            .and_then(|tail| memchr::memmem::find(tail, b"<row>"))
        {
            Some(at) => cuts.push(from + at),
            None => break,
        }
    }
    cuts.push(len);
    cuts
}

/// Reads each part between two cuts on its own thread (the first on this one), then adds the
/// later parts' rows in order. `None` if a cut was not between two rows of the document
/// element (inside a comment, say) or a part was declined: the caller then reads the file
/// in one piece, which is always right.
fn read_parts(input: &[u8], cuts: &[usize], keep_rows: bool) -> Option<Read> {
    std::thread::scope(|scope| {
        let later: Vec<_> = cuts[1..]
            .windows(2)
            .map(|w| {
                let part = &input[w[0]..w[1]];
                // A thread that cannot be had leaves the whole file to one thread.
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || {
                        let mut asm = Assembler::inside_root(summary::Checked {
                            keep: keep_rows,
                            rows: Vec::with_capacity(rows_expected(part.len())),
                        });
                        let end = fast::scan(part, true, &mut asm).ok()?;
                        Some((asm.into_sink(), end))
                    })
                    .ok()
            })
            .collect();
        let mut asm = Assembler::new(Tally::new(keep_rows, rows_expected(input.len())));
        let first = fast::scan(&input[..cuts[1]], false, &mut asm);
        let later: Vec<_> = later
            .into_iter()
            .map(|handle| handle?.join().ok().flatten())
            .collect();
        let first = first.ok()?;
        if first.open.len() != 1 || !asm.at_top() {
            return None;
        }
        let root = first.open[0];
        let mut rows = asm.rows();
        let mut tally = asm.into_sink();
        let parts = later.len();
        for (i, part) in later.into_iter().enumerate() {
            let (checked, end) = part?;
            let consistent = if i + 1 == parts {
                end.open.is_empty() && end.closed_outer == Some(root)
            } else {
                end.open == [fast::OUTER] && end.closed_outer.is_none()
            };
            if !consistent {
                return None;
            }
            let count = checked.rows.len() as u32;
            for facts in checked.rows {
                tally.add(facts, rows);
            }
            rows += count;
        }
        if rows > ROWS_MAX {
            return Some(Err(PayrollError::TooManyRows));
        }
        Some(Ok(tally.finish()))
    })
}
