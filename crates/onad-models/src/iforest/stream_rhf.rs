//! STREamRHF: random histogram trees that split on features drawn by kurtosis, grown from a window and
//! updated by insertion (aberrant's `StreamRandomHistogramForest`, not onad's histogram forest).

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::rng::{unit, unit_rng};

/// Hyperparameters of [`StreamRHF`] (aberrant 1.3.0 `StreamRandomHistogramForest` names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamRHFParams {
    /// Number of trees, `>= 1`.
    pub n_estimators: usize,
    /// Depth limit of a tree, 1 to 30.
    pub max_depth: usize,
    /// Rows of the first window and of every later window that rebuilds the forest, `>= 2`.
    pub window_size: usize,
    /// Seed of the trees' random quantiles; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
}

impl Default for StreamRHFParams {
    fn default() -> Self {
        StreamRHFParams { n_estimators: 25, max_depth: 5, window_size: 256, seed: None }
    }
}

/// STREamRHF (Nesic, Putina, Bahri & Leduc 2022, "STREamRHF: Tree-based unsupervised anomaly detection for
/// data streams", AICCSA), as aberrant 1.3.0's `StreamRandomHistogramForest` implements it after the
/// authors' code: a forest of random histogram trees whose split features are drawn in proportion to
/// `ln(kurtosis + 1)`, so heavy-tailed features (where outliers live) are split first. Registered as
/// `stream_rhf`; onad's own `stream_random_histogram_forest` is a different model (per-feature
/// histograms).
///
/// # Algorithm
/// - Every node keeps, for each feature, its count, mean and central moment sums `M2, M3, M4` (the online
///   update of Terriberry / Pébay), and two fixed uniforms in (0, 1) that depend only on the tree and the
///   node's position (heap numbering: the root is 0, the children of `i` are `2i + 1`, `2i + 2`), so a
///   rebuilt node draws the same quantiles.
/// - Split feature: with weights `w_f = ln(1 + n M4_f / M2_f^2)` (0 when `M2_f` or `M4_f` is 0), the
///   first feature whose running sum of weights reaches `u1 * sum_f w_f`; no split when every weight is 0.
///   Split value `min + u2 (max - min)` of that feature over the node's rows; rows `<= value` go left. A
///   node is a leaf at `max_depth`, with at most one row, without a split feature, on a constant feature,
///   or when one side would be empty.
/// - The first `window_size` learned rows build the forest (every tree from all of them). Each later row
///   is inserted in every tree: at an inner node the moments are updated; if the split feature they now
///   select differs from the node's, the subtree is rebuilt from its rows plus the new one, else the row
///   descends; at a leaf the leaf is rebuilt from its rows plus the new one (it may split). The rows
///   inserted since the forest was built form the current window; when it holds `window_size` rows, the
///   forest is rebuilt from it alone.
/// - Score: `sum_trees ln((n + 1) / leaf_size)`, where `n` is the number of rows in the trees and
///   `leaf_size` the size of the leaf the row would reach if it were inserted now. The insertion is
///   previewed without copying or changing the tree: the path is followed while the split feature stays,
///   and where it would change (or at a leaf) the rows of that subtree are only partitioned along the
///   row's own path, level by level, as the rebuild would split them. 0.0 before the first window.
///
/// Works on raw data: splits lie inside each node's observed range and the kurtosis is scale-free. Missing
/// values: a non-finite value is left out of its feature's moments and ranges (each feature has its own
/// count); at a split a NaN goes right, infinities to their side.
///
/// # Cost
/// Scoring and learning a row: `O(n_estimators * max_depth * d)` (the moments and weights at each node of
/// the path, one logarithm per feature and node), plus a partial rebuild where the split feature changes:
/// `O(rows in the subtree * d)` per level of it. Every `window_size` rows the forest is rebuilt,
/// `O(n_estimators * max_depth * window_size * d)`. `score_learn_one` scores from the insertion itself (the
/// previewed and the real insertion compute the same leaf), one descent per tree instead of two. Memory:
/// the rows of the reference and the current window (at most `2 window_size` rows, stored once for all
/// trees, which hold indices), and per tree at most `2^(max_depth + 1) - 1` nodes, an inner node holding
/// `5 d` moments.
///
/// # Deviations from aberrant
/// - The node quantiles come from PCG64 generators seeded per `(seed, tree, node)`, not numpy's
///   `SeedSequence`, so trees differ for the same seed; `seed = None` means 0. Features in schema order,
///   not sorted by name.
/// - Non-finite values are accepted as above (aberrant rejects them). Moments that overflow (values beyond
///   about 1e77, whose fourth powers do not fit a double) give their feature the largest weight,
///   `ln(1 + f64::MAX)`, where numpy's NaN would make aberrant's choice arbitrary: such a value is the
///   heaviest tail, and splitting on it isolates it. The kurtosis is computed as `n (M4 / M2) / M2`.
/// - `max_depth` is capped at 30 (the node numbering fits 32 bits; a tree of a bounded window is far
///   shallower).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::StreamRHFParams;
/// let schema = Schema::shared(["latency_ms", "bytes"]).unwrap();
/// let params = StreamRHFParams { window_size: 128, seed: Some(7), ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..1_000 {
///     model.learn_one(&[20.0 + (i % 13 + i % 7) as f64, 1_000.0 + (i % 29 + i % 11) as f64 * 10.0]);
/// }
/// let normal = model.score_one(&[29.0, 1_200.0]);
/// let spike = model.score_one(&[400.0, 90_000.0]);
/// assert!(spike > normal + 10.0, "{spike} vs {normal}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamRHF {
    n_estimators: usize,
    max_depth: u32,
    window_size: usize,
    seed: u64,
    d: usize,
    /// The rows in the trees (or, before the first forest, the first window), row-major.
    rows: Vec<f64>,
    /// Rows the forest was built from; the rows after them are the current window.
    built_from: usize,
    trees: Vec<Tree>,
}

