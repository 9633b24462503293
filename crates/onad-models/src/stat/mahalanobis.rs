//! MovingMahalanobisDistance: the squared Mahalanobis distance of a point from the mean of the recent
//! window, under the window's covariance.
//!
//! The window's sums of `p - c` and `(p - c)(p - c)^T` (`c` a point of the window) are kept with rank-one
//! updates, O(d^2) per learn, and, from 11 features on, so is an upper Cholesky factor `U` of the window's
//! scatter matrix
//! (`U^T U = sum (p - mean)(p - mean)^T`): each learn is one rank-one update by the arriving point and one
//! downdate by the leaving one, O(d^2), and a score is one triangular solve, O(d^2). The factor is
//! recomputed from the sums (O(d^3)) after every resync of the sums and at least every 1,024 learns,
//! which bounds the rounding the updates accumulate. Near-singular windows are scored by a fresh Cholesky
//! factorisation of the covariance, O(d^3), which decides the regularisation exactly as before the factor
//! was kept. Python onad re-estimates the covariance from the whole window and inverts it on every score.

use std::collections::VecDeque;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::window_size;
use crate::legacy::v1::MovingMahalanobisDistanceV1;
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
/// Cost per row: from 11 features on, O(d^2) for learn and score alike (rank-one update and downdate of a
/// Cholesky factor of the window's scatter matrix, one triangular solve), plus an O(d^3) refactorisation amortised over
/// `min(window_size, 1024)` learns; O(d^3) per score while the window is singular or within four orders of
/// magnitude of the singularity test (then a fresh factorisation scores it, as onad's inversion does), and
/// O(d^3) per score below 11 features, where a fresh factorisation is as fast as keeping one.
/// Scores agree with a fresh factorisation of the window's covariance within rounding: relative 1e-9 on a
/// long test stream, 1e-6 while its window is near the condition number of 1e8 beyond which the direct
/// solve takes over. Memory: the window and three d x d matrices.
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
    /// Upper-triangular `U` (d x d, row-major, upper triangle used) with `U^T U` the window's scatter
    /// matrix about its mean, kept up to date by rank-one updates; empty while there is no usable factor
    /// (too few points, a pivot at or below [`FAST_PIVOT`] when last refactorised, or a downdate that
    /// broke it).
    factor: Vec<f64>,
}

/// At most this many learns between two refactorisations of the maintained factor from the sums, which
/// bounds the rounding the rank-one updates and downdates accumulate (a refactorisation also follows every
/// resync of the sums, so `min(window_size, REFACTOR_EVERY)`).
const REFACTOR_EVERY: usize = 1024;

/// The factor is maintained from this many features on. Below, a fresh factorisation per score (d^3 / 6
/// multiply-adds, no division chain) is as fast as or faster than the two rank-one passes with their
/// d square roots and divisions in sequence (measured: 2.1M against 2.0M rows/s at d = 10, 1.5M against
/// 1.7M at d = 12).
const FACTOR_MIN_DIM: usize = 11;

/// The maintained factor scores a point only while its smallest pivot is above this fraction of the
/// largest diagonal entry of the scatter matrix: four orders of magnitude above the direct solve's
/// singularity test (`1e-12`), so that near that test the direct solve, the one that decides when to
/// regularise, scores the point.
const FAST_PIVOT: f64 = 1e-8;

impl From<MovingMahalanobisDistanceV1> for MovingMahalanobisDistance {
    /// The factor is computed from the sums, as a refactorisation does: the converted model is the one
    /// the new build would hold right after its resync, which it is whenever `since_resync` is 0; otherwise
    /// its next scores agree with the unconverted model's within rounding until the next refactorisation,
    /// after which they are the same bits.
    fn from(v: MovingMahalanobisDistanceV1) -> Self {
        let mut m = MovingMahalanobisDistance {
            columns: v.columns,
            window_size: v.window_size,
            ddof: v.ddof,
            window: v.window,
            shift: v.shift,
            s1: v.s1,
            s2: v.s2,
            since_resync: v.since_resync,
            factor: Vec::new(),
        };
        m.refactor();
        m
    }
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
            factor: Vec::new(),
        })
    }
}

