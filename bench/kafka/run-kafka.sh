#!/usr/bin/env bash
# Apache Kafka as a local process, for benchmarks that measure Strom beside it.
#
# The broker's jars come from Maven Central: pom.xml beside this script names
# org.apache.kafka:kafka_2.13 and `mvn dependency:build-classpath` resolves it
# and its runtime dependencies into $HOME/.cache/strom/kafka-<version>/ (a
# local Maven repository plus classpath.txt). Nothing is downloaded again once
# that cache exists, and no jar ever lands in the repository.
#
# Usage:
#   run-kafka.sh classpath
#       Resolve the jars if needed; print the path of classpath.txt.
#   run-kafka.sh start [OPTIONS] DIR KAFKA_PORT CONTROLLER_PORT [KEY=VALUE ...]
#       Write DIR/server.properties for a KRaft node in combined mode (broker
#       and controller in one process, listeners on 127.0.0.1), format DIR/data
#       (skipped if already formatted, so a restarted node keeps its data),
#       then exec the broker (`kafka.Kafka DIR/server.properties`) in the
#       foreground: its pid is this script's pid. KEY=VALUE pairs are appended
#       to server.properties and so override the defaults written here. The
#       broker's log goes to stdout.
#       Without options: a single-node cluster, node id 1, a fresh cluster id.
#       Options, for one node of a multi-node cluster (every node a voter):
#         --node-id N             this node's id (default 1)
#         --voters ID@HOST:PORT,...
#                                 controller.quorum.voters, the same on every
#                                 node, listing this node's CONTROLLER_PORT;
#                                 internal topics then get replication factor
#                                 min(3, voters) and min.insync.replicas
#                                 min(2, voters)
#         --cluster-id ID         the cluster id to format with, the same on
#                                 every node (needed with --voters)
#         --internal-tls DIR      put the brokers' own traffic on mutual TLS:
#                                 replication and other inter-broker requests
#                                 go over a listener INTERNAL on --internal-port,
#                                 and the CONTROLLER listener (KRaft) is SSL
#                                 too; clients keep PLAINTEXT on KAFKA_PORT.
#                                 DIR holds PEM files as `strom-broker certs`
#                                 writes them: ca.pem (trusted), and this
#                                 node's broker-<node-id>.pem and
#                                 broker-<node-id>-key.pem (PKCS#8), with an
#                                 IP SAN 127.0.0.1 (hostname verification
#                                 stays on). Client certificates are required.
#         --internal-port PORT    the INTERNAL listener's port (needed with
#                                 --internal-tls)
#         --sasl-ssl-port PORT    add a second client listener, SASL_SSL on
#                                 127.0.0.1:PORT (listener name SASL_SSL,
#                                 beside PLAINTEXT on KAFKA_PORT, which stays
#                                 the inter-broker listener). Its TLS and SASL
#                                 settings come as KEY=VALUE pairs, e.g.
#                                 listener.name.sasl_ssl.ssl.keystore.type=PEM
#                                 listener.name.sasl_ssl.ssl.keystore.location=FILE
#                                 listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
#                                 listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=...
#                                 (strom-bench --client-sasl-ssl passes the same
#                                 ones to Strom and to Kafka)
#   run-kafka.sh cluster-id
#       Print a fresh random cluster id for --cluster-id.
#   run-kafka.sh tools-classpath
#       Resolve Kafka's command-line tools (org.apache.kafka:kafka-tools, with
#       ProducerPerformance and ConsumerPerformance; tools-pom.xml) if needed;
#       print the path of their tools-classpath.txt in the same cache.
#
# Environment: KAFKA_VERSION (default 4.3.1), JAVA_HOME (else `java` on PATH),
# KAFKA_HEAP_OPTS (default -Xmx1G -Xms1G, as kafka-server-start.sh sets).
# Needs Java 17+ and Maven 3.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HOME}/.cache/strom/kafka-${KAFKA_VERSION}"
JAVA="${JAVA_HOME:+${JAVA_HOME}/bin/}java"
START_OPTIONS="[--node-id N] [--voters ID@HOST:PORT,...] [--cluster-id ID] [--internal-tls DIR --internal-port PORT] [--sasl-ssl-port PORT]"

die() {
    echo "run-kafka.sh: $*" >&2
    exit 1
}

