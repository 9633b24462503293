//! The engine `nets` and `stare` share: a sliding window of points in a grid of cells of width `radius`,
//! and the exact number of window points within `radius` of a query, counted up to `k`.
//!
//! # Grid
//! A point `p` lies in the cell `(floor(p_1 / r), ..., floor(p_d / r))` (`r` the radius), each floor exact:
//! the quotient is rounded once by the division, and where it lands on an integer a fused multiply-add
//! says on which side of it the exact quotient lies (aberrant computes the same floor in rationals).
//! Coordinates beyond `2^53` in magnitude are clamped there: clamping never moves two cells further
//! apart, so the neighbour test below stays sound, and the count exact.
//!
//! Cells live in a slab (coordinates flat, one `d`-vector per slot, empty slots reused) and are found by
//! their coordinates through a hash map with a fixed hasher; the map is only ever looked up, never
//! iterated, so no result depends on its order. Each cell holds its points as a list through the window's
//! slots, oldest first. The window slides point by point, as aberrant's does: a learn past `window_size`
//! points drops the oldest point, which is the oldest of its cell, so both ends of every list are O(1).
//! A cell whose list empties leaves the map.
//!
//! # Counting
//! A window point `p` is a neighbour of `x` when `sum_j (p_j - x_j)^2 <= radius^2 + eps` (the sum taken
//! as four interleaved running sums, see `within`). With `delta` aberrant's cell span (2 at its defaults: the accepted distance is a
//! hair above `radius`, so a neighbour may lie two cells away on an axis), only cells within `delta` of
//! the query's cell on every axis can hold neighbours. They are found, as in aberrant, by looking up the
//! `(2 delta + 1)^d` offsets when that is at most the number of occupied cells (and 20,000), else by
//! scanning every occupied cell and testing its coordinates. The count stops at `k`, and a point's sum
//! stops once it passes the limit (the partial sums never decrease), so neither changes the result: it is
//! `min(#neighbours, k)` whichever cells are visited first.
//!
//! Only finite points are learned. A query with an infinite value has no neighbour; a missing (NaN)
//! value is left out of the distance and of the cell test (such a query scans the occupied cells).
//!
//! The window, not the grid, is the serialized state: a restored engine rebuilds its grid from the
//! points in arrival order, and counts do not depend on the slab layout.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use onad_core::{ParamError, SchemaRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// aberrant's cap on the neighbour offsets enumerated per query.
const MAX_NEIGHBOR_OFFSETS: usize = 20_000;
/// No slot (end of a cell's list).
const NONE: u32 = u32::MAX;
/// Cell coordinates are clamped to `[-2^53, 2^53]`.
const COORD_LIMIT: f64 = 9_007_199_254_740_992.0;
/// The largest window: slots are `u32` and the last value is [`NONE`].
pub(crate) const MAX_WINDOW: usize = 1 << 30;

/// Validated settings of the engine, as the models' parameters give them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct RadiusSettings {
    /// Neighbours at which the score reaches 0.
    pub k: usize,
    /// Neighbourhood radius and cell width.
    pub radius: f64,
    /// Points held.
    pub window_size: usize,
    /// Learned points before scores are computed (`warm_up_slides * slide_size`).
    pub warm_up: u64,
    /// Added to `radius^2` in the distance test.
    pub eps: f64,
}

impl RadiusSettings {
    /// Checks aberrant's parameters (its ranges, plus the limits of this engine's indices).
    pub(crate) fn new(
        k: usize,
        radius: f64,
        window_size: usize,
        slide_size: usize,
        warm_up_slides: usize,
        eps: f64,
    ) -> Result<RadiusSettings, ParamError> {
        if k == 0 {
            return Err(ParamError::invalid("k", "must be at least 1, got 0"));
        }
        if !(radius.is_finite() && radius > 0.0) {
            return Err(ParamError::invalid("radius", format!("must be finite and > 0, got {radius}")));
        }
        if window_size <= k || window_size > MAX_WINDOW {
            return Err(ParamError::invalid(
                "window_size",
                format!("must be greater than k ({k}) and at most 2^30, got {window_size}"),
            ));
        }
        if slide_size == 0 {
            return Err(ParamError::invalid("slide_size", "must be at least 1, got 0"));
        }
        if warm_up_slides == 0 {
            return Err(ParamError::invalid("warm_up_slides", "must be at least 1, got 0"));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(ParamError::invalid("eps", format!("must be finite and > 0, got {eps}")));
        }
        let warm_up = (warm_up_slides as u64).saturating_mul(slide_size as u64);
        Ok(RadiusSettings { k, radius, window_size, warm_up, eps })
    }

