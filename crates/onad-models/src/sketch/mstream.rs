//! MStream: anomalies in multi-aspect streams from count sketches of each aspect and of the whole record
//! (aberrant's `MStream`).

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;
use crate::rng::{mix64, unit, unit_rng};

/// Hyperparameters of [`MStream`] (aberrant 1.3.0 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MStreamParams {
    /// Independent hash rows of the categorical and whole-record count sketches, `>= 1`.
    pub rows: usize,
    /// Counters per numeric histogram and per hash row, `>= 2`.
    pub buckets: usize,
    /// Factor in (0, 1] applied to the current tick's counts when the tick advances.
    pub alpha: f64,
    /// Column holding a non-decreasing integer time tick (left out of the aspects). `None`: every learned
    /// row is a tick of its own.
    pub time_key: Option<String>,
    /// Columns that are categorical aspects (ids: read them with the sources' id role, `--ids`, or give
    /// integers); every other column is a numeric aspect.
    pub categorical_features: Vec<String>,
    /// Ticks after the first learned one before scoring starts (scores are 0.0 before).
    pub warm_up_buckets: u64,
    /// Seed of the hash functions and record planes; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for MStreamParams {
    fn default() -> Self {
        MStreamParams {
            rows: 2,
            buckets: 1024,
            alpha: 0.6,
            time_key: None,
            categorical_features: Vec::new(),
            warm_up_buckets: 0,
            seed: None,
        }
    }
}

/// MStream (Bhatia, Jain, Li, Kumar & Hooi 2021, "MStream: Fast Anomaly Detection in Multi-Aspect
/// Streams", The Web Conference): a record is anomalous when one of its aspects, or the record as a
/// whole, arrives in the current time tick far more often than its long-run rate predicts.
///
/// # Algorithm
/// For every aspect and for the whole record the model keeps two count tables over `buckets` cells:
/// `current` (this tick's count, multiplied by `alpha` when the tick advances, so bursts fade) and
/// `total` (every tick).
/// - A numeric column `x` is turned into `g(x) = log10(1 + x)` and min-max scaled by the range seen so
///   far; its cell is `floor(scaled * (buckets - 1))` (one histogram per column).
/// - A categorical column is hashed into each of `rows` rows (a count-min sketch: the smallest count over
///   the rows is read).
/// - The whole record is hashed in each row as the sign pattern of `ceil(log2 buckets)` random Gaussian
///   planes through the scaled numeric vector (locality-sensitive: near records share a cell) plus a
///   random hash of its categories, modulo `buckets` (again a count-min sketch).
///
/// The score of a row at tick `t` (counted from the first learned tick, 1-based) reads, for each of
/// these `k` counters, the current count `a` and the total `s` as they would be with the row added, and
/// sums the chi-squared statistics of MIDAS, `max(0, a - s / t)^2 t^2 / (s (t - 1))` (only counts above
/// the expected rate), as `ln(1 + sum)` (summed in log space when the sum would overflow). Scores are
/// 0.0 before the first learned row and for `warm_up_buckets` ticks after it. Scoring previews the tick
/// change, the range and the insertion without changing state.
///
/// Without `time_key` each learned row is a tick of its own (aberrant's convention): `current` then
/// decays by `alpha` per row, a memory of a few rows, and `t` is the row number.
///
/// # Deviations from aberrant
/// - Raw data: aberrant refuses numeric values `<= -1` (its `log10(1 + x)`). Here `g(x) = -log10(1 - x)`
///   for `x < 0`, the odd extension: equal to aberrant's transform on `x >= 0`, defined everywhere, still
///   monotone. Missing (NaN) numeric values add no statistic and no count and take the scaled value 0 in
///   the record hash; `+inf` and `-inf` take the top and bottom cells and do not widen the range.
/// - Hashing: aberrant reduces a category modulo `buckets` and then applies `(a v + b) mod buckets`; with
///   the default power-of-two `buckets` every row then collides the same pairs and the rows are not
///   independent. Here each row hashes the value's 64 bits with its own seeded mixer (splitmix64), as a
///   count-min sketch needs. A missing category (NaN) is a category of its own.
/// - Decay is applied lazily (one running scale factor, the tables renormalised when it gets small), so a
///   tick costs O(1) instead of touching every counter; results equal eager decay up to rounding.
/// - A time tick that goes back, or a time that is missing or not finite, counts as the current tick.
///
/// # Cost
/// Per row O(n_num + rows (n_cat + ceil(log2 buckets) n_num)) to learn or score; memory
/// `2 buckets (n_num + rows n_cat + rows)` counters plus the planes, fixed at build.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::MStreamParams;
///
/// // One categorical aspect (a payer id) and one numeric (an amount), one tick per row.
/// let schema = Schema::shared(["payer", "amount"]).unwrap();
/// let params = MStreamParams { categorical_features: vec!["payer".into()], seed: Some(7), ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// for i in 0..2_000 {
///     model.learn_one(&[(i % 50) as f64, 20.0 + (i % 9) as f64]);
/// }
/// let usual = model.score_one(&[3.0, 24.0]);
/// let unusual = model.score_one(&[999.0, 25_000.0]);
/// assert!(unusual > usual, "{unusual} vs {usual}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MStream {
    rows: usize,
    buckets: usize,
    alpha: f64,
    warm_up_buckets: u64,
    /// Input positions of the time column, the numeric and the categorical aspects.
    time: Option<usize>,
    numeric: Vec<usize>,
    categorical: Vec<usize>,
    /// Planes per row in the record hash: `ceil(log2 buckets)`.
    bits: u32,
    /// The planes, hash seeds, ranges and count tables (boxed: they are most of the model).
    s: Box<Sketches>,
    /// The product of the decays applied since the last renormalisation: `current` tables hold counts
    /// divided by it, so a tick multiplies `scale` alone.
    scale: f64,
    /// Ticks: the first learned one, the current one, and rows learned.
    first_tick: i64,
    tick: i64,
    learned: u64,
}

