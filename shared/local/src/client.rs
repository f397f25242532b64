//! A small HTTP/1 client for loopback: the demo, the benchmark and the end-to-end tests talk to
//! `payops up` over real sockets with it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Connections kept per host: enough for the benchmark's concurrency.
pub const CLIENT_IDLE_CONNECTIONS_MAX: usize = 256;
/// The longest one request may take, answer body included: a server that hangs fails the
/// demo, benchmark or test that called it instead of hanging it forever.
pub const CLIENT_REQUEST_TIMEOUT_MS: u64 = 120_000;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    #[error("request failed: {0}")]
    Send(#[from] hyper_util::client::legacy::Error),
    #[error("reading the response failed: {0}")]
    Body(#[from] hyper::Error),
    #[error("response is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no complete answer within {CLIENT_REQUEST_TIMEOUT_MS} ms")]
    Timeout,
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(CLIENT_IDLE_CONNECTIONS_MAX)
            .build_http();
        HttpClient { client }
    }
}

impl HttpClient {
    pub async fn request(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok(Response { status, body })
        };
        tokio::time::timeout(
            std::time::Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS),
            exchange,
        )
        .await
        .map_err(|_| ClientError::Timeout)?
    }

    pub async fn get(&self, url: &str) -> Result<Response, ClientError> {
        self.request(http::Method::GET, url, &[], Bytes::new())
            .await
    }

    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(http::Method::POST, url, &all, body).await
    }
}
