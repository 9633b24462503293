//! Page-Hinkley: a cumulative-sum test for a change in the mean of one stream.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::flag_score;
use crate::registry::Describe;
use crate::stat::univariate_column;

/// Which direction of change [`PageHinkley`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageHinkleyMode {
    /// Increases of the mean.
    Up,
    /// Decreases of the mean.
    Down,
    /// Both (the default).
    Both,
}

/// Hyperparameters of [`PageHinkley`] (aberrant 1.3.0's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PageHinkleyParams {
    /// Values learned (since the last change) before the test runs (default 30).
    pub min_instances: usize,
    /// Size of a change tolerated: subtracted from (added to) every deviation (default 0.005).
    pub delta: f64,
    /// The test's level lambda (default 50.0).
    pub threshold: f64,
    /// Forgetting factor of the cumulative sums, in (0, 1] (default 0.9999).
    pub alpha: f64,
    /// `up`, `down` or `both` (default `both`).
    pub mode: PageHinkleyMode,
    /// The feature to read; may be omitted when the input has exactly one feature.
    pub key: Option<String>,
}

impl Default for PageHinkleyParams {
    fn default() -> Self {
        PageHinkleyParams {
            min_instances: 30,
            delta: 0.005,
            threshold: 50.0,
            alpha: 0.9999,
            mode: PageHinkleyMode::Both,
            key: None,
        }
    }
}

/// The Page-Hinkley test (Page 1954, "Continuous inspection schemes", Biometrika 41; in the form of
/// Mouss et al. 2004 used by river and aberrant) on one column.
///
/// With `m_t` the running mean of the values since the last change, it keeps two sums with forgetting
/// factor `alpha`: `U_t = alpha U_{t-1} + (x_t - m_t - delta)` and `L_t = alpha L_{t-1} + (x_t - m_t +
/// delta)`, and their running minimum and maximum. Once `min_instances` values are in, an increase is
/// signalled when `U_t - min U > threshold`, a decrease when `max L - L_t > threshold` (by `mode`). After
/// a signal the next learned value starts afresh (mean, sums, extrema), keeping the count of changes.
///
/// Score: the larger of `(U - min U) / threshold` and `(max L - L) / threshold` (the ones `mode` tests)
/// after learning `x`, computed without learning it; `>= 1.0` exactly when learning `x` would signal
/// (see [`super`]). 0.0 while fewer than `min_instances` values would be in.
///
/// Cost: O(1) per learn and score; a few numbers of state.
///
/// Missing values: NaN and infinite values are neither learned nor scored (0.0); aberrant raises.
///
/// Deviations from aberrant 1.3.0: none in what is learned (same change points on the same stream,
/// checked by a fidelity test); the column is chosen by `key`; aberrant's running mean has an
/// overflow-safe branch for a difference that overflows, kept here.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::PageHinkleyParams;
/// let mut ph = PageHinkleyParams::default().build(&Schema::shared(["score"]).unwrap()).unwrap();
/// let mut changes = vec![];
/// for i in 0..200 {
///     let x = if i < 100 { 0.0 } else { 2.0 };
///     let would_signal = ph.score_one(&[x]) >= 1.0;
///     ph.learn_one(&[x]);
///     assert_eq!(would_signal, ph.drift_detected());
///     if ph.drift_detected() {
///         changes.push(i);
///     }
/// }
/// assert_eq!(changes, [128]); // aberrant 1.3.0: 128
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PageHinkleyState")]
pub struct PageHinkley {
    column: usize,
    min_instances: usize,
    delta: f64,
    threshold: f64,
    alpha: f64,
    mode: PageHinkleyMode,
    sums: Sums,
    drift_detected: bool,
    n_detections: u64,
}

/// What a learned value changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sums {
    /// Values since the last change.
    n: u64,
    mean: f64,
    up: f64,
    down: f64,
    /// Minimum of `up` and maximum of `down` since the last change (meaningless while `n == 0`).
    min_up: f64,
    max_down: f64,
}

const FRESH: Sums = Sums { n: 0, mean: 0.0, up: 0.0, down: 0.0, min_up: 0.0, max_down: 0.0 };

/// The serialized form, checked when decoded.
#[derive(Deserialize)]
struct PageHinkleyState {
    column: usize,
    min_instances: usize,
    delta: f64,
    threshold: f64,
    alpha: f64,
    mode: PageHinkleyMode,
    sums: Sums,
    drift_detected: bool,
    n_detections: u64,
}

