//! SDOstream: a small, fading set of observers sampled from the stream; a row scores the median distance
//! to its nearest active observers (aberrant's `SDOStream`).

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::rng::{unit, unit_rng};

/// The distance [`SDOStream`] measures between a row and an observer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdoDistance {
    /// `sqrt(sum (x_j - o_j)^2)` (the default).
    #[default]
    Euclidean,
    /// `sum |x_j - o_j|`.
    Manhattan,
    /// `max |x_j - o_j|`.
    Chebyshev,
    /// `(sum |x_j - o_j|^p)^(1/p)` with `p = minkowski_p`.
    Minkowski,
}

/// Hyperparameters of [`SDOStream`] (aberrant 1.3.0 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(non_snake_case)] // `T`: aberrant's (and the paper's) name
pub struct SDOStreamParams {
    /// Most observers kept, `1..=2^20`.
    pub k: usize,
    /// Fading time scale: activities fade by `exp(-1/T)` per unit of time (a row, without `time_key`),
    /// and observers are sampled at about `k` per `T`; finite, `> 0`.
    pub T: f64,
    /// Activity quantile below which observers are left out of scoring, in `[0, 1)`.
    pub qv: f64,
    /// Nearest observers whose distances enter the median (and that a learned row touches), `1..=k`.
    pub x_neighbors: usize,
    /// `euclidean` (default), `manhattan`, `chebyshev` or `minkowski`.
    pub distance: SdoDistance,
    /// The order `p` of the Minkowski distance (used only by `distance = "minkowski"`), finite, `> 0`.
    pub minkowski_p: f64,
    /// Column holding a non-decreasing event time, left out of the features. `None`: the time of a learned
    /// row is its 1-based number.
    pub time_key: Option<String>,
    /// Observers needed before scoring (scores are 0.0 before), `1..=k`; raised to at least 2 and capped
    /// at `k`. `None`: `min(k, max(2, x_neighbors))`.
    pub warm_up_observers: Option<usize>,
    /// Seed of the observer sampling; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for SDOStreamParams {
    fn default() -> Self {
        SDOStreamParams {
            k: 256,
            T: 512.0,
            qv: 0.3,
            x_neighbors: 6,
            distance: SdoDistance::Euclidean,
            minkowski_p: 2.0,
            time_key: None,
            warm_up_observers: None,
            seed: None,
        }
    }
}

/// SDOstream (Hartl, Iglesias Vázquez & Zseby 2020, "SDOstream: Low-Density Models for Streaming
/// Outlier Detection", ESANN), as aberrant 1.3.0's `SDOStream`: the stream is summarised by at most `k`
/// observers, rows sampled from it, each with an activity that counts the rows it was among the nearest
/// to and fades with time. A row far from every well-used observer is an outlier.
///
/// # Algorithm
/// Write `f = exp(-1/T)` and `t` for the time of a row (its 1-based number, or the `time_key` column).
/// - Learning a row `x`: the first row becomes an observer of activity 1. Afterwards the `x_neighbors`
///   observers nearest to `x` each have their activity faded to `t` and increased by 1. Then `x` becomes an
///   observer when `u * A * max(1, i - i_last) < (k^2 / (x_neighbors T)) * A_nn * max(1, t - t_last)`,
///   `u` uniform in [0, 1), `A` the summed activity of all observers at `t`, `A_nn` that of the touched
///   ones, `i` the row's 0-based learn count and `i_last`, `t_last` those of the last observer added (with
///   arrival times the two `max` factors are equal and cancel: rows near busy observers are sampled more).
///   While fewer than `k` observers exist it is added, else it replaces the observer with the smallest
///   activity per unit of age, `activity / max(1, t - t_added)` (the first such one); a new observer has
///   activity 1.
/// - Scoring a row: 0.0 while there are fewer than `warm_up_observers` observers. Otherwise the active
///   observers are the `max(x_neighbors, floor((1 - qv) n))` most active of the `n` (all when that is at
///   least `n`), and the score is the median of the distances from the row to the `x_neighbors` nearest
///   active ones (the mean of the two middle ones for an even count).
///
/// Activities are kept lazily: each observer stores its activity divided by `f^(t - t0)` for a reference
/// time `t0`, so fading all of them is implicit, a touch adds `f^-(t - t0)`, and `t0` moves (the stored
/// values are multiplied through) when `f^-(t - t0)` would pass `e^200`. Every decision compares
/// activities of the same instant, or a ratio of sums, in which the common factor cancels: the model takes
/// the decisions aberrant's eager fading takes, with values equal up to rounding (a unit test replays
/// aberrant's eager algorithm). Ties between equal distances or activities are broken by observer index.
///
/// Distances are in the units of the input: raw, unscaled data works (aberrant feeds raw values too), but
/// a feature with a wide range dominates the distance, so a scaler in front helps when the units differ.
///
/// # Deviations from aberrant
/// - Missing and infinite values: a row with a NaN or infinite feature is not learned (and its time does
///   not count); aberrant refuses it. A missing feature of a scored row is left out of every distance and
///   the sum over the `m` features present is scaled by `d / m` before the root (as scikit-learn's
///   `nan_euclidean_distances`; the Chebyshev maximum is not scaled); a row with no feature present scores
///   0.0; an infinite feature makes every distance infinite, scored as the largest finite number. A time
///   that is missing, not finite or earlier than the last learned one counts as the last one (aberrant
///   refuses it).
/// - Ties are broken by observer index (numpy's `argpartition` leaves them to its introselect), and the
///   sampling draws come from onad's seeded PCG64, so the observers differ from aberrant's for a seed;
///   `seed = None` means seed 0.
///
/// # Cost
/// Learning: O(n d) for the distances to the `n <= k` observers (stored by feature, so the loops run over
/// observers and vectorize), O(n) to keep the nearest and to sum the activities, O(n) more when an
/// observer is replaced. Scoring: O(n d) for the distances, O(n) on average to find the activity
/// threshold of the active observers (a selection on the activities' bits), O(n) to keep the nearest active ones. Memory: `k (d + 2)` numbers, fixed by `k`.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::SDOStreamParams;
/// let schema = Schema::shared(["latency_ms", "bytes"]).unwrap();
/// let mut model = SDOStreamParams { seed: Some(7), ..Default::default() }.build(&schema).unwrap();
/// assert_eq!(model.score_one(&[20.0, 1_000.0]), 0.0); // no observers yet
/// for i in 0..3_000 {
///     model.learn_one(&[20.0 + (i % 13) as f64, 1_000.0 + (i % 29) as f64 * 10.0]);
/// }
/// let normal = model.score_one(&[26.0, 1_150.0]);
/// let spike = model.score_one(&[400.0, 9_000.0]);
/// assert!(spike > 10.0 * normal, "{spike} vs {normal}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SDOStream {
    k: usize,
    x_neighbors: usize,
    qv: f64,
    distance: SdoDistance,
    minkowski_p: f64,
    /// Observers needed before scoring (resolved).
    warm_up: usize,
    /// `1 / T`.
    inv_t: f64,
    /// `k^2 / (x_neighbors T)`.
    prefactor: f64,
    /// Input position of the time column.
    time: Option<usize>,
    /// The features, the observers and the generator (boxed: the model enum stays small).
    s: Box<Store>,
    /// Reference time of `weight`.
    t0: f64,
    /// Rows learned; the learn count and time of the last observer added; the last learned time.
    learned: u64,
    last_added_index: u64,
    last_added_time: f64,
    last_time: f64,
}

