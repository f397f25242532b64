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
//!
//! Speed (issue 8: under 5 µs per 50-payment history): after the input dates are filtered and
//! sorted, everything works on [`DayNumber`]s (integers) and the calendar's per-day table, in
//! buffers the [`Inferrer`] reuses, so scoring a candidate allocates nothing and never builds
//! a chrono date. Candidates are scored in a fixed order and the first best one wins; once one
//! reaches the highest rank any candidate could have (every payment a hit), the rest are
//! skipped, which changes no result.

use chrono::NaiveDate;

use super::calendar::{
    CLOSED_RUN_DAYS_MAX, DayNumber, civil_of_day, date_of_day, day_number, days_in_month,
    is_business_day_at, weekday_of_day,
};
use super::schedule::{Frequency, MonthDay, Schedule, days_after};

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
pub(crate) enum Outcome {
    Hit,
    Late,
    Miss,
    Unexplained,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Score {
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

/// The score of the most recent regime, kept while outcomes arrive oldest first.
///
/// The rule, read from the newest outcome back: the regime ends at the second of two bad
/// outcomes (miss or unexplained) with at most one outcome between them; the good outcomes
/// newer than that older bad count, and the bad ones newer than the newer bad. Read oldest
/// first, that is: every such pair starts the regime afresh, keeping only the good outcome
/// between the two bads, if any. So the score needs no list of outcomes, and a bound on what
/// it can still become is known at every step.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RegimeScore {
    score: Score,
    position: usize,
    last_bad: Option<usize>,
    last_good: Option<(usize, Outcome)>,
}

impl RegimeScore {
    pub(crate) fn push(&mut self, outcome: Outcome) {
        let at = self.position;
        self.position += 1;
        match outcome {
            Outcome::Hit => {
                self.score.hits += 1;
                self.last_good = Some((at, outcome));
            }
            Outcome::Late => {
                self.score.lates += 1;
                self.last_good = Some((at, outcome));
            }
            Outcome::Miss | Outcome::Unexplained => {
                match self.last_bad {
                    Some(previous) if at - previous <= 2 => {
                        // An older regime ends here: start afresh with the good outcome
                        // between the two bads; the newer bad belongs to the boundary.
                        self.score.hits = 0;
                        self.score.lates = 0;
                        self.score.bads = 0;
                        match self.last_good {
                            Some((g, Outcome::Hit)) if g > previous => self.score.hits = 1,
                            Some((g, Outcome::Late)) if g > previous => self.score.lates = 1,
                            _ => {}
                        }
                    }
                    _ => self.score.bads += 1,
                }
                self.last_bad = Some(at);
            }
        }
    }

    /// The highest rank the regime can still reach when at most `payments_left` more good
    /// outcomes can come (each one consumes a payment): either no regime boundary comes and
    /// they add to the rank, or one does and the fresh regime keeps only the good outcomes
    /// after its older bad: future ones, and the newest outcome when it is a good one right
    /// after a bad (the only past one a future boundary can keep).
    fn rank_bound(&self, payments_left: usize) -> i64 {
        let kept = match (self.position.checked_sub(2), self.last_good) {
            (Some(bad), Some((good, outcome))) if self.last_bad == Some(bad) && good == bad + 1 => {
                if outcome == Outcome::Hit {
                    2
                } else {
                    1
                }
            }
            _ => 0,
        };
        self.score.rank().max(kept) + 2 * payments_left as i64
    }

