//! LODA: an ensemble of sparse random one-dimensional projections, each with a streaming histogram
//! (aberrant's `StreamingLODA`).

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::rng::{below, unit_rng};

/// Hyperparameters of [`StreamingLODA`] (aberrant 1.3.0 `StreamingLODA` names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingLODAParams {
    /// Number of random projections, each with its own histogram, `>= 1`.
    pub n_projections: usize,
    /// Equal-width bins per histogram, `>= 2`.
    pub n_bins: usize,
    /// Fraction of the features each projection uses, in `(0, 1]`; `None` is `min(1, 1 / sqrt(d))`.
    pub sparsity: Option<f64>,
    /// Learned rows whose projections fix the bin edges and the first counts, `>= 1`.
    pub warm_up_samples: usize,
    /// Factor in `(0, 1]` applied to every count before each learned row after the warm-up (1.0: none).
    pub decay: f64,
    /// A column holding event time, left out of the features (aberrant's `time_key`); `None`: every
    /// column is a feature.
    pub time_key: Option<String>,
    /// Additive smoothing count of every bin, `> 0`.
    pub pseudocount: f64,
    /// Seed of the projections; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
    /// Floor of bin widths and of the density inside the logarithm, `> 0`.
    pub eps: f64,
}

impl Default for StreamingLODAParams {
    fn default() -> Self {
        StreamingLODAParams {
            n_projections: 100,
            n_bins: 32,
            sparsity: None,
            warm_up_samples: 256,
            decay: 1.0,
            time_key: None,
            pseudocount: 1.0,
            seed: None,
            eps: 1e-12,
        }
    }
}

