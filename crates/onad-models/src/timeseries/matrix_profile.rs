//! RollingMatrixProfile and MultivariateRollingMatrixProfile: the distance from the newest subsequence to
//! its nearest earlier subsequence in a bounded window (the newest entry of a left matrix profile), one
//! channel or several at a common start.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::subsequence::{Scorer, Subsequences, subsequence_length};
use crate::registry::{Describe, finite_score};
use crate::stat::univariate_column;

/// Hyperparameters of [`RollingMatrixProfile`] (aberrant 1.3.0 names and defaults, plus `key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollingMatrixProfileParams {
    /// Values per subsequence, `>= 2` (required).
    pub subsequence_length: Option<usize>,
    /// Values kept including the candidate; `None` is `16 * subsequence_length`; at least
    /// `subsequence_length + exclusion_zone + 1`.
    pub window_size: Option<usize>,
    /// z-normalised Euclidean distance (true) or plain Euclidean distance (false).
    pub normalize: bool,
    /// Starts within this many positions of the query's start are not matched; `None` is
    /// `ceil(subsequence_length / 4)`.
    pub exclusion_zone: Option<usize>,
    /// The feature to read; may be omitted when the input has exactly one feature.
    pub key: Option<String>,
}

/// Hyperparameters of [`MultivariateRollingMatrixProfile`] (aberrant 1.3.0 names and defaults, plus
/// `keys`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultivariateRollingMatrixProfileParams {
    /// Rows per subsequence, `>= 2` (required).
    pub subsequence_length: Option<usize>,
    /// Rows kept including the candidate; `None` is `16 * subsequence_length`; at least
    /// `subsequence_length + exclusion_zone + 1`.
    pub window_size: Option<usize>,
    /// z-normalise each channel's subsequences (true) or compare raw values (false).
    pub normalize: bool,
    /// Starts within this many positions of the query's start are not matched; `None` is
    /// `ceil(subsequence_length / 4)`.
    pub exclusion_zone: Option<usize>,
    /// The channels; `None` is every feature.
    pub keys: Option<Vec<String>>,
}

impl Default for RollingMatrixProfileParams {
    fn default() -> Self {
        RollingMatrixProfileParams {
            subsequence_length: None,
            window_size: None,
            normalize: true,
            exclusion_zone: None,
            key: None,
        }
    }
}

impl Default for MultivariateRollingMatrixProfileParams {
    fn default() -> Self {
        MultivariateRollingMatrixProfileParams {
            subsequence_length: None,
            window_size: None,
            normalize: true,
            exclusion_zone: None,
            keys: None,
        }
    }
}

/// The engine of both models: one [`Subsequences`] per channel, searched at common starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    columns: Vec<usize>,
    window_size: usize,
    exclusion_zone: usize,
    normalize: bool,
    channels: Vec<Subsequences>,
}

/// The nearest match of one query: its start and distance (the largest channel distance there).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Match {
    start: usize,
    distance: f64,
}

impl Profile {
    fn build(
        columns: Vec<usize>,
        length: Option<usize>,
        window_size: Option<usize>,
        exclusion_zone: Option<usize>,
        normalize: bool,
    ) -> Result<Self, ParamError> {
        let m = subsequence_length(length)?;
        let zone = exclusion_zone.unwrap_or(m.div_ceil(4));
        let window_size = match window_size {
            None => m.checked_mul(16).ok_or_else(|| ParamError::invalid("subsequence_length", "too large"))?,
            Some(w) => w,
        };
        let least = m.saturating_add(zone).saturating_add(1);
        if window_size < least {
            return Err(ParamError::invalid(
                "window_size",
                format!(
                    "must be at least subsequence_length + exclusion_zone + 1 = {least} (subsequence_length {m}, \
                     exclusion_zone {zone}), got {window_size}"
                ),
            ));
        }
        let reach = window_size - m;
        let channels = columns.iter().map(|_| Subsequences::new(m, reach, zone, reach)).collect();
        Ok(Profile { columns, window_size, exclusion_zone: zone, normalize, channels })
    }

    fn m(&self) -> usize {
        self.channels[0].m()
    }

    fn learn(&mut self, x: &[f64]) {
        for (channel, &c) in self.channels.iter_mut().zip(&self.columns) {
            channel.push(x[c]);
        }
    }

