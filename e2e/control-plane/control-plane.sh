#!/usr/bin/env bash
# A real Kubernetes control plane for tests (in the spirit of controller-runtime's
# envtest): etcd + kube-apiserver + kube-controller-manager, built from Go modules
# with the machine's Go, and run as plain processes on 127.0.0.1. With
# STROM_CONTROL_PLANE_NODES=kwok it also runs kube-scheduler and kwok, which
# keeps simulated Nodes alive (what a kind cluster has, minus the containers).
#
#   control-plane.sh build [all | NAME...]  build what is missing into the cache
#                                           (default: kube-apiserver kube-controller-manager etcd;
#                                            all adds kube-scheduler kubectl helm kwok)
#   control-plane.sh env                    print KUBE_APISERVER=... ETCD=... lines (paths)
#   control-plane.sh bin-dir                print the cache's bin directories, one a line
#   control-plane.sh start DIR              start a plane whose state lives in DIR
#                                           (DIR/kubeconfig, DIR/*.log, DIR/pids, DIR/pki, DIR/etcd)
#   control-plane.sh stop DIR               stop it and remove DIR (kept if STROM_KEEP_CONTROL_PLANE=1)
#
# Environment:
#   STROM_CACHE                     cache root (default $HOME/.cache/strom)
#   STROM_CONTROL_PLANE_OWNER       a pid: when that process dies the plane stops itself
#                                   (set by operator/tests/common/control_plane.rs)
#   STROM_CONTROL_PLANE_TIMEOUT     seconds `start` waits for readiness (default 120)
#   STROM_KCM_CONTROLLERS           kube-controller-manager --controllers (default below)
#   STROM_CONTROL_PLANE_NODES=kwok  also run kube-scheduler (binds pods to nodes) and kwok
#                                   (keeps the Nodes annotated kwok.x-k8s.io/node=fake
#                                   Ready; pods are left to their kubelet stand-in)
#   STROM_KEEP_CONTROL_PLANE=1      `stop` keeps DIR (logs, etcd data) for a post-mortem
#
# See README.md beside this file.
set -euo pipefail

# --- pinned versions ---------------------------------------------------------
K8S_VERSION=v1.37.2   # newest Kubernetes k8s-openapi 0.29 supports
ETCD_VERSION=v3.7.3   # go.etcd.io/etcd/server/v3; go.mod says go 1.26.0
HELM_VERSION=v3.22.0  # helm.sh/helm/v3, newest served
KWOK_VERSION=v0.8.0   # sigs.k8s.io/kwok, newest served

# The controllers that run by default: enough for namespaces to be deleted, owner
# references to be honoured, service accounts (with their tokens and the
# kube-root-ca.crt ConfigMap) to appear, and StatefulSets to create their Pods
# and claims and report status, and a deleted claim to go once no pod uses it
# (pvc-protection: the API server's admission puts its finalizer on every
# claim). None of them needs a scheduler or nodes (the Pods stay Pending).
DEFAULT_KCM_CONTROLLERS=garbagecollector,namespace,serviceaccount,serviceaccount-token,root-ca-cert-publisher,statefulset,persistentvolume-binder,pvc-protection
# With nodes (kwok), node-lifecycle-controller too: it lifts the not-ready taint
# that the API server puts on every new Node once the Node reports Ready, as in
# any cluster; without it kube-scheduler places no pod. (Its taint-based
# eviction is a separate controller, not run here.)
KWOK_KCM_CONTROLLERS=node-lifecycle-controller

SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
CACHE="${STROM_CACHE:-$HOME/.cache/strom}"
K8S_BIN="$CACHE/k8s-$K8S_VERSION/bin"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION/bin"
HELM_BIN="$CACHE/helm-$HELM_VERSION/bin"
KWOK_BIN="$CACHE/kwok-$KWOK_VERSION/bin"

