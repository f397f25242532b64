#!/usr/bin/env bash
# Benchmark of `payops debts check FILE --json` (parse + validate, one thread) on a generated
# 1,000,000-line default-format file, against the same work in Python with pandas and the
# brutils CPF library (scripts/bench_debts_pandas.py). Builds release, generates the file
# (one line in 1000 with a client's mistake), checks that both agree on lines and accepted,
# times each RUNS times and prints the medians, lines per second and the ratio; also the
# median of pandas timed inside Python (no interpreter start).
#
# With E2E=1 it also times the end-to-end run (drop, split, transform, register, complete)
# on the embedded store through `payops bench debts`, with peak RSS from /usr/bin/time -v.
#
#   scripts/bench-debts.sh          LINES=1000000 RUNS=3 by default; PAYOPS=path skips the build
set -euo pipefail
cd "$(dirname "$0")/.."

lines=${LINES:-1000000}
runs=${RUNS:-3}
target=${CARGO_TARGET_DIR:-target}
python=${PYTHON:-.venv/bin/python}
today=2026-11-22

if [ -n "${PAYOPS:-}" ]; then
  payops=$PAYOPS   # a release binary built already
else
  echo "== build (release)" >&2
  cargo build --release -q -p payops-local --bin payops
  payops="$target/release/payops"
fi

if [ ! -x "$python" ]; then python3 -m venv .venv; python=.venv/bin/python; fi
"$python" -c 'import pandas, brutils' 2>/dev/null ||
  "$python" -m pip install -q --disable-pip-version-check -r scripts/requirements-bench.txt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file="$work/debts-$lines.csv"
echo "== generate $lines lines" >&2
"$payops" debts generate --lines "$lines" --out "$file" --defect-every 1000 --today "$today"
echo "   $(du -h "$file" | cut -f1) ($(wc -c <"$file") bytes)" >&2

echo "== cross-check: lines and accepted agree" >&2
"$payops" debts check "$file" --json --today "$today" >"$work/rust.json"
"$python" scripts/bench_debts_pandas.py "$file" --today "$today" >"$work/python.json"
"$python" - "$work/rust.json" "$work/python.json" <<'PY'
import json, sys
rust, py = (json.load(open(p)) for p in sys.argv[1:3])
assert rust["lines"] == py["lines"], (rust["lines"], py["lines"])
assert rust["accepted"] == py["accepted"], (rust["accepted"], py["accepted"])
rejected_lines = len({r["line"] for r in rust["rejected"]})
assert rejected_lines == py["rejected_lines"], (rejected_lines, py["rejected_lines"])
print(f"   {rust['lines']} lines, {rust['accepted']} accepted, {rejected_lines} rejected: same in both",
      file=sys.stderr)
PY

median_ms() {
  local times=()
  "$@" >/dev/null
  for ((i = 0; i < runs; i++)); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n |
    awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}'
}

echo "== time ($runs runs each after a warm-up)" >&2
rust_ms=$(median_ms "$payops" debts check "$file" --json --today "$today")
python_ms=$(median_ms "$python" scripts/bench_debts_pandas.py "$file" --today "$today")
python_inproc_ms=$("$python" scripts/bench_debts_pandas.py "$file" --today "$today" --runs "$runs" 2>&1 >/dev/null)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
rate() { awk -v n="$lines" -v ms="$1" 'BEGIN { printf "%.0f", n / (ms / 1000) }'; }
echo
echo "debts check, $lines lines ($(nproc) cores; payops uses one):"
echo "  payops debts check --json         median ${rust_ms} ms = $(rate "$rust_ms") lines/s (target >= 1,000,000)"
echo "  python + pandas + brutils          median ${python_ms} ms (whole process)"
echo "  python + pandas, in-process only   median ${python_inproc_ms} ms"
echo "  ratio (process / process)          $(ratio "$python_ms" "$rust_ms")x"
echo "  ratio (pandas in-process / payops) $(ratio "$python_inproc_ms" "$rust_ms")x"

if [ "${E2E:-0}" = 1 ]; then
  echo
  echo "== end to end on the embedded store ($runs runs; peak RSS from /usr/bin/time -v)" >&2
  for ((i = 0; i < runs; i++)); do
    /usr/bin/time -v "$payops" bench debts --lines "$lines" --json --data "$work/e2e-$i" \
      >"$work/e2e-$i.json" 2>"$work/e2e-$i.time"
    seconds=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$work/e2e-$i.json")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/e2e-$i.time")
    echo "  run $((i + 1)): ${seconds} s, peak RSS ${rss} KiB"
    echo "$seconds $rss" >>"$work/e2e.txt"
  done
  sort -n "$work/e2e.txt" | awk '{s[NR]=$1; r[NR]=$2} END {m=(NR+1)/2; printf "  median %s s, peak RSS %s KiB (target < 30 s)\n", s[int(m)], r[int(m)]}'
fi
