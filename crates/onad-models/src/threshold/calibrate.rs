//! Score calibration: a wrapper that turns any detector's raw score, whose scale differs per model and
//! drifts with the stream, into a comparable one by relating it to the detector's own recent scores.
//! Two methods: a running z-score over a window, and split-conformal p-values over a window (pysad's
//! `ConformalProbabilityCalibrator` idea; none of the onad family has either in a pipeline).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use onad_core::rolling::{OrderStats, RollingWindow};
use onad_core::{Batch, Detector, ParamError};
use serde::{Deserialize, Serialize};

/// How a raw score is calibrated against the last `window_size` raw scores of the same detector.
///
/// Written as text (config files, `--calibrate`) as `zscore[:WINDOW]` or `conformal[:WINDOW]` (WINDOW
/// 1000 when left out); [`Display`](fmt::Display) writes the form that parses back to the same method.
///
/// ```
/// use onad_models::Calibration;
/// let c: Calibration = "conformal".parse().unwrap();
/// assert_eq!(c, Calibration::Conformal { window_size: 1000 });
/// assert_eq!("zscore:50".parse::<Calibration>().unwrap().to_string(), "zscore:50");
/// assert!("conformal:0".parse::<Calibration>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    /// `(s - mean) / sd` of the window (population deviation); 0.0 while the window holds fewer than two
    /// scores or they are all equal. Unbounded, but in units of the detector's recent spread (raw scores
    /// beyond +-1e150 count as +-1e150).
    ZScore {
        /// Recent scores kept (at least 2).
        window_size: usize,
    },
    /// `1 - p`, where `p = (1 + #{recent scores >= s}) / (1 + n)` is the conformal p-value of `s` among the
    /// `n` recent scores: in [0, 1), and on a stream without anomalies `P(p <= a) <= a` for any `a`
    /// (exchangeable scores), so a threshold can be read as a false-alarm rate. The resolution is
    /// `1 / (n + 1)`: a rate of 0.001 needs a window of at least 999 scores.
    Conformal {
        /// Recent scores kept (at least 1).
        window_size: usize,
    },
    /// `1 - p` as [`Conformal`](Calibration::Conformal), but among a uniform random sample of `window_size`
    /// of *all* the detector's past scores (Vitter's reservoir sampling, algorithm R, with a fixed seed)
    /// instead of the most recent ones. A run of anomalies (an attack burst) then fills only its share of
    /// the sample, so the ranks inside it stay high where a recent window goes flat; the price is drift:
    /// after the score distribution moves, old scores keep their share of the sample, and the ranks follow
    /// the new level only as the sample turns over (after about as many scores again as came before).
    Reservoir {
        /// Scores sampled (at least 1).
        window_size: usize,
    },
}

/// The text forms [`Calibration`] parses, for error messages.
const CALIBRATION_FORMS: &str = "accepted: zscore[:WINDOW] (running z-score over the last WINDOW scores, WINDOW >= \
                                 2), conformal[:WINDOW] (1 - the conformal p-value among the last WINDOW scores, \
                                 WINDOW >= 1) or reservoir[:WINDOW] (the same among a uniform sample of WINDOW of \
                                 all past scores); WINDOW 1000 when left out";

impl Calibration {
    /// The window length.
    pub fn window_size(&self) -> usize {
        match *self {
            Calibration::ZScore { window_size }
            | Calibration::Conformal { window_size }
            | Calibration::Reservoir { window_size } => window_size,
        }
    }

    /// Whether calibrated scores are `1 - p` for conformal p-values (over a recent window or a sample of
    /// the past: both are valid p-values on exchangeable scores).
    pub fn is_conformal(&self) -> bool {
        matches!(self, Calibration::Conformal { .. } | Calibration::Reservoir { .. })
    }

    /// Checks the window: at least two scores for a z-score, one for conformal p-values.
    pub fn validate(&self) -> Result<(), ParamError> {
        match *self {
            Calibration::ZScore { window_size } if window_size < 2 => Err(ParamError::invalid(
                "calibrate",
                format!("a z-score needs a window of at least 2 scores, got {window_size}"),
            )),
            Calibration::Conformal { window_size: 0 } | Calibration::Reservoir { window_size: 0 } => {
                Err(ParamError::invalid("calibrate", "a conformal window must hold at least one score"))
            }
            _ => Ok(()),
        }
    }
}

