//! The key design of the accounts table (`resources::ACCOUNTS_TABLE`), one table for the flow:
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | account | `ACCOUNT#{account_id}` | `ACCOUNT` | |
//! | transaction | `TX#{transaction_id}` | `TX` | gsi1: `TXDAY#{date}` / `{timestamp}#{transaction_id}` |
//! | idempotency record | `IDEM#{key}` | `IDEM` | |
//! | closed day's totals | `TXDAYAGG#{date}` | `AGG` | |
//! | advance | `ADVANCE#{advance_id}` | `ADVANCE` | gsi1: `ADVANCES#{shard}` / `{created_at}#{advance_id}` |
//! | instalment | `ADVANCE#{advance_id}` | `INST#{nnn}` | gsi2 while open: `DUE#{shard}` / `{due_date}#{advance_id}#{nnn}` |
//!
//! - gsi1 lists a day's transactions in time order (the report is a query, not a scan) and,
//!   overloaded, every advance (the auditor's list).
//! - gsi2 is sparse: an instalment is in it only while `due` or `in_progress`, so the
//!   collector's query `sk <= {today}#~` returns exactly the instalments to collect.
//! - Shards spread the advance and due-date partitions over several index partitions, so no
//!   one index partition takes every write.
//! - An advance and its instalments share a partition: one query reads a whole schedule.

use chrono::NaiveDate;
use payops_core::Currency;
use payops_core::accounts::{
    AccountId, Direction, FailReason, IdempotencyKey, InstalmentStatus, InstalmentView, TxKind,
    TxStatus, format_amount,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::ports::{Item, Key};

pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1_pk";
pub const GSI1_SK: &str = "gsi1_sk";
pub const GSI2: &str = "gsi2";
pub const GSI2_PK: &str = "gsi2_pk";
pub const GSI2_SK: &str = "gsi2_sk";

/// Partitions of the advances list in gsi1.
pub const ADVANCE_INDEX_SHARDS: u32 = 4;
/// Partitions of the due-instalments index gsi2.
pub const DUE_INDEX_SHARDS: u32 = 4;

/// Sorts after every character of an id or a timestamp: `{prefix}#~` bounds a range from above.
const SORT_KEY_HIGH: &str = "~";

pub mod attr {
    pub const ACCOUNT_ID: &str = "account_id";
    pub const BALANCE: &str = "balance";
    pub const CURRENCY: &str = "currency";
    pub const CREATED_AT: &str = "created_at";
    pub const TRANSACTION_ID: &str = "transaction_id";
    pub const TRANSACTION_TIMESTAMP: &str = "transaction_timestamp";
    pub const SRC_ACCOUNT_ID: &str = "src_account_id";
    pub const DST_ACCOUNT_ID: &str = "dst_account_id";
    pub const AMOUNT: &str = "amount";
    pub const DIRECTION: &str = "direction";
    pub const STATUS: &str = "status";
    pub const REASON: &str = "reason";
    pub const KIND: &str = "kind";
    pub const DESCRIPTION: &str = "description";
    pub const FINGERPRINT: &str = "fingerprint";
    pub const ADVANCE_ID: &str = "advance_id";
    pub const DISBURSEMENT_TRANSACTION_ID: &str = "disbursement_transaction_id";
    pub const NUMBER: &str = "number";
    pub const DUE_DATE: &str = "due_date";
    pub const ROUND: &str = "round";
    pub const ATTEMPTS: &str = "attempts";
    pub const LEASE_OWNER: &str = "lease_owner";
    pub const LEASE_EXPIRES_MS: &str = "lease_expires_ms";
    pub const ROLLED_INTO: &str = "rolled_into";
    pub const PAID_AT: &str = "paid_at";
    pub const FAILED_AT: &str = "failed_at";
    pub const COUNT: &str = "count";
    pub const TOTAL_AMOUNT: &str = "total_amount";
}

pub const ACCOUNT_SK: &str = "ACCOUNT";
pub const TX_SK: &str = "TX";
pub const IDEM_SK: &str = "IDEM";
pub const DAY_AGG_SK: &str = "AGG";
pub const ADVANCE_SK: &str = "ADVANCE";
pub const INSTALMENT_SK_PREFIX: &str = "INST#";

/// A stored item this code could not have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored item {key} has a missing or invalid {attr}")]
pub struct CorruptItem {
    pub key: String,
    pub attr: &'static str,
}

/// Names a stored item in an error without the customer data some keys hold (account ids,
/// client idempotency keys): those keys are shown as `ACCOUNT#***`.
fn corrupt(item: &Item, attr: &'static str) -> CorruptItem {
    let key = item.key().map_or_else(
        || "?".to_owned(),
        |k| {
            let pk = match k.pk.split_once('#') {
                Some((kind @ ("ACCOUNT" | "IDEM"), _)) => format!("{kind}#***"),
                _ => k.pk.clone(),
            };
            format!("{pk}/{}", k.sk)
        },
    );
    CorruptItem { key, attr }
}

fn s<'a>(item: &'a Item, attr: &'static str) -> Result<&'a str, CorruptItem> {
    item.s(attr).ok_or_else(|| corrupt(item, attr))
}

fn n(item: &Item, attr: &'static str) -> Result<Decimal, CorruptItem> {
    item.n(attr).ok_or_else(|| corrupt(item, attr))
}

fn parsed<T: std::str::FromStr>(item: &Item, attr: &'static str) -> Result<T, CorruptItem> {
    s(item, attr)?.parse().map_err(|_| corrupt(item, attr))
}

fn small_int(item: &Item, attr: &'static str) -> Result<u32, CorruptItem> {
    n(item, attr)?.to_u32().ok_or_else(|| corrupt(item, attr))
}

/// FNV-1a: a stable hash, so an id lands in the same shard in every process and release.
pub fn shard_of(id: &str, shards: u32) -> u32 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % u64::from(shards.max(1))) as u32
}

fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

// ---- accounts -------------------------------------------------------------------------------

pub fn account_key(id: &AccountId) -> Key {
    Key::new(format!("ACCOUNT#{}", id.as_str()), ACCOUNT_SK)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub account_id: AccountId,
    pub balance: Decimal,
    pub currency: Currency,
    pub created_at: String,
}

pub fn account_item(account: &AccountRecord) -> Item {
    Item::new(&account_key(&account.account_id))
        .with(attr::ACCOUNT_ID, account.account_id.as_str())
        .with(attr::BALANCE, account.balance)
        .with(attr::CURRENCY, account.currency.as_str())
        .with(attr::CREATED_AT, account.created_at.as_str())
}

pub fn account_from_item(item: &Item) -> Result<AccountRecord, CorruptItem> {
    Ok(AccountRecord {
        account_id: AccountId::parse(s(item, attr::ACCOUNT_ID)?)
            .map_err(|_| corrupt(item, attr::ACCOUNT_ID))?,
        balance: n(item, attr::BALANCE)?,
        currency: parsed(item, attr::CURRENCY)?,
        created_at: s(item, attr::CREATED_AT)?.to_owned(),
    })
}

/// The JSON of an account: amounts as two-decimal strings.
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub balance: String,
    pub currency: String,
}

impl From<&AccountRecord> for AccountView {
    fn from(a: &AccountRecord) -> Self {
        AccountView {
            account_id: a.account_id.as_str().to_owned(),
            balance: format_amount(a.balance),
            currency: a.currency.as_str().to_owned(),
        }
    }
}

// ---- transactions ---------------------------------------------------------------------------

pub fn tx_key(transaction_id: &str) -> Key {
    Key::new(format!("TX#{transaction_id}"), TX_SK)
}

pub fn idem_key(key: &IdempotencyKey) -> Key {
    Key::new(format!("IDEM#{}", key.as_str()), IDEM_SK)
}

