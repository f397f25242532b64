//! Parquet writers of the three reconciliation datasets (batch, final, merchant KPIs), with
//! the parquet crate's low-level column writers (no Arrow: it would triple the build).
//!
//! Types, so that Athena, DuckDB and pyarrow all read numbers and dates as such:
//! amounts are `DECIMAL(18,4)` on INT64 (exact; inputs with more places are rejected), the
//! fraud score `DECIMAL(7,6)` on INT32, rates `DECIMAL(5,4)` on INT32, dates `DATE`,
//! timestamps `TIMESTAMP(MICROS, UTC)`, text `STRING`, policy flags a `LIST<STRING>`.
//! Files are written to memory, for the `Blobs` port (S3) and for the CLI alike.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use payops_core::recon::BatchRow;
use payops_core::recon::kpis::MATCHED_RATE_SCALE;
use payops_core::recon::{AMOUNT_SCALE, FRAUD_SCORE_SCALE, FinalRow, Merchant, MerchantKpis};
use rust_decimal::Decimal;

/// Largest |unscaled| value of a `DECIMAL(18, s)`.
const DECIMAL18_UNSCALED_MAX: i128 = 999_999_999_999_999_999;

pub const BATCH_SCHEMA: &str = "message recon_batch {
  required binary transaction_id (STRING);
  required binary side (STRING);
  required binary reconciled_status (STRING);
  required int64 amount_posted (DECIMAL(18,4));
  required int64 discrepancy (DECIMAL(18,4));
  required int32 batch_run_date (DATE);
}";

pub const FINAL_SCHEMA: &str = "message recon_final {
  required binary transaction_id (STRING);
  optional binary merchant_id (STRING);
  optional binary masked_user_id (STRING);
  optional int64 amount (DECIMAL(18,4));
  optional binary currency (STRING);
  optional binary status (STRING);
  optional int64 event_time (TIMESTAMP(MICROS,true));
  optional int32 fraud_score (DECIMAL(7,6));
  required group policy_flags (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  required binary compliance_assessment (STRING);
  required binary side (STRING);
  required binary reconciled_status (STRING);
  required int64 amount_posted (DECIMAL(18,4));
  required int64 fee_charged (DECIMAL(18,4));
  required int64 discrepancy (DECIMAL(18,4));
  required int32 batch_run_date (DATE);
  required int64 reconciliation_timestamp (TIMESTAMP(MICROS,true));
}";

pub const KPIS_SCHEMA: &str = "message recon_kpis {
  required binary merchant_id (STRING);
  optional binary merchant_name (STRING);
  optional binary risk_level (STRING);
  required int64 transactions;
  required int64 volume (DECIMAL(18,4));
  required int64 refunds;
  required int64 refund_amount (DECIMAL(18,4));
  required int64 declines;
  required int64 matched;
  required int32 matched_rate (DECIMAL(5,4));
  required int64 total_discrepancy (DECIMAL(18,4));
  required int32 batch_run_date (DATE);
}";

#[derive(Debug, thiserror::Error)]
pub enum ParquetWriteError {
    #[error("{column}: {value} does not fit DECIMAL({precision},{scale})")]
    DecimalRange {
        column: &'static str,
        value: Decimal,
        precision: u32,
        scale: u32,
    },
    #[error("writing Parquet failed")]
    Parquet(#[from] ParquetError),
}

/// One column's values in schema order: values of the present rows, and definition (and for
/// lists repetition) levels when the column is optional or repeated.
enum Column {
    Bytes(Vec<ByteArray>, Option<Vec<i16>>),
    Int64(Vec<i64>, Option<Vec<i16>>),
    Int32(Vec<i32>, Option<Vec<i16>>),
    BytesList(Vec<ByteArray>, Vec<i16>, Vec<i16>),
}

fn properties(unique_columns: &[&str]) -> Arc<WriterProperties> {
    let builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!("payops {}", env!("CARGO_PKG_VERSION")));
    // Dictionaries only pay on repeated values, and min/max of random ids prune nothing:
    // both cost more than they give on unique ids.
    let builder = unique_columns.iter().fold(builder, |b, c| {
        b.set_column_dictionary_enabled((*c).into(), false)
            .set_column_statistics_enabled((*c).into(), EnabledStatistics::None)
    });
    Arc::new(builder.build())
}

