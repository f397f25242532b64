//! The `PaymentProvider` port: the bank-side provider that holds entities (the people and
//! companies money moves between), their accounts, and the payments between accounts.
//!
//! Two adapters speak exactly the HTTP API below: `crate::provider_http::HttpProvider` (the
//! client, used in Lambda and by `payops up`) and the sandbox server in
//! `payops_local::sandbox` (started by `payops up`, or `payops sandbox`).
//!
//! # HTTP API (version 1)
//!
//! Every request carries `Authorization: Bearer <api key>`. Bodies are JSON (UTF-8, at most
//! [`REQUEST_BODY_BYTES_MAX`]). Amounts are decimal strings (`"1234.56"`), never numbers;
//! times are RFC 3339 UTC; ids are opaque strings with a prefix (`ent_`, `acc_`, `pay_`,
//! `evt_`).
//!
//! | method and path            | body / query                       | answer                    |
//! |----------------------------|------------------------------------|---------------------------|
//! | `POST /v1/entities`        | [`EntityBody`]                     | 201 [`Entity`]            |
//! | `POST /v1/accounts`        | [`AccountBody`]                    | 201 [`Account`]           |
//! | `POST /v1/payments`        | [`PaymentBody`]                    | 201 [`Payment`]           |
//! | `GET /v1/payments/{id}`    |                                    | 200 [`Payment`]           |
//! | `GET /v1/payments`         | `?limit=1..=100&cursor=…&status=…` | 200 [`PaymentPageBody`]   |
//!
//! JSON bodies, field by field (`?` marks optional fields, which may be absent or null):
//! - entity request: `{"type": "individual", "external_id"?, "individual": {"first_name",
//!   "last_name", "date_of_birth": "YYYY-MM-DD", "phone"}}` or `{"type": "corporation",
//!   "external_id"?, "corporation": {"name", "dba", "ein", "address": {"line1", "city",
//!   "state", "zip"}}}`; answer `{"id", "type", "external_id", "created_at"}`.
//! - account request: `{"holder_id": "ent_…", "type": "liability", "external_id"?,
//!   "liability": {"plaid_id", "loan_account_number"}}` (the loan an employee pays off) or
//!   `{"holder_id", "type": "ach", "external_id"?, "ach": {"routing_number",
//!   "account_number"}}` (a payer's bank account); answer `{"id", "holder_id", "type",
//!   "external_id", "mask", "created_at"}`, where `mask` is the last four digits only: the
//!   provider never sends an account number back.
//! - payment request: `{"source_id": "acc_…", "destination_id": "acc_…", "amount": "12.34",
//!   "currency": "USD", "external_id"?, "description"?}`; answer `{"id", "source_id",
//!   "destination_id", "amount", "currency", "status", "external_id", "description",
//!   "failure_reason", "created_at", "updated_at"}`. `status` is one of [`PaymentStatus`]
//!   in snake case.
//! - page: `{"data": [payment, …], "next_cursor": "…" | null}`, newest last (creation order).
//!
//! **Idempotency.** Every `POST` must carry `Idempotency-Key` (1 to [`IDEMPOTENCY_KEY_BYTES_MAX`]
//! printable ASCII bytes). Keys are scoped to the API key and the path, and kept at least 24
//! hours. A replay with the same key and the same body answers the original status and body,
//! with `Idempotent-Replayed: true`: it is not an error, the caller gets the original object.
//! The same key with a different body answers 422 `idempotency_conflict`. A replay while the
//! first request is still being processed answers 409 `request_in_progress` (retry later).
//!
//! **Rate limits.** Limits are per endpoint class, each a token bucket refilled per minute:
//! `payments` (`POST /v1/payments`), `writes` (`POST /v1/entities`, `POST /v1/accounts`) and
//! `reads` (every `GET`). Every answer carries `X-RateLimit-Limit` (requests per minute of
//! the class), `X-RateLimit-Remaining` (whole tokens left) and `X-RateLimit-Reset` (unix
//! seconds at which the bucket is full again). Beyond the limit the answer is 429
//! `rate_limited` with `Retry-After` (whole seconds, rounded up) and `Retry-After-Ms`
//! (milliseconds, the precise wait); nothing was done, so the request may be sent again as is.
//!
//! **Errors** are `{"error": {"type", "message", "field"?}}` with `type` one of
//! `invalid_request` (400, 404 on an unknown referenced id: a [`ProviderError::Rejected`]),
//! `unauthorized` (401), `not_found` (404 on `GET`), `request_in_progress` (409),
//! `idempotency_conflict` (422), `rate_limited` (429) and `unavailable` (500, 502, 503, 504:
//! transient; 503 may carry `Retry-After`).
//!
//! **Webhooks.** On every status change of a payment the provider `POST`s a [`WebhookEvent`]
//! `{"id": "evt_…", "type": "payment.updated", "created_at", "data": payment}` to the
//! configured URL (`POST /webhooks/provider` of `payops up`), signed with the shared webhook
//! secret in the header `payops_core::webhook_signature::SIGNATURE_HEADER`
//! (`Payops-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, see
//! `payops_core::webhook_signature`). Any 2xx acknowledges; anything else is retried with
//! backoff. Deliveries are at least once and unordered: receivers must ignore a duplicate
//! event id and never move a payment's status backwards (see [`PaymentStatus::rank`]).
//!
//! **Payment lifecycle.** `pending` → `processing` → `sent` → `settled`, or `failed` instead
//! of `sent`/`settled`; `reversed` (after `settled`) and `canceled` (before `processing`) are
//! terminal too.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use payops_core::{Money, Secret};
use serde::{Deserialize, Serialize};

