//! The transactions report: its time window, its parameters and its pagination arithmetic.
//!
//! The report covers at most the last five days. A first request fixes a snapshot: the
//! window's start and end (end never later than `now - SNAPSHOT_SETTLE_MS`) and the number of
//! transactions per day inside it. Later pages of the same snapshot use those figures, so
//! pages do not shift and transactions written since do not appear.

use chrono::{DateTime, Duration, NaiveDate, SubsecRound, Utc};

/// How far back the report reaches.
pub const REPORT_WINDOW_DAYS: i64 = 5;
pub const REPORT_LIMIT_MIN: u32 = 1;
pub const REPORT_LIMIT_MAX: u32 = 1000;
pub const REPORT_LIMIT_DEFAULT: u32 = 100;
/// Highest page number accepted (a bound on the offset arithmetic, not a real need).
pub const REPORT_PAGE_MAX: u64 = 10_000_000;
/// A transaction takes its timestamp a moment before its write commits. A snapshot whose end
/// were "now" could miss a transaction stamped just before it that commits just after, which
/// would then appear on a later page; so a new snapshot ends this long before now. It must
/// exceed the longest time between stamping and committing one attempt of a transfer (one
/// `transact` call, whose timeout is far shorter).
pub const SNAPSHOT_SETTLE_MS: i64 = 2_000;
/// How long a snapshot token may be used after its first page.
pub const SNAPSHOT_TTL_SECONDS: i64 = 3_600;

/// A bad query parameter, named as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param} {reason}")]
pub struct ParamError {
    pub param: &'static str,
    pub reason: String,
}

impl ParamError {
    pub fn new(param: &'static str, reason: impl Into<String>) -> Self {
        ParamError {
            param,
            reason: reason.into(),
        }
    }
}

pub fn parse_page(text: Option<&str>) -> Result<u64, ParamError> {
    let Some(text) = text else { return Ok(1) };
    match text.parse::<u64>() {
        Ok(page) if (1..=REPORT_PAGE_MAX).contains(&page) => Ok(page),
        _ => Err(ParamError::new(
            "page",
            format!("must be an integer from 1 to {REPORT_PAGE_MAX}"),
        )),
    }
}

pub fn parse_limit(text: Option<&str>) -> Result<u32, ParamError> {
    let Some(text) = text else {
        return Ok(REPORT_LIMIT_DEFAULT);
    };
    match text.parse::<u32>() {
        Ok(limit) if (REPORT_LIMIT_MIN..=REPORT_LIMIT_MAX).contains(&limit) => Ok(limit),
        _ => Err(ParamError::new(
            "limit",
            format!("must be an integer from {REPORT_LIMIT_MIN} to {REPORT_LIMIT_MAX}"),
        )),
    }
}

/// An RFC 3339 timestamp (any offset), e.g. `2024-05-01T12:00:00Z`.
pub fn parse_timestamp(
    param: &'static str,
    text: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ParamError> {
    let Some(text) = text else { return Ok(None) };
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            ParamError::new(
                param,
                "must be an RFC 3339 timestamp, e.g. 2024-05-01T12:00:00Z",
            )
        })
}

/// A report window, inclusive at both ends; empty when `start > end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn is_empty(&self) -> bool {
        self.start > self.end
    }

    /// The UTC days the window touches, oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        if self.is_empty() {
            return Vec::new();
        }
        let last = self.end.date_naive();
        self.start
            .date_naive()
            .iter_days()
            .take_while(|d| *d <= last)
            .collect()
    }
}

