//! StreamRandomHistogramForest: Python onad 0.3.0's `iforest/rand_hist.py`, an ensemble of independent
//! per-feature histograms on random sub-ranges, with exponential decay once a window's worth of rows has
//! been counted. Not a tree model despite the family and the name (aberrant's STREAMRHF is a different
//! algorithm).
//!
//! Every count of every estimator lives in one flat vector, `(estimator, feature, bin)` in that order, and
//! the per-histogram totals are kept beside it, so a learn touches one bin and one total per histogram and
//! a score reads one bin and one total per histogram: nothing is allocated or rebuilt per row.

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::rng::{unit, unit_rng};

/// The value range the histograms of [`StreamRandomHistogramForest`] are laid on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistogramRange {
    /// Each feature's range is the smallest and largest finite value learned so far, and a value is
    /// placed by its position `(x - min) / (max - min)` in it. Works on raw input. The default.
    #[default]
    Learned,
    /// Values are taken as they are, as positions in [0, 1]: onad's assumption, and onad's results
    /// exactly, for input already scaled to [0, 1].
    Unit,
}

/// Hyperparameters of [`StreamRandomHistogramForest`], with onad's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamRandomHistogramForestParams {
    /// Number of estimators, each one histogram per feature (default 25).
    pub n_estimators: usize,
    /// Bins of every histogram (default 10).
    pub max_bins: usize,
    /// Rows counted before the counts start to decay (default 256).
    pub window_size: usize,
    /// Seed of the estimators' generators; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
    /// `learned` (each feature's range from the data, the default) or `unit` (input in [0, 1], as onad).
    pub feature_range: HistogramRange,
}

impl Default for StreamRandomHistogramForestParams {
    fn default() -> Self {
        StreamRandomHistogramForestParams {
            n_estimators: 25,
            max_bins: 10,
            window_size: 256,
            seed: None,
            feature_range: HistogramRange::Learned,
        }
    }
}

/// One histogram's bin edges, in positions of the feature's range: `max_bins + 1` edges from `low` to
/// `high`, edge `i < max_bins` at `i * step + low` and the last at `high` (numpy's `linspace`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Edges {
    low: f64,
    step: f64,
    high: f64,
}

