//! The reconciliation's input files, CSV or Parquet, turned into typed rows split by hash
//! partition of `transaction_id`.
//!
//! A file is first normalised into one text buffer of lines and separated fields (CSV without
//! quotes is used as it is; quoted CSV and Parquet are rewritten with the ASCII unit separator,
//! which no field may contain). Typed rows then borrow their text from that buffer, and the
//! buffer is parsed by several threads at once, each over a run of whole lines.

use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;
use payops_core::recon::text::{
    TextError, days_to_date, parse_date_days, parse_decimal, parse_timestamp_us,
};
use payops_core::recon::{
    AMOUNT_SCALE, FRAUD_SCORE_SCALE, FraudSignal, Merchant, Policy, PolicyType, RiskLevel,
    StatementLine, Transaction, TxStatus, partition_of,
};
use rust_decimal::{Decimal, RoundingStrategy};

/// Columns a row may have; more is a malformed file.
pub const COLUMNS_MAX: usize = 64;
/// Separator of normalised (rewritten) text.
const UNIT_SEPARATOR: u8 = 0x1f;
/// Parquet files start and end with these bytes.
const PARQUET_MAGIC: &[u8] = b"PAR1";
/// Below this size a file is parsed by one thread (starting threads would cost more).
const PARALLEL_BYTES_MIN: usize = 1 << 20;
/// Parse threads at most (the work splits by lines; more threads than cores only adds cost).
pub const PARSE_THREADS_MAX: usize = 64;

/// Why an input could not be read. Every variant names the file; row errors name the line
/// (1-based, the header is line 1; for Parquet, the row number + 1) and the field.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{file}: not UTF-8 text")]
    NotUtf8 { file: String },
    #[error("{file}: empty file (a header line is required)")]
    Empty { file: String },
    #[error("{file}: missing column {column:?} (columns: {found})")]
    MissingColumn {
        file: String,
        column: &'static str,
        found: String,
    },
    #[error("{file}: line {line}: more than {COLUMNS_MAX} fields")]
    TooManyFields { file: String, line: u64 },
    #[error("{file}: line {line}: field {field} {reason}")]
    Field {
        file: String,
        line: u64,
        field: &'static str,
        reason: String,
    },
    #[error("{file}: line {line}: {reason}")]
    Csv {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("{file}: not a readable Parquet file")]
    Parquet {
        file: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{file}: Parquet column {column:?}: {reason}")]
    ParquetValue {
        file: String,
        column: String,
        reason: String,
    },
}

/// One input file as lines of separated fields, header first.
pub struct TextTable {
    name: String,
    text: String,
    separator: u8,
    columns: Vec<String>,
    body: Range<usize>,
}

impl std::fmt::Debug for TextTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The content is PII; only its shape is shown.
        f.debug_struct("TextTable")
            .field("name", &self.name)
            .field("columns", &self.columns)
            .field("bytes", &self.text.len())
            .finish()
    }
}