impl FromStr for Calibration {
    type Err = ParamError;

    fn from_str(text: &str) -> Result<Calibration, ParamError> {
        let t = text.trim();
        let bad = |what: String| ParamError::invalid("calibrate", format!("'{t}': {what}; {CALIBRATION_FORMS}"));
        let mut parts = t.split(':');
        let kind = parts.next().unwrap_or_default();
        let window_size = match parts.next() {
            None => 1000,
            Some(w) => w.parse::<usize>().map_err(|_| bad(format!("the window '{w}' is not a whole number")))?,
        };
        if let Some(extra) = parts.next() {
            return Err(bad(format!("'{extra}' is one part too many (METHOD:WINDOW at most)")));
        }
        let method = match kind {
            "zscore" => Calibration::ZScore { window_size },
            "conformal" => Calibration::Conformal { window_size },
            "reservoir" => Calibration::Reservoir { window_size },
            other => return Err(bad(format!("'{other}' is not a calibration method"))),
        };
        method.validate().map_err(|e| match e {
            ParamError::Invalid { reason, .. } => bad(reason),
            other => other,
        })?;
        Ok(method)
    }
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Calibration::ZScore { window_size } => write!(f, "zscore:{window_size}"),
            Calibration::Conformal { window_size } => write!(f, "conformal:{window_size}"),
            Calibration::Reservoir { window_size } => write!(f, "reservoir:{window_size}"),
        }
    }
}

/// `1 - p`, `p` the conformal p-value of `s` among the scores of `order`.
fn conformal(order: &OrderStats, s: f64) -> f64 {
    let n = order.len();
    let at_or_above = n - order.below(s).0;
    1.0 - (1 + at_or_above) as f64 / (1 + n) as f64
}

/// The fixed seed of the reservoir's draws (its runs are reproducible).
const RESERVOIR_SEED: u64 = 0x7265_7365_7276_6f69;

/// Raw scores beyond +-1e150 count as +-1e150 in z-scores, so that sums of squares over a window stay
/// finite (detectors give the largest finite value for infinite evidence).
#[inline]
fn moderate(s: f64) -> f64 {
    s.clamp(-1e150, 1e150)
}

/// The recent raw scores and what the method needs of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Reference {
    /// Arrival order with a sliding mean and sum of squared deviations, recomputed from the window every
    /// `window_size` scores so that rounding does not build up.
    Moments { scores: VecDeque<f64>, mean: f64, m2: f64, since_exact: usize },
    /// Arrival order and order statistics (for the count of scores at or above a value).
    Ranks(RollingWindow),
    /// A uniform sample of the scores so far, its order statistics, and the number of scores offered.
    Sample { slots: Vec<f64>, order: OrderStats, seen: u64 },
}

/// A calibration method's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    method: Calibration,
    reference: Reference,
}

impl Calibrator {
    /// Validates the method.
    pub fn new(method: Calibration) -> Result<Calibrator, ParamError> {
        method.validate()?;
        let reference = match method {
            Calibration::ZScore { window_size } => Reference::Moments {
                scores: VecDeque::with_capacity(window_size.min(1 << 16)),
                mean: 0.0,
                m2: 0.0,
                since_exact: 0,
            },
            Calibration::Conformal { window_size } => Reference::Ranks(RollingWindow::with_capacity(window_size)),
            Calibration::Reservoir { window_size } => Reference::Sample {
                slots: Vec::with_capacity(window_size.min(1 << 16)),
                order: OrderStats::with_capacity(window_size),
                seen: 0,
            },
        };
        Ok(Calibrator { method, reference })
    }

    /// The method.
    pub fn method(&self) -> Calibration {
        self.method
    }

    /// Raw scores in the window.
    pub fn len(&self) -> usize {
        match &self.reference {
            Reference::Moments { scores, .. } => scores.len(),
            Reference::Ranks(w) => w.len(),
            Reference::Sample { slots, .. } => slots.len(),
        }
    }

