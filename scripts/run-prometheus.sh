#!/bin/sh
# `make run-prometheus`: the demo app with a local Prometheus holding the same traffic as
# the demo database (Debian's prometheus on loopback, backfilled by promtool), and the
# app reading Performance figures, CPU, memory and disk from it. Optional: `make run`
# needs no Prometheus. Stops the Prometheus it started when the app stops.
set -eu
VENV=${VENV:-.venv}
PORT=${PROMETHEUS_PORT:-9090}
DATA="$(pwd)/data"
DB="$DATA/demo.duckdb"
for tool in prometheus promtool; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "$tool is not installed: apt-get install -y prometheus" >&2
    exit 3
  }
done
mkdir -p "$DATA"
ANALYTICS_DEMO_DB="$DB" "$VENV/bin/analytics" demo
"$VENV/bin/analytics" seed --db "duckdb:///$DB" --top-up --prometheus-out "$DATA/demo.om"
rm -rf "$DATA/prometheus"
promtool tsdb create-blocks-from openmetrics --max-block-duration=24h \
  "$DATA/demo.om" "$DATA/prometheus" >/dev/null
printf 'global: {}\n' > "$DATA/prometheus-config.yml"
prometheus --config.file="$DATA/prometheus-config.yml" \
  --storage.tsdb.path="$DATA/prometheus" --storage.tsdb.retention.time=100y \
  --web.listen-address="127.0.0.1:$PORT" --log.level=warn &
PROMETHEUS_PID=$!
trap 'kill "$PROMETHEUS_PID" 2>/dev/null || true' EXIT INT TERM
printf 'data_sources:\n  prometheus:\n    enabled: true\n    url: http://127.0.0.1:%s\n' \
  "$PORT" > "$DATA/analytics-prometheus.yml"
ANALYTICS_DEMO_DB="$DB" "$VENV/bin/analytics" serve --config "$DATA/analytics-prometheus.yml" \
  --port 8501 ${SERVE_ARGS:-}
