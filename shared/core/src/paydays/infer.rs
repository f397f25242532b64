//! Pay-frequency inference: from the dates a borrower was paid, the schedule, a confidence and
//! the next expected pay date.
//!
//! 1. Candidates come from votes of the recent payments. A paid date `p` may be the paid date of
//!    any nominal date from `p` up to the end of the run of closed days after it (payroll moves
//!    to the previous business day), so each payment votes for every weekday and day of month in
//!    that range; the most recent payments vote twice, so that a schedule change is seen early.
//!    The top weekday gives a weekly and two biweekly candidates (both parities); the top days
//!    of the month a monthly and a semi-monthly candidate.
//! 2. Each candidate is matched against the history: an expected paid date is a hit when paid
//!    on the day, late when paid within [`LATE_DAYS_MAX`] days (and before the next expected
//!    date), a miss otherwise; a payment no expected date claims is unexplained.
//! 3. The outcomes are read from the newest back. The regime ends at the second bad outcome
//!    (miss or unexplained) within three consecutive outcomes, so one late or missing payment
//!    does not end it, and an older schedule (before an employer change) does not count.
//! 4. The candidate with the best score in its regime wins; its confidence grows with the
//!    share of good outcomes, their punctuality and their number, and shrinks with each
//!    expected date since the last payment that passed unpaid.
//!
//! Confidence is in basis points (integers): no floats anywhere.

use chrono::{Datelike, NaiveDate};

use super::calendar::{CLOSED_RUN_DAYS_MAX, is_business_day};
use super::schedule::{Frequency, MonthDay, Schedule, days_after, days_before};

/// Fewer distinct pay dates than this cannot show a schedule.
pub const PAYMENTS_MIN: usize = 3;
/// A schedule needs at least this many good outcomes in its regime to be called regular.
pub const REGULAR_OUTCOMES_MIN: u32 = 4;
/// Good outcomes at which the support factor of the confidence reaches 1.
pub const SUPPORT_FULL_OUTCOMES: u32 = 6;
/// Below this confidence a schedule is not trusted: the earner is irregular.
pub const REGULAR_CONFIDENCE_MIN_BP: u32 = 5_000;
/// A payment up to this many days after its expected date (and before the next) is late.
pub const LATE_DAYS_MAX: u64 = 7;
/// Payments that vote twice for the candidates (the newest ones).
pub const RECENT_VOTERS: usize = 6;
/// Payments that vote for the candidates at all.
pub const VOTERS_MAX: usize = 16;
/// Payments scored (the newest): a year of biweekly payroll, two of monthly.
pub const SCORED_PAYMENTS_MAX: usize = 26;
/// Gaps used for an irregular earner's window (the newest ones).
pub const WINDOW_GAPS_MAX: usize = 12;
/// Each expected date that passed unpaid since the last payment keeps this share (3/4).
const TRAILING_MISS_KEEP_NUM: u64 = 3;
const TRAILING_MISS_KEEP_DEN: u64 = 4;
/// Basis points in 1.
pub const BP_ONE: u32 = 10_000;

/// A confidence in [0, 1], in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Confidence(u16);

impl Confidence {
    pub const ZERO: Confidence = Confidence(0);
    pub const ONE: Confidence = Confidence(BP_ONE as u16);

    /// Clamps to [0, 10000].
    pub fn from_bp(bp: u32) -> Self {
        Confidence(bp.min(BP_ONE) as u16)
    }
    pub fn bp(self) -> u32 {
        u32::from(self.0)
    }
    /// The exact decimal in [0, 1], e.g. `0.9375`.
    pub fn to_decimal(self) -> rust_decimal::Decimal {
        rust_decimal::Decimal::new(i64::from(self.0), 4).normalize()
    }
}

impl std::fmt::Display for Confidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

/// The earliest and latest dates an irregular earner is expected to be paid next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub earliest: NaiveDate,
    pub latest: NaiveDate,
}