/// What [`SDOStream`] keeps per observer, and its generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Store {
    /// Input positions of the features (every column but the time column).
    features: Vec<usize>,
    /// Observers by feature: `columns[j][i]` is feature `j` of observer `i`.
    columns: Vec<Vec<f64>>,
    /// Activity of each observer divided by `f^(t - t0)`.
    weight: Vec<f64>,
    /// Time each observer was added.
    added: Vec<f64>,
    rng: Pcg64,
}

/// When `(t - t0) / T` passes this, the stored activities are brought to `t0 = t` (`e^200` is far from
/// overflow, even summed over `2^20` observers and many touches).
const RENORMALISE_ABOVE: f64 = 200.0;

/// Most observers accepted.
const MAX_K: usize = 1 << 20;

impl DetectorParams for SDOStreamParams {
    type Model = SDOStream;

    fn build(&self, schema: &SchemaRef) -> Result<SDOStream, ParamError> {
        if !(1..=MAX_K).contains(&self.k) {
            return Err(ParamError::invalid("k", format!("must be between 1 and 2^20, got {}", self.k)));
        }
        if !(self.T.is_finite() && self.T > 0.0) {
            return Err(ParamError::invalid("T", format!("must be a finite number > 0, got {}", self.T)));
        }
        if !(0.0..1.0).contains(&self.qv) {
            return Err(ParamError::invalid("qv", format!("must be in [0, 1), got {}", self.qv)));
        }
        if !(1..=self.k).contains(&self.x_neighbors) {
            return Err(ParamError::invalid(
                "x_neighbors",
                format!("must be between 1 and k ({}), got {}", self.k, self.x_neighbors),
            ));
        }
        if self.distance == SdoDistance::Minkowski && !(self.minkowski_p.is_finite() && self.minkowski_p > 0.0) {
            return Err(ParamError::invalid(
                "minkowski_p",
                format!("must be a finite number > 0 with distance = \"minkowski\", got {}", self.minkowski_p),
            ));
        }
        let warm_up = match self.warm_up_observers {
            None => self.x_neighbors.max(2).min(self.k),
            Some(w) if (1..=self.k).contains(&w) => w.max(2).min(self.k),
            Some(w) => {
                return Err(ParamError::invalid(
                    "warm_up_observers",
                    format!("must be between 1 and k ({}), got {w}", self.k),
                ));
            }
        };
        let time = match self.time_key.as_deref() {
            None => None,
            Some(name) => Some(schema.index_of(name).ok_or_else(|| ParamError::UnknownFeature {
                param: "time_key",
                feature: name.to_owned(),
                available: schema.names().join(", "),
            })?),
        };
        let features: Vec<usize> = (0..schema.len()).filter(|&i| Some(i) != time).collect();
        if features.is_empty() {
            return Err(ParamError::Schema("sdo_stream needs at least one feature besides the time_key".into()));
        }
        let reserve = self.k.min(1024);
        Ok(SDOStream {
            k: self.k,
            x_neighbors: self.x_neighbors,
            qv: self.qv,
            distance: self.distance,
            minkowski_p: self.minkowski_p,
            warm_up,
            inv_t: 1.0 / self.T,
            prefactor: (self.k as f64 * self.k as f64) / (self.x_neighbors as f64 * self.T),
            time,
            s: Box::new(Store {
                columns: (0..features.len()).map(|_| Vec::with_capacity(reserve)).collect(),
                weight: Vec::with_capacity(reserve),
                added: Vec::with_capacity(reserve),
                features,
                rng: unit_rng(self.seed.unwrap_or(0), 0),
            }),
            t0: 0.0,
            learned: 0,
            last_added_index: 0,
            last_added_time: 0.0,
            last_time: f64::NEG_INFINITY,
        })
    }
}