/// What [`MStream`] keeps per aspect and per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sketches {
    /// Record planes per row: `bits` planes of `numeric.len()` Gaussian weights each.
    planes: Vec<f64>,
    /// Hash seeds: one per (categorical aspect, row), and one per (row, categorical aspect) for records.
    cat_seeds: Vec<u64>,
    record_seeds: Vec<u64>,
    /// Range of `g(x)` per numeric aspect (`+inf, -inf` before its first finite value).
    min: Vec<f64>,
    max: Vec<f64>,
    /// Count tables: numeric `[aspect][bucket]`, categorical `[aspect][row][bucket]`, record `[row][bucket]`.
    /// `current` values are stored divided by [`MStream`]'s `scale`.
    num: Counts,
    cat: Counts,
    record: Counts,
}

/// A `current` and a `total` table of the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counts {
    current: Vec<f64>,
    total: Vec<f64>,
}

impl Counts {
    fn new(n: usize) -> Counts {
        Counts { current: vec![0.0; n], total: vec![0.0; n] }
    }
}

/// Below this, `scale` is folded into the `current` tables (so `1 / scale` never overflows).
const RENORMALISE_BELOW: f64 = 1e-100;

impl DetectorParams for MStreamParams {
    type Model = MStream;

    fn build(&self, schema: &SchemaRef) -> Result<MStream, ParamError> {
        if self.rows == 0 || self.rows > 64 {
            return Err(ParamError::invalid("rows", format!("must be between 1 and 64, got {}", self.rows)));
        }
        if !(2..=1 << 24).contains(&self.buckets) {
            return Err(ParamError::invalid("buckets", format!("must be between 2 and 2^24, got {}", self.buckets)));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(ParamError::invalid("alpha", format!("must be in (0, 1], got {}", self.alpha)));
        }
        let find = |param: &'static str, name: &str| {
            schema.index_of(name).ok_or_else(|| ParamError::UnknownFeature {
                param,
                feature: name.to_owned(),
                available: schema.names().join(", "),
            })
        };
        let time = self.time_key.as_deref().map(|n| find("time_key", n)).transpose()?;
        let mut categorical = Vec::with_capacity(self.categorical_features.len());
        for name in &self.categorical_features {
            let i = find("categorical_features", name)?;
            if categorical.contains(&i) {
                return Err(ParamError::invalid("categorical_features", format!("'{name}' is listed twice")));
            }
            if Some(i) == time {
                return Err(ParamError::invalid(
                    "categorical_features",
                    format!("'{name}' is the time_key and cannot also be a categorical aspect"),
                ));
            }
            categorical.push(i);
        }
        categorical.sort_unstable();
        let numeric: Vec<usize> = (0..schema.len()).filter(|i| Some(*i) != time && !categorical.contains(i)).collect();
        if numeric.is_empty() && categorical.is_empty() {
            return Err(ParamError::Schema("MStream needs at least one column besides the time_key".into()));
        }
        let seed = self.seed.unwrap_or(0);
        let bits = self.buckets.next_power_of_two().trailing_zeros();
        // Unit 0 draws the planes; the hash seeds come from the seed through the mixer (one per slot).
        let mut rng = unit_rng(seed, 0);
        let planes = (0..self.rows * bits as usize * numeric.len()).map(|_| gaussian(&mut rng)).collect();
        let hash_seed = |kind: u64, i: usize| mix64(mix64(seed ^ 0x6d73_7472_6561_6d00 ^ kind) ^ i as u64);
        let cat_seeds = (0..categorical.len() * self.rows).map(|i| hash_seed(1, i)).collect();
        let record_seeds = (0..self.rows * categorical.len()).map(|i| hash_seed(2, i)).collect();
        Ok(MStream {
            rows: self.rows,
            buckets: self.buckets,
            alpha: self.alpha,
            warm_up_buckets: self.warm_up_buckets,
            time,
            bits,
            s: Box::new(Sketches {
                planes,
                cat_seeds,
                record_seeds,
                min: vec![f64::INFINITY; numeric.len()],
                max: vec![f64::NEG_INFINITY; numeric.len()],
                num: Counts::new(numeric.len() * self.buckets),
                cat: Counts::new(categorical.len() * self.rows * self.buckets),
                record: Counts::new(self.rows * self.buckets),
            }),
            numeric,
            categorical,
            scale: 1.0,
            first_tick: 0,
            tick: 0,
            learned: 0,
        })
    }
}

