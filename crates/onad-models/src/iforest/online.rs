//! OnlineIsolationForest: Online-iForest of Leveni et al. (ICML 2024), a forest of multi-resolution
//! histograms over a sliding window that split bins as points arrive and merge them as points leave.

use onad_core::{Batch, Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::rng::{below, mix64, unit, unit_from_bits};

/// How the split threshold of a leaf grows with its depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineTreeType {
    /// A leaf at depth `k` splits at `max_leaf_samples * 2^k` points (the paper's default): deep bins
    /// need ever more evidence, which keeps trees shallow and scores smooth.
    #[default]
    Adaptive,
    /// Every leaf splits at `max_leaf_samples` points, up to the depth limit.
    Fixed,
}

/// How a split direction is drawn. onad 0.3.0 knows only axis-parallel splits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitMetric {
    /// One feature drawn uniformly at random.
    #[default]
    #[serde(rename = "axisparallel")]
    AxisParallel,
}

/// Hyperparameters of [`OnlineIsolationForest`] (onad 0.3.0's names and defaults, plus `seed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineIsolationForestParams {
    /// Number of trees.
    pub num_trees: usize,
    /// Base split threshold η: a leaf splits when it holds this many points (times `2^depth` for
    /// adaptive trees).
    pub max_leaf_samples: usize,
    /// `adaptive` or `fixed` split thresholds.
    #[serde(rename = "type")]
    pub tree_type: OnlineTreeType,
    /// Share of the stream each tree learns, in (0, 1].
    pub subsample: f64,
    /// Number of most recent rows the forest describes; older rows are forgotten.
    pub window_size: usize,
    /// Children per split (a split draws `branching_factor - 1` values).
    pub branching_factor: usize,
    /// Split directions: only `axisparallel`.
    pub metric: SplitMetric,
    /// Seed of the per-tree generators.
    pub seed: u64,
}

impl Default for OnlineIsolationForestParams {
    fn default() -> Self {
        OnlineIsolationForestParams {
            num_trees: 100,
            max_leaf_samples: 32,
            tree_type: OnlineTreeType::Adaptive,
            subsample: 1.0,
            window_size: 2048,
            branching_factor: 2,
            metric: SplitMetric::AxisParallel,
            seed: 1,
        }
    }
}

/// Marks a leaf in [`Node::children`].
const LEAF: u32 = u32::MAX;

/// One bin of a tree. Children of an internal node are `branching_factor` consecutive nodes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Node {
    /// Points of the window this bin holds (its height `h`).
    count: u32,
    /// Split feature (internal nodes).
    dim: u32,
    /// Index of the first child, or [`LEAF`].
    children: u32,
}

/// What every tree needs to know, fixed at build time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Shape {
    d: usize,
    branching: usize,
    leaf_samples: f64,
    adaptive: bool,
    /// `ln(2 * branching_factor)`, the base of the path-length formula.
    ln_base: f64,
}

impl Shape {
    /// The height at which a leaf at `depth` splits (and below which an internal node merges).
    #[inline]
    fn threshold(&self, depth: u32) -> f64 {
        // 2^depth exactly, without a libm call for the depths a tree reaches (the same bits as powi).
        let scale = if depth < 64 { (1u64 << depth) as f64 } else { f64::powi(2.0, depth as i32) };
        if self.adaptive { self.leaf_samples * scale } else { self.leaf_samples }
    }

    /// The paper's expected depth still to go in a bin of `n` points: `ln(n / η) / ln(2 b)`, 0 below η.
    /// Also the depth limit of a tree of `n` points and, for the window, the score's normaliser.
    #[inline]
    fn path_length(&self, n: f64) -> f64 {
        if n < self.leaf_samples { 0.0 } else { (n / self.leaf_samples).ln() / self.ln_base }
    }

    /// [`path_length`](Self::path_length) of a whole count, from `table` (the values for 0, 1, ...) where
    /// it reaches: the same bits without a logarithm per tree and row.
    #[inline]
    fn path_length_of(&self, n: u32, table: &[f64]) -> f64 {
        match table.get(n as usize) {
            Some(&v) => v,
            None => self.path_length(n as f64),
        }
    }
}

/// One Online-iTree: an arena of nodes (index 0 is the root) with their supports and split values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    rng: Pcg64,
    /// Key of this tree's subsample draws (a hash of it and the row number).
    key: u64,
    nodes: Vec<Node>,
    /// Support of each leaf: `lo` then `hi`, `d` values each, `2 d` per node (unused for internal
    /// nodes: the algorithm reads supports of leaves only).
    bounds: Vec<f64>,
    /// `branching_factor - 1` sorted split values per node.
    splits: Vec<f64>,
    /// First indices of child blocks freed by merges, reused before the arena grows.
    free: Vec<u32>,
}

impl Tree {
    fn new(shape: &Shape, seed: u64) -> Tree {
        let mut tree = Tree {
            rng: Pcg64::seed_from_u64(seed),
            key: mix64(seed ^ 0x6a09_e667_f3bc_c908),
            nodes: vec![Node { count: 0, dim: 0, children: LEAF }],
            bounds: Vec::new(),
            splits: vec![0.0; shape.branching - 1],
            free: Vec::new(),
        };
        tree.bounds.resize(2 * shape.d, 0.0);
        tree.clear_bounds(0, shape.d);
        tree
    }

