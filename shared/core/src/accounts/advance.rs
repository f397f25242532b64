//! Cash advances: the 12-instalment schedule, the roll-forward of a failed instalment and the
//! audit rule. Pure: the app applies these decisions to the table with conditional writes.

use std::fmt;
use std::str::FromStr;

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use crate::money::{Currency, Money};

/// Instalments an advance is collected in.
pub const INSTALMENTS_PER_ADVANCE: u32 = 12;
/// Days between two instalments.
pub const INSTALMENT_INTERVAL_DAYS: u64 = 7;
/// Highest instalment number. Roll-forwards add trailing instalments up to it (two years of
/// weeks); after that a failed instalment is rescheduled in place, so an advance never grows
/// an unbounded schedule (and its partition stays one query page).
pub const INSTALMENT_NUMBER_MAX: u32 = 104;
/// Smallest advance: one cent per instalment, so that no instalment is zero.
pub const ADVANCE_AMOUNT_MIN: Decimal = Decimal::from_parts(12, 0, 0, false, 2);
/// Largest advance: one million.
pub const ADVANCE_AMOUNT_MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error("must be at least {ADVANCE_AMOUNT_MIN} (one cent per instalment)")]
    TooSmall,
    #[error("must be at most {ADVANCE_AMOUNT_MAX}")]
    TooLarge,
    #[error("has more than two decimal places")]
    TooManyDecimals,
    #[error("the schedule runs past the last representable date")]
    DateOverflow,
    #[error("the advance has no instalments")]
    NoInstalments,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstalmentStatus {
    /// Waiting for its due date or for a worker.
    Due,
    /// Leased by a worker that is debiting it.
    InProgress,
    Paid,
    /// The debit failed; the amount moved to another instalment (`rolled_into`).
    Failed,
}

impl InstalmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstalmentStatus::Due => "due",
            InstalmentStatus::InProgress => "in_progress",
            InstalmentStatus::Paid => "paid",
            InstalmentStatus::Failed => "failed",
        }
    }
}

impl FromStr for InstalmentStatus {
    type Err = crate::accounts::transaction::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "due" => Ok(InstalmentStatus::Due),
            "in_progress" => Ok(InstalmentStatus::InProgress),
            "paid" => Ok(InstalmentStatus::Paid),
            "failed" => Ok(InstalmentStatus::Failed),
            _ => Err(crate::accounts::transaction::UnknownWord(
                s.chars().take(32).collect(),
            )),
        }
    }
}

impl fmt::Display for InstalmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instalment as planned at the advance's creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedInstalment {
    /// 1-based.
    pub number: u32,
    pub amount: Decimal,
    pub due_date: NaiveDate,
}

/// Twelve weekly instalments, the first a week after `start`, summing exactly to `amount`;
/// the odd cents go to the first instalments.
pub fn plan_instalments(
    amount: Decimal,
    start: NaiveDate,
) -> Result<Vec<PlannedInstalment>, AdvanceError> {
    if amount < ADVANCE_AMOUNT_MIN {
        return Err(AdvanceError::TooSmall);
    }
    if amount > ADVANCE_AMOUNT_MAX {
        return Err(AdvanceError::TooLarge);
    }
    let money = Money::new(amount, Currency::USD).map_err(|_| AdvanceError::TooManyDecimals)?;
    money
        .split_evenly(INSTALMENTS_PER_ADVANCE)
        .into_iter()
        .zip(1..)
        .map(|(part, number)| {
            let due_date = weeks_after(start, number).ok_or(AdvanceError::DateOverflow)?;
            Ok(PlannedInstalment {
                number,
                amount: part.amount(),
                due_date,
            })
        })
        .collect()
}

fn weeks_after(date: NaiveDate, weeks: u32) -> Option<NaiveDate> {
    date.checked_add_days(Days::new(INSTALMENT_INTERVAL_DAYS * u64::from(weeks)))
}

/// What the roll-forward and the audit need to know about an instalment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstalmentView {
    pub number: u32,
    pub status: InstalmentStatus,
    pub amount: Decimal,
    pub due_date: NaiveDate,
}

/// Where the amount of a failed instalment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollTarget {
    /// Added to the next instalment that is still `due` (not leased, not paid).
    Existing { number: u32 },
    /// A new instalment a week after the last one.
    Trailing { number: u32, due_date: NaiveDate },
    /// The schedule is at `INSTALMENT_NUMBER_MAX`: the failed instalment itself becomes due
    /// again a week after the last one (with a new debit round, hence a new debit key).
    Reschedule { due_date: NaiveDate },
}

