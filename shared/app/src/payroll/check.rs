//! The nightly consistency check (EventBridge schedule): for every batch in `PROCESSING` or
//! `COMPLETED`, reconcile the payments with the provider's record of them (see [`provider`]),
//! compare the payments, the per-source and per-branch aggregates and the ledger; re-enqueue
//! payments stuck in `UNPROCESSED`; report every difference (logged by kind and count,
//! written in full to S3). Nothing is overwritten: the only write besides re-enqueueing is a
//! forward-only status move the provider reports and we missed (a lost webhook), made through
//! the webhook's own transition code and reported as a correction.

pub mod provider;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use payops_core::payroll::PaymentStatus;
use payops_core::payroll::ledger::{self, LedgerKind, LedgerTransaction};
use rust_decimal::Decimal;
use serde::Serialize;

use super::batches::{BatchStatus, view_of};
use super::layout::{self, BATCHES_PARTITION, BRANCH_PREFIX, GSI1, SOURCE_PREFIX, attr};
use super::materialise::enqueue_employees;
use super::progress::{self, GroupProgress};
use super::report::all_payments;
use super::transitions::PaymentRecord;
use super::{Disbursement, Payroll, PayrollAppError};
use crate::HandlerError;
use crate::handler::EventHandler;
use crate::ports::{PaymentProvider, Query, SortKeyRange};

/// A payment `UNPROCESSED` this long after its batch was materialised is stuck; so is a
/// batch still `APPROVED` (its payments not all written) this long after its approval.
pub const STUCK_AFTER_MINUTES: i64 = 60;
/// Batches checked per run at most (newest first).
pub const BATCHES_CHECKED_MAX: usize = 200;
/// Differences listed in the answer (all are in the S3 report).
pub const DIFFERENCES_LISTED_MAX: usize = 100;
/// Pages of ledger read per batch at most.
const LEDGER_PAGES_MAX: usize = 2000;
/// Reads of a batch's payments and ledger per run at most while its aggregates keep moving
/// (a batch whose webhooks are still arriving; see [`check_batch`]).
pub const STILL_READ_ATTEMPTS_MAX: usize = 3;
pub const CHECKS_PREFIX: &str = "payroll/checks/";

pub struct ConsistencyCheck {
    state: Payroll,
    provider: Arc<dyn PaymentProvider>,
}

