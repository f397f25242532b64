//! The instalment worker (SQS, partial batch failure): collects one instalment exactly once.
//!
//! 1. **Claim** with a conditional write: the instalment must be due today or earlier and
//!    either `due` or `in_progress` under an expired lease; the write sets `in_progress`, a
//!    fresh lease owner and `lease_expires_ms = now + LEASE_MS`. Two workers racing: one
//!    condition holds, the other fails, and the loser acknowledges its message.
//! 2. **Debit** with a bank transaction whose idempotency key is the instalment's own
//!    (`#INST#{advance}#{nnn}#{round}`). A worker that dies after the debit leaves the lease to
//!    expire; whoever claims next replays the same key and gets the first result, so the
//!    customer is debited once.
//! 3. **Settle** under the lease (`lease_owner = me`): `paid`, or, when the debit failed, the
//!    roll-forward in one transaction — the failed instalment closes and its amount is added
//!    to the next instalment still `due` (or a new one a week after the last). An instalment
//!    under a lease is never a roll target, so the amount of a debit never changes between
//!    its retries.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use payops_core::accounts::advance::{RollTarget, roll_target};
use payops_core::accounts::transaction::format_timestamp;
use payops_core::accounts::{Direction, InstalmentStatus, TxStatus};
use rust_decimal::Decimal;

use super::advances::{debit_reason, load};
use super::collector::InstalmentMessage;
use super::layout::{self, GSI2_PK, GSI2_SK, InstalmentRecord, TxRecord, attr};
use super::money::{self, MoveRequest};
use super::{Accounts, AccountsError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};
use crate::ports::{Condition, MetricRecord, TableError, UpdateAction, Write};

/// How long a claim protects an instalment. Longer than one worker's debit and settle by far;
/// the queue's visibility timeout should exceed it, so a redelivery finds the lease expired.
pub const LEASE_MS: i64 = 60_000;
/// Attempts of a roll-forward whose target changed under it (claimed or created meanwhile).
pub const ROLL_ATTEMPTS_MAX: usize = 8;
/// Longest message body read.
pub const MESSAGE_BYTES_MAX: usize = 1024;

pub const FUNCTION_DIMENSION: &str = "advances-worker";
pub const METRIC_INSTALMENTS_PAID: &str = "instalments_paid";
pub const METRIC_INSTALMENTS_FAILED: &str = "instalments_failed";
pub const METRIC_MESSAGES_FAILED: &str = "messages_failed";

/// The result of [`Worker::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lease is ours: the instalment as it is after the claim.
    Claimed(InstalmentRecord),
    /// Nothing to do, and why.
    Skipped(WorkerOutcome),
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerOutcome {
    Paid {
        transaction_id: String,
    },
    /// The debit failed; the amount moved to instalment `into`.
    RolledForward {
        into: u32,
    },
    /// The debit failed at the last possible instalment number; it is due again on a later date.
    Rescheduled,
    /// Already paid or failed: a duplicate message.
    AlreadyClosed,
    /// Not due yet (a message from a collector running ahead); the collector sends it again.
    NotDue,
    /// Another worker holds a live lease; it will settle the instalment.
    Leased,
    /// Our lease expired and another worker took over; it will settle the instalment.
    LeaseLost,
    /// No such instalment.
    Missing,
}

pub struct Worker {
    state: Accounts,
    /// Prefix of this worker's lease owners (one process, many claims).
    name: String,
}

