//! The batch matcher: one partition of a day's transactions against the same partition of the
//! day's statement lines.
//!
//! - A transaction that arrived several times counts once, with its latest event (by event
//!   time; ties go to the more final status, then to the larger amount).
//! - Statement lines repeated verbatim (same statement id, transaction, date and amounts)
//!   count once; lines for one transaction are summed (split postings).
//! - Rows come out in first-seen order: transactions as they first appear, then unknown
//!   statement transaction ids as they first appear, so the same inputs give the same output.

use std::collections::{HashMap, HashSet};

use foldhash::fast::FixedState;
use rust_decimal::Decimal;

use super::discrepancy::{calculate_discrepancy, classify, expected_posting};
use super::types::{ReconciledStatus, Side, StatementLine, Transaction};

/// One row of the batch index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRow<'a> {
    pub transaction_id: &'a str,
    pub side: Side,
    pub reconciled_status: ReconciledStatus,
    /// Σ amount_posted of the (distinct) statement lines; 0 without lines.
    pub amount_posted: Decimal,
    /// Σ fee_charged of the (distinct) statement lines; 0 without lines.
    pub fee_charged: Decimal,
    pub discrepancy: Decimal,
    /// Distinct statement lines of the transaction.
    pub statement_lines: u32,
    /// The transaction's latest event; `None` for `STATEMENT_ONLY`.
    pub transaction: Option<Transaction<'a>>,
}

/// What a partition's run found besides the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchStats {
    /// Transaction events replaced by a later event of the same transaction.
    pub superseded_events: u64,
    /// Statement lines dropped as verbatim repeats.
    pub duplicate_lines: u64,
}

#[derive(Debug, Default)]
struct Entry {
    /// Index of the latest event in the transactions slice.
    latest: Option<usize>,
    posted: Decimal,
    fees: Decimal,
    lines: u32,
}

/// Reconciles one partition. `tolerance` is the largest |discrepancy| still `MATCHED`.
pub fn reconcile<'a>(
    transactions: &[Transaction<'a>],
    lines: &[StatementLine<'a>],
    tolerance: Decimal,
) -> (Vec<BatchRow<'a>>, MatchStats) {
    let mut stats = MatchStats::default();
    let mut index: HashMap<&'a str, u32, FixedState> = HashMap::with_capacity_and_hasher(
        transactions.len() + lines.len() / 4,
        FixedState::default(),
    );
    let mut entries: Vec<Entry> = Vec::with_capacity(transactions.len());
    let mut ids: Vec<&'a str> = Vec::with_capacity(transactions.len());

    for (i, tx) in transactions.iter().enumerate() {
        let slot = *index.entry(tx.transaction_id).or_insert_with(|| {
            entries.push(Entry::default());
            ids.push(tx.transaction_id);
            (entries.len() - 1) as u32
        });
        let entry = &mut entries[slot as usize];
        match entry.latest {
            None => entry.latest = Some(i),
            Some(current) => {
                stats.superseded_events += 1;
                if event_key(tx) > event_key(&transactions[current]) {
                    entry.latest = Some(i);
                }
            }
        }
    }

    let mut seen: HashSet<LineKey<'_, 'a>, FixedState> =
        HashSet::with_capacity_and_hasher(lines.len(), FixedState::default());
    for line in lines {
        if !seen.insert(LineKey(line)) {
            stats.duplicate_lines += 1;
            continue;
        }
        let slot = *index.entry(line.transaction_id).or_insert_with(|| {
            entries.push(Entry::default());
            ids.push(line.transaction_id);
            (entries.len() - 1) as u32
        });
        let entry = &mut entries[slot as usize];
        entry.posted += line.amount_posted;
        entry.fees += line.fee_charged;
        entry.lines += 1;
    }

    let rows = entries
        .iter()
        .zip(ids)
        .map(|(entry, id)| batch_row(id, entry, transactions, tolerance))
        .collect();
    (rows, stats)
}

/// A statement line compared in full but hashed by its ids and date only: hashing a
/// `Decimal` normalises it first, which would cost more than the rest of the matching.
struct LineKey<'l, 'a>(&'l StatementLine<'a>);

