//! Pay schedules: the nominal pay dates of each kind and the dates on which payroll is actually
//! paid (the nominal date, or the business day before it when it falls on a weekend or a
//! Federal Reserve holiday).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Days, NaiveDate, Weekday};

use super::calendar::{
    CLOSED_RUN_DAYS_MAX, DayNumber, civil_of_day, date_of_day, day_number, day_of_civil,
    days_in_month, last_day_of_month, on_or_before_business_day_at,
};

/// Days between two pay dates of a weekly schedule.
pub const WEEKLY_PERIOD_DAYS: u64 = 7;
/// Days between two pay dates of a biweekly schedule.
pub const BIWEEKLY_PERIOD_DAYS: u64 = 14;
/// The two days of a semi-monthly schedule are at least this far apart (circularly).
pub const SEMI_MONTHLY_GAP_DAYS_MIN: u8 = 10;
/// Longest text of a declared schedule.
pub const SCHEDULE_TEXT_BYTES_MAX: usize = 64;
/// The next paid date is searched this many days after the as-of date (every schedule pays at
/// least once in any 32 days).
const NEXT_PAID_SEARCH_DAYS: DayNumber = 40;

/// The class of a pay schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frequency {
    Weekly,
    Biweekly,
    SemiMonthly,
    Monthly,
    Irregular,
}

impl Frequency {
    pub const ALL: [Frequency; 5] = [
        Frequency::Weekly,
        Frequency::Biweekly,
        Frequency::SemiMonthly,
        Frequency::Monthly,
        Frequency::Irregular,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Weekly => "weekly",
            Frequency::Biweekly => "biweekly",
            Frequency::SemiMonthly => "semi_monthly",
            Frequency::Monthly => "monthly",
            Frequency::Irregular => "irregular",
        }
    }

    /// Index in [`Frequency::ALL`], for confusion matrices.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Frequency {
    type Err = ScheduleParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Frequency::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| ScheduleParseError(format!("unknown frequency {s:?}")))
    }
}

/// A day of the month, 1..=31; 31 means the last day of every month (a shorter month clamps
/// any day to its last day, so 31 and "last" are the same schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonthDay(u8);

impl MonthDay {
    pub const LAST: MonthDay = MonthDay(31);

