//! What HR sees before approving: how many rows, how much in total, by payer (source) and by
//! branch, and every finding; and the rules that look across rows to get there.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;
use rust_decimal::Decimal;
use serde::Serialize;

use super::assemble::{RawRow, RowSink};
use super::checks::check_ein;
use super::field::Field;
use super::finding::{Finding, Reason};
use super::row::PayrollRow;
use super::validate::{RowFacts, check_row};
use super::zip::{ZipCheck, check_zip};

/// The summary of a payroll file, as `payops payroll summarize --json` prints it.
///
/// `total` and each group's `total` add the rows whose amount is valid; a group's `count` is
/// the number of rows that name it with a valid id. A file with errors cannot be approved, so
/// the figures of such a file are for orientation only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub rows: u32,
    /// Dollars, exactly two decimal places.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Sorted by `source_id`.
    pub by_source: Vec<SourceTotal>,
    /// Sorted by `branch_id`.
    pub by_branch: Vec<BranchTotal>,
    /// In row order; any error blocks approval.
    pub errors: Vec<Finding>,
    /// In row order.
    pub warnings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceTotal {
    /// The payer's `DunkinId`.
    pub source_id: String,
    pub count: u32,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BranchTotal {
    /// The employee's `DunkinBranch`.
    pub branch_id: String,
    pub count: u32,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
}

impl Summary {
    /// Whether the file may be approved.
    pub fn is_approvable(&self) -> bool {
        self.errors.is_empty()
    }
}

#[derive(Default)]
struct Group<'a> {
    count: u32,
    /// Exact: cents of amounts each at most `AMOUNT_USD_MAX`, at most `ROWS_MAX` of them, so
    /// far within an i64.
    cents: i64,
    /// A payer's EIN, state and ZIP on its first row: the next rows nearly always repeat
    /// them, and then need no look-up to know they were checked.
    first: Option<PayerFacts<'a>>,
}

struct FirstRow<'a> {
    row: u32,
    loan: Option<Cow<'a, str>>,
}

type Map<K, V> = HashMap<K, V, RandomState>;
type Set<K> = HashSet<K, RandomState>;
/// Most rows the tables are sized for ahead (a guess from the file's length must not make a
/// file of comments allocate for a million rows).
const RESERVED_ROWS_MAX: usize = 200_000;

/// A payer's id, when valid.
type PayerKey<'a> = Option<Cow<'a, str>>;
/// EIN, state, ZIP.
type PayerFacts<'a> = (
    Option<Cow<'a, str>>,
    Option<Cow<'a, str>>,
    Option<Cow<'a, str>>,
);

/// The rules across rows and the totals, fed one checked row at a time in file order.
///
/// Warnings about the payer (EIN, state, ZIP) repeat on each of its rows, so they are given
/// once per payer and value, on the first row that has them. A second row of an employee is a
/// warning on that row, naming the first.
pub(crate) struct Tally<'a> {
    keep: bool,
    rows: u32,
    cents: i64,
    by_source: Map<Cow<'a, str>, Group<'a>>,
    by_branch: Map<Cow<'a, str>, Group<'a>>,
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
    employees: Map<Cow<'a, str>, FirstRow<'a>>,
    /// (payer, (EIN, state, ZIP)) combinations already checked.
    payers_seen: Set<(PayerKey<'a>, PayerFacts<'a>)>,
    ein_warned: Set<(PayerKey<'a>, Cow<'a, str>)>,
    zip_warned: Set<(PayerKey<'a>, Cow<'a, str>, Cow<'a, str>)>,
    kept: Vec<PayrollRow>,
}

impl<'a> Tally<'a> {
    /// `rows_expected` sizes the tables (a guess is fine).
    pub(crate) fn new(keep: bool, rows_expected: usize) -> Self {
        let mut employees = Map::default();
        employees.reserve(rows_expected.min(RESERVED_ROWS_MAX));
        Tally {
            keep,
            rows: 0,
            cents: 0,
            by_source: Map::default(),
            by_branch: Map::default(),
            errors: Vec::new(),
            warnings: Vec::new(),
            employees,
            payers_seen: Set::default(),
            ein_warned: Set::default(),
            zip_warned: Set::default(),
            kept: Vec::new(),
        }
    }

