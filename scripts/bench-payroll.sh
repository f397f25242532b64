#!/usr/bin/env bash
# Benchmark of `payops payroll summarize FILE --json` (parse, validate, summarise) on a generated
# payroll file of the real sample's shape, against the same parse + sum + group in Python with
# lxml (scripts/bench_payroll_lxml.py). Builds release, generates the file, checks that both
# give the same rows and totals, times both commands end to end (hyperfine when installed, else
# a loop of runs), and prints both medians and the ratio; also the median of lxml timed inside
# Python (no interpreter start), for a ratio that cannot flatter Rust.
#
#   scripts/bench-payroll.sh            ROWS=50000 RUNS=20 by default
#   CARGO_TARGET_DIR=... PYTHON=... scripts/bench-payroll.sh
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${ROWS:-50000}
runs=${RUNS:-20}
target=${CARGO_TARGET_DIR:-target}
python=${PYTHON:-.venv/bin/python}

echo "== build (release)" >&2
cargo build --release -q -p payops-local --bin payops
payops="$target/release/payops"

if [ ! -x "$python" ]; then python3 -m venv .venv; python=.venv/bin/python; fi
"$python" -c 'import lxml' 2>/dev/null || "$python" -m pip install -q --disable-pip-version-check lxml

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file="$work/payroll-$rows.xml"
echo "== generate $rows rows" >&2
"$payops" payroll generate --rows "$rows" --out "$file"
echo "   $(du -h "$file" | cut -f1) ($(wc -c <"$file") bytes)" >&2

echo "== cross-check: rows, total and groups agree" >&2
"$payops" payroll summarize "$file" --json >"$work/rust.json"
"$python" scripts/bench_payroll_lxml.py "$file" >"$work/python.json"
"$python" - "$work/rust.json" "$work/python.json" <<'EOF'
import json, sys
rust, py = (json.load(open(p)) for p in sys.argv[1:3])
for key in ("rows", "total", "by_source", "by_branch"):
    assert rust[key] == py[key], f"{key} differs: {rust[key]!r:.200} vs {py[key]!r:.200}"
print(f"   {rust['rows']} rows, total {rust['total']}, {len(rust['by_source'])} sources, "
      f"{len(rust['by_branch'])} branches, {len(rust['errors'])} errors, "
      f"{len(rust['warnings'])} warnings: same in both", file=sys.stderr)
EOF

rust_cmd="$payops payroll summarize $file --json"
python_cmd="$python scripts/bench_payroll_lxml.py $file"

if command -v hyperfine >/dev/null; then
  echo "== time with hyperfine ($runs runs each, 3 warm-ups)" >&2
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/hyperfine.json" \
    -n payops "$rust_cmd" -n python-lxml "$python_cmd" >&2
  read -r rust_ms python_ms < <("$python" - "$work/hyperfine.json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(*(f"{r['median'] * 1000:.1f}" for r in results))
EOF
)
else
  echo "== time with a loop ($runs runs each; install hyperfine for more)" >&2
  median_ms() {
    local cmd=$1 times=()
    for _ in 1 2 3; do $cmd >/dev/null; done
    for ((i = 0; i < runs; i++)); do
      local start end
      start=$(date +%s%N)
      $cmd >/dev/null
      end=$(date +%s%N)
      times+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n |
      awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}'
  }
  rust_ms=$(median_ms "$rust_cmd")
  python_ms=$(median_ms "$python_cmd")
fi

echo "== lxml in-process ($runs runs, no interpreter start)" >&2
python_inproc_ms=$("$python" scripts/bench_payroll_lxml.py "$file" --runs "$runs" 2>&1 >/dev/null)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
echo
echo "payroll summarize, $rows rows ($(nproc) cores):"
echo "  payops payroll summarize --json  median ${rust_ms} ms (whole process; target < 50 ms)"
echo "  python + lxml (same work)        median ${python_ms} ms (whole process)"
echo "  python + lxml, in-process only   median ${python_inproc_ms} ms"
echo "  ratio (process / process)        $(ratio "$python_ms" "$rust_ms")x"
echo "  ratio (lxml in-process / payops) $(ratio "$python_inproc_ms" "$rust_ms")x"
