"""A year of one machine through a detection job, against the time to read
the same rows back (the floor: what loading alone costs).

Ingests 365 days of 15-minute readings (35,040; day/night load, seeded
noise, a few spikes) into a fresh server, then runs `POST
/api/v1/anomaly/detect` over the year (a detection job) RUNS times and
reports the job's own `took_ms` (load, fit, judge, save) beside a raw
`GET /api/v1/machines/{id}/readings` of the year (limit 100,000).

usage: detect_year.py SERVER_URL [RUNS]
"""

import json
import random
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.status, json.loads(r.read() or b"null")


def main():
    base = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rng = random.Random(7)
    machine = str(uuid.UUID(int=0xDE7EC7))
    call(base, "POST", "/api/v1/machines", {"id": machine, "name": "year-1", "type": "compressor"})
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = []
    for i in range(365 * 96):
        ts = t0 + timedelta(minutes=15 * (i + 1))
        busy = 6 <= ts.hour < 22 and ts.weekday() < 5
        kw = (30.0 if busy else 8.0) + rng.gauss(0, 0.5) + (40.0 if i % 5000 == 17 else 0.0)
        rows.append({"machine_id": machine, "timestamp": ts.isoformat(), "power_kw": kw, "energy_kwh": kw / 4,
                     "production_units": 10.0 if busy else 0.0})
    for k in range(0, len(rows), 10_000):
        call(base, "POST", "/api/v1/readings", {"readings": rows[k:k + 10_000]})
    body = {"machine_id": machine, "start": "2025-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z",
            "contamination": 0.01}
    for _ in range(runs):
        started = time.time()
        _, points = call(base, "GET", f"/api/v1/machines/{machine}/readings?start=2025-01-01T00:00:00Z"
                                      f"&end=2026-01-02T00:00:00Z&limit=100000")
        read_ms = (time.time() - started) * 1e3
        _, job = call(base, "POST", "/api/v1/anomaly/detect", body)
        while True:
            _, job = call(base, "GET", f"/api/v1/training/jobs/{job['id']}")
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.02)
        m = job["metrics"]
        print(json.dumps({"readings": m["readings_analyzed"], "took_ms": round(m["took_ms"], 1),
                          "raw_read_ms": round(read_ms, 1), "points_read": len(points["points"]),
                          "anomalies": m["anomalies_detected"], "episodes": m["episodes_detected"]}))


if __name__ == "__main__":
    main()
