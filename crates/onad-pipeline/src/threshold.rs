//! Thresholds turn scores into anomaly flags. The trait is stateful so that adaptive thresholds (a
//! moving mean plus k standard deviations, a streaming quantile) fit the same slot as a fixed one.

use std::collections::VecDeque;
use std::fmt::{self, Debug};
use std::str::FromStr;

use onad_core::rolling::{Interpolation, RollingWindow};
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decides, score by score in stream order, whether a row is an anomaly.
pub trait Threshold: Debug + Send {
    /// Flags one score (strictly above the threshold = anomaly) and updates any internal state.
    fn flag(&mut self, score: f64) -> bool;

    /// The threshold that the next score will be compared with.
    fn current(&self) -> f64;
}

/// A fixed threshold: scores strictly above it are anomalies (the guide's `score > threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FixedThreshold(pub f64);

impl Threshold for FixedThreshold {
    fn flag(&mut self, score: f64) -> bool {
        score > self.0
    }

    fn current(&self) -> f64 {
        self.0
    }
}

/// A false-alarm rate: for a model whose scores are `1 - p` with `p` a conformal p-value (a model behind
/// conformal calibration), flags the rows with `p <= alpha`, so on a stream without anomalies about a share
/// `alpha` of the rows (`--threshold p:0.001`).
///
/// ```
/// use onad_pipeline::{PValueThreshold, Threshold};
/// let mut t = PValueThreshold::new(0.01).unwrap();
/// assert!(t.flag(1.0 - 10.0 / 1001.0)); // p = 0.00999
/// assert!(!t.flag(1.0 - 11.0 / 1001.0)); // p = 0.01099
/// assert!(PValueThreshold::new(1.5).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PValueThreshold {
    alpha: f64,
}

impl PValueThreshold {
    /// `alpha` in (0, 1).
    pub fn new(alpha: f64) -> Result<PValueThreshold, String> {
        if alpha > 0.0 && alpha < 1.0 {
            Ok(PValueThreshold { alpha })
        } else {
            Err(format!("the false-alarm rate must be in (0, 1), got {alpha}"))
        }
    }

    /// The false-alarm rate.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}

impl Threshold for PValueThreshold {
    fn flag(&mut self, score: f64) -> bool {
        // `1 - score` gives p back up to rounding; the tolerance keeps a p-value equal to alpha flagged.
        1.0 - score <= self.alpha * (1.0 + 1e-12)
    }

    fn current(&self) -> f64 {
        1.0 - self.alpha
    }
}

/// Flags nothing (scores only).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NoThreshold;

impl Threshold for NoThreshold {
    fn flag(&mut self, _score: f64) -> bool {
        false
    }

    fn current(&self) -> f64 {
        f64::INFINITY
    }
}

/// The streaming guide's adaptive threshold: `mean + k * std` of the last `window` scores (population
/// standard deviation). Nothing is flagged until the window is full.
///
/// Unlike the guide's loop, a score is compared with the window *before* it joins it, so a spike cannot
/// raise its own bar. Non-finite scores are compared but not added to the window.
///
/// ```
/// use onad_pipeline::{Threshold, WindowedThreshold};
/// let mut t = WindowedThreshold::new(4, 2.0).unwrap();
/// for s in [1.0, 2.0, 1.0, 2.0] {
///     assert!(!t.flag(s)); // warming up
/// }
/// assert_eq!(t.current(), 2.5); // mean 1.5 + 2 * std 0.5
/// assert!(t.flag(3.0));
/// assert!(!t.flag(2.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedThreshold {
    window: usize,
    k: f64,
    scores: std::collections::VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    since_resum: usize,
}

impl WindowedThreshold {
    /// A threshold over the last `window` scores at `k` standard deviations above their mean.
    pub fn new(window: usize, k: f64) -> Result<Self, String> {
        if window < 2 {
            return Err(format!("the threshold window must hold at least 2 scores, got {window}"));
        }
        if !k.is_finite() {
            return Err(format!("the threshold's k must be finite, got {k}"));
        }
        Ok(WindowedThreshold {
            window,
            k,
            scores: std::collections::VecDeque::with_capacity(window),
            sum: 0.0,
            sum_sq: 0.0,
            since_resum: 0,
        })
    }

    /// How many recent scores are kept.
    pub fn window(&self) -> usize {
        self.window
    }

