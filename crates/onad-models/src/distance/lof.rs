//! LocalOutlierFactor: the exact LOF of a point against the last `window_size` points learned, with
//! every window point's k-distance, neighbourhood and local reachability density kept up to date as
//! points arrive and leave (aberrant's `LocalOutlierFactor`, made incremental).

use std::cell::RefCell;
use std::fmt;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::registry::{Describe, finite_score};

/// The largest `window_size` accepted: the distance matrix holds `window_size^2` doubles (2 GiB here).
pub const LOF_MAX_WINDOW: usize = 16_384;

/// The distance [`LocalOutlierFactor`] measures with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LofDistance {
    /// `sqrt(sum_j (x_j - y_j)^2)`, the default.
    #[default]
    Euclidean,
    /// `sum_j |x_j - y_j|`.
    Manhattan,
}

/// Hyperparameters of [`LocalOutlierFactor`]: aberrant 1.3.0's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalOutlierFactorParams {
    /// Neighbours of a point (`1 <= k < window_size`), default 10.
    pub k: usize,
    /// Recent points the scores are computed against (`k < window_size <= 16384`), default 1000.
    pub window_size: usize,
    /// `euclidean` (default) or `manhattan`.
    pub distance: LofDistance,
}

impl Default for LocalOutlierFactorParams {
    fn default() -> Self {
        LocalOutlierFactorParams { k: 10, window_size: 1000, distance: LofDistance::Euclidean }
    }
}

/// Local Outlier Factor over a sliding window: the LOF of a point against the last `window_size` points
/// learned, the point itself not among them (scikit-learn's `novelty=True`, aberrant's `score_one`).
///
/// Reference: Breunig, Kriegel, Ng and Sander, "LOF: identifying density-based local outliers" (SIGMOD
/// 2000); kept up to date over the window as in Pokrajac, Lazarevic and Latecki, "Incremental local
/// outlier detection for data streams" (IEEE CIDM 2007), whose insertion rules are applied here together
/// with their deletion counterparts (the same paper's decremental LOF) when the oldest point leaves.
///
/// # Definitions (as aberrant computes them)
/// Over the window `W` (`n` points) with distance `d`:
/// - `kdist(p)`: the `k`-th smallest of the distances from `p` to the other points of `W` (a duplicate
///   of `p` counts, at distance 0); for a query `q`, the `k`-th smallest distance from `q` to `W`.
/// - `N(p) = {o in W, o != p : d(p, o) <= kdist(p)}`: every point within the k-distance, so ties make
///   it larger than `k`.
/// - `lrd(p) = |N(p)| / sum_{o in N(p)} max(kdist(o), d(p, o))`, infinite when that sum is 0 (`p` and
///   its neighbours are duplicates with at least `k` duplicates each).
/// - `LOF(q) = (1 / |N(q)|) sum_{o in N(q)} lrd(o) / lrd(q)`, about 1 inside a cluster and larger for
///   points less dense than their neighbours; a term is 1 when both densities are infinite and 0 when
///   only `lrd(q)` is (aberrant's conventions); a neighbour with `lrd(o) = 0` adds nothing.
///
/// The score is 0.0 until the window holds more than `k` points (aberrant: `len(window) <= k`), so the
/// first score is computed against `k + 1` points.
///
/// # Algorithm as implemented
/// The window is a ring of columns (one vector per feature, as [`crate::KNN`]), beside a symmetric
/// `window_size x window_size` matrix of the distances between the points held, and per point its
/// `kdist`, `N` (slot numbers, oldest first) and `lrd`. Learning a point `x` (and, once the window is
/// full, forgetting the oldest `o` in the same step):
/// 1. the distances from `x` to the window (O(n d)) fill its row and column of the matrix;
/// 2. the points whose neighbourhood can change are exactly those with `d(p, x) <= kdist(p)` or `o in
///    N(p)` (any other point gains and loses only points beyond its k-distance): their `kdist` and `N`
///    are recomputed, from their matrix row when `o` was a neighbour (O(n) each), else from their old
///    `N` and `x` (O(|N|): the k-distance can only shrink), and `x`'s own from its row;
/// 3. `lrd` is recomputed (O(|N|) each) for those points and for every point with a neighbour whose
///    `kdist` changed (found by one O(n) scan of that neighbour's matrix row).
///
/// Scoring computes the query's distances to the window (O(n d)), its `kdist` in one pass keeping the `k`
/// smallest in a sorted buffer (a linear-time selection for `k > 32`), and reads its neighbours' stored `kdist` and `lrd` (O(n)): nothing is recomputed per score and the
/// state is not touched. Scores equal the from-scratch definition above to the bit: every value is
/// recomputed from its definition whenever an input of it changes (no running sums), and every sum
/// over a neighbourhood runs oldest point first (the unit tests compare with a naive implementation).
///
/// # Cost
/// `score_one`: O(n d + n). `learn_one`: O(n d) for the distances, O(n) for each point that loses the
/// leaving point from its neighbourhood and for each point whose k-distance changes, O(|N|) for each
/// point that gains the new point (about k, 2k and k of them on data in general position; as many as the
/// duplicates on data with many ties), and O(|N|) per density recomputed, against aberrant's O(k^2 n d)
/// per score. `score_learn_one` computes the row's distances once for both. Measured (one core, default
/// parameters, whole files, score then learn): 24k to 31k rows/s on SHUTTLE (9 features), KDD99 SMTP
/// (3), spambase (57) and SMD (38), against 5 to 16 rows/s for aberrant, over 1000 times faster.
/// Memory: the matrix, `8 window_size^2` bytes (8 MB at the default 1000, allocated when the first point
/// is learned; its pages are touched as the window fills), the neighbour lists (4 bytes per entry, at
/// least `k` per point) and `window_size * d` values. A checkpoint stores the window only; the matrix and
/// the per-point values are recomputed from it (O(n^2 d)) when it is loaded.
///
/// Works on raw, unscaled input with its defaults, but every feature counts in its own units, so a
/// feature with a wide range dominates the distances; put a scaler in front when the units differ.
///
/// # Missing and infinite values
/// A point with a missing (NaN) or infinite value is not learned (aberrant raises on both). A missing
/// feature of a query is left out of its distances, and each distance over the `m` features present is
/// rescaled to the `d` features (squared Euclidean sums and Manhattan sums times `d / m`, as
/// scikit-learn's `nan_euclidean_distances`); a query with no feature present scores 0.0. A query with an
/// infinite value is infinitely far from every point: its density is 0 and it scores the largest finite
/// number. So does any infinite LOF (a neighbour of infinite density next to a query of finite density:
/// aberrant returns `inf`), so scores are always finite and still rank above every finite LOF.
///
/// # Deviations from aberrant 1.3.0
/// - A query whose density is 0 (its reach distances sum to infinity: an infinite value, or finite values
///   so large that distances overflow) scores the largest finite number; aberrant returns 0.0 there (it
///   raises on infinite values, so only distances past 1.8e308 reach it, on no data set measured).
/// - `window_size` is at most 16384 (the matrix); aberrant takes any.
/// - Features are taken in schema order; aberrant sorts them by name, which changes sums in the last bit
///   only. Sums run oldest neighbour first; aberrant's run in distance order (the same to rounding).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::LocalOutlierFactorParams;
/// let params = LocalOutlierFactorParams { k: 5, window_size: 200, ..Default::default() };
/// let mut m = params.build(&Schema::shared(["x", "y"]).unwrap()).unwrap();
/// assert_eq!(m.score_one(&[0.0, 0.0]), 0.0); // fewer than k + 1 points
/// for i in 0..300 {
///     let t = i as f64 * 0.37;
///     m.learn_one(&[t.cos(), t.sin()]); // points on the unit circle
/// }
/// let on = m.score_one(&[0.0, 1.0]);
/// let off = m.score_one(&[3.0, 3.0]);
/// assert!(on < 1.5 && off > 10.0, "{on} {off}");
/// ```
#[derive(Clone)]
pub struct LocalOutlierFactor {
    k: usize,
    window_size: usize,
    distance: LofDistance,
    /// One vector per feature; slot `i` of every vector is one point.
    columns: Vec<Vec<f64>>,
    /// Points held.
    len: usize,
    /// Once the window is full: the slot of the oldest point, the next one replaced (0 before).
    head: usize,
    /// Everything computed from the window; not serialized, rebuilt when a state is loaded. Boxed: the
    /// model stays small inside the registry's enum.
    derived: Box<Derived>,
}

