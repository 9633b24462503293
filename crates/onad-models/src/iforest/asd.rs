//! ASDIsolationForest: an isolation forest over a stream, one tree per block of `max_samples` rows and
//! the last `n_estimators` trees kept (Python onad's scheme for iForestASD).

use onad_core::{Batch, Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::average_path_length;
use crate::registry::Describe;
use crate::rng::{below, unit, unit_rng};

/// Hyperparameters of [`ASDIsolationForest`] (Python onad names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ASDIsolationForestParams {
    /// How many trees the forest keeps (the newest ones), `>= 1`.
    pub n_estimators: usize,
    /// Rows per tree (`psi`): a tree is grown from every block of this many rows, `>= 2`.
    pub max_samples: usize,
    /// Seed of the trees' generators; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
}

impl Default for ASDIsolationForestParams {
    fn default() -> Self {
        ASDIsolationForestParams { n_estimators: 100, max_samples: 256, seed: None }
    }
}

/// Isolation forest over a stream by blocks: every `max_samples` (psi) learned rows grow one isolation tree
/// (Liu, Ting & Zhou 2008, "Isolation Forest", ICDM) and the forest keeps the newest `n_estimators`, so
/// it forgets data older than about `n_estimators * psi` rows (25,600 by default). This is how onad 0.3.0
/// realises iForestASD (Ding & Fei 2013, "An Anomaly Detection Approach Based on Isolation Forest
/// Algorithm for Streaming Data using Sliding Window", IFAC): the paper rebuilds the whole forest from the
/// latest window when the window's anomaly rate passes a threshold; onad replaces one tree per window
/// instead, with no threshold, and this port keeps onad's scheme.
///
/// # Algorithm
/// - Learning appends the row to a block buffer. When the block holds psi rows, a tree is grown from it and
///   the block restarts with that last row (onad reuses the boundary row, so the first tree comes after
///   psi rows and each later one after psi - 1 more). When the forest is full the oldest tree is replaced.
/// - A tree splits a node of `n > 1` rows above the depth limit `ceil(log2 psi)` on a feature drawn
///   uniformly from those not constant in the node, at a value drawn uniformly between that feature's
///   minimum and maximum there; rows below the value go left. A leaf of `n` rows at depth `e` has path
///   length `h = e + c(n)`.
/// - `score(x) = 2^(-E[h(x)] / c(psi))`, the mean over the trees, in (0, 1]; about 0.5 and below for
///   ordinary rows, towards 1 for rows isolated near the root. `c(n) = 2 (ln(n - 1) + gamma) - 2 (n - 1) / n`
///   with `c(2) = 1` and `c(1) = 0` (the average unsuccessful-search path of a binary search tree). The
///   score is 0.0 until the first tree exists.
///
/// Works on raw, unscaled input: splits are drawn inside each feature's observed range, so the units of a
/// feature do not matter. Missing values (NaN) are allowed: at a split on a missing feature a score
/// follows both children, weighted by the rows each received when the tree grew (the expected path over
/// the data there); while growing, a row whose split feature is missing goes right and does not widen the
/// feature's range. Infinite values compare as the extremes they are (and do not widen ranges either).
///
/// # Cost
/// Learning: O(d) per row to buffer it, and once per block O(psi log psi) expected to grow a tree (a
/// constant feature costs O(n) to skip), so about O(log psi) per row; once the forest is full a new tree
/// reuses the buffers of the one it replaces (they grow only past their largest size so far). Scoring: O(n_estimators * ceil(log2 psi)),
/// allocation-free: a finite row descends every tree the full depth limit in branch-free steps (leaves
/// loop on themselves), eight trees in lockstep; a row with NaN or infinities takes a node-by-node descent.
/// Memory: psi * d values for the block and at most 2 psi - 1 nodes of 28 bytes (split, path length, size)
/// per tree. Each tree has its own generator, seeded from `(seed, number of trees grown before it)`, so
/// trees do not depend on the order or the thread in which they are grown.
///
/// # Deviations from onad 0.3.0
/// - `c(2) = 1`, the exact value (Liu, Ting & Zhou 2012; scikit-learn); onad's approximation gives 0.154,
///   which shortens the paths of two-row leaves. `c(psi)` is unchanged for psi >= 3.
/// - The split feature is drawn from the features that vary in the node; onad draws from all of them and
///   makes the node a leaf when the drawn one is constant, so one constant column stops 1/d of all nodes,
///   roots included (a tree that is a single leaf scores every row alike). Both children of a split
///   are non-empty (onad's value can equal the minimum, leaving an empty left child).
/// - Missing values as above; onad reads a missing key as 0.0, an arbitrary value on raw data.
/// - `max_samples = 1` is rejected (onad accepts it, then fails at the second row and would divide by
///   `c(1) = 0`).
/// - The generators are PCG64 seeded per tree, not numpy's one generator, so trees differ from onad's
///   for the same seed; `seed = None` means seed 0, not a fresh random seed. Features are taken in schema
///   order, not sorted by name.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::ASDIsolationForestParams;
/// let schema = Schema::shared(["latency_ms", "bytes"]).unwrap();
/// let params = ASDIsolationForestParams { n_estimators: 20, max_samples: 64, seed: Some(7) };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..1_000 {
///     model.learn_one(&[20.0 + (i % 13) as f64, 1_000.0 + (i % 29) as f64 * 10.0]);
/// }
/// let normal = model.score_one(&[26.0, 1_150.0]);
/// let spike = model.score_one(&[400.0, 90_000.0]);
/// assert!(spike > normal + 0.05, "{spike} vs {normal}"); // about 0.60 and 0.49
/// assert!(spike <= 1.0 && normal > 0.0);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ASDIsolationForest {
    n_estimators: usize,
    max_samples: usize,
    seed: u64,
    /// Number of features.
    d: usize,
    /// `ceil(log2 psi)`.
    max_depth: u32,
    /// `c(psi)`.
    c_psi: f64,
    /// The current block, row-major (fewer than psi rows).
    block: Vec<f64>,
    /// The forest, at most `n_estimators` trees; once full, `trees[oldest]` is the next to be replaced.
    trees: Vec<Tree>,
    oldest: usize,
    /// Trees grown so far (each one's generator is derived from it).
    grown: u64,
    /// Working space of tree growing, kept so that growing allocates nothing once the forest is full.
    #[serde(skip)]
    scratch: Scratch,
}

