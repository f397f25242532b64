//! Approval: once, whatever the number of clicks or retries.
//!
//! The batch item's status moves `AWAITING_APPROVAL` → `APPROVED` under a condition, so of
//! two concurrent approvals exactly one wins; the other (and any later retry) gets the same
//! answer with `already_approved`. The workflow waits in a `.waitForTaskToken` task whose
//! handler stores the token on the batch item, also under the condition that the batch still
//! awaits approval; so whichever of the two comes second sees the other's write and completes
//! the token (see `workflow::await_approval`).

use payops_core::payroll::eta::{self, Estimate};
use serde::{Deserialize, Serialize};

use super::batches::{self, BatchStatus, BatchView};
use super::layout::{self, attr};
use super::materialise;
use super::{Payroll, PayrollAppError};
use crate::ports::{Condition, Item, TableError, UpdateAction, WorkflowError};

/// Longest `approved_by` kept.
pub const APPROVER_BYTES_MAX: usize = 128;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Who approves (kept on the batch, never logged).
    #[serde(default)]
    pub approved_by: Option<String>,
    /// Approve even though the same file was uploaded before (`duplicate_of`).
    #[serde(default)]
    pub allow_duplicate: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApproveOutcome {
    /// True when this call found the batch approved already (a double click, a retry).
    pub already_approved: bool,
    pub estimate: Option<Estimate>,
    pub batch: BatchView,
}

pub async fn approve(
    p: &Payroll,
    batch_id: &str,
    request: ApproveRequest,
) -> Result<ApproveOutcome, PayrollAppError> {
    let item = batches::load(p, batch_id).await?;
    let view = batches::view_of(&item)?;
    match view.status {
        BatchStatus::AwaitingApproval => {}
        s if s.is_approved() => return already(p, item).await,
        BatchStatus::Invalid => {
            return Err(wrong(
                &view,
                "the file has errors; fix the rows listed and upload it again",
            ));
        }
        _ => return Err(wrong(&view, "it can no longer be approved")),
    }
    if let Some(first) = &view.duplicate_of
        && !request.allow_duplicate
    {
        return Err(wrong(
            &view,
            &format!(
                "the same file was uploaded as batch {first}; approve with allow_duplicate to pay it again"
            ),
        ));
    }
    let approver = request
        .approved_by
        .map(|a| a.chars().take(APPROVER_BYTES_MAX).collect::<String>())
        .filter(|a| !a.trim().is_empty());
    let remaining = materialise::remaining_work(p, batch_id).await?;
    let estimate = eta::estimate(remaining, p.rates);
    let mut actions = vec![
        UpdateAction::set(attr::STATUS, BatchStatus::Approved.as_str()),
        UpdateAction::set(attr::APPROVED_AT, layout::time_text(p.clock.now())),
        UpdateAction::set(attr::ETA_SECONDS, estimate.seconds as i64),
    ];
    if let Some(a) = approver {
        actions.push(UpdateAction::set(attr::APPROVED_BY, a));
    }
    let condition = Condition::eq(attr::STATUS, BatchStatus::AwaitingApproval.as_str());
    let updated = match p
        .table
        .update(&layout::batch_key(batch_id), actions, Some(condition))
        .await
    {
        Ok(item) => item,
        // Someone approved (or it expired) in between: answer as for a repeat.
        Err(TableError::ConditionFailed) => {
            let item = batches::load(p, batch_id).await?;
            return already(p, item).await;
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(
        batch_id,
        eta_seconds = estimate.seconds,
        "payroll batch approved"
    );
    resume_workflow(p, &updated).await?;
    Ok(ApproveOutcome {
        already_approved: false,
        estimate: Some(estimate),
        batch: batches::view_of(&updated)?,
    })
}

fn wrong(view: &BatchView, reason: &str) -> PayrollAppError {
    PayrollAppError::WrongState {
        batch_id: view.batch_id.clone(),
        status: view.status.as_str().to_owned(),
        reason: reason.to_owned(),
    }
}

async fn already(p: &Payroll, item: Item) -> Result<ApproveOutcome, PayrollAppError> {
    let view = batches::view_of(&item)?;
    if !view.status.is_approved() {
        return Err(wrong(&view, "it can no longer be approved"));
    }
    // The first call may have failed to reach the workflow after approving: do it again.
    if view.status == BatchStatus::Approved {
        resume_workflow(p, &item).await?;
    }
    Ok(ApproveOutcome {
        already_approved: true,
        estimate: None,
        batch: view,
    })
}

/// Completes the workflow's approval task when its token is known; starts the workflow when
/// it never started (its approval task then finds the batch approved and goes on).
async fn resume_workflow(p: &Payroll, item: &Item) -> Result<(), PayrollAppError> {
    let batch_id = item.s(attr::BATCH_ID).unwrap_or_default();
    match item.s(attr::TASK_TOKEN) {
        Some(token) => complete_token(p, batch_id, token).await,
        None => {
            batches::start_workflow(p, batch_id).await;
            Ok(())
        }
    }
}

/// Sends the approval to the waiting task. A token already completed (a retry) is fine.
pub async fn complete_token(
    p: &Payroll,
    batch_id: &str,
    token: &str,
) -> Result<(), PayrollAppError> {
    let output = serde_json::json!({ "batch_id": batch_id, "approved": true });
    match p.workflows.send_task_success(token, output).await {
        Ok(()) => Ok(()),
        Err(WorkflowError::NotFound(_) | WorkflowError::Invalid(_)) => {
            tracing::debug!(batch_id, "approval task already completed");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