    /// How many standard deviations above the mean a score must be.
    pub fn k(&self) -> f64 {
        self.k
    }

    fn push(&mut self, s: f64) {
        if self.scores.len() == self.window {
            let old = self.scores.pop_front().unwrap_or(0.0);
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.scores.push_back(s);
        self.sum += s;
        self.sum_sq += s * s;
        self.since_resum += 1;
        if self.since_resum >= self.window {
            // Recompute exactly once per window so rounding cannot accumulate over a long stream.
            self.sum = self.scores.iter().sum();
            self.sum_sq = self.scores.iter().map(|v| v * v).sum();
            self.since_resum = 0;
        }
    }
}

impl Threshold for WindowedThreshold {
    fn flag(&mut self, score: f64) -> bool {
        let flagged = score > self.current();
        if score.is_finite() {
            self.push(score);
        }
        flagged
    }

    fn current(&self) -> f64 {
        if self.scores.len() < self.window {
            return f64::INFINITY;
        }
        let n = self.scores.len() as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        mean + self.k * var.sqrt()
    }
}

/// A streaming quantile threshold: a score is an anomaly when it is strictly above the `quantile` of the
/// last `window` scores (linear interpolation at rank `(n - 1) q`); nothing is flagged until `window.min(30)`
/// scores have been seen. As with [`WindowedThreshold`], a score is compared before it joins the window;
/// non-finite scores are compared but not kept.
///
/// The scores live in the rolling order-statistics engine shared with the models
/// ([`onad_core::rolling::RollingWindow`]: a sorted vector up to 4,096 scores, a treap beyond). It was called
/// `QuantileThreshold` until that name was left to the model `onad_models::QuantileThreshold`; its
/// serialized form is still the one that type wrote (the quantile, the window, the scores in arrival
/// order and sorted), so checkpoints holding one still load.
///
/// ```
/// use onad_pipeline::{RollingQuantileThreshold, Threshold};
/// let mut t = RollingQuantileThreshold::new(0.9, 100).unwrap();
/// for i in 0..100 {
///     t.flag(i as f64);
/// }
/// assert!((t.current() - 89.1).abs() < 1e-9);
/// assert!(t.flag(95.0));
/// ```
#[derive(Debug, Clone)]
pub struct RollingQuantileThreshold {
    quantile: f64,
    window: usize,
    scores: RollingWindow,
}

impl RollingQuantileThreshold {
    /// A threshold at `quantile` (in (0, 1)) of the last `window` scores.
    pub fn new(quantile: f64, window: usize) -> Result<Self, String> {
        if !(quantile > 0.0 && quantile < 1.0) {
            return Err(format!("the quantile must be in (0, 1), got {quantile}"));
        }
        if window == 0 {
            return Err("the threshold window must hold at least 1 score".into());
        }
        Ok(RollingQuantileThreshold { quantile, window, scores: RollingWindow::with_capacity(window) })
    }

    /// The quantile of recent scores that a score must exceed.
    pub fn quantile(&self) -> f64 {
        self.quantile
    }

    /// How many recent scores are kept.
    pub fn window(&self) -> usize {
        self.window
    }
}

/// Equal settings and equal recent scores (in arrival order).
impl PartialEq for RollingQuantileThreshold {
    fn eq(&self, other: &Self) -> bool {
        self.quantile == other.quantile && self.window == other.window && self.scores == other.scores
    }
}

impl Threshold for RollingQuantileThreshold {
    fn flag(&mut self, score: f64) -> bool {
        let flagged = score > self.current();
        self.scores.push_bounded(score, self.window);
        flagged
    }

    fn current(&self) -> f64 {
        let n = self.scores.len();
        if n < self.window.min(30) || n == 0 {
            return f64::INFINITY;
        }
        self.scores.quantile(self.quantile, Interpolation::Weighted).unwrap_or(f64::INFINITY)
    }
}

/// The serialized fields of [`RollingQuantileThreshold`]: those of the type it replaced, whose sorted copy
/// of the scores is written out for compatibility and checked when read back.
#[derive(Deserialize)]
#[serde(rename = "QuantileThreshold")]
struct QuantileThresholdFields {
    quantile: f64,
    window: usize,
    arrival: VecDeque<f64>,
    sorted: Vec<f64>,
}

/// The scores in ascending order, written as a sequence.
struct SortedScores<'a>(&'a RollingWindow);

