//! `GET /api/v1/transactions`: a paginated report of at most the last five days that does not
//! change while it is paged.
//!
//! **Keys.** Every transaction is in gsi1 under `TXDAY#{date}` with sort key
//! `{timestamp}#{id}` (fixed-width UTC timestamps, so text order is time order). A day of the
//! report is one `Query` with `BETWEEN`, never a scan.
//!
//! **Snapshot.** Page 1 (no `snapshot` parameter) fixes the window — `start` and an `end` no
//! later than `now - SNAPSHOT_SETTLE_MS` — and counts the transactions of each day inside it.
//! The window, the per-day counts and the total travel in the returned `snapshot` token;
//! later pages bring it back and read only inside that window, so transactions written since
//! (all stamped after `end`) never appear and pages never shift.
//!
//! **Page N without scanning per page.** Counting happens once per snapshot, not per page:
//! per-day counts turn page N into "day d, skip k" ([`locate`]), so a page reads at most the
//! items of one day before its own. Sequential paging reads nothing extra: the token returned
//! with page N carries the sort key of its last item, and page N+1 resumes right after it
//! (`sk > last`). The counting itself is bounded too: a day that is wholly inside the window
//! and closed (it ended more than the settle delay ago, so it can gain no transaction) is
//! counted once ever and kept as a `TXDAYAGG#{date}` item; only the window's two edge days are
//! counted by query. We chose this over a per-day counter updated by every transfer: such a
//! counter would be one hot item in every transfer's transaction (DynamoDB throttles one item
//! at 1,000 writes/s and cancels conflicting transactions), and it could not answer "how many
//! before the snapshot's end" anyway.
//!
//! `total_amount` sums the successful transactions of the snapshot; failed ones are listed
//! (with their `reason`) but moved no money.
//!
//! [`locate`]: payops_core::accounts::report::locate

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use payops_core::accounts::format_amount;
use payops_core::accounts::report::{
    self, ParamError, REPORT_WINDOW_DAYS, SNAPSHOT_SETTLE_MS, SNAPSHOT_TTL_SECONDS, Window,
};
use payops_core::accounts::transaction::format_timestamp;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::layout::{self, GSI1, GSI1_SK, TxView, attr};
use super::{Accounts, AccountsError};
use crate::ports::table::QUERY_PAGE_ITEMS_MAX;
use crate::ports::{Item, Query, SortKeyRange};

pub const SNAPSHOT_PARAM: &str = "snapshot";
/// Longest snapshot token accepted (a real one is a few hundred bytes).
pub const SNAPSHOT_TOKEN_BYTES_MAX: usize = 4096;
/// Most transactions one snapshot may hold; a bound on the counting of page 1.
pub const SNAPSHOT_ITEMS_MAX: u64 = 5_000_000;
/// How far a token's `taken` may be ahead of this process's clock (clocks of Lambda hosts
/// differ slightly).
const CLOCK_SKEW_MS: i64 = 60_000;
const TOKEN_VERSION: u8 = 1;

impl From<ParamError> for AccountsError {
    fn from(e: ParamError) -> Self {
        AccountsError::invalid(e.param, e.reason)
    }
}

/// What the client sees of one page.
#[derive(Debug, Serialize)]
pub struct ReportPage {
    pub transactions: Vec<TxView>,
    pub page: u64,
    pub limit: u32,
    pub total_amount: String,
    pub total_pages: u64,
    pub total_count: u64,
    pub start_timestamp: String,
    pub end_timestamp: String,
    /// Pass back as `snapshot` with the next pages.
    pub snapshot: String,
}

/// The fixed figures of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    window: Window,
    taken: DateTime<Utc>,
    count: u64,
    total: Decimal,
    days: Vec<(NaiveDate, u64)>,
}

