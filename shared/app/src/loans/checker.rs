//! The payroll checker (EventBridge schedule, each morning): flags the loans whose expected
//! payroll date plus a grace in business days has passed without a matching payment, writes
//! `reports/missed-payroll/dt=D/missed.csv` (and `late.csv`: flags cleared by late payments),
//! and emits one EventBridge event per missed loan.
//!
//! It reads only the `gsi1` partitions of the days whose grace has passed (a bounded lookback),
//! never the whole table. A flag is one transaction (the loan, moved on to its next expected
//! date, and a `MISSEDON#D` record); the day's report is read back from those records, so a
//! re-run for the same day writes the same report, and an event is emitted only for records
//! not yet marked `event_sent`.

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use bytes::Bytes;
use chrono::{Days, NaiveDate};
use payops_core::paydays::add_business_days;
use serde::Serialize;
use serde_json::json;

use super::layout::{self, FlagRecord, GSI1, attr, flag_from_item, flag_item, loan_from_item};
use super::plan;
use super::store::{WRITE_ATTEMPTS_MAX, at_version, lost_race, read_history, read_loan};
use super::{Loans, LoansError};
use crate::HandlerError;
use crate::handler::EventHandler;
use crate::ports::events::EVENTS_BATCH_MAX;
use crate::ports::table::{QUERY_PAGE_ITEMS_MAX, TRANSACTION_WRITES_MAX};
use crate::ports::{Condition, Event, Item, Query, UpdateAction, Write};

/// Grace after the expected date, in business days, unless the event says otherwise.
pub const GRACE_BUSINESS_DAYS_DEFAULT: u32 = 1;
/// Largest grace accepted.
pub const GRACE_BUSINESS_DAYS_MAX: u32 = 20;
/// Expected dates this far back are still checked (a run skipped for days catches up).
pub const CHECK_LOOKBACK_DAYS: u64 = 45;
pub const REPORT_PREFIX: &str = "reports/missed-payroll";
pub const MISSED_EVENT_SOURCE: &str = "payops.loans";
pub const MISSED_EVENT_TYPE: &str = "PayrollPaymentMissed";
pub const MISSED_CSV_HEADER: &str = "loan_id,employer_id,expected_date,expected_amount,currency,frequency,schedule,last_paid_on,last_paid_amount";
pub const LATE_CSV_HEADER: &str =
    "loan_id,employer_id,expected_date,expected_amount,currency,paid_on,paid_amount";
/// Loans flagged in one transaction (two writes each, within TRANSACTION_WRITES_MAX).
pub const FLAG_BATCH_LOANS: usize = TRANSACTION_WRITES_MAX / 2;
/// Most flags one report holds (a day with more fails loudly rather than truncating).
pub const REPORT_FLAGS_MAX: usize = 2_000_000;

pub fn missed_key(day: NaiveDate) -> String {
    format!("{REPORT_PREFIX}/dt={}/missed.csv", day.format("%Y-%m-%d"))
}

pub fn late_key(day: NaiveDate) -> String {
    format!("{REPORT_PREFIX}/dt={}/late.csv", day.format("%Y-%m-%d"))
}

/// How to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// The morning of the run.
    pub date: NaiveDate,
    pub grace_business_days: u32,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub date: String,
    /// The latest expected date whose grace has passed.
    pub checked_through: String,
    /// Loans flagged by this run.
    pub newly_missed: u64,
    /// Loans in the day's report (this run's flags and earlier runs' of the same day).
    pub missed: u64,
    /// Late payments that cleared a flag, paid the day before.
    pub late: u64,
    pub events_emitted: u64,
    pub missed_report: String,
    pub late_report: String,
    /// Index entries that no longer matched their loan (paid meanwhile) or were unreadable.
    pub skipped: u64,
}

pub struct Checker {
    state: Loans,
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The latest expected date whose grace has passed by the morning of `date`.
pub fn checked_through(date: NaiveDate, grace: u32) -> Option<NaiveDate> {
    let mut e = date.pred_opt()?;
    // The deadline is `grace` business days after e; a payment may still come that day.
    for _ in 0..=(2 * GRACE_BUSINESS_DAYS_MAX + 10) {
        if add_business_days(e, grace as i32) < date {
            return Some(e);
        }
        e = e.pred_opt()?;
    }
    None
}

impl Checker {
    pub fn new(state: Loans) -> Self {
        Checker { state }
    }

