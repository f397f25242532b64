//! The US Federal Reserve holiday calendar, computed by rule, and business-day arithmetic.
//!
//! Holidays (12 CFR 7.2 and the Federal Reserve's published schedule): New Year's Day (Jan 1),
//! Martin Luther King Jr. Day (3rd Monday of January, from 1986), Washington's Birthday
//! (3rd Monday of February), Memorial Day (last Monday of May), Juneteenth (June 19, from 2022:
//! the Board first observed it in 2022), Independence Day (Jul 4), Labor Day (1st Monday of
//! September), Columbus Day (2nd Monday of October), Veterans Day (Nov 11), Thanksgiving
//! (4th Thursday of November) and Christmas (Dec 25). The Monday holidays follow the Uniform
//! Monday Holiday Act for every year; earlier rules (before 1971) are not modelled.
//!
//! Weekend rule, as the Federal Reserve Banks apply it: a fixed-date holiday that falls on a
//! Sunday is observed on the following Monday; one that falls on a Saturday is NOT moved to the
//! Friday (the Reserve Banks stay open that Friday), so it adds no extra closed day.
//!
//! A business day is a Monday to Friday that is not an observed holiday. Lookups go through a
//! per-day table built once for the years [`FAST_YEAR_MIN`]..=[`FAST_YEAR_MAX`] (computed from
//! the rules above, never typed in): for each day, how far back the business day on or before
//! it is, so "is it open" and "where does payroll land" are one load each. Dates outside fall
//! back to the rules. The `_at` functions take [`DayNumber`]s, for the inference's hot paths.

use std::sync::OnceLock;

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// First year of the precomputed business-day bitset.
pub const FAST_YEAR_MIN: i32 = 1970;
/// Last year of the precomputed business-day bitset.
pub const FAST_YEAR_MAX: i32 = 2199;
/// First year the Federal Reserve observed Juneteenth.
pub const JUNETEENTH_YEAR_MIN: i32 = 2022;
/// First year Martin Luther King Jr. Day was a federal holiday.
pub const MLK_YEAR_MIN: i32 = 1986;
/// A run of closed days never exceeds this (a weekend plus one Monday holiday is 3); the loops
/// that walk to a business day stop here so that no input can make them spin.
pub const CLOSED_RUN_DAYS_MAX: u32 = 7;

/// The Federal Reserve holidays, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holiday {
    NewYearsDay,
    MartinLutherKingJrDay,
    WashingtonsBirthday,
    MemorialDay,
    Juneteenth,
    IndependenceDay,
    LaborDay,
    ColumbusDay,
    VeteransDay,
    Thanksgiving,
    Christmas,
}

impl Holiday {
    pub fn name(self) -> &'static str {
        match self {
            Holiday::NewYearsDay => "New Year's Day",
            Holiday::MartinLutherKingJrDay => "Martin Luther King Jr. Day",
            Holiday::WashingtonsBirthday => "Washington's Birthday",
            Holiday::MemorialDay => "Memorial Day",
            Holiday::Juneteenth => "Juneteenth National Independence Day",
            Holiday::IndependenceDay => "Independence Day",
            Holiday::LaborDay => "Labor Day",
            Holiday::ColumbusDay => "Columbus Day",
            Holiday::VeteransDay => "Veterans Day",
            Holiday::Thanksgiving => "Thanksgiving Day",
            Holiday::Christmas => "Christmas Day",
        }
    }
}

/// The `n`th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    let last = last_day_of_month(year, month)?;
    let back = (7 + last.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
    last.checked_sub_days(Days::new(u64::from(back)))
}

/// The last calendar day of a month.
pub fn last_day_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()
}

/// A fixed-date holiday as observed: Sunday moves to Monday; Saturday is not observed.
fn observed_fixed(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    match date.weekday() {
        Weekday::Sun => date.succ_opt(),
        Weekday::Sat => None,
        _ => Some(date),
    }
}

