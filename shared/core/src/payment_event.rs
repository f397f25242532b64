//! Payment events from a lender's payment provider: the webhook body, its validation, its
//! canonical JSON form (the queue message and the stored copy) and the daily report writers.
//!
//! A webhook body is one JSON object:
//! `{"event_id","loan_id","borrower_id","employer_id","amount","currency","status","paid_at"}`.
//! `amount` is a JSON string or number written in plain decimal notation and is parsed exactly
//! (serde_json keeps a number's text, so no float is ever involved). Unknown fields are ignored
//! so that the provider can add some. Every rejection names the field and the reason and never
//! echoes the value, so that it can be logged even when a field holds personal data.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::money::{AMOUNT_TEXT_BYTES_MAX, format_places};
use crate::{Currency, Money, MoneyError, Secret};

/// Largest webhook body accepted (a real one is a few hundred bytes).
pub const WEBHOOK_BODY_BYTES_MAX: usize = 16 * 1024;
/// Longest id accepted (ids become table keys and report cells).
pub const ID_BYTES_MAX: usize = 128;
/// Most digits before the decimal point of an amount. It keeps any day's totals far from
/// `Decimal`'s limit (about 7.9e28) whatever the number of events.
pub const AMOUNT_INTEGER_DIGITS_MAX: usize = 15;
/// `paid_at` must fall within these years (UTC), so that its canonical text is always a
/// four-digit-year RFC 3339 timestamp that sorts chronologically.
pub const PAID_AT_YEAR_MIN: i32 = 1970;
pub const PAID_AT_YEAR_MAX: i32 = 9998;
/// Upper bound on the canonical JSON of any valid event (checked by a test); callers use it to
/// prove that an event always fits in one queue message.
pub const CANONICAL_JSON_BYTES_MAX: usize = 1024;

/// The header line of [`events_csv`].
pub const EVENTS_CSV_HEADER: &str =
    "event_id,paid_at,loan_id,borrower_id,employer_id,status,amount,currency";
/// The header line of [`summary_csv`].
pub const SUMMARY_CSV_HEADER: &str = "scope,employer_id,currency,status,count,amount_total";

/// Field names, as they appear in the webhook body and in [`FieldError::field`].
pub mod field {
    pub const BODY: &str = "body";
    pub const EVENT_ID: &str = "event_id";
    pub const LOAN_ID: &str = "loan_id";
    pub const BORROWER_ID: &str = "borrower_id";
    pub const EMPLOYER_ID: &str = "employer_id";
    pub const AMOUNT: &str = "amount";
    pub const CURRENCY: &str = "currency";
    pub const STATUS: &str = "status";
    pub const PAID_AT: &str = "paid_at";
}

/// Why a field was rejected. Never carries the field's value (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldReason {
    #[error("is required")]
    Missing,
    #[error("must be a {expected}")]
    WrongType { expected: &'static str },
    #[error("is {len} bytes; at most {max} are accepted")]
    BodyTooLarge { len: usize, max: usize },
    #[error("is not valid JSON ({0})")]
    NotJson(String),
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("must not be empty")]
    Empty,
    #[error("is {len} bytes long; at most {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "must start with a letter or digit and contain only letters, digits, '-', '_', '.', ':'"
    )]
    BadCharacters,
    #[error("is not an ISO 4217 currency code (three upper-case letters)")]
    BadCurrency,
    #[error("is not an exact decimal in plain notation (digits, optionally '.' and digits)")]
    NotExact,
    #[error("has more than {max} digits before the decimal point")]
    TooLarge { max: usize },
    #[error("has {places} decimal places; {currency} allows at most {max}")]
    TooManyDecimals {
        places: usize,
        max: u32,
        currency: Currency,
    },
    #[error("must be positive")]
    NotPositive,
    #[error("is not an RFC 3339 timestamp (e.g. 2025-01-31T12:00:00Z)")]
    BadTimestamp,
    #[error("must be between the years {PAID_AT_YEAR_MIN} and {PAID_AT_YEAR_MAX} (UTC)")]
    TimestampOutOfRange,
    #[error("is not one of paid, failed, reversed")]
    UnknownStatus,
}

/// A rejected webhook body: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct FieldError {
    pub field: &'static str,
    #[source]
    pub reason: FieldReason,
}

impl FieldError {
    fn new(field: &'static str, reason: FieldReason) -> Self {
        FieldError { field, reason }
    }
}

