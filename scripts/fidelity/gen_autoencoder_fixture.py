#!/usr/bin/env python3
"""Generate the autoencoder fidelity fixtures: onad 0.3.0 `Autoencoder` (real torch, in float64) on the
first 500 SHUTTLE rows, from initial weights both sides can write down.

Usage (needs torch in the environment, e.g. `/tmp/pyref/bin/pip install torch`):
    /tmp/pyref/bin/python scripts/fidelity/gen_autoencoder_fixture.py

torch's generator cannot be reproduced in Rust, so instead of a seed every configuration starts from the
weights `w_i = 0.25 * sin(0.7 i + 0.3)`, `i` the position of the parameter in the Rust model's flat layout
(`crates/onad-models/src/deep/nn.rs`): layer after layer; a dense layer's weights input-major
(`W[k * out + j]` = torch's `weight[j, k]`) then its bias; an LSTM's input weights input-major over the
gate rows i, g, o (torch's rows 0, 2 and 3 of its four blocks) then `bias_ih` then `bias_hh` (same gates).
The LSTM's forget-gate rows and recurrent weights have no Rust counterpart (a sequence of length 1 from
the zero state never uses them); they get `0.25 * cos(0.3 i + 0.1)` here, which shows they do not matter.

onad's own classes run the rows (`VanillaAutoencoder` / `VanillaLSTMAutoencoder`, `Autoencoder` with a
torch optimizer and loss), cast to float64 (onad's float32 input buffer is replaced by a float64 one).
Protocol: `s = score_one(x); learn_one(x)`; each file is `row,score`. Input `raw` is the SHUTTLE row,
`centred` maps every value v to (v - 40) / 50. Consumed by `crates/onad-models/tests/fidelity_autoencoder.rs`.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (the real one, imported before gen_seed_fixture's stub would replace it)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_seed_fixture as seed  # noqa: E402

from onad.model.deep.autoencoder import Autoencoder  # noqa: E402
from onad.utils.deep.architecture import VanillaAutoencoder, VanillaLSTMAutoencoder  # noqa: E402
from torch import nn, optim  # noqa: E402

N_ROWS = 500

# (file stem, architecture, optimizer, learning rate, loss, input)
CONFIGS = [
    ("autoencoder_vanilla_adam_mse_raw", "vanilla", "adam", 1e-3, "mse", "raw"),
    ("autoencoder_vanilla_adam_mse_centred", "vanilla", "adam", 1e-3, "mse", "centred"),
    ("autoencoder_vanilla_sgd_l1_centred", "vanilla", "sgd", 0.01, "l1", "centred"),
    ("autoencoder_lstm_adam_smooth_l1_centred", "lstm", "adam", 1e-3, "smooth_l1", "centred"),
    ("autoencoder_lstm_sgd_huber_centred", "lstm", "sgd", 0.1, "huber", "centred"),
]

LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "smooth_l1": nn.SmoothL1Loss, "huber": nn.HuberLoss}


def weight(i: int) -> float:
    return 0.25 * math.sin(0.7 * i + 0.3)


def unused(i: int) -> float:
    return 0.25 * math.cos(0.3 * i + 0.1)


class Counter:
    def __init__(self) -> None:
        self.i = 0

    def take(self) -> float:
        v = weight(self.i)
        self.i += 1
        return v


def fill_linear(layer: nn.Linear, c: Counter) -> None:
    out, n_in = layer.weight.shape
    with torch.no_grad():
        for k in range(n_in):
            for j in range(out):
                layer.weight[j, k] = c.take()
        for j in range(out):
            layer.bias[j] = c.take()


def fill_lstm(layer: nn.LSTM, c: Counter) -> None:
    h = layer.hidden_size
    n_in = layer.input_size
    blocks = [0, 2, 3]  # torch's gate blocks i, f, g, o: the Rust model keeps i, g, o
    with torch.no_grad():
        for k, v in enumerate(layer.weight_hh_l0.view(-1)):
            layer.weight_hh_l0.view(-1)[k] = unused(k)
        for j in range(h):
            for k in range(n_in):
                layer.weight_ih_l0[h + j, k] = unused(j * n_in + k)
            layer.bias_ih_l0[h + j] = unused(7 * j)
            layer.bias_hh_l0[h + j] = unused(11 * j)
        for k in range(n_in):
            for b in blocks:
                for j in range(h):
                    layer.weight_ih_l0[b * h + j, k] = c.take()
        for bias in (layer.bias_ih_l0, layer.bias_hh_l0):
            for b in blocks:
                for j in range(h):
                    bias[b * h + j] = c.take()


def build(arch: str, opt: str, lr: float, loss: str, d: int) -> Autoencoder:
    c = Counter()
    if arch == "vanilla":
        net = VanillaAutoencoder(input_size=d).double()
        for layer in [*net.encoder, *net.decoder]:
            if isinstance(layer, nn.Linear):
                fill_linear(layer, c)
    else:
        net = VanillaLSTMAutoencoder(input_size=d).double()
        fill_lstm(net.encoder, c)
        fill_linear(net.hidden_to_latent, c)
        fill_linear(net.latent_to_hidden, c)
        fill_lstm(net.decoder, c)
    assert c.i == sum(p.numel() for p in net.parameters()) - unused_count(net), (c.i, arch)
    optimizer = optim.Adam(net.parameters(), lr=lr) if opt == "adam" else optim.SGD(net.parameters(), lr=lr)
    model = Autoencoder(model=net, optimizer=optimizer, criterion=LOSSES[loss]())
    model.x_tensor = torch.empty(1, d, dtype=torch.float64)
    return model


def unused_count(net) -> int:
    n = 0
    for m in net.modules():
        if isinstance(m, nn.LSTM):
            n += m.weight_hh_l0.numel() + m.hidden_size * (m.input_size + 2)
    return n


def main() -> None:
    rows = seed.load_rows(seed.find_data_file(), N_ROWS)
    d = len(rows[0])
    out_dir = Path(__file__).resolve().parents[2] / "crates/onad-models/tests/fixtures/fidelity"
    for stem, arch, opt, lr, loss, mode in CONFIGS:
        model = build(arch, opt, lr, loss, d)
        out = []
        for x in rows:
            if mode == "centred":
                x = {k: (v - 40.0) / 50.0 for k, v in x.items()}
            out.append(float(model.score_one(x)))
            model.learn_one(x)
        path = out_dir / f"{stem}.csv"
        with path.open("w", newline="") as fh:
            fh.write("row,score\n")
            for i, s in enumerate(out):
                fh.write(f"{i},{seed.fmt(s)}\n")
        print(f"{stem}: first {out[0]:.6g}, last {out[-1]:.6g} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
