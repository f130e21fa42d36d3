#!/usr/bin/env bash
# Conformance against a client library's own integration tests (issue 23):
# franz-go's pkg/kgo tests, run against Strom and against Apache Kafka, one
# after the other on this machine, each on a fresh single-node cluster on
# free loopback ports, then a table of every test's result on each.
#
#   bash scripts/conformance.sh [OPTIONS]
#
# Options:
#   --run REGEX        which tests (go test -run; default: all of pkg/kgo's)
#   --timeout DUR      go test -timeout for each system (default 15m); the run
#                      is also killed one minute after it
#   --out FILE         the table, Markdown (default target/conformance/table.md);
#                      beside it: each system's go test -json stream, the output
#                      of its failed tests and its broker's log
#   --records N        KGO_TEST_RECORDS, records the ETL tests produce
#                      (default: the tests' own, 500000)
#   --only strom|kafka run against one system only; the other's results from
#                      an earlier run with the same --out stay in the table
#   --broker PATH      the strom-broker binary (default: built with
#                      `cargo build --release -p strom-broker -p strom-bench`,
#                      as bench/run.sh does)
#   --log-level LEVEL  KGO_LOG_LEVEL, the log level of the tests that log
#                      through franz-go's logger: none (default), info, debug
#
# franz-go is the version e2e/go/go.mod pins; `go mod download` puts it in
# $HOME/.cache/strom/go-mod (the cache e2e-deps.sh uses) and its source is
# copied to a temporary directory (the module cache is read-only) where the
# test binary is compiled (once per franz-go version, kept in that cache) and
# run from, against each system, through `go tool test2json`. The
# environment is the one franz-go's own CI gives its Kafka job
# (KGO_TEST_RF=1, KGO_TEST_STABLE_FETCH=true), without its SASL
# listener: the SCRAM and OAUTHBEARER tests skip on both. Kafka 4.3.1 runs
# through bench/kafka/run-kafka.sh (jars from Maven Central, cached) with the
# settings of that CI job (every group protocol, share-group state topic
# sizing). Both brokers are stopped on exit. Needs Go, Java 17+, Maven, jq.
# docs/CONFORMANCE.md keeps the last full run's table and its analysis.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

RUN_REGEX="."
TIMEOUT="15m"
OUT="target/conformance/table.md"
RECORDS=""
ONLY=""
BROKER=""
LOG_LEVEL="none"

die() {
    echo "conformance.sh: $*" >&2
    exit 1
}
say() { echo "conformance.sh: $*" >&2; }

usage() {
    sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

while [[ $# -gt 0 ]]; do
    case "$1" in
    -h | --help) usage ;;
    --run | --timeout | --out | --records | --only | --broker | --log-level)
        [[ $# -ge 2 ]] || die "$1 needs a value"
        case "$1" in
        --run) RUN_REGEX="$2" ;;
        --timeout) TIMEOUT="$2" ;;
        --out) OUT="$2" ;;
        --records) RECORDS="$2" ;;
        --only) ONLY="$2" ;;
        --broker) BROKER="$2" ;;
        --log-level) LOG_LEVEL="$2" ;;
        esac
        shift 2
        ;;
    *) die "unknown option $1 (--help lists them)" ;;
    esac
done
[[ -z "${ONLY}" || "${ONLY}" == strom || "${ONLY}" == kafka ]] || die "--only is strom or kafka, got ${ONLY}"
[[ -z "${RECORDS}" || "${RECORDS}" =~ ^[0-9]+$ ]] || die "--records must be a number, got ${RECORDS}"
[[ "${TIMEOUT}" =~ ^[0-9]+[smh]$ ]] || die "--timeout is a number with s, m or h, got ${TIMEOUT}"

for tool in go java mvn jq curl python3; do
    command -v "${tool}" >/dev/null || die "${tool} not found (see scripts/e2e-deps.sh for what the clients need)"
done

CACHE="${HOME}/.cache/strom"
export GOMODCACHE="${CACHE}/go-mod"
export KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
FRANZ_VERSION="$(sed -n 's:^[[:space:]]*github.com/twmb/franz-go \(v[^ ]*\)$:\1:p' e2e/go/go.mod)"
[[ -n "${FRANZ_VERSION}" ]] || die "no github.com/twmb/franz-go version in e2e/go/go.mod"

