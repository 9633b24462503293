//! Learn protection: a detector that does not learn the rows it scores as anomalous, so an attack or a
//! fault does not become "normal" by repetition (river's `protect_anomaly_detector`; none of the onad
//! family has it).

use std::fmt;
use std::str::FromStr;

use onad_core::rolling::{Interpolation, RollingWindow};
use onad_core::{Batch, Detector, ParamError};
use serde::{Deserialize, Serialize};

/// When a row counts as anomalous for learning purposes.
///
/// Written as text (`--protect`, config files) as a number `X` (scores above `X`) or `quantile:Q[:WINDOW]`
/// (scores above the `Q` quantile of the last `WINDOW` scores; 1000 when left out); its
/// [`Display`](fmt::Display) writes the form that parses back to the same rule.
///
/// ```
/// use onad_models::Protect;
/// let rule: Protect = "quantile:0.99".parse().unwrap();
/// assert_eq!(rule, Protect::Quantile { quantile: 0.99, window_size: 1000 });
/// assert_eq!(rule.to_string(), "quantile:0.99:1000");
/// assert_eq!("2.5".parse::<Protect>().unwrap(), Protect::Above { threshold: 2.5 });
/// assert!("quantile:1.5".parse::<Protect>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protect {
    /// The score is strictly above a fixed value.
    Above {
        /// The fixed threshold.
        threshold: f64,
    },
    /// The score is strictly above the `quantile` of the last `window_size` scores (all rows' scores,
    /// learned or not). Everything is learned until `min(window_size, 30)` scores have been seen.
    Quantile {
        /// The quantile, in (0, 1).
        quantile: f64,
        /// Recent scores kept.
        window_size: usize,
    },
}

/// The text forms [`Protect`] parses, for error messages.
const PROTECT_FORMS: &str = "accepted: a number X (learn only scores not above X) or quantile:Q[:WINDOW] (learn only \
                             scores not above the Q quantile, 0 < Q < 1, of the last WINDOW scores; WINDOW 1000 \
                             when left out)";

impl Protect {
    /// Checks the rule's values: a threshold that is not NaN, a quantile in (0, 1), a window of at least
    /// one score.
    pub fn validate(&self) -> Result<(), ParamError> {
        match *self {
            Protect::Above { threshold } if threshold.is_nan() => {
                Err(ParamError::invalid("protect", "the threshold must not be NaN"))
            }
            Protect::Quantile { quantile, .. } if !(quantile > 0.0 && quantile < 1.0) => {
                Err(ParamError::invalid("protect", format!("the quantile must be in (0, 1), got {quantile}")))
            }
            Protect::Quantile { window_size: 0, .. } => {
                Err(ParamError::invalid("protect", "the window must hold at least one score"))
            }
            _ => Ok(()),
        }
    }
}

impl FromStr for Protect {
    type Err = ParamError;

    /// Parses `X` or `quantile:Q[:WINDOW]` (surrounding spaces ignored) and validates the values.
    fn from_str(text: &str) -> Result<Protect, ParamError> {
        let t = text.trim();
        let bad = |what: String| ParamError::invalid("protect", format!("'{t}': {what}; {PROTECT_FORMS}"));
        let rule = if let Ok(threshold) = t.parse::<f64>() {
            Protect::Above { threshold }
        } else {
            let mut parts = t.split(':');
            let kind = parts.next().unwrap_or_default();
            if kind != "quantile" {
                return Err(bad(format!("'{kind}' is neither a number nor 'quantile'")));
            }
            let quantile = match parts.next() {
                None => return Err(bad("quantile needs a value, for example quantile:0.95".into())),
                Some(q) => q.parse::<f64>().map_err(|_| bad(format!("the quantile '{q}' is not a number")))?,
            };
            let window_size = match parts.next() {
                None => 1000,
                Some(w) => w.parse::<usize>().map_err(|_| bad(format!("the window '{w}' is not a whole number")))?,
            };
            if let Some(extra) = parts.next() {
                return Err(bad(format!("'{extra}' is one part too many (quantile:Q:WINDOW at most)")));
            }
            Protect::Quantile { quantile, window_size }
        };
        rule.validate().map_err(|e| match e {
            ParamError::Invalid { reason, .. } => bad(reason),
            other => other,
        })?;
        Ok(rule)
    }
}

impl fmt::Display for Protect {
    /// `X` or `quantile:Q:WINDOW`, which [`FromStr`] reads back to the same rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protect::Above { threshold } => write!(f, "{threshold}"),
            Protect::Quantile { quantile, window_size } => write!(f, "quantile:{quantile}:{window_size}"),
        }
    }
}

/// The state of a learn-protection rule: which rows may be learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    rule: Protect,
    /// The recent scores of a quantile rule (serialized as the arrival-ordered scores, then their order
    /// statistics: the layout of the two fields it replaced).
    scores: RollingWindow,
    protected: u64,
}

impl Guard {
    /// Validates the rule.
    pub fn new(rule: Protect) -> Result<Guard, ParamError> {
        rule.validate()?;
        let capacity = match rule {
            Protect::Quantile { window_size, .. } => window_size,
            Protect::Above { .. } => 0,
        };
        Ok(Guard { rule, scores: RollingWindow::with_capacity(capacity), protected: 0 })
    }

    /// The rule.
    pub fn rule(&self) -> &Protect {
        &self.rule
    }

    /// Rows kept from learning so far.
    pub fn protected(&self) -> u64 {
        self.protected
    }

