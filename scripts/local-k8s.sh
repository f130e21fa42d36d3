#!/usr/bin/env bash
# A local Kubernetes playground without kind or Docker: the control plane of
# e2e/control-plane (etcd, kube-apiserver, kube-controller-manager with the
# Deployment, ReplicaSet and pvc/pv-protection controllers) as processes, the
# Helm chart installed, the operator as a local process authenticated as the
# chart's ServiceAccount, and strom-pod-runner playing the kubelet of the
# broker pods (each pod a strom-broker process on its own 127.X.Y.Z address).
# Any number of KafkaClusters work in the namespace, without restarting
# anything.
#
#   scripts/local-k8s.sh up [--dir DIR] [--namespace NS]   start everything, print the next commands
#   scripts/local-k8s.sh status [--dir DIR]                what runs, the clusters and their pods
#   scripts/local-k8s.sh down [--dir DIR]                  stop everything (brokers included), remove DIR
#
# DIR (default $STROM_CACHE/local-k8s, STROM_CACHE defaulting to
# $HOME/.cache/strom) holds the kubeconfig, logs and the brokers' data;
# `down` removes it. NS (default `default`) is where the pod runner runs
# KafkaClusters' brokers. The Kubernetes binaries come from the cache that
# `.ci/run` (or `bash e2e/control-plane/control-plane.sh build all`) fills;
# strom-broker, strom-operator and strom-pod-runner from target/debug (or
# STROM_BIN_DIR), built with
# `cargo build -p strom-broker -p strom-operator -p strom-pod-runner`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONTROL_PLANE="$ROOT/e2e/control-plane/control-plane.sh"
CHART="$ROOT/charts/strom-operator"
BIN_DIR="${STROM_BIN_DIR:-$ROOT/target/debug}"
RELEASE=strom-operator
OPERATOR_NS=strom-system
# The pod runner gives each StatefulSet its own /16 of these.
SUBNET_POOL=127.100-127.199
# What the chart leaves out here: its Deployment runs no pod (no container
# runtime), the operator runs as a local process instead.
KCM_CONTROLLERS=garbagecollector,namespace,serviceaccount,serviceaccount-token,root-ca-cert-publisher,statefulset,persistentvolume-binder,deployment,replicaset,pvc-protection,pv-protection

say() { echo "local-k8s: $*" >&2; }
die() { say "error: $*"; exit 1; }

DIR="${STROM_CACHE:-$HOME/.cache/strom}/local-k8s"
NAMESPACE=default
parse_options() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) [ $# -ge 2 ] || die "--dir needs a directory"; DIR="$2"; shift 2 ;;
            --dir=*) DIR="${1#--dir=}"; shift ;;
            --namespace) [ $# -ge 2 ] || die "--namespace needs a name"; NAMESPACE="$2"; shift 2 ;;
            --namespace=*) NAMESPACE="${1#--namespace=}"; shift ;;
            *) die "unknown option '$1' (allowed: --dir DIR, --namespace NS)" ;;
        esac
    done
    [ -n "$DIR" ] || die "--dir is empty"
    [[ "$NAMESPACE" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
        die "--namespace '$NAMESPACE' is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)"
}

# KUBECTL and HELM from the control plane's cache; dies naming the fix.
find_tools() {
    local line missing=()
    while IFS= read -r line; do
        case "$line" in
            KUBECTL=*) KUBECTL="${line#KUBECTL=}" ;;
            HELM=*) HELM="${line#HELM=}" ;;
            *) ;;
        esac
        [ -x "${line#*=}" ] || missing+=("${line%%=*}")
    done < <(bash "$CONTROL_PLANE" env | grep -v '^KWOK=\|^KUBE_SCHEDULER=')
    [ ${#missing[@]} -eq 0 ] ||
        die "not built: ${missing[*]}; run .ci/run, or: bash e2e/control-plane/control-plane.sh build all"
    local bin
    for bin in strom-broker strom-operator strom-pod-runner; do
        [ -x "$BIN_DIR/$bin" ] ||
            die "$BIN_DIR/$bin is missing; run: cargo build -p strom-broker -p strom-operator -p strom-pod-runner"
    done
}

# A TCP port on 127.0.0.1 nothing listens on now (15000-31999, below the
# ephemeral range).
free_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((15000 + RANDOM % 17000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# The start time of process $1 (field 22 of /proc/PID/stat), empty if gone.
start_time() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    # shellcheck disable=SC2086 # split on purpose
    set -- $stat
    echo "${20}"
}

# Whether the process recorded in DIR/NAME.pid ("PID START_TIME") still runs.
running() { # NAME
    local pid started
    read -r pid started 2>/dev/null <"$DIR/$1.pid" || return 1
    [ -n "$pid" ] && [ "$(start_time "$pid" || true)" = "$started" ]
}

# The playground's own processes still running: brokers, the runner, the
# operator and the plane's components whose command line names DIR
# (matched as a plain string; other programs that mention DIR, an editor or
# a `tail -f` of a log, are not ours and are left alone).
leftovers() {
    local proc comm cmdline
    for proc in /proc/[0-9]*; do
        comm="$(cat "$proc/comm" 2>/dev/null || true)"
        case "$comm" in
            strom-broker | strom-pod-runne* | strom-operator | etcd | kube-apiserver | kube-controller* | kube-scheduler) ;;
            *) continue ;;
        esac
        cmdline="$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null || true)"
        [[ "$cmdline" == *"$DIR"* ]] && echo "${proc#/proc/}"
    done
    return 0
}

