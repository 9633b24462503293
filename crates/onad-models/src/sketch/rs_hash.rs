//! StreamingRSHash: RS-Hash (Sathe & Aggarwal 2016) over a stream, with online z-scores and fading counts.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;
use crate::rng::{below, unit, unit_rng};

/// Hyperparameters of [`StreamingRSHash`] (aberrant's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingRSHashParams {
    /// Random feature subspaces (components), 1 to 4096.
    pub components_num: usize,
    /// Hash tables per component (the score takes their minimum count), 1 to 64.
    pub hash_num: usize,
    /// Counters per hash table, 1 to 2^24 (and `components_num * hash_num * bins <= 2^28`).
    pub bins: usize,
    /// Features per subspace, 1 to the number of features; `None` is `ceil(sqrt(d))`.
    pub subspace_size: Option<usize>,
    /// Grid width in z-score units, finite and > 0.
    pub bin_width: f64,
    /// Fading rate per unit of time: counts are scaled by `exp(-decay * elapsed)`, finite and >= 0.
    pub decay: f64,
    /// Rows learned before scores are non-zero, >= 1.
    pub warm_up_samples: usize,
    /// The column holding event time (left out of the features); `None` counts rows (time = arrival).
    pub time_key: Option<String>,
    /// Seed of the subspaces, shifts and hash coefficients; `None` uses the fixed seed 0.
    pub seed: Option<u64>,
}

impl Default for StreamingRSHashParams {
    fn default() -> Self {
        StreamingRSHashParams {
            components_num: 24,
            hash_num: 4,
            bins: 256,
            subspace_size: None,
            bin_width: 1.0,
            decay: 0.01,
            warm_up_samples: 64,
            time_key: None,
            seed: None,
        }
    }
}

/// The Mersenne prime 2^31 - 1, modulus of the polynomial hashes.
const MODULUS: u64 = (1 << 31) - 1;
/// `x mod (2^31 - 1)` for `x < 2^63`, by folding the high bits onto the low ones (`2^31 = 1` modulo the
/// prime) instead of a division.
#[inline(always)]
fn mod_mersenne(x: u64) -> u64 {
    let x = (x & MODULUS) + (x >> 31); // < 2^32 + 2^31
    let x = (x & MODULUS) + (x >> 31); // <= 2^31 + 1
    if x >= MODULUS { x - MODULUS } else { x }
}

/// `floor(y) as i64` (saturating, NaN to 0) without a call into libm: truncate, then step down where
/// truncation went up (negative non-integers).
#[inline(always)]
fn floor_i64(y: f64) -> i64 {
    let t = y as i64;
    if (t as f64) > y { t.saturating_sub(1) } else { t }
}

/// Below this lazy scale the counts are rescaled in place (so `1 / scale` stays representable).
const RENORM: f64 = 1e-12;
/// Smallest standard deviation used to form z-scores.
const STD_FLOOR: f64 = 1e-6;

