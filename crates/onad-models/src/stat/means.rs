//! MovingHarmonicAverage and MovingGeometricAverage: how much one value would change the harmonic or
//! geometric mean of the recent window. O(1) per event (running sums of reciprocals and of logarithms).

use std::collections::VecDeque;

use onad_core::{DetectorParams, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::moments::build_window;
use super::window::{MovingWindow, WindowStatistic, window_params};

/// Running state of [`MovingHarmonicAverage`]: the sum of reciprocals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HarmonicStat {
    n: usize,
    reciprocal_sum: f64,
}

impl WindowStatistic for HarmonicStat {
    fn accepts(&self, v: f64) -> bool {
        v.is_finite() && v != 0.0
    }
    fn pushed(&mut self, v: f64) {
        self.n += 1;
        self.reciprocal_sum += 1.0 / v;
    }
    fn popped(&mut self, v: f64) {
        self.n -= 1;
        self.reciprocal_sum -= 1.0 / v;
    }
    fn resync(&mut self, window: &VecDeque<f64>) {
        self.n = window.len();
        self.reciprocal_sum = window.iter().map(|v| 1.0 / v).sum();
    }
    fn delta(&self, _window: &VecDeque<f64>, x: f64) -> Option<f64> {
        let with = self.reciprocal_sum + 1.0 / x;
        if x == 0.0 || self.reciprocal_sum == 0.0 || with == 0.0 {
            return None;
        }
        Some((self.n + 1) as f64 / with - self.n as f64 / self.reciprocal_sum)
    }
}

/// Running state of [`MovingGeometricAverage`]: the sum of logarithms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeometricStat {
    absolute_values: bool,
    n: usize,
    log_sum: f64,
}

impl WindowStatistic for GeometricStat {
    fn accepts(&self, v: f64) -> bool {
        v.is_finite() && v > 0.0
    }
    fn pushed(&mut self, v: f64) {
        self.n += 1;
        self.log_sum += v.ln();
    }
    fn popped(&mut self, v: f64) {
        self.n -= 1;
        self.log_sum -= v.ln();
    }
    fn resync(&mut self, window: &VecDeque<f64>) {
        self.n = window.len();
        self.log_sum = window.iter().map(|v| v.ln()).sum();
    }
    fn delta(&self, window: &VecDeque<f64>, x: f64) -> Option<f64> {
        let n = self.n as f64;
        if x <= 0.0 || !x.is_finite() {
            return None;
        }
        if self.absolute_values {
            // Growth ratios of consecutive values telescope: their product is last / first.
            if self.n <= 2 {
                return None;
            }
            let (first, last) = (*window.front()?, *window.back()?);
            let before = ((last.ln() - first.ln()) / (n - 1.0)).exp();
            let after = ((x.ln() - first.ln()) / n).exp();
            Some(after - before)
        } else {
            if self.n <= 1 {
                return None;
            }
            Some(((self.log_sum + x.ln()) / (n + 1.0)).exp() - (self.log_sum / n).exp())
        }
    }
}

/// Scores the change of the harmonic mean `n / sum(1/v)` of the last `window_size` non-zero values of one
/// feature caused by the new value; 0.0 for a zero value (Python onad `MovingHarmonicAverage`), and, where
/// onad would divide by zero (reciprocals summing to 0), 0.0 as well.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingHarmonicAverageParams;
/// let mut m = MovingHarmonicAverageParams { window_size: Some(2), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// m.learn_one(&[1.0]);
/// m.learn_one(&[0.0]); // ignored
/// m.learn_one(&[3.0]); // window {1, 3}: harmonic mean 1.5
/// // {1, 3, 6}: 3 / (1 + 1/3 + 1/6) = 2
/// assert!((m.score_one(&[6.0]) - 0.5).abs() < 1e-12);
/// ```
pub type MovingHarmonicAverage = MovingWindow<HarmonicStat>;

/// Scores the change of the geometric mean of the last `window_size` positive values of one feature caused
/// by the new value (Python onad `MovingGeometricAverage`). With `absoluteValues`, the geometric mean of the
/// growth ratios of consecutive values instead.
///
/// Deviations from onad 0.3.0: computed with logarithms (onad multiplies the raw values, which overflows to
/// infinity for long windows of large values); while the window holds one value (two with
/// `absoluteValues`) the score is 0.0 (onad returns the integer 1); a query value <= 0 scores 0.0 (onad
/// raises a power of a negative number to a fraction and returns the magnitude of a complex number).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingGeometricAverageParams;
/// let mut m = MovingGeometricAverageParams { window_size: Some(2), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// m.learn_one(&[2.0]);
/// m.learn_one(&[8.0]); // geometric mean 4
/// // {2, 8, 32}: 8
/// assert!((m.score_one(&[32.0]) - 4.0).abs() < 1e-12);
/// ```
pub type MovingGeometricAverage = MovingWindow<GeometricStat>;