/// Reused buffers of tree growing.
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// Row indices into the block, partitioned in place node by node.
    rows: Vec<u32>,
    /// Feature indices, permuted in place to draw features without replacement.
    features: Vec<u32>,
}

/// One isolation tree as an arena: node 0 is the root, the two children of an inner node are adjacent.
///
/// Leaves point to themselves (`next` = own index) with `value = +inf`, so for a finite row the step
/// `at = next + (x[feature] >= value)` stays on a leaf once there: a row's descent is a fixed number of
/// branch-free steps, and several trees can be walked in lockstep. Serialized as [`StoredTree`] (leaves
/// carry their path length instead of the infinity, which text formats cannot hold).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "StoredTree", into = "StoredTree")]
struct Tree {
    nodes: Vec<Node>,
    /// The path length `depth + c(size)` of each leaf (0 at inner nodes).
    paths: Vec<f64>,
    /// Rows that reached each node while the tree grew (weights of the missing-value descent).
    sizes: Vec<u32>,
}

/// An inner node (rows with `x[feature] < value` go to `next`, the others to `next + 1`) or a leaf
/// (`next` is its own index, `value = +inf`, `feature = 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    value: f64,
    feature: u32,
    next: u32,
}

impl Node {
    fn leaf(at: usize) -> Node {
        Node { value: f64::INFINITY, feature: 0, next: at as u32 }
    }
}

/// The serialized form of a [`Tree`]: per node `(value, feature, next)`, a leaf's value its path length.
#[derive(Serialize, Deserialize)]
struct StoredTree {
    nodes: Vec<(f64, u32, u32)>,
    sizes: Vec<u32>,
}

impl From<Tree> for StoredTree {
    fn from(t: Tree) -> StoredTree {
        let nodes = t
            .nodes
            .iter()
            .zip(&t.paths)
            .enumerate()
            .map(|(i, (n, p))| if n.next as usize == i { (*p, 0, n.next) } else { (n.value, n.feature, n.next) })
            .collect();
        StoredTree { nodes, sizes: t.sizes }
    }
}