/// One tree: an arena of nodes, slot 0 the root, free slots reused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Node {
    /// Heap number (root 0, children `2i + 1` and `2i + 2`): what the node's quantiles depend on.
    id: u32,
    depth: u32,
    /// The fixed uniforms of feature choice and split value.
    u: (f64, f64),
    kind: Kind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Kind {
    /// Indices of the rows in the leaf, in insertion order.
    Leaf(Vec<u32>),
    /// Rows with `x[feature] <= value` go to `left`; `moments` holds `[n, mean, M2, M3, M4]` per feature.
    Branch { feature: u32, value: f64, left: u32, right: u32, moments: Vec<[f64; 5]> },
}

/// The weight of a feature whose kurtosis is not finite: `ln(1 + f64::MAX)`.
const MAX_WEIGHT: f64 = 709.782_712_893_384;

/// The stand-in index of the row being scored (not stored).
const CANDIDATE: u32 = u32::MAX;

impl DetectorParams for StreamRHFParams {
    type Model = StreamRHF;
    fn build(&self, schema: &SchemaRef) -> Result<StreamRHF, ParamError> {
        if !(1..=1 << 20).contains(&self.n_estimators) {
            return Err(ParamError::invalid(
                "n_estimators",
                format!("must be between 1 and 2^20, got {}", self.n_estimators),
            ));
        }
        if !(1..=30).contains(&self.max_depth) {
            return Err(ParamError::invalid("max_depth", format!("must be between 1 and 30, got {}", self.max_depth)));
        }
        // Row indices are u32 and the trees hold up to two windows.
        if !(2..=1 << 30).contains(&self.window_size) {
            return Err(ParamError::invalid(
                "window_size",
                format!("must be between 2 and 2^30, got {}", self.window_size),
            ));
        }
        let d = schema.len();
        if d == 0 || d > u32::MAX as usize {
            return Err(ParamError::Schema(format!("STREamRHF needs 1 to 2^32 - 1 features, got {d}")));
        }
        Ok(StreamRHF {
            n_estimators: self.n_estimators,
            max_depth: self.max_depth as u32,
            window_size: self.window_size,
            seed: self.seed.unwrap_or(0),
            d,
            rows: Vec::new(),
            built_from: 0,
            trees: Vec::new(),
        })
    }
}