fn write_file(
    schema: &str,
    columns: Vec<Column>,
    unique_columns: &[&str],
) -> Result<Vec<u8>, ParquetWriteError> {
    let schema = Arc::new(parse_message_type(schema)?);
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, properties(unique_columns))?;
    let mut row_group = writer.next_row_group()?;
    let mut columns = columns.into_iter();
    while let Some(mut column) = row_group.next_column()? {
        let data = columns
            .next()
            .ok_or_else(|| ParquetError::General("fewer columns than the schema".into()))?;
        match (column.untyped(), data) {
            (ColumnWriter::ByteArrayColumnWriter(w), Column::Bytes(v, d)) => {
                w.write_batch(&v, d.as_deref(), None)?;
            }
            (ColumnWriter::ByteArrayColumnWriter(w), Column::BytesList(v, d, r)) => {
                w.write_batch(&v, Some(&d), Some(&r))?;
            }
            (ColumnWriter::Int64ColumnWriter(w), Column::Int64(v, d)) => {
                w.write_batch(&v, d.as_deref(), None)?;
            }
            (ColumnWriter::Int32ColumnWriter(w), Column::Int32(v, d)) => {
                w.write_batch(&v, d.as_deref(), None)?;
            }
            _ => {
                return Err(
                    ParquetError::General("column type differs from the schema".into()).into(),
                );
            }
        }
        column.close()?;
    }
    row_group.close()?;
    Ok(writer.into_inner()?)
}

/// The unscaled value of `value` at `scale` places, checked against `precision` digits.
fn unscaled(
    column: &'static str,
    value: Decimal,
    precision: u32,
    scale: u32,
) -> Result<i128, ParquetWriteError> {
    let mut v = value;
    v.rescale(scale);
    let limit = if precision >= 18 {
        DECIMAL18_UNSCALED_MAX
    } else {
        10i128.pow(precision) - 1
    };
    // rescale rounds when it drops places; an exact value must come back unchanged.
    if v != value || v.mantissa().abs() > limit {
        return Err(ParquetWriteError::DecimalRange {
            column,
            value,
            precision,
            scale,
        });
    }
    Ok(v.mantissa())
}

fn amount(column: &'static str, value: Decimal) -> Result<i64, ParquetWriteError> {
    // Within DECIMAL18_UNSCALED_MAX, so it fits an i64.
    unscaled(column, value, 18, AMOUNT_SCALE).map(|v| v as i64)
}

fn static_text(s: &'static str) -> ByteArray {
    ByteArray::from(Bytes::from_static(s.as_bytes()))
}

