//! Loans from JSON (the API) and from CSV (the bulk import), with the same validation.
//!
//! CSV header: `loan_id,borrower_id,employer_id,amount,currency[,declared_schedule][,amount_tolerance]`;
//! empty optional cells take the defaults. Errors name the line and the column.

use payops_core::money::{Notation, parse_amount};
use payops_core::paydays::Schedule;
use payops_core::{Currency, Money};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::LoansError;
use super::store::{AMOUNT_TOLERANCE_DEFAULT, NewLoan};

pub const CSV_REQUIRED_COLUMNS: [&str; 5] = [
    "loan_id",
    "borrower_id",
    "employer_id",
    "amount",
    "currency",
];
pub const CSV_OPTIONAL_COLUMNS: [&str; 2] = ["declared_schedule", "amount_tolerance"];
/// Most rows one import file may hold.
pub const IMPORT_ROWS_MAX: usize = 5_000_000;

fn amount_text(field: &str, text: &str) -> Result<Decimal, LoansError> {
    parse_amount(text, Notation::Point).map_err(|e| LoansError::invalid(field, e.to_string()))
}

/// A loan from its fields as text (`declared_schedule` and `amount_tolerance` may be empty).
pub fn new_loan_from_fields(
    loan_id: &str,
    borrower_id: &str,
    employer_id: &str,
    amount: &str,
    currency: &str,
    declared_schedule: Option<&str>,
    amount_tolerance: Option<&str>,
) -> Result<NewLoan, LoansError> {
    let currency: Currency = currency
        .parse()
        .map_err(|_| LoansError::invalid("currency", "is not a supported ISO 4217 code"))?;
    let instalment = Money::new(amount_text("amount", amount)?, currency)
        .map_err(|e| LoansError::invalid("amount", e.to_string()))?;
    let declared_schedule = match declared_schedule.filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<Schedule>()
                .map_err(|e| LoansError::invalid("declared_schedule", e.to_string()))?,
        ),
    };
    let tolerance = match amount_tolerance.filter(|s| !s.is_empty()) {
        None => AMOUNT_TOLERANCE_DEFAULT,
        Some(text) => amount_text("amount_tolerance", text)?,
    };
    let loan = NewLoan {
        loan_id: loan_id.to_owned(),
        borrower_id: borrower_id.to_owned(),
        employer_id: employer_id.to_owned(),
        instalment,
        tolerance,
        declared_schedule,
    };
    loan.validate()?;
    Ok(loan)
}

fn json_text(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, LoansError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // Numbers keep their exact text (serde_json's arbitrary precision).
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(LoansError::invalid(field, "must be a string")),
    }
}

/// A loan from the body of `POST /loans`.
pub fn new_loan_from_json(body: &Value) -> Result<NewLoan, LoansError> {
    let obj = body
        .as_object()
        .ok_or_else(|| LoansError::invalid("body", "must be a JSON object"))?;
    let required = |field: &str| {
        json_text(obj, field)?.ok_or_else(|| LoansError::invalid(field, "is required"))
    };
    new_loan_from_fields(
        &required("loan_id")?,
        &required("borrower_id")?,
        &required("employer_id")?,
        &required("amount")?,
        &required("currency")?,
        json_text(obj, "declared_schedule")?.as_deref(),
        json_text(obj, "amount_tolerance")?.as_deref(),
    )
}

/// A bad import file: the line (the header is line 1) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct ImportError {
    pub line: u64,
    #[source]
    pub source: LoansError,
}

/// Parses a whole import file; the first bad line stops it (nothing is imported from a file
/// with errors, so a fixed file can simply be imported again).
pub fn parse_loans_csv(input: impl std::io::Read) -> Result<Vec<NewLoan>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header_error = |reason: String| ImportError {
        line: 1,
        source: LoansError::invalid("header", reason),
    };
    let headers = reader
        .headers()
        .map_err(|e| header_error(e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let mut required = [0usize; 5];
    for (slot, name) in required.iter_mut().zip(CSV_REQUIRED_COLUMNS) {
        *slot = column(name).ok_or_else(|| header_error(format!("missing column {name}")))?;
    }
    let schedule_col = column(CSV_OPTIONAL_COLUMNS[0]);
    let tolerance_col = column(CSV_OPTIONAL_COLUMNS[1]);
    let mut loans = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(loans),
            Ok(true) => {}
            Err(e) => {
                return Err(ImportError {
                    line,
                    source: LoansError::invalid("row", e.to_string()),
                });
            }
        }
        if loans.len() >= IMPORT_ROWS_MAX {
            return Err(ImportError {
                line,
                source: LoansError::invalid("file", format!("more than {IMPORT_ROWS_MAX} rows")),
            });
        }
        let line = record.position().map_or(line, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("");
        let loan = new_loan_from_fields(
            cell(required[0]),
            cell(required[1]),
            cell(required[2]),
            cell(required[3]),
            cell(required[4]),
            schedule_col.map(cell),
            tolerance_col.map(cell),
        )
        .map_err(|source| ImportError { line, source })?;
        loans.push(loan);
    }
}
