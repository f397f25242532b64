"""The work of `payops debts check FILE --json` in Python, for the benchmark's ratio: pandas
reads the default-format CSV (all columns as text), and every line is validated the same way
(CPF with the brutils library, name present, amount exact by pattern and positive with at most
two decimals, a real ISO date not after --today, no repeated client reference). Prints
{"lines", "accepted", "rejected_lines"} as JSON; with --runs N, times the work in-process N
times and prints the median in milliseconds on stderr.

    python scripts/bench_debts_pandas.py FILE --today 2026-11-22 [--runs N]
"""

import argparse
import json
import statistics
import sys
import time

import pandas as pd
from brutils import is_valid_cpf

AMOUNT = r"^\d+(?:\.\d+)?$"
MASK = r"^\d{3}\.\d{3}\.\d{3}-\d{2}$"


def check(path, today):
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    df = df.apply(lambda col: col.str.strip())
    lines = len(df)
    bad = pd.Series(False, index=df.index)

    bad |= df["client_reference"] == ""
    bad |= df["debtor_name"] == ""

    cpf = df["cpf"]
    masked = cpf.str.match(MASK)
    digits = cpf.where(~masked, cpf.str.replace(r"[.-]", "", regex=True))
    shaped = digits.str.fullmatch(r"\d{11}")
    cpf_ok = shaped & digits.map(is_valid_cpf)
    bad |= ~cpf_ok

    amount = df["amount"]
    shaped = amount.str.match(AMOUNT)
    frac = amount.str.extract(r"\.(\d+)$")[0].fillna("").str.rstrip("0")
    nonzero = amount.str.contains(r"[1-9]")
    bad |= ~(shaped & (frac.str.len() <= 2) & nonzero)

    dates = pd.to_datetime(df["missed_date"], format="%Y-%m-%d", errors="coerce")
    bad |= dates.isna() | (dates > pd.Timestamp(today))

    # A repeated reference is rejected where it repeats an accepted or earlier line.
    bad |= df["client_reference"].duplicated(keep="first") & (df["client_reference"] != "")

    rejected = int(bad.sum())
    return {"lines": lines, "accepted": lines - rejected, "rejected_lines": rejected}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--today", required=True)
    parser.add_argument("--runs", type=int, default=0)
    args = parser.parse_args()
    if args.runs:
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            check(args.file, args.today)
            times.append((time.perf_counter() - start) * 1000)
        print(f"{statistics.median(times):.1f}", file=sys.stderr)
        return
    print(json.dumps(check(args.file, args.today)))


if __name__ == "__main__":
    main()
