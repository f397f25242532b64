//! Intrinsic functions (`States.Format(…)` and friends) used in `.$` payload fields.
//! Parsed once when the definition loads; evaluated per state entry.

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

use super::entropy::{SeededEntropy, below, uuid_v4};
use super::env::Env;
use super::errors::Failure;
use super::number::{self, json_equal};
use super::path::{Path, type_name};

/// Step Functions allows at most 10 nested intrinsic calls in one field.
pub const NESTING_MAX: usize = 10;
/// Longest string `States.Base64Encode`, `States.Base64Decode` and `States.Hash` accept.
pub const STRING_INPUT_CHARS_MAX: usize = 10_000;
/// Most items `States.ArrayRange` may produce.
pub const ARRAY_RANGE_ITEMS_MAX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

const FUNCS: &[(&str, Func, usize, usize)] = &[
    ("States.Format", Func::Format, 1, usize::MAX),
    ("States.StringToJson", Func::StringToJson, 1, 1),
    ("States.JsonToString", Func::JsonToString, 1, 1),
    ("States.Array", Func::Array, 0, usize::MAX),
    ("States.ArrayPartition", Func::ArrayPartition, 2, 2),
    ("States.ArrayContains", Func::ArrayContains, 2, 2),
    ("States.ArrayRange", Func::ArrayRange, 3, 3),
    ("States.ArrayGetItem", Func::ArrayGetItem, 2, 2),
    ("States.ArrayLength", Func::ArrayLength, 1, 1),
    ("States.ArrayUnique", Func::ArrayUnique, 1, 1),
    ("States.Base64Encode", Func::Base64Encode, 1, 1),
    ("States.Base64Decode", Func::Base64Decode, 1, 1),
    ("States.Hash", Func::Hash, 2, 2),
    ("States.JsonMerge", Func::JsonMerge, 3, 3),
    ("States.MathRandom", Func::MathRandom, 2, 3),
    ("States.MathAdd", Func::MathAdd, 2, 2),
    ("States.StringSplit", Func::StringSplit, 2, 2),
    ("States.UUID", Func::Uuid, 0, 0),
];

const HASH_ALGORITHMS: &[&str] = &["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"];

impl Func {
    pub fn name(self) -> &'static str {
        FUNCS
            .iter()
            .find(|(_, f, _, _)| *f == self)
            .map_or("States.?", |(n, _, _, _)| n)
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A literal; `raw` keeps a string literal's text with `\{` `\}` escapes for `States.Format`.
    Literal {
        value: Value,
        raw: Option<String>,
    },
    Path(Path),
    Call(Box<Intrinsic>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    pub func: Func,
    pub args: Vec<Arg>,
}

/// Whether a `.$` value is an intrinsic call rather than a path.
pub fn looks_like_intrinsic(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Intrinsic {
    /// Parses `States.Name(args…)`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Intrinsic, String> {
        let mut p = Scanner { text, pos: 0 };
        p.skip_ws();
        let call = p.call(0)?;
        p.skip_ws();
        if p.pos != text.len() {
            return Err(format!(
                "unexpected '{}' after the intrinsic call",
                &text[p.pos..]
            ));
        }
        Ok(call)
    }

    /// Whether any argument, at any depth, is a path starting with `$$.Task.Token`.
    pub fn references_task_token(&self) -> bool {
        self.args.iter().any(|a| match a {
            Arg::Path(p) => p.text().starts_with("$$.Task.Token"),
            Arg::Call(c) => c.references_task_token(),
            Arg::Literal { .. } => false,
        })
    }

    pub fn eval(&self, env: &Env<'_>) -> Result<Value, Failure> {
        let args = self
            .args
            .iter()
            .map(|a| eval_arg(a, env))
            .collect::<Result<Vec<Value>, Failure>>()?;
        apply(self.func, &self.args, args, env)
    }
}

fn eval_arg(arg: &Arg, env: &Env<'_>) -> Result<Value, Failure> {
    match arg {
        Arg::Literal { value, .. } => Ok(value.clone()),
        Arg::Path(p) => env.select(p).map(|v| v.into_owned()).ok_or_else(|| {
            Failure::runtime(format!(
                "the JSONPath '{p}' used as an intrinsic function argument could not be found in the input"
            ))
        }),
        Arg::Call(c) => c.eval(env),
    }
}

struct Scanner<'t> {
    text: &'t str,
    pos: usize,
}