/// Where page `page` (of `limit`) starts: right after `after` in day `day`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Hint {
    page: u64,
    limit: u32,
    day: usize,
    after: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Token {
    v: u8,
    start: String,
    end: String,
    taken: String,
    count: u64,
    total: String,
    days: Vec<(NaiveDate, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<Hint>,
}

fn encode(snapshot: &Snapshot, next: Option<Hint>) -> String {
    let token = Token {
        v: TOKEN_VERSION,
        start: format_timestamp(snapshot.window.start),
        end: format_timestamp(snapshot.window.end),
        taken: format_timestamp(snapshot.taken),
        count: snapshot.count,
        total: snapshot.total.to_string(),
        days: snapshot.days.clone(),
        next,
    };
    // Serialising plain strings and numbers cannot fail.
    let json = serde_json::to_vec(&token).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Reads a token back and checks that it describes a possible snapshot. A client that edits
/// its token only confuses its own paging: the window is still bounded to five days.
fn decode(text: &str, now: DateTime<Utc>) -> Result<(Snapshot, Option<Hint>), AccountsError> {
    let bad = || {
        AccountsError::invalid(
            SNAPSHOT_PARAM,
            "is not a snapshot token returned by this API",
        )
    };
    if text.len() > SNAPSHOT_TOKEN_BYTES_MAX {
        return Err(bad());
    }
    let json = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let token: Token = serde_json::from_slice(&json).map_err(|_| bad())?;
    let time = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad())
    };
    let window = Window {
        start: time(&token.start)?,
        end: time(&token.end)?,
    };
    let taken = time(&token.taken)?;
    let total: Decimal = token.total.parse().map_err(|_| bad())?;
    let dates: Vec<NaiveDate> = token.days.iter().map(|(d, _)| *d).collect();
    let sum: u64 = token.days.iter().map(|(_, c)| *c).sum();
    let consistent = token.v == TOKEN_VERSION
        && window.end - window.start <= Duration::days(REPORT_WINDOW_DAYS)
        && window.end <= taken
        && dates == window.days()
        && sum == token.count;
    if !consistent || taken > now + Duration::milliseconds(CLOCK_SKEW_MS) {
        return Err(bad());
    }
    if now - taken > Duration::seconds(SNAPSHOT_TTL_SECONDS) {
        return Err(AccountsError::invalid(
            SNAPSHOT_PARAM,
            "has expired; request page 1 without it to take a new snapshot",
        ));
    }
    let snapshot = Snapshot {
        window,
        taken,
        count: token.count,
        total,
        days: token.days,
    };
    Ok((snapshot, token.next))
}

/// The sort-key bounds of a window inside any day partition.
fn bounds(window: &Window) -> (String, String) {
    (
        format_timestamp(window.start),
        layout::report_sort_key_upper(&format_timestamp(window.end)),
    )
}

/// `GET /api/v1/transactions?page&limit&start_timestamp&end_timestamp&snapshot`.
pub async fn report(
    state: &Accounts,
    params: &HashMap<String, String>,
) -> Result<ReportPage, AccountsError> {
    let param = |name: &str| params.get(name).map(String::as_str);
    let page = report::parse_page(param("page"))?;
    let limit = report::parse_limit(param("limit"))?;
    let now = state.clock.now();
    let (snapshot, hint) = match param(SNAPSHOT_PARAM) {
        Some(token) => decode(token, now)?,
        None => {
            let start = report::parse_timestamp("start_timestamp", param("start_timestamp"))?;
            let end = report::parse_timestamp("end_timestamp", param("end_timestamp"))?;
            let window = report::resolve_window(now, start, end)?;
            (take_snapshot(state, window, now).await?, None)
        }
    };
    let hint = hint.filter(|h| h.page == page && h.limit == limit && h.day < snapshot.days.len());
    let (records, next) = read_page(state, &snapshot, page, limit, hint).await?;
    Ok(ReportPage {
        transactions: records.iter().map(TxView::from).collect(),
        page,
        limit,
        total_amount: format_amount(snapshot.total),
        total_pages: report::total_pages(snapshot.count, limit),
        total_count: snapshot.count,
        start_timestamp: format_timestamp(snapshot.window.start),
        end_timestamp: format_timestamp(snapshot.window.end),
        snapshot: encode(&snapshot, next),
    })
}

