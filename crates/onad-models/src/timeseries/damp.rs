//! XLagDAMP: the Discord Aware Matrix Profile in its pure-online, amnesic form (the search reaches back
//! at most `x_lag` values), with best-so-far early abandoning.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::subsequence::{Scorer, Subsequences, subsequence_length};
use crate::registry::{Describe, finite_score};
use crate::stat::univariate_column;

/// Hyperparameters of [`XLagDAMP`] (aberrant 1.3.0 names and defaults, plus `key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XLagDAMPParams {
    /// Values per subsequence, `>= 2` (required).
    pub subsequence_length: Option<usize>,
    /// How far back the search reaches, in values; `None` is `16 * subsequence_length`; at least
    /// `subsequence_length`.
    pub x_lag: Option<usize>,
    /// One-based start of the first subsequence scored; `None` is `4 * subsequence_length`; at least
    /// `subsequence_length`.
    pub start_index: Option<usize>,
    /// A subsequence whose population standard deviation is at most `eps` is constant (> 0).
    pub eps: f64,
    /// The feature to read; may be omitted when the input has exactly one feature.
    pub key: Option<String>,
}

impl Default for XLagDAMPParams {
    fn default() -> Self {
        XLagDAMPParams { subsequence_length: None, x_lag: None, start_index: None, eps: 1e-12, key: None }
    }
}

/// DAMP, the Discord Aware Matrix Profile (Lu, Wu, Mueen, Zuluaga & Keogh 2022, "Matrix Profile XXIV:
/// Scaling Time Series Anomaly Detection to Trillions of Datapoints and Ultra-fast Arriving Data Streams",
/// KDD), in the authors' pure-online X-Lag amnesic form (`DAMP_X_Lag_Amnesic.m`, backward processing
/// only), as aberrant's `XLagDAMP`. The score of a value is the left-discord score of the subsequence
/// ending at it: its z-normalised Euclidean distance to the nearest earlier subsequence within the last
/// `x_lag` values, or an upper-bounded approximation of it once it is known not to beat the best discord
/// so far. Higher = more anomalous; the highest peaks are the discord candidates.
///
/// # Algorithm
/// With `m = subsequence_length`, the query is the subsequence ending at the scored value, starting at
/// `q` (0-based; `q + 1` is the paper's one-based index `i`). It is scored once `q + 1 >= start_index`
/// (0.0 before). Backward processing, as the authors' code: a first segment of the `SL =
/// 2^ceil(log2(8 m))` values ending at the query's first value (matches may overlap the query by that one
/// value, as in the reference); if its nearest distance is below the best-so-far discord score, the
/// search stops there (early abandoning) and that distance is the score; otherwise the search doubles
/// `SL` and examines the next older segment `[q - SL + 1 + k m, q - SL/2 + k m]` (values, `k` the
/// expansion), until a distance falls below the best so far or the segment would pass `x_lag` or the
/// start of the series, when the whole reach `[q - x_lag, q]` is searched exactly and the best so far
/// becomes the larger of itself and that exact distance. Distances use population standard deviations
/// (MASS_V2's `std(.., 1)`).
///
/// Instead of one MASS (FFT) distance profile per examined segment, the dot products of the query with
/// the starts of the first segment follow from the previous row's along each lag in O(1) (the engine
/// [`RollingMatrixProfile`](crate::RollingMatrixProfile) uses too); starts further back, examined only
/// when the search expands, get direct O(m) dot products. The nearest start of each segment is then
/// recomputed directly from the values. Scores equal the reference's to about 1e-9 (the same segments,
/// the same early-abandoning decisions, except where two distances tie within rounding).
///
/// # Missing and constant subsequences
/// The authors' code and aberrant reject constant subsequences (the z-normalisation divides by zero) and
/// non-finite values, with an error; onad models never fail on data, so instead: a subsequence whose
/// population standard deviation is at most `eps`, or which holds a NaN or infinite value, is never
/// matched; as the query it scores 0.0 and leaves the best-so-far unchanged. A segment with no usable
/// start counts as no match (the search expands); a full search with none scores 0.0. A NaN row keeps its
/// place in time (the sources' `BadRowPolicy::Missing`, the default for series models).
///
/// # Explanation
/// `match_start`: the absolute index (rows learned since build, from 0) of the first row of the nearest
/// subsequence in the last segment searched (the true nearest neighbour when the search went exact);
/// `distance`: the score. NaN when there is none.
///
/// # Cost
/// Per row: O(SL) to keep the first segment's dot products (`SL < 16 m`), the distances of the segments
/// examined (the first one of `SL - m + 1` starts on most rows; expansions, which early abandoning makes
/// rare, O(m) per start further back), O(m) for the new start's statistics. The paper's per-row cost is
/// one MASS per segment, O(SL log SL). Memory: three rings of `x_lag + m + 1` entries rounded up to a power
/// of two.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::XLagDAMPParams;
///
/// let params = XLagDAMPParams { subsequence_length: Some(16), ..Default::default() };
/// let mut model = params.build(&Schema::shared(["v"]).unwrap()).unwrap();
/// let mut scores = Vec::new();
/// for i in 0..1500 {
///     let t = i as f64 * std::f64::consts::TAU / 40.0;
///     let v = t.sin() + if (1000..1010).contains(&i) { 0.8 * (5.0 * t).sin() } else { 0.0 };
///     scores.push(model.score_learn_one(&[v]));
/// }
/// let top = (0..1500).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
/// assert!((1000..1026).contains(&top), "the discord is the distorted stretch: {top}");
/// // Warm-up: the first subsequence scored starts at row start_index - 1 = 63 (0-based) and ends at row 78.
/// assert!(scores[..78].iter().all(|&s| s == 0.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XLagDAMP {
    column: usize,
    m: usize,
    x_lag: usize,
    start_index: usize,
    eps: f64,
    /// `2^ceil(log2(8 m))`, the first segment's length.
    initial: usize,
    /// Boxed: the registry's enums hold every model inline.
    series: Box<Subsequences>,
    /// The best (largest) exact left-discord score so far; None before the first.
    best_so_far: Option<f64>,
}