say() { echo "control-plane: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The path of one binary by its name.
bin_path() {
    case "$1" in
        kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "$K8S_BIN/$1" ;;
        etcd) echo "$ETCD_BIN/etcd" ;;
        helm) echo "$HELM_BIN/helm" ;;
        kwok) echo "$KWOK_BIN/kwok" ;;
        *) die "unknown binary '$1' (kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm kwok)" ;;
    esac
}

# ============================================================================
# build
# ============================================================================

# Go settings shared by every build: caches that outlive the throw-away modules,
# static binaries, and the machine's own toolchain (never a download).
go_env() {
    export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
    export GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0
    export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
    mkdir -p "$GOMODCACHE" "$GOCACHE"
}

# Put a built binary in place atomically (a rename inside the destination dir),
# so a concurrent `start` never runs a half-copied file.
install_bin() { # SRC DEST
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.tmp.$$"
    mv -f "$2.tmp.$$" "$2"
}

# Build the Kubernetes commands named in "$@" (kube-apiserver, ...) into $K8S_BIN.
#
# `go install k8s.io/kubernetes/cmd/X@vY` is refused because k8s.io/kubernetes'
# go.mod replaces its staging modules (k8s.io/api, k8s.io/client-go, ...) with
# ./staging/src/... paths at v0.0.0. So a throw-away module requires
# k8s.io/kubernetes and replaces each of those staging modules, the list read from
# k8s.io/kubernetes' own go.mod, with its published v0.<minor>.<patch> release.
build_kubernetes() {
    local gomod staging tmp cmd pkgs=() ldflags pkg
    say "resolving k8s.io/kubernetes@$K8S_VERSION"
    gomod="$(cd / && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
    staging="v0.${K8S_VERSION#v1.}" # v1.37.2 -> v0.37.2
    tmp="$BUILD_TMP/kubernetes"
    mkdir -p "$tmp"
    {
        echo "module strom.invalid/k8s-build"
        echo
        sed -n -e 's/^go \(.*\)/go \1/p' -e 's/^godebug \(.*\)/godebug \1/p' "$gomod"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        # "	k8s.io/api => ./staging/src/k8s.io/api"  ->  "	k8s.io/api => k8s.io/api v0.37.2"
        sed -n "s#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\t\1 => \1 $staging#p" "$gomod"
        echo ")"
    } >"$tmp/go.mod"
    say "$(grep -c '=>' "$tmp/go.mod") staging modules replaced with their $staging releases"

    # Version stamps, as Kubernetes' own hack/lib/version.sh sets them.
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1"
        ldflags+=" -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
        ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    for cmd in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done

    say "building ${*} (Kubernetes $K8S_VERSION; several minutes per binary on 2 cores the first time)"
    mkdir -p "$tmp/out"
    (
        cd "$tmp"
        # -mod=mod lets the go command complete go.mod/go.sum from the module graph.
        go build -mod=mod -trimpath -tags=notest,grpcnotrace -ldflags="$ldflags" -o "$tmp/out/" "${pkgs[@]}"
    )
    for cmd in "$@"; do install_bin "$tmp/out/$cmd" "$K8S_BIN/$cmd"; done
}

# Build etcd's server into $ETCD_BIN. go.etcd.io/etcd/server/v3's go.mod replaces
# its sibling modules with ../ paths, so it needs a throw-away module too; the
# siblings are published at the same version.
build_etcd() {
    local tmp v="$ETCD_VERSION"
    tmp="$BUILD_TMP/etcd"
    mkdir -p "$tmp"
    cat >"$tmp/go.mod" <<EOF
module strom.invalid/etcd-build

go 1.26.0

require go.etcd.io/etcd/server/v3 $v

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $v
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $v
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $v
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $v
)
EOF
    say "building etcd $v"
    (cd "$tmp" && go build -mod=mod -trimpath -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
    install_bin "$tmp/etcd" "$ETCD_BIN/etcd"
}

