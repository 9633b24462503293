//! MIDAS and MIDAS-R: sudden bursts of edges (microclusters) in an edge stream, scored by a chi-square
//! test of the current bucket's count against the edge's mean count over all buckets so far.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::{EdgeClock, EdgeColumns, SketchHash, check_sketch, decay_power, node_sketch_key, pair_key};
use crate::registry::Describe;

/// The most cells a sketch may have (`count_min_rows * count_min_cols`): 2^26 cells, 1.5 GiB per sketch.
const MAX_CELLS_LOG2: u32 = 26;

/// Hyperparameters of [`MIDAS`] (aberrant 1.3.0 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MIDASParams {
    /// Column of the source node id.
    pub source_key: String,
    /// Column of the destination node id.
    pub destination_key: String,
    /// Column of the time bucket (non-decreasing); `None`: every edge is its own bucket (arrival index).
    pub time_key: Option<String>,
    /// Hash functions (rows) of each count-min sketch, `>= 1`.
    pub count_min_rows: usize,
    /// Counters per sketch row, `>= 1`.
    pub count_min_cols: usize,
    /// MIDAS-R: factor in `(0, 1]` the current counts are multiplied by at each new bucket (MIDAS clears
    /// them instead).
    pub time_decay_factor: f64,
    /// Edges learned before scoring starts (scores are 0 until then).
    pub warm_up_samples: u64,
    /// MIDAS-R (decayed current counts, source and destination sketches too) instead of MIDAS.
    pub use_relational: bool,
    /// Return `score / (1 + score)`, in `[0, 1)`, instead of the chi-square statistic.
    pub normalize_score: bool,
    /// Seed of the sketches' hash functions; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for MIDASParams {
    fn default() -> Self {
        MIDASParams {
            source_key: "src".into(),
            destination_key: "dst".into(),
            time_key: Some("t".into()),
            count_min_rows: 2,
            count_min_cols: 1024,
            time_decay_factor: 0.5,
            warm_up_samples: 0,
            use_relational: true,
            normalize_score: false,
            seed: None,
        }
    }
}

/// One counter of a (current, total) count-min pair. The current count is decayed lazily: `current` is
/// its value as of rollover number `epoch`, and a read at a later rollover multiplies it by the factor
/// once per rollover missed (MIDAS-R), or reads 0 (MIDAS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Cell {
    current: f64,
    total: f64,
    epoch: u64,
}

/// A count-min sketch of current and total counts sharing one set of hash functions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CountPair {
    hashes: Vec<SketchHash>,
    /// Row-major, `hashes.len() * cols` cells.
    cells: Vec<Cell>,
}