/// Checks an id: 1..=ID_BYTES_MAX bytes of `[A-Za-z0-9-_.:]`, starting with a letter or digit.
/// The narrow alphabet keeps ids safe as key parts (`#` is the key separator) and as CSV cells
/// (no separators, quotes, or a leading `=`/`+`/`-`/`@` that spreadsheets would evaluate).
fn check_id(text: &str) -> Result<(), FieldReason> {
    if text.is_empty() {
        return Err(FieldReason::Empty);
    }
    if text.len() > ID_BYTES_MAX {
        return Err(FieldReason::TooLong {
            len: text.len(),
            max: ID_BYTES_MAX,
        });
    }
    let first_ok = text.as_bytes()[0].is_ascii_alphanumeric();
    let rest_ok = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(FieldReason::BadCharacters)
    }
}

macro_rules! plain_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates the id (see the module's rules for ids).
            pub fn parse(text: &str) -> Result<Self, FieldReason> {
                check_id(text)?;
                Ok($name(text.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

plain_id!(
    /// The provider's id of the notification; our idempotency key.
    EventId
);
plain_id!(
    /// The lender's loan the payment is for.
    LoanId
);
plain_id!(
    /// The employer whose payroll made the payment.
    EmployerId
);

/// The borrower: personal data. `Debug` and `Display` print `***`; use [`BorrowerId::expose`]
/// only to store or report the value, never to log it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BorrowerId(Secret<String>);

impl BorrowerId {
    pub fn parse(text: &str) -> Result<Self, FieldReason> {
        check_id(text)?;
        Ok(BorrowerId(Secret::new(text.to_owned())))
    }
    /// The raw id. Never pass it to a log macro.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Display for BorrowerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What happened to the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaymentStatus {
    Paid,
    Failed,
    Reversed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 3] = [
        PaymentStatus::Paid,
        PaymentStatus::Failed,
        PaymentStatus::Reversed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Paid => "paid",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Reversed => "reversed",
        }
    }
}

impl FromStr for PaymentStatus {
    type Err = FieldReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(FieldReason::UnknownStatus)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One payment notification, validated. `Debug` masks the borrower id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    pub event_id: EventId,
    pub loan_id: LoanId,
    pub borrower_id: BorrowerId,
    pub employer_id: EmployerId,
    /// Strictly positive, with at most the currency's minor units.
    pub amount: Money,
    pub status: PaymentStatus,
    pub paid_at: DateTime<Utc>,
}

impl PaymentEvent {
    /// The UTC day the payment belongs to (the day of the per-day aggregates and reports).
    pub fn day(&self) -> NaiveDate {
        self.paid_at.date_naive()
    }

    /// `paid_at` in its canonical text: see [`format_paid_at`].
    pub fn paid_at_text(&self) -> String {
        format_paid_at(&self.paid_at)
    }

    /// The canonical JSON object: keys sorted, amount as a string with the currency's places,
    /// `paid_at` as [`format_paid_at`]. [`parse_webhook_body`] reads it back to an equal event,
    /// and the text of an event parsed from it is the same text.
    pub fn to_canonical_json(&self) -> String {
        // serde_json's map (without `preserve_order`) is a BTreeMap: keys come out sorted.
        let value = serde_json::json!({
            field::EVENT_ID: self.event_id.as_str(),
            field::LOAN_ID: self.loan_id.as_str(),
            field::BORROWER_ID: self.borrower_id.expose(),
            field::EMPLOYER_ID: self.employer_id.as_str(),
            field::AMOUNT: self.amount.amount().to_string(),
            field::CURRENCY: self.amount.currency().as_str(),
            field::STATUS: self.status.as_str(),
            field::PAID_AT: self.paid_at_text(),
        });
        value.to_string()
    }
}

/// RFC 3339 in UTC with a fixed nanosecond precision (`2025-01-31T12:00:00.000000000Z`):
/// exact, and of fixed width so that text order is time order.
pub fn format_paid_at(paid_at: &DateTime<Utc>) -> String {
    paid_at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses a day written `YYYY-MM-DD` (exactly: ten characters, zero-padded).
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Parses and validates a webhook body (the raw bytes, at most [`WEBHOOK_BODY_BYTES_MAX`]).
/// Also reads the canonical JSON back.
pub fn parse_webhook_body(body: &[u8]) -> Result<PaymentEvent, FieldError> {
    if body.len() > WEBHOOK_BODY_BYTES_MAX {
        return Err(FieldError::new(
            field::BODY,
            FieldReason::BodyTooLarge {
                len: body.len(),
                max: WEBHOOK_BODY_BYTES_MAX,
            },
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new(field::BODY, FieldReason::NotJson(e.to_string())))?;
    parse_event_json(&value)
}

/// Validates an already-parsed JSON value (an object with the webhook's fields).
pub fn parse_event_json(value: &Value) -> Result<PaymentEvent, FieldError> {
    let object = value
        .as_object()
        .ok_or(FieldError::new(field::BODY, FieldReason::NotAnObject))?;
    let id_field = |name: &'static str| {
        let text = string_field(object, name)?;
        check_id(text).map_err(|reason| FieldError::new(name, reason))?;
        Ok::<_, FieldError>(text)
    };
    // Each id was checked by `id_field`, so the typed constructors cannot fail here.
    let event_id = EventId(id_field(field::EVENT_ID)?.to_owned());
    let loan_id = LoanId(id_field(field::LOAN_ID)?.to_owned());
    let borrower_id = BorrowerId(Secret::new(id_field(field::BORROWER_ID)?.to_owned()));
    let employer_id = EmployerId(id_field(field::EMPLOYER_ID)?.to_owned());
    let currency = string_field(object, field::CURRENCY)?
        .parse::<Currency>()
        .map_err(|_| FieldError::new(field::CURRENCY, FieldReason::BadCurrency))?;
    let amount = amount_field(object, currency)?;
    let status = string_field(object, field::STATUS)?
        .parse::<PaymentStatus>()
        .map_err(|reason| FieldError::new(field::STATUS, reason))?;
    let paid_at = parse_paid_at(string_field(object, field::PAID_AT)?)
        .map_err(|reason| FieldError::new(field::PAID_AT, reason))?;
    Ok(PaymentEvent {
        event_id,
        loan_id,
        borrower_id,
        employer_id,
        amount,
        status,
        paid_at,
    })
}

fn present<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a Value, FieldError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(FieldError::new(name, FieldReason::Missing)),
        Some(value) => Ok(value),
    }
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, FieldError> {
    present(object, name)?.as_str().ok_or(FieldError::new(
        name,
        FieldReason::WrongType { expected: "string" },
    ))
}

fn amount_field(object: &Map<String, Value>, currency: Currency) -> Result<Money, FieldError> {
    let text = match present(object, field::AMOUNT)? {
        Value::String(s) => s.as_str(),
        // With serde_json's `arbitrary_precision` a number keeps its text exactly.
        Value::Number(n) => n.as_str(),
        _ => {
            return Err(FieldError::new(
                field::AMOUNT,
                FieldReason::WrongType {
                    expected: "string or number",
                },
            ));
        }
    };
    parse_exact_amount(text, currency).map_err(|reason| FieldError::new(field::AMOUNT, reason))
}

/// Plain decimal notation only: `-?digits(.digits)?`. No exponent, sign `+`, grouping or symbol:
/// a machine sends this, and anything looser is more likely a bug than a format.
fn parse_exact_amount(text: &str, currency: Currency) -> Result<Money, FieldReason> {
    if text.len() > AMOUNT_TEXT_BYTES_MAX {
        return Err(FieldReason::NotExact);
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !frac_part.is_none_or(all_digits) {
        return Err(FieldReason::NotExact);
    }
    let int_significant = int_part.trim_start_matches('0');
    let frac_significant = frac_part.unwrap_or("").trim_end_matches('0');
    let is_zero = int_significant.is_empty() && frac_significant.is_empty();
    if negative || is_zero {
        return Err(FieldReason::NotPositive);
    }
    if int_significant.len() > AMOUNT_INTEGER_DIGITS_MAX {
        return Err(FieldReason::TooLarge {
            max: AMOUNT_INTEGER_DIGITS_MAX,
        });
    }
    let max = currency.minor_units();
    if frac_significant.len() > max as usize {
        return Err(FieldReason::TooManyDecimals {
            places: frac_significant.len(),
            max,
            currency,
        });
    }
    let int_digits = if int_significant.is_empty() {
        "0"
    } else {
        int_significant
    };
    let exact = format!("{int_digits}.{frac_significant}0");
    // At most 15 integer and 3 fraction digits: always within Decimal's 28 digits.
    let amount = Decimal::from_str_exact(&exact).map_err(|_| FieldReason::NotExact)?;
    Money::positive(amount, currency).map_err(|e| match e {
        MoneyError::TooManyDecimals {
            places,
            max,
            currency,
        } => FieldReason::TooManyDecimals {
            places: places as usize,
            max,
            currency,
        },
        MoneyError::NotPositive => FieldReason::NotPositive,
        _ => FieldReason::NotExact,
    })
}

fn parse_paid_at(text: &str) -> Result<DateTime<Utc>, FieldReason> {
    let paid_at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| FieldReason::BadTimestamp)?
        .with_timezone(&Utc);
    if !(PAID_AT_YEAR_MIN..=PAID_AT_YEAR_MAX).contains(&paid_at.year()) {
        return Err(FieldReason::TimestampOutOfRange);
    }
    Ok(paid_at)
}

/// The day's events as CSV: [`EVENTS_CSV_HEADER`], then one row per event ordered by
/// `paid_at` then `event_id`, amounts with the currency's places. Same events (in any order),
/// same bytes. Contains the borrower id: it is a report for risk operations, not a log.
pub fn events_csv(events: &[PaymentEvent]) -> String {
    let mut sorted: Vec<&PaymentEvent> = events.iter().collect();
    sorted.sort_by(|a, b| (a.paid_at, &a.event_id).cmp(&(b.paid_at, &b.event_id)));
    let mut out = String::with_capacity(64 + events.len() * 160);
    out.push_str(EVENTS_CSV_HEADER);
    out.push('\n');
    for event in sorted {
        let paid_at = event.paid_at_text();
        let currency = event.amount.currency();
        let amount = format_places(event.amount.amount(), event.amount.currency().minor_units());
        let cells = [
            event.event_id.as_str(),
            &paid_at,
            event.loan_id.as_str(),
            event.borrower_id.expose(),
            event.employer_id.as_str(),
            event.status.as_str(),
            &amount,
            currency.as_str(),
        ];
        push_row(&mut out, &cells);
    }
    out
}

/// A count and an exact total of amounts in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub amount_total: Decimal,
}

impl Tally {
    fn add(&mut self, amount: Decimal) -> Result<(), MoneyError> {
        self.count += 1;
        self.amount_total = self
            .amount_total
            .checked_add(amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(())
    }
}

/// Counts and totals of a set of events: by (currency, status), and by
/// (employer, currency, status). Amounts of different currencies or statuses are never summed
/// together: a reversal is not a payment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub by_status: BTreeMap<(Currency, PaymentStatus), Tally>,
    pub by_employer: BTreeMap<(EmployerId, Currency, PaymentStatus), Tally>,
}

impl Summary {
    /// Fails only if a total overflows, which events parsed by [`parse_webhook_body`] cannot do
    /// (see [`AMOUNT_INTEGER_DIGITS_MAX`]).
    pub fn of(events: &[PaymentEvent]) -> Result<Summary, MoneyError> {
        let zero = Tally {
            count: 0,
            amount_total: Decimal::ZERO,
        };
        let mut summary = Summary::default();
        for event in events {
            let currency = event.amount.currency();
            let amount = event.amount.amount();
            summary
                .by_status
                .entry((currency, event.status))
                .or_insert(zero)
                .add(amount)?;
            summary
                .by_employer
                .entry((event.employer_id.clone(), currency, event.status))
                .or_insert(zero)
                .add(amount)?;
        }
        Ok(summary)
    }
}

/// The day's summary as CSV: [`SUMMARY_CSV_HEADER`], then `all` rows (one per currency and
/// status) and `employer` rows (one per employer, currency and status), each in key order, with
/// totals in the currency's places. Deterministic: same events, same bytes.
pub fn summary_csv(events: &[PaymentEvent]) -> Result<String, MoneyError> {
    let summary = Summary::of(events)?;
    let mut out = String::new();
    out.push_str(SUMMARY_CSV_HEADER);
    out.push('\n');
    for ((currency, status), tally) in &summary.by_status {
        push_tally_row(&mut out, "all", "", *currency, *status, tally);
    }
    for ((employer, currency, status), tally) in &summary.by_employer {
        push_tally_row(
            &mut out,
            "employer",
            employer.as_str(),
            *currency,
            *status,
            tally,
        );
    }
    Ok(out)
}

fn push_tally_row(
    out: &mut String,
    scope: &str,
    employer: &str,
    currency: Currency,
    status: PaymentStatus,
    tally: &Tally,
) {
    let count = tally.count.to_string();
    let total = format_places(tally.amount_total, currency.minor_units());
    push_row(
        out,
        &[
            scope,
            employer,
            currency.as_str(),
            status.as_str(),
            &count,
            &total,
        ],
    );
}

/// Appends one CSV row (RFC 4180 quoting where a cell needs it; validated ids never do).
fn push_row(out: &mut String, cells: &[&str]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn body(overrides: &[(&str, Value)]) -> Vec<u8> {
        let mut object = serde_json::json!({
            "event_id": "evt_001",
            "loan_id": "loan-42",
            "borrower_id": "123.456.789-09",
            "employer_id": "emp_acme",
            "amount": "150.25",
            "currency": "BRL",
            "status": "paid",
            "paid_at": "2025-01-31T12:30:00Z",
            "provider_extra": {"ignored": true}
        });
        for (k, v) in overrides {
            if v.is_null() {
                object.as_object_mut().unwrap().remove(*k);
            } else {
                object[*k] = v.clone();
            }
        }
        object.to_string().into_bytes()
    }

    fn err(overrides: &[(&str, Value)]) -> FieldError {
        parse_webhook_body(&body(overrides)).unwrap_err()
    }

    fn reason(field: &'static str, reason: FieldReason) -> FieldError {
        FieldError { field, reason }
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn parses_a_valid_body() {
        let event = parse_webhook_body(&body(&[])).unwrap();
        assert_eq!(event.event_id.as_str(), "evt_001");
        assert_eq!(event.loan_id.as_str(), "loan-42");
        assert_eq!(event.borrower_id.expose(), "123.456.789-09");
        assert_eq!(event.employer_id.as_str(), "emp_acme");
        assert_eq!(
            event.amount,
            Money::new(d("150.25"), Currency::BRL).unwrap()
        );
        assert_eq!(event.status, PaymentStatus::Paid);
        assert_eq!(
            event.paid_at,
            Utc.with_ymd_and_hms(2025, 1, 31, 12, 30, 0).unwrap()
        );
        assert_eq!(event.day(), NaiveDate::from_ymd_opt(2025, 1, 31).unwrap());
    }

    #[test]
    fn amount_may_be_a_number_and_is_exact() {
        // 0.1 + 0.2 style values stay exact: the number's text is used, never an f64.
        let raw = br#"{"event_id":"e1","loan_id":"l1","borrower_id":"b1","employer_id":"m1",
            "amount":0.10,"currency":"USD","status":"failed","paid_at":"2025-01-31T12:30:00Z"}"#;
        let event = parse_webhook_body(raw).unwrap();
        assert_eq!(event.amount.amount(), d("0.10"));
        assert_eq!(event.amount.amount().to_string(), "0.10");
        let big = body(&[(
            "amount",
            serde_json::from_str("999999999999999.99").unwrap(),
        )]);
        assert_eq!(
            parse_webhook_body(&big).unwrap().amount.amount(),
            d("999999999999999.99")
        );
        let trailing = body(&[("amount", Value::from("12.3000"))]);
        assert_eq!(
            parse_webhook_body(&trailing)
                .unwrap()
                .amount
                .amount()
                .to_string(),
            "12.30"
        );
    }

    #[test]
    fn zero_decimal_and_three_decimal_currencies() {
        let jpy = body(&[("currency", "JPY".into()), ("amount", "1500".into())]);
        assert_eq!(
            parse_webhook_body(&jpy)
                .unwrap()
                .amount
                .amount()
                .to_string(),
            "1500"
        );
        let kwd = body(&[("currency", "KWD".into()), ("amount", "1.125".into())]);
        assert_eq!(
            parse_webhook_body(&kwd)
                .unwrap()
                .amount
                .amount()
                .to_string(),
            "1.125"
        );
        assert_eq!(
            err(&[("currency", "JPY".into()), ("amount", "1500.5".into())]),
            reason(
                "amount",
                FieldReason::TooManyDecimals {
                    places: 1,
                    max: 0,
                    currency: "JPY".parse().unwrap()
                }
            )
        );
    }

    #[test]
    fn rejects_the_body_as_a_whole() {
        assert_eq!(
            parse_webhook_body(b"[1]").unwrap_err(),
            reason("body", FieldReason::NotAnObject)
        );
        assert_eq!(
            parse_webhook_body(b"\"x\"").unwrap_err(),
            reason("body", FieldReason::NotAnObject)
        );
        let not_json = parse_webhook_body(b"{nope").unwrap_err();
        assert_eq!(not_json.field, "body");
        assert!(matches!(not_json.reason, FieldReason::NotJson(_)));
        let huge = vec![b' '; WEBHOOK_BODY_BYTES_MAX + 1];
        assert_eq!(
            parse_webhook_body(&huge).unwrap_err(),
            reason(
                "body",
                FieldReason::BodyTooLarge {
                    len: WEBHOOK_BODY_BYTES_MAX + 1,
                    max: WEBHOOK_BODY_BYTES_MAX
                }
            )
        );
    }

    #[test]
    fn names_the_missing_or_mistyped_field() {
        for name in [
            "event_id",
            "loan_id",
            "borrower_id",
            "employer_id",
            "amount",
            "currency",
            "status",
            "paid_at",
        ] {
            assert_eq!(
                err(&[(name, Value::Null)]),
                reason(name, FieldReason::Missing)
            );
            let explicit_null = body(&[]).replace_null(name);
            assert_eq!(
                parse_webhook_body(&explicit_null).unwrap_err(),
                reason(name, FieldReason::Missing)
            );
        }
        assert_eq!(
            err(&[("loan_id", 42.into())]),
            reason("loan_id", FieldReason::WrongType { expected: "string" })
        );
        assert_eq!(
            err(&[("amount", true.into())]),
            reason(
                "amount",
                FieldReason::WrongType {
                    expected: "string or number"
                }
            )
        );
        assert_eq!(
            err(&[("paid_at", 1_700_000_000.into())]),
            reason("paid_at", FieldReason::WrongType { expected: "string" })
        );
    }

    trait ReplaceNull {
        fn replace_null(&self, name: &str) -> Vec<u8>;
    }
    impl ReplaceNull for Vec<u8> {
        fn replace_null(&self, name: &str) -> Vec<u8> {
            let mut v: Value = serde_json::from_slice(self).unwrap();
            v[name] = Value::Null;
            v.to_string().into_bytes()
        }
    }

    #[test]
    fn checks_ids() {
        assert_eq!(
            err(&[("event_id", "".into())]),
            reason("event_id", FieldReason::Empty)
        );
        let long = "e".repeat(ID_BYTES_MAX + 1);
        assert_eq!(
            err(&[("employer_id", long.into())]),
            reason(
                "employer_id",
                FieldReason::TooLong {
                    len: ID_BYTES_MAX + 1,
                    max: ID_BYTES_MAX
                }
            )
        );
        assert!(
            parse_webhook_body(&body(&[("event_id", "e".repeat(ID_BYTES_MAX).into())])).is_ok()
        );
        for bad in ["a b", "=cmd()", "-1", "a#b", "a,b", "é", "a\"b"] {
            assert_eq!(
                err(&[("borrower_id", bad.into())]),
                reason("borrower_id", FieldReason::BadCharacters),
                "{bad}"
            );
        }
    }

    #[test]
    fn checks_amounts() {
        let amount_err = |v: Value| err(&[("amount", v)]);
        for bad in [
            "", "abc", "1e5", "1E5", "+5", "1.", ".5", "1,50", "$1.50", " 1.50", "NaN", "1.2.3",
        ] {
            assert_eq!(
                amount_err(bad.into()),
                reason("amount", FieldReason::NotExact),
                "{bad:?}"
            );
        }
        let exponent: Value = serde_json::from_str("1e2").unwrap();
        assert_eq!(
            amount_err(exponent),
            reason("amount", FieldReason::NotExact)
        );
        for zero_or_negative in ["0", "0.00", "-1.00", "-0"] {
            assert_eq!(
                amount_err(zero_or_negative.into()),
                reason("amount", FieldReason::NotPositive),
                "{zero_or_negative}"
            );
        }
        assert_eq!(
            amount_err("1.005".into()),
            reason(
                "amount",
                FieldReason::TooManyDecimals {
                    places: 3,
                    max: 2,
                    currency: Currency::BRL
                }
            )
        );
        assert_eq!(
            amount_err("1000000000000000".into()),
            reason("amount", FieldReason::TooLarge { max: 15 })
        );
        assert_eq!(
            amount_err("9".repeat(80).into()),
            reason("amount", FieldReason::NotExact)
        );
        // Trailing zeros are not places: 1.000… is exactly 1.
        let many_zeros = body(&[("amount", format!("1.{}", "0".repeat(40)).into())]);
        assert_eq!(
            parse_webhook_body(&many_zeros)
                .unwrap()
                .amount
                .amount()
                .to_string(),
            "1.00"
        );
        assert_eq!(
            parse_webhook_body(&body(&[("amount", "0001.50".into())]))
                .unwrap()
                .amount
                .amount(),
            d("1.50")
        );
    }

    #[test]
    fn checks_currency_status_and_time() {
        assert_eq!(
            err(&[("currency", "brl".into())]),
            reason("currency", FieldReason::BadCurrency)
        );
        assert_eq!(
            err(&[("currency", "REAL".into())]),
            reason("currency", FieldReason::BadCurrency)
        );
        assert_eq!(
            err(&[("status", "PAID".into())]),
            reason("status", FieldReason::UnknownStatus)
        );
        assert_eq!(
            err(&[("status", "pending".into())]),
            reason("status", FieldReason::UnknownStatus)
        );
        for bad in [
            "2025-01-31",
            "2025-01-31T12:30:00",
            "31/01/2025 12:30",
            "2025-02-30T00:00:00Z",
        ] {
            assert_eq!(
                err(&[("paid_at", bad.into())]),
                reason("paid_at", FieldReason::BadTimestamp),
                "{bad}"
            );
        }
        assert_eq!(
            err(&[("paid_at", "1969-12-31T23:59:59Z".into())]),
            reason("paid_at", FieldReason::TimestampOutOfRange)
        );
        let offset =
            parse_webhook_body(&body(&[("paid_at", "2025-01-31T23:30:00-03:00".into())])).unwrap();
        assert_eq!(
            offset.paid_at,
            Utc.with_ymd_and_hms(2025, 2, 1, 2, 30, 0).unwrap()
        );
        assert_eq!(offset.day(), NaiveDate::from_ymd_opt(2025, 2, 1).unwrap());
        for status in ["paid", "failed", "reversed"] {
            assert_eq!(
                parse_webhook_body(&body(&[("status", status.into())]))
                    .unwrap()
                    .status
                    .as_str(),
                status
            );
        }
    }

    #[test]
    fn errors_never_echo_values() {
        let secret = "98765432100";
        for name in ["borrower_id", "status", "currency", "amount", "paid_at"] {
            let e = err(&[(name, format!("{secret} x").into())]);
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }

    #[test]
    fn debug_masks_the_borrower() {
        let event = parse_webhook_body(&body(&[])).unwrap();
        let debug = format!("{event:?}");
        assert!(!debug.contains("123.456.789-09"), "{debug}");
        assert!(debug.contains("evt_001"));
        assert_eq!(event.borrower_id.to_string(), "***");
    }

    #[test]
    fn canonical_json_is_normalised_and_round_trips() {
        let event = parse_webhook_body(&body(&[
            ("amount", serde_json::from_str("150.2").unwrap()),
            ("paid_at", "2025-01-31T09:30:00.5-03:00".into()),
        ]))
        .unwrap();
        let canonical = event.to_canonical_json();
        assert_eq!(
            canonical,
            r#"{"amount":"150.20","borrower_id":"123.456.789-09","currency":"BRL","employer_id":"emp_acme","event_id":"evt_001","loan_id":"loan-42","paid_at":"2025-01-31T12:30:00.500000000Z","status":"paid"}"#
        );
        let again = parse_webhook_body(canonical.as_bytes()).unwrap();
        assert_eq!(again, event);
        assert_eq!(again.to_canonical_json(), canonical);
    }

    #[test]
    fn canonical_json_of_the_largest_event_fits_the_bound() {
        let id = "x".repeat(ID_BYTES_MAX);
        let event = parse_webhook_body(&body(&[
            ("event_id", id.clone().into()),
            ("loan_id", id.clone().into()),
            ("borrower_id", id.clone().into()),
            ("employer_id", id.into()),
            ("currency", "KWD".into()),
            ("amount", "999999999999999.999".into()),
            ("status", "reversed".into()),
            ("paid_at", "9998-12-31T23:59:59.999999999Z".into()),
        ]))
        .unwrap();
        assert!(event.to_canonical_json().len() <= CANONICAL_JSON_BYTES_MAX);
    }

    #[test]
    fn parses_days_strictly() {
        assert_eq!(
            parse_day("2025-01-31"),
            NaiveDate::from_ymd_opt(2025, 1, 31)
        );
        for bad in [
            "2025-1-31",
            "2025-02-30",
            "20250131",
            "2025-01-31T",
            "",
            "２０２５-01-31",
            "+202-01-31",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    fn event(
        id: &str,
        employer: &str,
        amount: &str,
        currency: &str,
        status: &str,
        paid_at: &str,
    ) -> PaymentEvent {
        let raw = serde_json::json!({
            "event_id": id, "loan_id": "loan-1", "borrower_id": "b-1", "employer_id": employer,
            "amount": amount, "currency": currency, "status": status, "paid_at": paid_at,
        });
        parse_webhook_body(raw.to_string().as_bytes()).unwrap()
    }

    fn sample_day() -> Vec<PaymentEvent> {
        vec![
            event(
                "evt_b",
                "emp_2",
                "10.1",
                "BRL",
                "paid",
                "2025-01-31T10:00:00Z",
            ),
            event(
                "evt_a",
                "emp_1",
                "0.10",
                "BRL",
                "paid",
                "2025-01-31T10:00:00Z",
            ),
            event(
                "evt_c",
                "emp_1",
                "0.20",
                "BRL",
                "paid",
                "2025-01-31T08:00:00Z",
            ),
            event(
                "evt_d",
                "emp_1",
                "5",
                "USD",
                "reversed",
                "2025-01-31T09:00:00Z",
            ),
            event(
                "evt_e",
                "emp_2",
                "7.35",
                "BRL",
                "failed",
                "2025-01-31T23:59:59.999Z",
            ),
        ]
    }

    #[test]
    fn events_csv_orders_by_time_then_id() {
        let csv = events_csv(&sample_day());
        let expected = "\
event_id,paid_at,loan_id,borrower_id,employer_id,status,amount,currency
evt_c,2025-01-31T08:00:00.000000000Z,loan-1,b-1,emp_1,paid,0.20,BRL
evt_d,2025-01-31T09:00:00.000000000Z,loan-1,b-1,emp_1,reversed,5.00,USD
evt_a,2025-01-31T10:00:00.000000000Z,loan-1,b-1,emp_1,paid,0.10,BRL
evt_b,2025-01-31T10:00:00.000000000Z,loan-1,b-1,emp_2,paid,10.10,BRL
evt_e,2025-01-31T23:59:59.999000000Z,loan-1,b-1,emp_2,failed,7.35,BRL
";
        assert_eq!(csv, expected);
        let mut reversed = sample_day();
        reversed.reverse();
        assert_eq!(events_csv(&reversed), expected);
        assert_eq!(events_csv(&[]), format!("{EVENTS_CSV_HEADER}\n"));
    }

    #[test]
    fn summary_csv_totals_exactly_by_status_and_employer() {
        let csv = summary_csv(&sample_day()).unwrap();
        let expected = "\
scope,employer_id,currency,status,count,amount_total
all,,BRL,paid,3,10.40
all,,BRL,failed,1,7.35
all,,USD,reversed,1,5.00
employer,emp_1,BRL,paid,2,0.30
employer,emp_1,USD,reversed,1,5.00
employer,emp_2,BRL,paid,1,10.10
employer,emp_2,BRL,failed,1,7.35
";
        assert_eq!(csv, expected);
        let mut shuffled = sample_day();
        shuffled.rotate_left(2);
        assert_eq!(summary_csv(&shuffled).unwrap(), expected);
        assert_eq!(summary_csv(&[]).unwrap(), format!("{SUMMARY_CSV_HEADER}\n"));
    }

    #[test]
    fn push_row_quotes_when_needed() {
        let mut out = String::new();
        push_row(&mut out, &["a,b", "say \"hi\"", "plain"]);
        assert_eq!(out, "\"a,b\",\"say \"\"hi\"\"\",plain\n");
    }

    fn id_strategy() -> impl Strategy<Value = String> {
        "[A-Za-z0-9][A-Za-z0-9._:-]{0,40}"
    }

    prop_compose! {
        fn valid_event()(
            event_id in id_strategy(),
            loan_id in id_strategy(),
            borrower_id in id_strategy(),
            employer_id in id_strategy(),
            units in 1i64..1_000_000_000_000,
            currency in prop::sample::select(vec!["BRL", "USD", "JPY", "KWD", "EUR"]),
            status in prop::sample::select(vec!["paid", "failed", "reversed"]),
            secs in 0i64..253_000_000_000,
            nanos in 0u32..1_000_000_000,
            as_number in any::<bool>(),
        ) -> Vec<u8> {
            let currency: Currency = currency.parse().unwrap();
            let amount = Decimal::new(units, currency.minor_units()).to_string();
            let amount = if as_number { serde_json::from_str::<Value>(&amount).unwrap() } else { Value::from(amount) };
            let paid_at = Utc.timestamp_opt(secs, nanos).unwrap().to_rfc3339();
            serde_json::json!({
                "event_id": event_id, "loan_id": loan_id, "borrower_id": borrower_id,
                "employer_id": employer_id, "amount": amount, "currency": currency.as_str(),
                "status": status, "paid_at": paid_at,
            }).to_string().into_bytes()
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_webhook_body(&bytes);
        }

        #[test]
        fn parse_never_panics_on_json_like_text(text in r#"\{("[a-z_]{1,12}":("[ -~]{0,20}"|-?[0-9.eE+-]{1,30}|null|true|\[\]),?){0,10}\}"#) {
            let _ = parse_webhook_body(text.as_bytes());
        }

        #[test]
        fn canonical_json_round_trips(raw in valid_event()) {
            let event = parse_webhook_body(&raw).unwrap();
            let canonical = event.to_canonical_json();
            prop_assert!(canonical.len() <= CANONICAL_JSON_BYTES_MAX);
            let again = parse_webhook_body(canonical.as_bytes()).unwrap();
            prop_assert_eq!(&again, &event);
            prop_assert_eq!(again.to_canonical_json(), canonical);
        }

        #[test]
        fn reports_do_not_depend_on_input_order(raws in proptest::collection::vec(valid_event(), 0..12), seed in any::<u64>()) {
            let events: Vec<PaymentEvent> = raws.iter().map(|r| parse_webhook_body(r).unwrap()).collect();
            let mut shuffled = events.clone();
            // A deterministic permutation driven by the seed.
            let len = shuffled.len().max(1) as u64;
            shuffled.rotate_left((seed % len) as usize);
            shuffled.reverse();
            prop_assert_eq!(events_csv(&events), events_csv(&shuffled));
            prop_assert_eq!(summary_csv(&events).unwrap(), summary_csv(&shuffled).unwrap());
            prop_assert_eq!(events_csv(&events).lines().count(), events.len() + 1);
        }
    }
}
