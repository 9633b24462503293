//! RandomProjection: a sparse random linear map to fewer dimensions that keeps distances in expectation
//! (Achlioptas 2003, "Database-friendly random projections").

use onad_core::{ParamDoc, ParamError, Schema, SchemaRef, Transformer, TransformerParams};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// Hyperparameters of [`RandomProjection`] (Python onad names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct RandomProjectionParams {
    /// Output dimension `k` (required), `1 <= k <= d`.
    pub n_components: Option<usize>,
    /// The input features, in order; default: every feature.
    pub keys: Option<Vec<String>>,
    /// Seed of the projection matrix; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
}

/// Maps `x` (d features) to `R^T x` (k components named `component_0..`), with `R[i][j] = sqrt(3 / k) * s`,
/// `s` = -1, 0, +1 with probabilities 1/6, 2/3, 1/6. Then `E[|R^T x|^2] = |x|^2`: the Johnson-Lindenstrauss
/// scaling. Learning does nothing (the matrix is fixed at build).
///
/// Deviations from onad 0.3.0: onad scales by `sqrt(3)`, so its projections are `sqrt(k)` times too long
/// (aberrant fixed this the same way); the matrix is drawn from PCG64 seeded with `seed`, not numpy's
/// generator, so the entries differ from onad's for the same seed; `seed = None` means seed 0, not a fresh
/// random seed.
///
/// ```
/// use onad_core::{Schema, Transformer, TransformerParams};
/// use onad_models::RandomProjectionParams;
/// let schema = Schema::numbered("f", 100);
/// let p = RandomProjectionParams { n_components: Some(20), seed: Some(7), ..Default::default() };
/// let t = p.build(&schema).unwrap();
/// assert_eq!(t.output_schema().names()[0], "component_0");
/// let x = vec![1.0; 100];
/// let mut out = vec![0.0; 20];
/// t.transform_one(&x, &mut out);
/// let norm2: f64 = out.iter().map(|v| v * v).sum();
/// assert!(norm2 > 30.0 && norm2 < 300.0, "{norm2}"); // |x|^2 = 100 in expectation
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomProjection {
    columns: Vec<usize>,
    output: SchemaRef,
    /// k x d, row-major: row j holds the weights of component j (sparse in practice; dense is simplest).
    weights: Vec<f64>,
}

impl TransformerParams for RandomProjectionParams {
    type Model = RandomProjection;
    fn build(&self, schema: &SchemaRef) -> Result<RandomProjection, ParamError> {
        let columns = schema.resolve_all("keys", self.keys.as_deref())?;
        let d = columns.len();
        let k = self.n_components.ok_or(ParamError::Missing("n_components"))?;
        if k == 0 || k > d {
            return Err(ParamError::invalid(
                "n_components",
                format!("must be between 1 and the {d} input features, got {k}"),
            ));
        }
        let mut rng = Pcg64::seed_from_u64(self.seed.unwrap_or(0));
        let scale = (3.0 / k as f64).sqrt();
        let weights = (0..k * d)
            .map(|_| {
                let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                if u < 1.0 / 6.0 {
                    -scale
                } else if u < 5.0 / 6.0 {
                    0.0
                } else {
                    scale
                }
            })
            .collect();
        let output = Schema::numbered("component_", k);
        Ok(RandomProjection { columns, output, weights })
    }
}

impl Transformer for RandomProjection {
    fn learn_one(&mut self, _x: &[f64]) {}

    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        let d = self.columns.len();
        for (o, row) in out.iter_mut().zip(self.weights.chunks_exact(d)) {
            *o = row.iter().zip(&self.columns).map(|(w, &c)| if *w == 0.0 { 0.0 } else { w * x[c] }).sum();
        }
    }

    fn output_schema(&self) -> &SchemaRef {
        &self.output
    }
}

impl Describe for RandomProjectionParams {
    const REFERENCE: &'static str =
        "Achlioptas 2003, Database-friendly random projections: Johnson-Lindenstrauss with binary coins (JCSS)";
    const SUMMARY: &'static str = "sparse random projection to n_components dimensions (JL scaling)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "n_components", ty: "int in [1, d]", required: true, help: "output dimension" },
        ParamDoc { name: "keys", ty: "[feature, ...]", required: false, help: "input features; default all" },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the matrix (default 0)" },
    ];
    fn example() -> Self {
        RandomProjectionParams { n_components: Some(3), seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preserves_squared_norms_on_average_and_is_seeded() {
        let schema = Schema::numbered("f", 50);
        let build = |seed| {
            RandomProjectionParams { n_components: Some(10), seed: Some(seed), keys: None }.build(&schema).unwrap()
        };
        let mut ratio = 0.0;
        for seed in 0..200 {
            let t = build(seed);
            let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut out = [0.0; 10];
            t.transform_one(&x, &mut out);
            ratio += out.iter().map(|v| v * v).sum::<f64>() / x.iter().map(|v| v * v).sum::<f64>();
        }
        let mean = ratio / 200.0;
        assert!((mean - 1.0).abs() < 0.1, "E|Rx|^2/|x|^2 = {mean}");
        assert_eq!(build(3), build(3));
        assert_ne!(build(3), build(4));
        let zeros = build(1).weights.iter().filter(|w| **w == 0.0).count();
        assert!((zeros as f64 / 500.0 - 2.0 / 3.0).abs() < 0.07, "{zeros}");
        let err = RandomProjectionParams { n_components: Some(51), ..Default::default() }.build(&schema).unwrap_err();
        assert!(err.to_string().contains("n_components"));
    }
}
