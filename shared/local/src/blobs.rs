//! The `Blobs` port on a directory, with S3's semantics.
//!
//! Object bodies are files at `{objects}/{bucket}/{key}` (so an operator can open a report
//! with any tool), written to a temporary file and renamed into place, so a reader never
//! sees half an object. Metadata (content type, etag, size, time) is a row of `blobs`, the
//! authority on what exists: a body without a row (a crash between rename and commit) is
//! invisible and replaced by the next put. Listing is by key in UTF-8 byte order, as S3.
//!
//! S3 lets `a/b` and `a/b/c` both be objects, which a file system cannot hold as paths: the
//! body of a key whose path is taken by a folder (or whose folder is taken by a file) goes to
//! `{objects}/.conflicts/{bucket}/{sha256 of key}` instead; the metadata row records where
//! every body is. Local limits, stricter than S3 because keys are paths: no empty, `.` or
//! `..` segment, no leading or trailing `/`, no NUL, segments of at most 255 bytes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use payops_app::ports::blobs::LIST_PAGE_KEYS_MAX;
use payops_app::ports::{
    Blob, BlobError, BlobMeta, BlobPage, Blobs, Clock, OutgoingMessage, Queue,
};
use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::queue::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::sqlite::{Db, DbError};
use crate::table::prefix_successor;

/// S3's limit on a key.
pub const KEY_BYTES_MAX: usize = 1024;
/// Most file systems' limit on one path segment.
pub const KEY_SEGMENT_BYTES_MAX: usize = 255;
/// Hex digits of the etag: a truncated SHA-256, as long as S3's MD5 etags.
pub const ETAG_HEX_DIGITS: usize = 32;
/// Where temporary files live while being written, beside the buckets' directories.
pub const TEMP_DIR_NAME: &str = ".tmp";
/// Where bodies go whose key cannot be a path (see the module documentation).
pub const CONFLICTS_DIR_NAME: &str = ".conflicts";

pub(crate) const SCHEMA: &str = "
CREATE TABLE blobs (
    bucket       TEXT NOT NULL,
    key          BLOB NOT NULL,
    size_bytes   INTEGER NOT NULL,
    content_type TEXT,
    etag         TEXT NOT NULL,
    modified_ms  INTEGER NOT NULL,
    sequence     INTEGER NOT NULL DEFAULT 0,
    path         TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
";

/// An S3 event notification: objects created under `prefix` and ending in `suffix` are
/// announced to `target`.
struct Notification {
    prefix: String,
    suffix: String,
    target: Arc<dyn Queue>,
}

/// One bucket.
pub struct LocalBlobs {
    db: Db,
    clock: Arc<dyn Clock>,
    bucket: String,
    /// `{objects}`: bodies' paths in the metadata are relative to it.
    objects: PathBuf,
    /// `{objects}/{bucket}`
    root: PathBuf,
    /// Readers see a body and its metadata from the same put: puts and deletes swap both
    /// under the write lock.
    swap: RwLock<()>,
    notifications: Mutex<Vec<Notification>>,
}

impl std::fmt::Debug for LocalBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBlobs")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .finish()
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> BlobError {
    BlobError::Unavailable(Box::new(e))
}

fn db_unavailable(e: DbError) -> BlobError {
    unavailable(e)
}

fn invalid(msg: impl Into<String>) -> BlobError {
    BlobError::Invalid(msg.into())
}

/// Checks a bucket name as S3 does (3–63 of `a-z 0-9 . -`, starting and ending alphanumeric).
pub fn validate_bucket(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bucket name {name:?} is not valid: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit"
        ))
    }
}

/// Checks a key against S3's rules and the local store's (keys are paths here).
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err(invalid(format!(
            "key must be 1..={KEY_BYTES_MAX} bytes, got {}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(invalid("key contains NUL"));
    }
    if key.starts_with('/') || key.ends_with('/') {
        return Err(invalid(format!("key {key:?} starts or ends with '/'")));
    }
    for segment in key.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(invalid(format!(
                "key {key:?} has an empty, '.' or '..' segment"
            )));
        }
        if segment.len() > KEY_SEGMENT_BYTES_MAX {
            return Err(invalid(format!(
                "key {key:?} has a segment over {KEY_SEGMENT_BYTES_MAX} bytes"
            )));
        }
    }
    Ok(())
}