/// The observed Federal Reserve holidays of `year`, in date order. A holiday that falls on a
/// Saturday is absent (not observed).
pub fn fed_holidays(year: i32) -> Vec<(NaiveDate, Holiday)> {
    let mut days: Vec<(NaiveDate, Holiday)> = [
        (observed_fixed(year, 1, 1), Holiday::NewYearsDay),
        (
            (year >= MLK_YEAR_MIN)
                .then(|| nth_weekday(year, 1, Weekday::Mon, 3))
                .flatten(),
            Holiday::MartinLutherKingJrDay,
        ),
        (
            nth_weekday(year, 2, Weekday::Mon, 3),
            Holiday::WashingtonsBirthday,
        ),
        (last_weekday(year, 5, Weekday::Mon), Holiday::MemorialDay),
        (
            (year >= JUNETEENTH_YEAR_MIN)
                .then(|| observed_fixed(year, 6, 19))
                .flatten(),
            Holiday::Juneteenth,
        ),
        (observed_fixed(year, 7, 4), Holiday::IndependenceDay),
        (nth_weekday(year, 9, Weekday::Mon, 1), Holiday::LaborDay),
        (nth_weekday(year, 10, Weekday::Mon, 2), Holiday::ColumbusDay),
        (observed_fixed(year, 11, 11), Holiday::VeteransDay),
        (
            nth_weekday(year, 11, Weekday::Thu, 4),
            Holiday::Thanksgiving,
        ),
        (observed_fixed(year, 12, 25), Holiday::Christmas),
    ]
    .into_iter()
    .filter_map(|(date, holiday)| Some((date?, holiday)))
    .collect();
    days.sort_by_key(|(d, _)| *d);
    days
}

/// The holiday observed on `date`, if any (computed by rule, without the bitset).
pub fn holiday_on(date: NaiveDate) -> Option<Holiday> {
    fed_holidays(date.year())
        .into_iter()
        .find_map(|(d, h)| (d == date).then_some(h))
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn is_business_day_by_rule(date: NaiveDate) -> bool {
    !is_weekend(date) && holiday_on(date).is_none()
}

/// A day number: [`NaiveDate::num_days_from_ce`] (0001-01-01 is day 1, a Monday). The hot
/// paths of the inference work on day numbers: comparing and offsetting them is integer
/// arithmetic, where every chrono step converts through year, ordinal and flags.
pub type DayNumber = i32;

/// Day number of 1970-01-01, the epoch of the civil-date conversions below.
const UNIX_EPOCH_DAY: i64 = 719_163;
/// Days in a 400-year Gregorian cycle.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 (the start of a shifted era) to 1970-01-01.
const ERA_START_TO_UNIX_EPOCH_DAYS: i64 = 719_468;

pub fn day_number(date: NaiveDate) -> DayNumber {
    date.num_days_from_ce()
}

/// The date of a day number, saturating at chrono's range.
pub fn date_of_day(day: DayNumber) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day).unwrap_or(if day < 1 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    })
}

/// The weekday of a day number, Monday = 0 .. Sunday = 6.
pub fn weekday_of_day(day: DayNumber) -> u32 {
    // Day 1 is a Monday; rem_euclid is in 0..7.
    (day - 1).rem_euclid(7) as u32
}

pub fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in a month (1..=12).
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// (year, month, day) of a day number (proleptic Gregorian, H. Hinnant's `civil_from_days`).
pub fn civil_of_day(day: DayNumber) -> (i32, u32, u32) {
    let z = i64::from(day) - UNIX_EPOCH_DAY + ERA_START_TO_UNIX_EPOCH_DAYS;
    let era = z.div_euclid(DAYS_PER_ERA);
    let doe = z - era * DAYS_PER_ERA;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Any i32 day number is within a few million years: the year fits an i32; m and d are
    // 1..=12 and 1..=31.
    (y as i32, m as u32, d as u32)
}

/// The day number of (year, month 1..=12, day 1..=31) (H. Hinnant's `days_from_civil`).
pub fn day_of_civil(year: i32, month: u32, day: u32) -> DayNumber {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // Callers pass years of chrono's range, whose day numbers fit an i32.
    (era * DAYS_PER_ERA + doe - ERA_START_TO_UNIX_EPOCH_DAYS + UNIX_EPOCH_DAY) as DayNumber
}

/// In [`BusinessDays::back`]: a closed day whose business day on or before is not in the table.
const BACK_UNKNOWN: u8 = u8::MAX;

/// Per day from Jan 1 of FAST_YEAR_MIN: how many days back the business day on or before it
/// is (0 on a business day), computed once from the rules.
struct BusinessDays {
    first_day: DayNumber,
    back: Vec<u8>,
}

fn business_days() -> &'static BusinessDays {
    static TABLE: OnceLock<BusinessDays> = OnceLock::new();
    TABLE.get_or_init(|| {
        let first_day = day_of_civil(FAST_YEAR_MIN, 1, 1);
        let last_day = day_of_civil(FAST_YEAR_MAX, 12, 31);
        // last_day > first_day (constants), so the length is positive.
        let len = (last_day - first_day + 1) as usize;
        let mut open: Vec<bool> = (first_day..=last_day)
            .map(|day| weekday_of_day(day) < 5)
            .collect();
        for year in FAST_YEAR_MIN..=FAST_YEAR_MAX {
            for (date, _) in fed_holidays(year) {
                if let Ok(i) = usize::try_from(day_number(date) - first_day)
                    && let Some(slot) = open.get_mut(i)
                {
                    *slot = false;
                }
            }
        }
        let mut back = vec![0u8; len];
        for i in 0..len {
            back[i] = if open[i] {
                0
            } else if i == 0 {
                BACK_UNKNOWN
            } else {
                // A closed run is at most CLOSED_RUN_DAYS_MAX days long, far below BACK_UNKNOWN;
                // after an unknown day the sum saturates and stays unknown.
                back[i - 1].saturating_add(1)
            };
        }
        BusinessDays { first_day, back }
    })
}