/// A standard normal draw (Box-Muller, one of the pair).
fn gaussian(rng: &mut rand_pcg::Pcg64) -> f64 {
    let u1 = 1.0 - unit(rng); // in (0, 1]
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `log10(1 + x)` for `x >= 0`, extended as an odd function.
#[inline]
fn transform(x: f64) -> f64 {
    if x >= 0.0 { x.ln_1p() / std::f64::consts::LN_10 } else { -(-x).ln_1p() / std::f64::consts::LN_10 }
}

/// The MIDAS statistic `max(0, a - s / t)^2 t^2 / (s (t - 1))`, with `t - 1` read as at least 1.
#[inline]
fn statistic(current: f64, total: f64, t: f64) -> f64 {
    let residual = current - total / t;
    if residual <= 0.0 {
        return 0.0;
    }
    residual * residual / total * t * (1.0 + 1.0 / (t - 1.0).max(1.0))
}

/// `ln` of the MIDAS statistic `max(0, a - s / t)^2 t^2 / (s (t - 1))` (`-inf` when it is 0), with
/// `t - 1` read as at least 1.
#[inline]
fn log_statistic(current: f64, total: f64, t: f64) -> f64 {
    let residual = current - total / t;
    if residual <= 0.0 {
        return f64::NEG_INFINITY;
    }
    2.0 * residual.ln() - total.ln() + t.ln() + (1.0 / (t - 1.0).max(1.0)).ln_1p()
}

/// The cells one row falls into, computed once for scoring or learning; reused across rows (a
/// thread-local), so neither allocates.
#[derive(Default)]
struct Cells {
    /// The scaled numeric aspects (0 when missing, as the record hash reads them).
    scaled: Vec<f64>,
    /// Per numeric aspect: its cell, or `usize::MAX` when the value is missing.
    numeric: Vec<usize>,
    /// Per (categorical aspect, row): the cell index into `cat`.
    categorical: Vec<usize>,
    /// Per row: the record cell index into `record`.
    record: Vec<usize>,
}

thread_local! {
    static CELLS: RefCell<Cells> = RefCell::new(Cells::default());
}

impl MStream {
    /// The tick of row `x` as learning would place it (never before the current tick).
    fn tick_of(&self, x: &[f64]) -> i64 {
        match self.time {
            None => self.learned as i64 + 1,
            Some(i) => {
                let v = x[i].floor();
                // A missing, infinite or earlier time is the current tick (before the first row: tick 0).
                if v.is_finite() && (-9.0e18..=9.0e18).contains(&v) && (self.learned == 0 || v as i64 > self.tick) {
                    v as i64
                } else {
                    self.tick
                }
            }
        }
    }

    /// Fills `cells` for row `x`: the numeric aspects scaled by the range seen so far widened by `x` (as
    /// learning `x` would), and every cell the row falls into.
    fn cells(&self, x: &[f64], cells: &mut Cells) {
        let b = self.buckets;
        let top = (b - 1) as f64;
        cells.scaled.clear();
        cells.numeric.clear();
        for (j, &i) in self.numeric.iter().enumerate() {
            let v = x[i];
            let s = if v.is_nan() {
                f64::NAN
            } else if v == f64::INFINITY {
                1.0
            } else if v == f64::NEG_INFINITY {
                0.0
            } else {
                let g = transform(v);
                let (lo, hi) = (self.s.min[j].min(g), self.s.max[j].max(g));
                if hi > lo { (g - lo) / (hi - lo) } else { 0.0 }
            };
            cells.scaled.push(if s.is_nan() { 0.0 } else { s });
            cells.numeric.push(if s.is_nan() { usize::MAX } else { ((s * top) as usize).min(b - 1) });
        }
        let key = |v: f64| if v.is_nan() { f64::NAN.to_bits() } else { (v + 0.0).to_bits() };
        cells.categorical.clear();
        for (c, &i) in self.categorical.iter().enumerate() {
            let k = key(x[i]);
            for r in 0..self.rows {
                let slot = c * self.rows + r;
                cells.categorical.push(slot * b + (mix64(k ^ self.s.cat_seeds[slot]) % b as u64) as usize);
            }
        }
        let d = self.numeric.len();
        let bits = self.bits as usize;
        cells.record.clear();
        for r in 0..self.rows {
            let mut h: u64 = 0;
            for bit in 0..bits {
                let plane = &self.s.planes[(r * bits + bit) * d..(r * bits + bit + 1) * d];
                let dot: f64 = plane.iter().zip(&cells.scaled).map(|(w, s)| w * s).sum();
                h |= u64::from(dot >= 0.0) << bit;
            }
            for (c, &i) in self.categorical.iter().enumerate() {
                h = h.wrapping_add(mix64(key(x[i]) ^ self.s.record_seeds[r * self.categorical.len() + c]));
            }
            cells.record.push(r * b + (h % b as u64) as usize);
        }
    }
}

impl MStream {
    /// The score of the row whose cells are `cells`, at `tick`, against the current state.
    fn score_cells(&self, tick: i64, cells: &Cells) -> f64 {
        let t = (tick - self.first_tick + 1) as f64;
        if ((tick - self.first_tick) as u64) < self.warm_up_buckets {
            return 0.0;
        }
        let decay = if tick > self.tick { self.alpha } else { 1.0 };
        let scale = self.scale * decay;
        // The statistics summed in linear space (one logarithm per row); a sum that overflows (counts and
        // ticks near 1e100) is summed again from the logarithms.
        let each = |f: &mut dyn FnMut(f64, f64)| {
            for (j, &cell) in cells.numeric.iter().enumerate() {
                if cell != usize::MAX {
                    let k = j * self.buckets + cell;
                    f(self.s.num.current[k] * scale + 1.0, self.s.num.total[k] + 1.0);
                }
            }
            let sketch = |table: &Counts, cells: &[usize], f: &mut dyn FnMut(f64, f64)| {
                let current = cells.iter().map(|&k| table.current[k]).fold(f64::INFINITY, f64::min);
                let total = cells.iter().map(|&k| table.total[k]).fold(f64::INFINITY, f64::min);
                f(current * scale + 1.0, total + 1.0);
            };
            for c in cells.categorical.chunks(self.rows) {
                sketch(&self.s.cat, c, f);
            }
            sketch(&self.s.record, &cells.record, f);
        };
        let mut sum = 0.0;
        each(&mut |a, s| sum += statistic(a, s, t));
        if sum.is_finite() {
            return sum.ln_1p();
        }
        let mut m: f64 = 0.0;
        each(&mut |a, s| m = m.max(log_statistic(a, s, t)));
        let mut sum = (-m).exp();
        each(&mut |a, s| sum += (log_statistic(a, s, t) - m).exp());
        let s = m + sum.ln();
        if s.is_finite() { s.max(0.0) } else { f64::MAX }
    }

    /// Learns the row `x` whose cells are `cells`, at `tick`.
    fn learn_cells(&mut self, x: &[f64], tick: i64, cells: &Cells) {
        if self.learned == 0 {
            self.first_tick = tick;
        } else if tick > self.tick {
            self.scale *= self.alpha;
            if self.scale < RENORMALISE_BELOW {
                for t in [&mut self.s.num, &mut self.s.cat, &mut self.s.record] {
                    for v in &mut t.current {
                        *v *= self.scale;
                    }
                }
                self.scale = 1.0;
            }
        }
        self.tick = tick;
        let add = 1.0 / self.scale;
        for (j, &cell) in cells.numeric.iter().enumerate() {
            if cell != usize::MAX {
                let k = j * self.buckets + cell;
                self.s.num.current[k] += add;
                self.s.num.total[k] += 1.0;
            }
            let v = x[self.numeric[j]];
            if v.is_finite() {
                let g = transform(v);
                self.s.min[j] = self.s.min[j].min(g);
                self.s.max[j] = self.s.max[j].max(g);
            }
        }
        for (table, cells) in [(&mut self.s.cat, &cells.categorical), (&mut self.s.record, &cells.record)] {
            for &k in cells {
                table.current[k] += add;
                table.total[k] += 1.0;
            }
        }
        self.learned += 1;
    }
}

impl Detector for MStream {
    fn learn_one(&mut self, x: &[f64]) {
        let tick = self.tick_of(x);
        CELLS.with_borrow_mut(|cells| {
            self.cells(x, cells);
            self.learn_cells(x, tick, cells);
        });
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.learned == 0 {
            return 0.0;
        }
        let tick = self.tick_of(x);
        CELLS.with_borrow_mut(|cells| {
            self.cells(x, cells);
            self.score_cells(tick, cells)
        })
    }

    /// One pass over the row's cells for both (the cells a score previews are the ones learning fills).
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let tick = self.tick_of(x);
        CELLS.with_borrow_mut(|cells| {
            self.cells(x, cells);
            let score = if self.learned == 0 { 0.0 } else { self.score_cells(tick, cells) };
            self.learn_cells(x, tick, cells);
            score
        })
    }
}