/// What [`SDOStream::learn`] finds already computed in the scratch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ready {
    Nothing,
    Distances,
    DistancesAndNearest,
}

/// Per-thread buffers of learning and scoring, so neither allocates once warm.
#[derive(Default)]
struct Scratch {
    /// The row's features.
    row: Vec<f64>,
    /// Pre-root distances to every observer.
    dist: Vec<f64>,
    /// The observers' stored activities as bits (non-negative doubles order as their bit patterns).
    keys: Vec<u64>,
    /// The nearest observers so far: `(pre-root distance, index)`, ascending.
    nearest: Vec<(f64, u32)>,
    /// The nearest active observers (scoring), likewise.
    nearest_active: Vec<(f64, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// The least `(activity, index)` pair of the active observers, the `active` largest of the `n` pairs,
/// as the activity's bits and the index. `keys` (scratch) gets the activities' bits: non-negative
/// doubles order as their bit patterns, so a selection on 64-bit integers finds the activity, and a pass
/// over the ties at it (one, unless activities are equal) finds the index.
fn active_threshold(weight: &[f64], active: usize, keys: &mut Vec<u64>) -> (u64, usize) {
    let n = weight.len();
    if active >= n {
        return (0, 0);
    }
    keys.clear();
    keys.extend(weight.iter().map(|w| w.to_bits()));
    let rank = n - active;
    let bits = *keys.select_nth_unstable(rank).1;
    // Ranks below the ties at `bits` belong to smaller activities; the ties follow in index order.
    let below = weight.iter().filter(|w| w.to_bits() < bits).count();
    let index = weight.iter().enumerate().filter(|(_, w)| w.to_bits() == bits).nth(rank - below).map_or(0, |(i, _)| i);
    (bits, index)
}

/// Whether observer `i`, of stored activity `w`, is at or above the threshold `(bits, index)`.
#[inline]
fn is_active(w: f64, i: usize, (bits, index): (u64, usize)) -> bool {
    let b = w.to_bits();
    b > bits || (b == bits && i >= index)
}

/// The sum of `values` in four interleaved partial sums (a dependency chain four times shorter than a
/// running sum).
#[inline]
fn sum4(values: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let chunks = values.chunks_exact(4);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + rest
}

/// The `x` smallest `(value, index)` pairs offered so far, ascending (ties to the earlier offer).
struct Nearest<'a> {
    held: &'a mut Vec<(f64, u32)>,
    x: usize,
    /// The x-th smallest value held (infinite until `x` are held).
    worst: f64,
}

impl<'a> Nearest<'a> {
    fn new(held: &'a mut Vec<(f64, u32)>, x: usize) -> Self {
        held.clear();
        Nearest { held, x, worst: f64::INFINITY }
    }

    /// Whether `v` would be kept (most values fail this one comparison).
    #[inline(always)]
    fn wants(&self, v: f64) -> bool {
        self.held.len() < self.x || v < self.worst
    }

    /// Keeps `(v, i)` (which it [`wants`](Self::wants)).
    #[inline]
    fn insert(&mut self, v: f64, i: usize) {
        let held = &mut *self.held;
        let at = held.partition_point(|&(w, _)| w <= v);
        if held.len() < self.x {
            held.push((v, i as u32));
        }
        // Shift the tail up by one (the last falls off when full); `x` is small, a loop beats a memmove call.
        for j in (at + 1..held.len()).rev() {
            held[j] = held[j - 1];
        }
        held[at] = (v, i as u32);
        if held.len() == self.x {
            self.worst = held[self.x - 1].0;
        }
    }
}

/// Keeps in `nearest` the `x` smallest `(value, index)` pairs of `values` in that order (ties to the lower
/// index), skipping the indices `keep` refuses. One pass; each new value is compared with the current
/// `x`-th first, so most cost one comparison.
#[inline]
fn nearest_into(values: &[f64], x: usize, keep: impl Fn(usize) -> bool, nearest: &mut Vec<(f64, u32)>) {
    let mut near = Nearest::new(nearest, x);
    for (i, &v) in values.iter().enumerate() {
        if near.wants(v) && keep(i) {
            near.insert(v, i);
        }
    }
}

/// [`nearest_into`] twice in one pass: into `kept` among the indices `keep` accepts, into `all` among all.
/// `kept` is a subset, so its `x`-th value is never below `all`'s: a value neither wants costs one
/// comparison.
#[inline]
fn nearest_both(
    values: &[f64],
    x: usize,
    keep: impl Fn(usize) -> bool,
    kept: &mut Vec<(f64, u32)>,
    all: &mut Vec<(f64, u32)>,
) {
    let (mut kept, mut all) = (Nearest::new(kept, x), Nearest::new(all, x));
    for (i, &v) in values.iter().enumerate() {
        if !kept.wants(v) {
            continue;
        }
        if all.wants(v) {
            all.insert(v, i);
        }
        if keep(i) {
            kept.insert(v, i);
        }
    }
}

impl SDOStream {
    /// Observers held now.
    pub fn n_observers(&self) -> usize {
        self.s.weight.len()
    }

    /// The observers, row-major (tests).
    #[cfg(test)]
    fn rows(&self) -> Vec<f64> {
        (0..self.n_observers()).flat_map(|i| self.s.columns.iter().map(move |c| c[i])).collect()
    }

