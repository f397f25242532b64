//! Exact, allocation-free parsing of the text fields of the reconciliation inputs: decimals,
//! RFC 3339 timestamps and ISO dates. A day holds millions of rows, so the common shapes take a
//! fast path; anything unusual goes through `rust_decimal` / `chrono` and is still exact.

use chrono::{DateTime, NaiveDate};
use rust_decimal::Decimal;

/// Digits that fit an i64 mantissa on the fast path.
const FAST_DIGITS_MAX: usize = 18;
/// Longest decimal text accepted.
pub const DECIMAL_TEXT_BYTES_MAX: usize = 40;
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
const MICROS_PER_SECOND: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is empty")]
    Empty,
    #[error("is not a decimal number: {0:?}")]
    NotADecimal(String),
    #[error("has {places} decimal places; at most {max} are allowed")]
    TooManyPlaces { places: u32, max: u32 },
    #[error("is not an RFC 3339 timestamp: {0:?}")]
    NotATimestamp(String),
    #[error("is not a date (YYYY-MM-DD): {0:?}")]
    NotADate(String),
}

fn shown(text: &str) -> String {
    text.chars().take(DECIMAL_TEXT_BYTES_MAX).collect()
}

/// A plain decimal (`-12.30`, `7`, `+0.5`) with at most `max_places` decimal places.
pub fn parse_decimal(text: &str, max_places: u32) -> Result<Decimal, TextError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TextError::Empty);
    }
    if t.len() > DECIMAL_TEXT_BYTES_MAX {
        return Err(TextError::NotADecimal(shown(t)));
    }
    let value = fast_decimal(t.as_bytes())
        .or_else(|| {
            // Exponents and very long mantissas: exact, but slower.
            Decimal::from_str_exact(t)
                .or_else(|_| Decimal::from_scientific(t))
                .ok()
        })
        .ok_or_else(|| TextError::NotADecimal(shown(t)))?;
    if value.scale() > max_places {
        let normal = value.normalize();
        if normal.scale() > max_places {
            return Err(TextError::TooManyPlaces {
                places: normal.scale(),
                max: max_places,
            });
        }
        return Ok(normal);
    }
    Ok(value)
}

fn fast_decimal(b: &[u8]) -> Option<Decimal> {
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let mut mantissa: i64 = 0;
    let mut count = 0usize;
    let mut scale: Option<u32> = None;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                count += 1;
                if count > FAST_DIGITS_MAX {
                    return None;
                }
                mantissa = mantissa * 10 + i64::from(c - b'0');
                if let Some(s) = scale.as_mut() {
                    *s += 1;
                }
            }
            b'.' if scale.is_none() => scale = Some(0),
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    let value = if negative { -mantissa } else { mantissa };
    Some(Decimal::new(value, scale.unwrap_or(0)))
}

