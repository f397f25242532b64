//! The auditor (EventBridge schedule): for every advance, paid + due + in-progress instalments
//! must sum to the advance's amount. A difference raises an EventBridge event and a metric,
//! and is listed by [`Auditor::audit_all`] (which `payops advances audit` prints).
//!
//! Advances are listed from gsi1 (`ADVANCES#{shard}`), and each schedule is one query of its
//! partition. A query is not isolated from a concurrent roll-forward transaction, so a
//! difference is confirmed by a second read before it is reported.

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use payops_core::accounts::advance::{AuditTotals, audit};
use payops_core::accounts::format_amount;
use rust_decimal::Decimal;
use serde::Serialize;

use super::advances::load;
use super::layout::{self, ADVANCE_INDEX_SHARDS, GSI1, InstalmentRecord, attr};
use super::{Accounts, AccountsError};
use crate::HandlerError;
use crate::handler::EventHandler;
use crate::ports::events::EVENTS_BATCH_MAX;
use crate::ports::table::QUERY_PAGE_ITEMS_MAX;
use crate::ports::{Event, MetricRecord, Query};

pub const AUDIT_EVENT_SOURCE: &str = "payops.advances";
pub const AUDIT_EVENT_TYPE: &str = "AdvanceAuditDifference";
pub const FUNCTION_DIMENSION: &str = "advances-auditor";
pub const METRIC_ADVANCES_AUDITED: &str = "advances_audited";
pub const METRIC_AUDIT_DIFFERENCES: &str = "audit_differences";
/// Most advances one run checks (a bound on the run, far above the expected book).
pub const AUDIT_ADVANCES_MAX: u64 = 1_000_000;

/// One advance whose instalments do not sum to its amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdvanceAudit {
    pub advance_id: String,
    pub amount: String,
    pub paid: String,
    pub due: String,
    pub in_progress: String,
    /// accounted − amount: positive when the instalments claim more than was advanced.
    pub difference: String,
}

impl AdvanceAudit {
    fn new(advance_id: &str, totals: &AuditTotals) -> Self {
        AdvanceAudit {
            advance_id: advance_id.to_owned(),
            amount: format_amount(totals.expected),
            paid: format_amount(totals.paid),
            due: format_amount(totals.due),
            in_progress: format_amount(totals.in_progress),
            difference: format_amount(totals.difference()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub advances_checked: u64,
    pub differences: Vec<AdvanceAudit>,
}

pub struct Auditor {
    state: Accounts,
}

impl Auditor {
    pub fn new(state: Accounts) -> Self {
        Auditor { state }
    }

    /// Checks every advance; raises nothing (see [`Auditor::audit_and_alert`]).
    pub async fn audit_all(&self) -> Result<AuditReport, AccountsError> {
        let mut report = AuditReport::default();
        for shard in 0..ADVANCE_INDEX_SHARDS {
            let mut cursor = None;
            loop {
                let query = Query::partition(layout::advances_partition(shard))
                    .on_index(GSI1)
                    .limit(QUERY_PAGE_ITEMS_MAX)
                    .after(cursor);
                let page = self.state.table.query(query).await?;
                for item in &page.items {
                    let Some(advance_id) = item.s(attr::ADVANCE_ID) else {
                        continue;
                    };
                    report.advances_checked += 1;
                    if let Some(difference) = self.check(advance_id).await? {
                        report.differences.push(difference);
                    }
                    if report.advances_checked >= AUDIT_ADVANCES_MAX {
                        return Ok(report);
                    }
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        Ok(report)
    }

    /// One advance; `Some` only if two consecutive reads show the same difference.
    pub async fn check(&self, advance_id: &str) -> Result<Option<AdvanceAudit>, AccountsError> {
        let Some(first) = self.totals(advance_id).await? else {
            return Ok(None);
        };
        if first.balanced() {
            return Ok(None);
        }
        match self.totals(advance_id).await? {
            Some(second) if second == first => Ok(Some(AdvanceAudit::new(advance_id, &second))),
            _ => Ok(None),
        }
    }

    async fn totals(&self, advance_id: &str) -> Result<Option<AuditTotals>, AccountsError> {
        Ok(load(&self.state, advance_id)
            .await?
            .map(|(advance, schedule)| {
                let views: Vec<_> = schedule.iter().map(InstalmentRecord::view).collect();
                audit(advance.amount, &views)
            }))
    }

    /// Audits, then publishes one event per difference and the run's metrics.
    pub async fn audit_and_alert(&self) -> Result<AuditReport, AccountsError> {
        let report = self.audit_all().await?;
        let events: Vec<Event> = report
            .differences
            .iter()
            .map(|d| Event {
                source: AUDIT_EVENT_SOURCE.to_owned(),
                detail_type: AUDIT_EVENT_TYPE.to_owned(),
                // Ids and amounts only: no account id, no customer data.
                detail: serde_json::to_value(d).unwrap_or_default(),
            })
            .collect();
        for chunk in events.chunks(EVENTS_BATCH_MAX) {
            self.state.events.put_events(chunk.to_vec()).await?;
        }
        let time = self.state.clock.now();
        let record = |name: &str, value: u64| MetricRecord {
            name: name.to_owned(),
            value: Decimal::from(value),
            dimensions: vec![("function".to_owned(), FUNCTION_DIMENSION.to_owned())],
            time,
        };
        let records = vec![
            record(METRIC_ADVANCES_AUDITED, report.advances_checked),
            record(METRIC_AUDIT_DIFFERENCES, report.differences.len() as u64),
        ];
        // The events are the alert; a metrics outage must not re-run the audit and repeat them.
        if let Err(e) = self.state.metrics.write(records).await {
            tracing::warn!(error = %e, "advances audit metrics not written");
        }
        for d in &report.differences {
            tracing::error!(advance_id = %d.advance_id, difference = %d.difference, "advance audit difference");
        }
        Ok(report)
    }
}

#[async_trait]
impl EventHandler for Auditor {
    async fn handle(
        &self,
        _event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError> {
        let report = self.audit_and_alert().await?;
        serde_json::to_value(&report).map_err(|e| HandlerError::Fatal(e.to_string()))
    }
}
