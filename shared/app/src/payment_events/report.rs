//! The daily report: a day's events and their summary as CSV in the data bucket.

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use bytes::Bytes;
use chrono::{DateTime, Days, NaiveDate, Utc};
use payops_core::payment_event::{self, PaymentEvent};
use serde_json::{Value, json};

use super::layout::{self, GSI1};
use super::{PaymentEvents, PaymentEventsError};
use crate::HandlerError;
use crate::handler::EventHandler;
use crate::ports::table::{PK, QUERY_PAGE_ITEMS_MAX};
use crate::ports::{Cursor, Query};

/// Where reports go: `{REPORT_PREFIX}/dt={date}/events.csv` and `…/summary.csv`.
pub const REPORT_PREFIX: &str = "reports/payment-events";
pub const REPORT_CONTENT_TYPE: &str = "text/csv";
/// Most events one report reads (10× the busiest day we plan for). A larger day fails loudly
/// rather than writing a truncated report.
pub const REPORT_EVENTS_MAX: usize = 200_000;
const REPORT_PAGES_MAX: usize = REPORT_EVENTS_MAX.div_ceil(QUERY_PAGE_ITEMS_MAX);

pub fn events_key(day: NaiveDate) -> String {
    format!("{REPORT_PREFIX}/dt={}/events.csv", day.format("%Y-%m-%d"))
}

pub fn summary_key(day: NaiveDate) -> String {
    format!("{REPORT_PREFIX}/dt={}/summary.csv", day.format("%Y-%m-%d"))
}

/// The scheduled report. The day is `detail.date` when given (a manual re-run), else the UTC
/// day before the event's `time`: the 00:30 UTC schedule reports yesterday, and a re-run of the
/// same event reports the same day. Same stored events, byte-identical files.
pub struct DailyReport {
    state: PaymentEvents,
}

impl DailyReport {
    pub fn new(state: PaymentEvents) -> Self {
        DailyReport { state }
    }

    /// Writes the day's two files and returns `(events, events_key, summary_key)`.
    pub async fn run(&self, day: NaiveDate) -> Result<(usize, String, String), PaymentEventsError> {
        let events = self.read_day(day).await?;
        let events_csv = payment_event::events_csv(&events);
        let summary_csv =
            payment_event::summary_csv(&events).map_err(PaymentEventsError::Overflow)?;
        let (events_key, summary_key) = (events_key(day), summary_key(day));
        let blobs = &self.state.blobs;
        blobs
            .put(&events_key, Bytes::from(events_csv), REPORT_CONTENT_TYPE)
            .await?;
        blobs
            .put(&summary_key, Bytes::from(summary_csv), REPORT_CONTENT_TYPE)
            .await?;
        tracing::info!(date = %day, events = events.len(), "payment events report written");
        Ok((events.len(), events_key, summary_key))
    }

    async fn read_day(&self, day: NaiveDate) -> Result<Vec<PaymentEvent>, PaymentEventsError> {
        let mut events = Vec::new();
        let mut cursor: Option<Cursor> = None;
        for _ in 0..REPORT_PAGES_MAX {
            let query = Query::partition(layout::day_partition(day))
                .on_index(GSI1)
                .limit(QUERY_PAGE_ITEMS_MAX)
                .after(cursor);
            let page = self.state.table.query(query).await?;
            for item in &page.items {
                let event = layout::event_from_item(item).map_err(|source| {
                    PaymentEventsError::CorruptItem {
                        key: item.s(PK).unwrap_or("?").to_owned(),
                        source,
                    }
                })?;
                events.push(event);
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(events);
            }
        }
        Err(PaymentEventsError::TooManyEvents {
            date: day.to_string(),
            max: REPORT_EVENTS_MAX,
        })
    }
}

/// The day to report for this event (see [`DailyReport`]).
pub fn report_day(
    detail: &Value,
    time: Option<DateTime<Utc>>,
) -> Result<NaiveDate, PaymentEventsError> {
    match detail.get("date") {
        Some(Value::String(text)) => payment_event::parse_day(text).ok_or_else(|| {
            PaymentEventsError::BadReportInput("detail.date must be YYYY-MM-DD".to_owned())
        }),
        Some(Value::Null) | None => {
            let time = time.ok_or_else(|| {
                PaymentEventsError::BadReportInput(
                    "the event has neither detail.date nor time".to_owned(),
                )
            })?;
            time.date_naive()
                .checked_sub_days(Days::new(1))
                .ok_or_else(|| {
                    PaymentEventsError::BadReportInput("time is out of range".to_owned())
                })
        }
        Some(_) => Err(PaymentEventsError::BadReportInput(
            "detail.date must be a string YYYY-MM-DD".to_owned(),
        )),
    }
}

#[async_trait]
impl EventHandler for DailyReport {
    async fn handle(&self, event: EventBridgeEvent<Value>) -> Result<Value, HandlerError> {
        let day = report_day(&event.detail, event.time)?;
        let (events, events_key, summary_key) = self.run(day).await?;
        Ok(json!({
            "date": day.format("%Y-%m-%d").to_string(),
            "events": events,
            "events_key": events_key,
            "summary_key": summary_key,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn report_day_is_yesterday_of_the_tick_or_the_given_date() {
        let tick = Utc.with_ymd_and_hms(2025, 3, 1, 0, 30, 0).unwrap();
        assert_eq!(
            report_day(&json!({}), Some(tick)).unwrap(),
            day(2025, 2, 28)
        );
        assert_eq!(
            report_day(&Value::Null, Some(tick)).unwrap(),
            day(2025, 2, 28)
        );
        assert_eq!(
            report_day(&json!({"date": null}), Some(tick)).unwrap(),
            day(2025, 2, 28)
        );
        let late = Utc.with_ymd_and_hms(2025, 3, 1, 23, 59, 59).unwrap();
        assert_eq!(
            report_day(&json!({}), Some(late)).unwrap(),
            day(2025, 2, 28)
        );
        assert_eq!(
            report_day(&json!({"date": "2024-12-31"}), Some(tick)).unwrap(),
            day(2024, 12, 31)
        );
        assert_eq!(
            report_day(&json!({"date": "2024-12-31"}), None).unwrap(),
            day(2024, 12, 31)
        );
    }

    #[test]
    fn report_day_rejects_bad_input() {
        for detail in [json!({"date": "31/12/2024"}), json!({"date": 20241231})] {
            let e = report_day(&detail, None).unwrap_err();
            assert!(e.to_string().contains("detail.date"), "{e}");
            assert!(matches!(HandlerError::from(e), HandlerError::Rejected(_)));
        }
        assert!(report_day(&json!({}), None).is_err());
    }

    #[test]
    fn report_keys_are_partitioned_by_day() {
        assert_eq!(
            events_key(day(2025, 1, 2)),
            "reports/payment-events/dt=2025-01-02/events.csv"
        );
        assert_eq!(
            summary_key(day(2025, 1, 2)),
            "reports/payment-events/dt=2025-01-02/summary.csv"
        );
    }
}
