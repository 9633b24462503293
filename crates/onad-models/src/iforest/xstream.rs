//! xStream (Manzoor, Lamba & Akoglu 2018): StreamHash projections, half-space chains and count-min
//! sketches over alternating windows, for streams whose features come and go.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::cells::Cells;
use crate::registry::Describe;
use crate::rng::{below, mix64, unit, unit_rng};

/// Hyperparameters of [`XStream`] (aberrant's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XStreamParams {
    /// Dimension of the StreamHash projection, 1 to 4096.
    pub k: usize,
    /// Half-space chains, 1 to 1024.
    pub n_chains: usize,
    /// Levels of every chain (one count-min sketch per level), 1 to 64.
    pub depth: usize,
    /// Counters per count-min row, 1 to 2^20.
    pub cms_width: usize,
    /// Hashed rows per count-min sketch, 1 to 16.
    pub cms_num_hashes: usize,
    /// Rows per window: the current window's counts become the reference every `window_size` rows,
    /// 1 to 2^24 - 1.
    pub window_size: usize,
    /// Projected rows that set the chains' scales (and fill the first window), 1 to 2^20.
    pub init_sample_size: usize,
    /// Fraction of the projection's coordinates each feature touches, in (0, 1].
    pub density: f64,
    /// aberrant's bound on cached feature projections; accepted and checked (>= 1), without effect here:
    /// the features are the schema's, each projected once when the model is built.
    pub max_feature_cache_size: Option<usize>,
    /// Seed of the projections, chains, shifts and hashes; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for XStreamParams {
    fn default() -> Self {
        XStreamParams {
            k: 100,
            n_chains: 100,
            depth: 15,
            cms_width: 1024,
            cms_num_hashes: 4,
            window_size: 256,
            init_sample_size: 256,
            density: 1.0 / 3.0,
            max_feature_cache_size: Some(10_000),
            seed: None,
        }
    }
}

/// A sketch cell: bits 0..12 its count in the window numbered by bits 24..32, bits 12..24 its count in
/// the window before that one. Four bytes, so the default table (6.1M cells) is 24.6 MB.
type Cell = u32;
/// Bits of a cell's count of one window: counts saturate at `2^12 - 1`.
const COUNT_BITS: u32 = 12;
const COUNT_MASK: Cell = (1 << COUNT_BITS) - 1;
/// Where a cell's window number starts (its low 8 bits).
const EPOCH_SHIFT: u32 = 24;
/// Cells of one block: a level's hash rows for one bin lie in one 64-byte line.
const BLOCK: usize = 16;
/// Blocks of one level's sketch: enough for `width` cells in each of `hashes` rows, which own
/// `BLOCK / hashes` cells of every block.
fn blocks_per_level(width: usize, hashes: usize) -> usize {
    width.div_ceil(BLOCK / hashes)
}

/// The most cells a model's sketches may take (4 bytes each: 1 GiB).
const MAX_CELLS: usize = 1 << 28;
/// Levels a walk hashes before it visits their cells.
const GROUP_LEVELS: usize = 256;
/// The largest `window_size`.
const MAX_WINDOW: usize = (1 << 24) - 1;

