//! Text encodings Brazilian files come in: UTF-8, and Latin-1 / Windows-1252, decoded here
//! with a table (Windows-1252 differs from Latin-1 only in 0x80..=0x9F). ASCII lines, the
//! vast majority, are borrowed as they are.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    #[serde(rename = "latin-1")]
    Latin1,
    #[serde(rename = "windows-1252")]
    Windows1252,
}

impl Encoding {
    pub fn as_str(&self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Latin1 => "latin-1",
            Encoding::Windows1252 => "windows-1252",
        }
    }
}

/// Bytes that are not text in the declared encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "is not valid UTF-8 at byte {0} (is the file Latin-1 or Windows-1252? the client's format says UTF-8)"
    )]
    Utf8(usize),
    #[error("byte 0x{0:02X} at byte {1} is not a Windows-1252 character")]
    Windows1252(u8, usize),
    #[error("contains a NUL byte at byte {0}; this looks like a binary file")]
    Nul(usize),
}

/// Windows-1252's characters for 0x80..=0x9F; `None` where the code page defines none.
const CP1252_HIGH: [Option<char>; 32] = [
    Some('\u{20AC}'),
    None,
    Some('\u{201A}'),
    Some('\u{0192}'),
    Some('\u{201E}'),
    Some('\u{2026}'),
    Some('\u{2020}'),
    Some('\u{2021}'),
    Some('\u{02C6}'),
    Some('\u{2030}'),
    Some('\u{0160}'),
    Some('\u{2039}'),
    Some('\u{0152}'),
    None,
    Some('\u{017D}'),
    None,
    None,
    Some('\u{2018}'),
    Some('\u{2019}'),
    Some('\u{201C}'),
    Some('\u{201D}'),
    Some('\u{2022}'),
    Some('\u{2013}'),
    Some('\u{2014}'),
    Some('\u{02DC}'),
    Some('\u{2122}'),
    Some('\u{0161}'),
    Some('\u{203A}'),
    Some('\u{0153}'),
    None,
    Some('\u{017E}'),
    Some('\u{0178}'),
];

/// Decodes one line. ASCII and valid UTF-8 lines are borrowed; single-byte encodings with
/// non-ASCII bytes are decoded into `scratch` (reused across lines: no allocation per line
/// once it has grown).
pub fn decode<'a>(
    encoding: Encoding,
    bytes: &'a [u8],
    scratch: &'a mut String,
) -> Result<&'a str, DecodeError> {
    if let Some(at) = memchr::memchr(0, bytes) {
        return Err(DecodeError::Nul(at));
    }
    // ASCII is valid in all three encodings and is the same text in each; UTF-8 needs one
    // validating pass either way.
    if encoding == Encoding::Utf8 || bytes.is_ascii() {
        return std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8(e.valid_up_to()));
    }
    match encoding {
        Encoding::Utf8 => {
            std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8(e.valid_up_to()))
        }
        Encoding::Latin1 => {
            scratch.clear();
            scratch.extend(bytes.iter().map(|&b| char::from(b)));
            Ok(scratch.as_str())
        }
        Encoding::Windows1252 => {
            scratch.clear();
            for (at, &b) in bytes.iter().enumerate() {
                let c = if (0x80..0xA0).contains(&b) {
                    CP1252_HIGH[usize::from(b - 0x80)].ok_or(DecodeError::Windows1252(b, at))?
                } else {
                    char::from(b)
                };
                scratch.push(c);
            }
            Ok(scratch.as_str())
        }
    }
}

/// Encodes text for a single-byte encoding (the generator writes client files with it).
/// Characters the encoding lacks become `?`.
pub fn encode(encoding: Encoding, text: &str) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Latin1 => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
        Encoding::Windows1252 => text
            .chars()
            .map(|c| {
                if let Some(i) = CP1252_HIGH.iter().position(|h| *h == Some(c)) {
                    // i < 32, so 0x80 + i fits a byte.
                    0x80 + i as u8
                } else {
                    match u8::try_from(u32::from(c)) {
                        Ok(b) if !(0x80..0xA0).contains(&b) => b,
                        _ => b'?',
                    }
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_portuguese_names_in_each_encoding() {
        let name = "João Conceição — Gonçalves";
        let mut scratch = String::new();
        let utf8 = name.as_bytes();
        assert_eq!(decode(Encoding::Utf8, utf8, &mut scratch), Ok(name));
        let cp = encode(Encoding::Windows1252, name);
        assert_eq!(cp.len(), name.chars().count());
        assert_eq!(decode(Encoding::Windows1252, &cp, &mut scratch), Ok(name));
        let latin = encode(Encoding::Latin1, "João Conceição");
        assert_eq!(
            decode(Encoding::Latin1, &latin, &mut scratch),
            Ok("João Conceição")
        );
    }

    #[test]
    fn refuses_what_is_not_text() {
        let mut scratch = String::new();
        let cp = encode(Encoding::Windows1252, "João");
        assert_eq!(
            decode(Encoding::Utf8, &cp, &mut scratch),
            Err(DecodeError::Utf8(2))
        );
        assert_eq!(
            decode(Encoding::Windows1252, b"a\x81b", &mut scratch),
            Err(DecodeError::Windows1252(0x81, 1))
        );
        assert_eq!(
            decode(Encoding::Latin1, b"ab\0", &mut scratch),
            Err(DecodeError::Nul(2))
        );
    }

    proptest! {
        #[test]
        fn latin1_round_trips(text in "[\\x20-\\x7e\\u{a0}-\\u{ff}]{0,40}") {
            let mut scratch = String::new();
            let bytes = encode(Encoding::Latin1, &text);
            prop_assert_eq!(decode(Encoding::Latin1, &bytes, &mut scratch), Ok(text.as_str()));
        }

        #[test]
        fn windows1252_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut scratch = String::new();
            let _ = decode(Encoding::Windows1252, &bytes, &mut scratch);
        }
    }
}
