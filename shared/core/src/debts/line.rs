//! One physical line of a client file → the five canonical field texts → a validated debt.
//! Allocation-free once warm: the decoder and the unquoting reuse buffers owned by the parser.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::cpf::Cpf;
use super::encoding::{DecodeError, decode};
use super::field::{DebtField, FIELD_COUNT, Target};
use super::format::{COLUMNS_MAX, DebtFormat, HeaderError, Plan};
use super::values::{parse_amount, parse_date};

/// Longest client reference, in characters.
pub const CLIENT_REFERENCE_CHARS_MAX: usize = 64;
/// Longest debtor name, in characters.
pub const DEBTOR_NAME_CHARS_MAX: usize = 200;
/// Longest line, in bytes (a bound on work for hostile input).
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// A debt that passed every check of its line, borrowing the line's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebtView<'a> {
    pub client_reference: &'a str,
    pub debtor_name: &'a str,
    pub cpf: Cpf,
    /// BRL, exactly two decimal places, positive.
    pub amount: Decimal,
    pub missed_date: NaiveDate,
}

/// What a line turned out to be.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// Empty or only white space: not a debt, not an error (files often end with one).
    Blank,
    Debt(DebtView<'a>),
    /// Every problem of the line, by field, with a reason (never the value: it may be PII).
    Rejected(Vec<(Target, String)>),
}

/// Parses the lines of one file in one format.
#[derive(Debug)]
pub struct LineParser {
    format: DebtFormat,
    plan: Plan,
    today: NaiveDate,
    decoded: String,
    spans: Vec<FieldSpan>,
    unquoted: [String; FIELD_COUNT],
}

#[derive(Debug, Clone, Copy)]
struct FieldSpan {
    start: usize,
    end: usize,
    /// Quoted with doubled quotes inside: needs unescaping.
    escaped: bool,
}

impl LineParser {
    /// `header` is the file's first line for formats with a header (decoded by the caller
    /// with [`decode_header`]). Missed dates after `today` are rejected.
    pub fn new(
        format: DebtFormat,
        header: Option<&str>,
        today: NaiveDate,
    ) -> Result<LineParser, HeaderError> {
        let plan = format.plan(header)?;
        Ok(LineParser {
            format,
            plan,
            today,
            decoded: String::new(),
            spans: Vec::with_capacity(16),
            unquoted: Default::default(),
        })
    }

    pub fn format(&self) -> &DebtFormat {
        &self.format
    }

    /// Parses and validates one line (without its line terminator).
    pub fn parse<'a>(&'a mut self, raw: &'a [u8]) -> Parsed<'a> {
        let LineParser {
            format,
            plan,
            today,
            decoded,
            spans,
            unquoted,
        } = self;
        if raw.len() > LINE_BYTES_MAX {
            return line_error(format!("is longer than {LINE_BYTES_MAX} bytes"));
        }
        let text = match decode(format.encoding, raw, decoded) {
            Ok(t) => t,
            Err(e) => return line_error(e.to_string()),
        };
        if text.trim().is_empty() {
            return Parsed::Blank;
        }
        let fields: [&str; FIELD_COUNT] = match plan {
            Plan::Delimited {
                delimiter,
                index,
                fields_expected,
                fields_min,
            } => {
                if let Err(reason) = split(text.as_bytes(), *delimiter, spans) {
                    return line_error(reason);
                }
                let n = spans.len();
                match fields_expected {
                    Some(expected) if n != *expected => {
                        return line_error(format!("has {n} fields; the header has {expected}"));
                    }
                    None if n < *fields_min => {
                        return line_error(format!(
                            "has {n} fields; the format needs at least {fields_min}"
                        ));
                    }
                    _ => {}
                }
                let mut out = [""; FIELD_COUNT];
                for ((slot, &i), buf) in out.iter_mut().zip(index.iter()).zip(unquoted.iter_mut()) {
                    let span = spans[i];
                    let field = &text[span.start..span.end];
                    *slot = if span.escaped {
                        buf.clear();
                        buf.push_str(&field.replace("\"\"", "\""));
                        buf.as_str()
                    } else {
                        field
                    };
                }
                out
            }
            Plan::Fixed { spans, min_chars } => {
                let chars = if text.is_ascii() {
                    text.len()
                } else {
                    text.chars().count()
                };
                if chars < *min_chars {
                    return line_error(format!(
                        "has {chars} characters; the layout needs {min_chars}"
                    ));
                }
                let mut out = [""; FIELD_COUNT];
                for (slot, &(start, end)) in out.iter_mut().zip(spans.iter()) {
                    *slot = char_slice(text, start, end);
                }
                out
            }
        };
        validate(fields, format, *today)
    }
}

fn line_error<'a>(reason: String) -> Parsed<'a> {
    Parsed::Rejected(vec![(Target::Line, reason)])
}