/// LODA, the lightweight on-line detector of anomalies (Pevný 2016, "StreamingLODA: Lightweight on-line detector of
/// anomalies", Machine Learning 102, 275-304), as aberrant 1.3.0's `StreamingLODA` adapts it to a bounded
/// stream: `n_projections` sparse random projections of the row to one dimension, a histogram of each, and
/// the score is the mean negative log density of the row's projections.
///
/// # Algorithm
/// - Projections (drawn at build time): projection `k` uses `a = max(1, round(s d))` distinct features,
///   drawn uniformly without replacement (`s = sparsity`, by default `min(1, 1 / sqrt(d))`; `round` halves
///   to even, as Python's), each with the weight `+-1 / sqrt(a)`, the sign a fair coin. Stored as a list of
///   (column, weight) pairs, so projecting costs `a` multiply-adds, not `d`.
/// - Warm-up: the projections of the first `warm_up_samples` learned rows are buffered. At the last of
///   them every histogram gets `n_bins` equal-width bins from the minimum to the maximum of its buffered
///   values (a range of width `<= eps` is widened by 0.5 on each side), and the buffered values are
///   counted in. Scores are 0.0 until then.
/// - Learning after the warm-up: every count and total is multiplied by `decay`, then each projection's
///   bin gets 1. Values outside a histogram's range go to its edge bin.
/// - Score: for each projection, `density = ((count + pseudocount) / (total + pseudocount n_bins)) / width`
///   of the row's bin (width floored at `eps`), and the score is `max(0, mean_k -ln(density_k + eps))`.
///
/// The bin edges are fixed by the warm-up, as in aberrant: a stream whose range drifts after the warm-up
/// piles the new values into the edge bins. A shifted regime first scores high (the edge bin is sparse),
/// then, as the edge bin fills, its rows score as ordinary and differences among them are no longer
/// resolved (they share one bin); with `decay = 1` the old bins keep their counts forever, so `decay < 1`
/// (forgetting) is the remedy for a stream expected to move. Scale does not matter: the ranges are learned
/// from the raw warm-up rows, and a scaler in front changes nothing but the projections' units.
///
/// Missing values (the paper's section on missing variables): a projection that uses a missing (NaN)
/// feature is left out, of the score's mean and of learning (its histogram does not count that row); a
/// row whose projections are all left out scores 0.0. Infinite values go to the edge bins (a projection
/// that meets `+inf` and `-inf` together is missing); they do not widen the warm-up ranges. A `time_key`
/// column is resolved when the model is built and left out of every projection.
///
/// # Cost
/// Per row `O(n_projections * a)` to project plus `O(n_projections)` for the bins (a bin is found by one
/// division, checked against the stored edges) and, when scoring, one logarithm per projection.
/// `score_learn_one` projects once for both. Decay is lazy: counts are stored divided by a running scale
/// (renormalised when it gets small), so a learned row costs no `n_projections * n_bins` pass.
/// Memory: `n_projections * (a + n_bins + 4)` values, plus `warm_up_samples * n_projections` during the
/// warm-up only.
///
/// # Deviations
/// - From the paper: weights are aberrant's `+-1/sqrt(a)`, not the paper's N(0, 1); histograms have fixed
///   edges from the warm-up and `n_bins` bins, not the paper's per-histogram bin count and online
///   histograms; the number of projections is fixed, not selected by the paper's variance criterion.
/// - From aberrant: seeded PCG64 draws per projection (`(seed, k)`), not numpy's one generator, so the
///   projections differ for the same seed; `seed = None` means 0. Features in schema order, not sorted by
///   name. Missing and infinite values are accepted as above (aberrant rejects them). `time_key` only
///   removes its column: aberrant's time also never changes the decay, but aberrant checks it is
///   non-decreasing, which a model that cannot fail on data does not do. `predict_threshold` and
///   `predict_one` are left out: a classification helper, which onad's thresholds provide.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::StreamingLODAParams;
/// let schema = Schema::shared(["latency_ms", "bytes", "retries"]).unwrap();
/// let params = StreamingLODAParams { warm_up_samples: 100, seed: Some(3), ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..1_000 {
///     // Sums of cycles: bell-shaped columns, dense in the middle.
///     let latency = 20.0 + (i % 13 + i % 7 + i % 11) as f64;
///     let bytes = 1_000.0 + 10.0 * (i % 29 + i % 17) as f64;
///     model.learn_one(&[latency, bytes, (i % 3 + i % 5) as f64]);
/// }
/// let normal = model.score_one(&[35.0, 1_220.0, 3.0]);
/// let spike = model.score_one(&[400.0, 90_000.0, 40.0]); // beyond every range: the edge bins
/// assert!(spike > normal + 1.0, "{spike} vs {normal}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamingLODA {
    n_projections: usize,
    n_bins: usize,
    warm_up_samples: usize,
    decay: f64,
    pseudocount: f64,
    eps: f64,
    /// Features per projection.
    active: usize,
    /// Projection `k` is `sum_j weight[k a + j] * x[column[k a + j]]` (columns in the schema's indices).
    column: Vec<u32>,
    weight: Vec<f64>,
    /// Warm-up projections, row-major (`n_projections` per row); emptied when the histograms are fitted.
    warm_up: Vec<f64>,
    /// Histograms: empty until the warm-up ends.
    hist: Option<Box<Histograms>>,
}

/// The fitted histograms. Bin `b` of projection `k` spans `[edge(k, b), edge(k, b + 1))`, with
/// `edge(k, b) = low[k] + b step[k]` and `edge(k, n_bins) = high[k]` (numpy's `linspace`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Histograms {
    low: Vec<f64>,
    high: Vec<f64>,
    step: Vec<f64>,
    /// `n_bins` stored counts per projection; the true count is `counts * scale`.
    counts: Vec<f64>,
    /// Stored totals per projection (true total `totals * scale`).
    totals: Vec<f64>,
    /// Product of the decays applied since the last renormalisation (1.0 without decay).
    scale: f64,
}

/// Below this the stored counts are multiplied by the scale and the scale reset to 1.
const RENORMALISE_BELOW: f64 = 1e-100;

/// The sum of `-ln` of positive likelihoods, taken as the `ln` of running products: one logarithm per
/// several projections instead of one each (the logarithm was a third of a row's cost). A product is
/// closed while it stays within `[1e-150, 1e150]`, so no product overflows or loses precision to
/// subnormals; a likelihood outside that range gets its own logarithm. Equal to the sum of the terms'
/// logarithms up to rounding.
#[derive(Clone, Copy)]
struct Surprise {
    logs: f64,
    product: f64,
}

impl Surprise {
    const BOUND: f64 = 1e150;

