//! RandomModel: scores rows with uniform random numbers. A baseline whose ROC-AUC should be near 0.5.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::registry::Describe;
use crate::rng::unit_from_bits;

/// Hyperparameters of [`RandomModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomModelParams {
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for RandomModelParams {
    fn default() -> Self {
        RandomModelParams { seed: 1 }
    }
}

/// Scores each row with a draw from U[0, 1), independent of the row (Python onad `RandomModel`).
///
/// The generator is PCG64 (XSL-RR 128/64, the same family as numpy's default), and a draw is
/// `(next_u64 >> 11) * 2^-53`, numpy's double construction.
///
/// Deviation from onad 0.3.0: scoring does not consume randomness. `score_one` returns the *next* draw
/// without advancing; `learn_one` advances by one draw. In the score-then-learn loop the scores are the
/// generator's stream, as in Python, but scoring a row twice gives the same number, so scoring never
/// changes state. The seed is expanded with `Pcg64::seed_from_u64`, not numpy's `SeedSequence`, so the
/// numbers differ from Python's for the same seed.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::RandomModelParams;
/// let mut model = RandomModelParams { seed: 7 }.build(&Schema::shared(["a"]).unwrap()).unwrap();
/// let s = model.score_learn_one(&[1.0]);
/// assert!((0.0..1.0).contains(&s));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomModel {
    rng: Pcg64,
}

impl DetectorParams for RandomModelParams {
    type Model = RandomModel;
    fn build(&self, _schema: &SchemaRef) -> Result<RandomModel, ParamError> {
        Ok(RandomModel { rng: Pcg64::seed_from_u64(self.seed) })
    }
}

impl Detector for RandomModel {
    fn learn_one(&mut self, _x: &[f64]) {
        self.rng.next_u64();
    }

    fn score_one(&self, _x: &[f64]) -> f64 {
        unit_from_bits(self.rng.clone().next_u64())
    }
}

impl Describe for RandomModelParams {
    const SUMMARY: &'static str = "baseline: uniform random scores in [0, 1)";
    const PARAMS: &'static [ParamDoc] =
        &[ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the random generator" }];
    fn example() -> Self {
        RandomModelParams { seed: 42 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    #[test]
    fn scores_are_uniform_and_follow_learning() {
        let mut m = RandomModelParams::default().build(&Schema::shared(["a"]).unwrap()).unwrap();
        let n = 20_000;
        let mut sum = 0.0;
        let mut below_tenth = 0;
        for _ in 0..n {
            let s = m.score_one(&[0.0]);
            assert_eq!(s, m.score_one(&[5.0]), "scoring must not advance the generator");
            m.learn_one(&[0.0]);
            sum += s;
            below_tenth += usize::from(s < 0.1);
        }
        let mean = sum / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((below_tenth as f64 / n as f64 - 0.1).abs() < 0.01, "{below_tenth}");
    }
}
