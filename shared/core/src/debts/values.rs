//! Exact, allocation-free parsers for the amount and the missed date of a debt line. The
//! amount is read digit by digit into an integer mantissa, so it is exact and fast; the date
//! must have exactly the shape of one of the client's date formats and be a real date.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::format::{DateFormat, DecimalMark};

/// Decimal places a BRL amount may have.
pub const AMOUNT_DECIMALS_MAX: u32 = 2;
/// Digits an amount may have in all (keeps the mantissa far inside `i64`).
pub const AMOUNT_DIGITS_MAX: usize = 15;
/// Longest amount text, in bytes, before any work is done on it.
pub const AMOUNT_TEXT_BYTES_MAX: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is missing")]
    Missing,
    #[error("is not a number written as {0}")]
    NotANumber(&'static str),
    #[error("has misplaced thousands separators (written as {0})")]
    BadGrouping(&'static str),
    #[error("has {0} decimal places; at most 2 are allowed")]
    TooManyDecimals(u32),
    #[error("must be positive")]
    NotPositive,
    #[error("is too large (more than {AMOUNT_DIGITS_MAX} digits)")]
    TooLarge,
}

fn example(mark: DecimalMark) -> &'static str {
    match mark {
        DecimalMark::Point => "1234.56 or 1,234.56",
        DecimalMark::Comma => "1234,56 or 1.234,56",
    }
}

/// Parses a positive amount with at most two decimal places (trailing zeros do not count:
/// `10.500` is ten and a half). An optional `R$` prefix and surrounding spaces are allowed.
pub fn parse_amount(text: &str, mark: DecimalMark) -> Result<Decimal, AmountError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(AmountError::Missing);
    }
    let ex = example(mark);
    if s.len() > AMOUNT_TEXT_BYTES_MAX {
        return Err(AmountError::NotANumber(ex));
    }
    let s = s.strip_prefix("R$").map_or(s, str::trim_start).as_bytes();
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    let (group, point) = match mark {
        DecimalMark::Point => (b',', b'.'),
        DecimalMark::Comma => (b'.', b','),
    };
    let (int_part, frac_part) = match memchr::memchr(point, s) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let mut mantissa: i64 = 0;
    let mut digits = 0usize;
    let mut push = |d: u8| -> Result<(), AmountError> {
        digits += 1;
        if digits > AMOUNT_DIGITS_MAX {
            return Err(AmountError::TooLarge);
        }
        mantissa = mantissa * 10 + i64::from(d - b'0');
        Ok(())
    };
    // Integer part: digits, optionally grouped by threes.
    if int_part.is_empty() && frac_part.is_none_or(<[u8]>::is_empty) {
        return Err(AmountError::NotANumber(ex));
    }
    let grouped = memchr::memchr(group, int_part).is_some();
    for (i, chunk) in int_part.split(|&b| b == group).enumerate() {
        let size_ok = !grouped || (i == 0 && (1..=3).contains(&chunk.len())) || chunk.len() == 3;
        if !size_ok {
            return Err(AmountError::BadGrouping(ex));
        }
        for &b in chunk {
            if !b.is_ascii_digit() {
                return Err(AmountError::NotANumber(ex));
            }
            push(b)?;
        }
    }
    // Fraction: digits; trailing zeros beyond the second place are dropped.
    let mut scale = 0u32;
    if let Some(frac) = frac_part {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return Err(AmountError::NotANumber(ex));
        }
        let significant = frac.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1);
        let kept = significant.max(frac.len().min(AMOUNT_DECIMALS_MAX as usize));
        if significant > AMOUNT_DECIMALS_MAX as usize {
            return Err(AmountError::TooManyDecimals(significant as u32));
        }
        for &b in &frac[..kept] {
            push(b)?;
            scale += 1;
        }
    }
    if negative && mantissa != 0 {
        return Err(AmountError::NotPositive);
    }
    if mantissa == 0 {
        return Err(AmountError::NotPositive);
    }
    let mut amount = Decimal::new(mantissa, scale);
    amount.rescale(AMOUNT_DECIMALS_MAX);
    Ok(amount)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("is missing")]
    Missing,
    #[error("is not a date written as {0}")]
    BadFormat(String),
    #[error("is not a real date")]
    NotARealDate,
    #[error("is in the future (after {0})")]
    InTheFuture(NaiveDate),
}

/// Parses a missed date in one of `formats`, not after `today`.
pub fn parse_date(
    text: &str,
    formats: &[DateFormat],
    today: NaiveDate,
) -> Result<NaiveDate, DateError> {
    let s = text.trim().as_bytes();
    if s.is_empty() {
        return Err(DateError::Missing);
    }
    for format in formats {
        if let Some((y, m, d)) = shape(s, *format) {
            let date = NaiveDate::from_ymd_opt(y, m, d).ok_or(DateError::NotARealDate)?;
            if date > today {
                return Err(DateError::InTheFuture(today));
            }
            return Ok(date);
        }
    }
    Err(DateError::BadFormat(
        formats
            .iter()
            .map(DateFormat::pattern)
            .collect::<Vec<_>>()
            .join(" or "),
    ))
}

