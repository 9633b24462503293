//! Isconna: an edge stream scored by how often an edge arrives now (frequency) and by the pattern of its
//! presence over time (how long it has been present in a row, how long it was absent).

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::{EdgeClock, EdgeColumns, SketchHash, check_sketch, decay_power, node_sketch_key, pair_key};
use crate::registry::Describe;

/// The most cells a sketch may have (`count_min_rows * count_min_cols`): 2^24 cells, 1.25 GiB per sketch.
const MAX_CELLS_LOG2: u32 = 24;

/// Hyperparameters of [`ISCONNA`] (aberrant 1.3.0 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ISCONNAParams {
    /// Column of the source node id.
    pub source_key: String,
    /// Column of the destination node id.
    pub destination_key: String,
    /// Column of the time bucket (non-decreasing); `None`: every edge is its own bucket (arrival index).
    pub time_key: Option<String>,
    /// Hash functions (rows) of each sketch, `>= 1`.
    pub count_min_rows: usize,
    /// Counters per sketch row, `>= 1`.
    pub count_min_cols: usize,
    /// Factor in `(0, 1]` applied to the current frequency at each new bucket, and to the current width
    /// and gap when a new one starts.
    pub time_decay_factor: f64,
    /// Exponent of the frequency score, `>= 0`.
    pub alpha: f64,
    /// Exponent of the width (consecutive presence) score, `>= 0`.
    pub beta: f64,
    /// Exponent of the gap (consecutive absence) score, `>= 0`.
    pub gamma: f64,
    /// Also keep sketches of the source and the destination alone, and take each score's maximum over
    /// the edge, the source and the destination.
    pub include_endpoints: bool,
    /// Edges learned before scoring starts (scores are 0 until then).
    pub warm_up_samples: u64,
    /// Return `score / (1 + score)`, in `[0, 1)`.
    pub normalize_score: bool,
    /// Seed of the sketches' hash functions; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for ISCONNAParams {
    fn default() -> Self {
        ISCONNAParams {
            source_key: "src".into(),
            destination_key: "dst".into(),
            time_key: Some("t".into()),
            count_min_rows: 2,
            count_min_cols: 3000,
            time_decay_factor: 0.7,
            alpha: 1.0,
            beta: 1.0,
            gamma: 0.5,
            include_endpoints: true,
            warm_up_samples: 0,
            normalize_score: false,
            seed: None,
        }
    }
}

/// One cell of an Isconna sketch, as of the bucket opened by rollover number `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Cell {
    /// Frequency: decayed count in the current bucket, and the total count.
    f_cur: f64,
    f_acc: f64,
    /// Width: the current run of buckets with the key present (decayed at each new run), and the sum of
    /// earlier runs; `w_time` counts the runs (from 1).
    w_cur: f64,
    w_acc: f64,
    w_time: u64,
    /// Gap: the same for runs of buckets with the key absent.
    g_cur: f64,
    g_acc: f64,
    g_time: u64,
    /// Whether the key is present in the current bucket, and was in the previous one.
    busy_cur: bool,
    busy_prev: bool,
    epoch: u64,
}

impl Default for Cell {
    fn default() -> Self {
        Cell {
            f_cur: 0.0,
            f_acc: 0.0,
            w_cur: 0.0,
            w_acc: 0.0,
            w_time: 1,
            g_cur: 0.0,
            g_acc: 0.0,
            g_time: 1,
            busy_cur: false,
            busy_prev: false,
            epoch: 0,
        }
    }
}

impl Cell {
    /// The cell after the new buckets up to rollover `epoch`: the authors' per-bucket reset applied once
    /// per bucket missed, in closed form.
    #[inline]
    fn caught_up(mut self, epoch: u64, z: f64) -> Cell {
        let k = epoch - self.epoch;
        if k == 0 {
            return self;
        }
        self.f_cur *= decay_power(z, k);
        // The first new bucket closes the current one: absent in it, the key's gap grows, and a gap that
        // starts (present in the bucket before) closes the previous gap first.
        let was_busy = self.busy_cur;
        if !was_busy {
            if self.busy_prev {
                self.start_gap(z);
            }
            self.g_cur += 1.0;
        }
        if k >= 2 {
            // The second closes an empty bucket after the current one, which starts a gap if the key was
            // present in it; every later one only lengthens the gap.
            if was_busy {
                self.start_gap(z);
            }
            self.g_cur += 1.0 + (k - 2) as f64;
        }
        self.busy_prev = k == 1 && was_busy;
        self.busy_cur = false;
        self.epoch = epoch;
        self
    }

