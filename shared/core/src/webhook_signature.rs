//! Webhook signatures: `Payops-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//!
//! The timestamp is signed with the body so that a captured request cannot be replayed after
//! the tolerance window. A header may carry several `v1` entries: while a secret is being
//! rotated the sender signs with the old and the new secret, and the receiver accepts either.
//! Unknown schemes (`v0=…`) are ignored so that the sender can add one without breaking us.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The HTTP header that carries the signature (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "Payops-Signature";
/// How far the signed timestamp may be from our clock, either way.
pub const TOLERANCE_SECONDS: i64 = 300;
/// Longest header accepted, to bound work on hostile input.
pub const HEADER_BYTES_MAX: usize = 1024;
/// Most `v1` entries accepted in one header (rotation needs two; a few more are harmless).
pub const SIGNATURES_MAX: usize = 8;

/// Bytes of an HMAC-SHA256 digest.
const DIGEST_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "signature timestamp {timestamp} is more than {tolerance_seconds} s away from now ({now})"
    )]
    TimestampOutsideTolerance {
        timestamp: i64,
        now: i64,
        tolerance_seconds: i64,
    },
    #[error("no signature matches the body")]
    Mismatch,
}

/// The header value that signs `body` at unix time `t` with `secret`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(digest(secret, t, body)))
}

/// Checks `header` (the value of [`SIGNATURE_HEADER`], `None` when absent) against the raw
/// `body`: the timestamp must be within `tolerance_seconds` of `now_unix` and one of the `v1`
/// signatures must match. Signatures are compared in constant time.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let parsed = parse_header(header)?;
    // i128 so that hostile timestamps near i64::MIN/MAX cannot overflow the difference.
    let skew = (i128::from(now_unix) - i128::from(parsed.timestamp)).abs();
    if skew > i128::from(tolerance_seconds) {
        return Err(SignatureError::TimestampOutsideTolerance {
            timestamp: parsed.timestamp,
            now: now_unix,
            tolerance_seconds,
        });
    }
    let expected = digest(secret, parsed.timestamp, body);
    // Compare against every entry without stopping early, so timing says nothing about which.
    let matched = parsed
        .signatures
        .iter()
        .fold(subtle::Choice::from(0), |acc, candidate| {
            acc | candidate.ct_eq(&expected)
        });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[derive(Debug)]
struct ParsedHeader {
    timestamp: i64,
    signatures: Vec<[u8; DIGEST_BYTES]>,
}

fn parse_header(header: &str) -> Result<ParsedHeader, SignatureError> {
    if header.len() > HEADER_BYTES_MAX {
        return Err(SignatureError::Malformed("header is too long"));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for entry in header.split(',') {
        let (scheme, value) = entry
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("an entry is not key=value"))?;
        match scheme.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one timestamp"));
                }
                timestamp = Some(parse_timestamp(value.trim())?);
            }
            "v1" => {
                if signatures.len() == SIGNATURES_MAX {
                    return Err(SignatureError::Malformed("too many v1 signatures"));
                }
                signatures.push(parse_signature(value.trim())?);
            }
            // Other schemes are for other receivers or future versions.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no timestamp (t=)"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    Ok(ParsedHeader {
        timestamp,
        signatures,
    })
}

fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    let bad = SignatureError::Malformed("timestamp is not unix seconds");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

fn parse_signature(text: &str) -> Result<[u8; DIGEST_BYTES], SignatureError> {
    let mut out = [0u8; DIGEST_BYTES];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| SignatureError::Malformed("v1 is not 64 hex digits"))?;
    Ok(out)
}

