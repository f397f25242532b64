//! Client formats are configuration, not code: a [`DebtFormat`] (YAML or JSON) says how a
//! client's file is laid out — delimiter and header names or column positions, or fixed-width
//! positions — which encoding it uses, whether amounts use a decimal comma, and which date
//! formats appear. [`builtin`] ships the default format and realistic client formats.

use serde::{Deserialize, Serialize};

use super::encoding::Encoding;
use super::field::{DebtField, FIELD_COUNT};

/// Columns a delimited line may have (a bound on work per line for hostile input).
pub const COLUMNS_MAX: usize = 256;
/// Longest header line, in bytes.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Name of the format used when a client has none configured.
pub const DEFAULT_FORMAT: &str = "default";

/// The formats shipped with payops, as files beside this module.
const BUILTIN_SOURCES: &[&str] = &[
    include_str!("formats/default.yaml"),
    include_str!("formats/varejo-sp.yaml"),
    include_str!("formats/telecom-fixed.yaml"),
    include_str!("formats/financeira-tab.yaml"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("format is not valid YAML/JSON: {0}")]
    Syntax(String),
    #[error("format {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("no format named {0:?} (known: {1})")]
    Unknown(String, String),
}

/// How the amount separates decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecimalMark {
    /// `1234.56` or `1,234.56`
    #[default]
    Point,
    /// `1234,56` or `1.234,56`
    Comma,
}

/// A date notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DateFormat {
    #[serde(rename = "yyyy-mm-dd")]
    Iso,
    #[serde(rename = "dd/mm/yyyy")]
    DaySlash,
    #[serde(rename = "dd-mm-yyyy")]
    DayDash,
    #[serde(rename = "dd.mm.yyyy")]
    DayDot,
    #[serde(rename = "ddmmyyyy")]
    DayCompact,
    #[serde(rename = "yyyymmdd")]
    IsoCompact,
}

impl DateFormat {
    pub fn pattern(&self) -> &'static str {
        match self {
            DateFormat::Iso => "yyyy-mm-dd",
            DateFormat::DaySlash => "dd/mm/yyyy",
            DateFormat::DayDash => "dd-mm-yyyy",
            DateFormat::DayDot => "dd.mm.yyyy",
            DateFormat::DayCompact => "ddmmyyyy",
            DateFormat::IsoCompact => "yyyymmdd",
        }
    }
}

/// Where a delimited field is: a header name, or a position counted from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Column {
    Position(usize),
    Name(String),
}

/// One column per canonical field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub client_reference: Column,
    pub debtor_name: Column,
    pub cpf: Column,
    pub amount: Column,
    pub missed_date: Column,
}

impl Columns {
    fn by_field(&self) -> [&Column; FIELD_COUNT] {
        [
            &self.client_reference,
            &self.debtor_name,
            &self.cpf,
            &self.amount,
            &self.missed_date,
        ]
    }
}

/// A fixed-width field: its first character (counted from 1) and its width in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    pub start: usize,
    pub width: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedFields {
    pub client_reference: Span,
    pub debtor_name: Span,
    pub cpf: Span,
    pub amount: Span,
    pub missed_date: Span,
}

