#!/usr/bin/env python3
"""Writes 100,000 x 8 rows (5 % outliers) to bench/out/iforest.f64 and times
scikit-learn's IsolationForest fit + score_samples on them with n_jobs=1."""
import pathlib
import sys
import time

import numpy as np
from sklearn.ensemble import IsolationForest

out = pathlib.Path(__file__).resolve().parent / "out"
out.mkdir(exist_ok=True)
rng = np.random.default_rng(7)
n, d = 100_000, 8
x = rng.normal(0, 1, (n, d))
x[: n // 20] = rng.uniform(-6, 6, (n // 20, d))
x.astype("<f8").tofile(out / "iforest.f64")
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
best = float("inf")
for seed in range(repeats):
    t = time.perf_counter()
    m = IsolationForest(random_state=seed, n_jobs=1).fit(x)
    s = m.score_samples(x)
    best = min(best, time.perf_counter() - t)
print(f"scikit-learn: {n} rows x {d}: fit+score best of {repeats} {best * 1e3:.1f} ms (n_jobs=1, mean score {s.mean():.4f})")
