#!/usr/bin/env bash
# Forecast quality on the demo factory: a release server with the demo's
# 60 days of history (SEED, default 42), then `enms bench forecast`: each
# machine's rolling-origin backtest over the last 14 days, per horizon day,
# against seasonal naive on the same hours.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p enms
DIR=$(mktemp -d)
PORT=${PORT:-18187}
target/release/enms serve --bind 127.0.0.1:$PORT --data-dir "$DIR" --demo --seed "${SEED:-42}" --monitor-self=false --log-level warn &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.2; done
target/release/enms bench forecast --url "http://127.0.0.1:$PORT" --horizon-hours "${HORIZON:-168}"