/// Adds `v` to one feature's `[n, mean, M2, M3, M4]` (non-finite values are left out).
#[inline]
fn add_moment(m: &mut [f64; 5], v: f64) {
    if !v.is_finite() {
        return;
    }
    let [n0, mean, m2, m3, m4] = *m;
    let n = n0 + 1.0;
    let delta = v - mean;
    let delta_n = delta / n;
    let delta_n2 = delta_n * delta_n;
    let term = delta * delta_n * n0;
    m[0] = n;
    m[1] = mean + delta_n;
    m[4] = m4 + term * delta_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * delta_n2 * m2 - 4.0 * delta_n * m3;
    m[3] = m3 + term * delta_n * (n - 2.0) - 3.0 * delta_n * m2;
    m[2] = m2 + term;
}

/// `ln(1 + kurtosis)` of one feature's `[n, mean, M2, M3, M4]` (0 when `M2` or `M4` is 0).
#[inline]
fn weight(m: &[f64; 5]) -> f64 {
    let [n, _, m2, _, m4] = *m;
    if m2 == 0.0 || m4 == 0.0 {
        return 0.0;
    }
    // In this order the quotients stay in range where `m2 * m2` would overflow or underflow.
    let k = n * (m4 / m2) / m2;
    if k.is_finite() {
        if k > 0.0 { k.ln_1p() } else { 0.0 }
    } else {
        // Moments that overflowed (values beyond about 1e77): the heaviest tail there is.
        MAX_WEIGHT
    }
}

thread_local! {
    /// The weights of `select`, reused (one logarithm per feature, not two).
    static WEIGHTS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// Updated moments of an insertion, reused.
    static MOMENTS: RefCell<Vec<[f64; 5]>> = const { RefCell::new(Vec::new()) };
}

/// The split feature the moments select with the uniform `u`: the first feature whose running sum of
/// `ln(1 + kurtosis)` reaches `u` times the total; `None` when every weight is 0.
fn select(moments: &[[f64; 5]], u: f64) -> Option<u32> {
    WEIGHTS.with(|w| {
        let mut w = w.borrow_mut();
        w.clear();
        w.extend(moments.iter().map(weight));
        let total: f64 = w.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return None;
        }
        let target = u * total;
        let mut sum = 0.0;
        for (f, &x) in w.iter().enumerate() {
            sum += x;
            if sum >= target {
                return Some(f as u32);
            }
        }
        Some(moments.len() as u32 - 1)
    })
}

/// Whether a row with `v` in the split feature goes left.
#[inline]
fn goes_left(v: f64, value: f64) -> bool {
    v <= value
}

/// Read access to rows by index, the candidate included.
struct Rows<'a> {
    rows: &'a [f64],
    d: usize,
    candidate: &'a [f64],
}

impl Rows<'_> {
    #[inline]
    fn get(&self, i: u32) -> &[f64] {
        if i == CANDIDATE { self.candidate } else { &self.rows[i as usize * self.d..(i as usize + 1) * self.d] }
    }
}

/// What a node of these rows at this depth would be: `None` for a leaf, else the split.
fn split_of(rows: &Rows, set: &[u32], depth: u32, max_depth: u32, u: (f64, f64)) -> Option<Split> {
    if set.len() <= 1 || depth >= max_depth {
        return None;
    }
    let mut moments = vec![[0.0; 5]; rows.d];
    for &i in set {
        for (m, &v) in moments.iter_mut().zip(rows.get(i)) {
            add_moment(m, v);
        }
    }
    let f = select(&moments, u.0)? as usize;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &i in set {
        let v = rows.get(i)[f];
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if lo >= hi {
        return None;
    }
    let width = hi - lo;
    let value = if width.is_finite() { lo + u.1 * width } else { lo * (1.0 - u.1) + hi * u.1 };
    let n_left = set.iter().filter(|&&i| goes_left(rows.get(i)[f], value)).count();
    if n_left == 0 || n_left == set.len() {
        return None;
    }
    Some(Split { feature: f as u32, value, moments })
}

struct Split {
    feature: u32,
    value: f64,
    moments: Vec<[f64; 5]>,
}

/// The fixed uniforms in (0, 1) of node `id` of tree `tree`.
fn node_uniforms(seed: u64, tree: usize, id: u32) -> (f64, f64) {
    let mut rng = unit_rng(seed, ((tree as u64) << 32) | u64::from(id));
    let mut draw = || loop {
        let u = unit(&mut rng);
        if u > 0.0 {
            return u;
        }
    };
    let a = draw();
    (a, draw())
}

/// Builds and edits one tree.
struct Builder<'a> {
    rows: Rows<'a>,
    max_depth: u32,
    seed: u64,
    tree_index: usize,
}

