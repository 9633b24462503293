//! RandomCutForest: robust random cut trees over per-tree time-decayed reservoir samples, scored by the
//! expected collusive displacement of a virtual insertion (Guha, Mishra, Roy & Schrijvers 2016).

use onad_core::{Batch, Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_core::RngCore;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::registry::Describe;
use crate::rng::{unit, unit_rng};

/// Hyperparameters of [`RandomCutForest`] (aberrant's `RandomCutForest` names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomCutForestParams {
    /// Number of random cut trees, `>= 1`.
    pub n_trees: usize,
    /// Points in each tree's reservoir sample, `>= 2`.
    pub sample_size: usize,
    /// Consecutive rows concatenated into one point (a shingle), `>= 1`.
    pub shingle_size: usize,
    /// Shingles learned before scores are non-zero, `>= 1`; `None` means `sample_size`.
    pub warmup_samples: Option<usize>,
    /// Map the raw score `s` to `1 - exp(-s / score_scale)`, in [0, 1).
    pub normalize_score: bool,
    /// Scale of the normalisation, finite and `> 0`.
    pub score_scale: f64,
    /// Seed of the trees' generators; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
    /// What a tree scores: the paper's collusive displacement (the default) or AWS's depth-based
    /// anomaly score.
    pub scoring: RcfScoring,
}

/// The score function of [`RandomCutForest`]; both are expectations over where a virtual insertion of the
/// row would cut it off, computed in the same descent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcfScoring {
    /// Collusive displacement (CoDisp), the paper's score and aberrant's (the default).
    #[default]
    Codisp,
    /// The anomaly score of AWS's `random-cut-forest-by-aws` (and of rcf3's `Forest.score`): cut off at
    /// a node of depth `k` scores `1 / (k + 1)`, and so does reaching a leaf holding another point; a row
    /// equal to a leaf's point scores `(1 - m / 2n) / (k + log2(m + 1))` (leaf count `m`, tree mass `n`);
    /// the tree's expectation is scaled by `log2(n + 1)`.
    Depth,
}

impl Default for RandomCutForestParams {
    fn default() -> Self {
        RandomCutForestParams {
            n_trees: 40,
            sample_size: 256,
            shingle_size: 1,
            warmup_samples: None,
            normalize_score: false,
            score_scale: 8.0,
            seed: None,
            scoring: RcfScoring::Codisp,
        }
    }
}

/// The time decay of the samplers is `1 / (TIME_DECAY_SAMPLES * sample_size)` (AWS's default).
const TIME_DECAY_SAMPLES: f64 = 10.0;
/// While a sample is below this fraction of `sample_size` every point is accepted (AWS's default).
const INITIAL_ACCEPT_FRACTION: f64 = 0.125;
/// Finite values are clamped into `[-VALUE_LIMIT, VALUE_LIMIT]`, so spans and their sums stay finite.
const VALUE_LIMIT: f64 = 1e150;
/// "No node" in parent and root links.
const NONE: u32 = u32::MAX;
/// Node references with this bit set are leaves (the rest is the leaf's index).
const LEAF: u32 = 1 << 31;

/// Robust random cut forest (Guha, Mishra, Roy & Schrijvers 2016, "Robust Random Cut Forest Based Anomaly
/// Detection on Streams", ICML), with Amazon's `random-cut-forest-by-aws` as the reference for the
/// sampling details. Each of `n_trees` trees keeps its own sample of the stream's shingles and a random
/// cut tree over it; a row's score is the mean over the trees of the collusive displacement (CoDisp) the
/// row would have if it were inserted.
///
/// # Algorithm
/// - **Shingles.** A point is the concatenation of the last `shingle_size` rows (dimension
///   `D = shingle_size * d`). Learning a row forms the shingle of the previous `shingle_size - 1` learned
///   rows and this one; scoring forms the same shingle from the buffer and the row, without storing it.
/// - **Samples.** Each tree samples shingles by a time-decayed weighted reservoir (AWS's default
///   sampler): shingle number `t` gets the weight `ln(-ln u) - lambda t` (u uniform in (0, 1)) and the
///   tree keeps the `sample_size` smallest weights, so a shingle's chance to stay decays like
///   `exp(-lambda * age)` (the A-ES reservoir of Efraimidis & Spirakis with weights `exp(lambda t)`).
///   `lambda = 1 / (10 sample_size)`, AWS's default. While a sample is not full, a shingle is accepted
///   outright with probability 1 below `0.125 sample_size` points, then with a probability falling
///   linearly to 0 at `sample_size` (AWS's `initialAcceptFraction = 0.125`), so that the trees' samples
///   differ from the start; otherwise it is accepted when its weight is below the largest kept weight,
///   which is evicted. Acceptance does not depend on the point.
/// - **Trees.** Insertion follows the paper: at a node with bounding box `B` not holding the point, a cut
///   is drawn on the box of `B` and the point, its dimension with probability proportional to the box's
///   span there and its value uniform along it (inside `B` no cut can separate the point, so nothing is
///   drawn, as in AWS). If the cut separates the point from `B`, a new node with that cut takes the
///   node's place, with the point's new leaf and the node as children; otherwise the point follows the
///   node's own cut (`x[dim] <= cut` goes left) and the node's box grows to hold it. Equal points share
///   a leaf with a count. Deleting an evicted point decrements that count, or removes the leaf and puts
///   its sibling in place of its parent; the masses above drop by one and the boxes above are recomputed
///   from their children until one does not change.
/// - **Score.** The CoDisp of a point `x` after insertion is the largest ratio `|sibling(c)| / |c|` over
///   the nodes `c` on the path from `x`'s leaf to the root (sizes counting `x`). Where `x` would be
///   inserted is random: at a node with box `B` on `x`'s path the insertion cuts `x` off with probability
///   `p = (span(B + x) - span(B)) / span(B + x)` (1 at a leaf holding another point, 0 inside the box),
///   and the score of the tree is the expectation of the CoDisp over that choice, computed exactly in
///   one descent from the root: cut off at node `v` gives `max(|v|, the ratios |sibling(c)| / (|c| + 1)
///   for the nodes c from the root's child to v)`, and reaching a leaf equal to `x` gives the ratios only
///   (`x` joins the leaf). The tree is read, never copied or changed. The forest's score is the mean over
///   the trees, `>= 0`; with `normalize_score`, `1 - exp(-score / score_scale)`. It is 0.0 until
///   `warmup_samples` shingles (by default `sample_size`) were learned.
/// - **`scoring = "depth"`.** AWS's `random-cut-forest-by-aws` (and rcf3, a Rust port with Python
///   bindings) score by the same separation probabilities with another function of the place of the cut
///   ([`RcfScoring::Depth`]): a cut at depth `k` scores `1 / (k + 1)` (shallow isolation is anomalous),
///   reaching a leaf holding another point scores `1 / (depth + 1)`, a copy of a leaf's point the damped
///   `(1 - m / 2n) / (depth + log2(m + 1))`, and the tree's expectation is scaled by `log2(n + 1)`. AWS
///   folds it from the leaf up; here the same sum is taken top-down in the one descent. Unlike CoDisp, it
///   does not grow with the mass of what the point would be cut off from, so a point in a sparse corner of
///   a dense sample still scores by how shallow its cut is.
///
/// Works on raw, unscaled input: a cut's dimension is chosen by span, so a feature with a wide range is
/// cut more often, as in the paper; scale the input first for equal weight per feature. Non-finite
/// values: a NaN or infinity is replaced by the last finite value learned for that feature (0.0 before
/// any), when learning and when scoring (scoring reads that memory, it does not update it); finite values
/// are clamped to `±1e150` so that spans and their sums stay finite. Scores are always finite.
///
/// # Cost
/// Scoring: one root-to-leaf descent per tree, O(n_trees * depth * D) (depth about 14 on SHUTTLE at
/// `sample_size = 256`), four trees descended in lockstep so that their memory loads overlap, the sum
/// over trees in tree order; no allocation (a row with non-finite values is cleaned into a new buffer). Learning:
/// two uniform draws per tree, and for the trees that accept the shingle one eviction and one insertion,
/// O(depth * D) each. Memory per tree: `sample_size` leaves of `D` values, `sample_size - 1` nodes with a
/// box of `2 D` values, a heap of `sample_size` weights; all in arenas with free lists, bounded by the
/// parameters whatever the stream's length. Each tree's generator is seeded from `(seed, tree index)`.
///
/// # Deviations from aberrant
/// - aberrant keeps one FIFO window of the last `sample_size` shingles and inserts every shingle into
///   every tree, so all trees hold the same points. Here each tree keeps its own time-decayed reservoir
///   sample, as in the paper (a reservoir per tree) and AWS (whose default sampler this is), so trees see
///   different points and a sample spans about `10 sample_size` shingles instead of `sample_size`.
/// - aberrant scores by inserting the query with one random draw, computing CoDisp and deleting it
///   (restoring the generator); this computes the expectation of that CoDisp over the draw, without
///   touching the tree: same mean, no sampling noise.
/// - Non-finite values as above; aberrant raises on them. Generators are PCG64 per tree, so trees differ
///   from aberrant's for the same seed; `seed = None` means seed 0.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::RandomCutForestParams;
/// let schema = Schema::shared(["latency_ms", "bytes"]).unwrap();
/// let params = RandomCutForestParams { n_trees: 30, sample_size: 64, seed: Some(7), ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..2_000 {
///     model.learn_one(&[20.0 + (i % 13) as f64, 1_000.0 + (i % 29) as f64 * 10.0]);
/// }
/// let normal = model.score_one(&[26.0, 1_150.0]);
/// let spike = model.score_one(&[400.0, 90_000.0]);
/// assert!(spike > 10.0 * normal, "{spike} vs {normal}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RandomCutForest {
    sample_size: usize,
    shingle_size: usize,
    warmup_samples: usize,
    normalize_score: bool,
    score_scale: f64,
    scoring: RcfScoring,
    /// Features per row.
    d: usize,
    /// `lambda` of the samplers.
    time_decay: f64,
    /// The last `shingle_size - 1` learned rows (cleaned), oldest first; shorter until that many came.
    history: Vec<f64>,
    /// The last finite value learned for each feature (0.0 before any): the stand-in for NaN and +-inf.
    last_finite: Vec<f64>,
    /// Shingles learned so far (the sequence index of the next one).
    shingles: u64,
    trees: Vec<Tree>,
    /// The shingle being learned (working space, so learning allocates nothing).
    #[serde(skip)]
    point: Vec<f64>,
}

