//! A seeded synthetic stream for benchmarks and examples: drifting Gaussian features with a small share
//! of injected anomalies, the protocol of `../shared/bench/python-baselines.md` (100k rows x 10 features,
//! drift, 1 % anomalies). Deterministic for a given seed on every platform.

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;

/// The generated stream: row-major values, labels (1 = injected anomaly), and the feature count.
#[derive(Debug, Clone)]
pub struct SyntheticStream {
    /// Row-major values, `rows * features`.
    pub values: Vec<f64>,
    /// One label per row.
    pub labels: Vec<f64>,
    /// Features per row.
    pub features: usize,
}

impl SyntheticStream {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.features..(i + 1) * self.features]
    }
}

fn uniform(rng: &mut Pcg64) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal by Box-Muller (one draw per call; simple and deterministic).
fn normal(rng: &mut Pcg64) -> f64 {
    let u1 = uniform(rng).max(f64::MIN_POSITIVE);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Generates `rows` rows of `features` features: feature `j` is normal with a mean that drifts slowly
/// (a sine of period 20,000 rows and amplitude 2, phase-shifted per feature) and standard deviation
/// `1 + j / features`. Each row is an anomaly with probability `anomaly_rate`: two to four random features
/// move by 5 to 8 standard deviations.
pub fn drifting_gaussian(rows: usize, features: usize, anomaly_rate: f64, seed: u64) -> SyntheticStream {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut values = Vec::with_capacity(rows * features);
    let mut labels = Vec::with_capacity(rows);
    for i in 0..rows {
        let t = i as f64 / 20_000.0 * std::f64::consts::TAU;
        let start = values.len();
        for j in 0..features {
            let sd = 1.0 + j as f64 / features as f64;
            let mean = 2.0 * (t + j as f64).sin();
            values.push(mean + sd * normal(&mut rng));
        }
        let anomalous = uniform(&mut rng) < anomaly_rate;
        if anomalous && features > 0 {
            let k = 2 + (rng.next_u64() % 3) as usize;
            for _ in 0..k {
                let j = (rng.next_u64() % features as u64) as usize;
                let sd = 1.0 + j as f64 / features as f64;
                let sign = if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
                values[start + j] += sign * sd * (5.0 + 3.0 * uniform(&mut rng));
            }
        }
        labels.push(if anomalous { 1.0 } else { 0.0 });
    }
    SyntheticStream { values, labels, features }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_with_the_requested_shape_and_rate() {
        let a = drifting_gaussian(20_000, 10, 0.01, 7);
        let b = drifting_gaussian(20_000, 10, 0.01, 7);
        assert_eq!(a.values, b.values);
        assert_eq!(a.values.len(), 200_000);
        let rate = a.labels.iter().sum::<f64>() / a.rows() as f64;
        assert!((rate - 0.01).abs() < 0.003, "{rate}");
        assert_ne!(a.values, drifting_gaussian(20_000, 10, 0.01, 8).values);
    }
}
