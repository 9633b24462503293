#!/usr/bin/env python3
"""Fixture for the discord detectors' fidelity tests: aberrant 1.3.0's XLagDAMP, RollingMatrixProfile
(normalised and raw) and MultivariateRollingMatrixProfile, score then learn, on a short seeded series
(a noisy sine with a distorted stretch, and a second channel). The series is written with the scores, so
the Rust test reads the very same values.

Usage: /tmp/pyref/bin/python scripts/fidelity/gen_timeseries_fixture.py
  -> crates/onad-models/tests/fixtures/fidelity/timeseries.csv
"""

from pathlib import Path

import numpy as np
from aberrant.model.timeseries.damp import XLagDAMP
from aberrant.model.timeseries.multivariate_rolling_matrix_profile import MultivariateRollingMatrixProfile
from aberrant.model.timeseries.rolling_matrix_profile import RollingMatrixProfile

ROOT = Path(__file__).resolve().parent.parent.parent
N = 700

rng = np.random.default_rng(7)
t = np.arange(N)
a = np.sin(2 * np.pi * t / 25) + 0.05 * rng.standard_normal(N) + 3.0
a[450:462] += 0.7 * np.sin(2 * np.pi * t[450:462] / 5)
b = np.cos(2 * np.pi * t / 25) + 0.05 * rng.standard_normal(N)
b[300:306] += 1.0

models = {
    "damp": XLagDAMP(subsequence_length=12),
    "mp": RollingMatrixProfile(subsequence_length=12),
    "mp_raw": RollingMatrixProfile(subsequence_length=12, window_size=100, normalize=False, exclusion_zone=5),
    "mvmp": MultivariateRollingMatrixProfile(subsequence_length=10),
}
cols = {k: [] for k in ["damp", "mp", "mp_start", "mp_raw", "mvmp", "mvmp_start", "mvmp_a", "mvmp_b"]}
for i in range(N):
    x = {"a": float(a[i])}
    xy = {"a": float(a[i]), "b": float(b[i])}
    cols["damp"].append(models["damp"].score_one(x))
    d, s = models["mp"].match_one(x)
    cols["mp"].append(d)
    cols["mp_start"].append(-1 if s is None else s)
    cols["mp_raw"].append(models["mp_raw"].score_one(x))
    d, s, per = models["mvmp"].explain_one(xy)
    cols["mvmp"].append(d)
    cols["mvmp_start"].append(-1 if s is None else s)
    cols["mvmp_a"].append(per.get("a", 0.0))
    cols["mvmp_b"].append(per.get("b", 0.0))
    models["damp"].learn_one(x)
    models["mp"].learn_one(x)
    models["mp_raw"].learn_one(x)
    models["mvmp"].learn_one(xy)

out = ROOT / "crates/onad-models/tests/fixtures/fidelity/timeseries.csv"
with open(out, "w") as fh:
    fh.write("a,b," + ",".join(cols) + "\n")
    for i in range(N):
        fh.write(",".join([repr(float(a[i])), repr(float(b[i]))] + [repr(float(cols[k][i])) for k in cols]) + "\n")
print(out)
