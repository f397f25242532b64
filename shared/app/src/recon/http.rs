//! The reconciliation API (function `recon-api`): reference data loaded by API, and the
//! streaming index read back.
//!
//! - `PUT /recon/reference/policies` and `PUT /recon/reference/merchants` — a CSV (or Parquet)
//!   body with the columns; validated in full (a bad row is a 400 naming the line and
//!   field), then stored where the processors load and cache it (`recon/reference/`).
//! - `GET /recon/transactions/{id}` — the streaming index's item of a transaction: latest
//!   status, fraud score, policy flags, compliance assessment, masked user id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::input::{TextTable, read_merchants, read_policies};
use super::reference::{MERCHANTS_KEY, POLICIES_KEY};
use super::stream::current_state;
use crate::http::ApiError;
use crate::ports::{Blobs, Table, Value as Attr};

pub const REFERENCE_PATH: &str = "/recon/reference/{kind}";
pub const TRANSACTION_PATH: &str = "/recon/transactions/{id}";
/// Largest reference file accepted by the API (merchant profiles of a large acquirer).
pub const REFERENCE_BYTES_MAX: usize = 32 * 1024 * 1024;

#[derive(Clone)]
struct ApiState {
    table: Arc<dyn Table>,
    blobs: Arc<dyn Blobs>,
}

/// The router of `recon-api`.
pub fn router(recon: super::Recon) -> Router {
    Router::new()
        .route(REFERENCE_PATH, put(put_reference))
        .route(TRANSACTION_PATH, get(get_transaction))
        .layer(axum::extract::DefaultBodyLimit::max(REFERENCE_BYTES_MAX))
        .with_state(ApiState {
            table: recon.table,
            blobs: recon.blobs,
        })
}

async fn put_reference(
    State(state): State<ApiState>,
    Path(kind): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let table = TextTable::from_bytes(&kind, body.to_vec())
        .map_err(|e| ApiError::bad_request("body", e.to_string()))?;
    let (key, rows) = match kind.as_str() {
        "policies" => (
            POLICIES_KEY,
            read_policies(&table)
                .map_err(|e| ApiError::bad_request("body", e.to_string()))?
                .len(),
        ),
        "merchants" => (
            MERCHANTS_KEY,
            read_merchants(&table)
                .map_err(|e| ApiError::bad_request("body", e.to_string()))?
                .len(),
        ),
        _ => {
            return Err(ApiError::not_found(
                "reference data is policies or merchants",
            ));
        }
    };
    state
        .blobs
        .put(key, body, "text/csv")
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(json!({ "kind": kind, "rows": rows, "key": key })))
}

fn attr_json(v: &Attr) -> Value {
    match v {
        Attr::S(s) => Value::String(s.clone()),
        Attr::N(n) => Value::String(n.to_string()),
        Attr::Bool(b) => Value::Bool(*b),
        Attr::L(l) => Value::Array(l.iter().map(attr_json).collect()),
        Attr::Null | Attr::B(_) | Attr::M(_) => Value::Null,
    }
}

async fn get_transaction(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let item = current_state(state.table.as_ref(), &id)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .ok_or_else(|| {
            ApiError::not_found(format!("no transaction {id} in the streaming index"))
        })?;
    let fields = [
        "transaction_id",
        "merchant_id",
        "masked_user_id",
        "amount",
        "currency",
        "status",
        "event_time",
        "ingest_time",
        "fraud_score",
        "model_version",
        "policy_flags",
        "compliance_assessment",
    ];
    let body: serde_json::Map<String, Value> = fields
        .iter()
        .filter_map(|f| item.get(f).map(|v| ((*f).to_owned(), attr_json(v))))
        .collect();
    Ok((StatusCode::OK, Json(Value::Object(body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The router runs end to end in payops-local's tests (real table and blobs); here only
    // the mapping of stored attributes to JSON.
    #[test]
    fn attributes_map_to_json_with_exact_decimals() {
        let n = Attr::N("0.950000".parse().expect("literal"));
        assert_eq!(attr_json(&n), json!("0.950000"));
        let l = Attr::L(vec![Attr::S("KYC_REQUIRED".into())]);
        assert_eq!(attr_json(&l), json!(["KYC_REQUIRED"]));
        assert_eq!(attr_json(&Attr::Null), Value::Null);
    }
}