    #[inline]
    fn start_gap(&mut self, z: f64) {
        self.g_acc += self.g_cur;
        self.g_cur *= z;
        self.g_time = self.g_time.saturating_add(1);
    }

    /// The key arrives once (the authors' update).
    #[inline]
    fn observe(&mut self, z: f64) {
        self.f_cur += 1.0;
        self.f_acc += 1.0;
        if !self.busy_cur {
            if !self.busy_prev {
                // A new run of presence: the previous run joins the sum.
                self.w_acc += self.w_cur;
                self.w_cur *= z;
                self.w_time = self.w_time.saturating_add(1);
            }
            self.w_cur += 1.0;
            self.busy_cur = true;
        }
    }
}

/// One count-min sketch of [`Cell`]s.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sketch {
    hashes: Vec<SketchHash>,
    /// Row-major, `hashes.len() * cols` cells.
    cells: Vec<Cell>,
}

/// Isconna (Liu, Bhatia & Hooi 2021, "Isconna: Streaming Anomaly Detection with Frequency and Patterns",
/// arXiv:2104.01632): each row is an edge `(source, destination, time)`, scored by three G-tests kept in
/// count-min sketches: a burst of the edge in the current time bucket (frequency), an unusually long run of
/// consecutive buckets with the edge present (width), and an unusually long absence before it (gap). It
/// keeps no edge records, only the sketches, so memory is constant.
///
/// # Algorithm
/// - Each sketch (`count_min_rows` hash functions of `count_min_cols` cells) keeps per cell: the
///   frequency in the current bucket `f_cur` (multiplied by `time_decay_factor` at each new bucket) and the
///   total frequency `f_acc`; the length of the current run of buckets where the key is present `w_cur`,
///   the sum of the earlier runs `w_acc` and the number of runs `w_time`; the same three for runs of
///   absence (`g_cur`, `g_acc`, `g_time`). A new run multiplies the current run's length by the factor
///   after adding it to the sum.
/// - `G(c, a, t) = 2 c |ln(c (t - 1) / a)|` (0 when `c` or `a` is 0 or `t <= 1`). The frequency score
///   is `G(min f_cur, min f_acc, t)` over the rows, `t` the bucket index (`time - first time + 1`, or the
///   arrival number from 1 without a time column); the width and gap scores are `G(w_cur, w_acc, w_time)`
///   and `G(g_cur, g_acc, g_time)` at the row whose count of runs is smallest (the authors' arg-query).
/// - With `include_endpoints` (the default) the source alone and the destination alone have sketches of
///   their own, and each of the three scores is the maximum over the edge, the source and the
///   destination. The score is `frequency^alpha * width^beta * gap^gamma`.
/// - Scores are candidate-inclusive, as in the authors' code, which scores an edge after adding it:
///   `score_one(x)` applies the new bucket x would open and x's own arrival to copies of the few cells x
///   reads, so score then learn gives the authors' update-and-score value; the sketches are never copied
///   or changed by scoring.
/// - `normalize_score` maps the score to `s / (1 + s)`; scores are 0 before `warm_up_samples` edges have
///   been learned.
/// - Explanation ([`Detector::explain_one`]): `frequency_score`, `width_score` and `gap_score`, the three
///   maxima before their exponents (NaN during the warm-up and for a row that is no edge).
///
/// Node ids are read exactly (see [`crate::graph`]): a row whose source or destination is missing is no
/// edge, scores 0 and is not learned; a time that is missing or earlier than the current bucket counts in
/// the current bucket.
///
/// # Cost
/// Per edge O(`count_min_rows`) per sketch (one sketch, or three with endpoints), scoring and learning
/// alike. The authors (and aberrant) pass over every cell of every sketch at each new bucket, O(rows *
/// cols); here each cell remembers the bucket it was last brought up to date in and applies the resets it
/// missed in closed form when it is next read, so a new bucket costs nothing (this is what lets one edge
/// per bucket, no time column, run at full speed). Memory: 80 bytes per cell, `count_min_rows *
/// count_min_cols` cells per sketch (470 KiB each, 1.4 MiB with endpoints by default), constant.
///
/// # Deviations from aberrant 1.3.0
/// - Hashing: aberrant and the authors use `((a + 347 b) p + q) mod cols` over integer ids (a node as
///   `(id, 0)`); here the seeded `((a * key + b) mod (2^61 - 1)) mod cols` of
///   [`SketchHash`](super::SketchHash), the edge's key mixing both ids in order, a node's key its mixed id,
///   with separate hash functions per sketch. Cells differ from aberrant's for the same seed; `seed =
///   None` means seed 0.
/// - Ids: any number or text (through the sources' id columns), not only integer-like numbers; a row that
///   is no edge or goes back in time is not an error.
/// - The lazy resets above: `factor^k` at once for `k` missed buckets (can differ from `k` successive
///   multiplications in the last bit), and a gap lengthened by `k` at once.
/// - aberrant turns a non-finite product into 0; here each factor and the product saturate at
///   `f64::MAX`, so an overwhelming score stays the highest.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::ISCONNAParams;
///
/// let schema = Schema::shared(["t", "src", "dst"]).unwrap();
/// let mut model = ISCONNAParams { seed: Some(7), ..Default::default() }.build(&schema).unwrap();
/// // 30 buckets of the same light traffic among 10 nodes, and edge (100, 200) once every 5 buckets.
/// for t in 0..30 {
///     for e in 0..20 {
///         model.learn_one(&[t as f64, (e % 10) as f64, ((e * 3 + 1) % 10) as f64]);
///     }
///     if t % 5 == 0 {
///         model.learn_one(&[t as f64, 100.0, 200.0]);
///     }
/// }
/// // In bucket 31, a usual edge once, then (100, 200) 40 times.
/// let usual = model.score_one(&[31.0, 1.0, 4.0]);
/// for _ in 0..40 {
///     model.learn_one(&[31.0, 100.0, 200.0]);
/// }
/// let burst = model.score_one(&[31.0, 100.0, 200.0]);
/// assert!(burst > 10.0 * usual.max(1.0), "{burst} vs {usual}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ISCONNA {
    columns: EdgeColumns,
    cols: usize,
    decay: f64,
    alpha: f64,
    beta: f64,
    gamma: f64,
    normalize: bool,
    warm_up: u64,
    /// The edge sketch, then (with endpoints) the source and the destination sketches.
    sketches: Vec<Sketch>,
    clock: EdgeClock,
    /// The first learned edge's bucket (`t = bucket - first + 1`).
    first: Option<f64>,
    /// New buckets opened so far.
    epoch: u64,
}