/// What the history says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    pub frequency: Frequency,
    /// The schedule, for a regular earner.
    pub schedule: Option<Schedule>,
    pub confidence: Confidence,
    /// The first expected pay date after the as-of date, for a regular earner.
    pub next_date: Option<NaiveDate>,
    /// For an irregular earner with at least two payments.
    pub next_window: Option<Window>,
    /// Good outcomes (paid on the day or late) in the winning schedule's regime.
    pub regime_payments: u32,
    /// Expected dates since the last payment that passed unpaid.
    pub overdue_dates: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Hit,
    Late,
    Miss,
    Unexplained,
}

#[derive(Debug, Clone, Copy, Default)]
struct Score {
    hits: u32,
    lates: u32,
    bads: u32,
    trailing_misses: u32,
}

impl Score {
    fn good(&self) -> u32 {
        self.hits + self.lates
    }
    fn rank(&self) -> i64 {
        2 * i64::from(self.hits) + i64::from(self.lates) - 2 * i64::from(self.bads)
    }
    fn confidence(&self) -> Confidence {
        let good = u64::from(self.good());
        if good == 0 {
            return Confidence::ZERO;
        }
        let (hits, bads) = (u64::from(self.hits), u64::from(self.bads));
        let support = good.min(u64::from(SUPPORT_FULL_OUTCOMES));
        // share of good outcomes × punctuality ((hits + good) / 2good) × support (good / FULL)
        let num = u64::from(BP_ONE) * good * (hits + good) * support;
        let den = (good + bads) * 2 * good * u64::from(SUPPORT_FULL_OUTCOMES);
        let mut bp = num / den;
        for _ in 0..self.trailing_misses.min(16) {
            bp = bp * TRAILING_MISS_KEEP_NUM / TRAILING_MISS_KEEP_DEN;
        }
        Confidence::from_bp(bp as u32)
    }
}

/// Reusable buffers, so that inferring many histories allocates nothing per history.
#[derive(Debug, Default)]
pub struct Inferrer {
    dates: Vec<NaiveDate>,
    /// `dates` as day numbers (`num_days_from_ce`): scoring compares and offsets days many
    /// times per candidate, which is integer arithmetic on day numbers and not on dates.
    date_numbers: Vec<i32>,
    expected: Vec<NaiveDate>,
    outcomes: Vec<Outcome>,
    candidates: Vec<Schedule>,
}

/// Infers from paid dates (any order, duplicates allowed); dates after `as_of` are ignored.
pub fn infer(paid_dates: &[NaiveDate], as_of: NaiveDate) -> Inference {
    Inferrer::default().infer(paid_dates, as_of)
}

impl Inferrer {
    pub fn infer(&mut self, paid_dates: &[NaiveDate], as_of: NaiveDate) -> Inference {
        self.dates.clear();
        self.dates
            .extend(paid_dates.iter().copied().filter(|d| *d <= as_of));
        if !self.dates.is_sorted() {
            self.dates.sort_unstable();
        }
        self.dates.dedup();
        // The regime that counts is the recent one, and confidence saturates long before:
        // older payments only cost time.
        let older = self.dates.len().saturating_sub(SCORED_PAYMENTS_MAX);
        self.dates.drain(..older);
        if self.dates.len() < PAYMENTS_MIN {
            return self.irregular(as_of, Confidence::ZERO);
        }
        self.date_numbers.clear();
        self.date_numbers
            .extend(self.dates.iter().map(|d| d.num_days_from_ce()));
        self.collect_candidates();
        let mut best: Option<(Schedule, Score)> = None;
        for i in 0..self.candidates.len() {
            let candidate = self.candidates[i];
            let score = self.score(candidate, as_of);
            if best.is_none_or(|(_, b)| score.rank() > b.rank()) {
                best = Some((candidate, score));
            }
        }
        let Some((schedule, score)) = best else {
            return self.irregular(as_of, Confidence::ONE);
        };
        let confidence = score.confidence();
        if score.good() < REGULAR_OUTCOMES_MIN || confidence.bp() < REGULAR_CONFIDENCE_MIN_BP {
            return self.irregular(as_of, Confidence::from_bp(BP_ONE - confidence.bp()));
        }
        Inference {
            frequency: schedule.frequency(),
            schedule: Some(schedule),
            confidence,
            next_date: schedule.next_paid_after(as_of),
            next_window: None,
            regime_payments: score.good(),
            overdue_dates: score.trailing_misses,
        }
    }

