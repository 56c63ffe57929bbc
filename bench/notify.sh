#!/usr/bin/env bash
# Event → webhook latency: a server (SQLite, no demo) with a [notify] webhook
# channel to the bench's own receiver, on core 0; `enms bench notify` on
# core 1, which also measures its floor (a bare POST to the same receiver).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p enms
DIR=$(mktemp -d)
PORT=${PORT:-18182}
HOOK=${HOOK:-18183}
cat > "$DIR/enms.toml" <<TOML
[notify]
[notify.channels.bench]
kind = "webhook"
url = "http://127.0.0.1:$HOOK/hook"
[[notify.rules]]
name = "bench"
events = ["system_alert"]
min_severity = "critical"
channels = ["bench"]
TOML
taskset -c 0 target/release/enms serve --bind 127.0.0.1:$PORT --data-dir "$DIR" --config "$DIR/enms.toml" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
taskset -c 1 target/release/enms bench notify --url "http://127.0.0.1:$PORT" --listen "127.0.0.1:$HOOK" --events "${EVENTS:-500}"
