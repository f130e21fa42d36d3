#!/usr/bin/env bash
# Runs a 3-broker Strom cluster on loopback, every broker a controller voter
# (combined mode), for trying replication and failover by hand.
#
#   scripts/local-cluster.sh [start] [DIR]   build, start, wait until ready, stay in the
#                                            foreground; Ctrl-C stops every broker
#   scripts/local-cluster.sh stop [DIR]      stop brokers started from another shell
#   scripts/local-cluster.sh status [DIR]    which brokers run, and their /readyz
#   scripts/local-cluster.sh restart I [DIR] restart broker I (SIGTERM if it runs, then start
#                                            it again on its ports and data dir)
#
# DIR (default ./strom-cluster) holds broker-<i>/ (data), broker-<i>.log and
# broker-<i>.pid. Broker i listens on 127.0.0.1 ports 19092+100*i (Kafka),
# 19093+100*i (internal gRPC: quorum, replication, admin) and 19094+100*i
# (HTTP: /metrics, /healthz, /readyz).
#
# The internal plane runs mutual TLS: on first start, `strom-broker certs`
# writes a CA and a certificate per broker (and one for the operator, to call
# the Admin API as `strom://operator`) to DIR/certs/; they are kept across
# restarts (delete DIR/certs to get new ones).
#
# Topics get 3 replicas and min.insync.replicas=2 unless told otherwise.
# Environment: STROM_BIN — a strom-broker binary to run instead of building
# one with `cargo build --release -p strom-broker`; STROM_CLUSTER_ARGS — extra
# flags for every broker, later ones win (e.g. "--set num.partitions=6").
set -euo pipefail

BROKERS=3
STOP_TIMEOUT=60
READY_TIMEOUT=120