impl PartialEq for LineKey<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for LineKey<'_, '_> {}

impl std::hash::Hash for LineKey<'_, '_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.statement_id.hash(state);
        self.0.transaction_id.hash(state);
        self.0.posting_date.hash(state);
    }
}

/// Order of two events of one transaction: event time, then the more final status, then the
/// larger amount (so that even conflicting duplicates resolve the same way every run).
fn event_key(tx: &Transaction<'_>) -> (i64, u8, Decimal) {
    (tx.timestamp_us, tx.status.tie_rank(), tx.amount)
}

fn batch_row<'a>(
    id: &'a str,
    entry: &Entry,
    transactions: &[Transaction<'a>],
    tolerance: Decimal,
) -> BatchRow<'a> {
    let transaction = entry.latest.map(|i| transactions[i]);
    let side = match (&transaction, entry.lines) {
        (None, _) => Side::StatementOnly,
        (Some(_), 0) => Side::TransactionOnly,
        (Some(_), _) => Side::Both,
    };
    let expected = transaction
        .map(|tx| expected_posting(tx.status, tx.amount))
        .unwrap_or(Decimal::ZERO);
    let discrepancy = calculate_discrepancy(expected, entry.posted, entry.fees);
    BatchRow {
        transaction_id: id,
        side,
        reconciled_status: classify(side, discrepancy, tolerance),
        amount_posted: entry.posted,
        fee_charged: entry.fees,
        discrepancy,
        statement_lines: entry.lines,
        transaction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::types::TxStatus;

    fn d(s: &str) -> Decimal {
        s.parse().expect("test literal")
    }

    fn tx(id: &'static str, amount: &str, status: TxStatus, ts: i64) -> Transaction<'static> {
        Transaction {
            transaction_id: id,
            merchant_id: "m1",
            user_id: "u1",
            amount: d(amount),
            currency: "USD",
            status,
            timestamp_us: ts,
        }
    }

    fn line(
        sid: &'static str,
        tid: &'static str,
        posted: &str,
        fee: &str,
    ) -> StatementLine<'static> {
        StatementLine {
            statement_id: sid,
            transaction_id: tid,
            posting_date: 20_000,
            amount_posted: d(posted),
            fee_charged: d(fee),
        }
    }

    fn run(
        txs: &[Transaction<'static>],
        lines: &[StatementLine<'static>],
        tolerance: &str,
    ) -> Vec<(String, &'static str, &'static str, Decimal, Decimal)> {
        reconcile(txs, lines, d(tolerance))
            .0
            .into_iter()
            .map(|r| {
                (
                    r.transaction_id.to_owned(),
                    r.side.as_str(),
                    r.reconciled_status.as_str(),
                    r.amount_posted,
                    r.discrepancy,
                )
            })
            .collect()
    }

    use TxStatus::*;

    #[test]
    fn exact_match_with_fee() {
        let rows = run(
            &[tx("t1", "100.00", Approved, 1)],
            &[line("s1", "t1", "97.10", "2.90")],
            "0",
        );
        assert_eq!(rows, [("t1".into(), "BOTH", "MATCHED", d("97.10"), d("0"))]);
    }

    #[test]
    fn within_tolerance_is_matched_beyond_is_partial() {
        let txs = [tx("t1", "100.00", Approved, 1)];
        let lines = [line("s1", "t1", "99.99", "0")];
        assert_eq!(run(&txs, &lines, "0.01")[0].2, "MATCHED");
        assert_eq!(run(&txs, &lines, "0.01")[0].4, d("0.01"));
        assert_eq!(run(&txs, &lines, "0")[0].2, "PARTIAL");
        assert_eq!(
            run(&txs, &[line("s1", "t1", "100.02", "0")], "0.01")[0].2,
            "PARTIAL"
        );
    }

    #[test]
    fn missing_statement_line_is_unmatched_with_the_whole_amount() {
        let rows = run(&[tx("t1", "42.50", Approved, 1)], &[], "0");
        assert_eq!(
            rows,
            [(
                "t1".into(),
                "TRANSACTION_ONLY",
                "UNMATCHED",
                d("0"),
                d("42.50")
            )]
        );
    }

    #[test]
    fn unknown_statement_transaction_is_reported_statement_only() {
        let rows = run(&[], &[line("s1", "ghost", "10", "0.30")], "0");
        assert_eq!(
            rows,
            [(
                "ghost".into(),
                "STATEMENT_ONLY",
                "UNMATCHED",
                d("10"),
                d("-10.30")
            )]
        );
    }

    #[test]
    fn split_postings_are_summed() {
        let rows = run(
            &[tx("t1", "100.00", Approved, 1)],
            &[
                line("s1", "t1", "60.00", "1.00"),
                line("s2", "t1", "38.00", "1.00"),
            ],
            "0",
        );
        assert_eq!(rows, [("t1".into(), "BOTH", "MATCHED", d("98.00"), d("0"))]);
        let short = run(
            &[tx("t1", "100.00", Approved, 1)],
            &[line("s1", "t1", "60.00", "1.00")],
            "0",
        );
        assert_eq!(
            short,
            [("t1".into(), "BOTH", "PARTIAL", d("60.00"), d("39.00"))]
        );
    }

    #[test]
    fn verbatim_duplicate_lines_count_once_but_distinct_lines_count() {
        let dup = line("s1", "t1", "100.00", "0");
        let (rows, stats) = reconcile(
            &[tx("t1", "100.00", Approved, 1)],
            &[dup, dup, dup],
            Decimal::ZERO,
        );
        assert_eq!(rows[0].reconciled_status, ReconciledStatus::Matched);
        assert_eq!(rows[0].statement_lines, 1);
        assert_eq!(stats.duplicate_lines, 2);
        // Same statement id, different amount: not a repeat, both count, and it shows.
        let rows = run(
            &[tx("t1", "100.00", Approved, 1)],
            &[
                line("s1", "t1", "100.00", "0"),
                line("s1", "t1", "100.00", "1"),
            ],
            "0",
        );
        assert_eq!(rows[0].2, "PARTIAL");
        assert_eq!(rows[0].4, d("-101.00"));
    }

    #[test]
    fn refunds_expect_a_negative_posting() {
        let refund = [tx("t1", "25.00", Refunded, 1)];
        assert_eq!(
            run(&refund, &[line("s1", "t1", "-25.00", "0")], "0")[0].2,
            "MATCHED"
        );
        let wrong_sign = run(&refund, &[line("s1", "t1", "25.00", "0")], "0");
        assert_eq!(wrong_sign[0].2, "PARTIAL");
        assert_eq!(wrong_sign[0].4, d("-50.00"));
        let missing = run(&refund, &[], "0");
        assert_eq!(missing[0].1, "TRANSACTION_ONLY");
        assert_eq!(missing[0].4, d("-25.00"));
    }

    #[test]
    fn declined_expects_nothing() {
        let declined = [tx("t1", "80.00", Declined, 1)];
        assert_eq!(
            run(&declined, &[], "0"),
            [("t1".into(), "TRANSACTION_ONLY", "MATCHED", d("0"), d("0"))]
        );
        let posted = run(&declined, &[line("s1", "t1", "80.00", "0")], "0");
        assert_eq!(posted[0].2, "PARTIAL");
        assert_eq!(posted[0].4, d("-80.00"));
    }

    #[test]
    fn the_latest_event_decides_whatever_the_arrival_order() {
        // Approved then refunded, delivered refund first.
        let txs = [
            tx("t1", "30.00", Refunded, 200),
            tx("t1", "30.00", Approved, 100),
            tx("t1", "30.00", Pending, 50),
        ];
        let (rows, stats) = reconcile(&txs, &[line("s1", "t1", "-30.00", "0")], Decimal::ZERO);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].transaction.map(|t| t.status), Some(Refunded));
        assert_eq!(rows[0].reconciled_status, ReconciledStatus::Matched);
        assert_eq!(stats.superseded_events, 2);
    }

    #[test]
    fn rows_come_in_first_seen_order() {
        let rows = run(
            &[tx("b", "1", Approved, 1), tx("a", "1", Approved, 1)],
            &[line("s", "z", "1", "0"), line("s2", "a", "1", "0")],
            "0",
        );
        let ids: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(ids, ["b", "a", "z"]);
    }
}
