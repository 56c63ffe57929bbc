#!/usr/bin/env bash
# Fan-out through the Redis Streams bus: two instances on one PostgreSQL
# database and one redis-server of the script's own; clients on instance B,
# events published on instance A, so every delivery crosses Redis. Instance
# B is pinned to core 0 like the in-process runs; A, redis-server and the
# load share core 1.
# Usage: bench/fanout-redis.sh [c1000|c5000]   (default: c1000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=./target/release/enms
mkdir -p bench/out
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port); pa=$(free_port); pb=$(free_port)
db=enms_bench_$$
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db"
taskset -c 1 redis-server --port "$rport" --save "" --appendonly no >/dev/null &
redis=$!
url="postgres://postgres@127.0.0.1:5432/$db"
taskset -c 1 $bin serve --bind "127.0.0.1:$pa" --database-url "$url" --bus-url "redis://127.0.0.1:$rport" --log-level warn >/dev/null &
a=$!
taskset -c 0 $bin serve --bind "127.0.0.1:$pb" --database-url "$url" --bus-url "redis://127.0.0.1:$rport" --log-level warn --max-connections 20000 >/dev/null &
b=$!
trap 'kill $a $b $redis 2>/dev/null; wait 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
for p in $pa $pb; do for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/api/v1/health" >/dev/null && break; sleep 0.1; done; done
ulimit -n "$(ulimit -Hn)"
case ${1:-c1000} in
  c1000) args=(--clients 1000 --rate 100 --events 3000) ;;
  c5000) args=(--clients 5000 --rate 10 --events 300) ;;
  *) echo "unknown scenario $1" >&2; exit 2 ;;
esac
taskset -c 1 $bin bench fanout --url "http://127.0.0.1:$pb" --publish-url "http://127.0.0.1:$pa" --pid $b "${args[@]}" \
  | tee "bench/out/fanout-redis-${1:-c1000}.txt"
