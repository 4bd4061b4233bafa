#!/usr/bin/env bash
# Start, stop and inspect the project's own single-node Elasticsearch.
#
# The node is the minimal distribution from Maven Central
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch), run on the machine's
# JDK 17 on loopback with a small heap. Maven's local repository caches the zip, and the
# unpacked copy under build/ is reused, so a second start fetches nothing.
#
#   scripts/es.sh up      start (no-op if a node already answers on the port)
#   scripts/es.sh down    stop the node this script started
#   scripts/es.sh status  print the cluster health, exit 1 if none answers
#   scripts/es.sh url     print the URL of the node
set -euo pipefail

ES_VERSION="${ES_VERSION:-8.19.21}"
ES_PORT="${ES_PORT:-9200}"
ES_HEAP="${ES_HEAP:-768m}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build/es"
HOME_DIR="$BUILD/elasticsearch-$ES_VERSION"
RUN_DIR="$BUILD/run-$ES_PORT"
PID_FILE="$RUN_DIR/es.pid"
URL="http://127.0.0.1:$ES_PORT"
ES_USER="${ES_USER:-ztsoc-es}"

find_java17() {
  if [ -n "${ES_JAVA_HOME:-}" ]; then echo "$ES_JAVA_HOME"; return; fi
  for d in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/java-21-openjdk-*; do
    [ -x "$d/bin/java" ] && { echo "$d"; return; }
  done
  if command -v java >/dev/null; then dirname "$(dirname "$(readlink -f "$(command -v java)")")"; return; fi
  echo "es.sh: no JDK found; install openjdk-17-jre-headless" >&2; exit 2
}

answers() { curl -fsS -m 2 "$URL/_cluster/health" >/dev/null 2>&1; }

fetch() {
  [ -x "$HOME_DIR/bin/elasticsearch" ] && return
  mkdir -p "$BUILD"
  local zip="$BUILD/elasticsearch-$ES_VERSION.zip"
  if [ ! -s "$zip" ]; then
    echo "es.sh: fetching Elasticsearch $ES_VERSION from Maven Central (cached in ~/.m2)" >&2
    mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      -DoutputDirectory="$BUILD" >&2
  fi
  (cd "$BUILD" && unzip -q -o "$zip")
}

run_as() {
  # Elasticsearch refuses to run as root: use a system user of its own.
  if [ "$(id -u)" = 0 ]; then
    id "$ES_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
    chown -R "$ES_USER" "$HOME_DIR" "$RUN_DIR"
    runuser -u "$ES_USER" -- "$@"
  else
    "$@"
  fi
}

up() {
  if answers; then echo "es.sh: a node already answers at $URL" >&2; return 0; fi
  fetch
  rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR/data" "$RUN_DIR/logs" "$RUN_DIR/tmp"
  local java_home; java_home="$(find_java17)"
  run_as env ES_JAVA_HOME="$java_home" ES_TMPDIR="$RUN_DIR/tmp" ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
    "$HOME_DIR/bin/elasticsearch" -d -p "$PID_FILE" \
    -E discovery.type=single-node -E network.host=127.0.0.1 -E http.port="$ES_PORT" \
    -E transport.port=$((ES_PORT + 100)) -E cluster.name=ztsoc-dev \
    -E xpack.security.enabled=false -E xpack.ml.enabled=false \
    -E cluster.routing.allocation.disk.threshold_enabled=false \
    -E action.destructive_requires_name=false \
    -E path.data="$RUN_DIR/data" -E path.logs="$RUN_DIR/logs" >"$RUN_DIR/logs/console.log" 2>&1 \
    || { tail -n 30 "$RUN_DIR/logs/console.log" >&2; exit 1; }
  for _ in $(seq 1 120); do
    if answers; then echo "es.sh: Elasticsearch $ES_VERSION up at $URL" >&2; return 0; fi
    sleep 1
  done
  echo "es.sh: Elasticsearch did not answer within 120 s; log: $RUN_DIR/logs" >&2
  tail -n 30 "$RUN_DIR/logs/"*.log >&2 || true
  exit 1
}

down() {
  if [ -s "$PID_FILE" ]; then
    local pid; pid="$(cat "$PID_FILE")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    echo "es.sh: stopped the node at $URL" >&2
  else
    echo "es.sh: no node started by this script on port $ES_PORT" >&2
  fi
}

# Sourced (scripts/es-cluster.sh reuses fetch, find_java17 and run_as): define, do not run.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) curl -fsS -m 2 "$URL/_cluster/health?pretty" || { echo "es.sh: nothing answers at $URL" >&2; exit 1; } ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 up|down|status|url" >&2; exit 2 ;;
esac
