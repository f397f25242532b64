//! The canonical debt record: what every client format becomes, and what the debt store keeps.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::cpf::Cpf;
use super::line::DebtView;
use crate::{Currency, Money, Secret};

/// One overdue debt. The debtor's name and CPF are PII: masked in logs and `Debug`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtRecord {
    /// The client's own reference for the debt (a contract number); unique per client.
    pub client_reference: String,
    pub debtor_name: Secret<String>,
    /// 11 digits, no mask.
    pub cpf: Secret<String>,
    pub amount: Money,
    pub missed_date: NaiveDate,
}

impl DebtRecord {
    pub fn from_view(view: &DebtView<'_>) -> Result<DebtRecord, crate::MoneyError> {
        Ok(DebtRecord {
            client_reference: view.client_reference.to_owned(),
            debtor_name: Secret::new(view.debtor_name.to_owned()),
            cpf: Secret::new(view.cpf.digits()),
            amount: Money::positive(view.amount, Currency::BRL)?,
            missed_date: view.missed_date,
        })
    }

    /// The CPF, validated again (a stored record always holds a valid one).
    pub fn cpf(&self) -> Result<Cpf, super::CpfError> {
        Cpf::parse(self.cpf.expose())
    }
}
