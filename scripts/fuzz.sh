#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (seconds, default 60) and
# fails if any finds a crash. Uses the stable toolchain with RUSTC_BOOTSTRAP
# for the sanitizer flags, so no nightly download is needed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || {
    echo "fuzz: cargo-fuzz is not installed; run .ci/run or: cargo install --locked cargo-fuzz" >&2
    exit 1
}
mkdir -p corpus
for target in $(cargo fuzz list); do
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "corpus/$target"
    log="$(mktemp)"
    status=0
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Done )" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz: $target failed (exit $status); crash inputs are in fuzz/artifacts/$target" >&2
        exit 1
    fi
    rm -f "$log"
done
echo "fuzz: all targets ran without a failure"
