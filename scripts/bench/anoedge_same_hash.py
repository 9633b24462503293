"""aberrant's AnoEdgeL with its hash replaced by onad's SketchHash, against onad's anoedge_l on one edge CSV.

    /tmp/pyref/bin/python scripts/bench/anoedge_same_hash.py EDGES.csv [SEED] [DECAY] [ROWS]

EDGES.csv has the columns src, dst, t (and a label, ignored), e.g. the edges_synthetic parts of
quality_table.py. Runs target/release/examples/scores on the same rows and prints the largest score
difference: the two implement the same algorithm, so with the same cells the scores agree (bit for bit
without decay).
"""

import csv
import os
import struct
import subprocess
import sys

import numpy as np
from aberrant.model.graph.anoedge import AnoEdgeL

MASK = (1 << 64) - 1
P61 = (1 << 61) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def sketch_hash(seed, index):
    """onad's graph::SketchHash::new(seed, index): (a, b)."""
    return mix64(seed ^ mix64(2 * index + 1)) % (P61 - 1) + 1, mix64(seed ^ mix64(2 * index + 2)) % P61


def node_key(v):
    v = float(v)
    return 0 if v == 0.0 else struct.unpack("<Q", struct.pack("<d", v))[0]


def main():
    path = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    decay = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    rows = list(csv.DictReader(open(path)))[:n]
    m = AnoEdgeL(seed=seed, time_decay_factor=decay)
    hashes = [sketch_hash(seed, p) for p in range(m.num_hashes)]

    def cell(key, p, size):
        a, b = hashes[p]
        return ((a * (key % P61) + b) % P61) % size

    m._hashed_cells = lambda s, d: [
        (p, cell(node_key(s), p, m.count_min_rows), cell(node_key(d), p, m.count_min_cols)) for p in range(m.num_hashes)
    ]
    py = []
    for r in rows:
        x = {"src": float(r["src"]), "dst": float(r["dst"]), "t": float(r["t"])}
        py.append(m.score_one(x))
        m.learn_one(x)
    head = f"/tmp/anoedge_same_hash_{os.getpid()}.csv"
    with open(path) as f, open(head, "w") as out:
        for i, line in enumerate(f):
            if i > n:
                break
            out.write(line)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = f'{{"anoedge_l": {{"seed": {seed}, "time_decay_factor": {decay}}}}}'
    res = subprocess.run([os.path.join(root, "target/release/examples/scores"), head, "prequential", spec],
                         capture_output=True, text=True, check=True)
    os.remove(head)
    rust = np.array([float(v) for v in res.stdout.split()])
    diff = np.abs(np.array(py) - rust)
    print(f"{len(py)} rows, largest difference {diff.max():.3g}, rows differing by more than 1e-9: "
          f"{int((diff > 1e-9 * np.maximum(1.0, np.abs(rust))).sum())}")


if __name__ == "__main__":
    main()
