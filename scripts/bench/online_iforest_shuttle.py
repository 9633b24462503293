#!/usr/bin/env python3
"""Detection quality of Python onad 0.3.0's OnlineIsolationForest on a labelled CSV (SHUTTLE).

Usage:
    /tmp/pyref/bin/python scripts/bench/online_iforest_shuttle.py DATA.csv [--rows N] [--seeds 1,2,3]
        [--params 'num_trees=100,window_size=2048' ...]

DATA.csv: a header, feature columns, the 0/1 label last. onad's OnlineIsolationForest has no seed: each
run seeds numpy's global generator with np.random.seed(seed) first.

Two protocols per parameter set and seed:
  prequential: the first N rows, score_one(x) then learn_one(x); ROC-AUC and PR-AUC (average precision).
  onad-test:   onad's SHUTTLE integration-test protocol (models.md 4.5): learn the first 1,000 normal rows
               (label 0; anomalies met on the way are passed over), then for the next 2,000 rows
               learn_one(x) then score_one(x); average precision.
Prints one JSON object: {params: {seed: {...}}} with the metrics and rows/s.

Metrics follow scikit-learn: ROC-AUC with tied scores counted half, average precision as the step sum
over distinct thresholds. onad imports torch at import time; it is stubbed (scripts/bench/python_onad.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from quality import load, onad_test, prequential  # noqa: E402  (also stubs torch)

import numpy as np  # noqa: E402
from onad.model.iforest.online import OnlineIsolationForest  # noqa: E402


def parse_params(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        k, v = part.split("=")
        out[k] = v if k in ("type", "metric") else (float(v) if k == "subsample" else int(v))
    return out


def run_prequential(params, seed, rows, labels):
    np.random.seed(seed)  # onad's OnlineIsolationForest draws from numpy's global generator
    return prequential(OnlineIsolationForest(**params), rows, labels)


def run_onad_test(params, seed, rows, labels):
    np.random.seed(seed)
    return onad_test(OnlineIsolationForest(**params), rows, labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--params", action="append", default=None)
    ap.add_argument("--protocol", choices=["both", "prequential", "onad-test"], default="both")
    args = ap.parse_args()
    rows, labels = load(args.data)
    seeds = [int(s) for s in args.seeds.split(",")]
    result = {}
    for text in args.params or [""]:
        params = parse_params(text)
        per_seed = {}
        for seed in seeds:
            r = {}
            if args.protocol in ("both", "onad-test"):
                r["onad_test"] = run_onad_test(params, seed, rows, labels)
            if args.protocol in ("both", "prequential"):
                n = args.rows or len(rows)
                r["prequential"] = run_prequential(params, seed, rows[:n], labels[:n])
            per_seed[seed] = r
            print(f"{text or 'defaults'} seed {seed}: {r}", file=sys.stderr, flush=True)
        result[text or "defaults"] = per_seed
    print(json.dumps(result))


if __name__ == "__main__":
    main()
