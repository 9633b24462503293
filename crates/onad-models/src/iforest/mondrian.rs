//! MondrianForest: isolation scoring over online Mondrian trees (Lakshminarayanan, Roy & Teh 2014), with
//! aberrant's optional `window_size` bound.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::average_path_length;
use crate::registry::Describe;
use crate::rng::{below, unit, unit_rng};

/// Hyperparameters of [`MondrianForest`] (Python onad's names and defaults, plus aberrant's `window_size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MondrianForestParams {
    /// Number of trees, `>= 1`.
    pub n_estimators: usize,
    /// Features per tree, drawn without replacement; clipped to the number of features. `>= 1`.
    pub subspace_size: usize,
    /// The Mondrian lifetime budget (`lambda`), finite and `> 0`.
    pub lambda_: f64,
    /// Seed of the trees' generators; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
    /// aberrant 1.3.0's bound: `None` (its default) keeps every row, so the trees grow without bound; `Some(w)`,
    /// `w >= 2`, rebuilds every tree from the last `w` rows whenever the trees hold `2 w` rows.
    pub window_size: Option<usize>,
}

impl Default for MondrianForestParams {
    fn default() -> Self {
        MondrianForestParams { n_estimators: 100, subspace_size: 256, lambda_: 1.0, seed: None, window_size: None }
    }
}

/// Isolation forest of online Mondrian trees. Each tree is a Mondrian process (Lakshminarayanan, Roy &
/// Teh 2014, "Mondrian Forests: Efficient Online Random Forests", NeurIPS) over a random subspace of the
/// features, extended online one row at a time; rows are scored by their path length as in an isolation
/// forest (Liu, Ting & Zhou 2008; for Mondrian trees, Ma et al. 2020, "Isolation Mondrian Forest for Batch
/// and Online Anomaly Detection"). This follows aberrant 1.3.0's `MondrianIsolationForest`, the rewrite of
/// onad 0.3.0's `MondrianForest`, whose split rule is not a Mondrian process (see the deviations).
///
/// # Algorithm
/// Every node holds the bounding box of the rows below it, their count and a split time; leaves have the
/// split time `lambda_` (the lifetime budget). A row `x` enters at the root with parent time 0. At a node
/// with box `[l, u]` its extension is `e_j = max(l_j - x_j, 0) + max(x_j - u_j, 0)`; a time
/// `E ~ Exp(sum_j e_j)` is drawn (infinite when `x` is inside the box). If `parent time + E` comes before
/// the node's split time, a new inner node is put above the node with that split time: its dimension `j`
/// is drawn with probability `e_j / sum e`, its threshold uniformly in the gap between the box and `x_j`,
/// and its children are the old node and a new leaf holding `x`. Otherwise a leaf takes `x` into its box
/// and count, and an inner node widens its box, counts `x` and passes it to the child on its side
/// (`x_j <= threshold` goes left). Split times therefore increase down every path.
///
/// `score(x) = clip(2^(-mean_t h_t(x) / c(n)), 0, 1)` where `h_t(x) = depth + c(leaf count)` in tree `t`,
/// `n` the rows in the trees and `c` the average unsuccessful-search path of a binary search tree (with
/// `c(2) = 1`); 0.0 until two rows are learned.
///
/// With `window_size = Some(w)` the last `w` rows are kept and, whenever the trees hold `2 w` rows, every
/// tree is cleared and rebuilt from them (aberrant's scheme), so a tree holds between `w` and `2 w - 1`
/// rows. With `None`, aberrant's and onad's default, nothing is forgotten: memory grows with the
/// stream (at most `2 n - 1` nodes per tree, fewer when rows repeat).
///
/// Works on raw input, but `lambda_` is in inverse feature units: splits arrive at a rate equal to the
/// sum of a box's side lengths, so on wide raw ranges trees grow until leaves hold repeated rows only,
/// and on unit-scaled data they stay shallower. Missing (NaN) and infinite values never widen a box
/// and add no extension; at a split they go to the side they compare to (NaN and `+inf` right, `-inf`
/// left).
///
/// # Cost
/// Learning: O(n_estimators * depth * k) with `k = min(subspace_size, d)`; a rebuild costs `w` learns per
/// tree once every `w` rows, so learning stays O(depth * k) per tree amortised. Scoring:
/// O(n_estimators * depth), no allocation. Depth is O(log n) in expectation. Memory: per node `2 k`
/// values and 32 bytes; no allocation per row once the arenas have reached their largest size (with a
/// window, after the first rebuild). Each tree has its own PCG64 generator derived from `(seed, tree)`.
///
/// # Deviations from onad 0.3.0
/// - The Mondrian process itself (aberrant's rewrite): onad splits a leaf with probability
///   `1 - exp(-lambda * volume)`, which underflows on scaled data and always fires on raw data, and
///   keeps no boxes above the leaves.
/// - The score adds `c(leaf count)` to each path and normalises by `c(rows in the trees)` (aberrant);
///   onad uses bare depth and its lifetime count. The first row is learned once (onad learns it twice).
/// - `window_size` (aberrant) is added; `None` is onad's behaviour.
/// - One generator per tree (PCG64), not numpy's shared one; `seed = None` means seed 0. Features are in
///   schema order, not sorted by name. Missing values as above (onad raises `KeyError`).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MondrianForestParams;
/// let schema = Schema::shared(["latency_ms", "bytes"]).unwrap();
/// let params = MondrianForestParams { n_estimators: 25, seed: Some(3), window_size: Some(256), ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..1_000 {
///     model.learn_one(&[20.0 + (i % 13) as f64, 1_000.0 + (i % 29) as f64 * 10.0]);
/// }
/// let normal = model.score_one(&[26.0, 1_150.0]);
/// let spike = model.score_one(&[400.0, 90_000.0]);
/// assert!(spike > normal, "{spike} vs {normal}");
/// assert!((0.0..=1.0).contains(&spike) && (0.0..=1.0).contains(&normal));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "StoredForest", into = "StoredForest")]
pub struct MondrianForest {
    lambda: f64,
    /// Number of input features.
    d: usize,
    window_size: Option<usize>,
    trees: Vec<Tree>,
    /// Rows in every tree (the same for all trees).
    in_trees: u64,
    /// Rows learned in all.
    learned: u64,
    /// The last `window_size` rows, row-major, as a ring from `window_start` (empty without a window).
    window: Vec<f64>,
    window_start: usize,
    /// A tree's subspace coordinates of the row being learned.
    #[serde(skip)]
    scratch: Vec<f64>,
}

