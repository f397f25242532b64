//! A deterministic generator of pay histories with known schedules, for tests and the accuracy
//! benchmark: every schedule kind over several years, with weekend and holiday shifts, one-off
//! late or missing payments, noise in amounts, irregular earners (contractors) and borrowers
//! who change employer (and so schedule). The same seed and index give the same borrower.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::calendar::{add_business_days, on_or_before_business_day};
use super::schedule::{Frequency, MonthDay, Schedule, days_after, days_before};

/// Payments kept per history (the newest), as the loans flow keeps them.
pub const HISTORY_PAYMENTS_DEFAULT: usize = 60;
/// A schedule changer has at least this many payments on the new schedule.
pub const CHANGE_NEW_PAYMENTS_MIN: u64 = 8;
/// Late payments arrive 1..=this many business days late.
pub const LATE_BUSINESS_DAYS_MAX: u64 = 3;
/// Amount noise, in basis points either side of the base amount.
pub const AMOUNT_NOISE_BP: u64 = 200;
/// Shortest and longest gap between an irregular earner's payments, in days.
pub const IRREGULAR_GAP_DAYS_MIN: u64 = 2;
pub const IRREGULAR_GAP_DAYS_MAX: u64 = 40;

/// One generated payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedPayment {
    pub date: NaiveDate,
    pub amount: Decimal,
}

/// What kind of earner a borrower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarnerKind {
    Regular,
    /// Changed schedule (employer) during the history; the truth is the new schedule.
    Changer,
    Irregular,
}

/// A generated borrower and the truth the inference should find.
#[derive(Debug, Clone)]
pub struct GeneratedBorrower {
    pub borrower_id: String,
    pub kind: EarnerKind,
    /// The (current) schedule; `None` for an irregular earner.
    pub schedule: Option<Schedule>,
    pub as_of: NaiveDate,
    /// The first pay date after `as_of`; `None` for an irregular earner.
    pub next_date: Option<NaiveDate>,
    /// Ascending.
    pub payments: Vec<GeneratedPayment>,
}

impl GeneratedBorrower {
    pub fn frequency(&self) -> Frequency {
        self.schedule
            .map_or(Frequency::Irregular, |s| s.frequency())
    }
    pub fn dates(&self) -> Vec<NaiveDate> {
        self.payments.iter().map(|p| p.date).collect()
    }
}

/// Knobs of the generator; shares are per mille.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub irregular_per_mille: u64,
    pub changer_per_mille: u64,
    /// Share of borrowers with one late payment.
    pub late_per_mille: u64,
    /// Share of borrowers with one missing payment.
    pub missing_per_mille: u64,
    pub history_payments_max: usize,
    /// The as-of dates are spread over this range.
    pub as_of_from: NaiveDate,
    pub as_of_days: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 8,
            irregular_per_mille: 50,
            changer_per_mille: 50,
            late_per_mille: 500,
            missing_per_mille: 500,
            history_payments_max: HISTORY_PAYMENTS_DEFAULT,
            // A valid calendar date, so the constructor cannot fail.
            as_of_from: NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date"),
            as_of_days: 3 * 365,
        }
    }
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn per_mille(&mut self, share: u64) -> bool {
        self.range(0, 999) < share
    }
}

fn random_schedule(rng: &mut Rng, around: NaiveDate) -> Schedule {
    // Payroll is mostly on Fridays; some employers pay on other weekdays.
    let weekday_offset = if rng.per_mille(600) {
        4
    } else {
        rng.range(0, 4)
    };
    let monday = days_before(around, u64::from(around.weekday().num_days_from_monday()));
    let anchor = days_after(monday, weekday_offset + 7 * rng.range(0, 1));
    match rng.range(0, 99) {
        0..=19 => Schedule::Weekly { anchor },
        20..=54 => Schedule::Biweekly { anchor },
        55..=74 => {
            let (a, b) = match rng.range(0, 9) {
                0..=5 => (15, 31),
                6..=7 => (1, 15),
                _ => (10, 25),
            };
            // Both pairs are valid month days far enough apart.
            Schedule::semi_monthly(
                MonthDay::new(a).unwrap_or(MonthDay::LAST),
                MonthDay::new(b).unwrap_or(MonthDay::LAST),
            )
            .unwrap_or(Schedule::Monthly {
                day: MonthDay::LAST,
            })
        }
        _ => {
            let day = if rng.per_mille(400) {
                MonthDay::LAST
            } else {
                MonthDay::new(rng.range(1, 28) as u8).unwrap_or(MonthDay::LAST)
            };
            Schedule::Monthly { day }
        }
    }
}

