//! The nightly check's reconciliation against the payment provider: what the provider says
//! happened to each payment we sent, compared with what we recorded.
//!
//! The provider's `GET /v1/payments` lists every payment of our API key in creation order,
//! with no filter by batch; so one run pages through it once (at most [`PROVIDER_PAGES_MAX`]
//! pages of [`PROVIDER_PAGE_LIMIT`]), keeps the payments whose `external_id` (our payment id,
//! `{batch}-r{row}`) names a batch being checked, and then compares batch by batch:
//!
//! - `provider_status`: the provider has the payment in another status than we do (a lost
//!   webhook, typically). The provider is the authority on what happened to the money, and
//!   its statuses only move forward, exactly as its webhooks report them; so when its status
//!   is ahead of ours the check **applies the move** through `transitions::apply`, the code
//!   the webhook uses (payment, aggregates and ledger in one conditional transaction, forward
//!   only), as a provider-sourced correction, and reports it (`detail` says `corrected`). A
//!   webhook that arrives later finds the move made and changes nothing (`stale`). This also
//!   closes a real hole: a payment created at the provider whose answer was lost stays
//!   `UNPROCESSED` here, and once the provider forgets the idempotency key (after 24 hours)
//!   re-enqueueing it would pay twice; recording it as created prevents that. When our status
//!   is ahead of, or beside, the provider's (we say `SETTLED`, it says `failed`), nothing is
//!   moved: that needs a person, and is only reported. The provider's `pending` counts as our
//!   `PROCESSING` (the payments worker records at least `PROCESSING` once created).
//! - `provider_unknown`: the provider has a payment we have no record of (its `external_id`
//!   names no payment of ours, or a batch that does not exist or was never approved).
//! - `provider_missing`: we recorded a payment as sent, and the provider does not have it.
//! - `provider_duplicate`: the provider has two payments for one of ours (paid twice).
//! - `provider_id`: the provider's payment for ours is not the one we recorded.
//! - `provider_amount`: the provider's amount is not ours.
//! - `provider_unavailable`: the listing failed (after the client's retries): the rest of the
//!   check still runs; `provider_unchecked`: payments a limit left uncompared, by count.
//!
//! **In flight.** A provider status ahead of ours that the provider reached less than
//! [`WEBHOOK_GRACE_MINUTES`] ago (its `updated_at`) is not a lost webhook yet: the webhook
//! saying so may be queued at the provider or between its retries, and a check that ran while
//! a batch settles would otherwise "correct" hundreds of payments that were about to arrive.
//! Such a payment is counted in `provider_in_flight`, neither moved nor reported, and
//! compared again by the next run.
//!
//! A status that looks ahead of the provider's, and a sent payment absent from the listing,
//! may only be the listing's age (it is read before our records): each is confirmed with one
//! `GET /v1/payments/{id}` (at most [`PROVIDER_LOOKUPS_MAX`] per run) before it is reported.
//! When the listing stops at its page limit, payments beyond it are looked up the same way.
//!
//! **Checkpoint.** The listing only grows (about 50,000 payments a fortnight), so each run
//! starts where the previous one found the first payment of a batch it checked (the cursor
//! of that page, kept at `layout::provider_checkpoint_key`). Everything before it was read
//! once and holds nothing the checked batches can need again: payments are created only for
//! batches in `PROCESSING`, always after the payments already listed, and a batch leaves the
//! checked set only by getting older. A payment of no batch of ours before the checkpoint was
//! reported by the run that read it. A cursor the provider refuses restarts the listing from
//! its beginning.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use payops_core::payroll::PaymentStatus;

use super::{CheckReport, Difference};
use crate::payroll::batches::view_of;
use crate::payroll::layout;
use crate::payroll::transitions::{self, MoveDetails, MoveOutcome, PaymentRecord};
use crate::payroll::{Payroll, PayrollAppError};
use crate::ports::provider::{
    ListPayments, PAYMENTS_PAGE_LIMIT_MAX, PageCursor, Payment, PaymentId, PaymentProvider,
    ProviderError,
};
use crate::ports::{Item, TableError};

/// The checkpoint item's attribute holding the cursor (absent: the listing's beginning).
const CURSOR_ATTR: &str = "cursor";

