//! Opening and reading accounts, and the cache of their currencies.

use std::collections::HashMap;
use std::sync::Mutex;

use payops_core::Currency;
use payops_core::accounts::AccountId;
use payops_core::accounts::transaction::format_timestamp;

use super::fields::{self, Object};
use super::layout::{self, AccountRecord};
use super::{Accounts, AccountsError};
use crate::ports::table::BATCH_GET_KEYS_MAX;
use crate::ports::{Condition, Key, TableError};

/// Entries kept by [`CurrencyCache`] before it starts over (a bound on memory, ~10 MB).
pub const CURRENCY_CACHE_ENTRIES_MAX: usize = 100_000;

/// Account currencies by account id. Sound because an account's currency never changes and
/// accounts are never deleted: a cached entry can never be stale. It saves a read on every
/// transfer between known accounts, so a transfer is one `transact` call.
#[derive(Default)]
pub struct CurrencyCache {
    map: Mutex<HashMap<String, Currency>>,
}

impl CurrencyCache {
    fn get(&self, id: &AccountId) -> Option<Currency> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still a
        // valid map of immutable facts.
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id.as_str()).copied()
    }

    fn insert(&self, id: &AccountId, currency: Currency) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CURRENCY_CACHE_ENTRIES_MAX {
            map.clear();
        }
        map.insert(id.as_str().to_owned(), currency);
    }
}

/// The currency of each account, `None` for an account that does not exist.
pub(crate) async fn currencies_of(
    state: &Accounts,
    ids: &[&AccountId],
) -> Result<Vec<Option<Currency>>, AccountsError> {
    let mut found: Vec<Option<Currency>> = ids.iter().map(|id| state.currencies.get(id)).collect();
    let missing: Vec<Key> = ids
        .iter()
        .zip(&found)
        .filter(|(_, c)| c.is_none())
        .map(|(id, _)| layout::account_key(id))
        .collect();
    for chunk in missing.chunks(BATCH_GET_KEYS_MAX) {
        for item in state.table.batch_get(chunk).await? {
            let account = layout::account_from_item(&item)?;
            state
                .currencies
                .insert(&account.account_id, account.currency);
            for (id, slot) in ids.iter().zip(found.iter_mut()) {
                if **id == account.account_id {
                    *slot = Some(account.currency);
                }
            }
        }
    }
    Ok(found)
}

/// `POST /api/v1/accounts`: `{"account_id"?, "balance", "currency"?}`.
pub(crate) async fn create(
    state: &Accounts,
    body: &Object,
) -> Result<AccountRecord, AccountsError> {
    let account_id = match fields::optional_str(body, "account_id")? {
        Some(text) => {
            AccountId::parse(text).map_err(|e| AccountsError::invalid("account_id", e))?
        }
        None => AccountId::parse(&uuid::Uuid::now_v7().to_string())
            .map_err(|e| AccountsError::Invariant(format!("generated account id: {e}")))?,
    };
    let balance = fields::non_negative_amount(body, "balance")?;
    let currency = match fields::optional_str(body, "currency")? {
        None => Currency::USD,
        Some(text) => text.parse::<Currency>().map_err(|_| {
            AccountsError::invalid("currency", "must be an ISO 4217 code such as USD")
        })?,
    };
    if currency.minor_units() != 2 {
        return Err(AccountsError::invalid(
            "currency",
            format!(
                "has {} decimal places; accounts hold two-decimal currencies only",
                currency.minor_units()
            ),
        ));
    }
    let account = AccountRecord {
        account_id,
        balance,
        currency,
        created_at: format_timestamp(state.clock.now()),
    };
    match state
        .table
        .put(
            layout::account_item(&account),
            Some(Condition::ItemNotExists),
        )
        .await
    {
        Ok(()) => {
            state.currencies.insert(&account.account_id, currency);
            Ok(account)
        }
        Err(TableError::ConditionFailed) => Err(AccountsError::Conflict(
            "an account with this account_id already exists".to_owned(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/accounts/{id}`.
pub(crate) async fn get(state: &Accounts, id: &str) -> Result<AccountRecord, AccountsError> {
    let account_id = AccountId::parse(id).map_err(|e| AccountsError::invalid("account_id", e))?;
    let item = state
        .table
        .get(&layout::account_key(&account_id))
        .await?
        .ok_or_else(|| AccountsError::NotFound("no account with this account_id".to_owned()))?;
    Ok(layout::account_from_item(&item)?)
}
