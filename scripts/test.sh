#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, unit and
# integration tests (real Kafka clients against real broker processes), and a
# bounded fuzzing run. Needs kcat and cargo-fuzz on PATH and the e2e client
# toolchains prepared by scripts/e2e-deps.sh (.ci/run does all of that on a
# fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${STROM_FUZZ_SECONDS:-60}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test (unit + integration)"
test_log="$(mktemp)"
test_status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log" || test_status=$?
passed=$(grep -E "^test result:" "$test_log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk "{s+=\$1} END {print s+0}")
failed=$(grep -E "^test result:" "$test_log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk "{s+=\$1} END {print s+0}")
rm -f "$test_log"

echo "== fuzzing, ${FUZZ_SECONDS}s per target"
fuzz_status=0
bash scripts/fuzz.sh "$FUZZ_SECONDS" || fuzz_status=$?

echo "== summary"
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
[ "$test_status" -eq 0 ] && [ "${failed:-0}" -eq 0 ] || { echo "cargo test failed" >&2; exit 1; }
[ "$fuzz_status" -eq 0 ] || { echo "fuzzing failed" >&2; exit 1; }
