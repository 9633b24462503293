"""Python ports of onad-rs's seeded draws (`crates/onad-models/src/rng.rs`), for fixtures that replace a
reference library's generator with the Rust one so that both sides sample the same values.

- `Pcg64(seed)`: rand_pcg 0.9 `Pcg64::seed_from_u64(seed)` (Lcg128Xsl64; rand_core fills the 32-byte
  seed from a PCG32 stream), `next_u64` only.
- `below(pcg, n)`: an index in `0..n` as the high half of the 64 x 64-bit product `next_u64() * n`.
- `partial_shuffle(pcg, n, k)`: `k` of `0..n` without replacement, by a partial Fisher-Yates shuffle
  (position `i` swapped with `i + below(n - i)`), in draw order.
- `RustDraws(seed)`: stands in for a numpy generator's `choice(n, size, replace=False)`.
- `RustRandom(seed)`: stands in for Python's `random.Random(seed)` where only `sample` is used.
"""

from __future__ import annotations

M32, M64, M128 = (1 << 32) - 1, (1 << 64) - 1, (1 << 128) - 1
PCG64_MULT = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645


class Pcg64:
    """rand_pcg 0.9 `Pcg64::seed_from_u64(seed)`, `next_u64` only."""

    def __init__(self, seed_value: int) -> None:
        st = seed_value & M64
        raw = b""
        for _ in range(8):  # rand_core's seed_from_u64: a PCG32 stream fills the 32-byte seed
            st = (st * 6364136223846793005 + 11634580027462260723) & M64
            xorshifted = (((st >> 18) ^ st) >> 27) & M32
            rot = st >> 59
            raw += (((xorshifted >> rot) | (xorshifted << ((-rot) & 31))) & M32).to_bytes(4, "little")
        words = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, 32, 8)]
        self.inc = (words[2] | (words[3] << 64)) | 1
        self.state = ((words[0] | (words[1] << 64)) + self.inc) & M128
        self._step()

    def _step(self) -> None:
        self.state = (self.state * PCG64_MULT + self.inc) & M128

    def next_u64(self) -> int:
        self._step()
        rot = self.state >> 122
        xsl = ((self.state >> 64) ^ self.state) & M64
        return ((xsl >> rot) | (xsl << ((-rot) & 63))) & M64


def below(pcg: Pcg64, n: int) -> int:
    """Uniform in `0..n` as `rng::below` draws it."""
    return (pcg.next_u64() * n) >> 64


def partial_shuffle(pcg: Pcg64, n: int, k: int) -> list[int]:
    """`k` distinct indices of `0..n`, as the Rust models draw them."""
    picks = list(range(n))
    for i in range(k):
        j = i + below(pcg, n - i)
        picks[i], picks[j] = picks[j], picks[i]
    return picks[:k]


class RustDraws:
    """Stands in for aberrant's numpy generator: `choice(n, size, replace=False)` as onad-rs draws it."""

    def __init__(self, seed_value: int) -> None:
        self.pcg = Pcg64(seed_value)

    def choice(self, n, size, replace=False):
        import numpy as np

        assert not replace
        return np.array(partial_shuffle(self.pcg, n, size))


class RustRandom:
    """Stands in for `random.Random(seed)` where only `sample(population, k)` is called."""

    def __init__(self, seed_value: int | None = None) -> None:
        if seed_value is None:
            raise ValueError("the Rust draws need a seed")
        self.pcg = Pcg64(seed_value)

    def sample(self, population, k):
        return [population[i] for i in partial_shuffle(self.pcg, len(population), k)]
