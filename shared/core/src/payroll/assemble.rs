//! Turns a stream of XML events into rows of field texts. Both readers (the fast scanner and
//! quick-xml) drive the same [`Assembler`], so the two can only differ in which documents they
//! accept, never in what they make of them.
//!
//! Values borrow from the input whenever a field is one run of text, which is nearly always;
//! a field split by an entity (`Dunkin&apos; Donuts`) is the only one that allocates.

use std::borrow::Cow;

use super::field::{Child, Container, FIELD_COUNT, Field, child};
use super::finding::Reason;

/// Deepest element nesting accepted (the format needs 5).
pub const DEPTH_MAX: usize = 32;
/// Most rows in one file (a payroll is about 50,000).
pub const ROWS_MAX: u32 = 1_000_000;
/// Longest field text kept, whitespace included.
pub const FIELD_BYTES_MAX: usize = 512;
/// Longest entity name looked up (`&#x10FFFF;` is the longest valid one).
const REFERENCE_BYTES_MAX: usize = 10;

const PRESENT: u8 = 1;
const REPEATED: u8 = 1 << 1;
const TOO_LONG: u8 = 1 << 2;
const UNKNOWN_ENTITY: u8 = 1 << 3;
const BAD_CHAR_REF: u8 = 1 << 4;

/// One `<row>` as text: each field's value with surrounding whitespace trimmed and entities
/// resolved, plus what went wrong while reading it.
#[derive(Debug)]
pub struct RawRow<'a> {
    number: u32,
    values: [Cow<'a, str>; FIELD_COUNT],
    flags: [u8; FIELD_COUNT],
}

impl<'a> RawRow<'a> {
    fn new() -> Self {
        RawRow {
            number: 0,
            values: std::array::from_fn(|_| Cow::Borrowed("")),
            flags: [0; FIELD_COUNT],
        }
    }

    fn reset(&mut self, number: u32) {
        self.number = number;
        for v in &mut self.values {
            *v = Cow::Borrowed("");
        }
        self.flags = [0; FIELD_COUNT];
    }

    /// The row's number, from 1 in file order.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The field's trimmed text; empty when absent.
    pub fn value(&self, field: Field) -> &str {
        &self.values[field.index()]
    }

    /// The field's text, borrowed from the input when it can be, for keys that outlive the row.
    pub fn value_cow(&self, field: Field) -> &Cow<'a, str> {
        &self.values[field.index()]
    }

    /// Why the field's text cannot be used, if it cannot: checked before any rule on its value.
    pub fn problem(&self, field: Field) -> Option<Reason> {
        let flags = self.flags[field.index()];
        if flags & REPEATED != 0 {
            Some(Reason::Repeated)
        } else if flags & TOO_LONG != 0 {
            Some(Reason::TooLong {
                max_bytes: FIELD_BYTES_MAX,
            })
        } else if flags & UNKNOWN_ENTITY != 0 {
            Some(Reason::UnknownEntity)
        } else if flags & BAD_CHAR_REF != 0 {
            Some(Reason::BadCharacterReference)
        } else if self.values[field.index()].is_empty() {
            Some(Reason::Missing)
        } else {
            None
        }
    }

    fn append(&mut self, field: Field, chunk: Cow<'a, str>) {
        let i = field.index();
        if self.flags[i] & TOO_LONG != 0 {
            return;
        }
        let value = &mut self.values[i];
        if value.len() + chunk.len() > FIELD_BYTES_MAX {
            self.flags[i] |= TOO_LONG;
        } else if value.is_empty() {
            *value = chunk;
        } else {
            value.to_mut().push_str(&chunk);
        }
    }

    fn trim(&mut self, field: Field) {
        let value = &mut self.values[field.index()];
        match value {
            Cow::Borrowed(s) => *s = trim_xml_space(s),
            Cow::Owned(s) => {
                let trimmed = trim_xml_space(s);
                if trimmed.len() != s.len() {
                    *s = trimmed.to_owned();
                }
            }
        }
    }
}

/// Trims the four XML whitespace characters (not Unicode spaces, which are data).
pub fn trim_xml_space(s: &str) -> &str {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let b = s.as_bytes();
    let Some(start) = b.iter().position(|c| !is_space(c)) else {
        return "";
    };
    let end = b
        .iter()
        .rposition(|c| !is_space(c))
        .map_or(b.len(), |i| i + 1);
    // Both ends sit next to an ASCII space or at the edge: character boundaries.
    s.get(start..end).unwrap_or(s)
}

