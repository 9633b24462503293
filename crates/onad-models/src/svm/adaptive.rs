//! A budgeted one-class kernel model whose RBF width follows the data (Python onad's
//! `IncrementalOneClassSVMAdaptiveKernel`, with aberrant's corrections).

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_core::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::rng::below;

/// The width is checked every this many learned rows (onad's and aberrant's constant).
const ADAPT_EVERY: u64 = 20;
/// At most this many buffered rows are drawn to estimate the width.
const WIDTH_SAMPLE: usize = 50;
/// Each drawn row is compared with the next this many drawn rows.
const WIDTH_NEIGHBOURS: usize = 9;
/// The Gram matrix is `sv_budget^2` numbers: 4,096 support vectors are 128 MiB.
const MAX_SV_BUDGET: usize = 4096;
const MAX_BUFFER: usize = 1 << 20;

/// Hyperparameters of [`IncrementalOneClassSVMAdaptiveKernel`]: onad 0.3.0's names and defaults, plus
/// `rescale_every`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncrementalOneClassSVMAdaptiveKernelParams {
    /// Weight scale in (0, 1] (default 0.1): the first support vector weighs `1 / (10 nu)`, later ones at
    /// most `1 / nu`. A heuristic weight, not a solver's bound on the outlier fraction.
    pub nu: f64,
    /// The RBF coefficient before any adaptation (default 1.0): `k(a, b) = exp(-gamma |a - b|^2)` in
    /// standardised coordinates.
    pub initial_gamma: f64,
    /// `(lowest, highest)` gamma (default `(0.001, 100.0)`); must contain `initial_gamma`.
    pub gamma_bounds: (f64, f64),
    /// Fraction of the way gamma moves towards its estimate at each check (default 0.1), in (0, 1].
    pub adaptation_rate: f64,
    /// Recent rows kept to estimate gamma (default 200).
    pub buffer_size: usize,
    /// Support vectors kept at most (default 100).
    pub sv_budget: usize,
    /// A row becomes a support vector when its decision value is below `-tolerance` (default 1e-6).
    pub tolerance: f64,
    /// Not in onad: the kernel's per-feature scale (the running standard deviations) is brought up to
    /// date, and the Gram matrix recomputed, on every learned row while fewer than `rescale_every` rows
    /// were learned and then every `rescale_every` rows (default 20, the width check's cadence). 1 is
    /// aberrant's behaviour (a full O(B^2 d) recomputation per row).
    pub rescale_every: usize,
    /// Seed of the draws of the width estimate; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
}

impl Default for IncrementalOneClassSVMAdaptiveKernelParams {
    fn default() -> Self {
        IncrementalOneClassSVMAdaptiveKernelParams {
            nu: 0.1,
            initial_gamma: 1.0,
            gamma_bounds: (0.001, 100.0),
            adaptation_rate: 0.1,
            buffer_size: 200,
            sv_budget: 100,
            tolerance: 1e-6,
            rescale_every: 20,
            seed: None,
        }
    }
}

/// A budgeted set of weighted support vectors under an RBF kernel whose width adapts to the data: onad's
/// heuristic (no published reference; aberrant calls it "a custom budgeted support-vector heuristic, not
/// a published optimizer").
///
/// Rows are compared in standardised coordinates: each feature is divided by its running (population)
/// standard deviation over every learned row (1 for a constant feature), so
/// `k(a, b) = exp(-gamma sum_j ((a_j - b_j) / s_j)^2)` (the running mean cancels in the difference).
/// Support vectors are kept as they arrived (raw), so that all of them are compared in one coordinate
/// system. With weights `alpha_i` the decision value of `x` is `f(x) = sum_i alpha_i k(x, sv_i) - rho`,
/// where `rho` is the median over the support vectors of `(K alpha)_i`; the score is `-f(x)` (above 0:
/// outside the described region), 0.0 before the first row is learned.
///
/// Learning a row: the first becomes a support vector with weight `1 / (10 nu)`; a later row with
/// `f(x) < -tolerance` becomes one with weight `min(-f(x), 1 / nu)`. When that exceeds `sv_budget`, the
/// support vector with the highest `0.4 (1 - alpha / alpha_max) + 0.6 age / age_max` leaves (light and
/// old first; ages in learned rows). Every 20 learned rows, gamma moves `adaptation_rate` of the way to
/// `1 / (2 m^2)`, clipped to `gamma_bounds`, where `m` is the median distance between up to 50 rows drawn
/// without replacement from the last `buffer_size` and each of the next 9 drawn (distances below 1e-10
/// left out); the move is skipped when it is within 1 % of gamma.
///
/// Cost: scoring is O(B d) for B support vectors and d features (one kernel row); learning is one kernel
/// row, plus O(B) for an insertion or a replacement (the Gram matrix and `K alpha` are updated in place,
/// the median by selection), plus O(B^2 d) every `rescale_every` rows (default 20) when the scale is
/// renewed, O(B^2) when gamma moves and O(d) per width check. Memory: `sv_budget^2` numbers for the
/// squared distances, `(sv_budget + buffer_size) d` for the support vectors and the buffer.
///
/// Missing values: a row with a missing or infinite value is not learned. When scoring, a missing feature
/// is left out of the distances; an infinite one makes every kernel value 0.
///
/// Deviations from onad 0.3.0 (models.md section 7), as aberrant 1.3.0 corrects them:
/// - the first row enters the running mean and deviation (onad starts them from a pseudo-row of mean 0
///   and deviation 1 after it), and deviations are population ones of the learned rows;
/// - support vectors and the buffer are raw, standardised when compared (onad stores each one standardised
///   with the statistics of its arrival, so old and new vectors live in different coordinates);
/// - parameters are validated (aberrant's rules).
///
/// and beyond both: the scale is renewed on the `rescale_every` cadence instead of on every row (the
/// price of aberrant's exact form is a full Gram recomputation per row); the draws come from a PCG64
/// generator seeded with `seed` through a partial Fisher-Yates shuffle, not numpy's `choice`, so the
/// width estimates differ from onad's for the same seed (the fidelity fixture replays them in aberrant).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::IncrementalOneClassSVMAdaptiveKernelParams;
/// let schema = Schema::shared(["x", "y"]).unwrap();
/// let mut m = IncrementalOneClassSVMAdaptiveKernelParams::default().build(&schema).unwrap();
/// assert_eq!(m.score_one(&[1.0, 1.0]), 0.0); // nothing learned yet
/// for i in 0..2000 {
///     let t = (i % 17) as f64 / 17.0;
///     m.learn_one(&[10.0 + t, 5.0 - 2.0 * t]);
/// }
/// let near = m.score_one(&[10.5, 4.0]);
/// let far = m.score_one(&[14.0, 9.0]);
/// assert!(far > near + 0.5, "{far} vs {near}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncrementalOneClassSVMAdaptiveKernel(Box<Core>);

