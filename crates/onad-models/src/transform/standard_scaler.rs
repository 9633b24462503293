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
/// (`sqrt(M2 / n)`); 0.0 when the standard deviation is 0. With `with_std = false`, `v - mean`. Each
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
    count: Vec<u64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl TransformerParams for StandardScalerParams {
    type Model = StandardScaler;
    fn build(&self, schema: &SchemaRef) -> Result<StandardScaler, ParamError> {
        let d = schema.len();
        Ok(StandardScaler {
            schema: schema.clone(),
            with_std: self.with_std,
            count: vec![0; d],
            mean: vec![0.0; d],
            m2: vec![0.0; d],
        })
    }
}

impl Transformer for StandardScaler {
    fn learn_one(&mut self, x: &[f64]) {
        for (i, &v) in x.iter().enumerate().take(self.count.len()) {
            if !v.is_finite() {
                continue;
            }
            self.count[i] += 1;
            let old = self.mean[i];
            self.mean[i] += (v - old) / self.count[i] as f64;
            if self.with_std {
                self.m2[i] += (v - old) * (v - self.mean[i]);
            }
        }
    }

    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            let n = self.count[i];
            *o = if v.is_nan() {
                f64::NAN
            } else if n == 0 {
                0.0
            } else if self.with_std {
                let std = (self.m2[i] / n as f64).sqrt();
                if std == 0.0 { 0.0 } else { (v - self.mean[i]) / std }
            } else {
                v - self.mean[i]
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
