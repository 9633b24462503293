//! StandardScaler: centres each feature on its running mean and divides by its running standard deviation.

use onad_core::{ParamDoc, ParamError, SchemaRef, Transformer, TransformerParams};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// Hyperparameters of [`StandardScaler`] (Python onad names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandardScalerParams {
    /// Divide by the standard deviation (true) or only centre (false).
    pub with_std: bool,
}

impl Default for StandardScalerParams {
    fn default() -> Self {
        StandardScalerParams { with_std: true }
    }
}

/// Per feature: `(v - mean) / std` with Welford's running mean and population standard deviation
/// (`sqrt(M2 / n)`, kept as its reciprocal); 0.0 when the standard deviation is 0. With `with_std = false`, `v - mean`. Each
/// feature keeps its own count, so NaN (missing) values are skipped when learning and map to NaN.
///
/// Deviation from onad 0.3.0: a feature not yet learned maps to 0.0 instead of raising, so a pipeline can
/// score its first row. onad computes the standard deviation as `var ** 0.5`; this uses `sqrt`, which is
/// correctly rounded (they differ in the last bit for a few values).
///
/// ```
/// use onad_core::{Schema, Transformer, TransformerParams};
/// use onad_models::StandardScalerParams;
/// let mut scaler = StandardScalerParams::default().build(&Schema::shared(["a"]).unwrap()).unwrap();
/// for v in [1.0, 3.0] {
///     scaler.learn_one(&[v]);
/// }
/// let mut out = [0.0];
/// scaler.transform_one(&[4.0], &mut out); // mean 2, std 1
/// assert_eq!(out, [2.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    schema: SchemaRef,
    with_std: bool,
    count: Vec<f64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
    /// `1 / std` per feature (0 while the standard deviation is 0), refreshed when the feature is learned,
    /// so a transform costs one multiplication per feature (pipelines transform each row twice).
    inv_std: Vec<f64>,
}

impl TransformerParams for StandardScalerParams {
    type Model = StandardScaler;
    fn build(&self, schema: &SchemaRef) -> Result<StandardScaler, ParamError> {
        let d = schema.len();
        Ok(StandardScaler {
            schema: schema.clone(),
            with_std: self.with_std,
            count: vec![0.0; d],
            mean: vec![0.0; d],
            m2: vec![0.0; d],
            inv_std: vec![0.0; d],
        })
    }
}

impl Transformer for StandardScaler {
    fn learn_one(&mut self, x: &[f64]) {
        let d = self.count.len();
        let (count, mean, m2, inv_std) =
            (&mut self.count[..d], &mut self.mean[..d], &mut self.m2[..d], &mut self.inv_std[..d]);
        for (i, &v) in x[..d].iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            let n = count[i] + 1.0;
            count[i] = n;
            let delta = v - mean[i];
            mean[i] += delta / n;
            if self.with_std {
                m2[i] += delta * (v - mean[i]);
                inv_std[i] = if m2[i] > 0.0 { 1.0 / (m2[i] / n).sqrt() } else { 0.0 };
            }
        }
    }

    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        let d = self.count.len();
        let (count, mean, inv_std) = (&self.count[..d], &self.mean[..d], &self.inv_std[..d]);
        for (i, (o, &v)) in out[..d].iter_mut().zip(&x[..d]).enumerate() {
            *o = if v.is_nan() {
                f64::NAN
            } else if count[i] == 0.0 {
                0.0
            } else if !self.with_std {
                v - mean[i]
            } else if inv_std[i] == 0.0 {
                0.0
            } else {
                (v - mean[i]) * inv_std[i]
            };
        }
    }

    fn output_schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Describe for StandardScalerParams {
    const SUMMARY: &'static str = "standardises each feature with its running mean and standard deviation";
    const PARAMS: &'static [ParamDoc] = &[ParamDoc {
        name: "with_std",
        ty: "bool",
        required: false,
        help: "divide by the standard deviation (else only centre)",
    }];
    fn example() -> Self {
        StandardScalerParams { with_std: true }
    }
}
