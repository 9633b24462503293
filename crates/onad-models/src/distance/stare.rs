//! STARE-style stationary-region neighbour detector: the share of `k` neighbours a point lacks within
//! `radius` among the last `window_size` points (aberrant's `StationaryRegionNeighborDetector`).

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::radius::{RadiusModel, RadiusSettings};
use crate::registry::{Describe, finite_score};

/// Hyperparameters of [`StationaryRegionNeighborDetector`] (aberrant 1.3.0
/// `StationaryRegionNeighborDetector` names and defaults; its `predict_threshold` is left out, see the
/// model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StationaryRegionNeighborDetectorParams {
    /// Neighbours within `radius` at which the score reaches 0, `>= 1`.
    pub k: usize,
    /// Euclidean neighbourhood radius and grid cell width, in the data's units; finite, `> 0`.
    pub radius: f64,
    /// Points held (the window slides point by point), `> k`.
    pub window_size: usize,
    /// Learned points per warm-up slide, `>= 1`.
    pub slide_size: usize,
    /// Compatibility only (aberrant's too), in `[0, 1]`: counts are exact, no region is skipped.
    pub skip_threshold: f64,
    /// A column holding event time, left out of the features (aberrant's `time_key`); `None`: every
    /// column is a feature.
    pub time_key: Option<String>,
    /// Complete slides learned before scores are computed, `>= 1`.
    pub warm_up_slides: usize,
    /// Added to `radius^2` in the neighbour test; finite, `> 0`.
    pub eps: f64,
}

impl Default for StationaryRegionNeighborDetectorParams {
    fn default() -> Self {
        StationaryRegionNeighborDetectorParams {
            k: 50,
            radius: 1.0,
            window_size: 2048,
            slide_size: 128,
            skip_threshold: 0.1,
            time_key: None,
            warm_up_slides: 1,
            eps: 1e-9,
        }
    }
}

