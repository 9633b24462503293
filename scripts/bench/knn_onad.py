#!/usr/bin/env python3
"""KNN: Python onad 0.3.0 next to the Rust port (`crates/onad-models/examples/knn_bench.rs`).

Usage:
    /tmp/pyref/bin/python scripts/bench/knn_onad.py quality SHUTTLE.csv RUST_SCORES.csv
    /tmp/pyref/bin/python scripts/bench/knn_onad.py scaling STREAM.csv

quality: runs onad's KNN over FaissSimilaritySearchEngine on SHUTTLE (`f1..f9,label`, e.g.
../shared/data/shippable/shuttle_odds.csv) in the two protocols of `knn_bench shuttle` (which wrote
RUST_SCORES.csv from the same file):
  - prequential: score then learn every row, k=55, window_size=250, warm_up=55;
  - onad: onad's SHUTTLE test (learn the first 1,000 normal rows, then learn then score the next 2,000),
    k=55, window_size=250, warm_up=50.
Prints ROC-AUC and PR-AUC (average precision, scikit-learn's definition and tie handling) of both sides,
computed by the same code, and the largest relative difference between their scores.

scaling: score + learn rows/s of onad's KNN (k=55, warm_up=55) on the benchmark stream written by
`cargo run --release -p onad-models --example synthetic -- STREAM.csv`, for window sizes 256, 1024,
4096 and the first 2 or all 10 features; the window is filled before timing; process CPU time (as the
Rust side counts its thread's), so other load on the machine does not count. One JSON line each.

onad imports torch at import time; it is stubbed as in scripts/bench/python_onad.py.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import python_onad  # noqa: E402,F401  (stubs torch)
import quality as quality_metrics  # noqa: E402

import numpy as np  # noqa: E402
from onad.model.distance.knn import KNN  # noqa: E402
from onad.utils.similar.faiss_engine import FaissSimilaritySearchEngine  # noqa: E402


def roc_auc(y, s):
    """The shared metric (quality.py), in this script's (labels, scores) order."""
    return quality_metrics.roc_auc(s, y)


def average_precision(y, s):
    return quality_metrics.average_precision(s, y)


def load(path):
    return quality_metrics.load(path)


def knn(k, w, warm_up):
    return KNN(k=k, similarity_engine=FaissSimilaritySearchEngine(window_size=w, warm_up=warm_up))


def quality(shuttle, rust_path):
    xs, ys = load(shuttle)
    rust: dict[str, list[tuple[int, float, float]]] = {}
    with open(rust_path, newline="") as fh:
        for rec in csv.DictReader(fh):
            rust.setdefault(rec["protocol"], []).append((int(rec["row"]), float(rec["label"]), float(rec["score"])))

    t0 = time.perf_counter()
    m = knn(55, 250, 55)
    pre = []
    for x in xs:
        pre.append(float(m.score_one(x)))
        m.learn_one(x)
    pre_rate = len(xs) / (time.perf_counter() - t0)

    m = knn(55, 250, 50)
    onad_rows, onad_scores, warm, i = [], [], 0, 0
    while warm < 1000:
        if ys[i] == 0:
            m.learn_one(xs[i])
            warm += 1
        i += 1
    for j in range(i, i + 2000):
        m.learn_one(xs[j])
        onad_rows.append(j)
        onad_scores.append(float(m.score_one(xs[j])))

    out = {}
    for name, rows, py in [("prequential", list(range(len(xs))), pre), ("onad", onad_rows, onad_scores)]:
        r = rust[name]
        assert [row for row, _, _ in r] == rows, f"{name}: the Rust rows differ"
        labels = [ys[row] for row in rows]
        rs = np.array([s for _, _, s in r])
        ps = np.array(py)
        rel = np.abs(rs - ps) / np.maximum(np.maximum(np.abs(rs), np.abs(ps)), 1e-300)
        out[name] = {
            "rows": len(rows),
            "anomalies": int(sum(labels)),
            "rust": {"roc_auc": roc_auc(labels, rs), "pr_auc": average_precision(labels, rs)},
            "python_onad": {"roc_auc": roc_auc(labels, ps), "pr_auc": average_precision(labels, ps)},
            "max_relative_score_difference": float(rel.max()),
        }
    out["python_prequential_rows_per_sec"] = pre_rate
    print(json.dumps(out, indent=1))


def scaling(stream):
    with open(stream, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [{f"f{j}": float(rec[f"f{j}"]) for j in range(10)} for rec in reader]
    for d in [2, 10]:
        data = [{f"f{j}": x[f"f{j}"] for j in range(d)} for x in rows]
        for w in [256, 1024, 4096]:
            m = knn(55, w, 55)
            for x in data[:w]:
                m.learn_one(x)
            timed = data[w : w + (4000 if w <= 1024 else 1500)]
            t0 = time.process_time()
            for x in timed:
                m.score_one(x)
                m.learn_one(x)
            rate = len(timed) / (time.process_time() - t0)
            print(json.dumps({"features": d, "window_size": w, "k": 55, "rows_per_sec": round(rate)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["quality"] and len(sys.argv) == 4:
        quality(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["scaling"] and len(sys.argv) == 3:
        scaling(sys.argv[2])
    else:
        sys.exit(__doc__)