    /// `radius^2 + eps`, the largest accepted squared distance.
    fn limit_sq(&self) -> f64 {
        self.radius * self.radius + self.eps
    }

    /// aberrant's cell span: `max(2, floor(r' / radius) + 1)` with `r'` the accepted distance rounded up
    /// twice (squared sums can round down); `None` (every cell is a candidate) when the limit overflows.
    fn max_delta(&self) -> Option<i64> {
        let bound = self.limit_sq().next_up();
        let accepted = bound.sqrt().next_up();
        let cell_radius = (accepted / self.radius).next_up();
        cell_radius.is_finite().then(|| (cell_radius.floor() as i64).saturating_add(1).max(2))
    }
}

/// The exact floor of `v / r` (`v` finite, `r` finite and positive), clamped to `[-2^53, 2^53]`.
#[inline]
fn cell_coord(v: f64, r: f64) -> i64 {
    let t = v / r;
    let mut q = t.floor();
    // Also catches an infinite quotient (q is never NaN: v finite, r finite and positive).
    if q.abs() >= COORD_LIMIT {
        return if t > 0.0 { COORD_LIMIT as i64 } else { -(COORD_LIMIT as i64) };
    }
    // Below 2^53 the rounded quotient lies within half an ulp of the exact one, so its floor is off only
    // when the quotient rounded up onto an integer: then `q r - v` (exact sign: one rounding) is > 0.
    if q == t && q.mul_add(r, -v) > 0.0 {
        q -= 1.0;
    }
    q as i64
}

/// A fixed multiplicative hasher for cell coordinates (lookups only; nothing iterates the map).
#[derive(Default, Clone, Copy)]
struct CellHasher(u64);

impl CellHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for CellHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 29)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
}

type CellIndex = HashMap<Box<[i64]>, u32, BuildHasherDefault<CellHasher>>;

/// One occupied cell (or a free slab slot, `count == 0`): its points as a list through the window's slots.
#[derive(Debug, Clone, Copy)]
struct Cell {
    oldest: u32,
    newest: u32,
    count: u32,
}

/// The window, its grid and the exact radius count (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct RadiusWindow {
    settings: RadiusSettings,
    d: usize,
    limit_sq: f64,
    max_delta: Option<i64>,
    /// Learned points (finite rows), over the whole stream.
    seen: u64,
    /// Window slots, row-major (`d` values each); grows to `window_size` slots.
    points: Vec<f64>,
    /// The cell of each slot.
    slot_cell: Vec<u32>,
    /// The next newer point of the same cell, per slot.
    next: Vec<u32>,
    /// Points held.
    len: usize,
    /// Once the window is full: the slot of the oldest point.
    head: usize,
    cells: Vec<Cell>,
    /// Coordinates of each slab slot, `d` per slot.
    coords: Vec<i64>,
    free: Vec<u32>,
    occupied: usize,
    index: CellIndex,
    /// The coordinates of the point being learned.
    scratch: Vec<i64>,
}

