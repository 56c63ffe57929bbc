#!/usr/bin/env bash
# Streaming detection latency: a fresh demo server (which trains its anomaly
# models at start) on core 0, `enms bench detect` on core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p enms
DIR=$(mktemp -d)
PORT=${PORT:-18181}
taskset -c 0 target/release/enms serve --demo --bind 127.0.0.1:$PORT --data-dir "$DIR" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
# Wait for the demo's five anomaly models (a benchmark script may poll).
for _ in $(seq 1 300); do
  n=$(curl -sf "http://127.0.0.1:$PORT/api/v1/models?model_type=anomaly" | grep -o '"active":true' | wc -l || true)
  [ "${n:-0}" -ge 5 ] && break
  sleep 0.2
done
taskset -c 1 target/release/enms bench detect --url "http://127.0.0.1:$PORT" --readings "${READINGS:-500}"