/// The gsi1 partition of a day's transactions.
pub fn report_partition(day: NaiveDate) -> String {
    format!("TXDAY#{}", date_text(day))
}

pub fn report_sort_key(timestamp: &str, transaction_id: &str) -> String {
    format!("{timestamp}#{transaction_id}")
}

/// The highest gsi1 sort key of a transaction stamped `timestamp`.
pub fn report_sort_key_upper(timestamp: &str) -> String {
    format!("{timestamp}#{SORT_KEY_HIGH}")
}

pub fn day_aggregate_key(day: NaiveDate) -> Key {
    Key::new(format!("TXDAYAGG#{}", date_text(day)), DAY_AGG_SK)
}

/// A decided transaction: a transfer or a bank transaction, successful or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    pub transaction_id: String,
    pub transaction_timestamp: String,
    pub kind: TxKind,
    /// `None` for a bank transaction: the bank is the other side.
    pub src_account_id: Option<AccountId>,
    pub dst_account_id: AccountId,
    pub amount: Decimal,
    pub direction: Direction,
    pub status: TxStatus,
    pub reason: Option<FailReason>,
    /// The `reason` a bank transaction was requested with.
    pub description: Option<String>,
}

pub fn tx_item(tx: &TxRecord, day: NaiveDate) -> Item {
    let mut item = Item::new(&tx_key(&tx.transaction_id))
        .with(attr::TRANSACTION_ID, tx.transaction_id.as_str())
        .with(
            attr::TRANSACTION_TIMESTAMP,
            tx.transaction_timestamp.as_str(),
        )
        .with(attr::KIND, tx.kind.as_str())
        .with(attr::DST_ACCOUNT_ID, tx.dst_account_id.as_str())
        .with(attr::AMOUNT, tx.amount)
        .with(attr::DIRECTION, tx.direction.as_str())
        .with(attr::STATUS, tx.status.as_str())
        .with(GSI1_PK, report_partition(day))
        .with(
            GSI1_SK,
            report_sort_key(&tx.transaction_timestamp, &tx.transaction_id),
        );
    if let Some(src) = &tx.src_account_id {
        item.set(attr::SRC_ACCOUNT_ID, src.as_str());
    }
    if let Some(reason) = tx.reason {
        item.set(attr::REASON, reason.as_str());
    }
    if let Some(description) = &tx.description {
        item.set(attr::DESCRIPTION, description.as_str());
    }
    item
}

pub fn tx_from_item(item: &Item) -> Result<TxRecord, CorruptItem> {
    let account = |a: &'static str| -> Result<AccountId, CorruptItem> {
        AccountId::parse(s(item, a)?).map_err(|_| corrupt(item, a))
    };
    Ok(TxRecord {
        transaction_id: s(item, attr::TRANSACTION_ID)?.to_owned(),
        transaction_timestamp: s(item, attr::TRANSACTION_TIMESTAMP)?.to_owned(),
        kind: parsed(item, attr::KIND)?,
        src_account_id: match item.get(attr::SRC_ACCOUNT_ID) {
            Some(_) => Some(account(attr::SRC_ACCOUNT_ID)?),
            None => None,
        },
        dst_account_id: account(attr::DST_ACCOUNT_ID)?,
        amount: n(item, attr::AMOUNT)?,
        direction: parsed(item, attr::DIRECTION)?,
        status: parsed(item, attr::STATUS)?,
        reason: match item.get(attr::REASON) {
            Some(_) => Some(parsed(item, attr::REASON)?),
            None => None,
        },
        description: item.s(attr::DESCRIPTION).map(str::to_owned),
    })
}

/// What a transaction adds to a report's `total_amount`: its amount when it succeeded.
pub fn tx_report_amount(item: &Item) -> Result<Decimal, CorruptItem> {
    let status: TxStatus = parsed(item, attr::STATUS)?;
    match status {
        TxStatus::Success => n(item, attr::AMOUNT),
        TxStatus::Fail => Ok(Decimal::ZERO),
    }
}