/// One Mondrian tree as an arena of nodes linked by index (a split put above a node is appended, and its
/// parent relinked).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tree {
    /// The input features of this tree's subspace.
    features: Vec<u32>,
    rng: Pcg64,
    nodes: Vec<Node>,
    /// Box minima and maxima, `k` values per node (NaN where no finite value has been seen).
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// The root node, `NONE` while the tree is empty.
    root: u32,
}

const NONE: u32 = u32::MAX;

/// A leaf (`left == NONE`) or an inner node splitting on subspace position `feature` at `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Node {
    time: f64,
    threshold: f64,
    count: u64,
    feature: u32,
    left: u32,
    right: u32,
}

/// The serialized form, checked on the way in so that damaged state is refused rather than used.
#[derive(Serialize, Deserialize)]
struct StoredForest {
    lambda: f64,
    d: usize,
    window_size: Option<usize>,
    trees: Vec<Tree>,
    in_trees: u64,
    learned: u64,
    window: Vec<f64>,
    window_start: usize,
}

impl From<MondrianForest> for StoredForest {
    fn from(m: MondrianForest) -> StoredForest {
        StoredForest {
            lambda: m.lambda,
            d: m.d,
            window_size: m.window_size,
            trees: m.trees,
            in_trees: m.in_trees,
            learned: m.learned,
            window: m.window,
            window_start: m.window_start,
        }
    }
}