impl Scanner<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn call(&mut self, depth: usize) -> Result<Intrinsic, String> {
        if depth >= NESTING_MAX {
            return Err(format!(
                "intrinsic functions are nested more than {NESTING_MAX} deep"
            ));
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            self.pos += 1;
        }
        let name = &self.text[start..self.pos];
        let (_, func, min, max) = FUNCS
            .iter()
            .find(|(n, ..)| *n == name)
            .ok_or_else(|| format!("unknown intrinsic function '{name}'"))?;
        self.skip_ws();
        if !self.rest().starts_with('(') {
            return Err(format!("expected '(' after {name}"));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.rest().starts_with(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                args.push(self.arg(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => return Err(format!("unexpected '{c}' in the arguments of {name}")),
                    None => return Err(format!("missing ')' to close {name}")),
                }
            }
        }
        if args.len() < *min || args.len() > *max {
            let expected = if min == max {
                format!("{min}")
            } else if *max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!(
                "{name} takes {expected} argument(s), got {}",
                args.len()
            ));
        }
        check_literals(*func, &args)?;
        Ok(Intrinsic { func: *func, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, String> {
        match self.peek() {
            Some('\'') => self.string_literal(),
            Some('$') => self.path_arg(),
            Some('S') if self.rest().starts_with("States.") => {
                Ok(Arg::Call(Box::new(self.call(depth + 1)?)))
            }
            Some(_) => self.word_literal(),
            None => Err("missing argument".into()),
        }
    }

    fn string_literal(&mut self) -> Result<Arg, String> {
        self.pos += 1;
        let mut value = String::new();
        let mut raw = String::new();
        loop {
            let c = self.peek().ok_or("unterminated string literal")?;
            self.pos += c.len_utf8();
            match c {
                '\\' => {
                    let e = self.peek().ok_or("unterminated escape in string literal")?;
                    self.pos += e.len_utf8();
                    value.push(e);
                    // Keep brace escapes visible to States.Format; drop the others.
                    if e == '{' || e == '}' || e == '\\' {
                        raw.push('\\');
                    }
                    raw.push(e);
                }
                '\'' => break,
                c => {
                    value.push(c);
                    raw.push(c);
                }
            }
        }
        Ok(Arg::Literal {
            value: Value::String(value),
            raw: Some(raw),
        })
    }

    /// A path runs to the next `,` or `)` outside brackets and quotes.
    fn path_arg(&mut self) -> Result<Arg, String> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), '\\') => self.pos += 1,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']') => depth = depth.saturating_sub(1),
                (None, ')') if depth == 0 => break,
                (None, ')') => depth -= 1,
                (None, ',') if depth == 0 => break,
                _ => {}
            }
            self.pos += c.len_utf8();
        }
        let text = self.text[start..self.pos].trim_end();
        Path::parse(text).map(Arg::Path).map_err(|e| e.to_string())
    }

    fn word_literal(&mut self) -> Result<Arg, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !matches!(c, ',' | ')') && !c.is_whitespace())
        {
            self.pos += 1;
        }
        let word = &self.text[start..self.pos];
        match serde_json::from_str::<Value>(word) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Literal {
                value: v,
                raw: None,
            }),
            _ => Err(format!(
                "'{word}' is not a valid intrinsic function argument"
            )),
        }
    }
}

/// Load-time checks of literal arguments, so that a definition with
/// `States.Hash($.x, 'MD4')` is rejected before it runs.
fn check_literals(func: Func, args: &[Arg]) -> Result<(), String> {
    let literal = |i: usize| match args.get(i) {
        Some(Arg::Literal { value, .. }) => Some(value),
        _ => None,
    };
    match func {
        Func::Hash => {
            if let Some(v) = literal(1) {
                hash_algorithm(v).map_err(|f| f.cause)?;
            }
        }
        Func::JsonMerge => {
            if let Some(v) = literal(2) {
                deep_flag(v).map_err(|f| f.cause)?;
            }
        }
        Func::Format => {
            if let Some(v) = literal(0)
                && !v.is_string()
            {
                return Err("States.Format needs a string template as its first argument".into());
            }
        }
        _ => {}
    }
    Ok(())
}