impl Builder<'_> {
    fn alloc(&self, tree: &mut Tree, node: Node) -> u32 {
        if let Some(at) = tree.free.pop() {
            tree.nodes[at as usize] = node;
            at
        } else {
            tree.nodes.push(node);
            (tree.nodes.len() - 1) as u32
        }
    }

    /// Fills slot `at` with the subtree of `set` (node `id` at `depth`).
    fn build(&self, tree: &mut Tree, at: u32, set: Vec<u32>, depth: u32, id: u32, u: (f64, f64)) {
        let Some(split) = split_of(&self.rows, &set, depth, self.max_depth, u) else {
            tree.nodes[at as usize] = Node { id, depth, u, kind: Kind::Leaf(set) };
            return;
        };
        let f = split.feature as usize;
        let (left_set, right_set): (Vec<u32>, Vec<u32>) =
            set.iter().partition(|&&i| goes_left(self.rows.get(i)[f], split.value));
        let (lid, rid) = (2 * id + 1, 2 * id + 2);
        let (lu, ru) = (node_uniforms(self.seed, self.tree_index, lid), node_uniforms(self.seed, self.tree_index, rid));
        let placeholder = |id, u| Node { id, depth: depth + 1, u, kind: Kind::Leaf(Vec::new()) };
        let left = self.alloc(tree, placeholder(lid, lu));
        let right = self.alloc(tree, placeholder(rid, ru));
        tree.nodes[at as usize] = Node {
            id,
            depth,
            u,
            kind: Kind::Branch { feature: split.feature, value: split.value, left, right, moments: split.moments },
        };
        self.build(tree, left, left_set, depth + 1, lid, lu);
        self.build(tree, right, right_set, depth + 1, rid, ru);
    }

    /// Appends the rows under `at` to `out` (left before right) and frees the nodes below `at`.
    fn collect(&self, tree: &mut Tree, at: u32, out: &mut Vec<u32>, free_self: bool) {
        let kind = std::mem::replace(&mut tree.nodes[at as usize].kind, Kind::Leaf(Vec::new()));
        match kind {
            Kind::Leaf(set) => out.extend(set),
            Kind::Branch { left, right, .. } => {
                self.collect(tree, left, out, true);
                self.collect(tree, right, out, true);
            }
        }
        if free_self {
            tree.free.push(at);
        }
    }

    /// Inserts row `r`; returns the size of the leaf it lands in.
    fn insert(&self, tree: &mut Tree, r: u32) -> usize {
        let x = self.rows.get(r);
        let mut at = 0u32;
        loop {
            let node = &mut tree.nodes[at as usize];
            let (id, depth, u) = (node.id, node.depth, node.u);
            match &mut node.kind {
                Kind::Leaf(set) => {
                    set.push(r);
                    if depth < self.max_depth {
                        let set = std::mem::take(set);
                        self.build(tree, at, set, depth, id, u);
                        return leaf_size_from(tree, at, x);
                    }
                    return set.len();
                }
                Kind::Branch { feature, value, left, right, moments } => {
                    let same = MOMENTS.with(|scratch| {
                        let mut updated = scratch.borrow_mut();
                        updated.clear();
                        updated.extend_from_slice(moments);
                        for (m, &v) in updated.iter_mut().zip(x) {
                            add_moment(m, v);
                        }
                        let same = select(&updated, u.0) == Some(*feature);
                        if same {
                            moments.copy_from_slice(&updated);
                        }
                        same
                    });
                    if !same {
                        let mut set = Vec::new();
                        self.collect(tree, at, &mut set, false);
                        set.push(r);
                        self.build(tree, at, set, depth, id, u);
                        return leaf_size_from(tree, at, x);
                    }
                    at = if goes_left(x[*feature as usize], *value) { *left } else { *right };
                }
            }
        }
    }
}

