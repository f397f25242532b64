//! A scanner for the plain XML that payroll exports are made of: elements without attributes,
//! text, the predefined entities and character references, comments, processing instructions
//! and a leading BOM. It is several times faster than a general parser because it knows what
//! it is looking for, and it gives up ([`Fallback`]) on anything else (attributes, CDATA, a
//! DOCTYPE, malformed markup), in which case the whole input is read again by quick-xml, which
//! also words every error. A document it accepts, quick-xml accepts too and reads the same way:
//! a property test holds the two to that.

use std::borrow::Cow;

use super::assemble::{Assembler, DEPTH_MAX, RowSink};
use super::field::{FIELD_COUNT, Field};

/// Input the scanner does not handle; read it with quick-xml instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fallback;

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Longest entity name the scanner takes (`&#x10FFFF;`); longer ones go to quick-xml.
const REFERENCE_NAME_BYTES_MAX: usize = 10;

/// How a scanned part of a document ends.
#[derive(Debug)]
pub(crate) struct ScanEnd<'a> {
    /// Elements still open, outermost first. For a part that started inside the document
    /// element, [`OUTER`] stands for that element.
    pub(crate) open: Vec<&'a [u8]>,
    /// The name that closed the document element of a part that started inside it.
    pub(crate) closed_outer: Option<&'a [u8]>,
}

/// Stands for the document element in a part that starts inside it (no element name is empty).
pub(crate) const OUTER: &[u8] = b"";

/// Scans a whole document or, with `inside_root`, a part of one that starts inside the
/// document element (for parts read in parallel; see [`ScanEnd`]).
pub(crate) fn scan<'a, S: RowSink<'a>>(
    input: &'a [u8],
    inside_root: bool,
    asm: &mut Assembler<'a, S>,
) -> Result<ScanEnd<'a>, Fallback> {
    // One validation of the whole input, instead of one per run of text: every slice taken
    // below starts and ends at an ASCII delimiter, hence on a character boundary.
    let input = std::str::from_utf8(input).map_err(|_| Fallback)?;
    let mut pos = if !inside_root && input.as_bytes().starts_with(BOM) {
        BOM.len()
    } else {
        0
    };
    let mut end = ScanEnd {
        open: Vec::with_capacity(DEPTH_MAX),
        closed_outer: None,
    };
    if inside_root {
        end.open.push(OUTER);
    }
    loop {
        let lt = find(input.as_bytes(), pos, b'<').unwrap_or(input.len());
        if lt > pos {
            text(slice(input, pos, lt)?, asm)?;
        }
        if lt == input.len() {
            return Ok(end);
        }
        if end.open.len() == 1
            && asm.at_top()
            && let Some((values, after)) = usual_row(input, lt)
        {
            asm.whole_row(values).map_err(|_| Fallback)?;
            pos = after;
            continue;
        }
        pos = markup(input.as_bytes(), lt, &mut end, asm)?;
    }
}

/// Reads a row at `lt` laid out as the sample writes it: every field once, in the sample's
/// order ([`Field::ALL`]), no whitespace between elements, no reference in any text. `None`
/// for any other row, which is then read element by element. Spelled out literal by literal so
/// that each comparison has a constant length, which the compiler turns into a few loads.
fn usual_row(input: &str, lt: usize) -> Option<([&str; FIELD_COUNT], usize)> {
    let bytes = input.as_bytes();
    let mut values = [""; FIELD_COUNT];
    let mut pos = lt;
    macro_rules! part {
        ($literal:literal, $field:expr) => {{
            pos = expect(bytes, pos, $literal)?;
            let end = text_end(bytes, pos)?;
            values[$field.index()] = input.get(pos..end)?;
            pos = end;
        }};
    }
    part!(b"<row><Employee><DunkinId>", Field::EmployeeId);
    part!(b"</DunkinId><DunkinBranch>", Field::EmployeeBranch);
    part!(b"</DunkinBranch><FirstName>", Field::FirstName);
    part!(b"</FirstName><LastName>", Field::LastName);
    part!(b"</LastName><DOB>", Field::DateOfBirth);
    part!(b"</DOB><PhoneNumber>", Field::PhoneNumber);
    part!(
        b"</PhoneNumber></Employee><Payor><DunkinId>",
        Field::PayerId
    );
    part!(b"</DunkinId><ABARouting>", Field::AbaRouting);
    part!(b"</ABARouting><AccountNumber>", Field::AccountNumber);
    part!(b"</AccountNumber><Name>", Field::PayerName);
    part!(b"</Name><DBA>", Field::Dba);
    part!(b"</DBA><EIN>", Field::Ein);
    part!(b"</EIN><Address><Line1>", Field::AddressLine1);
    part!(b"</Line1><City>", Field::AddressCity);
    part!(b"</City><State>", Field::AddressState);
    part!(b"</State><Zip>", Field::AddressZip);
    part!(b"</Zip></Address></Payor><Payee><PlaidId>", Field::PlaidId);
    part!(b"</PlaidId><LoanAccountNumber>", Field::LoanAccountNumber);
    part!(b"</LoanAccountNumber></Payee><Amount>", Field::Amount);
    pos = expect(bytes, pos, b"</Amount></row>")?;
    Some((values, pos))
}

