//! The Task states of `statemachines/payroll-batch.asl.json`, one function with an `action`:
//!
//! - `await_approval` (`.waitForTaskToken`): stores the token on the batch; approval
//!   completes it (or this completes it at once when the batch was approved before).
//! - `materialise`: writes every payment and enqueues the work (see `materialise`).
//! - `progress`: whether every payment is final, and how long to wait before asking again.
//! - `finish`: writes the reports and marks the batch `COMPLETED`.
//! - `expire`: nobody approved in time.
//! - `fail`: a task failed beyond its retries: the batch is marked `FAILED` with the error;
//!   `resume::resume` starts a new execution, which goes on where the failed one stopped.

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

/// Shortest and longest wait between two progress checks. The longest bounds the state
/// machine's history: a check and its wait add about 9 events, and Step Functions fails an
/// execution at 25,000, so checks at most every 15 minutes last about 29 days of ACH
/// settlement (every minute: under two days, shorter than a slow ACH return window).
pub const POLL_SECONDS_MIN: u64 = 1;
pub const POLL_SECONDS_MAX: u64 = 900;
/// The history events one progress round adds (Task scheduled, started, succeeded, state
/// entered and exited, Choice entered and exited, Wait entered and exited).
pub const HISTORY_EVENTS_PER_ROUND: u64 = 9;
/// Step Functions' limit on a Standard execution's history.
pub const HISTORY_EVENTS_MAX: u64 = 25_000;
// Checks at the longest wait keep an execution alive for at least four weeks.
const _: () =
    assert!(HISTORY_EVENTS_MAX / HISTORY_EVENTS_PER_ROUND * POLL_SECONDS_MAX >= 28 * 86_400);

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
    Fail {
        batch_id: String,
        /// What the state machine's Catch put in `$.error`.
        #[serde(default)]
        error: CaughtError,
        /// `$$.Execution.Name`: only the batch's current execution may mark it failed.
        #[serde(default)]
        execution: Option<String>,
    },
}

/// A Step Functions error as a Catch passes it on.
#[derive(Debug, Default, Deserialize)]
struct CaughtError {
    #[serde(rename = "Error", default)]
    error: Option<String>,
    #[serde(rename = "Cause", default)]
    cause: Option<String>,
}

/// Longest cause kept on the batch (a Step Functions cause can be 32 KiB).
pub const WORKFLOW_CAUSE_CHARS_MAX: usize = 1_000;

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
            Action::Fail {
                batch_id,
                error,
                execution,
            } => fail(p, &batch_id, error, execution.as_deref()).await?,
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

/// The workflow's previous progress check, as stored on the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastCheck {
    pub at_ms: i64,
    pub done: u64,
    pub wait_seconds: u64,
}

/// How long the workflow waits before checking again: half the time the payments left
/// would take at the rate seen since the last check, at most twice the last wait (a slow
/// start does not predict the rest), doubling while nothing moves, within
/// [`POLL_SECONDS_MIN`]..=[`POLL_SECONDS_MAX`]. The first check waits the least. So the
/// checks close in on the end instead of sleeping past it, and a long batch is still polled
/// only a few dozen times.
pub fn next_wait_seconds(left: u64, done: u64, last: Option<LastCheck>, now_ms: i64) -> u64 {
    let Some(last) = last else {
        return POLL_SECONDS_MIN;
    };
    let ceiling = last.wait_seconds.saturating_mul(2).max(POLL_SECONDS_MIN);
    let moved = done.saturating_sub(last.done);
    let elapsed_ms = u64::try_from(now_ms - last.at_ms).unwrap_or(0).max(1);
    let wait = if moved == 0 {
        ceiling
    } else {
        // left / (moved / elapsed) / 2, in seconds, rounded up.
        let estimate_ms = u128::from(left) * u128::from(elapsed_ms) / u128::from(moved);
        let half_s = estimate_ms.div_ceil(2_000);
        u64::try_from(half_s).unwrap_or(u64::MAX).min(ceiling)
    };
    wait.clamp(POLL_SECONDS_MIN, POLL_SECONDS_MAX)
}

fn last_check_of(item: &crate::ports::Item) -> Option<LastCheck> {
    let number = |name: &str| item.n(name).and_then(|n| i64::try_from(n).ok());
    Some(LastCheck {
        at_ms: number(attr::PROGRESS_CHECKED_MS)?,
        done: u64::try_from(number(attr::PROGRESS_CHECKED_DONE)?).ok()?,
        wait_seconds: u64::try_from(number(attr::PROGRESS_WAIT_SECONDS)?).ok()?,
    })
}

