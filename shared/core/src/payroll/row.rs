//! A valid payroll row, typed: one payment from a payer's account to an employee's loan.
//! Personal data (names, date of birth, phone, account numbers) is held in [`Secret`].

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::assemble::RawRow;
use super::checks::parse_date;
use super::field::Field;
use super::ids::{BranchId, EmployeeId, PayerId, PlaidId, RoutingNumber};
use crate::{Currency, Money, Secret};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayrollRow {
    /// Position in the file, from 1.
    pub row: u32,
    pub employee: Employee,
    pub payer: Payer,
    pub payee: Payee,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    pub id: EmployeeId,
    pub branch_id: BranchId,
    pub first_name: Secret<String>,
    pub last_name: Secret<String>,
    pub date_of_birth: Secret<NaiveDate>,
    pub phone: Secret<String>,
}

/// The employer's source account a payment is drawn from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub id: PayerId,
    pub routing: RoutingNumber,
    pub account_number: Secret<String>,
    pub name: String,
    pub dba: String,
    /// As written; a warning tells when it is not nine digits.
    pub ein: String,
    pub address: Address,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub city: String,
    pub state: String,
    pub zip: String,
}

/// The loan the payment goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payee {
    pub plaid_id: PlaidId,
    pub loan_account_number: Secret<String>,
}

impl PayrollRow {
    /// Types a row that validation found without errors; `None` if any value does not type,
    /// which validation has already reported.
    pub(crate) fn from_raw(raw: &RawRow<'_>, cents: i64) -> Option<PayrollRow> {
        let text = |f: Field| raw.value(f).to_owned();
        let secret = |f: Field| Secret::new(text(f));
        Some(PayrollRow {
            row: raw.number(),
            employee: Employee {
                id: EmployeeId::parse(raw.value(Field::EmployeeId))?,
                branch_id: BranchId::parse(raw.value(Field::EmployeeBranch))?,
                first_name: secret(Field::FirstName),
                last_name: secret(Field::LastName),
                date_of_birth: Secret::new(parse_date(raw.value(Field::DateOfBirth))?),
                phone: secret(Field::PhoneNumber),
            },
            payer: Payer {
                id: PayerId::parse(raw.value(Field::PayerId))?,
                routing: RoutingNumber::parse(raw.value(Field::AbaRouting)).ok()?,
                account_number: secret(Field::AccountNumber),
                name: text(Field::PayerName),
                dba: text(Field::Dba),
                ein: text(Field::Ein),
                address: Address {
                    line1: text(Field::AddressLine1),
                    city: text(Field::AddressCity),
                    state: text(Field::AddressState),
                    zip: text(Field::AddressZip),
                },
            },
            payee: Payee {
                plaid_id: PlaidId::parse(raw.value(Field::PlaidId))?,
                loan_account_number: secret(Field::LoanAccountNumber),
            },
            amount: Money::new(Decimal::new(cents, 2), Currency::USD).ok()?,
        })
    }
}
