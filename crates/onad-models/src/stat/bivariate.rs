//! MovingCovariance and MovingCorrelationCoefficient: how much one point would change the covariance or
//! the Pearson correlation of two features over the recent window. O(1) per event: shifted running sums of
//! both features, their squares and their product, recomputed exactly once per `window_size` learns.

use std::collections::VecDeque;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::window_size;
use crate::registry::{Describe, finite_score};

/// Resolves the two features: `keys` by name, or the input's two columns.
fn two_columns(keys: &Option<Vec<String>>, schema: &SchemaRef) -> Result<[usize; 2], ParamError> {
    match keys {
        Some(k) if k.len() == 2 => Ok([schema.resolve("keys", &k[0])?, schema.resolve("keys", &k[1])?]),
        Some(k) => Err(ParamError::invalid("keys", format!("needs exactly two feature names, got {}", k.len()))),
        None if schema.len() == 2 => Ok([0, 1]),
        None => Err(ParamError::Schema(format!(
            "a bivariate model needs exactly two features or 'keys' naming two; the input has {} ({})",
            schema.len(),
            schema.names().join(", ")
        ))),
    }
}

/// Centred sums of a window of pairs, plus one optional extra pair.
#[derive(Debug, Clone, Copy)]
struct Centred {
    n: f64,
    saa: f64,
    sbb: f64,
    sab: f64,
}

/// The window of pairs and its shifted sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PairWindow {
    columns: [usize; 2],
    window_size: usize,
    window: VecDeque<[f64; 2]>,
    shift: [f64; 2],
    sums: [f64; 5], // a, b, aa, bb, ab (shifted)
    since_resync: usize,
}

impl PairWindow {
    fn new(columns: [usize; 2], window_size: usize) -> Self {
        PairWindow {
            columns,
            window_size,
            window: VecDeque::with_capacity(window_size.min(1 << 16)),
            shift: [0.0; 2],
            sums: [0.0; 5],
            since_resync: 0,
        }
    }

    fn add(&mut self, p: [f64; 2], sign: f64) {
        let (a, b) = (p[0] - self.shift[0], p[1] - self.shift[1]);
        for (s, v) in self.sums.iter_mut().zip([a, b, a * a, b * b, a * b]) {
            *s += sign * v;
        }
    }

    fn learn(&mut self, x: &[f64]) {
        let p = [x[self.columns[0]], x[self.columns[1]]];
        if !(p[0].is_finite() && p[1].is_finite()) {
            return;
        }
        if self.window.is_empty() {
            self.shift = p;
            self.sums = [0.0; 5];
        }
        if self.window.len() == self.window_size
            && let Some(old) = self.window.pop_front()
        {
            self.add(old, -1.0);
        }
        self.window.push_back(p);
        self.add(p, 1.0);
        self.since_resync += 1;
        if self.since_resync >= self.window_size {
            self.shift = p;
            self.sums = [0.0; 5];
            for q in self.window.clone() {
                self.add(q, 1.0);
            }
            self.since_resync = 0;
        }
    }

    /// Centred sums of the window, with `extra` added when given.
    fn centred(&self, extra: Option<[f64; 2]>) -> Centred {
        let mut s = self.sums;
        let mut n = self.window.len() as f64;
        if let Some(p) = extra {
            let (a, b) = (p[0] - self.shift[0], p[1] - self.shift[1]);
            for (t, v) in s.iter_mut().zip([a, b, a * a, b * b, a * b]) {
                *t += v;
            }
            n += 1.0;
        }
        Centred { n, saa: s[2] - s[0] * s[0] / n, sbb: s[3] - s[1] * s[1] / n, sab: s[4] - s[0] * s[1] / n }
    }

    fn point(&self, x: &[f64]) -> [f64; 2] {
        [x[self.columns[0]], x[self.columns[1]]]
    }
}

macro_rules! bivariate_params {
    ($(#[$meta:meta])* $name:ident, $summary:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// Number of recent points kept (required).
            pub window_size: Option<usize>,
            /// True: population statistics (ddof 0); false: Bessel's correction (ddof 1).
            pub bias: bool,
            /// The two features; may be omitted when the input has exactly two.
            pub keys: Option<Vec<String>>,
            /// Score the absolute change (true) or the signed change (false).
            pub abs_diff: bool,
        }

        impl Default for $name {
            fn default() -> Self {
                $name { window_size: None, bias: true, keys: None, abs_diff: true }
            }
        }

        impl Describe for $name {
            const SUMMARY: &'static str = $summary;
            const PARAMS: &'static [ParamDoc] = &[
                ParamDoc { name: "window_size", ty: "int >= 1", required: true, help: "number of recent points kept" },
                ParamDoc { name: "bias", ty: "bool", required: false, help: "population statistics (else ddof 1)" },
                ParamDoc { name: "keys", ty: "[feature, feature]", required: false, help: "the two features; optional when the input has two" },
                ParamDoc { name: "abs_diff", ty: "bool", required: false, help: "score the absolute change (else signed)" },
            ];
            fn example() -> Self {
                $name { window_size: Some(50), keys: Some(vec!["f1".into(), "f2".into()]), ..Default::default() }
            }
        }
    };
}