thread_local! {
    /// A query's cell coordinates, reused so that scoring does not allocate.
    static QUERY: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

impl RadiusWindow {
    /// An empty window for points of `d` features (`d >= 1`).
    pub(crate) fn new(settings: RadiusSettings, d: usize) -> RadiusWindow {
        let reserve = settings.window_size.min(1024);
        RadiusWindow {
            settings,
            d,
            limit_sq: settings.limit_sq(),
            max_delta: settings.max_delta(),
            seen: 0,
            points: Vec::with_capacity(reserve * d),
            slot_cell: Vec::with_capacity(reserve),
            next: Vec::with_capacity(reserve),
            len: 0,
            head: 0,
            cells: Vec::new(),
            coords: Vec::new(),
            free: Vec::new(),
            occupied: 0,
            index: CellIndex::default(),
            scratch: vec![0; d],
        }
    }

    /// Points held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Occupied cells.
    #[cfg(test)]
    pub(crate) fn occupied(&self) -> usize {
        self.occupied
    }

    /// Adds a point (ignored unless every value is finite), dropping the oldest past `window_size`.
    pub(crate) fn learn(&mut self, x: &[f64]) {
        debug_assert_eq!(x.len(), self.d);
        if x.iter().any(|v| !v.is_finite()) {
            return;
        }
        let d = self.d;
        let slot = if self.len == self.settings.window_size {
            let s = self.head;
            self.evict(s);
            self.head = (s + 1) % self.settings.window_size;
            self.points[s * d..(s + 1) * d].copy_from_slice(x);
            s
        } else {
            self.points.extend_from_slice(x);
            self.slot_cell.push(NONE);
            self.next.push(NONE);
            self.len += 1;
            self.len - 1
        };
        let r = self.settings.radius;
        for (c, &v) in self.scratch.iter_mut().zip(x) {
            *c = cell_coord(v, r);
        }
        let cell = match self.index.get(&self.scratch[..]) {
            Some(&c) => c,
            None => self.open_cell(),
        };
        let entry = &mut self.cells[cell as usize];
        if entry.count == 0 {
            entry.oldest = slot as u32;
        } else {
            self.next[entry.newest as usize] = slot as u32;
        }
        entry.newest = slot as u32;
        entry.count += 1;
        self.slot_cell[slot] = cell;
        self.next[slot] = NONE;
        self.seen += 1;
    }

    /// Takes the point in `slot` (the oldest of the window, so the oldest of its cell) out of its cell.
    fn evict(&mut self, slot: usize) {
        let c = self.slot_cell[slot] as usize;
        let entry = &mut self.cells[c];
        debug_assert_eq!(entry.oldest as usize, slot);
        entry.oldest = self.next[slot];
        entry.count -= 1;
        if entry.count == 0 {
            let d = self.d;
            self.index.remove(&self.coords[c * d..(c + 1) * d]);
            self.free.push(c as u32);
            self.occupied -= 1;
        }
    }

    /// A new cell at `self.scratch`, in a free slab slot or a new one.
    fn open_cell(&mut self) -> u32 {
        let d = self.d;
        let c = match self.free.pop() {
            Some(c) => {
                self.coords[c as usize * d..(c as usize + 1) * d].copy_from_slice(&self.scratch);
                c
            }
            None => {
                self.cells.push(Cell { oldest: NONE, newest: NONE, count: 0 });
                self.coords.extend_from_slice(&self.scratch);
                (self.cells.len() - 1) as u32
            }
        };
        self.cells[c as usize] = Cell { oldest: NONE, newest: NONE, count: 0 };
        self.index.insert(self.scratch.clone().into_boxed_slice(), c);
        self.occupied += 1;
        c
    }

    /// aberrant's score: `1 - min(#neighbours / k, 1)`, 0.0 until `warm_up` points were learned and the
    /// window holds more than `k`.
    pub(crate) fn score(&self, x: &[f64]) -> f64 {
        let k = self.settings.k;
        if self.seen < self.settings.warm_up || self.len <= k {
            return 0.0;
        }
        let present = x.iter().filter(|v| !v.is_nan()).count();
        if present == 0 {
            return 0.0; // no evidence
        }
        let n = self.count(x, present < self.d);
        1.0 - n as f64 / k as f64
    }

    /// `min(k, #window points within the radius of x)`; `masked`: `x` has missing values.
    pub(crate) fn count(&self, x: &[f64], masked: bool) -> usize {
        if x.iter().any(|v| v.is_infinite()) || self.len == 0 {
            return 0;
        }
        QUERY.with(|cell| match cell.try_borrow_mut() {
            Ok(mut q) => self.count_with(x, masked, &mut q),
            Err(_) => self.count_with(x, masked, &mut Vec::new()),
        })
    }

    fn count_with(&self, x: &[f64], masked: bool, q: &mut Vec<i64>) -> usize {
        let r = self.settings.radius;
        q.clear();
        q.extend(x.iter().map(|&v| if v.is_nan() { 0 } else { cell_coord(v, r) }));
        if masked {
            return self.scan::<true>(x, q);
        }
        if let Some(delta) = self.max_delta {
            let limit = self.occupied.min(MAX_NEIGHBOR_OFFSETS);
            let side = 2 * delta as u128 + 1;
            let mut offsets: u128 = 1;
            for _ in 0..self.d {
                offsets *= side;
                if offsets > limit as u128 {
                    break;
                }
            }
            if offsets <= limit as u128 {
                return self.enumerate(x, q, delta);
            }
        }
        self.scan::<false>(x, q)
    }

    /// Visits every cell within `delta` of the query's cell `q` on every axis, by offsets: the query's
    /// own cell first, then the cells one step away, then the rest (where neighbours are likeliest first,
    /// so the count reaches `k` sooner; the order does not change it).
    fn enumerate(&self, x: &[f64], q: &[i64], delta: i64) -> usize {
        let k = self.settings.k;
        let mut n = match self.index.get(q) {
            Some(&cell) => self.visit(cell, x, 0),
            None => 0,
        };
        for (span, skip_inner) in [(1, false), (delta, true)] {
            if n >= k {
                break;
            }
            n = self.offsets(x, q, span, skip_inner, n);
        }
        n
    }

    /// Visits the cells at offsets in `[-span, span]^d` from `q` other than `q` itself (`skip_inner`:
    /// other than every offset in `[-1, 1]^d`), adding to `n` until `k`.
    fn offsets(&self, x: &[f64], q: &[i64], span: i64, skip_inner: bool, mut n: usize) -> usize {
        let d = self.d;
        // At most 20,000 offsets of side >= 5: d <= 6 here.
        let mut candidate = [0i64; 8];
        let candidate = &mut candidate[..d];
        for (c, &b) in candidate.iter_mut().zip(q) {
            *c = b - span;
        }
        loop {
            let inner = candidate.iter().zip(q).all(|(&c, &b)| c.abs_diff(b) <= if skip_inner { 1 } else { 0 });
            if !inner && let Some(&cell) = self.index.get(&candidate[..]) {
                n = self.visit(cell, x, n);
                if n >= self.settings.k {
                    return n;
                }
            }
            // Odometer over the offsets, the first axis fastest.
            let mut axis = 0;
            loop {
                if axis == d {
                    return n;
                }
                if candidate[axis] < q[axis] + span {
                    candidate[axis] += 1;
                    break;
                }
                candidate[axis] = q[axis] - span;
                axis += 1;
            }
        }
    }

    /// Visits the query's own cell, then scans every other occupied cell, testing its coordinates against
    /// the query's (`MASKED`: leaving out the axes where `x` is NaN, and scanning every cell).
    fn scan<const MASKED: bool>(&self, x: &[f64], q: &[i64]) -> usize {
        let d = self.d;
        let own = if MASKED { None } else { self.index.get(q).copied() };
        let mut n = match own {
            Some(cell) => self.visit(cell, x, 0),
            None => 0,
        };
        if n >= self.settings.k {
            return n;
        }
        // The axis that last told a cell apart is tested first: on many data sets most cells agree with
        // the query on most axes (sparse or integer columns) and differ on a few, the same for most cells.
        let mut hint = 0;
        for (c, cell) in self.cells.iter().enumerate() {
            if cell.count == 0 || own == Some(c as u32) {
                continue;
            }
            if let Some(delta) = self.max_delta {
                let coords = &self.coords[c * d..(c + 1) * d];
                let far = |j: usize| !(MASKED && x[j].is_nan()) && coords[j].abs_diff(q[j]) > delta as u64;
                if far(hint) {
                    continue;
                }
                if let Some(j) = (0..d).find(|&j| far(j)) {
                    hint = j;
                    continue;
                }
            }
            n = if MASKED { self.visit_masked(c as u32, x, n) } else { self.visit(c as u32, x, n) };
            if n >= self.settings.k {
                return n;
            }
        }
        n
    }

    /// Adds to `n` the neighbours of `x` in `cell`, stopping at `k`.
    #[inline]
    fn visit(&self, cell: u32, x: &[f64], mut n: usize) -> usize {
        let d = self.d;
        let mut slot = self.cells[cell as usize].oldest;
        while slot != NONE {
            let s = slot as usize;
            if within(&self.points[s * d..(s + 1) * d], x, self.limit_sq) {
                n += 1;
                if n >= self.settings.k {
                    return n;
                }
            }
            slot = self.next[s];
        }
        n
    }

    /// [`Self::visit`] leaving out the features where `x` is NaN.
    fn visit_masked(&self, cell: u32, x: &[f64], mut n: usize) -> usize {
        let d = self.d;
        let mut slot = self.cells[cell as usize].oldest;
        while slot != NONE {
            let s = slot as usize;
            let p = &self.points[s * d..(s + 1) * d];
            let mut sum = 0.0;
            for (a, b) in p.iter().zip(x) {
                if !b.is_nan() {
                    let t = a - b;
                    sum += t * t;
                }
            }
            if sum <= self.limit_sq {
                n += 1;
                if n >= self.settings.k {
                    return n;
                }
            }
            slot = self.next[s];
        }
        n
    }

    /// The points held, oldest first, row-major.
    fn window_in_order(&self) -> Vec<f64> {
        let d = self.d;
        let start = if self.len == self.settings.window_size { self.head } else { 0 };
        let mut out = Vec::with_capacity(self.len * d);
        out.extend_from_slice(&self.points[start * d..self.len * d]);
        out.extend_from_slice(&self.points[..start * d]);
        out
    }
}

/// Whether `sum_j (p_j - x_j)^2 <= limit`, the sum in four running sums (feature `j` into sum `j mod 4`,
/// then `(s0 + s1) + (s2 + s3)`), so that the additions do not wait on each other. Every 16 features the
/// sums so far are compared with the limit: they only grow, and the final expression is monotone in
/// each, so stopping there gives the same answer as summing everything.
#[inline]
fn within(p: &[f64], x: &[f64], limit: f64) -> bool {
    let mut acc = [0.0f64; 4];
    let total = |acc: &[f64; 4]| (acc[0] + acc[1]) + (acc[2] + acc[3]);
    let (pc, xc) = (p.chunks_exact(4), x.chunks_exact(4));
    let (pr, xr) = (pc.remainder(), xc.remainder());
    for (i, (a, b)) in pc.zip(xc).enumerate() {
        for l in 0..4 {
            let t = a[l] - b[l];
            acc[l] += t * t;
        }
        if i % 4 == 3 && total(&acc) > limit {
            return false;
        }
    }
    for (l, (a, b)) in pr.iter().zip(xr).enumerate() {
        let t = a - b;
        acc[l] += t * t;
    }
    total(&acc) <= limit
}

/// What `nets` and `stare` both are: the window over the feature columns (all but an optional time
/// column), with aberrant's score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RadiusModel {
    /// Boxed: the registry's enums hold models by value.
    window: Box<RadiusWindow>,
    /// The feature columns when a time column is left out; `None`: every column, in order.
    features: Option<Vec<u32>>,
    /// The gathered features of the row being learned (with a time column only).
    #[serde(skip)]
    row: Vec<f64>,
}

