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
//! bitset built once for the years [`FAST_YEAR_MIN`]..=[`FAST_YEAR_MAX`] (computed from the
//! rules above, never typed in); dates outside fall back to the rules.

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

/// One bit per day from Jan 1 of FAST_YEAR_MIN: set when the day is a business day.
struct BusinessDays {
    first_day: i32,
    bits: Vec<u64>,
}

fn business_days() -> &'static BusinessDays {
    static TABLE: OnceLock<BusinessDays> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Both dates are valid calendar dates, so the constructors cannot fail.
        let first = NaiveDate::from_ymd_opt(FAST_YEAR_MIN, 1, 1).expect("a valid date");
        let last = NaiveDate::from_ymd_opt(FAST_YEAR_MAX, 12, 31).expect("a valid date");
        let first_day = first.num_days_from_ce();
        let len = (last.num_days_from_ce() - first_day + 1) as usize;
        let mut bits = vec![0u64; len.div_ceil(64)];
        let mut closed = std::collections::HashSet::new();
        for year in FAST_YEAR_MIN..=FAST_YEAR_MAX {
            closed.extend(fed_holidays(year).into_iter().map(|(d, _)| d));
        }
        for (i, date) in first.iter_days().take(len).enumerate() {
            if !is_weekend(date) && !closed.contains(&date) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        BusinessDays { first_day, bits }
    })
}

/// True for a Monday to Friday that is not an observed Federal Reserve holiday.
pub fn is_business_day(date: NaiveDate) -> bool {
    is_business_day_number(date.num_days_from_ce()).unwrap_or_else(|| is_business_day_by_rule(date))
}

/// The bitset lookup by day number (`num_days_from_ce`); `None` outside the fast range.
pub(crate) fn is_business_day_number(day: i32) -> Option<bool> {
    let table = business_days();
    let i = usize::try_from(day - table.first_day).ok()?;
    let word = table.bits.get(i / 64)?;
    Some(word & (1 << (i % 64)) != 0)
}

/// `date` itself when it is a business day, else the closest business day before it: where a
/// payroll scheduled on `date` is actually paid.
pub fn on_or_before_business_day(date: NaiveDate) -> NaiveDate {
    // Fast path: one day-number conversion, then bit lookups; dates are only built when the
    // day is closed (a weekend or holiday), which is the rarer case.
    let day = date.num_days_from_ce();
    for back in 0..CLOSED_RUN_DAYS_MAX {
        match is_business_day_number(day - back as i32) {
            Some(true) if back == 0 => return date,
            Some(true) => {
                return date
                    .checked_sub_days(chrono::Days::new(u64::from(back)))
                    .unwrap_or(date);
            }
            Some(false) => continue,
            None => return on_or_before_business_day_by_rule(date),
        }
    }
    on_or_before_business_day_by_rule(date)
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
        fn the_bitset_agrees_with_the_rules(day in 0i64..(230 * 366)) {
            let date = d(FAST_YEAR_MIN, 1, 1) + chrono::Duration::days(day);
            prop_assume!(date.year() <= FAST_YEAR_MAX);
            prop_assert_eq!(is_business_day(date), is_business_day_by_rule(date));
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