/// Year, month and day when `s` has exactly the shape of `format`.
fn shape(s: &[u8], format: DateFormat) -> Option<(i32, u32, u32)> {
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(range)?;
        part.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let sep = |at: usize, c: u8| s.get(at) == Some(&c);
    let (y, m, d) = match format {
        DateFormat::Iso if s.len() == 10 && sep(4, b'-') && sep(7, b'-') => {
            (num(0..4)?, num(5..7)?, num(8..10)?)
        }
        DateFormat::DaySlash if s.len() == 10 && sep(2, b'/') && sep(5, b'/') => {
            (num(6..10)?, num(3..5)?, num(0..2)?)
        }
        DateFormat::DayDash if s.len() == 10 && sep(2, b'-') && sep(5, b'-') => {
            (num(6..10)?, num(3..5)?, num(0..2)?)
        }
        DateFormat::DayDot if s.len() == 10 && sep(2, b'.') && sep(5, b'.') => {
            (num(6..10)?, num(3..5)?, num(0..2)?)
        }
        DateFormat::DayCompact if s.len() == 8 => (num(4..8)?, num(2..4)?, num(0..2)?),
        DateFormat::IsoCompact if s.len() == 8 => (num(0..4)?, num(4..6)?, num(6..8)?),
        _ => return None,
    };
    // Four digits always fit an i32.
    Some((y as i32, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test literal")
    }

    #[test]
    fn amounts_in_both_notations() {
        let p = DecimalMark::Point;
        let c = DecimalMark::Comma;
        assert_eq!(parse_amount("1234.56", p), Ok(dec("1234.56")));
        assert_eq!(parse_amount("1,234.56", p), Ok(dec("1234.56")));
        assert_eq!(parse_amount(" 12.3 ", p), Ok(dec("12.30")));
        assert_eq!(parse_amount("10.500", p), Ok(dec("10.50")));
        assert_eq!(parse_amount("7", p), Ok(dec("7.00")));
        assert_eq!(parse_amount(".5", p), Ok(dec("0.50")));
        assert_eq!(parse_amount("1.234,56", c), Ok(dec("1234.56")));
        assert_eq!(parse_amount("R$ 1.234,56", c), Ok(dec("1234.56")));
        assert_eq!(parse_amount("0001234,56", c), Ok(dec("1234.56")));
        assert_eq!(parse_amount("1234.56", p).map(|d| d.scale()), Ok(2));
    }

    #[test]
    fn each_amount_reason() {
        let p = DecimalMark::Point;
        assert_eq!(parse_amount("  ", p), Err(AmountError::Missing));
        assert!(matches!(
            parse_amount("12a", p),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("1.2.3", p),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount(".", p),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("12,34.5", p),
            Err(AmountError::BadGrouping(_))
        ));
        assert!(matches!(
            parse_amount("1.234,56", p),
            Err(AmountError::NotANumber(_))
        ));
        assert_eq!(
            parse_amount("1.234", p),
            Err(AmountError::TooManyDecimals(3))
        );
        assert_eq!(parse_amount("-5.00", p), Err(AmountError::NotPositive));
        assert_eq!(parse_amount("0.00", p), Err(AmountError::NotPositive));
        assert_eq!(
            parse_amount("1234567890123456", p),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn dates_in_each_format() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).expect("literal");
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("literal");
        assert_eq!(
            parse_date("2026-03-09", &[DateFormat::Iso], today),
            Ok(d(2026, 3, 9))
        );
        assert_eq!(
            parse_date("09/03/2026", &[DateFormat::DaySlash], today),
            Ok(d(2026, 3, 9))
        );
        assert_eq!(
            parse_date("09-03-2026", &[DateFormat::DayDash], today),
            Ok(d(2026, 3, 9))
        );
        assert_eq!(
            parse_date("09.03.2026", &[DateFormat::DayDot], today),
            Ok(d(2026, 3, 9))
        );
        assert_eq!(
            parse_date("09032026", &[DateFormat::DayCompact], today),
            Ok(d(2026, 3, 9))
        );
        assert_eq!(
            parse_date("20260309", &[DateFormat::IsoCompact], today),
            Ok(d(2026, 3, 9))
        );
        let both = [DateFormat::Iso, DateFormat::DaySlash];
        assert_eq!(parse_date("09/03/2026", &both, today), Ok(d(2026, 3, 9)));
        assert_eq!(parse_date("2026-11-22", &both, today), Ok(today));
    }

    #[test]
    fn each_date_reason() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).expect("literal");
        let iso = [DateFormat::Iso];
        assert_eq!(parse_date("", &iso, today), Err(DateError::Missing));
        assert_eq!(
            parse_date("22/11/2026", &iso, today),
            Err(DateError::BadFormat("yyyy-mm-dd".into()))
        );
        assert_eq!(
            parse_date("2026-02-30", &iso, today),
            Err(DateError::NotARealDate)
        );
        assert_eq!(
            parse_date("2026-13-01", &iso, today),
            Err(DateError::NotARealDate)
        );
        assert_eq!(
            parse_date("2026-11-23", &iso, today),
            Err(DateError::InTheFuture(today))
        );
    }

    proptest! {
        #[test]
        fn amounts_round_trip_exactly(cents in 1i64..100_000_000_000) {
            let amount = Decimal::new(cents, 2);
            let point = amount.to_string();
            prop_assert_eq!(parse_amount(&point, DecimalMark::Point), Ok(amount));
            let comma = point.replace('.', ",");
            prop_assert_eq!(parse_amount(&comma, DecimalMark::Comma), Ok(amount));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,50}") {
            let _ = parse_amount(&text, DecimalMark::Point);
            let _ = parse_amount(&text, DecimalMark::Comma);
            let today = NaiveDate::from_ymd_opt(2026, 11, 22).expect("literal");
            let _ = parse_date(&text, &[DateFormat::Iso, DateFormat::DaySlash, DateFormat::DayCompact], today);
        }
    }
}
