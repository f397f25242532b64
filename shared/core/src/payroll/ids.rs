//! Typed ids of the payroll file. They will key table items and provider mappings, so they are
//! restricted to a charset that cannot carry a key separator (`#`) or markup.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest id accepted.
pub const PAYROLL_ID_BYTES_MAX: usize = 64;

/// Whether `text` is a usable id: 1 to [`PAYROLL_ID_BYTES_MAX`] letters, digits, `-`, `_`, `.`.
pub fn is_valid_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= PAYROLL_ID_BYTES_MAX
        && text.bytes().all(|b| ID_BYTES[usize::from(b)])
}

/// Which bytes an id may hold: a table, as ids are checked on every row.
const ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
        b += 1;
    }
    table
};

macro_rules! payroll_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// `None` unless [`is_valid_id`].
            pub fn parse(text: &str) -> Option<Self> {
                is_valid_id(text).then(|| $name(text.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                if is_valid_id(&text) {
                    Ok($name(text))
                } else {
                    Err(format!(
                        "{} must be 1 to {PAYROLL_ID_BYTES_MAX} letters, digits, '-', '_' or '.'",
                        stringify!($name)
                    ))
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

payroll_id!(
    /// The employer's id of an employee (`Employee/DunkinId`, e.g. `EMP-<uuid>`).
    EmployeeId
);
payroll_id!(
    /// The branch an employee works at (`Employee/DunkinBranch`, e.g. `BRC-<uuid>`).
    BranchId
);
payroll_id!(
    /// A payer, i.e. a source account the employer pays from (`Payor/DunkinId`, e.g.
    /// `CORP-<uuid>`). Totals "by source" are keyed by it.
    PayerId
);
payroll_id!(
    /// The loan servicer's institution at the aggregator (`Payee/PlaidId`, e.g. `ins_116248`).
    PlaidId
);

/// An ABA routing transit number: nine digits whose weighted sum (3, 7, 1, repeated) is a
/// multiple of ten. Kept as text: leading zeros are significant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoutingNumber(String);

/// Why a routing number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingError {
    NotNineDigits,
    Checksum,
}

impl RoutingNumber {
    pub fn parse(text: &str) -> Result<Self, RoutingError> {
        check_routing(text)?;
        Ok(RoutingNumber(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks an ABA routing number's form and check digit.
pub fn check_routing(text: &str) -> Result<(), RoutingError> {
    let b = text.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return Err(RoutingError::NotNineDigits);
    }
    const WEIGHTS: [u32; 9] = [3, 7, 1, 3, 7, 1, 3, 7, 1];
    let sum: u32 = b
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    if sum.is_multiple_of(10) {
        Ok(())
    } else {
        Err(RoutingError::Checksum)
    }
}

impl fmt::Display for RoutingNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RoutingNumber {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match check_routing(&text) {
            Ok(()) => Ok(RoutingNumber(text)),
            Err(RoutingError::NotNineDigits) => Err("routing number must be 9 digits".into()),
            Err(RoutingError::Checksum) => Err("routing number fails its checksum".into()),
        }
    }
}

impl From<RoutingNumber> for String {
    fn from(r: RoutingNumber) -> String {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_numbers_of_the_sample_pass_and_a_changed_digit_fails() {
        for r in [
            "403911437",
            "547414133",
            "030748921",
            "181222943",
            "148386123",
        ] {
            assert_eq!(check_routing(r), Ok(()), "{r}");
        }
        assert_eq!(check_routing("403911438"), Err(RoutingError::Checksum));
        assert_eq!(check_routing("40391143"), Err(RoutingError::NotNineDigits));
        assert_eq!(check_routing("40391143a"), Err(RoutingError::NotNineDigits));
        assert_eq!(
            check_routing("４03911437"),
            Err(RoutingError::NotNineDigits)
        );
    }

    #[test]
    fn ids_keep_their_text_and_refuse_separators() {
        let id = EmployeeId::parse("EMP-a7f138d9-1885-43db-b5c7-6b7c09020b4f").unwrap();
        assert_eq!(id.as_str(), "EMP-a7f138d9-1885-43db-b5c7-6b7c09020b4f");
        assert!(PayerId::parse("CORP#1").is_none());
        assert!(PayerId::parse("").is_none());
        assert!(PayerId::parse(&"a".repeat(PAYROLL_ID_BYTES_MAX + 1)).is_none());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<EmployeeId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<BranchId>("\"a b\"").is_err());
    }
}
