//! The rules on one row, on its own: what is missing or malformed (errors), and the facts the
//! rules across rows need ([`RowFacts`]). Row-local so that rows can be checked in parallel;
//! the cross-row rules (duplicates, once-per-payer warnings) are in [`super::summary`].

use std::borrow::Cow;

use super::assemble::RawRow;
use super::checks::{check_amount, fast_cents, parse_date};
use super::field::Field;
use super::finding::{Finding, Reason};
use super::ids::{RoutingError, check_routing, is_valid_id};
use super::row::PayrollRow;

/// Fields holding ids: they must be usable as keys.
const ID_FIELDS: [Field; 4] = [
    Field::EmployeeId,
    Field::EmployeeBranch,
    Field::PayerId,
    Field::PlaidId,
];

/// One row, checked: its errors and the values the rules across rows use, each `None` when
/// the row has an error on it.
pub(crate) struct RowFacts<'a> {
    /// Row number within the part of the file it was read from (see `Tally::add`).
    pub(crate) row: u32,
    pub(crate) errors: Vec<Finding>,
    /// The amount in cents.
    pub(crate) cents: Option<i64>,
    pub(crate) employee: Option<Cow<'a, str>>,
    pub(crate) loan: Option<Cow<'a, str>>,
    pub(crate) payer: Option<Cow<'a, str>>,
    pub(crate) branch: Option<Cow<'a, str>>,
    pub(crate) ein: Option<Cow<'a, str>>,
    pub(crate) state: Option<Cow<'a, str>>,
    pub(crate) zip: Option<Cow<'a, str>>,
    /// The row typed, when asked for and the row has no error.
    pub(crate) typed: Option<Box<PayrollRow>>,
}

pub(crate) fn check_row<'a>(row: &RawRow<'a>, keep: bool) -> RowFacts<'a> {
    let mut errors = Vec::new();
    let mut error = |field: Field, reason: Reason| {
        errors.push(Finding {
            row: row.number(),
            field,
            reason,
        })
    };
    let mut usable = [true; Field::ALL.len()];
    for field in Field::ALL {
        if let Some(reason) = row.problem(field) {
            usable[field.index()] = false;
            error(field, reason);
        }
    }
    for field in ID_FIELDS {
        if usable[field.index()] && !is_valid_id(row.value(field)) {
            usable[field.index()] = false;
            error(field, Reason::BadId);
        }
    }
    if usable[Field::DateOfBirth.index()] && parse_date(row.value(Field::DateOfBirth)).is_none() {
        error(Field::DateOfBirth, Reason::DateUnparseable);
    }
    if usable[Field::AbaRouting.index()] {
        match check_routing(row.value(Field::AbaRouting)) {
            Ok(()) => {}
            Err(RoutingError::NotNineDigits) => {
                error(Field::AbaRouting, Reason::RoutingNotNineDigits)
            }
            Err(RoutingError::Checksum) => error(Field::AbaRouting, Reason::RoutingChecksum),
        }
    }
    let cents = if usable[Field::Amount.index()] {
        match amount_cents(row.value(Field::Amount)) {
            Ok(cents) => Some(cents),
            Err(reason) => {
                error(Field::Amount, reason);
                None
            }
        }
    } else {
        None
    };
    let get = |field: Field| usable[field.index()].then(|| row.value_cow(field).clone());
    let typed = match cents {
        Some(cents) if keep && errors.is_empty() => PayrollRow::from_raw(row, cents).map(Box::new),
        _ => None,
    };
    RowFacts {
        row: row.number(),
        cents,
        employee: get(Field::EmployeeId),
        loan: get(Field::LoanAccountNumber),
        payer: get(Field::PayerId),
        branch: get(Field::EmployeeBranch),
        ein: get(Field::Ein),
        state: get(Field::AddressState),
        zip: get(Field::AddressZip),
        typed,
        errors,
    }
}

/// The amount in cents: the common forms directly, anything else through the money parser.
fn amount_cents(text: &str) -> Result<i64, Reason> {
    if let Some(cents) = fast_cents(text) {
        return Ok(cents);
    }
    let money = check_amount(text)?;
    // `check_amount` returns at most two places and at most AMOUNT_USD_MAX: whole cents that
    // fit an i64.
    let mut amount = money.amount();
    amount.rescale(2);
    i64::try_from(amount.mantissa()).map_err(|_| Reason::AmountTooLarge)
}
