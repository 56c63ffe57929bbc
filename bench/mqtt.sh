#!/usr/bin/env bash
# MQTT ingest throughput: a mosquitto of its own on a free port, a release
# server (SQLite, streaming detection on, no demo) subscribed to it on core
# 0, and `enms bench mqtt` publishing on core 1. BATCH readings per message
# (default 100; BATCH=1 for one reading per message).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p enms
DIR=$(mktemp -d)
PORT=${PORT:-18184}
BROKER=${BROKER:-18185}
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' "$BROKER" > "$DIR/mosquitto.conf"
mosquitto -c "$DIR/mosquitto.conf" >/dev/null 2>&1 &
MQ=$!
cat > "$DIR/enms.toml" <<TOML
[mqtt]
url = "mqtt://127.0.0.1:$BROKER"
client_id = "enms-bench"
[[mqtt.subscriptions]]
topic = "bench/+machine/reading"
format = "reading"
TOML
taskset -c 0 target/release/enms serve --bind 127.0.0.1:$PORT --data-dir "$DIR" --config "$DIR/enms.toml" --log-level warn &
PID=$!
trap 'kill $PID $MQ 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" | grep -q '"connected":true' && break; sleep 0.1; done
taskset -c 1 target/release/enms bench mqtt --url "http://127.0.0.1:$PORT" --broker "mqtt://127.0.0.1:$BROKER" \
  --readings "${READINGS:-200000}" --batch "${BATCH:-100}"