    fn new() -> Self {
        Surprise { logs: 0.0, product: 1.0 }
    }

    #[inline]
    fn add(&mut self, likelihood: f64) {
        if !(1.0 / Self::BOUND..=Self::BOUND).contains(&likelihood) {
            self.logs += likelihood.ln();
            return;
        }
        self.product *= likelihood;
        if !(1.0 / Self::BOUND..=Self::BOUND).contains(&self.product) {
            self.logs += self.product.ln();
            self.product = 1.0;
        }
    }

    fn total(self) -> f64 {
        -(self.logs + self.product.ln())
    }
}

impl DetectorParams for StreamingLODAParams {
    type Model = StreamingLODA;
    fn build(&self, schema: &SchemaRef) -> Result<StreamingLODA, ParamError> {
        const CAP: usize = 1 << 24;
        if !(1..=CAP).contains(&self.n_projections) {
            return Err(ParamError::invalid(
                "n_projections",
                format!("must be between 1 and 2^24, got {}", self.n_projections),
            ));
        }
        if !(2..=CAP).contains(&self.n_bins) {
            return Err(ParamError::invalid("n_bins", format!("must be between 2 and 2^24, got {}", self.n_bins)));
        }
        if let Some(s) = self.sparsity
            && !(s > 0.0 && s <= 1.0)
        {
            return Err(ParamError::invalid("sparsity", format!("must be in (0, 1] or unset, got {s}")));
        }
        if self.warm_up_samples == 0 || self.warm_up_samples.saturating_mul(self.n_projections) > 1 << 32 {
            return Err(ParamError::invalid(
                "warm_up_samples",
                format!(
                    "must be at least 1, with warm_up_samples * n_projections at most 2^32, got {}",
                    self.warm_up_samples
                ),
            ));
        }
        if !(self.decay > 0.0 && self.decay <= 1.0) {
            return Err(ParamError::invalid("decay", format!("must be in (0, 1], got {}", self.decay)));
        }
        if !(self.pseudocount > 0.0 && self.pseudocount.is_finite()) {
            return Err(ParamError::invalid(
                "pseudocount",
                format!("must be positive and finite, got {}", self.pseudocount),
            ));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(ParamError::invalid("eps", format!("must be positive and finite, got {}", self.eps)));
        }
        let time = self.time_key.as_deref().map(|k| schema.resolve("time_key", k)).transpose()?;
        let features: Vec<u32> = (0..schema.len()).filter(|&i| Some(i) != time).map(|i| i as u32).collect();
        let d = features.len();
        if d == 0 || schema.len() > u32::MAX as usize {
            return Err(ParamError::Schema(format!(
                "LODA needs 1 to 2^32 - 1 feature columns besides the time_key, got {d}"
            )));
        }
        let density = self.sparsity.unwrap_or_else(|| (1.0 / (d as f64).sqrt()).min(1.0));
        let active = ((density * d as f64).round_ties_even() as usize).clamp(1, d);
        let scale = 1.0 / (active as f64).sqrt();
        let seed = self.seed.unwrap_or(0);
        let (mut column, mut weight) = (Vec::new(), Vec::new());
        let mut pool = features.clone();
        for k in 0..self.n_projections {
            let mut rng = unit_rng(seed, k as u64);
            pool.copy_from_slice(&features);
            // A partial Fisher-Yates shuffle draws `active` distinct features.
            for j in 0..active {
                let r = j + below(&mut rng, d - j);
                pool.swap(j, r);
            }
            let chosen = &mut pool[..active];
            chosen.sort_unstable();
            for &c in chosen.iter() {
                column.push(c);
                weight.push(if rng.next_u64() >> 63 == 0 { -scale } else { scale });
            }
        }
        Ok(StreamingLODA {
            n_projections: self.n_projections,
            n_bins: self.n_bins,
            warm_up_samples: self.warm_up_samples,
            decay: self.decay,
            pseudocount: self.pseudocount,
            eps: self.eps,
            active,
            column,
            weight,
            warm_up: Vec::new(),
            hist: None,
        })
    }
}

impl Histograms {
    fn edge(&self, k: usize, b: usize, n_bins: usize) -> f64 {
        if b == n_bins { self.high[k] } else { self.low[k] + b as f64 * self.step[k] }
    }

