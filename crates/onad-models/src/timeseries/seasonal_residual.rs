//! SeasonalResidualDetector: scores the one-step-ahead residual of an additive Holt-Winters forecaster
//! (aberrant 1.3.0's `SeasonalResidualDetector`).

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::stat::univariate_column;

/// The longest season accepted (the warm-up holds two seasons of values).
const MAX_SEASON: usize = 1 << 24;

/// Hyperparameters of [`SeasonalResidualDetector`] (aberrant 1.3.0 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeasonalResidualDetectorParams {
    /// Observations per cycle (required), `>= 2`: 288 for a daily cycle of 5-minute samples.
    pub season_length: Option<usize>,
    /// The series' column; `None` needs a schema of exactly one column.
    pub key: Option<String>,
    /// Level smoothing weight, in `[0, 1]`.
    pub alpha: f64,
    /// Trend smoothing weight (FPP3's beta*), in `[0, 1]`.
    pub beta: f64,
    /// Seasonal smoothing weight, in `[0, 1 - alpha]`.
    pub gamma: f64,
    /// Weight of the newest absolute error in the residual scale, in `(0, 1]`.
    pub residual_alpha: f64,
    /// Floor of the residual scale, in input units, `> 0`.
    pub min_scale: f64,
    /// Divide the absolute residual by the residual scale (true) or return it in input units (false).
    pub normalize: bool,
}

impl Default for SeasonalResidualDetectorParams {
    fn default() -> Self {
        SeasonalResidualDetectorParams {
            season_length: None,
            key: None,
            alpha: 0.2,
            beta: 0.05,
            gamma: 0.1,
            residual_alpha: 0.05,
            min_scale: 1e-6,
            normalize: true,
        }
    }
}

/// Seasonal residuals: an additive Holt-Winters forecaster (Holt 1957, "Forecasting seasonals and trends by
/// exponentially weighted moving averages", ONR memorandum 52; Winters 1960, "Forecasting sales by
/// exponentially weighted moving averages", Management Science 6(3)) in the component form of Hyndman &
/// Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed. (2021), section 8.3, run one step ahead
/// on one series at a fixed cadence; the score of a value is its distance from the forecast, in units of
/// the recent absolute forecast error. This is aberrant 1.3.0's `SeasonalResidualDetector`, with its
/// parameters, defaults and arithmetic (its sums of several terms and its means are rounded once from the exact value, as its `math.fsum`
/// and `statistics.mean`), so the scores are aberrant's to the bit.
///
/// # Algorithm
/// With `m = season_length`, level `l`, trend `b`, seasonal terms `s[0..m]` and phase `p = t mod m` (the
/// number of rows learned, missing ones included, modulo `m`):
/// - Warm-up: the first `2m` values are kept. At the `2m`-th, with cycle means `c1`, `c2` and midpoint
///   `h = (m - 1) / 2`: `b = (c2 - c1) / m`, `s[i] = (y[i] - c1 + y[m+i] - c2) / 2 - b (i - h)`,
///   `l = c2 + b h`, and the scale `e` is the mean absolute error of that fit over the `2m` values.
/// - Then each learned value `y`: forecast `f = l + b + s[p]`, residual `r = y - f`;
///   `l <- l + b + alpha r`, `b <- b + beta alpha r`, `s[p] <- s[p] + gamma r` (FPP3's equations, with the
///   seasonal update taken from the prior level and trend), `e <- (1 - residual_alpha) e + residual_alpha |r|`.
/// - `score(y) = |y - f| / max(min_scale, e)` (or `|y - f|` with `normalize = false`), 0.0 during the
///   warm-up. [`Detector::explain_one`] gives `forecast` (`f`), `residual` (`y - f`, signed) and `scale`
///   (`max(min_scale, e)`), NaN during the warm-up.
///
/// # Missing values
/// A NaN or infinite value (a missing row read with the sources' missing-row policy) keeps the cadence:
/// the phase advances, and the state takes the forecaster's prediction step without a correction, as if
/// the value had been its forecast (`l <- l + b`, trend and season unchanged), while the residual scale is
/// left as it is (a residual of zero would shrink it and inflate later scores). Skipping the step instead
/// would leave the level one trend behind for every missing value. Scoring a NaN gives 0.0 (no evidence),
/// an infinite value the largest finite score. In the warm-up a missing value is left out of the cycle
/// means, the seasonal term of its position comes from the other cycle (0 when both are missing), and
/// the initial scale is the mean over the values present; with no missing value this is aberrant's
/// initialisation exactly.
///
/// Works on raw, unscaled input: the scale is learned in the series' units (`min_scale` is the only
/// absolute quantity). Learning every row adapts the forecast and the scale to anomalies, as in aberrant.
///
/// # Cost
/// O(1) per row to learn or score after the warm-up; O(m) once, at its end. Memory: `m` seasonal terms,
/// and `2m` values during the warm-up only.
///
/// # Deviations from aberrant 1.3.0
/// - aberrant rejects non-finite values and has no notion of a missing row ("preprocess missing
///   observations"); here they keep the cadence as above. aberrant raises on arithmetic that overflows;
///   here such an update is taken as a missing value.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::SeasonalResidualDetectorParams;
/// let schema = Schema::shared(["load"]).unwrap();
/// let mut model = SeasonalResidualDetectorParams { season_length: Some(24), ..Default::default() }
///     .build(&schema)
///     .unwrap();
/// let daily = |t: usize| 100.0 + 20.0 * (t as f64 * std::f64::consts::TAU / 24.0).sin() + (t % 5) as f64;
/// for t in 0..24 * 30 {
///     model.learn_one(&[daily(t)]);
/// }
/// let t = 24 * 30;
/// let normal = model.score_one(&[daily(t)]);
/// let spike = model.score_one(&[daily(t) + 40.0]);
/// assert!(spike > 5.0 * normal.max(1.0), "{spike} vs {normal}");
/// let mut why = [0.0; 3];
/// model.explain_one(&[daily(t) + 40.0], &mut why); // forecast, residual, scale
/// assert!((why[0] - daily(t)).abs() < 5.0 && why[1] > 35.0);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeasonalResidualDetector {
    column: usize,
    season_length: usize,
    alpha: f64,
    beta: f64,
    gamma: f64,
    residual_alpha: f64,
    min_scale: f64,
    normalize: bool,
    /// Rows learned, missing ones included (the phase is this modulo `season_length`).
    seen: u64,
    /// The warm-up values (NaN for a missing one); emptied when the model initialises.
    warmup: Vec<f64>,
    /// The seasonal terms, empty during the warm-up.
    seasonal: Vec<f64>,
    level: f64,
    trend: f64,
    /// The faded mean absolute one-step error (before the `min_scale` floor).
    scale: f64,
}