    fn clear_bounds(&mut self, node: usize, d: usize) {
        let b = &mut self.bounds[2 * d * node..2 * d * (node + 1)];
        b[..d].fill(f64::INFINITY);
        b[d..].fill(f64::NEG_INFINITY);
    }

    /// The child of internal `node` that `x` falls in: the number of split values `<= x[dim]` (NaN
    /// goes to the first child).
    #[inline]
    fn child(&self, node: usize, x: &[f64], shape: &Shape) -> usize {
        let n = &self.nodes[node];
        let v = x[n.dim as usize];
        let s = &self.splits[node * (shape.branching - 1)..(node + 1) * (shape.branching - 1)];
        n.children as usize + s.iter().take_while(|&&s| s <= v).count()
    }

    /// Depth of `x`: the depth of its leaf plus the path length of the leaf's height.
    fn depth(&self, x: &[f64], shape: &Shape, paths: &[f64]) -> f64 {
        let (mut node, mut depth) = (0, 0u32);
        while self.nodes[node].children != LEAF {
            node = self.child(node, x, shape);
            depth += 1;
        }
        depth as f64 + shape.path_length_of(self.nodes[node].count, paths)
    }

    /// Learns `x` (paper, Algorithm 2): every bin on its path grows by one, the leaf's support grows to
    /// hold `x`, and a leaf that reaches its threshold below the depth limit splits.
    fn learn(&mut self, x: &[f64], shape: &Shape, paths: &[f64], scratch: &mut Vec<f64>) {
        let limit = shape.path_length_of(self.nodes[0].count + 1, paths);
        let d = shape.d;
        let (mut node, mut depth) = (0, 0u32);
        loop {
            self.nodes[node].count += 1;
            if self.nodes[node].children == LEAF {
                break;
            }
            node = self.child(node, x, shape);
            depth += 1;
        }
        let b = &mut self.bounds[2 * d * node..2 * d * (node + 1)];
        let (lo, hi) = b.split_at_mut(d);
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(x) {
            *l = l.min(v);
            *h = h.max(v);
        }
        let count = self.nodes[node].count;
        if count as f64 >= shape.threshold(depth) && (depth as f64) < limit {
            self.split(node, depth, limit, shape, scratch);
        }
    }

    /// Splits leaf `node`: draws as many points as it holds uniformly in its support and grows a
    /// subtree on them, as the paper does (the tree keeps no points).
    fn split(&mut self, node: usize, depth: u32, limit: f64, shape: &Shape, scratch: &mut Vec<f64>) {
        let d = shape.d;
        let n = self.nodes[node].count as usize;
        scratch.clear();
        scratch.resize(n * d, 0.0);
        let base = 2 * d * node;
        for row in scratch.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                let (lo, hi) = (self.bounds[base + j], self.bounds[base + d + j]);
                let u = unit(&mut self.rng);
                // A convex combination cannot overflow; the clamp keeps rounding inside the support.
                *v = (lo * (1.0 - u) + hi * u).max(lo).min(hi);
            }
        }
        self.build(node, scratch, depth, limit, shape);
    }

    /// Makes `node` the root of a subtree over the points `pts` (rows of `d` values, reordered here).
    fn build(&mut self, node: usize, pts: &mut [f64], depth: u32, limit: f64, shape: &Shape) {
        let d = shape.d;
        let n = pts.len() / d;
        self.nodes[node].count = n as u32;
        if (n as f64) < shape.threshold(depth) || depth as f64 >= limit {
            self.nodes[node].children = LEAF;
            self.clear_bounds(node, d);
            let b = &mut self.bounds[2 * d * node..2 * d * (node + 1)];
            let (lo, hi) = b.split_at_mut(d);
            for row in pts.chunks_exact(d) {
                for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                    *l = l.min(v);
                    *h = h.max(v);
                }
            }
            return;
        }
        let dim = below(&mut self.rng, d);
        let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
        for row in pts.chunks_exact(d) {
            mn = mn.min(row[dim]);
            mx = mx.max(row[dim]);
        }
        let k = shape.branching - 1;
        let s0 = node * k;
        for j in 0..k {
            let u = unit(&mut self.rng);
            self.splits[s0 + j] = (mn * (1.0 - u) + mx * u).max(mn).min(mx);
        }
        self.splits[s0..s0 + k].sort_unstable_by(f64::total_cmp);
        let first = self.alloc_block(shape);
        self.nodes[node].dim = dim as u32;
        self.nodes[node].children = first as u32;
        // Partition the rows into the children's groups, one split value at a time.
        let mut start = 0;
        for c in 0..shape.branching {
            let end = if c == k {
                n
            } else {
                let s = self.splits[s0 + c];
                let mut b = start;
                for r in start..n {
                    if pts[r * d + dim] < s {
                        swap_rows(pts, r, b, d);
                        b += 1;
                    }
                }
                b
            };
            self.build(first + c, &mut pts[start * d..end * d], depth + 1, limit, shape);
            start = end;
        }
    }

    /// A block of `branching_factor` fresh leaves; returns the index of the first.
    fn alloc_block(&mut self, shape: &Shape) -> usize {
        let first = match self.free.pop() {
            Some(f) => f as usize,
            None => {
                let first = self.nodes.len();
                let m = first + shape.branching;
                self.nodes.resize(m, Node { count: 0, dim: 0, children: LEAF });
                self.bounds.resize(2 * shape.d * m, 0.0);
                self.splits.resize((shape.branching - 1) * m, 0.0);
                first
            }
        };
        for c in first..first + shape.branching {
            self.nodes[c] = Node { count: 0, dim: 0, children: LEAF };
        }
        first
    }

    /// Forgets `x`, a point this tree learned (paper, Algorithm 3): every bin on its path shrinks by
    /// one, and the first internal bin that falls below its threshold merges its whole subtree into one
    /// leaf whose support is the union of the merged leaves' supports.
    ///
    /// A bin whose height came from the points drawn at a split may be at zero when a real point that
    /// lands in it is forgotten; heights stop at zero instead of going negative.
    fn forget(&mut self, x: &[f64], shape: &Shape) {
        let (mut node, mut depth) = (0, 0u32);
        loop {
            let n = &mut self.nodes[node];
            n.count = n.count.saturating_sub(1);
            if n.children == LEAF {
                return;
            }
            if (n.count as f64) < shape.threshold(depth) {
                self.merge(node, shape);
                return;
            }
            node = self.child(node, x, shape);
            depth += 1;
        }
    }

    /// Turns internal `node` into a leaf: its support becomes the union of its leaves' supports and its
    /// descendants' blocks go back to the free list.
    fn merge(&mut self, node: usize, shape: &Shape) {
        let d = shape.d;
        let first = self.nodes[node].children as usize;
        self.clear_bounds(node, d);
        for c in first..first + shape.branching {
            if self.nodes[c].children != LEAF {
                self.merge(c, shape);
            }
            for j in 0..d {
                let (lo, hi) = (self.bounds[2 * d * c + j], self.bounds[2 * d * c + d + j]);
                let t = 2 * d * node;
                self.bounds[t + j] = self.bounds[t + j].min(lo);
                self.bounds[t + d + j] = self.bounds[t + d + j].max(hi);
            }
        }
        self.free.push(first as u32);
        self.nodes[node].children = LEAF;
    }
}