/// The JSON of a transaction, as the issue names its fields.
#[derive(Debug, Serialize)]
pub struct TxView {
    pub transaction_id: String,
    pub transaction_timestamp: String,
    pub src_account_id: Option<String>,
    pub dst_account_id: String,
    pub amount: String,
    pub direction: &'static str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl From<&TxRecord> for TxView {
    fn from(tx: &TxRecord) -> Self {
        TxView {
            transaction_id: tx.transaction_id.clone(),
            transaction_timestamp: tx.transaction_timestamp.clone(),
            src_account_id: tx.src_account_id.as_ref().map(|a| a.as_str().to_owned()),
            dst_account_id: tx.dst_account_id.as_str().to_owned(),
            amount: format_amount(tx.amount),
            direction: tx.direction.as_str(),
            status: tx.status.as_str(),
            reason: tx.reason.map(FailReason::as_str),
            kind: tx.kind.as_str(),
            description: tx.description.clone(),
        }
    }
}

// ---- advances -------------------------------------------------------------------------------

pub fn advance_partition(advance_id: &str) -> String {
    format!("ADVANCE#{advance_id}")
}

pub fn advance_key(advance_id: &str) -> Key {
    Key::new(advance_partition(advance_id), ADVANCE_SK)
}

pub fn instalment_sk(number: u32) -> String {
    format!("{INSTALMENT_SK_PREFIX}{number:03}")
}

pub fn instalment_key(advance_id: &str, number: u32) -> Key {
    Key::new(advance_partition(advance_id), instalment_sk(number))
}

pub fn advances_partition(shard: u32) -> String {
    format!("ADVANCES#{shard}")
}

pub fn due_partition(shard: u32) -> String {
    format!("DUE#{shard}")
}

pub fn due_sort_key(due_date: NaiveDate, advance_id: &str, number: u32) -> String {
    format!("{}#{advance_id}#{number:03}", date_text(due_date))
}

