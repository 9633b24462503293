//! KitNET: an ensemble of small autoencoders over groups of correlated features, and an output
//! autoencoder over their reconstruction errors (aberrant's `OnlineAutoencoderEnsemble`).

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::nn::{Kind, Net, sgd_step};
use crate::registry::{Describe, finite_score};
use crate::rng::unit_rng;

/// Hyperparameters of [`OnlineAutoencoderEnsemble`] (aberrant 1.3.0 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineAutoencoderEnsembleParams {
    /// Most features of one ensemble autoencoder, `>= 1`.
    pub max_ae_size: usize,
    /// Rows learned to estimate the feature correlations before the ensemble is built, `>= 1`.
    pub feature_map_grace: u64,
    /// Rows then learned to train the autoencoders before scoring starts, `>= 0` (0: the row that ends
    /// the feature map trains them once and scoring starts).
    pub ad_grace: u64,
    /// SGD step size of every autoencoder, finite, `> 0`.
    pub learning_rate: f64,
    /// Hidden width as a fraction of an autoencoder's input width, in (0, 1].
    pub hidden_ratio: f64,
    /// Keep training on learned rows once scoring has started (Kitsune stops).
    pub adaptive_after_warmup: bool,
    /// Score rows while the autoencoders train (after their first training row), with the ensemble as
    /// trained so far, as KitNET-py's `execute` allows; `false` scores 0.0 until training ends, as
    /// Kitsune's `process` and aberrant do.
    pub score_while_training: bool,
    /// Seed of the initial weights; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for OnlineAutoencoderEnsembleParams {
    fn default() -> Self {
        OnlineAutoencoderEnsembleParams {
            max_ae_size: 10,
            feature_map_grace: 5_000,
            ad_grace: 50_000,
            learning_rate: 0.1,
            hidden_ratio: 0.75,
            adaptive_after_warmup: false,
            score_while_training: true,
            seed: None,
        }
    }
}

/// The three phases of [`OnlineAutoencoderEnsemble`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KitnetPhase {
    /// Estimating feature correlations.
    FeatureMap,
    /// Training the autoencoders (scored by the ensemble so far, or 0.0 when not `score_while_training`).
    Training,
    /// Scoring.
    Ready,
}

