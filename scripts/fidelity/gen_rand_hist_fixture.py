#!/usr/bin/env python3
"""Generate the StreamRandomHistogramForest fidelity fixtures: onad 0.3.0's `iforest/rand_hist.py` on the
first 2000 SHUTTLE rows, mapped into onad's unit range by `v / 256 + 0.5` (exact in binary; most values
land in [0, 1], the rest exercise the edge bins).

Usage (from anywhere):
    /tmp/pyref/bin/python scripts/fidelity/gen_rand_hist_fixture.py

onad draws each histogram's interval from Python's global `random`, which the Rust port does not
reproduce (it has one PCG64 generator per estimator). The histogram logic given the intervals is
deterministic, so each configuration writes two files:
- `<stem>.csv`, `row,score`: `s = score_one(x); learn_one(x)` on the full 9-feature dict;
- `<stem>.edges.csv`, `estimator,feature,min,max`: the intervals onad drew (they never change).
The Rust fidelity test builds the model with `feature_range = "unit"`, puts these intervals into its
state and compares every score.

The README section between the gen_rand_hist_fixture markers is replaced (or appended) in
fixtures/fidelity/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_seed_fixture as seed  # noqa: E402  (stubs torch, imports onad)

from onad.model.iforest.rand_hist import StreamRandomHistogramForest  # noqa: E402

BEGIN = "<!-- BEGIN gen_rand_hist_fixture.py section (generated; do not edit by hand) -->"
END = "<!-- END gen_rand_hist_fixture.py section -->"

# (file stem, n_estimators, max_bins, window_size, seed)
CONFIGS = [
    ("rand_hist_t25_b10_w256_seed42", 25, 10, 256, 42),
    ("rand_hist_t3_b7_w20_seed1", 3, 7, 20, 1),
    ("rand_hist_t2_b1_w5_seed0", 2, 1, 5, 0),
]


def main() -> None:
    out_dir = seed.REPO_ROOT / "crates" / "onad-models" / "tests" / "fixtures" / "fidelity"
    rows = seed.load_rows(seed.find_data_file(), seed.N_ROWS)
    rows = [{k: v / 256 + 0.5 for k, v in x.items()} for x in rows]
    inside = sum(1 for x in rows for v in x.values() if 0.0 <= v <= 1.0)
    lines = []
    for stem, t, b, w, s in CONFIGS:
        model = StreamRandomHistogramForest(n_estimators=t, max_bins=b, window_size=w, seed=s)
        scores = []
        for x in rows:
            scores.append(model.score_one(x))
            model.learn_one(x)
        with (out_dir / f"{stem}.csv").open("w") as fh:
            fh.write("row,score\n")
            for i, v in enumerate(scores):
                fh.write(f"{i},{seed.fmt(v)}\n")
        with (out_dir / f"{stem}.edges.csv").open("w") as fh:
            fh.write("estimator,feature,min,max\n")
            for e, h in enumerate(model.histograms):
                for f, name in enumerate(model.feature_names):
                    bins = h["bins"][name]
                    fh.write(f"{e},{f},{seed.fmt(bins['min'])},{seed.fmt(bins['max'])}\n")
        ties = sum(1 for v in scores if v == 1.0)
        lines.append(
            f"| `{stem}.csv` | StreamRandomHistogramForest(n_estimators={t}, max_bins={b}, window_size={w}, "
            f"seed={s}) | {min(scores):.6g} | {max(scores):.6g} | {ties} |"
        )
        print(f"{stem}: scores in [{min(scores):.6g}, {max(scores):.6g}], {ties} equal to 1.0")

    section = [
        BEGIN,
        "",
        "# StreamRandomHistogramForest (gen_rand_hist_fixture.py)",
        "",
        f"onad {seed.ONAD_VERSION} `StreamRandomHistogramForest` on the first {len(rows)} SHUTTLE rows mapped",
        f"by `v / 256 + 0.5` ({inside} of {len(rows) * 9} values in [0, 1]), full 9-feature dict,",
        "`s = score_one(x); learn_one(x)`. Columns `row,score`; `<stem>.edges.csv` holds the interval",
        "`[min, max]` onad drew for each estimator and feature from Python's global `random`, which the Rust",
        "test puts into its model's state (its own generators draw other intervals).",
        "",
        "| file | configuration | smallest score | largest score | scores equal to 1.0 |",
        "|---|---|---:|---:|---:|",
        *lines,
        "",
        "Regenerate: `/tmp/pyref/bin/python scripts/fidelity/gen_rand_hist_fixture.py`.",
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
    print(f"wrote {2 * len(CONFIGS)} files and the README section")


if __name__ == "__main__":
    main()
