#!/usr/bin/env python3
"""Generate the KNN fidelity fixtures: onad 0.3.0 `KNN` over `FaissSimilaritySearchEngine` (mean squared
distance) and aberrant 1.3.0's (mean Euclidean distance), on the first 2000 SHUTTLE rows.

Usage (from anywhere):
    /tmp/pyref/bin/python scripts/fidelity/gen_knn_fixture.py

Needs onad==0.3.0, aberrant==1.3.0, numpy and faiss-cpu in the same environment. Same data, float
formatting and detector protocol as gen_seed_fixture.py (whose loader it reuses):
`s = model.score_one(x); model.learn_one(x)` on the full 9-feature dict.

Each file is `row,score,score_f64`:
- `score`: the library's output. FAISS's IndexFlatL2 holds float32 vectors and returns float32 squared
  distances, and numpy averages them in float32, so these carry float32 rounding. `nan` where the library
  raised (`ValueError` while the window holds at least `warm_up` but fewer than `k` points).
- `score_f64`: the same algorithm replayed here in float64 (the same FIFO window, the `k` smallest
  squared distances of the query to the window, their mean or the mean of their square roots), with the
  Rust port's rule where the library raised (the mean over every point held). The script checks that it
  agrees with `score` to float32 precision on every row where the library returned a number, so it is
  the library's computation without the float32 rounding; the Rust fidelity test compares to it at 1e-9
  and to `score` at float32 precision.

The README section between the gen_knn_fixture markers is replaced (or appended) in
fixtures/fidelity/README.md.
"""

from __future__ import annotations

import collections
import math
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_seed_fixture as seed  # noqa: E402  (stubs torch, imports onad)

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from aberrant.model.distance.knn import KNN as AberrantKNN  # noqa: E402
from aberrant.similarity import FaissSimilaritySearchEngine as AberrantEngine  # noqa: E402
from importlib.metadata import version as _v  # noqa: E402
from onad.model.distance.knn import KNN  # noqa: E402
from onad.utils.similar.faiss_engine import FaissSimilaritySearchEngine  # noqa: E402

BEGIN = "<!-- BEGIN gen_knn_fixture.py section (generated; do not edit by hand) -->"
END = "<!-- END gen_knn_fixture.py section -->"
# Largest relative difference accepted between the library and the float64 replay: float32 rounding of
# squared distances up to ~1e9, accumulated over 9 features and a mean of up to 55 values.
F32_TOLERANCE = 1e-5

# (file stem, library, k, window_size, warm_up)
CONFIGS = [
    ("knn_k55_w250_wu50", "onad", 55, 250, 50),
    ("knn_k5_w100_wu10", "onad", 5, 100, 10),
    ("knn_euclidean_k55_w250_wu55", "aberrant", 55, 250, 55),
    ("knn_euclidean_k5_w100_wu10", "aberrant", 5, 100, 10),
]


def make(lib: str, k: int, w: int, warm_up: int):
    if lib == "onad":
        return KNN(k=k, similarity_engine=FaissSimilaritySearchEngine(window_size=w, warm_up=warm_up))
    return AberrantKNN(k=k, similarity_engine=AberrantEngine(window_size=w, warm_up=warm_up))


def run_library(lib, k, w, warm_up, rows):
    model = make(lib, k, w, warm_up)
    out, raised = [], []
    for i, x in enumerate(rows):
        try:
            s = float(model.score_one(x))
        except ValueError as e:
            s = float("nan")
            raised.append((i, f"{type(e).__name__}: {e}"))
        model.learn_one(x)
        out.append(s)
    return out, raised


def replay_f64(k, w, warm_up, euclidean, rows):
    keys = sorted(rows[0])
    window: collections.deque = collections.deque(maxlen=w)
    out = []
    for x in rows:
        q = np.array([x[f] for f in keys], dtype=np.float64)
        if len(window) < warm_up:
            out.append(0.0)
        else:
            d2 = np.sort(((np.array(window) - q) ** 2).sum(axis=1))[: min(k, len(window))]
            out.append(float(np.mean(np.sqrt(d2)) if euclidean else np.mean(d2)))
        window.append(q)
    return out