/// The model's state, boxed so that the registry's enums stay small.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "AdaptiveState")]
struct Core {
    nu: f64,
    gamma_min: f64,
    gamma_max: f64,
    adaptation_rate: f64,
    tolerance: f64,
    buffer_size: usize,
    sv_budget: usize,
    rescale_every: usize,
    /// Features per row.
    d: usize,
    gamma: f64,
    rho: f64,
    /// Rows learned.
    n_samples: u64,
    /// Running per-feature mean and sum of squared deviations (Welford) over the learned rows.
    mean: Vec<f64>,
    m2: Vec<f64>,
    /// `1 / s_j`: the scale the kernel uses now (renewed on the `rescale_every` cadence).
    inv_scale: Vec<f64>,
    /// Support vector `i` is `sv[i * d..(i + 1) * d]`, raw.
    sv: Vec<f64>,
    alpha: Vec<f64>,
    /// The learned-row count at which each support vector arrived.
    birth: Vec<u64>,
    /// `(K alpha)_i` for each support vector.
    k_alpha: Vec<f64>,
    /// The last `buffer_size` learned rows, raw; once full, `buffer_oldest` is the next overwritten.
    buffer: Vec<f64>,
    buffer_oldest: usize,
    rng: Pcg64,
    /// Squared standardised distances between support vectors, row stride `sv_budget`: a function of the
    /// support vectors and `inv_scale`, recomputed when a checkpoint is loaded.
    #[serde(skip)]
    dist: Vec<f64>,
    #[serde(skip)]
    scratch: Scratch,
}

/// Reused buffers of learning.
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// Squared distances of the row being learned to each support vector.
    row: Vec<f64>,
    /// Values whose median is taken.
    values: Vec<f64>,
    /// Buffer positions, partially shuffled.
    picks: Vec<usize>,
}

/// The serialized form, checked when decoded.
#[derive(Deserialize)]
struct AdaptiveState {
    nu: f64,
    gamma_min: f64,
    gamma_max: f64,
    adaptation_rate: f64,
    tolerance: f64,
    buffer_size: usize,
    sv_budget: usize,
    rescale_every: usize,
    d: usize,
    gamma: f64,
    rho: f64,
    n_samples: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    inv_scale: Vec<f64>,
    sv: Vec<f64>,
    alpha: Vec<f64>,
    birth: Vec<u64>,
    k_alpha: Vec<f64>,
    buffer: Vec<f64>,
    buffer_oldest: usize,
    rng: Pcg64,
}