/// KitNET, the detector of Kitsune (Mirsky, Doitshman, Elovici & Shabtai 2018, "Kitsune: An Ensemble of
/// Autoencoders for Online Network Intrusion Detection", NDSS), as aberrant 1.3.0's
/// `OnlineAutoencoderEnsemble`: features are grouped by correlation, a small autoencoder learns to
/// reconstruct each group, and an output autoencoder learns to reconstruct the vector of their errors;
/// its reconstruction error is the score.
///
/// # Algorithm
/// 1. Feature map (the first `feature_map_grace` rows learned): the running means and co-moments of the
///    features give `|r_ij|`, the absolute Pearson correlations (variances clipped below at 1e-12, the
///    diagonal 1). With at most `max_ae_size` features there is one group of all of them. Otherwise
///    features are grouped greedily (aberrant's rule): a group starts from the unassigned feature with the
///    largest `sum_j |r_ij|` and takes, one at a time, the unassigned feature with the largest mean `|r|`
///    to the group's members, up to `max_ae_size`; ties go to the lower feature index. The row that
///    completes the feature map builds the autoencoders.
/// 2. Training (the next `ad_grace` rows): every autoencoder is a dense `n -> h -> n` network with a tanh
///    hidden layer and a linear output, `h = min(n - 1, ceil(hidden_ratio n))` (1 for `n = 1`), Glorot
///    uniform weights (`+-sqrt(6 / (n + h))`, seeded per autoencoder from `(seed, index)`, the output
///    autoencoder last) and zero biases, trained by one SGD step of `learning_rate` per row on
///    `0.5 * mean squared error`. Each group's autoencoder is trained on its features, and the output
///    autoencoder on the vector of the groups' reconstruction RMSEs before their step. A row whose step
///    would make any weight non-finite moves no weight.
/// 3. Scoring: the RMSE of the output autoencoder's reconstruction of the groups' RMSE vector, `>= 0`;
///    0.0 during the feature map and before the first training row. During training a row is scored by
///    the ensemble as trained so far (`score_while_training`, the default: onad scores and learns
///    separately, and KitNET-py's `execute` can be called the same way, so a stream shorter than the
///    graces still gets informative scores); with `score_while_training = false` it scores 0.0 until
///    training ends, as Kitsune's `process` and aberrant do. pysad 0.7.0 goes further and scores the
///    feature-map rows too, with temporary autoencoders rebuilt at powers of two; onad does not. After
///    training the autoencoders are frozen unless `adaptive_after_warmup`.
///
/// Each autoencoder sees its input min-max normalised by the range of the rows it trained on,
/// `(x - min) / (max - min + 1e-16)` (the range is widened by each training row before its step; scoring
/// does not widen it), as in the authors' KitNET-py. aberrant feeds raw values to its autoencoders: with
/// a step size of 0.1, unscaled features (counts, bytes, times in the thousands) make SGD diverge
/// (aberrant then raises `OverflowError`), so onad normalises, which makes raw data work with the
/// defaults and changes nothing essential behind a scaler (a scaled feature already spans about
/// `[0, 1]`). A feature constant during training keeps a range of 1e-16: any other value there is a
/// large error, as in KitNET-py.
///
/// # Deviations
/// - From the paper and KitNET-py (followed here where aberrant follows them): Kitsune clusters the
///   features hierarchically (agglomerative, on correlation distance) and its autoencoders are
///   denoising autoencoders with sigmoid units and tied weights; aberrant, and this port, use the greedy
///   grouping, tanh hidden units, untied weights and a linear output. The input normalisation above is
///   KitNET-py's, not aberrant's.
/// - The correlations come from Welford-style running means and co-moments (aberrant sums raw products,
///   which cancels catastrophically on raw features with large means); equal in exact arithmetic.
/// - A row with a NaN or infinite value is not learned (not counted in the graces); aberrant refuses
///   such rows. When scoring, a missing feature enters its autoencoder as 0 and is left out of that
///   autoencoder's RMSE (an autoencoder with none present has error 0); an infinite one scores the
///   largest finite number.
/// - Weights come from onad's seeded PCG64 draws, not numpy's, so they differ from aberrant's for a
///   seed; `seed = None` means seed 0.
///
/// The defaults' graces are 55,000 rows (5,000 + 50,000): the first 5,000 rows score 0.0, the next 50,000
/// are scored by autoencoders still in training (with `score_while_training = false`, all 55,000 score
/// 0.0).
///
/// # Cost
/// Feature map: O(d^2) per row (the co-moments; `d^2` numbers, freed when the ensemble is built), and
/// once O(d^2 max_ae_size) for the grouping. Training and scoring: O(sum of `n h` over the autoencoders),
/// about `2 hidden_ratio max_ae_size d` multiply-adds per pass, allocation-free.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::OnlineAutoencoderEnsembleParams;
/// let schema = Schema::shared(["a", "b", "c", "d"]).unwrap();
/// let params = OnlineAutoencoderEnsembleParams {
///     max_ae_size: 2,
///     feature_map_grace: 200,
///     ad_grace: 3_000,
///     seed: Some(1),
///     ..Default::default()
/// };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..3_200 {
///     let t = i as f64 * 0.37;
///     // Two pairs of correlated features, on raw scales.
///     model.learn_one(&[t.sin() * 100.0, t.sin() * 50.0 + 7.0, t.cos() * 2_000.0, t.cos() * 1_000.0]);
/// }
/// let t = 3_200.0 * 0.37f64;
/// let normal = model.score_one(&[t.sin() * 100.0, t.sin() * 50.0 + 7.0, t.cos() * 2_000.0, t.cos() * 1_000.0]);
/// let broken = model.score_one(&[90.0, -45.0, 1_500.0, -800.0]); // correlations broken
/// assert!(broken > 3.0 * normal, "{broken} vs {normal}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnlineAutoencoderEnsemble {
    max_ae_size: usize,
    feature_map_grace: u64,
    ad_grace: u64,
    learning_rate: f64,
    hidden_ratio: f64,
    adaptive_after_warmup: bool,
    /// Absent from states written before it existed, which scored 0.0 while training.
    #[serde(default)]
    score_while_training: bool,
    seed: u64,
    d: usize,
    phase: KitnetPhase,
    /// Rows learned in the feature map and in training.
    mapped: u64,
    trained: u64,
    /// Feature-map moments (boxed: the model enum stays small).
    moments: Box<Moments>,
    /// Feature indices of each group, ascending.
    groups: Vec<Vec<usize>>,
    /// One autoencoder per group, then the output autoencoder (empty before the ensemble is built).
    aes: Vec<SmallAutoencoder>,
    /// Training steps whose weights were dropped (they would not have been finite).
    dropped: u64,
    #[serde(skip)]
    work: Box<Work>,
}

/// Feature-map moments: running means, and the co-moments `sum (x_i - mean_i)(x_j - mean_j)` (row-major
/// `d x d`, upper triangle used). Empty after the feature map.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Moments {
    mean: Vec<f64>,
    comoment: Vec<f64>,
}

/// One `n -> h -> n` autoencoder with its input range.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "AutoencoderState")]
struct SmallAutoencoder {
    n_in: usize,
    hidden: usize,
    params: Vec<f64>,
    /// The range of the training inputs (empty before the first one).
    lo: Vec<f64>,
    hi: Vec<f64>,
    #[serde(skip)]
    net: Net,
}

