//! MovingVariance, MovingSkewness and MovingKurtosis: how much one value would change the population
//! variance, skewness (`m3 / m2^1.5`) or kurtosis (`m4 / m2^2`, not excess) of the recent window.
//!
//! All three keep power sums of `v - c` for a shift `c` that is a value of the window, so a score is O(1)
//! (Python onad makes two passes over the window per score). Shifting by a window value keeps integer data
//! exact (a constant window has variance exactly 0, as in onad) and avoids the cancellation of raw power
//! sums; the sums are recomputed from the window, re-centred, once per `window_size` learns and whenever the
//! mean has moved more than four standard deviations from the shift.

use std::collections::VecDeque;

use onad_core::{DetectorParams, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::window::{MovingWindow, WindowStatistic, window_params};

/// Shifted power sums of the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerSums {
    shift: f64,
    n: usize,
    s: [f64; 4],
}

/// Population central moments.
#[derive(Debug, Clone, Copy)]
struct Central {
    m2: f64,
    m3: f64,
    m4: f64,
}

impl PowerSums {
    fn add(&mut self, v: f64, sign: f64) {
        let d = v - self.shift;
        let d2 = d * d;
        self.s[0] += sign * d;
        self.s[1] += sign * d2;
        self.s[2] += sign * d2 * d;
        self.s[3] += sign * d2 * d2;
    }

    /// Mean offset from the shift and central moments of the window, plus `extra` when given.
    fn central(&self, extra: Option<f64>) -> (f64, Central) {
        let mut s = self.s;
        let mut n = self.n as f64;
        if let Some(x) = extra {
            let d = x - self.shift;
            s[0] += d;
            s[1] += d * d;
            s[2] += d * d * d;
            s[3] += d * d * d * d;
            n += 1.0;
        }
        let (r1, r2, r3, r4) = (s[0] / n, s[1] / n, s[2] / n, s[3] / n);
        let mu = r1;
        let m2 = (r2 - mu * mu).max(0.0);
        let m3 = r3 - 3.0 * mu * r2 + 2.0 * mu * mu * mu;
        let m4 = (r4 - 4.0 * mu * r3 + 6.0 * mu * mu * r2 - 3.0 * mu * mu * mu * mu).max(0.0);
        (mu, Central { m2, m3, m4 })
    }
}