/// An RFC 3339 timestamp (`2026-11-21T13:45:07Z`, `…​.123456+01:00`) as µs since the epoch.
pub fn parse_timestamp_us(text: &str) -> Result<i64, TextError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TextError::Empty);
    }
    if let Some(us) = fast_timestamp_utc(t.as_bytes()) {
        return Ok(us);
    }
    let parsed = DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_rfc3339(&t.replacen(' ', "T", 1)))
        .map_err(|_| TextError::NotATimestamp(shown(t)))?;
    Ok(parsed.timestamp_micros())
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, the shape every producer here writes.
fn fast_timestamp_utc(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let days = days_from_ymd(digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?)?;
    let (h, m, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let frac = &b[19..b.len() - 1];
    let micros = match frac {
        [] => 0,
        [b'.', rest @ ..] if !rest.is_empty() && rest.len() <= 9 => {
            let value = i64::from(digits(rest)?);
            let places = rest.len() as u32;
            if places >= 6 {
                value / 10i64.pow(places - 6)
            } else {
                value * 10i64.pow(6 - places)
            }
        }
        _ => return None,
    };
    let seconds = i64::from(days) * 86_400 + i64::from(h * 3600 + m * 60 + s);
    Some(seconds * MICROS_PER_SECOND + micros)
}

fn days_from_ymd(y: u32, m: u32, d: u32) -> Option<i32> {
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    Some(date_to_days(date))
}

/// Days since 1970-01-01.
pub fn date_to_days(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// The date of a day number.
pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// `YYYY-MM-DD` (a timestamp's date part is accepted too) as days since the epoch.
pub fn parse_date_days(text: &str) -> Result<i32, TextError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TextError::Empty);
    }
    let b = t.as_bytes();
    if b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && (b.len() == 10 || matches!(b[10], b'T' | b' '))
        && let (Some(y), Some(m), Some(d)) = (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10]))
        && let Some(days) = days_from_ymd(y, m, d)
    {
        return Ok(days);
    }
    Err(TextError::NotADate(shown(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("test literal")
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("12.30", 4), Ok(d("12.30")));
        assert_eq!(parse_decimal("-0.5", 4), Ok(d("-0.5")));
        assert_eq!(parse_decimal("+7", 4), Ok(d("7")));
        assert_eq!(parse_decimal(" 3.1400 ", 4), Ok(d("3.1400")));
        assert_eq!(
            parse_decimal("1.50000", 4),
            Ok(d("1.5")),
            "trailing zeros are not places"
        );
        assert_eq!(
            parse_decimal("123456789012345678901.5", 4),
            Ok(d("123456789012345678901.5"))
        );
        assert_eq!(parse_decimal("1e2", 4), Ok(d("100")));
        assert_eq!(
            parse_decimal("1.23456", 4),
            Err(TextError::TooManyPlaces { places: 5, max: 4 })
        );
        assert!(matches!(
            parse_decimal("1,5", 4),
            Err(TextError::NotADecimal(_))
        ));
        assert!(matches!(
            parse_decimal("1.2.3", 4),
            Err(TextError::NotADecimal(_))
        ));
        assert!(matches!(
            parse_decimal("-", 4),
            Err(TextError::NotADecimal(_))
        ));
        assert_eq!(parse_decimal("", 4), Err(TextError::Empty));
    }

    #[test]
    fn timestamps_fast_and_general_agree() {
        let cases = [
            "2026-11-21T13:45:07Z",
            "2026-11-21T13:45:07.5Z",
            "2026-11-21T13:45:07.123456Z",
            "2026-11-21T13:45:07.123456789Z",
            "1969-12-31T23:59:59Z",
        ];
        for c in cases {
            let fast = parse_timestamp_us(c).expect("valid");
            let general = DateTime::parse_from_rfc3339(c)
                .expect("valid")
                .timestamp_micros();
            assert_eq!(fast, general, "{c}");
        }
        assert_eq!(
            parse_timestamp_us("2026-11-21T14:45:07+01:00"),
            parse_timestamp_us("2026-11-21T13:45:07Z")
        );
        assert_eq!(
            parse_timestamp_us("2026-11-21 13:45:07Z"),
            parse_timestamp_us("2026-11-21T13:45:07Z")
        );
        assert!(matches!(
            parse_timestamp_us("2026-13-21T13:45:07Z"),
            Err(TextError::NotATimestamp(_))
        ));
        assert!(matches!(
            parse_timestamp_us("yesterday"),
            Err(TextError::NotATimestamp(_))
        ));
    }

    #[test]
    fn dates_round_trip() {
        let days = parse_date_days("2026-11-21").expect("valid");
        assert_eq!(days_to_date(days), NaiveDate::from_ymd_opt(2026, 11, 21));
        assert_eq!(parse_date_days("1970-01-01"), Ok(0));
        assert_eq!(parse_date_days("2026-11-21T10:00:00Z"), Ok(days));
        assert!(matches!(
            parse_date_days("2026-02-30"),
            Err(TextError::NotADate(_))
        ));
        assert!(matches!(
            parse_date_days("21/11/2026"),
            Err(TextError::NotADate(_))
        ));
    }
}