/// Scores a row by how rare its values are in random histograms of the recent data (Python onad
/// `StreamRandomHistogramForest(n_estimators, max_bins, window_size, seed)`).
///
/// Reference: onad 0.3.0, `onad/model/iforest/rand_hist.py` (no paper is cited; the model is a
/// randomised variant of histogram-based outlier scores, HBOS, Goldstein and Dengel 2012). Each of the
/// `n_estimators` estimators holds, for every feature `f`, a histogram of `B = max_bins` equal bins over a
/// random interval `[a, b]` with `a ~ U(0, 0.5)` and `b ~ U(0.5, 1)` of the feature's range; values below
/// `a` fall in the first bin, values from `b` up in the last. With `c_f(x)` the count of the bin of `x_f`
/// and `n_f` the histogram's total,
///
/// `score(x) = (1/T) sum_{t=1}^{T} (1 - prod_f (c_f(x) + 1) / (n_f + B))`,
///
/// in [0, 1), higher for rarer rows; 0.0 before the first learn. Learning adds 1 to the bin of each
/// value; once more than `window_size` rows are counted, every count is multiplied by 0.9 and the row count
/// becomes `floor(0.9 * count)`, so after the window fills the counts decay by 0.9 every
/// `window_size + 1 - floor(0.9 (window_size + 1))` rows (26 at the default).
///
/// Input: raw values. With `feature_range = "learned"` (default) the histograms are laid on each feature's
/// learned range, the smallest and largest finite values learned so far: a value sits at position
/// `u = (x - min) / (max - min)` (0.5 while a feature has one value), and `a`, `b` and the bins are
/// positions. When a later value widens the range, the counts move to the bins of the wider range: each
/// old bin's count is spread evenly over the values it covered (an edge bin over the part of the old
/// range it covered) and shared among the new bins by overlap, so the histograms keep approximating the
/// values' density (how uneven they were inside an old bin is lost). Widening is rare after the first rows
/// of a stationary stream. With `feature_range = "unit"` values are positions as they are (onad's
/// assumption of input in [0, 1]), and the model computes exactly what onad does, given the same
/// intervals (bit for bit on SHUTTLE: `tests/fidelity.rs`). In moderate dimension the product is so
/// small that scores round to 1.0 and tie, as onad's do.
///
/// Cost: `learn_one` O(T d B) (the touched histogram's total is recomputed in numpy's summation order,
/// and a decay rescales every count), plus O(T B^2) for each feature whose range widens; `score_one`
/// O(T d); memory `T d B` counts.
///
/// Missing values: a missing value is not counted (its histograms are left as they are) and is left out
/// of the product when scoring. Infinite values fall in the edge bins and do not widen the learned range.
///
/// Deviations from onad 0.3.0: the intervals come from one PCG64 generator per estimator seeded from
/// `(seed, estimator index)`, not from Python's global `random` (which onad reseeds, changing the
/// process's global state), so the intervals differ from onad's for the same seed, and `seed = None`
/// means seed 0; the default learned range replaces onad's fixed [0, 1]; onad counts a missing key as 0.0
/// and a NaN in the last bin.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::StreamRandomHistogramForestParams;
/// let params = StreamRandomHistogramForestParams { seed: Some(7), ..Default::default() };
/// let mut m = params.build(&Schema::shared(["temperature", "pressure"]).unwrap()).unwrap();
/// assert_eq!(m.score_one(&[20.0, 1000.0]), 0.0); // nothing learned yet
/// for i in 0..500 {
///     let t = (i % 50) as f64;
///     let temperature = if i % 100 == 0 { 30.0 } else { 20.0 + 0.04 * t }; // raw units, rare spikes
///     m.learn_one(&[temperature, 1000.0 + t]);
/// }
/// let normal = m.score_one(&[21.0, 1010.0]);
/// let rare = m.score_one(&[28.0, 1010.0]);
/// assert!(rare > normal);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "State")]
pub struct StreamRandomHistogramForest {
    n_estimators: usize,
    max_bins: usize,
    window_size: usize,
    feature_range: HistogramRange,
    d: usize,
    /// Bin edges of histogram `(estimator, feature)` at `estimator * d + feature`.
    edges: Vec<Edges>,
    /// Bin counts, `((estimator * d + feature) * max_bins + bin)`.
    counts: Vec<f64>,
    /// Each histogram's total, `counts` summed as numpy does.
    totals: Vec<f64>,
    /// Smallest and largest finite value learned per feature (`None` before any).
    range: Vec<Option<[f64; 2]>>,
    /// onad's row count: rows learned since the last decay, and 90% of them at each decay.
    count: u64,
    /// Whether any row was learned (onad scores 0.0 before).
    learned: bool,
}

/// The serialized fields of [`StreamRandomHistogramForest`], checked before a model is made of them, so a
/// damaged state is refused instead of panicking later.
#[derive(Deserialize)]
struct State {
    n_estimators: usize,
    max_bins: usize,
    window_size: usize,
    feature_range: HistogramRange,
    d: usize,
    edges: Vec<Edges>,
    counts: Vec<f64>,
    totals: Vec<f64>,
    range: Vec<Option<[f64; 2]>>,
    count: u64,
    learned: bool,
}

impl TryFrom<State> for StreamRandomHistogramForest {
    type Error = String;
    fn try_from(s: State) -> Result<Self, String> {
        let histograms = s.n_estimators.checked_mul(s.d).ok_or("too many histograms")?;
        if s.n_estimators == 0 || s.max_bins == 0 || s.window_size == 0 || s.d == 0 {
            return Err("n_estimators, max_bins, window_size and the feature count must be at least 1".into());
        }
        if s.edges.len() != histograms
            || s.totals.len() != histograms
            || Some(s.counts.len()) != histograms.checked_mul(s.max_bins)
            || s.range.len() != s.d
        {
            return Err("lengths of edges, counts, totals or ranges do not match the parameters".into());
        }
        if s.edges.iter().any(|e| !(e.low.is_finite() && e.high.is_finite() && e.step > 0.0 && e.low < e.high)) {
            return Err("bin edges must be finite and increasing".into());
        }
        if s.counts.iter().chain(&s.totals).any(|c| !(c.is_finite() && *c >= 0.0))
            || s.range.iter().flatten().any(|[low, high]| !(low.is_finite() && high.is_finite() && low <= high))
        {
            return Err("counts must be finite and non-negative, ranges finite and ordered".into());
        }
        Ok(StreamRandomHistogramForest {
            n_estimators: s.n_estimators,
            max_bins: s.max_bins,
            window_size: s.window_size,
            feature_range: s.feature_range,
            d: s.d,
            edges: s.edges,
            counts: s.counts,
            totals: s.totals,
            range: s.range,
            count: s.count,
            learned: s.learned,
        })
    }
}

