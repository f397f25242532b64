//! The HR API: upload, list, show, approve, and the CSV reports.
//!
//! - `POST /payroll/batches` — the file as the raw body (`?name=` for its name) or as the
//!   `file` part of a `multipart/form-data` form; `Idempotency-Key` makes a retried upload
//!   answer the same batch.
//! - `GET /payroll/batches?limit=&cursor=` — newest first.
//! - `GET /payroll/batches/{id}` — with summary, bad rows and progress.
//! - `POST /payroll/batches/{id}/approve` — `{"approved_by"?, "allow_duplicate"?}`.
//! - `POST /payroll/batches/{id}/resume` — starts a `FAILED` batch's workflow again.
//! - `GET /payroll/batches/{id}/reports/{payments|sources|branches}.csv`, and `findings.csv`:
//!   every error and warning of the file, of which the batch lists the first
//!   [`batches::FINDINGS_LISTED_MAX`] of each level.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::approve::{self, ApproveRequest};
use super::batches::{self, Upload};
use super::report::{self, CSV_CONTENT_TYPE, ReportKind};
use super::{Payroll, PayrollAppError};
use crate::http::ApiError;

pub const BATCHES_PATH: &str = "/payroll/batches";
/// Largest upload through the API (a 50,000-row file is about 36 MB). API Gateway stops at
/// 10 MB in AWS: larger files go through the S3 inbox there.
pub const UPLOAD_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Largest approval body.
const APPROVE_BODY_BYTES_MAX: usize = 4096;
/// Default page size of the list.
const LIST_DEFAULT: usize = 20;

pub fn router(state: Payroll) -> Router {
    Router::new()
        .route(
            BATCHES_PATH,
            post(upload)
                .layer(DefaultBodyLimit::max(UPLOAD_BYTES_MAX))
                .get(list),
        )
        .route("/payroll/batches/{id}", get(show))
        .route(
            "/payroll/batches/{id}/approve",
            post(approve_batch).layer(DefaultBodyLimit::max(APPROVE_BODY_BYTES_MAX)),
        )
        .route("/payroll/batches/{id}/resume", post(resume_batch))
        .route("/payroll/batches/{id}/reports/{name}", get(download))
        .with_state(state)
}

/// Maps the flow's errors onto answers; store outages are 503 (retry), never details.
pub fn api_error(e: PayrollAppError) -> ApiError {
    match e {
        PayrollAppError::Invalid { field, reason } => ApiError::bad_request(field, reason),
        e @ PayrollAppError::UnknownBatch(_) => ApiError::not_found(e.to_string()),
        e @ PayrollAppError::WrongState { .. } => ApiError::conflict(e.to_string()),
        e @ (PayrollAppError::Table(_)
        | PayrollAppError::Blobs(_)
        | PayrollAppError::Queue(_)
        | PayrollAppError::Workflows(_)
        | PayrollAppError::Provider(_)
        | PayrollAppError::NotReady(_)) => {
            tracing::error!(error = %e, "payroll request failed on a dependency");
            ApiError::unavailable("a dependency is unavailable; retry later")
        }
        e @ (PayrollAppError::Corrupt(_)
        | PayrollAppError::Ledger(_)
        | PayrollAppError::Join(_)) => {
            tracing::error!(error = %e, "payroll request failed");
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "internal",
                message: "internal error".to_owned(),
                field: None,
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct UploadParams {
    name: Option<String>,
}

async fn upload(
    State(state): State<Payroll>,
    headers: HeaderMap,
    params: Result<Query<UploadParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Response), ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                error: "invalid_request",
                message: format!("the file is larger than {UPLOAD_BYTES_MAX} bytes"),
                field: Some("file".into()),
            }
        } else {
            ApiError::bad_request("file", "the body could not be read")
        }
    })?;
    let Query(params) =
        params.map_err(|_| ApiError::bad_request("name", "query string is malformed"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (file, part_name) = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let boundary = multipart_boundary(content_type).ok_or_else(|| {
            ApiError::bad_request("content-type", "multipart body without a boundary")
        })?;
        let part = multipart_file(&body, &boundary).ok_or_else(|| {
            ApiError::bad_request("file", "the form has no file part (name=\"file\")")
        })?;
        (body.slice_ref(part.content), part.file_name)
    } else {
        (body, None)
    };
    if file.is_empty() {
        return Err(ApiError::bad_request("file", "the file is empty"));
    }
    let batch_id = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(|k| batches::derived_batch_id(&["http", k]));
    let view = batches::upload(
        &state,
        Upload {
            body: file,
            file_name: params.name.or(part_name),
            batch_id,
        },
    )
    .await
    .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(view).into_response()))
}