fn swap_rows(pts: &mut [f64], a: usize, b: usize, d: usize) {
    if a != b {
        for j in 0..d {
            pts.swap(a * d + j, b * d + j);
        }
    }
}

/// Online Isolation Forest (Leveni, Weigert Cassales, Pfahringer, Bifet & Boracchi, "Online Isolation
/// Forest", ICML 2024; Python onad 0.3.0 `OnlineIsolationForest`).
///
/// Each of `num_trees` trees is a multi-resolution histogram of the last `window_size` rows. A bin (node)
/// keeps its height `h` (how many window points fell in it) and, for a leaf, its support (the bounding
/// box of the points it received). Learning a row adds one to every bin on its path and grows the leaf's
/// support; a leaf at depth `k` whose height reaches `η · 2^k` (`adaptive`; `η` for `fixed`), with
/// `η = max_leaf_samples`, splits while `k` is below the tree's depth limit `ln(n / η) / ln(2b)` (`n` the
/// tree's points, `b = branching_factor`): `h` points are drawn uniformly in the leaf's support, a feature
/// is drawn uniformly, `b - 1` split values uniformly between the drawn points' extremes on it, and a
/// subtree is grown on the drawn points. When the window is full, the row that leaves it is forgotten by
/// every tree that learned it: each bin on its path loses one, and the first internal bin whose height
/// falls below its threshold merges its subtree back into one leaf.
///
/// Score: with `depth(x)` the depth of the leaf `x` reaches plus `ln(h / η) / ln(2b)` of that leaf (0 when
/// `h < η`), averaged over the trees, `score(x) = 2^(-mean depth / (ln(w / η) / ln(2b) + ε))`, `w` the
/// number of window rows times `subsample` and ε the double epsilon. Scores are in (0, 1], higher is more
/// anomalous; 1.0 until the window holds `max_leaf_samples` rows (as in the paper and onad).
///
/// Splits are drawn in each bin's own support, feature by feature, so the model needs no scaling: it
/// works on raw input whatever the units of each feature (a test checks features 9 orders of magnitude
/// apart). Rows with a NaN or infinite value are not learned (they do not enter the window); they are
/// scored, a NaN going to the first child of every split it meets.
///
/// Cost per row, with `T` trees, depth `D` (about `log_4(w / η)` with the defaults) and `d` features:
/// scoring `O(T · D · b)`; learning `O(T · D · b + d)`, plus a split now and then that costs
/// `O(η 2^k · d · D)` for the leaf it splits, and a merge that frees a subtree; forgetting the same as
/// learning. Memory: the window (`w · d` values) and per tree `O(w / η)` nodes of `2 d + b` values. No
/// allocation per row once the arena and the split buffer have grown.
///
/// Deviations from onad 0.3.0, each following the paper and its authors' code or fixing a bug of
/// onad's (models.md section 7):
/// - a `seed` and one PCG64 generator per tree (onad draws from the global `np.random`);
/// - with `subsample < 1`, whether a tree learns a row is a hash of the tree and the row's number, so
///   the tree forgets exactly the rows it learned (onad redraws the choice when forgetting, so its
///   heights drift);
/// - a child that receives no drawn point at a split starts with an empty support that grows with the
///   points it receives (onad gives it no support, which it never updates, and a later split of it
///   fails); the authors' code does the former;
/// - values are doubles in schema order (onad converts to float32 in dict insertion order);
/// - heights stop at 0 (see the forgetting step); onad's can go negative;
/// - no `n_jobs`: a model runs on one thread (onad's threads only add overhead there); per-key runs
///   spread keys over workers instead;
/// - `window_size` must be at least 1 (onad's `None` keeps every row forever).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::OnlineIsolationForestParams;
///
/// let schema = Schema::shared(["cpu", "bytes"]).unwrap();
/// let params = OnlineIsolationForestParams { num_trees: 20, window_size: 512, seed: 7, ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..2000 {
///     let t = i as f64;
///     model.learn_one(&[50.0 + (t * 0.37).sin() * 5.0, 1.0e6 + (t * 0.11).cos() * 1.0e4]);
/// }
/// let normal = model.score_one(&[50.0, 1.0e6]);
/// let odd = model.score_one(&[95.0, 4.0e6]);
/// assert!(odd > normal && (0.0..=1.0).contains(&odd));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnlineIsolationForest {
    shape: Shape,
    subsample: f64,
    window_size: u32,
    /// The window, a ring of `window_size` rows; `head` is the oldest.
    head: u32,
    len: u32,
    trees: Vec<Tree>,
    window: Vec<f64>,
    /// Rows learned so far (the number of the next row).
    seen: u64,
    /// `path_length(len · subsample)`.
    normaliser: f64,
    /// Points drawn at a split, then the row leaving the window (a reused buffer, not state).
    #[serde(skip)]
    scratch: Vec<f64>,
    /// `path_length(n)` for the counts a node can hold, `0..=window_size + 1` (built on first use).
    #[serde(skip)]
    paths: Box<std::sync::OnceLock<Vec<f64>>>,
}

