//! Choice rules: comparisons, type tests and And/Or/Not, parsed strictly and evaluated exactly.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::env::Env;
use super::errors::Failure;
use super::number::compare as compare_numbers;
use super::path::Path;

/// Deepest And/Or/Not nesting accepted in one rule.
pub const RULE_DEPTH_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeTest {
    IsPresent,
    IsNull,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        variable: Path,
        kind: Kind,
        cmp: Cmp,
        operand: Operand,
    },
    /// `StringMatches` with `*` wildcards; `\*` and `\\` are literal.
    Matches {
        variable: Path,
        pattern: String,
    },
    Test {
        variable: Path,
        test: TypeTest,
        expected: bool,
    },
}

const COMPARISONS: &[(&str, Kind, Cmp)] = &[
    ("StringEquals", Kind::String, Cmp::Equals),
    ("StringLessThan", Kind::String, Cmp::LessThan),
    ("StringGreaterThan", Kind::String, Cmp::GreaterThan),
    ("StringLessThanEquals", Kind::String, Cmp::LessThanEquals),
    (
        "StringGreaterThanEquals",
        Kind::String,
        Cmp::GreaterThanEquals,
    ),
    ("NumericEquals", Kind::Numeric, Cmp::Equals),
    ("NumericLessThan", Kind::Numeric, Cmp::LessThan),
    ("NumericGreaterThan", Kind::Numeric, Cmp::GreaterThan),
    ("NumericLessThanEquals", Kind::Numeric, Cmp::LessThanEquals),
    (
        "NumericGreaterThanEquals",
        Kind::Numeric,
        Cmp::GreaterThanEquals,
    ),
    ("BooleanEquals", Kind::Boolean, Cmp::Equals),
    ("TimestampEquals", Kind::Timestamp, Cmp::Equals),
    ("TimestampLessThan", Kind::Timestamp, Cmp::LessThan),
    ("TimestampGreaterThan", Kind::Timestamp, Cmp::GreaterThan),
    (
        "TimestampLessThanEquals",
        Kind::Timestamp,
        Cmp::LessThanEquals,
    ),
    (
        "TimestampGreaterThanEquals",
        Kind::Timestamp,
        Cmp::GreaterThanEquals,
    ),
];

const TESTS: &[(&str, TypeTest)] = &[
    ("IsPresent", TypeTest::IsPresent),
    ("IsNull", TypeTest::IsNull),
    ("IsNumeric", TypeTest::IsNumeric),
    ("IsString", TypeTest::IsString),
    ("IsBoolean", TypeTest::IsBoolean),
    ("IsTimestamp", TypeTest::IsTimestamp),
];

/// Parses an RFC 3339 timestamp as Step Functions requires it: an uppercase `T` between date
/// and time, and an uppercase `Z` or a numeric offset.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    let bytes = text.as_bytes();
    if bytes.get(10) != Some(&b'T') || text.ends_with('z') {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok()
}

impl Condition {
    /// Parses one rule object (without its `Next`, which the caller removes for top-level
    /// rules). Errors name the offending field.
    pub fn parse(rule: &Map<String, Value>) -> Result<Condition, String> {
        parse_rule(rule, 0)
    }