    /// Adds the next row. Its numbers are relative to the part of the file it was read from;
    /// `offset` is the number of rows before that part.
    pub(crate) fn add(&mut self, mut facts: RowFacts<'a>, offset: u32) {
        let row = facts.row + offset;
        self.rows += 1;
        for mut e in facts.errors.drain(..) {
            e.row += offset;
            self.errors.push(e);
        }
        if let Some(cents) = facts.cents {
            self.cents += cents;
        }
        if let Some(branch) = &facts.branch {
            let group = group_of(&mut self.by_branch, branch);
            group.count += 1;
            group.cents += facts.cents.unwrap_or(0);
        }
        let payer_facts = (facts.ein.clone(), facts.state.clone(), facts.zip.clone());
        let checked = match &facts.payer {
            Some(payer) => {
                let group = group_of(&mut self.by_source, payer);
                group.count += 1;
                group.cents += facts.cents.unwrap_or(0);
                match &group.first {
                    Some(first) => *first == payer_facts,
                    None => {
                        group.first = Some(payer_facts.clone());
                        false
                    }
                }
            }
            None => false,
        };
        if !checked {
            self.payer_warnings(&facts, payer_facts, row);
        }
        if let Some(employee) = facts.employee.take() {
            self.duplicate_employee(employee, facts.loan.take(), row);
        }
        if let Some(mut typed) = facts.typed.take() {
            typed.row += offset;
            self.kept.push(*typed);
        }
    }

    fn payer_warnings(&mut self, facts: &RowFacts<'a>, payer_facts: PayerFacts<'a>, row: u32) {
        if !self.payers_seen.insert((facts.payer.clone(), payer_facts)) {
            return;
        }
        if let Some(ein) = &facts.ein
            && let Err(digits) = check_ein(ein)
            && self.ein_warned.insert((facts.payer.clone(), ein.clone()))
        {
            self.warn(row, Field::Ein, Reason::EinNotNineDigits { digits });
        }
        if let (Some(state), Some(zip)) = (&facts.state, &facts.zip) {
            let (field, reason) = match check_zip(state, zip) {
                ZipCheck::Fits => return,
                ZipCheck::Malformed => (Field::AddressZip, Reason::ZipMalformed),
                ZipCheck::UnknownState => (Field::AddressState, Reason::UnknownState),
                ZipCheck::NotInState => (Field::AddressZip, Reason::ZipNotInState),
            };
            if self
                .zip_warned
                .insert((facts.payer.clone(), state.clone(), zip.clone()))
            {
                self.warn(row, field, reason);
            }
        }
    }

    fn duplicate_employee(&mut self, employee: Cow<'a, str>, loan: Option<Cow<'a, str>>, row: u32) {
        use std::collections::hash_map::Entry;
        // One look-up whether the employee is new (the usual case) or not.
        let (first_row, same_loan) = match self.employees.entry(employee) {
            Entry::Vacant(slot) => {
                slot.insert(FirstRow { row, loan });
                return;
            }
            Entry::Occupied(first) => {
                let first = first.get();
                (first.row, loan.is_some() && first.loan == loan)
            }
        };
        self.warn(
            row,
            Field::EmployeeId,
            Reason::DuplicateEmployee {
                first_row,
                same_loan,
            },
        );
    }

    fn warn(&mut self, row: u32, field: Field, reason: Reason) {
        self.warnings.push(Finding { row, field, reason });
    }

    pub(crate) fn finish(self) -> (Summary, Vec<PayrollRow>) {
        let by_source = sorted(self.by_source)
            .into_iter()
            .map(|(source_id, count, total)| SourceTotal {
                source_id,
                count,
                total,
            })
            .collect();
        let by_branch = sorted(self.by_branch)
            .into_iter()
            .map(|(branch_id, count, total)| BranchTotal {
                branch_id,
                count,
                total,
            })
            .collect();
        let summary = Summary {
            rows: self.rows,
            total: Decimal::new(self.cents, 2),
            by_source,
            by_branch,
            errors: self.errors,
            warnings: self.warnings,
        };
        (summary, self.kept)
    }
}

/// The group of `id`, created empty if need be. (Cloning the key costs nothing when it
/// borrows from the input, as valid ids nearly always do.)
fn group_of<'g, 'a>(
    groups: &'g mut Map<Cow<'a, str>, Group<'a>>,
    id: &Cow<'a, str>,
) -> &'g mut Group<'a> {
    groups.entry(id.clone()).or_default()
}

fn sorted(groups: Map<Cow<'_, str>, Group<'_>>) -> Vec<(String, u32, Decimal)> {
    let mut v: Vec<(String, u32, Decimal)> = groups
        .into_iter()
        .map(|(id, g)| (id.into_owned(), g.count, Decimal::new(g.cents, 2)))
        .collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

impl<'a> RowSink<'a> for Tally<'a> {
    fn row(&mut self, row: &RawRow<'a>) {
        let facts = check_row(row, self.keep);
        self.add(facts, 0);
    }
}

/// Checks the rows of a later part of the file, for a [`Tally`] to add in order afterwards.
pub(crate) struct Checked<'a> {
    pub(crate) keep: bool,
    pub(crate) rows: Vec<RowFacts<'a>>,
}

impl<'a> RowSink<'a> for Checked<'a> {
    fn row(&mut self, row: &RawRow<'a>) {
        self.rows.push(check_row(row, self.keep));
    }
}
