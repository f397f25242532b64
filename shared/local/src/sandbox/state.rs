//! The sandbox's books: entities, accounts, payments and idempotency records, and the
//! lifecycle that moves payments along as the clock passes. No I/O: the server calls it under
//! a lock, the ticker calls [`SandboxState::advance`], and both are driven by a `Clock`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use payops_app::ports::provider::{
    Account, AccountBody, AccountDetails, AccountId, AccountKind, EVENT_PAYMENT_UPDATED,
    EXTERNAL_TEXT_BYTES_MAX, Entity, EntityBody, EntityDetails, EntityId, EventId,
    PAYMENTS_PAGE_LIMIT_MAX, PageCursor, Payment, PaymentBody, PaymentId, PaymentStatus,
    WebhookEvent,
};
use payops_core::payroll::check_routing;
use serde::{Deserialize, Serialize};

use super::SplitMix;
use super::journal::{Change, ChangeLog};

/// Page size when the caller gives none.
pub const PAYMENTS_PAGE_LIMIT_DEFAULT: u32 = 25;
/// Longest name-like field accepted.
pub const NAME_BYTES_MAX: usize = 200;
/// Longest account or loan number accepted.
pub const ACCOUNT_NUMBER_BYTES_MAX: usize = 34;
/// Parts per million: rates are integers, never floats.
pub const PPM: u64 = 1_000_000;

/// How long each step of a payment's life takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// `pending` → `processing`.
    pub processing_after_ms: i64,
    /// `processing` → `sent` (or `failed`).
    pub sent_after_ms: i64,
    /// `sent` → `settled`.
    pub settled_after_ms: i64,
    /// Payments that fail instead of being sent, in parts per million.
    pub failure_ppm: u64,
    /// Payments the provider cancels while still `pending` (the bank refused the instruction
    /// before it was processed), in parts per million.
    #[serde(default)]
    pub cancel_ppm: u64,
    /// Settled payments that are reversed later (an ACH return), in parts per million.
    #[serde(default)]
    pub reversal_ppm: u64,
    /// `settled` → `reversed` after this many ms, for the payments that are reversed.
    #[serde(default = "default_reversed_after_ms")]
    pub reversed_after_ms: i64,
}

fn default_reversed_after_ms() -> i64 {
    Lifecycle::default().reversed_after_ms
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            processing_after_ms: 200,
            sent_after_ms: 500,
            settled_after_ms: 1_000,
            failure_ppm: 0,
            cancel_ppm: 0,
            reversal_ppm: 0,
            reversed_after_ms: 2_000,
        }
    }
}

/// Why the sandbox refused a request: maps to a 400/404 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: String,
    /// A referenced id is unknown (404 rather than 400).
    pub not_found: bool,
}

fn invalid(field: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        reason: reason.into(),
        not_found: false,
    }
}

fn unknown(field: &str, what: &str, id: &str) -> Invalid {
    Invalid {
        field: field.to_owned(),
        reason: format!("no {what} {id}"),
        not_found: true,
    }
}

/// A stored answer to a `POST`, replayed for the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentAnswer {
    /// SHA-256 of the request body, hex: a different body under the same key is a conflict.
    pub body_sha256: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPayment {
    payment: Payment,
    /// Decided at creation, so a replay or a restart does not change the outcome.
    fails: bool,
    /// Canceled by the provider while pending (decided at creation too).
    #[serde(default)]
    cancels: bool,
    /// Reversed after it settled (decided at creation too).
    #[serde(default)]
    reverses: bool,
}

/// Everything the sandbox knows. Serialisable, so `payops up` can keep it across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxState {
    entities: HashMap<EntityId, Entity>,
    accounts: HashMap<AccountId, Account>,
    payments: Vec<StoredPayment>,
    #[serde(skip)]
    index: HashMap<PaymentId, usize>,
    /// (due time in unix ms, payment index): the next step of each live payment.
    schedule: BTreeSet<(i64, usize)>,
    /// "path key" → answer.
    idempotency: HashMap<String, IdempotentAnswer>,
    next_number: u64,
    #[serde(skip)]
    log: ChangeLog,
}

impl SandboxState {
    /// Rebuilds what is not stored (the id index) after loading.
    pub fn reindex(&mut self) {
        self.index = self
            .payments
            .iter()
            .enumerate()
            .map(|(i, p)| (p.payment.id.clone(), i))
            .collect();
    }