/// xStream (Manzoor, Lamba & Akoglu 2018, "xStream: Outlier Detection in Feature-Evolving Data
/// Streams", KDD), as aberrant's `XStream`: each row is projected by StreamHash into `k` dimensions,
/// then `n_chains` half-space chains of `depth` levels each halve one projected dimension per level and
/// count, per level, how many rows of the last complete window fell into the row's bin. A row whose bins
/// were empty at a coarse level is an outlier.
///
/// # Algorithm
/// - **StreamHash**: every feature, by its *name*, gets `round(k * density)` distinct coordinates of the
///   projection with random signs (drawn from a generator seeded by the seed and a hash of the name), and
///   the projection is `y = sum_f x_f * sign_f` over those coordinates. A missing value (NaN) is a feature
///   the row does not have: it adds nothing. Because the projection depends on names only, the order of
///   the columns does not matter, and a stream whose features come and go (a JSON stream read with
///   `keys = "evolving"` and its full list of `columns`) projects each row consistently.
/// - **Chains**: built from the first `init_sample_size` projected rows. The half range of every
///   projected dimension over that sample is `deltamax` (1 where it is 0). Chain `c` draws a dimension
///   per level (uniformly, repeats allowed) and a shift `s_c ~ U(0, 1) * deltamax` per dimension. At a
///   level whose dimension `f` appears for the first time in the chain, `z_f = (y_f + s_cf) /
///   deltamax_f`; at a repeat, `z_f = 2 z_f - s_cf / deltamax_f` (the bin is halved). The row's bin at
///   level `l` is the vector of `floor(z)` of every dimension visited so far.
/// - **Sketches**: one count-min sketch per level of every chain, `cms_num_hashes` rows of (at least)
///   `cms_width` counters. The bin's key is `sum_f a_f floor(z_f)` (64-bit, wrapping; `a_f` a random odd
///   multiplier per dimension, kept up to date as one coordinate changes per level), and one 64-bit
///   hash of the key and the level picks a 64-byte block of the level's sketch and, in it, a counter of
///   each hash row (a blocked count-min sketch: `16 / cms_num_hashes` counters of every row per block).
///   Learning adds 1 to the row's counter in every row of every level's sketch in the *current* window;
///   every `window_size` learned rows the current window becomes the reference and a new one starts
///   empty. The initialisation sample is learned as the first rows of the first window.
/// - **Score** (in (0, 1], higher = more anomalous): with `c_l` the minimum over hash rows of the
///   reference count of the row's bin at level `l` (0-based), a chain scores
///   `max_l 1 / ((1 + c_l) 2^l)`, which is `2^(1 - min_l (log2(1 + c_l) + l + 1))`, aberrant's form of
///   the paper's `min_l 2^l c_l` (smoothed by one, inverted); the score is the mean over chains. 0.0
///   until a reference window exists (`max(init_sample_size, window_size)` rows or so).
///
/// # Deviations from aberrant
/// - The sketches are blocked: a level's hash rows for one bin share a 64-byte block, picked with the
///   counters in it by one hash of the bin, where aberrant hashes each row on its own with `(sum_f a_hf
///   floor(z_f) + b) mod cms_width` over a separate array per row. A row then reads one cache line a
///   level instead of `cms_num_hashes` (1,500 instead of 6,000 by default, at random in 25 MB), which is
///   what bounds the model's speed. Two bins share a counter in every row a little more often (they
///   must first share a block); on the labelled sets of the benchmarks the mean ROC-AUC did not drop
///   (0.652 against 0.650 with aberrant's layout). `cms_width` is rounded up to a multiple of
///   `16 / cms_num_hashes`.
/// - The windows' counts live in one table of 32-bit cells, each holding the counts of the current and
///   the previous window with the window's number (8 bits), so swapping windows costs nothing and a
///   score followed by a learn of the same row touches each cell once; aberrant copies and clears two
///   arrays every window. A count of one window saturates at 4,095 (aberrant: unbounded), which changes
///   nothing unless `window_size` is above 4,095, and then only bins that full, whose level scores below
///   `2^-12` either way. Every 256 windows one pass over the table renumbers the cells.
/// - A chain stops descending once `2^l` is no smaller than its best `(1 + c) 2^l` so far (deeper levels
///   cannot score higher): the same score with fewer reads.
/// - Generators are PCG64 streams seeded from `(seed, ...)`, and feature coordinates come from a hash of
///   the seed and the name; aberrant uses NumPy generators and BLAKE2b, so the numbers differ, not the
///   algorithm. `seed = None` means 0 (aberrant: a fresh random seed).
/// - A row with a projected coordinate that is not finite (an infinite value) is not learned; aberrant
///   rejects infinite and missing values. Infinite values are scored (their bins saturate).
/// - `max_feature_cache_size` has no effect (see its documentation).
///
/// # Cost
/// Per row O(d k density) for the projection and O(n_chains depth cms_num_hashes) counter updates
/// (learning) or at most as many reads (scoring), in `n_chains * depth` cache lines. Memory: `n_chains *
/// depth * cms_num_hashes * cms_width` cells of 4 bytes, rounded up to whole blocks (25 MB by default,
/// where aberrant's two `int32` arrays take 49 MB; an anonymous mapping that Linux may back with 2 MiB
/// pages, which cuts the TLB misses of the random reads), the chains' steps, and until the chains exist
/// `init_sample_size * k` buffered values.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::XStreamParams;
/// let schema = Schema::shared(["latency_ms", "bytes", "errors"]).unwrap();
/// let params = XStreamParams { n_chains: 20, cms_width: 256, seed: Some(7), ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..2_000 {
///     let k = (i % 13) as f64;
///     model.learn_one(&[20.0 + k, 1_000.0 + 10.0 * k, (i % 3) as f64]);
/// }
/// let normal = model.score_one(&[26.0, 1_060.0, 1.0]);
/// let odd = model.score_one(&[400.0, 10.0, 50.0]);
/// assert!(odd > normal, "{odd} vs {normal}");
/// // A row without `bytes` (NaN: the feature is absent) still scores.
/// assert!(model.score_one(&[26.0, f64::NAN, 1.0]).is_finite());
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct XStream {
    k: usize,
    n_chains: usize,
    depth: usize,
    width: usize,
    hashes: usize,
    window_size: usize,
    init_sample_size: usize,
    seed: u64,
    /// Per feature (schema order) `nnz` coordinates of the projection and their signs.
    coords: Vec<u32>,
    signs: Vec<f64>,
    nnz: usize,
    /// Projected rows kept until the chains are built (`init_sample_size * k` at most).
    init: Vec<f64>,
    /// The chains and sketches, once built (boxed: the model enums stay small).
    chains: Option<Box<Chains>>,
}

/// One level of one chain: the projected dimension it halves, its place among the chain's distinct
/// dimensions, whether it is the dimension's first level in the chain, and the dimension's shift and
/// scale (`s / deltamax` and `1 / deltamax`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Step {
    dim: u32,
    slot: u8,
    first: bool,
    shift: f64,
    inv: f64,
    /// The dimension's odd multiplier in the bin's key, and the step's salt of the key's hash.
    coefficient: u64,
    salt: u64,
}

/// The half-space chains and their sketches.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chains {
    /// `n_chains * depth` steps.
    steps: Vec<Step>,
    /// `n_chains * depth * blocks * BLOCK` cells ([`Cell`]), level by level. Read at random places, so
    /// the table may be backed by huge pages ([`Cells`]).
    cells: Cells<Cell>,
    /// Rows learned in the current window.
    in_window: usize,
    /// Windows completed; its low 16 bits number the current window.
    completed: u64,
    samples_seen: u64,
}

/// [`XStream`] at state version 1 (frozen): `u64` cells in aberrant's layout (each hash row its own
/// array), hashed by aberrant's linear hash.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct XStreamV1 {
    k: usize,
    n_chains: usize,
    depth: usize,
    width: usize,
    hashes: usize,
    window_size: usize,
    init_sample_size: usize,
    seed: u64,
    coords: Vec<u32>,
    signs: Vec<f64>,
    nnz: usize,
    init: Vec<f64>,
    chains: Option<Box<ChainsV1>>,
}

/// A step at state version 1 (frozen).
#[derive(Debug, Clone, Copy, Deserialize)]
struct StepV1 {
    dim: u32,
    slot: u8,
    first: bool,
    shift: f64,
    inv: f64,
}

/// The chains at state version 1 (frozen); `hash` and `cells` are aberrant's hash and layout. The
/// fields not carried over are read to consume their bytes.
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct ChainsV1 {
    steps: Vec<StepV1>,
    hash: Vec<u32>,
    cells: Vec<u64>,
    in_window: usize,
    completed: u64,
    samples_seen: u64,
}