/// The distances and per-point LOF quantities of the window, and the buffers updating them.
#[derive(Clone, Default)]
struct Derived {
    /// `dist[i * window_size + j]`: the distance between the points in slots `i` and `j` (symmetric, to
    /// the bit). Empty until the first point is learned.
    dist: Vec<f64>,
    /// Per slot: `kdist`, valid once the window holds more than `k` points.
    kdist: Vec<f64>,
    /// Per slot: `lrd` (may be infinite), valid once the window holds more than `k` points.
    lrd: Vec<f64>,
    /// Per slot: `N(p)`, slot numbers, oldest point first.
    neighbours: Vec<Vec<u32>>,
    /// Buffers of `learn_one`: the new point's distances, a selection buffer, per-slot flags, the slots
    /// whose k-distance changed, the slots picked for a neighbourhood.
    fresh: Vec<f64>,
    select: Vec<f64>,
    flags: Vec<u8>,
    changed: Vec<u32>,
    picked: Vec<u32>,
}

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Derived")
            .field("dist", &format_args!("[{} values]", self.dist.len()))
            .field("kdist", &self.kdist)
            .field("lrd", &self.lrd)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LocalOutlierFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalOutlierFactor")
            .field("k", &self.k)
            .field("window_size", &self.window_size)
            .field("distance", &self.distance)
            .field("len", &self.len)
            .field("head", &self.head)
            .field("derived", &self.derived)
            .finish_non_exhaustive()
    }
}