    /// The changes not yet journaled.
    pub fn changes(&mut self) -> &mut ChangeLog {
        &mut self.log
    }

    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Restores the id counter from the journal (it only grows).
    pub fn set_next_number(&mut self, n: u64) {
        self.next_number = self.next_number.max(n);
    }

    /// Replays a journaled change of the books (not of the outbox). Call
    /// [`SandboxState::reindex`] after the last.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Entity(e) => {
                self.entities.insert(e.id.clone(), e);
            }
            Change::Account(a) => {
                self.accounts.insert(a.id.clone(), a);
            }
            Change::Payment {
                index,
                stored,
                was_due_ms,
                due_ms,
            } => {
                match index.cmp(&self.payments.len()) {
                    std::cmp::Ordering::Less => self.payments[index] = stored,
                    std::cmp::Ordering::Equal => self.payments.push(stored),
                    // Payments are journaled in the order they were made, so no index is
                    // skipped; one that is would point past the end.
                    std::cmp::Ordering::Greater => {
                        tracing::error!(index, "sandbox journal skips a payment; change ignored");
                        return;
                    }
                }
                if let Some(was) = was_due_ms {
                    self.schedule.remove(&(was, index));
                }
                if let Some(due) = due_ms {
                    self.schedule.insert((due, index));
                }
            }
            Change::Answer { key, answer } => {
                self.idempotency.insert(key, answer);
            }
            Change::Queued { .. } | Change::Done { .. } => {}
        }
    }

    pub fn idempotent_answer(&self, scope: &str, key: &str) -> Option<&IdempotentAnswer> {
        self.idempotency.get(&format!("{scope} {key}"))
    }

    pub fn remember_answer(&mut self, scope: &str, key: &str, answer: IdempotentAnswer) {
        let key = format!("{scope} {key}");
        self.log.record(|| Change::Answer {
            key: key.clone(),
            answer: answer.clone(),
        });
        self.idempotency.insert(key, answer);
    }

    pub fn payment_count(&self) -> usize {
        self.payments.len()
    }

    /// Status changes still to come (a payment in a final status has none).
    pub fn scheduled_changes(&self) -> u64 {
        self.schedule.len() as u64
    }

    /// Payments by status, for the sandbox's stats.
    pub fn status_counts(&self) -> HashMap<PaymentStatus, u64> {
        let mut counts = HashMap::new();
        for p in &self.payments {
            *counts.entry(p.payment.status).or_insert(0) += 1;
        }
        counts
    }

    fn next_id(&mut self, prefix: &str, rng: &mut SplitMix) -> String {
        self.next_number += 1;
        // The number keeps ids unique; the random part keeps them from being guessable.
        format!(
            "{prefix}{:08}{:08x}",
            self.next_number,
            rng.next_u64() as u32
        )
    }

    pub fn create_entity(
        &mut self,
        body: EntityBody,
        now: DateTime<Utc>,
        rng: &mut SplitMix,
    ) -> Result<Entity, Invalid> {
        check_external(&body.external_id)?;
        match &body.details {
            EntityDetails::Individual { individual } => {
                check_name("individual.first_name", individual.first_name.expose())?;
                check_name("individual.last_name", individual.last_name.expose())?;
                check_name("individual.phone", individual.phone.expose())?;
            }
            EntityDetails::Corporation { corporation } => {
                check_name("corporation.name", &corporation.name)?;
                check_name("corporation.ein", &corporation.ein)?;
                check_name("corporation.address.line1", &corporation.address.line1)?;
                check_name("corporation.address.city", &corporation.address.city)?;
                check_name("corporation.address.state", &corporation.address.state)?;
                check_name("corporation.address.zip", &corporation.address.zip)?;
            }
        }
        let entity = Entity {
            id: EntityId::new(self.next_id(EntityId::PREFIX, rng)),
            kind: body.details.kind(),
            external_id: body.external_id,
            created_at: now,
        };
        self.entities.insert(entity.id.clone(), entity.clone());
        self.log.record(|| Change::Entity(entity.clone()));
        Ok(entity)
    }

    pub fn create_account(
        &mut self,
        body: AccountBody,
        now: DateTime<Utc>,
        rng: &mut SplitMix,
    ) -> Result<Account, Invalid> {
        check_external(&body.external_id)?;
        if !self.entities.contains_key(&body.holder_id) {
            return Err(unknown("holder_id", "entity", body.holder_id.as_str()));
        }
        let number = match &body.details {
            AccountDetails::Liability { liability } => {
                check_name("liability.plaid_id", &liability.plaid_id)?;
                check_number(
                    "liability.loan_account_number",
                    liability.loan_account_number.expose(),
                )?;
                liability.loan_account_number.expose()
            }
            AccountDetails::Ach { ach } => {
                if check_routing(ach.routing_number.expose()).is_err() {
                    return Err(invalid(
                        "ach.routing_number",
                        "is not a valid ABA routing number (nine digits with a check digit)",
                    ));
                }
                check_number("ach.account_number", ach.account_number.expose())?;
                ach.account_number.expose()
            }
        };
        let mask = number[number.len().saturating_sub(4)..].to_owned();
        let account = Account {
            id: AccountId::new(self.next_id(AccountId::PREFIX, rng)),
            holder_id: body.holder_id,
            kind: body.details.kind(),
            external_id: body.external_id,
            mask,
            created_at: now,
        };
        self.accounts.insert(account.id.clone(), account.clone());
        self.log.record(|| Change::Account(account.clone()));
        Ok(account)
    }

    pub fn create_payment(
        &mut self,
        body: PaymentBody,
        now: DateTime<Utc>,
        lifecycle: &Lifecycle,
        rng: &mut SplitMix,
    ) -> Result<Payment, Invalid> {
        check_external(&body.external_id)?;
        if body
            .description
            .as_ref()
            .is_some_and(|d| d.len() > EXTERNAL_TEXT_BYTES_MAX)
        {
            return Err(invalid(
                "description",
                format!("is longer than {EXTERNAL_TEXT_BYTES_MAX} bytes"),
            ));
        }
        self.check_account("source_id", &body.source_id, AccountKind::Ach)?;
        self.check_account(
            "destination_id",
            &body.destination_id,
            AccountKind::Liability,
        )?;
        if body.amount.amount() <= rust_decimal::Decimal::ZERO {
            return Err(invalid("amount", "must be positive"));
        }
        let fails = rng.next_u64() % PPM < lifecycle.failure_ppm;
        // Drawn only when asked for, so the sequence of ids and outcomes of a seed without
        // cancellations or reversals stays what it was.
        let mut draw = |ppm: u64| ppm > 0 && rng.next_u64() % PPM < ppm;
        let cancels = draw(lifecycle.cancel_ppm);
        let reverses = !fails && !cancels && draw(lifecycle.reversal_ppm);
        let payment = Payment {
            id: PaymentId::new(self.next_id(PaymentId::PREFIX, rng)),
            source_id: body.source_id,
            destination_id: body.destination_id,
            amount: body.amount,
            status: PaymentStatus::Pending,
            external_id: body.external_id,
            description: body.description,
            failure_reason: None,
            created_at: now,
            updated_at: now,
        };
        let i = self.payments.len();
        self.index.insert(payment.id.clone(), i);
        self.payments.push(StoredPayment {
            payment: payment.clone(),
            fails,
            cancels,
            reverses,
        });
        let due_ms = now.timestamp_millis() + lifecycle.processing_after_ms;
        self.schedule.insert((due_ms, i));
        self.record_payment(i, None, Some(due_ms));
        Ok(payment)
    }

    fn check_account(&self, field: &str, id: &AccountId, kind: AccountKind) -> Result<(), Invalid> {
        match self.accounts.get(id) {
            None => Err(unknown(field, "account", id.as_str())),
            Some(a) if a.kind != kind => Err(invalid(
                field,
                format!("account {id} is not an {kind:?} account"),
            )),
            Some(_) => Ok(()),
        }
    }

    pub fn payment(&self, id: &PaymentId) -> Option<&Payment> {
        self.index.get(id).map(|&i| &self.payments[i].payment)
    }

    /// One page in creation order. The cursor is the index of the next payment to look at.
    pub fn list_payments(
        &self,
        limit: u32,
        cursor: Option<&str>,
        status: Option<PaymentStatus>,
    ) -> Result<(Vec<Payment>, Option<PageCursor>), Invalid> {
        let limit = match limit {
            0 => PAYMENTS_PAGE_LIMIT_DEFAULT,
            n if n > PAYMENTS_PAGE_LIMIT_MAX => {
                return Err(invalid(
                    "limit",
                    format!("must be 1 to {PAYMENTS_PAGE_LIMIT_MAX}"),
                ));
            }
            n => n,
        } as usize;
        let start = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix("c")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n <= self.payments.len())
                .ok_or_else(|| invalid("cursor", "is not a cursor this API returned"))?,
        };
        let mut out = Vec::new();
        let mut i = start;
        while i < self.payments.len() && out.len() < limit {
            let p = &self.payments[i].payment;
            if status.is_none_or(|s| s == p.status) {
                out.push(p.clone());
            }
            i += 1;
        }
        let next = (i < self.payments.len()).then(|| PageCursor(format!("c{i}")));
        Ok((out, next))
    }

    /// Moves every payment whose next step is due at `now`, through as many steps as are
    /// due, and returns one event per change, in the order the changes happened.
    pub fn advance(
        &mut self,
        now: DateTime<Utc>,
        lifecycle: &Lifecycle,
        rng: &mut SplitMix,
    ) -> Vec<WebhookEvent> {
        let now_ms = now.timestamp_millis();
        let mut events = Vec::new();
        while let Some(&(due_ms, i)) = self.schedule.first() {
            if due_ms > now_ms {
                break;
            }
            self.schedule.pop_first();
            let at = DateTime::from_timestamp_millis(due_ms).unwrap_or(now);
            let stored = &mut self.payments[i];
            let (next, after_ms) = match stored.payment.status {
                PaymentStatus::Pending if stored.cancels => (PaymentStatus::Canceled, None),
                PaymentStatus::Pending => {
                    (PaymentStatus::Processing, Some(lifecycle.sent_after_ms))
                }
                PaymentStatus::Processing if stored.fails => (PaymentStatus::Failed, None),
                PaymentStatus::Processing => {
                    (PaymentStatus::Sent, Some(lifecycle.settled_after_ms))
                }
                PaymentStatus::Sent if stored.reverses => {
                    (PaymentStatus::Settled, Some(lifecycle.reversed_after_ms))
                }
                PaymentStatus::Sent => (PaymentStatus::Settled, None),
                PaymentStatus::Settled if stored.reverses => (PaymentStatus::Reversed, None),
                // Final statuses are never scheduled.
                _ => continue,
            };
            stored.payment.status = next;
            stored.payment.updated_at = at;
            if let Some(reason) = failure_reason(next) {
                stored.payment.failure_reason = Some(reason.to_owned());
            }
            let event_id = EventId::new(format!(
                "{}{}{:016x}",
                EventId::PREFIX,
                stored.payment.id.as_str(),
                rng.next_u64()
            ));
            events.push(WebhookEvent {
                id: event_id,
                kind: EVENT_PAYMENT_UPDATED.to_owned(),
                created_at: at,
                data: stored.payment.clone(),
            });
            let next_due_ms = after_ms.map(|after| due_ms + after);
            if let Some(next) = next_due_ms {
                self.schedule.insert((next, i));
            }
            self.record_payment(i, Some(due_ms), next_due_ms);
        }
        events
    }

    fn record_payment(&mut self, index: usize, was_due_ms: Option<i64>, due_ms: Option<i64>) {
        self.log.record(|| Change::Payment {
            index,
            stored: self.payments[index].clone(),
            was_due_ms,
            due_ms,
        });
    }
}