    pub(crate) fn score(&self) -> Score {
        self.score
    }
}

/// The first candidate scored is the one the newest gap between payments suggests, so that a
/// winner is known early and the others stop as soon as they cannot beat it. Indices into the
/// candidates, which are always pushed in the order weekly, biweekly, biweekly (other parity),
/// monthly, semi-monthly; the result does not depend on this order (ties go to the lower
/// index; every index is visited, so were the list ever shorter or shifted, only the time
/// would change), only the time does.
const ORDER_SHORT_GAP: [usize; 5] = [0, 1, 2, 4, 3];
const ORDER_MIDDLE_GAP: [usize; 5] = [1, 2, 4, 3, 0];
const ORDER_LONG_GAP: [usize; 5] = [3, 4, 1, 2, 0];
/// Newest gaps (days) up to these pick the short and the middle order.
const SHORT_GAP_DAYS_MAX: DayNumber = 10;
const MIDDLE_GAP_DAYS_MAX: DayNumber = 17;

/// Reusable buffers, so that inferring many histories allocates nothing per history.
#[derive(Debug, Default)]
pub struct Inferrer {
    dates: Vec<NaiveDate>,
    /// `dates` as day numbers: scoring compares and offsets days many times per candidate,
    /// which is integer arithmetic on day numbers and not on dates.
    date_numbers: Vec<DayNumber>,
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
            .extend(self.dates.iter().map(|d| day_number(*d)));
        self.collect_candidates();
        let as_of_day = day_number(as_of);
        let best = self.best_candidate(as_of_day);
        let Some((_, schedule, score)) = best else {
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
            next_date: schedule.next_paid_day_after(as_of_day).map(date_of_day),
            next_window: None,
            regime_payments: score.good(),
            overdue_dates: score.trailing_misses,
        }
    }

    /// The nominal days a paid day may stand for: itself and the closed days after it.
    fn nominal_range(paid: DayNumber) -> std::ops::RangeInclusive<DayNumber> {
        let mut closed_after: DayNumber = 0;
        // CLOSED_RUN_DAYS_MAX is a small constant (a week).
        while closed_after < CLOSED_RUN_DAYS_MAX as DayNumber {
            if is_business_day_at(paid.saturating_add(closed_after + 1)) {
                break;
            }
            closed_after += 1;
        }
        paid..=paid.saturating_add(closed_after)
    }