/// The size of the leaf `x` reaches from node `at`.
fn leaf_size_from(tree: &Tree, mut at: u32, x: &[f64]) -> usize {
    loop {
        match &tree.nodes[at as usize].kind {
            Kind::Leaf(set) => return set.len(),
            Kind::Branch { feature, value, left, right, .. } => {
                at = if goes_left(x[*feature as usize], *value) { *left } else { *right };
            }
        }
    }
}

/// Appends the rows under `at` to `out`, left before right (the order a rebuild sees them in).
fn rows_under(tree: &Tree, at: u32, out: &mut Vec<u32>) {
    match &tree.nodes[at as usize].kind {
        Kind::Leaf(set) => out.extend_from_slice(set),
        Kind::Branch { left, right, .. } => {
            rows_under(tree, *left, out);
            rows_under(tree, *right, out);
        }
    }
}

impl StreamRHF {
    /// Rows in the trees now (0 before the first forest).
    pub fn forest_size(&self) -> usize {
        if self.trees.is_empty() { 0 } else { self.rows.len() / self.d }
    }

    /// The builder of tree `tree_index` over the stored rows (learning has no candidate row).
    fn builder(&self, tree_index: usize) -> Builder<'_> {
        let rows = Rows { rows: &self.rows, d: self.d, candidate: &[] };
        Builder { rows, max_depth: self.max_depth, seed: self.seed, tree_index }
    }

    /// Builds every tree from all the stored rows.
    fn build_forest(&mut self) {
        let n = (self.rows.len() / self.d) as u32;
        let mut trees = std::mem::take(&mut self.trees);
        trees.resize_with(self.n_estimators, Tree::default);
        for (t, tree) in trees.iter_mut().enumerate() {
            tree.nodes.clear();
            tree.free.clear();
            let u = node_uniforms(self.seed, t, 0);
            tree.nodes.push(Node { id: 0, depth: 0, u, kind: Kind::Leaf(Vec::new()) });
            self.builder(t).build(tree, 0, (0..n).collect(), 0, 0, u);
        }
        self.trees = trees;
        self.built_from = n as usize;
    }

    /// The size of the leaf `x` would land in if inserted into tree `t` now, computed without changing
    /// or copying the tree.
    fn preview_leaf_size(&self, t: usize, x: &[f64], scratch: &mut Vec<[f64; 5]>) -> usize {
        let tree = &self.trees[t];
        let rows = Rows { rows: &self.rows, d: self.d, candidate: x };
        let mut at = 0u32;
        let (set, mut depth, mut id, mut u) = loop {
            let node = &tree.nodes[at as usize];
            match &node.kind {
                Kind::Leaf(set) => {
                    if node.depth >= self.max_depth {
                        return set.len() + 1;
                    }
                    let mut set = set.clone();
                    set.push(CANDIDATE);
                    break (set, node.depth, node.id, node.u);
                }
                Kind::Branch { feature, value, left, right, moments } => {
                    scratch.clear();
                    scratch.extend_from_slice(moments);
                    for (m, &v) in scratch.iter_mut().zip(x) {
                        add_moment(m, v);
                    }
                    if select(scratch, node.u.0) != Some(*feature) {
                        let mut set = Vec::new();
                        rows_under(tree, at, &mut set);
                        set.push(CANDIDATE);
                        break (set, node.depth, node.id, node.u);
                    }
                    at = if goes_left(x[*feature as usize], *value) { *left } else { *right };
                }
            }
        };
        // The rebuild of `set` there, followed along the candidate's path only.
        let mut set = set;
        loop {
            let Some(split) = split_of(&rows, &set, depth, self.max_depth, u) else {
                return set.len();
            };
            let f = split.feature as usize;
            let left = goes_left(x[f], split.value);
            set.retain(|&i| goes_left(rows.get(i)[f], split.value) == left);
            id = 2 * id + if left { 1 } else { 2 };
            depth += 1;
            u = node_uniforms(self.seed, t, id);
        }
    }

    fn score_from(&self, sizes: impl Iterator<Item = usize>) -> f64 {
        let n1 = (self.forest_size() + 1) as f64;
        let mut score = 0.0;
        for s in sizes {
            score += (n1 / s as f64).ln();
        }
        finite_score(score)
    }

    /// Learns `x` after the first forest, returning the leaf sizes it reached, tree by tree.
    fn insert(&mut self, x: &[f64], mut sizes: Option<&mut Vec<usize>>) {
        let r = (self.rows.len() / self.d) as u32;
        self.rows.extend_from_slice(x);
        let mut trees = std::mem::take(&mut self.trees);
        for (t, tree) in trees.iter_mut().enumerate() {
            let size = self.builder(t).insert(tree, r);
            if let Some(s) = sizes.as_deref_mut() {
                s.push(size);
            }
        }
        self.trees = trees;
        if self.rows.len() / self.d - self.built_from == self.window_size {
            let start = self.built_from * self.d;
            self.rows.copy_within(start.., 0);
            self.rows.truncate(self.window_size * self.d);
            self.build_forest();
        }
    }
}

