#!/usr/bin/env python3
"""The batch reconciliation of `payops recon run`, in DuckDB: the same inputs, the same rules
(latest event per transaction by event time, verbatim duplicate statement lines once, split
postings summed, refunds negative, declined expected to post nothing, tolerance), the same
columns and types, written as Parquet. Used by scripts/bench-recon.sh for the timing and the
row-for-row comparison.

    bench_recon_duckdb.py run --date D --transactions F --statements F --out DIR [--tolerance T]
    bench_recon_duckdb.py compare OURS_GLOB THEIRS_GLOB
"""
import argparse
import sys
import time

import duckdb

TX_COLUMNS = ("{'transaction_id': 'VARCHAR', 'merchant_id': 'VARCHAR', 'user_id': 'VARCHAR', "
              "'amount': 'DECIMAL(18,4)', 'currency': 'VARCHAR', 'status': 'VARCHAR', "
              "'timestamp': 'TIMESTAMPTZ'}")
ST_COLUMNS = ("{'statement_id': 'VARCHAR', 'transaction_id': 'VARCHAR', 'posting_date': 'DATE', "
              "'amount_posted': 'DECIMAL(18,4)', 'fee_charged': 'DECIMAL(18,4)'}")


def batch_sql(date, transactions, statements, out, tolerance):
    return f"""
COPY (
  WITH tx AS (
    SELECT transaction_id, status, amount
    FROM read_csv('{transactions}', header = true, columns = {TX_COLUMNS})
    QUALIFY row_number() OVER (
      PARTITION BY transaction_id
      ORDER BY "timestamp" DESC,
               CASE status WHEN 'REFUNDED' THEN 3 WHEN 'DECLINED' THEN 2
                           WHEN 'APPROVED' THEN 1 ELSE 0 END DESC,
               amount DESC) = 1
  ),
  st AS (
    SELECT DISTINCT statement_id, transaction_id, posting_date, amount_posted,
           coalesce(fee_charged, 0) AS fee_charged
    FROM read_csv('{statements}', header = true, columns = {ST_COLUMNS})
  ),
  agg AS (
    SELECT transaction_id, sum(amount_posted) AS posted, sum(fee_charged) AS fees
    FROM st GROUP BY transaction_id
  ),
  j AS (
    SELECT coalesce(tx.transaction_id, agg.transaction_id) AS transaction_id,
           CASE WHEN tx.transaction_id IS NULL THEN 'STATEMENT_ONLY'
                WHEN agg.transaction_id IS NULL THEN 'TRANSACTION_ONLY'
                ELSE 'BOTH' END AS side,
           coalesce(agg.posted, 0) AS amount_posted,
           CASE WHEN tx.transaction_id IS NULL THEN 0
                WHEN tx.status = 'REFUNDED' THEN -abs(tx.amount)
                WHEN tx.status = 'DECLINED' THEN 0
                ELSE tx.amount END
             - (coalesce(agg.posted, 0) + coalesce(agg.fees, 0)) AS discrepancy
    FROM tx FULL OUTER JOIN agg ON tx.transaction_id = agg.transaction_id
  )
  SELECT transaction_id, side,
         CASE WHEN side = 'BOTH' AND abs(discrepancy) <= {tolerance} THEN 'MATCHED'
              WHEN side = 'BOTH' THEN 'PARTIAL'
              WHEN side = 'TRANSACTION_ONLY' AND discrepancy = 0 THEN 'MATCHED'
              ELSE 'UNMATCHED' END AS reconciled_status,
         amount_posted::DECIMAL(18,4) AS amount_posted,
         discrepancy::DECIMAL(18,4) AS discrepancy,
         DATE '{date}' AS batch_run_date
  FROM j
) TO '{out}/batch/dt={date}/data.parquet' (FORMAT parquet, COMPRESSION snappy);
"""


def run(args):
    import os
    os.makedirs(f"{args.out}/batch/dt={args.date}", exist_ok=True)
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute('SET enable_progress_bar = false')
    con.execute(batch_sql(args.date, args.transactions, args.statements, args.out, args.tolerance))
    print(f"{(time.perf_counter() - started) * 1000:.1f}", file=sys.stderr)


def compare(args):
    """Row-for-row: the multiset difference both ways is empty and the counts agree."""
    con = duckdb.connect()
    con.execute('SET enable_progress_bar = false')
    ours = f"read_parquet('{args.ours}')"
    theirs = f"read_parquet('{args.theirs}')"
    cols = "transaction_id, side, reconciled_status, amount_posted, discrepancy, batch_run_date"
    n_ours = con.execute(f"SELECT count(*) FROM {ours}").fetchone()[0]
    n_theirs = con.execute(f"SELECT count(*) FROM {theirs}").fetchone()[0]
    only_ours = con.execute(
        f"SELECT count(*) FROM (SELECT {cols} FROM {ours} EXCEPT ALL SELECT {cols} FROM {theirs})"
    ).fetchone()[0]
    only_theirs = con.execute(
        f"SELECT count(*) FROM (SELECT {cols} FROM {theirs} EXCEPT ALL SELECT {cols} FROM {ours})"
    ).fetchone()[0]
    types = con.execute(f"DESCRIBE SELECT {cols} FROM {ours}").fetchall()
    by_status = con.execute(
        f"SELECT side, reconciled_status, count(*) FROM {ours} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    print(f"rows: ours {n_ours}, duckdb {n_theirs}; only in ours {only_ours}, "
          f"only in duckdb {only_theirs}")
    print("types: " + ", ".join(f"{t[0]} {t[1]}" for t in types))
    for side, status, n in by_status:
        print(f"  {side:<16} {status:<9} {n}")
    if n_ours != n_theirs or only_ours or only_theirs:
        print("RESULTS DIFFER", file=sys.stderr)
        sys.exit(1)
    print("identical row for row")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--date", required=True)
    r.add_argument("--transactions", required=True)
    r.add_argument("--statements", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--tolerance", default="0.00")
    c = sub.add_parser("compare")
    c.add_argument("ours")
    c.add_argument("theirs")
    args = parser.parse_args()
    run(args) if args.cmd == "run" else compare(args)


if __name__ == "__main__":
    main()
