//! The Task states of `statemachines/payroll-batch.asl.json`, one function with an `action`:
//!
//! - `await_approval` (`.waitForTaskToken`): stores the token on the batch; approval
//!   completes it (or this completes it at once when the batch was approved before).
//! - `materialise`: writes every payment and enqueues the work (see `materialise`).
//! - `progress`: whether every payment is final, and how long to wait before asking again.
//! - `finish`: writes the reports and marks the batch `COMPLETED`.
//! - `expire`: nobody approved in time.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::approve::complete_token;
use super::batches::{self, BatchStatus};
use super::layout::{self, attr};
use super::{Payroll, PayrollAppError, materialise, progress, report};
use crate::HandlerError;
use crate::handler::TaskHandler;
use crate::ports::{Condition, TableError, UpdateAction};

/// Shortest and longest wait between two progress checks.
pub const POLL_SECONDS_MIN: u64 = 1;
pub const POLL_SECONDS_MAX: u64 = 60;

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    AwaitApproval {
        batch_id: String,
        task_token: String,
    },
    Materialise {
        batch_id: String,
    },
    Progress {
        batch_id: String,
    },
    Finish {
        batch_id: String,
    },
    Expire {
        batch_id: String,
    },
}

pub struct WorkflowTasks {
    state: Payroll,
}

impl WorkflowTasks {
    pub fn new(state: Payroll) -> Self {
        WorkflowTasks { state }
    }
}

#[async_trait]
impl TaskHandler for WorkflowTasks {
    async fn handle(&self, input: Value) -> Result<Value, HandlerError> {
        let action: Action = serde_json::from_value(input)
            .map_err(|e| HandlerError::Rejected(format!("task input: {e}")))?;
        let p = &self.state;
        let out = match action {
            Action::AwaitApproval {
                batch_id,
                task_token,
            } => await_approval(p, &batch_id, &task_token).await?,
            Action::Materialise { batch_id } => {
                serde_json::to_value(materialise::materialise(p, &batch_id).await?)
                    .map_err(|e| HandlerError::Fatal(e.to_string()))?
            }
            Action::Progress { batch_id } => check_progress(p, &batch_id).await?,
            Action::Finish { batch_id } => finish(p, &batch_id).await?,
            Action::Expire { batch_id } => expire(p, &batch_id).await?,
        };
        Ok(out)
    }
}

pub async fn await_approval(
    p: &Payroll,
    batch_id: &str,
    token: &str,
) -> Result<Value, PayrollAppError> {
    let item = batches::load(p, batch_id).await?;
    let status = batches::view_of(&item)?.status;
    if status == BatchStatus::AwaitingApproval {
        let stored = p
            .table
            .update(
                &layout::batch_key(batch_id),
                vec![UpdateAction::set(attr::TASK_TOKEN, token)],
                Some(Condition::eq(
                    attr::STATUS,
                    BatchStatus::AwaitingApproval.as_str(),
                )),
            )
            .await;
        match stored {
            Ok(_) => return Ok(json!({ "batch_id": batch_id, "waiting": true })),
            Err(TableError::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Approved before the token was stored: this task completes its own token.
    let item = batches::load(p, batch_id).await?;
    let view = batches::view_of(&item)?;
    if view.status.is_approved() {
        complete_token(p, batch_id, token).await?;
        return Ok(json!({ "batch_id": batch_id, "waiting": false }));
    }
    Err(PayrollAppError::WrongState {
        batch_id: batch_id.to_owned(),
        status: view.status.as_str().to_owned(),
        reason: "it cannot be approved".into(),
    })
}

async fn check_progress(p: &Payroll, batch_id: &str) -> Result<Value, PayrollAppError> {
    let progress = progress::read(p, batch_id).await?;
    let left = progress.payments.saturating_sub(progress.done);
    // Ask again sooner when little is left; a large batch is not polled every second.
    let wait = (left / 1000).clamp(POLL_SECONDS_MIN, POLL_SECONDS_MAX);
    Ok(json!({
        "batch_id": batch_id,
        "complete": progress.complete,
        "payments": progress.payments,
        "done": progress.done,
        "wait_seconds": wait,
    }))
}

async fn finish(p: &Payroll, batch_id: &str) -> Result<Value, PayrollAppError> {
    let written = report::write_reports(p, batch_id).await?;
    let now = layout::time_text(p.clock.now());
    p.table
        .update(
            &layout::batch_key(batch_id),
            vec![
                UpdateAction::set(attr::STATUS, BatchStatus::Completed.as_str()),
                UpdateAction::set_if_not_exists(attr::COMPLETED_AT, now),
                UpdateAction::set(attr::REPORTS_PREFIX, written.prefix.clone()),
            ],
            Some(Condition::ItemExists),
        )
        .await?;
    tracing::info!(batch_id, "payroll batch completed");
    Ok(json!({ "batch_id": batch_id, "reports": written }))
}

async fn expire(p: &Payroll, batch_id: &str) -> Result<Value, PayrollAppError> {
    let result = p
        .table
        .update(
            &layout::batch_key(batch_id),
            vec![
                UpdateAction::set(attr::STATUS, BatchStatus::Expired.as_str()),
                UpdateAction::remove(attr::TASK_TOKEN),
            ],
            Some(Condition::eq(
                attr::STATUS,
                BatchStatus::AwaitingApproval.as_str(),
            )),
        )
        .await;
    match result {
        Ok(_) | Err(TableError::ConditionFailed) => Ok(json!({ "batch_id": batch_id })),
        Err(e) => Err(e.into()),
    }
}