# Resolves the jars of POM (beside this script) into the cache (once) and
# prints the path of OUT, the classpath file in the cache.
resolve() {
    local pom="$1" out="${CACHE}/$2" artifact="$3"
    if [[ ! -s "${out}" ]]; then
        command -v mvn >/dev/null || die "mvn not found: Maven 3 is needed to fetch ${artifact} ${KAFKA_VERSION}"
        mkdir -p "${CACHE}"
        local tmp="${out}.tmp.$$"
        if ! mvn -B -q -f "${HERE}/${pom}" \
            -Dkafka.version="${KAFKA_VERSION}" \
            -Dmaven.repo.local="${CACHE}/m2" \
            -Dmdep.includeScope=runtime \
            -Dmdep.outputFile="${tmp}" \
            dependency:build-classpath >"${CACHE}/mvn-${2%.txt}.log" 2>&1; then
            rm -f "${tmp}"
            die "resolving ${artifact}:${KAFKA_VERSION} failed; see ${CACHE}/mvn-${2%.txt}.log"
        fi
        mv "${tmp}" "${out}"
    fi
    echo "${out}"
}

# The broker's jars: prints classpath.txt's path.
classpath_file() {
    resolve pom.xml classpath.txt org.apache.kafka:kafka_2.13
}

# A random Kafka cluster id: 16 random bytes in unpadded URL-safe base64
# (Kafka's Uuid form), never starting with '-': kafka-storage would take it
# for an option (1 in 64 ids; Kafka's Uuid.randomUuid() draws again too).
cluster_id() {
    local id
    id=-
    while [[ "${id}" == -* ]]; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    done
    echo -n "${id}"
}