impl Detector for StreamRHF {
    fn learn_one(&mut self, x: &[f64]) {
        if self.trees.is_empty() {
            self.rows.extend_from_slice(x);
            if self.rows.len() == self.window_size * self.d {
                self.build_forest();
            }
            return;
        }
        self.insert(x, None);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.0;
        }
        let mut scratch = Vec::with_capacity(self.d);
        self.score_from((0..self.trees.len()).map(|t| self.preview_leaf_size(t, x, &mut scratch)))
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        if self.trees.is_empty() {
            self.learn_one(x);
            return 0.0;
        }
        // The real insertion reaches the leaf the preview computes: score from it, before a window's
        // end rebuilds the forest.
        let n1 = (self.forest_size() + 1) as f64;
        let mut sizes = Vec::with_capacity(self.trees.len());
        self.insert(x, Some(&mut sizes));
        let mut score = 0.0;
        for s in sizes {
            score += (n1 / s as f64).ln();
        }
        finite_score(score)
    }
}

impl Describe for StreamRHFParams {
    const REFERENCE: &'static str = "Nesic, Putina, Bahri, Huet, Navarro & Rossi 2022, STREamRHF: Tree-Based Unsupervised Anomaly Detection for Data Streams (AICCSA)";
    const SUMMARY: &'static str = "STREamRHF: random histogram trees split on features drawn by ln(kurtosis + 1), \
         rebuilt from each window; score = sum of ln(n / leaf size)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "n_estimators", ty: "int >= 1", required: false, help: "trees (default 25)" },
        ParamDoc { name: "max_depth", ty: "int in 1..=30", required: false, help: "depth limit of a tree (default 5)" },
        ParamDoc {
            name: "window_size",
            ty: "int >= 2",
            required: false,
            help: "rows of the first window and of each window that rebuilds the forest (default 256)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the trees (default 0)" },
    ];
    fn example() -> Self {
        StreamRHFParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(n_estimators: usize, max_depth: usize, window_size: usize, d: usize) -> StreamRHF {
        StreamRHFParams { n_estimators, max_depth, window_size, seed: Some(3) }
            .build(&Schema::numbered("f", d))
            .unwrap()
    }

    /// Heavy-tailed in column 0 (a cubed low-discrepancy sequence), uniform in column 1.
    fn cloud(i: usize) -> [f64; 2] {
        let a = (i as f64 * 0.618_033_988_749_895).fract() * 2.0 - 1.0;
        let b = (i as f64 * 0.754_877_666_246_693).fract() * 2.0 - 1.0;
        [a * a * a * a * a, b]
    }

    /// Walks a tree: every row index once, sizes and structure consistent; returns the rows.
    fn check_tree(m: &StreamRHF, t: usize) -> Vec<u32> {
        let tree = &m.trees[t];
        let mut stack = vec![(0u32, 0u32, 0u32)];
        let mut seen = Vec::new();
        while let Some((at, depth, id)) = stack.pop() {
            let node = &tree.nodes[at as usize];
            assert_eq!((node.depth, node.id), (depth, id));
            assert_eq!(node.u, node_uniforms(m.seed, t, id), "quantiles depend on (seed, tree, node) only");
            assert!(depth <= m.max_depth);
            match &node.kind {
                Kind::Leaf(set) => {
                    assert!(!set.is_empty() || at == 0);
                    seen.extend_from_slice(set);
                }
                Kind::Branch { feature, value, left, right, .. } => {
                    let mut l = Vec::new();
                    rows_under(tree, *left, &mut l);
                    let mut r = Vec::new();
                    rows_under(tree, *right, &mut r);
                    assert!(!l.is_empty() && !r.is_empty());
                    let f = *feature as usize;
                    assert!(l.iter().all(|&i| m.rows[i as usize * m.d + f] <= *value));
                    assert!(r.iter().all(|&i| !goes_left(m.rows[i as usize * m.d + f], *value)));
                    stack.push((*left, depth + 1, 2 * id + 1));
                    stack.push((*right, depth + 1, 2 * id + 2));
                }
            }
        }
        seen.sort_unstable();
        seen
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 3);
        let err = |p: StreamRHFParams| p.build(&schema).unwrap_err().to_string();
        assert!(err(StreamRHFParams { n_estimators: 0, ..Default::default() }).contains("'n_estimators'"));
        for bad in [0, 31] {
            let e = err(StreamRHFParams { max_depth: bad, ..Default::default() });
            assert!(e.contains("'max_depth'") && e.contains(&bad.to_string()), "{e}");
        }
        for bad in [0, 1] {
            assert!(err(StreamRHFParams { window_size: bad, ..Default::default() }).contains("'window_size'"));
        }
        assert!(StreamRHFParams { window_size: 2, max_depth: 30, ..Default::default() }.build(&schema).is_ok());
    }

    #[test]
    fn moments_match_the_two_pass_formulas() {
        let xs = [1.0, 4.0, -2.0, 8.5, 3.0, 3.0, -7.25];
        let mut m = [0.0; 5];
        xs.iter().for_each(|&v| add_moment(&mut m, v));
        add_moment(&mut m, f64::NAN);
        add_moment(&mut m, f64::INFINITY);
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let central = |p: i32| xs.iter().map(|v| (v - mean).powi(p)).sum::<f64>();
        assert_eq!(m[0], n);
        assert!((m[1] - mean).abs() < 1e-12);
        for (k, p) in [(2, 2), (3, 3), (4, 4)] {
            assert!((m[k] - central(p)).abs() < 1e-9 * central(p).abs().max(1.0), "M{p}: {} vs {}", m[k], central(p));
        }
        // Two distinct values: kurtosis n M4 / M2^2 = 1, weight ln 2; constant features weigh nothing.
        let (mut two, mut flat) = ([0.0; 5], [0.0; 5]);
        [0.0, 1.0].iter().for_each(|&v| add_moment(&mut two, v));
        [5.0, 5.0].iter().for_each(|&v| add_moment(&mut flat, v));
        assert_eq!(select(&[flat, two], 1e-9), Some(1));
        assert_eq!(select(&[flat, flat], 0.5), None);
        // Proportional choice: equal weights split the unit interval in half.
        assert_eq!(select(&[two, two], 0.49), Some(0));
        assert_eq!(select(&[two, two], 0.51), Some(1));
    }

    #[test]
    fn the_first_window_builds_the_forest_and_each_later_window_rebuilds_it() {
        let mut m = build(4, 5, 32, 2);
        for i in 0..31 {
            assert_eq!(m.score_learn_one(&cloud(i)), 0.0);
        }
        assert!(m.trees.is_empty());
        m.learn_one(&cloud(31));
        assert_eq!((m.trees.len(), m.forest_size(), m.built_from), (4, 32, 32));
        for t in 0..4 {
            assert_eq!(check_tree(&m, t), (0..32).collect::<Vec<u32>>());
        }
        // Inserted rows join every tree; the trees hold the reference and the current window.
        for i in 32..63 {
            m.learn_one(&cloud(i));
        }
        assert_eq!(m.forest_size(), 63);
        for t in 0..4 {
            assert_eq!(check_tree(&m, t), (0..63).collect::<Vec<u32>>());
        }
        // The 32nd row of the current window: the forest is rebuilt from that window alone.
        m.learn_one(&cloud(63));
        assert_eq!(m.forest_size(), 32);
        assert_eq!(m.rows, (32..64).flat_map(cloud).collect::<Vec<f64>>());
        let fresh = {
            let mut f = build(4, 5, 32, 2);
            (32..64).for_each(|i| f.learn_one(&cloud(i)));
            f
        };
        assert_eq!(postcard::to_stdvec(&m).unwrap(), postcard::to_stdvec(&fresh).unwrap());
        // Memory stays bounded by two windows over a long stream.
        for i in 64..2_000 {
            m.learn_one(&cloud(i));
            assert!(m.forest_size() < 64);
            assert!(m.trees.iter().all(|t| t.nodes.len() - t.free.len() < 64));
        }
    }

    #[test]
    fn the_preview_equals_the_real_insertion() {
        // Many inserts, some of which rebuild subtrees: the previewed leaf size is the inserted one.
        let mut m = build(6, 4, 64, 2);
        (0..64).for_each(|i| m.learn_one(&cloud(i)));
        let mut scratch = Vec::new();
        for i in 64..600 {
            let x = if i % 17 == 0 { [3.0, -2.0] } else { cloud(i * 7) };
            let preview: Vec<usize> = (0..6).map(|t| m.preview_leaf_size(t, &x, &mut scratch)).collect();
            let before = postcard::to_stdvec(&m).unwrap();
            let mut sizes = Vec::new();
            m.insert(&x, Some(&mut sizes));
            assert_eq!(preview, sizes, "row {i}");
            assert_ne!(before, postcard::to_stdvec(&m).unwrap());
            if m.forest_size() != 64 {
                for t in 0..6 {
                    assert_eq!(check_tree(&m, t).len(), m.forest_size());
                }
            }
        }
    }

    #[test]
    fn a_hand_checked_score() {
        // One tree of depth 1 over two rows: the root splits them, each leaf holds one.
        let mut m = build(1, 1, 2, 1);
        m.learn_one(&[0.0]);
        m.learn_one(&[10.0]);
        let Kind::Branch { value, .. } = m.trees[0].nodes[0].kind else { panic!("the root splits") };
        assert!(value > 0.0 && value < 10.0);
        // A row next to 0 would join the leaf of 0: size 2 of n + 1 = 3 (its kurtosis changes the chosen
        // feature of nothing: one feature).
        assert_eq!(m.score_one(&[0.5f64.min(value / 2.0)]), (3.0f64 / 2.0).ln());
        // Depth limit 1: leaves at depth 1 just grow.
        m.learn_one(&[-1.0]);
        assert_eq!(m.score_one(&[-0.5]), (4.0f64 / 3.0).ln());
    }

    #[test]
    fn an_isolated_point_scores_above_the_inliers() {
        let mut m = build(25, 5, 256, 2);
        (0..1_000).for_each(|i| m.learn_one(&cloud(i)));
        let inliers: Vec<f64> = (5_000..5_100).map(|i| m.score_one(&cloud(i))).collect();
        let mean = inliers.iter().sum::<f64>() / 100.0;
        let outlier = m.score_one(&[0.0, 5.0]);
        let far = m.score_one(&[1e300, -1e300]);
        assert!(outlier > mean * 1.5 && far > mean * 1.5, "{outlier}, {far} vs {mean}");
        assert!(inliers.iter().all(|&s| s >= 0.0 && s.is_finite()));
        // The largest possible: a leaf of one row in every tree, 25 ln(n + 1).
        assert!(outlier <= 25.0 * ((m.forest_size() + 1) as f64).ln() + 1e-9);
    }

    #[test]
    fn non_finite_values_neither_panic_nor_enter_the_moments() {
        let mut m = build(5, 5, 32, 3);
        for i in 0..300 {
            let c = cloud(i);
            let odd = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, c[1], c[1]][i % 5];
            let s = m.score_learn_one(&[c[0], odd, if i % 3 == 0 { f64::NAN } else { 2.0 }]);
            assert!(s.is_finite() && s >= 0.0);
        }
        for t in &m.trees {
            for n in &t.nodes {
                if let Kind::Branch { moments, value, feature, .. } = &n.kind {
                    assert!(moments.iter().flatten().all(|v| v.is_finite()));
                    assert!(value.is_finite());
                    assert_ne!(*feature, 2, "2.0 and NaN only: constant");
                }
            }
        }
        for x in [[f64::NAN; 3], [f64::INFINITY, f64::NEG_INFINITY, f64::NAN]] {
            assert!(m.score_one(&x).is_finite());
        }
    }
}