fn fail(func: Func, what: impl fmt::Display) -> Failure {
    Failure::intrinsic(format!("{func}: {what}"))
}

fn want_str(func: Func, v: &Value, what: &str) -> Result<String, Failure> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(fail(
            func,
            format!("{what} must be a string, got {}", type_name(other)),
        )),
    }
}

fn want_array(func: Func, v: Value, what: &str) -> Result<Vec<Value>, Failure> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(fail(
            func,
            format!("{what} must be an array, got {}", type_name(&other)),
        )),
    }
}

fn want_int(func: Func, v: &Value, what: &str) -> Result<i128, Failure> {
    match v {
        Value::Number(n) => number::to_i128(n)
            .ok_or_else(|| fail(func, format!("{what} must be an integer, got {n}"))),
        other => Err(fail(
            func,
            format!("{what} must be an integer, got {}", type_name(other)),
        )),
    }
}

fn hash_algorithm(v: &Value) -> Result<&str, Failure> {
    match v.as_str() {
        Some(a) if HASH_ALGORITHMS.contains(&a) => Ok(a),
        _ => Err(fail(
            Func::Hash,
            format!(
                "the algorithm must be one of {}, got {v}",
                HASH_ALGORITHMS.join(", ")
            ),
        )),
    }
}

fn deep_flag(v: &Value) -> Result<(), Failure> {
    match v {
        Value::Bool(false) => Ok(()),
        Value::Bool(true) => Err(fail(
            Func::JsonMerge,
            "only shallow merging is supported; the third argument must be false",
        )),
        other => Err(fail(
            Func::JsonMerge,
            format!(
                "the third argument must be the boolean false, got {}",
                type_name(other)
            ),
        )),
    }
}

