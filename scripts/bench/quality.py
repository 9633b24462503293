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
