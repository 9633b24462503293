#!/usr/bin/env python3
"""autoencoder: Python onad 0.3.0's Autoencoder (real torch) next to the Rust port on SHUTTLE, in onad's
test protocol.

Usage (from the workspace root; torch must be installed in the Python environment):
    /tmp/pyref/bin/python scripts/bench/autoencoder_shuttle.py SHUTTLE.csv [--seeds 42,1,2,3] [--rust BIN]
        [--prequential-rows N]

SHUTTLE.csv: `f1..f9,label` (e.g. ../shared/data/shippable/shuttle_odds.csv). Both sides run the setup of
onad's SHUTTLE test: VanillaAutoencoder (d-64-32-16-32-64-d, ReLU), Adam at lr 1e-3, MSE, on raw rows;
Python builds `VanillaAutoencoder(9, seed=s)`, Rust `{"autoencoder": {"seed": s}}`. The weights cannot be
the same (torch's generator against the Rust model's PCG64), so each seed is one draw on either side.
Protocols: onad-test (learn the first 1,000 normal rows, then learn then score the next 2,000; onad
publishes PR-AUC 0.4000581594 for seed 42) and, with --prequential-rows N, prequential on the first N rows.
The Rust scores come from BIN, the onad-models `scores` example (default target/release/examples/scores).
Prints one JSON line per protocol and seed, then one with the means over the seeds other than 42.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch  # noqa: F401  (the real one, before quality.py's stub would replace it)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402

from onad.model.deep.autoencoder import Autoencoder  # noqa: E402
from onad.utils.deep.architecture import VanillaAutoencoder  # noqa: E402

torch.set_num_threads(1)


def onad_model(seed: int, d: int) -> Autoencoder:
    arch = VanillaAutoencoder(input_size=d, seed=seed)
    return Autoencoder(model=arch, optimizer=torch.optim.Adam(arch.parameters(), lr=0.001),
                       criterion=torch.nn.MSELoss())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shuttle")
    ap.add_argument("--seeds", default="42,1,2,3")
    ap.add_argument("--prequential-rows", type=int, default=None)
    ap.add_argument("--rust", default="target/release/examples/scores")
    args = ap.parse_args()
    xs, ys = quality.load(args.shuttle)
    d = len(xs[0])
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [("onad-test", args.shuttle, xs, ys)]
    prefix = None
    if args.prequential_rows:
        fd, prefix = tempfile.mkstemp(suffix=".csv")
        os.close(fd)
        quality.write_prefix(args.shuttle, args.prequential_rows, prefix)
        n = args.prequential_rows
        runs.append(("prequential", prefix, xs[:n], ys[:n]))
    means = {}
    try:
        for protocol, path, rows, labels in runs:
            for seed in seeds:
                t0 = time.perf_counter()
                if protocol == "onad-test":
                    py, truth = quality.onad_test_scores(onad_model(seed, d), rows, labels)
                else:
                    py, truth = quality.score_rows(onad_model(seed, d), rows)[0], labels
                py_seconds = time.perf_counter() - t0
                lines, rust_seconds = quality.rust_scores(args.rust, path, protocol, {"autoencoder": {"seed": seed}})
                rs = [float(v[0]) for v in lines]
                assert len(rs) == len(py), (protocol, len(rs), len(py))
                out = {
                    "protocol": protocol,
                    "seed": seed,
                    "rows": len(py),
                    "python_roc_auc": quality.roc_auc(py, truth),
                    "python_pr_auc": quality.average_precision(py, truth),
                    "rust_roc_auc": quality.roc_auc(rs, truth),
                    "rust_pr_auc": quality.average_precision(rs, truth),
                    "python_seconds": py_seconds,
                    "rust_process_seconds": rust_seconds,
                }
                print(json.dumps(out), flush=True)
                if seed != 42:
                    for k in ("python_roc_auc", "python_pr_auc", "rust_roc_auc", "rust_pr_auc"):
                        means.setdefault((protocol, k), []).append(out[k])
        for protocol, _, _, _ in runs:
            row = {"protocol": protocol, "mean_over_seeds": [s for s in seeds if s != 42]}
            for (p, k), v in means.items():
                if p == protocol:
                    row[k] = sum(v) / len(v)
            print(json.dumps(row), flush=True)
    finally:
        if prefix:
            os.unlink(prefix)


if __name__ == "__main__":
    main()
