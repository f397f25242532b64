//! An execution's history folded into one row per state visit, as the console's graph and
//! timeline show it: when each state was entered and exited, how long it took, its input and
//! output, and whether it succeeded, failed (with the error), had its error caught, was
//! aborted (a sibling Map iteration or Parallel branch failed) or is still running.
//!
//! Pure: the ops page and the CLI read it; nothing here touches the store.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use payops_core::asl::definition::StateType;
use payops_core::asl::events::EventKind;
use serde::Serialize;
use serde_json::Value;

use super::model::HistoryEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VisitStatus {
    Running,
    Succeeded,
    /// The state's error was not caught: it failed its scope (the highlighted state).
    Failed,
    /// The state failed and a Catch moved on.
    Caught,
    /// Stopped because something else failed (another Map iteration, Parallel branch, the
    /// execution's timeout).
    Aborted,
}

/// One visit of one state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateVisit {
    /// `""` at the top level, `Items/item-3`, `Fan/branch-1`…
    pub scope: String,
    pub state: String,
    #[serde(rename = "type")]
    pub state_type: StateType,
    pub status: VisitStatus,
    /// History event ids of the entry and, once it happened, the exit.
    pub entered_event: u64,
    pub exited_event: Option<u64>,
    pub entered: DateTime<Utc>,
    pub exited: Option<DateTime<Utc>>,
    /// Since the execution started.
    pub entered_ms: i64,
    /// From entry to exit (or to the failure that ended the visit).
    pub duration_ms: Option<i64>,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Retry clauses that fired during this visit.
    pub retries: u32,
}

/// Builds the visits of `events` (in history order), in the order states were entered.
pub fn timeline(events: &[HistoryEvent]) -> Vec<StateVisit> {
    let mut t = Builder::default();
    let start = events.first().map(|e| e.timestamp);
    for e in events {
        t.apply(e, start.unwrap_or(e.timestamp));
    }
    t.visits
}

#[derive(Default)]
struct Builder {
    visits: Vec<StateVisit>,
    /// The open (entered, not exited) visit of each scope: states of one scope run one at a
    /// time.
    open: HashMap<String, usize>,
}

/// The scope prefix of the children of `state` in `scope` (`Items/` in `""`).
fn child_prefix(scope: &str, state: &str) -> String {
    if scope.is_empty() {
        format!("{state}/")
    } else {
        format!("{scope}/{state}/")
    }
}