impl Serialize for SortedScores<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.sorted())
    }
}

impl Serialize for RollingQuantileThreshold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("QuantileThreshold", 4)?;
        s.serialize_field("quantile", &self.quantile)?;
        s.serialize_field("window", &self.window)?;
        s.serialize_field("arrival", self.scores.values())?;
        s.serialize_field("sorted", &SortedScores(&self.scores))?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for RollingQuantileThreshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = QuantileThresholdFields::deserialize(deserializer)?;
        let mut t = RollingQuantileThreshold::new(f.quantile, f.window).map_err(D::Error::custom)?;
        if f.arrival.len() > f.window || f.arrival.iter().any(|v| !v.is_finite()) {
            return Err(D::Error::custom(format!(
                "a quantile threshold over {} scores holds {} scores, or one that is not finite",
                f.window,
                f.arrival.len()
            )));
        }
        t.scores = RollingWindow::from_values(f.arrival, f.window);
        if !t.scores.sorted().eq(f.sorted.iter().copied()) {
            return Err(D::Error::custom("a quantile threshold's sorted scores are not its scores, sorted"));
        }
        Ok(t)
    }
}

/// Any of the built-in thresholds, as one serializable type (checkpoints store the threshold's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnyThreshold {
    /// Flags nothing.
    None(NoThreshold),
    /// A fixed threshold.
    Fixed(FixedThreshold),
    /// The windowed adaptive threshold.
    Windowed(WindowedThreshold),
    /// The streaming quantile threshold.
    Quantile(RollingQuantileThreshold),
    /// A false-alarm rate on conformal scores (added last: checkpoints encode the variant by index).
    PValue(PValueThreshold),
}

impl Threshold for AnyThreshold {
    fn flag(&mut self, score: f64) -> bool {
        match self {
            AnyThreshold::None(t) => t.flag(score),
            AnyThreshold::Fixed(t) => t.flag(score),
            AnyThreshold::Windowed(t) => t.flag(score),
            AnyThreshold::Quantile(t) => t.flag(score),
            AnyThreshold::PValue(t) => t.flag(score),
        }
    }

    fn current(&self) -> f64 {
        match self {
            AnyThreshold::None(t) => t.current(),
            AnyThreshold::Fixed(t) => t.current(),
            AnyThreshold::Windowed(t) => t.current(),
            AnyThreshold::Quantile(t) => t.current(),
            AnyThreshold::PValue(t) => t.current(),
        }
    }
}

/// The text forms [`AnyThreshold`] parses, for error messages.
const THRESHOLD_FORMS: &str = "accepted: a number X (flag scores above X), adaptive[:WINDOW[:K]] (flag scores above the \
                               mean + K standard deviations of the last WINDOW scores; 1000 and 3 when left out), \
                               quantile:Q[:WINDOW] (flag scores above the Q quantile, 0 < Q < 1, of the last WINDOW \
                               scores; 1000 when left out), p:A (flag p-values at most A, 0 < A < 1, of a model \
                               behind --calibrate conformal), or none";

/// Why a threshold's text form was refused: the bad part, and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseThresholdError {
    message: String,
}

impl fmt::Display for ParseThresholdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseThresholdError {}

impl FromStr for AnyThreshold {
    type Err = ParseThresholdError;