/// Scores a point by how few of `k` neighbours it has within `radius` among the last `window_size`
/// points, counted exactly over a grid of cells (registered as `stare`; aberrant 1.3.0's
/// `StationaryRegionNeighborDetector`).
///
/// Reference: Yoon, Lee & Lee 2020, "Ultrafast Local Outlier Detection from a Data Stream with Stationary
/// Region Skipping", KDD 2020. STARE keeps a grid of cells over a sliding window, estimates local
/// densities (kernel densities) from cell counts, and skips the update of regions whose density barely
/// changed in a slide (`skip_threshold`) to report the top-n local outliers. aberrant keeps the cell grid
/// but replaces the densities by an exact radius-neighbour count per query and skips nothing; so does
/// this model, which shares its engine with `nets` (`distance/radius.rs`): the two differ only in their
/// defaults (a smaller window and radius here) and the compatibility parameters.
///
/// # Algorithm
/// - The window holds the last `window_size` learned points; each learn past that drops the oldest point
///   (point by point, as aberrant; `slide_size` only measures the warm-up). Points sit in cells of width
///   `radius` per axis (exact floors), each cell holding its points and their count.
/// - Score of `x`: `1 - min(n / k, 1)`, `n` the window points `p` with `sum_j (p_j - x_j)^2 <= radius^2 +
///   eps`, found in the cells within aberrant's span (2 cells per axis at the defaults): by offset when
///   the `5^d` offsets are at most the occupied cells (and 20,000), else by testing every occupied cell;
///   counting stops at `k`. The count is exact, so scores equal aberrant's on the same rows (up to the
///   last bit of a squared distance that lands on the limit).
/// - Warm-up: 0.0 until `warm_up_slides * slide_size` points were learned and the window holds more than
///   `k` (so effectively `max(warm_up_slides * slide_size, k + 1)`).
///
/// The radius is in the data's units, as in aberrant: on raw data with wide columns the default 1.0 makes
/// every point a loner (score 1.0); standardize the columns (`standard_scaler` in front) or choose a radius
/// in the data's units.
///
/// Missing values: a row with a missing or infinite value is not learned (and does not count toward the
/// warm-up). A missing query feature is left out of the distance; a query with an infinite value has no
/// neighbour; a query with no feature present scores 0.0.
///
/// # Cost
/// `learn_one`: O(d) plus one hash lookup. `score_one`: O(min(5^d, occupied cells) + visited points * d)
/// in few dimensions; O(occupied cells * d + visited points * d) otherwise, at most O(window_size * d).
/// Memory: `window_size * (d + 2)` numbers and at most `window_size` cells of `d` coordinates.
///
/// # Deviations
/// - From the paper, as in aberrant: no kernel density, no stationary-region skipping (`skip_threshold`
///   is compatibility-only), a per-query score instead of a top-n outlier set.
/// - From aberrant: `predict_threshold` / `predict_one` are left out (onad's thresholds classify).
///   `time_key` only removes its column (aberrant also checks it does not decrease, which a model that
///   cannot fail on data does not do). Missing and infinite values are handled as above (aberrant
///   rejects them). Features in schema order (aberrant sorts them by name).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::StationaryRegionNeighborDetectorParams;
/// let params = StationaryRegionNeighborDetectorParams { k: 10, window_size: 64, slide_size: 16, ..Default::default() };
/// let mut model = params.build(&Schema::shared(["cpu", "mem"]).unwrap()).unwrap();
/// for i in 0..100 {
///     model.learn_one(&[(i % 4) as f64 * 0.25, (i % 5) as f64 * 0.2]); // a 4 x 5 lattice
/// }
/// assert_eq!(model.score_one(&[0.5, 0.4]), 0.0); // 10 or more neighbours within 1.0
/// assert_eq!(model.score_one(&[3.0, 3.0]), 1.0); // none
/// // Within 1.0 of (-0.95, 0): the lattice points (0, 0) and (0, 0.2), which the last 64 rows hold 3
/// // and 4 times: 7 of k = 10.
/// assert!((model.score_one(&[-0.95, 0.0]) - 0.3).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StationaryRegionNeighborDetector {
    model: RadiusModel,
}

impl DetectorParams for StationaryRegionNeighborDetectorParams {
    type Model = StationaryRegionNeighborDetector;
    fn build(&self, schema: &SchemaRef) -> Result<StationaryRegionNeighborDetector, ParamError> {
        if !(0.0..=1.0).contains(&self.skip_threshold) {
            return Err(ParamError::invalid(
                "skip_threshold",
                format!("must be in [0, 1], got {}", self.skip_threshold),
            ));
        }
        let settings =
            RadiusSettings::new(self.k, self.radius, self.window_size, self.slide_size, self.warm_up_slides, self.eps)?;
        let (model, _) = RadiusModel::build(settings, schema, self.time_key.as_deref(), "stare")?;
        Ok(StationaryRegionNeighborDetector { model })
    }
}

impl Detector for StationaryRegionNeighborDetector {
    fn learn_one(&mut self, x: &[f64]) {
        self.model.learn(x);
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        finite_score(self.model.score(x))
    }
}

