#!/usr/bin/env bash
# Provides the real Kafka clients that the end-to-end tests (broker/tests/e2e_*.rs)
# run against the broker, cached under $HOME/.cache/strom and keyed by version:
#
#   venv-confluent-kafka-<ver>/   Python venv with confluent-kafka (librdkafka) pinned
#   go-mod/                       Go module cache (GOMODCACHE) for e2e/go
#   e2e-go-<sources hash>/        the e2e/go program (franz-go), built
#   m2/                           Maven repository (kafka-clients, kafka-tools)
#   e2e-java-<sources hash>/      the e2e/java program, compiled, and its classpath
#
# and writes their paths to target/e2e.env, which the tests read. Idempotent,
# and quick (about a second) when everything is cached. .ci/run calls it
# before the tests; run it by hand after changing anything under e2e/.
#
#   bash scripts/e2e-deps.sh                 install/build what is missing, write target/e2e.env
#   bash scripts/e2e-deps.sh --source-hash go|java
#                                            print the hash the tests compare against
#                                            (to notice e2e/ changed since the last build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CONFLUENT_KAFKA_VERSION=2.16.1

CACHE="${HOME}/.cache/strom"
ENV_FILE="$ROOT/target/e2e.env"

# The hash of a client program's sources: a change to any of them means a rebuild.
source_hash() {
    case "$1" in
        go) (cd e2e/go && find . -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs cat) ;;
        java) (cd e2e/java && find pom.xml src -type f | LC_ALL=C sort | xargs cat) ;;
        *) echo "source_hash: unknown program $1" >&2; exit 2 ;;
    esac | sha256sum | cut -c1-16
}

if [ "${1:-}" = "--source-hash" ]; then
    source_hash "${2:?usage: e2e-deps.sh --source-hash go|java}"
    exit 0
fi

say() { echo "e2e-deps: $*"; }
need() {
    command -v "$1" >/dev/null 2>&1 || { echo "e2e-deps: '$1' is not installed; $2" >&2; exit 1; }
}

mkdir -p "$CACHE" "$ROOT/target"
# Kafka's Java client and CLI tools: the version e2e/java/pom.xml pins.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' e2e/java/pom.xml)"

# --- Java and Maven (Debian packages) when this machine lacks them ---
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    say "installing a JDK and Maven from Debian"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi
need python3 "install Python 3.9 or newer with its venv module"
need go "install Go 1.26 or newer (e2e/go/go.mod)"
need java "install a JDK 17"
need mvn "install Maven 3.8 or newer"
need sha256sum "install coreutils"

# --- Python: a venv with confluent-kafka ---
VENV="$CACHE/venv-confluent-kafka-$CONFLUENT_KAFKA_VERSION"
if ! "$VENV/bin/python" -c "import confluent_kafka, sys; sys.exit(confluent_kafka.version() != '$CONFLUENT_KAFKA_VERSION')" 2>/dev/null; then
    say "creating $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "confluent-kafka==$CONFLUENT_KAFKA_VERSION"
    "$VENV/bin/python" -c "import confluent_kafka; print('e2e-deps: confluent-kafka', confluent_kafka.version(), 'librdkafka', confluent_kafka.libversion()[0])"
fi

# --- Go: the franz-go program, built once per version of its sources ---
export GOMODCACHE="$CACHE/go-mod"
GO_OUT="$CACHE/e2e-go-$(source_hash go)"
GO_BIN="$GO_OUT/strom-e2e-go"
if [ ! -x "$GO_BIN" ]; then
    say "building e2e/go into $GO_OUT"
    mkdir -p "$GO_OUT"
    (cd e2e/go && go build -mod=readonly -trimpath -o "$GO_BIN.tmp" .)
    mv "$GO_BIN.tmp" "$GO_BIN"
fi

# --- Java: classpath of kafka-clients + kafka-tools, and the e2e program compiled ---
M2="$CACHE/m2"
JAVA_OUT="$CACHE/e2e-java-$(source_hash java)"
if [ ! -s "$JAVA_OUT/classpath.txt" ] || [ ! -f "$JAVA_OUT/classes/dev/strom/e2e/Main.class" ]; then
    say "resolving Kafka $KAFKA_VERSION with Maven and compiling e2e/java into $JAVA_OUT"
    rm -rf "$JAVA_OUT"
    mvn -q -B -Dstyle.color=never -f e2e/java/pom.xml -Dmaven.repo.local="$M2" \
        -Dstrom.e2e.build="$JAVA_OUT" -Dmdep.outputFile="$JAVA_OUT/classpath.txt" \
        dependency:build-classpath compile
fi
JAVA_BIN="$(readlink -f "$(command -v java)")"

tmp="$ENV_FILE.tmp"
cat >"$tmp" <<EOF
# Written by scripts/e2e-deps.sh; read by broker/tests/common/e2e.rs.
STROM_E2E_PYTHON=$VENV/bin/python
STROM_E2E_GO_BIN=$GO_BIN
STROM_E2E_GO_SOURCES=$(source_hash go)
STROM_E2E_JAVA=$JAVA_BIN
STROM_E2E_JAVA_CLASSPATH=$JAVA_OUT/classes:$(cat "$JAVA_OUT/classpath.txt")
STROM_E2E_JAVA_SOURCES=$(source_hash java)
STROM_E2E_KAFKA_VERSION=$KAFKA_VERSION
EOF
mv "$tmp" "$ENV_FILE"
say "clients ready; paths in $ENV_FILE"