/// Runs `f` on a zeroed scratch slice of `len` values, on the stack when it is small.
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [f64]) -> T) -> T {
    let mut stack = [0.0; 128];
    if len <= stack.len() { f(&mut stack[..len]) } else { f(&mut vec![0.0; len]) }
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
        let points = self.window.make_contiguous();
        with_scratch(d, |centred| {
            for p in points.chunks_exact(d) {
                accumulate(&mut self.s1, &mut self.s2, &self.shift, p, 1.0, centred);
            }
        });
    }

    /// Entry `(i, j)`, `j <= i`, of the window's scatter matrix about its mean, from the sums.
    fn scatter(&self, i: usize, j: usize, n: f64) -> f64 {
        self.s2[i * self.dim() + j] - self.s1[i] * self.s1[j] / n
    }

    /// Recomputes the maintained factor from the sums (Cholesky, O(d^3)); it stays empty while the window holds too few points to span every feature or a pivot is small.
    fn refactor(&mut self) {
        let d = self.dim();
        let n = self.points();
        self.factor.clear();
        if n <= d || d < FACTOR_MIN_DIM {
            return;
        }
        self.factor.resize(d * d, 0.0);
        let nf = n as f64;
        let mut max_diag: f64 = 0.0;
        for i in 0..d {
            for j in i..d {
                self.factor[i * d + j] = self.scatter(j, i, nf);
            }
            max_diag = max_diag.max(self.factor[i * d + i]);
        }
        let u = &mut self.factor;
        for k in 0..d {
            let pivot = u[k * d + k];
            if pivot.is_nan() || pivot <= FAST_PIVOT * max_diag {
                self.factor.clear();
                return;
            }
            let l = pivot.sqrt();
            u[k * d + k] = l;
            let inv = 1.0 / l;
            for v in &mut u[k * d + k + 1..(k + 1) * d] {
                *v *= inv;
            }
            // Subtract the outer product of row k (right of the diagonal) from the trailing block.
            let (head, tail) = u.split_at_mut((k + 1) * d);
            let row = &head[k * d..];
            for j in k + 1..d {
                let a = row[j];
                for (t, &b) in tail[(j - k - 1) * d + j..(j - k) * d].iter_mut().zip(&row[j..]) {
                    *t -= a * b;
                }
            }
        }
    }

    /// Brings the maintained factor from the window before this learn to the window after it: an update
    /// by the arriving point `x` (its deviation from the mean of the `n` points, scaled by `sqrt(n/(n+1))`),
    /// then, when `oldest` leaves, a downdate by it (against the mean of the `n + 1`, scaled by
    /// `sqrt((n+1)/n)`). Two O(d^2) passes; a downdate that would lose positive definiteness marks the
    /// factor unusable until the next refactorisation.
    fn step_factor(&mut self, x: &[f64], oldest: Option<&[f64]>, work: &mut [f64]) {
        let d = self.dim();
        let n = self.points() as f64;
        {
            let (mean, v) = work.split_at_mut(d);
            let up = (n / (n + 1.0)).sqrt();
            for i in 0..d {
                mean[i] = self.shift[i] + self.s1[i] / n;
                v[i] = (x[i] - mean[i]) * up;
            }
            let mut ok = rank_one(&mut self.factor, d, v, 1.0);
            if let Some(y) = oldest {
                let down = ((n + 1.0) / n).sqrt();
                for i in 0..d {
                    let m = mean[i] + (x[i] - mean[i]) / (n + 1.0);
                    v[i] = (y[i] - m) * down;
                }
                ok = ok && rank_one(&mut self.factor, d, v, -1.0);
            }
            if !ok {
                self.factor.clear();
            }
        }
    }

    /// The distance from the maintained factor: `(n - ddof) |U^-T (x - mean)|^2`, O(d^2); `None` when the
    /// factor is unusable or too close to singular (the direct solve then decides).
    fn fast_distance(&self, x: &[f64], r: &mut [f64]) -> Option<f64> {
        if self.factor.is_empty() {
            return None;
        }
        let d = self.dim();
        let n = self.points() as f64;
        let (mut max_diag, mut min_pivot) = (0.0f64, f64::INFINITY);
        for i in 0..d {
            max_diag = max_diag.max(self.scatter(i, i, n));
            let u = self.factor[i * d + i];
            min_pivot = min_pivot.min(u * u);
        }
        // Not above the floor, NaNs included.
        if min_pivot.partial_cmp(&(FAST_PIVOT * max_diag)) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        for i in 0..d {
            r[i] = x[i] - self.shift[i] - self.s1[i] / n;
        }
        // Forward substitution with U^T, by rows of U (contiguous).
        let mut dist = 0.0;
        for k in 0..d {
            let y = r[k] / self.factor[k * d + k];
            dist += y * y;
            for (ri, &u) in r[k + 1..].iter_mut().zip(&self.factor[k * d + k + 1..(k + 1) * d]) {
                *ri -= u * y;
            }
        }
        Some(dist * (n - self.ddof))
    }

    /// Squared distance of `x` (already projected to the model's features) from the window mean, by a
    /// fresh Cholesky factorisation of the covariance, regularised when singular.
    fn direct_distance(&self, x: &[f64], scratch: &mut [f64]) -> f64 {
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

/// Rank-one update (`sign` 1: `U^T U + v v^T`) or downdate (`sign` -1: `U^T U - v v^T`) of the upper
/// Cholesky factor `u` in place, by the classic sequence of (hyperbolic, for a downdate) rotations; `v` is
/// consumed. False when a pivot would not stay positive and finite (`u` is then half updated).
fn rank_one(u: &mut [f64], d: usize, v: &mut [f64], sign: f64) -> bool {
    for k in 0..d {
        let ukk = u[k * d + k];
        let vk = v[k];
        let r2 = ukk * ukk + sign * vk * vk;
        if !(r2 > 0.0 && r2.is_finite()) {
            return false;
        }
        let r = r2.sqrt();
        // One division on the chain from one pivot to the next (`ukk / r`), the rest multiplications.
        let inv_ukk = 1.0 / ukk;
        let (c, s, inv_c) = (r * inv_ukk, vk * inv_ukk, ukk / r);
        let ss = sign * s;
        u[k * d + k] = r;
        for (uk, vi) in u[k * d + k + 1..(k + 1) * d].iter_mut().zip(&mut v[k + 1..]) {
            let new = (*uk + ss * *vi) * inv_c;
            *uk = new;
            *vi = c * *vi - s * new;
        }
    }
    true
}

/// Adds (sign 1) or removes (sign -1) point `p` to the shifted sums (lower triangle of `s2`); `centred`
/// is scratch of `p`'s length.
fn accumulate(s1: &mut [f64], s2: &mut [f64], shift: &[f64], p: &[f64], sign: f64, centred: &mut [f64]) {
    let d = shift.len();
    for i in 0..d {
        centred[i] = p[i] - shift[i];
        s1[i] += sign * centred[i];
    }
    for i in 0..d {
        let a = sign * centred[i];
        for (s, &b) in s2[i * d..=i * d + i].iter_mut().zip(&centred[..=i]) {
            *s += a * b;
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
        let full = self.points() == self.window_size;
        let since = self.since_resync + 1;
        let after = if full { self.points() } else { self.points() + 1 };
        // A learn that ends in a refactorisation skips the rank-one steps. Besides the resyncs and every
        // REFACTOR_EVERY learns, an unusable factor is retried every d learns once the window can span
        // every feature (amortised O(d^2)).
        let refactor = since >= self.window_size
            || since.is_multiple_of(REFACTOR_EVERY)
            || (self.factor.is_empty() && d >= FACTOR_MIN_DIM && after > d && since.is_multiple_of(d));
        with_scratch(4 * d, |buf| {
            let (point, rest) = buf.split_at_mut(d);
            let (old, work) = rest.split_at_mut(d);
            for (p, &c) in point.iter_mut().zip(&self.columns) {
                *p = x[c];
            }
            if full {
                for (o, v) in old.iter_mut().zip(self.window.range(..d)) {
                    *o = *v;
                }
            }
            if !self.factor.is_empty() && !refactor {
                self.step_factor(point, full.then_some(&*old), work);
            }
            if full {
                accumulate(&mut self.s1, &mut self.s2, &self.shift, old, -1.0, work);
                self.window.drain(..d);
            }
            self.window.extend(point.iter().copied());
            accumulate(&mut self.s1, &mut self.s2, &self.shift, point, 1.0, work);
        });
        self.since_resync = since;
        if self.since_resync >= self.window_size {
            self.resync();
            self.since_resync = 0;
        }
        if refactor {
            self.refactor();
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let d = self.dim();
        if self.points() < 3 || self.columns.iter().any(|&c| x[c].is_nan()) {
            return 0.0;
        }
        let fast = with_scratch(2 * d, |buf| {
            let (point, r) = buf.split_at_mut(d);
            for (p, &c) in point.iter_mut().zip(&self.columns) {
                *p = x[c];
            }
            self.fast_distance(point, r)
        });
        let dist = fast.unwrap_or_else(|| {
            with_scratch(d * d + 3 * d, |scratch| {
                let (point, rest) = scratch.split_at_mut(d);
                for (p, &c) in point.iter_mut().zip(&self.columns) {
                    *p = x[c];
                }
                self.direct_distance(point, rest)
            })
        });
        finite_score(dist)
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
    /// 2: the maintained Cholesky factor joined the state (version 1 is read by `legacy::v1`).
    const STATE_VERSION: u16 = 2;
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

    /// A seeded stream of correlated points whose feature 1 copies feature 0 between rows 1,500 and
    /// 2,000 (a singular window, regularised) and whose scale jumps by 1e3 at row 3,000.
    fn stream(d: usize, rows: usize) -> Vec<Vec<f64>> {
        let mut rng = crate::rng::unit_rng(7, 0);
        (0..rows)
            .map(|t| {
                let z: Vec<f64> = (0..d).map(|_| crate::rng::unit(&mut rng) - 0.5).collect();
                let mut p: Vec<f64> = (0..d).map(|i| z[i] + 0.5 * z[(i + 1) % d]).collect();
                if d > 1 && (1500..2000).contains(&t) {
                    p[1] = p[0];
                }
                if t >= 3000 {
                    p.iter_mut().for_each(|v| *v = *v * 1e3 + 5e3);
                }
                p
            })
            .collect()
    }

    #[test]
    fn the_maintained_factor_scores_like_a_fresh_factorisation() {
        for (d, w) in [(12, 50), (11, 1500), (3, 20), (1, 20)] {
            let schema = Schema::numbered("f", d);
            let p = MovingMahalanobisDistanceParams { window_size: Some(w), bias: false, keys: None };
            let mut m = p.build(&schema).unwrap();
            let rows = stream(d, 5000);
            let mut fast_rows = 0;
            for (t, x) in rows.iter().enumerate() {
                let probe: Vec<f64> = x.iter().map(|v| v + 0.3 * (t % 7) as f64).collect();
                let score = m.score_one(&probe);
                if m.points() >= 3 {
                    let direct = finite_score(with_scratch(d * d + 2 * d, |s| m.direct_distance(&probe, s)));
                    // While the window straddles the jump in scale its covariance is ill conditioned (a
                    // condition number near 1e8, the most the factor is trusted with) and both answers
                    // carry rounding of that order; elsewhere they agree to 1e-9.
                    let straddles = (3000..3000 + w).contains(&t);
                    let tol = if straddles { 1e-6 } else { 1e-9 } * direct.abs().max(1.0);
                    assert!((score - direct).abs() <= tol, "d {d} w {w} row {t}: {score} vs direct {direct}");
                    let mut r = vec![0.0; d];
                    fast_rows += usize::from(m.fast_distance(&probe, &mut r).is_some());
                }
                m.learn_one(x);
            }
            if d < FACTOR_MIN_DIM {
                assert_eq!(fast_rows, 0, "d {d}: few features are scored by a fresh factorisation");
            } else {
                // The maintained factor scored everything but the warm-up and the singular stretch.
                assert!(fast_rows > 5000 - 600 - 2 * w.min(100), "d {d} w {w}: {fast_rows} rows by the factor");
            }
        }
    }

    #[test]
    fn version_1_states_migrate() {
        use crate::{AnyDetector, AnyDetectorParams};
        let schema = Schema::numbered("f", 12);
        let params = MovingMahalanobisDistanceParams { window_size: Some(60), bias: true, keys: None };
        let rows = stream(12, 500);
        // Parameters at version 1 read as they are.
        let old_params = [
            postcard::to_stdvec(&("moving_mahalanobis_distance", 1u16)).unwrap(),
            postcard::to_stdvec(&params).unwrap(),
        ]
        .concat();
        let back: AnyDetectorParams = postcard::from_bytes(&old_params).unwrap();
        assert_eq!(back, AnyDetectorParams::MovingMahalanobisDistance(params.clone()));
        for learned in [360, 385] {
            let mut m = params.build(&schema).unwrap();
            rows[..learned].iter().for_each(|r| m.learn_one(r));
            // What a version-1 build wrote: the same fields, without the factor.
            let v1 = (&m.columns, m.window_size, m.ddof, &m.window, &m.shift, &m.s1, &m.s2, m.since_resync);
            let bytes = [
                postcard::to_stdvec(&("moving_mahalanobis_distance", 1u16)).unwrap(),
                postcard::to_stdvec(&v1).unwrap(),
            ]
            .concat();
            let AnyDetector::MovingMahalanobisDistance(mut migrated) = postcard::from_bytes(&bytes).unwrap() else {
                panic!("another kind")
            };
            // Right after a resync (360 = 6 windows) the migrated model is the live one, bit for bit;
            // elsewhere the factor agrees within rounding until the next refactorisation.
            assert_eq!(migrated == m, learned == 360, "{learned} rows");
            for r in &rows[learned..] {
                let (a, b) = (m.score_one(r), migrated.score_one(r));
                assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{learned} rows: {a} vs {b}");
                m.learn_one(r);
                migrated.learn_one(r);
            }
            assert!(migrated == m, "{learned} rows: not the same model after a refactorisation");
        }
    }
}