/// RS-Hash over a stream (Sathe & Aggarwal 2016, "Subspace Outlier Detection in Linear Time with
/// Randomized Hashing", ICDM), in aberrant's bounded streaming form (`StreamingRSHash`): rows are
/// z-scored online, each of `components_num` components looks at a random subspace through a randomly
/// shifted grid and counts grid cells in `hash_num` hashed tables of `bins` counters whose counts fade
/// with time. A row in a sparsely visited cell of many subspaces is an outlier.
///
/// # Algorithm
/// - **Normalisation**: per feature a running mean and variance (Welford) of its finite values; a value is
///   turned into `z = (x - mean) / max(std, 1e-6)` with the statistics before the row is learned (`x - mean`
///   after one value, `x` itself before any). A missing value is `z = 0` (the mean).
/// - **Components**: component `c` draws `r` distinct features (`r = subspace_size`, default
///   `ceil(sqrt(d))`), shifts `alpha_i ~ U(0, bin_width)`, and per table `h` coefficients
///   `a_hi ~ U{1, ..., p - 1}`, `b_h ~ U{0, ..., p - 1}` with `p = 2^31 - 1`. The cell of a row is
///   `q_i = floor((z_i + alpha_i) / bin_width)`, its bucket `(b_h + sum_i a_hi (q_i mod p)) mod p mod bins`.
/// - **Learning** adds 1 to the row's bucket in every table after fading every count by
///   `exp(-decay * elapsed)` (lazily, by one shared scale), where time is the arrival index, or the
///   `time_key` column (elapsed is 0 for a time that is missing or earlier than the last one).
/// - **Score** (in [0, 1], higher = more anomalous): the mean over components of
///   `clamp(1 - ln(1 + m_c) / ln(1 + M), 0, 1)`, where `m_c` is the minimum over the component's tables of
///   the row's bucket count faded to the row's time and `M` the number of rows learned (aberrant's
///   normaliser, unfaded). 0.0 until `warm_up_samples` rows were learned.
///
/// # Deviations from aberrant
/// - None in the algorithm. Note that with fading, counts stay near `1 / decay` while the normaliser
///   `ln(1 + M)` grows with every row, so scores creep towards 1 over a long stream (as aberrant's); the
///   ranking of rows scored at one time does not depend on it, but prequential ROC-AUC does: the faded
///   mass as normaliser was tried and lost 0.1 to 0.3 of ROC-AUC against aberrant on the univariate
///   series (ECG, NAB) of the quality table.
/// - A missing value is the feature's mean and infinite values saturate the grid index (aberrant rejects
///   both); out-of-order or missing times do not fade (aberrant rejects them).
/// - Generators are PCG64 seeded per component from `(seed, component)`; `seed = None` means 0.
/// - The paper draws a grid width and subspace size per component from the data's ranges in [0, 1] and
///   scores a fixed sample; the streaming form above (aberrant's) replaces that with z-scores, one width
///   and fading counts, so it works on raw data.
///
/// # Cost
/// Per row O(d) for the statistics and O(components_num * hash_num * r) multiply-mods; scoring reads
/// `components_num * hash_num` counters. Memory: `components_num * hash_num * bins` counters of 8 bytes
/// (196 KB by default), the coefficients, and three values per feature. Rescaling the counts when the
/// lazy scale falls below 1e-12 costs a pass over them once per `ln(1e12) / decay` time units.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::StreamingRSHashParams;
/// let schema = Schema::shared(["latency_ms", "bytes", "errors", "retries"]).unwrap();
/// let mut model = StreamingRSHashParams { seed: Some(3), ..Default::default() }.build(&schema).unwrap();
/// for i in 0..2_000 {
///     let k = (i % 17) as f64;
///     model.learn_one(&[20.0 + k, 1_000.0 + 10.0 * k, (i % 3) as f64, (i % 2) as f64]);
/// }
/// let normal = model.score_one(&[28.0, 1_080.0, 1.0, 0.0]);
/// let odd = model.score_one(&[90.0, 100.0, 40.0, 9.0]);
/// assert!(odd > normal + 0.3, "{odd} vs {normal}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamingRSHash {
    components_num: usize,
    hash_num: usize,
    bins: usize,
    /// Features per subspace.
    r: usize,
    bin_width: f64,
    decay: f64,
    warm_up_samples: usize,
    /// Input columns that are features, in schema order.
    features: Vec<usize>,
    /// The time column, if any.
    time_col: Option<usize>,
    /// The subspaces, hash coefficients and counts (boxed: the model enums stay small).
    tables: Box<Tables>,
    /// Every count is `stored * scale`.
    scale: f64,
    /// Running statistics per feature.
    stats: Vec<Welford>,
    samples_seen: u64,
    /// The latest finite time learned (with `time_key`).
    last_time: Option<f64>,
}

/// The random subspaces and hashes, and the count tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tables {
    /// `components_num x r` subspace dimensions: an index into `features` and the grid shift.
    dims: Vec<(u32, f64)>,
    /// `components_num x hash_num` tables of `r + 1` coefficients: the offset `b`, then the `a_i`.
    hashes: Vec<u64>,
    /// `components_num x hash_num x bins` counts, in units of `1 / scale`.
    counts: Vec<f64>,
}

/// Running statistics of one feature: finite values seen, mean, sum of squared deviations, and the
/// standard deviation used for z-scores.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
    std: f64,
}

