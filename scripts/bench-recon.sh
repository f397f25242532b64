#!/usr/bin/env bash
# Benchmark of `payops recon run` (batch reconciliation + final merge + KPIs into Parquet) on a
# generated day of TRANSACTIONS transactions and their statements, against DuckDB (PyPI,
# installed into .venv from scripts/requirements-bench.txt) doing the same join and
# classification from the same CSV files into Parquet. Release build; each side runs RUNS times
# (median reported, whole process); then the two batch outputs are compared row for row.
#
#   scripts/bench-recon.sh                 TRANSACTIONS=5000000 RUNS=3 by default
#   CARGO_TARGET_DIR=... scripts/bench-recon.sh
set -euo pipefail
cd "$(dirname "$0")/.."

n=${TRANSACTIONS:-5000000}
runs=${RUNS:-3}
date=${DATE:-2026-11-21}
target=${CARGO_TARGET_DIR:-target}
python=.venv/bin/python

echo "== build (release)" >&2
cargo build --release -q -p payops-local --bin payops
payops="$target/release/payops"

if [ ! -x "$python" ]; then python3 -m venv .venv; fi
"$python" -m pip install -q --disable-pip-version-check -r scripts/requirements-bench.txt

work=${WORK:-$(mktemp -d)}
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
export PAYOPS_RECON_MASK_KEY=${PAYOPS_RECON_MASK_KEY:-bench-only-mask-key-0123456789}

if [ ! -s "$work/in/transactions.csv" ]; then
  echo "== generate $n transactions" >&2
  "$payops" recon generate --date "$date" --transactions "$n" --out "$work/in"
fi
du -h "$work/in"/*.csv >&2

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ms_now() { echo $(($(date +%s%N) / 1000000)); }

time_runs() { # name, command...
  local name=$1; shift
  local times=()
  for ((i = 1; i <= runs; i++)); do
    sync; local start; start=$(ms_now)
    "$@" >/dev/null
    times+=($(($(ms_now) - start)))
    echo "   $name run $i: ${times[-1]} ms" >&2
  done
  printf '%s\n' "${times[@]}" | median
}

echo "== payops recon run, full (batch + final with fraud, policies, merchants + KPIs)" >&2
full_ms=$(time_runs payops-full "$payops" recon run --date "$date" \
  --transactions "$work/in/transactions.csv" --statements "$work/in/statements.csv" \
  --fraud "$work/in/fraud.csv" --policies "$work/in/policies.csv" \
  --merchants "$work/in/merchants.csv" --out "$work/ours")

echo "== payops recon run, transactions + statements only (still writes final + KPIs)" >&2
same_ms=$(time_runs payops-same "$payops" recon run --date "$date" \
  --transactions "$work/in/transactions.csv" --statements "$work/in/statements.csv" \
  --out "$work/ours-same")

echo "== payops recon run --batch-only, transactions + statements (the same output as DuckDB's)" >&2
batch_ms=$(time_runs payops-batch "$payops" recon run --date "$date" --batch-only \
  --transactions "$work/in/transactions.csv" --statements "$work/in/statements.csv" \
  --out "$work/ours-batch")

echo "== duckdb $("$python" -c 'import duckdb; print(duckdb.__version__)'): join + classification into Parquet" >&2
duck_ms=$(time_runs duckdb "$python" scripts/bench_recon_duckdb.py run --date "$date" \
  --transactions "$work/in/transactions.csv" --statements "$work/in/statements.csv" \
  --out "$work/duck")

echo "== row-for-row comparison of the batch datasets" >&2
"$python" scripts/bench_recon_duckdb.py compare \
  "$work/ours/batch/dt=$date/*.parquet" "$work/duck/batch/dt=$date/*.parquet"
"$python" scripts/bench_recon_duckdb.py compare \
  "$work/ours-batch/batch/dt=$date/*.parquet" "$work/duck/batch/dt=$date/*.parquet" >/dev/null

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "recon run, $n transactions ($(nproc) cores), median of $runs, whole process:"
echo "  payops recon run (batch+final+kpis, all inputs)   ${full_ms} ms"
echo "  payops recon run (batch+final+kpis, tx+stmt only)  ${same_ms} ms"
echo "  payops recon run --batch-only (tx+stmt)            ${batch_ms} ms"
echo "  duckdb (batch only, tx+stmt)                       ${duck_ms} ms"
echo "  duckdb / payops --batch-only (same work)           $(ratio "$duck_ms" "$batch_ms")x"
echo "  duckdb / payops full (more work than duckdb)       $(ratio "$duck_ms" "$same_ms")x"
echo "  load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (other builds share the machine)"
