"""SKAB through the real server, against scikit-learn on the same rows.

For each SKAB file: a machine, its first 400 rows ingested and an anomaly
model trained on exactly them (POST /api/v1/anomaly/train/{id}, the eight
sensors as features), then the rest streamed through POST /api/v1/readings
in batches of BATCH rows, so the streaming detector judges each reading as
it arrives. The anomalies the server saved are scored against the labels,
pooled over every judged row of every file: F1, FAR, MAR (the benchmark's
protocol, ../shared/data/skab/README.md). scikit-learn's IsolationForest
(n_jobs=1, seed 0) is fitted on the same 400 rows of the same features and
judges the same rows.

usage: skab.py SERVER_URL SKAB_DIR [CONTAMINATION]
"""

import csv
import glob
import json
import os
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
from sklearn.ensemble import IsolationForest

SENSORS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
           "Thermocouple", "Voltage", "Volume Flow RateRMS"]
TRAIN = 400
BATCH = 50


def extra_name(sensor):
    return sensor.replace(" ", "_")


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    out = []
    for r in rows:
        t = datetime.strptime(r["datetime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        out.append((t, [float(r[s]) for s in SENSORS], int(float(r["anomaly"]))))
    return out


def reading(machine, t, values):
    current, voltage = values[2], values[6]
    kw = max(current * voltage / 1000.0, 0.0)
    return {"machine_id": machine, "timestamp": t.isoformat().replace("+00:00", "Z"), "power_kw": kw,
            "energy_kwh": kw / 3600.0, "extra": {extra_name(s): v for s, v in zip(SENSORS, values)}}


def wait_job(base, job_id):
    deadline = time.time() + 120
    while time.time() < deadline:
        _, job = call(base, "GET", f"/api/v1/training/jobs/{job_id}")
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} did not finish")


def scores(pred, labels):
    pred, labels = np.asarray(pred, bool), np.asarray(labels, bool)
    tp = int(np.sum(pred & labels)); fp = int(np.sum(pred & ~labels))
    fn = int(np.sum(~pred & labels)); tn = int(np.sum(~pred & ~labels))
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    return {"f1": round(f1, 3), "far_pct": round(100 * fp / max(fp + tn, 1), 2),
            "mar_pct": round(100 * fn / max(fn + tp, 1), 2), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def main():
    base, root = sys.argv[1], sys.argv[2]
    c = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01
    files = sorted(glob.glob(os.path.join(root, "valve1", "*.csv")) + glob.glob(os.path.join(root, "valve2", "*.csv"))
                   + glob.glob(os.path.join(root, "other", "*.csv")))
    ours, sk, labels = [], [], []
    train_share, server_s = [], 0.0
    for path in files:
        rows = load(path)
        # Seeded by the file: a machine's forest is seeded by its id.
        machine = str(uuid.uuid5(uuid.NAMESPACE_URL, "skab/" + os.path.relpath(path, root)))
        status, body = call(base, "POST", "/api/v1/machines",
                            {"id": machine, "name": "skab-" + os.path.relpath(path, root), "type": "pump"})
        assert status == 201, body
        head, rest = rows[:TRAIN], rows[TRAIN:]
        status, body = call(base, "POST", "/api/v1/readings", {"readings": [reading(machine, t, v) for t, v, _ in head]})
        assert status == 200, body
        train = {"start": head[0][0].isoformat(), "end": (head[-1][0] + timedelta(seconds=1)).isoformat(),
                 "contamination": c, "features": ["extra." + extra_name(s) for s in SENSORS]}
        status, job = call(base, "POST", f"/api/v1/anomaly/train/{machine}", train)
        assert status == 202, job
        job = wait_job(base, job["id"])
        assert job["status"] == "completed", job
        train_share.append(job["metrics"]["training_flagged_share"])
        started = time.time()
        for i in range(0, len(rest), BATCH):
            chunk = rest[i:i + BATCH]
            status, body = call(base, "POST", "/api/v1/readings", {"readings": [reading(machine, t, v) for t, v, _ in chunk]})
            assert status == 200, body
        server_s += time.time() - started
        _, found = call(base, "GET", f"/api/v1/anomaly/recent?machine_id={machine}&limit=1000")
        flagged = {a["timestamp"] for a in found}
        ours += [reading(machine, t, v)["timestamp"].replace("Z", "+00:00") in {f.replace("Z", "+00:00") for f in flagged}
                 for t, v, _ in rest]
        x = np.array([v for _, v, _ in rows])
        forest = IsolationForest(contamination=c, random_state=0, n_jobs=1).fit(x[:TRAIN])
        sk += list(forest.predict(x[TRAIN:]) == -1)
        labels += [a for _, _, a in rest]
    result = {
        "files": len(files), "judged_rows": len(labels), "contamination": c,
        "enms": scores(ours, labels), "sklearn_iforest": scores(sk, labels),
        "enms_training_flagged_share_mean": round(float(np.mean(train_share)), 4),
        "streaming_seconds": round(server_s, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
