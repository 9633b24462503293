//! Detectors of one series (or a few aligned ones) at a fixed cadence (`Describe::SERIES`): discords by
//! matrix profile and DAMP, and seasonal forecast residuals.

mod damp;
mod matrix_profile;
mod seasonal_residual;
mod subsequence;

pub use damp::{XLagDAMP, XLagDAMPParams};
pub use matrix_profile::{
    MultivariateRollingMatrixProfile, MultivariateRollingMatrixProfileParams, RollingMatrixProfile,
    RollingMatrixProfileParams,
};
pub use seasonal_residual::{SeasonalResidualDetector, SeasonalResidualDetectorParams};
