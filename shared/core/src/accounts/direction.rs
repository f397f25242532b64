//! Which way money goes. The words are the API's, and they mean different things for a
//! transfer between two accounts and for a bank transaction on one account.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Debit,
    Credit,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be \"debit\" or \"credit\"")]
pub struct DirectionError;

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Debit => "debit",
            Direction::Credit => "credit",
        }
    }

    /// A transfer between `src` and `dst`: `debit` takes from src and gives to dst; `credit`
    /// is the reverse. Returns `(payer, payee)`.
    pub fn transfer_legs<T>(self, src: T, dst: T) -> (T, T) {
        match self {
            Direction::Debit => (src, dst),
            Direction::Credit => (dst, src),
        }
    }

    /// A bank transaction on one account: `credit` means the bank gives to the account,
    /// `debit` that the bank takes from it. Returns the change of the account's balance.
    pub fn bank_delta(self, amount: Decimal) -> Decimal {
        match self {
            Direction::Credit => amount,
            Direction::Debit => -amount,
        }
    }
}

impl FromStr for Direction {
    type Err = DirectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "debit" => Ok(Direction::Debit),
            "credit" => Ok(Direction::Credit),
            _ => Err(DirectionError),
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_pays_from_src_and_credit_from_dst() {
        assert_eq!(Direction::Debit.transfer_legs("src", "dst"), ("src", "dst"));
        assert_eq!(
            Direction::Credit.transfer_legs("src", "dst"),
            ("dst", "src")
        );
    }

    #[test]
    fn bank_credit_adds_and_bank_debit_takes() {
        let ten = Decimal::TEN;
        assert_eq!(Direction::Credit.bank_delta(ten), ten);
        assert_eq!(Direction::Debit.bank_delta(ten), -ten);
    }

    #[test]
    fn parses_only_the_two_words() {
        assert_eq!("debit".parse(), Ok(Direction::Debit));
        assert_eq!("credit".parse(), Ok(Direction::Credit));
        assert_eq!("Debit".parse::<Direction>(), Err(DirectionError));
        assert_eq!("".parse::<Direction>(), Err(DirectionError));
    }
}