    /// The nearest eligible start to the query ending at `x`; `per_channel`, when given, receives each
    /// channel's distance there (NaN for a channel left out). None during warm-up, when every channel's
    /// query holds a non-finite value, or when no start is finite in every channel the query uses.
    fn nearest(&self, x: &[f64], per_channel: Option<&mut [f64]>) -> Option<Match> {
        if !self.ready() {
            return None;
        }
        let scorers: Vec<Option<Scorer<'_>>> = self
            .channels
            .iter()
            .zip(&self.columns)
            .map(|(channel, &c)| channel.scorer(x[c]).filter(|s| s.query.valid))
            .collect();
        self.nearest_with(&scorers, per_channel)
    }

    fn ready(&self) -> bool {
        self.channels[0].len() >= self.m() + self.exclusion_zone
    }

    /// Scores `x`, then learns it, computing the new query's dot products once for both.
    fn score_learn(&mut self, x: &[f64]) -> Option<Match> {
        let staged: Vec<Option<(usize, usize)>> =
            self.channels.iter_mut().zip(&self.columns).map(|(channel, &c)| channel.stage(x[c])).collect();
        let found = if self.ready() {
            let scorers: Vec<Option<Scorer<'_>>> = self
                .channels
                .iter()
                .zip(&self.columns)
                .zip(staged)
                .map(|((channel, &c), staged)| channel.staged_scorer(x[c], staged).filter(|s| s.query.valid))
                .collect();
            self.nearest_with(&scorers, None)
        } else {
            None
        };
        for (channel, &c) in self.channels.iter_mut().zip(&self.columns) {
            channel.commit(x[c]);
        }
        found
    }

    fn nearest_with(&self, scorers: &[Option<Scorer<'_>>], per_channel: Option<&mut [f64]>) -> Option<Match> {
        let (m, zone) = (self.m(), self.exclusion_zone);
        let n = self.channels[0].len();
        let q = n + 1 - m;
        let (lo, hi) = (q.saturating_sub(self.window_size - m), q - zone - 1);
        if scorers.iter().all(Option::is_none) {
            return None;
        }
        let mut best: Option<(usize, f64)> = None;
        'starts: for j in lo..=hi {
            let mut joint = 0.0f64;
            for sc in scorers.iter().flatten() {
                match sc.squared(j, self.normalize) {
                    Some(d) => joint = joint.max(d),
                    None => continue 'starts,
                }
            }
            if best.is_none_or(|(_, b)| joint < b) {
                best = Some((j, joint));
            }
        }
        let (start, _) = best?;
        let mut distance = 0.0f64;
        let mut out = per_channel;
        for (c, sc) in scorers.iter().enumerate() {
            let d = sc.map_or(f64::NAN, |sc| sc.distance(start, self.normalize));
            if sc.is_some() {
                distance = distance.max(d);
            }
            if let Some(out) = out.as_deref_mut() {
                out[c] = d;
            }
        }
        Some(Match { start, distance })
    }
}