impl TryFrom<StoredForest> for MondrianForest {
    type Error = String;
    fn try_from(s: StoredForest) -> Result<MondrianForest, String> {
        if !(s.lambda.is_finite() && s.lambda > 0.0) || s.d == 0 || s.trees.is_empty() {
            return Err(format!("MondrianForest: lambda {}, {} features, {} trees", s.lambda, s.d, s.trees.len()));
        }
        if let Some(w) = s.window_size {
            let rows = s.window.len() / s.d;
            if w < 2 || !s.window.len().is_multiple_of(s.d) || rows > w || (rows > 0 && s.window_start >= rows) {
                return Err(format!("MondrianForest: a window of {} values for window_size {w}", s.window.len()));
            }
        } else if !s.window.is_empty() {
            return Err("MondrianForest: window rows without a window_size".into());
        }
        for (t, tree) in s.trees.iter().enumerate() {
            tree.check(s.d).map_err(|e| format!("MondrianForest tree {t}: {e}"))?;
        }
        Ok(MondrianForest {
            lambda: s.lambda,
            d: s.d,
            window_size: s.window_size,
            trees: s.trees,
            in_trees: s.in_trees,
            learned: s.learned,
            window: s.window,
            window_start: s.window_start,
            scratch: Vec::new(),
        })
    }
}

impl DetectorParams for MondrianForestParams {
    type Model = MondrianForest;
    fn build(&self, schema: &SchemaRef) -> Result<MondrianForest, ParamError> {
        if self.n_estimators == 0 {
            return Err(ParamError::invalid("n_estimators", "must be at least 1, got 0"));
        }
        if self.subspace_size == 0 {
            return Err(ParamError::invalid("subspace_size", "must be at least 1, got 0"));
        }
        if !(self.lambda_.is_finite() && self.lambda_ > 0.0) {
            return Err(ParamError::invalid("lambda_", format!("must be finite and > 0, got {}", self.lambda_)));
        }
        if let Some(w) = self.window_size
            && !(2..=1 << 30).contains(&w)
        {
            return Err(ParamError::invalid("window_size", format!("must be between 2 and 2^30, got {w}")));
        }
        let d = schema.len();
        if d == 0 || d >= u32::MAX as usize {
            return Err(ParamError::Schema(format!("MondrianForest needs 1 to 2^32 - 2 features, got {d}")));
        }
        let k = self.subspace_size.min(d);
        let seed = self.seed.unwrap_or(0);
        let mut all: Vec<u32> = (0..d as u32).collect();
        let trees = (0..self.n_estimators)
            .map(|t| {
                let mut rng = unit_rng(seed, t as u64);
                // A partial Fisher-Yates shuffle draws k features without replacement.
                for i in 0..k {
                    let j = i + below(&mut rng, d - i);
                    all.swap(i, j);
                }
                Tree { features: all[..k].to_vec(), rng, nodes: Vec::new(), lo: Vec::new(), hi: Vec::new(), root: NONE }
            })
            .collect();
        Ok(MondrianForest {
            lambda: self.lambda_,
            d,
            window_size: self.window_size,
            trees,
            in_trees: 0,
            learned: 0,
            window: Vec::new(),
            window_start: 0,
            scratch: Vec::new(),
        })
    }
}

/// A finite value as is; NaN for a missing or infinite one (it then never enters a box).
#[inline]
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { f64::NAN }
}

/// How far `v` lies outside `[lo, hi]` (0 inside, for NaN, or for an empty side).
#[inline]
fn extension(lo: f64, hi: f64, v: f64) -> f64 {
    let e = (lo - v).max(0.0) + (v - hi).max(0.0);
    if e.is_nan() { 0.0 } else { e }
}

impl Tree {
    fn k(&self) -> usize {
        self.features.len()
    }

    fn clear(&mut self) {
        self.nodes.clear();
        self.lo.clear();
        self.hi.clear();
        self.root = NONE;
    }

    /// Appends a leaf holding the row `xs` (this tree's subspace coordinates), returns its index.
    fn push_leaf(&mut self, xs: &[f64], lambda: f64) -> u32 {
        let at = self.nodes.len() as u32;
        self.nodes.push(Node { time: lambda, threshold: 0.0, count: 1, feature: 0, left: NONE, right: NONE });
        self.lo.extend(xs.iter().map(|&v| finite(v)));
        self.hi.extend(xs.iter().map(|&v| finite(v)));
        at
    }