    /// The distances before their root (`sum |diff|^p`, or the maximum for Chebyshev) from `x` (features
    /// only) to every observer, into `acc`, feature by feature (each observer's sum in feature order; the
    /// inner loops run over observers and vectorize). Features of `x` that are NaN are left out and the
    /// sums scaled by `d / present` when `present < d`.
    fn pre_roots(&self, x: &[f64], present: usize, acc: &mut Vec<f64>) {
        let n = self.n_observers();
        acc.clear();
        acc.resize(n, 0.0);
        let cols = self.s.columns.iter().zip(x).filter(|(_, q)| !q.is_nan());
        match self.distance {
            SdoDistance::Euclidean => cols.for_each(|(c, &q)| {
                acc.iter_mut().zip(&c[..n]).for_each(|(a, &o)| *a += (o - q) * (o - q));
            }),
            SdoDistance::Manhattan => cols.for_each(|(c, &q)| {
                acc.iter_mut().zip(&c[..n]).for_each(|(a, &o)| *a += (o - q).abs());
            }),
            SdoDistance::Chebyshev => cols.for_each(|(c, &q)| {
                acc.iter_mut().zip(&c[..n]).for_each(|(a, &o)| *a = a.max((o - q).abs()));
            }),
            SdoDistance::Minkowski => cols.for_each(|(c, &q)| {
                let p = self.minkowski_p;
                acc.iter_mut().zip(&c[..n]).for_each(|(a, &o)| *a += (o - q).abs().powf(p));
            }),
        }
        let d = x.len();
        if present < d && self.distance != SdoDistance::Chebyshev {
            let scale = d as f64 / present as f64;
            acc.iter_mut().for_each(|a| *a *= scale);
        }
        // Infinite query values can make a difference of infinities NaN: that distance is infinite.
        acc.iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = f64::INFINITY);
    }

    /// The distance from its pre-root value.
    #[inline]
    fn root(&self, v: f64) -> f64 {
        match self.distance {
            SdoDistance::Euclidean => v.sqrt(),
            SdoDistance::Manhattan | SdoDistance::Chebyshev => v,
            SdoDistance::Minkowski => v.powf(1.0 / self.minkowski_p),
        }
    }

    /// The time learning would give row `x`.
    fn time_of(&self, x: &[f64]) -> f64 {
        match self.time {
            None => self.learned as f64 + 1.0,
            Some(i) => {
                let v = x[i];
                if v.is_finite() && v >= self.last_time {
                    v
                } else if self.last_time.is_finite() {
                    self.last_time
                } else {
                    0.0
                }
            }
        }
    }

    fn add_observer(&mut self, x: &[f64], weight: f64, t: f64) {
        let s = &mut *self.s;
        if s.weight.len() < self.k {
            s.columns.iter_mut().zip(x).for_each(|(c, &v)| c.push(v));
            s.weight.push(weight);
            s.added.push(t);
        } else {
            // The smallest activity per unit of age (the common fading factor cancels), the first one.
            let mut best = 0;
            let mut best_value = f64::INFINITY;
            for (i, (&w, &a)) in s.weight.iter().zip(&s.added).enumerate() {
                let v = w / (t - a).max(1.0);
                if v < best_value {
                    best_value = v;
                    best = i;
                }
            }
            s.columns.iter_mut().zip(x).for_each(|(c, &v)| c[best] = v);
            s.weight[best] = weight;
            s.added[best] = t;
        }
    }

    /// Learns the features `row` at time `t`; `s.dist` already holds its distances when `ready` says so, and
    /// `s.nearest` its nearest observers too.
    fn learn(&mut self, row: &[f64], t: f64, s: &mut Scratch, ready: Ready) {
        let n = self.n_observers();
        if n == 0 {
            self.t0 = t;
            self.add_observer(row, 1.0, t);
            self.last_added_index = self.learned;
            self.last_added_time = t;
            return;
        }
        let mut age = (t - self.t0) * self.inv_t;
        if age > RENORMALISE_ABOVE {
            let factor = (-age).exp();
            self.s.weight.iter_mut().for_each(|w| *w *= factor);
            self.t0 = t;
            age = 0.0;
        }
        let touch = age.exp();
        if ready == Ready::Nothing {
            self.pre_roots(row, row.len(), &mut s.dist);
        }
        if ready != Ready::DistancesAndNearest {
            nearest_into(&s.dist, self.x_neighbors.min(n), |_| true, &mut s.nearest);
        }
        let mut nn_sum = 0.0;
        for &(_, i) in &s.nearest {
            let w = &mut self.s.weight[i as usize];
            *w += touch;
            nn_sum += *w;
        }
        let total = sum4(&self.s.weight);
        let u = unit(&mut self.s.rng);
        let rows_since = (self.learned - self.last_added_index).max(1) as f64;
        let time_since = (t - self.last_added_time).max(1.0);
        if u * total * rows_since < self.prefactor * nn_sum * time_since {
            self.add_observer(row, touch, t);
            self.last_added_index = self.learned;
            self.last_added_time = t;
        }
    }

    fn score(&self, x: &[f64], s: &mut Scratch) -> f64 {
        s.row.clear();
        s.row.extend(self.s.features.iter().map(|&i| x[i]));
        let present = s.row.iter().filter(|v| !v.is_nan()).count();
        if present == 0 {
            return 0.0;
        }
        let row = std::mem::take(&mut s.row);
        self.pre_roots(&row, present, &mut s.dist);
        s.row = row;
        self.score_dist(s, false)
    }

