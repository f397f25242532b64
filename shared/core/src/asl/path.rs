//! The JSONPath dialect of the Amazon States Language.
//!
//! Paths start at `$` (the state's input) or `$$` (the context object). A *reference path* —
//! what `ResultPath` and Choice variables may use — names one node with `.field`, `['field']`
//! and `[index]` only. Other path fields (InputPath, OutputPath, `.$` payload fields, ItemsPath)
//! may also use the indefinite forms Step Functions accepts from Jayway JsonPath: `*`, `..`,
//! slices, unions and `?()` filters; an indefinite path selects a JSON array of its matches.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

use super::number::{compare as compare_numbers, json_equal};

/// Longest path text accepted; a definition is limited in size, so this only stops abuse.
pub const PATH_TEXT_MAX: usize = 4096;
/// Deepest filter-expression nesting accepted (parentheses and `!`).
const FILTER_DEPTH_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path '{text}': {reason}")]
pub struct PathError {
    pub text: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `$`: the effective input of the state.
    Input,
    /// `$$`: the context object.
    Context,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Field(String),
    /// A negative index counts from the end, as in Jayway.
    Index(i64),
    Wildcard,
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: i64,
    },
    Fields(Vec<String>),
    Indexes(Vec<i64>),
    /// `..x`: the inner segment applied to the node and every descendant.
    Descendant(Box<Segment>),
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `@.a.b`: true when the relative path exists.
    Exists(Vec<Segment>),
    Compare(FilterOperand, CompareOp, FilterOperand),
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterOperand {
    Current(Vec<Segment>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed path. Keeps its text for error messages and history.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let err = |reason: &str| PathError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.len() > PATH_TEXT_MAX {
            return Err(err("path is too long"));
        }
        let (root, rest) = if let Some(r) = text.strip_prefix("$$") {
            (Root::Context, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (Root::Input, r)
        } else {
            return Err(err("a path must start with '$' or '$$'"));
        };
        let mut parser = Parser {
            text: rest,
            pos: 0,
            depth: 0,
        };
        let segments = parser.segments(false).map_err(|r| err(&r))?;
        if parser.pos != rest.len() {
            return Err(err(&format!(
                "unexpected '{}' at offset {}",
                &rest[parser.pos..],
                text.len() - rest.len() + parser.pos
            )));
        }
        Ok(Path {
            text: text.to_owned(),
            root,
            segments,
        })
    }

    /// Parses a path that must be a reference path (one node, no `$$` unless `allow_context`).
    pub fn parse_reference(text: &str, allow_context: bool) -> Result<Path, PathError> {
        let path = Path::parse(text)?;
        if !path.is_reference() {
            return Err(PathError {
                text: text.to_owned(),
                reason: "a reference path may only use '.field', \"['field']\" and '[index]'"
                    .into(),
            });
        }
        if path.root == Root::Context && !allow_context {
            return Err(PathError {
                text: text.to_owned(),
                reason: "the context object '$$' cannot be used here".into(),
            });
        }
        Ok(path)
    }

    pub fn root_input() -> Path {
        Path {
            text: "$".into(),
            root: Root::Input,
            segments: Vec::new(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }
    pub fn root(&self) -> Root {
        self.root
    }
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// `$` alone: selects the whole input.
    pub fn is_root(&self) -> bool {
        self.root == Root::Input && self.segments.is_empty()
    }

    /// Only `.field`, `['field']` and non-negative `[index]`.
    pub fn is_reference(&self) -> bool {
        self.segments.iter().all(|s| match s {
            Segment::Field(_) => true,
            Segment::Index(i) => *i >= 0,
            _ => false,
        })
    }

    /// Selects at most one node (no wildcard, slice, union, filter or descent).
    pub fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// Evaluates the path against `doc` (the node `$` or `$$` stands for). A definite path gives
    /// the node or `None` when it does not exist; an indefinite one gives an array of matches.
    pub fn select<'a>(&self, doc: &'a Value) -> Option<Cow<'a, Value>> {
        select_segments(&self.segments, self.is_definite(), doc)
    }

    /// Writes `value` at this reference path inside `doc`, creating missing objects on the way.
    /// Fails (naming the step) when an intermediate node is not an object, or an index is
    /// outside an existing array.
    pub fn set(&self, doc: &mut Value, value: Value) -> Result<(), String> {
        if !self.is_reference() {
            return Err(format!("'{}' is not a reference path", self.text));
        }
        let mut node = doc;
        for (i, segment) in self.segments.iter().enumerate() {
            let last = i + 1 == self.segments.len();
            node = match segment {
                Segment::Field(name) => {
                    let Value::Object(map) = node else {
                        return Err(format!(
                            "cannot set field '{name}' of a {} at '{}'",
                            type_name(node),
                            self.prefix_text(i)
                        ));
                    };
                    map.entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                }
                Segment::Index(index) => {
                    let kind = type_name(node);
                    let Value::Array(items) = node else {
                        return Err(format!(
                            "cannot index a {kind} at '{}'",
                            self.prefix_text(i)
                        ));
                    };
                    let len = items.len();
                    usize::try_from(*index)
                        .ok()
                        .and_then(|ix| items.get_mut(ix))
                        .ok_or_else(|| {
                            format!("index {index} is outside the array of {len} items")
                        })?
                }
                // is_reference() above rules the other segments out.
                _ => return Err(format!("'{}' is not a reference path", self.text)),
            };
            if last {
                *node = value;
                return Ok(());
            }
        }
        *node = value;
        Ok(())
    }

    /// A readable prefix of the path up to segment `n` (for error messages).
    fn prefix_text(&self, n: usize) -> String {
        let mut out = String::from(match self.root {
            Root::Input => "$",
            Root::Context => "$$",
        });
        for s in &self.segments[..n] {
            match s {
                Segment::Field(f) => {
                    out.push('.');
                    out.push_str(f);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                _ => out.push_str("[…]"),
            }
        }
        out
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Evaluates a segment list. `definite` selects the single-node mode.
pub fn select_segments<'a>(
    segments: &[Segment],
    definite: bool,
    doc: &'a Value,
) -> Option<Cow<'a, Value>> {
    if definite {
        let mut node = doc;
        for s in segments {
            node = step_definite(s, node)?;
        }
        return Some(Cow::Borrowed(node));
    }
    let mut current: Vec<&'a Value> = vec![doc];
    for s in segments {
        let mut next = Vec::new();
        for node in current {
            apply(s, node, &mut next);
        }
        current = next;
    }
    Some(Cow::Owned(Value::Array(
        current.into_iter().cloned().collect(),
    )))
}

fn step_definite<'a>(segment: &Segment, node: &'a Value) -> Option<&'a Value> {
    match segment {
        Segment::Field(name) => node.as_object()?.get(name),
        Segment::Index(i) => {
            let items = node.as_array()?;
            items.get(resolve_index(*i, items.len())?)
        }
        _ => None,
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    if i >= 0 {
        usize::try_from(i).ok().filter(|ix| *ix < len)
    } else {
        let back = usize::try_from(i.unsigned_abs()).ok()?;
        len.checked_sub(back)
    }
}

fn apply<'a>(segment: &Segment, node: &'a Value, out: &mut Vec<&'a Value>) {
    match segment {
        Segment::Field(_) | Segment::Index(_) => out.extend(step_definite(segment, node)),
        Segment::Wildcard => match node {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Segment::Fields(names) => {
            if let Value::Object(map) = node {
                out.extend(names.iter().filter_map(|n| map.get(n)));
            }
        }
        Segment::Indexes(indexes) => {
            if let Value::Array(items) = node {
                out.extend(
                    indexes
                        .iter()
                        .filter_map(|i| resolve_index(*i, items.len()).map(|ix| &items[ix])),
                );
            }
        }
        Segment::Slice { start, end, step } => {
            if let Value::Array(items) = node {
                slice(items, *start, *end, *step, out);
            }
        }
        Segment::Descendant(inner) => descend(inner, node, out),
        Segment::Filter(filter) => match node {
            Value::Array(items) => out.extend(items.iter().filter(|i| filter_matches(filter, i))),
            Value::Object(_) if filter_matches(filter, node) => out.push(node),
            _ => {}
        },
    }
}

fn slice<'a>(
    items: &'a [Value],
    start: Option<i64>,
    end: Option<i64>,
    step: i64,
    out: &mut Vec<&'a Value>,
) {
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let clamp = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
    let from = clamp(start.unwrap_or(0));
    let to = clamp(end.unwrap_or(len));
    let step = usize::try_from(step.max(1)).unwrap_or(1);
    let mut i = from;
    while i < to {
        if let Some(v) = usize::try_from(i).ok().and_then(|ix| items.get(ix)) {
            out.push(v);
        }
        i = i.saturating_add(i64::try_from(step).unwrap_or(i64::MAX));
    }
}

