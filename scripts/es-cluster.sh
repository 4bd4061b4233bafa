#!/usr/bin/env bash
# Start, stop and inspect a 3-node Elasticsearch cluster on loopback (tests that kill nodes).
#
# Same distribution and JDK as scripts/es.sh (whose fetch it reuses), three master+data
# nodes with small heaps on ports distinct from the single dev node:
# HTTP $ES_CLUSTER_PORT..+2 (default 9250-9252), transport +100 (9350-9352).
#
#   scripts/es-cluster.sh up          start every node not running (a fresh cluster if none is);
#                                     waits for all three to join; a node restarted after a
#                                     kill keeps its data and rejoins
#   scripts/es-cluster.sh up N        start node N (1-3) only, without waiting
#   scripts/es-cluster.sh down        stop the nodes this script started, drop their data
#   scripts/es-cluster.sh kill N      kill -9 node N (what the failover test does)
#   scripts/es-cluster.sh pid N       print node N's process id
#   scripts/es-cluster.sh status      cluster health, exit 1 if no node answers
#   scripts/es-cluster.sh url         the store URL naming the three nodes
set -euo pipefail

ES_CLUSTER_PORT="${ES_CLUSTER_PORT:-9250}"
ES_CLUSTER_HEAP="${ES_CLUSTER_HEAP:-256m}"
# C1 only: test nodes live minutes, so the C2 compiler's CPU at start-up is not paid back.
ES_CLUSTER_JAVA_OPTS="${ES_CLUSTER_JAVA_OPTS:--XX:TieredStopAtLevel=1}"
ES_PORT="$ES_CLUSTER_PORT"  # es.sh's own variables are unused here, but must be set
# shellcheck source=scripts/es.sh
source "$(dirname "$0")/es.sh"
CLUSTER_DIR="$BUILD/cluster-$ES_CLUSTER_PORT"
NODES=(1 2 3)

http_port() { echo $((ES_CLUSTER_PORT + $1 - 1)); }
transport_port() { echo $((ES_CLUSTER_PORT + 100 + $1 - 1)); }
node_dir() { echo "$CLUSTER_DIR/node-$1"; }
node_pid() { cat "$(node_dir "$1")/es.pid" 2>/dev/null || true; }
running() { local pid; pid="$(node_pid "$1")"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
node_answers() { curl -fsS -m 2 "http://127.0.0.1:$(http_port "$1")/" >/dev/null 2>&1; }

cluster_url() {
  local hosts=()
  for n in "${NODES[@]}"; do hosts+=("127.0.0.1:$(http_port "$n")"); done
  local IFS=,; echo "http://${hosts[*]}"
}

start_node() {
  local n=$1 dir seeds masters
  dir="$(node_dir "$n")"
  running "$n" && return 0
  if node_answers "$n"; then
    echo "es-cluster.sh: port $(http_port "$n") answers but not as a node this script started; set ES_CLUSTER_PORT" >&2
    exit 1
  fi
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  RUN_DIR="$dir"  # what run_as hands to the Elasticsearch user
  seeds="127.0.0.1:$(transport_port 1),127.0.0.1:$(transport_port 2),127.0.0.1:$(transport_port 3)"
  masters="ztsoc-c1,ztsoc-c2,ztsoc-c3"
  run_as env ES_JAVA_HOME="$JAVA_HOME_17" ES_TMPDIR="$dir/tmp" \
    ES_JAVA_OPTS="-Xms$ES_CLUSTER_HEAP -Xmx$ES_CLUSTER_HEAP $ES_CLUSTER_JAVA_OPTS" \
    "$HOME_DIR/bin/elasticsearch" -d -p "$dir/es.pid" \
    -E node.name="ztsoc-c$n" -E cluster.name="ztsoc-cluster-$ES_CLUSTER_PORT" \
    -E network.host=127.0.0.1 -E http.port="$(http_port "$n")" -E transport.port="$(transport_port "$n")" \
    -E discovery.seed_hosts="$seeds" -E cluster.initial_master_nodes="$masters" \
    -E node.processors=1 \
    -E xpack.security.enabled=false -E xpack.ml.enabled=false \
    -E cluster.routing.allocation.disk.threshold_enabled=false \
    -E action.destructive_requires_name=false \
    -E path.data="$dir/data" -E path.logs="$dir/logs" >"$dir/logs/console.log" 2>&1 \
    || { tail -n 30 "$dir/logs/console.log" >&2; exit 1; }
}

wait_cluster() {
  local health
  for _ in $(seq 1 180); do
    health="$(curl -fsS -m 2 "http://127.0.0.1:$(http_port 1)/_cluster/health" 2>/dev/null \
      || curl -fsS -m 2 "http://127.0.0.1:$(http_port 2)/_cluster/health" 2>/dev/null || true)"
    if [[ "$health" == *'"number_of_nodes":3'* ]]; then
      echo "es-cluster.sh: 3 nodes up at $(cluster_url)" >&2; return 0
    fi
    sleep 1
  done
  echo "es-cluster.sh: the cluster did not form within 180 s; logs: $CLUSTER_DIR/node-*/logs" >&2
  exit 1
}

up() {
  fetch
  JAVA_HOME_17="$(find_java17)"
  local any=0
  for n in "${NODES[@]}"; do running "$n" && any=1; done
  # A fresh cluster when none of its nodes runs: initial_master_nodes bootstraps it only once.
  [ $any = 0 ] && rm -rf "$CLUSTER_DIR"
  mkdir -p "$CLUSTER_DIR"
  if [ -n "${1:-}" ]; then start_node "$1"; return 0; fi
  for n in "${NODES[@]}"; do start_node "$n"; done
  wait_cluster
}

down() {
  local pids=()
  for n in "${NODES[@]}"; do
    if running "$n"; then local pid; pid="$(node_pid "$n")"; kill "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$CLUSTER_DIR"
  echo "es-cluster.sh: stopped ${#pids[@]} node(s)" >&2
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down ;;
  kill) running "$2" && kill -9 "$(node_pid "$2")" ;;
  pid) node_pid "$2" ;;
  status) for n in "${NODES[@]}"; do
            curl -fsS -m 2 "http://127.0.0.1:$(http_port "$n")/_cluster/health?pretty" && exit 0
          done; echo "es-cluster.sh: no node answers" >&2; exit 1 ;;
  url) cluster_url ;;
  *) echo "usage: $0 up [N]|down|kill N|pid N|status|url" >&2; exit 2 ;;
esac