impl TryFrom<PageHinkleyState> for PageHinkley {
    type Error = String;
    fn try_from(s: PageHinkleyState) -> Result<Self, String> {
        let params_ok = s.min_instances >= 1
            && s.delta >= 0.0
            && s.delta.is_finite()
            && s.threshold > 0.0
            && s.threshold.is_finite()
            && s.alpha > 0.0
            && s.alpha <= 1.0;
        if !params_ok {
            return Err("page_hinkley state: a parameter is out of range".into());
        }
        Ok(PageHinkley {
            column: s.column,
            min_instances: s.min_instances,
            delta: s.delta,
            threshold: s.threshold,
            alpha: s.alpha,
            mode: s.mode,
            sums: s.sums,
            drift_detected: s.drift_detected,
            n_detections: s.n_detections,
        })
    }
}

impl DetectorParams for PageHinkleyParams {
    type Model = PageHinkley;
    fn build(&self, schema: &SchemaRef) -> Result<PageHinkley, ParamError> {
        if self.min_instances == 0 {
            return Err(ParamError::invalid("min_instances", "must be at least 1, got 0"));
        }
        if !(self.delta >= 0.0 && self.delta.is_finite()) {
            return Err(ParamError::invalid("delta", format!("must be finite and >= 0, got {}", self.delta)));
        }
        if !(self.threshold > 0.0 && self.threshold.is_finite()) {
            return Err(ParamError::invalid("threshold", format!("must be finite and > 0, got {}", self.threshold)));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(ParamError::invalid("alpha", format!("must be in (0, 1], got {}", self.alpha)));
        }
        Ok(PageHinkley {
            column: univariate_column(self.key.as_deref(), schema)?,
            min_instances: self.min_instances,
            delta: self.delta,
            threshold: self.threshold,
            alpha: self.alpha,
            mode: self.mode,
            sums: FRESH,
            drift_detected: false,
            n_detections: 0,
        })
    }
}

impl PageHinkley {
    /// Whether the last learned row signalled a change.
    pub fn drift_detected(&self) -> bool {
        self.drift_detected
    }

    /// Changes signalled so far.
    pub fn n_detections(&self) -> u64 {
        self.n_detections
    }

    /// The running mean since the last change (aberrant's `mean`).
    pub fn mean(&self) -> f64 {
        self.sums.mean
    }

    /// The sums after learning `x` (finite), from the state before.
    fn step(&self, x: f64) -> Sums {
        // After a change the next value starts afresh (aberrant's soft reset).
        let s = if self.drift_detected { FRESH } else { self.sums };
        let n = s.n + 1;
        let nf = n as f64;
        let difference = x - s.mean;
        let mean = if difference.abs() == f64::INFINITY {
            s.mean * ((nf - 1.0) / nf) + x / nf
        } else {
            s.mean + difference / nf
        };
        let up = self.alpha * s.up + (x - mean - self.delta);
        let down = self.alpha * s.down + (x - mean + self.delta);
        let (min_up, max_down) = if s.n == 0 { (up, down) } else { (s.min_up.min(up), s.max_down.max(down)) };
        Sums { n, mean, up, down, min_up, max_down }
    }

    /// Whether these sums signal, and the statistic relative to `threshold`.
    fn test(&self, s: &Sums) -> (bool, f64) {
        if s.n < self.min_instances as u64 {
            return (false, 0.0);
        }
        let up = s.up - s.min_up;
        let down = s.max_down - s.down;
        let (signals, stat) = match self.mode {
            PageHinkleyMode::Up => (up > self.threshold, up),
            PageHinkleyMode::Down => (down > self.threshold, down),
            PageHinkleyMode::Both => (up > self.threshold || down > self.threshold, up.max(down)),
        };
        (signals, stat / self.threshold)
    }
}

impl Detector for PageHinkley {
    fn learn_one(&mut self, x: &[f64]) {
        let v = x[self.column];
        if !v.is_finite() {
            return;
        }
        self.sums = self.step(v);
        let (signals, _) = self.test(&self.sums);
        self.drift_detected = signals;
        self.n_detections += u64::from(signals);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let v = x[self.column];
        if !v.is_finite() {
            return 0.0;
        }
        let (signals, ratio) = self.test(&self.step(v));
        flag_score(ratio, signals)
    }
}

