//! Account provisioning (SQS): for one employee of a batch, make sure the provider has the
//! payers of its rows (a corporation and its ACH source account each) and the employee (an
//! individual and a liability account per loan), then enqueue the employee's payments.
//!
//! Each provider object is made once, ever, even with many workers at once:
//! 1. an idempotency key derived from what the object is (`payroll-entity-emp-{id}`), so
//!    any worker that calls again — after a redelivery, a crash after the call, or a claim
//!    that expired mid-call — gets the same object back from the provider instead of a
//!    second one;
//! 2. for the payers, which every employee of the batch shares, also a claim in the table —
//!    the party item is put only if absent (or its claim expired), so one worker at a time
//!    calls the provider for a payer while the others wait for its result instead of
//!    spending the provider's rate limit on the same object. An employee's own entity and
//!    loan accounts are made by that employee's message alone, so they go without a claim
//!    (a write fewer each; a redelivered message racing the first is answered by the key).
//!
//! What does not depend on each other is done side by side: the payers (shared by every
//! employee of the batch, so after the first few employees only looked up), and the
//! employee's loan accounts once the employee's entity exists. An employee is then a few
//! round trips deep instead of one per object, which is what bounded the whole payroll run.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::NaiveDate;
use payops_core::Secret;

use super::layout::{self, PartyKind, attr};
use super::materialise::{AccountsMessage, PaymentMessage, send_all};
use super::{Disbursement, PayrollAppError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};
use crate::ports::provider::{
    AccountDetails, AchAccount, Corporation, CreateAccount, CreateEntity, EntityDetails, EntityId,
    IdempotencyKey, Individual, Liability, PostalAddress,
};
use crate::ports::table::BATCH_GET_KEYS_MAX;
use crate::ports::{Condition, Item, Key, OutgoingMessage, TableError, UpdateAction, Value};

/// How long a claim keeps other workers off a party (longer than a provider call with its
/// retries normally takes; after it, another worker may take over, safely, by the key).
pub const CLAIM_LEASE_MS: i64 = 60_000;
/// How long a worker waits for another worker's claim before giving the message back.
pub const CLAIM_WAIT_MS: u64 = 20_000;
/// Pause between two looks at another worker's claim.
pub const CLAIM_POLL_MS: u64 = 50;
/// Messages of one SQS batch handled at once.
pub const MESSAGE_CONCURRENCY: usize = 10;

const CLAIMED: &str = "CLAIMED";
const DONE: &str = "DONE";

pub struct AccountsWorker {
    d: Disbursement,
}

impl AccountsWorker {
    pub fn new(d: Disbursement) -> Self {
        AccountsWorker { d }
    }
}

/// Who else may make the same party at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contention {
    /// Shared by many messages (a batch's payers): made under a claim.
    Shared,
    /// One message's own (an employee's entity and loans): made without a claim.
    Own,
}

/// What to create at the provider for a party, once its claim is held.
enum Creation {
    Entity(CreateEntity),
    Account(CreateAccount),
}

fn key(text: String) -> Result<IdempotencyKey, PayrollAppError> {
    IdempotencyKey::new(text).map_err(PayrollAppError::from)
}

impl AccountsWorker {
    async fn handle_message(&self, message: &SqsMessage) -> Result<(), PayrollAppError> {
        let body = message
            .body
            .as_deref()
            .ok_or_else(|| PayrollAppError::invalid("body", "message has no body"))?;
        let m: AccountsMessage = serde_json::from_str(body).map_err(|e| {
            PayrollAppError::invalid("body", format!("not an accounts message: {e}"))
        })?;
        self.provision(&m).await
    }

    /// Provisions one employee (and its rows' payers), then enqueues its payments.
    pub async fn provision(&self, m: &AccountsMessage) -> Result<(), PayrollAppError> {
        let p = &self.d.payroll;
        let employee = p
            .table
            .get(&layout::employee_key(&m.batch_id, &m.employee_id))
            .await?
            .ok_or_else(|| {
                PayrollAppError::invalid(
                    "employee_id",
                    format!(
                        "batch {} has no {}",
                        m.batch_id,
                        layout::employee_ref(&m.employee_id)
                    ),
                )
            })?;
        let payers = list_of_strings(&employee, "payers");
        for chunk in payers.chunks(BATCH_GET_KEYS_MAX) {
            self.ensure_payers(&m.batch_id, chunk).await?;
        }
        self.ensure_employee(&employee, &m.employee_id).await?;
        let messages: Vec<OutgoingMessage> = rows_of(&employee)
            .into_iter()
            .map(|row| {
                let m = PaymentMessage {
                    batch_id: m.batch_id.clone(),
                    row,
                };
                OutgoingMessage::new(serde_json::to_string(&m).unwrap_or_default())
            })
            .collect();
        send_all(p.payments_queue.as_ref(), messages).await?;
        Ok(())
    }

