#!/usr/bin/env python3
"""Throughput benchmark of the reference Python library onad 0.3.0.

Usage:
    /work/pyenv/bin/python scripts/bench/python_onad.py STREAM.csv [--rows N] [--budget-seconds S]
        [--only NAME[,NAME...]]

STREAM.csv: header f0,f1,...,f9,label (10 float features, then a 0/1 label).
Rows are read into dicts {f0: float, ..., f9: float} (label dropped) before timing.
Derived inputs (one-key {"f0": v}, two-key {"f1": .., "f2": ..}, {"score": f0}) are
also built before timing.

Protocols (per row, timed with time.perf_counter):
  detectors:    s = model.score_one(x); model.learn_one(x)
  transformers: model.learn_one(x); t = model.transform_one(x)
A fresh model is built for every repeat; repeats continue while the total time
spent on a configuration is below the budget (at least one repeat). The best
(max) rows/s is reported.

Output: one JSON object on stdout:
  {"python": ..., "onad": ..., "rows": N, "rows_per_sec": {name: float|null}}
With --only, rows_per_sec holds just the selected configurations (in the script's order; names it has no
configuration for are reported on stderr and left out).
Progress and errors go to stderr. A configuration that raises reports null.

onad imports torch at import time. When torch is installed it is used (the `autoencoder`
configuration needs it; torch is limited to one thread, like the Rust loop); otherwise it is replaced by
stub modules before importing onad (same approach as scripts/fidelity/gen_seed_fixture.py) and the
`autoencoder` configuration reports null.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
import traceback
from unittest import mock

FEATURES = [f"f{i}" for i in range(10)]


# --------------------------------------------------------------------------- torch stub
def _stub_torch() -> None:
    if "torch" in sys.modules:
        return
    try:
        import torch  # noqa: F401  (the real one, when installed)

        torch.set_num_threads(1)
        return
    except Exception:  # noqa: BLE001  (not installed, or broken: stub it)
        sys.modules.pop("torch", None)

    class _Module:  # stand-in for torch.nn.Module (must be a real class: used as a base)
        def __init__(self, *a, **k):
            pass

    torch = mock.MagicMock(name="torch")
    nn = mock.MagicMock(name="torch.nn")
    nn.Module = _Module
    optim = mock.MagicMock(name="torch.optim")
    torch.nn = nn
    torch.optim = optim
    # A real class too: scipy (under river and pysad) tells arrays apart with issubclass(cls, torch.Tensor).
    torch.Tensor = type("Tensor", (), {})
    torch.__version__ = "0.0.0-stub"
    sys.modules.update({"torch": torch, "torch.nn": nn, "torch.optim": optim})


_stub_torch()

import onad  # noqa: E402,F401
from onad.model.iforest.asd import ASDIsolationForest  # noqa: E402
from onad.model.null import NullModel  # noqa: E402
from onad.model.random import RandomModel  # noqa: E402
from onad.model.stat.multi import (  # noqa: E402
    MovingCorrelationCoefficient,
    MovingCovariance,
    MovingMahalanobisDistance,
)
from onad.model.stat.uni import (  # noqa: E402
    MovingAverage,
    MovingAverageAbsoluteDeviation,
    MovingGeometricAverage,
    MovingHarmonicAverage,
    MovingInterquartileRange,
    MovingKurtosis,
    MovingMedian,
    MovingQuantile,
    MovingSkewness,
    MovingVariance,
)
from onad.model.iforest.mondrian import MondrianForest  # noqa: E402
from onad.model.iforest.online import OnlineIsolationForest  # noqa: E402
from onad.model.iforest.rand_hist import StreamRandomHistogramForest  # noqa: E402
from onad.model.svm.adaptive import IncrementalOneClassSVMAdaptiveKernel  # noqa: E402
from onad.model.svm.gadget import GADGETSVM  # noqa: E402
from onad.model.threshold import ThresholdModel  # noqa: E402
from onad.transform.preprocessing.scaler import MinMaxScaler, StandardScaler  # noqa: E402
from onad.transform.projection.incremental_pca import IncrementalPCA  # noqa: E402
from onad.transform.projection.random_projection import RandomProjection  # noqa: E402

# aberrant (onad's successor) provides QuantileThreshold; onad 0.3.0 has none.
try:
    from aberrant.model.quantile_threshold import QuantileThreshold  # noqa: E402
except Exception as _e:  # noqa: BLE001  -> that configuration reports null
    _QT_IMPORT_ERROR = _e

    def QuantileThreshold(*a, **k):  # noqa: N802
        raise ImportError(f"aberrant QuantileThreshold unavailable: {_QT_IMPORT_ERROR}")

# KNN's engine needs faiss-cpu; without it that configuration reports null.
try:
    from onad.model.distance.knn import KNN  # noqa: E402
    from onad.utils.similar.faiss_engine import FaissSimilaritySearchEngine  # noqa: E402
except Exception as _e:  # noqa: BLE001
    _KNN_IMPORT_ERROR = _e

    def KNN(*a, **k):  # noqa: N802
        raise ImportError(f"onad KNN unavailable (faiss-cpu missing?): {_KNN_IMPORT_ERROR}")

    FaissSimilaritySearchEngine = KNN

try:
    from importlib.metadata import version as _pkg_version

    ONAD_VERSION = _pkg_version("onad")
except Exception:  # pragma: no cover
    ONAD_VERSION = getattr(onad, "__version__", "unknown")


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def _autoencoder():
    import torch

    if str(getattr(torch, "__version__", "")).endswith("stub"):
        raise ImportError("onad's Autoencoder needs torch; only the stub is loaded")
    from onad.model.deep.autoencoder import Autoencoder
    from onad.utils.deep.architecture import VanillaAutoencoder

    arch = VanillaAutoencoder(input_size=len(FEATURES), seed=42)
    optimizer = torch.optim.Adam(arch.parameters(), lr=1e-3)
    return Autoencoder(model=arch, optimizer=optimizer, criterion=torch.nn.MSELoss())


# --------------------------------------------------------------------------- data
def load_rows(path: str, limit: int | None) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in FEATURES if f not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"missing columns {missing} in {path}")
        for rec in reader:
            if limit is not None and len(rows) >= limit:
                break
            rows.append({f: float(rec[f]) for f in FEATURES})  # label dropped
    return rows


# --------------------------------------------------------------------------- timed loops
def loop_detect(model, data) -> None:
    score = model.score_one
    learn = model.learn_one
    for x in data:
        s = score(x)  # noqa: F841
        learn(x)


def loop_transform(model, data) -> None:
    learn = model.learn_one
    transform = model.transform_one
    for x in data:
        learn(x)
        t = transform(x)  # noqa: F841


def run_config(factory, data, loop, warm: int, budget: float) -> float:
    """Return best rows/s. `warm` leading rows are learned untimed (not counted)."""
    best = 0.0
    total = 0.0
    repeats = 0
    timed = data[warm:]
    n = len(timed)
    while repeats == 0 or total < budget:
        model = factory()
        for x in data[:warm]:
            model.learn_one(x)
        t0 = time.perf_counter()
        loop(model, timed)
        dt = time.perf_counter() - t0
        total += dt
        repeats += 1
        if dt > 0:
            best = max(best, n / dt)
        elif n > 0:
            best = float("inf")
    return best, repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stream", help="CSV with header f0..f9,label")
    ap.add_argument("--rows", type=int, default=None, help="use only the first N rows (default: all)")
    ap.add_argument("--budget-seconds", type=float, default=3.0, help="timing budget per configuration (default 3)")
    ap.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                    help="run only these configurations (comma-separated names)")
    args = ap.parse_args()

    rows = load_rows(args.stream, args.rows)
    f0_rows = [{"f0": x["f0"]} for x in rows]
    f12_rows = [{"f1": x["f1"], "f2": x["f2"]} for x in rows]
    score_rows = [{"score": x["f0"]} for x in rows]
    n = len(rows)
    log(f"loaded {n} rows from {args.stream}; python {platform.python_version()}, onad {ONAD_VERSION}; "
        f"budget {args.budget_seconds} s/config")

    # (name, factory, data, loop, untimed warm-up learn rows)
    configs = [
        ("null_model", lambda: NullModel(), rows, loop_detect, 0),
        ("random_model", lambda: RandomModel(seed=42), rows, loop_detect, 0),
        ("threshold_model", lambda: ThresholdModel(ceiling=100.0, floor=-50.0), rows, loop_detect, 0),
        # onad's MovingAverage.learn_one requires exactly one key.
        ("moving_average", lambda: MovingAverage(window_size=20), f0_rows, loop_detect, 0),
        ("min_max_scaler", lambda: MinMaxScaler(feature_range=(-1, 1)), rows, loop_transform, 0),
        ("standard_scaler", lambda: StandardScaler(with_std=True), rows, loop_transform, 0),
        # Pipeline.score_one on row 0 raises (scaler has not seen f0 yet), so row 0 is
        # learned before timing and the remaining n-1 rows are timed.
        ("standard_scaler|moving_average",
         lambda: StandardScaler() | MovingAverage(window_size=100, key="f0"), f0_rows, loop_detect, 1),
        # Univariate moving statistics (one-key dicts).
        ("moving_harmonic_average", lambda: MovingHarmonicAverage(window_size=50), f0_rows, loop_detect, 0),
        # Only positive values enter the window; a negative x gives a complex score
        # (abs() taken by onad since abs_diff=True). Timed as-is.
        ("moving_geometric_average", lambda: MovingGeometricAverage(window_size=50), f0_rows, loop_detect, 0),
        ("moving_median", lambda: MovingMedian(window_size=50), f0_rows, loop_detect, 0),
        ("moving_quantile", lambda: MovingQuantile(window_size=50), f0_rows, loop_detect, 0),
        ("moving_variance", lambda: MovingVariance(window_size=50), f0_rows, loop_detect, 0),
        ("moving_interquartile_range", lambda: MovingInterquartileRange(window_size=50), f0_rows, loop_detect, 0),
        ("moving_average_absolute_deviation",
         lambda: MovingAverageAbsoluteDeviation(window_size=50), f0_rows, loop_detect, 0),
        ("moving_kurtosis", lambda: MovingKurtosis(window_size=50), f0_rows, loop_detect, 0),
        ("moving_skewness", lambda: MovingSkewness(window_size=50), f0_rows, loop_detect, 0),
        # Bivariate (two-key dicts) and multivariate (full dicts).
        ("moving_covariance", lambda: MovingCovariance(window_size=50), f12_rows, loop_detect, 0),
        ("moving_correlation_coefficient",
         lambda: MovingCorrelationCoefficient(window_size=50), f12_rows, loop_detect, 0),
        ("moving_mahalanobis_distance", lambda: MovingMahalanobisDistance(window_size=100), rows, loop_detect, 0),
        # Isolation forest at the registry's example parameters (onad's defaults, seed 42; full dicts).
        ("asd_isolation_forest", lambda: ASDIsolationForest(n_estimators=100, max_samples=256, seed=42),
         rows, loop_detect, 0),
        # aberrant 1.3.0 QuantileThreshold on {"score": f0}.
        ("quantile_threshold",
         lambda: QuantileThreshold(quantile=0.95, window_size=1000), score_rows, loop_detect, 0),
        # KNN at the registry's example parameters (full dicts).
        ("knn", lambda: KNN(k=55, similarity_engine=FaissSimilaritySearchEngine(window_size=250, warm_up=55)),
         rows, loop_detect, 0),
        # Projections (transformer protocol).
        ("incremental_pca", lambda: IncrementalPCA(n_components=3, n0=50), rows, loop_transform, 0),
        ("random_projection", lambda: RandomProjection(n_components=3, seed=42), rows, loop_transform, 0),
        # OnlineIsolationForest at the registry's example parameters (onad's own test: 25 trees, window
        # 1,024; onad has no seed). About 300 rows/s, so 4,096 rows: the first 1,024 fill the window
        # untimed and the 3,072 timed rows each learn one row and forget one.
        ("online_isolation_forest", lambda: OnlineIsolationForest(num_trees=25, window_size=1024),
         rows[:4096], loop_detect, 1024),
        # StreamRandomHistogramForest at the registry's example parameters (onad's defaults, seed 42; full
        # dicts). About 200 rows/s, so 1,536 rows: the first 512 pass the window (256) untimed, so the
        # 1,024 timed rows include the 0.9 decay every 26 rows.
        ("stream_random_histogram_forest",
         lambda: StreamRandomHistogramForest(n_estimators=25, max_bins=10, window_size=256, seed=42),
         rows[:1536], loop_detect, 512),
        # GADGETSVM at the registry's example parameters (onad's defaults: the chain 0 -> 1 -> 2; full dicts).
        ("gadget_svm", lambda: GADGETSVM(), rows, loop_detect, 0),
        # IncrementalOneClassSVMAdaptiveKernel at the registry's example parameters (onad's defaults, seed
        # 42; full dicts). About 400 rows/s, so 3,072 rows: the first 1,024 fill the 100-vector budget
        # untimed, so the timed rows pay for replacements and the width updates every 20 rows.
        ("incremental_one_class_svm_adaptive_kernel",
         lambda: IncrementalOneClassSVMAdaptiveKernel(seed=42), rows[:3072], loop_detect, 1024),
        # MondrianForest at the registry's example parameters (onad's defaults, seed 42; full dicts). onad has
        # no window_size (the registry example's 256 bounds the Rust trees), so onad's trees grow over the
        # timed rows: 1,536 rows, the first 512 untimed.
        ("mondrian_forest", lambda: MondrianForest(n_estimators=100, subspace_size=256, lambda_=1.0, seed=42),
         rows[:1536], loop_detect, 512),
        # Autoencoder at the registry's example parameters (onad's SHUTTLE test: VanillaAutoencoder seed 42,
        # Adam lr 1e-3, MSELoss; full dicts). Needs real torch; 3,072 rows, the first 1,024 untimed.
        ("autoencoder", _autoencoder, rows[:3072], loop_detect, 1024),
    ]

    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        known = {c[0] for c in configs}
        unknown = [w for w in wanted if w not in known]
        if unknown:  # e.g. the scoreboard's --models list, which names models onad 0.3.0 does not have
            log(f"no configuration for {unknown}; known: {', '.join(c[0] for c in configs)}")
        configs = [c for c in configs if c[0] in set(wanted)]

    results: dict[str, float | None] = {}
    for name, factory, data, loop, warm in configs:
        try:
            rps, reps = run_config(factory, data, loop, warm, args.budget_seconds)
            results[name] = rps
            log(f"{name:32s} {rps:14,.0f} rows/s  (best of {reps}, {len(data) - warm} rows timed)")
        except Exception as e:  # noqa: BLE001
            results[name] = None
            log(f"{name:32s} ERROR {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stderr)

    print(json.dumps({
        "python": platform.python_version(),
        "onad": ONAD_VERSION,
        "rows": n,
        "rows_per_sec": results,
    }))


if __name__ == "__main__":
    main()
