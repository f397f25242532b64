//! Realistic debt files for the demo, the benchmark and the tests, in any shipped format and
//! encoding, deterministic for a seed. A share of lines can carry the mistakes clients make
//! (a CPF that lost its leading zero, wrong check digits, a negative amount, a future date,
//! a repeated contract), each recorded so tests know what must be rejected.

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;

use super::cpf::Cpf;
use super::encoding::encode;
use super::field::{DebtField, FIELD_COUNT};
use super::format::{Column, DateFormat, DebtFormat, DecimalMark, Layout};

/// Days back from `today` the missed dates are spread over.
pub const MISSED_DAYS_BACK_MAX: i64 = 720;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub lines: u64,
    pub seed: u64,
    /// Missed dates are on or before this day.
    pub today: NaiveDate,
    /// One line in `defect_every` (0: none) carries a defect.
    pub defect_every: u64,
    /// Prefix of the client references, so files of different clients or runs differ.
    pub reference_prefix: String,
}

/// A deliberate mistake on a generated line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    LostLeadingZero,
    CheckDigits,
    AllSameDigits,
    NegativeAmount,
    ThreeDecimals,
    FutureDate,
    ImpossibleDate,
    MissingName,
    DuplicateReference,
}

impl Defect {
    const ALL: [Defect; 9] = [
        Defect::LostLeadingZero,
        Defect::CheckDigits,
        Defect::AllSameDigits,
        Defect::NegativeAmount,
        Defect::ThreeDecimals,
        Defect::FutureDate,
        Defect::ImpossibleDate,
        Defect::MissingName,
        Defect::DuplicateReference,
    ];

    /// The field the defect must be rejected on.
    pub fn field(&self) -> DebtField {
        match self {
            Defect::LostLeadingZero | Defect::CheckDigits | Defect::AllSameDigits => DebtField::Cpf,
            Defect::NegativeAmount | Defect::ThreeDecimals => DebtField::Amount,
            Defect::FutureDate | Defect::ImpossibleDate => DebtField::MissedDate,
            Defect::MissingName => DebtField::DebtorName,
            Defect::DuplicateReference => DebtField::ClientReference,
        }
    }
}

/// SplitMix64: varied, reproducible, not secret.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Maria",
    "José",
    "Ana",
    "João",
    "Antônio",
    "Francisca",
    "Carlos",
    "Adriana",
    "Paulo",
    "Juliana",
    "Lucas",
    "Márcia",
    "Luiz",
    "Fernanda",
    "Pedro",
    "Patrícia",
    "Marcos",
    "Aline",
    "Gabriel",
    "Sandra",
    "Rafael",
    "Camila",
    "Daniel",
    "Conceição",
];
const LAST_NAMES: &[&str] = &[
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Ribeiro",
    "Carvalho",
    "Araújo",
    "Gonçalves",
    "Melo",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Mendes",
    "Assunção",
];

/// One generated debt before it is written in a format.
#[derive(Debug, Clone)]
pub struct GeneratedDebt {
    pub fields: [String; FIELD_COUNT],
    pub defect: Option<Defect>,
}

/// The debts of a file, in order.
pub fn debts(
    options: &GenerateOptions,
    format: &DebtFormat,
) -> impl Iterator<Item = GeneratedDebt> {
    let mut rng = Rng(options.seed ^ 0xDEB7_5EED);
    let options = options.clone();
    let decimal = format.decimal;
    let date_format = format
        .date_formats
        .first()
        .copied()
        .unwrap_or(DateFormat::Iso);
    (0..options.lines).map(move |i| {
        let defect = (options.defect_every > 0
            && i % options.defect_every == options.defect_every - 1)
            .then(|| Defect::ALL[(i / options.defect_every) as usize % Defect::ALL.len()]);
        let reference = match defect {
            // Repeats the reference of the line before, which is in the same file.
            Some(Defect::DuplicateReference) if i > 0 => {
                format!("{}{:09}", options.reference_prefix, i - 1)
            }
            _ => format!("{}{:09}", options.reference_prefix, i),
        };
        let name = match defect {
            Some(Defect::MissingName) => String::new(),
            _ => format!(
                "{} {} {}",
                rng.pick(FIRST_NAMES),
                rng.pick(LAST_NAMES),
                rng.pick(LAST_NAMES)
            ),
        };
        let cpf = cpf_text(&mut rng, defect, i);
        let cents = 1_000 + rng.below(2_500_000) as i64;
        let amount = match defect {
            Some(Defect::NegativeAmount) => {
                format!("-{}", amount_text(Decimal::new(cents, 2), decimal))
            }
            Some(Defect::ThreeDecimals) => {
                format!("{}5", amount_text(Decimal::new(cents, 2), decimal))
            }
            _ => amount_text(Decimal::new(cents, 2), decimal),
        };
        let date = match defect {
            Some(Defect::FutureDate) => date_text(options.today + Duration::days(3), date_format),
            Some(Defect::ImpossibleDate) => impossible_date(date_format),
            _ => date_text(
                options.today - Duration::days(1 + rng.below(MISSED_DAYS_BACK_MAX as u64) as i64),
                date_format,
            ),
        };
        GeneratedDebt {
            fields: [reference, name, cpf, amount, date],
            defect,
        }
    })
}