    /// Parses the forms of `onad run --threshold` (surrounding spaces ignored): a number `X` (fixed:
    /// flag `score > X`; NaN is refused), `adaptive[:WINDOW[:K]]` (WINDOW 1000 and K 3 when left out),
    /// `quantile:Q[:WINDOW]` (WINDOW 1000 when left out), or `none`. The values are validated as the
    /// constructors do.
    ///
    /// ```
    /// use onad_pipeline::{AnyThreshold, FixedThreshold, RollingQuantileThreshold};
    /// let t: AnyThreshold = "quantile:0.99".parse().unwrap();
    /// assert_eq!(t, AnyThreshold::Quantile(RollingQuantileThreshold::new(0.99, 1000).unwrap()));
    /// assert_eq!(t.to_string(), "quantile:0.99:1000");
    /// assert_eq!("2.5".parse::<AnyThreshold>().unwrap(), AnyThreshold::Fixed(FixedThreshold(2.5)));
    /// let err = "adaptive:100:lots".parse::<AnyThreshold>().unwrap_err().to_string();
    /// assert!(err.contains("k 'lots' is not a number"), "{err}");
    /// ```
    fn from_str(text: &str) -> Result<AnyThreshold, ParseThresholdError> {
        let t = text.trim();
        let bad = |what: String| ParseThresholdError { message: format!("threshold '{t}': {what}; {THRESHOLD_FORMS}") };
        if t == "none" {
            return Ok(AnyThreshold::None(NoThreshold));
        }
        if let Ok(v) = t.parse::<f64>() {
            if v.is_nan() {
                return Err(bad("a fixed threshold must not be NaN".into()));
            }
            return Ok(AnyThreshold::Fixed(FixedThreshold(v)));
        }
        let mut parts = t.split(':');
        let kind = parts.next().unwrap_or_default();
        let window = |part: Option<&str>| match part {
            None => Ok(1000),
            Some(w) => w.parse::<usize>().map_err(|_| bad(format!("the window '{w}' is not a whole number"))),
        };
        let threshold = match kind {
            "quantile" => {
                let q = match parts.next() {
                    None => return Err(bad("quantile needs a value, for example quantile:0.99".into())),
                    Some(q) => q.parse::<f64>().map_err(|_| bad(format!("the quantile '{q}' is not a number")))?,
                };
                let window = window(parts.next())?;
                RollingQuantileThreshold::new(q, window).map(AnyThreshold::Quantile)
            }
            "p" => {
                let a = match parts.next() {
                    None => return Err(bad("p needs a false-alarm rate, for example p:0.001".into())),
                    Some(a) => a.parse::<f64>().map_err(|_| bad(format!("the rate '{a}' is not a number")))?,
                };
                PValueThreshold::new(a).map(AnyThreshold::PValue)
            }
            "adaptive" => {
                let window = window(parts.next())?;
                let k = match parts.next() {
                    None => 3.0,
                    Some(k) => k.parse::<f64>().map_err(|_| bad(format!("k '{k}' is not a number")))?,
                };
                WindowedThreshold::new(window, k).map(AnyThreshold::Windowed)
            }
            other => return Err(bad(format!("'{other}' is not a number, 'adaptive', 'quantile', 'p' or 'none'"))),
        };
        if let Some(extra) = parts.next() {
            let form = match kind {
                "quantile" => "quantile:Q:WINDOW",
                "p" => "p:A",
                _ => "adaptive:WINDOW:K",
            };
            return Err(bad(format!("'{extra}' is one part too many ({form} at most)")));
        }
        threshold.map_err(bad)
    }
}

impl fmt::Display for AnyThreshold {
    /// The text form of the threshold's settings (not of the scores it has seen), which [`FromStr`] reads
    /// back to an equal, fresh threshold: `none`, `X`, `adaptive:WINDOW:K` or `quantile:Q:WINDOW`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyThreshold::None(_) => f.write_str("none"),
            AnyThreshold::Fixed(t) => write!(f, "{}", t.0),
            AnyThreshold::Windowed(t) => write!(f, "adaptive:{}:{}", t.window, t.k),
            AnyThreshold::Quantile(t) => write!(f, "quantile:{}:{}", t.quantile, t.window),
            AnyThreshold::PValue(t) => write!(f, "p:{}", t.alpha),
        }
    }
}

