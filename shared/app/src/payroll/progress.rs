//! A batch's progress, read from its per-source and per-branch aggregates (one short query
//! each; never a scan of the payments).

use std::collections::BTreeMap;

use payops_core::payroll::PaymentStatus;
use rust_decimal::Decimal;
use serde::Serialize;

use super::layout::{self, BRANCH_PREFIX, SOURCE_PREFIX, attr};
use super::{Payroll, PayrollAppError};
use crate::ports::table::SK;
use crate::ports::{Item, Query, SortKeyRange};

/// Pages of aggregates read at most per kind (a page holds up to 1000 sources or branches).
const AGGREGATE_PAGES_MAX: usize = 16;

/// One source's or branch's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupProgress {
    pub id: String,
    pub owed_count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub owed_total: Decimal,
    /// Settled (and not reversed).
    pub paid_count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub paid_total: Decimal,
    /// Payments per status (lower-case names), zeros left out.
    pub counts: BTreeMap<String, u64>,
    /// Amounts per status (lower-case names), zeros left out.
    #[serde(serialize_with = "decimal_map")]
    pub amounts: BTreeMap<String, Decimal>,
}

fn decimal_map<S: serde::Serializer>(
    m: &BTreeMap<String, Decimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, &v.to_string())?;
    }
    map.end()
}

impl GroupProgress {
    pub fn count(&self, status: PaymentStatus) -> u64 {
        self.counts.get(status.lower()).copied().unwrap_or(0)
    }
    pub fn amount(&self, status: PaymentStatus) -> Decimal {
        self.amounts
            .get(status.lower())
            .copied()
            .unwrap_or(Decimal::ZERO)
    }
    /// Payments in a final status (settled counts).
    pub fn done_count(&self) -> u64 {
        PaymentStatus::ALL
            .into_iter()
            .filter(|s| s.is_done())
            .map(|s| self.count(s))
            .sum()
    }
}

/// A batch's progress as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub payments: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub owed_total: Decimal,
    pub done: u64,
    pub paid_count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub paid_total: Decimal,
    pub counts: BTreeMap<String, u64>,
    /// Every payment is in a final status.
    pub complete: bool,
    pub by_source: Vec<GroupProgress>,
    pub by_branch: Vec<GroupProgress>,
}

/// Reads one aggregate item.
pub fn group_of(item: &Item, prefix: &str) -> Result<GroupProgress, PayrollAppError> {
    let sk = item.s(SK).unwrap_or_default();
    let id = sk
        .strip_prefix(prefix)
        .ok_or_else(|| PayrollAppError::Corrupt(sk.to_owned()))?;
    let whole = |name: &str| -> Result<u64, PayrollAppError> {
        match item.n(name) {
            None => Ok(0),
            Some(n) => {
                u64::try_from(n).map_err(|_| PayrollAppError::Corrupt(format!("{sk}.{name}")))
            }
        }
    };
    let mut g = GroupProgress {
        id: id.to_owned(),
        owed_count: whole(attr::OWED_COUNT)?,
        owed_total: item.n(attr::OWED_TOTAL).unwrap_or(Decimal::ZERO),
        ..GroupProgress::default()
    };
    for status in PaymentStatus::ALL {
        let c = whole(&layout::count_attr(status))?;
        if c > 0 {
            g.counts.insert(status.lower().to_owned(), c);
        }
        let a = item
            .n(&layout::amount_attr(status))
            .unwrap_or(Decimal::ZERO);
        if !a.is_zero() {
            g.amounts.insert(status.lower().to_owned(), a);
        }
    }
    g.paid_count = g.count(PaymentStatus::Settled);
    g.paid_total = g.amount(PaymentStatus::Settled);
    Ok(g)
}

/// The aggregates of one kind (`SRC#` or `BR#`), sorted by id.
pub async fn groups(
    p: &Payroll,
    batch_id: &str,
    prefix: &str,
) -> Result<Vec<GroupProgress>, PayrollAppError> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..AGGREGATE_PAGES_MAX {
        let page = p
            .table
            .query(
                Query::partition(layout::batch_partition(batch_id))
                    .sort(SortKeyRange::BeginsWith(prefix.to_owned()))
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            out.push(group_of(item, prefix)?);
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(out);
        }
    }
    Err(PayrollAppError::Corrupt(format!(
        "batch {batch_id} has more than {AGGREGATE_PAGES_MAX} pages of {prefix} aggregates"
    )))
}

/// The batch's progress: totals over its sources, with the per-source and per-branch rows.
pub async fn read(p: &Payroll, batch_id: &str) -> Result<Progress, PayrollAppError> {
    let by_source = groups(p, batch_id, SOURCE_PREFIX).await?;
    let by_branch = groups(p, batch_id, BRANCH_PREFIX).await?;
    Ok(combine(by_source, by_branch))
}

pub fn combine(by_source: Vec<GroupProgress>, by_branch: Vec<GroupProgress>) -> Progress {
    let mut p = Progress::default();
    for g in &by_source {
        p.payments += g.owed_count;
        p.owed_total += g.owed_total;
        p.done += g.done_count();
        p.paid_count += g.paid_count;
        p.paid_total += g.paid_total;
        for (k, v) in &g.counts {
            *p.counts.entry(k.clone()).or_default() += v;
        }
    }
    p.complete = p.payments > 0 && p.done == p.payments;
    p.by_source = by_source;
    p.by_branch = by_branch;
    p
}
