//! The DynamoDB service integrations of Task states (`arn:aws:states:::dynamodb:getItem`,
//! `putItem`, `updateItem`, `deleteItem`) executed on a local [`Table`].
//!
//! The Parameters are those of the DynamoDB API: `TableName`, `Key`/`Item` in DynamoDB JSON
//! (`{"S": ..}`, `{"N": ".."}`, `{"BOOL": ..}`, `{"NULL": true}`, `{"B": base64}`, `{"L": [..]}`,
//! `{"M": {..}}`), `ConditionExpression`, `UpdateExpression`, `ExpressionAttributeNames`,
//! `ExpressionAttributeValues` and `ReturnValues`. Results have the shape AWS returns
//! (`{"Item": ..}` or `{}`, `{}`, `{"Attributes": ..}`), and errors carry the names Step Functions
//! gives them (`DynamoDB.ConditionalCheckFailedException`, …) so that a Catch matches them.
//!
//! The expressions are translated into the port's [`Condition`] and [`UpdateAction`]s, which is
//! the subset the port can execute atomically. Anything else (nested paths, `BETWEEN`, `IN`,
//! `begins_with`, `size`, set types, `DELETE`, `list_append`, …) fails with
//! `DynamoDB.ValidationException` naming the unsupported part, rather than being approximated.
//!
//! An unescaped reserved word (`status`, `count`, …) is rejected, as DynamoDB does.
//!
//! Known differences: `SET a = a + :n` on an item without `a` adds to 0 here (the port's
//! atomic `ADD`), where DynamoDB rejects the update; `UPDATED_NEW` returns every attribute the
//! SET/ADD clauses name, even one an `if_not_exists` left unchanged (moto leaves those out;
//! what DynamoDB does there is not checked).

use std::collections::BTreeMap;
use std::str::FromStr;

use base64::Engine;
use payops_app::ports::table::{PK, SK};
use payops_app::ports::{Condition, Item, Key, Table, TableError, UpdateAction, Value};
use payops_app::resources::{TABLES, TableDef};
use payops_core::asl::resource::DynamoDbOp;
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json, json};

/// The error Step Functions reports when a write's condition is false.
pub const CONDITIONAL_CHECK_FAILED: &str = "DynamoDB.ConditionalCheckFailedException";
/// The error for a malformed or unsupported request (DynamoDB's own name for it).
pub const VALIDATION: &str = "DynamoDB.ValidationException";
/// The error for a table that does not exist locally.
pub const RESOURCE_NOT_FOUND: &str = "DynamoDB.ResourceNotFoundException";
/// The error for a store failure; the caller may retry.
pub const INTERNAL: &str = "DynamoDB.InternalServerErrorException";
/// Nesting limit of `L`/`M` values (DynamoDB's own limit is 32 levels).
pub const VALUE_DEPTH_MAX: usize = 32;
/// DynamoDB's reserved words (its documentation's list, one a line, upper case, sorted): an
/// expression must name such an attribute through `#name`, or DynamoDB rejects it.
const RESERVED_WORDS: &str = include_str!("dynamodb_reserved_words.txt");

fn is_reserved(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    RESERVED_WORDS.lines().any(|w| w == upper)
}

/// Upper bound on an expression's length (DynamoDB's limit is 4 KB).
pub const EXPRESSION_BYTES_MAX: usize = 4096;

/// A failed integration call: the ASL error name and a cause naming the field and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdbError {
    pub error: &'static str,
    pub cause: String,
}

fn invalid(cause: impl Into<String>) -> DdbError {
    DdbError {
        error: VALIDATION,
        cause: cause.into(),
    }
}

