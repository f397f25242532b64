//! Money: an exact decimal amount in a currency. Never a float.
//!
//! Parsing is strict and explicit about notation: `12.3` and `$1,234.56` in point notation,
//! `1.234,56` and `R$ 1.234,56` in comma notation. Anything else is rejected with a reason.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Longest amount text accepted, to bound work on hostile input.
pub const AMOUNT_TEXT_BYTES_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount is too long ({0} bytes, at most {AMOUNT_TEXT_BYTES_MAX})")]
    TooLong(usize),
    #[error("amount is not a number: {0:?}")]
    NotANumber(String),
    #[error("amount has misplaced thousands separators: {0:?}")]
    BadGrouping(String),
    #[error("amount has {places} decimal places; {currency} allows at most {max}")]
    TooManyDecimals {
        places: u32,
        max: u32,
        currency: Currency,
    },
    #[error("amount must be positive")]
    NotPositive,
    #[error("currency {0:?} is not an ISO 4217 code")]
    BadCurrency(String),
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflows")]
    Overflow,
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");
    pub const BRL: Currency = Currency(*b"BRL");
    pub const EUR: Currency = Currency(*b"EUR");

    pub fn as_str(&self) -> &str {
        // The constructor only admits ASCII upper-case letters, so this is valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point (ISO 4217 minor units). 2 unless listed.
    pub fn minor_units(&self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"CLP" | b"ISK" | b"VND" | b"XOF" | b"XAF" | b"UGX" | b"PYG" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" | b"IQD" | b"LYD" => 3,
            _ => 2,
        }
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(MoneyError::BadCurrency(s.chars().take(16).collect()))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How an amount is written: which character separates decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notation {
    /// `1,234.56` (US): `,` groups thousands, `.` separates decimals.
    Point,
    /// `1.234,56` (Brazil, much of Europe): `.` groups thousands, `,` separates decimals.
    Comma,
}

/// Parses an amount exactly. Accepts an optional leading sign, an optional currency symbol
/// (`$`, `R$`, `US$`, `€`) and thousands separators in groups of three; surrounding spaces are
/// trimmed. Does not check the sign or the decimal places: see [`Money::positive`].
pub fn parse_amount(text: &str, notation: Notation) -> Result<Decimal, MoneyError> {
    if text.len() > AMOUNT_TEXT_BYTES_MAX {
        return Err(MoneyError::TooLong(text.len()));
    }
    let mut s = text.trim();
    if s.is_empty() {
        return Err(MoneyError::Empty);
    }
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest.trim_start();
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest.trim_start();
    }
    for symbol in ["US$", "R$", "$", "€"] {
        if let Some(rest) = s.strip_prefix(symbol) {
            s = rest.trim_start();
            break;
        }
    }
    if !negative && let Some(rest) = s.strip_prefix('-') {
        // "$-12.00" is written by some exports.
        negative = true;
        s = rest;
    }
    let (group, decimal) = match notation {
        Notation::Point => (',', '.'),
        Notation::Comma => ('.', ','),
    };
    let (int_part, frac_part) = match s.split_once(decimal) {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let not_a_number =
        || MoneyError::NotANumber(text.chars().take(AMOUNT_TEXT_BYTES_MAX).collect());
    if int_part.is_empty() && frac_part.is_none_or(str::is_empty) {
        return Err(not_a_number());
    }
    let mut digits = String::with_capacity(s.len() + 1);
    if negative {
        digits.push('-');
    }
    if int_part.contains(group) {
        let groups: Vec<&str> = int_part.split(group).collect();
        let first_ok = (1..=3).contains(&groups[0].len());
        let rest_ok = groups[1..].iter().all(|g| g.len() == 3);
        if !first_ok || !rest_ok {
            return Err(MoneyError::BadGrouping(
                text.chars().take(AMOUNT_TEXT_BYTES_MAX).collect(),
            ));
        }
        groups.iter().for_each(|g| digits.push_str(g));
    } else {
        digits.push_str(if int_part.is_empty() { "0" } else { int_part });
    }
    if let Some(frac) = frac_part {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_a_number());
        }
        digits.push('.');
        digits.push_str(frac);
    }
    let body = digits.trim_start_matches('-');
    if !body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(not_a_number());
    }
    Decimal::from_str_exact(&digits).map_err(|_| not_a_number())
}

/// An exact amount in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Any amount that fits the currency's minor units (negative and zero allowed).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let max = currency.minor_units();
        let places = amount.normalize().scale();
        if places > max {
            return Err(MoneyError::TooManyDecimals {
                places,
                max,
                currency,
            });
        }
        let mut amount = amount;
        amount.rescale(max);
        Ok(Money { amount, currency })
    }

    /// A strictly positive amount that fits the currency's minor units.
    pub fn positive(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        if amount <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        Money::new(amount, currency)
    }

    pub fn zero(currency: Currency) -> Self {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.minor_units());
        Money { amount, currency }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }
    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.checked_add(other.negate())
    }

    pub fn negate(self) -> Money {
        Money {
            amount: -self.amount,
            currency: self.currency,
        }
    }

    /// Splits into `parts` amounts that differ by at most one minor unit and sum exactly to
    /// `self`; the larger parts come first. `parts` must be at least 1.
    pub fn split_evenly(self, parts: u32) -> Vec<Money> {
        let parts = parts.max(1);
        let unit = Decimal::new(1, self.currency.minor_units());
        let units_total = (self.amount / unit).trunc();
        let base = (units_total / Decimal::from(parts)).trunc();
        let remainder = units_total - base * Decimal::from(parts);
        (0..parts)
            .map(|i| {
                let extra = if Decimal::from(i) < remainder {
                    Decimal::ONE
                } else {
                    Decimal::ZERO
                };
                let mut amount = (base + extra) * unit;
                amount.rescale(self.currency.minor_units());
                Money {
                    amount,
                    currency: self.currency,
                }
            })
            .collect()
    }
}

