//! The key design of the payroll table (`resources::PAYROLL_TABLE`):
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | batch | `BATCH#{batch}` | `BATCH` | gsi1: `BATCHES` / `{created_at}#{batch}` |
//! | first batch of a file content | `HASH#{sha256}` | `HASH` | |
//! | per-source aggregate | `BATCH#{batch}` | `SRC#{source}` | |
//! | per-branch aggregate | `BATCH#{batch}` | `BR#{branch}` | |
//! | payment | `BATCH#{batch}` | `PAY#{row:07}` | |
//! | employee of a batch (PII, rows) | `BATCH#{batch}` | `EMP#{employee}` | |
//! | payer of a batch (PII) | `BATCH#{batch}` | `PAYER#{payer}` | |
//! | materialisation chunk marker | `BATCH#{batch}` | `CHUNK#{n:06}` | |
//! | provider entity of a party | `PARTY#{EMP or PAYER}#{id}` | `ENTITY` | |
//! | provider account of a party | `PARTY#{EMP or PAYER}#{id}` | `ACCT#{fingerprint}` | |
//! | ledger transaction | `LEDGER#{batch}` | `{payment}#{kind}` | |
//! | the nightly check's place in the provider's listing | `CHECK#PROVIDER` | `LISTING` | |
//!
//! - A batch's payments, aggregates and markers share one partition: one query pages a
//!   batch in row order (reports), and the aggregates come back in one short query (`SRC#`,
//!   `BR#`).
//! - Payment ids are `{batch}-r{row}`: the provider echoes them as `external_id`, so a
//!   webhook finds its payment by key without an index.
//! - The webhook event that moved a payment to a status is kept on the payment itself
//!   ([`applied_event_attr`]): a status is reached at most once, so one attribute per status
//!   recognises every redelivery, with no item of its own to write for each event.
//! - Party items outlive batches: an employee is provisioned at the provider once, ever.
//!   Account fingerprints are hashes, so no account number appears in a key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use payops_core::payroll::PaymentStatus;
use payops_core::payroll::ledger::{Entry, LedgerKind, LedgerTransaction};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::ports::{Item, Key, UpdateAction, Value};

pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1_pk";
pub const GSI1_SK: &str = "gsi1_sk";
/// The gsi1 partition that lists every batch.
pub const BATCHES_PARTITION: &str = "BATCHES";

pub const BATCH_SK: &str = "BATCH";
pub const HASH_SK: &str = "HASH";
pub const SOURCE_PREFIX: &str = "SRC#";
pub const BRANCH_PREFIX: &str = "BR#";
pub const PAYMENT_PREFIX: &str = "PAY#";
pub const EMPLOYEE_PREFIX: &str = "EMP#";
pub const PAYER_PREFIX: &str = "PAYER#";
pub const CHUNK_PREFIX: &str = "CHUNK#";
pub const ENTITY_SK: &str = "ENTITY";
pub const ACCOUNT_PREFIX: &str = "ACCT#";