fn check_len(func: Func, s: &str) -> Result<(), Failure> {
    if s.chars().count() > STRING_INPUT_CHARS_MAX {
        return Err(fail(
            func,
            format!("the input is longer than {STRING_INPUT_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

fn apply(func: Func, raw_args: &[Arg], args: Vec<Value>, env: &Env<'_>) -> Result<Value, Failure> {
    let mut it = args.into_iter();
    let mut next = || it.next().unwrap_or(Value::Null);
    match func {
        Func::Format => {
            let template_value = next();
            let template = match raw_args.first() {
                Some(Arg::Literal { raw: Some(raw), .. }) => raw.clone(),
                _ => want_str(func, &template_value, "the template")?,
            };
            let rest: Vec<Value> = std::iter::from_fn(|| it.next()).collect();
            format(&template, &rest)
        }
        Func::StringToJson => {
            let s = want_str(func, &next(), "the argument")?;
            serde_json::from_str::<Value>(&s)
                .map_err(|e| fail(func, format!("the string is not valid JSON: {e}")))
        }
        Func::JsonToString => serde_json::to_string(&next())
            .map(Value::String)
            .map_err(|e| fail(func, e)),
        Func::Array => Ok(Value::Array(it.collect())),
        Func::ArrayPartition => {
            let items = want_array(func, next(), "the first argument")?;
            let size = want_int(func, &next(), "the chunk size")?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| fail(func, "the chunk size must be a positive integer"))?;
            Ok(Value::Array(
                items
                    .chunks(size)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        Func::ArrayContains => {
            let items = want_array(func, next(), "the first argument")?;
            let needle = next();
            Ok(Value::Bool(items.iter().any(|i| json_equal(i, &needle))))
        }
        Func::ArrayRange => array_range(
            want_int(func, &next(), "the start")?,
            want_int(func, &next(), "the end")?,
            want_int(func, &next(), "the step")?,
        ),
        Func::ArrayGetItem => {
            let items = want_array(func, next(), "the first argument")?;
            let index = want_int(func, &next(), "the index")?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or_else(|| {
                    fail(
                        func,
                        format!(
                            "index {index} is outside the array of {} items",
                            items.len()
                        ),
                    )
                })
        }
        Func::ArrayLength => {
            let items = want_array(func, next(), "the argument")?;
            Ok(Value::Number(number::from_i128(items.len() as i128)))
        }
        Func::ArrayUnique => {
            let items = want_array(func, next(), "the argument")?;
            let mut out: Vec<Value> = Vec::with_capacity(items.len());
            for i in items {
                if !out.iter().any(|o| json_equal(o, &i)) {
                    out.push(i);
                }
            }
            Ok(Value::Array(out))
        }
        Func::Base64Encode => {
            let s = want_str(func, &next(), "the argument")?;
            check_len(func, &s)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            ))
        }
        Func::Base64Decode => {
            let s = want_str(func, &next(), "the argument")?;
            check_len(func, &s)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| fail(func, format!("the argument is not valid base64: {e}")))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| fail(func, "the decoded data is not UTF-8 text"))
        }
        Func::Hash => {
            let data = want_str(func, &next(), "the data")?;
            check_len(func, &data)?;
            let algorithm = next();
            Ok(Value::String(hash(hash_algorithm(&algorithm)?, &data)))
        }
        Func::JsonMerge => {
            let (a, b, deep) = (next(), next(), next());
            deep_flag(&deep)?;
            match (a, b) {
                (Value::Object(mut a), Value::Object(b)) => {
                    a.extend(b);
                    Ok(Value::Object(a))
                }
                (a, b) => Err(fail(
                    func,
                    format!(
                        "both arguments must be objects, got {} and {}",
                        type_name(&a),
                        type_name(&b)
                    ),
                )),
            }
        }
        Func::MathRandom => {
            let start = want_int(func, &next(), "the start")?;
            let end = want_int(func, &next(), "the end")?;
            let seed = it.next();
            math_random(start, end, seed.as_ref(), env)
        }
        Func::MathAdd => math_add(&next(), &next()),
        Func::StringSplit => {
            let s = want_str(func, &next(), "the string")?;
            let delimiters = want_str(func, &next(), "the splitter")?;
            Ok(Value::Array(
                s.split(|c| delimiters.contains(c))
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect(),
            ))
        }
        Func::Uuid => Ok(Value::String(uuid_v4(env.entropy).to_string())),
    }
}

/// `{}` placeholders, `\{` and `\}` literal braces.
fn format(template: &str, args: &[Value]) -> Result<Value, Failure> {
    let func = Func::Format;
    let mut out = String::with_capacity(template.len());
    let mut args_iter = args.iter();
    let mut used = 0usize;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => out.push(e),
                None => out.push('\\'),
            },
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                let arg = args_iter.next().ok_or_else(|| {
                    fail(
                        func,
                        format!(
                            "the template has more '{{}}' placeholders than the {} argument(s)",
                            args.len()
                        ),
                    )
                })?;
                used += 1;
                match arg {
                    Value::String(s) => out.push_str(s),
                    Value::Number(n) => out.push_str(n.as_str()),
                    Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                    Value::Null => out.push_str("null"),
                    other => {
                        return Err(fail(
                            func,
                            format!(
                                "argument {used} is an {}; only strings, numbers, booleans and null can be formatted",
                                type_name(other)
                            ),
                        ));
                    }
                }
            }
            c => out.push(c),
        }
    }
    if used != args.len() {
        return Err(fail(
            func,
            format!(
                "the template has {used} '{{}}' placeholder(s) but {} argument(s) were given",
                args.len()
            ),
        ));
    }
    Ok(Value::String(out))
}

fn array_range(start: i128, end: i128, step: i128) -> Result<Value, Failure> {
    let func = Func::ArrayRange;
    if step == 0 {
        return Err(fail(func, "the step must not be 0"));
    }
    let span = end - start;
    if (span > 0 && step < 0) || (span < 0 && step > 0) {
        return Ok(Value::Array(Vec::new()));
    }
    let count = span / step + 1;
    if count > ARRAY_RANGE_ITEMS_MAX as i128 {
        return Err(fail(
            func,
            format!(
                "the range would have {count} items; at most {ARRAY_RANGE_ITEMS_MAX} are allowed"
            ),
        ));
    }
    Ok(Value::Array(
        (0..count)
            .map(|i| Value::Number(number::from_i128(start + i * step)))
            .collect(),
    ))
}

