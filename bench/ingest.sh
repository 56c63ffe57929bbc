#!/usr/bin/env bash
# Ingest throughput: 1,000,000 readings through JSON batches, then 1,000,000
# through one CSV import, into a fresh SQLite database.
# Usage: bench/ingest.sh [extra `enms bench ingest` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
./target/release/enms serve --data-dir "$dir" --bind "127.0.0.1:$port" --log-level warn &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.1; done
./target/release/enms bench ingest --url "http://127.0.0.1:$port" "$@"