impl TryFrom<StoredTree> for Tree {
    type Error = String;
    fn try_from(s: StoredTree) -> Result<Tree, String> {
        let len = s.nodes.len();
        if len == 0 || s.sizes.len() != len {
            return Err(format!("a tree of {len} nodes and {} sizes", s.sizes.len()));
        }
        let mut t = Tree { nodes: Vec::with_capacity(len), paths: Vec::with_capacity(len), sizes: s.sizes };
        for (i, (value, feature, next)) in s.nodes.into_iter().enumerate() {
            let next = next as usize;
            if next == i {
                t.nodes.push(Node::leaf(i));
                t.paths.push(value);
            } else if next > i && next + 1 < len && value.is_finite() {
                t.nodes.push(Node { value, feature, next: next as u32 });
                t.paths.push(0.0);
            } else {
                return Err(format!("tree node {i} of {len} points to {next}"));
            }
        }
        Ok(t)
    }
}

impl DetectorParams for ASDIsolationForestParams {
    type Model = ASDIsolationForest;
    fn build(&self, schema: &SchemaRef) -> Result<ASDIsolationForest, ParamError> {
        if self.n_estimators == 0 {
            return Err(ParamError::invalid("n_estimators", "must be at least 1, got 0"));
        }
        // Node indices are u32 and a tree has up to 2 psi - 1 nodes.
        if !(2..=1 << 30).contains(&self.max_samples) {
            return Err(ParamError::invalid(
                "max_samples",
                format!("must be between 2 and 2^30, got {}", self.max_samples),
            ));
        }
        let d = schema.len();
        if d == 0 || d > u32::MAX as usize {
            return Err(ParamError::Schema(format!("ASDIsolationForest needs 1 to 2^32 - 2 features, got {d}")));
        }
        Ok(ASDIsolationForest {
            n_estimators: self.n_estimators,
            max_samples: self.max_samples,
            seed: self.seed.unwrap_or(0),
            d,
            max_depth: self.max_samples.next_power_of_two().trailing_zeros(),
            c_psi: average_path_length(self.max_samples),
            block: Vec::new(),
            trees: Vec::new(),
            oldest: 0,
            grown: 0,
            scratch: Scratch::default(),
        })
    }
}

/// Grows one tree from a block of rows; the tree's buffers are reused.
struct Grower<'a> {
    block: &'a [f64],
    d: usize,
    max_depth: u32,
    rng: Pcg64,
    features: &'a mut [u32],
    tree: &'a mut Tree,
}

impl Grower<'_> {
    /// The finite minimum and maximum of feature `f` over `rows` (NaN and infinities skipped).
    fn range(&self, rows: &[u32], f: usize) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &r in rows {
            let v = self.block[r as usize * self.d + f];
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo, hi)
    }

    fn leaf(&mut self, at: usize, n: usize, depth: u32) {
        self.tree.nodes[at] = Node::leaf(at);
        self.tree.paths[at] = f64::from(depth) + average_path_length(n);
    }

    /// Fills node `at` (already allocated) from `rows`, at depth `depth`.
    fn grow(&mut self, at: usize, rows: &mut [u32], depth: u32) {
        let n = rows.len();
        self.tree.sizes[at] = n as u32;
        if n <= 1 || depth >= self.max_depth {
            self.leaf(at, n, depth);
            return;
        }
        // Draw features without replacement until one varies in the node: uniform over those that do.
        let mut split = None;
        for k in 0..self.d {
            let j = k + below(&mut self.rng, self.d - k);
            self.features.swap(k, j);
            let f = self.features[k] as usize;
            let (lo, hi) = self.range(rows, f);
            if lo < hi {
                split = Some((f, lo, hi));
                break;
            }
        }
        let Some((f, lo, hi)) = split else {
            self.leaf(at, n, depth);
            return;
        };
        let u = unit(&mut self.rng);
        let width = hi - lo;
        let mut value = if width.is_finite() { lo + width * u } else { lo * (1.0 - u) + hi * u };
        // Both children non-empty: lo goes left, hi goes right.
        if value <= lo || value > hi {
            value = hi;
        }
        // Partition: rows with x[f] < value first (NaN and +inf compare false and go right).
        let mut n_left = 0;
        for i in 0..n {
            if self.block[rows[i] as usize * self.d + f] < value {
                rows.swap(i, n_left);
                n_left += 1;
            }
        }
        let left = self.tree.nodes.len();
        self.tree.nodes[at] = Node { value, feature: f as u32, next: left as u32 };
        self.tree.nodes.extend([Node::leaf(left), Node::leaf(left + 1)]);
        self.tree.paths.extend([0.0, 0.0]);
        self.tree.sizes.extend([0, 0]);
        let (l, r) = rows.split_at_mut(n_left);
        self.grow(left, l, depth + 1);
        self.grow(left + 1, r, depth + 1);
    }
}