/// Longest idempotency key the provider accepts.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;
/// Largest request body the provider accepts.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;
/// Most payments in one page of `GET /v1/payments`.
pub const PAYMENTS_PAGE_LIMIT_MAX: u32 = 100;
/// Longest `external_id` and `description`.
pub const EXTERNAL_TEXT_BYTES_MAX: usize = 255;

/// HTTP header names of the API (case-insensitive on the wire).
pub mod headers {
    pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
    pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";
    pub const RATE_LIMIT_LIMIT: &str = "X-RateLimit-Limit";
    pub const RATE_LIMIT_REMAINING: &str = "X-RateLimit-Remaining";
    pub const RATE_LIMIT_RESET: &str = "X-RateLimit-Reset";
    pub const RETRY_AFTER: &str = "Retry-After";
    pub const RETRY_AFTER_MS: &str = "Retry-After-Ms";
    /// The webhook signature header (`payops_core::webhook_signature::SIGNATURE_HEADER`).
    pub const SIGNATURE: &str = payops_core::webhook_signature::SIGNATURE_HEADER;
}

/// Environment variables of the provider's configuration (Lambda: the function's
/// environment; `payops up` points them at its sandbox).
pub const PROVIDER_URL_ENV: &str = "PAYOPS_PROVIDER_URL";
pub const PROVIDER_API_KEY_ENV: &str = "PAYOPS_PROVIDER_API_KEY";
/// The provider's allowed rates, which the shared limiter (`crate::provider_limiter`) keeps
/// every caller under: requests per minute of the `payments` and `writes` classes.
pub const PROVIDER_RATE_PAYMENTS_PER_MIN_ENV: &str = "PAYOPS_PROVIDER_RATE_PAYMENTS_PER_MIN";
pub const PROVIDER_RATE_WRITES_PER_MIN_ENV: &str = "PAYOPS_PROVIDER_RATE_WRITES_PER_MIN";

/// The provider's rate-limit classes (see "Rate limits" above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateClass {
    /// `POST /v1/payments`.
    Payments,
    /// `POST /v1/entities`, `POST /v1/accounts`.
    Writes,
    /// Every `GET`.
    Reads,
}

impl RateClass {
    pub const ALL: [RateClass; 3] = [RateClass::Payments, RateClass::Writes, RateClass::Reads];

    pub fn as_str(&self) -> &'static str {
        match self {
            RateClass::Payments => "payments",
            RateClass::Writes => "writes",
            RateClass::Reads => "reads",
        }
    }

    /// The class of a request, by method and path.
    pub fn of(method: &str, path: &str) -> RateClass {
        match (method, path) {
            ("POST", p) if p.starts_with("/v1/payments") => RateClass::Payments,
            ("POST", _) => RateClass::Writes,
            _ => RateClass::Reads,
        }
    }
}

macro_rules! provider_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;
            /// Wraps an id the provider issued. Ids are opaque; only their form is checked.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

