#!/usr/bin/env python3
"""Where DAMP's top discord lands against the labelled anomalies, onad next to aberrant 1.3.0 on the same rows.

Usage (after `cargo build --release -p onad-models --example scores` and one run of quality_table.py, whose
prepared CSVs in --work this reads): /tmp/pyref/bin/python scripts/bench/damp_top_discord.py
    [--rust BIN] [--work /tmp/onad-quality] [--budget-seconds S]

For the ECG series and each NAB series, both sides run XLagDAMP prequentially (score then learn) with the
subsequence length of quality_table.py's fixed rule (one period: ECG beat 288, one day of NAB). The top
discord is the row with the highest score; its subsequence is the m rows ending there. Reported: that row,
whether the subsequence overlaps a labelled row ("hit"), and the distance in rows from the subsequence to
the nearest labelled row. aberrant runs on a prefix when it is slower than the budget (then onad is also
reported on the same prefix).
"""

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402
from quality_table import _period  # noqa: E402


def where(scores, labels, m):
    top = max(range(len(scores)), key=lambda i: (scores[i], -i))
    lo = max(0, top - m + 1)
    marked = [i for i, y in enumerate(labels) if y]
    hit = any(labels[lo:top + 1])
    gap = 0 if hit else min((lo - i if i < lo else i - top) for i in marked) if marked else None
    return top, hit, gap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust", default=str(HERE.parent.parent / "target/release/examples/scores"))
    ap.add_argument("--work", default="/tmp/onad-quality")
    ap.add_argument("--budget-seconds", type=float, default=120)
    args = ap.parse_args()
    from aberrant.model.timeseries.damp import XLagDAMP

    parts = [("ts_mitdb_ecg", "ts_mitdb_ecg.csv")] + sorted(
        (f"nab_known_cause/{p[len('nab_known_cause-'):-4]}", p) for p in os.listdir(args.work)
        if p.startswith("nab_known_cause-") and p.endswith(".csv"))
    print("| series | rows (aberrant's prefix) | m | onad top row | hit / rows away | aberrant top row | hit / rows away |")
    print("|---|---:|---:|---:|---|---:|---|")
    for label, name in parts:
        path = os.path.join(args.work, name)
        rows, labels = quality.load(path)
        m = _period(label)["subsequence_length"]
        py, _ = quality.score_rows(XLagDAMP(subsequence_length=m), rows, seconds=args.budget_seconds)
        n = len(py)
        src = path if n == len(rows) else quality.write_prefix(path, n, os.path.join(args.work, f"top-prefix-{name}"))
        rs, _ = quality.rust_prequential_scores(args.rust, src, {"damp": {"subsequence_length": m}})
        fmt = lambda t: f"{t[0]} | {'hit' if t[1] else f'miss / {t[2]}'}"  # noqa: E731
        print(f"| {label} | {len(rows)}{'' if n == len(rows) else f' ({n})'} | {m} | {fmt(where(rs, labels[:n], m))} | "
              f"{fmt(where(py, labels[:n], m))} |", flush=True)


if __name__ == "__main__":
    main()
