//! `HttpProvider`: the [`PaymentProvider`] port over the provider's REST API (documented in
//! `crate::ports::provider`). The same client talks to the real provider from Lambda and to
//! the sandbox of `payops up` on loopback, so retries and rate limiting run for real locally.
//!
//! It makes one attempt per call and maps the answer to a [`ProviderError`]: 429 to
//! `RateLimited` with the provider's wait, 5xx, timeouts and connection failures to
//! `Transient`. Waiting and retrying belong to the caller (see `crate::provider_limiter`).
//! Logs name the method, path and status only: bodies carry account numbers and are never
//! logged.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use payops_core::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::provider::Payment;
use crate::ports::provider::{
    Account, AccountBody, CreateAccount, CreateEntity, CreatePayment, Entity, EntityBody,
    ErrorBody, IdempotencyKey, ListPayments, PROVIDER_API_KEY_ENV, PROVIDER_URL_ENV, PaymentBody,
    PaymentId, PaymentPage, PaymentPageBody, PaymentProvider, ProviderError, error_types, headers,
};
use crate::resources::{ResourceError, Resources};

/// Time to open a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Time for one whole request, answer body included. Lambda's own timeout is longer, so a
/// stuck provider costs one retry, not the invocation.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Idle pooled connections are closed after this.
pub const POOL_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Largest answer body read; a page of 100 payments is well under it.
pub const RESPONSE_BODY_BYTES_MAX: usize = 1024 * 1024;
/// The wait assumed when a 429 carries no `Retry-After`.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 1_000;
/// The longest `Retry-After` honoured; a larger value is treated as this (a misconfigured
/// provider must not park a worker for hours).
pub const RETRY_AFTER_MS_MAX: u64 = 60_000;
/// Longest base URL accepted.
pub const BASE_URL_BYTES_MAX: usize = 2048;

type Body = Full<Bytes>;

#[derive(Clone)]
enum Transport {
    Plain(Client<HttpConnector, Body>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>),
}