/// The newest entry of a left matrix profile over a sliding window, as a discord score: the z-normalised
/// Euclidean distance from the subsequence ending at the scored value to its nearest earlier subsequence
/// among the last `window_size` values (aberrant's `RollingMatrixProfile`; the matrix profile of Yeh,
/// Zhu, Ulanova, Begum, Ding, Dau, Silva, Mueen & Keogh 2016, "Matrix Profile I: All Pairs Similarity
/// Joins for Time Series", ICDM). A subsequence that has no near neighbour is a discord: higher = more
/// anomalous.
///
/// # Algorithm
/// For the candidate value `x` at index `n` (rows learned so far) the query is the subsequence of the
/// last `m = subsequence_length` values ending at `x`, starting at `q = n + 1 - m`. Its eligible matches
/// start at `j` in `[max(0, n + 1 - window_size), q - exclusion_zone - 1]`, all already learned. With
/// `normalize` the distance is `sqrt(2 m (1 - rho))` for the Pearson correlation `rho` of the two
/// subsequences (population standard deviations; two constant subsequences are at distance 0, a constant
/// and a varying one at `sqrt(m)`, as in aberrant and STUMPY); without it, the plain Euclidean distance.
/// The score is the smallest distance, 0.0 during warm-up (until `m + exclusion_zone` rows are learned).
///
/// The dot products of the query with every eligible start follow from those of the previous query in
/// O(1) each (STAMPI, Yeh et al. 2016, section on incremental updates), kept in a ring beside the values
/// and the statistics of every start: a score is one pass over the window, no FFT. The distance of the
/// nearest start found this way is then recomputed directly from the values (so the score does not carry
/// the cancellation of the dot-product formula); ties go to the earliest start, as in aberrant.
///
/// Missing values: a row whose value is NaN or infinite keeps its place in time (the series' cadence)
/// but every subsequence holding it is never matched, and scores 0.0 as the query (its explanation is
/// NaN). Sources give these models `BadRowPolicy::Missing` by default, so a bad row is such a row.
///
/// # Explanation
/// [`explain_one`](Detector::explain_one) writes `match_start`, the absolute index (rows learned since the
/// model was built, from 0) of the nearest subsequence's first row, as aberrant's `match_one`, and
/// `distance`, the score; both NaN when there is no match.
///
/// # Deviations from aberrant 1.3.0
/// - aberrant screens candidates with an FFT convolution per score (`O(w log w)`) and confirms every
///   candidate within a rounding bound directly; this keeps the dot products between rows (`O(w)` per
///   row) and confirms the screened minimum. Scores agree to about 1e-9 except between near-exact repeats,
///   where two candidates within rounding of each other may swap (the difference is then itself at the
///   rounding level of the screen, about `1e-7 * sqrt(m)` in z-normalised units).
/// - aberrant raises on a non-finite value and on distances beyond the float range; here such values are
///   missing (above) and scores are made finite. `key` selects the column of a wider row.
///
/// # Cost
/// Per row: O(window_size) to score (a pass over the eligible starts, O(1) each), O(window_size + m) to
/// learn (the same pass storing the new dot products, plus the new start's statistics and one lag
/// recomputed directly in O(m) so rounding cannot build up along a lag over a long stream); the fused
/// `score_learn_one` shares the pass between the two. Memory: three rings of `window_size + 1` entries
/// rounded up to a power of two (values, dot products, statistics), constant over the stream.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::RollingMatrixProfileParams;
///
/// let params = RollingMatrixProfileParams { subsequence_length: Some(16), ..Default::default() };
/// let mut model = params.build(&Schema::shared(["v"]).unwrap()).unwrap();
/// let wave = |i: usize| (i as f64 * std::f64::consts::TAU / 32.0).sin();
/// let mut scores = Vec::new();
/// for i in 0..600 {
///     let v = if (400..408).contains(&i) { 0.0 } else { wave(i) }; // a flat stretch in the wave
///     scores.push(model.score_learn_one(&[v]));
/// }
/// // From row 100 on (before, the window holds too little of the wave to match).
/// let top = (100..600).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
/// assert!((400..424).contains(&top), "the discord ends inside or just after the flat stretch: {top}");
/// assert!(scores[300] < 1e-6, "a repeated period has an exact match");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingMatrixProfile {
    profile: Profile,
}

