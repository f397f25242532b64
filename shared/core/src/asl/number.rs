//! Exact arithmetic on JSON numbers.
//!
//! The workspace enables serde_json's `arbitrary_precision`, so a `Number` is the decimal text it
//! was parsed from. Choice rules compare numbers and intrinsics add them; doing either through
//! binary floating point would make `0.1 + 0.2` and 17-digit values wrong, so both work on the decimal text.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::{Number, Value};

/// A JSON number as sign, significant digits and exponent: `±0.d1d2… × 10^exponent`.
/// Leading and trailing zeros are stripped, so two equal numbers have equal parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exact {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Exact {
    fn parse(text: &str) -> Option<Exact> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (mantissa, exp_text) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let exp_value = match exp_text {
            Some(e) => parse_exponent(e)?,
            None => 0,
        };
        let mut digits: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        // The point sits after the integer digits.
        let mut exponent = (int_part.len() as i64).saturating_add(exp_value);
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        exponent = exponent.saturating_sub(leading as i64);
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Some(Exact {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(Exact {
            negative,
            digits,
            exponent,
        })
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    fn cmp_magnitude(&self, other: &Exact) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        self.exponent
            .cmp(&other.exponent)
            .then_with(|| self.digits.cmp(&other.digits))
    }

    fn cmp(&self, other: &Exact) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }

    fn is_integer(&self) -> bool {
        self.digits.len() as i64 <= self.exponent || self.is_zero()
    }
}

/// Parses an exponent, saturating: `1e99999999999999999999` is simply "very large".
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

fn exact(n: &Number) -> Option<Exact> {
    Exact::parse(n.as_str())
}

/// Compares two JSON numbers exactly. Numbers that are not valid JSON number text (impossible
/// for parsed values) compare by their text so the order stays total.
pub fn compare(a: &Number, b: &Number) -> Ordering {
    match (exact(a), exact(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.as_str().cmp(b.as_str()),
    }
}

/// Whether the number has no fractional part (`3`, `3.0` and `3e2` do; `3.5` does not).
pub fn is_integer(n: &Number) -> bool {
    exact(n).is_some_and(|e| e.is_integer())
}

/// The exact integer value of `n`, if it is an integer that fits in an `i128`.
pub fn to_i128(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i128() {
        return Some(i);
    }
    let e = exact(n)?;
    if !e.is_integer() {
        return None;
    }
    if e.is_zero() {
        return Some(0);
    }
    let zeros = usize::try_from(e.exponent)
        .ok()?
        .checked_sub(e.digits.len())?;
    let mut value: i128 = 0;
    for d in e
        .digits
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, zeros))
    {
        value = value.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    Some(if e.negative { -value } else { value })
}

/// The exact integer value of `n` as an `i64`, if it is an integer in range.
pub fn to_i64(n: &Number) -> Option<i64> {
    to_i128(n).and_then(|i| i64::try_from(i).ok())
}

/// The number as a `Decimal` when it fits exactly (28 significant digits).
pub fn to_decimal(n: &Number) -> Option<Decimal> {
    let text = n.as_str();
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        text.parse::<Decimal>().ok()
    }
}

/// A JSON number from an integer.
pub fn from_i128(i: i128) -> Number {
    // With arbitrary_precision every i128 is representable.
    Number::from_i128(i).unwrap_or_else(|| Number::from(0))
}

/// A JSON number from a decimal, written without an exponent and with trailing zeros removed.
pub fn from_decimal(d: Decimal) -> Option<Number> {
    let text = d.normalize().to_string();
    serde_json::from_str::<Number>(&text).ok()
}

/// Equality of JSON values where numbers compare by value (`1`, `1.0` and `1e0` are equal).
/// `serde_json`'s own `==` compares number text under arbitrary_precision.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Number {
        serde_json::from_str(text).expect("test literal is a JSON number")
    }

    #[test]
    fn compares_exactly() {
        assert_eq!(compare(&n("1"), &n("1.0")), Ordering::Equal);
        assert_eq!(compare(&n("100"), &n("1e2")), Ordering::Equal);
        assert_eq!(
            compare(&n("0.1"), &n("0.10000000000000001")),
            Ordering::Less
        );
        assert_eq!(compare(&n("-2"), &n("-10")), Ordering::Greater);
        assert_eq!(compare(&n("-0"), &n("0")), Ordering::Equal);
        assert_eq!(
            compare(&n("12345678901234567890123"), &n("12345678901234567890124")),
            Ordering::Less
        );
        assert_eq!(compare(&n("5e-1"), &n("0.5")), Ordering::Equal);
        assert_eq!(compare(&n("0.001"), &n("0.01")), Ordering::Less);
        assert_eq!(compare(&n("-0.5"), &n("0")), Ordering::Less);
    }

    #[test]
    fn integers() {
        assert!(is_integer(&n("3.0")));
        assert!(is_integer(&n("3e2")));
        assert!(!is_integer(&n("3.5")));
        assert_eq!(to_i128(&n("3e2")), Some(300));
        assert_eq!(to_i128(&n("-4.0")), Some(-4));
        assert_eq!(to_i128(&n("1.5")), None);
        assert_eq!(to_i128(&n("1e400")), None);
    }

    #[test]
    fn json_equality_by_value() {
        let a: Value = serde_json::from_str(r#"{"a":[1,2.0],"b":"x"}"#).expect("literal");
        let b: Value = serde_json::from_str(r#"{"b":"x","a":[1.0,2]}"#).expect("literal");
        assert!(json_equal(&a, &b));
        assert!(!json_equal(&a, &Value::Null));
    }
}