fn amount(rng: &mut Rng, base_cents: u64) -> Decimal {
    let noise = rng.range(0, 2 * AMOUNT_NOISE_BP);
    let cents = base_cents * (10_000 - AMOUNT_NOISE_BP + noise) / 10_000;
    Decimal::new(cents as i64, 2)
}

/// The borrower `index` of the set generated by `config`.
pub fn generate_borrower(config: &GeneratorConfig, index: u64) -> GeneratedBorrower {
    let mut rng = Rng::new(config.seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    let as_of = days_after(config.as_of_from, rng.range(0, config.as_of_days));
    let start = days_before(as_of, rng.range(400, 4 * 365));
    let base_cents = rng.range(20_000, 500_000);
    let roll = rng.range(0, 999);
    let kind = if roll < config.irregular_per_mille {
        EarnerKind::Irregular
    } else if roll < config.irregular_per_mille + config.changer_per_mille {
        EarnerKind::Changer
    } else {
        EarnerKind::Regular
    };
    let mut dates = Vec::new();
    let schedule = match kind {
        EarnerKind::Irregular => {
            let mut d = start;
            while d <= as_of {
                dates.push(on_or_before_business_day(d));
                d = days_after(d, rng.range(IRREGULAR_GAP_DAYS_MIN, IRREGULAR_GAP_DAYS_MAX));
            }
            None
        }
        EarnerKind::Regular => {
            let s = random_schedule(&mut rng, start);
            s.paid_dates(start, as_of, &mut dates);
            Some(s)
        }
        EarnerKind::Changer => {
            let new = loop {
                let candidate = random_schedule(&mut rng, as_of);
                let old = random_schedule(&mut rng, start);
                if candidate.frequency() != old.frequency() || rng.per_mille(300) {
                    break (old, candidate);
                }
            };
            let (old, new) = new;
            let change = days_before(
                as_of,
                new.period_days() * CHANGE_NEW_PAYMENTS_MIN + rng.range(0, 120),
            );
            old.paid_dates(start, change, &mut dates);
            let mut after = Vec::new();
            new.paid_dates(days_after(change, 1), as_of, &mut after);
            dates.extend(after);
            Some(new)
        }
    };
    dates.sort_unstable();
    dates.dedup();
    if kind != EarnerKind::Irregular && !dates.is_empty() {
        let len = dates.len() as u64;
        if rng.per_mille(config.missing_per_mille) {
            dates.remove(rng.range(0, len - 1) as usize);
        }
        if rng.per_mille(config.late_per_mille) && !dates.is_empty() {
            let i = rng.range(0, dates.len() as u64 - 1) as usize;
            let late = add_business_days(dates[i], rng.range(1, LATE_BUSINESS_DAYS_MAX) as i32);
            let before_next = dates.get(i + 1).is_none_or(|n| late < *n);
            if late <= as_of && before_next {
                dates[i] = late;
            }
        }
    }
    let keep_from = dates.len().saturating_sub(config.history_payments_max);
    let payments = dates[keep_from..]
        .iter()
        .map(|&date| GeneratedPayment {
            date,
            amount: amount(&mut rng, base_cents),
        })
        .collect();
    GeneratedBorrower {
        borrower_id: format!("b{index:07}"),
        kind,
        next_date: schedule.and_then(|s| s.next_paid_after(as_of)),
        schedule,
        as_of,
        payments,
    }
}

/// `count` borrowers, indexes `0..count`.
pub fn generate(config: &GeneratorConfig, count: u64) -> Vec<GeneratedBorrower> {
    (0..count).map(|i| generate_borrower(config, i)).collect()
}