impl DetectorParams for StreamingRSHashParams {
    type Model = StreamingRSHash;
    fn build(&self, schema: &SchemaRef) -> Result<StreamingRSHash, ParamError> {
        if !(1..=4096).contains(&self.components_num) {
            return Err(ParamError::invalid(
                "components_num",
                format!("must be between 1 and 4096, got {}", self.components_num),
            ));
        }
        if !(1..=64).contains(&self.hash_num) {
            return Err(ParamError::invalid("hash_num", format!("must be between 1 and 64, got {}", self.hash_num)));
        }
        if !(1..=1 << 24).contains(&self.bins) || self.components_num * self.hash_num * self.bins > 1 << 28 {
            return Err(ParamError::invalid(
                "bins",
                format!("must be between 1 and 2^24 with components_num * hash_num * bins <= 2^28, got {}", self.bins),
            ));
        }
        if !(self.bin_width.is_finite() && self.bin_width > 0.0) {
            return Err(ParamError::invalid("bin_width", format!("must be finite and > 0, got {}", self.bin_width)));
        }
        if !(self.decay.is_finite() && self.decay >= 0.0) {
            return Err(ParamError::invalid("decay", format!("must be finite and >= 0, got {}", self.decay)));
        }
        if self.warm_up_samples == 0 {
            return Err(ParamError::invalid("warm_up_samples", "must be at least 1, got 0"));
        }
        let time_col = match &self.time_key {
            None => None,
            Some(key) => match schema.names().iter().position(|n| n == key) {
                Some(at) => Some(at),
                None => return Err(ParamError::invalid("time_key", format!("`{key}` is not an input column"))),
            },
        };
        let features: Vec<usize> = (0..schema.len()).filter(|&i| Some(i) != time_col).collect();
        let d = features.len();
        if d == 0 || d > u32::MAX as usize {
            return Err(ParamError::Schema(format!("StreamingRSHash needs 1 to 2^32 - 1 features, got {d}")));
        }
        let r = match self.subspace_size {
            None => (1..=d).find(|&r| r * r >= d).unwrap_or(d),
            Some(r) if (1..=d).contains(&r) => r,
            Some(r) => {
                return Err(ParamError::invalid(
                    "subspace_size",
                    format!("must be between 1 and the number of features ({d}), got {r}"),
                ));
            }
        };
        let seed = self.seed.unwrap_or(0);
        let (c, h) = (self.components_num, self.hash_num);
        let (mut dims, mut hashes) = (Vec::with_capacity(c * r), Vec::with_capacity(c * h * (r + 1)));
        let mut pool: Vec<u32> = Vec::with_capacity(d);
        for component in 0..c {
            let mut rng = unit_rng(seed, component as u64);
            pool.clear();
            pool.extend(0..d as u32);
            for k in 0..r {
                let j = k + below(&mut rng, d - k);
                pool.swap(k, j);
            }
            dims.extend(pool[..r].iter().map(|&f| (f, unit(&mut rng) * self.bin_width)));
            for _ in 0..h {
                hashes.push(below(&mut rng, MODULUS as usize) as u64);
                hashes.extend((0..r).map(|_| 1 + below(&mut rng, MODULUS as usize - 1) as u64));
            }
        }
        Ok(StreamingRSHash {
            components_num: c,
            hash_num: h,
            bins: self.bins,
            r,
            bin_width: self.bin_width,
            decay: self.decay,
            warm_up_samples: self.warm_up_samples,
            features,
            time_col,
            tables: Box::new(Tables { dims, hashes, counts: vec![0.0; c * h * self.bins] }),
            scale: 1.0,
            stats: vec![Welford { n: 0, mean: 0.0, m2: 0.0, std: 1.0 }; d],
            samples_seen: 0,
            last_time: None,
        })
    }
}

impl StreamingRSHash {
    /// The z-score of feature `f` (an index into `features`) of row `x`, with the current statistics.
    #[inline]
    fn z(&self, x: &[f64], f: usize) -> f64 {
        let v = x[self.features[f]];
        if v.is_nan() {
            return 0.0;
        }
        let s = &self.stats[f];
        match s.n {
            0 => v,
            1 => v - s.mean,
            _ => (v - s.mean) / s.std,
        }
    }

    /// Calls `visit(slot)` with the index into `counts` of the row's bucket in every table, component by
    /// component, tables in order.
    #[inline]
    fn buckets(&self, x: &[f64], mut visit: impl FnMut(usize, usize)) {
        let r = self.r;
        let mut cells = [0u64; 64];
        let mut heap = Vec::new();
        let cells: &mut [u64] = if r <= 64 {
            &mut cells[..r]
        } else {
            heap.resize(r, 0);
            &mut heap
        };
        for c in 0..self.components_num {
            for (cell, &(f, shift)) in cells.iter_mut().zip(&self.tables.dims[c * r..(c + 1) * r]) {
                let q = floor_i64((self.z(x, f as usize) + shift) / self.bin_width);
                *cell = q.rem_euclid(MODULUS as i64) as u64;
            }
            for h in 0..self.hash_num {
                let t = c * self.hash_num + h;
                let table = &self.tables.hashes[t * (r + 1)..(t + 1) * (r + 1)];
                let mut acc = table[0];
                for (&a, &q) in table[1..].iter().zip(cells.iter()) {
                    acc = mod_mersenne(acc + a * q);
                }
                visit(c, t * self.bins + (acc % self.bins as u64) as usize);
            }
        }
    }

