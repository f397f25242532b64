//! Why a payroll file cannot be read at all. Problems in single rows are not errors of this
//! kind but [`super::Finding`]s: HR sees all of them at once.

use super::assemble::{DEPTH_MAX, EndError, ROWS_MAX, ShapeError};

#[derive(Debug, thiserror::Error)]
pub enum PayrollError {
    #[error("the file is not well-formed XML at byte {position} (in row {row})")]
    Xml {
        position: u64,
        /// Rows opened before the error; 0 when it is before the first row.
        row: u32,
        #[source]
        source: quick_xml::Error,
    },
    #[error(
        "the file has a second top-level element at byte {position}; it must have one (<root>)"
    )]
    SecondRoot { position: u64 },
    #[error("elements are nested deeper than {DEPTH_MAX} levels at byte {position}")]
    TooDeep { position: u64 },
    #[error("the file has more than {ROWS_MAX} rows")]
    TooManyRows,
    #[error("the file ends before its elements are closed (in row {row})")]
    Unclosed { row: u32 },
    #[error("the file has no XML element")]
    NoElement,
    #[error("the file has no <row> elements")]
    NoRows,
}

impl PayrollError {
    pub(crate) fn shape(error: ShapeError, position: u64) -> Self {
        match error {
            ShapeError::SecondRoot => PayrollError::SecondRoot { position },
            ShapeError::TooDeep => PayrollError::TooDeep { position },
            ShapeError::TooManyRows => PayrollError::TooManyRows,
        }
    }

    pub(crate) fn end(error: EndError, row: u32) -> Self {
        match error {
            EndError::Unclosed => PayrollError::Unclosed { row },
            EndError::NoElement => PayrollError::NoElement,
            EndError::NoRows => PayrollError::NoRows,
        }
    }
}
