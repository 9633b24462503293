#!/usr/bin/env python3
"""Generate seed fidelity fixtures from the reference Python library onad 0.3.0.

Usage (from anywhere):
    /work/pyenv/bin/python scripts/fidelity/gen_seed_fixture.py            # write fixtures
    /work/pyenv/bin/python scripts/fidelity/gen_seed_fixture.py --bench    # time models (no files written)

Data: shuttle_odds.csv (header f1..f9,label). Located via $ONAD_DATA_DIR
(either the directory holding shuttle_odds.csv or its parent containing
`shippable/`), else <repo_root>/../shared/data/shippable/shuttle_odds.csv.

onad imports torch at import time (onad.base.architecture); torch is NOT needed
for the models used here, so it is replaced by stub modules before importing onad.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
import types
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "crates" / "onad-models" / "tests" / "fixtures" / "fidelity"
FEATURES = [f"f{i}" for i in range(1, 10)]
N_ROWS = 2000


# --------------------------------------------------------------------------- torch stub
def _stub_torch() -> None:
    if "torch" in sys.modules:
        return

    class _Module:  # stand-in for torch.nn.Module (must be a real class: used as a base)
        def __init__(self, *a, **k):
            pass

    torch = mock.MagicMock(name="torch")
    nn = mock.MagicMock(name="torch.nn")
    nn.Module = _Module
    optim = mock.MagicMock(name="torch.optim")
    torch.nn = nn
    torch.optim = optim
    torch.__version__ = "0.0.0-stub"
    sys.modules.update({"torch": torch, "torch.nn": nn, "torch.optim": optim})


_stub_torch()

import numpy as np  # noqa: E402
import onad  # noqa: E402,F401
from onad.base.pipeline import Pipeline  # noqa: E402,F401
from onad.model.null import NullModel  # noqa: E402
from onad.model.stat.uni import MovingAverage  # noqa: E402
from onad.model.threshold import ThresholdModel  # noqa: E402
from onad.transform.preprocessing.scaler import MinMaxScaler, StandardScaler  # noqa: E402

try:
    from importlib.metadata import version as _pkg_version

    ONAD_VERSION = _pkg_version("onad")
except Exception:  # pragma: no cover
    ONAD_VERSION = "unknown"


# --------------------------------------------------------------------------- data
def find_data_file() -> Path:
    env = os.environ.get("ONAD_DATA_DIR")
    candidates = []
    if env:
        d = Path(env)
        candidates += [d / "shuttle_odds.csv", d / "shippable" / "shuttle_odds.csv"]
    candidates.append(REPO_ROOT.parent / "shared" / "data" / "shippable" / "shuttle_odds.csv")
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        "shuttle_odds.csv not found; tried: " + ", ".join(str(c) for c in candidates)
    )


def load_rows(path: Path, limit: int | None) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in FEATURES if f not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"missing columns {missing} in {path}")
        for rec in reader:
            rows.append({f: float(rec[f]) for f in FEATURES})  # label dropped
            if limit is not None and len(rows) >= limit:
                break
    return rows


# --------------------------------------------------------------------------- formatting
def fmt(v: float) -> str:
    """17 significant digits (round-trips any f64). nan / inf / -inf spelled that way."""
    return format(float(v), ".17g")


# --------------------------------------------------------------------------- configurations
# (name, factory, input adapter, description)
def _only(key):
    return lambda x: {key: x[key]}


def _identity(x):
    return x


DETECTORS = [
    ("null_model", lambda: NullModel(), _identity, "NullModel(); full 9-feature dict"),
    (
        "threshold_scalar",
        lambda: ThresholdModel(ceiling=100.0, floor=-50.0),
        _identity,
        "ThresholdModel(ceiling=100.0, floor=-50.0); full 9-feature dict",
    ),
    (
        "threshold_dict",
        lambda: ThresholdModel(ceiling={"f1": 60.0, "f5": 80.0}, floor={"f3": 70.0}),
        _identity,
        'ThresholdModel(ceiling={"f1": 60.0, "f5": 80.0}, floor={"f3": 70.0}); full 9-feature dict',
    ),
    # MovingAverage.learn_one raises ValueError unless len(x) == 1, even with key set,
    # so MovingAverage is fed the single-entry dict {key: x[key]}.
    (
        "moving_average_w10_f1",
        lambda: MovingAverage(window_size=10, key="f1"),
        _only("f1"),
        'MovingAverage(window_size=10, key="f1"); input {"f1": x["f1"]} (single-key dict)',
    ),
    (
        "moving_average_w100_f1_signed",
        lambda: MovingAverage(window_size=100, key="f1", abs_diff=False),
        _only("f1"),
        'MovingAverage(window_size=100, key="f1", abs_diff=False); input {"f1": x["f1"]}',
    ),
    (
        "moving_average_w50_f9",
        lambda: MovingAverage(window_size=50, key="f9"),
        _only("f9"),
        'MovingAverage(window_size=50, key="f9"); input {"f9": x["f9"]}',
    ),
    # Pipeline: the MovingAverage stage receives the scaler's full output dict in
    # learn_one, which raises for >1 key, so the pipeline is fed {"f1": x["f1"]}.
    # Row 0: Pipeline.score_one calls StandardScaler.transform_one before any
    # learn_one -> ValueError("Feature 'f1' has not been seen during learning.");
    # recorded as score "nan".
    (
        "pipeline_standard_moving_average",
        lambda: StandardScaler() | MovingAverage(window_size=20, key="f1"),
        _only("f1"),
        'StandardScaler() | MovingAverage(window_size=20, key="f1"); input {"f1": x["f1"]}; '
        "row 0 score_one raises ValueError in onad -> written as nan",
    ),
]

TRANSFORMERS = [
    ("minmax_default", lambda: MinMaxScaler(), "MinMaxScaler()"),
    ("minmax_range_m1_1", lambda: MinMaxScaler(feature_range=(-1, 1)), "MinMaxScaler(feature_range=(-1, 1))"),
    ("standard_default", lambda: StandardScaler(), "StandardScaler()"),
    ("standard_center_only", lambda: StandardScaler(with_std=False), "StandardScaler(with_std=False)"),
]


def run_detector(factory, adapt, rows):
    model = factory()
    out = []
    errors = []
    for i, x in enumerate(rows):
        xi = adapt(x)
        try:
            s = model.score_one(xi)
        except ValueError as e:  # onad raising is part of the reference behaviour
            s = float("nan")
            errors.append((i, f"{type(e).__name__}: {e}"))
        model.learn_one(xi)
        out.append((i, s))
    return out, errors


def run_transformer(factory, rows):
    model = factory()
    out = []
    for i, x in enumerate(rows):
        model.learn_one(x)
        t = model.transform_one(x)
        out.append((i, [t[f] for f in FEATURES]))
    return out


def write_fixtures(out_dir: Path, data_path: Path) -> None:
    rows = load_rows(data_path, N_ROWS)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    notes = []
    for name, factory, adapt, desc in DETECTORS:
        res, errors = run_detector(factory, adapt, rows)
        p = out_dir / f"{name}.csv"
        with p.open("w", newline="") as fh:
            fh.write("row,score\n")
            for i, s in res:
                fh.write(f"{i},{fmt(s)}\n")
        files.append((p.name, len(res), "detector: s = score_one(x); learn_one(x)", desc))
        for i, msg in errors:
            notes.append(f"- `{p.name}` row {i}: onad raised `{msg}`; score written as `nan`.")
    for name, factory, desc in TRANSFORMERS:
        res = run_transformer(factory, rows)
        p = out_dir / f"{name}.csv"
        with p.open("w", newline="") as fh:
            fh.write("row," + ",".join(FEATURES) + "\n")
            for i, vals in res:
                fh.write(f"{i}," + ",".join(fmt(v) for v in vals) + "\n")
        files.append((p.name, len(res), "transformer: learn_one(x); t = transform_one(x)", desc))

    lines = [
        "# Fidelity seed fixtures (reference: Python onad)",
        "",
        "Generated by `scripts/fidelity/gen_seed_fixture.py` (do not edit by hand).",
        "",
        f"- onad version: {ONAD_VERSION}",
        f"- numpy version: {np.__version__}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()}, {platform.system()} {platform.machine()})",
        "  (CPython < 3.12 `sum()` over floats is naive left-to-right; 3.12+ uses compensated",
        "  summation, which can change last bits of MovingAverage on non-integer input.)",
        "- torch: stubbed (not installed); not used by these models.",
        f"- Data: `shuttle_odds.csv`, first {len(rows)} data rows, features f1..f9 parsed as float, `label` dropped.",
        "  Input dict key order is f1..f9.",
        "",
        "## Protocols",
        "",
        "- Detectors (`row,score`): for each row i: `s = model.score_one(x); model.learn_one(x)`; write `i, s`.",
        "- Transformers (`row,f1,...,f9`): for each row i: `model.learn_one(x); t = model.transform_one(x)`; write `i, t[f1..f9]`.",
        "- Floats are written with `format(v, '.17g')` (17 significant digits, round-trips f64; `nan`/`inf` spelled so).",
        "",
        "MovingAverage.learn_one in onad 0.3.0 raises `ValueError` unless the dict has exactly one entry",
        "(even when `key` is set), so MovingAverage models (and the pipeline) are fed `{key: x[key]}` only.",
        "",
        "## Numerical notes for bit-exact comparison",
        "",
        "- StandardScaler uses `variance ** 0.5` (C `pow(v, 0.5)`), NOT `sqrt`: with glibc 2.36 pow differs",
        "  from the correctly-rounded sqrt by 1 ulp in 16 of 18000 values of `standard_default.csv`.",
        "  Use `var.powf(0.5)` (glibc libm) to match exactly, or compare with a small tolerance.",
        "- MovingAverage recomputes `sum(window)` oldest->newest each call (no running sum); on integer",
        "  data (raw shuttle features) every sum is exact, on the pipeline (z-scores) order matters.",
        "",
        "## Files",
        "",
        "| file | data rows | protocol | configuration |",
        "|---|---|---|---|",
    ]
    for fname, n, proto, desc in files:
        lines.append(f"| `{fname}` | {n} | {proto} | {desc} |")
    if notes:
        lines += ["", "## Reference exceptions", ""] + notes
    lines += [
        "",
        "Regenerate: `/work/pyenv/bin/python scripts/fidelity/gen_seed_fixture.py` "
        "(set `ONAD_DATA_DIR` if the data is not at `../shared/data/shippable/`).",
        "",
    ]
    (out_dir / "README.md").write_text("\n".join(lines))
    for fname, n, _, _ in files:
        print(f"wrote {out_dir / fname} ({n} rows)")
    for n in notes:
        print(n)


# --------------------------------------------------------------------------- bench
def bench(data_path: Path, repeats: int) -> None:
    rows = load_rows(data_path, None)
    f1_rows = [{"f1": x["f1"]} for x in rows]
    n = len(rows)
    cases = [
        ("MovingAverage(window_size=100, key='f1') [input {'f1': v}]",
         lambda: MovingAverage(window_size=100, key="f1"), f1_rows, "score"),
        ("NullModel()", NullModel, rows, "score"),
        ("ThresholdModel(ceiling=100.0, floor=-50.0)",
         lambda: ThresholdModel(ceiling=100.0, floor=-50.0), rows, "score"),
        ("StandardScaler()", StandardScaler, rows, "transform"),
        ("MinMaxScaler()", MinMaxScaler, rows, "transform"),
    ]
    print(f"rows={n}, repeats={repeats} (best time reported); python {platform.python_version()}, onad {ONAD_VERSION}")
    for name, factory, data, kind in cases:
        best = float("inf")
        for _ in range(repeats):
            m = factory()
            t0 = time.perf_counter()
            if kind == "score":
                for x in data:
                    m.score_one(x)
                    m.learn_one(x)
            else:
                for x in data:
                    m.learn_one(x)
                    m.transform_one(x)
            best = min(best, time.perf_counter() - t0)
        proto = "score_one+learn_one" if kind == "score" else "learn_one+transform_one"
        print(f"{name:60s} {proto:24s} {best:8.3f} s  {n / best:12,.0f} rows/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="store_true", help="time models over all rows instead of writing fixtures")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    data_path = find_data_file()
    if args.bench:
        bench(data_path, args.repeats)
    else:
        write_fixtures(args.out, data_path)


if __name__ == "__main__":
    main()