    /// The bin of value `v` (not NaN) in histogram `k`: `searchsorted(edges, v, right) - 1`, clipped to
    /// the bins (values beyond the range, infinities included, go to the edge bins).
    #[inline]
    fn bin(&self, k: usize, v: f64, n_bins: usize) -> usize {
        let guess = (v - self.low[k]) / self.step[k];
        // Truncation is the floor above 0; `as` saturates (NaN, from an infinite v over an infinite step,
        // fails the test and goes to 0).
        let mut b = if guess > 0.0 { (guess as usize).min(n_bins - 1) } else { 0 };
        // The division may round across an edge: settle against the stored edges.
        if b > 0 && v < self.edge(k, b, n_bins) {
            b -= 1;
        } else if b + 1 < n_bins && v >= self.edge(k, b + 1, n_bins) {
            b += 1;
        }
        b
    }
}

impl StreamingLODA {
    /// Whether the warm-up is over (scores are 0.0 before).
    pub fn is_ready(&self) -> bool {
        self.hist.is_some()
    }

    /// Projection `k` of `x` (NaN when it uses a missing feature).
    #[inline]
    fn project(&self, k: usize, x: &[f64]) -> f64 {
        project(&self.column, &self.weight, self.active, k, x)
    }

    fn finish_score(sum: f64, used: usize) -> f64 {
        if used == 0 { 0.0 } else { finite_score((sum / used as f64).max(0.0)) }
    }

    /// Fits the histograms from the full warm-up buffer.
    fn fit(&mut self) {
        let (p, n_bins) = (self.n_projections, self.n_bins);
        let rows = self.warm_up.len() / p;
        let mut h = Histograms {
            low: vec![0.0; p],
            high: vec![0.0; p],
            step: vec![0.0; p],
            counts: vec![0.0; p * n_bins],
            totals: vec![0.0; p],
            scale: 1.0,
        };
        for k in 0..p {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for r in 0..rows {
                let v = self.warm_up[r * p + k];
                if v.is_finite() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
            if lo > hi {
                (lo, hi) = (0.0, 0.0); // no finite value: the degenerate range around 0
            }
            let width = hi - lo;
            let step = if width.is_finite() {
                if width <= self.eps {
                    lo -= 0.5;
                    hi += 0.5;
                }
                (hi - lo) / n_bins as f64
            } else {
                // Finite extremes whose difference overflows.
                hi / n_bins as f64 - lo / n_bins as f64
            };
            h.low[k] = lo;
            h.high[k] = hi;
            h.step[k] = step;
        }
        for r in 0..rows {
            for k in 0..p {
                let v = self.warm_up[r * p + k];
                if !v.is_nan() {
                    let b = h.bin(k, v, n_bins);
                    h.counts[k * n_bins + b] += 1.0;
                    h.totals[k] += 1.0;
                }
            }
        }
        self.warm_up = Vec::new();
        self.hist = Some(Box::new(h));
    }
}

/// Projection `k` of `x`: `sum_j weight[k a + j] * x[column[k a + j]]`.
#[inline]
fn project(column: &[u32], weight: &[f64], active: usize, k: usize, x: &[f64]) -> f64 {
    let range = k * active..(k + 1) * active;
    let mut sum = 0.0;
    for (&c, &w) in column[range.clone()].iter().zip(&weight[range]) {
        sum += w * x[c as usize];
    }
    sum
}

impl Histograms {
    /// `density + eps` of value `v` (not NaN) in histogram `k`, counts read at `scale`; its `-ln` is the
    /// projection's surprise.
    #[inline]
    fn likelihood(&self, k: usize, v: f64, scale: f64, m: &StreamingLODA) -> f64 {
        self.likelihood_in(k, self.bin(k, v, m.n_bins), scale, m)
    }

    /// [`Histograms::likelihood`] of bin `b` of histogram `k`.
    #[inline]
    fn likelihood_in(&self, k: usize, b: usize, scale: f64, m: &StreamingLODA) -> f64 {
        let n_bins = m.n_bins;
        let count = self.counts[k * n_bins + b] * scale;
        let total = self.totals[k] * scale;
        let width = (self.edge(k, b + 1, n_bins) - self.edge(k, b, n_bins)).max(m.eps);
        let mass = (count + m.pseudocount) / (total + m.pseudocount * n_bins as f64);
        mass / width + m.eps
    }

