#!/usr/bin/env bash
# The floor under fan-out: CPU per 300-byte loopback TCP write with nothing
# else to do (bench/socket-floor.c), in the shapes `bench/fanout.sh` uses.
#   one     1 socket, back to back
#   c1000   1000 sockets, 100 rounds/s (c1000's load), 3000 rounds
#   c5000   5000 sockets, 10 rounds/s (c5000's load), 300 rounds
#   batch4  1000 sockets, 4 messages per write
#   uring   c1000 with each round's sends in one io_uring submission
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out" bench/out
if [ ! -e /usr/include/liburing.h ]; then
  apt-get update -qq && apt-get install -y -qq liburing-dev >/dev/null
fi
cc -O2 -Wall -o "$out/socket-floor" bench/socket-floor.c -luring
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(one c1000 c5000 batch4 uring)
ulimit -n "$(ulimit -Hn)"
for s in "${scenarios[@]}"; do
  echo "== $s"
  case $s in
    one)    "$out/socket-floor" 1 200000 0 1 ;;
    c1000)  "$out/socket-floor" 1000 3000 100 1 ;;
    c5000)  "$out/socket-floor" 5000 300 10 1 ;;
    batch4) "$out/socket-floor" 1000 3000 100 4 ;;
    uring)  "$out/socket-floor" 1000 3000 100 1 uring ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac | tee "bench/out/socket-floor-$s.txt"
done
