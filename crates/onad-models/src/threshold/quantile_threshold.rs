//! QuantileThreshold: turns a stream of scores into a graded alarm relative to a moving quantile of recent
//! scores (aberrant's `QuantileThreshold`).

use onad_core::rolling::{Interpolation, RollingWindow};
use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// Hyperparameters of [`QuantileThreshold`] (aberrant 1.3.0 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantileThresholdParams {
    /// The quantile of recent scores used as the threshold, in (0, 1).
    pub quantile: f64,
    /// Number of recent scores kept.
    pub window_size: usize,
    /// The input column holding the score; an input with a single column is read whatever its name.
    pub score_key: String,
}

impl Default for QuantileThresholdParams {
    fn default() -> Self {
        QuantileThresholdParams { quantile: 0.95, window_size: 1000, score_key: "score".into() }
    }
}

/// Reads a score column and returns 1.0 when the score reaches the `quantile` of the last `window_size`
/// learned scores, `score / threshold` below it (when the threshold is positive), and 0.0 while fewer than
/// `min(window_size, max(10, window_size / 10))` scores have been learned.
///
/// The threshold is recomputed at every learn from the shared rolling window (no re-sort; aberrant re-sorts
/// the window, O(w log w)). Non-finite scores are not learned and score 0.0 (aberrant raises); a NaN score scores 0.0.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::QuantileThresholdParams;
/// let params = QuantileThresholdParams { quantile: 0.9, window_size: 100, ..Default::default() };
/// let mut t = params.build(&Schema::shared(["score"]).unwrap()).unwrap();
/// for i in 0..100 {
///     t.learn_one(&[i as f64 / 100.0]);
/// }
/// assert_eq!(t.score_one(&[0.95]), 1.0);
/// assert!((t.score_one(&[0.4455]) - 0.5).abs() < 1e-12); // the 0.9 quantile is 0.891
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileThreshold {
    column: usize,
    quantile: f64,
    window_size: usize,
    min_samples: usize,
    /// The recent scores (serialized as the arrival-ordered scores, then their order statistics: the
    /// layout of the two fields it replaced).
    scores: RollingWindow,
    threshold: Option<f64>,
}

impl QuantileThreshold {
    /// The current threshold (None during warm-up).
    pub fn threshold(&self) -> Option<f64> {
        self.threshold
    }
}

impl DetectorParams for QuantileThresholdParams {
    type Model = QuantileThreshold;
    fn build(&self, schema: &SchemaRef) -> Result<QuantileThreshold, ParamError> {
        if !(self.quantile > 0.0 && self.quantile < 1.0) {
            return Err(ParamError::invalid("quantile", format!("must be in (0, 1), got {}", self.quantile)));
        }
        if self.window_size == 0 {
            return Err(ParamError::invalid("window_size", "must be at least 1, got 0"));
        }
        let column = match schema.index_of(&self.score_key) {
            Some(i) => i,
            None if schema.len() == 1 => 0,
            None => {
                return Err(ParamError::Schema(format!(
                    "score_key '{}' is not a column of the input ({})",
                    self.score_key,
                    schema.names().join(", ")
                )));
            }
        };
        let w = self.window_size;
        Ok(QuantileThreshold {
            column,
            quantile: self.quantile,
            window_size: w,
            min_samples: w.min((w / 10).max(10)),
            scores: RollingWindow::with_capacity(w),
            threshold: None,
        })
    }
}

impl Detector for QuantileThreshold {
    fn learn_one(&mut self, x: &[f64]) {
        let s = x[self.column];
        if !s.is_finite() {
            return;
        }
        self.scores.push_bounded(s, self.window_size);
        if self.scores.len() >= self.min_samples {
            self.threshold = self.scores.quantile(self.quantile, Interpolation::NearerEnd);
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let s = x[self.column];
        match self.threshold {
            None => 0.0,
            Some(_) if s.is_nan() => 0.0,
            Some(t) if s >= t => 1.0,
            Some(t) if t <= 0.0 => 0.0,
            Some(t) => (s / t).max(0.0),
        }
    }
}

impl Describe for QuantileThresholdParams {
    const SUMMARY: &'static str = "graded alarm: score relative to a moving quantile of recent scores";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "quantile",
            ty: "float in (0, 1)",
            required: false,
            help: "quantile of recent scores used as threshold",
        },
        ParamDoc { name: "window_size", ty: "int >= 1", required: false, help: "number of recent scores kept" },
        ParamDoc { name: "score_key", ty: "column name", required: false, help: "column holding the score" },
    ];
    fn example() -> Self {
        QuantileThresholdParams { quantile: 0.95, window_size: 200, ..Default::default() }
    }
}