    /// Starts one learned row: renormalises if the scale would get too small (which keeps every true
    /// count `stored * scale` to the bit), returns the scale the row is scored at, applies the decay and
    /// returns the stored increment of a count too.
    fn decay_step(&mut self, decay: f64) -> (f64, f64) {
        if decay < 1.0 && self.scale * decay < RENORMALISE_BELOW {
            let s = self.scale;
            self.counts.iter_mut().for_each(|c| *c *= s);
            self.totals.iter_mut().for_each(|c| *c *= s);
            self.scale = 1.0;
        }
        let before = self.scale;
        if decay < 1.0 {
            self.scale *= decay;
        }
        (before, 1.0 / self.scale)
    }

    /// Counts value `v` (not NaN) into histogram `k`.
    #[inline]
    fn add(&mut self, k: usize, v: f64, inc: f64, n_bins: usize) {
        self.add_in(k, self.bin(k, v, n_bins), inc, n_bins);
    }

    /// Counts one value into bin `b` of histogram `k`.
    #[inline]
    fn add_in(&mut self, k: usize, b: usize, inc: f64, n_bins: usize) {
        self.counts[k * n_bins + b] += inc;
        self.totals[k] += inc;
    }
}

impl Detector for StreamingLODA {
    fn learn_one(&mut self, x: &[f64]) {
        let (p, n_bins, a) = (self.n_projections, self.n_bins, self.active);
        let Some(h) = self.hist.as_mut() else {
            for k in 0..p {
                self.warm_up.push(project(&self.column, &self.weight, a, k, x));
            }
            if self.warm_up.len() == self.warm_up_samples * p {
                self.fit();
            }
            return;
        };
        let (_, inc) = h.decay_step(self.decay);
        for k in 0..p {
            let v = project(&self.column, &self.weight, a, k, x);
            if !v.is_nan() {
                h.add(k, v, inc, n_bins);
            }
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let Some(h) = &self.hist else { return 0.0 };
        let (mut sum, mut used) = (Surprise::new(), 0);
        for k in 0..self.n_projections {
            let v = self.project(k, x);
            if !v.is_nan() {
                sum.add(h.likelihood(k, v, h.scale, self));
                used += 1;
            }
        }
        Self::finish_score(sum.total(), used)
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let Some(mut h) = self.hist.take() else {
            self.learn_one(x);
            return 0.0;
        };
        // One projection serves both: histogram k is scored at its old counts, then counts the row.
        let (scale, inc) = h.decay_step(self.decay);
        let (mut sum, mut used) = (Surprise::new(), 0);
        for k in 0..self.n_projections {
            let v = self.project(k, x);
            if !v.is_nan() {
                let b = h.bin(k, v, self.n_bins);
                sum.add(h.likelihood_in(k, b, scale, self));
                used += 1;
                h.add_in(k, b, inc, self.n_bins);
            }
        }
        self.hist = Some(h);
        Self::finish_score(sum.total(), used)
    }
}

impl Describe for StreamingLODAParams {
    const REFERENCE: &'static str =
        "Pevný 2016, Loda: Lightweight on-line detector of anomalies (Machine Learning 102)";
    const SUMMARY: &'static str =
        "LODA: sparse random projections, a fixed-edge histogram each, score = mean negative log density";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "n_projections", ty: "int >= 1", required: false, help: "random projections (default 100)" },
        ParamDoc { name: "n_bins", ty: "int >= 2", required: false, help: "bins per histogram (default 32)" },
        ParamDoc {
            name: "sparsity",
            ty: "float in (0, 1]",
            required: false,
            help: "fraction of the features in each projection (default min(1, 1/sqrt(d)))",
        },
        ParamDoc {
            name: "warm_up_samples",
            ty: "int >= 1",
            required: false,
            help: "learned rows that fix the bin edges; scores are 0 before (default 256)",
        },
        ParamDoc {
            name: "decay",
            ty: "float in (0, 1]",
            required: false,
            help: "factor on every count before each learned row after the warm-up (default 1.0)",
        },
        ParamDoc {
            name: "time_key",
            ty: "string",
            required: false,
            help: "an event-time column left out of the features (default none)",
        },
        ParamDoc {
            name: "pseudocount",
            ty: "float > 0",
            required: false,
            help: "smoothing count per bin (default 1.0)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the projections (default 0)" },
        ParamDoc {
            name: "eps",
            ty: "float > 0",
            required: false,
            help: "floor of bin widths and densities (default 1e-12)",
        },
    ];
    fn example() -> Self {
        StreamingLODAParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn params() -> StreamingLODAParams {
        StreamingLODAParams { seed: Some(5), ..Default::default() }
    }

    /// A deterministic cloud in [-1, 1]^d (a low-discrepancy sequence).
    fn cloud(i: usize, d: usize) -> Vec<f64> {
        const STEPS: [f64; 6] = [0.618_033_988_749_895, 0.754_877_666_246_693, 0.569_840_290_998, 0.41, 0.29, 0.83];
        (0..d).map(|j| (i as f64 * STEPS[j % 6] + j as f64 * 0.1).fract() * 2.0 - 1.0).collect()
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 3);
        let err = |p: StreamingLODAParams| p.build(&schema).unwrap_err().to_string();
        let cases: [(StreamingLODAParams, &str); 11] = [
            (StreamingLODAParams { n_projections: 0, ..params() }, "'n_projections'"),
            (StreamingLODAParams { n_bins: 1, ..params() }, "'n_bins'"),
            (StreamingLODAParams { sparsity: Some(0.0), ..params() }, "'sparsity'"),
            (StreamingLODAParams { sparsity: Some(1.5), ..params() }, "'sparsity'"),
            (StreamingLODAParams { warm_up_samples: 0, ..params() }, "'warm_up_samples'"),
            (StreamingLODAParams { decay: 0.0, ..params() }, "'decay'"),
            (StreamingLODAParams { decay: 1.01, ..params() }, "'decay'"),
            (StreamingLODAParams { pseudocount: 0.0, ..params() }, "'pseudocount'"),
            (StreamingLODAParams { eps: 0.0, ..params() }, "'eps'"),
            (StreamingLODAParams { eps: f64::NAN, ..params() }, "'eps'"),
            (StreamingLODAParams { time_key: Some("t".into()), ..params() }, "time_key"),
        ];
        for (p, name) in cases {
            let e = err(p);
            assert!(e.contains(name), "{e}");
        }
        let one = Schema::shared(["t"]).unwrap();
        let e = StreamingLODAParams { time_key: Some("t".into()), ..params() }.build(&one).unwrap_err();
        assert!(matches!(e, ParamError::Schema(_)), "{e}");
        assert!(StreamingLODAParams { sparsity: Some(1.0), decay: 0.5, ..params() }.build(&schema).is_ok());
    }

