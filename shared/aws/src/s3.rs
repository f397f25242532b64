//! The `Blobs` port on one S3 bucket.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use payops_app::ports::blobs::LIST_PAGE_KEYS_MAX;
use payops_app::ports::{Blob, BlobError, BlobMeta, BlobPage, Blobs};

use crate::sdk_error::{Fault, classify};

/// S3's limit on the UTF-8 bytes of an object key.
pub const KEY_BYTES_MAX: usize = 1024;

/// An S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: Client,
    bucket: String,
}

impl S3Blobs {
    /// With an endpoint override (an emulator), the client must use path-style addressing:
    /// [`crate::AwsEnv`] builds it so.
    pub fn new(client: Client, bucket: String) -> Self {
        S3Blobs { client, bucket }
    }
}

/// Decodes an object key as it arrives in an S3 event notification: URL-encoded, with `+`
/// for a space (`in%2Fpay+roll.xml` → `in/pay roll.xml`).
pub fn decode_event_key(raw: &str) -> Result<String, BlobError> {
    let bad = |why: &str| BlobError::Invalid(format!("event key {raw:?}: {why}"));
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next(), input.next()];
                let [Some(hi), Some(lo)] = hex else {
                    return Err(bad("truncated %-escape"));
                };
                let digit = |c: u8| (c as char).to_digit(16);
                let (Some(hi), Some(lo)) = (digit(hi), digit(lo)) else {
                    return Err(bad("bad %-escape"));
                };
                // Two hex digits are at most 255.
                bytes.push((hi * 16 + lo) as u8);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| bad("not UTF-8 once decoded"))
}

fn check_key(key: &str) -> Result<(), BlobError> {
    if key.is_empty() {
        return Err(BlobError::Invalid("object key is empty".into()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(BlobError::Invalid(format!(
            "object key is {} bytes; at most {KEY_BYTES_MAX}",
            key.len()
        )));
    }
    Ok(())
}

fn blob_error<E>(err: SdkError<E, HttpResponse>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(err) {
        Fault::Unavailable(e) => BlobError::Unavailable(e),
        Fault::Rejected(m) => BlobError::Invalid(m),
    }
}

/// S3 quotes ETags (`"9b2c…"`); the port carries the bare digest.
fn bare_etag(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

fn to_chrono(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Result<DateTime<Utc>, BlobError> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
        .ok_or_else(|| malformed("no Last-Modified"))
}

#[derive(Debug, thiserror::Error)]
#[error("S3 response is malformed: {0}")]
struct Malformed(&'static str);

fn malformed(why: &'static str) -> BlobError {
    BlobError::Unavailable(Box::new(Malformed(why)))
}

fn size(len: Option<i64>) -> Result<u64, BlobError> {
    len.and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| malformed("no Content-Length"))
}

#[async_trait]
impl Blobs for S3Blobs {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<BlobMeta, BlobError> {
        check_key(key)?;
        let size_bytes = body.len() as u64;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(blob_error)?;
        let etag = bare_etag(out.e_tag());
        // PutObject does not return Last-Modified; read it back so that the meta is the
        // object's own, as `head` and `list` will report it.
        match self.head(key).await {
            Ok(Some(meta)) if meta.etag == etag => Ok(meta),
            // Overwritten or deleted by someone else in between, or the HEAD failed: the
            // write itself succeeded, so report it with the time as this machine sees it.
            _ => Ok(BlobMeta {
                key: key.to_owned(),
                size_bytes,
                content_type: Some(content_type.to_owned()),
                last_modified: Utc::now(),
                etag,
            }),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        check_key(key)?;
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None);
            }
            Err(e) => return Err(blob_error(e)),
        };
        let meta = BlobMeta {
            key: key.to_owned(),
            size_bytes: size(out.content_length())?,
            content_type: out.content_type().map(str::to_owned),
            last_modified: to_chrono(out.last_modified())?,
            etag: bare_etag(out.e_tag()),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| BlobError::Unavailable(Box::new(e)))?
            .into_bytes();
        Ok(Some(Blob { meta, body }))
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, BlobError> {
        check_key(key)?;
        if len == 0 {
            return Ok(self.head(key).await?.map(|_| Bytes::new()));
        }
        let range = format!("bytes={}-{}", offset, offset.saturating_add(len - 1));
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(range)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None);
            }
            // Past the end of the object: S3 answers 416 InvalidRange.
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(416) => {
                return Ok(Some(Bytes::new()));
            }
            Err(e) => return Err(blob_error(e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| BlobError::Unavailable(Box::new(e)))?
            .into_bytes();
        Ok(Some(body))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        check_key(key)?;
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                return Ok(None);
            }
            Err(e) => return Err(blob_error(e)),
        };
        Ok(Some(BlobMeta {
            key: key.to_owned(),
            size_bytes: size(out.content_length())?,
            content_type: out.content_type().map(str::to_owned),
            last_modified: to_chrono(out.last_modified())?,
            etag: bare_etag(out.e_tag()),
        }))
    }

    async fn list(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<BlobPage, BlobError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(i32::try_from(LIST_PAGE_KEYS_MAX).unwrap_or(i32::MAX))
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(blob_error)?;
        let blobs = out
            .contents()
            .iter()
            .map(|o| {
                Ok(BlobMeta {
                    key: o
                        .key()
                        .ok_or_else(|| malformed("an object without a key"))?
                        .to_owned(),
                    size_bytes: size(o.size())?,
                    // ListObjectsV2 does not report content types.
                    content_type: None,
                    last_modified: to_chrono(o.last_modified())?,
                    etag: bare_etag(o.e_tag()),
                })
            })
            .collect::<Result<Vec<_>, BlobError>>()?;
        let continuation = if out.is_truncated().unwrap_or(false) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(BlobPage {
            blobs,
            continuation,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        check_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(blob_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(
            decode_event_key("in%2Fdata.csv").expect("valid"),
            "in/data.csv"
        );
        assert_eq!(
            decode_event_key("in/pay+roll%20v2.xml").expect("valid"),
            "in/pay roll v2.xml"
        );
        assert_eq!(decode_event_key("a%2Bb").expect("valid"), "a+b");
        assert_eq!(decode_event_key("caf%C3%A9").expect("valid"), "café");
        assert_eq!(decode_event_key("plain").expect("valid"), "plain");
    }

    #[test]
    fn broken_event_keys_are_rejected() {
        for bad in ["a%2", "a%", "a%zz", "%FF%FE"] {
            assert!(
                matches!(decode_event_key(bad), Err(BlobError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(bare_etag(Some("\"abc\"")), "abc");
        assert_eq!(bare_etag(Some("abc")), "abc");
        assert_eq!(bare_etag(None), "");
    }
}
