#!/usr/bin/env python3
"""Generate the fidelity fixtures of `incremental_one_class_svm_adaptive_kernel`: aberrant 1.3.0's
`IncrementalOneClassSVMAdaptiveKernel` on the first 2000 SHUTTLE rows.

Usage (from anywhere):
    /tmp/pyref/bin/python scripts/fidelity/gen_adaptive_svm_fixture.py

Why aberrant and not onad 0.3.0: onad's class keeps support vectors standardised with the statistics of
their arrival and leaves the first row out of the statistics (models.md section 7); onad-rs follows
aberrant's corrected form, which is the same algorithm otherwise. With `rescale_every = 1` the Rust model
renews its scale on every row, as aberrant does.

The only random draws are the rows sampled for the width estimate (numpy `rng.choice` in aberrant). They
are replaced here by a port of the Rust draws: PCG64 (rand_pcg's Lcg128Xsl64, seeded by rand_core's
`seed_from_u64`), an index below n as the high half of a 64 x 64-bit product, and a partial Fisher-Yates
shuffle. The fixture therefore checks the draws' port and the algorithm together.

Protocol: `s = model.score_one(x); model.learn_one(x)` on the full 9-feature dict. Files are `row,score`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_seed_fixture as seed  # noqa: E402  (stubs torch; loader and float format)

import numpy as np  # noqa: E402
from aberrant.model.svm.adaptive import IncrementalOneClassSVMAdaptiveKernel  # noqa: E402
from rust_draws import RustDraws  # noqa: E402  (the port of the Rust draws, shared)

BEGIN = "<!-- BEGIN gen_adaptive_svm_fixture.py section (generated; do not edit by hand) -->"
END = "<!-- END gen_adaptive_svm_fixture.py section -->"

# (file stem, aberrant keyword arguments, seed); the Rust side adds rescale_every = 1.
CONFIGS = [
    ("adaptive_svm_default_seed0", {}, 0),
    ("adaptive_svm_b20_buf50_nu0p3_seed7", {"sv_budget": 20, "buffer_size": 50, "nu": 0.3}, 7),
    ("adaptive_svm_b5_g0p05_rate0p5_seed42", {"sv_budget": 5, "initial_gamma": 0.05, "adaptation_rate": 0.5}, 42),
]


def main() -> None:
    import aberrant

    rows = seed.load_rows(seed.find_data_file(), seed.N_ROWS)
    out_dir = Path(__file__).resolve().parents[2] / "crates/onad-models/tests/fixtures/fidelity"
    lines = []
    for stem, kwargs, seed_value in CONFIGS:
        model = IncrementalOneClassSVMAdaptiveKernel(**kwargs, seed=seed_value)
        model.rng = RustDraws(seed_value)
        out = []
        for x in rows:
            out.append(float(model.score_one(x)))
            model.learn_one(x)
        path = out_dir / f"{stem}.csv"
        with path.open("w", newline="") as fh:
            fh.write("row,score\n")
            for i, s in enumerate(out):
                fh.write(f"{i},{seed.fmt(s)}\n")
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        info = model.get_model_info()
        lines.append(
            f"| `{path.name}` | IncrementalOneClassSVMAdaptiveKernel({args}), seed {seed_value} | "
            f"{info['n_support_vectors']} | {info['gamma']:.6g} |"
        )
        print(f"{stem}: {info['n_support_vectors']} support vectors, gamma {info['gamma']:.6g}")
    section = [
        BEGIN,
        "",
        "# Adaptive-kernel one-class SVM (gen_adaptive_svm_fixture.py)",
        "",
        f"aberrant {aberrant.__version__} `IncrementalOneClassSVMAdaptiveKernel` (numpy {np.__version__}), full",
        "9-feature dict, `s = score_one(x); learn_one(x)`, its generator replaced by a port of onad-rs's",
        "draws (see the script). Columns `row,score`. The Rust side runs with `rescale_every = 1`.",
        "",
        "| file | configuration | support vectors at the end | gamma at the end |",
        "|---|---|---:|---:|",
        *lines,
        "",
        END,
    ]
    readme = out_dir / "README.md"
    text = readme.read_text()
    block = "\n".join(section)
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


if __name__ == "__main__":
    main()
