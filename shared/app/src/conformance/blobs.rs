//! Conformance cases of the `Blobs` port (S3 semantics).

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::Harness;
use crate::ports::BlobMeta;
use crate::ports::blobs::LIST_PAGE_KEYS_MAX;

/// Keys written to exercise a continuation: one page and a few more.
const LIST_KEYS: usize = LIST_PAGE_KEYS_MAX + 5;
/// Concurrent puts while filling the listing.
const PUT_CONCURRENCY: usize = 16;

fn assert_hex_etag(meta: &BlobMeta) {
    assert!(
        !meta.etag.is_empty() && meta.etag.chars().all(|c| c.is_ascii_hexdigit()),
        "etag is a bare hex digest: {:?}",
        meta.etag
    );
}

/// put, get, head and delete; content type, size and etag are kept; missing keys are `None`.
pub async fn blobs_put_get_head_delete(h: &dyn Harness) {
    let b = h.blobs().await;
    assert!(!b.bucket().is_empty());
    let key = "reports/2024-01-01/summary.csv";
    let body = Bytes::from_static(b"a,b\n1,2\n");
    let put = b.put(key, body.clone(), "text/csv").await.expect("put");
    assert_eq!(put.key, key);
    assert_eq!(put.size_bytes, body.len() as u64);
    assert_hex_etag(&put);

    let got = b.get(key).await.expect("get").expect("the object exists");
    assert_eq!(got.body, body);
    assert_eq!(got.meta.key, key);
    assert_eq!(got.meta.size_bytes, body.len() as u64);
    assert_eq!(got.meta.content_type.as_deref(), Some("text/csv"));
    assert_eq!(got.meta.etag, put.etag);
    let head = b.head(key).await.expect("head").expect("the object exists");
    assert_eq!(head.etag, put.etag);
    assert_eq!(head.size_bytes, body.len() as u64);
    assert_eq!(head.content_type.as_deref(), Some("text/csv"));

    // Replacing changes the body, the etag and the content type.
    let json = Bytes::from_static(b"{\"ok\":true}");
    let replaced = b
        .put(key, json.clone(), "application/json")
        .await
        .expect("replace");
    assert_ne!(replaced.etag, put.etag);
    let got = b.get(key).await.expect("get").expect("replaced object");
    assert_eq!(got.body, json);
    assert_eq!(got.meta.content_type.as_deref(), Some("application/json"));

    // Spaces, plus signs and non-ASCII keys round-trip unchanged; empty bodies are objects.
    let odd = "inbox/relatório de março+1.csv";
    b.put(odd, Bytes::new(), "text/csv")
        .await
        .expect("put odd key");
    let got = b.get(odd).await.expect("get odd").expect("odd key exists");
    assert!(got.body.is_empty());
    assert_eq!(got.meta.size_bytes, 0);

    assert!(
        b.get("reports/missing.csv")
            .await
            .expect("get missing")
            .is_none()
    );
    assert!(
        b.head("reports/missing.csv")
            .await
            .expect("head missing")
            .is_none()
    );

    b.delete(key).await.expect("delete");
    assert!(b.get(key).await.expect("get deleted").is_none());
    assert!(b.head(key).await.expect("head deleted").is_none());
    b.delete(key)
        .await
        .expect("deleting a missing key succeeds");
    assert!(
        b.get(odd).await.expect("get odd").is_some(),
        "other keys stay"
    );
}

/// Listing by prefix in key order, with a continuation past LIST_PAGE_KEYS_MAX keys.
pub async fn blobs_list_by_prefix_with_continuation(h: &dyn Harness) {
    let b = h.blobs().await;
    let keys: Vec<String> = (0..LIST_KEYS).map(|i| format!("list/{i:05}.txt")).collect();
    let outside = ["lisp/0.txt", "lis", "other/list/0.txt", "list"];
    futures::stream::iter(keys.iter().map(String::as_str).chain(outside))
        .map(|k| {
            let b = &b;
            async move { b.put(k, Bytes::from(k.to_owned()), "text/plain").await }
        })
        .buffer_unordered(PUT_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("puts");

    let mut listed: Vec<BlobMeta> = Vec::new();
    let mut continuation = None;
    let mut pages = 0;
    loop {
        let page = b
            .list("list/", continuation.take())
            .await
            .expect("list page");
        pages += 1;
        assert!(page.blobs.len() <= LIST_PAGE_KEYS_MAX);
        listed.extend(page.blobs);
        match page.continuation {
            Some(next) => continuation = Some(next),
            None => break,
        }
        assert!(pages <= LIST_KEYS, "listing does not end");
    }
    assert!(
        pages >= 2,
        "more than LIST_PAGE_KEYS_MAX keys need a continuation"
    );
    let listed_keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        listed_keys, keys,
        "every key under the prefix, in order, once"
    );
    for m in &listed {
        assert_eq!(m.size_bytes, m.key.len() as u64, "size of {}", m.key);
    }

    let sub = b.list("list/0000", None).await.expect("narrow list");
    assert_eq!(sub.blobs.len(), 10);
    assert!(sub.continuation.is_none());
    let none = b.list("nothing/", None).await.expect("empty list");
    assert!(none.blobs.is_empty() && none.continuation.is_none());
}
