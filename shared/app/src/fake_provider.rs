//! An in-memory payment provider for tests, idempotent by key as the real API is: a replayed
//! create returns the object the first call made. Its books can be bent the ways a real
//! provider's can (a status moved without a webhook, an amount that differs, a payment it
//! lost or one that is not ours) so that tests of the nightly check have something to find.
//! Ids are `ent_{n}`, `acc_{n}` and `pay_{n}` in creation order. Built only with the `fakes`
//! feature, which the test binaries of payops-aws and payops-local turn on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payops_core::{Currency, Money};
use rust_decimal::Decimal;

use crate::ports::provider::{
    Account, AccountId, CreateAccount, CreateEntity, CreatePayment, Entity, EntityId, ListPayments,
    PAYMENTS_PAGE_LIMIT_MAX, PageCursor, Payment, PaymentId, PaymentPage, PaymentProvider,
    PaymentStatus, ProviderError,
};
use crate::ports::provider::{EVENT_PAYMENT_UPDATED, EventId, WebhookEvent};

/// The page size `list_payments` uses when the request names none.
pub const FAKE_PAGE_LIMIT_DEFAULT: usize = 10;

pub struct FakeProvider {
    /// The creation time stamped on everything it makes.
    pub created_at: DateTime<Utc>,
    entities: Mutex<HashMap<String, Entity>>,
    accounts: Mutex<HashMap<String, Account>>,
    /// By idempotency key.
    payments: Mutex<HashMap<String, Payment>>,
    /// Entities and accounts actually created (replays not counted).
    pub creates: AtomicU64,
    /// Calls of `create_entity` and `create_payment`, replays included.
    pub entity_calls: AtomicU64,
    pub payment_calls: AtomicU64,
    /// The next payment call succeeds at the provider but its answer is lost.
    pub lose_next_answer: AtomicBool,
    /// Pages served by `list_payments`.
    pub pages_listed: AtomicU64,
    /// `list_payments` fails (as after the client's retries) once this many pages were served.
    pub listing_fails_after: Mutex<Option<u64>>,
}

/// A poisoned lock means a test panicked while holding it; the maps are still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeProvider {
    pub fn new(created_at: DateTime<Utc>) -> FakeProvider {
        FakeProvider {
            created_at,
            entities: Mutex::default(),
            accounts: Mutex::default(),
            payments: Mutex::default(),
            creates: AtomicU64::new(0),
            entity_calls: AtomicU64::new(0),
            payment_calls: AtomicU64::new(0),
            lose_next_answer: AtomicBool::new(false),
            pages_listed: AtomicU64::new(0),
            listing_fails_after: Mutex::new(None),
        }
    }

    /// Entities made so far.
    pub fn entity_count(&self) -> usize {
        lock(&self.entities).len()
    }

    /// Accounts made so far.
    pub fn account_count(&self) -> usize {
        lock(&self.accounts).len()
    }

    /// Payments it holds (made, foreign and legacy).
    pub fn payment_count(&self) -> usize {
        lock(&self.payments).len()
    }

    /// Every payment in creation order.
    pub fn in_creation_order(&self) -> Vec<Payment> {
        let mut all: Vec<Payment> = lock(&self.payments).values().cloned().collect();
        all.sort_by_key(|p| {
            p.id.as_str()
                .strip_prefix(PaymentId::PREFIX)
                .and_then(|n| n.parse::<u64>().ok())
        });
        all
    }

    /// Changes the provider's record of a payment at `at` as the provider would (no webhook
    /// sent). False when it has no such payment.
    pub fn set_status(&self, id: &PaymentId, status: PaymentStatus, at: DateTime<Utc>) -> bool {
        self.with_payment(id, |p| {
            p.status = status;
            p.updated_at = at;
        })
    }

    /// The provider's own record moves as it reports, at `at` (forward only, as the real one
    /// does).
    pub fn advance(&self, id: &PaymentId, status: PaymentStatus, at: DateTime<Utc>) {
        self.with_payment(id, |p| {
            if status.rank() > p.status.rank() {
                p.status = status;
                p.updated_at = at;
            }
        });
    }

    /// The webhook the provider sends when `payment` moves to `status`, its own record moved
    /// first (forward only).
    pub fn report(
        &self,
        event_id: &str,
        payment: &Payment,
        status: PaymentStatus,
        at: DateTime<Utc>,
    ) -> WebhookEvent {
        self.advance(&payment.id, status, at);
        let mut data = payment.clone();
        data.status = status;
        WebhookEvent {
            id: EventId::new(event_id),
            kind: EVENT_PAYMENT_UPDATED.to_owned(),
            created_at: at,
            data,
        }
    }

    /// The provider's amount of a payment is not what we asked for.
    pub fn set_amount(&self, id: &PaymentId, amount: Decimal) -> bool {
        match Money::new(amount, Currency::USD) {
            Ok(money) => self.with_payment(id, |p| p.amount = money),
            Err(_) => false,
        }
    }

    /// Adds a payment the provider has and we did not make (under a key of its own).
    pub fn add_foreign(&self, like: &Payment, external_id: Option<String>) -> Payment {
        let next = self.in_creation_order().len() + 1000;
        let mut p = like.clone();
        p.id = PaymentId::new(format!("{}{next}", PaymentId::PREFIX));
        p.external_id = external_id;
        lock(&self.payments).insert(format!("foreign-{next}"), p.clone());
        p
    }

    /// Settled payments made before ours for no batch of ours (another system, a mistake);
    /// they take the first ids.
    pub fn add_legacy(&self, count: usize) {
        let mut m = lock(&self.payments);
        let first = m.len();
        for i in first..first + count {
            m.insert(
                format!("legacy-{i}"),
                Payment {
                    id: PaymentId::new(format!("{}{i}", PaymentId::PREFIX)),
                    source_id: AccountId::new("acc_legacy_src"),
                    destination_id: AccountId::new("acc_legacy_dst"),
                    // 10.00 USD is a valid amount: two places, positive.
                    amount: Money::new(Decimal::new(1000, 2), Currency::USD)
                        .unwrap_or_else(|_| unreachable!("10.00 USD is valid")),
                    status: PaymentStatus::Settled,
                    external_id: Some(format!("legacy-{i}")),
                    description: None,
                    failure_reason: None,
                    created_at: self.created_at,
                    updated_at: self.created_at,
                },
            );
        }
    }

    /// The provider loses a payment.
    pub fn forget(&self, id: &PaymentId) {
        lock(&self.payments).retain(|_, p| &p.id != id);
    }

    fn with_payment(&self, id: &PaymentId, change: impl FnOnce(&mut Payment)) -> bool {
        match lock(&self.payments).values_mut().find(|p| &p.id == id) {
            Some(p) => {
                change(p);
                true
            }
            None => false,
        }
    }
}

