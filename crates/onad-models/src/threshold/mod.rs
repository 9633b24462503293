//! Score policies: detectors that read another detector's score (QuantileThreshold) and a wrapper that
//! keeps a detector from learning the anomalies it flags (Protected).

mod protected;
mod quantile_threshold;

pub use protected::{Guard, Protect, Protected};
pub use quantile_threshold::{QuantileThreshold, QuantileThresholdParams};

/// The linear quantile at rank `(n - 1) * q` of `n` sorted values (given by `kth`), written as aberrant
/// writes it (interpolating from the nearer end), so results match it to the last bit.
pub(crate) fn linear_quantile(n: usize, q: f64, kth: impl Fn(usize) -> Option<f64>) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let p = (n - 1) as f64 * q;
    let lo = p.floor() as usize;
    let f = p - lo as f64;
    let lower = kth(lo)?;
    let hi = (lo + 1).min(n - 1);
    if f == 0.0 || hi == lo {
        return Some(lower);
    }
    let upper = kth(hi)?;
    Some(if f <= 0.5 { lower + f * (upper - lower) } else { upper - (1.0 - f) * (upper - lower) })
}
