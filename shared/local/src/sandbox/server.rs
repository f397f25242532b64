//! The sandbox's HTTP face: authentication, rate limits, injected failures, idempotency and
//! the routes of the provider API, in that order, as a real provider would apply them.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use payops_app::ports::provider::{
    AccountBody, EntityBody, ErrorBody, ErrorDetail, IdempotencyKey, PaymentBody, PaymentId,
    PaymentPageBody, PaymentStatus, REQUEST_BODY_BYTES_MAX, RateClass, error_types, headers,
};
use sha2::{Digest, Sha256};

use super::rate::{RateHeaders, Taken};
use super::state::{IdempotentAnswer, Invalid, PPM};
use super::{Sandbox, lock};

/// The sandbox's own counters (not part of the provider API).
pub const STATS_PATH: &str = "/sandbox/stats";

pub fn router(sandbox: Sandbox) -> Router {
    Router::new().fallback(handle).with_state(sandbox)
}

async fn handle(
    State(sb): State<Sandbox>,
    method: Method,
    uri: Uri,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if !authorized(&sb, &request_headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            error_types::UNAUTHORIZED,
            "missing or wrong API key",
            None,
        );
    }
    if method == Method::GET && path == STATS_PATH {
        return json(StatusCode::OK, &sb.stats());
    }
    let class = RateClass::of(method.as_str(), &path);
    let now = sb.shared.clock.now();
    let taken = lock(&sb.shared.buckets).take(class, now);
    let rate_headers = match taken {
        Taken::Unlimited => None,
        Taken::Granted(h) => Some(h),
        Taken::Refused {
            headers: h,
            retry_after_ms,
        } => {
            lock(&sb.shared.stats).class_mut(class).rate_limited += 1;
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                error_types::RATE_LIMITED,
                &format!("over {} requests per minute", h.limit_per_min),
                None,
            );
            add_rate_headers(&mut r, &h);
            set(
                &mut r,
                headers::RETRY_AFTER,
                retry_after_ms.div_ceil(1000).to_string(),
            );
            set(&mut r, headers::RETRY_AFTER_MS, retry_after_ms.to_string());
            return r;
        }
    };
    let fault = injected_fault(&sb, &method);
    if fault == Fault::Before {
        lock(&sb.shared.stats).class_mut(class).injected_failures += 1;
        return unavailable();
    }
    let mut response = route(&sb, &method, &path, uri.query(), &request_headers, &body);
    if fault == Fault::After {
        // The work is done but the answer is lost, as when a connection drops.
        lock(&sb.shared.stats).class_mut(class).injected_failures += 1;
        return unavailable();
    }
    lock(&sb.shared.stats).class_mut(class).accepted += 1;
    if let Some(h) = rate_headers {
        add_rate_headers(&mut response, &h);
    }
    response
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Before,
    After,
}

fn injected_fault(sb: &Sandbox, method: &Method) -> Fault {
    let ppm = sb.shared.config.transient_ppm;
    if ppm == 0 {
        return Fault::None;
    }
    let mut rng = lock(&sb.shared.rng);
    if rng.next_u64() % PPM >= ppm {
        return Fault::None;
    }
    if *method == Method::POST && rng.next_u64().is_multiple_of(2) {
        Fault::After
    } else {
        Fault::Before
    }
}