/// Trees walked in lockstep by the finite-row descent (independent chains of loads overlap).
const LANES: usize = 8;

/// The leaves reached by `LANES` descents of `depth` steps, lane `k` through `nodes[k]` reading feature
/// `f` of its finite row as `value(k, f)`: the lanes' loads overlap. A fixed number of lanes, so the
/// compiler keeps the positions in registers. Used both ways: eight trees for one row (`score_one`) and
/// one tree for eight rows (batches).
#[inline(always)]
fn descend_lanes(nodes: [&[Node]; LANES], value: impl Fn(usize, usize) -> f64, depth: u32) -> [usize; LANES] {
    let mut at = [0usize; LANES];
    for _ in 0..depth {
        for k in 0..LANES {
            let n = nodes[k][at[k]];
            at[k] = n.next as usize + usize::from(value(k, n.feature as usize) >= n.value);
        }
    }
    at
}

/// The leaf one descent of `depth` steps reaches.
#[inline]
fn descend(nodes: &[Node], x: &[f64], depth: u32) -> usize {
    let mut at = 0;
    for _ in 0..depth {
        let n = nodes[at];
        at = n.next as usize + usize::from(x[n.feature as usize] >= n.value);
    }
    at
}

/// The sum of the path lengths of a finite row over `trees`, each descended `depth` steps.
fn sum_paths_finite(trees: &[Tree], x: &[f64], depth: u32) -> f64 {
    let mut total = 0.0;
    let mut groups = trees.chunks_exact(LANES);
    for group in &mut groups {
        let at = descend_lanes(std::array::from_fn(|k| group[k].nodes.as_slice()), |_, f| x[f], depth);
        for k in 0..LANES {
            total += group[k].paths[at[k]];
        }
    }
    for t in groups.remainder() {
        total += t.paths[descend(&t.nodes, x, depth)];
    }
    total
}

impl Tree {
    fn is_leaf(&self, at: usize) -> bool {
        self.nodes[at].next as usize == at
    }

    /// Path length of a finite row (a tree of depth at most `depth`).
    #[cfg(test)]
    fn path(&self, x: &[f64], depth: u32) -> f64 {
        sum_paths_finite(std::slice::from_ref(self), x, depth)
    }

    /// Expected path length from node `at`: through both children, weighted by their sizes, at a split on
    /// a missing value. Any row (NaN and infinities included).
    fn expected_path(&self, x: &[f64], at: usize) -> f64 {
        if self.is_leaf(at) {
            return self.paths[at];
        }
        let node = self.nodes[at];
        let v = x[node.feature as usize];
        let left = node.next as usize;
        if v.is_nan() {
            let (nl, nr) = (f64::from(self.sizes[left]), f64::from(self.sizes[left + 1]));
            (nl * self.expected_path(x, left) + nr * self.expected_path(x, left + 1)) / (nl + nr)
        } else {
            self.expected_path(x, left + usize::from(v >= node.value))
        }
    }
}

impl ASDIsolationForest {
    /// Number of trees in the forest now.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Grows a tree from the full block into the slot it will take.
    fn grow_tree(&mut self) {
        let psi = self.max_samples;
        let slot = if self.trees.len() < self.n_estimators {
            self.trees.push(Tree::default());
            self.trees.len() - 1
        } else {
            let s = self.oldest;
            self.oldest = (s + 1) % self.n_estimators;
            s
        };
        let scratch = &mut self.scratch;
        // From the identity each time, so a tree depends on (seed, index, block) only, not on the trees
        // grown before it in this process.
        scratch.features.clear();
        scratch.features.extend(0..self.d as u32);
        scratch.rows.clear();
        scratch.rows.extend(0..psi as u32);
        let tree = &mut self.trees[slot];
        tree.nodes.clear();
        tree.paths.clear();
        tree.sizes.clear();
        tree.nodes.push(Node::leaf(0));
        tree.paths.push(0.0);
        tree.sizes.push(0);
        let mut grower = Grower {
            block: &self.block,
            d: self.d,
            max_depth: self.max_depth,
            rng: unit_rng(self.seed, self.grown),
            features: &mut scratch.features,
            tree,
        };
        grower.grow(0, &mut scratch.rows, 0);
        self.grown += 1;
    }
}