impl DetectorParams for ISCONNAParams {
    type Model = ISCONNA;
    fn build(&self, schema: &SchemaRef) -> Result<ISCONNA, ParamError> {
        check_sketch(self.count_min_rows, self.count_min_cols, MAX_CELLS_LOG2, self.time_decay_factor)?;
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta), ("gamma", self.gamma)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(ParamError::invalid(name, format!("must be a finite number >= 0, got {v}")));
            }
        }
        let columns = EdgeColumns::resolve(schema, &self.source_key, &self.destination_key, self.time_key.as_deref())?;
        let seed = self.seed.unwrap_or(0);
        let groups = if self.include_endpoints { 3 } else { 1 };
        let rows = self.count_min_rows;
        let sketches = (0..groups)
            .map(|g| Sketch {
                hashes: (0..rows).map(|r| SketchHash::new(seed, (g * rows + r) as u64)).collect(),
                cells: vec![Cell::default(); rows * self.count_min_cols],
            })
            .collect();
        Ok(ISCONNA {
            columns,
            cols: self.count_min_cols,
            decay: self.time_decay_factor,
            alpha: self.alpha,
            beta: self.beta,
            gamma: self.gamma,
            normalize: self.normalize_score,
            warm_up: self.warm_up_samples,
            sketches,
            clock: EdgeClock::default(),
            first: None,
            epoch: 0,
        })
    }
}

