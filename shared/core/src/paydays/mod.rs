//! Paydays: the US Federal Reserve business-day calendar, pay schedules, pay-frequency
//! inference from a borrower's pay history, and a generator of histories with known schedules.
//!
//! - [`calendar`]: holidays by rule, business-day arithmetic
//! - [`schedule`]: weekly / biweekly / semi-monthly / monthly schedules and their paid dates
//! - [`infer`]: the classifier and next-date predictor
//! - [`history`]: the `borrower_id,paid_at,amount` CSV
//! - [`generate`]: deterministic histories for tests and the accuracy benchmark

pub mod calendar;
pub mod generate;
pub mod history;
pub mod infer;
pub mod schedule;

#[cfg(test)]
mod tests;

pub use calendar::{
    add_business_days, business_days_between, fed_holidays, is_business_day,
    on_or_before_business_day, previous_business_day,
};
pub use history::{HistoryError, PaymentRecord, parse_history_csv};
pub use infer::{Confidence, Inference, Inferrer, Window, infer};
pub use schedule::{Frequency, MonthDay, Schedule, ScheduleParseError};