provider_id!(
    /// The provider's id of an entity (`ent_…`).
    EntityId,
    "ent_"
);
provider_id!(
    /// The provider's id of an account (`acc_…`).
    AccountId,
    "acc_"
);
provider_id!(
    /// The provider's id of a payment (`pay_…`).
    PaymentId,
    "pay_"
);
provider_id!(
    /// The provider's id of a webhook event (`evt_…`); the same on every redelivery.
    EventId,
    "evt_"
);

/// The key that makes a `POST` safe to retry: derive it from what the request is for (e.g.
/// `payment-<batch>-<row>`), never from the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `Err` names the reason when `key` is empty, too long or not printable ASCII.
    pub fn new(key: impl Into<String>) -> Result<Self, ProviderError> {
        let key = key.into();
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
            return Err(ProviderError::rejected(
                headers::IDEMPOTENCY_KEY,
                format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} bytes"),
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ProviderError::rejected(
                headers::IDEMPOTENCY_KEY,
                "must be printable ASCII without spaces",
            ));
        }
        Ok(IdempotencyKey(key))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        IdempotencyKey::new(s).map_err(|e| e.to_string())
    }
}
impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}
impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Entities

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A person: an employee who owes the loan.
    Individual,
    /// A company: the employer paying from its accounts.
    Corporation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Individual {
    pub first_name: Secret<String>,
    pub last_name: Secret<String>,
    pub date_of_birth: Secret<NaiveDate>,
    pub phone: Secret<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    pub line1: String,
    pub city: String,
    pub state: String,
    pub zip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corporation {
    pub name: String,
    pub dba: String,
    pub ein: String,
    pub address: PostalAddress,
}

/// The details of an entity, tagged by `type` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntityDetails {
    Individual { individual: Individual },
    Corporation { corporation: Corporation },
}

impl EntityDetails {
    pub fn kind(&self) -> EntityKind {
        match self {
            EntityDetails::Individual { .. } => EntityKind::Individual,
            EntityDetails::Corporation { .. } => EntityKind::Corporation,
        }
    }
}

/// `POST /v1/entities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateEntity {
    /// Sent as the `Idempotency-Key` header. Required: the adapters answer `Rejected` when
    /// it is `None` (an `Option` only for the API's first version's sake).
    pub idempotency_key: Option<IdempotencyKey>,
    /// Our id of the entity (an employee or payer id); echoed back, not interpreted.
    pub external_id: Option<String>,
    pub details: EntityDetails,
}

/// The body of `POST /v1/entities` (the idempotency key travels in the header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityBody {
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(flatten)]
    pub details: EntityDetails,
}

impl From<&CreateEntity> for EntityBody {
    fn from(r: &CreateEntity) -> Self {
        EntityBody {
            external_id: r.external_id.clone(),
            details: r.details.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub id: EntityId,
    #[serde(rename = "type")]
    pub kind: EntityKind,
    #[serde(default)]
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Accounts

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A loan (student loan) payments go to.
    Liability,
    /// A bank account payments are drawn from by ACH debit.
    Ach,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liability {
    /// The loan servicer's institution at the aggregator (e.g. `ins_116248`).
    pub plaid_id: String,
    pub loan_account_number: Secret<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AchAccount {
    /// Nine digits, leading zeros kept.
    pub routing_number: Secret<String>,
    pub account_number: Secret<String>,
}

/// The details of an account, tagged by `type` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccountDetails {
    Liability { liability: Liability },
    Ach { ach: AchAccount },
}

impl AccountDetails {
    pub fn kind(&self) -> AccountKind {
        match self {
            AccountDetails::Liability { .. } => AccountKind::Liability,
            AccountDetails::Ach { .. } => AccountKind::Ach,
        }
    }
}

/// `POST /v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccount {
    /// Sent as the `Idempotency-Key` header. Required: the adapters answer `Rejected` when
    /// it is `None` (an `Option` only for the API's first version's sake).
    pub idempotency_key: Option<IdempotencyKey>,
    pub holder_id: EntityId,
    /// Our id of the account (e.g. the employee or payer id); echoed back.
    pub external_id: Option<String>,
    pub details: AccountDetails,
}

/// The body of `POST /v1/accounts` (the idempotency key travels in the header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBody {
    pub holder_id: EntityId,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(flatten)]
    pub details: AccountDetails,
}