/// Text values copied into one buffer and handed out as slices of it: one allocation per
/// column instead of one per value.
#[derive(Default)]
struct TextArena {
    buffer: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl TextArena {
    fn with_capacity(values: usize, bytes: usize) -> Self {
        TextArena {
            buffer: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(values),
        }
    }
    fn push(&mut self, s: &str) {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(s.as_bytes());
        self.spans.push((start, self.buffer.len()));
    }
    fn finish(self) -> Vec<ByteArray> {
        let shared = Bytes::from(self.buffer);
        self.spans
            .into_iter()
            .map(|(a, b)| ByteArray::from(shared.slice(a..b)))
            .collect()
    }
}

/// Optional column helper: values of present rows and a definition level per row.
struct Optional<T> {
    values: Vec<T>,
    defs: Vec<i16>,
}

impl<T> Optional<T> {
    fn with_capacity(n: usize) -> Self {
        Optional {
            values: Vec::with_capacity(n),
            defs: Vec::with_capacity(n),
        }
    }
    fn push(&mut self, v: Option<T>) {
        match v {
            Some(v) => {
                self.values.push(v);
                self.defs.push(1);
            }
            None => self.defs.push(0),
        }
    }
}

/// The batch dataset's file for `rows`.
pub fn write_batch(
    rows: &[BatchRow<'_>],
    batch_run_date: i32,
) -> Result<Vec<u8>, ParquetWriteError> {
    let n = rows.len();
    let mut ids = TextArena::with_capacity(n, n * 16);
    let mut side = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut posted = Vec::with_capacity(n);
    let mut discrepancy = Vec::with_capacity(n);
    for r in rows {
        ids.push(r.transaction_id);
        side.push(static_text(r.side.as_str()));
        status.push(static_text(r.reconciled_status.as_str()));
        posted.push(amount("amount_posted", r.amount_posted)?);
        discrepancy.push(amount("discrepancy", r.discrepancy)?);
    }
    write_file(
        BATCH_SCHEMA,
        vec![
            Column::Bytes(ids.finish(), None),
            Column::Bytes(side, None),
            Column::Bytes(status, None),
            Column::Int64(posted, None),
            Column::Int64(discrepancy, None),
            Column::Int32(vec![batch_run_date; n], None),
        ],
        &["transaction_id"],
    )
}

/// The final dataset's file for `rows`.
pub fn write_final(
    rows: &[FinalRow<'_>],
    batch_run_date: i32,
    reconciliation_timestamp_us: i64,
) -> Result<Vec<u8>, ParquetWriteError> {
    let n = rows.len();
    let mut ids = TextArena::with_capacity(n, n * 16);
    let mut merchants = Optional::with_capacity(n);
    let mut merchant_text = TextArena::with_capacity(n, n * 8);
    let mut users = Optional::with_capacity(n);
    let mut user_text = TextArena::with_capacity(n, n * 26);
    let mut amounts = Optional::with_capacity(n);
    let mut currencies = Optional::with_capacity(n);
    let mut currency_text = TextArena::with_capacity(n, n * 3);
    let mut statuses = Optional::with_capacity(n);
    let mut event_times = Optional::with_capacity(n);
    let mut scores = Optional::with_capacity(n);
    let (mut flags, mut flag_defs, mut flag_reps) =
        (Vec::new(), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut assessments = Vec::with_capacity(n);
    let mut sides = Vec::with_capacity(n);
    let mut reconciled = Vec::with_capacity(n);
    let mut posted = Vec::with_capacity(n);
    let mut fees = Vec::with_capacity(n);
    let mut discrepancies = Vec::with_capacity(n);
    for r in rows {
        ids.push(r.transaction_id);
        merchants.push(r.merchant_id.map(|m| merchant_text.push(m)));
        users.push(r.masked_user_id.map(|u| user_text.push(u.as_str())));
        amounts.push(r.amount.map(|a| amount("amount", a)).transpose()?);
        currencies.push(r.currency.map(|c| currency_text.push(c)));
        statuses.push(r.status.map(|s| static_text(s.as_str())));
        event_times.push(r.event_time_us);
        scores.push(
            r.fraud_score
                .map(|s| unscaled("fraud_score", s, 7, FRAUD_SCORE_SCALE).map(|v| v as i32))
                .transpose()?,
        );
        if r.policy_flags.is_empty() {
            flag_defs.push(0);
            flag_reps.push(0);
        }
        for (i, flag) in r.policy_flags.iter().enumerate() {
            flags.push(static_text(flag.as_str()));
            flag_defs.push(1);
            flag_reps.push(i16::from(i > 0));
        }
        assessments.push(static_text(r.compliance_assessment.as_str()));
        sides.push(static_text(r.side.as_str()));
        reconciled.push(static_text(r.reconciled_status.as_str()));
        posted.push(amount("amount_posted", r.amount_posted)?);
        fees.push(amount("fee_charged", r.fee_charged)?);
        discrepancies.push(amount("discrepancy", r.discrepancy)?);
    }
    let present = |o: Optional<()>, arena: TextArena| Column::Bytes(arena.finish(), Some(o.defs));
    write_file(
        FINAL_SCHEMA,
        vec![
            Column::Bytes(ids.finish(), None),
            present(merchants, merchant_text),
            present(users, user_text),
            Column::Int64(amounts.values, Some(amounts.defs)),
            present(currencies, currency_text),
            Column::Bytes(statuses.values, Some(statuses.defs)),
            Column::Int64(event_times.values, Some(event_times.defs)),
            Column::Int32(scores.values, Some(scores.defs)),
            Column::BytesList(flags, flag_defs, flag_reps),
            Column::Bytes(assessments, None),
            Column::Bytes(sides, None),
            Column::Bytes(reconciled, None),
            Column::Int64(posted, None),
            Column::Int64(fees, None),
            Column::Int64(discrepancies, None),
            Column::Int32(vec![batch_run_date; n], None),
            Column::Int64(vec![reconciliation_timestamp_us; n], None),
        ],
        &["transaction_id", "masked_user_id"],
    )
}

/// One merchant's KPIs with its profile, when known.
#[derive(Debug, Clone)]
pub struct KpiRow<'a> {
    pub merchant_id: &'a str,
    pub merchant: Option<&'a Merchant>,
    pub kpis: &'a MerchantKpis,
}

/// The KPIs dataset's file.
pub fn write_kpis(rows: &[KpiRow<'_>], batch_run_date: i32) -> Result<Vec<u8>, ParquetWriteError> {
    let n = rows.len();
    let mut ids = TextArena::with_capacity(n, n * 8);
    let mut names = Optional::with_capacity(n);
    let mut name_text = TextArena::with_capacity(n, n * 16);
    let mut risks = Optional::with_capacity(n);
    let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (mut txs, mut volume, mut refunds, mut refund_amount) = (vec![], vec![], vec![], vec![]);
    let (mut declines, mut matched, mut rate, mut total) = (vec![], vec![], vec![], vec![]);
    for r in rows {
        ids.push(r.merchant_id);
        names.push(r.merchant.map(|m| name_text.push(&m.merchant_name)));
        risks.push(r.merchant.map(|m| static_text(m.risk_level.as_str())));
        txs.push(count(r.kpis.transactions));
        volume.push(amount("volume", r.kpis.volume)?);
        refunds.push(count(r.kpis.refunds));
        refund_amount.push(amount("refund_amount", r.kpis.refund_amount)?);
        declines.push(count(r.kpis.declines));
        matched.push(count(r.kpis.matched));
        // A rate is 0..=1 at 4 places: at most 10000 unscaled.
        rate.push(unscaled("matched_rate", r.kpis.matched_rate(), 5, MATCHED_RATE_SCALE)? as i32);
        total.push(amount("total_discrepancy", r.kpis.total_discrepancy)?);
    }
    write_file(
        KPIS_SCHEMA,
        vec![
            Column::Bytes(ids.finish(), None),
            Column::Bytes(name_text.finish(), Some(names.defs)),
            Column::Bytes(risks.values, Some(risks.defs)),
            Column::Int64(txs, None),
            Column::Int64(volume, None),
            Column::Int64(refunds, None),
            Column::Int64(refund_amount, None),
            Column::Int64(declines, None),
            Column::Int64(matched, None),
            Column::Int32(rate, None),
            Column::Int64(total, None),
            Column::Int32(vec![batch_run_date; n], None),
        ],
        &["merchant_id"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse() {
        for s in [BATCH_SCHEMA, FINAL_SCHEMA, KPIS_SCHEMA] {
            parse_message_type(s).expect("valid schema");
        }
    }

    #[test]
    fn decimals_must_fit_exactly() {
        let d = |s: &str| s.parse::<Decimal>().expect("literal");
        assert_eq!(amount("a", d("12.3")).expect("fits"), 123_000);
        assert_eq!(amount("a", d("-0.0001")).expect("fits"), -1);
        assert!(matches!(
            amount("a", d("0.00001")),
            Err(ParquetWriteError::DecimalRange { .. })
        ));
        assert!(matches!(
            amount("a", d("100000000000000")),
            Err(ParquetWriteError::DecimalRange { .. })
        ));
        assert_eq!(unscaled("s", d("1"), 7, 6).expect("fits"), 1_000_000);
    }
}
