//! MovingMedian, MovingQuantile, MovingInterquartileRange and MovingAverageAbsoluteDeviation: statistics
//! of the sorted window, kept in the shared [`OrderStats`] store of `onad_core::rolling` (a sorted vector for
//! windows up to 4,096 values, an O(log w) treap beyond), so nothing is re-sorted (Python onad sorts the
//! window, twice, on every score).
//!
//! Quantiles interpolate linearly at rank `(n - 1) * q` of the sorted values, written as onad writes it
//! ([`Interpolation::Weighted`]).

use std::collections::VecDeque;

use onad_core::rolling::{Interpolation, OrderStats, quantile_by_rank};
use onad_core::{DetectorParams, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::moments::build_window;
use super::window::{MovingWindow, WindowStatistic, window_params};

/// Linear-interpolated quantile `q` of `n` sorted values given by `kth`, as Python onad computes it.
fn quantile(n: usize, q: f64, kth: impl Fn(usize) -> Option<f64>) -> Option<f64> {
    quantile_by_rank(n, q, Interpolation::Weighted, kth)
}

/// An order-statistic view of the window with a statistic computed on the window or the window plus one.
macro_rules! order_stat {
    (@delta $self:ident, $x:ident) => {
        Some($self.value(Some($x))? - $self.value(None)?)
    };
    (@delta $self:ident, $x:ident, $delta:ident) => {
        $self.$delta($x)
    };
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* } , |$s:ident, $n:ident, $kth:ident, $extra:ident| $value:expr $(, delta = $delta:ident)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            tree: OrderStats,
            $($field: $ty,)*
        }

        impl $name {
            /// The statistic of the window, plus `extra` when given.
            fn value(&self, $extra: Option<f64>) -> Option<f64> {
                let $s = self;
                let $n = self.tree.len() + usize::from($extra.is_some());
                // The sorted vector (small windows) read as a slice: one branch on the store per call
                // instead of one per order statistic read.
                if let Some(sorted) = self.tree.as_sorted_slice() {
                    let rank = $extra.map(|x| onad_core::rolling::rank_in(sorted, x));
                    let $kth = |k: usize| match ($extra, rank) {
                        // Selects rather than branches: where `x` falls against the rank asked for
                        // is data, not a pattern a predictor learns.
                        (Some(x), Some(r)) => {
                            let v = sorted.get(k - usize::from(k > r)).copied().unwrap_or(x);
                            Some(if k == r { x } else { v })
                        }
                        _ => sorted.get(k).copied(),
                    };
                    return $value;
                }
                let rank = $extra.map(|x| self.tree.rank(x));
                let $kth = |k: usize| match ($extra, rank) {
                    (Some(x), Some(r)) => self.tree.kth_with_rank(k, x, r),
                    _ => self.tree.kth(k),
                };
                $value
            }
        }

        impl WindowStatistic for $name {
            fn pushed(&mut self, v: f64) {
                self.tree.insert(v);
            }
            fn popped(&mut self, v: f64) {
                self.tree.remove(v);
            }
            fn replaced(&mut self, old: f64, new: f64) {
                self.tree.replace(old, new);
            }
            fn resync(&mut self, _window: &VecDeque<f64>) {}
            fn delta(&self, _window: &VecDeque<f64>, x: f64) -> Option<f64> {
                order_stat!(@delta self, x $(, $delta)?)
            }
        }
    };
}

order_stat!(
    /// Running state of [`MovingMedian`].
    MedianStat {}, |_s, n, kth, _extra| quantile(n, 0.5, kth)
);
order_stat!(
    /// Running state of [`MovingQuantile`].
    QuantileStat { q: f64 }, |s, n, kth, _extra| quantile(n, s.q, kth)
);
order_stat!(
    /// Running state of [`MovingInterquartileRange`].
    InterquartileStat {}, |_s, n, kth, _extra| Some(quantile(n, 0.75, kth)? - quantile(n, 0.25, kth)?)
);
order_stat!(
    /// Running state of [`MovingAverageAbsoluteDeviation`].
    AbsoluteDeviationStat {}, |s, n, _kth, extra| {
        // sum |v - m| = (sum - 2 * sum_below(m)) - m * (n - 2 * count_below(m)), m the mean.
        let (mut sum, mut count_extra_below, mut sum_extra_below) = (s.tree.sum(), 0usize, 0.0);
        if let Some(x) = extra {
            sum += x;
        }
        let m = sum / n as f64;
        if let Some(x) = extra
            && x < m {
                count_extra_below = 1;
                sum_extra_below = x;
            }
        let (c, sb) = s.tree.below(m);
        let (c, sb) = (c + count_extra_below, sb + sum_extra_below);
        let total = (sum - 2.0 * sb) - m * (n as f64 - 2.0 * c as f64);
        (n > 0).then(|| total.max(0.0) / n as f64)
    },
    delta = mad_delta
);

