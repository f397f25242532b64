//! At approval, every payment of the batch is written with status `UNPROCESSED`, all or
//! nothing, then enqueued.
//!
//! 50,000 payments do not fit one table transaction (at most 100 writes), so the writes are
//! laid out in a fixed order from the stored file (aggregates, payers, employees, then each
//! payment with its ledger obligation) and cut into chunks of `CHUNK_WRITES_MAX`; each chunk
//! is one transaction together with its own marker item (`CHUNK#n`, put only if absent). A
//! chunk is therefore written exactly once, whatever the retries; a re-run skips the chunks
//! whose marker exists. Only when every chunk is in does the batch get `materialised_at` and
//! status `PROCESSING`: before that no worker sees a payment (nothing is enqueued), so the
//! batch is never half-approved; after a crash the workflow's retry finishes the job.
//! Enqueueing comes last and may repeat: every consumer is idempotent.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use payops_core::payroll::eta::Remaining;
use payops_core::payroll::{self, PaymentStatus, PayrollRow, ledger};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::batches::{self, BatchStatus};
use super::layout::{self, PartyKind, attr};
use super::{Payroll, PayrollAppError};
use crate::ports::queue::QUEUE_BATCH_MESSAGES_MAX;
use crate::ports::table::{BATCH_GET_KEYS_MAX, TRANSACTION_WRITES_MAX};
use crate::ports::{Condition, Item, Key, OutgoingMessage, TableError, UpdateAction, Value, Write};

/// Writes of one chunk besides its marker.
pub const CHUNK_WRITES_MAX: usize = TRANSACTION_WRITES_MAX - 1;
/// Chunks written at once (DynamoDB takes them in parallel; SQLite queues them).
pub const CHUNK_CONCURRENCY: usize = 4;
/// Queue batches sent at once.
pub const ENQUEUE_CONCURRENCY: usize = 8;

/// The message that asks the accounts worker to provision one employee of a batch (and the
/// payers of its rows) and then enqueue its payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsMessage {
    pub batch_id: String,
    pub employee_id: String,
}

/// The message that asks the payments worker to create one payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMessage {
    pub batch_id: String,
    pub row: u32,
}

/// The stored file's rows (the file was approvable, so every row is valid).
pub async fn load_rows(p: &Payroll, batch_id: &str) -> Result<Vec<PayrollRow>, PayrollAppError> {
    let key = batches::file_key(batch_id);
    let blob = p
        .blobs
        .get(&key)
        .await?
        .ok_or_else(|| PayrollAppError::Corrupt(key.clone()))?;
    let parsed = tokio::task::spawn_blocking(move || payroll::parse(&blob.body))
        .await
        .map_err(|e| PayrollAppError::Join(e.to_string()))?
        .map_err(|e| PayrollAppError::Corrupt(format!("{key}: {e}")))?;
    if !parsed.summary.errors.is_empty() || parsed.rows.len() != parsed.summary.rows as usize {
        return Err(PayrollAppError::Corrupt(format!(
            "{key}: the stored file of an approvable batch has errors"
        )));
    }
    Ok(parsed.rows)
}

pub fn loan_fingerprint(row: &PayrollRow) -> String {
    layout::fingerprint(&[
        row.payee.plaid_id.as_str(),
        row.payee.loan_account_number.expose(),
    ])
}

pub fn source_fingerprint(row: &PayrollRow) -> String {
    layout::fingerprint(&[
        row.payer.routing.as_str(),
        row.payer.account_number.expose(),
    ])
}

/// What a batch still needs at the provider: employees and payers without an entity, and
/// every payment not yet created.
pub async fn remaining_work(p: &Payroll, batch_id: &str) -> Result<Remaining, PayrollAppError> {
    let rows = load_rows(p, batch_id).await?;
    let mut employees: Vec<&str> = rows.iter().map(|r| r.employee.id.as_str()).collect();
    employees.sort_unstable();
    employees.dedup();
    let mut payers: Vec<&str> = rows.iter().map(|r| r.payer.id.as_str()).collect();
    payers.sort_unstable();
    payers.dedup();
    Ok(Remaining {
        employees_to_provision: missing_entities(p, PartyKind::Employee, &employees).await?,
        payers_to_provision: missing_entities(p, PartyKind::Payer, &payers).await?,
        payments_to_create: rows.len() as u64,
    })
}