fn cpf_text(rng: &mut Rng, defect: Option<Defect>, i: u64) -> String {
    if defect == Some(Defect::AllSameDigits) {
        return "111.111.111-11".into();
    }
    let mut base = [0u8; 9];
    for d in base.iter_mut() {
        *d = rng.below(10) as u8;
    }
    if defect == Some(Defect::LostLeadingZero) {
        base[0] = 0;
    }
    base[8] = if base[..8].iter().all(|&d| d == base[0]) {
        (base[0] + 1) % 10
    } else {
        base[8]
    };
    // `base` is not all one digit (just ensured), so a CPF exists for it.
    let Ok(cpf) = Cpf::with_check_digits(base) else {
        return "111.111.111-11".into();
    };
    match defect {
        Some(Defect::LostLeadingZero) => cpf.digits()[1..].to_owned(),
        Some(Defect::CheckDigits) => {
            let mut d = cpf.digits().into_bytes();
            d[10] = b'0' + (d[10] - b'0' + 1) % 10;
            String::from_utf8(d).unwrap_or_default()
        }
        _ if i.is_multiple_of(2) => cpf.masked(),
        _ => cpf.digits(),
    }
}

/// An amount as the format writes it (grouped in thousands for comma notation, as people do).
pub fn amount_text(amount: Decimal, mark: DecimalMark) -> String {
    let plain = format!("{amount:.2}");
    match mark {
        DecimalMark::Point => plain,
        DecimalMark::Comma => {
            let (int, frac) = plain.split_once('.').unwrap_or((&plain, "00"));
            let mut grouped = String::with_capacity(int.len() + int.len() / 3 + 3);
            for (i, c) in int.chars().enumerate() {
                if i > 0 && (int.len() - i) % 3 == 0 {
                    grouped.push('.');
                }
                grouped.push(c);
            }
            format!("{grouped},{frac}")
        }
    }
}

pub fn date_text(date: NaiveDate, format: DateFormat) -> String {
    let pattern = match format {
        DateFormat::Iso => "%Y-%m-%d",
        DateFormat::DaySlash => "%d/%m/%Y",
        DateFormat::DayDash => "%d-%m-%Y",
        DateFormat::DayDot => "%d.%m.%Y",
        DateFormat::DayCompact => "%d%m%Y",
        DateFormat::IsoCompact => "%Y%m%d",
    };
    date.format(pattern).to_string()
}

fn impossible_date(format: DateFormat) -> String {
    match format {
        DateFormat::Iso => "2025-02-30".into(),
        DateFormat::DaySlash => "30/02/2025".into(),
        DateFormat::DayDash => "30-02-2025".into(),
        DateFormat::DayDot => "30.02.2025".into(),
        DateFormat::DayCompact => "30022025".into(),
        DateFormat::IsoCompact => "20250230".into(),
    }
}

/// The header line of a format, if it has one (without a terminator), in its encoding.
pub fn header(format: &DebtFormat) -> Option<Vec<u8>> {
    match &format.layout {
        Layout::Delimited {
            delimiter,
            header: true,
            columns,
        } => {
            let names: Vec<String> = [
                &columns.client_reference,
                &columns.debtor_name,
                &columns.cpf,
                &columns.amount,
                &columns.missed_date,
            ]
            .iter()
            .map(|c| match c {
                Column::Name(n) => n.clone(),
                Column::Position(p) => format!("column_{p}"),
            })
            .collect();
            Some(encode(format.encoding, &names.join(&delimiter.to_string())))
        }
        Layout::FixedWidth { header_lines, .. } => {
            (*header_lines > 0).then(|| encode(format.encoding, "EXTRATO DE DEBITOS"))
        }
        Layout::Delimited { .. } => None,
    }
}

/// Writes one debt as a line of `format` (without a terminator), in its encoding.
pub fn write_line(format: &DebtFormat, debt: &GeneratedDebt, out: &mut Vec<u8>) {
    let text = match &format.layout {
        Layout::Delimited {
            delimiter,
            columns,
            header,
            ..
        } => {
            let columns_by_field = [
                &columns.client_reference,
                &columns.debtor_name,
                &columns.cpf,
                &columns.amount,
                &columns.missed_date,
            ];
            // With a header the fields go in header order; by position they go where told,
            // with filler in the other columns (a branch code, as real extracts have).
            let width = if *header {
                FIELD_COUNT
            } else {
                columns_by_field
                    .iter()
                    .filter_map(|c| match c {
                        Column::Position(p) => Some(*p),
                        Column::Name(_) => None,
                    })
                    .max()
                    .unwrap_or(FIELD_COUNT)
            };
            let mut cells = vec!["0001".to_owned(); width];
            for (i, (column, value)) in columns_by_field.iter().zip(&debt.fields).enumerate() {
                let slot = match column {
                    Column::Position(p) if !*header => p - 1,
                    _ => i,
                };
                cells[slot] = quote(value, *delimiter);
            }
            cells.join(&delimiter.to_string())
        }
        Layout::FixedWidth { fields, .. } => {
            let spans = [
                fields.client_reference,
                fields.debtor_name,
                fields.cpf,
                fields.amount,
                fields.missed_date,
            ];
            let end = spans
                .iter()
                .map(|s| s.start - 1 + s.width)
                .max()
                .unwrap_or(0);
            let mut line: Vec<char> = vec![' '; end];
            for (span, value) in spans.iter().zip(&debt.fields) {
                for (j, c) in value.chars().take(span.width).enumerate() {
                    line[span.start - 1 + j] = c;
                }
            }
            line.into_iter().collect()
        }
    };
    out.extend_from_slice(&encode(format.encoding, &text));
}

fn quote(value: &str, delimiter: char) -> String {
    if value.contains(delimiter) || value.contains('"') {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// A whole file in memory (tests and the demo; the CLI streams with [`debts`] and
/// [`write_line`]).
pub fn file(options: &GenerateOptions, format: &DebtFormat) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(h) = header(format) {
        out.extend_from_slice(&h);
        out.extend_from_slice(b"\r\n");
    }
    for debt in debts(options, format) {
        write_line(format, &debt, &mut out);
        out.extend_from_slice(b"\r\n");
    }
    out
}