impl DetectorParams for XLagDAMPParams {
    type Model = XLagDAMP;
    fn build(&self, schema: &SchemaRef) -> Result<XLagDAMP, ParamError> {
        let m = subsequence_length(self.subsequence_length)?;
        let sixteen = m.checked_mul(16).ok_or_else(|| ParamError::invalid("subsequence_length", "too large"))?;
        let x_lag = self.x_lag.unwrap_or(sixteen);
        if x_lag < m {
            return Err(ParamError::invalid(
                "x_lag",
                format!("must be at least subsequence_length ({m}), got {x_lag}"),
            ));
        }
        let start_index = self.start_index.unwrap_or(4 * m);
        if start_index < m {
            return Err(ParamError::invalid(
                "start_index",
                format!("must be at least subsequence_length ({m}), got {start_index}"),
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ParamError::invalid("eps", format!("must be finite and > 0, got {}", self.eps)));
        }
        let column = univariate_column(self.key.as_deref(), schema)?;
        let initial = (8 * m).next_power_of_two();
        let reach = x_lag.min(initial - 1);
        Ok(XLagDAMP {
            column,
            m,
            x_lag,
            start_index,
            eps: self.eps,
            initial,
            series: Box::new(Subsequences::new(m, reach, m - 2, x_lag)),
            best_so_far: None,
        })
    }
}

/// The outcome of one backward search.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Search {
    score: f64,
    start: Option<usize>,
    best_so_far: Option<f64>,
}

impl XLagDAMP {
    /// The best exact left-discord score so far (0.0 before the first).
    pub fn best_score(&self) -> f64 {
        self.best_so_far.unwrap_or(0.0)
    }

    /// Nearest usable start among `lo..=hi` (the screened minimum, confirmed directly).
    fn segment(&self, sc: &Scorer<'_>, lo: usize, hi: usize) -> Option<(f64, usize)> {
        let mut best: Option<(usize, f64)> = None;
        for j in lo..=hi {
            let stats = self.series.stats(j);
            if stats.std <= self.eps {
                continue;
            }
            if let Some(d) = sc.squared(j, true)
                && best.is_none_or(|(_, b)| d < b)
            {
                best = Some((j, d));
            }
        }
        best.map(|(j, _)| (sc.distance(j, true), j))
    }

    /// Whether the query ending at the next value is scored (its one-based start reached `start_index`).
    fn ready(&self) -> bool {
        self.series.len() + 2 >= self.m + self.start_index
    }

    /// The backward search for the query ending at `x`; None when the row is not scored.
    fn search(&self, x: f64) -> Option<Search> {
        if !self.ready() {
            return None;
        }
        self.search_with(self.series.scorer(x)?)
    }

    /// Scores `x`, then learns it, computing the new query's dot products once for both.
    fn search_learn(&mut self, x: f64) -> Option<Search> {
        let staged = self.series.stage(x);
        let found =
            if self.ready() { self.series.staged_scorer(x, staged).and_then(|sc| self.search_with(sc)) } else { None };
        self.series.commit(x);
        if let Some(found) = found {
            self.best_so_far = found.best_so_far;
        }
        found
    }