fn table_error(e: TableError) -> DdbError {
    match e {
        TableError::ConditionFailed => DdbError {
            error: CONDITIONAL_CHECK_FAILED,
            cause: "The conditional request failed".to_owned(),
        },
        TableError::Invalid(reason) => invalid(reason),
        other => DdbError {
            error: INTERNAL,
            cause: other.to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Tables

/// The catalogue table a `TableName` designates: its logical id (what the local runtime names
/// it and what `Ref: XTable` substitutes), its environment variable, or a table ARN of either.
pub fn local_table(name: &str) -> Option<&'static TableDef> {
    let name = name.rsplit_once(":table/").map_or(name, |(_, n)| n);
    TABLES
        .iter()
        .find(|t| t.logical_id == name || t.env_var == name)
}

/// The `TableName` parameter.
pub fn table_name(parameters: &Json) -> Result<&str, DdbError> {
    parameters
        .get("TableName")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid("TableName must be a string"))
}

// ---------------------------------------------------------------------------------------------
// DynamoDB JSON

/// A value from DynamoDB JSON; `path` names it in errors.
pub fn value_from_json(v: &Json, path: &str) -> Result<Value, DdbError> {
    value_at_depth(v, path, 0)
}

fn value_at_depth(v: &Json, path: &str, depth: usize) -> Result<Value, DdbError> {
    if depth > VALUE_DEPTH_MAX {
        return Err(invalid(format!(
            "{path}: nested deeper than {VALUE_DEPTH_MAX} levels"
        )));
    }
    let obj = v.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        invalid(format!(
            "{path}: expected one type descriptor like {{\"S\": ..}}"
        ))
    })?;
    let (tag, inner) = obj
        .iter()
        .next()
        .expect("the object has exactly one entry (checked above)");
    let bad = |what: &str| invalid(format!("{path}: {tag} must be {what}"));
    match tag.as_str() {
        "S" => inner
            .as_str()
            .map(|s| Value::S(s.to_owned()))
            .ok_or_else(|| bad("a string")),
        "N" => {
            let text = inner.as_str().ok_or_else(|| bad("a number in a string"))?;
            parse_number(text)
                .map(Value::N)
                .ok_or_else(|| invalid(format!("{path}: {text:?} is not a number")))
        }
        "BOOL" => inner
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| bad("true or false")),
        "NULL" => match inner {
            Json::Bool(true) => Ok(Value::Null),
            _ => Err(bad("true")),
        },
        "B" => {
            let text = inner.as_str().ok_or_else(|| bad("a base64 string"))?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Value::B)
                .map_err(|e| invalid(format!("{path}: B is not base64: {e}")))
        }
        "L" => inner
            .as_array()
            .ok_or_else(|| bad("an array"))?
            .iter()
            .enumerate()
            .map(|(i, e)| value_at_depth(e, &format!("{path}[{i}]"), depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::L),
        "M" => inner
            .as_object()
            .ok_or_else(|| bad("an object"))?
            .iter()
            .map(|(k, e)| {
                Ok((
                    k.clone(),
                    value_at_depth(e, &format!("{path}.{k}"), depth + 1)?,
                ))
            })
            .collect::<Result<BTreeMap<_, _>, DdbError>>()
            .map(Value::M),
        "SS" | "NS" | "BS" => Err(invalid(format!(
            "{path}: set type {tag} is not supported by the local table"
        ))),
        other => Err(invalid(format!(
            "{path}: unknown type descriptor {other:?}"
        ))),
    }
}

fn parse_number(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

/// A value as DynamoDB JSON. Numbers are normalised as DynamoDB returns them (`"10.50"` → `"10.5"`).
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::S(s) => json!({ "S": s }),
        Value::N(n) => json!({ "N": n.normalize().to_string() }),
        Value::Bool(b) => json!({ "BOOL": b }),
        Value::Null => json!({ "NULL": true }),
        Value::B(bytes) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(bytes) }),
        Value::L(items) => json!({ "L": items.iter().map(value_to_json).collect::<Vec<_>>() }),
        Value::M(map) => json!({ "M": attributes_to_json(map) }),
    }
}

fn attributes_to_json(map: &BTreeMap<String, Value>) -> Json {
    Json::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// An item as DynamoDB JSON (an object of attribute name → typed value).
pub fn item_to_json(item: &Item) -> Json {
    attributes_to_json(&item.0)
}

/// An item from the `field` parameter (DynamoDB JSON); it must hold the string keys `pk`, `sk`.
pub fn item_from_json(v: &Json, field: &str) -> Result<Item, DdbError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("{field} must be an object of attributes")))?;
    let mut item = Item::default();
    for (name, value) in obj {
        item.0.insert(
            name.clone(),
            value_from_json(value, &format!("{field}.{name}"))?,
        );
    }
    if item.key().is_none() {
        return Err(invalid(format!(
            "{field}: the key attributes {PK:?} and {SK:?} must both be strings (S)"
        )));
    }
    Ok(item)
}