impl AbsoluteDeviationStat {
    /// `value(Some(x)) - value(None)` with one pass over the sorted vector for both: the two means' ranks
    /// counted together, and the sum below the larger rank continued from the sum below the smaller (the
    /// same additions in the same order as two separate sums, so the same bits). The sequential sum is
    /// what bounds this model's speed: it is kept for bit-identical scores.
    fn mad_delta(&self, x: f64) -> Option<f64> {
        let Some(sorted) = self.tree.as_sorted_slice().filter(|s| !s.is_empty()) else {
            return Some(self.value(Some(x))? - self.value(None)?);
        };
        let (n0, sum0) = (sorted.len(), self.tree.sum());
        let (n1, sum1) = (n0 + 1, sum0 + x);
        let (m0, m1) = (sum0 / n0 as f64, sum1 / n1 as f64);
        let (c0, c1) = onad_core::rolling::ranks_in(sorted, m0, m1);
        let (lo, hi) = (c0.min(c1), c0.max(c1));
        let below_lo: f64 = sorted[..lo].iter().sum();
        let below_hi = sorted[lo..hi].iter().fold(below_lo, |a, b| a + b);
        let (below0, below1) = if c0 <= c1 { (below_lo, below_hi) } else { (below_hi, below_lo) };
        let mad = |sum: f64, n: usize, m: f64, c: usize, sb: f64| {
            let total = (sum - 2.0 * sb) - m * (n as f64 - 2.0 * c as f64);
            total.max(0.0) / n as f64
        };
        // As `value`: the window alone adds no extra value (0 and 0.0), the window plus `x` adds `x` when
        // it is below the new mean.
        let without = mad(sum0, n0, m0, c0, below0 + 0.0);
        let (c_x, s_x) = if x < m1 { (1, x) } else { (0, 0.0) };
        let with = mad(sum1, n1, m1, c1 + c_x, below1 + s_x);
        Some(with - without)
    }
}

/// Scores the change of the median of the last `window_size` values of one feature caused by the new
/// value (Python onad `MovingMedian`). O(log w) per learn and score.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingMedianParams;
/// let mut m = MovingMedianParams { window_size: Some(3), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// for v in [1.0, 5.0, 3.0] {
///     m.learn_one(&[v]);
/// }
/// // median {1,3,5} = 3, median {1,3,5,100} = 4
/// assert_eq!(m.score_one(&[100.0]), 1.0);
/// ```
pub type MovingMedian = MovingWindow<MedianStat>;

/// Scores the change of the `quantile` of the window (linear interpolation at rank `(n-1)q`) caused by the
/// new value (Python onad `MovingQuantile`).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingQuantileParams;
/// let params = MovingQuantileParams { window_size: Some(5), quantile: 0.75, abs_diff: false, ..Default::default() };
/// let mut m = params.build(&Schema::shared(["v"]).unwrap()).unwrap();
/// for v in [1.0, 2.0, 3.0, 4.0, 5.0] {
///     m.learn_one(&[v]);
/// }
/// // q75 of {1..5} is 4; of {1..5, 100} it is rank 3.75: 4.75.
/// assert!((m.score_one(&[100.0]) - 0.75).abs() < 1e-12);
/// ```
pub type MovingQuantile = MovingWindow<QuantileStat>;

/// Scores the change of the interquartile range `q(0.75) - q(0.25)` of the window caused by the new value
/// (Python onad `MovingInterquartileRange`).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingInterquartileRangeParams;
/// let mut m = MovingInterquartileRangeParams { window_size: Some(5), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// for v in [1.0, 2.0, 3.0, 4.0, 5.0] {
///     m.learn_one(&[v]);
/// }
/// // IQR {1..5} = 4 - 2 = 2; IQR {1..5, 100} = 4.75 - 2.25 = 2.5
/// assert!((m.score_one(&[100.0]) - 0.5).abs() < 1e-12);
/// ```
pub type MovingInterquartileRange = MovingWindow<InterquartileStat>;

/// Scores the change of the mean absolute deviation around the mean, `mean(|v - mean|)`, of the window
/// caused by the new value (Python onad `MovingAverageAbsoluteDeviation`), from the count and sum of the
/// window values below the mean (O(log w) in the treap; a prefix sum of the sorted vector for small windows).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingAverageAbsoluteDeviationParams;
/// let mut m = MovingAverageAbsoluteDeviationParams { window_size: Some(4), ..Default::default() }
///     .build(&Schema::shared(["v"]).unwrap())
///     .unwrap();
/// for v in [1.0, 3.0, 1.0, 3.0] {
///     m.learn_one(&[v]); // mean 2, MAD 1
/// }
/// // {1, 3, 1, 3, 12}: mean 4, MAD (3 + 1 + 3 + 1 + 8) / 5 = 3.2
/// assert!((m.score_one(&[12.0]) - 2.2).abs() < 1e-12);
/// ```
pub type MovingAverageAbsoluteDeviation = MovingWindow<AbsoluteDeviationStat>;