fn descend<'a>(inner: &Segment, node: &'a Value, out: &mut Vec<&'a Value>) {
    apply(inner, node, out);
    match node {
        Value::Array(items) => items.iter().for_each(|c| descend(inner, c, out)),
        Value::Object(map) => map.values().for_each(|c| descend(inner, c, out)),
        _ => {}
    }
}

fn filter_matches(filter: &Filter, current: &Value) -> bool {
    match filter {
        Filter::Or(a, b) => filter_matches(a, current) || filter_matches(b, current),
        Filter::And(a, b) => filter_matches(a, current) && filter_matches(b, current),
        Filter::Not(a) => !filter_matches(a, current),
        Filter::Exists(segments) => relative(segments, current).is_some(),
        Filter::Compare(left, op, right) => {
            let (Some(l), Some(r)) = (operand(left, current), operand(right, current)) else {
                return false;
            };
            compare_values(&l, *op, &r)
        }
    }
}

fn relative<'a>(segments: &[Segment], current: &'a Value) -> Option<Cow<'a, Value>> {
    let definite = segments
        .iter()
        .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)));
    select_segments(segments, definite, current)
}

fn operand<'a>(op: &'a FilterOperand, current: &'a Value) -> Option<Cow<'a, Value>> {
    match op {
        FilterOperand::Current(segments) => relative(segments, current),
        FilterOperand::Literal(v) => Some(Cow::Borrowed(v)),
    }
}

