#!/usr/bin/env python3
"""StreamRandomHistogramForest, Python onad 0.3.0 next to onad-rs, on a labelled CSV (SHUTTLE).

Usage:
    /tmp/pyref/bin/python scripts/bench/rand_hist_shuttle.py DATA.csv [--rust BIN] [--rows N]
        [--seeds 1,2,3] [--params 'n_estimators=25,max_bins=10,window_size=256' ...]

BIN: the onad-models `scores` example (cargo build --release -p onad-models --example scores), run with
stream_random_histogram_forest for each `feature_range` (`learned`, the default, and `unit`, onad's
[0, 1] assumption, which on the same rows is onad's algorithm with other random intervals).

DATA.csv: a header, feature columns, the 0/1 label last. Rows are fed as they are (raw values; onad's
integration test loads SHUTTLE unscaled too). Each run passes `seed` to the model, which reseeds Python's
global `random` with it.

Two protocols per parameter set and seed:
  prequential: the first N rows, score_one(x) then learn_one(x); ROC-AUC and PR-AUC (average precision).
  onad-test:   onad's SHUTTLE integration-test protocol (models.md 4.5): learn the first 1,000 normal rows
               (label 0; anomalies met on the way are passed over), then for the next 2,000 rows
               learn_one(x) then score_one(x); average precision.
Prints one JSON object: {params: {side: {seed: {...}}, means: {...}}} with the metrics and rows/s.

Metrics follow scikit-learn: ROC-AUC with tied scores counted half, average precision as the step sum
over distinct thresholds. onad imports torch at import time; it is stubbed (scripts/bench/python_onad.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from quality import average_precision, load, onad_test, prequential, roc_auc
from quality import rust_scores as run_rust  # noqa: E402  (also stubs torch)

import numpy as np  # noqa: E402
from onad.model.iforest.rand_hist import StreamRandomHistogramForest  # noqa: E402


def parse_params(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        k, v = part.split("=")
        out[k] = int(v)
    return out


def run_prequential(params, seed, rows, labels):
    return prequential(StreamRandomHistogramForest(**params, seed=seed), rows, labels)


def run_onad_test(params, seed, rows, labels):
    return onad_test(StreamRandomHistogramForest(**params, seed=seed), rows, labels)


def rust_run(binary, data, protocol, params, seed, feature_range, rows):
    spec = {"stream_random_histogram_forest": {**params, "seed": seed, "feature_range": feature_range}}
    lines, _ = run_rust(binary, data, protocol, spec)
    scores = [float(v[0]) for v in lines]
    if protocol == "onad-test":
        return {"pr_auc": average_precision(scores, [int(float(v[1])) for v in lines])}
    scores, labels = scores[:rows[0]], rows[1][:rows[0]]
    return {"roc_auc": roc_auc(scores, labels), "pr_auc": average_precision(scores, labels)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--rust", default=None)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--params", action="append", default=None)
    ap.add_argument("--protocol", choices=["both", "prequential", "onad-test"], default="both")
    args = ap.parse_args()
    rows, labels = load(args.data)
    n = args.rows or len(rows)
    seeds = [int(s) for s in args.seeds.split(",")]
    sides = ["python"] + ([f"rust_{r}" for r in ("learned", "unit")] if args.rust else [])
    result = {}
    for text in args.params or [""]:
        params = parse_params(text)
        runs = {side: {} for side in sides}
        for seed in seeds:
            for side in sides:
                r = {}
                for protocol in ("onad-test", "prequential"):
                    if args.protocol not in ("both", protocol):
                        continue
                    key = protocol.replace("-", "_")
                    if side == "python":
                        r[key] = (run_onad_test(params, seed, rows, labels) if protocol == "onad-test"
                                  else run_prequential(params, seed, rows[:n], labels[:n]))
                    else:
                        r[key] = rust_run(args.rust, args.data, protocol, params, seed, side[5:], (n, labels))
                runs[side][seed] = r
                print(f"{text or 'defaults'} {side} seed {seed}: {r}", file=sys.stderr, flush=True)
        means = {}
        for side in sides:
            for key in ("onad_test", "prequential"):
                vals = [r[key] for r in runs[side].values() if key in r]
                if vals:
                    means[f"{side} {key}"] = {m: float(np.mean([v[m] for v in vals])) for m in vals[0]}
        for k, v in means.items():
            print(f"{text or 'defaults'} mean {k}: {v}", file=sys.stderr, flush=True)
        result[text or "defaults"] = {"runs": runs, "means": means}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