    /// The score from the distances in `s.dist` (at least `warm_up` observers, so at least
    /// `x_neighbors`). With `for_learning`, `s.nearest` also gets the nearest observers (active or not)
    /// in the same pass, as learning the row needs them.
    fn score_dist(&self, s: &mut Scratch, for_learning: bool) -> f64 {
        let n = self.n_observers();
        let x = self.x_neighbors;
        let active = x.max(((1.0 - self.qv) * n as f64) as usize).min(n);
        // The active observers: the last `active` in order of (activity, index).
        let weight = &self.s.weight;
        let threshold = active_threshold(weight, active, &mut s.keys);
        let keep = |i| is_active(weight[i], i, threshold);
        if for_learning {
            nearest_both(&s.dist, x.min(n), keep, &mut s.nearest_active, &mut s.nearest);
        } else {
            nearest_into(&s.dist, x.min(n), keep, &mut s.nearest_active);
        }
        if active < x {
            return 0.0;
        }
        let (x_n, nearest) = (x, &s.nearest_active);
        let median = if x_n % 2 == 1 {
            self.root(nearest[x_n / 2].0)
        } else {
            (self.root(nearest[x_n / 2 - 1].0) + self.root(nearest[x_n / 2].0)) / 2.0
        };
        finite_score(median.max(0.0))
    }
}

impl Detector for SDOStream {
    fn learn_one(&mut self, x: &[f64]) {
        if self.s.features.iter().any(|&i| !x[i].is_finite()) {
            return;
        }
        let t = self.time_of(x);
        with_scratch(|s| {
            let mut row = std::mem::take(&mut s.row);
            row.clear();
            row.extend(self.s.features.iter().map(|&i| x[i]));
            self.learn(&row, t, s, Ready::Nothing);
            s.row = row;
        });
        self.learned += 1;
        self.last_time = t;
    }

    /// One distance pass for both: a learnable row's distances to the observers are the same for its
    /// score and for its learning step.
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        if self.s.features.iter().any(|&i| !x[i].is_finite()) {
            return self.score_one(x);
        }
        let t = self.time_of(x);
        let score = with_scratch(|s| {
            let mut row = std::mem::take(&mut s.row);
            row.clear();
            row.extend(self.s.features.iter().map(|&i| x[i]));
            let n = self.n_observers();
            if n > 0 {
                self.pre_roots(&row, row.len(), &mut s.dist);
            }
            let (score, ready) = if n >= self.warm_up {
                (self.score_dist(s, true), Ready::DistancesAndNearest)
            } else {
                (0.0, if n > 0 { Ready::Distances } else { Ready::Nothing })
            };
            self.learn(&row, t, s, ready);
            s.row = row;
            score
        });
        self.learned += 1;
        self.last_time = t;
        score
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.s.weight.len() < self.warm_up {
            return 0.0;
        }
        with_scratch(|s| self.score(x, s))
    }
}