/// MIDAS (Bhatia, Hooi, Yoon, Shin & Faloutsos 2020, "MIDAS: Microcluster-Based Detector of Anomalies in
/// Edge Streams", AAAI) and its relational variant MIDAS-R (`use_relational`, the default): each row is an
/// edge `(source, destination, time)`, and an edge arriving far more often in the current time bucket than
/// its average over the buckets so far scores high. Sudden groups of suspiciously similar edges
/// (microclusters: a burst of one edge, a node suddenly sending or receiving much) are caught in constant
/// time and memory per edge.
///
/// # Algorithm
/// - Two count-min sketches (`count_min_rows` hash functions of `count_min_cols` counters each) count the
///   edge `(u, v)`: `s`, the total count over the whole stream, and `a`, the count in the current bucket.
///   A query is the minimum over the rows.
/// - At a new bucket MIDAS resets the current counts to 0; MIDAS-R multiplies them by
///   `time_decay_factor` instead (the past contributes partially to the current bucket), and keeps the same
///   two sketches for the source `u` alone and the destination `v` alone (a node's sudden activity).
/// - With `t` the bucket's index (`t = time - first time + 1`; without a time column, the edge's arrival
///   number from 1), the score is the chi-square goodness-of-fit statistic of the current count against
///   the mean `s / t`: `X^2 = (a - s/t)^2 t^2 / (s (t - 1))`, 0 while `t <= 1`. MIDAS-R scores the
///   maximum of the edge's, the source's and the destination's statistic.
/// - Scores are candidate-inclusive, as in the authors' code, which scores an edge after adding it:
///   `score_one(x)` reads `a + 1` and `s + 1` for x (after the decay or reset that x's bucket would
///   cause), computed from the counters without changing or copying them, so score then learn gives the
///   authors' update-and-score value.
/// - `normalize_score` maps the statistic to `X^2 / (1 + X^2)`; scores are 0 before `warm_up_samples`
///   edges have been learned.
/// - Explanation ([`Detector::explain_one`]): `edge_score`, and for MIDAS-R `source_score` and
///   `destination_score`, each sketch's statistic (NaN during the warm-up and for a row that is no edge).
///
/// Node ids are read exactly (see [`crate::graph`]): a row whose source or destination is missing is no
/// edge, scores 0 and is not learned; a time that is missing or earlier than the current bucket counts in
/// the current bucket. Time values are bucket numbers (e.g. whole seconds); a fractional time gives a
/// fractional `t`, used as it is.
///
/// # Cost
/// Per edge O(`count_min_rows`) for MIDAS, three times that for MIDAS-R, scoring and learning alike; a
/// new bucket costs nothing more, because the current counts are decayed lazily (each counter remembers
/// the bucket it was last written in and catches up on the buckets it missed when read). Memory: 24 bytes
/// per counter, `count_min_rows * count_min_cols` counters per sketch (one sketch for MIDAS, three for
/// MIDAS-R: 48 KiB and 144 KiB by default), constant over the stream.
///
/// # Deviations from aberrant 1.3.0
/// - Hashing: aberrant hashes each id's bytes with keyed blake2b per row, the authors' code
///   `(a * id + b) mod cols`; here the seeded `((a * key + b) mod (2^61 - 1)) mod cols` of
///   [`SketchHash`](super::SketchHash), the edge's key mixing both ids in order, a node's key its mixed id.
///   The hash functions differ from aberrant's for the same seed; `seed = None` means seed 0.
/// - Ids: any number or text (through the sources' id columns) instead of integer-like numbers only;
///   a row that is no edge or goes back in time is not an error (see above).
/// - The decay is applied lazily, `factor^k` at once for `k` missed buckets, which can differ from `k`
///   successive multiplications in the last bit.
/// - A statistic too large for `f64` is `f64::MAX` (aberrant's log-space path saturates the same way).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MIDASParams;
///
/// let schema = Schema::shared(["t", "src", "dst"]).unwrap();
/// let mut model = MIDASParams { seed: Some(7), ..Default::default() }.build(&schema).unwrap();
/// // 30 buckets of the same light traffic among 10 nodes.
/// for t in 0..30 {
///     for e in 0..20 {
///         model.learn_one(&[t as f64, (e % 10) as f64, ((e * 3 + 1) % 10) as f64]);
///     }
/// }
/// // In bucket 30, an edge seen in every bucket, then a pair never seen before, 40 times.
/// let usual = model.score_one(&[30.0, 1.0, 4.0]);
/// for _ in 0..40 {
///     model.learn_one(&[30.0, 100.0, 200.0]);
/// }
/// let burst = model.score_one(&[30.0, 100.0, 200.0]);
/// assert!(burst > 100.0 * usual.max(1.0), "{burst} vs {usual}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MIDAS {
    columns: EdgeColumns,
    cols: usize,
    decay: f64,
    relational: bool,
    normalize: bool,
    warm_up: u64,
    /// The edge sketch, then (MIDAS-R) the source and the destination sketches.
    sketches: Vec<CountPair>,
    clock: EdgeClock,
    /// The first learned edge's bucket (`t = bucket - first + 1`).
    first: Option<f64>,
    /// New buckets opened so far.
    epoch: u64,
}