impl DetectorParams for RandomCutForestParams {
    type Model = RandomCutForest;
    fn build(&self, schema: &SchemaRef) -> Result<RandomCutForest, ParamError> {
        if self.n_trees == 0 {
            return Err(ParamError::invalid("n_trees", "must be at least 1, got 0"));
        }
        // Leaf references carry a flag bit in a u32.
        if !(2..=1 << 30).contains(&self.sample_size) {
            return Err(ParamError::invalid(
                "sample_size",
                format!("must be between 2 and 2^30, got {}", self.sample_size),
            ));
        }
        if !(1..=1 << 16).contains(&self.shingle_size) {
            return Err(ParamError::invalid(
                "shingle_size",
                format!("must be between 1 and 65536, got {}", self.shingle_size),
            ));
        }
        if self.warmup_samples == Some(0) {
            return Err(ParamError::invalid("warmup_samples", "must be at least 1 or None, got 0"));
        }
        if !(self.score_scale.is_finite() && self.score_scale > 0.0) {
            return Err(ParamError::invalid(
                "score_scale",
                format!("must be finite and greater than 0, got {}", self.score_scale),
            ));
        }
        let d = schema.len();
        let dim = d.saturating_mul(self.shingle_size);
        if d == 0 || dim > u32::MAX as usize {
            return Err(ParamError::Schema(format!(
                "RandomCutForest needs 1 or more features and at most 2^32 - 1 values per shingle, got {d} features \
                 times shingle_size {}",
                self.shingle_size
            )));
        }
        let seed = self.seed.unwrap_or(0);
        Ok(RandomCutForest {
            sample_size: self.sample_size,
            shingle_size: self.shingle_size,
            warmup_samples: self.warmup_samples.unwrap_or(self.sample_size),
            normalize_score: self.normalize_score,
            score_scale: self.score_scale,
            scoring: self.scoring,
            d,
            time_decay: 1.0 / (TIME_DECAY_SAMPLES * self.sample_size as f64),
            history: Vec::with_capacity((self.shingle_size - 1) * d),
            last_finite: vec![0.0; d],
            shingles: 0,
            trees: (0..self.n_trees).map(|i| Tree::new(dim, unit_rng(seed, i as u64))).collect(),
            point: Vec::new(),
        })
    }
}

/// [`RandomCutForestParams`] at state version 1, before `scoring` (frozen): read from older checkpoints
/// as CoDisp, which is how they scored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RandomCutForestParamsV1 {
    n_trees: usize,
    sample_size: usize,
    shingle_size: usize,
    warmup_samples: Option<usize>,
    normalize_score: bool,
    score_scale: f64,
    seed: Option<u64>,
}

impl From<RandomCutForestParamsV1> for RandomCutForestParams {
    fn from(p: RandomCutForestParamsV1) -> Self {
        RandomCutForestParams {
            n_trees: p.n_trees,
            sample_size: p.sample_size,
            shingle_size: p.shingle_size,
            warmup_samples: p.warmup_samples,
            normalize_score: p.normalize_score,
            score_scale: p.score_scale,
            seed: p.seed,
            scoring: RcfScoring::Codisp,
        }
    }
}

/// [`RandomCutForest`] at state version 1, before `scoring` (frozen; the trees' layout is unchanged).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RandomCutForestV1 {
    sample_size: usize,
    shingle_size: usize,
    warmup_samples: usize,
    normalize_score: bool,
    score_scale: f64,
    d: usize,
    time_decay: f64,
    history: Vec<f64>,
    last_finite: Vec<f64>,
    shingles: u64,
    trees: Vec<Tree>,
}

impl From<RandomCutForestV1> for RandomCutForest {
    fn from(m: RandomCutForestV1) -> Self {
        RandomCutForest {
            sample_size: m.sample_size,
            shingle_size: m.shingle_size,
            warmup_samples: m.warmup_samples,
            normalize_score: m.normalize_score,
            score_scale: m.score_scale,
            scoring: RcfScoring::Codisp,
            d: m.d,
            time_decay: m.time_decay,
            history: m.history,
            last_finite: m.last_finite,
            shingles: m.shingles,
            trees: m.trees,
            point: Vec::new(),
        }
    }
}

/// An inner node of a random cut tree; its box is in [`Tree::boxes`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Inner {
    left: u32,
    right: u32,
    parent: u32,
    dim: u32,
    /// Points below this node (leaf counts included).
    mass: u32,
    /// Points with `x[dim] <= cut` are on the left.
    cut: f64,
}

/// A leaf: one distinct point (in [`Tree::points`]) held `count` times.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Leaf {
    parent: u32,
    count: u32,
}