mkdir -p "$(dirname "${OUT}")"
OUT="$(cd "$(dirname "${OUT}")" && pwd)/$(basename "${OUT}")"
LOGS="${OUT%.md}"
mkdir -p "${LOGS}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/strom-conformance.XXXXXX")"
BROKER_PID=""
stop_broker() {
    if [[ -n "${BROKER_PID}" ]] && kill -0 "${BROKER_PID}" 2>/dev/null; then
        kill "${BROKER_PID}" 2>/dev/null || true
        local i
        for ((i = 0; i < 60; i++)); do
            kill -0 "${BROKER_PID}" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "${BROKER_PID}" 2>/dev/null || true
        wait "${BROKER_PID}" 2>/dev/null || true
    fi
    BROKER_PID=""
}
cleanup() {
    stop_broker
    # The copied module is read-only like the cache it came from.
    chmod -R u+w "${WORK}" 2>/dev/null || true
    rm -rf "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1 (the kernel's pick, released right away).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# --- the broker binary ---
if [[ -z "${BROKER}" ]]; then
    if [[ "${ONLY}" != kafka ]]; then
        say "building the release strom-broker"
        # The packages bench/run.sh builds: one package set, one set of
        # dependency features, so the two scripts share one release build.
        cargo build --release --quiet -p strom-broker -p strom-bench
    fi
    BROKER="${ROOT}/target/release/strom-broker"
fi
[[ "${ONLY}" == kafka || -x "${BROKER}" ]] || die "no strom-broker at ${BROKER}"

# --- franz-go's kgo tests, compiled once ---
say "downloading github.com/twmb/franz-go@${FRANZ_VERSION} into ${GOMODCACHE} (cached)"
MOD_DIR="$(go mod download -json "github.com/twmb/franz-go@${FRANZ_VERSION}" | jq -r .Dir)"
[[ -d "${MOD_DIR}/pkg/kgo" ]] || die "no pkg/kgo in ${MOD_DIR}"
cp -r "${MOD_DIR}" "${WORK}/franz-go"
chmod -R u+w "${WORK}/franz-go"
TEST_BIN="${CACHE}/franz-go-kgo-test-${FRANZ_VERSION}/kgo.test"
if [[ ! -x "${TEST_BIN}" ]]; then
    say "compiling pkg/kgo's tests into ${TEST_BIN}"
    mkdir -p "$(dirname "${TEST_BIN}")"
    (cd "${WORK}/franz-go/pkg/kgo" && GOFLAGS=-mod=mod go test -c -o "${TEST_BIN}.tmp" .)
    mv "${TEST_BIN}.tmp" "${TEST_BIN}"
fi

# --- the brokers ---
wait_port() {
    local port="$1" what="$2" i
    for ((i = 0; i < 240; i++)); do
        kill -0 "${BROKER_PID}" 2>/dev/null || die "${what} exited while starting; see its log"
        if (: <"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    die "${what} did not listen on ${port} within 120 s"
}

SEEDS=""
start_strom() {
    local kafka_port internal_port http_port i
    kafka_port="$(free_port)"
    internal_port="$(free_port)"
    http_port="$(free_port)"
    "${BROKER}" --node-id 0 --data-dir "${WORK}/strom-data" \
        --listen "127.0.0.1:${kafka_port}" --advertise "127.0.0.1:${kafka_port}" \
        --internal-listen "127.0.0.1:${internal_port}" --http-listen "127.0.0.1:${http_port}" \
        >"${LOGS}/strom-broker.log" 2>&1 &
    BROKER_PID=$!
    wait_port "${http_port}" strom-broker
    for ((i = 0; i < 240; i++)); do
        curl -fsS "http://127.0.0.1:${http_port}/readyz" >/dev/null 2>&1 && break
        kill -0 "${BROKER_PID}" 2>/dev/null || die "strom-broker exited while starting; see ${LOGS}/strom-broker.log"
        sleep 0.5
    done
    curl -fsS "http://127.0.0.1:${http_port}/readyz" >/dev/null || die "strom-broker not ready within 120 s"
    SEEDS="127.0.0.1:${kafka_port}"
}

start_kafka() {
    local kafka_port controller_port
    bash bench/kafka/run-kafka.sh classpath >/dev/null
    kafka_port="$(free_port)"
    controller_port="$(free_port)"
    # The settings franz-go's CI gives its Kafka container.
    bash bench/kafka/run-kafka.sh start "${WORK}/kafka" "${kafka_port}" "${controller_port}" \
        group.coordinator.rebalance.protocols=classic,consumer,share \
        share.coordinator.state.topic.num.partitions=5 \
        group.share.delivery.count.limit=10 \
        >"${LOGS}/kafka-broker.log" 2>&1 &
    BROKER_PID=$!
    wait_port "${kafka_port}" "Kafka ${KAFKA_VERSION}"
    SEEDS="127.0.0.1:${kafka_port}"
}

# Runs the compiled tests against SEEDS; writes LOGS/SYSTEM.json (go test -json).
run_tests() {
    local system="$1" budget
    budget=$(($(sed 's/s$//; s/m$/*60/; s/h$/*3600/' <<<"${TIMEOUT}") + 60))
    say "running kgo tests matching '${RUN_REGEX}' against ${system} at ${SEEDS} (timeout ${TIMEOUT})"
    local start=${SECONDS} rc=0
    (
        cd "${WORK}/franz-go/pkg/kgo"
        export KGO_SEEDS="${SEEDS}" KGO_TEST_RF=1 KGO_TEST_STABLE_FETCH=true KGO_LOG_LEVEL="${LOG_LEVEL}"
        [[ -z "${RECORDS}" ]] || export KGO_TEST_RECORDS="${RECORDS}"
        timeout --kill-after=10 "${budget}" go tool test2json -t -p kgo \
            "${TEST_BIN}" -test.v=test2json -test.count=1 \
            -test.run "${RUN_REGEX}" -test.timeout "${TIMEOUT}"
    ) >"${LOGS}/${system}.json" 2>"${LOGS}/${system}.stderr" || rc=$?
    say "${system}: go test exited ${rc} after $((SECONDS - start)) s"
    local what="Apache Kafka ${KAFKA_VERSION}"
    [[ "${system}" == kafka ]] || what="$("${BROKER}" --version 2>/dev/null || echo strom-broker) (${BROKER})"
    echo "${what}, $(date -u +%Y-%m-%dT%H:%MZ), go test exited ${rc} after $((SECONDS - start)) s" >"${LOGS}/${system}.run"
}

# From LOGS/SYSTEM.json: "Test<TAB>result" for every top-level test; a test
# that started and never ended (the run timed out or crashed) is "timeout".
results() {
    local json="${LOGS}/$1.json"
    [[ -s "${json}" ]] || return 0
    jq -r 'select(.Test != null and (.Test | contains("/") | not))
           | select(.Action == "run" or .Action == "pass" or .Action == "fail" or .Action == "skip")
           | "\(.Test)\t\(.Action)"' "${json}" |
        awk -F'\t' '{ if ($2 == "run") { if (!($1 in r)) r[$1] = "timeout" } else r[$1] = $2 }
                    END { for (t in r) print t "\t" r[t] }' | LC_ALL=C sort
}

# The output of every failed or unfinished top-level test (its subtests'
# too), for reading why.
failures() {
    local system="$1" json="${LOGS}/$1.json"
    [[ -s "${json}" ]] || return 0
    local t
    results "${system}" | awk -F'\t' '$2 == "fail" || $2 == "timeout" { print $1 }' | while read -r t; do
        echo "=== ${t} (${system})"
        jq -r --arg t "${t}" 'select(.Action == "output" and .Test != null
                                  and (.Test == $t or (.Test | startswith($t + "/"))))
                              | .Output' "${json}" | tr -d '\r'
    done >"${LOGS}/${system}-failures.txt"
}

for system in kafka strom; do
    [[ -z "${ONLY}" || "${ONLY}" == "${system}" ]] || continue
    "start_${system}"
    run_tests "${system}"
    stop_broker
    failures "${system}"
done

# --- the table ---
LC_ALL=C join -t $'\t' -a 1 -a 2 -e - -o 0,1.2,2.2 \
    <(results kafka) <(results strom) >"${LOGS}/joined.tsv"
# "N pass, N fail, N skip" over the subtests (names with a /) of SYSTEM's run.
subtests() {
    jq -r 'select(.Test != null and (.Test | contains("/")))
           | select(.Action == "pass" or .Action == "fail" or .Action == "skip") | .Action' "${LOGS}/$1.json" |
        awk '{ n[$1]++ } END { printf "%d pass, %d fail, %d skip", n["pass"], n["fail"], n["skip"] }'
}
count() { awk -F'\t' -v k="$1" -v s="$2" '$2 == k && $3 == s' "${LOGS}/joined.tsv" | wc -l; }
table() {
    echo "# franz-go ${FRANZ_VERSION} pkg/kgo tests: Apache Kafka ${KAFKA_VERSION} vs Strom"
    echo
    echo "Table written $(date -u +%Y-%m-%dT%H:%MZ) from the repository at $(git describe --always --dirty 2>/dev/null || echo unknown);"
    echo "\`-run '${RUN_REGEX}'\`, timeout ${TIMEOUT}${RECORDS:+, KGO_TEST_RECORDS=${RECORDS}}; each system's run:"
    local system
    for system in kafka strom; do
        [[ -s "${LOGS}/${system}.json" ]] && echo "- ${system}: $(cat "${LOGS}/${system}.run" 2>/dev/null || echo unknown); subtests: $(subtests "${system}")"
    done
    echo
    echo "| | tests |"
    echo "|---|---|"
    echo "| pass on both | $(count pass pass) |"
    echo "| pass on Kafka, fail on Strom | $(count pass fail) |"
    echo "| pass on Kafka, skip on Strom | $(count pass skip) |"
    echo "| pass on Kafka, timeout on Strom | $(count pass timeout) |"
    echo "| fail on both | $(count fail fail) |"
    echo "| skip on both | $(count skip skip) |"
    echo "| other | $(awk -F'\t' '!(($2 == "pass" && $3 ~ /^(pass|fail|skip|timeout)$/) || ($2 == $3 && $2 ~ /^(fail|skip)$/))' "${LOGS}/joined.tsv" | wc -l) |"
    echo
    echo "| test | Kafka ${KAFKA_VERSION} | Strom |"
    echo "|---|---|---|"
    awk -F'\t' '{ print "| " $1 " | " $2 " | " $3 " |" }' "${LOGS}/joined.tsv"
}
table >"${OUT}"
say "table: ${OUT}; logs and failed tests' output: ${LOGS}/"