fn math_random(
    start: i128,
    end: i128,
    seed: Option<&Value>,
    env: &Env<'_>,
) -> Result<Value, Failure> {
    let func = Func::MathRandom;
    if end <= start {
        return Err(fail(
            func,
            format!("the end ({end}) must be greater than the start ({start})"),
        ));
    }
    let span = u128::try_from(end - start).map_err(|_| fail(func, "the range is too large"))?;
    let offset = match seed {
        Some(seed) => {
            let seed = want_int(func, seed, "the seed")?;
            // A seed fixes the result, as documented: same seed, same number.
            below(&SeededEntropy::new(seed as u64), span)
        }
        None => below(env.entropy, span),
    };
    let offset = i128::try_from(offset).map_err(|_| fail(func, "the range is too large"))?;
    Ok(Value::Number(number::from_i128(start + offset)))
}

fn math_add(a: &Value, b: &Value) -> Result<Value, Failure> {
    let func = Func::MathAdd;
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return Err(fail(
            func,
            format!(
                "both arguments must be numbers, got {} and {}",
                type_name(a),
                type_name(b)
            ),
        ));
    };
    if let (Some(i), Some(j)) = (number::to_i128(x), number::to_i128(y)) {
        return i
            .checked_add(j)
            .map(|s| Value::Number(number::from_i128(s)))
            .ok_or_else(|| fail(func, "the sum overflows"));
    }
    let (Some(dx), Some(dy)) = (number::to_decimal(x), number::to_decimal(y)) else {
        return Err(fail(func, format!("{x} and {y} cannot be added exactly")));
    };
    dx.checked_add(dy)
        .and_then(number::from_decimal)
        .map(Value::Number)
        .ok_or_else(|| fail(func, "the sum overflows"))
}