impl ASDIsolationForest {
    /// Scores `rows` (consecutive rows of `batch` from `start`) against the current forest, tree by tree:
    /// each tree is descended by eight rows in lockstep while it is hot in cache, where `score_one` walks
    /// every tree for one row. Each row's path lengths are added in tree order from 0.0, as in
    /// `score_one`, so the scores are the same to the bit.
    fn score_rows(&self, batch: &Batch, rows: std::ops::Range<usize>, out: &mut Vec<f64>) {
        if self.trees.is_empty() {
            out.extend(rows.map(|_| 0.0));
            return;
        }
        let finite: Vec<usize> = rows.clone().filter(|&i| batch.row(i).iter().all(|v| v.is_finite())).collect();
        let mut totals = vec![0.0; rows.len()];
        let base = rows.start;
        for t in &self.trees {
            let (nodes, paths) = (t.nodes.as_slice(), t.paths.as_slice());
            let mut groups = finite.chunks_exact(LANES);
            for group in &mut groups {
                let xs: [&[f64]; LANES] = std::array::from_fn(|k| batch.row(group[k]));
                let at = descend_lanes([nodes; LANES], |k, f| xs[k][f], self.max_depth);
                for k in 0..LANES {
                    totals[group[k] - base] += paths[at[k]];
                }
            }
            for &i in groups.remainder() {
                totals[i - base] += paths[descend(nodes, batch.row(i), self.max_depth)];
            }
        }
        let trees = self.trees.len() as f64;
        for (i, total) in rows.zip(totals) {
            let x = batch.row(i);
            let total = if x.iter().all(|v| v.is_finite()) {
                total
            } else {
                self.trees.iter().map(|t| t.expected_path(x, 0)).sum()
            };
            out.push((-(total / trees) / self.c_psi).exp2());
        }
    }
}

impl Detector for ASDIsolationForest {
    fn learn_one(&mut self, x: &[f64]) {
        self.block.extend_from_slice(x);
        if self.block.len() == self.max_samples * self.d {
            self.grow_tree();
            // onad starts the next block with the row that completed this one.
            let last = self.block.len() - self.d;
            self.block.copy_within(last.., 0);
            self.block.truncate(self.d);
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.0;
        }
        let total: f64 = if x.iter().all(|v| v.is_finite()) {
            sum_paths_finite(&self.trees, x, self.max_depth)
        } else {
            self.trees.iter().map(|t| t.expected_path(x, 0)).sum()
        };
        let mean = total / self.trees.len() as f64;
        (-mean / self.c_psi).exp2()
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        self.score_rows(batch, 0..batch.num_rows(), out);
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        let (n, mut start) = (batch.num_rows(), 0);
        while start < n {
            // The forest changes only when a learned row completes the block: rows up to that one are
            // scored together, then learned.
            let in_block = self.block.len() / self.d;
            let end = n.min(start + (self.max_samples - in_block).max(1));
            self.score_rows(batch, start..end, out);
            for i in start..end {
                self.learn_one(batch.row(i));
            }
            start = end;
        }
    }
}