    /// Records a score and says whether its row may be learned.
    pub fn admit(&mut self, score: f64) -> bool {
        let allowed = match &self.rule {
            Protect::Above { threshold } => not_above(score, *threshold),
            Protect::Quantile { quantile, window_size } => {
                let (q, w) = (*quantile, *window_size);
                let warm = self.scores.len() >= w.min(30);
                let allowed =
                    !warm || self.scores.quantile(q, Interpolation::NearerEnd).is_none_or(|t| not_above(score, t));
                self.scores.push_bounded(score, w);
                allowed
            }
        };
        self.protected += u64::from(!allowed);
        allowed
    }
}

/// True unless `score` is strictly above `threshold` (NaN scores are not above anything).
fn not_above(score: f64, threshold: f64) -> bool {
    score.partial_cmp(&threshold) != Some(std::cmp::Ordering::Greater)
}

/// Wraps a detector so that it learns a row only when its own score does not flag it (the `protect` node
/// of model trees is `Protected<AnyPipeline>`). `learn_score_one` learns the row (if admitted), then scores
/// it.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::{MovingAverageParams, Protect, Protected};
/// let base = MovingAverageParams { window_size: Some(10), ..Default::default() };
/// let model = base.build(&Schema::shared(["v"]).unwrap()).unwrap();
/// let mut guarded = Protected::new(model, Protect::Above { threshold: 1.0 }).unwrap();
/// for _ in 0..10 {
///     guarded.learn_one(&[0.0]);
/// }
/// // A burst of 50s is never learned, so it keeps scoring high.
/// for _ in 0..20 {
///     guarded.learn_one(&[50.0]);
/// }
/// assert!(guarded.score_one(&[50.0]) > 4.0);
/// assert_eq!(guarded.guard().protected(), 20);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protected<D> {
    inner: D,
    guard: Guard,
}

impl<D: Detector> Protected<D> {
    /// Wraps `inner` with a protection rule.
    pub fn new(inner: D, rule: Protect) -> Result<Self, ParamError> {
        Ok(Protected { inner, guard: Guard::new(rule)? })
    }

    /// Puts back together a wrapper whose guard was saved with it (migrated checkpoints).
    pub(crate) fn from_parts(inner: D, guard: Guard) -> Self {
        Protected { inner, guard }
    }

    /// The wrapped detector.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The protection state.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}

impl<D: Detector> Detector for Protected<D> {
    fn learn_one(&mut self, x: &[f64]) {
        let s = self.inner.score_one(x);
        if self.guard.admit(s) {
            self.inner.learn_one(x);
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.inner.score_one(x)
    }

    fn explanation_names(&self) -> Vec<String> {
        self.inner.explanation_names()
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        self.inner.explain_one(x, out)
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let s = self.inner.score_one(x);
        if self.guard.admit(s) {
            self.inner.learn_one(x);
        }
        s
    }

    // Scoring learns nothing, so a batch is scored by the inner model's own batch method. Every other batch
    // method goes row by row (the default): the guard decides from each row's score whether it is learned.
    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        self.inner.score_many(batch, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protect_parses_the_cli_forms_and_prints_them_back() {
        let cases = [
            ("3", Protect::Above { threshold: 3.0 }),
            (" -0.25 ", Protect::Above { threshold: -0.25 }),
            ("1e3", Protect::Above { threshold: 1000.0 }),
            ("inf", Protect::Above { threshold: f64::INFINITY }),
            ("quantile:0.95", Protect::Quantile { quantile: 0.95, window_size: 1000 }),
            ("quantile:0.5:7", Protect::Quantile { quantile: 0.5, window_size: 7 }),
        ];
        for (text, rule) in cases {
            let parsed: Protect = text.parse().unwrap();
            assert_eq!(parsed, rule, "{text}");
            assert_eq!(parsed.to_string().parse::<Protect>().unwrap(), rule, "{text} -> {parsed}");
        }
        assert_eq!(Protect::Quantile { quantile: 0.95, window_size: 1000 }.to_string(), "quantile:0.95:1000");
        assert_eq!(Protect::Above { threshold: 1e-7 }.to_string().parse::<Protect>().unwrap().to_string(), "0.0000001");
    }

    #[test]
    fn protect_errors_name_the_bad_part_and_list_the_forms() {
        for (text, part) in [
            ("", "'' is neither a number nor 'quantile'"),
            ("above:3", "'above' is neither a number nor 'quantile'"),
            ("NaN", "the threshold must not be NaN"),
            ("quantile", "quantile needs a value"),
            ("quantile:high", "the quantile 'high' is not a number"),
            ("quantile:0.9:many", "the window 'many' is not a whole number"),
            ("quantile:0.9:-5", "the window '-5' is not a whole number"),
            ("quantile:0.9:100:3", "'3' is one part too many"),
            ("quantile:1.5", "the quantile must be in (0, 1), got 1.5"),
            ("quantile:0", "the quantile must be in (0, 1), got 0"),
            ("quantile:0.9:0", "the window must hold at least one score"),
        ] {
            let err = text.parse::<Protect>().unwrap_err().to_string();
            assert!(err.contains(part), "{text}: {err}");
            assert!(err.contains(&format!("'{}'", text.trim())), "{text}: {err}");
            assert!(err.contains("accepted: a number X") && err.contains("quantile:Q[:WINDOW]"), "{text}: {err}");
        }
        // The same checks guard a rule built in code.
        assert!(Guard::new(Protect::Quantile { quantile: 0.9, window_size: 0 }).is_err());
        assert!(Guard::new(Protect::Above { threshold: f64::NAN }).is_err());
        assert_eq!(Guard::new(Protect::Above { threshold: 2.0 }).unwrap().rule(), &Protect::Above { threshold: 2.0 });
    }
}