impl TryFrom<AdaptiveState> for Core {
    type Error = String;
    fn try_from(s: AdaptiveState) -> Result<Self, String> {
        let err = |what: &str| Err(format!("incremental_one_class_svm_adaptive_kernel state: {what}"));
        let d = s.d;
        if d == 0 || !(1..=MAX_SV_BUDGET).contains(&s.sv_budget) || !(1..=MAX_BUFFER).contains(&s.buffer_size) {
            return err("no feature, or a budget or buffer size out of range");
        }
        let n_sv = s.alpha.len();
        if n_sv > s.sv_budget || s.birth.len() != n_sv || s.k_alpha.len() != n_sv || s.sv.len() != n_sv * d {
            return err("support vectors, weights, births and kernel sums disagree in number");
        }
        if s.mean.len() != d || s.m2.len() != d || s.inv_scale.len() != d {
            return err("feature statistics of another width");
        }
        let buffered = s.buffer.len() / d;
        if !s.buffer.len().is_multiple_of(d)
            || buffered > s.buffer_size
            || (s.buffer_oldest != 0 && s.buffer_oldest >= buffered)
        {
            return err("buffer of another shape");
        }
        if !(s.gamma.is_finite() && s.gamma > 0.0) || s.rescale_every == 0 {
            return err("gamma or rescale_every out of range");
        }
        let mut m = Core {
            nu: s.nu,
            gamma_min: s.gamma_min,
            gamma_max: s.gamma_max,
            adaptation_rate: s.adaptation_rate,
            tolerance: s.tolerance,
            buffer_size: s.buffer_size,
            sv_budget: s.sv_budget,
            rescale_every: s.rescale_every,
            d,
            gamma: s.gamma,
            rho: s.rho,
            n_samples: s.n_samples,
            mean: s.mean,
            m2: s.m2,
            inv_scale: s.inv_scale,
            sv: s.sv,
            alpha: s.alpha,
            birth: s.birth,
            k_alpha: s.k_alpha,
            buffer: s.buffer,
            buffer_oldest: s.buffer_oldest,
            rng: s.rng,
            dist: Vec::new(),
            scratch: Scratch::default(),
        };
        m.dist = vec![0.0; m.sv_budget * m.sv_budget];
        m.recompute_distances();
        Ok(m)
    }
}

fn finite_param(name: &'static str, v: f64) -> Result<f64, ParamError> {
    if v.is_finite() { Ok(v) } else { Err(ParamError::invalid(name, format!("must be finite, got {v}"))) }
}

impl DetectorParams for IncrementalOneClassSVMAdaptiveKernelParams {
    type Model = IncrementalOneClassSVMAdaptiveKernel;
    fn build(&self, schema: &SchemaRef) -> Result<IncrementalOneClassSVMAdaptiveKernel, ParamError> {
        let nu = finite_param("nu", self.nu)?;
        if !(nu > 0.0 && nu <= 1.0) {
            return Err(ParamError::invalid("nu", format!("must be in (0, 1], got {nu}")));
        }
        let gamma = finite_param("initial_gamma", self.initial_gamma)?;
        if gamma <= 0.0 {
            return Err(ParamError::invalid("initial_gamma", format!("must be > 0, got {gamma}")));
        }
        let (lo, hi) = self.gamma_bounds;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return Err(ParamError::invalid(
                "gamma_bounds",
                format!("must be two finite numbers 0 < low <= high, got ({lo}, {hi})"),
            ));
        }
        if !(lo..=hi).contains(&gamma) {
            return Err(ParamError::invalid(
                "initial_gamma",
                format!("must lie within gamma_bounds ({lo}, {hi}), got {gamma}"),
            ));
        }
        let rate = finite_param("adaptation_rate", self.adaptation_rate)?;
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(ParamError::invalid("adaptation_rate", format!("must be in (0, 1], got {rate}")));
        }
        if !(1..=MAX_BUFFER).contains(&self.buffer_size) {
            return Err(ParamError::invalid(
                "buffer_size",
                format!("must be between 1 and {MAX_BUFFER}, got {}", self.buffer_size),
            ));
        }
        if !(1..=MAX_SV_BUDGET).contains(&self.sv_budget) {
            return Err(ParamError::invalid(
                "sv_budget",
                format!("must be between 1 and {MAX_SV_BUDGET}, got {}", self.sv_budget),
            ));
        }
        let tolerance = finite_param("tolerance", self.tolerance)?;
        if tolerance < 0.0 {
            return Err(ParamError::invalid("tolerance", format!("must be >= 0, got {tolerance}")));
        }
        if self.rescale_every == 0 {
            return Err(ParamError::invalid("rescale_every", "must be at least 1, got 0"));
        }
        let d = schema.len();
        if d == 0 {
            return Err(ParamError::Schema(
                "incremental_one_class_svm_adaptive_kernel needs at least one feature".into(),
            ));
        }
        Ok(IncrementalOneClassSVMAdaptiveKernel(Box::new(Core {
            nu,
            gamma_min: lo,
            gamma_max: hi,
            adaptation_rate: rate,
            tolerance,
            buffer_size: self.buffer_size,
            sv_budget: self.sv_budget,
            rescale_every: self.rescale_every,
            d,
            gamma,
            rho: 0.0,
            n_samples: 0,
            mean: vec![0.0; d],
            m2: vec![0.0; d],
            inv_scale: vec![1.0; d],
            sv: Vec::with_capacity(self.sv_budget * d),
            alpha: Vec::with_capacity(self.sv_budget),
            birth: Vec::with_capacity(self.sv_budget),
            k_alpha: Vec::with_capacity(self.sv_budget),
            buffer: Vec::new(),
            buffer_oldest: 0,
            rng: Pcg64::seed_from_u64(self.seed.unwrap_or(0)),
            dist: vec![0.0; self.sv_budget * self.sv_budget],
            scratch: Scratch::default(),
        })))
    }
}

