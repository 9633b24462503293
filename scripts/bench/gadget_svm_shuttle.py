#!/usr/bin/env python3
"""gadget_svm: Python onad 0.3.0's GADGETSVM next to the Rust port on the same SHUTTLE rows.

Usage (from the workspace root):
    /tmp/pyref/bin/python scripts/bench/gadget_svm_shuttle.py SHUTTLE.csv [--rows N] [--rust BIN]

SHUTTLE.csv: `f1..f9,label` (e.g. ../shared/data/shippable/shuttle_odds.csv). Both sides run onad's
defaults (graph {0: [1], 1: [2], 2: []}, threshold 0.0, learning_rate 0.01, nu 0.5, lambda_reg 0.01) on
the raw rows in two protocols:
  - prequential: score then learn every row (the first N rows with --rows);
  - onad-test: onad's SHUTTLE test (learn the first 1,000 normal rows, then learn then score the next 2,000).
The Rust scores come from BIN, the onad-models `scores` example (default target/release/examples/scores;
`cargo build --release -p onad-models --example scores`); the loops and metrics are quality.py's. Prints one JSON line per
protocol: ROC-AUC and PR-AUC of both sides (the shared metrics of quality.py) and the largest absolute
difference between their scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (stubs torch)

from onad.model.svm.gadget import GADGETSVM  # noqa: E402


def python_scores(xs, ys, protocol):
    if protocol == "prequential":
        return quality.score_rows(GADGETSVM(), xs)[0], ys
    return quality.onad_test_scores(GADGETSVM(), xs, ys)


def rust_scores(binary, path, protocol):
    lines, _ = quality.rust_scores(binary, path, protocol, {"gadget_svm": {}})
    return [float(v[0]) for v in lines]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shuttle")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--rust", default="target/release/examples/scores",
                    help="the onad-models `scores` example (cargo build --release -p onad-models --example scores)")
    args = ap.parse_args()
    xs, ys = quality.load(args.shuttle)
    path = args.shuttle
    if args.rows is not None:
        xs, ys = xs[: args.rows], ys[: args.rows]
        fd, path = tempfile.mkstemp(suffix=".csv")
        os.close(fd)
        quality.write_prefix(args.shuttle, args.rows, path)
    try:
        for protocol in ["prequential", "onad-test"]:
            py, labels = python_scores(xs, ys, protocol)
            rs = rust_scores(args.rust, path, protocol)
            assert len(py) == len(rs), (protocol, len(py), len(rs))
            print(json.dumps({
                "protocol": protocol,
                "rows": len(py),
                "python_roc_auc": quality.roc_auc(py, labels),
                "python_pr_auc": quality.average_precision(py, labels),
                "rust_roc_auc": quality.roc_auc(rs, labels),
                "rust_pr_auc": quality.average_precision(rs, labels),
                "max_abs_diff": max(abs(a - b) for a, b in zip(py, rs)),
            }), flush=True)
    finally:
        if path != args.shuttle:
            os.unlink(path)


if __name__ == "__main__":
    main()
