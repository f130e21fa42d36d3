#!/usr/bin/env bash
# Strom vs Apache Kafka, side by side (issue 9): one command.
#
#   bash bench/run.sh [strom-bench options]
#
# Builds the release strom-broker and the harness (bench/harness), resolves
# Apache Kafka's broker and command-line tools from Maven Central into
# $HOME/.cache/strom/kafka-<version>/ (once), then runs scenarios 1 to 7
# against both brokers in turn and writes report.md into a fresh run
# directory under target/bench-runs/ (printed at the end). About 20 minutes
# on 2 cores. Options go to strom-bench, e.g. `--scenarios 1,4 --rounds 5`,
# `--scale 0.05` for a quick check of the harness, `--profile` to add a perf
# profile of Strom in scenario 1 (`strom-bench --help` lists them).
# Scenarios 1 and 2 start with unmeasured warm-up rounds on both systems
# (`--warmup-rounds`, default 2): with one, Kafka's JVM still sped up
# through the measured rounds.
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
# `--client-sasl-ssl` also measures clients on SASL_SSL with SCRAM-SHA-512:
# the single brokers of scenarios 1 and 4 get a second client listener,
# SASL_SSL (the same key store, from `strom-broker certs`, and the same
# `listener.name.sasl_ssl.*` settings on both systems; SCRAM-SHA-512 only),
# and the SCRAM user is created on both through their PLAINTEXT listener with
# Kafka's own kafka-configs.sh. Every round then runs ProducerPerformance
# (scenario 1) and ConsumerPerformance (scenario 4, the same backlog) over
# both listeners of the same broker, with a client config file
# (security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512, the JAAS line,
# the CA as a PEM trust store). librdkafka stays plaintext: the harness's
# rdkafka is built without SSL. The report adds a table per scenario with
# Strom SASL_SSL/Kafka SASL_SSL (targets: >= 1.0 produce, >= 1.2 consume),
# SASL_SSL/plain per system, and, for scenario 1, the broker's CPU per MiB.
# E.g. `bash bench/run.sh --scenarios 1,4 --client-sasl-ssl`.
#
# Scenario 8 (transactions) is opt-in: `--scenarios 8` (or add 8 to a list).
# On three-broker clusters like scenario 2's (its clusters, after it, when
# both run), ProducerPerformance produces in transactions
# (`--transactional-id`, `--transaction-duration-ms 100`, acks=all,
# idempotent), then ConsumerPerformance reads that backlog with
# isolation.level=read_committed; each run is checked (every committed
# record read, by ConsumerPerformance and by a librdkafka read_committed
# consumer reading every partition to its end). Targets: Strom/Kafka >= 1.0
# for both throughputs; the brokers' CPU per MiB is reported too. A system
# whose run fails is left out of the remaining rounds (the other goes on)
# and the scenario fails. It adds an estimated 4-7 minutes at scale 1 (one
# warm-up run of 250,000 and three rounds of 1,000,000 records per system),
# taking the default run to 21-24 minutes, so it is not in the default list.
# E.g. `bash bench/run.sh --scenarios 8` or `--scenarios 2,3,8`.
#
# Scenario 9 (group join settle time, issue 23) is opt-in too:
# `--scenarios 9`. On a single broker per system, a topic of 12 partitions;
# per run a fresh group of 3 Java consumers (kafka-clients of the same
# version, all in one JVM: bench/java/GroupJoinSettle.java, which the
# harness compiles with javac against the tools' classpath) waits until
# stable, then a 4th subscribes; measured is the time from its subscribe()
# to the last non-empty revoke/assign/lost callback of any member once every
# member owns 3 partitions and no callback came for 3 s. Each round runs
# both systems (alternating) and both group.protocol=classic (the client's
# default assignors: range, eager) and group.protocol=consumer (KIP-848, the
# broker's uniform assignor); the report gives each system's median and
# min–max and Strom/Kafka per protocol, plus the first 3 members' forming
# time and the callbacks counted during the join. No target: both protocols'
# settle times are set by heartbeat intervals (the client's 3 s, the
# broker's group.consumer.heartbeat.interval.ms 5 s), so ~1.0 is expected.
# About 15-20 s per run, 4 runs per round: `--scenarios 9 --rounds 3` took
# under 4 minutes (bench/RESULTS.md); --scale does not change it.
#
# Scenario 10 (scaling, issue 22) is opt-in too: `--scenarios 10`. On
# three-broker clusters like scenario 2's (its clusters, after it, when both
# run; else fresh ones with --warmup-rounds unmeasured warm-up runs each), librdkafka
# producers from the harness at full speed, acks=all, 1 KiB records, 300,000
# records per run (times --scale) split over the producers, a fresh topic
# per run: 8, 64 and 512 partitions with 1 producer, and 1, 8 and 64
# producers (independent librdkafka instances, each with its own
# connections, one thread each) into 8 partitions. Per point: aggregate
# throughput, produce latency p50/p99 (send to delivery report, over every
# record; at full speed it includes time in the client's queue) and the
# brokers' CPU per MiB; every run is read back and checked. The report has
# one table, a row per point, Strom and Kafka median (min–max) and
# Strom/Kafka. E.g. `bash bench/run.sh --scenarios 10 --rounds 3`.
#
# A/B of Strom builds or settings in the same run (issue 22):
# `--strom-variant NAME=ARGS` (repeatable, at most 4) adds a 3-node Strom
# cluster whose every node gets ARGS (split like a shell word list, no
# expansion) appended to its strom-broker command line, e.g.
# `--strom-variant unary='--set replica.fetch.stream=false'`. Variants run
# in scenarios 2 and 10 (not 3 or 8, which measure the plain pair alone), in
# the same rounds as the base clusters: every generator on every cluster,
# each system's clusters back to back (the variants right after the base
# Strom), every round in the reverse order of the one before; their runs
# are read back and checked like all others. The report adds a table per
# variant: base Strom, the variant, variant/base, Kafka, variant/Kafka, for
# throughput and the brokers' CPU per MiB per generator (scenario 10: every
# point's throughput, p50, p99 and CPU per MiB). `--strom-args ARGS` appends
# ARGS to the base Strom's nodes in every scenario (so the base can be the
# old path); variants do not get it. The flags the harness sets itself
# (ports, --data-dir, --node-id, --voters, internal TLS) are refused. E.g.
# `bash bench/run.sh --scenarios 2,10 --strom-args '--set x=a' --strom-variant b='--set x=b'`.
#
# Needs: Rust, Java 17+ (a JDK: scenario 9 runs javac), Maven 3; perf only
# for --profile; about 15 GiB free disk for scenario 7 at full scale.
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