    #[test]
    fn projections_are_sparse_signed_and_skip_the_time_key() {
        let names: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
        let schema = Schema::shared(names).unwrap();
        let m = StreamingLODAParams { time_key: Some("f4".into()), ..params() }.build(&schema).unwrap();
        // d = 9 features besides the time column: round(9 / 3) = 3 per projection, weights +-1/sqrt(3).
        assert_eq!(m.active, 3);
        assert_eq!(m.column.len(), 300);
        let w = 1.0 / 3f64.sqrt();
        assert!(m.weight.iter().all(|&x| x == w || x == -w));
        assert!(m.weight.iter().any(|&x| x > 0.0) && m.weight.iter().any(|&x| x < 0.0));
        for cols in m.column.chunks(3) {
            assert!(cols.windows(2).all(|p| p[0] < p[1]), "distinct, sorted: {cols:?}");
            assert!(cols.iter().all(|&c| c != 4 && c < 10));
        }
        // Every feature gets used somewhere, and the time column changes no score.
        assert!((0..10u32).filter(|&c| c != 4).all(|c| m.column.contains(&c)));
        let mut m = m;
        (0..400).for_each(|i| m.learn_one(&cloud(i, 10)));
        let mut x = cloud(7, 10);
        let s = m.score_one(&x);
        x[4] = 1e9;
        assert_eq!(m.score_one(&x).to_bits(), s.to_bits());
        // Half-way rounding is to even, as Python's round: sparsity 0.5 of 5 features is 2.
        let five = Schema::numbered("f", 5);
        assert_eq!(StreamingLODAParams { sparsity: Some(0.5), ..params() }.build(&five).unwrap().active, 2);
        assert_eq!(StreamingLODAParams { sparsity: Some(0.01), ..params() }.build(&five).unwrap().active, 1);
    }