kube() { "$KUBECTL" --kubeconfig "$DIR/kubeconfig" "$@"; }

# Starts "$@" detached in its own session, output to DIR/NAME.log, "PID
# START_TIME" in DIR/NAME.pid.
spawn() { # NAME COMMAND...
    local name="$1" pid
    shift
    setsid "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
    pid=$!
    echo "$pid $(start_time "$pid")" >"$DIR/$name.pid"
}

# A kubeconfig that authenticates with a token of the chart's ServiceAccount,
# so that every call of the operator is checked against the chart's RBAC.
write_operator_kubeconfig() {
    local token server ca
    token="$(kube create token "$RELEASE" -n "$OPERATOR_NS" --duration=720h)"
    server="$(kube config view --raw -o jsonpath='{.clusters[0].cluster.server}')"
    ca="$(kube config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
    umask 077
    cat >"$DIR/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local-k8s
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: $RELEASE
  user:
    token: $token
contexts:
- name: operator
  context:
    cluster: local-k8s
    user: $RELEASE
    namespace: $OPERATOR_NS
current-context: operator
EOF
}

wait_until() { # WHAT SECONDS COMMAND...
    local what="$1" deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "no $what within ${2}s; logs in $DIR (stop with: $0 down --dir $DIR)"
        sleep 0.5
    done
}

