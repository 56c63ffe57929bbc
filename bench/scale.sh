#!/usr/bin/env bash
# Growth: one machine filled with N readings (a year at 30 s is 1 M, at 3 s
# 10 M), ingest rate by tenths of the fill, then a year at 1 h and 1 d, 30
# days at 15 min and KPIs over a year, each beside its floor (as many raw
# points from a short span), and the database's bytes per reading.
# Usage: bench/scale.sh [sqlite|postgres] [readings] [interval_s] [extra `enms bench scale` flags]
#   ENMS_BIN=path/to/enms measures another server binary (e.g. an older
#   commit's) with this commit's bench client.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}; readings=${2:-1000000}; interval=${3:-30}; shift $(( $# < 3 ? $# : 3 ))
cargo build --release --quiet
bin=${ENMS_BIN:-./target/release/enms}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
db=()
if [ "$backend" = postgres ]; then
    base=${ENMS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
    name="enms_scale_$$"
    psql "$base" -qc "CREATE DATABASE $name" >/dev/null
    db=(--database-url "${base%/*}/$name")
fi
"$bin" serve --data-dir "$dir" --bind "127.0.0.1:$port" --log-level warn "${db[@]}" 2>"$dir.log" &
server=$!
cleanup() {
    kill $server 2>/dev/null || true; wait $server 2>/dev/null || true
    rm -rf "$dir" "$dir.log"
    if [ "$backend" = postgres ]; then psql "$base" -qc "DROP DATABASE IF EXISTS $name" >/dev/null; fi
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.1; done
./target/release/enms bench scale --url "http://127.0.0.1:$port" --readings "$readings" --interval-s "$interval" "$@"
# Export the first machine's whole series as CSV while sampling the
# server's resident memory: a streamed export holds a few pages, whatever
# the span, so RSS must not grow with the file.
id=$(curl -sf "http://127.0.0.1:$port/api/v1/machines" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
before=$(rss)
peak=$before
( while kill -0 $server 2>/dev/null; do rss; sleep 0.05; done ) > "$dir.rss" &
sampler=$!
export_stats=$(curl -sf -o /dev/null -w '%{size_download} %{time_total}' \
    "http://127.0.0.1:$port/api/v1/machines/$id/readings/export")
kill $sampler 2>/dev/null || true
peak=$(sort -n "$dir.rss" | tail -1)
rm -f "$dir.rss"
read -r export_bytes export_s <<<"$export_stats"
python3 -c "print(f'export: {int($export_bytes)/1e6:.0f} MB of CSV in {float($export_s):.1f} s ({int($export_bytes)/1e6/float($export_s):.0f} MB/s); server RSS {int($before)/1024:.0f} MiB before, {int($peak)/1024:.0f} MiB at most during it')"

machines=1
args=("$@")
for i in "${!args[@]}"; do
    if [ "${args[$i]}" = --machines ]; then machines=${args[$((i + 1))]}; fi
done
if [ "$backend" = sqlite ]; then
    # Bytes per reading: the database file after a checkpoint folds the WAL in.
    sqlite3_bytes=$(python3 - "$dir/enms.db" "$((readings * machines))" <<'PY'
import sqlite3, sys, os
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
n = int(sys.argv[2])
pages = {}
try:
    for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
        pages[name] = size
except sqlite3.OperationalError:
    pass
total = os.path.getsize(sys.argv[1])
parts = ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(pages.items()) if k.startswith(("readings", "rollup")))
print(f"database {total} bytes = {total / n:.1f} bytes per reading ({parts})")
PY
)
    echo "$sqlite3_bytes"
fi
