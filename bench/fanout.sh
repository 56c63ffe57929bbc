#!/usr/bin/env bash
# WebSocket fan-out: the server pinned to core 0, the load (clients and
# publisher) to core 1, each scenario against a fresh server.
# Usage: bench/fanout.sh [scenario ...]   (default: all)
#   c1000   1000 clients x 100 events/s, 3000 events
#   c5000   5000 clients x 10 events/s, 300 events
#   peak    1000 clients x 400 events/s, 4000 events (deliveries/s ceiling)
#   idle    10000 idle clients (RSS per connection, connect time)
# SERVER_CPUS and LOAD_CPUS (taskset lists, default 0 and 1) move them, e.g.
# SERVER_CPUS=0,1 LOAD_CPUS=0,1 to let the fan-out run on both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=./target/release/enms
mkdir -p bench/out
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(c1000 c5000 peak idle)

run() {
  local name=$1; shift
  local dir port
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  taskset -c "${SERVER_CPUS:-0}" $bin serve --data-dir "$dir" --bind "127.0.0.1:$port" --log-level warn --max-connections 20000 >/dev/null &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.1; done
  echo "== $name"
  taskset -c "${LOAD_CPUS:-1}" $bin bench fanout --url "http://127.0.0.1:$port" --pid $server "$@" | tee "bench/out/fanout-$name.txt"
  kill $server; wait $server 2>/dev/null || true
  rm -rf "$dir"
}

server=
# A failed run must not leave its server behind (set -e exits mid-function).
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; true' EXIT
ulimit -n "$(ulimit -Hn)"
for s in "${scenarios[@]}"; do
  case $s in
    c1000) run c1000 --clients 1000 --rate 100 --events 3000 ;;
    c5000) run c5000 --clients 5000 --rate 10 --events 300 ;;
    peak)  run peak --clients 1000 --rate 400 --events 4000 ;;
    idle)  run idle --clients 10000 --events 0 --connect-concurrency 512 ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
