//! Distance-based detectors: scores from the distances between a point and the recent points.

mod knn;
mod lof;
mod nets;
mod radius;
mod sdo_stream;
mod stare;

pub use knn::{KNN, KNNParams, KnnDistance};
pub use lof::{LOF_MAX_WINDOW, LocalOutlierFactor, LocalOutlierFactorParams, LofDistance};
pub use nets::{CellNeighborhoodDetector, CellNeighborhoodDetectorParams};
pub use sdo_stream::{SDOStream, SDOStreamParams, SdoDistance};
pub use stare::{StationaryRegionNeighborDetector, StationaryRegionNeighborDetectorParams};