/// Payments asked for per page of the provider's listing (the API's most).
pub const PROVIDER_PAGE_LIMIT: u32 = PAYMENTS_PAGE_LIMIT_MAX;
/// Pages of the provider's listing read per run at most (200,000 payments at 100 a page).
pub const PROVIDER_PAGES_MAX: usize = 2000;
/// Single-payment lookups (`GET /v1/payments/{id}`) per run at most.
pub const PROVIDER_LOOKUPS_MAX: usize = 1000;
/// Distinct batches outside the check whose existence is looked up per run at most.
pub const FOREIGN_BATCHES_MAX: usize = 1000;
/// How long after the provider moved a payment its webhook may still be on the way: within
/// it, a provider status ahead of ours is in flight, not a lost webhook.
pub const WEBHOOK_GRACE_MINUTES: i64 = 30;
/// The `batch_id` of a difference that concerns no batch of ours.
pub const NO_BATCH: &str = "*";

pub const KIND_STATUS: &str = "provider_status";
pub const KIND_UNKNOWN: &str = "provider_unknown";
pub const KIND_MISSING: &str = "provider_missing";
pub const KIND_DUPLICATE: &str = "provider_duplicate";
pub const KIND_ID: &str = "provider_id";
pub const KIND_AMOUNT: &str = "provider_amount";
pub const KIND_UNAVAILABLE: &str = "provider_unavailable";
pub const KIND_UNCHECKED: &str = "provider_unchecked";

/// What the provider listed for the batches being checked, and the run's lookup budget.
pub struct Listing<'a> {
    provider: &'a dyn PaymentProvider,
    /// batch → our payment id → the provider's payments with that `external_id`.
    by_batch: HashMap<String, HashMap<String, Vec<Payment>>>,
    /// The listing reached its last page.
    complete: bool,
    lookups_left: usize,
}

fn difference(batch_id: &str, kind: &'static str, subject: &str, detail: String) -> Difference {
    Difference {
        batch_id: batch_id.to_owned(),
        kind,
        subject: subject.to_owned(),
        detail,
    }
}

/// Our status as the provider's word means it (`pending` is our `PROCESSING`).
fn status_of(payment: &Payment) -> Option<PaymentStatus> {
    PaymentStatus::from_provider(payment.status.as_str()).map(|s| s.max(PaymentStatus::Processing))
}

/// Where the last run says to start; `None` is the beginning.
async fn checkpoint(p: &Payroll) -> Result<Option<PageCursor>, TableError> {
    let item = p.table.get(&layout::provider_checkpoint_key()).await?;
    Ok(item
        .as_ref()
        .and_then(|i| i.s(CURSOR_ATTR))
        .map(|c| PageCursor(c.to_owned())))
}

async fn save_checkpoint(p: &Payroll, cursor: Option<&PageCursor>) -> Result<(), TableError> {
    let mut item = Item::new(&layout::provider_checkpoint_key())
        .with(layout::attr::WRITTEN_AT, layout::time_text(p.clock.now()));
    if let Some(c) = cursor {
        item.set(CURSOR_ATTR, c.0.as_str());
    }
    p.table.put(item, None).await
}