    /// The sum of the extensions of node `n`'s box to `xs`, and whether taking `xs` in would change the box
    /// (a finite value outside it, or on a side no finite value reached yet).
    #[inline]
    fn rate(&self, n: usize, xs: &[f64]) -> (f64, bool) {
        let k = xs.len();
        let (lo, hi) = (&self.lo[n * k..(n + 1) * k], &self.hi[n * k..(n + 1) * k]);
        let mut rate = 0.0;
        let mut widens = false;
        for ((&l, &h), &v) in lo.iter().zip(hi).zip(xs) {
            rate += extension(l, h, v);
            widens |= v.is_finite() && !(l <= v && v <= h);
        }
        (rate, widens)
    }

    /// Widens node `n`'s box to hold `xs`.
    fn widen(&mut self, n: usize, xs: &[f64]) {
        let k = xs.len();
        let (lo, hi) = (&mut self.lo[n * k..(n + 1) * k], &mut self.hi[n * k..(n + 1) * k]);
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(xs) {
            if v.is_finite() {
                // f64::min / max ignore a NaN (empty) side.
                *l = l.min(v);
                *h = h.max(v);
            }
        }
    }

    /// Gathers this tree's subspace coordinates of the input row `x` into `xs`.
    fn gather(&self, x: &[f64], xs: &mut Vec<f64>) {
        xs.clear();
        xs.extend(self.features.iter().map(|&f| x[f as usize]));
    }

    /// Online Mondrian extension of the tree by the row whose subspace coordinates are `xs`.
    fn learn(&mut self, xs: &[f64], lambda: f64) {
        if self.root == NONE {
            self.root = self.push_leaf(xs, lambda);
            return;
        }
        let k = self.k();
        // Where the current node hangs: its parent and side, NONE for the root.
        let mut parent = NONE;
        let mut went_left = false;
        let mut at = self.root as usize;
        let mut parent_time = 0.0;
        loop {
            let (rate, widens) = self.rate(at, xs);
            let node = self.nodes[at];
            let mut e = f64::INFINITY;
            if rate > 0.0 {
                // Exp(rate) by inversion; an infinite rate gives 0.
                e = -(1.0 - unit(&mut self.rng)).ln() / rate;
            }
            if parent_time + e < node.time {
                // Dimension with probability proportional to its extension.
                let mut j = self.pick_dimension(at, xs, rate);
                let (lo, hi) = (self.lo[at * k + j], self.hi[at * k + j]);
                if extension(lo, hi, xs[j]) == 0.0 {
                    // Only reachable through rounding; take the first extended dimension.
                    j = (0..k).find(|&i| extension(self.lo[at * k + i], self.hi[at * k + i], xs[i]) > 0.0).unwrap_or(j);
                }
                let (lo, hi) = (self.lo[at * k + j], self.hi[at * k + j]);
                let v = xs[j];
                let u = unit(&mut self.rng);
                // Uniform in the gap, as a convex combination so that it stays finite.
                let threshold = if v > hi { hi + (v - hi) * u } else { v + (lo - v) * u };
                let threshold = if threshold.is_finite() {
                    threshold
                } else if v > hi {
                    hi
                } else {
                    v
                };
                let leaf = self.push_leaf(xs, lambda);
                let branch = self.nodes.len() as u32;
                let (left, right) = if v <= threshold { (leaf, at as u32) } else { (at as u32, leaf) };
                self.nodes.push(Node {
                    time: parent_time + e,
                    threshold,
                    count: node.count + 1,
                    feature: j as u32,
                    left,
                    right,
                });
                self.lo.extend_from_within(at * k..(at + 1) * k);
                self.hi.extend_from_within(at * k..(at + 1) * k);
                self.widen(branch as usize, xs);
                if parent == NONE {
                    self.root = branch;
                } else if went_left {
                    self.nodes[parent as usize].left = branch;
                } else {
                    self.nodes[parent as usize].right = branch;
                }
                return;
            }
            if widens {
                self.widen(at, xs);
            }
            self.nodes[at].count += 1;
            if node.left == NONE {
                return;
            }
            went_left = xs[node.feature as usize] <= node.threshold;
            parent = at as u32;
            parent_time = node.time;
            at = if went_left { node.left } else { node.right } as usize;
        }
    }

