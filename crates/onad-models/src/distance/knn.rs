//! KNN: the mean distance from a point to its `k` nearest neighbours among the last `window_size` points
//! learned (Python onad's `KNN` over its `FaissSimilaritySearchEngine`).
//!
//! The window is a ring of columns: one vector per feature, slot `i` of every vector holding one point, so
//! a learn overwrites one slot (O(d)) and a score is an exact scan that the compiler vectorizes feature by
//! feature, then a linear-time selection of the `k` smallest distances. Nothing is rebuilt per event.

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};
use crate::stat::window_size;

/// Which mean distance [`KNN`] scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnnDistance {
    /// The mean of the squared Euclidean distances: what onad 0.3.0 returns (FAISS's `IndexFlatL2`
    /// output, averaged). The default.
    #[default]
    Squared,
    /// The mean of the Euclidean distances: what aberrant 1.3.0 returns (the square roots, averaged).
    Euclidean,
}

/// Hyperparameters of [`KNN`]: onad's `k` and its engine's `window_size` and `warm_up`, flat. onad has no
/// defaults for them; all three are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KNNParams {
    /// Number of nearest neighbours averaged (required, `1 <= k <= window_size`).
    pub k: Option<usize>,
    /// Number of recent points searched (required).
    pub window_size: Option<usize>,
    /// Points the window must hold before scores are computed; 0.0 until then (required,
    /// `1 <= warm_up <= window_size`).
    pub warm_up: Option<usize>,
    /// `squared` (onad, the default) or `euclidean` (aberrant).
    pub distance: KnnDistance,
}

impl Default for KNNParams {
    fn default() -> Self {
        KNNParams { k: None, window_size: None, warm_up: None, distance: KnnDistance::Squared }
    }
}

/// Scores a point by its mean distance to the `k` nearest of the last `window_size` points learned
/// (Python onad `KNN(k, FaissSimilaritySearchEngine(window_size, warm_up))`).
///
/// Reference: the k-nearest-neighbour distance score of Ramaswamy, Rastogi and Shim, "Efficient algorithms
/// for mining outliers from large data sets" (SIGMOD 2000), averaged over the `k` neighbours as in Angiulli
/// and Pizzuti (PKDD 2002), over a sliding window. With `N_k(x)` the `k` window points nearest to `x` and
/// `d(x, p)^2 = sum_j (x_j - p_j)^2`:
///
/// - `distance = "squared"` (default, onad): `score = (1/k) sum_{p in N_k(x)} d(x, p)^2`;
/// - `distance = "euclidean"` (aberrant): `score = (1/k) sum_{p in N_k(x)} d(x, p)`.
///
/// The score is 0.0 while the window holds fewer than `warm_up` points. Scoring does not add the point:
/// in the score-then-learn loop it is not its own neighbour, in learn-then-score it is (at distance 0).
/// Ties between neighbours do not change the score (tied distances are equal). Raw, unscaled input
/// works, but every feature counts in its own units, so a feature with a wide range dominates; put a
/// scaler in front when the units differ.
///
/// Cost: `learn_one` O(d); `score_one` O(n d) for the scan plus O(n) on average for the selection (`n`
/// points held, at most `window_size`); memory `window_size * d` numbers plus a per-thread scratch of `n`.
/// A tree index (a k-d or vantage-point tree with deletions) might pay for large windows in few
/// dimensions; there is none, since the scan is over 150 times onad's speed at every window and feature
/// count measured (`docs/benchmarks.md`). The batch methods are the one-row ones: each row's search sees
/// the window its predecessors left.
///
/// Missing values: a point with a missing or infinite value is not learned. A missing feature of a
/// query is left out of every distance, and the squared distances over the `m` features present are
/// scaled by `d / m` (scikit-learn's `nan_euclidean_distances`); a query with no feature present scores
/// 0.0. An infinite query value is infinitely far from every point: the score is the largest finite
/// number.
///
/// Deviations from onad 0.3.0: distances are computed in f64, exactly on integer data such as SHUTTLE
/// (onad's FAISS index holds float32, so its scores carry float32 rounding: up to 2.8e-7 relative there);
/// while the window holds at least `warm_up` but fewer than `k` points (only when `warm_up < k`) the score
/// is the mean over every point held (onad raises `ValueError`); `k > window_size` is refused when the
/// model is built (onad raises on every score). onad fills a missing feature with 0.0.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::KNNParams;
/// let params = KNNParams { k: Some(5), window_size: Some(200), warm_up: Some(20), ..Default::default() };
/// let mut m = params.build(&Schema::shared(["x", "y"]).unwrap()).unwrap();
/// assert_eq!(m.score_one(&[0.0, 0.0]), 0.0); // still warming up
/// for i in 0..200 {
///     let t = i as f64 * 0.1;
///     m.learn_one(&[t.cos(), t.sin()]); // points on the unit circle
/// }
/// let on = m.score_one(&[0.0, 1.0]);
/// let off = m.score_one(&[3.0, 3.0]);
/// assert!(off > 100.0 * on);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)] // the Python class name, which the registry reports
pub struct KNN {
    k: usize,
    window_size: usize,
    warm_up: usize,
    distance: KnnDistance,
    /// One vector per feature; slot `i` of every vector is one point.
    columns: Vec<Vec<f64>>,
    /// Points held.
    len: usize,
    /// Once the window is full: the slot of the oldest point, the next one replaced.
    head: usize,
}