/// One random cut tree with its reservoir sample. Nodes live in arenas with free lists: inner node `i`
/// is `inner[i]` with box `boxes[2Di..2Di+D]` (minima) and `boxes[2Di+D..2D(i+1)]` (maxima); a reference
/// `LEAF | j` is leaf `j` with point `points[Dj..D(j+1)]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tree {
    dim: usize,
    rng: Pcg64,
    root: u32,
    inner: Vec<Inner>,
    boxes: Vec<f64>,
    free_inner: Vec<u32>,
    leaves: Vec<Leaf>,
    points: Vec<f64>,
    free_leaves: Vec<u32>,
    /// The sample: `(weight, leaf)` per kept point, a binary max-heap on the weight.
    heap: Vec<(f64, u32)>,
}

/// A uniform draw in the open interval (0, 1).
#[inline]
fn open_unit(rng: &mut Pcg64) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// The value of coordinate `j` of the point split as `a` then `b`.
#[inline(always)]
fn coord(a: &[f64], b: &[f64], j: usize) -> f64 {
    if j < a.len() { a[j] } else { b[j - a.len()] }
}

/// `sum_j max(lo_j - x_j, 0) + max(x_j - hi_j, 0)` (how far the box must grow to hold `x`) and the box's
/// span `sum_j hi_j - lo_j`, for `x` given as `a` then `b`.
#[inline]
fn outside_and_span(lo: &[f64], hi: &[f64], a: &[f64], b: &[f64]) -> (f64, f64) {
    let (lo_a, lo_b) = lo.split_at(a.len());
    let (hi_a, hi_b) = hi.split_at(a.len());
    let (mut out, mut span) = (0.0, 0.0);
    for ((&l, &h), &x) in lo_a.iter().zip(hi_a).zip(a) {
        out += (l - x).max(0.0) + (x - h).max(0.0);
        span += h - l;
    }
    for ((&l, &h), &x) in lo_b.iter().zip(hi_b).zip(b) {
        out += (l - x).max(0.0) + (x - h).max(0.0);
        span += h - l;
    }
    (out, span)
}

/// [`Tree::bounds`] over the tree's box and point arenas (so the generator can be borrowed alongside).
#[inline]
fn bounds_in<'a>(boxes: &'a [f64], points: &'a [f64], d: usize, node: u32) -> (&'a [f64], &'a [f64]) {
    if node & LEAF != 0 {
        let j = (node & !LEAF) as usize;
        let p = &points[j * d..(j + 1) * d];
        (p, p)
    } else {
        let i = node as usize;
        boxes[2 * d * i..2 * d * (i + 1)].split_at(d)
    }
}

impl Tree {
    fn new(dim: usize, rng: Pcg64) -> Tree {
        Tree {
            dim,
            rng,
            root: NONE,
            inner: Vec::new(),
            boxes: Vec::new(),
            free_inner: Vec::new(),
            leaves: Vec::new(),
            points: Vec::new(),
            free_leaves: Vec::new(),
            heap: Vec::new(),
        }
    }

    #[inline]
    fn mass(&self, node: u32) -> u32 {
        if node & LEAF != 0 { self.leaves[(node & !LEAF) as usize].count } else { self.inner[node as usize].mass }
    }

    #[inline]
    fn parent(&self, node: u32) -> u32 {
        if node & LEAF != 0 { self.leaves[(node & !LEAF) as usize].parent } else { self.inner[node as usize].parent }
    }

    fn set_parent(&mut self, node: u32, parent: u32) {
        if node & LEAF != 0 {
            self.leaves[(node & !LEAF) as usize].parent = parent;
        } else {
            self.inner[node as usize].parent = parent;
        }
    }

    /// The box of a node: `(minima, maxima)`; a leaf's is its point twice.
    #[inline]
    fn bounds(&self, node: u32) -> (&[f64], &[f64]) {
        bounds_in(&self.boxes, &self.points, self.dim, node)
    }

    /// Puts `new` in the place of `old` under `parent` (or at the root).
    fn replace_child(&mut self, parent: u32, old: u32, new: u32) {
        if parent == NONE {
            self.root = new;
        } else {
            let p = &mut self.inner[parent as usize];
            if p.left == old {
                p.left = new;
            } else {
                p.right = new;
            }
        }
    }

    fn new_leaf(&mut self, a: &[f64], b: &[f64], parent: u32) -> u32 {
        let leaf = Leaf { parent, count: 1 };
        let d = self.dim;
        let j = if let Some(j) = self.free_leaves.pop() {
            self.leaves[j as usize] = leaf;
            let p = &mut self.points[j as usize * d..(j as usize + 1) * d];
            p[..a.len()].copy_from_slice(a);
            p[a.len()..].copy_from_slice(b);
            j
        } else {
            self.leaves.push(leaf);
            self.points.extend_from_slice(a);
            self.points.extend_from_slice(b);
            (self.leaves.len() - 1) as u32
        };
        j | LEAF
    }

    fn new_inner(&mut self, node: Inner) -> u32 {
        if let Some(i) = self.free_inner.pop() {
            self.inner[i as usize] = node;
            i
        } else {
            self.inner.push(node);
            self.boxes.resize(self.boxes.len() + 2 * self.dim, 0.0);
            (self.inner.len() - 1) as u32
        }
    }

    /// Inserts the point `a ++ b`; returns its leaf.
    fn insert(&mut self, a: &[f64], b: &[f64]) -> u32 {
        let d = self.dim;
        if self.root == NONE {
            let leaf = self.new_leaf(a, b, NONE);
            self.root = leaf;
            return leaf;
        }
        let mut at = self.root;
        loop {
            let is_leaf = at & LEAF != 0;
            let (lo, hi) = bounds_in(&self.boxes, &self.points, d, at);
            let (out, span) = outside_and_span(lo, hi, a, b);
            if out > 0.0 {
                // The point is outside the box: draw a cut on the grown box, its dimension by span and its
                // value uniform along it (inside the box, no cut can separate: nothing is drawn, as in AWS).
                let r = unit(&mut self.rng) * (span + out);
                let (mut acc, mut cut_dim, mut offset) = (0.0, usize::MAX, 0.0);
                let mut last_positive = 0;
                for j in 0..d {
                    let x = coord(a, b, j);
                    let s = hi[j].max(x) - lo[j].min(x);
                    if s > 0.0 {
                        last_positive = j;
                        if r < acc + s {
                            cut_dim = j;
                            offset = r - acc;
                            break;
                        }
                    }
                    acc += s;
                }
                if cut_dim == usize::MAX {
                    // Rounding put r past the last span: the start of the last dimension that has one.
                    cut_dim = last_positive;
                    offset = 0.0;
                }
                let j = cut_dim;
                let x = coord(a, b, j);
                let (l, h) = (lo[j], hi[j]);
                let mut cut = l.min(x) + offset.max(0.0);
                // Separated iff the cut falls between the point and the box; a leaf (a one-point box) is
                // always cut off, whatever the rounding.
                let separates = if x < l {
                    if cut >= l && is_leaf {
                        cut = x;
                    }
                    cut < l
                } else if x > h {
                    if cut >= x {
                        cut = h;
                    }
                    cut >= h
                } else {
                    false
                };
                if separates {
                    return self.insert_above(at, a, b, j, cut);
                }
            } else if is_leaf {
                // Inside a one-point box: the point itself.
                self.leaves[(at & !LEAF) as usize].count += 1;
                return at;
            }
            // Not cut off here (an inner node): its box grows to hold the point and it follows the cut.
            let i = at as usize;
            if out > 0.0 {
                let base = 2 * d * i;
                let (lo, hi) = self.boxes[base..base + 2 * d].split_at_mut(d);
                for k in 0..d {
                    let xk = coord(a, b, k);
                    lo[k] = lo[k].min(xk);
                    hi[k] = hi[k].max(xk);
                }
            }
            let n = &mut self.inner[i];
            n.mass += 1;
            at = if coord(a, b, n.dim as usize) <= n.cut { n.left } else { n.right };
        }
    }

