#!/usr/bin/env bash
# The user's path on a real Kubernetes cluster, end to end: a kind cluster, the
# image built and loaded into it, `helm install` of the operator, a 3-broker
# KafkaCluster and a topic from examples/, records produced and consumed with
# kcat from a pod, a rolling restart through the strom.dev/restart annotation
# (the records are read again afterwards), the secure example
# (examples/secure-cluster.yaml: TLS listeners, a certificate user and a SCRAM
# user with ACLs, each client configured from its user's Secret alone), and
# the teardown.
#
#   e2e/kind/kind.sh            # everything, then delete the kind cluster
#   e2e/kind/kind.sh up         # kind cluster + image + helm install + KafkaCluster
#   e2e/kind/kind.sh check      # topic, produce/consume, rolling restart, consume again
#   e2e/kind/kind.sh secure     # the secure example: mTLS writer, SCRAM reader, a refused write
#   e2e/kind/kind.sh down       # delete the kind cluster
#
# Needs docker, kind, kubectl and helm on PATH. Environment:
#   STROM_KIND_CLUSTER   kind cluster name              (default strom)
#   STROM_IMAGE          image built and loaded         (default ghcr.io/strom/strom-broker:0.1.0)
#   STROM_KIND_KEEP=1    keep the kind cluster after a full run
#   STROM_KCAT_IMAGE     kcat client image              (default docker.io/edenhill/kcat:1.7.1)
# It cannot run in this repository's CI (no container runtime); the operator's
# tests cover the same flow on a local control plane (operator/tests/helm_install.rs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_CLUSTER="${STROM_KIND_CLUSTER:-strom}"
IMAGE="${STROM_IMAGE:-ghcr.io/strom/strom-broker:0.1.0}"
KCAT_IMAGE="${STROM_KCAT_IMAGE:-docker.io/edenhill/kcat:1.7.1}"
OPERATOR_NS=strom-system
RELEASE=strom-operator
APP_NS=strom-demo
CLUSTER=demo
TOPIC=greetings
BOOTSTRAP="$CLUSTER-bootstrap.$APP_NS.svc:9092"
SECURE_NS=strom-secure
SECURE_BOOTSTRAP=events-bootstrap.$SECURE_NS.svc

say() { echo "==> $*" >&2; }
die() { echo "kind.sh: error: $*" >&2; exit 1; }

need() { # COMMAND HOW-TO-GET-IT
    command -v "$1" >/dev/null 2>&1 || die "$1 is not on PATH ($2)"
}

# kubectl against the kind cluster's context only, never the user's current one.
k() { kubectl --context "kind-$KIND_CLUSTER" "$@"; }

# Runs kcat in a throw-away pod with ARGS; stdin is passed on.
kcat_pod() { # NAME ARGS...
    local name="$1"
    shift
    k -n "$APP_NS" run "$name" --image="$KCAT_IMAGE" --restart=Never --rm -i --quiet \
        --pod-running-timeout=3m -- "$@"
}

# Runs a shell command in a throw-away kcat pod of SECURE_NS with the Secret
# of a KafkaUser mounted at /user (user.crt, user.key, ca.crt, password);
# stdin is passed on.
kcat_user_pod() { # NAME KAFKAUSER SHELL-COMMAND
    local overrides
    overrides="$(printf '{"spec":{"volumes":[{"name":"user","secret":{"secretName":"%s"}}],"containers":[{"name":"%s","image":"%s","stdin":true,"volumeMounts":[{"name":"user","mountPath":"/user","readOnly":true}]}]}}' \
        "$2" "$1" "$KCAT_IMAGE")"
    k -n "$SECURE_NS" run "$1" --image="$KCAT_IMAGE" --restart=Never --rm -i --quiet \
        --pod-running-timeout=3m --overrides="$overrides" --command -- sh -c "$3"
}

# Waits until every pod of the KafkaCluster exists and the cluster is Ready.
wait_ready() {
    say "waiting for KafkaCluster $CLUSTER to be Ready"
    k -n "$APP_NS" wait "kafkacluster/$CLUSTER" --for=condition=Ready --timeout=10m
    k -n "$APP_NS" get kafkacluster "$CLUSTER" -o wide
}

pod_uids() {
    k -n "$APP_NS" get pods -l "app.kubernetes.io/instance=$CLUSTER" \
        -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid}{"\n"}{end}' | sort
}

cmd_up() {
    need docker "https://docs.docker.com/engine/install/"
    need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
    need kubectl "https://kubernetes.io/docs/tasks/tools/"
    need helm "https://helm.sh/docs/intro/install/"

    if kind get clusters | grep -qx "$KIND_CLUSTER"; then
        say "kind cluster $KIND_CLUSTER exists; reusing it"
    else
        say "creating kind cluster $KIND_CLUSTER"
        kind create cluster --name "$KIND_CLUSTER" --wait 2m
    fi

    say "building $IMAGE (both binaries; the first build takes several minutes)"
    docker build -t "$IMAGE" "$ROOT"
    say "loading $IMAGE into the kind nodes"
    kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

    say "installing the operator with Helm"
    helm --kube-context "kind-$KIND_CLUSTER" upgrade --install "$RELEASE" "$ROOT/charts/strom-operator" \
        --namespace "$OPERATOR_NS" --create-namespace \
        --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --wait --timeout 5m
    k -n "$OPERATOR_NS" rollout status "deployment/$RELEASE" --timeout=3m

    say "applying examples/kind-cluster.yaml in namespace $APP_NS"
    k create namespace "$APP_NS" --dry-run=client -o yaml | k apply -f -
    k -n "$APP_NS" apply -f "$ROOT/examples/kind-cluster.yaml"
    wait_ready
}