impl ConsistencyCheck {
    /// The payroll ports and the provider the payments are reconciled against (without a
    /// configured provider, `Disbursement::from_resources` gives one whose calls fail: the
    /// run then reports `provider_unavailable` and does the rest).
    pub fn new(d: Disbursement) -> Self {
        ConsistencyCheck {
            state: d.payroll,
            provider: d.provider,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub batch_id: String,
    /// `aggregate`, `ledger_missing`, `ledger_unexpected`, `ledger_unbalanced`,
    /// `ledger_balance`, `batch_failed`, `batch_stuck`, or one of the provider's
    /// (`provider::KIND_*`).
    pub kind: &'static str,
    /// The aggregate (`SRC#…`, `BR#…`), payment or account concerned.
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub batches_checked: u64,
    pub payments_checked: u64,
    pub re_enqueued_payments: u64,
    /// Whether the run compared with the provider at all.
    pub provider_checked: bool,
    pub provider_pages: u64,
    pub provider_payments_listed: u64,
    /// The provider's listing was read to its end.
    pub provider_listing_complete: bool,
    /// Payments a limit (or a provider failure) left uncompared with the provider.
    pub provider_unchecked: u64,
    /// Forward status moves applied from the provider's record.
    pub corrections_applied: u64,
    /// Payments the provider moved ahead of us so recently that the webhook saying so may
    /// still be on its way (see `provider::WEBHOOK_GRACE_MINUTES`): neither corrected nor
    /// reported; the next run compares them again.
    pub provider_in_flight: u64,
    /// Batches that kept moving while they were read ([`STILL_READ_ATTEMPTS_MAX`] times):
    /// their aggregates and ledger were not compared this run.
    pub batches_moving: u64,
    pub differences: Vec<Difference>,
}

async fn read_payments(
    p: &Payroll,
    batch_id: &str,
) -> Result<(Vec<crate::ports::Item>, Vec<PaymentRecord>), PayrollAppError> {
    let items = all_payments(p, batch_id).await?;
    let payments = items
        .iter()
        .map(PaymentRecord::from_item)
        .collect::<Result<_, _>>()?;
    Ok((items, payments))
}

/// Checks one batch; `now` decides which `UNPROCESSED` payments are stuck. With the
/// provider's listing, reconciles first (a correction is then seen by the comparisons).
///
/// The comparisons need the batch still: payments, ledger and aggregates are read one after
/// the other (by pages, with no snapshot across them), and a webhook applied in between
/// would look like a difference. So the aggregates are read before the payments and again
/// after the ledger: every move changes its source's and branch's aggregates, and moves only
/// go forward (so they never cancel out), hence two equal reads mean nothing moved in
/// between. When they differ the batch is read again, at most [`STILL_READ_ATTEMPTS_MAX`]
/// times; a batch still moving then is counted in `batches_moving` and compared next run.
pub async fn check_batch(
    p: &Payroll,
    listing: Option<&mut provider::Listing<'_>>,
    batch_id: &str,
    now: DateTime<Utc>,
    report: &mut CheckReport,
) -> Result<(), PayrollAppError> {
    let mut before = aggregates(p, batch_id).await?;
    let (mut items, mut payments) = read_payments(p, batch_id).await?;
    if let Some(listing) = listing {
        let corrected =
            provider::reconcile_batch(p, listing, batch_id, &payments, now, report).await?;
        report.corrections_applied += corrected;
        if corrected > 0 {
            before = aggregates(p, batch_id).await?;
            (items, payments) = read_payments(p, batch_id).await?;
        }
    }
    report.batches_checked += 1;
    report.payments_checked += payments.len() as u64;
    for attempt in 1..=STILL_READ_ATTEMPTS_MAX {
        let txs = ledger_of(p, batch_id).await?;
        let after = aggregates(p, batch_id).await?;
        if after == before {
            compare_aggregates(batch_id, &payments, &after, report);
            compare_ledger(batch_id, &payments, &txs, report);
            break;
        }
        if attempt == STILL_READ_ATTEMPTS_MAX {
            tracing::warn!(
                batch_id,
                attempts = attempt,
                "payroll batch kept moving while it was read; aggregates and ledger not compared"
            );
            report.batches_moving += 1;
            break;
        }
        before = after;
        (items, payments) = read_payments(p, batch_id).await?;
    }
    // Stuck payments: send their employees back through provisioning, which enqueues them.
    let stuck_before = now - Duration::minutes(STUCK_AFTER_MINUTES);
    let mut stuck_employees = BTreeSet::new();
    for (payment, item) in payments.iter().zip(&items) {
        let updated = item
            .s(attr::UPDATED_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        if payment.status == PaymentStatus::Unprocessed && updated.is_some_and(|t| t < stuck_before)
        {
            stuck_employees.insert(payment.employee_id.as_str());
            report.re_enqueued_payments += 1;
        }
    }
    if !stuck_employees.is_empty() {
        enqueue_employees(p, batch_id, stuck_employees.into_iter()).await?;
    }
    Ok(())
}

/// The batch's stored per-source and per-branch aggregates, by name (`SRC#…`, `BR#…`).
async fn aggregates(
    p: &Payroll,
    batch_id: &str,
) -> Result<BTreeMap<String, GroupProgress>, PayrollAppError> {
    let mut stored = BTreeMap::new();
    for prefix in [SOURCE_PREFIX, BRANCH_PREFIX] {
        for g in progress::groups(p, batch_id, prefix).await? {
            stored.insert(format!("{prefix}{}", g.id), g);
        }
    }
    Ok(stored)
}

/// Recomputes each aggregate from the payments and compares it with the stored one.
pub fn compare_aggregates(
    batch_id: &str,
    payments: &[PaymentRecord],
    stored: &BTreeMap<String, GroupProgress>,
    report: &mut CheckReport,
) {
    let mut expected: BTreeMap<String, GroupProgress> = BTreeMap::new();
    for pay in payments {
        for (prefix, id) in [
            (SOURCE_PREFIX, &pay.source_id),
            (BRANCH_PREFIX, &pay.branch_id),
        ] {
            let g = expected.entry(format!("{prefix}{id}")).or_default();
            g.owed_count += 1;
            g.owed_total += pay.amount;
            *g.counts.entry(pay.status.lower().to_owned()).or_default() += 1;
            *g.amounts.entry(pay.status.lower().to_owned()).or_default() += pay.amount;
        }
    }
    let names: BTreeSet<&String> = expected.keys().chain(stored.keys()).collect();
    for name in names {
        let empty = GroupProgress::default();
        let e = expected.get(name).unwrap_or(&empty);
        let s = stored.get(name).unwrap_or(&empty);
        let mut problems = Vec::new();
        if e.owed_count != s.owed_count || e.owed_total != s.owed_total {
            problems.push(format!(
                "owed {}/{} in payments, {}/{} stored",
                e.owed_count, e.owed_total, s.owed_count, s.owed_total
            ));
        }
        for status in PaymentStatus::ALL {
            let (ec, sc) = (e.count(status), s.count(status));
            let (ea, sa) = (e.amount(status), s.amount(status));
            if ec != sc || ea != sa {
                problems.push(format!(
                    "{}: {ec}/{ea} in payments, {sc}/{sa} stored",
                    status.lower()
                ));
            }
        }
        if !problems.is_empty() {
            report.differences.push(Difference {
                batch_id: batch_id.to_owned(),
                kind: "aggregate",
                subject: name.clone(),
                detail: problems.join("; "),
            });
        }
    }
}

async fn ledger_of(p: &Payroll, batch_id: &str) -> Result<Vec<LedgerTransaction>, PayrollAppError> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..LEDGER_PAGES_MAX {
        let page = p
            .table
            .query(Query::partition(layout::ledger_partition(batch_id)).after(cursor))
            .await?;
        for item in &page.items {
            out.push(layout::ledger_from_item(item).ok_or_else(|| {
                PayrollAppError::Corrupt(format!(
                    "ledger item {}",
                    item.s(crate::ports::table::SK).unwrap_or("?")
                ))
            })?);
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(out);
        }
    }
    Err(PayrollAppError::Corrupt(format!(
        "batch {batch_id} has more than {LEDGER_PAGES_MAX} pages of ledger"
    )))
}

/// Each payment has exactly the ledger transactions its status calls for, each balances,
/// and the batch's account balances are what the statuses say.
pub fn compare_ledger(
    batch_id: &str,
    payments: &[PaymentRecord],
    txs: &[LedgerTransaction],
    report: &mut CheckReport,
) {
    let mut by_payment: BTreeMap<&str, Vec<&LedgerTransaction>> = BTreeMap::new();
    for tx in txs {
        if let Err(e) = tx.check() {
            report.differences.push(Difference {
                batch_id: batch_id.to_owned(),
                kind: "ledger_unbalanced",
                subject: tx.id.clone(),
                detail: e.to_string(),
            });
        }
        by_payment
            .entry(tx.payment_id.as_str())
            .or_default()
            .push(tx);
    }
    let mut expected_balances: BTreeMap<String, Decimal> = BTreeMap::new();
    for pay in payments {
        let want: BTreeSet<LedgerKind> = ledger::expected_kinds(pay.status, pay.settled_before)
            .into_iter()
            .collect();
        let have: BTreeSet<LedgerKind> = by_payment
            .remove(pay.payment_id.as_str())
            .unwrap_or_default()
            .iter()
            .map(|t| t.kind)
            .collect();
        for missing in want.difference(&have) {
            report.differences.push(Difference {
                batch_id: batch_id.to_owned(),
                kind: "ledger_missing",
                subject: pay.payment_id.clone(),
                detail: format!("{} is {} but has no {missing}", pay.payment_id, pay.status),
            });
        }
        for extra in have.difference(&want) {
            report.differences.push(Difference {
                batch_id: batch_id.to_owned(),
                kind: "ledger_unexpected",
                subject: pay.payment_id.clone(),
                detail: format!("{} is {} but has a {extra}", pay.payment_id, pay.status),
            });
        }
        let (expense, payable, cash) = (
            ledger::expense_account(&pay.source_id),
            ledger::payable_account(&pay.source_id),
            ledger::cash_account(&pay.source_id),
        );
        let a = pay.amount;
        match pay.status {
            PaymentStatus::Settled => {
                *expected_balances.entry(expense).or_default() += a;
                *expected_balances.entry(cash).or_default() -= a;
            }
            PaymentStatus::Failed | PaymentStatus::Canceled | PaymentStatus::Reversed => {}
            _ => {
                *expected_balances.entry(expense).or_default() += a;
                *expected_balances.entry(payable).or_default() -= a;
            }
        }
    }
    for (payment_id, orphans) in by_payment {
        for tx in orphans {
            report.differences.push(Difference {
                batch_id: batch_id.to_owned(),
                kind: "ledger_unexpected",
                subject: payment_id.to_owned(),
                detail: format!("ledger transaction {} has no payment", tx.id),
            });
        }
    }
    expected_balances.retain(|_, v| !v.is_zero());
    let actual = ledger::balances(txs.iter());
    let accounts: BTreeSet<&String> = expected_balances.keys().chain(actual.keys()).collect();
    for account in accounts {
        let e = expected_balances.get(account).copied().unwrap_or_default();
        let a = actual.get(account).copied().unwrap_or_default();
        if e != a {
            report.differences.push(Difference {
                batch_id: batch_id.to_owned(),
                kind: "ledger_balance",
                subject: account.clone(),
                detail: format!("balance {a}, payments say {e}"),
            });
        }
    }
}

/// Runs the check over the newest batches that have payments; with a provider, reconciles
/// them against its record first.
pub async fn run(
    p: &Payroll,
    provider: Option<&dyn PaymentProvider>,
    now: DateTime<Utc>,
) -> Result<CheckReport, PayrollAppError> {
    let page = p
        .table
        .query(
            Query::partition(BATCHES_PARTITION)
                .on_index(GSI1)
                .sort(SortKeyRange::All)
                .backward()
                .limit(BATCHES_CHECKED_MAX),
        )
        .await?;
    let mut report = CheckReport::default();
    let mut checked = Vec::new();
    for item in &page.items {
        let view = view_of(item)?;
        if let Some(d) = stopped_workflow(item, &view, now) {
            report.differences.push(d);
        }
        if was_sent(item, view.status) {
            checked.push(view.batch_id);
        }
    }
    let mut listing = match provider {
        Some(provider) => {
            report.provider_checked = true;
            let ids: BTreeSet<String> = checked.iter().cloned().collect();
            Some(provider::list(p, provider, &ids, &mut report).await?)
        }
        None => None,
    };
    for batch_id in &checked {
        check_batch(p, listing.as_mut(), batch_id, now, &mut report).await?;
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &report.differences {
        *by_kind.entry(d.kind).or_default() += 1;
    }
    let key = format!("{CHECKS_PREFIX}{}.json", now.format("%Y-%m-%dT%H%M%SZ"));
    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
    p.blobs
        .put(&key, Bytes::from(body), "application/json")
        .await?;
    if report.differences.is_empty() {
        tracing::info!(
            batches = report.batches_checked,
            payments = report.payments_checked,
            re_enqueued = report.re_enqueued_payments,
            provider_checked = report.provider_checked,
            provider_listed = report.provider_payments_listed,
            "payroll consistency check: no differences"
        );
    } else {
        tracing::error!(
            batches = report.batches_checked,
            differences = report.differences.len(),
            corrections = report.corrections_applied,
            in_flight = report.provider_in_flight,
            moving = report.batches_moving,
            kinds = ?by_kind,
            report = key,
            "payroll consistency check found differences"
        );
    }
    Ok(report)
}

#[async_trait]
impl EventHandler for ConsistencyCheck {
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError> {
        let now = event.time.unwrap_or_else(|| self.state.clock.now());
        let mut report = run(&self.state, Some(self.provider.as_ref()), now).await?;
        let total = report.differences.len();
        report.differences.truncate(DIFFERENCES_LISTED_MAX);
        Ok(serde_json::json!({
            "batches_checked": report.batches_checked,
            "payments_checked": report.payments_checked,
            "re_enqueued_payments": report.re_enqueued_payments,
            "provider_checked": report.provider_checked,
            "provider_payments_listed": report.provider_payments_listed,
            "provider_listing_complete": report.provider_listing_complete,
            "provider_unchecked": report.provider_unchecked,
            "corrections_applied": report.corrections_applied,
            "provider_in_flight": report.provider_in_flight,
            "batches_moving": report.batches_moving,
            "difference_count": total,
            "differences": report.differences,
        }))
    }
}

/// Whether every payment of the batch was written and enqueued: `PROCESSING`, `COMPLETED`,
/// or `FAILED` after that (its workflow stopped, its payments went on).
pub(crate) fn was_sent(item: &crate::ports::Item, status: BatchStatus) -> bool {
    match status {
        BatchStatus::Processing | BatchStatus::Completed => true,
        BatchStatus::Failed => item.s(super::layout::attr::MATERIALISED_AT).is_some(),
        _ => false,
    }
}

/// A batch whose workflow stopped: `FAILED` (until someone resumes it), or still `APPROVED`
/// long after its approval (its payments not all written, and nothing marked it failed: an
/// execution stopped by hand, say). Reported every night; nothing is changed.
fn stopped_workflow(
    item: &crate::ports::Item,
    view: &super::batches::BatchView,
    now: DateTime<Utc>,
) -> Option<Difference> {
    let difference = |kind, detail| Difference {
        batch_id: view.batch_id.clone(),
        kind,
        subject: view.batch_id.clone(),
        detail,
    };
    match view.status {
        BatchStatus::Failed => {
            let (error, at) = view
                .failure
                .as_ref()
                .map(|f| (f.error.as_str(), f.failed_at.as_str()))
                .unwrap_or(("unknown", "?"));
            Some(difference(
                "batch_failed",
                format!("its workflow stopped on {error} at {at}; resume it once fixed"),
            ))
        }
        _ if stuck_approved(item, view.status, now) => Some(difference(
            "batch_stuck",
            format!(
                "approved (or resumed) over {STUCK_AFTER_MINUTES} minutes ago and its payments \
                 are not all written; its workflow may have stopped: resume it"
            ),
        )),
        _ => None,
    }
}

/// `APPROVED`, and approved (or last resumed) more than [`STUCK_AFTER_MINUTES`] ago: writing
/// the payments takes seconds, so its workflow has most likely stopped.
pub(crate) fn stuck_approved(
    item: &crate::ports::Item,
    status: BatchStatus,
    now: DateTime<Utc>,
) -> bool {
    let at = |name| {
        item.s(name)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let since = at(super::layout::attr::APPROVED_AT).max(at(super::layout::attr::RESUMED_AT));
    status == BatchStatus::Approved
        && since.is_some_and(|since| now - since > Duration::minutes(STUCK_AFTER_MINUTES))
}