async fn take_snapshot(
    state: &Accounts,
    window: Window,
    now: DateTime<Utc>,
) -> Result<Snapshot, AccountsError> {
    let mut days = Vec::new();
    let mut count = 0u64;
    let mut total = Decimal::ZERO;
    let (lower, upper) = bounds(&window);
    for day in window.days() {
        let (day_start, day_last) = day_span(day);
        let whole = window.start <= day_start && window.end >= day_last;
        let closed = day_last + Duration::milliseconds(1 + SNAPSHOT_SETTLE_MS) <= now;
        let (n, amount) = if whole && closed {
            closed_day_totals(state, day).await?
        } else {
            count_range(state, day, &lower, &upper).await?
        };
        count += n;
        total += amount;
        if count > SNAPSHOT_ITEMS_MAX {
            return Err(AccountsError::invalid(
                "start_timestamp",
                format!("the window holds more than {SNAPSHOT_ITEMS_MAX} transactions; narrow it"),
            ));
        }
        days.push((day, n));
    }
    Ok(Snapshot {
        window,
        taken: now,
        count,
        total,
        days,
    })
}

/// The first and last millisecond of a UTC day.
fn day_span(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
    (start, start + Duration::days(1) - Duration::milliseconds(1))
}

/// Count and successful total of a closed day, computed once and then kept: a closed day can
/// gain no transaction, so the figures never change (racing writers write the same item).
async fn closed_day_totals(
    state: &Accounts,
    day: NaiveDate,
) -> Result<(u64, Decimal), AccountsError> {
    let key = layout::day_aggregate_key(day);
    if let Some(item) = state.table.get(&key).await? {
        let count = item.n(attr::COUNT).and_then(|c| c.to_u64());
        if let (Some(count), Some(total)) = (count, item.n(attr::TOTAL_AMOUNT)) {
            return Ok((count, total));
        }
    }
    let (start, last) = day_span(day);
    let window = Window { start, end: last };
    let (lower, upper) = bounds(&window);
    let (count, total) = count_range(state, day, &lower, &upper).await?;
    let item = Item::new(&key)
        .with(attr::COUNT, Decimal::from(count))
        .with(attr::TOTAL_AMOUNT, total);
    state.table.put(item, None).await?;
    Ok((count, total))
}

/// Count and successful total of one day's transactions between two sort keys.
async fn count_range(
    state: &Accounts,
    day: NaiveDate,
    lower: &str,
    upper: &str,
) -> Result<(u64, Decimal), AccountsError> {
    let mut count = 0u64;
    let mut total = Decimal::ZERO;
    let mut cursor = None;
    loop {
        let query = Query::partition(layout::report_partition(day))
            .on_index(GSI1)
            .sort(SortKeyRange::Between(lower.to_owned(), upper.to_owned()))
            .limit(QUERY_PAGE_ITEMS_MAX)
            .after(cursor);
        let page = state.table.query(query).await?;
        for item in &page.items {
            count += 1;
            total += layout::tx_report_amount(item)?;
        }
        if count > SNAPSHOT_ITEMS_MAX {
            return Ok((count, total));
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return Ok((count, total)),
        }
    }
}

