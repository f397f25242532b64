//! Derive status: the latest status of a transaction by event time (never by arrival order),
//! blended with what the bank's statement says.

use super::types::{ReconciledStatus, Side, TxStatus};

/// A status event's ordering key: event time first, then the more final status (see
/// [`TxStatus::tie_rank`]). The greater key wins, whatever order the events arrive in.
pub fn status_order_key(status: TxStatus, timestamp_us: i64) -> (i64, u8) {
    (timestamp_us, status.tie_rank())
}

/// Whether an event `(status, timestamp_us)` replaces the `current` latest one.
pub fn supersedes(candidate: (TxStatus, i64), current: Option<(TxStatus, i64)>) -> bool {
    match current {
        None => true,
        Some((status, ts)) => {
            status_order_key(candidate.0, candidate.1) > status_order_key(status, ts)
        }
    }
}

/// The latest status of a sequence of events, in any arrival order.
pub fn latest_status(events: impl IntoIterator<Item = (TxStatus, i64)>) -> Option<TxStatus> {
    events
        .into_iter()
        .fold(None, |current, event| {
            if supersedes(event, current) {
                Some(event)
            } else {
                current
            }
        })
        .map(|(status, _)| status)
}

/// The status the final index reports: the stream's latest status, corrected by the bank
/// where the bank is the better witness. A transaction still `PENDING` in the stream that the
/// bank posted in full has settled, so it is `APPROVED`; everything else keeps the stream's
/// status (a declined transaction that posted money stays `DECLINED` and shows as `PARTIAL`).
pub fn derive_status(stream: TxStatus, side: Side, reconciled: ReconciledStatus) -> TxStatus {
    match (stream, side, reconciled) {
        (TxStatus::Pending, Side::Both, ReconciledStatus::Matched) => TxStatus::Approved,
        _ => stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_event_time_wins_in_any_arrival_order() {
        let events = [
            (TxStatus::Pending, 100),
            (TxStatus::Approved, 200),
            (TxStatus::Refunded, 300),
        ];
        let orders: [[usize; 3]; 6] = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let arrived = order.map(|i| events[i]);
            assert_eq!(
                latest_status(arrived),
                Some(TxStatus::Refunded),
                "{order:?}"
            );
        }
    }

    #[test]
    fn a_late_pending_does_not_undo_an_approval() {
        assert_eq!(
            latest_status([(TxStatus::Approved, 200), (TxStatus::Pending, 100)]),
            Some(TxStatus::Approved)
        );
        assert!(!supersedes(
            (TxStatus::Pending, 100),
            Some((TxStatus::Approved, 200))
        ));
        assert!(supersedes(
            (TxStatus::Pending, 300),
            Some((TxStatus::Approved, 200))
        ));
    }

    #[test]
    fn ties_on_event_time_go_to_the_more_final_status() {
        assert_eq!(
            latest_status([(TxStatus::Declined, 5), (TxStatus::Approved, 5)]),
            Some(TxStatus::Declined)
        );
        assert_eq!(
            latest_status([(TxStatus::Approved, 5), (TxStatus::Pending, 5)]),
            Some(TxStatus::Approved)
        );
        assert_eq!(latest_status([]), None);
    }

    #[test]
    fn the_bank_settles_a_pending_transaction() {
        use ReconciledStatus::*;
        assert_eq!(
            derive_status(TxStatus::Pending, Side::Both, Matched),
            TxStatus::Approved
        );
        assert_eq!(
            derive_status(TxStatus::Pending, Side::Both, Partial),
            TxStatus::Pending
        );
        assert_eq!(
            derive_status(TxStatus::Pending, Side::TransactionOnly, Unmatched),
            TxStatus::Pending
        );
        assert_eq!(
            derive_status(TxStatus::Declined, Side::Both, Partial),
            TxStatus::Declined
        );
        assert_eq!(
            derive_status(TxStatus::Refunded, Side::Both, Matched),
            TxStatus::Refunded
        );
    }
}