impl Worker {
    pub fn new(state: Accounts) -> Self {
        Worker {
            state,
            name: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Claims, debits and settles one instalment.
    pub async fn process(&self, msg: &InstalmentMessage) -> Result<WorkerOutcome, AccountsError> {
        let instalment = match self.claim(msg).await? {
            Claim::Claimed(i) => i,
            Claim::Skipped(outcome) => return Ok(outcome),
        };
        let tx = self.debit(&instalment).await?;
        self.settle(&instalment, &tx).await
    }

    /// Step 1: the conditional lease.
    pub async fn claim(&self, msg: &InstalmentMessage) -> Result<Claim, AccountsError> {
        let key = layout::instalment_key(&msg.advance_id, msg.number);
        let Some(item) = self.state.table.get(&key).await? else {
            return Ok(Claim::Skipped(WorkerOutcome::Missing));
        };
        let current = layout::instalment_from_item(&item)?;
        let now = self.state.clock.now();
        let now_ms = now.timestamp_millis();
        let today = now.date_naive();
        match current.status {
            InstalmentStatus::Paid | InstalmentStatus::Failed => {
                return Ok(Claim::Skipped(WorkerOutcome::AlreadyClosed));
            }
            InstalmentStatus::InProgress
                if current.lease_expires_ms.is_some_and(|ms| ms >= now_ms) =>
            {
                return Ok(Claim::Skipped(WorkerOutcome::Leased));
            }
            _ if current.due_date > today => return Ok(Claim::Skipped(WorkerOutcome::NotDue)),
            _ => {}
        }
        let owner = format!("{}:{}", self.name, uuid::Uuid::new_v4());
        let claimable = Condition::And(vec![
            Condition::le(attr::DUE_DATE, today.format("%Y-%m-%d").to_string()),
            Condition::Or(vec![
                Condition::eq(attr::STATUS, InstalmentStatus::Due.as_str()),
                Condition::And(vec![
                    Condition::eq(attr::STATUS, InstalmentStatus::InProgress.as_str()),
                    Condition::lt(attr::LEASE_EXPIRES_MS, now_ms),
                ]),
            ]),
        ]);
        let actions = vec![
            UpdateAction::set(attr::STATUS, InstalmentStatus::InProgress.as_str()),
            UpdateAction::set(attr::LEASE_OWNER, owner),
            UpdateAction::set(attr::LEASE_EXPIRES_MS, now_ms + LEASE_MS),
            UpdateAction::add(attr::ATTEMPTS, Decimal::ONE),
        ];
        match self
            .state
            .table
            .update(&key, actions, Some(claimable))
            .await
        {
            Ok(after) => Ok(Claim::Claimed(layout::instalment_from_item(&after)?)),
            Err(TableError::ConditionFailed) => Ok(Claim::Skipped(WorkerOutcome::Leased)),
            Err(e) => Err(e.into()),
        }
    }

    /// Step 2: the debit, idempotent under the instalment's key.
    pub async fn debit(&self, instalment: &InstalmentRecord) -> Result<TxRecord, AccountsError> {
        let req = MoveRequest::bank(
            instalment.account_id.clone(),
            instalment.amount,
            Direction::Debit,
            debit_reason(&instalment.advance_id, instalment.number),
            Some(instalment.debit_key()),
        );
        Ok(money::execute(&self.state, &req).await?.record)
    }

    /// Step 3: records the debit's result under our lease.
    pub async fn settle(
        &self,
        instalment: &InstalmentRecord,
        tx: &TxRecord,
    ) -> Result<WorkerOutcome, AccountsError> {
        let Some(owner) = instalment.lease_owner.as_deref() else {
            return Err(AccountsError::Invariant(
                "settling an unclaimed instalment".into(),
            ));
        };
        match tx.status {
            TxStatus::Success => {
                let actions = vec![
                    UpdateAction::set(attr::STATUS, InstalmentStatus::Paid.as_str()),
                    UpdateAction::set(attr::PAID_AT, tx.transaction_timestamp.as_str()),
                    UpdateAction::set(attr::TRANSACTION_ID, tx.transaction_id.as_str()),
                    UpdateAction::remove(attr::LEASE_OWNER),
                    UpdateAction::remove(attr::LEASE_EXPIRES_MS),
                    UpdateAction::remove(GSI2_PK),
                    UpdateAction::remove(GSI2_SK),
                ];
                match self
                    .state
                    .table
                    .update(&instalment.key(), actions, Some(leased_by(owner)))
                    .await
                {
                    Ok(_) => Ok(WorkerOutcome::Paid {
                        transaction_id: tx.transaction_id.clone(),
                    }),
                    Err(TableError::ConditionFailed) => Ok(WorkerOutcome::LeaseLost),
                    Err(e) => Err(e.into()),
                }
            }
            TxStatus::Fail => self.roll_forward(instalment, owner, tx).await,
        }
    }

    async fn roll_forward(
        &self,
        instalment: &InstalmentRecord,
        owner: &str,
        tx: &TxRecord,
    ) -> Result<WorkerOutcome, AccountsError> {
        for _ in 0..ROLL_ATTEMPTS_MAX {
            let (_, schedule) = load(&self.state, &instalment.advance_id)
                .await?
                .ok_or_else(|| {
                    AccountsError::Invariant("an instalment without its advance".into())
                })?;
            let mine = schedule.iter().find(|i| i.number == instalment.number);
            if mine.is_none_or(|i| i.lease_owner.as_deref() != Some(owner)) {
                return Ok(WorkerOutcome::LeaseLost);
            }
            let views: Vec<_> = schedule.iter().map(InstalmentRecord::view).collect();
            let target = roll_target(&views, instalment.number)?;
            let (writes, outcome) = self.roll_writes(instalment, owner, tx, target);
            match self.state.table.transact(writes).await {
                Ok(()) => return Ok(outcome),
                Err(e) if e.failed_condition_at(0) => return Ok(WorkerOutcome::LeaseLost),
                // The target was claimed or created meanwhile: read the schedule again.
                Err(e) if e.failed_condition_at(1) || e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AccountsError::Contended {
            attempts: ROLL_ATTEMPTS_MAX,
        })
    }

    fn roll_writes(
        &self,
        failed: &InstalmentRecord,
        owner: &str,
        tx: &TxRecord,
        target: RollTarget,
    ) -> (Vec<Write>, WorkerOutcome) {
        let now = format_timestamp(self.state.clock.now());
        let release = [
            UpdateAction::set(attr::TRANSACTION_ID, tx.transaction_id.as_str()),
            UpdateAction::set(attr::FAILED_AT, now.as_str()),
            UpdateAction::remove(attr::LEASE_OWNER),
            UpdateAction::remove(attr::LEASE_EXPIRES_MS),
        ];
        let close = |into: u32| Write::Update {
            key: failed.key(),
            actions: release
                .iter()
                .cloned()
                .chain([
                    UpdateAction::set(attr::STATUS, InstalmentStatus::Failed.as_str()),
                    UpdateAction::set(attr::ROLLED_INTO, i64::from(into)),
                    UpdateAction::remove(GSI2_PK),
                    UpdateAction::remove(GSI2_SK),
                ])
                .collect(),
            condition: Some(leased_by(owner)),
        };
        match target {
            RollTarget::Existing { number } => (
                vec![
                    close(number),
                    Write::Update {
                        key: layout::instalment_key(&failed.advance_id, number),
                        actions: vec![UpdateAction::add(attr::AMOUNT, failed.amount)],
                        condition: Some(Condition::eq(
                            attr::STATUS,
                            InstalmentStatus::Due.as_str(),
                        )),
                    },
                ],
                WorkerOutcome::RolledForward { into: number },
            ),
            RollTarget::Trailing { number, due_date } => {
                let trailing = InstalmentRecord {
                    advance_id: failed.advance_id.clone(),
                    account_id: failed.account_id.clone(),
                    number,
                    amount: failed.amount,
                    due_date,
                    status: InstalmentStatus::Due,
                    round: 0,
                    attempts: 0,
                    lease_owner: None,
                    lease_expires_ms: None,
                    transaction_id: None,
                    rolled_into: None,
                    paid_at: None,
                };
                (
                    vec![
                        close(number),
                        Write::Put {
                            item: layout::instalment_item(&trailing),
                            condition: Some(Condition::ItemNotExists),
                        },
                    ],
                    WorkerOutcome::RolledForward { into: number },
                )
            }
            RollTarget::Reschedule { due_date } => {
                let [(_, due_pk), (_, due_sk)] =
                    layout::due_index_attrs(&failed.advance_id, failed.number, due_date);
                let actions = release
                    .iter()
                    .cloned()
                    .chain([
                        UpdateAction::set(attr::STATUS, InstalmentStatus::Due.as_str()),
                        UpdateAction::set(attr::DUE_DATE, due_date.format("%Y-%m-%d").to_string()),
                        UpdateAction::add(attr::ROUND, Decimal::ONE),
                        UpdateAction::set(GSI2_PK, due_pk),
                        UpdateAction::set(GSI2_SK, due_sk),
                    ])
                    .collect();
                (
                    vec![Write::Update {
                        key: failed.key(),
                        actions,
                        condition: Some(leased_by(owner)),
                    }],
                    WorkerOutcome::Rescheduled,
                )
            }
        }
    }

    async fn handle_message(&self, message: &SqsMessage) -> Result<WorkerOutcome, AccountsError> {
        let body = message.body.as_deref().unwrap_or_default();
        if body.len() > MESSAGE_BYTES_MAX {
            return Err(AccountsError::invalid("body", "message is too long"));
        }
        let msg: InstalmentMessage = serde_json::from_str(body)
            .map_err(|_| AccountsError::invalid("body", "is not an instalment message"))?;
        self.process(&msg).await
    }

    /// One metrics write per batch; a metrics outage must not redeliver settled instalments.
    async fn write_metrics(&self, paid: u64, failed: u64, errors: u64) {
        let time = self.state.clock.now();
        let record = |name: &str, value: u64| MetricRecord {
            name: name.to_owned(),
            value: Decimal::from(value),
            dimensions: vec![("function".to_owned(), FUNCTION_DIMENSION.to_owned())],
            time,
        };
        let records = vec![
            record(METRIC_INSTALMENTS_PAID, paid),
            record(METRIC_INSTALMENTS_FAILED, failed),
            record(METRIC_MESSAGES_FAILED, errors),
        ];
        if let Err(e) = self.state.metrics.write(records).await {
            tracing::warn!(error = %e, "advances worker metrics not written");
        }
    }
}

/// The instalment is still ours: in progress under our lease.
fn leased_by(owner: &str) -> Condition {
    Condition::And(vec![
        Condition::eq(attr::STATUS, InstalmentStatus::InProgress.as_str()),
        Condition::eq(attr::LEASE_OWNER, owner),
    ])
}

#[async_trait]
impl SqsHandler for Worker {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        let mut failures = BatchFailures::default();
        let (mut paid, mut failed, mut errors) = (0u64, 0u64, 0u64);
        for message in &event.records {
            match self.handle_message(message).await {
                Ok(WorkerOutcome::Paid { .. }) => paid += 1,
                Ok(WorkerOutcome::RolledForward { .. } | WorkerOutcome::Rescheduled) => failed += 1,
                Ok(outcome) => {
                    tracing::info!(?outcome, "instalment message needed no debit");
                }
                Err(e) => {
                    errors += 1;
                    tracing::warn!(
                        message_id = message.message_id.as_deref().unwrap_or("-"),
                        error = %e,
                        "instalment message failed"
                    );
                    failures.add(message);
                }
            }
        }
        if !event.records.is_empty() {
            self.write_metrics(paid, failed, errors).await;
        }
        failures.into_response()
    }
}