    /// The nominal dates a paid date may stand for: itself and the closed days after it.
    fn nominal_range(paid: NaiveDate) -> impl Iterator<Item = NaiveDate> {
        let mut closed_after = 0;
        let mut d = paid;
        while closed_after < CLOSED_RUN_DAYS_MAX {
            d = days_after(d, 1);
            if is_business_day(d) {
                break;
            }
            closed_after += 1;
        }
        paid.iter_days().take(closed_after as usize + 1)
    }

    fn collect_candidates(&mut self) {
        let mut weekday_votes = [0u32; 7];
        let mut day_votes = [0u32; 32];
        let n = self.dates.len();
        for (age, &paid) in self.dates.iter().rev().take(VOTERS_MAX).enumerate() {
            let weight = if age < RECENT_VOTERS { 2 } else { 1 };
            for nominal in Self::nominal_range(paid) {
                weekday_votes[nominal.weekday().num_days_from_monday() as usize] += weight;
                day_votes[usize::from(month_day_of(nominal).get())] += weight;
            }
        }
        self.candidates.clear();
        let weekday = argmax(&weekday_votes, 0..7);
        // The newest payment that may stand for a nominal date on that weekday anchors them.
        let anchor = self.dates[..n].iter().rev().find_map(|&paid| {
            Self::nominal_range(paid)
                .find(|d| d.weekday().num_days_from_monday() as usize == weekday)
        });
        if let Some(anchor) = anchor {
            self.candidates.push(Schedule::Weekly { anchor });
            self.candidates.push(Schedule::Biweekly { anchor });
            self.candidates.push(Schedule::Biweekly {
                anchor: days_before(anchor, 7),
            });
        }
        let first = argmax(&day_votes, 1..32);
        if let Some(day) = MonthDay::new(first as u8) {
            self.candidates.push(Schedule::Monthly { day });
            let second = argmax_where(&day_votes, 1..32, |d| {
                Schedule::semi_monthly(day, MonthDay::new(d as u8).unwrap_or(day)).is_some()
            });
            if let Some(second) = second
                && 3 * day_votes[second] >= day_votes[first]
                && let Some(other) = MonthDay::new(second as u8)
                && let Some(semi) = Schedule::semi_monthly(day, other)
            {
                self.candidates.push(semi);
            }
        }
    }