/// The squared standardised distance of two learned (finite) rows.
#[inline]
fn dist2(a: &[f64], b: &[f64], inv_scale: &[f64]) -> f64 {
    a.iter().zip(b).zip(inv_scale).map(|((x, y), s)| ((x - y) * s) * ((x - y) * s)).sum()
}

/// The same, leaving out the features where `a` is missing.
#[inline]
fn dist2_present(a: &[f64], b: &[f64], inv_scale: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .zip(inv_scale)
        .map(|((x, y), s)| {
            let t = (x - y) * s;
            if t.is_nan() { 0.0 } else { t * t }
        })
        .sum()
}

/// numpy's median: the middle value, or the mean of the two middle values. Reorders `values`.
fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (left, upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        *upper
    } else {
        let lower = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + *upper) / 2.0
    }
}

impl Core {
    fn buffered(&self) -> usize {
        self.buffer.len() / self.d
    }

    /// Buffered row `i`, oldest first.
    fn buffer_row(&self, i: usize) -> &[f64] {
        let n = self.buffered();
        let at = if n < self.buffer_size { i } else { (self.buffer_oldest + i) % n };
        &self.buffer[at * self.d..(at + 1) * self.d]
    }

    fn push_buffer(&mut self, x: &[f64]) {
        if self.buffered() < self.buffer_size {
            self.buffer.extend_from_slice(x);
        } else {
            let at = self.buffer_oldest * self.d;
            self.buffer[at..at + self.d].copy_from_slice(x);
            self.buffer_oldest = (self.buffer_oldest + 1) % self.buffer_size;
        }
    }

    /// Brings the kernel's scale up to the running deviations (1 for a constant feature, and for every
    /// feature before two rows).
    fn renew_scale(&mut self) {
        let n = self.n_samples as f64;
        for (s, m2) in self.inv_scale.iter_mut().zip(&self.m2) {
            let sd = if self.n_samples <= 1 { 1.0 } else { (m2 / n).max(0.0).sqrt() };
            *s = 1.0 / if sd > 0.0 { sd } else { 1.0 };
        }
    }

    /// Recomputes every squared distance between support vectors from the current scale.
    fn recompute_distances(&mut self) {
        let (n, d, b) = (self.alpha.len(), self.d, self.sv_budget);
        for i in 0..n {
            self.dist[i * b + i] = 0.0;
            for j in i + 1..n {
                let v = dist2(&self.sv[i * d..(i + 1) * d], &self.sv[j * d..(j + 1) * d], &self.inv_scale);
                self.dist[i * b + j] = v;
                self.dist[j * b + i] = v;
            }
        }
    }

    /// Recomputes `K alpha` from the distances and gamma, then `rho`.
    fn recompute_k_alpha(&mut self) {
        let (n, b) = (self.alpha.len(), self.sv_budget);
        // The diagonal is exp(0) = 1; each pair's kernel value is computed once and serves both rows.
        self.k_alpha.copy_from_slice(&self.alpha);
        for i in 0..n {
            for j in i + 1..n {
                let k = (-self.gamma * self.dist[i * b + j]).exp();
                self.k_alpha[i] += self.alpha[j] * k;
                self.k_alpha[j] += self.alpha[i] * k;
            }
        }
        self.update_rho();
    }

    fn update_rho(&mut self) {
        if self.k_alpha.is_empty() {
            self.rho = 0.0;
            return;
        }
        let values = &mut self.scratch.values;
        values.clear();
        values.extend_from_slice(&self.k_alpha);
        self.rho = median(values);
    }

    /// Adds the row (whose squared distances to the support vectors are in `scratch.row`) as a support
    /// vector of weight `weight`, replacing the one the budget rule picks when the budget is full.
    fn insert(&mut self, x: &[f64], weight: f64) {
        let (d, b, gamma) = (self.d, self.sv_budget, self.gamma);
        let n = self.alpha.len();
        let slot = if n < b {
            self.sv.extend_from_slice(x);
            self.alpha.push(weight);
            self.birth.push(self.n_samples);
            self.k_alpha.push(0.0);
            n
        } else {
            // Removal scores over the support vectors and the newcomer (age 0); ties go to the oldest, as in
            // onad's list, where the newcomer comes last.
            let max_alpha = self.alpha.iter().copied().fold(weight, f64::max) + 1e-8;
            let min_birth = self.birth.iter().copied().min().unwrap_or(self.n_samples).min(self.n_samples);
            let max_age = (self.n_samples - min_birth) as f64 + 1e-8;
            let removal = |alpha: f64, birth: u64| {
                0.4 * (1.0 - alpha / max_alpha) + 0.6 * ((self.n_samples - birth) as f64 / max_age)
            };
            let mut pick: Option<(usize, f64, u64)> = None;
            for (i, (&a, &born)) in self.alpha.iter().zip(&self.birth).enumerate() {
                let s = removal(a, born);
                if pick.is_none_or(|(_, best, best_born)| s > best || (s == best && born < best_born)) {
                    pick = Some((i, s, born));
                }
            }
            let Some((slot, best, _)) = pick else { return };
            if removal(weight, self.n_samples) > best {
                return; // the newcomer itself would leave: nothing changes
            }
            let gone = self.alpha[slot];
            for i in 0..n {
                if i != slot {
                    self.k_alpha[i] -= gone * (-gamma * self.dist[i * b + slot]).exp();
                }
            }
            self.sv[slot * d..(slot + 1) * d].copy_from_slice(x);
            self.alpha[slot] = weight;
            self.birth[slot] = self.n_samples;
            slot
        };
        let n = self.alpha.len();
        let mut own = 0.0;
        for i in 0..n {
            if i == slot {
                continue;
            }
            let dd = self.scratch.row[i];
            self.dist[i * b + slot] = dd;
            self.dist[slot * b + i] = dd;
            let k = (-gamma * dd).exp();
            self.k_alpha[i] += weight * k;
            own += self.alpha[i] * k;
        }
        self.dist[slot * b + slot] = 0.0;
        self.k_alpha[slot] = own + weight;
        self.update_rho();
    }

