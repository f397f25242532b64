//! What validation says about a row: errors block approval, warnings do not.
//!
//! A reason never quotes personal data (names, dates of birth, phone or account numbers): HR
//! finds the value in its own file by row and field.

use std::fmt;

use serde::{Serialize, Serializer};

use super::field::Field;
use super::ids::PAYROLL_ID_BYTES_MAX;

/// One problem found in the file: the row (numbered from 1, in file order), the field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub row: u32,
    pub field: Field,
    pub reason: Reason,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        self.reason.severity()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Blocks approval of the whole file.
    Error,
    /// Shown to HR; does not block approval.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    // Errors.
    /// The element is absent, empty or only whitespace.
    Missing,
    /// The element appears more than once in the row: which one is meant is unknown.
    Repeated,
    /// The value is longer than the parser keeps.
    TooLong {
        max_bytes: usize,
    },
    /// An entity other than the five XML ones or a character reference, e.g. `&nbsp;`.
    UnknownEntity,
    /// A character reference that is not a character, e.g. `&#0;`.
    BadCharacterReference,
    /// An id with characters other than letters, digits, `-`, `_`, `.`, or too long.
    BadId,
    AmountNotANumber,
    AmountNegative,
    AmountZero,
    AmountTooManyDecimals {
        places: u32,
    },
    AmountTooLarge,
    RoutingNotNineDigits,
    RoutingChecksum,
    DateUnparseable,
    // Warnings.
    EinNotNineDigits {
        digits: usize,
    },
    ZipMalformed,
    UnknownState,
    ZipNotInState,
    /// The employee already has a row; `same_loan` when it pays the same loan account too,
    /// which looks like the same payment entered twice.
    DuplicateEmployee {
        first_row: u32,
        same_loan: bool,
    },
}

impl Reason {
    pub fn severity(&self) -> Severity {
        match self {
            Reason::EinNotNineDigits { .. }
            | Reason::ZipMalformed
            | Reason::UnknownState
            | Reason::ZipNotInState
            | Reason::DuplicateEmployee { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("is missing or empty"),
            Reason::Repeated => f.write_str("appears more than once in the row"),
            Reason::TooLong { max_bytes } => write!(f, "is longer than {max_bytes} bytes"),
            Reason::UnknownEntity => {
                f.write_str("contains an unknown entity (only &amp; &lt; &gt; &apos; &quot; and &#N; are allowed)")
            }
            Reason::BadCharacterReference => f.write_str("contains an invalid character reference"),
            Reason::BadId => write!(
                f,
                "must be 1 to {PAYROLL_ID_BYTES_MAX} letters, digits, '-', '_' or '.'"
            ),
            Reason::AmountNotANumber => f.write_str("is not an amount like $1,234.56"),
            Reason::AmountNegative => f.write_str("is negative"),
            Reason::AmountZero => f.write_str("is zero"),
            Reason::AmountTooManyDecimals { places } => {
                write!(f, "has {places} decimal places; at most 2 are allowed")
            }
            Reason::AmountTooLarge => write!(
                f,
                "is over the limit of ${} for one payment",
                super::AMOUNT_USD_MAX
            ),
            Reason::RoutingNotNineDigits => f.write_str("must be 9 digits"),
            Reason::RoutingChecksum => f.write_str("fails the ABA routing number checksum"),
            Reason::DateUnparseable => f.write_str("is not a date like MM-DD-YYYY"),
            Reason::EinNotNineDigits { digits } => write!(
                f,
                "has {digits} digits; an EIN has 9 (reported once per payer)"
            ),
            Reason::ZipMalformed => {
                f.write_str("is not a ZIP code like 12345 or 12345-6789 (reported once per payer)")
            }
            Reason::UnknownState => {
                f.write_str("is not a US state or territory code (reported once per payer)")
            }
            Reason::ZipNotInState => {
                f.write_str("does not belong to the address's state (reported once per payer)")
            }
            Reason::DuplicateEmployee {
                first_row,
                same_loan: true,
            } => write!(
                f,
                "same employee and loan account as row {first_row}: possibly the same payment twice"
            ),
            Reason::DuplicateEmployee {
                first_row,
                same_loan: false,
            } => write!(f, "employee already has a row (row {first_row})"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_serialise_as_row_field_reason() {
        let f = Finding {
            row: 3,
            field: Field::AbaRouting,
            reason: Reason::RoutingChecksum,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"row":3,"field":"Payor/ABARouting","reason":"fails the ABA routing number checksum"}"#
        );
        assert_eq!(f.severity(), Severity::Error);
        assert_eq!(Reason::ZipNotInState.severity(), Severity::Warning);
    }
}