/// Where a new object's body comes from: memory, or a file copied without being read into
/// memory (the inbox's dropped files can be gigabytes).
enum BodySource {
    Bytes(Bytes),
    File(PathBuf),
}

/// Chunk size for hashing a file body.
const HASH_CHUNK_BYTES: usize = 1 << 20;

fn etag_of_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_CHUNK_BYTES];
    let mut size_bytes = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size_bytes += n as u64;
    }
    let digest = hex::encode(hasher.finalize());
    Ok((digest[..ETAG_HEX_DIGITS].to_owned(), size_bytes))
}

fn etag_of(body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    digest[..ETAG_HEX_DIGITS].to_owned()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Was the I/O error caused by a key that collides with another key's folder?
fn is_path_conflict(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::NotADirectory | K::IsADirectory | K::AlreadyExists | K::DirectoryNotEmpty
    )
}

impl LocalBlobs {
    pub(crate) fn new(db: Db, clock: Arc<dyn Clock>, objects: &Path, bucket: &str) -> LocalBlobs {
        LocalBlobs {
            db,
            clock,
            bucket: bucket.to_owned(),
            objects: objects.to_owned(),
            root: objects.join(bucket),
            swap: RwLock::new(()),
            notifications: Mutex::new(Vec::new()),
        }
    }

    /// The directory holding this bucket's objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`'s body, if the object exists (usually `{root}/{key}`).
    pub async fn path_of(&self, key: &str) -> Result<Option<PathBuf>, BlobError> {
        self.check_bucket()?;
        validate_key(key)?;
        Ok(self
            .read_meta(key)
            .await?
            .map(|(_, path)| self.objects.join(path)))
    }

    /// After every successful put of a key that starts with `prefix` and ends with `suffix`,
    /// sends `target` the S3 event S3 would send to an SQS queue (`ObjectCreated:Put`).
    pub fn notify_on_create(&self, prefix: &str, suffix: &str, target: Arc<dyn Queue>) {
        let mut list = self.notifications.lock().unwrap_or_else(|e| e.into_inner());
        list.push(Notification {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            target,
        });
    }

    fn check_bucket(&self) -> Result<(), BlobError> {
        validate_bucket(&self.bucket).map_err(invalid)
    }