# helm and kwok have no replace directives: a plain `go install pkg@version` works.
build_go_install() { # NAME PKG VERSION BINDIR [LDFLAGS...]
    local name="$1" pkg="$2" version="$3" dir="$4" tmp
    shift 4
    tmp="$BUILD_TMP/$name"
    mkdir -p "$tmp"
    say "building $name $version"
    (cd "$tmp" && GOBIN="$tmp" go install -trimpath -ldflags="-s -w $*" "$pkg@$version")
    install_bin "$tmp/$name" "$dir/$name"
}

# The names among "$@" whose binary is not in the cache yet.
missing() {
    local name
    for name in "$@"; do [ -x "$(bin_path "$name")" ] || echo "$name"; done
}

cmd_build() {
    local want=() todo=() k8s=() name started minor
    case "${1:-}" in
        "") want=(kube-apiserver kube-controller-manager etcd) ;;
        all) want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm kwok) ;;
        *) want=("$@") ;;
    esac
    for name in "${want[@]}"; do bin_path "$name" >/dev/null; done # unknown names fail here
    mapfile -t todo < <(missing "${want[@]}")
    if ((${#todo[@]} == 0)); then
        say "binaries ready: ${want[*]}"
        return
    fi

    # One build at a time per cache (parallel test binaries may all ask); once we
    # hold the lock, another build may have made some of them already.
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.control-plane-build.lock"
    if ! flock -n 9; then
        say "waiting for another build to finish (lock: $CACHE/.control-plane-build.lock)"
        flock 9
    fi
    mapfile -t todo < <(missing "${want[@]}")

    started=$SECONDS
    go_env
    # Throw-away modules and build outputs live here until the script exits.
    BUILD_TMP="$(mktemp -d "${TMPDIR:-/tmp}/strom-control-plane-build.XXXXXX")"
    trap 'rm -rf "$BUILD_TMP"' EXIT
    for name in "${todo[@]}"; do
        case "$name" in kube-* | kubectl) k8s+=("$name") ;; esac
    done
    if ((${#k8s[@]})); then build_kubernetes "${k8s[@]}"; fi
    minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
    for name in "${todo[@]}"; do
        case "$name" in
            etcd) build_etcd ;;
            helm)
                build_go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$HELM_BIN" \
                    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
                    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1" \
                    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
                    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" \
                    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
                ;;
            kwok)
                build_go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "$KWOK_BIN" \
                    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
                ;;
        esac
    done
    mapfile -t todo < <(missing "${want[@]}")
    ((${#todo[@]} == 0)) || die "not built: ${todo[*]}"
    say "built in $((SECONDS - started))s; binaries ready: ${want[*]}"
}

cmd_env() {
    local name var
    for name in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm kwok; do
        var="$(echo "$name" | tr 'a-z-' 'A-Z_')"
        echo "$var=$(bin_path "$name")"
    done
}

cmd_bin_dir() { printf '%s\n' "$K8S_BIN" "$ETCD_BIN" "$HELM_BIN" "$KWOK_BIN"; }

# ============================================================================
# start / stop
# ============================================================================

# Sets FREE_PORT to a TCP port on 127.0.0.1 that nothing listens on now (checked
# with a connect), not among those already handed out (TAKEN_PORTS). It is drawn from 15000-31999,
# below Linux's ephemeral range (32768-60999), so outgoing connections and
# `bind(0)` listeners do not take it meanwhile; a race with another process is
# still possible, and `start` retries on "address already in use".
TAKEN_PORTS=" " FREE_PORT=
free_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((15000 + RANDOM % 17000))
        [[ "$TAKEN_PORTS" == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            TAKEN_PORTS+="$port "
            FREE_PORT=$port
            return 0
        fi
    done
    say "no free port found"
    return 1
}

# The start time of a process (field 22 of /proc/PID/stat), to tell it from a
# later process that reuses its pid.
proc_start_time() {
    local stat rest
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    rest="${stat##*) }" # fields from 3 (state) on; the command name may hold spaces
    # shellcheck disable=SC2086
    set -- $rest
    echo "${20}"
}

# Certificates and keys, all made with openssl into DIR/pki: a CA, the apiserver's
# serving certificate (127.0.0.1, localhost and the in-cluster names), an admin
# client certificate in group system:masters, and the service-account signing key.
make_pki() {
    local pki="$1/pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
            -subj "/CN=strom-test-ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
        # sign NAME SUBJECT EXTENSIONS
        sign() {
            openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            printf '%b\n' "$3" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
                -out "$1.crt" -days 3650 -sha256 -extfile "$1.ext" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        sign apiserver "/CN=kube-apiserver" \
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
        sign admin "/O=system:masters/CN=strom-admin" \
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    )
}

# DIR/kubeconfig: the admin user, certificates embedded so it works from anywhere.
write_kubeconfig() { # DIR PORT
    local pki="$1/pki" b64="base64 -w0"
    cat >"$1/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: strom-test
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: strom-admin
  user:
    client-certificate-data: $($b64 <"$pki/admin.crt")
    client-key-data: $($b64 <"$pki/admin.key")
contexts:
- name: strom-test
  context:
    cluster: strom-test
    user: strom-admin
    namespace: default
current-context: strom-test
EOF
    chmod 600 "$1/kubeconfig"
}

# Start NAME as its own session and process group (setsid), detached from the
# caller's terminal and pipes, and record "NAME PID" in DIR/pids.
spawn() { # DIR NAME COMMAND...
    local dir="$1" name="$2"
    shift 2
    setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 &
    echo "$name $!" >>"$dir/pids"
}

# Is the process recorded for NAME still running?
alive() { # DIR NAME
    local pid
    pid="$(awk -v n="$2" '$1 == n { print $2 }' "$1/pids" | tail -n1)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

curl_api() { # DIR PORT PATH [CURL ARGS...]
    local pki="$1/pki" port="$2" path="$3"
    shift 3
    curl -sS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "$@" "https://127.0.0.1:$port$path"
}

apiserver_ready() { # DIR PORT
    [ "$(curl_api "$1" "$2" /readyz)" = ok ]
}

# Wait until COMMAND... succeeds, failing early when component NAME has died.
wait_for() { # DIR NAME WHAT COMMAND...
    local dir="$1" name="$2" what="$3" deadline=$((SECONDS + ${STROM_CONTROL_PLANE_TIMEOUT:-120}))
    shift 3
    until "$@" >/dev/null 2>&1; do
        alive "$dir" "$name" || { say "$name exited while waiting for $what"; return 1; }
        ((SECONDS < deadline)) || { say "timed out waiting for $what"; return 1; }
        sleep 0.2
    done
}

# kube-controller-manager's --controllers: STROM_KCM_CONTROLLERS, or the defaults
# (plus node-lifecycle-controller with kwok).
kcm_controllers() {
    if [ -n "${STROM_KCM_CONTROLLERS:-}" ]; then
        echo "$STROM_KCM_CONTROLLERS"
    elif [ "${STROM_CONTROL_PLANE_NODES:-}" = kwok ]; then
        echo "$DEFAULT_KCM_CONTROLLERS,$KWOK_KCM_CONTROLLERS"
    else
        echo "$DEFAULT_KCM_CONTROLLERS"
    fi
}

# One attempt to bring the plane up; returns non-zero (components left running
# for `stop` to collect) on failure.
start_once() {
    local dir="$1" etcd_port peer_port api_port kcm_port scheduler_port kwok_port pki="$1/pki"
    # (set -e does not apply in a function called from `if`: hence the `|| return 1`s.)
    TAKEN_PORTS=" "
    free_port || return 1; etcd_port=$FREE_PORT
    free_port || return 1; peer_port=$FREE_PORT
    free_port || return 1; api_port=$FREE_PORT
    free_port || return 1; kcm_port=$FREE_PORT
    free_port || return 1; scheduler_port=$FREE_PORT
    free_port || return 1; kwok_port=$FREE_PORT
    rm -rf "$dir/etcd"
    echo "ETCD=http://127.0.0.1:$etcd_port" >"$dir/endpoints"
    echo "APISERVER=https://127.0.0.1:$api_port" >>"$dir/endpoints"

    # etcd: one member, no fsync (test data), client and peer ports on loopback.
    spawn "$dir" etcd "$ETCD_BIN/etcd" \
        --name=default --data-dir="$dir/etcd" --log-level=warn --unsafe-no-fsync \
        --listen-client-urls="http://127.0.0.1:$etcd_port" \
        --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-cluster="default=http://127.0.0.1:$peer_port"
    wait_for "$dir" etcd "etcd" curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health" || return 1

    # kube-apiserver: TLS only, client certificates and service-account tokens, RBAC.
    # --endpoint-reconciler-type=none: the `kubernetes` Service gets no Endpoints,
    # since a loopback address is not a valid endpoint.
    spawn "$dir" kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        --service-cluster-ip-range=10.0.0.0/24 \
        --authorization-mode=RBAC \
        --allow-privileged=true \
        --endpoint-reconciler-type=none \
        --profiling=false
    write_kubeconfig "$dir" "$api_port" || return 1
    wait_for "$dir" kube-apiserver "kube-apiserver /readyz" apiserver_ready "$dir" "$api_port" || return 1

    # kube-controller-manager: the admin kubeconfig, no leader election.
    spawn "$dir" kube-controller-manager "$K8S_BIN/kube-controller-manager" \
        --kubeconfig="$dir/kubeconfig" \
        --authentication-kubeconfig="$dir/kubeconfig" \
        --authorization-kubeconfig="$dir/kubeconfig" \
        --authentication-skip-lookup \
        --bind-address=127.0.0.1 --secure-port="$kcm_port" \
        --leader-elect=false \
        --controllers="$(kcm_controllers)" \
        --service-account-private-key-file="$pki/sa.key" \
        --root-ca-file="$pki/ca.crt" \
        --use-service-account-credentials=false \
        --profiling=false
    echo "KUBE_CONTROLLER_MANAGER=https://127.0.0.1:$kcm_port" >>"$dir/endpoints"
    wait_for "$dir" kube-controller-manager "kube-controller-manager /healthz" \
        curl -sfk --max-time 2 "https://127.0.0.1:$kcm_port/healthz" || return 1

    if [ "${STROM_CONTROL_PLANE_NODES:-}" = kwok ]; then
        start_nodes "$dir" "$scheduler_port" "$kwok_port" || return 1
    fi

    # The default namespace (made by the apiserver) and its default service account
    # (made by the controller manager's serviceaccount controller, when it runs).
    wait_for "$dir" kube-apiserver "namespace default" \
        curl_api "$dir" "$api_port" /api/v1/namespaces/default -f || return 1
    if [[ ",$(kcm_controllers)," =~ ,(serviceaccount|\*), ]]; then
        wait_for "$dir" kube-controller-manager "service account default/default" \
            curl_api "$dir" "$api_port" /api/v1/namespaces/default/serviceaccounts/default -f || return 1
    fi
    say "ready: KUBECONFIG=$dir/kubeconfig (https://127.0.0.1:$api_port)"
}

# kube-scheduler and kwok: what schedules pods and keeps nodes alive in a real cluster.
start_nodes() { # DIR SCHEDULER_PORT KWOK_PORT
    local dir="$1" scheduler_port="$2" kwok_port="$3"
    # kube-scheduler: the default profile (topology spreading, volume binding, ...).
    spawn "$dir" kube-scheduler "$K8S_BIN/kube-scheduler" \
        --kubeconfig="$dir/kubeconfig" \
        --authentication-kubeconfig="$dir/kubeconfig" \
        --authorization-kubeconfig="$dir/kubeconfig" \
        --authentication-skip-lookup \
        --bind-address=127.0.0.1 --secure-port="$scheduler_port" \
        --leader-elect=false \
        --profiling=false
    echo "KUBE_SCHEDULER=https://127.0.0.1:$scheduler_port" >>"$dir/endpoints"
    wait_for "$dir" kube-scheduler "kube-scheduler /healthz" \
        curl -sfk --max-time 2 "https://127.0.0.1:$scheduler_port/healthz" || return 1

    # kwok: the Nodes annotated kwok.x-k8s.io/node=fake get their status and
    # heartbeats from kwok's own node stages (read from its module source). No
    # pod stage: the pods' status is their kubelet stand-in's (strom-pod-runner).
    kwok_stages >"$dir/kwok-stages.yaml" || return 1
    spawn "$dir" kwok "$KWOK_BIN/kwok" \
        --kubeconfig="$dir/kubeconfig" \
        --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --config="$dir/kwok-stages.yaml" \
        --server-address="127.0.0.1:$kwok_port"
    echo "KWOK=http://127.0.0.1:$kwok_port" >>"$dir/endpoints"
    wait_for "$dir" kwok "kwok /healthz" curl -sf --max-time 2 "http://127.0.0.1:$kwok_port/healthz" || return 1
}

# kwok's node stages (initialise a Node as Ready, renew its heartbeat), as kwok
# publishes them in its module; downloaded into the Go module cache if missing.
kwok_stages() {
    local src
    go_env
    src="$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage/node"
    if [ ! -d "$src" ]; then
        src="$(cd "${TMPDIR:-/tmp}" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
            sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/kustomize/stage/node" || return 1
    fi
    if [ ! -f "$src/fast/node-initialize.yaml" ] || [ ! -f "$src/heartbeat/node-heartbeat.yaml" ]; then
        say "kwok's node stages are not in $src"
        return 1
    fi
    cat "$src/fast/node-initialize.yaml"
    echo "---"
    cat "$src/heartbeat/node-heartbeat.yaml"
}

cmd_start() {
    local dir="${1:?usage: control-plane.sh start DIR}" attempt name components=(etcd kube-apiserver kube-controller-manager)
    if [ "${STROM_CONTROL_PLANE_NODES:-}" = kwok ]; then
        components+=(kube-scheduler kwok)
    elif [ -n "${STROM_CONTROL_PLANE_NODES:-}" ]; then
        die "STROM_CONTROL_PLANE_NODES=${STROM_CONTROL_PLANE_NODES}: the only value is kwok (or leave it unset)"
    fi
    for name in "${components[@]}"; do
        [ -x "$(bin_path "$name")" ] || die "$name is not built; run: $SCRIPT build"
    done
    command -v curl >/dev/null || die "curl is needed"
    command -v openssl >/dev/null || die "openssl is needed"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ ! -e "$dir/pids" ] || die "$dir already holds a control plane (stop it first)"
    touch "$dir/.strom-control-plane" "$dir/pids"
    echo "$$" >"$dir/start.pid" # so that `stop` can end a start still in progress

    # If the caller named an owner process, a watchdog stops the plane once that
    # process is gone, even if it was killed before it could call `stop`.
    if [ -n "${STROM_CONTROL_PLANE_OWNER:-}" ]; then
        local owner_start
        owner_start="$(proc_start_time "$STROM_CONTROL_PLANE_OWNER")" || die "owner $STROM_CONTROL_PLANE_OWNER is not running"
        setsid bash "$SCRIPT" __watchdog "$dir" "$STROM_CONTROL_PLANE_OWNER" "$owner_start" \
            </dev/null >>"$dir/watchdog.log" 2>&1 &
        echo "$!" >"$dir/watchdog.pid"
    fi
    # A failed or interrupted start takes down what it started.
    trap 'say "start failed; logs in $dir"; stop_components "$dir"; exit 1' ERR INT TERM

    make_pki "$dir"
    for attempt in 1 2 3; do
        if start_once "$dir"; then
            trap - ERR INT TERM
            rm -f "$dir/start.pid"
            return 0
        fi
        if ((attempt < 3)) && grep -qs "address already in use" "$dir"/*.log; then
            say "a port was taken (attempt $attempt); retrying with other ports"
            stop_components "$dir"
            for name in "${components[@]}"; do
                if [ -f "$dir/$name.log" ]; then mv -f "$dir/$name.log" "$dir/$name.log.$attempt"; fi
            done
            continue
        fi
        break
    done
    trap - ERR INT TERM
    say "start failed; logs in $dir"
    tail_logs "$dir" >&2 # before stopping: what follows is only noise about etcd being gone
    stop_components "$dir"
    return 1
}

tail_logs() {
    local f
    for f in "$1"/*.log; do
        [ -f "$f" ] || continue
        echo "----- $(basename "$f") (last 30 lines) -----"
        tail -n 30 "$f"
    done
}

# Does process PID belong to the plane in DIR? Each of its processes names DIR
# (or a path in it) on its command line; a pid reused by anything else does not.
ours() { # DIR PID
    local cmdline
    cmdline=" $( { tr '\0' ' ' <"/proc/$2/cmdline"; } 2>/dev/null) " || return 1
    [[ "$cmdline" == *" $1 "* || "$cmdline" == *"$1/"* ]]
}

# Stop the process groups listed in DIR/pids: SIGTERM to all, newest first (the
# controller manager, the apiserver, etcd), then SIGKILL to whatever still runs
# after 2 s; the state is throw-away, so a graceful shutdown (6-7 s) buys nothing.
# A pid that is no longer ours is left alone.
stop_components() {
    local dir="$1" name pid pids=() deadline
    [ -f "$dir/pids" ] || return 0
    while read -r name pid; do
        if [ -n "$pid" ] && ours "$dir" "$pid"; then pids=("$pid" "${pids[@]}"); fi
    done <"$dir/pids"
    : >"$dir/pids"
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 2))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}

cmd_stop() {
    local dir="${1:?usage: control-plane.sh stop DIR}" wpid spid
    [ -d "$dir" ] || return 0
    dir="$(cd "$dir" && pwd)"
    [ -e "$dir/.strom-control-plane" ] || die "$dir is not a control plane directory"
    # First a `start` still running (it would go on spawning components) and the
    # watchdog (unless we are it), so that neither races this stop.
    if [ -f "$dir/start.pid" ]; then
        spid="$(cat "$dir/start.pid")"
        if ours "$dir" "$spid"; then kill -KILL "$spid" 2>/dev/null || true; fi
    fi
    if [ -f "$dir/watchdog.pid" ]; then
        wpid="$(cat "$dir/watchdog.pid")"
        if [ "$wpid" != "$$" ] && ours "$dir" "$wpid"; then
            kill -TERM -- "-$wpid" 2>/dev/null || true
        fi
    fi
    stop_components "$dir"
    if [ "${STROM_KEEP_CONTROL_PLANE:-}" = 1 ]; then
        say "stopped; kept $dir"
    else
        rm -rf "$dir"
    fi
}

# Internal: poll the owner every second; when it is gone, stop the plane.
cmd_watchdog() { # DIR OWNER_PID OWNER_START_TIME
    local dir="$1" owner="$2" owner_start="$3"
    while [ -e "$dir/pids" ] && [ "$(proc_start_time "$owner" || true)" = "$owner_start" ]; do
        sleep 1
    done
    if [ -e "$dir/pids" ]; then
        say "owner $owner is gone; stopping $dir"
        cmd_stop "$dir"
    fi
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    env) cmd_env ;;
    bin-dir) cmd_bin_dir ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    __watchdog) shift; cmd_watchdog "$@" ;;
    *)
        sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