/// Flag: the slot's `kdist` and `N` are recomputed from its matrix row (it lost a neighbour).
const REBUILD: u8 = 1;
/// Flag: the slot's `kdist` and `N` are recomputed from its old `N` and the new point (it gained the new
/// point and lost none).
const GAIN: u8 = 4;
/// Flag: the slot's `lrd` is recomputed.
const STALE: u8 = 2;

fn check(k: usize, window_size: usize) -> Result<(), ParamError> {
    if k == 0 {
        return Err(ParamError::invalid("k", "must be at least 1, got 0"));
    }
    if window_size == 0 {
        return Err(ParamError::invalid("window_size", "must be at least 2, got 0"));
    }
    if window_size > LOF_MAX_WINDOW {
        return Err(ParamError::invalid(
            "window_size",
            format!(
                "must be at most {LOF_MAX_WINDOW} (the distance matrix holds window_size^2 values), got {window_size}"
            ),
        ));
    }
    if k >= window_size {
        return Err(ParamError::invalid("k", format!("must be less than window_size ({window_size}), got {k}")));
    }
    Ok(())
}

impl DetectorParams for LocalOutlierFactorParams {
    type Model = LocalOutlierFactor;
    fn build(&self, schema: &SchemaRef) -> Result<LocalOutlierFactor, ParamError> {
        check(self.k, self.window_size)?;
        if schema.is_empty() {
            return Err(ParamError::Schema("local_outlier_factor needs at least one feature".into()));
        }
        let reserve = self.window_size.min(1024);
        Ok(LocalOutlierFactor {
            k: self.k,
            window_size: self.window_size,
            distance: self.distance,
            columns: (0..schema.len()).map(|_| Vec::with_capacity(reserve)).collect(),
            len: 0,
            head: 0,
            derived: Box::default(),
        })
    }
}

