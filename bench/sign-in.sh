#!/usr/bin/env bash
# Sign-in cost: POST /api/auth/login (an argon2id verification, 19 MiB,
# two passes) against its floor, GET /api/v1/health, and a signed-in
# request (GET /api/auth/me with the session token: a cached lookup) in the
# same run, sequential on one keep-alive connection; then 8 sign-ins at
# once, to see them share the blocking pool instead of stalling requests.
# Usage: bench/sign-in.sh [rounds, default 200]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-200}"
cargo build --release --quiet
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "bench password" | ./target/release/enms user create --role viewer --name bench --data-dir "$dir" 2>/dev/null
./target/release/enms serve --data-dir "$dir" --bind "127.0.0.1:$port" --auth required --log-level warn \
    --login-rate 1000000 --login-burst 1000000 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.1; done
python3 - "$port" "$rounds" <<'PY'
import http.client, json, statistics, sys, threading, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"username": "bench", "password": "bench password"})

def timed(conn, method, path, payload=None, headers=None):
    t = time.perf_counter()
    conn.request(method, path, payload, headers or {})
    r = conn.getresponse(); data = r.read()
    return time.perf_counter() - t, r.status, data

def run(label, method, path, payload=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(10):
        timed(conn, method, path, payload, headers)
    xs = []
    for _ in range(rounds):
        dt, status, _ = timed(conn, method, path, payload, headers)
        assert status == 200, status
        xs.append(dt * 1000)
    xs.sort()
    p50, p95 = xs[len(xs) // 2], xs[int(len(xs) * 0.95)]
    print(f"{label:<34} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms")
    return p50

floor = run("GET /api/v1/health (floor)", "GET", "/api/v1/health")
conn = http.client.HTTPConnection("127.0.0.1", port)
_, _, data = timed(conn, "POST", "/api/auth/login", body, {"content-type": "application/json"})
token = json.loads(data)["access_token"]
me = run("GET /api/auth/me (session)", "GET", "/api/auth/me", None, {"authorization": f"Bearer {token}"})
login = run("POST /api/auth/login", "POST", "/api/auth/login", body, {"content-type": "application/json"})
print(f"sign-in / floor: {login / floor:.0f}x; signed-in request / floor: {me / floor:.1f}x")

# Eight at once, each on its own connection, while a ninth times health.
done, lat, signed = threading.Event(), [], []
def signer():
    c = http.client.HTTPConnection("127.0.0.1", port)
    while not done.is_set():
        _, status, _ = timed(c, "POST", "/api/auth/login", body, {"content-type": "application/json"})
        signed.append(status)
threads = [threading.Thread(target=signer) for _ in range(8)]
for t in threads: t.start()
time.sleep(0.5)
c = http.client.HTTPConnection("127.0.0.1", port)
t0, n0 = time.perf_counter(), len(signed)
for _ in range(100):
    lat.append(timed(c, "GET", "/api/v1/health")[0] * 1000)
    time.sleep(0.02)
rate = (len(signed) - n0) / (time.perf_counter() - t0)
done.set()
for t in threads: t.join()
assert all(s == 200 for s in signed), set(signed)
lat.sort()
print(f"GET /api/v1/health during 8 concurrent sign-ins: p50 {lat[50]:.2f} ms, p95 {lat[95]:.2f} ms; "
      f"{rate:.0f} sign-ins/s")
PY
