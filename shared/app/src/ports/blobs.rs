//! The `Blobs` port: an S3 bucket. Keys are plain strings with `/` as a separator.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// Upper bound on a listing page (S3 returns at most 1000 keys per call).
pub const LIST_PAGE_KEYS_MAX: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size_bytes: u64,
    pub content_type: Option<String>,
    pub last_modified: DateTime<Utc>,
    /// Hex digest of the content; changes whenever the content changes.
    pub etag: String,
}

#[derive(Debug, Clone)]
pub struct Blob {
    pub meta: BlobMeta,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPage {
    pub blobs: Vec<BlobMeta>,
    /// Pass back to `list` for the next page; `None` at the end.
    pub continuation: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("blob store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Blobs: Send + Sync {
    /// The bucket this adapter writes to (used in S3 events and report locations).
    fn bucket(&self) -> &str;

    /// Writes (or replaces) the object at `key`.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<BlobMeta, BlobError>;

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError>;

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError>;

    /// Keys that start with `prefix`, in lexicographic order, up to `LIST_PAGE_KEYS_MAX` a page.
    async fn list(&self, prefix: &str, continuation: Option<String>)
    -> Result<BlobPage, BlobError>;

    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Up to `len` bytes of the object starting at byte `offset` (S3 `GetObject` with a
    /// `Range`), so large files are read a part at a time; empty past the end, `None` when the
    /// object does not exist. The default reads the whole object: adapters override it.
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, BlobError> {
        Ok(self.get(key).await?.map(|blob| {
            let size = blob.body.len() as u64;
            let start = offset.min(size) as usize;
            let end = offset.saturating_add(len).min(size) as usize;
            blob.body.slice(start..end)
        }))
    }
}