pub mod attr {
    pub const BATCH_ID: &str = "batch_id";
    /// The workflow's last progress check: when, how many payments were final, and the wait
    /// it chose (see `workflow::next_wait_seconds`).
    pub const PROGRESS_CHECKED_MS: &str = "progress_checked_ms";
    pub const PROGRESS_CHECKED_DONE: &str = "progress_checked_done";
    pub const PROGRESS_WAIT_SECONDS: &str = "progress_wait_seconds";
    pub const STATUS: &str = "status";
    pub const CREATED_AT: &str = "created_at";
    pub const FILE_NAME: &str = "file_name";
    pub const FILE_KEY: &str = "file_key";
    pub const SUMMARY_KEY: &str = "summary_key";
    pub const SHA256: &str = "sha256";
    pub const DUPLICATE_OF: &str = "duplicate_of";
    pub const ROWS: &str = "rows";
    pub const TOTAL: &str = "total";
    pub const ERRORS: &str = "errors";
    pub const WARNINGS: &str = "warnings";
    pub const SOURCES: &str = "sources";
    pub const BRANCHES: &str = "branches";
    pub const TASK_TOKEN: &str = "task_token";
    pub const APPROVED_AT: &str = "approved_at";
    pub const APPROVED_BY: &str = "approved_by";
    pub const ETA_SECONDS: &str = "eta_seconds";
    pub const MATERIALISED_AT: &str = "materialised_at";
    pub const ENQUEUED_AT: &str = "enqueued_at";
    pub const COMPLETED_AT: &str = "completed_at";
    /// Why the workflow stopped (`FAILED`): the Step Functions error and its cause.
    pub const WORKFLOW_ERROR: &str = "workflow_error";
    pub const WORKFLOW_CAUSE: &str = "workflow_cause";
    pub const FAILED_AT: &str = "failed_at";
    /// How many times the workflow was started again after failing.
    pub const RESUMES: &str = "resumes";
    /// The name of the batch's current execution once it was resumed (absent: the batch id,
    /// the name of its first execution).
    pub const EXECUTION: &str = "execution";
    /// When it was last resumed.
    pub const RESUMED_AT: &str = "resumed_at";
    pub const REPORTS_PREFIX: &str = "reports_prefix";
    pub const EMPLOYEES: &str = "employees";
    // Payments.
    pub const PAYMENT_ID: &str = "payment_id";
    pub const ROW: &str = "row";
    pub const AMOUNT: &str = "amount";
    pub const SOURCE_ID: &str = "source_id";
    pub const BRANCH_ID: &str = "branch_id";
    pub const EMPLOYEE_ID: &str = "employee_id";
    pub const PLAID_ID: &str = "plaid_id";
    pub const LOAN_FINGERPRINT: &str = "loan_fingerprint";
    pub const SOURCE_FINGERPRINT: &str = "source_fingerprint";
    pub const PROVIDER_PAYMENT_ID: &str = "provider_payment_id";
    pub const UPDATED_AT: &str = "updated_at";
    pub const SETTLED_BEFORE: &str = "settled_before";
    pub const FAILURE_REASON: &str = "failure_reason";
    /// Followed by a status: `event_SETTLED` (see [`super::applied_event_attr`]).
    pub const APPLIED_EVENT_PREFIX: &str = "event_";
    // Aggregates.
    pub const OWED_COUNT: &str = "owed_count";
    pub const OWED_TOTAL: &str = "owed_total";
    // Parties.
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    pub const DATE_OF_BIRTH: &str = "date_of_birth";
    pub const PHONE: &str = "phone";
    pub const LOAN_ACCOUNT_NUMBER: &str = "loan_account_number";
    pub const ROUTING: &str = "routing";
    pub const ACCOUNT_NUMBER: &str = "account_number";
    pub const NAME: &str = "name";
    pub const DBA: &str = "dba";
    pub const EIN: &str = "ein";
    pub const LINE1: &str = "line1";
    pub const CITY: &str = "city";
    pub const STATE: &str = "state";
    pub const ZIP: &str = "zip";
    pub const PROVIDER_ID: &str = "provider_id";
    pub const CLAIM_STATE: &str = "claim_state";
    pub const CLAIMED_UNTIL_MS: &str = "claimed_until_ms";
    // Ledger.
    pub const KIND: &str = "kind";
    pub const ENTRIES: &str = "entries";
    pub const ACCOUNT: &str = "account";
    pub const WRITTEN_AT: &str = "written_at";
}

