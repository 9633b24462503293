//! Distance-based detectors: scores from the distances between a point and the recent points.

mod knn;

pub use knn::{KNN, KNNParams, KnnDistance};