    /// Puts a new node with the cut `(dim, cut)` in the place of `at`, its children `at` and a new leaf of
    /// the point `a ++ b` (on the side the cut puts it); returns the leaf.
    fn insert_above(&mut self, at: u32, a: &[f64], b: &[f64], dim: usize, cut: f64) -> u32 {
        let d = self.dim;
        let parent = self.parent(at);
        let mass = self.mass(at) + 1;
        let node = self.new_inner(Inner { left: NONE, right: NONE, parent, dim: dim as u32, mass, cut });
        let leaf = self.new_leaf(a, b, node);
        let (left, right) = if coord(a, b, dim) <= cut { (leaf, at) } else { (at, leaf) };
        let n = &mut self.inner[node as usize];
        n.left = left;
        n.right = right;
        // The new node's box: the old box grown to hold the point.
        let base = 2 * d * node as usize;
        for k in 0..d {
            let (lo, hi) = self.bounds(at);
            let (lo_k, hi_k) = (lo[k], hi[k]);
            let xk = coord(a, b, k);
            self.boxes[base + k] = lo_k.min(xk);
            self.boxes[base + d + k] = hi_k.max(xk);
        }
        self.set_parent(at, node);
        self.replace_child(parent, at, node);
        leaf
    }

    /// Recomputes the box of inner node `i` from its children; returns whether it changed.
    fn refit(&mut self, i: u32) -> bool {
        let d = self.dim;
        let Inner { left, right, .. } = self.inner[i as usize];
        let base = 2 * d * i as usize;
        let mut changed = false;
        for k in 0..d {
            let (lo, hi) = {
                let (ll, lh) = self.bounds(left);
                let (rl, rh) = self.bounds(right);
                (ll[k].min(rl[k]), lh[k].max(rh[k]))
            };
            changed |= self.boxes[base + k] != lo || self.boxes[base + d + k] != hi;
            self.boxes[base + k] = lo;
            self.boxes[base + d + k] = hi;
        }
        changed
    }

    /// Removes one copy of the point at `leaf`.
    fn delete(&mut self, leaf: u32) {
        let j = (leaf & !LEAF) as usize;
        self.leaves[j].count -= 1;
        let mut fix_boxes = false;
        let mut up = self.leaves[j].parent;
        if self.leaves[j].count == 0 {
            self.free_leaves.push(leaf & !LEAF);
            let parent = self.leaves[j].parent;
            if parent == NONE {
                self.root = NONE;
                return;
            }
            let p = self.inner[parent as usize];
            let sibling = if p.left == leaf { p.right } else { p.left };
            self.free_inner.push(parent);
            self.set_parent(sibling, p.parent);
            self.replace_child(p.parent, parent, sibling);
            up = p.parent;
            fix_boxes = true;
        }
        while up != NONE {
            self.inner[up as usize].mass -= 1;
            if fix_boxes {
                fix_boxes = self.refit(up);
            }
            up = self.inner[up as usize].parent;
        }
    }

    /// Offers shingle number `seq` (`a ++ b`) to the sampler; inserts it if accepted, after evicting the
    /// point with the largest weight when the sample is not growing.
    fn offer(&mut self, a: &[f64], b: &[f64], seq: u64, time_decay: f64, capacity: usize) {
        let weight = (-open_unit(&mut self.rng).ln()).ln() - time_decay * seq as f64;
        let size = self.heap.len();
        let initial = size < capacity && unit(&mut self.rng) < initial_accept_probability(size, capacity);
        if !initial && (size == 0 || weight >= self.heap[0].0) {
            return;
        }
        if !initial {
            let (_, evicted) = heap_pop(&mut self.heap);
            self.delete(evicted);
        }
        let leaf = self.insert(a, b);
        heap_push(&mut self.heap, (weight, leaf));
    }

    /// The expected CoDisp of the point `a ++ b` over the random place of its virtual insertion.
    #[cfg(test)]
    fn codisp(&self, a: &[f64], b: &[f64]) -> f64 {
        let mut walk = Walk::new(self.root);
        while !self.step::<false>(&mut walk, a, b) {}
        walk.expected
    }

    /// One node of the scoring descent of `a ++ b` (see [`Walk`]), scoring CoDisp or, with `DEPTH`,
    /// AWS's depth score ([`RcfScoring`]); returns whether the walk is done.
    #[inline(always)]
    fn step<const DEPTH: bool>(&self, w: &mut Walk, a: &[f64], b: &[f64]) -> bool {
        let at = w.at;
        if at == NONE {
            return true;
        }
        if at & LEAF != 0 {
            let (p, _) = self.bounds(at);
            let equal = p[..a.len()] == *a && p[a.len()..] == *b;
            let count = f64::from(self.leaves[(at & !LEAF) as usize].count);
            // Equal: the point joins the leaf; else it is cut off from it for sure.
            if DEPTH {
                let (depth, n) = (f64::from(w.depth), f64::from(self.mass(self.root)));
                let leaf = if equal {
                    (1.0 - count / (2.0 * n)) / (depth + (count + 1.0).log2())
                } else {
                    1.0 / (depth + 1.0)
                };
                w.expected = (w.expected + w.reach * leaf) * (n + 1.0).log2();
            } else {
                w.expected += w.reach * if equal { w.above } else { w.above.max(count) };
            }
            w.at = NONE;
            return true;
        }
        let n = &self.inner[at as usize];
        let (lo, hi) = self.bounds(at);
        let (out, span) = outside_and_span(lo, hi, a, b);
        if out > 0.0 {
            let p = out / (span + out);
            let cut_here = if DEPTH { 1.0 / (f64::from(w.depth) + 1.0) } else { w.above.max(f64::from(n.mass)) };
            w.expected += w.reach * p * cut_here;
            w.reach *= 1.0 - p;
        }
        let child = if coord(a, b, n.dim as usize) <= n.cut { n.left } else { n.right };
        if !DEPTH {
            let child_mass = self.mass(child);
            w.above = w.above.max(f64::from(n.mass - child_mass) / f64::from(child_mass + 1));
        }
        w.depth += 1;
        w.at = child;
        false
    }
}

/// The state of one tree's scoring descent. `reach`: the probability that the virtual insertion gets to
/// `at` without being cut off; `above`: the largest ratio `|sibling(c)| / (|c| + 1)` over the nodes `c`
/// from the root's child to `at` (CoDisp only); `depth`: `at`'s depth (the root's is 0); `expected`: the
/// score's expectation so far.
#[derive(Clone, Copy)]
struct Walk {
    at: u32,
    depth: u32,
    reach: f64,
    above: f64,
    expected: f64,
}

impl Walk {
    fn new(root: u32) -> Walk {
        Walk { at: root, depth: 0, reach: 1.0, above: 0.0, expected: 0.0 }
    }
}

/// Trees descended together by scoring: their chains of dependent loads overlap.
const LANES: usize = 4;

/// The sum over `trees` (in order) of the score of `a ++ b`.
fn sum_scores(trees: &[Tree], a: &[f64], b: &[f64], scoring: RcfScoring) -> f64 {
    let mut total = 0.0;
    let mut each = [0.0; LANES];
    for group in trees.chunks(LANES) {
        score_each(group, a, b, scoring, &mut each[..group.len()]);
        for v in &each[..group.len()] {
            total += v;
        }
    }
    total
}

/// The score of `a ++ b` in each of `trees`, into `out` (as [`sum_scores`] computes them).
fn score_each(trees: &[Tree], a: &[f64], b: &[f64], scoring: RcfScoring, out: &mut [f64]) {
    match scoring {
        RcfScoring::Codisp => descend::<false>(trees, a, b, out),
        RcfScoring::Depth => descend::<true>(trees, a, b, out),
    }
}