    /// Matches `schedule` against the history and scores its most recent regime.
    fn score(&mut self, schedule: Schedule, as_of: NaiveDate) -> Score {
        let first_date = self.dates[0];
        self.expected.clear();
        schedule.paid_dates(
            days_before(first_date, LATE_DAYS_MAX),
            as_of,
            &mut self.expected,
        );
        self.outcomes.clear();
        let dates = &self.date_numbers;
        let (first, last) = (dates[0], dates[dates.len() - 1]);
        let as_of = as_of.num_days_from_ce();
        // LATE_DAYS_MAX is a small constant (a week), so it fits an i32 day offset.
        let late_days = LATE_DAYS_MAX as i32;
        let mut score = Score::default();
        let mut j = 0;
        let mut next_expected = self.expected.first().map(|d| d.num_days_from_ce());
        for i in 0..self.expected.len() {
            // Every expected date is converted once: it is `next` of the previous round.
            let Some(e) = next_expected else { break };
            next_expected = self.expected.get(i + 1).map(|d| d.num_days_from_ce());
            let mut end = e + late_days;
            if let Some(next) = next_expected {
                end = end.min(next - 1);
            }
            if e > last {
                // After the last payment: an expected date whose late window has passed is
                // overdue; one still open says nothing yet.
                if end < as_of {
                    score.trailing_misses += 1;
                }
                continue;
            }
            while j < dates.len() && dates[j] < e {
                self.outcomes.push(Outcome::Unexplained);
                j += 1;
            }
            if j < dates.len() && dates[j] <= end {
                let outcome = if dates[j] == e {
                    Outcome::Hit
                } else {
                    Outcome::Late
                };
                self.outcomes.push(outcome);
                j += 1;
            } else if e >= first {
                self.outcomes.push(Outcome::Miss);
            }
        }
        for _ in j..dates.len() {
            self.outcomes.push(Outcome::Unexplained);
        }
        let mut last_bad: Option<usize> = None;
        for (age, outcome) in self.outcomes.iter().rev().enumerate() {
            match outcome {
                Outcome::Hit => score.hits += 1,
                Outcome::Late => score.lates += 1,
                Outcome::Miss | Outcome::Unexplained => {
                    if let Some(previous) = last_bad
                        && age - previous <= 2
                    {
                        // Two bad outcomes close together: an older regime starts here; the
                        // earlier bad one belongs to the boundary, not to this regime.
                        score.bads -= 1;
                        break;
                    }
                    score.bads += 1;
                    last_bad = Some(age);
                }
            }
        }
        score
    }

    /// The window of an irregular earner: the range of recent gaps after the last payment, moved
    /// past `as_of` when it is already behind.
    fn irregular(&self, as_of: NaiveDate, confidence: Confidence) -> Inference {
        let next_window = self.window(as_of);
        Inference {
            frequency: Frequency::Irregular,
            schedule: None,
            confidence,
            next_date: None,
            next_window,
            regime_payments: 0,
            overdue_dates: 0,
        }
    }

    fn window(&self, as_of: NaiveDate) -> Option<Window> {
        let last = *self.dates.last()?;
        let start = self.dates.len().saturating_sub(WINDOW_GAPS_MAX + 1);
        let gaps = self.dates[start..]
            .windows(2)
            .map(|w| w[1].signed_duration_since(w[0]).num_days().unsigned_abs());
        let (min, max) = gaps.fold((u64::MAX, 0), |(lo, hi), g| (lo.min(g), hi.max(g)));
        if max == 0 {
            return None;
        }
        let mut earliest = days_after(last, min);
        let mut latest = days_after(last, max);
        let tomorrow = days_after(as_of, 1);
        if latest < tomorrow {
            earliest = tomorrow;
            latest = days_after(tomorrow, max - min);
        } else if earliest < tomorrow {
            earliest = tomorrow;
        }
        Some(Window { earliest, latest })
    }
}

/// The day-of-month bucket of a nominal date: its day, or [`MonthDay::LAST`] on a month's last day.
fn month_day_of(date: NaiveDate) -> MonthDay {
    let is_last = date.succ_opt().is_none_or(|n| n.month() != date.month());
    if is_last {
        MonthDay::LAST
    } else {
        // `day()` is 1..=30 here (31 is always a last day), a valid MonthDay.
        MonthDay::new(date.day() as u8).unwrap_or(MonthDay::LAST)
    }
}

fn argmax(votes: &[u32], range: std::ops::Range<usize>) -> usize {
    argmax_where(votes, range.clone(), |_| true).unwrap_or(range.start)
}

/// The index with the most votes (the first on ties) among those `keep` accepts, if any has one.
fn argmax_where(
    votes: &[u32],
    range: std::ops::Range<usize>,
    keep: impl Fn(usize) -> bool,
) -> Option<usize> {
    range
        .filter(|&i| keep(i) && votes[i] > 0)
        .fold(None, |best: Option<usize>, i| match best {
            Some(b) if votes[b] >= votes[i] => Some(b),
            _ => Some(i),
        })
}
