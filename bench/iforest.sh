#!/usr/bin/env bash
# Isolation forest: enms vs scikit-learn (n_jobs=1) on the same 100,000 x 8
# rows. enms runs once on all cores and once pinned to one core.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-target/fixtures-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet -r scripts/fixtures/requirements.txt
"$VENV/bin/python" bench/iforest.py 5
cargo build --release --quiet -p enms-analytics --example iforest_bench
target/release/examples/iforest_bench bench/out/iforest.f64 8 5
RAYON_NUM_THREADS=1 taskset -c 0 target/release/examples/iforest_bench bench/out/iforest.f64 8 5