impl DetectorParams for OnlineIsolationForestParams {
    type Model = OnlineIsolationForest;

    fn build(&self, schema: &SchemaRef) -> Result<OnlineIsolationForest, ParamError> {
        if self.num_trees == 0 {
            return Err(ParamError::invalid("num_trees", "must be at least 1, got 0"));
        }
        if self.max_leaf_samples == 0 {
            return Err(ParamError::invalid("max_leaf_samples", "must be at least 1, got 0"));
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return Err(ParamError::invalid("subsample", format!("must be in (0, 1], got {}", self.subsample)));
        }
        if self.window_size == 0 || self.window_size >= u32::MAX as usize {
            return Err(ParamError::invalid(
                "window_size",
                format!("must be between 1 and {}, got {}", u32::MAX - 1, self.window_size),
            ));
        }
        if !(2..=1024).contains(&self.branching_factor) {
            return Err(ParamError::invalid(
                "branching_factor",
                format!("must be between 2 and 1024, got {}", self.branching_factor),
            ));
        }
        let d = schema.len();
        if d == 0 {
            return Err(ParamError::Schema("online_isolation_forest needs at least one feature".into()));
        }
        let shape = Shape {
            d,
            branching: self.branching_factor,
            leaf_samples: self.max_leaf_samples as f64,
            adaptive: self.tree_type == OnlineTreeType::Adaptive,
            ln_base: (2.0 * self.branching_factor as f64).ln(),
        };
        let mut seeds = Pcg64::seed_from_u64(self.seed);
        let trees = (0..self.num_trees).map(|_| Tree::new(&shape, seeds.next_u64())).collect();
        Ok(OnlineIsolationForest {
            shape,
            subsample: self.subsample,
            window_size: self.window_size as u32,
            trees,
            window: vec![0.0; self.window_size * d],
            head: 0,
            len: 0,
            seen: 0,
            normaliser: 0.0,
            scratch: Vec::new(),
            paths: Box::default(),
        })
    }
}

/// Rows times trees below which a batch is not split among threads.
const PARALLEL_WORK: usize = 1 << 14;

/// Whether `tree` learns (and later forgets) row number `row`, at subsample rate `subsample`.
#[inline]
fn selects(subsample: f64, tree: &Tree, row: u64) -> bool {
    subsample >= 1.0 || unit_from_bits(mix64(tree.key ^ mix64(row))) < subsample
}

/// What one row of a batch does to every tree, decided before the trees are split among threads.
struct RowPlan {
    /// The path-length normaliser its score uses (the window before it is learned).
    normaliser: f64,
    /// For a finite row: its row number, and the row leaving the window then (number and index into
    /// the batch's row sequence).
    learn: Option<(u64, Option<(u64, usize)>)>,
}

impl OnlineIsolationForest {
    /// Whether `tree` learns (and later forgets) row number `row`.
    #[inline]
    fn selects(&self, tree: &Tree, row: u64) -> bool {
        selects(self.subsample, tree, row)
    }

