//! `POST /api/v1/advances` and `GET /api/v1/advances/{id}`.
//!
//! Creating an advance is one transaction: the bank credit to the account (with its record
//! and, given an `Idempotency-Key`, the key), the advance and its twelve instalments. Either
//! the customer has the money and the schedule exists, or neither.

use payops_core::accounts::advance::{self, audit};
use payops_core::accounts::transaction::{format_timestamp, request_fingerprint};
use payops_core::accounts::{
    AdvanceId, Direction, FailReason, IdempotencyKey, InstalmentStatus, TxStatus, format_amount,
};
use serde::Serialize;

use super::account::currencies_of;
use super::fields::{self, Object};
use super::layout::{self, AdvanceRecord, InstalmentJson, InstalmentRecord, attr};
use super::money::{self, MoveRequest};
use super::{Accounts, AccountsError};
use crate::ports::{Condition, Query, Write};

/// An advance with its schedule, as the API shows it.
#[derive(Debug, Serialize)]
pub struct AdvanceView {
    pub advance_id: String,
    pub account_id: String,
    pub amount: String,
    pub currency: String,
    pub created_at: String,
    pub disbursement_transaction_id: String,
    /// `repaid` once every instalment still owed is paid.
    pub status: &'static str,
    pub paid_amount: String,
    pub due_amount: String,
    pub in_progress_amount: String,
    pub instalments: Vec<InstalmentJson>,
}

impl AdvanceView {
    pub fn new(advance: &AdvanceRecord, instalments: &[InstalmentRecord]) -> Self {
        let views: Vec<_> = instalments.iter().map(InstalmentRecord::view).collect();
        let totals = audit(advance.amount, &views);
        let open = instalments.iter().any(|i| {
            matches!(
                i.status,
                InstalmentStatus::Due | InstalmentStatus::InProgress
            )
        });
        AdvanceView {
            advance_id: advance.advance_id.clone(),
            account_id: advance.account_id.as_str().to_owned(),
            amount: format_amount(advance.amount),
            currency: advance.currency.as_str().to_owned(),
            created_at: advance.created_at.clone(),
            disbursement_transaction_id: advance.disbursement_transaction_id.clone(),
            status: if open { "open" } else { "repaid" },
            paid_amount: format_amount(totals.paid),
            due_amount: format_amount(totals.due),
            in_progress_amount: format_amount(totals.in_progress),
            instalments: instalments.iter().map(InstalmentJson::from).collect(),
        }
    }
}

fn no_account() -> AccountsError {
    AccountsError::NotFound("no account with this account_id".to_owned())
}

/// Creates an advance; returns it and whether it is the replay of an earlier request.
pub(crate) async fn create(
    state: &Accounts,
    body: &Object,
    key: Option<IdempotencyKey>,
) -> Result<(AdvanceView, bool), AccountsError> {
    let account_id = fields::account_id(body, "account_id")?;
    let amount = fields::positive_amount(body, "amount")?;
    let now = state.clock.now();
    let plan = advance::plan_instalments(amount, now.date_naive())?;
    let Some(currency) = currencies_of(state, &[&account_id]).await?.remove(0) else {
        return Err(no_account());
    };
    let advance_id = uuid::Uuid::now_v7().to_string();
    let advance = AdvanceRecord {
        advance_id: advance_id.clone(),
        account_id: account_id.clone(),
        amount,
        currency,
        created_at: format_timestamp(now),
        disbursement_transaction_id: money::new_transaction_id(),
    };
    let instalments: Vec<InstalmentRecord> = plan
        .iter()
        .map(|p| InstalmentRecord {
            advance_id: advance_id.clone(),
            account_id: account_id.clone(),
            number: p.number,
            amount: p.amount,
            due_date: p.due_date,
            status: InstalmentStatus::Due,
            round: 0,
            attempts: 0,
            lease_owner: None,
            lease_expires_ms: None,
            transaction_id: None,
            rolled_into: None,
            paid_at: None,
        })
        .collect();
    let mut req = MoveRequest::bank(
        account_id.clone(),
        amount,
        Direction::Credit,
        format!("advance {advance_id}"),
        key,
    );
    req.transaction_id = advance.disbursement_transaction_id.clone();
    req.fingerprint =
        request_fingerprint(&["advance", account_id.as_str(), &format_amount(amount)]);
    req.idempotency_attrs = vec![(attr::ADVANCE_ID, advance_id.as_str().into())];
    req.extra_writes = std::iter::once(layout::advance_item(&advance))
        .chain(instalments.iter().map(layout::instalment_item))
        .map(|item| Write::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        })
        .collect();
    let result = money::execute(state, &req).await?;
    if result.replayed {
        let first = result
            .idempotency_item
            .as_ref()
            .and_then(|i| i.s(attr::ADVANCE_ID))
            .ok_or_else(no_account)?;
        let (advance, instalments) = load(state, first).await?.ok_or_else(|| {
            AccountsError::Invariant("an advance recorded under a key is missing".into())
        })?;
        return Ok((AdvanceView::new(&advance, &instalments), true));
    }
    match (result.record.status, result.record.reason) {
        (TxStatus::Success, _) => Ok((AdvanceView::new(&advance, &instalments), false)),
        (TxStatus::Fail, Some(FailReason::UnknownAccount)) => Err(no_account()),
        (TxStatus::Fail, reason) => Err(AccountsError::Invariant(format!(
            "an advance credit failed: {reason:?}"
        ))),
    }
}

/// `GET /api/v1/advances/{id}`.
pub(crate) async fn get(state: &Accounts, id: &str) -> Result<AdvanceView, AccountsError> {
    let id = AdvanceId::parse(id).map_err(|e| AccountsError::invalid("advance_id", e))?;
    let (advance, instalments) = load(state, id.as_str())
        .await?
        .ok_or_else(|| AccountsError::NotFound("no advance with this advance_id".to_owned()))?;
    Ok(AdvanceView::new(&advance, &instalments))
}

/// An advance and its instalments in number order: one query of its partition (at most
/// `INSTALMENT_NUMBER_MAX + 1` items, one page).
pub async fn load(
    state: &Accounts,
    advance_id: &str,
) -> Result<Option<(AdvanceRecord, Vec<InstalmentRecord>)>, AccountsError> {
    let page = state
        .table
        .query(Query::partition(layout::advance_partition(advance_id)))
        .await?;
    let mut advance = None;
    let mut instalments = Vec::new();
    for item in &page.items {
        match item.s(crate::ports::table::SK) {
            Some(layout::ADVANCE_SK) => advance = Some(layout::advance_from_item(item)?),
            Some(sk) if sk.starts_with(layout::INSTALMENT_SK_PREFIX) => {
                instalments.push(layout::instalment_from_item(item)?)
            }
            _ => {}
        }
    }
    if page.cursor.is_some() {
        return Err(AccountsError::Invariant(format!(
            "advance {advance_id} has more items than one page"
        )));
    }
    instalments.sort_by_key(|i| i.number);
    Ok(advance.map(|a| (a, instalments)))
}

/// The `reason` of an instalment's bank debit, as the transactions report shows it.
pub fn debit_reason(advance_id: &str, number: u32) -> String {
    format!("advance {advance_id} instalment {number}")
}
