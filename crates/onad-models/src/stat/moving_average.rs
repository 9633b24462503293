//! MovingAverage: how far one value would move the mean of the last `window_size` values.

use std::collections::VecDeque;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::{univariate_column, window_size};
use crate::registry::{Describe, finite_score};

/// Hyperparameters of [`MovingAverage`] (Python onad names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MovingAverageParams {
    /// Number of recent values kept (required).
    pub window_size: Option<usize>,
    /// The feature to read; may be omitted when the input has exactly one feature.
    pub key: Option<String>,
    /// Score the absolute change of the mean (true) or the signed change (false).
    pub abs_diff: bool,
}

impl Default for MovingAverageParams {
    fn default() -> Self {
        MovingAverageParams { window_size: None, key: None, abs_diff: true }
    }
}

/// Scores `mean(W ∪ {x}) - mean(W)` for the window `W` of the last `window_size` learned values of one
/// feature (absolute value when `abs_diff`); 0.0 while the window is empty. Equivalently
/// `(x - mean(W)) / (|W| + 1)`, which is how it is computed: without the cancellation of the difference
/// of two means.
///
/// Cost: O(1) per learn and score (a running sum, recomputed exactly once per `window_size` learns so
/// rounding cannot drift over a long stream); Python onad re-sums the window on every score.
///
/// Deviations from onad 0.3.0 (documented, tested): `key` selects one feature of a wider row (onad
/// accepts only one-entry dicts); NaN values are not learned and score 0.0 (onad appends NaN, and every
/// score is NaN until it leaves the window); infinite inputs score `f64::MAX`.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingAverageParams;
/// let params = MovingAverageParams { window_size: Some(3), ..Default::default() };
/// let mut model = params.build(&Schema::shared(["v"]).unwrap()).unwrap();
/// for v in [1.0, 2.0, 3.0] {
///     model.learn_one(&[v]);
/// }
/// // mean {1,2,3} = 2, mean {1,2,3,6} = 3
/// assert_eq!(model.score_one(&[6.0]), 1.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovingAverage {
    column: usize,
    window_size: usize,
    abs_diff: bool,
    window: VecDeque<f64>,
    sum: f64,
    /// Learns since the sum was last recomputed from the window.
    since_resum: usize,
}

impl DetectorParams for MovingAverageParams {
    type Model = MovingAverage;
    fn build(&self, schema: &SchemaRef) -> Result<MovingAverage, ParamError> {
        let window_size = window_size(self.window_size)?;
        Ok(MovingAverage {
            column: univariate_column(self.key.as_deref(), schema)?,
            window_size,
            abs_diff: self.abs_diff,
            window: VecDeque::with_capacity(window_size.min(1 << 16)),
            sum: 0.0,
            since_resum: 0,
        })
    }
}

impl MovingAverage {
    /// Mean of the current window (NaN when empty).
    pub fn mean(&self) -> f64 {
        self.sum / self.window.len() as f64
    }
}

impl Detector for MovingAverage {
    fn learn_one(&mut self, x: &[f64]) {
        let v = x[self.column];
        if !v.is_finite() {
            return;
        }
        if self.window.len() == self.window_size {
            let old = self.window.pop_front().unwrap_or(0.0);
            self.sum -= old;
        }
        self.window.push_back(v);
        self.sum += v;
        self.since_resum += 1;
        if self.since_resum >= self.window_size {
            self.sum = self.window.iter().sum();
            self.since_resum = 0;
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let v = x[self.column];
        let n = self.window.len();
        if n == 0 || v.is_nan() {
            return 0.0;
        }
        let diff = (v - self.mean()) / (n + 1) as f64;
        finite_score(if self.abs_diff { diff.abs() } else { diff })
    }
}

impl Describe for MovingAverageParams {
    const SUMMARY: &'static str = "change of the moving mean of one feature caused by the new value";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "window_size", ty: "int >= 1", required: true, help: "number of recent values kept" },
        ParamDoc {
            name: "key",
            ty: "feature name",
            required: false,
            help: "feature to read; optional when the input has one feature",
        },
        ParamDoc { name: "abs_diff", ty: "bool", required: false, help: "score the absolute change (else signed)" },
    ];
    fn example() -> Self {
        MovingAverageParams { window_size: Some(20), key: None, abs_diff: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    #[test]
    fn window_evicts_oldest_and_running_sum_stays_exact() {
        let schema = Schema::shared(["a", "b"]).unwrap();
        let p = MovingAverageParams { window_size: Some(4), key: Some("b".into()), abs_diff: false };
        let mut m = p.build(&schema).unwrap();
        assert_eq!(m.score_one(&[0.0, 5.0]), 0.0, "empty window scores 0");
        for v in 0..1000 {
            m.learn_one(&[f64::NAN, 0.1 * v as f64]);
        }
        let expected: f64 = [99.6, 99.7, 99.8, 99.9].iter().sum::<f64>() / 4.0;
        assert!((m.mean() - expected).abs() < 1e-12);
        assert!(m.score_one(&[0.0, 0.0]) < 0.0, "signed score goes negative below the mean");
    }

    #[test]
    fn needs_a_key_for_wide_input_and_a_window() {
        let wide = Schema::shared(["a", "b"]).unwrap();
        let err = MovingAverageParams { window_size: Some(3), ..Default::default() }.build(&wide).unwrap_err();
        assert!(err.to_string().contains("exactly one feature"), "{err}");
        let err = MovingAverageParams::default().build(&wide).unwrap_err();
        assert_eq!(err, ParamError::Missing("window_size"));
    }

    #[test]
    fn nan_is_not_learned_and_inf_scores_max() {
        let schema = Schema::shared(["a"]).unwrap();
        let mut m = MovingAverageParams { window_size: Some(3), ..Default::default() }.build(&schema).unwrap();
        m.learn_one(&[1.0]);
        m.learn_one(&[f64::NAN]);
        assert_eq!(m.window.len(), 1);
        assert_eq!(m.score_one(&[f64::NAN]), 0.0);
        assert_eq!(m.score_one(&[f64::INFINITY]), f64::MAX);
    }
}
