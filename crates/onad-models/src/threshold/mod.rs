//! Score policies: detectors that read another detector's score (QuantileThreshold), a wrapper that
//! keeps a detector from learning the anomalies it flags (Protected) and one that calibrates its scores
//! against its recent ones (Calibrated). Both keep their recent scores in
//! the shared rolling window of `onad_core::rolling`, and interpolate quantiles as aberrant writes it
//! (from the nearer end, [`Interpolation::NearerEnd`](onad_core::rolling::Interpolation::NearerEnd)), so
//! results match it to the last bit.

mod calibrate;
mod ensemble;
mod protected;
mod quantile_threshold;

pub use calibrate::{Calibrated, Calibration, Calibrator};
pub use ensemble::{Combine, Ensemble, MAX_MEMBERS};
pub use protected::{Guard, Protect, Protected};
pub use quantile_threshold::{QuantileThreshold, QuantileThresholdParams};
