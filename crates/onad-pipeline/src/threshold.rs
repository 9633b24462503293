//! Thresholds turn scores into anomaly flags. The trait is stateful so that adaptive thresholds (a
//! moving mean plus k standard deviations, a streaming quantile) fit the same slot as a fixed one.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

/// Decides, score by score in stream order, whether a row is an anomaly.
pub trait Threshold: Debug + Send {
    /// Flags one score (strictly above the threshold = anomaly) and updates any internal state.
    fn flag(&mut self, score: f64) -> bool;

    /// The threshold that the next score will be compared with.
    fn current(&self) -> f64;
}

/// A fixed threshold: scores strictly above it are anomalies (the guide's `score > threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FixedThreshold(pub f64);

impl Threshold for FixedThreshold {
    fn flag(&mut self, score: f64) -> bool {
        score > self.0
    }

    fn current(&self) -> f64 {
        self.0
    }
}

/// Flags nothing (scores only).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NoThreshold;

impl Threshold for NoThreshold {
    fn flag(&mut self, _score: f64) -> bool {
        false
    }

    fn current(&self) -> f64 {
        f64::INFINITY
    }
}

/// The streaming guide's adaptive threshold: `mean + k * std` of the last `window` scores (population
/// standard deviation). Nothing is flagged until the window is full.
///
/// Unlike the guide's loop, a score is compared with the window *before* it joins it, so a spike cannot
/// raise its own bar. Non-finite scores are compared but not added to the window.
///
/// ```
/// use onad_pipeline::{Threshold, WindowedThreshold};
/// let mut t = WindowedThreshold::new(4, 2.0).unwrap();
/// for s in [1.0, 2.0, 1.0, 2.0] {
///     assert!(!t.flag(s)); // warming up
/// }
/// assert_eq!(t.current(), 2.5); // mean 1.5 + 2 * std 0.5
/// assert!(t.flag(3.0));
/// assert!(!t.flag(2.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedThreshold {
    window: usize,
    k: f64,
    scores: std::collections::VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    since_resum: usize,
}

impl WindowedThreshold {
    /// A threshold over the last `window` scores at `k` standard deviations above their mean.
    pub fn new(window: usize, k: f64) -> Result<Self, String> {
        if window < 2 {
            return Err(format!("the threshold window must hold at least 2 scores, got {window}"));
        }
        if !k.is_finite() {
            return Err(format!("the threshold's k must be finite, got {k}"));
        }
        Ok(WindowedThreshold {
            window,
            k,
            scores: std::collections::VecDeque::with_capacity(window),
            sum: 0.0,
            sum_sq: 0.0,
            since_resum: 0,
        })
    }

    fn push(&mut self, s: f64) {
        if self.scores.len() == self.window {
            let old = self.scores.pop_front().unwrap_or(0.0);
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.scores.push_back(s);
        self.sum += s;
        self.sum_sq += s * s;
        self.since_resum += 1;
        if self.since_resum >= self.window {
            // Recompute exactly once per window so rounding cannot accumulate over a long stream.
            self.sum = self.scores.iter().sum();
            self.sum_sq = self.scores.iter().map(|v| v * v).sum();
            self.since_resum = 0;
        }
    }
}

impl Threshold for WindowedThreshold {
    fn flag(&mut self, score: f64) -> bool {
        let flagged = score > self.current();
        if score.is_finite() {
            self.push(score);
        }
        flagged
    }

    fn current(&self) -> f64 {
        if self.scores.len() < self.window {
            return f64::INFINITY;
        }
        let n = self.scores.len() as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        mean + self.k * var.sqrt()
    }
}

/// A streaming quantile threshold: a score is an anomaly when it is strictly above the `quantile` of the
/// last `window` scores (linear interpolation at rank `(n - 1) q`); nothing is flagged until `window.min(30)`
/// scores have been seen. As with [`WindowedThreshold`], a score is compared before it joins the window.
/// The window is kept sorted (binary search and an in-place shift per score).
///
/// ```
/// use onad_pipeline::{QuantileThreshold, Threshold};
/// let mut t = QuantileThreshold::new(0.9, 100).unwrap();
/// for i in 0..100 {
///     t.flag(i as f64);
/// }
/// assert!((t.current() - 89.1).abs() < 1e-9);
/// assert!(t.flag(95.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileThreshold {
    quantile: f64,
    window: usize,
    arrival: std::collections::VecDeque<f64>,
    sorted: Vec<f64>,
}

impl QuantileThreshold {
    /// A threshold at `quantile` (in (0, 1)) of the last `window` scores.
    pub fn new(quantile: f64, window: usize) -> Result<Self, String> {
        if !(quantile > 0.0 && quantile < 1.0) {
            return Err(format!("the quantile must be in (0, 1), got {quantile}"));
        }
        if window == 0 {
            return Err("the threshold window must hold at least 1 score".into());
        }
        Ok(QuantileThreshold { quantile, window, arrival: Default::default(), sorted: Vec::new() })
    }
}

impl Threshold for QuantileThreshold {
    fn flag(&mut self, score: f64) -> bool {
        let flagged = score > self.current();
        if score.is_finite() {
            if self.arrival.len() == self.window
                && let Some(old) = self.arrival.pop_front()
            {
                let i = self.sorted.partition_point(|v| *v < old);
                self.sorted.remove(i);
            }
            self.arrival.push_back(score);
            let i = self.sorted.partition_point(|v| *v < score);
            self.sorted.insert(i, score);
        }
        flagged
    }

    fn current(&self) -> f64 {
        let n = self.sorted.len();
        if n < self.window.min(30) || n == 0 {
            return f64::INFINITY;
        }
        let rank = (n - 1) as f64 * self.quantile;
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        let f = rank - lo as f64;
        (1.0 - f) * self.sorted[lo] + f * self.sorted[hi]
    }
}

/// Any of the built-in thresholds, as one serializable type (checkpoints store the threshold's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnyThreshold {
    /// Flags nothing.
    None(NoThreshold),
    /// A fixed threshold.
    Fixed(FixedThreshold),
    /// The windowed adaptive threshold.
    Windowed(WindowedThreshold),
    /// The streaming quantile threshold.
    Quantile(QuantileThreshold),
}

impl Threshold for AnyThreshold {
    fn flag(&mut self, score: f64) -> bool {
        match self {
            AnyThreshold::None(t) => t.flag(score),
            AnyThreshold::Fixed(t) => t.flag(score),
            AnyThreshold::Windowed(t) => t.flag(score),
            AnyThreshold::Quantile(t) => t.flag(score),
        }
    }

    fn current(&self) -> f64 {
        match self {
            AnyThreshold::None(t) => t.current(),
            AnyThreshold::Fixed(t) => t.current(),
            AnyThreshold::Windowed(t) => t.current(),
            AnyThreshold::Quantile(t) => t.current(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_threshold_tracks_recent_scores_only() {
        let mut t = WindowedThreshold::new(100, 3.0).unwrap();
        for i in 0..10_000 {
            t.flag(1000.0 + (i % 10) as f64);
        }
        for i in 0..100 {
            t.flag((i % 10) as f64);
        }
        // Only the recent low scores count now: mean 4.5, std ~2.87.
        let c = t.current();
        assert!((c - (4.5 + 3.0 * 8.25f64.sqrt())).abs() < 1e-9, "{c}");
        assert!(t.flag(20.0));
        assert!(!t.flag(f64::NAN));
        assert!(WindowedThreshold::new(1, 2.0).is_err());
    }
}
