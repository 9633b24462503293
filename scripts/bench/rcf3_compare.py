#!/usr/bin/env python3
"""onad next to the Rust peer rcf3 (PyPI rcf3==0.5.2), same rows, same run: random_cut_forest against
`rcf3.Forest` (--model forest, the default), mstream against `rcf3.MStream` (--model mstream) or
online_isolation_forest against `rcf3.OnlineIForest` (--model oiforest).

Usage (from the workspace root; build the Rust side first with
`cargo build --release -p onad-models --example scores`):
    /tmp/pyref/bin/python scripts/bench/rcf3_compare.py [--rust BIN] [--data DIR] [--work DIR]
        [--model forest|mstream|oiforest] [--sets a,b] [--seeds 1,2,3] [--max-rows N] [--trees 40] [--sample-size 256]
        [--scoring depth|codisp]

Both sides run prequentially (score, then learn, every row in file order) on the prepared CSVs of
quality_table.py (the same data sets and preparation; prepared files already in --work are reused), with
equal trees and sample size and the same seeds: rcf3 as `Forest(d, num_trees=T, capacity=S, seed=s)`, its
other parameters at their defaults (time_decay auto, output_after auto, initial_accept_fraction 0.125),
fed by `update_and_score(row)` (documented as `score` then `update`); onad as
`{"random_cut_forest": {"n_trees": T, "sample_size": S, "warmup_samples": W, "seed": s, "scoring": F}}`,
the registry's other defaults. F (--scoring) defaults to `depth`, AWS's anomaly score, which is the one
rcf3's `score` and `update_and_score` compute (its `displacement_score` is another); `codisp`, onad's
default and aberrant's, compares a different score function. W (--warmup) defaults to S / 4, when rcf3's automatic output_after starts scoring (rcf3 is
ready after 65 rows at S = 256; onad's default, aberrant's, is S), so both sides score the same rows.

MStream: rcf3 as `MStream(numeric_dim=d, categorical_dim=0, num_rows=2, num_buckets=1024, alpha=0.6,
seed=s)` fed `update_and_score(row, [], i + 1)` (one tick per row, as onad without a time_key; alpha is
onad's and aberrant's default 0.6, rcf3's own default is 0.8); onad as `{"mstream": {"seed": s}}`.

Online isolation forest: rcf3 as `OnlineIForest(d, num_trees=100, window_size=2048, max_leaf_samples=32,
seed=s)` (onad's defaults for the three; rcf3's own are 32, 2048, 32); its scores for the metrics are
`score(row)` then `update(row)` (prequential, as onad; its `update_and_score` scores after learning), and
its rows/s is a second pass of `update_and_score(row)`, one call a row, so the Python call count does not
count twice; onad as `{"online_isolation_forest": {"seed": s}}` (the registry's defaults, onad's).

Timing: CPU time of the loop only, on both sides (the machine is shared, so wall time mostly measures the
other processes; wall-clock rows/s are in the JSON too). rcf3's is the Python loop over `update_and_score`
(time.process_time around the loop; the rows are Python lists of floats built before; rcf3 runs on the
calling thread only). onad's is the `scores` example's own prequential loop of `score_learn_one` over rows
already parsed (the thread's CPU time from /proc/thread-self/schedstat around the loop). Both one thread.
Metrics: quality.py's ROC-AUC (ties counted half) and average precision, over the set's evaluated rows.

Output: a markdown table on standard output and target/bench/rcf3_compare_MODEL.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402
import quality_table  # noqa: E402

import numpy as np  # noqa: E402

ROOT = HERE.parent.parent


def run_rcf3(rows, trees, sample_size, seed):
    import rcf3

    d = len(rows[0])
    forest = rcf3.Forest(d, num_trees=trees, capacity=sample_size, seed=seed)
    scores = []
    t0, c0 = time.perf_counter(), time.process_time()
    for x in rows:
        scores.append(forest.update_and_score(x))
    return scores, time.process_time() - c0, time.perf_counter() - t0


def run_rcf3_mstream(rows, seed):
    import rcf3

    m = rcf3.MStream(numeric_dim=len(rows[0]), categorical_dim=0, num_rows=2, num_buckets=1024, alpha=0.6,
                     seed=seed)
    scores = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i, x in enumerate(rows):
        scores.append(m.update_and_score(x, [], i + 1))
    return scores, time.process_time() - c0, time.perf_counter() - t0


def run_rcf3_oiforest(rows, seed):
    import rcf3

    def forest():
        return rcf3.OnlineIForest(len(rows[0]), num_trees=100, window_size=2048, max_leaf_samples=32, seed=seed)

    m, scores = forest(), []
    for x in rows:
        scores.append(m.score(x))
        m.update(x)
    m = forest()
    t0, c0 = time.perf_counter(), time.process_time()
    for x in rows:
        m.update_and_score(x)
    return scores, time.process_time() - c0, time.perf_counter() - t0


def run_onad(binary, path, spec):
    out = subprocess.run([binary, path, "prequential", json.dumps(spec)], capture_output=True, text=True, check=True)
    scores = [float(v) for v in out.stdout.split()]
    words = out.stderr.split()
    return scores, float(words[words.index("cpu_seconds") + 1]), float(words[words.index("loop_seconds") + 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rust", default=str(ROOT / "target/release/examples/scores"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data"))
    ap.add_argument("--model", choices=["forest", "mstream", "oiforest"], default="forest")
    ap.add_argument("--work", default="/tmp/onad-quality")
    ap.add_argument("--sets", default=",".join(quality_table.SETS))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--max-rows", type=int, default=None)
    ap.add_argument("--trees", type=int, default=40)
    ap.add_argument("--sample-size", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=None, help="onad's warmup_samples (default: sample size / 4)")
    ap.add_argument("--scoring", choices=["depth", "codisp"], default="depth",
                    help="onad's random_cut_forest score function (default depth, the one rcf3's score computes)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    warmup = args.warmup if args.warmup is not None else max(1, args.sample_size // 4)
    os.makedirs(args.work, exist_ok=True)

    results = []
    for name in args.sets.split(","):
        for part in quality_table.SETS[name](args.data, args.work):
            rows, labels = quality.load(part.path)
            path = part.path
            if args.max_rows is not None and len(rows) > args.max_rows:
                rows, labels = rows[: args.max_rows], labels[: args.max_rows]
                path = quality.write_prefix(part.path, args.max_rows,
                                            os.path.join(args.work, f"rcf3-prefix-{Path(part.path).name}"))
            lists = [list(r.values()) for r in rows]
            entry = {"part": part.label, "rows": len(rows), "onad": [], "rcf3": []}
            if args.model == "forest":
                entry["onad_setting"] = f"scoring={args.scoring}"
            for seed in seeds:
                if args.model == "forest":
                    s, cpu, wall = run_rcf3(lists, args.trees, args.sample_size, seed)
                    spec = {"random_cut_forest": {"n_trees": args.trees, "sample_size": args.sample_size,
                                                  "warmup_samples": warmup, "seed": seed, "scoring": args.scoring}}
                elif args.model == "mstream":
                    s, cpu, wall = run_rcf3_mstream(lists, seed)
                    spec = {"mstream": {"seed": seed}}
                else:
                    s, cpu, wall = run_rcf3_oiforest(lists, seed)
                    spec = {"online_isolation_forest": {"seed": seed}}
                m = quality.metrics(s, labels, part.eval_mask)
                entry["rcf3"].append({"seed": seed, "roc_auc": m["roc_auc"], "pr_auc": m["pr_auc"],
                                      "rows_per_sec": len(s) / (cpu if cpu > 0 else wall), "wall_rows_per_sec": len(s) / wall})
                s, cpu, wall = run_onad(args.rust, path, spec)
                assert len(s) == len(rows), (len(s), len(rows))
                m = quality.metrics(s, labels, part.eval_mask)
                entry["onad"].append({"seed": seed, "roc_auc": m["roc_auc"], "pr_auc": m["pr_auc"],
                                      "rows_per_sec": len(s) / (cpu if cpu > 0 else wall), "wall_rows_per_sec": len(s) / wall})
            if path != part.path:
                os.unlink(path)
            for side in ("onad", "rcf3"):
                entry[side + "_mean"] = {k: float(np.mean([r[k] for r in entry[side]]))
                                         for k in ("roc_auc", "pr_auc", "rows_per_sec")}
            quality.log(f"{part.label}: onad ROC {entry['onad_mean']['roc_auc']:.4f} "
                        f"{entry['onad_mean']['rows_per_sec']:.0f} rows/s; rcf3 ROC {entry['rcf3_mean']['roc_auc']:.4f} "
                        f"{entry['rcf3_mean']['rows_per_sec']:.0f} rows/s")
            results.append(entry)

    out_dir = ROOT / "target/bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rcf3_compare_{args.model}.json").write_text(json.dumps(results, indent=1))
    print(f"| set | rows | onad ROC-AUC | rcf3 ROC-AUC | onad PR-AUC | rcf3 PR-AUC | onad rows/s (CPU) | rcf3 rows/s (CPU) | speed ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in results:
        o, r = e["onad_mean"], e["rcf3_mean"]
        print(f"| {e['part']} | {e['rows']} | {o['roc_auc']:.3f} | {r['roc_auc']:.3f} | {o['pr_auc']:.3f} | "
              f"{r['pr_auc']:.3f} | {o['rows_per_sec']:.0f} | {r['rows_per_sec']:.0f} | "
              f"{o['rows_per_sec'] / r['rows_per_sec']:.1f}x |")
    means = {side: {k: float(np.mean([e[side + "_mean"][k] for e in results])) for k in ("roc_auc", "pr_auc")}
             for side in ("onad", "rcf3")}
    print(f"| mean | | {means['onad']['roc_auc']:.3f} | {means['rcf3']['roc_auc']:.3f} | "
          f"{means['onad']['pr_auc']:.3f} | {means['rcf3']['pr_auc']:.3f} | | | |")


if __name__ == "__main__":
    main()