#[derive(Deserialize)]
struct AutoencoderState {
    n_in: usize,
    hidden: usize,
    params: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl TryFrom<AutoencoderState> for SmallAutoencoder {
    type Error = String;
    fn try_from(s: AutoencoderState) -> Result<Self, String> {
        if s.n_in == 0 || s.n_in > MAX_FEATURES || s.hidden == 0 || s.hidden > s.n_in {
            return Err(format!("kitnet autoencoder of {} inputs and {} hidden units", s.n_in, s.hidden));
        }
        let net = shape(s.n_in, s.hidden);
        let ranges_ok = (s.lo.is_empty() && s.hi.is_empty()) || (s.lo.len() == s.n_in && s.hi.len() == s.n_in);
        if s.params.len() != net.n_params() || !ranges_ok {
            return Err(format!("kitnet autoencoder of {} inputs: wrong parameter or range length", s.n_in));
        }
        Ok(SmallAutoencoder { n_in: s.n_in, hidden: s.hidden, params: s.params, lo: s.lo, hi: s.hi, net })
    }
}

/// Most features accepted (the feature map holds `d^2` co-moments).
const MAX_FEATURES: usize = 4096;

/// KitNET-py's guard against a zero range.
const RANGE_EPS: f64 = 1e-16;

fn shape(n_in: usize, hidden: usize) -> Net {
    Net::new(&[(Kind::Tanh, n_in, hidden), (Kind::Linear { relu: false }, hidden, n_in)])
}

impl SmallAutoencoder {
    fn new(n_in: usize, hidden: usize, seed: u64, index: u64) -> SmallAutoencoder {
        let net = shape(n_in, hidden);
        let mut params = vec![0.0; net.n_params()];
        net.init_glorot(&mut params, &mut unit_rng(seed, index));
        SmallAutoencoder { n_in, hidden, params, lo: Vec::new(), hi: Vec::new(), net }
    }

    /// Widens the range by a finite input.
    fn widen(&mut self, x: &[f64]) {
        if self.lo.is_empty() {
            self.lo = x.to_vec();
            self.hi = x.to_vec();
        } else {
            for ((lo, hi), &v) in self.lo.iter_mut().zip(&mut self.hi).zip(x) {
                *lo = lo.min(v);
                *hi = hi.max(v);
            }
        }
    }