impl DetectorParams for SeasonalResidualDetectorParams {
    type Model = SeasonalResidualDetector;
    fn build(&self, schema: &SchemaRef) -> Result<SeasonalResidualDetector, ParamError> {
        let m = self.season_length.ok_or(ParamError::Missing("season_length"))?;
        if !(2..=MAX_SEASON).contains(&m) {
            return Err(ParamError::invalid("season_length", format!("must be between 2 and 2^24, got {m}")));
        }
        let unit = |name: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(ParamError::invalid(name, format!("must be in [0, 1], got {v}")))
            }
        };
        let alpha = unit("alpha", self.alpha)?;
        let beta = unit("beta", self.beta)?;
        if !(0.0..=1.0 - alpha).contains(&self.gamma) {
            return Err(ParamError::invalid("gamma", format!("must be in [0, 1 - alpha], got {}", self.gamma)));
        }
        if !(self.residual_alpha > 0.0 && self.residual_alpha <= 1.0) {
            return Err(ParamError::invalid(
                "residual_alpha",
                format!("must be in (0, 1], got {}", self.residual_alpha),
            ));
        }
        if !(self.min_scale > 0.0 && self.min_scale.is_finite()) {
            return Err(ParamError::invalid(
                "min_scale",
                format!("must be positive and finite, got {}", self.min_scale),
            ));
        }
        Ok(SeasonalResidualDetector {
            column: univariate_column(self.key.as_deref(), schema)?,
            season_length: m,
            alpha,
            beta,
            gamma: self.gamma,
            residual_alpha: self.residual_alpha,
            min_scale: self.min_scale,
            normalize: self.normalize,
            seen: 0,
            warmup: Vec::new(),
            seasonal: Vec::new(),
            level: 0.0,
            trend: 0.0,
            scale: 0.0,
        })
    }
}

