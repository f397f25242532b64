//! REST submissions, line by line: open, add lines (staged in the table with an expiry; DynamoDB's
//! TTL removes abandoned ones), submit. Submitting writes the staged lines as one file in the
//! default CSV format and receives it as a batch, so a submitted line is checked exactly as a
//! line of a file is; line `n` of the submission is line `n + 1` of the file (after the header).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use payops_core::debts::DEFAULT_FORMAT;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::batch::{Batch, Source};
use super::http::api_error;
use super::layout;
use super::{Debts, DebtsError};
use crate::http::ApiError;
use crate::ports::table::TRANSACTION_WRITES_MAX;
use crate::ports::{Condition, Item, Query, SortKeyRange, TableError, UpdateAction, Write};

/// How long a submission stays open.
pub const SUBMISSION_TTL_HOURS: i64 = 24;
/// Lines one request may add, and a submission may hold.
pub const LINES_PER_REQUEST_MAX: usize = 10_000;
pub const SUBMISSION_LINES_MAX: u64 = 100_000;
/// The fields of a staged line, as in the default format's header.
const FIELDS: [&str; 5] = [
    "client_reference",
    "debtor_name",
    "cpf",
    "amount",
    "missed_date",
];

#[derive(Debug, Deserialize)]
pub(super) struct OpenRequest {
    client_id: String,
}

#[derive(Debug, Serialize)]
pub(super) struct SubmissionView {
    submission_id: String,
    client_id: String,
    status: String,
    lines: u64,
    expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<String>,
}

fn view(id: &str, item: &Item) -> SubmissionView {
    SubmissionView {
        submission_id: id.to_owned(),
        client_id: item.s("client_id").unwrap_or_default().to_owned(),
        status: item.s("status").unwrap_or_default().to_owned(),
        lines: item
            .n("lines")
            .and_then(|d| u64::try_from(d).ok())
            .unwrap_or(0),
        expires_at: item
            .s("expires_at")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        batch_id: item.s("batch_id").map(str::to_owned),
    }
}

