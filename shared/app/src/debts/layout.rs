//! Key design of the debts table (one table, `pk`/`sk`, index `gsi1`):
//!
//! | item | pk | sk | gsi1 |
//! |---|---|---|---|
//! | batch | `BATCH#{batch}` | `BATCH` | `CLIENT#{client}` / `{created_at}#{batch}` |
//! | sub-batch | `BATCH#{batch}` | `SUB#{index:06}` | |
//! | rejected line | `BATCH#{batch}` | `REJ#{line:012}` | |
//! | debt | `DEBT#{client}#{client_reference}` | `DEBT` | |
//! | file content | `FILE#{client}#{sha256}` | `FILE` | |
//! | client settings | `CLIENT#{client}` | `SETTINGS` | |
//! | submission | `SUBMISSION#{id}` | `SUBMISSION` | |
//! | staged line | `SUBMISSION#{id}` | `LINE#{n:09}` | |
//! | `Idempotency-Key` of an add-lines request | `IDEM#{key}` | `IDEM` | |
//!
//! A debt's key is the client and its reference, so "no duplicate reference per client" is a
//! condition on one item, and a redelivered sub-batch rewrites the same items (the condition
//! admits the same batch and line again).

use crate::ports::Key;

pub const BATCH_SK: &str = "BATCH";
pub const SUB_PREFIX: &str = "SUB#";
pub const REJECTION_PREFIX: &str = "REJ#";
pub const LINE_PREFIX: &str = "LINE#";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1_pk";
pub const GSI1_SK: &str = "gsi1_sk";

pub fn batch_pk(batch_id: &str) -> String {
    format!("BATCH#{batch_id}")
}
pub fn batch_key(batch_id: &str) -> Key {
    Key::new(batch_pk(batch_id), BATCH_SK)
}
pub fn sub_batch_key(batch_id: &str, index: u32) -> Key {
    Key::new(batch_pk(batch_id), format!("{SUB_PREFIX}{index:06}"))
}
pub fn rejection_key(batch_id: &str, line: u64) -> Key {
    Key::new(batch_pk(batch_id), format!("{REJECTION_PREFIX}{line:012}"))
}
pub fn debt_key(client_id: &str, client_reference: &str) -> Key {
    Key::new(format!("DEBT#{client_id}#{client_reference}"), "DEBT")
}
pub fn file_key(client_id: &str, sha256_hex: &str) -> Key {
    Key::new(format!("FILE#{client_id}#{sha256_hex}"), "FILE")
}
pub fn client_pk(client_id: &str) -> String {
    format!("CLIENT#{client_id}")
}
pub fn settings_key(client_id: &str) -> Key {
    Key::new(client_pk(client_id), "SETTINGS")
}
pub fn submission_pk(id: &str) -> String {
    format!("SUBMISSION#{id}")
}
pub fn submission_key(id: &str) -> Key {
    Key::new(submission_pk(id), "SUBMISSION")
}
pub fn staged_line_key(id: &str, n: u64) -> Key {
    Key::new(submission_pk(id), format!("{LINE_PREFIX}{n:09}"))
}
/// A client's `Idempotency-Key` (global, not per submission: the fingerprint covers the
/// submission id, so a key reused on another submission is refused).
pub fn idempotency_key(key: &str) -> Key {
    Key::new(format!("IDEM#{key}"), "IDEM")
}

/// S3 keys the flow writes.
pub fn sub_batch_object(batch_id: &str, index: u32) -> String {
    format!("debts/batches/{batch_id}/sub-{index:06}.txt")
}
pub fn rejections_object(batch_id: &str) -> String {
    format!("debts/batches/{batch_id}/rejections.csv")
}
pub fn upload_object(client_id: &str, batch_id: &str, part: u32) -> String {
    format!("debts/uploads/{client_id}/{batch_id}/part-{part:05}.csv")
}

/// Client ids and references are part of keys: keep them to a safe alphabet.
pub const CLIENT_ID_CHARS_MAX: usize = 64;

pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= CLIENT_ID_CHARS_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