window_params!(
    /// Hyperparameters of [`MovingHarmonicAverage`] (Python onad names and defaults).
    MovingHarmonicAverageParams, "change of the moving harmonic mean of one feature (zeros ignored)", example_window = 50
);
window_params!(
    /// Hyperparameters of [`MovingGeometricAverage`] (Python onad names and defaults).
    MovingGeometricAverageParams, "change of the moving geometric mean of one feature (positive values)", example_window = 50,
    /// Use the growth ratios of consecutive values (Python name `absoluteValues`).
    #[serde(rename = "absoluteValues")]
    absolute_values: bool = false, "absoluteValues", "bool", "average the growth ratios of consecutive values"
);

build_window!(MovingHarmonicAverageParams => MovingHarmonicAverage(|_| HarmonicStat::default()));

impl DetectorParams for MovingGeometricAverageParams {
    type Model = MovingGeometricAverage;
    fn build(&self, schema: &SchemaRef) -> Result<MovingGeometricAverage, ParamError> {
        let stat = GeometricStat { absolute_values: self.absolute_values, ..Default::default() };
        MovingWindow::build(schema, self.key.as_deref(), self.window_size, self.abs_diff, stat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::{Detector, Schema};

    #[test]
    fn harmonic_and_geometric_match_direct_formulas() {
        let schema = Schema::shared(["v"]).unwrap();
        let mut h = MovingHarmonicAverageParams { window_size: Some(3), abs_diff: false, ..Default::default() }
            .build(&schema)
            .unwrap();
        let mut g = MovingGeometricAverageParams { window_size: Some(3), abs_diff: false, ..Default::default() }
            .build(&schema)
            .unwrap();
        let mut ga = MovingGeometricAverageParams {
            window_size: Some(4),
            absolute_values: true,
            abs_diff: false,
            ..Default::default()
        }
        .build(&schema)
        .unwrap();
        for v in [0.0, 2.0, -1.0, 4.0, 8.0, 1.0] {
            h.learn_one(&[v]);
            g.learn_one(&[v]);
            ga.learn_one(&[v]);
        }
        // harmonic window {4, 8, 1} (zeros skipped, -1 evicted) -> with 2: {4, 8, 1, 2}
        let hm = |v: &[f64]| v.len() as f64 / v.iter().map(|x| 1.0 / x).sum::<f64>();
        assert!((h.score_one(&[2.0]) - (hm(&[4.0, 8.0, 1.0, 2.0]) - hm(&[4.0, 8.0, 1.0]))).abs() < 1e-12);
        // A negative value stays in a harmonic window, as in onad.
        h.learn_one(&[-1.0]);
        assert!((h.score_one(&[2.0]) - (hm(&[8.0, 1.0, -1.0, 2.0]) - hm(&[8.0, 1.0, -1.0]))).abs() < 1e-12);
        assert_eq!(h.score_one(&[0.0]), 0.0);
        // geometric window {4, 8, 1} (non-positive skipped)
        let gm = |v: &[f64]| v.iter().product::<f64>().powf(1.0 / v.len() as f64);
        assert!((g.score_one(&[2.0]) - (gm(&[4.0, 8.0, 1.0, 2.0]) - gm(&[4.0, 8.0, 1.0]))).abs() < 1e-12);
        assert_eq!(g.score_one(&[-2.0]), 0.0);
        // growth ratios of {2, 4, 8, 1}: 2, 2, 1/8; with 2: ratio 2/1 = 2
        let ratios = [2.0, 2.0, 0.125];
        let e = gm(&[2.0, 2.0, 0.125, 2.0]) - gm(&ratios);
        assert!((ga.score_one(&[2.0]) - e).abs() < 1e-12, "{} vs {e}", ga.score_one(&[2.0]));
        let json = serde_json::to_string(&MovingGeometricAverageParams::default()).unwrap();
        assert!(json.contains("\"absoluteValues\":false"), "{json}");
    }
}