/// The position after `literal` if `bytes` has it at `pos`.
#[inline(always)]
fn expect<const N: usize>(bytes: &[u8], pos: usize, literal: &[u8; N]) -> Option<usize> {
    let end = pos.checked_add(N)?;
    (bytes.get(pos..end)? == literal).then_some(end)
}

/// Where a field's text ends: at the next `<`; `None` at a reference or the end of input.
/// A plain loop: field texts are a dozen bytes, too short for a vectorised search to pay.
#[inline(always)]
fn text_end(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let i = rest.iter().position(|b| matches!(b, b'<' | b'&'))?;
    (rest[i] == b'<').then_some(from + i)
}

/// Reads the markup that starts with the `<` at `lt`; returns the position after it.
fn markup<'a, S: RowSink<'a>>(
    input: &'a [u8],
    lt: usize,
    end: &mut ScanEnd<'a>,
    asm: &mut Assembler<'a, S>,
) -> Result<usize, Fallback> {
    let open = &mut end.open;
    match input.get(lt + 1) {
        Some(b'/') => {
            let name = name_at(input, lt + 2)?;
            let close = lt + 2 + name.len();
            match open.pop() {
                _ if input.get(close) != Some(&b'>') => return Err(Fallback),
                Some(n) if n == name => {}
                Some(OUTER) if open.is_empty() => end.closed_outer = Some(name),
                _ => return Err(Fallback),
            }
            asm.end();
            Ok(close + 1)
        }
        Some(b'?') => {
            // A processing instruction or the XML declaration: skipped.
            if !input.get(lt + 2).is_some_and(u8::is_ascii_alphabetic) {
                return Err(Fallback);
            }
            let close = find_seq(input, lt + 2, b"?>").ok_or(Fallback)?;
            Ok(close + 2)
        }
        Some(b'!') => {
            if !input[lt..].starts_with(b"<!--") {
                return Err(Fallback); // CDATA or DOCTYPE
            }
            let close = find_seq(input, lt + 4, b"-->").ok_or(Fallback)?;
            Ok(close + 3)
        }
        _ => {
            let name = name_at(input, lt + 1)?;
            let after = lt + 1 + name.len();
            match input.get(after) {
                Some(b'>') => {
                    asm.start(name).map_err(|_| Fallback)?;
                    open.push(name);
                    Ok(after + 1)
                }
                Some(b'/') if input.get(after + 1) == Some(&b'>') => {
                    asm.start(name).map_err(|_| Fallback)?;
                    asm.end();
                    Ok(after + 2)
                }
                _ => Err(Fallback),
            }
        }
    }
}

/// An element name of ASCII letters, digits, `_`, `-` and `.`, starting with a letter or `_`.
fn name_at(input: &[u8], start: usize) -> Result<&[u8], Fallback> {
    let rest = input.get(start..).ok_or(Fallback)?;
    let len = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        .unwrap_or(rest.len());
    match rest.first() {
        Some(b) if len > 0 && (b.is_ascii_alphabetic() || *b == b'_') => Ok(&rest[..len]),
        _ => Err(Fallback),
    }
}

/// Text between two markups: runs of characters and `&name;` references.
fn text<'a, S: RowSink<'a>>(text: &'a str, asm: &mut Assembler<'a, S>) -> Result<(), Fallback> {
    let bytes = text.as_bytes();
    if asm.in_field().is_none()
        && bytes
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Ok(()); // indentation between elements
    }
    let mut start = 0;
    while let Some(amp) = find(bytes, start, b'&') {
        if amp > start {
            asm.text(Cow::Borrowed(slice(text, start, amp)?));
        }
        let semi = find(bytes, amp + 1, b';').ok_or(Fallback)?;
        let name = &bytes[amp + 1..semi];
        if name.is_empty()
            || name.len() > REFERENCE_NAME_BYTES_MAX
            || !name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'#')
        {
            return Err(Fallback);
        }
        asm.reference(slice(text, amp + 1, semi)?);
        start = semi + 1;
    }
    if start < bytes.len() {
        asm.text(Cow::Borrowed(slice(text, start, bytes.len())?));
    }
    Ok(())
}

/// `text[from..to]`, which the callers only ask at ASCII delimiters.
fn slice(text: &str, from: usize, to: usize) -> Result<&str, Fallback> {
    text.get(from..to).ok_or(Fallback)
}

fn find(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    memchr::memchr(byte, bytes.get(from..)?).map(|i| from + i)
}

fn find_seq(bytes: &[u8], from: usize, seq: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes.get(from..)?, seq).map(|i| from + i)
}
