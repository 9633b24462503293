#!/usr/bin/env python3
"""ASDIsolationForest, Python onad 0.3.0 next to onad-rs, on a labelled CSV (SHUTTLE by default).

Usage:
    /tmp/pyref/bin/python scripts/bench/asd_iforest_shuttle.py DATA.csv --rust BIN [--seeds 1,2,3]
        [--params n_estimators=100,max_samples=256 ...] [--skip-prequential] [--skip-published]

DATA.csv: a header, feature columns, the 0/1 label last (e.g. ../shared/data/shippable/shuttle_odds.csv).
BIN: the onad-models `scores` example (cargo build --release -p onad-models --example scores;
target/release/examples/scores), which scores the same file with asd_isolation_forest.

For every parameter set and seed, both libraries, same rows, same run:
  prequential: every row, score_one(x) then learn_one(x); ROC-AUC, PR-AUC (average precision), rows/s.
  onad-test:   onad's SHUTTLE integration-test protocol: learn the first 1,000 rows labelled 0 (others met
               on the way are passed over), then for the next 2,000 rows learn_one(x) then score_one(x);
               PR-AUC. onad's published figure: n_estimators=50, max_samples=256, seed=42 -> 0.888677.
Means over the seeds are reported per side. One JSON object on stdout, a table on stderr.

Metrics as scikit-learn computes them: ROC-AUC from mid-ranks (ties count half); average precision as
the sum over distinct score thresholds of (recall step) x precision. onad imports torch at import time;
torch is stubbed (as in scripts/bench/python_onad.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from quality import average_precision, load, log, onad_test, prequential, roc_auc
from quality import rust_scores as run_rust  # noqa: E402  (also stubs torch)

import numpy as np  # noqa: E402
from onad.model.iforest.asd import ASDIsolationForest  # noqa: E402


def parse_params(text: str) -> dict:
    return {k: int(v) for k, v in (p.split("=") for p in text.split(",") if p)}


def python_prequential(params, seed, rows, labels):
    return prequential(ASDIsolationForest(**params, seed=seed), rows, labels)


def python_onad_test(params, seed, rows, labels):
    return onad_test(ASDIsolationForest(**params, seed=seed), rows, labels)


def rust_scores(binary, data, protocol, params, seed):
    return run_rust(binary, data, protocol, {"asd_isolation_forest": {**params, "seed": seed}})


def rust_prequential(binary, data, params, seed, labels):
    lines, dt = rust_scores(binary, data, "prequential", params, seed)
    scores = [float(s[0]) for s in lines]
    assert len(scores) == len(labels)
    # Wall time of the whole process (reading and parsing the CSV included).
    return {"roc_auc": roc_auc(scores, labels), "pr_auc": average_precision(scores, labels),
            "rows_per_sec_process": len(scores) / dt}


def rust_onad_test(binary, data, params, seed):
    lines, _ = rust_scores(binary, data, "onad-test", params, seed)
    scores = [float(s[0]) for s in lines]
    y = [int(float(s[1])) for s in lines]
    return {"pr_auc": average_precision(scores, y), "roc_auc": roc_auc(scores, y)}


def mean(runs, key):
    return float(np.mean([r[key] for r in runs]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--rust", required=True, help="path of the onad-models `scores` example binary")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--params", action="append", default=None,
                    help="n_estimators=..,max_samples=.. (repeatable; default: onad's defaults 100/256)")
    ap.add_argument("--skip-prequential", action="store_true")
    ap.add_argument("--skip-published", action="store_true", help="leave out onad's SHUTTLE snapshot configuration")
    args = ap.parse_args()

    rows, labels = load(args.data)
    seeds = [int(s) for s in args.seeds.split(",")]
    param_sets = [parse_params(p) for p in (args.params or ["n_estimators=100,max_samples=256"])]
    log(f"{args.data}: {len(rows)} rows, {sum(labels)} anomalies; seeds {seeds}")

    report = {"data": args.data, "rows": len(rows), "seeds": seeds, "results": []}
    for params in param_sets:
        entry = {"params": params, "python": {}, "rust": {}}
        for side in ("python", "rust"):
            runs_t = []
            runs_p = []
            for seed in seeds:
                if side == "python":
                    runs_t.append(python_onad_test(params, seed, rows, labels))
                    if not args.skip_prequential:
                        runs_p.append(python_prequential(params, seed, rows, labels))
                else:
                    runs_t.append(rust_onad_test(args.rust, args.data, params, seed))
                    if not args.skip_prequential:
                        runs_p.append(rust_prequential(args.rust, args.data, params, seed, labels))
            entry[side]["onad_test"] = {"per_seed": runs_t, "pr_auc_mean": mean(runs_t, "pr_auc")}
            if runs_p:
                entry[side]["prequential"] = {
                    "per_seed": runs_p,
                    "roc_auc_mean": mean(runs_p, "roc_auc"),
                    "pr_auc_mean": mean(runs_p, "pr_auc"),
                }
            line = f"{json.dumps(params)} {side:6s} onad-test PR-AUC {entry[side]['onad_test']['pr_auc_mean']:.4f}"
            if runs_p:
                p = entry[side]["prequential"]
                line += f"  prequential ROC-AUC {p['roc_auc_mean']:.4f} PR-AUC {p['pr_auc_mean']:.4f}"
            log(line)
        report["results"].append(entry)

    if args.skip_published:
        print(json.dumps(report))
        return
    # onad's published snapshot configuration, seed 42 on both sides.
    pub = {"n_estimators": 50, "max_samples": 256}
    report["published"] = {
        "params": {**pub, "seed": 42},
        "onad_figure": 0.888677,
        "python": python_onad_test(pub, 42, rows, labels)["pr_auc"],
        "rust": rust_onad_test(args.rust, args.data, pub, 42)["pr_auc"],
        "python_mean_seeds": mean([python_onad_test(pub, s, rows, labels) for s in seeds], "pr_auc"),
        "rust_mean_seeds": mean([rust_onad_test(args.rust, args.data, pub, s) for s in seeds], "pr_auc"),
    }
    log(f"published config {pub} seed 42: onad figure 0.888677, python {report['published']['python']:.6f}, "
        f"rust {report['published']['rust']:.6f}; mean of seeds {seeds}: python "
        f"{report['published']['python_mean_seeds']:.4f}, rust {report['published']['rust_mean_seeds']:.4f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