    fn search_with(&self, sc: Scorer<'_>) -> Option<Search> {
        if !sc.query.valid || sc.query.std <= self.eps {
            return None;
        }
        let (q, m, x_lag) = (sc.q as i64, self.m as i64, self.x_lag as i64);
        let mut best_so_far = self.best_so_far;
        let below = |d: f64, bsf: Option<f64>| bsf.is_some_and(|b| d < b);
        let mut sl = self.initial as i64;
        let mut expansion = 0i64;
        loop {
            let far = q - sl + 1 + expansion * m;
            if far < 0 || far <= q - x_lag || x_lag < sl {
                let lo = (q - x_lag).max(0) as usize;
                let found = self.segment(&sc, lo, (q - m + 1) as usize);
                let Some((d, j)) = found else {
                    return Some(Search { score: 0.0, start: None, best_so_far });
                };
                best_so_far = Some(best_so_far.map_or(d, |b| b.max(d)));
                return Some(Search { score: d, start: Some(j), best_so_far });
            }
            let hi = if expansion == 0 { q - m + 1 } else { q + 1 - sl / 2 + expansion * m - m };
            if let Some((d, j)) = self.segment(&sc, far as usize, hi as usize)
                && below(d, best_so_far)
            {
                return Some(Search { score: d, start: Some(j), best_so_far });
            }
            sl *= 2;
            expansion += 1;
        }
    }
}

impl Detector for XLagDAMP {
    fn learn_one(&mut self, x: &[f64]) {
        self.search_learn(x[self.column]);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.search(x[self.column]).map_or(0.0, |found| finite_score(found.score))
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        self.search_learn(x[self.column]).map_or(0.0, |found| finite_score(found.score))
    }

    fn explanation_names(&self) -> Vec<String> {
        vec!["match_start".into(), "distance".into()]
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        match self.search(x[self.column]) {
            Some(Search { score, start: Some(j), .. }) => {
                out[0] = j as f64;
                out[1] = finite_score(score);
            }
            _ => out.fill(f64::NAN),
        }
    }
}