/// Receives each row once it is closed.
pub trait RowSink<'a> {
    fn row(&mut self, row: &RawRow<'a>);
}

/// Why the document's shape is refused (the reader adds where).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShapeError {
    SecondRoot,
    TooDeep,
    TooManyRows,
}

/// Why the document is refused once read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndError {
    Unclosed,
    NoElement,
    NoRows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Row,
    Container(Container),
    Field(Field),
    /// An element the format does not know, or a second copy of a field: skipped whole.
    Ignored,
}

pub(crate) struct Assembler<'a, S> {
    stack: Vec<Node>,
    roots: u32,
    rows: u32,
    row: RawRow<'a>,
    sink: S,
}

impl<'a, S: RowSink<'a>> Assembler<'a, S> {
    pub(crate) fn new(sink: S) -> Self {
        Assembler {
            stack: Vec::with_capacity(DEPTH_MAX),
            roots: 0,
            rows: 0,
            row: RawRow::new(),
            sink,
        }
    }

    /// For a part of a document that starts inside the document element.
    pub(crate) fn inside_root(sink: S) -> Self {
        let mut asm = Assembler::new(sink);
        asm.roots = 1;
        asm.stack.push(Node::Root);
        asm
    }

    /// The sink, however the document ended (for parts, which the caller checks).
    pub(crate) fn into_sink(self) -> S {
        self.sink
    }

    /// Rows opened so far: the row an error is in.
    pub(crate) fn rows(&self) -> u32 {
        self.rows
    }

    pub(crate) fn start(&mut self, name: &[u8]) -> Result<(), ShapeError> {
        if self.stack.len() >= DEPTH_MAX {
            return Err(ShapeError::TooDeep);
        }
        let node = match self.stack.last() {
            None => {
                if self.roots > 0 {
                    return Err(ShapeError::SecondRoot);
                }
                self.roots += 1;
                Node::Root
            }
            Some(Node::Root) if name == b"row" => {
                if self.rows >= ROWS_MAX {
                    return Err(ShapeError::TooManyRows);
                }
                self.rows += 1;
                self.row.reset(self.rows);
                Node::Row
            }
            Some(Node::Row) => self.child_of(Container::Row, name),
            Some(Node::Container(c)) => self.child_of(*c, name),
            Some(Node::Root | Node::Field(_) | Node::Ignored) => Node::Ignored,
        };
        self.stack.push(node);
        Ok(())
    }

    fn child_of(&mut self, parent: Container, name: &[u8]) -> Node {
        match child(parent, name) {
            Some(Child::Container(c)) => Node::Container(c),
            Some(Child::Field(f)) => {
                let flags = &mut self.row.flags[f.index()];
                if *flags & PRESENT != 0 {
                    *flags |= REPEATED;
                    Node::Ignored
                } else {
                    *flags |= PRESENT;
                    Node::Field(f)
                }
            }
            None => Node::Ignored,
        }
    }

    /// Whether only the document element is open: where rows start.
    pub(crate) fn at_top(&self) -> bool {
        self.stack.len() == 1 && self.stack[0] == Node::Root
    }

    /// Opens a `<row>` for a reader that knows the row's layout (only the document element is
    /// open): as `start(b"row")`.
    pub(crate) fn start_row(&mut self) -> Result<(), ShapeError> {
        debug_assert!(self.at_top());
        if self.rows >= ROWS_MAX {
            return Err(ShapeError::TooManyRows);
        }
        self.rows += 1;
        self.row.reset(self.rows);
        self.stack.push(Node::Row);
        Ok(())
    }

    /// Opens a field's element, first of its kind in the row, for a reader that knows the
    /// row's layout: as `start` with its name. Containers are not tracked: they hold no state.
    pub(crate) fn start_field(&mut self, field: Field) {
        self.row.flags[field.index()] |= PRESENT;
        self.stack.push(Node::Field(field));
    }

    /// A whole `<row>` read at once by a reader that found each field exactly once, with one
    /// run of text each (the layout of nearly every file): the same as the element by element
    /// calls for it, without them.
    pub(crate) fn whole_row(&mut self, values: [&'a str; FIELD_COUNT]) -> Result<(), ShapeError> {
        debug_assert!(self.at_top());
        if self.rows >= ROWS_MAX {
            return Err(ShapeError::TooManyRows);
        }
        self.rows += 1;
        self.row.number = self.rows;
        for (i, value) in values.into_iter().enumerate() {
            if value.len() > FIELD_BYTES_MAX {
                self.row.values[i] = Cow::Borrowed("");
                self.row.flags[i] = PRESENT | TOO_LONG;
            } else {
                self.row.values[i] = Cow::Borrowed(trim_xml_space(value));
                self.row.flags[i] = PRESENT;
            }
        }
        self.sink.row(&self.row);
        Ok(())
    }

    /// Closes the innermost element. The reader has checked that its name matches.
    pub(crate) fn end(&mut self) {
        match self.stack.pop() {
            Some(Node::Field(f)) => self.row.trim(f),
            Some(Node::Row) => self.sink.row(&self.row),
            _ => {}
        }
    }

    /// Whether text now goes into a field (elsewhere it is skipped).
    pub(crate) fn in_field(&self) -> Option<Field> {
        match self.stack.last() {
            Some(Node::Field(f)) => Some(*f),
            _ => None,
        }
    }

    pub(crate) fn text(&mut self, chunk: Cow<'a, str>) {
        if let Some(f) = self.in_field() {
            self.row.append(f, chunk);
        }
    }

    /// An entity or character reference, by the name between `&` and `;`.
    pub(crate) fn reference(&mut self, name: &str) {
        let Some(f) = self.in_field() else {
            return;
        };
        match resolve_reference(name) {
            Resolved::Text(s) => self.row.append(f, Cow::Borrowed(s)),
            Resolved::Char(c) => {
                let mut buf = [0u8; 4];
                let s: &str = c.encode_utf8(&mut buf);
                self.row.append(f, Cow::Owned(s.to_owned()));
            }
            Resolved::Unknown => self.row.flags[f.index()] |= UNKNOWN_ENTITY,
            Resolved::BadChar => self.row.flags[f.index()] |= BAD_CHAR_REF,
        }
    }

    pub(crate) fn finish(self) -> Result<S, EndError> {
        if !self.stack.is_empty() {
            Err(EndError::Unclosed)
        } else if self.roots == 0 {
            Err(EndError::NoElement)
        } else if self.rows == 0 {
            Err(EndError::NoRows)
        } else {
            Ok(self.sink)
        }
    }
}