/// Pages through the provider's payments once, from the checkpoint, and moves the checkpoint
/// up. A provider failure is reported and ends the listing early (what was read is still
/// used); a table failure is an error.
pub async fn list<'a>(
    p: &Payroll,
    provider: &'a dyn PaymentProvider,
    checked: &BTreeSet<String>,
    report: &mut CheckReport,
) -> Result<Listing<'a>, PayrollAppError> {
    let mut listing = Listing {
        provider,
        by_batch: HashMap::new(),
        complete: false,
        lookups_left: PROVIDER_LOOKUPS_MAX,
    };
    // Batches outside the check: do they exist, and were they ever sent to the provider?
    let mut foreign: HashMap<String, bool> = HashMap::new();
    let mut cursor = checkpoint(p).await?;
    // The next run's start: the first page not known to hold nothing the check needs.
    let mut resume = cursor.clone();
    let mut relevant_seen = false;
    let mut restarted = false;
    let mut pages = 0;
    while pages < PROVIDER_PAGES_MAX {
        let requested = cursor.take();
        let request = ListPayments {
            limit: PROVIDER_PAGE_LIMIT,
            cursor: requested.clone(),
            status: None,
        };
        let page = match provider.list_payments(request).await {
            Ok(page) => page,
            Err(ProviderError::Rejected { reason, .. })
                if pages == 0 && !restarted && requested.is_some() =>
            {
                tracing::warn!(
                    reason,
                    "provider refused the saved cursor; listing from the start"
                );
                restarted = true;
                resume = None;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "provider listing failed; reconciliation is partial");
                report.differences.push(difference(
                    NO_BATCH,
                    KIND_UNAVAILABLE,
                    "GET /v1/payments",
                    format!(
                        "the provider's listing failed after {} pages: {e}",
                        report.provider_pages
                    ),
                ));
                save_checkpoint(p, resume.as_ref()).await?;
                return Ok(listing);
            }
        };
        pages += 1;
        report.provider_pages += 1;
        report.provider_payments_listed += page.payments.len() as u64;
        let mut relevant = false;
        for payment in page.payments {
            relevant |= place(p, &mut listing, &mut foreign, checked, payment, report).await?;
        }
        if relevant && !relevant_seen {
            relevant_seen = true;
            resume = requested.clone();
        }
        match page.next_cursor {
            Some(next) => {
                if !relevant_seen {
                    resume = Some(next.clone());
                }
                cursor = Some(next);
            }
            None => {
                // The last page may still grow: the next run reads it again.
                if !relevant_seen {
                    resume = requested;
                }
                listing.complete = true;
                report.provider_listing_complete = true;
                save_checkpoint(p, resume.as_ref()).await?;
                return Ok(listing);
            }
        }
    }
    tracing::warn!(
        pages = PROVIDER_PAGES_MAX,
        "provider listing cut at its page limit"
    );
    save_checkpoint(p, resume.as_ref()).await?;
    Ok(listing)
}

/// Files one listed payment under its batch, or reports it when it is not ours. `true` when
/// it belongs to a batch being checked.
async fn place(
    p: &Payroll,
    listing: &mut Listing<'_>,
    foreign: &mut HashMap<String, bool>,
    checked: &BTreeSet<String>,
    payment: Payment,
    report: &mut CheckReport,
) -> Result<bool, PayrollAppError> {
    let Some(external) = payment.external_id.clone() else {
        report
            .differences
            .push(unknown(NO_BATCH, &payment, "has no external_id"));
        return Ok(false);
    };
    let Some((batch_id, _row)) = layout::parse_payment_id(&external) else {
        report.differences.push(unknown(
            NO_BATCH,
            &payment,
            "has an external_id that is no payroll payment id",
        ));
        return Ok(false);
    };
    if checked.contains(batch_id) {
        listing
            .by_batch
            .entry(batch_id.to_owned())
            .or_default()
            .entry(external)
            .or_default()
            .push(payment);
        return Ok(true);
    }
    let sent = match foreign.get(batch_id) {
        Some(&sent) => sent,
        None if foreign.len() >= FOREIGN_BATCHES_MAX => {
            report.provider_unchecked += 1;
            return Ok(false);
        }
        None => {
            let sent = match p.table.get(&layout::batch_key(batch_id)).await? {
                Some(item) => super::was_sent(&item, view_of(&item)?.status),
                None => false,
            };
            foreign.insert(batch_id.to_owned(), sent);
            sent
        }
    };
    // A batch of ours that is simply older than the batches checked this run: not compared.
    if !sent {
        let reason = "names a batch that does not exist or was never sent to the provider";
        report.differences.push(unknown(batch_id, &payment, reason));
    }
    Ok(false)
}

fn unknown(batch_id: &str, payment: &Payment, reason: &str) -> Difference {
    difference(
        batch_id,
        KIND_UNKNOWN,
        payment.id.as_str(),
        format!(
            "the provider has payment {} ({}, {}, external_id {}) that {reason}",
            payment.id,
            payment.amount.amount(),
            payment.status,
            payment.external_id.as_deref().unwrap_or("none")
        ),
    )
}

