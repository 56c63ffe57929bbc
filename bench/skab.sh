#!/usr/bin/env bash
# SKAB (../shared/data/skab, real pump testbed, labelled) through the real
# server: train on each file's first 400 rows, stream the rest, score the
# saved findings (pooled F1, FAR, MAR) beside scikit-learn's IsolationForest
# on the same rows. CONTAMINATION (default 0.01) is the alarm budget of both.
set -euo pipefail
cd "$(dirname "$0")/.."
SKAB=${SKAB:-../shared/data/skab}
VENV=${VENV:-target/fixtures-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet -r scripts/fixtures/requirements.txt
cargo build --release --quiet
DATA=$(mktemp -d)
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/enms serve --data-dir "$DATA" --bind "127.0.0.1:$PORT" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
"$VENV/bin/python" bench/skab.py "http://127.0.0.1:$PORT" "$SKAB" "${CONTAMINATION:-0.01}"
