#!/usr/bin/env bash
# The demo's live stream as an operator meets it: a fresh `serve --demo`
# with a live fault about every FAULT_EVERY (default 3m) for MINUTES
# (default 30) of wall time; then every injected live fault found or not,
# false critical episodes, and false warning episodes per 50 machine-minutes
# (hosts left out). OUT names a JSON file for the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/enms serve --demo --demo-fault-every "${FAULT_EVERY:-3m}" --seed "${SEED:-42}" \
    --data-dir "$DATA" --bind "127.0.0.1:$PORT" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
python3 bench/live_demo.py "http://127.0.0.1:$PORT" "${MINUTES:-30}" "${OUT:-}"