cmd_check() {
    say "waiting for KafkaTopic $TOPIC"
    k -n "$APP_NS" wait "kafkatopic/$TOPIC" --for=condition=Ready --timeout=5m
    say "creating a second topic through a KafkaTopic"
    k -n "$APP_NS" apply -f - <<YAML
apiVersion: strom.dev/v1alpha1
kind: KafkaTopic
metadata: { name: kind-check }
spec: { clusterRef: $CLUSTER, partitions: 6, replicationFactor: 3, config: { retention.ms: "3600000" } }
YAML
    k -n "$APP_NS" wait kafkatopic/kind-check --for=condition=Ready --timeout=5m
    k -n "$APP_NS" get kafkatopics

    say "producing three records to $TOPIC with kcat"
    printf 'k1:hello\nk2:strom\nk3:on-kubernetes\n' |
        kcat_pod kcat-produce -b "$BOOTSTRAP" -t "$TOPIC" -P -K: -X acks=all
    consume "before the restart"

    say "rolling restart: annotating KafkaCluster $CLUSTER with strom.dev/restart"
    local before after deadline
    before="$(pod_uids)"
    k -n "$APP_NS" annotate kafkacluster "$CLUSTER" "strom.dev/restart=$(date +%s)" --overwrite
    deadline=$((SECONDS + 900))
    while :; do
        after="$(pod_uids)"
        # Done when no pod keeps its old UID and the operator reports the roll over.
        if [ -z "$(comm -12 <(echo "$before") <(echo "$after"))" ] &&
            [ -z "$(k -n "$APP_NS" get kafkacluster "$CLUSTER" -o jsonpath='{.status.rollingRestart}')" ]; then
            break
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "the rolling restart did not finish in 15 minutes: $(k -n "$APP_NS" get kafkacluster "$CLUSTER" -o jsonpath='{.status.rollingRestart.message}')"
        sleep 5
    done
    k -n "$APP_NS" get events --field-selector reason=RestartingBroker
    wait_ready
    consume "after the restart"
}

# Reads TOPIC from the beginning and checks the three records are there.
consume() { # WHEN
    say "consuming $TOPIC ($1)"
    local out
    out="$(kcat_pod kcat-consume -b "$BOOTSTRAP" -t "$TOPIC" -C -o beginning -e -q -f '%k=%s\n')"
    echo "$out"
    for record in k1=hello k2=strom k3=on-kubernetes; do
        grep -qx "$record" <<<"$out" || die "record $record missing from $TOPIC $1"
    done
}

# The secure example: a certificate user writes over mTLS (port 9096), a
# SCRAM user reads over TLS (port 9095) and may not write. Each kcat is
# configured from its KafkaUser's Secret alone; the listener certificate is
# checked against the Secret's ca.crt, host name included.
cmd_secure() {
    say "applying examples/secure-cluster.yaml in namespace $SECURE_NS"
    k create namespace "$SECURE_NS" --dry-run=client -o yaml | k apply -f -
    k -n "$SECURE_NS" apply -f "$ROOT/examples/secure-cluster.yaml"
    k -n "$SECURE_NS" wait kafkacluster/events --for=condition=Ready --timeout=10m
    k -n "$SECURE_NS" wait kafkatopic/orders kafkauser/orders-writer kafkauser/orders-reader \
        --for=condition=Ready --timeout=5m

    local tls_user="-X security.protocol=SSL -X ssl.ca.location=/user/ca.crt"
    tls_user+=" -X ssl.certificate.location=/user/user.crt -X ssl.key.location=/user/user.key"
    local scram_user="-X security.protocol=SASL_SSL -X ssl.ca.location=/user/ca.crt"
    scram_user+=" -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=orders-reader"
    # shellcheck disable=SC2016 # expanded by the pod's shell, from the mounted Secret
    scram_user+=' -X sasl.password="$(cat /user/password)"'

    say "orders-writer produces over mTLS with its certificate"
    printf 'order-1\norder-2\norder-3\n' |
        kcat_user_pod kcat-writer orders-writer "kcat -b $SECURE_BOOTSTRAP:9096 $tls_user -t orders -P -X acks=all"
    say "orders-reader consumes over SCRAM-SHA-512 and TLS"
    local out
    out="$(kcat_user_pod kcat-reader orders-reader \
        "kcat -b $SECURE_BOOTSTRAP:9095 $scram_user -t orders -C -o beginning -e -q")"
    echo "$out"
    for record in order-1 order-2 order-3; do
        grep -qx "$record" <<<"$out" || die "record $record missing from orders"
    done
    say "orders-reader may not write (TOPIC_AUTHORIZATION_FAILED)"
    out="$(echo refused | kcat_user_pod kcat-denied orders-reader \
        "kcat -b $SECURE_BOOTSTRAP:9095 $scram_user -t orders -P -X message.timeout.ms=15000" 2>&1)" || true
    echo "$out"
    grep -qi "authorization failed" <<<"$out" || die "the reader's write was not refused for authorization: $out"
}

cmd_down() {
    need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
    say "deleting kind cluster $KIND_CLUSTER"
    kind delete cluster --name "$KIND_CLUSTER"
}

cmd_all() {
    if [ "${STROM_KIND_KEEP:-0}" != 1 ]; then
        trap cmd_down EXIT
    fi
    cmd_up
    cmd_check
    cmd_secure
    say "all checks passed"
}

case "${1:-all}" in
    up) cmd_up ;;
    check) cmd_check ;;
    secure) cmd_secure ;;
    down) cmd_down ;;
    all) cmd_all ;;
    *) die "unknown command '$1' (up, check, secure, down, or nothing for all)" ;;
esac