impl Describe for MStreamParams {
    const REFERENCE: &'static str = "Bhatia, Jain, Srivastava, Kawaguchi & Hooi 2021, MStream: Fast Anomaly Detection in Multi-Aspect Streams (WWW)";
    const SUMMARY: &'static str =
        "multi-aspect count sketches (numeric, categorical, whole record) scored by MIDAS's burst statistic (MStream)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "rows", ty: "int 1..=64", required: false, help: "hash rows of the sketches (default 2)" },
        ParamDoc {
            name: "buckets",
            ty: "int 2..=2^24",
            required: false,
            help: "counters per histogram and per hash row (default 1024)",
        },
        ParamDoc {
            name: "alpha",
            ty: "float in (0, 1]",
            required: false,
            help: "decay of the current tick's counts when the tick advances (default 0.6)",
        },
        ParamDoc {
            name: "time_key",
            ty: "column name",
            required: false,
            help: "column of non-decreasing integer time ticks (default: each row is a tick)",
        },
        ParamDoc {
            name: "categorical_features",
            ty: "list of column names",
            required: false,
            help: "categorical aspects, e.g. id columns read with --ids (default: none, all numeric)",
        },
        ParamDoc {
            name: "warm_up_buckets",
            ty: "int >= 0",
            required: false,
            help: "ticks after the first before scoring starts (default 0)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the hashes and planes (default 0)" },
    ];
    fn example() -> Self {
        MStreamParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(p: MStreamParams, names: &[&str]) -> MStream {
        p.build(&Schema::shared(names.iter().copied()).unwrap()).unwrap()
    }

    #[test]
    fn a_burst_of_one_category_within_a_tick_scores_high() {
        // 20 ticks of 50 rows over 10 hosts, then a tick where one host sends everything.
        let p = MStreamParams {
            time_key: Some("t".into()),
            categorical_features: vec!["host".into()],
            seed: Some(3),
            ..Default::default()
        };
        let mut m = build(p, &["t", "host", "bytes"]);
        for t in 0..20 {
            for i in 0..50 {
                m.learn_one(&[t as f64, (i % 10) as f64, 100.0 + (i % 5) as f64]);
            }
        }
        let mut quiet = 0.0;
        for i in 0..5 {
            let row = [20.0, (i % 10) as f64, 102.0];
            quiet = m.score_one(&row);
            m.learn_one(&row);
        }
        let mut burst = 0.0;
        for _ in 0..40 {
            let row = [20.0, 7.0, 102.0];
            burst = m.score_one(&row);
            m.learn_one(&row);
        }
        assert!(burst > quiet + 2.0, "burst {burst}, quiet {quiet}");
    }

    #[test]
    fn the_statistic_is_midas_chi_squared() {
        // a = 5 this tick, s = 10 overall, t = 4: (5 - 2.5)^2 * 16 / (10 * 3).
        let expect: f64 = 2.5f64.powi(2) * 16.0 / 30.0;
        assert!((log_statistic(5.0, 10.0, 4.0).exp() - expect).abs() < 1e-12);
        assert!((statistic(5.0, 10.0, 4.0) - expect).abs() < 1e-12);
        assert_eq!(statistic(2.0, 10.0, 4.0), 0.0);
        assert_eq!(log_statistic(2.0, 10.0, 4.0), f64::NEG_INFINITY);
        // t = 1: (t - 1) is read as 1.
        assert!((log_statistic(2.0, 1.0, 1.0).exp() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn negative_and_missing_values_are_scored_without_fuss() {
        let mut m = build(MStreamParams { seed: Some(1), ..Default::default() }, &["a", "b"]);
        assert_eq!(m.score_one(&[1.0, 2.0]), 0.0);
        for i in 0..500 {
            m.learn_one(&[-5.0 + (i % 11) as f64, if i % 7 == 0 { f64::NAN } else { -(i % 3) as f64 }]);
        }
        for row in [[-1e9, 0.0], [f64::NAN, f64::NAN], [f64::INFINITY, f64::NEG_INFINITY], [0.0, -2.0]] {
            let s = m.score_one(&row);
            assert!(s.is_finite() && s >= 0.0, "{row:?}: {s}");
        }
        assert_eq!(transform(9.0), 1.0);
        assert_eq!(transform(-9.0), -1.0);
    }

    #[test]
    fn warm_up_counts_ticks_and_time_going_back_is_the_current_tick() {
        let p = MStreamParams { time_key: Some("t".into()), warm_up_buckets: 3, ..Default::default() };
        let mut m = build(p, &["t", "v"]);
        for t in [10.0, 11.0, 12.0] {
            m.learn_one(&[t, 1.0]);
            assert_eq!(m.score_one(&[t, 1.0]), 0.0);
        }
        assert!(m.score_one(&[13.0, 50.0]) > 0.0);
        m.learn_one(&[13.0, 1.0]);
        m.learn_one(&[5.0, 1.0]); // back in time: tick 13 again
        assert_eq!(m.tick, 13);
    }

    #[test]
    fn lazy_decay_matches_eager_decay() {
        // Decay on every row for far longer than one renormalisation period (0.6^n < 1e-100 at n ~ 450).
        let mut m = build(MStreamParams { buckets: 16, seed: Some(5), ..Default::default() }, &["v"]);
        let mut eager = [0.0; 16];
        let mut last = usize::MAX;
        for i in 0..2_000 {
            let v = (i % 13) as f64;
            if i > 0 {
                eager.iter_mut().for_each(|c| *c *= 0.6);
            }
            m.learn_one(&[v]);
            let mut cells = Cells::default();
            m.cells(&[v], &mut cells);
            last = cells.numeric[0];
            eager[last] += 1.0;
        }
        let lazy = m.s.num.current[last] * m.scale;
        assert!((lazy - eager[last]).abs() < 1e-9 * eager[last], "{lazy} vs {}", eager[last]);
    }

    #[test]
    fn parameters_are_checked_by_name() {
        let schema = Schema::shared(["t", "host"]).unwrap();
        let err = |p: MStreamParams| p.build(&schema).unwrap_err().to_string();
        assert!(err(MStreamParams { alpha: 0.0, ..Default::default() }).contains("'alpha'"));
        assert!(err(MStreamParams { buckets: 1, ..Default::default() }).contains("'buckets'"));
        assert!(err(MStreamParams { rows: 0, ..Default::default() }).contains("'rows'"));
        let e = err(MStreamParams { time_key: Some("time".into()), ..Default::default() });
        assert!(e.contains("'time_key' names feature 'time'"), "{e}");
        let e = err(MStreamParams {
            time_key: Some("t".into()),
            categorical_features: vec!["t".into()],
            ..Default::default()
        });
        assert!(e.contains("is the time_key"), "{e}");
    }
}