    /// A subspace position drawn with probability proportional to its extension (`rate` is their sum).
    fn pick_dimension(&mut self, n: usize, xs: &[f64], rate: f64) -> usize {
        let k = self.k();
        let ext = |t: &Tree, i: usize| extension(t.lo[n * k + i], t.hi[n * k + i], xs[i]);
        if !rate.is_finite() {
            return (0..k).find(|&i| ext(self, i) == f64::INFINITY).unwrap_or(0);
        }
        let offset = unit(&mut self.rng) * rate;
        let mut cumulative = 0.0;
        let mut last = 0;
        for i in 0..k {
            let w = ext(self, i);
            if w > 0.0 {
                cumulative += w;
                last = i;
                if offset < cumulative {
                    return i;
                }
            }
        }
        last
    }

    /// `depth + c(leaf count)` of `x`'s leaf; 0 for an empty tree.
    fn path(&self, x: &[f64]) -> f64 {
        if self.root == NONE {
            return 0.0;
        }
        let mut at = self.root as usize;
        let mut depth = 0u32;
        loop {
            let n = &self.nodes[at];
            if n.left == NONE {
                return f64::from(depth) + average_path_length(n.count.min(usize::MAX as u64) as usize);
            }
            depth += 1;
            at = if x[self.features[n.feature as usize] as usize] <= n.threshold { n.left } else { n.right } as usize;
        }
    }

    /// Checks a decoded tree: lengths, indices, and that the links form a tree (so descents end).
    fn check(&self, d: usize) -> Result<(), String> {
        let k = self.k();
        let len = self.nodes.len();
        if k == 0 || self.features.iter().any(|&f| f as usize >= d) {
            return Err(format!("{k} features, some beyond {d}"));
        }
        if self.lo.len() != len * k || self.hi.len() != len * k || len >= NONE as usize {
            return Err(format!("{len} nodes with {} and {} box values", self.lo.len(), self.hi.len()));
        }
        if (self.root == NONE) != (len == 0) || (self.root != NONE && self.root as usize >= len) {
            return Err(format!("root {} of {len} nodes", self.root));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let leaf = n.left == NONE && n.right == NONE;
            let inner = (n.left as usize) < len && (n.right as usize) < len && (n.feature as usize) < k;
            if !(leaf || inner) || n.time.is_nan() || n.threshold.is_nan() {
                return Err(format!("node {i} of {len}: {n:?}"));
            }
        }
        // Every node is reached from the root at most once, so the nodes form a tree and descents end.
        if len > 0 {
            let mut seen = vec![false; len];
            let mut stack = vec![self.root as usize];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut seen[i], true) {
                    return Err(format!("node {i} is reached twice"));
                }
                let n = &self.nodes[i];
                if n.left != NONE {
                    stack.push(n.left as usize);
                    stack.push(n.right as usize);
                }
            }
        }
        Ok(())
    }
}

impl MondrianForest {
    /// Inserts one row into every tree.
    fn insert(&mut self, x: &[f64]) {
        let mut xs = std::mem::take(&mut self.scratch);
        for tree in &mut self.trees {
            tree.gather(x, &mut xs);
            tree.learn(&xs, self.lambda);
        }
        self.scratch = xs;
        self.in_trees += 1;
    }

    /// Nodes in each tree (for tests and memory estimates).
    pub fn tree_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.trees.iter().map(|t| t.nodes.len())
    }

    /// Rows the trees currently hold.
    pub fn rows_in_trees(&self) -> u64 {
        self.in_trees
    }
}

impl Detector for MondrianForest {
    fn learn_one(&mut self, x: &[f64]) {
        self.insert(x);
        self.learned += 1;
        let Some(w) = self.window_size else { return };
        let d = self.d;
        if self.window.len() < w * d {
            self.window.extend_from_slice(x);
        } else {
            let s = self.window_start * d;
            self.window[s..s + d].copy_from_slice(x);
            self.window_start = (self.window_start + 1) % w;
        }
        if self.in_trees >= 2 * w as u64 {
            let window = std::mem::take(&mut self.window);
            let rows = window.len() / d;
            for tree in &mut self.trees {
                tree.clear();
            }
            self.in_trees = 0;
            for r in 0..rows {
                let at = (self.window_start + r) % rows;
                self.insert(&window[at * d..(at + 1) * d]);
            }
            self.window = window;
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.learned <= 1 {
            return 0.0;
        }
        let total: f64 = self.trees.iter().map(|t| t.path(x)).sum();
        let mean = total / self.trees.len() as f64;
        let c = average_path_length(self.in_trees.min(usize::MAX as u64) as usize);
        if c <= 0.0 {
            return 0.0;
        }
        let s = (-mean / c).exp2();
        if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) }
    }
}