    fn collect_candidates(&mut self) {
        let mut weekday_votes = [0u32; 7];
        let mut day_votes = [0u32; 32];
        let days = &self.date_numbers;
        for (age, &paid) in days.iter().rev().take(VOTERS_MAX).enumerate() {
            let weight = if age < RECENT_VOTERS { 2 } else { 1 };
            for nominal in Self::nominal_range(paid) {
                weekday_votes[weekday_of_day(nominal) as usize] += weight;
                day_votes[usize::from(month_day_of(nominal).get())] += weight;
            }
        }
        self.candidates.clear();
        let weekday = argmax(&weekday_votes, 0..7);
        // The newest payment that may stand for a nominal date on that weekday anchors them.
        let anchor = days.iter().rev().find_map(|&paid| {
            Self::nominal_range(paid).find(|&d| weekday_of_day(d) as usize == weekday)
        });
        if let Some(anchor) = anchor {
            self.candidates.push(Schedule::Weekly {
                anchor: date_of_day(anchor),
            });
            self.candidates.push(Schedule::Biweekly {
                anchor: date_of_day(anchor),
            });
            self.candidates.push(Schedule::Biweekly {
                anchor: date_of_day(anchor.saturating_sub(7)),
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

    /// The candidate with the highest rank; on equal ranks the one pushed first. Returns its
    /// index too.
    fn best_candidate(&self, as_of: DayNumber) -> Option<(usize, Schedule, Score)> {
        let days = &self.date_numbers;
        let newest_gap = match days.as_slice() {
            [.., a, b] => b - a,
            _ => 0,
        };
        let order = if newest_gap <= SHORT_GAP_DAYS_MAX {
            &ORDER_SHORT_GAP
        } else if newest_gap <= MIDDLE_GAP_DAYS_MAX {
            &ORDER_MIDDLE_GAP
        } else {
            &ORDER_LONG_GAP
        };
        let mut best: Option<(usize, Schedule, Score)> = None;
        for &index in order {
            let Some(&candidate) = self.candidates.get(index) else {
                continue;
            };
            // The rank this candidate must reach to win.
            let need = match best {
                None => i64::MIN,
                Some((b, _, score)) if index < b => score.rank(),
                Some((_, _, score)) => score.rank() + 1,
            };
            if let Some(score) = self.score(candidate, as_of, need) {
                best = Some((index, candidate, score));
            }
        }
        best
    }

    /// Matches `schedule` against the history and scores its most recent regime; `None` as soon
    /// as the rank cannot reach `need` any more.
    fn score(&self, schedule: Schedule, as_of: DayNumber, need: i64) -> Option<Score> {
        let dates = &self.date_numbers;
        let (first, last) = (dates[0], dates[dates.len() - 1]);
        // LATE_DAYS_MAX is a small constant (a week), so it fits a day offset.
        let late_days = LATE_DAYS_MAX as DayNumber;
        let mut regime = RegimeScore::default();
        if regime.rank_bound(dates.len()) < need {
            return None;
        }
        let mut trailing_misses = 0;
        let mut j = 0;
        let mut expected = schedule.paid_days_iter(first.saturating_sub(late_days), as_of);
        let mut next_expected = expected.next();
        while let Some(e) = next_expected {
            next_expected = expected.next();
            let mut end = e + late_days;
            if let Some(next) = next_expected {
                end = end.min(next - 1);
            }
            if e > last {
                // After the last payment: an expected date whose late window has passed is
                // overdue; one still open says nothing yet.
                if end < as_of {
                    trailing_misses += 1;
                }
                continue;
            }
            while j < dates.len() && dates[j] < e {
                regime.push(Outcome::Unexplained);
                j += 1;
            }
            if j < dates.len() && dates[j] <= end {
                regime.push(if dates[j] == e {
                    Outcome::Hit
                } else {
                    Outcome::Late
                });
                j += 1;
            } else if e >= first {
                regime.push(Outcome::Miss);
            }
            if regime.rank_bound(dates.len() - j) < need {
                return None;
            }
        }
        for _ in j..dates.len() {
            regime.push(Outcome::Unexplained);
        }
        let score = Score {
            trailing_misses,
            ..regime.score()
        };
        (score.rank() >= need).then_some(score)
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

/// The day-of-month bucket of a nominal day: its day, or [`MonthDay::LAST`] on a month's last
/// day.
fn month_day_of(day: DayNumber) -> MonthDay {
    let (year, month, d) = civil_of_day(day);
    if d == days_in_month(year, month) {
        MonthDay::LAST
    } else {
        // `d` is 1..=30 here (31 is always a last day), a valid MonthDay.
        MonthDay::new(d as u8).unwrap_or(MonthDay::LAST)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The regime rule as first written: the outcomes read from the newest back.
    fn backward_score(outcomes: &[Outcome]) -> Score {
        let mut score = Score::default();
        let mut last_bad: Option<usize> = None;
        for (age, outcome) in outcomes.iter().rev().enumerate() {
            match outcome {
                Outcome::Hit => score.hits += 1,
                Outcome::Late => score.lates += 1,
                Outcome::Miss | Outcome::Unexplained => {
                    if let Some(previous) = last_bad
                        && age - previous <= 2
                    {
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

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            4 => Just(Outcome::Hit),
            2 => Just(Outcome::Late),
            1 => Just(Outcome::Miss),
            1 => Just(Outcome::Unexplained),
        ]
    }

    proptest! {
        #[test]
        fn the_streaming_regime_score_equals_the_backward_reading(
            outcomes in proptest::collection::vec(outcome(), 0..60)
        ) {
            let mut regime = RegimeScore::default();
            for (i, o) in outcomes.iter().enumerate() {
                regime.push(*o);
                // The bound holds whatever comes next (here: what does come next).
                let goods_left = outcomes[i + 1..]
                    .iter()
                    .filter(|o| matches!(o, Outcome::Hit | Outcome::Late | Outcome::Unexplained))
                    .count();
                prop_assert!(regime.rank_bound(goods_left) >= backward_score(&outcomes).rank());
            }
            prop_assert_eq!(regime.score(), backward_score(&outcomes));
        }
    }
}