async fn check_progress(p: &Payroll, batch_id: &str) -> Result<Value, PayrollAppError> {
    let progress = progress::read(p, batch_id).await?;
    let left = progress.payments.saturating_sub(progress.done);
    let batch = batches::load(p, batch_id).await?;
    let now_ms = p.clock.now().timestamp_millis();
    let wait = next_wait_seconds(left, progress.done, last_check_of(&batch), now_ms);
    p.table
        .update(
            &layout::batch_key(batch_id),
            vec![
                UpdateAction::set(attr::PROGRESS_CHECKED_MS, now_ms),
                UpdateAction::set(attr::PROGRESS_CHECKED_DONE, progress.done as i64),
                UpdateAction::set(attr::PROGRESS_WAIT_SECONDS, wait as i64),
            ],
            Some(Condition::ItemExists),
        )
        .await?;
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

/// Marks the batch `FAILED` with the error that stopped its workflow, when `execution` is
/// still the batch's current execution (a late or retried MarkFailed of an execution that was
/// since replaced by a resume changes nothing). A batch already completed, or failed, is
/// left as it is.
async fn fail(
    p: &Payroll,
    batch_id: &str,
    caught: CaughtError,
    execution: Option<&str>,
) -> Result<Value, PayrollAppError> {
    let error = caught.error.unwrap_or_else(|| "unknown".to_owned());
    let cause: String = caught
        .cause
        .unwrap_or_default()
        .chars()
        .take(WORKFLOW_CAUSE_CHARS_MAX)
        .collect();
    // The alert: the batch's payments already enqueued go on, but nothing reports on them
    // until someone resumes it.
    tracing::error!(
        batch_id,
        error,
        "payroll batch workflow failed; resume it once the cause is fixed"
    );
    let running = [BatchStatus::Approved, BatchStatus::Processing]
        .map(|s| Condition::eq(attr::STATUS, s.as_str()));
    let mut condition = vec![Condition::Or(running.to_vec())];
    if let Some(name) = execution {
        let current = Condition::eq(attr::EXECUTION, name);
        condition.push(if name == batch_id {
            Condition::Or(vec![current, Condition::not_exists(attr::EXECUTION)])
        } else {
            current
        });
    }
    let result = p
        .table
        .update(
            &layout::batch_key(batch_id),
            vec![
                UpdateAction::set(attr::STATUS, BatchStatus::Failed.as_str()),
                UpdateAction::set(attr::WORKFLOW_ERROR, error),
                UpdateAction::set(attr::WORKFLOW_CAUSE, cause),
                UpdateAction::set(attr::FAILED_AT, layout::time_text(p.clock.now())),
            ],
            Some(Condition::And(condition)),
        )
        .await;
    match result {
        Ok(_) | Err(TableError::ConditionFailed) => Ok(json!({ "batch_id": batch_id })),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(at_ms: i64, done: u64, wait_seconds: u64) -> Option<LastCheck> {
        Some(LastCheck {
            at_ms,
            done,
            wait_seconds,
        })
    }

    #[test]
    fn the_first_check_waits_the_least() {
        assert_eq!(next_wait_seconds(50_000, 0, None, 0), POLL_SECONDS_MIN);
    }

    #[test]
    fn waits_half_the_remaining_time_at_the_observed_rate() {
        // 2,000 done in 2 s: 1,000/s; 10,000 left take 10 s; half of that is 5 s.
        let wait = next_wait_seconds(10_000, 3_000, check(0, 1_000, 8), 2_000);
        assert_eq!(wait, 5);
    }

    #[test]
    fn a_slow_start_does_not_make_the_next_wait_more_than_double() {
        // 10 done in 1 s with 49,990 left would be hours; the wait only doubles.
        assert_eq!(next_wait_seconds(49_990, 10, check(0, 0, 1), 1_000), 2);
    }

    #[test]
    fn doubles_while_nothing_moves_up_to_the_longest_wait() {
        assert_eq!(next_wait_seconds(500, 100, check(0, 100, 4), 4_000), 8);
        assert_eq!(
            next_wait_seconds(500, 100, check(0, 100, 512), 512_000),
            POLL_SECONDS_MAX
        );
        // Once things move again, the wait follows the rate seen: 400 done in 512 s with
        // 100 left is about a minute's work, so the next check is in half of that.
        assert_eq!(next_wait_seconds(100, 500, check(0, 100, 512), 512_000), 64);
    }

    #[test]
    fn near_the_end_it_checks_again_soon() {
        assert_eq!(
            next_wait_seconds(10, 49_990, check(0, 40_000, 16), 16_000),
            POLL_SECONDS_MIN
        );
    }

    #[test]
    fn a_clock_that_went_back_does_not_divide_by_zero() {
        let wait = next_wait_seconds(1_000, 2_000, check(5_000, 1_000, 4), 1_000);
        assert!((POLL_SECONDS_MIN..=POLL_SECONDS_MAX).contains(&wait));
    }
}