impl DetectorParams for MIDASParams {
    type Model = MIDAS;
    fn build(&self, schema: &SchemaRef) -> Result<MIDAS, ParamError> {
        check_sketch(self.count_min_rows, self.count_min_cols, MAX_CELLS_LOG2, self.time_decay_factor)?;
        let columns = EdgeColumns::resolve(schema, &self.source_key, &self.destination_key, self.time_key.as_deref())?;
        let seed = self.seed.unwrap_or(0);
        let groups = if self.use_relational { 3 } else { 1 };
        let rows = self.count_min_rows;
        let sketches = (0..groups)
            .map(|g| CountPair {
                hashes: (0..rows).map(|r| SketchHash::new(seed, (g * rows + r) as u64)).collect(),
                cells: vec![Cell::default(); rows * self.count_min_cols],
            })
            .collect();
        Ok(MIDAS {
            columns,
            cols: self.count_min_cols,
            decay: self.time_decay_factor,
            relational: self.use_relational,
            normalize: self.normalize_score,
            warm_up: self.warm_up_samples,
            sketches,
            clock: EdgeClock::default(),
            first: None,
            epoch: 0,
        })
    }
}

/// The chi-square statistic `(a - s/t)^2 t^2 / (s (t - 1))`, 0 while `t <= 1`, `f64::MAX` past the
/// largest double.
#[inline]
fn chi_square(a: f64, s: f64, t: f64) -> f64 {
    if t.is_nan() || t <= 1.0 || s.is_nan() || s <= 0.0 {
        return 0.0;
    }
    let t = t.min(1e300);
    let r = a - s / t;
    let v = r * r * (t / s) * (t / (t - 1.0));
    if v.is_finite() { v } else { f64::MAX }
}

/// The current count of `cell` as of rollover `epoch`: decayed once per rollover missed (MIDAS-R) or 0
/// after any (MIDAS).
#[inline]
fn current_at(cell: &Cell, epoch: u64, relational: bool, decay: f64) -> f64 {
    if cell.epoch == epoch {
        cell.current
    } else if relational {
        cell.current * decay_power(decay, epoch - cell.epoch)
    } else {
        0.0
    }
}

impl MIDAS {
    /// The current count of `cell` as of rollover `epoch`.
    #[inline]
    fn current_at(&self, cell: &Cell, epoch: u64) -> f64 {
        current_at(cell, epoch, self.relational, self.decay)
    }

    /// The sketch keys of an edge: the edge's, then the source's and the destination's.
    #[inline]
    fn keys(source: u64, destination: u64) -> [u64; 3] {
        [pair_key(source, destination), node_sketch_key(source), node_sketch_key(destination)]
    }

    /// The candidate-inclusive statistic of `key` in sketch `g` at rollover `epoch` and bucket index `t`.
    #[inline]
    fn candidate(&self, g: usize, key: u64, epoch: u64, t: f64) -> f64 {
        let sketch = &self.sketches[g];
        let (mut a, mut s) = (f64::INFINITY, f64::INFINITY);
        for (r, h) in sketch.hashes.iter().enumerate() {
            let cell = &sketch.cells[r * self.cols + h.cell(key, self.cols)];
            a = a.min(self.current_at(cell, epoch));
            s = s.min(cell.total);
        }
        chi_square(a + 1.0, s + 1.0, t)
    }

    /// The candidate-inclusive statistic of x in each sketch (edge, source, destination; the last two 0
    /// for MIDAS), or `None` during the warm-up or when x is no edge.
    fn statistics(&self, x: &[f64]) -> Option<[f64; 3]> {
        if self.clock.learned() < self.warm_up {
            return None;
        }
        let edge = self.columns.edge(x)?;
        let bucket = self.clock.bucket_of(&edge, self.columns.has_time());
        let rollover = self.clock.current().is_some() && self.clock.is_new_bucket(bucket);
        let epoch = self.epoch + u64::from(rollover);
        let t = self.first.map_or(1.0, |f| bucket - f + 1.0);
        let keys = Self::keys(edge.source, edge.destination);
        let mut stats = [0.0; 3];
        for (g, (&key, stat)) in keys.iter().zip(&mut stats).enumerate().take(self.sketches.len()) {
            *stat = self.candidate(g, key, epoch, t);
        }
        Some(stats)
    }

    /// Whether the model is MIDAS-R.
    pub fn is_relational(&self) -> bool {
        self.relational
    }

