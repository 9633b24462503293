//! MovingMahalanobisDistance: the squared Mahalanobis distance of a point from the mean of the recent
//! window, under the window's covariance.
//!
//! The window's sums of `p - c` and `(p - c)(p - c)^T` (`c` a point of the window) are kept with rank-one
//! updates, O(d^2) per learn; a score builds the covariance from them and solves `S z = x - mean` by
//! Cholesky, O(d^3), without forming an inverse. Python onad re-estimates the covariance from the whole
//! window and inverts it on every score.

use std::collections::VecDeque;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::window_size;
use crate::registry::{Describe, finite_score};

/// Hyperparameters of [`MovingMahalanobisDistance`] (Python onad names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MovingMahalanobisDistanceParams {
    /// Number of recent points kept (required).
    pub window_size: Option<usize>,
    /// True: population covariance (ddof 0); false: Bessel's correction (ddof 1). See the model's docs.
    pub bias: bool,
    /// The features used, in order; default: every feature of the input.
    pub keys: Option<Vec<String>>,
}

impl Default for MovingMahalanobisDistanceParams {
    fn default() -> Self {
        MovingMahalanobisDistanceParams { window_size: None, bias: true, keys: None }
    }
}

/// Scores the squared Mahalanobis distance `(x - m)^T S^-1 (x - m)` of a point from the mean `m` of the last
/// `window_size` points, `S` their covariance; 0.0 while the window holds fewer than three points. Any
/// number of features, one included.
///
/// When `S` is singular or nearly so (a Cholesky pivot below `1e-12` of the largest diagonal entry), it is
/// regularised as onad does for a singular matrix: `S + 1e-6 * (trace(S) / d) * I`, or `S + 1e-6 * I` when the
/// trace is 0.
///
/// Deviations from onad 0.3.0: `bias` is honoured, numpy style (`true` = population covariance, as
/// aberrant does); onad ignores it and always uses ddof 1, so pass `bias = false` to reproduce its numbers.
/// Nearly singular covariances are regularised too (onad inverts them and returns numbers dominated by
/// rounding, up to -1e15 on SHUTTLE). One feature works (onad fails with `IndexError`). Points with a
/// missing value are not learned.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingMahalanobisDistanceParams;
/// let params = MovingMahalanobisDistanceParams { window_size: Some(100), ..Default::default() };
/// let mut m = params.build(&Schema::shared(["x", "y"]).unwrap()).unwrap();
/// for i in 0..100 {
///     let t = i as f64 * 0.1;
///     m.learn_one(&[t.sin(), t.sin() + 0.1 * t.cos()]);
/// }
/// // Off the correlation line scores far higher than on it.
/// assert!(m.score_one(&[0.5, -0.5]) > 10.0 * m.score_one(&[0.5, 0.5]));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovingMahalanobisDistance {
    columns: Vec<usize>,
    window_size: usize,
    ddof: f64,
    /// Points, row-major, oldest first.
    window: VecDeque<f64>,
    shift: Vec<f64>,
    /// Sum of `p - shift`.
    s1: Vec<f64>,
    /// Sum of `(p - shift)(p - shift)^T`, full d x d, row-major.
    s2: Vec<f64>,
    since_resync: usize,
}

impl DetectorParams for MovingMahalanobisDistanceParams {
    type Model = MovingMahalanobisDistance;
    fn build(&self, schema: &SchemaRef) -> Result<MovingMahalanobisDistance, ParamError> {
        let w = window_size(self.window_size)?;
        let columns = schema.resolve_all("keys", self.keys.as_deref())?;
        let d = columns.len();
        Ok(MovingMahalanobisDistance {
            columns,
            window_size: w,
            ddof: if self.bias { 0.0 } else { 1.0 },
            window: VecDeque::with_capacity((w * d).min(1 << 20)),
            shift: vec![0.0; d],
            s1: vec![0.0; d],
            s2: vec![0.0; d * d],
            since_resync: 0,
        })
    }
}

impl MovingMahalanobisDistance {
    fn dim(&self) -> usize {
        self.columns.len()
    }

    fn points(&self) -> usize {
        self.window.len() / self.dim()
    }

    fn resync(&mut self) {
        let d = self.dim();
        let n = self.points();
        for i in 0..d {
            self.shift[i] = self.window[(n - 1) * d + i];
        }
        self.s1.fill(0.0);
        self.s2.fill(0.0);
        for k in 0..n {
            accumulate(&mut self.s1, &mut self.s2, &self.shift, self.window.range(k * d..(k + 1) * d).copied(), 1.0);
        }
    }

    /// Squared distance of `x` (already projected to the model's features) from the window mean.
    fn distance(&self, x: &[f64], scratch: &mut [f64]) -> f64 {
        let d = self.dim();
        let n = self.points() as f64;
        let (cov, rest) = scratch.split_at_mut(d * d);
        let (diff, z) = rest.split_at_mut(d);
        for i in 0..d {
            diff[i] = x[i] - self.shift[i] - self.s1[i] / n;
            for j in 0..=i {
                cov[i * d + j] = (self.s2[i * d + j] - self.s1[i] * self.s1[j] / n) / (n - self.ddof);
            }
        }
        let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        let max_diag = (0..d).map(|i| cov[i * d + i]).fold(0.0, f64::max);
        if !cholesky(cov, d, 1e-12 * max_diag) {
            // Rebuild and regularise as onad does for a singular covariance.
            let reg = if trace > 0.0 { 1e-6 * trace / d as f64 } else { 1e-6 };
            for i in 0..d {
                for j in 0..=i {
                    cov[i * d + j] = (self.s2[i * d + j] - self.s1[i] * self.s1[j] / n) / (n - self.ddof);
                }
                cov[i * d + i] += reg;
            }
            if !cholesky(cov, d, 0.0) {
                return 0.0;
            }
        }
        // Solve L y = diff; the distance is |y|^2 (since S = L L^T).
        let mut dist = 0.0;
        for i in 0..d {
            let mut s = diff[i];
            for k in 0..i {
                s -= cov[i * d + k] * z[k];
            }
            z[i] = s / cov[i * d + i];
            dist += z[i] * z[i];
        }
        dist
    }
}

