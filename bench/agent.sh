#!/usr/bin/env bash
# Host monitoring cost and delivery: a release server (SQLite, no demo) on
# core 0, `enms agent` sampling this host every INTERVAL (default 5s) on
# core 1 into it, and `enms bench host` on core 1 listening on /api/ws/ws
# for SAMPLES samples (default 60: five minutes at 5 s). Reports each
# sample's delay from being taken to reaching the socket (beside the floor,
# a health round trip), and the agent's CPU share of one core and RSS over
# the span (read from /proc).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p enms
DIR=$(mktemp -d)
PORT=${PORT:-18186}
taskset -c 0 target/release/enms serve --bind 127.0.0.1:$PORT --data-dir "$DIR" --monitor-self=false --log-level warn &
SERVER=$!
trap 'kill $SERVER ${AGENT:-} 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
taskset -c 1 target/release/enms agent --server "http://127.0.0.1:$PORT" --interval "${INTERVAL:-5s}" \
  --name bench-host --spool "$DIR/spool" --log-level warn &
AGENT=$!
taskset -c 1 target/release/enms bench host --url "http://127.0.0.1:$PORT" --host bench-host \
  --samples "${SAMPLES:-60}" --agent-pid "$AGENT"