impl DetectorParams for KNNParams {
    type Model = KNN;
    fn build(&self, schema: &SchemaRef) -> Result<KNN, ParamError> {
        let w = window_size(self.window_size)?;
        let k = match self.k {
            None => return Err(ParamError::Missing("k")),
            Some(0) => return Err(ParamError::invalid("k", "must be at least 1, got 0")),
            Some(k) if k > w => {
                return Err(ParamError::invalid("k", format!("must not exceed window_size ({w}), got {k}")));
            }
            Some(k) => k,
        };
        let warm_up = match self.warm_up {
            None => return Err(ParamError::Missing("warm_up")),
            Some(0) => return Err(ParamError::invalid("warm_up", "must be at least 1, got 0")),
            Some(u) if u > w => {
                return Err(ParamError::invalid("warm_up", format!("must not exceed window_size ({w}), got {u}")));
            }
            Some(u) => u,
        };
        if schema.is_empty() {
            return Err(ParamError::Schema("knn needs at least one feature".into()));
        }
        let reserve = w.min(1024);
        Ok(KNN {
            k,
            window_size: w,
            warm_up,
            distance: self.distance,
            columns: (0..schema.len()).map(|_| Vec::with_capacity(reserve)).collect(),
            len: 0,
            head: 0,
        })
    }
}

