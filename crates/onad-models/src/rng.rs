//! The random draws every stochastic model shares: PCG64 generators, one per unit of work (tree,
//! estimator), seeded from `(seed, index)` so that results do not depend on thread count or on the order
//! units are built in, and the two conversions the models use.
//!
//! These are part of the models' outputs: changing any of them changes every seeded result (and the
//! fidelity fixtures whose generators are ported to Python, `scripts/fidelity/`).

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;

/// The splitmix64 finaliser: a bijection of u64 that mixes every input bit into every output bit.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator of unit `index` (a tree, an estimator) for this seed.
pub(crate) fn unit_rng(seed: u64, index: u64) -> Pcg64 {
    Pcg64::seed_from_u64(mix64(mix64(seed) ^ index))
}

/// Uniform in `0..n` (`n >= 1`), by the high half of a 64 x 64-bit product (Lemire's multiply-shift
/// without the rejection step; the bias is below n / 2^64).
#[inline]
pub(crate) fn below(rng: &mut Pcg64, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// A double in [0, 1) from the top 53 bits of `bits` (numpy's construction).
#[inline]
pub(crate) fn unit_from_bits(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in [0, 1).
#[inline]
pub(crate) fn unit(rng: &mut Pcg64) -> f64 {
    unit_from_bits(rng.next_u64())
}