    pub async fn check(&self, options: CheckOptions) -> Result<CheckReport, LoansError> {
        if options.grace_business_days > GRACE_BUSINESS_DAYS_MAX {
            return Err(LoansError::invalid(
                "grace_business_days",
                format!("must be at most {GRACE_BUSINESS_DAYS_MAX}"),
            ));
        }
        let date = options.date;
        let mut report = CheckReport {
            date: day_text(date),
            missed_report: missed_key(date),
            late_report: late_key(date),
            ..CheckReport::default()
        };
        if let Some(through) = checked_through(date, options.grace_business_days) {
            report.checked_through = day_text(through);
            let from = through
                .checked_sub_days(Days::new(CHECK_LOOKBACK_DAYS))
                .unwrap_or(through);
            for expected in from.iter_days().take_while(|d| *d <= through) {
                self.flag_day(expected, date, &mut report).await?;
            }
        }
        let mut missed = self.read_flags(layout::missed_partition(date)).await?;
        report.missed = missed.len() as u64;
        report.events_emitted = self.emit(date, &mut missed).await?;
        self.write_missed(date, &missed).await?;
        let yesterday = date.pred_opt().unwrap_or(date);
        let late = self.read_flags(layout::late_partition(yesterday)).await?;
        report.late = late.len() as u64;
        self.write_late(date, &late).await?;
        Ok(report)
    }

    /// Flags every loan still expected on `expected` (its grace has passed).
    async fn flag_day(
        &self,
        expected: NaiveDate,
        today: NaiveDate,
        report: &mut CheckReport,
    ) -> Result<(), LoansError> {
        // The shards are independent partitions: read and flag them concurrently, so a run
        // costs the latency of one shard per day, not sixteen.
        let shards =
            (0..layout::DUE_INDEX_SHARDS).map(|shard| self.flag_shard(expected, shard, today));
        for (flagged, skipped) in futures::future::try_join_all(shards).await? {
            report.newly_missed += flagged;
            report.skipped += skipped;
        }
        Ok(())
    }

    /// Flags the loans of one shard of one expected day: (flagged, skipped).
    async fn flag_shard(
        &self,
        expected: NaiveDate,
        shard: u32,
        today: NaiveDate,
    ) -> Result<(u64, u64), LoansError> {
        let (mut flagged, mut skipped) = (0, 0);
        let mut cursor = None;
        loop {
            let query = Query::partition(layout::due_partition(expected, shard))
                .on_index(GSI1)
                .limit(QUERY_PAGE_ITEMS_MAX)
                .after(cursor);
            let page = self.state.table.query(query).await?;
            for chunk in page.items.chunks(FLAG_BATCH_LOANS) {
                let (f, k) = self.flag_batch(chunk, expected, today).await?;
                flagged += f;
                skipped += k;
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok((flagged, skipped));
            }
        }
    }

