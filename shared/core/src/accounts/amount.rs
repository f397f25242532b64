//! Amounts of the accounts API: a JSON number or a JSON string, parsed exactly as a decimal.
//!
//! The text must be a plain decimal (`12`, `12.5`, `0.01`, `-3`): no exponent, no thousands
//! separators, no currency symbol, so that what the client wrote is what is stored. Amounts
//! carry at most two decimals (the accounts API only admits two-decimal currencies).

use rust_decimal::Decimal;
use serde_json::Value;

use crate::money::{Currency, Money, MoneyError};

/// Decimals an amount may carry (accounts only hold currencies with two minor units).
pub const AMOUNT_DECIMALS_MAX: u32 = 2;
/// Longest amount text accepted, to bound work on hostile input.
pub const AMOUNT_TEXT_BYTES_MAX: usize = 40;
/// Largest amount of one transfer, opening balance or advance: one billion. Far beyond any
/// real movement, and small enough that sums of many never approach `Decimal`'s 28 digits.
pub const AMOUNT_MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is required")]
    Missing,
    #[error("must be a JSON number or a string holding a decimal")]
    WrongType,
    #[error("is not a plain decimal number: {0:?}")]
    NotADecimal(String),
    #[error("has more than {AMOUNT_DECIMALS_MAX} decimal places")]
    TooManyDecimals,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("must not be negative")]
    Negative,
    #[error("must be at most {AMOUNT_MAX}")]
    TooLarge,
}

/// A strictly positive amount (transfers, bank transactions, advances), scaled to two places.
pub fn parse_positive_amount(value: Option<&Value>) -> Result<Decimal, AmountError> {
    let amount = parse_decimal(value)?;
    if amount <= Decimal::ZERO {
        return Err(AmountError::NotPositive);
    }
    two_places(amount)
}

/// An amount that may be zero (an opening balance), scaled to two places.
pub fn parse_non_negative_amount(value: Option<&Value>) -> Result<Decimal, AmountError> {
    let amount = parse_decimal(value)?;
    if amount < Decimal::ZERO {
        return Err(AmountError::Negative);
    }
    two_places(amount)
}

/// Checks the decimal places and the upper bound through `Money`, which owns the rule for
/// minor units, and returns the amount scaled to exactly two places.
fn two_places(amount: Decimal) -> Result<Decimal, AmountError> {
    if amount > AMOUNT_MAX {
        return Err(AmountError::TooLarge);
    }
    // USD stands for "any two-decimal currency": accounts admit no other kind.
    match Money::new(amount, Currency::USD) {
        Ok(money) => Ok(money.amount()),
        Err(MoneyError::TooManyDecimals { .. }) => Err(AmountError::TooManyDecimals),
        Err(_) => Err(AmountError::NotADecimal(amount.to_string())),
    }
}

/// The exact decimal a JSON number or string holds. Relies on serde_json's
/// `arbitrary_precision` (set for the workspace): a number keeps the digits the client sent.
fn parse_decimal(value: Option<&Value>) -> Result<Decimal, AmountError> {
    let text = match value {
        None | Some(Value::Null) => return Err(AmountError::Missing),
        Some(Value::Number(n)) => n.as_str().to_owned(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(_) => return Err(AmountError::WrongType),
    };
    parse_decimal_text(&text)
}

/// `-?[0-9]+(\.[0-9]+)?`, exactly.
pub fn parse_decimal_text(text: &str) -> Result<Decimal, AmountError> {
    let shown = || AmountError::NotADecimal(text.chars().take(AMOUNT_TEXT_BYTES_MAX).collect());
    if text.is_empty() || text.len() > AMOUNT_TEXT_BYTES_MAX {
        return Err(shown());
    }
    let body = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int_part) || !frac_part.is_none_or(digits) {
        return Err(shown());
    }
    Decimal::from_str_exact(text).map_err(|_| shown())
}

/// Formats an amount with exactly two decimals, as every response of the accounts API does.
pub fn format_amount(amount: Decimal) -> String {
    let mut a = amount;
    a.rescale(AMOUNT_DECIMALS_MAX);
    a.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn num(text: &str) -> Value {
        serde_json::from_str(text).expect("test literal is valid JSON")
    }

    #[test]
    fn accepts_numbers_and_strings_exactly() {
        assert_eq!(
            parse_positive_amount(Some(&num("12.3"))).map(format_amount),
            Ok("12.30".into())
        );
        assert_eq!(
            parse_positive_amount(Some(&num("\"0.01\""))).map(format_amount),
            Ok("0.01".into())
        );
        assert_eq!(
            parse_positive_amount(Some(&num("7"))).map(format_amount),
            Ok("7.00".into())
        );
        // A float would turn 0.1 + 0.2 style values into 0.30000000000000004; we keep digits.
        assert_eq!(
            parse_positive_amount(Some(&num("1000000.07"))).map(format_amount),
            Ok("1000000.07".into())
        );
        assert_eq!(
            parse_positive_amount(Some(&num("1.230"))).map(format_amount),
            Ok("1.23".into())
        );
    }

    #[test]
    fn rejects_with_reason() {
        assert_eq!(parse_positive_amount(None), Err(AmountError::Missing));
        assert_eq!(
            parse_positive_amount(Some(&Value::Null)),
            Err(AmountError::Missing)
        );
        assert_eq!(
            parse_positive_amount(Some(&num("true"))),
            Err(AmountError::WrongType)
        );
        assert_eq!(
            parse_positive_amount(Some(&num("1.001"))),
            Err(AmountError::TooManyDecimals)
        );
        assert_eq!(
            parse_positive_amount(Some(&num("\"1.001\""))),
            Err(AmountError::TooManyDecimals)
        );
        assert_eq!(
            parse_positive_amount(Some(&num("0"))),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            parse_positive_amount(Some(&num("0.00"))),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            parse_positive_amount(Some(&num("-5"))),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            parse_non_negative_amount(Some(&num("-5"))),
            Err(AmountError::Negative)
        );
        assert_eq!(
            parse_non_negative_amount(Some(&num("0"))).map(format_amount),
            Ok("0.00".into())
        );
        assert_eq!(
            parse_positive_amount(Some(&num("1000000000.01"))),
            Err(AmountError::TooLarge)
        );
        for bad in [
            "1e3",
            "\"1e3\"",
            "\"$5\"",
            "\"1,000.00\"",
            "\"\"",
            "\"12.\"",
            "\"+3\"",
            "\".5\"",
        ] {
            assert!(
                matches!(
                    parse_positive_amount(Some(&num(bad))),
                    Err(AmountError::NotADecimal(_))
                ),
                "{bad} must be rejected"
            );
        }
    }

    proptest! {
        #[test]
        fn cents_round_trip_as_number_and_string(cents in 1i64..100_000_000_000) {
            let amount = Decimal::new(cents, 2);
            let text = format_amount(amount);
            prop_assert_eq!(parse_positive_amount(Some(&num(&text))), Ok(amount));
            prop_assert_eq!(parse_positive_amount(Some(&Value::String(text.clone()))), Ok(amount));
        }

        #[test]
        fn three_decimals_with_a_nonzero_last_digit_are_rejected(mills in 1i64..1_000_000_000) {
            prop_assume!(mills % 10 != 0);
            let text = Decimal::new(mills, 3).to_string();
            prop_assert_eq!(parse_positive_amount(Some(&Value::String(text))), Err(AmountError::TooManyDecimals));
        }

        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = parse_positive_amount(Some(&Value::String(s)));
        }
    }
}