/// The provider's REST client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct HttpProvider {
    base_url: String,
    api_key: Secret<String>,
    transport: Transport,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl HttpProvider {
    /// A client for the API at `base_url` (`http://` or `https://`, no trailing `/v1`).
    pub fn new(base_url: &str, api_key: Secret<String>) -> Result<Self, ProviderError> {
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        if base_url.len() > BASE_URL_BYTES_MAX {
            return Err(ProviderError::rejected(
                PROVIDER_URL_ENV,
                format!("is longer than {BASE_URL_BYTES_MAX} bytes"),
            ));
        }
        let uri: http::Uri = base_url
            .parse()
            .map_err(|e| ProviderError::rejected(PROVIDER_URL_ENV, format!("is not a URL: {e}")))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS));
        let transport = match uri.scheme_str() {
            Some("http") => Transport::Plain(builder.build(connector)),
            Some("https") => {
                connector.enforce_http(false);
                let tls = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| ProviderError::Transient {
                        message: "no TLS root certificates on this machine".into(),
                        retry_after_ms: None,
                        source: Some(Box::new(e)),
                    })?
                    .https_only()
                    .enable_http1()
                    .wrap_connector(connector);
                Transport::Tls(builder.build(tls))
            }
            _ => {
                return Err(ProviderError::rejected(
                    PROVIDER_URL_ENV,
                    "must start with http:// or https://",
                ));
            }
        };
        Ok(HttpProvider {
            base_url,
            api_key,
            transport,
        })
    }

    /// From `PAYOPS_PROVIDER_URL` and `PAYOPS_PROVIDER_API_KEY` (locally `payops up` points
    /// them at its sandbox).
    pub fn from_resources(resources: &dyn Resources) -> Result<Self, ResourceError> {
        let url = resources.secret(PROVIDER_URL_ENV)?;
        let key = resources.secret(PROVIDER_API_KEY_ENV)?;
        HttpProvider::new(url.expose(), key).map_err(|e| ResourceError::Unavailable {
            name: PROVIDER_URL_ENV.to_owned(),
            source: Box::new(e),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        key: &IdempotencyKey,
        body: &B,
    ) -> Result<T, ProviderError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ProviderError::Protocol(format!("cannot encode the request: {e}")))?;
        self.call(Method::POST, path, Some(key), Bytes::from(body))
            .await
    }

    async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ProviderError> {
        self.call(Method::GET, path_and_query, None, Bytes::new())
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        key: Option<&IdempotencyKey>,
        body: Bytes,
    ) -> Result<T, ProviderError> {
        let request = self.request(&method, path, key, body)?;
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_millis(REQUEST_TIMEOUT_MS),
            self.exchange(request),
        )
        .await
        .map_err(|_| ProviderError::Transient {
            message: format!("{method} {path}: no answer within {REQUEST_TIMEOUT_MS} ms"),
            retry_after_ms: None,
            source: None,
        })??;
        let (status, headers, bytes) = answer;
        tracing::debug!(
            %method,
            path = path_only(path),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "provider call"
        );
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Protocol(format!(
                    "{method} {}: {status} with an unreadable body: {e}",
                    path_only(path)
                ))
            });
        }
        Err(error_from(&method, status, &headers, &bytes))
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        key: Option<&IdempotencyKey>,
        body: Bytes,
    ) -> Result<Request<Body>, ProviderError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base_url))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.api_key.expose()),
            )
            .header(header::ACCEPT, "application/json");
        if let Some(key) = key {
            builder = builder
                .header(headers::IDEMPOTENCY_KEY, key.as_str())
                .header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(body))
            .map_err(|e| ProviderError::rejected("request", format!("cannot be built: {e}")))
    }

    async fn exchange(
        &self,
        request: Request<Body>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ProviderError> {
        let response = match &self.transport {
            Transport::Plain(c) => c.request(request).await,
            Transport::Tls(c) => c.request(request).await,
        }
        .map_err(|e| ProviderError::Transient {
            message: "cannot reach the provider".into(),
            retry_after_ms: None,
            source: Some(Box::new(e)),
        })?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, RESPONSE_BODY_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| ProviderError::Transient {
                message: format!(
                    "answer body unreadable or over {RESPONSE_BODY_BYTES_MAX} bytes: {e}"
                ),
                retry_after_ms: None,
                source: None,
            })?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

/// The path without its query, for logs (cursors are opaque but need not be logged).
fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Maps a non-2xx answer to the error the caller acts on.
pub fn error_from(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ProviderError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let message = detail
        .as_ref()
        .map(|d| d.message.clone())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let kind = detail.as_ref().map(|d| d.kind.as_str()).unwrap_or_default();
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            retry_after_ms: retry_after_ms(headers).unwrap_or(DEFAULT_RETRY_AFTER_MS),
        },
        s if s.is_server_error() => ProviderError::Transient {
            message,
            retry_after_ms: retry_after_ms(headers),
            source: None,
        },
        StatusCode::REQUEST_TIMEOUT => ProviderError::transient(message),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Unauthorized,
        StatusCode::CONFLICT => ProviderError::InProgress,
        StatusCode::NOT_FOUND if *method == Method::GET => ProviderError::NotFound(message),
        StatusCode::UNPROCESSABLE_ENTITY if kind == error_types::IDEMPOTENCY_CONFLICT => {
            ProviderError::Conflict { reason: message }
        }
        s if s.is_client_error() => ProviderError::Rejected {
            reason: message,
            field: detail.and_then(|d| d.field),
        },
        s => ProviderError::Protocol(format!("unexpected status {s}")),
    }
}

/// The provider's wait: `Retry-After-Ms` when present (precise), else `Retry-After` in whole
/// seconds; capped at [`RETRY_AFTER_MS_MAX`]. An HTTP-date `Retry-After` is not used by the
/// provider and is ignored.
pub fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    number(headers::RETRY_AFTER_MS)
        .or_else(|| number(headers::RETRY_AFTER).map(|s| s.saturating_mul(1000)))
        .map(|ms| ms.min(RETRY_AFTER_MS_MAX))
}

#[async_trait]
impl PaymentProvider for HttpProvider {
    async fn create_entity(&self, request: CreateEntity) -> Result<Entity, ProviderError> {
        self.post(
            "/v1/entities",
            required_key(request.idempotency_key.as_ref())?,
            &EntityBody::from(&request),
        )
        .await
    }

    async fn create_account(&self, request: CreateAccount) -> Result<Account, ProviderError> {
        self.post(
            "/v1/accounts",
            required_key(request.idempotency_key.as_ref())?,
            &AccountBody::from(&request),
        )
        .await
    }

    async fn create_payment(&self, request: CreatePayment) -> Result<Payment, ProviderError> {
        self.post(
            "/v1/payments",
            &request.idempotency_key,
            &PaymentBody::from(&request),
        )
        .await
    }

    async fn get_payment(&self, id: &PaymentId) -> Result<Payment, ProviderError> {
        self.get(&format!("/v1/payments/{}", encode(id.as_str())))
            .await
    }