impl From<&CreateAccount> for AccountBody {
    fn from(r: &CreateAccount) -> Self {
        AccountBody {
            holder_id: r.holder_id.clone(),
            external_id: r.external_id.clone(),
            details: r.details.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub holder_id: EntityId,
    #[serde(rename = "type")]
    pub kind: AccountKind,
    #[serde(default)]
    pub external_id: Option<String>,
    /// The last four digits of the account number; the full number never comes back.
    pub mask: String,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Payments

/// A payment's status. [`PaymentStatus::rank`] orders them so that a receiver of unordered
/// webhooks can refuse to move backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Processing,
    Sent,
    Settled,
    Failed,
    Reversed,
    Canceled,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 7] = [
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::Sent,
        PaymentStatus::Settled,
        PaymentStatus::Failed,
        PaymentStatus::Reversed,
        PaymentStatus::Canceled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Sent => "sent",
            PaymentStatus::Settled => "settled",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Reversed => "reversed",
            PaymentStatus::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Position in the lifecycle: a status may only be replaced by one of higher rank.
    /// `failed` and `canceled` end a payment that never settled; `reversed` follows `settled`.
    pub fn rank(&self) -> u8 {
        match self {
            PaymentStatus::Pending => 0,
            PaymentStatus::Processing => 1,
            PaymentStatus::Sent => 2,
            PaymentStatus::Settled => 3,
            PaymentStatus::Failed | PaymentStatus::Canceled => 4,
            PaymentStatus::Reversed => 5,
        }
    }

    /// No further change is expected, except `settled` → `reversed`.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Settled
                | PaymentStatus::Failed
                | PaymentStatus::Reversed
                | PaymentStatus::Canceled
        )
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/payments`: moves `amount` from `source_id` (an ACH account) to `destination_id`
/// (a liability account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePayment {
    pub idempotency_key: IdempotencyKey,
    pub source_id: AccountId,
    pub destination_id: AccountId,
    pub amount: Money,
    /// Our id of the payment; echoed back in the payment and its webhooks.
    pub external_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub source_id: AccountId,
    pub destination_id: AccountId,
    pub amount: Money,
    pub status: PaymentStatus,
    pub external_id: Option<String>,
    pub description: Option<String>,
    /// Why the payment failed, when `status` is `failed`.
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPayments {
    /// 1..=PAYMENTS_PAGE_LIMIT_MAX; 0 means the provider's default.
    pub limit: u32,
    /// `next_cursor` of the previous page.
    pub cursor: Option<PageCursor>,
    pub status: Option<PaymentStatus>,
}

/// An opaque position in a listing; pass back as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PageCursor(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPage {
    pub payments: Vec<Payment>,
    /// `None` on the last page.
    pub next_cursor: Option<PageCursor>,
}

/// What a webhook carries (`type` is `payment.updated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub data: Payment,
}

/// The only event type today.
pub const EVENT_PAYMENT_UPDATED: &str = "payment.updated";

// Payments travel as `amount` + `currency` on the wire, not as a nested Money.
mod wire {
    use super::*;
    use payops_core::Currency;
    use rust_decimal::Decimal;

    #[derive(Serialize, Deserialize)]
    pub struct PaymentWire {
        pub id: PaymentId,
        pub source_id: AccountId,
        pub destination_id: AccountId,
        #[serde(with = "rust_decimal::serde::str")]
        pub amount: Decimal,
        pub currency: Currency,
        pub status: PaymentStatus,
        #[serde(default)]
        pub external_id: Option<String>,
        #[serde(default)]
        pub description: Option<String>,
        #[serde(default)]
        pub failure_reason: Option<String>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct CreatePaymentWire {
        pub source_id: AccountId,
        pub destination_id: AccountId,
        #[serde(with = "rust_decimal::serde::str")]
        pub amount: Decimal,
        pub currency: Currency,
        #[serde(default)]
        pub external_id: Option<String>,
        #[serde(default)]
        pub description: Option<String>,
    }
}

impl Serialize for Payment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::PaymentWire {
            id: self.id.clone(),
            source_id: self.source_id.clone(),
            destination_id: self.destination_id.clone(),
            amount: self.amount.amount(),
            currency: self.amount.currency(),
            status: self.status,
            external_id: self.external_id.clone(),
            description: self.description.clone(),
            failure_reason: self.failure_reason.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = wire::PaymentWire::deserialize(d)?;
        let amount = Money::new(w.amount, w.currency).map_err(serde::de::Error::custom)?;
        Ok(Payment {
            id: w.id,
            source_id: w.source_id,
            destination_id: w.destination_id,
            amount,
            status: w.status,
            external_id: w.external_id,
            description: w.description,
            failure_reason: w.failure_reason,
            created_at: w.created_at,
            updated_at: w.updated_at,
        })
    }
}

/// The body of `POST /v1/payments` (the idempotency key goes in the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentBody {
    pub source_id: AccountId,
    pub destination_id: AccountId,
    pub amount: Money,
    pub external_id: Option<String>,
    pub description: Option<String>,
}

