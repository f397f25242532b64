//! Schedules: the local stand-in for EventBridge rules with `cron(...)` / `rate(...)`. A tick
//! fires the function with the scheduled event EventBridge would send (its `time` is the tick,
//! so a function that derives its work from the event is deterministic). Ticks missed while
//! `payops up` was down are not replayed, as EventBridge does not replay them either; run
//! `payops trigger NAME` to catch up by hand.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use payops_app::error::HandlerError;
use payops_app::handler::EventHandler;
use payops_app::ports::Clock;
use payops_core::schedule::Schedule;
use tokio::sync::watch;

/// Granularity of the wait: the clock is re-read at least this often, so a system clock that
/// jumps (suspend, NTP) does not delay a tick by long.
pub const SCHEDULER_RECHECK_MS: u64 = 30_000;

pub async fn run(
    function: String,
    rule: String,
    schedule: Schedule,
    handler: Arc<dyn EventHandler>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut next) = schedule.next_after(clock.now()) else {
        tracing::warn!(function, rule, "schedule never fires");
        return;
    };
    loop {
        let now = clock.now();
        if now >= next {
            let event = scheduled_event(&rule, next, serde_json::json!({}));
            match handler.handle(event).await {
                Ok(result) => {
                    tracing::info!(function, rule, tick = %next, %result, "scheduled run done")
                }
                Err(e) => {
                    tracing::error!(function, rule, tick = %next, error_type = e.error_type(), error = %e, "scheduled run failed")
                }
            }
            match schedule.next_after(next.max(clock.now())) {
                Some(n) => next = n,
                None => return,
            }
            continue;
        }
        let wait_ms = (next - now)
            .num_milliseconds()
            .clamp(1, SCHEDULER_RECHECK_MS as i64) as u64;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait_ms)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The event EventBridge sends for a scheduled rule, or for `payops trigger` with a detail.
pub fn scheduled_event(
    rule: &str,
    time: DateTime<Utc>,
    detail: serde_json::Value,
) -> EventBridgeEvent<serde_json::Value> {
    let json = serde_json::json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "local",
        "resources": [format!("arn:aws:events:local:000000000000:rule/{rule}")],
        "detail": detail,
    });
    // Every field above has the type the struct declares.
    serde_json::from_value(json).expect("a well-formed scheduled event")
}

/// The target of a scheduled rule that starts a state machine, as EventBridge does: the
/// scheduled event is the execution's input. The execution is named after the rule and the
/// tick, so a tick that fires twice (a restart at the wrong moment, a `payops trigger` in the
/// same second) starts one execution, not two.
pub struct StartExecutionOnSchedule {
    pub workflows: Arc<dyn payops_app::ports::Workflows>,
    pub state_machine: String,
}

#[async_trait::async_trait]
impl EventHandler for StartExecutionOnSchedule {
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError> {
        let rule = event
            .resources
            .as_ref()
            .and_then(|r| r.first())
            .and_then(|arn| arn.rsplit('/').next())
            .unwrap_or("schedule")
            .to_owned();
        let tick = event
            .time
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_default();
        let name = format!("{rule}-{tick}");
        let mut input = serde_json::to_value(&event)
            .map_err(|e| HandlerError::Fatal(format!("scheduled event as JSON: {e}")))?;
        // The event id is per delivery; the execution's input must be the same for the same
        // tick, or the re-fired tick would be refused as a different start under the same name.
        input["id"] = serde_json::Value::String(name.clone());
        let execution = self
            .workflows
            .start_execution(&self.state_machine, &name, input)
            .await
            .map_err(HandlerError::retryable)?;
        Ok(serde_json::json!({ "executionArn": execution }))
    }
}