    #[test]
    fn scores_are_zero_through_the_warm_up_and_the_histograms_hold_it() {
        let schema = Schema::numbered("f", 4);
        let mut m = StreamingLODAParams { warm_up_samples: 50, n_projections: 20, ..params() }.build(&schema).unwrap();
        for i in 0..49 {
            assert_eq!(m.score_learn_one(&cloud(i, 4)), 0.0);
        }
        assert!(!m.is_ready());
        assert_eq!(m.warm_up.len(), 49 * 20);
        m.learn_one(&cloud(49, 4));
        assert!(m.is_ready() && m.warm_up.is_empty());
        let h = m.hist.as_ref().unwrap();
        for k in 0..20 {
            let counts = &h.counts[k * 32..(k + 1) * 32];
            assert_eq!(counts.iter().sum::<f64>(), 50.0);
            assert_eq!(h.totals[k], 50.0);
            // The extremes of the warm-up are in the edge bins.
            assert!(counts[0] >= 1.0 && counts[31] >= 1.0, "{counts:?}");
        }
        assert!(m.score_one(&cloud(3, 4)) > 0.0);
    }

    #[test]
    fn a_hand_checked_histogram() {
        // One feature, one projection of weight +-1, two bins over the warm-up range.
        let schema = Schema::numbered("f", 1);
        let p = StreamingLODAParams { n_projections: 1, n_bins: 2, warm_up_samples: 2, ..params() };
        let mut m = p.build(&schema).unwrap();
        let w = m.weight[0];
        assert!(w.abs() == 1.0);
        m.learn_one(&[0.0]);
        m.learn_one(&[4.0]);
        // Range [0, 4] (or [-4, 0]), bins of width 2 holding one row each: mass (1 + 1) / (2 + 2) = 0.5,
        // density 0.25, score -ln(0.25 + eps).
        let expected = -(0.25f64 + 1e-12).ln();
        assert_eq!(m.score_one(&[1.0]), expected);
        assert_eq!(m.score_one(&[3.0]), expected);
        // Far outside the range: the edge bin, the same density.
        assert_eq!(m.score_one(&[-100.0]), expected);
        assert_eq!(m.score_one(&[f64::INFINITY]), expected);
        // Two more rows near 1: that bin holds 3 of 4, mass 4 / 6, density 1/3; the other 2 / 6 over 2.
        m.learn_one(&[1.0]);
        m.learn_one(&[1.5]);
        assert!((m.score_one(&[0.5]) - -(1.0f64 / 3.0 + 1e-12).ln()).abs() < 1e-15);
        assert!((m.score_one(&[3.5]) - -(1.0f64 / 6.0 + 1e-12).ln()).abs() < 1e-15);
        // A constant warm-up gets a unit range around its value.
        let mut c = p.build(&schema).unwrap();
        c.learn_one(&[7.0]);
        c.learn_one(&[7.0]);
        let h = c.hist.as_ref().unwrap();
        assert_eq!((h.high[0] - h.low[0], h.step[0]), (1.0, 0.5));
        // Missing: no projection left, score 0; learning it counts nothing.
        assert_eq!(m.score_one(&[f64::NAN]), 0.0);
        let before = m.hist.as_ref().unwrap().totals[0];
        m.learn_one(&[f64::NAN]);
        assert_eq!(m.hist.as_ref().unwrap().totals[0], before);
    }

