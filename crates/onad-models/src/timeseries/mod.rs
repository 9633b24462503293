//! Detectors of one series (or a few aligned ones) at a fixed cadence: discords by matrix profile and DAMP.

mod damp;
mod matrix_profile;
mod subsequence;

pub use damp::{XLagDAMP, XLagDAMPParams};
pub use matrix_profile::{
    MultivariateRollingMatrixProfile, MultivariateRollingMatrixProfileParams, RollingMatrixProfile,
    RollingMatrixProfileParams,
};