/// The G-test statistic of the authors' code, `2 c |ln(c (t - 1) / a)|`, 0 when `c` or `a` is 0 or
/// `t <= 1`; in logs when the ratio leaves the doubles.
#[inline]
fn g_test(c: f64, a: f64, t: f64) -> f64 {
    if c == 0.0 || a == 0.0 || t.is_nan() || t <= 1.0 {
        return 0.0;
    }
    let ratio = c * (t - 1.0) / a;
    let log = if ratio.is_finite() && ratio > 0.0 { ratio.ln() } else { c.ln() + (t - 1.0).ln() - a.ln() };
    let v = 2.0 * c * log.abs();
    if v.is_finite() { v } else { f64::MAX }
}

/// `v^e`, at most `f64::MAX`.
#[inline]
fn power(v: f64, e: f64) -> f64 {
    let p = if e == 1.0 { v } else { v.powf(e) };
    p.min(f64::MAX)
}

impl ISCONNA {
    /// The sketch keys of an edge: the edge's, then the source's and the destination's.
    #[inline]
    fn keys(source: u64, destination: u64) -> [u64; 3] {
        [pair_key(source, destination), node_sketch_key(source), node_sketch_key(destination)]
    }

    /// The (frequency, width, gap) G-tests of `key`'s candidate arrival in sketch `g` at rollover `epoch`
    /// and bucket index `t`.
    #[inline]
    fn candidate(&self, g: usize, key: u64, epoch: u64, t: f64) -> [f64; 3] {
        let sketch = &self.sketches[g];
        let (mut f_cur, mut f_acc) = (f64::INFINITY, f64::INFINITY);
        let (mut w, mut gap) = (Cell::default(), Cell::default());
        let (mut w_min, mut g_min) = (u64::MAX, u64::MAX);
        for (r, h) in sketch.hashes.iter().enumerate() {
            let mut cell = sketch.cells[r * self.cols + h.cell(key, self.cols)].caught_up(epoch, self.decay);
            cell.observe(self.decay);
            f_cur = f_cur.min(cell.f_cur);
            f_acc = f_acc.min(cell.f_acc);
            // The first row with the fewest runs, as the authors' strict comparison picks it.
            if r == 0 || cell.w_time < w_min {
                w_min = cell.w_time;
                w = cell;
            }
            if r == 0 || cell.g_time < g_min {
                g_min = cell.g_time;
                gap = cell;
            }
        }
        [
            g_test(f_cur, f_acc, t),
            g_test(w.w_cur, w.w_acc, w.w_time as f64),
            g_test(gap.g_cur, gap.g_acc, gap.g_time as f64),
        ]
    }

    /// The (frequency, width, gap) scores of x's candidate arrival, each the maximum over the sketches, or
    /// `None` during the warm-up or when x is no edge.
    fn components(&self, x: &[f64]) -> Option<[f64; 3]> {
        if self.clock.learned() < self.warm_up {
            return None;
        }
        let edge = self.columns.edge(x)?;
        let bucket = self.clock.bucket_of(&edge, self.columns.has_time());
        let rollover = self.clock.current().is_some() && self.clock.is_new_bucket(bucket);
        let epoch = self.epoch + u64::from(rollover);
        let t = self.first.map_or(1.0, |f| bucket - f + 1.0);
        let keys = Self::keys(edge.source, edge.destination);
        let mut best = [0.0f64; 3];
        for (g, &key) in keys.iter().enumerate().take(self.sketches.len()) {
            let s = self.candidate(g, key, epoch, t);
            for (b, v) in best.iter_mut().zip(s) {
                *b = b.max(v);
            }
        }
        Some(best)
    }

    /// Whether the source and destination sketches are kept.
    pub fn includes_endpoints(&self) -> bool {
        self.sketches.len() == 3
    }

    /// Edges learned so far.
    pub fn n_samples_seen(&self) -> u64 {
        self.clock.learned()
    }
}