thread_local! {
    /// A query's distances and a selection buffer, reused so that scoring does not allocate.
    static SCRATCH: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Adds `term(p_j - x_j)` to `acc[i]` for point `i` of the first `acc.len()` slots, feature by feature in
/// order, leaving out the features missing from `x`. Four features per pass over `acc` (the sums keep
/// their order, so the result is that of one feature per pass); the inner loops are elementwise.
#[inline(always)]
fn accumulate(columns: &[Vec<f64>], x: &[f64], acc: &mut [f64], term: impl Fn(f64) -> f64 + Copy) {
    let n = acc.len();
    let mut present = columns.iter().zip(x).filter(|(_, q)| !q.is_nan()).map(|(c, &q)| (&c[..n], q));
    loop {
        match (present.next(), present.next(), present.next(), present.next()) {
            (Some((c0, q0)), Some((c1, q1)), Some((c2, q2)), Some((c3, q3))) => {
                for i in 0..n {
                    acc[i] = (((acc[i] + term(c0[i] - q0)) + term(c1[i] - q1)) + term(c2[i] - q2)) + term(c3[i] - q3);
                }
            }
            (Some((c0, q0)), Some((c1, q1)), Some((c2, q2)), None) => {
                for i in 0..n {
                    acc[i] = ((acc[i] + term(c0[i] - q0)) + term(c1[i] - q1)) + term(c2[i] - q2);
                }
                return;
            }
            (Some((c0, q0)), Some((c1, q1)), None, _) => {
                for i in 0..n {
                    acc[i] = (acc[i] + term(c0[i] - q0)) + term(c1[i] - q1);
                }
                return;
            }
            (Some((c0, q0)), None, _, _) => {
                for i in 0..n {
                    acc[i] += term(c0[i] - q0);
                }
                return;
            }
            _ => return,
        }
    }
}

/// Up to this `k`, [`kth_smallest`] keeps the `k` smallest values seen in a sorted buffer (one comparison
/// per value once it is full); above, it selects in linear time.
const SMALL_K: usize = 32;

/// The `k`-th smallest of `values` (1-based, at least `k` values), through `buf`. Distances are never
/// NaN nor negative (nor -0.0), and such doubles order as their bit patterns do. Both ways return the
/// same value.
fn kth_smallest(values: impl Iterator<Item = f64>, k: usize, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    if k > SMALL_K {
        buf.extend(values);
        return *buf.select_nth_unstable_by_key(k - 1, |v| v.to_bits()).1;
    }
    let mut values = values;
    buf.extend(values.by_ref().take(k));
    buf.sort_unstable_by_key(|v| v.to_bits());
    let mut top = buf[k - 1];
    for v in values {
        if v < top {
            // Insert in order (an insertion-sort step); the largest of the k leaves.
            let mut at = k - 1;
            while at > 0 && buf[at - 1] > v {
                buf[at] = buf[at - 1];
                at -= 1;
            }
            buf[at] = v;
            top = buf[k - 1];
        }
    }
    top
}

/// Local reachability density from the sum of the reach distances over `count` neighbours.
#[inline]
fn density(count: usize, reach_sum: f64) -> f64 {
    if reach_sum <= 0.0 { f64::INFINITY } else { count as f64 / reach_sum }
}

impl LocalOutlierFactor {
    /// Points held (at most `window_size`).
    pub fn n_points(&self) -> usize {
        self.len
    }

    /// The slots in arrival order, oldest first.
    #[inline]
    fn order(&self) -> impl Iterator<Item = usize> {
        (self.head..self.len).chain(0..self.head)
    }

    /// The distances from `x` (`present` features not NaN, at least one) to the points held, into `out`.
    fn distances(&self, x: &[f64], present: usize, out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.len, 0.0);
        let d = self.columns.len();
        let scale = d as f64 / present as f64;
        match self.distance {
            LofDistance::Euclidean => {
                accumulate(&self.columns, x, out, |t| t * t);
                if present == d {
                    out.iter_mut().for_each(|v| *v = v.sqrt());
                } else {
                    out.iter_mut().for_each(|v| *v = (*v * scale).sqrt());
                }
            }
            LofDistance::Manhattan => {
                accumulate(&self.columns, x, out, f64::abs);
                if present < d {
                    out.iter_mut().for_each(|v| *v *= scale);
                }
            }
        }
    }

    /// The LOF of a query from its distances `dq` to the points held (`len > k`).
    fn lof_from(&self, dq: &[f64], buf: &mut Vec<f64>) -> f64 {
        let dv = &self.derived;
        let kq = kth_smallest(dq.iter().copied(), self.k, buf);
        let (mut reach, mut count) = (0.0, 0usize);
        for o in self.order() {
            if dq[o] <= kq {
                reach += dv.kdist[o].max(dq[o]);
                count += 1;
            }
        }
        let lrd_q = density(count, reach);
        if lrd_q <= 0.0 {
            // Infinitely far (an infinite value, or overflowing distances): infinitely sparse.
            return f64::MAX;
        }
        let mut sum = 0.0;
        for o in self.order() {
            if dq[o] <= kq {
                let lrd_o = dv.lrd[o];
                if lrd_o > 0.0 {
                    if lrd_q.is_infinite() {
                        if lrd_o.is_infinite() {
                            sum += 1.0;
                        }
                    } else {
                        sum += lrd_o / lrd_q;
                    }
                }
            }
        }
        finite_score(sum / count as f64)
    }

    /// Recomputes `kdist` and `N` of the point in slot `p` from its matrix row.
    fn rebuild(&mut self, p: usize) {
        let (w, k, len, head) = (self.window_size, self.k, self.len, self.head);
        let dv = &mut self.derived;
        let row = &dv.dist[p * w..p * w + len];
        // The row holds the point's own 0.0, below or equal to every other distance: the k-th smallest
        // of the others is the (k + 1)-th smallest of the row.
        let kd = kth_smallest(row.iter().copied(), k + 1, &mut dv.select);
        dv.kdist[p] = kd;
        // Branch-free compaction of the slots within the k-distance, oldest first, then the copy.
        let picked = &mut dv.picked;
        picked.resize(len, 0);
        let mut count = 0;
        for range in [head..len, 0..head] {
            for q in range {
                picked[count] = q as u32;
                count += usize::from(row[q] <= kd);
            }
        }
        let list = &mut dv.neighbours[p];
        list.clear();
        list.extend(picked[..count].iter().copied().filter(|&q| q as usize != p));
    }

    /// Recomputes `kdist` and `N` of the point in slot `p` when the new point, in slot `s`, is within its
    /// old k-distance and no neighbour left: the `k` nearest are then among the old `N` and the new
    /// point (every other point is beyond the old k-distance), and the new k-distance is at most the old
    /// one. O(|N|). The new point is the newest, so it goes last.
    fn gain(&mut self, p: usize, s: usize) {
        let w = self.window_size;
        let dv = &mut self.derived;
        let row = &dv.dist[p * w..(p + 1) * w];
        let list = &mut dv.neighbours[p];
        let candidates = list.iter().map(|&o| row[o as usize]).chain([row[s]]);
        let kd = kth_smallest(candidates, self.k, &mut dv.select);
        dv.kdist[p] = kd;
        list.retain(|&o| row[o as usize] <= kd);
        if row[s] <= kd {
            list.push(s as u32);
        }
    }

    /// Recomputes `lrd` of the point in slot `p` from its `N` and its neighbours' `kdist`.
    fn refresh(&mut self, p: usize) {
        let w = self.window_size;
        let dv = &mut self.derived;
        let row = &dv.dist[p * w..(p + 1) * w];
        let list = &dv.neighbours[p];
        let mut reach = 0.0;
        for &o in list {
            let o = o as usize;
            reach += dv.kdist[o].max(row[o]);
        }
        dv.lrd[p] = density(list.len(), reach);
    }

    /// Every point's `kdist`, `N` and `lrd` from the matrix (`len > k`).
    fn build_all(&mut self) {
        for p in 0..self.len {
            self.rebuild(p);
        }
        for p in 0..self.len {
            self.refresh(p);
        }
    }

    /// Learns the finite point `x`, whose distances to the points held are `fresh`.
    fn insert(&mut self, x: &[f64], fresh: &[f64]) {
        let w = self.window_size;
        let ready = self.len > self.k;
        let (slot, evict) = if self.len < w { (self.len, false) } else { (self.head, true) };
        if self.derived.dist.is_empty() {
            // Zeroed pages are mapped as the rows are written.
            self.derived.dist = vec![0.0; w * w];
        }
        let before = self.len;
        // The points whose neighbourhood can change: the new point is within their k-distance, or the
        // leaving one was in their neighbourhood.
        let dv = &mut self.derived;
        dv.flags.clear();
        dv.flags.resize(before.max(slot + 1), 0);
        if ready {
            let old_row = &dv.dist[slot * w..slot * w + before];
            for p in 0..before {
                if p != slot {
                    let kd = dv.kdist[p];
                    dv.flags[p] = if evict && old_row[p] <= kd {
                        REBUILD | STALE
                    } else if fresh[p] <= kd {
                        GAIN | STALE
                    } else {
                        0
                    };
                }
            }
        }
        // Store the point, its row and column.
        if evict {
            for (column, &v) in self.columns.iter_mut().zip(x) {
                column[slot] = v;
            }
            self.head = (self.head + 1) % w;
        } else {
            for (column, &v) in self.columns.iter_mut().zip(x) {
                column.push(v);
            }
            self.len += 1;
        }
        let dv = &mut self.derived;
        for (p, &v) in fresh.iter().enumerate() {
            if p != slot {
                dv.dist[slot * w + p] = v;
                dv.dist[p * w + slot] = v;
            }
        }
        dv.dist[slot * w + slot] = 0.0;
        let len = self.len;
        dv.kdist.resize(len, 0.0);
        dv.lrd.resize(len, 0.0);
        dv.neighbours.resize_with(len, Vec::new);
        if !ready {
            if len > self.k {
                self.build_all();
            }
            return;
        }
        // Neighbourhoods and k-distances.
        let mut changed = std::mem::take(&mut self.derived.changed);
        changed.clear();
        for p in 0..len {
            let flags = self.derived.flags[p];
            if p != slot && flags & (REBUILD | GAIN) != 0 {
                let old = self.derived.kdist[p];
                if flags & REBUILD != 0 {
                    self.rebuild(p);
                } else {
                    self.gain(p, slot);
                }
                if self.derived.kdist[p].to_bits() != old.to_bits() {
                    changed.push(p as u32);
                }
            }
        }
        self.rebuild(slot);
        self.derived.flags[slot] = REBUILD | STALE;
        changed.push(slot as u32);
        // Densities: the points rebuilt, and those with a neighbour whose k-distance changed.
        let dv = &mut self.derived;
        for &c in &changed {
            let c = c as usize;
            let row = &dv.dist[c * w..c * w + len];
            // Branch-free (it vectorizes); `c` itself is marked too, which it already is.
            for ((flag, &d), &kd) in dv.flags[..len].iter_mut().zip(row).zip(&dv.kdist) {
                *flag |= u8::from(d <= kd) * STALE;
            }
        }
        self.derived.changed = changed;
        for p in 0..len {
            if self.derived.flags[p] & STALE != 0 {
                self.refresh(p);
            }
        }
    }

    /// Learns `x` when it is finite; `fresh` is the buffer its distances go through.
    fn learn_with(&mut self, x: &[f64], fresh: &mut Vec<f64>) {
        let d = self.columns.len();
        self.distances(x, d, fresh);
        self.insert(x, fresh);
    }

    /// The matrix and every derived value, recomputed from the window (after loading a state).
    fn rebuild_derived(&mut self) {
        let w = self.window_size;
        let mut dv = Derived::default();
        if self.len > 0 {
            dv.dist = vec![0.0; w * w];
            let mut row = Vec::new();
            let d = self.columns.len();
            for j in 0..self.len {
                let point: Vec<f64> = self.columns.iter().map(|c| c[j]).collect();
                self.distances(&point, d, &mut row);
                dv.dist[j * w..j * w + self.len].copy_from_slice(&row);
                dv.dist[j * w + j] = 0.0;
            }
            dv.kdist = vec![0.0; self.len];
            dv.lrd = vec![0.0; self.len];
            dv.neighbours = vec![Vec::new(); self.len];
        }
        *self.derived = dv;
        if self.len > self.k {
            self.build_all();
        }
    }
}