    /// Writes the body where `key` lives as a path or, if a file or folder is in the way,
    /// under the conflicts folder. Returns the body's path relative to `objects`.
    async fn write_body(&self, key: &str, body: BodySource) -> Result<String, BlobError> {
        let temp_dir = self.objects.join(TEMP_DIR_NAME);
        let temp = temp_dir.join(uuid::Uuid::new_v4().simple().to_string());
        let plain = format!("{}/{key}", self.bucket);
        let conflict = format!(
            "{CONFLICTS_DIR_NAME}/{}/{}",
            self.bucket,
            hex::encode(Sha256::digest(key.as_bytes()))
        );
        let objects = self.objects.clone();
        tokio::task::spawn_blocking(move || -> Result<String, BlobError> {
            std::fs::create_dir_all(&temp_dir).map_err(unavailable)?;
            // No fsync: we promise durability across a killed process, not a power cut.
            match &body {
                BodySource::Bytes(bytes) => std::fs::write(&temp, bytes).map_err(unavailable)?,
                BodySource::File(source) => {
                    std::fs::copy(source, &temp).map_err(unavailable)?;
                }
            }
            let placed = place(&temp, &objects.join(&plain))
                .map(|()| plain)
                .or_else(|e| {
                    if is_path_conflict(&e) {
                        place(&temp, &objects.join(&conflict)).map(|()| conflict)
                    } else {
                        Err(e)
                    }
                });
            placed.map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                unavailable(e)
            })
        })
        .await
        .map_err(unavailable)?
    }

    /// Stores an object whose body is the file at `source`, copied without reading it into
    /// memory (the inbox uses this for dropped files); otherwise exactly like `put`.
    pub async fn put_file(
        &self,
        key: &str,
        source: &Path,
        content_type: &str,
    ) -> Result<BlobMeta, BlobError> {
        self.check_bucket()?;
        validate_key(key)?;
        let path = source.to_owned();
        let (etag, size_bytes) = tokio::task::spawn_blocking(move || etag_of_file(&path))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        let meta = BlobMeta {
            key: key.to_owned(),
            size_bytes,
            content_type: Some(content_type.to_owned()),
            last_modified: self.clock.now(),
            etag,
        };
        self.store(meta, BodySource::File(source.to_owned())).await
    }

    /// Writes the body, records the metadata and announces the new object.
    async fn store(&self, meta: BlobMeta, body: BodySource) -> Result<BlobMeta, BlobError> {
        let key = meta.key.as_str();
        let sequence = {
            let _swap = self.swap.write().await;
            let old_path = self.read_meta(key).await?.map(|(_, path)| path);
            let path = self.write_body(key, body).await?;
            let (bucket, m, p) = (self.bucket.clone(), meta.clone(), path.clone());
            let sequence = self
                .db
                .call(move |c| {
                    c.prepare_cached(
                        "INSERT INTO blobs (bucket, key, size_bytes, content_type, etag, modified_ms, sequence, path)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)
                         ON CONFLICT (bucket, key) DO UPDATE SET size_bytes = excluded.size_bytes,
                             content_type = excluded.content_type, etag = excluded.etag,
                             modified_ms = excluded.modified_ms, sequence = blobs.sequence + 1,
                             path = excluded.path
                         RETURNING sequence",
                    )?
                    .query_row(
                        params![
                            bucket,
                            m.key.as_bytes(),
                            m.size_bytes as i64,
                            m.content_type,
                            m.etag,
                            m.last_modified.timestamp_millis(),
                            p
                        ],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .await
                .map_err(db_unavailable)?;
            if let Some(old) = old_path.filter(|old| *old != path) {
                self.remove_body(old).await?;
            }
            sequence
        };
        self.announce(&meta, sequence).await;
        Ok(meta)
    }

    /// Removes a body that the metadata no longer points to, and the folders it leaves empty.
    async fn remove_body(&self, path: String) -> Result<(), BlobError> {
        let stop = if path.starts_with(CONFLICTS_DIR_NAME) {
            self.objects.join(CONFLICTS_DIR_NAME).join(&self.bucket)
        } else {
            self.root.clone()
        };
        let file = self.objects.join(path);
        tokio::task::spawn_blocking(move || remove_with_empty_parents(&stop, &file))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }

    async fn read_meta(&self, key: &str) -> Result<Option<(BlobMeta, String)>, BlobError> {
        let (bucket, k) = (self.bucket.clone(), key.to_owned());
        self.db
            .call(move |c| {
                c.prepare_cached(
                    "SELECT size_bytes, content_type, etag, modified_ms, path FROM blobs
                     WHERE bucket = ?1 AND key = ?2",
                )?
                .query_row(params![bucket, k.as_bytes()], |r| {
                    let meta = BlobMeta {
                        key: k.clone(),
                        size_bytes: r.get::<_, i64>(0)? as u64,
                        content_type: r.get(1)?,
                        etag: r.get(2)?,
                        last_modified: from_millis(r.get(3)?),
                    };
                    Ok((meta, r.get(4)?))
                })
                .optional()
            })
            .await
            .map_err(db_unavailable)
    }

    async fn announce(&self, meta: &BlobMeta, sequence: i64) {
        let targets: Vec<Arc<dyn Queue>> = {
            let list = self.notifications.lock().unwrap_or_else(|e| e.into_inner());
            list.iter()
                .filter(|n| meta.key.starts_with(&n.prefix) && meta.key.ends_with(&n.suffix))
                .map(|n| Arc::clone(&n.target))
                .collect()
        };
        if targets.is_empty() {
            return;
        }
        let body = s3_event_json(&self.bucket, meta, sequence).to_string();
        for target in targets {
            // S3 delivers notifications after the put succeeded; a failure here cannot undo
            // the put, so it is reported loudly (without the key, which may be PII).
            if let Err(e) = target
                .send_batch(vec![OutgoingMessage::new(body.clone())])
                .await
            {
                tracing::error!(bucket = %self.bucket, queue = target.name(), error = %e,
                    "S3 event notification not delivered");
            }
        }
    }
}

/// The body S3 sends to an SQS queue for an `ObjectCreated:Put` event.
pub fn s3_event_json(bucket: &str, meta: &BlobMeta, sequence: i64) -> serde_json::Value {
    json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": LOCAL_REGION,
            "eventTime": meta.last_modified.to_rfc3339_opts(SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "userIdentity": { "principalId": format!("AWS:{LOCAL_ACCOUNT_ID}") },
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": {
                "x-amz-request-id": format!("{sequence:016X}"),
                "x-amz-id-2": "payops-local"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "payops-local",
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": { "principalId": LOCAL_ACCOUNT_ID },
                    "arn": format!("arn:aws:s3:::{bucket}")
                },
                "object": {
                    "key": s3_event_key(&meta.key),
                    "size": meta.size_bytes,
                    "eTag": meta.etag,
                    "sequencer": format!("{sequence:016X}")
                }
            }
        }]
    })
}