fn hash(algorithm: &str, data: &str) -> String {
    // md-5 and sha1 are on digest 0.11, sha2 on 0.10: each call names its own trait.
    use sha2::Digest as _;
    let bytes = data.as_bytes();
    match algorithm {
        "MD5" => hex::encode(<md5::Md5 as md5::Digest>::digest(bytes)),
        "SHA-1" => hex::encode(<sha1::Sha1 as sha1::Digest>::digest(bytes)),
        "SHA-384" => hex::encode(sha2::Sha384::digest(bytes)),
        "SHA-512" => hex::encode(sha2::Sha512::digest(bytes)),
        _ => hex::encode(sha2::Sha256::digest(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::entropy::SeededEntropy;
    use serde_json::json;

    fn run(expr: &str, input: Value) -> Result<Value, Failure> {
        let entropy = SeededEntropy::new(42);
        let ctx = json!({"Execution": {"Id": "exec-1"}});
        let env = Env::new(&input, &ctx, &entropy);
        Intrinsic::parse(expr)
            .expect("test expression parses")
            .eval(&env)
    }

    fn ok(expr: &str, input: Value) -> Value {
        run(expr, input).expect("evaluates")
    }

    #[test]
    fn format_and_strings() {
        assert_eq!(
            ok(
                "States.Format('Hello {}, you are {} ({})', $.name, $.age, $$.Execution.Id)",
                json!({"name": "Ana", "age": 30})
            ),
            json!("Hello Ana, you are 30 (exec-1)")
        );
        assert_eq!(
            ok(r"States.Format('a \{\} {} it\'s', true)", json!({})),
            json!("a {} true it's")
        );
        assert!(run("States.Format('{} {}', 1)", json!({})).is_err());
        assert!(run("States.Format('{}', $.o)", json!({"o": {}})).is_err());
        assert_eq!(
            ok("States.StringSplit('1,2;;3', ',;')", json!({})),
            json!(["1", "2", "3"])
        );
        assert_eq!(
            ok("States.StringToJson($.s)", json!({"s": "{\"a\":[1]}"})),
            json!({"a": [1]})
        );
        assert_eq!(
            ok("States.JsonToString($.o)", json!({"o": {"a": 1}})),
            json!("{\"a\":1}")
        );
        let bad = run("States.StringToJson('{x')", json!({})).expect_err("invalid JSON");
        assert_eq!(bad.error, "States.IntrinsicFailure");
    }

    #[test]
    fn arrays() {
        assert_eq!(
            ok("States.Array(1, 'a', $.x, null)", json!({"x": [true]})),
            json!([1, "a", [true], null])
        );
        assert_eq!(
            ok(
                "States.ArrayPartition($.a, 2)",
                json!({"a": [1, 2, 3, 4, 5]})
            ),
            json!([[1, 2], [3, 4], [5]])
        );
        assert_eq!(
            ok("States.ArrayContains($.a, 2.0)", json!({"a": [1, 2]})),
            json!(true)
        );
        assert_eq!(
            ok("States.ArrayRange(1, 9, 2)", json!({})),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            ok("States.ArrayRange(5, 1, -2)", json!({})),
            json!([5, 3, 1])
        );
        assert!(run("States.ArrayRange(1, 2000, 1)", json!({})).is_err());
        assert_eq!(
            ok("States.ArrayGetItem($.a, 1)", json!({"a": [1, 2]})),
            json!(2)
        );
        assert!(run("States.ArrayGetItem($.a, 5)", json!({"a": [1]})).is_err());
        assert_eq!(
            ok("States.ArrayLength($.a)", json!({"a": [1, 2, 3]})),
            json!(3)
        );
        assert_eq!(
            ok("States.ArrayUnique($.a)", json!({"a": [1, 2, 1, 1.0, "1"]})),
            json!([1, 2, "1"])
        );
    }

    #[test]
    fn encoding_and_hashing() {
        assert_eq!(
            ok("States.Base64Encode('Data to encode')", json!({})),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            ok("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", json!({})),
            json!("Data to encode")
        );
        assert_eq!(
            ok("States.Hash('abc', 'MD5')", json!({})),
            json!("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            ok("States.Hash('abc', 'SHA-1')", json!({})),
            json!("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            ok("States.Hash('abc', 'SHA-256')", json!({})),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert!(Intrinsic::parse("States.Hash('abc', 'MD4')").is_err());
    }

    #[test]
    fn json_merge_math_uuid() {
        assert_eq!(
            ok(
                "States.JsonMerge($.a, $.b, false)",
                json!({"a": {"x": 1, "n": {"p": 1}}, "b": {"n": {"q": 2}}})
            ),
            json!({"x": 1, "n": {"q": 2}})
        );
        assert!(Intrinsic::parse("States.JsonMerge($.a, $.b, true)").is_err());
        assert_eq!(ok("States.MathAdd($.v, -1)", json!({"v": 111})), json!(110));
        assert_eq!(
            ok(
                "States.MathAdd($.v, 1)",
                json!({"v": 99999999999999999999999999u128})
            ),
            json!(100000000000000000000000000u128)
        );
        assert_eq!(ok("States.MathAdd(0.1, 0.2)", json!({})), json!(0.3));
        let r = ok("States.MathRandom(1, 10)", json!({}));
        let r = r.as_i64().expect("integer");
        assert!((1..10).contains(&r));
        assert_eq!(
            ok("States.MathRandom(1, 1000, 7)", json!({})),
            ok("States.MathRandom(1, 1000, 7)", json!({}))
        );
        let u = ok("States.UUID()", json!({}));
        assert_eq!(u.as_str().map(str::len), Some(36));
        assert_eq!(
            u,
            ok("States.UUID()", json!({})),
            "seeded entropy gives the same UUID"
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert!(
            Intrinsic::parse("States.Nope(1)")
                .expect_err("unknown")
                .contains("States.Nope")
        );
        assert!(
            Intrinsic::parse("States.ArrayLength()")
                .expect_err("arity")
                .contains("1")
        );
        assert!(Intrinsic::parse("States.Array(1").is_err());
        assert!(Intrinsic::parse("States.Array(foo)").is_err());
        let deep = "States.Array(".repeat(11) + &")".repeat(11);
        assert!(
            Intrinsic::parse(&deep)
                .expect_err("too deep")
                .contains("nested")
        );
        assert!(
            run("States.ArrayLength($.missing)", json!({}))
                .expect_err("missing")
                .error
                == "States.Runtime"
        );
        let nested = "States.Format('{}', States.ArrayGetItem(States.StringSplit($.arn, ':'), 1))";
        assert_eq!(ok(nested, json!({"arn": "a:b:c"})), json!("b"));
        assert_eq!(
            ok(
                "States.Array($['a,b'], $.c[?(@ > 1)])",
                json!({"a,b": 1, "c": [1, 2]})
            ),
            json!([1, [2]])
        );
    }
}