impl Detector for ISCONNA {
    fn learn_one(&mut self, x: &[f64]) {
        let Some(edge) = self.columns.edge(x) else { return };
        let bucket = self.clock.bucket_of(&edge, self.columns.has_time());
        if self.clock.current().is_some() && self.clock.is_new_bucket(bucket) {
            self.epoch += 1;
        }
        self.first.get_or_insert(bucket);
        let keys = Self::keys(edge.source, edge.destination);
        let (epoch, cols, z) = (self.epoch, self.cols, self.decay);
        for (sketch, &key) in self.sketches.iter_mut().zip(&keys) {
            for (r, h) in sketch.hashes.iter().enumerate() {
                let at = r * cols + h.cell(key, cols);
                let mut cell = sketch.cells[at].caught_up(epoch, z);
                cell.observe(z);
                sketch.cells[at] = cell;
            }
        }
        self.clock.advance(bucket);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let Some([f, w, g]) = self.components(x) else { return 0.0 };
        let score = (power(f, self.alpha) * power(w, self.beta)).min(f64::MAX) * power(g, self.gamma);
        let score = score.min(f64::MAX);
        if self.normalize { score / (1.0 + score) } else { score }
    }

    /// `frequency_score`, `width_score`, `gap_score`: the three G-tests (each the maximum over the edge and,
    /// with endpoints, its source and destination) before their exponents.
    fn explanation_names(&self) -> Vec<String> {
        vec!["frequency_score".into(), "width_score".into(), "gap_score".into()]
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        match self.components(x) {
            Some(c) => out.copy_from_slice(&c[..out.len()]),
            None => out.fill(f64::NAN),
        }
    }
}

