//! The fields of a payroll row and where each sits in the XML tree.

use serde::{Serialize, Serializer};

/// Number of leaf fields in a row.
pub const FIELD_COUNT: usize = 19;

/// One leaf field of a `<row>`. Named in findings by its path under `<row>`
/// (`Payor/Address/Zip`), which is what HR sees in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    EmployeeId,
    EmployeeBranch,
    FirstName,
    LastName,
    DateOfBirth,
    PhoneNumber,
    PayerId,
    AbaRouting,
    AccountNumber,
    PayerName,
    Dba,
    Ein,
    AddressLine1,
    AddressCity,
    AddressState,
    AddressZip,
    PlaidId,
    LoanAccountNumber,
    Amount,
}

impl Field {
    pub const ALL: [Field; FIELD_COUNT] = [
        Field::EmployeeId,
        Field::EmployeeBranch,
        Field::FirstName,
        Field::LastName,
        Field::DateOfBirth,
        Field::PhoneNumber,
        Field::PayerId,
        Field::AbaRouting,
        Field::AccountNumber,
        Field::PayerName,
        Field::Dba,
        Field::Ein,
        Field::AddressLine1,
        Field::AddressCity,
        Field::AddressState,
        Field::AddressZip,
        Field::PlaidId,
        Field::LoanAccountNumber,
        Field::Amount,
    ];

    /// Position in [`Field::ALL`], for per-field arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Path under `<row>`, e.g. `Payor/Address/Zip`.
    pub fn path(self) -> &'static str {
        match self {
            Field::EmployeeId => "Employee/DunkinId",
            Field::EmployeeBranch => "Employee/DunkinBranch",
            Field::FirstName => "Employee/FirstName",
            Field::LastName => "Employee/LastName",
            Field::DateOfBirth => "Employee/DOB",
            Field::PhoneNumber => "Employee/PhoneNumber",
            Field::PayerId => "Payor/DunkinId",
            Field::AbaRouting => "Payor/ABARouting",
            Field::AccountNumber => "Payor/AccountNumber",
            Field::PayerName => "Payor/Name",
            Field::Dba => "Payor/DBA",
            Field::Ein => "Payor/EIN",
            Field::AddressLine1 => "Payor/Address/Line1",
            Field::AddressCity => "Payor/Address/City",
            Field::AddressState => "Payor/Address/State",
            Field::AddressZip => "Payor/Address/Zip",
            Field::PlaidId => "Payee/PlaidId",
            Field::LoanAccountNumber => "Payee/LoanAccountNumber",
            Field::Amount => "Amount",
        }
    }

    /// The element's own name (the last part of [`Field::path`]).
    pub fn element(self) -> &'static str {
        let path = self.path();
        path.rsplit('/').next().unwrap_or(path)
    }

    /// The element that holds this field directly.
    #[cfg(test)]
    pub(crate) fn parent(self) -> Container {
        match self {
            Field::EmployeeId
            | Field::EmployeeBranch
            | Field::FirstName
            | Field::LastName
            | Field::DateOfBirth
            | Field::PhoneNumber => Container::Employee,
            Field::PayerId
            | Field::AbaRouting
            | Field::AccountNumber
            | Field::PayerName
            | Field::Dba
            | Field::Ein => Container::Payor,
            Field::AddressLine1 | Field::AddressCity | Field::AddressState | Field::AddressZip => {
                Container::Address
            }
            Field::PlaidId | Field::LoanAccountNumber => Container::Payee,
            Field::Amount => Container::Row,
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.path())
    }
}

/// An element of a row that holds fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    Row,
    Employee,
    Payor,
    Address,
    Payee,
}

/// What a child element named `name` of `parent` is. Names match exactly (XML is
/// case-sensitive); anything unknown is ignored with its content, so extra elements a payroll
/// system adds do not break the import.
pub(crate) fn child(parent: Container, name: &[u8]) -> Option<Child> {
    use Child::{Container as C, Field as F};
    let child = match (parent, name) {
        (Container::Row, b"Employee") => C(Container::Employee),
        (Container::Row, b"Payor") => C(Container::Payor),
        (Container::Row, b"Payee") => C(Container::Payee),
        (Container::Row, b"Amount") => F(Field::Amount),
        (Container::Employee, b"DunkinId") => F(Field::EmployeeId),
        (Container::Employee, b"DunkinBranch") => F(Field::EmployeeBranch),
        (Container::Employee, b"FirstName") => F(Field::FirstName),
        (Container::Employee, b"LastName") => F(Field::LastName),
        (Container::Employee, b"DOB") => F(Field::DateOfBirth),
        (Container::Employee, b"PhoneNumber") => F(Field::PhoneNumber),
        (Container::Payor, b"DunkinId") => F(Field::PayerId),
        (Container::Payor, b"ABARouting") => F(Field::AbaRouting),
        (Container::Payor, b"AccountNumber") => F(Field::AccountNumber),
        (Container::Payor, b"Name") => F(Field::PayerName),
        (Container::Payor, b"DBA") => F(Field::Dba),
        (Container::Payor, b"EIN") => F(Field::Ein),
        (Container::Payor, b"Address") => C(Container::Address),
        (Container::Address, b"Line1") => F(Field::AddressLine1),
        (Container::Address, b"City") => F(Field::AddressCity),
        (Container::Address, b"State") => F(Field::AddressState),
        (Container::Address, b"Zip") => F(Field::AddressZip),
        (Container::Payee, b"PlaidId") => F(Field::PlaidId),
        (Container::Payee, b"LoanAccountNumber") => F(Field::LoanAccountNumber),
        _ => return None,
    };
    Some(child)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Child {
    Container(Container),
    Field(Field),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_reachable_from_its_parent_by_its_element_name() {
        for (i, field) in Field::ALL.iter().enumerate() {
            assert_eq!(field.index(), i);
            assert_eq!(
                child(field.parent(), field.element().as_bytes()),
                Some(Child::Field(*field)),
                "{field:?}"
            );
        }
    }

    #[test]
    fn unknown_and_misplaced_names_are_not_fields() {
        assert_eq!(child(Container::Row, b"amount"), None);
        assert_eq!(child(Container::Row, b"DunkinId"), None);
        assert_eq!(child(Container::Employee, b"Zip"), None);
    }
}