impl fmt::Display for Money {
    /// `1234.50 USD`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Formats an amount with exactly `places` decimals, rounding half away from zero when it has
/// more (used only for display of derived figures such as averages, never for stored money).
pub fn format_places(amount: Decimal, places: u32) -> String {
    let mut a = amount.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
    a.rescale(places);
    a.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn parses_point_notation() {
        assert_eq!(parse_amount("12.3", Notation::Point), Ok(d("12.3")));
        assert_eq!(parse_amount("$1,234.56", Notation::Point), Ok(d("1234.56")));
        assert_eq!(parse_amount(" $8.11 ", Notation::Point), Ok(d("8.11")));
        assert_eq!(parse_amount("-$5.00", Notation::Point), Ok(d("-5.00")));
        assert_eq!(parse_amount("$-5.00", Notation::Point), Ok(d("-5.00")));
        assert_eq!(parse_amount(".5", Notation::Point), Ok(d("0.5")));
        assert_eq!(parse_amount("1,234,567", Notation::Point), Ok(d("1234567")));
    }

    #[test]
    fn parses_comma_notation() {
        assert_eq!(parse_amount("1.234,56", Notation::Comma), Ok(d("1234.56")));
        assert_eq!(parse_amount("R$ 10,5", Notation::Comma), Ok(d("10.5")));
    }

    #[test]
    fn rejects_with_reason() {
        assert_eq!(parse_amount("", Notation::Point), Err(MoneyError::Empty));
        assert!(matches!(
            parse_amount("12a", Notation::Point),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("1,23.00", Notation::Point),
            Err(MoneyError::BadGrouping(_))
        ));
        assert!(matches!(
            parse_amount("1.2.3", Notation::Point),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("1e5", Notation::Point),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("$", Notation::Point),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("12.", Notation::Point),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount(&"9".repeat(100), Notation::Point),
            Err(MoneyError::TooLong(100))
        ));
    }

    #[test]
    fn money_checks_places_and_sign() {
        assert!(Money::positive(d("1.234"), Currency::USD).is_err());
        assert_eq!(
            Money::positive(d("0"), Currency::USD),
            Err(MoneyError::NotPositive)
        );
        assert_eq!(
            Money::new(d("1.5"), Currency::USD)
                .unwrap()
                .amount()
                .to_string(),
            "1.50"
        );
        assert_eq!(
            Money::new(d("1.500"), Currency::USD)
                .unwrap()
                .amount()
                .to_string(),
            "1.50"
        );
        assert!(Money::new(d("1.5"), "JPY".parse().unwrap()).is_err());
    }

    #[test]
    fn currency_is_three_upper_letters() {
        assert!("usd".parse::<Currency>().is_err());
        assert!("US".parse::<Currency>().is_err());
        assert_eq!("BRL".parse::<Currency>(), Ok(Currency::BRL));
    }

    proptest! {
        #[test]
        fn point_notation_round_trips(cents in 0i64..10_000_000_000) {
            let amount = Decimal::new(cents, 2);
            let int = (cents / 100).to_string();
            let mut grouped = String::new();
            for (i, c) in int.chars().enumerate() {
                if i > 0 && (int.len() - i) % 3 == 0 { grouped.push(','); }
                grouped.push(c);
            }
            let text = format!("${grouped}.{:02}", cents % 100);
            prop_assert_eq!(parse_amount(&text, Notation::Point), Ok(amount));
            let comma = text.replace(',', "_").replace('.', ",").replace('_', ".");
            prop_assert_eq!(parse_amount(&comma, Notation::Comma), Ok(amount));
        }

        #[test]
        fn split_evenly_sums_exactly(cents in 1i64..100_000_000, parts in 1u32..60) {
            let total = Money::new(Decimal::new(cents, 2), Currency::USD).unwrap();
            let split = total.split_evenly(parts);
            prop_assert_eq!(split.len(), parts as usize);
            let sum = split.iter().fold(Money::zero(Currency::USD), |acc, m| acc.checked_add(*m).unwrap());
            prop_assert_eq!(sum, total);
            let max = split.iter().map(|m| m.amount()).max().unwrap();
            let min = split.iter().map(|m| m.amount()).min().unwrap();
            prop_assert!(max - min <= Decimal::new(1, 2));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = parse_amount(&s, Notation::Point);
            let _ = parse_amount(&s, Notation::Comma);
        }
    }
}
