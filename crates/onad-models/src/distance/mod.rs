//! Distance-based detectors: scores from the distances between a point and the recent points.

mod knn;
mod lof;
mod sdo_stream;

pub use knn::{KNN, KNNParams, KnnDistance};
pub use lof::{LOF_MAX_WINDOW, LocalOutlierFactor, LocalOutlierFactorParams, LofDistance};
pub use sdo_stream::{SDOStream, SDOStreamParams, SdoDistance};
