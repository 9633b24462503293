//! HalfSpaceTrees: mass profiles of random half-space trees over a work space learned from the first window
//! (Tan, Ting & Liu 2011).

use std::collections::BTreeMap;

use onad_core::{Batch, Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::registry::Describe;
use crate::rng::{below, unit, unit_rng};

/// Hyperparameters of [`HalfSpaceTrees`] (aberrant's names and defaults, and river's `limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HalfSpaceTreesParams {
    /// Trees in the ensemble, 1 to 4096.
    pub n_trees: usize,
    /// Depth of every tree (a complete tree of `2^(height+1) - 1` nodes), 1 to 20.
    pub height: u32,
    /// Rows per window (psi): the reference masses are those of the last complete window, 1 to 2^31.
    pub window_size: usize,
    /// Optional fixed ranges `feature -> (lo, hi)` (river's `limits`) from which the work space of those
    /// features is drawn; the features not listed take the range they had in the first window.
    pub limits: Option<BTreeMap<String, (f64, f64)>>,
    /// Seed of the work spaces and split dimensions; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for HalfSpaceTreesParams {
    fn default() -> Self {
        HalfSpaceTreesParams { n_trees: 10, height: 8, window_size: 250, limits: None, seed: None }
    }
}

/// Half-Space Trees (Tan, Ting & Liu 2011, "Fast Anomaly Detection for Streaming Data", IJCAI): an
/// ensemble of random trees that halve a random work space, built once, whose node masses (rows that
/// passed through a node in a window) are the density estimate. Low mass where a row falls means anomaly.
///
/// # Algorithm
/// - **Work space**, from the first `window_size` (psi) rows, as the paper does: per feature the range
///   `[min, max]` of its finite values in that window (or the range given in `limits`). Each tree draws
///   per feature a point `s` uniformly in the range and takes `s -/+ 2 max(s - min, max - s)` as its work
///   space, so every tree's space holds the whole range with a random margin.
/// - **Trees**: complete binary trees of depth `height`; each inner node takes a dimension drawn uniformly
///   and splits its current interval there at the midpoint (rows with `x < mid` go left). The trees are
///   built once, when the first window completes, and never change shape.
/// - **Masses**: each node counts the rows of the latest window that passed through it; when a window
///   completes its counts become the reference masses `r` and counting starts again. The first window's
///   rows are kept, the trees built from them, and then counted as the first reference.
/// - **Score** (higher = more anomalous): per tree, descend from the root while the node is not a leaf and
///   its reference mass `r > 0.1 psi`; the terminal node at depth `k` gives `r 2^k`. The score is
///   `1 - sum / (n_trees psi 2^height)`, in [0, 1] (the largest possible sum is `n_trees psi 2^height`).
///   0.0 until the first window completes.
///
/// Works on raw, unscaled data with its defaults (the work space is in the data's own units), and behind
/// a scaler. Features that were constant (or had no finite value) in the first window get the range
/// `value -/+ 0.5 max(|value|, 1)`.
///
/// Missing values: a row whose split feature is missing stops at that node. Learning counts it in the
/// nodes down to there and not below; scoring takes that node as terminal (its `r 2^k`: the mass at the
/// resolution the known features allow). Infinite values compare as the extremes they are and do not
/// enter the first window's ranges.
///
/// # Deviations from the references
/// - The stop rule is the paper's `r <= sizeLimit` with `sizeLimit = 0.1 psi` (as aberrant; river stops at
///   `r < 0.1 psi`), and the normaliser is aberrant's `n_trees psi 2^height` (river divides by
///   `n_trees psi (2^(height+1) - 1)`, which does not bound the score in [0, 1] tightly). The ranking
///   of rows does not depend on the normaliser.
/// - aberrant and river draw the work space from [0, 1] and expect inputs scaled there; here it comes from
///   the first window (the paper's method), so raw data works. `limits` is river's option, as a fixed
///   range per feature instead of river's rescaling of the input to [0, 1] (the same trees up to that
///   affine map).
/// - The counts of a window are made when it completes, from its rows, and only where scoring can read
///   them: the children of a node with `r <= 0.1 psi` are never read before they are counted again, so
///   they are not counted (their stale values stay in the state). Scores are those of counting every node.
/// - Generators are PCG64, one per tree from `(seed, tree index)`; `seed = None` means 0.
///
/// # Cost
/// Learning: O(d) per row to keep it, and per completed window O(n_trees psi depth) where depth is where
/// masses fall to `0.1 psi` (about `log2 10` levels on dense data, `height` at most); building the trees
/// once costs O(n_trees 2^height). Scoring: O(n_trees) node visits of the same depth, integer sums
/// (exact, so every summation order gives the same bits); `score_many` and `score_learn_many` walk
/// the trees one at a time over the batch, eight rows in lockstep (branch-free steps; a lane that has
/// stopped waits), which about doubles their speed over one row at a time. Memory: `n_trees (2^(height+1) - 1)` nodes of 16 bytes (40 KB
/// per tree at height 8, 1 MB at height 15) and psi d values for the window.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::HalfSpaceTreesParams;
/// let schema = Schema::shared(["latency_ms", "bytes"]).unwrap();
/// let mut model = HalfSpaceTreesParams { n_trees: 25, seed: Some(7), ..Default::default() }.build(&schema).unwrap();
/// for i in 0..1_000 {
///     model.learn_one(&[20.0 + (i % 13) as f64, 1_000.0 + (i % 29) as f64 * 10.0]);
/// }
/// let normal = model.score_one(&[26.0, 1_150.0]);
/// let spike = model.score_one(&[31.0, 90_000.0]);
/// assert!(spike > normal + 0.02, "{spike} vs {normal}"); // about 0.998 and 0.975: scores crowd near 1
/// assert!((0.0..=1.0).contains(&spike) && (0.0..=1.0).contains(&normal));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HalfSpaceTrees {
    n_trees: usize,
    height: u32,
    window_size: usize,
    seed: u64,
    d: usize,
    /// Fixed ranges per feature (from `limits`).
    limits: Vec<Option<(f64, f64)>>,
    /// The rows of the current window, row-major (fewer than psi rows).
    window: Vec<f64>,
    /// The trees, empty until the first window completes.
    trees: Vec<Tree>,
    /// Windows completed.
    windows: u64,
    /// Row indices of the window, partitioned while counting.
    #[serde(skip)]
    scratch: Vec<u32>,
}