impl TextTable {
    /// Reads a CSV (header line first) or Parquet file; the format is told by its content.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<TextTable, InputError> {
        if bytes.len() >= 8 && bytes.starts_with(PARQUET_MAGIC) && bytes.ends_with(PARQUET_MAGIC) {
            return parquet_to_text(name, Bytes::from(bytes));
        }
        let text = String::from_utf8(bytes).map_err(|_| InputError::NotUtf8 {
            file: name.to_owned(),
        })?;
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_owned(),
            None => text,
        };
        if memchr::memchr(b'"', text.as_bytes()).is_some() {
            return quoted_csv_to_text(name, &text);
        }
        TextTable::new(name, text, b',')
    }

    fn new(name: &str, text: String, separator: u8) -> Result<TextTable, InputError> {
        let header_end = memchr::memchr(b'\n', text.as_bytes()).unwrap_or(text.len());
        let header = text[..header_end].trim_end_matches('\r');
        if header.trim().is_empty() {
            return Err(InputError::Empty {
                file: name.to_owned(),
            });
        }
        let columns: Vec<String> = header
            .split(separator as char)
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        if columns.len() > COLUMNS_MAX {
            return Err(InputError::TooManyFields {
                file: name.to_owned(),
                line: 1,
            });
        }
        let body = (header_end + 1).min(text.len())..text.len();
        Ok(TextTable {
            name: name.to_owned(),
            text,
            separator,
            columns,
            body,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    fn column(&self, name: &'static str) -> Result<usize, InputError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| InputError::MissingColumn {
                file: self.name.clone(),
                column: name,
                found: self.columns.join(","),
            })
    }

    fn optional_column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The 1-based line number of a byte offset (computed only when reporting an error).
    fn line_of(&self, offset: usize) -> u64 {
        memchr::memchr_iter(b'\n', &self.text.as_bytes()[..offset]).count() as u64 + 1
    }

    /// Runs of whole lines of the body, about one per thread.
    fn chunks(&self, threads: usize) -> Vec<Range<usize>> {
        let bytes = self.text.as_bytes();
        let len = self.body.len();
        let threads = if len < PARALLEL_BYTES_MIN {
            1
        } else {
            threads.clamp(1, PARSE_THREADS_MAX)
        };
        let mut chunks = Vec::with_capacity(threads);
        let mut start = self.body.start;
        for i in 1..=threads {
            let end = if i == threads {
                self.body.end
            } else {
                let target = (self.body.start + len * i / threads).max(start);
                memchr::memchr(b'\n', &bytes[target..self.body.end])
                    .map(|p| target + p + 1)
                    .unwrap_or(self.body.end)
            };
            chunks.push(start..end);
            start = end;
        }
        chunks
    }

    /// Parses every data line with `parse`, in parallel, into `partitions` vectors by the hash
    /// of the id `key` returns. Blank lines are skipped. The rows of each partition keep file
    /// order.
    pub fn parse_partitioned<'t, T, P, K>(
        &'t self,
        threads: usize,
        partitions: u32,
        parse: P,
        key: K,
    ) -> Result<Vec<Vec<T>>, InputError>
    where
        T: Send,
        P: Fn(&[&'t str]) -> Result<T, (&'static str, String)> + Sync,
        K: Fn(&T) -> &str + Sync,
    {
        let all = vec![true; partitions.max(1) as usize];
        self.parse_partitions(threads, partitions, &all, parse, key)
    }

    /// As [`TextTable::parse_partitioned`], keeping only the rows of the partitions `wanted`
    /// marks (every row is still validated: a bad line fails every partition alike).
    pub fn parse_partitions<'t, T, P, K>(
        &'t self,
        threads: usize,
        partitions: u32,
        wanted: &[bool],
        parse: P,
        key: K,
    ) -> Result<Vec<Vec<T>>, InputError>
    where
        T: Send,
        P: Fn(&[&'t str]) -> Result<T, (&'static str, String)> + Sync,
        K: Fn(&T) -> &str + Sync,
    {
        let chunks = self.chunks(threads);
        let per_chunk: Vec<Result<Vec<Vec<T>>, InputError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|range| {
                    let (parse, key) = (&parse, &key);
                    let range = range.clone();
                    scope.spawn(move || self.parse_chunk(range, partitions, wanted, parse, key))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(InputError::Csv {
                            file: self.name.clone(),
                            line: 0,
                            reason: "the parser thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut out: Vec<Vec<T>> = (0..partitions.max(1)).map(|_| Vec::new()).collect();
        let per_chunk = per_chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
        for (p, slot) in out.iter_mut().enumerate() {
            let total = per_chunk.iter().map(|c| c[p].len()).sum();
            slot.reserve_exact(total);
        }
        for chunk in per_chunk {
            for (p, rows) in chunk.into_iter().enumerate() {
                out[p].extend(rows);
            }
        }
        Ok(out)
    }

    fn parse_chunk<'t, T, P, K>(
        &'t self,
        range: Range<usize>,
        partitions: u32,
        wanted: &[bool],
        parse: &P,
        key: &K,
    ) -> Result<Vec<Vec<T>>, InputError>
    where
        P: Fn(&[&'t str]) -> Result<T, (&'static str, String)>,
        K: Fn(&T) -> &str,
    {
        let partitions = partitions.max(1);
        let estimate = range.len() / 64 / partitions as usize;
        let mut out: Vec<Vec<T>> = (0..partitions)
            .map(|_| Vec::with_capacity(estimate))
            .collect();
        let text = &self.text[range.clone()];
        let mut fields: [&str; COLUMNS_MAX] = [""; COLUMNS_MAX];
        let mut at = 0usize;
        while at < text.len() {
            let end = memchr::memchr(b'\n', &text.as_bytes()[at..])
                .map(|p| at + p)
                .unwrap_or(text.len());
            let line = text[at..end].trim_end_matches('\r');
            let line_start = range.start + at;
            at = end + 1;
            if line.is_empty() {
                continue;
            }
            let mut n = 0usize;
            for field in line.split(self.separator as char) {
                if n == COLUMNS_MAX {
                    return Err(InputError::TooManyFields {
                        file: self.name.clone(),
                        line: self.line_of(line_start),
                    });
                }
                fields[n] = field;
                n += 1;
            }
            // Missing trailing fields read as empty, so optional columns may be left off.
            fields[n..self.columns.len().max(n)].fill("");
            let row = parse(&fields[..self.columns.len().max(n)]).map_err(|(field, reason)| {
                InputError::Field {
                    file: self.name.clone(),
                    line: self.line_of(line_start),
                    field,
                    reason,
                }
            })?;
            let p = partition_of(key(&row), partitions) as usize;
            if wanted.get(p).copied().unwrap_or(false) {
                out[p].push(row);
            }
        }
        Ok(out)
    }
}

fn reason(e: TextError) -> String {
    e.to_string()
}

fn required<'t>(
    fields: &[&'t str],
    i: usize,
    name: &'static str,
) -> Result<&'t str, (&'static str, String)> {
    let v = fields[i].trim();
    if v.is_empty() {
        Err((name, "is empty".to_owned()))
    } else {
        Ok(v)
    }
}

/// The header of a transactions CSV in canonical column order.
pub const TRANSACTION_HEADER: &str =
    "transaction_id,merchant_id,user_id,amount,currency,status,timestamp";
/// The header of a fraud signals CSV in canonical column order.
pub const FRAUD_HEADER: &str =
    "fraud_signal_id,transaction_id,fraud_score,model_version,inference_time";

/// The column positions of the transactions file.
#[derive(Debug, Clone, Copy)]
pub struct TransactionColumns {
    transaction_id: usize,
    merchant_id: usize,
    user_id: usize,
    amount: usize,
    currency: usize,
    status: usize,
    timestamp: usize,
}

impl TransactionColumns {
    /// The columns in the order of [`TRANSACTION_HEADER`].
    pub const CANONICAL: TransactionColumns = TransactionColumns {
        transaction_id: 0,
        merchant_id: 1,
        user_id: 2,
        amount: 3,
        currency: 4,
        status: 5,
        timestamp: 6,
    };

    pub fn of(table: &TextTable) -> Result<Self, InputError> {
        Ok(TransactionColumns {
            transaction_id: table.column("transaction_id")?,
            merchant_id: table.column("merchant_id")?,
            user_id: table.column("user_id")?,
            amount: table.column("amount")?,
            currency: table.column("currency")?,
            status: table.column("status")?,
            timestamp: table.column("timestamp")?,
        })
    }

    pub fn parse<'t>(&self, f: &[&'t str]) -> Result<Transaction<'t>, (&'static str, String)> {
        let status_text = required(f, self.status, "status")?;
        Ok(Transaction {
            transaction_id: required(f, self.transaction_id, "transaction_id")?,
            merchant_id: required(f, self.merchant_id, "merchant_id")?,
            user_id: required(f, self.user_id, "user_id")?,
            amount: parse_decimal(f[self.amount], AMOUNT_SCALE)
                .map_err(|e| ("amount", reason(e)))?,
            currency: required(f, self.currency, "currency")?,
            status: TxStatus::parse(status_text).ok_or_else(|| {
                (
                    "status",
                    format!(
                        "is {:?}; expected PENDING, APPROVED, DECLINED or REFUNDED",
                        status_text.chars().take(20).collect::<String>()
                    ),
                )
            })?,
            timestamp_us: parse_timestamp_us(f[self.timestamp])
                .map_err(|e| ("timestamp", reason(e)))?,
        })
    }
}