/// Compares one batch's payments with the provider's; applies forward corrections. Returns
/// how many corrections were applied (the caller then reads the payments again).
pub async fn reconcile_batch(
    p: &Payroll,
    listing: &mut Listing<'_>,
    batch_id: &str,
    payments: &[PaymentRecord],
    now: DateTime<Utc>,
    report: &mut CheckReport,
) -> Result<u64, PayrollAppError> {
    let grace_from = now - Duration::minutes(WEBHOOK_GRACE_MINUTES);
    let mut theirs_by_id = listing.by_batch.remove(batch_id).unwrap_or_default();
    let mut corrections = 0;
    let mut unchecked = 0u64;
    for pay in payments {
        let mut theirs = theirs_by_id.remove(&pay.payment_id).unwrap_or_default();
        if theirs.is_empty() {
            let sent =
                pay.status != PaymentStatus::Unprocessed || pay.provider_payment_id.is_some();
            if !sent {
                continue;
            }
            match look_up(listing, pay, report).await {
                Lookup::Found(payment) => theirs.push(payment),
                Lookup::Missing => continue,
                Lookup::Unchecked => {
                    unchecked += 1;
                    continue;
                }
            }
        }
        corrections += compare(p, listing, pay, theirs, grace_from, report).await;
    }
    let mut leftovers: Vec<Payment> = theirs_by_id.into_values().flatten().collect();
    leftovers.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    for payment in leftovers {
        let reason = "names a payment this batch does not have";
        report.differences.push(unknown(batch_id, &payment, reason));
    }
    if unchecked > 0 {
        report.provider_unchecked += unchecked;
        report.differences.push(difference(
            batch_id,
            KIND_UNCHECKED,
            batch_id,
            format!(
                "{unchecked} sent payments were not compared: the listing read did not show \
                 them and no lookup was possible (the run's {PROVIDER_LOOKUPS_MAX} lookups \
                 spent, or the provider failed)"
            ),
        ));
    }
    Ok(corrections)
}

enum Lookup {
    Found(Payment),
    /// Reported as missing.
    Missing,
    /// Neither listed nor looked up (a limit, or the provider failed).
    Unchecked,
}

/// A sent payment the listing did not show: one `GET` says whether the provider has it.
async fn look_up(
    listing: &mut Listing<'_>,
    pay: &PaymentRecord,
    report: &mut CheckReport,
) -> Lookup {
    let missing = |report: &mut CheckReport, why: String| {
        report.differences.push(difference(
            &pay.batch_id,
            KIND_MISSING,
            &pay.payment_id,
            format!("{} is {} here but {why}", pay.payment_id, pay.status),
        ));
        Lookup::Missing
    };
    let Some(id) = pay.provider_payment_id.as_deref() else {
        return if listing.complete {
            missing(report, "the provider lists no payment for it".into())
        } else {
            Lookup::Unchecked
        };
    };
    match get(listing, id).await {
        Some(Ok(payment)) => Lookup::Found(payment),
        Some(Err(ProviderError::NotFound(_))) => missing(
            report,
            format!("the provider has no payment {id} and lists none for it"),
        ),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "provider lookup failed");
            Lookup::Unchecked
        }
        None => Lookup::Unchecked,
    }
}

/// One `GET /v1/payments/{id}` from the run's budget; `None` when it is spent.
async fn get(listing: &mut Listing<'_>, id: &str) -> Option<Result<Payment, ProviderError>> {
    if listing.lookups_left == 0 {
        return None;
    }
    listing.lookups_left -= 1;
    Some(listing.provider.get_payment(&PaymentId::new(id)).await)
}

