//! Learn protection: a detector that does not learn the rows it scores as anomalous, so an attack or a
//! fault does not become "normal" by repetition (river's `protect_anomaly_detector`; none of the onad
//! family has it).

use onad_core::rolling::{Interpolation, RollingWindow};
use onad_core::{Detector, ParamError};
use serde::{Deserialize, Serialize};

/// When a row counts as anomalous for learning purposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protect {
    /// The score is strictly above a fixed value.
    Above {
        /// The fixed threshold.
        threshold: f64,
    },
    /// The score is strictly above the `quantile` of the last `window_size` scores (all rows' scores,
    /// learned or not). Everything is learned until `min(window_size, 30)` scores have been seen.
    Quantile {
        /// The quantile, in (0, 1).
        quantile: f64,
        /// Recent scores kept.
        window_size: usize,
    },
}

/// The state of a learn-protection rule: which rows may be learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    rule: Protect,
    /// The recent scores of a quantile rule (serialized as the arrival-ordered scores, then their order
    /// statistics: the layout of the two fields it replaced).
    scores: RollingWindow,
    protected: u64,
}

impl Guard {
    /// Validates the rule.
    pub fn new(rule: Protect) -> Result<Guard, ParamError> {
        match rule {
            Protect::Above { threshold } if threshold.is_nan() => {
                return Err(ParamError::invalid("protect", "the threshold must not be NaN"));
            }
            Protect::Quantile { quantile, .. } if !(quantile > 0.0 && quantile < 1.0) => {
                return Err(ParamError::invalid("protect", format!("the quantile must be in (0, 1), got {quantile}")));
            }
            Protect::Quantile { window_size: 0, .. } => {
                return Err(ParamError::invalid("protect", "the window must hold at least one score"));
            }
            _ => {}
        }
        let capacity = match rule {
            Protect::Quantile { window_size, .. } => window_size,
            Protect::Above { .. } => 0,
        };
        Ok(Guard { rule, scores: RollingWindow::with_capacity(capacity), protected: 0 })
    }

    /// Rows kept from learning so far.
    pub fn protected(&self) -> u64 {
        self.protected
    }

    /// Records a score and says whether its row may be learned.
    pub fn admit(&mut self, score: f64) -> bool {
        let allowed = match &self.rule {
            Protect::Above { threshold } => not_above(score, *threshold),
            Protect::Quantile { quantile, window_size } => {
                let (q, w) = (*quantile, *window_size);
                let warm = self.scores.len() >= w.min(30);
                let allowed =
                    !warm || self.scores.quantile(q, Interpolation::NearerEnd).is_none_or(|t| not_above(score, t));
                self.scores.push_bounded(score, w);
                allowed
            }
        };
        self.protected += u64::from(!allowed);
        allowed
    }
}

/// True unless `score` is strictly above `threshold` (NaN scores are not above anything).
fn not_above(score: f64, threshold: f64) -> bool {
    score.partial_cmp(&threshold) != Some(std::cmp::Ordering::Greater)
}

/// Wraps a detector so that it learns a row only when its own score does not flag it.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::{MovingAverageParams, Protect, Protected};
/// let base = MovingAverageParams { window_size: Some(10), ..Default::default() };
/// let model = base.build(&Schema::shared(["v"]).unwrap()).unwrap();
/// let mut guarded = Protected::new(model, Protect::Above { threshold: 1.0 }).unwrap();
/// for _ in 0..10 {
///     guarded.learn_one(&[0.0]);
/// }
/// // A burst of 50s is never learned, so it keeps scoring high.
/// for _ in 0..20 {
///     guarded.learn_one(&[50.0]);
/// }
/// assert!(guarded.score_one(&[50.0]) > 4.0);
/// assert_eq!(guarded.guard().protected(), 20);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protected<D> {
    inner: D,
    guard: Guard,
}

impl<D: Detector> Protected<D> {
    /// Wraps `inner` with a protection rule.
    pub fn new(inner: D, rule: Protect) -> Result<Self, ParamError> {
        Ok(Protected { inner, guard: Guard::new(rule)? })
    }

    /// The wrapped detector.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The protection state.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}

impl<D: Detector> Detector for Protected<D> {
    fn learn_one(&mut self, x: &[f64]) {
        let s = self.inner.score_one(x);
        if self.guard.admit(s) {
            self.inner.learn_one(x);
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.inner.score_one(x)
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let s = self.inner.score_one(x);
        if self.guard.admit(s) {
            self.inner.learn_one(x);
        }
        s
    }
}