fn authorized(sb: &Sandbox, request_headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", sb.shared.config.api_key.expose());
    request_headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

fn route(
    sb: &Sandbox,
    method: &Method,
    path: &str,
    query: Option<&str>,
    request_headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    match (method, path) {
        (&Method::POST, "/v1/entities" | "/v1/accounts" | "/v1/payments") => {
            post(sb, path, request_headers, body)
        }
        (&Method::GET, "/v1/payments") => list_payments(sb, query),
        (&Method::GET, p) if p.starts_with("/v1/payments/") => {
            let id = percent_decode(&p["/v1/payments/".len()..]);
            match lock(&sb.shared.state).payment(&PaymentId::new(id.clone())) {
                Some(p) => json(StatusCode::OK, p),
                None => error(
                    StatusCode::NOT_FOUND,
                    error_types::NOT_FOUND,
                    &format!("no payment {id}"),
                    None,
                ),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            error_types::NOT_FOUND,
            &format!("no route {method} {path}"),
            None,
        ),
    }
}

/// A create, idempotent under its key: the check, the work and the stored answer happen
/// under one lock, so concurrent replays cannot both create.
fn post(sb: &Sandbox, path: &str, request_headers: &HeaderMap, body: &Bytes) -> Response {
    let key = match request_headers
        .get(headers::IDEMPOTENCY_KEY)
        .map(|v| v.to_str().map(str::to_owned))
    {
        None => {
            return invalid_request(headers::IDEMPOTENCY_KEY, "is required on every POST");
        }
        Some(Err(_)) => {
            return invalid_request(headers::IDEMPOTENCY_KEY, "must be printable ASCII");
        }
        Some(Ok(k)) => match IdempotencyKey::new(k) {
            Ok(k) => k,
            Err(e) => return invalid_request(headers::IDEMPOTENCY_KEY, &e.to_string()),
        },
    };
    if body.len() > REQUEST_BODY_BYTES_MAX {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            error_types::INVALID_REQUEST,
            &format!("body is over {REQUEST_BODY_BYTES_MAX} bytes"),
            None,
        );
    }
    let digest = hex::encode(Sha256::digest(body));
    let now = sb.shared.clock.now();
    let mut state = lock(&sb.shared.state);
    if let Some(answer) = state.idempotent_answer(path, key.as_str()) {
        if answer.body_sha256 != digest {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                error_types::IDEMPOTENCY_CONFLICT,
                &format!("Idempotency-Key {key} was used with a different request body on {path}"),
                Some(headers::IDEMPOTENCY_KEY),
            );
        }
        let mut r = raw(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            answer.body.clone(),
        );
        set(&mut r, headers::IDEMPOTENT_REPLAYED, "true".to_owned());
        drop(state);
        lock(&sb.shared.stats)
            .class_mut(RateClass::of("POST", path))
            .replayed += 1;
        return r;
    }
    let mut rng = lock(&sb.shared.rng);
    let lifecycle = sb.shared.config.lifecycle;
    let outcome: Result<Result<String, Invalid>, String> = match path {
        "/v1/entities" => parse::<EntityBody>(body)
            .map(|b| state.create_entity(b, now, &mut rng).map(|e| to_json(&e))),
        "/v1/accounts" => parse::<AccountBody>(body)
            .map(|b| state.create_account(b, now, &mut rng).map(|a| to_json(&a))),
        _ => parse::<PaymentBody>(body).map(|b| {
            state
                .create_payment(b, now, &lifecycle, &mut rng)
                .map(|p| to_json(&p))
        }),
    };
    drop(rng);
    let (status, text) = match outcome {
        Err(message) => (
            StatusCode::BAD_REQUEST,
            error_json(error_types::INVALID_REQUEST, &message, None),
        ),
        Ok(Err(invalid)) => (
            if invalid.not_found {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            },
            error_json(
                error_types::INVALID_REQUEST,
                &format!("{} {}", invalid.field, invalid.reason),
                Some(&invalid.field),
            ),
        ),
        Ok(Ok(text)) => (StatusCode::CREATED, text),
    };
    // Refusals are remembered too: the same request gets the same answer.
    state.remember_answer(
        path,
        key.as_str(),
        IdempotentAnswer {
            body_sha256: digest,
            status: status.as_u16(),
            body: text.clone(),
        },
    );
    drop(state);
    raw(status, text)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("body is not a valid request: {e}"))
}

fn list_payments(sb: &Sandbox, query: Option<&str>) -> Response {
    let mut limit = 0u32;
    let mut cursor = None;
    let mut status = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "limit" => match v.parse() {
                Ok(n) => limit = n,
                Err(_) => return invalid_request("limit", "is not a whole number"),
            },
            "cursor" => cursor = Some(v),
            "status" => match PaymentStatus::parse(&v) {
                Some(s) => status = Some(s),
                None => return invalid_request("status", "is not a payment status"),
            },
            _ => return invalid_request(k, "is not a parameter of this endpoint"),
        }
    }
    let page = lock(&sb.shared.state).list_payments(limit, cursor.as_deref(), status);
    match page {
        Ok((data, next_cursor)) => json(StatusCode::OK, &PaymentPageBody { data, next_cursor }),
        Err(invalid) => invalid_request(&invalid.field, &invalid.reason),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // The port types serialise infallibly (strings, decimals, dates); an error would be a bug.
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "sandbox answer not serialisable");
        "{}".to_owned()
    })
}

fn error_json(kind: &str, message: &str, field: Option<&str>) -> String {
    to_json(&ErrorBody {
        error: ErrorDetail {
            kind: kind.to_owned(),
            message: message.to_owned(),
            field: field.map(str::to_owned),
        },
    })
}

fn raw(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    raw(status, to_json(value))
}

fn error(status: StatusCode, kind: &str, message: &str, field: Option<&str>) -> Response {
    raw(status, error_json(kind, message, field))
}

fn invalid_request(field: &str, reason: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        error_types::INVALID_REQUEST,
        &format!("{field} {reason}"),
        Some(field),
    )
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        error_types::UNAVAILABLE,
        "the sandbox was told to fail this request",
        None,
    )
}

fn set(r: &mut Response, name: &str, value: String) {
    // `from_bytes` lower-cases the documented mixed-case names.
    if let (Ok(n), Ok(v)) = (
        http::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(&value),
    ) {
        r.headers_mut().insert(n, v);
    }
}

fn add_rate_headers(r: &mut Response, h: &RateHeaders) {
    set(r, headers::RATE_LIMIT_LIMIT, h.limit_per_min.to_string());
    set(r, headers::RATE_LIMIT_REMAINING, h.remaining.to_string());
    set(r, headers::RATE_LIMIT_RESET, h.reset_unix.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("c12"), "c12");
        assert_eq!(percent_decode("a%2Fb%20c+d"), "a/b c d");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }
}