impl From<&CreatePayment> for PaymentBody {
    fn from(r: &CreatePayment) -> Self {
        PaymentBody {
            source_id: r.source_id.clone(),
            destination_id: r.destination_id.clone(),
            amount: r.amount,
            external_id: r.external_id.clone(),
            description: r.description.clone(),
        }
    }
}

impl Serialize for PaymentBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::CreatePaymentWire {
            source_id: self.source_id.clone(),
            destination_id: self.destination_id.clone(),
            amount: self.amount.amount(),
            currency: self.amount.currency(),
            external_id: self.external_id.clone(),
            description: self.description.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PaymentBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = wire::CreatePaymentWire::deserialize(d)?;
        let amount = Money::new(w.amount, w.currency).map_err(serde::de::Error::custom)?;
        Ok(PaymentBody {
            source_id: w.source_id,
            destination_id: w.destination_id,
            amount,
            external_id: w.external_id,
            description: w.description,
        })
    }
}

/// A page as it travels: `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPageBody {
    pub data: Vec<Payment>,
    pub next_cursor: Option<PageCursor>,
}

/// The error body: `{"error": {"type", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The `type` values of [`ErrorDetail`].
pub mod error_types {
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const NOT_FOUND: &str = "not_found";
    pub const REQUEST_IN_PROGRESS: &str = "request_in_progress";
    pub const IDEMPOTENCY_CONFLICT: &str = "idempotency_conflict";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const UNAVAILABLE: &str = "unavailable";
}

// ---------------------------------------------------------------------------------------------
// Errors and the trait

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 429: nothing was done; send the same request again after `retry_after_ms`.
    #[error("rate limited by the provider; retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// 5xx, a timeout, a refused connection: the request may or may not have been done, so
    /// retry it with the same idempotency key.
    #[error("provider unavailable: {message}")]
    Transient {
        message: String,
        /// The provider's `Retry-After`, when it sent one.
        retry_after_ms: Option<u64>,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The request can never succeed as sent (a bad field, an unknown account). `field`
    /// names the offending field when the provider said.
    #[error("provider rejected the request{}: {reason}", field.as_deref().map(|f| format!(" ({f})")).unwrap_or_default())]
    Rejected {
        reason: String,
        field: Option<String>,
    },
    /// The idempotency key was used before with a different request: a bug in key
    /// derivation, never retried. (A replay of the same request is not an error: it returns
    /// the original object.)
    #[error("idempotency key was used with a different request: {reason}")]
    Conflict { reason: String },
    /// A request with the same idempotency key is still being processed: retry later.
    #[error("a request with the same idempotency key is in progress")]
    InProgress,
    /// The object does not exist (`GET` of an unknown id).
    #[error("not found at the provider: {0}")]
    NotFound(String),
    /// The API key is missing or wrong: configuration, never retried.
    #[error("provider refused the credentials")]
    Unauthorized,
    /// The provider answered something this client does not understand.
    #[error("unexpected answer from the provider: {0}")]
    Protocol(String),
}

impl ProviderError {
    pub fn rejected(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ProviderError::Rejected {
            reason: reason.into(),
            field: Some(field.into()),
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError::Transient {
            message: message.into(),
            retry_after_ms: None,
            source: None,
        }
    }

    /// True when the same request (same idempotency key) may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Transient { .. }
                | ProviderError::InProgress
        )
    }

    /// How long the provider asked to wait, if it said.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ProviderError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            ProviderError::Transient { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }
}

impl From<ProviderError> for crate::HandlerError {
    fn from(e: ProviderError) -> Self {
        if e.is_retryable() {
            crate::HandlerError::Retryable(Box::new(e))
        } else {
            match e {
                ProviderError::Unauthorized | ProviderError::Protocol(_) => {
                    crate::HandlerError::Fatal(e.to_string())
                }
                other => crate::HandlerError::Rejected(other.to_string()),
            }
        }
    }
}

