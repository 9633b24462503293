#!/usr/bin/env python3
"""moving_mahalanobis_distance: rows/s against the number of features, Rust against Python onad 0.3.0.

Usage:
    /tmp/pyref/bin/python scripts/bench/mahalanobis_dims.py --rust target/release/examples/scores
        [--dims 5,10,20,36,50] [--rows 20000] [--python-rows 3000] [--window 100] [--work DIR]

For each d it writes a seeded stream of correlated Gaussian rows (a fixed random mixing matrix, so the
window covariance is well conditioned, and 1 % of rows shifted far off) to DIR/mahal_dD.csv, runs the Rust
`scores` example on it (prequential protocol: best of five runs of the loop's wall time), and Python
onad's MovingMahalanobisDistance(window_size) on the first --python-rows rows (score_one then learn_one per
row, time.process_time around the loop alone; rows read into dicts before timing). Both use ddof 1 here
(`bias = false` on the Rust side, which is what onad computes). Prints one line per d and a JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_stream(path: Path, d: int, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    x = rng.normal(size=(rows, d)) @ mix
    labels = (rng.random(rows) < 0.01).astype(int)
    x[labels == 1] += 6.0 * rng.normal(size=(labels.sum(), d))
    header = ",".join([f"f{i}" for i in range(d)] + ["label"])
    np.savetxt(path, np.column_stack([x, labels]), delimiter=",", header=header, comments="", fmt="%.17g")
    return x


def rust_rows_per_second(binary: str, csv: Path, window: int, repeats: int = 5) -> float:
    """Best of `repeats` runs of the loop's wall time (its CPU time is counted in scheduler ticks here)."""
    model = json.dumps({"moving_mahalanobis_distance": {"window_size": window, "bias": False}})
    best = 0.0
    for _ in range(repeats):
        out = subprocess.run([binary, str(csv), "prequential", model], capture_output=True, text=True, check=True)
        fields = out.stderr.split()
        seconds = float(fields[fields.index("loop_seconds") + 1])
        best = max(best, int(fields[fields.index("rows") + 1]) / seconds)
    return best


def python_rows_per_second(x: np.ndarray, window: int) -> float:
    from onad.model.stat.multi import MovingMahalanobisDistance

    names = [f"f{i}" for i in range(x.shape[1])]
    data = [dict(zip(names, map(float, row))) for row in x]
    model = MovingMahalanobisDistance(window_size=window)
    start = time.process_time()
    for row in data:
        model.score_one(row)
        model.learn_one(row)
    return len(data) / (time.process_time() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rust", required=True, help="the release `scores` example binary")
    ap.add_argument("--dims", default="5,10,20,36,50")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--python-rows", type=int, default=3_000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--work", default="/tmp/onad-mahal-dims")
    ap.add_argument("--no-python", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result = {}
    for d in [int(v) for v in args.dims.split(",")]:
        csv = work / f"mahal_d{d}.csv"
        x = write_stream(csv, d, args.rows, seed=d)
        rust = rust_rows_per_second(args.rust, csv, args.window)
        py = None if args.no_python else python_rows_per_second(x[: args.python_rows], args.window)
        ratio = f"{rust / py:6.0f}x" if py else "-"
        print(f"d={d:3d}  rust {rust:12,.0f} rows/s  python {py or 0:10,.0f} rows/s  {ratio}", file=sys.stderr)
        result[d] = {"rust": rust, "python": py}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