/// True for a Monday to Friday that is not an observed Federal Reserve holiday.
pub fn is_business_day(date: NaiveDate) -> bool {
    is_business_day_number(date.num_days_from_ce()).unwrap_or_else(|| is_business_day_by_rule(date))
}

/// [`is_business_day`] on a day number.
pub fn is_business_day_at(day: DayNumber) -> bool {
    is_business_day_number(day).unwrap_or_else(|| is_business_day_by_rule(date_of_day(day)))
}

/// The table lookup by day number; `None` outside the fast range.
pub(crate) fn is_business_day_number(day: DayNumber) -> Option<bool> {
    let table = business_days();
    let i = usize::try_from(day.checked_sub(table.first_day)?).ok()?;
    table.back.get(i).map(|&b| b == 0)
}

/// `date` itself when it is a business day, else the closest business day before it: where a
/// payroll scheduled on `date` is actually paid.
pub fn on_or_before_business_day(date: NaiveDate) -> NaiveDate {
    let day = day_number(date);
    match on_or_before_in_table(day) {
        Some(paid) if paid == day => date,
        Some(paid) => date_of_day(paid),
        None => on_or_before_business_day_by_rule(date),
    }
}

/// [`on_or_before_business_day`] on a day number: one table lookup in the fast range.
pub fn on_or_before_business_day_at(day: DayNumber) -> DayNumber {
    on_or_before_in_table(day)
        .unwrap_or_else(|| day_number(on_or_before_business_day_by_rule(date_of_day(day))))
}

fn on_or_before_in_table(day: DayNumber) -> Option<DayNumber> {
    let table = business_days();
    let i = usize::try_from(day.checked_sub(table.first_day)?).ok()?;
    match *table.back.get(i)? {
        BACK_UNKNOWN => None,
        back => Some(day - DayNumber::from(back)),
    }
}

/// The same walk on dates and rules, for dates outside the precomputed table.
fn on_or_before_business_day_by_rule(date: NaiveDate) -> NaiveDate {
    let mut d = date;
    for _ in 0..CLOSED_RUN_DAYS_MAX {
        if is_business_day(d) {
            return d;
        }
        match d.pred_opt() {
            Some(p) => d = p,
            None => return d,
        }
    }
    d
}

/// The business day strictly before `date`.
pub fn previous_business_day(date: NaiveDate) -> NaiveDate {
    date.pred_opt().map_or(date, on_or_before_business_day)
}

/// The business day strictly after `date`.
pub fn next_business_day(date: NaiveDate) -> NaiveDate {
    let mut d = date;
    for _ in 0..=CLOSED_RUN_DAYS_MAX {
        match d.succ_opt() {
            Some(n) => d = n,
            None => return d,
        }
        if is_business_day(d) {
            return d;
        }
    }
    d
}

/// `n` business days after `date` (before it when `n` is negative). `date` itself need not be
/// a business day: adding 1 to a Saturday gives the next business day.
pub fn add_business_days(date: NaiveDate, n: i32) -> NaiveDate {
    let mut d = date;
    for _ in 0..n.unsigned_abs() {
        d = if n > 0 {
            next_business_day(d)
        } else {
            previous_business_day(d)
        };
    }
    d
}

