//! REST submissions, line by line: open, add lines (staged in the table with an expiry; DynamoDB's
//! TTL removes abandoned ones), submit. Submitting writes the staged lines as one file in the
//! default CSV format and receives it as a batch, so a submitted line is checked exactly as a
//! line of a file is; line `n` of the submission is line `n + 1` of the file (after the header).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use payops_core::accounts::IdempotencyKey;
use payops_core::accounts::transaction::request_fingerprint;
use payops_core::debts::DEFAULT_FORMAT;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::batch::{Batch, Source};
use super::http::api_error;
use super::layout;
use super::{Debts, DebtsError};
use crate::accounts::{IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER};
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

/// Parses the optional `Idempotency-Key` header (the accounts API's rules: 1-255 visible ASCII
/// characters, no `#`).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key", "must be visible ASCII"))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|e| ApiError::bad_request("Idempotency-Key", e.to_string()))
}

fn check_lines(lines: &[Value]) -> Result<(), ApiError> {
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
    Ok(())
}

/// `POST /debts/submissions/{id}/lines`: stages a JSON array of debts.
///
/// `Idempotency-Key` is optional. With it, the request is staged at most once: a replay of the
/// same key with the same body (and submission) stages nothing and answers the first answer
/// with `Idempotent-Replayed: true` (finishing the staging if the first attempt stopped half
/// way); the same key with a different body or submission is refused with 422 naming the
/// header. Without it, every request stages its lines again (a retry duplicates them).
pub(super) async fn add_lines(
    State(state): State<Debts>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(lines): Json<Vec<Value>>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    check_lines(&lines)?;
    match key {
        Some(key) => keyed_add(&state, &id, &key, &lines).await,
        None => Ok(Json(unkeyed_add(&state, &id, &lines).await?).into_response()),
    }
}

async fn unkeyed_add(state: &Debts, id: &str, lines: &[Value]) -> Result<SubmissionView, ApiError> {
    let item = open_submission(state, id).await?;
    let count = lines.len() as u64;
    // The counter hands out line numbers atomically; a full or closed submission is refused.
    let after = state
        .table
        .update(
            &layout::submission_key(id),
            vec![UpdateAction::add("lines", Decimal::from(count))],
            Some(Condition::And(vec![
                Condition::eq("status", "OPEN"),
                Condition::le("lines", Decimal::from(SUBMISSION_LINES_MAX - count)),
            ])),
        )
        .await
        .map_err(|e| match e {
            TableError::ConditionFailed => not_open_or_full(id),
            e => api_error(e.into()),
        })?;
    let last = after
        .n("lines")
        .and_then(|d| u64::try_from(d).ok())
        .unwrap_or(count);
    let writes = staged_writes(id, last - count + 1, lines, &ttl_of(&item));
    stage(state, &writes).await?;
    Ok(view(id, &after))
}

fn not_open_or_full(id: &str) -> ApiError {
    ApiError::conflict(format!(
        "submission {id} is not open or would exceed {SUBMISSION_LINES_MAX} lines"
    ))
}

fn ttl_of(item: &Item) -> crate::ports::Value {
    item.get("ttl")
        .cloned()
        .unwrap_or(crate::ports::Value::Null)
}

/// The staged items of `lines`, numbered from `first`.
fn staged_writes(id: &str, first: u64, lines: &[Value], ttl: &crate::ports::Value) -> Vec<Write> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let n = first + i as u64;
            let mut staged = Item::new(&layout::staged_line_key(id, n)).with("ttl", ttl.clone());
            for f in FIELDS {
                staged.set(f, cell(line.get(f)));
            }
            Write::Put {
                item: staged,
                condition: None,
            }
        })
        .collect()
}

/// Writes staged lines; rewriting the same numbers with the same content is harmless.
async fn stage(state: &Debts, writes: &[Write]) -> Result<(), ApiError> {
    for group in writes.chunks(TRANSACTION_WRITES_MAX) {
        state
            .table
            .transact(group.to_vec())
            .await
            .map_err(|e| api_error(e.into()))?;
    }
    Ok(())
}

/// Attributes of the idempotency record.
mod idem {
    pub const FINGERPRINT: &str = "fingerprint";
    pub const SUBMISSION_ID: &str = "submission_id";
    /// The number of the first line the request staged.
    pub const FIRST_LINE: &str = "first_line";
    /// The JSON of the first answer.
    pub const RESPONSE: &str = "response";
    /// Set once every line of the request is staged.
    pub const STAGED: &str = "staged";
}

/// Attempts of a keyed add while concurrent adds to the same submission move its counter.
pub const KEYED_ADD_ATTEMPTS_MAX: usize = 16;
/// The first transaction of a keyed add: the counter, the key, then as many lines as fit.
const KEYED_FIRST_WRITES: usize = 2;