    /// `score_learn_many` with the trees split among `threads` threads. The window's comings and goings
    /// are planned first (they do not depend on the trees); then each thread scores, learns and forgets
    /// every row in its own trees; the per-row depths are summed in tree order, as one thread sums them.
    fn score_learn_parallel(&mut self, batch: &Batch, threads: usize, out: &mut Vec<f64>) {
        let (shape, subsample) = (self.shape, self.subsample);
        let (d, w, n) = (shape.d, self.window_size as usize, batch.num_rows());
        // The window's rows oldest first, then the batch's finite rows: every row that leaves is one of them.
        let (len0, head0) = (self.len as usize, self.head as usize);
        let mut rows: Vec<f64> = Vec::with_capacity((len0 + n) * d);
        for j in 0..len0 {
            let slot = (head0 + j) % w;
            rows.extend_from_slice(&self.window[slot * d..(slot + 1) * d]);
        }
        let mut plans = Vec::with_capacity(n);
        let (mut len, mut seen, mut normaliser) = (len0, self.seen, self.normaliser);
        for i in 0..n {
            let x = batch.row(i);
            if !x.iter().all(|v| v.is_finite()) {
                plans.push(RowPlan { normaliser, learn: None });
                continue;
            }
            let at = rows.len() / d;
            let leaving = (len == w).then(|| (seen - w as u64, at - w));
            plans.push(RowPlan { normaliser, learn: Some((seen, leaving)) });
            rows.extend_from_slice(x);
            seen += 1;
            len = (len + 1).min(w);
            normaliser = shape.path_length(len as f64 * subsample);
        }
        self.paths();
        let paths = self.paths.get().map(Vec::as_slice).unwrap_or_default();
        let totals = super::per_tree_sums(&mut self.trees, threads, n, |trees, depths| {
            let k = trees.len();
            let mut scratch = Vec::new();
            for (i, plan) in plans.iter().enumerate() {
                let x = batch.row(i);
                for (depth, tree) in depths[i * k..(i + 1) * k].iter_mut().zip(trees.iter()) {
                    *depth = tree.depth(x, &shape, paths);
                }
                let Some((row, leaving)) = plan.learn else { continue };
                for tree in trees.iter_mut() {
                    if selects(subsample, tree, row) {
                        tree.learn(x, &shape, paths, &mut scratch);
                    }
                    if let Some((old, at)) = leaving
                        && selects(subsample, tree, old)
                    {
                        tree.forget(&rows[at * d..(at + 1) * d], &shape);
                    }
                }
            }
        });
        let n_trees = self.trees.len() as f64;
        for (plan, total) in plans.iter().zip(totals) {
            let mean = total / n_trees;
            out.push(finite_score(f64::powf(2.0, -mean / (plan.normaliser + f64::EPSILON))));
        }
        // The window as the one-row loop leaves it.
        for plan in &plans {
            let Some((row, _)) = plan.learn else { continue };
            let at = (row - self.seen) as usize + len0;
            let x = &rows[at * d..(at + 1) * d];
            let (len, head) = (self.len as usize, self.head as usize);
            let slot = if len < w {
                self.len += 1;
                (head + len) % w
            } else {
                self.head = ((head + 1) % w) as u32;
                head
            };
            self.window[slot * d..(slot + 1) * d].copy_from_slice(x);
        }
        self.seen = seen;
        self.normaliser = normaliser;
    }

    /// The path lengths of whole counts (see [`Shape::path_length_of`]).
    fn paths(&self) -> &[f64] {
        self.paths
            .get_or_init(|| (0..=self.window_size as usize + 1).map(|n| self.shape.path_length(n as f64)).collect())
    }

    /// Rows in the window.
    pub fn window_len(&self) -> usize {
        self.len as usize
    }
}

