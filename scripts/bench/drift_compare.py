#!/usr/bin/env python3
"""Drift detectors: aberrant 1.3.0's ADWIN, KSWIN and PageHinkley next to onad-rs's `adwin`, `kswin` and
`page_hinkley` on one seeded synthetic score stream with injected change points, in the same run.

Usage (from the workspace root):
    cargo build --release -p onad-models --example drift
    /tmp/pyref/bin/python scripts/bench/drift_compare.py [--rust target/release/examples/drift] [--repeats 3]

The stream (numpy `default_rng(7)`): 20,000 anomaly-score-like values in five segments of 4,000,
`max(0, N(mean, sd))` with (mean, sd) = (0.5, 0.1), (0.8, 0.1), (0.5, 0.1), (0.3, 0.1), (0.3, 0.3):
change points at rows 4,000 (mean up 0.3), 8,000 (down 0.3), 12,000 (down 0.2) and 16,000 (the
standard deviation triples, the mean stays).

Counting (the same function for both sides): a flag at row r is the detection of change c when it is
the first flag in [c, c + 2,000); its delay is r - c. Every other flag is a false alarm (before the first
change, late, or a second flag after one change). A change without a flag in its 2,000 rows is missed.

Speed: rows/s of the update loop alone (aberrant's `update(x)`, onad-rs's `learn_one`), best of
--repeats passes with a fresh detector each; the Rust side also reports `score_one` + `learn_one`.
aberrant's KSWIN draws with its own `random.Random(seed)`; onad-rs with its PCG64 (same seed number),
so KSWIN's flags differ by the draws only (with the draws ported the rows are identical, see
`scripts/fidelity/gen_drift_fixture.py`). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from aberrant.drift import ADWIN, KSWIN, PageHinkley

SEGMENT = 4000
SEGMENTS = [(0.5, 0.1), (0.8, 0.1), (0.5, 0.1), (0.3, 0.1), (0.3, 0.3)]
CHANGES = [SEGMENT * k for k in range(1, len(SEGMENTS))]
WINDOW = 2000

# (label, aberrant factory, onad-rs registry JSON)
CONFIGS = [
    ("ADWIN defaults", lambda: ADWIN(), {"adwin": {}}),
    ("KSWIN defaults, seed 0", lambda: KSWIN(seed=0), {"kswin": {"seed": 0}}),
    ("KSWIN alpha 0.0001, seed 0", lambda: KSWIN(alpha=0.0001, seed=0), {"kswin": {"alpha": 0.0001, "seed": 0}}),
    ("PageHinkley defaults", lambda: PageHinkley(), {"page_hinkley": {}}),
    ("PageHinkley threshold 5", lambda: PageHinkley(threshold=5.0), {"page_hinkley": {"threshold": 5.0}}),
]


def stream() -> list[float]:
    rng = np.random.default_rng(7)
    parts = [np.maximum(0.0, rng.normal(m, s, SEGMENT)) for m, s in SEGMENTS]
    return [float(v) for v in np.concatenate(parts)]


def count(flags: list[int]) -> tuple[list[int | None], int]:
    """Delay per change (None when missed) and the number of false alarms."""
    used = set()
    delays = []
    for c in CHANGES:
        hit = next((r for r in flags if c <= r < c + WINDOW), None)
        delays.append(None if hit is None else hit - c)
        if hit is not None:
            used.add(hit)
    return delays, sum(1 for r in flags if r not in used)


def run_aberrant(factory, xs, repeats):
    best = float("inf")
    for _ in range(repeats):
        det = factory()
        flags = []
        t = time.perf_counter()
        for i, x in enumerate(xs):
            det.update(x)
            if det.drift_detected:
                flags.append(i)
        best = min(best, time.perf_counter() - t)
    return flags, len(xs) / best


def fmt_delays(delays):
    return ", ".join("missed" if d is None else str(d) for d in delays)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust", default="target/release/examples/drift")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    xs = stream()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.csv"
        path.write_text("score\n" + "\n".join(repr(x) for x in xs) + "\n")
        print(f"stream: {len(xs)} rows, changes at {CHANGES}; delays per change, false alarms, rows/s")
        print()
        print("| detector | side | delays (rows after each change) | false alarms | update rows/s | score + learn rows/s |")
        print("|---|---|---|---:|---:|---:|")
        for label, factory, spec in CONFIGS:
            flags, rate = run_aberrant(factory, xs, args.repeats)
            delays, false = count(flags)
            print(f"| {label} | aberrant 1.3.0 | {fmt_delays(delays)} | {false} | {rate:,.0f} | - |")
            out = subprocess.run([args.rust, str(path), json.dumps(spec), str(args.repeats)], check=True,
                                 capture_output=True, text=True).stdout
            res = json.loads(out)
            delays, false = count(res["flags"])
            print(f"| {label} | onad-rs | {fmt_delays(delays)} | {false} | {res['learn_rows_per_s']:,.0f} | "
                  f"{res['prequential_rows_per_s']:,.0f} |")
            same = "same rows" if res["flags"] == flags else f"{len(flags)} / {len(res['flags'])} flags"
            print(f"<!-- {label}: aberrant and onad-rs: {same} -->")


if __name__ == "__main__":
    main()
