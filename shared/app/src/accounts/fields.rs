//! Reading request bodies field by field, so that every error names the field it is about.

use payops_core::accounts::amount::{parse_non_negative_amount, parse_positive_amount};
use payops_core::accounts::{AccountId, Direction, IdError};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::AccountsError;

/// Longest free text accepted (a bank transaction's `reason`).
pub const TEXT_BYTES_MAX: usize = 256;

pub type Object = Map<String, Value>;

/// The body as a JSON object.
pub fn object(body: &[u8]) -> Result<Object, AccountsError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AccountsError::invalid("body", "must be a JSON object")),
        Err(e) => Err(AccountsError::invalid(
            "body",
            format!(
                "is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )),
    }
}

pub fn optional_str<'a>(obj: &'a Object, field: &str) -> Result<Option<&'a str>, AccountsError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AccountsError::invalid(field, "must be a string")),
    }
}

pub fn required_str<'a>(obj: &'a Object, field: &str) -> Result<&'a str, AccountsError> {
    optional_str(obj, field)?.ok_or_else(|| AccountsError::invalid(field, "is required"))
}

pub fn account_id(obj: &Object, field: &str) -> Result<AccountId, AccountsError> {
    let text = optional_str(obj, field)?
        .ok_or(IdError::Missing)
        .map_err(|e| AccountsError::invalid(field, e))?;
    AccountId::parse(text).map_err(|e| AccountsError::invalid(field, e))
}

pub fn positive_amount(obj: &Object, field: &str) -> Result<Decimal, AccountsError> {
    parse_positive_amount(obj.get(field)).map_err(|e| AccountsError::invalid(field, e))
}

pub fn non_negative_amount(obj: &Object, field: &str) -> Result<Decimal, AccountsError> {
    parse_non_negative_amount(obj.get(field)).map_err(|e| AccountsError::invalid(field, e))
}

pub fn direction(obj: &Object, field: &str) -> Result<Direction, AccountsError> {
    required_str(obj, field)?
        .parse()
        .map_err(|e| AccountsError::invalid(field, e))
}

/// Free text: at most `TEXT_BYTES_MAX` bytes, no control characters.
pub fn text(obj: &Object, field: &str) -> Result<String, AccountsError> {
    let text = required_str(obj, field)?.trim();
    if text.is_empty() || text.len() > TEXT_BYTES_MAX {
        return Err(AccountsError::invalid(
            field,
            format!("must be 1 to {TEXT_BYTES_MAX} bytes long"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(AccountsError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}
