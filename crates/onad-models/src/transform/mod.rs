//! Transformers that put in front of a detector: per-feature scalers.

mod min_max_scaler;
mod standard_scaler;

pub use min_max_scaler::{MinMaxScaler, MinMaxScalerParams};
pub use standard_scaler::{StandardScaler, StandardScalerParams};
