//! A batch's three CSV reports: every payment with its status; per source (owed, paid so
//! far, counts); per branch. Served on demand and written to S3 when the batch completes.

use bytes::Bytes;
use payops_core::payroll::PaymentStatus;
use rust_decimal::Decimal;
use serde::Serialize;

use super::layout::{self, PAYMENT_PREFIX, attr};
use super::progress::{self, GroupProgress};
use super::{BATCHES_PREFIX, Payroll, PayrollAppError};
use crate::ports::{Cursor, Item, Page, Query, SortKeyRange};

pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";
/// Pages of payments read for one report at most (1000 a page: a million payments).
const PAYMENT_PAGES_MAX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Payments,
    Sources,
    Branches,
}

impl ReportKind {
    pub const ALL: [ReportKind; 3] = [
        ReportKind::Payments,
        ReportKind::Sources,
        ReportKind::Branches,
    ];
    pub fn file_name(self) -> &'static str {
        match self {
            ReportKind::Payments => "payments.csv",
            ReportKind::Sources => "sources.csv",
            ReportKind::Branches => "branches.csv",
        }
    }
    pub fn parse(name: &str) -> Option<ReportKind> {
        let name = name.strip_suffix(".csv").unwrap_or(name);
        ReportKind::ALL
            .into_iter()
            .find(|k| k.file_name().strip_suffix(".csv") == Some(name))
    }
}

pub fn reports_prefix(batch_id: &str) -> String {
    format!("{BATCHES_PREFIX}{batch_id}/reports/")
}

#[derive(Debug, Clone, Serialize)]
pub struct WrittenReports {
    pub prefix: String,
    pub keys: Vec<String>,
}

fn csv_error(e: impl std::fmt::Display) -> PayrollAppError {
    PayrollAppError::Join(format!("csv: {e}"))
}

/// One report as CSV bytes, from the table as it is now.
pub async fn render(
    p: &Payroll,
    batch_id: &str,
    kind: ReportKind,
) -> Result<Vec<u8>, PayrollAppError> {
    match kind {
        ReportKind::Payments => payments_csv(p, batch_id).await,
        ReportKind::Sources => groups_csv(
            "source_id",
            &progress::groups(p, batch_id, layout::SOURCE_PREFIX).await?,
        ),
        ReportKind::Branches => groups_csv(
            "branch_id",
            &progress::groups(p, batch_id, layout::BRANCH_PREFIX).await?,
        ),
    }
}

/// Writes the three reports to S3 under the batch's `reports/` prefix.
pub async fn write_reports(p: &Payroll, batch_id: &str) -> Result<WrittenReports, PayrollAppError> {
    let prefix = reports_prefix(batch_id);
    let mut keys = Vec::new();
    for kind in ReportKind::ALL {
        let body = render(p, batch_id, kind).await?;
        let key = format!("{prefix}{}", kind.file_name());
        p.blobs
            .put(&key, Bytes::from(body), CSV_CONTENT_TYPE)
            .await?;
        keys.push(key);
    }
    Ok(WrittenReports { prefix, keys })
}

/// Every payment of the batch in row order.
pub async fn all_payments(p: &Payroll, batch_id: &str) -> Result<Vec<Item>, PayrollAppError> {
    let mut out = Vec::new();
    each_payment_page(p, batch_id, |items| {
        out.extend(items);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Hands every payment of the batch to `each`, a page at a time in row order. The next page
/// is read while `each` handles the current one, so a report of many pages takes about as
/// long as its reads, not its reads plus its writing.
pub async fn each_payment_page(
    p: &Payroll,
    batch_id: &str,
    mut each: impl FnMut(Vec<Item>) -> Result<(), PayrollAppError>,
) -> Result<(), PayrollAppError> {
    let read = |cursor: Option<Cursor>| {
        p.table.query(
            Query::partition(layout::batch_partition(batch_id))
                .sort(SortKeyRange::BeginsWith(PAYMENT_PREFIX.to_owned()))
                .after(cursor),
        )
    };
    let mut page = read(None).await?;
    for _ in 0..PAYMENT_PAGES_MAX {
        let Page { items, cursor } = page;
        let Some(cursor) = cursor else {
            return each(items);
        };
        // `join!` polls the read first: its query is on its way before `each` runs.
        let (next, handled) = futures::join!(read(Some(cursor)), async { each(items) });
        handled?;
        page = next?;
    }
    Err(PayrollAppError::Corrupt(format!(
        "batch {batch_id} has more than {PAYMENT_PAGES_MAX} pages of payments"
    )))
}

async fn payments_csv(p: &Payroll, batch_id: &str) -> Result<Vec<u8>, PayrollAppError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "payment_id",
        "row",
        "source_id",
        "branch_id",
        "employee_id",
        "amount",
        "status",
        "provider_payment_id",
        "failure_reason",
        "updated_at",
    ])
    .map_err(csv_error)?;
    each_payment_page(p, batch_id, |items| write_payment_lines(&mut w, &items)).await?;
    w.into_inner().map_err(csv_error)
}

fn write_payment_lines(
    w: &mut csv::Writer<Vec<u8>>,
    items: &[Item],
) -> Result<(), PayrollAppError> {
    for item in items {
        let s = |name: &str| item.s(name).unwrap_or_default().to_owned();
        let row = item.n(attr::ROW).map(|n| n.to_string()).unwrap_or_default();
        let amount = item
            .n(attr::AMOUNT)
            .map(|a| payops_core::money::format_places(a, 2))
            .unwrap_or_default();
        w.write_record([
            s(attr::PAYMENT_ID),
            row,
            s(attr::SOURCE_ID),
            s(attr::BRANCH_ID),
            s(attr::EMPLOYEE_ID),
            amount,
            s(attr::STATUS),
            s(attr::PROVIDER_PAYMENT_ID),
            s(attr::FAILURE_REASON),
            s(attr::UPDATED_AT),
        ])
        .map_err(csv_error)?;
    }
    Ok(())
}

fn money(d: Decimal) -> String {
    payops_core::money::format_places(d, 2)
}

/// One line per source or branch: what is owed, what is paid so far, and the counts.
fn groups_csv(id_column: &str, groups: &[GroupProgress]) -> Result<Vec<u8>, PayrollAppError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        id_column,
        "payments",
        "owed",
        "paid_count",
        "paid",
        "in_progress_count",
        "in_progress",
        "failed_count",
        "failed",
        "reversed_count",
        "reversed",
    ])
    .map_err(csv_error)?;
    for g in groups {
        let in_progress = [
            PaymentStatus::Unprocessed,
            PaymentStatus::Pending,
            PaymentStatus::Processing,
            PaymentStatus::Sent,
        ];
        let ip_count: u64 = in_progress.iter().map(|s| g.count(*s)).sum();
        let ip_amount: Decimal = in_progress.iter().map(|s| g.amount(*s)).sum();
        let failed_count = g.count(PaymentStatus::Failed) + g.count(PaymentStatus::Canceled);
        let failed = g.amount(PaymentStatus::Failed) + g.amount(PaymentStatus::Canceled);
        w.write_record([
            g.id.clone(),
            g.owed_count.to_string(),
            money(g.owed_total),
            g.paid_count.to_string(),
            money(g.paid_total),
            ip_count.to_string(),
            money(ip_amount),
            failed_count.to_string(),
            money(failed),
            g.count(PaymentStatus::Reversed).to_string(),
            money(g.amount(PaymentStatus::Reversed)),
        ])
        .map_err(csv_error)?;
    }
    w.into_inner().map_err(csv_error)
}