    pub fn eval(&self, env: &Env<'_>) -> Result<bool, Failure> {
        match self {
            Condition::And(all) => {
                for c in all {
                    if !c.eval(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Or(any) => {
                for c in any {
                    if c.eval(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(c) => Ok(!c.eval(env)?),
            Condition::Test {
                variable,
                test,
                expected,
            } => {
                let value = env.select(variable);
                let actual = match (test, value.as_deref()) {
                    (TypeTest::IsPresent, v) => v.is_some(),
                    (_, None) => return Err(missing_variable(variable)),
                    (TypeTest::IsNull, Some(v)) => v.is_null(),
                    (TypeTest::IsNumeric, Some(v)) => v.is_number(),
                    (TypeTest::IsString, Some(v)) => v.is_string(),
                    (TypeTest::IsBoolean, Some(v)) => v.is_boolean(),
                    (TypeTest::IsTimestamp, Some(v)) => {
                        v.as_str().and_then(parse_timestamp).is_some()
                    }
                };
                Ok(actual == *expected)
            }
            Condition::Matches { variable, pattern } => {
                let value = env
                    .select(variable)
                    .ok_or_else(|| missing_variable(variable))?;
                Ok(value.as_str().is_some_and(|s| wildcard_match(pattern, s)))
            }
            Condition::Compare {
                variable,
                kind,
                cmp,
                operand,
            } => {
                let value = env
                    .select(variable)
                    .ok_or_else(|| missing_variable(variable))?;
                let other = match operand {
                    Operand::Literal(v) => std::borrow::Cow::Borrowed(v),
                    Operand::Path(p) => env.select(p).ok_or_else(|| missing_variable(p))?,
                };
                Ok(compare(*kind, &value, &other).is_some_and(|o| cmp_holds(*cmp, o)))
            }
        }
    }
}

fn missing_variable(path: &Path) -> Failure {
    Failure::runtime(format!(
        "Invalid path '{path}': the choice state's condition path references an invalid value"
    ))
}

fn cmp_holds(cmp: Cmp, o: Ordering) -> bool {
    match cmp {
        Cmp::Equals => o == Ordering::Equal,
        Cmp::LessThan => o == Ordering::Less,
        Cmp::GreaterThan => o == Ordering::Greater,
        Cmp::LessThanEquals => o != Ordering::Greater,
        Cmp::GreaterThanEquals => o != Ordering::Less,
    }
}

/// `None` when either side is not of the operator's type: the rule is then simply false.
fn compare(kind: Kind, a: &Value, b: &Value) -> Option<Ordering> {
    match (kind, a, b) {
        (Kind::String, Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Kind::Numeric, Value::Number(x), Value::Number(y)) => Some(compare_numbers(x, y)),
        (Kind::Boolean, Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Kind::Timestamp, Value::String(x), Value::String(y)) => {
            Some(parse_timestamp(x)?.cmp(&parse_timestamp(y)?))
        }
        _ => None,
    }
}

/// Glob match where `*` matches any run of characters; `\*` is a literal star, `\\` a backslash.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Star,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => toks.push(Tok::Char(chars.next().unwrap_or('\\'))),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy with backtracking to the last star: linear in practice, no recursion.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Star)
}

fn parse_rule(rule: &Map<String, Value>, depth: usize) -> Result<Condition, String> {
    if depth > RULE_DEPTH_MAX {
        return Err(format!("rules are nested more than {RULE_DEPTH_MAX} deep"));
    }
    for boolean in ["And", "Or", "Not"] {
        if let Some(v) = rule.get(boolean) {
            if let Some(extra) = rule.keys().find(|k| *k != boolean && *k != "Comment") {
                return Err(format!("'{boolean}' cannot be combined with '{extra}'"));
            }
            return parse_boolean(boolean, v, depth);
        }
    }
    let variable_text = rule
        .get("Variable")
        .ok_or("a rule needs 'Variable' (or 'And', 'Or', 'Not')")?
        .as_str()
        .ok_or("'Variable' must be a string")?;
    let variable = Path::parse(variable_text).map_err(|e| format!("'Variable': {e}"))?;
    let operators: Vec<&String> = rule
        .keys()
        .filter(|k| *k != "Variable" && *k != "Comment")
        .collect();
    let [op] = operators.as_slice() else {
        return Err(if operators.is_empty() {
            "a rule needs a comparison operator".into()
        } else {
            format!(
                "a rule has exactly one comparison operator, found {}",
                operators
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    };
    let value = &rule[op.as_str()];
    parse_operator(op, value, variable)
}

fn parse_boolean(name: &str, v: &Value, depth: usize) -> Result<Condition, String> {
    if name == "Not" {
        let inner = v.as_object().ok_or("'Not' must hold one rule object")?;
        return parse_rule(inner, depth + 1)
            .map(|c| Condition::Not(Box::new(c)))
            .map_err(|e| format!("Not: {e}"));
    }
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("'{name}' must be a non-empty array of rules"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or_else(|| format!("{name}[{i}] must be a rule object"))?;
        if obj.contains_key("Next") {
            return Err(format!("{name}[{i}]: nested rules cannot have 'Next'"));
        }
        out.push(parse_rule(obj, depth + 1).map_err(|e| format!("{name}[{i}]: {e}"))?);
    }
    Ok(if name == "And" {
        Condition::And(out)
    } else {
        Condition::Or(out)
    })
}

fn parse_operator(op: &str, value: &Value, variable: Path) -> Result<Condition, String> {
    if let Some((_, test)) = TESTS.iter().find(|(n, _)| *n == op) {
        let expected = value
            .as_bool()
            .ok_or_else(|| format!("'{op}' must be true or false"))?;
        return Ok(Condition::Test {
            variable,
            test: *test,
            expected,
        });
    }
    if op == "StringMatches" {
        let pattern = value
            .as_str()
            .ok_or("'StringMatches' must be a string pattern")?;
        return Ok(Condition::Matches {
            variable,
            pattern: pattern.to_owned(),
        });
    }
    let (base, is_path) = match op.strip_suffix("Path") {
        Some(b) => (b, true),
        None => (op, false),
    };
    let (_, kind, cmp) = COMPARISONS
        .iter()
        .find(|(n, ..)| *n == base)
        .ok_or_else(|| format!("unknown comparison operator '{op}'"))?;
    let operand = if is_path {
        let text = value
            .as_str()
            .ok_or_else(|| format!("'{op}' must be a path string"))?;
        Operand::Path(Path::parse(text).map_err(|e| format!("'{op}': {e}"))?)
    } else {
        check_literal(op, *kind, value)?;
        Operand::Literal(value.clone())
    };
    Ok(Condition::Compare {
        variable,
        kind: *kind,
        cmp: *cmp,
        operand,
    })
}

fn check_literal(op: &str, kind: Kind, value: &Value) -> Result<(), String> {
    let ok = match kind {
        Kind::String => value.is_string(),
        Kind::Numeric => value.is_number(),
        Kind::Boolean => value.is_boolean(),
        Kind::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
    };
    if ok {
        return Ok(());
    }
    let wanted = match kind {
        Kind::String => "a string",
        Kind::Numeric => "a number",
        Kind::Boolean => "true or false",
        Kind::Timestamp => "an RFC 3339 timestamp such as 2024-01-31T12:00:00Z",
    };
    Err(format!("'{op}' must be {wanted}, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::entropy::SeededEntropy;
    use serde_json::json;

    fn check(rule: Value, input: Value) -> Result<bool, Failure> {
        let entropy = SeededEntropy::new(1);
        let ctx = json!({});
        let cond = Condition::parse(rule.as_object().expect("rule object")).expect("rule parses");
        cond.eval(&Env::new(&input, &ctx, &entropy))
    }

    fn yes(rule: Value, input: Value) -> bool {
        check(rule, input).expect("evaluates")
    }

    #[test]
    fn comparisons() {
        let input =
            json!({"s": "b", "n": 10, "m": 10.0, "t": "2024-01-01T00:00:00Z", "f": true, "o": "a"});
        assert!(yes(
            json!({"Variable": "$.s", "StringEquals": "b"}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.s", "StringGreaterThan": "a"}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.s", "StringGreaterThanPath": "$.o"}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.n", "NumericEqualsPath": "$.m"}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.n", "NumericLessThanEquals": 10}),
            input.clone()
        ));
        assert!(!yes(
            json!({"Variable": "$.n", "NumericLessThan": 10}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.n", "NumericGreaterThan": 9.99}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.f", "BooleanEquals": true}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.t", "TimestampLessThan": "2024-01-01T00:00:01+00:00"}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.t", "TimestampEquals": "2024-01-01T01:00:00+01:00"}),
            input.clone()
        ));
        // Type mismatch is false, not an error.
        assert!(!yes(
            json!({"Variable": "$.n", "StringEquals": "10"}),
            input.clone()
        ));
        assert!(!yes(
            json!({"Variable": "$.s", "TimestampEquals": "2024-01-01T00:00:00Z"}),
            input
        ));
    }

    #[test]
    fn type_tests_and_booleans() {
        let input = json!({"x": null, "n": 1, "t": "2024-02-29T10:00:00.5Z", "bad": "2024-02-29t10:00:00Z"});
        assert!(yes(
            json!({"Variable": "$.x", "IsNull": true}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.x", "IsPresent": true}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.y", "IsPresent": false}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.n", "IsNumeric": true}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.n", "IsString": false}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.t", "IsTimestamp": true}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.bad", "IsTimestamp": false}),
            input.clone()
        ));
        assert!(yes(
            json!({"Variable": "$.x", "IsBoolean": false}),
            input.clone()
        ));
        assert!(yes(
            json!({"And": [{"Variable": "$.n", "NumericEquals": 1}, {"Not": {"Variable": "$.x", "IsNull": false}}]}),
            input.clone()
        ));
        assert!(yes(
            json!({"Or": [{"Variable": "$.n", "NumericEquals": 2}, {"Variable": "$.n", "NumericEquals": 1}]}),
            input.clone()
        ));
        let err = check(json!({"Variable": "$.y", "IsNull": true}), input).expect_err("missing");
        assert_eq!(err.error, "States.Runtime");
    }

    #[test]
    fn string_matches() {
        assert!(wildcard_match("*.log", "app.log"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match(r"a\*b", "a*b"));
        assert!(!wildcard_match(r"a\*b", "axb"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match(r"c:\\*", r"c:\dir"));
        assert!(yes(
            json!({"Variable": "$.f", "StringMatches": "log-*.csv"}),
            json!({"f": "log-2024.csv"})
        ));
    }

    #[test]
    fn parse_errors() {
        let bad =
            |v: Value| Condition::parse(v.as_object().expect("object")).expect_err("invalid rule");
        assert!(bad(json!({"Variable": "$.a", "StringEquals": 1})).contains("StringEquals"));
        assert!(bad(json!({"Variable": "$.a", "NumericFoo": 1})).contains("NumericFoo"));
        assert!(bad(json!({"Variable": "$.a"})).contains("operator"));
        assert!(
            bad(json!({"Variable": "$.a", "IsNull": true, "IsString": true}))
                .contains("exactly one")
        );
        assert!(bad(json!({"And": []})).contains("non-empty"));
        assert!(
            bad(json!({"And": [{"Variable": "$.a", "IsNull": true, "Next": "X"}]}))
                .contains("Next")
        );
        assert!(bad(json!({"Variable": "a", "IsNull": true})).contains("Variable"));
        assert!(
            bad(json!({"Variable": "$.a", "TimestampEquals": "2024-01-01"})).contains("RFC 3339")
        );
    }
}