impl DetectorParams for StreamRandomHistogramForestParams {
    type Model = StreamRandomHistogramForest;
    fn build(&self, schema: &SchemaRef) -> Result<StreamRandomHistogramForest, ParamError> {
        if self.n_estimators == 0 {
            return Err(ParamError::invalid("n_estimators", "must be at least 1, got 0"));
        }
        if self.max_bins == 0 {
            return Err(ParamError::invalid("max_bins", "must be at least 1, got 0"));
        }
        if self.window_size == 0 {
            return Err(ParamError::invalid("window_size", "must be at least 1, got 0"));
        }
        if schema.is_empty() {
            return Err(ParamError::Schema("stream_random_histogram_forest needs at least one feature".into()));
        }
        let d = schema.len();
        // At most 2^28 counts (2 GiB).
        let histograms = self.n_estimators.saturating_mul(d);
        if histograms.saturating_mul(self.max_bins) > 1 << 28 {
            return Err(ParamError::invalid(
                "n_estimators",
                format!(
                    "n_estimators * features * max_bins must not exceed 2^28, got {} * {d} * {}",
                    self.n_estimators, self.max_bins
                ),
            ));
        }
        let seed = self.seed.unwrap_or(0);
        let mut edges = Vec::with_capacity(histograms);
        for t in 0..self.n_estimators {
            let mut rng = unit_rng(seed, t as u64);
            for _ in 0..d {
                // onad: random.uniform(0, 0.5), then random.uniform(0.5, 1.0); uniform(a, b) = a + (b - a) U.
                let low = 0.5 * unit(&mut rng);
                let high = 0.5 + 0.5 * unit(&mut rng);
                edges.push(Edges::new(low, high, self.max_bins));
            }
        }
        Ok(StreamRandomHistogramForest {
            n_estimators: self.n_estimators,
            max_bins: self.max_bins,
            window_size: self.window_size,
            feature_range: self.feature_range,
            d,
            edges,
            counts: vec![0.0; histograms * self.max_bins],
            totals: vec![0.0; histograms],
            range: vec![None; d],
            count: 0,
            learned: false,
        })
    }
}

impl Edges {
    /// numpy's `linspace(low, high, bins + 1)`: `i * step + low` with `step = (high - low) / bins`, and
    /// `high` itself last.
    fn new(low: f64, high: f64, bins: usize) -> Edges {
        Edges { low, step: (high - low) / bins as f64, high }
    }

    /// The bin of position `u` (never NaN here): numpy's `clip(digitize(u, edges) - 1, 0, bins - 1)`, that is
    /// the last bin whose left edge is at most `u`, the first bin below the first edge and the last from
    /// the last edge up.
    #[inline]
    fn bin(&self, u: f64, bins: usize) -> usize {
        if u < self.low {
            return 0;
        }
        if u >= self.high {
            return bins - 1;
        }
        // A guess from the step, corrected against the edges as numpy computes them.
        let edge = |i: usize| i as f64 * self.step + self.low;
        let mut i = (((u - self.low) / self.step) as usize).min(bins - 1);
        while i > 0 && edge(i) > u {
            i -= 1;
        }
        while i + 1 < bins && edge(i + 1) <= u {
            i += 1;
        }
        i
    }
}

/// numpy's `sum` of contiguous doubles: pairwise summation, eight accumulators per block of up to 128
/// values, halves beyond (checked against numpy 2 on random arrays). `value(i)` gives element `i` of `n`.
fn numpy_sum(n: usize, value: &impl Fn(usize) -> f64) -> f64 {
    pairwise(0, n, value)
}

