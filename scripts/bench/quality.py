"""What the side-by-side quality scripts share: the torch stub (through python_onad), the two metrics
with scikit-learn's conventions (ROC-AUC with ties counted half, average precision as the step sum over
distinct thresholds; NaN when a class is missing), and reading a labelled CSV as onad's dict rows.

Also: the score-then-learn loop with an optional time budget (`score_rows`), metrics over a subset of
the rows (`metrics`), writing a prepared CSV (`write_csv`) and running the Rust `scores` example
(`rust_scores`, `rust_prequential_scores`, `rust_knows`).

Imported by asd_iforest_shuttle.py, online_iforest_shuttle.py, rand_hist_shuttle.py, mondrian_shuttle.py,
gadget_svm_shuttle.py, knn_onad.py and quality_table.py (run them from anywhere: each puts this folder on
sys.path first).
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


def score_rows(model, rows, seconds=None):
    """Score then learn each row in order; stops after the first row that ends past `seconds` of loop
    time (None: every row). Returns the scores (one per row processed) and the loop's seconds."""
    import time

    scores = []
    t0 = time.perf_counter()
    for x in rows:
        scores.append(float(model.score_one(x)))
        model.learn_one(x)
        if seconds is not None and time.perf_counter() - t0 > seconds:
            break
    return scores, time.perf_counter() - t0


def metrics(scores, labels, mask=None) -> dict:
    """ROC-AUC and PR-AUC of `scores` against `labels` (over the rows where `mask` is true, if given), the
    number of rows and anomalies they cover, of distinct scores, and of scores that are not finite (NaN
    counts as the lowest score, +-inf as themselves)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels[: len(s)], dtype=int)
    if mask is not None:
        keep = np.asarray(mask[: len(s)], dtype=bool)
        s, y = s[keep], y[keep]
    nonfinite = int((~np.isfinite(s)).sum())
    s = np.where(np.isnan(s), -np.inf, s)
    return {"roc_auc": roc_auc(s, y), "pr_auc": average_precision(s, y), "rows": int(len(s)),
            "anomalies": int(y.sum()), "distinct_scores": int(len(np.unique(s))), "nonfinite": nonfinite}


def prequential(model, rows, labels) -> dict:
    """Score then learn every row; ROC-AUC, PR-AUC and rows/s of the loop."""
    scores, dt = score_rows(model, rows)
    return {"roc_auc": roc_auc(scores, labels), "pr_auc": average_precision(scores, labels),
            "rows_per_sec": len(rows) / dt}


def onad_test_scores(model, rows, labels):
    """onad's SHUTTLE integration-test protocol (models.md 4.5): learn the first 1,000 normal rows
    (anomalies met on the way are passed over), then learn_one then score_one on the next 2,000 rows.
    Returns the 2,000 scores and their labels."""
    learned, i = 0, 0
    while learned < 1000 and i < len(rows):
        if labels[i] == 0:
            model.learn_one(rows[i])
            learned += 1
        i += 1
    scores, ys = [], []
    for x, y in zip(rows[i:i + 2000], labels[i:i + 2000]):
        model.learn_one(x)
        scores.append(float(model.score_one(x)))
        ys.append(y)
    return scores, ys


def onad_test(model, rows, labels) -> dict:
    """`onad_test_scores`, as PR-AUC and ROC-AUC."""
    scores, ys = onad_test_scores(model, rows, labels)
    return {"pr_auc": average_precision(scores, ys), "roc_auc": roc_auc(scores, ys)}


def write_csv(path, names, rows, labels) -> None:
    """A prepared CSV for both sides: a header of `names` then `label`; each row's values, its label last.
    `rows` are sequences of numbers in the order of `names`."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*names, "label"])
        for r, y in zip(rows, labels):
            w.writerow([*(repr(float(v)) for v in r), int(y)])


def write_prefix(src, n, dst) -> str:
    """The header and first `n` rows of the CSV `src`, written to `dst`; returns `dst`."""
    with open(src) as f, open(dst, "w") as out:
        for _, line in zip(range(n + 1), f):
            out.write(line)
    return dst


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


def rust_prequential_scores(binary, data, spec: dict):
    """The `scores` example's prequential scores of `data` as floats, and the process's wall seconds."""
    lines, dt = rust_scores(binary, data, "prequential", spec)
    return [float(v[0]) for v in lines], dt


def rust_prequential_run(binary, data, spec: dict):
    """The `scores` example's prequential scores of `data` as floats, the process's wall seconds, and its
    loop's own seconds (CSV parsing excluded: what the example prints on standard error, its thread's CPU
    time, or its wall time under 50 ms of CPU time; None when it prints none)."""
    import json
    import subprocess
    import time

    t0 = time.perf_counter()
    out = subprocess.run([binary, data, "prequential", json.dumps(spec)], check=True, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    loop = None
    for line in reversed(out.stderr.splitlines()):
        words = line.split()
        if words[:1] == ["loop_seconds"] and "cpu_seconds" in words:
            # The thread's CPU time advances by scheduler ticks (4 ms): under 50 ms the wall time is the
            # better clock (cargo xtask bench reads it the same way).
            cpu, wall = float(words[words.index("cpu_seconds") + 1]), float(words[1])
            loop = cpu if cpu >= 0.05 else wall
            break
    return [float(v) for v in out.stdout.split()], dt, loop


def rust_knows(binary, spec: dict, probe_csv) -> str | None:
    """None when the `scores` example builds `spec` and scores the small labelled CSV `probe_csv`; else its
    error message (e.g. `unknown variant` for a model the registry does not have yet)."""
    import json
    import subprocess

    out = subprocess.run([binary, probe_csv, "prequential", json.dumps(spec)], capture_output=True, text=True)
    return None if out.returncode == 0 else (out.stderr.strip() or f"exit code {out.returncode}")