    async fn list_payments(&self, request: ListPayments) -> Result<PaymentPage, ProviderError> {
        let mut query = Vec::new();
        if request.limit > 0 {
            query.push(format!("limit={}", request.limit));
        }
        if let Some(c) = &request.cursor {
            query.push(format!("cursor={}", encode(&c.0)));
        }
        if let Some(s) = request.status {
            query.push(format!("status={}", s.as_str()));
        }
        let path = if query.is_empty() {
            "/v1/payments".to_owned()
        } else {
            format!("/v1/payments?{}", query.join("&"))
        };
        let page: PaymentPageBody = self.get(&path).await?;
        Ok(PaymentPage {
            payments: page.data,
            next_cursor: page.next_cursor,
        })
    }
}

/// Entity and account requests carry an optional key in the port; the API requires one.
fn required_key(key: Option<&IdempotencyKey>) -> Result<&IdempotencyKey, ProviderError> {
    key.ok_or_else(|| ProviderError::rejected(headers::IDEMPOTENCY_KEY, "is required"))
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for ids and cursors in
/// paths and queries.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_429_is_rate_limited_with_the_precise_wait() {
        let h = headers(&[("retry-after", "1"), ("retry-after-ms", "250")]);
        let e = error_from(&Method::POST, StatusCode::TOO_MANY_REQUESTS, &h, b"");
        assert!(matches!(
            e,
            ProviderError::RateLimited {
                retry_after_ms: 250
            }
        ));
        let h = headers(&[("retry-after", "3")]);
        let e = error_from(&Method::POST, StatusCode::TOO_MANY_REQUESTS, &h, b"");
        assert!(matches!(
            e,
            ProviderError::RateLimited {
                retry_after_ms: 3000
            }
        ));
        let e = error_from(
            &Method::POST,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(e.retry_after_ms(), Some(DEFAULT_RETRY_AFTER_MS));
        let h = headers(&[("retry-after", "86400")]);
        let e = error_from(&Method::POST, StatusCode::TOO_MANY_REQUESTS, &h, b"");
        assert_eq!(e.retry_after_ms(), Some(RETRY_AFTER_MS_MAX));
    }

    #[test]
    fn statuses_map_to_what_the_caller_does_next() {
        let none = HeaderMap::new();
        let body = |kind: &str, field: Option<&str>| {
            serde_json::to_vec(
                &serde_json::json!({"error": {"type": kind, "message": "m", "field": field}}),
            )
            .unwrap()
        };
        let e = error_from(
            &Method::POST,
            StatusCode::SERVICE_UNAVAILABLE,
            &none,
            b"<html>",
        );
        assert!(matches!(e, ProviderError::Transient { .. }) && e.is_retryable());
        let e = error_from(
            &Method::POST,
            StatusCode::BAD_REQUEST,
            &none,
            &body("invalid_request", Some("amount")),
        );
        assert!(
            matches!(&e, ProviderError::Rejected { field: Some(f), .. } if f == "amount"),
            "{e:?}"
        );
        let e = error_from(
            &Method::POST,
            StatusCode::UNPROCESSABLE_ENTITY,
            &none,
            &body("idempotency_conflict", None),
        );
        assert!(matches!(e, ProviderError::Conflict { .. }) && !e.is_retryable());
        let e = error_from(&Method::POST, StatusCode::CONFLICT, &none, b"");
        assert!(matches!(e, ProviderError::InProgress) && e.is_retryable());
        let e = error_from(
            &Method::GET,
            StatusCode::NOT_FOUND,
            &none,
            &body("not_found", None),
        );
        assert!(matches!(e, ProviderError::NotFound(_)));
        let e = error_from(&Method::POST, StatusCode::NOT_FOUND, &none, b"");
        assert!(matches!(e, ProviderError::Rejected { .. }));
        let e = error_from(&Method::GET, StatusCode::UNAUTHORIZED, &none, b"");
        assert!(matches!(e, ProviderError::Unauthorized));
    }

    #[test]
    fn base_urls_are_checked() {
        let key = || Secret::new("k".to_owned());
        assert!(HttpProvider::new("ftp://x", key()).is_err());
        assert!(HttpProvider::new("not a url", key()).is_err());
        let p = HttpProvider::new("http://127.0.0.1:9/", key()).unwrap();
        assert_eq!(p.base_url(), "http://127.0.0.1:9");
        assert!(!format!("{p:?}").contains("\"k\""));
    }

    #[test]
    fn ids_and_cursors_are_encoded() {
        assert_eq!(encode("pay_1-a.b~c"), "pay_1-a.b~c");
        assert_eq!(encode("a/b?c=d&e f"), "a%2Fb%3Fc%3Dd%26e%20f");
    }
}