/// The `boundary` parameter of a multipart content type.
fn multipart_boundary(content_type: &str) -> Option<String> {
    content_type
        .split(';')
        .skip(1)
        .find_map(|param| {
            let (k, v) = param.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_owned())
        })
        .filter(|b| !b.is_empty())
}

struct Part<'a> {
    content: &'a [u8],
    file_name: Option<String>,
}

/// The part named `file` (or the first part with a file name) of a multipart body.
fn multipart_file<'a>(body: &'a [u8], boundary: &str) -> Option<Part<'a>> {
    let delimiter = format!("--{boundary}");
    let mut starts = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&body[at..], delimiter.as_bytes()) {
        starts.push(at + i);
        at += i + delimiter.len();
    }
    let mut fallback = None;
    for w in starts.windows(2) {
        let part = &body[w[0] + delimiter.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let split = find(part, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&part[..split]).ok()?;
        let content = &part[split + 4..];
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let param = |name: &str| {
            disposition.split(';').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        let file_name = param("filename");
        let part = Part { content, file_name };
        if param("name").as_deref() == Some("file") {
            return Some(part);
        }
        if part.file_name.is_some() && fallback.is_none() {
            fallback = Some(part);
        }
    }
    fallback
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, Deserialize)]
struct ListParams {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<Payroll>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|_| ApiError::bad_request("limit", "limit must be a whole number"))?;
    let page = batches::list(&state, params.limit.unwrap_or(LIST_DEFAULT), params.cursor)
        .await
        .map_err(api_error)?;
    Ok(Json(page).into_response())
}

async fn show(State(state): State<Payroll>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let view = batches::get(&state, &id).await.map_err(api_error)?;
    Ok(Json(view).into_response())
}

async fn resume_batch(
    State(state): State<Payroll>,
    Path(id): Path<String>,
) -> Result<Json<batches::BatchView>, ApiError> {
    let view = super::resume::resume(&state, &id)
        .await
        .map_err(api_error)?;
    Ok(Json(view))
}

async fn approve_batch(
    State(state): State<Payroll>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ApproveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("body", format!("not a valid approval: {e}")))?
    };
    let outcome = approve::approve(&state, &id, request)
        .await
        .map_err(api_error)?;
    Ok(Json(outcome).into_response())
}

async fn download(
    State(state): State<Payroll>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let unknown = || {
        ApiError::not_found("reports are payments.csv, sources.csv, branches.csv and findings.csv")
    };
    let kind = match name.as_str() {
        batches::FINDINGS_FILE_NAME => None,
        other => Some(ReportKind::parse(other).ok_or_else(unknown)?),
    };
    batches::load(&state, &id).await.map_err(api_error)?;
    let (body, file_name) = match kind {
        Some(kind) => (
            Bytes::from(report::render(&state, &id, kind).await.map_err(api_error)?),
            kind.file_name(),
        ),
        None => (findings_of(&state, &id).await?, batches::FINDINGS_FILE_NAME),
    };
    let disposition = format!("attachment; filename=\"{id}-{file_name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, CSV_CONTENT_TYPE.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// The findings file written at upload (batches uploaded before it existed have none).
async fn findings_of(state: &Payroll, id: &str) -> Result<Bytes, ApiError> {
    match state.blobs.get(&batches::findings_key(id)).await {
        Ok(Some(blob)) => Ok(blob.body),
        Ok(None) => Err(ApiError::not_found(
            "this batch was uploaded before findings.csv was written; upload it again",
        )),
        Err(e) => Err(api_error(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_part_of_a_form_is_found() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.xml\"\r\nContent-Type: text/xml\r\n\r\n<root></root>\r\n--XX--\r\n";
        let b = multipart_boundary("multipart/form-data; boundary=XX").unwrap();
        let part = multipart_file(body, &b).unwrap();
        assert_eq!(part.content, b"<root></root>");
        assert_eq!(part.file_name.as_deref(), Some("p.xml"));
        assert!(multipart_boundary("multipart/form-data").is_none());
        assert!(multipart_file(b"--XX\r\n\r\n--XX--", "XX").is_none());
    }
}