pub fn batch_partition(batch_id: &str) -> String {
    format!("BATCH#{batch_id}")
}
pub fn batch_key(batch_id: &str) -> Key {
    Key::new(batch_partition(batch_id), BATCH_SK)
}
pub fn hash_key(sha256: &str) -> Key {
    Key::new(format!("HASH#{sha256}"), HASH_SK)
}
pub fn source_key(batch_id: &str, source: &str) -> Key {
    Key::new(
        batch_partition(batch_id),
        format!("{SOURCE_PREFIX}{source}"),
    )
}
pub fn branch_key(batch_id: &str, branch: &str) -> Key {
    Key::new(
        batch_partition(batch_id),
        format!("{BRANCH_PREFIX}{branch}"),
    )
}
pub fn payment_key(batch_id: &str, row: u32) -> Key {
    Key::new(
        batch_partition(batch_id),
        format!("{PAYMENT_PREFIX}{row:07}"),
    )
}
pub fn employee_key(batch_id: &str, employee: &str) -> Key {
    Key::new(
        batch_partition(batch_id),
        format!("{EMPLOYEE_PREFIX}{employee}"),
    )
}
pub fn payer_key(batch_id: &str, payer: &str) -> Key {
    Key::new(batch_partition(batch_id), format!("{PAYER_PREFIX}{payer}"))
}
pub fn chunk_key(batch_id: &str, chunk: usize) -> Key {
    Key::new(
        batch_partition(batch_id),
        format!("{CHUNK_PREFIX}{chunk:06}"),
    )
}
pub fn ledger_partition(batch_id: &str) -> String {
    format!("LEDGER#{batch_id}")
}
pub fn ledger_key(batch_id: &str, tx: &LedgerTransaction) -> Key {
    Key::new(ledger_partition(batch_id), tx.id.clone())
}
/// The payment's attribute holding the id of the webhook event that moved it to `status`.
pub fn applied_event_attr(status: PaymentStatus) -> String {
    format!("{}{}", attr::APPLIED_EVENT_PREFIX, status.as_str())
}
/// Where the nightly check starts reading the provider's listing (`check::provider`).
pub fn provider_checkpoint_key() -> Key {
    Key::new("CHECK#PROVIDER", "LISTING")
}

/// Who a provider party is: an employee (individual) or a payer (corporation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartyKind {
    Employee,
    Payer,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Employee => "EMP",
            PartyKind::Payer => "PAYER",
        }
    }
}

pub fn party_partition(kind: PartyKind, id: &str) -> String {
    format!("PARTY#{}#{id}", kind.as_str())
}
pub fn entity_key(kind: PartyKind, id: &str) -> Key {
    Key::new(party_partition(kind, id), ENTITY_SK)
}
pub fn party_account_key(kind: PartyKind, id: &str, fingerprint: &str) -> Key {
    Key::new(
        party_partition(kind, id),
        format!("{ACCOUNT_PREFIX}{fingerprint}"),
    )
}

/// Hex characters of an account fingerprint: 64 bits are plenty to tell one party's accounts
/// apart, and a key carries no account number.
const FINGERPRINT_HEX: usize = 16;

/// A stable, non-reversible name for an account number (with its routing or loan servicer).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let mut hex = hex::encode(h.finalize());
    hex.truncate(FINGERPRINT_HEX);
    hex
}

/// How errors and logs name an employee: a fingerprint of the id, never the id itself (ids
/// are personal data). Ops compare it with `fingerprint(&[id])` of a suspect id.
pub fn employee_ref(employee_id: &str) -> String {
    format!("employee #{}", fingerprint(&[employee_id]))
}

pub fn payment_id(batch_id: &str, row: u32) -> String {
    format!("{batch_id}-r{row}")
}

/// `{batch}-r{row}` → (batch, row).
pub fn parse_payment_id(id: &str) -> Option<(&str, u32)> {
    let (batch, row) = id.rsplit_once("-r")?;
    let row: u32 = row.parse().ok()?;
    (!batch.is_empty() && row > 0).then_some((batch, row))
}

/// Attribute names of a status's count and amount on an aggregate.
pub fn count_attr(status: PaymentStatus) -> String {
    format!("count_{}", status.lower())
}
pub fn amount_attr(status: PaymentStatus) -> String {
    format!("amount_{}", status.lower())
}

