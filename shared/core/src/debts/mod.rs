//! Debt intake for a Brazilian collection bureau: client files in many formats → canonical
//! debt records, every line validated (CPF check digits, name, positive amount with at most
//! two decimals, a real missed date not in the future, no repeated client reference), every
//! rejection kept with its physical line number, field and reason. Pure: the pipeline in
//! `payops_app::debts` and `payops debts check` feed it bytes.

pub mod check;
pub mod cpf;
pub mod encoding;
pub mod field;
pub mod format;
pub mod generate;
pub mod line;
pub mod record;
pub mod values;

#[cfg(test)]
mod tests;

pub use check::{
    CheckReport, Checker, FileChecker, FileError, LineSplitter, Outcome, ReferenceSet, Rejection,
    check_bytes, sniff,
};
pub use cpf::{Cpf, CpfError};
pub use encoding::{DecodeError, Encoding};
pub use field::{DebtField, FIELD_COUNT, Target};
pub use format::{
    DEFAULT_FORMAT, DateFormat, DebtFormat, DecimalMark, FormatError, HeaderError, Layout, Plan,
    builtin, builtin_named,
};
pub use line::{DebtView, LineParser, Parsed, decode_header};
pub use record::DebtRecord;

/// The bureau's civil time is Brasília time (UTC−3, no daylight saving since 2019): a missed
/// date is "in the future" relative to the bureau's today, not UTC's.
pub const BUREAU_UTC_OFFSET_SECONDS: i32 = -3 * 3600;

/// The bureau's date at instant `now`.
pub fn bureau_today(now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    match chrono::FixedOffset::east_opt(BUREAU_UTC_OFFSET_SECONDS) {
        Some(offset) => now.with_timezone(&offset).date_naive(),
        // The offset is a constant well inside ±24 h.
        None => now.date_naive(),
    }
}