impl Detector for LocalOutlierFactor {
    fn learn_one(&mut self, x: &[f64]) {
        if x.iter().any(|v| !v.is_finite()) {
            return;
        }
        let mut fresh = std::mem::take(&mut self.derived.fresh);
        self.learn_with(x, &mut fresh);
        self.derived.fresh = fresh;
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.len <= self.k {
            return 0.0;
        }
        let present = x.iter().filter(|v| !v.is_nan()).count();
        if present == 0 {
            return 0.0;
        }
        let run = |(dq, buf): &mut (Vec<f64>, Vec<f64>)| {
            self.distances(x, present, dq);
            self.lof_from(dq, buf)
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => run(&mut scratch),
            Err(_) => run(&mut (Vec::new(), Vec::new())),
        })
    }

    /// The row's distances are computed once, for its score and for learning it.
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        if x.iter().any(|v| !v.is_finite()) {
            return self.score_one(x);
        }
        let mut fresh = std::mem::take(&mut self.derived.fresh);
        self.distances(x, self.columns.len(), &mut fresh);
        let score = if self.len <= self.k {
            0.0
        } else {
            let mut buf = std::mem::take(&mut self.derived.select);
            let s = self.lof_from(&fresh, &mut buf);
            self.derived.select = buf;
            s
        };
        self.insert(x, &fresh);
        self.derived.fresh = fresh;
        score
    }
}

