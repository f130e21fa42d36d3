#!/usr/bin/env bash
# Failover time, Strom beside Apache Kafka: a 3-node cluster of each on
# loopback, partition leader killed with kill -9, timed until the first acks=all
# delivery of a record sent after the kill (bench/failover/failover.py has the
# whole procedure). One command:
#
#   bash bench/failover/run.sh [failover.py options]
#
# builds the release strom-broker, makes sure of the Python client
# (confluent-kafka in ~/.cache/strom, via scripts/e2e-deps.sh) and of Apache
# Kafka's jars (bench/kafka/run-kafka.sh classpath: Java 17+ and Maven 3), then
# runs both systems one after the other and prints the table. Without options:
# 10 rounds per system (5 killing a partition leader, 5 killing a partition
# leader that is the active controller too) at
# broker.session.timeout.ms/broker.heartbeat.interval.ms 9000/2000 (both
# systems' defaults) and again at 3000/500; about 20 minutes. Options, e.g.
# `--rounds 4 --timeouts 3000/500 --systems strom`: see failover.py --help.
#
# Environment: STROM_BIN — a strom-broker binary to use instead of building;
# FAILOVER_DIR — the run directory (default: a fresh /tmp/strom-failover.*),
# which keeps every node's log, the clients' logs and results.json.
# Apache Kafka is skipped, with the reason, when Java or Maven is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"

say() { echo "failover: $*" >&2; }

# --- the broker ---
if [[ -n "${STROM_BIN:-}" ]]; then
    [[ -x "${STROM_BIN}" ]] || { say "STROM_BIN=${STROM_BIN} is not an executable"; exit 1; }
    bin="${STROM_BIN}"
else
    say "building strom-broker (release)"
    cargo build --release -p strom-broker --manifest-path "${ROOT}/Cargo.toml"
    bin="${CARGO_TARGET_DIR:-${ROOT}/target}/release/strom-broker"
fi

# --- the client: the e2e tests' confluent-kafka venv ---
version="$(sed -n 's/^CONFLUENT_KAFKA_VERSION=//p' "${ROOT}/scripts/e2e-deps.sh")"
python="${HOME}/.cache/strom/venv-confluent-kafka-${version}/bin/python"
if ! "${python}" -c "import confluent_kafka" 2>/dev/null; then
    say "no confluent-kafka venv at ${python}; running scripts/e2e-deps.sh"
    bash "${ROOT}/scripts/e2e-deps.sh"
fi

# --- Apache Kafka's jars (resolved once into ~/.cache/strom/kafka-<version>) ---
systems="strom,kafka"
if ! kafka_err="$(bash "${ROOT}/bench/kafka/run-kafka.sh" classpath 2>&1 >/dev/null)"; then
    say "Apache Kafka cannot run here, measuring Strom alone: ${kafka_err}"
    systems="strom"
elif ! command -v "${JAVA_HOME:+${JAVA_HOME}/bin/}java" >/dev/null; then
    say "Apache Kafka cannot run here (no java; set JAVA_HOME), measuring Strom alone"
    systems="strom"
fi

dir="${FAILOVER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/strom-failover.XXXXXX")}"
mkdir -p "${dir}"
dir="$(cd "${dir}" && pwd)"
say "run directory (node and client logs, results.json): ${dir}"
# A private copy: a rebuild in the shared target dir during the run must not
# change the binary a restarted node runs.
cp "${bin}" "${dir}/strom-broker"
bin="${dir}/strom-broker"

args=("$@")
if [[ $# -eq 0 ]]; then
    args=(--rounds 10 --timeouts 9000/2000 --timeouts 3000/500)
fi
has_systems=0
for a in "${args[@]}"; do
    [[ "${a}" == --systems* ]] && has_systems=1
done
((has_systems)) || args+=(--systems "${systems}")

# failover.py starts every node in its own process group and kills them all on
# exit, on SIGTERM and on SIGINT; pass those on and wait for its cleanup.
"${python}" "${HERE}/failover.py" --dir "${dir}" --strom-bin "${bin}" \
    --run-kafka "${ROOT}/bench/kafka/run-kafka.sh" "${args[@]}" &
child=$!
trap 'kill -TERM "${child}" 2>/dev/null || true; wait "${child}"; exit 143' TERM
trap 'kill -INT "${child}" 2>/dev/null || true; wait "${child}"; exit 130' INT
rc=0
wait "${child}" || rc=$?
# Last resort, should failover.py have died without its cleanup: the process
# groups of nodes it left, by the pid files it keeps beside their logs.
for f in "${dir}"/*/broker-*.pid; do
    [[ -f "${f}" ]] || continue
    pid="$(cat "${f}")"
    if [[ "${pid}" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF "${dir}"; then
        say "stopping node process group ${pid} left by failover.py"
        kill -KILL -- "-${pid}" 2>/dev/null || true
    fi
    rm -f "${f}"
done
say "logs and results.json: ${dir}"
exit "${rc}"