impl Describe for PageHinkleyParams {
    const REFERENCE: &'static str = "Page 1954, Continuous Inspection Schemes (Biometrika 41)";
    const SUMMARY: &'static str = "Page-Hinkley test for a change in the mean of one column (drift detector)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "min_instances",
            ty: "int >= 1",
            required: false,
            help: "values since the last change before testing (30)",
        },
        ParamDoc { name: "delta", ty: "float >= 0", required: false, help: "size of change tolerated (0.005)" },
        ParamDoc { name: "threshold", ty: "float > 0", required: false, help: "level lambda of the test (50.0)" },
        ParamDoc {
            name: "alpha",
            ty: "float in (0, 1]",
            required: false,
            help: "forgetting factor of the cumulative sums (0.9999)",
        },
        ParamDoc { name: "mode", ty: "\"up\" | \"down\" | \"both\"", required: false, help: "direction (both)" },
        ParamDoc {
            name: "key",
            ty: "feature name",
            required: false,
            help: "feature to read; optional when the input has one feature",
        },
    ];
    fn example() -> Self {
        PageHinkleyParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::test_support::stream;
    use onad_core::Schema;

    fn build(p: PageHinkleyParams) -> PageHinkley {
        p.build(&Schema::shared(["v"]).unwrap()).unwrap()
    }

    fn changes(m: &mut PageHinkley, xs: &[f64]) -> Vec<usize> {
        crate::drift::test_support::changes(m, xs, PageHinkley::drift_detected)
    }

    #[test]
    fn finds_mean_shifts_in_the_direction_asked() {
        let xs = stream(3);
        let both = changes(&mut build(PageHinkleyParams::default()), &xs);
        assert!(both.iter().any(|&i| (1000..1100).contains(&i)), "{both:?}");
        assert!(both.iter().any(|&i| (2000..2100).contains(&i)), "{both:?}");
        assert!(!both.iter().any(|&i| i < 1000), "{both:?}");
        let mut up = build(PageHinkleyParams { mode: PageHinkleyMode::Up, ..Default::default() });
        let ups = changes(&mut up, &xs[..2000]);
        assert!(!ups.is_empty() && ups.iter().all(|&i| i >= 1000), "{ups:?}");
        let mut down = build(PageHinkleyParams { mode: PageHinkleyMode::Down, ..Default::default() });
        assert!(changes(&mut down, &xs[..2000]).is_empty(), "an increase is not a decrease");
        assert_eq!(up.n_detections(), ups.len() as u64);
    }

    #[test]
    fn waits_for_min_instances_and_restarts_after_a_change() {
        let mut m = build(PageHinkleyParams { min_instances: 10, threshold: 1.0, ..Default::default() });
        for i in 0..9 {
            m.learn_one(&[if i < 5 { 0.0 } else { 100.0 }]);
            assert!(!m.drift_detected());
        }
        assert_eq!(m.score_one(&[100.0]), flag_score(m.test(&m.step(100.0)).1, true));
        m.learn_one(&[100.0]);
        assert!(m.drift_detected());
        // The next value starts afresh: one value is below min_instances again.
        assert_eq!(m.score_one(&[0.0]), 0.0);
        m.learn_one(&[0.0]);
        assert!(!m.drift_detected());
        assert_eq!((m.sums.n, m.n_detections()), (1, 1));
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut m = build(PageHinkleyParams::default());
        m.learn_one(&[1.0]);
        let before = m.clone();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(m.score_one(&[v]), 0.0);
            m.learn_one(&[v]);
        }
        assert_eq!(m, before);
    }

    #[test]
    fn parameters_are_checked_by_name() {
        let schema = Schema::shared(["v"]).unwrap();
        for (p, name) in [
            (PageHinkleyParams { min_instances: 0, ..Default::default() }, "min_instances"),
            (PageHinkleyParams { delta: -1.0, ..Default::default() }, "delta"),
            (PageHinkleyParams { threshold: 0.0, ..Default::default() }, "threshold"),
            (PageHinkleyParams { alpha: 0.0, ..Default::default() }, "alpha"),
            (PageHinkleyParams { alpha: 1.5, ..Default::default() }, "alpha"),
        ] {
            let e = p.build(&schema).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        let json = r#"{"mode": "up", "threshold": 10.0}"#;
        let p: PageHinkleyParams = serde_json::from_str(json).unwrap();
        assert_eq!((p.mode, p.threshold, p.min_instances), (PageHinkleyMode::Up, 10.0, 30));
        assert!(serde_json::from_str::<PageHinkleyParams>(r#"{"mode": "sideways"}"#).is_err());
    }
}
