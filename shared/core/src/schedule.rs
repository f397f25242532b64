//! EventBridge schedule expressions: `rate(5 minutes)` and `cron(30 0 * * ? *)`, in UTC.
//!
//! The local runtime fires schedules from the same expressions that `template.yaml` gives
//! EventBridge, so this follows EventBridge's dialect: six fields (minutes hours
//! day-of-month month day-of-week year), one of day-of-month / day-of-week must be `?`,
//! day-of-week 1–7 is SUN–SAT, names allowed for months and weekdays, `L` allowed as the last
//! day of the month. `W` and `#` are rejected with a reason rather than misread.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

/// How far ahead `next_after` looks before giving up (a cron for 29 February of a year that
/// never comes, say).
pub const SCHEDULE_SEARCH_YEARS_MAX: i32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule expression must be rate(...) or cron(...): {0:?}")]
    Unknown(String),
    #[error("rate: {0}")]
    BadRate(String),
    #[error("cron field {field}: {reason}")]
    BadCron { field: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Rate { every_seconds: i64 },
    Cron(Cron),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    /// `None` for `?`.
    days_of_month: Option<DaySet>,
    months: Vec<u32>,
    /// chrono's numbering: 0 = Sunday … 6 = Saturday; `None` for `?`.
    days_of_week: Option<Vec<u32>>,
    /// `None` for `*`.
    years: Option<Vec<i32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DaySet {
    Days(Vec<u32>),
    Last,
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let e = expression.trim();
        if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            return parse_rate(inner);
        }
        if let Some(inner) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            return Cron::parse(inner).map(Schedule::Cron);
        }
        Err(ScheduleError::Unknown(e.chars().take(80).collect()))
    }

    /// The first tick strictly after `after`. Rates tick on multiples of their period since
    /// the Unix epoch, so every process agrees on the ticks.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate { every_seconds } => {
                let t = after.timestamp();
                let next = (t.div_euclid(*every_seconds) + 1) * every_seconds;
                Utc.timestamp_opt(next, 0).single()
            }
            Schedule::Cron(cron) => cron.next_after(after),
        }
    }
}

fn parse_rate(inner: &str) -> Result<Schedule, ScheduleError> {
    let mut parts = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ScheduleError::BadRate(format!(
            "expected `N unit`, got {inner:?}"
        )));
    };
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ScheduleError::BadRate(format!("{n:?} is not a positive integer")))?;
    let unit_seconds = match (unit, n == 1) {
        ("minute", true) | ("minutes", false) => 60,
        ("hour", true) | ("hours", false) => 3600,
        ("day", true) | ("days", false) => 86_400,
        _ => {
            return Err(ScheduleError::BadRate(format!(
                "unit {unit:?} does not fit {n} (minute/minutes, hour/hours, day/days)"
            )));
        }
    };
    Ok(Schedule::Rate {
        every_seconds: n * unit_seconds,
    })
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    fn parse(inner: &str) -> Result<Cron, ScheduleError> {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(ScheduleError::BadCron {
                field: "expression",
                reason: format!("expected 6 fields, got {}", fields.len()),
            });
        }
        let minutes = parse_field(fields[0], "minutes", 0, 59, &[])?;
        let hours = parse_field(fields[1], "hours", 0, 23, &[])?;
        let days_of_month = match fields[2] {
            "?" => None,
            "L" => Some(DaySet::Last),
            f => Some(DaySet::Days(parse_field(f, "day-of-month", 1, 31, &[])?)),
        };
        let months = parse_field(fields[3], "month", 1, 12, &MONTH_NAMES)?;
        let days_of_week = match fields[4] {
            "?" => None,
            f => Some(
                parse_field(f, "day-of-week", 1, 7, &DAY_NAMES)?
                    .into_iter()
                    .map(|d| d - 1)
                    .collect(),
            ),
        };
        if days_of_month.is_some() == days_of_week.is_some() {
            return Err(ScheduleError::BadCron {
                field: "day-of-month",
                reason: "exactly one of day-of-month and day-of-week must be `?`".into(),
            });
        }
        let years = match fields[5] {
            "*" => None,
            f => Some(
                parse_field(f, "year", 1970, 2199, &[])?
                    .into_iter()
                    .map(|y| y as i32)
                    .collect(),
            ),
        };
        Ok(Cron {
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            years,
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if !self.months.contains(&date.month())
            || self
                .years
                .as_ref()
                .is_some_and(|ys| !ys.contains(&date.year()))
        {
            return false;
        }
        match (&self.days_of_month, &self.days_of_week) {
            (Some(DaySet::Days(days)), _) => days.contains(&date.day()),
            (Some(DaySet::Last), _) => date
                .succ_opt()
                .is_none_or(|next| next.month() != date.month()),
            (None, Some(days)) => days.contains(&date.weekday().num_days_from_sunday()),
            // Parsing guarantees one of the two is set.
            (None, None) => false,
        }
    }

    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after + Duration::minutes(1);
        let start = start.with_second(0)?.with_nanosecond(0)?;
        let last_year = start.year() + SCHEDULE_SEARCH_YEARS_MAX;
        let mut date = start.date_naive();
        let mut first_day = true;
        while date.year() <= last_year {
            if self.day_matches(date) {
                for &h in &self.hours {
                    for &m in &self.minutes {
                        if first_day && (h, m) < (start.hour(), start.minute()) {
                            continue;
                        }
                        return Some(Utc.from_utc_datetime(&date.and_hms_opt(h, m, 0)?));
                    }
                }
            }
            date = date.succ_opt()?;
            first_day = false;
        }
        None
    }
}

