#!/usr/bin/env python3
"""The baseline of the payroll benchmark (scripts/bench-payroll.sh): the parse + sum + group of
`payops payroll summarize`, in Python with lxml (libxml2, C), as the original design did it.

    bench_payroll_lxml.py FILE            prints {rows, total, by_source, by_branch} as JSON,
                                          amounts exact (Decimal), for a cross-check
    bench_payroll_lxml.py FILE --runs N   also times N in-process runs (no interpreter start,
                                          no import) and prints their median in ms on stderr
"""

import json
import statistics
import sys
import time
from decimal import Decimal

from lxml import etree


def amount(text):
    return Decimal(text.strip().lstrip("$").replace(",", ""))


def summarize(path):
    root = etree.parse(path).getroot()
    rows = 0
    total = Decimal(0)
    by_source = {}
    by_branch = {}
    for row in root.iterchildren("row"):
        rows += 1
        value = amount(row.findtext("Amount"))
        total += value
        for key, groups in (
            (row.findtext("Payor/DunkinId").strip(), by_source),
            (row.findtext("Employee/DunkinBranch").strip(), by_branch),
        ):
            group = groups.setdefault(key, [0, Decimal(0)])
            group[0] += 1
            group[1] += value
    return {
        "rows": rows,
        "total": str(total),
        "by_source": [
            {"source_id": k, "count": c, "total": str(t)} for k, (c, t) in sorted(by_source.items())
        ],
        "by_branch": [
            {"branch_id": k, "count": c, "total": str(t)} for k, (c, t) in sorted(by_branch.items())
        ],
    }


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--runs"):
        sys.exit(__doc__)
    path = argv[1]
    if len(argv) == 4:
        times = []
        for _ in range(int(argv[3])):
            started = time.perf_counter()
            summarize(path)
            times.append((time.perf_counter() - started) * 1000)
        print(f"{statistics.median(times):.1f}", file=sys.stderr)
    json.dump(summarize(path), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv)