/// What a checkpoint holds: the parameters and the window.
#[derive(Serialize)]
struct StateRef<'a> {
    k: usize,
    window_size: usize,
    distance: LofDistance,
    columns: &'a [Vec<f64>],
    len: usize,
    head: usize,
}

#[derive(Deserialize)]
struct State {
    k: usize,
    window_size: usize,
    distance: LofDistance,
    columns: Vec<Vec<f64>>,
    len: usize,
    head: usize,
}

impl Serialize for LocalOutlierFactor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StateRef {
            k: self.k,
            window_size: self.window_size,
            distance: self.distance,
            columns: &self.columns,
            len: self.len,
            head: self.head,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LocalOutlierFactor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = State::deserialize(deserializer)?;
        check(s.k, s.window_size).map_err(serde::de::Error::custom)?;
        let fits = !s.columns.is_empty()
            && s.len <= s.window_size
            && (s.head == 0 || (s.len == s.window_size && s.head < s.window_size))
            && s.columns.iter().all(|c| c.len() == s.len && c.iter().all(|v| v.is_finite()));
        if !fits {
            return Err(serde::de::Error::custom(format!(
                "a LocalOutlierFactor window of {} points (head {}, window_size {}) in {} columns that do not match",
                s.len,
                s.head,
                s.window_size,
                s.columns.len()
            )));
        }
        let mut m = LocalOutlierFactor {
            k: s.k,
            window_size: s.window_size,
            distance: s.distance,
            columns: s.columns,
            len: s.len,
            head: s.head,
            derived: Box::default(),
        };
        m.rebuild_derived();
        Ok(m)
    }
}

