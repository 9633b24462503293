//! Detectors of one series at a fixed cadence (`Describe::SERIES`): seasonal forecast residuals.

mod seasonal_residual;

pub use seasonal_residual::{SeasonalResidualDetector, SeasonalResidualDetectorParams};
