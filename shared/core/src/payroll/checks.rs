//! Rules on single values: amounts, dates, EINs.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::finding::Reason;
use crate::money::{Currency, Money, MoneyError, Notation, parse_amount};

/// Largest single payment accepted, in dollars: far above any loan instalment, and it keeps
/// the file's total exact (`ROWS_MAX` × this fits a `Decimal` many times over).
pub const AMOUNT_USD_MAX: i64 = 1_000_000;

/// An amount as payroll files write it (`$1,234.56`, `8.11`): positive, in cents at most.
pub fn check_amount(text: &str) -> Result<Money, Reason> {
    let amount = parse_amount(text, Notation::Point).map_err(|_| Reason::AmountNotANumber)?;
    if amount.is_zero() {
        return Err(Reason::AmountZero);
    }
    if amount.is_sign_negative() {
        return Err(Reason::AmountNegative);
    }
    let money = Money::positive(amount, Currency::USD).map_err(|e| match e {
        MoneyError::TooManyDecimals { places, .. } => Reason::AmountTooManyDecimals { places },
        _ => Reason::AmountNotANumber,
    })?;
    if money.amount() > Decimal::from(AMOUNT_USD_MAX) {
        return Err(Reason::AmountTooLarge);
    }
    Ok(money)
}

/// Longest text [`fast_cents`] takes (`$999,999,999.99`); longer goes to [`check_amount`].
const FAST_AMOUNT_BYTES_MAX: usize = 16;

/// The amount in cents of the plain forms payroll files use (`$8.11`, `$1,234.56`, `1234.56`):
/// two decimals, thousands grouped by three or not at all, positive, at most
/// [`AMOUNT_USD_MAX`]. `None` for anything else, which [`check_amount`] then decides; for every
/// text it accepts, the result is the one [`check_amount`] gives (a property test holds it).
pub fn fast_cents(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let b = b.strip_prefix(b"$").unwrap_or(b);
    if b.len() < 4 || b.len() > FAST_AMOUNT_BYTES_MAX {
        return None;
    }
    let (int, frac) = b.split_at(b.len() - 3);
    let cents_part = match frac {
        [b'.', d1, d2] if d1.is_ascii_digit() && d2.is_ascii_digit() => {
            i64::from(d1 - b'0') * 10 + i64::from(d2 - b'0')
        }
        _ => return None,
    };
    let mut dollars: i64 = 0;
    for (i, group) in int.split(|c| *c == b',').enumerate() {
        let size_ok = if i == 0 {
            (1..=3).contains(&group.len()) || (group.len() == int.len() && !group.is_empty())
        } else {
            group.len() == 3
        };
        if !size_ok || !group.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for d in group {
            dollars = dollars * 10 + i64::from(d - b'0');
        }
    }
    let cents = dollars * 100 + cents_part;
    (cents > 0 && cents <= AMOUNT_USD_MAX * 100).then_some(cents)
}

/// A date as `MM-DD-YYYY` (the sample's form), `MM/DD/YYYY` or ISO `YYYY-MM-DD`; month and day
/// may have one digit. `None` when it is none of these or not a day of the calendar.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    if let [m1, m2, b'-', d1, d2, b'-', y1, y2, y3, y4] = *text.as_bytes() {
        // The sample's form, read without splitting.
        let n = |digits: &[u8]| {
            digits.iter().try_fold(0u32, |n, d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        return NaiveDate::from_ymd_opt(n(&[y1, y2, y3, y4])? as i32, n(&[m1, m2])?, n(&[d1, d2])?);
    }
    let separator = if text.contains('/') { '/' } else { '-' };
    let mut parts = text.split(separator);
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (year, month, day) = if a.len() == 4 && separator == '-' {
        (a, b, c)
    } else {
        (c, a, b)
    };
    if year.len() != 4 || !(1..=2).contains(&month.len()) || !(1..=2).contains(&day.len()) {
        return None;
    }
    NaiveDate::from_ymd_opt(digits(year)? as i32, digits(month)?, digits(day)?)
}

fn digits(text: &str) -> Option<u32> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// An EIN is nine digits, written `123456789` or `12-3456789`. `Err` carries how many digits
/// there are, for the warning.
pub fn check_ein(text: &str) -> Result<(), usize> {
    let b = text.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let well_formed = match b.len() {
        9 => digits == 9,
        10 => b[2] == b'-' && digits == 9,
        _ => false,
    };
    if well_formed { Ok(()) } else { Err(digits) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn amounts_as_written_in_payroll_files() {
        assert_eq!(check_amount("$8.11").unwrap().amount(), cents("8.11"));
        assert_eq!(
            check_amount(" $1,234.56 ").unwrap().amount(),
            cents("1234.56")
        );
        assert_eq!(check_amount("7").unwrap().amount().to_string(), "7.00");
        assert_eq!(check_amount("$0.5").unwrap().amount().to_string(), "0.50");
    }

    #[test]
    fn each_bad_amount_has_its_reason() {
        assert_eq!(check_amount("-$5.00"), Err(Reason::AmountNegative));
        assert_eq!(check_amount("$0.00"), Err(Reason::AmountZero));
        assert_eq!(check_amount("-0"), Err(Reason::AmountZero));
        assert_eq!(
            check_amount("$1.234"),
            Err(Reason::AmountTooManyDecimals { places: 3 })
        );
        assert_eq!(check_amount("$1.230"), Ok(check_amount("1.23").unwrap()));
        for bad in ["abc", "$", "1,23.00", "1.2.3", "1e5", "", "$ 12a"] {
            assert_eq!(check_amount(bad), Err(Reason::AmountNotANumber), "{bad}");
        }
        assert_eq!(
            check_amount("$1,000,000.00").map(|m| m.amount()),
            Ok(cents("1000000.00"))
        );
        assert_eq!(check_amount("$1,000,000.01"), Err(Reason::AmountTooLarge));
    }

    #[test]
    fn dates_in_the_forms_payroll_systems_write() {
        let d = NaiveDate::from_ymd_opt(1987, 3, 26);
        assert_eq!(parse_date("03-26-1987"), d);
        assert_eq!(parse_date("3-26-1987"), d);
        assert_eq!(parse_date("03/26/1987"), d);
        assert_eq!(parse_date("1987-03-26"), d);
        for bad in [
            "02-30-1990",
            "13-01-1990",
            "03-26-87",
            "26.03.1987",
            "1987/03/26",
            "03-26-1987-1",
            "0x-26-1987",
            "+3-26-1987",
            "",
            "March 26, 1987",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn eins_are_nine_digits() {
        assert_eq!(check_ein("123456789"), Ok(()));
        assert_eq!(check_ein("12-3456789"), Ok(()));
        assert_eq!(check_ein("32120240"), Err(8));
        assert_eq!(check_ein("1234567890"), Err(10));
        assert_eq!(check_ein("123-456789"), Err(9));
        assert_eq!(check_ein("12345678a"), Err(8));
    }
}