thread_local! {
    /// A query's gathered features (with a time column only).
    static ROW: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl RadiusModel {
    /// Resolves `time_key` and checks that a feature column is left.
    pub(crate) fn build(
        settings: RadiusSettings,
        schema: &SchemaRef,
        time_key: Option<&str>,
        model: &str,
    ) -> Result<(RadiusModel, usize), ParamError> {
        let time = time_key.map(|k| schema.resolve("time_key", k)).transpose()?;
        let d = schema.len() - usize::from(time.is_some());
        if d == 0 || schema.len() > u32::MAX as usize {
            return Err(ParamError::Schema(format!(
                "{model} needs 1 to 2^32 - 1 feature columns besides the time_key, got {d}"
            )));
        }
        let features = time.map(|t| (0..schema.len()).filter(|&i| i != t).map(|i| i as u32).collect());
        Ok((RadiusModel { window: Box::new(RadiusWindow::new(settings, d)), features, row: Vec::new() }, d))
    }

    pub(crate) fn learn(&mut self, x: &[f64]) {
        match &self.features {
            None => self.window.learn(x),
            Some(f) => {
                self.row.clear();
                self.row.extend(f.iter().map(|&i| x[i as usize]));
                self.window.learn(&self.row);
            }
        }
    }

    pub(crate) fn score(&self, x: &[f64]) -> f64 {
        match &self.features {
            None => self.window.score(x),
            Some(f) => {
                let gather = |row: &mut Vec<f64>| {
                    row.clear();
                    row.extend(f.iter().map(|&i| x[i as usize]));
                    self.window.score(row)
                };
                ROW.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut row) => gather(&mut row),
                    Err(_) => gather(&mut Vec::new()),
                })
            }
        }
    }
}