/// Encodes a key as S3 does in event notifications (form encoding: a space becomes `+`,
/// `+` becomes `%2B`; `/` is kept). Decode with form decoding.
pub fn s3_event_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[async_trait]
impl Blobs for LocalBlobs {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<BlobMeta, BlobError> {
        self.check_bucket()?;
        validate_key(key)?;
        let meta = BlobMeta {
            key: key.to_owned(),
            size_bytes: body.len() as u64,
            content_type: Some(content_type.to_owned()),
            last_modified: self.clock.now(),
            etag: etag_of(&body),
        };
        self.store(meta, BodySource::Bytes(body)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        self.check_bucket()?;
        validate_key(key)?;
        let _swap = self.swap.read().await;
        let Some((meta, path)) = self.read_meta(key).await? else {
            return Ok(None);
        };
        match tokio::fs::read(self.objects.join(path)).await {
            Ok(body) => Ok(Some(Blob {
                meta,
                body: Bytes::from(body),
            })),
            // Metadata without a body: someone removed the file by hand.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Reads only the range from the object's file (debt files are split a part at a time).
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, BlobError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        self.check_bucket()?;
        validate_key(key)?;
        let _swap = self.swap.read().await;
        let Some((_, path)) = self.read_meta(key).await? else {
            return Ok(None);
        };
        let mut file = match tokio::fs::File::open(self.objects.join(path)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(unavailable)?;
        let mut body = Vec::with_capacity(usize::try_from(len.min(64 << 20)).unwrap_or(0));
        file.take(len)
            .read_to_end(&mut body)
            .await
            .map_err(unavailable)?;
        Ok(Some(Bytes::from(body)))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        self.check_bucket()?;
        validate_key(key)?;
        Ok(self.read_meta(key).await?.map(|(meta, _)| meta))
    }

    async fn list(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<BlobPage, BlobError> {
        self.check_bucket()?;
        let after = continuation
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(&c)
                    .ok()
                    .filter(|k| k.starts_with(prefix.as_bytes()))
                    .ok_or_else(|| {
                        invalid("the continuation token is not one this listing returned")
                    })
            })
            .transpose()?;
        // After a continuation, strictly after its key; otherwise from the prefix itself.
        let strict = after.is_some();
        let low = after.unwrap_or_else(|| prefix.as_bytes().to_vec());
        let high = prefix_successor(prefix.as_bytes());
        let bucket = self.bucket.clone();
        let rows = self
            .db
            .call(move |c| {
                let op = if strict { ">" } else { ">=" };
                let sql = match high {
                    Some(_) => format!(
                        "SELECT key, size_bytes, etag, modified_ms FROM blobs
                         WHERE bucket = ?1 AND key {op} ?2 AND key < ?3 ORDER BY key LIMIT ?4"
                    ),
                    None => format!(
                        "SELECT key, size_bytes, etag, modified_ms FROM blobs
                         WHERE bucket = ?1 AND key {op} ?2 AND ?3 IS NULL ORDER BY key LIMIT ?4"
                    ),
                };
                let mut s = c.prepare_cached(&sql)?;
                s.query_map(
                    params![bucket, low, high, (LIST_PAGE_KEYS_MAX + 1) as i64],
                    |r| {
                        let key: Vec<u8> = r.get(0)?;
                        Ok(BlobMeta {
                            key: String::from_utf8_lossy(&key).into_owned(),
                            size_bytes: r.get::<_, i64>(1)? as u64,
                            // S3 listings carry no content type.
                            content_type: None,
                            etag: r.get(2)?,
                            last_modified: from_millis(r.get(3)?),
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(db_unavailable)?;
        let mut blobs = rows;
        let continuation = if blobs.len() > LIST_PAGE_KEYS_MAX {
            blobs.truncate(LIST_PAGE_KEYS_MAX);
            blobs
                .last()
                .map(|m| URL_SAFE_NO_PAD.encode(m.key.as_bytes()))
        } else {
            None
        };
        Ok(BlobPage {
            blobs,
            continuation,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.check_bucket()?;
        validate_key(key)?;
        let _swap = self.swap.write().await;
        let Some((_, path)) = self.read_meta(key).await? else {
            // Deleting a missing key succeeds, as in S3.
            return Ok(());
        };
        let (bucket, k) = (self.bucket.clone(), key.to_owned());
        self.db
            .call(move |c| {
                c.prepare_cached("DELETE FROM blobs WHERE bucket = ?1 AND key = ?2")?
                    .execute(params![bucket, k.as_bytes()])
            })
            .await
            .map_err(db_unavailable)?;
        self.remove_body(path).await
    }
}

/// Renames `temp` to `target`, creating `target`'s folders.
fn place(temp: &Path, target: &Path) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(temp, target)
}

/// Removes `path` and then every parent folder it leaves empty, up to `root`.
fn remove_with_empty_parents(root: &Path, path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        // Fails (and stops) at the first folder that still holds something.
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_s3_encodes_them_in_events() {
        assert_eq!(s3_event_key("in/data.csv"), "in/data.csv");
        assert_eq!(s3_event_key("in/my file+1.csv"), "in/my+file%2B1.csv");
        assert_eq!(s3_event_key("relatório"), "relat%C3%B3rio");
    }

    #[test]
    fn path_like_keys_are_checked() {
        for bad in ["", "/a", "a/", "a//b", "a/../b", "./a", "a\0b"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b.csv", "in/relatório de março.csv", "a..b"] {
            assert!(validate_key(good).is_ok(), "{good:?}");
        }
    }

    #[tokio::test]
    async fn an_object_put_from_a_file_is_the_object_put_from_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(payops_app::ports::SystemClock);
        let store = crate::store::LocalStore::open(dir.path(), clock).unwrap();
        let blobs = store.blobs("payops-local");
        // Larger than one hashing chunk, so the streamed etag spans several reads.
        let body: Vec<u8> = (0..HASH_CHUNK_BYTES * 2 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let source = dir.path().join("dropped.bin");
        std::fs::write(&source, &body).unwrap();
        let from_file = blobs
            .put_file("in/a.bin", &source, "application/octet-stream")
            .await
            .unwrap();
        let from_bytes = blobs
            .put(
                "in/b.bin",
                Bytes::from(body.clone()),
                "application/octet-stream",
            )
            .await
            .unwrap();
        assert_eq!(from_file.etag, from_bytes.etag);
        assert_eq!(from_file.size_bytes, body.len() as u64);
        let stored = blobs.get("in/a.bin").await.unwrap().unwrap();
        assert_eq!(stored.body.as_ref(), body.as_slice());
        assert!(source.exists(), "the source is copied, not moved");
    }
}