    /// The time elapsed from the last learned row to row `x` (arrival order: 1 per row).
    fn elapsed(&self, x: &[f64]) -> f64 {
        match self.time_col {
            None => 1.0,
            Some(col) => match (x[col], self.last_time) {
                (t, Some(last)) if t.is_finite() => (t - last).max(0.0),
                _ => 0.0,
            },
        }
    }

    /// The scale faded from the last learned row to row `x`.
    fn faded_scale(&self, x: &[f64]) -> f64 {
        if self.samples_seen == 0 || self.decay == 0.0 {
            return self.scale;
        }
        self.scale * (-self.decay * self.elapsed(x)).exp()
    }

    fn update_stats(&mut self, x: &[f64]) {
        for (s, &col) in self.stats.iter_mut().zip(&self.features) {
            let v = x[col];
            if !v.is_finite() {
                continue;
            }
            s.n += 1;
            let delta = v - s.mean;
            s.mean += delta / s.n as f64;
            s.m2 += delta * (v - s.mean);
            if s.n >= 2 {
                let var = s.m2 / (s.n - 1) as f64;
                s.std = var.max(STD_FLOOR * STD_FLOOR).sqrt();
            }
        }
    }

    /// Rows learned so far.
    pub fn samples_seen(&self) -> u64 {
        self.samples_seen
    }
}

impl Detector for StreamingRSHash {
    fn learn_one(&mut self, x: &[f64]) {
        let mut scale = self.faded_scale(x);
        if scale.is_nan() || scale < RENORM {
            // Fold the fading into the counts (all of them forgotten when it underflowed to 0).
            for c in &mut self.tables.counts {
                *c *= scale;
            }
            scale = 1.0;
        }
        self.scale = scale;
        let increment = 1.0 / scale;
        let mut counts = std::mem::take(&mut self.tables.counts);
        self.buckets(x, |_, slot| counts[slot] += increment);
        self.tables.counts = counts;
        self.update_stats(x);
        if let Some(col) = self.time_col {
            let t = x[col];
            if t.is_finite() && self.last_time.is_none_or(|last| t > last) {
                self.last_time = Some(t);
            }
        }
        self.samples_seen += 1;
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.samples_seen < self.warm_up_samples as u64 {
            return 0.0;
        }
        let scale = self.faded_scale(x);
        let normaliser = (self.samples_seen as f64).ln_1p();
        if normaliser.is_nan() || normaliser <= 0.0 {
            return 0.0;
        }
        let mut total = 0.0;
        let mut current = usize::MAX;
        let mut min = f64::INFINITY;
        let mut add = |min: f64| total += (1.0 - (min * scale).max(0.0).ln_1p() / normaliser).clamp(0.0, 1.0);
        self.buckets(x, |c, slot| {
            if c != current {
                if current != usize::MAX {
                    add(min);
                }
                current = c;
                min = f64::INFINITY;
            }
            min = min.min(self.tables.counts[slot]);
        });
        add(min);
        total / self.components_num as f64
    }
}