    /// Edges learned so far.
    pub fn n_samples_seen(&self) -> u64 {
        self.clock.learned()
    }
}

impl Detector for MIDAS {
    fn learn_one(&mut self, x: &[f64]) {
        let Some(edge) = self.columns.edge(x) else { return };
        let bucket = self.clock.bucket_of(&edge, self.columns.has_time());
        if self.clock.current().is_some() && self.clock.is_new_bucket(bucket) {
            self.epoch += 1;
        }
        self.first.get_or_insert(bucket);
        let keys = Self::keys(edge.source, edge.destination);
        let (epoch, cols, relational, decay) = (self.epoch, self.cols, self.relational, self.decay);
        for (sketch, &key) in self.sketches.iter_mut().zip(&keys) {
            for (r, h) in sketch.hashes.iter().enumerate() {
                let at = r * cols + h.cell(key, cols);
                let cell = sketch.cells[at];
                let current = current_at(&cell, epoch, relational, decay) + 1.0;
                sketch.cells[at] = Cell { current, total: cell.total + 1.0, epoch };
            }
        }
        self.clock.advance(bucket);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let Some(stats) = self.statistics(x) else { return 0.0 };
        let score = stats[..self.sketches.len()].iter().fold(0.0f64, |m, &v| m.max(v));
        if self.normalize { score / (1.0 + score) } else { score }
    }

    /// `edge_score` (and with MIDAS-R `source_score`, `destination_score`): the chi-square statistic of
    /// each sketch, the score being their maximum (before `normalize_score`).
    fn explanation_names(&self) -> Vec<String> {
        ["edge_score", "source_score", "destination_score"][..self.sketches.len()]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        match self.statistics(x) {
            Some(stats) => out.copy_from_slice(&stats[..out.len()]),
            None => out.fill(f64::NAN),
        }
    }
}