/// One complete tree: node `i` has children `2i + 1` and `2i + 2`; leaves are the last `2^height` nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

/// A node: its split (unused at leaves) and its reference mass.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Node {
    split: f64,
    feature: u32,
    mass: u32,
}

const MAX_TREES: usize = 4096;
/// Rows times trees below which a batch is not split among threads (a thread's start-up, ~20 us, is
/// worth about 20,000 tree descents).
const PARALLEL_WORK: usize = 1 << 16;
const MAX_HEIGHT: u32 = 20;
const MAX_WINDOW: usize = 1 << 31;

impl DetectorParams for HalfSpaceTreesParams {
    type Model = HalfSpaceTrees;
    fn build(&self, schema: &SchemaRef) -> Result<HalfSpaceTrees, ParamError> {
        if !(1..=MAX_TREES).contains(&self.n_trees) {
            return Err(ParamError::invalid(
                "n_trees",
                format!("must be between 1 and {MAX_TREES}, got {}", self.n_trees),
            ));
        }
        if !(1..=MAX_HEIGHT).contains(&self.height) {
            return Err(ParamError::invalid(
                "height",
                format!("must be between 1 and {MAX_HEIGHT}, got {}", self.height),
            ));
        }
        if !(1..=MAX_WINDOW).contains(&self.window_size) {
            return Err(ParamError::invalid(
                "window_size",
                format!("must be between 1 and 2^31, got {}", self.window_size),
            ));
        }
        let d = schema.len();
        if d == 0 || d > u32::MAX as usize {
            return Err(ParamError::Schema(format!("HalfSpaceTrees needs 1 to 2^32 - 1 features, got {d}")));
        }
        let mut limits = vec![None; d];
        for (name, &(lo, hi)) in self.limits.iter().flatten() {
            let Some(at) = schema.names().iter().position(|n| n == name) else {
                return Err(ParamError::invalid("limits", format!("names `{name}`, which is not an input feature")));
            };
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(ParamError::invalid(
                    "limits",
                    format!("the range of `{name}` must be finite with lo < hi, got ({lo}, {hi})"),
                ));
            }
            limits[at] = Some((lo, hi));
        }
        Ok(HalfSpaceTrees {
            n_trees: self.n_trees,
            height: self.height,
            window_size: self.window_size,
            seed: self.seed.unwrap_or(0),
            d,
            limits,
            window: Vec::new(),
            trees: Vec::new(),
            windows: 0,
            scratch: Vec::new(),
        })
    }
}