usage() {
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

command="start"
case "${1:-}" in
  start | stop | status) command="$1"; shift ;;
  restart)
    command="restart"
    shift
    [[ "${1:-}" =~ ^[0-9]+$ ]] || usage
    target_broker="$1"
    shift
    ;;
  -h | --help) usage ;;
  *)
    # A mistyped command must not silently become a new cluster directory.
    if [[ $# -gt 0 && "$1" != */* && ! -d "$1" ]]; then
      echo "unknown command \`$1'; commands are start, stop, status, restart (a new DIR needs a /, e.g. ./$1)" >&2
      exit 2
    fi
    ;;
esac
[[ $# -le 1 ]] || usage
dir="${1:-./strom-cluster}"

kafka_port() { echo $((19092 + 100 * $1)); }
internal_port() { echo $((19093 + 100 * $1)); }
http_port() { echo $((19094 + 100 * $1)); }

voters() {
  local list="" i
  for ((i = 0; i < BROKERS; i++)); do
    list+="${list:+,}$i@127.0.0.1:$(internal_port "$i")"
  done
  echo "$list"
}

bootstrap() {
  local list="" i
  for ((i = 0; i < BROKERS; i++)); do
    list+="${list:+,}127.0.0.1:$(kafka_port "$i")"
  done
  echo "$list"
}

# The pid of broker $1 if it is running, else nothing.
running_pid() {
  local file="$dir/broker-$1.pid" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  fi
}

ready() {
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$(http_port "$1")/readyz" 2>/dev/null
}

binary() {
  if [[ -n "${STROM_BIN:-}" ]]; then
    [[ -x "$STROM_BIN" ]] || { echo "STROM_BIN=$STROM_BIN is not an executable" >&2; exit 1; }
    echo "$STROM_BIN"
    return
  fi
  local root target
  root="$(cd "$(dirname "$0")/.." && pwd)"
  echo "building strom-broker (release)..." >&2
  cargo build --release -p strom-broker --manifest-path "$root/Cargo.toml" >&2
  target="${CARGO_TARGET_DIR:-$root/target}"
  echo "$target/release/strom-broker"
}

# Sends SIGTERM to broker $1 and waits for it to exit (SIGKILL after STOP_TIMEOUT).
stop_one() {
  local pid deadline
  pid="$(running_pid "$1")"
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "broker $1 (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/broker-$1.pid"
}

# Writes the internal plane's CA and certificates with binary $1, unless present.
ensure_certs() {
  [[ -f "$dir/certs/ca.pem" ]] && return 0
  local ids="" i
  for ((i = 0; i < BROKERS; i++)); do
    ids+="${ids:+,}$i"
  done
  "$1" certs --out "$dir/certs" --brokers "$ids" --operator --ip 127.0.0.1 --dns localhost >/dev/null
  echo "wrote the internal plane's CA and certificates to $dir/certs"
}

# Starts broker $1 in the background with binary $2; its pid goes to broker-$1.pid.
start_one() {
  local i="$1" bin="$2"
  mkdir -p "$dir/broker-$i"
  ensure_certs "$bin"
  echo "===== $(date -u +%FT%TZ) starting broker $i =====" >>"$dir/broker-$i.log"
  # shellcheck disable=SC2086 # STROM_CLUSTER_ARGS is a list of flags
  "$bin" \
    --node-id "$i" \
    --data-dir "$dir/broker-$i" \
    --listen "127.0.0.1:$(kafka_port "$i")" \
    --advertise "127.0.0.1:$(kafka_port "$i")" \
    --internal-listen "127.0.0.1:$(internal_port "$i")" \
    --internal-advertise "127.0.0.1:$(internal_port "$i")" \
    --http-listen "127.0.0.1:$(http_port "$i")" \
    --voters "$(voters)" \
    --internal-tls-ca "$dir/certs/ca.pem" \
    --internal-tls-cert "$dir/certs/broker-$i.pem" \
    --internal-tls-key "$dir/certs/broker-$i-key.pem" \
    --set default.replication.factor=3 \
    --set min.insync.replicas=2 \
    ${STROM_CLUSTER_ARGS:-} \
    </dev/null >>"$dir/broker-$i.log" 2>&1 &
  echo $! >"$dir/broker-$i.pid"
}

# Waits until broker $1 answers /readyz; fails if it exits or takes too long.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until ready "$1"; do
    if [[ -z "$(running_pid "$1")" ]]; then
      echo "broker $1 exited while starting; the end of $dir/broker-$1.log:" >&2
      tail -n 20 "$dir/broker-$1.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "broker $1 not ready after ${READY_TIMEOUT}s; see $dir/broker-$1.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

stop_all() {
  local i pid pids=() deadline
  for ((i = 0; i < BROKERS; i++)); do
    pid="$(running_pid "$i")"
    if [[ -n "$pid" ]]; then
      # All at once: each broker's controlled shutdown needs the quorum, which
      # is still whole while they all hand over their leaderships.
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$i:$pid")
    fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for entry in "${pids[@]}"; do
    i="${entry%%:*}"
    pid="${entry#*:}"
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "broker $i (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    else
      echo "broker $i stopped"
    fi
    rm -f "$dir/broker-$i.pid"
  done
}

status() {
  local i pid state
  for ((i = 0; i < BROKERS; i++)); do
    pid="$(running_pid "$i")"
    if [[ -z "$pid" ]]; then
      state="stopped"
    elif ready "$i"; then
      state="ready (pid $pid)"
    else
      state="running, not ready (pid $pid)"
    fi
    printf 'broker %d  kafka 127.0.0.1:%d  internal :%d  http :%d  %s\n' \
      "$i" "$(kafka_port "$i")" "$(internal_port "$i")" "$(http_port "$i")" "$state"
  done
  echo "bootstrap servers: $(bootstrap)"
}

start() {
  local i bin
  for ((i = 0; i < BROKERS; i++)); do
    if [[ -n "$(running_pid "$i")" ]]; then
      echo "broker $i already runs from $dir (pid $(running_pid "$i")); run: $0 stop $dir" >&2
      exit 1
    fi
  done
  bin="$(binary)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  echo "$bin" >"$dir/strom-broker.path"
  trap 'echo; echo "stopping the cluster..."; stop_all; exit 0' INT TERM
  for ((i = 0; i < BROKERS; i++)); do
    start_one "$i" "$bin"
  done
  for ((i = 0; i < BROKERS; i++)); do
    wait_ready "$i" || { stop_all; exit 1; }
  done

  status
  echo "logs: $dir/broker-<i>.log   try: kcat -b $(bootstrap) -L"
  echo "Ctrl-C (or: $0 stop $dir) stops the cluster"
  # Stay in the foreground until every broker is stopped; report each exit once.
  local alive pid_seen=()
  while :; do
    alive=0
    for ((i = 0; i < BROKERS; i++)); do
      if [[ -n "$(running_pid "$i")" ]]; then
        alive=$((alive + 1))
        pid_seen[i]="$(running_pid "$i")"
      elif [[ -n "${pid_seen[i]:-}" ]]; then
        echo "broker $i (pid ${pid_seen[i]}) is not running; the end of $dir/broker-$i.log:" >&2
        tail -n 5 "$dir/broker-$i.log" >&2
        pid_seen[i]=""
      fi
    done
    if ((alive == 0)); then
      echo "no broker running any more"
      exit 0
    fi
    sleep 1
  done
}

restart() {
  local i="$target_broker" bin
  ((i < BROKERS)) || { echo "no broker $i; brokers are 0..$((BROKERS - 1))" >&2; exit 2; }
  if [[ -f "$dir/strom-broker.path" ]]; then
    bin="$(cat "$dir/strom-broker.path")"
  else
    bin="$(binary)"
  fi
  stop_one "$i"
  start_one "$i" "$bin"
  wait_ready "$i"
  echo "broker $i restarted (pid $(running_pid "$i"))"
}

case "$command" in
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  restart) restart ;;
esac