/// A version-1 model keeps its projection, its chains' dimensions and shifts and its count of rows; its
/// windows' counts were hashed into cells that today's layout does not have, so the sketches start
/// empty: the first `window_size` rows learned after the restore score 0.0, as after the
/// initialisation sample, while a new reference window fills.
impl From<XStreamV1> for XStream {
    fn from(m: XStreamV1) -> Self {
        let mut model = XStream {
            k: m.k,
            n_chains: m.n_chains,
            depth: m.depth,
            width: m.width,
            hashes: m.hashes,
            window_size: m.window_size,
            init_sample_size: m.init_sample_size,
            seed: m.seed,
            coords: m.coords,
            signs: m.signs,
            nnz: m.nnz,
            init: m.init,
            chains: None,
        };
        if let Some(old) = m.chains {
            let mut steps: Vec<Step> = old
                .steps
                .iter()
                .map(|s| Step {
                    dim: s.dim,
                    slot: s.slot,
                    first: s.first,
                    shift: s.shift,
                    inv: s.inv,
                    coefficient: 0,
                    salt: 0,
                })
                .collect();
            model.draw_keys(&mut steps);
            let cells = Cells::zeroed(model.cells());
            model.chains =
                Some(Box::new(Chains { steps, cells, in_window: 0, completed: 0, samples_seen: old.samples_seen }));
        }
        model
    }
}

impl DetectorParams for XStreamParams {
    type Model = XStream;
    fn build(&self, schema: &SchemaRef) -> Result<XStream, ParamError> {
        let range = |name: &'static str, v: usize, max: usize| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(ParamError::invalid(name, format!("must be between 1 and {max}, got {v}")))
            }
        };
        range("k", self.k, 4096)?;
        range("n_chains", self.n_chains, 1024)?;
        range("depth", self.depth, 64)?;
        range("cms_width", self.cms_width, 1 << 20)?;
        range("cms_num_hashes", self.cms_num_hashes, 16)?;
        range("window_size", self.window_size, MAX_WINDOW)?;
        range("init_sample_size", self.init_sample_size, 1 << 20)?;
        // The table: per level of every chain, blocks of 16 cells holding `16 / cms_num_hashes` cells of
        // each hash row (see `XStream::cells`).
        let cells = self.n_chains * self.depth * blocks_per_level(self.cms_width, self.cms_num_hashes) * BLOCK;
        if cells > MAX_CELLS {
            return Err(ParamError::invalid(
                "cms_width",
                format!("the sketches need {cells} cells, more than 2^28 (1 GiB); lower n_chains, depth or cms_width"),
            ));
        }
        if !(self.density > 0.0 && self.density <= 1.0) {
            return Err(ParamError::invalid("density", format!("must be in (0, 1], got {}", self.density)));
        }
        if self.max_feature_cache_size == Some(0) {
            return Err(ParamError::invalid("max_feature_cache_size", "must be at least 1 or None, got 0"));
        }
        let d = schema.len();
        if d == 0 {
            return Err(ParamError::Schema("XStream needs at least one feature".into()));
        }
        let seed = self.seed.unwrap_or(0);
        let nnz = ((self.k as f64 * self.density).round() as usize).clamp(1, self.k);
        let (mut coords, mut signs) = (Vec::with_capacity(d * nnz), Vec::with_capacity(d * nnz));
        let mut pool: Vec<u32> = Vec::with_capacity(self.k);
        for name in schema.names() {
            let mut rng = unit_rng(mix64(seed ^ name_hash(name)), 0x5754_5245_414d);
            pool.clear();
            pool.extend(0..self.k as u32);
            for j in 0..nnz {
                let pick = j + below(&mut rng, self.k - j);
                pool.swap(j, pick);
                coords.push(pool[j]);
                signs.push(if unit(&mut rng) < 0.5 { -1.0 } else { 1.0 });
            }
        }
        Ok(XStream {
            k: self.k,
            n_chains: self.n_chains,
            depth: self.depth,
            width: self.cms_width,
            hashes: self.cms_num_hashes,
            window_size: self.window_size,
            init_sample_size: self.init_sample_size,
            seed,
            coords,
            signs,
            nnz,
            init: Vec::new(),
            chains: None,
        })
    }
}

/// A 64-bit FNV-1a hash of a feature name, finalised: the name's share of its projection seed.
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// `floor(y)` as an integer, saturating (NaN is 0), without a branch (the sign of a bin's remainder is
/// not predictable).
#[inline(always)]
fn floor_i64(y: f64) -> i64 {
    let t = y as i64;
    t.saturating_sub(((t as f64) > y) as i64)
}

/// The count of a cell in window `epoch` (the current one) and in the window before it. Without
/// branches: which window last wrote a cell met at random is not predictable.
#[inline(always)]
fn counts(cell: Cell, epoch: u8) -> (Cell, Cell) {
    let at = (cell >> EPOCH_SHIFT) as u8;
    let now = ((at == epoch) as Cell).wrapping_neg();
    let last = ((at == epoch.wrapping_sub(1)) as Cell).wrapping_neg();
    let (current, before) = (cell & COUNT_MASK, (cell >> COUNT_BITS) & COUNT_MASK);
    (current & now, (before & now) | (current & last))
}

/// The cell after one more row in window `epoch` (a full count stays full).
#[inline(always)]
fn bumped(cell: Cell, epoch: u8) -> Cell {
    let (current, previous) = counts(cell, epoch);
    ((epoch as Cell) << EPOCH_SHIFT) | (previous << COUNT_BITS) | (current + (current < COUNT_MASK) as Cell)
}

