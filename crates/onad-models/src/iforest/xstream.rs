//! xStream (Manzoor, Lamba & Akoglu 2018): StreamHash projections, half-space chains and count-min
//! sketches over alternating windows, for streams whose features come and go.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
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

/// Bits of a sketch cell's count in the current window and in the window before it.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The largest `window_size`: a count of one window must fit in [`COUNT_BITS`].
const MAX_WINDOW: usize = (1 << COUNT_BITS) - 1;

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
/// - **Sketches**: the bin is hashed into each of `cms_num_hashes` rows of `cms_width` counters by
///   `(sum_f a_hf floor(z_f) + b_chl) mod cms_width`, with `a_hf ~ U{1, ..., 2^31 - 2}` and
///   `b_chl ~ U{0, ..., 2^31 - 2}` reduced modulo the width (aberrant's hash). Learning adds 1 to the
///   row's counter of every row of every level's sketch in the *current* window; every `window_size`
///   learned rows the current window becomes the reference and a new one starts empty. The
///   initialisation sample is learned as the first rows of the first window.
/// - **Score** (in (0, 1], higher = more anomalous): with `c_l` the minimum over hash rows of the
///   reference count of the row's bin at level `l` (0-based), a chain scores
///   `max_l 1 / ((1 + c_l) 2^l)`, which is `2^(1 - min_l (log2(1 + c_l) + l + 1))`, aberrant's form of
///   the paper's `min_l 2^l c_l` (smoothed by one, inverted); the score is the mean over chains. 0.0
///   until a reference window exists (`max(init_sample_size, window_size)` rows or so).
///
/// # Deviations from aberrant
/// - The windows' counts live in one table of cells, each holding the counts of the current and the
///   previous window with the window's number, so swapping windows costs nothing and a score followed
///   by a learn of the same row touches each cell once; aberrant copies and clears two arrays every
///   window. Counts of one window are limited to 2^24 - 1, hence `window_size <= 2^24 - 1` (aberrant:
///   unbounded). Every 65,536 windows one pass over the table renumbers the cells.
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
/// (learning) or at most as many reads (scoring). Memory: `n_chains * depth * cms_num_hashes *
/// cms_width` cells of 8 bytes (49 MB by default, aberrant's two `int32` arrays; an anonymous mapping that
/// Linux may back with 2 MiB pages, which cuts the TLB misses of the random reads: 1.27x here), the chains' shifts and
/// steps, and until the chains exist `init_sample_size * k` buffered values.
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
}