    /// Flags a page's loans in one transaction (two writes each, each conditional on the
    /// loan's version). If any loan changed meanwhile the whole transaction is cancelled and
    /// the loans are flagged one by one, each re-read: the fast path for the usual morning,
    /// the careful path for a race with a payment.
    async fn flag_batch(
        &self,
        items: &[Item],
        expected: NaiveDate,
        today: NaiveDate,
    ) -> Result<(u64, u64), LoansError> {
        let table = self.state.table.as_ref();
        let mut writes = Vec::with_capacity(2 * items.len());
        let mut skipped = 0;
        for item in items {
            let loan = match loan_from_item(item) {
                Ok(l) if l.expected_date == Some(expected) => l,
                Ok(_) => {
                    skipped += 1;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "unreadable loan in the due index");
                    skipped += 1;
                    continue;
                }
            };
            let history = if loan.schedule.is_none() {
                read_history(table, loan.borrower_id.expose()).await?
            } else {
                layout::History::default()
            };
            let (next, flag) = plan::apply_miss(&loan, &history, expected, today);
            writes.push(Write::Put {
                item: layout::loan_item(&next),
                condition: Some(at_version(loan.version)),
            });
            writes.push(Write::Put {
                item: flag_item(layout::missed_partition(today), &flag),
                condition: Some(Condition::ItemNotExists),
            });
        }
        if writes.is_empty() {
            return Ok((0, skipped));
        }
        let batch = (writes.len() / 2) as u64;
        match table.transact(writes).await {
            Ok(()) => Ok((batch, skipped)),
            Err(e) if lost_race(&e) => {
                let (mut flagged, mut skipped) = (0, 0);
                for item in items {
                    if self.flag(item, expected, today).await? {
                        flagged += 1;
                    } else {
                        skipped += 1;
                    }
                }
                Ok((flagged, skipped))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Flags one loan; false when it no longer expects `expected` (paid meanwhile, or a stale
    /// index entry) or cannot be read.
    async fn flag(
        &self,
        item: &Item,
        expected: NaiveDate,
        today: NaiveDate,
    ) -> Result<bool, LoansError> {
        let table = self.state.table.as_ref();
        let mut loan = match loan_from_item(item) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "unreadable loan in the due index");
                return Ok(false);
            }
        };
        for _ in 0..WRITE_ATTEMPTS_MAX {
            if loan.expected_date != Some(expected) {
                return Ok(false);
            }
            // Irregular earners move on by their window, which needs the history.
            let history = if loan.schedule.is_none() {
                read_history(table, loan.borrower_id.expose()).await?
            } else {
                layout::History::default()
            };
            let (next, flag) = plan::apply_miss(&loan, &history, expected, today);
            let writes = vec![
                Write::Put {
                    item: layout::loan_item(&next),
                    condition: Some(at_version(loan.version)),
                },
                Write::Put {
                    item: flag_item(layout::missed_partition(today), &flag),
                    condition: Some(Condition::ItemNotExists),
                },
            ];
            match table.transact(writes).await {
                Ok(()) => return Ok(true),
                Err(e) if lost_race(&e) => match read_loan(table, &loan.loan_id).await? {
                    Some(fresh) => loan = fresh,
                    None => return Ok(false),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Err(LoansError::Contended(format!("loan {}", loan.loan_id)))
    }

    async fn read_flags(&self, partition: String) -> Result<Vec<FlagRecord>, LoansError> {
        let mut flags = Vec::new();
        let mut cursor = None;
        loop {
            let query = Query::partition(partition.clone())
                .limit(QUERY_PAGE_ITEMS_MAX)
                .after(cursor);
            let page = self.state.table.query(query).await?;
            for item in &page.items {
                match flag_from_item(item) {
                    Ok(f) => flags.push(f),
                    Err(e) => tracing::error!(error = %e, "unreadable flag record"),
                }
            }
            if flags.len() > REPORT_FLAGS_MAX {
                return Err(LoansError::invalid(
                    "report",
                    format!("more than {REPORT_FLAGS_MAX} flags in {partition}"),
                ));
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(flags);
            }
        }
    }

    /// One event per missed loan not yet announced; then marks them announced. A crash between
    /// the two re-sends on the next run (at least once); consumers dedupe on `detail.id`.
    async fn emit(&self, date: NaiveDate, flags: &mut [FlagRecord]) -> Result<u64, LoansError> {
        let pending: Vec<usize> = (0..flags.len()).filter(|&i| !flags[i].event_sent).collect();
        for chunk in pending.chunks(TRANSACTION_WRITES_MAX) {
            // The PutEvents calls of a chunk go out together: the bus's latency, not its count.
            let sends = chunk.chunks(EVENTS_BATCH_MAX).map(|events| {
                let batch = events
                    .iter()
                    .map(|&i| missed_event(date, &flags[i]))
                    .collect();
                self.state.events.put_events(batch)
            });
            futures::future::try_join_all(sends).await?;
            let writes = chunk
                .iter()
                .map(|&i| Write::Update {
                    key: crate::ports::Key::new(
                        layout::missed_partition(date),
                        layout::flag_sk(&flags[i].loan_id, flags[i].expected_date),
                    ),
                    actions: vec![UpdateAction::set(attr::EVENT_SENT, true)],
                    condition: Some(Condition::ItemExists),
                })
                .collect();
            self.state.table.transact(writes).await?;
            for &i in chunk {
                flags[i].event_sent = true;
            }
        }
        Ok(pending.len() as u64)
    }

    async fn write_missed(&self, date: NaiveDate, flags: &[FlagRecord]) -> Result<(), LoansError> {
        let mut csv = String::with_capacity(64 * (flags.len() + 1));
        csv.push_str(MISSED_CSV_HEADER);
        csv.push('\n');
        for f in flags {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                f.loan_id,
                f.employer_id,
                day_text(f.expected_date),
                money_text(f.amount, f.currency),
                f.currency,
                f.frequency.as_deref().unwrap_or(""),
                f.schedule.as_deref().unwrap_or(""),
                f.last_paid_on.map(day_text).unwrap_or_default(),
                f.last_paid_amount
                    .map(|a| money_text(a, f.currency))
                    .unwrap_or_default(),
            ));
        }
        self.state
            .blobs
            .put(&missed_key(date), Bytes::from(csv), "text/csv")
            .await?;
        Ok(())
    }

    async fn write_late(&self, date: NaiveDate, flags: &[FlagRecord]) -> Result<(), LoansError> {
        let mut csv = String::from(LATE_CSV_HEADER);
        csv.push('\n');
        for f in flags {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                f.loan_id,
                f.employer_id,
                day_text(f.expected_date),
                money_text(f.amount, f.currency),
                f.currency,
                f.paid_on.map(day_text).unwrap_or_default(),
                f.paid_amount
                    .map(|a| money_text(a, f.currency))
                    .unwrap_or_default(),
            ));
        }
        self.state
            .blobs
            .put(&late_key(date), Bytes::from(csv), "text/csv")
            .await?;
        Ok(())
    }
}