/// Why a payment ended in `status`, for the statuses that have a reason: those ACH gives
/// (R01 insufficient funds, R02 account closed, an instruction the bank refused).
fn failure_reason(status: PaymentStatus) -> Option<&'static str> {
    match status {
        PaymentStatus::Failed => Some("insufficient_funds"),
        PaymentStatus::Canceled => Some("canceled_by_bank"),
        PaymentStatus::Reversed => Some("account_closed"),
        _ => None,
    }
}

fn check_external(external_id: &Option<String>) -> Result<(), Invalid> {
    match external_id {
        Some(e) if e.len() > EXTERNAL_TEXT_BYTES_MAX => Err(invalid(
            "external_id",
            format!("is longer than {EXTERNAL_TEXT_BYTES_MAX} bytes"),
        )),
        _ => Ok(()),
    }
}

fn check_name(field: &str, value: &str) -> Result<(), Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.len() > NAME_BYTES_MAX {
        return Err(invalid(
            field,
            format!("is longer than {NAME_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

fn check_number(field: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty()
        || value.len() > ACCOUNT_NUMBER_BYTES_MAX
        || !value.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(invalid(
            field,
            format!("must be 1 to {ACCOUNT_NUMBER_BYTES_MAX} letters or digits"),
        ));
    }
    Ok(())
}
