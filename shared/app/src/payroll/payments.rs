//! Payment execution (SQS): creates one payment at the provider and marks it `PROCESSING`.
//!
//! The idempotency key is derived from the payment (`payroll-payment-{batch}-r{row}`), so a
//! retry of the same message, or of a worker that crashed between the provider's answer and
//! our status update, gets the same provider payment back instead of paying twice. The
//! provider client in `Disbursement` is the shared-limiter decorator: every call takes a
//! token from the bucket all workers share, and a 429 is retried after its `Retry-After`
//! with jitter. Messages that fail are reported as batch item failures; after the queue's
//! `maxReceiveCount` they land in the dead-letter queue (`payops dlq list|redrive`).

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use payops_core::payroll::PaymentStatus;
use payops_core::{Currency, Money};

use super::accounts::{MESSAGE_CONCURRENCY, provider_id_of};
use super::layout::{self, PartyKind};
use super::materialise::{PaymentMessage, enqueue_employees};
use super::transitions::{self, MoveDetails, MoveOutcome};
use super::{Disbursement, PayrollAppError};
use crate::HandlerError;
use crate::handler::{BatchFailures, SqsHandler};
use crate::ports::provider::{AccountId, CreatePayment, IdempotencyKey};

pub struct PaymentsWorker {
    d: Disbursement,
}

/// What happened to one payment message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// Created at the provider now (or found created by an earlier attempt).
    Created { status: PaymentStatus },
    /// Already past `UNPROCESSED`: a redelivery.
    AlreadyDone,
    /// An account is missing: the employee was sent back to provisioning, which enqueues
    /// the payment again.
    AccountsRequeued,
}

pub fn idempotency_key(payment_id: &str) -> Result<IdempotencyKey, PayrollAppError> {
    IdempotencyKey::new(format!("payroll-payment-{payment_id}")).map_err(PayrollAppError::from)
}

impl PaymentsWorker {
    pub fn new(d: Disbursement) -> Self {
        PaymentsWorker { d }
    }

    async fn handle_message(&self, message: &SqsMessage) -> Result<Executed, PayrollAppError> {
        let body = message
            .body
            .as_deref()
            .ok_or_else(|| PayrollAppError::invalid("body", "message has no body"))?;
        let m: PaymentMessage = serde_json::from_str(body)
            .map_err(|e| PayrollAppError::invalid("body", format!("not a payment message: {e}")))?;
        self.execute(&m).await
    }

    /// Creates the payment at the provider once and records it.
    pub async fn execute(&self, m: &PaymentMessage) -> Result<Executed, PayrollAppError> {
        let p = &self.d.payroll;
        let payment = transitions::read_payment(p, &m.batch_id, m.row)
            .await?
            .ok_or_else(|| {
                PayrollAppError::invalid(
                    "row",
                    format!("batch {} has no payment at row {}", m.batch_id, m.row),
                )
            })?;
        if payment.status != PaymentStatus::Unprocessed {
            return Ok(Executed::AlreadyDone);
        }
        let keys = [
            layout::party_account_key(
                PartyKind::Payer,
                &payment.source_id,
                &payment.source_fingerprint,
            ),
            layout::party_account_key(
                PartyKind::Employee,
                &payment.employee_id,
                &payment.loan_fingerprint,
            ),
        ];
        let found = p.table.batch_get(&keys).await?;
        let id_at = |key: &crate::ports::Key| {
            provider_id_of(found.iter().find(|i| i.key().as_ref() == Some(key)))
        };
        let (source, destination) = (id_at(&keys[0]), id_at(&keys[1]));
        let (Some(source), Some(destination)) = (source, destination) else {
            enqueue_employees(
                p,
                &m.batch_id,
                std::iter::once(payment.employee_id.as_str()),
            )
            .await?;
            return Ok(Executed::AccountsRequeued);
        };
        let amount = Money::new(payment.amount, Currency::USD).map_err(|e| {
            PayrollAppError::Corrupt(format!("payment {}: {e}", payment.payment_id))
        })?;
        let created = self
            .d
            .provider
            .create_payment(CreatePayment {
                idempotency_key: idempotency_key(&payment.payment_id)?,
                source_id: AccountId::new(source),
                destination_id: AccountId::new(destination),
                amount,
                external_id: Some(payment.payment_id.clone()),
                description: Some(format!("payroll {} row {}", m.batch_id, m.row)),
            })
            .await?;
        let reported = PaymentStatus::from_provider(created.status.as_str())
            .unwrap_or(PaymentStatus::Processing);
        // At least PROCESSING (it exists at the provider); further if the provider says so.
        let to = reported.max(PaymentStatus::Processing);
        let details = MoveDetails {
            provider_payment_id: Some(created.id.as_str().to_owned()),
            failure_reason: created.failure_reason.clone(),
            event_id: None,
        };
        let known = Some(payment.clone());
        match transitions::apply_from(p, &m.batch_id, m.row, known, to, &details).await? {
            MoveOutcome::Applied { to, .. } => Ok(Executed::Created { status: to }),
            // A webhook got there first.
            MoveOutcome::Stale { current } => Ok(Executed::Created { status: current }),
            MoveOutcome::Duplicate | MoveOutcome::UnknownPayment => {
                Err(PayrollAppError::Corrupt(format!(
                    "payment {} vanished while being recorded",
                    payment.payment_id
                )))
            }
        }
    }
}

#[async_trait]
impl SqsHandler for PaymentsWorker {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        use futures::StreamExt;
        let results: Vec<(usize, Result<Executed, PayrollAppError>)> =
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
                    "payroll payment message failed"
                );
                failures.add(message);
            }
        }
        failures.into_response()
    }
}