/// The half-space chains and their sketches.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chains {
    /// `n_chains * depth` steps.
    steps: Vec<Step>,
    /// Per step, `hashes` coefficients of its dimension, then `hashes` offsets (all below the width).
    hash: Vec<u32>,
    /// `n_chains * depth * hashes * width` cells: bits 0..24 the count in the window numbered `bits
    /// 48..64`, bits 24..48 the count in the window before it. Read at random places, so the table may be
    /// backed by huge pages ([`Cells`]).
    cells: Cells,
    /// Rows learned in the current window.
    in_window: usize,
    /// Windows completed; its low 16 bits number the current window.
    completed: u64,
    samples_seen: u64,
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
        let cells = self.n_chains * self.depth * self.cms_num_hashes * self.cms_width;
        if cells > 1 << 27 {
            return Err(ParamError::invalid(
                "cms_width",
                format!("n_chains * depth * cms_num_hashes * cms_width must be at most 2^27 (1 GiB), got {cells}"),
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

/// `floor(y)` as an integer, saturating (NaN is 0).
#[inline(always)]
fn floor_i64(y: f64) -> i64 {
    let t = y as i64;
    if (t as f64) > y { t.saturating_sub(1) } else { t }
}

/// Reduction modulo the sketch width. Every operand is below the width (at most 2^20), so sums of a
/// product and a value stay below 2^41.
trait Reduce: Copy {
    /// `(bin - old) mod width`, in [0, width), exact for any two bins.
    fn delta(self, bin: i64, old: i64) -> u64;
    /// `v mod width`.
    fn of(self, v: u64) -> u64;
}

/// A power-of-two width, as its mask: `(bin - old) mod 2^64` then the mask is exact because the width
/// divides 2^64.
#[derive(Clone, Copy)]
struct Mask(u64);

impl Reduce for Mask {
    #[inline(always)]
    fn delta(self, bin: i64, old: i64) -> u64 {
        (bin.wrapping_sub(old) as u64) & self.0
    }

    #[inline(always)]
    fn of(self, v: u64) -> u64 {
        v & self.0
    }
}

/// Any other width: divisions (the difference of the bins' residues, so no 128-bit arithmetic).
#[derive(Clone, Copy)]
struct Modulo(u64);

impl Reduce for Modulo {
    #[inline(always)]
    fn delta(self, bin: i64, old: i64) -> u64 {
        let w = self.0 as i64;
        let d = bin.rem_euclid(w) - old.rem_euclid(w);
        (if d < 0 { d + w } else { d }) as u64
    }

    #[inline(always)]
    fn of(self, v: u64) -> u64 {
        v % self.0
    }
}

/// The count of a cell in window `epoch` (the current one) and in the window before it.
#[inline(always)]
fn counts(cell: u64, epoch: u16) -> (u64, u64) {
    let at = (cell >> 48) as u16;
    if at == epoch {
        (cell & COUNT_MASK, (cell >> COUNT_BITS) & COUNT_MASK)
    } else if at == epoch.wrapping_sub(1) {
        (0, cell & COUNT_MASK)
    } else {
        (0, 0)
    }
}

/// The cell after one more row in window `epoch`.
#[inline(always)]
fn bumped(cell: u64, epoch: u16) -> u64 {
    let (current, previous) = counts(cell, epoch);
    ((epoch as u64) << 48) | (previous << COUNT_BITS) | (current + 1)
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
        let width = self.width as u64;
        let mut steps = Vec::with_capacity(self.n_chains * self.depth);
        let mut hash = Vec::with_capacity(self.n_chains * self.depth * 2 * self.hashes);
        // Hash coefficients per (hash row, dimension), shared by every chain as in aberrant.
        let mut rng = unit_rng(self.seed, u64::MAX);
        let coefficients: Vec<u32> =
            (0..self.hashes * k).map(|_| ((1 + below(&mut rng, (1 << 31) - 2)) as u64 % width) as u32).collect();
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
                steps.push(Step { dim, slot, first, shift: shifts[f] / deltamax[f], inv: 1.0 / deltamax[f] });
                hash.extend((0..self.hashes).map(|h| coefficients[h * k + f]));
                hash.extend((0..self.hashes).map(|_| (below(&mut rng, (1 << 31) - 1) as u64 % width) as u32));
            }
        }
        let cells = Cells::zeroed(self.n_chains * self.depth * self.hashes * self.width);
        self.chains = Some(Box::new(Chains { steps, hash, cells, in_window: 0, completed: 0, samples_seen: 0 }));
        let init = std::mem::take(&mut self.init);
        for y in init.chunks_exact(k) {
            self.learn_projected(y);
        }
    }

    /// Calls `visit(level, cell)` for the row's cell in every hash row of every level of every chain, in
    /// order; after a level's last hash row, `visit` returns whether to go on down the chain.
    #[inline]
    fn walk(&self, chains: &Chains, y: &[f64], visit: impl FnMut(usize, usize) -> bool) {
        // Reducing modulo the width is most of a step's cost when it is a division (a 128-bit one for the
        // bin change); the default width, 1024, and every power of two reduce by a mask instead.
        let width = self.width as u64;
        if width.is_power_of_two() {
            self.walk_in(Mask(width - 1), chains, y, visit)
        } else {
            self.walk_in(Modulo(width), chains, y, visit)
        }
    }

    #[inline(always)]
    fn walk_in<R: Reduce>(&self, r: R, chains: &Chains, y: &[f64], mut visit: impl FnMut(usize, usize) -> bool) {
        let hashes = self.hashes;
        let mut z = [0.0f64; 64];
        let mut bins = [0i64; 64];
        let mut dots = [0u64; 16];
        for c in 0..self.n_chains {
            dots[..hashes].fill(0);
            for l in 0..self.depth {
                let at = c * self.depth + l;
                let step = chains.steps[at];
                let slot = step.slot as usize;
                let old = if step.first { 0 } else { bins[slot] };
                z[slot] =
                    if step.first { y[step.dim as usize] * step.inv + step.shift } else { 2.0 * z[slot] - step.shift };
                let bin = floor_i64(z[slot]);
                bins[slot] = bin;
                let coefficients = &chains.hash[at * 2 * hashes..(at * 2 + 1) * hashes];
                let offsets = &chains.hash[(at * 2 + 1) * hashes..(at * 2 + 2) * hashes];
                let delta = r.delta(bin, old);
                if delta != 0 {
                    for (dot, &a) in dots[..hashes].iter_mut().zip(coefficients) {
                        *dot = r.of(*dot + delta * a as u64);
                    }
                }
                let base = at * hashes * self.width;
                let mut go_on = true;
                for (h, (&dot, &b)) in dots[..hashes].iter().zip(offsets).enumerate() {
                    let bucket = r.of(dot + b as u64) as usize;
                    go_on &= visit(l, base + h * self.width + bucket);
                }
                if !go_on {
                    break;
                }
            }
        }
    }

    fn learn_projected(&mut self, y: &[f64]) {
        let Some(mut chains) = self.chains.take() else { return };
        let epoch = chains.completed as u16;
        let mut cells = std::mem::take(&mut chains.cells);
        // The slice once: indexing the table itself would resolve its backing at every cell.
        let table: &mut [u64] = &mut cells;
        self.walk(&chains, y, |_, i| {
            table[i] = bumped(table[i], epoch);
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
            if chains.completed as u16 == 0 {
                renumber(&mut chains.cells);
            }
        }
    }

    /// The score of the projected row `y` against the reference window.
    fn score_projected(&self, chains: &Chains, y: &[f64]) -> f64 {
        if chains.completed == 0 {
            return 0.0;
        }
        let epoch = chains.completed as u16;
        let mut score = ChainScore::new(self.hashes, self.depth, true);
        let table: &[u64] = &chains.cells;
        self.walk(chains, y, |l, i| score.push(l, counts(table[i], epoch).1));
        score.mean(self.n_chains)
    }

    /// Scores the projected row `y`, then learns it, in one walk (each cell is read, then bumped).
    fn score_learn_projected(&mut self, y: &[f64]) -> f64 {
        let Some(mut chains) = self.chains.take() else { return 0.0 };
        let epoch = chains.completed as u16;
        let mut cells = std::mem::take(&mut chains.cells);
        let mut score = ChainScore::new(self.hashes, self.depth, false);
        let table: &mut [u64] = &mut cells;
        self.walk(&chains, y, |l, i| {
            let cell = table[i];
            table[i] = bumped(cell, epoch);
            score.push(l, counts(cell, epoch).1)
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

/// Folds the reference counts a walk reads into the mean chain score: per level the minimum over the
/// hash rows, per chain the largest `1 / ((1 + c_l) 2^l)`.
struct ChainScore {
    hashes: usize,
    depth: usize,
    /// Whether a chain may stop once deeper levels cannot score higher.
    stop_early: bool,
    seen: usize,
    level_min: u64,
    /// The chain's smallest `(1 + c_l) 2^l` so far.
    best: f64,
    total: f64,
}

impl ChainScore {
    fn new(hashes: usize, depth: usize, stop_early: bool) -> Self {
        ChainScore { hashes, depth, stop_early, seen: 0, level_min: u64::MAX, best: f64::INFINITY, total: 0.0 }
    }

    /// Takes the count of one hash row at level `l`; returns whether the walk goes on down the chain.
    #[inline(always)]
    fn push(&mut self, l: usize, count: u64) -> bool {
        self.level_min = self.level_min.min(count);
        self.seen += 1;
        if self.seen < self.hashes {
            return true;
        }
        self.seen = 0;
        let scaled = (1 + self.level_min) as f64 * pow2(l);
        self.level_min = u64::MAX;
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
/// just ended (numbered 65,535) become window 0's previous counts, older ones are cleared, so no stale
/// count is read as a recent one when the 16-bit numbers come round again.
fn renumber(cells: &mut [u64]) {
    for cell in cells {
        let ended = if (*cell >> 48) as u16 == u16::MAX { *cell & COUNT_MASK } else { 0 };
        *cell = ended << COUNT_BITS;
    }
}

impl Describe for XStreamParams {
    const REFERENCE: &'static str =
        "Manzoor, Lamba & Akoglu 2018, xStream: Outlier Detection in Feature-Evolving Data Streams (KDD)";
    const SUMMARY: &'static str =
        "xStream: StreamHash projections by feature name, half-space chains and count-min sketches over windows";
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

    #[test]
    fn both_reductions_give_the_residue_of_the_exact_difference() {
        let bins = [0i64, 1, -1, 7, -1023, 1024, 1_000_003, -77_777_777, i64::MAX, i64::MIN, i64::MIN + 1];
        for w in [1u64, 2, 1024, 1 << 20, 3, 1000, (1 << 20) - 1] {
            for &b in &bins {
                for &o in &bins {
                    let exact = (b as i128 - o as i128).rem_euclid(w as i128) as u64;
                    assert_eq!(Modulo(w).delta(b, o), exact, "modulo {w}: {b} - {o}");
                    if w.is_power_of_two() {
                        assert_eq!(Mask(w - 1).delta(b, o), exact, "mask {w}: {b} - {o}");
                        assert_eq!(Mask(w - 1).of(b as u64 >> 23), (b as u64 >> 23) % w);
                    }
                }
            }
        }
    }
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
        assert!(err(XStreamParams { n_chains: 1024, depth: 64, cms_width: 1 << 20, ..d() }).contains("2^27"));
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
        let epoch = chains.completed as u16;
        assert_eq!((chains.completed, chains.in_window), (5, 10));
        for hash_row in chains.cells.chunks_exact(m.width) {
            let (current, previous) =
                hash_row.iter().fold((0, 0), |(c, p), &cell| (c + counts(cell, epoch).0, p + counts(cell, epoch).1));
            assert_eq!((current, previous), (10, 64));
        }
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
        let epoch = chains.completed as u16;
        let mut y = Vec::new();
        for i in 0..300 {
            let x = [(i % 23) as f64 - 5.0, 90.0 + (i % 29) as f64, (i % 7) as f64];
            m.projected(&x, &mut y);
            let early = m.score_projected(chains, &y);
            let mut full = ChainScore::new(m.hashes, m.depth, false);
            m.walk(chains, &y, |l, c| full.push(l, counts(chains.cells[c], epoch).1));
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
        // 65,546 - 1 once the 16-bit window number came round.
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
}