/// An amount with its currency's minor units (`300.00`), the same on every store (DynamoDB
/// drops trailing zeros, SQLite keeps them).
pub(crate) fn money_text(amount: rust_decimal::Decimal, currency: payops_core::Currency) -> String {
    payops_core::money::format_places(amount, currency.minor_units())
}

fn missed_event(date: NaiveDate, f: &FlagRecord) -> Event {
    Event {
        source: MISSED_EVENT_SOURCE.to_owned(),
        detail_type: MISSED_EVENT_TYPE.to_owned(),
        detail: json!({
            "id": format!("missed:{}:{}", f.loan_id, day_text(f.expected_date)),
            "loan_id": f.loan_id,
            "employer_id": f.employer_id,
            "expected_date": day_text(f.expected_date),
            "expected_amount": money_text(f.amount, f.currency),
            "currency": f.currency.as_str(),
            "frequency": f.frequency,
            "checked_on": day_text(date),
        }),
    }
}

/// Reads `detail.date` (YYYY-MM-DD, default: the day of the event's `time`, else of `now`) and
/// `detail.grace_business_days` (default [`GRACE_BUSINESS_DAYS_DEFAULT`]).
pub fn options_from_event(
    event: &EventBridgeEvent<serde_json::Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CheckOptions, LoansError> {
    let date = match event.detail.get("date") {
        None | Some(serde_json::Value::Null) => event.time.unwrap_or(now).date_naive(),
        Some(v) => v
            .as_str()
            .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
            .ok_or_else(|| LoansError::invalid("detail.date", "is not YYYY-MM-DD"))?,
    };
    let grace = match event.detail.get("grace_business_days") {
        None | Some(serde_json::Value::Null) => GRACE_BUSINESS_DAYS_DEFAULT,
        Some(v) => v
            .as_u64()
            .and_then(|g| u32::try_from(g).ok())
            .filter(|g| *g <= GRACE_BUSINESS_DAYS_MAX)
            .ok_or_else(|| {
                LoansError::invalid(
                    "detail.grace_business_days",
                    format!("must be an integer 0..={GRACE_BUSINESS_DAYS_MAX}"),
                )
            })?,
    };
    Ok(CheckOptions {
        date,
        grace_business_days: grace,
    })
}

#[async_trait]
impl EventHandler for Checker {
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError> {
        let options = options_from_event(&event, self.state.clock.now())?;
        let report = self.check(options).await?;
        tracing::info!(
            date = %report.date,
            newly_missed = report.newly_missed,
            missed = report.missed,
            late = report.late,
            "payroll check done"
        );
        serde_json::to_value(&report).map_err(|e| HandlerError::Fatal(e.to_string()))
    }
}