    /// Normalises `x` into `z` (a NaN value becomes 0).
    fn normalise(&self, x: &[f64], z: &mut [f64]) {
        if self.lo.is_empty() {
            z.iter_mut().zip(x).for_each(|(z, &v)| *z = if v.is_nan() { 0.0 } else { v });
            return;
        }
        for (((z, &v), &lo), &hi) in z.iter_mut().zip(x).zip(&self.lo).zip(&self.hi) {
            *z = if v.is_nan() { 0.0 } else { (v - lo) / (hi - lo + RANGE_EPS) };
        }
    }
}

/// The RMSE of the reconstruction `y` of `z` over the features `x` has (NaN ones left out; 0.0 when none
/// is), without overflowing while the result is representable.
fn rmse(y: &[f64], z: &[f64], x: &[f64]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for ((&a, &b), &v) in y.iter().zip(z).zip(x) {
        if !v.is_nan() {
            sum += (a - b) * (a - b);
            n += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    if sum.is_finite() {
        return (sum / n as f64).sqrt();
    }
    let scale = y.iter().zip(z).zip(x).filter(|(_, v)| !v.is_nan()).fold(0.0f64, |m, ((a, b), _)| m.max((a - b).abs()));
    if !scale.is_finite() {
        return f64::MAX;
    }
    let scaled: f64 =
        y.iter().zip(z).zip(x).filter(|(_, v)| !v.is_nan()).map(|((a, b), _)| ((a - b) / scale).powi(2)).sum();
    (scaled / n as f64).sqrt() * scale
}

/// Buffers of learning and scoring: one group's input and its normalisation, the forward values, the
/// staged weights of every autoencoder, the backward pass's buffers, the RMSE vector.
#[derive(Debug, Clone, Default)]
struct Work {
    /// `(n_in, hidden)` of the autoencoders the buffers were sized for.
    shapes: Vec<(usize, usize)>,
    sub: Vec<f64>,
    z: Vec<f64>,
    cache: Vec<f64>,
    staged: Vec<Vec<f64>>,
    a: Vec<f64>,
    b: Vec<f64>,
    d_out: Vec<f64>,
    errors: Vec<f64>,
}

impl Work {
    fn fit(&mut self, aes: &[SmallAutoencoder]) {
        if self.shapes.len() != aes.len() || self.shapes.iter().zip(aes).any(|(s, ae)| *s != (ae.n_in, ae.hidden)) {
            let widest = aes.iter().map(|ae| ae.n_in).max().unwrap_or(1);
            let cache = aes.iter().map(|ae| ae.net.n_cache()).max().unwrap_or(0);
            *self = Work {
                shapes: aes.iter().map(|ae| (ae.n_in, ae.hidden)).collect(),
                sub: vec![0.0; widest],
                z: vec![0.0; widest],
                cache: vec![0.0; cache],
                staged: aes.iter().map(|ae| vec![0.0; ae.params.len()]).collect(),
                a: vec![0.0; widest],
                b: vec![0.0; widest],
                d_out: vec![0.0; widest],
                errors: vec![0.0; aes.len()],
            };
        }
    }
}

thread_local! {
    static SCORE_WORK: RefCell<Work> = RefCell::new(Work::default());
}

impl DetectorParams for OnlineAutoencoderEnsembleParams {
    type Model = OnlineAutoencoderEnsemble;

    fn build(&self, schema: &SchemaRef) -> Result<OnlineAutoencoderEnsemble, ParamError> {
        if self.max_ae_size == 0 {
            return Err(ParamError::invalid("max_ae_size", "must be at least 1, got 0"));
        }
        if self.feature_map_grace == 0 {
            return Err(ParamError::invalid("feature_map_grace", "must be at least 1, got 0"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ParamError::invalid(
                "learning_rate",
                format!("must be a finite number > 0, got {}", self.learning_rate),
            ));
        }
        if !(self.hidden_ratio > 0.0 && self.hidden_ratio <= 1.0) {
            return Err(ParamError::invalid("hidden_ratio", format!("must be in (0, 1], got {}", self.hidden_ratio)));
        }
        let d = schema.len();
        if d == 0 || d > MAX_FEATURES {
            return Err(ParamError::Schema(format!("kitnet needs 1 to {MAX_FEATURES} features, got {d}")));
        }
        Ok(OnlineAutoencoderEnsemble {
            max_ae_size: self.max_ae_size,
            feature_map_grace: self.feature_map_grace,
            ad_grace: self.ad_grace,
            learning_rate: self.learning_rate,
            hidden_ratio: self.hidden_ratio,
            adaptive_after_warmup: self.adaptive_after_warmup,
            score_while_training: self.score_while_training,
            seed: self.seed.unwrap_or(0),
            d,
            phase: KitnetPhase::FeatureMap,
            mapped: 0,
            trained: 0,
            moments: Box::new(Moments { mean: vec![0.0; d], comoment: vec![0.0; d * d] }),
            groups: Vec::new(),
            aes: Vec::new(),
            dropped: 0,
            work: Box::default(),
        })
    }
}

impl OnlineAutoencoderEnsemble {
    /// The current phase.
    pub fn phase(&self) -> KitnetPhase {
        self.phase
    }

    /// The feature groups (input indices), once the feature map is done.
    pub fn groups(&self) -> &[Vec<usize>] {
        &self.groups
    }

    /// Training rows whose step was dropped because a weight would not have been finite.
    pub fn dropped_steps(&self) -> u64 {
        self.dropped
    }

    fn hidden(&self, n_in: usize) -> usize {
        if n_in <= 1 {
            return 1;
        }
        ((n_in as f64 * self.hidden_ratio).ceil() as usize).clamp(1, n_in - 1)
    }

    /// One feature-map row: Welford's update of the means and co-moments.
    fn map(&mut self, x: &[f64]) {
        self.mapped += 1;
        let n = self.mapped as f64;
        let d = self.d;
        let work = &mut self.work;
        work.sub.clear();
        work.sub.extend(x.iter().zip(&self.moments.mean).map(|(v, m)| v - m)); // deltas to the old means
        for (m, delta) in self.moments.mean.iter_mut().zip(&work.sub) {
            *m += delta / n;
        }
        work.z.clear();
        work.z.extend(x.iter().zip(&self.moments.mean).map(|(v, m)| v - m)); // residuals to the new means
        for i in 0..d {
            let di = work.sub[i];
            let row = &mut self.moments.comoment[i * d..(i + 1) * d];
            for (c, r) in row[i..].iter_mut().zip(&work.z[i..]) {
                *c += di * r;
            }
        }
    }

    /// The absolute correlation matrix of the feature map (row-major `d x d`).
    fn abs_correlations(&self) -> Vec<f64> {
        let d = self.d;
        let n = self.mapped as f64;
        let std: Vec<f64> = (0..d).map(|i| (self.moments.comoment[i * d + i] / n).max(1e-12).sqrt()).collect();
        let mut r = vec![0.0; d * d];
        for i in 0..d {
            r[i * d + i] = 1.0;
            for j in i + 1..d {
                let c = (self.moments.comoment[i * d + j] / n) / (std[i] * std[j]);
                let c = if c.is_finite() { c.abs() } else { 0.0 };
                r[i * d + j] = c;
                r[j * d + i] = c;
            }
        }
        r
    }

    /// aberrant's greedy grouping by mean absolute correlation.
    fn build_groups(&self) -> Vec<Vec<usize>> {
        let d = self.d;
        if d <= self.max_ae_size {
            return vec![(0..d).collect()];
        }
        let r = self.abs_correlations();
        let strength: Vec<f64> = (0..d).map(|i| r[i * d..(i + 1) * d].iter().sum()).collect();
        let mut unassigned = vec![true; d];
        let mut left = d;
        let mut groups = Vec::new();
        // The first index with the largest key among the unassigned ones.
        let best = |unassigned: &[bool], key: &dyn Fn(usize) -> f64| {
            let mut best: Option<(usize, f64)> = None;
            for i in (0..d).filter(|&i| unassigned[i]) {
                let k = key(i);
                if best.is_none_or(|(_, b)| k > b) {
                    best = Some((i, k));
                }
            }
            best.map(|(i, _)| i)
        };
        while left > 0 {
            let Some(seed) = best(&unassigned, &|i| strength[i]) else { break };
            let mut group = vec![seed];
            unassigned[seed] = false;
            left -= 1;
            while left > 0 && group.len() < self.max_ae_size {
                let mean_r = |i: usize| group.iter().map(|&g| r[i * d + g]).sum::<f64>() / group.len() as f64;
                let Some(next) = best(&unassigned, &mean_r) else { break };
                group.push(next);
                unassigned[next] = false;
                left -= 1;
            }
            group.sort_unstable();
            groups.push(group);
        }
        groups
    }

    /// Ends the feature map: groups, autoencoders, and the moments freed.
    fn build_ensemble(&mut self) {
        self.groups = self.build_groups();
        let mut aes = Vec::with_capacity(self.groups.len() + 1);
        for (i, g) in self.groups.iter().enumerate() {
            aes.push(SmallAutoencoder::new(g.len(), self.hidden(g.len()), self.seed, i as u64));
        }
        let k = self.groups.len();
        aes.push(SmallAutoencoder::new(k, self.hidden(k), self.seed, k as u64));
        self.aes = aes;
        *self.moments = Moments::default();
    }

    /// One SGD step of every autoencoder on a finite row, published only when every new weight is finite.
    fn train(&mut self, x: &[f64]) {
        let OnlineAutoencoderEnsemble { groups, aes, work, learning_rate, dropped, .. } = self;
        work.fit(aes);
        let Work { sub, z, cache, staged, a, b, d_out, errors, .. } = &mut **work;
        let mut finite = true;
        let (output, ensemble) = aes.split_last_mut().expect("the ensemble has an output autoencoder");
        for (i, (g, ae)) in groups.iter().zip(ensemble.iter_mut()).enumerate() {
            let n = g.len();
            let sub = &mut sub[..n];
            sub.iter_mut().zip(g).for_each(|(s, &j)| *s = x[j]);
            let work = (&mut a[..], &mut b[..]);
            errors[i] =
                step(ae, sub, &mut z[..n], cache, &mut staged[i], work, &mut d_out[..n], *learning_rate, &mut finite);
        }
        let k = errors.len() - 1;
        let errors_in = &errors[..k];
        let staged_out = &mut staged[k];
        let work = (&mut a[..], &mut b[..]);
        step(output, errors_in, &mut z[..k], cache, staged_out, work, &mut d_out[..k], *learning_rate, &mut finite);
        if finite {
            for (ae, s) in aes.iter_mut().zip(staged.iter_mut()) {
                std::mem::swap(&mut ae.params, s);
            }
        } else {
            *dropped += 1;
        }
    }

    /// The score of a row once ready, with `work` fitted.
    fn score_with(&self, x: &[f64], work: &mut Work) -> f64 {
        let (output, ensemble) = self.aes.split_last().expect("the ensemble has an output autoencoder");
        let Work { sub, z, cache, errors, .. } = work;
        for (i, (g, ae)) in self.groups.iter().zip(ensemble).enumerate() {
            let n = g.len();
            let sub = &mut sub[..n];
            sub.iter_mut().zip(g).for_each(|(s, &j)| *s = x[j]);
            ae.normalise(sub, &mut z[..n]);
            let y = ae.net.forward(&ae.params, &z[..n], cache);
            errors[i] = rmse(y, &z[..n], sub);
        }
        let k = self.groups.len();
        let e = &errors[..k];
        output.normalise(e, &mut z[..k]);
        let y = output.net.forward(&output.params, &z[..k], cache);
        finite_score(rmse(y, &z[..k], e).max(0.0))
    }
}

/// Widens `ae`'s range by `x`, then stages one SGD step on `0.5 * mean squared error` of the normalised
/// `x` into `staged`; returns the RMSE before the step and clears `finite` when the step is not finite.
#[allow(clippy::too_many_arguments)]
fn step(
    ae: &mut SmallAutoencoder,
    x: &[f64],
    z: &mut [f64],
    cache: &mut [f64],
    staged: &mut [f64],
    work: (&mut [f64], &mut [f64]),
    d_out: &mut [f64],
    learning_rate: f64,
    finite: &mut bool,
) -> f64 {
    ae.widen(x);
    ae.normalise(x, z);
    let net = &ae.net;
    let y = net.forward(&ae.params, z, cache);
    let error = rmse(y, z, x);
    let n = ae.n_in as f64;
    for ((g, &yj), &zj) in d_out.iter_mut().zip(y).zip(z.iter()) {
        *g = (yj - zj) / n;
    }
    net.backward(&ae.params, z, cache, d_out, staged, work);
    *finite &= sgd_step(learning_rate, &ae.params, staged);
    error
}

impl Detector for OnlineAutoencoderEnsemble {
    fn learn_one(&mut self, x: &[f64]) {
        if x.len() != self.d || x.iter().any(|v| !v.is_finite()) {
            return;
        }
        match self.phase {
            KitnetPhase::FeatureMap => {
                self.map(x);
                if self.mapped >= self.feature_map_grace {
                    self.build_ensemble();
                    if self.ad_grace == 0 {
                        self.train(x);
                        self.phase = KitnetPhase::Ready;
                    } else {
                        self.phase = KitnetPhase::Training;
                    }
                }
            }
            KitnetPhase::Training => {
                self.train(x);
                self.trained += 1;
                if self.trained >= self.ad_grace {
                    self.phase = KitnetPhase::Ready;
                }
            }
            KitnetPhase::Ready => {
                if self.adaptive_after_warmup {
                    self.train(x);
                }
            }
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let scores = match self.phase {
            KitnetPhase::FeatureMap => false,
            KitnetPhase::Training => self.score_while_training && self.trained > 0,
            KitnetPhase::Ready => true,
        };
        if !scores || x.len() != self.d {
            return 0.0;
        }
        if x.iter().any(|v| v.is_infinite()) {
            return f64::MAX;
        }
        SCORE_WORK.with(|cell| match cell.try_borrow_mut() {
            Ok(mut work) => {
                work.fit(&self.aes);
                self.score_with(x, &mut work)
            }
            Err(_) => {
                let mut work = Work::default();
                work.fit(&self.aes);
                self.score_with(x, &mut work)
            }
        })
    }
}

impl Describe for OnlineAutoencoderEnsembleParams {
    const REFERENCE: &'static str = "Mirsky, Doitshman, Elovici & Shabtai 2018, Kitsune: An Ensemble of Autoencoders for Online Network Intrusion Detection (NDSS)";
    const SUMMARY: &'static str =
        "ensemble of small autoencoders over correlated feature groups, scored by an output autoencoder (KitNET)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "max_ae_size",
            ty: "int >= 1",
            required: false,
            help: "most features of one ensemble autoencoder (default 10)",
        },
        ParamDoc {
            name: "feature_map_grace",
            ty: "int >= 1",
            required: false,
            help: "rows for the feature correlations before the ensemble is built (default 5000)",
        },
        ParamDoc {
            name: "ad_grace",
            ty: "int >= 0",
            required: false,
            help: "rows then training the autoencoders before scoring (default 50000)",
        },
        ParamDoc {
            name: "learning_rate",
            ty: "float > 0",
            required: false,
            help: "SGD step size of every autoencoder (default 0.1)",
        },
        ParamDoc {
            name: "hidden_ratio",
            ty: "float in (0, 1]",
            required: false,
            help: "hidden width over input width of each autoencoder (default 0.75)",
        },
        ParamDoc {
            name: "adaptive_after_warmup",
            ty: "bool",
            required: false,
            help: "keep training after scoring starts (default false)",
        },
        ParamDoc {
            name: "score_while_training",
            ty: "bool",
            required: false,
            help: "score with the ensemble as trained so far during ad_grace (default true; false: 0.0 until it ends)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the initial weights (default 0)" },
    ];
    fn example() -> Self {
        // Short graces, so that the suites see every phase.
        OnlineAutoencoderEnsembleParams { feature_map_grace: 20, ad_grace: 50, seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(p: OnlineAutoencoderEnsembleParams, d: usize) -> OnlineAutoencoderEnsemble {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    fn small(max_ae_size: usize, fm: u64, ad: u64) -> OnlineAutoencoderEnsembleParams {
        OnlineAutoencoderEnsembleParams {
            max_ae_size,
            feature_map_grace: fm,
            ad_grace: ad,
            seed: Some(3),
            ..Default::default()
        }
    }

    /// Three latent signals, each seen by two features on their own raw scales, and a pure noise feature.
    fn row(i: usize) -> [f64; 7] {
        let t = i as f64;
        let (s1, s2, s3) = ((t * 0.31).sin(), (t * 0.17).cos(), (t * 0.071).sin());
        let noise = (t * 12.9898).sin() * 43_758.545_3;
        let noise = noise - noise.floor();
        [s1 * 100.0, s2 * 5.0, s1 * -40.0 + 3.0, s3 * 1e4, s2 * 2.0 + 1.0, s3 * 7e3 - 50.0, noise]
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 3);
        let d = OnlineAutoencoderEnsembleParams::default;
        for (p, name) in [
            (OnlineAutoencoderEnsembleParams { max_ae_size: 0, ..d() }, "'max_ae_size'"),
            (OnlineAutoencoderEnsembleParams { feature_map_grace: 0, ..d() }, "'feature_map_grace'"),
            (OnlineAutoencoderEnsembleParams { learning_rate: 0.0, ..d() }, "'learning_rate'"),
            (OnlineAutoencoderEnsembleParams { learning_rate: f64::NAN, ..d() }, "'learning_rate'"),
            (OnlineAutoencoderEnsembleParams { hidden_ratio: 0.0, ..d() }, "'hidden_ratio'"),
            (OnlineAutoencoderEnsembleParams { hidden_ratio: 1.5, ..d() }, "'hidden_ratio'"),
            (OnlineAutoencoderEnsembleParams { hidden_ratio: f64::NAN, ..d() }, "'hidden_ratio'"),
        ] {
            let e = p.build(&schema).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        assert!(OnlineAutoencoderEnsembleParams { ad_grace: 0, hidden_ratio: 1.0, ..d() }.build(&schema).is_ok());
    }

    #[test]
    fn hidden_widths_follow_aberrant() {
        let m = build(OnlineAutoencoderEnsembleParams::default(), 3);
        assert_eq!([1, 2, 3, 4, 10].map(|n| m.hidden(n)), [1, 1, 2, 3, 8]);
        let m = build(OnlineAutoencoderEnsembleParams { hidden_ratio: 1.0, ..Default::default() }, 3);
        assert_eq!([1, 2, 10].map(|n| m.hidden(n)), [1, 1, 9]);
        let m = build(OnlineAutoencoderEnsembleParams { hidden_ratio: 0.01, ..Default::default() }, 3);
        assert_eq!([2, 10].map(|n| m.hidden(n)), [1, 1]);
    }

    #[test]
    fn correlated_features_are_grouped_together() {
        let mut m = build(small(2, 2_000, 10), 7);
        (0..2_000).for_each(|i| m.learn_one(&row(i)));
        assert_eq!(m.phase(), KitnetPhase::Training);
        let mut groups = m.groups().to_vec();
        groups.sort();
        assert_eq!(groups, [vec![0, 2], vec![1, 4], vec![3, 5], vec![6]]);
        // Sizes: three autoencoders of 2 -> 1 -> 2, one of 1 -> 1 -> 1, the output one of 4 -> 3 -> 4.
        let shapes: Vec<(usize, usize)> = m.aes.iter().map(|ae| (ae.n_in, ae.hidden)).collect();
        assert_eq!(shapes.len(), 5);
        assert_eq!(shapes[4], (4, 3));
        assert!(m.moments.mean.is_empty() && m.moments.comoment.is_empty(), "the moments are freed");
        // At most max_ae_size features: one group.
        let mut m = build(small(10, 50, 10), 7);
        (0..50).for_each(|i| m.learn_one(&row(i)));
        assert_eq!(m.groups(), [vec![0, 1, 2, 3, 4, 5, 6]]);
    }

    #[test]
    fn hand_checked_correlations_and_greedy_order() {
        // x0 = t, x1 = -2t (|r| = 1 with x0), x2 = t^2 on t in {-1, 0, 1} (r = 0 with both), x3 constant.
        let mut m = build(small(2, 3, 5), 4);
        for t in [-1.0, 0.0, 1.0] {
            m.map(&[t, -2.0 * t, t * t, 5.0]);
        }
        let r = m.abs_correlations();
        let want = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        for (a, b) in r.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{r:?}");
        }
        // Strengths 2, 2, 1, 1: the group of 0 takes 1 (|r| = 1); then 2 (first of the tie) takes 3.
        assert_eq!(m.build_groups(), [vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn phases_and_warm_up() {
        // Kitsune's convention: 0.0 until training ends.
        let quiet = OnlineAutoencoderEnsembleParams { score_while_training: false, ..small(2, 100, 200) };
        let mut m = build(quiet, 7);
        for i in 0..300 {
            assert_eq!(m.score_one(&row(i)), 0.0, "row {i}");
            let want = if i < 100 { KitnetPhase::FeatureMap } else { KitnetPhase::Training };
            assert_eq!(m.phase(), want, "row {i}");
            m.learn_one(&row(i));
        }
        assert_eq!(m.phase(), KitnetPhase::Ready);
        assert!(m.score_one(&row(300)) > 0.0);
        // The default scores from the first training row on, with the ensemble as trained so far, and
        // trains the same weights (scoring changes nothing).
        let mut s = build(small(2, 100, 200), 7);
        for i in 0..300 {
            let score = s.score_one(&row(i));
            if i <= 100 {
                assert_eq!(score, 0.0, "row {i}");
            } else {
                assert!(score > 0.0 && score.is_finite(), "row {i}: {score}");
            }
            s.learn_one(&row(i));
        }
        assert_eq!(
            s.aes.iter().map(|ae| &ae.params).collect::<Vec<_>>(),
            m.aes.iter().map(|ae| &ae.params).collect::<Vec<_>>()
        );
        assert_eq!(s.score_one(&row(300)).to_bits(), m.score_one(&row(300)).to_bits());
        // Frozen after training unless adaptive.
        let before = m.aes[0].params.clone();
        m.learn_one(&row(301));
        assert_eq!(m.aes[0].params, before);
        let mut a = build(OnlineAutoencoderEnsembleParams { adaptive_after_warmup: true, ..small(2, 100, 200) }, 7);
        (0..301).for_each(|i| a.learn_one(&row(i)));
        let before = a.aes[0].params.clone();
        a.learn_one(&row(301));
        assert_ne!(a.aes[0].params, before);
        // ad_grace = 0: the row that ends the feature map trains once and scoring starts.
        let mut z = build(small(2, 10, 0), 7);
        (0..10).for_each(|i| z.learn_one(&row(i)));
        assert_eq!(z.phase(), KitnetPhase::Ready);
        assert!(z.aes.iter().all(|ae| ae.lo.len() == ae.n_in));
        // Non-finite rows are not counted.
        let mut m = build(small(2, 3, 1), 7);
        for _ in 0..10 {
            m.learn_one(&[f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
            m.learn_one(&[f64::INFINITY, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        }
        assert_eq!((m.mapped, m.phase()), (0, KitnetPhase::FeatureMap));
    }

    #[test]
    fn one_step_by_hand() {
        // One feature: one autoencoder 1 -> 1 -> 1 and the output one 1 -> 1 -> 1, [w1, b1, w2, b2] each.
        let mut m = build(OnlineAutoencoderEnsembleParams { learning_rate: 0.5, ..small(1, 1, 2) }, 1);
        m.learn_one(&[1.0]); // the feature map
        let init = SmallAutoencoder::new(1, 1, 3, 0).params;
        let out_init = SmallAutoencoder::new(1, 1, 3, 1).params;
        assert_eq!(m.aes[0].params, init);
        // The first training row sets the range to [2, 2]: its input is 0, the output b2 = 0, no gradient.
        m.learn_one(&[2.0]);
        assert_eq!((m.aes[0].params.clone(), m.aes[1].params.clone()), (init.clone(), out_init.clone()));
        assert_eq!(m.aes[1].lo, [0.0]);
        // The second widens it to [2, 4]: input z = 2 / (2 + 1e-16), one SGD step on (y - z)^2 / 2.
        m.learn_one(&[4.0]);
        assert_eq!(m.phase(), KitnetPhase::Ready);
        let z = 2.0 / (2.0 + 1e-16);
        let (w1, b1, w2, b2) = (init[0], init[1], init[2], init[3]);
        let h = (w1 * z + b1).tanh();
        let e = (w2 * h + b2) - z; // the gradient at the output, (y - z) / n with n = 1
        let dh = w2 * e * (1.0 - h * h);
        let want = [w1 - 0.5 * dh * z, b1 - 0.5 * dh, w2 - 0.5 * e * h, b2 - 0.5 * e];
        for (a, b) in m.aes[0].params.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{:?} vs {want:?}", m.aes[0].params);
        }
        // The output autoencoder's range is [0, |e|] (the RMSEs before each step).
        assert_eq!((m.aes[1].lo[0], m.aes[1].hi[0]), (0.0, e.abs()));
        // Scoring reproduces the forward passes, without widening any range.
        let s = m.score_one(&[4.0]);
        let p = &m.aes[0].params;
        let e = (p[2] * (p[0] * z + p[1]).tanh() + p[3] - z).abs();
        let q = &m.aes[1].params;
        let zo = e / (m.aes[1].hi[0] + 1e-16);
        let want = (q[2] * (q[0] * zo + q[1]).tanh() + q[3] - zo).abs();
        assert!((s - want).abs() < 1e-12, "{s} vs {want}");
        assert_eq!(m.aes[0].hi, [4.0]);
        assert!(m.score_one(&[10.0]) > s);
    }

    #[test]
    fn broken_correlations_score_above_normal_rows_on_raw_data() {
        let mut m = build(small(2, 1_000, 5_000), 7);
        (0..6_000).for_each(|i| m.learn_one(&row(i)));
        assert_eq!(m.dropped_steps(), 0);
        let normal: f64 = (6_000..6_100).map(|i| m.score_one(&row(i))).sum::<f64>() / 100.0;
        // A row where the first signal is near its peak, with x2 no longer following x0.
        let at = (6_000..6_100).find(|&i| (i as f64 * 0.31).sin().abs() > 0.95).unwrap();
        let mut broken = row(at);
        broken[2] = 6.0 - broken[2];
        let s = m.score_one(&broken);
        assert!(s > 3.0 * normal, "{s} vs {normal}");
        let mut far = row(6_000);
        far[3] = 1e6;
        assert!(m.score_one(&far) > s);
        // Missing values are left out; infinities are the largest score.
        let mut missing = row(6_000);
        missing[0] = f64::NAN;
        assert!(m.score_one(&missing).is_finite());
        missing[3] = f64::INFINITY;
        assert_eq!(m.score_one(&missing), f64::MAX);
    }

    #[test]
    fn a_diverging_step_moves_no_weight() {
        let mut m = build(OnlineAutoencoderEnsembleParams { learning_rate: 1e300, ..small(2, 5, 100) }, 7);
        (0..5).for_each(|i| m.learn_one(&row(i)));
        for i in 5..20 {
            m.learn_one(&row(i));
        }
        assert!(m.dropped_steps() > 0);
        assert!(m.aes.iter().all(|ae| ae.params.iter().all(|v| v.is_finite())));
    }
}