pub(super) async fn open(
    State(state): State<Debts>,
    Json(req): Json<OpenRequest>,
) -> Result<(StatusCode, Json<SubmissionView>), ApiError> {
    if !layout::valid_client_id(&req.client_id) {
        return Err(ApiError::bad_request(
            "client_id",
            "must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    let id = format!("s_{}", uuid::Uuid::now_v7().simple());
    let now = state.clock.now();
    let expires = now + Duration::hours(SUBMISSION_TTL_HOURS);
    let item = Item::new(&layout::submission_key(&id))
        .with("client_id", req.client_id.as_str())
        .with("status", "OPEN")
        .with("lines", Decimal::ZERO)
        .with("created_at", now.to_rfc3339())
        .with("expires_at", expires.to_rfc3339())
        .with("ttl", expires.timestamp());
    state
        .table
        .put(item.clone(), Some(Condition::ItemNotExists))
        .await
        .map_err(|e| api_error(e.into()))?;
    Ok((StatusCode::CREATED, Json(view(&id, &item))))
}

/// A JSON value as the text a CSV cell would hold (numbers exactly as written).
fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

async fn open_submission(state: &Debts, id: &str) -> Result<Item, ApiError> {
    let item = state
        .table
        .get(&layout::submission_key(id))
        .await
        .map_err(|e| api_error(e.into()))?
        .ok_or_else(|| ApiError::not_found(format!("submission {id} not found")))?;
    let expires: DateTime<Utc> = item
        .s("expires_at")
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    if expires <= state.clock.now() && item.s("status") == Some("OPEN") {
        return Err(ApiError {
            status: StatusCode::GONE,
            error: "expired",
            message: format!("submission {id} expired at {expires}; open a new one"),
            field: None,
        });
    }
    Ok(item)
}

pub(super) async fn add_lines(
    State(state): State<Debts>,
    Path(id): Path<String>,
    Json(lines): Json<Vec<Value>>,
) -> Result<Json<SubmissionView>, ApiError> {
    if lines.is_empty() || lines.len() > LINES_PER_REQUEST_MAX {
        return Err(ApiError::bad_request(
            "lines",
            format!("send 1 to {LINES_PER_REQUEST_MAX} debts per request"),
        ));
    }
    for (i, line) in lines.iter().enumerate() {
        if !line.is_object() {
            return Err(ApiError::bad_request(
                format!("[{i}]"),
                "each debt is an object with client_reference, debtor_name, cpf, amount, missed_date",
            ));
        }
    }
    let item = open_submission(&state, &id).await?;
    let count = lines.len() as u64;
    // The counter hands out line numbers atomically; a full or closed submission is refused.
    let after = state
        .table
        .update(
            &layout::submission_key(&id),
            vec![UpdateAction::add("lines", Decimal::from(count))],
            Some(Condition::And(vec![
                Condition::eq("status", "OPEN"),
                Condition::le("lines", Decimal::from(SUBMISSION_LINES_MAX - count)),
            ])),
        )
        .await
        .map_err(|e| match e {
            TableError::ConditionFailed => ApiError::conflict(format!(
                "submission {id} is not open or would exceed {SUBMISSION_LINES_MAX} lines"
            )),
            e => api_error(e.into()),
        })?;
    let last = after
        .n("lines")
        .and_then(|d| u64::try_from(d).ok())
        .unwrap_or(count);
    let ttl = item
        .get("ttl")
        .cloned()
        .unwrap_or(crate::ports::Value::Null);
    let writes: Vec<Write> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let n = last - count + 1 + i as u64;
            let mut staged = Item::new(&layout::staged_line_key(&id, n)).with("ttl", ttl.clone());
            for f in FIELDS {
                staged.set(f, cell(line.get(f)));
            }
            Write::Put {
                item: staged,
                condition: None,
            }
        })
        .collect();
    for group in writes.chunks(TRANSACTION_WRITES_MAX) {
        state
            .table
            .transact(group.to_vec())
            .await
            .map_err(|e| api_error(e.into()))?;
    }
    Ok(Json(view(&id, &after)))
}

pub(super) async fn submit(
    State(state): State<Debts>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Batch>), ApiError> {
    let item = open_submission(&state, &id).await?;
    let client = item.s("client_id").unwrap_or_default().to_owned();
    let batch_id = format!("b_{}", id.trim_start_matches("s_"));
    match item.s("status") {
        Some("OPEN") | Some("SUBMITTED") => {}
        other => {
            return Err(ApiError::conflict(format!("submission {id} is {other:?}")));
        }
    }
    let key = state
        .write_submission(&id, &client)
        .await
        .map_err(api_error)?;
    state
        .table
        .update(
            &layout::submission_key(&id),
            vec![
                UpdateAction::set("status", "SUBMITTED"),
                UpdateAction::set("batch_id", batch_id.as_str()),
            ],
            Some(Condition::ItemExists),
        )
        .await
        .map_err(|e| api_error(e.into()))?;
    let batch = state
        .receive_file(
            &batch_id,
            &client,
            Source::Submission,
            Some(DEFAULT_FORMAT.to_owned()),
            vec![key],
        )
        .await
        .map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(batch)))
}

impl Debts {
    /// Writes a submission's staged lines as one default-format CSV; returns its key.
    async fn write_submission(&self, id: &str, client: &str) -> Result<String, DebtsError> {
        let mut out = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| DebtsError::Corrupt(format!("submission CSV: {e}"));
        out.write_record(FIELDS).map_err(csv_err)?;
        let mut cursor = None;
        let mut lines = 0u64;
        loop {
            let page = self
                .table
                .query(
                    Query::partition(layout::submission_pk(id))
                        .sort(SortKeyRange::BeginsWith(layout::LINE_PREFIX.into()))
                        .after(cursor),
                )
                .await?;
            for item in &page.items {
                out.write_record(FIELDS.map(|f| item.s(f).unwrap_or_default()))
                    .map_err(csv_err)?;
                lines += 1;
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if lines == 0 {
            return Err(DebtsError::invalid("lines", "the submission has no lines"));
        }
        let body = out
            .into_inner()
            .map_err(|e| DebtsError::Corrupt(format!("submission CSV: {e}")))?;
        let key = format!("debts/submissions/{client}/{id}.csv");
        self.blobs.put(&key, Bytes::from(body), "text/csv").await?;
        Ok(key)
    }
}
