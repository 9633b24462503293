//! Thresholds turn scores into anomaly flags. The trait is stateful so that adaptive thresholds (a
//! moving mean plus k standard deviations, a streaming quantile) fit the same slot as a fixed one.

use std::fmt::Debug;

/// Decides, score by score in stream order, whether a row is an anomaly.
pub trait Threshold: Debug + Send {
    /// Flags one score (strictly above the threshold = anomaly) and updates any internal state.
    fn flag(&mut self, score: f64) -> bool;

    /// The threshold that the next score will be compared with.
    fn current(&self) -> f64;
}

/// A fixed threshold: scores strictly above it are anomalies (the guide's `score > threshold`).
#[derive(Debug, Clone, Copy, PartialEq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NoThreshold;

impl Threshold for NoThreshold {
    fn flag(&mut self, _score: f64) -> bool {
        false
    }

    fn current(&self) -> f64 {
        f64::INFINITY
    }
}