    /// True before the first score.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The calibrated value of the raw score `s` against the window (which it does not enter).
    pub fn calibrate(&self, s: f64) -> f64 {
        if !s.is_finite() {
            return 0.0;
        }
        match &self.reference {
            Reference::Moments { scores, mean, m2, .. } => {
                let n = scores.len();
                if n < 2 {
                    return 0.0;
                }
                let sd = (m2 / n as f64).max(0.0).sqrt();
                let z = if sd > 0.0 { (moderate(s) - mean) / sd } else { 0.0 };
                if z.is_nan() { 0.0 } else { z.clamp(-f64::MAX, f64::MAX) }
            }
            Reference::Ranks(w) => conformal(w.order(), s),
            Reference::Sample { order, .. } => conformal(order, s),
        }
    }

    /// Adds a raw score as the newest of the window (a score that is not finite is left out).
    pub fn record(&mut self, s: f64) {
        if !s.is_finite() {
            return;
        }
        let window = self.method.window_size();
        match &mut self.reference {
            Reference::Moments { scores, mean, m2, since_exact } => {
                let s = moderate(s);
                if scores.len() == window
                    && let Some(old) = scores.pop_front()
                {
                    let n = scores.len() as f64;
                    if n == 0.0 {
                        (*mean, *m2) = (0.0, 0.0);
                    } else {
                        let d = old - *mean;
                        *mean -= d / n;
                        *m2 -= d * (old - *mean);
                    }
                }
                scores.push_back(s);
                let n = scores.len() as f64;
                let d = s - *mean;
                *mean += d / n;
                *m2 += d * (s - *mean);
                *since_exact += 1;
                if *since_exact >= window {
                    let exact_mean = scores.iter().sum::<f64>() / n;
                    *m2 = scores.iter().map(|v| (v - exact_mean) * (v - exact_mean)).sum();
                    *mean = exact_mean;
                    *since_exact = 0;
                }
            }
            Reference::Ranks(w) => {
                w.push_bounded(s, window);
            }
            Reference::Sample { slots, order, seen } => {
                *seen += 1;
                if slots.len() < window {
                    slots.push(s);
                    order.insert(s);
                    return;
                }
                // Algorithm R: the n-th score replaces a uniform slot with probability window / n.
                let j = (crate::rng::unit_from_bits(crate::rng::mix64(RESERVOIR_SEED ^ *seen)) * *seen as f64) as u64;
                if let Some(slot) = slots.get_mut(j as usize) {
                    order.remove(*slot);
                    *slot = s;
                    order.insert(s);
                }
            }
        }
    }
}

/// Wraps a detector so that it scores with the calibrated value of its raw score (the `calibrate` node of
/// model trees is `Calibrated<AnyPipeline>`).
///
/// The window holds the raw score each learned row had before it was learned, the prequential score: so
/// `score_one` then `learn_one` (and `score_learn_one`) calibrate a row against the rows before it, and
/// `learn_one` alone costs one extra raw score. `learn_score_one` learns the row (its pre-learn score
/// entering the window), then calibrates its post-learn score.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::{Calibrated, Calibration, MovingAverageParams};
/// let base = MovingAverageParams { window_size: Some(20), ..Default::default() };
/// let model = base.build(&Schema::shared(["v"]).unwrap()).unwrap();
/// let mut m = Calibrated::new(model, Calibration::Conformal { window_size: 500 }).unwrap();
/// for i in 0..1000 {
///     m.score_learn_one(&[(i % 10) as f64]);
/// }
/// let spike = m.score_one(&[100.0]);
/// assert!(spike > 0.99 && spike < 1.0, "{spike}"); // higher than every recent score: p = 1 / 501
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrated<D> {
    inner: D,
    calibrator: Calibrator,
}

impl<D: Detector> Calibrated<D> {
    /// Wraps `inner` with a calibration method.
    pub fn new(inner: D, method: Calibration) -> Result<Self, ParamError> {
        Ok(Calibrated { inner, calibrator: Calibrator::new(method)? })
    }

    /// The wrapped detector.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The calibration state.
    pub fn calibrator(&self) -> &Calibrator {
        &self.calibrator
    }
}