    pub fn new(day: u8) -> Option<Self> {
        (1..=31).contains(&day).then_some(MonthDay(day))
    }
    pub fn get(self) -> u8 {
        self.0
    }
    /// The nominal date in a month (clamped to its last day).
    pub fn in_month(self, year: i32, month: u32) -> Option<NaiveDate> {
        let last = last_day_of_month(year, month)?;
        if u32::from(self.0) >= last.day() {
            Some(last)
        } else {
            NaiveDate::from_ymd_opt(year, month, u32::from(self.0))
        }
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == MonthDay::LAST {
            f.write_str("last")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl FromStr for MonthDay {
    type Err = ScheduleParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "last" {
            return Ok(MonthDay::LAST);
        }
        s.parse::<u8>()
            .ok()
            .and_then(MonthDay::new)
            .ok_or_else(|| ScheduleParseError(format!("day {s:?} is not 1..=31 or \"last\"")))
    }
}

/// A regular pay schedule. Weekly and biweekly schedules are anchored on one nominal pay date;
/// the others on days of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schedule {
    Weekly {
        anchor: NaiveDate,
    },
    Biweekly {
        anchor: NaiveDate,
    },
    /// `first < second`.
    SemiMonthly {
        first: MonthDay,
        second: MonthDay,
    },
    /// A fixed day, or [`MonthDay::LAST`]: the last business day of the month.
    Monthly {
        day: MonthDay,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pay schedule: {0}")]
pub struct ScheduleParseError(pub String);

fn add_days(date: NaiveDate, days: u64) -> Option<NaiveDate> {
    date.checked_add_days(Days::new(days))
}

fn sub_days(date: NaiveDate, days: u64) -> Option<NaiveDate> {
    date.checked_sub_days(Days::new(days))
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

impl Schedule {
    pub fn frequency(&self) -> Frequency {
        match self {
            Schedule::Weekly { .. } => Frequency::Weekly,
            Schedule::Biweekly { .. } => Frequency::Biweekly,
            Schedule::SemiMonthly { .. } => Frequency::SemiMonthly,
            Schedule::Monthly { .. } => Frequency::Monthly,
        }
    }

    /// A semi-monthly schedule with its two days in order, if they are far enough apart.
    pub fn semi_monthly(a: MonthDay, b: MonthDay) -> Option<Schedule> {
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        (second.get() - first.get() >= SEMI_MONTHLY_GAP_DAYS_MIN
            && 31 - second.get() + first.get() >= SEMI_MONTHLY_GAP_DAYS_MIN)
            .then_some(Schedule::SemiMonthly { first, second })
    }

    /// The nominal dates in `[from, to]`, ascending, appended to `out`.
    pub fn nominal_dates(&self, from: NaiveDate, to: NaiveDate, out: &mut Vec<NaiveDate>) {
        let mut days = Vec::new();
        self.nominal_days(day_number(from), day_number(to), &mut days);
        out.extend(days.into_iter().map(date_of_day));
    }

    /// The dates payroll is paid in `[from, to]`, ascending, appended to `out`.
    pub fn paid_dates(&self, from: NaiveDate, to: NaiveDate, out: &mut Vec<NaiveDate>) {
        let mut days = Vec::new();
        self.paid_days(day_number(from), day_number(to), &mut days);
        out.extend(days.into_iter().map(date_of_day));
    }

    /// The first date strictly after `as_of` on which payroll is paid.
    pub fn next_paid_after(&self, as_of: NaiveDate) -> Option<NaiveDate> {
        // Within chrono's range: the date after as_of and the 40 days after it exist.
        add_days(as_of, 41)?;
        self.next_paid_day_after(day_number(as_of)).map(date_of_day)
    }

    /// [`Schedule::nominal_dates`] on day numbers.
    pub fn nominal_days(&self, from: DayNumber, to: DayNumber, out: &mut Vec<DayNumber>) {
        let mut nominal = Nominal::new(self, from);
        while let Some(d) = nominal.next_day() {
            if d > to {
                break;
            }
            out.push(d);
        }
    }

    /// [`Schedule::paid_dates`] on day numbers.
    pub fn paid_days(&self, from: DayNumber, to: DayNumber, out: &mut Vec<DayNumber>) {
        out.extend(self.paid_days_iter(from, to));
    }

    /// The paid days in `[from, to]`, ascending, generated one at a time (the inference stops
    /// early on a hopeless candidate): each nominal date moved to the business day on or before
    /// it, kept when in `[from, to]` and after the previous one kept.
    pub fn paid_days_iter(&self, from: DayNumber, to: DayNumber) -> PaidDays {
        PaidDays {
            nominal: Nominal::new(self, from),
            from,
            to,
            // CLOSED_RUN_DAYS_MAX is a small constant (a week).
            nominal_to: to.saturating_add(CLOSED_RUN_DAYS_MAX as DayNumber),
            last: None,
            done: false,
        }
    }

    /// [`Schedule::next_paid_after`] on day numbers. Allocates nothing.
    pub fn next_paid_day_after(&self, as_of: DayNumber) -> Option<DayNumber> {
        let from = as_of.checked_add(1)?;
        // Every schedule pays at least once in any 32 days.
        let to = from.checked_add(NEXT_PAID_SEARCH_DAYS)?;
        self.paid_days_iter(from, to).next()
    }

    /// The nominal period in days (a month counts as 30), for tolerances and windows.
    pub fn period_days(&self) -> u64 {
        match self {
            Schedule::Weekly { .. } => WEEKLY_PERIOD_DAYS,
            Schedule::Biweekly { .. } => BIWEEKLY_PERIOD_DAYS,
            Schedule::SemiMonthly { .. } => 15,
            Schedule::Monthly { .. } => 30,
        }
    }
}

/// A schedule's nominal days from a first day on, ascending, without end (until a day number
/// would overflow).
#[derive(Debug, Clone)]
enum Nominal {
    Periodic {
        next: Option<DayNumber>,
        period: DayNumber,
    },
    Monthly {
        /// Ascending; `count` of them are used.
        days: [MonthDay; 2],
        count: usize,
        year: i32,
        month: u32,
        /// The day number of the 1st of (year, month), and the month's length.
        month_first: DayNumber,
        month_len: u32,
        /// The next of `days` to yield in this month.
        index: usize,
        from: DayNumber,
    },
}

impl Nominal {
    fn new(schedule: &Schedule, from: DayNumber) -> Nominal {
        let periodic = |anchor: NaiveDate, period: u64| {
            // Periods are a week or two: they fit a day number.
            let period = period as DayNumber;
            let anchor = day_number(anchor);
            // The first k with anchor + k*period >= from.
            let next = from.checked_sub(anchor).and_then(|offset| {
                let k = offset.div_euclid(period) + DayNumber::from(offset.rem_euclid(period) != 0);
                k.checked_mul(period).and_then(|o| anchor.checked_add(o))
            });
            Nominal::Periodic { next, period }
        };
        let monthly = |days: [MonthDay; 2], count: usize| {
            let (year, month, _) = civil_of_day(from);
            Nominal::Monthly {
                days,
                count,
                year,
                month,
                month_first: day_of_civil(year, month, 1),
                month_len: days_in_month(year, month),
                index: 0,
                from,
            }
        };
        match *schedule {
            Schedule::Weekly { anchor } => periodic(anchor, WEEKLY_PERIOD_DAYS),
            Schedule::Biweekly { anchor } => periodic(anchor, BIWEEKLY_PERIOD_DAYS),
            Schedule::SemiMonthly { first, second } => monthly([first, second], 2),
            Schedule::Monthly { day } => monthly([day, day], 1),
        }
    }

    fn next_day(&mut self) -> Option<DayNumber> {
        match self {
            Nominal::Periodic { next, period } => {
                let day = (*next)?;
                *next = day.checked_add(*period);
                Some(day)
            }
            Nominal::Monthly {
                days,
                count,
                year,
                month,
                month_first,
                month_len,
                index,
                from,
            } => loop {
                if *index == *count {
                    (*year, *month) = next_month(*year, *month);
                    *month_first = month_first.checked_add(*month_len as DayNumber)?;
                    *month_len = days_in_month(*year, *month);
                    *index = 0;
                }
                // A day past the month's end is clamped to its last day (MonthDay::in_month);
                // the two days of a semi-monthly schedule stay distinct after clamping (the
                // first is at most 21, see SEMI_MONTHLY_GAP_DAYS_MIN).
                let day =
                    *month_first + (u32::from(days[*index].get()).min(*month_len) - 1) as DayNumber;
                *index += 1;
                if day >= *from {
                    return Some(day);
                }
            },
        }
    }
}

/// The paid days of a schedule in a range: see [`Schedule::paid_days_iter`].
#[derive(Debug, Clone)]
pub struct PaidDays {
    nominal: Nominal,
    from: DayNumber,
    to: DayNumber,
    nominal_to: DayNumber,
    last: Option<DayNumber>,
    done: bool,
}

impl Iterator for PaidDays {
    type Item = DayNumber;

    fn next(&mut self) -> Option<DayNumber> {
        while !self.done {
            let Some(nominal) = self.nominal.next_day().filter(|d| *d <= self.nominal_to) else {
                self.done = true;
                break;
            };
            let paid = on_or_before_business_day_at(nominal);
            if paid > self.to {
                // "On or before" is monotone: every later nominal day is paid later still.
                self.done = true;
                break;
            }
            if paid >= self.from && self.last.is_none_or(|l| l < paid) {
                self.last = Some(paid);
                return Some(paid);
            }
        }
        None
    }
}

fn weekday_text(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// The text form, which [`FromStr`] reads back: `weekly:2025-01-03`, `biweekly:2025-01-03`,
/// `semi_monthly:15,last`, `monthly:25`, `monthly:last`.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Weekly { anchor } => write!(f, "weekly:{}", anchor.format("%Y-%m-%d")),
            Schedule::Biweekly { anchor } => write!(f, "biweekly:{}", anchor.format("%Y-%m-%d")),
            Schedule::SemiMonthly { first, second } => write!(f, "semi_monthly:{first},{second}"),
            Schedule::Monthly { day } => write!(f, "monthly:{day}"),
        }
    }
}

impl Schedule {
    /// A human description, e.g. "biweekly on Friday (from 2025-01-03)".
    pub fn describe(&self) -> String {
        match self {
            Schedule::Weekly { anchor } => format!("weekly on {}", weekday_text(anchor.weekday())),
            Schedule::Biweekly { anchor } => format!(
                "every other {} (from {})",
                weekday_text(anchor.weekday()),
                anchor.format("%Y-%m-%d")
            ),
            Schedule::SemiMonthly { first, second } => {
                format!("semi-monthly on the {first} and the {second}")
            }
            Schedule::Monthly { day } if *day == MonthDay::LAST => {
                "monthly on the last business day".to_owned()
            }
            Schedule::Monthly { day } => format!("monthly on the {day}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > SCHEDULE_TEXT_BYTES_MAX {
            return Err(ScheduleParseError(format!(
                "longer than {SCHEDULE_TEXT_BYTES_MAX} bytes"
            )));
        }
        let (kind, arg) = text.split_once(':').ok_or_else(|| {
            ScheduleParseError("expected KIND:ARG, e.g. monthly:last or weekly:2025-01-03".into())
        })?;
        let date = |s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| ScheduleParseError(format!("anchor {s:?} is not YYYY-MM-DD")))
        };
        match kind {
            "weekly" => Ok(Schedule::Weekly { anchor: date(arg)? }),
            "biweekly" => Ok(Schedule::Biweekly { anchor: date(arg)? }),
            "monthly" => Ok(Schedule::Monthly { day: arg.parse()? }),
            "semi_monthly" => {
                let (a, b) = arg.split_once(',').ok_or_else(|| {
                    ScheduleParseError("semi_monthly needs two days, e.g. 15,last".into())
                })?;
                Schedule::semi_monthly(a.parse()?, b.parse()?).ok_or_else(|| {
                    ScheduleParseError(format!(
                        "semi_monthly days must be at least {SEMI_MONTHLY_GAP_DAYS_MIN} days apart"
                    ))
                })
            }
            other => Err(ScheduleParseError(format!(
                "unknown kind {other:?} (weekly, biweekly, semi_monthly, monthly)"
            ))),
        }
    }
}

/// `date` minus `days`, saturating at the earliest date.
pub(crate) fn days_before(date: NaiveDate, days: u64) -> NaiveDate {
    sub_days(date, days).unwrap_or(NaiveDate::MIN)
}

/// `date` plus `days`, saturating at the latest date.
pub(crate) fn days_after(date: NaiveDate, days: u64) -> NaiveDate {
    add_days(date, days).unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn paid(s: Schedule, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        s.paid_dates(from, to, &mut out);
        out
    }

    #[test]
    fn weekly_friday_payroll_moves_before_a_friday_holiday() {
        let s = Schedule::Weekly {
            anchor: d(2025, 6, 27),
        };
        assert_eq!(
            paid(s, d(2025, 6, 26), d(2025, 7, 12)),
            vec![d(2025, 6, 27), d(2025, 7, 3), d(2025, 7, 11)]
        );
    }

    #[test]
    fn semi_monthly_15th_and_last_moves_to_the_previous_business_day() {
        let s: Schedule = "semi_monthly:15,last".parse().unwrap();
        // Nov 15 2025 is a Saturday; Nov 30 a Sunday.
        assert_eq!(
            paid(s, d(2025, 11, 1), d(2025, 12, 31)),
            vec![
                d(2025, 11, 14),
                d(2025, 11, 28),
                d(2025, 12, 15),
                d(2025, 12, 31)
            ]
        );
    }

    #[test]
    fn monthly_last_business_day_and_fixed_day() {
        let last: Schedule = "monthly:last".parse().unwrap();
        assert_eq!(last.next_paid_after(d(2025, 8, 1)), Some(d(2025, 8, 29)));
        assert_eq!(last.next_paid_after(d(2024, 2, 1)), Some(d(2024, 2, 29)));
        let fixed: Schedule = "monthly:30".parse().unwrap();
        assert_eq!(fixed.next_paid_after(d(2025, 2, 1)), Some(d(2025, 2, 28)));
        // May 30 2026 is a Saturday.
        assert_eq!(fixed.next_paid_after(d(2026, 5, 1)), Some(d(2026, 5, 29)));
    }

    #[test]
    fn biweekly_keeps_its_parity() {
        let s = Schedule::Biweekly {
            anchor: d(2025, 1, 3),
        };
        assert_eq!(s.next_paid_after(d(2025, 1, 3)), Some(d(2025, 1, 17)));
        assert_eq!(s.next_paid_after(d(2024, 12, 25)), Some(d(2025, 1, 3)));
    }

    #[test]
    fn text_round_trips_and_bad_text_is_rejected() {
        for text in [
            "weekly:2025-01-03",
            "biweekly:2025-01-10",
            "semi_monthly:1,15",
            "semi_monthly:15,last",
            "monthly:last",
            "monthly:7",
        ] {
            let s: Schedule = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
        }
        for bad in [
            "weekly",
            "daily:1",
            "monthly:0",
            "monthly:32",
            "semi_monthly:15,20",
            "weekly:2025-13-01",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