/// A moment-based statistic; `value` is `None` where onad returns 0 (a zero variance).
macro_rules! moment_stat {
    ($(#[$meta:meta])* $name:ident, $value:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name(PowerSums);

        impl WindowStatistic for $name {
            fn pushed(&mut self, v: f64) {
                if self.0.n == 0 {
                    self.0 = PowerSums { shift: v, ..Default::default() };
                }
                self.0.add(v, 1.0);
                self.0.n += 1;
            }

            fn popped(&mut self, v: f64) {
                self.0.add(v, -1.0);
                self.0.n -= 1;
            }

            fn resync(&mut self, window: &VecDeque<f64>) {
                let n = window.len().max(1) as f64;
                let mean = window.iter().sum::<f64>() / n;
                // Re-centre on the window value closest to the mean (a data value keeps integers exact).
                let shift = window.iter().copied().min_by(|a, b| (a - mean).abs().total_cmp(&(b - mean).abs())).unwrap_or(0.0);
                self.0 = PowerSums { shift, ..Default::default() };
                for &v in window {
                    self.0.add(v, 1.0);
                }
                self.0.n = window.len();
            }

            fn drifted(&self, len: usize) -> bool {
                let (mu, c) = self.0.central(None);
                len > 1 && mu * mu > 16.0 * c.m2
            }

            fn delta(&self, _window: &VecDeque<f64>, x: f64) -> Option<f64> {
                let f: fn(Central) -> Option<f64> = $value;
                let before = f(self.0.central(None).1)?;
                let after = f(self.0.central(Some(x)).1)?;
                Some(after - before)
            }
        }
    };
}

moment_stat!(
    /// Running state of [`MovingVariance`].
    VarianceStat,
    |c| Some(c.m2)
);
moment_stat!(
    /// Running state of [`MovingSkewness`].
    SkewnessStat,
    |c| (c.m2 > 0.0).then(|| c.m3 / c.m2.powf(1.5))
);
moment_stat!(
    /// Running state of [`MovingKurtosis`].
    KurtosisStat,
    |c| (c.m2 > 0.0).then(|| c.m4 / (c.m2 * c.m2))
);

/// Scores the change of the population variance of the last `window_size` values of one feature caused by
/// the new value: `var(W ∪ {x}) - var(W)` (Python onad `MovingVariance`).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingVarianceParams;
/// let mut m = MovingVarianceParams { window_size: Some(4), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// for v in [1.0, 3.0, 1.0, 3.0] {
///     m.learn_one(&[v]);
/// }
/// // var {1,3,1,3} = 1; var {1,3,1,3,2} = 0.8
/// assert!((m.score_one(&[2.0]) - 0.2).abs() < 1e-12);
/// ```
pub type MovingVariance = MovingWindow<VarianceStat>;

/// Scores the change of the skewness `m3 / m2^1.5` of the window caused by the new value; 0.0 when either
/// window has zero variance (Python onad `MovingSkewness`).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingSkewnessParams;
/// let mut m = MovingSkewnessParams { window_size: Some(50), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// for i in 0..50 {
///     m.learn_one(&[(i % 5) as f64]); // symmetric: skewness 0
/// }
/// // A far value on one side skews the window; a central one does not.
/// assert!(m.score_one(&[40.0]) > 1.0);
/// assert!(m.score_one(&[2.0]) < 1e-9);
/// ```
pub type MovingSkewness = MovingWindow<SkewnessStat>;

/// Scores the change of the (non-excess) kurtosis `m4 / m2^2` of the window caused by the new value; 0.0
/// when either window has zero variance (Python onad `MovingKurtosis`).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingKurtosisParams;
/// let mut m = MovingKurtosisParams { window_size: Some(50), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// for i in 0..50 {
///     m.learn_one(&[(i % 5) as f64]);
/// }
/// // A value far out in the tail raises the kurtosis sharply.
/// assert!(m.score_one(&[40.0]) > 10.0 * m.score_one(&[4.0]));
/// ```
pub type MovingKurtosis = MovingWindow<KurtosisStat>;

window_params!(
    /// Hyperparameters of [`MovingVariance`] (Python onad names and defaults).
    MovingVarianceParams, "change of the moving population variance of one feature", example_window = 50
);
window_params!(
    /// Hyperparameters of [`MovingSkewness`] (Python onad names and defaults).
    MovingSkewnessParams, "change of the moving skewness of one feature", example_window = 50
);
window_params!(
    /// Hyperparameters of [`MovingKurtosis`] (Python onad names and defaults).
    MovingKurtosisParams, "change of the moving kurtosis of one feature", example_window = 50
);

/// Implements `build` for a moving-window model whose statistic is made by `$stat(window_size)`.
macro_rules! build_window {
    ($params:ident => $model:ident($stat:expr)) => {
        impl DetectorParams for $params {
            type Model = $model;
            fn build(&self, schema: &SchemaRef) -> Result<$model, ParamError> {
                let make: fn(usize) -> _ = $stat;
                let stat = make(self.window_size.unwrap_or(0));
                MovingWindow::build(schema, self.key.as_deref(), self.window_size, self.abs_diff, stat)
            }
        }
    };
}
pub(crate) use build_window;

build_window!(MovingVarianceParams => MovingVariance(|_| VarianceStat::default()));
build_window!(MovingSkewnessParams => MovingSkewness(|_| SkewnessStat::default()));
build_window!(MovingKurtosisParams => MovingKurtosis(|_| KurtosisStat::default()));

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::{Detector, Schema};

    fn two_pass(w: &[f64]) -> (f64, f64, f64) {
        let n = w.len() as f64;
        let m = w.iter().sum::<f64>() / n;
        let c = |p: i32| w.iter().map(|v| (v - m).powi(p)).sum::<f64>() / n;
        (c(2), c(3), c(4))
    }

    #[test]
    fn stays_accurate_through_a_level_shift() {
        let schema = Schema::shared(["v"]).unwrap();
        let mut var = MovingVarianceParams { window_size: Some(30), abs_diff: false, ..Default::default() }
            .build(&schema)
            .unwrap();
        let mut kurt = MovingKurtosisParams { window_size: Some(30), abs_diff: false, ..Default::default() }
            .build(&schema)
            .unwrap();
        let mut window = VecDeque::new();
        for i in 0..400 {
            // Noise around 0, then a jump to 1e7 with small noise: the classic cancellation trap.
            let v = if i < 200 { ((i * 37) % 11) as f64 * 0.1 } else { 1e7 + ((i * 13) % 7) as f64 * 0.01 };
            var.learn_one(&[v]);
            kurt.learn_one(&[v]);
            window.push_back(v);
            if window.len() > 30 {
                window.pop_front();
            }
            if i % 10 == 5 {
                let w: Vec<f64> = window.iter().copied().collect();
                let mut with = w.clone();
                let x = if i < 200 { 0.55 } else { 1e7 + 0.02 };
                with.push(x);
                let (a, b) = (two_pass(&w), two_pass(&with));
                let expected = b.0 - a.0;
                let got = var.score_one(&[x]);
                assert!(
                    (got - expected).abs() <= 1e-7 * expected.abs().max(a.0) + 1e-12,
                    "row {i}: {got} vs {expected}"
                );
                let ek = b.2 / (b.0 * b.0) - a.2 / (a.0 * a.0);
                let gk = kurt.score_one(&[x]);
                assert!((gk - ek).abs() <= 1e-6 * ek.abs().max(1.0), "row {i}: kurtosis {gk} vs {ek}");
            }
        }
    }

    #[test]
    fn constant_windows_give_zero_like_onad() {
        let schema = Schema::shared(["v"]).unwrap();
        let mut skew = MovingSkewnessParams { window_size: Some(5), ..Default::default() }.build(&schema).unwrap();
        for _ in 0..10 {
            skew.learn_one(&[0.3]);
        }
        assert_eq!(skew.score_one(&[7.0]), 0.0, "zero variance before: onad returns 0");
    }
}