start() {
    local node_id=1 voters="" cid="" tls_dir="" internal_port="" sasl_ssl_port=""
    while [[ "${1:-}" == --* ]]; do
        [[ $# -ge 2 ]] || die "$1 needs a value"
        case "$1" in
        --node-id) node_id="$2" ;;
        --voters) voters="$2" ;;
        --cluster-id) cid="$2" ;;
        --internal-tls) tls_dir="$2" ;;
        --internal-port) internal_port="$2" ;;
        --sasl-ssl-port) sasl_ssl_port="$2" ;;
        *) die "unknown option $1 (options: ${START_OPTIONS})" ;;
        esac
        shift 2
    done
    [[ $# -ge 3 ]] || die "usage: run-kafka.sh start ${START_OPTIONS} DIR KAFKA_PORT CONTROLLER_PORT [KEY=VALUE ...]"
    local dir="$1" kafka_port="$2" controller_port="$3"
    shift 3
    [[ "${node_id}" =~ ^[0-9]+$ ]] || die "--node-id must be a number, got ${node_id}"
    if [[ -n "${tls_dir}" ]]; then
        [[ "${internal_port}" =~ ^[0-9]+$ ]] ||
            die "--internal-tls needs --internal-port PORT for the INTERNAL listener, got '${internal_port}'"
        local f
        for f in ca.pem "broker-${node_id}.pem" "broker-${node_id}-key.pem"; do
            [[ -s "${tls_dir}/${f}" ]] ||
                die "--internal-tls ${tls_dir}: no ${f} (strom-broker certs --out ${tls_dir} --brokers ... --ip 127.0.0.1 writes it)"
        done
        tls_dir="$(cd "${tls_dir}" && pwd)"
    elif [[ -n "${internal_port}" ]]; then
        die "--internal-port is only for --internal-tls"
    fi
    [[ -z "${sasl_ssl_port}" || "${sasl_ssl_port}" =~ ^[0-9]+$ ]] ||
        die "--sasl-ssl-port must be a port number, got '${sasl_ssl_port}'"
    if [[ -z "${voters}" ]]; then
        voters="${node_id}@127.0.0.1:${controller_port}"
        cid="${cid:-$(cluster_id)}"
    else
        [[ -n "${cid}" ]] || die "--voters needs --cluster-id: every node of a cluster is formatted with the same id (run-kafka.sh cluster-id prints one)"
        [[ ",${voters}," == *",${node_id}@"*":${controller_port},"* ]] ||
            die "--voters ${voters} does not list node ${node_id} on CONTROLLER_PORT ${controller_port}"
    fi
    local n_voters rf min_isr
    n_voters="$(tr ',' '\n' <<<"${voters}" | grep -c .)"
    rf=$((n_voters < 3 ? n_voters : 3))
    min_isr=$((n_voters < 2 ? n_voters : 2))
    command -v "${JAVA}" >/dev/null || die "java not found (set JAVA_HOME): Apache Kafka ${KAFKA_VERSION} needs Java 17+"
    local cp
    cp="$(tr -d '\n' <"$(classpath_file)")"
    mkdir -p "${dir}"
    dir="$(cd "${dir}" && pwd)"
    local props="${dir}/server.properties"
    local listeners advertised inter_broker protocols
    if [[ -n "${tls_dir}" ]]; then
        listeners="PLAINTEXT://127.0.0.1:${kafka_port},INTERNAL://127.0.0.1:${internal_port},CONTROLLER://127.0.0.1:${controller_port}"
        advertised="PLAINTEXT://127.0.0.1:${kafka_port},INTERNAL://127.0.0.1:${internal_port}"
        inter_broker=INTERNAL
        protocols="CONTROLLER:SSL,INTERNAL:SSL,PLAINTEXT:PLAINTEXT"
    else
        listeners="PLAINTEXT://127.0.0.1:${kafka_port},CONTROLLER://127.0.0.1:${controller_port}"
        advertised="PLAINTEXT://127.0.0.1:${kafka_port}"
        inter_broker=PLAINTEXT
        protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    fi
    if [[ -n "${sasl_ssl_port}" ]]; then
        listeners="${listeners},SASL_SSL://127.0.0.1:${sasl_ssl_port}"
        advertised="${advertised},SASL_SSL://127.0.0.1:${sasl_ssl_port}"
        protocols="${protocols},SASL_SSL:SASL_SSL"
    fi
    cat >"${props}" <<EOF
process.roles=broker,controller
node.id=${node_id}
controller.quorum.voters=${voters}
listeners=${listeners}
advertised.listeners=${advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=${inter_broker}
listener.security.protocol.map=${protocols}
log.dirs=${dir}/data
num.partitions=1
offsets.topic.replication.factor=${rf}
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${min_isr}
share.coordinator.state.topic.replication.factor=${rf}
share.coordinator.state.topic.min.isr=${min_isr}
EOF
    if [[ -n "${tls_dir}" ]]; then
        # A PEM key store file holds the private key, then the certificate
        # chain (KIP-651); the key is not encrypted, so no ssl.key.password.
        # The top-level ssl.* settings serve every SSL listener (INTERNAL,
        # CONTROLLER) and this node's own connections to them.
        local keystore="${dir}/keystore.pem"
        cat "${tls_dir}/broker-${node_id}-key.pem" "${tls_dir}/broker-${node_id}.pem" >"${keystore}"
        chmod 600 "${keystore}"
        cat >>"${props}" <<EOF
ssl.keystore.type=PEM
ssl.keystore.location=${keystore}
ssl.truststore.type=PEM
ssl.truststore.location=${tls_dir}/ca.pem
ssl.client.auth=required
EOF
    fi
    local kv
    for kv in "$@"; do
        [[ "${kv}" == *=* ]] || die "not a KEY=VALUE setting: ${kv}"
        echo "${kv}" >>"${props}"
    done
    local log4j="-Dlog4j2.configurationFile=${HERE}/log4j2.properties"
    # Format the log dir for a fresh cluster (the JVM's own output goes to
    # stdout too). A formatted one is left alone without starting a JVM for
    # it, so a restart's time is the broker's own.
    if [[ ! -s "${dir}/data/meta.properties" ]]; then
        "${JAVA}" "${log4j}" -cp "${cp}" kafka.tools.StorageTool format \
            --config "${props}" --cluster-id "${cid}" --ignore-formatted
    fi
    # The JVM options of Kafka's bin/kafka-server-start.sh and kafka-run-class.sh.
    # shellcheck disable=SC2086
    exec "${JAVA}" ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true \
        "${log4j}" -cp "${cp}" kafka.Kafka "${props}"
}

case "${1:-}" in
classpath) classpath_file ;;
tools-classpath) resolve tools-pom.xml tools-classpath.txt org.apache.kafka:kafka-tools ;;
cluster-id) cluster_id && echo ;;
start)
    shift
    start "$@"
    ;;
*) die "usage: run-kafka.sh classpath | tools-classpath | cluster-id | start ${START_OPTIONS} DIR KAFKA_PORT CONTROLLER_PORT [KEY=VALUE ...]" ;;
esac
