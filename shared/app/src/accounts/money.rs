//! Moving money: every transfer and bank transaction is ONE `transact` call.
//!
//! A successful transfer writes, all or nothing:
//!
//! | # | write | condition |
//! |---|---|---|
//! | 0 | payer: `ADD balance -amount` | `currency = c AND balance >= amount` |
//! | 1 | payee: `ADD balance +amount` | `currency = c` (so the account exists) |
//! | 2 | the transaction record | `attribute_not_exists(pk)` |
//! | 3 | `IDEM#{key}` → fingerprint, transaction id (only with an `Idempotency-Key`) | `attribute_not_exists(pk)` |
//!
//! A bank transaction has one account write instead of two. The outcome is read from the
//! cancellation reasons, never from balances read afterwards (which other transfers move):
//! write 3 failing means the key was used, so the stored first result is returned; write 2
//! failing means an earlier attempt of this very call committed (an ambiguous timeout); the
//! payer's write failing means insufficient funds, recorded as a failed transaction with its
//! own conditional writes (the record and the key), so a failure is also recorded once.
//! Account existence and currency are known before the write (from [`CurrencyCache`] or one
//! `batch_get`): both are immutable, so that read cannot race.
//!
//! [`CurrencyCache`]: super::CurrencyCache

use std::time::Duration;

use payops_core::Currency;
use payops_core::accounts::transaction::{format_timestamp, request_fingerprint};
use payops_core::accounts::{
    AccountId, Direction, FailReason, IdempotencyKey, TxKind, TxStatus, format_amount,
};
use rust_decimal::Decimal;

use super::account::currencies_of;
use super::fields::{self, Object};
use super::layout::{self, TxRecord, attr};
use super::{Accounts, AccountsError};
use crate::ports::{Condition, Item, UpdateAction, Value, Write};

/// Attempts of one money movement when concurrent transactions cancel ours (DynamoDB's
/// `TransactionConflict`) or the store is briefly unavailable.
pub const TRANSACT_ATTEMPTS_MAX: usize = 8;
/// First back-off between attempts; doubles each time up to `BACKOFF_MAX_MS`, plus jitter.
pub const BACKOFF_BASE_MS: u64 = 2;
pub const BACKOFF_MAX_MS: u64 = 100;

/// A money movement to decide and record.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub transaction_id: String,
    pub kind: TxKind,
    pub src_account_id: Option<AccountId>,
    pub dst_account_id: AccountId,
    pub amount: Decimal,
    pub direction: Direction,
    pub description: Option<String>,
    pub idempotency_key: Option<IdempotencyKey>,
    /// What the request asked for; a retry under the same key must match it.
    pub fingerprint: String,
    /// More attributes of the idempotency record (an advance's id).
    pub idempotency_attrs: Vec<(&'static str, Value)>,
    /// Written in the same transaction when the movement succeeds (an advance and its
    /// instalments), each with a condition of its own.
    pub extra_writes: Vec<Write>,
}

/// A new, time-ordered transaction id.
pub fn new_transaction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl MoveRequest {
    /// A transfer between two accounts; `direction` says which one pays.
    pub fn transfer(
        src: AccountId,
        dst: AccountId,
        amount: Decimal,
        direction: Direction,
        key: Option<IdempotencyKey>,
    ) -> Self {
        let fingerprint = request_fingerprint(&[
            TxKind::Transfer.as_str(),
            src.as_str(),
            dst.as_str(),
            &format_amount(amount),
            direction.as_str(),
        ]);
        MoveRequest {
            transaction_id: new_transaction_id(),
            kind: TxKind::Transfer,
            src_account_id: Some(src),
            dst_account_id: dst,
            amount,
            direction,
            description: None,
            idempotency_key: key,
            fingerprint,
            idempotency_attrs: Vec::new(),
            extra_writes: Vec::new(),
        }
    }

    /// A bank transaction: `credit` gives to the account, `debit` takes from it.
    pub fn bank(
        account: AccountId,
        amount: Decimal,
        direction: Direction,
        reason: String,
        key: Option<IdempotencyKey>,
    ) -> Self {
        let fingerprint = request_fingerprint(&[
            TxKind::Bank.as_str(),
            account.as_str(),
            &format_amount(amount),
            direction.as_str(),
            &reason,
        ]);
        MoveRequest {
            transaction_id: new_transaction_id(),
            kind: TxKind::Bank,
            src_account_id: None,
            dst_account_id: account,
            amount,
            direction,
            description: Some(reason),
            idempotency_key: key,
            fingerprint,
            idempotency_attrs: Vec::new(),
            extra_writes: Vec::new(),
        }
    }

    /// The balance changes, payer first.
    fn legs(&self) -> Vec<(&AccountId, Decimal)> {
        match (&self.kind, &self.src_account_id) {
            (TxKind::Transfer, Some(src)) => {
                let (payer, payee) = self.direction.transfer_legs(src, &self.dst_account_id);
                vec![(payer, -self.amount), (payee, self.amount)]
            }
            _ => vec![(&self.dst_account_id, self.direction.bank_delta(self.amount))],
        }
    }

    fn record(&self, timestamp: String, failure: Option<FailReason>) -> TxRecord {
        TxRecord {
            transaction_id: self.transaction_id.clone(),
            transaction_timestamp: timestamp,
            kind: self.kind,
            src_account_id: self.src_account_id.clone(),
            dst_account_id: self.dst_account_id.clone(),
            amount: self.amount,
            direction: self.direction,
            status: if failure.is_some() {
                TxStatus::Fail
            } else {
                TxStatus::Success
            },
            reason: failure,
            description: self.description.clone(),
        }
    }

    fn idempotency_item(&self, key: &IdempotencyKey, created_at: &str) -> Item {
        let mut item = Item::new(&layout::idem_key(key))
            .with(attr::FINGERPRINT, self.fingerprint.as_str())
            .with(attr::TRANSACTION_ID, self.transaction_id.as_str())
            .with(attr::CREATED_AT, created_at);
        for (name, value) in &self.idempotency_attrs {
            item.set(name, value.clone());
        }
        item
    }
}

