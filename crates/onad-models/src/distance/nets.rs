//! NETS-style cell-neighbourhood detector: the share of `k` neighbours a point lacks within `radius`
//! among the last `window_size` points (aberrant's `CellNeighborhoodDetector`).

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::radius::{RadiusModel, RadiusSettings};
use crate::registry::{Describe, finite_score};

/// Hyperparameters of [`CellNeighborhoodDetector`] (aberrant 1.3.0 `CellNeighborhoodDetector` names and
/// defaults; its `predict_threshold` is left out, see the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellNeighborhoodDetectorParams {
    /// Neighbours within `radius` at which the score reaches 0, `>= 1`.
    pub k: usize,
    /// Euclidean neighbourhood radius and grid cell width, in the data's units; finite, `> 0`.
    pub radius: f64,
    /// Points held (the window slides point by point), `> k`.
    pub window_size: usize,
    /// Learned points per warm-up slide, `>= 1`.
    pub slide_size: usize,
    /// Compatibility only (aberrant's too): checked to be `>= 1` and at most the feature count; no
    /// subspace index is built.
    pub subspace_dim: Option<usize>,
    /// A column holding event time, left out of the features (aberrant's `time_key`); `None`: every
    /// column is a feature.
    pub time_key: Option<String>,
    /// Complete slides learned before scores are computed, `>= 1`.
    pub warm_up_slides: usize,
    /// Compatibility only (aberrant's too): the model draws nothing.
    pub seed: Option<u64>,
    /// Added to `radius^2` in the neighbour test; finite, `> 0`.
    pub eps: f64,
}

impl Default for CellNeighborhoodDetectorParams {
    fn default() -> Self {
        CellNeighborhoodDetectorParams {
            k: 50,
            radius: 1.5,
            window_size: 10_000,
            slide_size: 500,
            subspace_dim: None,
            time_key: None,
            warm_up_slides: 1,
            seed: None,
            eps: 1e-9,
        }
    }
}

/// Scores a point by how few of `k` neighbours it has within `radius` among the last `window_size`
/// points, counted exactly over a grid of cells (registered as `nets`; aberrant 1.3.0's
/// `CellNeighborhoodDetector`).
///
/// Reference: Yoon, Lee & Lee 2019, "NETS: Extremely Fast Outlier Detection from a Data Stream via
/// Set-Based Processing", PVLDB 12(11). NETS finds distance-based outliers (points with fewer than `k`
/// neighbours within `R`) in a sliding window by grouping points into cells of a grid and updating cell
/// counts by the net effect of each slide; a cell's neighbourhood bounds decide many points at once.
/// aberrant keeps the cell grid for an exact per-query count and returns a continuous score instead of
/// the window's outlier set, and so does this model.
///
/// # Algorithm
/// - The window holds the last `window_size` learned points; each learn past that drops the oldest point
///   (point by point, as aberrant; `slide_size` only measures the warm-up). Points sit in cells of width
///   `radius` per axis (exact floors), each cell holding its points and their count.
/// - Score of `x`: `1 - min(n / k, 1)`, `n` the window points `p` with `sum_j (p_j - x_j)^2 <= radius^2 +
///   eps`. Only cells within aberrant's span (2 cells per axis at the defaults) can hold them: they are
///   looked up by offset when the `5^d` offsets are at most the occupied cells (and 20,000), else every
///   occupied cell is tested; counting stops at `k`. The count is exact, so scores equal aberrant's on the
///   same rows up to the last bit of a squared distance that lands on the limit (numpy's dot sums in
///   another order).
/// - Warm-up: 0.0 until `warm_up_slides * slide_size` points were learned and the window holds more than
///   `k` (so effectively `max(warm_up_slides * slide_size, k + 1)`).
///
/// The radius is in the data's units, as in aberrant: on raw data with wide columns the default 1.5 makes
/// every point a loner (score 1.0); standardize the columns (`standard_scaler` in front) or choose a radius
/// in the data's units. The engine is shared with `stare` (`distance/radius.rs`).
///
/// Missing values: a row with a missing or infinite value is not learned (and does not count toward the
/// warm-up). A missing query feature is left out of the distance; a query with an infinite value has no
/// neighbour; a query with no feature present scores 0.0.
///
/// # Cost
/// `learn_one`: O(d) plus one hash lookup. `score_one`: O(min(5^d, occupied cells) + visited points * d)
/// in few dimensions; O(occupied cells * d + visited points * d) otherwise (the cell test and each
/// distance stop early), at most O(window_size * d), and less as `k` neighbours are found sooner.
/// Memory: `window_size * (d + 2)` numbers and at most `window_size` cells of `d` coordinates.
///
/// # Deviations from aberrant
/// - `predict_threshold` / `predict_one` are left out: a classification helper, which onad's thresholds
///   provide. `subspace_dim` and `seed` are compatibility-only, as in aberrant (no subspace index, no
///   randomness).
/// - `time_key` only removes its column: aberrant also checks that its values do not decrease, which a
///   model that cannot fail on data does not do. Missing and infinite values are handled as above
///   (aberrant rejects them). Features in schema order (aberrant sorts them by name; only the order of a
///   squared distance's sum differs).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::CellNeighborhoodDetectorParams;
/// let params = CellNeighborhoodDetectorParams { k: 10, window_size: 200, slide_size: 50, ..Default::default() };
/// let mut model = params.build(&Schema::shared(["x", "y"]).unwrap()).unwrap();
/// for i in 0..300 {
///     let t = i as f64 * 0.1;
///     model.learn_one(&[t.cos(), t.sin()]); // points on the unit circle
/// }
/// assert_eq!(model.score_one(&[0.0, 1.0]), 0.0); // at least k neighbours within 1.5
/// assert_eq!(model.score_one(&[5.0, 5.0]), 1.0); // none
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellNeighborhoodDetector {
    model: RadiusModel,
}