impl Default for FakeProvider {
    fn default() -> Self {
        FakeProvider::new(DateTime::<Utc>::UNIX_EPOCH)
    }
}

fn required_key(
    key: Option<crate::ports::provider::IdempotencyKey>,
) -> Result<String, ProviderError> {
    key.map(|k| k.as_str().to_owned())
        .ok_or_else(|| ProviderError::rejected("Idempotency-Key", "required"))
}

#[async_trait]
impl PaymentProvider for FakeProvider {
    async fn create_entity(&self, r: CreateEntity) -> Result<Entity, ProviderError> {
        self.entity_calls.fetch_add(1, Ordering::SeqCst);
        let key = required_key(r.idempotency_key.clone())?;
        let mut m = lock(&self.entities);
        let n = m.len();
        Ok(m.entry(key)
            .or_insert_with(|| {
                self.creates.fetch_add(1, Ordering::SeqCst);
                Entity {
                    id: EntityId::new(format!("{}{n}", EntityId::PREFIX)),
                    kind: r.details.kind(),
                    external_id: r.external_id.clone(),
                    created_at: self.created_at,
                }
            })
            .clone())
    }

    async fn create_account(&self, r: CreateAccount) -> Result<Account, ProviderError> {
        let key = required_key(r.idempotency_key.clone())?;
        let mut m = lock(&self.accounts);
        let n = m.len();
        Ok(m.entry(key)
            .or_insert_with(|| {
                self.creates.fetch_add(1, Ordering::SeqCst);
                Account {
                    id: AccountId::new(format!("{}{n}", AccountId::PREFIX)),
                    holder_id: r.holder_id.clone(),
                    kind: r.details.kind(),
                    external_id: r.external_id.clone(),
                    mask: "6789".into(),
                    created_at: self.created_at,
                }
            })
            .clone())
    }

    async fn create_payment(&self, r: CreatePayment) -> Result<Payment, ProviderError> {
        self.payment_calls.fetch_add(1, Ordering::SeqCst);
        let payment = {
            let mut m = lock(&self.payments);
            let n = m.len();
            m.entry(r.idempotency_key.as_str().to_owned())
                .or_insert_with(|| Payment {
                    id: PaymentId::new(format!("{}{n}", PaymentId::PREFIX)),
                    source_id: r.source_id.clone(),
                    destination_id: r.destination_id.clone(),
                    amount: r.amount,
                    status: PaymentStatus::Pending,
                    external_id: r.external_id.clone(),
                    description: r.description.clone(),
                    failure_reason: None,
                    created_at: self.created_at,
                    updated_at: self.created_at,
                })
                .clone()
        };
        if self.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(ProviderError::transient(
                "connection reset after the request",
            ));
        }
        Ok(payment)
    }

    async fn get_payment(&self, id: &PaymentId) -> Result<Payment, ProviderError> {
        lock(&self.payments)
            .values()
            .find(|p| &p.id == id)
            .cloned()
            .ok_or_else(|| ProviderError::NotFound(id.to_string()))
    }

    /// Cursor pagination as the API documents it: creation order, `limit` 1..=100 (0: the
    /// default), an opaque cursor (here the index of the next payment), an optional status.
    async fn list_payments(&self, r: ListPayments) -> Result<PaymentPage, ProviderError> {
        let served = self.pages_listed.fetch_add(1, Ordering::SeqCst);
        if lock(&self.listing_fails_after).is_some_and(|n| served >= n) {
            return Err(ProviderError::transient("503 from the provider"));
        }
        let limit = match r.limit {
            0 => FAKE_PAGE_LIMIT_DEFAULT,
            n if n > PAYMENTS_PAGE_LIMIT_MAX => {
                return Err(ProviderError::rejected("limit", "must be 1 to 100"));
            }
            n => n as usize,
        };
        let start = match &r.cursor {
            None => 0,
            Some(PageCursor(c)) => c
                .parse::<usize>()
                .map_err(|_| ProviderError::rejected("cursor", "not a cursor of ours"))?,
        };
        let all: Vec<Payment> = self
            .in_creation_order()
            .into_iter()
            .filter(|p| r.status.is_none_or(|s| s == p.status))
            .collect();
        let end = (start + limit).min(all.len());
        Ok(PaymentPage {
            payments: all.get(start..end).unwrap_or_default().to_vec(),
            next_cursor: (end < all.len()).then(|| PageCursor(end.to_string())),
        })
    }
}