    /// Makes sure the provider has the employee's entity and a liability account per loan.
    /// One read finds what exists (the accounts' keys do not depend on the entity's id).
    async fn ensure_employee(
        &self,
        employee: &Item,
        employee_id: &str,
    ) -> Result<(), PayrollAppError> {
        let p = &self.d.payroll;
        let entity_key = layout::entity_key(PartyKind::Employee, employee_id);
        let loans = loans_of(employee, employee_id)?;
        let mut keys = vec![entity_key.clone()];
        keys.extend(loans.iter().map(|loan| loan.key.clone()));
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_KEYS_MAX) {
            for item in p.table.batch_get(chunk).await? {
                if let Some(key) = item.key() {
                    found.insert(key, item);
                }
            }
        }
        let individual = individual_of(employee)?;
        let entity = Creation::Entity(CreateEntity {
            idempotency_key: Some(key(format!("payroll-entity-emp-{employee_id}"))?),
            external_id: Some(employee_id.to_owned()),
            details: EntityDetails::Individual { individual },
        });
        let holder_id = EntityId::new(
            self.ensure_from(
                &entity_key,
                entity,
                Some(found.remove(&entity_key)),
                Contention::Own,
            )
            .await?,
        );
        all_to_the_end(loans.into_iter().map(|loan| {
            let current = found.remove(&loan.key);
            let request = loan.request(employee_id, &holder_id);
            async move {
                let creation = Creation::Account(request?);
                self.ensure_from(&loan.key, creation, Some(current), Contention::Own)
                    .await
            }
        }))
        .await?;
        Ok(())
    }

    /// Makes sure the provider has `payer_ids` (at most [`BATCH_GET_KEYS_MAX`]) with their
    /// source accounts. The payers are shared by every employee of the batch, so after the
    /// first few employees this is two reads: the payers, then their accounts.
    async fn ensure_payers(
        &self,
        batch_id: &str,
        payer_ids: &[String],
    ) -> Result<(), PayrollAppError> {
        let p = &self.d.payroll;
        let keys: Vec<Key> = payer_ids
            .iter()
            .map(|id| layout::payer_key(batch_id, id))
            .collect();
        let items = p.table.batch_get(&keys).await?;
        let mut payers = Vec::with_capacity(payer_ids.len());
        for (payer_id, payer_key) in payer_ids.iter().zip(&keys) {
            let item = items
                .iter()
                .find(|i| i.key().as_ref() == Some(payer_key))
                .ok_or_else(|| {
                    PayrollAppError::Corrupt(format!("batch {batch_id} payer {payer_id}"))
                })?;
            let fingerprint = item.s(attr::SOURCE_FINGERPRINT).ok_or_else(|| {
                PayrollAppError::Corrupt(format!("payer {payer_id}.{}", attr::SOURCE_FINGERPRINT))
            })?;
            let account_key = layout::party_account_key(PartyKind::Payer, payer_id, fingerprint);
            payers.push((payer_id.as_str(), item, fingerprint, account_key));
        }
        let account_keys: Vec<Key> = payers.iter().map(|(_, _, _, k)| k.clone()).collect();
        let accounts = p.table.batch_get(&account_keys).await?;
        let missing = payers.iter().filter(|(_, _, _, account_key)| {
            let account = accounts
                .iter()
                .find(|i| i.key().as_ref() == Some(account_key));
            provider_id_of(account).is_none()
        });
        all_to_the_end(missing.map(|(payer_id, item, fingerprint, account_key)| {
            self.provision_payer(payer_id, item, fingerprint, account_key)
        }))
        .await?;
        Ok(())
    }

    /// Creates the payer's entity and its source account (`fingerprint`, at `account_key`),
    /// under claims.
    async fn provision_payer(
        &self,
        payer_id: &str,
        item: &Item,
        fingerprint: &str,
        account_key: &Key,
    ) -> Result<(), PayrollAppError> {
        let text = |name: &str| {
            item.s(name)
                .map(str::to_owned)
                .ok_or_else(|| PayrollAppError::Corrupt(format!("payer {payer_id}.{name}")))
        };
        let entity_key = layout::entity_key(PartyKind::Payer, payer_id);
        let holder_id = self
            .ensure(
                &entity_key,
                Creation::Entity(CreateEntity {
                    idempotency_key: Some(key(format!("payroll-entity-payer-{payer_id}"))?),
                    external_id: Some(payer_id.to_owned()),
                    details: EntityDetails::Corporation {
                        corporation: Corporation {
                            name: text(attr::NAME)?,
                            dba: text(attr::DBA)?,
                            ein: text(attr::EIN)?,
                            address: PostalAddress {
                                line1: text(attr::LINE1)?,
                                city: text(attr::CITY)?,
                                state: text(attr::STATE)?,
                                zip: text(attr::ZIP)?,
                            },
                        },
                    },
                }),
            )
            .await?;
        let request = CreateAccount {
            idempotency_key: Some(key(format!(
                "payroll-account-ach-{payer_id}-{fingerprint}"
            ))?),
            holder_id: EntityId::new(holder_id),
            external_id: Some(format!("{payer_id}:{fingerprint}")),
            details: AccountDetails::Ach {
                ach: AchAccount {
                    routing_number: Secret::new(text(attr::ROUTING)?),
                    account_number: Secret::new(text(attr::ACCOUNT_NUMBER)?),
                },
            },
        };
        self.ensure(account_key, Creation::Account(request)).await?;
        Ok(())
    }

    /// The provider id stored at `key` of a payer's party, creating the object under a claim
    /// if there is none.
    async fn ensure(&self, key: &Key, creation: Creation) -> Result<String, PayrollAppError> {
        self.ensure_from(key, creation, None, Contention::Shared)
            .await
    }

    /// As [`Self::ensure`], starting from `read`, the item at `key` as just read (`Some(None)`:
    /// just found missing) instead of reading it first, and with a claim only for a
    /// [`Contention::Shared`] party.
    async fn ensure_from(
        &self,
        key: &Key,
        creation: Creation,
        mut read: Option<Option<Item>>,
        contention: Contention,
    ) -> Result<String, PayrollAppError> {
        let p = &self.d.payroll;
        let mut waited_ms = 0;
        loop {
            let current = match read.take() {
                Some(current) => current,
                None => p.table.get(key).await?,
            };
            if let Some(id) = provider_id_of(current.as_ref()) {
                return Ok(id);
            }
            if contention == Contention::Own {
                return self.create(key, &creation).await;
            }
            let now_ms = p.clock.now().timestamp_millis();
            let held_until = current
                .as_ref()
                .and_then(|i| i.n(attr::CLAIMED_UNTIL_MS))
                .and_then(|n| i64::try_from(n).ok());
            let free = held_until.is_none_or(|until| until <= now_ms);
            if free
                && self
                    .claim(key, current.is_some(), held_until, now_ms)
                    .await?
            {
                return self.create(key, &creation).await;
            }
            if waited_ms >= CLAIM_WAIT_MS {
                return Err(PayrollAppError::NotReady(format!(
                    "{} is being created by another worker",
                    key.pk
                )));
            }
            tokio::time::sleep(Duration::from_millis(CLAIM_POLL_MS)).await;
            waited_ms += CLAIM_POLL_MS;
        }
    }

    /// Takes the claim on `key`: `true` if this worker now holds it.
    async fn claim(
        &self,
        key: &Key,
        exists: bool,
        held_until: Option<i64>,
        now_ms: i64,
    ) -> Result<bool, PayrollAppError> {
        let p = &self.d.payroll;
        let condition = match (exists, held_until) {
            (false, _) => Condition::ItemNotExists,
            (true, Some(until)) => Condition::And(vec![
                Condition::not_exists(attr::PROVIDER_ID),
                Condition::eq(attr::CLAIMED_UNTIL_MS, until),
            ]),
            (true, None) => Condition::And(vec![
                Condition::not_exists(attr::PROVIDER_ID),
                Condition::not_exists(attr::CLAIMED_UNTIL_MS),
            ]),
        };
        let item = Item::new(key)
            .with(attr::CLAIM_STATE, CLAIMED)
            .with(attr::CLAIMED_UNTIL_MS, now_ms + CLAIM_LEASE_MS);
        match p.table.put(item, Some(condition)).await {
            Ok(()) => Ok(true),
            Err(TableError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn create(&self, key: &Key, creation: &Creation) -> Result<String, PayrollAppError> {
        let p = &self.d.payroll;
        let id = match creation {
            Creation::Entity(request) => self
                .d
                .provider
                .create_entity(request.clone())
                .await?
                .id
                .as_str()
                .to_owned(),
            Creation::Account(request) => self
                .d
                .provider
                .create_account(request.clone())
                .await?
                .id
                .as_str()
                .to_owned(),
        };
        p.table
            .update(
                key,
                vec![
                    UpdateAction::set(attr::PROVIDER_ID, id.as_str()),
                    UpdateAction::set(attr::CLAIM_STATE, DONE),
                    UpdateAction::remove(attr::CLAIMED_UNTIL_MS),
                ],
                None,
            )
            .await?;
        Ok(id)
    }
}

/// Runs `calls` side by side, each to its end even when a sibling fails (`join_all`, not
/// `try_join_all`): a call dropped between its claim and its record would keep the party from
/// other workers until the claim's lease ran out. The first error, if any.
async fn all_to_the_end<T>(
    calls: impl IntoIterator<Item = impl std::future::Future<Output = Result<T, PayrollAppError>>>,
) -> Result<Vec<T>, PayrollAppError> {
    futures::future::join_all(calls).await.into_iter().collect()
}

/// One loan of an employee: its party key and what the provider needs for its account.
struct Loan {
    key: Key,
    fingerprint: String,
    plaid_id: String,
    loan_account_number: Secret<String>,
}

impl Loan {
    /// The liability account to make for the loan, held by the entity `holder_id`.
    fn request(
        &self,
        employee_id: &str,
        holder_id: &EntityId,
    ) -> Result<CreateAccount, PayrollAppError> {
        let fingerprint = &self.fingerprint;
        Ok(CreateAccount {
            idempotency_key: Some(key(format!(
                "payroll-account-loan-{employee_id}-{fingerprint}"
            ))?),
            holder_id: holder_id.clone(),
            external_id: Some(format!("{employee_id}:{fingerprint}")),
            details: AccountDetails::Liability {
                liability: Liability {
                    plaid_id: self.plaid_id.clone(),
                    loan_account_number: self.loan_account_number.clone(),
                },
            },
        })
    }
}

/// The employee's loans, each with its party key.
fn loans_of(employee: &Item, employee_id: &str) -> Result<Vec<Loan>, PayrollAppError> {
    let corrupt =
        || PayrollAppError::Corrupt(format!("{} loans", layout::employee_ref(employee_id)));
    let Some(Value::L(loans)) = employee.get("loans") else {
        return Err(corrupt());
    };
    let mut out = Vec::with_capacity(loans.len());
    for loan in loans {
        let Value::M(loan) = loan else {
            return Err(corrupt());
        };
        let text = |name: &str| {
            loan.get(name)
                .and_then(Value::as_s)
                .map(str::to_owned)
                .ok_or_else(corrupt)
        };
        let fingerprint = text(attr::LOAN_FINGERPRINT)?;
        out.push(Loan {
            key: layout::party_account_key(PartyKind::Employee, employee_id, &fingerprint),
            fingerprint,
            plaid_id: text(attr::PLAID_ID)?,
            loan_account_number: Secret::new(text(attr::LOAN_ACCOUNT_NUMBER)?),
        });
    }
    Ok(out)
}

pub fn provider_id_of(item: Option<&Item>) -> Option<String> {
    item?.s(attr::PROVIDER_ID).map(str::to_owned)
}

fn list_of_strings(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(Value::L(values)) => values
            .iter()
            .filter_map(|v| v.as_s().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn rows_of(item: &Item) -> Vec<u32> {
    match item.get(attr::ROWS) {
        Some(Value::L(values)) => values
            .iter()
            .filter_map(|v| v.as_n().and_then(|n| u32::try_from(n).ok()))
            .collect(),
        _ => Vec::new(),
    }
}

fn individual_of(item: &Item) -> Result<Individual, PayrollAppError> {
    let id = item.s(attr::EMPLOYEE_ID).unwrap_or("?");
    let corrupt = || PayrollAppError::Corrupt(layout::employee_ref(id));
    let text = |name: &str| item.s(name).map(str::to_owned).ok_or_else(corrupt);
    let dob = NaiveDate::parse_from_str(&text(attr::DATE_OF_BIRTH)?, "%Y-%m-%d")
        .map_err(|_| corrupt())?;
    Ok(Individual {
        first_name: Secret::new(text(attr::FIRST_NAME)?),
        last_name: Secret::new(text(attr::LAST_NAME)?),
        date_of_birth: Secret::new(dob),
        phone: Secret::new(text(attr::PHONE)?),
    })
}

#[async_trait]
impl SqsHandler for AccountsWorker {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        use futures::StreamExt;
        let results: Vec<(usize, Result<(), PayrollAppError>)> =
            futures::stream::iter(0..event.records.len())
                .map(|i| {
                    let records = &event.records;
                    async move { (i, self.handle_message(&records[i]).await) }
                })
                .buffer_unordered(MESSAGE_CONCURRENCY)
                .collect()
                .await;
        let mut failures = BatchFailures::default();
        for (i, result) in results {
            if let Err(e) = result {
                let message = &event.records[i];
                tracing::warn!(
                    message_id = message.message_id.as_deref().unwrap_or("-"),
                    error = %e,
                    "payroll accounts message failed"
                );
                failures.add(message);
            }
        }
        failures.into_response()
    }
}