fn pairwise(start: usize, n: usize, value: &impl Fn(usize) -> f64) -> f64 {
    if n < 8 {
        let mut sum = 0.0;
        for i in 0..n {
            sum += value(start + i);
        }
        sum
    } else if n <= 128 {
        let mut r = [0.0; 8];
        for (j, slot) in r.iter_mut().enumerate() {
            *slot = value(start + j);
        }
        let mut i = 8;
        while i < n - n % 8 {
            for (j, slot) in r.iter_mut().enumerate() {
                *slot += value(start + i + j);
            }
            i += 8;
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            sum += value(start + i);
            i += 1;
        }
        sum
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise(start, half, value) + pairwise(start + half, n - half, value)
    }
}

thread_local! {
    /// Positions of one row's values; reused so that scoring does not allocate.
    static POSITIONS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl StreamRandomHistogramForest {
    /// The position of `x` (finite or infinite, not NaN) in feature `f`'s range.
    #[inline]
    fn position(&self, f: usize, x: f64) -> f64 {
        match self.feature_range {
            HistogramRange::Unit => x,
            HistogramRange::Learned => {
                let Some([low, high]) = self.range[f] else {
                    return if x.is_infinite() { x } else { 0.5 };
                };
                if high > low {
                    let width = high - low;
                    if width.is_finite() {
                        (x - low) / width
                    } else {
                        // The width overflowed: the same position from halved values.
                        (x * 0.5 - low * 0.5) / (high * 0.5 - low * 0.5)
                    }
                } else if x > high {
                    f64::INFINITY
                } else if x < low {
                    f64::NEG_INFINITY
                } else {
                    0.5
                }
            }
        }
    }

    /// Fills `positions` with the position of every feature of `x` (NaN where missing).
    fn positions(&self, x: &[f64], positions: &mut Vec<f64>) {
        positions.clear();
        positions.extend(x.iter().enumerate().map(|(f, &v)| if v.is_nan() { v } else { self.position(f, v) }));
    }

    fn score_with(&self, positions: &[f64]) -> f64 {
        let (d, bins) = (self.d, self.max_bins);
        let smoothing = bins as f64;
        let estimator = |t: usize| {
            let mut prob = 1.0;
            for (f, &u) in positions.iter().enumerate() {
                if u.is_nan() {
                    continue;
                }
                let h = t * d + f;
                let count = self.counts[h * bins + self.edges[h].bin(u, bins)];
                prob *= (count + 1.0) / (self.totals[h] + smoothing);
            }
            1.0 - prob
        };
        numpy_sum(self.n_estimators, &estimator) / self.n_estimators as f64
    }

    /// Moves the counts of feature `f`'s histograms from their bins over the range `old` to the bins over
    /// the wider range now held, each bin's count spread evenly over the values its bin covered (the edge
    /// bins over the part of the old range they covered) and shared among the new bins in proportion to
    /// the overlap; a one-point old range puts its counts in the bin of that point. `scratch` is reused.
    fn rebin(&mut self, f: usize, old: [f64; 2], scratch: &mut Vec<f64>) {
        let (d, bins) = (self.d, self.max_bins);
        let [low, high] = old;
        for t in 0..self.n_estimators {
            let h = t * d + f;
            let edges = self.edges[h];
            let edge = |i: usize| if i == bins { edges.high } else { i as f64 * edges.step + edges.low };
            scratch.clear();
            scratch.resize(bins, 0.0);
            for k in 0..bins {
                let count = self.counts[h * bins + k];
                if count == 0.0 {
                    continue;
                }
                // The old bin's span in old positions (edge bins end at the old range's ends), as values,
                // then as new positions.
                let from = if k == 0 { 0.0 } else { edge(k) };
                let to = if k + 1 == bins { 1.0 } else { edge(k + 1) };
                let (from, to) = if high > low {
                    (low + from.clamp(0.0, 1.0) * (high - low), low + to.clamp(0.0, 1.0) * (high - low))
                } else {
                    (low, low)
                };
                let (p, q) = (self.position(f, from), self.position(f, to));
                if !(p.is_finite() && q.is_finite()) {
                    scratch[k] += count;
                } else if q <= p {
                    scratch[edges.bin(p, bins)] += count;
                } else {
                    for (j, slot) in scratch.iter_mut().enumerate() {
                        let left = if j == 0 { f64::NEG_INFINITY } else { edge(j) };
                        let right = if j + 1 == bins { f64::INFINITY } else { edge(j + 1) };
                        let overlap = q.min(right) - p.max(left);
                        if overlap > 0.0 {
                            *slot += count * (overlap / (q - p));
                        }
                    }
                }
            }
            let counts = &mut self.counts[h * bins..(h + 1) * bins];
            counts.copy_from_slice(scratch);
            self.totals[h] = numpy_sum(bins, &|i| counts[i]);
        }
    }

    fn learn_with(&mut self, x: &[f64], positions: &mut Vec<f64>) {
        if self.feature_range == HistogramRange::Learned {
            for (f, &v) in x.iter().enumerate() {
                if v.is_finite() {
                    let old = self.range[f];
                    let new = match old {
                        Some([low, high]) => [low.min(v), high.max(v)],
                        None => [v, v],
                    };
                    self.range[f] = Some(new);
                    if let Some(old) = old.filter(|&old| old != new) {
                        self.rebin(f, old, positions);
                    }
                }
            }
        }
        self.positions(x, positions);
        let (d, bins) = (self.d, self.max_bins);
        for t in 0..self.n_estimators {
            for (f, &u) in positions.iter().enumerate() {
                if u.is_nan() {
                    continue;
                }
                let h = t * d + f;
                let counts = &mut self.counts[h * bins..(h + 1) * bins];
                counts[self.edges[h].bin(u, bins)] += 1.0;
                self.totals[h] = numpy_sum(bins, &|i| counts[i]);
            }
        }
        self.learned = true;
        self.count += 1;
        if self.count > self.window_size as u64 {
            for c in &mut self.counts {
                *c *= 0.9;
            }
            for (h, total) in self.totals.iter_mut().enumerate() {
                let counts = &self.counts[h * bins..(h + 1) * bins];
                *total = numpy_sum(bins, &|i| counts[i]);
            }
            self.count = (self.count as f64 * 0.9) as u64;
        }
    }
}

impl Detector for StreamRandomHistogramForest {
    fn learn_one(&mut self, x: &[f64]) {
        POSITIONS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut positions) => self.learn_with(x, &mut positions),
            Err(_) => self.learn_with(x, &mut Vec::new()),
        });
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if !self.learned {
            return 0.0;
        }
        let score = POSITIONS.with(|cell| {
            let run = |positions: &mut Vec<f64>| {
                self.positions(x, positions);
                self.score_with(positions)
            };
            match cell.try_borrow_mut() {
                Ok(mut positions) => run(&mut positions),
                Err(_) => run(&mut Vec::new()),
            }
        });
        finite_score(score)
    }
}