/// Stages `lines` at most once per key. The counter (conditional on the count read, so the
/// line numbers are ours), the key record (`attribute_not_exists`) and the first lines are one
/// transaction; the key records the first line number, so a replay can finish a staging a
/// crash interrupted by rewriting the same numbers.
async fn keyed_add(
    state: &Debts,
    id: &str,
    key: &IdempotencyKey,
    lines: &[Value],
) -> Result<Response, ApiError> {
    let body =
        serde_json::to_string(lines).map_err(|e| ApiError::bad_request("lines", e.to_string()))?;
    let fingerprint = request_fingerprint(&[id, &body]);
    let key_item = layout::idempotency_key(key.as_str());
    for _ in 0..KEYED_ADD_ATTEMPTS_MAX {
        if let Some(first) = state
            .table
            .get(&key_item)
            .await
            .map_err(|e| api_error(e.into()))?
        {
            return replay(state, id, (&key_item, &first), &fingerprint, lines).await;
        }
        let item = open_submission(state, id).await?;
        let before = item
            .n("lines")
            .and_then(|d| u64::try_from(d).ok())
            .unwrap_or(0);
        let count = lines.len() as u64;
        if item.s("status") != Some("OPEN") || before + count > SUBMISSION_LINES_MAX {
            return Err(not_open_or_full(id));
        }
        let mut answer = view(id, &item);
        answer.lines = before + count;
        let response = serde_json::to_string(&answer)
            .map_err(|e| api_error(DebtsError::Corrupt(format!("submission view: {e}"))))?;
        let ttl = ttl_of(&item);
        let staged = staged_writes(id, before + 1, lines, &ttl);
        let (now_lines, later) = staged.split_at(
            staged
                .len()
                .min(TRANSACTION_WRITES_MAX - KEYED_FIRST_WRITES),
        );
        let mut writes = vec![
            Write::Update {
                key: layout::submission_key(id),
                actions: vec![UpdateAction::add("lines", Decimal::from(count))],
                condition: Some(Condition::And(vec![
                    Condition::eq("status", "OPEN"),
                    Condition::eq("lines", Decimal::from(before)),
                ])),
            },
            Write::Put {
                item: Item::new(&key_item)
                    .with(idem::FINGERPRINT, fingerprint.as_str())
                    .with(idem::SUBMISSION_ID, id)
                    .with(idem::FIRST_LINE, Decimal::from(before + 1))
                    .with(idem::RESPONSE, response.as_str())
                    .with("created_at", state.clock.now().to_rfc3339())
                    .with("ttl", ttl.clone()),
                condition: Some(Condition::ItemNotExists),
            },
        ];
        writes.extend_from_slice(now_lines);
        match state.table.transact(writes).await {
            Ok(()) => {
                stage(state, later).await?;
                mark_staged(state, &key_item).await?;
                return Ok(answered(StatusCode::OK, response, false));
            }
            // The key was taken meanwhile (the loop replays it), the counter moved (another
            // add; the loop reads it again) or the store was briefly busy.
            Err(e) if e.failed_condition_at(0) || e.failed_condition_at(1) || e.is_retryable() => {}
            Err(e) => return Err(api_error(e.into())),
        }
    }
    Err(ApiError::unavailable(format!(
        "submission {id} is busy; retry with the same Idempotency-Key"
    )))
}

async fn mark_staged(state: &Debts, key_item: &crate::ports::Key) -> Result<(), ApiError> {
    state
        .table
        .update(
            key_item,
            vec![UpdateAction::set(idem::STAGED, true)],
            Some(Condition::ItemExists),
        )
        .await
        .map(|_| ())
        .map_err(|e| api_error(e.into()))
}

/// The first answer under a key, if this request is the one that used it.
async fn replay(
    state: &Debts,
    id: &str,
    (key_item, first): (&crate::ports::Key, &Item),
    fingerprint: &str,
    lines: &[Value],
) -> Result<Response, ApiError> {
    if first.s(idem::FINGERPRINT) != Some(fingerprint) {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: "idempotency_key_reused",
            message: "this Idempotency-Key was already used with a different submission or body"
                .to_owned(),
            field: Some("Idempotency-Key".to_owned()),
        });
    }
    let corrupt = |attr: &str| {
        api_error(DebtsError::Corrupt(format!(
            "idempotency record of submission {id}: {attr}"
        )))
    };
    if first.get(idem::STAGED).is_none() {
        // The first attempt stopped after its first transaction: finish its staging.
        let from = first
            .n(idem::FIRST_LINE)
            .and_then(|d| u64::try_from(d).ok())
            .ok_or_else(|| corrupt(idem::FIRST_LINE))?;
        stage(state, &staged_writes(id, from, lines, &ttl_of(first))).await?;
        mark_staged(state, key_item).await?;
    }
    let response = first
        .s(idem::RESPONSE)
        .ok_or_else(|| corrupt(idem::RESPONSE))?;
    Ok(answered(StatusCode::OK, response.to_owned(), true))
}

fn answered(status: StatusCode, json: String, replayed: bool) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
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