impl Describe for LocalOutlierFactorParams {
    const REFERENCE: &'static str = "Breunig, Kriegel, Ng & Sander 2000, LOF: Identifying Density-Based Local Outliers (SIGMOD); Pokrajac, Lazarevic & Latecki 2007, Incremental Local Outlier Detection for Data Streams (CIDM)";
    const SUMMARY: &'static str =
        "exact local outlier factor against the last window_size points, kept up to date incrementally";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "k",
            ty: "int in [1, window_size)",
            required: false,
            help: "neighbours of a point (default 10)",
        },
        ParamDoc {
            name: "window_size",
            ty: "int in (k, 16384]",
            required: false,
            help: "recent points scored against (default 1000)",
        },
        ParamDoc {
            name: "distance",
            ty: "euclidean | manhattan",
            required: false,
            help: "distance between points (default euclidean)",
        },
    ];
    fn example() -> Self {
        LocalOutlierFactorParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{below, unit_rng};
    use onad_core::Schema;

    fn build(k: usize, w: usize, distance: LofDistance, d: usize) -> LocalOutlierFactor {
        LocalOutlierFactorParams { k, window_size: w, distance }.build(&Schema::numbered("f", d)).unwrap()
    }

    /// The distance of the definition, features in order; missing query features left out and rescaled.
    fn naive_distance(a: &[f64], b: &[f64], distance: LofDistance) -> f64 {
        let present = b.iter().filter(|v| !v.is_nan()).count();
        let pairs = a.iter().zip(b).filter(|(_, y)| !y.is_nan());
        let scale = a.len() as f64 / present as f64;
        match distance {
            LofDistance::Euclidean => {
                let s: f64 = pairs.map(|(x, y)| (x - y) * (x - y)).sum();
                if present == a.len() { s.sqrt() } else { (s * scale).sqrt() }
            }
            LofDistance::Manhattan => {
                let s: f64 = pairs.map(|(x, y)| (x - y).abs()).sum();
                if present == a.len() { s } else { s * scale }
            }
        }
    }

    /// LOF from scratch (aberrant's procedure) of `q` against `window` (oldest first), sums oldest first.
    fn naive_lof(window: &[Vec<f64>], k: usize, distance: LofDistance, q: &[f64]) -> f64 {
        if window.len() <= k {
            return 0.0;
        }
        let kth = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[k - 1]
        };
        // (neighbour indices, their distances) within the window; `me` is excluded.
        let hood = |x: &[f64], me: Option<usize>| {
            let d: Vec<(usize, f64)> = window
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != me)
                .map(|(i, p)| (i, naive_distance(p, x, distance)))
                .collect();
            let kd = kth(d.iter().map(|e| e.1).collect());
            (d.into_iter().filter(|e| e.1 <= kd).collect::<Vec<_>>(), kd)
        };
        let kdist = |i: usize| hood(&window[i], Some(i)).1;
        let lrd_of = |n: &[(usize, f64)]| {
            let reach: f64 = n.iter().fold(0.0, |s, &(o, dist)| s + kdist(o).max(dist));
            if reach <= 0.0 { f64::INFINITY } else { n.len() as f64 / reach }
        };
        let (nq, _) = hood(q, None);
        let lrd_q = lrd_of(&nq);
        if lrd_q <= 0.0 {
            return f64::MAX;
        }
        let mut sum = 0.0;
        for &(o, _) in &nq {
            let lrd_o = lrd_of(&hood(&window[o], Some(o)).0);
            if lrd_o > 0.0 {
                if lrd_o.is_infinite() && lrd_q.is_infinite() {
                    sum += 1.0;
                } else if lrd_q.is_finite() {
                    sum += lrd_o / lrd_q;
                }
            }
        }
        finite_score(sum / nq.len() as f64)
    }

    #[test]
    fn scores_equal_a_from_scratch_lof_through_eviction_ties_and_duplicates() {
        // (k, window, features, value range; 0 = continuous): small integer ranges give many duplicates,
        // points with at least k duplicates (infinite densities) and ties at the k-distance.
        let cases = [
            (1, 2, 1, 3),
            (1, 5, 2, 3),
            (3, 20, 2, 4),
            (5, 25, 3, 0),
            (4, 30, 1, 6),
            (2, 17, 5, 2),
            (6, 40, 4, 0),
            (3, 12, 9, 3),
            // Above SMALL_K: the k-distances come from a linear-time selection.
            (40, 60, 2, 0),
            (33, 45, 1, 5),
        ];
        // Scores met: infinite LOF (a neighbour of infinite density), exactly 1 (infinite densities on
        // both sides, among others), other.
        let mut met = [0usize; 3];
        for (case, &(k, w, d, range)) in cases.iter().enumerate() {
            for distance in [LofDistance::Euclidean, LofDistance::Manhattan] {
                let mut rng = unit_rng(case as u64, 0);
                let mut m = build(k, w, distance, d);
                let mut fused = m.clone();
                let mut seen: Vec<Vec<f64>> = Vec::new();
                for i in 0..300 {
                    let x: Vec<f64> = (0..d)
                        .map(|_| {
                            if range == 0 {
                                crate::rng::unit(&mut rng) * 10.0 - 5.0
                            } else {
                                below(&mut rng, range) as f64
                            }
                        })
                        .collect();
                    let window = &seen[seen.len().saturating_sub(w)..];
                    let want = naive_lof(window, k, distance, &x);
                    let got = m.score_one(&x);
                    assert_eq!(got.to_bits(), want.to_bits(), "case {case} {distance:?} row {i}: {got} vs {want}");
                    met[if got == f64::MAX {
                        0
                    } else if got == 1.0 {
                        1
                    } else {
                        2
                    }] += 1;
                    if d > 1 && i % 5 == 0 {
                        let mut q = x.clone();
                        q[i % d] = f64::NAN;
                        let want = naive_lof(window, k, distance, &q);
                        assert_eq!(m.score_one(&q).to_bits(), want.to_bits(), "case {case} row {i} with NaN");
                    }
                    assert_eq!(fused.score_learn_one(&x).to_bits(), got.to_bits(), "case {case} row {i} fused");
                    m.learn_one(&x);
                    seen.push(x);
                }
            }
        }
        assert!(met.iter().all(|&n| n > 20), "every kind of score is exercised: {met:?}");
    }

    #[test]
    fn hand_checked_scores_with_ties_and_duplicates() {
        // Window 0, 1, 3 (k = 1): kdist 1, 1, 2; lrd 1, 1, 0.5.
        let mut m = build(1, 10, LofDistance::Euclidean, 1);
        for v in [0.0, 1.0, 3.0] {
            m.learn_one(&[v]);
        }
        // 10: N = {3} at 7, reach max(2, 7) = 7, lrd 1/7: LOF 0.5 * 7.
        assert!((m.score_one(&[10.0]) - 3.5).abs() < 1e-12);
        // 0.5 ties 0 and 1 at the k-distance 0.5: both are neighbours, reach 1 each, lrd 1: LOF 1.
        assert_eq!(m.score_one(&[0.5]), 1.0);
        // Duplicates: three copies of 0 have kdist 0 and infinite densities.
        let mut m = build(1, 10, LofDistance::Manhattan, 1);
        for _ in 0..3 {
            m.learn_one(&[0.0]);
        }
        assert_eq!(m.score_one(&[0.0]), 1.0, "infinite densities on both sides count 1");
        assert_eq!(m.score_one(&[1.0]), f64::MAX, "an infinite LOF is the largest finite score");
    }

    #[test]
    fn warm_up_is_k_plus_one_points_and_the_window_slides() {
        let mut m = build(3, 5, LofDistance::Euclidean, 1);
        for v in [0.0, 1.0, 2.0] {
            assert_eq!(m.score_one(&[9.0]), 0.0);
            m.learn_one(&[v]);
        }
        assert_eq!(m.score_one(&[9.0]), 0.0, "k points: still 0.0");
        m.learn_one(&[3.0]);
        assert!(m.score_one(&[9.0]) > 1.0, "k + 1 points: scored");
        for v in [100.0, 101.0, 102.0, 103.0, 104.0] {
            m.learn_one(&[v]);
        }
        assert_eq!(m.n_points(), 5);
        // The points near 0 have left: 1.5 is now the outlier, 102.5 an inlier.
        assert!(m.score_one(&[1.5]) > 10.0 * m.score_one(&[102.5]));
    }

    #[test]
    fn an_isolated_point_scores_above_inliers() {
        let mut m = LocalOutlierFactorParams::default().build(&Schema::numbered("f", 3)).unwrap();
        let mut rng = unit_rng(9, 0);
        let mut inlier = Vec::new();
        for _ in 0..1500 {
            let x: Vec<f64> = (0..3).map(|_| crate::rng::unit(&mut rng)).collect();
            inlier.push(m.score_learn_one(&x));
        }
        let typical = inlier[1000..].iter().sum::<f64>() / 500.0;
        let outlier = m.score_one(&[3.0, 3.0, 3.0]);
        assert!(typical < 1.3 && outlier > 5.0, "{typical} {outlier}");
    }

    #[test]
    fn missing_and_infinite_values() {
        let mut m = build(1, 4, LofDistance::Euclidean, 2);
        for x in [[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]] {
            m.learn_one(&x);
        }
        let state = postcard::to_stdvec(&m).unwrap();
        m.learn_one(&[f64::NAN, 1.0]);
        m.learn_one(&[1.0, f64::INFINITY]);
        assert_eq!(postcard::to_stdvec(&m).unwrap(), state, "non-finite points are not learned");
        assert_eq!(m.n_points(), 3);
        // f1 missing: over f0 the distances of 10 are 10, 9, 7, times sqrt(2 / 1).
        let got = m.score_one(&[10.0, f64::NAN]);
        let lrd_q = 1.0 / (49.0f64 * 2.0).sqrt();
        assert_eq!(got, 0.5 / lrd_q);
        assert_eq!(m.score_one(&[f64::NAN, f64::NAN]), 0.0);
        assert_eq!(m.score_one(&[f64::INFINITY, 0.0]), f64::MAX);
        assert_eq!(m.score_one(&[f64::NEG_INFINITY, f64::NAN]), f64::MAX);
        assert_eq!(m.score_one(&[1e300, -1e300]), f64::MAX, "overflowing distances: density 0");
    }

    #[test]
    fn a_loaded_state_scores_as_the_original() {
        let mut m = build(4, 50, LofDistance::Euclidean, 3);
        let mut rng = unit_rng(3, 1);
        let rows: Vec<Vec<f64>> = (0..200).map(|_| (0..3).map(|_| below(&mut rng, 5) as f64).collect()).collect();
        rows[..120].iter().for_each(|r| m.learn_one(r));
        let json = serde_json::to_string(&m).unwrap();
        let mut back: LocalOutlierFactor = serde_json::from_str(&json).unwrap();
        for r in &rows[120..] {
            assert_eq!(m.score_learn_one(r).to_bits(), back.score_learn_one(r).to_bits());
        }
        let bad = json.replace("\"head\":20", "\"head\":60");
        assert!(serde_json::from_str::<LocalOutlierFactor>(&bad).is_err(), "head past the window is refused");
    }

    #[test]
    fn invalid_parameters_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        let ok = LocalOutlierFactorParams::default();
        assert_eq!((ok.k, ok.window_size, ok.distance), (10, 1000, LofDistance::Euclidean), "aberrant's defaults");
        assert!(ok.build(&schema).is_ok());
        let cases = [
            (LocalOutlierFactorParams { k: 0, ..ok.clone() }, "'k'"),
            (LocalOutlierFactorParams { k: 1000, ..ok.clone() }, "'k'"),
            (LocalOutlierFactorParams { window_size: 0, ..ok.clone() }, "'window_size'"),
            (LocalOutlierFactorParams { window_size: LOF_MAX_WINDOW + 1, ..ok.clone() }, "'window_size'"),
            (LocalOutlierFactorParams { k: 5, window_size: 5, ..ok.clone() }, "'k'"),
        ];
        for (params, name) in cases {
            let err = params.build(&schema).unwrap_err().to_string();
            assert!(err.contains(name), "{params:?}: {err}");
        }
        assert!(ok.build(&Schema::numbered("f", 0)).is_err());
        let json: LocalOutlierFactorParams = serde_json::from_str(r#"{"distance": "manhattan"}"#).unwrap();
        assert_eq!((json.k, json.distance), (10, LofDistance::Manhattan));
    }
}
