//! ADWIN: an adaptive window whose two parts are compared for a change of the mean.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::flag_score;
use crate::registry::Describe;
use crate::stat::univariate_column;

/// Hyperparameters of [`ADWIN`] (aberrant 1.3.0's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ADWINParams {
    /// Confidence of the test, in (0, 1); smaller is more conservative (default 0.002).
    pub delta: f64,
    /// The window is tested once every `clock` values (default 32).
    pub clock: usize,
    /// Buckets kept per level of the exponential histogram before two are merged (default 5).
    pub max_buckets: usize,
    /// Fewest values on either side of a cut point (default 5).
    pub min_window_length: usize,
    /// Values learned (since the last change) before the first test (default 10).
    pub grace_period: usize,
    /// Optional bound on the values the window represents: the oldest whole buckets are dropped first.
    /// At least `2 * min_window_length`; `None` (the default) lets the window grow while nothing changes.
    pub max_window_size: Option<usize>,
    /// The feature to read; may be omitted when the input has exactly one feature.
    pub key: Option<String>,
}

impl Default for ADWINParams {
    fn default() -> Self {
        ADWINParams {
            delta: 0.002,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
            max_window_size: None,
            key: None,
        }
    }
}

/// ADWIN, adaptive windowing (Bifet & Gavaldà 2007, "Learning from Time-Changing Data with Adaptive
/// Windowing", SDM 2007), in aberrant 1.3.0's variant, on one column.
///
/// The window of values since the last change is kept as an exponential histogram: buckets of `2^l`
/// values holding their sum and their sum of squared deviations, at most `max_buckets` per level `l`;
/// when a level overflows its two oldest buckets merge into one of the next level. So `n` values take
/// O(`max_buckets` log n) buckets, and the window's cut points are the bucket boundaries. Every `clock`
/// values (after `grace_period` and once `2 * min_window_length` values are in) each cut point into an
/// older part of `n1` values and a newer one of `n0`, both at least `min_window_length`, is tested from
/// the newest: with `m = 1/n0 + 1/n1`, `d' = delta / ln(n)` and `v` the window's variance, a change is
/// signalled at the first cut where `|mean0 - mean1| > sqrt(2 m v ln(2/d')) + 2/3 m ln(2/d')` (the
/// paper's Bernstein form of the bound), and the older part is dropped. As in aberrant (and river), the
/// next learned value then starts a fresh window, keeping the count of changes.
///
/// Score: on a row that would be a test row, the largest `|mean0 - mean1| / epsilon` over the cut
/// points of the window with `x` added; `>= 1.0` exactly when learning `x` would signal (see
/// [`super`]). Every other row scores 0.0: ADWIN does not look at the window there, and testing every
/// row would cost a full scan of the buckets per score where learning costs one per `clock` rows. The
/// test row is scored on a copy of the buckets (one allocation per `clock` rows).
///
/// Cost: amortised O(1) per learn plus one O(`max_buckets` log n) scan per `clock` learns; memory
/// O(`max_buckets` log n) for a window of n values.
///
/// Missing values: NaN and infinite values are neither learned nor scored (0.0); aberrant raises.
///
/// Deviations from aberrant 1.3.0: none in what is learned (the same change points on the same stream,
/// checked by a fidelity test; the sums are formed in aberrant's order); the column is chosen by `key`.
/// MOA and river keep the shrunk window after a change where aberrant starts afresh; this follows
/// aberrant.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::ADWINParams;
/// let mut adwin = ADWINParams::default().build(&Schema::shared(["score"]).unwrap()).unwrap();
/// let mut changes = vec![];
/// for i in 0..512 {
///     let x = if i < 256 { 0.0 } else { 1.0 };
///     let would_signal = adwin.score_one(&[x]) >= 1.0;
///     adwin.learn_one(&[x]);
///     assert_eq!(would_signal, adwin.drift_detected());
///     if adwin.drift_detected() {
///         changes.push(i);
///     }
/// }
/// assert_eq!(changes, [287]); // aberrant 1.3.0: 287
/// assert_eq!(adwin.n_detections(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AdwinState")]
pub struct ADWIN(Box<Core>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Core {
    column: usize,
    delta: f64,
    clock: u64,
    max_buckets: usize,
    min_window_length: u64,
    grace_period: u64,
    max_window_size: Option<u64>,
    /// The buckets, oldest first: the highest level's, then the next, down to level 0's (the newest).
    buckets: Vec<Bucket>,
    /// `counts[l]`: buckets of level `l` (of `2^l` values each); the last entry is not 0.
    counts: Vec<usize>,
    /// Sum of the window's values.
    total: f64,
    /// Sum of squared deviations from the window's mean.
    sq_dev: f64,
    /// Values in the window.
    width: u64,
    /// Values learned since the window last started afresh.
    samples: u64,
    drift_detected: bool,
    n_detections: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Bucket {
    sum: f64,
    sq_dev: f64,
}

/// The serialized form, checked when decoded.
#[derive(Deserialize)]
struct AdwinState(Box<Core>);

impl TryFrom<AdwinState> for ADWIN {
    type Error = String;
    fn try_from(AdwinState(c): AdwinState) -> Result<Self, String> {
        let params_ok = c.delta > 0.0
            && c.delta < 1.0
            && c.clock >= 1
            && c.max_buckets >= 1
            && c.min_window_length >= 1
            && c.max_window_size.is_none_or(|m| m >= 2 * c.min_window_length);
        if !params_ok {
            return Err("adwin state: a parameter is out of range".into());
        }
        let width = c.counts.iter().enumerate().try_fold(0u64, |w, (l, &k)| {
            let size = 1u64.checked_shl(l as u32).filter(|_| l < 63)?;
            w.checked_add(size.checked_mul(k as u64)?)
        });
        if c.counts.iter().sum::<usize>() != c.buckets.len()
            || c.counts.last() == Some(&0)
            || c.counts.iter().any(|&k| k > c.max_buckets)
            || width != Some(c.width)
        {
            return Err("adwin state: the buckets do not make up the window".into());
        }
        Ok(ADWIN(c))
    }
}

impl DetectorParams for ADWINParams {
    type Model = ADWIN;
    fn build(&self, schema: &SchemaRef) -> Result<ADWIN, ParamError> {
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(ParamError::invalid("delta", format!("must be in (0, 1), got {}", self.delta)));
        }
        for (name, v) in
            [("clock", self.clock), ("max_buckets", self.max_buckets), ("min_window_length", self.min_window_length)]
        {
            if v == 0 {
                return Err(ParamError::invalid(name, "must be at least 1, got 0"));
            }
        }
        if let Some(m) = self.max_window_size
            && m < self.min_window_length.saturating_mul(2)
        {
            return Err(ParamError::invalid(
                "max_window_size",
                format!("must be at least 2 * min_window_length = {}, got {m}", 2 * self.min_window_length),
            ));
        }
        Ok(ADWIN(Box::new(Core {
            column: univariate_column(self.key.as_deref(), schema)?,
            delta: self.delta,
            clock: self.clock as u64,
            max_buckets: self.max_buckets,
            min_window_length: self.min_window_length as u64,
            grace_period: self.grace_period as u64,
            max_window_size: self.max_window_size.map(|m| m as u64),
            buckets: Vec::new(),
            counts: Vec::new(),
            total: 0.0,
            sq_dev: 0.0,
            width: 0,
            samples: 0,
            drift_detected: false,
            n_detections: 0,
        })))
    }
}

/// `2^level` as a double (exact).
fn size(level: usize) -> f64 {
    f64::from(2u32).powi(level as i32)
}

impl Core {
    fn clear_window(&mut self) {
        self.buckets.clear();
        self.counts.clear();
        self.total = 0.0;
        self.sq_dev = 0.0;
        self.width = 0;
        self.samples = 0;
    }

    /// Learns a finite value; returns whether this row is a test row.
    fn insert(&mut self, x: f64) -> bool {
        if self.drift_detected {
            self.clear_window();
        }
        self.drift_detected = false;
        self.samples += 1;
        if let Some(max) = self.max_window_size {
            while self.width >= max {
                // The oldest whole bucket; removed before inserting so that the new value cannot be
                // merged into it.
                self.remove_oldest(1u64 << (self.counts.len() - 1));
            }
        }
        self.width += 1;
        let previous_total = self.total;
        self.total += x;
        if self.width > 1 {
            let old_mean = previous_total / (self.width - 1) as f64;
            let new_mean = self.total / self.width as f64;
            self.sq_dev += (x - old_mean) * (x - new_mean);
        }
        if self.counts.is_empty() {
            self.counts.push(0);
        }
        self.counts[0] += 1;
        self.buckets.push(Bucket { sum: x, sq_dev: 0.0 });
        self.compress();
        self.samples.is_multiple_of(self.clock)
    }

    /// Merges the two oldest buckets of each level that holds more than `max_buckets`, from level 0 up.
    fn compress(&mut self) {
        let mut level = 0;
        while level < self.counts.len() && self.counts[level] > self.max_buckets {
            if level + 1 == self.counts.len() {
                self.counts.push(0);
            }
            // Level `level`'s buckets start after those of every higher level.
            let p: usize = self.counts[level + 1..].iter().sum();
            let n = size(level);
            let (a, b) = (self.buckets[p], self.buckets[p + 1]);
            let d = a.sum / n - b.sum / n;
            self.buckets[p] = Bucket { sum: a.sum + b.sum, sq_dev: a.sq_dev + b.sq_dev + n * n * (d * d) / (n + n) };
            self.buckets.remove(p + 1);
            self.counts[level] -= 2;
            self.counts[level + 1] += 1;
            level += 1;
        }
    }

    /// Drops the oldest whole buckets holding at most `count` values, taking the highest level first.
    fn remove_oldest(&mut self, count: u64) {
        let (original_total, original_sq_dev, original_width) = (self.total, self.sq_dev, self.width);
        let (mut removed_sum, mut removed_sq_dev, mut removed) = (0.0f64, 0.0f64, 0u64);
        let mut front = 0;
        for level in (0..self.counts.len()).rev() {
            let bucket_size = 1u64 << level;
            while self.counts[level] > 0 && removed + bucket_size <= count {
                let b = self.buckets[front];
                if removed > 0 {
                    let removed_mean = removed_sum / removed as f64;
                    let bucket_mean = b.sum / bucket_size as f64;
                    let d = removed_mean - bucket_mean;
                    removed_sq_dev += (removed * bucket_size) as f64 * (d * d) / (removed + bucket_size) as f64;
                }
                removed_sum += b.sum;
                removed_sq_dev += b.sq_dev;
                removed += bucket_size;
                front += 1;
                self.counts[level] -= 1;
            }
        }
        self.buckets.drain(..front);
        self.total = original_total - removed_sum;
        self.width = original_width - removed;
        self.sq_dev = if self.width > 0 && removed > 0 {
            let removed_mean = removed_sum / removed as f64;
            let remaining_mean = self.total / self.width as f64;
            let d = removed_mean - remaining_mean;
            let between = (removed * self.width) as f64 * (d * d) / original_width as f64;
            (original_sq_dev - removed_sq_dev - between).max(0.0)
        } else {
            0.0
        };
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
    }

    /// The window's variance (aberrant's `variance`).
    fn variance(&self) -> f64 {
        if self.width <= 1 { 0.0 } else { self.sq_dev / self.width as f64 }
    }

    /// Tests the cut points from the newest: the size of the older part at the first cut that signals,
    /// and the largest `|mean0 - mean1| / epsilon` over all cuts (0.0 when none is tested).
    fn scan(&self) -> (Option<u64>, f64) {
        if self.width < 2 * self.min_window_length || self.samples <= self.grace_period {
            return (None, 0.0);
        }
        let width = self.width as f64;
        let variance = self.variance();
        let delta_prime = self.delta / width.ln();
        let log = (2.0 / delta_prime).ln();
        let (mut first, mut best) = (None, 0.0f64);
        let (mut n0, mut sum0) = (0u64, 0.0f64);
        let (mut level, mut left) = (0, self.counts[0]);
        for b in self.buckets.iter().rev() {
            while left == 0 {
                level += 1;
                left = self.counts[level];
            }
            left -= 1;
            n0 += 1 << level;
            sum0 += b.sum;
            let n1 = self.width - n0;
            if n0 < self.min_window_length || n1 < self.min_window_length {
                continue;
            }
            let mean0 = sum0 / n0 as f64;
            let mean1 = (self.total - sum0) / n1 as f64;
            let m = 1.0 / n0 as f64 + 1.0 / n1 as f64;
            let mut eps = (2.0 * m * variance * log).sqrt();
            eps += 2.0 / 3.0 * m * log;
            let diff = (mean0 - mean1).abs();
            if diff > eps && first.is_none() {
                first = Some(n1);
            }
            best = best.max(diff / eps);
        }
        (first, best)
    }
}

impl ADWIN {
    /// Whether the last learned row signalled a change.
    pub fn drift_detected(&self) -> bool {
        self.0.drift_detected
    }

    /// Changes signalled so far.
    pub fn n_detections(&self) -> u64 {
        self.0.n_detections
    }

    /// Values in the window.
    pub fn width(&self) -> u64 {
        self.0.width
    }

    /// Mean of the window (0.0 when empty; aberrant's `estimation`).
    pub fn estimation(&self) -> f64 {
        if self.0.width == 0 { 0.0 } else { self.0.total / self.0.width as f64 }
    }

    /// Variance of the window.
    pub fn variance(&self) -> f64 {
        self.0.variance()
    }

    /// Buckets in the histogram.
    pub fn n_buckets(&self) -> usize {
        self.0.buckets.len()
    }
}

impl Detector for ADWIN {
    fn learn_one(&mut self, x: &[f64]) {
        let c = &mut *self.0;
        let v = x[c.column];
        if !v.is_finite() {
            return;
        }
        if c.insert(v)
            && let (Some(n1), _) = c.scan()
        {
            c.remove_oldest(n1);
            c.drift_detected = true;
            c.n_detections += 1;
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let c = &*self.0;
        let v = x[c.column];
        let samples = if c.drift_detected { 1 } else { c.samples + 1 };
        if !v.is_finite() || !samples.is_multiple_of(c.clock) || samples <= c.grace_period {
            return 0.0;
        }
        let mut next = c.clone();
        next.insert(v);
        let (cut, ratio) = next.scan();
        flag_score(ratio, cut.is_some())
    }
}

impl Describe for ADWINParams {
    const REFERENCE: &'static str =
        "Bifet & Gavaldà 2007, Learning from Time-Changing Data with Adaptive Windowing (SDM)";
    const SUMMARY: &'static str =
        "ADWIN adaptive window testing for a change of the mean of one column (drift detector)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "delta", ty: "float in (0, 1)", required: false, help: "confidence of the test (0.002)" },
        ParamDoc { name: "clock", ty: "int >= 1", required: false, help: "test once every this many values (32)" },
        ParamDoc { name: "max_buckets", ty: "int >= 1", required: false, help: "buckets per histogram level (5)" },
        ParamDoc {
            name: "min_window_length",
            ty: "int >= 1",
            required: false,
            help: "fewest values on either side of a cut (5)",
        },
        ParamDoc {
            name: "grace_period",
            ty: "int >= 0",
            required: false,
            help: "values since the last change before testing (10)",
        },
        ParamDoc {
            name: "max_window_size",
            ty: "int >= 2 * min_window_length",
            required: false,
            help: "bound on the window, oldest buckets dropped first (none)",
        },
        ParamDoc {
            name: "key",
            ty: "feature name",
            required: false,
            help: "feature to read; optional when the input has one feature",
        },
    ];
    fn example() -> Self {
        ADWINParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::test_support::stream;
    use onad_core::Schema;

    fn build(p: ADWINParams) -> ADWIN {
        p.build(&Schema::shared(["v"]).unwrap()).unwrap()
    }

    fn changes(m: &mut ADWIN, xs: &[f64]) -> Vec<usize> {
        crate::drift::test_support::changes(m, xs, ADWIN::drift_detected)
    }

    /// The histogram against the values it stands for.
    fn check_histogram(m: &ADWIN, window: &[f64]) {
        let c = &m.0;
        assert_eq!(c.width as usize, window.len());
        assert!(c.counts.iter().all(|&k| k <= c.max_buckets));
        let mut start = 0;
        let mut bi = 0;
        for l in (0..c.counts.len()).rev() {
            for _ in 0..c.counts[l] {
                let part = &window[start..start + (1 << l)];
                let mean = part.iter().sum::<f64>() / part.len() as f64;
                let sq: f64 = part.iter().map(|v| (v - mean) * (v - mean)).sum();
                let b = c.buckets[bi];
                assert!((b.sum - part.iter().sum::<f64>()).abs() < 1e-9, "bucket {bi}");
                assert!((b.sq_dev - sq).abs() < 1e-7 * sq.max(1.0), "bucket {bi}: {} vs {sq}", b.sq_dev);
                start += 1 << l;
                bi += 1;
            }
        }
        let mean = window.iter().sum::<f64>() / window.len() as f64;
        let sq: f64 = window.iter().map(|v| (v - mean) * (v - mean)).sum();
        assert!((c.sq_dev - sq).abs() < 1e-7 * sq.max(1.0));
    }

    #[test]
    fn histogram_holds_the_window_in_logarithmic_space() {
        let xs = stream(1);
        let mut m = build(ADWINParams { max_buckets: 3, ..Default::default() });
        for &x in &xs[..1000] {
            m.learn_one(&[x]);
        }
        assert!(!m.drift_detected() && m.n_detections() == 0);
        check_histogram(&m, &xs[..1000]);
        assert!(m.n_buckets() <= 3 * 10, "{} buckets", m.n_buckets());
        let mut bounded = build(ADWINParams { max_window_size: Some(100), ..Default::default() });
        for &x in &xs[..1000] {
            bounded.learn_one(&[x]);
            assert!(bounded.width() <= 100);
        }
        let w = bounded.width() as usize;
        check_histogram(&bounded, &xs[1000 - w..1000]);
    }

    #[test]
    fn finds_mean_shifts_and_restarts_after_each() {
        let xs = stream(2);
        let mut m = build(ADWINParams::default());
        let found = changes(&mut m, &xs);
        assert!(found.iter().any(|&i| (1000..1200).contains(&i)), "{found:?}");
        assert!(found.iter().any(|&i| (2000..2200).contains(&i)), "{found:?}");
        assert!(found.iter().filter(|&&i| i < 1000).count() <= 1, "{found:?}");
        assert_eq!(m.n_detections(), found.len() as u64);
        // After a change the next value starts a window of one.
        let mut m = build(ADWINParams { clock: 1, grace_period: 0, ..Default::default() });
        let at = [&[0.0; 100][..], &[10.0; 30][..]].concat().into_iter().position(|x| {
            m.learn_one(&[x]);
            m.drift_detected()
        });
        assert!(at.is_some_and(|i| i >= 100), "{at:?}");
        assert!(m.width() < 100 && m.n_detections() == 1);
        m.learn_one(&[10.0]);
        assert_eq!((m.width(), m.estimation()), (1, 10.0));
    }

    #[test]
    fn scores_only_test_rows_and_agree_with_learning() {
        let xs = stream(4);
        let mut m = build(ADWINParams { clock: 7, grace_period: 20, max_buckets: 2, ..Default::default() });
        let mut scored = 0;
        for (i, &x) in xs.iter().enumerate() {
            let s = m.score_one(&[x]);
            let samples = if m.0.drift_detected { 1 } else { m.0.samples + 1 };
            if samples % 7 != 0 || samples <= 20 {
                assert_eq!(s, 0.0, "row {i}");
            } else if s > 0.0 {
                scored += 1;
            }
            m.learn_one(&[x]);
            assert_eq!(s >= 1.0, m.drift_detected(), "row {i}: {s}");
        }
        assert!(scored > 400, "{scored}");
        assert!(m.n_detections() >= 2);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut m = build(ADWINParams { clock: 1, ..Default::default() });
        m.learn_one(&[1.0]);
        let before = m.clone();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(m.score_one(&[v]), 0.0);
            m.learn_one(&[v]);
        }
        assert_eq!(m, before);
    }

    #[test]
    fn parameters_and_states_are_checked() {
        let schema = Schema::shared(["v"]).unwrap();
        for (p, name) in [
            (ADWINParams { delta: 0.0, ..Default::default() }, "delta"),
            (ADWINParams { delta: 1.0, ..Default::default() }, "delta"),
            (ADWINParams { clock: 0, ..Default::default() }, "clock"),
            (ADWINParams { max_buckets: 0, ..Default::default() }, "max_buckets"),
            (ADWINParams { min_window_length: 0, ..Default::default() }, "min_window_length"),
            (ADWINParams { max_window_size: Some(9), ..Default::default() }, "max_window_size"),
        ] {
            let e = p.build(&schema).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        let mut m = build(ADWINParams::default());
        for i in 0..100 {
            m.learn_one(&[i as f64]);
        }
        let bytes = postcard::to_stdvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<ADWIN>(&bytes).unwrap(), m);
        let mut bad = m.clone();
        bad.0.width += 1;
        let err = postcard::from_bytes::<ADWIN>(&postcard::to_stdvec(&bad).unwrap()).unwrap_err();
        assert!(err.to_string().contains("buckets") || matches!(err, postcard::Error::SerdeDeCustom), "{err}");
    }
}
