#!/usr/bin/env bash
# A year of one machine judged by a detection job, paired with a raw read of
# the same rows (bench/detect_year.py). Release build, fresh database.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p enms
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/enms serve --data-dir "$DATA" --bind "127.0.0.1:$PORT" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
python3 bench/detect_year.py "http://127.0.0.1:$PORT" "${RUNS:-3}"