/// The column positions of a statement file.
#[derive(Debug, Clone, Copy)]
pub struct StatementColumns {
    statement_id: usize,
    transaction_id: usize,
    posting_date: usize,
    amount_posted: usize,
    fee_charged: usize,
}

impl StatementColumns {
    pub fn of(table: &TextTable) -> Result<Self, InputError> {
        Ok(StatementColumns {
            statement_id: table.column("statement_id")?,
            transaction_id: table.column("transaction_id")?,
            posting_date: table.column("posting_date")?,
            amount_posted: table.column("amount_posted")?,
            fee_charged: table.column("fee_charged")?,
        })
    }

    pub fn parse<'t>(&self, f: &[&'t str]) -> Result<StatementLine<'t>, (&'static str, String)> {
        let fee = f[self.fee_charged].trim();
        Ok(StatementLine {
            statement_id: required(f, self.statement_id, "statement_id")?,
            transaction_id: required(f, self.transaction_id, "transaction_id")?,
            posting_date: parse_date_days(f[self.posting_date])
                .map_err(|e| ("posting_date", reason(e)))?,
            amount_posted: parse_decimal(f[self.amount_posted], AMOUNT_SCALE)
                .map_err(|e| ("amount_posted", reason(e)))?,
            // A bank that charged no fee often leaves the field empty.
            fee_charged: if fee.is_empty() {
                Decimal::ZERO
            } else {
                parse_decimal(fee, AMOUNT_SCALE).map_err(|e| ("fee_charged", reason(e)))?
            },
        })
    }
}

