#!/usr/bin/env bash
# NAB (../shared/data/nab: real AWS host metrics, traffic and ad-exchange
# streams with labelled windows) through the real server: per series one
# machine, a model trained on the probationary 15 %, the rest streamed in
# order in one-hour batches; an alarm is an episode's start; NAB's standard
# profile, normalised, beside the published detectors on the same files.
# CATEGORIES (default the three real ones) and LIMIT (files per category,
# default all) narrow the run; CONTAMINATION (default 0.01, the product's
# default) is every model's alarm budget; OUT names a JSON file.
set -euo pipefail
cd "$(dirname "$0")/.."
NAB=${NAB:-../shared/data/nab}
CATEGORIES=${CATEGORIES:-realAWSCloudwatch,realTraffic,realAdExchange}
cargo build --release --quiet
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The schedules are off so that nothing but the data moves the models.
target/release/enms serve --data-dir "$DATA" --bind "127.0.0.1:$PORT" --log-level warn \
    --retrain-schedule off --detect-schedule off --forecast-schedule off &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
python3 bench/nab.py "http://127.0.0.1:$PORT" "$NAB" "$CATEGORIES" "${LIMIT:-}" "${OUT:-}"