/// The `Key` parameter: exactly the string attributes `pk` and `sk`.
pub fn key_from_json(v: &Json) -> Result<Key, DdbError> {
    let item = item_from_json(v, "Key")?;
    if item.0.len() != 2 {
        return Err(invalid(format!(
            "Key: the provided key element does not match the schema (only {PK:?} and {SK:?})"
        )));
    }
    Ok(item
        .key()
        .expect("item_from_json checked that pk and sk are strings"))
}

// ---------------------------------------------------------------------------------------------
// Expressions: tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An attribute name or a keyword/function name.
    Ident(String),
    /// `#name`
    NameRef(String),
    /// `:value`
    ValueRef(String),
    LParen,
    RParen,
    Comma,
    Op(&'static str),
    Plus,
    Minus,
}

fn tokenize(expr: &str, field: &str) -> Result<Vec<Tok>, DdbError> {
    if expr.len() > EXPRESSION_BYTES_MAX {
        return Err(invalid(format!(
            "{field}: longer than {EXPRESSION_BYTES_MAX} bytes"
        )));
    }
    let chars: Vec<char> = expr.chars().collect();
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '=' => (Tok::Op("="), 1),
            _ if two == "<>" || two == "<=" || two == ">=" => {
                let op = match two.as_str() {
                    "<>" => "<>",
                    "<=" => "<=",
                    _ => ">=",
                };
                (Tok::Op(op), 2)
            }
            '<' => (Tok::Op("<"), 1),
            '>' => (Tok::Op(">"), 1),
            '#' | ':' => {
                let len = chars[i + 1..].iter().take_while(|c| word_char(**c)).count();
                if len == 0 {
                    return Err(invalid(format!("{field}: {c} must be followed by a name")));
                }
                let name: String = chars[i..i + 1 + len].iter().collect();
                let tok = if c == '#' {
                    Tok::NameRef(name)
                } else {
                    Tok::ValueRef(name)
                };
                (tok, 1 + len)
            }
            c if word_char(c) => {
                let len = chars[i..].iter().take_while(|c| word_char(**c)).count();
                (Tok::Ident(chars[i..i + len].iter().collect()), len)
            }
            '.' | '[' => {
                return Err(invalid(format!(
                    "{field}: nested attribute paths are not supported locally"
                )));
            }
            other => return Err(invalid(format!("{field}: unexpected character {other:?}"))),
        };
        tokens.push(tok);
        i += len;
    }
    Ok(tokens)
}

/// Resolves `#name`s and `:value`s of an expression.
pub struct Substitutions<'a> {
    names: Option<&'a Map<String, Json>>,
    values: Option<&'a Map<String, Json>>,
}

impl<'a> Substitutions<'a> {
    /// From the `ExpressionAttributeNames` and `ExpressionAttributeValues` parameters.
    pub fn from_parameters(parameters: &'a Json) -> Result<Self, DdbError> {
        let map = |field: &str| match parameters.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(m)) => Ok(Some(m)),
            Some(_) => Err(invalid(format!("{field} must be an object"))),
        };
        Ok(Substitutions {
            names: map("ExpressionAttributeNames")?,
            values: map("ExpressionAttributeValues")?,
        })
    }

    fn name(&self, reference: &str) -> Result<String, DdbError> {
        self.names
            .and_then(|m| m.get(reference))
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                invalid(format!(
                    "ExpressionAttributeNames: {reference} is used but not defined as a string"
                ))
            })
    }

    fn value(&self, reference: &str) -> Result<Value, DdbError> {
        let v = self.values.and_then(|m| m.get(reference)).ok_or_else(|| {
            invalid(format!(
                "ExpressionAttributeValues: {reference} is used but not defined"
            ))
        })?;
        value_from_json(v, &format!("ExpressionAttributeValues.{reference}"))
    }
}