/// Reads one page of the snapshot and the hint for the next one.
async fn read_page(
    state: &Accounts,
    snapshot: &Snapshot,
    page: u64,
    limit: u32,
    hint: Option<Hint>,
) -> Result<(Vec<layout::TxRecord>, Option<Hint>), AccountsError> {
    let offset = report::page_offset(page, limit);
    let counts: Vec<u64> = snapshot.days.iter().map(|(_, c)| *c).collect();
    let (mut day, mut skip, mut after) = match hint {
        Some(h) => (h.day, 0, Some(h.after)),
        None => match report::locate(offset, &counts) {
            Some((day, skip)) => (day, skip, None),
            None => return Ok((Vec::new(), None)),
        },
    };
    let (lower, upper) = bounds(&snapshot.window);
    let want = limit as usize;
    let mut out = Vec::with_capacity(want);
    let mut last: Option<(usize, String)> = None;
    while out.len() < want && day < snapshot.days.len() {
        if counts[day] > 0 {
            let range = DayRange {
                day: snapshot.days[day].0,
                lower: &lower,
                upper: &upper,
                after: after.take(),
            };
            if let Some(sk) = read_day(state, range, &mut skip, want, &mut out).await? {
                last = Some((day, sk));
            }
        }
        day += 1;
    }
    let more = offset + (out.len() as u64) < snapshot.count;
    let next = match last {
        Some((day, after)) if out.len() == want && more => Some(Hint {
            page: page + 1,
            limit,
            day,
            after,
        }),
        _ => None,
    };
    Ok((out, next))
}

struct DayRange<'a> {
    day: NaiveDate,
    lower: &'a str,
    upper: &'a str,
    /// Resume strictly after this sort key (the previous page's last item).
    after: Option<String>,
}

/// Appends the day's transactions to `out` (after skipping `skip` of them) until it holds
/// `want`; returns the sort key of the last one appended.
async fn read_day(
    state: &Accounts,
    range: DayRange<'_>,
    skip: &mut u64,
    want: usize,
    out: &mut Vec<layout::TxRecord>,
) -> Result<Option<String>, AccountsError> {
    let sort = match &range.after {
        // `>` has no upper end; items past the window are cut below.
        Some(after) => SortKeyRange::Gt(after.clone()),
        None => SortKeyRange::Between(range.lower.to_owned(), range.upper.to_owned()),
    };
    let mut last = None;
    let mut cursor = None;
    loop {
        let needed = (*skip as usize).saturating_add(want - out.len());
        let query = Query::partition(layout::report_partition(range.day))
            .on_index(GSI1)
            .sort(sort.clone())
            .limit(needed.clamp(1, QUERY_PAGE_ITEMS_MAX))
            .after(cursor);
        let page = state.table.query(query).await?;
        for item in &page.items {
            let sk = item.s(GSI1_SK).unwrap_or_default();
            if sk > range.upper {
                return Ok(last);
            }
            if *skip > 0 {
                *skip -= 1;
                continue;
            }
            out.push(layout::tx_from_item(item)?);
            last = Some(sk.to_owned());
            if out.len() == want {
                return Ok(last);
            }
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let now = Utc
            .with_ymd_and_hms(2024, 5, 10, 12, 0, 0)
            .single()
            .expect("valid");
        let window = report::resolve_window(now, None, None).expect("defaults");
        let days: Vec<(NaiveDate, u64)> = window.days().into_iter().map(|d| (d, 2)).collect();
        let snapshot = Snapshot {
            window,
            taken: now,
            count: 2 * days.len() as u64,
            total: Decimal::new(1234, 2),
            days,
        };
        let hint = Hint {
            page: 2,
            limit: 5,
            day: 1,
            after: "x".into(),
        };
        let token = encode(&snapshot, Some(hint.clone()));
        assert_eq!(
            decode(&token, now).expect("valid token"),
            (snapshot.clone(), Some(hint))
        );

        let mut forged = snapshot.clone();
        forged.count += 1;
        let field = |r: Result<(Snapshot, Option<Hint>), AccountsError>| match r {
            Err(AccountsError::Invalid { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(field(decode(&encode(&forged, None), now)), SNAPSHOT_PARAM);
        assert_eq!(field(decode("not-a-token", now)), SNAPSHOT_PARAM);
        let later = now + Duration::seconds(SNAPSHOT_TTL_SECONDS + 1);
        assert_eq!(field(decode(&token, later)), SNAPSHOT_PARAM);
    }
}