bivariate_params!(
    /// Hyperparameters of [`MovingCovariance`] (Python onad names and defaults).
    MovingCovarianceParams, "change of the moving covariance of two features"
);
bivariate_params!(
    /// Hyperparameters of [`MovingCorrelationCoefficient`] (Python onad names and defaults).
    MovingCorrelationCoefficientParams, "change of the moving Pearson correlation of two features"
);

/// Scores `cov(W ∪ {x}) - cov(W)` for two features over the last `window_size` points (ddof 0 when `bias`,
/// else 1); 0.0 while the window holds fewer than two points (Python onad `MovingCovariance`).
///
/// Deviation from onad 0.3.0: `keys` works (onad never creates its windows when `keys` is given and fails
/// with `KeyError`); points with a missing value are not learned.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingCovarianceParams;
/// let params = MovingCovarianceParams { window_size: Some(10), ..Default::default() };
/// let mut m = params.build(&Schema::shared(["x", "y"]).unwrap()).unwrap();
/// for i in 0..10 {
///     m.learn_one(&[i as f64, 2.0 * i as f64]);
/// }
/// // A point far off the line moves the covariance more than one on it.
/// assert!(m.score_one(&[20.0, -20.0]) > m.score_one(&[10.0, 20.0]));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovingCovariance {
    pairs: PairWindow,
    ddof: f64,
    abs_diff: bool,
}

/// Scores `corr(W ∪ {x}) - corr(W)`, Pearson correlations of two features over the last `window_size`
/// points; a correlation is 0 for fewer than two points or a zero standard deviation (Python onad
/// `MovingCorrelationCoefficient`). `bias` does not change the result (it cancels), as in onad.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MovingCorrelationCoefficientParams;
/// let params = MovingCorrelationCoefficientParams { window_size: Some(20), ..Default::default() };
/// let mut m = params.build(&Schema::shared(["x", "y"]).unwrap()).unwrap();
/// for i in 0..20 {
///     m.learn_one(&[i as f64, 3.0 * i as f64 + 1.0]); // correlation 1
/// }
/// assert!(m.score_one(&[20.0, 61.0]) < 1e-9); // on the line: still 1
/// assert!(m.score_one(&[20.0, -50.0]) > 0.3); // off the line: correlation drops
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovingCorrelationCoefficient {
    pairs: PairWindow,
    abs_diff: bool,
}

impl DetectorParams for MovingCovarianceParams {
    type Model = MovingCovariance;
    fn build(&self, schema: &SchemaRef) -> Result<MovingCovariance, ParamError> {
        let w = window_size(self.window_size)?;
        Ok(MovingCovariance {
            pairs: PairWindow::new(two_columns(&self.keys, schema)?, w),
            ddof: if self.bias { 0.0 } else { 1.0 },
            abs_diff: self.abs_diff,
        })
    }
}

impl DetectorParams for MovingCorrelationCoefficientParams {
    type Model = MovingCorrelationCoefficient;
    fn build(&self, schema: &SchemaRef) -> Result<MovingCorrelationCoefficient, ParamError> {
        let w = window_size(self.window_size)?;
        Ok(MovingCorrelationCoefficient {
            pairs: PairWindow::new(two_columns(&self.keys, schema)?, w),
            abs_diff: self.abs_diff,
        })
    }
}

impl Detector for MovingCovariance {
    fn learn_one(&mut self, x: &[f64]) {
        self.pairs.learn(x);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let p = self.pairs.point(x);
        if self.pairs.window.len() < 2 || p.iter().any(|v| v.is_nan()) {
            return 0.0;
        }
        let (before, after) = (self.pairs.centred(None), self.pairs.centred(Some(p)));
        let d = after.sab / (after.n - self.ddof) - before.sab / (before.n - self.ddof);
        finite_score(if self.abs_diff { d.abs() } else { d })
    }
}

fn correlation(c: Centred) -> f64 {
    if c.n < 2.0 || c.saa <= 0.0 || c.sbb <= 0.0 {
        return 0.0;
    }
    c.sab / (c.saa.sqrt() * c.sbb.sqrt())
}

impl Detector for MovingCorrelationCoefficient {
    fn learn_one(&mut self, x: &[f64]) {
        self.pairs.learn(x);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let p = self.pairs.point(x);
        if self.pairs.window.is_empty() || p.iter().any(|v| v.is_nan()) {
            return 0.0;
        }
        let d = correlation(self.pairs.centred(Some(p))) - correlation(self.pairs.centred(None));
        finite_score(if self.abs_diff { d.abs() } else { d })
    }
}