/// One cron field: `*`, `N`, `A-B`, `*/S`, `A/S`, `A-B/S`, and comma lists of those.
fn parse_field(
    text: &str,
    field: &'static str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<Vec<u32>, ScheduleError> {
    let bad = |reason: String| ScheduleError::BadCron { field, reason };
    let value = |s: &str| -> Result<u32, ScheduleError> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        let v: u32 = s
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a number")))?;
        if v < min || v > max {
            return Err(bad(format!("{v} is outside {min}-{max}")));
        }
        Ok(v)
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        if part.contains(['W', '#', 'L']) && names.iter().all(|n| !part.contains(n)) {
            return Err(bad(format!("{part:?}: W, # and L are not supported here")));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(format!("bad step in {part:?}")))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(r)?, max),
                None => (value(r)?, value(r)?),
            },
        };
        if lo > hi {
            return Err(bad(format!("range {lo}-{hi} is reversed")));
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn rate_ticks_on_period_multiples() {
        let s = Schedule::parse("rate(5 minutes)").unwrap();
        assert_eq!(
            s.next_after(t("2026-01-01T00:03:10Z")),
            Some(t("2026-01-01T00:05:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-01-01T00:05:00Z")),
            Some(t("2026-01-01T00:10:00Z"))
        );
        assert_eq!(
            Schedule::parse("rate(1 day)").unwrap(),
            Schedule::Rate {
                every_seconds: 86_400
            }
        );
    }

    #[test]
    fn rate_rejects_mismatched_units() {
        assert!(matches!(
            Schedule::parse("rate(1 minutes)"),
            Err(ScheduleError::BadRate(_))
        ));
        assert!(matches!(
            Schedule::parse("rate(0 days)"),
            Err(ScheduleError::BadRate(_))
        ));
        assert!(matches!(
            Schedule::parse("every day"),
            Err(ScheduleError::Unknown(_))
        ));
    }

    #[test]
    fn daily_cron() {
        let s = Schedule::parse("cron(30 0 * * ? *)").unwrap();
        assert_eq!(
            s.next_after(t("2026-11-21T23:00:00Z")),
            Some(t("2026-11-22T00:30:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-11-22T00:30:00Z")),
            Some(t("2026-11-23T00:30:00Z"))
        );
    }

    #[test]
    fn weekday_cron_with_names_and_ranges() {
        // 06:00 Monday to Friday. 2026-11-21 is a Saturday.
        let s = Schedule::parse("cron(0 6 ? * MON-FRI *)").unwrap();
        assert_eq!(
            s.next_after(t("2026-11-21T07:00:00Z")),
            Some(t("2026-11-23T06:00:00Z"))
        );
        let numeric = Schedule::parse("cron(0 6 ? * 2-6 *)").unwrap();
        assert_eq!(s, numeric);
    }

    #[test]
    fn last_day_of_month_and_steps() {
        let s = Schedule::parse("cron(0/15 23 L * ? *)").unwrap();
        assert_eq!(
            s.next_after(t("2026-02-10T00:00:00Z")),
            Some(t("2026-02-28T23:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-02-28T23:00:00Z")),
            Some(t("2026-02-28T23:15:00Z"))
        );
    }

    #[test]
    fn cron_errors_name_the_field() {
        assert!(matches!(
            Schedule::parse("cron(0 6 * * * *)"),
            Err(ScheduleError::BadCron {
                field: "day-of-month",
                ..
            })
        ));
        assert!(matches!(
            Schedule::parse("cron(60 6 * * ? *)"),
            Err(ScheduleError::BadCron {
                field: "minutes",
                ..
            })
        ));
        assert!(matches!(
            Schedule::parse("cron(0 6 1W * ? *)"),
            Err(ScheduleError::BadCron {
                field: "day-of-month",
                ..
            })
        ));
        assert!(matches!(
            Schedule::parse("cron(0 6 * *)"),
            Err(ScheduleError::BadCron {
                field: "expression",
                ..
            })
        ));
    }

    #[test]
    fn impossible_cron_gives_none() {
        let s = Schedule::parse("cron(0 0 30 FEB ? *)").unwrap();
        assert_eq!(s.next_after(t("2026-01-01T00:00:00Z")), None);
    }
}
