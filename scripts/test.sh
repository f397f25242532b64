#!/usr/bin/env bash
# Every test of payops, from a fresh machine: installs what the tests need (Debian packages,
# a Python virtual environment with moto and cfn-lint, npm packages), then lints the template
# and the state machines and runs `cargo test --workspace`. The tests that need the AWS
# emulator start moto themselves on 127.0.0.1 from .venv and stop it when they finish.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" $((SECONDS - started)); }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "Debian packages"
need=()
command -v mold >/dev/null || need+=(mold)
command -v node >/dev/null || need+=(nodejs npm)
# Headless browser for the ops page tests (tests/browser/, driven by playwright-core).
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "Python tools (.venv: moto, cfn-lint)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
export PAYOPS_MOTO_SERVER="$root/.venv/bin/moto_server"

step "npm tools (asl-validator)"
if [ ! -x node_modules/.bin/asl-validator ] || [ ! -d node_modules/playwright-core ]; then npm ci --no-audit --no-fund --silent; fi

step "Lint: template.yaml (cfn-lint) and statemachines/ (asl-validator)"
.venv/bin/cfn-lint template.yaml
shopt -s nullglob
machines=(statemachines/*.asl.json)
# --json-path, not --json-definition: the latter takes the JSON text itself, and given a path
# it only prints "Unable to parse" and exits 0, validating nothing.
for m in "${machines[@]}"; do node_modules/.bin/asl-validator --json-path "$m" >/dev/null || { echo "invalid state machine: $m"; node_modules/.bin/asl-validator --json-path "$m"; exit 1; }; done
echo "${#machines[@]} state machine(s) valid"

# mold links the many test binaries several times faster than ld.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-fuse-ld=mold"
export CARGO_TERM_COLOR=never

step "cargo fmt --check"
cargo fmt --all -- --check

# `cargo test` also builds the `payops` binary (payops-local has integration tests), which the
# end-to-end tests start; a separate `cargo build` would compile the SDK twice, with other
# features unified.
step "cargo test --workspace"
cargo test --workspace --locked --no-fail-fast

# After `cargo test`, which built target/debug/payops: the ops web page in headless Chromium
# (Debian's, never a downloaded browser), each test starting its own `payops up` on 127.0.0.1.
step "browser tests (node --test tests/browser/)"
node --test tests/browser/

step "cargo clippy -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "done in $((SECONDS - started)) s"