/// Decodes a header line in the format's encoding (with a UTF-8 byte-order mark removed).
pub fn decode_header(format: &DebtFormat, raw: &[u8]) -> Result<String, DecodeError> {
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let mut scratch = String::new();
    decode(format.encoding, raw, &mut scratch).map(str::to_owned)
}

/// Characters `start..end` of `text` (fewer at the end of a short line).
fn char_slice(text: &str, start: usize, end: usize) -> &str {
    if text.is_ascii() {
        return &text[start.min(text.len())..end.min(text.len())];
    }
    let mut offsets = text.char_indices().map(|(i, _)| i).chain([text.len()]);
    let from = offsets.by_ref().nth(start).unwrap_or(text.len());
    let to = if end > start {
        offsets.nth(end - start - 1).unwrap_or(text.len())
    } else {
        from
    };
    &text[from..to]
}

/// Splits a delimited line into field spans, honouring RFC 4180 quotes within the line.
fn split(line: &[u8], delimiter: u8, spans: &mut Vec<FieldSpan>) -> Result<(), String> {
    spans.clear();
    if memchr::memchr(b'"', line).is_none() {
        let mut start = 0;
        for at in memchr::memchr_iter(delimiter, line) {
            spans.push(FieldSpan {
                start,
                end: at,
                escaped: false,
            });
            start = at + 1;
            if spans.len() > COLUMNS_MAX {
                return Err(format!("has more than {COLUMNS_MAX} fields"));
            }
        }
        spans.push(FieldSpan {
            start,
            end: line.len(),
            escaped: false,
        });
        return Ok(());
    }
    let mut pos = 0;
    loop {
        if spans.len() >= COLUMNS_MAX {
            return Err(format!("has more than {COLUMNS_MAX} fields"));
        }
        if line.get(pos) == Some(&b'"') {
            let start = pos + 1;
            let mut at = start;
            let mut escaped = false;
            loop {
                match memchr::memchr(b'"', &line[at..]) {
                    None => {
                        return Err(format!(
                            "has an unterminated quote in field {} (a quoted field cannot span lines)",
                            spans.len() + 1
                        ));
                    }
                    Some(q) if line.get(at + q + 1) == Some(&b'"') => {
                        escaped = true;
                        at += q + 2;
                    }
                    Some(q) => {
                        spans.push(FieldSpan {
                            start,
                            end: at + q,
                            escaped,
                        });
                        pos = at + q + 1;
                        break;
                    }
                }
            }
            match line.get(pos) {
                None => return Ok(()),
                Some(&b) if b == delimiter => pos += 1,
                Some(_) => {
                    return Err(format!(
                        "has text after the closing quote of field {}",
                        spans.len()
                    ));
                }
            }
        } else {
            let end = memchr::memchr(delimiter, &line[pos..]).map_or(line.len(), |d| pos + d);
            spans.push(FieldSpan {
                start: pos,
                end,
                escaped: false,
            });
            if end == line.len() {
                return Ok(());
            }
            pos = end + 1;
        }
    }
}

/// Checks the five field texts; all problems of the line are reported, not just the first.
fn validate<'a>(
    fields: [&'a str; FIELD_COUNT],
    format: &DebtFormat,
    today: NaiveDate,
) -> Parsed<'a> {
    let [reference, name, cpf, amount, date] = fields.map(str::trim);
    let mut problems: Vec<(Target, String)> = Vec::new();
    let mut problem = |field: DebtField, reason: String| {
        problems.push((Target::Field(field), reason));
    };
    if reference.is_empty() {
        problem(DebtField::ClientReference, "is missing".into());
    } else if reference.len() > CLIENT_REFERENCE_CHARS_MAX
        && reference.chars().count() > CLIENT_REFERENCE_CHARS_MAX
    {
        problem(
            DebtField::ClientReference,
            format!("is longer than {CLIENT_REFERENCE_CHARS_MAX} characters"),
        );
    }
    if name.is_empty() {
        problem(DebtField::DebtorName, "is missing".into());
    } else if name.len() > DEBTOR_NAME_CHARS_MAX && name.chars().count() > DEBTOR_NAME_CHARS_MAX {
        problem(
            DebtField::DebtorName,
            format!("is longer than {DEBTOR_NAME_CHARS_MAX} characters"),
        );
    }
    let cpf = Cpf::parse(cpf).map_err(|e| problem(DebtField::Cpf, e.to_string()));
    let amount =
        parse_amount(amount, format.decimal).map_err(|e| problem(DebtField::Amount, e.to_string()));
    let date = parse_date(date, &format.date_formats, today)
        .map_err(|e| problem(DebtField::MissedDate, e.to_string()));
    match (cpf, amount, date) {
        (Ok(cpf), Ok(amount), Ok(missed_date)) if problems.is_empty() => Parsed::Debt(DebtView {
            client_reference: reference,
            debtor_name: name,
            cpf,
            amount,
            missed_date,
        }),
        _ => Parsed::Rejected(problems),
    }
}