/// The midpoint of `[lo, hi]` without overflow.
fn midpoint(lo: f64, hi: f64) -> f64 {
    let m = (lo + hi) / 2.0;
    if m.is_finite() { m } else { lo / 2.0 + hi / 2.0 }
}

/// Fills the splits of the subtree at `at` (depth `depth`) over the box `[lower, upper]`, in preorder.
fn build_splits(
    nodes: &mut [Node],
    at: usize,
    depth: u32,
    height: u32,
    lower: &mut [f64],
    upper: &mut [f64],
    rng: &mut Pcg64,
) {
    if depth == height {
        return;
    }
    let q = below(rng, lower.len());
    let mid = midpoint(lower[q], upper[q]);
    nodes[at].split = mid;
    nodes[at].feature = q as u32;
    let saved = upper[q];
    upper[q] = mid;
    build_splits(nodes, 2 * at + 1, depth + 1, height, lower, upper, rng);
    upper[q] = saved;
    let saved = lower[q];
    lower[q] = mid;
    build_splits(nodes, 2 * at + 2, depth + 1, height, lower, upper, rng);
    lower[q] = saved;
}

/// Sets the masses of the subtree at `at` from the window rows `rows` reaching it, down to where
/// scoring stops (a node of mass `<= limit`, or a leaf). Rows missing the split feature stop here (when
/// `nan` says the window has missing values at all).
#[allow(clippy::too_many_arguments)]
fn count(
    nodes: &mut [Node],
    at: usize,
    depth: u32,
    height: u32,
    limit: u32,
    rows: &mut [u32],
    window: &[f64],
    d: usize,
    nan: bool,
) {
    let n = rows.len() as u32;
    nodes[at].mass = n;
    if depth == height || n <= limit {
        return;
    }
    let Node { split, feature, .. } = nodes[at];
    let f = feature as usize;
    let value = |r: u32| window[r as usize * d + f];
    // [left | right | missing]
    let mut known = rows.len();
    if nan {
        let mut i = 0;
        while i < known {
            if value(rows[i]).is_nan() {
                known -= 1;
                rows.swap(i, known);
            } else {
                i += 1;
            }
        }
    }
    // Branch-free partition: rows[left..i] always holds rows going right, so swapping row i in and
    // advancing `left` only when it goes left keeps that true.
    let mut left = 0;
    for i in 0..known {
        let r = rows[i];
        let goes_left = value(r) < split;
        rows[i] = rows[left];
        rows[left] = r;
        left += usize::from(goes_left);
    }
    let (l, rest) = rows.split_at_mut(left);
    count(nodes, 2 * at + 1, depth + 1, height, limit, l, window, d, nan);
    count(nodes, 2 * at + 2, depth + 1, height, limit, &mut rest[..known - left], window, d, nan);
}

/// Rows descended in lockstep through one tree (independent chains of loads overlap).
const LANES: usize = 8;

/// `r 2^k` of the terminal nodes of `LANES` rows in one tree, descended in lockstep: a lane that has
/// stopped stays where it is, and the loop ends when every lane has stopped or reached the leaves.
#[inline(always)]
fn lane_totals(nodes: &[Node], xs: [&[f64]; LANES], height: u32, limit: u32) -> [u64; LANES] {
    let mut at = [0usize; LANES];
    let mut live = [true; LANES];
    for _ in 0..height {
        let mut any = false;
        for k in 0..LANES {
            let n = nodes[at[k]];
            let v = xs[k][n.feature as usize];
            let go = live[k] & (n.mass > limit) & !v.is_nan();
            let child = 2 * at[k] + 1 + usize::from(v >= n.split);
            at[k] = if go { child } else { at[k] };
            live[k] = go;
            any |= go;
        }
        if !any {
            break;
        }
    }
    // A node's depth is floor(log2(index + 1)) in the heap layout.
    std::array::from_fn(|k| u64::from(nodes[at[k]].mass) << (usize::BITS - 1 - (at[k] + 1).leading_zeros()))
}

