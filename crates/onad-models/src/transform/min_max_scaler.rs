//! MinMaxScaler: maps each feature onto a target range using the running minimum and maximum.

use onad_core::{ParamDoc, ParamError, SchemaRef, Transformer, TransformerParams};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// Hyperparameters of [`MinMaxScaler`] (Python onad names and defaults, plus aberrant's `clip`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinMaxScalerParams {
    /// The output range `(low, high)`, `low < high`.
    pub feature_range: (f64, f64),
    /// Bound outputs to the range (values beyond the learned extremes otherwise extrapolate).
    pub clip: bool,
}

impl Default for MinMaxScalerParams {
    fn default() -> Self {
        MinMaxScalerParams { feature_range: (0.0, 1.0), clip: false }
    }
}

/// Per feature: `(v - min) / (max - min) * (high - low) + low` over the running min and max of the learned
/// values; `low` while `min == max` (including before the first row). NaN inputs pass through as NaN and
/// are not learned.
///
/// Deviations from onad 0.3.0: a feature not yet learned maps to `low` instead of raising, so a pipeline
/// can score its very first row (onad raises `ValueError` there); `feature_range` must satisfy
/// `low < high` (as in aberrant).
///
/// ```
/// use onad_core::{Schema, Transformer, TransformerParams};
/// use onad_models::MinMaxScalerParams;
/// let mut scaler = MinMaxScalerParams::default().build(&Schema::shared(["a"]).unwrap()).unwrap();
/// scaler.learn_one(&[10.0]);
/// scaler.learn_one(&[20.0]);
/// let mut out = [0.0];
/// scaler.transform_one(&[15.0], &mut out);
/// assert_eq!(out, [0.5]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMaxScaler {
    schema: SchemaRef,
    low: f64,
    high: f64,
    clip: bool,
    min: Vec<f64>,
    max: Vec<f64>,
}

impl TransformerParams for MinMaxScalerParams {
    type Model = MinMaxScaler;
    fn build(&self, schema: &SchemaRef) -> Result<MinMaxScaler, ParamError> {
        let (low, high) = self.feature_range;
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(ParamError::invalid("feature_range", format!("needs finite low < high, got ({low}, {high})")));
        }
        Ok(MinMaxScaler {
            schema: schema.clone(),
            low,
            high,
            clip: self.clip,
            min: vec![f64::INFINITY; schema.len()],
            max: vec![f64::NEG_INFINITY; schema.len()],
        })
    }
}

impl Transformer for MinMaxScaler {
    fn learn_one(&mut self, x: &[f64]) {
        for ((v, lo), hi) in x.iter().zip(&mut self.min).zip(&mut self.max) {
            if v.is_finite() {
                *lo = lo.min(*v);
                *hi = hi.max(*v);
            }
        }
    }

    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        let span = self.high - self.low;
        for (((o, v), lo), hi) in out.iter_mut().zip(x).zip(&self.min).zip(&self.max) {
            *o = if v.is_nan() {
                f64::NAN
            } else if lo >= hi {
                // Nothing or a single distinct value learned yet.
                self.low
            } else {
                let t = (v - lo) / (hi - lo) * span + self.low;
                if self.clip { t.clamp(self.low, self.high) } else { t }
            };
        }
    }

    fn output_schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Describe for MinMaxScalerParams {
    const SUMMARY: &'static str = "scales each feature to feature_range with the running min and max";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "feature_range", ty: "[low, high]", required: false, help: "output range, low < high" },
        ParamDoc { name: "clip", ty: "bool", required: false, help: "bound outputs to the range" },
    ];
    fn example() -> Self {
        MinMaxScalerParams { feature_range: (-1.0, 1.0), clip: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    #[test]
    fn unseen_constant_and_clip() {
        let schema = Schema::shared(["a", "b"]).unwrap();
        let mut s = MinMaxScalerParams { feature_range: (0.0, 10.0), clip: true }.build(&schema).unwrap();
        let mut out = [0.0; 2];
        s.transform_one(&[3.0, 4.0], &mut out);
        assert_eq!(out, [0.0, 0.0], "nothing learned maps to low");
        s.learn_one(&[0.0, 1.0]);
        s.learn_one(&[2.0, 1.0]);
        s.transform_one(&[5.0, 7.0], &mut out);
        assert_eq!(out, [10.0, 0.0], "clipped, and a constant feature maps to low");
        s.transform_one(&[f64::NAN, 1.0], &mut out);
        assert!(out[0].is_nan());
        let err = MinMaxScalerParams { feature_range: (1.0, 1.0), clip: false }.build(&schema).unwrap_err();
        assert!(err.to_string().contains("feature_range"));
    }
}