impl Describe for SDOStreamParams {
    const REFERENCE: &'static str =
        "Hartl, Iglesias Vázquez & Zseby 2020, SDOstream: Low-Density Models for Streaming Outlier Detection (ESANN)";
    const SUMMARY: &'static str =
        "median distance to the nearest active observers of a small, fading, sampled observer set (SDOstream)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "k", ty: "int 1..=2^20", required: false, help: "most observers kept (default 256)" },
        ParamDoc {
            name: "T",
            ty: "float > 0",
            required: false,
            help: "fading time scale and observer sampling scale, in rows or time units (default 512)",
        },
        ParamDoc {
            name: "qv",
            ty: "float in [0, 1)",
            required: false,
            help: "activity quantile below which observers are left out of scoring (default 0.3)",
        },
        ParamDoc {
            name: "x_neighbors",
            ty: "int 1..=k",
            required: false,
            help: "nearest active observers in the median score (default 6)",
        },
        ParamDoc {
            name: "distance",
            ty: "euclidean | manhattan | chebyshev | minkowski",
            required: false,
            help: "distance between a row and an observer (default euclidean)",
        },
        ParamDoc {
            name: "minkowski_p",
            ty: "float > 0",
            required: false,
            help: "order of the minkowski distance (default 2)",
        },
        ParamDoc {
            name: "time_key",
            ty: "column name",
            required: false,
            help: "column of non-decreasing event times (default: the row number)",
        },
        ParamDoc {
            name: "warm_up_observers",
            ty: "int 1..=k",
            required: false,
            help: "observers before scoring starts (default min(k, max(2, x_neighbors)))",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the observer sampling (default 0)" },
    ];
    fn example() -> Self {
        SDOStreamParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(p: SDOStreamParams, d: usize) -> SDOStream {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    /// A deterministic cloud in [-1, 1]^2 (a low-discrepancy sequence, cubed: dense at the centre).
    fn cloud(i: usize) -> [f64; 2] {
        let a = (i as f64 * 0.618_033_988_749_895).fract() * 2.0 - 1.0;
        let b = (i as f64 * 0.754_877_666_246_693).fract() * 2.0 - 1.0;
        [a * a * a, b * b * b]
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        let err = |p: SDOStreamParams| p.build(&schema).unwrap_err().to_string();
        let d = SDOStreamParams::default;
        for (p, name) in [
            (SDOStreamParams { k: 0, ..d() }, "'k'"),
            (SDOStreamParams { k: MAX_K + 1, ..d() }, "'k'"),
            (SDOStreamParams { T: 0.0, ..d() }, "'T'"),
            (SDOStreamParams { T: f64::INFINITY, ..d() }, "'T'"),
            (SDOStreamParams { T: f64::NAN, ..d() }, "'T'"),
            (SDOStreamParams { qv: 1.0, ..d() }, "'qv'"),
            (SDOStreamParams { qv: -0.1, ..d() }, "'qv'"),
            (SDOStreamParams { qv: f64::NAN, ..d() }, "'qv'"),
            (SDOStreamParams { x_neighbors: 0, ..d() }, "'x_neighbors'"),
            (SDOStreamParams { k: 5, x_neighbors: 6, ..d() }, "'x_neighbors'"),
            (SDOStreamParams { distance: SdoDistance::Minkowski, minkowski_p: 0.0, ..d() }, "'minkowski_p'"),
            (SDOStreamParams { warm_up_observers: Some(0), ..d() }, "'warm_up_observers'"),
            (SDOStreamParams { warm_up_observers: Some(257), ..d() }, "'warm_up_observers'"),
            (SDOStreamParams { time_key: Some("nope".into()), ..d() }, "'time_key'"),
        ] {
            let e = err(p);
            assert!(e.contains(name), "{e}");
        }
        // minkowski_p is read only by the minkowski distance.
        assert!(SDOStreamParams { minkowski_p: -1.0, ..d() }.build(&schema).is_ok());
        let only_time = Schema::shared(["t"]).unwrap();
        assert!(SDOStreamParams { time_key: Some("t".into()), ..d() }.build(&only_time).is_err());
        // The warm-up resolution of aberrant.
        assert_eq!(build(d(), 2).warm_up, 6);
        assert_eq!(build(SDOStreamParams { x_neighbors: 1, ..d() }, 2).warm_up, 2);
        assert_eq!(build(SDOStreamParams { warm_up_observers: Some(1), ..d() }, 2).warm_up, 2);
        assert_eq!(build(SDOStreamParams { k: 1, x_neighbors: 1, ..d() }, 2).warm_up, 1);
        assert_eq!(build(SDOStreamParams { warm_up_observers: Some(40), ..d() }, 2).warm_up, 40);
    }

    #[test]
    fn hand_checked_median_over_four_observers() {
        // k = x_neighbors = 4 and k^2 / (x T) = 4 >= 1: while every observer is a neighbour the sampling
        // test always passes, so the first four rows are the observers, all active.
        let corners = [[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0]];
        for (distance, want) in [
            // Distances from (6, 8): 10, sqrt(73), sqrt(52), 5 -> median of the middle two.
            (SdoDistance::Euclidean, (52f64.sqrt() + 73f64.sqrt()) / 2.0),
            // 14, 11, 10, 7.
            (SdoDistance::Manhattan, (10.0 + 11.0) / 2.0),
            // 8, 8, 6, 4.
            (SdoDistance::Chebyshev, (6.0 + 8.0) / 2.0),
        ] {
            let p = SDOStreamParams { k: 4, x_neighbors: 4, T: 1.0, distance, seed: Some(3), ..Default::default() };
            let mut m = build(p, 2);
            for (i, c) in corners.iter().enumerate() {
                assert_eq!(m.score_one(&[6.0, 8.0]), 0.0, "warming up");
                m.learn_one(c);
                assert_eq!(m.n_observers(), i + 1);
            }
            assert_eq!(m.rows(), corners.concat());
            assert_eq!(m.score_one(&[6.0, 8.0]), want, "{distance:?}");
        }
        // An odd count is the middle distance: the 3 nearest of (6, 8) are at 5, sqrt(52), sqrt(73).
        let p = SDOStreamParams { k: 4, x_neighbors: 3, T: 1.0, seed: Some(3), ..Default::default() };
        let mut m = build(p, 2);
        // All four rows are added (each one's three neighbours are all the observers); the active ones are
        // the three most active of the four, so the median is one of the four distances.
        corners.iter().for_each(|c| m.learn_one(c));
        let s = m.score_one(&[6.0, 8.0]);
        assert!([5.0, 52f64.sqrt(), 73f64.sqrt(), 10.0].contains(&s), "{s}");
        // Minkowski with p = 1 is Manhattan.
        let mk = |distance, minkowski_p| {
            let p = SDOStreamParams { k: 4, x_neighbors: 4, T: 1.0, distance, minkowski_p, ..Default::default() };
            let mut m = build(p, 2);
            corners.iter().for_each(|c| m.learn_one(c));
            m.score_one(&[6.0, 8.0])
        };
        assert_eq!(mk(SdoDistance::Minkowski, 1.0), 10.5);
        assert!((mk(SdoDistance::Minkowski, 2.0) - mk(SdoDistance::Euclidean, 2.0)).abs() < 1e-12);
    }

    /// aberrant's algorithm written out with eager fading (`np.power(fading, dt)` per observer per use),
    /// drawing the same uniforms and breaking ties the same way.
    struct Eager {
        k: usize,
        x: usize,
        qv: f64,
        fading: f64,
        prefactor: f64,
        obs: Vec<Vec<f64>>,
        activity: Vec<f64>,
        touched: Vec<f64>,
        added: Vec<f64>,
        index: u64,
        last_index: u64,
        last_time: f64,
        rng: Pcg64,
    }

    impl Eager {
        fn new(k: usize, x: usize, t_scale: f64, qv: f64, seed: u64) -> Eager {
            Eager {
                k,
                x,
                qv,
                fading: (-1.0 / t_scale).exp(),
                prefactor: (k * k) as f64 / (x as f64 * t_scale),
                obs: Vec::new(),
                activity: Vec::new(),
                touched: Vec::new(),
                added: Vec::new(),
                index: 0,
                last_index: 0,
                last_time: 0.0,
                rng: unit_rng(seed, 0),
            }
        }

        fn dist(a: &[f64], b: &[f64]) -> f64 {
            a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt()
        }

        fn decayed(&self, t: f64) -> Vec<f64> {
            self.activity.iter().zip(&self.touched).map(|(a, s)| a * self.fading.powf(t - s)).collect()
        }

        fn learn(&mut self, v: &[f64]) {
            let t = self.index as f64 + 1.0;
            if self.obs.is_empty() {
                self.obs.push(v.to_vec());
                self.activity.push(1.0);
                self.touched.push(t);
                self.added.push(t);
                self.last_index = self.index;
                self.last_time = t;
                self.index += 1;
                return;
            }
            let n = self.obs.len();
            let dists: Vec<f64> = self.obs.iter().map(|o| Self::dist(o, v)).collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| dists[a].total_cmp(&dists[b]).then(a.cmp(&b)));
            let nn = &order[..self.x.min(n)];
            for &i in nn {
                self.activity[i] = self.activity[i] * self.fading.powf(t - self.touched[i]) + 1.0;
                self.touched[i] = t;
            }
            let total: f64 = self.decayed(t).iter().sum();
            let nn_sum: f64 = nn.iter().map(|&i| self.activity[i]).sum();
            let u = unit(&mut self.rng);
            let lhs = u * total * ((self.index - self.last_index).max(1) as f64);
            let rhs = self.prefactor * nn_sum * (t - self.last_time).max(1.0);
            if lhs < rhs {
                let slot = if n < self.k {
                    self.obs.push(Vec::new());
                    self.activity.push(0.0);
                    self.touched.push(0.0);
                    self.added.push(0.0);
                    n
                } else {
                    let dec = self.decayed(t);
                    let mut best = 0;
                    for i in 0..n {
                        let v = dec[i] / (t - self.added[i]).max(1.0);
                        if v < dec[best] / (t - self.added[best]).max(1.0) {
                            best = i;
                        }
                    }
                    best
                };
                self.obs[slot] = v.to_vec();
                self.activity[slot] = 1.0;
                self.touched[slot] = t;
                self.added[slot] = t;
                self.last_index = self.index;
                self.last_time = t;
            }
            self.index += 1;
        }

        fn score(&self, v: &[f64], warm_up: usize) -> f64 {
            let n = self.obs.len();
            if n < warm_up {
                return 0.0;
            }
            let t = self.index as f64 + 1.0;
            let dec = self.decayed(t);
            let active = self.x.max(((1.0 - self.qv) * n as f64) as usize).min(n);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| dec[a].total_cmp(&dec[b]).then(a.cmp(&b)));
            let mut d: Vec<f64> = order[n - active..].iter().map(|&i| Self::dist(&self.obs[i], v)).collect();
            d.sort_by(f64::total_cmp);
            let x = self.x;
            if x % 2 == 1 { d[x / 2] } else { (d[x / 2 - 1] + d[x / 2]) / 2.0 }
        }
    }