/// Adds to `totals[i]` the `r 2^k` of row `rows.start + i` of `batch` in every tree of `trees`, tree by
/// tree (each tree stays in cache over the rows), eight rows in lockstep.
fn add_totals(
    trees: &[Tree],
    batch: &Batch,
    rows: std::ops::Range<usize>,
    height: u32,
    limit: u32,
    totals: &mut [u64],
) {
    let base = rows.start;
    let full = rows.len() / LANES;
    for tree in trees {
        let nodes = tree.nodes.as_slice();
        for g in rows.clone().step_by(LANES).take(full) {
            let t = lane_totals(nodes, std::array::from_fn(|k| batch.row(g + k)), height, limit);
            for k in 0..LANES {
                totals[g - base + k] += t[k];
            }
        }
        for i in base + full * LANES..rows.end {
            totals[i - base] += HalfSpaceTrees::tree_total(nodes, batch.row(i), height, limit);
        }
    }
}

impl HalfSpaceTrees {
    /// The reference mass limit `0.1 psi`: `r <= 0.1 psi` exactly when `r <= floor(psi / 10)`.
    fn limit(&self) -> u32 {
        (self.window_size / 10) as u32
    }

    /// The largest possible sum of `r 2^k` over the trees.
    fn max_total(&self) -> u64 {
        (self.n_trees as u64 * self.window_size as u64) << self.height
    }

    /// `r 2^k` of the terminal node of `x` in one tree.
    #[inline(always)]
    fn tree_total(nodes: &[Node], x: &[f64], height: u32, limit: u32) -> u64 {
        let mut at = 0;
        let mut depth = 0;
        loop {
            let n = nodes[at];
            if depth == height || n.mass <= limit {
                return u64::from(n.mass) << depth;
            }
            let v = x[n.feature as usize];
            if v.is_nan() {
                return u64::from(n.mass) << depth;
            }
            at = 2 * at + 1 + usize::from(v >= n.split);
            depth += 1;
        }
    }

    fn score_from_total(&self, total: u64) -> f64 {
        let max = self.max_total();
        (max - total.min(max)) as f64 / max as f64
    }

    /// The work-space range of each feature: `limits`, else the finite range of the window.
    fn ranges(&self) -> Vec<(f64, f64)> {
        (0..self.d)
            .map(|f| {
                if let Some(r) = self.limits[f] {
                    return r;
                }
                let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                for row in self.window.chunks_exact(self.d) {
                    let v = row[f];
                    if v.is_finite() {
                        lo = lo.min(v);
                        hi = hi.max(v);
                    }
                }
                if lo > hi {
                    (lo, hi) = (0.0, 0.0);
                }
                if lo == hi {
                    let pad = 0.5 * lo.abs().max(1.0);
                    (lo - pad, hi + pad)
                } else {
                    (lo, hi)
                }
            })
            .collect()
    }

    /// Builds the trees from the first window's ranges.
    fn build_trees(&mut self) {
        let ranges = self.ranges();
        let n_nodes = (1usize << (self.height + 1)) - 1;
        let (mut lower, mut upper) = (vec![0.0; self.d], vec![0.0; self.d]);
        self.trees = (0..self.n_trees)
            .map(|t| {
                let mut rng = unit_rng(self.seed, t as u64);
                for (f, &(lo, hi)) in ranges.iter().enumerate() {
                    let u = unit(&mut rng);
                    let width = hi - lo;
                    let s = if width.is_finite() { lo + width * u } else { lo * (1.0 - u) + hi * u };
                    let half = 2.0 * (s - lo).max(hi - s);
                    lower[f] = (s - half).max(f64::MIN);
                    upper[f] = (s + half).min(f64::MAX);
                }
                let mut nodes = vec![Node::default(); n_nodes];
                build_splits(&mut nodes, 0, 0, self.height, &mut lower, &mut upper, &mut rng);
                Tree { nodes }
            })
            .collect();
    }