impl Describe for MIDASParams {
    const REFERENCE: &'static str = "Bhatia, Hooi, Yoon, Shin & Faloutsos 2020, MIDAS: Microcluster-Based Detector of Anomalies in Edge Streams (AAAI)";
    fn ordered_column(&self) -> Option<&str> {
        self.time_key.as_deref()
    }
    const SUMMARY: &'static str = "MIDAS / MIDAS-R: chi-square test of an edge's count in the current time bucket against its mean (edge streams)";
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
            help: "hash functions per count-min sketch (default 2)",
        },
        ParamDoc {
            name: "count_min_cols",
            ty: "int >= 1",
            required: false,
            help: "counters per sketch row (default 1024)",
        },
        ParamDoc {
            name: "time_decay_factor",
            ty: "float in (0, 1]",
            required: false,
            help: "MIDAS-R: current counts are multiplied by it at each new bucket (default 0.5)",
        },
        ParamDoc {
            name: "warm_up_samples",
            ty: "int >= 0",
            required: false,
            help: "edges learned before scoring starts (default 0)",
        },
        ParamDoc {
            name: "use_relational",
            ty: "bool",
            required: false,
            help: "MIDAS-R: decayed counts, source and destination sketches too (default true)",
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
        MIDASParams {
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

    #[test]
    fn hand_checkable_chi_square() {
        // MIDAS (no decay): edge (1, 2) once in each of buckets 1, 2, 3, then scored as a candidate in
        // bucket 3 again: a = 1 + 1 = 2, s = 3 + 1 = 4, t = 3, X^2 = (2 - 4/3)^2 * 9 / (4 * 2) = 0.5.
        let params = MIDASParams { use_relational: false, ..Default::default() };
        let mut m = params.build(&schema()).unwrap();
        for t in 1..=3 {
            m.learn_one(&[1.0, 2.0, t as f64]);
        }
        let s = m.score_one(&[1.0, 2.0, 3.0]);
        assert!((s - 0.5).abs() < 1e-12, "{s}");
        // In bucket 4 (current count reset): a = 1, s = 4, t = 4: (1 - 1)^2 ... = 0.
        assert_eq!(m.score_one(&[1.0, 2.0, 4.0]), 0.0);
        // MIDAS-R with factor 0.5 on the same stream: the current count decays 1 -> 1.5 -> 1.75 at the
        // learns of buckets 2 and 3 (0.5 * 1 + 1, 0.5 * 1.5 + 1), so in bucket 3 a = 2.75, s = 4, t = 3:
        // (2.75 - 4/3)^2 * 9 / 8 = 2.2578125; the nodes' sketches see the same counts, so the maximum is the
        // same value.
        let mut r = MIDASParams::default().build(&schema()).unwrap();
        for t in 1..=3 {
            r.learn_one(&[1.0, 2.0, t as f64]);
        }
        let s = r.score_one(&[1.0, 2.0, 3.0]);
        let expected = (2.75f64 - 4.0 / 3.0).powi(2) * 9.0 / 8.0;
        assert!((s - expected).abs() < 1e-12, "{s} vs {expected}");
        // The explanation: each sketch's statistic (here all three equal), NaN for no edge.
        assert_eq!(r.explanation_names(), ["edge_score", "source_score", "destination_score"]);
        let mut out = [0.0; 3];
        r.explain_one(&[1.0, 2.0, 3.0], &mut out);
        assert!(out.iter().all(|v| (v - expected).abs() < 1e-12), "{out:?}");
        r.explain_one(&[f64::NAN, 2.0, 3.0], &mut out);
        assert!(out.iter().all(|v| v.is_nan()));
        assert_eq!(m.explanation_names(), ["edge_score"]);
        // MIDAS-R's decayed counts score at least MIDAS's here, and normalisation maps x to x / (1 + x).
        let norm = MIDASParams { normalize_score: true, ..Default::default() }.build(&schema()).unwrap();
        assert_eq!(norm.score_one(&[1.0, 2.0, 3.0]), 0.0);
        let mut norm = norm;
        for t in 1..=3 {
            norm.learn_one(&[1.0, 2.0, t as f64]);
        }
        assert!((norm.score_one(&[1.0, 2.0, 3.0]) - expected / (1.0 + expected)).abs() < 1e-12);
    }

    #[test]
    fn a_burst_scores_above_the_background_and_a_source_burst_needs_midas_r() {
        let mut m = MIDASParams { seed: Some(1), ..Default::default() }.build(&schema()).unwrap();
        let mut plain =
            MIDASParams { seed: Some(1), use_relational: false, ..Default::default() }.build(&schema()).unwrap();
        let mut background = Vec::new();
        for t in 0..50 {
            for e in 0..40u64 {
                let row = [(e % 20) as f64, ((e * 7 + 3) % 20) as f64, t as f64];
                if t == 49 {
                    background.push(m.score_one(&row));
                }
                m.learn_one(&row);
                plain.learn_one(&row);
            }
        }
        let mut burst = 0.0;
        for _ in 0..30 {
            burst = m.score_one(&[500.0, 501.0, 50.0]);
            m.learn_one(&[500.0, 501.0, 50.0]);
        }
        let worst = background.iter().cloned().fold(0.0, f64::max);
        assert!(burst > 10.0 * worst.max(1.0), "{burst} vs {worst}");
        // Node 0 suddenly sends to 30 new destinations, each once: every edge is new (MIDAS sees one edge
        // in one bucket), but the source's count jumps, which only MIDAS-R's source sketch sees.
        let (mut r_score, mut p_score) = (0.0, 0.0);
        for k in 0..30 {
            let row = [0.0, 1_000.0 + k as f64, 50.0];
            r_score = m.score_one(&row);
            p_score = plain.score_one(&row);
            m.learn_one(&row);
            plain.learn_one(&row);
        }
        assert!(r_score > 5.0 * p_score.max(1.0), "{r_score} vs {p_score}");
    }

    #[test]
    fn scoring_is_candidate_inclusive_and_changes_nothing() {
        let mut m = MIDASParams::default().build(&schema()).unwrap();
        for t in 0..10 {
            m.learn_one(&[1.0, 2.0, t as f64]);
            m.learn_one(&[2.0, 3.0, t as f64]);
        }
        let before = postcard::to_stdvec(&m).unwrap();
        let x = [1.0, 2.0, 12.0];
        let s = m.score_one(&x);
        assert_eq!(postcard::to_stdvec(&m).unwrap(), before);
        // A rollover previewed by score_one is the one learning applies.
        assert_eq!(m.score_learn_one(&x).to_bits(), s.to_bits());
        // Missing ids: no edge, score 0, nothing learned.
        let learned = m.n_samples_seen();
        assert_eq!(m.score_one(&[f64::NAN, 2.0, 13.0]), 0.0);
        m.learn_one(&[1.0, f64::INFINITY, 13.0]);
        assert_eq!(m.n_samples_seen(), learned);
        // Huge times stay finite.
        assert!(m.score_one(&[1.0, 2.0, 1e308]).is_finite());
        m.learn_one(&[1.0, 2.0, f64::MAX]);
        assert!(m.score_one(&[1.0, 2.0, f64::MAX]).is_finite());
    }

    #[test]
    fn warm_up_and_no_time_column() {
        let s = Schema::shared(["src", "dst"]).unwrap();
        let mut m = MIDASParams { time_key: None, warm_up_samples: 5, ..Default::default() }.build(&s).unwrap();
        for _ in 0..5 {
            assert_eq!(m.score_one(&[1.0, 2.0]), 0.0);
            m.learn_one(&[1.0, 2.0]);
        }
        // Each arrival is its own bucket: a repeated edge is as expected (a = 1 + decayed, s = t).
        assert!(m.score_one(&[1.0, 2.0]) > 0.0);
    }

    #[test]
    fn text_ids_through_the_id_column_role() {
        // The sources turn IP addresses into exact 52-bit values (`onad_core::id_value`), as `--ids src,dst`.
        let ip = |s: &str| onad_core::id_value(s.as_bytes());
        let mut m = MIDASParams::default().build(&schema()).unwrap();
        for t in 0..30 {
            for a in 1..=10 {
                m.learn_one(&[ip(&format!("10.0.0.{a}")), ip(&format!("10.0.1.{}", a % 3)), t as f64]);
            }
        }
        let usual = m.score_one(&[ip("10.0.0.4"), ip("10.0.1.1"), 30.0]);
        for _ in 0..40 {
            m.learn_one(&[ip("192.168.9.9"), ip("10.0.1.1"), 30.0]);
        }
        let scan = m.score_one(&[ip("192.168.9.9"), ip("10.0.1.1"), 30.0]);
        assert!(scan > 10.0 * usual.max(1.0), "{scan} vs {usual}");
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let s = schema();
        let err = |p: MIDASParams| p.build(&s).unwrap_err().to_string();
        assert!(err(MIDASParams { count_min_rows: 0, ..Default::default() }).contains("count_min_rows"));
        assert!(err(MIDASParams { count_min_cols: 0, ..Default::default() }).contains("count_min_cols"));
        for f in [0.0, -0.5, 1.5, f64::NAN] {
            let e = err(MIDASParams { time_decay_factor: f, ..Default::default() });
            assert!(e.contains("time_decay_factor") && e.contains("(0, 1]"), "{e}");
        }
        assert!(err(MIDASParams { source_key: "from".into(), ..Default::default() }).contains("source_key"));
        assert!(err(MIDASParams { time_key: Some("time".into()), ..Default::default() }).contains("time_key"));
        assert!(MIDASParams { time_decay_factor: 1.0, ..Default::default() }.build(&s).is_ok());
    }

    #[test]
    fn finds_the_generated_anomalies() {
        let stream = edge_stream(30_000, 5);
        for relational in [true, false] {
            let mut m = MIDASParams { use_relational: relational, ..Default::default() }.build(&schema()).unwrap();
            let scores: Vec<f64> = (0..stream.len()).map(|i| m.score_learn_one(&stream.row(i))).collect();
            let auc = roc_auc(&scores, &stream.labels);
            assert!(auc > 0.8, "relational {relational}: ROC-AUC {auc}");
        }
    }
}
