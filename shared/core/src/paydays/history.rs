//! The pay-history CSV: header `borrower_id,paid_at,amount`, dates `YYYY-MM-DD`, amounts exact
//! decimals. Rows are grouped by borrower in order of first appearance.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::money::{Notation, parse_amount};

pub const HISTORY_CSV_HEADER: [&str; 3] = ["borrower_id", "paid_at", "amount"];
/// Longest borrower id accepted.
pub const BORROWER_ID_BYTES_MAX: usize = 128;
/// Most rows one file may hold (a guard against unbounded memory).
pub const HISTORY_ROWS_MAX: usize = 50_000_000;

/// One row of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub date: NaiveDate,
    pub amount: Decimal,
}

/// A bad file: the line (1-based, the header is line 1), the column and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("line 1: header must be borrower_id,paid_at,amount, found {found:?}")]
    Header { found: String },
    #[error("line {line}: column {column}: {reason}")]
    Row {
        line: u64,
        column: &'static str,
        reason: String,
    },
    #[error("line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("more than {HISTORY_ROWS_MAX} rows")]
    TooManyRows,
}

/// Histories by borrower, in order of first appearance; each history in file order.
pub fn parse_history_csv(
    input: impl std::io::Read,
) -> Result<Vec<(String, Vec<PaymentRecord>)>, HistoryError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader.headers().map_err(|e| HistoryError::Csv {
        line: 1,
        reason: e.to_string(),
    })?;
    if header.iter().collect::<Vec<_>>() != HISTORY_CSV_HEADER {
        return Err(HistoryError::Header {
            found: header.iter().collect::<Vec<_>>().join(","),
        });
    }
    let mut order: Vec<(String, Vec<PaymentRecord>)> = Vec::new();
    let mut index = std::collections::HashMap::<String, usize>::new();
    let mut record = csv::StringRecord::new();
    let mut rows = 0usize;
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(HistoryError::Csv {
                    line,
                    reason: e.to_string(),
                });
            }
        }
        rows += 1;
        if rows > HISTORY_ROWS_MAX {
            return Err(HistoryError::TooManyRows);
        }
        let line = record.position().map_or(line, |p| p.line());
        let row_error = |column, reason: String| HistoryError::Row {
            line,
            column,
            reason,
        };
        let borrower = record.get(0).unwrap_or("");
        if borrower.is_empty() || borrower.len() > BORROWER_ID_BYTES_MAX {
            return Err(row_error(
                "borrower_id",
                format!("must be 1..={BORROWER_ID_BYTES_MAX} bytes"),
            ));
        }
        let date_text = record.get(1).unwrap_or("");
        let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
            .map_err(|_| row_error("paid_at", "is not a YYYY-MM-DD date".to_owned()))?;
        let amount = parse_amount(record.get(2).unwrap_or(""), Notation::Point)
            .map_err(|e| row_error("amount", e.to_string()))?;
        let slot = match index.get(borrower) {
            Some(&i) => i,
            None => {
                index.insert(borrower.to_owned(), order.len());
                order.push((borrower.to_owned(), Vec::new()));
                order.len() - 1
            }
        };
        order[slot].1.push(PaymentRecord { date, amount });
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rows_by_borrower() {
        let csv = "borrower_id,paid_at,amount\nb1,2025-01-03,100.50\nb2,2025-01-15,7\nb1,2025-01-17,100.5\n";
        let got = parse_history_csv(csv.as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "b1");
        assert_eq!(got[0].1.len(), 2);
        assert_eq!(got[0].1[0].amount, Decimal::new(10050, 2));
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let bad_date = "borrower_id,paid_at,amount\nb1,2025-01-03,1\nb1,2025-02-30,1\n";
        assert_eq!(
            parse_history_csv(bad_date.as_bytes()).unwrap_err(),
            HistoryError::Row {
                line: 3,
                column: "paid_at",
                reason: "is not a YYYY-MM-DD date".into()
            }
        );
        let bad_amount = "borrower_id,paid_at,amount\nb1,2025-01-03,1.2.3\n";
        assert!(matches!(
            parse_history_csv(bad_amount.as_bytes()).unwrap_err(),
            HistoryError::Row {
                line: 2,
                column: "amount",
                ..
            }
        ));
        let bad_header = "id,date,amount\n";
        assert!(matches!(
            parse_history_csv(bad_header.as_bytes()).unwrap_err(),
            HistoryError::Header { .. }
        ));
        let empty_id = "borrower_id,paid_at,amount\n,2025-01-03,1\n";
        assert!(matches!(
            parse_history_csv(empty_id.as_bytes()).unwrap_err(),
            HistoryError::Row {
                line: 2,
                column: "borrower_id",
                ..
            }
        ));
    }
}