cmd_up() {
    parse_options "$@"
    find_tools
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    [ ! -e "$DIR/plane" ] || die "$DIR already holds a playground; run: $0 down --dir $DIR"
    echo "$NAMESPACE" >"$DIR/namespace"
    trap 'say "up failed; logs in $DIR (stop with: $0 down --dir $DIR)"' ERR

    say "starting the control plane in $DIR/plane"
    STROM_KCM_CONTROLLERS="$KCM_CONTROLLERS" bash "$CONTROL_PLANE" start "$DIR/plane"
    ln -sf plane/kubeconfig "$DIR/kubeconfig"

    say "helm install $RELEASE (namespace $OPERATOR_NS)"
    # replicaCount=0: the chart's Deployment, ServiceAccount and RBAC, without a
    # pod (there is no container runtime); the operator runs below instead.
    "$HELM" --kubeconfig "$DIR/kubeconfig" install "$RELEASE" "$CHART" --namespace "$OPERATOR_NS" \
        --create-namespace --set replicaCount=0 >"$DIR/helm-install.txt"
    [ "$NAMESPACE" = default ] || kube get namespace "$NAMESPACE" >/dev/null 2>&1 || kube create namespace "$NAMESPACE" >/dev/null

    write_operator_kubeconfig
    local port
    port="$(free_port)"
    echo "$port" >"$DIR/operator.port"
    say "starting the operator as ServiceAccount $OPERATOR_NS/$RELEASE (http 127.0.0.1:$port)"
    KUBECONFIG="$DIR/operator.kubeconfig" POD_NAMESPACE="$OPERATOR_NS" POD_NAME=local-k8s-operator \
        spawn operator "$BIN_DIR/strom-operator" --http-listen "127.0.0.1:$port" \
        --lease-namespace "$OPERATOR_NS" --admin-via-pod-ip

    say "starting the pod runner (namespace $NAMESPACE, subnets $SUBNET_POOL)"
    spawn pod-runner "$BIN_DIR/strom-pod-runner" --kubeconfig "$DIR/kubeconfig" --namespace "$NAMESPACE" \
        --selector app.kubernetes.io/name=strom,app.kubernetes.io/component=broker \
        --subnet-pool "$SUBNET_POOL" --node-name local-k8s --dir "$DIR/runner" \
        --broker-bin "$BIN_DIR/strom-broker"

    wait_until "the operator's /readyz" 60 curl -sf --max-time 2 "http://127.0.0.1:$port/readyz"
    wait_until "the KafkaCluster CRD" 60 kube get crd kafkaclusters.strom.dev
    wait_until "node local-k8s" 60 kube get node local-k8s
    trap - ERR
    cat <<EOF

The playground runs (state, logs and kubeconfig in $DIR).

  export KUBECONFIG=$DIR/kubeconfig
  export PATH=$(dirname "$KUBECTL"):$(dirname "$HELM"):\$PATH   # kubectl, helm
  kubectl -n $OPERATOR_NS rollout status deployment/$RELEASE
  kubectl apply -n $NAMESPACE -f examples/kind-cluster.yaml
  kubectl -n $NAMESPACE wait kafkacluster/demo --for=condition=Ready --timeout=5m
  kubectl -n $NAMESPACE get kafkaclusters,kafkatopics,pods -o wide

Clients reach the brokers at their pods' addresses (the IP column):
  kcat -b \$(kubectl -n $NAMESPACE get pod demo-0 -o jsonpath='{.status.podIP}'):9092 -L

Operator log: $DIR/operator.log; brokers' logs: $DIR/runner/logs/
Stop everything: $0 down$( [ "$DIR" = "${STROM_CACHE:-$HOME/.cache/strom}/local-k8s" ] || echo " --dir $DIR")
EOF
}

# Stops process NAME (DIR/NAME.pid) with SIGTERM, SIGKILL after SECONDS.
stop_process() { # NAME SECONDS
    local pid deadline
    if running "$1"; then
        read -r pid _ <"$DIR/$1.pid"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + $2))
        while running "$1" && ((SECONDS < deadline)); do sleep 0.2; done
        if running "$1"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$DIR/$1.pid"
}

cmd_down() {
    parse_options "$@"
    [ -d "$DIR" ] || { say "nothing to stop in $DIR"; return 0; }
    DIR="$(cd "$DIR" && pwd)"
    [ -e "$DIR/plane" ] || [ -e "$DIR/operator.pid" ] || [ -e "$DIR/pod-runner.pid" ] ||
        die "$DIR is not a playground directory"
    # The runner kills its brokers on SIGTERM; the brokers of a runner that
    # was SIGKILLed name DIR/runner on their command line.
    stop_process pod-runner 20
    stop_process operator 10
    local pid left
    for pid in $(leftovers); do
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = strom-broker ] &&
            [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)" == *"$DIR/runner"* ]]; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [ -e "$DIR/plane" ]; then bash "$CONTROL_PLANE" stop "$DIR/plane"; fi
    left="$(leftovers | tr '\n' ' ')"
    [ -z "$left" ] || die "still running after down (pids $left); $DIR kept"
    rm -rf "$DIR"
    say "stopped; removed $DIR"
}

cmd_status() {
    parse_options "$@"
    [ -d "$DIR" ] || { say "no playground in $DIR"; return 1; }
    DIR="$(cd "$DIR" && pwd)"
    find_tools
    local name
    for name in operator pod-runner; do
        if running "$name"; then echo "$name: running (pid $(cut -d' ' -f1 "$DIR/$name.pid"))"; else echo "$name: not running"; fi
    done
    NAMESPACE="$(cat "$DIR/namespace" 2>/dev/null || echo default)"
    echo "export KUBECONFIG=$DIR/kubeconfig"
    kube get kafkaclusters,kafkatopics,pods -n "$NAMESPACE" -o wide
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    status) shift; cmd_status "$@" ;;
    *)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
