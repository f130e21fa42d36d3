#!/usr/bin/env bash
# Strom vs Apache Kafka, side by side (issue 9): one command.
#
#   bash bench/run.sh [strom-bench options]
#
# Builds the release strom-broker and the harness (bench/harness), resolves
# Apache Kafka's broker and command-line tools from Maven Central into
# $HOME/.cache/strom/kafka-<version>/ (once), then runs the seven scenarios
# against both brokers in turn and writes report.md into a fresh run
# directory under target/bench-runs/ (printed at the end). About 20 minutes
# on 2 cores. Options go to strom-bench, e.g. `--scenarios 1,4 --rounds 5`,
# `--scale 0.05` for a quick check of the harness, `--profile` to add a perf
# profile of Strom in scenario 1 (`strom-bench --help` lists them).
#
# `--internal-tls` (issue 18) also measures what encrypting the brokers' own
# traffic costs: scenario 2 then runs on four 3-node clusters in the same
# rounds, Strom and Kafka each plain and with TLS between brokers (Strom:
# the internal plane on mutual TLS; Kafka: inter-broker and KRaft controller
# listeners on SSL with client certificates required; certificates from
# `strom-broker certs`), and the report adds the ratios Strom mTLS/plain
# (target >= 0.9 of the throughput), Kafka TLS/plain and Strom mTLS/Kafka
# TLS. E.g. `bash bench/run.sh --scenarios 2 --internal-tls`.
#
# Needs: Rust, Java 17+, Maven 3; perf only for --profile; about 15 GiB free
# disk for scenario 7 at full scale.
set -euo pipefail
cd "$(dirname "$0")/.."

export KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
command -v java >/dev/null || { echo "bench/run.sh: java not found: Apache Kafka needs Java 17+" >&2; exit 1; }

echo "bench/run.sh: building release strom-broker and strom-bench" >&2
cargo build --release --quiet -p strom-broker -p strom-bench

echo "bench/run.sh: resolving Apache Kafka ${KAFKA_VERSION} (cached after the first run)" >&2
bash bench/kafka/run-kafka.sh classpath >/dev/null
tools="$(bash bench/kafka/run-kafka.sh tools-classpath)"

out="target/bench-runs/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p target/bench-runs
STROM_BENCH_REV="$(git describe --always --dirty 2>/dev/null || echo unknown)" \
    exec target/release/strom-bench \
    --strom-broker target/release/strom-broker \
    --run-kafka bench/kafka/run-kafka.sh \
    --tools-classpath "${tools}" \
    --out "${out}" \
    "$@"