fn digest(secret: &[u8], t: i64, body: &[u8]) -> [u8; DIGEST_BYTES] {
    // HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"whsec_test";
    const T: i64 = 1_735_689_600;
    const BODY: &[u8] = br#"{"event_id":"evt_1"}"#;

    #[test]
    fn signs_in_the_documented_format() {
        // Reference value computed independently:
        // printf '1735689600.{"event_id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign(SECRET, T, BODY),
            "t=1735689600,v1=5a576c1f0690f7810b9c11cc72548508d0aceb798e93dd15f732a370a1c1adc3"
        );
    }

    #[test]
    fn accepts_a_fresh_signature() {
        let header = sign(SECRET, T, BODY);
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T, TOLERANCE_SECONDS),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T + 300, TOLERANCE_SECONDS),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T - 300, TOLERANCE_SECONDS),
            Ok(())
        );
    }

    #[test]
    fn rejects_missing_header() {
        assert_eq!(
            verify(SECRET, None, BODY, T, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, Some("  "), BODY, T, 300),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn rejects_outside_tolerance() {
        let header = sign(SECRET, T, BODY);
        for now in [T + 301, T - 301, i64::MAX, i64::MIN] {
            assert_eq!(
                verify(SECRET, Some(&header), BODY, now, TOLERANCE_SECONDS),
                Err(SignatureError::TimestampOutsideTolerance {
                    timestamp: T,
                    now,
                    tolerance_seconds: TOLERANCE_SECONDS
                })
            );
        }
    }

    #[test]
    fn rejects_a_changed_body_or_secret_or_timestamp() {
        let header = sign(SECRET, T, BODY);
        let changed = br#"{"event_id":"evt_2"}"#;
        assert_eq!(
            verify(SECRET, Some(&header), changed, T, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&header), BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
        // The same signature under another timestamp does not verify: t is signed.
        let moved = header.replace("t=1735689600", "t=1735689601");
        assert_eq!(
            verify(SECRET, Some(&moved), BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn accepts_any_of_several_v1_entries() {
        let old = sign(b"old-secret", T, BODY);
        let new = sign(SECRET, T, BODY);
        let both = format!("{old},v1={}", &new[new.find("v1=").unwrap() + 3..]);
        assert_eq!(verify(SECRET, Some(&both), BODY, T, 300), Ok(()));
        assert_eq!(verify(b"old-secret", Some(&both), BODY, T, 300), Ok(()));
        assert_eq!(
            verify(b"third", Some(&both), BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn ignores_unknown_schemes_and_spaces() {
        let header = sign(SECRET, T, BODY).replace(',', " , v0=abc , ");
        assert_eq!(verify(SECRET, Some(&header), BODY, T, 300), Ok(()));
    }

    #[test]
    fn rejects_malformed_headers_with_a_reason() {
        let good = sign(SECRET, T, BODY);
        let sig = &good[good.find("v1=").unwrap()..];
        let cases = [
            ("garbage".to_owned(), "an entry is not key=value"),
            (sig.to_owned(), "no timestamp (t=)"),
            (format!("t={T}"), "no v1 signature"),
            (format!("t={T},v0=00"), "no v1 signature"),
            (format!("t=abc,{sig}"), "timestamp is not unix seconds"),
            (format!("t=-5,{sig}"), "timestamp is not unix seconds"),
            (
                format!("t=99999999999999999999,{sig}"),
                "timestamp is not unix seconds",
            ),
            (format!("t={T},t={T},{sig}"), "more than one timestamp"),
            (format!("t={T},v1=zz"), "v1 is not 64 hex digits"),
            (
                format!("t={T},v1={}", "ab".repeat(31)),
                "v1 is not 64 hex digits",
            ),
            (
                format!("t={T}{}", format!(",{sig}").repeat(9)),
                "too many v1 signatures",
            ),
            (
                format!("t={T},v0={}", "a".repeat(HEADER_BYTES_MAX)),
                "header is too long",
            ),
        ];
        for (header, reason) in cases {
            assert_eq!(
                verify(SECRET, Some(&header), BODY, T, 300),
                Err(SignatureError::Malformed(reason)),
                "{header}"
            );
        }
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            secret in proptest::collection::vec(any::<u8>(), 0..80),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            t in 0i64..4_000_000_000,
            skew in -TOLERANCE_SECONDS..=TOLERANCE_SECONDS,
        ) {
            let header = sign(&secret, t, &body);
            prop_assert_eq!(verify(&secret, Some(&header), &body, t + skew, TOLERANCE_SECONDS), Ok(()));
        }

        #[test]
        fn any_flipped_body_bit_is_a_mismatch(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            index in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let header = sign(SECRET, T, &body);
            let mut tampered = body.clone();
            let i = index.index(tampered.len());
            tampered[i] ^= 1 << bit;
            prop_assert_eq!(verify(SECRET, Some(&header), &tampered, T, 300), Err(SignatureError::Mismatch));
        }

        #[test]
        fn verify_never_panics(header in "\\PC{0,200}", now in any::<i64>(), tolerance in any::<i64>()) {
            let _ = verify(SECRET, Some(&header), BODY, now, tolerance);
        }
    }
}