/// The window of a new snapshot taken at `now`: `start` defaults to five days ago and must
/// not be earlier; `end` defaults to, and is capped at, `now - SNAPSHOT_SETTLE_MS`. Both are
/// cut to whole milliseconds, the precision of transaction timestamps.
pub fn resolve_window(
    now: DateTime<Utc>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<Window, ParamError> {
    let oldest = now - Duration::days(REPORT_WINDOW_DAYS);
    let bound = now - Duration::milliseconds(SNAPSHOT_SETTLE_MS);
    let start = start.unwrap_or(oldest);
    if start < oldest {
        return Err(ParamError::new(
            "start_timestamp",
            format!(
                "is more than {REPORT_WINDOW_DAYS} days ago; the report covers at most the last {REPORT_WINDOW_DAYS} days"
            ),
        ));
    }
    if start > now {
        return Err(ParamError::new("start_timestamp", "is in the future"));
    }
    if let Some(end) = end {
        if end < oldest {
            return Err(ParamError::new(
                "end_timestamp",
                format!("is more than {REPORT_WINDOW_DAYS} days ago"),
            ));
        }
        if end < start {
            return Err(ParamError::new(
                "end_timestamp",
                "is before start_timestamp",
            ));
        }
    }
    let end = end.map_or(bound, |e| e.min(bound));
    Ok(Window {
        start: start.trunc_subsecs(3),
        end: end.trunc_subsecs(3),
    })
}

pub fn total_pages(count: u64, limit: u32) -> u64 {
    count.div_ceil(u64::from(limit.max(1)))
}

/// Index of the first transaction of `page` (1-based) in the snapshot's order.
pub fn page_offset(page: u64, limit: u32) -> u64 {
    page.saturating_sub(1).saturating_mul(u64::from(limit))
}

/// Where the transaction at `offset` is, given the snapshot's per-day counts: the index of
/// its day and how many of that day's transactions come before it. `None` past the end.
pub fn locate(offset: u64, day_counts: &[u64]) -> Option<(usize, u64)> {
    let mut before = 0u64;
    for (day, count) in day_counts.iter().enumerate() {
        if offset < before + count {
            return Some((day, offset - before));
        }
        before += count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid test time")
    }

    #[test]
    fn parameters_are_bounded_and_named() {
        assert_eq!(parse_page(None), Ok(1));
        assert_eq!(parse_limit(None), Ok(REPORT_LIMIT_DEFAULT));
        assert_eq!(parse_limit(Some("1000")), Ok(1000));
        assert_eq!(parse_page(Some("0")).map_err(|e| e.param), Err("page"));
        assert_eq!(parse_page(Some("x")).map_err(|e| e.param), Err("page"));
        assert_eq!(parse_limit(Some("0")).map_err(|e| e.param), Err("limit"));
        assert_eq!(parse_limit(Some("1001")).map_err(|e| e.param), Err("limit"));
        assert_eq!(parse_limit(Some("-1")).map_err(|e| e.param), Err("limit"));
        assert_eq!(
            parse_timestamp("start_timestamp", Some("yesterday")).map_err(|e| e.param),
            Err("start_timestamp")
        );
        assert_eq!(
            parse_timestamp("end_timestamp", Some("2024-05-01T12:00:00+02:00")),
            Ok(Some(at(2024, 5, 1, 10)))
        );
    }

    #[test]
    fn window_defaults_to_five_days_before_the_settle_bound() {
        let now = at(2024, 5, 10, 12);
        let w = resolve_window(now, None, None).expect("defaults are valid");
        assert_eq!(w.start, at(2024, 5, 5, 12));
        assert_eq!(w.end, now - Duration::milliseconds(SNAPSHOT_SETTLE_MS));
        assert_eq!(w.days().len(), 6);
        // A future end is capped, not refused.
        let w = resolve_window(now, None, Some(at(2030, 1, 1, 0))).expect("capped");
        assert_eq!(w.end, now - Duration::milliseconds(SNAPSHOT_SETTLE_MS));
    }

    #[test]
    fn window_beyond_five_days_names_the_parameter() {
        let now = at(2024, 5, 10, 12);
        let e = resolve_window(now, Some(at(2024, 5, 5, 11)), None).expect_err("too old");
        assert_eq!(e.param, "start_timestamp");
        let e = resolve_window(now, None, Some(at(2024, 5, 1, 0))).expect_err("too old");
        assert_eq!(e.param, "end_timestamp");
        let e = resolve_window(now, Some(at(2024, 5, 9, 0)), Some(at(2024, 5, 8, 0)))
            .expect_err("reversed");
        assert_eq!(e.param, "end_timestamp");
        let e = resolve_window(now, Some(at(2024, 5, 11, 0)), None).expect_err("future");
        assert_eq!(e.param, "start_timestamp");
    }

    #[test]
    fn pagination_arithmetic() {
        assert_eq!(total_pages(0, 10), 0);
        assert_eq!(total_pages(10, 10), 1);
        assert_eq!(total_pages(11, 10), 2);
        assert_eq!(page_offset(3, 10), 20);
        assert_eq!(locate(0, &[0, 0, 2]), Some((2, 0)));
        assert_eq!(locate(5, &[3, 0, 4]), Some((2, 2)));
        assert_eq!(locate(7, &[3, 0, 4]), None);
    }

    proptest! {
        #[test]
        fn locate_matches_counting_one_by_one(
            counts in proptest::collection::vec(0u64..50, 0..8),
            offset in 0u64..400,
        ) {
            let flat: Vec<(usize, u64)> = counts.iter().enumerate()
                .flat_map(|(d, c)| (0..*c).map(move |i| (d, i))).collect();
            let expected = usize::try_from(offset).ok().and_then(|o| flat.get(o).copied());
            prop_assert_eq!(locate(offset, &counts), expected);
        }

        #[test]
        fn pages_cover_every_item_once(count in 0u64..5000, limit in 1u32..1000) {
            let pages = total_pages(count, limit);
            let covered: u64 = (1..=pages)
                .map(|p| (count - page_offset(p, limit)).min(u64::from(limit)))
                .sum();
            prop_assert_eq!(covered, count);
            prop_assert!(page_offset(pages + 1, limit) >= count);
        }

        #[test]
        fn window_never_exceeds_five_days(start_back_h in 0i64..200, end_back_h in 0i64..200) {
            let now = at(2024, 5, 10, 12);
            let start = now - Duration::hours(start_back_h);
            let end = now - Duration::hours(end_back_h);
            if let Ok(w) = resolve_window(now, Some(start), Some(end)) {
                prop_assert!(w.end - w.start <= Duration::days(REPORT_WINDOW_DAYS));
                prop_assert!(w.end <= now - Duration::milliseconds(SNAPSHOT_SETTLE_MS));
            }
        }
    }
}
