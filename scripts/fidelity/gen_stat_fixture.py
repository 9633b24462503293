#!/usr/bin/env python3
"""Generate fidelity fixtures for onad 0.3.0 statistical models and projections
(plus aberrant 1.3.0 QuantileThreshold).

Usage (from anywhere):
    /work/pyenv/bin/python scripts/fidelity/gen_stat_fixture.py

Same data, float formatting and protocols as gen_seed_fixture.py (whose helpers are
reused): first 2000 rows of shuttle_odds.csv, `format(v, '.17g')`.

- Detectors (`row,score`): `s = model.score_one(x); model.learn_one(x)`.
- Transformers (`row,component_0,...`): `model.learn_one(x); t = model.transform_one(x)`.

The README section between the gen_stat_fixture markers is replaced (or appended) in
fixtures/fidelity/README.md. gen_seed_fixture.py rewrites README.md entirely, so run
this script after it.

Needs aberrant==1.3.0 in the same environment (`/work/pyenv/bin/pip install aberrant==1.3.0`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

# Small BLAS/LAPACK problems are single-threaded anyway; pin it so reruns are reproducible.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_seed_fixture as seed  # noqa: E402  (stubs torch, imports onad)

import numpy as np  # noqa: E402
from onad.model.stat.multi import (  # noqa: E402
    MovingCorrelationCoefficient,
    MovingCovariance,
    MovingMahalanobisDistance,
)
from onad.model.stat.uni import (  # noqa: E402
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
from onad.transform.projection.incremental_pca import IncrementalPCA  # noqa: E402
from onad.transform.projection.random_projection import RandomProjection  # noqa: E402

try:
    from aberrant.model.quantile_threshold import QuantileThreshold  # noqa: E402
    from importlib.metadata import version as _v

    ABERRANT_VERSION = _v("aberrant")
except ImportError:  # pragma: no cover
    sys.exit("aberrant is not installed: /work/pyenv/bin/pip install aberrant==1.3.0")

FEATURES = seed.FEATURES
fmt = seed.fmt
BEGIN = "<!-- BEGIN gen_stat_fixture.py section (generated; do not edit by hand) -->"
END = "<!-- END gen_stat_fixture.py section -->"


def only(*keys):
    return lambda x: {k: x[k] for k in keys}


# --------------------------------------------------------------------------- configurations
UNI = [
    ("moving_harmonic_average", MovingHarmonicAverage),
    ("moving_geometric_average", MovingGeometricAverage),
    ("moving_median", MovingMedian),
    ("moving_quantile", MovingQuantile),
    ("moving_variance", MovingVariance),
    ("moving_interquartile_range", MovingInterquartileRange),
    ("moving_average_absolute_deviation", MovingAverageAbsoluteDeviation),
    ("moving_kurtosis", MovingKurtosis),
    ("moving_skewness", MovingSkewness),
]


def build_detectors():
    det = []  # (name, factory, adapter, description)
    for name, cls in UNI:
        cn = cls.__name__
        base = [
            ("w10_f1", dict(window_size=10, key="f1"), "f1"),
            ("w50_f6", dict(window_size=50, key="f6"), "f6"),
            ("w20_f1_signed", dict(window_size=20, key="f1", abs_diff=False), "f1"),
        ]
        if cls is MovingQuantile:
            base += [
                ("w10_f1_q90", dict(window_size=10, key="f1", quantile=0.9), "f1"),
                ("w50_f6_q90", dict(window_size=50, key="f6", quantile=0.9), "f6"),
            ]
        if cls is MovingGeometricAverage:
            base += [("w10_f1_absvals", dict(window_size=10, key="f1", absoluteValues=True), "f1")]
        for cfg, kw, feat in base:
            args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
            det.append(
                (
                    f"{name}_{cfg}",
                    (lambda cls=cls, kw=kw: cls(**kw)),
                    only(feat),
                    f'{cn}({args}); input {{"{feat}": x["{feat}"]}}',
                )
            )
    for name, cls in [
        ("moving_covariance", MovingCovariance),
        ("moving_correlation_coefficient", MovingCorrelationCoefficient),
    ]:
        for cfg, bias in [("bias", True), ("unbiased", False)]:
            det.append(
                (
                    f"{name}_w30_f1_f3_{cfg}",
                    (lambda cls=cls, bias=bias: cls(window_size=30, bias=bias)),
                    only("f1", "f3"),
                    f'{cls.__name__}(window_size=30, bias={bias}); keys=None; input {{"f1": .., "f3": ..}} '
                    "(insertion order f1,f3 = sorted order)",
                )
            )
    det.append(
        (
            "moving_mahalanobis_distance_w50_f1_f5",
            lambda: MovingMahalanobisDistance(window_size=50),
            only("f1", "f2", "f3", "f4", "f5"),
            "MovingMahalanobisDistance(window_size=50); input {f1..f5} (insertion order)",
        )
    )
    det.append(
        (
            "moving_mahalanobis_distance_w100_all",
            lambda: MovingMahalanobisDistance(window_size=100),
            lambda x: dict(x),
            "MovingMahalanobisDistance(window_size=100); full 9-feature dict",
        )
    )
    det.append(
        (
            "quantile_threshold_q95_w200_f1",
            lambda: QuantileThreshold(quantile=0.95, window_size=200),
            lambda x: {"score": x["f1"]},
            f'aberrant {ABERRANT_VERSION} QuantileThreshold(quantile=0.95, window_size=200); input {{"score": x["f1"]}}',
        )
    )
    return det


TRANSFORMERS = [
    (
        "incremental_pca_k3_n0_50",
        lambda: IncrementalPCA(n_components=3, n0=50),
        3,
        "IncrementalPCA(n_components=3, n0=50); full 9-feature dict",
    ),
    (
        "incremental_pca_k3_n0_50_ff_0p05",
        lambda: IncrementalPCA(n_components=3, n0=50, forgetting_factor=0.05),
        3,
        "IncrementalPCA(n_components=3, n0=50, forgetting_factor=0.05); full 9-feature dict",
    ),
    (
        "random_projection_k3_seed0",
        lambda: RandomProjection(n_components=3, seed=0),
        3,
        "RandomProjection(n_components=3, seed=0); full 9-feature dict (seed 42 gives an all-zero column)",
    ),
]


# --------------------------------------------------------------------------- runners
def run_detector(factory, adapt, rows):
    model = factory()
    out, notes = [], []
    for i, x in enumerate(rows):
        xi = adapt(x)
        try:
            s = model.score_one(xi)
            if isinstance(s, complex) or not isinstance(s, (int, float, np.floating)):
                notes.append((i, f"score_one returned non-real {s!r}"))
                s = float("nan")
        except Exception as e:  # onad raising is part of the reference behaviour
            s = float("nan")
            notes.append((i, f"score_one raised `{type(e).__name__}: {e}`"))
        try:
            model.learn_one(xi)
        except Exception as e:
            notes.append((i, f"learn_one raised `{type(e).__name__}: {e}`"))
        out.append((i, s))
    return out, notes


def mahalanobis_branches(window_size, keys, rows):
    """Replicates MovingMahalanobisDistance.score_one's branch choice (no effect on the
    fixture): 0 = fewer than 3 points (returns 0), 1 = np.linalg.inv succeeded,
    2 = LinAlgError -> regularised. Also the 2-norm condition number of the inverted matrix."""
    from collections import deque

    win = deque(maxlen=window_size)
    res = []
    for i, x in enumerate(rows):
        if len(win) < 3:
            res.append((i, 0, float("nan")))
        else:
            c = np.cov(np.array(list(win)), rowvar=False)
            try:
                np.linalg.inv(c)
                br = 1
            except np.linalg.LinAlgError:
                reg = 1e-6 * np.eye(c.shape[0])
                if np.trace(c) > 0:
                    reg *= np.trace(c) / c.shape[0]
                c = c + reg
                br = 2
            res.append((i, br, float(np.linalg.cond(c))))
        win.append([x[k] for k in keys])
    return res


def run_transformer(factory, ncomp, rows, diag=None):
    model = factory()
    if diag is not None and isinstance(model, IncrementalPCA):
        orig_eig = model._update_eigendecomposition
        orig_init = model._initialize_pca

        def eig_wrapper(lam, xhat, _orig=orig_eig):
            m = np.diag(lam) + np.outer(xhat, xhat)
            ev = np.sort(np.linalg.eigvalsh(m))[::-1]
            if len(ev) > ncomp:
                diag["gaps"].append(((ev[ncomp - 1] - ev[ncomp]) / max(ev[0], 1e-300), diag["row"]))
            _orig(lam, xhat)
            if np.iscomplexobj(model.values) or np.iscomplexobj(model.vectors):
                diag["complex"].append(diag["row"])

        def init_wrapper(v, _orig=orig_init):
            was = model.n0_reached
            _orig(v)
            if model.n0_reached and not was:
                diag["init_row"] = diag["row"]

        model._update_eigendecomposition = eig_wrapper
        model._initialize_pca = init_wrapper
    out = []
    for i, x in enumerate(rows):
        if diag is not None:
            diag["row"] = i
        model.learn_one(x)
        t = model.transform_one(x)
        out.append((i, [t[f"component_{j}"] for j in range(ncomp)]))
    return out, model


# --------------------------------------------------------------------------- main
def summarize_rows(rows):
    """Compress a sorted list of ints into 'a-b, c' ranges."""
    if not rows:
        return "none"
    parts, start, prev = [], rows[0], rows[0]
    for r in rows[1:]:
        if r == prev + 1:
            prev = r
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = r
    parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def write_fixtures(out_dir: Path, data_path: Path) -> None:
    rows = seed.load_rows(data_path, seed.N_ROWS)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, exc_notes, extra = [], [], []

    for name, factory, adapt, desc in build_detectors():
        res, notes = run_detector(factory, adapt, rows)
        p = out_dir / f"{name}.csv"
        with p.open("w", newline="") as fh:
            fh.write("row,score\n")
            for i, s in res:
                fh.write(f"{i},{fmt(s)}\n")
        nan_rows = [i for i, s in res if isinstance(s, float) and math.isnan(s)]
        files.append((p.name, len(res), "detector", desc, nan_rows))
        # group identical messages
        by_msg: dict[str, list[int]] = {}
        for i, msg in notes:
            by_msg.setdefault(msg, []).append(i)
        for msg, rs in by_msg.items():
            exc_notes.append(f"- `{p.name}` rows {summarize_rows(rs)}: {msg}; score written as `nan`.")

    # Mahalanobis branch side files
    for name, ws, keys in [
        ("moving_mahalanobis_distance_w50_f1_f5", 50, ["f1", "f2", "f3", "f4", "f5"]),
        ("moving_mahalanobis_distance_w100_all", 100, FEATURES),
    ]:
        br = mahalanobis_branches(ws, keys, rows)
        p = out_dir / f"{name}.branch.csv"
        with p.open("w", newline="") as fh:
            fh.write("row,branch,cond\n")
            for i, b, c in br:
                fh.write(f"{i},{b},{fmt(c)}\n")
        reg = [i for i, b, _ in br if b == 2]
        conds = [c for _, b, c in br if b == 1]
        big = [i for i, b, c in br if b == 1 and c > 1e10]
        extra.append(
            f"- `{p.name}` ({len(br)} rows, `row,branch,cond`; side info, not onad output): "
            f"branch 0 = <3 points (score 0), 1 = plain `inv`, 2 = `LinAlgError` -> regularised. "
            f"Regularised rows: {len(reg)} ({summarize_rows(reg)}). Plain-inv rows with cond > 1e10 "
            f"(numerically meaningless scores, even negative; skip or loosen): {summarize_rows(big)}; "
            f"median cond of plain-inv rows: {sorted(conds)[len(conds) // 2]:.3g}."
        )

    ipca_diag = {}
    for name, factory, ncomp, desc in TRANSFORMERS:
        diag = {"gaps": [], "complex": []} if "incremental_pca" in name else None
        res, model = run_transformer(factory, ncomp, rows, diag)
        p = out_dir / f"{name}.csv"
        with p.open("w", newline="") as fh:
            fh.write("row," + ",".join(f"component_{j}" for j in range(ncomp)) + "\n")
            for i, vals in res:
                fh.write(f"{i}," + ",".join(fmt(v) for v in vals) + "\n")
        files.append((p.name, len(res), "transformer", desc, []))
        if diag is not None:
            ipca_diag[name] = diag
        if isinstance(model, RandomProjection):
            extra.append(
                f"- `{p.name}`: projection matrix (rows f1..f9, cols component_0..2), "
                "`3**0.5 * default_rng(0).choice([-1,0,1], size=(9,3), p=[1/6,2/3,1/6])`, in units of sqrt(3): "
                + "; ".join(
                    "[" + ",".join(f"{int(round(v / 3 ** 0.5)):d}" for v in r) + "]"
                    for r in model.random_matrix
                )
                + "."
            )
    for name, d in ipca_diag.items():
        g = sorted(d["gaps"])[:3]
        extra.append(
            f"- `{name}.csv`: warm-up PCA done in learn_one of row {d.get('init_row')}; rows 0-{d.get('init_row', 0) - 1} are all 0.0. "
            f"Complex eig results: {summarize_rows(d['complex'])}. Smallest relative gap "
            f"(lambda_k-1 - lambda_k)/lambda_0 between kept and dropped eigenvalue over online steps: "
            + ", ".join(f"{v:.3g} (row {r})" for v, r in g)
            + "."
        )

    sec = [
        BEGIN,
        "",
        "# Statistical models, projections, QuantileThreshold (gen_stat_fixture.py)",
        "",
        "Generated by `scripts/fidelity/gen_stat_fixture.py` (reuses gen_seed_fixture.py's data loader,",
        "formatting and protocols). Run it after gen_seed_fixture.py (which rewrites this README).",
        "",
        f"- onad {seed.ONAD_VERSION}, aberrant {ABERRANT_VERSION} (QuantileThreshold only), numpy {np.__version__}",
        "  (OpenBLAS/LAPACK via numpy wheel; `OPENBLAS_NUM_THREADS=1`).",
        "- Detectors `row,score`: `s = score_one(x); learn_one(x)`. Transformers `row,component_0,..`:",
        "  `learn_one(x); t = transform_one(x)`. Univariate models get one-key dicts `{key: x[key]}`.",
        "- Any exception in `score_one` -> `nan` for that row (listed below). Models returning Python int",
        "  `0`/`1` (empty/small windows) are written as `0`/`1` like floats (`format(float(v), '.17g')`).",
        "",
        "## Comparison guidance",
        "",
        "- Pure-Python models (harmonic/geometric/median/quantile/variance/IQR/MAD/kurtosis/skewness,",
        "  QuantileThreshold) are reproducible bit-exactly: left-to-right `sum()` over window (oldest->newest)",
        "  then the new value last. `**` is glibc `pow`, which is NOT correctly rounded: `t**2 != t*t` for",
        "  ~0.1% of random doubles, and this changes 3 rows of `moving_variance_w20_f1_signed.csv`. Call",
        "  libm `pow` opaquely (e.g. `powf` with a `black_box`ed exponent; LLVM folds `powf(2.0)` to `x*x`).",
        "- MovingCovariance/MovingCorrelationCoefficient use `np.cov` (mean via numpy pairwise sum,",
        "  BLAS dot, then `* (1/fact)`), MovingMahalanobisDistance uses `np.cov` + LAPACK `inv`:",
        "  compare with a relative tolerance (~1e-9); Mahalanobis rows with huge condition numbers or",
        "  the regularised branch need a looser check (see the `.branch.csv` side files).",
        "- IncrementalPCA: eigenvector signs come from LAPACK (`gesdd` in warm-up, `geev` online) and are",
        "  arbitrary per component per step (not nondeterministic between runs here, but implementation",
        "  defined). Signs do not feed back into magnitudes, so compare `|component_j|` per row (or align",
        "  sign per row/component) with a relative tolerance.",
        "- RandomProjection matrix comes from numpy PCG64 `default_rng(seed).choice`; a Rust port can only",
        "  match by reproducing that generator, or by injecting the matrix listed below.",
        "",
        "## Files",
        "",
        "| file | data rows | protocol | configuration | nan rows |",
        "|---|---|---|---|---|",
    ]
    for fname, n, proto, desc, nan_rows in files:
        sec.append(f"| `{fname}` | {n} | {proto} | {desc} | {summarize_rows(nan_rows)} |")
    sec += ["", "## Reference exceptions / non-real scores", ""]
    sec += exc_notes if exc_notes else ["- none"]
    sec += ["", "## Side information", ""] + extra
    sec += [
        "",
        "Regenerate: `/work/pyenv/bin/python scripts/fidelity/gen_stat_fixture.py` (needs `aberrant==1.3.0`).",
        "",
        END,
        "",
    ]
    section = "\n".join(sec)

    readme = out_dir / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if BEGIN in text and END in text:
        pre = text[: text.index(BEGIN)]
        post = text[text.index(END) + len(END):].lstrip("\n")
        text = pre + section + post
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text)
    for fname, n, _, _, nan_rows in files:
        print(f"wrote {fname} ({n} rows, nan rows: {summarize_rows(nan_rows)})")
    for line in exc_notes + extra:
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=seed.DEFAULT_OUT)
    args = ap.parse_args()
    write_fixtures(args.out, seed.find_data_file())


if __name__ == "__main__":
    main()