impl XStream {
    /// The StreamHash projection of `x` into `y` (`k` values).
    fn project(&self, x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        for (f, &v) in x.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            let at = f * self.nnz..(f + 1) * self.nnz;
            for (&c, &s) in self.coords[at.clone()].iter().zip(&self.signs[at]) {
                y[c as usize] += v * s;
            }
        }
    }

    /// Builds the chains from the initialisation sample and learns it.
    fn build_chains(&mut self) {
        let (k, n) = (self.k, self.init.len() / self.k);
        let mut deltamax = vec![0.0; k];
        for (f, dm) in deltamax.iter_mut().enumerate() {
            let (lo, hi) = (0..n)
                .map(|i| self.init[i * k + f])
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let half = (hi - lo) / 2.0;
            *dm = if half > 0.0 && half.is_finite() { half } else { 1.0 };
        }
        let mut steps = Vec::with_capacity(self.n_chains * self.depth);
        for c in 0..self.n_chains {
            let mut rng = unit_rng(self.seed, c as u64);
            let shifts: Vec<f64> = (0..k).map(|f| unit(&mut rng) * deltamax[f]).collect();
            let mut slots: Vec<u32> = Vec::with_capacity(self.depth);
            for _ in 0..self.depth {
                let dim = below(&mut rng, k) as u32;
                let first = !slots.contains(&dim);
                if first {
                    slots.push(dim);
                }
                let slot = slots.iter().position(|&s| s == dim).unwrap_or(0) as u8;
                let f = dim as usize;
                let (shift, inv) = (shifts[f] / deltamax[f], 1.0 / deltamax[f]);
                steps.push(Step { dim, slot, first, shift, inv, coefficient: 0, salt: 0 });
            }
        }
        self.draw_keys(&mut steps);
        let cells = Cells::zeroed(self.cells());
        self.chains = Some(Box::new(Chains { steps, cells, in_window: 0, completed: 0, samples_seen: 0 }));
        let init = std::mem::take(&mut self.init);
        for y in init.chunks_exact(k) {
            self.learn_projected(y);
        }
    }

    /// Draws the steps' key multipliers and salts: one odd multiplier per projected dimension, shared by
    /// every chain as aberrant shares its hash coefficients, and one salt per step. Streams of their own,
    /// so the chains' dimensions and shifts do not depend on them.
    fn draw_keys(&self, steps: &mut [Step]) {
        let mut rng = unit_rng(self.seed, u64::MAX);
        let coefficients: Vec<u64> = (0..self.k).map(|_| rng.next_u64() | 1).collect();
        let mut rng = unit_rng(self.seed, u64::MAX - 1);
        for step in steps {
            step.coefficient = coefficients[step.dim as usize];
            step.salt = rng.next_u64();
        }
    }

    /// Cells of the table: `BLOCK` per block, `blocks()` per level of every chain.
    fn cells(&self) -> usize {
        self.n_chains * self.depth * self.blocks() * BLOCK
    }

    /// Cells a hash row owns in each block of a level.
    fn per_block(&self) -> usize {
        BLOCK / self.hashes
    }

    /// Blocks of one level: enough for `cms_width` cells in each hash row.
    fn blocks(&self) -> usize {
        blocks_per_level(self.width, self.hashes)
    }

    /// Calls `visit(level, cells)` with the row's cell in every hash row, for every level of every chain
    /// in order; `visit` returns whether to go on down the chain.
    #[inline]
    fn walk(&self, chains: &Chains, y: &[f64], mut visit: impl FnMut(usize, &[usize]) -> bool) {
        let (hashes, per_block, blocks) = (self.hashes, self.per_block() as u64, self.blocks() as u64);
        // Chains go in groups: first every level's block and hash of the group, then the cells. The
        // second loop is a few instructions a level, so the out-of-order core keeps many of its (random,
        // mostly missing) cell loads in flight instead of a few levels' worth.
        let group = (GROUP_LEVELS / self.depth).max(1);
        let mut found = [(0u32, 0u32); GROUP_LEVELS];
        let mut z = [0.0f64; 64];
        let mut bins = [0i64; 64];
        for first_chain in (0..self.n_chains).step_by(group) {
            let chains_here = group.min(self.n_chains - first_chain);
            for g in 0..chains_here {
                let c = first_chain + g;
                let mut key = 0u64;
                for l in 0..self.depth {
                    let at = c * self.depth + l;
                    let step = chains.steps[at];
                    let slot = step.slot as usize;
                    let old = if step.first { 0 } else { bins[slot] };
                    z[slot] = if step.first {
                        y[step.dim as usize] * step.inv + step.shift
                    } else {
                        2.0 * z[slot] - step.shift
                    };
                    let bin = floor_i64(z[slot]);
                    bins[slot] = bin;
                    key = key.wrapping_add((bin.wrapping_sub(old) as u64).wrapping_mul(step.coefficient));
                    let hashed = mix64(key ^ step.salt);
                    let block = ((hashed >> 32) * blocks) >> 32;
                    found[g * self.depth + l] = (((at as u64 * blocks + block) as usize * BLOCK) as u32, hashed as u32);
                }
            }
            let mut cells = [0usize; 16];
            for g in 0..chains_here {
                for l in 0..self.depth {
                    let (base, mut fraction) = found[g * self.depth + l];
                    // The low 32 bits as a fraction: each hash row takes the next digit in base `per_block`.
                    for (h, cell) in cells[..hashes].iter_mut().enumerate() {
                        let digit = fraction as u64 * per_block;
                        fraction = digit as u32;
                        *cell = base as usize + h * per_block as usize + (digit >> 32) as usize;
                    }
                    if !visit(l, &cells[..hashes]) {
                        break;
                    }
                }
            }
        }
    }

    fn learn_projected(&mut self, y: &[f64]) {
        let Some(mut chains) = self.chains.take() else { return };
        let epoch = chains.completed as u8;
        let mut cells = std::mem::take(&mut chains.cells);
        // The slice once: indexing the table itself would resolve its backing at every cell.
        let table: &mut [Cell] = &mut cells;
        self.walk(&chains, y, |_, level| {
            for &i in level {
                table[i] = bumped(table[i], epoch);
            }
            true
        });
        chains.cells = cells;
        self.end_row(&mut chains);
        self.chains = Some(chains);
    }

    /// Counts a learned row, and swaps windows after the last row of one.
    fn end_row(&self, chains: &mut Chains) {
        chains.samples_seen += 1;
        chains.in_window += 1;
        if chains.in_window >= self.window_size {
            chains.in_window = 0;
            chains.completed += 1;
            if chains.completed as u8 == 0 {
                renumber(&mut chains.cells);
            }
        }
    }

    /// The score of the projected row `y` against the reference window.
    fn score_projected(&self, chains: &Chains, y: &[f64]) -> f64 {
        if chains.completed == 0 {
            return 0.0;
        }
        let epoch = chains.completed as u8;
        let mut score = ChainScore::new(self.depth, true);
        let table: &[Cell] = &chains.cells;
        self.walk(chains, y, |l, level| {
            score.push(l, level.iter().fold(Cell::MAX, |m, &i| m.min(counts(table[i], epoch).1)))
        });
        score.mean(self.n_chains)
    }

    /// Scores the projected row `y`, then learns it, in one walk (each cell is read, then bumped).
    fn score_learn_projected(&mut self, y: &[f64]) -> f64 {
        let Some(mut chains) = self.chains.take() else { return 0.0 };
        let epoch = chains.completed as u8;
        let mut cells = std::mem::take(&mut chains.cells);
        let mut score = ChainScore::new(self.depth, false);
        let table: &mut [Cell] = &mut cells;
        self.walk(&chains, y, |l, level| {
            let mut least = Cell::MAX;
            for &i in level {
                let cell = table[i];
                table[i] = bumped(cell, epoch);
                least = least.min(counts(cell, epoch).1);
            }
            score.push(l, least)
        });
        chains.cells = cells;
        let s = if chains.completed == 0 { 0.0 } else { score.mean(self.n_chains) };
        self.end_row(&mut chains);
        self.chains = Some(chains);
        s
    }

    /// Projects `x` into the scratch `y`; false when a coordinate is not finite (the row is not learned).
    fn projected(&self, x: &[f64], y: &mut Vec<f64>) -> bool {
        y.resize(self.k, 0.0);
        self.project(x, y);
        y.iter().all(|v| v.is_finite())
    }

    /// Buffers a projected row of the initialisation sample, and builds the chains once it is complete.
    fn buffer(&mut self, y: &[f64]) {
        self.init.extend_from_slice(y);
        if self.init.len() >= self.init_sample_size * self.k {
            self.build_chains();
        }
    }

    /// Rows learned so far (the initialisation sample included).
    pub fn samples_seen(&self) -> u64 {
        match &self.chains {
            Some(c) => c.samples_seen,
            None => (self.init.len() / self.k) as u64,
        }
    }
}

