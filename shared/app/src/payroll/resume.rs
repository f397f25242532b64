//! `POST /payroll/batches/{id}/resume`: a stopped batch's workflow, started again. Every
//! task of `statemachines/payroll-batch.asl.json` is idempotent, so a new execution goes on
//! where the stopped one left off; the batch names its current execution, so that only that
//! execution's `MarkFailed` marks it failed (see `workflow::fail`).

use serde_json::json;

use super::batches::{self, BatchStatus};
use super::layout::{self, attr};
use super::{Payroll, PayrollAppError};
use crate::ports::{Condition, Item, TableError, UpdateAction};

/// Starts a stopped batch's workflow again under a new execution name (Step Functions keeps
/// an execution's name for 90 days), recorded on the batch: a `FAILED` batch, or one still
/// `APPROVED` long after its approval (see `check::stuck_approved`: an execution that ended
/// without marking it). Every task is idempotent, so the new execution passes the approval
/// at once and goes on where the old one stopped. Idempotent itself: asked again while that
/// execution is current, it starts the same name again, which Step Functions answers with
/// the running execution (so a resume whose start was lost can simply be repeated).
pub async fn resume(p: &Payroll, batch_id: &str) -> Result<batches::BatchView, PayrollAppError> {
    let item = batches::load(p, batch_id).await?;
    let status = batches::view_of(&item)?.status;
    let now = p.clock.now();
    let current = item.s(attr::EXECUTION).map(str::to_owned);
    let (item, name) = match (status, current) {
        (BatchStatus::Failed, _) => {
            let from = Condition::eq(attr::STATUS, BatchStatus::Failed.as_str());
            restart(p, batch_id, &item, from).await?
        }
        (BatchStatus::Approved, current) if super::check::stuck_approved(&item, status, now) => {
            let same_execution = match current {
                Some(name) => Condition::eq(attr::EXECUTION, name),
                None => Condition::not_exists(attr::EXECUTION),
            };
            let from = Condition::And(vec![
                Condition::eq(attr::STATUS, BatchStatus::Approved.as_str()),
                same_execution,
            ]);
            restart(p, batch_id, &item, from).await?
        }
        (BatchStatus::Approved | BatchStatus::Processing, Some(current)) => (item, current),
        _ => {
            return Err(PayrollAppError::WrongState {
                batch_id: batch_id.to_owned(),
                status: status.as_str().to_owned(),
                reason: format!(
                    "only a FAILED batch, or one APPROVED over {} minutes ago with its payments \
                     still unwritten, is resumed",
                    super::check::STUCK_AFTER_MINUTES
                ),
            });
        }
    };
    let input = json!({ "batch_id": batch_id });
    match p
        .workflows
        .start_execution(&p.state_machine, &name, input)
        .await
    {
        Ok(_) | Err(crate::ports::WorkflowError::AlreadyExists(_)) => {}
        // The batch names the execution: asking again starts it (or finds it started).
        Err(e) => return Err(e.into()),
    }
    tracing::info!(batch_id, execution = name, "payroll batch workflow resumed");
    batches::view_of(&item)
}

/// Puts a stopped batch back where it stood (`PROCESSING` once every payment was written,
/// else `APPROVED`) under a new execution name, when `from` still holds; answers the batch
/// and that name. When another resume got there first, answers the execution it recorded.
async fn restart(
    p: &Payroll,
    batch_id: &str,
    item: &Item,
    from: Condition,
) -> Result<(Item, String), PayrollAppError> {
    let back = if item.s(attr::MATERIALISED_AT).is_some() {
        BatchStatus::Processing
    } else {
        BatchStatus::Approved
    };
    let resumes = item
        .n(attr::RESUMES)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let name = format!("{batch_id}-resume-{}", resumes + 1);
    let updated = p
        .table
        .update(
            &layout::batch_key(batch_id),
            vec![
                UpdateAction::set(attr::STATUS, back.as_str()),
                UpdateAction::add(attr::RESUMES, 1),
                UpdateAction::set(attr::EXECUTION, name.as_str()),
                UpdateAction::set(attr::RESUMED_AT, layout::time_text(p.clock.now())),
            ],
            Some(from),
        )
        .await;
    match updated {
        Ok(item) => Ok((item, name)),
        Err(TableError::ConditionFailed) => {
            let now = batches::load(p, batch_id).await?;
            let status = batches::view_of(&now)?.status;
            match now.s(attr::EXECUTION).map(str::to_owned) {
                Some(current) if status != BatchStatus::Failed => Ok((now, current)),
                _ => Err(PayrollAppError::WrongState {
                    batch_id: batch_id.to_owned(),
                    status: status.as_str().to_owned(),
                    reason: "it changed while being resumed; try again".into(),
                }),
            }
        }
        Err(e) => Err(e.into()),
    }
}
