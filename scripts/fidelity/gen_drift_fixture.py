#!/usr/bin/env python3
"""Generate the fidelity fixture of the drift detectors `adwin`, `kswin` and `page_hinkley`: where
aberrant 1.3.0's `ADWIN`, `KSWIN` and `PageHinkley` signal a change on a seeded synthetic stream.

Usage (from anywhere):
    /tmp/pyref/bin/python scripts/fidelity/gen_drift_fixture.py

The stream (numpy `default_rng(20261201)`, 6,000 values, written into the fixture): N(0, 1) for rows
0-1499, N(1.5, 1) for 1500-2999, N(-0.5, 1) for 3000-4499, N(-0.5, 2.5^2) for 4500-5999 (two mean
shifts, then a variance change at an unchanged mean).

KSWIN samples older values with Python's `random.Random(seed)`; that generator is replaced here by the
port of the Rust draws (`rust_draws.RustRandom`: PCG64 seeded as rand_core's `seed_from_u64`, a partial
Fisher-Yates shuffle with indices below n as the high half of a 64 x 64-bit product), re-created from
the seed after each change as aberrant re-creates its own. The fixture so checks the draws' port and the
test together.

Protocol: `detector.update(x)` per row; a column per configuration holds 1 where `drift_detected` is
true after that row, else 0. File `drift.csv`: `row,x,<configuration>...`.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import aberrant.drift.kswin as kswin_module  # noqa: E402
from aberrant.drift import ADWIN, KSWIN, PageHinkley  # noqa: E402
from rust_draws import RustRandom  # noqa: E402

BEGIN = "<!-- BEGIN gen_drift_fixture.py section (generated; do not edit by hand) -->"
END = "<!-- END gen_drift_fixture.py section -->"

# KSWIN calls `random.Random(seed)` at construction and after every change.
kswin_module.random = types.SimpleNamespace(Random=RustRandom)

# (column, aberrant class, keyword arguments); the Rust test holds the same list in registry JSON.
CONFIGS = [
    ("adwin_default", ADWIN, {}),
    ("adwin_d0p01_clock8_mb3_max400", ADWIN, {"delta": 0.01, "clock": 8, "max_buckets": 3, "max_window_size": 400}),
    ("adwin_clock1_grace50_mwl20", ADWIN, {"clock": 1, "grace_period": 50, "min_window_length": 20}),
    ("kswin_default_seed0", KSWIN, {"seed": 0}),
    ("kswin_a0p01_w60_s20_seed7", KSWIN, {"alpha": 0.01, "window_size": 60, "stat_size": 20, "seed": 7}),
    ("kswin_a0p05_w200_s45_seed3", KSWIN, {"alpha": 0.05, "window_size": 200, "stat_size": 45, "seed": 3}),
    ("page_hinkley_default", PageHinkley, {}),
    ("page_hinkley_up_t20", PageHinkley, {"mode": "up", "threshold": 20.0}),
    ("page_hinkley_down_t15_a0p99_d0p1", PageHinkley,
     {"mode": "down", "threshold": 15.0, "alpha": 0.99, "delta": 0.1, "min_instances": 10}),
]


def stream() -> list[float]:
    rng = np.random.default_rng(20261201)
    parts = [rng.normal(0.0, 1.0, 1500), rng.normal(1.5, 1.0, 1500), rng.normal(-0.5, 1.0, 1500),
             rng.normal(-0.5, 2.5, 1500)]
    return [float(v) for v in np.concatenate(parts)]


def main() -> None:
    import aberrant

    xs = stream()
    out_dir = Path(__file__).resolve().parents[2] / "crates/onad-models/tests/fixtures/fidelity"
    flags = {}
    lines = []
    for name, cls, kwargs in CONFIGS:
        det = cls(**kwargs)
        col = []
        for x in xs:
            det.update(x)
            col.append(1 if det.drift_detected else 0)
        flags[name] = col
        at = [i for i, f in enumerate(col) if f]
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        lines.append(f"| `{name}` | {cls.__name__}({args}) | {len(at)} | {', '.join(map(str, at))} |")
        print(f"{name}: {at}")
    with (out_dir / "drift.csv").open("w", newline="") as fh:
        fh.write("row,x," + ",".join(flags) + "\n")
        for i, x in enumerate(xs):
            fh.write(f"{i},{x!r}," + ",".join(str(flags[n][i]) for n in flags) + "\n")
    section = [
        BEGIN,
        "",
        "# Drift detectors (gen_drift_fixture.py)",
        "",
        f"aberrant {aberrant.__version__} `ADWIN`, `KSWIN`, `PageHinkley` (numpy {np.__version__}) on the",
        "6,000-value stream of the script (written in column `x`): `update(x)` per row, 1 where",
        "`drift_detected`. KSWIN's `random.Random` is replaced by the port of the Rust draws.",
        "",
        "| column | configuration | changes | rows |",
        "|---|---|---:|---|",
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