/// The multivariate matrix profile with pre-max aggregation: for every eligible start, the largest of the
/// channels' distances (each channel's subsequences z-normalised on their own, or raw), and the score is
/// the smallest of these maxima, so all channels must match at one common earlier interval
/// (aberrant's `MultivariateRollingMatrixProfile`; the "pre-max" aggregation of "Matrix Profile for
/// Anomaly Detection on Multidimensional Time Series", Ferreira, Freitas, Pinto & Lopes 2024,
/// arXiv:2409.09298, over the matrix profile of Yeh et al. 2016, ICDM).
///
/// # Algorithm
/// One channel of [`RollingMatrixProfile`]'s engine per feature in `keys` (the values, every start's
/// statistics and the sliding dot products of the newest subsequence), searched at common starts:
/// `score = min_j max_c d_c(q, j)` over the same eligible starts `j` as the univariate model (window,
/// exclusion zone, warm-up of `m + exclusion_zone` rows, scores 0.0 before). The channel distances at the
/// chosen start are recomputed directly; ties go to the earliest start.
///
/// Missing values: a channel whose query holds a NaN or infinite value is left out of the maximum for that
/// row (its explanation is NaN); a start is eligible only if it holds finite values in every channel the
/// query uses; a row whose every channel is missing scores 0.0.
///
/// # Explanation
/// `match_start` (absolute index of the common match's first row, from 0), `distance` (the score), then
/// `distance_<feature>` per channel at that start (their largest is the score).
///
/// # Deviations from aberrant 1.3.0
/// As for [`RollingMatrixProfile`]: dot products kept between rows instead of one FFT per channel and
/// score, the screened minimum confirmed directly, non-finite values missing, `keys` selects the channels.
///
/// # Cost
/// Per row and channel as [`RollingMatrixProfile`]: O(d * window_size) per score and per learn; memory
/// three rings per channel, `window_size + 1` entries rounded up to a power of two.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MultivariateRollingMatrixProfileParams;
///
/// let params = MultivariateRollingMatrixProfileParams { subsequence_length: Some(8), ..Default::default() };
/// let mut model = params.build(&Schema::shared(["a", "b"]).unwrap()).unwrap();
/// for i in 0..200 {
///     let t = i as f64 * std::f64::consts::TAU / 16.0;
///     model.learn_one(&[t.sin(), t.cos()]);
/// }
/// let t = 200.0 * std::f64::consts::TAU / 16.0;
/// assert!(model.score_one(&[t.sin(), t.cos()]) < 1e-6);
/// assert!(model.score_one(&[t.sin(), 3.0]) > 1.0, "one channel breaks the pattern");
/// let mut why = vec![0.0; model.explanation_names().len()];
/// model.explain_one(&[t.sin(), 3.0], &mut why);
/// assert_eq!(model.explanation_names(), ["match_start", "distance", "distance_a", "distance_b"]);
/// assert_eq!(why[1], why[2].max(why[3]), "the score is the largest channel distance at the common match");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultivariateRollingMatrixProfile {
    profile: Profile,
    names: Vec<String>,
}

impl DetectorParams for RollingMatrixProfileParams {
    type Model = RollingMatrixProfile;
    fn build(&self, schema: &SchemaRef) -> Result<RollingMatrixProfile, ParamError> {
        let column = univariate_column(self.key.as_deref(), schema)?;
        let profile = Profile::build(
            vec![column],
            self.subsequence_length,
            self.window_size,
            self.exclusion_zone,
            self.normalize,
        )?;
        Ok(RollingMatrixProfile { profile })
    }
}

impl DetectorParams for MultivariateRollingMatrixProfileParams {
    type Model = MultivariateRollingMatrixProfile;
    fn build(&self, schema: &SchemaRef) -> Result<MultivariateRollingMatrixProfile, ParamError> {
        let columns = schema.resolve_all("keys", self.keys.as_deref())?;
        let names = columns.iter().map(|&c| format!("distance_{}", schema.names()[c])).collect();
        let profile =
            Profile::build(columns, self.subsequence_length, self.window_size, self.exclusion_zone, self.normalize)?;
        Ok(MultivariateRollingMatrixProfile { profile, names })
    }
}

fn explain(found: Option<Match>, out: &mut [f64]) {
    match found {
        Some(found) => {
            out[0] = found.start as f64;
            out[1] = finite_score(found.distance);
        }
        None => out.fill(f64::NAN),
    }
}

impl Detector for RollingMatrixProfile {
    fn learn_one(&mut self, x: &[f64]) {
        self.profile.learn(x);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.profile.nearest(x, None).map_or(0.0, |found| finite_score(found.distance))
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        self.profile.score_learn(x).map_or(0.0, |found| finite_score(found.distance))
    }

    fn explanation_names(&self) -> Vec<String> {
        vec!["match_start".into(), "distance".into()]
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        explain(self.profile.nearest(x, None), out);
    }
}

impl Detector for MultivariateRollingMatrixProfile {
    fn learn_one(&mut self, x: &[f64]) {
        self.profile.learn(x);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.profile.nearest(x, None).map_or(0.0, |found| finite_score(found.distance))
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        self.profile.score_learn(x).map_or(0.0, |found| finite_score(found.distance))
    }

    fn explanation_names(&self) -> Vec<String> {
        let mut names = vec!["match_start".to_string(), "distance".to_string()];
        names.extend(self.names.iter().cloned());
        names
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        let (head, channels) = out.split_at_mut(2);
        channels.fill(f64::NAN);
        let found = self.profile.nearest(x, Some(channels));
        explain(found, head);
        if found.is_none() {
            channels.fill(f64::NAN);
        }
    }
}

