"""What the side-by-side quality scripts share: the torch stub (through python_onad), the two metrics
with scikit-learn's conventions (ROC-AUC with ties counted half, average precision as the step sum over
distinct thresholds; NaN when a class is missing), and reading a labelled CSV as onad's dict rows.

Imported by asd_iforest_shuttle.py, online_iforest_shuttle.py, rand_hist_shuttle.py and knn_onad.py (run
them from anywhere: each puts this folder on sys.path first).
"""

from __future__ import annotations

import csv
import sys

import python_onad  # noqa: F401  (stubs torch, which onad imports at import time)

import numpy as np  # noqa: E402


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def roc_auc(scores, labels) -> float:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")  # undefined without both classes (e.g. onad-test on a set under 3,000 rows)
    # Mid-ranks: tied scores share the mean of the ranks they span.
    values, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mid = ends - (counts - 1) / 2.0
    ranks = mid[inverse]
    pos = int(y.sum())
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def average_precision(scores, labels) -> float:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_each = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last_of_each]
    seen = last_of_each + 1
    precision = tp / seen
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def load(path: str):
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        names = next(reader)[:-1]
        rows, labels = [], []
        for rec in reader:
            if not rec:
                continue
            rows.append({n: float(v) for n, v in zip(names, rec[:-1])})
            labels.append(int(float(rec[-1])))
    return rows, labels


def prequential(model, rows, labels) -> dict:
    """Score then learn every row; ROC-AUC, PR-AUC and rows/s of the loop."""
    import time

    scores = []
    t0 = time.perf_counter()
    for x in rows:
        scores.append(model.score_one(x))
        model.learn_one(x)
    dt = time.perf_counter() - t0
    return {"roc_auc": roc_auc(scores, labels), "pr_auc": average_precision(scores, labels),
            "rows_per_sec": len(rows) / dt}


def onad_test(model, rows, labels) -> dict:
    """onad's SHUTTLE integration-test protocol (models.md 4.5): learn the first 1,000 normal rows
    (anomalies met on the way are passed over), then learn_one then score_one on the next 2,000 rows."""
    learned, i = 0, 0
    while learned < 1000 and i < len(rows):
        if labels[i] == 0:
            model.learn_one(rows[i])
            learned += 1
        i += 1
    scores, ys = [], []
    for x, y in zip(rows[i:i + 2000], labels[i:i + 2000]):
        model.learn_one(x)
        scores.append(model.score_one(x))
        ys.append(y)
    return {"pr_auc": average_precision(scores, ys), "roc_auc": roc_auc(scores, ys)}


def rust_scores(binary, data, protocol, spec: dict):
    """Runs the onad-models `scores` example (`BINARY DATA PROTOCOL SPEC_JSON`); its CSV lines split, and the
    wall time of the whole process."""
    import json
    import subprocess
    import time

    t0 = time.perf_counter()
    out = subprocess.run([binary, data, protocol, json.dumps(spec)], check=True, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    return [line.split(",") for line in out.stdout.splitlines()], dt