    /// The window is complete: (build the trees the first time and) count it as the new reference.
    fn close_window(&mut self) {
        if self.trees.is_empty() {
            self.build_trees();
        }
        let (height, limit, d) = (self.height, self.limit(), self.d);
        let nan = self.window.iter().any(|v| v.is_nan());
        for tree in &mut self.trees {
            self.scratch.clear();
            self.scratch.extend(0..self.window_size as u32);
            count(&mut tree.nodes, 0, 0, height, limit, &mut self.scratch, &self.window, d, nan);
        }
        self.window.clear();
        self.windows += 1;
    }

    /// Scores `rows` of `batch` tree by tree (each tree stays in cache over the rows).
    fn score_rows(&self, batch: &Batch, rows: std::ops::Range<usize>, out: &mut Vec<f64>) {
        if self.trees.is_empty() {
            out.extend(rows.map(|_| 0.0));
            return;
        }
        let mut totals = vec![0u64; rows.len()];
        add_totals(&self.trees, batch, rows, self.height, self.limit(), &mut totals);
        out.extend(totals.into_iter().map(|t| self.score_from_total(t)));
    }

    /// `score_learn_many` from row `start` on, once the trees exist, with the trees split among `threads`
    /// threads: each scores every row with its own trees and counts every window that closes into them,
    /// so the per-row sums (integers) and the trees are those of the one-thread loop.
    fn score_learn_parallel(&mut self, batch: &Batch, start: usize, threads: usize, out: &mut Vec<f64>) {
        let (d, psi, n) = (self.d, self.window_size, batch.num_rows());
        let held = self.window.len() / d;
        // The current window's rows, then the batch's: every window that closes is a slice of them.
        let mut rows = std::mem::take(&mut self.window);
        rows.extend_from_slice(&batch.values()[start * d..n * d]);
        // Segments of batch rows scored against one reference, each (but maybe the last) closing a window.
        let mut segments = Vec::new();
        let (mut at, mut first) = (start, held);
        while at < n {
            let end = n.min(at + psi - first);
            segments.push((at..end, end - at + first == psi));
            (at, first) = (end, 0);
        }
        let closes = segments.iter().filter(|s| s.1).count();
        let nan: Vec<bool> =
            (0..closes).map(|w| rows[w * psi * d..(w + 1) * psi * d].iter().any(|v| v.is_nan())).collect();
        let (height, limit) = (self.height, self.limit());
        let per = self.trees.len().div_ceil(threads);
        let (segments, rows_ref, nan) = (&segments, &rows, &nan);
        let parts: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .trees
                .chunks_mut(per)
                .map(|trees| {
                    scope.spawn(move || {
                        let mut totals = vec![0u64; n - start];
                        let mut scratch = Vec::with_capacity(psi);
                        let mut window = 0;
                        for (range, closes) in segments {
                            let at = range.start - start..range.end - start;
                            add_totals(trees, batch, range.clone(), height, limit, &mut totals[at]);
                            if *closes {
                                let rows = &rows_ref[window * psi * d..(window + 1) * psi * d];
                                for tree in trees.iter_mut() {
                                    scratch.clear();
                                    scratch.extend(0..psi as u32);
                                    count(&mut tree.nodes, 0, 0, height, limit, &mut scratch, rows, d, nan[window]);
                                }
                                window += 1;
                            }
                        }
                        totals
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        let mut totals = vec![0u64; n - start];
        for part in &parts {
            for (t, p) in totals.iter_mut().zip(part) {
                *t += p;
            }
        }
        out.extend(totals.into_iter().map(|t| self.score_from_total(t)));
        self.window = rows.split_off(closes * psi * d);
        self.windows += closes as u64;
    }

    /// Windows completed so far.
    pub fn windows(&self) -> u64 {
        self.windows
    }
}

impl Detector for HalfSpaceTrees {
    fn learn_one(&mut self, x: &[f64]) {
        self.window.extend_from_slice(x);
        if self.window.len() == self.window_size * self.d {
            self.close_window();
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.0;
        }
        let (height, limit) = (self.height, self.limit());
        let total: u64 = self.trees.iter().map(|t| Self::tree_total(&t.nodes, x, height, limit)).sum();
        self.score_from_total(total)
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        self.score_rows(batch, 0..batch.num_rows(), out);
    }

    fn learn_many(&mut self, batch: &Batch) {
        for i in 0..batch.num_rows() {
            self.learn_one(batch.row(i));
        }
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        let (n, mut start) = (batch.num_rows(), 0);
        while start < n {
            if !self.trees.is_empty()
                && let Some(threads) = super::tree_threads(self.n_trees, n - start, PARALLEL_WORK)
            {
                self.score_learn_parallel(batch, start, threads, out);
                return;
            }
            // The reference changes only when a learned row completes the window.
            let in_window = self.window.len() / self.d;
            let end = n.min(start + self.window_size - in_window);
            self.score_rows(batch, start..end, out);
            for i in start..end {
                self.learn_one(batch.row(i));
            }
            start = end;
        }
    }
}

impl Describe for HalfSpaceTreesParams {
    const REFERENCE: &'static str = "Tan, Ting & Liu 2011, Fast Anomaly Detection for Streaming Data (IJCAI)";
    const SUMMARY: &'static str =
        "half-space trees: node masses of random trees over a work space learned from the first window";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "n_trees", ty: "int in 1..=4096", required: false, help: "trees (default 10)" },
        ParamDoc { name: "height", ty: "int in 1..=20", required: false, help: "depth of every tree (default 8)" },
        ParamDoc {
            name: "window_size",
            ty: "int in 1..=2^31",
            required: false,
            help: "rows per window; the last complete window is the reference (default 250)",
        },
        ParamDoc {
            name: "limits",
            ty: "{feature: [lo, hi]}",
            required: false,
            help: "fixed work-space ranges of some features (default: each feature's range in the first window)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the trees (default 0)" },
    ];
    fn example() -> Self {
        HalfSpaceTreesParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(n_trees: usize, height: u32, window_size: usize, seed: u64, d: usize) -> HalfSpaceTrees {
        HalfSpaceTreesParams { n_trees, height, window_size, limits: None, seed: Some(seed) }
            .build(&Schema::numbered("f", d))
            .unwrap()
    }

    /// A deterministic cloud in [-1, 1]^2, dense at the centre.
    fn cloud(i: usize) -> [f64; 2] {
        let a = (i as f64 * 0.618_033_988_749_895).fract() * 2.0 - 1.0;
        let b = (i as f64 * 0.754_877_666_246_693).fract() * 2.0 - 1.0;
        [a * a * a * 100.0, b * b * b * 0.01 + 7.0]
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        let err = |p: HalfSpaceTreesParams| p.build(&schema).unwrap_err().to_string();
        for n in [0, 4097] {
            assert!(err(HalfSpaceTreesParams { n_trees: n, ..Default::default() }).contains("'n_trees'"));
        }
        for h in [0, 21] {
            assert!(err(HalfSpaceTreesParams { height: h, ..Default::default() }).contains("'height'"));
        }
        assert!(err(HalfSpaceTreesParams { window_size: 0, ..Default::default() }).contains("'window_size'"));
        let limits = |name: &str, r| Some(BTreeMap::from([(name.to_string(), r)]));
        let e = err(HalfSpaceTreesParams { limits: limits("g", (0.0, 1.0)), ..Default::default() });
        assert!(e.contains("'limits'") && e.contains("`g`"), "{e}");
        let e = err(HalfSpaceTreesParams { limits: limits("f0", (1.0, 1.0)), ..Default::default() });
        assert!(e.contains("'limits'"), "{e}");
        assert!(HalfSpaceTreesParams { limits: limits("f1", (0.0, 1.0)), ..Default::default() }.build(&schema).is_ok());
    }

    #[test]
    fn scores_are_zero_during_the_first_window_then_the_reference_is_that_window() {
        let mut m = build(5, 4, 50, 1, 2);
        for i in 0..49 {
            assert_eq!(m.score_learn_one(&cloud(i)), 0.0);
        }
        assert!(m.trees.is_empty());
        m.learn_one(&cloud(49));
        assert_eq!(m.windows(), 1);
        for t in &m.trees {
            assert_eq!(t.nodes.len(), 31);
            assert_eq!(t.nodes[0].mass, 50, "every row passes the root");
        }
        assert!(m.score_one(&cloud(3)) > 0.0 || m.score_one(&[1e6, 1e6]) > 0.0);
    }

    #[test]
    fn hand_checked_tree_of_height_one() {
        // One tree, height 1, window 4, one feature: the root splits the work space at its midpoint.
        let mut m = build(1, 1, 4, 3, 1);
        for v in [0.0, 1.0, 2.0, 3.0] {
            m.learn_one(&[v]);
        }
        let root = m.trees[0].nodes[0];
        assert_eq!(root.feature, 0);
        // Work space s -/+ 2 max(s - 0, 3 - s) around s in [0, 3]: its midpoint is s itself.
        assert!((0.0..3.0).contains(&root.split), "{}", root.split);
        let left = [0.0, 1.0, 2.0, 3.0].iter().filter(|&&v| v < root.split).count() as u32;
        assert_eq!(m.trees[0].nodes[1].mass, left);
        assert_eq!(m.trees[0].nodes[2].mass, 4 - left);
        // Limit floor(4 / 10) = 0: the root (mass 4) descends; a leaf gives r * 2, max 4 * 2.
        let expect = |r: u32| 1.0 - f64::from(r * 2) / 8.0;
        assert_eq!(m.score_one(&[-5.0]), expect(left));
        assert_eq!(m.score_one(&[50.0]), expect(4 - left));
        // A missing value stops at the root: 1 - 4 / 8.
        assert_eq!(m.score_one(&[f64::NAN]), 0.5);
    }

    #[test]
    fn an_isolated_point_scores_above_inliers_on_raw_data() {
        let mut m = build(25, 10, 250, 11, 2);
        (0..3_000).for_each(|i| m.learn_one(&cloud(i)));
        let centre = m.score_one(&[0.0, 7.0]);
        let outlier = m.score_one(&[0.0, 7.5]);
        let far = m.score_one(&[1e300, -1e300]);
        assert!(outlier > centre + 0.1, "{outlier} vs {centre}");
        assert!(far > centre + 0.1, "{far} vs {centre}");
        assert!((0.0..=1.0).contains(&far));
    }

    #[test]
    fn limits_fix_the_work_space() {
        let schema = Schema::numbered("f", 1);
        let p = HalfSpaceTreesParams {
            n_trees: 1,
            height: 1,
            window_size: 4,
            limits: Some(BTreeMap::from([("f0".to_string(), (100.0, 200.0))])),
            seed: Some(3),
        };
        let mut m = p.build(&schema).unwrap();
        for v in [0.0, 1.0, 2.0, 3.0] {
            m.learn_one(&[v]);
        }
        // The root splits at s in [100, 200], whatever the window held.
        assert!((100.0..200.0).contains(&m.trees[0].nodes[0].split));
        assert_eq!(m.trees[0].nodes[1].mass, 4);
    }

    #[test]
    fn counting_only_where_scoring_reads_gives_the_full_counts_there() {
        let mut m = build(3, 8, 200, 5, 2);
        (0..600).for_each(|i| m.learn_one(&cloud(i * 7)));
        let window: Vec<[f64; 2]> = (400..600).map(|i| cloud(i * 7)).collect();
        let limit = m.limit();
        for t in &m.trees {
            // Full counts by brute force, compared on every node scoring can reach.
            let mut full = vec![0u32; t.nodes.len()];
            for x in &window {
                let mut at = 0;
                for _ in 0..=m.height {
                    full[at] += 1;
                    if at >= t.nodes.len() / 2 {
                        break;
                    }
                    at = 2 * at + 1 + usize::from(x[t.nodes[at].feature as usize] >= t.nodes[at].split);
                }
            }
            let mut stack = vec![0usize];
            while let Some(at) = stack.pop() {
                assert_eq!(t.nodes[at].mass, full[at], "node {at}");
                if at < t.nodes.len() / 2 && t.nodes[at].mass > limit {
                    stack.extend([2 * at + 1, 2 * at + 2]);
                }
            }
        }
    }

    #[test]
    fn non_finite_values_neither_panic_nor_widen_ranges() {
        let mut m = build(4, 6, 30, 2, 2);
        for i in 0..300 {
            let c = cloud(i);
            let odd = match i % 4 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                _ => c[1],
            };
            m.learn_one(&[c[0], odd]);
        }
        for t in &m.trees {
            assert!(t.nodes.iter().all(|n| n.split.is_finite()));
            assert!(t.nodes[0].split > 6.0 && t.nodes[0].split < 8.0 || t.nodes[0].feature == 0);
        }
        for x in [[0.0, f64::NAN], [f64::INFINITY, f64::NEG_INFINITY], [f64::NAN; 2]] {
            let s = m.score_one(&x);
            assert!((0.0..=1.0).contains(&s), "{x:?}: {s}");
        }
    }

    #[test]
    fn lockstep_descent_equals_the_one_row_descent() {
        let mut m = build(3, 12, 64, 4, 2);
        (0..640).for_each(|i| m.learn_one(&cloud(i)));
        let rows: Vec<[f64; 2]> = (0..64)
            .map(|i| match i % 9 {
                0 => [f64::NAN, cloud(i)[1]],
                1 => [cloud(i)[0], f64::NAN],
                2 => [f64::INFINITY, f64::NEG_INFINITY],
                _ => cloud(i * 5 + 1),
            })
            .collect();
        for t in &m.trees {
            for group in rows.chunks_exact(LANES) {
                let lanes = lane_totals(&t.nodes, std::array::from_fn(|k| &group[k][..]), 12, m.limit());
                for (k, x) in group.iter().enumerate() {
                    assert_eq!(lanes[k], HalfSpaceTrees::tree_total(&t.nodes, x, 12, m.limit()), "{x:?}");
                }
            }
        }
    }

    #[test]
    fn trees_split_among_threads_give_the_one_thread_scores_and_state() {
        // 25 trees x 3,000-row batches is past the work threshold; windows close inside and across batches,
        // and rows with missing values reach the counts.
        let rows: Vec<f64> = (0..9_000)
            .flat_map(|i| {
                let [a, b] = cloud(i);
                [a, if i % 37 == 0 { f64::NAN } else { b }]
            })
            .collect();
        let run = |threads| super::super::run_on_threads(threads, || build(25, 10, 250, 3, 2), &rows, 2, 3_000);
        let one = run(1);
        assert!(one.0.iter().filter(|&&s| s != 0).count() > 8_000, "scores after the first window");
        for threads in [2, 3, 7] {
            let many = run(threads);
            assert!(many.0 == one.0, "{threads} threads: scores differ");
            assert!(many.1 == one.1, "{threads} threads: state differs");
        }
        // And both equal the one-row loop.
        let mut m = build(25, 10, 250, 3, 2);
        let expected: Vec<u64> = rows.chunks(2).map(|r| m.score_learn_one(r).to_bits()).collect();
        assert!(expected == one.0);
    }

    #[test]
    fn batch_scores_equal_one_at_a_time_and_state_round_trips() {
        let schema = Schema::numbered("f", 2);
        let rows: Vec<f64> = (0..2_000).flat_map(cloud).collect();
        let mut one = build(7, 9, 128, 9, 2);
        let expected: Vec<u64> = rows.chunks(2).map(|r| one.score_learn_one(r).to_bits()).collect();
        let mut many = build(7, 9, 128, 9, 2);
        let mut got = Vec::new();
        for (k, chunk) in rows.chunks(2 * 300).enumerate() {
            let batch = Batch::from_rows(schema.clone(), chunk.to_vec(), None, (k * 300) as u64).unwrap();
            many.score_learn_many(&batch, &mut got);
        }
        assert_eq!(got.iter().map(|s| s.to_bits()).collect::<Vec<_>>(), expected);
        let back: HalfSpaceTrees = postcard::from_bytes(&postcard::to_stdvec(&one).unwrap()).unwrap();
        let json: HalfSpaceTrees = serde_json::from_str(&serde_json::to_string(&one).unwrap()).unwrap();
        for x in [[1.0, 7.0], [50.0, 7.001]] {
            assert_eq!(back.score_one(&x).to_bits(), one.score_one(&x).to_bits());
            assert_eq!(json.score_one(&x).to_bits(), one.score_one(&x).to_bits());
        }
    }
}
