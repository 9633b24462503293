//! Drift detectors: change detection on one stream of numbers (a score, a residual, a feature), with
//! aberrant 1.3.0's parameter names and defaults and the same change points on the same stream.
//!
//! All three share one scoring contract, so that they can stand alone in a pipeline:
//!
//! - `learn_one(x)` feeds the value of the detector's column; [`ADWIN::drift_detected`] (and its
//!   counterparts) tell whether that row signalled a change, `n_detections` counts the changes so far.
//! - `score_one(x)` is the detector's test statistic for `x` as if it were the next value, relative to
//!   the level at which the detector signals, without changing state. A score `>= 1.0` means exactly
//!   that learning this row next would signal a change (tested on every detector); a row on which the
//!   detector would run no test at all (too few values yet, or not a check row) scores 0.0.
//!
//! Missing and infinite values are not learned (aberrant raises on them) and score 0.0.

mod adwin;
mod kswin;
mod page_hinkley;
mod reset;

pub use adwin::{ADWIN, ADWINParams};
pub use kswin::{KSWIN, KSWINParams};
pub use page_hinkley::{PageHinkley, PageHinkleyMode, PageHinkleyParams};
pub use reset::{DriftReset, OnDrift, SCORE_COLUMN};

/// The largest double below 1.0.
const BELOW_ONE: f64 = 1.0 - f64::EPSILON / 2.0;

/// A statistic relative to its signalling level, as a score: `ratio` clamped so that the score is
/// `>= 1.0` exactly when the detector signals (the detectors' tests are strict or non-strict comparisons
/// of their own, which a plain ratio would get wrong at equality), finite and never negative.
fn flag_score(ratio: f64, signals: bool) -> f64 {
    let r = if ratio.is_nan() { 0.0 } else { ratio.clamp(0.0, f64::MAX) };
    if signals { r.max(1.0) } else { r.min(BELOW_ONE) }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A seeded stream with mean shifts and a variance change, shared by the detectors' unit tests.
    use crate::rng::{self};
    use rand_pcg::Pcg64;

    /// Standard normal by Box-Muller from the shared draws.
    fn normal(rng: &mut Pcg64) -> f64 {
        let u = 1.0 - rng::unit(rng);
        let v = rng::unit(rng);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Learns `xs` one by one into `m`, checking on every row that its score said `>= 1.0` exactly when
    /// learning the row signalled; returns the rows that signalled.
    pub(crate) fn changes<D: onad_core::Detector>(m: &mut D, xs: &[f64], detected: fn(&D) -> bool) -> Vec<usize> {
        let mut out = vec![];
        for (i, &x) in xs.iter().enumerate() {
            let s = m.score_one(&[x]);
            m.learn_one(&[x]);
            assert_eq!(s >= 1.0, detected(m), "row {i}: score {s}");
            if detected(m) {
                out.push(i);
            }
        }
        out
    }

    /// 4,000 values: N(0, 1), then the mean moves to 3 at 1,000, back to 0 at 2,000, and the standard
    /// deviation triples at 3,000.
    pub(crate) fn stream(seed: u64) -> Vec<f64> {
        let mut rng = rng::unit_rng(seed, 0);
        (0..4000)
            .map(|i| {
                let (mean, sd) = match i {
                    0..1000 => (0.0, 1.0),
                    1000..2000 => (3.0, 1.0),
                    2000..3000 => (0.0, 1.0),
                    _ => (0.0, 3.0),
                };
                mean + sd * normal(&mut rng)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_score_is_at_least_one_exactly_when_signalling() {
        assert_eq!(flag_score(1.0, false), BELOW_ONE);
        assert_eq!(BELOW_ONE.next_up(), 1.0);
        assert_eq!(flag_score(0.99, true), 1.0);
        assert_eq!(flag_score(2.5, true), 2.5);
        assert_eq!(flag_score(0.5, false), 0.5);
        assert_eq!(flag_score(f64::NAN, false), 0.0);
        assert_eq!(flag_score(f64::INFINITY, true), f64::MAX);
        assert_eq!(flag_score(-3.0, false), 0.0);
    }
}
