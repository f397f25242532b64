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
            && let Some((row, after)) = usual_row(input, lt)
        {
            usual_row_to(row, asm)?;
            pos = after;
            continue;
        }
        pos = markup(input.as_bytes(), lt, &mut end, asm)?;
    }
}

/// A row laid out as the sample lays it out (see [`usual_row`]): each field's text, and which
/// texts hold a reference.
struct UsualRow<'a> {
    values: [&'a str; FIELD_COUNT],
    /// Bit `i` set when field `i`'s text contains `&`.
    references: u32,
}

/// Reads a row at `lt` laid out as the sample lays it out: every field once, in the sample's
/// order ([`Field::ALL`]), whether on one line or pretty-printed (whitespace between tags).
/// `None` for any other row, which is then read element by element. Spelled out tag by tag
/// so that each comparison has a constant length, which the compiler turns into a few loads.
fn usual_row(input: &str, lt: usize) -> Option<(UsualRow<'_>, usize)> {
    let bytes = input.as_bytes();
    let mut row = UsualRow {
        values: [""; FIELD_COUNT],
        references: 0,
    };
    let mut pos = lt;
    macro_rules! tags {
        ($first:literal $(, $tag:literal)*) => {{
            pos = expect(bytes, pos, $first)?;
            $(
                pos = skip_space(bytes, pos);
                pos = expect(bytes, pos, $tag)?;
            )*
        }};
    }
    macro_rules! field {
        ($field:expr) => {{
            let (end, reference) = text_end(bytes, pos)?;
            row.values[$field.index()] = input.get(pos..end)?;
            if reference {
                row.references |= 1 << $field.index();
            }
            pos = end;
        }};
    }
    tags!(b"<row>", b"<Employee>", b"<DunkinId>");
    field!(Field::EmployeeId);
    tags!(b"</DunkinId>", b"<DunkinBranch>");
    field!(Field::EmployeeBranch);
    tags!(b"</DunkinBranch>", b"<FirstName>");
    field!(Field::FirstName);
    tags!(b"</FirstName>", b"<LastName>");
    field!(Field::LastName);
    tags!(b"</LastName>", b"<DOB>");
    field!(Field::DateOfBirth);
    tags!(b"</DOB>", b"<PhoneNumber>");
    field!(Field::PhoneNumber);
    tags!(b"</PhoneNumber>", b"</Employee>", b"<Payor>", b"<DunkinId>");
    field!(Field::PayerId);
    tags!(b"</DunkinId>", b"<ABARouting>");
    field!(Field::AbaRouting);
    tags!(b"</ABARouting>", b"<AccountNumber>");
    field!(Field::AccountNumber);
    tags!(b"</AccountNumber>", b"<Name>");
    field!(Field::PayerName);
    tags!(b"</Name>", b"<DBA>");
    field!(Field::Dba);
    tags!(b"</DBA>", b"<EIN>");
    field!(Field::Ein);
    tags!(b"</EIN>", b"<Address>", b"<Line1>");
    field!(Field::AddressLine1);
    tags!(b"</Line1>", b"<City>");
    field!(Field::AddressCity);
    tags!(b"</City>", b"<State>");
    field!(Field::AddressState);
    tags!(b"</State>", b"<Zip>");
    field!(Field::AddressZip);
    tags!(
        b"</Zip>",
        b"</Address>",
        b"</Payor>",
        b"<Payee>",
        b"<PlaidId>"
    );
    field!(Field::PlaidId);
    tags!(b"</PlaidId>", b"<LoanAccountNumber>");
    field!(Field::LoanAccountNumber);
    tags!(b"</LoanAccountNumber>", b"</Payee>", b"<Amount>");
    field!(Field::Amount);
    tags!(b"</Amount>", b"</row>");
    Some((row, pos))
}

/// Gives a [`UsualRow`] to the assembler: at once when no text holds a reference (nearly
/// always), else field by field, each text read as any text is.
fn usual_row_to<'a, S: RowSink<'a>>(
    row: UsualRow<'a>,
    asm: &mut Assembler<'a, S>,
) -> Result<(), Fallback> {
    if row.references == 0 {
        return asm.whole_row(row.values).map_err(|_| Fallback);
    }
    asm.start_row().map_err(|_| Fallback)?;
    for field in Field::ALL {
        asm.start_field(field);
        let value = row.values[field.index()];
        if !value.is_empty() {
            text(value, asm)?;
        }
        asm.end();
    }
    asm.end();
    Ok(())
}

/// The position after `literal` if `bytes` has it at `pos`.
#[inline(always)]
fn expect<const N: usize>(bytes: &[u8], pos: usize, literal: &[u8; N]) -> Option<usize> {
    let end = pos.checked_add(N)?;
    (bytes.get(pos..end)? == literal).then_some(end)
}

/// The position of the first byte from `pos` that is not XML whitespace.
#[inline(always)]
fn skip_space(bytes: &[u8], mut pos: usize) -> usize {
    while bytes
        .get(pos)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        pos += 1;
    }
    pos
}

/// Where a field's text ends (the next `<`), and whether it holds a `&` before that; `None`
/// at the end of input. Eight bytes at a time: field texts are a dozen bytes, too short for a
/// vectorised search's set-up to pay, long enough for a byte loop to cost.
#[inline(always)]
fn text_end(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let hits = has_byte(word, b'<') | has_byte(word, b'&');
        if hits != 0 {
            i += (hits.trailing_zeros() / 8) as usize;
            return if bytes[i] == b'<' {
                Some((i, false))
            } else {
                find(bytes, i, b'<').map(|lt| (lt, true))
            };
        }
        i += 8;
    }
    let j = bytes
        .get(i..)?
        .iter()
        .position(|b| matches!(b, b'<' | b'&'))?
        + i;
    if bytes[j] == b'<' {
        Some((j, false))
    } else {
        find(bytes, j, b'<').map(|lt| (lt, true))
    }
}

/// The high bit of each byte of `word` that equals `byte`, and possibly of bytes above the
/// first one that does: the lowest set bit is always exact, which is all `text_end` uses.
#[inline(always)]
fn has_byte(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_ends_at_the_first_lt_and_tells_of_references() {
        assert_eq!(text_end(b"abc<d", 0), Some((3, false)));
        assert_eq!(text_end(b"0123456789abcdef<", 0), Some((16, false)));
        assert_eq!(text_end(b"01234567<9abcdef<", 3), Some((8, false)));
        assert_eq!(text_end(b"0123&567<", 0), Some((8, true)));
        assert_eq!(text_end(b"0&<", 0), Some((2, true)));
        assert_eq!(text_end(b"no end", 0), None);
        assert_eq!(text_end(b"no & end", 0), None);
        assert_eq!(text_end(b"<", 0), Some((0, false)));
        assert_eq!(text_end(b"x", 5), None);
        // A byte one above '<' just before it must not hide it.
        assert_eq!(text_end(b"\x3d\x3c......", 0), Some((1, false)));
    }

    proptest! {
        #[test]
        fn text_end_is_the_naive_search(
            bytes in prop::collection::vec(prop::sample::select(b"<&=;%'a\x00\xff".to_vec()), 0..40),
            from in 0usize..42,
        ) {
            let naive = bytes.get(from..).and_then(|rest| {
                let lt = rest.iter().position(|b| *b == b'<')?;
                Some((from + lt, rest[..lt].contains(&b'&')))
            });
            prop_assert_eq!(text_end(&bytes, from), naive);
        }
    }
}