impl Describe for ISCONNAParams {
    const REFERENCE: &'static str =
        "Liu, Bhatia & Hooi 2021, Isconna: Streaming Anomaly Detection with Frequency and Patterns (arXiv:2104.01632)";
    fn ordered_column(&self) -> Option<&str> {
        self.time_key.as_deref()
    }
    const SUMMARY: &'static str = "Isconna: G-tests of an edge's burst, run of presence and gap of absence, from count-min sketches (edge streams)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "source_key",
            ty: "feature name",
            required: false,
            help: "column of the source node id (default src)",
        },
        ParamDoc {
            name: "destination_key",
            ty: "feature name",
            required: false,
            help: "column of the destination node id (default dst)",
        },
        ParamDoc {
            name: "time_key",
            ty: "feature name or null",
            required: false,
            help: "column of the non-decreasing time bucket (default t); null: each edge is its own bucket",
        },
        ParamDoc {
            name: "count_min_rows",
            ty: "int >= 1",
            required: false,
            help: "hash functions per sketch (default 2)",
        },
        ParamDoc {
            name: "count_min_cols",
            ty: "int >= 1",
            required: false,
            help: "cells per sketch row (default 3000)",
        },
        ParamDoc {
            name: "time_decay_factor",
            ty: "float in (0, 1]",
            required: false,
            help: "decay of the current frequency per bucket and of a run's length when a new run starts (default 0.7)",
        },
        ParamDoc {
            name: "alpha",
            ty: "float >= 0",
            required: false,
            help: "exponent of the frequency score (default 1)",
        },
        ParamDoc { name: "beta", ty: "float >= 0", required: false, help: "exponent of the width score (default 1)" },
        ParamDoc { name: "gamma", ty: "float >= 0", required: false, help: "exponent of the gap score (default 0.5)" },
        ParamDoc {
            name: "include_endpoints",
            ty: "bool",
            required: false,
            help: "source and destination sketches too, each score the maximum of the three (default true)",
        },
        ParamDoc {
            name: "warm_up_samples",
            ty: "int >= 0",
            required: false,
            help: "edges learned before scoring starts (default 0)",
        },
        ParamDoc {
            name: "normalize_score",
            ty: "bool",
            required: false,
            help: "return score / (1 + score) (default false)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the hash functions (default 0)" },
    ];
    fn example() -> Self {
        ISCONNAParams {
            source_key: "f1".into(),
            destination_key: "f2".into(),
            time_key: Some("f3".into()),
            seed: Some(42),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::generator::{edge_stream, roc_auc};
    use onad_core::Schema;

    fn schema() -> SchemaRef {
        Schema::shared(["src", "dst", "t"]).unwrap()
    }

    /// The authors' reset of one cell, applied once (the eager pass the lazy catch-up replaces).
    fn reset(mut c: Cell, z: f64) -> Cell {
        c.f_cur *= z;
        if !c.busy_cur {
            if c.busy_prev {
                c.g_acc += c.g_cur;
                c.g_cur *= z;
                c.g_time += 1;
            }
            c.g_cur += 1.0;
        }
        c.busy_prev = c.busy_cur;
        c.busy_cur = false;
        c.epoch += 1;
        c
    }

    #[test]
    fn lazy_catch_up_is_the_authors_reset_repeated() {
        let z = 0.5; // powers of a half are exact, so the two agree to the bit
        for pattern in 0u32..64 {
            // Six buckets, the key present in those whose bit is set, then k empty buckets.
            let mut eager = Cell::default();
            let mut lazy = Cell::default();
            for b in 0..6 {
                if b > 0 {
                    eager = reset(eager, z);
                }
                if pattern >> b & 1 == 1 {
                    lazy = lazy.caught_up(b, z);
                    lazy.observe(z);
                    eager.observe(z);
                }
            }
            for k in 1..5 {
                let mut e = eager;
                for _ in 0..k {
                    e = reset(e, z);
                }
                assert_eq!(lazy.caught_up(5 + k, z), e, "pattern {pattern:06b}, {k} empty buckets");
            }
        }
    }

    #[test]
    fn hand_checkable_g_tests() {
        // Edge (1, 2) alone, present in buckets 1 and 2, absent in 3 and 4, scored as a candidate in 5,
        // without endpoints. Frequency: f_cur = 1.7 (0.7 * 1 + 1 in bucket 2), decayed through buckets 3, 4
        // and 5, plus the candidate: 1.7 * 0.7^3 + 1,
        // f_acc = 3, t = 5: G = 2 f_cur |ln(f_cur * 4 / 3)|. Width: runs {1, 2} (length 2) then {5}: at the
        // second run w_acc = 2, w_cur = 0.7 * 2 + 1 = 2.4, w_time = 3 (from 1, one per run): G(2.4, 2, 3).
        // Gap: one gap of 2 buckets (3, 4), closed by nothing yet: g_cur = 2, g_acc = 0 -> G = 0, so the
        // product is 0 and gamma = 0 gives frequency * width.
        let params = ISCONNAParams { include_endpoints: false, gamma: 0.0, ..Default::default() };
        let mut m = params.build(&schema()).unwrap();
        m.learn_one(&[1.0, 2.0, 1.0]);
        m.learn_one(&[1.0, 2.0, 2.0]);
        // Another edge keeps the clock going in buckets 3 and 4.
        m.learn_one(&[7.0, 8.0, 3.0]);
        m.learn_one(&[7.0, 8.0, 4.0]);
        let f_cur = 1.7 * 0.7f64.powi(3) + 1.0;
        let freq = 2.0 * f_cur * (f_cur * 4.0 / 3.0).ln().abs();
        let width = 2.0 * 2.4 * (2.4f64 * 2.0 / 2.0).ln().abs();
        let s = m.score_one(&[1.0, 2.0, 5.0]);
        assert!((s - freq * width).abs() < 1e-9 * s, "{s} vs {}", freq * width);
        // The explanation: the three G-tests before their exponents.
        assert_eq!(m.explanation_names(), ["frequency_score", "width_score", "gap_score"]);
        let mut out = [f64::NAN; 3];
        m.explain_one(&[1.0, 2.0, 5.0], &mut out);
        assert!((out[0] - freq).abs() < 1e-9 * freq && (out[1] - width).abs() < 1e-9 * width && out[2] == 0.0);
        // With the gap's exponent back, the unfinished first gap (no earlier gap) makes the product 0.
        let mut with_gap = ISCONNAParams { include_endpoints: false, ..Default::default() }.build(&schema()).unwrap();
        for row in [[1.0, 2.0, 1.0], [1.0, 2.0, 2.0], [7.0, 8.0, 3.0], [7.0, 8.0, 4.0]] {
            with_gap.learn_one(&row);
        }
        assert_eq!(with_gap.score_one(&[1.0, 2.0, 5.0]), 0.0);
        assert_eq!(g_test(0.0, 1.0, 5.0), 0.0);
        assert_eq!(g_test(1.0, 1.0, 1.0), 0.0);
    }

    #[test]
    fn a_burst_scores_above_the_background() {
        let mut m = ISCONNAParams { seed: Some(1), ..Default::default() }.build(&schema()).unwrap();
        let mut background = Vec::new();
        for t in 0..50 {
            for e in 0..40u64 {
                let row = [(e % 20) as f64, ((e * 7 + 3) % 20) as f64, t as f64];
                if t == 49 {
                    background.push(m.score_one(&row));
                }
                m.learn_one(&row);
            }
            // A rare edge, every 10 buckets.
            if t % 10 == 0 {
                m.learn_one(&[500.0, 501.0, t as f64]);
            }
        }
        let mut burst = 0.0;
        for _ in 0..30 {
            burst = m.score_one(&[500.0, 501.0, 50.0]);
            m.learn_one(&[500.0, 501.0, 50.0]);
        }
        let worst = background.iter().cloned().fold(0.0, f64::max);
        assert!(burst > 10.0 * worst.max(1.0), "{burst} vs {worst}");
    }

    #[test]
    fn scoring_changes_nothing_and_bad_rows_are_no_edges() {
        let mut m = ISCONNAParams { warm_up_samples: 3, ..Default::default() }.build(&schema()).unwrap();
        for t in 0..3 {
            assert_eq!(m.score_one(&[1.0, 2.0, t as f64]), 0.0);
            m.learn_one(&[1.0, 2.0, t as f64]);
        }
        for t in 3..20 {
            m.learn_one(&[1.0, 2.0, (t - t % 3) as f64]);
            m.learn_one(&[2.0, 3.0, t as f64]);
        }
        let before = postcard::to_stdvec(&m).unwrap();
        let x = [1.0, 2.0, 30.0];
        let s = m.score_one(&x);
        assert_eq!(postcard::to_stdvec(&m).unwrap(), before);
        assert_eq!(m.score_learn_one(&x).to_bits(), s.to_bits());
        let learned = m.n_samples_seen();
        assert_eq!(m.score_one(&[f64::NAN, 2.0, 31.0]), 0.0);
        m.learn_one(&[1.0, f64::NEG_INFINITY, 31.0]);
        assert_eq!(m.n_samples_seen(), learned);
        assert!(m.score_one(&[1.0, 2.0, 1e308]).is_finite());
        let big = ISCONNAParams { alpha: 50.0, beta: 50.0, gamma: 50.0, ..Default::default() };
        let mut big = big.build(&schema()).unwrap();
        for t in 0..100 {
            big.learn_one(&[1.0, 2.0, (t * 2) as f64]);
        }
        for _ in 0..1000 {
            big.learn_one(&[1.0, 2.0, 1e300]);
        }
        assert!(big.score_one(&[1.0, 2.0, 1e300]).is_finite());
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let s = schema();
        let err = |p: ISCONNAParams| p.build(&s).unwrap_err().to_string();
        assert!(err(ISCONNAParams { count_min_rows: 0, ..Default::default() }).contains("count_min_rows"));
        assert!(err(ISCONNAParams { count_min_cols: 0, ..Default::default() }).contains("count_min_cols"));
        assert!(err(ISCONNAParams { time_decay_factor: 0.0, ..Default::default() }).contains("time_decay_factor"));
        assert!(err(ISCONNAParams { alpha: -1.0, ..Default::default() }).contains("alpha"));
        assert!(err(ISCONNAParams { beta: f64::NAN, ..Default::default() }).contains("beta"));
        assert!(err(ISCONNAParams { gamma: f64::INFINITY, ..Default::default() }).contains("gamma"));
        assert!(err(ISCONNAParams { destination_key: "to".into(), ..Default::default() }).contains("destination_key"));
    }

    #[test]
    fn finds_the_generated_anomalies_better_than_chance() {
        // The product of the three scores is 0 for an edge without history (no earlier gap or run), as
        // most injected edges of the generator are: Isconna ranks them low, and aberrant's ISCONNA scores
        // about the same ROC-AUC (0.62-0.66) on these streams; what it does rank high is bursts of edges
        // it knows.
        let stream = edge_stream(30_000, 5);
        let mut m = ISCONNAParams::default().build(&schema()).unwrap();
        let scores: Vec<f64> = (0..stream.len()).map(|i| m.score_learn_one(&stream.row(i))).collect();
        let auc = roc_auc(&scores, &stream.labels);
        assert!(auc > 0.55, "ROC-AUC {auc}");
    }
}
