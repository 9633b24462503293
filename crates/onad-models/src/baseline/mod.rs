//! Baselines and fixed-bound detectors: NullModel, RandomModel, ThresholdModel.

mod null;
mod random;
mod threshold;

pub use null::{NullModel, NullModelParams};
pub use random::{RandomModel, RandomModelParams};
pub use threshold::{ThresholdBound, ThresholdModel, ThresholdModelParams};