/// The decided movement.
#[derive(Debug, Clone)]
pub struct MoveResult {
    pub record: TxRecord,
    /// True when the idempotency key had been used: `record` is the first result.
    pub replayed: bool,
    /// The idempotency record, when the result is a replay.
    pub idempotency_item: Option<Item>,
}

/// Where each write of one attempt sits, to read the cancellation reasons.
struct Plan {
    writes: Vec<Write>,
    /// `(index, pays)` of each account write.
    legs: Vec<(usize, bool)>,
    record_at: usize,
    idempotency_at: Option<usize>,
}

fn plan(
    req: &MoveRequest,
    record: &TxRecord,
    currency: Option<Currency>,
    now: chrono::DateTime<chrono::Utc>,
) -> Plan {
    let mut writes = Vec::new();
    let mut legs = Vec::new();
    if let (TxStatus::Success, Some(currency)) = (record.status, currency) {
        for (account, delta) in req.legs() {
            let same_currency = Condition::eq(attr::CURRENCY, currency.as_str());
            let pays = delta < Decimal::ZERO;
            let condition = if pays {
                Condition::And(vec![same_currency, Condition::ge(attr::BALANCE, -delta)])
            } else {
                same_currency
            };
            legs.push((writes.len(), pays));
            writes.push(Write::Update {
                key: layout::account_key(account),
                actions: vec![UpdateAction::add(attr::BALANCE, delta)],
                condition: Some(condition),
            });
        }
    }
    let record_at = writes.len();
    writes.push(Write::Put {
        item: layout::tx_item(record, now.date_naive()),
        condition: Some(Condition::ItemNotExists),
    });
    let idempotency_at = req.idempotency_key.as_ref().map(|key| {
        writes.push(Write::Put {
            item: req.idempotency_item(key, &record.transaction_timestamp),
            condition: Some(Condition::ItemNotExists),
        });
        writes.len() - 1
    });
    if record.status == TxStatus::Success {
        writes.extend(req.extra_writes.iter().cloned());
    }
    Plan {
        writes,
        legs,
        record_at,
        idempotency_at,
    }
}