window_params!(
    /// Hyperparameters of [`MovingMedian`] (Python onad names and defaults).
    MovingMedianParams, "change of the moving median of one feature", example_window = 50
);
window_params!(
    /// Hyperparameters of [`MovingQuantile`] (Python onad names and defaults).
    MovingQuantileParams, "change of a moving quantile of one feature", example_window = 50,
    /// The quantile, in [0, 1].
    quantile: f64 = 0.5, "quantile", "float in [0, 1]", "the quantile tracked"
);
window_params!(
    /// Hyperparameters of [`MovingInterquartileRange`] (Python onad names and defaults).
    MovingInterquartileRangeParams, "change of the moving interquartile range of one feature", example_window = 50
);
window_params!(
    /// Hyperparameters of [`MovingAverageAbsoluteDeviation`] (Python onad names and defaults).
    MovingAverageAbsoluteDeviationParams, "change of the moving mean absolute deviation of one feature", example_window = 50
);

build_window!(MovingMedianParams => MovingMedian(|w| MedianStat { tree: OrderStats::with_capacity(w) }));
build_window!(MovingInterquartileRangeParams => MovingInterquartileRange(|w| InterquartileStat { tree: OrderStats::with_capacity(w) }));
build_window!(MovingAverageAbsoluteDeviationParams => MovingAverageAbsoluteDeviation(|w| AbsoluteDeviationStat { tree: OrderStats::with_capacity(w) }));

impl DetectorParams for MovingQuantileParams {
    type Model = MovingQuantile;
    fn build(&self, schema: &SchemaRef) -> Result<MovingQuantile, ParamError> {
        if !(0.0..=1.0).contains(&self.quantile) {
            return Err(ParamError::invalid("quantile", format!("must be in [0, 1], got {}", self.quantile)));
        }
        let stat = QuantileStat { tree: OrderStats::with_capacity(self.window_size.unwrap_or(0)), q: self.quantile };
        MovingWindow::build(schema, self.key.as_deref(), self.window_size, self.abs_diff, stat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::{Detector, Schema};

    fn sorted_quantile(v: &mut [f64], q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        quantile(v.len(), q, |k| v.get(k).copied()).unwrap()
    }

    #[test]
    fn order_statistics_match_a_sort_of_the_window() {
        let schema = Schema::shared(["v"]).unwrap();
        let p = |w| MovingQuantileParams { window_size: Some(w), quantile: 0.9, abs_diff: false, ..Default::default() };
        let mut q90 = p(17).build(&schema).unwrap();
        let mut iqr = MovingInterquartileRangeParams { window_size: Some(17), abs_diff: false, ..Default::default() }
            .build(&schema)
            .unwrap();
        let mut mad =
            MovingAverageAbsoluteDeviationParams { window_size: Some(17), abs_diff: false, ..Default::default() }
                .build(&schema)
                .unwrap();
        let mut window: VecDeque<f64> = VecDeque::new();
        for i in 0..500u64 {
            let v = ((i * 7919) % 23) as f64 - 11.0 + (i % 3) as f64 * 0.5;
            for m in [&mut q90 as &mut dyn Detector, &mut iqr, &mut mad] {
                m.learn_one(&[v]);
            }
            window.push_back(v);
            if window.len() > 17 {
                window.pop_front();
            }
            let x = (i % 13) as f64 - 4.0;
            let mut w: Vec<f64> = window.iter().copied().collect();
            let mut wx = w.clone();
            wx.push(x);
            let e = sorted_quantile(&mut wx.clone(), 0.9) - sorted_quantile(&mut w.clone(), 0.9);
            assert!((q90.score_one(&[x]) - e).abs() < 1e-12, "q90 row {i}");
            let iq = |v: &mut Vec<f64>| sorted_quantile(v, 0.75) - sorted_quantile(v, 0.25);
            let e = iq(&mut wx.clone()) - iq(&mut w);
            assert!((iqr.score_one(&[x]) - e).abs() < 1e-12, "iqr row {i}");
            let md = |v: &[f64]| {
                let m = v.iter().sum::<f64>() / v.len() as f64;
                v.iter().map(|a| (a - m).abs()).sum::<f64>() / v.len() as f64
            };
            let e = md(&wx) - md(&window.iter().copied().collect::<Vec<_>>());
            assert!((mad.score_one(&[x]) - e).abs() < 1e-9, "mad row {i}: {} vs {e}", mad.score_one(&[x]));
        }
        assert!(
            MovingQuantileParams { window_size: Some(3), quantile: 1.5, ..Default::default() }.build(&schema).is_err()
        );
    }
}
