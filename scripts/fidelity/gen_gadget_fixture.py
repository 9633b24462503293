#!/usr/bin/env python3
"""Generate the GADGET SVM fidelity fixtures: onad 0.3.0 `GADGETSVM` on the first 2000 SHUTTLE rows.

Usage (from anywhere):
    /tmp/pyref/bin/python scripts/fidelity/gen_gadget_fixture.py

Same data, float formatting and detector protocol as gen_seed_fixture.py (whose loader it reuses):
`s = model.score_one(x); model.learn_one(x)` on the full 9-feature dict. The algorithm is deterministic
(no random draws), so each file is `row,score` with onad's own output.

The README section between the gen_gadget_fixture markers is replaced (or appended) in
fixtures/fidelity/README.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_seed_fixture as seed  # noqa: E402  (stubs torch, imports onad)

import numpy as np  # noqa: E402
from onad.model.svm.gadget import GADGETSVM  # noqa: E402

BEGIN = "<!-- BEGIN gen_gadget_fixture.py section (generated; do not edit by hand) -->"
END = "<!-- END gen_gadget_fixture.py section -->"

# (file stem, onad keyword arguments, input); graphs use nodes 0..n, written as the Rust adjacency list
# too. Input "raw" is the SHUTTLE row; "centred" maps every value v to (v - 40) / 50 (the same IEEE
# operations in Rust), so that rows fall on both sides of the hyperplanes and most scores are nonzero.
CONFIGS = [
    ("gadget_svm_default", {}, "raw"),
    ("gadget_svm_nu0p1", {"nu": 0.1, "learning_rate": 0.01, "lambda_reg": 0.01}, "raw"),
    ("gadget_svm_default_centred", {}, "centred"),
    (
        "gadget_svm_diamond_t_m0p5_centred",
        {"graph": {0: [1, 2], 1: [3], 2: [3], 3: []}, "threshold": -0.5, "learning_rate": 0.001, "nu": 0.2},
        "centred",
    ),
]


def centred(x: dict[str, float]) -> dict[str, float]:
    return {k: (v - 40.0) / 50.0 for k, v in x.items()}


def main() -> None:
    rows = seed.load_rows(seed.find_data_file(), seed.N_ROWS)
    out_dir = Path(__file__).resolve().parents[2] / "crates/onad-models/tests/fixtures/fidelity"
    lines = []
    for stem, kwargs, mode in CONFIGS:
        model = GADGETSVM(**kwargs)
        out = []
        for x in rows if mode == "raw" else map(centred, rows):
            out.append(float(model.score_one(x)))
            model.learn_one(x)
        path = out_dir / f"{stem}.csv"
        with path.open("w", newline="") as fh:
            fh.write("row,score\n")
            for i, s in enumerate(out):
                fh.write(f"{i},{seed.fmt(s)}\n")
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        nonzero = sum(1 for s in out if s != 0.0)
        lines.append(f"| `{path.name}` | GADGETSVM({args}) | {mode} | {nonzero} |")
        print(f"{stem}: {nonzero} nonzero scores")
    section = [
        BEGIN,
        "",
        "# GADGET SVM (gen_gadget_fixture.py)",
        "",
        f"onad {seed.ONAD_VERSION} `GADGETSVM` (numpy {np.__version__}), full 9-feature dict,",
        "`s = score_one(x); learn_one(x)`. Columns `row,score`: onad's output. Input `raw` is the row,",
        "`centred` maps each value v to (v - 40) / 50.",
        "",
        "| file | configuration | input | nonzero scores |",
        "|---|---|---|---:|",
        *lines,
        "",
        "Regenerate: `/tmp/pyref/bin/python scripts/fidelity/gen_gadget_fixture.py`.",
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


if __name__ == "__main__":
    main()