/// Whether `scope` is `root` or below it.
fn within(scope: &str, root: &str) -> bool {
    root.is_empty()
        || scope
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Builder {
    fn open_visit(&mut self, scope: &str) -> Option<&mut StateVisit> {
        let i = *self.open.get(scope)?;
        self.visits.get_mut(i)
    }

    fn apply(&mut self, e: &HistoryEvent, start: DateTime<Utc>) {
        let scope = e.scope.as_str();
        match &e.event {
            EventKind::StateEntered {
                state,
                state_type,
                input,
            } => {
                self.open.insert(scope.to_owned(), self.visits.len());
                self.visits.push(StateVisit {
                    scope: scope.to_owned(),
                    state: state.clone(),
                    state_type: *state_type,
                    // A Fail state fails its scope by definition; its error arrives with the
                    // event that reports the scope's failure.
                    status: if *state_type == StateType::Fail {
                        VisitStatus::Failed
                    } else {
                        VisitStatus::Running
                    },
                    entered_event: e.id,
                    exited_event: None,
                    entered: e.timestamp,
                    exited: None,
                    entered_ms: (e.timestamp - start).num_milliseconds(),
                    duration_ms: None,
                    input: input.clone(),
                    output: None,
                    error: None,
                    cause: None,
                    retries: 0,
                });
            }
            EventKind::StateExited { output, .. } => {
                if let Some(i) = self.open.remove(scope)
                    && let Some(v) = self.visits.get_mut(i)
                {
                    v.exited_event = Some(e.id);
                    v.exited = Some(e.timestamp);
                    v.duration_ms = Some((e.timestamp - v.entered).num_milliseconds());
                    v.output = Some(output.clone());
                    if v.status == VisitStatus::Running {
                        v.status = VisitStatus::Succeeded;
                    }
                }
            }
            EventKind::TaskFailed { error, cause, .. }
            | EventKind::TaskTimedOut { error, cause, .. }
            | EventKind::MapStateFailed { error, cause }
            | EventKind::ParallelStateFailed { error, cause } => {
                if let Some(v) = self.open_visit(scope) {
                    v.status = VisitStatus::Failed;
                    v.error = Some(error.clone());
                    v.cause = Some(cause.clone());
                }
            }
            EventKind::RetryScheduled { .. } => {
                if let Some(v) = self.open_visit(scope) {
                    v.status = VisitStatus::Running;
                    v.retries += 1;
                }
            }
            EventKind::ErrorCaught { error, cause, .. } => {
                if let Some(v) = self.open_visit(scope) {
                    v.status = VisitStatus::Caught;
                    v.error = Some(error.clone());
                    v.cause = Some(cause.clone());
                }
            }
            EventKind::MapIterationFailed {
                index,
                error,
                cause,
            } => {
                if let Some(root) = self.child_scope(scope, "item", *index) {
                    self.end_open_within(&root, e, Some((error, cause)));
                }
            }
            EventKind::MapIterationAborted { index } => {
                if let Some(root) = self.child_scope(scope, "item", *index) {
                    self.end_open_within(&root, e, None);
                }
            }
            EventKind::ExecutionFailed { error, cause }
            | EventKind::ExecutionTimedOut { error, cause }
            | EventKind::ExecutionAborted { error, cause } => {
                self.end_open_within("", e, Some((error, cause)));
            }
            _ => {}
        }
    }

    /// The scope of iteration/branch `index` of the open Map or Parallel state in `scope`.
    fn child_scope(&self, scope: &str, kind: &str, index: usize) -> Option<String> {
        let i = *self.open.get(scope)?;
        let state = &self.visits.get(i)?.state;
        Some(format!("{}{kind}-{index}", child_prefix(scope, state)))
    }

    /// Ends every open visit at or below `root` when that scope stops: a visit with a failure
    /// of its own (or a Fail state) is the failed one and gets `failure` if it has no error
    /// yet; the deepest still-running visit of a failing scope is where it failed (e.g. a
    /// Choice whose variable is missing); the rest were aborted.
    fn end_open_within(
        &mut self,
        root: &str,
        e: &HistoryEvent,
        failure: Option<(&String, &String)>,
    ) {
        let mut ended: Vec<(String, usize)> = self
            .open
            .iter()
            .filter(|(scope, _)| within(scope, root))
            .map(|(s, i)| (s.clone(), *i))
            .collect();
        // Deepest first, so the innermost running state is the one blamed.
        ended.sort_by_key(|(s, i)| (std::cmp::Reverse(s.matches('/').count()), *i));
        let any_failed = ended.iter().any(|(_, i)| {
            self.visits
                .get(*i)
                .is_some_and(|v| v.status == VisitStatus::Failed)
        });
        let mut blamed = any_failed;
        for (scope, i) in ended {
            self.open.remove(&scope);
            let Some(v) = self.visits.get_mut(i) else {
                continue;
            };
            v.duration_ms = Some((e.timestamp - v.entered).num_milliseconds());
            match (v.status, failure) {
                (VisitStatus::Failed, Some((error, cause))) => {
                    if v.error.is_none() {
                        v.error = Some(error.clone());
                        v.cause = Some(cause.clone());
                    }
                }
                (VisitStatus::Failed, None) => {}
                (_, Some((error, cause))) if !blamed => {
                    blamed = true;
                    v.status = VisitStatus::Failed;
                    v.error = Some(error.clone());
                    v.cause = Some(cause.clone());
                }
                _ => v.status = VisitStatus::Aborted,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: u64, scope: &str, event: EventKind) -> HistoryEvent {
        let at: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().expect("timestamp");
        HistoryEvent {
            id,
            timestamp: at + chrono::Duration::milliseconds(10 * id as i64),
            scope: scope.into(),
            event_type: event.type_name().into(),
            event,
        }
    }

    fn entered(state: &str, state_type: StateType) -> EventKind {
        EventKind::StateEntered {
            state: state.into(),
            state_type,
            input: json!({"n": 1}),
        }
    }

    fn exited(state: &str, state_type: StateType) -> EventKind {
        EventKind::StateExited {
            state: state.into(),
            state_type,
            output: json!({"n": 2}),
        }
    }

    fn failure(error: &str) -> (String, String) {
        (error.to_owned(), format!("{error} happened"))
    }

    #[test]
    fn a_failed_task_is_the_failed_visit_with_its_error() {
        let (error, cause) = failure("Rejected");
        let events = vec![
            event(1, "", EventKind::ExecutionStarted { input: json!({}) }),
            event(2, "", entered("Prepare", StateType::Pass)),
            event(3, "", exited("Prepare", StateType::Pass)),
            event(4, "", entered("Charge", StateType::Task)),
            event(
                5,
                "",
                EventKind::TaskFailed {
                    resource: "r".into(),
                    error: error.clone(),
                    cause: cause.clone(),
                },
            ),
            event(6, "", EventKind::ExecutionFailed { error, cause }),
        ];
        let visits = timeline(&events);
        assert_eq!(visits.len(), 2);
        assert_eq!(visits[0].status, VisitStatus::Succeeded);
        assert_eq!(visits[0].duration_ms, Some(10));
        assert_eq!(visits[0].output, Some(json!({"n": 2})));
        assert_eq!(visits[1].state, "Charge");
        assert_eq!(visits[1].status, VisitStatus::Failed);
        assert_eq!(visits[1].error.as_deref(), Some("Rejected"));
        assert_eq!(visits[1].cause.as_deref(), Some("Rejected happened"));
        assert_eq!(visits[1].entered_ms, 30);
        assert_eq!(visits[1].duration_ms, Some(20));
    }

    #[test]
    fn a_caught_error_and_a_retry_are_shown_on_the_visit() {
        let (error, cause) = failure("Retryable");
        let task_failed = EventKind::TaskFailed {
            resource: "r".into(),
            error: error.clone(),
            cause: cause.clone(),
        };
        let events = vec![
            event(1, "", entered("Charge", StateType::Task)),
            event(2, "", task_failed.clone()),
            event(
                3,
                "",
                EventKind::RetryScheduled {
                    error: error.clone(),
                    retrier: 0,
                    attempt: 1,
                    delay_ms: 1000,
                },
            ),
            event(4, "", task_failed),
            event(
                5,
                "",
                EventKind::ErrorCaught {
                    error,
                    cause,
                    next: "Declined".into(),
                },
            ),
            event(6, "", exited("Charge", StateType::Task)),
        ];
        let visits = timeline(&events);
        assert_eq!(visits[0].status, VisitStatus::Caught);
        assert_eq!(visits[0].retries, 1);
        assert_eq!(visits[0].error.as_deref(), Some("Retryable"));
        assert_eq!(visits[0].exited_event, Some(6));
    }

    #[test]
    fn a_failing_map_iteration_blames_its_fail_state_and_aborts_the_others() {
        let (error, cause) = failure("NegativeAmount");
        let events = vec![
            event(1, "", entered("Items", StateType::Map)),
            event(2, "Items/item-0", entered("Check", StateType::Choice)),
            event(3, "Items/item-1", entered("Check", StateType::Choice)),
            event(4, "Items/item-1", exited("Check", StateType::Choice)),
            event(5, "Items/item-1", entered("Neg", StateType::Fail)),
            event(
                6,
                "",
                EventKind::MapIterationFailed {
                    index: 1,
                    error: error.clone(),
                    cause: cause.clone(),
                },
            ),
            event(7, "", EventKind::MapIterationAborted { index: 0 }),
            event(
                8,
                "",
                EventKind::MapStateFailed {
                    error: error.clone(),
                    cause: cause.clone(),
                },
            ),
            event(9, "", EventKind::ExecutionFailed { error, cause }),
        ];
        let visits = timeline(&events);
        let by = |scope: &str, state: &str| {
            visits
                .iter()
                .find(|v| v.scope == scope && v.state == state)
                .expect("visit")
                .clone()
        };
        assert_eq!(by("", "Items").status, VisitStatus::Failed);
        assert_eq!(by("", "Items").error.as_deref(), Some("NegativeAmount"));
        assert_eq!(by("Items/item-1", "Neg").status, VisitStatus::Failed);
        assert_eq!(
            by("Items/item-1", "Neg").error.as_deref(),
            Some("NegativeAmount")
        );
        assert_eq!(by("Items/item-0", "Check").status, VisitStatus::Aborted);
        assert_eq!(by("Items/item-1", "Check").status, VisitStatus::Succeeded);
    }

    #[test]
    fn a_runtime_error_without_a_task_blames_the_running_state() {
        let (error, cause) = failure("States.Runtime");
        let events = vec![
            event(1, "", entered("Route", StateType::Choice)),
            event(2, "", EventKind::ExecutionFailed { error, cause }),
        ];
        let visits = timeline(&events);
        assert_eq!(visits[0].status, VisitStatus::Failed);
        assert_eq!(visits[0].error.as_deref(), Some("States.Runtime"));
    }

    #[test]
    fn a_running_execution_has_a_running_visit() {
        let events = vec![
            event(1, "", entered("A", StateType::Pass)),
            event(2, "", exited("A", StateType::Pass)),
            event(3, "", entered("Approve", StateType::Task)),
        ];
        let visits = timeline(&events);
        assert_eq!(visits[1].status, VisitStatus::Running);
        assert_eq!(visits[1].duration_ms, None);
    }

    #[test]
    fn scopes_nest_by_path_segments() {
        assert!(within("Items/item-1", "Items/item-1"));
        assert!(within("Items/item-1/Inner/item-0", "Items/item-1"));
        assert!(!within("Items/item-10", "Items/item-1"));
        assert!(within("anything", ""));
    }
}