/// The payment provider. Every create is idempotent under its key: calling it again after
/// any error (or a crash) with the same key never creates a second object.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    async fn create_entity(&self, request: CreateEntity) -> Result<Entity, ProviderError>;
    async fn create_account(&self, request: CreateAccount) -> Result<Account, ProviderError>;
    async fn create_payment(&self, request: CreatePayment) -> Result<Payment, ProviderError>;
    async fn get_payment(&self, id: &PaymentId) -> Result<Payment, ProviderError>;
    /// One page, in creation order; follow `next_cursor` for the rest.
    async fn list_payments(&self, request: ListPayments) -> Result<PaymentPage, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use payops_core::Currency;
    use rust_decimal::Decimal;

    fn payment() -> Payment {
        let t = DateTime::parse_from_rfc3339("2026-11-22T03:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap();
        Payment {
            id: PaymentId::new("pay_1"),
            source_id: AccountId::new("acc_1"),
            destination_id: AccountId::new("acc_2"),
            amount: Money::new(Decimal::new(123_456, 2), Currency::USD).unwrap(),
            status: PaymentStatus::Settled,
            external_id: Some("b1-7".into()),
            description: None,
            failure_reason: None,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn payment_travels_with_a_decimal_string_amount() {
        let json = serde_json::to_value(payment()).unwrap();
        assert_eq!(json["amount"], "1234.56");
        assert_eq!(json["currency"], "USD");
        assert_eq!(json["status"], "settled");
        let back: Payment = serde_json::from_value(json).unwrap();
        assert_eq!(back, payment());
    }

    #[test]
    fn entity_request_is_tagged_by_type() {
        let req = CreateEntity {
            idempotency_key: Some(IdempotencyKey::new("k").unwrap()),
            external_id: Some("EMP-1".into()),
            details: EntityDetails::Individual {
                individual: Individual {
                    first_name: Secret::new("Ana".into()),
                    last_name: Secret::new("Lima".into()),
                    date_of_birth: Secret::new(NaiveDate::from_ymd_opt(1990, 1, 31).unwrap()),
                    phone: Secret::new("5551234".into()),
                },
            },
        };
        let json = serde_json::to_value(EntityBody::from(&req)).unwrap();
        assert_eq!(json["type"], "individual");
        assert_eq!(json["individual"]["date_of_birth"], "1990-01-31");
        assert!(json.get("idempotency_key").is_none());
        let back: EntityBody = serde_json::from_value(json).unwrap();
        assert_eq!(back.details, req.details);
        // Personal data never shows in Debug.
        assert!(!format!("{req:?}").contains("Lima"));
    }

    #[test]
    fn account_numbers_do_not_show_in_debug() {
        let req = CreateAccount {
            idempotency_key: Some(IdempotencyKey::new("k").unwrap()),
            holder_id: EntityId::new("ent_1"),
            external_id: None,
            details: AccountDetails::Ach {
                ach: AchAccount {
                    routing_number: Secret::new("011000015".into()),
                    account_number: Secret::new("000123456789".into()),
                },
            },
        };
        assert!(!format!("{req:?}").contains("123456789"));
        let json = serde_json::to_value(AccountBody::from(&req)).unwrap();
        assert_eq!(json["type"], "ach");
        assert_eq!(json["ach"]["account_number"], "000123456789");
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::new("payment-b1-7").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("a b").is_err());
        assert!(IdempotencyKey::new("é").is_err());
        assert!(IdempotencyKey::new("k".repeat(IDEMPOTENCY_KEY_BYTES_MAX)).is_ok());
        assert!(IdempotencyKey::new("k".repeat(IDEMPOTENCY_KEY_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn status_rank_never_moves_back_from_final() {
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        assert!(PaymentStatus::Settled.rank() > PaymentStatus::Processing.rank());
        assert!(PaymentStatus::Failed.rank() > PaymentStatus::Sent.rank());
        assert!(PaymentStatus::Reversed.rank() > PaymentStatus::Settled.rank());
    }

    #[test]
    fn retryable_errors() {
        assert!(ProviderError::RateLimited { retry_after_ms: 5 }.is_retryable());
        assert!(ProviderError::transient("503").is_retryable());
        assert!(ProviderError::InProgress.is_retryable());
        assert!(!ProviderError::rejected("amount", "negative").is_retryable());
        assert!(!ProviderError::Conflict { reason: "x".into() }.is_retryable());
        assert!(!ProviderError::Unauthorized.is_retryable());
    }
}