/// The aggregate changes of one payment moving `from` → `to`.
pub fn move_actions(from: PaymentStatus, to: PaymentStatus, amount: Decimal) -> Vec<UpdateAction> {
    vec![
        UpdateAction::add(&count_attr(from), Decimal::NEGATIVE_ONE),
        UpdateAction::add(&amount_attr(from), -amount),
        UpdateAction::add(&count_attr(to), Decimal::ONE),
        UpdateAction::add(&amount_attr(to), amount),
    ]
}

pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A ledger transaction as an item; checked for balance right before it is built.
pub fn ledger_item(
    batch_id: &str,
    tx: &LedgerTransaction,
    at: &str,
) -> Result<Item, payops_core::payroll::ledger::LedgerError> {
    tx.check()?;
    let entries = tx
        .entries
        .iter()
        .map(|e| {
            Value::M(BTreeMap::from([
                (attr::ACCOUNT.to_owned(), Value::S(e.account.clone())),
                (attr::AMOUNT.to_owned(), Value::N(e.amount)),
            ]))
        })
        .collect();
    Ok(Item::new(&ledger_key(batch_id, tx))
        .with(attr::PAYMENT_ID, tx.payment_id.as_str())
        .with(attr::KIND, tx.kind.as_str())
        .with(attr::ENTRIES, Value::L(entries))
        .with(attr::WRITTEN_AT, at))
}

/// Reads a ledger item back; `None` if it is not one this code wrote.
pub fn ledger_from_item(item: &Item) -> Option<LedgerTransaction> {
    let kind = LedgerKind::parse(item.s(attr::KIND)?)?;
    let payment_id = item.s(attr::PAYMENT_ID)?;
    let Some(Value::L(list)) = item.get(attr::ENTRIES) else {
        return None;
    };
    let mut entries = Vec::with_capacity(list.len());
    for v in list {
        let Value::M(m) = v else { return None };
        entries.push(Entry {
            account: m.get(attr::ACCOUNT)?.as_s()?.to_owned(),
            amount: m.get(attr::AMOUNT)?.as_n()?,
        });
    }
    Some(LedgerTransaction {
        id: item.s(crate::ports::table::SK)?.to_owned(),
        payment_id: payment_id.to_owned(),
        kind,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_employee_is_named_by_a_fingerprint_that_does_not_hold_the_id() {
        let id = "EMP-0b8e6c0e-52b5-4c3a-9d0d-1c2f3e4a5b6c";
        let named = employee_ref(id);
        assert!(
            !named.contains(id) && !named.contains("0b8e6c0e"),
            "{named}"
        );
        assert_eq!(named, employee_ref(id), "stable, so ops can match it");
        assert_ne!(named, employee_ref("EMP-another"));
    }

    #[test]
    fn payment_ids_parse_back() {
        let id = payment_id("b0123abc", 42);
        assert_eq!(parse_payment_id(&id), Some(("b0123abc", 42)));
        assert_eq!(parse_payment_id("nothing"), None);
        assert_eq!(parse_payment_id("-r5"), None);
        assert_eq!(parse_payment_id("b-r0"), None);
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(payment_key("b1", 7).sk, "PAY#0000007");
        assert_eq!(entity_key(PartyKind::Payer, "P1").pk, "PARTY#PAYER#P1");
        let f = fingerprint(&["011000015", "000123"]);
        assert_eq!(f.len(), FINGERPRINT_HEX);
        assert!(!f.contains("000123"));
    }

    #[test]
    fn a_ledger_item_reads_back() {
        let tx =
            payops_core::payroll::ledger::obligation("b1-r1", "S", Decimal::new(811, 2)).unwrap();
        let item = ledger_item("b1", &tx, "2026-11-22T00:00:00.000Z").unwrap();
        assert_eq!(ledger_from_item(&item), Some(tx));
    }
}
