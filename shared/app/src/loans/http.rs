//! `POST /loans` (create, idempotent) and `GET /loans/{id}` (the loan with its inferred
//! schedule, confidence, next expected date and recent pay history).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::checker::money_text;
use super::import::new_loan_from_json;
use super::layout::LoanRecord;
use super::store::{create_loan, read_history, read_loan};
use super::{Loans, LoansError};
use crate::http::ApiError;

pub const LOANS_PATH: &str = "/loans";
/// Largest request body.
pub const REQUEST_BODY_BYTES_MAX: usize = 16 * 1024;
/// Payments shown in a loan's recent history.
pub const RECENT_PAYMENTS_SHOWN: usize = 12;

pub fn router(state: Loans) -> Router {
    Router::new()
        .route(LOANS_PATH, post(create))
        .route(&format!("{LOANS_PATH}/{{id}}"), get(show))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(state)
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PaymentView {
    pub date: String,
    pub amount: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WindowView {
    pub earliest: String,
    pub latest: String,
}

/// A loan as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoanView {
    pub loan_id: String,
    pub borrower_id: String,
    pub employer_id: String,
    pub amount: String,
    pub currency: String,
    pub amount_tolerance: String,
    pub status: &'static str,
    pub declared_schedule: Option<String>,
    /// weekly, biweekly, semi_monthly, monthly or irregular; null without history or schedule.
    pub frequency: Option<&'static str>,
    pub schedule: Option<String>,
    pub schedule_description: Option<String>,
    /// "inferred" from the history, "declared" (history too short), or null.
    pub schedule_source: Option<&'static str>,
    pub confidence: String,
    pub next_expected_date: Option<String>,
    pub next_expected_window: Option<WindowView>,
    pub missed_expected_date: Option<String>,
    pub missed_on: Option<String>,
    pub late_paid_on: Option<String>,
    pub last_paid_on: Option<String>,
    pub last_paid_amount: Option<String>,
    pub recent_history: Vec<PaymentView>,
}

fn day(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl LoanView {
    pub fn new(loan: &LoanRecord, history: &super::History) -> Self {
        let irregular = loan.frequency == Some(payops_core::paydays::Frequency::Irregular);
        let source = match loan.schedule {
            None => None,
            Some(s) if loan.declared_schedule == Some(s) && loan.confidence.bp() == 0 => {
                Some("declared")
            }
            Some(_) => Some("inferred"),
        };
        let start = history.entries.len().saturating_sub(RECENT_PAYMENTS_SHOWN);
        LoanView {
            loan_id: loan.loan_id.clone(),
            borrower_id: loan.borrower_id.expose().clone(),
            employer_id: loan.employer_id.clone(),
            amount: money_text(loan.amount, loan.currency),
            currency: loan.currency.as_str().to_owned(),
            amount_tolerance: loan.tolerance.to_string(),
            status: loan.status.as_str(),
            declared_schedule: loan.declared_schedule.map(|s| s.to_string()),
            frequency: loan.frequency.map(|f| f.as_str()),
            schedule: loan.schedule.map(|s| s.to_string()),
            schedule_description: loan.schedule.map(|s| s.describe()),
            schedule_source: source,
            confidence: loan.confidence.to_string(),
            next_expected_date: if irregular {
                None
            } else {
                loan.expected_date.map(day)
            },
            next_expected_window: match (irregular, loan.window_start, loan.expected_date) {
                (true, Some(earliest), Some(latest)) => Some(WindowView {
                    earliest: day(earliest),
                    latest: day(latest),
                }),
                _ => None,
            },
            missed_expected_date: loan.missed_expected_date.map(day),
            missed_on: loan.missed_on.map(day),
            late_paid_on: loan.late_paid_on.map(day),
            last_paid_on: loan.last_paid_on.map(day),
            last_paid_amount: loan.last_paid_amount.map(|a| money_text(a, loan.currency)),
            recent_history: history.entries[start..]
                .iter()
                .rev()
                .map(|e| PaymentView {
                    date: day(e.date),
                    amount: money_text(e.amount, loan.currency),
                })
                .collect(),
        }
    }
}

impl From<LoansError> for ApiError {
    fn from(e: LoansError) -> Self {
        match e {
            LoansError::Invalid { field, reason } => ApiError::bad_request(field, reason),
            e @ LoansError::Conflict(_) => ApiError::conflict(e.to_string()),
            other => {
                tracing::error!(error = %other, "loans request failed");
                ApiError::unavailable("the loans store is unavailable; retry later")
            }
        }
    }
}

async fn create(
    State(state): State<Loans>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|_| ApiError::bad_request("body", "could not be read"))?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("body", "is not valid JSON"))?;
    let new = new_loan_from_json(&value)?;
    let today = state.clock.now().date_naive();
    let (loan, created) = create_loan(&state, new, today).await?;
    let history = read_history(state.table.as_ref(), loan.borrower_id.expose()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(LoanView::new(&loan, &history))).into_response())
}

async fn show(
    State(state): State<Loans>,
    Path(id): Path<String>,
) -> Result<Json<LoanView>, ApiError> {
    let loan = read_loan(state.table.as_ref(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no loan {id}")))?;
    let history = read_history(state.table.as_ref(), loan.borrower_id.expose()).await?;
    Ok(Json(LoanView::new(&loan, &history)))
}