/// The serialized form: settings, feature count, learned count and the window, oldest first.
#[derive(Serialize, Deserialize)]
struct Stored {
    settings: RadiusSettings,
    d: usize,
    seen: u64,
    window: Vec<f64>,
}

impl Serialize for RadiusWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Stored { settings: self.settings, d: self.d, seen: self.seen, window: self.window_in_order() }
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RadiusWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RadiusWindow, D::Error> {
        use serde::de::Error;
        let s = Stored::deserialize(deserializer)?;
        let st = s.settings;
        let valid = st.k >= 1
            && st.radius.is_finite()
            && st.radius > 0.0
            && st.window_size > st.k
            && st.window_size <= MAX_WINDOW
            && st.eps.is_finite()
            && st.eps > 0.0
            && s.d >= 1
            && s.window.len().is_multiple_of(s.d)
            && s.window.len() / s.d <= st.window_size
            && (s.window.len() / s.d) as u64 <= s.seen
            && s.window.iter().all(|v| v.is_finite());
        if !valid {
            return Err(D::Error::custom("radius window: inconsistent settings or window"));
        }
        let mut w = RadiusWindow::new(st, s.d);
        for p in s.window.chunks_exact(s.d) {
            w.learn(p);
        }
        w.seen = s.seen;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{unit, unit_rng};

    fn settings(k: usize, radius: f64, window_size: usize) -> RadiusSettings {
        RadiusSettings::new(k, radius, window_size, 1, 1, 1e-9).unwrap()
    }

    /// `min(k, #points within the radius)` over the last `w` points, by brute force.
    fn brute(points: &[Vec<f64>], w: usize, k: usize, limit_sq: f64, x: &[f64]) -> usize {
        let window = &points[points.len().saturating_sub(w)..];
        let n = window
            .iter()
            .filter(|p| {
                p.iter().zip(x).filter(|(_, b)| !b.is_nan()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() <= limit_sq
            })
            .count();
        n.min(k)
    }

    #[test]
    fn exact_floor_matches_rational_floor() {
        // The quotient rounds onto an integer the exact one is below (34 / 0.01 = 3399.99...; the double
        // 0.01 is a little above 1/100), or is exact, or is not near an integer; floors from rationals.
        for (v, r, want) in [
            (34.0, 0.01, 3399),
            (42.22, 0.01, 4221),
            (-26.69, 0.01, -2670),
            (0.3, 0.1, 2),
            (0.30000000000000004, 0.1, 3),
            (-0.1, 0.1, -1),
            (-0.3, 0.1, -3),
            (4.5, 1.5, 3),
            (0.0, 1.5, 0),
            (-0.0, 1.5, 0),
        ] {
            assert_eq!(cell_coord(v, r), want, "floor({v} / {r})");
        }
        assert_eq!(cell_coord(1e300, 1e-300), COORD_LIMIT as i64);
        assert_eq!(cell_coord(-1e300, 1e-300), -(COORD_LIMIT as i64));
        let mut rng = unit_rng(5, 0);
        for _ in 0..20_000 {
            let r = 0.01 + unit(&mut rng) * 3.0;
            let v = (unit(&mut rng) - 0.5) * 1e4;
            let q = cell_coord(v, r) as f64;
            assert!(q.mul_add(r, -v) <= 0.0 && (q + 1.0).mul_add(r, -v) > 0.0, "{v} / {r} -> {q}");
        }
    }

    #[test]
    fn aberrant_cell_span() {
        assert_eq!(settings(5, 1.5, 100).max_delta(), Some(2));
        assert_eq!(settings(5, 1.0, 100).max_delta(), Some(2));
        // eps as large as radius^2: the accepted distance is radius * sqrt(2).
        assert_eq!(RadiusSettings::new(5, 1.0, 100, 1, 1, 3.0).unwrap().max_delta(), Some(3));
        assert_eq!(settings(5, 1e200, 100).max_delta(), None);
    }

    /// Counts through eviction on random rows, against a brute-force count, for both candidate paths
    /// (offsets in few dimensions, the occupied-cell scan in more), with missing and infinite queries.
    #[test]
    fn grid_count_equals_brute_force_through_evictions() {
        for (d, radius, spread, w, k) in [
            (1, 0.5, 10.0, 50, 7),
            (2, 1.0, 8.0, 120, 15),
            (3, 0.7, 4.0, 200, 30),
            (4, 1.5, 6.0, 150, 10),
            (6, 2.0, 5.0, 300, 40),
            (9, 1.5, 2.0, 250, 25),
            (2, 1e200, 1.0, 30, 29),
        ] {
            let s = settings(k, radius, w);
            let mut grid = RadiusWindow::new(s, d);
            let mut seen: Vec<Vec<f64>> = Vec::new();
            let mut rng = unit_rng(d as u64, 1);
            for i in 0..1_500 {
                // Points on a lattice of radius / 2 steps (ties on cell edges and at the radius) mixed with
                // continuous ones.
                let x: Vec<f64> = (0..d)
                    .map(|_| {
                        let u = (unit(&mut rng) - 0.5) * spread;
                        if i % 2 == 0 { (u / (radius / 2.0)).round() * (radius / 2.0) } else { u }
                    })
                    .collect();
                let mut query = x.clone();
                if i % 7 == 3 {
                    query[i % d] = f64::NAN;
                }
                let masked = query.iter().any(|v| v.is_nan());
                let got = grid.count(&query, masked);
                let want =
                    if query.iter().all(|v| v.is_nan()) { got } else { brute(&seen, w, k, s.limit_sq(), &query) };
                assert_eq!(got, want, "d {d} row {i}");
                grid.learn(&x);
                seen.push(x);
                assert_eq!(grid.len(), seen.len().min(w));
            }
            let mut inf = vec![0.0; d];
            inf[0] = f64::INFINITY;
            assert_eq!(grid.count(&inf, false), 0);
            // Every cell counted in the index is occupied, and they hold the window.
            let held: u32 = grid.cells.iter().map(|c| c.count).sum();
            assert_eq!(held as usize, w);
            assert_eq!(grid.index.len(), grid.occupied());
        }
    }

    #[test]
    fn non_finite_points_are_not_learned() {
        let mut grid = RadiusWindow::new(settings(1, 1.0, 4), 2);
        grid.learn(&[f64::NAN, 0.0]);
        grid.learn(&[0.0, f64::NEG_INFINITY]);
        assert_eq!((grid.len(), grid.seen), (0, 0));
        grid.learn(&[0.0, 0.0]);
        assert_eq!(grid.count(&[0.5, 0.5], false), 1);
    }

    #[test]
    fn restored_window_counts_the_same() {
        let mut grid = RadiusWindow::new(settings(20, 1.0, 60), 3);
        let mut rng = unit_rng(9, 0);
        let row = |rng: &mut _| -> Vec<f64> { (0..3).map(|_| (unit(rng) - 0.5) * 6.0).collect() };
        for _ in 0..175 {
            let x = row(&mut rng);
            grid.learn(&x);
        }
        let bytes = postcard::to_stdvec(&grid).unwrap();
        let mut back: RadiusWindow = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        for _ in 0..300 {
            let x = row(&mut rng);
            assert_eq!(grid.count(&x, false), back.count(&x, false));
            grid.learn(&x);
            back.learn(&x);
        }
    }
}