const SHARED_PARAMS: [ParamDoc; 4] = [
    ParamDoc { name: "subsequence_length", ty: "int >= 2", required: true, help: "values per subsequence" },
    ParamDoc {
        name: "window_size",
        ty: "int >= subsequence_length + exclusion_zone + 1",
        required: false,
        help: "values kept including the candidate; default 16 * subsequence_length",
    },
    ParamDoc {
        name: "normalize",
        ty: "bool",
        required: false,
        help: "z-normalised distance (default true), else plain Euclidean",
    },
    ParamDoc {
        name: "exclusion_zone",
        ty: "int >= 0",
        required: false,
        help: "starts this close to the query's are not matched; default ceil(subsequence_length / 4)",
    },
];

impl Describe for RollingMatrixProfileParams {
    const REFERENCE: &'static str = "Yeh, Zhu, Ulanova, Begum, Ding, Dau, Silva, Mueen & Keogh 2016, Matrix Profile I: All Pairs Similarity Joins for Time Series (ICDM)";
    const SUMMARY: &'static str =
        "distance from the newest subsequence of one series to its nearest earlier one in a window (matrix profile)";
    const PARAMS: &'static [ParamDoc] = &[
        SHARED_PARAMS[0],
        SHARED_PARAMS[1],
        SHARED_PARAMS[2],
        SHARED_PARAMS[3],
        ParamDoc {
            name: "key",
            ty: "feature name",
            required: false,
            help: "feature to read; optional when the input has one feature",
        },
    ];
    const SERIES: bool = true;
    fn example() -> Self {
        RollingMatrixProfileParams { subsequence_length: Some(8), ..Default::default() }
    }
}