thread_local! {
    /// Per-thread scratch for one projected row.
    static PROJECTED: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Detector for XStream {
    fn learn_one(&mut self, x: &[f64]) {
        PROJECTED.with_borrow_mut(|y| {
            if !self.projected(x, y) {
                return;
            }
            if self.chains.is_none() {
                self.buffer(y);
            } else {
                self.learn_projected(y);
            }
        })
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let Some(chains) = &self.chains else { return 0.0 };
        if chains.completed == 0 {
            return 0.0;
        }
        PROJECTED.with_borrow_mut(|y| {
            self.projected(x, y);
            self.score_projected(chains, y)
        })
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        PROJECTED.with_borrow_mut(|y| {
            let finite = self.projected(x, y);
            match &self.chains {
                None => {
                    if finite {
                        self.buffer(y);
                    }
                    0.0
                }
                Some(chains) if !finite => self.score_projected(chains, y),
                Some(_) => self.score_learn_projected(y),
            }
        })
    }
}

/// Folds the reference counts a walk reads into the mean chain score: per chain the largest
/// `1 / ((1 + c_l) 2^l)`, with `c_l` the minimum over the level's hash rows.
struct ChainScore {
    depth: usize,
    /// Whether a chain may stop once deeper levels cannot score higher.
    stop_early: bool,
    /// The chain's smallest `(1 + c_l) 2^l` so far.
    best: f64,
    total: f64,
}

impl ChainScore {
    fn new(depth: usize, stop_early: bool) -> Self {
        ChainScore { depth, stop_early, best: f64::INFINITY, total: 0.0 }
    }

    /// Takes the count at level `l` (the least over its hash rows); returns whether the walk goes on down
    /// the chain.
    #[inline(always)]
    fn push(&mut self, l: usize, count: Cell) -> bool {
        let scaled = (1 + count) as f64 * pow2(l);
        self.best = self.best.min(scaled);
        // Deeper levels scale by at least 2^(l + 1): once that is no smaller than the best, they cannot win.
        let done = l + 1 == self.depth || (self.stop_early && pow2(l + 1) >= self.best);
        if done {
            self.total += 1.0 / self.best;
            self.best = f64::INFINITY;
        }
        !done
    }

    /// The mean over `n_chains` chains, in [0, 1].
    fn mean(&self, n_chains: usize) -> f64 {
        (self.total / n_chains as f64).clamp(0.0, 1.0)
    }
}

/// `2^l`, exactly, from its bits (a level is below 64): the two `exp2` calls a level cost 6 % of a row.
#[inline(always)]
fn pow2(l: usize) -> f64 {
    f64::from_bits((1023 + l as u64) << 52)
}

/// Rewrites every cell as of window 0 once the window number wrapped to 0: the counts of the window that
/// just ended (numbered 255) become window 0's previous counts, older ones are cleared, so no stale count
/// is read as a recent one when the 8-bit numbers come round again.
fn renumber(cells: &mut [Cell]) {
    for cell in cells {
        let ended = if (*cell >> EPOCH_SHIFT) as u8 == u8::MAX { *cell & COUNT_MASK } else { 0 };
        *cell = ended << COUNT_BITS;
    }
}

impl Describe for XStreamParams {
    const REFERENCE: &'static str =
        "Manzoor, Lamba & Akoglu 2018, xStream: Outlier Detection in Feature-Evolving Data Streams (KDD)";
    const SUMMARY: &'static str =
        "xStream: StreamHash projections by feature name, half-space chains and count-min sketches over windows";
    /// 2: 32-bit cells, a level's hash rows in one 64-byte block (version 1 is read with empty sketches,
    /// `legacy::older`).
    const STATE_VERSION: u16 = 2;
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "k", ty: "int in 1..=4096", required: false, help: "projected dimensions (default 100)" },
        ParamDoc { name: "n_chains", ty: "int in 1..=1024", required: false, help: "half-space chains (default 100)" },
        ParamDoc { name: "depth", ty: "int in 1..=64", required: false, help: "levels per chain (default 15)" },
        ParamDoc {
            name: "cms_width",
            ty: "int in 1..=2^20",
            required: false,
            help: "counters per count-min row (default 1024)",
        },
        ParamDoc {
            name: "cms_num_hashes",
            ty: "int in 1..=16",
            required: false,
            help: "hashed rows per count-min sketch (default 4)",
        },
        ParamDoc {
            name: "window_size",
            ty: "int in 1..=2^24-1",
            required: false,
            help: "rows per reference window (default 256)",
        },
        ParamDoc {
            name: "init_sample_size",
            ty: "int in 1..=2^20",
            required: false,
            help: "projected rows that set the chains' scales (default 256)",
        },
        ParamDoc {
            name: "density",
            ty: "float in (0, 1]",
            required: false,
            help: "share of projected dimensions each feature touches (default 1/3)",
        },
        ParamDoc {
            name: "max_feature_cache_size",
            ty: "int >= 1 or null",
            required: false,
            help: "aberrant's projection cache bound; no effect (default 10000)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of projections and chains (default 0)" },
    ];
    fn example() -> Self {
        XStreamParams {
            n_chains: 20,
            depth: 10,
            cms_width: 256,
            window_size: 64,
            init_sample_size: 64,
            seed: Some(42),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use onad_core::Schema;

    fn small(seed: u64) -> XStreamParams {
        XStreamParams {
            n_chains: 25,
            cms_width: 256,
            window_size: 64,
            init_sample_size: 64,
            seed: Some(seed),
            ..Default::default()
        }
    }

    /// Integer-valued rows (projections with signs +-1 are then exact sums, in any order).
    fn row(i: usize) -> [f64; 3] {
        [((i * 7) % 11) as f64, 100.0 + ((i * 3) % 5) as f64, (i % 4) as f64]
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 3);
        let err = |p: XStreamParams| p.build(&schema).unwrap_err().to_string();
        let d = XStreamParams::default;
        assert!(err(XStreamParams { k: 0, ..d() }).contains("'k'"));
        assert!(err(XStreamParams { n_chains: 0, ..d() }).contains("'n_chains'"));
        assert!(err(XStreamParams { depth: 65, ..d() }).contains("'depth'"));
        assert!(err(XStreamParams { cms_width: 0, ..d() }).contains("'cms_width'"));
        assert!(err(XStreamParams { cms_num_hashes: 17, ..d() }).contains("'cms_num_hashes'"));
        assert!(err(XStreamParams { window_size: 1 << 24, ..d() }).contains("'window_size'"));
        assert!(err(XStreamParams { init_sample_size: 0, ..d() }).contains("'init_sample_size'"));
        assert!(err(XStreamParams { density: 0.0, ..d() }).contains("'density'"));
        assert!(err(XStreamParams { density: f64::NAN, ..d() }).contains("'density'"));
        assert!(err(XStreamParams { max_feature_cache_size: Some(0), ..d() }).contains("'max_feature_cache_size'"));
        assert!(err(XStreamParams { n_chains: 1024, depth: 64, cms_width: 1 << 20, ..d() }).contains("2^28"));
        // The bound is on the cells the blocks take: 1024 * 64 levels of 256 blocks of 16 cells is 2^28.
        assert!(
            XStreamParams { n_chains: 1024, depth: 64, cms_width: 1024, seed: Some(1), ..d() }.build(&schema).is_ok()
        );
        assert!(err(XStreamParams { n_chains: 1024, depth: 64, cms_width: 1025, ..d() }).contains("2^28"));
        let m = d().build(&schema).unwrap();
        assert_eq!(m.nnz, 33, "round(100 / 3)");
        // Each feature touches distinct coordinates.
        for f in 0..3 {
            let mut c = m.coords[f * 33..(f + 1) * 33].to_vec();
            c.sort_unstable();
            c.dedup();
            assert_eq!(c.len(), 33);
        }
    }

    #[test]
    fn scores_are_zero_until_a_reference_window_then_an_outlier_scores_above_inliers() {
        let mut m = small(1).build(&Schema::numbered("f", 3)).unwrap();
        // 64 rows build the chains and fill the first window: the 64th completes it.
        for i in 0..64 {
            assert_eq!(m.score_learn_one(&row(i)), 0.0, "row {i}");
        }
        assert!(m.chains.as_ref().is_some_and(|c| c.completed == 1));
        assert!(m.score_one(&row(64)) > 0.0);
        (64..2_000).for_each(|i| m.learn_one(&row(i)));
        let inlier = m.score_one(&row(2_001));
        let outlier = m.score_one(&[60.0, 30.0, -9.0]);
        assert!(outlier > 2.0 * inlier, "{outlier} vs {inlier}");
        for x in [[f64::NAN; 3], [f64::INFINITY, f64::NEG_INFINITY, f64::NAN], [1e300, -1e300, 0.0]] {
            let s = m.score_one(&x);
            assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{x:?}: {s}");
        }
        // A row with an infinite value is scored but not learned.
        let seen = m.samples_seen();
        m.score_learn_one(&[f64::INFINITY, 1.0, 1.0]);
        m.learn_one(&[1.0, f64::NEG_INFINITY, 1.0]);
        assert_eq!(m.samples_seen(), seen);
    }

    #[test]
    fn the_reference_window_holds_the_last_window_rows() {
        let mut m = small(2).build(&Schema::numbered("f", 3)).unwrap();
        (0..64 * 5 + 10).for_each(|i| m.learn_one(&row(i)));
        let chains = m.chains.as_ref().unwrap();
        let epoch = chains.completed as u8;
        assert_eq!((chains.completed, chains.in_window), (5, 10));
        // Every hash row of every level holds each learned row once: its cells are the same run of
        // `per_block` cells in every block of the level.
        let (per_block, level_cells) = (m.per_block(), m.blocks() * BLOCK);
        assert_eq!(chains.cells.len(), m.n_chains * m.depth * level_cells);
        for level in chains.cells.chunks_exact(level_cells) {
            for h in 0..m.hashes {
                let (current, previous) = level
                    .chunks_exact(BLOCK)
                    .flat_map(|block| &block[h * per_block..(h + 1) * per_block])
                    .fold((0, 0), |(c, p), &cell| (c + counts(cell, epoch).0, p + counts(cell, epoch).1));
                assert_eq!((current, previous), (10, 64));
            }
            // The cells past the hash rows' runs (none here: 16 / 4 hash rows) stay empty.
            assert!(level.chunks_exact(BLOCK).all(|b| b[m.hashes * per_block..].iter().all(|&c| c == 0)));
        }
    }

    #[test]
    fn blocks_fit_any_number_of_hash_rows() {
        for (hashes, width, per_block, blocks) in
            [(1, 1024, 16, 64), (3, 1000, 5, 200), (4, 1024, 4, 256), (16, 7, 1, 7)]
        {
            let p = XStreamParams { cms_num_hashes: hashes, cms_width: width, ..small(1) };
            let mut m = p.build(&Schema::numbered("f", 3)).unwrap();
            assert_eq!((m.per_block(), m.blocks()), (per_block, blocks), "{hashes} x {width}");
            (0..64 * 3 + 5).for_each(|i| m.learn_one(&row(i)));
            let chains = m.chains.as_ref().unwrap();
            let epoch = chains.completed as u8;
            for level in chains.cells.chunks_exact(blocks * BLOCK) {
                let total: Cell = level.iter().map(|&c| counts(c, epoch).0).sum();
                assert_eq!(total as usize, 5 * hashes, "{hashes} x {width}: one cell per hash row per row");
                let unused: usize = level.chunks_exact(BLOCK).map(|b| b[hashes * per_block..].len()).sum();
                assert!(level.chunks_exact(BLOCK).all(|b| b[hashes * per_block..].iter().all(|&c| c == 0)));
                assert_eq!(unused, blocks * (BLOCK - hashes * per_block));
            }
            let outlier = m.score_one(&[60.0, 30.0, -9.0]);
            assert!(outlier > m.score_one(&row(7)), "{hashes} x {width}");
        }
    }

    #[test]
    fn a_window_count_saturates_instead_of_overflowing() {
        let full = (0..COUNT_MASK + 10).fold(0, |cell, _| bumped(cell, 3));
        assert_eq!(counts(full, 3), (COUNT_MASK, 0));
        assert_eq!(counts(bumped(full, 4), 4), (1, COUNT_MASK));
        assert_eq!(counts(full, 5), (0, 0));
    }

    #[test]
    fn projections_depend_on_feature_names_not_column_order() {
        let abc = Schema::shared(["a", "b", "c"]).unwrap();
        let cab = Schema::shared(["c", "a", "b"]).unwrap();
        let mut m1 = small(3).build(&abc).unwrap();
        let mut m2 = small(3).build(&cab).unwrap();
        for i in 0..500 {
            let [a, b, c] = row(i);
            assert_eq!(m1.score_learn_one(&[a, b, c]).to_bits(), m2.score_learn_one(&[c, a, b]).to_bits(), "{i}");
        }
    }

    #[test]
    fn a_missing_value_is_an_absent_feature() {
        // A model that also knows `gpu`, never present, scores like a model without it.
        let with = Schema::shared(["a", "gpu", "b"]).unwrap();
        let without = Schema::shared(["a", "b"]).unwrap();
        let mut m1 = small(4).build(&with).unwrap();
        let mut m2 = small(4).build(&without).unwrap();
        for i in 0..500 {
            let [a, b, _] = row(i);
            assert_eq!(m1.score_learn_one(&[a, f64::NAN, b]).to_bits(), m2.score_learn_one(&[a, b]).to_bits(), "{i}");
        }
        // When the feature appears, rows carrying it project elsewhere.
        let present = m1.score_one(&[1.0, 50.0, 101.0]);
        let absent = m1.score_one(&[1.0, f64::NAN, 101.0]);
        assert!(present > absent, "{present} vs {absent}");
    }

    #[test]
    fn stopping_a_chain_early_gives_the_full_walk_score() {
        let mut m = small(5).build(&Schema::numbered("f", 3)).unwrap();
        (0..1_000).for_each(|i| m.learn_one(&row(i)));
        let chains = m.chains.as_ref().unwrap();
        let epoch = chains.completed as u8;
        let mut y = Vec::new();
        for i in 0..300 {
            let x = [(i % 23) as f64 - 5.0, 90.0 + (i % 29) as f64, (i % 7) as f64];
            m.projected(&x, &mut y);
            let early = m.score_projected(chains, &y);
            let mut full = ChainScore::new(m.depth, false);
            m.walk(chains, &y, |l, level| {
                full.push(l, level.iter().fold(Cell::MAX, |least, &c| least.min(counts(chains.cells[c], epoch).1)))
            });
            assert_eq!(early.to_bits(), full.mean(m.n_chains).to_bits(), "{x:?}");
        }
    }

    #[test]
    fn hand_checked_chain_score() {
        // One chain of one level, one hash row: the score of a row is 1 / (1 + reference count).
        let p = XStreamParams {
            k: 1,
            n_chains: 1,
            depth: 1,
            cms_width: 1024,
            cms_num_hashes: 1,
            window_size: 10,
            init_sample_size: 2,
            seed: Some(6),
            ..Default::default()
        };
        let mut m = p.build(&Schema::numbered("f", 1)).unwrap();
        m.learn_one(&[0.0]);
        m.learn_one(&[8.0]);
        (0..8).for_each(|_| m.learn_one(&[0.0]));
        // The first window: 9 rows of 0.0 and one of 8.0, which lie in different bins (deltamax = 4).
        assert_eq!(m.score_one(&[0.0]), 1.0 / 10.0);
        assert_eq!(m.score_one(&[8.0]), 1.0 / 2.0);
        assert_eq!(m.score_one(&[1000.0]), 1.0);
    }

    #[test]
    fn powers_of_two_are_exact() {
        for l in 0..=64 {
            assert_eq!(pow2(l), (l as f64).exp2(), "{l}");
        }
    }

    #[test]
    fn cells_count_two_windows_and_survive_the_window_number_wrapping() {
        let cell = bumped(bumped(0, 0), 0);
        assert_eq!(counts(cell, 0), (2, 0));
        assert_eq!(counts(cell, 1), (0, 2));
        assert_eq!(counts(cell, 2), (0, 0));
        assert_eq!(counts(bumped(cell, 1), 1), (1, 2));
        assert_eq!(counts(bumped(cell, 5), 5), (1, 0));
        // Window size 1: a row of 5.0 is learned in windows 1..=10, then only 0.0 for 65,536 windows.
        // Without renumbering, 5.0's cell (last written in window 10) would read as counted in window
        // 266 - 1, and every 256 windows after, once the 8-bit window number came round.
        let p = XStreamParams {
            k: 1,
            n_chains: 1,
            depth: 1,
            cms_num_hashes: 1,
            window_size: 1,
            init_sample_size: 1,
            seed: Some(8),
            ..Default::default()
        };
        let mut m = p.build(&Schema::numbered("f", 1)).unwrap();
        m.learn_one(&[0.0]);
        (0..10).for_each(|_| m.learn_one(&[5.0]));
        assert_eq!(m.score_one(&[5.0]), 0.5);
        for _ in 0..65_536 {
            m.learn_one(&[0.0]);
        }
        assert_eq!(m.chains.as_ref().unwrap().completed, 65_547);
        assert_eq!(m.score_one(&[0.0]), 0.5);
        assert_eq!(m.score_one(&[5.0]), 1.0);
    }

    #[test]
    fn state_round_trips() {
        let mut a = small(9).build(&Schema::numbered("f", 3)).unwrap();
        (0..300).for_each(|i| a.learn_one(&row(i)));
        let mut b: XStream = postcard::from_bytes(&postcard::to_stdvec(&a).unwrap()).unwrap();
        for i in 300..600 {
            assert_eq!(a.score_learn_one(&row(i * 3)).to_bits(), b.score_learn_one(&row(i * 3)).to_bits());
        }
    }

    /// The features and first rows of the SHUTTLE head the state fixtures were written from.
    fn shuttle_head() -> (onad_core::SchemaRef, Vec<Vec<f64>>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let text = std::fs::read_to_string(dir.join("shuttle_head2000.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let d = header.len() - 1;
        let rows = lines.map(|l| l.split(',').take(d).map(|v| v.parse().unwrap()).collect()).collect();
        (Schema::shared(header[..d].iter().copied()).unwrap(), rows)
    }

    #[test]
    fn checkpoints_of_state_version_1_load_with_empty_sketches() {
        use crate::{AnyDetector, AnyDetectorParams};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-state");
        let p = XStreamParams {
            n_chains: 6,
            depth: 5,
            cms_width: 64,
            window_size: 50,
            init_sample_size: 40,
            seed: Some(11),
            ..Default::default()
        };
        let bytes = std::fs::read(dir.join("xstream-v1-params.postcard")).unwrap();
        assert_eq!(postcard::from_bytes::<AnyDetectorParams>(&bytes).unwrap(), AnyDetectorParams::XStream(p.clone()));

        let bytes = std::fs::read(dir.join("xstream-v1.postcard")).unwrap();
        assert_eq!(&bytes[..9], b"\x07xstream\x01", "a version-1 state");
        let AnyDetector::XStream(mut old) = postcard::from_bytes(&bytes).unwrap() else { panic!("another kind") };
        let (schema, rows) = shuttle_head();
        let mut fresh = p.build(&schema).unwrap();
        rows[..500].iter().for_each(|r| {
            fresh.score_learn_one(r);
        });
        // The projection and the rows seen carry over; each chain's first step (drawn before anything
        // version 2 draws differently) is the same as a fresh model's on the same rows.
        assert_eq!((&old.coords, &old.signs, old.nnz), (&fresh.coords, &fresh.signs, fresh.nnz));
        assert_eq!(old.samples_seen(), 500);
        let (o, f) = (old.chains.as_ref().unwrap(), fresh.chains.as_ref().unwrap());
        for c in 0..6 {
            let (a, b) = (o.steps[c * 5], f.steps[c * 5]);
            assert_eq!((a.dim, a.shift.to_bits(), a.inv.to_bits()), (b.dim, b.shift.to_bits(), b.inv.to_bits()));
        }
        assert_eq!(o.cells.len(), f.cells.len());
        assert!(o.cells.iter().all(|&c| c == 0) && o.completed == 0);
        // Scores are 0.0 while the first window after the restore fills, then the model scores again.
        for r in &rows[500..549] {
            assert_eq!(old.score_learn_one(r), 0.0);
        }
        old.learn_one(&rows[549]);
        assert!(old.score_one(&rows[550]) > 0.0);
        (551..1_500).for_each(|i| old.learn_one(&rows[i]));
        let inlier = old.score_one(&rows[1_500]);
        let outlier = old.score_one(&[1e4; 9]);
        assert!(outlier > inlier, "{outlier} vs {inlier}");
        // Written again, it is version 2 and round-trips.
        let now = postcard::to_stdvec(&AnyDetector::XStream(old.clone())).unwrap();
        assert_eq!(&now[..9], b"\x07xstream\x02");
        let AnyDetector::XStream(back) = postcard::from_bytes(&now).unwrap() else { panic!("another kind") };
        assert_eq!(back.score_one(&rows[1_600]).to_bits(), old.score_one(&rows[1_600]).to_bits());
    }
}