/// [`score_each`] for one score function.
fn descend<const DEPTH: bool>(trees: &[Tree], a: &[f64], b: &[f64], out: &mut [f64]) {
    for (group, out) in trees.chunks(LANES).zip(out.chunks_mut(LANES)) {
        let mut walks = [Walk::new(NONE); LANES];
        for (w, t) in walks.iter_mut().zip(group) {
            w.at = t.root;
        }
        let mut live = group.len();
        while live > 0 {
            live = 0;
            for (w, t) in walks.iter_mut().zip(group) {
                if !t.step::<DEPTH>(w, a, b) {
                    live += 1;
                }
            }
        }
        for (o, w) in out.iter_mut().zip(&walks) {
            *o = w.expected;
        }
    }
}

/// Rows times trees below which a batch is not split among threads.
const PARALLEL_WORK: usize = 1 << 13;

/// AWS's warm-up acceptance: 1 below `INITIAL_ACCEPT_FRACTION` of the capacity, then falling linearly to
/// 0 at the capacity.
fn initial_accept_probability(size: usize, capacity: usize) -> f64 {
    let fill = size as f64 / capacity as f64;
    if fill < INITIAL_ACCEPT_FRACTION {
        1.0
    } else {
        1.0 - (fill - INITIAL_ACCEPT_FRACTION) / (1.0 - INITIAL_ACCEPT_FRACTION)
    }
}

fn heap_push(heap: &mut Vec<(f64, u32)>, item: (f64, u32)) {
    heap.push(item);
    let mut i = heap.len() - 1;
    while i > 0 {
        let up = (i - 1) / 2;
        if heap[up].0 >= heap[i].0 {
            break;
        }
        heap.swap(up, i);
        i = up;
    }
}

/// Removes and returns the entry with the largest weight (the heap is not empty).
fn heap_pop(heap: &mut Vec<(f64, u32)>) -> (f64, u32) {
    let top = heap.swap_remove(0);
    let n = heap.len();
    let mut i = 0;
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut big = i;
        if l < n && heap[l].0 > heap[big].0 {
            big = l;
        }
        if r < n && heap[r].0 > heap[big].0 {
            big = r;
        }
        if big == i {
            return top;
        }
        heap.swap(i, big);
        i = big;
    }
}

/// A value as the trees take it: finite values clamped, NaN and infinities replaced by `last`.
#[inline]
fn clean(v: f64, last: f64) -> f64 {
    if v.is_finite() { v.clamp(-VALUE_LIMIT, VALUE_LIMIT) } else { last }
}

impl RandomCutForest {
    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    fn raw_score(&self, row: &[f64]) -> f64 {
        sum_scores(&self.trees, &self.history, row, self.scoring) / self.trees.len() as f64
    }
}

impl RandomCutForest {
    /// Cleans `x` and writes the shingle it completes (the history, then the cleaned row) into `point`,
    /// updating the last finite values; returns whether the shingle is complete (the trees learn it).
    fn next_point(&mut self, x: &[f64], point: &mut Vec<f64>) -> bool {
        point.clear();
        point.extend_from_slice(&self.history);
        for (v, last) in x.iter().zip(self.last_finite.iter_mut()) {
            let c = clean(*v, *last);
            if v.is_finite() {
                *last = c;
            }
            point.push(c);
        }
        self.history.len() == (self.shingle_size - 1) * self.d
    }

    /// After the trees were offered `point` (when `complete`): counts it and moves the history on.
    fn advance(&mut self, point: &[f64], complete: bool) {
        let (d, hist) = (self.d, self.history.len());
        if !complete {
            self.history.extend_from_slice(&point[hist..]);
            return;
        }
        self.shingles += 1;
        if hist > 0 {
            self.history.copy_within(d.., 0);
            self.history[hist - d..].copy_from_slice(&point[hist..]);
        }
    }

    /// `score_learn_many` with the trees split among `threads` threads: the shingles and what each row
    /// does are planned first (they do not depend on the trees), then each thread scores and offers every
    /// row to its own trees; the per-tree CoDisps are summed in tree order, as one thread sums them.
    fn score_learn_parallel(&mut self, batch: &Batch, threads: usize, out: &mut Vec<f64>) {
        let n = batch.num_rows();
        let width = self.shingle_size * self.d;
        let hist = (self.shingle_size - 1) * self.d;
        // Per row: its shingle (a whole one, or the partial history with the row), whether it is scored,
        // and the sequence number it is offered under.
        let mut points = Vec::with_capacity(n * width);
        let mut plans: Vec<(bool, Option<u64>)> = Vec::with_capacity(n);
        let mut point = std::mem::take(&mut self.point);
        for i in 0..n {
            let scored = self.shingles >= self.warmup_samples as u64;
            let complete = self.next_point(batch.row(i), &mut point);
            points.extend_from_slice(&point);
            points.resize((i + 1) * width, 0.0);
            plans.push((scored, complete.then_some(self.shingles)));
            self.advance(&point, complete);
        }
        self.point = point;
        let (time_decay, capacity, scoring) = (self.time_decay, self.sample_size, self.scoring);
        let totals = super::per_tree_sums(&mut self.trees, threads, n, |trees, codisps| {
            let k = trees.len();
            for (i, &(scored, offered)) in plans.iter().enumerate() {
                let (a, b) = points[i * width..(i + 1) * width].split_at(hist);
                if scored {
                    score_each(trees, a, b, scoring, &mut codisps[i * k..(i + 1) * k]);
                }
                if let Some(seq) = offered {
                    for tree in trees.iter_mut() {
                        tree.offer(a, b, seq, time_decay, capacity);
                    }
                }
            }
        });
        for (&(scored, _), total) in plans.iter().zip(totals) {
            out.push(if scored { self.finish_score(total / self.trees.len() as f64) } else { 0.0 });
        }
    }

    /// The score reported for a raw mean CoDisp.
    fn finish_score(&self, raw: f64) -> f64 {
        if self.normalize_score { 1.0 - (-raw / self.score_scale).exp() } else { raw }
    }
}