impl Describe for StreamRandomHistogramForestParams {
    const REFERENCE: &'static str = "Python onad 0.3.0's per-feature random histogram forest (no paper cited)";
    const SUMMARY: &'static str =
        "mean over estimators of 1 - the product of per-feature bin probabilities in random histograms (onad)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "n_estimators",
            ty: "int >= 1",
            required: false,
            help: "estimators, one histogram per feature each (default 25)",
        },
        ParamDoc { name: "max_bins", ty: "int >= 1", required: false, help: "bins per histogram (default 10)" },
        ParamDoc {
            name: "window_size",
            ty: "int >= 1",
            required: false,
            help: "rows counted before the counts decay by 0.9 (default 256)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the estimators (default 0)" },
        ParamDoc {
            name: "feature_range",
            ty: "learned | unit",
            required: false,
            help: "each feature's range learned from the data (default) or input in [0, 1] (onad)",
        },
    ];
    fn example() -> Self {
        // onad's SHUTTLE test configuration.
        StreamRandomHistogramForestParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn params(n_estimators: usize, max_bins: usize, window_size: usize, range: HistogramRange) -> Params {
        StreamRandomHistogramForestParams { n_estimators, max_bins, window_size, seed: Some(3), feature_range: range }
    }
    type Params = StreamRandomHistogramForestParams;

    fn build(p: &Params, d: usize) -> StreamRandomHistogramForest {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    /// numpy's `clip(digitize(u, edges) - 1, 0, bins - 1)` by a scan over the edges as numpy lays them.
    fn digitize(e: &Edges, bins: usize, u: f64) -> usize {
        let edges: Vec<f64> = (0..=bins).map(|i| if i == bins { e.high } else { i as f64 * e.step + e.low }).collect();
        let right = edges.iter().filter(|&&x| x <= u).count();
        right.saturating_sub(1).min(bins - 1)
    }

    #[test]
    fn bins_follow_numpy_digitize_at_and_between_edges() {
        for bins in [1, 2, 3, 7, 10, 64] {
            for (low, high) in [(0.0, 0.5), (0.1234, 0.9876), (0.4999, 0.5001), (0.3, 0.7)] {
                let e = Edges::new(low, high, bins);
                let mut probes = vec![-1.0, 0.0, low, high, 1.0, 2.0, f64::INFINITY, f64::NEG_INFINITY];
                for i in 0..=bins {
                    let edge = if i == bins { high } else { i as f64 * e.step + low };
                    probes.extend([edge, edge.next_up(), edge.next_down(), edge + e.step * 0.5]);
                }
                for u in probes {
                    assert_eq!(e.bin(u, bins), digitize(&e, bins, u), "bins {bins} [{low}, {high}] u {u}");
                }
            }
        }
    }

    #[test]
    fn numpy_sum_adds_in_numpy_order() {
        // A sum that depends on the order: numpy gives 8.0 (`np.sum` of this array), a loop 0.0.
        let v = [1e16, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1e16];
        let got = numpy_sum(v.len(), &|i| v[i]);
        let blocks = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
        assert_eq!(got, (blocks + v[8]) + v[9]);
        assert_eq!(got, 8.0);
        let sequential: f64 = v.iter().sum();
        assert_ne!(got, sequential);
        // `np.sum([0.1] * 25)`.
        assert_eq!(numpy_sum(25, &|_| 0.1), 2.500_000_000_000_000_4);
        // Short, long and split sums equal the exact sum on integers.
        for n in [1, 2, 7, 8, 9, 16, 17, 128, 129, 130, 300, 1000] {
            let got = numpy_sum(n, &|i| i as f64);
            assert_eq!(got, (n * (n - 1) / 2) as f64, "{n}");
        }
    }

    /// The model's estimate written out: per estimator, per feature, count the rows learned into each bin,
    /// decaying as onad does, then 1 - prod (c + 1) / (n + B), averaged.
    #[test]
    fn scores_equal_a_direct_count_with_decay() {
        let (t, bins, w, d) = (4, 5, 12, 3);
        let mut m = build(&params(t, bins, w, HistogramRange::Unit), d);
        let rows: Vec<Vec<f64>> =
            (0..80).map(|i| (0..d).map(|j| ((i * 37 + j * 11) % 23) as f64 / 20.0 - 0.05).collect()).collect();
        let mut counts = vec![vec![vec![0.0f64; bins]; d]; t];
        let mut count = 0u64;
        for (i, x) in rows.iter().enumerate() {
            let got = m.score_one(x);
            let want = if i == 0 {
                0.0
            } else {
                let mut sum = 0.0;
                for (e, per_feature) in counts.iter().enumerate() {
                    let mut prob = 1.0;
                    for f in 0..d {
                        let c = &per_feature[f];
                        let b = digitize(&m.edges[e * d + f], bins, x[f]);
                        prob *= (c[b] + 1.0) / (c.iter().sum::<f64>() + bins as f64);
                    }
                    sum += 1.0 - prob;
                }
                sum / t as f64
            };
            assert!((got - want).abs() < 1e-12, "row {i}: {got} vs {want}");
            assert!((0.0..1.0).contains(&got));
            m.learn_one(x);
            for (e, per_feature) in counts.iter_mut().enumerate() {
                for f in 0..d {
                    per_feature[f][digitize(&m.edges[e * d + f], bins, x[f])] += 1.0;
                }
            }
            count += 1;
            if count > w as u64 {
                counts.iter_mut().flatten().flatten().for_each(|c| *c *= 0.9);
                count = (count as f64 * 0.9) as u64;
            }
            assert_eq!(m.count, count, "row {i}");
        }
        // Once full, the counts decay every 2 rows (13 -> 11), so a total tends to T = 0.9 (T + 2) = 18.
        assert!((m.totals[0] - 18.0).abs() < 1.0, "{}", m.totals[0]);
    }

    #[test]
    fn decay_runs_every_26_rows_at_the_default_window() {
        let mut m = build(&params(1, 10, 256, HistogramRange::Unit), 1);
        let mut decays = Vec::new();
        for i in 0..400 {
            let before = m.count;
            m.learn_one(&[0.5]);
            if m.count <= before {
                decays.push(i + 1);
            }
        }
        assert_eq!(decays, [257, 283, 309, 335, 361, 387]);
        assert_eq!(m.count, 231 + 13);
    }

    #[test]
    fn intervals_are_random_sub_ranges_one_generator_per_estimator() {
        let m = build(&params(50, 10, 256, HistogramRange::Learned), 4);
        for e in &m.edges {
            assert!((0.0..0.5).contains(&e.low) && (0.5..1.0).contains(&e.high), "{e:?}");
        }
        let lows: Vec<f64> = m.edges.iter().map(|e| e.low).collect();
        let mean = lows.iter().sum::<f64>() / lows.len() as f64;
        assert!((mean - 0.25).abs() < 0.03, "{mean}");
        // Estimator t's intervals do not depend on how many estimators there are, and seeds differ.
        let fewer = build(&params(3, 10, 256, HistogramRange::Learned), 4);
        assert_eq!(&m.edges[..12], &fewer.edges[..]);
        let mut other = params(3, 10, 256, HistogramRange::Learned);
        other.seed = Some(4);
        assert_ne!(build(&other, 4).edges, fewer.edges);
        // Estimators differ from each other (no shifted copies of one stream).
        assert_ne!(m.edges[0], m.edges[4]);
    }

    #[test]
    fn learned_range_scales_raw_input_like_unit_input() {
        // A raw stream whose first two rows hold both ends of each range scores as its unit-scaled copy:
        // the first row, counted at position 0.5 while its range was one point, is moved to the bin of its
        // value when the second row widens the range. The scalings are exact in binary, so positions
        // equal the unit values bit for bit.
        let unit_rows: Vec<[f64; 2]> = [[0.0, 1.0], [1.0, 0.0]]
            .into_iter()
            .chain((0..300).map(|i| [(i % 17) as f64 / 16.0, ((i * 5) % 9) as f64 / 8.0]))
            .collect();
        let mut unit = build(&params(5, 10, 64, HistogramRange::Unit), 2);
        let mut learned = build(&params(5, 10, 64, HistogramRange::Learned), 2);
        let raw = |x: &[f64; 2]| [1000.0 + 512.0 * x[0], -3.0 + 0.5 * x[1]];
        for x in &unit_rows {
            unit.learn_one(x);
            learned.learn_one(&raw(x));
        }
        for x in &unit_rows[..40] {
            let (a, b) = (unit.score_one(x), learned.score_one(&raw(x)));
            assert_eq!(a.to_bits(), b.to_bits(), "{x:?}: {a} vs {b}");
        }
        assert_eq!(learned.range[0], Some([1000.0, 1512.0]));
    }

    #[test]
    fn widening_the_range_moves_counts_to_where_their_values_lie() {
        let mut m = build(&params(20, 10, 1000, HistogramRange::Learned), 1);
        for i in 0..=100 {
            m.learn_one(&[i as f64 / 100.0]); // values in [0, 1]
        }
        m.learn_one(&[3.0]); // the range becomes [0, 3]: the old values sit at positions up to 1/3
        for t in 0..20 {
            let (e, counts) = (m.edges[t], &m.counts[t * 10..(t + 1) * 10]);
            // Counts kept: 101 old values and the new one.
            let total: f64 = counts.iter().sum();
            assert!((total - 102.0).abs() < 1e-9 && (m.totals[t] - total).abs() < 1e-9, "{total}");
            // Every bin lying wholly above position 1/3 holds nothing, but the last (the new value); the
            // first reaches down to minus infinity.
            for j in 1..9 {
                if j as f64 * e.step + e.low > 1.0 / 3.0 + 1e-12 {
                    assert_eq!(counts[j], 0.0, "estimator {t} bin {j}: {counts:?}");
                }
            }
            assert!(counts[9] >= 1.0);
        }
        // Scores now rank by the values' real density: a value in the old range is less rare than 2.0.
        assert!(m.score_one(&[0.2]) < m.score_one(&[2.0]));
    }

    #[test]
    fn rare_values_score_higher_and_missing_values_are_left_out() {
        let mut m = build(&params(25, 10, 256, HistogramRange::Learned), 2);
        for i in 0..600 {
            let v = (i % 10) as f64;
            m.learn_one(&[if i % 50 == 0 { 100.0 } else { v }, 5.0 + v]);
        }
        let normal = m.score_one(&[3.0, 8.0]);
        let rare = m.score_one(&[60.0, 8.0]);
        assert!(rare > normal + 0.05, "{rare} vs {normal}");
        // A missing feature contributes nothing: the score is that of the other feature alone.
        let one = m.score_one(&[f64::NAN, 8.0]);
        assert!(one < normal, "{one} vs {normal}");
        assert_eq!(m.score_one(&[f64::NAN, f64::NAN]), 0.0);
        // Learning a row with a missing value leaves that feature's histograms as they were.
        let before: Vec<f64> = (0..25).map(|t| m.totals[t * 2]).collect();
        m.learn_one(&[f64::NAN, 7.0]);
        let after: Vec<f64> = (0..25).map(|t| m.totals[t * 2]).collect();
        assert_eq!(before, after);
        // Infinities fall in the edge bins and leave the learned range alone.
        m.learn_one(&[f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(m.range[0], Some([0.0, 100.0]));
        assert!(m.score_one(&[f64::INFINITY, f64::NEG_INFINITY]).is_finite());
    }

    #[test]
    fn extreme_values_keep_positions_finite() {
        let mut m = build(&params(3, 10, 256, HistogramRange::Learned), 1);
        m.learn_one(&[-f64::MAX]);
        assert_eq!(m.position(0, -f64::MAX), 0.5);
        m.learn_one(&[f64::MAX]);
        assert_eq!(m.position(0, 0.0), 0.5);
        assert_eq!(m.position(0, f64::MAX), 1.0);
        let s = m.score_one(&[1.0]);
        assert!(s.is_finite() && (0.0..1.0).contains(&s), "{s}");
    }

    #[test]
    fn parameters_are_checked_by_name() {
        let schema = Schema::numbered("f", 2);
        let bad = |p: Params, name: &str| {
            let e = p.build(&schema).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        };
        bad(Params { n_estimators: 0, ..Default::default() }, "n_estimators");
        bad(Params { max_bins: 0, ..Default::default() }, "max_bins");
        bad(Params { window_size: 0, ..Default::default() }, "window_size");
        bad(Params { n_estimators: 1 << 30, ..Default::default() }, "n_estimators");
        assert!(Params::default().build(&Schema::numbered("f", 0)).is_err());
        let p: Params = serde_json::from_str(r#"{"max_bins": 4, "feature_range": "unit"}"#).unwrap();
        assert_eq!((p.n_estimators, p.max_bins, p.window_size, p.feature_range), (25, 4, 256, HistogramRange::Unit));
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut m = build(&params(4, 6, 30, HistogramRange::Learned), 3);
        let row = |i: usize| [(i % 13) as f64, (i * 3 % 7) as f64 * 10.0, -(i as f64)];
        for i in 0..100 {
            m.learn_one(&row(i));
        }
        let bytes = postcard::to_allocvec(&m).unwrap();
        let mut copy: StreamRandomHistogramForest = postcard::from_bytes(&bytes).unwrap();
        // A damaged state is refused: a histogram missing, a count negative.
        let mut state = serde_json::to_value(&m).unwrap();
        state["totals"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<StreamRandomHistogramForest>(state).is_err());
        let mut state = serde_json::to_value(&m).unwrap();
        state["counts"][0] = serde_json::json!(-1.0);
        assert!(serde_json::from_value::<StreamRandomHistogramForest>(state).is_err());
        assert!(serde_json::from_value::<StreamRandomHistogramForest>(serde_json::to_value(&m).unwrap()).is_ok());
        for i in 100..200 {
            assert_eq!(m.score_one(&row(i)).to_bits(), copy.score_one(&row(i)).to_bits());
            m.learn_one(&row(i));
            copy.learn_one(&row(i));
        }
    }
}
