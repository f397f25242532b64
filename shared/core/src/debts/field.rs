//! The canonical fields of a debt, and what a rejection points at.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Fields of the canonical debt record.
pub const FIELD_COUNT: usize = 5;

/// A canonical field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DebtField {
    ClientReference,
    DebtorName,
    Cpf,
    Amount,
    MissedDate,
}

impl DebtField {
    /// In the order of the default format's header.
    pub const ALL: [DebtField; FIELD_COUNT] = [
        DebtField::ClientReference,
        DebtField::DebtorName,
        DebtField::Cpf,
        DebtField::Amount,
        DebtField::MissedDate,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            DebtField::ClientReference => "client_reference",
            DebtField::DebtorName => "debtor_name",
            DebtField::Cpf => "cpf",
            DebtField::Amount => "amount",
            DebtField::MissedDate => "missed_date",
        }
    }
}

impl fmt::Display for DebtField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a rejection points at: one field, or the line as a whole (its encoding, its number
/// of fields, its quoting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Line,
    Field(DebtField),
}

impl Target {
    pub fn as_str(&self) -> &'static str {
        match self {
            Target::Line => "line",
            Target::Field(f) => f.as_str(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "line" {
            return Ok(Target::Line);
        }
        DebtField::ALL
            .iter()
            .find(|f| f.as_str() == s)
            .map(|f| Target::Field(*f))
            .ok_or_else(|| serde::de::Error::custom(format!("unknown field {s:?}")))
    }
}