/// Decides and records one money movement, exactly once per idempotency key.
pub async fn execute(state: &Accounts, req: &MoveRequest) -> Result<MoveResult, AccountsError> {
    let accounts: Vec<&AccountId> = req.legs().into_iter().map(|(a, _)| a).collect();
    let currencies = currencies_of(state, &accounts).await?;
    let known: Option<Vec<Currency>> = currencies.into_iter().collect();
    let (mut failure, currency) = match known.as_deref() {
        None => (Some(FailReason::UnknownAccount), None),
        Some([first, rest @ ..]) if rest.iter().any(|c| c != first) => {
            (Some(FailReason::CurrencyMismatch), None)
        }
        Some([first, ..]) => (None, Some(*first)),
        Some([]) => {
            return Err(AccountsError::Invariant(
                "a movement without accounts".into(),
            ));
        }
    };
    for attempt in 0..TRANSACT_ATTEMPTS_MAX {
        // Stamped per attempt: the record's time is at most one `transact` before its commit,
        // which the report's settle delay relies on.
        let now = state.clock.now();
        let record = req.record(format_timestamp(now), failure);
        let plan = plan(req, &record, currency, now);
        let error = match state.table.transact(plan.writes).await {
            Ok(()) => {
                return Ok(MoveResult {
                    record,
                    replayed: false,
                    idempotency_item: None,
                });
            }
            Err(e) => e,
        };
        if let (Some(at), Some(key)) = (plan.idempotency_at, &req.idempotency_key)
            && error.failed_condition_at(at)
        {
            return replay(state, key, &req.fingerprint).await;
        }
        if error.failed_condition_at(plan.record_at) {
            // An earlier attempt of this call committed although it reported an error.
            return Ok(MoveResult {
                record: stored_record(state, &req.transaction_id).await?,
                replayed: false,
                idempotency_item: None,
            });
        }
        if let Some(&(_, pays)) = plan
            .legs
            .iter()
            .find(|(at, _)| error.failed_condition_at(*at))
        {
            // The payer's condition is its balance (its currency is known and immutable); a
            // payee's can only fail if it does not exist.
            failure = Some(if pays {
                FailReason::InsufficientFunds
            } else {
                FailReason::UnknownAccount
            });
            continue;
        }
        if !error.is_retryable() {
            return Err(error.into());
        }
        back_off(attempt).await;
    }
    Err(AccountsError::Contended {
        attempts: TRANSACT_ATTEMPTS_MAX,
    })
}

/// The first result under `key`, if the request matches the one that used it.
pub async fn replay(
    state: &Accounts,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<MoveResult, AccountsError> {
    let item = state
        .table
        .get(&layout::idem_key(key))
        .await?
        .ok_or_else(|| AccountsError::Invariant("an idempotency record vanished".into()))?;
    if item.s(attr::FINGERPRINT) != Some(fingerprint) {
        return Err(AccountsError::Conflict(
            "this Idempotency-Key was already used for a different request".to_owned(),
        ));
    }
    let transaction_id = item
        .s(attr::TRANSACTION_ID)
        .ok_or_else(|| layout::CorruptItem {
            key: format!("IDEM#{}", key.as_str()),
            attr: attr::TRANSACTION_ID,
        })?;
    Ok(MoveResult {
        record: stored_record(state, transaction_id).await?,
        replayed: true,
        idempotency_item: Some(item),
    })
}

async fn stored_record(state: &Accounts, transaction_id: &str) -> Result<TxRecord, AccountsError> {
    let item = state
        .table
        .get(&layout::tx_key(transaction_id))
        .await?
        .ok_or_else(|| {
            AccountsError::Invariant("a committed transaction record is missing".into())
        })?;
    Ok(layout::tx_from_item(&item)?)
}

async fn back_off(attempt: usize) {
    let exp = BACKOFF_BASE_MS.saturating_mul(1u64 << attempt.min(16));
    let ms = exp.min(BACKOFF_MAX_MS);
    // Jitter spreads retries of transfers that collided on the same account.
    let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(ms + 1)) as u64;
    tokio::time::sleep(Duration::from_millis(ms / 2 + jitter / 2)).await;
}

/// `POST /api/v1/transaction`.
pub(crate) async fn transfer(
    state: &Accounts,
    body: &Object,
    key: Option<IdempotencyKey>,
) -> Result<MoveResult, AccountsError> {
    let src = fields::account_id(body, "src_account_id")?;
    let dst = fields::account_id(body, "dst_account_id")?;
    let amount = fields::positive_amount(body, "amount")?;
    let direction = fields::direction(body, "direction")?;
    if src == dst {
        return Err(AccountsError::invalid(
            "dst_account_id",
            "must differ from src_account_id",
        ));
    }
    execute(
        state,
        &MoveRequest::transfer(src, dst, amount, direction, key),
    )
    .await
}

/// `POST /api/v1/bank_transactions`.
pub(crate) async fn bank_transaction(
    state: &Accounts,
    body: &Object,
    key: Option<IdempotencyKey>,
) -> Result<MoveResult, AccountsError> {
    let account = fields::account_id(body, "dst_account_id")?;
    let amount = fields::positive_amount(body, "amount")?;
    let direction = fields::direction(body, "direction")?;
    let reason = fields::text(body, "reason")?;
    execute(
        state,
        &MoveRequest::bank(account, amount, direction, reason, key),
    )
    .await
}