/// Business days in `(from, to]` (0 when `to <= from`).
pub fn business_days_between(from: NaiveDate, to: NaiveDate) -> u32 {
    from.iter_days()
        .skip(1)
        .take_while(|d| *d <= to)
        .filter(|d| is_business_day(*d))
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_2025_calendar_matches_the_federal_reserve_schedule() {
        let got: Vec<NaiveDate> = fed_holidays(2025).into_iter().map(|(d, _)| d).collect();
        assert_eq!(
            got,
            vec![
                d(2025, 1, 1),
                d(2025, 1, 20),
                d(2025, 2, 17),
                d(2025, 5, 26),
                d(2025, 6, 19),
                d(2025, 7, 4),
                d(2025, 9, 1),
                d(2025, 10, 13),
                d(2025, 11, 11),
                d(2025, 11, 27),
                d(2025, 12, 25),
            ]
        );
    }

    #[test]
    fn sunday_holidays_move_to_monday_and_saturday_holidays_are_not_observed() {
        // 2022: Jan 1 is a Saturday (no Friday closure on Dec 31, 2021); Jun 19 a Sunday.
        assert!(is_business_day(d(2021, 12, 31)));
        assert_eq!(holiday_on(d(2022, 6, 20)), Some(Holiday::Juneteenth));
        // 2022: Christmas on a Sunday -> Monday Dec 26.
        assert_eq!(holiday_on(d(2022, 12, 26)), Some(Holiday::Christmas));
        // 2026: Jul 4 is a Saturday: Friday Jul 3 stays open.
        assert!(is_business_day(d(2026, 7, 3)));
        // 2021: Juneteenth (Saturday) predates the Fed's observance; Friday Jun 18 is open.
        assert!(is_business_day(d(2021, 6, 18)));
        assert!(holiday_on(d(2021, 6, 19)).is_none());
        // 2023: Nov 11 is a Saturday -> not observed; Friday Nov 10 is open.
        assert!(is_business_day(d(2023, 11, 10)));
    }

    #[test]
    fn moving_holidays_land_on_their_weekday() {
        assert_eq!(holiday_on(d(2024, 11, 28)), Some(Holiday::Thanksgiving));
        assert_eq!(holiday_on(d(2024, 5, 27)), Some(Holiday::MemorialDay));
        assert_eq!(holiday_on(d(2024, 10, 14)), Some(Holiday::ColumbusDay));
        assert_eq!(
            holiday_on(d(2026, 1, 19)),
            Some(Holiday::MartinLutherKingJrDay)
        );
        assert!(
            holiday_on(d(1985, 1, 21)).is_none(),
            "no MLK day before 1986"
        );
    }

    #[test]
    fn business_day_arithmetic() {
        // Friday Jul 4 2025 is closed: payroll moves to Thursday Jul 3.
        assert_eq!(on_or_before_business_day(d(2025, 7, 4)), d(2025, 7, 3));
        // Sunday Aug 31 2025, Labor Day Monday Sep 1: Friday Aug 29.
        assert_eq!(on_or_before_business_day(d(2025, 8, 31)), d(2025, 8, 29));
        assert_eq!(previous_business_day(d(2025, 9, 2)), d(2025, 8, 29));
        assert_eq!(add_business_days(d(2025, 8, 29), 1), d(2025, 9, 2));
        assert_eq!(add_business_days(d(2025, 9, 2), -1), d(2025, 8, 29));
        assert_eq!(add_business_days(d(2025, 9, 2), 0), d(2025, 9, 2));
        assert_eq!(business_days_between(d(2025, 8, 29), d(2025, 9, 5)), 4);
    }

    proptest! {
        #[test]
        fn the_table_agrees_with_the_rules(day in -400i64..(230 * 366 + 400)) {
            let date = d(FAST_YEAR_MIN, 1, 1) + chrono::Duration::days(day);
            prop_assert_eq!(is_business_day(date), is_business_day_by_rule(date));
            prop_assert_eq!(is_business_day_at(day_number(date)), is_business_day_by_rule(date));
            prop_assert_eq!(
                on_or_before_business_day(date),
                on_or_before_business_day_by_rule(date)
            );
            prop_assert_eq!(
                on_or_before_business_day_at(day_number(date)),
                day_number(on_or_before_business_day_by_rule(date))
            );
        }

        #[test]
        fn day_numbers_agree_with_chrono(day in -3_000_000i32..3_000_000) {
            let date = NaiveDate::from_num_days_from_ce_opt(day).unwrap();
            prop_assert_eq!(day_number(date), day);
            prop_assert_eq!(date_of_day(day), date);
            prop_assert_eq!(civil_of_day(day), (date.year(), date.month(), date.day()));
            prop_assert_eq!(day_of_civil(date.year(), date.month(), date.day()), day);
            prop_assert_eq!(weekday_of_day(day), date.weekday().num_days_from_monday());
            let last = last_day_of_month(date.year(), date.month()).unwrap();
            prop_assert_eq!(days_in_month(date.year(), date.month()), last.day());
        }

        #[test]
        fn adding_then_subtracting_business_days_round_trips(day in 0i64..20_000, n in 0i32..40) {
            let start = on_or_before_business_day(d(1990, 1, 10) + chrono::Duration::days(day));
            let there = add_business_days(start, n);
            prop_assert!(is_business_day(there));
            prop_assert_eq!(add_business_days(there, -n), start);
            prop_assert_eq!(business_days_between(start, there), n as u32);
        }
    }
}