    #[test]
    fn an_isolated_point_scores_above_the_inliers() {
        // Dense at the centre (the cloud cubed), so the histograms' edge bins are sparse.
        let dense = |i: usize| cloud(i, 5).into_iter().map(|v| v * v * v).collect::<Vec<f64>>();
        let schema = Schema::numbered("f", 5);
        let mut m = params().build(&schema).unwrap();
        (0..2_000).for_each(|i| m.learn_one(&dense(i)));
        let inliers: Vec<f64> = (5_000..5_200).map(|i| m.score_one(&dense(i))).collect();
        let max_inlier = inliers.iter().cloned().fold(f64::MIN, f64::max);
        let mean_inlier = inliers.iter().sum::<f64>() / inliers.len() as f64;
        let outlier = m.score_one(&[3.0, 2.0, -4.0, 1.5, 2.5]);
        assert!(outlier > max_inlier, "{outlier} vs {max_inlier}");
        assert!(outlier > mean_inlier + 1.0, "{outlier} vs {mean_inlier}");
        assert!(inliers.iter().all(|&s| s >= 0.0 && s.is_finite()));
    }

    #[test]
    fn surprise_sums_logarithms_through_bounded_products() {
        let terms = [1e-12, 3.5, 1e140, 2e149, 1e-160, 0.25, 7e300, 1.0, 1e-149, 1e-149, 42.0];
        let mut s = Surprise::new();
        let mut by_term = 0.0;
        for _ in 0..50 {
            for &t in &terms {
                s.add(t);
                by_term -= t.ln();
            }
        }
        let total = s.total();
        assert!(total.is_finite());
        assert!((total - by_term).abs() <= 1e-12 * by_term.abs(), "{total} vs {by_term}");
        assert_eq!(Surprise::new().total(), 0.0);
    }

    #[test]
    fn missing_features_drop_the_projections_that_use_them() {
        let schema = Schema::numbered("f", 9);
        let mut m = params().build(&schema).unwrap();
        (0..600).for_each(|i| m.learn_one(&cloud(i, 9)));
        let x = cloud(1_234, 9);
        let mut y = x.clone();
        y[2] = f64::NAN;
        let h = m.hist.as_ref().unwrap();
        let kept: Vec<usize> = (0..100).filter(|&k| !m.column[k * 3..k * 3 + 3].contains(&2)).collect();
        assert!(kept.len() > 50 && kept.len() < 100, "{}", kept.len());
        let by_hand =
            kept.iter().map(|&k| -h.likelihood(k, m.project(k, &x), h.scale, &m).ln()).sum::<f64>() / kept.len() as f64;
        let score = m.score_one(&y);
        assert!((score - by_hand.max(0.0)).abs() <= 1e-12 * by_hand.abs(), "{score} vs {by_hand}");
        assert_eq!(m.score_one(&[f64::NAN; 9]), 0.0);
    }

    #[test]
    fn lazy_decay_matches_decaying_every_count() {
        // decay 0.5 renormalises every ~330 rows: run past several.
        let schema = Schema::numbered("f", 2);
        let p = StreamingLODAParams { n_projections: 3, n_bins: 4, warm_up_samples: 10, decay: 0.5, ..params() };
        let mut m = p.build(&schema).unwrap();
        (0..10).for_each(|i| m.learn_one(&cloud(i, 2)));
        let h = m.hist.clone().unwrap();
        let (mut counts, mut totals) = (h.counts.clone(), h.totals.clone());
        for i in 10..1_200 {
            let x = cloud(i, 2);
            counts.iter_mut().for_each(|c| *c *= 0.5);
            totals.iter_mut().for_each(|c| *c *= 0.5);
            for k in 0..3 {
                let b = h.bin(k, m.project(k, &x), 4);
                counts[k * 4 + b] += 1.0;
                totals[k] += 1.0;
            }
            m.learn_one(&x);
            let g = m.hist.as_ref().unwrap();
            for (c, s) in counts.iter().zip(&g.counts) {
                assert!((c - s * g.scale).abs() <= 1e-12 * (1.0 + c), "row {i}: {c} vs {}", s * g.scale);
            }
            assert!((totals[0] - g.totals[0] * g.scale).abs() < 1e-12 * totals[0]);
            assert!(g.scale >= RENORMALISE_BELOW);
        }
        // With decay the totals approach 1 / (1 - decay) = 2.
        assert!((totals[0] - 2.0).abs() < 1e-9);
    }
}