/// The column positions of a fraud signals file.
#[derive(Debug, Clone, Copy)]
pub struct FraudColumns {
    fraud_signal_id: usize,
    transaction_id: usize,
    fraud_score: usize,
    model_version: usize,
    inference_time: usize,
}

impl FraudColumns {
    /// The columns in the order of [`FRAUD_HEADER`].
    pub const CANONICAL: FraudColumns = FraudColumns {
        fraud_signal_id: 0,
        transaction_id: 1,
        fraud_score: 2,
        model_version: 3,
        inference_time: 4,
    };

    pub fn of(table: &TextTable) -> Result<Self, InputError> {
        Ok(FraudColumns {
            fraud_signal_id: table.column("fraud_signal_id")?,
            transaction_id: table.column("transaction_id")?,
            fraud_score: table.column("fraud_score")?,
            model_version: table.column("model_version")?,
            inference_time: table.column("inference_time")?,
        })
    }

    pub fn parse<'t>(&self, f: &[&'t str]) -> Result<FraudSignal<'t>, (&'static str, String)> {
        Ok(FraudSignal {
            fraud_signal_id: required(f, self.fraud_signal_id, "fraud_signal_id")?,
            transaction_id: required(f, self.transaction_id, "transaction_id")?,
            fraud_score: parse_fraud_score(f[self.fraud_score])?,
            model_version: f[self.model_version].trim(),
            inference_time_us: parse_timestamp_us(f[self.inference_time])
                .map_err(|e| ("inference_time", reason(e)))?,
        })
    }
}