    /// The width estimate: `1 / (2 m^2)` for the median distance `m` of drawn buffered pairs, clipped.
    fn estimate_gamma(&mut self) -> f64 {
        let n = self.buffered();
        if n < 10 {
            return self.gamma;
        }
        let k = n.min(WIDTH_SAMPLE);
        let mut picks = std::mem::take(&mut self.scratch.picks);
        picks.clear();
        picks.extend(0..n);
        for i in 0..k {
            let j = i + below(&mut self.rng, n - i);
            picks.swap(i, j);
        }
        let mut distances = std::mem::take(&mut self.scratch.values);
        distances.clear();
        for i in 0..k {
            for j in i + 1..(i + 1 + WIDTH_NEIGHBOURS).min(k) {
                let dd = dist2(self.buffer_row(picks[i]), self.buffer_row(picks[j]), &self.inv_scale).sqrt();
                if dd > 1e-10 {
                    distances.push(dd);
                }
            }
        }
        let estimate = if distances.is_empty() {
            self.gamma
        } else {
            let m = median(&mut distances);
            (1.0 / (2.0 * m * m)).clamp(self.gamma_min, self.gamma_max)
        };
        self.scratch.picks = picks;
        self.scratch.values = distances;
        estimate
    }

    fn adapt_gamma(&mut self) {
        let target = self.estimate_gamma();
        let diff = target - self.gamma;
        if diff.abs() > 0.01 * self.gamma {
            self.gamma = (self.gamma + self.adaptation_rate * diff).clamp(self.gamma_min, self.gamma_max);
            self.recompute_k_alpha();
        }
    }
}

impl IncrementalOneClassSVMAdaptiveKernel {
    /// The current RBF coefficient.
    pub fn gamma(&self) -> f64 {
        self.0.gamma
    }

    /// The current offset (the median of `K alpha` over the support vectors).
    pub fn rho(&self) -> f64 {
        self.0.rho
    }

    /// Support vectors held (at most `sv_budget`).
    pub fn n_support_vectors(&self) -> usize {
        self.0.alpha.len()
    }

    /// Rows learned.
    pub fn n_samples(&self) -> u64 {
        self.0.n_samples
    }

    /// `sum_i alpha_i k(x, sv_i) - rho`: at least `-tolerance` inside the described region (onad's
    /// `predict_one` says 1 there and -1 elsewhere). `-rho` (0.0) before anything is learned.
    pub fn decision_function(&self, x: &[f64]) -> f64 {
        self.0.decision_function(x)
    }
}

impl Core {
    fn decision_function(&self, x: &[f64]) -> f64 {
        if self.alpha.is_empty() || x.len() != self.d {
            return -self.rho;
        }
        let d = self.d;
        let mut total = 0.0;
        for (i, a) in self.alpha.iter().enumerate() {
            total += a * (-self.gamma * dist2_present(x, &self.sv[i * d..(i + 1) * d], &self.inv_scale)).exp();
        }
        total - self.rho
    }

    fn learn(&mut self, x: &[f64]) {
        if x.len() != self.d || x.iter().any(|v| !v.is_finite()) {
            return;
        }
        self.n_samples += 1;
        let count = self.n_samples as f64;
        for ((m, m2), &v) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(x) {
            let delta = v - *m;
            *m += delta / count;
            *m2 += delta * (v - *m);
        }
        self.push_buffer(x);
        let every = self.rescale_every as u64;
        if self.n_samples < every || self.n_samples.is_multiple_of(every) {
            self.renew_scale();
            if !self.alpha.is_empty() {
                self.recompute_distances();
                self.recompute_k_alpha();
            }
        }
        if self.alpha.is_empty() {
            self.scratch.row.clear();
            self.insert(x, 1.0 / (10.0 * self.nu));
            return;
        }
        let d = self.d;
        let mut row = std::mem::take(&mut self.scratch.row);
        row.clear();
        let mut total = 0.0;
        for (i, a) in self.alpha.iter().enumerate() {
            let dd = dist2(x, &self.sv[i * d..(i + 1) * d], &self.inv_scale);
            row.push(dd);
            total += a * (-self.gamma * dd).exp();
        }
        self.scratch.row = row;
        let decision = total - self.rho;
        if decision < -self.tolerance {
            self.insert(x, (-decision).min(1.0 / self.nu));
        }
        if self.n_samples.is_multiple_of(ADAPT_EVERY) {
            self.adapt_gamma();
        }
    }