/// The roll-forward rule: a failed instalment's amount moves onto the next instalment still
/// due after it, or onto a new instalment a week after the last one.
pub fn roll_target(
    instalments: &[InstalmentView],
    failed: u32,
) -> Result<RollTarget, AdvanceError> {
    let next_due = instalments
        .iter()
        .filter(|i| i.number > failed && i.status == InstalmentStatus::Due)
        .min_by_key(|i| i.number);
    if let Some(next) = next_due {
        return Ok(RollTarget::Existing {
            number: next.number,
        });
    }
    let last_number = instalments
        .iter()
        .map(|i| i.number)
        .max()
        .unwrap_or(failed)
        .max(failed);
    let last_due = instalments.iter().map(|i| i.due_date).max();
    let Some(last_due) = last_due else {
        return Err(AdvanceError::NoInstalments);
    };
    let due_date = weeks_after(last_due, 1).ok_or(AdvanceError::DateOverflow)?;
    if last_number < INSTALMENT_NUMBER_MAX {
        Ok(RollTarget::Trailing {
            number: last_number + 1,
            due_date,
        })
    } else {
        Ok(RollTarget::Reschedule { due_date })
    }
}

/// The reference model of a roll-forward (what the app writes in one transaction), used by
/// the property tests here and by the app's tests to predict schedules.
pub fn apply_roll(instalments: &mut Vec<InstalmentView>, failed: u32, target: RollTarget) {
    let Some(amount) = instalments
        .iter()
        .find(|i| i.number == failed)
        .map(|i| i.amount)
    else {
        return;
    };
    match target {
        RollTarget::Existing { number } => {
            for i in instalments.iter_mut() {
                if i.number == number {
                    i.amount += amount;
                }
                if i.number == failed {
                    i.status = InstalmentStatus::Failed;
                }
            }
        }
        RollTarget::Trailing { number, due_date } => {
            for i in instalments.iter_mut().filter(|i| i.number == failed) {
                i.status = InstalmentStatus::Failed;
            }
            instalments.push(InstalmentView {
                number,
                status: InstalmentStatus::Due,
                amount,
                due_date,
            });
        }
        RollTarget::Reschedule { due_date } => {
            for i in instalments.iter_mut().filter(|i| i.number == failed) {
                i.status = InstalmentStatus::Due;
                i.due_date = due_date;
            }
        }
    }
}

/// The audit of one advance: paid + due + in-progress must equal the advance's amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditTotals {
    pub expected: Decimal,
    pub paid: Decimal,
    pub due: Decimal,
    pub in_progress: Decimal,
    /// Amounts of failed instalments: moved elsewhere, so not counted.
    pub rolled: Decimal,
}

impl AuditTotals {
    pub fn accounted(&self) -> Decimal {
        self.paid + self.due + self.in_progress
    }
    /// Positive when the instalments claim more than was advanced.
    pub fn difference(&self) -> Decimal {
        self.accounted() - self.expected
    }
    pub fn balanced(&self) -> bool {
        self.difference().is_zero()
    }
}

