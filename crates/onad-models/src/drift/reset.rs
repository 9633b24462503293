//! Drift-triggered resets: a wrapper that watches the prequential scores of the tree it wraps with a
//! drift detector, and when the detector signals a change, replaces the tree by a fresh one (optionally
//! trained at once on the most recent rows), so that a model that learned the old regime does not
//! misjudge the new one for as long as it takes to forget it.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use onad_core::{Detector, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::{AnyDetector, AnyPipeline, PipelineSpec};

/// What happens when the drift detector signals.
///
/// Written as text as `reset` (a fresh tree) or `rewarm:N` (a fresh tree that learns the last N rows at
/// once, the row that signalled included).
///
/// ```
/// use onad_models::OnDrift;
/// assert_eq!("rewarm:500".parse::<OnDrift>().unwrap(), OnDrift::Rewarm { rows: 500 });
/// assert_eq!(OnDrift::Reset.to_string(), "reset");
/// assert!("rewarm:0".parse::<OnDrift>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDrift {
    /// A fresh tree, as built from its spec.
    Reset,
    /// A fresh tree that learns the last `rows` rows before the next one.
    Rewarm {
        /// Rows kept and replayed (at least 1).
        rows: usize,
    },
}

const ON_DRIFT_FORMS: &str = "accepted: reset (a fresh model) or rewarm:N (a fresh model that learns the last N rows, N \
                              >= 1)";

impl FromStr for OnDrift {
    type Err = ParamError;

    fn from_str(text: &str) -> Result<OnDrift, ParamError> {
        let t = text.trim();
        let bad = |what: String| ParamError::invalid("on_drift", format!("'{t}': {what}; {ON_DRIFT_FORMS}"));
        match t.split_once(':') {
            None if t == "reset" => Ok(OnDrift::Reset),
            Some(("rewarm", n)) => match n.parse::<usize>() {
                Ok(0) => Err(bad("rewarm needs at least one row".into())),
                Ok(rows) => Ok(OnDrift::Rewarm { rows }),
                Err(_) => Err(bad(format!("the row count '{n}' is not a whole number"))),
            },
            None if t == "rewarm" => Err(bad("rewarm needs a row count, for example rewarm:500".into())),
            _ => Err(bad("not a reaction to drift".into())),
        }
    }
}

impl fmt::Display for OnDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnDrift::Reset => f.write_str("reset"),
            OnDrift::Rewarm { rows } => write!(f, "rewarm:{rows}"),
        }
    }
}

/// The one-column stream a drift wrapper's detector reads: the wrapped tree's scores.
pub const SCORE_COLUMN: &str = "score";

/// Whether a detector is a drift detector, and whether learning its last value signalled a change.
fn signalled(detector: &AnyDetector) -> Option<bool> {
    match detector {
        AnyDetector::ADWIN(d) => Some(d.drift_detected()),
        AnyDetector::KSWIN(d) => Some(d.drift_detected()),
        AnyDetector::PageHinkley(d) => Some(d.drift_detected()),
        _ => None,
    }
}

/// A tree whose prequential scores feed a drift detector; on a change the tree starts afresh (the
/// `drift` node of model trees). Its score is the tree's own.
///
/// Each learned row's score before learning (the prequential score) is the detector's next value, so
/// `learn_one` costs one extra score, and `score_learn_one` none. The spec and schema are kept to build the
/// fresh tree; `rewarm:N` keeps the last N rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftReset {
    spec: PipelineSpec,
    schema: SchemaRef,
    on_drift: OnDrift,
    detector: AnyDetector,
    model: AnyPipeline,
    /// The last rows, for `rewarm` (empty for `reset`).
    recent: VecDeque<Vec<f64>>,
    resets: u64,
}

impl DriftReset {
    /// Builds the tree of `spec` against `schema`, watched by `detector` (adwin, kswin or page_hinkley,
    /// built against the one column `score`).
    pub fn new(
        spec: PipelineSpec,
        schema: &SchemaRef,
        detector: AnyDetector,
        on_drift: OnDrift,
    ) -> Result<DriftReset, ParamError> {
        if signalled(&detector).is_none() {
            return Err(ParamError::invalid(
                "drift.detector",
                format!("'{}' is not a drift detector (adwin, kswin or page_hinkley)", detector.name()),
            ));
        }
        if let OnDrift::Rewarm { rows: 0 } = on_drift {
            return Err(ParamError::invalid("on_drift", "rewarm needs at least one row"));
        }
        let model = spec.build(schema)?;
        Ok(DriftReset { spec, schema: schema.clone(), on_drift, detector, model, recent: VecDeque::new(), resets: 0 })
    }

    /// The wrapped tree.
    pub fn inner(&self) -> &AnyPipeline {
        &self.model
    }

    /// Changes signalled, each of which replaced the tree.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// After the row `x`, whose prequential score was `raw`, was learned.
    fn after_learning(&mut self, x: &[f64], raw: f64) {
        if let OnDrift::Rewarm { rows } = self.on_drift {
            if self.recent.len() == rows
                && let Some(mut old) = self.recent.pop_front()
            {
                old.clear();
                old.extend_from_slice(x);
                self.recent.push_back(old);
            } else {
                self.recent.push_back(x.to_vec());
            }
        }
        self.detector.learn_one(&[raw]);
        if signalled(&self.detector) == Some(true) {
            self.resets += 1;
            // The spec built once already, against the same schema: it builds again.
            if let Ok(fresh) = self.spec.build(&self.schema) {
                self.model = fresh;
                for r in &self.recent {
                    self.model.learn_one(r);
                }
            }
        }
    }
}

impl Detector for DriftReset {
    fn learn_one(&mut self, x: &[f64]) {
        let raw = self.model.score_learn_one(x);
        self.after_learning(x, raw);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.model.score_one(x)
    }

    fn explanation_names(&self) -> Vec<String> {
        self.model.explanation_names()
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        self.model.explain_one(x, out)
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let raw = self.model.score_learn_one(x);
        self.after_learning(x, raw);
        raw
    }

    // Scoring learns nothing: the tree's own batch method. Learning goes row by row (the default), since
    // any row may replace the tree.
    fn score_many(&self, batch: &onad_core::Batch, out: &mut Vec<f64>) {
        self.model.score_many(batch, out);
    }
}