impl<D: Detector> Detector for Calibrated<D> {
    fn learn_one(&mut self, x: &[f64]) {
        let raw = self.inner.score_learn_one(x);
        self.calibrator.record(raw);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.calibrator.calibrate(self.inner.score_one(x))
    }

    fn explanation_names(&self) -> Vec<String> {
        self.inner.explanation_names()
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        self.inner.explain_one(x, out)
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let raw = self.inner.score_learn_one(x);
        let s = self.calibrator.calibrate(raw);
        self.calibrator.record(raw);
        s
    }

    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        self.learn_one(x);
        self.score_one(x)
    }

    // Calibration depends only on the sequence of raw scores, so the inner model's batch methods serve
    // whenever they give the raw scores the calibrator needs, in order.
    fn learn_many(&mut self, batch: &Batch) {
        let mut raw = Vec::with_capacity(batch.num_rows());
        self.inner.score_learn_many(batch, &mut raw);
        raw.iter().for_each(|&s| self.calibrator.record(s));
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        let start = out.len();
        self.inner.score_many(batch, out);
        for s in &mut out[start..] {
            *s = self.calibrator.calibrate(*s);
        }
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        let start = out.len();
        self.inner.score_learn_many(batch, out);
        for s in &mut out[start..] {
            let raw = *s;
            *s = self.calibrator.calibrate(raw);
            self.calibrator.record(raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_parse_and_print_back() {
        for (text, method) in [
            ("zscore", Calibration::ZScore { window_size: 1000 }),
            (" conformal:7 ", Calibration::Conformal { window_size: 7 }),
            ("zscore:2", Calibration::ZScore { window_size: 2 }),
            ("reservoir", Calibration::Reservoir { window_size: 1000 }),
            ("reservoir:64", Calibration::Reservoir { window_size: 64 }),
        ] {
            let parsed: Calibration = text.parse().unwrap();
            assert_eq!(parsed, method, "{text}");
            assert_eq!(parsed.to_string().parse::<Calibration>().unwrap(), method);
        }
        for (text, part) in [
            ("", "'' is not a calibration method"),
            ("isotonic", "'isotonic' is not a calibration method"),
            ("zscore:1", "at least 2 scores"),
            ("conformal:0", "at least one score"),
            ("reservoir:0", "at least one score"),
            ("conformal:many", "the window 'many' is not a whole number"),
            ("zscore:5:6", "'6' is one part too many"),
        ] {
            let e = text.parse::<Calibration>().unwrap_err().to_string();
            assert!(e.contains(part) && e.contains("accepted: zscore[:WINDOW]"), "{text}: {e}");
        }
    }

    /// The window and the definitions, written out.
    fn reference(method: Calibration, past: &[f64], s: f64) -> f64 {
        let w = &past[past.len().saturating_sub(method.window_size())..];
        let n = w.len() as f64;
        match method {
            Calibration::ZScore { .. } => {
                if w.len() < 2 {
                    return 0.0;
                }
                let mean = w.iter().sum::<f64>() / n;
                let sd = (w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
                if sd > 0.0 { (s - mean) / sd } else { 0.0 }
            }
            Calibration::Conformal { .. } => 1.0 - (1.0 + w.iter().filter(|&&v| v >= s).count() as f64) / (1.0 + n),
            Calibration::Reservoir { .. } => unreachable!("a sample, not a window"),
        }
    }

    #[test]
    fn calibrated_values_follow_the_definitions_over_a_sliding_window() {
        let raw: Vec<f64> = (0..3000).map(|i| ((i * 7919) % 1009) as f64 * 0.01 + (i / 1000) as f64).collect();
        for method in [
            Calibration::ZScore { window_size: 2 },
            Calibration::ZScore { window_size: 250 },
            Calibration::Conformal { window_size: 1 },
            Calibration::Conformal { window_size: 300 },
        ] {
            let mut c = Calibrator::new(method).unwrap();
            for (i, &s) in raw.iter().enumerate() {
                let want = reference(method, &raw[..i], s);
                let got = c.calibrate(s);
                assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{method} row {i}: {got} vs {want}");
                c.record(s);
            }
            assert_eq!(c.len(), method.window_size().min(raw.len()));
        }
    }

    #[test]
    fn conformal_values_are_a_false_alarm_rate_on_exchangeable_scores() {
        // Scores of a stream without anomalies (a fixed pseudo-random permutation): p <= a for about a share
        // a of the rows.
        let mut c = Calibrator::new(Calibration::Conformal { window_size: 1000 }).unwrap();
        let (mut flagged, mut x) = (0, 12345u64);
        let n = 20_000;
        for i in 0..n + 1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let s = (x >> 11) as f64;
            if i >= 1000 && 1.0 - c.calibrate(s) <= 0.01 {
                flagged += 1;
            }
            c.record(s);
        }
        let rate = flagged as f64 / n as f64;
        assert!((0.005..=0.02).contains(&rate), "{rate}");
    }

    #[test]
    fn a_p_value_threshold_of_one_percent_flags_about_one_percent_of_a_clean_stream() {
        // KNN on the seeded synthetic stream without anomalies (slow drift included): flag a row when its
        // conformal p-value is at most 0.01, i.e. its calibrated score is at least 0.99.
        use onad_core::{DetectorParams, Schema};
        let stream = crate::synthetic::drifting_gaussian(30_000, 5, 0.0, 11);
        let knn = crate::KNNParams { k: Some(10), window_size: Some(500), warm_up: Some(10), ..Default::default() }
            .build(&Schema::numbered("f", 5))
            .unwrap();
        let mut m = Calibrated::new(knn, Calibration::Conformal { window_size: 1000 }).unwrap();
        let (mut flagged, mut scored) = (0, 0);
        for i in 0..stream.rows() {
            let s = m.score_learn_one(stream.row(i));
            if i >= 2000 {
                scored += 1;
                flagged += usize::from(s >= 0.99);
            }
        }
        let rate = flagged as f64 / scored as f64;
        assert!((0.005..=0.02).contains(&rate), "{flagged} of {scored} rows flagged: {rate}");
    }

    #[test]
    fn a_reservoir_samples_the_whole_past_and_keeps_ranks_high_through_a_burst() {
        // Exchangeable scores: the reservoir's p-values are false-alarm rates too.
        let mut c = Calibrator::new(Calibration::Reservoir { window_size: 1000 }).unwrap();
        let (mut flagged, mut x) = (0, 999u64);
        let uniform = |x: &mut u64| {
            *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (*x >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..21_000 {
            let s = uniform(&mut x);
            if i >= 1000 && 1.0 - c.calibrate(s) <= 0.01 {
                flagged += 1;
            }
            c.record(s);
        }
        let rate = flagged as f64 / 20_000.0;
        assert!((0.005..=0.02).contains(&rate), "{rate}");
        assert_eq!(c.len(), 1000);
        // Its sample is spread over all 21,000 scores offered: a burst of 500 equal high scores takes about
        // 500 / 21,500 of it, so the last of the burst still ranks above ~95 % of the sample, where the
        // last 1,000 scores of a window are half burst.
        let mut window = Calibrator::new(Calibration::Conformal { window_size: 1000 }).unwrap();
        for _ in 0..21_000 {
            window.record(uniform(&mut x));
        }
        for _ in 0..499 {
            c.record(10.0);
            window.record(10.0);
        }
        let (sampled, recent) = (c.calibrate(10.0), window.calibrate(10.0));
        assert!(sampled > 0.93 && recent < 0.51, "reservoir {sampled}, window {recent}");
        // The state round-trips and goes on drawing the same slots.
        let mut back: Calibrator = postcard::from_bytes(&postcard::to_stdvec(&c).unwrap()).unwrap();
        for i in 0..2_000 {
            let s = (i % 13) as f64;
            c.record(s);
            back.record(s);
        }
        assert_eq!(back, c);
    }

    #[test]
    fn non_finite_scores_calibrate_to_zero_and_stay_out() {
        let mut c = Calibrator::new(Calibration::ZScore { window_size: 10 }).unwrap();
        for s in [1.0, 2.0, f64::NAN, 3.0, f64::INFINITY] {
            c.record(s);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.calibrate(f64::NAN), 0.0);
        assert!((c.calibrate(2.0)).abs() < 1e-12);
    }
}