async fn missing_entities(
    p: &Payroll,
    kind: PartyKind,
    ids: &[&str],
) -> Result<u64, PayrollAppError> {
    let mut missing = 0u64;
    for chunk in ids.chunks(BATCH_GET_KEYS_MAX) {
        let keys: Vec<Key> = chunk
            .iter()
            .map(|id| layout::entity_key(kind, id))
            .collect();
        let found = p.table.batch_get(&keys).await?;
        let done = found
            .iter()
            .filter(|i| i.s(attr::PROVIDER_ID).is_some())
            .count();
        missing += (chunk.len() - done) as u64;
    }
    Ok(missing)
}

/// One thing to write, in the fixed order of the batch.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Source(usize),
    Branch(usize),
    Payer(usize),
    Employee(usize),
    /// A payment and its ledger obligation (two writes), by index into the rows.
    Payment(usize),
}

impl Unit {
    fn writes(self) -> usize {
        match self {
            Unit::Payment(_) => 2,
            _ => 1,
        }
    }
}

#[derive(Default)]
struct Group {
    count: u64,
    total: Decimal,
}

/// Everything the units refer to, computed once from the rows.
struct Plan<'a> {
    batch_id: &'a str,
    rows: &'a [PayrollRow],
    sources: Vec<(&'a str, Group)>,
    branches: Vec<(&'a str, Group)>,
    /// Payer id → index of its first row.
    payers: Vec<(&'a str, usize)>,
    /// Employee id → indexes of its rows.
    employees: Vec<(&'a str, Vec<usize>)>,
    now: String,
}

impl<'a> Plan<'a> {
    fn new(batch_id: &'a str, rows: &'a [PayrollRow], now: String) -> Self {
        let mut sources: BTreeMap<&str, Group> = BTreeMap::new();
        let mut branches: BTreeMap<&str, Group> = BTreeMap::new();
        let mut payers: BTreeMap<&str, usize> = BTreeMap::new();
        let mut employees: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            let s = sources.entry(r.payer.id.as_str()).or_default();
            s.count += 1;
            s.total += r.amount.amount();
            let b = branches.entry(r.employee.branch_id.as_str()).or_default();
            b.count += 1;
            b.total += r.amount.amount();
            payers.entry(r.payer.id.as_str()).or_insert(i);
            employees.entry(r.employee.id.as_str()).or_default().push(i);
        }
        Plan {
            batch_id,
            rows,
            sources: sources.into_iter().collect(),
            branches: branches.into_iter().collect(),
            payers: payers.into_iter().collect(),
            employees: employees.into_iter().collect(),
            now,
        }
    }

    fn units(&self) -> Vec<Unit> {
        let mut units = Vec::with_capacity(
            self.sources.len() + self.branches.len() + self.employees.len() + self.rows.len(),
        );
        units.extend((0..self.sources.len()).map(Unit::Source));
        units.extend((0..self.branches.len()).map(Unit::Branch));
        units.extend((0..self.payers.len()).map(Unit::Payer));
        units.extend((0..self.employees.len()).map(Unit::Employee));
        units.extend((0..self.rows.len()).map(Unit::Payment));
        units
    }

    /// Units cut into chunks of at most `CHUNK_WRITES_MAX` writes, always the same way.
    fn chunks(&self) -> Vec<Vec<Unit>> {
        let mut chunks = Vec::new();
        let mut current = Vec::new();
        let mut writes = 0;
        for unit in self.units() {
            if writes + unit.writes() > CHUNK_WRITES_MAX {
                chunks.push(std::mem::take(&mut current));
                writes = 0;
            }
            writes += unit.writes();
            current.push(unit);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        chunks
    }

    fn aggregate(&self, key: Key, g: &Group) -> Item {
        Item::new(&key)
            .with(attr::OWED_COUNT, g.count as i64)
            .with(attr::OWED_TOTAL, g.total)
            .with(
                &layout::count_attr(PaymentStatus::Unprocessed),
                g.count as i64,
            )
            .with(&layout::amount_attr(PaymentStatus::Unprocessed), g.total)
    }

    fn writes(&self, unit: Unit) -> Result<Vec<Write>, PayrollAppError> {
        let put = |item: Item| Write::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        };
        Ok(match unit {
            Unit::Source(i) => {
                let (id, g) = &self.sources[i];
                vec![put(self.aggregate(layout::source_key(self.batch_id, id), g))]
            }
            Unit::Branch(i) => {
                let (id, g) = &self.branches[i];
                vec![put(self.aggregate(layout::branch_key(self.batch_id, id), g))]
            }
            Unit::Payer(i) => {
                let (id, row) = self.payers[i];
                vec![put(payer_item(self.batch_id, id, &self.rows[row]))]
            }
            Unit::Employee(i) => {
                let (id, rows) = &self.employees[i];
                vec![put(employee_item(self.batch_id, id, rows, self.rows))]
            }
            Unit::Payment(i) => {
                let row = &self.rows[i];
                let payment_id = layout::payment_id(self.batch_id, row.row);
                let obligation =
                    ledger::obligation(&payment_id, row.payer.id.as_str(), row.amount.amount())?;
                // Checked again as it becomes an item: an unbalanced transaction is never written.
                let ledger_item = layout::ledger_item(self.batch_id, &obligation, &self.now)?;
                vec![
                    put(payment_item(self.batch_id, row, &self.now)),
                    put(ledger_item),
                ]
            }
        })
    }
}

fn payment_item(batch_id: &str, row: &PayrollRow, now: &str) -> Item {
    Item::new(&layout::payment_key(batch_id, row.row))
        .with(attr::PAYMENT_ID, layout::payment_id(batch_id, row.row))
        .with(attr::BATCH_ID, batch_id)
        .with(attr::ROW, i64::from(row.row))
        .with(attr::AMOUNT, row.amount.amount())
        .with(attr::SOURCE_ID, row.payer.id.as_str())
        .with(attr::BRANCH_ID, row.employee.branch_id.as_str())
        .with(attr::EMPLOYEE_ID, row.employee.id.as_str())
        .with(attr::PLAID_ID, row.payee.plaid_id.as_str())
        .with(attr::LOAN_FINGERPRINT, loan_fingerprint(row))
        .with(attr::SOURCE_FINGERPRINT, source_fingerprint(row))
        .with(attr::STATUS, PaymentStatus::Unprocessed.as_str())
        .with(attr::UPDATED_AT, now)
}

/// The payer's details the provider needs (account number and routing included: the table
/// is encrypted at rest and nothing here is logged).
fn payer_item(batch_id: &str, id: &str, row: &PayrollRow) -> Item {
    let a = &row.payer.address;
    Item::new(&layout::payer_key(batch_id, id))
        .with(attr::SOURCE_ID, id)
        .with(attr::ROUTING, row.payer.routing.as_str())
        .with(
            attr::ACCOUNT_NUMBER,
            row.payer.account_number.expose().as_str(),
        )
        .with(attr::SOURCE_FINGERPRINT, source_fingerprint(row))
        .with(attr::NAME, row.payer.name.as_str())
        .with(attr::DBA, row.payer.dba.as_str())
        .with(attr::EIN, row.payer.ein.as_str())
        .with(attr::LINE1, a.line1.as_str())
        .with(attr::CITY, a.city.as_str())
        .with(attr::STATE, a.state.as_str())
        .with(attr::ZIP, a.zip.as_str())
}

/// An employee's details (from its first row), its loans and its rows.
fn employee_item(batch_id: &str, id: &str, indexes: &[usize], rows: &[PayrollRow]) -> Item {
    let first = &rows[indexes[0]];
    let e = &first.employee;
    let mut loans: BTreeMap<String, Value> = BTreeMap::new();
    let mut row_numbers = Vec::with_capacity(indexes.len());
    let mut payers: Vec<String> = Vec::new();
    for &i in indexes {
        let r = &rows[i];
        row_numbers.push(Value::N(Decimal::from(r.row)));
        if !payers.iter().any(|p| p == r.payer.id.as_str()) {
            payers.push(r.payer.id.as_str().to_owned());
        }
        loans.entry(loan_fingerprint(r)).or_insert_with(|| {
            Value::M(BTreeMap::from([
                (
                    attr::PLAID_ID.to_owned(),
                    Value::S(r.payee.plaid_id.as_str().to_owned()),
                ),
                (
                    attr::LOAN_ACCOUNT_NUMBER.to_owned(),
                    Value::S(r.payee.loan_account_number.expose().clone()),
                ),
                (
                    attr::LOAN_FINGERPRINT.to_owned(),
                    Value::S(loan_fingerprint(r)),
                ),
            ]))
        });
    }
    Item::new(&layout::employee_key(batch_id, id))
        .with(attr::EMPLOYEE_ID, id)
        .with(attr::FIRST_NAME, e.first_name.expose().as_str())
        .with(attr::LAST_NAME, e.last_name.expose().as_str())
        .with(
            attr::DATE_OF_BIRTH,
            e.date_of_birth.expose().format("%Y-%m-%d").to_string(),
        )
        .with(attr::PHONE, e.phone.expose().as_str())
        .with("loans", Value::L(loans.into_values().collect()))
        .with(
            "payers",
            Value::L(payers.into_iter().map(Value::S).collect()),
        )
        .with(attr::ROWS, Value::L(row_numbers))
}

#[derive(Debug, Clone, Serialize)]
pub struct MaterialiseOutcome {
    pub batch_id: String,
    pub payments: u64,
    pub employees: u64,
    pub chunks: u64,
    /// Chunks found already written (a resumed run).
    pub chunks_skipped: u64,
    pub enqueued: bool,
}

/// Writes every payment of an approved batch and enqueues the accounts work. Resumable.
pub async fn materialise(
    p: &Payroll,
    batch_id: &str,
) -> Result<MaterialiseOutcome, PayrollAppError> {
    let item = batches::load(p, batch_id).await?;
    let view = batches::view_of(&item)?;
    if !view.status.is_approved() {
        return Err(PayrollAppError::WrongState {
            batch_id: batch_id.to_owned(),
            status: view.status.as_str().to_owned(),
            reason: "only an approved batch is materialised".into(),
        });
    }
    let rows = load_rows(p, batch_id).await?;
    let plan = Plan::new(batch_id, &rows, layout::time_text(p.clock.now()));
    let chunks = plan.chunks();
    let skipped;
    if item.s(attr::MATERIALISED_AT).is_none() {
        let results: Vec<bool> = futures::stream::iter(0..chunks.len())
            .map(|n| write_chunk(p, &plan, n, &chunks[n]))
            .buffer_unordered(CHUNK_CONCURRENCY)
            .try_collect()
            .await?;
        skipped = results.iter().filter(|written| !**written).count() as u64;
        mark_materialised(p, batch_id).await?;
    } else {
        skipped = chunks.len() as u64;
    }
    let enqueued_before = item.s(attr::ENQUEUED_AT).is_some();
    if !enqueued_before {
        enqueue_employees(p, batch_id, plan.employees.iter().map(|(id, _)| *id)).await?;
        p.table
            .update(
                &layout::batch_key(batch_id),
                vec![UpdateAction::set_if_not_exists(
                    attr::ENQUEUED_AT,
                    layout::time_text(p.clock.now()),
                )],
                Some(Condition::ItemExists),
            )
            .await?;
    }
    tracing::info!(
        batch_id,
        payments = rows.len(),
        chunks = chunks.len(),
        skipped,
        "payroll batch materialised"
    );
    Ok(MaterialiseOutcome {
        batch_id: batch_id.to_owned(),
        payments: rows.len() as u64,
        employees: plan.employees.len() as u64,
        chunks: chunks.len() as u64,
        chunks_skipped: skipped,
        enqueued: true,
    })
}

/// Writes one chunk with its marker; `false` when the marker shows it was written before.
async fn write_chunk(
    p: &Payroll,
    plan: &Plan<'_>,
    n: usize,
    units: &[Unit],
) -> Result<bool, PayrollAppError> {
    let mut writes = Vec::with_capacity(CHUNK_WRITES_MAX + 1);
    writes.push(Write::Put {
        item: Item::new(&layout::chunk_key(plan.batch_id, n))
            .with("units", units.len() as i64)
            .with(attr::WRITTEN_AT, plan.now.as_str()),
        condition: Some(Condition::ItemNotExists),
    });
    for unit in units {
        writes.extend(plan.writes(*unit)?);
    }
    match p.table.transact(writes).await {
        Ok(()) => Ok(true),
        Err(e) if e.failed_condition_at(0) => Ok(false),
        Err(e @ TableError::TransactionCanceled { .. }) => Err(PayrollAppError::Corrupt(format!(
            "batch {} chunk {n}: an item exists without its chunk marker ({e})",
            plan.batch_id
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn mark_materialised(p: &Payroll, batch_id: &str) -> Result<(), PayrollAppError> {
    let now = layout::time_text(p.clock.now());
    let result = p
        .table
        .update(
            &layout::batch_key(batch_id),
            vec![
                UpdateAction::set_if_not_exists(attr::MATERIALISED_AT, now),
                UpdateAction::set(attr::STATUS, BatchStatus::Processing.as_str()),
            ],
            Some(Condition::eq(attr::STATUS, BatchStatus::Approved.as_str())),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        // Already past APPROVED: a re-run.
        Err(TableError::ConditionFailed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sends one accounts message per employee.
pub async fn enqueue_employees<'a>(
    p: &Payroll,
    batch_id: &str,
    employees: impl Iterator<Item = &'a str>,
) -> Result<u64, PayrollAppError> {
    let messages: Vec<OutgoingMessage> = employees
        .map(|employee_id| {
            let m = AccountsMessage {
                batch_id: batch_id.to_owned(),
                employee_id: employee_id.to_owned(),
            };
            OutgoingMessage::new(serde_json::to_string(&m).unwrap_or_default())
        })
        .collect();
    send_all(p.accounts_queue.as_ref(), messages).await
}

/// Sends messages in batches of ten, several batches at once.
pub async fn send_all(
    queue: &dyn crate::ports::Queue,
    messages: Vec<OutgoingMessage>,
) -> Result<u64, PayrollAppError> {
    let total = messages.len() as u64;
    let batches: Vec<Vec<OutgoingMessage>> = messages
        .chunks(QUEUE_BATCH_MESSAGES_MAX)
        .map(<[OutgoingMessage]>::to_vec)
        .collect();
    futures::stream::iter(batches)
        .map(|batch| queue.send_batch(batch))
        .buffer_unordered(ENQUEUE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_never_exceed_a_transaction_and_cover_every_unit() {
        let xml = payroll::generate::generate_xml(
            &payroll::generate::GenerateOptions::like_sample(500, 3),
        );
        let parsed = payroll::parse(xml.as_bytes()).unwrap();
        let plan = Plan::new("b1", &parsed.rows, "t".into());
        let chunks = plan.chunks();
        let mut writes = 0;
        for c in &chunks {
            let w: usize = c.iter().map(|u| u.writes()).sum();
            assert!(w < TRANSACTION_WRITES_MAX, "{w}");
            writes += w;
        }
        let expected = plan.sources.len()
            + plan.branches.len()
            + plan.payers.len()
            + plan.employees.len()
            + 2 * parsed.rows.len();
        assert_eq!(writes, expected);
        // The same rows always give the same chunks (what makes a re-run skip the right ones).
        let again = Plan::new("b1", &parsed.rows, "t".into()).chunks();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            again.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
}