/// A score in 0..=1, kept to [`FRAUD_SCORE_SCALE`] places (rounded half-even: it is a model
/// output, not money).
pub fn parse_fraud_score(text: &str) -> Result<Decimal, (&'static str, String)> {
    let score = parse_decimal(text, 28)
        .map_err(|e| ("fraud_score", reason(e)))?
        .round_dp_with_strategy(FRAUD_SCORE_SCALE, RoundingStrategy::MidpointNearestEven);
    if score < Decimal::ZERO || score > Decimal::ONE {
        return Err(("fraud_score", format!("is {score}; expected 0 to 1")));
    }
    Ok(score)
}

/// Reads a policies file (`policy_id, policy_type, rule_description, active_flag`, and the
/// optional parameters `threshold`, `currency`, `risk_levels` — levels separated by `|`).
pub fn read_policies(table: &TextTable) -> Result<Vec<Policy>, InputError> {
    let id = table.column("policy_id")?;
    let kind = table.column("policy_type")?;
    let description = table.column("rule_description")?;
    let active = table.column("active_flag")?;
    let threshold = table.optional_column("threshold");
    let currency = table.optional_column("currency");
    let risk = table.optional_column("risk_levels");
    let get =
        |f: &[&str], i: Option<usize>| i.map(|i| f[i].trim().to_owned()).filter(|s| !s.is_empty());
    let rows = table.parse_partitioned(
        1,
        1,
        |f| {
            let active_text = f[active].trim().to_ascii_lowercase();
            let active = match active_text.as_str() {
                "true" | "1" | "y" | "yes" => true,
                "false" | "0" | "n" | "no" => false,
                _ => {
                    return Err((
                        "active_flag",
                        format!("is {active_text:?}; expected true or false"),
                    ));
                }
            };
            let threshold = get(f, threshold)
                .map(|t| parse_decimal(&t, AMOUNT_SCALE).map_err(|e| ("threshold", reason(e))))
                .transpose()?;
            let risk_levels = get(f, risk)
                .map(|levels| {
                    levels
                        .split(['|', ';'])
                        .map(|l| {
                            RiskLevel::parse(l)
                                .ok_or(("risk_levels", format!("has unknown level {l:?}")))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            Ok(Policy {
                policy_id: required(f, id, "policy_id")?.to_owned(),
                policy_type: PolicyType::parse(required(f, kind, "policy_type")?),
                rule_description: f[description].trim().to_owned(),
                active,
                threshold,
                currency: get(f, currency).map(|c| c.to_ascii_uppercase()),
                risk_levels,
            })
        },
        |p: &Policy| p.policy_id.as_str(),
    )?;
    Ok(rows.into_iter().flatten().collect())
}

/// Reads a merchants file (`merchant_id, merchant_name, risk_level, onboarding_date`).
pub fn read_merchants(table: &TextTable) -> Result<Vec<Merchant>, InputError> {
    let id = table.column("merchant_id")?;
    let name = table.column("merchant_name")?;
    let risk = table.column("risk_level")?;
    let onboarding = table.optional_column("onboarding_date");
    let rows = table.parse_partitioned(
        1,
        1,
        |f| {
            let risk_text = f[risk].trim();
            Ok(Merchant {
                merchant_id: required(f, id, "merchant_id")?.to_owned(),
                merchant_name: f[name].trim().to_owned(),
                risk_level: RiskLevel::parse(risk_text).ok_or_else(|| {
                    (
                        "risk_level",
                        format!("is {risk_text:?}; expected LOW, MEDIUM or HIGH"),
                    )
                })?,
                onboarding_date: match onboarding.map(|i| f[i].trim()).filter(|s| !s.is_empty()) {
                    Some(d) => {
                        Some(parse_date_days(d).map_err(|e| ("onboarding_date", reason(e)))?)
                    }
                    None => None,
                },
            })
        },
        |m: &Merchant| m.merchant_id.as_str(),
    )?;
    Ok(rows.into_iter().flatten().collect())
}

fn quoted_csv_to_text(name: &str, text: &str) -> Result<TextTable, InputError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = String::with_capacity(text.len());
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 1;
        let record = record.map_err(|e| InputError::Csv {
            file: name.to_owned(),
            line,
            reason: e.to_string(),
        })?;
        for (j, field) in record.iter().enumerate() {
            if field.bytes().any(|b| b == UNIT_SEPARATOR || b == b'\n') {
                return Err(InputError::Csv {
                    file: name.to_owned(),
                    line,
                    reason: format!("field {} contains a line break or control character", j + 1),
                });
            }
            if j > 0 {
                out.push(UNIT_SEPARATOR as char);
            }
            out.push_str(field);
        }
        out.push('\n');
    }
    TextTable::new(name, out, UNIT_SEPARATOR)
}

fn parquet_to_text(name: &str, bytes: Bytes) -> Result<TextTable, InputError> {
    let parquet_error = |source| InputError::Parquet {
        file: name.to_owned(),
        source,
    };
    let reader = SerializedFileReader::new(bytes).map_err(parquet_error)?;
    let columns: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let mut out = columns.join("\u{1f}");
    out.push('\n');
    for row in reader.get_row_iter(None).map_err(parquet_error)? {
        let row = row.map_err(parquet_error)?;
        for (j, (column, field)) in row.get_column_iter().enumerate() {
            if j > 0 {
                out.push(UNIT_SEPARATOR as char);
            }
            let text = field_text(field).map_err(|reason| InputError::ParquetValue {
                file: name.to_owned(),
                column: column.clone(),
                reason,
            })?;
            if text.bytes().any(|b| b == UNIT_SEPARATOR || b == b'\n') {
                return Err(InputError::ParquetValue {
                    file: name.to_owned(),
                    column: column.clone(),
                    reason: "a value contains a line break or control character".into(),
                });
            }
            out.push_str(&text);
        }
        out.push('\n');
    }
    TextTable::new(name, out, UNIT_SEPARATOR)
}

/// A Parquet value as the text the CSV reader would have seen. Floating-point values are
/// written as their shortest exact decimal form and parsed as decimals from there.
fn field_text(field: &Field) -> Result<String, String> {
    Ok(match field {
        Field::Null => String::new(),
        Field::Bool(b) => b.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Str(s) => s.clone(),
        Field::Bytes(b) => {
            String::from_utf8(b.data().to_vec()).map_err(|_| "not UTF-8".to_owned())?
        }
        Field::Decimal(d) => parquet_decimal(d)?.to_string(),
        Field::Date(days) => days_to_date(*days)
            .map(|d| d.to_string())
            .ok_or_else(|| format!("date {days} is out of range"))?,
        Field::TimestampMillis(ms) => timestamp_text(ms.saturating_mul(1000))?,
        Field::TimestampMicros(us) => timestamp_text(*us)?,
        other => return Err(format!("unsupported Parquet value {other}")),
    })
}

fn timestamp_text(us: i64) -> Result<String, String> {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .ok_or_else(|| format!("timestamp {us} is out of range"))
}

fn parquet_decimal(d: &parquet::data_type::Decimal) -> Result<Decimal, String> {
    let data = d.data();
    if data.is_empty() || data.len() > 16 {
        return Err(format!("decimal of {} bytes is not supported", data.len()));
    }
    // Big-endian two's complement, sign-extended to 128 bits.
    let fill = if data[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut wide = [fill; 16];
    wide[16 - data.len()..].copy_from_slice(data);
    let scale = u32::try_from(d.scale()).map_err(|_| "negative decimal scale".to_owned())?;
    Decimal::try_from_i128_with_scale(i128::from_be_bytes(wide), scale).map_err(|e| e.to_string())
}