impl Describe for StreamingRSHashParams {
    const REFERENCE: &'static str =
        "Sathe & Aggarwal 2016, Subspace Outlier Detection in Linear Time with Randomized Hashing (ICDM)";
    const SUMMARY: &'static str =
        "RS-Hash: random subspaces on shifted grids of online z-scores, hashed into fading count tables";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "components_num",
            ty: "int in 1..=4096",
            required: false,
            help: "random subspaces (default 24)",
        },
        ParamDoc {
            name: "hash_num",
            ty: "int in 1..=64",
            required: false,
            help: "hash tables per subspace (default 4)",
        },
        ParamDoc { name: "bins", ty: "int in 1..=2^24", required: false, help: "counters per table (default 256)" },
        ParamDoc {
            name: "subspace_size",
            ty: "int in 1..=d",
            required: false,
            help: "features per subspace (default ceil(sqrt(d)))",
        },
        ParamDoc {
            name: "bin_width",
            ty: "float > 0",
            required: false,
            help: "grid width in z-score units (default 1.0)",
        },
        ParamDoc {
            name: "decay",
            ty: "float >= 0",
            required: false,
            help: "fading rate per unit of time (default 0.01)",
        },
        ParamDoc {
            name: "warm_up_samples",
            ty: "int >= 1",
            required: false,
            help: "rows learned before scoring (default 64)",
        },
        ParamDoc {
            name: "time_key",
            ty: "column name",
            required: false,
            help: "event-time column, left out of the features (default: arrival order)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the hashes (default 0)" },
    ];
    fn example() -> Self {
        StreamingRSHashParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(p: StreamingRSHashParams, d: usize) -> StreamingRSHash {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    /// The faded number of rows learned: the sum of the first table.
    fn mass(m: &StreamingRSHash) -> f64 {
        m.tables.counts[..m.bins].iter().sum::<f64>() * m.scale
    }

    fn row(i: usize) -> [f64; 3] {
        let a = (i as f64 * 0.618_033_988_749_895).fract();
        let b = (i as f64 * 0.754_877_666_246_693).fract();
        [1_000.0 + 50.0 * a, 0.001 * b, (i % 5) as f64]
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 4);
        let err = |p: StreamingRSHashParams| p.build(&schema).unwrap_err().to_string();
        let d = StreamingRSHashParams::default;
        assert!(err(StreamingRSHashParams { components_num: 0, ..d() }).contains("'components_num'"));
        assert!(err(StreamingRSHashParams { hash_num: 0, ..d() }).contains("'hash_num'"));
        assert!(err(StreamingRSHashParams { bins: 0, ..d() }).contains("'bins'"));
        assert!(err(StreamingRSHashParams { subspace_size: Some(5), ..d() }).contains("'subspace_size'"));
        assert!(err(StreamingRSHashParams { bin_width: 0.0, ..d() }).contains("'bin_width'"));
        assert!(err(StreamingRSHashParams { decay: f64::NAN, ..d() }).contains("'decay'"));
        assert!(err(StreamingRSHashParams { warm_up_samples: 0, ..d() }).contains("'warm_up_samples'"));
        assert!(err(StreamingRSHashParams { time_key: Some("t".into()), ..d() }).contains("'time_key'"));
        let m = StreamingRSHashParams { time_key: Some("f2".into()), ..d() }.build(&schema).unwrap();
        assert_eq!(m.features, [0, 1, 3]);
        assert_eq!(m.r, 2, "ceil(sqrt(3))");
        assert_eq!(build(d(), 4).r, 2);
        assert_eq!(build(d(), 5).r, 3);
    }

    #[test]
    fn warm_up_then_an_isolated_point_scores_above_inliers_on_raw_data() {
        let mut m = build(StreamingRSHashParams { seed: Some(1), ..Default::default() }, 3);
        for i in 0..63 {
            assert_eq!(m.score_learn_one(&row(i)), 0.0);
        }
        m.learn_one(&row(63));
        assert!(m.score_one(&row(64)) > 0.0 || m.score_one(&[0.0, 5.0, 99.0]) > 0.0);
        (64..3_000).for_each(|i| m.learn_one(&row(i)));
        let inlier = m.score_one(&row(3_001));
        let outlier = m.score_one(&[1_200.0, 0.01, 17.0]);
        assert!(outlier > inlier + 0.2, "{outlier} vs {inlier}");
        for x in [[f64::NAN; 3], [f64::INFINITY, f64::NEG_INFINITY, f64::NAN], [1e300, -1e300, 0.0]] {
            let s = m.score_one(&x);
            assert!((0.0..=1.0).contains(&s), "{x:?}: {s}");
        }
    }

    #[test]
    fn hand_checked_counts_without_decay() {
        // One component, one table, no fading: the count of a repeated row is the number of repeats.
        let p = StreamingRSHashParams {
            components_num: 1,
            hash_num: 1,
            bins: 8,
            decay: 0.0,
            warm_up_samples: 1,
            seed: Some(5),
            ..Default::default()
        };
        let mut m = build(p, 1);
        for _ in 0..9 {
            m.learn_one(&[3.0]);
        }
        assert_eq!(m.tables.counts.iter().sum::<f64>(), 9.0);
        assert_eq!(m.samples_seen(), 9);
        // The first row had no statistics (z = 3.0), the other eight z = 0: their cell holds 8 (9 if the
        // two cells collide).
        let top = m.tables.counts.iter().cloned().fold(0.0, f64::max);
        assert!(top == 8.0 || top == 9.0, "{top}");
        assert_eq!(m.score_one(&[3.0]), 1.0 - (1.0 + top).ln() / 10f64.ln());
        // Spread 0 (floored at 1e-6): 4.0 has z = 1e6, another cell, empty unless its bucket collides.
        let s = m.score_one(&[4.0]);
        assert!(s == 1.0 || s < 0.1, "{s}");
    }

    #[test]
    fn counts_fade_and_rescale_without_changing_scores() {
        let p = StreamingRSHashParams { decay: 0.5, warm_up_samples: 1, seed: Some(2), ..Default::default() };
        let mut m = build(p, 3);
        // exp(-0.5 * 60) < 1e-12: the lazy scale is folded into the counts within 60 rows.
        let mut rescaled = false;
        for i in 0..200 {
            let before = m.scale;
            m.learn_one(&row(i));
            rescaled |= m.scale > before;
            assert!(m.tables.counts.iter().all(|c| c.is_finite()));
        }
        assert!(rescaled);
        // The faded mass (what one table holds) is about 1 / (1 - e^-0.5).
        let mass = mass(&m);
        assert!((mass - 1.0 / (1.0 - (-0.5f64).exp())).abs() < 1e-6, "{mass}");
    }

    #[test]
    fn time_key_fades_by_event_time_and_is_not_a_feature() {
        let schema = Schema::shared(["t", "x"]).unwrap();
        let p = StreamingRSHashParams {
            time_key: Some("t".into()),
            warm_up_samples: 1,
            seed: Some(4),
            ..Default::default()
        };
        let mut m = p.build(&schema).unwrap();
        m.learn_one(&[0.0, 1.0]);
        m.learn_one(&[100.0, 1.0]);
        // Faded by exp(-0.01 * 100) before the second row was added.
        let faded = mass(&m);
        assert!((faded - (1.0 + (-1.0f64).exp())).abs() < 1e-12, "{faded}");
        // An earlier or missing time does not fade and does not move the clock.
        m.learn_one(&[50.0, 1.0]);
        m.learn_one(&[f64::NAN, 1.0]);
        assert_eq!(m.last_time, Some(100.0));
        assert!((mass(&m) - (3.0 + (-1.0f64).exp())).abs() < 1e-12);
        // The score does not depend on the time column's value beyond fading.
        let (a, b) = (m.score_one(&[100.0, 1.0]), m.score_one(&[100.0, 1.0]));
        assert_eq!(a.to_bits(), b.to_bits());
    }

    #[test]
    fn floor_without_libm_is_floor() {
        let values = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.999, -2.999, 1e18, -1e18, 1e300, -1e300, f64::INFINITY];
        for y in values.into_iter().chain([f64::NEG_INFINITY, f64::NAN, f64::MIN_POSITIVE, -f64::MIN_POSITIVE]) {
            assert_eq!(floor_i64(y), y.floor() as i64, "{y}");
        }
        let mut x = 1u64;
        for _ in 0..100_000 {
            x = crate::rng::mix64(x);
            let y = (x as i64 as f64) / 1e6;
            assert_eq!(floor_i64(y), y.floor() as i64, "{y}");
        }
    }

    #[test]
    fn mersenne_reduction_is_the_remainder() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for edge in [0, 1, MODULUS - 1, MODULUS, MODULUS + 1, 2 * MODULUS, (1 << 63) - 1, MODULUS * MODULUS] {
            assert_eq!(mod_mersenne(edge), edge % MODULUS, "{edge}");
        }
        for _ in 0..100_000 {
            x = crate::rng::mix64(x);
            let y = x >> 1;
            assert_eq!(mod_mersenne(y), y % MODULUS, "{y}");
        }
    }

    #[test]
    fn state_round_trips() {
        let mut a = build(StreamingRSHashParams { seed: Some(9), ..Default::default() }, 3);
        (0..500).for_each(|i| a.learn_one(&row(i)));
        let mut b: StreamingRSHash = postcard::from_bytes(&postcard::to_stdvec(&a).unwrap()).unwrap();
        for i in 500..700 {
            assert_eq!(a.score_learn_one(&row(i * 3)).to_bits(), b.score_learn_one(&row(i * 3)).to_bits());
        }
    }
}