/// A cursor over tokens with the substitutions at hand.
struct Parser<'a> {
    tokens: Vec<Tok>,
    at: usize,
    subs: &'a Substitutions<'a>,
    field: &'static str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn err(&self, reason: impl std::fmt::Display) -> DdbError {
        invalid(format!("{}: {reason}", self.field))
    }
    fn expect(&mut self, tok: Tok) -> Result<(), DdbError> {
        match self.next() {
            Some(t) if t == tok => Ok(()),
            other => Err(self.err(format!("expected {tok:?}, found {other:?}"))),
        }
    }
    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
    }
    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }
    /// An attribute name: `name` or `#ref`.
    fn path(&mut self) -> Result<String, DdbError> {
        match self.next() {
            Some(Tok::Ident(name)) if is_reserved(&name) => Err(self.err(format!(
                "attribute name {name} is a reserved keyword; use ExpressionAttributeNames \
                 (#{name})"
            ))),
            Some(Tok::Ident(name)) => Ok(name),
            Some(Tok::NameRef(r)) => self.subs.name(&r),
            other => Err(self.err(format!("expected an attribute name, found {other:?}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ConditionExpression

/// One side of a comparison.
enum Operand {
    Path(String),
    Value(Value),
}

/// Parses a `ConditionExpression` into the port's [`Condition`].
pub fn parse_condition(expr: &str, subs: &Substitutions) -> Result<Condition, DdbError> {
    let mut p = Parser {
        tokens: tokenize(expr, "ConditionExpression")?,
        at: 0,
        subs,
        field: "ConditionExpression",
    };
    let condition = or_condition(&mut p)?;
    if !p.done() {
        return Err(p.err(format!("unexpected {:?}", p.peek())));
    }
    Ok(condition)
}

fn or_condition(p: &mut Parser) -> Result<Condition, DdbError> {
    let mut parts = vec![and_condition(p)?];
    while p.keyword("OR") {
        p.next();
        parts.push(and_condition(p)?);
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Condition::Or(parts)
    })
}

fn and_condition(p: &mut Parser) -> Result<Condition, DdbError> {
    let mut parts = vec![unary_condition(p)?];
    while p.keyword("AND") {
        p.next();
        parts.push(unary_condition(p)?);
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Condition::And(parts)
    })
}

fn unary_condition(p: &mut Parser) -> Result<Condition, DdbError> {
    if p.keyword("NOT") {
        p.next();
        return Ok(Condition::Not(Box::new(unary_condition(p)?)));
    }
    if p.peek() == Some(&Tok::LParen) {
        p.next();
        let inner = or_condition(p)?;
        p.expect(Tok::RParen)?;
        return Ok(inner);
    }
    if let Some(Tok::Ident(f)) = p.peek()
        && p.tokens.get(p.at + 1) == Some(&Tok::LParen)
    {
        let f = f.clone();
        return function_condition(p, &f);
    }
    comparison(p)
}

fn function_condition(p: &mut Parser, f: &str) -> Result<Condition, DdbError> {
    let exists = match f {
        "attribute_exists" => true,
        "attribute_not_exists" => false,
        other => return Err(p.err(format!("function {other}() is not supported locally"))),
    };
    p.next();
    p.expect(Tok::LParen)?;
    let path = p.path()?;
    p.expect(Tok::RParen)?;
    // Every stored item has its keys, so a key attribute's existence is the item's.
    let is_key = path == PK || path == SK;
    Ok(match (exists, is_key) {
        (true, true) => Condition::ItemExists,
        (false, true) => Condition::ItemNotExists,
        (true, false) => Condition::AttributeExists(path),
        (false, false) => Condition::AttributeNotExists(path),
    })
}

fn operand(p: &mut Parser) -> Result<Operand, DdbError> {
    match p.peek() {
        Some(Tok::ValueRef(r)) => {
            let r = r.clone();
            p.next();
            Ok(Operand::Value(p.subs.value(&r)?))
        }
        _ => p.path().map(Operand::Path),
    }
}

fn comparison(p: &mut Parser) -> Result<Condition, DdbError> {
    let left = operand(p)?;
    let op = match p.next() {
        Some(Tok::Op(op)) => op,
        Some(Tok::Ident(w)) => {
            return Err(p.err(format!(
                "operator {} is not supported locally",
                w.to_uppercase()
            )));
        }
        other => return Err(p.err(format!("expected a comparison operator, found {other:?}"))),
    };
    let right = operand(p)?;
    // The port compares an attribute with a value; `:v < a` is `a > :v`.
    let (attr, value, op) = match (left, right) {
        (Operand::Path(a), Operand::Value(v)) => (a, v, op),
        (Operand::Value(v), Operand::Path(a)) => (a, v, mirror(op)),
        _ => {
            return Err(
                p.err("only comparisons of an attribute with a :value are supported locally")
            );
        }
    };
    Ok(match op {
        "=" => Condition::Eq(attr, value),
        "<>" => Condition::Ne(attr, value),
        "<" => Condition::Lt(attr, value),
        "<=" => Condition::Le(attr, value),
        ">" => Condition::Gt(attr, value),
        _ => Condition::Ge(attr, value),
    })
}

fn mirror(op: &'static str) -> &'static str {
    match op {
        "<" => ">",
        "<=" => ">=",
        ">" => "<",
        ">=" => "<=",
        same => same,
    }
}

// ---------------------------------------------------------------------------------------------
// UpdateExpression

/// Parses an `UpdateExpression` (`SET`, `ADD` on numbers, `REMOVE`) into [`UpdateAction`]s.
pub fn parse_update(expr: &str, subs: &Substitutions) -> Result<Vec<UpdateAction>, DdbError> {
    let mut p = Parser {
        tokens: tokenize(expr, "UpdateExpression")?,
        at: 0,
        subs,
        field: "UpdateExpression",
    };
    let mut actions = Vec::new();
    while let Some(tok) = p.next() {
        let section = match tok {
            Tok::Ident(w) => w.to_uppercase(),
            other => return Err(p.err(format!("expected SET, ADD or REMOVE, found {other:?}"))),
        };
        loop {
            let action = match section.as_str() {
                "SET" => set_clause(&mut p)?,
                "ADD" => add_clause(&mut p)?,
                "REMOVE" => UpdateAction::Remove(p.path()?),
                other => {
                    return Err(p.err(format!("{other} clauses are not supported locally")));
                }
            };
            let attr = match &action {
                UpdateAction::Set(a, _)
                | UpdateAction::SetIfNotExists(a, _)
                | UpdateAction::Add(a, _)
                | UpdateAction::Remove(a) => a,
            };
            if attr == PK || attr == SK {
                return Err(p.err(format!(
                    "cannot update attribute {attr}: it is part of the key"
                )));
            }
            actions.push(action);
            if p.peek() == Some(&Tok::Comma) {
                p.next();
            } else {
                break;
            }
        }
    }
    if actions.is_empty() {
        return Err(p.err("is empty"));
    }
    Ok(actions)
}

fn number(p: &Parser, v: Value) -> Result<Decimal, DdbError> {
    v.as_n()
        .ok_or_else(|| p.err("an arithmetic operand must be a number (N)"))
}

fn set_clause(p: &mut Parser) -> Result<UpdateAction, DdbError> {
    let target = p.path()?;
    p.expect(Tok::Op("="))?;
    let first = set_operand(p, &target)?;
    let sign = match p.peek() {
        Some(Tok::Plus) => Decimal::ONE,
        Some(Tok::Minus) => Decimal::NEGATIVE_ONE,
        _ => {
            return match first {
                SetOperand::Value(v) => Ok(UpdateAction::Set(target, v)),
                SetOperand::IfNotExists(v) => Ok(UpdateAction::SetIfNotExists(target, v)),
                SetOperand::SelfPath => {
                    Err(p.err(format!("SET {target} = {target} changes nothing")))
                }
            };
        }
    };
    p.next();
    let second = set_operand(p, &target)?;
    // `a = a + :n`, `a = :n + a` and `a = a - :n` are the port's atomic ADD.
    let delta = match (first, second) {
        (SetOperand::SelfPath, SetOperand::Value(v)) => number(p, v)? * sign,
        (SetOperand::Value(v), SetOperand::SelfPath) if sign == Decimal::ONE => number(p, v)?,
        _ => {
            return Err(p.err(format!(
                "SET {target} = …: only {target} + :n, :n + {target} and {target} - :n are \
                 supported locally as arithmetic"
            )));
        }
    };
    Ok(UpdateAction::Add(target, delta))
}

enum SetOperand {
    Value(Value),
    /// The attribute being set.
    SelfPath,
    /// `if_not_exists(target, :v)`
    IfNotExists(Value),
}

fn set_operand(p: &mut Parser, target: &str) -> Result<SetOperand, DdbError> {
    match p.peek().cloned() {
        Some(Tok::ValueRef(r)) => {
            p.next();
            Ok(SetOperand::Value(p.subs.value(&r)?))
        }
        Some(Tok::Ident(f)) if p.tokens.get(p.at + 1) == Some(&Tok::LParen) => {
            if f != "if_not_exists" {
                return Err(p.err(format!("function {f}() is not supported locally")));
            }
            p.next();
            p.next();
            let path = p.path()?;
            if path != target {
                return Err(p.err(format!(
                    "if_not_exists({path}, …) is supported locally only on the attribute being \
                     set ({target})"
                )));
            }
            p.expect(Tok::Comma)?;
            let v = match p.next() {
                Some(Tok::ValueRef(r)) => p.subs.value(&r)?,
                other => return Err(p.err(format!("expected a :value, found {other:?}"))),
            };
            p.expect(Tok::RParen)?;
            Ok(SetOperand::IfNotExists(v))
        }
        _ => {
            let path = p.path()?;
            if path != target {
                return Err(p.err(format!(
                    "SET {target} = {path}: copying another attribute is not supported locally"
                )));
            }
            Ok(SetOperand::SelfPath)
        }
    }
}

fn add_clause(p: &mut Parser) -> Result<UpdateAction, DdbError> {
    let target = p.path()?;
    let v = match p.next() {
        Some(Tok::ValueRef(r)) => p.subs.value(&r)?,
        other => return Err(p.err(format!("ADD {target}: expected a :value, found {other:?}"))),
    };
    match v {
        Value::N(n) => Ok(UpdateAction::Add(target, n)),
        _ => Err(p.err(format!(
            "ADD {target}: only numbers are supported locally (sets are not)"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// What `ReturnValues` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnValues {
    None,
    AllNew,
    UpdatedNew,
    AllOld,
}

fn return_values(parameters: &Json, allowed: &[ReturnValues]) -> Result<ReturnValues, DdbError> {
    let rv = match parameters.get("ReturnValues").and_then(Json::as_str) {
        None | Some("NONE") => ReturnValues::None,
        Some("ALL_NEW") => ReturnValues::AllNew,
        Some("UPDATED_NEW") => ReturnValues::UpdatedNew,
        Some("ALL_OLD") => ReturnValues::AllOld,
        Some(other) => {
            return Err(invalid(format!(
                "ReturnValues {other:?} is not supported locally"
            )));
        }
    };
    if rv != ReturnValues::None && !allowed.contains(&rv) {
        return Err(invalid(format!(
            "ReturnValues {rv:?} is not supported locally for this operation"
        )));
    }
    Ok(rv)
}

fn condition(parameters: &Json, subs: &Substitutions) -> Result<Option<Condition>, DdbError> {
    match parameters.get("ConditionExpression") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(expr)) => parse_condition(expr, subs).map(Some),
        Some(_) => Err(invalid("ConditionExpression must be a string")),
    }
}

/// The attributes an update touched, as they are after it (`UPDATED_NEW`).
fn updated(item: &Item, actions: &[UpdateAction]) -> BTreeMap<String, Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            UpdateAction::Set(n, _)
            | UpdateAction::SetIfNotExists(n, _)
            | UpdateAction::Add(n, _) => item.get(n).map(|v| (n.clone(), v.clone())),
            UpdateAction::Remove(_) => None,
        })
        .collect()
}

/// Executes one DynamoDB integration call on `table` and returns AWS's response shape.
pub async fn execute(
    table: &dyn Table,
    op: DynamoDbOp,
    parameters: &Json,
) -> Result<Json, DdbError> {
    let subs = Substitutions::from_parameters(parameters)?;
    let field = |name: &str| {
        parameters
            .get(name)
            .ok_or_else(|| invalid(format!("{name} is required")))
    };
    match op {
        DynamoDbOp::GetItem => {
            let key = key_from_json(field("Key")?)?;
            let item = table.get(&key).await.map_err(table_error)?;
            Ok(item.map_or_else(|| json!({}), |i| json!({ "Item": item_to_json(&i) })))
        }
        DynamoDbOp::PutItem => {
            let item = item_from_json(field("Item")?, "Item")?;
            return_values(parameters, &[])?;
            let condition = condition(parameters, &subs)?;
            table.put(item, condition).await.map_err(table_error)?;
            Ok(json!({}))
        }
        DynamoDbOp::UpdateItem => {
            let key = key_from_json(field("Key")?)?;
            let expr = field("UpdateExpression")?
                .as_str()
                .ok_or_else(|| invalid("UpdateExpression must be a string"))?;
            let actions = parse_update(expr, &subs)?;
            let rv = return_values(
                parameters,
                &[ReturnValues::AllNew, ReturnValues::UpdatedNew],
            )?;
            let condition = condition(parameters, &subs)?;
            let after = table
                .update(&key, actions.clone(), condition)
                .await
                .map_err(table_error)?;
            Ok(match rv {
                ReturnValues::AllNew => json!({ "Attributes": item_to_json(&after) }),
                ReturnValues::UpdatedNew => {
                    json!({ "Attributes": attributes_to_json(&updated(&after, &actions)) })
                }
                _ => json!({}),
            })
        }
        DynamoDbOp::DeleteItem => {
            let key = key_from_json(field("Key")?)?;
            let rv = return_values(parameters, &[ReturnValues::AllOld])?;
            let condition = condition(parameters, &subs)?;
            let before = table.delete(&key, condition).await.map_err(table_error)?;
            Ok(match (rv, before) {
                (ReturnValues::AllOld, Some(item)) => json!({ "Attributes": item_to_json(&item) }),
                _ => json!({}),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(v: &Json) -> Substitutions<'_> {
        Substitutions::from_parameters(v).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn dynamodb_json_round_trips_every_supported_type() {
        let j = json!({"M": {
            "s": {"S": "x"}, "n": {"N": "10.50"}, "b": {"BOOL": true}, "z": {"NULL": true},
            "bin": {"B": "AAE="}, "l": {"L": [{"N": "1"}, {"S": "y"}]}
        }});
        let v = value_from_json(&j, "v").unwrap();
        let Value::M(m) = &v else { panic!("{v:?}") };
        assert_eq!(m["n"], Value::N(dec("10.50")));
        assert_eq!(m["bin"], Value::B(vec![0, 1]));
        let back = value_to_json(&v);
        assert_eq!(
            back["M"]["n"],
            json!({"N": "10.5"}),
            "numbers come back normalised"
        );
        assert_eq!(back["M"]["l"], j["M"]["l"]);
        assert_eq!(back["M"]["bin"], j["M"]["bin"]);
    }

    #[test]
    fn bad_dynamodb_json_names_the_field_and_reason() {
        let e = value_from_json(&json!({"N": "ten"}), "Item.amount").unwrap_err();
        assert_eq!(e.error, VALIDATION);
        assert!(
            e.cause.contains("Item.amount") && e.cause.contains("ten"),
            "{e:?}"
        );
        let e = value_from_json(&json!({"SS": ["a"]}), "Item.tags").unwrap_err();
        assert!(e.cause.contains("SS"), "{e:?}");
        let e = value_from_json(&json!({"S": "a", "N": "1"}), "Item.x").unwrap_err();
        assert!(e.cause.contains("one type descriptor"), "{e:?}");
        let e = value_from_json(&json!("plain"), "Item.x").unwrap_err();
        assert!(e.cause.contains("Item.x"), "{e:?}");
    }

    #[test]
    fn a_key_holds_exactly_the_string_pk_and_sk() {
        let k = key_from_json(&json!({"pk": {"S": "A"}, "sk": {"S": "B"}})).unwrap();
        assert_eq!(k, Key::new("A", "B"));
        assert!(key_from_json(&json!({"pk": {"S": "A"}})).is_err());
        assert!(key_from_json(&json!({"pk": {"N": "1"}, "sk": {"S": "B"}})).is_err());
        let e = key_from_json(&json!({"pk": {"S": "A"}, "sk": {"S": "B"}, "x": {"S": "C"}}))
            .unwrap_err();
        assert!(e.cause.contains("schema"), "{e:?}");
    }

    #[test]
    fn conditions_parse_with_precedence_names_and_values() {
        let p = json!({
            "ExpressionAttributeNames": {"#s": "status", "#c": "count"},
            "ExpressionAttributeValues": {":open": {"S": "OPEN"}, ":n": {"N": "5"}}
        });
        let c = parse_condition(
            "attribute_not_exists(pk) OR #s = :open AND NOT (#c >= :n)",
            &subs(&p),
        )
        .unwrap();
        assert_eq!(
            c,
            Condition::Or(vec![
                Condition::ItemNotExists,
                Condition::And(vec![
                    Condition::eq("status", "OPEN"),
                    Condition::Not(Box::new(Condition::ge("count", 5i64))),
                ]),
            ])
        );
        // A value on the left is mirrored.
        let c = parse_condition(":n < #c", &subs(&p)).unwrap();
        assert_eq!(c, Condition::gt("count", 5i64));
        assert_eq!(
            parse_condition("attribute_exists(x) and x <> :n", &subs(&p)).unwrap(),
            Condition::And(vec![Condition::exists("x"), Condition::ne("x", 5i64)])
        );
    }

    #[test]
    fn unsupported_or_undefined_parts_of_a_condition_are_named() {
        let p = json!({"ExpressionAttributeValues": {":a": {"S": "x"}}});
        for (expr, needle) in [
            ("begins_with(pk, :a)", "begins_with"),
            ("x BETWEEN :a AND :a", "BETWEEN"),
            ("a.b = :a", "nested"),
            ("x = :missing", ":missing"),
            ("#x = :a", "#x"),
            ("x = y", "attribute with a :value"),
            ("x = :a)", "unexpected"),
            ("status = :a", "reserved keyword"),
        ] {
            let e = parse_condition(expr, &subs(&p)).unwrap_err();
            assert_eq!(e.error, VALIDATION);
            assert!(e.cause.contains(needle), "{expr}: {e:?}");
        }
    }

    #[test]
    fn updates_parse_set_if_not_exists_arithmetic_add_and_remove() {
        let p = json!({
            "ExpressionAttributeNames": {
                "#c": "count", "#s": "status", "#t": "total", "#o": "other", "#l": "lock"
            },
            "ExpressionAttributeValues": {
                ":s": {"S": "DONE"}, ":z": {"N": "0"}, ":one": {"N": "1"}, ":amt": {"N": "2.5"}
            }
        });
        let actions = parse_update(
            "SET #s = :s, created = if_not_exists(created, :z), #c = #c + :one, \
             #t = #t - :amt, #o = :one + #o ADD hits :one REMOVE #l, lease",
            &subs(&p),
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![
                UpdateAction::set("status", "DONE"),
                UpdateAction::set_if_not_exists("created", 0i64),
                UpdateAction::add("count", Decimal::ONE),
                UpdateAction::add("total", dec("-2.5")),
                UpdateAction::add("other", Decimal::ONE),
                UpdateAction::add("hits", Decimal::ONE),
                UpdateAction::remove("lock"),
                UpdateAction::remove("lease"),
            ]
        );
    }

    #[test]
    fn unsupported_updates_are_named() {
        let p = json!({"ExpressionAttributeValues": {":s": {"S": "x"}, ":n": {"N": "1"}}});
        for (expr, needle) in [
            ("DELETE tags :s", "DELETE"),
            ("SET a = list_append(a, :s)", "list_append"),
            ("SET a = if_not_exists(b, :n)", "if_not_exists(b"),
            ("SET a = b + :n", "copying"),
            ("SET a = a + :s", "number"),
            ("ADD a :s", "only numbers"),
            ("SET pk = :s", "part of the key"),
            ("REMOVE items", "reserved keyword"),
            ("", "empty"),
        ] {
            let e = parse_update(expr, &subs(&p)).unwrap_err();
            assert!(e.cause.contains(needle), "{expr}: {e:?}");
        }
    }

    #[test]
    fn table_names_resolve_by_logical_id_env_var_or_arn() {
        assert_eq!(
            local_table("PayrollTable").unwrap().logical_id,
            "PayrollTable"
        );
        assert_eq!(local_table("DEBTS_TABLE").unwrap().logical_id, "DebtsTable");
        assert_eq!(
            local_table("arn:aws:dynamodb:us-east-1:1:table/ReconTable")
                .unwrap()
                .logical_id,
            "ReconTable"
        );
        assert!(local_table("NoSuchTable").is_none());
    }
}
