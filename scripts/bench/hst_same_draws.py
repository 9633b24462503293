#!/usr/bin/env python3
"""Checks that onad-rs's `half_space_trees` is aberrant 1.3.0's HalfSpaceTrees up to the random draws: aberrant's
class, with its work spaces and split dimensions drawn by the Rust generators (`rng.rs`: one PCG64 per tree
from `(seed, tree)`, `unit` per feature for the work-space centre, then `below(d)` per node in preorder),
behind aberrant's MinMaxScaler, must give the scores of the Rust `scores` example on
`min_max_scaler|half_space_trees` with `limits` [0, 1] for every feature (aberrant's work space): the same
integer mass sums, so scores equal up to the rounding of the normalisation (aberrant `1 - t / max`, Rust
`(max - t) / max`; within 1e-12).

Usage (from the workspace root, after `cargo build --release -p onad-models --example scores`):
    /tmp/pyref/bin/python scripts/bench/hst_same_draws.py DATA.csv [--seed S] [--rows N]
        [--rust target/release/examples/scores]

DATA.csv: a header, numeric features, the 0/1 label last (quality_table.py's prepared sets). Prints the
number of rows whose scores differ by more than 1e-12 and both sides' ROC-AUC. Scoring before the first learned row is 0.0 on
the Python side (aberrant's scaler refuses a row before it learned one), as on the Rust side.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "fidelity"))
import quality  # noqa: E402
from rust_draws import Pcg64, below  # noqa: E402

import numpy as np  # noqa: E402

M64 = (1 << 64) - 1


def mix64(z: int) -> int:
    """`rng::mix64` (the splitmix64 finaliser)."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def unit(pcg: Pcg64) -> float:
    """`rng::unit`: the top 53 bits as a double in [0, 1)."""
    return (pcg.next_u64() >> 11) * (1.0 / (1 << 53))


def rust_drawn_trees():
    """aberrant's HalfSpaceTrees whose trees are drawn as the Rust model draws them."""
    from aberrant.model.iforest import HalfSpaceTrees
    from aberrant.model.iforest.halfspace import HSTLeaf, HSTNode

    class RustDrawn(HalfSpaceTrees):
        def _initialize_trees(self) -> None:
            self._trees, self._workspaces = [], []
            for t in range(self.n_trees):
                pcg = Pcg64(mix64(mix64(self.seed) ^ t))
                centre = np.array([unit(pcg) for _ in range(self._n_features)])
                half = 2.0 * np.maximum(centre, 1.0 - centre)
                lower, upper = centre - half, centre + half
                self._workspaces.append((lower.copy(), upper.copy()))
                self._trees.append(self._grow(pcg, lower, upper, 0))
            self._initialized = True

        def _grow(self, pcg, lower, upper, depth):
            if depth >= self.height:
                return HSTLeaf()
            f = below(pcg, self._n_features)
            mid = float((lower[f] + upper[f]) / 2.0)
            left_upper, right_lower = upper.copy(), lower.copy()
            left_upper[f], right_lower[f] = mid, mid
            left = self._grow(pcg, lower, left_upper, depth + 1)
            return HSTNode(feature=f, threshold=mid, left=left, right=self._grow(pcg, right_lower, upper, depth + 1))

    return RustDrawn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--rust", default=str(ROOT / "target/release/examples/scores"))
    args = ap.parse_args()
    from aberrant.transform.preprocessing import MinMaxScaler

    with open(args.data, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        data = [r for r in reader if r][: args.rows]
    # aberrant's FeatureSchema orders features by name: give both sides the columns in that order, so that
    # feature index f is the same column on both.
    order = sorted(range(len(header) - 1), key=lambda j: header[j])
    header = [header[j] for j in order] + header[-1:]
    data = [[r[j] for j in order] + r[-1:] for r in data]
    names = header[:-1]
    labels = [int(float(r[-1])) for r in data]
    model = MinMaxScaler() | rust_drawn_trees()(seed=args.seed)
    python = []
    for i, r in enumerate(data):
        x = {n: float(v) for n, v in zip(names, r[:-1])}
        python.append(float(model.score_one(x)) if i > 0 else 0.0)
        model.learn_one(x)

    spec = {"transformers": [{"min_max_scaler": {}}],
            "detector": {"half_space_trees": {"seed": args.seed, "limits": {n: [0.0, 1.0] for n in names}}}}
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as tmp:
        csv.writer(tmp).writerows([header, *data])
    out = subprocess.run([args.rust, tmp.name, "prequential", json.dumps(spec)], capture_output=True, text=True,
                         check=True)
    Path(tmp.name).unlink()
    rust = [float(v) for v in out.stdout.split()]
    differ = sum(abs(a - b) > 1e-12 for a, b in zip(python, rust)) + abs(len(python) - len(rust))
    print(f"{len(python)} rows, {differ} scores differ by more than 1e-12; ROC-AUC aberrant (Rust draws) "
          f"{quality.metrics(python, labels)['roc_auc']:.4f}, Rust {quality.metrics(rust, labels)['roc_auc']:.4f}")


if __name__ == "__main__":
    main()