impl Describe for StationaryRegionNeighborDetectorParams {
    const REFERENCE: &'static str = "Yoon, Lee & Lee 2020, Ultrafast Local Outlier Detection from a Data Stream with Stationary Region Skipping (KDD)";
    const SUMMARY: &'static str =
        "STARE cell grid: 1 - min(#neighbours within radius / k, 1) over the last window_size points, counted exactly";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "k", ty: "int >= 1", required: false, help: "neighbours at which the score reaches 0 (50)" },
        ParamDoc {
            name: "radius",
            ty: "float > 0",
            required: false,
            help: "neighbourhood radius and cell width, in data units (1.0)",
        },
        ParamDoc { name: "window_size", ty: "int > k", required: false, help: "points held (2048)" },
        ParamDoc { name: "slide_size", ty: "int >= 1", required: false, help: "points per warm-up slide (128)" },
        ParamDoc {
            name: "skip_threshold",
            ty: "float in [0, 1]",
            required: false,
            help: "compatibility only: counts are exact (0.1)",
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
        ParamDoc { name: "eps", ty: "float > 0", required: false, help: "added to radius^2 in the test (1e-9)" },
    ];
    fn example() -> Self {
        // Small enough that the conformance streams get past the warm-up.
        StationaryRegionNeighborDetectorParams { k: 10, window_size: 256, slide_size: 32, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn params() -> StationaryRegionNeighborDetectorParams {
        StationaryRegionNeighborDetectorParams {
            k: 3,
            window_size: 5,
            slide_size: 2,
            warm_up_slides: 2,
            ..Default::default()
        }
    }

    #[test]
    fn hand_checked_counts_and_warm_up() {
        let mut m = params().build(&Schema::numbered("f", 2)).unwrap();
        for p in [[0.0, 0.0], [0.6, 0.8], [3.0, 4.0]] {
            m.learn_one(&p);
            assert_eq!(m.score_one(&[0.0, 0.0]), 0.0, "warming up");
        }
        m.learn_one(&[0.0, -1.0]);
        // 4 = warm_up_slides * slide_size learned, window 4 > k. Within 1 of the origin: (0,0), (0.6,0.8)
        // at exactly 1, (0,-1) at 1: 3 = k.
        assert_eq!(m.score_one(&[0.0, 0.0]), 0.0);
        // Of (0.3, 0.4): (0,0) at 0.5, (0.6,0.8) at 0.5, (0,-1) at sqrt(2.05): 2 of 3.
        assert_eq!(m.score_one(&[0.3, 0.4]), 1.0 - 2.0 / 3.0);
        assert_eq!(m.score_one(&[3.0, 4.5]), 1.0 - 1.0 / 3.0);
        m.learn_one(&[3.0, 4.0]);
        m.learn_one(&[3.0, 4.0]); // the window of 5 drops (0, 0)
        assert_eq!(m.score_one(&[0.3, 0.4]), 1.0 - 1.0 / 3.0);
    }

    #[test]
    fn isolated_point_scores_above_inliers() {
        let schema = Schema::numbered("f", 2);
        let mut m = StationaryRegionNeighborDetectorParams::default().build(&schema).unwrap();
        for i in 0..3000 {
            m.learn_one(&[(i % 17) as f64 * 0.1, (i % 13) as f64 * 0.1]);
        }
        assert_eq!(m.score_one(&[0.8, 0.6]), 0.0);
        assert_eq!(m.score_one(&[10.0, 0.6]), 1.0);
    }

    #[test]
    fn invalid_parameters_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        assert!(params().build(&schema).is_ok());
        let cases = [
            (StationaryRegionNeighborDetectorParams { k: 0, ..params() }, "'k'"),
            (StationaryRegionNeighborDetectorParams { radius: -1.0, ..params() }, "'radius'"),
            (StationaryRegionNeighborDetectorParams { window_size: 3, ..params() }, "'window_size'"),
            (StationaryRegionNeighborDetectorParams { slide_size: 0, ..params() }, "'slide_size'"),
            (StationaryRegionNeighborDetectorParams { skip_threshold: 1.5, ..params() }, "'skip_threshold'"),
            (StationaryRegionNeighborDetectorParams { skip_threshold: f64::NAN, ..params() }, "'skip_threshold'"),
            (StationaryRegionNeighborDetectorParams { warm_up_slides: 0, ..params() }, "'warm_up_slides'"),
            (StationaryRegionNeighborDetectorParams { eps: f64::NAN, ..params() }, "'eps'"),
            (StationaryRegionNeighborDetectorParams { time_key: Some("t".into()), ..params() }, "time_key"),
        ];
        for (p, name) in cases {
            let err = p.build(&schema).unwrap_err().to_string();
            assert!(err.contains(name), "{p:?}: {err}");
        }
    }
}