impl Describe for MultivariateRollingMatrixProfileParams {
    const REFERENCE: &'static str = "Matrix Profile for Anomaly Detection on Multidimensional Time Series (arXiv:2409.09298), pre-max aggregation; Yeh et al. 2016 (ICDM) for the profile";
    const SUMMARY: &'static str =
        "smallest over earlier starts of the largest channel distance to the newest multivariate subsequence";
    const PARAMS: &'static [ParamDoc] = &[
        SHARED_PARAMS[0],
        SHARED_PARAMS[1],
        SHARED_PARAMS[2],
        SHARED_PARAMS[3],
        ParamDoc { name: "keys", ty: "[feature, ...]", required: false, help: "the channels; default every feature" },
    ];
    const SERIES: bool = true;
    fn example() -> Self {
        MultivariateRollingMatrixProfileParams { subsequence_length: Some(8), ..Default::default() }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use onad_core::Schema;

    /// The fidelity fixture: columns by name (`scripts/fidelity/gen_timeseries_fixture.py`).
    pub(crate) fn fixture() -> (Vec<String>, Vec<Vec<f64>>) {
        let text = include_str!("../../tests/fixtures/fidelity/timeseries.csv");
        let mut lines = text.lines();
        let header = lines.next().unwrap().split(',').map(str::to_owned).collect();
        let rows = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        (header, rows)
    }

    pub(crate) fn col(header: &[String], name: &str) -> usize {
        header.iter().position(|h| h == name).unwrap()
    }

    fn mp(m: usize) -> RollingMatrixProfile {
        RollingMatrixProfileParams { subsequence_length: Some(m), ..Default::default() }
            .build(&Schema::shared(["v"]).unwrap())
            .unwrap()
    }

    fn explain(model: &impl Detector, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; model.explanation_names().len()];
        model.explain_one(x, &mut out);
        out
    }

    #[test]
    fn matches_aberrant_on_the_fixture() {
        let (h, rows) = fixture();
        let (a, b) = (col(&h, "a"), col(&h, "b"));
        let one = Schema::shared(["a"]).unwrap();
        let mut norm =
            RollingMatrixProfileParams { subsequence_length: Some(12), ..Default::default() }.build(&one).unwrap();
        let raw_params = RollingMatrixProfileParams {
            subsequence_length: Some(12),
            window_size: Some(100),
            normalize: false,
            exclusion_zone: Some(5),
            key: None,
        };
        let mut raw = raw_params.build(&one).unwrap();
        let mut multi = MultivariateRollingMatrixProfileParams { subsequence_length: Some(10), ..Default::default() }
            .build(&Schema::shared(["a", "b"]).unwrap())
            .unwrap();
        let close = |x: f64, y: f64, what: &str, i: usize| {
            assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()), "{what} row {i}: {x} vs aberrant {y}")
        };
        for (i, r) in rows.iter().enumerate() {
            let (va, vb) = (r[a], r[b]);
            close(norm.score_one(&[va]), r[col(&h, "mp")], "mp", i);
            let why = explain(&norm, &[va]);
            let start = r[col(&h, "mp_start")];
            assert!(why[0] == start || (start < 0.0 && why[0].is_nan()), "mp start row {i}: {} vs {start}", why[0]);
            close(raw.score_one(&[va]), r[col(&h, "mp_raw")], "mp_raw", i);
            let why = explain(&multi, &[va, vb]);
            close(multi.score_one(&[va, vb]), r[col(&h, "mvmp")], "mvmp", i);
            let start = r[col(&h, "mvmp_start")];
            if start >= 0.0 {
                assert_eq!(why[0], start, "mvmp start row {i}");
                close(why[2], r[col(&h, "mvmp_a")], "mvmp_a", i);
                close(why[3], r[col(&h, "mvmp_b")], "mvmp_b", i);
            }
            norm.learn_one(&[va]);
            raw.learn_one(&[va]);
            multi.learn_one(&[va, vb]);
        }
    }

    #[test]
    fn hand_checked_distances_and_earliest_tie() {
        let schema = Schema::shared(["v"]).unwrap();
        let params = RollingMatrixProfileParams {
            subsequence_length: Some(2),
            exclusion_zone: Some(0),
            normalize: false,
            ..Default::default()
        };
        let mut raw = params.build(&schema).unwrap();
        let mut norm = RollingMatrixProfileParams { normalize: true, ..params }.build(&schema).unwrap();
        for v in [1.0, 2.0, 4.0] {
            raw.learn_one(&[v]);
            norm.learn_one(&[v]);
        }
        // Query [4, 7] against [1, 2] (sqrt 34) and [2, 4] (sqrt 13).
        assert!((raw.score_one(&[7.0]) - 13f64.sqrt()).abs() < 1e-12);
        assert_eq!(explain(&raw, &[7.0])[0], 1.0);
        // z-normalised, every rising pair is [-1, 1]: distance 0, the earliest start wins; a falling pair
        // [1, -1] is sqrt(8) from a rising one.
        assert_eq!(norm.score_one(&[7.0]), 0.0);
        assert_eq!(explain(&norm, &[7.0]), [0.0, 0.0]);
        assert!((norm.score_one(&[0.0]) - 8f64.sqrt()).abs() < 1e-12);
        // Constant query: sqrt(m) from the varying subsequences.
        assert!((norm.score_one(&[4.0]) - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn an_injected_discord_scores_highest_and_warm_up_is_zero() {
        let mut model = mp(20);
        let zone = 5; // ceil(20 / 4)
        let scores: Vec<f64> = (0..1200)
            .map(|i| {
                let t = i as f64 * std::f64::consts::TAU / 50.0;
                let v = t.sin() + if (800..815).contains(&i) { 0.5 * (7.0 * t).sin() } else { 0.0 };
                if i < 20 + zone {
                    assert!(explain(&model, &[v]).iter().all(|w| w.is_nan()), "no match in warm-up");
                }
                model.score_learn_one(&[v])
            })
            .collect();
        assert!(scores[..20 + zone].iter().all(|&s| s == 0.0));
        assert!(scores[20 + zone] >= 0.0);
        // After the first two periods (before them the window holds no full period to match).
        let top = (100..1200).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        assert!((800..835).contains(&top), "top discord at {top}");
        assert!(scores[700] < 1e-5 && scores[1100] < 1e-5, "periodic rows have exact matches");
    }

    #[test]
    fn matches_stay_outside_the_exclusion_zone_and_inside_the_window() {
        for zone in [0, 3, 9] {
            let params = RollingMatrixProfileParams {
                subsequence_length: Some(10),
                window_size: Some(60),
                exclusion_zone: Some(zone),
                ..Default::default()
            };
            let mut model = params.build(&Schema::shared(["v"]).unwrap()).unwrap();
            for i in 0..400usize {
                // A slow ramp: the nearest subsequence is always the closest allowed one in time.
                let v = (i as f64 * 0.05).sin() + 1e-3 * ((i * 7) % 5) as f64;
                let why = explain(&model, &[v]);
                if i >= 10 + zone {
                    let q = (i + 1 - 10) as f64;
                    assert!(why[0] <= q - zone as f64 - 1.0, "zone {zone} row {i}: start {}", why[0]);
                    assert!(why[0] >= (i + 1).saturating_sub(60) as f64, "zone {zone} row {i}: outside the window");
                }
                model.learn_one(&[v]);
            }
        }
    }

    #[test]
    fn nan_subsequences_are_neither_scored_nor_matched() {
        let mut model = mp(8);
        let mut starts = Vec::new();
        for i in 0..400 {
            let v = if i == 200 { f64::NAN } else { (i as f64 * 0.4).sin() };
            let s = model.score_one(&[v]);
            let why = explain(&model, &[v]);
            if (200..208).contains(&i) {
                assert_eq!(s, 0.0, "row {i}: the query holds the NaN");
                assert!(why[0].is_nan());
            } else if i > 20 {
                starts.push(why[0]);
            }
            model.learn_one(&[v]);
        }
        assert!(starts.iter().all(|&j| !(193.0..=200.0).contains(&j)), "a start holding the NaN was matched");
        assert!(model.score_one(&[f64::INFINITY]) == 0.0);
    }

    #[test]
    fn a_missing_channel_is_left_out_of_the_maximum() {
        let params = MultivariateRollingMatrixProfileParams { subsequence_length: Some(6), ..Default::default() };
        let mut model = params.build(&Schema::shared(["a", "b"]).unwrap()).unwrap();
        for i in 0..150 {
            let t = i as f64 * 0.5;
            model.learn_one(&[t.sin(), if i == 149 { f64::NAN } else { t.cos() }]);
        }
        let t = 150.0f64 * 0.5;
        let why = explain(&model, &[t.sin(), t.cos()]);
        assert!(why[3].is_nan(), "channel b's query holds the NaN");
        assert_eq!(why[1], why[2], "the score is channel a's distance");
        assert!(explain(&model, &[f64::NAN, f64::NAN]).iter().all(|w| w.is_nan()));
        assert_eq!(model.score_one(&[f64::NAN, f64::NAN]), 0.0);
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let schema = Schema::shared(["v"]).unwrap();
        let err = RollingMatrixProfileParams::default().build(&schema).unwrap_err();
        assert_eq!(err, ParamError::Missing("subsequence_length"));
        let err = RollingMatrixProfileParams { subsequence_length: Some(1), ..Default::default() }
            .build(&schema)
            .unwrap_err();
        assert!(err.to_string().contains("subsequence_length") && err.to_string().contains("at least 2"), "{err}");
        let err =
            RollingMatrixProfileParams { subsequence_length: Some(8), window_size: Some(10), ..Default::default() }
                .build(&schema)
                .unwrap_err();
        assert!(err.to_string().contains("window_size") && err.to_string().contains("11"), "{err}");
        let err = MultivariateRollingMatrixProfileParams {
            subsequence_length: Some(8),
            keys: Some(vec!["w".into()]),
            ..Default::default()
        }
        .build(&schema)
        .unwrap_err();
        assert!(err.to_string().contains("keys"), "{err}");
        let defaults = RollingMatrixProfileParams { subsequence_length: Some(8), ..Default::default() };
        let model = defaults.build(&schema).unwrap();
        assert_eq!((model.profile.window_size, model.profile.exclusion_zone, model.profile.normalize), (128, 2, true));
    }

    #[test]
    fn json_round_trip_mid_stream_gives_the_same_scores() {
        let mut a = mp(8);
        let series = |i: usize| (i as f64 * 0.3).sin() + 0.1 * ((i * 13) % 7) as f64;
        (0..300).for_each(|i| a.learn_one(&[series(i)]));
        let mut b: RollingMatrixProfile = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        for i in 300..600 {
            assert_eq!(a.score_learn_one(&[series(i)]).to_bits(), b.score_learn_one(&[series(i)]).to_bits());
        }
        assert_eq!(a, b);
    }
}
