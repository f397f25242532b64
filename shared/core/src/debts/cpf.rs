//! CPF (Cadastro de Pessoas Físicas), the Brazilian individual taxpayer number: 11 digits, the
//! last two of which are check digits (modulo 11 over the first nine, then the first ten).
//! Accepted as 11 ASCII digits or in the mask `000.000.000-00`, surrounding whitespace trimmed.

use std::fmt;

/// Digits in a CPF.
pub const CPF_DIGITS: usize = 11;
/// Length of the masked form `000.000.000-00`.
pub const CPF_MASKED_BYTES: usize = 14;

/// Why a CPF text is not a valid CPF. The messages never contain the value itself (PII).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CpfError {
    #[error("is missing")]
    Missing,
    #[error(
        "has 10 digits; a leading zero may have been lost (spreadsheets drop it): write all 11 digits"
    )]
    LostLeadingZero,
    #[error("must be 11 digits or the mask 000.000.000-00")]
    BadFormat,
    #[error("has all digits the same, which is not a valid CPF")]
    AllSameDigits,
    #[error("check digits do not match")]
    CheckDigits,
}

/// A valid CPF: 11 digit values (0..=9) whose check digits match.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cpf([u8; CPF_DIGITS]);

impl Cpf {
    /// Parses and validates a CPF text (see the module documentation).
    pub fn parse(text: &str) -> Result<Cpf, CpfError> {
        let digits = extract_digits(text.trim().as_bytes())?;
        Cpf::from_digits(digits)
    }

    /// Validates 11 digit values (each 0..=9).
    pub fn from_digits(digits: [u8; CPF_DIGITS]) -> Result<Cpf, CpfError> {
        if digits.iter().all(|&d| d == digits[0]) {
            return Err(CpfError::AllSameDigits);
        }
        let (first, second) = check_digits(&digits[..9]);
        if digits[9] != first || digits[10] != second {
            return Err(CpfError::CheckDigits);
        }
        Ok(Cpf(digits))
    }

    /// The CPF completed with its check digits from the first nine digit values (each 0..=9).
    /// For generators and tests; the all-same-digit values are still refused.
    pub fn with_check_digits(base: [u8; 9]) -> Result<Cpf, CpfError> {
        let mut digits = [0u8; CPF_DIGITS];
        digits[..9].copy_from_slice(&base);
        let (first, second) = check_digits(&base);
        digits[9] = first;
        digits[10] = second;
        Cpf::from_digits(digits)
    }

    /// `12345678909`
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// `123.456.789-09`
    pub fn masked(&self) -> String {
        let d = self.digits();
        format!("{}.{}.{}-{}", &d[0..3], &d[3..6], &d[6..9], &d[9..11])
    }
}

/// Masked in `Debug`: a CPF is PII. Use `digits()`/`masked()` explicitly.
impl fmt::Debug for Cpf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cpf(***)")
    }
}

/// The two check digits of a CPF's first nine digits.
pub fn check_digits(base: &[u8]) -> (u8, u8) {
    let digit = |sum: u32| {
        let r = (sum * 10) % 11;
        if r == 10 { 0 } else { r as u8 }
    };
    let sum1: u32 = base
        .iter()
        .take(9)
        .zip((2..=10).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    let first = digit(sum1);
    let sum2: u32 = base
        .iter()
        .take(9)
        .zip((3..=11).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum::<u32>()
        + u32::from(first) * 2;
    (first, digit(sum2))
}

/// The 11 digit values of `000.000.000-00` or `00000000000`.
fn extract_digits(b: &[u8]) -> Result<[u8; CPF_DIGITS], CpfError> {
    let mut out = [0u8; CPF_DIGITS];
    match b.len() {
        0 => Err(CpfError::Missing),
        CPF_DIGITS => {
            for (o, &c) in out.iter_mut().zip(b) {
                *o = digit(c)?;
            }
            Ok(out)
        }
        CPF_MASKED_BYTES => {
            if b[3] != b'.' || b[7] != b'.' || b[11] != b'-' {
                return Err(CpfError::BadFormat);
            }
            let positions = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13];
            for (o, &p) in out.iter_mut().zip(positions.iter()) {
                *o = digit(b[p])?;
            }
            Ok(out)
        }
        10 if b.iter().all(u8::is_ascii_digit) => Err(CpfError::LostLeadingZero),
        _ => Err(CpfError::BadFormat),
    }
}

fn digit(c: u8) -> Result<u8, CpfError> {
    if c.is_ascii_digit() {
        Ok(c - b'0')
    } else {
        Err(CpfError::BadFormat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_digits_and_mask_with_whitespace() {
        for text in [
            "52998224725",
            "529.982.247-25",
            "  529.982.247-25\t",
            "11144477735",
        ] {
            assert!(Cpf::parse(text).is_ok(), "{text}");
        }
        let cpf = Cpf::parse(" 529.982.247-25 ").expect("valid");
        assert_eq!(cpf.digits(), "52998224725");
        assert_eq!(cpf.masked(), "529.982.247-25");
        assert_eq!(format!("{cpf:?}"), "Cpf(***)");
    }

    #[test]
    fn names_each_reason() {
        assert_eq!(Cpf::parse(""), Err(CpfError::Missing));
        assert_eq!(Cpf::parse("   "), Err(CpfError::Missing));
        assert_eq!(Cpf::parse("5299822472"), Err(CpfError::LostLeadingZero));
        assert_eq!(Cpf::parse("529982247-25"), Err(CpfError::BadFormat));
        assert_eq!(Cpf::parse("529.982.247.25"), Err(CpfError::BadFormat));
        assert_eq!(Cpf::parse("5299822472a"), Err(CpfError::BadFormat));
        assert_eq!(Cpf::parse("529 982 247 25"), Err(CpfError::BadFormat));
        assert_eq!(Cpf::parse("111.111.111-11"), Err(CpfError::AllSameDigits));
        assert_eq!(Cpf::parse("00000000000"), Err(CpfError::AllSameDigits));
        assert_eq!(Cpf::parse("52998224726"), Err(CpfError::CheckDigits));
        assert_eq!(Cpf::parse("52998224715"), Err(CpfError::CheckDigits));
    }

    #[test]
    fn a_cpf_with_a_leading_zero_is_valid_with_it_and_hinted_without() {
        let cpf = Cpf::with_check_digits([0, 1, 2, 3, 4, 5, 6, 7, 8]).expect("valid");
        let digits = cpf.digits();
        assert!(digits.starts_with('0'));
        assert!(Cpf::parse(&digits).is_ok());
        assert_eq!(Cpf::parse(&digits[1..]), Err(CpfError::LostLeadingZero));
    }

    proptest! {
        #[test]
        fn generated_cpfs_round_trip(base in proptest::array::uniform9(0u8..10)) {
            if let Ok(cpf) = Cpf::with_check_digits(base) {
                prop_assert_eq!(Cpf::parse(&cpf.digits()), Ok(cpf));
                prop_assert_eq!(Cpf::parse(&cpf.masked()), Ok(cpf));
            }
        }

        #[test]
        fn changing_a_check_digit_breaks_the_check(base in proptest::array::uniform9(0u8..10), pos in 9usize..11, delta in 1u8..10) {
            if let Ok(cpf) = Cpf::with_check_digits(base) {
                let mut digits = cpf.0;
                digits[pos] = (digits[pos] + delta) % 10;
                prop_assert!(Cpf::from_digits(digits).is_err());
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,20}") {
            let _ = Cpf::parse(&text);
        }
    }
}