pub fn audit(expected: Decimal, instalments: &[InstalmentView]) -> AuditTotals {
    let sum = |status: InstalmentStatus| -> Decimal {
        instalments
            .iter()
            .filter(|i| i.status == status)
            .map(|i| i.amount)
            .sum()
    };
    AuditTotals {
        expected,
        paid: sum(InstalmentStatus::Paid),
        due: sum(InstalmentStatus::Due),
        in_progress: sum(InstalmentStatus::InProgress),
        rolled: sum(InstalmentStatus::Failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn views(plan: &[PlannedInstalment]) -> Vec<InstalmentView> {
        plan.iter()
            .map(|p| InstalmentView {
                number: p.number,
                status: InstalmentStatus::Due,
                amount: p.amount,
                due_date: p.due_date,
            })
            .collect()
    }

    #[test]
    fn plan_is_twelve_weekly_instalments_summing_exactly() {
        let plan = plan_instalments(Decimal::new(10000, 2), date(2024, 1, 1)).expect("valid");
        assert_eq!(plan.len(), 12);
        assert_eq!(plan[0].due_date, date(2024, 1, 8));
        assert_eq!(plan[11].due_date, date(2024, 3, 25));
        // 100.00 / 12 = 8.33 rest 4 cents: the first four carry 8.34.
        assert_eq!(plan[0].amount, Decimal::new(834, 2));
        assert_eq!(plan[3].amount, Decimal::new(834, 2));
        assert_eq!(plan[4].amount, Decimal::new(833, 2));
        assert_eq!(
            plan.iter().map(|p| p.amount).sum::<Decimal>(),
            Decimal::new(10000, 2)
        );
    }

    #[test]
    fn plan_rejects_bad_amounts() {
        let start = date(2024, 1, 1);
        assert_eq!(
            plan_instalments(Decimal::new(11, 2), start),
            Err(AdvanceError::TooSmall)
        );
        assert_eq!(
            plan_instalments(Decimal::new(100_000_001, 2), start),
            Err(AdvanceError::TooLarge)
        );
        assert_eq!(
            plan_instalments(Decimal::new(1001, 3), start),
            Err(AdvanceError::TooManyDecimals)
        );
        assert!(plan_instalments(ADVANCE_AMOUNT_MIN, start).is_ok());
    }

    #[test]
    fn failure_rolls_onto_the_next_due_or_a_trailing_instalment() {
        let plan = plan_instalments(Decimal::new(12000, 2), date(2024, 1, 1)).expect("valid");
        let mut s = views(&plan);
        assert_eq!(roll_target(&s, 1), Ok(RollTarget::Existing { number: 2 }));
        // Instalment 2 already leased by a worker: skip to 3.
        s[1].status = InstalmentStatus::InProgress;
        assert_eq!(roll_target(&s, 1), Ok(RollTarget::Existing { number: 3 }));
        assert_eq!(
            roll_target(&s, 12),
            Ok(RollTarget::Trailing {
                number: 13,
                due_date: date(2024, 4, 1)
            })
        );
        let target = roll_target(&s, 12).expect("has dates");
        apply_roll(&mut s, 12, target);
        assert_eq!(s.len(), 13);
        assert_eq!(s[12].amount, Decimal::new(1000, 2));
        assert_eq!(s[11].status, InstalmentStatus::Failed);
        assert!(audit(Decimal::new(12000, 2), &s).balanced());
    }

    #[test]
    fn at_the_cap_the_failed_instalment_is_rescheduled() {
        let s = vec![InstalmentView {
            number: INSTALMENT_NUMBER_MAX,
            status: InstalmentStatus::InProgress,
            amount: Decimal::ONE,
            due_date: date(2026, 1, 5),
        }];
        assert_eq!(
            roll_target(&s, INSTALMENT_NUMBER_MAX),
            Ok(RollTarget::Reschedule {
                due_date: date(2026, 1, 12)
            })
        );
    }

    #[test]
    fn audit_finds_a_difference() {
        let plan = plan_instalments(Decimal::new(5000, 2), date(2024, 1, 1)).expect("valid");
        let mut s = views(&plan);
        s[0].status = InstalmentStatus::Paid;
        s[1].status = InstalmentStatus::InProgress;
        let ok = audit(Decimal::new(5000, 2), &s);
        assert!(ok.balanced());
        s[5].amount += Decimal::new(1, 2);
        let bad = audit(Decimal::new(5000, 2), &s);
        assert_eq!(bad.difference(), Decimal::new(1, 2));
    }

    proptest! {
        #[test]
        fn plan_sums_exactly(cents in 12i64..100_000_000) {
            let amount = Decimal::new(cents, 2);
            let plan = plan_instalments(amount, date(2024, 2, 29)).expect("in range");
            prop_assert_eq!(plan.len(), INSTALMENTS_PER_ADVANCE as usize);
            prop_assert_eq!(plan.iter().map(|p| p.amount).sum::<Decimal>(), amount);
            prop_assert!(plan.iter().all(|p| p.amount > Decimal::ZERO));
            for pair in plan.windows(2) {
                prop_assert_eq!((pair[1].due_date - pair[0].due_date).num_days(), 7);
            }
        }

        /// Any sequence of collections, each paying or failing the earliest due instalment,
        /// keeps paid + due + in-progress equal to the advance, and ends with every cent
        /// either paid or still due.
        #[test]
        fn roll_forward_conserves_the_advance(
            cents in 12i64..10_000_000,
            outcomes in proptest::collection::vec(any::<bool>(), 0..150),
        ) {
            let amount = Decimal::new(cents, 2);
            let mut s = views(&plan_instalments(amount, date(2024, 1, 1)).expect("in range"));
            for pays in outcomes {
                let Some(next) = s.iter().filter(|i| i.status == InstalmentStatus::Due)
                    .min_by_key(|i| (i.due_date, i.number)).map(|i| i.number) else { break };
                if pays {
                    s.iter_mut().filter(|i| i.number == next).for_each(|i| i.status = InstalmentStatus::Paid);
                } else {
                    let target = roll_target(&s, next).expect("dates in range");
                    apply_roll(&mut s, next, target);
                }
                prop_assert!(audit(amount, &s).balanced());
                prop_assert!(s.iter().all(|i| i.number <= INSTALMENT_NUMBER_MAX));
            }
        }
    }
}