impl Describe for MondrianForestParams {
    const REFERENCE: &'static str = "Lakshminarayanan, Roy & Teh 2014, Mondrian Forests: Efficient Online Random Forests (NeurIPS); scored by isolation depth as in aberrant";
    const SUMMARY: &'static str =
        "isolation scores over online Mondrian trees (real Mondrian process), optionally rebuilt over a window";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "n_estimators", ty: "int >= 1", required: false, help: "trees (default 100)" },
        ParamDoc {
            name: "subspace_size",
            ty: "int >= 1",
            required: false,
            help: "features per tree, clipped to the number of features (default 256)",
        },
        ParamDoc {
            name: "lambda_",
            ty: "float > 0",
            required: false,
            help: "Mondrian lifetime budget, in inverse feature units (default 1.0)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the trees (default 0)" },
        ParamDoc {
            name: "window_size",
            ty: "int >= 2",
            required: false,
            help: "rebuild the trees from the last window_size rows every window_size rows (default none: unbounded)",
        },
    ];
    fn example() -> Self {
        MondrianForestParams {
            n_estimators: 100,
            subspace_size: 256,
            lambda_: 1.0,
            seed: Some(42),
            window_size: Some(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;
    use rand_core::SeedableRng;

    fn build(n_estimators: usize, lambda: f64, window: Option<usize>, d: usize) -> MondrianForest {
        MondrianForestParams { n_estimators, subspace_size: 256, lambda_: lambda, seed: Some(5), window_size: window }
            .build(&Schema::numbered("f", d))
            .unwrap()
    }

    fn stream(n: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = Pcg64::seed_from_u64(seed);
        (0..n).map(|_| (0..d).map(|j| unit(&mut rng) * (j + 1) as f64).collect()).collect()
    }

    #[test]
    fn split_times_increase_down_every_path_and_boxes_nest() {
        let mut m = build(5, 5.0, None, 3);
        for x in stream(500, 3, 1) {
            m.learn_one(&x);
        }
        for t in &m.trees {
            let k = t.k();
            let mut inner = 0;
            for (i, n) in t.nodes.iter().enumerate() {
                if n.left == NONE {
                    assert_eq!(n.time, 5.0);
                    continue;
                }
                inner += 1;
                for c in [n.left as usize, n.right as usize] {
                    assert!(t.nodes[c].time > n.time, "{} <= {}", t.nodes[c].time, n.time);
                    for j in 0..k {
                        assert!(t.lo[c * k + j] >= t.lo[i * k + j] && t.hi[c * k + j] <= t.hi[i * k + j]);
                    }
                }
                assert_eq!(n.count, t.nodes[n.left as usize].count + t.nodes[n.right as usize].count);
                let j = n.feature as usize;
                assert!(t.hi[n.left as usize * k + j] <= n.threshold && t.lo[n.right as usize * k + j] > n.threshold);
            }
            assert!(inner > 10, "{inner}");
            assert_eq!(t.nodes[t.root as usize].count, 500);
        }
    }

    #[test]
    fn split_dimension_is_drawn_in_proportion_to_extension() {
        // A one-point box at the origin, extended by (1, 3): dimension 1 should be drawn 3/4 of the time.
        let mut tree = build(1, 1.0, None, 2).trees.remove(0);
        tree.learn(&[0.0, 0.0], 1.0);
        let at = tree.root as usize;
        let x = [1.0, 3.0];
        let draws = 20_000;
        let features = tree.features.clone();
        let first = (0..draws).filter(|_| features[tree.pick_dimension(at, &x, 4.0)] == 1).count();
        let share = first as f64 / draws as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
        // A dimension without extension is never drawn.
        let x = [0.0, 3.0];
        assert!((0..1000).all(|_| features[tree.pick_dimension(at, &x, 3.0)] == 1));
    }

    #[test]
    fn the_window_bounds_the_trees() {
        let w = 64;
        let mut m = build(4, 50.0, Some(w), 2);
        for (i, x) in stream(1_000, 2, 2).iter().enumerate() {
            m.learn_one(x);
            assert!(m.rows_in_trees() < 2 * w as u64 && (i < w || m.rows_in_trees() >= w as u64), "{i}");
            assert!(m.tree_sizes().all(|s| s < 4 * w), "{i}");
        }
        let mut unbounded = build(4, 50.0, None, 2);
        for x in stream(1_000, 2, 2) {
            unbounded.learn_one(&x);
        }
        assert!(unbounded.tree_sizes().all(|s| s > 4 * w));
    }

    #[test]
    fn outliers_score_higher_on_raw_data() {
        let mut m = build(50, 1.0, Some(256), 2);
        for i in 0..2_000 {
            m.learn_one(&[100.0 + (i % 17) as f64, 5_000.0 + (i % 31) as f64 * 20.0]);
        }
        let normal = m.score_one(&[108.0, 5_300.0]);
        let outlier = m.score_one(&[900.0, 60_000.0]);
        assert!(outlier > normal + 0.1, "{outlier} vs {normal}");
    }

    #[test]
    fn scoring_is_finite_and_leaves_state_alone() {
        let mut m = build(8, 1.0, Some(16), 3);
        assert_eq!(m.score_one(&[1.0, 2.0, 3.0]), 0.0);
        for x in [[f64::NAN, 1.0, 2.0], [f64::INFINITY, 1.0, f64::NEG_INFINITY], [1e308, -1e308, 0.0], [0.0, 0.0, 0.0]]
        {
            for _ in 0..20 {
                m.learn_one(&x);
            }
            let before = postcard::to_stdvec(&m).unwrap();
            let s = m.score_one(&x);
            assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{s}");
            assert_eq!(before, postcard::to_stdvec(&m).unwrap());
        }
    }

    #[test]
    fn state_round_trips_and_damage_is_refused() {
        let mut m = build(3, 1.0, Some(8), 2);
        let rows = stream(40, 2, 3);
        for x in &rows[..25] {
            m.learn_one(x);
        }
        let bytes = postcard::to_stdvec(&m).unwrap();
        let mut back: MondrianForest = postcard::from_bytes(&bytes).unwrap();
        for x in &rows[25..] {
            assert_eq!(m.score_one(x).to_bits(), back.score_one(x).to_bits());
            m.learn_one(x);
            back.learn_one(x);
        }
        // Every truncation and every single-byte change either fails to decode or gives a usable model.
        let bytes = postcard::to_stdvec(&m).unwrap();
        for cut in 0..bytes.len() {
            assert!(postcard::from_bytes::<MondrianForest>(&bytes[..cut]).is_err() || cut == bytes.len());
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x5a;
            if let Ok(mut d) = postcard::from_bytes::<MondrianForest>(&damaged) {
                for x in &rows {
                    assert!(d.score_one(x).is_finite());
                }
                // Learning may meet a damaged but structurally valid state; it must not panic.
                if d.window_size.is_none_or(|w| w < 1 << 16) && d.in_trees < 1 << 16 {
                    d.learn_one(&rows[0]);
                }
            }
        }
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        let bad = [
            MondrianForestParams { n_estimators: 0, ..Default::default() },
            MondrianForestParams { subspace_size: 0, ..Default::default() },
            MondrianForestParams { lambda_: 0.0, ..Default::default() },
            MondrianForestParams { lambda_: f64::NAN, ..Default::default() },
            MondrianForestParams { window_size: Some(1), ..Default::default() },
        ];
        for (p, name) in bad.iter().zip(["n_estimators", "subspace_size", "lambda_", "lambda_", "window_size"]) {
            let e = p.build(&schema).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        let m = MondrianForestParams { subspace_size: 5, ..Default::default() }.build(&schema).unwrap();
        assert!(m.trees.iter().all(|t| t.k() == 2 && t.features[0] != t.features[1]));
    }
}