impl Detector for RandomCutForest {
    fn learn_one(&mut self, x: &[f64]) {
        let mut point = std::mem::take(&mut self.point);
        let complete = self.next_point(x, &mut point);
        if complete {
            let (a, b) = point.split_at(self.history.len());
            for tree in &mut self.trees {
                tree.offer(a, b, self.shingles, self.time_decay, self.sample_size);
            }
        }
        self.advance(&point, complete);
        self.point = point;
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        match super::tree_threads(self.trees.len(), batch.num_rows(), PARALLEL_WORK) {
            Some(threads) => self.score_learn_parallel(batch, threads, out),
            None => out.extend((0..batch.num_rows()).map(|i| self.score_learn_one(batch.row(i)))),
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.shingles < self.warmup_samples as u64 {
            return 0.0;
        }
        let raw = if x.iter().all(|v| v.is_finite() && v.abs() <= VALUE_LIMIT) {
            self.raw_score(x)
        } else {
            let row: Vec<f64> = x.iter().zip(&self.last_finite).map(|(v, l)| clean(*v, *l)).collect();
            self.raw_score(&row)
        };
        self.finish_score(raw)
    }
}

impl Describe for RandomCutForestParams {
    const REFERENCE: &'static str =
        "Guha, Mishra, Roy & Schrijvers 2016, Robust Random Cut Forest Based Anomaly Detection on Streams (ICML)";
    const SUMMARY: &'static str =
        "robust random cut forest over per-tree time-decayed samples, scored by expected CoDisp (RRCF)";
    /// 2: `scoring` added (version 1 is read as CoDisp, `legacy::older`).
    const STATE_VERSION: u16 = 2;
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "n_trees", ty: "int >= 1", required: false, help: "random cut trees (default 40)" },
        ParamDoc {
            name: "sample_size",
            ty: "int >= 2",
            required: false,
            help: "points in each tree's reservoir sample (default 256)",
        },
        ParamDoc {
            name: "shingle_size",
            ty: "int >= 1",
            required: false,
            help: "consecutive rows concatenated into one point (default 1)",
        },
        ParamDoc {
            name: "warmup_samples",
            ty: "int >= 1 or none",
            required: false,
            help: "shingles learned before scores are non-zero (default sample_size)",
        },
        ParamDoc {
            name: "normalize_score",
            ty: "bool",
            required: false,
            help: "map the raw score s to 1 - exp(-s / score_scale) (default false)",
        },
        ParamDoc { name: "score_scale", ty: "float > 0", required: false, help: "normalisation scale (default 8.0)" },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the trees (default 0)" },
        ParamDoc {
            name: "scoring",
            ty: "codisp | depth",
            required: false,
            help: "the paper's collusive displacement, or AWS's depth-based anomaly score (default codisp)",
        },
    ];
    fn example() -> Self {
        RandomCutForestParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn params(n_trees: usize, sample_size: usize, seed: u64) -> RandomCutForestParams {
        RandomCutForestParams { n_trees, sample_size, seed: Some(seed), ..Default::default() }
    }

    fn build(p: RandomCutForestParams, d: usize) -> RandomCutForest {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    /// A deterministic cloud in [-1, 1]^2, dense at the centre (a low-discrepancy sequence, cubed).
    fn cloud(i: usize) -> [f64; 2] {
        let a = (i as f64 * 0.618_033_988_749_895).fract() * 2.0 - 1.0;
        let b = (i as f64 * 0.754_877_666_246_693).fract() * 2.0 - 1.0;
        [a * a * a, b * b * b]
    }

    /// Checks every invariant of a tree: links, masses, boxes (exactly the union of the children's),
    /// cuts separating the children, the sample's leaf counts, and the free lists.
    fn check_tree(t: &Tree) {
        let d = t.dim;
        let mut reachable_leaves = vec![false; t.leaves.len()];
        let mut reachable_inner = vec![false; t.inner.len()];
        let mut total = 0;
        if t.root != NONE {
            assert_eq!(t.parent(t.root), NONE);
            let mut stack = vec![t.root];
            while let Some(n) = stack.pop() {
                if n & LEAF != 0 {
                    let j = (n & !LEAF) as usize;
                    assert!(!reachable_leaves[j]);
                    reachable_leaves[j] = true;
                    assert!(t.leaves[j].count > 0);
                    total += t.leaves[j].count;
                    continue;
                }
                let i = n as usize;
                assert!(!reachable_inner[i]);
                reachable_inner[i] = true;
                let node = t.inner[i];
                assert_eq!(t.parent(node.left), n);
                assert_eq!(t.parent(node.right), n);
                assert_eq!(node.mass, t.mass(node.left) + t.mass(node.right));
                let (lo, hi) = t.bounds(n);
                let (ll, lh) = t.bounds(node.left);
                let (rl, rh) = t.bounds(node.right);
                for k in 0..d {
                    assert_eq!(lo[k], ll[k].min(rl[k]));
                    assert_eq!(hi[k], lh[k].max(rh[k]));
                }
                let k = node.dim as usize;
                assert!(lh[k] <= node.cut && rl[k] > node.cut, "the cut separates the children");
                stack.extend([node.left, node.right]);
            }
        }
        assert_eq!(total as usize, t.heap.len(), "one leaf count per sampled point");
        let mut counts = vec![0u32; t.leaves.len()];
        for (i, &(w, leaf)) in t.heap.iter().enumerate() {
            assert!(w.is_finite());
            counts[(leaf & !LEAF) as usize] += 1;
            if i > 0 {
                assert!(t.heap[(i - 1) / 2].0 >= w, "max-heap order");
            }
        }
        for (j, leaf) in t.leaves.iter().enumerate() {
            if reachable_leaves[j] {
                assert_eq!(counts[j], leaf.count);
            }
        }
        assert_eq!(reachable_leaves.iter().filter(|r| !**r).count(), t.free_leaves.len());
        assert_eq!(reachable_inner.iter().filter(|r| !**r).count(), t.free_inner.len());
        assert!(t.free_leaves.iter().all(|&j| !reachable_leaves[j as usize]));
        assert!(t.free_inner.iter().all(|&i| !reachable_inner[i as usize]));
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 3);
        let err = |p: RandomCutForestParams| p.build(&schema).unwrap_err().to_string();
        let e = err(RandomCutForestParams { n_trees: 0, ..Default::default() });
        assert!(e.contains("'n_trees'"), "{e}");
        for bad in [0, 1, (1 << 30) + 1] {
            let e = err(RandomCutForestParams { sample_size: bad, ..Default::default() });
            assert!(e.contains("'sample_size'") && e.contains(&bad.to_string()), "{e}");
        }
        let e = err(RandomCutForestParams { shingle_size: 0, ..Default::default() });
        assert!(e.contains("'shingle_size'"), "{e}");
        let e = err(RandomCutForestParams { warmup_samples: Some(0), ..Default::default() });
        assert!(e.contains("'warmup_samples'"), "{e}");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = err(RandomCutForestParams { score_scale: bad, ..Default::default() });
            assert!(e.contains("'score_scale'"), "{e}");
        }
        assert!(RandomCutForestParams { sample_size: 2, ..Default::default() }.build(&schema).is_ok());
    }

    #[test]
    fn trees_stay_consistent_through_inserts_evictions_and_duplicates() {
        let mut m = build(params(4, 32, 3), 2);
        for i in 0..3_000 {
            // Every third row repeats an earlier one: duplicates share leaves.
            let x = if i % 3 == 0 { cloud(i / 7) } else { cloud(i) };
            m.learn_one(&x);
            if i % 97 == 0 || i > 2_990 {
                m.trees.iter().for_each(check_tree);
            }
        }
        for t in &m.trees {
            assert_eq!(t.heap.len(), 32, "the sample filled up");
            assert!(t.leaves.len() <= 32 && t.inner.len() < 32, "arenas bounded by the sample size");
        }
        // Repeating one point many times: one leaf holds it with a count.
        let mut m = build(params(2, 16, 1), 2);
        (0..200).for_each(|_| m.learn_one(&[1.0, 2.0]));
        for t in &m.trees {
            check_tree(t);
            assert_eq!(t.root & LEAF, LEAF);
            assert_eq!(t.leaves.len(), 1);
            assert_eq!(t.mass(t.root) as usize, t.heap.len());
        }
    }

    #[test]
    fn the_sampler_follows_awss_warm_up_and_prefers_recent_points() {
        assert_eq!(initial_accept_probability(0, 256), 1.0);
        assert_eq!(initial_accept_probability(31, 256), 1.0);
        assert_eq!(initial_accept_probability(32, 256), 1.0);
        assert!((initial_accept_probability(144, 256) - 0.5).abs() < 1e-12);
        assert!(initial_accept_probability(255, 256) > 0.0);
        let mut m = build(params(8, 64, 5), 1);
        for i in 0..8 {
            m.learn_one(&[i as f64]);
        }
        assert!(m.trees.iter().all(|t| t.heap.len() == 8), "below 1/8 of the capacity every point is accepted");
        for i in 8..20_000 {
            m.learn_one(&[i as f64]);
        }
        // With lambda = 1 / (10 * 64), the kept points are mostly from the last few thousand shingles.
        for t in &m.trees {
            assert_eq!(t.heap.len(), 64);
            let mean = t.heap.iter().map(|&(_, leaf)| t.bounds(leaf).0[0]).sum::<f64>() / 64.0;
            assert!(mean > 20_000.0 - 2_500.0, "{mean}");
        }
        // Trees hold different samples.
        let keys = |t: &Tree| {
            let mut v: Vec<u64> = t.heap.iter().map(|&(_, leaf)| t.bounds(leaf).0[0] as u64).collect();
            v.sort_unstable();
            v
        };
        assert_ne!(keys(&m.trees[0]), keys(&m.trees[1]));
    }

    /// CoDisp by actually inserting the point: the mean over many random insertions of the largest
    /// |sibling| / |node| on its leaf's path.
    fn codisp_by_insertion(t: &Tree, x: &[f64], draws: usize) -> f64 {
        let mut total = 0.0;
        for k in 0..draws {
            let mut copy = t.clone();
            copy.rng = unit_rng(99, k as u64);
            let leaf = copy.insert(&[], x);
            let mut node = leaf;
            let mut best = 0.0f64;
            while copy.parent(node) != NONE {
                let p = copy.inner[copy.parent(node) as usize];
                let sibling = if p.left == node { p.right } else { p.left };
                best = best.max(f64::from(copy.mass(sibling)) / f64::from(copy.mass(node)));
                node = copy.parent(node);
            }
            total += best;
        }
        total / draws as f64
    }

    #[test]
    fn expected_codisp_matches_the_mean_over_real_insertions() {
        let mut m = build(params(1, 16, 2), 2);
        (0..16).for_each(|i| m.learn_one(&cloud(i * 5)));
        m.learn_one(&cloud(5)); // a duplicate
        let t = &m.trees[0];
        check_tree(t);
        for x in [[0.0, 0.0], [0.9, -0.9], [3.0, 3.0], cloud(5), [0.2, 0.05]] {
            let exact = t.codisp(&[], &x);
            let sampled = codisp_by_insertion(t, &x, 4_000);
            assert!((exact - sampled).abs() < 0.05 * exact.max(1.0), "{x:?}: {exact} vs {sampled}");
        }
        // Hand-checkable: a tree of the two points 0 and 1 (one dimension).
        let mut t = Tree::new(1, unit_rng(0, 0));
        t.insert(&[], &[0.0]);
        t.insert(&[], &[1.0]);
        // 3 is cut off above the root with probability 2/3 (CoDisp 2), else goes to leaf 1 and is cut off
        // there (ratio at the leaf 1/1, sibling of leaf 1 is leaf 0 with 1 point, ratio 1/2): 2/3 * 2 + 1/3 * 1.
        assert!((t.codisp(&[], &[3.0]) - (2.0 * 2.0 / 3.0 + 1.0 / 3.0)).abs() < 1e-12);
        // 0.5 is inside the box: never cut off at the root; at leaf 0 or 1 it is: max(1/2, 1) = 1.
        assert_eq!(t.codisp(&[], &[0.5]), 1.0);
        // A copy of 1 joins its leaf: ratio 1 / 2.
        assert_eq!(t.codisp(&[], &[1.0]), 0.5);
        // A single-leaf tree: a copy scores 0 (no parent), another point the leaf's count.
        let mut t = Tree::new(1, unit_rng(0, 0));
        t.insert(&[], &[4.0]);
        t.insert(&[], &[4.0]);
        assert_eq!(t.codisp(&[], &[4.0]), 0.0);
        assert_eq!(t.codisp(&[], &[5.0]), 2.0);
    }

    /// AWS's depth score as its visitor computes it: from the leaf up to the root, each node mixing in
    /// `1 / (depth + 1)` with its separation probability.
    fn depth_score_bottom_up(t: &Tree, x: &[f64]) -> f64 {
        let mut path = Vec::new();
        let mut at = t.root;
        while at & LEAF == 0 {
            path.push(at);
            let n = &t.inner[at as usize];
            at = if x[n.dim as usize] <= n.cut { n.left } else { n.right };
        }
        let leaf = t.leaves[(at & !LEAF) as usize];
        let (m, total) = (f64::from(leaf.count), f64::from(t.mass(t.root)));
        let depth = path.len() as f64;
        let mut score = if t.bounds(at).0 == x {
            (1.0 - m / (2.0 * total)) / (depth + (m + 1.0).log2())
        } else {
            1.0 / (depth + 1.0)
        };
        for (k, &node) in path.iter().enumerate().rev() {
            let (lo, hi) = t.bounds(node);
            let (mut grown, mut span) = (0.0, 0.0);
            for j in 0..x.len() {
                span += hi[j] - lo[j];
                grown += hi[j].max(x[j]) - lo[j].min(x[j]);
            }
            let p = (grown - span) / grown;
            score = (1.0 - p) * score + p / (k as f64 + 1.0);
        }
        score * (total + 1.0).log2()
    }

    fn depth_score(t: &Tree, x: &[f64]) -> f64 {
        let mut out = [0.0];
        descend::<true>(std::slice::from_ref(t), &[], x, &mut out);
        out[0]
    }

    #[test]
    fn the_depth_score_is_awss_visitor_computed_top_down() {
        // Hand-checkable: the tree of the points 0 and 1 (mass 2, normaliser log2 3).
        let mut t = Tree::new(1, unit_rng(0, 0));
        t.insert(&[], &[0.0]);
        t.insert(&[], &[1.0]);
        let norm = 3f64.log2();
        // 3 is cut off at the root (depth 0) with probability 2/3, else reaches leaf 1 (depth 1), unseen.
        assert!((depth_score(&t, &[3.0]) - (2.0 / 3.0 + 1.0 / 3.0 * 0.5) * norm).abs() < 1e-12);
        // 0.5 is inside the root's box and reaches a leaf holding another point.
        assert!((depth_score(&t, &[0.5]) - 0.5 * norm).abs() < 1e-12);
        // A copy of 1: damped (1 - 1/4) and seen, 1 / (1 + log2 2).
        assert!((depth_score(&t, &[1.0]) - 0.75 * 0.5 * norm).abs() < 1e-12);

        // A grown tree with duplicates, against the bottom-up fold.
        let mut m = build(RandomCutForestParams { scoring: RcfScoring::Depth, ..params(3, 32, 4) }, 2);
        for i in 0..400 {
            m.learn_one(&cloud(i % 150));
        }
        for t in &m.trees {
            check_tree(t);
            for x in [[0.0, 0.0], [0.9, -0.9], [3.0, 3.0], cloud(5), [0.2, 0.05], [-7.0, 0.1]] {
                let (top_down, bottom_up) = (depth_score(t, &x), depth_score_bottom_up(t, &x));
                assert!((top_down - bottom_up).abs() < 1e-9 * bottom_up, "{x:?}: {top_down} vs {bottom_up}");
            }
            // Every kept point is a leaf: its copies score as seen.
            let &(_, leaf) = &t.heap[0];
            let x = t.bounds(leaf).0.to_vec();
            assert!((depth_score(t, &x) - depth_score_bottom_up(t, &x)).abs() < 1e-9);
        }
        // The forest's score is the mean of its trees', and an outlier scores above an inlier.
        let mean = m.trees.iter().map(|t| depth_score(t, &[3.0, 3.0])).sum::<f64>() / 3.0;
        assert!((m.score_one(&[3.0, 3.0]) - mean).abs() < 1e-12);
        assert!(m.score_one(&[3.0, 3.0]) > 1.5 * m.score_one(&cloud(7)));
    }

    #[test]
    fn checkpoints_of_state_version_1_load_and_score_codisp() {
        use crate::{AnyDetector, AnyDetectorParams};
        let p = RandomCutForestParams { warmup_samples: Some(50), ..params(4, 32, 3) };
        let mut m = build(p.clone(), 2);
        (0..200).for_each(|i| m.learn_one(&cloud(i)));
        // The version-1 layout: the same fields in the same order, without `scoring`.
        let v1_state = (
            m.sample_size,
            m.shingle_size,
            m.warmup_samples,
            m.normalize_score,
            m.score_scale,
            m.d,
            m.time_decay,
            &m.history,
            &m.last_finite,
            m.shingles,
            &m.trees,
        );
        let bytes = postcard::to_stdvec(&("random_cut_forest", 1u16, v1_state)).unwrap();
        let AnyDetector::RandomCutForest(mut old) = postcard::from_bytes(&bytes).unwrap() else {
            panic!("another kind")
        };
        assert_eq!(old.scoring, RcfScoring::Codisp);
        for i in 200..260 {
            assert_eq!(old.score_learn_one(&cloud(i)), m.score_learn_one(&cloud(i)));
        }
        let v1_params =
            (p.n_trees, p.sample_size, p.shingle_size, p.warmup_samples, p.normalize_score, p.score_scale, p.seed);
        let bytes = postcard::to_stdvec(&("random_cut_forest", 1u16, v1_params)).unwrap();
        let read: AnyDetectorParams = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read, AnyDetectorParams::RandomCutForest(p.clone()));
        // Today's bytes are version 2 and round-trip with the option.
        let depth = RandomCutForestParams { scoring: RcfScoring::Depth, ..p };
        let bytes = postcard::to_stdvec(&AnyDetectorParams::RandomCutForest(depth.clone())).unwrap();
        assert_eq!(&bytes[..18], b"\x11random_cut_forest");
        assert_eq!(
            postcard::from_bytes::<AnyDetectorParams>(&bytes).unwrap(),
            AnyDetectorParams::RandomCutForest(depth)
        );
    }

    #[test]
    fn an_outlier_scores_above_inliers_and_warm_up_gives_zero() {
        let mut m = build(RandomCutForestParams { warmup_samples: Some(100), ..params(40, 128, 11) }, 2);
        for i in 0..99 {
            m.learn_one(&cloud(i));
            assert_eq!(m.score_one(&[5.0, 5.0]), 0.0);
        }
        m.learn_one(&cloud(99));
        assert!(m.score_one(&[5.0, 5.0]) > 0.0);
        (100..4_000).for_each(|i| m.learn_one(&cloud(i)));
        let centre = m.score_one(&[0.0, 0.0]);
        let edge = m.score_one(&[0.9, 0.0]);
        let outlier = m.score_one(&[4.0, 4.0]);
        assert!(edge > centre, "{edge} vs {centre}");
        assert!(outlier > 5.0 * edge && outlier > 20.0, "{outlier} vs {edge}");
        // The normalised score is 1 - exp(-raw / score_scale).
        let mut n =
            build(RandomCutForestParams { warmup_samples: Some(100), normalize_score: true, ..params(40, 128, 11) }, 2);
        (0..4_000).for_each(|i| n.learn_one(&cloud(i)));
        assert_eq!(n.score_one(&[4.0, 4.0]), 1.0 - (-outlier / 8.0).exp());
    }

    #[test]
    fn shingles_concatenate_consecutive_rows_and_scoring_does_not_store_the_row() {
        let mut m = build(RandomCutForestParams { shingle_size: 3, warmup_samples: Some(1), ..params(2, 8, 1) }, 2);
        m.learn_one(&[1.0, 2.0]);
        m.learn_one(&[3.0, 4.0]);
        assert_eq!(m.shingles, 0);
        assert_eq!(m.score_one(&[5.0, 6.0]), 0.0, "no shingle learned yet");
        m.learn_one(&[5.0, 6.0]);
        assert_eq!(m.shingles, 1);
        assert_eq!(m.history, [3.0, 4.0, 5.0, 6.0]);
        let t = &m.trees[0];
        assert_eq!(t.bounds(t.root).0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // The query shingle is (3, 4, 5, 6, row): the learned shingle (1..6) is another point.
        let s = m.score_one(&[7.0, 8.0]);
        assert_eq!(s, 1.0, "a single-point tree scores another point by its count");
        assert_eq!(m.history, [3.0, 4.0, 5.0, 6.0]);
        m.learn_one(&[7.0, 8.0]);
        assert_eq!(m.history, [5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn non_finite_values_take_the_last_finite_value_of_their_feature() {
        let mut m = build(params(10, 32, 4), 2);
        for i in 0..500 {
            m.learn_one(&cloud(i));
        }
        m.learn_one(&[0.25, 0.5]);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(m.score_one(&[bad, 0.1]), m.score_one(&[0.25, 0.1]));
            assert_eq!(m.score_one(&[0.1, bad]), m.score_one(&[0.1, 0.5]));
        }
        // Huge values are clamped: scores stay finite, trees stay consistent.
        for i in 0..300 {
            let x = match i % 4 {
                0 => [f64::MAX, -f64::MAX],
                1 => [f64::NAN, 1e300],
                2 => [f64::INFINITY, f64::NAN],
                _ => cloud(i),
            };
            let s = m.score_one(&x);
            assert!(s.is_finite() && s >= 0.0, "{s}");
            m.learn_one(&x);
        }
        m.trees.iter().for_each(check_tree);
        assert!(m.score_one(&[f64::MAX, f64::MIN]).is_finite());
    }

    #[test]
    fn trees_split_among_threads_give_the_one_thread_scores_and_state() {
        // Shingles of 3, non-finite values, warm-up inside the first batch.
        let rows: Vec<f64> = (0..3_000)
            .flat_map(|i| {
                let [a, b] = cloud(i);
                [a, if i % 41 == 0 { f64::NAN } else { b }]
            })
            .collect();
        let p = RandomCutForestParams { shingle_size: 3, normalize_score: true, ..params(10, 64, 4) };
        let run = |threads| super::super::run_on_threads(threads, || build(p.clone(), 2), &rows, 2, 1_000);
        let one = run(1);
        for threads in [2, 3, 10] {
            let many = run(threads);
            assert!(many.0 == one.0, "{threads} threads: scores differ");
            assert!(many.1 == one.1, "{threads} threads: state differs");
        }
        let mut m = build(p, 2);
        let expected: Vec<u64> = rows.chunks(2).map(|r| m.score_learn_one(r).to_bits()).collect();
        assert!(expected == one.0, "the batch path differs from the one-row loop");
        assert!(one.0.iter().filter(|&&s| s != 0).count() > 2_500);
    }

    #[test]
    fn seeds_change_the_trees_and_state_round_trips() {
        let run = |seed| {
            let mut m = build(params(5, 64, seed), 2);
            (0..1_000).for_each(|i| m.learn_one(&cloud(i)));
            m
        };
        let (a, b, c) = (run(1), run(1), run(2));
        let probe = [0.3, -0.7];
        assert_eq!(a.score_one(&probe).to_bits(), b.score_one(&probe).to_bits());
        assert_ne!(a.score_one(&probe), c.score_one(&probe));
        let mut a = a;
        let mut r: RandomCutForest = postcard::from_bytes(&postcard::to_stdvec(&a).unwrap()).unwrap();
        let mut j: RandomCutForest = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        for i in 1_000..2_000 {
            let x = cloud(i * 7);
            let s = a.score_learn_one(&x);
            assert_eq!(s.to_bits(), r.score_learn_one(&x).to_bits(), "row {i}");
            assert_eq!(s.to_bits(), j.score_learn_one(&x).to_bits(), "row {i} (json)");
        }
    }
}