/// Compares our payment with the provider's payment(s) for it. Returns 1 when a correction
/// was applied. A forward move the provider made after `grace_from` is in flight.
async fn compare(
    p: &Payroll,
    listing: &mut Listing<'_>,
    pay: &PaymentRecord,
    mut theirs: Vec<Payment>,
    grace_from: DateTime<Utc>,
    report: &mut CheckReport,
) -> u64 {
    let push = |report: &mut CheckReport, kind, detail| {
        report
            .differences
            .push(difference(&pay.batch_id, kind, &pay.payment_id, detail));
    };
    if theirs.len() > 1 {
        let ids: Vec<String> = theirs
            .iter()
            .map(|t| format!("{} ({}, {})", t.id, t.amount.amount(), t.status))
            .collect();
        push(
            report,
            KIND_DUPLICATE,
            format!(
                "the provider has {} payments for {}: {}",
                theirs.len(),
                pay.payment_id,
                ids.join(", ")
            ),
        );
    }
    // Compare with the payment we recorded when it is among them, else the first.
    let position = pay
        .provider_payment_id
        .as_deref()
        .and_then(|ours| theirs.iter().position(|t| t.id.as_str() == ours))
        .unwrap_or(0);
    let mut their = theirs.swap_remove(position);
    if let Some(ours) = pay.provider_payment_id.as_deref()
        && ours != their.id.as_str()
    {
        push(
            report,
            KIND_ID,
            format!(
                "we recorded provider payment {ours}; the provider's payment for {} is {}",
                pay.payment_id, their.id
            ),
        );
    }
    // Found by the id we recorded: it must also name this payment.
    if their.external_id.as_deref() != Some(pay.payment_id.as_str()) {
        push(
            report,
            KIND_ID,
            format!(
                "we recorded provider payment {} for {}; the provider says it is for {}",
                their.id,
                pay.payment_id,
                their.external_id.as_deref().unwrap_or("nothing")
            ),
        );
    }
    if their.amount.amount() != pay.amount {
        push(
            report,
            KIND_AMOUNT,
            format!(
                "amount {} here, {} at the provider ({})",
                pay.amount,
                their.amount.amount(),
                their.id
            ),
        );
    }
    let Some(mut provider_status) = status_of(&their) else {
        return 0;
    };
    if provider_status == pay.status {
        return 0;
    }
    if !pay.status.can_move_to(provider_status) {
        // Ours looks ahead or beside: maybe only the listing's age. Ask again.
        if let Some(Ok(fresh)) = get(listing, their.id.as_str()).await {
            their = fresh;
            provider_status = status_of(&their).unwrap_or(provider_status);
        }
        if provider_status == pay.status {
            return 0;
        }
    }
    if !pay.status.can_move_to(provider_status) {
        push(
            report,
            KIND_STATUS,
            format!(
                "{} here, {} at the provider ({}); not applied: it would not move {} forward",
                pay.status, their.status, their.id, pay.payment_id
            ),
        );
        return 0;
    }
    if their.updated_at > grace_from {
        report.provider_in_flight += 1;
        return 0;
    }
    correct(p, pay, &their, provider_status, report).await
}

/// Applies the provider's status through the webhook's transition code and reports it.
async fn correct(
    p: &Payroll,
    pay: &PaymentRecord,
    their: &Payment,
    to: PaymentStatus,
    report: &mut CheckReport,
) -> u64 {
    let details = MoveDetails {
        provider_payment_id: Some(their.id.as_str().to_owned()),
        failure_reason: their.failure_reason.clone(),
        event_id: None,
    };
    let (detail, applied) = match transitions::apply(p, &pay.batch_id, pay.row, to, &details).await
    {
        Ok(MoveOutcome::Applied { from, to }) => (
            format!(
                "{from} here, {} at the provider ({}): corrected {from} -> {to} (provider-sourced)",
                their.status, their.id
            ),
            true,
        ),
        // A webhook made the same move since we read the payment: nothing to report.
        Ok(MoveOutcome::Stale { current }) if current == to => return 0,
        Ok(MoveOutcome::Stale { current }) => (
            format!(
                "{} at the provider ({}), {current} here; not applied: it moved meanwhile",
                their.status, their.id
            ),
            false,
        ),
        Ok(MoveOutcome::Duplicate | MoveOutcome::UnknownPayment) => (
            format!(
                "{} at the provider ({}); not applied: the payment vanished",
                their.status, their.id
            ),
            false,
        ),
        Err(e) => (
            format!(
                "{} here, {} at the provider ({}); correction failed: {e}",
                pay.status, their.status, their.id
            ),
            false,
        ),
    };
    if applied {
        tracing::warn!(
            batch_id = pay.batch_id,
            row = pay.row,
            to = %to,
            "payroll payment corrected from the provider's record"
        );
    }
    report.differences.push(difference(
        &pay.batch_id,
        KIND_STATUS,
        &pay.payment_id,
        detail,
    ));
    u64::from(applied)
}