impl DetectorParams for CellNeighborhoodDetectorParams {
    type Model = CellNeighborhoodDetector;
    fn build(&self, schema: &SchemaRef) -> Result<CellNeighborhoodDetector, ParamError> {
        let settings =
            RadiusSettings::new(self.k, self.radius, self.window_size, self.slide_size, self.warm_up_slides, self.eps)?;
        let (model, d) = RadiusModel::build(settings, schema, self.time_key.as_deref(), "nets")?;
        match self.subspace_dim {
            Some(0) => return Err(ParamError::invalid("subspace_dim", "must be at least 1 or None, got 0")),
            Some(s) if s > d => {
                return Err(ParamError::invalid(
                    "subspace_dim",
                    format!("must not exceed the number of features ({d}), got {s}"),
                ));
            }
            _ => {}
        }
        Ok(CellNeighborhoodDetector { model })
    }
}

impl Detector for CellNeighborhoodDetector {
    fn learn_one(&mut self, x: &[f64]) {
        self.model.learn(x);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        finite_score(self.model.score(x))
    }
}

impl Describe for CellNeighborhoodDetectorParams {
    const REFERENCE: &'static str = "Yoon, Lee & Lee 2019, NETS: Extremely Fast Outlier Detection from a Data Stream via Set-Based Processing (PVLDB 12)";
    const SUMMARY: &'static str =
        "NETS cell grid: 1 - min(#neighbours within radius / k, 1) over the last window_size points, counted exactly";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "k", ty: "int >= 1", required: false, help: "neighbours at which the score reaches 0 (50)" },
        ParamDoc {
            name: "radius",
            ty: "float > 0",
            required: false,
            help: "neighbourhood radius and cell width, in data units (1.5)",
        },
        ParamDoc { name: "window_size", ty: "int > k", required: false, help: "points held (10000)" },
        ParamDoc { name: "slide_size", ty: "int >= 1", required: false, help: "points per warm-up slide (500)" },
        ParamDoc {
            name: "subspace_dim",
            ty: "int in [1, d] or none",
            required: false,
            help: "compatibility only, checked against the feature count",
        },
        ParamDoc {
            name: "time_key",
            ty: "column name or none",
            required: false,
            help: "event-time column left out of the features",
        },
        ParamDoc {
            name: "warm_up_slides",
            ty: "int >= 1",
            required: false,
            help: "slides learned before scoring; 0.0 until then (1)",
        },
        ParamDoc { name: "seed", ty: "int or none", required: false, help: "compatibility only: nothing is drawn" },
        ParamDoc { name: "eps", ty: "float > 0", required: false, help: "added to radius^2 in the test (1e-9)" },
    ];
    fn example() -> Self {
        // Small enough that the conformance streams get past the warm-up.
        CellNeighborhoodDetectorParams { k: 10, window_size: 300, slide_size: 50, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn params() -> CellNeighborhoodDetectorParams {
        CellNeighborhoodDetectorParams { k: 4, radius: 1.0, window_size: 6, slide_size: 5, ..Default::default() }
    }

    #[test]
    fn hand_checked_counts_warm_up_and_window() {
        let mut m = params().build(&Schema::numbered("f", 1)).unwrap();
        for v in [0.0, 0.5, 1.0, 1.5] {
            m.learn_one(&[v]);
            assert_eq!(m.score_one(&[10.0]), 0.0, "warming up");
        }
        m.learn_one(&[2.0]);
        // 5 learned = warm_up_slides * slide_size, window 5 > k. Within 1 of 0.2: 0, 0.5, 1.0: 3 of 4.
        assert_eq!(m.score_one(&[0.2]), 1.0 - 3.0 / 4.0);
        // Exactly at the radius counts: 1.0 has 0, 0.5, 1, 1.5, 2 within 1 (capped at k).
        assert_eq!(m.score_one(&[1.0]), 0.0);
        assert_eq!(m.score_one(&[100.0]), 1.0);
        m.learn_one(&[3.0]);
        m.learn_one(&[3.0]); // the window of 6 drops 0.0
        assert_eq!(m.score_one(&[-0.5]), 1.0 - 1.0 / 4.0); // only 0.5 left within 1
        assert_eq!(m.score_one(&[-0.5 - 1e-6]), 1.0, "just beyond the radius");
    }

    #[test]
    fn isolated_point_scores_above_inliers() {
        let schema = Schema::numbered("f", 3);
        let mut m = CellNeighborhoodDetectorParams { window_size: 1000, ..Default::default() }.build(&schema).unwrap();
        for i in 0..1200 {
            let v = (i % 10) as f64 * 0.2;
            m.learn_one(&[v, 1.0 - v, (i % 3) as f64 * 0.3]);
        }
        assert_eq!(m.score_one(&[1.0, 0.0, 0.3]), 0.0);
        assert_eq!(m.score_one(&[9.0, -9.0, 9.0]), 1.0);
    }

    #[test]
    fn time_key_is_left_out_and_non_finite_rows_are_not_learned() {
        let schema = Schema::shared(["t", "x"]).unwrap();
        let mut m = CellNeighborhoodDetectorParams { time_key: Some("t".into()), ..params() }.build(&schema).unwrap();
        for i in 0..5 {
            m.learn_one(&[1e9 * i as f64, 0.0]);
        }
        m.learn_one(&[0.0, f64::NAN]);
        m.learn_one(&[0.0, f64::INFINITY]);
        // Five points at x = 0 whatever their times: k of them within the radius.
        assert_eq!(m.score_one(&[-5e9, 0.5]), 0.0);
        assert_eq!(m.score_one(&[0.0, f64::INFINITY]), 1.0);
        assert_eq!(m.score_one(&[0.0, f64::NAN]), 0.0);
    }

    #[test]
    fn invalid_parameters_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        assert!(params().build(&schema).is_ok());
        let cases = [
            (CellNeighborhoodDetectorParams { k: 0, ..params() }, "'k'"),
            (CellNeighborhoodDetectorParams { radius: 0.0, ..params() }, "'radius'"),
            (CellNeighborhoodDetectorParams { radius: f64::NAN, ..params() }, "'radius'"),
            (CellNeighborhoodDetectorParams { radius: f64::INFINITY, ..params() }, "'radius'"),
            (CellNeighborhoodDetectorParams { window_size: 4, ..params() }, "'window_size'"),
            (CellNeighborhoodDetectorParams { slide_size: 0, ..params() }, "'slide_size'"),
            (CellNeighborhoodDetectorParams { warm_up_slides: 0, ..params() }, "'warm_up_slides'"),
            (CellNeighborhoodDetectorParams { eps: 0.0, ..params() }, "'eps'"),
            (CellNeighborhoodDetectorParams { subspace_dim: Some(0), ..params() }, "'subspace_dim'"),
            (CellNeighborhoodDetectorParams { subspace_dim: Some(3), ..params() }, "'subspace_dim'"),
            (CellNeighborhoodDetectorParams { time_key: Some("nope".into()), ..params() }, "time_key"),
        ];
        for (p, name) in cases {
            let err = p.build(&schema).unwrap_err().to_string();
            assert!(err.contains(name), "{p:?}: {err}");
        }
        let one = Schema::shared(["t"]).unwrap();
        assert!(CellNeighborhoodDetectorParams { time_key: Some("t".into()), ..params() }.build(&one).is_err());
        assert!(CellNeighborhoodDetectorParams { subspace_dim: Some(2), ..params() }.build(&schema).is_ok());
    }
}
