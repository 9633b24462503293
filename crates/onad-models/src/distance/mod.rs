//! Distance-based detectors: scores from the distances between a point and the recent points.

mod knn;
mod sdo_stream;

pub use knn::{KNN, KNNParams, KnnDistance};
pub use sdo_stream::{SDOStream, SDOStreamParams, SdoDistance};