enum Resolved {
    Text(&'static str),
    Char(char),
    Unknown,
    BadChar,
}

/// The five predefined XML entities and character references; nothing else (a DOCTYPE's own
/// entities are not expanded: a payroll export has no reason to declare any).
fn resolve_reference(name: &str) -> Resolved {
    match name {
        "amp" => return Resolved::Text("&"),
        "lt" => return Resolved::Text("<"),
        "gt" => return Resolved::Text(">"),
        "apos" => return Resolved::Text("'"),
        "quot" => return Resolved::Text("\""),
        _ => {}
    }
    let Some(number) = name.strip_prefix('#') else {
        return Resolved::Unknown;
    };
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    if digits.is_empty()
        || digits.len() > REFERENCE_BYTES_MAX
        || !digits.bytes().all(|b| (b as char).is_digit(radix))
    {
        return Resolved::BadChar;
    }
    match u32::from_str_radix(digits, radix)
        .ok()
        .and_then(char::from_u32)
    {
        Some(c) if is_xml_char(c) => Resolved::Char(c),
        _ => Resolved::BadChar,
    }
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_to_characters_or_are_refused() {
        assert!(matches!(resolve_reference("apos"), Resolved::Text("'")));
        assert!(matches!(resolve_reference("#39"), Resolved::Char('\'')));
        assert!(matches!(resolve_reference("#x27"), Resolved::Char('\'')));
        assert!(matches!(resolve_reference("#x1F600"), Resolved::Char('😀')));
        assert!(matches!(resolve_reference("nbsp"), Resolved::Unknown));
        assert!(matches!(resolve_reference(""), Resolved::Unknown));
        for bad in [
            "#0",
            "#x",
            "#",
            "#xD800",
            "#x110000",
            "#1",
            "#-1",
            "#+1",
            "#X41",
            "#99999999999",
        ] {
            assert!(matches!(resolve_reference(bad), Resolved::BadChar), "{bad}");
        }
    }

    #[test]
    fn trims_xml_whitespace_only() {
        assert_eq!(trim_xml_space("\r\n\t a b \r\n"), "a b");
        assert_eq!(trim_xml_space("\u{a0}x\u{a0}"), "\u{a0}x\u{a0}");
    }
}