/// The exactly rounded sum of `values` (Shewchuk 1997, "Adaptive precision floating-point arithmetic and
/// fast robust geometric predicates": non-overlapping partial sums, then one rounding of their total, with
/// the half-way case resolved as Python's `math.fsum` does). Finite inputs whose sum does not overflow.
fn exact_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for value in values {
        let mut x = value;
        let mut kept = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    let Some(mut k) = partials.len().checked_sub(1) else { return 0.0 };
    let mut hi = partials[k];
    let mut lo = 0.0;
    while k > 0 {
        k -= 1;
        let x = hi;
        let y = partials[k];
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    // When the part left below is exactly half an ulp of `hi` and the partials below push the same way,
    // the sum rounds away from `hi`.
    if k > 0 && ((lo < 0.0 && partials[k - 1] < 0.0) || (lo > 0.0 && partials[k - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// The mean of `values` (finite, not empty) rounded once from the exact mean, as Python's
/// `statistics.mean`: the quotient of the exact sum is corrected by the sign of the exact remainder
/// `sum - n q` (with `n q` split exactly by a fused multiply-add) and of its distance to half an ulp.
fn exact_mean(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    // The sign of `sum(values) - n (q + offset)`, exactly (`n offset` is exact for a power-of-two offset).
    let beyond = |q: f64, offset: f64| {
        let p = n * q;
        let e = n.mul_add(q, -p);
        exact_sum(values.iter().copied().chain([-p, -e, -(n * offset)]))
    };
    let mut q = exact_sum(values.iter().copied()) / n;
    for _ in 0..4 {
        let r = beyond(q, 0.0);
        if r == 0.0 || !q.is_finite() {
            break;
        }
        let next = if r > 0.0 { q.next_up() } else { q.next_down() };
        let t = beyond(q, (next - q) / 2.0);
        let past_half = if r > 0.0 { t > 0.0 } else { t < 0.0 };
        if past_half || (t == 0.0 && next.to_bits() & 1 == 0) {
            q = next;
        } else {
            break;
        }
    }
    q
}

/// Level, trend, seasonal terms and scale fitted to the first two cycles (NaN: a missing value).
fn initialise(values: &[f64], m: usize) -> (f64, f64, Vec<f64>, f64) {
    let mean = |cycle: &[f64]| {
        let present: Vec<f64> = cycle.iter().copied().filter(|v| v.is_finite()).collect();
        (!present.is_empty()).then(|| exact_mean(&present))
    };
    let (first, second) = values.split_at(m);
    let (c1, c2) = match (mean(first), mean(second)) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) | (None, Some(a)) => (a, a),
        (None, None) => return (0.0, 0.0, vec![0.0; m], 0.0),
    };
    let mf = m as f64;
    let trend = c2 / mf - c1 / mf;
    let midpoint = (mf - 1.0) / 2.0;
    let seasonal: Vec<f64> = (0..m)
        .map(|i| {
            let offset = -trend * (i as f64 - midpoint);
            match (first[i].is_finite(), second[i].is_finite()) {
                (true, true) => exact_sum([first[i] / 2.0, second[i] / 2.0, -c1 / 2.0, -c2 / 2.0, offset]),
                (true, false) => exact_sum([first[i], -c1, offset]),
                (false, true) => exact_sum([second[i], -c2, offset]),
                (false, false) => 0.0,
            }
        })
        .collect();
    let level = c2 + trend * midpoint;
    let present = values.iter().filter(|v| v.is_finite()).count() as f64;
    let errors = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(index, &v)| {
        let cycle_mean = if index < m { c1 } else { c2 };
        let i = index % m;
        exact_sum([v, -cycle_mean, -trend * (i as f64 - midpoint), -seasonal[i]]).abs() / present
    });
    let scale = exact_sum(errors);
    (level, trend, seasonal, scale)
}

impl SeasonalResidualDetector {
    /// The forecast of the next value, None during the warm-up.
    #[inline]
    fn forecast(&self) -> Option<f64> {
        let phase = (self.seen % self.season_length as u64) as usize;
        self.seasonal.get(phase).map(|s| (self.level + self.trend) + s)
    }

    /// The residual scale scores are divided by.
    #[inline]
    fn floored_scale(&self) -> f64 {
        self.min_scale.max(self.scale)
    }

    #[inline]
    fn score_against(&self, forecast: Option<f64>, value: f64) -> f64 {
        let Some(f) = forecast else { return 0.0 };
        let distance = (value - f).abs();
        finite_score(if self.normalize { distance / self.floored_scale() } else { distance })
    }

    /// Learns `value`, whose forecast (None during the warm-up) is `forecast`.
    #[inline]
    fn learn_with(&mut self, forecast: Option<f64>, value: f64) {
        let m = self.season_length;
        match forecast {
            None => {
                self.warmup.push(if value.is_finite() { value } else { f64::NAN });
                if self.warmup.len() == 2 * m {
                    let (level, trend, seasonal, scale) = initialise(&self.warmup, m);
                    (self.level, self.trend, self.seasonal, self.scale) = (level, trend, seasonal, scale);
                    self.warmup = Vec::new();
                }
            }
            Some(forecast) => {
                let phase = (self.seen % m as u64) as usize;
                let base = self.level + self.trend;
                let residual = value - forecast;
                let correction = self.alpha * residual;
                let level = base + correction;
                let trend = self.trend + self.beta * correction;
                let season = self.seasonal[phase] + self.gamma * residual;
                let scale = (1.0 - self.residual_alpha) * self.scale + self.residual_alpha * residual.abs();
                if [level, trend, season, scale].iter().all(|v| v.is_finite()) {
                    (self.level, self.trend, self.seasonal[phase], self.scale) = (level, trend, season, scale);
                } else if base.is_finite() {
                    // A missing value (or one whose update overflows): the prediction step only.
                    self.level = base;
                }
            }
        }
        self.seen += 1;
    }
}

impl Detector for SeasonalResidualDetector {
    fn learn_one(&mut self, x: &[f64]) {
        let forecast = self.forecast();
        self.learn_with(forecast, x[self.column]);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.score_against(self.forecast(), x[self.column])
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let (forecast, value) = (self.forecast(), x[self.column]);
        let score = self.score_against(forecast, value);
        self.learn_with(forecast, value);
        score
    }

    fn explanation_names(&self) -> Vec<String> {
        ["forecast", "residual", "scale"].map(String::from).to_vec()
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        out.fill(f64::NAN);
        if let (Some(f), [forecast, residual, scale, ..]) = (self.forecast(), out) {
            let value = x[self.column];
            *forecast = f;
            *residual = if value.is_finite() { value - f } else { f64::NAN };
            *scale = self.floored_scale();
        }
    }
}

impl Describe for SeasonalResidualDetectorParams {
    const REFERENCE: &'static str =
        "Hyndman & Athanasopoulos, Forecasting: Principles and Practice (3rd ed.), additive Holt-Winters";
    const SUMMARY: &'static str =
        "one-step additive Holt-Winters forecast residual over the faded mean absolute error (aberrant)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "season_length", ty: "int >= 2", required: true, help: "observations per cycle" },
        ParamDoc { name: "key", ty: "feature", required: false, help: "the series; default the only feature" },
        ParamDoc { name: "alpha", ty: "float in [0, 1]", required: false, help: "level weight (default 0.2)" },
        ParamDoc { name: "beta", ty: "float in [0, 1]", required: false, help: "trend weight (default 0.05)" },
        ParamDoc {
            name: "gamma",
            ty: "float in [0, 1 - alpha]",
            required: false,
            help: "seasonal weight (default 0.1)",
        },
        ParamDoc {
            name: "residual_alpha",
            ty: "float in (0, 1]",
            required: false,
            help: "weight of the newest |error| in the scale (default 0.05)",
        },
        ParamDoc {
            name: "min_scale",
            ty: "float > 0",
            required: false,
            help: "floor of the scale, input units (default 1e-6)",
        },
        ParamDoc {
            name: "normalize",
            ty: "bool",
            required: false,
            help: "divide |residual| by the scale (default true)",
        },
    ];
    const SERIES: bool = true;
    fn example() -> Self {
        SeasonalResidualDetectorParams { season_length: Some(12), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn model(m: usize) -> SeasonalResidualDetector {
        let schema = Schema::shared(["v"]).unwrap();
        SeasonalResidualDetectorParams { season_length: Some(m), ..Default::default() }.build(&schema).unwrap()
    }

    #[test]
    fn exact_sum_rounds_once() {
        assert_eq!(exact_sum([1e16, 1.0, -1e16]), 1.0);
        assert_eq!(exact_sum([0.1; 10]), 1.0);
        assert_eq!(exact_sum([1.0, 1e100, 1.0, -1e100]), 2.0);
        assert_eq!(exact_sum([]), 0.0);
        // Half-way: 2^53 + 1 + 2^-60 rounds up (Python: math.fsum([2**53, 1.0, 2**-60]) == 2**53 + 2).
        assert_eq!(exact_sum([9007199254740992.0, 1.0, 2f64.powi(-60)]), 9007199254740994.0);
        assert_eq!(exact_sum([9007199254740992.0, 1.0]), 9007199254740992.0);
    }

    #[test]
    fn exact_mean_rounds_once() {
        // Expected values from Python's statistics.mean.
        assert_eq!(exact_mean(&[0.1, 0.2, 0.4]), 0.23333333333333334);
        assert_eq!(exact_mean(&[1.0, 2.0]), 1.5);
        assert_eq!(exact_mean(&[0.1, 0.1, 0.1, 0.7]), 0.25);
        assert_eq!(exact_mean(&[1.0, 1.0 + f64::EPSILON, 1.0]), 1.0);
        // Where fsum / n is one ulp off (-51.19579775590885 and -28.558667441075716).
        assert_eq!(exact_mean(&[-23.84841659104697, -79.60511956521692, -50.133857111462675]), -51.195797755908856);
        let five = [39.283961528231345, -63.04535198030117, -5.492330037550431, -64.77598390430074, -48.76363281145759];
        assert_eq!(exact_mean(&five), -28.55866744107572);
    }

    #[test]
    fn initialisation_by_hand() {
        // m = 2, values 1 3 | 5 7: c1 = 2, c2 = 6, trend = 2, midpoint 0.5, s = [0, 0] (the trend explains
        // everything), level = 6 + 1 = 7; the fit is exact, so the scale is 0.
        let mut m = model(2);
        for v in [1.0, 3.0, 5.0] {
            assert_eq!(m.score_learn_one(&[v]), 0.0);
        }
        m.learn_one(&[7.0]);
        assert_eq!((m.level, m.trend, m.seasonal.clone(), m.scale), (7.0, 2.0, vec![0.0, 0.0], 0.0));
        // The next forecast is 7 + 2 + 0 = 9; 10 is one above, over the floor 1e-6.
        let mut why = [0.0; 3];
        m.explain_one(&[10.0], &mut why);
        assert_eq!(why, [9.0, 1.0, 1e-6]);
        assert_eq!(m.score_one(&[10.0]), 1e6);
        // Learning it: level 9 + 0.2, trend 2 + 0.05 * 0.2, season[0] 0.1, scale 0.05.
        m.learn_one(&[10.0]);
        assert_eq!((m.level, m.seasonal[0], m.scale), (9.0 + 0.2, 0.1, 0.05));
        assert_eq!(m.trend, 2.0 + 0.05 * 0.2);
    }

    #[test]
    fn a_spike_scores_above_the_seasonal_pattern_and_the_warm_up_is_two_cycles() {
        let mut m = model(24);
        let day = |t: usize| 50.0 + 10.0 * (t as f64 * std::f64::consts::TAU / 24.0).cos() + ((t * 7) % 5) as f64;
        let mut scores = Vec::new();
        for t in 0..24 * 20 {
            scores.push(m.score_learn_one(&[day(t)]));
        }
        assert!(scores[..48].iter().all(|s| *s == 0.0));
        assert!(scores[48..].iter().all(|s| *s > 0.0));
        let typical = scores[24 * 10..].iter().cloned().fold(0.0, f64::max);
        let t = 24 * 20;
        let spike = m.score_one(&[day(t) + 15.0]);
        assert!(spike > 3.0 * typical, "{spike} vs {typical}");
        // The seasonal pattern is learned: the low point of the cycle is not an anomaly.
        assert!(m.score_one(&[day(t)]) < typical + 1e-9);
    }

    #[test]
    fn missing_values_keep_the_cadence_and_take_the_prediction_step() {
        let mut m = model(4);
        for t in 0..40 {
            m.learn_one(&[(t % 4) as f64 + 0.5 * t as f64]);
        }
        let (level, trend, seasonal, scale, seen) = (m.level, m.trend, m.seasonal.clone(), m.scale, m.seen);
        let forecast = m.forecast().unwrap();
        assert_eq!(m.score_one(&[f64::NAN]), 0.0);
        assert_eq!(m.score_one(&[f64::INFINITY]), f64::MAX);
        let mut why = [0.0; 3];
        m.explain_one(&[f64::NAN], &mut why);
        assert_eq!(why[0], forecast);
        assert!(why[1].is_nan());
        m.learn_one(&[f64::NAN]);
        assert_eq!(
            (m.level, m.trend, &m.seasonal, m.scale, m.seen),
            (level + trend, trend, &seasonal, scale, seen + 1)
        );
        m.learn_one(&[f64::NEG_INFINITY]);
        assert_eq!(m.seen, seen + 2);
        // Two steps later the series (a trend of 0.5 a row and a period of 4) is still forecast closely.
        let next = (42 % 4) as f64 + 0.5 * 42.0;
        assert!((m.forecast().unwrap() - next).abs() < 0.1, "{} vs {next}", m.forecast().unwrap());
    }

    #[test]
    fn missing_values_in_the_warm_up_are_left_out() {
        let mut full = model(3);
        let mut gappy = model(3);
        let values = [1.0, 5.0, 3.0, 2.0, 6.0, 4.0];
        for (i, v) in values.iter().enumerate() {
            full.learn_one(&[*v]);
            gappy.learn_one(&[if i == 1 { f64::NAN } else { *v }]);
        }
        // Complete: c1 = 3, c2 = 4, trend 1/3. Without the 5: c1 = 2 (the mean of 1 and 3), trend 2/3, and
        // position 1 (the midpoint) comes from the second cycle only: 6 - c2 = 2.
        assert_eq!((full.trend, gappy.trend), (4.0 / 3.0 - 1.0, 4.0 / 3.0 - 2.0 / 3.0));
        assert_eq!(gappy.seasonal[1], 2.0);
        assert!(gappy.seasonal.iter().all(|s| s.is_finite()) && gappy.scale.is_finite() && gappy.scale > 0.0);
        let mut empty = model(2);
        for _ in 0..4 {
            empty.learn_one(&[f64::NAN]);
        }
        assert_eq!((empty.level, empty.trend, empty.scale), (0.0, 0.0, 0.0));
        assert!(empty.score_one(&[3.0]) > 0.0);
    }

    #[test]
    fn unnormalised_scores_are_in_input_units() {
        let schema = Schema::shared(["a", "v"]).unwrap();
        let p = SeasonalResidualDetectorParams {
            season_length: Some(2),
            key: Some("v".into()),
            normalize: false,
            ..Default::default()
        };
        let mut m = p.build(&schema).unwrap();
        for v in [1.0, 3.0, 5.0, 7.0] {
            m.learn_one(&[100.0, v]);
        }
        assert_eq!(m.score_one(&[0.0, 12.0]), 3.0);
    }

    #[test]
    fn parameters_are_checked() {
        let schema = Schema::shared(["v"]).unwrap();
        let err = |p: SeasonalResidualDetectorParams| p.build(&schema).unwrap_err().to_string();
        let base = SeasonalResidualDetectorParams { season_length: Some(4), ..Default::default() };
        assert!(err(SeasonalResidualDetectorParams::default()).contains("season_length"));
        assert!(
            err(SeasonalResidualDetectorParams { season_length: Some(1), ..base.clone() }).contains("season_length")
        );
        assert!(err(SeasonalResidualDetectorParams { alpha: 1.5, ..base.clone() }).contains("alpha"));
        assert!(err(SeasonalResidualDetectorParams { beta: f64::NAN, ..base.clone() }).contains("beta"));
        assert!(err(SeasonalResidualDetectorParams { alpha: 0.5, gamma: 0.6, ..base.clone() }).contains("gamma"));
        assert!(err(SeasonalResidualDetectorParams { residual_alpha: 0.0, ..base.clone() }).contains("residual_alpha"));
        assert!(err(SeasonalResidualDetectorParams { min_scale: 0.0, ..base.clone() }).contains("min_scale"));
        let two = Schema::shared(["a", "b"]).unwrap();
        assert!(matches!(base.build(&two), Err(ParamError::Schema(_))));
        assert!(SeasonalResidualDetectorParams { alpha: 0.5, gamma: 0.5, ..base }.build(&schema).is_ok());
    }
}