impl Describe for ASDIsolationForestParams {
    const REFERENCE: &'static str = "Ding & Fei 2013, An Anomaly Detection Approach Based on Isolation Forest Algorithm for Streaming Data using Sliding Window (IFAC); Liu, Ting & Zhou 2008, Isolation Forest (ICDM)";
    const SUMMARY: &'static str =
        "isolation forest of one tree per block of max_samples rows, the newest n_estimators kept (iForestASD)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "n_estimators",
            ty: "int >= 1",
            required: false,
            help: "trees kept, the newest (default 100)",
        },
        ParamDoc {
            name: "max_samples",
            ty: "int >= 2",
            required: false,
            help: "rows per tree: a tree grows from each block of this many rows (default 256)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the trees (default 0)" },
    ];
    fn example() -> Self {
        ASDIsolationForestParams { n_estimators: 100, max_samples: 256, seed: Some(42) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;
    use rand_core::RngCore;

    fn build(n_estimators: usize, max_samples: usize, seed: u64, d: usize) -> ASDIsolationForest {
        ASDIsolationForestParams { n_estimators, max_samples, seed: Some(seed) }
            .build(&Schema::numbered("f", d))
            .unwrap()
    }

    /// A deterministic cloud in [-1, 1]^2, dense at the centre (a low-discrepancy sequence, cubed).
    fn cloud(i: usize) -> [f64; 2] {
        let a = (i as f64 * 0.618_033_988_749_895).fract() * 2.0 - 1.0;
        let b = (i as f64 * 0.754_877_666_246_693).fract() * 2.0 - 1.0;
        // `a * a * a`, not `powi(3)`: LLVM may fold `powi` at compile time with another rounding than at run time.
        [a * a * a, b * b * b]
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 3);
        let err = |p: ASDIsolationForestParams| p.build(&schema).unwrap_err().to_string();
        let e = err(ASDIsolationForestParams { n_estimators: 0, ..Default::default() });
        assert!(e.contains("'n_estimators'"), "{e}");
        for bad in [0, 1, (1 << 30) + 1] {
            let e = err(ASDIsolationForestParams { max_samples: bad, ..Default::default() });
            assert!(e.contains("'max_samples'") && e.contains(&bad.to_string()), "{e}");
        }
        assert!(ASDIsolationForestParams { max_samples: 2, ..Default::default() }.build(&schema).is_ok());
    }

    #[test]
    fn trees_follow_onads_block_cadence_and_the_forest_keeps_the_newest() {
        let mut m = build(3, 8, 1, 2);
        let mut built_at = Vec::new();
        for i in 0..40 {
            let before = m.grown;
            m.learn_one(&cloud(i));
            if m.grown > before {
                built_at.push(i + 1);
            }
            assert!(m.block.len() < 8 * 2);
        }
        // The first tree after 8 rows, then every 7 (the boundary row starts the next block).
        assert_eq!(built_at, [8, 15, 22, 29, 36]);
        assert_eq!(m.n_trees(), 3);
        assert_eq!(m.oldest, 2, "trees 4 and 5 replaced slots 0 and 1");
        assert_eq!(m.block, [cloud(35), cloud(36), cloud(37), cloud(38), cloud(39)].concat());
    }

    #[test]
    fn tree_structure_is_a_valid_isolation_tree() {
        let mut m = build(1, 256, 3, 2);
        (0..256).for_each(|i| m.learn_one(&cloud(i)));
        let t = &m.trees[0];
        assert_eq!(t.nodes.len(), t.sizes.len());
        assert_eq!(t.sizes[0], 256);
        // Walk the tree: sizes add up, leaves carry depth + c(size), depth within ceil(log2 256) = 8.
        let mut stack = vec![(0usize, 0u32)];
        let (mut leaves, mut rows_in_leaves) = (0, 0);
        while let Some((at, depth)) = stack.pop() {
            let node = t.nodes[at];
            assert!(depth <= 8);
            if t.is_leaf(at) {
                let size = t.sizes[at] as usize;
                assert!(size >= 1, "no empty leaves");
                assert_eq!(node.value, f64::INFINITY);
                assert_eq!(t.paths[at], f64::from(depth) + average_path_length(size));
                assert!(size == 1 || depth == 8, "a leaf above the limit holds one row (all rows distinct)");
                leaves += 1;
                rows_in_leaves += size;
            } else {
                let l = node.next as usize;
                assert!(l > at && node.value.is_finite());
                assert_eq!(t.paths[at], 0.0);
                assert_eq!(t.sizes[l] + t.sizes[l + 1], t.sizes[at]);
                assert!(t.sizes[l] > 0 && t.sizes[l + 1] > 0);
                stack.push((l, depth + 1));
                stack.push((l + 1, depth + 1));
            }
        }
        assert_eq!(rows_in_leaves, 256);
        assert_eq!(t.nodes.len(), 2 * leaves - 1);
        // Every learned row lands in a leaf: its path is at most 8 + c(size of that leaf).
        for i in 0..256 {
            assert!(t.path(&cloud(i), 8) <= 8.0 + average_path_length(256));
        }
    }

    #[test]
    fn an_obvious_outlier_scores_higher_and_scores_are_in_the_unit_interval() {
        let mut m = build(50, 128, 11, 2);
        assert_eq!(m.score_one(&[0.0, 0.0]), 0.0, "no tree yet");
        (0..3_000).for_each(|i| m.learn_one(&cloud(i)));
        assert_eq!(m.n_trees(), 23);
        let centre = m.score_one(&[0.0, 0.0]);
        let edge = m.score_one(&[0.95, 0.0]);
        let outlier = m.score_one(&[6.0, 6.0]);
        let far = m.score_one(&[1e300, -1e300]);
        assert!(centre < 0.4 && centre > 0.2, "{centre}");
        assert!(edge > centre + 0.1, "{edge} vs {centre}");
        assert!(outlier > 0.7 && outlier > edge + 0.1, "{outlier} vs {edge}");
        // Beyond the range every split sends the row to the same side: as isolated as the outlier.
        assert_eq!(far, m.score_one(&[7.0, -8.0]));
        // The exact score of the outlier: 2^(-mean path / c(128)).
        let mean = m.trees.iter().map(|t| t.path(&[6.0, 6.0], 7)).sum::<f64>() / 23.0;
        assert_eq!(outlier, (-mean / average_path_length(128)).exp2());
    }

    #[test]
    fn a_constant_column_does_not_stop_the_trees() {
        // Column 0 is constant; onad would make 1/2 of all nodes (roots included) leaves here.
        let mut m = build(20, 64, 5, 2);
        (0..2_000).for_each(|i| m.learn_one(&[3.0, cloud(i)[0]]));
        for t in &m.trees {
            assert!(t.nodes.len() > 1, "a tree stopped at its root");
            assert!((0..t.nodes.len()).all(|i| t.is_leaf(i) || t.nodes[i].feature == 1));
        }
        assert!(m.score_one(&[3.0, 9.0]) > m.score_one(&[3.0, 0.0]) + 0.2);
    }

    #[test]
    fn missing_values_average_both_children_by_their_sizes() {
        let mut m = build(1, 4, 0, 2);
        for r in [[0.0, 0.0], [1.0, 0.0], [2.0, 1.0], [3.0, 1.0]] {
            m.learn_one(&r);
        }
        let t = &m.trees[0];
        // Brute force: the expected path of a row missing feature f is the size-weighted mean over the
        // leaves its known features allow.
        fn by_hand(t: &Tree, x: &[f64], at: usize) -> (f64, f64) {
            let n = t.nodes[at];
            if t.is_leaf(at) {
                return (t.paths[at] * f64::from(t.sizes[at]), f64::from(t.sizes[at]));
            }
            let v = x[n.feature as usize];
            let l = n.next as usize;
            if v.is_nan() {
                let (a, wa) = by_hand(t, x, l);
                let (b, wb) = by_hand(t, x, l + 1);
                (a + b, wa + wb)
            } else {
                by_hand(t, x, l + usize::from(v >= n.value))
            }
        }
        for x in [[f64::NAN, 0.0], [f64::NAN, 1.0], [0.5, f64::NAN], [f64::NAN, f64::NAN]] {
            let (sum, weight) = by_hand(t, &x, 0);
            assert!((t.expected_path(&x, 0) - sum / weight).abs() < 1e-12, "{x:?}");
        }
        // Nothing known: the mean path of the learned rows.
        let all: f64 = [[0.0, 0.0], [1.0, 0.0], [2.0, 1.0], [3.0, 1.0]].iter().map(|r| t.path(r, 2)).sum::<f64>() / 4.0;
        assert!((t.expected_path(&[f64::NAN, f64::NAN], 0) - all).abs() < 1e-12);
        // Without NaN, both descents agree.
        assert_eq!(t.expected_path(&[2.5, 0.0], 0), t.path(&[2.5, 0.0], 2));
        let s = m.score_one(&[f64::NAN, f64::NAN]);
        assert!(s > 0.0 && s < 1.0, "{s}");
    }

    #[test]
    fn non_finite_training_values_neither_panic_nor_widen_ranges() {
        let mut m = build(4, 32, 2, 3);
        for i in 0..400 {
            let c = cloud(i);
            let odd = match i % 5 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                _ => c[1],
            };
            m.learn_one(&[c[0], odd, if i % 3 == 0 { f64::NAN } else { 1.0 }]);
        }
        for t in &m.trees {
            assert!((0..t.nodes.len()).all(|i| t.is_leaf(i) || t.nodes[i].value.is_finite()));
            assert!(t.paths.iter().all(|p| p.is_finite()));
            assert!((0..t.nodes.len()).all(|i| t.is_leaf(i) || t.nodes[i].feature != 2), "1.0 and NaN: constant");
        }
        for x in [[0.0, 0.0, 1.0], [f64::INFINITY, f64::NAN, f64::NEG_INFINITY], [f64::NAN; 3]] {
            let s = m.score_one(&x);
            assert!(s > 0.0 && s <= 1.0, "{x:?}: {s}");
        }
    }

    #[test]
    fn trees_depend_on_seed_and_index_only() {
        let rows: Vec<[f64; 2]> = (0..1_000).map(cloud).collect();
        let run = |seed| {
            let mut m = build(3, 100, seed, 2);
            rows.iter().for_each(|r| m.learn_one(r));
            m
        };
        let (a, b, c) = (run(1), run(1), run(2));
        let probe = [0.3, -0.7];
        assert_eq!(a.score_one(&probe).to_bits(), b.score_one(&probe).to_bits());
        assert_ne!(a.score_one(&probe), c.score_one(&probe));
        // Seeds 1 and 2 must not give the same trees shifted by one (tree k of seed 2 = tree k+1 of seed 1).
        let paths = |m: &ASDIsolationForest| m.trees.iter().map(|t| t.path(&probe, 7)).collect::<Vec<_>>();
        let (pa, pc) = (paths(&a), paths(&c));
        assert!(pa.iter().zip(&pc).any(|(x, y)| x != y));
        // The rng of a tree is a function of (seed, index): same first draws for the same pair.
        assert_eq!(unit_rng(9, 4).next_u64(), unit_rng(9, 4).next_u64());
        assert_ne!(unit_rng(9, 4).next_u64(), unit_rng(9, 5).next_u64());
        assert_ne!(unit_rng(9, 5).next_u64(), unit_rng(10, 4).next_u64());
    }

    #[test]
    fn lockstep_descent_equals_the_node_by_node_one() {
        // 13 trees: one full group of LANES and a partial one.
        let mut m = build(13, 32, 4, 2);
        (0..1_000).for_each(|i| m.learn_one(&cloud(i)));
        assert_eq!(m.n_trees(), 13);
        for i in 0..500 {
            let x = cloud(i * 3 + 1).map(|v| v * 1.5);
            let lockstep = sum_paths_finite(&m.trees, &x, m.max_depth);
            let by_node: f64 = m.trees.iter().map(|t| t.expected_path(&x, 0)).sum();
            assert!((lockstep - by_node).abs() < 1e-12, "{x:?}: {lockstep} vs {by_node}");
        }
        // Infinite values take the node-by-node descent and land where the extreme finite values do.
        assert_eq!(m.score_one(&[f64::INFINITY, f64::NEG_INFINITY]), m.score_one(&[1e300, -1e300]));
    }

    #[test]
    fn state_round_trips_after_the_forest_wrapped() {
        let mut a = build(4, 16, 8, 2);
        (0..200).for_each(|i| a.learn_one(&cloud(i)));
        assert!(a.grown > 8, "the ring wrapped twice");
        let mut b: ASDIsolationForest = postcard::from_bytes(&postcard::to_stdvec(&a).unwrap()).unwrap();
        for i in 200..400 {
            let x = cloud(i * 7);
            assert_eq!(a.score_learn_one(&x).to_bits(), b.score_learn_one(&x).to_bits(), "row {i}");
        }
        assert_eq!(postcard::to_stdvec(&a).unwrap(), postcard::to_stdvec(&b).unwrap());
        // Text formats too: the stored form holds no infinity (serde_json would write it as null).
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("null"), "{json}");
        let c: ASDIsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(c.trees.len(), a.trees.len());
        for (s, t) in c.trees.iter().zip(&a.trees) {
            assert_eq!(s.nodes.len(), t.nodes.len());
            assert!((0..t.nodes.len()).all(|i| s.is_leaf(i) == t.is_leaf(i)));
        }
        // A damaged tree fails to load instead of panicking later.
        let bad = StoredTree { nodes: vec![(0.5, 0, 5), (1.0, 0, 1), (1.0, 0, 2)], sizes: vec![2, 1, 1] };
        assert!(Tree::try_from(bad).unwrap_err().contains("points to 5"));
    }
}