impl FixedFields {
    fn by_field(&self) -> [Span; FIELD_COUNT] {
        [
            self.client_reference,
            self.debtor_name,
            self.cpf,
            self.amount,
            self.missed_date,
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layout {
    Delimited {
        /// One ASCII character, e.g. `,`, `;`, `|` or a tab.
        delimiter: char,
        /// Whether the first line names the columns.
        header: bool,
        columns: Columns,
    },
    FixedWidth {
        /// Lines to skip before the first debt (a title or a header).
        #[serde(default)]
        header_lines: usize,
        fields: FixedFields,
    },
}

/// A client's file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebtFormat {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default)]
    pub decimal: DecimalMark,
    pub date_formats: Vec<DateFormat>,
    pub layout: Layout,
}

impl DebtFormat {
    /// Reads a format from YAML (JSON is YAML too) and checks it.
    pub fn from_yaml(text: &str) -> Result<DebtFormat, FormatError> {
        let format: DebtFormat =
            serde_yaml::from_str(text).map_err(|e| FormatError::Syntax(e.to_string()))?;
        format.check()?;
        Ok(format)
    }

    /// Lines before the first debt.
    pub fn header_lines(&self) -> usize {
        match &self.layout {
            Layout::Delimited { header, .. } => usize::from(*header),
            Layout::FixedWidth { header_lines, .. } => *header_lines,
        }
    }

    fn check(&self) -> Result<(), FormatError> {
        let invalid = |reason: String| FormatError::Invalid {
            name: self.name.clone(),
            reason,
        };
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("name must be letters, digits, '-' or '_'".into()));
        }
        if self.date_formats.is_empty() {
            return Err(invalid("date_formats is empty".into()));
        }
        match &self.layout {
            Layout::Delimited {
                delimiter,
                header,
                columns,
            } => {
                if !delimiter.is_ascii() || *delimiter == '"' || *delimiter == '\n' {
                    return Err(invalid(format!(
                        "delimiter {delimiter:?} must be one ASCII character other than a quote"
                    )));
                }
                for (field, column) in DebtField::ALL.iter().zip(columns.by_field()) {
                    match column {
                        Column::Position(p) if *p == 0 || *p > COLUMNS_MAX => {
                            return Err(invalid(format!(
                                "{field}: position {p} is not in 1..={COLUMNS_MAX}"
                            )));
                        }
                        Column::Name(_) if !header => {
                            return Err(invalid(format!(
                                "{field}: columns by name need header: true"
                            )));
                        }
                        _ => {}
                    }
                }
            }
            Layout::FixedWidth { fields, .. } => {
                for (field, span) in DebtField::ALL.iter().zip(fields.by_field()) {
                    if span.start == 0 || span.width == 0 {
                        return Err(invalid(format!(
                            "{field}: start counts from 1 and width is at least 1"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// How to find the fields of a line. For a delimited format with a header, `header` is
    /// the decoded first line; a column missing from it is a [`HeaderError`].
    pub fn plan(&self, header: Option<&str>) -> Result<Plan, HeaderError> {
        match &self.layout {
            Layout::FixedWidth { fields, .. } => {
                let spans = fields
                    .by_field()
                    .map(|s| (s.start - 1, s.start - 1 + s.width));
                let min_chars = spans.iter().map(|s| s.1).max().unwrap_or(0);
                Ok(Plan::Fixed { spans, min_chars })
            }
            Layout::Delimited {
                delimiter,
                header: has_header,
                columns,
            } => {
                // `check` admits only ASCII delimiters.
                let delimiter = *delimiter as u8;
                let names: Vec<String> = match (has_header, header) {
                    (true, Some(h)) => h
                        .split(char::from(delimiter))
                        .map(|n| n.trim().trim_matches('"').trim().to_owned())
                        .collect(),
                    (true, None) => return Err(HeaderError::Missing),
                    (false, _) => Vec::new(),
                };
                if names.len() > COLUMNS_MAX {
                    return Err(HeaderError::TooManyColumns(names.len()));
                }
                let mut index = [0usize; FIELD_COUNT];
                for ((slot, field), column) in
                    index.iter_mut().zip(DebtField::ALL).zip(columns.by_field())
                {
                    *slot = match column {
                        Column::Position(p) => p - 1,
                        Column::Name(name) => names
                            .iter()
                            .position(|n| n.eq_ignore_ascii_case(name))
                            .ok_or_else(|| HeaderError::MissingColumn {
                                field,
                                column: name.clone(),
                                found: names.join(", ").chars().take(200).collect(),
                            })?,
                    };
                }
                let fields_expected = if *has_header { Some(names.len()) } else { None };
                let fields_min = index.iter().max().map_or(0, |m| m + 1);
                Ok(Plan::Delimited {
                    delimiter,
                    index,
                    fields_expected,
                    fields_min,
                })
            }
        }
    }
}

/// A file's header does not fit its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the file has no header line")]
    Missing,
    #[error("header has {0} columns, more than {COLUMNS_MAX}")]
    TooManyColumns(usize),
    #[error("header has no column {column:?} for {field} (found: {found})")]
    MissingColumn {
        field: DebtField,
        column: String,
        found: String,
    },
}

/// A format resolved against a file's header: where each canonical field is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Delimited {
        delimiter: u8,
        /// Column index (from 0) of each field, in [`DebtField::ALL`] order.
        index: [usize; FIELD_COUNT],
        /// With a header: every line has exactly as many fields as the header.
        fields_expected: Option<usize>,
        /// Without one: at least this many.
        fields_min: usize,
    },
    Fixed {
        /// Character range of each field, from 0, end exclusive.
        spans: [(usize, usize); FIELD_COUNT],
        min_chars: usize,
    },
}

/// The formats shipped with payops, parsed. Each file is checked by a test, so a broken one
/// cannot ship; a format that fails to parse here is skipped rather than taking others down.
pub fn builtin() -> Vec<DebtFormat> {
    BUILTIN_SOURCES
        .iter()
        .filter_map(|s| DebtFormat::from_yaml(s).ok())
        .collect()
}

/// A shipped format by name.
pub fn builtin_named(name: &str) -> Result<DebtFormat, FormatError> {
    let all = builtin();
    let known = all
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    all.iter()
        .find(|f| f.name == name)
        .cloned()
        .ok_or_else(|| FormatError::Unknown(name.to_owned(), known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_format_parses() {
        for source in BUILTIN_SOURCES {
            DebtFormat::from_yaml(source).expect("shipped format is valid");
        }
        assert_eq!(builtin().len(), BUILTIN_SOURCES.len());
        let names: Vec<String> = builtin().into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            ["default", "varejo-sp", "telecom-fixed", "financeira-tab"]
        );
    }

    #[test]
    fn the_default_format_is_the_issue_s() {
        let f = builtin_named(DEFAULT_FORMAT).expect("shipped");
        assert_eq!(f.encoding, Encoding::Utf8);
        assert_eq!(f.decimal, DecimalMark::Point);
        assert_eq!(f.date_formats, [DateFormat::Iso]);
        let plan = f
            .plan(Some("client_reference,debtor_name,cpf,amount,missed_date"))
            .expect("header fits");
        assert_eq!(
            plan,
            Plan::Delimited {
                delimiter: b',',
                index: [0, 1, 2, 3, 4],
                fields_expected: Some(5),
                fields_min: 5
            }
        );
    }

    #[test]
    fn a_wrong_header_names_the_missing_column() {
        let f = builtin_named(DEFAULT_FORMAT).expect("shipped");
        let e = f.plan(Some("ref,name,cpf,amount,date")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "header has no column \"client_reference\" for client_reference (found: ref, name, cpf, amount, date)"
        );
    }

    #[test]
    fn header_names_are_matched_ignoring_case_and_order() {
        let f = builtin_named("varejo-sp").expect("shipped");
        let plan = f
            .plan(Some(
                "loja;cpf;contrato;vencimento;Nome do Cliente;Valor em Aberto",
            ))
            .expect("fits");
        assert!(matches!(
            plan,
            Plan::Delimited {
                index: [2, 4, 1, 5, 3],
                ..
            }
        ));
    }

    #[test]
    fn bad_formats_are_refused_with_a_reason() {
        let unknown = builtin_named("nope").unwrap_err();
        assert!(unknown.to_string().contains("default, varejo-sp"));
        let by_name_without_header = r#"
name: x
date_formats: [yyyy-mm-dd]
layout: {type: delimited, delimiter: ",", header: false,
  columns: {client_reference: ref, debtor_name: 2, cpf: 3, amount: 4, missed_date: 5}}
"#;
        let e = DebtFormat::from_yaml(by_name_without_header).unwrap_err();
        assert!(e.to_string().contains("need header: true"), "{e}");
        let zero_position =
            by_name_without_header.replace("client_reference: ref", "client_reference: 0");
        let e = DebtFormat::from_yaml(&zero_position).unwrap_err();
        assert!(e.to_string().contains("position 0"), "{e}");
        let e = DebtFormat::from_yaml("name: [").unwrap_err();
        assert!(matches!(e, FormatError::Syntax(_)));
        let json = r#"{"name":"j","date_formats":["dd/mm/yyyy"],"encoding":"latin-1","layout":{"type":"fixed_width","fields":{"client_reference":{"start":1,"width":5},"debtor_name":{"start":6,"width":5},"cpf":{"start":11,"width":11},"amount":{"start":22,"width":8},"missed_date":{"start":30,"width":10}}}}"#;
        let f = DebtFormat::from_yaml(json).expect("JSON is accepted");
        assert_eq!(f.encoding, Encoding::Latin1);
    }
}
