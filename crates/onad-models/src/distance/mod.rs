//! Distance-based detectors: scores from the distances between a point and the recent points.

mod knn;
mod nets;
mod radius;
mod stare;

pub use knn::{KNN, KNNParams, KnnDistance};
pub use nets::{CellNeighborhoodDetector, CellNeighborhoodDetectorParams};
pub use stare::{StationaryRegionNeighborDetector, StationaryRegionNeighborDetectorParams};