def summarize(rows):
    if not rows:
        return "none"
    return f"{rows[0]}-{rows[-1]}" if rows == list(range(rows[0], rows[-1] + 1)) else ", ".join(map(str, rows))


def main() -> None:
    rows = seed.load_rows(seed.find_data_file(), seed.N_ROWS)
    out_dir = Path(__file__).resolve().parents[2] / "crates/onad-models/tests/fixtures/fidelity"
    lines = []
    for stem, lib, k, w, warm_up in CONFIGS:
        got, raised = run_library(lib, k, w, warm_up, rows)
        ref = replay_f64(k, w, warm_up, lib == "aberrant", rows)
        worst = 0.0
        for i, (a, b) in enumerate(zip(got, ref)):
            if math.isnan(a):
                continue
            rel = abs(a - b) / max(abs(a), abs(b), 1e-300) if a != b else 0.0
            if rel > F32_TOLERANCE:
                sys.exit(f"{stem}: row {i}: library {a!r} vs float64 replay {b!r} (relative {rel:.3g})")
            worst = max(worst, rel)
        path = out_dir / f"{stem}.csv"
        with path.open("w", newline="") as fh:
            fh.write("row,score,score_f64\n")
            for i, (a, b) in enumerate(zip(got, ref)):
                fh.write(f"{i},{seed.fmt(a)},{seed.fmt(b)}\n")
        exact = sum(1 for a, b in zip(got, ref) if a == b)
        cls = "KNN" if lib == "onad" else "aberrant KNN"
        # One line per message, the window length left out.
        msgs = sorted({re.sub(r"\(\d+\)$", "(n)", m) for _, m in raised})
        lines.append(
            f"| `{path.name}` | {cls}(k={k}, FaissSimilaritySearchEngine(window_size={w}, warm_up={warm_up})) "
            f"| {summarize([i for i, _ in raised])} | {exact} | {worst:.3g} |"
        )
        for m in msgs:
            lines.append(f"|  | raised: `{m.splitlines()[0][:90]}` | | | |")
        print(f"{stem}: raised on {len(raised)} rows, {exact} rows equal, worst relative {worst:.3g}")

    section = [
        BEGIN,
        "",
        "# KNN (gen_knn_fixture.py)",
        "",
        f"onad {seed.ONAD_VERSION} and aberrant {_v('aberrant')} `KNN` over `FaissSimilaritySearchEngine`",
        f"(faiss-cpu {_v('faiss-cpu')}, numpy {np.__version__}, `OMP_NUM_THREADS=1`), full 9-feature dict,",
        "`s = score_one(x); learn_one(x)`. Columns `row,score,score_f64`: `score` is the library's output",
        "(float32 arithmetic inside FAISS; `nan` where it raised), `score_f64` the same algorithm replayed in",
        "float64 by the script (the mean over every point held where the library raised), checked against",
        f"`score` to {F32_TOLERANCE:g} relative on every other row. onad returns the mean squared distance,",
        "aberrant the mean Euclidean distance.",
        "",
        "| file | configuration | rows where the library raised | rows equal to the f64 replay | worst relative difference |",
        "|---|---|---|---:|---:|",
        *lines,
        "",
        "Regenerate: `/tmp/pyref/bin/python scripts/fidelity/gen_knn_fixture.py`.",
        "",
        END,
    ]
    readme = out_dir / "README.md"
    text = readme.read_text()
    block = "\n".join(section)
    if BEGIN in text and END in text:
        start = text.index(BEGIN)
        end = text.index(END) + len(END)
        text = text[:start] + block + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)
    print(f"faiss {faiss.__version__}; wrote {len(CONFIGS)} files and the README section")


if __name__ == "__main__":
    main()
