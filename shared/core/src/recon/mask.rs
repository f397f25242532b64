//! Mask sensitive ids: keyed tokenization of user ids. A token is HMAC-SHA256(key, id),
//! truncated to 128 bits and base64url-encoded behind a `usr_` prefix. The same id and key
//! always give the same token (joins across days and datasets work); without the key a token
//! cannot be reversed or even confirmed by hashing candidate ids.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Secret;

/// Shortest accepted key: 128 bits, so tokens cannot be brute-forced through the key.
pub const MASK_KEY_BYTES_MIN: usize = 16;
/// Bytes of the HMAC kept in a token (128 bits: collisions are out of reach at any volume).
pub const TOKEN_DIGEST_BYTES: usize = 16;
/// The token's prefix, so a token is never mistaken for a raw id.
pub const TOKEN_PREFIX: &str = "usr_";
/// Length of a token: the prefix and 22 base64url characters.
pub const TOKEN_CHARS: usize = 4 + 22;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("the masking key has {0} bytes; at least {MASK_KEY_BYTES_MIN} are required")]
    KeyTooShort(usize),
}

/// A masked id: `usr_` and 22 base64url characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaskedId([u8; TOKEN_CHARS]);

impl MaskedId {
    pub fn as_str(&self) -> &str {
        // Only the ASCII prefix and base64url characters are ever written.
        std::str::from_utf8(&self.0).unwrap_or("usr_?")
    }
}

impl std::fmt::Debug for MaskedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Masks user ids with one key. Cheap to clone; the keyed HMAC state is computed once, so a
/// token costs two SHA-256 blocks.
#[derive(Clone)]
pub struct UserIdMasker {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for UserIdMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserIdMasker(***)")
    }
}

impl UserIdMasker {
    pub fn new(key: &Secret<String>) -> Result<Self, MaskError> {
        let bytes = key.expose().as_bytes();
        if bytes.len() < MASK_KEY_BYTES_MIN {
            return Err(MaskError::KeyTooShort(bytes.len()));
        }
        // HMAC accepts a key of any length, so this cannot fail.
        let keyed = Hmac::<Sha256>::new_from_slice(bytes)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Ok(UserIdMasker { keyed })
    }

    /// The token of `user_id`. Masking is idempotent: a value that already has the shape of a
    /// token (the streaming index stores tokens, and the batch may read them back) is kept.
    pub fn mask(&self, user_id: &str) -> MaskedId {
        if let Some(token) = as_token(user_id) {
            return token;
        }
        let mut mac = self.keyed.clone();
        mac.update(user_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; TOKEN_CHARS];
        out[..TOKEN_PREFIX.len()].copy_from_slice(TOKEN_PREFIX.as_bytes());
        // 16 bytes encode to exactly 22 base64url characters without padding.
        let written = URL_SAFE_NO_PAD
            .encode_slice(
                &digest[..TOKEN_DIGEST_BYTES],
                &mut out[TOKEN_PREFIX.len()..],
            )
            .unwrap_or(0);
        debug_assert_eq!(written, TOKEN_CHARS - TOKEN_PREFIX.len());
        MaskedId(out)
    }
}

/// `text` as a token when it has a token's shape (`usr_` and 22 base64url characters).
pub fn as_token(text: &str) -> Option<MaskedId> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == TOKEN_CHARS
        && text.starts_with(TOKEN_PREFIX)
        && bytes[TOKEN_PREFIX.len()..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
    shaped.then(|| {
        let mut out = [0u8; TOKEN_CHARS];
        out.copy_from_slice(bytes);
        MaskedId(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(key: &str) -> UserIdMasker {
        UserIdMasker::new(&Secret::new(key.to_owned())).expect("long enough key")
    }

    #[test]
    fn tokens_are_stable_per_key_and_differ_across_keys_and_ids() {
        let a = masker("0123456789abcdef-key-a");
        let b = masker("0123456789abcdef-key-b");
        assert_eq!(a.mask("user_42"), a.mask("user_42"));
        assert_ne!(a.mask("user_42"), a.mask("user_43"));
        assert_ne!(a.mask("user_42"), b.mask("user_42"));
    }

    #[test]
    fn a_token_has_the_prefix_and_never_contains_the_id() {
        let token = masker("0123456789abcdef").mask("user_42");
        let text = token.as_str();
        assert_eq!(text.len(), TOKEN_CHARS);
        assert!(text.starts_with(TOKEN_PREFIX));
        assert!(!text.contains("user_42"));
        assert!(
            text[4..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        // Not a plain hash of the id either.
        assert_ne!(format!("{token:?}"), "user_42");
    }

    #[test]
    fn known_answer_pins_the_algorithm() {
        // HMAC-SHA256("0123456789abcdef", "u1"), first 16 bytes, base64url. Any change of
        // algorithm would break joins with earlier days, so it is pinned.
        let token = masker("0123456789abcdef").mask("u1");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").expect("any length");
        mac.update(b"u1");
        let full = mac.finalize().into_bytes();
        let expected = format!("usr_{}", URL_SAFE_NO_PAD.encode(&full[..16]));
        assert_eq!(token.as_str(), expected);
    }

    #[test]
    fn masking_a_token_again_keeps_it() {
        let m = masker("0123456789abcdef");
        let token = m.mask("user_42");
        assert_eq!(m.mask(token.as_str()), token);
        assert_eq!(as_token("usr_short"), None);
        assert_eq!(as_token("user_42"), None);
    }

    #[test]
    fn short_keys_are_refused_and_the_masker_does_not_print_its_key() {
        assert_eq!(
            UserIdMasker::new(&Secret::new("short".into())).err(),
            Some(MaskError::KeyTooShort(5))
        );
        assert_eq!(
            format!("{:?}", masker("0123456789abcdef")),
            "UserIdMasker(***)"
        );
    }
}
