"""The demo's live stream, judged as an operator meets it.

Runs against a fresh `enms serve --demo` for MINUTES of wall time, then
reads what the live detectors raised (episodes with source `stream`, host
machines left out) against the live faults the demo injected
(GET /api/v1/demo/injected, those starting after the run began): each
fault found (an episode overlapping it, up to one minute after its end),
false critical episodes, and false warning episodes per 50 machine-minutes.

usage: live_demo.py SERVER_URL MINUTES [JSON_OUT]
"""

import json
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.loads(r.read())


def when(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def main():
    base, minutes = sys.argv[1], float(sys.argv[2])
    out = sys.argv[3] if len(sys.argv) > 3 else None
    started = datetime.now(timezone.utc)
    # The first models train within the first minute; the live stream is
    # judged from then on.
    deadline = time.time() + 120
    machines = []
    while time.time() < deadline:
        machines = [m for m in get(base, "/api/v1/machines") if m.get("type") != "host"]
        ready = [m for m in machines if get_status(base, m["id"]) == 200]
        if machines and len(ready) == len(machines):
            break
        time.sleep(1)
    judged_from = datetime.now(timezone.utc)
    time.sleep(minutes * 60)
    ended = datetime.now(timezone.utc)
    ids = {m["id"]: m["name"] for m in machines}
    injected = [a for a in get(base, "/api/v1/demo/injected")
                if when(a["start"]) >= judged_from and when(a["start"]) < ended and a["machine_id"] in ids]
    episodes = []
    for m in ids:
        q = f"/api/v1/anomaly/episodes?machine_id={m}&limit=500&since={judged_from.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        episodes += [e for e in get(base, q) if e["source"] == "stream" and when(e["start"]) >= judged_from]
    slack = timedelta(minutes=1)
    def overlaps(e, a):
        return e["machine_id"] == a["machine_id"] and when(e["start"]) <= when(a["end"]) + slack and when(e["end"]) >= when(a["start"])
    found = [a for a in injected if any(overlaps(e, a) for e in episodes)]
    false = [e for e in episodes if not any(overlaps(e, a) for a in injected)]
    false_critical = [e for e in false if e["severity"] == "critical"]
    false_warning = [e for e in false if e["severity"] == "warning"]
    machine_minutes = len(ids) * (ended - judged_from).total_seconds() / 60
    result = {
        "minutes": round((ended - judged_from).total_seconds() / 60, 1), "machines": len(ids),
        "faults": len(injected), "found": len(found), "episodes": len(episodes),
        "false_critical": len(false_critical), "false_warning": len(false_warning),
        "false_warning_per_50_machine_minutes": 50 * len(false_warning) / machine_minutes if machine_minutes else None,
        "missed": [a["description"] for a in injected if a not in found],
        "false": [f"{ids[e['machine_id']]} {e['severity']} {e['anomaly_type']} {e['start']} ×{e['count']} "
                  f"peak {e['peak_value']:.1f} vs {e['peak_expected']:.1f}" for e in false],
    }
    print(json.dumps(result, indent=1))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)


def get_status(base, machine):
    try:
        with urllib.request.urlopen(base + f"/api/v1/machines/{machine}/detector", timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


if __name__ == "__main__":
    main()