/// Adds (sign 1) or removes (sign -1) point `p` to the shifted sums (lower triangle of `s2`).
fn accumulate(s1: &mut [f64], s2: &mut [f64], shift: &[f64], p: impl Iterator<Item = f64> + Clone, sign: f64) {
    let d = shift.len();
    for (i, a) in p.clone().enumerate() {
        let a = a - shift[i];
        s1[i] += sign * a;
        for (j, b) in p.clone().enumerate().take(i + 1) {
            s2[i * d + j] += sign * a * (b - shift[j]);
        }
    }
}

/// In-place Cholesky of the lower triangle of `a` (d x d, row-major). Fails on a pivot `<= floor`.
fn cholesky(a: &mut [f64], d: usize, floor: f64) -> bool {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        if s.is_nan() || s <= floor {
            return false;
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut t = a[i * d + j];
            for k in 0..j {
                t -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = t / l;
        }
    }
    true
}

impl Detector for MovingMahalanobisDistance {
    fn learn_one(&mut self, x: &[f64]) {
        let d = self.dim();
        if self.columns.iter().any(|&c| !x[c].is_finite()) {
            return;
        }
        if self.window.is_empty() {
            for (s, &c) in self.shift.iter_mut().zip(&self.columns) {
                *s = x[c];
            }
        }
        if self.points() == self.window_size {
            accumulate(&mut self.s1, &mut self.s2, &self.shift, self.window.range(..d).copied(), -1.0);
            self.window.drain(..d);
        }
        self.window.extend(self.columns.iter().map(|&c| x[c]));
        accumulate(&mut self.s1, &mut self.s2, &self.shift, self.columns.iter().map(|&c| x[c]), 1.0);
        self.since_resync += 1;
        if self.since_resync >= self.window_size {
            self.resync();
            self.since_resync = 0;
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let d = self.dim();
        if self.points() < 3 || self.columns.iter().any(|&c| x[c].is_nan()) {
            return 0.0;
        }
        let need = d * d + 3 * d;
        let mut stack = [0.0; 512];
        let mut heap;
        let scratch: &mut [f64] = if need <= stack.len() {
            &mut stack[..need]
        } else {
            heap = vec![0.0; need];
            &mut heap
        };
        let (point, rest) = scratch.split_at_mut(d);
        for (p, &c) in point.iter_mut().zip(&self.columns) {
            *p = x[c];
        }
        finite_score(self.distance(point, rest))
    }
}

impl Describe for MovingMahalanobisDistanceParams {
    const SUMMARY: &'static str = "squared Mahalanobis distance from the moving mean under the moving covariance";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "window_size", ty: "int >= 1", required: true, help: "number of recent points kept" },
        ParamDoc { name: "bias", ty: "bool", required: false, help: "population covariance (else ddof 1)" },
        ParamDoc { name: "keys", ty: "[feature, ...]", required: false, help: "features used; default all" },
    ];
    fn example() -> Self {
        MovingMahalanobisDistanceParams { window_size: Some(100), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    #[test]
    fn one_feature_is_the_squared_z_score() {
        let schema = Schema::shared(["v"]).unwrap();
        let p = MovingMahalanobisDistanceParams { window_size: Some(4), bias: false, keys: None };
        let mut m = p.build(&schema).unwrap();
        for v in [1.0, 2.0, 3.0, 4.0, 5.0] {
            m.learn_one(&[v]);
        }
        // window {2,3,4,5}: mean 3.5, sample variance 5/3
        let expected = (9.0f64 - 3.5).powi(2) / (5.0 / 3.0);
        assert!((m.score_one(&[9.0]) - expected).abs() < 1e-12);
    }

    #[test]
    fn singular_windows_are_regularised_like_onad() {
        let schema = Schema::shared(["a", "b"]).unwrap();
        let p = MovingMahalanobisDistanceParams { window_size: Some(10), bias: false, keys: None };
        // Constant window: covariance 0, trace 0 -> S + 1e-6 I.
        let mut m = p.build(&schema).unwrap();
        for _ in 0..10 {
            m.learn_one(&[1.0, 2.0]);
        }
        assert!((m.score_one(&[2.0, 2.0]) - 1e6).abs() < 1e-6);
        // Perfectly correlated window: singular, regularised by 1e-6 * trace / d; finite and large off the line.
        let mut m = p.build(&schema).unwrap();
        for i in 0..10 {
            m.learn_one(&[i as f64, 2.0 * i as f64]);
        }
        let on = m.score_one(&[3.0, 6.0]);
        let off = m.score_one(&[3.0, 0.0]);
        assert!(on.is_finite() && off.is_finite() && off > 1e4 * on.max(1e-3), "on {on}, off {off}");
        // A missing value scores 0 and is not learned.
        assert_eq!(m.score_one(&[f64::NAN, 1.0]), 0.0);
        let before = m.clone();
        m.learn_one(&[f64::NAN, 1.0]);
        assert_eq!(m, before);
    }
}