thread_local! {
    /// Squared distances of one query to every point held; reused so that scoring does not allocate.
    static DISTANCES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl KNN {
    /// The score of `x` against the points held (`self.len >= 1`, `present >= 1` features of `x` not NaN).
    fn search(&self, x: &[f64], present: usize, acc: &mut Vec<f64>) -> f64 {
        let n = self.len;
        acc.clear();
        acc.resize(n, 0.0);
        squared_distances(&self.columns, x, acc);
        // The k smallest, in linear time on average. Distances are never NaN (the points are finite and
        // the query's missing features are left out) nor negative, and non-negative doubles order as
        // their bit patterns do: integer comparisons.
        let k = self.k.min(n);
        if k < n {
            acc.select_nth_unstable_by_key(k - 1, |v| v.to_bits());
        }
        let nearest = &acc[..k];
        let d = self.columns.len();
        let mean = match self.distance {
            KnnDistance::Squared => nearest.iter().sum::<f64>() / k as f64,
            KnnDistance::Euclidean => nearest.iter().map(|s| s.sqrt()).sum::<f64>() / k as f64,
        };
        if present == d {
            mean
        } else {
            let scale = d as f64 / present as f64;
            match self.distance {
                KnnDistance::Squared => mean * scale,
                KnnDistance::Euclidean => mean * scale.sqrt(),
            }
        }
    }
}

/// Adds to `acc[i]` the squared distance of `x` to point `i`, feature by feature in order, leaving out the
/// features missing from `x`. Four features per pass over `acc` (the sums keep their order, so the result
/// is the same as one feature per pass); every inner loop is elementwise, so it vectorizes.
fn squared_distances(columns: &[Vec<f64>], x: &[f64], acc: &mut [f64]) {
    let n = acc.len();
    let mut present = columns.iter().zip(x).filter(|(_, q)| !q.is_nan()).map(|(c, &q)| (&c[..n], q));
    loop {
        match (present.next(), present.next(), present.next(), present.next()) {
            (Some((c0, q0)), Some((c1, q1)), Some((c2, q2)), Some((c3, q3))) => {
                for i in 0..n {
                    let (t0, t1, t2, t3) = (c0[i] - q0, c1[i] - q1, c2[i] - q2, c3[i] - q3);
                    acc[i] = (((acc[i] + t0 * t0) + t1 * t1) + t2 * t2) + t3 * t3;
                }
            }
            (Some((c0, q0)), Some((c1, q1)), Some((c2, q2)), None) => {
                for i in 0..n {
                    let (t0, t1, t2) = (c0[i] - q0, c1[i] - q1, c2[i] - q2);
                    acc[i] = ((acc[i] + t0 * t0) + t1 * t1) + t2 * t2;
                }
                return;
            }
            (Some((c0, q0)), Some((c1, q1)), None, _) => {
                for i in 0..n {
                    let (t0, t1) = (c0[i] - q0, c1[i] - q1);
                    acc[i] = (acc[i] + t0 * t0) + t1 * t1;
                }
                return;
            }
            (Some((c0, q0)), None, _, _) => {
                for i in 0..n {
                    let t0 = c0[i] - q0;
                    acc[i] += t0 * t0;
                }
                return;
            }
            _ => return,
        }
    }
}

impl Detector for KNN {
    fn learn_one(&mut self, x: &[f64]) {
        if x.iter().any(|v| !v.is_finite()) {
            return;
        }
        if self.len < self.window_size {
            for (column, &v) in self.columns.iter_mut().zip(x) {
                column.push(v);
            }
            self.len += 1;
        } else {
            for (column, &v) in self.columns.iter_mut().zip(x) {
                column[self.head] = v;
            }
            self.head = (self.head + 1) % self.window_size;
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.len < self.warm_up {
            return 0.0;
        }
        let present = x.iter().filter(|v| !v.is_nan()).count();
        if present == 0 {
            return 0.0;
        }
        let score = DISTANCES.with(|cell| match cell.try_borrow_mut() {
            Ok(mut acc) => self.search(x, present, &mut acc),
            Err(_) => self.search(x, present, &mut Vec::new()),
        });
        finite_score(score)
    }
}

impl Describe for KNNParams {
    const SUMMARY: &'static str = "mean (squared) distance to the k nearest of the last window_size points";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "k", ty: "int in [1, window_size]", required: true, help: "nearest neighbours averaged" },
        ParamDoc { name: "window_size", ty: "int >= 1", required: true, help: "number of recent points searched" },
        ParamDoc {
            name: "warm_up",
            ty: "int in [1, window_size]",
            required: true,
            help: "points held before scoring; 0.0 until then",
        },
        ParamDoc {
            name: "distance",
            ty: "squared | euclidean",
            required: false,
            help: "mean squared distance (onad, default) or mean Euclidean distance (aberrant)",
        },
    ];
    fn example() -> Self {
        // onad's example configuration (k = 55 over 250 points), warmed up to k as aberrant requires.
        KNNParams { k: Some(55), window_size: Some(250), warm_up: Some(55), distance: KnnDistance::Squared }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(k: usize, w: usize, warm_up: usize, distance: KnnDistance, d: usize) -> KNN {
        let schema = Schema::numbered("f", d);
        KNNParams { k: Some(k), window_size: Some(w), warm_up: Some(warm_up), distance }.build(&schema).unwrap()
    }

    /// Sorts every distance to the last `w` points and averages the `k` smallest; features missing from `x`
    /// are left out and the squared distances scaled by `d / present`.
    fn brute_force(points: &[Vec<f64>], w: usize, k: usize, distance: KnnDistance, x: &[f64]) -> f64 {
        let window = &points[points.len().saturating_sub(w)..];
        let present = x.iter().filter(|v| !v.is_nan()).count();
        let scale = x.len() as f64 / present as f64;
        let mut d: Vec<f64> = window
            .iter()
            .map(|p| scale * p.iter().zip(x).filter(|(_, b)| !b.is_nan()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
            .collect();
        d.sort_by(f64::total_cmp);
        let k = k.min(d.len());
        match distance {
            KnnDistance::Squared => d[..k].iter().sum::<f64>() / k as f64,
            KnnDistance::Euclidean => d[..k].iter().map(|v| v.sqrt()).sum::<f64>() / k as f64,
        }
    }

    /// A deterministic, irregular stream (integer-valued, so every sum is exact).
    fn point(i: usize, d: usize) -> Vec<f64> {
        (0..d).map(|j| ((i * 7919 + j * 104_729) % 97) as f64 - 48.0).collect()
    }

    #[test]
    fn scores_equal_a_sorted_brute_force_search_through_eviction() {
        // Feature counts around the four-feature passes of the scan; every third query misses a feature.
        for d in [1, 2, 3, 4, 5, 7, 9] {
            for distance in [KnnDistance::Squared, KnnDistance::Euclidean] {
                for (k, w, warm_up) in [(1, 1, 1), (3, 10, 3), (7, 20, 2), (20, 20, 20)] {
                    let mut m = build(k, w, warm_up, distance, d);
                    let mut seen = Vec::new();
                    for i in 0..120 {
                        let x = point(i, d);
                        let mut query = x.clone();
                        if d > 1 && i % 3 == 0 {
                            query[i % d] = f64::NAN;
                        }
                        let got = m.score_one(&query);
                        let want =
                            if seen.len().min(w) < warm_up { 0.0 } else { brute_force(&seen, w, k, distance, &query) };
                        assert!(
                            (got - want).abs() <= 1e-12 * want,
                            "d {d} {distance:?} k {k} w {w} row {i}: {got} vs {want}"
                        );
                        m.learn_one(&x);
                        seen.push(x);
                    }
                }
            }
        }
    }

    #[test]
    fn warm_up_window_and_self_distance() {
        let mut m = build(2, 3, 2, KnnDistance::Squared, 1);
        assert_eq!(m.score_one(&[5.0]), 0.0);
        m.learn_one(&[0.0]);
        assert_eq!(m.score_one(&[5.0]), 0.0, "one point is below warm_up");
        m.learn_one(&[1.0]);
        // neighbours 1 and 0 of 3: (4 + 9) / 2
        assert_eq!(m.score_one(&[3.0]), 6.5);
        // Learned first, the point is its own nearest neighbour.
        assert_eq!(m.learn_score_one(&[3.0]), (0.0 + 4.0) / 2.0);
        // Window of 3: learning 10 evicts 0, so the neighbours of -1 are 1 and 3.
        m.learn_one(&[10.0]);
        assert_eq!(m.score_one(&[-1.0]), (4.0 + 16.0) / 2.0);
        // Duplicated points tie; the mean does not depend on which is taken.
        let mut m = build(2, 5, 1, KnnDistance::Euclidean, 1);
        for v in [2.0, 2.0, 2.0, 7.0] {
            m.learn_one(&[v]);
        }
        assert_eq!(m.score_one(&[0.0]), 2.0);
    }

    #[test]
    fn fewer_points_than_k_average_every_point_held() {
        // warm_up < k: onad raises here; the mean is over what the window holds.
        let mut m = build(4, 10, 2, KnnDistance::Squared, 1);
        m.learn_one(&[1.0]);
        m.learn_one(&[3.0]);
        assert_eq!(m.score_one(&[0.0]), (1.0 + 9.0) / 2.0);
    }

    #[test]
    fn missing_query_features_are_left_out_and_rescaled() {
        for distance in [KnnDistance::Squared, KnnDistance::Euclidean] {
            let mut m = build(1, 4, 1, distance, 3);
            m.learn_one(&[0.0, 0.0, 0.0]);
            m.learn_one(&[10.0, 10.0, 10.0]);
            // f1 missing: over f0, f2 the nearest is the origin at squared distance 1 + 4, times 3/2.
            let got = m.score_one(&[1.0, f64::NAN, 2.0]);
            let want = match distance {
                KnnDistance::Squared => 5.0 * 1.5,
                KnnDistance::Euclidean => (5.0f64 * 1.5).sqrt(),
            };
            assert!((got - want).abs() < 1e-12, "{distance:?}: {got} vs {want}");
            assert_eq!(m.score_one(&[f64::NAN; 3]), 0.0);
            assert_eq!(m.score_one(&[f64::INFINITY, 0.0, 0.0]), f64::MAX);
            assert_eq!(m.score_one(&[1e300, -1e300, 0.0]), f64::MAX);
            // Points with a missing or infinite value are not learned.
            let before = m.clone();
            m.learn_one(&[f64::NAN, 1.0, 1.0]);
            m.learn_one(&[1.0, f64::NEG_INFINITY, 1.0]);
            assert_eq!(m, before);
        }
    }

    #[test]
    fn invalid_parameters_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        let ok = KNNParams { k: Some(3), window_size: Some(10), warm_up: Some(5), ..Default::default() };
        assert!(ok.build(&schema).is_ok());
        let cases = [
            (KNNParams { k: None, ..ok.clone() }, "'k'"),
            (KNNParams { k: Some(0), ..ok.clone() }, "'k'"),
            (KNNParams { k: Some(11), ..ok.clone() }, "'k'"),
            (KNNParams { window_size: None, ..ok.clone() }, "'window_size'"),
            (KNNParams { window_size: Some(0), ..ok.clone() }, "'window_size'"),
            (KNNParams { warm_up: None, ..ok.clone() }, "'warm_up'"),
            (KNNParams { warm_up: Some(0), ..ok.clone() }, "'warm_up'"),
            (KNNParams { warm_up: Some(11), ..ok.clone() }, "'warm_up'"),
        ];
        for (params, name) in cases {
            let err = params.build(&schema).unwrap_err().to_string();
            assert!(err.contains(name), "{params:?}: {err}");
        }
        let json: KNNParams = serde_json::from_str(r#"{"k": 2, "window_size": 4, "warm_up": 2}"#).unwrap();
        assert_eq!(json.distance, KnnDistance::Squared, "onad's squared distance is the default");
        let json: KNNParams = serde_json::from_str(r#"{"distance": "euclidean"}"#).unwrap();
        assert_eq!(json.distance, KnnDistance::Euclidean);
    }
}