    #[test]
    fn lazy_fading_takes_the_decisions_of_eager_fading() {
        // Small k so that replacements, the active quantile and the sampling test all matter; T short
        // enough that the scale is renormalised (t / T passes 200 after 1,000 rows at T = 5).
        for (k, x, t_scale, qv) in [(16, 3, 5.0, 0.3), (12, 4, 40.0, 0.5), (9, 9, 512.0, 0.0)] {
            let p = SDOStreamParams { k, x_neighbors: x, T: t_scale, qv, seed: Some(11), ..Default::default() };
            let mut lazy = build(p, 2);
            let mut eager = Eager::new(k, x, t_scale, qv, 11);
            let mut replaced = 0;
            for i in 0..3_000 {
                // Drift: the cloud moves, so old observers lose activity and get replaced.
                let c = cloud(i);
                let row = [c[0] + (i / 500) as f64, c[1]];
                let before = lazy.rows();
                lazy.learn_one(&row);
                eager.learn(&row);
                if lazy.n_observers() == k && before != lazy.rows() {
                    replaced += 1;
                }
                assert_eq!(lazy.rows(), eager.obs.concat(), "row {i}, k {k}");
                if i % 7 == 0 {
                    let q = [c[1] * 2.0 + (i / 500) as f64, c[0] - 0.5];
                    let (a, b) = (lazy.score_one(&q), eager.score(&q, lazy.warm_up));
                    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "row {i}: {a} vs {b}");
                }
            }
            assert!(replaced > 20, "{replaced} replacements");
            if t_scale == 5.0 {
                assert!(lazy.t0 > 1.0, "the scale was renormalised");
            }
            // The stored weights are the activities at t0.
            let t = lazy.learned as f64 + 1.0;
            let dec = eager.decayed(t);
            let scale = (-(t - lazy.t0) / t_scale).exp();
            for (w, e) in lazy.s.weight.iter().zip(&dec) {
                assert!((w * scale - e).abs() <= 1e-9 * e.max(1e-300), "{w} {e}");
            }
        }
    }

    #[test]
    fn the_activity_threshold_is_the_least_active_pair_with_ties_by_index() {
        let mut keys = Vec::new();
        let cases: [&[f64]; 5] = [
            &[3.0, 1.0, 2.0, 5.0, 4.0],
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            &[2.0, 1.0, 2.0, 0.5, 2.0, 2.0, 3.0],
            &[0.0, 7.25, 0.0, 7.25, 1e-300, 7.25],
            &[9.0],
        ];
        for weight in cases {
            let n = weight.len();
            let mut pairs: Vec<(f64, usize)> = weight.iter().copied().zip(0..).collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for active in 1..=n + 1 {
                let t = active_threshold(weight, active, &mut keys);
                let want: Vec<bool> =
                    (0..n).map(|i| pairs[n.saturating_sub(active)..].iter().any(|p| p.1 == i)).collect();
                let got: Vec<bool> = (0..n).map(|i| is_active(weight[i], i, t)).collect();
                assert_eq!(got, want, "{weight:?}, {active} active");
            }
        }
    }

    #[test]
    fn four_lane_sums_are_sums() {
        for n in 0..13 {
            let v: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 + 1.0).collect();
            assert_eq!(sum4(&v), v.iter().sum::<f64>(), "{n}");
        }
    }

    #[test]
    fn score_learn_one_is_score_one_then_learn_one() {
        let p = SDOStreamParams { k: 32, x_neighbors: 5, T: 20.0, seed: Some(9), ..Default::default() };
        let (mut a, mut b) = (build(p.clone(), 2), build(p, 2));
        for i in 0..2_000 {
            let c = cloud(i);
            let row = if i % 97 == 0 { [f64::NAN, c[1]] } else { [c[0] + (i / 400) as f64, c[1]] };
            let s = a.score_one(&row);
            a.learn_one(&row);
            assert_eq!(b.score_learn_one(&row).to_bits(), s.to_bits(), "row {i}");
        }
        assert_eq!(a.rows(), b.rows());
        assert_eq!(a.s.weight, b.s.weight);
    }

    #[test]
    fn an_isolated_point_scores_above_the_inliers() {
        let mut m = build(SDOStreamParams { seed: Some(5), ..Default::default() }, 2);
        (0..5_000).for_each(|i| m.learn_one(&cloud(i)));
        assert!(m.n_observers() > 100 && m.n_observers() <= 256);
        let centre = m.score_one(&[0.0, 0.0]);
        let edge = m.score_one(&[0.9, 0.0]);
        let outlier = m.score_one(&[4.0, 4.0]);
        assert!(centre < edge && edge < outlier, "{centre} {edge} {outlier}");
        assert!(outlier > 4.0, "{outlier}");
    }

    #[test]
    fn inactive_observers_are_left_out_of_the_score() {
        // Four observers on a line, two busy (0 and 1) and two faded (10 and 11).
        let score = |qv: f64, q: f64| {
            let p = SDOStreamParams { k: 4, x_neighbors: 2, qv, ..Default::default() };
            let mut m = build(p, 1);
            m.s.columns = vec![vec![0.0, 1.0, 10.0, 11.0]];
            m.s.weight = vec![5.0, 5.0, 0.1, 0.2];
            m.s.added = vec![1.0; 4];
            m.score_one(&[q])
        };
        // qv = 0.5: the max(2, floor(0.5 * 4)) = 2 most active are left; from 10 they are at 10 and 9.
        assert_eq!(score(0.5, 10.0), 9.5);
        // qv = 0.3: floor(0.7 * 4) = 2 as well.
        assert_eq!(score(0.3, 10.0), 9.5);
        // qv = 0: all four, the two nearest at 0 and 1.
        assert_eq!(score(0.0, 10.0), 0.5);
        assert_eq!(score(0.5, 0.5), 0.5);
    }

    #[test]
    fn time_key_is_left_out_and_time_that_goes_back_is_the_last_time() {
        let p = SDOStreamParams { time_key: Some("t".into()), seed: Some(2), ..Default::default() };
        let schema = Schema::shared(["a", "t", "b"]).unwrap();
        let mut m = p.build(&schema).unwrap();
        for i in 0..100 {
            m.learn_one(&[cloud(i)[0], 1e9 + 10.0 * i as f64, cloud(i)[1]]);
        }
        assert_eq!(m.s.columns.len(), 2, "two features");
        assert!(m.rows().iter().all(|v| v.abs() <= 1.0));
        assert_eq!(m.last_time, 1e9 + 990.0);
        for bad in [f64::NAN, f64::INFINITY, 5.0] {
            m.learn_one(&[0.1, bad, 0.1]);
            assert_eq!(m.last_time, 1e9 + 990.0);
        }
        // A large jump renormalises at once instead of overflowing.
        m.learn_one(&[0.2, 1e15, 0.2]);
        assert_eq!(m.t0, 1e15);
        assert!(m.s.weight.iter().all(|w| w.is_finite()));
        // The time column does not enter the score.
        assert_eq!(m.score_one(&[0.0, 1.0, 0.0]), m.score_one(&[0.0, -7e20, 0.0]));
    }

    #[test]
    fn non_finite_rows_are_not_learned_and_missing_features_are_left_out() {
        let p = SDOStreamParams { k: 4, x_neighbors: 4, T: 1.0, ..Default::default() };
        let mut m = build(p, 2);
        for c in [[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0]] {
            m.learn_one(&[f64::NAN, 1.0]);
            m.learn_one(&[f64::INFINITY, 1.0]);
            m.learn_one(&c);
        }
        assert_eq!((m.learned, m.n_observers()), (4, 4));
        // Feature 1 missing: squared differences 36, 9, 36, 9, scaled by d / m = 2.
        let s = m.score_one(&[6.0, f64::NAN]);
        assert_eq!(s, (18f64.sqrt() + 72f64.sqrt()) / 2.0);
        assert_eq!(m.score_one(&[f64::NAN, f64::NAN]), 0.0);
        assert_eq!(m.score_one(&[f64::INFINITY, 0.0]), f64::MAX);
        assert_eq!(m.score_one(&[f64::NEG_INFINITY, f64::NAN]), f64::MAX);
    }
}