    fn score(&self, x: &[f64]) -> f64 {
        if self.alpha.is_empty() {
            return 0.0;
        }
        finite_score(-self.decision_function(x))
    }
}

impl Detector for IncrementalOneClassSVMAdaptiveKernel {
    fn learn_one(&mut self, x: &[f64]) {
        self.0.learn(x);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.0.score(x)
    }
}

impl Describe for IncrementalOneClassSVMAdaptiveKernelParams {
    const SUMMARY: &'static str =
        "budgeted support vectors under an RBF kernel whose width follows the data (onad's heuristic)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "nu", ty: "float in (0, 1]", required: false, help: "support-vector weight scale (0.1)" },
        ParamDoc { name: "initial_gamma", ty: "float > 0", required: false, help: "RBF coefficient at first (1.0)" },
        ParamDoc {
            name: "gamma_bounds",
            ty: "[float, float]",
            required: false,
            help: "lowest and highest gamma, 0 < low <= high ([0.001, 100.0])",
        },
        ParamDoc {
            name: "adaptation_rate",
            ty: "float in (0, 1]",
            required: false,
            help: "fraction of the way gamma moves to its estimate every 20 rows (0.1)",
        },
        ParamDoc { name: "buffer_size", ty: "int >= 1", required: false, help: "recent rows for the estimate (200)" },
        ParamDoc { name: "sv_budget", ty: "int in 1..=4096", required: false, help: "support vectors kept (100)" },
        ParamDoc {
            name: "tolerance",
            ty: "float >= 0",
            required: false,
            help: "margin below which a row becomes a support vector (1e-6)",
        },
        ParamDoc {
            name: "rescale_every",
            ty: "int >= 1",
            required: false,
            help: "rows between renewals of the kernel's scale (20; 1 = aberrant, O(B^2 d) per row)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the width estimate's draws (0)" },
    ];
    fn example() -> Self {
        IncrementalOneClassSVMAdaptiveKernelParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(p: IncrementalOneClassSVMAdaptiveKernelParams, d: usize) -> IncrementalOneClassSVMAdaptiveKernel {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    /// A deterministic 3-feature stream on different scales, with an occasional far row.
    fn row(i: usize) -> [f64; 3] {
        let a = (i as f64 * 0.618_033_988_749_895).fract();
        let b = (i as f64 * 0.754_877_666_246_693).fract();
        let far = if i % 97 == 13 { 8.0 } else { 0.0 };
        [100.0 + 20.0 * a + 20.0 * far, 0.01 * b, 5.0 * (a - b) - far]
    }

    /// The same model written the slow way, as aberrant writes it: every quantity recomputed from the
    /// support vectors each time. Draws use the same generator, so the width estimates agree.
    struct Slow {
        p: IncrementalOneClassSVMAdaptiveKernelParams,
        gamma: f64,
        rho: f64,
        rows: Vec<Vec<f64>>,
        svs: Vec<(Vec<f64>, f64, u64)>,
        buffer: std::collections::VecDeque<Vec<f64>>,
        scale: Vec<f64>,
        rng: Pcg64,
    }

    impl Slow {
        fn new(p: IncrementalOneClassSVMAdaptiveKernelParams, d: usize) -> Slow {
            let rng = Pcg64::seed_from_u64(p.seed.unwrap_or(0));
            Slow {
                gamma: p.initial_gamma,
                p,
                rho: 0.0,
                rows: Vec::new(),
                svs: Vec::new(),
                buffer: Default::default(),
                scale: vec![1.0; d],
                rng,
            }
        }
        fn k(&self, a: &[f64], b: &[f64]) -> f64 {
            let s: f64 = a.iter().zip(b).zip(&self.scale).map(|((x, y), s)| ((x - y) / s).powi(2)).sum();
            (-self.gamma * s).exp()
        }
        fn refresh(&mut self) {
            let n = self.rows.len() as f64;
            for j in 0..self.scale.len() {
                let mean = self.rows.iter().map(|r| r[j]).sum::<f64>() / n;
                let var = self.rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n;
                let sd = if self.rows.len() <= 1 { 1.0 } else { var.sqrt() };
                self.scale[j] = if sd > 0.0 { sd } else { 1.0 };
            }
        }
        fn set_rho(&mut self) {
            let mut v: Vec<f64> =
                self.svs.iter().map(|(a, _, _)| self.svs.iter().map(|(b, w, _)| w * self.k(a, b)).sum()).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            self.rho = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        }
        fn decision(&self, x: &[f64]) -> f64 {
            self.svs.iter().map(|(sv, w, _)| w * self.k(x, sv)).sum::<f64>() - self.rho
        }
        fn learn(&mut self, x: &[f64]) {
            self.rows.push(x.to_vec());
            let n = self.rows.len() as u64;
            if self.buffer.len() == self.p.buffer_size {
                self.buffer.pop_front();
            }
            self.buffer.push_back(x.to_vec());
            let every = self.p.rescale_every as u64;
            if n < every || n.is_multiple_of(every) {
                self.refresh();
                if !self.svs.is_empty() {
                    self.set_rho();
                }
            }
            if self.svs.is_empty() {
                self.svs.push((x.to_vec(), 1.0 / (10.0 * self.p.nu), n));
                self.set_rho();
                return;
            }
            let dec = self.decision(x);
            if dec < -self.p.tolerance {
                self.svs.push((x.to_vec(), (-dec).min(1.0 / self.p.nu), n));
                if self.svs.len() > self.p.sv_budget {
                    let max_alpha = self.svs.iter().map(|s| s.1).fold(f64::MIN, f64::max);
                    let max_age = (n - self.svs.iter().map(|s| s.2).min().unwrap()) as f64;
                    let score = |s: &(Vec<f64>, f64, u64)| {
                        0.4 * (1.0 - s.1 / (max_alpha + 1e-8)) + 0.6 * ((n - s.2) as f64 / (max_age + 1e-8))
                    };
                    let mut at = 0;
                    for i in 1..self.svs.len() {
                        if score(&self.svs[i]) > score(&self.svs[at]) {
                            at = i;
                        }
                    }
                    self.svs.remove(at);
                }
                self.set_rho();
            }
            if n.is_multiple_of(20) && self.buffer.len() >= 10 {
                let m = self.buffer.len();
                let k = m.min(50);
                let mut idx: Vec<usize> = (0..m).collect();
                for i in 0..k {
                    let j = i + below(&mut self.rng, m - i);
                    idx.swap(i, j);
                }
                let mut ds = Vec::new();
                for i in 0..k {
                    for j in i + 1..(i + 10).min(k) {
                        let (a, b) = (&self.buffer[idx[i]], &self.buffer[idx[j]]);
                        let s: f64 = a.iter().zip(b).zip(&self.scale).map(|((x, y), s)| ((x - y) / s).powi(2)).sum();
                        if s.sqrt() > 1e-10 {
                            ds.push(s.sqrt());
                        }
                    }
                }
                if !ds.is_empty() {
                    ds.sort_by(f64::total_cmp);
                    let l = ds.len();
                    let med = if l % 2 == 1 { ds[l / 2] } else { (ds[l / 2 - 1] + ds[l / 2]) / 2.0 };
                    let target = (1.0 / (2.0 * med * med)).clamp(self.p.gamma_bounds.0, self.p.gamma_bounds.1);
                    let diff = target - self.gamma;
                    if diff.abs() > 0.01 * self.gamma {
                        self.gamma = (self.gamma + self.p.adaptation_rate * diff)
                            .clamp(self.p.gamma_bounds.0, self.p.gamma_bounds.1);
                        self.set_rho();
                    }
                }
            }
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12
    }

    #[test]
    fn in_place_updates_match_recomputing_everything() {
        for p in [
            IncrementalOneClassSVMAdaptiveKernelParams { sv_budget: 12, buffer_size: 30, ..Default::default() },
            IncrementalOneClassSVMAdaptiveKernelParams {
                sv_budget: 5,
                rescale_every: 1,
                nu: 0.5,
                seed: Some(3),
                ..Default::default()
            },
            IncrementalOneClassSVMAdaptiveKernelParams { sv_budget: 1, rescale_every: 7, ..Default::default() },
        ] {
            let mut fast = build(p.clone(), 3);
            let mut slow = Slow::new(p.clone(), 3);
            let mut replaced = 0;
            for i in 0..600 {
                let x = row(i);
                let want = if slow.svs.is_empty() { 0.0 } else { -slow.decision(&x) };
                let got = fast.score_one(&x);
                assert!(close(got, want), "{p:?} row {i}: {got} vs {want}");
                let births: Vec<u64> = fast.0.birth.clone();
                fast.learn_one(&x);
                slow.learn(&x);
                replaced += usize::from(fast.n_support_vectors() == births.len() && fast.0.birth != births);
                assert_eq!(fast.n_support_vectors(), slow.svs.len(), "row {i}");
                assert!(close(fast.gamma(), slow.gamma) && close(fast.rho(), slow.rho), "row {i}");
                let mut fb = fast.0.birth.clone();
                fb.sort();
                assert_eq!(fb, slow.svs.iter().map(|s| s.2).collect::<Vec<_>>(), "row {i}: the same support vectors");
            }
            assert!(replaced > 10, "{p:?}: the budget rule ran {replaced} times");
            assert_ne!(fast.gamma(), p.initial_gamma, "gamma never moved");
        }
    }

    #[test]
    fn a_checkpoint_continues_identically() {
        let mut m = build(IncrementalOneClassSVMAdaptiveKernelParams { sv_budget: 20, ..Default::default() }, 3);
        for i in 0..333 {
            m.learn_one(&row(i));
        }
        let mut back: IncrementalOneClassSVMAdaptiveKernel =
            postcard::from_bytes(&postcard::to_stdvec(&m).unwrap()).unwrap();
        for i in 333..900 {
            let x = row(i);
            assert_eq!(m.score_one(&x).to_bits(), back.score_one(&x).to_bits(), "row {i}");
            m.learn_one(&x);
            back.learn_one(&x);
        }
        assert_eq!(postcard::to_stdvec(&m).unwrap(), postcard::to_stdvec(&back).unwrap());
    }

    #[test]
    fn far_rows_score_higher_and_the_budget_holds() {
        let mut m = build(IncrementalOneClassSVMAdaptiveKernelParams::default(), 3);
        // Learned without the far rows, which are then novel.
        for i in (0..3000).filter(|i| i % 97 != 13) {
            m.learn_one(&row(i));
            assert!(m.n_support_vectors() <= 100);
        }
        let (mut normal, mut far) = (0.0, 0.0);
        for i in 3000..3970 {
            let s = m.score_one(&row(i));
            if i % 97 == 13 { far += s / 10.0 } else { normal += s / 960.0 }
        }
        assert!(far > normal + 0.1, "far rows {far}, normal rows {normal}");
        assert!(m.gamma() >= 0.001 && m.gamma() <= 100.0);
    }

    #[test]
    fn first_row_enters_the_statistics() {
        let mut m = build(IncrementalOneClassSVMAdaptiveKernelParams::default(), 1);
        m.learn_one(&[10.0]);
        m.learn_one(&[14.0]);
        // Population deviation of {10, 14} is 2 (onad would use a pseudo-row at 0 instead of 10).
        assert_eq!(m.0.inv_scale, [0.5]);
        assert_eq!(m.0.mean, [12.0]);
    }

    #[test]
    fn bad_rows_are_not_learned_and_scores_stay_finite() {
        let mut m = build(IncrementalOneClassSVMAdaptiveKernelParams::default(), 3);
        for i in 0..100 {
            m.learn_one(&row(i));
        }
        let before = postcard::to_stdvec(&m).unwrap();
        m.learn_one(&[f64::NAN, 1.0, 1.0]);
        m.learn_one(&[f64::INFINITY, 1.0, 1.0]);
        m.learn_one(&[1.0, 2.0]);
        assert_eq!(postcard::to_stdvec(&m).unwrap(), before);
        let x = row(5);
        let missing = m.score_one(&[f64::NAN, x[1], x[2]]);
        assert!(missing.is_finite());
        assert_eq!(m.score_one(&[f64::INFINITY, x[1], x[2]]), m.rho(), "every kernel value 0");
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        let p = IncrementalOneClassSVMAdaptiveKernelParams::default;
        for (bad, name) in [
            (IncrementalOneClassSVMAdaptiveKernelParams { nu: 0.0, ..p() }, "nu"),
            (IncrementalOneClassSVMAdaptiveKernelParams { nu: 1.5, ..p() }, "nu"),
            (IncrementalOneClassSVMAdaptiveKernelParams { initial_gamma: -1.0, ..p() }, "initial_gamma"),
            (IncrementalOneClassSVMAdaptiveKernelParams { initial_gamma: 1000.0, ..p() }, "initial_gamma"),
            (IncrementalOneClassSVMAdaptiveKernelParams { gamma_bounds: (2.0, 1.0), ..p() }, "gamma_bounds"),
            (IncrementalOneClassSVMAdaptiveKernelParams { gamma_bounds: (0.0, 1.0), ..p() }, "gamma_bounds"),
            (IncrementalOneClassSVMAdaptiveKernelParams { adaptation_rate: 0.0, ..p() }, "adaptation_rate"),
            (IncrementalOneClassSVMAdaptiveKernelParams { buffer_size: 0, ..p() }, "buffer_size"),
            (IncrementalOneClassSVMAdaptiveKernelParams { sv_budget: 0, ..p() }, "sv_budget"),
            (IncrementalOneClassSVMAdaptiveKernelParams { sv_budget: 5000, ..p() }, "sv_budget"),
            (IncrementalOneClassSVMAdaptiveKernelParams { tolerance: -1.0, ..p() }, "tolerance"),
            (IncrementalOneClassSVMAdaptiveKernelParams { rescale_every: 0, ..p() }, "rescale_every"),
        ] {
            let e = bad.build(&schema).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn damaged_state_is_refused() {
        let mut m = build(IncrementalOneClassSVMAdaptiveKernelParams { sv_budget: 4, ..Default::default() }, 2);
        for i in 0..50 {
            let x = row(i);
            m.learn_one(&x[..2]);
        }
        let json = serde_json::to_string(&m).unwrap();
        let back: IncrementalOneClassSVMAdaptiveKernel = serde_json::from_str(&json).unwrap();
        assert_eq!(back.n_support_vectors(), m.n_support_vectors());
        for (from, to) in
            [("\"d\":2", "\"d\":3"), ("\"sv_budget\":4", "\"sv_budget\":1"), ("\"gamma\":", "\"gamma\":-")]
        {
            assert!(json.contains(from), "{json}");
            let bad = json.replacen(from, to, 1);
            assert!(serde_json::from_str::<IncrementalOneClassSVMAdaptiveKernel>(&bad).is_err(), "{bad}");
        }
    }
}