/// The highest gsi2 sort key of an instalment due on `day`.
pub fn due_sort_key_upper(day: NaiveDate) -> String {
    format!("{}#{SORT_KEY_HIGH}", date_text(day))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvanceRecord {
    pub advance_id: String,
    pub account_id: AccountId,
    pub amount: Decimal,
    pub currency: Currency,
    pub created_at: String,
    pub disbursement_transaction_id: String,
}

pub fn advance_item(a: &AdvanceRecord) -> Item {
    let shard = shard_of(&a.advance_id, ADVANCE_INDEX_SHARDS);
    Item::new(&advance_key(&a.advance_id))
        .with(attr::ADVANCE_ID, a.advance_id.as_str())
        .with(attr::ACCOUNT_ID, a.account_id.as_str())
        .with(attr::AMOUNT, a.amount)
        .with(attr::CURRENCY, a.currency.as_str())
        .with(attr::CREATED_AT, a.created_at.as_str())
        .with(
            attr::DISBURSEMENT_TRANSACTION_ID,
            a.disbursement_transaction_id.as_str(),
        )
        .with(GSI1_PK, advances_partition(shard))
        .with(GSI1_SK, format!("{}#{}", a.created_at, a.advance_id))
}

pub fn advance_from_item(item: &Item) -> Result<AdvanceRecord, CorruptItem> {
    Ok(AdvanceRecord {
        advance_id: s(item, attr::ADVANCE_ID)?.to_owned(),
        account_id: AccountId::parse(s(item, attr::ACCOUNT_ID)?)
            .map_err(|_| corrupt(item, attr::ACCOUNT_ID))?,
        amount: n(item, attr::AMOUNT)?,
        currency: parsed(item, attr::CURRENCY)?,
        created_at: s(item, attr::CREATED_AT)?.to_owned(),
        disbursement_transaction_id: s(item, attr::DISBURSEMENT_TRANSACTION_ID)?.to_owned(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalmentRecord {
    pub advance_id: String,
    pub account_id: AccountId,
    pub number: u32,
    pub amount: Decimal,
    pub due_date: NaiveDate,
    pub status: InstalmentStatus,
    /// Debit rounds: raised only when a failed instalment is rescheduled in place, so every
    /// round has its own debit idempotency key and a crash retry keeps the same one.
    pub round: u32,
    pub attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub transaction_id: Option<String>,
    pub rolled_into: Option<u32>,
    pub paid_at: Option<String>,
}

impl InstalmentRecord {
    pub fn key(&self) -> Key {
        instalment_key(&self.advance_id, self.number)
    }

    pub fn view(&self) -> InstalmentView {
        InstalmentView {
            number: self.number,
            status: self.status,
            amount: self.amount,
            due_date: self.due_date,
        }
    }

    /// The idempotency key of this instalment's debit in its current round.
    pub fn debit_key(&self) -> IdempotencyKey {
        IdempotencyKey::internal(&[
            "INST",
            &self.advance_id,
            &format!("{:03}", self.number),
            &self.round.to_string(),
        ])
    }
}

/// The gsi2 attributes of an open (`due` or `in_progress`) instalment.
pub fn due_index_attrs(
    advance_id: &str,
    number: u32,
    due_date: NaiveDate,
) -> [(&'static str, String); 2] {
    [
        (
            GSI2_PK,
            due_partition(shard_of(advance_id, DUE_INDEX_SHARDS)),
        ),
        (GSI2_SK, due_sort_key(due_date, advance_id, number)),
    ]
}

pub fn instalment_item(i: &InstalmentRecord) -> Item {
    let mut item = Item::new(&i.key())
        .with(attr::ADVANCE_ID, i.advance_id.as_str())
        .with(attr::ACCOUNT_ID, i.account_id.as_str())
        .with(attr::NUMBER, i64::from(i.number))
        .with(attr::AMOUNT, i.amount)
        .with(attr::DUE_DATE, date_text(i.due_date))
        .with(attr::STATUS, i.status.as_str())
        .with(attr::ROUND, i64::from(i.round))
        .with(attr::ATTEMPTS, i64::from(i.attempts));
    if matches!(
        i.status,
        InstalmentStatus::Due | InstalmentStatus::InProgress
    ) {
        for (name, value) in due_index_attrs(&i.advance_id, i.number, i.due_date) {
            item.set(name, value);
        }
    }
    if let Some(owner) = &i.lease_owner {
        item.set(attr::LEASE_OWNER, owner.as_str());
    }
    if let Some(ms) = i.lease_expires_ms {
        item.set(attr::LEASE_EXPIRES_MS, ms);
    }
    if let Some(tx) = &i.transaction_id {
        item.set(attr::TRANSACTION_ID, tx.as_str());
    }
    if let Some(n) = i.rolled_into {
        item.set(attr::ROLLED_INTO, i64::from(n));
    }
    if let Some(at) = &i.paid_at {
        item.set(attr::PAID_AT, at.as_str());
    }
    item
}

pub fn instalment_from_item(item: &Item) -> Result<InstalmentRecord, CorruptItem> {
    let due_date = NaiveDate::parse_from_str(s(item, attr::DUE_DATE)?, "%Y-%m-%d")
        .map_err(|_| corrupt(item, attr::DUE_DATE))?;
    let optional_int = |a: &'static str| -> Result<Option<u32>, CorruptItem> {
        match item.get(a) {
            Some(_) => small_int(item, a).map(Some),
            None => Ok(None),
        }
    };
    Ok(InstalmentRecord {
        advance_id: s(item, attr::ADVANCE_ID)?.to_owned(),
        account_id: AccountId::parse(s(item, attr::ACCOUNT_ID)?)
            .map_err(|_| corrupt(item, attr::ACCOUNT_ID))?,
        number: small_int(item, attr::NUMBER)?,
        amount: n(item, attr::AMOUNT)?,
        due_date,
        status: parsed(item, attr::STATUS)?,
        round: small_int(item, attr::ROUND)?,
        attempts: small_int(item, attr::ATTEMPTS)?,
        lease_owner: item.s(attr::LEASE_OWNER).map(str::to_owned),
        lease_expires_ms: match item.get(attr::LEASE_EXPIRES_MS) {
            Some(_) => Some(
                n(item, attr::LEASE_EXPIRES_MS)?
                    .to_i64()
                    .ok_or_else(|| corrupt(item, attr::LEASE_EXPIRES_MS))?,
            ),
            None => None,
        },
        transaction_id: item.s(attr::TRANSACTION_ID).map(str::to_owned),
        rolled_into: optional_int(attr::ROLLED_INTO)?,
        paid_at: item.s(attr::PAID_AT).map(str::to_owned),
    })
}

#[derive(Debug, Serialize)]
pub struct InstalmentJson {
    pub number: u32,
    pub amount: String,
    pub due_date: String,
    pub status: &'static str,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_into: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<String>,
}

impl From<&InstalmentRecord> for InstalmentJson {
    fn from(i: &InstalmentRecord) -> Self {
        InstalmentJson {
            number: i.number,
            amount: format_amount(i.amount),
            due_date: date_text(i.due_date),
            status: i.status.as_str(),
            attempts: i.attempts,
            transaction_id: i.transaction_id.clone(),
            rolled_into: i.rolled_into,
            paid_at: i.paid_at.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str) -> AccountId {
        AccountId::parse(id).expect("valid test id")
    }

    #[test]
    fn transaction_items_round_trip_and_sit_in_the_day_index() {
        let tx = TxRecord {
            transaction_id: "0190-a".into(),
            transaction_timestamp: "2024-05-01T10:00:00.000Z".into(),
            kind: TxKind::Transfer,
            src_account_id: Some(account("a")),
            dst_account_id: account("b"),
            amount: Decimal::new(1050, 2),
            direction: Direction::Credit,
            status: TxStatus::Fail,
            reason: Some(FailReason::InsufficientFunds),
            description: None,
        };
        let day = NaiveDate::from_ymd_opt(2024, 5, 1).expect("valid date");
        let item = tx_item(&tx, day);
        assert_eq!(item.s(GSI1_PK), Some("TXDAY#2024-05-01"));
        assert_eq!(item.s(GSI1_SK), Some("2024-05-01T10:00:00.000Z#0190-a"));
        assert!(item.s(GSI1_SK) < Some(report_sort_key_upper("2024-05-01T10:00:00.000Z").as_str()));
        assert_eq!(tx_from_item(&item), Ok(tx));
    }

    #[test]
    fn instalments_leave_the_due_index_when_closed() {
        let mut i = InstalmentRecord {
            advance_id: "adv".into(),
            account_id: account("a"),
            number: 3,
            amount: Decimal::new(833, 2),
            due_date: NaiveDate::from_ymd_opt(2024, 5, 8).expect("valid date"),
            status: InstalmentStatus::Due,
            round: 0,
            attempts: 0,
            lease_owner: None,
            lease_expires_ms: None,
            transaction_id: None,
            rolled_into: None,
            paid_at: None,
        };
        let item = instalment_item(&i);
        assert_eq!(item.key(), Some(Key::new("ADVANCE#adv", "INST#003")));
        assert_eq!(item.s(GSI2_SK), Some("2024-05-08#adv#003"));
        assert_eq!(instalment_from_item(&item), Ok(i.clone()));
        i.status = InstalmentStatus::Paid;
        assert_eq!(instalment_item(&i).get(GSI2_PK), None);
        assert!(i.debit_key().as_str().contains("#INST#adv#003#0"));
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard_of("abc", 4), shard_of("abc", 4));
        assert!((0..200).all(|n| shard_of(&n.to_string(), 4) < 4));
    }
}