impl Detector for OnlineIsolationForest {
    fn learn_one(&mut self, x: &[f64]) {
        if !x.iter().all(|v| v.is_finite()) {
            return;
        }
        let d = self.shape.d;
        let row = self.seen;
        self.seen += 1;
        let shape = self.shape;
        let mut scratch = std::mem::take(&mut self.scratch);
        self.paths();
        let table = self.paths.get().map(Vec::as_slice).unwrap_or_default();
        for tree in &mut self.trees {
            if selects(self.subsample, tree, row) {
                tree.learn(x, &shape, table, &mut scratch);
            }
        }
        let (w, len, head) = (self.window_size as usize, self.len as usize, self.head as usize);
        if len < w {
            let slot = (head + len) % w;
            self.window[slot * d..(slot + 1) * d].copy_from_slice(x);
            self.len += 1;
        } else {
            // The window is full: the oldest row leaves it and every tree that learned it forgets it.
            let old = row - w as u64;
            let leaving = &mut scratch;
            leaving.clear();
            leaving.extend_from_slice(&self.window[head * d..(head + 1) * d]);
            self.window[head * d..(head + 1) * d].copy_from_slice(x);
            self.head = ((head + 1) % w) as u32;
            for t in 0..self.trees.len() {
                if self.selects(&self.trees[t], old) {
                    self.trees[t].forget(leaving, &shape);
                }
            }
        }
        self.scratch = scratch;
        self.normaliser = shape.path_length(self.len as f64 * self.subsample);
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        match super::tree_threads(self.trees.len(), batch.num_rows(), PARALLEL_WORK) {
            Some(threads) => self.score_learn_parallel(batch, threads, out),
            None => out.extend((0..batch.num_rows()).map(|i| self.score_learn_one(batch.row(i)))),
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let paths = self.paths();
        let total: f64 = self.trees.iter().map(|t| t.depth(x, &self.shape, paths)).sum();
        let mean = total / self.trees.len() as f64;
        finite_score(f64::powf(2.0, -mean / (self.normaliser + f64::EPSILON)))
    }
}

impl Describe for OnlineIsolationForestParams {
    const REFERENCE: &'static str =
        "Leveni, Weigert Cassales, Pfahringer, Bifet & Boracchi 2024, Online Isolation Forest (ICML)";
    const SUMMARY: &'static str =
        "Online-iForest (Leveni et al. 2024): sliding-window isolation histograms that split and merge bins";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "num_trees", ty: "int >= 1", required: false, help: "number of trees (default 100)" },
        ParamDoc {
            name: "max_leaf_samples",
            ty: "int >= 1",
            required: false,
            help: "points at which a leaf splits, times 2^depth when adaptive (default 32)",
        },
        ParamDoc {
            name: "type",
            ty: "\"adaptive\" or \"fixed\"",
            required: false,
            help: "split threshold doubling with depth, or constant (default adaptive)",
        },
        ParamDoc {
            name: "subsample",
            ty: "float in (0, 1]",
            required: false,
            help: "share of rows each tree learns (default 1.0)",
        },
        ParamDoc {
            name: "window_size",
            ty: "int >= 1",
            required: false,
            help: "most recent rows described; older ones are forgotten (default 2048)",
        },
        ParamDoc {
            name: "branching_factor",
            ty: "int in [2, 1024]",
            required: false,
            help: "children per split (default 2)",
        },
        ParamDoc {
            name: "metric",
            ty: "\"axisparallel\"",
            required: false,
            help: "split direction: one feature at random (the only one)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the per-tree generators (default 1)" },
    ];
    fn example() -> Self {
        // onad's own SHUTTLE test uses 25 trees over a window of 1,024 rows.
        OnlineIsolationForestParams { num_trees: 25, window_size: 1024, seed: 42, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    /// A deterministic cloud of points around the origin, `d` features scaled by `scales`.
    fn cloud(n: usize, scales: &[f64], seed: u64) -> Vec<Vec<f64>> {
        let mut rng = Pcg64::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                scales
                    .iter()
                    .map(|s| {
                        // A sum of uniforms: roughly normal, bounded.
                        let z: f64 = (0..4).map(|_| unit(&mut rng) - 0.5).sum();
                        z * s
                    })
                    .collect()
            })
            .collect()
    }

    fn forest(params: OnlineIsolationForestParams, d: usize) -> OnlineIsolationForest {
        params.build(&Schema::numbered("f", d)).unwrap()
    }

    fn shape(d: usize, adaptive: bool) -> Shape {
        Shape { d, branching: 2, leaf_samples: 8.0, adaptive, ln_base: 4f64.ln() }
    }

    fn leaves(tree: &Tree) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![0];
        while let Some(n) = stack.pop() {
            match tree.nodes[n].children {
                LEAF => out.push(n),
                c => stack.extend(c as usize..c as usize + 2),
            }
        }
        out
    }

    /// Counts and structure of the nodes reachable from the root, in depth-first order.
    fn reachable(tree: &Tree) -> Vec<(u32, bool)> {
        let mut out = Vec::new();
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            let node = tree.nodes[n];
            out.push((node.count, node.children == LEAF));
            if node.children != LEAF {
                stack.extend(node.children as usize..node.children as usize + 2);
            }
        }
        out
    }

    #[test]
    fn trees_split_among_threads_give_the_one_thread_scores_and_state() {
        // Windows smaller and larger than a batch, a subsample, and rows that are scored but not learned.
        for (window_size, subsample) in [(300, 1.0), (5_000, 0.5)] {
            let mut rows = cloud(7_000, &[1.0, 10.0, 0.1], 3);
            for i in (0..7_000).step_by(97) {
                rows[i][1] = if i % 2 == 0 { f64::NAN } else { f64::INFINITY };
            }
            let params =
                OnlineIsolationForestParams { num_trees: 20, window_size, subsample, seed: 5, ..Default::default() };
            let flat = rows.concat();
            let run = |threads| super::super::run_on_threads(threads, || forest(params.clone(), 3), &flat, 3, 2_000);
            let one = run(1);
            for threads in [2, 3, 8] {
                let many = run(threads);
                assert!(many.0 == one.0, "window {window_size}, {threads} threads: scores differ");
                assert!(many.1 == one.1, "window {window_size}, {threads} threads: state differs");
            }
            let mut m = forest(params, 3);
            let expected: Vec<u64> = rows.iter().map(|r| m.score_learn_one(r).to_bits()).collect();
            assert!(expected == one.0, "window {window_size}: the batch path differs from the one-row loop");
        }
    }

    #[test]
    fn forgetting_a_point_restores_every_count() {
        let shape = shape(3, false);
        let mut tree = Tree::new(&shape, 5);
        let mut scratch = Vec::new();
        let points = cloud(600, &[1.0, 10.0, 0.1], 1);
        for p in &points[..500] {
            tree.learn(p, &shape, &[], &mut scratch);
        }
        assert!(leaves(&tree).len() >= 6, "the tree must have split: {}", leaves(&tree).len());
        let without = reachable(&tree);
        let mut checked = 0;
        for p in &points[500..] {
            let mut with = tree.clone();
            with.learn(p, &shape, &[], &mut scratch);
            let grown = reachable(&with);
            assert_eq!(grown[0].0, without[0].0 + 1, "the root counts every point");
            if grown.len() != without.len() {
                continue; // the point made its leaf split: the tree is not the same tree any more
            }
            // Exactly one root-to-leaf path differs, by one.
            let diffs = grown.iter().zip(&without).filter(|(a, b)| a.0 != b.0).count();
            assert!(diffs >= 1 && grown.iter().zip(&without).all(|(a, b)| a.0 == b.0 || a.0 == b.0 + 1));
            with.forget(p, &shape);
            assert_eq!(reachable(&with), without, "forgetting the point must restore the counts");
            checked += 1;
        }
        assert!(checked > 50, "only {checked} points left the structure unchanged");
    }

    #[test]
    fn forgetting_everything_merges_back_to_one_empty_leaf() {
        for adaptive in [true, false] {
            let shape = shape(2, adaptive);
            let mut tree = Tree::new(&shape, 9);
            let mut scratch = Vec::new();
            let points = cloud(3000, &[1.0, 1.0], 2);
            for p in &points {
                tree.learn(p, &shape, &[], &mut scratch);
            }
            assert!(tree.nodes[0].children != LEAF);
            let arena = tree.nodes.len();
            for p in &points {
                tree.forget(p, &shape);
            }
            assert_eq!(tree.nodes[0], Node { count: 0, dim: tree.nodes[0].dim, children: LEAF });
            // Every block allocated went back to the free list, and the root's support covers the data.
            assert_eq!(tree.free.len() * 2 + 1, arena, "adaptive={adaptive}");
            let (lo, hi) = (tree.bounds[0], tree.bounds[2]);
            assert!(lo < -0.5 && hi > 0.5, "{lo} {hi}");
            // The freed blocks are reused: learning again does not grow the arena.
            for p in &points {
                tree.learn(p, &shape, &[], &mut scratch);
            }
            assert!(tree.nodes.len() <= arena || tree.free.is_empty(), "grew with blocks free");
            assert!(tree.free.len() * 2 + 1 < arena, "no freed block was reused");
        }
    }

    #[test]
    fn each_tree_holds_exactly_the_window_rows_it_learned() {
        let mut m = forest(
            OnlineIsolationForestParams {
                num_trees: 8,
                window_size: 300,
                subsample: 0.5,
                max_leaf_samples: 8,
                ..Default::default()
            },
            3,
        );
        let points = cloud(2000, &[1.0, 2.0, 3.0], 3);
        for (i, p) in points.iter().enumerate() {
            m.learn_one(p);
            let first = (i + 1).saturating_sub(300) as u64;
            for t in &m.trees {
                let expected = (first..=i as u64).filter(|&r| m.selects(t, r)).count() as u32;
                assert_eq!(t.nodes[0].count, expected, "row {i}");
            }
        }
        assert_eq!(m.window_len(), 300);
        // Trees see different halves of the stream.
        let roots: Vec<u32> = m.trees.iter().map(|t| t.nodes[0].count).collect();
        assert!(roots.iter().all(|&c| (100..200).contains(&c)), "{roots:?}");
    }

    #[test]
    fn fixed_trees_split_where_adaptive_ones_wait() {
        // Over a sliding window (so merges happen too), every internal bin at depth k holds at least
        // its type's threshold: 8 * 2^k when adaptive, 8 when fixed; fixed trees split bins that
        // adaptive ones leave whole, so they have more leaves.
        let points = cloud(4000, &[1.0, 1.0], 4);
        let grow = |tree_type: OnlineTreeType| {
            let mut m = forest(
                OnlineIsolationForestParams {
                    num_trees: 10,
                    max_leaf_samples: 8,
                    window_size: 1000,
                    tree_type,
                    ..Default::default()
                },
                2,
            );
            let mut below_adaptive = 0;
            for (i, p) in points.iter().enumerate() {
                m.learn_one(p);
                if i % 250 != 249 {
                    continue;
                }
                for t in &m.trees {
                    let mut stack = vec![(0usize, 0u32)];
                    while let Some((n, depth)) = stack.pop() {
                        let node = t.nodes[n];
                        if node.children == LEAF {
                            continue;
                        }
                        let count = node.count as f64;
                        assert!(count >= m.shape.threshold(depth), "{tree_type:?} row {i}: {node:?} at depth {depth}");
                        below_adaptive += usize::from(count < 8.0 * 2f64.powi(depth as i32));
                        stack.extend((node.children as usize..node.children as usize + 2).map(|c| (c, depth + 1)));
                    }
                }
            }
            let leaves: usize = m.trees.iter().map(|t| leaves(t).len()).sum();
            (leaves, below_adaptive)
        };
        let (adaptive, fixed) = (grow(OnlineTreeType::Adaptive), grow(OnlineTreeType::Fixed));
        assert_eq!(adaptive.1, 0);
        assert!(fixed.1 > 0, "fixed trees never split a bin below the adaptive threshold");
        assert!(fixed.0 > adaptive.0, "fixed {} leaves, adaptive {}", fixed.0, adaptive.0);
    }

    #[test]
    fn an_obvious_outlier_scores_higher_on_unscaled_features() {
        // Feature scales 9 orders of magnitude apart, no scaling.
        let scales = [1.0e-3, 1.0e6];
        for tree_type in [OnlineTreeType::Adaptive, OnlineTreeType::Fixed] {
            let mut m = forest(
                OnlineIsolationForestParams { num_trees: 50, window_size: 1024, tree_type, ..Default::default() },
                2,
            );
            for p in cloud(3000, &scales, 5) {
                m.learn_one(&[p[0] + 0.01, p[1] + 5.0e7]);
            }
            let normal = m.score_one(&[0.01, 5.0e7]);
            // Out of range on the small feature only, then on the large one only.
            let small = m.score_one(&[0.05, 5.0e7]);
            let large = m.score_one(&[0.01, 9.0e7]);
            // A point past the edge of the data shares the edge bin of its trees, so it scores like a
            // rare point, not without bound.
            assert!(small > 1.15 * normal, "{tree_type:?}: {small} vs {normal}");
            assert!(large > 1.15 * normal, "{tree_type:?}: {large} vs {normal}");
            assert!((0.0..=1.0).contains(&normal));
        }
    }

    #[test]
    fn non_finite_rows_are_scored_not_learned() {
        let mut m = forest(OnlineIsolationForestParams { num_trees: 5, window_size: 50, ..Default::default() }, 2);
        for p in cloud(100, &[1.0, 1.0], 6) {
            m.learn_one(&p);
        }
        let before = postcard::to_stdvec(&m).unwrap();
        for bad in [[f64::NAN, 0.0], [f64::INFINITY, 1.0], [0.0, f64::NEG_INFINITY]] {
            assert!(m.score_one(&bad).is_finite());
            m.learn_one(&bad);
        }
        assert_eq!(postcard::to_stdvec(&m).unwrap(), before);
    }

    #[test]
    fn scores_start_at_one_and_seeds_matter() {
        let p = OnlineIsolationForestParams { num_trees: 10, window_size: 200, ..Default::default() };
        let points = cloud(500, &[1.0, 1.0], 7);
        let run = |seed: u64| {
            let mut m = forest(OnlineIsolationForestParams { seed, ..p.clone() }, 2);
            points.iter().map(|x| m.score_learn_one(x)).collect::<Vec<f64>>()
        };
        let a = run(1);
        assert!(a[..32].iter().all(|&s| s == 1.0), "before η rows every score is 1");
        assert!(a[100..].iter().all(|&s| s > 0.0 && s < 1.0));
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        let base = OnlineIsolationForestParams::default();
        let cases = [
            (OnlineIsolationForestParams { num_trees: 0, ..base.clone() }, "num_trees"),
            (OnlineIsolationForestParams { max_leaf_samples: 0, ..base.clone() }, "max_leaf_samples"),
            (OnlineIsolationForestParams { subsample: 0.0, ..base.clone() }, "subsample"),
            (OnlineIsolationForestParams { subsample: 1.5, ..base.clone() }, "subsample"),
            (OnlineIsolationForestParams { subsample: f64::NAN, ..base.clone() }, "subsample"),
            (OnlineIsolationForestParams { window_size: 0, ..base.clone() }, "window_size"),
            (OnlineIsolationForestParams { branching_factor: 1, ..base.clone() }, "branching_factor"),
        ];
        for (p, name) in cases {
            match p.build(&schema) {
                Err(ParamError::Invalid { param, .. }) => assert_eq!(param, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        let json: OnlineIsolationForestParams =
            serde_json::from_str(r#"{"type": "fixed", "metric": "axisparallel", "branching_factor": 3}"#).unwrap();
        assert_eq!(json.tree_type, OnlineTreeType::Fixed);
        assert!(serde_json::from_str::<OnlineIsolationForestParams>(r#"{"type": "random"}"#).is_err());
        assert!(serde_json::from_str::<OnlineIsolationForestParams>(r#"{"n_jobs": 2}"#).is_err());
    }

    #[test]
    fn multiway_splits_route_by_sorted_split_values() {
        let mut m = forest(
            OnlineIsolationForestParams {
                num_trees: 4,
                branching_factor: 4,
                window_size: 400,
                max_leaf_samples: 8,
                ..Default::default()
            },
            2,
        );
        let points = cloud(1500, &[1.0, 1.0], 8);
        for p in &points {
            m.learn_one(p);
        }
        for t in &m.trees {
            assert!(t.nodes[0].children != LEAF);
            for (n, node) in t.nodes.iter().enumerate() {
                if node.children != LEAF && !t.free.contains(&node.children) {
                    let s = &t.splits[n * 3..n * 3 + 3];
                    assert!(s[0] <= s[1] && s[1] <= s[2], "{s:?}");
                }
            }
        }
        let s = m.score_one(&[0.0, 0.0]);
        assert!(s < m.score_one(&[10.0, 10.0]));
    }
}