impl Describe for XLagDAMPParams {
    const REFERENCE: &'static str = "Lu, Wu, Mueen, Zuluaga & Keogh 2022, Matrix Profile XXIV: Scaling Time Series Anomaly Detection to Trillions of Datapoints and Ultra-fast Arriving Data Streams (KDD)";
    const SUMMARY: &'static str =
        "left-discord score of the newest subsequence of one series, DAMP with early abandoning (X-Lag, amnesic)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "subsequence_length", ty: "int >= 2", required: true, help: "values per subsequence" },
        ParamDoc {
            name: "x_lag",
            ty: "int >= subsequence_length",
            required: false,
            help: "how far back the search reaches; default 16 * subsequence_length",
        },
        ParamDoc {
            name: "start_index",
            ty: "int >= subsequence_length",
            required: false,
            help: "one-based start of the first scored subsequence; default 4 * subsequence_length",
        },
        ParamDoc {
            name: "eps",
            ty: "float > 0",
            required: false,
            help: "subsequences with population std <= eps are constant: never matched, score 0",
        },
        ParamDoc {
            name: "key",
            ty: "feature name",
            required: false,
            help: "feature to read; optional when the input has one feature",
        },
    ];
    const SERIES: bool = true;
    fn example() -> Self {
        XLagDAMPParams { subsequence_length: Some(8), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeseries::matrix_profile::tests::{col, fixture};
    use onad_core::Schema;

    fn damp(m: usize) -> XLagDAMP {
        XLagDAMPParams { subsequence_length: Some(m), ..Default::default() }
            .build(&Schema::shared(["v"]).unwrap())
            .unwrap()
    }

    fn znorm_distance(a: &[f64], b: &[f64]) -> f64 {
        let z = |s: &[f64]| {
            let mean = s.iter().sum::<f64>() / s.len() as f64;
            let std = (s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / s.len() as f64).sqrt();
            s.iter().map(|v| (v - mean) / std).collect::<Vec<_>>()
        };
        z(a).iter().zip(z(b)).map(|(u, v)| (u - v) * (u - v)).sum::<f64>().sqrt()
    }

    #[test]
    fn matches_aberrant_on_the_fixture() {
        let (h, rows) = fixture();
        let (a, expected) = (col(&h, "a"), col(&h, "damp"));
        let mut model = damp(12);
        for (i, r) in rows.iter().enumerate() {
            let s = model.score_one(&[r[a]]);
            assert!((s - r[expected]).abs() <= 1e-9 * (1.0 + s.abs()), "row {i}: {s} vs aberrant {}", r[expected]);
            model.learn_one(&[r[a]]);
        }
    }

    #[test]
    fn scores_are_exact_or_abandoned_below_the_best_so_far() {
        let m = 10;
        let mut model = damp(m);
        let xs: Vec<f64> = (0..1500).map(|i| (i as f64 * 0.21).sin() + 0.2 * ((i * 37) % 11) as f64 / 11.0).collect();
        for i in 0..xs.len() {
            let before = model.best_score();
            let s = model.score_learn_one(&[xs[i]]);
            if i + 2 < m + 4 * m {
                assert_eq!(s, 0.0, "warm-up row {i}");
                continue;
            }
            let q = i + 1 - m;
            let lo = q.saturating_sub(16 * m);
            let exact =
                (lo..=q + 1 - m).map(|j| znorm_distance(&xs[q..q + m], &xs[j..j + m])).fold(f64::INFINITY, f64::min);
            // Early abandoning searches a subset: never below the exact distance, and when it stops early,
            // below the best so far; otherwise it searched the whole reach and is exact.
            assert!(s >= exact - 1e-9, "row {i}: {s} below the exact {exact}");
            assert!(s < before || (s - exact).abs() < 1e-9, "row {i}: {s} neither abandoned nor exact ({exact})");
        }
    }

    #[test]
    fn hand_checked_distance() {
        let params =
            XLagDAMPParams { subsequence_length: Some(2), x_lag: Some(2), start_index: Some(2), ..Default::default() };
        let mut model = params.build(&Schema::shared(["v"]).unwrap()).unwrap();
        for v in [1.0, 2.0, 4.0] {
            model.learn_one(&[v]);
        }
        // Query [4, x]: a rising pair z-normalises to [-1, 1] like [1, 2] and [2, 4]; a falling one is sqrt(8).
        assert_eq!(model.score_one(&[7.0]), 0.0);
        assert!((model.score_one(&[0.0]) - 8f64.sqrt()).abs() < 1e-12);
        let mut why = [0.0; 2];
        model.explain_one(&[0.0], &mut why);
        assert_eq!(why[0], 0.0, "ties go to the earliest start");
    }

    #[test]
    fn an_injected_discord_scores_highest() {
        let mut model = damp(25);
        let scores: Vec<f64> = (0..3000)
            .map(|i| {
                let t = i as f64 * std::f64::consts::TAU / 60.0;
                let v = t.sin() + 0.3 * (0.37 * t).sin() + if (2100..2110).contains(&i) { 0.6 } else { 0.0 };
                model.score_learn_one(&[v])
            })
            .collect();
        let top = (0..3000).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        assert!((2100..2135).contains(&top), "top discord at {top}");
    }

    #[test]
    fn constant_and_missing_subsequences_score_zero_and_are_not_matched() {
        let mut model = damp(8);
        for i in 0..600 {
            let v = match i {
                300..340 => 1.0,
                450 => f64::NAN,
                _ => (i as f64 * 0.5).sin(),
            };
            let s = model.score_one(&[v]);
            assert!(s.is_finite());
            if (307..340).contains(&i) || (450..458).contains(&i) {
                assert_eq!(s, 0.0, "row {i}: constant or missing query");
            }
            let mut why = [0.0; 2];
            model.explain_one(&[v], &mut why);
            if why[0].is_finite() {
                let j = why[0] as usize;
                assert!(!(300..340).contains(&j) || j + 8 > 340 || j < 300, "constant start {j} matched at row {i}");
                assert!(!(443..=450).contains(&j), "a start holding the NaN was matched at row {i}");
            }
            model.learn_one(&[v]);
        }
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let schema = Schema::shared(["v"]).unwrap();
        let build = |p: XLagDAMPParams| p.build(&schema).unwrap_err().to_string();
        let base = XLagDAMPParams { subsequence_length: Some(8), ..Default::default() };
        assert_eq!(XLagDAMPParams::default().build(&schema).unwrap_err(), ParamError::Missing("subsequence_length"));
        assert!(
            build(XLagDAMPParams { subsequence_length: Some(1), ..Default::default() }).contains("subsequence_length")
        );
        assert!(build(XLagDAMPParams { x_lag: Some(7), ..base.clone() }).contains("x_lag"));
        assert!(build(XLagDAMPParams { start_index: Some(3), ..base.clone() }).contains("start_index"));
        assert!(build(XLagDAMPParams { eps: 0.0, ..base.clone() }).contains("eps"));
        assert!(build(XLagDAMPParams { eps: f64::NAN, ..base.clone() }).contains("eps"));
        let model = base.build(&schema).unwrap();
        assert_eq!((model.x_lag, model.start_index, model.initial), (128, 32, 64));
    }
}
