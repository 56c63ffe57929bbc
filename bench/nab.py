"""NAB (the Numenta Anomaly Benchmark) through the real server.

For each series of the chosen categories: a machine; its probationary rows
(the first 15 %, at most 750) ingested and an anomaly model trained on
exactly them (POST /api/v1/anomaly/train/{id}); then the rest streamed in
order through POST /api/v1/readings in batches of one hour of data, so the
live detector judges each row as it arrives and refreshes its model by the
data's own timestamps. An alarm is an episode's start
(GET /api/v1/anomaly/episodes). Scored with NAB's standard profile
(../shared/data/nab/README.md): per window the earliest alarm, weighted by a
scaled sigmoid of its position; −1 per window missed; −0.11 per alarm
outside every window, weighted by its distance after the preceding window.
Normalised per category and over all: 100·(S − S_null)/(S_perfect − S_null).
The published detectors' raw per-file scores on the same files are
normalised the same way and printed beside.

usage: CONTAMINATION=0.01 nab.py SERVER_URL NAB_DIR CATEGORY[,CATEGORY…] [FILE_LIMIT] [JSON_OUT]
"""

import csv
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

A_TP, A_FP, A_FN = 1.0, -0.11, -1.0
PROBATION = 0.15
# The alarm budget every series' model is trained with (CONTAMINATION).
CONTAMINATION = float(os.environ.get("CONTAMINATION", "0.01"))
PUBLISHED = ["numenta", "contextOSE", "ARTime", "htmjava", "earthgeckoSkyline", "knncad", "randomCutForest",
             "relativeEntropy", "windowedGaussian", "null"]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ts(text):
    return datetime.strptime(text.split(".")[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def load(path):
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    return [(ts(r[0]), float(r[1])) for r in rows]


def sigmoid(x):
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def windows_as_rows(rows, windows):
    out = []
    for start, end in windows:
        a, b = ts(start), ts(end)
        idx = [i for i, (t, _) in enumerate(rows) if a <= t <= b]
        if idx:
            out.append((idx[0], idx[-1]))
    return out


def score(n_rows, probation, windows, alarms):
    """NAB's standard-profile raw score of one file (README's protocol)."""
    alarms = sorted(set(i for i in alarms if i >= probation))
    total = 0.0
    for (a, r) in windows:
        inside = [i for i in alarms if a <= i <= r]
        if inside:
            w = r - a + 1
            i = inside[0]
            total += A_TP * sigmoid(-(r - i + 1) / w) / sigmoid(-1.0)
        else:
            total += A_FN
    for i in alarms:
        if any(a <= i <= r for a, r in windows):
            continue
        before = [(a, r) for a, r in windows if r < i]
        if not before:
            total += A_FP
            continue
        a, r = before[-1]
        w = r - a + 1
        total += -A_FP * sigmoid((i - r) / max(w - 1, 1))
    return total


def normalised(raw, n_windows):
    if n_windows == 0:
        return float("nan")
    return 100.0 * (raw + n_windows) / (2.0 * n_windows)


def settle(base, machine):
    deadline = time.time() + 600
    while time.time() < deadline:
        status, d = call(base, "GET", f"/api/v1/machines/{machine}/detector")
        _, jobs = call(base, "GET", f"/api/v1/training/jobs?machine_id={machine}")
        done = all(j["status"] in ("completed", "failed", "cancelled") for j in jobs or [])
        if status != 200 or (d.get("refresh_pending") is None and done):
            return jobs or []
        time.sleep(0.05)
    raise SystemExit(f"machine {machine} still refreshing")


def listed(base, path, limit, key):
    """Every item of a list route, newest first, page by page: each page
    ends before the oldest `key` of the one before."""
    out, until = [], None
    while True:
        q = f"{path}&limit={limit}" + ("&until=" + urllib.parse.quote(until) if until else "")
        status, page = call(base, "GET", q)
        if status != 200:
            raise SystemExit(f"{path}: {status} {page}")
        out += page
        if len(page) < limit:
            return out
        until = min(x[key] for x in page)


def episode_starts(base, machine):
    return [e["start"] for e in listed(base, f"/api/v1/anomaly/episodes?machine_id={machine}", 500, "start")]


def flagged_times(base, machine):
    """Reading times of every saved anomaly of the machine."""
    found = listed(base, f"/api/v1/anomaly/recent?machine_id={machine}", 1000, "timestamp")
    return sorted({datetime.fromisoformat(a["timestamp"].replace("Z", "+00:00")) for a in found})


def daily_shares(rows, probation, flagged):
    """The flagged share of the streamed readings per day of data, from the
    second day on (the first is the model's first judgement of new data)."""
    flagged = set(flagged)
    days = {}
    start = rows[probation][0]
    for t, _ in rows[probation:]:
        d = int((t - start).total_seconds() // 86400)
        n, f = days.get(d, (0, 0))
        days[d] = (n + 1, f + (t in flagged))
    return [f / n for d, (n, f) in sorted(days.items()) if d >= 1 and n >= 12]


def run_file(base, nab, name, n):
    rows = load(os.path.join(nab, name))
    peak = max(v for _, v in rows) or 1.0
    scale = 10 ** max(0, math.ceil(math.log10(peak / 1e5))) if peak > 1e5 else 1
    probation = min(int(PROBATION * len(rows)), 750)
    machine = str(uuid.UUID(int=0xAB0000000000000000000000000000 + n))
    status, body = call(base, "POST", "/api/v1/machines", {"id": machine, "name": f"nab-{n}-{os.path.basename(name)}"[:100],
                                                        "type": "nab"})
    if status not in (201, 409):
        raise SystemExit(f"machine: {status} {body}")

    def reading(i):
        t, v = rows[i]
        gap = (t - rows[i - 1][0]).total_seconds() / 3600 if i else (rows[1][0] - t).total_seconds() / 3600
        kw = max(v, 0.0) / scale
        return {"machine_id": machine, "timestamp": iso(t), "power_kw": kw, "energy_kwh": kw * min(max(gap, 1e-4), 1.0)}

    for k in range(0, probation, 5000):
        status, body = call(base, "POST", "/api/v1/readings", {"readings": [reading(i) for i in range(k, min(probation, k + 5000))]})
        if status != 200:
            raise SystemExit(f"ingest: {status} {body}")
    status, job = call(base, "POST", f"/api/v1/anomaly/train/{machine}",
                       {"start": iso(rows[0][0]), "end": iso(rows[probation - 1][0] + timedelta(milliseconds=1)),
                        "contamination": CONTAMINATION})
    if status != 202:
        raise SystemExit(f"train {name}: {status} {job}")
    deadline = time.time() + 300
    while True:
        _, done = call(base, "GET", f"/api/v1/training/jobs/{job['id']}")
        if done["status"] in ("completed", "failed", "cancelled") or time.time() > deadline:
            break
        time.sleep(0.02)
    if done["status"] != "completed":
        raise SystemExit(f"train {name}: {done}")
    started = time.time()
    i = probation
    while i < len(rows):
        hour_end = rows[i][0] + timedelta(hours=1)
        batch = []
        while i < len(rows) and rows[i][0] < hour_end:
            batch.append(reading(i))
            i += 1
        status, body = call(base, "POST", "/api/v1/readings", {"readings": batch})
        if status != 200:
            raise SystemExit(f"stream {name}: {status} {body}")
    jobs = settle(base, machine)
    took = time.time() - started
    index = {iso(t): k for k, (t, _) in enumerate(rows)}
    alarms = []
    for s in episode_starts(base, machine):
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
        k = index.get(iso(t))
        if k is not None:
            alarms.append(k)
    flagged = [t for t in flagged_times(base, machine) if t >= rows[probation][0]]
    shares = daily_shares(rows, probation, flagged)
    refreshes = {}
    for j in jobs:
        if j["trigger_type"] != "manual":
            refreshes[j["trigger_type"]] = refreshes.get(j["trigger_type"], 0) + 1
    return rows, probation, alarms, refreshes, took, (len(flagged) / max(1, len(rows) - probation), shares)


def main():
    base, nab, categories = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    limit = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else None
    out_path = sys.argv[5] if len(sys.argv) > 5 else None
    windows = json.load(open(os.path.join(nab, "windows.json")))
    published = json.load(open(os.path.join(nab, "published_standard_scores.json")))
    files = []
    for c in categories:
        names = sorted(f for f in windows if f.startswith(c + "/"))
        files += names[:limit] if limit else names
    per_file = {}
    n = 0
    for name in files:
        n += 1
        rows, probation, alarms, refreshes, took, (share, shares) = run_file(base, nab, name, n)
        w = windows_as_rows(rows, windows[name])
        raw = score(len(rows), probation, w, alarms)
        scored = [a for a in alarms if a >= probation]
        per_file[name] = {"raw": raw, "windows": len(w), "alarms": len(scored), "rows": len(rows) - probation,
                          "refreshes": refreshes, "seconds": round(took, 2), "flagged_share": share,
                          "daily_shares": shares}
        print(f"{name}: raw {raw:+.3f}, {len(scored)} alarms over {len(rows) - probation} rows, {len(w)} windows, "
              f"refreshes {refreshes}, flagged {100 * share:.2f} % (worst day {100 * max(shares, default=0):.1f} %), "
              f"{took:.1f} s", flush=True)
    summary = {}
    for group in categories + ["all"]:
        names = [f for f in per_file if group == "all" or f.startswith(group + "/")]
        nw = sum(per_file[f]["windows"] for f in names)
        row = {"enms": normalised(sum(per_file[f]["raw"] for f in names), nw), "files": len(names), "windows": nw}
        for d in PUBLISHED:
            if d in published and all(f in published[d] for f in names):
                row[d] = normalised(sum(published[d][f] for f in names), nw)
        summary[group] = row
        others = ", ".join(f"{d} {row[d]:.1f}" for d in PUBLISHED if d in row)
        print(f"{group}: enms {row['enms']:.1f} ({len(names)} files, {nw} windows) | {others}", flush=True)
    days = sorted(x for f in per_file.values() for x in f["daily_shares"])
    if days:
        over = sum(1 for x in days if x > 2 * CONTAMINATION)
        print(f"flagged share per day of data after the first, {len(days)} series-days: median "
              f"{100 * days[len(days) // 2]:.2f} %, 90th {100 * days[int(0.9 * (len(days) - 1))]:.2f} %, "
              f"worst {100 * days[-1]:.2f} %; above twice the budget ({200 * CONTAMINATION:.2f} %): {over}", flush=True)
    if out_path:
        with open(out_path, "w") as f:
            json.dump({"files": per_file, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
