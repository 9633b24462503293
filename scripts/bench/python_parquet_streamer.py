#!/usr/bin/env python3
"""Read throughput of the reference Python library's ParquetStreamer (onad 0.3.0).

Usage:
    /work/pyenv/bin/python scripts/bench/python_parquet_streamer.py FILE.parquet [--budget-seconds S]
        [--label-column NAME]

Iterates `onad.stream.ParquetStreamer(FILE, label_column=NAME)` as a user would:

    with ParquetStreamer(path, label_column="label") as s:
        for x, y in s:      # x: {feature: float}, y: the label value
            ...

with the library defaults otherwise (sanitize_floats=True and its tqdm progress bar, which writes to
stderr). The clock (time.perf_counter) starts before the file is opened, as the Rust criterion bench
(`crates/onad-sources/benches/read.rs`) opens the file in every iteration, and stops after the last row, or
at the first row past the budget (default 60 s): the rate is then over the rows read so far.

Output: one JSON object on stdout:
  {"rows": N, "seconds": T, "rows_per_s": R, "file_bytes": B, "file_rows": M, "complete": bool,
   "python": ..., "onad": ..., "pandas": ..., "pyarrow": ...}
`file_rows` is the row count in the file's metadata; `complete` says whether every row was read.

Needs pandas and pyarrow besides onad (ParquetStreamer converts every batch to a pandas DataFrame).
onad imports torch at import time: torch is stubbed by importing python_onad.py (same directory), which
puts stub modules into sys.modules before importing onad.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Importing python_onad stubs torch (at its import) and then imports onad and the models it benchmarks.
from python_onad import ONAD_VERSION, _stub_torch, log  # noqa: E402

_stub_torch()  # no-op once python_onad is imported; kept to make the dependency explicit

from onad.stream.streamer import ParquetStreamer  # noqa: E402

# Look at the clock every CHECK_EVERY rows only (the budget is a stop condition, not part of the rate).
CHECK_EVERY = 1024


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="Parquet file (the Rust read bench writes 1M rows x f0..f9 + label)")
    ap.add_argument("--budget-seconds", type=float, default=60.0,
                    help="stop after this many seconds, counting the rows read so far (default 60)")
    ap.add_argument("--label-column", default="label", help="label column (default: label)")
    args = ap.parse_args()

    import pyarrow.parquet as pq

    file_bytes = os.path.getsize(args.path)
    file_rows = pq.ParquetFile(args.path).metadata.num_rows
    log(f"{args.path}: {file_rows} rows, {file_bytes / 1e6:.1f} MB; python {platform.python_version()}, "
        f"onad {ONAD_VERSION}; budget {args.budget_seconds} s")

    budget = args.budget_seconds
    rows = 0
    t0 = time.perf_counter()
    with ParquetStreamer(args.path, label_column=args.label_column) as streamer:
        for _x, _y in streamer:
            rows += 1
            if rows % CHECK_EVERY == 0 and time.perf_counter() - t0 >= budget:
                break
    seconds = time.perf_counter() - t0

    result = {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds if seconds > 0 else None,
        "file_bytes": file_bytes,
        "file_rows": file_rows,
        "complete": rows == file_rows,
        "python": platform.python_version(),
        "onad": ONAD_VERSION,
        "pandas": _version("pandas"),
        "pyarrow": _version("pyarrow"),
    }
    log(f"\nParquetStreamer: {rows} rows in {seconds:.2f} s = {result['rows_per_s']:,.0f} rows/s"
        + ("" if result["complete"] else f" (budget reached, {file_rows - rows} rows not read)"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