fn compare_values(l: &Value, op: CompareOp, r: &Value) -> bool {
    let ordering = match (l, r) {
        (Value::Number(a), Value::Number(b)) => Some(compare_numbers(a, b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        CompareOp::Eq => json_equal(l, r),
        CompareOp::Ne => !json_equal(l, r),
        CompareOp::Lt => ordering == Some(Ordering::Less),
        CompareOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        CompareOp::Gt => ordering == Some(Ordering::Greater),
        CompareOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
    }
}

/// A hand-written recursive-descent parser over the text after `$`/`$$`/`@`.
struct Parser<'t> {
    text: &'t str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Segments until the text ends or (inside a filter) a character that ends an operand.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Ok(out),
                Some('.') => {
                    self.pos += 1;
                    if self.eat(".") {
                        let inner = if self.peek() == Some('[') {
                            self.pos += 1;
                            self.bracket()?
                        } else {
                            self.dotted()?
                        };
                        out.push(Segment::Descendant(Box::new(inner)));
                    } else {
                        out.push(self.dotted()?);
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    out.push(self.bracket()?);
                }
                Some(_) if in_filter => return Ok(out),
                Some(c) => return Err(format!("unexpected character '{c}'")),
            }
        }
    }

    fn dotted(&mut self) -> Result<Segment, String> {
        if self.eat("*") {
            return Ok(Segment::Wildcard);
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_name_char(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if self.pos == start {
            return Err("expected a field name after '.'".into());
        }
        Ok(Segment::Field(self.text[start..self.pos].to_owned()))
    }

    /// After `[`: a quoted name (list), `*`, an index, a slice, an index list or a filter.
    fn bracket(&mut self) -> Result<Segment, String> {
        self.skip_ws();
        let segment = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some('\'' | '"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.eat(",") {
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Segment::Field(names.remove(0))
                } else {
                    Segment::Fields(names)
                }
            }
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                if !self.eat("(") {
                    return Err("expected '(' after '?'".into());
                }
                let filter = self.filter_or()?;
                self.skip_ws();
                if !self.eat(")") {
                    return Err("expected ')' to close the filter".into());
                }
                Segment::Filter(Box::new(filter))
            }
            Some(c) if c == ':' || c == '-' || c.is_ascii_digit() => self.numeric_bracket()?,
            Some(c) => return Err(format!("unexpected '{c}' after '['")),
            None => return Err("unclosed '['".into()),
        };
        self.skip_ws();
        if !self.eat("]") {
            return Err("expected ']'".into());
        }
        Ok(segment)
    }

    fn numeric_bracket(&mut self) -> Result<Segment, String> {
        let first = self.opt_int()?;
        self.skip_ws();
        if self.peek() == Some(':') {
            self.pos += 1;
            self.skip_ws();
            let end = self.opt_int()?;
            self.skip_ws();
            let step = if self.eat(":") {
                self.skip_ws();
                self.opt_int()?.unwrap_or(1)
            } else {
                1
            };
            if step <= 0 {
                return Err("a slice step must be positive".into());
            }
            return Ok(Segment::Slice {
                start: first,
                end,
                step,
            });
        }
        let first = first.ok_or("expected an index")?;
        let mut indexes = vec![first];
        while self.eat(",") {
            self.skip_ws();
            indexes.push(self.opt_int()?.ok_or("expected an index after ','")?);
            self.skip_ws();
        }
        Ok(if indexes.len() == 1 {
            Segment::Index(first)
        } else {
            Segment::Indexes(indexes)
        })
    }

    fn opt_int(&mut self) -> Result<Option<i64>, String> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text = &self.text[start..self.pos];
        if text.is_empty() {
            return Ok(None);
        }
        text.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("'{text}' is not a valid index"))
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.bump().ok_or("expected a quoted name")?;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err("unterminated quoted name".into()),
                Some('\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some(c) if c == quote => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn filter_or(&mut self) -> Result<Filter, String> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.eat("||") {
                let right = self.filter_and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_and(&mut self) -> Result<Filter, String> {
        let mut left = self.filter_unary()?;
        loop {
            self.skip_ws();
            if self.eat("&&") {
                let right = self.filter_unary()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_unary(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > FILTER_DEPTH_MAX {
            return Err("filter is nested too deeply".into());
        }
        self.skip_ws();
        let result = if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            self.filter_unary().map(|f| Filter::Not(Box::new(f)))
        } else if self.eat("(") {
            let inner = self.filter_or()?;
            self.skip_ws();
            if !self.eat(")") {
                return Err("expected ')' in filter".into());
            }
            Ok(inner)
        } else {
            self.filter_comparison()
        };
        self.depth -= 1;
        result
    }

    fn filter_comparison(&mut self) -> Result<Filter, String> {
        let left = self.filter_operand()?;
        self.skip_ws();
        let op = [
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<=", CompareOp::Le),
            (">=", CompareOp::Ge),
            ("<", CompareOp::Lt),
            (">", CompareOp::Gt),
        ]
        .into_iter()
        .find(|(s, _)| self.rest().starts_with(s));
        let Some((text, op)) = op else {
            return match left {
                FilterOperand::Current(segments) => Ok(Filter::Exists(segments)),
                FilterOperand::Literal(_) => Err("a filter needs '@' or a comparison".into()),
            };
        };
        self.pos += text.len();
        self.skip_ws();
        let right = self.filter_operand()?;
        Ok(Filter::Compare(left, op, right))
    }

    fn filter_operand(&mut self) -> Result<FilterOperand, String> {
        self.skip_ws();
        match self.peek() {
            Some('@') => {
                self.pos += 1;
                Ok(FilterOperand::Current(self.segments(true)?))
            }
            Some('\'' | '"') => Ok(FilterOperand::Literal(Value::String(self.quoted()?))),
            Some(_) => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
                {
                    self.pos += 1;
                }
                let word = &self.text[start..self.pos];
                serde_json::from_str::<Value>(word)
                    .ok()
                    .filter(|v| !v.is_object() && !v.is_array() && !v.is_string())
                    .map(FilterOperand::Literal)
                    .ok_or_else(|| format!("'{word}' is not a filter operand"))
            }
            None => Err("expected a filter operand".into()),
        }
    }
}

fn is_name_char(c: char) -> bool {
    !(c.is_whitespace()
        || matches!(
            c,
            '.' | '['
                | ']'
                | '('
                | ')'
                | '\''
                | '"'
                | ','
                | '='
                | '<'
                | '>'
                | '!'
                | '&'
                | '|'
                | '@'
                | '$'
                | '*'
                | '?'
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, doc: &Value) -> Option<Value> {
        Path::parse(path)
            .expect("test path parses")
            .select(doc)
            .map(Cow::into_owned)
    }

    #[test]
    fn definite_paths() {
        let doc = json!({"a": {"b": [10, 20, {"c": "x"}]}, "we ird": 1});
        assert_eq!(sel("$", &doc), Some(doc.clone()));
        assert_eq!(sel("$.a.b[1]", &doc), Some(json!(20)));
        assert_eq!(sel("$.a.b[-1].c", &doc), Some(json!("x")));
        assert_eq!(sel("$['we ird']", &doc), Some(json!(1)));
        assert_eq!(sel("$.a[\"b\"][0]", &doc), Some(json!(10)));
        assert_eq!(sel("$.a.missing", &doc), None);
        assert_eq!(sel("$.a.b[7]", &doc), None);
    }

    #[test]
    fn indefinite_paths() {
        let doc = json!({"items": [{"id": 1, "p": 5}, {"id": 2, "p": 15}, {"p": 20}]});
        assert_eq!(sel("$.items[*].id", &doc), Some(json!([1, 2])));
        assert_eq!(sel("$..id", &doc), Some(json!([1, 2])));
        assert_eq!(sel("$.items[0:2].p", &doc), Some(json!([5, 15])));
        assert_eq!(sel("$.items[-1:].p", &doc), Some(json!([20])));
        assert_eq!(sel("$.items[0,2].p", &doc), Some(json!([5, 20])));
        assert_eq!(sel("$.items[?(@.p > 10)].p", &doc), Some(json!([15, 20])));
        assert_eq!(sel("$.items[?(@.id)].id", &doc), Some(json!([1, 2])));
        assert_eq!(
            sel("$.items[?(@.p >= 15 && !(@.id == 2))].p", &doc),
            Some(json!([20]))
        );
        assert_eq!(sel("$.items[?(@.id == 9)]", &doc), Some(json!([])));
        assert_eq!(
            sel("$.items[?(@.q == 'z' || @.p < 6)].id", &doc),
            Some(json!([1]))
        );
    }

    #[test]
    fn rejects_bad_paths_with_reason() {
        for bad in [
            "a.b",
            "$.",
            "$[",
            "$.a[1",
            "$.a b",
            "$['x",
            "$[?(@.a ==)]",
            "$.a[0:1:0]",
        ] {
            let e = Path::parse(bad).expect_err(bad);
            assert_eq!(e.text, bad);
            assert!(!e.reason.is_empty());
        }
        assert!(Path::parse_reference("$.a[*]", false).is_err());
        assert!(Path::parse_reference("$$.Execution.Id", false).is_err());
        assert!(Path::parse_reference("$$.Execution.Id", true).is_ok());
    }

    #[test]
    fn set_creates_and_replaces() {
        let mut doc = json!({"a": {"keep": 1}, "list": [1, 2]});
        Path::parse("$.a.b.c")
            .expect("parses")
            .set(&mut doc, json!(5))
            .expect("sets");
        Path::parse("$.list[1]")
            .expect("parses")
            .set(&mut doc, json!("two"))
            .expect("sets");
        assert_eq!(
            doc,
            json!({"a": {"keep": 1, "b": {"c": 5}}, "list": [1, "two"]})
        );
        let err = Path::parse("$.a.keep.x")
            .expect("parses")
            .set(&mut doc, json!(0));
        assert!(err.expect_err("number has no fields").contains("$.a.keep"));
        assert!(
            Path::parse("$.list[5]")
                .expect("parses")
                .set(&mut doc, json!(0))
                .is_err()
        );
        Path::parse("$")
            .expect("parses")
            .set(&mut doc, json!(1))
            .expect("sets");
        assert_eq!(doc, json!(1));
    }
}