impl AnyThreshold {
    /// What the threshold flags, in words, for summaries: `none`, `fixed: score > X`,
    /// `adaptive: mean + K std of the last WINDOW scores`, `quantile: above the Q quantile of the last WINDOW
    /// scores`.
    pub fn describe(&self) -> String {
        match self {
            AnyThreshold::None(_) => "none".into(),
            AnyThreshold::Fixed(t) => format!("fixed: score > {}", t.0),
            AnyThreshold::Windowed(t) => format!("adaptive: mean + {} std of the last {} scores", t.k, t.window),
            AnyThreshold::Quantile(t) => {
                format!("quantile: above the {} quantile of the last {} scores", t.quantile, t.window)
            }
            AnyThreshold::PValue(t) => format!("p-value <= {} (false-alarm rate)", t.alpha),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn false_alarm_rates_parse_print_and_flag() {
        let t: AnyThreshold = " p:0.001 ".parse().unwrap();
        assert_eq!(t, AnyThreshold::PValue(PValueThreshold::new(0.001).unwrap()));
        assert_eq!(t.to_string().parse::<AnyThreshold>().unwrap(), t);
        assert!(t.describe().contains("p-value <= 0.001"));
        for (text, part) in [
            ("p", "p needs a false-alarm rate"),
            ("p:often", "the rate 'often' is not a number"),
            ("p:0", "must be in (0, 1)"),
            ("p:1", "must be in (0, 1)"),
            ("p:0.1:3", "'3' is one part too many (p:A at most)"),
        ] {
            let e = text.parse::<AnyThreshold>().unwrap_err().to_string();
            assert!(e.contains(part) && e.contains("p:A"), "{text}: {e}");
        }
        // Scores 1 - k / (n + 1) of a window of n = 999: p <= 0.01 holds for k <= 10 exactly.
        let mut t = PValueThreshold::new(0.01).unwrap();
        let flagged: Vec<usize> = (1..=20).filter(|&k| t.flag(1.0 - k as f64 / 1000.0)).collect();
        assert_eq!(flagged, (1..=10).collect::<Vec<_>>());
        // A checkpoint of the older variants keeps its encoding: PValue is the last variant.
        let bytes =
            postcard::to_stdvec(&AnyThreshold::Quantile(RollingQuantileThreshold::new(0.9, 5).unwrap())).unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(postcard::to_stdvec(&AnyThreshold::PValue(t)).unwrap()[0], 4);
    }

    #[test]
    fn windowed_threshold_tracks_recent_scores_only() {
        let mut t = WindowedThreshold::new(100, 3.0).unwrap();
        for i in 0..10_000 {
            t.flag(1000.0 + (i % 10) as f64);
        }
        for i in 0..100 {
            t.flag((i % 10) as f64);
        }
        // Only the recent low scores count now: mean 4.5, std ~2.87.
        let c = t.current();
        assert!((c - (4.5 + 3.0 * 8.25f64.sqrt())).abs() < 1e-9, "{c}");
        assert!(t.flag(20.0));
        assert!(!t.flag(f64::NAN));
        assert!(WindowedThreshold::new(1, 2.0).is_err());
    }

    /// The streaming quantile threshold as it was before it moved onto the shared rolling window: its
    /// fields (the serialized layout checkpoints hold) and its algorithm, kept here as the reference.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct OldQuantileThreshold {
        quantile: f64,
        window: usize,
        arrival: VecDeque<f64>,
        sorted: Vec<f64>,
    }

    impl OldQuantileThreshold {
        fn new(quantile: f64, window: usize) -> Self {
            OldQuantileThreshold { quantile, window, arrival: VecDeque::new(), sorted: Vec::new() }
        }

        fn current(&self) -> f64 {
            let n = self.sorted.len();
            if n < self.window.min(30) || n == 0 {
                return f64::INFINITY;
            }
            let rank = (n - 1) as f64 * self.quantile;
            let lo = rank.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let f = rank - lo as f64;
            (1.0 - f) * self.sorted[lo] + f * self.sorted[hi]
        }

        fn flag(&mut self, score: f64) -> bool {
            let flagged = score > self.current();
            if score.is_finite() {
                if self.arrival.len() == self.window
                    && let Some(old) = self.arrival.pop_front()
                {
                    let i = self.sorted.partition_point(|v| *v < old);
                    self.sorted.remove(i);
                }
                self.arrival.push_back(score);
                let i = self.sorted.partition_point(|v| *v < score);
                self.sorted.insert(i, score);
            }
            flagged
        }
    }

    /// `AnyThreshold` as it was declared before (variant order is the postcard tag).
    #[derive(Serialize)]
    enum OldAnyThreshold {
        #[allow(dead_code)]
        None(NoThreshold),
        #[allow(dead_code)]
        Fixed(FixedThreshold),
        #[allow(dead_code)]
        Windowed(WindowedThreshold),
        Quantile(OldQuantileThreshold),
    }

    fn scores(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                match i % 23 {
                    5 => f64::NAN,
                    11 => f64::INFINITY,
                    17 => f64::NEG_INFINITY,
                    _ => ((x >> 33) % 5000) as f64 / 37.0 - 20.0,
                }
            })
            .collect()
    }

    #[test]
    fn the_rolling_quantile_threshold_flags_as_before_bit_for_bit() {
        for (q, window) in [(0.9, 1), (0.5, 7), (0.99, 30), (0.95, 1000), (0.75, 5000)] {
            let mut new = RollingQuantileThreshold::new(q, window).unwrap();
            let mut old = OldQuantileThreshold::new(q, window);
            for (i, s) in scores(12_000, window as u64).into_iter().enumerate() {
                assert_eq!(new.current().to_bits(), old.current().to_bits(), "q {q} window {window} score {i}");
                assert_eq!(new.flag(s), old.flag(s), "q {q} window {window} score {i}");
            }
            assert_eq!(new.scores.values(), &old.arrival);
        }
    }

    /// The postcard bytes of `AnyThreshold::Quantile` (0.9 over 6 scores, fed eight scores and a NaN), as
    /// the type before the rename wrote them.
    const QUANTILE_V1: &str = concat!(
        "03cdccccccccccec3f06060000000000000840000000000000f03f000000000000f83f000000000000000000",
        "0000000000e03f0000000000000840060000000000000000000000000000e03f000000000000f03f00000000",
        "0000f83f00000000000008400000000000000840",
    );

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn checkpointed_quantile_thresholds_keep_their_layout() {
        let feed = [1.5, 0.5, 3.0, 1.0, 1.5, 0.0, 0.5, 3.0, f64::NAN];
        let mut old = OldQuantileThreshold::new(0.9, 6);
        let mut new = RollingQuantileThreshold::new(0.9, 6).unwrap();
        for s in &feed {
            old.flag(*s);
            new.flag(*s);
        }
        let old_bytes = postcard::to_stdvec(&OldAnyThreshold::Quantile(old.clone())).unwrap();
        let hex: String = old_bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, QUANTILE_V1);
        let new_any = AnyThreshold::Quantile(new.clone());
        assert_eq!(postcard::to_stdvec(&new_any).unwrap(), old_bytes, "the serialized layout changed");

        // The old bytes decode into a threshold that goes on exactly as the old one would have.
        let AnyThreshold::Quantile(mut restored) = postcard::from_bytes::<AnyThreshold>(&unhex(QUANTILE_V1)).unwrap()
        else {
            panic!("not the quantile variant");
        };
        assert_eq!(restored, new);
        for s in scores(200, 9) {
            assert_eq!(restored.flag(s), old.flag(s));
            assert_eq!(restored.current().to_bits(), old.current().to_bits());
        }
        // The other variants keep their tags and fields.
        for (t, bytes) in [
            (AnyThreshold::None(NoThreshold), vec![0]),
            (AnyThreshold::Fixed(FixedThreshold(2.5)), vec![1, 0, 0, 0, 0, 0, 0, 4, 0x40]),
            (AnyThreshold::Windowed(WindowedThreshold::new(3, 2.0).unwrap()), {
                let mut b = vec![2, 3, 0, 0, 0, 0, 0, 0, 0, 0x40, 0];
                b.extend([0; 16]);
                b.push(0);
                b
            }),
        ] {
            assert_eq!(postcard::to_stdvec(&t).unwrap(), bytes, "{t:?}");
            assert_eq!(postcard::from_bytes::<AnyThreshold>(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn damaged_quantile_thresholds_are_refused_when_decoded() {
        let decode = |t: &OldQuantileThreshold| {
            postcard::from_bytes::<AnyThreshold>(&postcard::to_stdvec(&OldAnyThreshold::Quantile(t.clone())).unwrap())
        };
        let mut good = OldQuantileThreshold::new(0.5, 4);
        for s in [3.0, 1.0, 2.0] {
            good.flag(s);
        }
        assert!(decode(&good).is_ok());
        let mut unsorted = good.clone();
        unsorted.sorted.swap(0, 2);
        let mut too_many = good.clone();
        too_many.window = 2;
        let mut short = good.clone();
        short.sorted.pop();
        let mut infinite = good.clone();
        infinite.arrival[1] = f64::INFINITY;
        let mut quantile = good.clone();
        quantile.quantile = 1.0;
        for damaged in [unsorted, too_many, short, infinite, quantile] {
            assert!(decode(&damaged).is_err(), "{damaged:?}");
        }
    }

    #[test]
    fn thresholds_parse_every_cli_form_and_print_one_that_parses_back() {
        let fresh = |t: &str| t.parse::<AnyThreshold>().unwrap();
        let cases = [
            ("none", AnyThreshold::None(NoThreshold)),
            (" 0.75 ", AnyThreshold::Fixed(FixedThreshold(0.75))),
            ("-3", AnyThreshold::Fixed(FixedThreshold(-3.0))),
            ("1e-7", AnyThreshold::Fixed(FixedThreshold(1e-7))),
            ("inf", AnyThreshold::Fixed(FixedThreshold(f64::INFINITY))),
            ("adaptive", AnyThreshold::Windowed(WindowedThreshold::new(1000, 3.0).unwrap())),
            ("adaptive:50", AnyThreshold::Windowed(WindowedThreshold::new(50, 3.0).unwrap())),
            ("adaptive:50:2.5", AnyThreshold::Windowed(WindowedThreshold::new(50, 2.5).unwrap())),
            ("adaptive:50:-1", AnyThreshold::Windowed(WindowedThreshold::new(50, -1.0).unwrap())),
            ("quantile:0.99", AnyThreshold::Quantile(RollingQuantileThreshold::new(0.99, 1000).unwrap())),
            ("quantile:0.5:10", AnyThreshold::Quantile(RollingQuantileThreshold::new(0.5, 10).unwrap())),
        ];
        for (text, threshold) in cases {
            assert_eq!(fresh(text), threshold, "{text}");
            let printed = threshold.to_string();
            assert_eq!(fresh(&printed), threshold, "{text} printed as {printed}");
        }
        assert_eq!(fresh("adaptive").to_string(), "adaptive:1000:3");
        assert_eq!(fresh("quantile:0.99").to_string(), "quantile:0.99:1000");
        assert_eq!(fresh("1e-7").to_string(), "0.0000001");
        assert_eq!(fresh("2").describe(), "fixed: score > 2");
        assert_eq!(fresh("adaptive:10:2").describe(), "adaptive: mean + 2 std of the last 10 scores");
        assert_eq!(fresh("quantile:0.9:5").describe(), "quantile: above the 0.9 quantile of the last 5 scores");
        assert_eq!(fresh("none").describe(), "none");
        // Display shows the settings, not the scores seen: a used threshold prints as its fresh self.
        let mut used = fresh("quantile:0.5:10");
        for s in 0..40 {
            used.flag(f64::from(s));
        }
        assert_eq!(used.to_string(), "quantile:0.5:10");
    }

    #[test]
    fn threshold_errors_name_the_bad_part_and_list_the_forms() {
        for (text, part) in [
            ("", "'' is not a number, 'adaptive', 'quantile', 'p' or 'none'"),
            ("fixed:3", "'fixed' is not a number, 'adaptive', 'quantile', 'p' or 'none'"),
            ("None", "'None' is not a number"),
            ("NaN", "a fixed threshold must not be NaN"),
            ("quantile", "quantile needs a value"),
            ("quantile:high", "the quantile 'high' is not a number"),
            ("quantile:0.9:big", "the window 'big' is not a whole number"),
            ("quantile:0.9:10:2", "'2' is one part too many (quantile:Q:WINDOW at most)"),
            ("quantile:1", "the quantile must be in (0, 1), got 1"),
            ("quantile:0.9:0", "the threshold window must hold at least 1 score"),
            ("adaptive:", "the window '' is not a whole number"),
            ("adaptive:-4", "the window '-4' is not a whole number"),
            ("adaptive:100:lots", "k 'lots' is not a number"),
            ("adaptive:100:3:1", "'1' is one part too many (adaptive:WINDOW:K at most)"),
            ("adaptive:1", "the threshold window must hold at least 2 scores, got 1"),
            ("adaptive:100:inf", "the threshold's k must be finite, got inf"),
        ] {
            let err = text.parse::<AnyThreshold>().unwrap_err().to_string();
            assert!(err.contains(part), "{text}: {err}");
            assert!(err.starts_with(&format!("threshold '{text}': ")), "{text}: {err}");
            for form in ["a number X", "adaptive[:WINDOW[:K]]", "quantile:Q[:WINDOW]", "or none"] {
                assert!(err.contains(form), "{text}: {err}");
            }
        }
    }
}
